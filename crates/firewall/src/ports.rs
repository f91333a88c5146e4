//! Port lists (`pve-fw-dport-spec` / `pve-fw-sport-spec`): `22`,
//! `1000:2000`, `80,443`, service names (`ssh`), and for `dport` ICMP
//! type names (`echo-request`).

use std::fmt;

use serde::{Serialize, Serializer};

use crate::error::FirewallError;
use crate::services::SERVICES;

/// ICMP type names iptables knows (formats.md §7.4).
pub const ICMP_TYPES: &[&str] = &[
    "any",
    "echo-reply",
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
    "redirect",
    "network-redirect",
    "host-redirect",
    "TOS-network-redirect",
    "TOS-host-redirect",
    "echo-request",
    "router-advertisement",
    "router-solicitation",
    "time-exceeded",
    "ttl-zero-during-transit",
    "ttl-zero-during-reassembly",
    "parameter-problem",
    "ip-header-bad",
    "required-option-missing",
    "timestamp-request",
    "timestamp-reply",
    "address-mask-request",
    "address-mask-reply",
];

/// ICMPv6 type names ip6tables knows (formats.md §7.4).
pub const ICMPV6_TYPES: &[&str] = &[
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
    "echo-request",
    "echo-reply",
    "router-solicitation",
    "router-advertisement",
    "neighbor-solicitation",
    "neighbour-solicitation",
    "neighbor-advertisement",
    "neighbour-advertisement",
    "redirect",
];

/// Whether `name` is an ICMP or ICMPv6 type name.
pub fn is_icmp_type(name: &str) -> bool {
    ICMP_TYPES.contains(&name) || ICMPV6_TYPES.contains(&name)
}

/// Port of a service name from `/etc/services`.
pub fn service_port(name: &str) -> Option<u16> {
    SERVICES
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .and_then(|i| SERVICES.get(i))
        .map(|(_, p)| *p)
}

/// One element of a port list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortItem {
    /// A single port.
    Port(u16),
    /// `lo:hi`, inclusive.
    Range(u16, u16),
    /// A service name and the port it stands for.
    Service(String, u16),
    /// An ICMP type name (dport of icmp rules only).
    Icmp(String),
}

impl PortItem {
    fn contains(&self, port: u16) -> bool {
        match self {
            PortItem::Port(p) | PortItem::Service(_, p) => *p == port,
            PortItem::Range(lo, hi) => *lo <= port && port <= *hi,
            PortItem::Icmp(_) => false,
        }
    }
}

impl fmt::Display for PortItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortItem::Port(p) => write!(f, "{p}"),
            PortItem::Range(lo, hi) => write!(f, "{lo}:{hi}"),
            PortItem::Service(name, _) | PortItem::Icmp(name) => f.write_str(name),
        }
    }
}

/// A parsed port list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortSpec {
    items: Vec<PortItem>,
}

/// Whether a port list is for `dport` (which may hold ICMP names) or `sport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortField {
    /// Destination port.
    Dport,
    /// Source port.
    Sport,
}

fn parse_number(s: &str) -> Result<u16, FirewallError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FirewallError::InvalidPort(s.to_string()));
    }
    s.parse::<u16>()
        .map_err(|_| FirewallError::InvalidPort(s.to_string()))
}

