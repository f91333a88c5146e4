//! The chains each backend generates around the user's rules: built-in
//! accepts and filters, their order relative to user rules, policies —
//! for the node (`host`) and for guests (`guest`).

use ipnet::IpNet;

use crate::eval::{
    Backend, Builtin, COROSYNC_PORTS, DHCP_CLIENT, DHCP_SERVER, DecidedBy, Decision, Direction,
    Flow, LOCAL_OUT_PORTS, Level, Outcome, SMB_TCP, SMB_UDP, UNPRIVILEGED, UPNP, in_ranges,
    management_ports, range_of,
};
use crate::model::{FirewallConfig, HostFirewall};
use crate::proto::Protocol;
use crate::resolve::{Ctx, is_loopback, set_lookup};
use crate::rule::Verdict;
use crate::walk::{Facts, Walk, adjust, reject_becomes_drop};

/// ICMP errors that nftables' `allow-icmp` chain accepts before any rule
/// (host and guests, both directions).
fn nft_icmp_error(flow: &Flow) -> bool {
    const V4: &[&str] = &[
        "destination-unreachable",
        "network-unreachable",
        "host-unreachable",
        "protocol-unreachable",
        "port-unreachable",
        "fragmentation-needed",
        "source-route-failed",
        "network-unknown",
        "host-unknown",
        "network-prohibited",
        "host-prohibited",
        "TOS-network-unreachable",
        "TOS-host-unreachable",
        "communication-prohibited",
        "host-precedence-violation",
        "precedence-cutoff",
        "source-quench",
        "time-exceeded",
        "ttl-zero-during-transit",
        "ttl-zero-during-reassembly",
    ];
    const V6: &[&str] = &[
        "destination-unreachable",
        "no-route",
        "communication-prohibited",
        "beyond-scope",
        "address-unreachable",
        "port-unreachable",
        "failed-policy",
        "reject-route",
        "packet-too-big",
        "time-exceeded",
        "ttl-zero-during-transit",
        "ttl-zero-during-reassembly",
        "parameter-problem",
        "bad-header",
        "unknown-header-type",
        "unknown-option",
    ];
    let Some(t) = flow.icmp_type.as_deref() else {
        return false;
    };
    (flow.proto.same(&Protocol::ICMP) && V4.contains(&t))
        || (flow.proto.same(&Protocol::ICMPV6) && V6.contains(&t))
}

/// ICMP types iptables' `PVEFW-Drop`/`PVEFW-Reject` policy chains still
/// accept, so a DROP policy does not break path MTU discovery.
fn ipt_policy_icmp(flow: &Flow) -> bool {
    const TYPES: &[&str] = &[
        "fragmentation-needed",
        "time-exceeded",
        "ttl-zero-during-transit",
        "ttl-zero-during-reassembly",
    ];
    flow.proto.same(&Protocol::ICMP)
        && flow
            .icmp_type
            .as_deref()
            .is_some_and(|t| TYPES.contains(&t))
}

/// nftables `default-in` noise filters, which run before any user rule:
/// SMB is rejected, UPnP and DNS replies are dropped.
fn nft_noise(flow: &Flow) -> Option<(Verdict, Builtin)> {
    let udp = flow.proto.same(&Protocol::UDP);
    let tcp = flow.proto.same(&Protocol::TCP);
    let dport = flow.dport;
    let smb_udp = udp && in_ranges(SMB_UDP, dport).is_some();
    let smb_sport = udp && flow.sport == Some(137) && in_ranges(&[UNPRIVILEGED], dport).is_some();
    let smb_tcp = tcp && in_ranges(SMB_TCP, dport).is_some();
    if smb_udp || smb_sport || smb_tcp {
        return Some((Verdict::Reject, Builtin::SmbNoise));
    }
    if udp && dport == Some(UPNP) {
        return Some((Verdict::Drop, Builtin::Upnp));
    }
    if udp && flow.sport == Some(53) {
        return Some((Verdict::Drop, Builtin::DnsReply));
    }
    None
}

fn builtin(walk: Walk, v: Verdict, what: Builtin) -> Decision {
    walk.done(v, DecidedBy::Builtin { what })
}

