//! The flow table: realistic configurations (the seeds' homelab and the
//! classic lock-out cases), each flow with its expected verdict and the
//! rule or policy that must decide it, under both backends where they
//! differ. The full results are also snapshot-tested.

mod common;

use common::{backend, decider, flow, load};
use labwright_firewall::{Verdict, evaluate};
use serde::Serialize;

use Verdict::{Accept as A, Drop as D, Reject as R};

/// (fixture, flow, backend, verdict, decided by)
#[rustfmt::skip]
const TABLE: &[(&str, &str, &str, Verdict, &str)] = &[
    // --- node proxmox, homelab: management access ---
    ("homelab", "tcp 192.168.1.20 > proxmox:22", "I", A, "cluster #1"),
    ("homelab", "tcp 192.168.1.20 > proxmox:22", "N", A, "management"),
    ("homelab", "tcp 192.168.1.20 > proxmox:8006", "I", A, "cluster #3"),
    ("homelab", "tcp 100.100.5.5 > proxmox:8006", "I", A, "cluster #2"),
    ("homelab", "tcp 100.100.5.5 > proxmox:22", "N", A, "management"),
    ("homelab", "tcp 100.100.5.5 > proxmox:5900", "I", A, "management"),
    ("homelab", "tcp 100.100.5.5 > proxmox:443", "I", D, "policy cluster"),
    // iptables runs node rules before the management accept; nftables after
    ("homelab", "tcp 192.168.1.66 > proxmox:22", "I", D, "node proxmox #1"),
    ("homelab", "tcp 192.168.1.66 > proxmox:22", "N", A, "management"),
    ("homelab", "tcp 192.168.1.20 > proxmox:3128", "I", R, "node proxmox #3"),
    ("homelab", "tcp 192.168.1.20 > proxmox:3128", "N", A, "management"),
    ("homelab", "tcp 192.168.1.50 > proxmox:9100", "I", A, "node proxmox #0"),
    ("homelab", "tcp 192.168.1.51 > proxmox:9100", "I", D, "policy cluster"),
    // segments blocked from management through the security group
    ("homelab", "tcp 10.10.1.5 > proxmox:22", "I", D, "group segments-block #0"),
    ("homelab", "tcp 10.10.1.5 > proxmox:22", "N", D, "group segments-block #0"),
    ("homelab", "tcp 10.10.2.7 > proxmox:8006", "I", R, "group segments-block #1"),
    ("homelab", "tcp 10.10.2.7 > proxmox:22", "I", D, "group segments-block #2"),
    ("homelab", "tcp 10.10.2.200 > proxmox:8006", "I", D, "policy cluster"),
    ("homelab", "udp 10.10.1.5 > proxmox:123 iface=vmbr1", "I", A, "node proxmox #2"),
    ("homelab", "udp 10.10.1.5 > proxmox:123", "I", D, "policy cluster"),
    // macros
    ("homelab", "ping 192.168.1.20 > proxmox", "I", A, "cluster #4"),
    ("homelab", "ping 100.100.5.5 > proxmox", "I", D, "policy cluster"),
    ("homelab", "udp 192.168.1.20 > proxmox:53", "I", A, "cluster #6"),
    ("homelab", "tcp 192.168.1.20 > proxmox:53", "N", A, "cluster #6"),
    ("homelab", "tcp 192.168.1.20 > proxmox:80", "I", D, "policy cluster"),
    // blacklist, disabled rules, built-ins
    ("homelab", "tcp 203.0.113.9 > proxmox:22", "I", D, "blacklist"),
    // proxmox-firewall generates no blacklist rule (oracle nftables/c17)
    ("homelab", "tcp 203.0.113.9 > proxmox:22", "N", D, "policy cluster"),
    ("homelab", "tcp 198.51.100.7 > proxmox:8006", "N", D, "policy cluster"),
    ("homelab", "tcp 198.51.100.7 > proxmox:8006", "I", D, "blacklist"),
    ("homelab", "tcp 8.8.8.8 > proxmox:8006", "I", D, "policy cluster"),
    ("homelab", "tcp 192.168.1.20 > proxmox:60000", "I", A, "management"),
    ("homelab", "tcp 192.168.1.20 > proxmox:60000", "N", D, "policy cluster"),
    ("homelab", "udp 192.168.1.11 > proxmox:5405", "I", D, "policy cluster"),
    ("homelab", "udp 192.168.1.11 > proxmox:5405", "N", A, "builtin corosync"),
    ("homelab", "igmp 192.168.1.20 > proxmox", "I", A, "builtin igmp"),
    ("homelab", "tcp 127.0.0.1 > proxmox:8006", "I", A, "builtin loopback"),
    // nftables filters noise and passes ICMP errors before any rule
    ("homelab", "tcp 192.168.1.20 > proxmox:445", "I", D, "policy cluster"),
    ("homelab", "tcp 192.168.1.20 > proxmox:445", "N", R, "builtin smb noise"),
    ("homelab", "udp 192.168.1.20 > proxmox:1900", "N", D, "builtin upnp"),
    ("homelab", "icmp:fragmentation-needed 8.8.8.8 > proxmox", "I", A, "builtin icmp errors"),
    ("homelab", "icmp:host-unreachable 8.8.8.8 > proxmox", "I", D, "policy cluster"),
    ("homelab", "icmp:host-unreachable 8.8.8.8 > proxmox", "N", A, "builtin icmp errors"),
    ("homelab", "icmp:echo-reply 8.8.8.8 > proxmox", "N", D, "policy cluster"),
    ("homelab", "out tcp 8.8.8.8 > proxmox:443", "I", A, "policy cluster"),
    ("homelab", "out tcp 203.0.113.5 > proxmox:443", "I", D, "cluster #7"),
    // --- VM 100 edge-gateway ---
    ("homelab", "udp 8.8.8.8 > 100:41641", "I", A, "vm 100 #0"),
    ("homelab", "tcp 192.168.1.20 > 100:22", "I", A, "vm 100 #1"),
    ("homelab", "tcp 100.100.5.5 > 100:22", "I", D, "policy vm 100"),
    ("homelab", "ping 192.168.1.20 > 100", "I", A, "vm 100 #2"),
    ("homelab", "udp 203.0.113.9 > 100:41641", "I", D, "blacklist"),
    ("homelab", "out tcp 1.1.1.1 > 100:25", "I", D, "vm 100 #3"),
    ("homelab", "out tcp 1.1.1.1 > 100:443", "I", A, "policy vm 100"),
    // --- VM 300 app-host ---
    ("homelab", "tcp 192.168.1.20 > 300:32400", "I", A, "vm 300 #0"),
    ("homelab", "tcp 192.168.1.66 > 300:32400", "I", D, "policy vm 300"),
    ("homelab", "tcp 192.168.1.66 > 300:32400", "N", D, "policy vm 300"),
    ("homelab", "tcp 100.100.5.5 > 300:443", "I", A, "group web #1"),
    ("homelab", "tcp 192.168.1.20 > 300:80", "I", A, "group web #2"),
    ("homelab", "tcp 192.168.1.20 > 300:443 iface=net1", "I", D, "policy vm 300"),
    ("homelab", "tcp 192.168.1.40 > 300:22", "I", A, "vm 300 #2"),
    ("homelab", "tcp 192.168.1.20 > 300:22", "I", D, "policy vm 300"),
    ("homelab", "tcp 100.100.5.5 > 300:22", "I", A, "vm 300 #3"),
    ("homelab", "tcp 192.168.1.20 > 300:3000", "I", R, "vm 300 #4"),
    ("homelab", "tcp 192.168.1.20 > 300:3000", "N", D, "vm 300 #4"),
    ("homelab", "tcp 192.168.1.40 > 300:9050", "I", A, "vm 300 #5"),
    ("homelab", "tcp 192.168.1.40 > 300:9101", "I", D, "policy vm 300"),
    ("homelab", "udp 192.168.1.20 > 300:32400", "I", D, "policy vm 300"),
    ("homelab", "udp 192.168.1.1 > 300:68 sport=67", "I", D, "policy vm 300"),
    ("homelab", "udp 192.168.1.1 > 300:68 sport=67", "N", D, "builtin dhcp blocked"),
    ("homelab", "icmp:time-exceeded 8.8.8.8 > 300", "I", A, "builtin icmp errors"),
    // --- VM 400 home-assistant ---
    ("homelab", "tcp 10.10.2.7 > 400:8123", "I", A, "vm 400 #0"),
    ("homelab", "tcp 10.10.2.7 > 400:1883", "I", A, "vm 400 #1"),
    ("homelab", "tcp 10.10.2.7 > 400:22", "I", R, "policy vm 400"),
    ("homelab", "tcp 10.10.2.7 > 400:22", "N", D, "policy vm 400"),
    // iptables' reject chain drops ICMP instead of answering it
    ("homelab", "ping 10.10.2.7 > 400", "I", D, "policy vm 400"),
    ("homelab", "tcp 100.100.5.5 > 400:8123", "I", A, "vm 400 #2"),
    ("homelab", "tcp 192.168.1.20 > 400:8123", "I", A, "vm 400 #2"),
    ("homelab", "tcp 10.10.1.5 > 400:8123", "I", R, "policy vm 400"),
    ("homelab", "udp 10.10.2.9 > 400:5353", "I", A, "vm 400 #5"),
    ("homelab", "udp 10.10.2.1 > 400:68 sport=67", "I", A, "builtin dhcp"),
    ("homelab", "tcp 192.168.1.20 > 400:22", "I", R, "policy vm 400"),
    // --- guests without filtering ---
    ("homelab", "tcp 8.8.8.8 > 150:443", "I", A, "disabled vm 150"),
    ("homelab", "tcp 8.8.8.8 > 200:22", "I", A, "nic firewall=0"),
    ("homelab", "tcp 8.8.8.8 > 999:22", "I", A, "disabled vm 999"),
    // --- DROP policy with no rules: local_network is the only way in ---
    ("bare-drop", "tcp 192.168.1.20 > proxmox:22", "I", A, "management"),
    ("bare-drop", "tcp 192.168.1.20 > proxmox:8006", "N", A, "management"),
    ("bare-drop", "tcp 100.100.5.5 > proxmox:22", "I", D, "policy cluster"),
    ("bare-drop", "tcp 100.100.5.5 > proxmox:8006", "N", D, "policy cluster"),
    ("bare-drop", "tcp 192.168.2.20 > proxmox:8006", "I", D, "policy cluster"),
    ("bare-drop", "tcp 192.168.1.20 > proxmox:80", "I", D, "policy cluster"),
    // --- local_network pinned to one IP ---
    ("pinned-localnet", "tcp 192.168.1.20 > proxmox:22", "I", A, "management"),
    ("pinned-localnet", "tcp 192.168.1.30 > proxmox:22", "I", D, "policy cluster"),
    ("pinned-localnet", "tcp 192.168.1.10 > proxmox:8006", "N", A, "management"),
    // --- nomatch semantics differ; local_network is the network holding the
    // address the node's name resolves to (the first), on both backends ---
    ("nomatch", "tcp 100.100.1.1 > proxmox:22", "I", A, "management"),
    ("nomatch", "tcp 100.100.1.1 > proxmox:22", "N", D, "policy cluster"),
    ("nomatch", "tcp 100.65.0.1 > proxmox:22", "I", D, "policy cluster"),
    ("nomatch", "tcp 10.10.1.5 > proxmox:22", "I", D, "policy cluster"),
    ("nomatch", "tcp 10.10.1.5 > proxmox:22", "N", D, "policy cluster"),
    ("nomatch", "tcp 192.168.1.77 > proxmox:22", "N", A, "management"),
    // --- switches ---
    ("disabled", "tcp 8.8.8.8 > proxmox:22", "I", A, "disabled cluster"),
    ("disabled", "tcp 8.8.8.8 > 100:22", "N", A, "disabled cluster"),
    ("host-off", "tcp 8.8.8.8 > proxmox:22", "I", A, "disabled node proxmox"),
    ("host-off", "tcp 8.8.8.8 > 100:22", "I", D, "policy vm 100"),
    // --- outbound DROP policy ---
    ("egress", "out udp 9.9.9.9 > proxmox:53", "I", D, "policy cluster"),
    ("egress", "out udp 192.168.1.1 > proxmox:53", "I", A, "cluster #1"),
    ("egress", "out tcp 192.168.1.20 > proxmox:22", "I", A, "local_network out"),
    ("egress", "out udp 192.168.1.1 > proxmox:123", "I", A, "cluster #0"),
    ("egress", "out tcp 10.0.0.1 > proxmox:22", "N", D, "policy cluster"),
];

