//! QEMU snapshots as pve-guest-common's `AbstractConfig::snapshot_*` and qemu-server's
//! `QemuConfig` hooks run them: a short prepare step under the VM's flock sets `lock:`,
//! the volume work runs under that config lock only, and a commit step drops it.

use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Value, json};

use super::qemu::{alloc_log_name, check_lock, digest, drive_props, is_drive};
use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{Snapshot, State, Vm, Volume};
use crate::tasks::{self, Spec, vm_lock};
use crate::util::{now, now_f, truthy, uuid_for};

/// The machine and CPU a running VM was started with (what `runningmachine` and
/// `runningcpu` record for a RAM snapshot).
const RUNNING_MACHINE: &str = "pc-i440fx-10.1+pve0";
const RUNNING_CPU: &str =
    "qemu64,+aes,enforce,+kvm_pv_eoi,+kvm_pv_unhalt,+pni,+popcnt,+sse4.1,+sse4.2,+ssse3";

pub(super) fn snap_exists(inner: &Inner, r: &Req) -> Result<Snapshot, ApiError> {
    inner.with_state(|st| {
        let vm = st.vm(&r.node(), r.vmid())?;
        let name = r.s("snapname");
        vm.snapshots
            .get(&name)
            .cloned()
            .ok_or_else(|| ApiError::e500(format!("snapshot '{name}' does not exist")))
    })
}

pub(super) fn snapshot_list(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    inner.with_state(|st| {
        let vm = st.vm(&r.node(), r.vmid())?;
        let mut out: Vec<Value> = vm
            .snapshots
            .iter()
            .map(|(n, s)| {
                let mut e = json!({"name": n, "description": s.description, "snaptime": s.snaptime,
                    "vmstate": if s.vmstate { 1 } else { 0 }});
                if let Some(p) = &s.parent {
                    e["parent"] = json!(p);
                }
                e
            })
            .collect();
        let mut cur = json!({"name": "current", "description": "You are here!",
            "running": if vm.running { 1 } else { 0 }, "digest": digest(vm)});
        if let Some(p) = vm.conf.get("parent") {
            cur["parent"] = json!(p);
        }
        out.push(cur);
        Ok(Value::Array(out).into())
    })
}

/// Drive keys in qemu-server's `valid_drive_names` order (what `foreach_volume` walks),
/// CD-ROMs left out as `__snapshot_create_vol_snapshot` skips them.
fn snapshot_drives(conf: &IndexMap<String, String>) -> Vec<(String, String)> {
    let mut names: Vec<String> = [("ide", 4), ("scsi", 31), ("virtio", 16), ("sata", 6)]
        .iter()
        .flat_map(|(b, n)| (0..*n).map(move |i| format!("{b}{i}")))
        .collect();
    names.push("efidisk0".into());
    names.push("tpmstate0".into());
    names
        .into_iter()
        .filter_map(|k| {
            let v = conf.get(&k)?;
            if !is_drive(&k) || v.split(',').any(|p| p == "media=cdrom") {
                return None;
            }
            let file = drive_props(&k, v)?.get("file").cloned()?;
            Some((k, file))
        })
        .collect()
}

/// qemu-server's `find_vmstate_storage`: `vmstatestorage`, else a shared storage the VM
/// uses, else a local one (file-based preferred), else `local`.
fn vmstate_storage(st: &State, conf: &IndexMap<String, String>) -> String {
    if let Some(s) = conf.get("vmstatestorage") {
        return s.clone();
    }
    let (mut shared, mut local): (Option<String>, Option<String>) = (None, None);
    for (_, file) in snapshot_drives(conf) {
        let Some((sid, _)) = crate::formats::parse_volid(&file) else {
            continue;
        };
        let Some(cfg) = st.storages.get(&sid) else {
            continue;
        };
        let is_shared = cfg
            .get("shared")
            .is_some_and(|v| v == &json!(1) || v == "1");
        let dst = if is_shared { &mut shared } else { &mut local };
        if dst.is_none() || cfg.get("path").is_some() {
            *dst = Some(sid);
        }
    }
    shared.or(local).unwrap_or_else(|| "local".into())
}

