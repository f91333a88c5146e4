//! The evaluator: given a flow, walk the chains PVE would generate and
//! return the verdict, what decided it, and a trail like
//! `pve-firewall simulate` prints.
//!
//! Only new connections are modelled (no conntrack state), because the
//! question labwright asks is "can a fresh SSH/HTTPS session get in".

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::chains::{guest, host};
use crate::model::FirewallConfig;
use crate::proto::Protocol;
use crate::rule::Verdict;
use crate::walk::Walk;

/// Which PVE firewall implementation generates the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `pve-firewall` (default): management accepts come *after* user rules.
    Iptables,
    /// `proxmox-firewall` (node option `nftables: 1`): management accepts
    /// come *before* user rules; guest REJECT becomes DROP.
    Nftables,
}

impl Backend {
    /// Both backends, in the order results are reported.
    pub const ALL: [Backend; 2] = [Backend::Iptables, Backend::Nftables];

    /// The backend a node runs, from its `nftables` option in `cfg` (read
    /// from the node, so an absent option means pve-firewall).
    pub fn for_node(cfg: &FirewallConfig, node: &str) -> Backend {
        if cfg.nodes.get(node).is_some_and(|n| n.options.nftables) {
            Backend::Nftables
        } else {
            Backend::Iptables
        }
    }

    /// The backend a node's firewall options select, from the raw value of
    /// its `nftables` option as the API or `host.fw` gives it (`1`,
    /// `true`, `on`, `yes` select proxmox-firewall; absent or anything
    /// else, pve-firewall). Use it only when the options were actually
    /// read; when they were not, the backend is unknown (`None` for
    /// [`Backend::to_prove`]).
    pub fn from_nftables_option(value: Option<&str>) -> Backend {
        let on = value.is_some_and(|v| {
            let v = v.trim();
            v == "1"
                || ["true", "on", "yes"]
                    .iter()
                    .any(|t| v.eq_ignore_ascii_case(t))
        });
        if on {
            Backend::Nftables
        } else {
            Backend::Iptables
        }
    }

    /// The backends a proof must hold for: the node's when it is known,
    /// both when it is not (a spec checked offline, a copy of
    /// `/etc/pve/firewall` without the node's `host.fw`).
    pub fn to_prove(known: Option<Backend>) -> &'static [Backend] {
        match known {
            Some(Backend::Iptables) => &[Backend::Iptables],
            Some(Backend::Nftables) => &[Backend::Nftables],
            None => &Backend::ALL,
        }
    }

    /// Parse `iptables` / `nftables` (also `pve-firewall` / `proxmox-firewall`).
    pub fn parse(s: &str) -> Option<Backend> {
        match s.to_ascii_lowercase().as_str() {
            "iptables" | "pve-firewall" => Some(Backend::Iptables),
            "nftables" | "proxmox-firewall" => Some(Backend::Nftables),
            _ => None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Iptables => "iptables",
            Backend::Nftables => "nftables",
        })
    }
}

/// Who receives (or sends) the flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The node itself (host firewall).
    Node(String),
    /// A guest, by VMID (guest firewall).
    Vm(u32),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => write!(f, "node {n}"),
            Target::Vm(id) => write!(f, "vm {id}"),
        }
    }
}

/// Direction as seen from the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Towards the target (the usual question).
    #[default]
    In,
    /// From the target to the remote address.
    Out,
}

/// One connection attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    /// The remote address: the packet source for `In`, the packet
    /// destination for `Out`.
    pub source: IpAddr,
    /// The node or guest whose firewall is evaluated.
    pub dest: Target,
    /// The target's own address (matched by `-dest` on inbound rules);
    /// defaults to the node's first address or the NIC's first address.
    pub dest_addr: Option<IpAddr>,
    /// IP protocol.
    pub proto: Protocol,
    /// Destination port (tcp/udp/…).
    pub dport: Option<u16>,
    /// Source port; rules with `-sport` only match when it is known.
    pub sport: Option<u16>,
    /// ICMP type name (`echo-request`) for ICMP flows.
    pub icmp_type: Option<String>,
    /// Interface: host interface (`vmbr0`) or guest NIC (`net0`).
    pub iface: Option<String>,
    /// In (default) or Out.
    pub direction: Direction,
}

