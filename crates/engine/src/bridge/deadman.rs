//! The bridge wave's dead-man (docs/decisions.md, "Bridges"): with SSH to the node,
//! before the reload the live `/etc/network/interfaces` is saved and a transient
//! systemd timer is armed that puts it back, drops anything staged and runs
//! `ifreload -a`. A passing probe over a fresh connection stops the timer. When the
//! reload cut every connection — so the API cannot be used to restore — the node
//! restores itself, and labwright waits for the management address to answer again.

use std::time::{Duration, Instant};

use labwright_host::{HostCmd, HostExec};
use labwright_pve::ClientConfig;

use crate::error::StepError;
use crate::guarded::probe_fresh;
use crate::op::ExecCx;

/// The transient unit (`lw-net-deadman.timer` / `.service`).
pub const UNIT: &str = "lw-net-deadman";
/// Where the live definitions are kept while the timer is armed.
pub const BEFORE: &str = "/etc/network/interfaces.lw-before";

/// What the timer runs.
fn restore_script() -> String {
    format!(
        "cp {BEFORE} /etc/network/interfaces && rm -f /etc/network/interfaces.new && ifreload -a"
    )
}

/// Saving the live definitions, then arming the timer.
pub fn arm_cmds(secs: u64) -> Vec<HostCmd> {
    vec![
        HostCmd::new(["cp", "-p", "/etc/network/interfaces", BEFORE]),
        HostCmd::new([
            "systemd-run".to_string(),
            format!("--unit={UNIT}"),
            format!("--on-active={secs}"),
            "--timer-property=AccuracySec=1s".into(),
            "/bin/sh".into(),
            "-c".into(),
            restore_script(),
        ]),
    ]
}

/// Stops the timer (exit 5 when it is not loaded: it fired, or was never armed).
pub fn disarm() -> HostCmd {
    HostCmd::new([
        "systemctl".to_string(),
        "stop".into(),
        format!("{UNIT}.timer"),
    ])
}

/// Is a dead-man armed (`active`)?
pub fn is_active() -> HostCmd {
    HostCmd::new([
        "systemctl".to_string(),
        "is-active".into(),
        format!("{UNIT}.timer"),
    ])
}

/// Arms the dead-man; an error says which command failed.
pub async fn arm(h: &dyn HostExec, secs: u64) -> Result<(), String> {
    for c in arm_cmds(secs) {
        let o = h.run(&c).await.map_err(|e| e.to_string())?;
        if !o.ok() {
            return Err(format!(
                "`{}` exited {}: {}",
                c.line(),
                o.code,
                o.stderr.trim()
            ));
        }
    }
    Ok(())
}

/// Stops the timer after the wave. Exit 5 ("not loaded") means it already fired:
/// the node went back to its previous network.
pub async fn stop(h: &dyn HostExec) -> Result<(), String> {
    let o = h.run(&disarm()).await.map_err(|e| e.to_string())?;
    match o.code {
        0 => {
            let _ = h.run(&HostCmd::new(["rm", "-f", BEFORE])).await;
            Ok(())
        }
        5 => Err("it already fired: the node is back on its previous network".into()),
        c => Err(format!(
            "`{}` exited {c}: {}",
            disarm().line(),
            o.stderr.trim()
        )),
    }
}

/// After a revert over the API failed: waits for the dead-man to bring the node back
/// (its time plus a margin for `ifreload`), probing over fresh connections.
pub async fn wait(
    cx: &ExecCx<'_>,
    cfg: &ClientConfig,
    armed: Instant,
    secs: u64,
    why: StepError,
) -> Result<(), StepError> {
    let deadline = armed + Duration::from_secs(secs + 30);
    (cx.progress)(&format!(
        "no connection left to restore the network over ({why}); waiting up to {secs}s for the dead-man on the node"
    ));
    loop {
        if probe_fresh(cfg).await.is_ok() {
            (cx.progress)("the dead-man restored the previous network; the node answers again");
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StepError::Refused(format!(
                "{why}; the dead-man on the node did not bring management back within {}s either",
                secs + 30
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_restores_the_saved_file_and_reloads() {
        let lines: Vec<String> = arm_cmds(120).iter().map(HostCmd::line).collect();
        assert_eq!(
            lines[0],
            "cp -p /etc/network/interfaces /etc/network/interfaces.lw-before"
        );
        assert_eq!(
            lines[1],
            "systemd-run --unit=lw-net-deadman --on-active=120 --timer-property=AccuracySec=1s /bin/sh -c 'cp /etc/network/interfaces.lw-before /etc/network/interfaces && rm -f /etc/network/interfaces.new && ifreload -a'"
        );
        assert_eq!(disarm().line(), "systemctl stop lw-net-deadman.timer");
    }

    fn fake(code: i32, stderr: &'static str) -> labwright_host::FakeHost {
        labwright_host::FakeHost::new(move |c| {
            if c.line() == "systemctl stop lw-net-deadman.timer" {
                labwright_host::HostOutput {
                    code,
                    stdout: String::new(),
                    stderr: stderr.into(),
                }
            } else {
                labwright_host::HostOutput::default()
            }
        })
    }

    #[tokio::test]
    async fn stopping_a_fired_timer_is_an_error_a_stopped_one_is_not() {
        let h = fake(
            5,
            "Failed to stop lw-net-deadman.timer: Unit lw-net-deadman.timer not loaded.\n",
        );
        let e = stop(&h).await.expect_err("fired");
        assert!(e.contains("already fired"), "{e}");
        let h = fake(0, "");
        stop(&h).await.expect("stopped");
        let lines: Vec<String> = h.commands().iter().map(HostCmd::line).collect();
        assert_eq!(
            lines,
            vec![
                "systemctl stop lw-net-deadman.timer".to_string(),
                "rm -f /etc/network/interfaces.lw-before".to_string()
            ]
        );
    }
}
