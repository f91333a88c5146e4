//! Planning OS sources and seeds: downloads, imports, grows, seeds and re-seeds.

use super::*;
use crate::action::{ActionId, ActionKind, VmStep, vm_target};
use crate::vm::VmOp;

pub(crate) fn change(field: &str, after: impl Into<String>) -> Change {
    Change::added(field, after)
}

pub(crate) fn blank_action(id: ActionId, kind: ActionKind, target: String, op: Op) -> Action {
    Action::new(id, kind, target, op)
}

/// The guest-bootstrap kind's part of a plan: OS-source and seed steps for the VMs
/// of this phase (see the module docs). Runs after the VM kind, because it edits
/// creates and starts; it manages the Tailscale routes its seeds advertise.
pub(crate) fn plan(cx: &crate::plan::PlanCx<'_>, out: &mut crate::plan::PlanOut) {
    let (spec, want, observed) = (cx.spec, cx.want, cx.observed);
    let by_id: BTreeMap<u32, &Vm> = spec.vms.iter().map(|v| (v.vmid, v)).collect();
    for dvm in want.vms.values() {
        let Some(vm) = by_id.get(&dvm.vmid).copied() else {
            continue;
        };
        let before = out.held.len();
        match observed.vms.get(&dvm.vmid) {
            None => {
                plan_new_vm(
                    spec,
                    want,
                    observed,
                    dvm,
                    vm,
                    &mut out.actions,
                    &mut out.held,
                    &mut out.notes,
                );
                if out.held.len() > before {
                    // Nothing half-built: a VM whose OS or seed cannot be provided is
                    // not created blank (it could not get its image afterwards).
                    out.actions.retain(|a| a.id.vmid() != Some(dvm.vmid));
                    for h in &mut out.held[before..] {
                        h.unblock.push_str(" (the VM is not created until then)");
                    }
                }
            }
            Some(obs) => plan_existing_vm(
                spec,
                dvm,
                vm,
                obs,
                &mut out.actions,
                &mut out.held,
                cx.plan_tag,
            ),
        }
        let path = cx.vm_elements(dvm.vmid);
        for h in &mut out.held[before..] {
            h.elements.clone_from(&path);
        }
    }
    keep_marker_in_updates(observed, &mut out.actions);
    // Subnet routes through a guest this phase seeds with a Tailscale join are the
    // seed's business.
    if let Some(ts) = &spec.tailscale {
        for (i, r) in ts.subnet_routes.iter().enumerate() {
            let joined = spec.vms.iter().any(|v| {
                v.name == r.via
                    && v.phase <= spec.phase
                    && v.bootstrap.as_ref().is_some_and(|b| b.tailscale.is_some())
            });
            if joined && r.phase <= spec.phase {
                out.own(
                    labwright_spec::YamlPath::root()
                        .key("tailscale")
                        .key("subnetRoutes")
                        .index(i),
                );
            }
        }
    }
    // Validation checks run at validate time, through a guest agent.
    for (i, c) in spec.validation_checks.iter().enumerate() {
        if c.phase.unwrap_or_default() <= spec.phase {
            out.own(
                labwright_spec::YamlPath::root()
                    .key("validationChecks")
                    .index(i),
            );
        }
    }
}

pub(crate) fn find_action<'a>(actions: &'a mut [Action], id: &ActionId) -> Option<&'a mut Action> {
    actions.iter_mut().find(|a| &a.id == id)
}

