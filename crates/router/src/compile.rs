//! Spec → [`RuleSet`]: the router's links from `router.interfaces`, the forward rules
//! from `firewall.matrix` (denies first, so a deny always wins over an allow — the
//! precedence the static matrix uses), and the rules every router gets (stateful
//! return traffic, no new inbound from upstream, outbound NAT, management of the
//! router only from the admin CIDRs and Tailscale).

use labwright_spec::model::{FwPolicy, MatrixFlow, Proto};
use labwright_spec::types::Cidr;
use labwright_spec::{Spec, YamlPath};

use crate::error::CompileError;
use crate::model::*;
use crate::resolve::{Endpoint, EndpointKind, World, Zone, host, network};

/// Compiles the router's rule set of `spec` at `phase`.
pub fn compile(spec: &Spec, phase: u8) -> Result<RuleSet, CompileError> {
    let world = World::new(spec, phase);
    let router_path = YamlPath::root().key("router");
    let Some(router) = &spec.router else {
        return Err(CompileError::NoRouter { path: router_path });
    };
    if router.phase.0 > phase {
        return Err(CompileError::RouterNotInPhase {
            path: router_path.key("phase"),
            its_phase: router.phase.0,
            phase,
        });
    }
    let vm_path = router_path.key("vm");
    let Some(vm) = spec.vm_by_name(&router.vm) else {
        return Err(CompileError::UnknownVm {
            path: vm_path,
            name: router.vm.clone(),
        });
    };
    if vm.phase.0 > phase {
        return Err(CompileError::NotInPhase {
            path: vm_path,
            name: vm.name.clone(),
            its_phase: vm.phase.0,
            phase,
        });
    }

    let interfaces = interfaces(&world, router, vm)?;
    let hosts = hosts(&world, &interfaces, &router.vm)?;

    let mut forward = Vec::new();
    let mut unrouted = Vec::new();
    let matrix = spec
        .firewall
        .as_ref()
        .and_then(|f| f.matrix.as_ref())
        .filter(|m| m.phase.0 <= phase);
    let matrix_path = YamlPath::root().key("firewall").key("matrix");
    let (policy, policy_origin) = match matrix {
        Some(m) => (
            match m.default_between_segments {
                FwPolicy::Accept => Action::Accept,
                FwPolicy::Drop => Action::Drop,
                FwPolicy::Reject => Action::Reject,
            },
            Origin::Spec(matrix_path.key("defaultBetweenSegments")),
        ),
        None => (
            Action::Drop,
            Origin::Builtin("no segment matrix in force: nothing crosses the router"),
        ),
    };
    if let Some(m) = matrix {
        for (list, key, action) in [
            (&m.deny, "deny", Action::Drop),
            (&m.allow, "allow", Action::Accept),
        ] {
            for (i, flow) in list.iter().enumerate() {
                let path = matrix_path.key(key).index(i);
                match flow_rule(&world, &interfaces, flow, &path, action)? {
                    Ok(rule) => forward.push(rule),
                    Err(u) => unrouted.push(u),
                }
            }
        }
    }
    forward.extend(builtin_forward(spec, &interfaces));

    Ok(RuleSet {
        router_vm: router.vm.clone(),
        phase,
        input: Chain {
            rules: input_rules(spec, &interfaces),
            policy: Action::Drop,
            policy_origin: Origin::Builtin("the router itself answers only what is listed"),
        },
        forward: Chain {
            rules: forward,
            policy,
            policy_origin,
        },
        masquerade: masquerade(&interfaces),
        interfaces,
        hosts,
        unrouted,
    })
}

/// Longest link name Linux accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

