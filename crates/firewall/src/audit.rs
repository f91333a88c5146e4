//! Audit mode: a directory of PVE firewall files, as found in
//! `/etc/pve/firewall` (`cluster.fw`, `<vmid>.fw`) plus a node's `host.fw`
//! (next to them, or as `<node>/host.fw` or `nodes/<node>/host.fw`),
//! evaluated without any spec or node.
//!
//! Each backend reads the files its own way ([`crate::parse_cluster_fw_as`]),
//! so the directory yields one configuration per backend — or, for
//! `proxmox-firewall`, the reason it would refuse them.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Serialize;
use thiserror::Error;

use crate::addr::Interval;
use crate::check::nftables_refusals;
use crate::error::FileError;
use crate::eval::{Backend, DecidedBy, Decision, Flow, Target};
use crate::file::{parse_cluster_fw_as, parse_guest_fw_as, parse_host_fw_as};
use crate::model::{ClusterFirewall, FirewallConfig, HostFirewall};
use crate::proto::Protocol;
use crate::prove::{classify_sources, evaluate_client_ports};
use crate::rule::Verdict;

/// How to read a firewall directory.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// The node whose `host.fw` to use when the directory holds several.
    pub node: Option<String>,
    /// The node's address on its bridge with its prefix (`172.16.1.2/24`);
    /// the automatic `local_network` follows from it unless a
    /// `local_network` alias overrides it.
    pub node_address: Option<IpNet>,
    /// The interface flows arrive on unless they say (default `vmbr0`).
    pub iface: Option<String>,
}

/// Why a directory cannot be audited.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The path is not a readable directory.
    #[error(
        "{path}: not a directory of PVE firewall files (cluster.fw, host.fw, <vmid>.fw): {reason}"
    )]
    NotADirectory {
        /// The path given.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No `.fw` file at all.
    #[error(
        "{0}: no cluster.fw, host.fw or <vmid>.fw here; copy /etc/pve/firewall (and /etc/pve/nodes/<node>/host.fw) from the node"
    )]
    NoFiles(PathBuf),
    /// Several nodes' `host.fw` and no choice made.
    #[error("{dir}: host.fw of several nodes ({}); pick one with --node", nodes.join(", "))]
    SeveralNodes {
        /// The directory.
        dir: PathBuf,
        /// The node names found.
        nodes: Vec<String>,
    },
    /// The chosen node has no `host.fw` here.
    #[error("{dir}: no host.fw for node '{node}' (found: {})", found.join(", "))]
    NoSuchNode {
        /// The directory.
        dir: PathBuf,
        /// The node asked for.
        node: String,
        /// The node names found.
        found: Vec<String>,
    },
}

/// A line a backend left out, or the line that made it refuse a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileIssue {
    /// File name relative to the directory.
    pub file: String,
    /// 1-based line, when the issue is about one line.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for FileIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// The directory as one backend reads it.
#[derive(Debug, Clone)]
pub struct BackendView {
    /// Which backend.
    pub backend: Backend,
    /// The configuration it builds, or why it refuses the files (it then
    /// keeps whatever ruleset it had, so nothing can be said about flows).
    pub config: Result<FirewallConfig, FileIssue>,
    /// Lines it warned about and left out (pve-firewall).
    pub skipped: Vec<FileIssue>,
}

/// A directory of firewall files, read by both backends.
#[derive(Debug, Clone)]
pub struct FwDir {
    /// The directory.
    pub dir: PathBuf,
    /// The node evaluated (the directory name of its `host.fw`, the
    /// `node` option, or `local` as in `/etc/pve/local`).
    pub node: String,
    /// The files read, relative to the directory.
    pub files: Vec<String>,
    /// The backend `host.fw` selects (`nftables: 1` → nftables); `None`
    /// when there is no `host.fw` to tell (it is not in /etc/pve/firewall).
    pub declared_backend: Option<Backend>,
    /// One view per backend: iptables, then nftables.
    pub views: Vec<BackendView>,
}

fn read(path: &Path) -> Result<Option<String>, AuditError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuditError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `(node, path)` of every `host.fw` in the layouts PVE uses.
fn host_files(dir: &Path, node: Option<&str>) -> Result<Vec<(String, PathBuf)>, AuditError> {
    let mut out = Vec::new();
    let top = dir.join("host.fw");
    if top.is_file() {
        out.push((node.unwrap_or("local").to_string(), top));
    }
    for base in [dir.to_path_buf(), dir.join("nodes")] {
        let Ok(entries) = fs::read_dir(&base) else {
            continue;
        };
        let mut found: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let p = e.path().join("host.fw");
                let name = e.file_name().to_str()?.to_string();
                p.is_file().then_some((name, p))
            })
            .collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

