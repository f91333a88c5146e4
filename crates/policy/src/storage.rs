//! Phase 1 storage rules: pool layouts (`zfs-layout`), stable device names
//! (`zfs-device-name`), storage paths and content (`storage-path`), backups kept off
//! the guests' storage (`backup-target`) and one migration per dataset
//! (`migration-target`). Disk sizes and use are only known on the node: `plan` checks
//! those.

use labwright_spec::Diagnostic;
use labwright_spec::model::{PveStorageType, RaidLevel};

use crate::{Ctx, root};

fn mountpoint(spec: &labwright_spec::Spec, dataset: &str) -> String {
    spec.storage
        .as_ref()
        .and_then(|s| s.datasets.iter().find(|d| d.name == dataset))
        .and_then(|d| d.properties.get("mountpoint").cloned())
        .unwrap_or_else(|| format!("/{dataset}"))
}

pub(crate) fn run(ctx: &mut Ctx<'_>) {
    let spec = ctx.spec();
    let Some(st) = &spec.storage else { return };
    let sp = root().key("storage");
    let mut seen_devices: Vec<(String, String)> = Vec::new();
    for (i, p) in st.zfs_pools.iter().enumerate() {
        let pp = sp.key("zfsPools").index(i);
        let min = match p.raid_level {
            RaidLevel::Single => 1,
            RaidLevel::Mirror => 2,
            RaidLevel::Raidz => 3,
            RaidLevel::Raidz2 => 4,
        };
        if p.devices.len() < min {
            ctx.emit(
                Diagnostic::error(
                    "zfs-layout",
                    format!(
                        "pool `{}` is a {} of {} device(s); it needs at least {min}",
                        p.name,
                        crate::enum_name(&p.raid_level),
                        p.devices.len()
                    ),
                )
                .label("too few devices")
                .help("list every disk of the pool under `devices`"),
                &pp.key("devices"),
            );
        }
        if !(9..=16).contains(&p.ashift) {
            ctx.emit(
                Diagnostic::error("zfs-layout", format!("ashift {} is outside 9–16", p.ashift))
                    .label("ashift")
                    .help("use 12 for 4K-sector disks (almost every HDD and SSD today)"),
                &pp.key("ashift"),
            );
        }
        for (j, dev) in p.devices.iter().enumerate() {
            let dp = pp.key("devices").index(j);
            let norm = dev.trim_start_matches("/dev/").to_string();
            if let Some((_, other)) = seen_devices.iter().find(|(d, _)| *d == norm) {
                ctx.emit(
                    Diagnostic::error(
                        "zfs-layout",
                        format!("`{dev}` is already a device of pool `{other}`"),
                    )
                    .label("listed twice")
                    .help("a disk belongs to one pool, once"),
                    &dp,
                );
            }
            seen_devices.push((norm, p.name.clone()));
            let stable = dev.starts_with("/dev/disk/by-id/")
                || dev.starts_with("/dev/disk/by-path/")
                || dev.starts_with("serial:");
            if !stable {
                ctx.emit(
                    Diagnostic::warning(
                        "zfs-device-name",
                        format!("`{dev}` is a kernel name: it can point at another disk after a reboot or when a disk is added"),
                    )
                    .label("unstable name")
                    .help("write `/dev/disk/by-id/…` (ls -l /dev/disk/by-id on the node) or `serial:<serial>`; `labwright plan` names each disk with its serial"),
                    &dp,
                );
            }
        }
    }
    let pools: Vec<&str> = st.zfs_pools.iter().map(|p| p.name.as_str()).collect();
    for (i, s) in st.pve_storages.iter().enumerate() {
        let ep = sp.key("pveStorages").index(i);
        let supported: &[&str] = match s.kind {
            PveStorageType::Dir => &[
                "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import",
            ],
            PveStorageType::Zfspool => &["images", "rootdir"],
            PveStorageType::Pbs => &["backup"],
        };
        for (j, c) in s.content.iter().enumerate() {
            if !supported.contains(&c.as_str()) {
                ctx.emit(
                    Diagnostic::error(
                        "storage-path",
                        format!("a {} storage cannot hold `{c}`", crate::enum_name(&s.kind)),
                    )
                    .label("unsupported content")
                    .help(format!(
                        "content types it supports: {}",
                        supported.join(", ")
                    )),
                    &ep.key("content").index(j),
                );
            }
        }
        match s.kind {
            PveStorageType::Dir => {
                let Some(path) = &s.path else {
                    ctx.emit_at_key(
                        Diagnostic::error("storage-path", "a dir storage needs a `path`")
                            .label("no path")
                            .help("e.g. `path: /tank/backups`"),
                        &ep,
                    );
                    continue;
                };
                let on_pool = pools
                    .iter()
                    .any(|p| path == &format!("/{p}") || path.starts_with(&format!("/{p}/")));
                let under_dataset = st.datasets.iter().any(|d| {
                    let mp = mountpoint(spec, &d.name);
                    path == &mp || path.starts_with(&format!("{mp}/"))
                });
                if on_pool && !under_dataset {
                    ctx.emit(
                        Diagnostic::error(
                            "storage-path",
                            format!("`{path}` lies on a pool but under no declared dataset: nothing would be mounted there"),
                        )
                        .label("not a dataset's folder")
                        .help("declare the dataset under `storage.datasets` (its mountpoint is /pool/name)"),
                        &ep.key("path"),
                    );
                }
            }
            PveStorageType::Zfspool if s.pool.is_none() => ctx.emit_at_key(
                Diagnostic::error("storage-path", "a zfspool storage needs a `pool`")
                    .label("no pool")
                    .help("e.g. `pool: tank` or `pool: tank/vm`"),
                &ep,
            ),
            _ => {}
        }
    }
    // Backups do not go where the guests live.
    let guest_storages: Vec<String> = {
        let mut v: Vec<String> = spec
            .vms
            .iter()
            .flat_map(|vm| vm.disks.values().filter_map(|d| d.storage.clone()))
            .collect();
        v.push(
            spec.node
                .vm_storage
                .clone()
                .unwrap_or_else(|| "local-lvm".into()),
        );
        v
    };
    for (i, job) in spec.backups.iter().flat_map(|b| b.jobs.iter()).enumerate() {
        let moved = st
            .migrations
            .iter()
            .enumerate()
            .find(|(_, m)| m.from == format!("backup-job:{}", job.id));
        let (target, path) = match moved {
            Some((k, m)) => (m.to.clone(), sp.key("migrations").index(k).key("to")),
            None => (
                job.storage.clone(),
                root().key("backups").key("jobs").index(i).key("storage"),
            ),
        };
        if guest_storages.contains(&target) {
            ctx.emit(
                Diagnostic::error(
                    "backup-target",
                    format!("backup job `{}` writes to `{target}`, the storage its guests' disks are on: a lost disk takes both", job.id),
                )
                .label("same storage as the guests")
                .help("point backups at another storage (a dataset on the HDD pool, PBS)"),
                &path,
            );
        }
    }
    let mut targets: Vec<(&str, &str)> = Vec::new();
    for (i, m) in st.migrations.iter().enumerate() {
        if !m.from.starts_with("vm:") {
            continue;
        }
        if let Some((_, other)) = targets.iter().find(|(t, _)| *t == m.to) {
            ctx.emit(
                Diagnostic::error(
                    "migration-target",
                    format!(
                        "migrations `{other}` and `{}` both move into `{}`",
                        m.name, m.to
                    ),
                )
                .label("second migration into this dataset")
                .help("give each migrated folder its own dataset"),
                &sp.key("migrations").index(i).key("to"),
            );
        }
        targets.push((m.to.as_str(), m.name.as_str()));
    }
}
