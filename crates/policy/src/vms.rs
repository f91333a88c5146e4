//! VM rules: `vm-standards`, `vmid-unique`, `vmid-stable`, `slot-key`,
//! `bootstrap-source`, `vm-resources`.

use std::collections::HashMap;

use labwright_spec::Diagnostic;
use labwright_spec::model::{DiskCache, NicModel, OsSource};

use crate::{Ctx, root};

/// The seeds' VMID plan: role → VMID.
pub(crate) const STABLE_VMIDS: &[(&str, u32)] = &[
    ("edge-gateway", 100),
    ("firewall-router", 150),
    ("monitoring", 200),
    ("app-host", 300),
    ("home-assistant", 400),
    ("pbs", 700),
];

/// Valid disk slots and their index ranges (PVE 9).
const DISK_BUSES: &[(&str, u32)] = &[("scsi", 30), ("virtio", 15), ("sata", 5), ("ide", 3)];

pub(crate) fn run(ctx: &mut Ctx<'_>) {
    let spec = ctx.spec();
    let mut by_vmid: HashMap<u32, usize> = HashMap::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, vm) in spec.vms.iter().enumerate() {
        let vp = root().key("vms").index(i);

        // vmid-unique
        if !(100..=999_999_999).contains(&vm.vmid) {
            ctx.emit(
                Diagnostic::error(
                    "vmid-unique",
                    format!("VMID {} is outside PVE's range 100–999999999", vm.vmid),
                )
                .label("invalid VMID")
                .help("pick a VMID of 100 or more (the lab uses 100, 150, 300, 400)"),
                &vp.key("vmid"),
            );
        }
        if let Some(first) = by_vmid.insert(vm.vmid, i) {
            ctx.emit(
                Diagnostic::error(
                    "vmid-unique",
                    format!(
                        "VMID {} is already used by `{}` (vms[{first}])",
                        vm.vmid, spec.vms[first].name
                    ),
                )
                .label("duplicate VMID")
                .help("every VM needs its own VMID"),
                &vp.key("vmid"),
            );
        }
        if let Some(first) = by_name.insert(vm.name.as_str(), i) {
            ctx.emit(
                Diagnostic::error(
                    "vmid-unique",
                    format!("VM name `{}` is already used by vms[{first}]", vm.name),
                )
                .label("duplicate name")
                .help("names identify VMs in the matrix, router and routes; make them unique"),
                &vp.key("name"),
            );
        }
        if !valid_dns_name(&vm.name) {
            ctx.emit(
                Diagnostic::error(
                    "vm-resources",
                    format!(
                        "VM name `{}` is not a valid DNS name, which PVE requires",
                        vm.name
                    ),
                )
                .label("invalid name")
                .help("use lowercase letters, digits and `-` (e.g. `app-host`)"),
                &vp.key("name"),
            );
        }

        // vmid-stable
        let role = vm.role.as_deref().unwrap_or(&vm.name);
        if let Some((_, want)) = STABLE_VMIDS.iter().find(|(r, _)| *r == role)
            && *want != vm.vmid
        {
            ctx.emit(
                Diagnostic::error(
                    "vmid-stable",
                    format!("`{role}` must be VMID {want}, not {}", vm.vmid),
                )
                .label("unstable VMID")
                .help(format!(
                    "the lab's VMID plan fixes {role} at {want}; backups, firewall rules and runbooks rely on it"
                )),
                &vp.key("vmid"),
            );
        } else if let Some((owner, _)) = STABLE_VMIDS.iter().find(|(_, id)| *id == vm.vmid)
            && *owner != role
        {
            ctx.emit(
                Diagnostic::error(
                    "vmid-stable",
                    format!(
                        "VMID {} is reserved for `{owner}`, but this VM is `{role}`",
                        vm.vmid
                    ),
                )
                .label("reserved VMID")
                .help(format!(
                    "give `{role}` another VMID, or set `role: {owner}` if this is that VM"
                )),
                &vp.key("vmid"),
            );
        }

        // vm-resources
        if vm.cores == 0 || vm.cores > 512 {
            ctx.emit(
                Diagnostic::error("vm-resources", format!("cores: {} is not 1–512", vm.cores))
                    .label("invalid core count"),
                &vp.key("cores"),
            );
        }
        if vm.memory.0 < 16 {
            ctx.emit(
                Diagnostic::error(
                    "vm-resources",
                    format!(
                        "memory {} MiB is below PVE's minimum of 16 MiB",
                        vm.memory.0
                    ),
                )
                .label("too little memory")
                .help("memory is in MiB when written as a number: 2048 or 2G"),
                &vp.key("memory"),
            );
        }

        // vm-standards
        if !vm.scsihw.is_virtio() {
            ctx.emit(
                Diagnostic::error(
                    "vm-standards",
                    format!(
                        "SCSI controller `{}` is not VirtIO SCSI",
                        vm.scsihw.as_pve()
                    ),
                )
                .label("not VirtIO")
                .help("use `scsihw: virtio-scsi-single` (the lab's standard)"),
                &vp.key("scsihw"),
            );
        }
        if !vm.agent {
            ctx.emit(
                Diagnostic::warning(
                    "vm-standards",
                    format!("guest agent disabled on VM {}", vm.vmid),
                )
                .label("agent off")
                .help("enable `agent: true` unless the guest cannot run the QEMU guest agent; validate and clean shutdowns depend on it"),
                &vp.key("agent"),
            );
        }
        if vm.disks.is_empty() {
            ctx.emit_at_key(
                Diagnostic::error("vm-resources", format!("VM {} has no disk", vm.vmid))
                    .help("declare at least `disks: { scsi0: { size: 32G } }`"),
                &vp,
            );
        }
        for (slot, disk) in &vm.disks {
            let dp = vp.key("disks").key(slot.clone());
            match parse_slot(slot, DISK_BUSES) {
                None => ctx.emit_at_key(
                    Diagnostic::error("slot-key", format!("`{slot}` is not a disk slot"))
                        .label("unknown slot")
                        .help("disk slots are scsi0–scsi30 (use these), virtio0–15, sata0–5, ide0–3; efidisk0 comes from `bios: ovmf`"),
                    &dp,
                ),
                Some(bus) if bus != "scsi" => ctx.emit_at_key(
                    Diagnostic::error(
                        "vm-standards",
                        format!("disk `{slot}` is on the {bus} bus, not VirtIO SCSI"),
                    )
                    .label("not on SCSI")
                    .help(format!("rename the slot to `scsi{}`", slot.trim_start_matches(bus))),
                    &dp,
                ),
                Some(_) => {}
            }
            if disk.cache != DiskCache::None {
                ctx.emit(
                    Diagnostic::error(
                        "vm-standards",
                        format!(
                            "disk `{slot}` uses cache={}, the standard is cache=none",
                            crate::enum_name(&disk.cache)
                        ),
                    )
                    .label("not cache=none")
                    .help("remove `cache:` or set `cache: none`"),
                    &dp.key("cache"),
                );
            }
            if disk.size.bytes() < 1024 * 1024 {
                ctx.emit(
                    Diagnostic::error("vm-resources", format!("disk `{slot}` is smaller than 1M"))
                        .label("too small"),
                    &dp.key("size"),
                );
            }
        }
        for (slot, nic) in &vm.nics {
            let np = vp.key("nics").key(slot.clone());
            if parse_slot(slot, &[("net", 31)]).is_none() {
                ctx.emit_at_key(
                    Diagnostic::error("slot-key", format!("`{slot}` is not a NIC slot"))
                        .label("unknown slot")
                        .help("NIC slots are net0–net31"),
                    &np,
                );
            }
            if nic.model != NicModel::Virtio {
                ctx.emit(
                    Diagnostic::error(
                        "vm-standards",
                        format!(
                            "NIC `{slot}` uses model {}, not VirtIO",
                            crate::enum_name(&nic.model)
                        ),
                    )
                    .label("not VirtIO")
                    .help("remove `model:` or set `model: virtio`"),
                    &np.key("model"),
                );
            }
        }

        // image-source: what download-url can do (pve-storage: decompression only into
        // ISO content, and only gz/lzo/zst/bz2).
        let image = match &vm.os {
            Some(OsSource::CloudImage(img)) => Some(("cloudImage", img.url.as_str(), false)),
            Some(OsSource::HaosImage(img)) => Some(("haosImage", img.url.as_str(), false)),
            Some(OsSource::OpnsenseImage(img)) => Some(("opnsenseImage", img.url.as_str(), false)),
            Some(OsSource::Iso(iso)) => iso.url.as_deref().map(|u| ("iso", u, true)),
            None => None,
        };
        if let Some((kind, url, is_iso)) = image {
            let file = url
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .rsplit('/')
                .next()
                .unwrap_or_default();
            let ext = file.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
            let node_can = ["gz", "lzo", "zst", "bz2"].contains(&ext);
            let compressed = node_can || ["xz", "zip", "7z", "lz4"].contains(&ext);
            if compressed && !(is_iso && node_can) {
                let why = if is_iso {
                    format!(
                        "`{file}` is {ext}-compressed; the node decompresses only gz, lzo, zst and bz2"
                    )
                } else {
                    format!(
                        "`{file}` is {ext}-compressed, and the node cannot decompress an image it imports (download-url decompresses gz/lzo/zst/bz2, for ISO storage only)"
                    )
                };
                ctx.emit(
                    Diagnostic::error("image-source", why)
                        .label("the node cannot fetch this as is")
                        .help(if kind == "opnsenseImage" {
                            "decompress it once (`bunzip2 OPNsense-*-nano-amd64.img.bz2`), serve the .img on your LAN (e.g. `python3 -m http.server 8000` on the admin PC), point `url` at it and put the decompressed file's sha256 in `checksum` (docs/runbooks/router-first-boot.md)"
                        } else if kind == "haosImage" {
                            "decompress it once (`unxz haos_ova-*.qcow2.xz`), serve the .qcow2 on your LAN (e.g. `python3 -m http.server 8000` on the admin PC), point `url` at it and put the decompressed file's sha256 in `checksum` (docs/runbooks/install-haos.md)"
                        } else {
                            "point `url` at the plain image (most distributions publish one), or serve a decompressed copy on your LAN; the checksum is the plain file's"
                        }),
                    &vp.key("os").key(kind).key("url"),
                );
            }
        }

        // bootstrap-source
        if let Some(b) = &vm.bootstrap {
            let cloud = matches!(vm.os, Some(OsSource::CloudImage(_)));
            if !cloud {
                let what = match &vm.os {
                    Some(OsSource::HaosImage(_)) => "Home Assistant OS has no cloud-init",
                    Some(OsSource::Iso(_)) => "an ISO installer does not read a cloud-init seed",
                    Some(OsSource::OpnsenseImage(_)) => {
                        "OPNsense has no cloud-init (its configuration comes from `router:`)"
                    }
                    _ => "the VM has no OS source",
                };
                let _ = b;
                ctx.emit_at_key(
                    Diagnostic::error(
                        "bootstrap-source",
                        format!("VM {} has a `bootstrap` block, but {what}", vm.vmid),
                    )
                    .label("cannot be applied")
                    .help("use `os: { cloudImage: … }` or remove `bootstrap`"),
                    &vp.key("bootstrap"),
                );
            }
        }
    }
}

/// Returns the bus name when `slot` is `<bus><n>` with n in range.
fn parse_slot<'b>(slot: &str, buses: &[(&'b str, u32)]) -> Option<&'b str> {
    buses.iter().find_map(|(bus, max)| {
        let n = slot.strip_prefix(bus)?;
        let ok = !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
            && (n == "0" || !n.starts_with('0'))
            && n.parse::<u32>().is_ok_and(|v| v <= *max);
        ok.then_some(*bus)
    })
}

fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !name.starts_with('-')
        && !name.ends_with('-')
}
