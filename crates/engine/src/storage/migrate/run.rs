//! Running a migration's steps: commands in the guest through its agent, the copy
//! and its SHA-256 comparison, the switch (with its way back), the removal of a kept
//! source, and the state recorded on the dataset.

use std::collections::BTreeMap;
use std::time::Duration;

use labwright_host::HostCmd;

use super::{KEPT_SUFFIX, MigrationPlan, STAGING};
use crate::error::StepError;
use crate::op::ExecCx;
use crate::storage::MIGRATION_PROP;
use crate::storage::op::{host, run_checked};

/// How long one rsync may run in the guest (large media libraries take hours).
const COPY_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const CMD_TIMEOUT: Duration = Duration::from_secs(120);

/// Removes the kept source once it matches the manifest recorded at the switch.
pub(crate) async fn run_remove_source(
    cx: &ExecCx<'_>,
    m: &MigrationPlan,
    kept: &str,
) -> Result<(), StepError> {
    let h = host(cx)?;
    agent_up(cx, m).await?;
    let text = run_checked(h, &HostCmd::new(["cat", m.manifest_file().as_str()]))
        .await?
        .stdout;
    let recorded: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once("  "))
        .map(|(hash, rel)| (rel.to_string(), hash.to_string()))
        .collect();
    let (now, _) = manifest(cx, m, kept).await?;
    if recorded.is_empty() || now != recorded {
        return Err(StepError::Refused(format!(
            "VM {}: {kept} does not match the manifest of the verified copy ({} files recorded, {} found); nothing was removed",
            m.vmid,
            recorded.len(),
            now.len()
        )));
    }
    guest(cx, m, &["rm", "-rf", kept], CMD_TIMEOUT).await?;
    set_state(h, m, "removed").await
}

/// Records how far the migration got, on its dataset (read back by the scan).
async fn set_state(
    h: &dyn labwright_host::HostExec,
    m: &MigrationPlan,
    state: &str,
) -> Result<(), StepError> {
    run_checked(
        h,
        &HostCmd::new([
            "zfs".to_string(),
            "set".into(),
            format!("{MIGRATION_PROP}={}={state}", m.name),
            m.dataset.clone(),
        ]),
    )
    .await
    .map(|_| ())
}

/// Runs `argv` in the guest; a non-zero exit is an error with what it printed.
async fn guest(
    cx: &ExecCx<'_>,
    m: &MigrationPlan,
    argv: &[&str],
    timeout: Duration,
) -> Result<String, StepError> {
    let (code, out, err) = crate::agent::exec(cx.client, &m.node, m.vmid, argv, timeout)
        .await
        .map_err(|e| {
            StepError::Refused(format!(
                "VM {}: cannot run `{}` through the guest agent: {}",
                m.vmid,
                argv.join(" "),
                crate::agent::first_line(&e)
            ))
        })?;
    if code != 0 {
        return Err(StepError::Refused(format!(
            "VM {}: `{}` failed (exit {code}): {}",
            m.vmid,
            argv.join(" "),
            crate::agent::first_line(if err.trim().is_empty() { &out } else { &err })
        )));
    }
    Ok(out)
}

/// Mount targets by source tag/device, from `findmnt -rn -o TARGET,SOURCE,FSTYPE`.
async fn mounts(
    cx: &ExecCx<'_>,
    m: &MigrationPlan,
) -> Result<Vec<(String, String, String)>, StepError> {
    let out = guest(
        cx,
        m,
        &["findmnt", "-rn", "-o", "TARGET,SOURCE,FSTYPE"],
        CMD_TIMEOUT,
    )
    .await?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            match f[..] {
                [t, s, fs] => Some((t.replace("\\x20", " "), s.to_string(), fs.to_string())),
                _ => None,
            }
        })
        .collect())
}

/// Files under `dir` (relative path → SHA-256), minus the excluded folders.
async fn manifest(
    cx: &ExecCx<'_>,
    m: &MigrationPlan,
    dir: &str,
) -> Result<(BTreeMap<String, String>, u64), StepError> {
    let out = guest(
        cx,
        m,
        &["find", dir, "-type", "f", "-exec", "sha256sum", "{}", "+"],
        COPY_TIMEOUT,
    )
    .await?;
    let sizes = guest(
        cx,
        m,
        &["find", dir, "-type", "f", "-printf", "%s\\t%P\\n"],
        COPY_TIMEOUT,
    )
    .await?;
    let prefix = format!("{dir}/");
    let skip = |rel: &str| {
        m.excludes.iter().any(|e| {
            let kept = format!("{e}{KEPT_SUFFIX}");
            rel == e
                || rel.starts_with(&format!("{e}/"))
                || rel == kept
                || rel.starts_with(&format!("{kept}/"))
        })
    };
    let mut files = BTreeMap::new();
    for line in out.lines() {
        let Some((hash, p)) = line.split_once("  ") else {
            continue;
        };
        let rel = p.strip_prefix(&prefix).unwrap_or(p).to_string();
        if !skip(&rel) {
            files.insert(rel, hash.trim_start_matches('\\').to_string());
        }
    }
    let mut bytes = 0u64;
    for line in sizes.lines() {
        if let Some((n, rel)) = line.split_once('\t')
            && !skip(rel)
        {
            bytes += n.trim().parse::<u64>().unwrap_or(0);
        }
    }
    Ok((files, bytes))
}

