//! The segment-matrix cells as the router sees them: every source (segments, the
//! tailnet, the admin CIDRs) × every destination (the router itself, the node, the VMs
//! the matrix or an allowlist names) × every port the spec mentions for it, with the
//! path the traffic takes and what the spec intends for it.
//!
//! Same notion of cell and intent as the static matrix of the PVE side (engine's
//! `firewall::matrix`): an explicit matrix deny wins over an allow, and a source row
//! is covered by a flow whose `from` contains it (the admin PC is part of the LAN).
//! Where that matrix's intent falls back to the guests' allowlists, a cell that
//! crosses the router falls back to `defaultBetweenSegments` instead — the router
//! enforces the matrix, not the guests' firewalls — and the disagreement, if any, is
//! kept as a note. Intent is computed from the spec's names, never from the compiled
//! rules, so probing the rules against it is a real check.

use labwright_spec::model::{FwPolicy, MANAGEMENT_PORTS, MatrixFlow, Proto};
use labwright_spec::{Spec, YamlPath};

use crate::compile::compile;
use crate::error::CompileError;
use crate::model::{L4, ROUTER_MANAGEMENT_PORTS, Role, RuleSet};
use crate::resolve::{Endpoint, EndpointKind, World, Zone, all_within};

/// What the spec wants for a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    Allow,
    Deny,
    /// The spec says nothing.
    None,
}

/// The way a cell's traffic goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Path {
    /// Through the router, between two of its links: its forward rules decide.
    Router,
    /// To the router itself: its input rules decide.
    RouterItself,
    /// Both ends on this segment's bridge: the router never sees it.
    Bridge(String),
    /// From the tailnet through this VM, a subnet router on the destination's segment.
    Via(String),
    /// No route from the source to the destination (no subnet route covers it).
    NoRoute,
    /// A path the router model does not cover (said why).
    Unmodelled(String),
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Router => f.write_str("router"),
            Path::RouterItself => f.write_str("router itself"),
            Path::Bridge(s) => write!(f, "bridge ({s})"),
            Path::Via(vm) => write!(f, "via {vm}"),
            Path::NoRoute => f.write_str("no route"),
            Path::Unmodelled(why) => write!(f, "unmodelled: {why}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub from: String,
    pub to: String,
    pub proto: L4,
    /// Inclusive port range.
    pub ports: (u16, u16),
    pub path: Path,
    pub intent: Intent,
    /// The spec value (or rule) the intent comes from.
    pub decided_by: String,
    /// The router's behaviour can be checked against the intent on this cell:
    /// every cell on a router path with an intent, and the allowed cells elsewhere
    /// (the bridge must carry them). A denied bridge cell is the guests' firewalls'.
    pub checked: bool,
    /// A disagreement between the matrix and a guest's allowlist, for the report.
    pub note: Option<String>,
}

impl Cell {
    /// `tcp/22` or `tcp/8000-8100`.
    pub fn ports_text(&self) -> String {
        let p = match self.proto {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
            L4::Icmp => "icmp",
        };
        if self.ports.0 == self.ports.1 {
            format!("{p}/{}", self.ports.0)
        } else {
            format!("{p}/{}-{}", self.ports.0, self.ports.1)
        }
    }
}

struct Dest {
    ep: Endpoint,
    ports: Vec<(L4, (u16, u16))>,
    /// `vms[i]` for a VM.
    vm: Option<usize>,
}

fn l4(p: Proto) -> Option<L4> {
    match p {
        Proto::Tcp => Some(L4::Tcp),
        Proto::Udp => Some(L4::Udp),
        _ => None,
    }
}

fn proto_covers(p: Proto, l: L4) -> bool {
    p == Proto::Any || l4(p) == Some(l)
}

fn ranges(ports: &[labwright_spec::model::PortSpec]) -> Vec<(u16, u16)> {
    ports
        .iter()
        .flat_map(|p| p.ranges().unwrap_or_default())
        .collect()
}

fn ports_cover(ports: &[(u16, u16)], r: (u16, u16)) -> bool {
    ports.is_empty() || ports.iter().any(|(lo, hi)| *lo <= r.0 && r.1 <= *hi)
}

