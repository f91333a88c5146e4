//! Property tests: adding an ACCEPT never loses an accepted flow; rules,
//! API objects and files round-trip; no input makes a parser panic; the
//! range proof agrees with brute force on every address.

use std::net::{IpAddr, Ipv4Addr};

use labwright_firewall::*;
use proptest::prelude::*;
use proptest::sample::select;

// ---------- generators over a small universe, so rules and flows meet ----------

fn cidr() -> impl Strategy<Value = String> {
    (
        0u8..4,
        0u8..=255,
        prop_oneof![Just(16u8), Just(24), Just(26), Just(30), Just(32)],
    )
        .prop_map(|(b, c, p)| {
            let net: ipnet::Ipv4Net = format!("10.0.{b}.{c}/{p}").parse().unwrap_or_default();
            let net = net.trunc();
            if p == 32 {
                net.addr().to_string()
            } else {
                net.to_string()
            }
        })
}

fn addr_spec(guest: bool) -> BoxedStrategy<String> {
    let mut names = vec![
        "a1",
        "a2",
        "dc/a1",
        "+s1",
        "+dc/s1",
        "+management",
        "+blacklist",
        "nosuch",
        "+nosuch",
    ];
    if guest {
        names.extend(["guest/a1", "+guest/s1"]);
    }
    prop_oneof![
        4 => prop::collection::vec(cidr(), 1..3).prop_map(|v| v.join(",")),
        1 => (0u8..4, 0u8..200, 1u8..50).prop_map(|(b, c, n)| format!("10.0.{b}.{c}-10.0.{b}.{}", c + n)),
        3 => select(names).prop_map(String::from),
    ]
    .boxed()
}

fn port_spec() -> impl Strategy<Value = String> {
    let item = prop_oneof![
        select(vec![22u16, 25, 53, 80, 443, 3128, 5900, 8006, 8123]).prop_map(|p| p.to_string()),
        (20u16..9000, 0u16..200).prop_map(|(a, n)| format!("{a}:{}", a + n)),
        select(vec!["ssh", "https", "domain"]).prop_map(String::from),
    ];
    prop::collection::vec(item, 1..4).prop_map(|v| v.join(","))
}

/// A valid rule line for a context (guest rules use `netN`).
fn rule_line(guest: bool, allow_group: bool) -> BoxedStrategy<String> {
    let kind = if allow_group {
        select(vec!["IN", "OUT", "GROUP"]).boxed()
    } else {
        select(vec!["IN", "OUT"]).boxed()
    };
    let iface = if guest { "net0" } else { "vmbr0" };
    (
        any::<bool>(),
        kind,
        select(vec!["ACCEPT", "DROP", "REJECT"]),
        prop::option::of(select(vec!["SSH", "HTTPS", "DNS", "Ping", "Web", "https"])),
        prop::option::of(addr_spec(guest)),
        prop::option::of(addr_spec(guest)),
        prop::option::of(select(vec!["tcp", "udp", "icmp", "6"])),
        prop::option::of(port_spec()),
        prop::option::of(Just(iface)),
        prop::option::of("[a-z][a-z0-9:-]{0,10}"),
        select(vec!["g1", "g2"]),
    )
        .prop_map(
            |(disabled, kind, action, mac, src, dst, proto, dport, iface, comment, group)| {
                let mut s = String::new();
                if disabled {
                    s.push('|');
                }
                s.push_str(kind);
                if kind == "GROUP" {
                    s.push(' ');
                    s.push_str(group);
                    if let Some(i) = iface {
                        s.push_str(&format!(" -i {i}"));
                    }
                } else {
                    match mac {
                        Some(m) => s.push_str(&format!(" {m}({action})")),
                        None => s.push_str(&format!(" {action}")),
                    }
                    if let Some(i) = iface {
                        s.push_str(&format!(" -i {i}"));
                    }
                    if let Some(a) = src {
                        s.push_str(&format!(" -source {a}"));
                    }
                    if let Some(a) = dst {
                        s.push_str(&format!(" -dest {a}"));
                    }
                    if let Some(p) = proto {
                        s.push_str(&format!(" -p {p}"));
                        if p != "icmp"
                            && let Some(d) = dport
                        {
                            s.push_str(&format!(" -dport {d}"));
                        }
                    }
                }
                if let Some(c) = comment {
                    s.push_str(&format!(" # {c}"));
                }
                s
            },
        )
        .boxed()
}

