//! The reachability matrix: who reaches what (segments, Tailscale, management → the
//! node and the VMs) on the ports the spec mentions, evaluated on a firewall
//! configuration, next to what the spec intends for each cell. A value: the CLI's
//! `firewall matrix` and the HTML report render it.

use labwright_firewall::{Backend, FirewallConfig, Flow, Protocol, Target, classify_flows};
use labwright_spec::Spec;
use labwright_spec::model::{FwPolicy, MANAGEMENT_PORTS, Proto};
use labwright_spec::types::Cidr;
use serde::Serialize;

/// The matrix of one configuration at one phase.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Matrix {
    pub phase: u8,
    pub backend: Backend,
    /// Row names, in order.
    pub sources: Vec<String>,
    /// Columns, in order: (destination, `proto/ports`).
    pub columns: Vec<(String, String)>,
    pub cells: Vec<Cell>,
    pub disagreements: usize,
}

/// What the traffic of one cell gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    Allow,
    Deny,
    /// Some addresses or ports of the cell get through, others do not.
    Partial,
}

/// What the spec wants for one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Intent {
    Allow,
    Deny,
    /// The spec says nothing.
    None,
    /// The intent belongs to a later phase than the one evaluated.
    Later,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    pub from: String,
    pub to: String,
    /// `tcp/22`.
    pub ports: String,
    pub reach: Reach,
    pub intent: Intent,
    pub disagrees: bool,
    /// What decided (the first class's decision).
    pub decided_by: String,
}

struct Source {
    name: String,
    nets: Vec<Cidr>,
}

struct Dest {
    name: String,
    target: Target,
    ports: Vec<(Proto, (u16, u16))>,
}

fn ranges(ports: &[labwright_spec::model::PortSpec]) -> Vec<(u16, u16)> {
    ports
        .iter()
        .flat_map(|p| p.ranges().unwrap_or_default())
        .collect()
}

fn port_text(r: (u16, u16)) -> String {
    if r.0 == r.1 {
        r.0.to_string()
    } else {
        format!("{}-{}", r.0, r.1)
    }
}

fn proto_of(p: Proto) -> Protocol {
    match p {
        Proto::Udp => Protocol::UDP,
        Proto::Icmp => Protocol::ICMP,
        _ => Protocol::TCP,
    }
}

fn reach(
    cfg: &FirewallConfig,
    nets: &[Cidr],
    d: &Dest,
    proto: Proto,
    r: (u16, u16),
    backend: Backend,
) -> (Reach, String) {
    let mut any_ok = false;
    let mut any_bad = false;
    let mut first = String::new();
    for c in nets {
        let net = c.0.trunc();
        let template = Flow::new(net.network(), d.target.clone(), proto_of(proto), Some(r.0));
        for c in classify_flows(cfg, net, r, &template, backend) {
            if first.is_empty() {
                first = c.decision.decided_by.to_string();
            }
            if c.decision.verdict.is_accept() {
                any_ok = true;
            } else {
                any_bad = true;
            }
        }
    }
    let rch = match (any_ok, any_bad) {
        (true, false) => Reach::Allow,
        (false, _) => Reach::Deny,
        _ => Reach::Partial,
    };
    (rch, first)
}

fn covers(ports: &[(u16, u16)], r: (u16, u16)) -> bool {
    ports.is_empty() || ports.iter().any(|(lo, hi)| *lo <= r.0 && r.1 <= *hi)
}

/// The intent of the spec for `from` → `to` on a port range.
fn intent(spec: &Spec, phase: u8, from: &str, to: &Dest, r: (u16, u16)) -> Intent {
    let fwall = spec.firewall.as_ref();
    let matrix = fwall.and_then(|f| f.matrix.as_ref());
    let matrix_live = matrix.is_some_and(|m| m.phase.0 <= phase);
    let seg_phase = |s: &str| spec.networks.segments.get(s).map_or(0, |x| x.phase.0);
    let to_name = to.name.as_str();
    let later = seg_phase(from) > phase;
    let mut deferred = false;
    if let Some(m) = matrix {
        let hit = |list: &[labwright_spec::model::MatrixFlow]| {
            list.iter()
                .any(|f| f.from == from && f.to == to_name && covers(&ranges(&f.ports), r))
        };
        let said = if hit(&m.deny) {
            Some(Intent::Deny)
        } else if hit(&m.allow) {
            Some(Intent::Allow)
        } else {
            None
        };
        match said {
            Some(i) if matrix_live && !later => return i,
            Some(_) => deferred = true,
            None => {}
        }
    }
    let base = base_intent(spec, phase, from, to, r, later);
    if base == Intent::None && deferred {
        Intent::Later
    } else {
        base
    }
}

