//! Node and cluster administration reads a homelab tool touches: DNS, the node
//! config, APT, syslog, disk inventories (LVM, LVM-thin, directories), the corosync
//! view of a standalone node or the simulated cluster, HA and SDN zones.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{Obj, State};
use crate::tasks::{self, Spec};
use crate::util::sha1_hex;

/// Handles the routes of this module; `None` for anything else.
pub fn dispatch(inner: &Arc<Inner>, r: &Req) -> Option<Result<Reply, ApiError>> {
    let t = r.template.as_str();
    Some(match (r.method.as_str(), t) {
        ("GET", "/nodes/{node}/dns") => inner.with_state(|st| Ok(dns(st, &r.node()).into())),
        ("PUT", "/nodes/{node}/dns") => inner.with_state(|st| {
            let mut d = Obj::new();
            d.insert("search".into(), json!(r.s("search")));
            for k in ["dns1", "dns2", "dns3"] {
                if let Some(v) = r.str(k) {
                    d.insert(k.into(), json!(v));
                }
            }
            st.node_files.insert(format!("{}/dns", r.node()), d);
            Ok(Value::Null.into())
        }),
        ("GET", "/nodes/{node}/config") => inner.with_state(|st| node_config(st, r)),
        ("PUT", "/nodes/{node}/config") => inner.with_state(|st| node_config_set(st, r)),
        ("GET", "/nodes/{node}/apt") => Ok(json!([
            {"id": "changelog"}, {"id": "repositories"}, {"id": "update"}, {"id": "versions"}
        ])
        .into()),
        ("GET", "/nodes/{node}/apt/update") => Ok(json!([]).into()),
        ("POST", "/nodes/{node}/apt/update") => Ok(apt_update(inner, r).into()),
        ("GET", "/nodes/{node}/apt/repositories") => Ok(apt_repositories().into()),
        ("GET", "/nodes/{node}/apt/versions") => Ok(apt_versions().into()),
        ("GET", "/nodes/{node}/syslog") => inner.with_state(|st| Ok(syslog(st, r))),
        ("GET", "/nodes/{node}/disks") => Ok(json!([
            {"name": "directory"}, {"name": "initgpt"}, {"name": "list"}, {"name": "lvm"},
            {"name": "lvmthin"}, {"name": "smart"}, {"name": "wipedisk"}, {"name": "zfs"}
        ])
        .into()),
        ("GET", "/nodes/{node}/disks/lvm") => inner.with_state(|st| Ok(lvm(st, r).into())),
        ("GET", "/nodes/{node}/disks/lvmthin") => {
            inner.with_state(|st| Ok(lvmthin(st, r).into()))
        }
        // No filesystem was mounted through the disk management (systemd mount units).
        ("GET", "/nodes/{node}/disks/directory") => Ok(json!([]).into()),
        ("GET", "/cluster/config") => Ok(json!([
            {"name": "nodes"}, {"name": "totem"}, {"name": "join"}, {"name": "qdevice"},
            {"name": "apiversion"}
        ])
        .into()),
        ("GET", "/cluster/config/apiversion") => Ok(json!(1).into()),
        ("GET", "/cluster/config/nodes") => inner.with_state(|st| Ok(corosync_nodes(st).into())),
        ("GET", "/cluster/config/totem") => inner.with_state(|st| Ok(totem(st).into())),
        ("GET", "/cluster/config/qdevice") => Ok(json!({}).into()),
        ("GET", "/cluster/config/join") => join_info(inner, r),
        ("GET", "/cluster/ha") => Ok(json!([
            {"id": "status"}, {"id": "resources"}, {"id": "groups"}, {"id": "rules"}
        ])
        .into()),
        ("GET", "/cluster/ha/status") => {
            Ok(json!([{"name": "current"}, {"name": "manager_status"}]).into())
        }
        ("GET", "/cluster/ha/status/current") => inner.with_state(|st| Ok(ha_current(st).into())),
        ("GET", "/cluster/ha/status/manager_status") => inner.with_state(|st| {
            Ok(json!({"manager_status": {}, "quorum": {"node": first_node(st), "quorate": "1"}, "lrm_status": {}}).into())
        }),
        (_, p) if p.starts_with("/cluster/ha/resources") => inner.with_state(|st| ha_resources(st, r)),
        (_, p) if p.starts_with("/cluster/ha/groups") => {
            inner.with_state(|st| ha_section(st, r, "group", "ha group"))
        }
        (_, p) if p.starts_with("/cluster/ha/rules") => {
            inner.with_state(|st| ha_section(st, r, "rule", "ha rule"))
        }
        ("GET", "/cluster/sdn") => Ok(json!([
            {"id": "vnets"}, {"id": "zones"}, {"id": "controllers"}, {"id": "ipams"},
            {"id": "dns"}, {"id": "fabrics"}
        ])
        .into()),
        // No SDN object has been defined on the simulated cluster.
        ("GET", "/cluster/sdn/zones" | "/cluster/sdn/vnets") => Ok(json!([]).into()),
        _ => return None,
    })
}

