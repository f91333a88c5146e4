//! `labwright firewall simulate|matrix`, plus the firewall glue `plan` and `apply`
//! share: the plan-time refusal of a plan whose lockout proof failed, and the
//! executor's probe options.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Table, presets};
use labwright_engine::firewall::{
    self as fw, FwApplyOptions, ObservedFirewall, compile_spec, post_plan_config,
};
use labwright_engine::plan::{Op, Plan};
use labwright_engine::{ScanScope, scan};
use labwright_firewall::{
    Backend, FirewallConfig, Flow, Protocol, Target, classify_flows, evaluate,
};
use labwright_spec::Spec;
use labwright_spec::model::{FwPolicy, Proto};
use labwright_spec::types::Cidr;
use serde::Serialize;

use super::common;
use crate::cli::{GlobalArgs, OutputFormat};

/// `--fw-dir`: audit a directory of `.fw` files (no spec, no node).
#[path = "firewall_audit.rs"]
mod firewall_audit;
use crate::target::{self, Connected, TargetArgs};
use crate::{exit, ui};

/// Refuses a plan whose lockout proof failed (unless the dangerous test switch is
/// set, which is then shown loudly in the plan).
pub fn gate_plan(plan: &mut Plan) -> anyhow::Result<()> {
    let touches = plan.actions.iter().any(|a| matches!(a.op, Op::Firewall(_)));
    let Some(report) = plan.firewall.as_mut() else {
        return Ok(());
    };
    if report.proof_ok || !touches {
        return Ok(());
    }
    for line in report.summary() {
        ui::note(&line);
    }
    if fw::skip_proof_requested() {
        report.proof_skipped = true;
        ui::warn(&format!(
            "{} is set: the lockout proof FAILED and is being ignored. This can cut you off the node; recovery: {}",
            fw::SKIP_PROOF_ENV,
            fw::RUNBOOK
        ));
        plan.notes.push(format!(
            "DANGER: lockout proof failed and was skipped ({})",
            fw::SKIP_PROOF_ENV
        ));
        return Ok(());
    }
    bail!(
        "refusing this plan: the lockout proof failed.\n{}\nNothing was applied.",
        report
            .failure
            .clone()
            .unwrap_or_else(|| "(no detail)".into())
    )
}

/// Probes over a fresh client after each firewall step; a real node needs ~10 s
/// before `pve-firewall` enforces a change (the simulator enforces at once).
pub fn apply_options(conn: &Connected) -> FwApplyOptions {
    let default = if conn.is_sim() { 0 } else { 11 };
    let secs = std::env::var("LABWRIGHT_FW_PROBE_SETTLE_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(default);
    FwApplyOptions {
        probe: Some(conn.config.clone()),
        settle: Duration::from_secs(secs),
        unsafe_skip_proof: fw::skip_proof_requested(),
    }
}

/// Ask the firewall model questions without changing anything.
#[derive(Debug, Args)]
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
pub struct SimulateArgs {
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
    #[arg(long, value_enum, default_value_t = State::Spec)]
    pub state: State,
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    #[arg(value_name = "SPEC", required_unless_present = "fw_dir")]
    pub spec: Option<PathBuf>,
    #[command(flatten)]
    pub audit: firewall_audit::AuditMatrixArgs,
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

async fn read_live(spec: &Spec, conn: &Connected) -> anyhow::Result<ObservedFirewall> {
    let scope = ScanScope::for_spec(spec, 3);
    let observed = scan(&conn.client, &spec.node.name, &scope)
        .await
        .context("scan failed")?;
    let obs = fw::scan_firewall(&conn.client, spec, &observed, conn.client_addr)
        .await
        .context("firewall scan failed")?;
    Ok(obs.unwrap_or_else(|| fw::empty_observed(spec, conn.client_addr)))
}

fn parse_dest(spec: &Spec, s: &str) -> anyhow::Result<Target> {
    if s == "node" || s == spec.node.name {
        return Ok(Target::Node(spec.node.name.clone()));
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

#[derive(Serialize)]
struct SimulateOut<'a> {
    state: &'a str,
    backend: Backend,
    flow: &'a Flow,
    decision: &'a labwright_firewall::Decision,
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
    let backend = Backend::for_node(&cfg, &spec.node.name);
    let d = evaluate(&cfg, &flow, backend);
    let mut out = std::io::stdout().lock();
    match g.output {
        OutputFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&SimulateOut {
                state: &state,
                backend,
                flow: &flow,
                decision: &d,
            })?
        )?,
        _ => {
            writeln!(out, "flow:    {flow}")?;
            writeln!(out, "state:   {state}, {backend} backend")?;
            writeln!(out)?;
            write!(out, "{}", d.render_trail())?;
        }
    }
    Ok(ExitCode::from(exit::OK))
}

// ---------------------------------------------------------------------------
// Matrix
// ---------------------------------------------------------------------------

/// What the traffic of one cell gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Reach {
    Allow,
    Deny,
    /// Some addresses or ports of the cell get through, others do not.
    Partial,
}

