//! labwright-sim: a Proxmox VE 9 API simulator.
//!
//! It serves `https://…/api2/json/…` the way a real PVE node does: TLS with a cluster-CA
//! signed certificate, token and ticket authentication, ACL privilege checks, request
//! validation derived from the official API schema, tasks with UPIDs, locks, digests,
//! pending changes, staged host networking, storage, ZFS, backup jobs and the firewall.
//! It shares no PVE-semantics code with the labwright client on purpose: both are
//! written from the documentation, so their mistakes cannot cancel each other out.
//!
//! ```no_run
//! # async fn demo() -> Result<(), labwright_sim::SimError> {
//! let handle = labwright_sim::Simulator::start(labwright_sim::SimConfig::for_tests()).await?;
//! println!("{} {}", handle.url(), handle.fingerprint());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod auth;
pub mod calendar;
pub mod formats;
pub mod fsmap;
mod fweval;
mod guest;
mod guestnet;
pub mod host;
pub mod netip;
pub mod opnsense;
mod router;
pub mod schema;
mod segments;
mod server;
mod ssh;
pub mod state;
mod tasks;
mod tls;
mod util;
pub mod words;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use api::IMPLEMENTED;
pub use state::Scenario;

/// Errors starting or running the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("state folder {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is not valid (start with --reset to discard it): {source}")]
    StateFormat {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("certificate generation failed: {0}")]
    Cert(String),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("simulator setting: {0}")]
    Config(String),
}

/// How the router guest's one console step (OPNsense's configuration importer) is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouterConsole {
    /// The admin does it: the seed's config is imported at boot.
    #[default]
    Auto,
    /// Nobody does it unless keys arrive through `PUT …/sendkey` while the importer's
    /// prompt is open (any key, then `c`, `d`, `0`, `ret`).
    Manual,
}

impl std::str::FromStr for RouterConsole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(RouterConsole::Auto),
            "manual" => Ok(RouterConsole::Manual),
            other => Err(format!(
                "router console mode `{other}` is not known: use `auto` or `manual`"
            )),
        }
    }
}

/// The simulated router guest's settings: `--router-console` and
/// `--fault-router-boot-failure-rate`. Kept apart from [`SimConfig`] and [`Faults`]
/// (whose literals other crates build) and read from the environment at every start
/// (`LABWRIGHT_SIM_ROUTER_CONSOLE`, `LABWRIGHT_SIM_FAULT_ROUTER_BOOT_FAILURE_RATE`, the
/// `LABWRIGHT_SIM_*` convention of the embedded `--target sim`), so both `labwright
/// sim` and the embedded simulator take them without a flag of their own;
/// [`SimHandle::set_router_sim`] changes them while running.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RouterSim {
    pub console: RouterConsole,
    /// Probability (0..1) that a router boot comes up without routing, as if the
    /// configuration import had failed.
    pub boot_failure_rate: f64,
}

/// Environment variable of `--router-console`.
pub const ENV_ROUTER_CONSOLE: &str = "LABWRIGHT_SIM_ROUTER_CONSOLE";
/// Environment variable of `--fault-router-boot-failure-rate`.
pub const ENV_ROUTER_BOOT_FAILURE_RATE: &str = "LABWRIGHT_SIM_FAULT_ROUTER_BOOT_FAILURE_RATE";

impl RouterSim {
    /// The settings the environment asks for (unset: `auto`, no fault).
    pub fn from_env() -> Result<RouterSim, String> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self::from_values(
            get(ENV_ROUTER_CONSOLE).as_deref(),
            get(ENV_ROUTER_BOOT_FAILURE_RATE).as_deref(),
        )
    }

    /// Parses the two settings as given on a command line or in the environment.
    pub fn from_values(console: Option<&str>, rate: Option<&str>) -> Result<RouterSim, String> {
        let console = match console {
            Some(c) => c
                .trim()
                .parse()
                .map_err(|e| format!("{ENV_ROUTER_CONSOLE}: {e}"))?,
            None => RouterConsole::Auto,
        };
        let boot_failure_rate = match rate {
            Some(r) => match r.trim().parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => x,
                _ => {
                    return Err(format!(
                        "{ENV_ROUTER_BOOT_FAILURE_RATE}: `{r}` is not a probability between 0 and 1"
                    ));
                }
            },
            None => 0.0,
        };
        Ok(RouterSim {
            console,
            boot_failure_rate,
        })
    }
}