impl Flow {
    /// An inbound flow with the given protocol and destination port.
    pub fn new(source: IpAddr, dest: Target, proto: Protocol, dport: Option<u16>) -> Self {
        Flow {
            source,
            dest,
            dest_addr: None,
            proto,
            dport,
            sport: None,
            icmp_type: None,
            iface: None,
            direction: Direction::In,
        }
    }

    /// Inbound TCP to `port`.
    pub fn tcp(source: IpAddr, dest: Target, port: u16) -> Self {
        Flow::new(source, dest, Protocol::TCP, Some(port))
    }

    /// Inbound UDP to `port`.
    pub fn udp(source: IpAddr, dest: Target, port: u16) -> Self {
        Flow::new(source, dest, Protocol::UDP, Some(port))
    }

    /// Inbound ICMP echo request (ICMPv6 for an IPv6 source).
    pub fn ping(source: IpAddr, dest: Target) -> Self {
        let proto = if source.is_ipv6() {
            Protocol::ICMPV6
        } else {
            Protocol::ICMP
        };
        let mut f = Flow::new(source, dest, proto, None);
        f.icmp_type = Some("echo-request".into());
        f
    }

    /// The same flow in the outbound direction.
    pub fn outbound(mut self) -> Self {
        self.direction = Direction::Out;
        self
    }

    /// The same flow on a given interface.
    pub fn on_iface(mut self, iface: &str) -> Self {
        self.iface = Some(iface.to_string());
        self
    }

    /// The same flow with a known source port.
    pub fn with_sport(mut self, sport: u16) -> Self {
        self.sport = Some(sport);
        self
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = match self.direction {
            Direction::In => format!("{} -> {}", self.source, self.dest),
            Direction::Out => format!("{} -> {}", self.dest, self.source),
        };
        write!(f, "{arrow} {}", self.proto)?;
        if let Some(p) = self.dport {
            write!(f, "/{p}")?;
        }
        if let Some(t) = &self.icmp_type {
            write!(f, " {t}")?;
        }
        if let Some(i) = &self.iface {
            write!(f, " via {i}")?;
        }
        Ok(())
    }
}

/// Where a rule or policy lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// `cluster.fw`.
    Cluster,
    /// `host.fw` of a node.
    Node(String),
    /// `<vmid>.fw`.
    Vm(u32),
    /// A security group.
    Group(String),
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Cluster => f.write_str("cluster"),
            Level::Node(n) => write!(f, "node {n}"),
            Level::Vm(id) => write!(f, "vm {id}"),
            Level::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// The GROUP rule through which a group rule was reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupJump {
    /// Level of the GROUP rule.
    pub level: Level,
    /// Its index in that level's rule list.
    pub index: usize,
    /// Its `.fw` line.
    pub rule: String,
}

/// Built-in accepts PVE generates outside user rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// Traffic on `lo`.
    Loopback,
    /// IGMP (multicast membership).
    Igmp,
    /// Corosync between cluster nodes.
    Corosync,
    /// DHCP for guests with `dhcp: 1`.
    Dhcp,
    /// DHCP dropped for guests with `dhcp: 0` (nftables `block-dhcp-in`).
    DhcpBlocked,
    /// ICMP errors (unreachable, time-exceeded, …) the backends always pass.
    IcmpError,
    /// SMB ports, rejected by nftables before user rules.
    SmbNoise,
    /// UPnP (udp/1900), dropped by nftables before user rules.
    Upnp,
    /// DNS replies (udp from port 53), dropped by nftables before user rules.
    DnsReply,
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Builtin::Loopback => "loopback",
            Builtin::Igmp => "igmp",
            Builtin::Corosync => "corosync",
            Builtin::Dhcp => "dhcp",
            Builtin::DhcpBlocked => "dhcp blocked",
            Builtin::IcmpError => "icmp errors",
            Builtin::SmbNoise => "smb noise",
            Builtin::Upnp => "upnp",
            Builtin::DnsReply => "dns reply",
        })
    }
}

