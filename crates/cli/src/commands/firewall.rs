//! `labwright firewall simulate|matrix`: one flow's decision trail, or the
//! reachability matrix, on the spec, the live node, the node after the plan, or (with
//! `--fw-dir`) a directory of `.fw` files.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use labwright_engine::firewall::{self as fw, ObservedFirewall, compile_spec, post_plan_config};
use labwright_engine::{ScanScope, scan};
use labwright_firewall::{Backend, FirewallConfig, Flow, Protocol, Target, evaluate};
use labwright_spec::Spec;

use super::common;
use crate::cli::GlobalArgs;

/// `--fw-dir`: audit a directory of `.fw` files (no spec, no node).
#[path = "firewall_audit.rs"]
mod firewall_audit;
use crate::target::{self, Connected, TargetArgs};
use crate::{exit, ui};

/// Ask the firewall model questions without changing anything.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright firewall simulate specs/preprod.firewall.desired.yaml --source 100.101.1.1 --port 22\n  labwright firewall matrix specs/jarvis-homelab.desired.yaml --phase 2"
)]
pub struct FirewallArgs {
    #[command(subcommand)]
    pub command: FirewallCommand,
}

#[derive(Debug, Subcommand)]
pub enum FirewallCommand {
    /// Evaluate one flow like `pve-firewall simulate` and print the decision trail.
    Simulate(SimulateArgs),
    /// Print who reaches what (segments, Tailscale, management → node and VMs) on the
    /// declared ports, and mark every cell that disagrees with the intent.
    Matrix(MatrixArgs),
}

/// Which firewall to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum State {
    /// What the spec declares, compiled onto a fresh node (no node contacted).
    Spec,
    /// What the node has now.
    Live,
    /// What the node would have after applying the spec.
    Plan,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright firewall simulate specs/preprod.firewall.desired.yaml --source 100.101.1.1 --port 22 --state live\n  labwright firewall simulate --fw-dir audit --node-address 192.168.1.10/24 --source 192.168.1.50 --port 8006"
)]
pub struct SimulateArgs {
    /// The spec whose firewall to evaluate (or `--fw-dir` for a folder of .fw files).
    #[arg(value_name = "SPEC", required_unless_present = "fw_dir")]
    pub spec: Option<PathBuf>,
    #[command(flatten)]
    pub audit: firewall_audit::AuditDirArgs,
    /// Source address of the connection.
    #[arg(long, value_name = "IP")]
    pub source: IpAddr,
    /// `node` or `vm:ID`.
    #[arg(long, value_name = "node|vm:ID", default_value = "node")]
    pub dest: String,
    /// Protocol (tcp, udp, icmp, … or a number).
    #[arg(long, default_value = "tcp")]
    pub proto: String,
    /// Destination port.
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Source port (rules with `-sport` only match when it is given).
    #[arg(long, value_name = "N")]
    pub sport: Option<u16>,
    /// Interface the flow arrives on (`vmbr0`, `net0`).
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// Which firewall: the spec compiled onto a fresh node, the node now, or the node
    /// after the plan.
    #[arg(long, value_enum, default_value_t = State::Spec)]
    pub state: State,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright firewall matrix specs/jarvis-homelab.desired.yaml --phase 2\n  labwright firewall matrix --fw-dir audit --node-address 192.168.1.10/24 -o json"
)]
pub struct MatrixArgs {
    /// The spec whose firewall to evaluate (or `--fw-dir` for a folder of .fw files).
    #[arg(value_name = "SPEC", required_unless_present = "fw_dir")]
    pub spec: Option<PathBuf>,
    #[command(flatten)]
    pub audit: firewall_audit::AuditMatrixArgs,
    /// Which firewall: the spec compiled onto a fresh node, the node now, or the node
    /// after the plan.
    #[arg(long, value_enum, default_value_t = State::Spec)]
    pub state: State,
    /// Evaluate as if the lab were in this phase (default: the spec's phase). Use 2 to
    /// check the phase-2 matrix before getting there.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=2))]
    pub phase: Option<u8>,
}

