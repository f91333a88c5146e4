//! A VM's desired config: the spec in PVE's own keys and values, canonical, so it
//! compares with a scan.

use std::collections::BTreeMap;

use labwright_spec::Spec;
use labwright_spec::model::{Bios, Machine, PowerState, Vm};

use crate::canon::{b01, canonical_tags};

/// The tag every VM labwright manages carries: ownership without a state file.
pub const OWNER_TAG: &str = "lw-managed";

/// Prefix of the tag that says which lab owns a guest (`lw-lab-jarvis`): several
/// specs (labs, or a firewall-only wave) can share a node, each owning its own guests.
pub const LAB_TAG_PREFIX: &str = "lw-lab-";

/// The lab tag of `spec`: its `metadata.name` in PVE's tag alphabet.
pub fn lab_tag(spec: &Spec) -> String {
    let name: String = spec
        .metadata
        .name
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{LAB_TAG_PREFIX}{name}")
}

/// Default storages of a fresh PVE install.
pub const DEFAULT_VM_STORAGE: &str = "local-lvm";

/// A VM's wanted config in PVE keys. Disks are kept apart: they are created with an
/// allocation syntax and compared by size and options.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredVm {
    pub vmid: u32,
    pub name: String,
    /// Config keys other than disks (`name`, `cores`, `net0`, `tags`, …), canonical.
    pub config: BTreeMap<String, String>,
    pub disks: BTreeMap<String, DesiredDisk>,
    pub power: PowerState,
    /// Storage the VM's disks are created on (creates are serialised per storage).
    pub storage: String,
    /// Why some declared settings cannot be applied yet (OS images, bootstrap).
    pub unsupported: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredDisk {
    pub storage: String,
    pub size_bytes: u64,
    /// Canonical options: cache, discard, iothread, ssd, backup.
    pub options: BTreeMap<String, String>,
}

pub fn vm_desired(spec: &Spec, vm: &Vm) -> DesiredVm {
    let storage = spec
        .node
        .vm_storage
        .clone()
        .unwrap_or_else(|| DEFAULT_VM_STORAGE.to_string());
    let mut c = BTreeMap::new();
    c.insert("name".into(), vm.name.clone());
    c.insert("cores".into(), vm.cores.to_string());
    c.insert("sockets".into(), vm.sockets.to_string());
    c.insert("memory".into(), vm.memory.0.to_string());
    if let Some(cpu) = &vm.cpu {
        c.insert("cpu".into(), cpu.clone());
    }
    c.insert(
        "bios".into(),
        match vm.bios {
            Bios::Seabios => "seabios".into(),
            Bios::Ovmf => "ovmf".into(),
        },
    );
    c.insert(
        "machine".into(),
        match vm.machine {
            Machine::Q35 => "q35".into(),
            Machine::Pc => "pc".into(),
        },
    );
    c.insert("scsihw".into(), vm.scsihw.as_pve().into());
    if let Some(os) = &vm.ostype {
        c.insert("ostype".into(), os.clone());
    }
    c.insert("agent".into(), b01(vm.agent));
    c.insert("onboot".into(), b01(vm.onboot));
    c.insert("protection".into(), b01(vm.protection));
    if let Some(d) = &vm.description {
        c.insert("description".into(), d.trim().to_string());
    }
    if let Some(o) = vm.startup_order {
        c.insert("startup".into(), format!("order={o}"));
    }
    let tags = canonical_tags(
        vm.tags
            .iter()
            .map(String::as_str)
            .chain([OWNER_TAG, lab_tag(spec).as_str()]),
    );
    c.insert("tags".into(), tags);
    for (slot, nic) in &vm.nics {
        let model = crate::canon::enum_name(&nic.model);
        // The router's NICs get fixed MACs (its links are told apart by them).
        let mac = nic
            .mac_address
            .clone()
            .or_else(|| crate::router::fixed_mac(spec, vm.vmid, slot));
        let mut v = match mac {
            Some(mac) => format!("{model}={}", mac.to_ascii_uppercase()),
            None => model,
        };
        v.push_str(&format!(",bridge={}", nic.bridge_in(spec.phase)));
        v.push_str(&format!(",firewall={}", b01(nic.firewall)));
        c.insert(slot.clone(), v);
    }
    // Datasets migrations move this guest's folders into reach it as virtiofs shares.
    for (k, v) in crate::storage::migrate::virtiofs_for(spec, vm.vmid) {
        c.insert(k, v);
    }
    // Passed-through PCI devices, by mapping (crate::pci).
    for (slot, h) in &vm.hostpci {
        c.insert(slot.clone(), crate::pci::hostpci_value(h));
    }
    let mut disks = BTreeMap::new();
    for (slot, d) in &vm.disks {
        let mut options = BTreeMap::new();
        options.insert("cache".into(), crate::canon::enum_name(&d.cache));
        options.insert(
            "discard".into(),
            if d.discard {
                "on".into()
            } else {
                "ignore".into()
            },
        );
        options.insert("iothread".into(), b01(d.iothread));
        options.insert("ssd".into(), b01(d.ssd));
        options.insert("backup".into(), b01(d.backup));
        disks.insert(
            slot.clone(),
            DesiredDisk {
                storage: d.storage.clone().unwrap_or_else(|| storage.clone()),
                size_bytes: d.size.bytes(),
                options,
            },
        );
    }
    // OS images and guest bootstrap are planned by crate::bootstrap (issue 5).
    let unsupported = Vec::new();
    DesiredVm {
        vmid: vm.vmid,
        name: vm.name.clone(),
        config: c,
        disks,
        power: vm.power,
        storage,
        unsupported,
    }
}
