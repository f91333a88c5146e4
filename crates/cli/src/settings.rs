//! The engine's settings, built once from the environment and the connected target:
//! the only place the CLI turns `LABWRIGHT_*` tuning variables into engine values.

use std::time::Duration;

use anyhow::Context;
use labwright_engine::Settings;

use crate::target::Connected;

/// Lets a plan whose lockout proof FAILED be applied anyway. Tests only.
pub const SKIP_PROOF_ENV: &str = labwright_engine::firewall::SKIP_PROOF_ENV;

fn env_secs(name: &str) -> anyhow::Result<Option<Duration>> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(|s| Some(Duration::from_secs(s)))
            .with_context(|| format!("{name}=`{v}` is not a number of seconds")),
    }
}

/// The settings for commands that talk to `conn`.
pub fn for_target(conn: &Connected) -> anyhow::Result<Settings> {
    let mut s = Settings {
        client_addr: conn.client_addr,
        probe: Some(conn.config.clone()),
        // A real node needs ~10 s before `pve-firewall` enforces a change; the
        // simulator enforces at once.
        probe_settle: Duration::from_secs(if conn.is_sim() { 0 } else { 11 }),
        ..Settings::default()
    };
    if let Some(d) = env_secs("LABWRIGHT_FW_PROBE_SETTLE_SECS")? {
        s.probe_settle = d;
    }
    // A first boot that installs packages takes minutes on a real node.
    if let Some(d) = env_secs("LABWRIGHT_AGENT_WAIT_SECS")? {
        s.guest.agent_wait = d;
    }
    if conn.is_sim() {
        s.router_poll = Duration::from_millis(100);
    }
    if let Some(d) = env_secs("LABWRIGHT_ROUTER_WAIT_SECS")? {
        s.router_wait = d;
    }
    if let Some(d) = env_secs("LABWRIGHT_NET_DEADMAN_SECS")? {
        s.net_deadman = d;
    }
    if std::env::var("LABWRIGHT_GUEST_CHECKS")
        .is_ok_and(|v| matches!(v.trim(), "off" | "0" | "false" | "no"))
    {
        s.guest.enabled = false;
    }
    s.unsafe_skip_proof =
        std::env::var(SKIP_PROOF_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    Ok(s)
}
