//! Checks PVE's handlers make beyond the schema's `check`, each announced in the
//! schema's `permissions.description` (or, for VM config keys, by the `any` list of
//! the config endpoint): the tests hold every rule to that text.

use std::collections::BTreeMap;

use super::table::{Endpoint, Extra};
use super::{Need, Paths, fill, need};

/// The `VM.Config.*` class of a VM config key, as qemu-server sorts keys before
/// checking them; plus the other privileges a key brings (a NIC's bridge, a disk's
/// storage, `startup`'s host-wide effect).
fn vm_key(key: &str, value: &str, vmid: &str, paths: Paths<'_>, out: &mut Vec<Need>) {
    let vm = |p: &str| Need {
        path: match paths {
            Paths::Generic => "/vms".into(),
            Paths::Concrete(_) => format!("/vms/{vmid}"),
        },
        privilege: p.to_string(),
    };
    let base = key.trim_end_matches(|c: char| c.is_ascii_digit());
    let indexed = base.len() < key.len();
    let drive = (indexed && matches!(base, "scsi" | "virtio" | "sata" | "ide"))
        || matches!(key, "efidisk0" | "tpmstate0");
    if drive {
        let first = value.split(',').next().unwrap_or("");
        let cdrom =
            value.split(',').any(|p| p == "media=cdrom") || matches!(first, "none" | "cdrom");
        out.push(vm(if cdrom {
            "VM.Config.CDROM"
        } else {
            "VM.Config.Disk"
        }));
        // `local-lvm:32`, `local:iso/x.iso`: the storage's space is used.
        if let Some((storage, _)) = first.split_once(':')
            && !storage.is_empty()
            && !storage.starts_with('/')
        {
            out.push(storage_need(storage, paths, "Datastore.AllocateSpace"));
        }
        return;
    }
    if indexed && base == "net" {
        out.push(vm("VM.Config.Network"));
        let bridge = value
            .split(',')
            .find_map(|p| p.strip_prefix("bridge="))
            .unwrap_or("");
        if !bridge.is_empty() || paths == Paths::Generic {
            let mut p = BTreeMap::new();
            p.insert("bridge".to_string(), bridge.to_string());
            let path = match paths {
                Paths::Generic => fill(SDN_BRIDGE, Paths::Generic),
                Paths::Concrete(_) => fill(SDN_BRIDGE, Paths::Concrete(&p)),
            };
            if let Some(path) = path {
                out.push(need(path, "SDN.Use"));
            }
        }
        return;
    }
    if indexed && base == "hostpci" {
        // `check_hostpci_perm`: a mapped device needs `Mapping.Use` on its mapping.
        out.push(vm("VM.Config.HWType"));
        let mapping = value
            .split(',')
            .find_map(|p| p.strip_prefix("mapping="))
            .unwrap_or("");
        out.push(need(
            match paths {
                Paths::Generic => "/mapping/pci".into(),
                Paths::Concrete(_) => format!("/mapping/pci/{mapping}"),
            },
            "Mapping.Use",
        ));
        return;
    }
    let class = match key {
        "cores" | "cpu" | "cpulimit" | "cpuunits" | "numa" | "smp" | "sockets" | "vcpus"
        | "affinity" => "VM.Config.CPU",
        "memory" | "balloon" | "shares" => "VM.Config.Memory",
        "acpi" | "hotplug" | "kvm" | "machine" | "scsihw" | "smbios1" | "tablet" | "vga"
        | "watchdog" | "audio0" | "rng0" => "VM.Config.HWType",
        "cicustom" | "cipassword" | "citype" | "ciuser" | "ciupgrade" | "nameserver"
        | "searchdomain" | "sshkeys" => "VM.Config.Cloudinit",
        "boot" | "bootdisk" | "vmstatestorage" => "VM.Config.Disk",
        "freeze" => "VM.PowerMgmt",
        _ if indexed && base == "ipconfig" => "VM.Config.Cloudinit",
        _ if indexed && base == "unused" => "VM.Config.Disk",
        // A serial socket or USB device counts as hardware for non-root users.
        _ if indexed && matches!(base, "serial" | "usb") => "VM.Config.HWType",
        // agent, name, description, onboot, ostype, tags, bios, protection, startup, …
        _ => "VM.Config.Options",
    };
    out.push(vm(class));
    if key == "startup" {
        // The boot order of the whole host changes.
        out.push(need("/".into(), "Sys.Modify"));
    }
}