impl PortSpec {
    /// Parse a port list with PVE's rules: comma list, `N:M` ranges,
    /// service names, at most 15 "numbers" (a range counts 2, names 0).
    pub fn parse(s: &str, field: PortField) -> Result<Self, FirewallError> {
        let mut items = Vec::new();
        let mut count = 0usize;
        let mut icmp = false;
        let mut numeric = false;
        for part in s.split(',') {
            if part.is_empty() {
                return Err(FirewallError::ExtraneousCommas);
            }
            if let Some((a, b)) = part.split_once(':') {
                if a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()) {
                    let lo = parse_number(a)?;
                    let hi = parse_number(b)?;
                    if lo > hi {
                        return Err(FirewallError::BackwardsRange { lo, hi });
                    }
                    items.push(PortItem::Range(lo, hi));
                    count += 2;
                    numeric = true;
                    continue;
                }
                return Err(FirewallError::InvalidPort(part.to_string()));
            }
            if part.bytes().all(|c| c.is_ascii_digit()) {
                items.push(PortItem::Port(parse_number(part)?));
                count += 1;
                numeric = true;
            } else if let Some(port) = service_port(part) {
                items.push(PortItem::Service(part.to_string(), port));
            } else if field == PortField::Dport && is_icmp_type(part) {
                items.push(PortItem::Icmp(part.to_string()));
                icmp = true;
            } else {
                return Err(FirewallError::InvalidPort(part.to_string()));
            }
        }
        if count > 15 {
            return Err(FirewallError::TooManyPorts);
        }
        if icmp && (numeric || items.len() > 1) {
            return Err(FirewallError::IcmpInPortList);
        }
        Ok(PortSpec { items })
    }

    /// Parse a port list as proxmox-firewall does: numbers and service
    /// names, `lo:hi` ranges of either, any number of entries.
    pub fn parse_nft(s: &str) -> Result<Self, FirewallError> {
        if s.trim().is_empty() {
            return Err(FirewallError::ExtraneousCommas);
        }
        let one = |p: &str| -> Result<u16, FirewallError> {
            let p = p.trim();
            if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                return parse_number(p);
            }
            service_port(p).ok_or_else(|| FirewallError::InvalidPort(p.to_string()))
        };
        let mut items = Vec::new();
        for part in s.trim().split(',') {
            match part.split_once(':') {
                None => items.push(PortItem::Port(one(part)?)),
                Some((a, b)) => {
                    let (lo, hi) = (one(a)?, one(b)?);
                    if lo > hi {
                        return Err(FirewallError::BackwardsRange { lo, hi });
                    }
                    items.push(PortItem::Range(lo, hi));
                }
            }
        }
        Ok(PortSpec { items })
    }

    /// Ranges given as numbers (used for macros and built-in rules).
    pub fn from_ranges(ranges: &[(u16, u16)]) -> Self {
        PortSpec {
            items: ranges
                .iter()
                .map(|&(lo, hi)| {
                    if lo == hi {
                        PortItem::Port(lo)
                    } else {
                        PortItem::Range(lo, hi)
                    }
                })
                .collect(),
        }
    }

    /// The elements in written order.
    pub fn items(&self) -> &[PortItem] {
        &self.items
    }

    /// Whether a numeric port is in the list.
    pub fn contains(&self, port: u16) -> bool {
        self.items.iter().any(|i| i.contains(port))
    }

    /// The ICMP type this list names, if it is an ICMP "port".
    pub fn icmp_type(&self) -> Option<&str> {
        self.items.iter().find_map(|i| match i {
            PortItem::Icmp(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Whether the list holds ICMP type names rather than ports.
    pub fn is_icmp(&self) -> bool {
        self.icmp_type().is_some()
    }

    /// Boundaries where membership changes: every `lo` and `hi + 1`.
    /// The range prover uses them to split port ranges.
    pub fn boundaries(&self, out: &mut Vec<u32>) {
        for i in &self.items {
            match i {
                PortItem::Port(p) | PortItem::Service(_, p) => {
                    out.push(u32::from(*p));
                    out.push(u32::from(*p) + 1);
                }
                PortItem::Range(lo, hi) => {
                    out.push(u32::from(*lo));
                    out.push(u32::from(*hi) + 1);
                }
                PortItem::Icmp(_) => {}
            }
        }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

impl Serialize for PortSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Result<PortSpec, FirewallError> {
        PortSpec::parse(s, PortField::Dport)
    }

    #[test]
    fn single_range_list_and_names() {
        let p = d("22,80:90,https").unwrap_or_else(|_| PortSpec { items: vec![] });
        assert!(p.contains(22));
        assert!(p.contains(80) && p.contains(85) && p.contains(90));
        assert!(!p.contains(91) && !p.contains(79));
        assert!(p.contains(443));
        assert_eq!(p.to_string(), "22,80:90,https");
        assert!(d("1024:65535").is_ok_and(|p| p.contains(65535) && !p.contains(1023)));
        assert!(d("0").is_ok_and(|p| p.contains(0)));
        assert!(d("ssh").is_ok_and(|p| p.contains(22)));
        assert!(d("domain").is_ok_and(|p| p.contains(53)));
    }

    #[test]
    fn refusals() {
        assert_eq!(d("70000"), Err(FirewallError::InvalidPort("70000".into())));
        assert_eq!(
            d("90:80"),
            Err(FirewallError::BackwardsRange { lo: 90, hi: 80 })
        );
        assert_eq!(
            FirewallError::BackwardsRange { lo: 90, hi: 80 }.to_string(),
            "backwards range '90:80' not allowed, did you mean '80:90'?"
        );
        let sixteen = (1..=16)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(d(&sixteen), Err(FirewallError::TooManyPorts));
        let eight_ranges = (1..=8)
            .map(|p| format!("{p}:{}", p + 100))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(d(&eight_ranges), Err(FirewallError::TooManyPorts));
        assert!(
            d(&(1..=15)
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","))
            .is_ok()
        );
        assert_eq!(
            d("nosuchservice"),
            Err(FirewallError::InvalidPort("nosuchservice".into()))
        );
        assert_eq!(d("22-80"), Err(FirewallError::InvalidPort("22-80".into())));
        assert_eq!(
            PortSpec::parse("echo-request", PortField::Sport),
            Err(FirewallError::InvalidPort("echo-request".into()))
        );
        assert_eq!(d("22,echo-request"), Err(FirewallError::IcmpInPortList));
        assert_eq!(d("22,,80"), Err(FirewallError::ExtraneousCommas));
        assert_eq!(d(""), Err(FirewallError::ExtraneousCommas));
        assert!(d("ssh:http").is_err());
        assert!(d("99999999999999999999").is_err());
    }

    #[test]
    fn icmp_names() {
        assert!(d("echo-request").is_ok_and(|p| p.icmp_type() == Some("echo-request")));
        assert!(service_port("ssh") == Some(22) && service_port("www").is_none());
    }
}
