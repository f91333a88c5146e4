//! Firewall configuration at cluster, node and VM level: options, rules (inserted at the
//! top, disabled unless `enable=1`), aliases, IP sets (with the automatic `management`
//! set), security groups, macros and refs. All calls are synchronous, like PVE's.

use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use super::missing;
use crate::formats::split_list;
use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{Group, Ipset, Obj, State};
use crate::util::sha1_hex;

/// Where a rule list lives.
#[derive(Clone, Copy, PartialEq)]
enum Env {
    Cluster,
    Host,
    Vm,
    Group,
}

const MACROS: &[(&str, &str)] = &[
    ("Amanda", "Amanda Backup"),
    ("Auth", "Auth (identd) traffic"),
    ("BGP", "Border Gateway Protocol traffic"),
    (
        "BitTorrent",
        "BitTorrent traffic for BitTorrent 3.1 and earlier",
    ),
    ("Ceph", "Ceph Storage Cluster traffic"),
    ("CVS", "Concurrent Versions System pserver traffic"),
    ("DHCPfwd", "Forwarded DHCP traffic"),
    ("DNS", "Domain Name System traffic (upd and tcp)"),
    ("FTP", "File Transfer Protocol"),
    ("HKP", "OpenPGP HTTP key server protocol traffic"),
    ("HTTP", "Hypertext Transfer Protocol (WWW)"),
    ("HTTPS", "Hypertext Transfer Protocol (WWW) over SSL"),
    ("ICMPv6", "ICMPv6 basic types"),
    ("IMAP", "Internet Message Access Protocol"),
    ("IMAPS", "Internet Message Access Protocol over SSL"),
    ("IPsec", "IPsec traffic"),
    ("LDAP", "Lightweight Directory Access Protocol traffic"),
    ("MDNS", "Multicast DNS"),
    ("MSSQL", "Microsoft SQL Server"),
    ("MySQL", "MySQL server"),
    ("NTP", "Network Time Protocol (ntpd)"),
    ("OpenVPN", "OpenVPN traffic"),
    ("Ping", "ICMP echo request"),
    ("PostgreSQL", "PostgreSQL server"),
    ("RDP", "Microsoft Remote Desktop Protocol traffic"),
    ("Rsync", "Rsync server"),
    ("SMB", "Microsoft SMB traffic"),
    ("SMTP", "Simple Mail Transfer Protocol"),
    ("SNMP", "Simple Network Management Protocol"),
    ("SSH", "Secure shell traffic"),
    ("Syslog", "Syslog protocol (RFC 5424) traffic"),
    ("Telnet", "Telnet traffic"),
    ("Web", "WWW traffic (HTTP and HTTPS)"),
];

pub fn dispatch(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let t = r.template.as_str();
    let m = r.method.as_str();
    inner.with_state(|st| {
        match (m, t) {
            ("GET", "/cluster/firewall/macros") => {
                return Ok(Value::Array(
                    MACROS
                        .iter()
                        .map(|(n, d)| json!({"macro": n, "descr": d}))
                        .collect(),
                )
                .into());
            }
            ("GET", "/cluster/firewall/refs") => return Ok(refs(st, r).into()),
            ("GET", "/nodes/{node}/qemu/{vmid}/firewall/refs") => {
                let vm = st.vm(&r.node(), r.vmid())?;
                let mut out = match refs(st, r) {
                    Value::Array(a) => a,
                    _ => vec![],
                };
                let want = r.str("type");
                out.extend(collect_refs(
                    vm.fw_ipsets.iter().map(|(n, s)| (n, s.comment.as_ref())),
                    vm.fw_aliases.iter().map(|(n, a)| (n, a.get("comment"))),
                    want.as_deref(),
                    "guest",
                ));
                return Ok(Value::Array(out).into());
            }
            _ => {}
        }
        if t.ends_with("/options") {
            return options(st, r);
        }
        if t.contains("/rules") {
            return rules(st, r);
        }
        if t.starts_with("/cluster/firewall/groups") {
            return groups(st, r);
        }
        if t.contains("/aliases") {
            return aliases(st, r);
        }
        if t.contains("/ipset") {
            return ipsets(st, r);
        }
        Err(missing(r))
    })
}

