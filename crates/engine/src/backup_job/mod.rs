//! The backup-job kind: scheduled vzdump jobs (`/cluster/backup`), their selection and
//! retention. A job moved by a migration (`from: backup-job:ID`) takes its new storage
//! in the migration's phase.

use labwright_spec::Spec;
use labwright_spec::model::{BackupJob, BackupSelection};
use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionId, ActionKind, Change, Held, JobStep, Risk};
use crate::canon::{Effect, b01, enum_name};
use crate::error::StepError;
use crate::observed::ObservedBackupJob;
use crate::op::{ExecCx, Op, Step, kv, params};
use crate::plan::{PlanCx, PlanOut};
use crate::validate::{Check, check};

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredBackupJob {
    pub id: String,
    pub schedule: String,
    pub storage: String,
    /// `None` = all guests.
    pub vmids: Option<Vec<u32>>,
    pub mode: String,
    pub compress: String,
    /// Canonical `prune-backups` (`keep-daily=7,keep-monthly=6,keep-weekly=4`).
    pub prune: String,
    pub enabled: bool,
    pub comment: Option<String>,
}

pub fn job_desired(spec: &Spec, job: &BackupJob) -> DesiredBackupJob {
    let r = &job.retention;
    let mut prune: Vec<String> = Vec::new();
    for (k, v) in [
        ("keep-daily", r.daily),
        ("keep-last", r.last),
        ("keep-monthly", r.monthly),
        ("keep-weekly", r.weekly),
        ("keep-yearly", r.yearly),
    ] {
        if let Some(v) = v {
            prune.push(format!("{k}={v}"));
        }
    }
    let storage = spec
        .storage
        .as_ref()
        .and_then(|s| {
            s.migrations
                .iter()
                .find(|m| m.from == format!("backup-job:{}", job.id) && m.phase <= spec.phase)
        })
        .map(|m| m.to.clone())
        .unwrap_or_else(|| job.storage.clone());
    DesiredBackupJob {
        id: job.id.clone(),
        schedule: job.schedule.clone(),
        storage,
        vmids: match &job.selection {
            BackupSelection::All(true) => None,
            BackupSelection::All(false) => Some(Vec::new()),
            BackupSelection::Vmids(ids) => {
                let mut v = ids.clone();
                v.sort_unstable();
                v.dedup();
                Some(v)
            }
        },
        mode: enum_name(&job.mode),
        compress: enum_name(&job.compress),
        prune: prune.join(","),
        enabled: job.enabled,
        comment: job.comment.clone(),
    }
}

/// What the executor does for a backup-job action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum JobOp {
    #[serde(rename = "create-backup-job")]
    Create {
        id: String,
        params: Vec<(String, String)>,
    },
    #[serde(rename = "update-backup-job")]
    Update {
        id: String,
        params: Vec<(String, String)>,
        delete: Vec<String>,
    },
}

impl Step for JobOp {
    fn api_calls(&self) -> Vec<String> {
        match self {
            JobOp::Create { id, params } => {
                vec![format!("POST /cluster/backup id={id} {}", kv(params))]
            }
            JobOp::Update { id, params, delete } => {
                let mut s = format!("PUT /cluster/backup/{id} {}", kv(params));
                if !delete.is_empty() {
                    s.push_str(&format!(" delete={}", delete.join(",")));
                }
                vec![s]
            }
        }
    }

    async fn run(&self, cx: &ExecCx<'_>) -> Result<(), StepError> {
        use labwright_pve::api::backup::BackupJobParams;
        match self {
            JobOp::Create { id, params: p } => {
                let job = BackupJobParams {
                    extra: params(p),
                    ..Default::default()
                };
                cx.client
                    .backup_job_create(id, &job)
                    .await
                    .map_err(StepError::ctx(format!("create backup job {id}")))
            }
            JobOp::Update {
                id,
                params: p,
                delete,
            } => {
                let job = BackupJobParams {
                    extra: params(p),
                    ..Default::default()
                };
                let del: Vec<&str> = delete.iter().map(String::as_str).collect();
                cx.client
                    .backup_job_update(id, &job, &del)
                    .await
                    .map_err(StepError::ctx(format!("update backup job {id}")))
            }
        }
    }
}

