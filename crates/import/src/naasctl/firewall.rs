//! The datacenter and node firewall lists → `firewall` (options, rules with stable
//! ids, aliases, ipsets).

use std::collections::BTreeSet;

use serde_json::Value;

use super::cx::{Cx, ensure_present, mark_read};
use crate::out::Node;
use crate::path::Path;

/// Builds `firewall`; `None` when naasctl declared none of it.
pub fn firewall(cx: &mut Cx<'_>, root: &Value) -> Option<Node> {
    let mut fw = Node::map();
    let mut ids = BTreeSet::new();
    for (level, opts, rules) in [
        (
            "datacenter",
            "proxmoxDatacenterFirewallOptions",
            "proxmoxDatacenterFirewallRules",
        ),
        (
            "node",
            "proxmoxNodeFirewallOptions",
            "proxmoxNodeFirewallRules",
        ),
    ] {
        let mut l = Node::map();
        if let Some(o) = options(cx, root.get(opts), &Path::root().key(opts)) {
            l.set("options", o);
        }
        let rl = rule_list(
            cx,
            root.get(rules),
            &Path::root().key(rules),
            level,
            &mut ids,
        );
        if !rl.is_empty() {
            l.set("rules", rl);
        }
        if !l.is_empty() {
            fw.set(level, l);
        }
    }
    let ap = Path::root().key("proxmoxDatacenterFirewallAliases");
    let mut aliases = Node::map();
    for (i, a) in
        cx.e.list(root.get("proxmoxDatacenterFirewallAliases"), &ap)
            .iter()
            .enumerate()
    {
        let p = ap.index(i);
        if cx.e.map(Some(a), &p).is_none() {
            continue;
        }
        let mut read = Vec::new();
        if !ensure_present(cx, a, &p, &mut read) {
            continue;
        }
        let (Some(name), Some(cidr)) = (
            cx.e.string(a.get("name"), &p.key("name")),
            cx.e.string(a.get("cidr"), &p.key("cidr")),
        ) else {
            cx.e.push(
                &p,
                format!("`{p}` needs `name` and `cidr`"),
                "write `{ name: admin-pc, cidr: 192.168.1.50/32 }`",
            );
            continue;
        };
        let mut n = Node::str(&cidr).from(&p.key("name")).from(&p.key("cidr"));
        n.src.extend(read);
        if let Some(c) = cx.e.string(a.get("comment"), &p.key("comment")) {
            n = n.from(&p.key("comment")).head(c);
        }
        aliases.set(&name, n);
    }
    if !aliases.is_empty() {
        fw.set("aliases", aliases);
    }
    let sp = Path::root().key("proxmoxDatacenterFirewallIpsets");
    let mut sets = Node::map();
    for (i, s) in
        cx.e.list(root.get("proxmoxDatacenterFirewallIpsets"), &sp)
            .iter()
            .enumerate()
    {
        let p = sp.index(i);
        if cx.e.map(Some(s), &p).is_none() {
            continue;
        }
        let mut read = Vec::new();
        if !ensure_present(cx, s, &p, &mut read) {
            continue;
        }
        let Some(name) = cx.e.string(s.get("name"), &p.key("name")) else {
            cx.e.push(&p, format!("`{p}` has no `name`"), "name the ipset");
            continue;
        };
        let mut list = Node::seq().from(&p.key("name"));
        list.src.extend(read);
        if let Some(c) = cx.e.string(s.get("comment"), &p.key("comment")) {
            list = list.from(&p.key("comment")).head(c);
        }
        for key in ["cidrs", "entries", "members"] {
            let ep = p.key(key);
            for (j, e) in cx.e.list(s.get(key), &ep).iter().enumerate() {
                let jp = ep.index(j);
                match e {
                    Value::String(c) => list.push(Node::str(c).from(&jp)),
                    Value::Object(m) => {
                        if m.get("nomatch")
                            .is_some_and(|v| v.as_bool() == Some(true) || v.as_u64() == Some(1))
                        {
                            cx.skip(
                                &jp,
                                "a `nomatch` entry (an exclusion) has no labwright form",
                            );
                            continue;
                        }
                        if let Some(c) = cx.e.string(m.get("cidr"), &jp.key("cidr")) {
                            list.push(Node::str(&c).from(&jp.key("cidr")));
                        }
                    }
                    other => cx.e.push(
                        &jp,
                        format!(
                            "`{jp}` should be a CIDR, but is {}",
                            crate::input::kind(other)
                        ),
                        "write a CIDR",
                    ),
                }
            }
        }
        sets.set(&name, list);
    }
    if !sets.is_empty() {
        fw.set("ipsets", sets);
    }
    (!fw.is_empty()).then_some(fw)
}

