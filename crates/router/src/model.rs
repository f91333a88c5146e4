//! The router's rule model: what the router VM must do, independent of the software
//! that does it. Backends (nftables today, OPNsense later) render it 1:1, so every rule
//! keeps the spec path it came from and a comment a human can read on the router.

use std::net::IpAddr;

use labwright_spec::YamlPath;
use labwright_spec::types::Cidr;
use serde::Serialize;

/// Ports of the router's own management (SSH and the web GUI over HTTPS, OPNsense's
/// defaults). Reachable only from the admin CIDRs and, when Tailscale management is
/// expected, the Tailscale range.
pub const ROUTER_MANAGEMENT_PORTS: [u16; 2] = [22, 443];

/// Name of the router's Tailscale link when the router advertises subnet routes.
pub const TAILSCALE_IFACE: &str = "tailscale0";

/// The router's rule set at one phase.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSet {
    /// VM name of the router.
    pub router_vm: String,
    pub phase: u8,
    /// Links in spec order (router interface keys, sorted), then the Tailscale link.
    pub interfaces: Vec<Interface>,
    /// Hosts the rules name (the node and the VMs on the router's segments).
    pub hosts: Vec<Host>,
    /// Traffic to the router itself.
    pub input: Chain,
    /// Traffic through the router.
    pub forward: Chain,
    /// Source NAT on the way out.
    pub masquerade: Vec<Masquerade>,
    /// Declared flows the router never sees (both ends on one bridge): kept so the
    /// plan can say why no rule exists for them.
    pub unrouted: Vec<Unrouted>,
}

/// What a link of the router is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The upstream side (no address in the spec: DHCP from upstream), where outbound
    /// NAT happens and nothing new comes in unless a flow says so.
    Wan,
    /// An internal segment the router is the gateway of.
    Internal,
    /// The router's Tailscale link (it advertises subnet routes).
    Tailnet,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Link name on the router: the spec's interface key (`wan`, `services`), which
    /// backends map to a device (by MAC on the VM's NIC).
    pub name: String,
    pub role: Role,
    /// Segment this link sits on (none for the Tailscale link).
    pub segment: Option<String>,
    /// NIC slot on the router VM (`net1`).
    pub nic: Option<String>,
    /// The network behind this link.
    pub cidr: Cidr,
    /// The router's own address with its prefix (`10.10.10.1/24`); none when it comes
    /// from upstream DHCP.
    pub address: Option<Cidr>,
    /// The router serves DHCP (and DNS, which its leases name) here.
    pub dhcp: bool,
    pub origin: YamlPath,
}

/// A host the rules name, with where it sits.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    /// `node` or the VM's name.
    pub name: String,
    pub segment: String,
    /// Its fixed address, when the spec gives one. `None`: it takes a DHCP lease on
    /// its segment, so the rules that name it cover the whole segment.
    pub address: Option<IpAddr>,
    pub origin: YamlPath,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Accept,
    Drop,
    Reject,
}

/// Layer-4 protocol of a rule; `None` in a rule means any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum L4 {
    Tcp,
    Udp,
    Icmp,
}

/// Where a rule comes from: a spec value, or a rule every router gets.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Origin {
    Spec(YamlPath),
    Builtin(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Spec(p) => write!(f, "{p}"),
            Origin::Builtin(why) => f.write_str(why),
        }
    }
}

/// A set of addresses, possibly negated (`daddr != {…}`). Empty: any address.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddrSet {
    pub nets: Vec<Cidr>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

impl AddrSet {
    pub fn any() -> Self {
        AddrSet::default()
    }
    pub fn of(nets: Vec<Cidr>) -> Self {
        let mut nets = nets;
        nets.sort();
        nets.dedup();
        AddrSet {
            nets,
            negate: false,
        }
    }
    pub fn not_in(nets: Vec<Cidr>) -> Self {
        AddrSet {
            negate: true,
            ..AddrSet::of(nets)
        }
    }
    pub fn is_any(&self) -> bool {
        self.nets.is_empty()
    }
}

/// One ordered rule. Every matcher that is empty matches anything.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The matrix names the rule was compiled from (`iot`, `node`), for humans.
    pub from: String,
    pub to: String,
    /// Incoming links (any of).
    pub iif: Vec<String>,
    /// Outgoing links (any of).
    pub oif: Vec<String>,
    pub saddr: AddrSet,
    pub daddr: AddrSet,
    pub proto: Option<L4>,
    /// Inclusive destination port ranges.
    pub dports: Vec<(u16, u16)>,
    pub action: Action,
    pub comment: String,
    pub origin: Origin,
}

/// An ordered chain. Connections already accepted (established/related) always pass
/// first, and invalid packets are dropped, whatever the rules say.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Chain {
    pub rules: Vec<Rule>,
    /// What happens to traffic no rule matched: Accept or Drop; Reject is rendered as
    /// a final rule.
    pub policy: Action,
    pub policy_origin: Origin,
}

/// Source NAT to the address of `oif` for traffic from `saddr`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Masquerade {
    pub oif: String,
    pub saddr: AddrSet,
    pub comment: String,
    pub origin: Origin,
}

/// A declared flow with no router rule, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unrouted {
    pub from: String,
    pub to: String,
    pub origin: YamlPath,
    pub reason: String,
}

impl RuleSet {
    /// The link with this name.
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }
    /// The link on this segment.
    pub fn interface_on(&self, segment: &str) -> Option<&Interface> {
        self.interfaces
            .iter()
            .find(|i| i.segment.as_deref() == Some(segment))
    }
    /// The host with this name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
}