fn scope_vmid(r: &Req) -> Option<u32> {
    r.template.contains("{vmid}").then(|| r.vmid())
}

fn digest_of<T: serde::Serialize>(v: &T) -> String {
    sha1_hex(&serde_json::to_string(v).unwrap_or_default())
}

fn check_digest<T: serde::Serialize>(r: &Req, v: &T) -> Result<(), ApiError> {
    if let Some(d) = r.str("digest")
        && d != digest_of(v)
    {
        return Err(ApiError::e500(
            "detected modified configuration - file changed by other user? Try again.",
        ));
    }
    Ok(())
}

fn options(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let opts: &mut Obj = if r.template.starts_with("/cluster") {
        &mut st.fw.options
    } else if let Some(vmid) = scope_vmid(r) {
        &mut st.vm_mut(&r.node(), vmid)?.fw_options
    } else {
        &mut st
            .nodes
            .get_mut(&r.node())
            .ok_or_else(|| ApiError::e500("no such node"))?
            .fw_options
    };
    if r.method == "GET" {
        let mut m: Map<String, Value> = opts.clone().into_iter().collect();
        m.insert("digest".into(), json!(digest_of(&*opts)));
        return Ok(Value::Object(m).into());
    }
    check_digest(r, &*opts)?;
    if let Some(del) = r.str("delete") {
        for k in split_list(&del) {
            opts.shift_remove(&k);
        }
    }
    for (k, v) in &r.params {
        if ["node", "vmid", "digest", "delete"].contains(&k.as_str()) {
            continue;
        }
        let Some(s) = v.as_str() else { continue };
        let val = s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(s));
        opts.insert(k.clone(), val);
    }
    Ok(Value::Null.into())
}

fn env_of(r: &Req) -> Env {
    if r.template.starts_with("/cluster/firewall/groups") {
        Env::Group
    } else if r.template.starts_with("/cluster") {
        Env::Cluster
    } else if r.template.contains("{vmid}") {
        Env::Vm
    } else {
        Env::Host
    }
}

fn rule_list<'a>(st: &'a mut State, r: &Req) -> Result<&'a mut Vec<Obj>, ApiError> {
    Ok(match env_of(r) {
        Env::Cluster => &mut st.fw.rules,
        Env::Host => {
            &mut st
                .nodes
                .get_mut(&r.node())
                .ok_or_else(|| ApiError::e500("no such node"))?
                .fw_rules
        }
        Env::Vm => &mut st.vm_mut(&r.node(), r.vmid())?.fw_rules,
        Env::Group => {
            let g = r.s("group");
            &mut st
                .fw
                .groups
                .get_mut(&g)
                .ok_or_else(|| ApiError::e500(format!("no such security group '{g}'")))?
                .rules
        }
    })
}

fn rule_json(rule: &Obj, pos: usize, digest: &str) -> Value {
    let mut m: Map<String, Value> = rule.clone().into_iter().collect();
    m.insert("pos".into(), json!(pos));
    m.insert("digest".into(), json!(digest));
    Value::Object(m)
}

const RULE_FIELDS: &[&str] = &[
    "type",
    "action",
    "macro",
    "proto",
    "dport",
    "sport",
    "source",
    "dest",
    "iface",
    "log",
    "comment",
    "icmp-type",
    "enable",
];
const PORT_PROTOS: &[&str] = &[
    "tcp", "udp", "udplite", "dccp", "sctp", "6", "17", "136", "33", "132",
];

