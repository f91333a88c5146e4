//! [`HostExec`] over the user's OpenSSH client: one multiplexed master opened on the
//! first command (a plan that needs no host command never connects), closed by
//! [`Ssh::close`] or, as a safety net, after a minute idle.

use std::num::NonZeroUsize;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

use crate::{HostCmd, HostError, HostExec, HostFuture, HostOutput, SshTarget};

pub struct Ssh {
    target: SshTarget,
    session: OnceCell<Session>,
}

impl Ssh {
    /// A link to `target`; nothing connects until the first command.
    pub fn new(target: SshTarget) -> Ssh {
        Ssh {
            target,
            session: OnceCell::new(),
        }
    }

    pub fn ssh_target(&self) -> &SshTarget {
        &self.target
    }

    async fn session(&self) -> Result<&Session, HostError> {
        self.session.get_or_try_init(|| self.connect()).await
    }

    async fn connect(&self) -> Result<Session, HostError> {
        let t = &self.target;
        let mut b = SessionBuilder::default();
        b.known_hosts_check(KnownHosts::Strict)
            .connect_timeout(Duration::from_secs(10))
            .server_alive_interval(Duration::from_secs(15))
            .control_persist(ControlPersist::IdleFor(
                NonZeroUsize::new(60).unwrap_or(NonZeroUsize::MIN),
            ));
        if let Some(u) = &t.user {
            b.user(u.clone());
        }
        if let Some(p) = t.port {
            b.port(p);
        }
        if let Some(k) = &t.identity {
            b.keyfile(k);
        }
        if let Some(k) = &t.known_hosts {
            b.user_known_hosts_file(k);
        }
        tracing::debug!(target = %t, "opening the SSH master");
        b.connect(&t.host).await.map_err(|e| self.connect_error(e))
    }

    fn connect_error(&self, e: openssh::Error) -> HostError {
        let mut detail = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            detail = format!("{detail}: {s}");
            src = s.source();
        }
        // ssh's own lines, indented under ours.
        let detail = detail
            .trim()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n  ");
        let t = &self.target;
        if let openssh::Error::Connect(io) | openssh::Error::Master(io) | openssh::Error::Ssh(io) =
            &e
            && io.kind() == std::io::ErrorKind::NotFound
            && !detail.contains("Host key")
        {
            return HostError::Local(detail);
        }
        let key_words = [
            "Host key verification failed",
            "REMOTE HOST IDENTIFICATION HAS CHANGED",
            "host key is known",
            "No ED25519 host key",
            "No RSA host key",
            "No ECDSA host key",
        ];
        if key_words.iter().any(|k| detail.contains(k)) {
            return HostError::HostKey {
                target: t.display(),
                keyscan: match t.port {
                    Some(p) => format!("ssh-keyscan -p {p} {}", t.host),
                    None => format!("ssh-keyscan {}", t.host),
                },
                known_hosts: t.known_hosts.as_ref().map_or_else(
                    || "~/.ssh/known_hosts".to_string(),
                    |p| p.display().to_string(),
                ),
                detail,
            };
        }
        HostError::Connect {
            target: t.display(),
            target_cli: t.cli(),
            detail,
        }
    }

    async fn exec(&self, cmd: &HostCmd) -> Result<HostOutput, HostError> {
        let session = self.session().await?;
        let Some((program, args)) = cmd.argv.split_first() else {
            return Ok(HostOutput::default());
        };
        let mut c = session.command(program.as_str());
        c.args(args.iter().map(String::as_str));
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let cut = |e: openssh::Error| HostError::Disconnected {
            target: self.target.display(),
            cmd: cmd.display(),
            detail: e.to_string(),
        };
        // A session the master could not open never ran the command: one more try
        // (a busy master or server refuses a channel now and then).
        let mut child = match c.spawn().await {
            Ok(ch) => ch,
            Err(e) => {
                tracing::debug!(target = %self.target, cmd = %cmd.display(), "opening a session failed, once more: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                c.spawn().await.map_err(cut)?
            }
        };
        if let Some(content) = &cmd.stdin
            && let Some(mut w) = child.stdin().take()
        {
            // A write error means the command stopped reading early; its exit code
            // (below) tells why.
            let _ = w.write_all(content.as_bytes()).await;
            let _ = w.shutdown().await;
            drop(w);
        }
        let out = child.wait_with_output().await.map_err(cut)?;
        let code = out.status.code().unwrap_or(255);
        tracing::debug!(target = %self.target, cmd = %cmd.display(), code, "host command");
        Ok(HostOutput {
            code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Closes the master connection (if one was opened).
    pub async fn close(self) {
        if let Some(s) = self.session.into_inner()
            && let Err(e) = s.close().await
        {
            tracing::debug!("closing the SSH master: {e}");
        }
    }
}

impl HostExec for Ssh {
    fn target(&self) -> String {
        self.target.display()
    }

    fn run<'a>(&'a self, cmd: &'a HostCmd) -> HostFuture<'a> {
        Box::pin(self.exec(cmd))
    }
}
