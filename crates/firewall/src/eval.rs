//! The evaluator: given a flow, walk the chains PVE would generate and
//! return the verdict, what decided it, and a trail like
//! `pve-firewall simulate` prints.
//!
//! Only new connections are modelled (no conntrack state), because the
//! question labwright asks is "can a fresh SSH/HTTPS session get in".

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;

use crate::addr::{AddressRef, Interval, Scope};
use crate::model::{Alias, FirewallConfig, GuestFirewall, HostFirewall, Ipset, IpsetTarget};
use crate::ports::PortSpec;
use crate::proto::Protocol;
use crate::rule::{Action, Rule, RuleKind, Verdict};

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
    /// The backend a node runs, from its `nftables` option.
    pub fn for_node(cfg: &FirewallConfig, node: &str) -> Backend {
        if cfg.nodes.get(node).is_some_and(|n| n.options.nftables) {
            Backend::Nftables
        } else {
            Backend::Iptables
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
const LOCAL_OUT_PORTS: &[(u16, u16)] = &[(8006, 8006), (22, 22), (5900, 5999), (3128, 3128)];
/// Corosync (knet) ports.
const COROSYNC_PORTS: (u16, u16) = (5405, 5412);
/// SMB ports nftables rejects before user rules (udp and tcp).
const SMB_UDP: &[(u16, u16)] = &[(135, 135), (137, 139), (445, 445)];
const SMB_TCP: &[(u16, u16)] = &[(135, 135), (139, 139), (445, 445)];
/// Destination range of the NetBIOS reply filter (`udp sport 137`).
const UNPRIVILEGED: (u16, u16) = (1024, 65535);
/// UPnP/SSDP.
const UPNP: u16 = 1900;
/// DHCP server and client ports.
const DHCP_SERVER: u16 = 67;
const DHCP_CLIENT: u16 = 68;

/// The range of `ranges` that holds `port`.
fn range_of(ranges: &[(u16, u16)], port: Option<u16>) -> Option<(u16, u16)> {
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

fn in_ranges(ranges: &[(u16, u16)], port: Option<u16>) -> Option<u16> {
    port.filter(|p| ranges.iter().any(|(lo, hi)| lo <= p && p <= hi))
}

/// One resolved ipset entry.
#[derive(Debug, Clone)]
pub(crate) struct SetEntry {
    pub(crate) iv: Interval,
    pub(crate) nomatch: bool,
    pub(crate) label: String,
}

/// Membership with the backend's `nomatch` semantics: iptables' hash:net
/// lets the most specific entry decide; nftables keeps a separate
/// nomatch set that excludes regardless of specificity.
fn set_lookup(entries: &[SetEntry], ip: IpAddr, backend: Backend) -> Option<String> {
    match backend {
        Backend::Iptables => {
            let mut best: Option<&SetEntry> = None;
            for e in entries.iter().filter(|e| e.iv.contains(ip)) {
                let better = match best {
                    None => true,
                    Some(b) => {
                        let (size, bsize) = (e.iv.hi - e.iv.lo, b.iv.hi - b.iv.lo);
                        size < bsize || (size == bsize && e.nomatch && !b.nomatch)
                    }
                };
                if better {
                    best = Some(e);
                }
            }
            best.filter(|e| !e.nomatch).map(|e| e.label.clone())
        }
        Backend::Nftables => {
            if entries.iter().any(|e| e.nomatch && e.iv.contains(ip)) {
                return None;
            }
            entries
                .iter()
                .find(|e| !e.nomatch && e.iv.contains(ip))
                .map(|e| e.label.clone())
        }
    }
}

fn find_ci<'a, V>(map: &'a std::collections::BTreeMap<String, V>, name: &str) -> Option<&'a V> {
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Name lookups and membership tests in the context of one node or guest.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) cfg: &'a FirewallConfig,
    pub(crate) backend: Backend,
    pub(crate) node: Option<&'a str>,
    pub(crate) guest: Option<&'a GuestFirewall>,
}

impl<'a> Ctx<'a> {
    /// `local_network`: the user's alias, else (iptables) the network of
    /// the node's first address, or (nftables) all node networks; PVE
    /// falls back to 127.0.0.0/8 when it cannot detect one.
    pub(crate) fn local_network(&self) -> Vec<Interval> {
        if let Some(a) = find_ci(&self.cfg.cluster.aliases, "local_network") {
            return vec![a.cidr.interval()];
        }
        let addrs: &[IpNet] = self
            .node
            .and_then(|n| self.cfg.nodes.get(n))
            .map(|h| h.network.addrs.as_slice())
            .unwrap_or(&[]);
        let nets: Vec<Interval> = match self.backend {
            Backend::Iptables => addrs
                .iter()
                .take(1)
                .map(|a| Interval::of_net(&a.trunc()))
                .collect(),
            Backend::Nftables => addrs.iter().map(|a| Interval::of_net(&a.trunc())).collect(),
        };
        if nets.is_empty() {
            vec![loopback_v4()]
        } else {
            nets
        }
    }

    /// Resolve an alias as a rule of this context would (guest first).
    pub(crate) fn alias_ivs(&self, scope: Scope, name: &str) -> Result<Vec<Interval>, String> {
        self.alias(scope, name, true)
    }

