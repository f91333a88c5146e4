//! Validation after apply: re-scan, the plan must be empty, the spec's constraints
//! must hold on what the node actually has, backup jobs carry the right retention,
//! guests are in their declared power state. On success, labwright's pre-change
//! snapshots expire.

use std::collections::BTreeSet;

use labwright_pve::PveClient;
use labwright_spec::Spec;
use serde::Serialize;

use crate::EngineError;
use crate::desired::desired;
use crate::observed::{Observed, ScanScope};
use crate::plan::PlanCx;
use crate::plan::plan;
use crate::settings::Settings;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    Skipped,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationReport {
    pub ok: bool,
    pub checks: Vec<Check>,
    /// Snapshots expired because validation passed: (vmid, name).
    pub expired_snapshots: Vec<(u32, String)>,
    /// Snapshots still present (validation failed, `--no-cleanup`, or expiry failed).
    pub kept_snapshots: Vec<(u32, String)>,
}

pub(crate) fn check(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status: if ok {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        detail: detail.into(),
    }
}

/// The checks that read only the observed state (no writes).
pub fn checks(spec: &Spec, observed: &Observed) -> Vec<Check> {
    let mut out = Vec::new();
    let p = plan(spec, observed);
    out.push(check(
        "plan is empty",
        p.actions.is_empty(),
        if p.actions.is_empty() {
            "the node matches the spec".to_string()
        } else {
            format!(
                "pending: {}",
                p.actions
                    .iter()
                    .map(|a| a.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    ));
    for h in &p.held {
        out.push(Check {
            name: format!("held: {}", h.target),
            status: CheckStatus::Skipped,
            detail: format!("{} — {}", h.reason, h.unblock),
        });
    }
    let want = desired(spec);
    let paths = crate::plan::vm_paths(spec);
    let cx = PlanCx {
        spec,
        want: &want,
        observed,
        firewall: None,
        plan_tag: "",
        elements: &[],
        vm_paths: &paths,
    };
    out.extend(crate::vm::validate::validate(&cx));
    out.extend(crate::backup_job::validate(&cx));
    out.extend(crate::storage::validate::validate(&cx));
    out.extend(crate::pci::validate(&cx));
    out
}

/// The active bridges the spec declares exist on the node, up, with the declared
/// ports and comment (crate::bridge).
async fn bridge_checks(client: &PveClient, spec: &Spec) -> Vec<Check> {
    if !spec
        .networks
        .bridges
        .values()
        .any(|b| b.phase <= spec.phase)
    {
        return Vec::new();
    }
    match client.network_list(spec.node_name(), None).await {
        Err(e) => vec![Check {
            name: "bridges".into(),
            status: CheckStatus::Fail,
            detail: format!("cannot read the node's network: {e}"),
        }],
        Ok(list) => crate::bridge::validate(spec, &crate::bridge::ObservedNetwork::from_list(list)),
    }
}

/// Re-scans and validates. With `cleanup`, a passing validate also removes the guest
/// seeds (they hold the Tailscale auth key) and expires labwright's pre-change
/// snapshots; without it, validate only reads.
pub async fn validate(
    client: &PveClient,
    host: Option<&dyn labwright_host::HostExec>,
    spec: &Spec,
    settings: &Settings,
    cleanup: bool,
) -> Result<ValidationReport, EngineError> {
    let want = desired(spec);
    let scope = ScanScope::for_spec(spec, settings.concurrency);
    let observed =
        crate::observed::scan_for_spec(client, host, spec, spec.node_name(), &scope).await?;
    let mut checks = checks(spec, &observed);
    checks.extend(bridge_checks(client, spec).await);
    // Firewall wave (issue 6): re-prove management access on what the node has.
    let checks = {
        let mut checks = checks;
        if let Some(fw) =
            crate::firewall::scan_firewall(client, spec, &observed, settings.client_addr).await?
        {
            checks.extend(crate::firewall::validate_checks(spec, &fw));
        }
        checks
    };
    // Guest bootstrap (issue 5): checks inside the guests, then the seeds go.
    let mut checks = checks;
    checks.extend(crate::bootstrap::guest_checks(client, spec, &observed, &settings.guest).await);
    // The spec's HTTP checks run through a guest agent, after the guests' own checks
    // waited for them to come up (issue 5: crate::bootstrap, crate::probe).
    checks.extend(crate::bootstrap::http_checks(client, spec, &observed, &settings.guest).await);
    // Phase 2 (issue 13): the router's links and the segment matrix, with real packets.
    checks.extend(
        crate::router::validate::checks(client, spec, &observed, host, settings.guest.enabled)
            .await,
    );
    let ok = checks.iter().all(|c| c.status != CheckStatus::Fail);
    if cleanup {
        checks.extend(
            crate::bootstrap::cleanup_seeds(client, spec, &observed, ok, &settings.wait).await,
        );
    }
    let ok = checks.iter().all(|c| c.status != CheckStatus::Fail);
    let mut report = ValidationReport {
        ok,
        checks,
        expired_snapshots: Vec::new(),
        kept_snapshots: Vec::new(),
    };
    let declared: BTreeSet<u32> = want.vms.keys().copied().collect();
    for vm in observed.vms.values() {
        if !declared.contains(&vm.vmid) && !vm.is_managed() {
            continue;
        }
        for snap in &vm.tool_snapshots {
            if !ok || !cleanup {
                report.kept_snapshots.push((vm.vmid, snap.clone()));
                continue;
            }
            let res = match client
                .qemu_snapshot_delete(&vm.node, vm.vmid, snap, false)
                .await
            {
                Ok(upid) => client.wait_task(&upid, settings.wait).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match res {
                Ok(()) => report.expired_snapshots.push((vm.vmid, snap.clone())),
                Err(_) => report.kept_snapshots.push((vm.vmid, snap.clone())),
            }
        }
    }
    Ok(report)
}
