//! Task status, logs and waiting.
//!
//! Async PVE calls return a UPID; success is only known once the task stops with
//! `exitstatus` `OK` (or `WARNINGS: n`). Failures are reported with the log tail,
//! because the exit status alone ("job errors") rarely says what went wrong.

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::client::{PveClient, seg};
use crate::de;
use crate::error::Error;
use crate::params::Params;
use crate::upid::Upid;

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskStatus {
    /// The task id.
    #[serde(default)]
    pub upid: String,
    /// Node running it.
    #[serde(default)]
    pub node: String,
    /// `running` or `stopped`.
    pub status: String,
    /// Present once stopped: `OK`, `WARNINGS: n` or the error message.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub exitstatus: Option<String>,
    /// Task type.
    #[serde(default, rename = "type")]
    pub task_type: String,
    /// Object id.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// User.
    #[serde(default)]
    pub user: String,
    /// Start time (epoch).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub starttime: Option<u64>,
    /// Worker pid.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub pid: Option<u64>,
}

impl TaskStatus {
    /// Whether the task has finished.
    pub fn is_stopped(&self) -> bool {
        self.status == "stopped"
    }

    /// Finished successfully (`OK` or `WARNINGS: n`).
    pub fn is_success(&self) -> bool {
        self.is_stopped()
            && self
                .exitstatus
                .as_deref()
                .is_some_and(|s| s == "OK" || s.starts_with("WARNINGS"))
    }

    /// Finished with warnings.
    pub fn has_warnings(&self) -> bool {
        self.exitstatus
            .as_deref()
            .is_some_and(|s| s.starts_with("WARNINGS"))
    }
}

/// One task log line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskLogLine {
    /// 1-based line number.
    #[serde(deserialize_with = "de::u64_lenient")]
    pub n: u64,
    /// Text.
    #[serde(default)]
    pub t: String,
}

/// An entry of `GET /nodes/{node}/tasks`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskListEntry {
    /// Task id.
    pub upid: String,
    /// Node.
    #[serde(default)]
    pub node: String,
    /// Type.
    #[serde(default, rename = "type")]
    pub task_type: String,
    /// Object id.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// User.
    #[serde(default)]
    pub user: String,
    /// Final status text (`OK`, error message) for finished tasks.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub status: Option<String>,
    /// Start time.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub starttime: Option<u64>,
    /// End time.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub endtime: Option<u64>,
}

/// Polling parameters for [`PveClient::wait_task`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOptions {
    /// First poll delay.
    pub initial_interval: Duration,
    /// Cap of the exponentially growing delay.
    pub max_interval: Duration,
    /// Give up after this long.
    pub timeout: Duration,
    /// How many log lines to attach to a failure.
    pub log_tail: u64,
    /// Stop (SIGTERM) the task when the timeout expires.
    pub stop_on_timeout: bool,
}

/// The delay before the next status poll. Most tasks (create, start, config) end
/// within seconds and the next action waits for them, so polling stays brisk at first
/// (an ended task is seen within 250 ms), then backs off to `max_interval` for long
/// ones (downloads), doubling from `initial_interval`.
pub(crate) fn next_poll_delay(delay: Duration, waited: Duration, opts: &WaitOptions) -> Duration {
    let cap = if waited < BRISK_PHASE {
        opts.max_interval.min(BRISK_INTERVAL)
    } else {
        opts.max_interval
    };
    delay.saturating_mul(2).min(cap)
}

/// How long a task is polled at most every [`BRISK_INTERVAL`].
const BRISK_PHASE: Duration = Duration::from_secs(20);
const BRISK_INTERVAL: Duration = Duration::from_millis(250);

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_millis(50),
            max_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(600),
            log_tail: 20,
            stop_on_timeout: false,
        }
    }
}

impl WaitOptions {
    /// Defaults with a different overall timeout.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            ..Self::default()
        }
    }
}

/// Task queries for a node.
#[derive(Debug, Clone, Default)]
pub struct TaskListFilter {
    /// Only this VM.
    pub vmid: Option<u32>,
    /// Only this task type.
    pub typefilter: Option<String>,
    /// Only failed tasks.
    pub errors: Option<bool>,
    /// `archive`, `active` or `all`.
    pub source: Option<String>,
    /// Max entries (PVE default 50).
    pub limit: Option<u64>,
    /// Only since this epoch.
    pub since: Option<u64>,
}

fn task_path(upid: &Upid, suffix: &str) -> String {
    format!(
        "/nodes/{}/tasks/{}{suffix}",
        seg(&upid.node),
        seg(upid.as_str())
    )
}

impl PveClient {
    /// `GET /nodes/{node}/tasks/{upid}/status` (node taken from the UPID).
    pub async fn task_status(&self, upid: &Upid) -> Result<TaskStatus, Error> {
        self.get(&task_path(upid, "/status"), Params::new()).await
    }

