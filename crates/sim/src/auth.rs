//! Authentication (API tokens, tickets + CSRF) and ACL privilege evaluation.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::formats::all_privs;
use crate::state::State;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct AuthId {
    /// `user@realm`.
    pub user: String,
    /// Token name when authenticated by API token.
    pub token: Option<String>,
}

impl AuthId {
    /// `user@realm` or `user@realm!token`, as PVE writes it into UPIDs.
    pub fn full(&self) -> String {
        match &self.token {
            Some(t) => format!("{}!{}", self.user, t),
            None => self.user.clone(),
        }
    }
    pub fn is_root_ticket(&self) -> bool {
        self.user == "root@pam" && self.token.is_none()
    }
}

/// pve-access-control's privilege groups (`$privgroups`): per category the privileges
/// of its root, admin, user and audit levels. The built-in roles are derived from it
/// the way `create_roles` does.
const PRIVGROUPS: &[(&str, [&[&str]; 4])] = &[
    (
        "VM",
        [
            &[],
            &[
                "VM.Config.Disk",
                "VM.Config.CPU",
                "VM.Config.Memory",
                "VM.Config.Network",
                "VM.Config.HWType",
                "VM.Config.Options",
                "VM.Allocate",
                "VM.Clone",
                "VM.GuestAgent.Unrestricted",
                "VM.Migrate",
                "VM.Replicate",
                "VM.Snapshot",
                "VM.Snapshot.Rollback",
            ],
            &[
                "VM.Config.CDROM",
                "VM.Config.Cloudinit",
                "VM.Console",
                "VM.Backup",
                "VM.GuestAgent.FileRead",
                "VM.GuestAgent.FileSystemMgmt",
                "VM.GuestAgent.FileWrite",
                "VM.PowerMgmt",
            ],
            &["VM.Audit", "VM.GuestAgent.Audit"],
        ],
    ),
    (
        "Sys",
        [
            &[
                "Sys.PowerMgmt",
                "Sys.Modify",
                "Sys.Incoming",
                "Sys.AccessNetwork",
            ],
            &["Sys.Console", "Sys.Syslog"],
            &[],
            &["Sys.Audit"],
        ],
    ),
    (
        "Datastore",
        [
            &[],
            &["Datastore.Allocate", "Datastore.AllocateTemplate"],
            &["Datastore.AllocateSpace"],
            &["Datastore.Audit"],
        ],
    ),
    (
        "SDN",
        [
            &[],
            &["SDN.Allocate", "SDN.Audit"],
            &["SDN.Use"],
            &["SDN.Audit"],
        ],
    ),
    (
        "User",
        [
            &["Realm.Allocate"],
            &["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
            &[],
            &[],
        ],
    ),
    (
        "Pool",
        [&[], &["Pool.Allocate"], &["Pool.Audit"], &["Pool.Audit"]],
    ),
    (
        "Mapping",
        [
            &[],
            &["Mapping.Modify"],
            &["Mapping.Use"],
            &["Mapping.Audit"],
        ],
    ),
];

/// The auto-generated ("special") roles and their privileges.
pub fn builtin_roles() -> Vec<(String, BTreeSet<String>)> {
    let mut roles: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    roles.insert("NoAccess".into(), BTreeSet::new());
    roles.insert(
        "Administrator".into(),
        all_privs().into_iter().map(String::from).collect(),
    );
    for (cat, [_, admin, user, audit]) in PRIVGROUPS {
        for p in admin.iter().chain(user.iter()).chain(audit.iter()) {
            roles
                .entry(format!("PVE{cat}Admin"))
                .or_default()
                .insert((*p).into());
            roles
                .entry("PVEAdmin".into())
                .or_default()
                .insert((*p).into());
        }
        if !user.is_empty() {
            for p in user.iter().chain(audit.iter()) {
                roles
                    .entry(format!("PVE{cat}User"))
                    .or_default()
                    .insert((*p).into());
            }
        }
        for p in *audit {
            roles
                .entry("PVEAuditor".into())
                .or_default()
                .insert((*p).into());
        }
    }
    if let Some(a) = roles.get_mut("PVEAdmin") {
        a.remove("Mapping.Modify");
    }
    roles.insert(
        "PVETemplateUser".into(),
        ["VM.Clone", "VM.Audit"]
            .iter()
            .map(|x| (*x).to_string())
            .collect(),
    );
    roles.into_iter().collect()
}

pub fn is_builtin_role(role: &str) -> bool {
    builtin_roles().iter().any(|(r, _)| r == role)
}

/// Privileges of a role (built-in or defined in `user.cfg`); `None` if it does not exist.
pub fn role_privs(st: &State, role: &str) -> Option<BTreeSet<String>> {
    if let Some((_, p)) = builtin_roles().into_iter().find(|(r, _)| r == role) {
        return Some(p);
    }
    st.roles.get(role).cloned()
}

/// pve-access-control `roles()`: walking from `/` to `path`, each level with entries
/// replaces what was inherited (ancestors count only when propagating); for users, their
/// own entries at a level win over their groups' entries. `NoAccess` removes all.
/// Each privilege carries its propagate flag, as `/access/permissions` reports it:
/// set when it reaches `path` through a propagating entry.
fn subject_privs(
    st: &State,
    ugid: &str,
    is_token: bool,
    path: &str,
) -> std::collections::BTreeMap<String, bool> {
    use std::collections::BTreeMap;
    let mut prefixes = vec!["/".to_string()];
    let mut acc = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        acc.push('/');
        acc.push_str(seg);
        prefixes.push(acc.clone());
    }
    let groups: Vec<&String> = if is_token {
        vec![]
    } else {
        st.groups
            .iter()
            .filter(|(_, g)| g.users.contains(ugid))
            .map(|(n, _)| n)
            .collect()
    };
    let mut roles: BTreeMap<String, bool> = BTreeMap::new();
    for (i, p) in prefixes.iter().enumerate() {
        let exact = i + 1 == prefixes.len();
        let applies = |a: &&crate::state::Acl| &a.path == p && (exact || a.propagate);
        let collect = |group: bool| {
            let mut m: BTreeMap<String, bool> = BTreeMap::new();
            for a in st.acls.iter().filter(applies).filter(|a| {
                a.group == group
                    && if group {
                        groups.contains(&&a.ugid)
                    } else {
                        a.ugid == ugid
                    }
            }) {
                *m.entry(a.role.clone()).or_default() |= a.propagate;
            }
            m
        };
        let own = collect(false);
        if !own.is_empty() {
            roles = own;
            continue;
        }
        let from_groups = collect(true);
        if !from_groups.is_empty() {
            roles = from_groups;
        }
    }
    if roles.contains_key("NoAccess") {
        return BTreeMap::new();
    }
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    for (r, prop) in &roles {
        for p in role_privs(st, r).into_iter().flatten() {
            *out.entry(p).or_default() |= *prop;
        }
    }
    out
}