fn rules(guest: bool, allow_group: bool, max: usize) -> impl Strategy<Value = Vec<Rule>> {
    prop::collection::vec(rule_line(guest, allow_group), 0..max)
        .prop_map(|lines| lines.iter().filter_map(|l| Rule::parse(l).ok()).collect())
}

fn policy() -> impl Strategy<Value = Option<Verdict>> {
    prop::option::of(select(vec![
        Verdict::Accept,
        Verdict::Drop,
        Verdict::Reject,
    ]))
}

fn entries() -> impl Strategy<Value = Vec<IpsetEntry>> {
    prop::collection::vec(
        (
            any::<bool>(),
            prop_oneof![4 => cidr(), 1 => Just("dc/a2".to_string())],
        ),
        0..4,
    )
    .prop_map(|v| {
        v.into_iter()
            .filter_map(|(nomatch, c)| {
                IpsetEntry::parse(&format!("{}{c}", if nomatch { "!" } else { "" })).ok()
            })
            .collect()
    })
}

prop_compose! {
    fn config()(
        enable in prop::bool::weighted(0.9),
        policy_in in policy(),
        policy_out in policy(),
        crules in rules(false, true, 6),
        hrules in rules(false, true, 4),
        g1 in rules(false, false, 3),
        g2 in rules(false, false, 3),
        a1 in cidr(),
        a2 in cidr(),
        s1 in entries(),
        mgmt in entries(),
        black in entries(),
        host_enable in prop::bool::weighted(0.9),
        vm_enable in prop::bool::weighted(0.9),
        vm_policy_in in policy(),
        vm_policy_out in policy(),
        vrules in rules(true, true, 5),
        va1 in prop::option::of(cidr()),
        vs1 in prop::option::of(entries()),
        nic_fw in prop::bool::weighted(0.9),
    ) -> FirewallConfig {
        let mut cfg = FirewallConfig::default();
        cfg.cluster.options.enable = enable;
        cfg.cluster.options.policy_in = policy_in;
        cfg.cluster.options.policy_out = policy_out;
        cfg.cluster.rules = crules;
        cfg.cluster.groups.insert("g1".into(), SecurityGroup { comment: None, rules: g1 });
        cfg.cluster.groups.insert("g2".into(), SecurityGroup { comment: None, rules: g2 });
        for (n, c) in [("a1", &a1), ("a2", &a2)] {
            if let Ok(a) = Alias::new(n, c) {
                cfg.cluster.add_alias(a);
            }
        }
        cfg.cluster.ipsets.insert("s1".into(), Ipset { comment: None, entries: s1 });
        cfg.cluster.ipsets.insert("management".into(), Ipset { comment: None, entries: mgmt });
        cfg.cluster.ipsets.insert("blacklist".into(), Ipset { comment: None, entries: black });
        let mut node = HostFirewall::default();
        node.options.enable = host_enable;
        node.rules = hrules;
        node.network.addrs.push("10.0.1.10/24".parse().unwrap_or_default());
        node.network.default_iface = Some("vmbr0".into());
        cfg.nodes.insert("pve".into(), node);
        let mut g = GuestFirewall::default();
        g.options.enable = vm_enable;
        g.options.policy_in = vm_policy_in;
        g.options.policy_out = vm_policy_out;
        g.rules = vrules;
        if let Some(Ok(a)) = va1.map(|c| Alias::new("a1", &c)) {
            g.add_alias(a);
        }
        if let Some(e) = vs1 {
            g.ipsets.insert("s1".into(), Ipset { comment: None, entries: e });
        }
        g.nics.insert("net0".into(), GuestNic { firewall: nic_fw, addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 2, 30))] });
        cfg.vms.insert(100, g);
        cfg
    }
}

fn flow() -> impl Strategy<Value = Flow> {
    (
        0u8..4,
        any::<u8>(),
        select(vec![Target::Node("pve".into()), Target::Vm(100)]),
        0u8..3,
        select(vec![
            22u16, 25, 53, 80, 443, 3128, 5900, 8006, 8123, 60010, 1000,
        ]),
        any::<bool>(),
    )
        .prop_map(|(b, c, target, proto, port, out)| {
            let src = IpAddr::V4(Ipv4Addr::new(10, 0, b, c));
            let f = match proto {
                0 => Flow::tcp(src, target, port),
                1 => Flow::udp(src, target, port),
                _ => Flow::ping(src, target),
            };
            if out { f.outbound() } else { f }
        })
}