fn issue(file: &str, e: &FileError) -> FileIssue {
    FileIssue {
        file: file.to_string(),
        line: Some(e.line),
        message: e.error.to_string(),
    }
}

/// Read a directory of firewall files the way both backends would.
pub fn load_fw_dir(dir: &Path, opts: &AuditOptions) -> Result<FwDir, AuditError> {
    let meta = fs::metadata(dir).map_err(|e| AuditError::NotADirectory {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(AuditError::NotADirectory {
            path: dir.to_path_buf(),
            reason: "it is a file".into(),
        });
    }
    let cluster_text = read(&dir.join("cluster.fw"))?;
    let hosts = host_files(dir, opts.node.as_deref())?;
    let host = match (&opts.node, hosts.len()) {
        (_, 0) => None,
        (None, 1) => hosts.first().cloned(),
        (None, _) => {
            return Err(AuditError::SeveralNodes {
                dir: dir.to_path_buf(),
                nodes: hosts.into_iter().map(|(n, _)| n).collect(),
            });
        }
        (Some(want), _) => Some(hosts.iter().find(|(n, _)| n == want).cloned().ok_or_else(
            || AuditError::NoSuchNode {
                dir: dir.to_path_buf(),
                node: want.clone(),
                found: hosts.iter().map(|(n, _)| n.clone()).collect(),
            },
        )?),
    };
    let mut guests = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| AuditError::NotADirectory {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(id) = name.strip_suffix(".fw").and_then(|s| s.parse::<u32>().ok()) {
            let text = read(&e.path())?.unwrap_or_default();
            guests.push((id, name, text));
        }
    }
    guests.sort_by_key(|g| g.0);
    let host_text = match &host {
        Some((_, p)) => read(p)?,
        None => None,
    };
    if cluster_text.is_none() && host_text.is_none() && guests.is_empty() {
        return Err(AuditError::NoFiles(dir.to_path_buf()));
    }
    let node = host
        .as_ref()
        .map(|(n, _)| n.clone())
        .or_else(|| opts.node.clone())
        .unwrap_or_else(|| "local".into());
    let host_file = host
        .as_ref()
        .and_then(|(_, p)| p.strip_prefix(dir).ok())
        .map(|p| p.to_string_lossy().to_string())
        .unwrap_or_else(|| "host.fw".into());

    let mut files = Vec::new();
    if cluster_text.is_some() {
        files.push("cluster.fw".to_string());
    }
    if host_text.is_some() {
        files.push(host_file.clone());
    }
    files.extend(guests.iter().map(|g| g.1.clone()));

    let input = Input {
        cluster: cluster_text.as_deref(),
        host: host_text.as_deref().map(|t| (host_file.as_str(), t)),
        guests: &guests,
        node: &node,
        opts,
    };
    let views: Vec<BackendView> = [Backend::Iptables, Backend::Nftables]
        .into_iter()
        .map(|b| input.view(b))
        .collect();
    // pve-firewall stands down, and proxmox-firewall starts, on `nftables: 1`.
    let declared_backend = host_text.as_ref().map(|_| {
        let nft = views.first().is_some_and(|v| {
            v.config
                .as_ref()
                .is_ok_and(|c| c.nodes.get(&node).is_some_and(|h| h.options.nftables))
        });
        if nft {
            Backend::Nftables
        } else {
            Backend::Iptables
        }
    });
    Ok(FwDir {
        dir: dir.to_path_buf(),
        node,
        files,
        declared_backend,
        views,
    })
}

struct Input<'a> {
    cluster: Option<&'a str>,
    host: Option<(&'a str, &'a str)>,
    guests: &'a [(u32, String, String)],
    node: &'a str,
    opts: &'a AuditOptions,
}