/// Effective privileges of the caller on `path` with their propagate flags
/// (privsep tokens: the intersection, propagating where both do).
pub fn privs_propagate(
    st: &State,
    who: &AuthId,
    path: &str,
) -> std::collections::BTreeMap<String, bool> {
    let user_privs = if who.user == "root@pam" {
        all_privs()
            .into_iter()
            .map(|p| (p.to_string(), true))
            .collect()
    } else {
        subject_privs(st, &who.user, false, path)
    };
    match &who.token {
        None => user_privs,
        Some(t) => {
            let privsep = st
                .users
                .get(&who.user)
                .and_then(|u| u.tokens.get(t))
                .is_none_or(|tok| tok.privsep);
            if !privsep {
                return user_privs;
            }
            let tp = subject_privs(st, &who.full(), true, path);
            user_privs
                .into_iter()
                .filter_map(|(p, prop)| tp.get(&p).map(|tprop| (p, prop && *tprop)))
                .collect()
        }
    }
}

/// Effective privileges of the caller on `path` (privsep tokens: intersection).
pub fn privs(st: &State, who: &AuthId, path: &str) -> BTreeSet<String> {
    privs_propagate(st, who, path).into_keys().collect()
}

pub fn has(st: &State, who: &AuthId, path: &str, privilege: &str) -> bool {
    privs(st, who, path).contains(privilege)
}

