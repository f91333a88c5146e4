//! Commands on the node over SSH, for what the PVE API cannot do (ZFS datasets and
//! their properties, sanoid). It drives the user's own OpenSSH client (`openssh`
//! crate, one multiplexed master per run), so `~/.ssh/config`, the agent, ProxyJump
//! and `known_hosts` work unchanged and no second crypto stack is shipped. Host keys
//! are checked strictly (`StrictHostKeyChecking=yes`, `BatchMode=yes`): an unknown
//! key is an error with the way to verify it, never accepted on the fly.
//!
//! Commands are argv lists; OpenSSH joins them into one remote shell line, so every
//! argument is quoted here. File contents travel on stdin, never on the command line.

mod cmd;
mod fake;
mod ssh;
mod target;

pub use cmd::{HostCmd, HostOutput, quote};
pub use fake::FakeHost;
pub use ssh::Ssh;
pub use target::SshTarget;

use std::future::Future;
use std::pin::Pin;

/// A future returned by [`HostExec::run`] (boxed so the trait stays object-safe).
pub type HostFuture<'a> = Pin<Box<dyn Future<Output = Result<HostOutput, HostError>> + Send + 'a>>;

/// Runs commands on the node. Implemented by [`Ssh`] and, for tests, [`FakeHost`].
pub trait HostExec: Send + Sync {
    /// Where commands run (`root@192.168.1.10:22`), for messages.
    fn target(&self) -> String;
    /// Runs one command and returns its exit code and output (a non-zero exit is
    /// not an error here: callers decide what a code means).
    fn run<'a>(&'a self, cmd: &'a HostCmd) -> HostFuture<'a>;
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{value:?} is not an SSH target: {why} (expected user@host or user@host:port)")]
    BadTarget { value: String, why: String },
    #[error(
        "the host key of {target} is not known or does not match; labwright never accepts host keys on its own.\n  {detail}\n  help: compare `{keyscan} | ssh-keygen -lf -` with the key on the node's console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then add the line to {known_hosts}"
    )]
    HostKey {
        target: String,
        known_hosts: String,
        /// The `ssh-keyscan` command for this host.
        keyscan: String,
        detail: String,
    },
    #[error(
        "cannot open an SSH session to {target}: {detail}\n  help: `ssh {target_cli}` must work without a password prompt (a key in the agent or LABWRIGHT_SSH_IDENTITY)"
    )]
    Connect {
        target: String,
        target_cli: String,
        detail: String,
    },
    #[error("the SSH connection to {target} was cut while running `{cmd}` ({detail})")]
    Disconnected {
        target: String,
        cmd: String,
        detail: String,
    },
    #[error("`{cmd}` on {target} failed (exit {code}): {stderr}")]
    Failed {
        target: String,
        cmd: String,
        code: i32,
        stderr: String,
    },
    #[error(
        "cannot run the local ssh client: {0}\n  help: install OpenSSH's client (`apt-get install openssh-client`)"
    )]
    Local(String),
}