/// pve-firewall's ipset lookup in `verify_rule`: the set must be defined in the
/// cluster or in the guest's own firewall config (a `dc/`/`guest/` scope does not
/// matter for the check); `management` and `blacklist` exist only when defined.
fn ipset_exists(st: &State, name: &str, vmid: Option<u32>) -> bool {
    st.fw.ipsets.contains_key(name)
        || vmid
            .and_then(|v| st.vms.get(&v))
            .is_some_and(|vm| vm.fw_ipsets.contains_key(name))
}

/// An alias as the rule sees it (names are case-insensitive): the guest's own first
/// unless the reference says `dc/`, then the cluster's unless it says `guest/`.
fn alias_lookup<'a>(st: &'a State, scope: &str, name: &str, vmid: Option<u32>) -> Option<&'a Obj> {
    let key = name.to_lowercase();
    let guest = vmid
        .and_then(|v| st.vms.get(&v))
        .and_then(|vm| vm.fw_aliases.get(&key));
    let dc = st.fw.aliases.get(&key);
    let mut e = None;
    if scope != "dc/" {
        e = guest;
    }
    if scope != "guest/" && e.is_none() {
        e = dc;
    }
    e
}

fn alias_exists(st: &State, name: &str, vmid: Option<u32>) -> bool {
    let n = name
        .strip_prefix("dc/")
        .or_else(|| name.strip_prefix("guest/"))
        .unwrap_or(name)
        .to_lowercase();
    st.fw.aliases.contains_key(&n)
        || vmid
            .and_then(|v| st.vms.get(&v))
            .is_some_and(|vm| vm.fw_aliases.contains_key(&n))
}

fn name_pattern(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|x| x.is_ascii_alphabetic())
        && s.len() >= 2
        && c.all(|x| x.is_ascii_alphanumeric() || x == '-' || x == '_')
}

