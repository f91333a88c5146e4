//! The router kind (phase 2): VM `router.vm` gets its configuration on a seed CD
//! rendered from the spec (`labwright-router`: one rule model, the OPNsense backend,
//! `config.xml` in an ISO), fixed NIC MACs (the VM kind writes them), and a
//! readiness gate that guests only move onto the router's segments after: from a
//! probe namespace on each internal bridge (`probe`), the router's gateway address
//! must answer ARP with the MAC labwright gave that NIC. The first boot needs one
//! console step (OPNsense's importer is interactive: docs/decisions.md); the plan
//! names it and apply waits for its result. `validate` probes the segment matrix
//! from the same namespaces (`validate`).

mod op;
pub mod probe;
#[cfg(test)]
mod tests;
pub mod validate;

use std::net::{IpAddr, Ipv4Addr};

use labwright_router::{Backend, Opnsense, compile, router_nic_mac, seed};
use labwright_spec::model::{OsSource, Router, Vm};
use labwright_spec::{ElementKind, Spec};

pub use op::{ReadyLink, RouterOp};
use probe::ProbeNs;

use crate::action::{Action, ActionId, ActionKind, Change, Held, Risk, VmStep, vm_target};
use crate::canon::Effect;
use crate::op::Op;
use crate::plan::{PlanCx, PlanOut};

/// ISO storage the seed is uploaded to.
pub const SEED_STORAGE: &str = "local";
/// The runbook of the one console step.
pub const FIRST_BOOT_RUNBOOK: &str = "docs/runbooks/router-first-boot.md";

/// The router and its VM when both are part of the lab at its current phase.
pub fn active(spec: &Spec) -> Option<(&Router, &Vm)> {
    let r = spec.router.as_ref().filter(|r| r.phase <= spec.phase)?;
    let vm = spec.vm_by_name(&r.vm).filter(|v| v.phase <= spec.phase)?;
    Some((r, vm))
}

/// The fixed MAC of the router VM's NIC `slot` (`None` for other VMs): the VM kind
/// writes it, the gate and `validate` expect it.
pub fn fixed_mac(spec: &Spec, vmid: u32, slot: &str) -> Option<String> {
    let (_, vm) = active(spec)?;
    (vm.vmid == vmid).then(|| router_nic_mac(&spec.metadata.name, vmid, slot).to_string())
}

/// The seed: `config.xml` rendered from the spec and packed as an ISO.
pub fn render_seed(spec: &Spec) -> Result<seed::RouterSeed, String> {
    let rs = compile(spec, spec.phase.0).map_err(|e| e.to_string())?;
    let opn = Opnsense::for_spec(spec, &rs).map_err(|e| e.to_string())?;
    seed::seed_iso(&opn.render(&rs)).map_err(|e| e.to_string())
}

/// The router's internal links: one probe namespace per bridge, the gateway address
/// and the MAC that must answer for it.
pub fn links(spec: &Spec) -> Vec<ReadyLink> {
    let Some((router, vm)) = active(spec) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, i) in &router.interfaces {
        let Some(addr) = i.address else { continue };
        let IpAddr::V4(gw) = addr.0.addr() else {
            continue;
        };
        let Some(seg) = spec
            .networks
            .segments
            .get(&i.segment)
            .filter(|s| s.phase <= spec.phase)
        else {
            continue;
        };
        let Some(probe) = probe_address(spec, seg.cidr.0, gw) else {
            continue;
        };
        out.push(ReadyLink {
            name: name.clone(),
            nic: i.nic.clone(),
            mac: router_nic_mac(&spec.metadata.name, vm.vmid, &i.nic).to_string(),
            ns: ProbeNs {
                bridge: seg.bridge.clone(),
                address: probe,
                prefix: seg.cidr.0.prefix_len(),
                gateway: gw,
            },
        });
    }
    out
}

/// The probe namespace's address: the top of the segment's lower half (the router's
/// DHCP pool is the upper half), stepping down past the gateway and any address the
/// spec gives a guest.
fn probe_address(spec: &Spec, net: ipnet::IpNet, gw: Ipv4Addr) -> Option<Ipv4Addr> {
    let ipnet::IpNet::V4(n) = net.trunc() else {
        return None;
    };
    if n.prefix_len() > 29 {
        return None;
    }
    let base = u32::from(n.network());
    let half = 1u32 << (31 - n.prefix_len());
    let taken: Vec<Ipv4Addr> = spec
        .vms
        .iter()
        .flat_map(|v| v.nics.values())
        .filter_map(|nic| match nic.address.map(|a| a.0.addr()) {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        })
        .chain([gw])
        .collect();
    (base + 1..base + half)
        .rev()
        .map(Ipv4Addr::from)
        .find(|a| !taken.contains(a))
}