/// Where PVE checks a bridge a NIC uses (the `localnetwork` zone of plain bridges).
pub(super) const SDN_BRIDGE: &str = "/sdn/zones/localnetwork/{bridge}";

fn storage_need(storage: &str, paths: Paths<'_>, privilege: &str) -> Need {
    need(
        match paths {
            Paths::Generic => "/storage".into(),
            Paths::Concrete(_) => format!("/storage/{storage}"),
        },
        privilege,
    )
}

/// Parameters of a VM create/update that are not config keys.
const NOT_KEYS: &[&str] = &[
    "node",
    "vmid",
    "digest",
    "delete",
    "revert",
    "skiplock",
    "force",
    "start",
    "pool",
    "background_delay",
    "unique",
    "archive",
    "storage",
    "live-restore",
    "bwlimit",
];

/// The extra needs of a call to `ep` with `params`.
pub(super) fn needs(
    ep: &Endpoint,
    paths: Paths<'_>,
    params: &BTreeMap<String, String>,
) -> Vec<Need> {
    let mut out = Vec::new();
    if ep.extra == Extra::VmCreate {
        // `or` the pool's VM.Allocate (with `pool`): labwright creates no pooled guests.
        let vm = match paths {
            Paths::Generic => Some("/vms".to_string()),
            Paths::Concrete(p) => p.get("vmid").map(|v| format!("/vms/{v}")),
        };
        if let Some(path) = vm {
            out.push(need(path, "VM.Allocate"));
        }
    }
    match ep.extra {
        Extra::None => {}
        Extra::VmConfig | Extra::VmCreate => {
            let vmid = params.get("vmid").map(String::as_str).unwrap_or("");
            match paths {
                // Every class labwright may set, on every VM and storage.
                Paths::Generic => {
                    for (k, v) in [
                        ("scsi0", "s:1"),
                        ("ide2", "none,media=cdrom"),
                        ("net0", "virtio,bridge=vmbr0"),
                        ("cores", ""),
                        ("memory", ""),
                        ("scsihw", ""),
                        ("ipconfig0", ""),
                        ("name", ""),
                    ] {
                        vm_key(k, v, vmid, paths, &mut out);
                    }
                }
                Paths::Concrete(_) => {
                    for (k, v) in params {
                        if !NOT_KEYS.contains(&k.as_str()) {
                            vm_key(k, v, vmid, paths, &mut out);
                        }
                    }
                    // Removing a key needs the same class as setting it.
                    for k in params
                        .get("delete")
                        .map(|d| d.split(',').map(str::trim).collect::<Vec<_>>())
                        .unwrap_or_default()
                    {
                        if !k.is_empty() {
                            vm_key(k, "", vmid, paths, &mut out);
                        }
                    }
                }
            }
        }
        Extra::StorageAllocate => {
            let s = params.get("storage").map(String::as_str).unwrap_or("");
            out.push(storage_need(s, paths, "Datastore.Allocate"));
        }
        Extra::StorageAudit => {
            // Lists drop what the token may not see: a generic need only.
            if paths == Paths::Generic {
                out.push(need("/storage".into(), "Datastore.Audit"));
            }
        }
        Extra::VmAudit => {
            if paths == Paths::Generic {
                out.push(need("/vms".into(), "VM.Audit"));
            }
        }
        Extra::ZfsAddStorage => {
            if params.get("add_storage").is_some_and(|v| v == "1") {
                out.push(need("/storage".into(), "Datastore.Allocate"));
            }
        }
    }
    out
}
