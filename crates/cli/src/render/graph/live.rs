//! `graph --live`: the picture of what the scan sees, each element marked against
//! the spec at its phase (as declared, missing, not declared, differs). Subnet routes
//! and flows live inside guests and the firewall, which a scan does not read: the
//! live picture leaves them out and says so.

use std::collections::{BTreeMap, BTreeSet};

use labwright_engine::Observed;
use labwright_engine::storage::HostSide;
use labwright_spec::Spec;
use labwright_spec::model::Phase;

use super::spec::{bridge_id, vm_id};
use super::{Edge, EdgeKind, Graph, Node, NodeKind, State};

/// The bridge a NIC's config value names (`virtio=…,bridge=vmbr0,firewall=1`).
fn nic_bridge(key: &str, value: &str) -> Option<String> {
    let format = labwright_pve::propstring::format_for_config_key(key)?;
    let p = labwright_pve::PropertyString::parse(value, format).ok()?;
    p.get("bridge").map(str::to_string)
}

fn mark(declared: bool, seen: bool) -> State {
    match (declared, seen) {
        (true, true) => State::Seen,
        (true, false) => State::Missing,
        _ => State::Undeclared,
    }
}

pub fn from_observed(spec: &Spec, obs: &Observed) -> Graph {
    let phase = spec.phase;
    let mut g = Graph {
        lab: spec.metadata.name.clone(),
        phase: phase.0,
        source: "live",
        nodes: Vec::new(),
        edges: Vec::new(),
        notes: vec![
            "subnet routes and flows are not read by a scan: `labwright graph SPEC` draws them as declared".into(),
        ],
    };
    g.nodes.push(Node {
        id: "host".into(),
        kind: NodeKind::Host,
        label: obs.node.clone(),
        detail: obs
            .pve_version
            .iter()
            .map(|v| format!("Proxmox VE {v}"))
            .collect(),
        state: if obs.node == spec.node_name() {
            State::Seen
        } else {
            State::Differs
        },
    });
    bridges(spec, phase, obs, &mut g);
    vms(spec, phase, obs, &mut g);
    storage(spec, phase, obs, &mut g);
    g
}

fn bridges(spec: &Spec, phase: Phase, obs: &Observed, g: &mut Graph) {
    let mut want: BTreeSet<&str> = spec
        .networks
        .bridges
        .iter()
        .filter(|(_, b)| b.phase <= phase)
        .map(|(n, _)| n.as_str())
        .collect();
    want.extend(
        spec.networks
            .segments
            .values()
            .filter(|s| s.phase <= phase)
            .map(|s| s.bridge.as_str()),
    );
    let seen: Option<BTreeSet<String>> = obs
        .network
        .as_ref()
        .map(|n| n.bridges.keys().cloned().collect());
    let Some(seen) = &seen else {
        g.notes
            .push("the scan did not read the node's network: bridges are not drawn".into());
        return;
    };
    let all: BTreeSet<&str> = want
        .iter()
        .copied()
        .chain(seen.iter().map(String::as_str))
        .collect();
    for b in all {
        let state = mark(want.contains(b), seen.contains(b));
        let detail = spec
            .networks
            .segments
            .iter()
            .filter(|(_, s)| s.bridge == b && s.phase <= phase)
            .map(|(n, s)| format!("{n} {}", s.cidr))
            .collect();
        g.nodes.push(Node {
            id: bridge_id(b),
            kind: NodeKind::Bridge,
            label: b.to_string(),
            detail,
            state,
        });
        g.edges.push(Edge {
            from: "host".into(),
            to: bridge_id(b),
            kind: EdgeKind::Uplink,
            label: String::new(),
            state,
        });
    }
}

fn vms(spec: &Spec, phase: Phase, obs: &Observed, g: &mut Graph) {
    let router = spec.router.as_ref().map(|r| r.vm.as_str());
    let declared: BTreeMap<u32, &labwright_spec::model::Vm> = spec
        .vms
        .iter()
        .filter(|v| v.phase <= phase)
        .map(|v| (v.vmid, v))
        .collect();
    let ids: BTreeSet<u32> = declared
        .keys()
        .copied()
        .chain(obs.vms.keys().copied())
        .collect();
    for vmid in ids {
        let want = declared.get(&vmid);
        let seen = obs.vms.get(&vmid);
        let mut state = mark(want.is_some(), seen.is_some());
        let name = seen
            .map(|v| v.name.clone())
            .or_else(|| want.map(|v| v.name.clone()))
            .unwrap_or_default();
        let mut detail = Vec::new();
        if let (Some(w), Some(s)) = (want, seen)
            && w.name != s.name
        {
            state = State::Differs;
            detail.push(format!("spec names it {}", w.name));
        }
        if let Some(s) = seen {
            detail.push(s.status.clone());
        }
        // NICs: the scan's where it has the config, the spec's for a missing guest.
        let mut nics: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
        if let Some(cfg) = seen.and_then(|s| s.config.as_ref()) {
            for (k, v) in cfg.iter().filter(|(k, _)| is_nic_key(k)) {
                nics.entry(k.clone()).or_default().1 = nic_bridge(k, v);
            }
        }
        if let Some(w) = want {
            for (slot, nic) in &w.nics {
                nics.entry(slot.clone()).or_default().0 = Some(nic.bridge_in(phase).to_string());
            }
        }
        let has_config = seen.is_some_and(|s| s.config.is_some());
        for (slot, (want_b, seen_b)) in nics {
            let (bridge, est, label) = match (&want_b, &seen_b) {
                (Some(w), Some(s)) if w == s => (s.clone(), State::Seen, slot.clone()),
                (Some(w), Some(s)) => (s.clone(), State::Differs, format!("{slot}: spec {w}")),
                (Some(w), None) if seen.is_none() || has_config => {
                    (w.clone(), State::Missing, slot.clone())
                }
                (Some(_), None) => continue,
                (None, Some(s)) => (
                    s.clone(),
                    if want.is_some() {
                        State::Undeclared
                    } else {
                        state
                    },
                    slot.clone(),
                ),
                (None, None) => continue,
            };
            if est == State::Differs && state == State::Seen {
                state = State::Differs;
            }
            g.edges.push(Edge {
                from: bridge_id(&bridge),
                to: vm_id(vmid),
                kind: EdgeKind::Nic,
                label,
                state: est,
            });
        }
        g.nodes.push(Node {
            id: vm_id(vmid),
            kind: if router == Some(name.as_str()) && want.is_some() {
                NodeKind::Router
            } else {
                NodeKind::Vm
            },
            label: format!("{vmid} {name}"),
            detail,
            state,
        });
    }
}

