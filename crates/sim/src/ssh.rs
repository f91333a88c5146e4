//! The simulated node's SSH endpoint: `ssh root@node CMD` runs CMD in the node's
//! simulated shell ([`crate::host`]) against the state the API serves. Public-key
//! authentication with the one generated client key only; exec requests only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};

use crate::SimError;
use crate::server::{Inner, write_private};

/// File names inside the key folder.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";
pub const CLIENT_KEY_FILE: &str = "ssh_client_ed25519_key";
pub const KNOWN_HOSTS_FILE: &str = "known_hosts";

/// The node's host key and the one client key it accepts.
pub struct SshKeys {
    pub host: PrivateKey,
    pub client: PrivateKey,
    pub client_path: PathBuf,
}

fn state_err(path: &Path, e: impl std::fmt::Display) -> SimError {
    SimError::State {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Loads the two ed25519 keys from `dir`, or generates and writes them (private keys
/// in OpenSSH format, mode 0600; public keys beside them).
pub fn load_or_generate(dir: &Path, regenerate: bool) -> Result<SshKeys, SimError> {
    let one = |file: &str, comment: &str| -> Result<PrivateKey, SimError> {
        let path = dir.join(file);
        if !regenerate && path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| state_err(&path, e))?;
            return PrivateKey::from_openssh(text.as_bytes()).map_err(|e| {
                state_err(
                    &path,
                    format!(
                        "not an OpenSSH private key ({e}); start with --reset to make new keys"
                    ),
                )
            });
        }
        let seed: [u8; 32] = rand::random();
        let mut key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
            &seed,
        ));
        key.set_comment(comment);
        let pem = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| state_err(&path, e))?;
        write_private(&path, &pem).map_err(|e| state_err(&path, e))?;
        let public = key
            .public_key()
            .to_openssh()
            .map_err(|e| state_err(&path, e))?;
        let pub_path = dir.join(format!("{file}.pub"));
        std::fs::write(&pub_path, format!("{public}\n")).map_err(|e| state_err(&pub_path, e))?;
        Ok(key)
    };
    let host = one(HOST_KEY_FILE, "")?;
    let client = one(CLIENT_KEY_FILE, "labwright@sim")?;
    if host.algorithm() != Algorithm::Ed25519 || client.algorithm() != Algorithm::Ed25519 {
        return Err(state_err(dir, "the simulator's SSH keys must be ed25519"));
    }
    Ok(SshKeys {
        host,
        client,
        client_path: dir.join(CLIENT_KEY_FILE),
    })
}

/// `ssh-ed25519 AAAA…` (no comment): the line known_hosts holds after the host name.
pub fn host_key_line(key: &PrivateKey) -> String {
    let mut public = key.public_key().clone();
    public.set_comment("");
    public.to_openssh().unwrap_or_default()
}

/// Writes `known_hosts` for the endpoint: `[127.0.0.1]:PORT ssh-ed25519 …`.
pub fn write_known_hosts(
    dir: &Path,
    addr: SocketAddr,
    host_key: &str,
) -> Result<PathBuf, SimError> {
    let path = dir.join(KNOWN_HOSTS_FILE);
    let text = format!("[{}]:{} {host_key}\n", addr.ip(), addr.port());
    std::fs::write(&path, text).map_err(|e| state_err(&path, e))?;
    Ok(path)
}

/// A running endpoint; dropping `stop` ends it.
pub struct SshServer {
    pub addr: SocketAddr,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub join: tokio::task::JoinHandle<()>,
}

