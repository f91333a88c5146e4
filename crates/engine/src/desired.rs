//! The desired state for the lab's current phase: what the spec asks of the node, in
//! PVE's own terms (config keys and values), canonicalised so it compares with a scan.

use std::collections::BTreeMap;

use labwright_spec::Spec;
use labwright_spec::model::{BackupJob, BackupSelection, Bios, Machine, PowerState, Vm};

/// The tag every VM labwright manages carries: ownership without a state file.
pub const OWNER_TAG: &str = "lw-managed";

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

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredBackupJob {
    pub id: String,
    pub schedule: String,
    pub storage: String,
    /// `None` = all guests.
    pub vmids: Option<Vec<u32>>,
    pub mode: String,
    pub compress: String,
    /// Canonical `prune-backups` (`keep-daily=7,keep-monthly=6,keep-weekly=4`).
    pub prune: String,
    pub enabled: bool,
    pub comment: Option<String>,
}

/// Everything the spec asks for now, plus what it defers.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub node: String,
    pub vms: BTreeMap<u32, DesiredVm>,
    pub backup_jobs: BTreeMap<String, DesiredBackupJob>,
    /// Human descriptions of resources deferred to a later phase.
    pub deferred: Vec<String>,
}

fn b(v: bool) -> String {
    if v { "1".into() } else { "0".into() }
}

/// Canonical tag list: lowercase, sorted, deduplicated, `;`-joined (PVE's order is
/// whatever the UI last wrote; comparing sorted sets avoids perpetual diffs).
pub fn canonical_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> String {
    let mut v: Vec<String> = tags
        .into_iter()
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v.join(";")
}

/// Splits a PVE tag string (`a;b`, `a,b` or `a b`).
pub fn split_tags(s: &str) -> impl Iterator<Item = &str> {
    s.split([';', ',', ' ']).filter(|t| !t.is_empty())
}

fn vm_desired(spec: &Spec, vm: &Vm) -> DesiredVm {
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
    c.insert("agent".into(), b(vm.agent));
    c.insert("onboot".into(), b(vm.onboot));
    c.insert("protection".into(), b(vm.protection));
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
            .chain(std::iter::once(OWNER_TAG)),
    );
    c.insert("tags".into(), tags);
    for (slot, nic) in &vm.nics {
        let model = crate::canon::enum_name(&nic.model);
        let mut v = match &nic.mac_address {
            Some(mac) => format!("{model}={}", mac.to_ascii_uppercase()),
            None => model,
        };
        v.push_str(&format!(",bridge={}", nic.bridge_in(spec.phase)));
        v.push_str(&format!(",firewall={}", b(nic.firewall)));
        c.insert(slot.clone(), v);
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
        options.insert("iothread".into(), b(d.iothread));
        options.insert("ssd".into(), b(d.ssd));
        options.insert("backup".into(), b(d.backup));
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

fn job_desired(spec: &Spec, job: &BackupJob) -> DesiredBackupJob {
    let r = &job.retention;
    let mut prune: Vec<String> = Vec::new();
    for (k, v) in [
        ("keep-daily", r.daily),
        ("keep-last", r.last),
        ("keep-monthly", r.monthly),
        ("keep-weekly", r.weekly),
        ("keep-yearly", r.yearly),
    ] {
        if let Some(v) = v {
            prune.push(format!("{k}={v}"));
        }
    }
    let storage = spec
        .storage
        .as_ref()
        .and_then(|s| {
            s.migrations
                .iter()
                .find(|m| m.from == format!("backup-job:{}", job.id) && m.phase <= spec.phase)
        })
        .map(|m| m.to.clone())
        .unwrap_or_else(|| job.storage.clone());
    DesiredBackupJob {
        id: job.id.clone(),
        schedule: job.schedule.clone(),
        storage,
        vmids: match &job.selection {
            BackupSelection::All(true) => None,
            BackupSelection::All(false) => Some(Vec::new()),
            BackupSelection::Vmids(ids) => {
                let mut v = ids.clone();
                v.sort_unstable();
                v.dedup();
                Some(v)
            }
        },
        mode: crate::canon::enum_name(&job.mode),
        compress: crate::canon::enum_name(&job.compress),
        prune: prune.join(","),
        enabled: job.enabled,
        comment: job.comment.clone(),
    }
}

/// Builds the desired state of the current phase.
pub fn desired(spec: &Spec) -> Desired {
    let mut d = Desired {
        node: spec.node.name.clone(),
        ..Desired::default()
    };
    for vm in &spec.vms {
        if vm.phase > spec.phase {
            d.deferred
                .push(format!("VM {} {} (phase {})", vm.vmid, vm.name, vm.phase.0));
            continue;
        }
        d.vms.insert(vm.vmid, vm_desired(spec, vm));
    }
    if let Some(b) = &spec.backups {
        for job in &b.jobs {
            if job.phase > spec.phase {
                d.deferred
                    .push(format!("backup job {} (phase {})", job.id, job.phase.0));
                continue;
            }
            d.backup_jobs.insert(job.id.clone(), job_desired(spec, job));
        }
    }
    d
}
