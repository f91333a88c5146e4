//! Where the two PVE firewalls differ, the evaluator follows each (issue 17):
//! ipset and group name case, the `blacklist` set, `-sport` rules under a proof,
//! what a group's `-i` means, and which built-in accepts run before user rules.

use labwright_firewall::*;

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().expect("ip")
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().expect("net")
}

/// `cluster.fw` read as `backend` reads it, plus node `pve` at 10.20.0.2/24.
fn config(cluster: &str, host: &str, backend: Backend) -> FirewallConfig {
    let c = parse_cluster_fw_as(cluster, backend)
        .unwrap_or_else(|e| panic!("{backend}: {e}"))
        .value;
    let mut h = parse_host_fw_as(host, backend, &c)
        .unwrap_or_else(|e| panic!("{backend}: {e}"))
        .value;
    h.network.addrs.push(net("10.20.0.2/24"));
    h.network.default_iface = Some("vmbr0".into());
    let mut cfg = FirewallConfig {
        cluster: c,
        ..FirewallConfig::default()
    };
    cfg.nodes.insert("pve".into(), h);
    cfg
}

fn node() -> Target {
    Target::Node("pve".into())
}

fn verdict(cfg: &FirewallConfig, src: &str, port: u16, b: Backend) -> Verdict {
    evaluate(cfg, &Flow::tcp(ip(src), node(), port), b).verdict
}

/// Fix 1. pve-firewall lower-cases `[IPSET Management]`, so it is the management
/// set; proxmox-firewall keeps the case, so it is a set nothing reads and the admin
/// PC is dropped — and the proof says so, on nftables only.
#[test]
fn ipset_names_are_case_sensitive_on_nftables_only() {
    let cluster = "[OPTIONS]\nenable: 1\npolicy_in: DROP\n\n[IPSET Management]\n192.168.1.50\n\n\
                   [IPSET Admins]\n192.168.1.60\n\n[RULES]\nIN ACCEPT -source +Admins -p tcp -dport 80\n\
                   IN ACCEPT -source +admins -p tcp -dport 81\n";
    for (b, mgmt, upper_ref, lower_ref) in [
        (
            Backend::Iptables,
            Verdict::Accept,
            Verdict::Drop,
            Verdict::Accept,
        ),
        (
            Backend::Nftables,
            Verdict::Drop,
            Verdict::Accept,
            Verdict::Drop,
        ),
    ] {
        let cfg = config(cluster, "", b);
        assert_eq!(
            verdict(&cfg, "192.168.1.50", 22, b),
            mgmt,
            "{b}: management"
        );
        assert_eq!(
            verdict(&cfg, "192.168.1.60", 80, b),
            upper_ref,
            "{b}: +Admins"
        );
        assert_eq!(
            verdict(&cfg, "192.168.1.60", 81, b),
            lower_ref,
            "{b}: +admins"
        );
        let proof = prove_reach(
            &cfg,
            net("192.168.1.50/32"),
            &node(),
            Protocol::TCP,
            Some(22),
            b,
        );
        assert_eq!(proof.is_ok(), mgmt == Verdict::Accept, "{b}: proof");
    }
    // The same model built in code (names as written, e.g. from a spec) gets the
    // same answers: the case rule lives in the evaluator, not only in the parser.
    let mut cfg = config("[OPTIONS]\nenable: 1\n", "", Backend::Nftables);
    cfg.cluster.ipsets.insert(
        "Management".into(),
        Ipset {
            comment: None,
            entries: vec![IpsetEntry::parse("192.168.1.50").expect("entry")],
        },
    );
    assert_eq!(
        verdict(&cfg, "192.168.1.50", 22, Backend::Iptables),
        Verdict::Accept
    );
    assert_eq!(
        verdict(&cfg, "192.168.1.50", 22, Backend::Nftables),
        Verdict::Drop
    );
    let cx = prove_reach(
        &cfg,
        net("192.168.1.50/32"),
        &node(),
        Protocol::TCP,
        Some(8006),
        Backend::Nftables,
    )
    .expect_err("no management access on nftables");
    assert!(matches!(cx.decision.decided_by, DecidedBy::Policy { .. }));
}

