//! The firewall configuration of a whole PVE cluster: datacenter
//! (`cluster.fw`), nodes (`host.fw`) and guests (`<vmid>.fw`), plus the
//! little network knowledge the evaluator needs (node addresses for
//! `local_network`, guest NICs and their `firewall=` flag).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::addr::{AddrEntry, Scope};
use crate::error::FirewallError;
use crate::rule::{Rule, Verdict};

/// Everything the evaluator looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewallConfig {
    /// `cluster.fw`.
    pub cluster: ClusterFirewall,
    /// `host.fw` per node name.
    pub nodes: BTreeMap<String, HostFirewall>,
    /// `<vmid>.fw` per guest.
    pub vms: BTreeMap<u32, GuestFirewall>,
    /// Corosync ring addresses of the other cluster nodes (iptables only
    /// accepts corosync from these).
    pub corosync_peers: Vec<IpAddr>,
}

/// Datacenter level: options, rules applied to every node, and the
/// objects (aliases, ipsets, groups) every level may reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterFirewall {
    /// `[OPTIONS]`.
    pub options: ClusterOptions,
    /// `[RULES]`: evaluated for node traffic after the node's own rules.
    pub rules: Vec<Rule>,
    /// `[ALIASES]`, keyed by lower-case name (PVE aliases are case-insensitive).
    pub aliases: BTreeMap<String, Alias>,
    /// `[IPSET name]`.
    pub ipsets: BTreeMap<String, Ipset>,
    /// `[GROUP name]`: security groups.
    pub groups: BTreeMap<String, SecurityGroup>,
}

/// Datacenter `[OPTIONS]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterOptions {
    /// Master switch; PVE's default is off.
    pub enable: bool,
    /// Inbound policy for node traffic; `None` means PVE's default DROP.
    pub policy_in: Option<Verdict>,
    /// Outbound policy for node traffic; `None` means ACCEPT.
    pub policy_out: Option<Verdict>,
    /// Forward policy (nftables only); `None` means ACCEPT.
    pub policy_forward: Option<Verdict>,
    /// `ebtables` (default on); kept for round-trips, not evaluated.
    pub ebtables: Option<bool>,
    /// Anything else, kept verbatim so files print back unchanged.
    pub extra: BTreeMap<String, String>,
}

impl ClusterOptions {
    /// Inbound policy with PVE's default applied.
    pub fn effective_policy_in(&self) -> Verdict {
        self.policy_in.unwrap_or(Verdict::Drop)
    }
    /// Outbound policy with PVE's default applied.
    pub fn effective_policy_out(&self) -> Verdict {
        self.policy_out.unwrap_or(Verdict::Accept)
    }
}

/// A node: `host.fw` plus the addresses that define `local_network`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostFirewall {
    /// `[OPTIONS]`.
    pub options: HostOptions,
    /// `[RULES]`: evaluated before the datacenter rules.
    pub rules: Vec<Rule>,
    /// Addresses and interfaces of the node.
    pub network: NodeNetwork,
}

/// Node `[OPTIONS]` (no policy: nodes use the datacenter's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostOptions {
    /// Node switch; PVE's default is on (the datacenter switch still rules).
    pub enable: bool,
    /// `nftables: 1` selects the `proxmox-firewall` backend for this node.
    pub nftables: bool,
    /// Anything else, verbatim.
    pub extra: BTreeMap<String, String>,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            enable: true,
            nftables: false,
            extra: BTreeMap::new(),
        }
    }
}

/// What the evaluator needs to know of a node's network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeNetwork {
    /// Interface addresses with their prefix (`192.168.1.10/24`). The first
    /// is the one the node's hostname resolves to: iptables derives the
    /// automatic `local_network` from it alone; nftables uses them all.
    pub addrs: Vec<IpNet>,
    /// Interface a flow arrives on when the flow does not say (`vmbr0`).
    pub default_iface: Option<String>,
}

/// A guest: `<vmid>.fw` plus its NICs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GuestFirewall {
    /// Node the guest runs on (for `local_network` inside `+management`).
    pub node: Option<String>,
    /// `[OPTIONS]`.
    pub options: GuestOptions,
    /// `[RULES]`: the only rules applied to the guest's traffic.
    pub rules: Vec<Rule>,
    /// `[ALIASES]`, keyed by lower-case name.
    pub aliases: BTreeMap<String, Alias>,
    /// `[IPSET name]`.
    pub ipsets: BTreeMap<String, Ipset>,
    /// NICs by name (`net0`). Empty means unknown: treated as one `net0`
    /// with `firewall=1`, the state labwright gives NICs it manages.
    pub nics: BTreeMap<String, GuestNic>,
}

/// One guest NIC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GuestNic {
    /// `firewall=1` in the `netN` string: without it nothing filters the NIC.
    pub firewall: bool,
    /// Addresses of the guest on this NIC (for `-dest` matches).
    pub addrs: Vec<IpAddr>,
}