fn first_node(st: &State) -> String {
    st.nodes.keys().next().cloned().unwrap_or_default()
}

/// `/etc/resolv.conf` as INotify reads it.
fn dns(st: &State, node: &str) -> Value {
    match st.node_files.get(&format!("{node}/dns")) {
        Some(d) => Value::Object(d.clone().into_iter().collect()),
        None => json!({"search": "lan", "dns1": "192.168.1.1"}),
    }
}

/// `/etc/pve/nodes/<node>/config`: the properties set, plus the file's digest.
fn node_config(st: &State, r: &Req) -> Result<Reply, ApiError> {
    let cfg = st
        .node_files
        .get(&format!("{}/config", r.node()))
        .cloned()
        .unwrap_or_default();
    let digest = sha1_hex(&serde_json::to_string(&cfg).unwrap_or_default());
    let mut m: Map<String, Value> = cfg.into_iter().collect();
    if let Some(p) = r.str("property") {
        m.retain(|k, _| *k == p);
    }
    m.insert("digest".into(), json!(digest));
    Ok(Value::Object(m).into())
}

fn node_config_set(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let key = format!("{}/config", r.node());
    let cfg = st.node_files.entry(key).or_default();
    let digest = sha1_hex(&serde_json::to_string(&*cfg).unwrap_or_default());
    if let Some(d) = r.str("digest")
        && d != digest
    {
        return Err(ApiError::e500(
            "detected modified configuration - file changed by other user? Try again.",
        ));
    }
    if let Some(del) = r.str("delete") {
        for k in crate::formats::split_list(&del) {
            cfg.shift_remove(&k);
        }
    }
    for (k, v) in &r.params {
        if ["node", "digest", "delete"].contains(&k.as_str()) {
            continue;
        }
        if let Some(s) = v.as_str() {
            cfg.insert(k.clone(), json!(s));
        }
    }
    Ok(Value::Null.into())
}

/// `POST …/apt/update`: an `aptupdate` task that refreshes the package lists.
fn apt_update(inner: &Arc<Inner>, r: &Req) -> Value {
    let upid = tasks::spawn(
        inner,
        Spec {
            node: r.node(),
            kind: "aptupdate",
            id: String::new(),
            user: r.who.full(),
            secs: 3.0,
            locks: vec![],
            fail_text: Some("command 'apt-get update' failed: exit code 100".into()),
            config_lock: None,
        },
        Box::new(|_| {
            Ok(vec![
                "starting apt-get update".into(),
                "Hit:1 http://deb.debian.org/debian trixie InRelease".into(),
                "Hit:2 http://deb.debian.org/debian trixie-updates InRelease".into(),
                "Hit:3 http://security.debian.org/debian-security trixie-security InRelease".into(),
                "Hit:4 http://download.proxmox.com/debian/pve trixie InRelease".into(),
                "Reading package lists...".into(),
            ])
        }),
    );
    json!(upid)
}

/// The repositories of a fresh PVE 9 node: Debian and the no-subscription repository
/// in deb822 files (the enterprise one disabled).
fn apt_repositories() -> Value {
    let file = |path: &str, uris: &str, suites: &[&str], comps: &str, enabled: bool| {
        json!({"path": path, "file-type": "sources", "digest": <sha2::Sha256 as sha2::Digest>::digest(path.as_bytes()).to_vec(),
            "repositories": [{"Types": ["deb"], "URIs": [uris], "Suites": suites, "Components": [comps],
                "Enabled": if enabled { 1 } else { 0 }, "FileType": "sources"}]})
    };
    json!({
        "digest": sha1_hex("sources"),
        "files": [
            file("/etc/apt/sources.list.d/debian.sources", "http://deb.debian.org/debian", &["trixie", "trixie-updates"], "main", true),
            file("/etc/apt/sources.list.d/pve-enterprise.sources", "https://enterprise.proxmox.com/debian/pve", &["trixie"], "pve-enterprise", false),
            file("/etc/apt/sources.list.d/proxmox.sources", "http://download.proxmox.com/debian/pve", &["trixie"], "pve-no-subscription", true),
        ],
        "errors": [],
        "infos": [],
        "standard-repos": [
            {"handle": "enterprise", "name": "Enterprise", "status": 0},
            {"handle": "no-subscription", "name": "No-Subscription", "status": 1},
            {"handle": "test", "name": "Test"},
        ],
    })
}

