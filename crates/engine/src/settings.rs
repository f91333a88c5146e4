//! The engine's settings, as one value. The CLI builds it from flags, the environment
//! and the target; nothing under `crates/engine/src` reads the environment, so a test
//! or a library user sets exactly what it means.

use std::net::IpAddr;
use std::time::Duration;

use labwright_pve::{ClientConfig, WaitOptions};

use crate::agent::GuestCheckOptions;

#[derive(Clone, Debug)]
pub struct Settings {
    /// Requests (scan) and actions (apply) in flight at once; pveproxy serves 3.
    pub concurrency: usize,
    /// How tasks are polled.
    pub wait: WaitOptions,
    /// Bounds of checks run inside guests (agent wait, command timeout, on/off).
    pub guest: GuestCheckOptions,
    /// The address the node sees labwright connect from, when NAT or a tunnel hides
    /// it: the lockout proof covers it too.
    pub client_addr: Option<IpAddr>,
    /// Where a guarded change probes over a fresh connection (`None`: no probe, with a
    /// note in the output).
    pub probe: Option<ClientConfig>,
    /// Wait before probing: `pve-firewall` recompiles every 10 s on a real node.
    pub probe_settle: Duration,
    /// Apply even though the lockout proof failed. Tests only: it exists to show what
    /// the proof prevents.
    pub unsafe_skip_proof: bool,
    /// How long apply waits for the phase-2 router to answer on its gateway
    /// addresses (its first boot includes one console step: docs/runbooks).
    pub router_wait: Duration,
    /// Pause between two looks at the router while waiting.
    pub router_poll: Duration,
    /// The bridge wave's dead-man on the node: without a passing probe within this
    /// time after it is armed, the node restores its previous network by itself.
    pub net_deadman: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: 3,
            wait: WaitOptions::default(),
            guest: GuestCheckOptions::default(),
            client_addr: None,
            probe: None,
            probe_settle: Duration::ZERO,
            unsafe_skip_proof: false,
            router_wait: Duration::from_secs(600),
            router_poll: Duration::from_secs(3),
            net_deadman: Duration::from_secs(120),
        }
    }
}