/// Guest `[OPTIONS]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GuestOptions {
    /// Guest switch; PVE's default is off.
    pub enable: bool,
    /// `None` means DROP.
    pub policy_in: Option<Verdict>,
    /// `None` means ACCEPT.
    pub policy_out: Option<Verdict>,
    /// `dhcp: 1` lets DHCP replies in before the rules.
    pub dhcp: bool,
    /// Anything else, verbatim.
    pub extra: BTreeMap<String, String>,
}

impl GuestOptions {
    /// Inbound policy with PVE's default applied.
    pub fn effective_policy_in(&self) -> Verdict {
        self.policy_in.unwrap_or(Verdict::Drop)
    }
    /// Outbound policy with PVE's default applied.
    pub fn effective_policy_out(&self) -> Verdict {
        self.policy_out.unwrap_or(Verdict::Accept)
    }
}

/// An `[ALIASES]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alias {
    /// Name as written.
    pub name: String,
    /// The address (host bits cleared, as PVE's `IPorCIDR` does).
    pub cidr: AddrEntry,
    /// Comment.
    pub comment: Option<String>,
}

/// An `[IPSET name]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ipset {
    /// Comment on the section header.
    pub comment: Option<String>,
    /// Entries in written order.
    pub entries: Vec<IpsetEntry>,
}

/// What an ipset entry names: an address or an alias.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum IpsetTarget {
    /// IP or CIDR.
    Addr(AddrEntry),
    /// `name`, `dc/name`, `guest/name`.
    Alias {
        /// Lookup scope.
        scope: Scope,
        /// Alias name.
        name: String,
    },
}

impl fmt::Display for IpsetTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpsetTarget::Addr(a) => write!(f, "{a}"),
            IpsetTarget::Alias {
                scope: Scope::Dc,
                name,
            } => write!(f, "dc/{name}"),
            IpsetTarget::Alias {
                scope: Scope::Guest,
                name,
            } => write!(f, "guest/{name}"),
            IpsetTarget::Alias { name, .. } => f.write_str(name),
        }
    }
}

/// One ipset entry; `nomatch` (`!` in the file) excludes addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpsetEntry {
    /// The address or alias.
    pub target: IpsetTarget,
    /// Excluding entry.
    pub nomatch: bool,
    /// Comment.
    pub comment: Option<String>,
}

impl IpsetEntry {
    /// Parse `[!]cidr-or-alias` (PVE's `IPorCIDRorAlias`, host bits cleared).
    pub fn parse(s: &str) -> Result<Self, FirewallError> {
        let s = s.trim();
        let (nomatch, body) = match s.strip_prefix('!') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, s),
        };
        let (scope, name) = if let Some(n) = body.strip_prefix("dc/") {
            (Scope::Dc, n)
        } else if let Some(n) = body.strip_prefix("guest/") {
            (Scope::Guest, n)
        } else {
            (Scope::Auto, body)
        };
        let target = if crate::addr::is_valid_name(name) {
            IpsetTarget::Alias {
                scope,
                name: name.to_string(),
            }
        } else {
            IpsetTarget::Addr(AddrEntry::parse_lenient(body)?)
        };
        Ok(IpsetEntry {
            target,
            nomatch,
            comment: None,
        })
    }

    /// An including entry for a network.
    pub fn net(net: IpNet) -> Self {
        IpsetEntry {
            target: IpsetTarget::Addr(AddrEntry::Net(net.trunc())),
            nomatch: false,
            comment: None,
        }
    }
}

impl fmt::Display for IpsetEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nomatch {
            f.write_str("!")?;
        }
        write!(f, "{}", self.target)
    }
}

/// A `[GROUP name]` security group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecurityGroup {
    /// Comment on the section header.
    pub comment: Option<String>,
    /// Rules (in/out/forward, never group).
    pub rules: Vec<Rule>,
}

impl Alias {
    /// Build an alias from a name and an `IPorCIDR` value.
    pub fn new(name: &str, cidr: &str) -> Result<Self, FirewallError> {
        crate::addr::check_name("alias", name, crate::addr::MAX_ALIAS_NAME_LEN)?;
        Ok(Alias {
            name: name.to_string(),
            cidr: AddrEntry::parse_lenient(cidr)?,
            comment: None,
        })
    }
}

impl ClusterFirewall {
    /// Add or replace an alias (keyed case-insensitively).
    pub fn add_alias(&mut self, alias: Alias) {
        self.aliases.insert(alias.name.to_ascii_lowercase(), alias);
    }
}

impl GuestFirewall {
    /// Add or replace an alias (keyed case-insensitively).
    pub fn add_alias(&mut self, alias: Alias) {
        self.aliases.insert(alias.name.to_ascii_lowercase(), alias);
    }
}
