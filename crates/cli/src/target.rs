//! Where labwright connects: the embedded simulator (`--target sim`, the default
//! when nothing else is configured), the `LABWRIGHT_PVE_*` environment, or a profile
//! from `$XDG_CONFIG_HOME/labwright/config.toml`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use labwright_pve::{ClientConfig, Credentials, Fingerprint, PveClient, Secret, TlsMode};
use serde::Deserialize;

use crate::ui;

#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Node to work on: `sim` (embedded simulator), `env` (LABWRIGHT_PVE_* variables),
    /// or a profile name from config.toml. Default: `env` when LABWRIGHT_PVE_URL is
    /// set, else `sim`.
    #[arg(long, global = true, env = "LABWRIGHT_TARGET", value_name = "NAME")]
    pub target: Option<String>,
    /// Skip TLS verification (never with a pinned fingerprint). Prints a warning.
    #[arg(long, global = true)]
    pub insecure: bool,
    /// State folder of the embedded simulator.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = ".labwright/sim",
        env = "LABWRIGHT_SIM_STATE"
    )]
    pub sim_state: PathBuf,
}

/// A profile in config.toml: `[targets.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Profile {
    url: String,
    token_id: String,
    /// Name of an environment variable holding the secret.
    token_secret_env: Option<String>,
    /// File holding the secret (must be readable by its owner only).
    token_secret_file: Option<PathBuf>,
    /// Command whose stdout is the secret (e.g. `pass show pve/labwright`).
    token_secret_command: Option<String>,
    fingerprint: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    insecure: bool,
    /// Address the node sees for this machine (NAT, tunnels), for the lockout proof.
    #[allow(dead_code)]
    client_address: Option<String>,
    /// The node's SSH, `user@host[:port]` (datasets, sanoid).
    ssh: Option<String>,
    /// Private key and known_hosts file for it (defaults: your ssh configuration).
    ssh_identity: Option<PathBuf>,
    ssh_known_hosts: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    targets: std::collections::BTreeMap<String, Profile>,
}

/// A live connection; keeps the embedded simulator alive while it exists.
pub struct Connected {
    pub client: PveClient,
    pub label: String,
    /// How the client was built: the firewall wave probes over a fresh client made
    /// from it after each step (a kept-alive connection survives a DROP policy).
    pub config: ClientConfig,
    /// The address the node sees labwright connect from (for the lockout proof).
    pub client_addr: Option<std::net::IpAddr>,
    /// The node's SSH as the target says (a profile's `ssh`, the simulator's own);
    /// `crate::host` adds the environment and the spec's `node.ssh`.
    pub ssh: Option<labwright_host::SshTarget>,
    /// Where `ssh` came from, for messages.
    pub ssh_origin: String,
    /// The SSH link, opened on first use and closed with the connection.
    pub(crate) host: std::sync::OnceLock<Option<std::sync::Arc<labwright_host::Ssh>>>,
    sim: Option<labwright_sim::SimHandle>,
}

impl Connected {
    /// True for the embedded simulator (its firewall acts at once: no settle time).
    pub fn is_sim(&self) -> bool {
        self.sim.is_some()
    }

    /// Stops the embedded simulator cleanly (its state is saved).
    pub async fn close(self) {
        if let Some(Some(h)) = self.host.into_inner()
            && let Ok(ssh) = std::sync::Arc::try_unwrap(h)
        {
            ssh.close().await;
        }
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
    }
}

pub(crate) fn config_path() -> Option<PathBuf> {
    use etcetera::BaseStrategy;
    if let Ok(dir) = std::env::var("XDG_CONFIG_HOME")
        && !dir.is_empty()
    {
        return Some(PathBuf::from(dir).join("labwright/config.toml"));
    }
    etcetera::choose_base_strategy()
        .ok()
        .map(|s| s.config_dir().join("labwright/config.toml"))
}

/// `~/x` → `$HOME/x`, as users write paths in config files.
pub(crate) fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// Reads a secret file, refusing one that others can read.
pub(crate) fn read_secret_file(path: &Path) -> anyhow::Result<Secret> {
    let path = &expand_home(path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "{} is readable by other users; run `chmod 600 {}` first",
                path.display(),
                path.display()
            );
        }
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Secret::from(text.trim().to_string()))
}