pub(crate) fn host(
    cfg: &FirewallConfig,
    flow: &Flow,
    backend: Backend,
    name: &str,
    mut walk: Walk,
) -> Decision {
    let default_host = HostFirewall::default();
    let hostfw = match cfg.nodes.get(name) {
        Some(h) => h,
        None => {
            walk.step(
                "-",
                format!("node {name}"),
                Outcome::Note("no host.fw: PVE defaults".into()),
            );
            &default_host
        }
    };
    let node_level = Level::Node(name.to_string());
    if !hostfw.options.enable {
        walk.step("-", "host.fw enable: 0", Outcome::Matched(Verdict::Accept));
        return walk.done(
            Verdict::Accept,
            DecidedBy::FirewallDisabled { level: node_level },
        );
    }
    let ctx = Ctx {
        cfg,
        backend,
        node: Some(name),
        guest: None,
    };
    let facts = Facts {
        flow,
        local: flow
            .dest_addr
            .or_else(|| hostfw.network.addrs.first().map(IpNet::addr)),
        iface: flow
            .iface
            .clone()
            .or_else(|| hostfw.network.default_iface.clone()),
    };
    let inbound = flow.direction == Direction::In;
    let nft = backend == Backend::Nftables;
    let (c_builtin, c_host, c_cluster) = match (backend, inbound) {
        (Backend::Iptables, true) => ("PVEFW-HOST-IN", "PVEFW-HOST-IN", "PVEFW-HOST-IN"),
        (Backend::Iptables, false) => ("PVEFW-HOST-OUT", "PVEFW-HOST-OUT", "PVEFW-HOST-OUT"),
        (Backend::Nftables, true) => ("default-in", "host-in", "cluster-in"),
        (Backend::Nftables, false) => ("default-out", "host-out", "cluster-out"),
    };

    if is_loopback(flow.source) {
        walk.step(c_builtin, "loopback", Outcome::Matched(Verdict::Accept));
        return builtin(walk, Verdict::Accept, Builtin::Loopback);
    }
    if nft && nft_icmp_error(flow) {
        walk.step(c_builtin, "allow-icmp", Outcome::Matched(Verdict::Accept));
        return builtin(walk, Verdict::Accept, Builtin::IcmpError);
    }

    let mgmt = |walk: &mut Walk, chain: &str| -> Option<DecidedBy> {
        let what = "management: tcp 8006,5900:5999,3128,22 from +management";
        if !flow.proto.same(&Protocol::TCP) {
            walk.step(
                chain,
                what,
                Outcome::NoMatch(format!("proto {} is not tcp", flow.proto)),
            );
            return None;
        }
        let Some(ports) = range_of(management_ports(backend), flow.dport) else {
            walk.step(
                chain,
                what,
                Outcome::NoMatch("not a management port".into()),
            );
            return None;
        };
        match set_lookup(&ctx.management_set(), flow.source, backend) {
            Some(entry) => {
                walk.step(chain, what, Outcome::Matched(Verdict::Accept));
                Some(DecidedBy::ImplicitManagementAccept { ports, entry })
            }
            None => {
                walk.step(
                    chain,
                    what,
                    Outcome::NoMatch(format!("{} not in +management", flow.source)),
                );
                None
            }
        }
    };
    let corosync = |walk: &mut Walk, chain: &str, from_anyone: bool| -> bool {
        let what = if from_anyone {
            "corosync: udp 5405:5412"
        } else {
            "corosync: udp 5405:5412 from cluster peers"
        };
        let port_ok =
            flow.proto.same(&Protocol::UDP) && in_ranges(&[COROSYNC_PORTS], flow.dport).is_some();
        let peer_ok = from_anyone || cfg.corosync_peers.contains(&flow.source);
        if port_ok && peer_ok {
            walk.step(chain, what, Outcome::Matched(Verdict::Accept));
            true
        } else {
            let why = if port_ok {
                "not a cluster peer"
            } else {
                "not corosync"
            };
            walk.step(chain, what, Outcome::NoMatch(why.into()));
            false
        }
    };
    let blacklist = |walk: &mut Walk| -> Option<DecidedBy> {
        let set = ctx.blacklist_set()?;
        match set_lookup(&set, flow.source, backend) {
            Some(entry) => {
                walk.step(c_builtin, "+blacklist", Outcome::Matched(Verdict::Drop));
                Some(DecidedBy::Blacklist { entry })
            }
            None => {
                walk.step(
                    c_builtin,
                    "+blacklist",
                    Outcome::NoMatch(format!("{} not in +blacklist", flow.source)),
                );
                None
            }
        }
    };
    let igmp = |walk: &mut Walk| -> bool {
        let hit = flow.proto.same(&Protocol::IGMP);
        if hit {
            walk.step(c_builtin, "igmp", Outcome::Matched(Verdict::Accept));
        }
        hit
    };

    if inbound {
        if nft {
            // default-in: igmp, management, corosync and noise filters all
            // come before any user rule.
            if igmp(&mut walk) {
                return builtin(walk, Verdict::Accept, Builtin::Igmp);
            }
            if let Some(by) = mgmt(&mut walk, c_builtin) {
                return walk.done(Verdict::Accept, by);
            }
            if corosync(&mut walk, c_builtin, true) {
                return builtin(walk, Verdict::Accept, Builtin::Corosync);
            }
            if let Some((v, what)) = nft_noise(flow) {
                walk.step(c_builtin, format!("{what}"), Outcome::Matched(v));
                return builtin(walk, v, what);
            }
            if let Some(by) = blacklist(&mut walk) {
                return walk.done(Verdict::Drop, by);
            }
        } else {
            if let Some(by) = blacklist(&mut walk) {
                return walk.done(Verdict::Drop, by);
            }
            if igmp(&mut walk) {
                return builtin(walk, Verdict::Accept, Builtin::Igmp);
            }
        }
    }

    if let Some((v, by)) = walk.rules(&ctx, c_host, &node_level, &hostfw.rules, &facts) {
        return walk.done(v, by);
    }
    if let Some((v, by)) = walk.rules(&ctx, c_cluster, &Level::Cluster, &cfg.cluster.rules, &facts)
    {
        return walk.done(v, by);
    }

    if inbound {
        if !nft {
            if let Some(by) = mgmt(&mut walk, c_builtin) {
                return walk.done(Verdict::Accept, by);
            }
            if corosync(&mut walk, c_builtin, false) {
                return builtin(walk, Verdict::Accept, Builtin::Corosync);
            }
        }
        let policy = cfg.cluster.options.effective_policy_in();
        let applied = adjust(policy, &ctx, &facts);
        return policy_step(
            walk,
            c_cluster,
            format!("cluster policy_in {policy}"),
            Level::Cluster,
            policy,
            applied,
            flow,
            backend,
        );
    }

    // Outbound: automatic accept to local_network on management ports.
    let what = "management: tcp 8006,22,5900:5999,3128 to local_network";
    match range_of(LOCAL_OUT_PORTS, flow.dport).filter(|_| flow.proto.same(&Protocol::TCP)) {
        Some(ports)
            if ctx
                .local_network()
                .iter()
                .any(|iv| iv.contains(flow.source)) =>
        {
            walk.step(c_builtin, what, Outcome::Matched(Verdict::Accept));
            return walk.done(Verdict::Accept, DecidedBy::LocalNetworkOutAccept { ports });
        }
        _ => walk.step(
            c_builtin,
            what,
            Outcome::NoMatch("not management traffic to local_network".into()),
        ),
    }
    if corosync(&mut walk, c_builtin, false) {
        return builtin(walk, Verdict::Accept, Builtin::Corosync);
    }
    let policy = cfg.cluster.options.effective_policy_out();
    let applied = adjust(policy, &ctx, &facts);
    policy_step(
        walk,
        c_cluster,
        format!("cluster policy_out {policy}"),
        Level::Cluster,
        policy,
        applied,
        flow,
        backend,
    )
}

