//! Every boundary the config can tell apart — addresses, destination and
//! source ports — so that proofs split ranges exactly.

use std::net::{IpAddr, Ipv6Addr};

use crate::addr::{AddressRef, Interval};
use crate::eval::{
    Backend, COROSYNC_PORTS, DHCP_CLIENT, DHCP_SERVER, LOCAL_OUT_PORTS, SMB_TCP, SMB_UDP,
    UNPRIVILEGED, UPNP, management_ports,
};
use crate::model::{Alias, FirewallConfig, Ipset, IpsetTarget};
use crate::resolve::loopback_v4;
use crate::rule::Rule;

/// Every interval any address object in the config refers to, plus the
/// implicit ones (`local_network`, loopback). The range prover splits at
/// their boundaries.
pub(crate) fn all_intervals(cfg: &FirewallConfig) -> Vec<Interval> {
    let mut out = vec![
        loopback_v4(),
        Interval::single(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    let rule_addrs = |rules: &[Rule], out: &mut Vec<Interval>| {
        for r in rules {
            for a in [&r.source, &r.dest].into_iter().flatten() {
                match a {
                    AddressRef::List { entries } => {
                        out.extend(entries.iter().map(|e| e.interval()))
                    }
                    AddressRef::Range { start, end } => out.push(Interval::range(*start, *end)),
                    AddressRef::Alias { .. } | AddressRef::Ipset { .. } => {}
                }
            }
        }
    };
    let sets = |aliases: &std::collections::BTreeMap<String, Alias>,
                ipsets: &std::collections::BTreeMap<String, Ipset>,
                out: &mut Vec<Interval>| {
        out.extend(aliases.values().map(|a| a.cidr.interval()));
        for s in ipsets.values() {
            for e in &s.entries {
                if let IpsetTarget::Addr(a) = &e.target {
                    out.push(a.interval());
                }
            }
        }
    };
    rule_addrs(&cfg.cluster.rules, &mut out);
    for g in cfg.cluster.groups.values() {
        rule_addrs(&g.rules, &mut out);
    }
    sets(&cfg.cluster.aliases, &cfg.cluster.ipsets, &mut out);
    for h in cfg.nodes.values() {
        rule_addrs(&h.rules, &mut out);
        for a in &h.network.addrs {
            out.push(Interval::of_net(&a.trunc()));
            out.push(Interval::single(a.addr()));
        }
    }
    for g in cfg.vms.values() {
        rule_addrs(&g.rules, &mut out);
        sets(&g.aliases, &g.ipsets, &mut out);
        for n in g.nics.values() {
            out.extend(n.addrs.iter().map(|a| Interval::single(*a)));
        }
    }
    out.extend(cfg.corosync_peers.iter().map(|a| Interval::single(*a)));
    out
}

/// Every destination-port boundary the config and the built-in chains
/// can tell apart (each range contributes `lo` and `hi + 1`). Splitting a
/// port range at these makes port-range proofs exact too.
pub(crate) fn all_port_cuts(cfg: &FirewallConfig) -> Vec<u32> {
    let mut out = Vec::new();
    let mut ranges = |rs: &[(u16, u16)]| {
        for &(lo, hi) in rs {
            out.push(u32::from(lo));
            out.push(u32::from(hi) + 1);
        }
    };
    ranges(management_ports(Backend::Iptables));
    ranges(LOCAL_OUT_PORTS);
    // Every port constant the built-in chains test, so that no built-in
    // decision can change inside a class.
    ranges(&[
        COROSYNC_PORTS,
        UNPRIVILEGED,
        (UPNP, UPNP),
        (DHCP_SERVER, DHCP_SERVER),
        (DHCP_CLIENT, DHCP_CLIENT),
    ]);
    ranges(SMB_UDP);
    ranges(SMB_TCP);
    let mut rule_cuts = Vec::new();
    let mut add_rules = |rules: &[Rule]| {
        for r in rules {
            if let Some(d) = &r.dport {
                d.boundaries(&mut rule_cuts);
            }
            if let Some(m) = r.macro_def() {
                for e in m.entries.iter().chain(m.v6.unwrap_or(&[])) {
                    for &(lo, hi) in e.dport {
                        rule_cuts.push(u32::from(lo));
                        rule_cuts.push(u32::from(hi) + 1);
                    }
                }
            }
        }
    };
    add_rules(&cfg.cluster.rules);
    for g in cfg.cluster.groups.values() {
        add_rules(&g.rules);
    }
    for h in cfg.nodes.values() {
        add_rules(&h.rules);
    }
    for g in cfg.vms.values() {
        add_rules(&g.rules);
    }
    out.extend(rule_cuts);
    out
}

/// Source-port boundaries of every rule that tests `-sport` (directly or
/// through a macro); empty when no rule does.
pub(crate) fn all_sport_cuts(cfg: &FirewallConfig) -> Vec<u32> {
    let mut out = Vec::new();
    let mut add_rules = |rules: &[Rule]| {
        for r in rules {
            if let Some(sp) = &r.sport {
                sp.boundaries(&mut out);
            }
            if let Some(m) = r.macro_def() {
                for e in m.entries.iter().chain(m.v6.unwrap_or(&[])) {
                    for &(lo, hi) in e.sport {
                        out.push(u32::from(lo));
                        out.push(u32::from(hi) + 1);
                    }
                }
            }
        }
    };
    add_rules(&cfg.cluster.rules);
    for g in cfg.cluster.groups.values() {
        add_rules(&g.rules);
    }
    for h in cfg.nodes.values() {
        add_rules(&h.rules);
    }
    for g in cfg.vms.values() {
        add_rules(&g.rules);
    }
    out
}