/// Substitutes `{param}` in an ACL path from the request parameters.
fn subst(path: &str, params: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 1..start + end];
        out.push_str(&params(name).unwrap_or_default());
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Evaluates a schema `check` expression. `Err` is the 403 message.
pub fn check(
    st: &State,
    who: &AuthId,
    expr: &Value,
    params: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let Some(arr) = expr.as_array() else {
        return Ok(());
    };
    let op = arr.first().and_then(Value::as_str).unwrap_or("");
    match op {
        "perm" => {
            let path = subst(arr.get(1).and_then(Value::as_str).unwrap_or("/"), params);
            let wanted: Vec<&str> = arr
                .get(2)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let any = arr.get(3).and_then(Value::as_str) == Some("any");
            let have = privs(st, who, &path);
            if any {
                if wanted.iter().any(|p| have.contains(*p)) {
                    Ok(())
                } else {
                    Err(format!(
                        "Permission check failed ({path}, {})",
                        wanted.join("|")
                    ))
                }
            } else {
                match wanted.iter().find(|p| !have.contains(**p)) {
                    None => Ok(()),
                    Some(p) => Err(format!("Permission check failed ({path}, {p})")),
                }
            }
        }
        "and" => {
            for e in &arr[1..] {
                check(st, who, e, params)?;
            }
            Ok(())
        }
        "or" => {
            let mut first = None;
            for e in &arr[1..] {
                match check(st, who, e, params) {
                    Ok(()) => return Ok(()),
                    Err(m) => {
                        first.get_or_insert(m);
                    }
                }
            }
            Err(first.unwrap_or_else(|| "Permission check failed".into()))
        }
        // ["userid-param", "self"]: the target is the caller; ["userid-param",
        // "Realm.AllocateUser"]: that privilege on the target's realm.
        "userid-param" => {
            let target = params("userid").unwrap_or_default();
            let what = arr.get(1).and_then(Value::as_str).unwrap_or("self");
            let ok = if what == "self" {
                target == who.user
            } else {
                let realm = target.rsplit_once('@').map_or("", |x| x.1);
                has(st, who, &format!("/access/realm/{realm}"), what)
            };
            if ok {
                Ok(())
            } else {
                Err("Permission check failed".into())
            }
        }
        "perm-modify" => {
            let path = subst(arr.get(1).and_then(Value::as_str).unwrap_or("/"), params);
            if has(st, who, &path, "Permissions.Modify") {
                Ok(())
            } else {
                Err(format!(
                    "Permission check failed ({path}, Permissions.Modify)"
                ))
            }
        }
        // ["userid-group", [privs]]: any of the privileges on /access/groups, or on a
        // group the target user belongs to.
        "userid-group" => {
            let wanted: Vec<&str> = arr
                .get(1)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_else(|| vec!["User.Modify"]);
            let target = params("userid").unwrap_or_default();
            let mut paths = vec!["/access/groups".to_string()];
            paths.extend(
                st.groups
                    .iter()
                    .filter(|(_, g)| g.users.contains(&target))
                    .map(|(n, _)| format!("/access/groups/{n}")),
            );
            let ok = paths.iter().any(|p| {
                let have = privs(st, who, p);
                wanted.iter().any(|w| have.contains(*w))
            });
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "Permission check failed (/access/groups, {})",
                    wanted.join("|")
                ))
            }
        }
        _ => {
            if who.user == "root@pam" {
                Ok(())
            } else {
                Err("Permission check failed".into())
            }
        }
    }
}

/// Signs ticket data with the simulator's secret.
fn sign(key: &str, data: &str) -> String {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(b":");
    h.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(h.finalize())
}

/// `PVE:<user>:<HEX time>::<signature>`.
pub fn make_ticket(key: &str, user: &str, now: u64) -> String {
    let data = format!("PVE:{user}:{now:08X}");
    format!("{data}::{}", sign(key, &data))
}

/// Verifies a ticket; returns the user. Tickets live 2 hours.
pub fn verify_ticket(key: &str, ticket: &str, now: u64) -> Option<String> {
    let (data, sig) = ticket.split_once("::")?;
    if sign(key, data) != sig {
        return None;
    }
    let mut parts = data.split(':');
    if parts.next()? != "PVE" {
        return None;
    }
    let user = parts.next()?.to_string();
    let t = u64::from_str_radix(parts.next()?, 16).ok()?;
    (now + 300 >= t && now < t + 7200).then_some(user)
}

/// `<HEX time>:<signature over time:user>`.
pub fn make_csrf(key: &str, user: &str, now: u64) -> String {
    let ts = format!("{now:08X}");
    format!("{ts}:{}", sign(key, &format!("csrf:{ts}:{user}")))
}

pub fn verify_csrf(key: &str, token: &str, user: &str, now: u64) -> bool {
    let Some((ts, sig)) = token.split_once(':') else {
        return false;
    };
    let Ok(t) = u64::from_str_radix(ts, 16) else {
        return false;
    };
    sign(key, &format!("csrf:{ts}:{user}")) == sig && now < t + 7200
}

/// Parses `PVEAPIToken=user@realm!name=secret` (or a space after `PVEAPIToken`).
pub fn parse_token_header(h: &str) -> Option<(String, String, String)> {
    let rest = h
        .strip_prefix("PVEAPIToken=")
        .or_else(|| h.strip_prefix("PVEAPIToken "))?;
    let rest = urlencoding::decode(rest).ok()?.into_owned();
    let (id, secret) = rest.rsplit_once('=')?;
    let (user, token) = id.split_once('!')?;
    Some((user.to_string(), token.to_string(), secret.to_string()))
}