/// `verify_rule` of pve-firewall, in its order: the first problem is raised as a
/// parameter error on its field; address families are collected from the protocol,
/// the address lists and the aliases used, and stored as the rule's `ipversion`.
fn verify_rule(st: &State, rule: &mut Obj, env: Env, vmid: Option<u32>) -> Result<(), ApiError> {
    let s = |rule: &Obj, k: &str| {
        rule.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    let ty = s(rule, "type").ok_or_else(|| ApiError::param("type", "missing property"))?;
    let action = s(rule, "action").ok_or_else(|| ApiError::param("action", "missing property"))?;
    let (allowed, env_name): (&[&str], &str) = match env {
        Env::Cluster => (&["in", "out", "forward", "group"], "cluster"),
        Env::Host => (&["in", "out", "forward", "group"], "host"),
        Env::Vm => (&["in", "out", "group"], "vm"),
        Env::Group => (&["in", "out", "forward"], "group"),
    };
    if !allowed.contains(&ty.as_str()) {
        return Err(ApiError::param(
            "type",
            format!("invalid rule type '{ty}' for rule_env '{env_name}'"),
        ));
    }
    if ty == "group" {
        if !name_pattern(&action) {
            return Err(ApiError::param(
                "action",
                "invalid characters in security group name",
            ));
        }
    } else {
        if ty == "forward" && action == "REJECT" {
            return Err(ApiError::param(
                "action",
                "cannot define REJECT rules on forward chain",
            ));
        }
        if !["ACCEPT", "DROP", "REJECT"].contains(&action.as_str()) {
            return Err(ApiError::param(
                "action",
                format!("unknown action '{action}'"),
            ));
        }
    }
    if let Some(iface) = s(rule, "iface") {
        if env == Env::Group {
            return Err(ApiError::param(
                "type",
                "parameter -i not allowed for this rule type",
            ));
        }
        if env == Env::Vm
            && !iface
                .strip_prefix("net")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(ApiError::param(
                "iface",
                "value does not match the regex pattern 'net\\d+'",
            ));
        }
    }
    if let Some(m) = s(rule, "macro") {
        let canon = MACROS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&m))
            .map(|(n, _)| *n);
        match canon {
            Some(c) => {
                rule.insert("macro".into(), json!(c));
            }
            None => return Err(ApiError::param("macro", format!("unknown macro '{m}'"))),
        }
    }
    let mut ipversion: Option<u8> = None;
    let mixed = "detected mixed ipv4/ipv6 addresses in rule";
    let set_version = |v: u8, ipversion: &mut Option<u8>| -> Result<(), String> {
        if ipversion.is_some_and(|x| x != v) {
            return Err(mixed.to_string());
        }
        *ipversion = Some(v);
        Ok(())
    };
    let proto = s(rule, "proto");
    let is_icmp = matches!(proto.as_deref(), Some("icmp" | "icmpv6" | "ipv6-icmp"));
    match proto.as_deref() {
        Some("icmp") => set_version(4, &mut ipversion).map_err(ApiError::e500)?,
        Some("icmpv6" | "ipv6-icmp") => set_version(6, &mut ipversion).map_err(ApiError::e500)?,
        _ => {}
    }
    let with_ports = |p: &str| PORT_PROTOS.contains(&p);
    if s(rule, "dport").is_some() {
        let Some(p) = &proto else {
            return Err(ApiError::param(
                "proto",
                "missing property - 'dport' requires this property",
            ));
        };
        if !with_ports(p) && !is_icmp {
            return Err(ApiError::param(
                "dport",
                format!("protocol '{p}' does not support ports"),
            ));
        }
    }
    if let Some(it) = s(rule, "icmp-type") {
        if !is_icmp {
            return Err(ApiError::param(
                "proto",
                "missing property - 'icmp-type' requires this property",
            ));
        }
        if s(rule, "dport").is_some() {
            return Err(ApiError::param(
                "icmp-type",
                "'icmp-type' cannot be specified together with 'dport'",
            ));
        }
        let p = proto.clone().unwrap_or_default();
        let names = if p == "icmp" {
            crate::formats::ICMP_TYPES
        } else {
            crate::formats::ICMPV6_TYPES
        };
        if !names.split(' ').any(|n| n == it) {
            return Err(ApiError::param(
                "icmp-type",
                format!("invalid icmp-type '{it}' for proto '{p}'"),
            ));
        }
    }
    if s(rule, "sport").is_some() {
        let Some(p) = &proto else {
            return Err(ApiError::param(
                "proto",
                "missing property - 'sport' requires this property",
            ));
        };
        if !with_ports(p) {
            return Err(ApiError::param(
                "sport",
                format!("protocol '{p}' does not support ports"),
            ));
        }
    }
    for k in ["source", "dest"] {
        let Some(v) = s(rule, k) else { continue };
        let is_ref = v.starts_with('+')
            || name_pattern(
                v.strip_prefix("dc/")
                    .or_else(|| v.strip_prefix("guest/"))
                    .unwrap_or(&v),
            );
        if !is_ref {
            let fam = crate::netip::address_list(&v).map_err(|e| ApiError::param(k, e))?;
            set_version(fam, &mut ipversion).map_err(|e| ApiError::param(k, e))?;
        }
        if let Some(set) = v.strip_prefix('+') {
            let bare = set
                .strip_prefix("guest/")
                .or_else(|| set.strip_prefix("dc/"))
                .or_else(|| set.strip_prefix("sdn/"))
                .unwrap_or(set);
            if !name_pattern(bare) {
                return Err(ApiError::param(k, format!("invalid ipset name '{v}'")));
            }
            if !ipset_exists(st, bare, vmid) {
                return Err(ApiError::param(k, format!("no such ipset '{bare}'")));
            }
        } else if is_ref {
            let (scope, n) = if let Some(n) = v.strip_prefix("dc/") {
                ("dc/", n)
            } else if let Some(n) = v.strip_prefix("guest/") {
                ("guest/", n)
            } else {
                ("", v.as_str())
            };
            if !alias_exists(st, &v, vmid) {
                return Err(ApiError::param(k, format!("no such alias '{v}'")));
            }
            if let Some(a) = alias_lookup(st, scope, n, vmid)
                && let Some(av) = a.get("ipversion").and_then(Value::as_u64)
            {
                set_version(av as u8, &mut ipversion).map_err(ApiError::e500)?;
            }
        }
    }
    match ipversion {
        Some(v) => {
            rule.insert("ipversion".into(), json!(v));
        }
        None => {
            rule.shift_remove("ipversion");
        }
    }
    Ok(())
}