/// The kind's part of a plan: each declared job of this phase created or updated
/// (behind `allowBackupChanges`), undeclared jobs listed as foreign.
pub(crate) fn plan(cx: &PlanCx<'_>, out: &mut PlanOut) {
    let root = labwright_spec::YamlPath::root();
    let storages = cx.observed.storage_ids();
    for (i, spec_job) in cx.spec.backup_jobs().enumerate() {
        let Some(job) = cx.want.backup_jobs.get(&spec_job.id) else {
            continue;
        };
        let path = root.key("backups").key("jobs").index(i).to_string();
        out.own(&path);
        let (a0, h0) = (out.actions.len(), out.held.len());
        // A storage entry this plan adds counts as there; the job waits for it.
        let entry = ActionId::storage(format!("entry-{}", job.storage));
        let entry_planned = out.actions.iter().any(|a| a.id == entry);
        if !storages.is_empty() && !storages.contains(&job.storage.as_str()) && !entry_planned {
            out.held.push(Held::new(
                format!("backup-job/{}", job.id),
                format!(
                    "its storage `{}` is not on the node, so PVE would refuse the job",
                    job.storage
                ),
                format!(
                    "add storage `{}` on the node (Datacenter → Storage) or point the job at an existing one",
                    job.storage
                ),
            ));
        } else {
            let have = cx.observed.backup_jobs.get(&job.id);
            plan_job(cx, out, &cx.want.node, job, have);
            if entry_planned {
                for a in &mut out.actions[a0..] {
                    a.depends_on.push(entry.clone());
                }
            }
            // A moved job leaves its archives where they are: say which.
            let old = cx
                .observed
                .backup_jobs
                .get(&job.id)
                .and_then(|o| o.storage.clone())
                .filter(|s| *s != job.storage);
            if let (Some(old), Some(side)) = (old, cx.observed.storage.as_ref())
                && out.actions[a0..]
                    .iter()
                    .any(|a| a.id == ActionId::job(&job.id, JobStep::Update))
            {
                let list = side.old_backups.get(&old).cloned().unwrap_or_default();
                let shown: Vec<&str> = list.iter().take(5).map(String::as_str).collect();
                out.notes.push(format!(
                    "backup job `{}` moves from `{old}` to `{}`: the {} archive(s) on `{old}` stay there (nothing is copied or deleted){}{}",
                    job.id,
                    job.storage,
                    list.len(),
                    if shown.is_empty() { String::new() } else { format!(": {}", shown.join(", ")) },
                    if list.len() > shown.len() { format!(" and {} more", list.len() - shown.len()) } else { String::new() }
                ));
            }
        }
        for a in &mut out.actions[a0..] {
            a.elements.push(path.clone());
        }
        for h in &mut out.held[h0..] {
            h.elements.push(path.clone());
        }
    }
    // A migration of a job's target is carried out by the job's new storage.
    if let Some(st) = &cx.spec.storage {
        for (i, m) in st.migrations.iter().enumerate() {
            if m.from.starts_with("backup-job:") && m.phase <= cx.spec.phase {
                out.own(root.key("storage").key("migrations").index(i));
            }
        }
    }
    for job in cx.observed.backup_jobs.keys() {
        if !cx.want.backup_jobs.contains_key(job) {
            out.foreign.push(format!("backup job `{job}`"));
        }
    }
}

/// Each declared job exists with the declared retention.
pub(crate) fn validate(cx: &PlanCx<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    for job in cx.want.backup_jobs.values() {
        let name = format!("backup job {}", job.id);
        match cx.observed.backup_jobs.get(&job.id) {
            None => out.push(check(name, false, "absent on the node")),
            Some(o) => {
                out.push(check(
                    format!("{name} storage"),
                    o.storage.as_deref() == Some(job.storage.as_str()),
                    format!(
                        "node: {}; spec: {}",
                        o.storage.as_deref().unwrap_or("(none)"),
                        job.storage
                    ),
                ));
                out.push(check(
                    format!("{name} retention"),
                    o.prune == job.prune,
                    format!(
                        "node: {}; spec: {}",
                        if o.prune.is_empty() {
                            "(none)"
                        } else {
                            &o.prune
                        },
                        job.prune
                    ),
                ));
            }
        }
    }
    out
}

fn job_params(j: &DesiredBackupJob, node: &str) -> Vec<(String, String)> {
    let mut p = vec![
        ("schedule".to_string(), j.schedule.clone()),
        ("storage".to_string(), j.storage.clone()),
        ("mode".to_string(), j.mode.clone()),
        ("compress".to_string(), j.compress.clone()),
        ("enabled".to_string(), b01(j.enabled)),
        ("node".to_string(), node.to_string()),
    ];
    match &j.vmids {
        None => p.push(("all".into(), "1".into())),
        Some(ids) => p.push((
            "vmid".into(),
            ids.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        )),
    }
    if !j.prune.is_empty() {
        p.push(("prune-backups".into(), j.prune.clone()));
    }
    if let Some(c) = &j.comment {
        p.push(("comment".into(), c.clone()));
    }
    p
}

