//! The observed model: what the node holds now. There is no state file: every plan
//! starts from a fresh scan. A scan never waits on a guest agent.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt};
use labwright_pve::PveClient;
use labwright_pve::api::backup::BackupJob;
use labwright_pve::vmconfig::VmConfig;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::EngineError;
use crate::canon::split_tags;
use crate::desired::OWNER_TAG;

/// Prefix of every snapshot labwright takes; nothing else is ever deleted.
pub const SNAPSHOT_PREFIX: &str = "lw-";

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedVm {
    pub vmid: u32,
    pub node: String,
    pub name: String,
    /// `running`, `stopped`, …
    pub status: String,
    pub tags: Vec<String>,
    pub lock: Option<String>,
    pub template: bool,
    /// Present for the VMs the scan was asked to read in full.
    pub config: Option<BTreeMap<String, String>>,
    /// The config digest, sent back with updates (optimistic locking).
    pub digest: Option<String>,
    /// Keys with pending (not yet applied) changes.
    pub pending: BTreeSet<String>,
    /// labwright's own snapshots (`lw-…`).
    pub tool_snapshots: Vec<String>,
}

impl ObservedVm {
    /// PVE's `protection` flag (refuses deletion).
    pub fn protection_on(&self) -> bool {
        self.config
            .as_ref()
            .and_then(|c| c.get("protection"))
            .is_some_and(|v| v == "1")
    }

    /// Carries labwright's ownership tag (of any lab).
    pub fn is_managed(&self) -> bool {
        self.tags.iter().any(|t| t == OWNER_TAG)
    }

