//! `labwright sim`: run the Proxmox VE simulator until Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use labwright_sim::{Faults, Scenario, SimConfig, Simulator};

/// Serves the PVE 9 REST API on loopback (HTTPS, certificate signed by a generated
/// cluster CA) from a simulated node, so labwright can be tried and tested without a
/// real Proxmox host. State persists in the state folder across restarts; credentials
/// (token id, secret, fingerprint, URL) are written there with mode 0600.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  labwright sim\n  labwright sim --listen 127.0.0.1:8006 -v")]
pub struct SimArgs {
    /// Address to listen on (loopback only is recommended; port 0 picks a free port).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8006")]
    pub listen: SocketAddr,
    /// Starting inventory: fresh (one SSD node), hdds (plus two spare HDDs),
    /// hdds-used (the second HDD still partitioned), cluster (three nodes) or large
    /// (see --nodes/--vms).
    #[arg(long, value_name = "NAME", default_value = "fresh", value_parser = ["fresh", "hdds", "hdds-used", "cluster", "large"])]
    pub scenario: String,
    /// Number of nodes of the `large` scenario.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub nodes: u32,
    /// Number of guests of the `large` scenario, spread over the nodes.
    #[arg(long, value_name = "M", default_value_t = 1000)]
    pub vms: u32,
    /// Guest-agent commands every guest's agent refuses with `CommandDisabled`
    /// (comma-separated, e.g. `guest-exec`), to try how checks degrade.
    #[arg(long, value_name = "CMD,…", value_delimiter = ',')]
    pub agent_block: Vec<String>,
    /// Discard the saved state and certificates and start from the scenario.
    #[arg(long)]
    pub reset: bool,
    /// Requests served concurrently, like pveproxy's workers; others queue.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub workers: usize,
    /// Latency added to every request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Source address the simulated firewall sees for API clients (a lockout of this
    /// address by the node's firewall refuses connections).
    #[arg(long, value_name = "IP", default_value = "192.168.1.50")]
    pub client_addr: IpAddr,
    /// Seed for fault injection and generated identifiers (reproducible runs).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Multiplies task durations and lock waits (0.1 = ten times faster).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub time_scale: f64,
    /// Probability (0..1) that a request fails with a PVE-style 500.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub fault_error_rate: f64,
    /// Which requests --fault-error-rate hits: all, read, write, qemu, storage,
    /// network, firewall, tasks, ssh (commands on the node's SSH endpoint), or a path
    /// substring.
    #[arg(long, value_name = "CLASS")]
    pub fault_error_class: Option<String>,
    /// Probability that a connection is cut after the request was received.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub fault_drop_rate: f64,
    /// Probability that a write is carried out but its reply is lost (connection cut
    /// after the work).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub fault_lost_reply_rate: f64,
    /// Probability that a task fails with a realistic exit status.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub fault_task_failure_rate: f64,
    /// Probability that a task runs --fault-slow-task-factor times longer.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub fault_slow_task_rate: f64,
    /// Duration multiplier of slow tasks.
    #[arg(long, value_name = "F", default_value_t = 10.0)]
    pub fault_slow_task_factor: f64,
    /// Probability that an rsync in a guest stops partway (exit 12, part copied).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub fault_copy_failure_rate: f64,
    /// Probability that a network reload bringing up new interfaces fails like
    /// `ifreload -a` (the new stanzas stay configured but down).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub fault_reload_failure_rate: f64,
    /// Probability that a network reload bringing up new interfaces cuts the
    /// management address off for new connections until another reload.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub fault_reload_mgmt_cut_rate: f64,
    /// Who does the OPNsense router's one console step at its first boot: `auto` (as
    /// if the admin did it) or `manual` (only keys sent with `PUT …/sendkey` while the
    /// importer's prompt is open).
    #[arg(long, value_name = "MODE", value_parser = ["auto", "manual"])]
    pub router_console: Option<String>,
    /// Probability that a router boot comes up without routing (as if the import
    /// failed).
    #[arg(long, value_name = "P")]
    pub fault_router_boot_failure_rate: Option<f64>,
    /// The Proxmox VE version the node reports on `GET /version` (to try how
    /// labwright treats an older or unsupported release).
    #[arg(long, value_name = "X.Y.Z", default_value = labwright_sim::DEFAULT_PVE_VERSION)]
    pub pve_version: String,
    /// Seconds the simulated node's clock runs ahead of this machine's (negative:
    /// behind), as `/nodes/{node}/time` reports it.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub clock_offset: i64,
}

