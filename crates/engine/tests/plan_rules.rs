//! plan() on hand-built observed states: what is created, updated or left alone,
//! what never produces a diff (tag order and case, generated MACs, PVE's spelling of
//! defaults), what is held back, and what a change costs (risk, downtime,
//! pre-snapshot).

use std::collections::{BTreeMap, BTreeSet};

use labwright_engine::observed::{Observed, ObservedBackupJob, ObservedVm};
use labwright_engine::plan::{Op, Plan, Risk, plan};
use labwright_engine::vm::VmOp;

struct Knobs {
    memory: &'static str,
    tags: &'static str,
    disk: &'static str,
    power: &'static str,
    allow_backup_changes: bool,
    retention: &'static str,
    selection: &'static str,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            memory: "8G",
            tags: "[env-lab, role-app-host, tier-lan, owner-loic]",
            disk: "64G",
            power: "running",
            allow_backup_changes: true,
            retention: "{ daily: 7, weekly: 4, monthly: 6 }",
            selection: "{ vmids: [300] }",
        }
    }
}

fn spec(k: &Knobs) -> labwright_spec::Spec {
    let text = format!(
        r#"apiVersion: labwright/v1
kind: Homelab
metadata:
  name: unit
  owner: loic
node:
  name: proxmox
  address: 192.168.1.10
  vmStorage: local-lvm
phase: 0
safetyGuards:
  executionMode: safe
  managementAccessCidrs: [192.168.1.50/32]
  allowBackupChanges: {abc}
vms:
  - vmid: 300
    name: app-host
    role: app-host
    cores: 4
    memory: {mem}
    ostype: l26
    power: {power}
    disks:
      scsi0: {{ size: {disk} }}
    nics:
      net0: {{ bridge: vmbr0 }}
    tags: {tags}
    startupOrder: 2
    description: Docker host.
backups:
  jobs:
    - id: nightly
      schedule: "02:30"
      storage: local
      selection: {sel}
      mode: snapshot
      compress: zstd
      retention: {ret}
"#,
        abc = k.allow_backup_changes,
        mem = k.memory,
        power = k.power,
        disk = k.disk,
        tags = k.tags,
        sel = k.selection,
        ret = k.retention,
    );
    match labwright_spec::load_str("unit.yaml", &text, &|_| None) {
        Ok(l) => l.spec,
        Err(f) => panic!(
            "test spec did not load: {:?}",
            f.diagnostics
                .iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
        ),
    }
}