/// What the spec wants for one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Intent {
    Allow,
    Deny,
    /// The spec says nothing.
    None,
    /// The intent belongs to a later phase than the one evaluated.
    Later,
}

#[derive(Debug, Serialize)]
struct Cell {
    from: String,
    to: String,
    ports: String,
    reach: Reach,
    intent: Intent,
    disagrees: bool,
    /// What decided (the first class's decision).
    decided_by: String,
}

struct Source {
    name: String,
    nets: Vec<Cidr>,
}

struct Dest {
    name: String,
    target: Target,
    ports: Vec<(Proto, (u16, u16))>,
}

fn ranges(ports: &[labwright_spec::model::PortSpec]) -> Vec<(u16, u16)> {
    ports
        .iter()
        .flat_map(|p| p.ranges().unwrap_or_default())
        .collect()
}

fn port_text(r: (u16, u16)) -> String {
    if r.0 == r.1 {
        r.0.to_string()
    } else {
        format!("{}-{}", r.0, r.1)
    }
}

fn proto_of(p: Proto) -> Protocol {
    match p {
        Proto::Udp => Protocol::UDP,
        Proto::Icmp => Protocol::ICMP,
        _ => Protocol::TCP,
    }
}

fn reach(
    cfg: &FirewallConfig,
    nets: &[Cidr],
    d: &Dest,
    proto: Proto,
    r: (u16, u16),
    backend: Backend,
) -> (Reach, String) {
    let mut any_ok = false;
    let mut any_bad = false;
    let mut first = String::new();
    for c in nets {
        let net = c.0.trunc();
        let template = Flow::new(net.network(), d.target.clone(), proto_of(proto), Some(r.0));
        for c in classify_flows(cfg, net, r, &template, backend) {
            if first.is_empty() {
                first = c.decision.decided_by.to_string();
            }
            if c.decision.verdict.is_accept() {
                any_ok = true;
            } else {
                any_bad = true;
            }
        }
    }
    let rch = match (any_ok, any_bad) {
        (true, false) => Reach::Allow,
        (false, _) => Reach::Deny,
        _ => Reach::Partial,
    };
    (rch, first)
}

fn covers(ports: &[(u16, u16)], r: (u16, u16)) -> bool {
    ports.is_empty() || ports.iter().any(|(lo, hi)| *lo <= r.0 && r.1 <= *hi)
}

/// The intent of the spec for `from` → `to` on a port range.
fn intent(spec: &Spec, phase: u8, from: &str, to: &Dest, r: (u16, u16)) -> Intent {
    let fwall = spec.firewall.as_ref();
    let matrix = fwall.and_then(|f| f.matrix.as_ref());
    let matrix_live = matrix.is_some_and(|m| m.phase.0 <= phase);
    let seg_phase = |s: &str| spec.networks.segments.get(s).map_or(0, |x| x.phase.0);
    let to_name = to.name.as_str();
    let later = seg_phase(from) > phase;
    let mut deferred = false;
    if let Some(m) = matrix {
        let hit = |list: &[labwright_spec::model::MatrixFlow]| {
            list.iter()
                .any(|f| f.from == from && f.to == to_name && covers(&ranges(&f.ports), r))
        };
        let said = if hit(&m.deny) {
            Some(Intent::Deny)
        } else if hit(&m.allow) {
            Some(Intent::Allow)
        } else {
            None
        };
        match said {
            Some(i) if matrix_live && !later => return i,
            Some(_) => deferred = true,
            None => {}
        }
    }
    let base = base_intent(spec, phase, from, to, r, later);
    if base == Intent::None && deferred {
        Intent::Later
    } else {
        base
    }
}

