//! labwright-firewall: a model of the Proxmox VE firewall and an
//! evaluator that answers "does this flow get through, and which rule or
//! policy decided it" — for both the iptables (`pve-firewall`) and the
//! nftables (`proxmox-firewall`) backends.
//!
//! It exists so that labwright never applies a firewall change that cuts
//! management access without a proof ([`prove_reach`]) that it does not.
//!
//! # What the evaluator models
//!
//! Only new connections are evaluated (no conntrack state). For a flow to
//! a **node** (`Target::Node`):
//!
//! * datacenter `enable: 0` or node `enable: 0` ⇒ nothing filters;
//! * loopback is accepted;
//! * **nftables** (`proxmox-firewall`): `default-in` first — ICMP errors,
//!   IGMP, the `+management` accept on tcp 8006/5900-5999/3128/22,
//!   corosync udp 5405-5412 from anywhere, then the SMB/UPnP/DNS-reply
//!   noise filters — all *before* user rules; no `blacklist`;
//! * **iptables** (`pve-firewall`): the datacenter `blacklist` ipset, IGMP,
//!   then user rules, and only *after* them the `+management` accept (also
//!   tcp 60000-60050) and corosync from [`FirewallConfig::corosync_peers`];
//! * user rules: the node's `host.fw` rules first, then `cluster.fw`
//!   rules; first match wins; `GROUP` rules enter a security group whose
//!   first matching rule decides; disabled rules and rules whose alias,
//!   ipset or group does not resolve are skipped, as PVE does;
//! * then the datacenter `policy_in`/`policy_out` (defaults DROP/ACCEPT).
//!
//! For a flow to a **guest** (`Target::Vm`): the guest's `enable` and the
//! NIC's `firewall=1` must both be on; only the guest's own rules (and the
//! groups they reference) apply, then its policy. nftables cannot REJECT
//! guest traffic and drops instead.
//!
//! Names follow each backend: aliases are case-insensitive on both;
//! pve-firewall lower-cases the names of ipsets and groups it defines and
//! compares references as written, proxmox-firewall keeps the case on both
//! sides (so `[IPSET Management]` is the management set only on iptables).
//! The built-in management accept reads the user's `management` set plus
//! `local_network`: the `local_network` alias if defined, else the network
//! holding the address the node's name resolves to (its first address);
//! in a *rule*, `+management` and `local_network` resolve only when the
//! user defined them. `nomatch` ipset entries (`!cidr`) follow each
//! backend: the most specific entry decides under iptables; any nomatch
//! entry excludes under nftables. Inside a security group, a rule's own
//! `-i` makes pve-firewall leave the rule out and is matched by
//! proxmox-firewall. [`nftables_refusals`] lists what makes
//! proxmox-firewall refuse a whole ruleset.
//!
//! Proofs ([`prove_reach`], [`prove_blocked`], [`prove_ports`]) split the
//! source range (and port range) at every boundary the config mentions
//! and evaluate one flow per piece, so they are exact; a flow whose
//! source port is unknown stands for every client port (1024-65535), so
//! a `-sport` rule cannot hide from a proof. Which backends to prove for:
//! [`Backend::to_prove`] (the node's, or both when unknown).
//!
//! Not modelled: forward rules and VNet firewalls, `ipfilter`/`macfilter`,
//! NDP/RA options, SYN-flood and TCP-flag filters, log rate limits,
//! conntrack helpers, SDN ipsets.
//!
//! `.fw` files are read three ways: labwright's own ([`parse_cluster_fw`],
//! every spelling some PVE parser accepts), and as each backend reads them
//! ([`parse_cluster_fw_as`]: pve-firewall leaves out lines it cannot read,
//! proxmox-firewall refuses the file). [`load_fw_dir`] reads a directory
//! (a copy of `/etc/pve/firewall`) both ways, for audits.
//!
//! Build a config by parsing `.fw` files ([`parse_cluster_fw`],
//! [`parse_host_fw`], [`parse_guest_fw`]), from API JSON
//! ([`Rule::from_api_json`], [`rules_from_api_json`]), or in code:
//!
//! ```
//! use labwright_firewall::*;
//! let mut cfg = FirewallConfig::default();
//! cfg.cluster.options.enable = true;
//! cfg.cluster.options.policy_in = Some(Verdict::Drop);
//! cfg.cluster.rules.push(Rule::parse("IN SSH(ACCEPT) -source 100.64.0.0/10").expect("valid rule"));
//! let mut node = HostFirewall::default();
//! node.network.addrs.push("192.168.1.10/24".parse().expect("valid net"));
//! cfg.nodes.insert("proxmox".into(), node);
//!
//! let flow = Flow::tcp("100.100.1.2".parse().expect("ip"), Target::Node("proxmox".into()), 22);
//! let d = evaluate(&cfg, &flow, Backend::Iptables);
//! assert_eq!(d.verdict, Verdict::Accept);
//!
//! let proof = prove_reach(&cfg, "100.64.0.0/10".parse().expect("net"),
//!     &Target::Node("proxmox".into()), Protocol::TCP, Some(22), Backend::Iptables);
//! assert!(proof.is_ok());
//! ```

#![warn(missing_docs)]

mod addr;
mod audit;
mod chains;
mod check;
mod cuts;
mod error;
mod eval;
mod file;
mod file_write;
pub mod from_spec;
mod macros;
mod model;
mod ports;
mod proto;
mod prove;
mod resolve;
mod rule;
mod services;
mod syntax;
mod walk;

pub use addr::{AddrEntry, AddressRef, Interval, Scope, is_valid_name};
pub use audit::{
    AuditError, AuditMatrix, AuditOptions, AuditVerdict, BackendView, FileIssue, FwDir, MatrixCell,
    MatrixPart, MatrixRow, Service, load_fw_dir,
};
pub use check::{ConfigIssue, check_config, nftables_refusals};
pub use error::{FileError, FirewallError};
pub use eval::{
    Backend, Builtin, DecidedBy, Decision, Direction, Flow, GroupJump, Level, Outcome, Target,
    TraceStep, evaluate, management_ports,
};
pub use file::{
    Parsed, parse_cluster_fw, parse_cluster_fw_as, parse_guest_fw, parse_guest_fw_as,
    parse_host_fw, parse_host_fw_as, write_cluster_fw, write_guest_fw, write_host_fw,
};
/// Networks as the API takes them (re-exported so callers use the same type).
pub use ipnet::IpNet;
pub use macros::{MACROS, Macro, MacroEntry, lookup as lookup_macro};
pub use model::{
    Alias, ClusterFirewall, ClusterOptions, FirewallConfig, GuestFirewall, GuestNic, GuestOptions,
    HostFirewall, HostOptions, Ipset, IpsetEntry, IpsetTarget, NodeNetwork, SecurityGroup,
};
pub use ports::{ICMP_TYPES, ICMPV6_TYPES, PortField, PortItem, PortSpec, service_port};
pub use proto::Protocol;
pub use prove::{
    Counterexample, EPHEMERAL_PORTS, FlowClass, PortProof, Proof, SourceClass, classify_flows,
    classify_ports, classify_sources, evaluate_client_ports, prove_blocked, prove_ports,
    prove_reach, prove_verdict,
};
pub use rule::{Action, LogLevel, Rule, RuleContext, RuleKind, Verdict, rules_from_api_json};
pub use syntax::Dialect;