impl SimArgs {
    /// The simulator configuration these flags describe.
    /// The simulator configuration; `state` is the global `--sim-state` folder (the
    /// one `--target sim` uses too, so both see the same node).
    pub fn config(&self, state: &std::path::Path) -> anyhow::Result<SimConfig> {
        let scenario = match self.scenario.as_str() {
            "large" => Scenario::Large {
                nodes: self.nodes,
                vms: self.vms,
            },
            other => other.parse::<Scenario>().map_err(anyhow::Error::msg)?,
        };
        Ok(SimConfig {
            listen: self.listen,
            scenario,
            state_dir: Some(state.to_path_buf()),
            reset: self.reset,
            workers: self.workers,
            latency_ms: self.latency_ms,
            faults: Faults {
                error_rate: self.fault_error_rate,
                error_class: self.fault_error_class.clone(),
                drop_rate: self.fault_drop_rate,
                lost_reply_rate: self.fault_lost_reply_rate,
                task_failure_rate: self.fault_task_failure_rate,
                slow_task_rate: self.fault_slow_task_rate,
                slow_task_factor: self.fault_slow_task_factor,
                copy_failure_rate: self.fault_copy_failure_rate,
                reload_failure_rate: self.fault_reload_failure_rate,
                reload_mgmt_cut_rate: self.fault_reload_mgmt_cut_rate,
            },
            seed: self.seed,
            client_addr: self.client_addr,
            time_scale: self.time_scale,
            auth_fail_delay_secs: 3.0,
            agent_blocked: self.agent_block.clone(),
            pve_version: self.pve_version.clone(),
            clock_offset_secs: self.clock_offset,
        })
    }
}

/// Starts the simulator and serves until Ctrl-C.
#[allow(clippy::print_stderr)] // the startup banner is this command's purpose
pub fn run(args: &SimArgs, g: &crate::cli::GlobalArgs) -> anyhow::Result<ExitCode> {
    let state = g.target.sim_state.as_path();
    let cfg = args.config(state)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let listen = args.listen;
    if !listen.ip().is_loopback() {
        eprintln!(
            "warning: listening on {listen}, beyond loopback: anyone who reaches this address can try the simulator's API (its tokens are in the credentials file)"
        );
    }
    rt.block_on(async {
        let sim = match Simulator::start(cfg).await {
            Ok(s) => s,
            Err(e) if format!("{e:#}").contains("in use") => {
                anyhow::bail!(
                    "cannot start the simulator: {listen} is in use ({e}); pick another address, e.g. --listen 127.0.0.1:0 for any free port"
                )
            }
            Err(e) => return Err(anyhow::Error::new(e).context("cannot start the simulator")),
        };
        // Flags win over the environment (`LABWRIGHT_SIM_ROUTER_CONSOLE`, …).
        if args.router_console.is_some() || args.fault_router_boot_failure_rate.is_some() {
            let env = sim.router_sim();
            let rate = args
                .fault_router_boot_failure_rate
                .map(|r| r.to_string());
            let console = args.router_console.clone();
            let mut r = labwright_sim::RouterSim::from_values(console.as_deref(), rate.as_deref())
                .map_err(anyhow::Error::msg)?;
            if args.router_console.is_none() {
                r.console = env.console;
            }
            if args.fault_router_boot_failure_rate.is_none() {
                r.boot_failure_rate = env.boot_failure_rate;
            }
            sim.set_router_sim(r);
        }
        eprintln!(
            "labwright sim: Proxmox VE 9 simulator ({} scenario)",
            args.scenario
        );
        eprintln!("  url:         {}", sim.url());
        eprintln!("  node:        {}", sim.node());
        eprintln!(
            "  ssh:         {}@127.0.0.1 -p {} (key: {}, known_hosts: {})",
            sim.ssh_user(),
            sim.ssh_port(),
            sim.ssh_client_key_path().display(),
            sim.ssh_known_hosts_path().display()
        );
        eprintln!("  fingerprint: {}", sim.fingerprint());
        eprintln!("  token id:    {}", sim.token_id());
        eprintln!("  read-only:   {}", sim.readonly_token_id());
        if let Some(p) = sim.credentials_path() {
            eprintln!(
                "  credentials: {} (mode 0600; holds the token secrets)",
                p.display()
            );
        }
        if let Some(p) = sim.credentials_path() {
            // Ready to paste; the secret is read from the file by the shell, never
            // printed here.
            eprintln!("To point labwright at it (paste into your shell):");
            eprintln!("  export LABWRIGHT_PVE_URL={}", sim.url());
            eprintln!("  export LABWRIGHT_PVE_TOKEN_ID='{}'", sim.token_id());
            eprintln!("  export LABWRIGHT_PVE_FINGERPRINT={}", sim.fingerprint());
            let abs_of = |p: std::path::PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
            eprintln!("  export LABWRIGHT_SSH_TARGET={}", sim.ssh_target());
            eprintln!(
                "  export LABWRIGHT_SSH_IDENTITY='{}'",
                abs_of(sim.ssh_client_key_path()).display()
            );
            eprintln!(
                "  export LABWRIGHT_SSH_KNOWN_HOSTS='{}'",
                abs_of(sim.ssh_known_hosts_path()).display()
            );
            let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            eprintln!(
                "  export LABWRIGHT_PVE_TOKEN_SECRET=\"$(sed -n 's/.*\"token_secret\": *\"\\([^\"]*\\)\".*/\\1/p' '{}')\"",
                abs.display()
            );
            eprintln!("  labwright --target env scan");
        }
        eprintln!("Press Ctrl-C to stop.");
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        eprintln!(
            "labwright sim: stopping, state saved in {}",
            state.display()
        );
        sim.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