/// What decided the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecidedBy {
    /// A user rule matched.
    Rule {
        /// Where the rule lives.
        level: Level,
        /// Its index in that list.
        index: usize,
        /// Its `.fw` line.
        rule: String,
        /// Its comment (labwright's rule id lives here).
        comment: Option<String>,
        /// The GROUP rule that led here, for rules inside groups.
        via: Option<Box<GroupJump>>,
    },
    /// No rule matched; the default policy applied.
    Policy {
        /// Whose policy (cluster for nodes, the VM for guests).
        level: Level,
        /// The policy as configured (before backend adjustments).
        policy: Verdict,
    },
    /// A firewall switch is off, so nothing filters this traffic.
    FirewallDisabled {
        /// The level whose switch is off.
        level: Level,
    },
    /// The guest NIC lacks `firewall=1`.
    NicFirewallDisabled {
        /// The guest.
        vmid: u32,
        /// The NIC.
        iface: String,
    },
    /// The automatic accept for `+management` sources on the node's
    /// management ports.
    ImplicitManagementAccept {
        /// The management port range that matched (the built-in rule,
        /// not the flow's port, so every flow it decides shares it).
        ports: (u16, u16),
        /// The management ipset entry (or `local_network`) that matched.
        entry: String,
    },
    /// The automatic outbound accept to `local_network` on management ports.
    LocalNetworkOutAccept {
        /// The port range that matched.
        ports: (u16, u16),
    },
    /// The source is in the datacenter `blacklist` ipset.
    Blacklist {
        /// The entry that matched.
        entry: String,
    },
    /// Another built-in accept.
    Builtin {
        /// Which one.
        what: Builtin,
    },
}

impl fmt::Display for DecidedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecidedBy::Rule {
                level,
                index,
                rule,
                via,
                ..
            } => {
                write!(f, "{level} rule #{index}: {rule}")?;
                if let Some(j) = via {
                    write!(f, " (via {} rule #{}: {})", j.level, j.index, j.rule)?;
                }
                Ok(())
            }
            DecidedBy::Policy { level, policy } => write!(f, "{level} policy {policy}"),
            DecidedBy::FirewallDisabled { level } => {
                write!(f, "firewall disabled at {level} level")
            }
            DecidedBy::NicFirewallDisabled { vmid, iface } => {
                write!(f, "vm {vmid} {iface} has firewall=0")
            }
            DecidedBy::ImplicitManagementAccept { ports, entry } => {
                write!(
                    f,
                    "implicit management accept (tcp/{} from +management entry {entry})",
                    port_range(*ports)
                )
            }
            DecidedBy::LocalNetworkOutAccept { ports } => {
                write!(
                    f,
                    "implicit accept to local_network tcp/{}",
                    port_range(*ports)
                )
            }
            DecidedBy::Blacklist { entry } => write!(f, "datacenter blacklist entry {entry}"),
            DecidedBy::Builtin { what } => write!(f, "built-in rule: {what}"),
        }
    }
}

/// Result of one step of the walk.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    /// The step decided the verdict.
    Matched(Verdict),
    /// The step did not apply; why.
    NoMatch(String),
    /// The step was ignored (disabled rule, unresolvable reference, …).
    Skipped(String),
    /// A group was entered and nothing in it matched.
    GroupExhausted,
    /// Informational note.
    Note(String),
}

/// One line of the trail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceStep {
    /// The chain as the backend names it (`PVEFW-HOST-IN`, `default-in`, …).
    pub chain: String,
    /// What was looked at (a rule line, a built-in, a policy).
    pub what: String,
    /// What happened.
    pub outcome: Outcome,
}

impl fmt::Display for TraceStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<18} {}", self.chain, self.what)?;
        match &self.outcome {
            Outcome::Matched(v) => write!(f, "  => {v}"),
            Outcome::NoMatch(r) => write!(f, "  (no match: {r})"),
            Outcome::Skipped(r) => write!(f, "  (skipped: {r})"),
            Outcome::GroupExhausted => f.write_str("  (no rule in group matched)"),
            Outcome::Note(n) => write!(f, "  ({n})"),
        }
    }
}

