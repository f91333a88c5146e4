//! Focused unit tests of the public API: ports, macros, alias and ipset
//! resolution, nomatch, disabled rules and switches, range proofs,
//! config checks and API JSON input.

mod common;

use common::{decider, flow, load};
use labwright_firewall::*;

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().expect("ip")
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().expect("net")
}

fn rule(s: &str) -> Rule {
    Rule::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Datacenter firewall on with DROP policy, one node `pve` at 192.168.1.10/24.
fn base() -> FirewallConfig {
    let mut cfg = FirewallConfig::default();
    cfg.cluster.options.enable = true;
    cfg.cluster.options.policy_in = Some(Verdict::Drop);
    let mut node = HostFirewall::default();
    node.network.addrs.push(net("192.168.1.10/24"));
    node.network.default_iface = Some("vmbr0".into());
    cfg.nodes.insert("pve".into(), node);
    cfg
}

fn guest<'a>(cfg: &'a mut FirewallConfig, id: u32, rules: &[&str]) -> &'a mut GuestFirewall {
    let g = cfg.vms.entry(id).or_default();
    g.options.enable = true;
    g.nics.insert(
        "net0".into(),
        GuestNic {
            firewall: true,
            addrs: vec![ip("192.168.1.30")],
        },
    );
    g.rules = rules.iter().map(|r| rule(r)).collect();
    g
}

fn node() -> Target {
    Target::Node("pve".into())
}

fn eval(cfg: &FirewallConfig, f: &Flow) -> Decision {
    evaluate(cfg, f, Backend::Iptables)
}

#[test]
fn port_specs_match_lists_ranges_and_names() {
    let p = PortSpec::parse("22,8000:8100,https", PortField::Dport).expect("valid");
    for (port, want) in [
        (22, true),
        (23, false),
        (8000, true),
        (8050, true),
        (8100, true),
        (8101, false),
        (443, true),
    ] {
        assert_eq!(p.contains(port), want, "port {port}");
    }
    assert_eq!(p.to_string(), "22,8000:8100,https");
    assert_eq!(service_port("ssh"), Some(22));
    assert_eq!(service_port("domain"), Some(53));
    assert_eq!(service_port("nope"), None);
    assert!(PortSpec::parse("8100:8000", PortField::Dport).is_err());

    let mut cfg = base();
    cfg.cluster
        .rules
        .push(rule("IN ACCEPT -p tcp -dport 8000:8100,https"));
    assert_eq!(
        eval(&cfg, &Flow::tcp(ip("10.1.1.1"), node(), 8080)).verdict,
        Verdict::Accept
    );
    assert_eq!(
        eval(&cfg, &Flow::tcp(ip("10.1.1.1"), node(), 443)).verdict,
        Verdict::Accept
    );
    assert_eq!(
        eval(&cfg, &Flow::tcp(ip("10.1.1.1"), node(), 8101)).verdict,
        Verdict::Drop
    );
    assert_eq!(
        eval(&cfg, &Flow::udp(ip("10.1.1.1"), node(), 8080)).verdict,
        Verdict::Drop
    );
}

#[test]
fn sport_rules_need_a_known_source_port() {
    let mut cfg = base();
    cfg.cluster.rules.push(rule("IN ACCEPT -p udp -sport 53"));
    let f = Flow::udp(ip("10.1.1.1"), node(), 40000);
    assert_eq!(eval(&cfg, &f).verdict, Verdict::Drop);
    assert_eq!(
        eval(&cfg, &f.clone().with_sport(53)).verdict,
        Verdict::Accept
    );
}

