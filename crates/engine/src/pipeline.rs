//! The pipeline the CLI calls: plan a spec against a node (scan, firewall read, the
//! kinds' diff, the lockout-proof gate, storage notes), check that a saved plan still
//! matches the node, and list the secrets a plan needs before anything is written.
//! The CLI only parses, connects and renders.

use std::time::Instant;

use labwright_pve::PveClient;
use labwright_spec::Spec;
use labwright_spec::types::SecretRef;

use crate::action::ActionKind;
use crate::error::EngineError;
use crate::observed::{ScanScope, scan_for_spec};
use crate::plan::{Plan, plan_with_firewall};
use crate::settings::Settings;
use labwright_host::HostExec;

/// A plan and what the caller should show about how it was made.
pub struct Planned {
    pub plan: Plan,
    /// Figures for the log (scan size, requests, time).
    pub info: Vec<String>,
    /// Lines a person must see on stderr (the proof's summary when it failed, the
    /// loud warning when the proof was skipped).
    pub warnings: Vec<String>,
}

/// Scans the node and plans `spec`. A plan whose lockout proof failed is refused
/// here, unless the settings' unsafe switch is on (then the plan says so loudly).
pub async fn plan_spec(
    client: &PveClient,
    host: Option<&dyn HostExec>,
    spec: &Spec,
    settings: &Settings,
) -> Result<Planned, EngineError> {
    let scope = ScanScope::for_spec(spec, settings.concurrency);
    let started = Instant::now();
    let observed = scan_for_spec(client, host, spec, spec.node_name(), &scope).await?;
    let info = vec![format!(
        "scanned {} guests with {} requests in {} ms",
        observed.vms.len(),
        observed.requests,
        started.elapsed().as_millis()
    )];
    let fw = crate::firewall::scan_firewall(client, spec, &observed, settings.client_addr).await?;
    let mut plan = plan_with_firewall(spec, &observed, fw.as_ref());
    let mut warnings = Vec::new();
    gate_proof(&mut plan, settings, &mut warnings)?;
    // The ssd-backup-space warning again, with the storage's real figures.
    let want = crate::desired::desired(spec);
    for job in want.backup_jobs.values() {
        if labwright_policy::is_system_ssd_storage(spec, &job.storage)
            && let Some((free, total)) = observed.storage_free(&job.storage)
        {
            let gib = |b: u64| b as f64 / 1073741824.0;
            plan.notes.push(format!(
                "ssd-backup-space: backup job `{}` writes to `{}` on the system SSD: {:.1} GiB free of {:.1} GiB",
                job.id,
                job.storage,
                gib(free),
                gib(total)
            ));
        }
    }
    Ok(Planned {
        plan,
        info,
        warnings,
    })
}

/// Refuses a plan whose lockout proof failed, unless the unsafe switch is set.
fn gate_proof(
    plan: &mut Plan,
    settings: &Settings,
    log: &mut Vec<String>,
) -> Result<(), EngineError> {
    let touches = plan
        .actions
        .iter()
        .any(|a| matches!(a.op, crate::op::Op::Firewall(_)));
    let Some(report) = plan.firewall.as_mut() else {
        return Ok(());
    };
    if report.proof_ok || !touches {
        return Ok(());
    }
    if settings.unsafe_skip_proof {
        log.extend(report.summary());
        report.proof_skipped = true;
        log.push(format!(
            "warning: {} is set: the lockout proof FAILED and is being ignored. This can cut you off the node; recovery: {}",
            crate::firewall::SKIP_PROOF_ENV,
            crate::firewall::RUNBOOK
        ));
        plan.notes.push(format!(
            "DANGER: lockout proof failed and was skipped ({})",
            crate::firewall::SKIP_PROOF_ENV
        ));
        return Ok(());
    }
    Err(EngineError::Refused(format!(
        "{}\nrefusing this plan: the lockout proof failed.\n{}\nNothing was applied.",
        report.summary().join("\n"),
        report
            .failure
            .clone()
            .unwrap_or_else(|| "(no detail)".into())
    )))
}

/// Checks that a saved plan was made from the node as it is now (same scope, same
/// fingerprint); a stale plan is refused.
pub async fn check_fresh(
    client: &PveClient,
    host: Option<&dyn HostExec>,
    spec: &Spec,
    saved: &Plan,
    settings: &Settings,
) -> Result<(), EngineError> {
    let scope = ScanScope::for_spec(spec, settings.concurrency);
    let observed = scan_for_spec(client, host, spec, &saved.node, &scope).await?;
    let fw = crate::firewall::scan_firewall(client, spec, &observed, settings.client_addr).await?;
    let now =
        crate::firewall::combined_fingerprint(&observed.fingerprint(&scope.vmids), fw.as_ref());
    if now != saved.scan_fingerprint {
        return Err(EngineError::Refused(format!(
            "the saved plan {} is stale: the node changed since it was made (scan {} → {}); run `labwright plan` again",
            saved.id,
            &saved.scan_fingerprint[..8.min(saved.scan_fingerprint.len())],
            &now[..8.min(now.len())]
        )));
    }
    Ok(())
}

/// The secret references a plan's actions will read at apply time (seed auth keys),
/// each once. The caller checks they can be read; values never pass through here.
pub fn secrets_needed(spec: &Spec, plan: &Plan) -> Vec<SecretRef> {
    let mut out: Vec<SecretRef> = Vec::new();
    for a in plan
        .actions
        .iter()
        .filter(|a| matches!(a.kind, ActionKind::VmSeed | ActionKind::VmReseed))
    {
        let Some(vmid) = a.id.vmid() else { continue };
        let Some(vm) = spec.vms.iter().find(|v| v.vmid == vmid) else {
            continue;
        };
        let Some(ts) = vm.bootstrap.as_ref().and_then(|b| b.tailscale.as_ref()) else {
            continue;
        };
        let Some(r) = ts
            .auth_key
            .as_ref()
            .or(spec.tailscale.as_ref().and_then(|t| t.auth_key.as_ref()))
        else {
            continue;
        };
        if !out.iter().any(|x| x.to_string() == r.to_string()) {
            out.push(r.clone());
        }
    }
    out
}
