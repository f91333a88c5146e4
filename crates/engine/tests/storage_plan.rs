//! Phase 1 storage planned against hand-built scans: the pool over free, used and
//! badly named disks; datasets created, converged or left alone; sanoid; what waits
//! when the node's SSH is missing; how far a migration is carried on from the state
//! recorded on its dataset.

use std::collections::BTreeMap;

use labwright_engine::observed::Observed;
use labwright_engine::plan::{ActionKind, Op, Plan, Risk, plan};
use labwright_engine::storage::{
    HostSide, HostState, MIGRATION_PROP, ObservedDataset, ObservedStorageSide, SanoidState,
    StorageOp,
};

fn spec(devices: &str, extra_pool: &str) -> labwright_spec::Spec {
    let text = format!(
        r#"apiVersion: labwright/v1
kind: Homelab
metadata: {{ name: unit, owner: loic }}
node: {{ name: proxmox, address: 192.168.1.10 }}
phase: 1
safetyGuards:
  executionMode: safe
  managementAccessCidrs: [192.168.1.50/32]
  allowBackupChanges: true
vms:
  - vmid: 300
    name: app-host
    role: app-host
    cores: 2
    memory: 4G
    disks: {{ scsi0: {{ size: 32G }} }}
    nics: {{ net0: {{ bridge: vmbr0 }} }}
storage:
  zfsPools:
    - name: tank
      raidLevel: mirror
      devices: {devices}
      {extra_pool}
  datasets:
    - name: tank/media
      snapshots: {{ schedule: daily, keep: 14 }}
      properties: {{ recordsize: 1M, atime: "off" }}
    - name: tank/appdata
  pveStorages:
    - {{ id: tank-vm, type: zfspool, pool: tank, content: [images] }}
  migrations:
    - {{ name: media, from: "vm:300:/srv/media", to: tank/media }}
"#
    );
    labwright_spec::load_str("unit.yaml", &text, &|_| None)
        .unwrap_or_else(|e| panic!("spec: {:?}", e.diagnostics))
        .spec
}

fn disk(dev: &str, serial: &str, size: u64, used: Option<&str>) -> labwright_pve::api::disks::Disk {
    serde_json::from_value(serde_json::json!({
        "devpath": dev, "size": size, "model": "WDC WD40EFPX-68C6CN0", "serial": serial,
        "wwn": "0x50014ee2aaaa", "used": used, "type": "hdd",
    }))
    .expect("disk")
}

const TB4: u64 = 4_000_787_030_016;

fn observed(side: ObservedStorageSide) -> Observed {
    Observed {
        node: "proxmox".into(),
        pve_version: Some("9.1.3".into()),
        vms: BTreeMap::new(),
        storages: Vec::new(),
        backup_jobs: BTreeMap::new(),
        network: Some(labwright_engine::bridge::ObservedNetwork::with_bridges([
            "vmbr0",
        ])),
        storage: Some(side),
        pci: None,
        requests: 0,
    }
}

fn blank_disks() -> Vec<labwright_pve::api::disks::Disk> {
    vec![
        disk("/dev/sdb", "WD-1", TB4, None),
        disk("/dev/sdc", "WD-2", TB4, None),
    ]
}

fn host(datasets: &[(&str, &[(&str, &str)])]) -> HostSide {
    HostSide::Read(HostState {
        datasets: datasets
            .iter()
            .map(|(n, props)| {
                (
                    n.to_string(),
                    ObservedDataset {
                        mountpoint: format!("/{n}"),
                        mounted: true,
                        props: props
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    },
                )
            })
            .collect(),
        sanoid: SanoidState::default(),
    })
}

fn ids(p: &Plan) -> Vec<String> {
    p.actions.iter().map(|a| a.id.to_string()).collect()
}

const BY_ID: &str = "[/dev/disk/by-id/ata-WDC_WD40EFPX-68C6CN0_WD-1, /dev/disk/by-id/ata-WDC_WD40EFPX-68C6CN0_WD-2]";