fn rules(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let env = env_of(r);
    let vmid = scope_vmid(r);
    let has_pos = r.template.ends_with("{pos}");
    let pos = r.i64("pos").unwrap_or(-1);
    // Immutable snapshot for reference checks.
    let snapshot = if r.method == "GET" {
        None
    } else {
        Some(st.clone())
    };
    let list = rule_list(st, r)?;
    let digest = digest_of(&*list);
    let at = |list: &Vec<Obj>| -> Result<usize, ApiError> {
        usize::try_from(pos)
            .ok()
            .filter(|p| *p < list.len())
            .ok_or_else(|| ApiError::e500(format!("no rule at position {pos}")))
    };
    match (r.method.as_str(), has_pos) {
        ("GET", false) => Ok(Value::Array(
            list.iter()
                .enumerate()
                .map(|(i, x)| rule_json(x, i, &digest))
                .collect(),
        )
        .into()),
        ("GET", true) => {
            let p = at(list)?;
            Ok(rule_json(&list[p], p, &digest).into())
        }
        ("POST", false) => {
            check_digest(r, &*list)?;
            let mut rule = Obj::new();
            for k in RULE_FIELDS {
                if let Some(v) = r.str(k) {
                    if *k == "enable" {
                        rule.insert((*k).into(), json!(v.parse::<i64>().unwrap_or(0)));
                    } else if !v.is_empty() {
                        rule.insert((*k).into(), json!(v));
                    }
                }
            }
            rule.entry("enable".to_string()).or_insert(json!(0));
            if let Some(s) = &snapshot {
                verify_rule(s, &mut rule, env, vmid)?;
            }
            // A new rule always goes to the top.
            list.insert(0, rule);
            Ok(Value::Null.into())
        }
        ("PUT", true) => {
            check_digest(r, &*list)?;
            let p = at(list)?;
            if let Some(to) = r.i64("moveto") {
                // PVE (Rules.pm) rebuilds the list inserting the rule before the
                // element that was at `moveto` in the *original* list (or at the end),
                // so moving down lands one place above `moveto`.
                let len = list.len();
                let to = usize::try_from(to).unwrap_or(0);
                if to != p {
                    let rule = list.remove(p);
                    let idx = if to >= len {
                        list.len()
                    } else if to > p {
                        to - 1
                    } else {
                        to
                    };
                    list.insert(idx, rule);
                }
                return Ok(Value::Null.into());
            }
            let mut rule = list[p].clone();
            if let Some(del) = r.str("delete") {
                for k in split_list(&del) {
                    rule.shift_remove(&k);
                }
            }
            for k in RULE_FIELDS {
                if let Some(v) = r.str(k) {
                    if v.is_empty() || v == "-" {
                        rule.shift_remove(*k);
                    } else if *k == "enable" {
                        rule.insert((*k).into(), json!(v.parse::<i64>().unwrap_or(0)));
                    } else {
                        rule.insert((*k).into(), json!(v));
                    }
                }
            }
            if let Some(s) = &snapshot {
                verify_rule(s, &mut rule, env, vmid)?;
            }
            list[p] = rule;
            Ok(Value::Null.into())
        }
        ("DELETE", true) => {
            check_digest(r, &*list)?;
            let p = at(list)?;
            list.remove(p);
            Ok(Value::Null.into())
        }
        _ => Err(missing(r)),
    }
}

