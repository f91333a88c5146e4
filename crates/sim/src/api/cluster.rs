//! Version, nodes, cluster resources/status/nextid, tasks and access endpoints.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::missing;
use crate::auth::{self, AuthId};
use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{State, Task};
use crate::util::{now, now_f};

pub fn dispatch(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    match (r.method.as_str(), r.template.as_str()) {
        ("GET", "/version") => {
            // `release` is major.minor of the version, as pve-manager reports it.
            let v = inner.cfg.pve_version.clone();
            let release = v.split(['.', '-']).take(2).collect::<Vec<_>>().join(".");
            Ok(json!({"version": v, "release": release, "repoid": "42ab8d4c6e9f1a07", "console": "html5"}).into())
        }
        ("GET", "/nodes") => Ok(nodes(inner).into()),
        ("GET", "/nodes/{node}") => Ok(json!([
            {"name": "apt"}, {"name": "certificates"}, {"name": "config"}, {"name": "disks"},
            {"name": "dns"}, {"name": "firewall"}, {"name": "hosts"}, {"name": "lxc"},
            {"name": "network"}, {"name": "qemu"}, {"name": "status"}, {"name": "storage"},
            {"name": "syslog"}, {"name": "tasks"}, {"name": "time"}, {"name": "version"},
            {"name": "vzdump"}
        ]).into()),
        ("GET", "/nodes/{node}/status") => node_status(inner, r),
        ("GET", "/nodes/{node}/version") => Ok(json!({"version": "9.1.1", "release": "9.1", "repoid": "42ab8d4c6e9f1a07"}).into()),
        ("GET", "/nodes/{node}/certificates/info") => Ok(cert_info(inner, r).into()),
        ("GET", "/cluster/resources") => Ok(resources(inner, r).into()),
        ("GET", "/cluster/status") => Ok(cluster_status(inner).into()),
        ("GET", "/cluster/nextid") => nextid(inner, r),
        ("GET", "/cluster/tasks") => Ok(inner
            .with_state(|st| {
                let mut v: Vec<Value> = st.tasks.iter().rev().take(100).map(task_entry).collect();
                v.retain(|t| visible_task(st, &r.who, t));
                Value::Array(v)
            })
            .into()),
        ("GET", "/nodes/{node}/tasks") => node_tasks(inner, r),
        ("GET", "/nodes/{node}/tasks/{upid}") => {
            find_task(inner, r)?;
            Ok(json!([{"name": "log"}, {"name": "status"}]).into())
        }
        ("GET", "/nodes/{node}/tasks/{upid}/status") => {
            let t = find_task(inner, r)?;
            super::require_task(inner, r, "Sys.Audit")?;
            Ok(task_status(&t).into())
        }
        ("GET", "/nodes/{node}/tasks/{upid}/log") => task_log(inner, r),
        ("DELETE", "/nodes/{node}/tasks/{upid}") => {
            let t = find_task(inner, r)?;
            super::require_task(inner, r, "Sys.Modify")?;
            if t.running {
                crate::tasks::finish(inner, &t.upid, Err("received interrupt".into()));
            }
            Ok(Value::Null.into())
        }
        ("GET", "/access/ticket") => Ok(Value::Null.into()),
        ("POST", "/access/ticket") => ticket(inner, r),
        ("GET", "/access/domains") => Ok(json!([
            {"realm": "pam", "type": "pam", "comment": "Linux PAM standard authentication"},
            {"realm": "pve", "type": "pve", "comment": "Proxmox VE authentication server"}
        ]).into()),
        ("GET", "/access/permissions") => permissions(inner, r),
        ("GET", "/access/users/{userid}/token") => inner.with_state(|st| {
            let u = r.s("userid");
            let user = st.users.get(&u).ok_or_else(|| ApiError::e500(format!("no such user ('{u}')")))?;
            Ok(Value::Array(user.tokens.iter().map(|(id, t)| token_info(id, t)).collect()).into())
        }),
        ("GET", "/access/users/{userid}/token/{tokenid}") => inner.with_state(|st| {
            let (u, id) = (r.s("userid"), r.s("tokenid"));
            let t = st
                .users
                .get(&u)
                .and_then(|x| x.tokens.get(&id))
                .ok_or_else(|| ApiError::e500(format!("no such token '{id}' for user '{u}'")))?;
            Ok(token_info(&id, t).into())
        }),
        ("POST", "/access/users/{userid}/token/{tokenid}") => token_create(inner, r),
        ("PUT", "/access/users/{userid}/token/{tokenid}") => inner.with_state(|st| {
            let (u, id) = (r.s("userid"), r.s("tokenid"));
            let t = st
                .users
                .get_mut(&u)
                .and_then(|x| x.tokens.get_mut(&id))
                .ok_or_else(|| ApiError::e500(format!("no such token '{id}' for user '{u}'")))?;
            for k in crate::formats::split_list(&r.s("delete")) {
                match k.as_str() {
                    "comment" => t.comment = None,
                    "expire" => t.expire = 0,
                    _ => return Err(ApiError::param("delete", format!("unknown option '{k}'"))),
                }
            }
            if let Some(c) = r.str("comment") {
                t.comment = Some(c);
            }
            if let Some(e) = r.i64("expire") {
                t.expire = e.max(0) as u64;
            }
            if let Some(p) = r.str("privsep") {
                t.privsep = p == "1";
            }
            Ok(token_info(&id, t).into())
        }),
        ("DELETE", "/access/users/{userid}/token/{tokenid}") => inner.with_state(|st| {
            let (u, id) = (r.s("userid"), r.s("tokenid"));
            let user = st.users.get_mut(&u).ok_or_else(|| ApiError::e500(format!("no such user ('{u}')")))?;
            user.tokens
                .shift_remove(&id)
                .ok_or_else(|| ApiError::e500(format!("no such token '{id}' for user '{u}'")))?;
            let full = format!("{u}!{id}");
            st.acls.retain(|a| a.ugid != full);
            Ok(Value::Null.into())
        }),
        ("GET", "/cluster/options") => Ok(json!({"keyboard": "en-us", "mac_prefix": "BC:24:11",
            "console": "html5", "tag-style": {}, "next-id": {"lower": "100", "upper": "1000000"}}).into()),
        ("GET", "/cluster/replication" | "/nodes/{node}/lxc") => {
            Ok(json!([]).into())
        }
        ("GET", "/nodes/{node}/time") => {
            let t = now().saturating_add_signed(inner.cfg.clock_offset_secs);
            Ok(json!({"time": t, "localtime": t, "timezone": "Etc/UTC"}).into())
        }
        ("GET", "/nodes/{node}/hosts") => inner.with_state(|st| {
            let n = st.nodes.get(&r.node()).ok_or_else(|| ApiError::e500("no such node"))?;
            let data = format!(
                "127.0.0.1 localhost.localdomain localhost\n{} {}.lan {}\n\n::1     ip6-localhost ip6-loopback\n",
                n.ip, n.name, n.name
            );
            Ok(json!({"digest": crate::util::sha1_hex(&data), "data": data}).into())
        }),
        _ => Err(missing(r)),
    }
}