fn tls_for(
    fingerprint: Option<&str>,
    ca: Option<&Path>,
    insecure: bool,
) -> anyhow::Result<TlsMode> {
    if let Some(fp) = fingerprint {
        let fp = Fingerprint::parse(fp).map_err(|e| anyhow::anyhow!("fingerprint: {e}"))?;
        if insecure {
            ui::warn("--insecure ignored: a pinned fingerprint is always checked");
        }
        return Ok(TlsMode::Fingerprint(fp));
    }
    if let Some(ca) = ca {
        return Ok(TlsMode::CaFile(expand_home(ca)));
    }
    if insecure {
        ui::warn("TLS verification is OFF (--insecure): anyone on the path can read the token");
        return Ok(TlsMode::Insecure);
    }
    Ok(TlsMode::SystemRoots)
}

fn env_target(args: &TargetArgs) -> anyhow::Result<Connected> {
    let url = std::env::var("LABWRIGHT_PVE_URL").context("LABWRIGHT_PVE_URL is not set")?;
    let token_id = std::env::var("LABWRIGHT_PVE_TOKEN_ID")
        .context("LABWRIGHT_PVE_TOKEN_ID is not set (e.g. labwright@pve!lab)")?;
    let secret = std::env::var("LABWRIGHT_PVE_TOKEN_SECRET")
        .context("LABWRIGHT_PVE_TOKEN_SECRET is not set")?;
    let fp = std::env::var("LABWRIGHT_PVE_FINGERPRINT")
        .ok()
        .filter(|s| !s.is_empty());
    // The node's own CA (`/etc/pve/pve-root-ca.pem`), as a profile's `ca-file` does.
    let ca = std::env::var_os("LABWRIGHT_PVE_CA_FILE")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let tls = tls_for(fp.as_deref(), ca.as_deref(), args.insecure)?;
    let cfg = ClientConfig::new(
        url.clone(),
        Credentials::api_token(token_id, Secret::from(secret)),
    )
    .tls(tls);
    let client = PveClient::new(cfg.clone()).context("cannot set up the API client")?;
    Ok(Connected {
        client,
        label: url,
        config: cfg,
        client_addr: None,
        ssh: None,
        ssh_origin: String::new(),
        host: Default::default(),
        sim: None,
    })
}

fn profile_target(name: &str, args: &TargetArgs) -> anyhow::Result<Connected> {
    let path = config_path().context("cannot locate the config folder")?;
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("target `{name}`: cannot read {} (targets: sim, env, or a [targets.{name}] profile there)", path.display())
    })?;
    let cfg: ConfigFile = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid config", path.display()))?;
    let Some(p) = cfg.targets.get(name) else {
        let known: Vec<&str> = cfg.targets.keys().map(String::as_str).collect();
        bail!(
            "no target `{name}` in {} (known: sim, env{}{})",
            path.display(),
            if known.is_empty() { "" } else { ", " },
            known.join(", ")
        );
    };
    let secret = if let Some(var) = &p.token_secret_env {
        Secret::from(
            std::env::var(var).with_context(|| format!("target `{name}`: {var} is not set"))?,
        )
    } else if let Some(file) = &p.token_secret_file {
        read_secret_file(file)?
    } else if let Some(cmd) = &p.token_secret_command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("target `{name}`: cannot run its token-secret-command"))?;
        if !out.status.success() {
            bail!(
                "target `{name}`: token-secret-command failed ({})",
                out.status
            );
        }
        Secret::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else if let Ok(s) = std::env::var("LABWRIGHT_PVE_TOKEN_SECRET") {
        Secret::from(s)
    } else {
        bail!(
            "target `{name}` says nothing about its secret: set token-secret-env, token-secret-file or token-secret-command"
        );
    };
    let fp = std::env::var("LABWRIGHT_PVE_FINGERPRINT")
        .ok()
        .or(p.fingerprint.clone());
    let tls = tls_for(
        fp.as_deref(),
        p.ca_file.as_deref(),
        args.insecure || p.insecure,
    )?;
    let cfg = ClientConfig::new(
        p.url.clone(),
        Credentials::api_token(p.token_id.clone(), secret),
    )
    .tls(tls);
    let client = PveClient::new(cfg.clone()).context("cannot set up the API client")?;
    let client_addr = match p.client_address.as_deref() {
        Some(a) => Some(a.trim().parse().with_context(|| {
            format!("target `{name}`: client-address `{a}` is not an IP address")
        })?),
        None => None,
    };
    let ssh = match &p.ssh {
        None => None,
        Some(s) => {
            let mut t = labwright_host::SshTarget::parse(s)
                .with_context(|| format!("target `{name}` in {}: ssh", path.display()))?;
            t.identity = p.ssh_identity.as_deref().map(expand_home);
            t.known_hosts = p.ssh_known_hosts.as_deref().map(expand_home);
            Some(t)
        }
    };
    Ok(Connected {
        client,
        label: format!("{name} ({})", p.url),
        config: cfg,
        client_addr,
        ssh,
        ssh_origin: format!("target `{name}`"),
        host: Default::default(),
        sim: None,
    })
}

