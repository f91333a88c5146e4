//! The graph of what the spec declares, at one phase: every element of every phase
//! is drawn (later ones faded), so the picture of phase 0 already shows where the lab
//! is going.

use std::collections::BTreeMap;

use labwright_engine::firewall::matrix::{Matrix, Reach};
use labwright_spec::Spec;
use labwright_spec::model::{Phase, PveStorageType};

use super::{Edge, EdgeKind, Graph, Node, NodeKind, State};

pub fn state_at(phase: Phase, at: u8) -> State {
    if phase.0 > at {
        State::Later
    } else {
        State::Declared
    }
}

fn later_note(p: Phase, at: u8) -> Option<String> {
    (p.0 > at).then(|| format!("from phase {}", p.0))
}

/// The id of a bridge's box.
pub fn bridge_id(name: &str) -> String {
    format!("bridge-{name}")
}

pub fn vm_id(vmid: u32) -> String {
    format!("vm-{vmid}")
}

/// The picture of `spec` at `phase`, with the allowed flows of `matrix` (the engine's
/// reachability matrix of the same spec and phase).
pub fn from_spec(spec: &Spec, phase: u8, matrix: Option<&Matrix>) -> Graph {
    let mut g = Graph {
        lab: spec.metadata.name.clone(),
        phase,
        source: "spec",
        nodes: Vec::new(),
        edges: Vec::new(),
        notes: Vec::new(),
    };
    outside(spec, &mut g);
    host(spec, &mut g);
    bridges(spec, phase, &mut g);
    vms(spec, phase, &mut g);
    routes(spec, phase, &mut g);
    storage(spec, phase, &mut g);
    if let Some(m) = matrix {
        flows(spec, m, &mut g);
        g.notes.push(format!(
            "green lines: flows the firewall lets through at phase {} (reachability matrix, {} backend; `labwright firewall matrix` has every cell)",
            m.phase, m.backend
        ));
    }
    g
}

fn outside(spec: &Spec, g: &mut Graph) {
    let ts_range = spec.safety_guards.tailscale_range();
    if let Some(ts) = &spec.tailscale {
        let mut detail = vec![ts_range.to_string()];
        if let Some(t) = &ts.tailnet {
            detail.insert(0, t.clone());
        }
        g.nodes.push(Node {
            id: "tailnet".into(),
            kind: NodeKind::Tailnet,
            label: "Tailscale".into(),
            detail,
            state: State::Declared,
        });
    }
    let mgmt = &spec.safety_guards.management_access_cidrs;
    if !mgmt.is_empty() {
        g.nodes.push(Node {
            id: "management".into(),
            kind: NodeKind::Management,
            label: "management".into(),
            detail: mgmt.iter().map(ToString::to_string).collect(),
            state: State::Declared,
        });
    }
}

fn host(spec: &Spec, g: &mut Graph) {
    let mut detail = Vec::new();
    if let Some(a) = &spec.node.address {
        detail.push(a.to_string());
    }
    detail.push("Proxmox VE node".into());
    g.nodes.push(Node {
        id: "host".into(),
        kind: NodeKind::Host,
        label: spec.node_name().to_string(),
        detail,
        state: State::Declared,
    });
}

/// Bridges, with the segment each carries; a segment whose bridge is not declared
/// under `networks.bridges` still gets its box.
fn bridges(spec: &Spec, phase: u8, g: &mut Graph) {
    let mut names: BTreeMap<&str, Phase> = spec
        .networks
        .bridges
        .iter()
        .map(|(n, b)| (n.as_str(), b.phase))
        .collect();
    for s in spec.networks.segments.values() {
        names.entry(s.bridge.as_str()).or_insert(s.phase);
    }
    for (name, p) in names {
        let mut detail = Vec::new();
        for (seg, s) in spec
            .networks
            .segments
            .iter()
            .filter(|(_, s)| s.bridge == name)
        {
            detail.push(format!("{seg} {}", s.cidr));
        }
        let b = spec.networks.bridges.get(name);
        if let Some(a) = b.and_then(|b| b.address) {
            detail.push(format!("node {a}"));
        }
        detail.extend(later_note(p, phase));
        g.nodes.push(Node {
            id: bridge_id(name),
            kind: NodeKind::Bridge,
            label: name.to_string(),
            detail,
            state: state_at(p, phase),
        });
        let label = match b {
            Some(b) if b.ports.is_empty() => "internal-only".to_string(),
            Some(b) => b.ports.join(", "),
            None => String::new(),
        };
        g.edges.push(Edge {
            from: "host".into(),
            to: bridge_id(name),
            kind: EdgeKind::Uplink,
            label,
            state: state_at(p, phase),
        });
    }
}