#[test]
fn macros_expand_to_their_ports() {
    let mut cfg = base();
    cfg.cluster.rules = vec![
        rule("IN Web(ACCEPT)"),
        rule("IN DNS(ACCEPT)"),
        rule("IN Ping(ACCEPT)"),
        rule("IN ceph(ACCEPT)"),
    ];
    let src = ip("10.1.1.1");
    for (f, want) in [
        (Flow::tcp(src, node(), 80), "cluster #0"),
        (Flow::tcp(src, node(), 443), "cluster #0"),
        (Flow::udp(src, node(), 53), "cluster #1"),
        (Flow::tcp(src, node(), 53), "cluster #1"),
        (Flow::ping(src, node()), "cluster #2"),
        (Flow::ping(ip("2001:db8::1"), node()), "cluster #2"),
        (Flow::tcp(src, node(), 6900), "cluster #3"),
        (Flow::tcp(src, node(), 8443), "policy cluster"),
        (Flow::udp(src, node(), 443), "policy cluster"),
    ] {
        assert_eq!(decider(&eval(&cfg, &f)), want, "{f}");
    }
    assert_eq!(
        cfg.cluster.rules.get(3).map(ToString::to_string).as_deref(),
        Some("IN Ceph(ACCEPT)")
    );
}

/// A macro rule whose own values contradict the macro (`SSH(ACCEPT) -dport 2222`):
/// pve-firewall refuses it while reading (the rule is left out); proxmox-firewall
/// generates both matches, which no packet meets. Either way nothing is accepted;
/// a value the macro agrees with (`-p tcp`) changes nothing.
#[test]
fn macro_rule_contradicting_its_macro_never_matches() {
    let mut cfg = base();
    cfg.cluster
        .rules
        .push(rule("IN SSH(ACCEPT) -p tcp -dport 2222"));
    for b in Backend::ALL {
        for port in [22, 2222] {
            let d = evaluate(&cfg, &Flow::tcp(ip("10.1.1.1"), node(), port), b);
            assert_eq!(d.verdict, Verdict::Drop, "{b} port {port}");
        }
    }
    let d = evaluate(
        &cfg,
        &Flow::tcp(ip("10.1.1.1"), node(), 22),
        Backend::Iptables,
    );
    assert!(
        d.trail
            .iter()
            .any(|s| matches!(&s.outcome, Outcome::Skipped(r) if r.contains("already defined by macro SSH"))),
        "{}",
        d.render_trail()
    );
    cfg.cluster.rules = vec![rule("IN SSH(ACCEPT) -p tcp")];
    for b in Backend::ALL {
        assert_eq!(
            evaluate(&cfg, &Flow::tcp(ip("10.1.1.1"), node(), 22), b).verdict,
            Verdict::Accept,
            "{b}"
        );
    }
}

#[test]
fn guest_aliases_shadow_datacenter_aliases() {
    let mut cfg = base();
    cfg.cluster
        .add_alias(Alias::new("admins", "10.0.0.0/8").expect("alias"));
    let g = guest(
        &mut cfg,
        101,
        &[
            "IN ACCEPT -source admins -p tcp -dport 22",
            "IN ACCEPT -source dc/admins -p tcp -dport 80",
        ],
    );
    g.add_alias(Alias::new("Admins", "10.9.9.0/24").expect("alias"));
    let vm = Target::Vm(101);
    assert_eq!(
        decider(&eval(&cfg, &Flow::tcp(ip("10.9.9.9"), vm.clone(), 22))),
        "vm 101 #0"
    );
    assert_eq!(
        decider(&eval(&cfg, &Flow::tcp(ip("10.1.1.1"), vm.clone(), 22))),
        "policy vm 101"
    );
    assert_eq!(
        decider(&eval(&cfg, &Flow::tcp(ip("10.1.1.1"), vm, 80))),
        "vm 101 #1"
    );
}

