//! Scheduled backup jobs (`/cluster/backup`). All calls are synchronous.

use serde::Deserialize;

use super::Extra;
use crate::client::{PveClient, seg};
use crate::de;
use crate::error::Error;
use crate::params::Params;
use crate::vmconfig::PruneBackups;

/// A job as read back. `prune-backups` arrives as a JSON object here (not a
/// property string), which [`PruneBackups`] accepts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BackupJob {
    /// Job id.
    pub id: String,
    /// Calendar event (`daily`, `sat 02:30`).
    #[serde(default)]
    pub schedule: Option<String>,
    /// Target storage.
    #[serde(default)]
    pub storage: Option<String>,
    /// Enabled (default true).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enabled: Option<bool>,
    /// `snapshot`, `suspend`, `stop`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Compression.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub compress: Option<String>,
    /// Guest list (`100,101`).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub vmid: Option<String>,
    /// All guests.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub all: Option<bool>,
    /// Excluded guests (with `all`).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub exclude: Option<String>,
    /// Pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// Only on this node.
    #[serde(default)]
    pub node: Option<String>,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Retention.
    #[serde(default, rename = "prune-backups")]
    pub prune_backups: Option<PruneBackups>,
    /// Notes template.
    #[serde(default, rename = "notes-template")]
    pub notes_template: Option<String>,
    /// Next run (epoch).
    #[serde(default, rename = "next-run", deserialize_with = "de::opt_u64")]
    pub next_run: Option<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Settings for create/update.
#[derive(Debug, Clone, Default)]
pub struct BackupJobParams {
    /// Calendar event.
    pub schedule: Option<String>,
    /// Target storage.
    pub storage: Option<String>,
    /// Enabled.
    pub enabled: Option<bool>,
    /// Mode.
    pub mode: Option<String>,
    /// Compression (`zstd`).
    pub compress: Option<String>,
    /// Guests (`100,300`); conflicts with `all`/`pool`.
    pub vmid: Option<String>,
    /// All guests.
    pub all: Option<bool>,
    /// Only on this node.
    pub node: Option<String>,
    /// Comment.
    pub comment: Option<String>,
    /// Retention, sent as a property string.
    pub prune_backups: Option<PruneBackups>,
    /// Notes template (requires `storage`).
    pub notes_template: Option<String>,
    /// Anything else.
    pub extra: Params,
}

impl BackupJobParams {
    /// Wire parameters.
    pub fn to_params(&self) -> Result<Params, Error> {
        let prune = match &self.prune_backups {
            Some(p) => {
                p.validate()?;
                Some(p.to_property_string()?.to_canonical_string())
            }
            None => None,
        };
        Ok(Params::new()
            .set_opt("schedule", self.schedule.as_deref())
            .set_opt("storage", self.storage.as_deref())
            .set_opt("enabled", self.enabled)
            .set_opt("mode", self.mode.as_deref())
            .set_opt("compress", self.compress.as_deref())
            .set_opt("vmid", self.vmid.as_deref())
            .set_opt("all", self.all)
            .set_opt("node", self.node.as_deref())
            .set_opt("comment", self.comment.as_deref())
            .set_opt("prune-backups", prune)
            .set_opt("notes-template", self.notes_template.as_deref())
            .merge(self.extra.clone()))
    }
}

impl PveClient {
    /// `GET /cluster/backup`.
    pub async fn backup_jobs(&self) -> Result<Vec<BackupJob>, Error> {
        self.get("/cluster/backup", Params::new()).await
    }

    /// `GET /cluster/backup/{id}`.
    pub async fn backup_job(&self, id: &str) -> Result<BackupJob, Error> {
        self.get(&format!("/cluster/backup/{}", seg(id)), Params::new())
            .await
    }

    /// `POST /cluster/backup` with an explicit id (so re-runs can find it).
    pub async fn backup_job_create(&self, id: &str, job: &BackupJobParams) -> Result<(), Error> {
        let p = job.to_params()?.set("id", id);
        self.post::<serde_json::Value>("/cluster/backup", p)
            .await
            .map(|_| ())
    }

    /// `PUT /cluster/backup/{id}`; `delete` removes settings.
    pub async fn backup_job_update(
        &self,
        id: &str,
        job: &BackupJobParams,
        delete: &[&str],
    ) -> Result<(), Error> {
        let mut p = job.to_params()?;
        if !delete.is_empty() {
            p.insert("delete", delete.join(","));
        }
        self.put::<serde_json::Value>(&format!("/cluster/backup/{}", seg(id)), p)
            .await
            .map(|_| ())
    }

    /// `DELETE /cluster/backup/{id}`.
    pub async fn backup_job_delete(&self, id: &str) -> Result<(), Error> {
        self.delete::<serde_json::Value>(&format!("/cluster/backup/{}", seg(id)), Params::new())
            .await
            .map(|_| ())
    }
}