pub fn run(args: &FirewallArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        FirewallCommand::Simulate(a) if a.audit.fw_dir.is_some() => firewall_audit::simulate(a, g),
        FirewallCommand::Matrix(a) if a.audit.dir.fw_dir.is_some() => firewall_audit::matrix(a, g),
        FirewallCommand::Simulate(a) => simulate(a, g),
        FirewallCommand::Matrix(a) => matrix(a, g),
    }
}

/// The configuration to evaluate, from the spec alone or from the node.
fn config_for(
    spec: &Spec,
    state: State,
    target_args: &TargetArgs,
    g: &GlobalArgs,
) -> anyhow::Result<(FirewallConfig, String)> {
    if state == State::Spec {
        return Ok((
            compile_spec(spec),
            "spec (compiled onto a fresh node)".into(),
        ));
    }
    let rt = common::runtime()?;
    let obs: ObservedFirewall = rt.block_on(async {
        let conn = target::connect(target_args).await?;
        ui::info(g, &format!("target: {}", conn.label));
        let r = read_live(spec, &conn).await;
        conn.close().await;
        r
    })?;
    Ok(match state {
        State::Live => (obs.config, "live (the node now)".into()),
        _ => (
            post_plan_config(spec, &obs),
            "plan (the node after apply)".into(),
        ),
    })
}

/// The node's firewall as it is now, whether or not the spec declares one.
async fn read_live(spec: &Spec, conn: &Connected) -> anyhow::Result<ObservedFirewall> {
    let scope = ScanScope::for_spec(spec, 3);
    let observed = scan(&conn.client, spec.node_name(), &scope)
        .await
        .context("scan failed")?;
    fw::read_firewall(&conn.client, spec, &observed, conn.client_addr)
        .await
        .context("firewall scan failed")
}

fn parse_dest(spec: &Spec, s: &str) -> anyhow::Result<Target> {
    if s == "node" || s == spec.node_name() {
        return Ok(Target::Node(spec.node_name().to_string()));
    }
    if let Some(id) = s.strip_prefix("vm:") {
        let id: u32 = id
            .parse()
            .with_context(|| format!("`{s}`: expected vm:<VMID>"))?;
        return Ok(Target::Vm(id));
    }
    if let Some(vm) = spec.vm_by_name(s) {
        return Ok(Target::Vm(vm.vmid));
    }
    bail!("--dest `{s}`: expected `node`, `vm:<VMID>` or a VM name from the spec")
}

fn simulate(a: &SimulateArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = common::load_checked(
        a.spec
            .as_deref()
            .context("a SPEC or --fw-dir is required")?,
        g,
    )?;
    let spec = &loaded.spec;
    let dest = parse_dest(spec, &a.dest)?;
    let proto = Protocol::parse(&a.proto).map_err(|e| anyhow::anyhow!("--proto: {e}"))?;
    let mut flow = Flow::new(a.source, dest, proto, a.port);
    flow.sport = a.sport;
    flow.iface = a.iface.clone();
    if proto.is_icmp() && a.port.is_none() {
        flow.icmp_type = Some("echo-request".into());
    }
    let (cfg, state) = config_for(spec, a.state, &g.target, g)?;
    let backend = Backend::for_node(&cfg, spec.node_name());
    let d = evaluate(&cfg, &flow, backend);
    crate::print::print(
        g,
        &crate::render::SimulateDoc {
            state: &state,
            backend,
            flow: &flow,
            decision: &d,
        },
    )?;
    Ok(ExitCode::from(exit::OK))
}

// ---------------------------------------------------------------------------
// Matrix
// ---------------------------------------------------------------------------

fn matrix(a: &MatrixArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = common::load_checked(
        a.spec
            .as_deref()
            .context("a SPEC or --fw-dir is required")?,
        g,
    )?;
    let mut spec = loaded.spec.clone();
    let phase = a.phase.unwrap_or(spec.phase.0);
    spec.phase = labwright_spec::model::Phase(phase);
    let (cfg, state) = config_for(&spec, a.state, &g.target, g)?;

    let matrix = fw::matrix::reachability(&spec, phase, &cfg);
    crate::print::print(
        g,
        &crate::render::MatrixDoc {
            state: &state,
            matrix: &matrix,
        },
    )?;
    let bad = matrix.disagreements;
    Ok(ExitCode::from(if bad == 0 {
        exit::OK
    } else {
        exit::ERROR
    }))
}