/// Firewall options: one mapping, or a list of them (naasctl's lists of `{…, ensure}`).
fn options(cx: &mut Cx<'_>, v: Option<&Value>, p: &Path) -> Option<Node> {
    let items: Vec<(Value, Path)> = match v? {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| (x.clone(), p.index(i)))
            .collect(),
        Value::Null => return None,
        other => vec![(other.clone(), p.clone())],
    };
    let mut o = Node::map().head(format!("from {p}"));
    for (item, ip) in items {
        if cx.e.map(Some(&item), &ip).is_none() {
            continue;
        }
        let mut read = Vec::new();
        if !ensure_present(cx, &item, &ip, &mut read) || !cx.on_node(&item, &ip, &mut read) {
            continue;
        }
        o.src.extend(read);
        if let Some(b) = cx.e.flag(item.get("enable"), &ip.key("enable")) {
            o.set("enable", Node::bool(b).from(&ip.key("enable")));
        }
        for (from, to) in [("policy_in", "policyIn"), ("policy_out", "policyOut")] {
            let kp = ip.key(from);
            if let Some(pol) = cx.e.string(item.get(from), &kp) {
                let up = pol.to_ascii_uppercase();
                if matches!(up.as_str(), "ACCEPT" | "DROP" | "REJECT") {
                    o.set(to, Node::str(&up).from(&kp));
                } else {
                    cx.e.push(
                        &kp,
                        format!("`{kp}` is `{pol}`; PVE knows ACCEPT, DROP and REJECT"),
                        "write ACCEPT, DROP or REJECT",
                    );
                }
            }
        }
    }
    if !o.src.is_empty() {
        o.note = Some("read; nothing to write".into());
    }
    (!o.is_empty() || !o.src.is_empty()).then_some(o)
}

fn rule_list(
    cx: &mut Cx<'_>,
    v: Option<&Value>,
    lp: &Path,
    level: &str,
    ids: &mut BTreeSet<String>,
) -> Node {
    let mut out = Node::seq();
    let prefix = if level == "node" { "node" } else { "dc" };
    for (i, r) in cx.e.list(v, lp).iter().enumerate() {
        let rp = lp.index(i);
        if cx.e.map(Some(r), &rp).is_none() {
            continue;
        }
        let mut read = Vec::new();
        if !ensure_present(cx, r, &rp, &mut read) || !cx.on_node(r, &rp, &mut read) {
            continue;
        }
        if r.get("pos").is_some() {
            read.push(rp.key("pos"));
        }
        let Some(action) = cx.e.string(r.get("action"), &rp.key("action")) else {
            cx.e.push(
                &rp,
                format!("`{rp}` has no `action`"),
                "give the rule an action: ACCEPT, DROP or REJECT",
            );
            continue;
        };
        let comment = cx.e.string(r.get("comment"), &rp.key("comment"));
        let base = comment
            .as_deref()
            .map(slug)
            .filter(|s| !s.is_empty())
            .map(|s| format!("{prefix}-{s}"))
            .unwrap_or_else(|| format!("{prefix}-rule-{}", i + 1));
        let mut id = base.clone();
        let mut k = 2;
        while !ids.insert(id.clone()) {
            id = format!("{base}-{k}");
            k += 1;
        }
        let mut n = Node::map().head(format!("from {rp}"));
        mark_read(&mut n, read, "position kept by order; node");
        n.set(
            "id",
            Node::str(&id).note("made from the comment: labwright keys rules by id"),
        );
        let dir = cx.e.string(r.get("type"), &rp.key("type"));
        let is_group = dir.as_deref() == Some("group");
        let action = if is_group {
            action
        } else {
            action.to_ascii_uppercase()
        };
        n.set("action", Node::str(&action).from(&rp.key("action")));
        if let Some(d) = dir {
            if matches!(d.as_str(), "in" | "out" | "group") {
                n.set("direction", Node::str(&d).from(&rp.key("type")));
            } else {
                cx.e.push(
                    &rp.key("type"),
                    format!("`{rp}.type` is `{d}`; PVE knows in, out and group"),
                    "write in, out or group",
                );
            }
        }
        for (from, to) in [
            ("macro", "macro"),
            ("source", "source"),
            ("dest", "dest"),
            ("proto", "proto"),
            ("iface", "iface"),
        ] {
            if let Some(s) = cx.e.string(r.get(from), &rp.key(from)) {
                n.set(to, Node::str(&s).from(&rp.key(from)));
            }
        }
        for k in ["dport", "sport"] {
            match r.get(k) {
                Some(Value::Number(x)) if x.as_u64().is_some() => {
                    n.set(k, Node::int(x.as_u64().unwrap_or(0)).from(&rp.key(k)))
                }
                v => {
                    if let Some(s) = cx.e.string(v, &rp.key(k)) {
                        n.set(k, Node::str(&s).from(&rp.key(k)));
                    }
                }
            }
        }
        if let Some(c) = comment {
            n.set("comment", Node::str(&c).from(&rp.key("comment")));
        }
        if let Some(b) = cx.e.flag(r.get("enable"), &rp.key("enable")) {
            n.set("enable", Node::bool(b).from(&rp.key("enable")));
        }
        if let Some(l) = cx.e.string(r.get("log"), &rp.key("log")) {
            n.set(
                "log",
                Node::bool(l != "nolog")
                    .from(&rp.key("log"))
                    .note(format!("PVE log level `{l}`")),
            );
        }
        out.push(n);
    }
    out
}

/// A comment as a kebab-case id: `Admin PC → SSH` → `admin-pc-ssh`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}