/// Every cell of `spec` at `phase`. Fails when the router does not compile (the
/// cells need its links to know the paths).
pub fn cells(spec: &Spec, phase: u8) -> Result<Vec<Cell>, CompileError> {
    let rs = compile(spec, phase)?;
    let world = World::new(spec, phase);
    let root = YamlPath::root();
    let mut rows: Vec<Endpoint> = Vec::new();
    for (name, _) in world.segments() {
        rows.push(world.endpoint(name, &root.key("networks").key("segments"))?);
    }
    rows.push(world.endpoint("tailscale", &root)?);
    if !spec.safety_guards.management_access_cidrs.is_empty() {
        rows.push(world.endpoint("management", &root.key("safetyGuards"))?);
    }

    let flows: Vec<&MatrixFlow> = matrix_flows(spec, phase)
        .into_iter()
        .flat_map(|(d, a)| d.iter().chain(a.iter()))
        .collect();
    let mgmt: Vec<(L4, (u16, u16))> = MANAGEMENT_PORTS
        .iter()
        .map(|p| (L4::Tcp, (*p, *p)))
        .collect();
    let mut dests = vec![Dest {
        ep: world.endpoint("node", &root.key("node"))?,
        ports: mgmt,
        vm: None,
    }];
    for (i, vm) in spec.vms.iter().enumerate() {
        if vm.name == rs.router_vm || vm.phase.0 > phase {
            continue;
        }
        let mut ports = Vec::new();
        for e in vm.firewall.iter().flat_map(|f| f.allow.iter()) {
            ports.extend(
                ranges(&e.ports)
                    .into_iter()
                    .filter_map(|r| Some((l4(e.proto)?, r))),
            );
        }
        for f in flows.iter().filter(|f| f.to == vm.name) {
            ports.extend(
                ranges(&f.ports)
                    .into_iter()
                    .filter_map(|r| Some((l4(f.proto)?, r))),
            );
        }
        if ports.is_empty() {
            continue;
        }
        ports.sort_by_key(|(p, r)| (*p as u8, *r));
        ports.dedup();
        // A VM off every segment is not the router's to reach.
        let Ok(ep) = world.endpoint(&vm.name, &root.key("vms").index(i)) else {
            continue;
        };
        dests.push(Dest {
            ep,
            ports,
            vm: Some(i),
        });
    }

    let mut out = Vec::new();
    for row in &rows {
        for port in ROUTER_MANAGEMENT_PORTS {
            let (intent, by) = router_itself_intent(spec, row);
            out.push(Cell {
                from: row.name.clone(),
                to: "router".into(),
                proto: L4::Tcp,
                ports: (port, port),
                path: Path::RouterItself,
                intent,
                decided_by: by,
                checked: intent != Intent::None,
                note: None,
            });
        }
        for d in &dests {
            let path = path_of(spec, &rs, row, &d.ep);
            for (proto, r) in &d.ports {
                out.push(cell(&world, row, d, *proto, *r, path.clone()));
            }
        }
    }
    Ok(out)
}

type Flows<'a> = (&'a [MatrixFlow], &'a [MatrixFlow]);

/// (deny, allow) of the matrix in force at `phase`.
fn matrix_flows(spec: &Spec, phase: u8) -> Option<Flows<'_>> {
    spec.firewall
        .as_ref()
        .and_then(|f| f.matrix.as_ref())
        .filter(|m| m.phase.0 <= phase)
        .map(|m| (m.deny.as_slice(), m.allow.as_slice()))
}

fn router_itself_intent(spec: &Spec, row: &Endpoint) -> (Intent, String) {
    let g = &spec.safety_guards;
    let admin: Vec<_> = g.management_access_cidrs.clone();
    if all_within(&row.nets, &admin) {
        return (Intent::Allow, "safetyGuards.managementAccessCidrs".into());
    }
    if row.kind == EndpointKind::Tailscale && g.tailscale_management {
        return (Intent::Allow, "safetyGuards.tailscaleManagement".into());
    }
    (
        Intent::Deny,
        "router management only from the admin CIDRs and Tailscale".into(),
    )
}

fn path_of(spec: &Spec, rs: &RuleSet, row: &Endpoint, dest: &Endpoint) -> Path {
    let linked = |seg: &str| rs.interface_on(seg).is_some();
    match (&row.zone, &dest.zone) {
        (Zone::Segment(a), Zone::Segment(b)) if a == b => Path::Bridge(a.clone()),
        (Zone::Segment(a), Zone::Segment(b)) => {
            if linked(a) && linked(b) {
                Path::Router
            } else {
                Path::Unmodelled(format!("the router has no link on both {a} and {b}"))
            }
        }
        (Zone::Tailnet, Zone::Segment(b)) => {
            let seg_cidr = spec.networks.segments.get(b).map(|s| s.cidr);
            let route = spec
                .tailscale
                .iter()
                .flat_map(|t| t.subnet_routes.iter())
                .find(|r| {
                    r.phase.0 <= rs.phase
                        && (r.route == *b
                            || r.route
                                .parse::<labwright_spec::types::Cidr>()
                                .is_ok_and(|c| {
                                    seg_cidr.is_some_and(|s| c.0.contains(&s.0.trunc()))
                                }))
                });
            match route {
                None => Path::NoRoute,
                Some(r) if r.via == rs.router_vm => {
                    if linked(b) && rs.interfaces.iter().any(|i| i.role == Role::Tailnet) {
                        Path::Router
                    } else {
                        Path::Unmodelled(format!("the router has no link on {b}"))
                    }
                }
                Some(r) => {
                    let on_b = rs.host(&r.via).is_some_and(|h| h.segment == *b);
                    if on_b {
                        Path::Via(r.via.clone())
                    } else {
                        Path::Unmodelled(format!("{} advertises {b} but is not on it", r.via))
                    }
                }
            }
        }
        (Zone::Outside, _) | (_, Zone::Outside) => {
            Path::Unmodelled("outside every declared segment".into())
        }
        (_, Zone::Tailnet) => Path::Unmodelled("destination on the tailnet".into()),
    }
}

