//! `labwright firewall simulate|matrix --fw-dir DIR`: audit a directory of PVE
//! firewall files (a copy of `/etc/pve/firewall`, plus the node's `host.fw`) with no
//! spec and no node. Loading and evaluation live in `labwright_firewall::audit`; this
//! file only turns flags into a flow and results into text or JSON.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use labwright_firewall::{
    AuditMatrix, AuditOptions, AuditVerdict, Backend, FwDir, IpNet, Protocol, Service, load_fw_dir,
};

use super::{MatrixArgs, SimulateArgs};
use crate::cli::GlobalArgs;
use crate::render::{AuditMatrixDoc, AuditSimDoc};
use crate::{exit, ui};

/// Which firewall implementation to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// `pve-firewall` (the classic backend).
    Iptables,
    /// `proxmox-firewall` (`nftables: 1` in host.fw).
    Nftables,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Iptables => Backend::Iptables,
            BackendArg::Nftables => Backend::Nftables,
        }
    }
}

/// Flags shared by `simulate` and `matrix` in audit mode.
#[derive(Debug, Args)]
pub struct AuditDirArgs {
    /// Audit a directory of PVE firewall files instead of a spec: cluster.fw,
    /// host.fw (or <node>/host.fw), <vmid>.fw — e.g. a copy of /etc/pve/firewall.
    #[arg(long, value_name = "DIR")]
    pub fw_dir: Option<std::path::PathBuf>,
    /// Backend to evaluate (default: the one host.fw selects; both when there is no
    /// host.fw).
    #[arg(long, value_enum, requires = "fw_dir")]
    pub backend: Option<BackendArg>,
    /// The node's address on its bridge with prefix (e.g. 192.168.1.10/24); the
    /// automatic local_network follows from it unless an alias overrides it.
    #[arg(long, value_name = "CIDR", requires = "fw_dir")]
    pub node_address: Option<IpNet>,
    /// Which node's host.fw to use when the directory holds several.
    #[arg(long, value_name = "NAME", requires = "fw_dir")]
    pub node: Option<String>,
}

/// `matrix --fw-dir` flags (simulate has its own --source/--port/--proto/--iface).
#[derive(Debug, Args)]
pub struct AuditMatrixArgs {
    #[command(flatten)]
    pub dir: AuditDirArgs,
    /// Rows: source addresses or CIDRs (repeatable). Default: every IPv4 address,
    /// in the ranges the configuration tells apart.
    #[arg(long = "source", value_name = "IP|CIDR", requires = "fw_dir", value_parser = parse_source)]
    pub sources: Vec<IpNet>,
    /// Columns: destination ports (repeatable; default 22 and 8006).
    #[arg(long = "port", value_name = "N", requires = "fw_dir")]
    pub ports: Vec<u16>,
    /// Protocol of the columns: tcp, udp or icmp (an echo request; no ports).
    #[arg(long, value_name = "tcp|udp|icmp", requires = "fw_dir")]
    pub proto: Option<String>,
    /// Interface the flows arrive on (default vmbr0).
    #[arg(long, value_name = "NAME", requires = "fw_dir")]
    pub iface: Option<String>,
}

fn parse_source(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is neither an IP address nor a CIDR"))
}

fn load(
    dir: &Path,
    a: &AuditDirArgs,
    iface: Option<&str>,
    g: &GlobalArgs,
) -> anyhow::Result<FwDir> {
    let opts = AuditOptions {
        node: a.node.clone(),
        node_address: a.node_address,
        iface: iface.map(str::to_string),
    };
    let fw = load_fw_dir(dir, &opts)?;
    ui::info(
        g,
        &format!("read {} (node {})", fw.files.join(", "), fw.node),
    );
    if a.node_address.is_none() {
        ui::warn(
            "no --node-address: the automatic local_network (and with it PVE's management accept) is unknown; PVE's fallback 127.0.0.0/8 is used",
        );
    }
    for v in &fw.views {
        for s in &v.skipped {
            ui::warn(&format!("{} leaves out {s}", v.backend));
        }
    }
    Ok(fw)
}