#[test]
fn ipsets_resolve_aliases_and_scopes() {
    let mut cfg = base();
    cfg.cluster
        .add_alias(Alias::new("laptop", "172.16.0.5").expect("alias"));
    cfg.cluster.ipsets.insert(
        "admins".into(),
        Ipset {
            comment: None,
            entries: vec![
                IpsetEntry::parse("dc/laptop").expect("entry"),
                IpsetEntry::parse("172.20.0.0/16").expect("entry"),
            ],
        },
    );
    let g = guest(
        &mut cfg,
        102,
        &[
            "IN ACCEPT -source +admins -p tcp -dport 22",
            "IN ACCEPT -source +dc/admins -p tcp -dport 80",
        ],
    );
    g.ipsets.insert(
        "admins".into(),
        Ipset {
            comment: None,
            entries: vec![IpsetEntry::parse("172.30.0.0/16").expect("entry")],
        },
    );
    let vm = Target::Vm(102);
    // +admins in a guest rule is the guest's own set
    assert_eq!(
        decider(&eval(&cfg, &Flow::tcp(ip("172.30.1.1"), vm.clone(), 22))),
        "vm 102 #0"
    );
    assert_eq!(
        decider(&eval(&cfg, &Flow::tcp(ip("172.16.0.5"), vm.clone(), 22))),
        "policy vm 102"
    );
    // +dc/admins is the datacenter's, including its alias entry
    assert_eq!(
        decider(&eval(&cfg, &Flow::tcp(ip("172.16.0.5"), vm.clone(), 80))),
        "vm 102 #1"
    );
    assert_eq!(
        decider(&eval(&cfg, &Flow::tcp(ip("172.20.9.9"), vm, 80))),
        "vm 102 #1"
    );
}

#[test]
fn unresolvable_references_skip_the_rule_like_pve() {
    let mut cfg = base();
    cfg.cluster.rules = vec![
        rule("IN ACCEPT -source nosuch -p tcp -dport 22"),
        rule("IN ACCEPT -source +nosuch"),
        rule("GROUP nogroup"),
    ];
    let d = eval(&cfg, &Flow::tcp(ip("10.1.1.1"), node(), 22));
    assert_eq!(d.verdict, Verdict::Drop);
    let skipped: Vec<_> = d
        .trail
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Skipped(_)))
        .collect();
    assert_eq!(skipped.len(), 3, "{}", d.render_trail());
    let issues = check_config(&cfg);
    let msgs: Vec<String> = issues.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        vec![
            "cluster rule #0: no such alias 'nosuch'".to_string(),
            "cluster rule #1: no such ipset 'nosuch'".to_string(),
            "cluster rule #2: no such security group 'nogroup'".to_string(),
        ]
    );
    assert!(
        check_config(&load("homelab")).is_empty(),
        "{:?}",
        check_config(&load("homelab"))
    );
}

#[test]
fn nomatch_entries_exclude_addresses() {
    let mut cfg = base();
    cfg.cluster.ipsets.insert(
        "trusted".into(),
        Ipset {
            comment: None,
            entries: vec![
                IpsetEntry::parse("10.0.0.0/8").expect("e"),
                IpsetEntry::parse("!10.66.0.0/16").expect("e"),
                IpsetEntry::parse("10.66.1.0/24").expect("e"),
            ],
        },
    );
    cfg.cluster
        .rules
        .push(rule("IN ACCEPT -source +trusted -p tcp -dport 443"));
    for (src, ipt, nft) in [
        ("10.1.1.1", Verdict::Accept, Verdict::Accept),
        ("10.66.9.9", Verdict::Drop, Verdict::Drop),
        ("10.66.1.5", Verdict::Accept, Verdict::Drop),
    ] {
        let f = Flow::tcp(ip(src), node(), 443);
        assert_eq!(
            evaluate(&cfg, &f, Backend::Iptables).verdict,
            ipt,
            "iptables {src}"
        );
        assert_eq!(
            evaluate(&cfg, &f, Backend::Nftables).verdict,
            nft,
            "nftables {src}"
        );
    }
    assert_eq!(
        IpsetEntry::parse("!10.66.0.0/16").map(|e| e.to_string()),
        Ok("!10.66.0.0/16".to_string())
    );
}