#[test]
fn blank_disks_give_a_critical_pool_naming_each_disk() {
    let p = plan(
        &spec(BY_ID, ""),
        &observed(ObservedStorageSide {
            disks: blank_disks(),
            host: host(&[]),
            ..Default::default()
        }),
    );
    let pool = p
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::ZfsPool)
        .expect("pool planned");
    assert_eq!(pool.risk, Risk::Critical);
    assert!(!pool.destroys_data(), "blank disks: nothing to destroy");
    for s in ["serial WD-1", "serial WD-2", "4.0 TB", "ERASED"] {
        assert!(pool.reason.contains(s), "{s} in {}", pool.reason);
    }
    let Op::Storage(StorageOp::CreatePool { devices, .. }) = &pool.op else {
        panic!("pool op")
    };
    assert!(devices[0].starts_with("/dev/disk/by-id/"), "{devices:?}");
    // Datasets wait for the pool, sanoid for the datasets, the entry for the pool.
    let ds = p
        .actions
        .iter()
        .find(|a| a.id == "storage-dataset-tank-media")
        .expect("dataset");
    assert!(ds.depends_on.iter().any(|d| *d == "storage-pool-tank"));
    assert_eq!(
        ds.api_calls,
        vec!["SSH zfs create -o atime=off -o recordsize=1048576 tank/media".to_string()]
    );
    let san = p
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::ZfsSnapshots)
        .expect("sanoid");
    assert!(
        san.api_calls[0].contains("apt-get install -y sanoid"),
        "{:?}",
        san.api_calls
    );
    assert!(
        san.api_calls
            .iter()
            .any(|c| c.contains("/etc/sanoid/sanoid.conf <"))
    );
    assert!(p.notes.iter().all(|n| !n.starts_with("zfs-device-name")));
}

#[test]
fn a_used_disk_is_held_with_the_reason_and_nothing_is_planned_on_it() {
    let mut disks = blank_disks();
    disks[1] = disk("/dev/sdc", "WD-2", TB4, Some("partitions"));
    let p = plan(
        &spec(BY_ID, ""),
        &observed(ObservedStorageSide {
            disks: disks.clone(),
            host: host(&[]),
            ..Default::default()
        }),
    );
    assert!(
        !ids(&p).iter().any(|i| i == "storage-pool-tank"),
        "{:?}",
        ids(&p)
    );
    let h = p
        .held
        .iter()
        .find(|h| h.target == "zfs-pool/tank")
        .expect("held");
    assert!(
        h.reason.contains("/dev/sdc") && h.reason.contains("partitions"),
        "{}",
        h.reason
    );
    assert!(h.unblock.contains("wipeUsedDisks") && h.unblock.contains("--allow-destroy"));
    // Allowed in the spec: planned, and destructive (apply needs --allow-destroy).
    let p = plan(
        &spec(BY_ID, "wipeUsedDisks: true"),
        &observed(ObservedStorageSide {
            disks,
            host: host(&[]),
            ..Default::default()
        }),
    );
    let pool = p
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::ZfsPool)
        .expect("pool");
    assert!(pool.destroys_data());
    assert!(pool.api_calls[0].starts_with("PUT /nodes/proxmox/disks/wipedisk disk=/dev/sdc"));
    assert!(labwright_engine::apply::check_destroy(&p, false).is_err());
    assert!(labwright_engine::apply::check_destroy(&p, true).is_ok());
}

#[test]
fn kernel_names_work_with_a_note_and_unequal_or_missing_disks_are_held() {
    let p = plan(
        &spec("[sdb, sdc]", ""),
        &observed(ObservedStorageSide {
            disks: blank_disks(),
            host: host(&[]),
            ..Default::default()
        }),
    );
    assert!(ids(&p).iter().any(|i| i == "storage-pool-tank"));
    assert!(
        p.notes
            .iter()
            .any(|n| n.starts_with("zfs-device-name") && n.contains("serial WD-1")),
        "{:?}",
        p.notes
    );
    let mut disks = blank_disks();
    disks[1] = disk("/dev/sdc", "WD-2", 2_000_398_934_016, None);
    let p = plan(
        &spec(BY_ID, ""),
        &observed(ObservedStorageSide {
            disks,
            host: host(&[]),
            ..Default::default()
        }),
    );
    let h = p
        .held
        .iter()
        .find(|h| h.target == "zfs-pool/tank")
        .expect("held");
    assert!(h.reason.contains("differ in size"), "{}", h.reason);
    let p = plan(
        &spec("[sdb, sdx]", ""),
        &observed(ObservedStorageSide {
            disks: blank_disks(),
            host: host(&[]),
            ..Default::default()
        }),
    );
    let h = p
        .held
        .iter()
        .find(|h| h.target == "zfs-pool/tank")
        .expect("held");
    assert!(
        h.reason.contains("`sdx`") && h.unblock.contains("serial WD-2"),
        "{h:?}"
    );
}