fn backend() -> impl Strategy<Value = Backend> {
    select(vec![Backend::Iptables, Backend::Nftables])
}

/// An enabled ACCEPT rule line for a context.
fn accept_line(guest: bool) -> impl Strategy<Value = Rule> {
    rule_line(guest, false).prop_filter_map("parses as an enabled ACCEPT", |l| {
        let mut r = Rule::parse(&l).ok()?;
        r.enable = true;
        r.action = Action::Accept;
        Some(r)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Adding an ACCEPT rule anywhere never turns an accepted flow into a
    /// dropped or rejected one.
    #[test]
    fn adding_accept_never_loses_access(
        cfg in config(),
        f in flow(),
        be in backend(),
        where_ in 0usize..4,
        pos in any::<prop::sample::Index>(),
        host_rule in accept_line(false),
        guest_rule in accept_line(true),
    ) {
        let before = evaluate(&cfg, &f, be);
        let mut after_cfg = cfg.clone();
        let list: &mut Vec<Rule> = match where_ {
            0 => &mut after_cfg.cluster.rules,
            1 => match after_cfg.nodes.get_mut("pve") { Some(n) => &mut n.rules, None => return Ok(()) },
            2 => match after_cfg.vms.get_mut(&100) { Some(g) => &mut g.rules, None => return Ok(()) },
            _ => match after_cfg.cluster.groups.get_mut("g1") { Some(g) => &mut g.rules, None => return Ok(()) },
        };
        let r = if where_ == 2 { guest_rule } else { host_rule };
        let at = pos.index(list.len() + 1);
        list.insert(at, r);
        let after = evaluate(&after_cfg, &f, be);
        if before.verdict == Verdict::Accept {
            prop_assert_eq!(after.verdict, Verdict::Accept, "before: {}\nafter: {}", before.render_trail(), after.render_trail());
        }
    }

    /// Generated rules print and parse back to themselves, in the line
    /// format and as API JSON.
    #[test]
    fn rule_round_trip(line in rule_line(false, true), gline in rule_line(true, true)) {
        for l in [line, gline] {
            // every generated line is valid PVE syntax
            let r = Rule::parse(&l).map_err(|e| TestCaseError::fail(format!("{l}: {e}")))?;
            let printed = r.to_string();
            prop_assert_eq!(Rule::parse(&printed), Ok(r.clone()), "line {} printed {}", l, printed);
            prop_assert_eq!(Rule::from_api_json(&r.to_api_json()), Ok(r));
        }
    }

    /// Whole files round-trip too.
    #[test]
    fn file_round_trip(cfg in config()) {
        let text = write_cluster_fw(&cfg.cluster).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = parse_cluster_fw(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back.rules, cfg.cluster.rules);
        prop_assert_eq!(back.aliases, cfg.cluster.aliases);
        prop_assert_eq!(back.ipsets.get("management"), cfg.cluster.ipsets.get("management"));
        if let Some(g) = cfg.vms.get(&100) {
            let text = write_guest_fw(g).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = parse_guest_fw(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(&back.rules, &g.rules);
            prop_assert_eq!(&back.options, &g.options);
        }
    }

    /// Arbitrary text never panics a parser, and whatever parses prints
    /// to something that parses to the same rule.
    #[test]
    fn no_panic_on_arbitrary_lines(s in ".{0,200}") {
        if let Ok(r) = Rule::parse(&s) {
            prop_assert_eq!(Rule::parse(&r.to_string()), Ok(r));
        }
        let _ = AddressRef::parse(&s);
        let _ = PortSpec::parse(&s, PortField::Dport);
        let _ = PortSpec::parse(&s, PortField::Sport);
        let _ = Protocol::parse(&s);
        let _ = IpsetEntry::parse(&s);
        let _ = parse_cluster_fw(&s);
        let _ = parse_guest_fw(&s);
        let _ = parse_host_fw(&s);
    }

    /// Token soup close to the real syntax reaches deep into the parser.
    #[test]
    fn no_panic_on_token_soup(tokens in prop::collection::vec(select(vec![
        "IN", "OUT", "GROUP", "FORWARD", "in", "|", "ACCEPT", "DROP", "REJECT", "SSH(ACCEPT)", "ssh(DROP)", "Nope(ACCEPT)",
        "(", ")", "-p", "tcp", "udp", "icmp", "icmpv6", "300", "-dport", "-sport", "22", "22:25", "25:22", "80,443",
        "ssh", "echo-request", "70000", ",", ":", "-source", "-dest", "+dc/x", "+", "+guest/", "dc/", "a", "ab",
        "10.0.0.0/8", "10.0.0.1-10.0.0.5", "10.0.0.5/24", "::1", "2001:db8::/32", "10.0.0.1,::1", "-i", "net0",
        "vmbr0", "-log", "nolog", "info", "-icmp-type", "any", "#", "# c", "[RULES]", "[OPTIONS]", "[IPSET x]",
        "[GROUP gg]", "[ALIASES]", "enable:", "1", "\n", "!", "é", "\t",
    ]), 0..14), sep in select(vec![" ", "", "  ", "\n"])) {
        let line = tokens.join(sep);
        if let Ok(r) = Rule::parse(&line) {
            prop_assert_eq!(Rule::parse(&r.to_string()), Ok(r));
        }
        let _ = parse_cluster_fw(&line);
        let _ = parse_guest_fw(&line);
        let _ = AddressRef::parse(&line);
    }

    /// Random API objects never panic the JSON reader.
    #[test]
    fn no_panic_on_api_json(
        fields in prop::collection::vec((
            select(vec!["type", "action", "macro", "source", "dest", "proto", "dport", "sport", "iface", "enable", "log", "comment", "pos", "icmp-type"]),
            prop_oneof![
                ".{0,20}".prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<bool>().prop_map(serde_json::Value::from),
                Just(serde_json::Value::Null),
                Just(serde_json::json!([1, 2])),
            ],
        ), 0..8),
    ) {
        let obj: serde_json::Map<String, serde_json::Value> = fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let v = serde_json::Value::Object(obj);
        let _ = Rule::from_api_json(&v);
        let _ = rules_from_api_json(&serde_json::Value::Array(vec![v]));
    }

    /// The range proof is exact: every address of a /26 gets the decision
    /// of its class.
    #[test]
    fn classes_agree_with_brute_force(cfg in config(), f in flow(), be in backend(), b in 0u8..4, c in 0u8..4) {
        let net: ipnet::IpNet = format!("10.0.{b}.{}/26", c * 64).parse().map_err(|_| TestCaseError::fail("net"))?;
        let classes = classify_sources(&cfg, net, &f, be);
        let mut covered = 0u128;
        for class in &classes {
            covered += class.range.hi - class.range.lo + 1;
            for n in class.range.lo..=class.range.hi {
                let addr = IpAddr::V4(Ipv4Addr::from(u32::try_from(n).map_err(|_| TestCaseError::fail("v4"))?));
                let mut g = f.clone();
                g.source = addr;
                let d = evaluate(&cfg, &g, be);
                prop_assert_eq!(d.verdict, class.decision.verdict, "{} vs class {}", addr, class.range);
                prop_assert_eq!(&d.decided_by, &class.decision.decided_by, "{} vs class {}", addr, class.range);
            }
        }
        prop_assert_eq!(covered, 64);
    }

    /// Port classes are exact too: every port of a window gets the
    /// decision of its block.
    #[test]
    fn port_classes_agree_with_brute_force(cfg in config(), f in flow(), be in backend(), start in 0u16..9000) {
        let Some(_) = f.dport else { return Ok(()) };
        let src: ipnet::IpNet = ipnet::IpNet::from(f.source);
        let end = start + 299;
        let classes = classify_flows(&cfg, src, (start, end), &f, be);
        let mut covered = 0u32;
        for class in &classes {
            covered += u32::from(class.ports.1 - class.ports.0) + 1;
            for port in class.ports.0..=class.ports.1 {
                let mut g = f.clone();
                g.dport = Some(port);
                let d = evaluate(&cfg, &g, be);
                prop_assert_eq!(d.verdict, class.decision.verdict, "port {}", port);
                prop_assert_eq!(&d.decided_by, &class.decision.decided_by, "port {}", port);
            }
        }
        prop_assert_eq!(covered, 300);
    }
}