#[derive(Serialize)]
struct Row {
    fixture: &'static str,
    flow: &'static str,
    backend: String,
    verdict: Verdict,
    decided_by: String,
}

#[test]
fn flow_table() {
    assert!(TABLE.len() >= 60, "the table must hold at least 60 flows");
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for &(fixture, spec, be, want, want_by) in TABLE {
        let cfg = load(fixture);
        let d = evaluate(&cfg, &flow(spec), backend(be));
        let by = decider(&d);
        if d.verdict != want || by != want_by {
            failures.push(format!(
                "{fixture}: {spec} [{be}]: want {want} by {want_by}, got {} by {by}\n{}",
                d.verdict,
                d.render_trail()
            ));
        }
        rows.push(Row {
            fixture,
            flow: spec,
            backend: be.to_string(),
            verdict: d.verdict,
            decided_by: d.decided_by.to_string(),
        });
    }
    assert!(
        failures.is_empty(),
        "{} of {} flows wrong:\n{}",
        failures.len(),
        TABLE.len(),
        failures.join("\n")
    );
    insta::assert_yaml_snapshot!("flow_table", rows);
}

#[test]
fn trails_show_the_backend_ordering_difference() {
    let cfg = load("homelab");
    let f = flow("tcp 192.168.1.66 > proxmox:22");
    let ipt = evaluate(&cfg, &f, backend("I"));
    let nft = evaluate(&cfg, &f, backend("N"));
    insta::assert_snapshot!("trail_quarantine_iptables", ipt.render_trail());
    insta::assert_snapshot!("trail_quarantine_nftables", nft.render_trail());
    let g = evaluate(&cfg, &flow("tcp 100.100.5.5 > 300:443"), backend("I"));
    insta::assert_snapshot!("trail_group_web", g.render_trail());
}