    fn alias(&self, scope: Scope, name: &str, guest_first: bool) -> Result<Vec<Interval>, String> {
        let guest_alias: Option<&Alias> = match (scope, self.guest) {
            (Scope::Auto | Scope::Guest, Some(g)) if guest_first || scope == Scope::Guest => {
                find_ci(&g.aliases, name)
            }
            _ => None,
        };
        if let Some(a) = guest_alias {
            return Ok(vec![a.cidr.interval()]);
        }
        if scope == Scope::Guest {
            return Err(format!("no such alias 'guest/{name}'"));
        }
        if scope == Scope::Sdn {
            return Err(format!("sdn alias '{name}' is not modelled"));
        }
        if let Some(a) = find_ci(&self.cfg.cluster.aliases, name) {
            return Ok(vec![a.cidr.interval()]);
        }
        if name.eq_ignore_ascii_case("local_network") {
            return Ok(self.local_network());
        }
        Err(format!("no such alias '{name}'"))
    }

    pub(crate) fn ipset(&self, scope: Scope, name: &str) -> Result<Vec<SetEntry>, String> {
        let guest_set: Option<&Ipset> = match (scope, self.guest) {
            (Scope::Auto | Scope::Guest, Some(g)) => find_ci(&g.ipsets, name),
            _ => None,
        };
        if let Some(set) = guest_set {
            return self.resolve_set(set, true);
        }
        match scope {
            Scope::Guest => return Err(format!("no such ipset 'guest/{name}'")),
            Scope::Sdn => return Err(format!("sdn ipset '{name}' is not modelled")),
            Scope::Auto | Scope::Dc => {}
        }
        let is_mgmt = name.eq_ignore_ascii_case("management");
        let mut entries = match find_ci(&self.cfg.cluster.ipsets, name) {
            Some(set) => self.resolve_set(set, false)?,
            None if is_mgmt => Vec::new(),
            None => return Err(format!("no such ipset '{name}'")),
        };
        if is_mgmt {
            for iv in self.local_network() {
                entries.push(SetEntry {
                    iv,
                    nomatch: false,
                    label: format!("local_network {iv}"),
                });
            }
        }
        Ok(entries)
    }