/// Fix 2. pve-firewall drops `blacklist` sources before anything else;
/// proxmox-firewall generates no blacklist rule, so the policy decides.
#[test]
fn blacklist_is_ignored_by_nftables() {
    let cluster = "[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\n\n[IPSET blacklist]\n203.0.113.0/24\n";
    let ipt = config(cluster, "", Backend::Iptables);
    let d = evaluate(
        &ipt,
        &Flow::tcp(ip("203.0.113.9"), node(), 443),
        Backend::Iptables,
    );
    assert_eq!(d.verdict, Verdict::Drop);
    assert!(matches!(d.decided_by, DecidedBy::Blacklist { .. }), "{d}");
    let nft = config(cluster, "", Backend::Nftables);
    let d = evaluate(
        &nft,
        &Flow::tcp(ip("203.0.113.9"), node(), 443),
        Backend::Nftables,
    );
    assert_eq!(d.verdict, Verdict::Accept);
    assert!(matches!(d.decided_by, DecidedBy::Policy { .. }), "{d}");
    // A "this source is blocked" proof holds on iptables only.
    let blocked = |b| {
        prove_blocked(
            &ipt,
            net("203.0.113.0/24"),
            &node(),
            Protocol::TCP,
            Some(22),
            b,
        )
    };
    assert!(blocked(Backend::Iptables).is_ok());
    assert!(blocked(Backend::Nftables).is_err());
    // Guests too: the bridge chain on iptables, nothing on nftables.
    let mut g = ipt.clone();
    let vm = g.vms.entry(100).or_default();
    vm.options.enable = true;
    vm.options.policy_in = Some(Verdict::Accept);
    let f = Flow::tcp(ip("203.0.113.9"), Target::Vm(100), 22);
    assert_eq!(evaluate(&g, &f, Backend::Iptables).verdict, Verdict::Drop);
    assert_eq!(evaluate(&g, &f, Backend::Nftables).verdict, Verdict::Accept);
}

/// Fix 3. A DROP that only matches some client source ports must not hide from
/// the proof: a flow without a source port stands for every client port
/// (1024–65535), and the proof finds the ports the DROP catches.
#[test]
fn sport_restricted_drop_cannot_hide_from_the_proof() {
    let host = "[RULES]\nIN DROP -p tcp -sport 40000:50000 -dport 22 # odd clients\n\
                IN ACCEPT -source 192.168.1.0/24 -p tcp -dport 22\n";
    for b in Backend::ALL {
        let cfg = config("[OPTIONS]\nenable: 1\npolicy_in: DROP\n", host, b);
        let cx = prove_reach(
            &cfg,
            net("192.168.1.0/24"),
            &node(),
            Protocol::TCP,
            Some(22),
            b,
        )
        .expect_err("the DROP catches clients from ports 40000-50000");
        assert_eq!(cx.sport, Some(40000), "{b}");
        assert_eq!(cx.decision.verdict, Verdict::Drop);
        assert!(cx.to_string().contains("from port 40000"), "{cx}");
        // One flow from an unknown port is answered per client-port class.
        let f = Flow::tcp(ip("192.168.1.7"), node(), 22);
        let per_port: Vec<(Option<(u16, u16)>, Verdict)> = evaluate_client_ports(&cfg, &f, b)
            .into_iter()
            .map(|(p, d)| (p, d.verdict))
            .collect();
        assert_eq!(
            per_port,
            vec![
                (Some((1024, 39999)), Verdict::Accept),
                (Some((40000, 50000)), Verdict::Drop),
                (Some((50001, 65535)), Verdict::Accept),
            ],
            "{b}"
        );
        // A -sport rule covering every client port is a plain rule to the proof.
        let wide = "[RULES]\nIN ACCEPT -source 192.168.1.0/24 -p tcp -sport 1024:65535 -dport 22\n";
        let cfg = config("[OPTIONS]\nenable: 1\npolicy_in: DROP\n", wide, b);
        assert!(
            prove_reach(
                &cfg,
                net("192.168.1.0/24"),
                &node(),
                Protocol::TCP,
                Some(22),
                b
            )
            .is_ok()
        );
    }
}

