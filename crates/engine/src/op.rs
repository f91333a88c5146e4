//! What the executor runs for an action: one enum arm per resource kind, each kind's
//! own op type behind the same three questions (which API calls, which VM, run it).
//! This `match` is the only place that knows every kind; adding a kind adds an arm.

use labwright_pve::{PveClient, WaitOptions};
use serde::{Deserialize, Serialize};

use crate::error::StepError;
use crate::settings::Settings;

/// What an op needs to run: the client, the engine's settings and, for steps that
/// render from the spec (seeds), the spec and the secret resolver.
pub struct ExecCx<'a> {
    pub client: &'a PveClient,
    pub settings: &'a Settings,
    pub wait: WaitOptions,
    pub seeds: &'a crate::bootstrap::SeedSource,
    /// Where a long step reports how far it is (a download's percent).
    pub progress: &'a (dyn Fn(&str) + Sync),
    /// The node's shell over SSH, for steps the API cannot do (datasets, sanoid).
    pub host: Option<&'a dyn labwright_host::HostExec>,
}

/// One kind's steps: what they call (shown in plans, secrets redacted) and how they
/// run. Implemented by every kind's op type.
pub(crate) trait Step {
    /// The API calls, as `METHOD path key=value …` lines.
    fn api_calls(&self) -> Vec<String>;
    /// The VM the step works on (pre-change snapshots need it).
    fn vm(&self) -> Option<(&str, u32)> {
        None
    }
    async fn run(&self, cx: &ExecCx<'_>) -> Result<(), StepError>;
}

/// The executor's data for an action (a saved plan is self-contained).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Op {
    Vm(crate::vm::VmOp),
    BackupJob(crate::backup_job::JobOp),
    /// OS images and seeds; see `crate::bootstrap`.
    Bootstrap(crate::bootstrap::BootOp),
    /// Firewall objects; see `crate::firewall`.
    Firewall(crate::firewall::FwOp),
    /// Pools, datasets, sanoid, storage entries, mappings, migrations; see
    /// `crate::storage`.
    Storage(crate::storage::StorageOp),
    /// The bridge wave (stage, one reload, probe); see `crate::bridge`.
    Bridge(crate::bridge::BridgeOp),
    /// The router's seed and readiness gate; see `crate::router`.
    Router(crate::router::RouterOp),
    /// PCI resource mappings; see `crate::pci`.
    Pci(crate::pci::PciOp),
}

impl Op {
    pub fn api_calls(&self) -> Vec<String> {
        match self {
            Op::Vm(o) => o.api_calls(),
            Op::BackupJob(o) => o.api_calls(),
            Op::Bootstrap(o) => o.api_calls(),
            Op::Firewall(o) => o.api_calls(),
            Op::Storage(o) => o.api_calls(),
            Op::Bridge(o) => o.api_calls(),
            Op::Router(o) => o.api_calls(),
            Op::Pci(o) => o.api_calls(),
        }
    }

    /// The VM this op works on, if any.
    pub fn vm(&self) -> Option<(&str, u32)> {
        match self {
            Op::Vm(o) => o.vm(),
            Op::BackupJob(o) => o.vm(),
            Op::Bootstrap(o) => o.vm(),
            Op::Firewall(o) => o.vm(),
            Op::Storage(o) => o.vm(),
            Op::Bridge(o) => o.vm(),
            Op::Router(o) => o.vm(),
            Op::Pci(o) => o.vm(),
        }
    }

    pub(crate) async fn run(&self, cx: &ExecCx<'_>) -> Result<(), StepError> {
        match self {
            Op::Vm(o) => o.run(cx).await,
            Op::BackupJob(o) => o.run(cx).await,
            Op::Bootstrap(o) => o.run(cx).await,
            Op::Firewall(o) => o.run(cx).await,
            Op::Storage(o) => o.run(cx).await,
            Op::Bridge(o) => o.run(cx).await,
            Op::Router(o) => o.run(cx).await,
            Op::Pci(o) => o.run(cx).await,
        }
    }
}

/// `key=value …` of a parameter list, secrets redacted (for `api_calls`).
pub(crate) fn kv(p: &[(String, String)]) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={}", crate::redact::param_value(k, v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A parameter list as the client's `Params`.
pub(crate) fn params(pairs: &[(String, String)]) -> labwright_pve::Params {
    let mut p = labwright_pve::Params::new();
    for (k, v) in pairs {
        p.insert(k.clone(), v.as_str());
    }
    p
}

/// Waits for a task when the call started one.
pub(crate) async fn wait(
    cx: &ExecCx<'_>,
    upid: Option<labwright_pve::Upid>,
    what: &str,
) -> Result<(), StepError> {
    if let Some(u) = upid {
        cx.client
            .wait_task(&u, cx.wait)
            .await
            .map_err(StepError::ctx(what))?;
    }
    Ok(())
}
