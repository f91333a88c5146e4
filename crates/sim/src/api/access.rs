//! `user.cfg` as pve-access-control and pve-manager's Pool.pm manage it: users,
//! groups, roles, ACLs (users, groups and tokens) and pools. Errors carry the
//! `lock_user_config` prefixes PVE adds ("create user failed: …").

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::missing;
use crate::auth;
use crate::formats::split_list;
use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{AccessGroup, Acl, Pool, State, User};

pub fn dispatch(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let t = r.template.as_str();
    match (r.method.as_str(), t) {
        ("GET", "/access/acl") => Ok(acl_list(inner, r).into()),
        ("PUT", "/access/acl") => inner.with_state(|st| acl_update(st, r)),
        ("GET", "/access/users") => Ok(inner.with_state(|st| user_list(st, r)).into()),
        ("POST", "/access/users") => inner.with_state(|st| user_create(st, r)),
        ("GET", "/access/users/{userid}") => inner.with_state(|st| user_get(st, r)),
        ("PUT", "/access/users/{userid}") => inner.with_state(|st| user_update(st, r)),
        ("DELETE", "/access/users/{userid}") => inner.with_state(|st| user_delete(st, r)),
        ("GET", "/access/groups") => Ok(inner.with_state(|st| group_list(st, r)).into()),
        ("POST", "/access/groups") => inner.with_state(|st| group_create(st, r)),
        ("GET", "/access/groups/{groupid}") => inner.with_state(|st| group_get(st, r)),
        ("PUT", "/access/groups/{groupid}") => inner.with_state(|st| group_update(st, r)),
        ("DELETE", "/access/groups/{groupid}") => inner.with_state(|st| group_delete(st, r)),
        // No user has a second factor configured on the simulated node.
        ("GET", "/access/tfa") => Ok(json!([]).into()),
        ("GET", "/access/roles") => Ok(inner.with_state(role_list).into()),
        ("POST", "/access/roles") => inner.with_state(|st| role_create(st, r)),
        ("GET", "/access/roles/{roleid}") => inner.with_state(|st| role_get(st, r)),
        ("PUT", "/access/roles/{roleid}") => inner.with_state(|st| role_update(st, r)),
        ("DELETE", "/access/roles/{roleid}") => inner.with_state(|st| role_delete(st, r)),
        ("GET", "/pools") => inner.with_state(|st| pool_index(st, r, r.str("poolid"))),
        ("GET", "/pools/{poolid}") => inner.with_state(|st| {
            let list = pool_index(st, r, r.str("poolid"))?;
            Ok(list.data.get(0).cloned().unwrap_or(Value::Null).into())
        }),
        ("POST", "/pools") => inner.with_state(|st| pool_create(st, r)),
        ("PUT", "/pools" | "/pools/{poolid}") => inner.with_state(|st| pool_update(st, r)),
        ("DELETE", "/pools" | "/pools/{poolid}") => inner.with_state(|st| pool_delete(st, r)),
        _ => Err(missing(r)),
    }
}

/// `lock_user_config($code, $errmsg)` turns a failure into "<errmsg>: <error>".
fn failed(what: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::e500(format!("{what}: {msg}"))
}

fn acl_list(inner: &Inner, r: &Req) -> Value {
    inner.with_state(|st| {
        Value::Array(
            st.acls
                .iter()
                // ACL.pm: everything with Sys.Audit on /access, else the paths whose
                // permissions the caller may modify.
                .filter(|a| {
                    auth::has(st, &r.who, "/access", "Sys.Audit")
                        || auth::has(st, &r.who, &a.path, "Permissions.Modify")
                })
                .map(|a| {
                    let ty = if a.group {
                        "group"
                    } else if a.ugid.contains('!') {
                        "token"
                    } else {
                        "user"
                    };
                    json!({"path": a.path, "ugid": a.ugid, "type": ty, "roleid": a.role,
                           "propagate": if a.propagate { 1 } else { 0 }})
                })
                .collect(),
        )
    })
}