/// Fault injection, reproducible through [`SimConfig::seed`].
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Probability (0..1) that a request gets a PVE-style 500 instead of being served.
    pub error_rate: f64,
    /// Which requests `error_rate` applies to: `all`, `read` (GET), `write`
    /// (POST/PUT/DELETE), `qemu`, `storage`, `network`, `firewall`, `tasks`, `ssh`
    /// (commands on the node's SSH endpoint: the connection drops before the command
    /// runs, so `ssh` exits 255), or any other text, matched as a substring of the path.
    pub error_class: Option<String>,
    /// Probability that the connection is cut after a request was received.
    pub drop_rate: f64,
    /// Probability that a write (POST/PUT/DELETE) is carried out but its reply is lost:
    /// the connection is cut after the work, so the client cannot know it happened.
    pub lost_reply_rate: f64,
    /// Probability that a task fails (with a realistic exit status).
    pub task_failure_rate: f64,
    /// Probability that a task runs `slow_task_factor` times longer.
    pub slow_task_rate: f64,
    /// Duration multiplier of slow tasks (default 10 when zero).
    pub slow_task_factor: f64,
    /// Probability that an `rsync` in a guest stops partway: a seeded random part of
    /// the files is copied, then it exits 12 like a broken transfer.
    pub copy_failure_rate: f64,
    /// Probability that a network reload which brings up new interfaces fails the way
    /// `ifreload -a` does: PVE has already moved `interfaces.new` over the live file, so
    /// the new stanzas are configured but not up (no `active`, guests cannot use them)
    /// and nothing is staged any more — the caller has to restore the old definitions.
    pub reload_failure_rate: f64,
    /// Probability that a network reload which brings up new interfaces succeeds but
    /// leaves the management address unreachable for new connections (established ones
    /// live on) until a later reload applies a different configuration: the case a
    /// probe over a fresh connection exists for.
    pub reload_mgmt_cut_rate: f64,
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Listen address; port 0 picks a free port.
    pub listen: SocketAddr,
    pub scenario: Scenario,
    /// Where state, certificates and credentials are kept; `None` keeps everything in memory.
    pub state_dir: Option<PathBuf>,
    /// Start from the scenario even if the state folder holds a saved state.
    pub reset: bool,
    /// Requests served concurrently (pveproxy's worker count); others queue.
    pub workers: usize,
    /// Added to every request.
    pub latency_ms: u64,
    pub faults: Faults,
    pub seed: u64,
    /// The source address the simulated node's firewall sees for every API client.
    pub client_addr: IpAddr,
    /// Multiplies task durations, lock waits and the stats lag (1.0 = real time).
    pub time_scale: f64,
    /// Delay before a 401, in seconds at time scale 1 (PVE: 3 s).
    pub auth_fail_delay_secs: f64,
    /// Guest-agent commands every simulated guest's agent refuses with
    /// `CommandDisabled` (`guest-exec`, `guest-network-get-interfaces`), as qemu-ga
    /// started with `--block-rpcs` answers: for trying how checks degrade.
    pub agent_blocked: Vec<String>,
    /// The pve-manager version `GET /version` reports (`9.1.1`), so clients can be
    /// tried against an older or unsupported release.
    pub pve_version: String,
    /// Seconds the node's clock is ahead (negative: behind) of this machine's, as
    /// `GET /nodes/{node}/time` reports it: for trying clock-skew checks.
    pub clock_offset_secs: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8006)),
            scenario: Scenario::Fresh,
            state_dir: None,
            reset: false,
            workers: 3,
            latency_ms: 0,
            faults: Faults::default(),
            seed: 0,
            client_addr: IpAddr::from([192, 168, 1, 50]),
            time_scale: 1.0,
            auth_fail_delay_secs: 3.0,
            agent_blocked: Vec::new(),
            pve_version: DEFAULT_PVE_VERSION.into(),
            clock_offset_secs: 0,
        }
    }
}