fn nodes(inner: &Inner) -> Value {
    let fp = inner.fingerprint.clone();
    inner.with_state(|st| {
        let t = now();
        st.nodes
            .values()
            .map(|n| {
                let mem: u64 = st
                    .vms
                    .values()
                    .filter(|v| v.node == n.name && v.running)
                    .map(|v| vm_maxmem(v.conf.get("memory")))
                    .sum::<u64>()
                    + (2 << 30);
                if n.online {
                    json!({"node": n.name, "status": "online", "cpu": 0.0312, "maxcpu": n.maxcpu,
                           "mem": mem.min(n.maxmem), "maxmem": n.maxmem, "disk": 9_123_456_000u64,
                           "maxdisk": 100_861_726_720u64, "uptime": t.saturating_sub(n.boot_time),
                           "level": "", "id": format!("node/{}", n.name), "type": "node",
                           "ssl_fingerprint": fp})
                } else {
                    json!({"node": n.name, "status": "offline", "id": format!("node/{}", n.name),
                           "type": "node", "level": "", "ssl_fingerprint": fp})
                }
            })
            .collect()
    })
}

/// `memory` config value (`[current=]N`) in bytes.
pub fn vm_maxmem(m: Option<&String>) -> u64 {
    m.map(|s| s.trim_start_matches("current="))
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(512)
        << 20
}