/// `PUT /access/acl`: add or (with `delete=1`) remove role assignments for users,
/// groups and tokens.
fn acl_update(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let path = r.s("path");
    let roles = split_list(&r.s("roles"));
    let propagate = r.str("propagate").is_none_or(|p| p == "1");
    let delete = r.flag("delete");
    let fail = |m: String| failed("ACL update failed", m);
    for role in &roles {
        if auth::role_privs(st, role).is_none() {
            return Err(fail(format!("role '{role}' does not exist")));
        }
    }
    let mut subjects: Vec<(String, bool)> = vec![];
    for g in split_list(&r.s("groups")) {
        if !st.groups.contains_key(&g) {
            return Err(fail(format!("group '{g}' does not exist")));
        }
        subjects.push((g, true));
    }
    for u in split_list(&r.s("users")) {
        if !st.users.contains_key(&u) {
            return Err(fail(format!("user '{u}' does not exist")));
        }
        subjects.push((u, false));
    }
    for t in split_list(&r.s("tokens")) {
        let (u, n) = t.split_once('!').unwrap_or((t.as_str(), ""));
        if !st.users.get(u).is_some_and(|x| x.tokens.contains_key(n)) {
            return Err(fail(format!("no such token '{n}' for user '{u}'")));
        }
        subjects.push((t, false));
    }
    for (s, group) in &subjects {
        for role in &roles {
            st.acls.retain(|a| {
                !(a.path == path && &a.ugid == s && a.group == *group && &a.role == role)
            });
            if !delete {
                st.acls.push(Acl {
                    path: path.clone(),
                    ugid: s.clone(),
                    role: role.clone(),
                    propagate,
                    group: *group,
                });
            }
        }
    }
    Ok(Value::Null.into())
}

fn groups_of(st: &State, user: &str) -> Vec<String> {
    st.groups
        .iter()
        .filter(|(_, g)| g.users.contains(user))
        .map(|(n, _)| n.clone())
        .collect()
}

fn user_json(st: &State, id: &str, u: &User, full: bool) -> Value {
    let mut e = Map::new();
    e.insert("enable".into(), json!(if u.enable { 1 } else { 0 }));
    e.insert("expire".into(), json!(u.expire));
    for (k, v) in [
        ("firstname", &u.firstname),
        ("lastname", &u.lastname),
        ("email", &u.email),
        ("comment", &u.comment),
        ("keys", &u.keys),
    ] {
        if let Some(v) = v {
            e.insert(k.into(), json!(v));
        }
    }
    if full {
        let mut g = groups_of(st, id);
        g.sort();
        e.insert("groups".into(), json!(g));
        let tokens: Map<String, Value> = u
            .tokens
            .iter()
            .map(|(n, t)| {
                let mut o = json!({"privsep": if t.privsep { 1 } else { 0 }, "expire": t.expire});
                if let Some(c) = &t.comment {
                    o["comment"] = json!(c);
                }
                (n.clone(), o)
            })
            .collect();
        e.insert("tokens".into(), Value::Object(tokens));
    }
    Value::Object(e)
}