/// The final policy step. `applied` may differ from `policy` (nftables
/// turns a guest REJECT into DROP); iptables' policy chains still let
/// the ICMP errors path MTU discovery needs through.
#[allow(clippy::too_many_arguments)]
fn policy_step(
    mut walk: Walk,
    chain: &str,
    what: String,
    level: Level,
    policy: Verdict,
    applied: Verdict,
    flow: &Flow,
    backend: Backend,
) -> Decision {
    if applied != Verdict::Accept && backend == Backend::Iptables && ipt_policy_icmp(flow) {
        walk.step(
            chain,
            "PVEFW-Drop: accept fragmentation-needed/time-exceeded",
            Outcome::Matched(Verdict::Accept),
        );
        return builtin(walk, Verdict::Accept, Builtin::IcmpError);
    }
    if applied != policy {
        walk.step(
            chain,
            what,
            Outcome::Note(
                reject_becomes_drop(backend, flow)
                    .unwrap_or("REJECT becomes DROP")
                    .into(),
            ),
        );
        walk.step(chain, "policy", Outcome::Matched(applied));
    } else {
        walk.step(chain, what, Outcome::Matched(applied));
    }
    walk.done(applied, DecidedBy::Policy { level, policy })
}

pub(crate) fn guest(
    cfg: &FirewallConfig,
    flow: &Flow,
    backend: Backend,
    vmid: u32,
    mut walk: Walk,
) -> Decision {
    let level = Level::Vm(vmid);
    let Some(g) = cfg.vms.get(&vmid) else {
        walk.step(
            "-",
            format!("vm {vmid}"),
            Outcome::Note("no firewall config: enable defaults to 0".into()),
        );
        return walk.done(Verdict::Accept, DecidedBy::FirewallDisabled { level });
    };
    if !g.options.enable {
        walk.step(
            "-",
            format!("{vmid}.fw enable: 0"),
            Outcome::Matched(Verdict::Accept),
        );
        return walk.done(Verdict::Accept, DecidedBy::FirewallDisabled { level });
    }
    let nic_name = flow
        .iface
        .clone()
        .or_else(|| g.nics.keys().next().cloned())
        .unwrap_or_else(|| "net0".to_string());
    let nic = g.nics.get(&nic_name);
    match nic {
        Some(n) if !n.firewall => {
            walk.step(
                "-",
                format!("vm {vmid} {nic_name}"),
                Outcome::Matched(Verdict::Accept),
            );
            return walk.done(
                Verdict::Accept,
                DecidedBy::NicFirewallDisabled {
                    vmid,
                    iface: nic_name,
                },
            );
        }
        None if !g.nics.is_empty() => {
            walk.step(
                "-",
                format!("vm {vmid} {nic_name}"),
                Outcome::Note("NIC not in config; assuming firewall=1".into()),
            );
        }
        _ => {}
    }
    let single_node = || {
        if cfg.nodes.len() == 1 {
            cfg.nodes.keys().next().map(String::as_str)
        } else {
            None
        }
    };
    let node = g.node.as_deref().or_else(single_node);
    let ctx = Ctx {
        cfg,
        backend,
        node,
        guest: Some(g),
    };
    let facts = Facts {
        flow,
        local: flow
            .dest_addr
            .or_else(|| nic.and_then(|n| n.addrs.first().copied())),
        iface: Some(nic_name.clone()),
    };
    let inbound = flow.direction == Direction::In;
    let nft = backend == Backend::Nftables;
    let tap = nic_name.strip_prefix("net").unwrap_or(&nic_name);
    let chain = match (backend, inbound) {
        (Backend::Iptables, true) => format!("tap{vmid}i{tap}-IN"),
        (Backend::Iptables, false) => format!("tap{vmid}i{tap}-OUT"),
        (Backend::Nftables, true) => format!("guest-{vmid}-in"),
        (Backend::Nftables, false) => format!("guest-{vmid}-out"),
    };
    if nft && nft_icmp_error(flow) {
        walk.step(
            if inbound { "vm-in" } else { "vm-out" },
            "allow-icmp",
            Outcome::Matched(Verdict::Accept),
        );
        return builtin(walk, Verdict::Accept, Builtin::IcmpError);
    }
    if inbound && let Some(set) = ctx.blacklist_set() {
        match set_lookup(&set, flow.source, backend) {
            Some(entry) => {
                walk.step(&chain, "+blacklist", Outcome::Matched(Verdict::Drop));
                return walk.done(Verdict::Drop, DecidedBy::Blacklist { entry });
            }
            None => walk.step(
                &chain,
                "+blacklist",
                Outcome::NoMatch(format!("{} not in +blacklist", flow.source)),
            ),
        }
    }
    let (dport, sport) = if inbound {
        (DHCP_CLIENT, DHCP_SERVER)
    } else {
        (DHCP_SERVER, DHCP_CLIENT)
    };
    let is_dhcp = flow.proto.same(&Protocol::UDP)
        && flow.dport == Some(dport)
        && flow.sport.is_none_or(|s| s == sport);
    if is_dhcp && g.options.dhcp {
        walk.step(&chain, "dhcp: 1", Outcome::Matched(Verdict::Accept));
        return builtin(walk, Verdict::Accept, Builtin::Dhcp);
    }
    if is_dhcp && nft {
        walk.step(
            &chain,
            "dhcp: 0 (block-dhcp)",
            Outcome::Matched(Verdict::Drop),
        );
        return builtin(walk, Verdict::Drop, Builtin::DhcpBlocked);
    }
    if let Some((v, by)) = walk.rules(&ctx, &chain, &level, &g.rules, &facts) {
        return walk.done(v, by);
    }
    let policy = if inbound {
        g.options.effective_policy_in()
    } else {
        g.options.effective_policy_out()
    };
    let applied = adjust(policy, &ctx, &facts);
    let what = format!(
        "vm {vmid} policy_{} {policy}",
        if inbound { "in" } else { "out" }
    );
    policy_step(walk, &chain, what, level, policy, applied, flow, backend)
}