fn backends(fw: &FwDir, a: &AuditDirArgs) -> (Vec<Backend>, &'static str) {
    let why = match (a.backend, fw.declared_backend) {
        (Some(_), _) => "--backend",
        (None, Some(Backend::Nftables)) => "host.fw has nftables: 1",
        (None, Some(Backend::Iptables)) => "host.fw has no nftables: 1",
        (None, None) => "no host.fw: both",
    };
    (fw.backends(a.backend.map(Backend::from)), why)
}

fn protocol(s: &str) -> anyhow::Result<Protocol> {
    match s {
        "tcp" => Ok(Protocol::TCP),
        "udp" => Ok(Protocol::UDP),
        "icmp" => Ok(Protocol::ICMP),
        other => bail!("--proto `{other}`: expected tcp, udp or icmp"),
    }
}

/// A SPEC and `--fw-dir` together: a usage error (64), like clap's own.
fn both(g: &GlobalArgs) -> ExitCode {
    ui::print_error(
        &anyhow::anyhow!("give either a SPEC or --fw-dir DIR, not both"),
        g,
    );
    ExitCode::from(exit::USAGE)
}

/// `firewall simulate --fw-dir DIR --source IP …`.
pub fn simulate(a: &SimulateArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if a.spec.is_some() {
        return Ok(both(g));
    }
    let dir = a
        .audit
        .fw_dir
        .as_deref()
        .context("--fw-dir is required here")?;
    if a.dest != "node" {
        bail!(
            "--dest `{}`: with --fw-dir only the node is evaluated (guests need their NICs, which the .fw files do not hold)",
            a.dest
        );
    }
    let fw = load(dir, &a.audit, a.iface.as_deref(), g)?;
    let proto = protocol(&a.proto)?;
    let service = Service {
        proto,
        port: if proto.is_icmp() { None } else { a.port },
    };
    if !proto.is_icmp() && a.port.is_none() {
        bail!("--port is required for {proto}");
    }
    let mut flow = fw.flow(a.source, service, a.iface.as_deref());
    flow.sport = a.sport;
    let (bs, why) = backends(&fw, &a.audit);
    let results: Vec<AuditVerdict> = bs.iter().flat_map(|b| fw.simulate(&flow, *b)).collect();
    let refused = results.iter().any(|r| r.refused.is_some());
    crate::print::print(
        g,
        &AuditSimDoc {
            dir: dir.display().to_string(),
            node: &fw.node,
            files: &fw.files,
            flow: &flow,
            backends: join(&bs),
            why: why.to_string(),
            verdicts: &results,
        },
    )?;
    Ok(ExitCode::from(if refused { exit::ERROR } else { exit::OK }))
}

fn join(bs: &[Backend]) -> String {
    bs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" and ")
}

/// `firewall matrix --fw-dir DIR`.
pub fn matrix(a: &MatrixArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if a.spec.is_some() {
        return Ok(both(g));
    }
    let m = &a.audit;
    let dir = m
        .dir
        .fw_dir
        .as_deref()
        .context("--fw-dir is required here")?;
    let fw = load(dir, &m.dir, m.iface.as_deref(), g)?;
    let proto = protocol(m.proto.as_deref().unwrap_or("tcp"))?;
    let services: Vec<Service> = if proto.is_icmp() {
        vec![Service { proto, port: None }]
    } else if m.ports.is_empty() {
        [22, 8006]
            .into_iter()
            .map(|p| Service {
                proto,
                port: Some(p),
            })
            .collect()
    } else {
        m.ports
            .iter()
            .map(|p| Service {
                proto,
                port: Some(*p),
            })
            .collect()
    };
    let (bs, why) = backends(&fw, &m.dir);
    let matrices: Vec<AuditMatrix> = bs
        .iter()
        .map(|b| fw.matrix(*b, &m.sources, &services, m.iface.as_deref()))
        .collect();
    let refused = matrices.iter().any(|x| x.refused.is_some());
    crate::print::print(
        g,
        &AuditMatrixDoc {
            node: &fw.node,
            files: &fw.files,
            backends: join(&bs),
            why: why.to_string(),
            matrices: &matrices,
        },
    )?;
    Ok(ExitCode::from(if refused { exit::ERROR } else { exit::OK }))
}