fn user_list(st: &State, r: &Req) -> Value {
    let can_all = ["User.Modify", "Sys.Audit"]
        .iter()
        .any(|p| auth::has(st, &r.who, "/access/groups", p));
    let full = r.flag("full");
    let mut ids: Vec<&String> = st.users.keys().collect();
    ids.sort();
    let mut out = vec![];
    for id in ids {
        let u = &st.users[id];
        let visible = can_all
            || *id == r.who.user
            || groups_of(st, id).iter().any(|g| {
                ["User.Modify", "Sys.Audit"]
                    .iter()
                    .any(|p| auth::has(st, &r.who, &format!("/access/groups/{g}"), p))
            });
        if !visible {
            continue;
        }
        if let Some(want) = r.str("enabled")
            && (want == "1") != u.enable
        {
            continue;
        }
        let mut e = user_json(st, id, u, full);
        if full {
            let g: Vec<String> = e["groups"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            e["groups"] = json!(g.join(","));
            let tokens: Vec<Value> = u
                .tokens
                .iter()
                .map(|(n, t)| {
                    let mut o = json!({"tokenid": n, "privsep": if t.privsep { 1 } else { 0 }, "expire": t.expire});
                    if let Some(c) = &t.comment {
                        o["comment"] = json!(c);
                    }
                    o
                })
                .collect();
            e["tokens"] = json!(tokens);
        }
        let realm = id.rsplit_once('@').map_or("", |x| x.1);
        if realm == "pam" || realm == "pve" {
            e["realm-type"] = json!(realm);
        }
        e["userid"] = json!(id);
        out.push(e);
    }
    Value::Array(out)
}

fn no_such_user(id: &str) -> String {
    format!("no such user ('{id}')")
}

fn set_groups(st: &mut State, id: &str, groups: &str, what: &str) -> Result<(), ApiError> {
    for g in split_list(groups) {
        match st.groups.get_mut(&g) {
            Some(grp) => {
                grp.users.insert(id.to_string());
            }
            None => return Err(failed(what, format!("no such group '{g}'"))),
        }
    }
    Ok(())
}

fn user_create(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("userid");
    let what = "create user failed";
    if st.users.contains_key(&id) {
        return Err(failed(what, format!("user '{id}' already exists")));
    }
    let realm = id.rsplit_once('@').map_or("", |x| x.1);
    if !["pam", "pve"].contains(&realm) {
        return Err(failed(
            what,
            format!("authentication domain '{realm}' does not exist"),
        ));
    }
    if let Some(g) = r.str("groups") {
        for name in split_list(&g) {
            if !st.groups.contains_key(&name) {
                return Err(failed(what, format!("no such group '{name}'")));
            }
        }
    }
    let nonempty = |k: &str| r.str(k).filter(|v| !v.is_empty());
    let u = User {
        password: r.s("password"),
        enable: r.str("enable").is_none_or(|e| e == "1"),
        tokens: Default::default(),
        expire: r.i64("expire").unwrap_or(0).max(0) as u64,
        firstname: nonempty("firstname"),
        lastname: nonempty("lastname"),
        email: nonempty("email"),
        comment: nonempty("comment"),
        keys: nonempty("keys"),
    };
    st.users.insert(id.clone(), u);
    if let Some(g) = r.str("groups") {
        set_groups(st, &id, &g, what)?;
    }
    Ok(Value::Null.into())
}

fn user_get(st: &State, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("userid");
    let u = st
        .users
        .get(&id)
        .ok_or_else(|| ApiError::e500(no_such_user(&id)))?;
    Ok(user_json(st, &id, u, true).into())
}

fn user_update(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("userid");
    let what = "update user failed";
    if !st.users.contains_key(&id) {
        return Err(failed(what, no_such_user(&id)));
    }
    if let Some(g) = r.str("groups") {
        for name in split_list(&g) {
            if !st.groups.contains_key(&name) {
                return Err(failed(what, format!("no such group '{name}'")));
            }
        }
        if !r.flag("append") {
            for grp in st.groups.values_mut() {
                grp.users.remove(&id);
            }
        }
        set_groups(st, &id, &g, what)?;
    }
    let Some(u) = st.users.get_mut(&id) else {
        return Err(failed(what, no_such_user(&id)));
    };
    if let Some(e) = r.str("enable") {
        u.enable = e == "1";
    }
    if let Some(e) = r.i64("expire") {
        u.expire = e.max(0) as u64;
    }
    for (k, slot) in [
        ("firstname", &mut u.firstname),
        ("lastname", &mut u.lastname),
        ("email", &mut u.email),
        ("comment", &mut u.comment),
        ("keys", &mut u.keys),
    ] {
        if let Some(v) = r.str(k) {
            *slot = Some(v).filter(|v| !v.is_empty());
        }
    }
    Ok(Value::Null.into())
}

/// Deleting a user drops its group memberships and its (and its tokens') ACLs.
fn user_delete(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("userid");
    if st.users.shift_remove(&id).is_none() {
        return Err(failed("delete user failed", no_such_user(&id)));
    }
    for g in st.groups.values_mut() {
        g.users.remove(&id);
    }
    let prefix = format!("{id}!");
    st.acls
        .retain(|a| a.group || (a.ugid != id && !a.ugid.starts_with(&prefix)));
    Ok(Value::Null.into())
}

fn group_list(st: &State, r: &Req) -> Value {
    let mut names: Vec<&String> = st.groups.keys().collect();
    names.sort();
    Value::Array(
        names
            .into_iter()
            .filter(|g| {
                ["User.Modify", "Sys.Audit", "Group.Allocate"]
                    .iter()
                    .any(|p| auth::has(st, &r.who, &format!("/access/groups/{g}"), p))
            })
            .map(|g| {
                let d = &st.groups[g];
                let mut e = json!({"groupid": g, "users": d.users.iter().cloned().collect::<Vec<_>>().join(",")});
                if let Some(c) = &d.comment {
                    e["comment"] = json!(c);
                }
                e
            })
            .collect(),
    )
}

fn group_create(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let g = r.s("groupid");
    if st.groups.contains_key(&g) {
        return Err(failed(
            "create group failed",
            format!("group '{g}' already exists"),
        ));
    }
    st.groups.insert(
        g,
        AccessGroup {
            comment: r.str("comment").filter(|c| !c.is_empty()),
            users: Default::default(),
        },
    );
    Ok(Value::Null.into())
}

fn group_get(st: &State, r: &Req) -> Result<Reply, ApiError> {
    let g = r.s("groupid");
    let d = st
        .groups
        .get(&g)
        .ok_or_else(|| ApiError::e500(format!("group '{g}' does not exist")))?;
    let mut e = json!({"members": d.users.iter().cloned().collect::<Vec<_>>()});
    if let Some(c) = &d.comment {
        e["comment"] = json!(c);
    }
    Ok(e.into())
}

fn group_update(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let g = r.s("groupid");
    let d = st
        .groups
        .get_mut(&g)
        .ok_or_else(|| failed("update group failed", format!("group '{g}' does not exist")))?;
    if let Some(c) = r.str("comment") {
        d.comment = Some(c).filter(|c| !c.is_empty());
    }
    Ok(Value::Null.into())
}

fn group_delete(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let g = r.s("groupid");
    if st.groups.shift_remove(&g).is_none() {
        return Err(failed(
            "delete group failed",
            format!("group '{g}' does not exist"),
        ));
    }
    st.acls.retain(|a| !(a.group && a.ugid == g));
    Ok(Value::Null.into())
}

fn role_list(st: &mut State) -> Value {
    let mut all: Vec<(String, Vec<String>, bool)> = auth::builtin_roles()
        .into_iter()
        .map(|(n, p)| (n, p.into_iter().collect(), true))
        .collect();
    all.extend(
        st.roles
            .iter()
            .map(|(n, p)| (n.clone(), p.iter().cloned().collect(), false)),
    );
    Value::Array(
        all.into_iter()
            .map(|(n, p, special)| {
                json!({"roleid": n, "privs": p.join(","), "special": if special { 1 } else { 0 }})
            })
            .collect(),
    )
}

fn parse_privs(r: &Req) -> std::collections::BTreeSet<String> {
    split_list(&r.s("privs")).into_iter().collect()
}

fn role_create(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("roleid");
    if id.to_lowercase().starts_with("pve") {
        return Err(ApiError::param(
            "roleid",
            "cannot use role ID starting with the (case-insensitive) 'PVE' namespace",
        ));
    }
    if st.roles.contains_key(&id) || auth::is_builtin_role(&id) {
        return Err(failed(
            "create role failed",
            format!("role '{id}' already exists"),
        ));
    }
    st.roles.insert(id, parse_privs(r));
    Ok(Value::Null.into())
}

fn role_get(st: &State, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("roleid");
    let privs = auth::role_privs(st, &id)
        .ok_or_else(|| ApiError::e500(format!("role '{id}' does not exist")))?;
    let m: Map<String, Value> = privs.into_iter().map(|p| (p, json!(1))).collect();
    Ok(Value::Object(m).into())
}

fn role_update(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("roleid");
    if auth::is_builtin_role(&id) {
        return Err(ApiError::e500(format!(
            "auto-generated role '{id}' cannot be modified"
        )));
    }
    let role = st
        .roles
        .get_mut(&id)
        .ok_or_else(|| failed("update role failed", format!("role '{id}' does not exist")))?;
    if !r.flag("append") {
        role.clear();
    }
    role.extend(parse_privs(r));
    Ok(Value::Null.into())
}

fn role_delete(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("roleid");
    if auth::is_builtin_role(&id) {
        return Err(ApiError::e500(format!(
            "auto-generated role '{id}' cannot be deleted"
        )));
    }
    if st.roles.shift_remove(&id).is_none() {
        return Err(failed(
            "delete role failed",
            format!("role '{id}' does not exist"),
        ));
    }
    st.acls.retain(|a| a.role != id);
    Ok(Value::Null.into())
}

/// `GET /pools`: every pool the caller may audit, or one pool with its members
/// (guests as in `/cluster/resources`, storages with their plugin type).
fn pool_index(st: &State, r: &Req, poolid: Option<String>) -> Result<Reply, ApiError> {
    let Some(id) = poolid else {
        let mut names: Vec<&String> = st.pools.keys().collect();
        names.sort();
        let list: Vec<Value> = names
            .into_iter()
            .filter(|p| auth::has(st, &r.who, &format!("/pool/{p}"), "Pool.Audit"))
            .map(|p| {
                let mut e = json!({"poolid": p});
                if let Some(c) = &st.pools[p].comment {
                    e["comment"] = json!(c);
                }
                e
            })
            .collect();
        return Ok(Value::Array(list).into());
    };
    if !auth::has(st, &r.who, &format!("/pool/{id}"), "Pool.Audit") {
        return Err(ApiError::e403(format!(
            "Permission check failed (/pool/{id}, Pool.Audit)"
        )));
    }
    let pool = st
        .pools
        .get(&id)
        .ok_or_else(|| ApiError::e500(format!("pool '{id}' does not exist")))?;
    let ty = r.str("type");
    let mut members = vec![];
    for vmid in &pool.vms {
        let Some(vm) = st.vms.get(vmid) else { continue };
        if ty.as_deref().is_some_and(|t| t != "qemu") {
            continue;
        }
        members.push(json!({
            "id": format!("qemu/{vmid}"), "vmid": vmid, "node": vm.node, "type": "qemu",
            "status": if vm.running { "running" } else { "stopped" },
            "name": vm.conf.get("name").cloned().unwrap_or_else(|| format!("VM {vmid}")),
            "template": if crate::util::truthy(vm.conf.get("template")) { 1 } else { 0 },
            "maxmem": super::cluster::vm_maxmem(vm.conf.get("memory")),
            "maxdisk": super::qemu::disk_sizes(&vm.conf),
            "maxcpu": vm.conf.get("cores").and_then(|c| c.parse::<u64>().ok()).unwrap_or(1),
            "uptime": 0, "cpu": 0, "mem": 0, "disk": 0, "netin": 0, "netout": 0,
            "diskread": 0, "diskwrite": 0,
        }));
    }
    if ty.as_deref().is_none_or(|t| t == "storage") {
        let node = st.nodes.keys().next().cloned().unwrap_or_default();
        for sid in &pool.storage {
            let Some(cfg) = st.storages.get(sid) else {
                continue;
            };
            let (total, used) = super::storage::usage(st, &node, sid, cfg);
            members.push(json!({
                "id": format!("storage/{node}/{sid}"), "storage": sid, "node": node,
                "type": "storage", "plugintype": cfg.get("type"), "status": "available",
                "shared": cfg.get("shared").and_then(|v| v.as_str()).map_or(0, |v| if v == "1" { 1 } else { 0 }),
                "content": cfg.get("content").cloned().unwrap_or(json!("")),
                "maxdisk": total, "disk": used,
            }));
        }
    }
    let mut e = json!({"poolid": id, "members": members});
    if let Some(c) = &pool.comment {
        e["comment"] = json!(c);
    }
    Ok(json!([e]).into())
}

fn pool_create(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("poolid");
    let what = "create pool failed";
    if st.pools.contains_key(&id) {
        return Err(failed(what, format!("pool '{id}' already exists")));
    }
    let leaf = match id.rsplit_once('/') {
        Some((parent, leaf)) => {
            if !st.pools.contains_key(parent) {
                return Err(failed(
                    what,
                    format!("parent '{parent}' of pool '{id}' does not exist"),
                ));
            }
            leaf.to_string()
        }
        None => id.clone(),
    };
    if !leaf.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(failed(what, "pool name must start with a letter"));
    }
    st.pools.insert(
        id,
        Pool {
            comment: r.str("comment").filter(|c| !c.is_empty()),
            ..Default::default()
        },
    );
    Ok(Value::Null.into())
}