    /// `GET …/log` from line `start` (0-based), `limit` lines (0 = all); returns lines and total.
    pub async fn task_log(
        &self,
        upid: &Upid,
        start: u64,
        limit: u64,
    ) -> Result<(Vec<TaskLogLine>, u64), Error> {
        let path = task_path(upid, "/log");
        let resp = self
            .request(
                reqwest::Method::GET,
                &path,
                Params::new().set("start", start).set("limit", limit),
            )
            .await?;
        let lines: Vec<TaskLogLine> =
            crate::client::decode(&reqwest::Method::GET, &path, resp.data)?;
        let total = resp.total.unwrap_or(lines.len() as u64);
        Ok((lines, total))
    }

    /// The last `n` log lines.
    pub async fn task_log_tail(&self, upid: &Upid, n: u64) -> Result<Vec<String>, Error> {
        let (first, total) = self.task_log(upid, 0, n.max(1)).await?;
        let lines = if total > n {
            self.task_log(upid, total - n, n).await?.0
        } else {
            first
        };
        Ok(lines.into_iter().map(|l| l.t).collect())
    }

    /// `DELETE /nodes/{node}/tasks/{upid}`: stop a running task.
    pub async fn task_stop(&self, upid: &Upid) -> Result<(), Error> {
        self.delete::<serde_json::Value>(&task_path(upid, ""), Params::new())
            .await
            .map(|_| ())
    }

    /// `GET /nodes/{node}/tasks`.
    pub async fn task_list(
        &self,
        node: &str,
        filter: &TaskListFilter,
    ) -> Result<Vec<TaskListEntry>, Error> {
        let p = Params::new()
            .set_opt("vmid", filter.vmid)
            .set_opt("typefilter", filter.typefilter.as_deref())
            .set_opt("errors", filter.errors)
            .set_opt("source", filter.source.as_deref())
            .set_opt("limit", filter.limit)
            .set_opt("since", filter.since);
        self.get(&format!("/nodes/{}/tasks", seg(node)), p).await
    }

    /// Poll until the task stops, with exponential backoff. `Ok` for `OK` and
    /// `WARNINGS: n`; [`Error::TaskFailed`] (with the log tail) otherwise.
    pub async fn wait_task(&self, upid: &Upid, opts: WaitOptions) -> Result<TaskStatus, Error> {
        let start = Instant::now();
        let mut delay = opts.initial_interval;
        loop {
            match self.task_status(upid).await {
                Ok(st) if st.is_stopped() => {
                    if st.is_success() {
                        if st.has_warnings() {
                            tracing::warn!(upid = %upid, exitstatus = ?st.exitstatus, "task finished with warnings");
                        }
                        return Ok(st);
                    }
                    let log_tail = self
                        .task_log_tail(upid, opts.log_tail)
                        .await
                        .unwrap_or_else(|e| vec![format!("(task log unavailable: {e})")]);
                    return Err(Error::TaskFailed {
                        upid: upid.to_string(),
                        exitstatus: st
                            .exitstatus
                            .unwrap_or_else(|| "unexpected status".to_string()),
                        log_tail,
                    });
                }
                Ok(_) => {}
                // Right after creation a task may not be visible yet ("no such task").
                Err(Error::Api(a))
                    if a.status == 400
                        && a.errors
                            .get("upid")
                            .is_some_and(|m| m.contains("no such task"))
                        && start.elapsed() < Duration::from_secs(10) => {}
                Err(e) => return Err(e),
            }
            let waited = start.elapsed();
            if waited >= opts.timeout {
                if opts.stop_on_timeout
                    && let Err(e) = self.task_stop(upid).await
                {
                    tracing::warn!(upid = %upid, error = %e, "could not stop timed-out task");
                }
                return Err(Error::TaskTimeout {
                    upid: upid.to_string(),
                    waited,
                });
            }
            let remaining = opts.timeout.saturating_sub(waited);
            tokio::time::sleep(delay.min(remaining)).await;
            delay = next_poll_delay(delay, waited, &opts);
        }
    }

    /// Parse a UPID returned by an async call and wait for it.
    pub async fn wait_upid_str(&self, upid: &str, opts: WaitOptions) -> Result<TaskStatus, Error> {
        let upid = Upid::parse(upid)?;
        self.wait_task(&upid, opts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_briskly_for_short_tasks_then_backs_off() {
        let o = WaitOptions::default();
        let ms = Duration::from_millis;
        let mut d = o.initial_interval;
        let mut seen = vec![d];
        for waited in [0, 50, 150, 350, 600, 850] {
            d = next_poll_delay(d, ms(waited), &o);
            seen.push(d);
        }
        assert_eq!(
            seen,
            [ms(50), ms(100), ms(200), ms(250), ms(250), ms(250), ms(250)]
        );
        // A long task (a download) is polled at `max_interval` once past the brisk phase.
        assert_eq!(next_poll_delay(ms(250), BRISK_PHASE, &o), ms(500));
        assert_eq!(
            next_poll_delay(ms(800), Duration::from_secs(60), &o),
            o.max_interval
        );
        // A caller's smaller cap wins everywhere.
        let tight = WaitOptions {
            max_interval: ms(100),
            ..WaitOptions::default()
        };
        assert_eq!(
            next_poll_delay(ms(100), Duration::from_secs(60), &tight),
            ms(100)
        );
    }
}
