//! The rule model compiled from the reference spec, its nftables rendering, the typed
//! errors of a wrong spec, and the cells' intent.

mod common;

use labwright_router::{
    Action, Backend, CompileError, Intent, L4, Nftables, Origin, Path, Role, cells, compile,
};
use labwright_spec::Spec;
use labwright_spec::model::{Nic, PortSpec};

fn matrix(spec: &mut Spec) -> &mut labwright_spec::model::Matrix {
    spec.firewall
        .as_mut()
        .and_then(|f| f.matrix.as_mut())
        .expect("the reference spec has a matrix")
}

fn vm<'a>(spec: &'a mut Spec, name: &str) -> &'a mut labwright_spec::model::Vm {
    spec.vms
        .iter_mut()
        .find(|v| v.name == name)
        .expect("VM of the reference spec")
}

#[test]
fn reference_nftables_rendering() {
    let spec = common::reference();
    let rs = compile(&spec, 2).expect("the reference spec compiles at phase 2");
    let text = Nftables::default().render(&rs);
    insta::assert_snapshot!("reference_nftables", text);
    // Deterministic: the same spec gives the same text.
    let again = Nftables::default().render(&compile(&spec, 2).expect("compiles"));
    assert_eq!(text, again);
}

#[test]
fn reference_rule_model() {
    let spec = common::reference();
    let rs = compile(&spec, 2).expect("compiles");
    let links: Vec<(&str, Role)> = rs
        .interfaces
        .iter()
        .map(|i| (i.name.as_str(), i.role))
        .collect();
    assert_eq!(
        links,
        vec![
            ("iot", Role::Internal),
            ("services", Role::Internal),
            ("wan", Role::Wan),
            ("tailscale0", Role::Tailnet),
        ]
    );
    // Denies come before every allow, each with the spec path it came from.
    let actions: Vec<Action> = rs.forward.rules.iter().map(|r| r.action).collect();
    let first_accept = actions.iter().position(|a| *a == Action::Accept);
    let last_drop_of_matrix = rs
        .forward
        .rules
        .iter()
        .rposition(|r| matches!(&r.origin, Origin::Spec(p) if p.to_string().contains("deny")));
    assert!(last_drop_of_matrix < first_accept, "{actions:?}");
    let iot_node = rs
        .forward
        .rules
        .iter()
        .find(|r| r.from == "iot" && r.to == "node")
        .expect("iot → node rule");
    assert_eq!(iot_node.action, Action::Drop);
    assert_eq!(iot_node.iif, vec!["iot"]);
    assert_eq!(iot_node.oif, vec!["wan"]);
    assert_eq!(iot_node.dports, vec![(22, 22), (8006, 8006)]);
    assert_eq!(
        iot_node.origin,
        Origin::Spec(
            labwright_spec::YamlPath::root()
                .key("firewall")
                .key("matrix")
                .key("deny")
                .index(1)
        )
    );
    assert_eq!(rs.forward.policy, Action::Drop);
    // Flows inside one segment get no rule, and say why.
    let unrouted: Vec<(&str, &str)> = rs
        .unrouted
        .iter()
        .map(|u| (u.from.as_str(), u.to.as_str()))
        .collect();
    assert_eq!(
        unrouted,
        vec![("iot", "home-assistant"), ("management", "node")]
    );
    // Outbound NAT of the internal segments, on the upstream link only.
    assert_eq!(rs.masquerade.len(), 1);
    assert_eq!(rs.masquerade[0].oif, "wan");
    // DHCP-leased guests: their rules cover their segment.
    let app = rs.host("app-host").expect("app-host is a host");
    assert_eq!((app.segment.as_str(), app.address), ("services", None));
}

#[test]
fn the_router_does_not_exist_before_phase_2() {
    let spec = common::reference();
    let err = compile(&spec, 1).expect_err("no router at phase 1");
    assert!(
        matches!(err, CompileError::RouterNotInPhase { .. }),
        "{err}"
    );
    assert_eq!(err.path().to_string(), "router.phase");
}

#[test]
fn a_flow_naming_an_unknown_segment_is_refused_with_its_path() {
    let mut spec = common::reference();
    matrix(&mut spec).allow[1].from = "garage".into();
    let err = compile(&spec, 2).expect_err("unknown name");
    assert!(matches!(err, CompileError::UnknownEndpoint { .. }), "{err}");
    assert_eq!(err.path().to_string(), "firewall.matrix.allow[1].from");
    let text = err.to_string();
    assert!(
        text.contains("`garage`") && text.contains("known names: iot, lan, services"),
        "{text}"
    );
}

#[test]
fn a_vm_with_no_address_in_phase_2_is_refused() {
    let mut spec = common::reference();
    // home-assistant's NIC goes to a bridge that carries no segment.
    let nic: &mut Nic = vm(&mut spec, "home-assistant")
        .nics
        .get_mut("net0")
        .expect("net0");
    nic.reattach.as_mut().expect("reattach").bridge = "vmbr9".into();
    let err = compile(&spec, 2).expect_err("no address");
    assert!(matches!(err, CompileError::NoAddress { .. }), "{err}");
    assert_eq!(err.path().to_string(), "firewall.matrix.allow[0].to");
    assert!(err.to_string().contains("net0 on vmbr9"), "{err}");
}