/// `PUT /pools`: comment, and adding (or with `delete=1` removing) guests and
/// storages; a guest in another pool moves only with `allow-move`.
fn pool_update(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("poolid");
    let what = "update pools failed";
    if !st.pools.contains_key(&id) {
        return Err(failed(what, format!("pool '{id}' does not exist")));
    }
    let delete = r.flag("delete");
    let vms: Vec<String> = r.str("vms").map(|v| split_list(&v)).unwrap_or_default();
    for v in &vms {
        let vmid: u32 = v.parse().unwrap_or(0);
        let member = st.pools.get(&id).is_some_and(|p| p.vms.contains(&vmid));
        if delete {
            if !member {
                return Err(failed(what, format!("VM {vmid} is not a pool member")));
            }
            if let Some(p) = st.pools.get_mut(&id) {
                p.vms.remove(&vmid);
            }
        } else {
            if member {
                return Err(failed(what, format!("VM {vmid} is already a pool member")));
            }
            let other = st
                .pools
                .iter()
                .find(|(n, p)| **n != id && p.vms.contains(&vmid))
                .map(|(n, _)| n.clone());
            if let Some(o) = other {
                if !r.flag("allow-move") {
                    return Err(failed(
                        what,
                        format!(
                            "VM {vmid} belongs already to pool '{o}' and 'allow-move' is not set"
                        ),
                    ));
                }
                if let Some(p) = st.pools.get_mut(&o) {
                    p.vms.remove(&vmid);
                }
            }
            if let Some(p) = st.pools.get_mut(&id) {
                p.vms.insert(vmid);
            }
        }
    }
    let storages: Vec<String> = r.str("storage").map(|v| split_list(&v)).unwrap_or_default();
    let Some(pool) = st.pools.get_mut(&id) else {
        return Err(failed(what, format!("pool '{id}' does not exist")));
    };
    if let Some(c) = r.str("comment") {
        pool.comment = Some(c).filter(|c| !c.is_empty());
    }
    for s in storages {
        if delete {
            if !pool.storage.remove(&s) {
                return Err(failed(what, format!("Storage '{s}' is not a pool member")));
            }
        } else if !pool.storage.insert(s.clone()) {
            return Err(failed(
                what,
                format!("Storage '{s}' is already a pool member"),
            ));
        }
    }
    Ok(Value::Null.into())
}

