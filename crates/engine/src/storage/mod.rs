//! Phase 1 storage: the ZFS pool (API), its datasets and sanoid (over SSH, the API has
//! no dataset calls), PVE storage entries (API), directory mappings and data
//! migrations (API + guest agent). Each is its own kind in [`crate::plan::KINDS`];
//! they share the scan below and the op type in [`op`].

pub(crate) mod dataset;
pub(crate) mod entry;
pub(crate) mod migrate;
pub mod op;
pub(crate) mod pool;
mod scan;
pub(crate) mod validate;

use std::collections::BTreeMap;

use labwright_pve::api::disks::{Disk, ZfsPool, ZfsPoolDetail};
use labwright_pve::api::mapping::DirMapping;
use labwright_pve::api::storage::{StorageConfig, StorageStatus};
use labwright_spec::Spec;
use serde::Serialize;

pub use op::StorageOp;
pub use scan::scan_storage;

/// The ZFS user property that records how far a migration into a dataset went
/// (`NAME=copied`, `NAME=switched`): readable in a scan without asking the guest.
pub const MIGRATION_PROP: &str = "labwright:migration";

/// Where the verified manifest of each migration is kept on the node.
pub const MANIFEST_DIR: &str = "/var/lib/labwright/migrations";

/// What the storage side of the node looks like.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedStorageSide {
    #[serde(skip)]
    pub disks: Vec<Disk>,
    #[serde(skip)]
    pub pools: Vec<ZfsPool>,
    /// Vdev trees of the pools the spec declares.
    #[serde(skip)]
    pub pool_details: BTreeMap<String, ZfsPoolDetail>,
    /// `/storage` entries by id.
    #[serde(skip)]
    pub configs: BTreeMap<String, StorageConfig>,
    /// `/nodes/{node}/storage` status by id.
    #[serde(skip)]
    pub status: BTreeMap<String, StorageStatus>,
    #[serde(skip)]
    pub mappings: BTreeMap<String, DirMapping>,
    /// Archives on the storage a moved backup job writes to now: storage id → volids
    /// (they stay there; the plan lists them).
    #[serde(skip)]
    pub old_backups: BTreeMap<String, Vec<String>>,
    pub host: HostSide,
}

/// What was read over SSH.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum HostSide {
    /// The spec needs nothing from the host shell.
    #[default]
    NotNeeded,
    /// Needed, but no SSH target, or it could not be reached: why.
    Unavailable {
        why: String,
    },
    Read(HostState),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostState {
    pub datasets: BTreeMap<String, ObservedDataset>,
    pub sanoid: SanoidState,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedDataset {
    pub mountpoint: String,
    pub mounted: bool,
    /// Locally set properties (`zfs get -s local`), raw (`-p`) values.
    pub props: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SanoidState {
    pub installed: bool,
    pub config: Option<String>,
    pub timer_enabled: bool,
    pub timer_active: bool,
}

impl ObservedStorageSide {
    /// The host state, when it was read.
    pub fn host(&self) -> Option<&HostState> {
        match &self.host {
            HostSide::Read(h) => Some(h),
            _ => None,
        }
    }

    /// The pool named `name`, if the node has it.
    pub fn pool(&self, name: &str) -> Option<&ZfsPool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// A fingerprint of everything the storage kinds plan from.
    pub fn fingerprint(&self) -> String {
        let mut s = String::new();
        for p in &self.pools {
            s.push_str(&format!("pool {} {:?};", p.name, p.health));
        }
        for (id, c) in &self.configs {
            s.push_str(&format!(
                "st {id} {} {:?} {:?} {:?} {:?};",
                c.storage_type, c.content, c.path, c.pool, c.extra
            ));
        }
        for (id, m) in &self.mappings {
            s.push_str(&format!("map {id} {:?};", m.map));
        }
        if let Some(h) = self.host() {
            s.push_str(&format!("{h:?}"));
        }
        for d in &self.disks {
            s.push_str(&format!("disk {} {:?};", d.devpath, d.used));
        }
        s
    }

    /// The migration state recorded on `dataset` for migration `name`.
    pub fn migration_state(&self, dataset: &str, name: &str) -> Option<String> {
        let v = self
            .host()?
            .datasets
            .get(dataset)?
            .props
            .get(MIGRATION_PROP)?;
        let (n, state) = v.split_once('=')?;
        (n == name).then(|| state.to_string())
    }
}

/// Does `spec` declare storage work of its current phase?
pub(crate) fn active(spec: &Spec) -> bool {
    spec.storage.as_ref().is_some_and(|s| {
        s.zfs_pools.iter().any(|p| p.phase <= spec.phase)
            || s.datasets.iter().any(|d| d.phase <= spec.phase)
            || s.pve_storages.iter().any(|d| d.phase <= spec.phase)
            || s.migrations.iter().any(|d| d.phase <= spec.phase)
    })
}

/// Does `spec` need the host shell (datasets, sanoid, migrations into datasets)?
pub(crate) fn needs_host(spec: &Spec) -> bool {
    spec.storage.as_ref().is_some_and(|s| {
        s.datasets.iter().any(|d| d.phase <= spec.phase)
            || s.migrations
                .iter()
                .any(|m| m.phase <= spec.phase && m.from.starts_with("vm:"))
    })
}

/// A dataset's mountpoint: its `mountpoint` property when declared, else `/NAME`.
pub(crate) fn mountpoint_of(spec: &Spec, dataset: &str) -> String {
    spec.storage
        .as_ref()
        .and_then(|s| s.datasets.iter().find(|d| d.name == dataset))
        .and_then(|d| d.properties.get("mountpoint").cloned())
        .unwrap_or_else(|| format!("/{dataset}"))
}

/// The mapping id (and virtiofs tag) a dataset is shared under: `tank/media` →
/// `tank-media`.
pub(crate) fn mapping_id(dataset: &str) -> String {
    dataset.replace('/', "-")
}

/// Where the `i`-th entry of `storage.<list>` is declared (`storage.datasets[2]`).
pub(crate) fn spec_path(list: &str, i: usize) -> String {
    labwright_spec::YamlPath::root()
        .key("storage")
        .key(list)
        .index(i)
        .to_string()
}

/// "4.0 TB": disk sizes as vendors print them.
pub(crate) fn tb(bytes: u64) -> String {
    if bytes >= 1_000_000_000_000 {
        format!("{:.1} TB", bytes as f64 / 1e12)
    } else {
        format!("{:.0} GB", bytes as f64 / 1e9)
    }
}