#[test]
fn a_fixed_address_left_on_the_old_segment_is_refused() {
    let mut spec = common::reference();
    let nic = vm(&mut spec, "app-host")
        .nics
        .get_mut("net0")
        .expect("net0");
    nic.address = Some("192.168.1.30/24".parse().expect("cidr"));
    let err = compile(&spec, 2).expect_err("address outside services");
    assert!(
        matches!(err, CompileError::AddressOutsideSegment { .. }),
        "{err}"
    );
    assert_eq!(err.path().to_string(), "vms[2].nics.net0.address");
    assert!(
        err.to_string().contains("moves to vmbr1 in phase 2"),
        "{err}"
    );
    // On its phase-2 segment the address is used, as a single host.
    let nic = vm(&mut spec, "app-host")
        .nics
        .get_mut("net0")
        .expect("net0");
    nic.address = Some("10.10.10.30/24".parse().expect("cidr"));
    let rs = compile(&spec, 2).expect("compiles");
    let r = rs
        .forward
        .rules
        .iter()
        .find(|r| r.from == "lan" && r.to == "app-host")
        .expect("lan → app-host");
    assert_eq!(r.daddr.nets, vec!["10.10.10.30/32".parse().expect("cidr")]);
}

#[test]
fn router_interfaces_are_checked_against_segments_and_nics() {
    let mut spec = common::reference();
    let router = spec.router.as_mut().expect("router");
    router.interfaces.get_mut("iot").expect("iot").segment = "cameras".into();
    let err = compile(&spec, 2).expect_err("unknown segment");
    assert!(matches!(err, CompileError::UnknownSegment { .. }), "{err}");
    assert_eq!(err.path().to_string(), "router.interfaces.iot.segment");

    let mut spec = common::reference();
    let router = spec.router.as_mut().expect("router");
    router.interfaces.get_mut("iot").expect("iot").nic = "net1".into();
    let err = compile(&spec, 2).expect_err("net1 is on vmbr1");
    assert!(matches!(err, CompileError::BridgeMismatch { .. }), "{err}");
    assert_eq!(err.path().to_string(), "router.interfaces.iot.nic");

    let mut spec = common::reference();
    let router = spec.router.as_mut().expect("router");
    router.interfaces.get_mut("iot").expect("iot").address = None;
    let err = compile(&spec, 2).expect_err("two upstream links");
    assert!(matches!(err, CompileError::SeveralUpstream { .. }), "{err}");
}

#[test]
fn bad_ports_are_refused_with_their_path() {
    let mut spec = common::reference();
    matrix(&mut spec).deny[0].ports[1] = PortSpec::Text("80-x".into());
    let err = compile(&spec, 2).expect_err("bad port");
    assert!(matches!(err, CompileError::BadPorts { .. }), "{err}");
    assert_eq!(err.path().to_string(), "firewall.matrix.deny[0].ports[1]");
}

#[test]
fn cells_carry_the_matrix_intent() {
    let spec = common::reference();
    let all = cells(&spec, 2).expect("cells");
    let find = |from: &str, to: &str, port: u16| {
        all.iter()
            .find(|c| c.from == from && c.to == to && c.ports == (port, port) && c.proto == L4::Tcp)
            .unwrap_or_else(|| panic!("cell {from} → {to} {port}"))
    };
    let c = find("iot", "node", 22);
    assert_eq!((c.intent, c.path.clone()), (Intent::Deny, Path::Router));
    assert_eq!(c.decided_by, "firewall.matrix.deny[1]");
    let c = find("iot", "home-assistant", 8123);
    assert_eq!(
        (c.intent, c.path.clone()),
        (Intent::Allow, Path::Bridge("iot".into()))
    );
    // The admin PC is part of the LAN: the LAN's flow covers it.
    assert_eq!(find("management", "app-host", 32400).intent, Intent::Allow);
    assert_eq!(find("management", "router", 443).intent, Intent::Allow);
    assert_eq!(find("lan", "router", 22).intent, Intent::Deny);
    assert_eq!(
        find("services", "home-assistant", 8123).intent,
        Intent::Deny
    );
    assert_eq!(
        find("tailscale", "node", 8006).path,
        Path::Via("edge-gateway".into())
    );
    // HA's own allowlist lets Tailscale in, the matrix does not: the router drops it,
    // and the cell says so.
    let c = find("tailscale", "home-assistant", 8123);
    assert_eq!(c.intent, Intent::Deny);
    assert!(
        c.note
            .as_deref()
            .is_some_and(|n| n.contains("vms[3].firewall.allow[1]")),
        "{c:?}"
    );
    // An intra-segment cell the guests' firewalls decide is not the router's to check.
    assert!(!find("services", "app-host", 22).checked);
}