/// Intent from the safety guards (node) and the VM allowlists.
fn base_intent(
    spec: &Spec,
    phase: u8,
    from: &str,
    to: &Dest,
    r: (u16, u16),
    later: bool,
) -> Intent {
    match &to.target {
        Target::Node(_) => {
            let mgmt = r.0 == r.1 && fw::MGMT_PORTS.contains(&r.0);
            if mgmt
                && (from == "management"
                    || (from == "tailscale" && spec.safety_guards.tailscale_management))
            {
                return Intent::Allow;
            }
            Intent::None
        }
        Target::Vm(id) => {
            let Some(vm) = spec.vms.iter().find(|v| v.vmid == *id) else {
                return Intent::None;
            };
            let Some(vf) = &vm.firewall else {
                return Intent::None;
            };
            if vm.phase.0 > phase {
                return Intent::Later;
            }
            // Intended when the row is that source, or lies wholly inside it (the
            // management PC is part of the LAN).
            let row = nets_of(spec, from);
            let allowed = vf.allow.iter().any(|e| {
                covers(&ranges(&e.ports), r)
                    && (e.from == from || {
                        let allowed_nets = nets_of(spec, &e.from);
                        !row.is_empty()
                            && row
                                .iter()
                                .all(|n| allowed_nets.iter().any(|a| a.0.contains(&n.0)))
                    })
            });
            if allowed {
                return if later { Intent::Later } else { Intent::Allow };
            }
            if vf.enable && vf.policy_in != FwPolicy::Accept {
                Intent::Deny
            } else {
                Intent::None
            }
        }
    }
}