/// Replaces `storage:GiB,opts` by `storage:0,import-from=VOLID,opts` (PVE's import
/// syntax: the size must be 0; the disk gets the image's size and is grown after).
pub(crate) fn import_value(alloc: &str, volid: &str) -> String {
    let (head, rest) = match alloc.split_once(',') {
        Some((h, r)) => (h, Some(r)),
        None => (alloc, None),
    };
    let storage = head.split(':').next().unwrap_or(head);
    let mut v = format!("{storage}:0,import-from={volid}");
    if let Some(r) = rest {
        v.push(',');
        v.push_str(r);
    }
    v
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_download(
    actions: &mut Vec<Action>,
    node: &str,
    storage: &str,
    content: &str,
    filename: &str,
    url: &str,
    checksum: Option<(String, String)>,
    compression: Option<String>,
) -> ActionId {
    let id = ActionId::Image {
        slug: filename
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>(),
    };
    if actions.iter().any(|a| a.id == id) {
        return id;
    }
    let volid = format!("{storage}:{content}/{filename}");
    let mut a = blank_action(
        id.clone(),
        ActionKind::ImageDownload,
        format!("storage/{storage} {filename}"),
        Op::Bootstrap(BootOp::DownloadImage {
            node: node.into(),
            storage: storage.into(),
            content: content.into(),
            filename: filename.into(),
            url: url.into(),
            checksum_algorithm: checksum.as_ref().map(|c| c.0.clone()),
            checksum: checksum.as_ref().map(|c| c.1.clone()),
            compression: compression.clone(),
        }),
    );
    a.rollback_hint = format!(
        "delete the image once no VM is created from it: `pvesm free {volid}` (guests already imported keep their copy)"
    );
    a.expected_downtime = "none (the node downloads in the background)".into();
    a.reason = "the VM's OS image; the node fetches it itself and verifies the checksum (skipped when the volume is already there)".into();
    a.changes.push(change("volume", volid));
    a.changes.push(change("url", url));
    a.changes.push(match &checksum {
        Some((algo, hex)) => change("checksum", format!("{algo}:{hex} (verified by the node)")),
        None => change("checksum", "none given: the image is not verified"),
    });
    if let Some(c) = &compression {
        a.changes.push(change(
            "decompression",
            format!(
                "{c}, done by the node (download-url `compression`) before it stores {storage}:{content}/{filename}"
            ),
        ));
    }
    // Downloads go first in the listing: every create that imports waits for them.
    let pos = actions
        .iter()
        .take_while(|x| x.kind == ActionKind::ImageDownload)
        .count();
    actions.insert(pos, a);
    id
}

/// Inserts `a` right after the action `after` (listing order only; the executor
/// follows `dependsOn`).
pub(crate) fn insert_after(actions: &mut Vec<Action>, after: &ActionId, a: Action) {
    match actions.iter().position(|x| &x.id == after) {
        Some(i) => actions.insert(i + 1, a),
        None => actions.push(a),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_new_vm(
    spec: &Spec,
    want: &Desired,
    observed: &Observed,
    dvm: &DesiredVm,
    vm: &Vm,
    actions: &mut Vec<Action>,
    held: &mut Vec<Held>,
    notes: &mut Vec<String>,
) {
    let vmid = dvm.vmid;
    let target = vm_target(vmid, &dvm.name);
    let create_id = ActionId::vm(vmid, VmStep::Create);
    if !actions.iter().any(|a| a.id == create_id) {
        return;
    }
    let mut last = create_id.clone();
    match &vm.os {
        None => {}
        Some(OsSource::CloudImage(img))
        | Some(OsSource::HaosImage(img))
        | Some(OsSource::OpnsenseImage(img)) => {
            let is_haos = matches!(vm.os, Some(OsSource::HaosImage(_)));
            let is_router = matches!(vm.os, Some(OsSource::OpnsenseImage(_)));
            let filename = match image_file(&img.url) {
                Ok(f) => f,
                Err(why) => {
                    held.push(Held {
                        elements: Vec::new(),
                        target,
                        reason: format!("OS image: {why}"),
                        unblock: "fix `os.*.url` in the spec".into(),
                    });
                    return;
                }
            };
            let checksum = match checksum_parts(&img.checksum) {
                Ok(c) => c,
                Err(why) => {
                    held.push(Held {
                        elements: Vec::new(),
                        target,
                        reason: format!("OS image: {why}"),
                        unblock: "put the published checksum in `os.*.checksum`".into(),
                    });
                    return;
                }
            };
            let storage = img
                .storage
                .clone()
                .unwrap_or_else(|| DEFAULT_IMAGE_STORAGE.to_string());
            let slot = img.disk.clone().unwrap_or_else(|| "scsi0".to_string());
            if let Err(why) = storage_takes(observed, &want.node, &storage, "import") {
                held.push(Held {
                    elements: Vec::new(),
                    target,
                    reason: format!("OS image: {why}"),
                    unblock: format!(
                        "enable the `import` content type on storage `{storage}` (Datacenter → Storage), or name another storage in `os.*.storage`"
                    ),
                });
                return;
            }
            let volid = format!("{storage}:import/{filename}");
            let dl = plan_download(
                actions,
                &want.node,
                &storage,
                "import",
                &filename,
                &img.url,
                Some(checksum),
                None,
            );
            let Some(create) = find_action(actions, &create_id) else {
                return;
            };
            if let Op::Vm(VmOp::CreateVm { params, .. }) = &mut create.op {
                match params.iter_mut().find(|(k, _)| *k == slot) {
                    Some((_, v)) => *v = import_value(v, &volid),
                    None => params.push((
                        slot.clone(),
                        format!("{}:0,import-from={volid}", dvm.storage),
                    )),
                }
                params.retain(|(k, _)| k != "boot");
                params.push(("boot".into(), format!("order={slot}")));
                params.sort();
                create.changes = params.iter().map(|(k, v)| change(k, v.clone())).collect();
            }
            create.depends_on.push(dl);
            create.reason = format!(
                "declared in the spec, absent on the node; boot disk {slot} imported from {volid}{}",
                if is_haos {
                    " (UEFI, Home Assistant OS)"
                } else if is_router {
                    " (OPNsense nano; its configuration comes from the router seed)"
                } else {
                    ""
                }
            );
            if let Some(d) = dvm.disks.get(&slot) {
                let size = labwright_spec::types::Size(d.size_bytes).to_string();
                let id = ActionId::vm(vmid, VmStep::Grow(slot.clone()));
                let mut a = blank_action(
                    id.clone(),
                    ActionKind::VmResize,
                    target.clone(),
                    Op::Bootstrap(BootOp::GrowDisk {
                        node: want.node.clone(),
                        vmid,
                        disk: slot.clone(),
                        size: size.clone(),
                        size_bytes: d.size_bytes,
                    }),
                );
                a.rollback_hint = format!(
                    "a disk cannot shrink; the VM is new and holds no data: `qm destroy {vmid} --purge` and plan again"
                );
                a.expected_downtime = "none (new guest, not started yet)".into();
                a.reason = format!(
                    "the imported image is smaller than the declared {slot}; grown before the first boot (the guest grows its filesystem)"
                );
                a.changes.push(change(&format!("{slot} size"), size));
                a.depends_on.push(last.clone());
                insert_after(actions, &last, a);
                last = id;
            }
            if is_haos {
                notes.push(format!(
                    "VM {vmid} boots Home Assistant OS from {volid} (UEFI, efidisk0); HAOS has no cloud-init: its guest agent is built in and Tailscale comes from the HA add-on (docs/runbooks)"
                ));
            }
        }
        Some(OsSource::Iso(iso)) => {
            let Some(create) = find_action(actions, &create_id) else {
                return;
            };
            let first_disk = dvm
                .disks
                .keys()
                .next()
                .cloned()
                .unwrap_or_else(|| "scsi0".into());
            if let Op::Vm(VmOp::CreateVm { params, .. }) = &mut create.op {
                params.retain(|(k, _)| k != "boot" && k != SEED_SLOT);
                params.push((SEED_SLOT.into(), format!("{},media=cdrom", iso.volume)));
                params.push(("boot".into(), format!("order={first_disk};{SEED_SLOT}")));
                params.sort();
                create.changes = params.iter().map(|(k, v)| change(k, v.clone())).collect();
            }
            create.reason = format!(
                "declared in the spec, absent on the node; installer {} attached as {SEED_SLOT} (boots from it while {first_disk} is empty)",
                iso.volume
            );
            if let Some(url) = &iso.url {
                let (storage, file) = match iso.volume.split_once(":iso/") {
                    Some((s, f)) => (s.to_string(), f.to_string()),
                    None => {
                        held.push(Held {
                            elements: Vec::new(),
                            target,
                            reason: format!(
                                "installer ISO `{}` is not an `<storage>:iso/<file>` volume",
                                iso.volume
                            ),
                            unblock: "fix `os.iso.volume`".into(),
                        });
                        return;
                    }
                };
                let checksum = match iso.checksum.as_deref().map(checksum_parts) {
                    None => None,
                    Some(Ok(c)) => Some(c),
                    Some(Err(why)) => {
                        held.push(Held {
                            elements: Vec::new(),
                            target,
                            reason: format!("installer ISO: {why}"),
                            unblock: "fix `os.iso.checksum`".into(),
                        });
                        return;
                    }
                };
                let compression = match iso_compression(url) {
                    Ok(c) => c,
                    Err(why) => {
                        held.push(Held {
                            elements: Vec::new(),
                            target,
                            reason: format!("installer ISO: {why}"),
                            unblock: "point `os.iso.url` at a plain or gz/zst/bz2 file".into(),
                        });
                        return;
                    }
                };
                let dl = plan_download(
                    actions,
                    &want.node,
                    &storage,
                    "iso",
                    &file,
                    url,
                    checksum,
                    compression,
                );
                if let Some(create) = find_action(actions, &create_id) {
                    create.depends_on.push(dl);
                }
            }
        }
    }
    if needs_seed(vm) {
        let storage = iso_storage(spec);
        if let Err(why) = storage_takes(observed, &want.node, &storage, "iso") {
            held.push(Held {
                elements: Vec::new(),
                target,
                reason: format!("guest bootstrap: the seed goes to `{storage}`: {why}"),
                unblock: format!(
                    "enable the `iso` content type on storage `{storage}`, or set `node.isoStorage`"
                ),
            });
            return;
        }
        match plan_seed(spec, vm, &SeedOptions::default()) {
            Err(e) => {
                held.push(Held {
                    elements: Vec::new(),
                    target: target.clone(),
                    reason: format!("guest bootstrap: {e}"),
                    unblock: "fix the VM's `bootstrap` block".into(),
                });
            }
            Ok(sp) => {
                let id = ActionId::vm(vmid, VmStep::Seed);
                let mut a = blank_action(
                    id.clone(),
                    ActionKind::VmSeed,
                    target.clone(),
                    Op::Bootstrap(BootOp::Seed {
                        node: want.node.clone(),
                        vmid,
                        storage: storage.clone(),
                        instance_id: sp.instance_id.clone(),
                        volume_file: sp.volume_file.clone(),
                        reboot: false,
                    }),
                );
                a.rollback_hint = format!(
                    "detach and delete the seed: `qm set {vmid} --delete {SEED_SLOT}` and `pvesm free {}`; the VM is new: `qm destroy {vmid} --purge` undoes all of it",
                    sp.volume_id(&storage)
                );
                a.expected_downtime = format!(
                    "none (new guest; its first boot runs cloud-init, ~{FIRST_BOOT_SECONDS}s until Tailscale/Docker are up)"
                );
                a.reason =
                    "first-boot setup through a cloud-init NoCloud seed (no SSH to the host)"
                        .into();
                seed_changes(&mut a, &sp, &storage);
                a.depends_on.push(last.clone());
                insert_after(actions, &last, a);
                last = id;
            }
        }
    }
    if last != create_id
        && let Some(start) = find_action(actions, &ActionId::vm(vmid, VmStep::Start))
    {
        start.depends_on = vec![last];
    }
}

pub(crate) fn seed_changes(a: &mut Action, sp: &labwright_cloudinit::SeedPlan, storage: &str) {
    a.changes
        .push(change("instance-id", sp.instance_id.clone()));
    a.changes.push(change(
        SEED_SLOT,
        format!("{},media=cdrom", sp.volume_id(storage)),
    ));
    a.changes.push(match &sp.auth_key {
        Some(r) => change(
            "tailscale auth key",
            format!("{r} (read at apply time; written only into the seed ISO)"),
        ),
        None => change("tailscale auth key", "none (no Tailscale join)"),
    });
    // The window the cleanup closes exists only when the seed carries a key.
    a.changes.push(change(
        "seed cleanup",
        if sp.auth_key.is_some() {
            "detached and deleted after `labwright validate` passes (until then the auth key sits in the seed on the node: use a one-off, pre-approved key)"
        } else {
            "detached and deleted after `labwright validate` passes (the seed holds no secret)"
        },
    ));
    a.changes.push(change(
        "description",
        format!("+ `{SEED_MARKER} {}`", sp.instance_id),
    ));
    a.changes.push(change("meta-data", sp.meta_data.clone()));
    a.changes
        .push(change("network-config", sp.network_config.clone()));
    a.changes.push(change(
        "user-data (redacted)",
        sp.user_data_redacted.clone(),
    ));
}

/// Whether `storage` on `node` accepts `content`, as far as the scan knows. An
/// unknown content list is not held against it (the node decides at apply).
pub(crate) fn storage_takes(
    observed: &Observed,
    node: &str,
    storage: &str,
    content: &str,
) -> Result<(), String> {
    if observed.storages.is_empty() {
        return Ok(());
    }
    let Some(st) = observed
        .storages
        .iter()
        .find(|s| s.id == storage && (s.node == node || s.node.is_empty()))
    else {
        return Err(format!("storage `{storage}` is not on node `{node}`"));
    };
    match &st.content {
        Some(c) if !c.split(',').any(|x| x.trim() == content) => Err(format!(
            "storage `{storage}` does not take `{content}` content (it has: {c})"
        )),
        _ => Ok(()),
    }
}

/// NIC slot → MAC, from a VM config (what PVE assigned at create).
pub(crate) fn nic_macs(config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    config
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix("net")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
        .filter_map(|(k, v)| {
            NetDevice::parse(v)
                .ok()
                .and_then(|n| n.macaddr)
                .map(|m| (k.clone(), m))
        })
        .collect()
}

pub(crate) fn plan_existing_vm(
    spec: &Spec,
    dvm: &DesiredVm,
    vm: &Vm,
    obs: &ObservedVm,
    actions: &mut Vec<Action>,
    held: &mut Vec<Held>,
    plan_tag: &str,
) {
    if !needs_seed(vm) || obs.lock.is_some() {
        return;
    }
    let Some(config) = &obs.config else { return };
    let vmid = dvm.vmid;
    let target = vm_target(vmid, &dvm.name);
    let opts = SeedOptions {
        nic_macs: nic_macs(config),
    };
    let sp = match plan_seed(spec, vm, &opts) {
        Ok(sp) => sp,
        Err(e) => {
            held.push(Held {
                elements: Vec::new(),
                target,
                reason: format!("guest bootstrap: {e}"),
                unblock: "fix the VM's `bootstrap` block".into(),
            });
            return;
        }
    };
    let recorded = config.get("description").and_then(|d| seed_marker(d));
    if recorded.as_deref() == Some(sp.instance_id.as_str()) {
        return;
    }
    let running = obs.status == "running";
    let will_run = dvm.power == PowerState::Running;
    let reboot = running && will_run;
    let storage = iso_storage(spec);
    let snap = reboot.then(|| format!("lw-{plan_tag}"));
    let mut a = blank_action(
        ActionId::vm(vmid, VmStep::Reseed),
        ActionKind::VmReseed,
        target,
        Op::Bootstrap(BootOp::Seed {
            node: obs.node.clone(),
            vmid,
            storage: storage.clone(),
            instance_id: sp.instance_id.clone(),
            volume_file: sp.volume_file.clone(),
            reboot,
        }),
    );
    a.risk = Risk::Medium;
    a.pre_snapshot = snap.clone();
    a.rollback_hint = match &snap {
        Some(s) => format!(
            "roll back to the pre-change snapshot: `qm rollback {vmid} {s}` (the setup re-runs idempotently; nothing is rebuilt)"
        ),
        None => format!(
            "detach the seed before the next start: `qm set {vmid} --delete {SEED_SLOT}` and `pvesm free {}`",
            sp.volume_id(&storage)
        ),
    };
    a.expected_downtime = if reboot {
        format!(
            "~{REBOOT_SECONDS}s reboot, then cloud-init re-runs the setup (~{FIRST_BOOT_SECONDS}s until services settle)"
        )
    } else {
        "none now (the VM is stopped; the setup runs at its next start)".into()
    };
    a.downtime_seconds = if reboot { REBOOT_SECONDS } else { 0 };
    a.reason = match &recorded {
        Some(old) => format!(
            "the bootstrap changed: the VM was seeded with {old}, the spec now gives {} (a re-seed re-runs the idempotent setup; the disk is kept)",
            sp.instance_id
        ),
        None => "the VM carries no record of a labwright seed; re-seeding runs the idempotent setup on it (the disk is kept)".into(),
    };
    if let Some(old) = &recorded {
        a.changes.push(Change {
            field: "instance-id".into(),
            before: Some(old.clone()),
            after: Some(sp.instance_id.clone()),
            effect: if reboot {
                Effect::NeedsReboot
            } else {
                Effect::Hotplug
            },
        });
    }
    seed_changes(&mut a, &sp, &storage);
    if recorded.is_some() {
        // The first "instance-id" entry (with its before value) says it already.
        if let Some(pos) = a
            .changes
            .iter()
            .skip(1)
            .position(|c| c.field == "instance-id")
        {
            a.changes.remove(pos + 1);
        }
    }
    let start_id = ActionId::vm(vmid, VmStep::Start);
    a.depends_on = actions
        .iter()
        .filter(|x| x.id.vmid() == Some(vmid) && x.id != start_id)
        .map(|x| x.id.clone())
        .collect();
    let id = a.id.clone();
    actions.push(a);
    if let Some(start) = find_action(actions, &start_id) {
        start.depends_on = vec![id];
    }
}

/// An update that rewrites the description keeps the recorded seed line, or the next
/// plan would re-seed the VM.
pub(crate) fn keep_marker_in_updates(observed: &Observed, actions: &mut [Action]) {
    for a in actions.iter_mut() {
        let Op::Vm(VmOp::UpdateVm { vmid, set, .. }) = &mut a.op else {
            continue;
        };
        let Some(marker) = observed
            .vms
            .get(vmid)
            .and_then(|o| o.config.as_ref())
            .and_then(|c| c.get("description"))
            .and_then(|d| seed_marker(d))
        else {
            continue;
        };
        for (k, v) in set.iter_mut() {
            if k == "description" {
                *v = with_marker(v, &marker);
            }
        }
    }
}