#[test]
fn disabled_rules_are_skipped() {
    let mut cfg = base();
    cfg.cluster.rules = vec![
        rule("|IN ACCEPT -p tcp -dport 80"),
        rule("IN REJECT -p tcp -dport 80"),
    ];
    let d = eval(&cfg, &Flow::tcp(ip("10.1.1.1"), node(), 80));
    assert_eq!(
        (d.verdict, decider(&d).as_str()),
        (Verdict::Reject, "cluster #1")
    );
    assert!(
        matches!(d.trail.get(1).map(|s| &s.outcome), Some(Outcome::Skipped(r)) if r == "disabled")
    );
    cfg.cluster.groups.insert(
        "g1".into(),
        SecurityGroup {
            comment: None,
            rules: vec![rule("IN ACCEPT -p tcp -dport 80")],
        },
    );
    cfg.cluster.rules.insert(0, rule("|GROUP g1"));
    assert_eq!(
        eval(&cfg, &Flow::tcp(ip("10.1.1.1"), node(), 80)).verdict,
        Verdict::Reject
    );
    cfg.cluster.rules.insert(0, rule("GROUP g1"));
    assert_eq!(
        decider(&eval(&cfg, &Flow::tcp(ip("10.1.1.1"), node(), 80))),
        "group g1 #0"
    );
}

#[test]
fn switches_disable_filtering() {
    let mut cfg = base();
    cfg.cluster.rules.push(rule("IN DROP"));
    guest(&mut cfg, 103, &["IN DROP"]);
    let vm = Flow::tcp(ip("10.1.1.1"), Target::Vm(103), 22);
    let host = Flow::tcp(ip("10.1.1.1"), node(), 22);
    assert_eq!(eval(&cfg, &vm).verdict, Verdict::Drop);
    assert_eq!(eval(&cfg, &host).verdict, Verdict::Drop);

    let mut off = cfg.clone();
    off.cluster.options.enable = false;
    assert_eq!(decider(&eval(&off, &vm)), "disabled cluster");
    assert_eq!(decider(&eval(&off, &host)), "disabled cluster");

    let mut node_off = cfg.clone();
    if let Some(n) = node_off.nodes.get_mut("pve") {
        n.options.enable = false;
    }
    assert_eq!(decider(&eval(&node_off, &host)), "disabled node pve");
    assert_eq!(eval(&node_off, &vm).verdict, Verdict::Drop);

    let mut vm_off = cfg.clone();
    if let Some(g) = vm_off.vms.get_mut(&103) {
        g.options.enable = false;
    }
    assert_eq!(decider(&eval(&vm_off, &vm)), "disabled vm 103");

    let mut nic_off = cfg;
    if let Some(n) = nic_off
        .vms
        .get_mut(&103)
        .and_then(|g| g.nics.get_mut("net0"))
    {
        n.firewall = false;
    }
    assert_eq!(decider(&eval(&nic_off, &vm)), "nic firewall=0");
}

#[test]
fn dest_and_interface_matches() {
    let mut cfg = base();
    cfg.cluster.rules.push(rule(
        "IN ACCEPT -dest 192.168.1.10 -i vmbr0 -p tcp -dport 80",
    ));
    let f = Flow::tcp(ip("10.1.1.1"), node(), 80);
    assert_eq!(eval(&cfg, &f).verdict, Verdict::Accept);
    assert_eq!(
        eval(&cfg, &f.clone().on_iface("vmbr1")).verdict,
        Verdict::Drop
    );
    let mut other = f;
    other.dest_addr = Some(ip("192.168.1.11"));
    assert_eq!(eval(&cfg, &other).verdict, Verdict::Drop);
}