async fn sim_target(args: &TargetArgs) -> anyhow::Result<Connected> {
    let scenario: labwright_sim::Scenario = std::env::var("LABWRIGHT_SIM_SCENARIO")
        .unwrap_or_else(|_| "fresh".into())
        .parse()
        .map_err(|e: String| anyhow::anyhow!("LABWRIGHT_SIM_SCENARIO: {e}"))?;
    let time_scale = std::env::var("LABWRIGHT_SIM_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.05);
    let scenario_word = format!("{scenario:?}").to_ascii_lowercase();
    let mut cfg = labwright_sim::SimConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        scenario,
        state_dir: Some(args.sim_state.clone()),
        time_scale,
        ..labwright_sim::SimConfig::default()
    };
    // The address the simulated firewall sees for us (like `labwright sim --client-addr`).
    if let Ok(a) = std::env::var("LABWRIGHT_SIM_CLIENT_ADDR") {
        cfg.client_addr = a
            .trim()
            .parse()
            .with_context(|| format!("LABWRIGHT_SIM_CLIENT_ADDR `{a}` is not an IP address"))?;
    }
    // Agent commands the simulated guests refuse (`guest-exec,…`), to try degraded checks.
    if let Ok(list) = std::env::var("LABWRIGHT_SIM_AGENT_BLOCK") {
        cfg.agent_blocked = list
            .split(',')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
    }
    // The version the simulated node reports (`labwright sim --pve-version`).
    if let Ok(v) = std::env::var("LABWRIGHT_SIM_PVE_VERSION")
        && !v.trim().is_empty()
    {
        cfg.pve_version = v.trim().to_string();
    }
    if let Ok(v) = std::env::var("LABWRIGHT_SIM_CLOCK_OFFSET") {
        cfg.clock_offset_secs = v.trim().parse().with_context(|| {
            format!("LABWRIGHT_SIM_CLOCK_OFFSET `{v}` is not a number of seconds")
        })?;
    }
    let sim_client_addr = cfg.client_addr;
    let fresh = !args.sim_state.join("state.json").exists();
    let sim = labwright_sim::Simulator::start(cfg)
        .await
        .context("cannot start the embedded simulator")?;
    if fresh {
        // Said once: the next commands find this node where this one left it.
        crate::ui::remark(&format!(
            "note: created a new simulated node ({scenario_word} scenario) in {}; later commands reuse it (remove the folder to start over)",
            args.sim_state.display()
        ));
    }
    let fp = Fingerprint::parse(&sim.fingerprint())
        .map_err(|e| anyhow::anyhow!("simulator fingerprint: {e}"))?;
    let creds = Credentials::api_token(sim.token_id(), Secret::from(sim.token_secret()));
    let config = ClientConfig::new(sim.url(), creds).tls(TlsMode::Fingerprint(fp));
    let client = PveClient::new(config.clone()).context("cannot set up the API client")?;
    Ok(Connected {
        client,
        label: format!("embedded simulator ({})", args.sim_state.display()),
        config,
        client_addr: Some(sim_client_addr),
        ssh: crate::host::sim_ssh(&sim),
        ssh_origin: "the embedded simulator".into(),
        host: Default::default(),
        sim: Some(sim),
    })
}

