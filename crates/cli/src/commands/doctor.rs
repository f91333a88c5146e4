//! `labwright doctor`: is this machine ready to work on the node?

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use labwright_engine::preflight::{privileges, space};
use labwright_pve::{Error as PveError, TlsMode};
use serde::Serialize;

use super::common;
use crate::cli::GlobalArgs;
use crate::target::{self, Connected};
use crate::{exit, ui};

/// `doctor`'s arguments (its help text is the `Command::Doctor` doc comment).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright doctor\n  labwright doctor specs/nas.desired.yaml --target lab\n  labwright doctor specs/nas.desired.yaml -o json"
)]
pub struct DoctorArgs {
    /// A spec: check what its plan needs (privileges, SSH, storage) instead of the
    /// full list.
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

/// One check's outcome.
#[derive(Debug, Serialize)]
pub struct Finding {
    /// Stable id: `endpoint`, `tls`, `clock`, `version`, `privileges`, `ssh`, `storage`.
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do about it (warn and fail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// `Privilege@path` the token lacks (privileges check only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

fn finding(check: &'static str, status: Status, detail: impl Into<String>) -> Finding {
    Finding {
        check,
        status,
        detail: detail.into(),
        fix: None,
        missing: Vec::new(),
    }
}

impl Finding {
    fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = Some(f.into());
        self
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DoctorReport {
    pub target: String,
    pub ok: bool,
    pub checks: Vec<Finding>,
}

impl crate::print::Document for DoctorReport {
    fn text(&self) -> String {
        let mut s = String::new();
        for f in &self.checks {
            let word = match f.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "fail",
                Status::Skip => "skip",
            };
            s.push_str(&format!("{word}  {:<10} {}\n", f.check, f.detail));
            if let Some(fix) = &f.fix {
                s.push_str(&format!("      {:<10} → {fix}\n", ""));
            }
        }
        let fails = self
            .checks
            .iter()
            .filter(|f| f.status == Status::Fail)
            .count();
        s.push_str(&if fails == 0 {
            format!("\n{}: ready\n", self.target)
        } else {
            format!("\n{}: {fails} check(s) failed\n", self.target)
        });
        s
    }

    fn markdown(&self) -> String {
        let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ");
        let mut s = format!(
            "### labwright doctor: {}\n\n| check | status | detail | what to do |\n|---|---|---|---|\n",
            cell(&self.target)
        );
        for f in &self.checks {
            let word = serde_json::to_value(f.status)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            s.push_str(&format!(
                "| {} | {word} | {} | {} |\n",
                f.check,
                cell(&f.detail),
                cell(f.fix.as_deref().unwrap_or(""))
            ));
        }
        s
    }
}

pub fn run(args: &DoctorArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = match &args.spec {
        Some(p) => Some(common::load_checked(p, g)?),
        None => None,
    };
    let rt = common::runtime()?;
    let report = rt.block_on(async {
        let conn = target::connect(&g.target).await?;
        ui::info(g, &format!("target: {}", conn.label));
        let checks = checks(&conn, loaded.as_ref(), args, g).await;
        let label = conn.label.clone();
        conn.close().await;
        anyhow::Ok(DoctorReport {
            target: label,
            ok: !checks.iter().any(|c| c.status == Status::Fail),
            checks,
        })
    })?;
    crate::print::print(g, &report)?;
    Ok(ExitCode::from(if report.ok {
        exit::OK
    } else {
        exit::ERROR
    }))
}

/// Marks the checks that could not run (those not reported already).
fn skip_all(out: &mut Vec<Finding>, from: &[&'static str], why: &str) {
    for c in from {
        if !out.iter().any(|f| f.check == *c) {
            out.push(finding(c, Status::Skip, why));
        }
    }
}

const AFTER_CONNECT: [&str; 5] = ["clock", "version", "privileges", "ssh", "storage"];

async fn checks(
    conn: &Connected,
    loaded: Option<&labwright_spec::Loaded>,
    args: &DoctorArgs,
    g: &GlobalArgs,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let url = conn.config.base_url.clone();
    let version = match conn.client.version().await {
        Ok(v) => {
            out.push(finding("endpoint", Status::Ok, format!("{url} answers")));
            out.push(tls_ok(&conn.config.tls));
            v
        }
        Err(e) => {
            endpoint_failed(&mut out, &url, &e);
            skip_all(&mut out, &AFTER_CONNECT, "the API did not answer");
            return out;
        }
    };
    let node = node_name(conn, loaded).await;
    out.push(clock(conn, node.as_deref()).await);
    out.push(match version.major() {
        Some(8 | 9) => finding(
            "version",
            Status::Ok,
            format!("Proxmox VE {}", version.version),
        ),
        _ => finding(
            "version",
            Status::Fail,
            format!("Proxmox VE {} is not supported", version.version),
        )
        .fix("labwright supports Proxmox VE 8.x and 9.x; upgrade the node"),
    });
    let plan = match loaded {
        None => None,
        Some(l) => {
            let path = args.spec.clone().unwrap_or_default();
            match super::plan::compute(l, &path, conn, g).await {
                Ok(p) => Some(p),
                Err(e) => {
                    out.push(
                        finding(
                            "privileges",
                            Status::Fail,
                            format!("cannot plan the spec: {e:#}"),
                        )
                        .fix("fix the error above, then run doctor again"),
                    );
                    None
                }
            }
        }
    };
    if loaded.is_none() || plan.is_some() {
        out.push(privilege_check(conn, plan.as_ref()).await);
    }
    out.push(ssh(conn, loaded.map(|l| &l.spec)).await);
    out.push(
        storage(
            conn,
            node.as_deref(),
            loaded.map(|l| &l.spec),
            plan.as_ref(),
        )
        .await,
    );
    out
}

fn tls_ok(tls: &TlsMode) -> Finding {
    match tls {
        TlsMode::Fingerprint(fp) => {
            finding("tls", Status::Ok, format!("the certificate matches the pinned {fp}"))
        }
        TlsMode::CaFile(p) => finding(
            "tls",
            Status::Ok,
            format!("the certificate is signed by the CA in {}", p.display()),
        ),
        TlsMode::CaPem(_) => finding("tls", Status::Ok, "the certificate is signed by the given CA"),
        TlsMode::SystemRoots => finding(
            "tls",
            Status::Ok,
            "the certificate is trusted by this machine's CA store",
        ),
        TlsMode::Insecure => finding("tls", Status::Warn, "TLS verification is off (--insecure)")
            .fix("pin the node's certificate: `fingerprint = \"…\"` in the profile (see `pvenode cert info` on the node)"),
    }
}

fn endpoint_failed(out: &mut Vec<Finding>, url: &str, e: &PveError) {
    match e {
        PveError::FingerprintMismatch { expected, got, .. } => {
            out.push(finding("endpoint", Status::Ok, format!("{url} answers")));
            out.push(
                finding(
                    "tls",
                    Status::Fail,
                    format!("the node's certificate is {got}, the pin is {expected}"),
                )
                .fix("if the certificate was renewed, compare `pvenode cert info` on the node's console and update the pinned fingerprint; otherwise something sits between you and the node"),
            );
        }
        PveError::CertificateRejected { reason, .. } => {
            out.push(finding("endpoint", Status::Ok, format!("{url} answers")));
            out.push(
                finding("tls", Status::Fail, format!("the certificate is not trusted: {reason}"))
                    .fix("trust the node's CA (`ca-file = \"/path/pve-root-ca.pem\"`) or pin its fingerprint"),
            );
        }
        PveError::Api(a) if a.status == 401 => {
            out.push(finding("endpoint", Status::Ok, format!("{url} answers")));
            out.push(finding("tls", Status::Ok, "verified as configured"));
            out.push(
                finding(
                    "privileges",
                    Status::Fail,
                    "the API token is not accepted (401)",
                )
                .fix("check the token id and secret; `labwright token create` makes a new one"),
            );
        }
        other => {
            out.push(
                finding("endpoint", Status::Fail, format!("cannot reach {url}: {other}"))
                    .fix("check the URL (https://HOST:8006), that the node is up and that nothing blocks port 8006"),
            );
            out.push(finding("tls", Status::Skip, "no connection"));
        }
    }
}

/// The spec's node, else the first node the API lists.
async fn node_name(conn: &Connected, loaded: Option<&labwright_spec::Loaded>) -> Option<String> {
    if let Some(l) = loaded {
        return Some(l.spec.node.name.clone());
    }
    conn.client
        .nodes()
        .await
        .ok()
        .and_then(|n| n.into_iter().next().map(|n| n.node))
}

async fn clock(conn: &Connected, node: Option<&str>) -> Finding {
    let Some(node) = node else {
        return finding("clock", Status::Skip, "no node to ask");
    };
    let before = SystemTime::now();
    let t = match conn.client.node_time(node).await {
        Ok(t) => t,
        Err(e) => {
            return finding(
                "clock",
                Status::Warn,
                format!("cannot read the node's time: {e}"),
            )
            .fix("the token needs Sys.Audit on /nodes/{node}");
        }
    };
    let after = SystemTime::now();
    let mid = before + after.duration_since(before).unwrap_or_default() / 2;
    let local = mid
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let skew = local - t.time as f64;
    let abs = Duration::from_secs_f64(skew.abs());
    let words = format!(
        "this machine is {:.0} s {} node `{node}`",
        abs.as_secs_f64(),
        if skew >= 0.0 { "ahead of" } else { "behind" }
    );
    // Tickets are refused 5 min early; task times and snapshot expiry drift before.
    if abs > Duration::from_secs(300) {
        finding("clock", Status::Fail, words)
            .fix("enable NTP on both (`timedatectl set-ntp true`, chrony on the node)")
    } else if abs > Duration::from_secs(30) {
        finding("clock", Status::Warn, words).fix("enable NTP on both (`timedatectl set-ntp true`)")
    } else {
        finding("clock", Status::Ok, format!("clocks agree ({words})"))
    }
}

/// Apply's check before the first write: the token holds what the plan needs, or
/// apply refuses with the list (a failure to read the permissions only warns: the
/// node still checks every call).
pub async fn preflight_privileges(
    conn: &Connected,
    plan: &labwright_engine::Plan,
) -> anyhow::Result<()> {
    use labwright_engine::preflight::privileges::Refusal;
    match privileges::check(&conn.client, plan, is_root(conn)).await {
        Ok(()) => Ok(()),
        Err(e @ Refusal::Missing { .. }) => {
            anyhow::bail!(
                "{e}
  help: {}",
                super::token::FIX_HINT
            )
        }
        Err(e @ Refusal::Read(_)) => {
            ui::warn(&format!("{e}; the node checks each call instead"));
            Ok(())
        }
    }
}

/// Validate's check before its clean-up (seed detach and delete, snapshot expiry):
/// refused with the list, and `--no-cleanup` as the way to validate read-only.
pub async fn preflight_cleanup(
    conn: &Connected,
    spec: &labwright_spec::Spec,
) -> anyhow::Result<()> {
    let vmids: Vec<u32> = spec
        .vms
        .iter()
        .filter(|v| v.phase <= spec.phase)
        .map(|v| v.vmid)
        .collect();
    let iso = labwright_engine::bootstrap::iso_storage(spec);
    let reqs = privileges::for_cleanup(&spec.node.name, &vmids, &iso);
    let perms = match conn.client.permissions(None, None).await {
        Ok(p) => p,
        Err(e) => {
            ui::warn(&format!(
                "cannot read the token's permissions: {e}; the node checks each call instead"
            ));
            return Ok(());
        }
    };
    let needs = privileges::missing_needs(&privileges::missing(&reqs, &perms, is_root(conn)));
    if needs.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = needs.iter().map(|n| format!("  - {n}")).collect();
    anyhow::bail!(
        "the API token lacks {} privilege(s) validate's clean-up needs (seed removal, snapshot expiry); nothing was checked or changed:\n{}\n  help: run `labwright validate --no-cleanup` to check read-only, or {}",
        needs.len(),
        list.join("\n"),
        super::token::FIX_HINT
    )
}

/// A `root@pam` login (ticket), the only caller PVE lets through an endpoint without
/// permissions (wiping a disk): not even root's own token, privilege separation off.
fn is_root(conn: &Connected) -> bool {
    match &conn.config.credentials {
        labwright_pve::Credentials::Password { username, .. }
        | labwright_pve::Credentials::Ticket { username, .. } => username == "root@pam",
        _ => false,
    }
}

async fn privilege_check(conn: &Connected, plan: Option<&labwright_engine::Plan>) -> Finding {
    let perms = match conn.client.permissions(None, None).await {
        Ok(p) => p,
        Err(e) => {
            return finding(
                "privileges",
                Status::Fail,
                format!("cannot read the token's permissions: {e}"),
            )
            .fix("check the token; `labwright token create` makes one with the needed role");
        }
    };
    let (reqs, what) = match plan {
        Some(p) => (
            privileges::for_plan(p),
            format!("the plan ({} action(s))", p.actions.len()),
        ),
        None => (
            privileges::full_requirements(),
            "labwright's full list".to_string(),
        ),
    };
    let missing = privileges::missing(&reqs, &perms, is_root(conn));
    let needs = privileges::missing_needs(&missing);
    let unknown = plan.map(privileges::unknown_calls).unwrap_or_default();
    if needs.is_empty() {
        let f = finding(
            "privileges",
            if unknown.is_empty() {
                Status::Ok
            } else {
                Status::Warn
            },
            format!("the token holds what {what} needs"),
        );
        if unknown.is_empty() {
            return f;
        }
        return finding(
            "privileges",
            Status::Warn,
            format!(
                "{}; not checked (unknown to labwright's table): {}",
                f.detail,
                unknown.join(", ")
            ),
        );
    }
    let list: Vec<String> = needs.iter().map(ToString::to_string).collect();
    let mut f = finding(
        "privileges",
        Status::Fail,
        format!("the token lacks what {what} needs: {}", list.join(", ")),
    )
    .fix(super::token::FIX_HINT);
    f.missing = list;
    f
}

async fn ssh(conn: &Connected, spec: Option<&labwright_spec::Spec>) -> Finding {
    let needed = spec.is_some_and(labwright_engine::preflight::spec_needs_host);
    let target = match crate::host::target_for(conn, spec) {
        Ok(t) => t,
        Err(e) => return finding("ssh", Status::Fail, format!("{e:#}")),
    };
    let Some(target) = target else {
        return if needed {
            finding("ssh", Status::Fail, "the spec has ZFS datasets or migrations, which need the node's SSH, and none is configured")
                .fix("set `ssh = \"root@NODE\"` in the target's profile, `node.ssh` in the spec, or LABWRIGHT_SSH_TARGET")
        } else {
            finding(
                "ssh",
                Status::Skip,
                if spec.is_some() {
                    "no SSH target configured, and the spec needs none"
                } else {
                    "no SSH target configured (only ZFS datasets and sanoid need one)"
                },
            )
        };
    };
    use labwright_host::{HostCmd, HostExec};
    let shown = target.display();
    let sh = labwright_host::Ssh::new(target);
    let run = |argv: &[&str]| HostCmd::new(argv.iter().copied());
    let zfs = run(&["zfs", "list", "-H", "-o", "name"]);
    let result = match sh.run(&zfs).await {
        Err(e) => Err(e.to_string()),
        Ok(o) if !o.ok() => Err(format!(
            "`zfs` does not work there (exit {}): {}",
            o.code,
            o.stderr.trim()
        )),
        Ok(_) => Ok(()),
    };
    let f = match result {
        Err(e) => finding("ssh", if needed || spec.is_none() { Status::Fail } else { Status::Warn }, format!("{shown}: {e}"))
            .fix("`ssh` to the node must work without prompts, with its host key in known_hosts (never accepted automatically)"),
        Ok(()) => {
            let sanoid = run(&["dpkg-query", "-W", "-f=${Version}", "sanoid"]);
            match sh.run(&sanoid).await {
                Ok(o) if o.ok() => finding("ssh", Status::Ok, format!("{shown}: host key known, zfs and sanoid {} available", o.stdout.trim())),
                Ok(_) => finding("ssh", Status::Ok, format!("{shown}: host key known, zfs available; sanoid is not installed (apply installs it when the spec schedules snapshots)")),
                Err(e) => finding("ssh", Status::Warn, format!("{shown}: {e}")),
            }
        }
    };
    sh.close().await;
    f
}

const GIB: f64 = (1u64 << 30) as f64;

async fn storage(
    conn: &Connected,
    node: Option<&str>,
    spec: Option<&labwright_spec::Spec>,
    plan: Option<&labwright_engine::Plan>,
) -> Finding {
    let Some(node) = node else {
        return finding("storage", Status::Skip, "no node to ask");
    };
    let list = match conn.client.node_storage_status(node, None).await {
        Ok(l) => l,
        Err(e) => {
            return finding(
                "storage",
                Status::Fail,
                format!("cannot read the storages of `{node}`: {e}"),
            )
            .fix("the token needs Datastore.Audit on /storage");
        }
    };
    let avail = |id: &str| list.iter().find(|s| s.storage == id).and_then(|s| s.avail);
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    let mut oks = Vec::new();
    if let Some(plan) = plan {
        let default = spec.and_then(default_vm_storage);
        for (id, bytes) in space::planned_bytes(plan, default.as_deref()) {
            match avail(&id) {
                None => fails.push(format!(
                    "`{id}` (planned disks {:.1} GiB) is not available on `{node}`",
                    bytes as f64 / GIB
                )),
                Some(a) if a < bytes => fails.push(format!(
                    "`{id}` has {:.1} GiB free, the planned disks need {:.1} GiB",
                    a as f64 / GIB,
                    bytes as f64 / GIB
                )),
                Some(a) => oks.push(format!(
                    "`{id}` {:.1} GiB free for {:.1} GiB of new disks",
                    a as f64 / GIB,
                    bytes as f64 / GIB
                )),
            }
        }
        // A full backup may need up to the guests' disk sizes on the backup storage.
        if let Some(s) = spec {
            let disks: u64 = declared_disk_bytes(s);
            for b in backup_storages(s) {
                match avail(&b) {
                    Some(a) if a < disks => warns.push(format!(
                        "backup storage `{b}` has {:.1} GiB free; uncompressed backups of the declared disks take up to {:.1} GiB",
                        a as f64 / GIB,
                        disks as f64 / GIB
                    )),
                    Some(a) => oks.push(format!("backups on `{b}` ({:.1} GiB free)", a as f64 / GIB)),
                    None => warns.push(format!("backup storage `{b}` is not available yet on `{node}`")),
                }
            }
        }
    } else {
        for s in list.iter().filter(|s| s.active != Some(false)) {
            match s.used_fraction {
                Some(f) if f > 0.9 => {
                    warns.push(format!("`{}` is {:.0}% full", s.storage, f * 100.0))
                }
                _ => oks.push(format!(
                    "`{}` {:.1} GiB free",
                    s.storage,
                    s.avail.unwrap_or(0) as f64 / GIB
                )),
            }
        }
    }
    if !fails.is_empty() {
        fails.extend(warns);
        return finding("storage", Status::Fail, fails.join("; "))
            .fix("free space on the storage, pick another `storage:` for the disks, or make them smaller");
    }
    if !warns.is_empty() {
        return finding("storage", Status::Warn, warns.join("; "))
            .fix("keep backups on another disk (phase 1: `tank/backups`) or prune old ones");
    }
    finding(
        "storage",
        Status::Ok,
        if oks.is_empty() {
            "nothing to allocate".to_string()
        } else {
            oks.join("; ")
        },
    )
}

/// Where grown disks live: the node's `vmStorage`, else the first disk's storage.
fn default_vm_storage(spec: &labwright_spec::Spec) -> Option<String> {
    spec.node.vm_storage.clone().or_else(|| {
        spec.vms
            .iter()
            .flat_map(|vm| vm.disks.values())
            .find_map(|d| d.storage.clone())
    })
}

/// Sum of the declared VM disk sizes (bytes) of the spec's phase, for the backup
/// estimate.
fn declared_disk_bytes(spec: &labwright_spec::Spec) -> u64 {
    spec.vms
        .iter()
        .filter(|vm| vm.phase <= spec.phase)
        .flat_map(|vm| vm.disks.values())
        .map(|d| d.size.bytes())
        .sum()
}

/// The storages the spec's backup jobs of this phase write to.
fn backup_storages(spec: &labwright_spec::Spec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for j in spec.backups.iter().flat_map(|b| &b.jobs) {
        if j.phase <= spec.phase && !out.contains(&j.storage) {
            out.push(j.storage.clone());
        }
    }
    out
}