impl Input<'_> {
    fn view(&self, backend: Backend) -> BackendView {
        let mut skipped = Vec::new();
        let config = self.config(backend, &mut skipped);
        BackendView {
            backend,
            config,
            skipped,
        }
    }

    fn config(
        &self,
        backend: Backend,
        skipped: &mut Vec<FileIssue>,
    ) -> Result<FirewallConfig, FileIssue> {
        let cluster = match self.cluster {
            Some(t) => {
                let p = parse_cluster_fw_as(t, backend).map_err(|e| issue("cluster.fw", &e))?;
                skipped.extend(p.skipped.iter().map(|e| issue("cluster.fw", e)));
                p.value
            }
            None => ClusterFirewall::default(),
        };
        let mut cfg = FirewallConfig {
            cluster,
            ..FirewallConfig::default()
        };
        let mut host = match self.host {
            Some((file, t)) => {
                let p = parse_host_fw_as(t, backend, &cfg.cluster).map_err(|e| issue(file, &e))?;
                skipped.extend(p.skipped.iter().map(|e| issue(file, e)));
                p.value
            }
            None => HostFirewall::default(),
        };
        host.network.addrs.extend(self.opts.node_address);
        host.network.default_iface =
            Some(self.opts.iface.clone().unwrap_or_else(|| "vmbr0".into()));
        cfg.nodes.insert(self.node.to_string(), host);
        for (id, file, text) in self.guests {
            let p = parse_guest_fw_as(text, backend, &cfg.cluster).map_err(|e| issue(file, &e))?;
            skipped.extend(p.skipped.iter().map(|e| issue(file, e)));
            let mut g = p.value;
            g.node = Some(self.node.to_string());
            cfg.vms.insert(*id, g);
        }
        if backend == Backend::Nftables
            && let Some(first) = nftables_refusals(&cfg).into_iter().next()
        {
            return Err(FileIssue {
                file: "cluster.fw".into(),
                line: None,
                message: format!("{first}"),
            });
        }
        Ok(cfg)
    }
}

/// A service a matrix column or a flow asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// tcp, udp or icmp.
    pub proto: Protocol,
    /// Destination port (none for icmp: an echo request).
    pub port: Option<u16>,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}/{p}", self.proto),
            None => write!(f, "{}", self.proto),
        }
    }
}

/// One decision of an audit, for one backend and one class of client ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerdict {
    /// The backend.
    pub backend: Backend,
    /// Client source ports this verdict holds for, when it depends on them.
    pub sports: Option<(u16, u16)>,
    /// The decision (`None` when the backend refuses the files).
    pub decision: Option<Decision>,
    /// Why the backend refuses the files.
    pub refused: Option<FileIssue>,
}

impl FwDir {
    /// The backends to evaluate: the one asked for, else the one `host.fw`
    /// declares, else both.
    pub fn backends(&self, wanted: Option<Backend>) -> Vec<Backend> {
        match wanted.or(self.declared_backend) {
            Some(b) => vec![b],
            None => vec![Backend::Iptables, Backend::Nftables],
        }
    }

    /// The view of one backend.
    pub fn view(&self, backend: Backend) -> Option<&BackendView> {
        self.views.iter().find(|v| v.backend == backend)
    }

    /// The flow for a service from `source` to the node.
    pub fn flow(&self, source: IpAddr, service: Service, iface: Option<&str>) -> Flow {
        let target = Target::Node(self.node.clone());
        let mut f = if service.proto.is_icmp() && service.port.is_none() {
            Flow::ping(source, target)
        } else {
            Flow::new(source, target, service.proto, service.port)
        };
        f.iface = iface.map(str::to_string);
        f
    }

    /// What `backend` does with `flow`; a flow without a source port is a
    /// real client's, so the answer is split by client port when a rule
    /// tests `-sport`.
    pub fn simulate(&self, flow: &Flow, backend: Backend) -> Vec<AuditVerdict> {
        let Some(view) = self.view(backend) else {
            return Vec::new();
        };
        match &view.config {
            Err(refused) => vec![AuditVerdict {
                backend,
                sports: None,
                decision: None,
                refused: Some(refused.clone()),
            }],
            Ok(cfg) => evaluate_client_ports(cfg, flow, backend)
                .into_iter()
                .map(|(sports, d)| AuditVerdict {
                    backend,
                    sports,
                    decision: Some(d),
                    refused: None,
                })
                .collect(),
        }
    }

    /// The verdict every client in `sources` gets for `service`: uniform
    /// when the whole range (and every client port) gets the same one, with
    /// what decided it for the first address; otherwise each part.
    pub fn cell(
        &self,
        backend: Backend,
        sources: IpNet,
        service: Service,
        iface: Option<&str>,
    ) -> Option<MatrixCell> {
        let cfg = self.view(backend)?.config.as_ref().ok()?;
        let template = self.flow(sources.network(), service, iface);
        let mut parts = Vec::new();
        for class in classify_sources(cfg, sources, &template, backend) {
            parts.extend(self.class_parts(cfg, backend, class.range, &template));
        }
        cell_of(service, parts)
    }