/// The second manual step: the LAN's own router must send the internal segments'
/// traffic to the router's WAN address, or no LAN device (nor the node) reaches them.
/// The WAN is leased, so the step names the MAC to pin the lease to.
fn home_router_step(spec: &Spec, router: &Router, vmid: u32) -> Option<String> {
    let wan = router.interfaces.values().find(|i| i.address.is_none())?;
    let nets: Vec<String> = router
        .interfaces
        .values()
        .filter(|i| i.address.is_some())
        .filter_map(|i| spec.networks.segments.get(&i.segment))
        .filter(|s| s.phase <= spec.phase)
        .map(|s| s.cidr.0.trunc().to_string())
        .collect();
    if nets.is_empty() {
        return None;
    }
    let lan_bridge = spec
        .networks
        .segments
        .get(&wan.segment)
        .map(|s| s.bridge.as_str());
    let gateway = lan_bridge
        .and_then(|b| spec.networks.bridges.get(b))
        .and_then(|b| b.gateway)
        .map(|g| format!(" ({g})"))
        .unwrap_or_default();
    let mac = router_nic_mac(&spec.metadata.name, vmid, &wan.nic);
    Some(format!(
        "manual step on the LAN's router{gateway}: give VM {vmid}'s WAN NIC ({}, MAC {mac}) a fixed DHCP lease and route {} via that address — without it no LAN device reaches the router's segments (docs/runbooks/router-first-boot.md)",
        wan.nic,
        nets.join(" and ")
    ))
}

/// VMs whose NICs move onto another bridge at this phase (`reattach`), by VMID.
pub fn reattaching(spec: &Spec) -> Vec<u32> {
    spec.vms
        .iter()
        .filter(|v| v.phase <= spec.phase)
        .filter(|v| {
            v.nics
                .values()
                .any(|n| n.reattach.as_ref().is_some_and(|r| r.phase <= spec.phase))
        })
        .map(|v| v.vmid)
        .collect()
}