fn node_status(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    inner.with_state(|st| {
        let n = st.nodes.get(&node).ok_or_else(|| ApiError::e500(format!("no such node '{node}'")))?;
        let t = now();
        Ok(json!({
            "uptime": t.saturating_sub(n.boot_time),
            "cpu": 0.0312, "wait": 0.0004, "idle": 0,
            "loadavg": ["0.21", "0.18", "0.15"],
            "cpuinfo": {"model": "Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz", "cpus": n.maxcpu,
                        "cores": n.maxcpu, "sockets": 1, "mhz": "2100.000", "hvm": "1",
                        "flags": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr vmx aes", "user_hz": 100},
            "memory": {"total": n.maxmem, "used": 3_221_225_472u64, "free": n.maxmem - 3_221_225_472u64,
                       "available": n.maxmem - 3_221_225_472u64},
            "swap": {"total": 8_589_930_496u64, "used": 0, "free": 8_589_930_496u64},
            "rootfs": {"total": 100_861_726_720u64, "used": 9_123_456_000u64,
                       "avail": 86_556_880_896u64, "free": 91_738_270_720u64},
            "ksm": {"shared": 0},
            "kversion": "Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-11-05T10:18Z) x86_64",
            "current-kernel": {"sysname": "Linux", "release": "6.17.2-1-pve", "machine": "x86_64",
                               "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-11-05T10:18Z)"},
            "boot-info": {"mode": "efi", "secureboot": 0},
            "pveversion": "pve-manager/9.1.1/42ab8d4c6e9f1a07",
        })
        .into())
    })
}

/// The certificates actually served: PVE lists `pve-root-ca.pem` and the node's
/// `pve-ssl.pem` (and `pveproxy-ssl.pem` when a custom one is installed).
fn cert_info(inner: &Inner, _r: &Req) -> Value {
    Value::Array(inner.cert_info.clone())
}

fn resources(inner: &Inner, r: &Req) -> Value {
    let filter = r.str("type");
    let lag = inner.cfg.time_scale * 10.0;
    let fp = filter.as_deref();
    inner.with_state(|st| {
        let mut out = Vec::new();
        let t = now();
        if fp.is_none() || fp == Some("vm") {
            for vm in st.vms.values() {
                if !auth::has(st, &r.who, &format!("/vms/{}", vm.vmid), "VM.Audit") {
                    continue;
                }
                let id = format!("qemu/{}", vm.vmid);
                if now_f() - vm.created_at < lag {
                    // pvestatd has not seen the new guest yet (RRD lag), but `lock` and
                    // `tags` come from the config (the cluster's vmlist), at once.
                    let mut e = json!({"id": id, "vmid": vm.vmid, "node": vm.node, "type": "qemu", "status": "unknown"});
                    if let Some(tags) = vm.conf.get("tags") {
                        e["tags"] = json!(tags);
                    }
                    if let Some(l) = vm.conf.get("lock") {
                        e["lock"] = json!(l);
                    }
                    out.push(e);
                    continue;
                }
                let maxmem = vm_maxmem(vm.conf.get("memory"));
                let maxdisk: u64 = crate::api::qemu::disk_sizes(&vm.conf);
                let running = vm.stats_view_running(lag);
                let mut e = json!({
                    "id": id, "vmid": vm.vmid, "node": vm.node, "type": "qemu",
                    "name": vm.conf.get("name").cloned().unwrap_or_else(|| format!("VM {}", vm.vmid)),
                    "status": if running { "running" } else { "stopped" },
                    "template": if crate::util::truthy(vm.conf.get("template")) { 1 } else { 0 },
                    "maxcpu": vm.conf.get("cores").and_then(|c| c.parse::<u64>().ok()).unwrap_or(1)
                        * vm.conf.get("sockets").and_then(|c| c.parse::<u64>().ok()).unwrap_or(1),
                    "maxmem": maxmem, "maxdisk": maxdisk, "disk": 0,
                    "cpu": if running { 0.0123 } else { 0.0 },
                    "mem": if running { maxmem / 3 } else { 0 },
                    "memhost": if running { maxmem / 3 } else { 0 },
                    "uptime": if running { t.saturating_sub(vm.started_at) } else { 0 },
                    "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
                });
                if let Some(tags) = vm.conf.get("tags") {
                    e["tags"] = json!(tags);
                }
                if let Some(l) = vm.conf.get("lock") {
                    e["lock"] = json!(l);
                }
                out.push(e);
            }
        }
        if fp.is_none() || fp == Some("node") {
            for n in st.nodes.values() {
                if !auth::has(st, &r.who, &format!("/nodes/{}", n.name), "Sys.Audit") {
                    continue;
                }
                let mut e = json!({"id": format!("node/{}", n.name), "node": n.name, "type": "node",
                    "status": if n.online { "online" } else { "offline" }, "level": "", "cgroup-mode": 2});
                if n.online {
                    e["maxcpu"] = json!(n.maxcpu);
                    e["maxmem"] = json!(n.maxmem);
                    e["mem"] = json!(3_221_225_472u64);
                    e["cpu"] = json!(0.0312);
                    e["uptime"] = json!(t.saturating_sub(n.boot_time));
                    e["maxdisk"] = json!(100_861_726_720u64);
                    e["disk"] = json!(9_123_456_000u64);
                }
                out.push(e);
            }
        }
        if fp.is_none() || fp == Some("storage") {
            for n in st.nodes.values() {
                for (id, cfg) in &st.storages {
                    if !crate::api::storage::storage_on_node(cfg, &n.name) {
                        continue;
                    }
                    if !auth::has(st, &r.who, &format!("/storage/{id}"), "Datastore.Audit")
                        && !auth::has(st, &r.who, &format!("/storage/{id}"), "Datastore.AllocateSpace")
                    {
                        continue;
                    }
                    let (total, used) = crate::api::storage::usage(st, &n.name, id, cfg);
                    out.push(json!({
                        "id": format!("storage/{}/{id}", n.name), "storage": id, "node": n.name,
                        "type": "storage", "status": "available",
                        "plugintype": cfg.get("type").cloned().unwrap_or(Value::Null),
                        "content": cfg.get("content").cloned().unwrap_or(json!("")),
                        "shared": 0, "disk": used, "maxdisk": total,
                    }));
                }
            }
        }
        Value::Array(out)
    })
}

fn cluster_status(inner: &Inner) -> Value {
    inner.with_state(|st| {
        let mut out = Vec::new();
        if let Some(name) = &st.cluster_name {
            out.push(json!({"type": "cluster", "id": "cluster", "name": name,
                "nodes": st.nodes.len(), "quorate": 1, "version": st.nodes.len() + 2}));
        }
        for (i, n) in st.nodes.values().enumerate() {
            out.push(json!({"type": "node", "id": format!("node/{}", n.name), "name": n.name,
                "ip": n.ip, "online": if n.online { 1 } else { 0 }, "local": if i == 0 { 1 } else { 0 },
                "nodeid": if st.cluster_name.is_some() { i + 1 } else { 0 }, "level": ""}));
        }
        Value::Array(out)
    })
}

fn nextid(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    inner.with_state(|st| {
        if let Some(v) = r.str("vmid") {
            let id: u32 = v.parse().unwrap_or(0);
            if st.vms.contains_key(&id) {
                return Err(ApiError::param("vmid", format!("VM {id} already exists")));
            }
            return Ok(json!(id.to_string()).into());
        }
        let mut id = 100u32;
        while st.vms.contains_key(&id) {
            id += 1;
        }
        // A numeric string: PVE returns numbers or numeric strings depending on the path,
        // so a client that only accepts one of them is caught here.
        Ok(json!(id.to_string()).into())
    })
}

pub fn task_entry(t: &Task) -> Value {
    let mut e = json!({"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart,
        "starttime": t.starttime, "type": t.r#type, "id": t.id, "user": t.user});
    if let Some(end) = t.endtime {
        e["endtime"] = json!(end);
    }
    if let Some(s) = &t.exitstatus {
        e["status"] = json!(s);
    }
    e
}

fn visible_task(st: &State, who: &AuthId, t: &Value) -> bool {
    let node = t.get("node").and_then(Value::as_str).unwrap_or("");
    let user = t.get("user").and_then(Value::as_str).unwrap_or("");
    user == who.full()
        || user.starts_with(&format!("{}!", who.user))
        || user == who.user
        || auth::has(st, who, &format!("/nodes/{node}"), "Sys.Audit")
}

fn node_tasks(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let start = r.i64("start").unwrap_or(0).max(0) as usize;
    let limit = r.i64("limit").unwrap_or(50).max(0) as usize;
    let source = r.str("source").unwrap_or_else(|| "archive".into());
    let errors_only = r.flag("errors");
    let (list, total) = inner.with_state(|st| {
        let all: Vec<Value> = st
            .tasks
            .iter()
            .rev()
            .filter(|t| t.node == node)
            .filter(|t| match source.as_str() {
                "active" => t.running,
                "all" => true,
                _ => !t.running,
            })
            .filter(|t| {
                !errors_only
                    || t.exitstatus
                        .as_deref()
                        .is_some_and(|s| s != "OK" && !s.starts_with("WARNINGS"))
            })
            .filter(|t| r.str("typefilter").is_none_or(|f| t.r#type == f))
            .filter(|t| r.str("userfilter").is_none_or(|f| t.user.contains(&f)))
            .filter(|t| r.str("vmid").is_none_or(|v| t.id == v))
            .filter(|t| r.i64("since").is_none_or(|s| t.starttime as i64 >= s))
            .filter(|t| r.i64("until").is_none_or(|s| t.starttime as i64 <= s))
            .map(task_entry)
            .filter(|t| visible_task(st, &r.who, t))
            .collect();
        let total = all.len();
        let page: Vec<Value> = all
            .into_iter()
            .skip(start)
            .take(if limit == 0 { usize::MAX } else { limit })
            .collect();
        (page, total)
    });
    Ok(Reply {
        data: Value::Array(list),
        extra: vec![("total".into(), json!(total))],
    })
}

fn find_task(inner: &Inner, r: &Req) -> Result<Task, ApiError> {
    let upid = r.s("upid");
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$")
            .unwrap_or_else(|_| crate::schema::never_regex())
    });
    if !re.is_match(&upid) {
        return Err(ApiError::param("upid", "unable to parse worker upid"));
    }
    inner
        .with_state(|st| st.tasks.iter().find(|t| t.upid == upid).cloned())
        .ok_or_else(|| ApiError::param("upid", "no such task"))
}

fn task_status(t: &Task) -> Value {
    let (user, token) = match t.user.split_once('!') {
        Some((u, tk)) => (u.to_string(), Some(tk.to_string())),
        None => (t.user.clone(), None),
    };
    let mut v = json!({"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart,
        "starttime": t.starttime, "type": t.r#type, "id": t.id, "user": user,
        "status": if t.running { "running" } else { "stopped" }});
    if let Some(tk) = token {
        v["tokenid"] = json!(tk);
    }
    if let Some(s) = &t.exitstatus {
        v["exitstatus"] = json!(s);
    }
    v
}

fn task_log(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    let t = find_task(inner, r)?;
    super::require_task(inner, r, "Sys.Audit")?;
    let start = r.i64("start").unwrap_or(0).max(0) as usize;
    let limit = r.i64("limit").unwrap_or(50).max(0) as usize;
    let mut lines = t.log.clone();
    if lines.is_empty() {
        lines.push("no content".into());
    }
    let total = lines.len();
    let data: Vec<Value> = lines
        .iter()
        .enumerate()
        .skip(start)
        .take(if limit == 0 { usize::MAX } else { limit })
        .map(|(i, l)| json!({"n": i + 1, "t": l}))
        .collect();
    Ok(Reply {
        data: Value::Array(data),
        extra: vec![("total".into(), json!(total))],
    })
}

fn ticket(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    let mut user = r.s("username");
    if let Some(realm) = r.str("realm")
        && !user.contains('@')
    {
        user = format!("{user}@{realm}");
    }
    let pw = r.s("password");
    let t = now();
    let ok = inner.with_state(|st| {
        st.users
            .get(&user)
            .is_some_and(|u| u.enable && u.password == pw)
    }) || auth::verify_ticket(&inner.ticket_key, &pw, t).as_deref() == Some(user.as_str());
    if !ok {
        return Err(ApiError::new(401, "authentication failure"));
    }
    let who = AuthId {
        user: user.clone(),
        token: None,
    };
    let cap = inner.with_state(|st| {
        let mut cap = Map::new();
        for (section, path) in [
            ("vms", "/vms"),
            ("storage", "/storage"),
            ("nodes", "/nodes"),
            ("access", "/access"),
            ("dc", "/"),
            ("sdn", "/sdn"),
            ("mapping", "/mapping"),
        ] {
            let p: Map<String, Value> = auth::privs(st, &who, path)
                .into_iter()
                .map(|p| (p, json!(1)))
                .collect();
            cap.insert(section.into(), Value::Object(p));
        }
        cap
    });
    let mut data = json!({
        "username": user,
        "ticket": auth::make_ticket(&inner.ticket_key, &user, t),
        "CSRFPreventionToken": auth::make_csrf(&inner.ticket_key, &user, t),
        "cap": cap,
    });
    if let Some(c) = inner.with_state(|st| st.cluster_name.clone()) {
        data["clustername"] = json!(c);
    }
    Ok(data.into())
}

fn permissions(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    let target = match r.str("userid") {
        None => r.who.clone(),
        Some(u) => {
            let (user, token) = match u.split_once('!') {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => (u.clone(), None),
            };
            let own = user == r.who.user;
            let allowed =
                own || inner.with_state(|st| auth::has(st, &r.who, "/access", "Sys.Audit"));
            if !allowed {
                return Err(ApiError::e403(
                    "Permission check failed (/access, Sys.Audit)",
                ));
            }
            AuthId { user, token }
        }
    };
    inner.with_state(|st| {
        let mut paths: Vec<String> = match r.str("path") {
            Some(p) => vec![p],
            None => {
                let mut p: Vec<String> = vec![
                    "/".into(),
                    "/access".into(),
                    "/nodes".into(),
                    "/storage".into(),
                    "/vms".into(),
                    "/sdn".into(),
                    "/pool".into(),
                    "/mapping".into(),
                ];
                p.extend(st.acls.iter().map(|a| a.path.clone()));
                p.extend(st.nodes.keys().map(|n| format!("/nodes/{n}")));
                p.extend(st.storages.keys().map(|s| format!("/storage/{s}")));
                p.extend(st.vms.keys().map(|v| format!("/vms/{v}")));
                p
            }
        };
        paths.sort();
        paths.dedup();
        let mut out = Map::new();
        for p in paths {
            // `{"Priv": 1|0}`: 1 when it propagates to the path's children.
            let privs = auth::privs_propagate(st, &target, &p);
            if !privs.is_empty() || r.str("path").is_some() {
                out.insert(
                    p,
                    Value::Object(
                        privs
                            .into_iter()
                            .map(|(x, prop)| (x, json!(if prop { 1 } else { 0 })))
                            .collect(),
                    ),
                );
            }
        }
        Ok(Value::Object(out).into())
    })
}

fn token_info(id: &str, t: &crate::state::Token) -> Value {
    let mut v =
        json!({"tokenid": id, "privsep": if t.privsep { 1 } else { 0 }, "expire": t.expire});
    if let Some(c) = &t.comment {
        v["comment"] = json!(c);
    }
    v
}

/// `POST /access/users/{userid}/token/{tokenid}`: the secret (a UUID) is shown once.
fn token_create(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    let (u, id) = (r.s("userid"), r.s("tokenid"));
    let secret = {
        let bytes: [u8; 16] = match inner.rng.lock() {
            Ok(mut g) => rand::Rng::random(&mut *g),
            Err(_) => [7; 16],
        };
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    };
    inner.with_state(|st| {
        let user = st
            .users
            .get_mut(&u)
            .ok_or_else(|| ApiError::e500(format!("no such user ('{u}')")))?;
        if user.tokens.contains_key(&id) {
            return Err(ApiError::e500("Token already exists."));
        }
        let t = crate::state::Token {
            secret: secret.clone(),
            privsep: r.str("privsep").is_none_or(|p| p == "1"),
            comment: r.str("comment"),
            expire: r.i64("expire").unwrap_or(0).max(0) as u64,
        };
        let info = token_info(&id, &t);
        user.tokens.insert(id.clone(), t);
        Ok(json!({"full-tokenid": format!("{u}!{id}"), "info": info, "value": secret}).into())
    })
}