/// A group's `-i`: on both backends it guards the jump into the group. A rule
/// inside the group with its own `-i`: pve-firewall does not allow that and leaves
/// the rule out; proxmox-firewall matches it against the arriving interface.
#[test]
fn group_iface_follows_each_backend() {
    let cluster = "[OPTIONS]\nenable: 1\npolicy_in: DROP\n\n[group adm]\n\
                   IN ACCEPT -i vmbr1 -p tcp -dport 80\nIN ACCEPT -p tcp -dport 81\n\n\
                   [RULES]\nGROUP adm -i vmbr1\n";
    // (backend, port 80 via vmbr1, port 81 via vmbr1)
    for (b, p80, p81) in [
        (Backend::Iptables, Verdict::Drop, Verdict::Accept),
        (Backend::Nftables, Verdict::Accept, Verdict::Accept),
    ] {
        // the model built from labwright's own reading, evaluated per backend
        let mut cfg = config("[OPTIONS]\nenable: 1\n", "", b);
        cfg.cluster = parse_cluster_fw(cluster).expect("cluster.fw");
        let via = |port: u16, iface: &str| {
            evaluate(
                &cfg,
                &Flow::tcp(ip("198.51.100.1"), node(), port).on_iface(iface),
                b,
            )
            .verdict
        };
        assert_eq!(via(80, "vmbr1"), p80, "{b}: member with -i");
        assert_eq!(via(81, "vmbr1"), p81, "{b}: member without -i");
        assert_eq!(via(81, "vmbr0"), Verdict::Drop, "{b}: the jump wants vmbr1");
        // and each backend's own reading agrees
        let own = config(cluster, "", b);
        let d = evaluate(
            &own,
            &Flow::tcp(ip("198.51.100.1"), node(), 80).on_iface("vmbr1"),
            b,
        );
        assert_eq!(d.verdict, p80, "{b}: own reading");
    }
    let skipped = parse_cluster_fw_as(cluster, Backend::Iptables)
        .expect("lenient")
        .skipped;
    assert_eq!(skipped.iter().map(|e| e.line).collect::<Vec<_>>(), vec![6]);
}

/// pve-firewall runs user rules before its management accept (a DROP cuts the
/// LAN off); proxmox-firewall accepts management first.
#[test]
fn management_accept_order_follows_each_backend() {
    let host = "[RULES]\nIN DROP -p tcp -dport 22\n";
    let ipt = config(
        "[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\n",
        host,
        Backend::Iptables,
    );
    let nft = config(
        "[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\n",
        host,
        Backend::Nftables,
    );
    assert_eq!(
        verdict(&ipt, "10.20.0.9", 22, Backend::Iptables),
        Verdict::Drop
    );
    assert_eq!(
        verdict(&nft, "10.20.0.9", 22, Backend::Nftables),
        Verdict::Accept
    );
}

/// A GROUP rule naming a group that is not defined under exactly that name: left
/// out by pve-firewall, a whole-ruleset refusal for proxmox-firewall.
#[test]
fn missing_group_is_a_refusal_on_nftables() {
    let cluster =
        "[OPTIONS]\nenable: 1\n\n[group web]\nIN ACCEPT -p tcp -dport 80\n\n[RULES]\nGROUP Web\n";
    let cfg = config(cluster, "", Backend::Nftables);
    let r = nftables_refusals(&cfg);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].message.contains("refuses the whole ruleset"),
        "{}",
        r[0]
    );
    let cfg = config(
        &cluster.replace("GROUP Web", "GROUP web"),
        "",
        Backend::Nftables,
    );
    assert!(nftables_refusals(&cfg).is_empty());
}

/// The old spelling of an ICMP type, `-p icmp -dport echo-request`: pve-firewall
/// matches that type; proxmox-firewall reads no ports for ICMP and matches every
/// ICMP packet.
#[test]
fn icmp_type_given_as_dport_follows_each_backend() {
    let host = "[RULES]\nIN ACCEPT -p icmp -dport echo-reply\n";
    let ping =
        |cfg: &FirewallConfig, b| evaluate(cfg, &Flow::ping(ip("198.51.100.1"), node()), b).verdict;
    let cluster = "[OPTIONS]\nenable: 1\npolicy_in: DROP\n";
    // each backend's own reading
    assert_eq!(
        ping(&config(cluster, host, Backend::Iptables), Backend::Iptables),
        Verdict::Drop
    );
    assert_eq!(
        ping(&config(cluster, host, Backend::Nftables), Backend::Nftables),
        Verdict::Accept
    );
    // and labwright's reading, evaluated per backend
    let mut cfg = config(cluster, "", Backend::Iptables);
    if let Some(h) = cfg.nodes.get_mut("pve") {
        h.rules = vec![Rule::parse("IN ACCEPT -p icmp -dport echo-reply").expect("rule")];
    }
    assert_eq!(ping(&cfg, Backend::Iptables), Verdict::Drop);
    assert_eq!(ping(&cfg, Backend::Nftables), Verdict::Accept);
}