fn pool_delete(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("poolid");
    let what = "delete pool failed";
    let pool = st
        .pools
        .get(&id)
        .ok_or_else(|| failed(what, format!("pool '{id}' does not exist")))?;
    let prefix = format!("{id}/");
    if let Some(sub) = st.pools.keys().find(|k| k.starts_with(&prefix)) {
        return Err(failed(
            what,
            format!("pool '{id}' is not empty (contains pool '{sub}')"),
        ));
    }
    if let Some(v) = pool.vms.iter().find(|v| st.vms.contains_key(v)) {
        return Err(failed(
            what,
            format!("pool '{id}' is not empty (contains VM {v})"),
        ));
    }
    if let Some(s) = pool.storage.iter().find(|s| st.storages.contains_key(*s)) {
        return Err(failed(
            what,
            format!("pool '{id}' is not empty (contains storage '{s}')"),
        ));
    }
    st.pools.shift_remove(&id);
    st.acls.retain(|a| a.path != format!("/pool/{id}"));
    Ok(Value::Null.into())
}

/// A new guest joins the pool given at creation (`add_vm_to_pool`).
pub fn add_vm_to_pool(st: &mut State, vmid: u32, pool: &str) {
    if let Some(p) = st.pools.get_mut(pool) {
        p.vms.insert(vmid);
    }
}

/// A destroyed guest leaves its pool and its `/vms/<id>` ACLs (`remove_vm_access`).
pub fn remove_vm_access(st: &mut State, vmid: u32) {
    for p in st.pools.values_mut() {
        p.vms.remove(&vmid);
    }
    let path = format!("/vms/{vmid}");
    st.acls.retain(|a| a.path != path);
}
