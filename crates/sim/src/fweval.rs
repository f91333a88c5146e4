//! The simulator's own, deliberately small firewall evaluator (behaviour.md §9.2): does
//! the configuration held by the simulated node let `client` reach TCP `port` on the
//! host? Written independently of labwright's firewall crate on purpose.

use std::net::{IpAddr, Ipv4Addr};

use crate::state::{Ipset, Obj, State, Vm};

fn opt_int(o: &Obj, k: &str) -> Option<i64> {
    o.get(k).and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

fn opt_str<'a>(o: &'a Obj, k: &str) -> Option<&'a str> {
    o.get(k)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Does one address element (IP, CIDR, range) contain `ip`?
fn elem_contains(e: &str, ip: IpAddr) -> bool {
    if let Some((a, b)) = e.split_once('-') {
        return match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
            (Ok(a), Ok(b)) => a <= ip && ip <= b,
            _ => false,
        };
    }
    if let Ok(net) = e.parse::<ipnet::IpNet>() {
        return net.contains(&ip);
    }
    e.parse::<IpAddr>().is_ok_and(|a| a == ip)
}

/// The node's own subnet (`local_network`), unless the user defined that alias.
fn local_network(st: &State) -> Option<String> {
    if let Some(a) = st.fw.aliases.get("local_network") {
        return opt_str(a, "cidr").map(String::from);
    }
    let node = st.nodes.values().next()?;
    let ip: Ipv4Addr = node.ip.parse().ok()?;
    for iface in node.network.values() {
        if let Some(cidr) = opt_str(iface, "cidr")
            && let Ok(net) = cidr.parse::<ipnet::Ipv4Net>()
            && net.contains(&ip)
        {
            return Some(net.trunc().to_string());
        }
    }
    Some(format!("{ip}/24"))
}

fn ipset_contains(st: &State, set: &Ipset, ip: IpAddr) -> bool {
    let mut hit = false;
    for e in &set.entries {
        let Some(cidr) = opt_str(e, "cidr") else {
            continue;
        };
        let resolved = resolve_alias(st, cidr).unwrap_or_else(|| cidr.to_string());
        if elem_contains(&resolved, ip) {
            if opt_int(e, "nomatch").unwrap_or(0) == 1 {
                return false;
            }
            hit = true;
        }
    }
    hit
}

fn resolve_alias(st: &State, name: &str) -> Option<String> {
    let n = name.strip_prefix("dc/").unwrap_or(name);
    if n == "local_network" {
        return local_network(st);
    }
    st.fw
        .aliases
        .get(n)
        .and_then(|a| opt_str(a, "cidr"))
        .map(String::from)
}

fn in_management(st: &State, ip: IpAddr) -> bool {
    if let Some(set) = st.fw.ipsets.get("management")
        && ipset_contains(st, set, ip)
    {
        return true;
    }
    local_network(st).is_some_and(|n| elem_contains(&n, ip))
}

/// Does an address spec (`source`) match?
fn addr_matches(st: &State, spec: &str, ip: IpAddr) -> bool {
    if let Some(name) = spec.strip_prefix('+') {
        let n = name.strip_prefix("dc/").unwrap_or(name);
        if n == "management" {
            return in_management(st, ip);
        }
        return st
            .fw
            .ipsets
            .get(n)
            .is_some_and(|s| ipset_contains(st, s, ip));
    }
    if let Some(c) = resolve_alias(st, spec) {
        return elem_contains(&c, ip);
    }
    spec.split(',').any(|e| elem_contains(e, ip))
}

/// TCP ports a macro opens (the ones that matter for management access).
fn macro_ports(m: &str) -> Option<(&'static str, Vec<(u16, u16)>)> {
    Some(match m.to_ascii_lowercase().as_str() {
        "ssh" => ("tcp", vec![(22, 22)]),
        "http" => ("tcp", vec![(80, 80)]),
        "https" => ("tcp", vec![(443, 443)]),
        "web" => ("tcp", vec![(80, 80), (443, 443)]),
        "dns" => ("udp", vec![(53, 53)]),
        "ping" => ("icmp", vec![]),
        _ => return None,
    })
}

fn port_matches(spec: &str, port: u16) -> bool {
    spec.split(',').any(|p| {
        if let Some((a, b)) = p.split_once(':') {
            matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= port && port <= b)
        } else if let Ok(n) = p.parse::<u16>() {
            n == port
        } else {
            crate::formats::SERVICES
                .iter()
                .any(|(n, p2)| *n == p && *p2 == port)
        }
    })
}