    /// One representative flow per client-port class for an address class.
    fn class_parts(
        &self,
        cfg: &FirewallConfig,
        backend: Backend,
        range: Interval,
        template: &Flow,
    ) -> Vec<MatrixPart> {
        let mut f = template.clone();
        f.source = range.start();
        evaluate_client_ports(cfg, &f, backend)
            .into_iter()
            .map(|(sports, d)| MatrixPart {
                range: match sports {
                    Some((lo, hi)) => format!("{range} from port {lo}-{hi}"),
                    None => range.to_string(),
                },
                verdict: d.verdict,
                decided_by: d.decided_by,
            })
            .collect()
    }

    /// Who reaches the node on which service, for one backend. Without
    /// `sources`, the rows are the address ranges the configuration tells
    /// apart (neighbours with the same cells merged), so the matrix covers
    /// every IPv4 source.
    pub fn matrix(
        &self,
        backend: Backend,
        sources: &[IpNet],
        services: &[Service],
        iface: Option<&str>,
    ) -> AuditMatrix {
        let view = self.view(backend);
        let refused = view.and_then(|v| v.config.as_ref().err().cloned());
        let mut rows: Vec<(Interval, MatrixRow)> = Vec::new();
        if let Some(cfg) = view.and_then(|v| v.config.as_ref().ok()) {
            if sources.is_empty() {
                let all = IpNet::V4(ipnet::Ipv4Net::default());
                let probe = services.first().copied().unwrap_or(Service {
                    proto: Protocol::TCP,
                    port: Some(22),
                });
                let template = self.flow(all.network(), probe, iface);
                for class in classify_sources(cfg, all, &template, backend) {
                    let cells = services
                        .iter()
                        .filter_map(|s| {
                            let t = self.flow(all.network(), *s, iface);
                            cell_of(*s, self.class_parts(cfg, backend, class.range, &t))
                        })
                        .collect();
                    rows.push((
                        class.range,
                        MatrixRow {
                            source: class.range.to_string(),
                            cells,
                        },
                    ));
                }
                rows = merge_rows(rows);
            } else {
                for src in sources {
                    let cells = services
                        .iter()
                        .filter_map(|s| self.cell(backend, *src, *s, iface))
                        .collect();
                    rows.push((
                        Interval::of_net(src),
                        MatrixRow {
                            source: src.to_string(),
                            cells,
                        },
                    ));
                }
            }
        }
        AuditMatrix {
            backend,
            node: self.node.clone(),
            refused,
            services: services.to_vec(),
            rows: rows.into_iter().map(|(_, r)| r).collect(),
        }
    }
}

fn cell_of(service: Service, parts: Vec<MatrixPart>) -> Option<MatrixCell> {
    let first = parts.first()?.clone();
    let uniform = parts.iter().all(|p| p.verdict == first.verdict);
    Some(MatrixCell {
        service,
        verdict: uniform.then_some(first.verdict),
        decided_by: first.decided_by,
        parts: if uniform { Vec::new() } else { parts },
    })
}

/// Merge neighbouring rows whose cells agree (same verdicts, same
/// deciders), so a matrix over every source stays short.
fn merge_rows(rows: Vec<(Interval, MatrixRow)>) -> Vec<(Interval, MatrixRow)> {
    let mut out: Vec<(Interval, MatrixRow)> = Vec::new();
    for (iv, r) in rows {
        if let Some((last_iv, last)) = out.last_mut()
            && last_iv.v6 == iv.v6
            && last_iv.hi.checked_add(1) == Some(iv.lo)
            && last.cells == r.cells
        {
            last_iv.hi = iv.hi;
            last.source = last_iv.to_string();
            continue;
        }
        out.push((iv, r));
    }
    out
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixCell {
    /// The service (column).
    pub service: Service,
    /// The verdict, when the whole row gets the same one.
    pub verdict: Option<Verdict>,
    /// What decided it (for the first address when it differs).
    pub decided_by: DecidedBy,
    /// When the verdict differs inside the row: each part.
    pub parts: Vec<MatrixPart>,
}

/// Part of a cell whose sources do not all get the same verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixPart {
    /// The addresses (and client ports) of this part.
    pub range: String,
    /// Their verdict.
    pub verdict: Verdict,
    /// What decided it.
    pub decided_by: DecidedBy,
}

/// One row: a source range and its cells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixRow {
    /// The source (CIDR, or a range of merged blocks).
    pub source: String,
    /// One cell per service.
    pub cells: Vec<MatrixCell>,
}

/// Who reaches the node on which service, under one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditMatrix {
    /// The backend.
    pub backend: Backend,
    /// The node.
    pub node: String,
    /// Why the backend refuses the files (then there are no rows).
    pub refused: Option<FileIssue>,
    /// The columns.
    pub services: Vec<Service>,
    /// The rows.
    pub rows: Vec<MatrixRow>,
}