#[test]
fn prove_reach_is_exact_over_a_cidr() {
    let cfg = load("homelab");
    let proxmox = Target::Node("proxmox".into());
    // Tailscale reaches 22 and 8006 on both backends.
    for be in [Backend::Iptables, Backend::Nftables] {
        for port in [22, 8006] {
            let proof = prove_reach(
                &cfg,
                net("100.64.0.0/10"),
                &proxmox,
                Protocol::TCP,
                Some(port),
                be,
            );
            assert!(
                proof.is_ok(),
                "{be} {port}: {:?}",
                proof.err().map(|c| c.to_string())
            );
        }
    }
    // The admin LAN does not under iptables: the quarantined laptop is the
    // exact counterexample.
    let cex = prove_reach(
        &cfg,
        net("192.168.1.0/24"),
        &proxmox,
        Protocol::TCP,
        Some(22),
        Backend::Iptables,
    )
    .expect_err("quarantine");
    assert_eq!(cex.address, ip("192.168.1.66"));
    assert_eq!(cex.range.to_string(), "192.168.1.66");
    assert_eq!(decider(&cex.decision), "node proxmox #1");
    // Under nftables the management accept comes first, so it does.
    let proof = prove_reach(
        &cfg,
        net("192.168.1.0/24"),
        &proxmox,
        Protocol::TCP,
        Some(22),
        Backend::Nftables,
    )
    .expect("nft reach");
    let covered: u128 = proof
        .classes
        .iter()
        .map(|c| c.range.hi - c.range.lo + 1)
        .sum();
    assert_eq!(covered, 256);
    // SERVICES is blocked from management.
    assert!(
        prove_blocked(
            &cfg,
            net("10.10.1.0/24"),
            &proxmox,
            Protocol::TCP,
            Some(8006),
            Backend::Iptables
        )
        .is_ok()
    );
    // The lock-out of a Tailscale admin with a bare DROP policy is found.
    let bare = load("bare-drop");
    let cex = prove_reach(
        &bare,
        net("100.64.0.0/10"),
        &proxmox,
        Protocol::TCP,
        Some(8006),
        Backend::Iptables,
    )
    .expect_err("lockout");
    assert_eq!(cex.address, ip("100.64.0.0"));
    assert_eq!(decider(&cex.decision), "policy cluster");
    assert!(cex.to_string().contains("DROP"), "{cex}");
}

#[test]
fn classes_split_at_every_boundary() {
    let cfg = load("homelab");
    let tmpl = Flow::tcp(ip("0.0.0.0"), Target::Vm(300), 32400);
    let classes = classify_sources(&cfg, net("192.168.1.0/24"), &tmpl, Backend::Iptables);
    let ranges: Vec<String> = classes.iter().map(|c| c.range.to_string()).collect();
    assert!(ranges.contains(&"192.168.1.66".to_string()), "{ranges:?}");
    // the guest alias 192.168.1.32/27 starts and ends pieces
    let starts: Vec<std::net::IpAddr> = classes.iter().map(|c| c.range.start()).collect();
    assert!(
        starts.contains(&ip("192.168.1.32")) && starts.contains(&ip("192.168.1.64")),
        "{ranges:?}"
    );
    let ipv6 = classify_sources(&cfg, net("2001:db8::/64"), &tmpl, Backend::Iptables);
    assert_eq!(ipv6.len(), 1);
}