fn groups(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let digest = digest_of(&st.fw.groups);
    match (r.method.as_str(), r.template.as_str()) {
        ("GET", "/cluster/firewall/groups") => Ok(Value::Array(
            st.fw
                .groups
                .iter()
                .map(|(n, g)| {
                    let mut e = json!({"group": n, "digest": digest});
                    if let Some(c) = &g.comment {
                        e["comment"] = json!(c);
                    }
                    e
                })
                .collect(),
        )
        .into()),
        ("POST", "/cluster/firewall/groups") => {
            check_digest(r, &st.fw.groups)?;
            let name = r.s("group");
            if let Some(old) = r.str("rename") {
                let g = st
                    .fw
                    .groups
                    .shift_remove(&old)
                    .ok_or_else(|| ApiError::e500(format!("no such security group '{old}'")))?;
                st.fw.groups.insert(name, g);
                return Ok(Value::Null.into());
            }
            if st.fw.groups.contains_key(&name) {
                return Err(ApiError::param(
                    "group",
                    format!("security group '{name}' already exists"),
                ));
            }
            st.fw.groups.insert(
                name,
                Group {
                    comment: r.str("comment"),
                    rules: vec![],
                },
            );
            Ok(Value::Null.into())
        }
        ("DELETE", "/cluster/firewall/groups/{group}") => {
            let name = r.s("group");
            let g = st
                .fw
                .groups
                .get(&name)
                .ok_or_else(|| ApiError::e500(format!("no such security group '{name}'")))?;
            if !g.rules.is_empty() {
                return Err(ApiError::e500(format!(
                    "security group '{name}' is not empty"
                )));
            }
            st.fw.groups.shift_remove(&name);
            Ok(Value::Null.into())
        }
        // GET/POST …/groups/{group} and …/{pos} are rule-list operations.
        _ => rules(st, r),
    }
}

fn alias_map<'a>(st: &'a mut State, r: &Req) -> Result<&'a mut IndexMap<String, Obj>, ApiError> {
    Ok(match scope_vmid(r) {
        Some(v) => &mut st.vm_mut(&r.node(), v)?.fw_aliases,
        None => &mut st.fw.aliases,
    })
}

fn alias_json(a: &Obj, digest: &str) -> Value {
    let mut m: Map<String, Value> = a.clone().into_iter().collect();
    m.insert("digest".into(), json!(digest));
    Value::Object(m)
}

/// An alias as pve-firewall stores and re-reads it (`parse_alias`): the name as
/// given, the address with a host-length prefix dropped (`/32`, `/128`), its family.
fn alias_entry(name: &str, cidr: &str, comment: Option<String>) -> Obj {
    let v6 = cidr.contains(':');
    let clean = cidr
        .strip_suffix(if v6 { "/128" } else { "/32" })
        .unwrap_or(cidr);
    let mut a = Obj::new();
    a.insert("name".into(), json!(name));
    a.insert("cidr".into(), json!(clean));
    if let Some(c) = comment.filter(|c| !c.is_empty()) {
        a.insert("comment".into(), json!(c));
    }
    a.insert("ipversion".into(), json!(if v6 { 6 } else { 4 }));
    a
}

