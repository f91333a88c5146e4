//! Host network: edits go to a shadow `interfaces.new`; `PUT /network` applies it in a
//! `srvreload` task, `DELETE /network` drops it (behaviour.md §8).

use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Value, json};

use super::missing;
use crate::formats::split_list;
use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{Node, Obj};
use crate::tasks::{self, Spec};

type Ifaces = IndexMap<String, Obj>;

pub fn dispatch(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    match (r.method.as_str(), r.template.as_str()) {
        ("GET", "/nodes/{node}/network") => list(inner, r),
        ("GET", "/nodes/{node}/network/{iface}") => inner.with_state(|st| {
            let n = node(st, r)?;
            let view = view(n);
            let i = view
                .get(&r.s("iface"))
                .ok_or_else(|| ApiError::param("iface", "interface does not exist"))?;
            Ok(Value::Object(decorate(n, i).into_iter().collect()).into())
        }),
        ("POST", "/nodes/{node}/network") => edit(inner, r, true),
        ("PUT", "/nodes/{node}/network/{iface}") => edit(inner, r, false),
        ("DELETE", "/nodes/{node}/network/{iface}") => inner.with_state(|st| {
            let n = st
                .nodes
                .get_mut(&r.node())
                .ok_or_else(|| ApiError::e500("no such node"))?;
            let mut v = view(n);
            if v.shift_remove(&r.s("iface")).is_none() {
                return Err(ApiError::param("iface", "interface does not exist"));
            }
            n.network_pending = Some(v);
            Ok(Value::Null.into())
        }),
        ("PUT", "/nodes/{node}/network") => reload(inner, r),
        ("DELETE", "/nodes/{node}/network") => inner.with_state(|st| {
            let n = st
                .nodes
                .get_mut(&r.node())
                .ok_or_else(|| ApiError::e500("no such node"))?;
            n.network_pending = None;
            Ok(Value::Null.into())
        }),
        _ => Err(missing(r)),
    }
}

fn node<'a>(st: &'a crate::state::State, r: &Req) -> Result<&'a Node, ApiError> {
    st.nodes
        .get(&r.node())
        .ok_or_else(|| ApiError::e500(format!("no such node '{}'", r.node())))
}

/// The configuration a GET shows: the staged file when there is one.
fn view(n: &Node) -> Ifaces {
    n.network_pending
        .clone()
        .unwrap_or_else(|| n.network.clone())
}

/// Adds the runtime flags (`active`, `exists`) a GET reports.
fn decorate(n: &Node, i: &Obj) -> Obj {
    let mut o = i.clone();
    let name = i.get("iface").and_then(Value::as_str).unwrap_or("");
    let live = n.network.get(name);
    o.shift_remove("active");
    if live.is_some() && !n.network_down.contains(name) {
        o.insert("active".into(), json!(1));
    }
    if o.get("type").and_then(Value::as_str) == Some("eth") {
        o.insert("exists".into(), json!(1));
    }
    o
}

fn list(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    let filter = r.str("type");
    inner.with_state(|st| {
        let n = node(st, r)?;
        let v = view(n);
        let data: Vec<Value> = v
            .values()
            .filter(|i| {
                let t = i.get("type").and_then(Value::as_str).unwrap_or("");
                match filter.as_deref() {
                    None => true,
                    Some("any_bridge") | Some("any_local_bridge") => {
                        t == "bridge" || t == "OVSBridge"
                    }
                    Some(f) => f == t,
                }
            })
            .map(|i| Value::Object(decorate(n, i).into_iter().collect()))
            .collect();
        let mut extra = vec![];
        if let Some(p) = &n.network_pending {
            let d = diff(&render(&n.network), &render(p));
            if !d.is_empty() {
                extra.push(("changes".to_string(), json!(d)));
            }
        }
        Ok(Reply {
            data: Value::Array(data),
            extra,
        })
    })
}

