//! The `.fw` readers: labwright's own (every spelling PVE accepts, strict
//! about the rest) and each backend's (pve-firewall leaves out what it
//! cannot read, proxmox-firewall refuses the file).

use labwright_firewall::*;

const CLUSTER: &str = "\
[OPTIONS]
enable: 1
policy_in: DROP
log_ratelimit: enable=1,rate=1/second,burst=5

[ALIASES]
admin_lan 192.168.1.0/24 # admin LAN
tailnet 100.64.0.0/10

[IPSET management] # who may manage
dc/admin_lan
100.64.0.0/10
!100.64.0.66 # lost laptop

[RULES]
IN SSH(ACCEPT) -source +management # lw:ssh
|IN DROP -p tcp -dport 8006

[group web] # web servers
IN HTTPS(ACCEPT)
";

#[test]
fn cluster_file_round_trip() {
    let c = parse_cluster_fw(CLUSTER).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.options.enable);
    assert_eq!(c.options.policy_in, Some(Verdict::Drop));
    assert_eq!(c.aliases.len(), 2);
    assert_eq!(c.ipsets.get("management").map(|s| s.entries.len()), Some(3));
    assert!(
        c.ipsets
            .get("management")
            .is_some_and(|s| s.entries.iter().any(|e| e.nomatch))
    );
    assert_eq!(c.rules.len(), 2);
    assert!(!c.rules.get(1).is_some_and(|r| r.enable));
    assert_eq!(c.groups.get("web").map(|g| g.rules.len()), Some(1));
    let text = write_cluster_fw(&c).unwrap_or_default();
    assert_eq!(parse_cluster_fw(&text), Ok(c));
}

#[test]
fn errors_carry_line_numbers() {
    let bad = "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 99999\n";
    let e = parse_cluster_fw(bad);
    assert_eq!(
        e,
        Err(FileError {
            line: 5,
            error: FirewallError::InvalidPort("99999".into())
        })
    );
    assert!(parse_cluster_fw("IN ACCEPT\n").is_err());
    assert!(parse_cluster_fw("[FROB]\n").is_err());
    assert!(parse_host_fw("[IPSET x]\n").is_err());
    assert!(parse_guest_fw("[RULES]\nFORWARD ACCEPT\n").is_err());
    assert!(parse_guest_fw("[RULES]\nIN ACCEPT -i vmbr0\n").is_err());
    assert!(parse_cluster_fw("[OPTIONS]\nenable: maybe\n").is_err());
    assert!(parse_cluster_fw("[OPTIONS]\npolicy_in: MAYBE\n").is_err());
}

#[test]
fn guest_and_host_files() {
    let g = parse_guest_fw(
        "[OPTIONS]\nenable: 1\npolicy_in: REJECT\ndhcp: 1\n\n[RULES]\nIN ACCEPT -i net0 -p tcp -dport 8123\n",
    );
    let g = g.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.options.policy_in, Some(Verdict::Reject));
    assert!(g.options.dhcp);
    assert_eq!(
        parse_guest_fw(&write_guest_fw(&g).unwrap_or_default()),
        Ok(g)
    );
    let h = parse_host_fw("[OPTIONS]\nenable: 0\nnftables: 1\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(!h.options.enable && h.options.nftables);
    assert_eq!(parse_host_fw(&write_host_fw(&h).unwrap_or_default()), Ok(h));
}

const IPT: Backend = Backend::Iptables;
const NFT: Backend = Backend::Nftables;