/// Binds 127.0.0.1 on a free port and serves until `stop` fires.
pub fn start(inner: Arc<Inner>, keys: &SshKeys) -> Result<SshServer, SimError> {
    let want = SocketAddr::from(([127, 0, 0, 1], 0));
    let bind_err = |e: std::io::Error| SimError::Bind {
        addr: want,
        source: e,
    };
    let std_listener = std::net::TcpListener::bind(want).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let addr = std_listener.local_addr().map_err(bind_err)?;
    let listener = tokio::net::TcpListener::from_std(std_listener).map_err(bind_err)?;
    let config = Arc::new(russh::server::Config {
        keys: vec![keys.host.clone()],
        methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
        auth_rejection_time: std::time::Duration::from_millis(200),
        auth_rejection_time_initial: Some(std::time::Duration::ZERO),
        inactivity_timeout: Some(std::time::Duration::from_secs(600)),
        ..Default::default()
    });
    let client_key = keys.client.public_key().clone();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let join = tokio::spawn(async move {
        let mut srv = Server { inner, client_key };
        let running = russh::server::Server::run_on_socket(&mut srv, config, &listener);
        let handle = running.handle();
        tokio::select! {
            r = running => {
                if let Err(e) = r {
                    tracing::error!("simulated SSH endpoint stopped: {e}");
                }
            }
            _ = stop_rx => handle.shutdown("simulator stopping".into()),
        }
    });
    Ok(SshServer { addr, stop, join })
}

struct Server {
    inner: Arc<Inner>,
    client_key: PublicKey,
}

impl russh::server::Server for Server {
    type Handler = Conn;
    fn new_client(&mut self, _peer: Option<SocketAddr>) -> Conn {
        Conn {
            inner: self.inner.clone(),
            client_key: self.client_key.clone(),
            pending: HashMap::new(),
        }
    }
}

/// One client connection.
struct Conn {
    inner: Arc<Inner>,
    client_key: PublicKey,
    /// Commands waiting for the client's EOF: the line and the stdin read so far.
    pending: HashMap<ChannelId, (String, Vec<u8>)>,
}

impl Conn {
    fn allowed(&self, user: &str, key: &PublicKey) -> Auth {
        if user == "root" && key.key_data() == self.client_key.key_data() {
            Auth::Accept
        } else {
            Auth::reject()
        }
    }

    /// Runs a command line and sends its output, exit status, EOF and close.
    fn finish(
        &mut self,
        channel: ChannelId,
        line: &str,
        stdin: &[u8],
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let f = self.inner.faults();
        if f.error_rate > 0.0
            && f.error_class.as_deref() == Some("ssh")
            && self.inner.roll() < f.error_rate
        {
            // The connection drops before the command runs: OpenSSH exits 255.
            tracing::info!(target: "labwright_sim::request", "ssh {line} → dropped (fault)");
            return Err(russh::Error::Disconnect);
        }
        let stdin = String::from_utf8_lossy(stdin).into_owned();
        let scale = self.inner.cfg.time_scale;
        let node = self
            .inner
            .with_state(|st| st.nodes.keys().next().cloned().unwrap_or_default());
        let out = self
            .inner
            .with_state(|st| crate::host::run_line_scaled(st, &node, line, &stdin, scale));
        self.inner.persist();
        tracing::info!(target: "labwright_sim::request", "ssh {line} → exit {}", out.code);
        if !out.out.is_empty() {
            session.data(channel, out.out.into_bytes())?;
        }
        if !out.err.is_empty() {
            session.extended_data(channel, 1, out.err.into_bytes())?;
        }
        session.exit_status_request(channel, out.code)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.allowed(user, offer.public_key))
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.allowed(user, key.public_key))
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Only `ssh host CMD`: an interactive shell is refused.
        session.channel_failure(channel)?;
        session.extended_data(
            channel,
            1,
            b"labwright-sim: only commands are served (ssh host CMD)\n".to_vec(),
        )?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let line = String::from_utf8_lossy(data).into_owned();
        if crate::host::reads_stdin(&line) {
            self.pending.insert(channel, (line, Vec::new()));
            Ok(())
        } else {
            self.finish(channel, &line, &[], session)
        }
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some((_, buf)) = self.pending.get_mut(&channel) {
            // A config file, not a disk image: refuse absurd inputs.
            if buf.len() + data.len() > 16 << 20 {
                return Err(russh::Error::Disconnect);
            }
            buf.extend_from_slice(data);
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some((line, input)) = self.pending.remove(&channel) {
            self.finish(channel, &line, &input, session)?;
        }
        Ok(())
    }
}