/// The first flow of `list` covering the cell, as its path.
fn hit(
    world: &World<'_>,
    list: &[MatrixFlow],
    key: &str,
    row: &Endpoint,
    dest: &Endpoint,
    proto: L4,
    r: (u16, u16),
) -> Option<String> {
    list.iter().enumerate().find_map(|(i, f)| {
        let path = YamlPath::root()
            .key("firewall")
            .key("matrix")
            .key(key)
            .index(i);
        if !proto_covers(f.proto, proto) || !ports_cover(&ranges(&f.ports), r) {
            return None;
        }
        let from_ok = f.from == row.name
            || world
                .endpoint(&f.from, &path)
                .is_ok_and(|e| all_within(&row.nets, &e.nets));
        // A flow to a VM covers that VM only (a leased VM's rule covers its whole
        // segment, but the intent is for the VM named).
        let to_ok = f.to == dest.name
            || world.endpoint(&f.to, &path).is_ok_and(|e| {
                !matches!(e.kind, EndpointKind::Vm { .. }) && all_within(&dest.nets, &e.nets)
            });
        (from_ok && to_ok).then(|| path.to_string())
    })
}

/// Intent of the guest's own side: its allowlist, or the management guards for the
/// node.
fn guest_intent(
    world: &World<'_>,
    row: &Endpoint,
    d: &Dest,
    proto: L4,
    r: (u16, u16),
) -> (Intent, String) {
    let spec = world.spec;
    let Some(i) = d.vm else {
        let g = &spec.safety_guards;
        let mgmt_port = proto == L4::Tcp && r.0 == r.1 && MANAGEMENT_PORTS.contains(&r.0);
        if mgmt_port && all_within(&row.nets, &g.management_access_cidrs) {
            return (Intent::Allow, "safetyGuards.managementAccessCidrs".into());
        }
        if mgmt_port && row.kind == EndpointKind::Tailscale && g.tailscale_management {
            return (Intent::Allow, "safetyGuards.tailscaleManagement".into());
        }
        return (Intent::None, String::new());
    };
    let Some(fw) = spec.vms.get(i).and_then(|v| v.firewall.as_ref()) else {
        return (Intent::None, String::new());
    };
    let base = YamlPath::root().key("vms").index(i).key("firewall");
    for (j, e) in fw.allow.iter().enumerate() {
        let path = base.key("allow").index(j);
        if !proto_covers(e.proto, proto) || !ports_cover(&ranges(&e.ports), r) {
            continue;
        }
        let from_ok = e.from == row.name
            || world
                .endpoint(&e.from, &path)
                .is_ok_and(|ep| all_within(&row.nets, &ep.nets));
        if from_ok {
            return (Intent::Allow, path.to_string());
        }
    }
    if fw.enable && fw.policy_in != FwPolicy::Accept {
        (Intent::Deny, base.key("policyIn").to_string())
    } else {
        (Intent::None, String::new())
    }
}

fn cell(world: &World<'_>, row: &Endpoint, d: &Dest, proto: L4, r: (u16, u16), path: Path) -> Cell {
    let spec = world.spec;
    let explicit = matrix_flows(spec, world.phase).and_then(|(deny, allow)| {
        hit(world, deny, "deny", row, &d.ep, proto, r)
            .map(|p| (Intent::Deny, p))
            .or_else(|| {
                hit(world, allow, "allow", row, &d.ep, proto, r).map(|p| (Intent::Allow, p))
            })
    });
    let guest = explicit
        .clone()
        .unwrap_or_else(|| guest_intent(world, row, d, proto, r));
    let crosses_router = matches!(path, Path::Router | Path::NoRoute);
    let (intent, decided_by, note) = if crosses_router && explicit.is_none() {
        let (i, by) = match spec.firewall.as_ref().and_then(|f| f.matrix.as_ref()) {
            Some(m) if m.phase.0 <= world.phase => (
                if m.default_between_segments == FwPolicy::Accept {
                    Intent::Allow
                } else {
                    Intent::Deny
                },
                "firewall.matrix.defaultBetweenSegments".to_string(),
            ),
            _ => (
                Intent::Deny,
                "no matrix in force: the router forwards nothing".into(),
            ),
        };
        let note = (guest.0 != Intent::None && guest.0 != i).then(|| {
            format!(
                "{} says {:?} but the matrix has no flow for it, so the router's default ({:?}) wins",
                guest.1, guest.0, i
            )
        });
        (i, by, note)
    } else {
        (guest.0, guest.1, None)
    };
    let checked = match path {
        Path::Router | Path::RouterItself | Path::NoRoute => intent != Intent::None,
        Path::Bridge(_) | Path::Via(_) => intent == Intent::Allow,
        Path::Unmodelled(_) => false,
    };
    Cell {
        from: row.name.clone(),
        to: d.ep.name.clone(),
        proto,
        ports: r,
        path,
        intent,
        decided_by,
        checked,
        note,
    }
}