fn apt_versions() -> Value {
    let p = |name: &str, v: &str, title: &str| {
        json!({"Package": name, "Version": v, "OldVersion": v, "CurrentState": "Installed",
               "Title": title, "Origin": "Proxmox", "Priority": "optional", "Section": "admin", "Arch": "amd64"})
    };
    json!([
        p("proxmox-ve", "9.1.0", "Proxmox Virtual Environment"),
        p(
            "pve-manager",
            "9.1.1",
            "Proxmox Virtual Environment Management Tools"
        ),
        p("qemu-server", "9.1.0", "Qemu Server Tools"),
        p(
            "pve-qemu-kvm",
            "10.1.2-4",
            "Full virtualization on x86 hardware"
        ),
        p("pve-firewall", "6.0.4", "Proxmox VE Firewall"),
        p(
            "libpve-storage-perl",
            "9.1.0",
            "Proxmox VE storage management library"
        ),
    ])
}

/// The journal as `dump_journal` returns it: lines `{n, t}` with `total`; the
/// simulated node logs its boot and every task start and end.
fn syslog(st: &State, r: &Req) -> Reply {
    let node = r.node();
    let host = node.clone();
    let stamp = |t: u64| {
        let d = time::OffsetDateTime::from_unix_timestamp(t as i64)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}+0000",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        )
    };
    let boot = st.nodes.get(&node).map_or(0, |n| n.boot_time);
    let mut lines: Vec<(u64, String, String)> = vec![
        (boot, "kernel".into(), "Linux version 6.17.2-1-pve".into()),
        (
            boot + 5,
            "systemd[1]".into(),
            "Started pvedaemon.service - PVE API Daemon.".into(),
        ),
        (
            boot + 6,
            "systemd[1]".into(),
            "Started pveproxy.service - PVE API Proxy Server.".into(),
        ),
    ];
    for t in st.tasks.iter().filter(|t| t.node == node) {
        lines.push((
            t.starttime,
            format!("pvedaemon[{}]", t.pid),
            format!("<{}> starting task {}", t.user, t.upid),
        ));
        if let (Some(end), Some(s)) = (t.endtime, &t.exitstatus) {
            let status = if s == "OK" {
                "OK".to_string()
            } else {
                s.clone()
            };
            lines.push((
                end,
                format!("pvedaemon[{}]", t.pid),
                format!("<{}> end task {} {status}", t.user, t.upid),
            ));
        }
    }
    if let Some(svc) = r.str("service") {
        let svc = if svc == "sshd" {
            "ssh".to_string()
        } else {
            svc
        };
        lines.retain(|(_, src, _)| src.starts_with(&svc));
    }
    lines.sort_by_key(|l| l.0);
    let total = lines.len();
    let start = r.i64("start").unwrap_or(0).max(0) as usize;
    let limit = r.i64("limit").unwrap_or(50).max(0) as usize;
    let data: Vec<Value> = lines
        .iter()
        .enumerate()
        .skip(start)
        .take(if limit == 0 { usize::MAX } else { limit })
        .map(|(i, (t, src, msg))| json!({"n": i + 1, "t": format!("{} {host} {src}: {msg}", stamp(*t))}))
        .collect();
    Reply {
        data: Value::Array(data),
        extra: vec![("total".into(), json!(total))],
    }
}

/// `GET …/disks/lvm`: volume groups with their physical volumes (the installer's
/// `pve` on the SSD's third partition).
fn lvm(st: &State, r: &Req) -> Value {
    let Some(n) = st.nodes.get(&r.node()) else {
        return json!({"leaf": 0, "children": []});
    };
    let children: Vec<Value> = n
        .disks
        .iter()
        .filter(|d| d.used.as_deref() == Some("LVM"))
        .map(|d| {
            let size = d.size.saturating_sub(1 << 30);
            json!({"leaf": 0, "name": "pve", "size": size, "free": 16u64 << 30,
                   "children": [{"leaf": 1, "name": format!("{}3", d.devpath), "size": size, "free": 16u64 << 30}]})
        })
        .collect();
    json!({"leaf": 0, "children": children})
}