/// Copies and compares; returns the verified manifest text.
async fn sync_and_verify(cx: &ExecCx<'_>, m: &MigrationPlan) -> Result<String, StepError> {
    let staging = m.staging();
    let mounted = mounts(cx, m)
        .await?
        .into_iter()
        .any(|(t, s, _)| t == staging && s == m.tag);
    if !mounted {
        guest(cx, m, &["mkdir", "-p", &staging], CMD_TIMEOUT).await?;
        guest(
            cx,
            m,
            &["mount", "-t", "virtiofs", &m.tag, &staging],
            CMD_TIMEOUT,
        )
        .await?;
    }
    // Minimal images may lack rsync: Debian's package is one apt-get away.
    let has_rsync = crate::agent::exec(
        cx.client,
        &m.node,
        m.vmid,
        &["rsync", "--version"],
        CMD_TIMEOUT,
    )
    .await
    .is_ok_and(|(code, _, _)| code == 0);
    if !has_rsync {
        (cx.progress)("installing rsync in the guest");
        guest(
            cx,
            m,
            &[
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                "-y",
                "rsync",
            ],
            Duration::from_secs(600),
        )
        .await?;
    }
    (cx.progress)(&format!("copying {} → {}", m.source, m.dataset));
    let argv = m.rsync();
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    guest(cx, m, &args, COPY_TIMEOUT).await.map_err(|e| {
        StepError::Refused(format!(
            "{e}\nThe copy stopped; the source is untouched. Run apply again: the copy resumes where it stopped."
        ))
    })?;
    (cx.progress)("comparing both sides (SHA-256)");
    let (src, src_bytes) = manifest(cx, m, &m.source).await?;
    let (dst, dst_bytes) = manifest(cx, m, &staging).await?;
    if src != dst || src_bytes != dst_bytes {
        let mut diff: Vec<String> = src
            .iter()
            .filter(|(k, v)| dst.get(*k) != Some(*v))
            .map(|(k, _)| format!("{k} (differs or missing in the copy)"))
            .chain(
                dst.keys()
                    .filter(|k| !src.contains_key(*k))
                    .map(|k| format!("{k} (only in the copy)")),
            )
            .take(5)
            .collect();
        diff.sort();
        return Err(StepError::Refused(format!(
            "migration {}: the copy does not match the source ({} files, {src_bytes} bytes vs {} files, {dst_bytes} bytes): {}. Nothing was switched; run apply again.",
            m.name,
            src.len(),
            dst.len(),
            diff.join("; ")
        )));
    }
    Ok(src
        .iter()
        .map(|(k, v)| format!("{v}  {k}\n"))
        .collect::<String>()
        + &format!("# {} files, {src_bytes} bytes\n", src.len()))
}

async fn record(
    cx: &ExecCx<'_>,
    m: &MigrationPlan,
    manifest: &str,
    state: &str,
) -> Result<(), StepError> {
    let h = host(cx)?;
    run_checked(
        h,
        &HostCmd::new([
            "install",
            "-D",
            "-m",
            "0644",
            "/dev/stdin",
            &m.manifest_file(),
        ])
        .with_stdin(manifest),
    )
    .await?;
    set_state(h, m, state).await
}

/// The guest's agent answers (a VM just restarted for its virtiofs devices boots
/// first).
async fn agent_up(cx: &ExecCx<'_>, m: &MigrationPlan) -> Result<(), StepError> {
    match crate::agent::wait_agent(cx.client, &m.node, m.vmid, &cx.settings.guest).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(StepError::Refused(format!(
            "VM {} has no guest agent configured: a migration runs its copy inside the guest (set `agent: true`)",
            m.vmid
        ))),
        Err(e) => Err(StepError::Refused(format!(
            "VM {}: the guest agent does not answer ({e}); is the guest running? Run apply again once it is up",
            m.vmid
        ))),
    }
}

pub(crate) async fn run_copy(cx: &ExecCx<'_>, m: &MigrationPlan) -> Result<(), StepError> {
    host(cx)?;
    agent_up(cx, m).await?;
    let manifest = sync_and_verify(cx, m).await?;
    record(cx, m, &manifest, "copied").await
}

