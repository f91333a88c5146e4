//! `ssd-backup-space`: backups on the system SSD. At `check` time the figure is an
//! upper bound from the spec (disk sizes × copies kept); `plan` repeats the warning
//! with the storage's real free space.

use labwright_spec::Diagnostic;
use labwright_spec::model::{BackupSelection, Spec};

use crate::{Ctx, root};

/// Storages that live on the system SSD in a fresh PVE install, plus the node's
/// declared VM and ISO storages.
pub fn is_system_ssd_storage(spec: &Spec, storage: &str) -> bool {
    let declared_elsewhere = spec
        .storage
        .as_ref()
        .is_some_and(|s| s.pve_storages.iter().any(|p| p.id == storage));
    if declared_elsewhere {
        return false;
    }
    storage == "local"
        || storage == "local-lvm"
        || spec.node.vm_storage.as_deref() == Some(storage)
        || spec.node.iso_storage.as_deref() == Some(storage)
}

/// Bytes a job's retention can hold at most, assuming full (uncompressed) copies:
/// (copies kept, bytes of disks per copy).
pub fn retained_bytes_upper_bound(
    spec: &Spec,
    job: &labwright_spec::model::BackupJob,
) -> (u64, u64) {
    let guests: u64 = spec
        .vms
        .iter()
        .filter(|v| match &job.selection {
            BackupSelection::All(all) => *all,
            BackupSelection::Vmids(ids) => ids.contains(&v.vmid),
        })
        .flat_map(|v| {
            v.disks
                .values()
                .filter(|d| d.backup)
                .map(|d| d.size.bytes())
        })
        .sum();
    let r = &job.retention;
    let copies = [r.last, r.daily, r.weekly, r.monthly, r.yearly]
        .iter()
        .map(|c| u64::from(c.unwrap_or(0)))
        .sum::<u64>()
        .max(1);
    (copies, guests)
}

pub(crate) fn run(ctx: &mut Ctx<'_>) {
    let spec = ctx.spec();
    let Some(b) = &spec.backups else { return };
    for (i, job) in b.jobs.iter().enumerate() {
        if !is_system_ssd_storage(spec, &job.storage) {
            continue;
        }
        let moved = spec.storage.as_ref().is_some_and(|s| {
            s.migrations
                .iter()
                .any(|m| m.from == format!("backup-job:{}", job.id) && m.phase <= spec.phase)
        });
        if moved {
            continue;
        }
        let (copies, per_copy) = retained_bytes_upper_bound(spec, job);
        let gib = |b: u64| b / (1024 * 1024 * 1024);
        ctx.emit(
            Diagnostic::warning(
                "ssd-backup-space",
                format!(
                    "backup job `{}` writes to `{}` on the system SSD, the disk its guests live on: {copies} copies kept × {} GiB of disks = up to {} GiB before compression",
                    job.id,
                    job.storage,
                    gib(per_copy),
                    gib(per_copy.saturating_mul(copies))
                ),
            )
            .label("backups on the SSD")
            .help("acceptable as a phase-0 placeholder; move it to `tank` in phase 1 (a `backup-job:` migration). `plan` re-checks against the storage's free space"),
            &root().key("backups").key("jobs").index(i).key("storage"),
        );
    }
}
