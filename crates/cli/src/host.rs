//! The node's SSH for a command (datasets, sanoid, migrations): where it is and how
//! to reach it. Nothing connects until the engine runs its first host command.
//!
//! Where the target comes from, first match wins: `LABWRIGHT_SSH_TARGET`; the
//! target's own (the embedded simulator's endpoint, a profile's `ssh`); the spec's
//! `node.ssh`. `LABWRIGHT_SSH_IDENTITY` and `LABWRIGHT_SSH_KNOWN_HOSTS` fill in a key
//! and a known_hosts file the target does not name.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use labwright_host::{HostExec, Ssh, SshTarget};

use crate::target::Connected;

/// The simulator's SSH endpoint, with its client key and known_hosts file.
pub fn sim_ssh(sim: &labwright_sim::SimHandle) -> Option<SshTarget> {
    let c = sim.credentials();
    if c.ssh_port == 0 {
        return None;
    }
    Some(SshTarget {
        user: Some(c.ssh_user.clone()),
        host: "127.0.0.1".into(),
        port: Some(c.ssh_port),
        identity: Some(PathBuf::from(&c.ssh_client_key)),
        known_hosts: Some(PathBuf::from(&c.ssh_known_hosts)),
    })
}

/// The SSH target for `spec` (or no spec: `doctor`) on `conn`, if any is set anywhere.
pub fn target_for(
    conn: &Connected,
    spec: Option<&labwright_spec::Spec>,
) -> anyhow::Result<Option<SshTarget>> {
    let env = std::env::var("LABWRIGHT_SSH_TARGET")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let mut t = if let Some(v) = env {
        Some(SshTarget::parse(&v).context("LABWRIGHT_SSH_TARGET")?)
    } else if let Some(t) = &conn.ssh {
        tracing::debug!("SSH target from {}", conn.ssh_origin);
        Some(t.clone())
    } else if let Some(v) = spec.and_then(|s| s.node.ssh.as_ref()) {
        Some(SshTarget::parse(v).context("the spec's `node.ssh`")?)
    } else {
        None
    };
    if let Some(t) = t.as_mut() {
        if t.identity.is_none()
            && let Ok(p) = std::env::var("LABWRIGHT_SSH_IDENTITY")
        {
            t.identity = Some(PathBuf::from(p));
        }
        if t.known_hosts.is_none()
            && let Ok(p) = std::env::var("LABWRIGHT_SSH_KNOWN_HOSTS")
        {
            t.known_hosts = Some(PathBuf::from(p));
        }
    }
    Ok(t)
}

impl Connected {
    /// The node's shell for `spec` (opened lazily, closed with the connection).
    pub fn host(&self, spec: &labwright_spec::Spec) -> anyhow::Result<Option<Arc<Ssh>>> {
        if let Some(h) = self.host.get() {
            return Ok(h.clone());
        }
        let h = target_for(self, Some(spec))?.map(|t| Arc::new(Ssh::new(t)));
        Ok(self.host.get_or_init(|| h).clone())
    }
}

/// `Option<Arc<Ssh>>` as the engine takes it.
pub fn as_exec(h: &Option<Arc<Ssh>>) -> Option<&dyn HostExec> {
    h.as_deref().map(|s| s as &dyn HostExec)
}