/// `/etc/network/interfaces` text of a configuration.
pub fn render(ifs: &Ifaces) -> String {
    let mut out = String::from("auto lo\niface lo inet loopback\n");
    let s = |o: &Obj, k: &str| {
        o.get(k).and_then(|v| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    for (name, o) in ifs {
        out.push('\n');
        if o.get("autostart").is_some_and(|v| v == &json!(1)) {
            out.push_str(&format!("auto {name}\n"));
        }
        let method = s(o, "method").unwrap_or_else(|| "manual".into());
        out.push_str(&format!("iface {name} inet {method}\n"));
        if let Some(c) = s(o, "cidr") {
            out.push_str(&format!("\taddress {c}\n"));
        }
        if let Some(g) = s(o, "gateway") {
            out.push_str(&format!("\tgateway {g}\n"));
        }
        let ty = s(o, "type").unwrap_or_default();
        if ty == "bridge" {
            out.push_str(&format!(
                "\tbridge-ports {}\n",
                s(o, "bridge_ports").unwrap_or_else(|| "none".into())
            ));
            out.push_str(&format!(
                "\tbridge-stp {}\n",
                s(o, "bridge_stp").unwrap_or_else(|| "off".into())
            ));
            out.push_str(&format!(
                "\tbridge-fd {}\n",
                s(o, "bridge_fd").unwrap_or_else(|| "0".into())
            ));
            if o.get("bridge_vlan_aware").is_some_and(|v| v == &json!(1)) {
                out.push_str("\tbridge-vlan-aware yes\n");
                out.push_str(&format!(
                    "\tbridge-vids {}\n",
                    s(o, "bridge_vids").unwrap_or_else(|| "2-4094".into())
                ));
            }
        }
        if ty == "bond" {
            out.push_str(&format!(
                "\tbond-slaves {}\n",
                s(o, "slaves").unwrap_or_else(|| "none".into())
            ));
            out.push_str(&format!(
                "\tbond-mode {}\n",
                s(o, "bond_mode").unwrap_or_else(|| "balance-rr".into())
            ));
        }
        if let Some(m) = s(o, "mtu") {
            out.push_str(&format!("\tmtu {m}\n"));
        }
        if let Some(c) = s(o, "comments") {
            for l in c.lines() {
                out.push_str(&format!("#{l}\n"));
            }
        }
    }
    out.push_str("\nsource /etc/network/interfaces.d/*\n");
    out
}

/// A unified diff (one hunk) of two texts, like `diff -u`.
pub fn diff(a: &str, b: &str) -> String {
    let x: Vec<&str> = a.lines().collect();
    let y: Vec<&str> = b.lines().collect();
    if x == y {
        return String::new();
    }
    let (n, m) = (x.len(), y.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if x[i] == y[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = format!(
        "--- /etc/network/interfaces\n+++ /etc/network/interfaces.new\n@@ -1,{n} +1,{m} @@\n"
    );
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && x[i] == y[j] {
            out.push_str(&format!(" {}\n", x[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+{}\n", y[j]));
            j += 1;
        } else {
            out.push_str(&format!("-{}\n", x[i]));
            i += 1;
        }
    }
    out
}

fn mask_to_prefix(m: &str) -> Option<u32> {
    if let Ok(p) = m.parse::<u32>() {
        return (p <= 32).then_some(p);
    }
    m.parse::<std::net::Ipv4Addr>()
        .ok()
        .map(|ip| u32::from(ip).leading_ones())
}

const FIELDS: &[&str] = &[
    "autostart",
    "bridge_ports",
    "bridge_vlan_aware",
    "bridge_vids",
    "comments",
    "comments6",
    "mtu",
    "slaves",
    "bond_mode",
    "bond-primary",
    "bond_xmit_hash_policy",
    "vlan-id",
    "vlan-raw-device",
    "gateway",
    "gateway6",
    "ovs_bridge",
    "ovs_bonds",
    "ovs_options",
    "ovs_ports",
    "ovs_tag",
];

fn edit(inner: &Inner, r: &Req, create: bool) -> Result<Reply, ApiError> {
    let name = r.s("iface");
    inner.with_state(|st| {
        let n = st
            .nodes
            .get_mut(&r.node())
            .ok_or_else(|| ApiError::e500("no such node"))?;
        let mut v = view(n);
        if create && v.contains_key(&name) {
            return Err(ApiError::param("iface", "interface already exists"));
        }
        if !create && !v.contains_key(&name) {
            return Err(ApiError::param("iface", "interface does not exist"));
        }
        let ty = r.s("type");
        // Address forms must agree.
        let mut cidr = r.str("cidr");
        if let (Some(a), Some(m)) = (r.str("address"), r.str("netmask")) {
            let p =
                mask_to_prefix(&m).ok_or_else(|| ApiError::param("netmask", "invalid netmask"))?;
            let c2 = format!("{a}/{p}");
            if let Some(c) = &cidr {
                if c.split('/').next() != Some(a.as_str()) {
                    return Err(ApiError::param("address", "address conflicts with cidr"));
                }
                if c != &c2 {
                    return Err(ApiError::param("netmask", "netmask conflicts with cidr"));
                }
            }
            cidr = Some(c2);
        }
        if let Some(g) = r.str("gateway")
            && let Some((other, _)) = v.iter().find(|(k, o)| {
                **k != name
                    && o.get("gateway")
                        .and_then(Value::as_str)
                        .is_some_and(|x| !x.is_empty())
            })
        {
            let _ = g;
            return Err(ApiError::param(
                "gateway",
                format!("Default gateway already exists on interface '{other}'."),
            ));
        }
        for key in ["bridge_ports", "slaves"] {
            if let Some(ports) = r.str(key) {
                for p in split_list(&ports) {
                    for (other, o) in &v {
                        if *other == name {
                            continue;
                        }
                        let used = ["bridge_ports", "slaves"].iter().any(|k| {
                            o.get(*k)
                                .and_then(Value::as_str)
                                .is_some_and(|s| split_list(s).contains(&p))
                        });
                        if used {
                            return Err(ApiError::param(
                                key,
                                format!("{p} is already used on interface '{other}'."),
                            ));
                        }
                    }
                }
            }
        }
        if r.str("bridge_vids")
            .is_some_and(|s| split_list(&s).is_empty())
        {
            return Err(ApiError::param("bridge_vids", "VLAN list items are empty"));
        }
        let mut o = Obj::new();
        o.insert("iface".into(), json!(name));
        o.insert("type".into(), json!(ty));
        let method = if cidr.is_some() { "static" } else { "manual" };
        o.insert("method".into(), json!(method));
        o.insert(
            "method6".into(),
            json!(if r.str("cidr6").is_some() || r.str("address6").is_some() {
                "static"
            } else {
                "manual"
            }),
        );
        o.insert("families".into(), json!(["inet"]));
        if let Some(c) = &cidr {
            let (a, p) = c.split_once('/').unwrap_or((c.as_str(), "24"));
            o.insert("cidr".into(), json!(c));
            o.insert("address".into(), json!(a));
            o.insert("netmask".into(), json!(p));
        }
        for k in ["cidr6", "address6", "netmask6"] {
            if let Some(x) = r.str(k) {
                o.insert(k.into(), json!(x));
            }
        }
        for k in FIELDS {
            if let Some(x) = r.str(k) {
                let val = match *k {
                    "autostart" | "bridge_vlan_aware" | "mtu" | "vlan-id" | "ovs_tag" => {
                        x.parse::<i64>().map(Value::from).unwrap_or(json!(x))
                    }
                    _ => json!(x),
                };
                o.insert((*k).into(), val);
            }
        }
        if ty == "bridge" {
            o.entry("bridge_stp".into()).or_insert(json!("off"));
            o.entry("bridge_fd".into()).or_insert(json!("0"));
        }
        if !create {
            // Keep nothing from the old stanza except what PVE keeps implicitly.
            if let Some(old) = v.get(&name) {
                for k in ["priority"] {
                    if let Some(x) = old.get(k) {
                        o.insert(k.into(), x.clone());
                    }
                }
            }
            if let Some(del) = r.str("delete") {
                for k in split_list(&del) {
                    o.shift_remove(&k);
                }
            }
        }
        v.insert(name.clone(), o);
        n.network_pending = Some(v);
        Ok(Value::Null.into())
    })
}

fn reload(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node_name = r.node();
    inner.with_state(|st| node(st, r).map(|_| ()))?;
    // The faults are drawn when the reload is asked for (reproducible by seed).
    let f = inner.faults();
    let fail = f.reload_failure_rate > 0.0 && inner.roll() < f.reload_failure_rate;
    let cut = f.reload_mgmt_cut_rate > 0.0 && inner.roll() < f.reload_mgmt_cut_rate;
    let upid = tasks::spawn(
        inner,
        Spec {
            node: node_name.clone(),
            kind: "srvreload",
            id: "networking".into(),
            user: r.who.full(),
            secs: 2.0,
            locks: vec![],
            fail_text: Some(IFRELOAD_FAILED.into()),
            config_lock: None,
        },
        Box::new(move |st| apply_staged(st, &node_name, fail, cut)),
    );
    Ok(json!(upid).into())
}

/// What `ifreload -a` ends with when it could not bring an interface up.
const IFRELOAD_FAILED: &str = "command 'ifreload -a' failed: exit code 1";

/// The reload worker: like pve-manager's, it first moves `interfaces.new` over the
/// live file, then runs `ifreload -a`. A failing `ifreload` (fault) leaves the new
/// stanzas configured but down; a cut (fault) leaves management unreachable for new
/// connections. Both faults only strike a reload that brings up new interfaces, so
/// restoring the previous configuration and reloading again heals the node.
fn apply_staged(
    st: &mut crate::state::State,
    node_name: &str,
    fail: bool,
    cut: bool,
) -> Result<Vec<String>, String> {
    let n = st.nodes.get_mut(node_name).ok_or("no such node")?;
    let mut log = vec![];
    let before: Vec<String> = n.network.keys().cloned().collect();
    let changed = match n.network_pending.take() {
        Some(p) => {
            for (name, o) in &p {
                if let Some(ports) = o.get("bridge_ports").and_then(Value::as_str) {
                    for port in split_list(ports) {
                        if !p.contains_key(&port) {
                            log.push(format!("warning: {name}: port {port} does not exist"));
                        }
                    }
                }
            }
            let changed = render(&p) != render(&n.network);
            n.network = p;
            changed
        }
        None => false,
    };
    let added: Vec<String> = n
        .network
        .keys()
        .filter(|k| !before.contains(k))
        .cloned()
        .collect();
    if fail && !added.is_empty() {
        n.network_down = added.iter().cloned().collect();
        // pve-manager prints ifreload's `error: <iface>:` lines as `<iface> : <line>`.
        if let Some(t) = st
            .tasks
            .iter_mut()
            .rev()
            .find(|t| t.running && t.upid.contains(":srvreload:"))
        {
            for i in &added {
                t.log.push(format!(
                    "{i} : error: {i}: netlink: failed to bring up bridge: Invalid argument"
                ));
            }
        }
        return Err(IFRELOAD_FAILED.into());
    }
    n.network_down.clear();
    if changed {
        n.mgmt_cut = cut && !added.is_empty();
    }
    Ok(log)
}

/// Is the node's management address still configured on some interface?
pub fn mgmt_reachable(n: &Node) -> bool {
    !n.mgmt_cut
        && n.network.values().any(|o| {
            o.get("address").and_then(Value::as_str) == Some(n.ip.as_str())
                || o.get("cidr")
                    .and_then(Value::as_str)
                    .is_some_and(|c| c.split('/').next() == Some(n.ip.as_str()))
        })
}