#[test]
fn api_json_builds_a_config() {
    let rules = serde_json::json!([
        {"pos": 1, "type": "in", "action": "ACCEPT", "macro": "SSH", "source": "+management", "enable": 1, "comment": "lw:ssh"},
        {"pos": 0, "type": "in", "action": "DROP", "source": "192.168.1.66", "enable": 1},
        {"pos": 2, "type": "group", "action": "web", "iface": "vmbr0", "enable": 0},
    ]);
    let mut cfg = base();
    cfg.cluster.rules = rules_from_api_json(&rules).expect("rules");
    // Without a `management` ipset of the user's, `+management` in a rule
    // names nothing on either backend and the rule is left out; the
    // built-in accept still lets the local network in.
    assert_eq!(
        decider(&eval(&cfg, &Flow::tcp(ip("192.168.1.67"), node(), 22))),
        "management"
    );
    cfg.cluster.ipsets.insert(
        "management".into(),
        Ipset {
            comment: None,
            entries: vec![IpsetEntry::parse("10.9.0.0/16").expect("entry")],
        },
    );
    assert_eq!(
        cfg.cluster
            .rules
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "IN DROP -source 192.168.1.66",
            "IN SSH(ACCEPT) -source +management # lw:ssh",
            "|GROUP web -i vmbr0"
        ]
    );
    assert_eq!(
        decider(&eval(&cfg, &Flow::tcp(ip("192.168.1.66"), node(), 22))),
        "cluster #0"
    );
    assert_eq!(
        decider(&eval(&cfg, &Flow::tcp(ip("192.168.1.67"), node(), 22))),
        "cluster #1"
    );
    assert!(
        rules_from_api_json(
            &serde_json::json!([{"type": "in", "action": "ACCEPT", "dport": "22"}])
        )
        .is_err()
    );
    assert!(rules_from_api_json(&serde_json::json!({"type": "in"})).is_err());
}

#[test]
fn outbound_policy_and_rules() {
    let cfg = load("egress");
    assert_eq!(
        decider(&evaluate(
            &cfg,
            &flow("out tcp 1.1.1.1 > proxmox:443"),
            Backend::Iptables
        )),
        "policy cluster"
    );
    assert_eq!(
        decider(&evaluate(
            &cfg,
            &flow("out tcp 192.168.1.99 > proxmox:8006"),
            Backend::Nftables
        )),
        "local_network out"
    );
}

#[test]
fn backend_follows_the_node_option() {
    let mut cfg = base();
    assert_eq!(Backend::for_node(&cfg, "pve"), Backend::Iptables);
    if let Some(n) = cfg.nodes.get_mut("pve") {
        n.options.nftables = true;
    }
    assert_eq!(Backend::for_node(&cfg, "pve"), Backend::Nftables);
    assert_eq!(Backend::for_node(&cfg, "other"), Backend::Iptables);
    assert!(management_ports(Backend::Iptables).contains(&(60000, 60050)));
    assert!(!management_ports(Backend::Nftables).contains(&(60000, 60050)));
}

#[test]
fn results_serialise_to_plain_json() {
    let bare = load("bare-drop");
    let cex = prove_reach(
        &bare,
        net("100.64.0.0/10"),
        &Target::Node("proxmox".into()),
        Protocol::TCP,
        Some(22),
        Backend::Iptables,
    )
    .expect_err("lockout");
    let v = serde_json::to_value(&cex).expect("serialises");
    assert_eq!(v.get("address"), Some(&serde_json::json!("100.64.0.0")));
    assert_eq!(v.get("range"), Some(&serde_json::json!("100.64.0.0/10")));
    assert_eq!(
        v.pointer("/decision/verdict"),
        Some(&serde_json::json!("DROP"))
    );
    assert_eq!(
        v.pointer("/decision/decidedBy/kind"),
        Some(&serde_json::json!("policy"))
    );
    let r = serde_json::to_value(rule(
        "IN SSH(ACCEPT) -source +dc/management -i vmbr0 # lw:x",
    ))
    .expect("rule");
    assert_eq!(
        r,
        serde_json::json!({"type": "in", "action": "ACCEPT", "macro": "SSH", "iface": "vmbr0", "source": "+dc/management", "enable": true, "comment": "lw:x"})
    );
}