/// Intent from the safety guards (node) and the VM allowlists.
fn base_intent(
    spec: &Spec,
    phase: u8,
    from: &str,
    to: &Dest,
    r: (u16, u16),
    later: bool,
) -> Intent {
    match &to.target {
        Target::Node(_) => {
            let mgmt = r.0 == r.1 && MANAGEMENT_PORTS.contains(&r.0);
            if mgmt
                && (from == "management"
                    || (from == "tailscale" && spec.safety_guards.tailscale_management))
            {
                return Intent::Allow;
            }
            Intent::None
        }
        Target::Vm(id) => {
            let Some(vm) = spec.vms.iter().find(|v| v.vmid == *id) else {
                return Intent::None;
            };
            let Some(vf) = &vm.firewall else {
                return Intent::None;
            };
            if vm.phase.0 > phase {
                return Intent::Later;
            }
            // Intended when the row is that source, or lies wholly inside it (the
            // management PC is part of the LAN).
            let row = nets_of(spec, from);
            let allowed = vf.allow.iter().any(|e| {
                covers(&ranges(&e.ports), r)
                    && (e.from == from || {
                        let allowed_nets = nets_of(spec, &e.from);
                        !row.is_empty()
                            && row
                                .iter()
                                .all(|n| allowed_nets.iter().any(|a| a.0.contains(&n.0)))
                    })
            });
            if allowed {
                return if later { Intent::Later } else { Intent::Allow };
            }
            if vf.enable && vf.policy_in != FwPolicy::Accept {
                Intent::Deny
            } else {
                Intent::None
            }
        }
    }
}

/// The addresses a matrix or allowlist name stands for.
fn nets_of(spec: &Spec, name: &str) -> Vec<Cidr> {
    if let Some(s) = spec.networks.segments.get(name) {
        return vec![s.cidr];
    }
    match name {
        "tailscale" => vec![spec.safety_guards.tailscale_range()],
        "management" => spec.safety_guards.management_access_cidrs.clone(),
        other => {
            let alias = spec
                .firewall
                .as_ref()
                .and_then(|f| f.aliases.get(other).copied());
            alias
                .or_else(|| other.parse::<Cidr>().ok())
                .into_iter()
                .collect()
        }
    }
}

/// Evaluates the matrix of `spec` (at `phase`) on `cfg`.
pub fn reachability(spec: &Spec, phase: u8, cfg: &FirewallConfig) -> Matrix {
    let backend = Backend::for_node(cfg, spec.node_name());
    // Rows: segments, Tailscale, management.
    let mut sources: Vec<Source> = spec
        .networks
        .segments
        .iter()
        .map(|(n, s)| Source {
            name: n.clone(),
            nets: vec![s.cidr],
        })
        .collect();
    sources.push(Source {
        name: "tailscale".into(),
        nets: vec![spec.safety_guards.tailscale_range()],
    });
    let mgmt: Vec<Cidr> = spec.safety_guards.management_access_cidrs.clone();
    if !mgmt.is_empty() {
        sources.push(Source {
            name: "management".into(),
            nets: mgmt,
        });
    }

    // Columns: the node on 22/8006, every VM with an allowlist or named by the matrix,
    // on the ports the spec mentions for it.
    let mut dests = vec![Dest {
        name: "node".into(),
        target: Target::Node(spec.node_name().to_string()),
        ports: MANAGEMENT_PORTS
            .iter()
            .map(|p| (Proto::Tcp, (*p, *p)))
            .collect(),
    }];
    let matrix_flows: Vec<&labwright_spec::model::MatrixFlow> = spec
        .firewall
        .as_ref()
        .and_then(|f| f.matrix.as_ref())
        .map(|m| m.allow.iter().chain(m.deny.iter()).collect())
        .unwrap_or_default();
    for vm in &spec.vms {
        let mut ports: Vec<(Proto, (u16, u16))> = Vec::new();
        if let Some(vf) = &vm.firewall {
            for e in &vf.allow {
                for r in ranges(&e.ports) {
                    ports.push((e.proto, r));
                }
            }
        }
        for f in matrix_flows.iter().filter(|f| f.to == vm.name) {
            for r in ranges(&f.ports) {
                ports.push((f.proto, r));
            }
        }
        if ports.is_empty() {
            continue;
        }
        ports.sort_by_key(|(p, r)| (proto_of(*p).to_string(), *r));
        ports.dedup();
        dests.push(Dest {
            name: vm.name.clone(),
            target: Target::Vm(vm.vmid),
            ports,
        });
    }

    let mut cells = Vec::new();
    for s in &sources {
        for d in &dests {
            for (proto, r) in &d.ports {
                let (rch, by) = reach(cfg, &s.nets, d, *proto, *r, backend);
                let it = intent(spec, phase, &s.name, d, *r);
                let disagrees = match it {
                    Intent::Allow => rch != Reach::Allow,
                    Intent::Deny => rch != Reach::Deny,
                    _ => false,
                };
                cells.push(Cell {
                    from: s.name.clone(),
                    to: d.name.clone(),
                    ports: format!("{}/{}", proto_of(*proto), port_text(*r)),
                    reach: rch,
                    intent: it,
                    disagrees,
                    decided_by: by,
                });
            }
        }
    }
    let disagreements = cells.iter().filter(|c| c.disagrees).count();
    let columns = dests
        .iter()
        .flat_map(|d| {
            d.ports.iter().map(|(p, r)| {
                (
                    d.name.clone(),
                    format!("{}/{}", proto_of(*p), port_text(*r)),
                )
            })
        })
        .collect();
    Matrix {
        phase,
        backend,
        sources: sources.into_iter().map(|s| s.name).collect(),
        columns,
        cells,
        disagreements,
    }
}
