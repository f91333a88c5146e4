//! Shared test helpers: load a fixture directory into a `FirewallConfig`
//! and read the small flow notation used by the tables.

#![allow(dead_code)]

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;

use labwright_firewall::{
    Backend, DecidedBy, Decision, FirewallConfig, Flow, GuestNic, Protocol, Target,
    parse_cluster_fw, parse_guest_fw, parse_host_fw,
};

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Load `tests/fixtures/<name>/`: `cluster.fw`, optional `host.fw` (for
/// node `proxmox`), `<vmid>.fw` files, and `network.txt` with node
/// addresses and guest NICs.
pub fn load(name: &str) -> FirewallConfig {
    let d = dir(name);
    let read = |f: &str| fs::read_to_string(d.join(f)).ok();
    let cluster =
        parse_cluster_fw(&read("cluster.fw").expect("cluster.fw")).expect("cluster.fw parses");
    let mut cfg = FirewallConfig {
        cluster,
        ..FirewallConfig::default()
    };
    if let Some(h) = read("host.fw") {
        cfg.nodes
            .insert("proxmox".into(), parse_host_fw(&h).expect("host.fw parses"));
    }
    for entry in fs::read_dir(&d).expect("fixture dir") {
        let path = entry.expect("dir entry").path();
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_string();
        if let Some(id) = file.strip_suffix(".fw").and_then(|s| s.parse::<u32>().ok()) {
            let text = fs::read_to_string(&path).expect("read vm fw");
            cfg.vms.insert(
                id,
                parse_guest_fw(&text).unwrap_or_else(|e| panic!("{file}: {e}")),
            );
        }
    }
    if let Some(net) = read("network.txt") {
        for line in net
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["node", name, rest @ ..] => {
                    let node = cfg.nodes.entry((*name).to_string()).or_default();
                    for w in rest {
                        match w.strip_prefix("iface=") {
                            Some(i) => node.network.default_iface = Some(i.to_string()),
                            None => node.network.addrs.push(w.parse().expect("node addr")),
                        }
                    }
                }
                ["nic", vmid, nic, fw, addrs @ ..] => {
                    let id: u32 = vmid.parse().expect("vmid");
                    let g = cfg.vms.entry(id).or_default();
                    g.nics.insert(
                        (*nic).to_string(),
                        GuestNic {
                            firewall: *fw == "firewall=1",
                            addrs: addrs.iter().map(|a| a.parse().expect("nic addr")).collect(),
                        },
                    );
                }
                _ => panic!("bad network.txt line: {line}"),
            }
        }
    }
    cfg
}

/// Parse the flow notation of the tables:
/// `[out] PROTO SRC > TARGET[:PORT] [iface=X] [sport=N]` where PROTO is
/// tcp, udp, ping, `icmp:TYPE`, igmp or a protocol name, and TARGET a node name or a
/// VMID. For `out` flows SRC is the remote end.
pub fn flow(spec: &str) -> Flow {
    let mut words: Vec<&str> = spec.split_whitespace().collect();
    let out = words.first() == Some(&"out");
    if out {
        words.remove(0);
    }
    let [proto, src, ">", target, rest @ ..] = words.as_slice() else {
        panic!("bad flow spec: {spec}");
    };
    let source: IpAddr = src.parse().expect("source ip");
    let (tname, port) = match target.split_once(':') {
        Some((t, p)) => (t, Some(p.parse::<u16>().expect("port"))),
        None => (*target, None),
    };
    let dest = match tname.parse::<u32>() {
        Ok(id) => Target::Vm(id),
        Err(_) => Target::Node(tname.to_string()),
    };
    let mut f = match *proto {
        "ping" => Flow::ping(source, dest),
        p if p.starts_with("icmp:") => {
            let mut f = Flow::new(source, dest, Protocol::ICMP, None);
            f.icmp_type = p.strip_prefix("icmp:").map(str::to_string);
            f
        }
        p => Flow::new(source, dest, Protocol::parse(p).expect("proto"), port),
    };
    for w in rest {
        if let Some(i) = w.strip_prefix("iface=") {
            f.iface = Some(i.to_string());
        } else if let Some(s) = w.strip_prefix("sport=") {
            f.sport = Some(s.parse().expect("sport"));
        } else {
            panic!("bad flow option {w}");
        }
    }
    if out { f.outbound() } else { f }
}

/// Short name of what decided, for table expectations.
pub fn decider(d: &Decision) -> String {
    match &d.decided_by {
        DecidedBy::Rule { level, index, .. } => format!("{level} #{index}"),
        DecidedBy::Policy { level, .. } => format!("policy {level}"),
        DecidedBy::FirewallDisabled { level } => format!("disabled {level}"),
        DecidedBy::NicFirewallDisabled { .. } => "nic firewall=0".into(),
        DecidedBy::ImplicitManagementAccept { .. } => "management".into(),
        DecidedBy::LocalNetworkOutAccept { .. } => "local_network out".into(),
        DecidedBy::Blacklist { .. } => "blacklist".into(),
        DecidedBy::Builtin { what } => format!("builtin {what}"),
    }
}

/// `I`/`N` in tables.
pub fn backend(code: &str) -> Backend {
    match code {
        "I" => Backend::Iptables,
        "N" => Backend::Nftables,
        _ => panic!("backend code {code}"),
    }
}
