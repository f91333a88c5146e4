//! The diff of a VM: create, update (with a reboot when a key needs one, after a
//! verified pre-change snapshot), disk grows, power state, and the destroy of a
//! managed guest the spec no longer declares.

use std::collections::BTreeMap;

use labwright_pve::vmconfig::Drive;
use labwright_spec::model::PowerState;

use super::VmOp;
use crate::action::{Action, ActionId, ActionKind, Change, Held, Risk, VmStep, vm_target};
use crate::canon::{Effect, REBOOT_SECONDS, b01, classify, observed_value};
use crate::desired::{Desired, DesiredVm};
use crate::observed::ObservedVm;
use crate::op::Op;
use crate::plan::{PlanCx, PlanOut};

/// Allocation string of a new disk: `storage:GiB,opts…`.
fn disk_create_value(d: &crate::desired::DesiredDisk) -> String {
    let gib = d.size_bytes.div_ceil(1024 * 1024 * 1024).max(1);
    let mut s = format!("{}:{gib}", d.storage);
    for (k, v) in &d.options {
        s.push_str(&format!(",{k}={v}"));
    }
    s
}

fn size_string(bytes: u64) -> String {
    labwright_spec::types::Size(bytes).to_string()
}

/// Options of an observed drive, canonical (PVE defaults filled in).
fn drive_options(d: &Drive) -> BTreeMap<String, String> {
    let mut o = BTreeMap::new();
    o.insert(
        "cache".into(),
        d.cache.clone().unwrap_or_else(|| "none".into()),
    );
    o.insert(
        "discard".into(),
        d.discard.clone().unwrap_or_else(|| "ignore".into()),
    );
    o.insert("iothread".into(), b01(d.iothread.unwrap_or(false)));
    o.insert("ssd".into(), b01(d.ssd.unwrap_or(false)));
    o.insert("backup".into(), b01(d.backup.unwrap_or(true)));
    o
}

fn storage_of(file: &str) -> &str {
    file.split(':').next().unwrap_or_default()
}

/// A guest labwright created (it carries the ownership tag) that the spec no longer
/// declares. Destroying it needs `allowDestroy` in the spec and `--allow-destroy`.
fn plan_destroy(cx: &PlanCx<'_>, out: &mut PlanOut, vm: &ObservedVm) {
    let target = vm_target(vm.vmid, &vm.name);
    if !cx.spec.safety_guards.allow_destroy {
        out.held.push(Held {
            elements: cx.vm_elements(vm.vmid),
            target,
            reason: "managed by labwright (lw-managed tag) but no longer in the spec: destroying it would delete its disks".into(),
            unblock: "set `safetyGuards.allowDestroy: true` and pass `--allow-destroy` to apply, or remove the lw-managed tag to keep it".into(),
        });
        return;
    }
    if vm.protection_on() {
        out.held.push(Held {
            elements: cx.vm_elements(vm.vmid),
            target,
            reason: "the VM has PVE protection on".into(),
            unblock: "turn protection off on the node first".into(),
        });
        return;
    }
    out.actions.push(Action {
        id: ActionId::vm(vm.vmid, VmStep::Destroy),
        kind: ActionKind::VmDestroy,
        target,
        risk: Risk::Critical,
        phase: 0,
        pre_snapshot: None,
        rollback_hint: format!(
            "none from labwright: restore VM {} from its last vzdump backup (`qmrestore`)",
            vm.vmid
        ),
        expected_downtime: "permanent (the guest is deleted)".into(),
        downtime_seconds: 0,
        reason: "carries the lw-managed tag, absent from the spec, and allowDestroy is set".into(),
        changes: vec![Change {
            field: "vm".into(),
            before: Some(vm.name.clone()),
            after: None,
            effect: Effect::DataDestructive,
        }],
        depends_on: Vec::new(),
        api_calls: Vec::new(),
        elements: cx.vm_elements(vm.vmid),
        storage_lock: None,
        op: Op::Vm(VmOp::DestroyVm {
            node: vm.node.clone(),
            vmid: vm.vmid,
        }),
    });
}