fn vms(spec: &Spec, phase: u8, g: &mut Graph) {
    let router = spec.router.as_ref();
    for vm in &spec.vms {
        let state = state_at(vm.phase, phase);
        let is_router = router.is_some_and(|r| r.vm == vm.name);
        let mut detail = Vec::new();
        if let Some(role) = &vm.role
            && role != &vm.name
        {
            detail.push(role.clone());
        }
        if let Some(r) = router.filter(|_| is_router) {
            for (name, i) in &r.interfaces {
                let addr = i
                    .address
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "upstream DHCP".into());
                let dhcp = if i.dhcp { ", DHCP" } else { "" };
                detail.push(format!("{name}: {} on {}, {addr}{dhcp}", i.nic, i.segment));
            }
        }
        detail.extend(later_note(vm.phase, phase));
        g.nodes.push(Node {
            id: vm_id(vm.vmid),
            kind: if is_router {
                NodeKind::Router
            } else {
                NodeKind::Vm
            },
            label: format!("{} {}", vm.vmid, vm.name),
            detail,
            state,
        });
        for (slot, nic) in &vm.nics {
            let now = nic.bridge_in(Phase(phase));
            g.edges.push(Edge {
                from: bridge_id(now),
                to: vm_id(vm.vmid),
                kind: EdgeKind::Nic,
                label: slot.clone(),
                state,
            });
            if let Some(r) = &nic.reattach {
                let (other, label, st) = if r.phase.0 > phase {
                    (
                        r.bridge.as_str(),
                        format!("{slot} moves here in phase {}", r.phase.0),
                        State::Later,
                    )
                } else {
                    (
                        nic.bridge.as_str(),
                        format!("{slot} until phase {}", r.phase.0),
                        state,
                    )
                };
                g.edges.push(Edge {
                    from: bridge_id(other),
                    to: vm_id(vm.vmid),
                    kind: EdgeKind::Reattach,
                    label,
                    state: st,
                });
            }
        }
    }
}

fn routes(spec: &Spec, phase: u8, g: &mut Graph) {
    let Some(ts) = &spec.tailscale else {
        return;
    };
    for r in &ts.subnet_routes {
        let Some(vm) = spec.vm_by_name(&r.via) else {
            continue;
        };
        let cidr = spec
            .networks
            .segments
            .get(&r.route)
            .map(|s| format!(" {}", s.cidr))
            .unwrap_or_default();
        g.edges.push(Edge {
            from: "tailnet".into(),
            to: vm_id(vm.vmid),
            kind: EdgeKind::Route,
            label: format!("route {}{cidr}", r.route),
            state: state_at(r.phase.max(vm.phase), phase),
        });
    }
}