/// Verdict of one rule for inbound TCP `port` from `ip`: Some(accept?) when it matches.
fn rule_verdict(st: &State, r: &Obj, ip: IpAddr, port: u16, depth: u8) -> Option<bool> {
    if opt_int(r, "enable").unwrap_or(0) != 1 {
        return None;
    }
    let ty = opt_str(r, "type").unwrap_or("in");
    let action = opt_str(r, "action").unwrap_or("");
    if ty == "group" {
        if depth > 0 {
            return None;
        }
        let g = st.fw.groups.get(action)?;
        for gr in &g.rules {
            if let Some(v) = rule_verdict(st, gr, ip, port, depth + 1) {
                return Some(v);
            }
        }
        return None;
    }
    if ty != "in" {
        return None;
    }
    if let Some(src) = opt_str(r, "source")
        && !addr_matches(st, src, ip)
    {
        return None;
    }
    if let Some(dst) = opt_str(r, "dest") {
        let node_ip = st
            .nodes
            .values()
            .next()
            .and_then(|n| n.ip.parse::<IpAddr>().ok());
        if !node_ip.is_some_and(|n| addr_matches(st, dst, n)) {
            return None;
        }
    }
    if let Some(iface) = opt_str(r, "iface")
        && iface != "vmbr0"
    {
        return None;
    }
    if !tcp_port_matches(r, port) {
        return None;
    }
    Some(action == "ACCEPT")
}

/// Would the host accept a new TCP connection from `ip` to `port`?
pub fn host_allows(st: &State, ip: IpAddr, port: u16) -> bool {
    if opt_int(&st.fw.options, "enable").unwrap_or(0) != 1 {
        return true;
    }
    if ip.is_loopback() {
        return true;
    }
    let Some(node) = st.nodes.values().next() else {
        return true;
    };
    if opt_int(&node.fw_options, "enable").unwrap_or(1) == 0 {
        return true;
    }
    if let Some(bl) = st.fw.ipsets.get("blacklist")
        && ipset_contains(st, bl, ip)
    {
        return false;
    }
    let nft = opt_int(&node.fw_options, "nftables").unwrap_or(0) == 1;
    let mgmt_ports = [8006u16, 22, 3128];
    let mgmt = mgmt_ports.contains(&port) || (5900..=5999).contains(&port);
    if nft && mgmt && in_management(st, ip) {
        return true;
    }
    for r in node.fw_rules.iter().chain(st.fw.rules.iter()) {
        if let Some(v) = rule_verdict(st, r, ip, port, 0) {
            return v;
        }
    }
    if mgmt && in_management(st, ip) {
        return true;
    }
    opt_str(&st.fw.options, "policy_in").unwrap_or("DROP") == "ACCEPT"
}

/// A guest NIC firewall's decision on a new inbound connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmVerdict {
    Accept,
    Drop,
    Reject,
}

/// Does a VM-level address spec hold `ip`? The guest's own aliases and IP sets come
/// first (`guest/` forces them), then the datacenter's (`dc/` forces those).
fn vm_addr_matches(st: &State, vm: &Vm, spec: &str, ip: IpAddr) -> bool {
    if let Some(name) = spec.strip_prefix('+') {
        if let Some(n) = name.strip_prefix("guest/").or_else(|| {
            (!name.starts_with("dc/") && vm.fw_ipsets.contains_key(name)).then_some(name)
        }) {
            return vm
                .fw_ipsets
                .get(n)
                .is_some_and(|s| ipset_contains(st, s, ip));
        }
        return addr_matches(st, spec, ip);
    }
    let local = spec
        .strip_prefix("guest/")
        .or_else(|| (!spec.starts_with("dc/")).then_some(spec))
        .and_then(|n| vm.fw_aliases.get(n))
        .and_then(|a| opt_str(a, "cidr"));
    if let Some(c) = local {
        return elem_contains(c, ip);
    }
    addr_matches(st, spec, ip)
}

fn vm_rule(st: &State, vm: &Vm, r: &Obj, ip: IpAddr, port: u16, depth: u8) -> Option<VmVerdict> {
    if opt_int(r, "enable").unwrap_or(0) != 1 {
        return None;
    }
    let ty = opt_str(r, "type").unwrap_or("in");
    let action = opt_str(r, "action").unwrap_or("");
    if ty == "group" {
        if depth > 0 {
            return None;
        }
        let g = st.fw.groups.get(action)?;
        return g
            .rules
            .iter()
            .find_map(|gr| vm_rule(st, vm, gr, ip, port, depth + 1));
    }
    if ty != "in" {
        return None;
    }
    if let Some(src) = opt_str(r, "source")
        && !vm_addr_matches(st, vm, src, ip)
    {
        return None;
    }
    if !tcp_port_matches(r, port) {
        return None;
    }
    Some(match action {
        "ACCEPT" => VmVerdict::Accept,
        "REJECT" => VmVerdict::Reject,
        _ => VmVerdict::Drop,
    })
}

