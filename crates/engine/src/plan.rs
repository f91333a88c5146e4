//! Diff of desired and observed state into a plan: actions in dependency order, each
//! with its risk, downtime, pre-snapshot and rollback hint, and the exact API calls it
//! will make. The plan is data (serialisable), so it can be saved, reviewed and
//! applied later against the scan it was made from.

use std::collections::{BTreeMap, BTreeSet};

use labwright_pve::vmconfig::Drive;
use labwright_spec::Spec;
use labwright_spec::model::PowerState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canon::{Effect, classify, observed_value};
use crate::desired::{Desired, DesiredBackupJob, DesiredVm, desired};
use crate::observed::{Observed, ObservedBackupJob, ObservedVm};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl std::fmt::Display for Risk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        })
    }
}

impl std::str::FromStr for Risk {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "low" => Ok(Risk::Low),
            "medium" => Ok(Risk::Medium),
            "high" => Ok(Risk::High),
            "critical" => Ok(Risk::Critical),
            _ => Err(format!(
                "`{s}` is not a risk level (low, medium, high, critical)"
            )),
        }
    }
}

/// One field that changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub effect: Effect,
}

/// What the executor does for an action (the API calls, as data).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Firewall wave (issue 6): see `crate::firewall`.
    Firewall(crate::firewall::FwOp),
    /// Guest bootstrap (issue 5): OS images, seeds; see `crate::bootstrap`.
    Bootstrap(crate::bootstrap::BootOp),
    CreateVm {
        node: String,
        vmid: u32,
        params: Vec<(String, String)>,
    },
    UpdateVm {
        node: String,
        vmid: u32,
        set: Vec<(String, String)>,
        delete: Vec<String>,
        digest: Option<String>,
    },
    ResizeDisk {
        node: String,
        vmid: u32,
        disk: String,
        size: String,
    },
    StartVm {
        node: String,
        vmid: u32,
    },
    ShutdownVm {
        node: String,
        vmid: u32,
    },
    RebootVm {
        node: String,
        vmid: u32,
    },
    DestroyVm {
        node: String,
        vmid: u32,
    },
    CreateBackupJob {
        id: String,
        params: Vec<(String, String)>,
    },
    UpdateBackupJob {
        id: String,
        params: Vec<(String, String)>,
        delete: Vec<String>,
    },
}

