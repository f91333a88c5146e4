//! The executor: runs a plan's actions in dependency order, independent ones
//! concurrently, creates on one storage one at a time (PVE's `can't lock file`),
//! with real pre-change snapshots (taken, awaited and verified first) and a journal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use futures_util::stream::{FuturesUnordered, StreamExt};
use labwright_pve::PveClient;

use crate::action::{Action, ActionId, Risk};
use crate::error::{EngineError, StepError};
use crate::journal::Journal;
use crate::op::{ExecCx, Op};
use crate::plan::Plan;
use crate::settings::Settings;

/// What the user approved for this apply (the engine's [`Settings`] say how it runs).
#[derive(Clone)]
pub struct ApplyOptions {
    /// Print what would be done; call nothing that writes.
    pub dry_run: bool,
    /// Highest risk applied without refusing (the CLI's `--allow-risk`).
    pub allow_risk: Risk,
    /// Destructive actions approved (`--allow-destroy`).
    pub allow_destroy: bool,
    /// Where the journal goes (`None` = no journal).
    pub journal_dir: Option<PathBuf>,
    /// The spec and secret resolver seed steps render from.
    pub seeds: crate::bootstrap::SeedSource,
    /// The node's shell over SSH (datasets, sanoid, migrations); `None`: not set up.
    pub host: Option<std::sync::Arc<dyn labwright_host::HostExec>>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            dry_run: false,
            allow_destroy: false,
            allow_risk: Risk::Medium,
            journal_dir: None,
            seeds: crate::bootstrap::SeedSource::default(),
            host: None,
        }
    }
}

/// Receives progress events (the CLI draws them on stderr).
pub trait Progress: Send + Sync {
    fn started(&self, action: &Action);
    fn finished(&self, action: &Action, result: Result<(), &str>);
    fn note(&self, line: &str);
    /// How far a running action is (`download 42%`); shown in place, not logged.
    fn step(&self, _action: &Action, _detail: &str) {}
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
    /// With `dry_run`: the calls each action would make, in order (secrets redacted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_run: Vec<WouldRun>,
}

/// One action of a dry run and the API calls it would make.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WouldRun {
    pub action: String,
    pub calls: Vec<String>,
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
    let destroys: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.destroys_data())
        .map(|a| a.id.to_string())
        .collect();
    if destroys.is_empty() || allowed {
        return Ok(());
    }
    Err(EngineError::Refused(format!(
        "the plan destroys guests or data ({}); pass --allow-destroy (and --allow-risk critical) if that is intended",
        destroys.join(", ")
    )))
}

/// Takes the pre-change snapshot and checks it exists before going on. A snapshot
/// left by an interrupted run of the same plan is verified and reused.
async fn pre_snapshot(
    cx: &ExecCx<'_>,
    node: &str,
    vmid: u32,
    name: &str,
    plan: &str,
    expect_digest: Option<&str>,
) -> Result<Option<String>, StepError> {
    let client = cx.client;
    let list_what = format!("list the snapshots of VM {vmid}");
    let list = client
        .qemu_snapshots(node, vmid)
        .await
        .map_err(StepError::ctx(&list_what))?;
    let digest_now = |what: &'static str| async move {
        client
            .qemu_config_current(node, vmid)
            .await
            .map(|c| c.digest)
            .map_err(StepError::ctx(format!("{what} of VM {vmid}")))
    };
    if !list.iter().any(|s| s.name == name) {
        // The snapshot rewrites the config file (new digest): check first that the
        // config is still the one the plan was made from.
        if let Some(want) = expect_digest
            && digest_now("read the config").await?.as_deref() != Some(want)
        {
            return Err(StepError::Refused(format!(
                "VM {vmid} changed since the plan was made; run `labwright plan` again"
            )));
        }
        let desc = format!(
            "labwright pre-change snapshot (plan {plan}); expires after a successful validate"
        );
        let what = format!("snapshot {name}");
        let upid = client
            .qemu_snapshot_create(node, vmid, name, Some(&desc), false)
            .await
            .map_err(StepError::ctx(&what))?;
        client
            .wait_task(&upid, cx.wait)
            .await
            .map_err(StepError::ctx(&what))?;
        let list = client
            .qemu_snapshots(node, vmid)
            .await
            .map_err(StepError::ctx(&list_what))?;
        if !list.iter().any(|s| s.name == name) {
            return Err(StepError::Refused(format!(
                "snapshot {name} was reported done but is not listed; refusing to go on"
            )));
        }
    }
    // The update that follows is sent with the digest the snapshot left.
    match expect_digest {
        Some(_) => digest_now("read the config after the snapshot").await,
        None => Ok(None),
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
    base: &ExecCx<'_>,
    plan: &Plan,
    a: &Action,
    journal: &SharedJournal,
    progress: &dyn Progress,
) -> Result<Option<(u32, String)>, StepError> {
    let step = |d: &str| progress.step(a, d);
    let cx = &ExecCx {
        client: base.client,
        settings: base.settings,
        wait: base.wait,
        seeds: base.seeds,
        progress: &step,
        host: base.host,
    };
    let mut snap = None;
    let mut op = std::borrow::Cow::Borrowed(&a.op);
    if let (Some(name), Some((node, vmid))) = (&a.pre_snapshot, a.op.vm()) {
        let planned = match &a.op {
            Op::Vm(v) => v.planned_digest(),
            _ => None,
        };
        let after = pre_snapshot(cx, node, vmid, name, &plan.id, planned).await?;
        journal.record(
            Some(&a.id.to_string()),
            "snapshot",
            Some(format!("vm {vmid} {name}")),
        )?;
        if let (Some(new), Op::Vm(v)) = (after, op.to_mut()) {
            v.set_digest(new);
        }
        snap = Some((vmid, name.clone()));
    }
    op.run(cx).await?;
    Ok(snap)
}