fn plan_create(cx: &PlanCx<'_>, out: &mut PlanOut, want: &Desired, vm: &DesiredVm) {
    let mut params: Vec<(String, String)> = vm
        .config
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (slot, d) in &vm.disks {
        params.push((slot.clone(), disk_create_value(d)));
    }
    if vm.config.get("bios").is_some_and(|b| b == "ovmf") {
        params.push((
            "efidisk0".into(),
            format!("{}:1,efitype=4m,pre-enrolled-keys=0", vm.storage),
        ));
    }
    params.sort();
    let changes = params.iter().map(|(k, v)| Change::added(k, v)).collect();
    let id = ActionId::vm(vm.vmid, VmStep::Create);
    out.actions.push(Action {
        id: id.clone(),
        kind: ActionKind::VmCreate,
        target: vm_target(vm.vmid, &vm.name),
        risk: Risk::Low,
        phase: cx
            .spec
            .vms
            .iter()
            .find(|v| v.vmid == vm.vmid)
            .map_or(0, |v| v.phase.0),
        pre_snapshot: None,
        rollback_hint: format!(
            "destroy the new VM: `qm destroy {} --purge` (it holds no data yet)",
            vm.vmid
        ),
        expected_downtime: "none (new guest)".into(),
        downtime_seconds: 0,
        reason: "declared in the spec, absent on the node".into(),
        changes,
        depends_on: Vec::new(),
        api_calls: Vec::new(),
        elements: cx.vm_elements(vm.vmid),
        storage_lock: Some(vm.storage.clone()),
        op: Op::Vm(VmOp::CreateVm {
            node: want.node.clone(),
            vmid: vm.vmid,
            params,
        }),
    });
    if vm.power == PowerState::Running {
        out.actions.push(Action {
            id: ActionId::vm(vm.vmid, VmStep::Start),
            kind: ActionKind::VmStart,
            target: vm_target(vm.vmid, &vm.name),
            risk: Risk::Low,
            phase: 0,
            pre_snapshot: None,
            rollback_hint: format!("stop it again: `qm shutdown {}`", vm.vmid),
            expected_downtime: "none".into(),
            downtime_seconds: 0,
            reason: "desired power state is running".into(),
            changes: vec![Change {
                field: "status".into(),
                before: None,
                after: Some("running".into()),
                effect: Effect::Hotplug,
            }],
            depends_on: vec![id],
            api_calls: Vec::new(),
            elements: cx.vm_elements(vm.vmid),
            storage_lock: None,
            op: Op::Vm(VmOp::StartVm {
                node: want.node.clone(),
                vmid: vm.vmid,
            }),
        });
    }
}