/// Aliases are keyed by their lower-cased name (`lc($param->{name})` in
/// PVE::API2::Firewall::Aliases): `Web` and `web` are the same alias.
fn aliases(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let map = alias_map(st, r)?;
    let digest = digest_of(&*map);
    let single = r.template.ends_with("{name}");
    let name = r.s("name");
    let key = name.to_lowercase();
    match (r.method.as_str(), single) {
        ("GET", false) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Ok(Value::Array(keys.iter().map(|k| alias_json(&map[*k], &digest)).collect()).into())
        }
        ("GET", true) => {
            let a = map
                .get(&key)
                .ok_or_else(|| ApiError::param("name", "no such alias"))?;
            Ok(alias_json(a, &digest).into())
        }
        ("POST", false) => {
            if map.contains_key(&key) {
                return Err(ApiError::param(
                    "name",
                    format!("alias '{name}' already exists"),
                ));
            }
            map.insert(key, alias_entry(&name, &r.s("cidr"), r.str("comment")));
            Ok(Value::Null.into())
        }
        ("PUT", true) => {
            check_digest(r, &*map)?;
            if !map.contains_key(&key) {
                return Err(ApiError::param("name", "no such alias"));
            }
            let a = alias_entry(&name, &r.s("cidr"), r.str("comment"));
            match r.str("rename") {
                Some(new) if new.to_lowercase() != key => {
                    let nk = new.to_lowercase();
                    if map.contains_key(&nk) {
                        return Err(ApiError::param(
                            "name",
                            format!("alias '{new}' already exists"),
                        ));
                    }
                    map.shift_remove(&key);
                    let mut a = a;
                    a.insert("name".into(), json!(new));
                    map.insert(nk, a);
                }
                _ => {
                    map.insert(key, a);
                }
            }
            Ok(Value::Null.into())
        }
        ("DELETE", true) => {
            check_digest(r, &*map)?;
            map.shift_remove(&key);
            Ok(Value::Null.into())
        }
        _ => Err(missing(r)),
    }
}

fn ipset_map<'a>(st: &'a mut State, r: &Req) -> Result<&'a mut IndexMap<String, Ipset>, ApiError> {
    Ok(match scope_vmid(r) {
        Some(v) => &mut st.vm_mut(&r.node(), v)?.fw_ipsets,
        None => &mut st.fw.ipsets,
    })
}