/// `GET …/disks/lvmthin`: the thin pools of LVM-thin storages on this node.
fn lvmthin(st: &State, r: &Req) -> Value {
    let node = r.node();
    let mut out = vec![];
    for (id, cfg) in &st.storages {
        if cfg.get("type").and_then(Value::as_str) != Some("lvmthin")
            || !super::storage::storage_on_node(cfg, &node)
        {
            continue;
        }
        let (total, used) = super::storage::usage(st, &node, id, cfg);
        out.push(json!({
            "lv": cfg.get("thinpool"), "vg": cfg.get("vgname"), "lv_size": total, "used": used,
            "metadata_size": 3_825_205_248u64, "metadata_used": 1_048_576 + used / 4096,
        }));
    }
    Value::Array(out)
}

fn corosync_nodes(st: &State) -> Value {
    if st.cluster_name.is_none() {
        return json!([]);
    }
    Value::Array(
        st.nodes
            .values()
            .enumerate()
            .map(|(i, n)| {
                json!({"node": n.name, "name": n.name, "nodeid": (i + 1).to_string(),
                       "quorum_votes": "1", "ring0_addr": n.ip})
            })
            .collect(),
    )
}

/// `GET /cluster/config/totem`: `corosync.conf`'s totem section; a node outside a
/// cluster has no corosync.conf and answers null.
fn totem(st: &State) -> Value {
    match &st.cluster_name {
        None => Value::Null,
        Some(name) => json!({
            "cluster_name": name, "config_version": (st.nodes.len() + 2).to_string(),
            "interface": {"0": {"linknumber": "0"}}, "ip_version": "ipv4-6",
            "link_mode": "passive", "secauth": "on", "version": "2",
        }),
    }
}

/// `GET /cluster/config/join`: 424 on a standalone node (pve-cluster raises
/// HTTP_FAILED_DEPENDENCY), else the node list, totem section and digest.
fn join_info(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    inner.with_state(|st| {
        if st.cluster_name.is_none() {
            return Err(ApiError::new(
                424,
                "node is not in a cluster, no join info available!",
            ));
        }
        let want = r.str("node").unwrap_or_else(|| first_node(st));
        if !st.nodes.contains_key(&want) {
            return Err(ApiError::e500(format!("unknown node '{want}'")));
        }
        let nodelist: Vec<Value> = st
            .nodes
            .values()
            .enumerate()
            .map(|(i, n)| {
                json!({"name": n.name, "nodeid": (i + 1).to_string(), "quorum_votes": "1",
                       "ring0_addr": n.ip, "pve_addr": n.ip, "pve_fp": inner.fingerprint})
            })
            .collect();
        let totem = totem(st);
        Ok(
            json!({"nodelist": nodelist, "preferred_node": want, "totem": totem,
                  "config_digest": sha1_hex(&totem.to_string())})
            .into(),
        )
    })
}

fn ha_current(st: &State) -> Value {
    let node = first_node(st);
    let mut out = vec![json!({"id": "quorum", "type": "quorum", "node": node,
        "status": "OK", "quorate": 1})];
    for (sid, res) in &st.ha_resources {
        let state = res
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("started");
        let vm_node = sid
            .strip_prefix("vm:")
            .and_then(|v| v.parse::<u32>().ok())
            .and_then(|v| st.vms.get(&v))
            .map_or(node.clone(), |vm| vm.node.clone());
        out.push(json!({"id": format!("service:{sid}"), "type": "service", "sid": sid,
            "node": vm_node, "state": state, "request_state": state, "status": format!("{state} ({vm_node}, queued)"),
            "crm_state": "queued", "max_restart": 1, "max_relocate": 1}));
    }
    Value::Array(out)
}