fn converged_host(media_state: Option<&str>) -> HostSide {
    let mut media: Vec<(&str, &str)> = vec![("atime", "off"), ("recordsize", "1048576")];
    let state = media_state.map(|s| format!("media={s}"));
    if let Some(s) = &state {
        media.push((MIGRATION_PROP, s.as_str()));
    }
    let mut h = host(&[
        ("tank", &[("compression", "lz4")]),
        ("tank/media", &media),
        ("tank/appdata", &[]),
    ]);
    if let HostSide::Read(st) = &mut h {
        st.sanoid = SanoidState {
            installed: true,
            config: None,
            timer_enabled: true,
            timer_active: true,
        };
    }
    h
}

fn pool_there() -> ObservedStorageSide {
    ObservedStorageSide {
        disks: vec![
            disk("/dev/sdb", "WD-1", TB4, Some("ZFS")),
            disk("/dev/sdc", "WD-2", TB4, Some("ZFS")),
        ],
        pools: vec![
            serde_json::from_value(serde_json::json!({"name": "tank", "health": "ONLINE"}))
                .expect("pool"),
        ],
        ..Default::default()
    }
}

#[test]
fn datasets_converge_by_property_and_sanoid_only_writes_what_differs() {
    let mut side = pool_there();
    side.host = converged_host(Some("switched"));
    let p = plan(&spec(BY_ID, ""), &observed(side.clone()));
    // Pool and datasets are in place; sanoid's config is missing (None) → written only.
    assert!(
        !ids(&p)
            .iter()
            .any(|i| i.starts_with("storage-pool") || i.starts_with("storage-dataset")),
        "{:?}",
        ids(&p)
    );
    let san = p
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::ZfsSnapshots)
        .expect("sanoid");
    assert_eq!(san.api_calls.len(), 1, "{:?}", san.api_calls);
    assert!(
        san.api_calls[0].starts_with("SSH install -D -m 0644 /dev/stdin /etc/sanoid/sanoid.conf")
    );
    // A property changed by hand comes back with `zfs set`.
    if let HostSide::Read(st) = &mut side.host
        && let Some(d) = st.datasets.get_mut("tank/media")
    {
        d.props.insert("recordsize".into(), "131072".into());
    }
    let p = plan(&spec(BY_ID, ""), &observed(side));
    let ds = p
        .actions
        .iter()
        .find(|a| a.id == "storage-dataset-tank-media")
        .expect("converge");
    assert_eq!(
        ds.api_calls,
        vec!["SSH zfs set recordsize=1048576 tank/media".to_string()]
    );
    assert_eq!(ds.changes[0].before.as_deref(), Some("131072"));
}

#[test]
fn without_ssh_datasets_and_migrations_wait_and_say_why() {
    let mut side = pool_there();
    side.host = HostSide::Unavailable {
        why: "no SSH target for the node".into(),
    };
    let p = plan(&spec(BY_ID, ""), &observed(side));
    for t in [
        "zfs-dataset/tank/media",
        "zfs-dataset/tank/appdata",
        "migration/media",
    ] {
        let h = p
            .held
            .iter()
            .find(|h| h.target == t)
            .unwrap_or_else(|| panic!("{t} held: {:?}", p.held));
        assert!(h.reason.contains("no SSH target"), "{}", h.reason);
    }
    assert!(
        !ids(&p)
            .iter()
            .any(|i| i.starts_with("storage-migrate") || i.starts_with("storage-mapping"))
    );
    // The guest is not given a share whose dataset is not known to be there.
    assert!(
        !ids(&p).iter().any(|i| i.starts_with("vm-300")),
        "{:?}",
        ids(&p)
    );
}