/// Would `vm`'s firewall (on a NIC with `firewall=1`) let a new TCP connection from
/// `ip` to `port` in? Only when both the datacenter's and the guest's firewall are
/// enabled; its IN rules in order, then its `policy_in` (default DROP).
pub fn vm_allows(st: &State, vm: &Vm, ip: IpAddr, port: u16) -> VmVerdict {
    if opt_int(&st.fw.options, "enable").unwrap_or(0) != 1
        || opt_int(&vm.fw_options, "enable").unwrap_or(0) != 1
    {
        return VmVerdict::Accept;
    }
    for r in &vm.fw_rules {
        if let Some(v) = vm_rule(st, vm, r, ip, port, 0) {
            return v;
        }
    }
    match opt_str(&vm.fw_options, "policy_in").unwrap_or("DROP") {
        "ACCEPT" => VmVerdict::Accept,
        "REJECT" => VmVerdict::Reject,
        _ => VmVerdict::Drop,
    }
}

/// Does rule `r` match TCP to `port` (its macro, or its `proto` and `dport`)? An
/// unknown macro matches nothing.
fn tcp_port_matches(r: &Obj, port: u16) -> bool {
    if let Some(m) = opt_str(r, "macro") {
        return macro_ports(m).is_some_and(|(proto, ports)| {
            proto == "tcp" && ports.iter().any(|(a, b)| *a <= port && port <= *b)
        });
    }
    if let Some(p) = opt_str(r, "proto")
        && p != "tcp"
        && p != "6"
    {
        return false;
    }
    opt_str(r, "dport").is_none_or(|d| port_matches(d, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Scenario;
    use serde_json::json;

    fn st() -> State {
        let mut s = State::scenario(Scenario::Fresh, 0);
        s.fw.options.insert("enable".into(), json!(1));
        s
    }

    #[test]
    fn disabled_firewall_allows_everything() {
        let s = State::scenario(Scenario::Fresh, 0);
        assert!(host_allows(
            &s,
            "10.9.9.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            8006
        ));
    }

    #[test]
    fn local_network_is_management_but_outsiders_are_dropped() {
        let s = st();
        assert!(host_allows(&s, IpAddr::from([192, 168, 1, 50]), 8006));
        assert!(!host_allows(&s, IpAddr::from([100, 64, 0, 5]), 8006));
    }

    #[test]
    fn user_drop_rule_precedes_management_exception() {
        let mut s = st();
        let rule: Obj = serde_json::from_value(
            json!({"type":"in","action":"DROP","enable":1,"proto":"tcp","dport":"8006"}),
        )
        .unwrap_or_default();
        s.fw.rules.push(rule);
        assert!(!host_allows(&s, IpAddr::from([192, 168, 1, 50]), 8006));
        // A disabled rule does nothing.
        if let Some(r) = s.fw.rules.get_mut(0) {
            r.insert("enable".into(), json!(0));
        }
        assert!(host_allows(&s, IpAddr::from([192, 168, 1, 50]), 8006));
    }

    #[test]
    fn vm_firewall_rules_then_policy_with_guest_and_dc_names() {
        let mut s = st();
        let mut vm = Vm::default();
        let ip = |x: &str| x.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        // Disabled on the guest: everything passes.
        assert_eq!(vm_allows(&s, &vm, ip("10.10.20.5"), 22), VmVerdict::Accept);
        vm.fw_options.insert("enable".into(), json!(1));
        assert_eq!(vm_allows(&s, &vm, ip("10.10.20.5"), 22), VmVerdict::Drop);
        s.fw.aliases.insert(
            "iot".into(),
            serde_json::from_value(json!({"cidr": "10.10.20.0/24"})).unwrap_or_default(),
        );
        let rule: Obj = serde_json::from_value(json!({"type":"in","action":"ACCEPT","enable":1,"source":"dc/iot","proto":"tcp","dport":"8123"})).unwrap_or_default();
        vm.fw_rules.push(rule);
        assert_eq!(
            vm_allows(&s, &vm, ip("10.10.20.5"), 8123),
            VmVerdict::Accept
        );
        assert_eq!(vm_allows(&s, &vm, ip("10.10.10.5"), 8123), VmVerdict::Drop);
        vm.fw_options.insert("policy_in".into(), json!("REJECT"));
        assert_eq!(
            vm_allows(&s, &vm, ip("10.10.10.5"), 8123),
            VmVerdict::Reject
        );
        // The datacenter firewall off switches every guest's off.
        s.fw.options.insert("enable".into(), json!(0));
        assert_eq!(
            vm_allows(&s, &vm, ip("10.10.10.5"), 8123),
            VmVerdict::Accept
        );
    }

    #[test]
    fn accept_rule_for_tailscale_range_admits_it() {
        let mut s = st();
        let rule: Obj = serde_json::from_value(json!({"type":"in","action":"ACCEPT","enable":1,"source":"100.64.0.0/10","proto":"tcp","dport":"8006"}))
            .unwrap_or_default();
        s.fw.rules.push(rule);
        assert!(host_allows(&s, IpAddr::from([100, 64, 0, 5]), 8006));
    }
}