    /// The lab that owns it (`lw-lab-<name>`), when it says.
    pub fn lab(&self) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(crate::vm::desired::LAB_TAG_PREFIX))
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedStorage {
    pub id: String,
    pub node: String,
    pub plugin: Option<String>,
    pub content: Option<String>,
    pub total: Option<u64>,
    pub used: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedBackupJob {
    pub id: String,
    pub schedule: Option<String>,
    pub storage: Option<String>,
    pub enabled: bool,
    pub mode: Option<String>,
    pub compress: Option<String>,
    pub vmid: Option<String>,
    pub all: bool,
    /// Canonical `keep-…` list.
    pub prune: String,
    pub comment: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    pub node: String,
    pub pve_version: Option<String>,
    pub vms: BTreeMap<u32, ObservedVm>,
    pub storages: Vec<ObservedStorage>,
    pub backup_jobs: BTreeMap<String, ObservedBackupJob>,
    /// The node's bridges (and staged network changes), when the scan read its
    /// network (`None`: not read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::bridge::ObservedNetwork>,
    /// Disks, pools, storage entries, mappings and (over SSH) datasets, when the spec
    /// declares phase 1 storage ([`crate::storage::scan_storage`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<crate::storage::ObservedStorageSide>,
    /// PCI devices and mappings, when the spec declares passthrough
    /// ([`crate::pci::scan_pci`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<crate::pci::ObservedPci>,
    /// Requests the scan made (benchmarks compare it with the lower bound).
    pub requests: u64,
}

/// What to read in full (configs are one request per VM).
#[derive(Clone, Debug, Default)]
pub struct ScanScope {
    /// Read the configs of these VMIDs (plus every managed VM).
    pub vmids: BTreeSet<u32>,
    /// Read every VM's config (the `scan` command).
    pub all_configs: bool,
    /// Concurrent requests (pveproxy serves 3 by default).
    pub concurrency: usize,
    /// Desired power state by VMID (`running`/`stopped`): where the inventory
    /// disagrees, `status/current` confirms it (the inventory lags behind power
    /// changes), so a converged lab costs no extra request.
    pub power: BTreeMap<u32, &'static str>,
    /// Read the node's bridges (one request): VMs and declared bridges need them.
    pub network: bool,
}

impl ScanScope {
    /// The scope a plan for `spec` needs: its declared guests and their power states.
    pub fn for_spec(spec: &labwright_spec::Spec, concurrency: usize) -> Self {
        let want = crate::desired::desired(spec);
        ScanScope {
            network: !want.vms.is_empty() || !spec.networks.bridges.is_empty(),
            vmids: want.vms.keys().copied().collect(),
            // Passthrough: any guest may hold the device (crate::pci checks them all).
            all_configs: crate::pci::active(spec),
            concurrency,
            power: want
                .vms
                .values()
                .map(|v| {
                    let p = match v.power {
                        labwright_spec::model::PowerState::Running => "running",
                        labwright_spec::model::PowerState::Stopped => "stopped",
                    };
                    (v.vmid, p)
                })
                .collect(),
        }
    }
}

/// One guest's config read: (vmid, node, config and pending keys).
type ConfigRead = (
    u32,
    String,
    Result<(VmConfig, BTreeSet<String>), labwright_pve::Error>,
);

/// The config with pending values applied, and the keys that wait for a reboot, from
/// `GET …/pending` (whose `digest` entry, when PVE lists it, is the config digest).
fn config_from_pending(
    entries: Vec<labwright_pve::api::qemu::PendingEntry>,
) -> (VmConfig, BTreeSet<String>) {
    let mut cfg = VmConfig::default();
    let mut pending = BTreeSet::new();
    for e in entries {
        if e.key == "digest" {
            cfg.digest = e.value.clone();
            continue;
        }
        if e.is_pending() {
            pending.insert(e.key.clone());
        }
        if e.delete.is_some_and(|d| d > 0) {
            continue;
        }
        if let Some(v) = e.pending.or(e.value) {
            cfg.values.insert(e.key, v);
        }
    }
    (cfg, pending)
}

fn canonical_prune(job: &BackupJob) -> String {
    let Some(p) = &job.prune_backups else {
        return String::new();
    };
    match p.to_property_string() {
        Ok(ps) => {
            let mut parts: Vec<String> = ps
                .iter()
                .filter(|(k, _)| k.starts_with("keep-"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.sort();
            parts.join(",")
        }
        Err(_) => String::new(),
    }
}

/// Reads the node: one inventory request, one backup-job request, one version
/// request, then the configs that matter, `concurrency` at a time.
pub async fn scan(
    client: &PveClient,
    node: &str,
    scope: &ScanScope,
) -> Result<Observed, EngineError> {
    let before = client.request_count();
    let network = async {
        if scope.network {
            Some(client.network_list(node, None).await)
        } else {
            None
        }
    };
    let (version, resources, jobs, network) = tokio::join!(
        client.version(),
        client.cluster_resources(None),
        client.backup_jobs(),
        network
    );
    let network = match network {
        None => None,
        Some(Ok(list)) => Some(crate::bridge::ObservedNetwork::from_list(list)),
        Some(Err(e)) => return Err(EngineError::api("read the node's network", e)),
    };
    let version = version.ok().map(|v| v.version);
    let resources = resources.map_err(|e| EngineError::api("read the inventory", e))?;
    let jobs = jobs.map_err(|e| EngineError::api("read backup jobs", e))?;

    let mut vms = BTreeMap::new();
    let mut storages = Vec::new();
    for r in resources {
        match r.resource_type.as_str() {
            "qemu" => {
                let Some(vmid) = r.vmid else { continue };
                vms.insert(
                    vmid,
                    ObservedVm {
                        vmid,
                        node: r.node.clone().unwrap_or_default(),
                        name: r.name.clone().unwrap_or_default(),
                        status: r.status.clone().unwrap_or_default(),
                        tags: r
                            .tags
                            .as_deref()
                            .map(|t| split_tags(t).map(str::to_string).collect())
                            .unwrap_or_default(),
                        lock: r.lock.clone().filter(|l| !l.is_empty()),
                        template: r.template.unwrap_or(false),
                        config: None,
                        digest: None,
                        pending: BTreeSet::new(),
                        tool_snapshots: Vec::new(),
                    },
                );
            }
            "storage" => storages.push(ObservedStorage {
                id: r.storage.clone().unwrap_or_default(),
                node: r.node.clone().unwrap_or_default(),
                plugin: r.plugintype.clone(),
                content: r.content.clone(),
                total: r.maxdisk,
                used: r.disk,
            }),
            _ => {}
        }
    }

    let wanted: Vec<(u32, String)> = vms
        .values()
        .filter(|v| scope.all_configs || scope.vmids.contains(&v.vmid) || v.is_managed())
        .map(|v| (v.vmid, v.node.clone()))
        .collect();
    let conc = scope.concurrency.max(1);
    // The inventory lags behind new guests and power changes (pvestatd): a guest
    // started a moment ago is still `stopped` there. The guests a plan is about get
    // their state from status/current.
    let wanted_ids: BTreeSet<u32> = wanted.iter().map(|(id, _)| *id).collect();
    let status_reads: Vec<(u32, String)> = vms
        .values()
        .filter(|v| {
            let known = v.status == "running" || v.status == "stopped";
            let disagrees = scope
                .power
                .get(&v.vmid)
                .is_some_and(|want| *want != v.status);
            (!known && wanted_ids.contains(&v.vmid)) || (known && disagrees)
        })
        .map(|v| (v.vmid, v.node.clone()))
        .collect();
    let statuses: Vec<(
        u32,
        Result<labwright_pve::api::qemu::VmStatus, labwright_pve::Error>,
    )> = stream::iter(status_reads)
        .map(|(vmid, vnode)| async move { (vmid, client.qemu_status(&vnode, vmid).await) })
        .buffer_unordered(conc)
        .collect()
        .await;
    for (vmid, s) in statuses {
        if let (Ok(s), Some(vm)) = (s, vms.get_mut(&vmid)) {
            vm.status = s.status;
        }
    }
    // One request per guest: a running guest's `…/pending` lists every key with its
    // current and pending value (so a hand edit waiting for a reboot is drift too); a
    // stopped guest has nothing pending and its `…/config` carries the digest.
    let running: BTreeSet<u32> = vms
        .values()
        .filter(|v| v.status == "running")
        .map(|v| v.vmid)
        .collect();
    let configs: Vec<ConfigRead> = stream::iter(wanted)
        .map(|(vmid, vnode)| {
            let is_running = running.contains(&vmid);
            async move {
                let c = if is_running {
                    client
                        .qemu_pending(&vnode, vmid)
                        .await
                        .map(config_from_pending)
                } else {
                    client
                        .qemu_config(&vnode, vmid)
                        .await
                        .map(|c| (c, BTreeSet::new()))
                };
                (vmid, vnode, c)
            }
        })
        .buffer_unordered(conc)
        .collect()
        .await;
    let mut snapshot_reads = Vec::new();
    for (vmid, vnode, cfg) in configs {
        let (cfg, pending_keys) = match cfg {
            Ok(c) => c,
            // The guest vanished between the inventory and this read.
            Err(e) if e.status() == Some(500) || e.status() == Some(404) => continue,
            Err(e) => {
                return Err(EngineError::api(
                    &format!("read the config of VM {vmid}"),
                    e,
                ));
            }
        };
        if let Some(vm) = vms.get_mut(&vmid) {
            // The inventory lags behind new guests (pvestatd has not seen them yet:
            // no lock, tags or name). The config has those.
            if let Some(l) = cfg.get("lock").filter(|l| !l.is_empty()) {
                vm.lock = Some(l.to_string());
            }
            if vm.tags.is_empty()
                && let Some(t) = cfg.get("tags")
            {
                vm.tags = split_tags(t).map(str::to_string).collect();
            }
            if vm.name.is_empty()
                && let Some(n) = cfg.get("name")
            {
                vm.name = n.to_string();
            }
            // `parent` is set when the VM has snapshots: only then are they listed.
            if cfg.get("parent").is_some() {
                snapshot_reads.push((vmid, vnode));
            }
            vm.digest = cfg.digest.clone();
            vm.pending = pending_keys;
            vm.config = Some(
                cfg.values
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
        }
    }
    let snaps: Vec<(
        u32,
        Result<Vec<labwright_pve::api::qemu::Snapshot>, labwright_pve::Error>,
    )> = stream::iter(snapshot_reads)
        .map(|(vmid, vnode)| async move { (vmid, client.qemu_snapshots(&vnode, vmid).await) })
        .buffer_unordered(conc)
        .collect()
        .await;
    for (vmid, s) in snaps {
        if let (Ok(list), Some(vm)) = (s, vms.get_mut(&vmid)) {
            vm.tool_snapshots = list
                .into_iter()
                .map(|s| s.name)
                .filter(|n| n.starts_with(SNAPSHOT_PREFIX))
                .collect();
            vm.tool_snapshots.sort();
        }
    }

    let backup_jobs = jobs
        .into_iter()
        .map(|j| {
            let prune = canonical_prune(&j);
            (
                j.id.clone(),
                ObservedBackupJob {
                    id: j.id,
                    schedule: j.schedule,
                    storage: j.storage,
                    enabled: j.enabled.unwrap_or(true),
                    mode: j.mode,
                    compress: j.compress,
                    vmid: j.vmid,
                    all: j.all.unwrap_or(false),
                    prune,
                    comment: j.comment,
                },
            )
        })
        .collect();

    Ok(Observed {
        node: node.to_string(),
        pve_version: version,
        vms,
        storages,
        backup_jobs,
        network,
        storage: None,
        pci: None,
        requests: client.request_count().saturating_sub(before),
    })
}

impl Observed {
    /// A fingerprint of everything a plan depends on: configs (by digest), power
    /// states, locks and backup jobs. A saved plan is refused when it changed.
    pub fn fingerprint(&self, vmids: &BTreeSet<u32>) -> String {
        let mut h = Sha256::new();
        for (id, vm) in &self.vms {
            if !vmids.contains(id) && !vm.is_managed() {
                // Foreign guests do not change what labwright will do.
                h.update(format!("{id};"));
                continue;
            }
            h.update(format!(
                "{id}|{}|{}|{}|{:?};",
                vm.status,
                vm.digest.as_deref().unwrap_or("-"),
                vm.lock.as_deref().unwrap_or("-"),
                vm.tool_snapshots
            ));
        }
        for (id, j) in &self.backup_jobs {
            h.update(format!(
                "{id}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{}|{}|{:?};",
                j.schedule,
                j.storage,
                j.enabled,
                j.mode,
                j.compress,
                j.vmid,
                j.all,
                j.prune,
                j.comment
            ));
        }
        if let Some(n) = &self.network {
            h.update(format!("network {:?};", n));
        }
        if let Some(s) = &self.storage {
            h.update(s.fingerprint());
        }
        if let Some(p) = &self.pci {
            h.update(p.fingerprint());
        }
        hex::encode(&h.finalize()[..16])
    }

    /// Ids of the storages this node has (shared ones included).
    pub fn storage_ids(&self) -> Vec<&str> {
        self.storages
            .iter()
            .filter(|s| s.node == self.node || s.node.is_empty())
            .map(|s| s.id.as_str())
            .collect()
    }

    /// Free bytes of a storage on this node, if known.
    pub fn storage_free(&self, id: &str) -> Option<(u64, u64)> {
        self.storages
            .iter()
            .find(|s| s.id == id && (s.node == self.node || s.node.is_empty()))
            .and_then(|s| Some((s.total?.saturating_sub(s.used?), s.total?)))
    }
}

/// [`scan`] plus, when `spec` declares storage work of its phase, the storage side
/// (API, and the host shell for datasets when `host` is given).
pub async fn scan_for_spec(
    client: &PveClient,
    host: Option<&dyn labwright_host::HostExec>,
    spec: &labwright_spec::Spec,
    node: &str,
    scope: &ScanScope,
) -> Result<Observed, EngineError> {
    let before = client.request_count();
    let mut observed = scan(client, node, scope).await?;
    if crate::storage::active(spec) {
        observed.storage =
            Some(crate::storage::scan_storage(client, host, spec, observed.node.as_str()).await?);
        observed.requests = client.request_count().saturating_sub(before);
    }
    if crate::pci::active(spec) {
        observed.pci = Some(crate::pci::scan_pci(client, observed.node.as_str()).await?);
        observed.requests = client.request_count().saturating_sub(before);
    }
    Ok(observed)
}