#[test]
fn a_migration_carries_on_from_the_state_recorded_on_its_dataset() {
    let count = |state: Option<&str>| {
        let mut side = pool_there();
        side.host = converged_host(state);
        let p = plan(&spec(BY_ID, ""), &observed(side));
        let kinds: Vec<ActionKind> = p
            .actions
            .iter()
            .filter(|a| {
                matches!(
                    a.kind,
                    ActionKind::MigrationCopy | ActionKind::MigrationSwitch
                )
            })
            .map(|a| a.kind)
            .collect();
        (kinds, p)
    };
    let (k, p) = count(None);
    assert_eq!(
        k,
        vec![ActionKind::MigrationCopy, ActionKind::MigrationSwitch]
    );
    let switch = p
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::MigrationSwitch)
        .expect("switch");
    assert_eq!(switch.risk, Risk::Medium);
    assert!(switch.pre_snapshot.is_some());
    assert!(
        switch
            .depends_on
            .iter()
            .any(|d| *d == "storage-migrate-media-copy")
    );
    assert!(
        switch
            .api_calls
            .iter()
            .any(|c| c == "AGENT 300 mv /srv/media /srv/media.lw-migrated")
    );
    assert_eq!(count(Some("copied")).0, vec![ActionKind::MigrationSwitch]);
    assert!(count(Some("switched")).0.is_empty());
}

#[test]
fn a_kept_source_goes_only_when_asked_checked_and_destructive() {
    let spec_with = |remove: bool| {
        let t = if remove { "removeSource: true, " } else { "" };
        let text = format!(
            r#"apiVersion: labwright/v1
kind: Homelab
metadata: {{ name: unit, owner: loic }}
node: {{ name: proxmox, address: 192.168.1.10 }}
phase: 1
safetyGuards:
  executionMode: safe
  managementAccessCidrs: [192.168.1.50/32]
vms:
  - vmid: 300
    name: app-host
    role: app-host
    cores: 2
    memory: 4G
    disks: {{ scsi0: {{ size: 32G }} }}
    nics: {{ net0: {{ bridge: vmbr0 }} }}
storage:
  zfsPools:
    - {{ name: tank, raidLevel: mirror, devices: {BY_ID} }}
  datasets:
    - name: tank/media
    - name: tank/appdata
  migrations:
    - {{ name: media, from: "vm:300:/srv/app/media", to: tank/media }}
    - {{ name: app, {t}from: "vm:300:/srv/app", to: tank/appdata }}
"#
        );
        labwright_spec::load_str("unit.yaml", &text, &|_| None)
            .unwrap_or_else(|e| panic!("spec: {:?}", e.diagnostics))
            .spec
    };
    let side = |app: &str, media: &str| {
        let mut s = pool_there();
        let app_p = format!("app={app}");
        let media_p = format!("media={media}");
        s.host = host(&[
            ("tank", &[]),
            ("tank/media", &[(MIGRATION_PROP, media_p.as_str())]),
            ("tank/appdata", &[(MIGRATION_PROP, app_p.as_str())]),
        ]);
        s
    };
    // Not asked: nothing to do once switched.
    let p = plan(&spec_with(false), &observed(side("switched", "switched")));
    assert!(
        !ids(&p).iter().any(|i| i.contains("remove-source")),
        "{:?}",
        ids(&p)
    );
    // Asked for the outer folder while the inner kept folder (inside it) stays: held.
    let p = plan(&spec_with(true), &observed(side("switched", "switched")));
    assert!(
        !ids(&p).iter().any(|i| i.contains("remove-source")),
        "{:?}",
        ids(&p)
    );
    let h = p
        .held
        .iter()
        .find(|h| h.target == "migration/app")
        .expect("held");
    assert!(h.reason.contains("media"), "{}", h.reason);
    // The inner one removed already: the outer goes, destructively, after a check.
    let p = plan(&spec_with(true), &observed(side("switched", "removed")));
    let a = p
        .actions
        .iter()
        .find(|a| a.kind == ActionKind::MigrationRemoveSource)
        .expect("remove planned");
    assert!(a.destroys_data() && a.risk == Risk::High);
    assert_eq!(
        a.api_calls[0],
        "SSH cat /var/lib/labwright/migrations/app.sha256"
    );
    assert!(
        a.api_calls
            .iter()
            .any(|c| c == "AGENT 300 rm -rf /srv/app.lw-migrated")
    );
    assert!(labwright_engine::apply::check_destroy(&p, false).is_err());
    // Removed: in place.
    let p = plan(&spec_with(true), &observed(side("removed", "removed")));
    assert!(
        !ids(&p).iter().any(|i| i.starts_with("storage-migrate")),
        "{:?}",
        ids(&p)
    );
}
