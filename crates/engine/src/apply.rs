//! The executor: runs a plan's actions in dependency order, independent ones
//! concurrently, creates on one storage one at a time (PVE's `can't lock file`),
//! with real pre-change snapshots (taken, awaited and verified first) and a journal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use futures_util::stream::{FuturesUnordered, StreamExt};
use labwright_pve::api::backup::BackupJobParams;
use labwright_pve::api::qemu::ShutdownOptions;
use labwright_pve::{Params, PveClient, Upid, WaitOptions};

use crate::EngineError;
use crate::journal::Journal;
use crate::plan::{Action, Op, Plan, Risk};

#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Print what would be done; call nothing that writes.
    pub dry_run: bool,
    /// Highest risk applied without refusing (the CLI's `--allow-risk`).
    pub allow_risk: Risk,
    /// Destructive actions approved (`--allow-destroy`).
    pub allow_destroy: bool,
    /// Where the journal goes (`None` = no journal).
    pub journal_dir: Option<PathBuf>,
    /// Actions in flight at once.
    pub concurrency: usize,
    pub wait: WaitOptions,
    /// Firewall probes and the proof override (issue 6).
    pub firewall: crate::firewall::FwApplyOptions,
    /// The spec and secret resolver seed steps render from (issue 5).
    pub bootstrap: crate::bootstrap::BootApplyOptions,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            dry_run: false,
            allow_destroy: false,
            allow_risk: Risk::Medium,
            journal_dir: None,
            concurrency: 3,
            wait: WaitOptions::default(),
            firewall: crate::firewall::FwApplyOptions::default(),
            bootstrap: crate::bootstrap::BootApplyOptions::default(),
        }
    }
}

/// Receives progress events (the CLI draws them on stderr).
pub trait Progress: Send + Sync {
    fn started(&self, action: &Action);
    fn finished(&self, action: &Action, result: Result<(), &str>);
    fn note(&self, line: &str);
}

/// What an apply did.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    pub plan: String,
    pub done: Vec<String>,
    /// The first action that failed, with the reason.
    pub failed: Vec<(String, String)>,
    /// Actions that did not run because of a failure.
    pub not_run: Vec<String>,
    /// Pre-change snapshots taken: (vmid, name).
    pub snapshots: Vec<(u32, String)>,
    pub dry_run: bool,
    pub journal: Option<String>,
}

impl ApplyReport {
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Refuses a plan whose riskiest action is above what was approved.
pub fn check_risk(plan: &Plan, allow: Risk) -> Result<(), EngineError> {
    let over: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.risk > allow)
        .map(|a| format!("{} ({} risk)", a.id, a.risk))
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    let top = plan.max_risk().unwrap_or(Risk::High);
    Err(EngineError::Refused(format!(
        "the plan has actions above the approved risk ({allow}): {}; approve them with --allow-risk {top}",
        over.join(", ")
    )))
}

/// Refuses destructive actions unless `--allow-destroy` was given.
pub fn check_destroy(plan: &Plan, allowed: bool) -> Result<(), EngineError> {
    let destroys: Vec<&str> = plan
        .actions
        .iter()
        .filter(|a| matches!(a.op, Op::DestroyVm { .. }))
        .map(|a| a.id.as_str())
        .collect();
    if destroys.is_empty() || allowed {
        return Ok(());
    }
    Err(EngineError::Refused(format!(
        "the plan destroys guests ({}); pass --allow-destroy (and --allow-risk critical) if that is intended",
        destroys.join(", ")
    )))
}

fn params(pairs: &[(String, String)]) -> Params {
    let mut p = Params::new();
    for (k, v) in pairs {
        p.insert(k.clone(), v.as_str());
    }
    p
}

async fn wait(
    client: &PveClient,
    upid: Option<Upid>,
    opts: &WaitOptions,
) -> Result<(), labwright_pve::Error> {
    if let Some(u) = upid {
        client.wait_task(&u, *opts).await?;
    }
    Ok(())
}