/// The answer to "what happens to this flow".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// ACCEPT, DROP or REJECT.
    pub verdict: Verdict,
    /// What decided it.
    pub decided_by: DecidedBy,
    /// Every step walked, in order.
    pub trail: Vec<TraceStep>,
}

impl Decision {
    /// The trail as text, one step a line (what `firewall simulate` prints).
    pub fn render_trail(&self) -> String {
        let mut out = String::new();
        for s in &self.trail {
            out.push_str(&s.to_string());
            out.push('\n');
        }
        out.push_str(&format!(
            "verdict: {} ({})\n",
            self.verdict, self.decided_by
        ));
        out
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} by {}", self.verdict, self.decided_by)
    }
}

/// PVE's management ports: tcp 8006 (API/GUI), 5900-5999 (VNC),
/// 3128 (SPICE), 22 (SSH); iptables adds 60000-60050 (migration).
pub fn management_ports(backend: Backend) -> &'static [(u16, u16)] {
    match backend {
        Backend::Iptables => &[
            (8006, 8006),
            (5900, 5999),
            (3128, 3128),
            (22, 22),
            (60000, 60050),
        ],
        Backend::Nftables => &[(8006, 8006), (5900, 5999), (3128, 3128), (22, 22)],
    }
}

/// Ports of the outbound accept to `local_network`.
pub(crate) const LOCAL_OUT_PORTS: &[(u16, u16)] =
    &[(8006, 8006), (22, 22), (5900, 5999), (3128, 3128)];
/// Corosync (knet) ports.
pub(crate) const COROSYNC_PORTS: (u16, u16) = (5405, 5412);
/// SMB ports nftables rejects before user rules (udp and tcp).
pub(crate) const SMB_UDP: &[(u16, u16)] = &[(135, 135), (137, 139), (445, 445)];
pub(crate) const SMB_TCP: &[(u16, u16)] = &[(135, 135), (139, 139), (445, 445)];
/// Destination range of the NetBIOS reply filter (`udp sport 137`).
pub(crate) const UNPRIVILEGED: (u16, u16) = (1024, 65535);
/// UPnP/SSDP.
pub(crate) const UPNP: u16 = 1900;
/// DHCP server and client ports.
pub(crate) const DHCP_SERVER: u16 = 67;
pub(crate) const DHCP_CLIENT: u16 = 68;

/// The range of `ranges` that holds `port`.
pub(crate) fn range_of(ranges: &[(u16, u16)], port: Option<u16>) -> Option<(u16, u16)> {
    let p = port?;
    ranges.iter().copied().find(|(lo, hi)| *lo <= p && p <= *hi)
}

fn port_range((lo, hi): (u16, u16)) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}:{hi}")
    }
}

pub(crate) fn in_ranges(ranges: &[(u16, u16)], port: Option<u16>) -> Option<u16> {
    port.filter(|p| ranges.iter().any(|(lo, hi)| lo <= p && p <= hi))
}

/// Evaluate one flow. Never fails: missing objects are reported in the
/// trail and treated the way PVE treats them.
pub fn evaluate(cfg: &FirewallConfig, flow: &Flow, backend: Backend) -> Decision {
    let mut walk = Walk { trail: Vec::new() };
    walk.step(
        "-",
        format!("flow {flow} [{backend}]"),
        Outcome::Note("start".into()),
    );
    if !cfg.cluster.options.enable {
        walk.step(
            "-",
            "cluster.fw enable: 0",
            Outcome::Matched(Verdict::Accept),
        );
        return walk.done(
            Verdict::Accept,
            DecidedBy::FirewallDisabled {
                level: Level::Cluster,
            },
        );
    }
    match &flow.dest {
        Target::Node(name) => host(cfg, flow, backend, name, walk),
        Target::Vm(id) => guest(cfg, flow, backend, *id, walk),
    }
}