/// Allocates the RAM state volume `vm-<id>-state-<snap>` (`.raw` on file storages) of
/// (2 × memory + 500 MiB), as `__snapshot_save_vmstate` does.
fn save_vmstate(st: &mut State, vm: &Vm, snap: &str, log: &mut Vec<String>) -> String {
    let sid = vmstate_storage(st, &vm.conf);
    let mem_mib = super::cluster::vm_maxmem(vm.conf.get("memory")) >> 20;
    let size = (mem_mib * 2 + 500) << 20;
    let path_based = st
        .storages
        .get(&sid)
        .is_some_and(|c| c.get("path").is_some());
    let name = format!("vm-{}-state-{snap}", vm.vmid);
    let volid = if path_based {
        format!("{sid}:{}/{name}.raw", vm.vmid)
    } else {
        format!("{sid}:{name}")
    };
    log.push(format!("saving VM state and RAM using storage '{sid}'"));
    if let Some((_, lv)) = alloc_log_name(st, &volid) {
        log.push(format!("  Logical volume \"{lv}\" created."));
    }
    st.volumes.push(Volume {
        node: vm.node.clone(),
        storage: sid,
        volid: volid.clone(),
        content: "images".into(),
        format: "raw".into(),
        size,
        vmid: Some(vm.vmid),
        ctime: now(),
        user_data: None,
        imported_from: None,
        ..Default::default()
    });
    log.push(format!(
        "completed saving the VM state in 1s, saved {:.2} MiB",
        (mem_mib as f64) / 3.0
    ));
    volid
}

pub(super) fn snapshot_create(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let vmid = r.vmid();
    let name = r.s("snapname");
    let vmstate = r.flag("vmstate");
    let desc = r.s("description");
    inner.with_state(|st| {
        let vm = st.vm(&node, vmid)?;
        if name == "current" || name == "pending" {
            return Err(ApiError::e500(format!("invalid snapshot name '{name}'")));
        }
        if vm.snapshots.contains_key(&name) {
            return Err(ApiError::e500(format!(
                "snapshot name '{name}' already used"
            )));
        }
        if truthy(vm.conf.get("template")) {
            return Err(ApiError::e500(
                "you can't take a snapshot if it's a template",
            ));
        }
        Ok(())
    })?;
    let upid = tasks::spawn(
        inner,
        Spec {
            node: node.clone(),
            kind: "qmsnapshot",
            id: vmid.to_string(),
            user: r.who.full(),
            secs: if vmstate { 4.0 } else { 2.0 },
            locks: vec![vm_lock(vmid, 10.0)],
            fail_text: Some("snapshot feature is not available".into()),
            config_lock: Some((vmid, "snapshot")),
        },
        Box::new(move |st| {
            let vm = st.vm(&node, vmid)?.clone();
            check_lock(&vm, false)?;
            if vm.snapshots.contains_key(&name) {
                return Err(format!("snapshot name '{name}' already used"));
            }
            let mut log = vec![];
            let parent = vm.conf.get("parent").cloned();
            // __snapshot_copy_config: no description, lock or unused disks in a snapshot.
            let mut conf = vm.conf.clone();
            conf.retain(|k, _| !k.starts_with("unused") && k != "description" && k != "lock");
            conf.shift_remove("parent");
            if let Some(p) = &parent {
                conf.insert("parent".into(), p.clone());
            }
            let with_ram = vmstate && vm.running;
            if with_ram {
                let volid = save_vmstate(st, &vm, &name, &mut log);
                conf.insert("runningcpu".into(), RUNNING_CPU.into());
                conf.insert("runningmachine".into(), RUNNING_MACHINE.into());
                conf.insert("vmstate".into(), volid);
            }
            for (k, file) in snapshot_drives(&vm.conf) {
                log.push(format!("snapshotting 'drive-{k}' ({file})"));
                if let Some((_, lv)) = alloc_log_name(st, &file) {
                    log.push(format!("  Logical volume \"snap_{lv}_{name}\" created."));
                }
            }
            let vm = st.vm_mut(&node, vmid)?;
            vm.snapshots.insert(
                name.clone(),
                Snapshot {
                    conf,
                    description: desc,
                    snaptime: now(),
                    vmstate: with_ram,
                    parent,
                },
            );
            vm.conf.insert("parent".into(), name.clone());
            Ok(log)
        }),
    );
    Ok(json!(upid).into())
}

