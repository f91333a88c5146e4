//! The host network's consequences: segments are in place when their bridge is (or
//! is created by the bridge wave, `crate::bridge`), and every action that needs a
//! bridge or a storage the node lacks is held — `apply` never starts what it knows
//! will fail — unless the bridge wave creates it, in which case it waits for the wave.

use std::collections::{BTreeMap, BTreeSet};

use labwright_spec::model::Phase;

use crate::action::{ActionId, Held, vm_target};
use crate::plan::{PlanCx, PlanOut};

pub(crate) fn plan(cx: &PlanCx<'_>, out: &mut PlanOut) {
    let spec = cx.spec;
    let now = spec.phase;
    let Some(net) = &cx.observed.network else {
        // Not read (a hand-built scan): nothing to compare, nothing held.
        for e in cx.elements {
            if matches!(
                e.kind,
                labwright_spec::ElementKind::Bridge | labwright_spec::ElementKind::Segment
            ) {
                out.own(&e.path);
            }
        }
        return;
    };
    // Bridges the wave brings up (when it is planned, not held).
    let wave: BTreeSet<String> = out
        .actions
        .iter()
        .filter(|a| a.id == crate::bridge::wave_id())
        .filter_map(|a| match &a.op {
            crate::op::Op::Bridge(o) => Some(
                o.create
                    .iter()
                    .map(|d| d.name.clone())
                    .chain(o.update.iter().map(|u| u.want.name.clone()))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    let up: BTreeSet<String> = net.bridges.keys().filter(|b| net.has(b)).cloned().collect();
    for (name, s) in &spec.networks.segments {
        if s.phase > now {
            continue;
        }
        let path = labwright_spec::YamlPath::root()
            .key("networks")
            .key("segments")
            .key(name.clone());
        if up.contains(&s.bridge) || wave.contains(&s.bridge) {
            out.own(&path);
        } else {
            let mut h = Held::new(
                format!("segment `{name}`"),
                format!("its bridge `{}` is not on the node", s.bridge),
                format!("create bridge `{}` first (see the held bridge)", s.bridge),
            );
            h.elements.push(path.to_string());
            out.held.push(h);
        }
    }
    hold_unrunnable(cx, out, &up, &wave, now);
}

/// Holds every action of a VM that needs a bridge or a storage the node does not have,
/// and whatever depends on those actions.
fn hold_unrunnable(
    cx: &PlanCx<'_>,
    out: &mut PlanOut,
    bridges: &BTreeSet<String>,
    wave: &BTreeSet<String>,
    now: Phase,
) {
    let storages: BTreeSet<&str> = cx.observed.storage_ids().into_iter().collect();
    let mut why: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut waits: BTreeSet<u32> = BTreeSet::new();
    for vm in &cx.spec.vms {
        if vm.phase > now || !cx.want.vms.contains_key(&vm.vmid) {
            continue;
        }
        for (slot, nic) in &vm.nics {
            let b = nic.bridge_in(now);
            if wave.contains(b) && !bridges.contains(b) {
                waits.insert(vm.vmid);
            } else if !bridges.contains(b) {
                why.entry(vm.vmid).or_default().push(format!(
                    "{slot} is on bridge `{b}`, which the node does not have"
                ));
            }
        }
        // A virtiofs share whose mapping (and dataset) is not there and not planned.
        let have_cfg = cx
            .observed
            .vms
            .get(&vm.vmid)
            .and_then(|o| o.config.as_ref());
        for (k, v) in crate::storage::migrate::virtiofs_for(cx.spec, vm.vmid) {
            if have_cfg.and_then(|c| c.get(&k)) == Some(&v) {
                continue;
            }
            let tag = v.split(',').next().unwrap_or_default().to_string();
            let mapped = cx
                .observed
                .storage
                .as_ref()
                .is_some_and(|s| s.mappings.contains_key(&tag));
            let planned = out
                .actions
                .iter()
                .any(|a| a.id == ActionId::storage(format!("mapping-{tag}")));
            if !mapped && !planned {
                why.entry(vm.vmid).or_default().push(format!(
                    "{k} shares `{tag}`, whose dataset and mapping are not ready"
                ));
            }
        }
        if !storages.is_empty()
            && let Some(d) = cx.want.vms.get(&vm.vmid)
        {
            let mut needed: BTreeSet<&str> = d.disks.values().map(|x| x.storage.as_str()).collect();
            needed.insert(d.storage.as_str());
            for s in needed {
                if !storages.contains(s) && !cx.observed.vms.contains_key(&vm.vmid) {
                    why.entry(vm.vmid).or_default().push(format!(
                        "its disks go to storage `{s}`, which the node does not have"
                    ));
                }
            }
        }
    }
    // A VM on a bridge the wave brings up waits for the wave.
    let wave_id = crate::bridge::wave_id();
    for a in &mut out.actions {
        let vmid = a.id.vmid().or_else(|| a.op.vm().map(|(_, v)| v));
        if vmid.is_some_and(|v| waits.contains(&v)) && !a.depends_on.contains(&wave_id) {
            a.depends_on.push(wave_id.clone());
        }
    }
    if why.is_empty() {
        return;
    }
    let mut removed: BTreeSet<ActionId> = BTreeSet::new();
    out.actions.retain(|a| {
        let gone = a.id.vmid().is_some_and(|v| why.contains_key(&v))
            || a.op.vm().is_some_and(|(_, v)| why.contains_key(&v));
        if gone {
            removed.insert(a.id.clone());
        }
        !gone
    });
    // Whatever waits for a held action waits with it, and says so.
    let mut waiting = Vec::new();
    loop {
        let before = removed.len();
        out.actions.retain(|a| {
            let on: Vec<String> = a
                .depends_on
                .iter()
                .filter(|d| removed.contains(*d))
                .map(ToString::to_string)
                .collect();
            if on.is_empty() {
                return true;
            }
            removed.insert(a.id.clone());
            let mut h = Held::new(
                a.target.clone(),
                format!("{} waits for {}, which is held", a.id, on.join(", ")),
                "it is planned once what it waits for can run",
            );
            h.elements = a.elements.clone();
            waiting.push(h);
            false
        });
        if removed.len() == before {
            break;
        }
    }
    // Downloads nobody needs any more.
    let needed: BTreeSet<ActionId> = out
        .actions
        .iter()
        .flat_map(|a| a.depends_on.iter().cloned())
        .collect();
    out.actions
        .retain(|a| !matches!(a.id, ActionId::Image { .. }) || needed.contains(&a.id));
    for (i, vm) in cx.spec.vms.iter().enumerate() {
        let Some(reasons) = why.get(&vm.vmid) else {
            continue;
        };
        let mut h = Held::new(
            vm_target(vm.vmid, &vm.name),
            format!("{}: its actions would fail", reasons.join("; ")),
            "create what it needs on the node first (see the held bridge or storage), then plan again",
        );
        h.elements.push(
            labwright_spec::YamlPath::root()
                .key("vms")
                .index(i)
                .to_string(),
        );
        out.held.push(h);
    }
    out.held.extend(waiting);
}
