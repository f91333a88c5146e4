//! Phase 1 storage: ZFS pools, datasets, PVE storage entries, data migrations.

use super::*;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Storage {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zfs_pools: Vec<ZfsPool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<Dataset>,
    /// PVE storage entries (`/storage`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pve_storages: Vec<PveStorage>,
    /// Data moves (phase 1: media and appdata to `tank`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<Migration>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZfsPool {
    pub name: String,
    pub raid_level: RaidLevel,
    /// Whole disks by stable path (`/dev/disk/by-id/…`) or name (`sdb`).
    pub devices: Vec<String>,
    #[serde(default = "default_ashift")]
    pub ashift: u8,
    #[serde(default)]
    pub compression: ZfsCompression,
    /// Creating a pool wipes its disks. A disk that shows any use (partitions, a
    /// filesystem, LVM, another pool) is refused unless this is set *and* apply runs
    /// with `--allow-destroy`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wipe_used_disks: bool,
    #[serde(default = "one_phase")]
    pub phase: Phase,
}

pub(crate) fn default_ashift() -> u8 {
    12
}
pub(crate) fn one_phase() -> Phase {
    Phase(1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RaidLevel {
    Single,
    Mirror,
    Raidz,
    Raidz2,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ZfsCompression {
    #[default]
    Lz4,
    Zstd,
    Off,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dataset {
    /// `pool/name`, e.g. `tank/media`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotSchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Size>,
    /// Other ZFS properties set on the dataset (`recordsize: 1M`, `atime: "off"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    #[serde(default = "one_phase")]
    pub phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotSchedule {
    pub schedule: SnapshotFrequency,
    /// How many snapshots to keep.
    pub keep: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotFrequency {
    Hourly,
    Daily,
    Weekly,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PveStorage {
    /// Storage id (`tank-backups`).
    pub id: String,
    #[serde(rename = "type")]
    pub kind: PveStorageType,
    /// Path for `dir`, pool/dataset for `zfspool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Content types (`images`, `rootdir`, `backup`, `iso`, `vztmpl`, `import`, `snippets`).
    pub content: Vec<String>,
    #[serde(default = "one_phase")]
    pub phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PveStorageType {
    Dir,
    Zfspool,
    Pbs,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Migration {
    pub name: String,
    /// Source: `vm:<vmid>:<path>` for data inside a guest, or `backup-job:<id>` to move
    /// a vzdump job's target.
    pub from: String,
    /// Destination: a dataset (`tank/appdata`) or, for a backup job, a PVE storage id.
    pub to: String,
    /// Remove the source kept after the switch (`DIR.lw-migrated`), once it is checked
    /// against the manifest of the verified copy. Destructive: apply needs
    /// `--allow-destroy`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove_source: bool,
    #[serde(default = "one_phase")]
    pub phase: Phase,
}
