//! The guarded change: make a change, probe the node over a *fresh* connection (an
//! established one survives a DROP policy or a bridge reload, so it proves nothing),
//! and revert over the kept-alive connection when the probe fails. Used by firewall
//! steps now and by bridge reloads next.

use std::future::Future;
use std::time::Duration;

use labwright_pve::{ClientConfig, PveClient, RetryPolicy};

use crate::error::StepError;

/// Where the console recovery runbook lives (printed when the node stops answering).
pub const RUNBOOK: &str = "docs/runbooks/firewall-lockout.md";

/// `GET /version` over a brand-new client (new TCP and TLS connection): what a new
/// SSH or browser session would meet. No retries: a refused connection is the answer.
pub(crate) async fn probe_fresh(cfg: &ClientConfig) -> Result<String, String> {
    let mut c = cfg
        .clone()
        .retry(RetryPolicy::none())
        .request_timeout(Duration::from_secs(10));
    c.connect_timeout = Duration::from_secs(5);
    let client = PveClient::new(c).map_err(|e| e.to_string())?;
    client
        .version()
        .await
        .map(|v| v.version)
        .map_err(|e| e.to_string())
}

/// How a guarded change is checked.
pub struct Guard<'a> {
    /// Probe target; `None` runs the change unprobed.
    pub probe: Option<&'a ClientConfig>,
    /// Wait before each probe (a real node applies firewall changes within ~10 s).
    pub settle: Duration,
}

/// Runs `change`, probes, and on a failed probe runs `revert` and probes again. The
/// error says which of the three outcomes happened.
pub async fn guarded<C, R, RF>(guard: &Guard<'_>, change: C, revert: R) -> Result<(), StepError>
where
    C: Future<Output = Result<(), StepError>>,
    R: FnOnce() -> RF,
    RF: Future<Output = Result<(), StepError>>,
{
    change.await?;
    let Some(cfg) = guard.probe else {
        return Ok(());
    };
    if !guard.settle.is_zero() {
        tokio::time::sleep(guard.settle).await;
    }
    let Err(first) = probe_fresh(cfg).await else {
        return Ok(());
    };
    let reverted = revert().await;
    if reverted.is_ok() && !guard.settle.is_zero() {
        tokio::time::sleep(guard.settle).await;
    }
    let probe = format!("probe over a fresh connection failed after this step ({first})");
    match (reverted, probe_fresh(cfg).await) {
        (Ok(()), Ok(_)) => Err(StepError::ProbeFailedReverted { probe }),
        (Err(re), _) => Err(StepError::ProbeFailedRevertFailed {
            probe,
            revert: format!(
                "the revert failed too ({re}). The node may be unreachable: recover from the console with {RUNBOOK}"
            ),
        }),
        (Ok(()), Err(again)) => Err(StepError::ProbeFailedRevertFailed {
            probe,
            revert: format!(
                "the step was reverted but the node still refuses new connections ({again}). Recover from the console with {RUNBOOK}"
            ),
        }),
    }
}