/// Applies `plan`. With `dry_run` nothing is written: the report lists what would run.
pub async fn apply(
    client: &PveClient,
    plan: &Plan,
    opts: &ApplyOptions,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<ApplyReport, EngineError> {
    check_risk(plan, opts.allow_risk)?;
    check_destroy(plan, opts.allow_destroy)?;
    crate::firewall::check_plan_proof(plan, settings.unsafe_skip_proof)?;
    let quiet = |_: &str| {};
    let cx = ExecCx {
        client,
        settings,
        wait: settings.wait,
        seeds: &opts.seeds,
        progress: &quiet,
        host: opts.host.as_deref(),
    };
    let mut report = ApplyReport {
        plan: plan.id.clone(),
        dry_run: opts.dry_run,
        ..ApplyReport::default()
    };
    if opts.dry_run {
        for a in &plan.actions {
            report.would_run.push(WouldRun {
                action: a.id.to_string(),
                calls: a.api_calls.clone(),
            });
            report.not_run.push(a.id.to_string());
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
    // A dead-man an interrupted bridge wave left armed would restore the old network
    // under this apply: the node answered this apply over fresh connections, so the
    // network it has is good — keep it.
    if let (Some(h), Some(spec)) = (cx.host, opts.seeds.spec.as_deref())
        && crate::bridge::has_internal_bridges(spec)
    {
        crate::bridge::confirm_leftover_deadman(h).await;
    }

    let by_id: BTreeMap<&ActionId, &Action> = plan.actions.iter().map(|a| (&a.id, a)).collect();
    let mut done: BTreeSet<&ActionId> = BTreeSet::new();
    let mut started: BTreeSet<&ActionId> = BTreeSet::new();
    let mut locked_storages: BTreeSet<String> = BTreeSet::new();
    let mut failed = false;
    let mut inflight = FuturesUnordered::new();
    let conc = settings.concurrency.max(1);
    // An exclusive action (a network reload) runs alone.
    let mut alone: Option<&ActionId> = None;
    loop {
        if !failed && alone.is_none() {
            for a in &plan.actions {
                if inflight.len() >= conc || alone.is_some() {
                    break;
                }
                if started.contains(&a.id) || (a.exclusive() && !inflight.is_empty()) {
                    continue;
                }
                let deps_ok = a
                    .depends_on
                    .iter()
                    .all(|d| done.contains(d) || !by_id.contains_key(d));
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
                started.insert(&a.id);
                if a.exclusive() {
                    alone = Some(&a.id);
                }
                journal.record(
                    Some(&a.id.to_string()),
                    "start",
                    a.pre_snapshot.clone().map(|s| format!("pre-snapshot {s}")),
                )?;
                progress.started(a);
                let journal = &journal;
                let cx = &cx;
                inflight.push(async move {
                    let r = run_action(cx, plan, a, journal, progress).await;
                    (a, r)
                });
            }
        }
        let Some((a, result)) = inflight.next().await else {
            break;
        };
        if alone == Some(&a.id) {
            alone = None;
        }
        if let Some(s) = &a.storage_lock {
            locked_storages.remove(s);
        }
        match result {
            Ok(snap) => {
                if let Some((vmid, name)) = snap {
                    report.snapshots.push((vmid, name));
                }
                journal.record(Some(&a.id.to_string()), "done", None)?;
                progress.finished(a, Ok(()));
                done.insert(&a.id);
                report.done.push(a.id.to_string());
            }
            Err(e) => {
                let e = e.to_string();
                journal.record(Some(&a.id.to_string()), "failed", Some(e.clone()))?;
                progress.finished(a, Err(&e));
                report.failed.push((a.id.to_string(), e));
                failed = true;
            }
        }
    }
    for a in &plan.actions {
        if !done.contains(&a.id) && !report.failed.iter().any(|(id, _)| a.id == id.as_str()) {
            report.not_run.push(a.id.to_string());
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
