//! Room for what a plan allocates: new disks (`scsi0=local-lvm:32` allocates 32 GiB
//! on `local-lvm`) and grown disks, per storage.

use std::collections::BTreeMap;

use super::privileges::Call;
use crate::plan::Plan;

const GIB: u64 = 1 << 30;

/// Bytes of a size as PVE writes it (`32G`, `512M`, `1T`, bare numbers are GiB for
/// new disks); `None` when it is not a size.
fn size_bytes(s: &str, bare_unit: u64) -> Option<u64> {
    let s = s.trim().trim_start_matches('+');
    let (num, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let n: f64 = num.parse().ok()?;
    let mult = match unit {
        "" => bare_unit,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => GIB,
        "T" => 1 << 40,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

/// The storage and size of a new-disk drive value (`local-lvm:32,discard=on`).
fn new_disk(value: &str) -> Option<(String, u64)> {
    let first = value.split(',').next()?;
    let (storage, size) = first.split_once(':')?;
    // `local:iso/x.iso`, `local-lvm:vm-100-disk-0`: existing volumes, nothing new.
    let bytes = size_bytes(size, GIB)?;
    Some((storage.to_string(), bytes))
}

fn is_drive_key(k: &str) -> bool {
    let base = k.trim_end_matches(|c: char| c.is_ascii_digit());
    (base.len() < k.len() && matches!(base, "scsi" | "virtio" | "sata" | "ide"))
        || matches!(k, "efidisk0" | "tpmstate0")
}

/// Bytes each storage must have free for the plan's new and grown disks. A resize
/// counts on the storage of the VM's disks when the plan creates the VM, else on
/// `default_storage` (the spec's `vmStorage`): the plan line names no storage. An
/// absolute size (`size=16G`, after an image import allocated 0) counts whole, a
/// relative one (`+8G`) by its growth: never less than the plan takes.
pub fn planned_bytes(plan: &Plan, default_storage: Option<&str>) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    let mut vm_storage: BTreeMap<String, String> = BTreeMap::new();
    for a in &plan.actions {
        for line in &a.api_calls {
            let Some(call) = Call::parse(line) else {
                continue;
            };
            let create = call.method == "POST" && call.path.ends_with("/qemu");
            let config = call.path.ends_with("/config") && call.method != "GET";
            if create || config {
                for (k, v) in &call.params {
                    if is_drive_key(k)
                        && !v.contains("media=cdrom")
                        && let Some((s, b)) = new_disk(v)
                    {
                        if let Some(vmid) = call.params.get("vmid") {
                            vm_storage.entry(vmid.clone()).or_insert_with(|| s.clone());
                        }
                        *out.entry(s).or_default() += b;
                    }
                }
            } else if call.method == "PUT"
                && call.path.ends_with("/resize")
                && let Some(size) = call.params.get("size")
                && let Some(b) = size_bytes(size, 1)
            {
                let vmid = call.path.split('/').nth(4).unwrap_or("");
                let storage = vm_storage
                    .get(vmid)
                    .cloned()
                    .or_else(|| default_storage.map(String::from));
                if let Some(s) = storage {
                    *out.entry(s).or_default() += b;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size_bytes("32", GIB), Some(32 * GIB));
        assert_eq!(size_bytes("+8G", 1), Some(8 * GIB));
        assert_eq!(size_bytes("512M", 1), Some(512 << 20));
        assert_eq!(size_bytes("iso/x.iso", GIB), None);
        assert_eq!(
            new_disk("local-lvm:32,discard=on"),
            Some(("local-lvm".into(), 32 * GIB))
        );
        assert_eq!(new_disk("local-lvm:vm-100-disk-0"), None);
        assert_eq!(
            new_disk("local-lvm:0,import-from=local:import/x.qcow2"),
            Some(("local-lvm".into(), 0))
        );
    }
}
