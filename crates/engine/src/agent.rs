//! Guest-agent plumbing shared by bootstrap checks, probes and validation: bounded
//! waits, commands run inside a guest, the addresses it reports. A guest without an
//! agent is a skipped check, never a hang.

use std::time::{Duration, Instant};

use labwright_pve::PveClient;

use crate::validate::{Check, CheckStatus};

/// Bounds of the in-guest checks: no check waits longer than this, so a guest whose
/// agent never comes up fails validate instead of hanging it.
#[derive(Clone, Copy, Debug)]
pub struct GuestCheckOptions {
    /// How long to wait for the agent of a booting guest to answer.
    pub agent_wait: Duration,
    /// How long one command may run inside the guest.
    pub exec_timeout: Duration,
    /// `false` skips every in-guest check (`LABWRIGHT_GUEST_CHECKS=off`), e.g. where
    /// guests cannot run the checked tools; the output says they were skipped.
    pub enabled: bool,
}

impl Default for GuestCheckOptions {
    fn default() -> Self {
        GuestCheckOptions {
            agent_wait: Duration::from_secs(90),
            exec_timeout: Duration::from_secs(30),
            enabled: true,
        }
    }
}

pub(crate) fn guest_check(name: String, status: CheckStatus, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

/// Why a command could not run in a guest.
#[derive(Debug, Clone)]
pub(crate) struct ExecError {
    pub text: String,
    /// The agent answered with an error object (the command is unsupported or
    /// disabled there): a check that needs it is skipped, not failed.
    pub unsupported: bool,
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<ExecError> for String {
    fn from(e: ExecError) -> String {
        e.text
    }
}

impl std::ops::Deref for ExecError {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

/// A check that could not run its command: skipped when the agent does not offer
/// it, failed otherwise.
pub(crate) fn not_run(name: String, e: &ExecError, what: &str) -> Check {
    if e.unsupported {
        guest_check(name, CheckStatus::Skipped, e.text.clone())
    } else {
        guest_check(
            name,
            CheckStatus::Fail,
            format!("could not run{what}: {}", first_line(e)),
        )
    }
}

/// Runs `argv` in the guest: (exit code, stdout, stderr), or why it could not run.
pub(crate) async fn exec(
    client: &PveClient,
    node: &str,
    vmid: u32,
    argv: &[&str],
    timeout: Duration,
) -> Result<(i64, String, String), ExecError> {
    let st = client
        .agent_exec_wait(node, vmid, argv, None, timeout)
        .await
        .map_err(|e| ExecError {
            unsupported: matches!(e, labwright_pve::Error::Agent { .. }),
            text: e.to_string(),
        })?;
    Ok((
        st.exitcode.unwrap_or(-1),
        st.out_data.unwrap_or_default(),
        st.err_data.unwrap_or_default(),
    ))
}

pub(crate) fn first_line(s: &str) -> String {
    let l = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut out: String = l.chars().take(160).collect();
    if l.chars().count() > 160 {
        out.push('…');
    }
    out
}

/// Waits for the agent to answer. `Ok(false)`: the VM has no agent configured.
pub(crate) async fn wait_agent(
    client: &PveClient,
    node: &str,
    vmid: u32,
    opts: &GuestCheckOptions,
) -> Result<bool, String> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match client.agent_ping(node, vmid).await {
            Ok(()) => return Ok(true),
            Err(e) => {
                let text = e.to_string();
                if text.contains("No QEMU guest agent configured") {
                    return Ok(false);
                }
                if start.elapsed() >= opts.agent_wait {
                    return Err(format!(
                        "no answer within {}s: {}",
                        opts.agent_wait.as_secs(),
                        first_line(&text)
                    ));
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// The in-guest checks of every declared, running VM with a bootstrap or an OS image
/// The first IPv4 address (not loopback) the guest agent of `vmid` reports.
pub(crate) async fn guest_ipv4(
    client: &PveClient,
    node: &str,
    vmid: u32,
) -> Result<String, String> {
    let ifs = client
        .agent_network_interfaces(node, vmid)
        .await
        .map_err(|e| first_line(&e.to_string()))?;
    ifs.iter()
        .filter(|i| i.name != "lo")
        .flat_map(|i| i.ip_addresses.iter())
        .find(|a| a.ip_address_type == "ipv4" && !a.ip_address.starts_with("127."))
        .map(|a| a.ip_address.clone())
        .ok_or_else(|| "the guest agent reports no IPv4 address".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_that_refuses_the_command_skips_the_check_others_fail_it() {
        let refused = ExecError {
            text: "guest agent of VM 400: CommandDisabled: The command guest-exec has been disabled for this instance".into(),
            unsupported: true,
        };
        let c = not_run("vm/400 docker version".into(), &refused, "");
        assert_eq!(c.status, CheckStatus::Skipped);
        assert!(c.detail.contains("CommandDisabled"), "{}", c.detail);
        let broken = ExecError {
            text: "POST /nodes/pve/qemu/400/agent/exec: HTTP 500: VM 400 is not running".into(),
            unsupported: false,
        };
        let c = not_run("vm/400 docker version".into(), &broken, "");
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.detail.starts_with("could not run: "), "{}", c.detail);
    }
}