pub(crate) fn plan_job(
    cx: &PlanCx<'_>,
    out: &mut PlanOut,
    node: &str,
    j: &DesiredBackupJob,
    obs: Option<&ObservedBackupJob>,
) {
    let target = format!("backup-job/{}", j.id);
    let params = job_params(j, node);
    let vm_deps: Vec<ActionId> = out
        .actions
        .iter()
        .filter(|a| {
            a.kind == ActionKind::VmCreate
                && j.vmids
                    .as_ref()
                    .is_none_or(|ids| a.op.vm().is_some_and(|(_, id)| ids.contains(&id)))
        })
        .map(|a| a.id.clone())
        .collect();
    let action = match obs {
        None => Some(Action {
            id: ActionId::job(&j.id, JobStep::Create),
            kind: ActionKind::BackupCreate,
            target: target.clone(),
            risk: Risk::Low,
            phase: 0,
            pre_snapshot: None,
            rollback_hint: format!("delete the job: `pvesh delete /cluster/backup/{}`", j.id),
            expected_downtime: "none".into(),
            downtime_seconds: 0,
            reason: "declared in the spec, absent on the node".into(),
            changes: params.iter().map(|(k, v)| Change::added(k, v)).collect(),
            depends_on: vm_deps,
            api_calls: Vec::new(),
            elements: Vec::new(),
            storage_lock: None,
            op: Op::BackupJob(JobOp::Create {
                id: j.id.clone(),
                params: params.clone(),
            }),
        }),
        Some(o) => {
            let have_vmids: Option<Vec<u32>> = if o.all {
                None
            } else {
                let mut v: Vec<u32> = o
                    .vmid
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.trim().parse().ok())
                    .collect();
                v.sort_unstable();
                Some(v)
            };
            let mut changes = Vec::new();
            let mut cmp = |field: &str, have: Option<String>, want_v: Option<String>| {
                if have != want_v {
                    changes.push(Change {
                        field: field.into(),
                        before: have,
                        after: want_v,
                        effect: Effect::Hotplug,
                    });
                }
            };
            cmp("schedule", o.schedule.clone(), Some(j.schedule.clone()));
            cmp("storage", o.storage.clone(), Some(j.storage.clone()));
            cmp(
                "mode",
                Some(o.mode.clone().unwrap_or_else(|| "snapshot".into())),
                Some(j.mode.clone()),
            );
            cmp("compress", o.compress.clone(), Some(j.compress.clone()));
            cmp("enabled", Some(b01(o.enabled)), Some(b01(j.enabled)));
            let fmt_ids = |v: &Option<Vec<u32>>| match v {
                None => "all".to_string(),
                Some(ids) => ids.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
            };
            cmp(
                "selection",
                Some(fmt_ids(&have_vmids)),
                Some(fmt_ids(&j.vmids)),
            );
            cmp(
                "prune-backups",
                Some(o.prune.clone()),
                Some(j.prune.clone()),
            );
            cmp("comment", o.comment.clone(), j.comment.clone());
            if changes.is_empty() {
                None
            } else {
                let mut delete = Vec::new();
                if j.vmids.is_some() && o.all {
                    delete.push("all".to_string());
                }
                if j.comment.is_none() && o.comment.is_some() {
                    delete.push("comment".to_string());
                }
                let before: Vec<String> = changes
                    .iter()
                    .map(|c| format!("{}={}", c.field, c.before.clone().unwrap_or_default()))
                    .collect();
                Some(Action {
                    id: ActionId::job(&j.id, JobStep::Update),
                    kind: ActionKind::BackupUpdate,
                    target: target.clone(),
                    risk: Risk::Low,
                    phase: 0,
                    pre_snapshot: None,
                    rollback_hint: format!("set the previous values again: {}", before.join(" ")),
                    expected_downtime: "none".into(),
                    downtime_seconds: 0,
                    reason: "the job on the node differs from the spec".into(),
                    changes,
                    depends_on: vm_deps,
                    api_calls: Vec::new(),
                    elements: Vec::new(),
                    storage_lock: None,
                    op: Op::BackupJob(JobOp::Update {
                        id: j.id.clone(),
                        params: params.clone(),
                        delete,
                    }),
                })
            }
        }
    };
    let Some(action) = action else { return };
    if !cx.spec.safety_guards.allow_backup_changes {
        out.held.push(Held {
            elements: Vec::new(),
            target,
            reason: format!("{} held back by the backup guard", action.kind),
            unblock: "set `safetyGuards.allowBackupChanges: true`".into(),
        });
        return;
    }
    out.actions.push(action);
}