impl Op {
    /// The API calls this op makes, as `METHOD path key=value …` lines.
    pub fn api_calls(&self) -> Vec<String> {
        let kv = |p: &[(String, String)]| {
            p.iter()
                .map(|(k, v)| format!("{k}={}", crate::redact::param_value(k, v)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            Op::Firewall(f) => f.api_calls(),
            Op::Bootstrap(b) => b.api_calls(),
            Op::CreateVm { node, vmid, params } => {
                vec![format!(
                    "POST /nodes/{node}/qemu vmid={vmid} {}",
                    kv(params)
                )]
            }
            Op::UpdateVm {
                node,
                vmid,
                set,
                delete,
                digest,
            } => {
                let mut s = format!("POST /nodes/{node}/qemu/{vmid}/config {}", kv(set));
                if !delete.is_empty() {
                    s.push_str(&format!(" delete={}", delete.join(",")));
                }
                if let Some(d) = digest {
                    s.push_str(&format!(" digest={d}"));
                }
                vec![s.trim_end().to_string()]
            }
            Op::ResizeDisk {
                node,
                vmid,
                disk,
                size,
            } => {
                vec![format!(
                    "PUT /nodes/{node}/qemu/{vmid}/resize disk={disk} size={size}"
                )]
            }
            Op::StartVm { node, vmid } => {
                vec![format!("POST /nodes/{node}/qemu/{vmid}/status/start")]
            }
            Op::ShutdownVm { node, vmid } => {
                vec![format!(
                    "POST /nodes/{node}/qemu/{vmid}/status/shutdown timeout=120"
                )]
            }
            Op::RebootVm { node, vmid } => {
                vec![format!("POST /nodes/{node}/qemu/{vmid}/status/reboot")]
            }
            Op::DestroyVm { node, vmid } => vec![
                format!("POST /nodes/{node}/qemu/{vmid}/status/stop"),
                format!("DELETE /nodes/{node}/qemu/{vmid} purge=1 destroy-unreferenced-disks=1"),
            ],
            Op::CreateBackupJob { id, params } => {
                vec![format!("POST /cluster/backup id={id} {}", kv(params))]
            }
            Op::UpdateBackupJob { id, params, delete } => {
                let mut s = format!("PUT /cluster/backup/{id} {}", kv(params));
                if !delete.is_empty() {
                    s.push_str(&format!(" delete={}", delete.join(",")));
                }
                vec![s]
            }
        }
    }

    /// The VM this op works on, if any.
    pub fn vm(&self) -> Option<(&str, u32)> {
        match self {
            Op::CreateVm { node, vmid, .. }
            | Op::UpdateVm { node, vmid, .. }
            | Op::ResizeDisk { node, vmid, .. }
            | Op::StartVm { node, vmid }
            | Op::ShutdownVm { node, vmid }
            | Op::RebootVm { node, vmid }
            | Op::DestroyVm { node, vmid } => Some((node, *vmid)),
            Op::Bootstrap(b) => b.vm(),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub target: String,
    pub risk: Risk,
    pub phase: u8,
    /// Name of the snapshot taken (and verified) before this action runs.
    pub pre_snapshot: Option<String>,
    pub rollback_hint: String,
    pub expected_downtime: String,
    pub downtime_seconds: u32,
    pub reason: String,
    pub changes: Vec<Change>,
    pub depends_on: Vec<String>,
    pub api_calls: Vec<String>,
    /// Storage whose creates must be serialised (`can't lock file`).
    pub storage_lock: Option<String>,
    pub op: Op,
}

/// Something the spec asks for that this plan will not do, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    pub target: String,
    pub reason: String,
    /// What would unblock it (a guard, a flag, a later version).
    pub unblock: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub format_version: u32,
    pub id: String,
    pub lab: String,
    pub node: String,
    /// Fingerprint of the scan this plan was computed from.
    pub scan_fingerprint: String,
    /// VMIDs the spec declares (the fingerprint covers their state).
    pub declared_vmids: Vec<u32>,
    /// The spec file and its SHA-256, for saved plans (set by the CLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_sha256: Option<String>,
    pub actions: Vec<Action>,
    /// Later-phase resources: listed, not applied.
    pub deferred: Vec<String>,
    /// Changes held back by a safety guard or not supported yet.
    pub blocked: Vec<Held>,
    /// Guests and jobs on the node that the spec does not declare (left alone).
    pub foreign: Vec<String>,
    /// Drift and other findings worth reading.
    pub notes: Vec<String>,
    /// Firewall lockout proof (issue 6); present when the spec declares a firewall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<crate::firewall::FirewallReport>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
    pub fn max_risk(&self) -> Option<Risk> {
        self.actions.iter().map(|a| a.risk).max()
    }
}

/// Estimated restart time of a guest (shutdown + boot), for downtime figures.
const REBOOT_SECONDS: u32 = 60;

fn vm_target(vmid: u32, name: &str) -> String {
    format!("vm/{vmid} {name}")
}

fn bool01(v: bool) -> String {
    if v { "1".into() } else { "0".into() }
}

/// Allocation string of a new disk: `storage:GiB,opts…`.
fn disk_create_value(d: &crate::desired::DesiredDisk) -> String {
    let gib = d.size_bytes.div_ceil(1024 * 1024 * 1024).max(1);
    let mut s = format!("{}:{gib}", d.storage);
    for (k, v) in &d.options {
        s.push_str(&format!(",{k}={v}"));
    }
    s
}

fn size_string(bytes: u64) -> String {
    labwright_spec::types::Size(bytes).to_string()
}

/// Options of an observed drive, canonical (PVE defaults filled in).
fn drive_options(d: &Drive) -> BTreeMap<String, String> {
    let mut o = BTreeMap::new();
    o.insert(
        "cache".into(),
        d.cache.clone().unwrap_or_else(|| "none".into()),
    );
    o.insert(
        "discard".into(),
        d.discard.clone().unwrap_or_else(|| "ignore".into()),
    );
    o.insert("iothread".into(), bool01(d.iothread.unwrap_or(false)));
    o.insert("ssd".into(), bool01(d.ssd.unwrap_or(false)));
    o.insert("backup".into(), bool01(d.backup.unwrap_or(true)));
    o
}

fn storage_of(file: &str) -> &str {
    file.split(':').next().unwrap_or_default()
}

struct Ctx<'a> {
    spec: &'a Spec,
    plan_tag: String,
    actions: Vec<Action>,
    blocked: Vec<Held>,
    notes: Vec<String>,
}

/// Computes the plan. `plan_tag` names pre-change snapshots (`lw-<tag>`).
pub fn plan(spec: &Spec, observed: &Observed) -> Plan {
    plan_with_firewall(spec, observed, None)
}

/// [`plan`] plus the firewall wave (issue 6) when the firewall was scanned.
pub fn plan_with_firewall(
    spec: &Spec,
    observed: &Observed,
    fw: Option<&crate::firewall::ObservedFirewall>,
) -> Plan {
    let want = desired(spec);
    let declared: BTreeSet<u32> = want.vms.keys().copied().collect();
    let fingerprint = observed.fingerprint(&declared);
    let mut ctx = Ctx {
        spec,
        plan_tag: fingerprint.chars().take(8).collect(),
        actions: Vec::new(),
        blocked: Vec::new(),
        notes: Vec::new(),
    };
    for vm in want.vms.values() {
        match observed.vms.get(&vm.vmid) {
            None => plan_create(&mut ctx, &want, vm),
            Some(obs) => plan_update(&mut ctx, &want, vm, obs),
        }
        for u in &vm.unsupported {
            ctx.blocked.push(Held {
                target: vm_target(vm.vmid, &vm.name),
                reason: u.clone(),
                unblock: "guest bootstrap arrives with a later labwright version".into(),
            });
        }
    }
    // Guest bootstrap (issue 5): OS images, seeds and re-seeds; see crate::bootstrap.
    crate::bootstrap::plan_bootstrap(
        spec,
        &want,
        observed,
        crate::bootstrap::PlanOut {
            actions: &mut ctx.actions,
            blocked: &mut ctx.blocked,
            notes: &mut ctx.notes,
            plan_tag: &ctx.plan_tag,
        },
    );
    for job in want.backup_jobs.values() {
        plan_backup_job(&mut ctx, &want, job, observed.backup_jobs.get(&job.id));
    }

    let mut foreign = Vec::new();
    for vm in observed.vms.values() {
        if want.vms.contains_key(&vm.vmid) {
            continue;
        }
        if vm.is_managed() {
            plan_destroy(&mut ctx, vm);
        } else {
            // The inventory's stats lag behind: a guest created a moment ago has no
            // name or status in `/cluster/resources` yet.
            let name = if vm.name.is_empty() {
                "(name not reported yet)".to_string()
            } else {
                format!("`{}`", vm.name)
            };
            foreign.push(format!(
                "VM {} {name} ({}) on {}",
                vm.vmid, vm.status, vm.node
            ));
        }
    }
    for job in observed.backup_jobs.keys() {
        if !want.backup_jobs.contains_key(job) {
            foreign.push(format!("backup job `{job}`"));
        }
    }

    // Firewall wave (issue 6): actions, guard and lockout proof live in crate::firewall.
    let mut firewall = None;
    if let Some(fw) = fw {
        let f = crate::firewall::plan_firewall(spec, fw, &ctx.actions);
        ctx.actions.extend(f.actions);
        ctx.blocked.extend(f.blocked);
        ctx.notes.extend(f.notes);
        firewall = f.report;
    }
    let deferred = labwright_policy_deferred(spec);
    let mut plan = Plan {
        format_version: FORMAT_VERSION,
        id: String::new(),
        lab: spec.metadata.name.clone(),
        node: spec.node.name.clone(),
        scan_fingerprint: crate::firewall::combined_fingerprint(&fingerprint, fw),
        declared_vmids: declared.iter().copied().collect(),
        spec_path: None,
        spec_sha256: None,
        actions: ctx.actions,
        deferred,
        blocked: ctx.blocked,
        foreign,
        notes: ctx.notes,
        firewall,
    };
    for a in &mut plan.actions {
        a.api_calls = a.op.api_calls();
    }
    let mut h = Sha256::new();
    h.update(plan.scan_fingerprint.as_bytes());
    h.update(serde_json::to_vec(&plan.actions).unwrap_or_default());
    plan.id = hex::encode(&h.finalize()[..4]);
    plan
}

/// Deferred items as the `phase-gate` rule words them.
fn labwright_policy_deferred(spec: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    let now = spec.phase;
    for vm in &spec.vms {
        if vm.phase > now {
            out.push(format!(
                "VM {} `{}` (phase {})",
                vm.vmid, vm.name, vm.phase.0
            ));
        } else {
            for (slot, nic) in &vm.nics {
                if let Some(r) = &nic.reattach
                    && r.phase > now
                {
                    out.push(format!(
                        "{} {slot} → {} (phase {})",
                        vm.name, r.bridge, r.phase.0
                    ));
                }
            }
        }
    }
    for (n, b) in &spec.networks.bridges {
        if b.phase > now {
            out.push(format!("bridge `{n}` (phase {})", b.phase.0));
        }
    }
    if let Some(b) = &spec.backups {
        for j in &b.jobs {
            if j.phase > now {
                out.push(format!("backup job `{}` (phase {})", j.id, j.phase.0));
            }
        }
    }
    if let Some(st) = &spec.storage {
        for p in &st.zfs_pools {
            if p.phase > now {
                out.push(format!("ZFS pool `{}` (phase {})", p.name, p.phase.0));
            }
        }
        for d in &st.datasets {
            if d.phase > now {
                out.push(format!("dataset `{}` (phase {})", d.name, d.phase.0));
            }
        }
        for s in &st.pve_storages {
            if s.phase > now {
                out.push(format!("storage `{}` (phase {})", s.id, s.phase.0));
            }
        }
        for m in &st.migrations {
            if m.phase > now {
                out.push(format!("migration `{}` (phase {})", m.name, m.phase.0));
            }
        }
    }
    if let Some(m) = spec.firewall.as_ref().and_then(|f| f.matrix.as_ref())
        && m.phase > now
    {
        out.push(format!("segment matrix (phase {})", m.phase.0));
    }
    if let Some(r) = &spec.router
        && r.phase > now
    {
        out.push(format!("router `{}` (phase {})", r.vm, r.phase.0));
    }
    out
}

/// A guest labwright created (it carries the ownership tag) that the spec no longer
/// declares. Destroying it needs `allowDestroy` in the spec and `--allow-destroy`.
fn plan_destroy(ctx: &mut Ctx<'_>, vm: &ObservedVm) {
    let target = vm_target(vm.vmid, &vm.name);
    if !ctx.spec.safety_guards.allow_destroy {
        ctx.blocked.push(Held {
            target,
            reason: "managed by labwright (lw-managed tag) but no longer in the spec: destroying it would delete its disks".into(),
            unblock: "set `safetyGuards.allowDestroy: true` and pass `--allow-destroy` to apply, or remove the lw-managed tag to keep it".into(),
        });
        return;
    }
    if vm.protection_on() {
        ctx.blocked.push(Held {
            target,
            reason: "the VM has PVE protection on".into(),
            unblock: "turn protection off on the node first".into(),
        });
        return;
    }
    ctx.actions.push(Action {
        id: format!("vm-{}-destroy", vm.vmid),
        kind: "vm.destroy".into(),
        target,
        risk: Risk::Critical,
        phase: 0,
        pre_snapshot: None,
        rollback_hint: format!(
            "none from labwright: restore VM {} from its last vzdump backup (`qmrestore`)",
            vm.vmid
        ),
        expected_downtime: "permanent (the guest is deleted)".into(),
        downtime_seconds: 0,
        reason: "carries the lw-managed tag, absent from the spec, and allowDestroy is set".into(),
        changes: vec![Change {
            field: "vm".into(),
            before: Some(vm.name.clone()),
            after: None,
            effect: Effect::DataDestructive,
        }],
        depends_on: Vec::new(),
        api_calls: Vec::new(),
        storage_lock: None,
        op: Op::DestroyVm {
            node: vm.node.clone(),
            vmid: vm.vmid,
        },
    });
}

fn plan_create(ctx: &mut Ctx<'_>, want: &Desired, vm: &DesiredVm) {
    let mut params: Vec<(String, String)> = vm
        .config
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (slot, d) in &vm.disks {
        params.push((slot.clone(), disk_create_value(d)));
    }
    if vm.config.get("bios").is_some_and(|b| b == "ovmf") {
        params.push((
            "efidisk0".into(),
            format!("{}:1,efitype=4m,pre-enrolled-keys=0", vm.storage),
        ));
    }
    params.sort();
    let changes = params
        .iter()
        .map(|(k, v)| Change {
            field: k.clone(),
            before: None,
            after: Some(v.clone()),
            effect: Effect::Hotplug,
        })
        .collect();
    let id = format!("vm-{}-create", vm.vmid);
    ctx.actions.push(Action {
        id: id.clone(),
        kind: "vm.create".into(),
        target: vm_target(vm.vmid, &vm.name),
        risk: Risk::Low,
        phase: ctx
            .spec
            .vms
            .iter()
            .find(|v| v.vmid == vm.vmid)
            .map_or(0, |v| v.phase.0),
        pre_snapshot: None,
        rollback_hint: format!(
            "destroy the new VM: `qm destroy {} --purge` (it holds no data yet)",
            vm.vmid
        ),
        expected_downtime: "none (new guest)".into(),
        downtime_seconds: 0,
        reason: "declared in the spec, absent on the node".into(),
        changes,
        depends_on: Vec::new(),
        api_calls: Vec::new(),
        storage_lock: Some(vm.storage.clone()),
        op: Op::CreateVm {
            node: want.node.clone(),
            vmid: vm.vmid,
            params,
        },
    });
    if vm.power == PowerState::Running {
        ctx.actions.push(Action {
            id: format!("vm-{}-start", vm.vmid),
            kind: "vm.start".into(),
            target: vm_target(vm.vmid, &vm.name),
            risk: Risk::Low,
            phase: 0,
            pre_snapshot: None,
            rollback_hint: format!("stop it again: `qm shutdown {}`", vm.vmid),
            expected_downtime: "none".into(),
            downtime_seconds: 0,
            reason: "desired power state is running".into(),
            changes: vec![Change {
                field: "status".into(),
                before: None,
                after: Some("running".into()),
                effect: Effect::Hotplug,
            }],
            depends_on: vec![id],
            api_calls: Vec::new(),
            storage_lock: None,
            op: Op::StartVm {
                node: want.node.clone(),
                vmid: vm.vmid,
            },
        });
    }
}

fn plan_update(ctx: &mut Ctx<'_>, want: &Desired, vm: &DesiredVm, obs: &ObservedVm) {
    let target = vm_target(vm.vmid, &vm.name);
    if obs.node != want.node {
        ctx.notes.push(format!(
            "VM {} runs on node `{}`, not `{}`; it is compared there (an HA move is not drift)",
            vm.vmid, obs.node, want.node
        ));
    }
    if let Some(lock) = &obs.lock {
        ctx.blocked.push(Held {
            target: target.clone(),
            reason: format!("the VM is locked ({lock}) by a running or interrupted task"),
            unblock:
                "wait for the task to finish (or `qm unlock` after checking it), then plan again"
                    .into(),
        });
        return;
    }
    let Some(config) = &obs.config else {
        ctx.notes
            .push(format!("VM {}: config not read; skipped", vm.vmid));
        return;
    };
    if !obs.is_managed() && !obs.tags.is_empty() {
        ctx.notes.push(format!(
            "VM {} exists without the lw-managed tag; labwright adopts it because the spec declares VMID {}",
            vm.vmid, vm.vmid
        ));
    }
    let running = obs.status == "running";
    let node = obs.node.clone();

    let mut changes = Vec::new();
    let mut set = Vec::new();
    for (k, want_v) in &vm.config {
        let have = observed_value(k, config.get(k).map(String::as_str), want_v);
        if &have != want_v {
            changes.push(Change {
                field: k.clone(),
                before: config
                    .get(k)
                    .cloned()
                    .or_else(|| crate::canon::pve_default(k).map(str::to_string)),
                after: Some(want_v.clone()),
                effect: classify(k),
            });
            set.push((k.clone(), want_v.clone()));
        }
    }
    // Disks: slot by slot.
    let mut resizes = Vec::new();
    for (slot, d) in &vm.disks {
        match config.get(slot).map(|v| Drive::parse(v)) {
            None => {
                changes.push(Change {
                    field: slot.clone(),
                    before: None,
                    after: Some(disk_create_value(d)),
                    effect: Effect::Hotplug,
                });
                set.push((slot.clone(), disk_create_value(d)));
            }
            Some(Err(e)) => ctx.notes.push(format!(
                "VM {} {slot}: cannot read the drive ({e})",
                vm.vmid
            )),
            Some(Ok(drive)) => {
                let have_size = drive
                    .size
                    .as_deref()
                    .and_then(|s| s.parse::<labwright_spec::types::Size>().ok())
                    .map_or(0, |s| s.bytes());
                if storage_of(&drive.file) != d.storage {
                    ctx.blocked.push(Held {
                        target: target.clone(),
                        reason: format!(
                            "{slot} is on `{}`, the spec says `{}`: moving a disk is data-destructive if interrupted",
                            storage_of(&drive.file),
                            d.storage
                        ),
                        unblock: "move it by hand (`qm disk move`) or change the spec".into(),
                    });
                }
                if d.size_bytes > have_size {
                    resizes.push((slot.clone(), have_size, d.size_bytes));
                } else if d.size_bytes < have_size {
                    ctx.blocked.push(Held {
                        target: target.clone(),
                        reason: format!(
                            "{slot} is {} on the node, the spec says {}: disks never shrink (data-destructive)",
                            size_string(have_size),
                            size_string(d.size_bytes)
                        ),
                        unblock: "raise the size in the spec to the current size".into(),
                    });
                }
                let have_opts = drive_options(&drive);
                if have_opts != d.options {
                    let mut nd = drive.clone();
                    for (k, v) in &d.options {
                        match k.as_str() {
                            "cache" => nd.cache = Some(v.clone()),
                            "discard" => nd.discard = Some(v.clone()),
                            "iothread" => nd.iothread = Some(v == "1"),
                            "ssd" => nd.ssd = Some(v == "1"),
                            "backup" => nd.backup = Some(v == "1"),
                            _ => {}
                        }
                    }
                    let new = nd
                        .to_property_string()
                        .map(|p| p.to_canonical_string())
                        .unwrap_or_default();
                    let fmt = |o: &BTreeMap<String, String>| {
                        o.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    changes.push(Change {
                        field: format!("{slot} options"),
                        before: Some(fmt(&have_opts)),
                        after: Some(fmt(&d.options)),
                        effect: Effect::NeedsReboot,
                    });
                    set.push((slot.clone(), new));
                }
            }
        }
    }

    let mut last: Option<String> = None;
    if !set.is_empty() {
        let needs_reboot = changes.iter().any(|c| c.effect == Effect::NeedsReboot);
        let down = needs_reboot && running;
        let id = format!("vm-{}-update", vm.vmid);
        let snap = down.then(|| format!("lw-{}", ctx.plan_tag));
        ctx.actions.push(Action {
            id: id.clone(),
            kind: "vm.update".into(),
            target: target.clone(),
            risk: if down { Risk::Medium } else { Risk::Low },
            phase: 0,
            pre_snapshot: snap.clone(),
            rollback_hint: match &snap {
                Some(s) => format!(
                    "roll back to the pre-change snapshot: `qm rollback {} {s}`",
                    vm.vmid
                ),
                None => format!(
                    "set the previous values again (see changes) with `qm set {}`",
                    vm.vmid
                ),
            },
            expected_downtime: if down {
                format!(
                    "~{REBOOT_SECONDS}s (reboot to apply {})",
                    reboot_fields(&changes)
                )
            } else if needs_reboot {
                "none (VM stopped; applies at next start)".into()
            } else {
                "none (hotplug)".into()
            },
            downtime_seconds: if down { REBOOT_SECONDS } else { 0 },
            reason: "the node differs from the spec".into(),
            changes: changes.clone(),
            depends_on: Vec::new(),
            api_calls: Vec::new(),
            storage_lock: None,
            op: Op::UpdateVm {
                node: node.clone(),
                vmid: vm.vmid,
                set,
                delete: Vec::new(),
                digest: obs.digest.clone(),
            },
        });
        last = Some(id.clone());
        if down {
            ctx.actions.push(Action {
                id: format!("vm-{}-reboot", vm.vmid),
                kind: "vm.reboot".into(),
                target: target.clone(),
                risk: Risk::Medium,
                phase: 0,
                pre_snapshot: None,
                rollback_hint: format!(
                    "if the guest does not come back: `qm rollback {} lw-{}`",
                    vm.vmid, ctx.plan_tag
                ),
                expected_downtime: format!("~{REBOOT_SECONDS}s"),
                downtime_seconds: REBOOT_SECONDS,
                reason: format!("apply pending {}", reboot_fields(&changes)),
                changes: Vec::new(),
                depends_on: vec![id],
                api_calls: Vec::new(),
                storage_lock: None,
                op: Op::RebootVm {
                    node: node.clone(),
                    vmid: vm.vmid,
                },
            });
            last = Some(format!("vm-{}-reboot", vm.vmid));
        }
    } else if !crate::bootstrap::reboot_pending(obs).is_empty() && running {
        // The config already says what the spec says, but part of it waits for a
        // restart (an apply interrupted before its reboot, or a hand edit). A seed CD
        // pending removal does not count (issue 5: see crate::bootstrap).
        let keys: Vec<String> = crate::bootstrap::reboot_pending(obs).into_iter().collect();
        let id = format!("vm-{}-reboot", vm.vmid);
        ctx.actions.push(Action {
            id: id.clone(),
            kind: "vm.reboot".into(),
            target: target.clone(),
            risk: Risk::Medium,
            phase: 0,
            pre_snapshot: None,
            rollback_hint: format!(
                "the pending values match the spec; to undo them, set the old values with `qm set {}` and reboot again",
                vm.vmid
            ),
            expected_downtime: format!("~{REBOOT_SECONDS}s"),
            downtime_seconds: REBOOT_SECONDS,
            reason: format!("apply pending {}", keys.join(", ")),
            changes: keys
                .iter()
                .map(|k| Change {
                    field: k.clone(),
                    before: None,
                    after: config.get(k).cloned(),
                    effect: Effect::NeedsReboot,
                })
                .collect(),
            depends_on: Vec::new(),
            api_calls: Vec::new(),
            storage_lock: None,
            op: Op::RebootVm {
                node: node.clone(),
                vmid: vm.vmid,
            },
        });
        last = Some(id);
    }
    for (slot, before, after) in resizes {
        let id = format!("vm-{}-resize-{slot}", vm.vmid);
        ctx.actions.push(Action {
            id: id.clone(),
            kind: "vm.resize".into(),
            target: target.clone(),
            risk: Risk::Medium,
            phase: 0,
            pre_snapshot: None,
            rollback_hint:
                "a disk cannot shrink again: restore from backup if the grow must be undone".into(),
            expected_downtime: "none (online grow; the guest must grow its filesystem)".into(),
            downtime_seconds: 0,
            reason: format!("{slot} is smaller than declared"),
            changes: vec![Change {
                field: format!("{slot} size"),
                before: Some(size_string(before)),
                after: Some(size_string(after)),
                effect: Effect::Hotplug,
            }],
            depends_on: last.iter().cloned().collect(),
            api_calls: Vec::new(),
            storage_lock: None,
            op: Op::ResizeDisk {
                node: node.clone(),
                vmid: vm.vmid,
                disk: slot,
                size: size_string(after),
            },
        });
        last = Some(id);
    }
    match (vm.power, running) {
        (PowerState::Running, false) => ctx.actions.push(Action {
            id: format!("vm-{}-start", vm.vmid),
            kind: "vm.start".into(),
            target: target.clone(),
            risk: Risk::Low,
            phase: 0,
            pre_snapshot: None,
            rollback_hint: format!("stop it again: `qm shutdown {}`", vm.vmid),
            expected_downtime: "none".into(),
            downtime_seconds: 0,
            reason: format!("desired running, node says {}", obs.status),
            changes: vec![Change {
                field: "status".into(),
                before: Some(obs.status.clone()),
                after: Some("running".into()),
                effect: Effect::Hotplug,
            }],
            depends_on: last.iter().cloned().collect(),
            api_calls: Vec::new(),
            storage_lock: None,
            op: Op::StartVm {
                node: node.clone(),
                vmid: vm.vmid,
            },
        }),
        (PowerState::Stopped, true) => ctx.actions.push(Action {
            id: format!("vm-{}-shutdown", vm.vmid),
            kind: "vm.shutdown".into(),
            target: target.clone(),
            risk: Risk::Medium,
            phase: 0,
            pre_snapshot: None,
            rollback_hint: format!("start it again: `qm start {}`", vm.vmid),
            expected_downtime: "until started again (desired state is stopped)".into(),
            downtime_seconds: 0,
            reason: "desired power state is stopped".into(),
            changes: vec![Change {
                field: "status".into(),
                before: Some("running".into()),
                after: Some("stopped".into()),
                effect: Effect::NeedsReboot,
            }],
            depends_on: last.iter().cloned().collect(),
            api_calls: Vec::new(),
            storage_lock: None,
            op: Op::ShutdownVm {
                node: node.clone(),
                vmid: vm.vmid,
            },
        }),
        _ => {}
    }
    // Declared NICs and disks are owned; others on the VM are reported, never removed.
    for k in config.keys() {
        let is_slot = (k.starts_with("net")
            || k.starts_with("scsi")
            || k.starts_with("virtio")
            || k.starts_with("sata"))
            && k.chars().last().is_some_and(|c| c.is_ascii_digit());
        if is_slot && !vm.config.contains_key(k) && !vm.disks.contains_key(k) {
            ctx.notes.push(format!(
                "VM {} has `{k}`, which the spec does not declare; left as is",
                vm.vmid
            ));
        }
    }
}

fn reboot_fields(changes: &[Change]) -> String {
    let f: Vec<&str> = changes
        .iter()
        .filter(|c| c.effect == Effect::NeedsReboot)
        .map(|c| c.field.as_str())
        .collect();
    f.join(", ")
}

fn job_params(j: &DesiredBackupJob, node: &str) -> Vec<(String, String)> {
    let mut p = vec![
        ("schedule".to_string(), j.schedule.clone()),
        ("storage".to_string(), j.storage.clone()),
        ("mode".to_string(), j.mode.clone()),
        ("compress".to_string(), j.compress.clone()),
        ("enabled".to_string(), bool01(j.enabled)),
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

fn plan_backup_job(
    ctx: &mut Ctx<'_>,
    want: &Desired,
    j: &DesiredBackupJob,
    obs: Option<&ObservedBackupJob>,
) {
    let target = format!("backup-job/{}", j.id);
    let params = job_params(j, &want.node);
    let vm_deps: Vec<String> = ctx
        .actions
        .iter()
        .filter(|a| {
            a.kind == "vm.create"
                && j.vmids
                    .as_ref()
                    .is_none_or(|ids| a.op.vm().is_some_and(|(_, id)| ids.contains(&id)))
        })
        .map(|a| a.id.clone())
        .collect();
    let action = match obs {
        None => Some(Action {
            id: format!("backup-{}-create", j.id),
            kind: "backup.create".into(),
            target: target.clone(),
            risk: Risk::Low,
            phase: 0,
            pre_snapshot: None,
            rollback_hint: format!("delete the job: `pvesh delete /cluster/backup/{}`", j.id),
            expected_downtime: "none".into(),
            downtime_seconds: 0,
            reason: "declared in the spec, absent on the node".into(),
            changes: params
                .iter()
                .map(|(k, v)| Change {
                    field: k.clone(),
                    before: None,
                    after: Some(v.clone()),
                    effect: Effect::Hotplug,
                })
                .collect(),
            depends_on: vm_deps,
            api_calls: Vec::new(),
            storage_lock: None,
            op: Op::CreateBackupJob {
                id: j.id.clone(),
                params: params.clone(),
            },
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
            cmp("enabled", Some(bool01(o.enabled)), Some(bool01(j.enabled)));
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
                    id: format!("backup-{}-update", j.id),
                    kind: "backup.update".into(),
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
                    storage_lock: None,
                    op: Op::UpdateBackupJob {
                        id: j.id.clone(),
                        params: params.clone(),
                        delete,
                    },
                })
            }
        }
    };
    let Some(action) = action else { return };
    if !ctx.spec.safety_guards.allow_backup_changes {
        ctx.blocked.push(Held {
            target,
            reason: format!("{} held back by the backup guard", action.kind),
            unblock: "set `safetyGuards.allowBackupChanges: true`".into(),
        });
        return;
    }
    ctx.actions.push(action);
}