fn ipsets(st: &mut State, r: &Req) -> Result<Reply, ApiError> {
    let vmid = scope_vmid(r);
    let aliases_ok = {
        let s2 = st.clone();
        move |c: &str| {
            let looks_alias = c.chars().next().is_some_and(|x| x.is_ascii_alphabetic())
                && !c.contains(':')
                && !c.contains('.');
            !looks_alias || alias_exists(&s2, c, vmid)
        }
    };
    let map = ipset_map(st, r)?;
    let name = r.s("name");
    let t = r.template.as_str();
    let m = r.method.as_str();
    if !t.contains("{name}") {
        let digest = digest_of(&*map);
        return match m {
            "GET" => Ok(Value::Array(
                map.iter()
                    .map(|(n, s)| {
                        let mut e = json!({"name": n, "digest": digest});
                        if let Some(c) = &s.comment {
                            e["comment"] = json!(c);
                        }
                        e
                    })
                    .collect(),
            )
            .into()),
            "POST" => {
                check_digest(r, &*map)?;
                if let Some(old) = r.str("rename") {
                    let s = map
                        .shift_remove(&old)
                        .ok_or_else(|| ApiError::e500(format!("no such IPSet '{old}'")))?;
                    map.insert(name, s);
                    return Ok(Value::Null.into());
                }
                if map.contains_key(&name) {
                    return Err(ApiError::param(
                        "name",
                        format!("IPSet '{name}' already exists"),
                    ));
                }
                map.insert(
                    name,
                    Ipset {
                        comment: r.str("comment"),
                        entries: vec![],
                    },
                );
                Ok(Value::Null.into())
            }
            _ => Err(missing(r)),
        };
    }
    let set = map
        .get_mut(&name)
        .ok_or_else(|| ApiError::e500(format!("no such IPSet '{name}'")))?;
    let digest = digest_of(&set.entries);
    let entry_json = |e: &Obj| {
        let mut m: Map<String, Value> = e.clone().into_iter().collect();
        m.insert("digest".into(), json!(digest));
        Value::Object(m)
    };
    if t.ends_with("{cidr}") {
        let cidr = r.s("cidr");
        let idx = set
            .entries
            .iter()
            .position(|e| e.get("cidr").and_then(Value::as_str) == Some(cidr.as_str()));
        return match m {
            "GET" => {
                let i =
                    idx.ok_or_else(|| ApiError::e500(format!("no such IP/Network '{cidr}'")))?;
                Ok(entry_json(&set.entries[i]).into())
            }
            "DELETE" => {
                check_digest(r, &set.entries)?;
                if let Some(i) = idx {
                    set.entries.remove(i);
                }
                Ok(Value::Null.into())
            }
            "PUT" => {
                check_digest(r, &set.entries)?;
                let i =
                    idx.ok_or_else(|| ApiError::e500(format!("no such IP/Network '{cidr}'")))?;
                let e = &mut set.entries[i];
                match r.str("comment") {
                    Some(c) => {
                        e.insert("comment".into(), json!(c));
                    }
                    None => {
                        e.shift_remove("comment");
                    }
                }
                if r.flag("nomatch") {
                    e.insert("nomatch".into(), json!(1));
                } else {
                    e.shift_remove("nomatch");
                }
                Ok(Value::Null.into())
            }
            _ => Err(missing(r)),
        };
    }
    match m {
        "GET" => Ok(Value::Array(set.entries.iter().map(entry_json).collect()).into()),
        "POST" => {
            let cidr = r.s("cidr");
            if set
                .entries
                .iter()
                .any(|e| e.get("cidr").and_then(Value::as_str) == Some(cidr.as_str()))
            {
                return Err(ApiError::param(
                    "cidr",
                    format!("address '{cidr}' already exists"),
                ));
            }
            if !aliases_ok(&cidr) {
                return Err(ApiError::param("cidr", format!("no such alias '{cidr}'")));
            }
            let mut e = Obj::new();
            e.insert("cidr".into(), json!(cidr));
            if let Some(c) = r.str("comment") {
                e.insert("comment".into(), json!(c));
            }
            if r.flag("nomatch") {
                e.insert("nomatch".into(), json!(1));
            }
            set.entries.push(e);
            Ok(Value::Null.into())
        }
        "DELETE" => {
            if !set.entries.is_empty() && !r.flag("force") {
                return Err(ApiError::e500(format!("IPSet '{name}' is not empty")));
            }
            map.shift_remove(&name);
            Ok(Value::Null.into())
        }
        _ => Err(missing(r)),
    }
}

/// pve-firewall `Helpers::collect_refs`: the ipsets and aliases defined in one config
/// (no automatic `management`/`local_network` entries), `ref` without a scope prefix,
/// `comment` only when set.
fn collect_refs<'a>(
    ipsets: impl Iterator<Item = (&'a String, Option<&'a String>)>,
    aliases: impl Iterator<Item = (&'a String, Option<&'a Value>)>,
    want: Option<&str>,
    scope: &str,
) -> Vec<Value> {
    let mut out = vec![];
    if want != Some("alias") {
        for (n, c) in ipsets {
            let mut e = json!({"type": "ipset", "name": n, "ref": format!("+{n}"), "scope": scope});
            if let Some(c) = c.filter(|c| !c.is_empty()) {
                e["comment"] = json!(c);
            }
            out.push(e);
        }
    }
    if want != Some("ipset") {
        for (n, c) in aliases {
            let mut e = json!({"type": "alias", "name": n, "ref": n, "scope": scope});
            if let Some(c) = c.filter(|c| c.as_str().is_some_and(|x| !x.is_empty())) {
                e["comment"] = c.clone();
            }
            out.push(e);
        }
    }
    out
}

fn refs(st: &State, r: &Req) -> Value {
    let want = r.str("type");
    Value::Array(collect_refs(
        st.fw.ipsets.iter().map(|(n, s)| (n, s.comment.as_ref())),
        st.fw.aliases.iter().map(|(n, a)| (n, a.get("comment"))),
        want.as_deref(),
        "dc",
    ))
}
