//! The ZFS pool kind. Creating a pool erases its disks, so the action is critical,
//! names every disk by model, serial and size, and a disk that shows any use is held
//! unless the spec allows wiping it (and apply then also needs `--allow-destroy`).

use labwright_pve::api::disks::Disk;
use labwright_spec::model::{RaidLevel, ZfsPool};

use super::{StorageOp, tb};
use crate::action::{Action, ActionId, ActionKind, Change, Held, Risk};
use crate::op::Op;
use crate::plan::{PlanCx, PlanOut};

/// The disk a spec device names: a by-id path (matched on serial or WWN, so it
/// works before udev names are known), `serial:X`, or a kernel name (`sdb`).
pub(crate) fn resolve<'a>(dev: &str, disks: &'a [Disk]) -> Option<&'a Disk> {
    if let Some(serial) = dev.strip_prefix("serial:") {
        return disks.iter().find(|d| d.serial.as_deref() == Some(serial));
    }
    if let Some(id) = dev.strip_prefix("/dev/disk/by-id/") {
        return disks.iter().find(|d| {
            let serial_match = d
                .serial
                .as_deref()
                .is_some_and(|s| !s.is_empty() && id.ends_with(&format!("_{s}")));
            let wwn_match = d
                .wwn
                .as_deref()
                .is_some_and(|w| !w.is_empty() && id == format!("wwn-{w}"));
            serial_match || wwn_match
        });
    }
    let path = if dev.starts_with("/dev/") {
        dev.to_string()
    } else {
        format!("/dev/{dev}")
    };
    disks.iter().find(|d| d.devpath == path)
}

/// A kernel name (`sdb`, `/dev/sdb`): it can change across boots.
pub(crate) fn is_kernel_name(dev: &str) -> bool {
    !dev.starts_with("/dev/disk/by-") && !dev.starts_with("serial:")
}

pub(crate) fn describe(d: &Disk) -> String {
    format!(
        "{} ({}, serial {}, {})",
        d.devpath,
        d.model.as_deref().unwrap_or("unknown model"),
        d.serial.as_deref().unwrap_or("unknown"),
        d.size.map_or_else(|| "size unknown".into(), tb)
    )
}

fn raid_name(r: RaidLevel) -> &'static str {
    match r {
        RaidLevel::Single => "single",
        RaidLevel::Mirror => "mirror",
        RaidLevel::Raidz => "raidz",
        RaidLevel::Raidz2 => "raidz2",
    }
}

pub(crate) fn plan(cx: &PlanCx<'_>, out: &mut PlanOut) {
    let Some(st) = &cx.spec.storage else { return };
    let Some(side) = cx.observed.storage.as_ref() else {
        return;
    };
    for (i, pool) in st.zfs_pools.iter().enumerate() {
        if pool.phase > cx.spec.phase {
            continue;
        }
        let path = super::spec_path("zfsPools", i);
        out.own(&path);
        if side.pool(&pool.name).is_some() {
            continue;
        }
        match pool_action(cx, pool, &side.disks, out) {
            Ok(mut a) => {
                a.elements.push(path);
                out.actions.push(a);
            }
            Err(mut h) => {
                h.elements.push(path);
                out.held.push(h);
            }
        }
    }
}