/// The release the simulator models (its schema is `apidata-9.1.3.json`).
pub const DEFAULT_PVE_VERSION: &str = "9.1.1";

impl SimConfig {
    /// Port 0, in-memory state, tasks 100× faster: what tests want.
    pub fn for_tests() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            time_scale: 0.01,
            auth_fail_delay_secs: 3.0,
            ..Default::default()
        }
    }
}

/// What a client needs to talk to the simulator; also written to `credentials.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    pub url: String,
    pub node: String,
    pub fingerprint: String,
    pub token_id: String,
    pub token_secret: String,
    pub readonly_token_id: String,
    pub readonly_token_secret: String,
    pub root_password: String,
    pub ca_pem: String,
    /// The node's SSH endpoint on 127.0.0.1 (0 in files written before it existed).
    #[serde(default)]
    pub ssh_port: u16,
    #[serde(default)]
    pub ssh_user: String,
    /// The public host key, `ssh-ed25519 AAAA…`.
    #[serde(default)]
    pub ssh_host_key: String,
    /// Path of the client's private key (OpenSSH format, mode 0600).
    #[serde(default)]
    pub ssh_client_key: String,
    /// Path of a `known_hosts` file holding the host key for `[127.0.0.1]:PORT`.
    #[serde(default)]
    pub ssh_known_hosts: String,
}

impl Credentials {
    /// Reads `credentials.json` from a state folder written by a running simulator.
    pub fn load(state_dir: &std::path::Path) -> Result<Credentials, SimError> {
        let path = state_dir.join("credentials.json");
        let text = std::fs::read_to_string(&path).map_err(|e| SimError::State {
            path: path.clone(),
            source: e,
        })?;
        serde_json::from_str(&text).map_err(|e| SimError::StateFormat { path, source: e })
    }
}

/// The running simulator.
pub struct SimHandle {
    inner: Arc<server::Inner>,
    addr: SocketAddr,
    creds: Credentials,
    server: axum_server::Handle<SocketAddr>,
    join: Mutex<Option<tokio::task::JoinHandle<()>>>,
    credentials_path: Option<PathBuf>,
    ssh: Mutex<Option<ssh::SshServer>>,
    /// Where the SSH keys live without a state folder; removed on shutdown or drop.
    key_dir: Mutex<Option<tempfile::TempDir>>,
}

