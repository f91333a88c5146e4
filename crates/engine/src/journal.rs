//! The apply journal: one JSON line per step, flushed as it happens, so an
//! interrupted apply leaves a record of what was done. Re-running apply re-plans from
//! the live node (the source of truth) and uses the journal to report and to find
//! pre-change snapshots still to expire.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::EngineError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Seconds since the Unix epoch.
    pub ts: u64,
    pub plan: String,
    pub action: Option<String>,
    /// `apply-start`, `start`, `snapshot`, `done`, `failed`, `apply-end`.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    plan: String,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Journal {
    /// Opens (appends to) `dir/journal.jsonl`. `dir: None` keeps no journal
    /// (dry-run).
    pub fn open(dir: Option<&Path>, plan: &str) -> Result<Self, EngineError> {
        let Some(dir) = dir else {
            return Ok(Journal {
                path: PathBuf::new(),
                file: None,
                plan: plan.into(),
            });
        };
        let err = |e: std::io::Error, p: &Path| EngineError::Journal {
            path: p.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| err(e, dir))?;
        let path = dir.join("journal.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| err(e, &path))?;
        Ok(Journal {
            path,
            file: Some(file),
            plan: plan.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a step. A journal that cannot be written stops the apply: running
    /// without a record would break the resume promise.
    pub fn record(
        &mut self,
        action: Option<&str>,
        event: &str,
        detail: Option<String>,
    ) -> Result<(), EngineError> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        let e = Entry {
            ts: now(),
            plan: self.plan.clone(),
            action: action.map(str::to_string),
            event: event.into(),
            detail,
        };
        let line = serde_json::to_string(&e).unwrap_or_default();
        writeln!(f, "{line}")
            .and_then(|_| f.sync_data())
            .map_err(|e| EngineError::Journal {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })
    }
}

/// Reads a journal, skipping a torn last line (the process may have been killed).
pub fn read(path: &Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