pub(crate) async fn run_switch(cx: &ExecCx<'_>, m: &MigrationPlan) -> Result<(), StepError> {
    host(cx)?;
    agent_up(cx, m).await?;
    let kept = format!("{}{KEPT_SUFFIX}", m.source);
    let exists = crate::agent::exec(
        cx.client,
        &m.node,
        m.vmid,
        &["test", "-e", &kept],
        CMD_TIMEOUT,
    )
    .await
    .map(|(c, _, _)| c == 0)
    .unwrap_or(false);
    if exists {
        return Err(StepError::Refused(format!(
            "VM {}: {kept} already exists (an earlier switch kept it there); move it away first — labwright never overwrites a kept source",
            m.vmid
        )));
    }
    if m.stop_docker {
        guest(
            cx,
            m,
            &["systemctl", "stop", "docker.socket", "docker.service"],
            CMD_TIMEOUT,
        )
        .await?;
    }
    let result = switch_inner(cx, m, &kept).await;
    if m.stop_docker {
        let started = guest(
            cx,
            m,
            &["systemctl", "start", "docker.service"],
            CMD_TIMEOUT,
        )
        .await;
        if let (Ok(_), Err(e)) = (&result, started) {
            return Err(e);
        }
    }
    let manifest = result?;
    record(cx, m, &manifest, "switched").await
}

async fn switch_inner(cx: &ExecCx<'_>, m: &MigrationPlan, kept: &str) -> Result<String, StepError> {
    let manifest = sync_and_verify(cx, m).await?;
    let staging = m.staging();
    guest(cx, m, &["umount", &staging], CMD_TIMEOUT).await?;
    let now = mounts(cx, m).await?;
    for (_, p) in m.inner.iter().rev() {
        if now.iter().any(|(t, _, _)| t == p) {
            guest(cx, m, &["umount", p], CMD_TIMEOUT).await?;
        }
    }
    guest(cx, m, &["mv", &m.source, kept], CMD_TIMEOUT).await?;
    let placed = async {
        guest(cx, m, &["mkdir", "-p", &m.source], CMD_TIMEOUT).await?;
        guest(
            cx,
            m,
            &["mount", "-t", "virtiofs", &m.tag, &m.source],
            CMD_TIMEOUT,
        )
        .await?;
        for (t, p) in &m.inner {
            guest(cx, m, &["mkdir", "-p", p], CMD_TIMEOUT).await?;
            guest(cx, m, &["mount", "-t", "virtiofs", t, p], CMD_TIMEOUT).await?;
        }
        write_fstab(cx, m).await
    }
    .await;
    if let Err(e) = placed {
        // Put the folder back as it was: the source was only renamed.
        let _ = guest(cx, m, &["umount", &m.source], CMD_TIMEOUT).await;
        let _ = guest(cx, m, &["rmdir", &m.source], CMD_TIMEOUT).await;
        let back = guest(cx, m, &["mv", kept, &m.source], CMD_TIMEOUT).await;
        return Err(match back {
            Ok(_) => StepError::Refused(format!("{e}; the folder was put back as it was")),
            Err(b) => StepError::Refused(format!(
                "{e}; putting the folder back failed too ({b}): in the guest, move {kept} back to {} by hand",
                m.source
            )),
        });
    }
    Ok(manifest)
}

const FSTAB_BEGIN: &str = "# labwright begin: datasets shared with this guest (virtiofs)";
const FSTAB_END: &str = "# labwright end";

/// Rewrites the labwright block of `/etc/fstab` from the mounts in place now.
async fn write_fstab(cx: &ExecCx<'_>, m: &MigrationPlan) -> Result<(), StepError> {
    let now = mounts(cx, m).await?;
    let mut lines: Vec<(String, String)> = now
        .into_iter()
        .filter(|(t, s, fs)| fs == "virtiofs" && m.vm_tags.contains(s) && !t.starts_with(STAGING))
        .map(|(t, s, _)| (s, t))
        .collect();
    lines.sort_by_key(|(_, t)| (t.matches('/').count(), t.clone()));
    let current = guest(cx, m, &["cat", "/etc/fstab"], CMD_TIMEOUT)
        .await
        .unwrap_or_default();
    let mut kept: Vec<&str> = Vec::new();
    let mut inside = false;
    for l in current.lines() {
        if l == FSTAB_BEGIN {
            inside = true;
        } else if l == FSTAB_END {
            inside = false;
        } else if !inside {
            kept.push(l);
        }
    }
    let mut text: String = kept.iter().map(|l| format!("{l}\n")).collect();
    text.push_str(FSTAB_BEGIN);
    text.push('\n');
    for (tag, target) in &lines {
        text.push_str(&format!(
            "{tag} {} virtiofs defaults,nofail 0 0\n",
            target.replace(' ', "\\040")
        ));
    }
    text.push_str(FSTAB_END);
    text.push('\n');
    cx.client
        .agent_file_write(&m.node, m.vmid, "/etc/fstab", &text, None)
        .await
        .map_err(|e| StepError::api(format!("VM {}: write /etc/fstab", m.vmid), e))
}