    fn resolve_set(&self, set: &Ipset, guest_owned: bool) -> Result<Vec<SetEntry>, String> {
        let mut out = Vec::with_capacity(set.entries.len());
        for e in &set.entries {
            match &e.target {
                IpsetTarget::Addr(a) => out.push(SetEntry {
                    iv: a.interval(),
                    nomatch: e.nomatch,
                    label: e.to_string(),
                }),
                IpsetTarget::Alias { scope, name } => {
                    for iv in self.alias(*scope, name, guest_owned)? {
                        out.push(SetEntry {
                            iv,
                            nomatch: e.nomatch,
                            label: e.to_string(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether `ip` matches an address spec. `Err` means the reference
    /// does not resolve; PVE then ignores the whole rule.
    fn addr_match(&self, aref: &AddressRef, ip: IpAddr) -> Result<bool, String> {
        match aref {
            AddressRef::List { entries } => Ok(entries.iter().any(|e| e.interval().contains(ip))),
            AddressRef::Range { start, end } => Ok(Interval::range(*start, *end).contains(ip)),
            AddressRef::Alias { scope, name } => Ok(self
                .alias(*scope, name, true)?
                .iter()
                .any(|iv| iv.contains(ip))),
            AddressRef::Ipset { scope, name } => {
                Ok(set_lookup(&self.ipset(*scope, name)?, ip, self.backend).is_some())
            }
        }
    }
}

fn loopback_v4() -> Interval {
    Interval::of_net(&IpNet::V4(Ipv4Net::new_assert(
        Ipv4Addr::new(127, 0, 0, 0),
        8,
    )))
}

fn is_loopback(ip: IpAddr) -> bool {
    loopback_v4().contains(ip) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
}

/// Facts of the flow after defaults are filled in.
struct Facts<'f> {
    flow: &'f Flow,
    local: Option<IpAddr>,
    iface: Option<String>,
}

fn port_match(spec: &PortSpec, port: Option<u16>, what: &str) -> Result<(), String> {
    match port {
        Some(p) if spec.contains(p) => Ok(()),
        Some(p) => Err(format!("{what} {p} not in {spec}")),
        None => Err(format!("flow has no {what}")),
    }
}

fn ranges_match(ranges: &[(u16, u16)], port: Option<u16>, what: &str) -> Result<(), String> {
    if ranges.is_empty() {
        return Ok(());
    }
    port_match(&PortSpec::from_ranges(ranges), port, what)
}

fn icmp_match(want: &str, flow: &Flow) -> Result<(), String> {
    if want == "any" {
        return Ok(());
    }
    match flow.icmp_type.as_deref() {
        Some(t) if t == want => Ok(()),
        Some(t) => Err(format!("icmp type {t} is not {want}")),
        None => Err("flow has no icmp type".into()),
    }
}

/// Protocol and port part of a rule, macros expanded. Macro entries win
/// over the rule's own proto/ports, as in PVE's macro expansion.
fn l4_match(rule: &Rule, flow: &Flow) -> Result<(), String> {
    if let Some(mac) = rule.macro_def() {
        let mut reasons = Vec::new();
        for e in mac.entries_for(flow.source.is_ipv6()) {
            let res = (|| {
                if e.proto != flow.proto.number() {
                    return Err(format!(
                        "proto {} is not {}",
                        flow.proto,
                        Protocol::from_number(e.proto)
                    ));
                }
                if let Some(t) = e.icmp_type {
                    icmp_match(t, flow)?;
                } else if !e.dport.is_empty() {
                    ranges_match(e.dport, flow.dport, "dport")?;
                } else if let Some(d) = &rule.dport {
                    port_match(d, flow.dport, "dport")?;
                }
                if !e.sport.is_empty() {
                    ranges_match(e.sport, flow.sport, "sport")?;
                } else if let Some(s) = &rule.sport {
                    port_match(s, flow.sport, "sport")?;
                }
                Ok(())
            })();
            match res {
                Ok(()) => return Ok(()),
                Err(r) => reasons.push(r),
            }
        }
        return Err(format!("macro {}: {}", mac.name, reasons.join("; ")));
    }
    if let Some(p) = &rule.proto
        && !p.same(&flow.proto)
    {
        return Err(format!("proto {} is not {p}", flow.proto));
    }
    if let Some(d) = &rule.dport {
        match d.icmp_type() {
            Some(t) => icmp_match(t, flow)?,
            None => port_match(d, flow.dport, "dport")?,
        }
    }
    if let Some(s) = &rule.sport {
        port_match(s, flow.sport, "sport")?;
    }
    if let Some(t) = &rule.icmp_type {
        icmp_match(t, flow)?;
    }
    Ok(())
}

/// Whether a rule (not a GROUP rule) matches; `Err(Skip)` when PVE would
/// drop the rule for an unresolvable reference.
enum Miss {
    No(String),
    Skip(String),
}

fn rule_match(
    ctx: &Ctx<'_>,
    rule: &Rule,
    facts: &Facts<'_>,
    group_iface: Option<&str>,
) -> Result<(), Miss> {
    let flow = facts.flow;
    let want = match flow.direction {
        Direction::In => RuleKind::In,
        Direction::Out => RuleKind::Out,
    };
    if rule.kind != want {
        return Err(Miss::No(format!("type {} is not {want}", rule.kind)));
    }
    iface_match(rule.iface.as_deref().or(group_iface), facts).map_err(Miss::No)?;
    let (src_ip, dst_ip) = match flow.direction {
        Direction::In => (Some(flow.source), facts.local),
        Direction::Out => (facts.local, Some(flow.source)),
    };
    for (label, aref, ip) in [
        ("source", &rule.source, src_ip),
        ("dest", &rule.dest, dst_ip),
    ] {
        if let Some(a) = aref {
            let Some(ip) = ip else {
                return Err(Miss::No(format!(
                    "{label} address of the target is unknown"
                )));
            };
            match ctx.addr_match(a, ip) {
                Ok(true) => {}
                Ok(false) => return Err(Miss::No(format!("{label} {ip} not in {a}"))),
                Err(e) => return Err(Miss::Skip(e)),
            }
        }
    }
    l4_match(rule, flow).map_err(Miss::No)
}

fn iface_match(want: Option<&str>, facts: &Facts<'_>) -> Result<(), String> {
    match (want, facts.iface.as_deref()) {
        (None, _) => Ok(()),
        (Some(w), Some(i)) if w == i => Ok(()),
        (Some(w), Some(i)) => Err(format!("iface {i} is not {w}")),
        (Some(w), None) => Err(format!("flow interface unknown (rule wants {w})")),
    }
}

/// Walks chains, recording the trail.
struct Walk {
    trail: Vec<TraceStep>,
}

impl Walk {
    fn step(&mut self, chain: &str, what: impl Into<String>, outcome: Outcome) {
        self.trail.push(TraceStep {
            chain: chain.to_string(),
            what: what.into(),
            outcome,
        });
    }

    fn done(self, verdict: Verdict, decided_by: DecidedBy) -> Decision {
        Decision {
            verdict,
            decided_by,
            trail: self.trail,
        }
    }

    /// First-match over a rule list, entering security groups.
    fn rules(
        &mut self,
        ctx: &Ctx<'_>,
        chain: &str,
        level: &Level,
        rules: &[Rule],
        facts: &Facts<'_>,
    ) -> Option<(Verdict, DecidedBy)> {
        for (index, rule) in rules.iter().enumerate() {
            let line = rule.to_string();
            let what = format!("{level} #{index}: {line}");
            if !rule.enable {
                self.step(chain, what, Outcome::Skipped("disabled".into()));
                continue;
            }
            if rule.kind == RuleKind::Group {
                let Action::Group(gname) = &rule.action else {
                    self.step(
                        chain,
                        what,
                        Outcome::Skipped("group rule without group name".into()),
                    );
                    continue;
                };
                if let Err(r) = iface_match(rule.iface.as_deref(), facts) {
                    self.step(chain, what, Outcome::NoMatch(r));
                    continue;
                }
                let Some(group) = find_ci(&ctx.cfg.cluster.groups, gname) else {
                    self.step(
                        chain,
                        what,
                        Outcome::Skipped(format!("no such security group '{gname}'")),
                    );
                    continue;
                };
                self.step(chain, what, Outcome::Note("enter group".into()));
                let glevel = Level::Group(gname.clone());
                let gchain = format!("GROUP-{gname}");
                // Group chains are generated once from cluster.fw, so names
                // inside a group resolve at datacenter level only.
                let gctx = Ctx {
                    guest: None,
                    ..*ctx
                };
                for (gi, grule) in group.rules.iter().enumerate() {
                    let gline = grule.to_string();
                    let gwhat = format!("{glevel} #{gi}: {gline}");
                    if !grule.enable {
                        self.step(&gchain, gwhat, Outcome::Skipped("disabled".into()));
                        continue;
                    }
                    match rule_match(&gctx, grule, facts, rule.iface.as_deref()) {
                        Ok(()) => {
                            let Some(v) = grule.action.verdict() else {
                                self.step(&gchain, gwhat, Outcome::Skipped("nested group".into()));
                                continue;
                            };
                            let v = adjust(v, ctx, facts);
                            self.step(&gchain, gwhat, Outcome::Matched(v));
                            let via = GroupJump {
                                level: level.clone(),
                                index,
                                rule: line,
                            };
                            return Some((
                                v,
                                DecidedBy::Rule {
                                    level: glevel,
                                    index: gi,
                                    rule: gline,
                                    comment: grule.comment.clone(),
                                    via: Some(Box::new(via)),
                                },
                            ));
                        }
                        Err(Miss::No(r)) => self.step(&gchain, gwhat, Outcome::NoMatch(r)),
                        Err(Miss::Skip(r)) => self.step(&gchain, gwhat, Outcome::Skipped(r)),
                    }
                }
                self.step(
                    chain,
                    format!("{level} #{index}: {line}"),
                    Outcome::GroupExhausted,
                );
                continue;
            }
            match rule_match(ctx, rule, facts, None) {
                Ok(()) => {
                    let Some(v) = rule.action.verdict() else {
                        self.step(
                            chain,
                            what,
                            Outcome::Skipped("group action on a non-group rule".into()),
                        );
                        continue;
                    };
                    let v = adjust(v, ctx, facts);
                    self.step(chain, what, Outcome::Matched(v));
                    return Some((
                        v,
                        DecidedBy::Rule {
                            level: level.clone(),
                            index,
                            rule: line,
                            comment: rule.comment.clone(),
                            via: None,
                        },
                    ));
                }
                Err(Miss::No(r)) => self.step(chain, what, Outcome::NoMatch(r)),
                Err(Miss::Skip(r)) => self.step(chain, what, Outcome::Skipped(r)),
            }
        }
        None
    }
}

/// What a REJECT really does: nftables cannot REJECT guest traffic and
/// drops instead; iptables' `PVEFW-reject` drops ICMP rather than
/// answering it.
fn reject_becomes_drop(backend: Backend, flow: &Flow) -> Option<&'static str> {
    match backend {
        Backend::Nftables if matches!(flow.dest, Target::Vm(_)) => {
            Some("nftables cannot REJECT guest traffic; dropping")
        }
        Backend::Iptables if flow.proto.same(&Protocol::ICMP) => {
            Some("PVEFW-reject drops ICMP instead of answering")
        }
        _ => None,
    }
}

fn adjust(v: Verdict, ctx: &Ctx<'_>, facts: &Facts<'_>) -> Verdict {
    if v == Verdict::Reject && reject_becomes_drop(ctx.backend, facts.flow).is_some() {
        Verdict::Drop
    } else {
        v
    }
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

/// ICMP errors that nftables' `allow-icmp` chain accepts before any rule
/// (host and guests, both directions).
fn nft_icmp_error(flow: &Flow) -> bool {
    const V4: &[&str] = &[
        "destination-unreachable",
        "network-unreachable",
        "host-unreachable",
        "protocol-unreachable",
        "port-unreachable",
        "fragmentation-needed",
        "source-route-failed",
        "network-unknown",
        "host-unknown",
        "network-prohibited",
        "host-prohibited",
        "TOS-network-unreachable",
        "TOS-host-unreachable",
        "communication-prohibited",
        "host-precedence-violation",
        "precedence-cutoff",
        "source-quench",
        "time-exceeded",
        "ttl-zero-during-transit",
        "ttl-zero-during-reassembly",
    ];
    const V6: &[&str] = &[
        "destination-unreachable",
        "no-route",
        "communication-prohibited",
        "beyond-scope",
        "address-unreachable",
        "port-unreachable",
        "failed-policy",
        "reject-route",
        "packet-too-big",
        "time-exceeded",
        "ttl-zero-during-transit",
        "ttl-zero-during-reassembly",
        "parameter-problem",
        "bad-header",
        "unknown-header-type",
        "unknown-option",
    ];
    let Some(t) = flow.icmp_type.as_deref() else {
        return false;
    };
    (flow.proto.same(&Protocol::ICMP) && V4.contains(&t))
        || (flow.proto.same(&Protocol::ICMPV6) && V6.contains(&t))
}

/// ICMP types iptables' `PVEFW-Drop`/`PVEFW-Reject` policy chains still
/// accept, so a DROP policy does not break path MTU discovery.
fn ipt_policy_icmp(flow: &Flow) -> bool {
    const TYPES: &[&str] = &[
        "fragmentation-needed",
        "time-exceeded",
        "ttl-zero-during-transit",
        "ttl-zero-during-reassembly",
    ];
    flow.proto.same(&Protocol::ICMP)
        && flow
            .icmp_type
            .as_deref()
            .is_some_and(|t| TYPES.contains(&t))
}

/// nftables `default-in` noise filters, which run before any user rule:
/// SMB is rejected, UPnP and DNS replies are dropped.
fn nft_noise(flow: &Flow) -> Option<(Verdict, Builtin)> {
    let udp = flow.proto.same(&Protocol::UDP);
    let tcp = flow.proto.same(&Protocol::TCP);
    let dport = flow.dport;
    let smb_udp = udp && in_ranges(SMB_UDP, dport).is_some();
    let smb_sport = udp && flow.sport == Some(137) && in_ranges(&[UNPRIVILEGED], dport).is_some();
    let smb_tcp = tcp && in_ranges(SMB_TCP, dport).is_some();
    if smb_udp || smb_sport || smb_tcp {
        return Some((Verdict::Reject, Builtin::SmbNoise));
    }
    if udp && dport == Some(UPNP) {
        return Some((Verdict::Drop, Builtin::Upnp));
    }
    if udp && flow.sport == Some(53) {
        return Some((Verdict::Drop, Builtin::DnsReply));
    }
    None
}

fn builtin(walk: Walk, v: Verdict, what: Builtin) -> Decision {
    walk.done(v, DecidedBy::Builtin { what })
}

fn host(
    cfg: &FirewallConfig,
    flow: &Flow,
    backend: Backend,
    name: &str,
    mut walk: Walk,
) -> Decision {
    let default_host = HostFirewall::default();
    let hostfw = match cfg.nodes.get(name) {
        Some(h) => h,
        None => {
            walk.step(
                "-",
                format!("node {name}"),
                Outcome::Note("no host.fw: PVE defaults".into()),
            );
            &default_host
        }
    };
    let node_level = Level::Node(name.to_string());
    if !hostfw.options.enable {
        walk.step("-", "host.fw enable: 0", Outcome::Matched(Verdict::Accept));
        return walk.done(
            Verdict::Accept,
            DecidedBy::FirewallDisabled { level: node_level },
        );
    }
    let ctx = Ctx {
        cfg,
        backend,
        node: Some(name),
        guest: None,
    };
    let facts = Facts {
        flow,
        local: flow
            .dest_addr
            .or_else(|| hostfw.network.addrs.first().map(IpNet::addr)),
        iface: flow
            .iface
            .clone()
            .or_else(|| hostfw.network.default_iface.clone()),
    };
    let inbound = flow.direction == Direction::In;
    let nft = backend == Backend::Nftables;
    let (c_builtin, c_host, c_cluster) = match (backend, inbound) {
        (Backend::Iptables, true) => ("PVEFW-HOST-IN", "PVEFW-HOST-IN", "PVEFW-HOST-IN"),
        (Backend::Iptables, false) => ("PVEFW-HOST-OUT", "PVEFW-HOST-OUT", "PVEFW-HOST-OUT"),
        (Backend::Nftables, true) => ("default-in", "host-in", "cluster-in"),
        (Backend::Nftables, false) => ("default-out", "host-out", "cluster-out"),
    };

    if is_loopback(flow.source) {
        walk.step(c_builtin, "loopback", Outcome::Matched(Verdict::Accept));
        return builtin(walk, Verdict::Accept, Builtin::Loopback);
    }
    if nft && nft_icmp_error(flow) {
        walk.step(c_builtin, "allow-icmp", Outcome::Matched(Verdict::Accept));
        return builtin(walk, Verdict::Accept, Builtin::IcmpError);
    }

    let mgmt = |walk: &mut Walk, chain: &str| -> Option<DecidedBy> {
        let what = "management: tcp 8006,5900:5999,3128,22 from +management";
        if !flow.proto.same(&Protocol::TCP) {
            walk.step(
                chain,
                what,
                Outcome::NoMatch(format!("proto {} is not tcp", flow.proto)),
            );
            return None;
        }
        let Some(ports) = range_of(management_ports(backend), flow.dport) else {
            walk.step(
                chain,
                what,
                Outcome::NoMatch("not a management port".into()),
            );
            return None;
        };
        match ctx
            .ipset(Scope::Dc, "management")
            .map(|set| set_lookup(&set, flow.source, backend))
        {
            Ok(Some(entry)) => {
                walk.step(chain, what, Outcome::Matched(Verdict::Accept));
                Some(DecidedBy::ImplicitManagementAccept { ports, entry })
            }
            Ok(None) => {
                walk.step(
                    chain,
                    what,
                    Outcome::NoMatch(format!("{} not in +management", flow.source)),
                );
                None
            }
            Err(e) => {
                walk.step(chain, what, Outcome::Skipped(e));
                None
            }
        }
    };
    let corosync = |walk: &mut Walk, chain: &str, from_anyone: bool| -> bool {
        let what = if from_anyone {
            "corosync: udp 5405:5412"
        } else {
            "corosync: udp 5405:5412 from cluster peers"
        };
        let port_ok =
            flow.proto.same(&Protocol::UDP) && in_ranges(&[COROSYNC_PORTS], flow.dport).is_some();
        let peer_ok = from_anyone || cfg.corosync_peers.contains(&flow.source);
        if port_ok && peer_ok {
            walk.step(chain, what, Outcome::Matched(Verdict::Accept));
            true
        } else {
            let why = if port_ok {
                "not a cluster peer"
            } else {
                "not corosync"
            };
            walk.step(chain, what, Outcome::NoMatch(why.into()));
            false
        }
    };
    let blacklist = |walk: &mut Walk| -> Option<DecidedBy> {
        let set = ctx.ipset(Scope::Dc, "blacklist").ok()?;
        match set_lookup(&set, flow.source, backend) {
            Some(entry) => {
                walk.step(c_builtin, "+blacklist", Outcome::Matched(Verdict::Drop));
                Some(DecidedBy::Blacklist { entry })
            }
            None => {
                walk.step(
                    c_builtin,
                    "+blacklist",
                    Outcome::NoMatch(format!("{} not in +blacklist", flow.source)),
                );
                None
            }
        }
    };
    let igmp = |walk: &mut Walk| -> bool {
        let hit = flow.proto.same(&Protocol::IGMP);
        if hit {
            walk.step(c_builtin, "igmp", Outcome::Matched(Verdict::Accept));
        }
        hit
    };

    if inbound {
        if nft {
            // default-in: igmp, management, corosync and noise filters all
            // come before any user rule.
            if igmp(&mut walk) {
                return builtin(walk, Verdict::Accept, Builtin::Igmp);
            }
            if let Some(by) = mgmt(&mut walk, c_builtin) {
                return walk.done(Verdict::Accept, by);
            }
            if corosync(&mut walk, c_builtin, true) {
                return builtin(walk, Verdict::Accept, Builtin::Corosync);
            }
            if let Some((v, what)) = nft_noise(flow) {
                walk.step(c_builtin, format!("{what}"), Outcome::Matched(v));
                return builtin(walk, v, what);
            }
            if let Some(by) = blacklist(&mut walk) {
                return walk.done(Verdict::Drop, by);
            }
        } else {
            if let Some(by) = blacklist(&mut walk) {
                return walk.done(Verdict::Drop, by);
            }
            if igmp(&mut walk) {
                return builtin(walk, Verdict::Accept, Builtin::Igmp);
            }
        }
    }

    if let Some((v, by)) = walk.rules(&ctx, c_host, &node_level, &hostfw.rules, &facts) {
        return walk.done(v, by);
    }
    if let Some((v, by)) = walk.rules(&ctx, c_cluster, &Level::Cluster, &cfg.cluster.rules, &facts)
    {
        return walk.done(v, by);
    }

    if inbound {
        if !nft {
            if let Some(by) = mgmt(&mut walk, c_builtin) {
                return walk.done(Verdict::Accept, by);
            }
            if corosync(&mut walk, c_builtin, false) {
                return builtin(walk, Verdict::Accept, Builtin::Corosync);
            }
        }
        let policy = cfg.cluster.options.effective_policy_in();
        let applied = adjust(policy, &ctx, &facts);
        return policy_step(
            walk,
            c_cluster,
            format!("cluster policy_in {policy}"),
            Level::Cluster,
            policy,
            applied,
            flow,
            backend,
        );
    }

    // Outbound: automatic accept to local_network on management ports.
    let what = "management: tcp 8006,22,5900:5999,3128 to local_network";
    match range_of(LOCAL_OUT_PORTS, flow.dport).filter(|_| flow.proto.same(&Protocol::TCP)) {
        Some(ports)
            if ctx
                .local_network()
                .iter()
                .any(|iv| iv.contains(flow.source)) =>
        {
            walk.step(c_builtin, what, Outcome::Matched(Verdict::Accept));
            return walk.done(Verdict::Accept, DecidedBy::LocalNetworkOutAccept { ports });
        }
        _ => walk.step(
            c_builtin,
            what,
            Outcome::NoMatch("not management traffic to local_network".into()),
        ),
    }
    if corosync(&mut walk, c_builtin, false) {
        return builtin(walk, Verdict::Accept, Builtin::Corosync);
    }
    let policy = cfg.cluster.options.effective_policy_out();
    let applied = adjust(policy, &ctx, &facts);
    policy_step(
        walk,
        c_cluster,
        format!("cluster policy_out {policy}"),
        Level::Cluster,
        policy,
        applied,
        flow,
        backend,
    )
}

/// The final policy step. `applied` may differ from `policy` (nftables
/// turns a guest REJECT into DROP); iptables' policy chains still let
/// the ICMP errors path MTU discovery needs through.
#[allow(clippy::too_many_arguments)]
fn policy_step(
    mut walk: Walk,
    chain: &str,
    what: String,
    level: Level,
    policy: Verdict,
    applied: Verdict,
    flow: &Flow,
    backend: Backend,
) -> Decision {
    if applied != Verdict::Accept && backend == Backend::Iptables && ipt_policy_icmp(flow) {
        walk.step(
            chain,
            "PVEFW-Drop: accept fragmentation-needed/time-exceeded",
            Outcome::Matched(Verdict::Accept),
        );
        return builtin(walk, Verdict::Accept, Builtin::IcmpError);
    }
    if applied != policy {
        walk.step(
            chain,
            what,
            Outcome::Note(
                reject_becomes_drop(backend, flow)
                    .unwrap_or("REJECT becomes DROP")
                    .into(),
            ),
        );
        walk.step(chain, "policy", Outcome::Matched(applied));
    } else {
        walk.step(chain, what, Outcome::Matched(applied));
    }
    walk.done(applied, DecidedBy::Policy { level, policy })
}

fn guest(
    cfg: &FirewallConfig,
    flow: &Flow,
    backend: Backend,
    vmid: u32,
    mut walk: Walk,
) -> Decision {
    let level = Level::Vm(vmid);
    let Some(g) = cfg.vms.get(&vmid) else {
        walk.step(
            "-",
            format!("vm {vmid}"),
            Outcome::Note("no firewall config: enable defaults to 0".into()),
        );
        return walk.done(Verdict::Accept, DecidedBy::FirewallDisabled { level });
    };
    if !g.options.enable {
        walk.step(
            "-",
            format!("{vmid}.fw enable: 0"),
            Outcome::Matched(Verdict::Accept),
        );
        return walk.done(Verdict::Accept, DecidedBy::FirewallDisabled { level });
    }
    let nic_name = flow
        .iface
        .clone()
        .or_else(|| g.nics.keys().next().cloned())
        .unwrap_or_else(|| "net0".to_string());
    let nic = g.nics.get(&nic_name);
    match nic {
        Some(n) if !n.firewall => {
            walk.step(
                "-",
                format!("vm {vmid} {nic_name}"),
                Outcome::Matched(Verdict::Accept),
            );
            return walk.done(
                Verdict::Accept,
                DecidedBy::NicFirewallDisabled {
                    vmid,
                    iface: nic_name,
                },
            );
        }
        None if !g.nics.is_empty() => {
            walk.step(
                "-",
                format!("vm {vmid} {nic_name}"),
                Outcome::Note("NIC not in config; assuming firewall=1".into()),
            );
        }
        _ => {}
    }
    let single_node = || {
        if cfg.nodes.len() == 1 {
            cfg.nodes.keys().next().map(String::as_str)
        } else {
            None
        }
    };
    let node = g.node.as_deref().or_else(single_node);
    let ctx = Ctx {
        cfg,
        backend,
        node,
        guest: Some(g),
    };
    let facts = Facts {
        flow,
        local: flow
            .dest_addr
            .or_else(|| nic.and_then(|n| n.addrs.first().copied())),
        iface: Some(nic_name.clone()),
    };
    let inbound = flow.direction == Direction::In;
    let nft = backend == Backend::Nftables;
    let tap = nic_name.strip_prefix("net").unwrap_or(&nic_name);
    let chain = match (backend, inbound) {
        (Backend::Iptables, true) => format!("tap{vmid}i{tap}-IN"),
        (Backend::Iptables, false) => format!("tap{vmid}i{tap}-OUT"),
        (Backend::Nftables, true) => format!("guest-{vmid}-in"),
        (Backend::Nftables, false) => format!("guest-{vmid}-out"),
    };
    if nft && nft_icmp_error(flow) {
        walk.step(
            if inbound { "vm-in" } else { "vm-out" },
            "allow-icmp",
            Outcome::Matched(Verdict::Accept),
        );
        return builtin(walk, Verdict::Accept, Builtin::IcmpError);
    }
    if inbound && let Ok(set) = ctx.ipset(Scope::Dc, "blacklist") {
        match set_lookup(&set, flow.source, backend) {
            Some(entry) => {
                walk.step(&chain, "+blacklist", Outcome::Matched(Verdict::Drop));
                return walk.done(Verdict::Drop, DecidedBy::Blacklist { entry });
            }
            None => walk.step(
                &chain,
                "+blacklist",
                Outcome::NoMatch(format!("{} not in +blacklist", flow.source)),
            ),
        }
    }
    let (dport, sport) = if inbound {
        (DHCP_CLIENT, DHCP_SERVER)
    } else {
        (DHCP_SERVER, DHCP_CLIENT)
    };
    let is_dhcp = flow.proto.same(&Protocol::UDP)
        && flow.dport == Some(dport)
        && flow.sport.is_none_or(|s| s == sport);
    if is_dhcp && g.options.dhcp {
        walk.step(&chain, "dhcp: 1", Outcome::Matched(Verdict::Accept));
        return builtin(walk, Verdict::Accept, Builtin::Dhcp);
    }
    if is_dhcp && nft {
        walk.step(
            &chain,
            "dhcp: 0 (block-dhcp)",
            Outcome::Matched(Verdict::Drop),
        );
        return builtin(walk, Verdict::Drop, Builtin::DhcpBlocked);
    }
    if let Some((v, by)) = walk.rules(&ctx, &chain, &level, &g.rules, &facts) {
        return walk.done(v, by);
    }
    let policy = if inbound {
        g.options.effective_policy_in()
    } else {
        g.options.effective_policy_out()
    };
    let applied = adjust(policy, &ctx, &facts);
    let what = format!(
        "vm {vmid} policy_{} {policy}",
        if inbound { "in" } else { "out" }
    );
    policy_step(walk, &chain, what, level, policy, applied, flow, backend)
}

/// Every interval any address object in the config refers to, plus the
/// implicit ones (`local_network`, loopback). The range prover splits at
/// their boundaries.
pub(crate) fn all_intervals(cfg: &FirewallConfig) -> Vec<Interval> {
    let mut out = vec![
        loopback_v4(),
        Interval::single(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    let rule_addrs = |rules: &[Rule], out: &mut Vec<Interval>| {
        for r in rules {
            for a in [&r.source, &r.dest].into_iter().flatten() {
                match a {
                    AddressRef::List { entries } => {
                        out.extend(entries.iter().map(|e| e.interval()))
                    }
                    AddressRef::Range { start, end } => out.push(Interval::range(*start, *end)),
                    AddressRef::Alias { .. } | AddressRef::Ipset { .. } => {}
                }
            }
        }
    };
    let sets = |aliases: &std::collections::BTreeMap<String, Alias>,
                ipsets: &std::collections::BTreeMap<String, Ipset>,
                out: &mut Vec<Interval>| {
        out.extend(aliases.values().map(|a| a.cidr.interval()));
        for s in ipsets.values() {
            for e in &s.entries {
                if let IpsetTarget::Addr(a) = &e.target {
                    out.push(a.interval());
                }
            }
        }
    };
    rule_addrs(&cfg.cluster.rules, &mut out);
    for g in cfg.cluster.groups.values() {
        rule_addrs(&g.rules, &mut out);
    }
    sets(&cfg.cluster.aliases, &cfg.cluster.ipsets, &mut out);
    for h in cfg.nodes.values() {
        rule_addrs(&h.rules, &mut out);
        for a in &h.network.addrs {
            out.push(Interval::of_net(&a.trunc()));
            out.push(Interval::single(a.addr()));
        }
    }
    for g in cfg.vms.values() {
        rule_addrs(&g.rules, &mut out);
        sets(&g.aliases, &g.ipsets, &mut out);
        for n in g.nics.values() {
            out.extend(n.addrs.iter().map(|a| Interval::single(*a)));
        }
    }
    out.extend(cfg.corosync_peers.iter().map(|a| Interval::single(*a)));
    out
}

/// Every destination-port boundary the config and the built-in chains
/// can tell apart (each range contributes `lo` and `hi + 1`). Splitting a
/// port range at these makes port-range proofs exact too.
pub(crate) fn all_port_cuts(cfg: &FirewallConfig) -> Vec<u32> {
    let mut out = Vec::new();
    let mut ranges = |rs: &[(u16, u16)]| {
        for &(lo, hi) in rs {
            out.push(u32::from(lo));
            out.push(u32::from(hi) + 1);
        }
    };
    ranges(management_ports(Backend::Iptables));
    ranges(LOCAL_OUT_PORTS);
    // Every port constant the built-in chains test, so that no built-in
    // decision can change inside a class.
    ranges(&[
        COROSYNC_PORTS,
        UNPRIVILEGED,
        (UPNP, UPNP),
        (DHCP_SERVER, DHCP_SERVER),
        (DHCP_CLIENT, DHCP_CLIENT),
    ]);
    ranges(SMB_UDP);
    ranges(SMB_TCP);
    let mut rule_cuts = Vec::new();
    let mut add_rules = |rules: &[Rule]| {
        for r in rules {
            if let Some(d) = &r.dport {
                d.boundaries(&mut rule_cuts);
            }
            if let Some(m) = r.macro_def() {
                for e in m.entries.iter().chain(m.v6.unwrap_or(&[])) {
                    for &(lo, hi) in e.dport {
                        rule_cuts.push(u32::from(lo));
                        rule_cuts.push(u32::from(hi) + 1);
                    }
                }
            }
        }
    };
    add_rules(&cfg.cluster.rules);
    for g in cfg.cluster.groups.values() {
        add_rules(&g.rules);
    }
    for h in cfg.nodes.values() {
        add_rules(&h.rules);
    }
    for g in cfg.vms.values() {
        add_rules(&g.rules);
    }
    out.extend(rule_cuts);
    out
}

/// Source-port boundaries of every rule that tests `-sport` (directly or
/// through a macro); empty when no rule does.
pub(crate) fn all_sport_cuts(cfg: &FirewallConfig) -> Vec<u32> {
    let mut out = Vec::new();
    let mut add_rules = |rules: &[Rule]| {
        for r in rules {
            if let Some(sp) = &r.sport {
                sp.boundaries(&mut out);
            }
            if let Some(m) = r.macro_def() {
                for e in m.entries.iter().chain(m.v6.unwrap_or(&[])) {
                    for &(lo, hi) in e.sport {
                        out.push(u32::from(lo));
                        out.push(u32::from(hi) + 1);
                    }
                }
            }
        }
    };
    add_rules(&cfg.cluster.rules);
    for g in cfg.cluster.groups.values() {
        add_rules(&g.rules);
    }
    for h in cfg.nodes.values() {
        add_rules(&h.rules);
    }
    for g in cfg.vms.values() {
        add_rules(&g.rules);
    }
    out
}