/// The addresses a matrix or allowlist name stands for.
fn nets_of(spec: &Spec, name: &str) -> Vec<Cidr> {
    if let Some(s) = spec.networks.segments.get(name) {
        return vec![s.cidr];
    }
    match name {
        "tailscale" => spec
            .safety_guards
            .tailscale_cidr
            .or_else(|| "100.64.0.0/10".parse::<Cidr>().ok())
            .into_iter()
            .collect(),
        "management" => spec.safety_guards.management_access_cidrs.clone(),
        other => {
            let alias = spec
                .firewall
                .as_ref()
                .and_then(|f| f.aliases.get(other).copied());
            alias
                .or_else(|| other.parse::<Cidr>().ok())
                .into_iter()
                .collect()
        }
    }
}

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
    let backend = Backend::for_node(&cfg, &spec.node.name);

    // Rows: segments, Tailscale, management.
    let mut sources: Vec<Source> = spec
        .networks
        .segments
        .iter()
        .map(|(n, s)| Source {
            name: n.clone(),
            nets: vec![s.cidr],
        })
        .collect();
    let ts = spec
        .safety_guards
        .tailscale_cidr
        .or_else(|| "100.64.0.0/10".parse::<Cidr>().ok());
    if let Some(t) = ts {
        sources.push(Source {
            name: "tailscale".into(),
            nets: vec![t],
        });
    }
    let mgmt: Vec<Cidr> = spec.safety_guards.management_access_cidrs.clone();
    if !mgmt.is_empty() {
        sources.push(Source {
            name: "management".into(),
            nets: mgmt,
        });
    }

    // Columns: the node on 22/8006, every VM with an allowlist or named by the matrix,
    // on the ports the spec mentions for it.
    let mut dests = vec![Dest {
        name: "node".into(),
        target: Target::Node(spec.node.name.clone()),
        ports: fw::MGMT_PORTS
            .iter()
            .map(|p| (Proto::Tcp, (*p, *p)))
            .collect(),
    }];
    let matrix_flows: Vec<&labwright_spec::model::MatrixFlow> = spec
        .firewall
        .as_ref()
        .and_then(|f| f.matrix.as_ref())
        .map(|m| m.allow.iter().chain(m.deny.iter()).collect())
        .unwrap_or_default();
    for vm in &spec.vms {
        let mut ports: Vec<(Proto, (u16, u16))> = Vec::new();
        if let Some(vf) = &vm.firewall {
            for e in &vf.allow {
                for r in ranges(&e.ports) {
                    ports.push((e.proto, r));
                }
            }
        }
        for f in matrix_flows.iter().filter(|f| f.to == vm.name) {
            for r in ranges(&f.ports) {
                ports.push((f.proto, r));
            }
        }
        if ports.is_empty() {
            continue;
        }
        ports.sort_by_key(|(p, r)| (proto_of(*p).to_string(), *r));
        ports.dedup();
        dests.push(Dest {
            name: vm.name.clone(),
            target: Target::Vm(vm.vmid),
            ports,
        });
    }

    let mut cells = Vec::new();
    for s in &sources {
        for d in &dests {
            for (proto, r) in &d.ports {
                let (rch, by) = reach(&cfg, &s.nets, d, *proto, *r, backend);
                let it = intent(&spec, phase, &s.name, d, *r);
                let disagrees = match it {
                    Intent::Allow => rch != Reach::Allow,
                    Intent::Deny => rch != Reach::Deny,
                    _ => false,
                };
                cells.push(Cell {
                    from: s.name.clone(),
                    to: d.name.clone(),
                    ports: format!("{}/{}", proto_of(*proto), port_text(*r)),
                    reach: rch,
                    intent: it,
                    disagrees,
                    decided_by: by,
                });
            }
        }
    }
    let bad = cells.iter().filter(|c| c.disagrees).count();
    let mut out = std::io::stdout().lock();
    match g.output {
        OutputFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "state": state,
                "phase": phase,
                "backend": backend,
                "cells": cells,
                "disagreements": bad,
            }))?
        )?,
        _ => {
            writeln!(
                out,
                "Reachability, phase {phase}, {state}, {backend} backend (evaluated by the PVE firewall model; routing between segments is the router's job)"
            )?;
            let mut t = Table::new();
            t.load_style(if g.output == OutputFormat::Markdown {
                presets::ASCII_MARKDOWN
            } else {
                presets::UTF8_FULL_CONDENSED
            });
            let mut header = vec!["from \\ to".to_string()];
            for d in &dests {
                for (p, r) in &d.ports {
                    header.push(format!("{}\n{}/{}", d.name, proto_of(*p), port_text(*r)));
                }
            }
            t.set_header(header);
            for s in &sources {
                let mut row = vec![s.name.clone()];
                for c in cells.iter().filter(|c| c.from == s.name) {
                    let mark = match c.reach {
                        Reach::Allow => "allow",
                        Reach::Deny => "deny",
                        Reach::Partial => "partial",
                    };
                    let it = match c.intent {
                        Intent::Allow => " (want allow)",
                        Intent::Deny => "",
                        Intent::None => " ?",
                        Intent::Later => " (later phase)",
                    };
                    let it = if c.intent == Intent::Allow && !c.disagrees {
                        ""
                    } else {
                        it
                    };
                    row.push(if c.disagrees {
                        format!("✗ {mark}{it}")
                    } else {
                        format!("{mark}{it}")
                    });
                }
                t.add_row(row);
            }
            writeln!(out, "{t}")?;
            writeln!(
                out,
                "? = the spec states no intent for this cell · ✗ = disagrees with the intent"
            )?;
            for c in cells.iter().filter(|c| c.disagrees) {
                writeln!(
                    out,
                    "✗ {} → {} {}: {:?}, intent {:?} — {}",
                    c.from, c.to, c.ports, c.reach, c.intent, c.decided_by
                )?;
            }
            writeln!(
                out,
                "{}",
                if bad == 0 {
                    "matrix: no cell disagrees with the intent".to_string()
                } else {
                    format!("matrix: {bad} cell(s) disagree with the intent")
                }
            )?;
        }
    }
    Ok(ExitCode::from(if bad == 0 {
        exit::OK
    } else {
        exit::ERROR
    }))
}