/// The address the node sees us connect from, for the lockout proof:
/// `LABWRIGHT_CLIENT_ADDR`, else the target's `client-address` (or the simulator's
/// client address), else the local address the OS picks towards the node (a UDP
/// "connect" sends nothing).
fn client_address(c: &Connected) -> anyhow::Result<Option<std::net::IpAddr>> {
    if let Ok(a) = std::env::var("LABWRIGHT_CLIENT_ADDR") {
        let ip = a
            .trim()
            .parse()
            .with_context(|| format!("LABWRIGHT_CLIENT_ADDR `{a}` is not an IP address"))?;
        return Ok(Some(ip));
    }
    if c.client_addr.is_some() {
        return Ok(c.client_addr);
    }
    // Through a tunnel (ssh -L, a local proxy) the local address is loopback, which
    // says nothing about what the node sees: better unknown (the plan's proof says so)
    // than a proof that passes for the wrong address.
    Ok(local_addr_towards(c.client.api_base()).filter(|ip| !ip.is_loopback()))
}

fn local_addr_towards(url: &str) -> Option<std::net::IpAddr> {
    use std::net::{ToSocketAddrs, UdpSocket};
    let rest = url.split("://").nth(1)?;
    let hostport = rest.split('/').next()?;
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:8006")
    };
    let remote = with_port.to_socket_addrs().ok()?.next()?;
    let bind = if remote.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let sock = UdpSocket::bind(bind).ok()?;
    sock.connect(remote).ok()?;
    let ip = sock.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// The target's name as `--target` or the environment chooses it.
pub fn target_name(args: &TargetArgs) -> String {
    match &args.target {
        Some(t) => t.clone(),
        None if std::env::var_os("LABWRIGHT_PVE_URL").is_some() => "env".into(),
        None => "sim".into(),
    }
}

/// Where an `env` target or a profile points and how its certificate is trusted,
/// without its token (`token create` logs in with a password instead). `None` for
/// the embedded simulator.
pub fn endpoint(args: &TargetArgs) -> anyhow::Result<Option<(String, TlsMode)>> {
    let name = target_name(args);
    match name.as_str() {
        "sim" => Ok(None),
        "env" => {
            let url = std::env::var("LABWRIGHT_PVE_URL").context("LABWRIGHT_PVE_URL is not set")?;
            let fp = std::env::var("LABWRIGHT_PVE_FINGERPRINT")
                .ok()
                .filter(|s| !s.is_empty());
            let ca = std::env::var_os("LABWRIGHT_PVE_CA_FILE")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from);
            Ok(Some((
                url,
                tls_for(fp.as_deref(), ca.as_deref(), args.insecure)?,
            )))
        }
        other => {
            let path = config_path().context("cannot locate the config folder")?;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("target `{other}`: cannot read {}", path.display()))?;
            let cfg: ConfigFile = toml::from_str(&text)
                .with_context(|| format!("{} is not a valid config", path.display()))?;
            let p = cfg
                .targets
                .get(other)
                .with_context(|| format!("no target `{other}` in {}", path.display()))?;
            let fp = std::env::var("LABWRIGHT_PVE_FINGERPRINT")
                .ok()
                .or(p.fingerprint.clone());
            let tls = tls_for(
                fp.as_deref(),
                p.ca_file.as_deref(),
                args.insecure || p.insecure,
            )?;
            Ok(Some((p.url.clone(), tls)))
        }
    }
}

/// Connects to the chosen target.
pub async fn connect(args: &TargetArgs) -> anyhow::Result<Connected> {
    let name = match &args.target {
        Some(t) => t.clone(),
        None if std::env::var_os("LABWRIGHT_PVE_URL").is_some() => "env".into(),
        None => "sim".into(),
    };
    let mut c = match name.as_str() {
        "sim" => sim_target(args).await?,
        "env" => env_target(args)?,
        other => profile_target(other, args)?,
    };
    c.client_addr = client_address(&c)?;
    tracing::info!("target: {}", c.label);
    Ok(c)
}