pub(super) fn snapshot_rollback(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let vmid = r.vmid();
    let name = r.s("snapname");
    snap_exists(inner, r)?;
    let start = r.str("start");
    let scale = inner.cfg.time_scale;
    let upid = tasks::spawn(
        inner,
        Spec {
            node: node.clone(),
            kind: "qmrollback",
            id: vmid.to_string(),
            user: r.who.full(),
            secs: 3.0,
            locks: vec![vm_lock(vmid, 10.0)],
            fail_text: None,
            config_lock: Some((vmid, "rollback")),
        },
        Box::new(move |st| {
            let vm = st.vm(&node, vmid)?;
            check_lock(vm, false)?;
            let snap = vm
                .snapshots
                .get(&name)
                .cloned()
                .ok_or_else(|| format!("snapshot '{name}' does not exist"))?;
            let mut log = vec![];
            for (_, file) in snapshot_drives(&snap.conf) {
                if let Some((_, lv)) = alloc_log_name(st, &file) {
                    log.push(format!("  Logical volume \"{lv}\" successfully removed."));
                    log.push(format!("  Logical volume \"{lv}\" created."));
                }
            }
            st.serial += 1;
            let serial = st.serial;
            let vm = st.vm_mut(&node, vmid)?;
            vm.set_running(false);
            // AbstractConfig::snapshot_rollback: volumes of the current config that the
            // snapshot does not use become unusedN; the current unused disks and
            // description are kept and the snapshot's keys copied over them
            // (__snapshot_apply_config). The qemu hook then drops runningmachine /
            // runningcpu and gives the VM a new generation id.
            let snap_files: Vec<String> = snapshot_drives(&snap.conf)
                .into_iter()
                .map(|(_, f)| f)
                .collect();
            let mut kept: IndexMap<String, String> = vm
                .conf
                .iter()
                .filter(|(k, _)| k.starts_with("unused") || *k == "description")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (_, file) in snapshot_drives(&vm.conf) {
                if !snap_files.contains(&file) && !kept.values().any(|v| *v == file) {
                    let free = (0..256)
                        .map(|i| format!("unused{i}"))
                        .find(|k| !kept.contains_key(k));
                    if let Some(k) = free {
                        kept.insert(k, file);
                    }
                }
            }
            let mut conf = kept;
            for (k, v) in &snap.conf {
                if [
                    "snaptime",
                    "vmstate",
                    "lock",
                    "digest",
                    "description",
                    "runningmachine",
                    "runningcpu",
                ]
                .contains(&k.as_str())
                    || k.starts_with("unused")
                {
                    continue;
                }
                conf.insert(k.clone(), v.clone());
            }
            if conf.contains_key("vmgenid") {
                conf.insert(
                    "vmgenid".into(),
                    uuid_for(serial + 7, 0x5eed ^ u64::from(vmid)),
                );
            }
            conf.insert("parent".into(), name.clone());
            vm.conf = conf;
            vm.pending.clear();
            vm.pending_delete.clear();
            let autostart = match start.as_deref() {
                Some("1") => true,
                Some(_) => false,
                None => snap.vmstate,
            };
            if autostart {
                vm.set_running(true);
                vm.started_at = now();
                vm.agent_ready_at = now_f() + 2.0 * scale;
            }
            Ok(log)
        }),
    );
    Ok(json!(upid).into())
}

pub(super) fn snapshot_delete(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let vmid = r.vmid();
    let name = r.s("snapname");
    snap_exists(inner, r)?;
    let upid = tasks::spawn(
        inner,
        Spec {
            node: node.clone(),
            kind: "qmdelsnapshot",
            id: vmid.to_string(),
            user: r.who.full(),
            secs: 1.5,
            locks: vec![vm_lock(vmid, 10.0)],
            fail_text: None,
            config_lock: Some((vmid, "snapshot-delete")),
        },
        Box::new(move |st| {
            let vm = st.vm_mut(&node, vmid)?;
            let snap = vm
                .snapshots
                .shift_remove(&name)
                .ok_or_else(|| format!("snapshot '{name}' does not exist"))?;
            for s in vm.snapshots.values_mut() {
                if s.parent.as_deref() == Some(name.as_str()) {
                    s.parent = snap.parent.clone();
                }
            }
            if vm.conf.get("parent") == Some(&name) {
                match &snap.parent {
                    Some(p) => {
                        vm.conf.insert("parent".into(), p.clone());
                    }
                    None => {
                        vm.conf.shift_remove("parent");
                    }
                }
            }
            // The RAM state goes first, then each volume's snapshot.
            let mut log = vec![];
            if let Some(state) = snap.conf.get("vmstate") {
                if let Some((_, lv)) = alloc_log_name(st, state) {
                    log.push(format!("  Logical volume \"{lv}\" successfully removed."));
                }
                st.volumes.retain(|v| &v.volid != state);
            }
            for (_, file) in snapshot_drives(&snap.conf) {
                if let Some((_, lv)) = alloc_log_name(st, &file) {
                    log.push(format!(
                        "  Logical volume \"snap_{lv}_{name}\" successfully removed."
                    ));
                }
            }
            Ok(log)
        }),
    );
    Ok(json!(upid).into())
}