fn plan_update(
    cx: &PlanCx<'_>,
    out: &mut PlanOut,
    want: &Desired,
    vm: &DesiredVm,
    obs: &ObservedVm,
) {
    let target = vm_target(vm.vmid, &vm.name);
    if obs.node != want.node {
        out.notes.push(format!(
            "VM {} runs on node `{}`, not `{}`; it is compared there (an HA move is not drift)",
            vm.vmid, obs.node, want.node
        ));
    }
    if let Some(lock) = &obs.lock {
        out.held.push(Held {
            elements: cx.vm_elements(vm.vmid),
            target: target.clone(),
            reason: format!("the VM is locked ({lock}) by a running or interrupted task"),
            unblock:
                "wait for the task to finish (or `qm unlock` after checking it), then plan again"
                    .into(),
        });
        return;
    }
    let Some(config) = &obs.config else {
        out.notes
            .push(format!("VM {}: config not read; skipped", vm.vmid));
        return;
    };
    if !obs.is_managed() && !obs.tags.is_empty() {
        out.notes.push(format!(
            "VM {} exists without the lw-managed tag; labwright adopts it because the spec declares VMID {}",
            vm.vmid, vm.vmid
        ));
    }
    let running = obs.status == "running";
    let node = obs.node.clone();

    let mut changes = Vec::new();
    let mut set = Vec::new();
    let mut moves = Vec::new();
    for (k, want_v) in &vm.config {
        let have = observed_value(k, config.get(k).map(String::as_str), want_v);
        if &have != want_v {
            // A reattachment needs a fresh DHCP lease on the new segment: a hot-plugged
            // bridge change leaves the guest with its old address, so it reboots.
            let moved = reattach_move(cx.spec, vm.vmid, k, config.get(k), want_v);
            if let Some(b) = &moved {
                moves.push(format!("{k} → {b}"));
            }
            changes.push(Change {
                field: k.clone(),
                before: config
                    .get(k)
                    .cloned()
                    .or_else(|| crate::canon::pve_default(k).map(str::to_string)),
                after: Some(want_v.clone()),
                effect: if moved.is_some() {
                    Effect::NeedsReboot
                } else {
                    classify(k)
                },
            });
            set.push((k.clone(), want_v.clone()));
        }
    }
    // Disks: slot by slot.
    let mut resizes = Vec::new();
    for (slot, d) in &vm.disks {
        match config.get(slot).map(|v| Drive::parse(v)) {
            None => {
                changes.push(Change {
                    field: slot.clone(),
                    before: None,
                    after: Some(disk_create_value(d)),
                    effect: Effect::Hotplug,
                });
                set.push((slot.clone(), disk_create_value(d)));
            }
            Some(Err(e)) => out.notes.push(format!(
                "VM {} {slot}: cannot read the drive ({e})",
                vm.vmid
            )),
            Some(Ok(drive)) => {
                let have_size = drive
                    .size
                    .as_deref()
                    .and_then(|s| s.parse::<labwright_spec::types::Size>().ok())
                    .map_or(0, |s| s.bytes());
                if storage_of(&drive.file) != d.storage {
                    out.held.push(Held {
            elements: cx.vm_elements(vm.vmid),
                        target: target.clone(),
                        reason: format!(
                            "{slot} is on `{}`, the spec says `{}`: moving a disk is data-destructive if interrupted",
                            storage_of(&drive.file),
                            d.storage
                        ),
                        unblock: "move it by hand (`qm disk move`) or change the spec".into(),
                    });
                }
                if d.size_bytes > have_size {
                    resizes.push((slot.clone(), have_size, d.size_bytes));
                } else if d.size_bytes < have_size {
                    out.held.push(Held {
            elements: cx.vm_elements(vm.vmid),
                        target: target.clone(),
                        reason: format!(
                            "{slot} is {} on the node, the spec says {}: disks never shrink (data-destructive)",
                            size_string(have_size),
                            size_string(d.size_bytes)
                        ),
                        unblock: "raise the size in the spec to the current size".into(),
                    });
                }
                let have_opts = drive_options(&drive);
                if have_opts != d.options {
                    let mut nd = drive.clone();
                    for (k, v) in &d.options {
                        match k.as_str() {
                            "cache" => nd.cache = Some(v.clone()),
                            "discard" => nd.discard = Some(v.clone()),
                            "iothread" => nd.iothread = Some(v == "1"),
                            "ssd" => nd.ssd = Some(v == "1"),
                            "backup" => nd.backup = Some(v == "1"),
                            _ => {}
                        }
                    }
                    let new = nd
                        .to_property_string()
                        .map(|p| p.to_canonical_string())
                        .unwrap_or_default();
                    let fmt = |o: &BTreeMap<String, String>| {
                        o.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    changes.push(Change {
                        field: format!("{slot} options"),
                        before: Some(fmt(&have_opts)),
                        after: Some(fmt(&d.options)),
                        effect: Effect::NeedsReboot,
                    });
                    set.push((slot.clone(), new));
                }
            }
        }
    }

    let mut last: Option<ActionId> = None;
    if !set.is_empty() {
        let needs_reboot = changes.iter().any(|c| c.effect == Effect::NeedsReboot);
        let down = needs_reboot && running;
        let id = ActionId::vm(vm.vmid, VmStep::Update);
        let snap = down.then(|| format!("lw-{}", cx.plan_tag));
        out.actions.push(Action {
            id: id.clone(),
            kind: ActionKind::VmUpdate,
            target: target.clone(),
            risk: if down { Risk::Medium } else { Risk::Low },
            phase: 0,
            pre_snapshot: snap.clone(),
            rollback_hint: match &snap {
                Some(s) => format!(
                    "roll back to the pre-change snapshot: `qm rollback {} {s}`",
                    vm.vmid
                ),
                None => format!(
                    "set the previous values again (see changes) with `qm set {}`",
                    vm.vmid
                ),
            },
            expected_downtime: if down {
                format!(
                    "~{REBOOT_SECONDS}s (reboot to apply {})",
                    reboot_fields(&changes)
                )
            } else if needs_reboot {
                "none (VM stopped; applies at next start)".into()
            } else {
                "none (hotplug)".into()
            },
            downtime_seconds: if down { REBOOT_SECONDS } else { 0 },
            reason: if moves.is_empty() {
                "the node differs from the spec".into()
            } else {
                format!(
                    "reattach {} (phase {}): the guest reboots to lease an address on its new segment",
                    moves.join(", "),
                    cx.spec.phase.0
                )
            },
            changes: changes.clone(),
            depends_on: Vec::new(),
            api_calls: Vec::new(),
            elements: cx.vm_elements(vm.vmid),
            storage_lock: None,
            op: Op::Vm(VmOp::UpdateVm {
                node: node.clone(),
                vmid: vm.vmid,
                set,
                delete: Vec::new(),
                digest: obs.digest.clone(),
            }),
        });
        last = Some(id.clone());
        if down {
            out.actions.push(Action {
                id: ActionId::vm(vm.vmid, VmStep::Reboot),
                kind: ActionKind::VmReboot,
                target: target.clone(),
                risk: Risk::Medium,
                phase: 0,
                pre_snapshot: None,
                rollback_hint: format!(
                    "if the guest does not come back: `qm rollback {} lw-{}`",
                    vm.vmid, cx.plan_tag
                ),
                expected_downtime: format!("~{REBOOT_SECONDS}s"),
                downtime_seconds: REBOOT_SECONDS,
                reason: format!("apply pending {}", reboot_fields(&changes)),
                changes: Vec::new(),
                depends_on: vec![id],
                api_calls: Vec::new(),
                elements: cx.vm_elements(vm.vmid),
                storage_lock: None,
                op: Op::Vm(VmOp::RebootVm {
                    node: node.clone(),
                    vmid: vm.vmid,
                }),
            });
            last = Some(ActionId::vm(vm.vmid, VmStep::Reboot));
        }
    } else if !crate::bootstrap::reboot_pending(obs).is_empty() && running {
        // The config already says what the spec says, but part of it waits for a
        // restart (an apply interrupted before its reboot, or a hand edit). A seed CD
        // pending removal does not count (issue 5: see crate::bootstrap).
        let keys: Vec<String> = crate::bootstrap::reboot_pending(obs).into_iter().collect();
        let id = ActionId::vm(vm.vmid, VmStep::Reboot);
        out.actions.push(Action {
            id: id.clone(),
            kind: ActionKind::VmReboot,
            target: target.clone(),
            risk: Risk::Medium,
            phase: 0,
            pre_snapshot: None,
            rollback_hint: format!(
                "the pending values match the spec; to undo them, set the old values with `qm set {}` and reboot again",
                vm.vmid
            ),
            expected_downtime: format!("~{REBOOT_SECONDS}s"),
            downtime_seconds: REBOOT_SECONDS,
            reason: format!("apply pending {}", keys.join(", ")),
            changes: keys
                .iter()
                .map(|k| Change {
                    field: k.clone(),
                    before: None,
                    after: config.get(k).cloned(),
                    effect: Effect::NeedsReboot,
                })
                .collect(),
            depends_on: Vec::new(),
            api_calls: Vec::new(),
        elements: cx.vm_elements(vm.vmid),
            storage_lock: None,
            op: Op::Vm(VmOp::RebootVm {
                node: node.clone(),
                vmid: vm.vmid,
            }),
        });
        last = Some(id);
    }
    for (slot, before, after) in resizes {
        let id = ActionId::vm(vm.vmid, VmStep::Resize(slot.clone()));
        out.actions.push(Action {
            id: id.clone(),
            kind: ActionKind::VmResize,
            target: target.clone(),
            risk: Risk::Medium,
            phase: 0,
            pre_snapshot: None,
            rollback_hint:
                "a disk cannot shrink again: restore from backup if the grow must be undone".into(),
            expected_downtime: "none (online grow; the guest must grow its filesystem)".into(),
            downtime_seconds: 0,
            reason: format!("{slot} is smaller than declared"),
            changes: vec![Change {
                field: format!("{slot} size"),
                before: Some(size_string(before)),
                after: Some(size_string(after)),
                effect: Effect::Hotplug,
            }],
            depends_on: last.iter().cloned().collect(),
            api_calls: Vec::new(),
            elements: cx.vm_elements(vm.vmid),
            storage_lock: None,
            op: Op::Vm(VmOp::ResizeDisk {
                node: node.clone(),
                vmid: vm.vmid,
                disk: slot,
                size: size_string(after),
            }),
        });
        last = Some(id);
    }
    // The power state: one status change, started or shut down after the rest.
    let power = match (vm.power, running) {
        (PowerState::Running, false) => Some((
            VmStep::Start,
            ActionKind::VmStart,
            Risk::Low,
            "running",
            Effect::Hotplug,
            format!("stop it again: `qm shutdown {}`", vm.vmid),
            "none".to_string(),
            format!("desired running, node says {}", obs.status),
            VmOp::StartVm {
                node: node.clone(),
                vmid: vm.vmid,
            },
        )),
        (PowerState::Stopped, true) => Some((
            VmStep::Shutdown,
            ActionKind::VmShutdown,
            Risk::Medium,
            "stopped",
            Effect::NeedsReboot,
            format!("start it again: `qm start {}`", vm.vmid),
            "until started again (desired state is stopped)".to_string(),
            "desired power state is stopped".to_string(),
            VmOp::ShutdownVm {
                node: node.clone(),
                vmid: vm.vmid,
            },
        )),
        _ => None,
    };
    if let Some((step, kind, risk, after, effect, rollback, downtime, reason, op)) = power {
        let mut a = Action::new(
            ActionId::vm(vm.vmid, step),
            kind,
            target.clone(),
            Op::Vm(op),
        );
        a.risk = risk;
        a.rollback_hint = rollback;
        a.expected_downtime = downtime;
        a.reason = reason;
        a.changes = vec![Change {
            field: "status".into(),
            before: Some(obs.status.clone()),
            after: Some(after.into()),
            effect,
        }];
        a.depends_on = last.iter().cloned().collect();
        a.elements = cx.vm_elements(vm.vmid);
        out.actions.push(a);
    }
    // Declared NICs and disks are owned; others on the VM are reported, never removed.
    for k in config.keys() {
        let is_slot = (k.starts_with("net")
            || k.starts_with("scsi")
            || k.starts_with("virtio")
            || k.starts_with("sata"))
            && k.chars().last().is_some_and(|c| c.is_ascii_digit());
        if is_slot && !vm.config.contains_key(k) && !vm.disks.contains_key(k) {
            out.notes.push(format!(
                "VM {} has `{k}`, which the spec does not declare; left as is",
                vm.vmid
            ));
        }
    }
}

/// `vm` without the `hostpciN` devices whose mapping the plan holds back (a guest
/// written with them could not start), each held with the mapping's reason.
fn without_refused_devices(
    cx: &PlanCx<'_>,
    out: &mut PlanOut,
    vm: &DesiredVm,
    refused: &BTreeMap<String, String>,
) -> DesiredVm {
    let mut vm = vm.clone();
    if refused.is_empty() {
        return vm;
    }
    let Some(spec_vm) = cx.spec.vms.iter().find(|v| v.vmid == vm.vmid) else {
        return vm;
    };
    let base = cx.vm_paths.get(&vm.vmid).cloned().unwrap_or_default();
    for (slot, h) in &spec_vm.hostpci {
        let Some(why) = refused.get(&h.mapping) else {
            continue;
        };
        vm.config.remove(slot);
        out.held.push(Held {
            elements: vec![format!("{base}.hostpci.{slot}")],
            target: vm_target(vm.vmid, &vm.name),
            reason: format!(
                "{slot} (mapping `{}`) is left out: the mapping is held — {why}",
                h.mapping
            ),
            unblock: "see the mapping's held item; the VM is planned without the device meanwhile"
                .into(),
        });
    }
    vm
}

/// The bridge `slot` moves to when this change moves a NIC that has a declared
/// reattachment (onto its new bridge, or back).
fn reattach_move(
    spec: &labwright_spec::Spec,
    vmid: u32,
    slot: &str,
    have: Option<&String>,
    want: &str,
) -> Option<String> {
    let bridge = |v: &str| {
        v.split(',')
            .find_map(|p| p.strip_prefix("bridge="))
            .map(str::to_string)
    };
    let nic = spec.vms.iter().find(|v| v.vmid == vmid)?.nics.get(slot)?;
    // Either way: onto the reattach bridge, or back (a lab returned to an earlier
    // phase, docs/runbooks/revert-segmentation.md).
    nic.reattach.as_ref()?;
    let to = bridge(want)?;
    (have.and_then(|h| bridge(h)) != Some(to.clone())).then_some(to)
}

fn reboot_fields(changes: &[Change]) -> String {
    let f: Vec<&str> = changes
        .iter()
        .filter(|c| c.effect == Effect::NeedsReboot)
        .map(|c| c.field.as_str())
        .collect();
    f.join(", ")
}

/// The VM kind's part of a plan: every declared VM of this phase created or brought
/// in line, managed guests no longer declared destroyed (behind two approvals), and
/// undeclared guests listed as foreign.
pub(crate) fn plan(cx: &PlanCx<'_>, out: &mut PlanOut) {
    let refused = crate::pci::refusals(cx);
    for vm in cx.want.vms.values() {
        for e in cx.vm_elements(vm.vmid) {
            out.own(e);
        }
        let vm = &without_refused_devices(cx, out, vm, &refused);
        let before = out.actions.len();
        match cx.observed.vms.get(&vm.vmid) {
            None => plan_create(cx, out, cx.want, vm),
            Some(obs) => plan_update(cx, out, cx.want, vm, obs),
        }
        // A guest's passed-through device waits for its mapping.
        let deps: Vec<ActionId> = vm
            .config
            .iter()
            .filter(|(k, _)| k.starts_with("hostpci"))
            .filter_map(|(_, v)| v.split(',').next()?.strip_prefix("mapping="))
            .filter_map(|m| crate::pci::mapping_action(out, m))
            .collect();
        for a in &mut out.actions[before..] {
            if matches!(
                a.id,
                ActionId::Vm {
                    step: VmStep::Create | VmStep::Update,
                    ..
                }
            ) {
                a.depends_on.extend(deps.iter().cloned());
            }
        }
    }
    let this_lab = crate::vm::desired::lab_tag(cx.spec);
    let this_lab = this_lab
        .strip_prefix(crate::vm::desired::LAB_TAG_PREFIX)
        .unwrap_or_default();
    // A spec that declares no guests (a firewall-only wave) claims none.
    let claims_guests = !cx.spec.vms.is_empty();
    for vm in cx.observed.vms.values() {
        if cx.want.vms.contains_key(&vm.vmid) {
            if let Some(other) = vm.lab().filter(|l| *l != this_lab) {
                out.notes.push(format!(
                    "VM {} belongs to lab `{other}`; this spec (lab `{this_lab}`) declares VMID {} and takes it over (its lab tag changes; was `metadata.name` renamed?)",
                    vm.vmid, vm.vmid
                ));
            }
            continue;
        }
        let ours = match vm.lab() {
            Some(l) => l == this_lab,
            // Made before labs were tagged: the spec that declares guests owns it.
            None => claims_guests,
        };
        if vm.is_managed() && ours {
            plan_destroy(cx, out, vm);
        } else if vm.is_managed() {
            out.foreign.push(format!(
                "VM {} `{}` ({}) on {}, managed by lab `{}`",
                vm.vmid,
                vm.name,
                vm.status,
                vm.node,
                vm.lab().unwrap_or("(none)")
            ));
        } else {
            // The inventory's stats lag behind: a guest created a moment ago has no
            // name or status in `/cluster/resources` yet.
            let name = if vm.name.is_empty() {
                "(name not reported yet)".to_string()
            } else {
                format!("`{}`", vm.name)
            };
            out.foreign.push(format!(
                "VM {} {name} ({}) on {}",
                vm.vmid, vm.status, vm.node
            ));
        }
    }
}