pub(crate) fn plan(cx: &PlanCx<'_>, out: &mut PlanOut) {
    let spec = cx.spec;
    let of_kinds = |kinds: &[ElementKind]| -> Vec<String> {
        cx.elements
            .iter()
            .filter(|e| e.phase <= spec.phase && kinds.contains(&e.kind))
            .map(|e| e.path.to_string())
            .collect()
    };
    // A reattachment is the VM kind's bridge change (`Nic::bridge_in`), gated below.
    for p in of_kinds(&[ElementKind::Reattach]) {
        out.own(p);
    }
    let Some((router, vm)) = active(spec) else {
        return;
    };
    let router_path = cx
        .elements
        .iter()
        .find(|e| e.kind == ElementKind::Router)
        .map(|e| e.path.to_string());
    let vmid = vm.vmid;
    let target = vm_target(vmid, &vm.name);
    let create = ActionId::vm(vmid, VmStep::Create);
    let creating = out.actions.iter().any(|a| a.id == create);
    let is_nano = matches!(vm.os, Some(OsSource::OpnsenseImage(_)));

    let seed = if is_nano {
        match render_seed(spec) {
            Ok(s) => {
                // The router, its links and the matrix it enforces are labwright's.
                for p in of_kinds(&[
                    ElementKind::Router,
                    ElementKind::RouterInterface,
                    ElementKind::Matrix,
                    ElementKind::MatrixFlow,
                ]) {
                    out.own(p);
                }
                Some(s)
            }
            Err(why) => {
                let mut h = Held::new(
                    target.clone(),
                    format!("the router's configuration cannot be rendered: {why}"),
                    "fix `router:` (or the matrix) as the message says; `labwright firewall matrix --phase 2` shows the compiled cells",
                );
                h.elements.extend(router_path.clone());
                out.held.push(h);
                return;
            }
        }
    } else {
        if creating {
            out.notes.push(format!(
                "VM {vmid} ({}) boots {}: labwright cannot give it its configuration; install and configure it by hand, or use `os: {{ opnsenseImage: … }}` (docs/decisions.md, \"OPNsense router\")",
                vm.name,
                match &vm.os {
                    Some(OsSource::Iso(i)) => format!("the installer {}", i.volume),
                    _ => "no OPNsense image".into(),
                }
            ));
        }
        None
    };

    let mut seed_id = None;
    if let (Some(seed), true) = (&seed, creating) {
        let file = seed.file_name(vmid);
        let volid = format!("{SEED_STORAGE}:iso/{file}");
        let id = ActionId::Router {
            key: format!("{vmid}-seed"),
        };
        let mut a = Action::new(
            id.clone(),
            ActionKind::RouterSeed,
            target.clone(),
            Op::Router(RouterOp::UploadSeed {
                node: cx.want.node.clone(),
                vmid,
                storage: SEED_STORAGE.into(),
                file: file.clone(),
                config_sha256: seed.config_sha256.clone(),
            }),
        );
        a.risk = Risk::Low;
        a.reason = format!(
            "the router's config.xml rendered from `router:` and the matrix ({} links), on a seed CD its importer reads at first boot",
            router.interfaces.len()
        );
        a.rollback_hint = format!("delete the seed: `pvesm free {volid}` (it holds no secret)");
        a.expected_downtime = "none".into();
        a.changes = vec![
            Change {
                field: "seed".into(),
                before: None,
                after: Some(volid.clone()),
                effect: Effect::Hotplug,
            },
            Change {
                field: "config.xml sha256".into(),
                before: None,
                after: Some(seed.config_sha256.clone()),
                effect: Effect::Hotplug,
            },
        ];
        a.elements.extend(router_path.clone());
        if let Some(c) = out.actions.iter_mut().find(|a| a.id == create) {
            if let Op::Vm(crate::vm::VmOp::CreateVm { params, .. }) = &mut c.op {
                params.retain(|(k, _)| k != crate::bootstrap::SEED_SLOT);
                params.push((
                    crate::bootstrap::SEED_SLOT.to_string(),
                    format!("{volid},media=cdrom"),
                ));
                params.sort();
                c.changes = params
                    .iter()
                    .map(|(k, v)| Change {
                        field: k.clone(),
                        before: None,
                        after: Some(v.clone()),
                        effect: Effect::Hotplug,
                    })
                    .collect();
            }
            c.depends_on.push(id.clone());
        }
        let pos = out
            .actions
            .iter()
            .position(|a| a.id == create)
            .unwrap_or(out.actions.len());
        out.actions.insert(pos, a);
        out.notes.push(format!(
            "manual step at VM {vmid}'s first boot: on its console, press a key at \"Press any key to start the configuration importer\" and type `cd0` — OPNsense reads its seed only when told to; apply waits for the result in router-{vmid}-ready ({FIRST_BOOT_RUNBOOK})"
        ));
        if let Some(step) = home_router_step(spec, router, vmid) {
            out.notes.push(step);
        }
        seed_id = Some(id);
    } else if let (Some(seed), Some(obs)) = (&seed, cx.observed.vms.get(&vmid)) {
        let file = seed.file_name(vmid);
        let attached = obs
            .config
            .as_ref()
            .and_then(|c| c.get(crate::bootstrap::SEED_SLOT))
            .is_some_and(|v| v.contains(&file));
        if !attached {
            out.notes.push(format!(
                "VM {vmid}'s configuration from the spec renders to a new seed ({file}); the router read its seed at first boot and takes later changes only through its API, which labwright does not drive yet: apply the changed rules in the OPNsense UI (docs/runbooks/revert-segmentation.md); `labwright validate` probes the matrix either way"
            ));
        }
    }

    // The gate: before guests move onto the router's segments, and after a new router
    // starts.
    let movers: Vec<ActionId> = reattaching(spec)
        .into_iter()
        .map(|v| ActionId::vm(v, VmStep::Update))
        .filter(|id| out.actions.iter().any(|a| &a.id == id))
        .collect();
    let links = links(spec);
    if links.is_empty() || (!creating && movers.is_empty()) {
        return;
    }
    let id = ActionId::Router {
        key: format!("{vmid}-ready"),
    };
    let start = ActionId::vm(vmid, VmStep::Start);
    let mut a = Action::new(
        id.clone(),
        ActionKind::RouterReady,
        target,
        Op::Router(RouterOp::WaitReady {
            node: cx.want.node.clone(),
            vmid,
            links: links.clone(),
        }),
    );
    a.risk = Risk::Low;
    a.expected_downtime = "none".into();
    a.rollback_hint = "nothing to undo: the probe namespaces are removed after each look".into();
    a.reason = format!(
        "guests move onto the router's segments only once it answers there: {}",
        links
            .iter()
            .map(|l| format!("{} on {} from {}", l.ns.gateway, l.ns.bridge, l.mac))
            .collect::<Vec<_>>()
            .join(", ")
    );
    a.changes = links
        .iter()
        .map(|l| Change {
            field: format!("{} ({})", l.name, l.ns.bridge),
            before: None,
            after: Some(format!("{} answers from {}", l.ns.gateway, l.mac)),
            effect: Effect::Hotplug,
        })
        .collect();
    a.depends_on.extend(seed_id);
    if out.actions.iter().any(|x| x.id == start) {
        a.depends_on.push(start);
    } else if creating {
        a.depends_on.push(create);
    }
    a.elements.extend(router_path);
    for m in &movers {
        if let Some(x) = out.actions.iter_mut().find(|x| &x.id == m) {
            x.depends_on.push(id.clone());
        }
    }
    out.actions.push(a);
}