fn pool_action(
    cx: &PlanCx<'_>,
    pool: &ZfsPool,
    disks: &[Disk],
    out: &mut PlanOut,
) -> Result<Action, Held> {
    let target = format!("zfs-pool/{}", pool.name);
    let hold = |reason: String, way: String| Held::new(target.clone(), reason, way);
    let mut chosen: Vec<&Disk> = Vec::new();
    let mut wipe = Vec::new();
    for dev in &pool.devices {
        let Some(d) = resolve(dev, disks) else {
            let have: Vec<String> = disks.iter().map(describe).collect();
            return Err(hold(
                format!("no disk on the node matches `{dev}`"),
                format!(
                    "name a disk the node has (by /dev/disk/by-id/… or serial:…); it has: {}",
                    if have.is_empty() {
                        "no disks PVE lists".to_string()
                    } else {
                        have.join("; ")
                    }
                ),
            ));
        };
        if chosen.iter().any(|c| c.devpath == d.devpath) {
            return Err(hold(
                format!("`{dev}` names {} a second time", d.devpath),
                "list each disk once".into(),
            ));
        }
        if !d.is_unused() {
            let what = d.used.clone().unwrap_or_else(|| "mounted".into());
            if !pool.wipe_used_disks {
                return Err(hold(
                    format!(
                        "disk {} is in use ({what}); creating the pool would destroy what is on it",
                        describe(d)
                    ),
                    "if its data can go, set `wipeUsedDisks: true` on the pool and apply with --allow-destroy; otherwise pick another disk".into(),
                ));
            }
            wipe.push(d.devpath.clone());
        }
        if is_kernel_name(dev) {
            out.notes.push(format!(
                "zfs-device-name: pool `{}` names `{dev}`; kernel names can change across boots — prefer /dev/disk/by-id/… (this disk: {})",
                pool.name,
                describe(d)
            ));
        }
        chosen.push(d);
    }
    let min = match pool.raid_level {
        RaidLevel::Single => 1,
        RaidLevel::Mirror => 2,
        RaidLevel::Raidz => 3,
        RaidLevel::Raidz2 => 4,
    };
    if chosen.len() < min {
        return Err(hold(
            format!(
                "a {} needs at least {min} disks, the spec names {}",
                raid_name(pool.raid_level),
                chosen.len()
            ),
            "add disks or choose another raidLevel".into(),
        ));
    }
    let sizes: Vec<u64> = chosen.iter().filter_map(|d| d.size).collect();
    if let (Some(lo), Some(hi)) = (sizes.iter().min(), sizes.iter().max())
        && pool.raid_level != RaidLevel::Single
        && (hi - lo) * 100 > *hi
    {
        return Err(hold(
            format!(
                "the disks differ in size ({} vs {}): a {} only uses the smallest size on each",
                tb(*lo),
                tb(*hi),
                raid_name(pool.raid_level)
            ),
            "use disks of (near-)equal size".into(),
        ));
    }
    let devices: Vec<String> = pool
        .devices
        .iter()
        .zip(&chosen)
        .map(|(dev, d)| {
            if dev.starts_with("/dev/disk/by-id/") {
                dev.clone()
            } else {
                d.devpath.clone()
            }
        })
        .collect();
    let compression = crate::canon::enum_name(&pool.compression);
    let named: Vec<String> = chosen.iter().map(|d| describe(d)).collect();
    let mut changes = vec![
        Change::added("raidlevel", raid_name(pool.raid_level)),
        Change::added("ashift", pool.ashift.to_string()),
        Change::added("compression", compression.clone()),
    ];
    for (n, d) in chosen.iter().enumerate() {
        changes.push(Change::added(format!("disk{n}"), describe(d)));
    }
    let mut a = Action::new(
        ActionId::storage(format!("pool-{}", pool.name)),
        ActionKind::ZfsPool,
        target.clone(),
        Op::Storage(StorageOp::CreatePool {
            node: cx.want.node.clone(),
            name: pool.name.clone(),
            raidlevel: raid_name(pool.raid_level).into(),
            devices,
            ashift: pool.ashift,
            compression,
            wipe: wipe.clone(),
        }),
    );
    a.risk = Risk::Critical;
    a.phase = pool.phase.0;
    a.changes = changes;
    a.reason = format!(
        "creates ZFS pool `{}` ({}, ashift {}) on {}: EVERYTHING ON THESE DISKS IS ERASED{}",
        pool.name,
        raid_name(pool.raid_level),
        pool.ashift,
        named.join(" and "),
        if wipe.is_empty() {
            String::new()
        } else {
            format!(
                " (in use now and wiped first: {}; needs --allow-destroy)",
                wipe.join(", ")
            )
        }
    );
    a.rollback_hint = format!(
        "destroy the pool (Node → Disks → ZFS → {} → Destroy); the disks held nothing labwright knows of",
        pool.name
    );
    a.expected_downtime = "none (no guest is touched)".into();
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(dev: &str, serial: &str, used: Option<&str>) -> Disk {
        serde_json::from_value(serde_json::json!({
            "devpath": dev, "size": 4_000_787_030_016u64, "model": "WDC WD40EFPX-68C6CN0",
            "serial": serial, "wwn": format!("0x5000{serial}"), "used": used,
        }))
        .expect("disk")
    }

    #[test]
    fn devices_resolve_by_id_serial_and_name() {
        let disks = vec![
            disk("/dev/sdb", "WD-1", None),
            disk("/dev/sdc", "WD-2", None),
        ];
        let by_id = "/dev/disk/by-id/ata-WDC_WD40EFPX-68C6CN0_WD-2";
        assert_eq!(
            resolve(by_id, &disks).map(|d| d.devpath.as_str()),
            Some("/dev/sdc")
        );
        assert_eq!(
            resolve("serial:WD-1", &disks).map(|d| d.devpath.as_str()),
            Some("/dev/sdb")
        );
        assert_eq!(
            resolve("sdb", &disks).map(|d| d.devpath.as_str()),
            Some("/dev/sdb")
        );
        assert_eq!(
            resolve("/dev/sdc", &disks).map(|d| d.devpath.as_str()),
            Some("/dev/sdc")
        );
        assert!(resolve("/dev/disk/by-id/ata-X_WD-3", &disks).is_none());
        assert!(resolve("/dev/disk/by-id/wwn-0x5000WD-1", &disks).is_some());
        assert!(is_kernel_name("sdb") && !is_kernel_name(by_id));
    }
}