fn storage(spec: &Spec, phase: u8, g: &mut Graph) {
    let Some(st) = &spec.storage else {
        return;
    };
    for p in &st.zfs_pools {
        let mut detail = vec![format!(
            "ZFS {} · {} disk(s) · {}",
            labwright_engine::canon::enum_name(&p.raid_level),
            p.devices.len(),
            labwright_engine::canon::enum_name(&p.compression)
        )];
        detail.extend(later_note(p.phase, phase));
        g.nodes.push(Node {
            id: format!("pool-{}", p.name),
            kind: NodeKind::Pool,
            label: p.name.clone(),
            detail,
            state: state_at(p.phase, phase),
        });
        g.edges.push(Edge {
            from: "host".into(),
            to: format!("pool-{}", p.name),
            kind: EdgeKind::Storage,
            label: "zpool".into(),
            state: state_at(p.phase, phase),
        });
    }
    for d in &st.datasets {
        let mut detail = Vec::new();
        if let Some(s) = &d.snapshots {
            detail.push(format!(
                "snapshots {}, keep {}",
                labwright_engine::canon::enum_name(&s.schedule),
                s.keep
            ));
        }
        if let Some(q) = &d.quota {
            detail.push(format!("quota {q}"));
        }
        detail.extend(later_note(d.phase, phase));
        let pool = d.name.split('/').next().unwrap_or_default();
        g.nodes.push(Node {
            id: format!("dataset-{}", d.name),
            kind: NodeKind::Dataset,
            label: d.name.clone(),
            detail,
            state: state_at(d.phase, phase),
        });
        g.edges.push(Edge {
            from: format!("pool-{pool}"),
            to: format!("dataset-{}", d.name),
            kind: EdgeKind::Storage,
            label: String::new(),
            state: state_at(d.phase, phase),
        });
    }
    for s in &st.pve_storages {
        let kind = labwright_engine::canon::enum_name(&s.kind);
        let mut detail = vec![format!(
            "{kind} {}",
            s.path.as_deref().or(s.pool.as_deref()).unwrap_or_default()
        )];
        detail.push(s.content.join(", "));
        detail.extend(later_note(s.phase, phase));
        let id = format!("storage-{}", s.id);
        g.nodes.push(Node {
            id: id.clone(),
            kind: NodeKind::Storage,
            label: s.id.clone(),
            detail,
            state: state_at(s.phase, phase),
        });
        let dataset_of = |path: &str| {
            st.datasets
                .iter()
                .filter(|d| path == format!("/{}", d.name) || path == d.name)
                .map(|d| format!("dataset-{}", d.name))
                .next()
        };
        let from = match s.kind {
            PveStorageType::Dir => s.path.as_deref().and_then(dataset_of),
            PveStorageType::Zfspool => s.pool.as_deref().map(|p| {
                dataset_of(p)
                    .unwrap_or_else(|| format!("pool-{}", p.split('/').next().unwrap_or_default()))
            }),
            PveStorageType::Pbs => None,
        };
        g.edges.push(Edge {
            from: from.unwrap_or_else(|| "host".into()),
            to: id,
            kind: EdgeKind::Storage,
            label: String::new(),
            state: state_at(s.phase, phase),
        });
    }
}

/// Where a matrix row or column name is drawn.
pub fn endpoint_id(spec: &Spec, name: &str) -> Option<String> {
    match name {
        "tailscale" => Some("tailnet".into()),
        "management" => Some("management".into()),
        "node" => Some("host".into()),
        n => {
            if let Some(s) = spec.networks.segments.get(n) {
                return Some(bridge_id(&s.bridge));
            }
            spec.vm_by_name(n).map(|v| vm_id(v.vmid))
        }
    }
}

/// One line per (source, destination) the matrix lets through, labelled with its
/// ports; cells only partly open say so.
fn flows(spec: &Spec, m: &Matrix, g: &mut Graph) {
    // In matrix order: one entry per pair, found through `index`.
    let mut pairs: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    for c in &m.cells {
        if c.reach == Reach::Deny {
            continue;
        }
        let (Some(from), Some(to)) = (endpoint_id(spec, &c.from), endpoint_id(spec, &c.to)) else {
            continue;
        };
        let part = if c.reach == Reach::Partial {
            " (part)"
        } else {
            ""
        };
        let i = *index.entry((from.clone(), to.clone())).or_insert_with(|| {
            pairs.push((from, to, Vec::new()));
            pairs.len() - 1
        });
        pairs[i].2.push(format!("{}{part}", c.ports));
    }
    for (from, to, ports) in pairs {
        g.edges.push(Edge {
            from,
            to,
            kind: EdgeKind::Flow,
            label: ports.join(", "),
            state: State::Declared,
        });
    }
}