/// VM 300 as PVE reports it after labwright created it from the default knobs.
fn vm300() -> ObservedVm {
    let config: BTreeMap<String, String> = [
        ("agent", "1"),
        ("bios", "seabios"),
        ("cores", "4"),
        ("description", "Docker host."),
        ("machine", "q35"),
        ("memory", "8192"),
        ("meta", "creation-qemu=10.1.2,ctime=1795440199"),
        ("name", "app-host"),
        ("net0", "virtio=BC:24:11:66:6D:13,bridge=vmbr0,firewall=1"),
        ("onboot", "1"),
        ("ostype", "l26"),
        ("protection", "0"),
        (
            "scsi0",
            "local-lvm:vm-300-disk-0,backup=1,cache=none,discard=on,iothread=1,size=64G,ssd=1",
        ),
        ("scsihw", "virtio-scsi-single"),
        ("smbios1", "uuid=78dde6e5-fd29-4178-a66a-f38dfeec46fc"),
        ("sockets", "1"),
        ("startup", "order=2"),
        (
            "tags",
            "env-lab;lw-lab-unit;lw-managed;owner-loic;role-app-host;tier-lan",
        ),
        ("vmgenid", "cc623af8-7833-4a0a-a6c8-928526d38ea7"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    ObservedVm {
        vmid: 300,
        node: "proxmox".into(),
        name: "app-host".into(),
        status: "running".into(),
        tags: vec![
            "env-lab".into(),
            "lw-lab-unit".into(),
            "lw-managed".into(),
            "owner-loic".into(),
            "role-app-host".into(),
            "tier-lan".into(),
        ],
        lock: None,
        template: false,
        config: Some(config),
        digest: Some("66b6a2e76361808cdd946817748837f8b14b8075".into()),
        pending: BTreeSet::new(),
        tool_snapshots: Vec::new(),
    }
}

fn nightly() -> ObservedBackupJob {
    ObservedBackupJob {
        id: "nightly".into(),
        schedule: Some("02:30".into()),
        storage: Some("local".into()),
        enabled: true,
        mode: Some("snapshot".into()),
        compress: Some("zstd".into()),
        vmid: Some("300".into()),
        all: false,
        prune: "keep-daily=7,keep-monthly=6,keep-weekly=4".into(),
        comment: None,
    }
}

fn observed(vms: Vec<ObservedVm>, jobs: Vec<ObservedBackupJob>) -> Observed {
    Observed {
        node: "proxmox".into(),
        pve_version: Some("9.0.10".into()),
        vms: vms.into_iter().map(|v| (v.vmid, v)).collect(),
        storages: Vec::new(),
        backup_jobs: jobs.into_iter().map(|j| (j.id.clone(), j)).collect(),
        network: None,
        storage: None,
        pci: None,
        requests: 0,
    }
}

fn converged() -> Observed {
    observed(vec![vm300()], vec![nightly()])
}

fn ids(p: &Plan) -> Vec<String> {
    p.actions.iter().map(|a| a.id.to_string()).collect()
}

fn with_config(mut vm: ObservedVm, key: &str, value: &str) -> ObservedVm {
    if let Some(c) = vm.config.as_mut() {
        c.insert(key.into(), value.into());
    }
    vm
}

#[test]
fn empty_node_plans_creates_start_and_backup_job() {
    let p = plan(&spec(&Knobs::default()), &observed(vec![], vec![]));
    assert_eq!(
        ids(&p),
        ["vm-300-create", "vm-300-start", "backup-nightly-create"]
    );
    let create = &p.actions[0];
    assert_eq!(create.kind.to_string(), "vm.create");
    assert_eq!(create.storage_lock.as_deref(), Some("local-lvm"));
    let Op::Vm(VmOp::CreateVm { vmid, params, .. }) = &create.op else {
        panic!("create op: {:?}", create.op)
    };
    assert_eq!(*vmid, 300);
    let get = |k: &str| {
        params
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("memory"), Some("8192"));
    assert_eq!(
        get("tags"),
        Some("env-lab;lw-lab-unit;lw-managed;owner-loic;role-app-host;tier-lan")
    );
    assert_eq!(
        get("scsi0").map(|s| s.starts_with("local-lvm:64")),
        Some(true)
    );
    assert_eq!(p.actions[1].depends_on, ["vm-300-create"]);
    assert_eq!(p.actions[2].depends_on, ["vm-300-create"]);
    assert!(p.held.is_empty(), "{:?}", p.held);
}

#[test]
fn node_as_created_is_a_no_op() {
    let p = plan(&spec(&Knobs::default()), &converged());
    assert!(p.is_empty(), "{:#?}", p.actions);
    assert!(p.held.is_empty(), "{:?}", p.held);
    assert!(p.foreign.is_empty());
}

#[test]
fn tag_order_and_case_never_produce_a_diff() {
    // The spec lists them in another order and case…
    let k = Knobs {
        tags: "[Tier-LAN, owner-loic, ENV-lab, role-app-host]",
        ..Knobs::default()
    };
    // …and the node in yet another order, with commas.
    let vm = with_config(
        vm300(),
        "tags",
        "tier-lan,role-app-host,lw-managed;OWNER-LOIC env-lab LW-LAB-unit",
    );
    let p = plan(&spec(&k), &observed(vec![vm], vec![nightly()]));
    assert!(p.is_empty(), "{:#?}", p.actions);
    // A tag that is really different is a (hotplug) change.
    let vm = with_config(vm300(), "tags", "env-lab;lw-managed;owner-loic;tier-lan");
    let p = plan(
        &spec(&Knobs::default()),
        &observed(vec![vm], vec![nightly()]),
    );
    assert_eq!(ids(&p), ["vm-300-update"]);
    assert_eq!(p.actions[0].changes[0].field, "tags");
    assert_eq!(p.actions[0].risk, Risk::Low);
    assert!(p.actions[0].pre_snapshot.is_none());
    assert_eq!(p.actions[0].downtime_seconds, 0);
}

#[test]
fn generated_macs_and_pve_spellings_never_produce_a_diff() {
    let vm = with_config(
        vm300(),
        "net0",
        "virtio=02:AB:CD:EF:01:23,bridge=vmbr0,firewall=1",
    );
    let vm = with_config(vm, "machine", "pc-q35-10.0+pve1");
    let vm = with_config(vm, "agent", "enabled=1,fstrim_cloned_disks=1");
    let p = plan(
        &spec(&Knobs::default()),
        &observed(vec![vm], vec![nightly()]),
    );
    assert!(p.is_empty(), "{:#?}", p.actions);
    // The bridge is not cosmetic.
    let vm = with_config(
        vm300(),
        "net0",
        "virtio=02:AB:CD:EF:01:23,bridge=vmbr1,firewall=1",
    );
    let p = plan(
        &spec(&Knobs::default()),
        &observed(vec![vm], vec![nightly()]),
    );
    assert_eq!(ids(&p), ["vm-300-update"]);
    assert_eq!(p.actions[0].changes[0].field, "net0");
}

#[test]
fn disk_shrink_is_held_back_and_grow_is_a_resize() {
    let k = Knobs {
        disk: "32G",
        ..Knobs::default()
    };
    let p = plan(&spec(&k), &converged());
    assert!(p.is_empty(), "a shrink was planned: {:#?}", p.actions);
    assert_eq!(p.held.len(), 1, "{:?}", p.held);
    assert_eq!(p.held[0].target, "vm/300 app-host");
    assert!(p.held[0].reason.contains("never shrink"), "{:?}", p.held);

    let k = Knobs {
        disk: "80G",
        ..Knobs::default()
    };
    let p = plan(&spec(&k), &converged());
    assert_eq!(ids(&p), ["vm-300-resize-scsi0"]);
    let Op::Vm(VmOp::ResizeDisk { disk, size, .. }) = &p.actions[0].op else {
        panic!("{:?}", p.actions[0].op)
    };
    assert_eq!((disk.as_str(), size.as_str()), ("scsi0", "80G"));
}

#[test]
fn memory_change_on_running_vm_is_update_and_reboot_with_pre_snapshot() {
    let k = Knobs {
        memory: "12G",
        ..Knobs::default()
    };
    let p = plan(&spec(&k), &converged());
    assert_eq!(ids(&p), ["vm-300-update", "vm-300-reboot"]);
    let u = &p.actions[0];
    assert_eq!(u.kind.to_string(), "vm.update");
    assert_eq!(u.risk, Risk::Medium);
    let snap = u.pre_snapshot.as_deref().expect("pre-snapshot");
    assert!(snap.starts_with("lw-"), "{snap}");
    assert!(u.rollback_hint.contains(snap));
    // Named after the plan, as the runbooks say (`lw-<plan id>`).
    assert_eq!(snap, format!("lw-{}", p.id));
    assert!(
        p.actions[1].rollback_hint.contains(snap),
        "{}",
        p.actions[1].rollback_hint
    );
    assert!(u.downtime_seconds > 0);
    assert!(
        u.expected_downtime.contains("memory"),
        "{}",
        u.expected_downtime
    );
    assert_eq!(u.changes.len(), 1);
    assert_eq!(u.changes[0].field, "memory");
    assert_eq!(u.changes[0].before.as_deref(), Some("8192"));
    assert_eq!(u.changes[0].after.as_deref(), Some("12288"));
    let Op::Vm(VmOp::UpdateVm { set, digest, .. }) = &u.op else {
        panic!("{:?}", u.op)
    };
    assert_eq!(set, &[("memory".to_string(), "12288".to_string())]);
    // The update is bound to the config it was planned from.
    assert_eq!(
        digest.as_deref(),
        Some("66b6a2e76361808cdd946817748837f8b14b8075")
    );
    let r = &p.actions[1];
    assert_eq!(r.kind.to_string(), "vm.reboot");
    assert_eq!(r.depends_on, ["vm-300-update"]);
    assert_eq!(r.risk, Risk::Medium);
}

#[test]
fn memory_change_on_stopped_vm_is_update_without_downtime() {
    let k = Knobs {
        memory: "12G",
        power: "stopped",
        ..Knobs::default()
    };
    let mut vm = vm300();
    vm.status = "stopped".into();
    let p = plan(&spec(&k), &observed(vec![vm], vec![nightly()]));
    assert_eq!(ids(&p), ["vm-300-update"]);
    let u = &p.actions[0];
    assert_eq!(u.risk, Risk::Low);
    assert!(u.pre_snapshot.is_none());
    assert_eq!(u.downtime_seconds, 0);
    assert!(
        u.expected_downtime.starts_with("none"),
        "{}",
        u.expected_downtime
    );
}

#[test]
fn hotplug_change_on_running_vm_has_no_downtime() {
    let vm = with_config(vm300(), "onboot", "0");
    let p = plan(
        &spec(&Knobs::default()),
        &observed(vec![vm], vec![nightly()]),
    );
    assert_eq!(ids(&p), ["vm-300-update"]);
    assert_eq!(p.actions[0].risk, Risk::Low);
    assert!(p.actions[0].pre_snapshot.is_none());
    assert_eq!(p.actions[0].downtime_seconds, 0);
}

#[test]
fn locked_vm_is_held_not_changed() {
    let mut vm = with_config(vm300(), "memory", "4096");
    vm.lock = Some("backup".into());
    let p = plan(
        &spec(&Knobs::default()),
        &observed(vec![vm], vec![nightly()]),
    );
    assert!(p.is_empty(), "{:#?}", p.actions);
    assert!(p.held.iter().any(|b| b.reason.contains("locked (backup)")));
}

#[test]
fn backup_job_prune_and_selection_changes_are_detected() {
    let k = Knobs {
        retention: "{ daily: 7, weekly: 4, monthly: 12 }",
        ..Knobs::default()
    };
    let p = plan(&spec(&k), &converged());
    assert_eq!(ids(&p), ["backup-nightly-update"]);
    let a = &p.actions[0];
    assert_eq!(a.changes.len(), 1, "{:?}", a.changes);
    assert_eq!(a.changes[0].field, "prune-backups");
    assert_eq!(
        a.changes[0].after.as_deref(),
        Some("keep-daily=7,keep-monthly=12,keep-weekly=4")
    );

    let k = Knobs {
        selection: "{ all: true }",
        ..Knobs::default()
    };
    let p = plan(&spec(&k), &converged());
    assert_eq!(ids(&p), ["backup-nightly-update"]);
    let a = &p.actions[0];
    assert_eq!(a.changes[0].field, "selection");
    assert_eq!(a.changes[0].before.as_deref(), Some("300"));
    assert_eq!(a.changes[0].after.as_deref(), Some("all"));

    // Node lists the same VMIDs in another order: no diff.
    let mut job = nightly();
    job.vmid = Some("400, 300".into());
    let two = Knobs {
        selection: "{ vmids: [300, 400] }",
        ..Knobs::default()
    };
    let p = plan(&spec(&two), &observed(vec![vm300()], vec![job]));
    assert!(p.is_empty(), "{:#?}", p.actions);
}

#[test]
fn backup_changes_are_held_when_the_guard_is_off() {
    let k = Knobs {
        retention: "{ daily: 3 }",
        allow_backup_changes: false,
        ..Knobs::default()
    };
    let p = plan(&spec(&k), &converged());
    assert!(p.is_empty(), "{:#?}", p.actions);
    assert_eq!(p.held.len(), 1, "{:?}", p.held);
    assert_eq!(p.held[0].target, "backup-job/nightly");
    assert!(p.held[0].unblock.contains("allowBackupChanges"));
    // Creating the job is held too.
    let k = Knobs {
        allow_backup_changes: false,
        ..Knobs::default()
    };
    let p = plan(&spec(&k), &observed(vec![vm300()], vec![]));
    assert!(p.is_empty(), "{:#?}", p.actions);
    assert!(
        p.held
            .iter()
            .any(|b| b.target == "backup-job/nightly" && b.reason.contains("backup.create"))
    );
}

#[test]
fn foreign_guests_are_listed_and_never_touched() {
    let mut other = vm300();
    other.vmid = 999;
    other.name = "someones-box".into();
    other.tags = vec!["media".into()];
    other.config = None;
    let p = plan(
        &spec(&Knobs::default()),
        &observed(vec![vm300(), other], vec![nightly()]),
    );
    assert!(p.is_empty(), "{:#?}", p.actions);
    assert_eq!(p.foreign.len(), 1);
    assert!(
        p.foreign[0].starts_with("VM 999 `someones-box`"),
        "{:?}",
        p.foreign
    );
    // Created a moment ago: the inventory has no name for it yet, and says so.
    let mut fresh = vm300();
    fresh.vmid = 998;
    fresh.name = String::new();
    fresh.tags = Vec::new();
    fresh.config = None;
    let p = plan(
        &spec(&Knobs::default()),
        &observed(vec![vm300(), fresh], vec![nightly()]),
    );
    assert!(
        p.foreign[0].starts_with("VM 998 (name not reported yet)"),
        "{:?}",
        p.foreign
    );
}

#[test]
fn pending_changes_matching_the_spec_plan_a_reboot() {
    let mut vm = vm300();
    vm.pending.insert("memory".into());
    let p = plan(
        &spec(&Knobs::default()),
        &observed(vec![vm], vec![nightly()]),
    );
    assert_eq!(ids(&p), ["vm-300-reboot"]);
    assert_eq!(p.actions[0].risk, Risk::Medium);
    assert!(p.actions[0].downtime_seconds > 0);
}

#[test]
fn plan_is_deterministic_and_bound_to_the_scan() {
    let k = Knobs {
        memory: "12G",
        ..Knobs::default()
    };
    let a = plan(&spec(&k), &converged());
    let b = plan(&spec(&k), &converged());
    assert_eq!(a, b);
    let mut vm = vm300();
    vm.digest = Some("0000".into());
    let c = plan(&spec(&k), &observed(vec![vm], vec![nightly()]));
    assert_ne!(a.scan_fingerprint, c.scan_fingerprint);
    assert_ne!(a.id, c.id);
    assert_ne!(a.actions[0].pre_snapshot, c.actions[0].pre_snapshot);
}

#[test]
fn power_state_drift_plans_start_or_shutdown() {
    let mut vm = vm300();
    vm.status = "stopped".into();
    let p = plan(
        &spec(&Knobs::default()),
        &observed(vec![vm], vec![nightly()]),
    );
    assert_eq!(ids(&p), ["vm-300-start"]);
    assert_eq!(p.actions[0].risk, Risk::Low);

    let k = Knobs {
        power: "stopped",
        ..Knobs::default()
    };
    let p = plan(&spec(&k), &converged());
    assert_eq!(ids(&p), ["vm-300-shutdown"]);
    assert!(p.actions[0].risk >= Risk::Medium);
    assert!(matches!(
        p.actions[0].op,
        Op::Vm(VmOp::ShutdownVm { vmid: 300, .. })
    ));
}