/// `/cluster/ha/resources`: `vm:<id>` resources of existing guests.
fn ha_resources(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let sid_of = |s: &str| {
        if s.contains(':') {
            s.to_string()
        } else {
            format!("vm:{s}")
        }
    };
    let digest = sha1_hex(&serde_json::to_string(&st.ha_resources).unwrap_or_default());
    let entry = |sid: &str, o: &Obj| {
        let mut m: Map<String, Value> = o.clone().into_iter().collect();
        m.insert("sid".into(), json!(sid));
        m.insert("type".into(), json!(sid.split(':').next().unwrap_or("vm")));
        m.insert("digest".into(), json!(digest));
        m.entry("state").or_insert(json!("started"));
        Value::Object(m)
    };
    match (r.method.as_str(), r.template.as_str()) {
        ("GET", "/cluster/ha/resources") => Ok(Value::Array(
            st.ha_resources
                .iter()
                .filter(|(s, _)| {
                    r.str("type")
                        .is_none_or(|t| s.starts_with(&format!("{t}:")))
                })
                .map(|(s, o)| entry(s, o))
                .collect(),
        )
        .into()),
        ("GET", _) => {
            let sid = sid_of(&r.s("sid"));
            let o = st
                .ha_resources
                .get(&sid)
                .ok_or_else(|| ApiError::e500(format!("no such resource '{sid}'")))?;
            Ok(entry(&sid, o).into())
        }
        ("POST", "/cluster/ha/resources") => {
            let sid = sid_of(&r.s("sid"));
            if st.ha_resources.contains_key(&sid) {
                return Err(ApiError::e500(format!(
                    "cfs-lock 'domain-ha' error: resource ID '{sid}' already defined"
                )));
            }
            let vmid: u32 = sid
                .strip_prefix("vm:")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if !st.vms.contains_key(&vmid) {
                return Err(ApiError::e500(format!("unable to find VM '{vmid}'")));
            }
            let mut o = Obj::new();
            for k in [
                "comment",
                "failback",
                "group",
                "max_relocate",
                "max_restart",
                "state",
            ] {
                if let Some(v) = r.str(k) {
                    o.insert(k.into(), json!(v));
                }
            }
            st.ha_resources.insert(sid, o);
            Ok(Value::Null.into())
        }
        ("PUT", _) => {
            let sid = sid_of(&r.s("sid"));
            if let Some(d) = r.str("digest")
                && d != digest
            {
                return Err(ApiError::e500(
                    "detected modified configuration - file changed by other user? Try again.",
                ));
            }
            let o = st
                .ha_resources
                .get_mut(&sid)
                .ok_or_else(|| ApiError::e500(format!("no such resource '{sid}'")))?;
            for k in crate::formats::split_list(&r.s("delete")) {
                o.shift_remove(&k);
            }
            for k in [
                "comment",
                "failback",
                "group",
                "max_relocate",
                "max_restart",
                "state",
            ] {
                if let Some(v) = r.str(k) {
                    o.insert(k.into(), json!(v));
                }
            }
            Ok(Value::Null.into())
        }
        ("DELETE", _) => {
            let sid = sid_of(&r.s("sid"));
            st.ha_resources
                .shift_remove(&sid)
                .ok_or_else(|| ApiError::e500(format!("no such resource '{sid}'")))?;
            Ok(Value::Null.into())
        }
        _ => Err(super::missing(r)),
    }
}

/// HA groups (deprecated in PVE 9) and rules: listed and read; the simulated cluster
/// has none until created.
fn ha_section(st: &mut State, r: &Req, key: &str, what: &str) -> Result<Reply, ApiError> {
    let map = if key == "group" {
        &mut st.ha_groups
    } else {
        &mut st.ha_rules
    };
    let id = r.s(key);
    match r.method.as_str() {
        "GET" if id.is_empty() => Ok(Value::Array(
            map.iter()
                .map(|(n, o)| {
                    let mut m: Map<String, Value> = o.clone().into_iter().collect();
                    m.insert(key.into(), json!(n));
                    Value::Object(m)
                })
                .collect(),
        )
        .into()),
        "GET" => {
            let o = map
                .get(&id)
                .ok_or_else(|| ApiError::e500(format!("no such {what} '{id}'")))?;
            let mut m: Map<String, Value> = o.clone().into_iter().collect();
            m.insert(key.into(), json!(id));
            Ok(Value::Object(m).into())
        }
        "POST" => {
            if map.contains_key(&id) {
                return Err(ApiError::e500(format!("{what} '{id}' already defined")));
            }
            let mut o = Obj::new();
            for (k, v) in &r.params {
                if k != key
                    && let Some(s) = v.as_str()
                {
                    o.insert(k.clone(), json!(s));
                }
            }
            map.insert(id, o);
            Ok(Value::Null.into())
        }
        "PUT" => {
            let o = map
                .get_mut(&id)
                .ok_or_else(|| ApiError::e500(format!("no such {what} '{id}'")))?;
            for k in crate::formats::split_list(&r.s("delete")) {
                o.shift_remove(&k);
            }
            for (k, v) in &r.params {
                if ![key, "delete", "digest"].contains(&k.as_str())
                    && let Some(s) = v.as_str()
                {
                    o.insert(k.clone(), json!(s));
                }
            }
            Ok(Value::Null.into())
        }
        "DELETE" => {
            map.shift_remove(&id)
                .ok_or_else(|| ApiError::e500(format!("no such {what} '{id}'")))?;
            Ok(Value::Null.into())
        }
        _ => Err(super::missing(r)),
    }
}
