//! Rule lines and API rule objects: PVE's examples, spellings, refusals
//! (typed), level checks, the API JSON round trip.

use labwright_firewall::*;

#[test]
fn parses_pve_examples() {
    let r = Rule::parse("IN SSH(ACCEPT) -i net0 -source +dc/management -log nolog # admin ssh");
    let r = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.kind, RuleKind::In);
    assert_eq!(r.action, Action::Accept);
    assert_eq!(r.macro_name.as_deref(), Some("SSH"));
    assert_eq!(r.iface.as_deref(), Some("net0"));
    assert_eq!(r.log, Some(LogLevel::Nolog));
    assert_eq!(r.comment.as_deref(), Some("admin ssh"));
    assert!(r.enable);
    assert_eq!(
        r.to_string(),
        "IN SSH(ACCEPT) -i net0 -source +dc/management -log nolog # admin ssh"
    );

    let r = Rule::parse("OUT ACCEPT -p tcp -dport 80,443").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.kind, RuleKind::Out);
    assert!(r.dport.as_ref().is_some_and(|d| d.contains(443)));

    let g = Rule::parse("GROUP webservers -i net0").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.action, Action::Group("webservers".into()));
    assert_eq!(g.to_string(), "GROUP webservers -i net0");
}

#[test]
fn disabled_and_macro_normalisation() {
    let r = Rule::parse("|IN ssh(DROP)").unwrap_or_else(|e| panic!("{e}"));
    assert!(!r.enable);
    assert_eq!(r.to_string(), "|IN SSH(DROP)");
    // proxmox-firewall reads a lower-case verdict and a space after the
    // bar; pve-firewall reads neither.
    let r = Rule::parse("  | in accept  ").map(|r| r.to_string());
    assert_eq!(r, Ok("|IN ACCEPT".to_string()));
    assert_eq!(
        Rule::parse_as("|IN accept", Backend::Iptables),
        Err(FirewallError::UnknownAction("accept".into()))
    );
    assert_eq!(
        Rule::parse("IN frob"),
        Err(FirewallError::UnknownAction("frob".into()))
    );
}

#[test]
fn refusals_are_typed() {
    assert_eq!(Rule::parse(""), Err(FirewallError::EmptyRule));
    assert_eq!(
        Rule::parse("# only a comment"),
        Err(FirewallError::EmptyRule)
    );
    assert_eq!(Rule::parse("IN"), Err(FirewallError::MissingAction));
    assert_eq!(
        Rule::parse("SIDEWAYS ACCEPT"),
        Err(FirewallError::UnknownRuleType("SIDEWAYS".into()))
    );
    assert_eq!(
        Rule::parse("IN Nope(ACCEPT)"),
        Err(FirewallError::UnknownMacro("Nope".into()))
    );
    assert_eq!(
        Rule::parse("IN ACCEPT -dport 22"),
        Err(FirewallError::PortsNeedProtocol("dport"))
    );
    assert_eq!(
        Rule::parse("IN ACCEPT -p icmp -dport 22"),
        Err(FirewallError::ProtocolWithoutPorts("icmp".into()))
    );
    // pve-firewall lets the later option win; proxmox-firewall refuses.
    assert_eq!(
        Rule::parse("IN ACCEPT -p tcp -p udp").map(|r| r.proto),
        Ok(Some(Protocol::UDP))
    );
    assert_eq!(
        Rule::parse_as("IN ACCEPT -p tcp -p udp", Backend::Nftables),
        Err(FirewallError::DuplicateOption("-p".into()))
    );
    assert_eq!(
        Rule::parse("IN ACCEPT -p"),
        Err(FirewallError::MissingOptionValue("-p".into()))
    );
    assert_eq!(
        Rule::parse("IN ACCEPT --frob 1"),
        Err(FirewallError::UnparsedParameters("--frob 1".into()))
    );
    assert_eq!(
        Rule::parse("FORWARD REJECT"),
        Err(FirewallError::RejectOnForward)
    );
    assert_eq!(
        Rule::parse("GROUP gg -p tcp").map(|_| ()),
        Err(FirewallError::UnparsedParameters(
            "-p is not allowed on group rules".into()
        ))
    );
    assert_eq!(
        Rule::parse("IN ACCEPT -p tcp -icmp-type echo-request"),
        Err(FirewallError::IcmpTypeNeedsIcmp)
    );
    assert_eq!(
        Rule::parse("IN ACCEPT -p icmp -icmp-type 8"),
        Err(FirewallError::InvalidIcmpType("8".into()))
    );
    assert!(Rule::parse("IN ACCEPT -p icmp -icmp-type echo-request").is_ok());
    assert!(Rule::parse("GROUP x").is_err());
    assert!(Rule::parse("IN SSH(ACCEPT").is_err());
}

#[test]
fn level_checks() {
    let fwd = Rule::parse("FORWARD ACCEPT").unwrap_or_else(|e| panic!("{e}"));
    assert!(fwd.validate_for(RuleContext::Host).is_ok());
    assert!(fwd.validate_for(RuleContext::Guest).is_err());
    let nic = Rule::parse("IN ACCEPT -i vmbr0").unwrap_or_else(|e| panic!("{e}"));
    assert!(nic.validate_for(RuleContext::Host).is_ok());
    assert_eq!(
        nic.validate_for(RuleContext::Guest),
        Err(FirewallError::InvalidInterface("vmbr0".into()))
    );
    assert!(
        Rule::group("web")
            .validate_for(RuleContext::SecurityGroup)
            .is_err()
    );
}

#[test]
fn api_json_round_trip() {
    let v = serde_json::json!({
        "pos": 0, "type": "in", "action": "ACCEPT", "macro": "https", "source": "192.168.1.0/24",
        "enable": 1, "comment": "lw:web", "digest": "abc"
    });
    let r = Rule::from_api_json(&v).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.to_string(),
        "IN HTTPS(ACCEPT) -source 192.168.1.0/24 # lw:web"
    );
    assert_eq!(Rule::from_api_json(&r.to_api_json()), Ok(r));
    let off = serde_json::json!({"type": "in", "action": "DROP"});
    assert!(Rule::from_api_json(&off).is_ok_and(|r| !r.enable));
    assert!(
        Rule::from_api_json(&serde_json::json!({"type": "in", "action": "DROP", "enable": 7}))
            .is_err()
    );
    assert!(Rule::from_api_json(&serde_json::json!([1])).is_err());
    let list = serde_json::json!([
        {"pos": 1, "type": "in", "action": "DROP", "enable": 1},
        {"pos": 0, "type": "in", "action": "ACCEPT", "enable": 1, "proto": "tcp", "dport": "22"},
    ]);
    let rules = rules_from_api_json(&list).unwrap_or_default();
    assert_eq!(
        rules.first().map(|r| r.action.clone()),
        Some(Action::Accept)
    );
}