fn is_nic_key(k: &str) -> bool {
    k.strip_prefix("net")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

fn storage(spec: &Spec, phase: Phase, obs: &Observed, g: &mut Graph) {
    let st = spec.storage.as_ref();
    let side = obs.storage.as_ref();
    // Pools.
    let want_pools: BTreeSet<&str> = st
        .iter()
        .flat_map(|s| s.zfs_pools.iter())
        .filter(|p| p.phase <= phase)
        .map(|p| p.name.as_str())
        .collect();
    let seen_pools: BTreeSet<&str> = side
        .iter()
        .flat_map(|s| s.pools.iter())
        .map(|p| p.name.as_str())
        .collect();
    for p in want_pools.union(&seen_pools) {
        let state = mark(want_pools.contains(p), seen_pools.contains(p));
        let health = side
            .and_then(|s| s.pools.iter().find(|x| x.name == *p))
            .and_then(|x| x.health.clone());
        g.nodes.push(Node {
            id: format!("pool-{p}"),
            kind: NodeKind::Pool,
            label: p.to_string(),
            detail: health.into_iter().collect(),
            state,
        });
        g.edges.push(Edge {
            from: "host".into(),
            to: format!("pool-{p}"),
            kind: EdgeKind::Storage,
            label: "zpool".into(),
            state,
        });
    }
    // Datasets: only when the scan read them over SSH.
    let want_ds: BTreeSet<&str> = st
        .iter()
        .flat_map(|s| s.datasets.iter())
        .filter(|d| d.phase <= phase)
        .map(|d| d.name.as_str())
        .collect();
    match side.map(|s| &s.host) {
        Some(HostSide::Read(h)) => {
            let seen: BTreeSet<&str> = h.datasets.keys().map(String::as_str).collect();
            for d in want_ds.union(&seen) {
                let state = mark(want_ds.contains(d), seen.contains(d));
                g.nodes.push(Node {
                    id: format!("dataset-{d}"),
                    kind: NodeKind::Dataset,
                    label: d.to_string(),
                    detail: h
                        .datasets
                        .get(*d)
                        .map(|x| x.mountpoint.clone())
                        .into_iter()
                        .collect(),
                    state,
                });
                g.edges.push(Edge {
                    from: format!("pool-{}", d.split('/').next().unwrap_or_default()),
                    to: format!("dataset-{d}"),
                    kind: EdgeKind::Storage,
                    label: String::new(),
                    state,
                });
            }
        }
        Some(HostSide::Unavailable { why }) if !want_ds.is_empty() => {
            g.notes.push(format!("datasets not read: {why}"));
        }
        _ => {}
    }
    // Storage entries: declared, plus those the spec names (vmStorage, isoStorage,
    // backup targets), which count as declared.
    let mut want_st: BTreeSet<&str> = st
        .iter()
        .flat_map(|s| s.pve_storages.iter())
        .filter(|s| s.phase <= phase)
        .map(|s| s.id.as_str())
        .collect();
    want_st.extend(spec.node.vm_storage.as_deref());
    want_st.extend(spec.node.iso_storage.as_deref());
    want_st.extend(
        spec.backup_jobs()
            .filter(|j| j.phase <= phase)
            .map(|j| j.storage.as_str()),
    );
    let seen_st: BTreeMap<&str, &labwright_engine::observed::ObservedStorage> = obs
        .storages
        .iter()
        .filter(|s| s.node == obs.node)
        .map(|s| (s.id.as_str(), s))
        .collect();
    let all: BTreeSet<&str> = want_st
        .iter()
        .copied()
        .chain(seen_st.keys().copied())
        .collect();
    for id in all {
        let state = mark(want_st.contains(id), seen_st.contains_key(id));
        let detail = seen_st
            .get(id)
            .map(|s| {
                [s.plugin.clone(), s.content.clone()]
                    .into_iter()
                    .flatten()
                    .collect()
            })
            .unwrap_or_default();
        let from = st
            .and_then(|s| s.pve_storages.iter().find(|x| x.id == id))
            .and_then(|x| {
                let target = x.pool.as_deref().or(x.path.as_deref())?;
                let t = target.trim_start_matches('/');
                if g.node(&format!("dataset-{t}")).is_some() {
                    Some(format!("dataset-{t}"))
                } else {
                    Some(format!("pool-{}", t.split('/').next()?))
                }
            })
            .filter(|f| g.node(f).is_some())
            .unwrap_or_else(|| "host".into());
        g.nodes.push(Node {
            id: format!("storage-{id}"),
            kind: NodeKind::Storage,
            label: id.to_string(),
            detail,
            state,
        });
        g.edges.push(Edge {
            from,
            to: format!("storage-{id}"),
            kind: EdgeKind::Storage,
            label: String::new(),
            state,
        });
    }
}