fn check_ifname(name: &str, path: &YamlPath) -> Result<(), CompileError> {
    let reason = if name.is_empty() || name.len() > MAX_IFNAME {
        Some(format!("a link name has 1 to {MAX_IFNAME} characters"))
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some("use letters, digits, `-`, `_` or `.`".to_string())
    } else if name == "lo" || name == TAILSCALE_IFACE {
        Some(format!("`{name}` is taken by the router itself"))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CompileError::BadInterfaceName {
            path: path.clone(),
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

fn interfaces(
    world: &World<'_>,
    router: &labwright_spec::model::Router,
    vm: &labwright_spec::model::Vm,
) -> Result<Vec<Interface>, CompileError> {
    let base = YamlPath::root().key("router").key("interfaces");
    let phase = labwright_spec::model::Phase(world.phase);
    let mut out = Vec::new();
    for (name, ri) in &router.interfaces {
        let path = base.key(name.as_str());
        check_ifname(name, &path)?;
        let seg = world.segment(&ri.segment, &path.key("segment"))?;
        let Some(nic) = vm.nics.get(&ri.nic) else {
            return Err(CompileError::UnknownNic {
                path: path.key("nic"),
                nic: ri.nic.clone(),
                known: vm.nics.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        if nic.bridge_in(phase) != seg.bridge {
            return Err(CompileError::BridgeMismatch {
                path: path.key("nic"),
                nic: ri.nic.clone(),
                nic_bridge: nic.bridge_in(phase).to_string(),
                segment: ri.segment.clone(),
                segment_bridge: seg.bridge.clone(),
                phase: world.phase,
            });
        }
        if let Some(a) = ri.address
            && !crate::resolve::contains(network(seg.cidr), host(a))
        {
            return Err(CompileError::AddressOutsideSegment {
                path: path.key("address"),
                address: a.to_string(),
                segment: ri.segment.clone(),
                cidr: seg.cidr.to_string(),
            });
        }
        out.push(Interface {
            name: name.clone(),
            role: if ri.address.is_some() {
                Role::Internal
            } else {
                Role::Wan
            },
            segment: Some(ri.segment.clone()),
            nic: Some(ri.nic.clone()),
            cidr: network(seg.cidr),
            address: ri.address,
            dhcp: ri.dhcp,
            origin: path,
        });
    }
    let wans: Vec<&str> = out
        .iter()
        .filter(|i| i.role == Role::Wan)
        .map(|i| i.name.as_str())
        .collect();
    if wans.len() > 1 {
        return Err(CompileError::SeveralUpstream {
            path: base,
            names: wans.join(", "),
        });
    }
    // The router advertises subnet routes: it is on the tailnet.
    let ts = world.spec.tailscale.as_ref();
    if let Some((i, _)) = ts.and_then(|t| {
        t.subnet_routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.via == router.vm && r.phase.0 <= world.phase)
    }) {
        out.push(Interface {
            name: TAILSCALE_IFACE.into(),
            role: Role::Tailnet,
            segment: None,
            nic: None,
            cidr: network(world.spec.safety_guards.tailscale_range()),
            address: None,
            dhcp: false,
            origin: YamlPath::root()
                .key("tailscale")
                .key("subnetRoutes")
                .index(i),
        });
    }
    Ok(out)
}

/// The node and every VM (but the router) that sits on one of the router's segments.
fn hosts(
    world: &World<'_>,
    interfaces: &[Interface],
    router_vm: &str,
) -> Result<Vec<Host>, CompileError> {
    let on_router = |seg: &str| interfaces.iter().any(|i| i.segment.as_deref() == Some(seg));
    let mut out = Vec::new();
    if let Ok(h) = world.node_host(&YamlPath::root().key("node"))
        && on_router(&h.segment)
    {
        out.push(h);
    }
    for (i, vm) in world.spec.vms.iter().enumerate() {
        if vm.name == router_vm || vm.phase.0 > world.phase {
            continue;
        }
        match world.vm_host(&vm.name, &YamlPath::root().key("vms").index(i)) {
            Ok(h) if on_router(&h.segment) => out.push(h),
            // A VM off every segment is no host of the router's; a flow naming it
            // reports that with the flow's path.
            Ok(_) | Err(CompileError::NoAddress { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn ports(flow: &MatrixFlow, path: &YamlPath) -> Result<Vec<(u16, u16)>, CompileError> {
    let mut out = Vec::new();
    for (i, p) in flow.ports.iter().enumerate() {
        let r = p.ranges().map_err(|e| CompileError::BadPorts {
            path: path.key("ports").index(i),
            detail: e,
        })?;
        out.extend(r);
    }
    if !out.is_empty() && !matches!(flow.proto, Proto::Tcp | Proto::Udp) {
        return Err(CompileError::BadPorts {
            path: path.key("ports"),
            detail: format!(
                "ports need `proto: tcp` or `proto: udp`, not `{}`; drop the ports or set the protocol",
                flow.proto.as_pve().unwrap_or("any")
            ),
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The link an endpoint's traffic uses, if the router has one there.
fn link_of(ep: &Endpoint, interfaces: &[Interface]) -> Option<String> {
    match &ep.zone {
        Zone::Segment(s) => interfaces
            .iter()
            .find(|i| i.segment.as_deref() == Some(s.as_str()))
            .map(|i| i.name.clone()),
        Zone::Tailnet => interfaces
            .iter()
            .find(|i| i.role == Role::Tailnet)
            .map(|i| i.name.clone()),
        Zone::Outside => None,
    }
}

fn nets_text(nets: &[Cidr]) -> String {
    nets.iter()
        .map(Cidr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One matrix flow → a forward rule, or the reason the router never sees it.
fn flow_rule(
    world: &World<'_>,
    interfaces: &[Interface],
    flow: &MatrixFlow,
    path: &YamlPath,
    action: Action,
) -> Result<Result<Rule, Unrouted>, CompileError> {
    let from = world.endpoint(&flow.from, &path.key("from"))?;
    let to = world.endpoint(&flow.to, &path.key("to"))?;
    let dports = ports(flow, path)?;
    if let (Zone::Segment(a), Zone::Segment(b)) = (&from.zone, &to.zone)
        && a == b
    {
        return Ok(Err(Unrouted {
            from: flow.from.clone(),
            to: flow.to.clone(),
            origin: path.clone(),
            reason: format!(
                "both ends are on segment `{a}`: its bridge carries the traffic and the router never sees it (the guests' own firewalls decide)"
            ),
        }));
    }
    let oif = link_of(&to, interfaces);
    if oif.is_none() {
        return Err(CompileError::NotBehindRouter {
            path: path.key("to"),
            name: flow.to.clone(),
            nets: nets_text(&to.nets),
        });
    }
    // Segments arrive on their own link (a spoofed source elsewhere does not match);
    // the admin CIDRs, the tailnet and named CIDRs are matched by address alone, since
    // they may reach the router over more than one link.
    let iif = match from.kind {
        EndpointKind::Segment | EndpointKind::Node | EndpointKind::Vm { .. } => {
            let Some(l) = link_of(&from, interfaces) else {
                return Err(CompileError::NotBehindRouter {
                    path: path.key("from"),
                    name: flow.from.clone(),
                    nets: nets_text(&from.nets),
                });
            };
            vec![l]
        }
        _ => Vec::new(),
    };
    let mut comment = format!("{} → {}", flow.from, flow.to);
    if let Some(c) = &flow.comment {
        comment = format!("{comment}: {c}");
    }
    for ep in [&from, &to] {
        if ep.kind == (EndpointKind::Vm { leased: true }) {
            comment.push_str(&format!(" ({} leased: whole segment)", ep.name));
        }
    }
    Ok(Ok(Rule {
        from: flow.from.clone(),
        to: flow.to.clone(),
        iif,
        oif: oif.into_iter().collect(),
        saddr: AddrSet::of(from.nets),
        daddr: AddrSet::of(to.nets),
        proto: match flow.proto {
            Proto::Tcp => Some(L4::Tcp),
            Proto::Udp => Some(L4::Udp),
            Proto::Icmp => Some(L4::Icmp),
            Proto::Any => None,
        },
        dports,
        action,
        comment,
        origin: Origin::Spec(path.clone()),
    }))
}

fn names(interfaces: &[Interface], role: Role) -> Vec<String> {
    interfaces
        .iter()
        .filter(|i| i.role == role)
        .map(|i| i.name.clone())
        .collect()
}

/// After the matrix: internal segments may go out upstream (to addresses beyond every
/// declared network); nothing new comes in from upstream.
fn builtin_forward(spec: &Spec, interfaces: &[Interface]) -> Vec<Rule> {
    let Some(wan) = interfaces.iter().find(|i| i.role == Role::Wan) else {
        return Vec::new();
    };
    let mut rules = Vec::new();
    let internal = names(interfaces, Role::Internal);
    if !internal.is_empty() {
        let mut declared: Vec<Cidr> = spec
            .networks
            .segments
            .values()
            .map(|s| network(s.cidr))
            .collect();
        declared.push(network(spec.safety_guards.tailscale_range()));
        rules.push(Rule {
            from: internal.join("+"),
            to: "upstream".into(),
            iif: internal,
            oif: vec![wan.name.clone()],
            saddr: AddrSet::any(),
            daddr: AddrSet::not_in(declared),
            proto: None,
            dports: Vec::new(),
            action: Action::Accept,
            comment: "internal segments → upstream (the internet), NATed".into(),
            origin: Origin::Builtin("outbound from internal segments"),
        });
    }
    rules.push(Rule {
        from: "upstream".into(),
        to: "any".into(),
        iif: vec![wan.name.clone()],
        oif: Vec::new(),
        saddr: AddrSet::any(),
        daddr: AddrSet::any(),
        proto: None,
        dports: Vec::new(),
        action: Action::Drop,
        comment: "no new connection from upstream but the declared flows".into(),
        origin: Origin::Builtin("no public inbound (Tailscale-only remote access)"),
    });
    rules
}

fn input_rules(spec: &Spec, interfaces: &[Interface]) -> Vec<Rule> {
    let g = &spec.safety_guards;
    let mgmt_ports: Vec<(u16, u16)> = ROUTER_MANAGEMENT_PORTS.iter().map(|p| (*p, *p)).collect();
    let mut rules = Vec::new();
    let mgmt = |from: &str, nets: Vec<Cidr>, comment: &str, origin: YamlPath| Rule {
        from: from.into(),
        to: "router".into(),
        iif: Vec::new(),
        oif: Vec::new(),
        saddr: AddrSet::of(nets),
        daddr: AddrSet::any(),
        proto: Some(L4::Tcp),
        dports: mgmt_ports.clone(),
        action: Action::Accept,
        comment: comment.into(),
        origin: Origin::Spec(origin),
    };
    let guards = YamlPath::root().key("safetyGuards");
    if !g.management_access_cidrs.is_empty() {
        rules.push(mgmt(
            "management",
            g.management_access_cidrs
                .iter()
                .map(|c| network(*c))
                .collect(),
            "admin CIDRs → router SSH and GUI",
            guards.key("managementAccessCidrs"),
        ));
    }
    if g.tailscale_management {
        rules.push(mgmt(
            "tailscale",
            vec![network(g.tailscale_range())],
            "Tailscale → router SSH and GUI",
            guards.key("tailscaleManagement"),
        ));
    }
    let served: Vec<&Interface> = interfaces.iter().filter(|i| i.dhcp).collect();
    for i in served {
        let base = Rule {
            from: i.name.clone(),
            to: "router".into(),
            iif: vec![i.name.clone()],
            oif: Vec::new(),
            saddr: AddrSet::any(),
            daddr: AddrSet::any(),
            proto: Some(L4::Udp),
            dports: vec![(67, 67)],
            action: Action::Accept,
            comment: format!("DHCP on {}", i.name),
            origin: Origin::Spec(i.origin.key("dhcp")),
        };
        // Its leases name the router as resolver.
        let dns = |proto| Rule {
            proto: Some(proto),
            dports: vec![(53, 53)],
            comment: format!("DNS on {} (the resolver its DHCP leases name)", i.name),
            ..base.clone()
        };
        rules.push(dns(L4::Udp));
        rules.push(dns(L4::Tcp));
        rules.push(base);
    }
    rules
}

fn masquerade(interfaces: &[Interface]) -> Vec<Masquerade> {
    let Some(wan) = interfaces.iter().find(|i| i.role == Role::Wan) else {
        return Vec::new();
    };
    let internal: Vec<Cidr> = interfaces
        .iter()
        .filter(|i| i.role == Role::Internal)
        .map(|i| i.cidr)
        .collect();
    if internal.is_empty() {
        return Vec::new();
    }
    vec![Masquerade {
        oif: wan.name.clone(),
        saddr: AddrSet::of(internal),
        comment: "internal segments → upstream: outbound NAT".into(),
        origin: Origin::Spec(wan.origin.clone()),
    }]
}