impl SimHandle {
    /// `https://127.0.0.1:PORT` (no trailing slash, no `/api2/json`).
    pub fn url(&self) -> String {
        self.creds.url.clone()
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// SHA-256 of the leaf certificate, `AA:BB:…` as PVE shows it.
    pub fn fingerprint(&self) -> String {
        self.creds.fingerprint.clone()
    }
    /// PEM of the cluster CA that signed the leaf certificate.
    pub fn ca_pem(&self) -> String {
        self.creds.ca_pem.clone()
    }
    /// DER of the cluster CA (for a client's root store).
    pub fn ca_der(&self) -> Vec<u8> {
        tls::pem_body(&self.creds.ca_pem)
    }
    /// Full token id of the administrator token (`root@pam!labwright`).
    pub fn token_id(&self) -> String {
        self.creds.token_id.clone()
    }
    /// Its secret (a UUID). Never logged by the simulator.
    pub fn token_secret(&self) -> String {
        self.creds.token_secret.clone()
    }
    /// A privilege-separated, audit-only token for testing 403 paths.
    pub fn readonly_token_id(&self) -> String {
        self.creds.readonly_token_id.clone()
    }
    pub fn readonly_token_secret(&self) -> String {
        self.creds.readonly_token_secret.clone()
    }
    /// `root@pam`'s password for the ticket flow.
    pub fn root_password(&self) -> String {
        self.creds.root_password.clone()
    }
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }
    /// Where `credentials.json` was written (only with a state folder).
    pub fn credentials_path(&self) -> Option<&std::path::Path> {
        self.credentials_path.as_deref()
    }
    /// The first node's name.
    pub fn node(&self) -> String {
        self.creds.node.clone()
    }
    /// Changes the source address the simulated firewall evaluates for new connections.
    pub fn set_client_addr(&self, addr: IpAddr) {
        if let Ok(mut a) = self.inner.client_addr.lock() {
            *a = addr;
        }
    }
    /// Marks a node offline (requests proxied to it get 596) or online again.
    pub fn set_node_online(&self, node: &str, online: bool) {
        self.inner.with_state(|st| {
            if let Some(n) = st.nodes.get_mut(node) {
                n.online = online;
            }
        });
    }
    /// The SSH endpoint's address (127.0.0.1, its own port).
    pub fn ssh_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.creds.ssh_port))
    }
    pub fn ssh_port(&self) -> u16 {
        self.creds.ssh_port
    }
    /// The one user the endpoint accepts (`root`).
    pub fn ssh_user(&self) -> String {
        self.creds.ssh_user.clone()
    }
    /// `root@127.0.0.1:PORT`, the form of `LABWRIGHT_SSH_TARGET`.
    pub fn ssh_target(&self) -> String {
        format!("{}@127.0.0.1:{}", self.creds.ssh_user, self.creds.ssh_port)
    }
    /// The public host key line, `ssh-ed25519 AAAA…`.
    pub fn ssh_host_key(&self) -> String {
        self.creds.ssh_host_key.clone()
    }
    /// Path of the accepted client's private key (mode 0600).
    pub fn ssh_client_key_path(&self) -> PathBuf {
        PathBuf::from(&self.creds.ssh_client_key)
    }
    /// Path of a `known_hosts` file that vouches for the host key.
    pub fn ssh_known_hosts_path(&self) -> PathBuf {
        PathBuf::from(&self.creds.ssh_known_hosts)
    }
    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.inner.faults()
    }
    /// Changes fault injection while running (tests switch faults on for one step).
    pub fn set_faults(&self, faults: Faults) {
        self.inner.set_faults(faults);
    }
    /// The router guest's settings in force.
    pub fn router_sim(&self) -> RouterSim {
        self.inner.router_sim()
    }
    /// Changes the router guest's console mode and boot fault (applies from the next
    /// router boot).
    pub fn set_router_sim(&self, r: RouterSim) {
        if let Ok(mut g) = self.inner.router.lock() {
            *g = r;
        }
    }
    /// A copy of the whole simulated state, for assertions.
    pub fn snapshot_state(&self) -> state::State {
        self.inner.with_state(|st| st.clone())
    }
    /// Saves state and stops serving.
    pub async fn shutdown(&self) {
        self.inner.persist();
        self.server.shutdown();
        let join = self.join.lock().ok().and_then(|mut j| j.take());
        if let Some(j) = join {
            let _ = j.await;
        }
        let ssh = self.ssh.lock().ok().and_then(|mut s| s.take());
        if let Some(s) = ssh {
            let _ = s.stop.send(());
            let _ = s.join.await;
        }
        let keys = self.key_dir.lock().ok().and_then(|mut k| k.take());
        drop(keys);
    }
}

/// Entry point.
pub struct Simulator;

impl Simulator {
    /// Builds (or loads) the state, generates or loads certificates, binds and serves.
    pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
        server::start(cfg).await
    }
}