#[test]
fn iot_reaches_home_assistant_only_on_its_ports() {
    let cfg = load("homelab");
    let iot = net("10.10.2.0/24");
    let tmpl = Flow::tcp(ip("10.10.2.1"), Target::Vm(400), 0);
    for be in [Backend::Iptables, Backend::Nftables] {
        for gap in [(1, 1882), (1884, 8122), (8124, 65535)] {
            let r = prove_ports(&cfg, iot, gap, &tmpl, be, |v| !v.is_accept());
            assert!(
                r.is_ok(),
                "{be} {gap:?}: {}",
                r.err().map(|c| c.to_string()).unwrap_or_default()
            );
        }
        for port in [(1883, 1883), (8123, 8123)] {
            assert!(
                prove_ports(&cfg, iot, port, &tmpl, be, Verdict::is_accept).is_ok(),
                "{be} {port:?}"
            );
        }
    }
    // Port ranges are split exactly where rules change.
    assert_eq!(
        classify_ports(&cfg, 8120, 8130),
        vec![(8120, 8122), (8123, 8123), (8124, 8130)]
    );
    // And a failure names the port.
    let cex = prove_ports(&cfg, iot, (1, 65535), &tmpl, Backend::Iptables, |v| {
        !v.is_accept()
    })
    .expect_err("1883 is open");
    assert_eq!(cex.port, Some(1883));
    assert!(cex.to_string().contains("to port 1883"), "{cex}");
}

#[test]
fn check_config_reports_level_and_nic_problems() {
    let mut cfg = base();
    let g = guest(
        &mut cfg,
        104,
        &[
            "IN ACCEPT -i net1 -p tcp -dport 22",
            "IN ACCEPT -source guest/nosuch",
        ],
    );
    g.rules.push(Rule::new(RuleKind::Forward, Action::Accept));
    g.ipsets.insert(
        "s".into(),
        Ipset {
            comment: None,
            entries: vec![IpsetEntry::parse("dc/missing").expect("entry")],
        },
    );
    let msgs: Vec<String> = check_config(&cfg).iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        vec![
            "vm 104 rule #0: interface 'net1' is not a NIC of this guest".to_string(),
            "vm 104 rule #1: no such alias 'guest/nosuch'".to_string(),
            "vm 104 rule #2: rule type 'forward' is not allowed in vm rules".to_string(),
            "vm 104: ipset 's': no such alias 'missing'".to_string(),
        ]
    );
}

#[test]
fn unknown_source_ports_stand_for_every_client_port() {
    let mut cfg = base();
    cfg.cluster.rules = vec![
        rule("IN DROP -p tcp -sport 40000:50000 -dport 22 # odd clients"),
        rule("IN SSH(ACCEPT) -source 10.0.0.0/8"),
    ];
    // One flow with no source port: the -sport rule cannot match it.
    assert_eq!(
        eval(&cfg, &Flow::tcp(ip("10.1.1.1"), node(), 22)).verdict,
        Verdict::Accept
    );
    // The proof considers every client port and finds the hole.
    let cex = prove_reach(
        &cfg,
        net("10.0.0.0/8"),
        &node(),
        Protocol::TCP,
        Some(22),
        Backend::Iptables,
    )
    .expect_err("sport hole");
    assert_eq!(cex.sport, Some(40000));
    assert!(
        cex.to_string()
            .starts_with("10.0.0.0 (and all of 10.0.0.0/8) from port 40000 to port 22 gets DROP"),
        "{cex}"
    );
    assert_eq!(decider(&cex.decision), "cluster #0");
    // With the source port pinned, the proof is about that port only.
    let mut t = Flow::tcp(ip("10.0.0.0"), node(), 22);
    t.sport = Some(55555);
    assert!(
        prove_verdict(
            &cfg,
            net("10.0.0.0/8"),
            &t,
            Backend::Iptables,
            Verdict::is_accept
        )
        .is_ok()
    );
    // Without -sport rules nothing is split.
    cfg.cluster.rules.remove(0);
    let proof = prove_reach(
        &cfg,
        net("10.0.0.0/8"),
        &node(),
        Protocol::TCP,
        Some(22),
        Backend::Iptables,
    )
    .expect("reach");
    assert!(proof.classes.iter().all(|c| c.sports.is_none()));
}