/// Takes the pre-change snapshot and checks it exists before going on. A snapshot
/// left by an interrupted run of the same plan is verified and reused.
async fn pre_snapshot(
    client: &PveClient,
    node: &str,
    vmid: u32,
    name: &str,
    plan: &str,
    expect_digest: Option<&str>,
    opts: &WaitOptions,
) -> Result<Option<String>, String> {
    let list = client
        .qemu_snapshots(node, vmid)
        .await
        .map_err(|e| e.to_string())?;
    let digest_now = |what: &'static str| async move {
        client
            .qemu_config_current(node, vmid)
            .await
            .map(|c| c.digest)
            .map_err(|e| format!("{what}: {e}"))
    };
    if !list.iter().any(|s| s.name == name) {
        // The snapshot rewrites the config file (new digest): check first that the
        // config is still the one the plan was made from.
        if let Some(want) = expect_digest
            && digest_now("read the config").await?.as_deref() != Some(want)
        {
            return Err(format!(
                "VM {vmid} changed since the plan was made; run `labwright plan` again"
            ));
        }
        let desc = format!(
            "labwright pre-change snapshot (plan {plan}); expires after a successful validate"
        );
        let upid = client
            .qemu_snapshot_create(node, vmid, name, Some(&desc), false)
            .await
            .map_err(|e| format!("snapshot {name}: {e}"))?;
        client
            .wait_task(&upid, *opts)
            .await
            .map_err(|e| format!("snapshot {name}: {e}"))?;
        let list = client
            .qemu_snapshots(node, vmid)
            .await
            .map_err(|e| e.to_string())?;
        if !list.iter().any(|s| s.name == name) {
            return Err(format!(
                "snapshot {name} was reported done but is not listed; refusing to go on"
            ));
        }
    }
    // The update that follows is sent with the digest the snapshot left.
    match expect_digest {
        Some(_) => digest_now("read the config after the snapshot").await,
        None => Ok(None),
    }
}

async fn run_op(
    client: &PveClient,
    op: &Op,
    opts: &WaitOptions,
) -> Result<(), labwright_pve::Error> {
    match op {
        // Firewall steps need the probe options: run_action runs them.
        Op::Firewall(_) => Err(labwright_pve::Error::Config(
            "firewall actions run through run_action".into(),
        )),
        Op::Bootstrap(_) => Err(labwright_pve::Error::Config(
            "bootstrap steps run through run_action".into(),
        )),
        Op::CreateVm {
            node,
            vmid,
            params: p,
        } => {
            let upid = client.qemu_create(node, *vmid, params(p)).await?;
            wait(client, Some(upid), opts).await
        }
        Op::UpdateVm {
            node,
            vmid,
            set,
            delete,
            digest,
        } => {
            let del: Vec<&str> = delete.iter().map(String::as_str).collect();
            let upid = client
                .qemu_update_config_async(node, *vmid, params(set), &del, digest.as_deref())
                .await?;
            wait(client, upid, opts).await
        }
        Op::ResizeDisk {
            node,
            vmid,
            disk,
            size,
        } => {
            let upid = client.qemu_resize(node, *vmid, disk, size, None).await?;
            wait(client, upid, opts).await
        }
        Op::StartVm { node, vmid } => {
            let upid = client.qemu_start(node, *vmid).await?;
            wait(client, Some(upid), opts).await
        }
        Op::ShutdownVm { node, vmid } => {
            let upid = client
                .qemu_shutdown(
                    node,
                    *vmid,
                    ShutdownOptions {
                        timeout: Some(120),
                        force_stop: true,
                    },
                )
                .await?;
            wait(client, Some(upid), opts).await
        }
        Op::RebootVm { node, vmid } => {
            let upid = client.qemu_reboot(node, *vmid, Some(120)).await?;
            wait(client, Some(upid), opts).await
        }
        Op::DestroyVm { node, vmid } => {
            if let Ok(st) = client.qemu_status(node, *vmid).await
                && st.is_running()
            {
                let upid = client.qemu_stop(node, *vmid, false).await?;
                wait(client, Some(upid), opts).await?;
            }
            let upid = client
                .qemu_delete(
                    node,
                    *vmid,
                    labwright_pve::api::qemu::DestroyOptions {
                        purge: true,
                        destroy_unreferenced_disks: true,
                        skiplock: false,
                    },
                )
                .await?;
            wait(client, Some(upid), opts).await
        }
        Op::CreateBackupJob { id, params: p } => {
            let job = BackupJobParams {
                extra: params(p),
                ..Default::default()
            };
            client.backup_job_create(id, &job).await
        }
        Op::UpdateBackupJob {
            id,
            params: p,
            delete,
        } => {
            let job = BackupJobParams {
                extra: params(p),
                ..Default::default()
            };
            let del: Vec<&str> = delete.iter().map(String::as_str).collect();
            client.backup_job_update(id, &job, &del).await
        }
    }
}

/// The journal, shared with the actions in flight (a pre-change snapshot is recorded
/// the moment it exists, not when its action ends).
struct SharedJournal(std::sync::Mutex<Journal>);

impl SharedJournal {
    fn record(
        &self,
        action: Option<&str>,
        event: &str,
        detail: Option<String>,
    ) -> Result<(), EngineError> {
        match self.0.lock() {
            Ok(mut j) => j.record(action, event, detail),
            Err(_) => Err(EngineError::Refused(
                "the journal is unusable after a panic".into(),
            )),
        }
    }
}