#[test]
fn pve_spellings_are_read() {
    // what PVE writes and what its parser takes besides
    let text = "[options]\nENABLE: 1\npolicy_in: drop\n\n[aliases]\nAdmin 192.168.1.50\n\n\
                [ipset Admins] # lower-case header\ndc/admin\n!  10.0.0.1\n\n\
                [rules]\nin accept --proto tcp --dport 22 -source +admins\n\n\
                [group web] # c\nIN ACCEPT -p tcp -dport 80\n";
    let c = parse_cluster_fw(text).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.options.enable);
    assert_eq!(c.options.policy_in, Some(Verdict::Drop));
    assert!(c.aliases.contains_key("admin"));
    assert_eq!(c.ipsets.get("Admins").map(|s| s.entries.len()), Some(2));
    assert_eq!(
        c.groups.get("web").and_then(|g| g.comment.clone()),
        Some("c".into())
    );
    // pve-firewall: lower-cases the set, and the rule's `+admins` finds it
    let p = parse_cluster_fw_as(text, IPT).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.value.ipsets.contains_key("admins"));
    // `in accept`: lower-case verdict, left out by pve-firewall
    assert_eq!(p.value.rules.len(), 0);
    assert_eq!(p.skipped.len(), 1, "{:?}", p.skipped);
    assert_eq!(p.skipped.first().map(|e| e.line), Some(13));
    // proxmox-firewall refuses `[ipset …]` in lower case
    assert!(parse_cluster_fw_as(text, NFT).is_err());
}

#[test]
fn each_backend_reads_its_own_way() {
    let text = "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -source +later -p tcp -dport 22\n\
                IN ACCEPT -source local_network -p tcp -dport 80\n\n[IPSET later]\n10.0.0.0/8\n\n\
                [GROUP Web]\nIN ACCEPT -p tcp -dport 443\n";
    // pve-firewall checks references while reading: `+later` is defined
    // below the rule, `local_network` is not an alias here; both rules out.
    let p = parse_cluster_fw_as(text, IPT).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.value.rules.is_empty(), "{:?}", p.value.rules);
    assert_eq!(
        p.skipped.iter().map(|e| e.line).collect::<Vec<_>>(),
        vec![5, 6]
    );
    assert!(p.value.groups.contains_key("web"));
    // proxmox-firewall: `[GROUP …]` in upper case is no section it knows
    let e = parse_cluster_fw_as(text, NFT).map(|_| ());
    assert!(matches!(e, Err(FileError { line: 11, .. })), "{e:?}");
    let ok = text.replace("[GROUP Web]", "[group Web]");
    let p = parse_cluster_fw_as(&ok, NFT).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.value.rules.len(), 2);
    assert!(p.value.groups.contains_key("Web"));
    // a repeated section: refused by proxmox-firewall, restarted by pve-firewall
    let twice = "[IPSET ab]\n10.0.0.1\n[IPSET ab]\n10.0.0.2\n";
    assert!(parse_cluster_fw_as(twice, NFT).is_err());
    assert!(parse_cluster_fw(twice).is_err());
    let p = parse_cluster_fw_as(twice, IPT).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.value.ipsets.get("ab").map(|s| s.entries.len()), Some(1));
    // options: pve-firewall drops what it does not know; `enable: 2+` is a
    // stale time stamp; proxmox-firewall takes `yes`
    let h = parse_host_fw_as(
        "[OPTIONS]\nnftables: yes\nfrob: 1\n",
        IPT,
        &ClusterFirewall::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!h.value.options.nftables);
    assert_eq!(h.skipped.len(), 2);
    let h = parse_host_fw_as(
        "[OPTIONS]\nnftables: yes\n",
        NFT,
        &ClusterFirewall::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(h.value.options.nftables);
    let c = parse_cluster_fw_as("[OPTIONS]\nenable: 1700000000\n", IPT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.value.options.enable);
}

/// proxmox-firewall knows macros by their exact name: `ssh(ACCEPT)` is read, and
/// left out of the ruleset, not a reason to refuse the file.
#[test]
fn nftables_leaves_out_rules_with_unknown_macros() {
    let text =
        "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ssh(ACCEPT)\nIN SSH(ACCEPT) -source 10.0.0.0/8\n";
    let p = parse_cluster_fw_as(text, Backend::Nftables).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.value.rules.len(), 1);
    assert_eq!(
        p.skipped.iter().map(|e| e.line).collect::<Vec<_>>(),
        vec![5]
    );
    let p = parse_cluster_fw_as(text, Backend::Iptables).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.value.rules.len(), 2);
}
