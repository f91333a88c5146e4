//! Scheduled vzdump jobs and their retention.

use super::*;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backups {
    /// vzdump jobs.
    #[serde(default)]
    pub jobs: Vec<BackupJob>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupJob {
    /// Job id on the node (`backup-<id>` style ids are fine).
    pub id: String,
    /// PVE calendar event, e.g. `02:30` or `sun 03:00`.
    pub schedule: String,
    pub storage: String,
    pub selection: BackupSelection,
    #[serde(default)]
    pub mode: BackupMode,
    #[serde(default)]
    pub compress: Compress,
    pub retention: Retention,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default)]
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Which guests a job covers: all, or a list of VMIDs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum BackupSelection {
    All(bool),
    Vmids(Vec<u32>),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    #[default]
    Snapshot,
    Suspend,
    Stop,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    #[default]
    Zstd,
    Lzo,
    Gzip,
    None,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<u32>,
}