async fn run_action(
    client: &PveClient,
    plan: &Plan,
    a: &Action,
    opts: &WaitOptions,
    fw: &crate::firewall::FwApplyOptions,
    boot: &crate::bootstrap::BootApplyOptions,
    journal: &SharedJournal,
) -> Result<Option<(u32, String)>, String> {
    if let Op::Firewall(f) = &a.op {
        crate::firewall::run_firewall_op(client, f, fw).await?;
        return Ok(None);
    }
    let mut snap = None;
    let mut op = std::borrow::Cow::Borrowed(&a.op);
    if let (Some(name), Some((node, vmid))) = (&a.pre_snapshot, a.op.vm()) {
        let planned = match &a.op {
            Op::UpdateVm { digest, .. } => digest.as_deref(),
            _ => None,
        };
        let after = pre_snapshot(client, node, vmid, name, &plan.id, planned, opts).await?;
        journal
            .record(Some(&a.id), "snapshot", Some(format!("vm {vmid} {name}")))
            .map_err(|e| e.to_string())?;
        if let (Some(new), Op::UpdateVm { digest, .. }) = (after, op.to_mut()) {
            *digest = Some(new);
        }
        snap = Some((vmid, name.clone()));
    }
    if let Op::Bootstrap(b) = op.as_ref() {
        // Issue 5: seeds need the spec and the secret resolver.
        crate::bootstrap::run_boot_op(client, b, boot, opts).await?;
        return Ok(snap);
    }
    run_op(client, &op, opts).await.map_err(|e| e.to_string())?;
    Ok(snap)
}

/// Applies `plan`. With `dry_run` nothing is written: the report lists what would run.
pub async fn apply(
    client: &PveClient,
    plan: &Plan,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport, EngineError> {
    check_risk(plan, opts.allow_risk)?;
    crate::firewall::check_plan_proof(plan, opts.firewall.unsafe_skip_proof)?;
    let mut report = ApplyReport {
        plan: plan.id.clone(),
        dry_run: opts.dry_run,
        ..ApplyReport::default()
    };
    if opts.dry_run {
        for a in &plan.actions {
            for call in &a.api_calls {
                progress.note(&format!("would run {}: {call}", a.id));
            }
            report.not_run.push(a.id.clone());
        }
        return Ok(report);
    }
    let journal = Journal::open(opts.journal_dir.as_deref(), &plan.id)?;
    report.journal = opts
        .journal_dir
        .as_ref()
        .map(|_| journal.path().display().to_string());
    let journal = SharedJournal(std::sync::Mutex::new(journal));
    journal.record(
        None,
        "apply-start",
        Some(format!("{} actions", plan.actions.len())),
    )?;

    let by_id: BTreeMap<&str, &Action> = plan.actions.iter().map(|a| (a.id.as_str(), a)).collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut started: BTreeSet<&str> = BTreeSet::new();
    let mut locked_storages: BTreeSet<String> = BTreeSet::new();
    let mut failed = false;
    let mut inflight = FuturesUnordered::new();
    let conc = opts.concurrency.max(1);
    loop {
        if !failed {
            for a in &plan.actions {
                if inflight.len() >= conc {
                    break;
                }
                if started.contains(a.id.as_str()) {
                    continue;
                }
                let deps_ok = a
                    .depends_on
                    .iter()
                    .all(|d| done.contains(d.as_str()) || !by_id.contains_key(d.as_str()));
                let lock_free = a
                    .storage_lock
                    .as_ref()
                    .is_none_or(|s| !locked_storages.contains(s));
                if !deps_ok || !lock_free {
                    continue;
                }
                if let Some(s) = &a.storage_lock {
                    locked_storages.insert(s.clone());
                }
                started.insert(a.id.as_str());
                journal.record(
                    Some(&a.id),
                    "start",
                    a.pre_snapshot.clone().map(|s| format!("pre-snapshot {s}")),
                )?;
                progress.started(a);
                let wait_opts = opts.wait;
                let fw_opts = &opts.firewall;
                let boot_opts = &opts.bootstrap;
                let journal = &journal;
                inflight.push(async move {
                    let r =
                        run_action(client, plan, a, &wait_opts, fw_opts, boot_opts, journal).await;
                    (a, r)
                });
            }
        }
        let Some((a, result)) = inflight.next().await else {
            break;
        };
        if let Some(s) = &a.storage_lock {
            locked_storages.remove(s);
        }
        match result {
            Ok(snap) => {
                if let Some((vmid, name)) = snap {
                    report.snapshots.push((vmid, name));
                }
                journal.record(Some(&a.id), "done", None)?;
                progress.finished(a, Ok(()));
                done.insert(a.id.as_str());
                report.done.push(a.id.clone());
            }
            Err(e) => {
                journal.record(Some(&a.id), "failed", Some(e.clone()))?;
                progress.finished(a, Err(&e));
                report.failed.push((a.id.clone(), e));
                failed = true;
            }
        }
    }
    for a in &plan.actions {
        if !done.contains(a.id.as_str()) && !report.failed.iter().any(|(id, _)| id == &a.id) {
            report.not_run.push(a.id.clone());
        }
    }
    journal.record(
        None,
        "apply-end",
        Some(if report.ok() {
            "ok".into()
        } else {
            "failed".into()
        }),
    )?;
    Ok(report)
}
