//! Rule addresses (`pve-fw-addr-spec`): IPs, CIDRs, ranges, lists, alias
//! and ipset references, plus the integer intervals the evaluator and the
//! range prover work on.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::FirewallError;

/// PVE's limit on a whole `source`/`dest` value.
pub const MAX_ADDR_SPEC_LEN: usize = 512;
/// PVE's limit on alias names.
pub const MAX_ALIAS_NAME_LEN: usize = 64;
/// PVE's limit on ipset names.
pub const MAX_IPSET_NAME_LEN: usize = 64;
/// PVE's limit on security group names (behaviour.md §9.1).
pub const MAX_GROUP_NAME_LEN: usize = 18;

/// Where a name reference is looked up. PVE lets a rule pin the scope
/// (`dc/x`, `guest/x`, `sdn/x`); without a prefix a guest rule looks in
/// the guest first, then the datacenter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// No prefix: guest first (for guest rules), then datacenter.
    Auto,
    /// `dc/`: datacenter only.
    Dc,
    /// `guest/`: the VM's own objects only.
    Guest,
    /// `sdn/`: SDN-generated ipsets (not modelled; never matches).
    Sdn,
}

impl Scope {
    fn prefix(self) -> &'static str {
        match self {
            Scope::Auto => "",
            Scope::Dc => "dc/",
            Scope::Guest => "guest/",
            Scope::Sdn => "sdn/",
        }
    }

    fn split(s: &str, allow_sdn: bool) -> (Scope, &str) {
        if let Some(rest) = s.strip_prefix("dc/") {
            (Scope::Dc, rest)
        } else if let Some(rest) = s.strip_prefix("guest/") {
            (Scope::Guest, rest)
        } else if let Some(rest) = s.strip_prefix("sdn/").filter(|_| allow_sdn) {
            (Scope::Sdn, rest)
        } else {
            (Scope::Auto, s)
        }
    }
}

/// True when `name` matches PVE's `[A-Za-z][A-Za-z0-9\-\_]+`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    let mut rest = 0usize;
    for c in chars {
        if !(c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return false;
        }
        rest += 1;
    }
    rest >= 1
}

/// Check a name against the PVE pattern and a length limit.
pub(crate) fn check_name(kind: &'static str, name: &str, max: usize) -> Result<(), FirewallError> {
    if !is_valid_name(name) || name.len() > max {
        return Err(FirewallError::InvalidName {
            kind,
            name: name.to_string(),
        });
    }
    Ok(())
}

/// One element of an address list: a host address or a network.
///
/// Kept apart so that `10.0.0.1` prints back as written rather than as
/// `10.0.0.1/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AddrEntry {
    /// A single address.
    Ip(IpAddr),
    /// A network without host bits.
    Net(IpNet),
}

impl AddrEntry {
    /// The covered addresses as an interval.
    pub fn interval(&self) -> Interval {
        match self {
            AddrEntry::Ip(ip) => Interval::single(*ip),
            AddrEntry::Net(net) => Interval::of_net(net),
        }
    }

    /// Whether this is an IPv6 entry.
    pub fn is_v6(&self) -> bool {
        match self {
            AddrEntry::Ip(ip) => ip.is_ipv6(),
            AddrEntry::Net(net) => matches!(net, IpNet::V6(_)),
        }
    }

    /// Prefix length (32/128 for a single address); the iptables ipset
    /// lookup prefers the most specific entry.
    pub fn prefix_len(&self) -> u8 {
        match self {
            AddrEntry::Ip(IpAddr::V4(_)) => 32,
            AddrEntry::Ip(IpAddr::V6(_)) => 128,
            AddrEntry::Net(net) => net.prefix_len(),
        }
    }

    /// Parse an element of a rule address list: host bits are refused,
    /// as PVE's `pve-fw-addr-spec` does.
    pub fn parse_strict(s: &str) -> Result<Self, FirewallError> {
        if s.contains('/') {
            let net =
                IpNet::from_str(s).map_err(|_| FirewallError::InvalidAddress(s.to_string()))?;
            if net.trunc() != net {
                return Err(FirewallError::InvalidAddress(format!(
                    "invalid prefix in {s} (host bits set)"
                )));
            }
            Ok(AddrEntry::Net(net))
        } else {
            IpAddr::from_str(s)
                .map(AddrEntry::Ip)
                .map_err(|_| FirewallError::InvalidAddress(s.to_string()))
        }
    }

    /// Parse an `IPorCIDR` value (aliases, ipset entries): host bits are
    /// cleared, as PVE does for these.
    pub fn parse_lenient(s: &str) -> Result<Self, FirewallError> {
        if s.contains('/') {
            let net =
                IpNet::from_str(s).map_err(|_| FirewallError::InvalidAddress(s.to_string()))?;
            Ok(AddrEntry::Net(net.trunc()))
        } else {
            IpAddr::from_str(s)
                .map(AddrEntry::Ip)
                .map_err(|_| FirewallError::InvalidAddress(s.to_string()))
        }
    }
}

impl fmt::Display for AddrEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrEntry::Ip(ip) => write!(f, "{ip}"),
            AddrEntry::Net(net) => write!(f, "{net}"),
        }
    }
}

/// A rule `source` or `dest` value. Serialises as PVE writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddressRef {
    /// `+name`, `+dc/name`, `+guest/name`, `+sdn/name`.
    Ipset {
        /// Where to look the set up.
        scope: Scope,
        /// Set name.
        name: String,
    },
    /// `name`, `dc/name`, `guest/name`.
    Alias {
        /// Where to look the alias up.
        scope: Scope,
        /// Alias name.
        name: String,
    },
    /// One or more addresses/networks of a single family.
    List {
        /// The elements, in written order.
        entries: Vec<AddrEntry>,
    },
    /// `a-b`, inclusive; never part of a list.
    Range {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
}

impl AddressRef {
    /// Parse a `pve-fw-addr-spec` value, in PVE's order: ipset, alias,
    /// then address list.
    pub fn parse(s: &str) -> Result<Self, FirewallError> {
        if s.len() > MAX_ADDR_SPEC_LEN {
            return Err(FirewallError::AddressTooLong(s.len()));
        }
        if s.is_empty() {
            return Err(FirewallError::InvalidAddress(String::new()));
        }
        if let Some(rest) = s.strip_prefix('+') {
            if rest.is_empty() || rest.chars().any(char::is_whitespace) {
                return Err(FirewallError::InvalidAddress(s.to_string()));
            }
            if s.len() > MAX_IPSET_NAME_LEN + 1 {
                return Err(FirewallError::IpsetNameTooLong);
            }
            let (scope, name) = Scope::split(rest, true);
            check_name("ipset", name, MAX_IPSET_NAME_LEN)?;
            return Ok(AddressRef::Ipset {
                scope,
                name: name.to_string(),
            });
        }
        let (scope, name) = Scope::split(s, false);
        if is_valid_name(name) {
            if s.len() > MAX_ALIAS_NAME_LEN {
                return Err(FirewallError::AliasNameTooLong);
            }
            return Ok(AddressRef::Alias {
                scope,
                name: name.to_string(),
            });
        }
        let parts: Vec<&str> = s.split(',').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(FirewallError::ExtraneousCommas);
        }
        if parts.len() == 1 {
            if let Some((a, b)) = s.split_once('-') {
                let start = IpAddr::from_str(a)
                    .map_err(|_| FirewallError::InvalidAddress(s.to_string()))?;
                let end = IpAddr::from_str(b)
                    .map_err(|_| FirewallError::InvalidAddress(s.to_string()))?;
                if start.is_ipv4() != end.is_ipv4() {
                    return Err(FirewallError::MixedFamilies(s.to_string()));
                }
                if ip_to_u128(start) > ip_to_u128(end) {
                    return Err(FirewallError::InvalidAddress(format!(
                        "Begin address is greater than End address {a} - {b}"
                    )));
                }
                return Ok(AddressRef::Range { start, end });
            }
        } else if parts.iter().any(|p| p.contains('-')) {
            return Err(FirewallError::RangeInList);
        }
        let mut entries = Vec::with_capacity(parts.len());
        for p in parts {
            entries.push(AddrEntry::parse_strict(p)?);
        }
        if let Some(first) = entries.first() {
            let v6 = first.is_v6();
            if entries.iter().any(|e| e.is_v6() != v6) {
                return Err(FirewallError::MixedFamilies(s.to_string()));
            }
        }
        Ok(AddressRef::List { entries })
    }

    /// A list of one CIDR; handy for building configs in code.
    pub fn net(net: IpNet) -> Self {
        AddressRef::List {
            entries: vec![AddrEntry::Net(net.trunc())],
        }
    }
}

impl Serialize for AddressRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for AddressRef {
    type Err = FirewallError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for AddressRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressRef::Ipset { scope, name } => write!(f, "+{}{name}", scope.prefix()),
            AddressRef::Alias { scope, name } => write!(f, "{}{name}", scope.prefix()),
            AddressRef::Range { start, end } => write!(f, "{start}-{end}"),
            AddressRef::List { entries } => {
                for (i, e) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

/// Map an address into a 128-bit integer. IPv4 and IPv6 are kept apart
/// by [`Interval::v6`], not by the integer.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Inverse of [`ip_to_u128`]; IPv4 values above `u32::MAX` saturate.
pub fn u128_to_ip(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

/// An inclusive interval of addresses of one family. Every address
/// object reduces to intervals, which is what makes the range proof exact.
///
/// Serialises as text (`10.0.0.0/8`, `10.0.0.1-10.0.0.9`), since JSON has
/// no 128-bit integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    /// IPv6 when true.
    pub v6: bool,
    /// First address.
    pub lo: u128,
    /// Last address (inclusive).
    pub hi: u128,
}

impl Interval {
    /// One address.
    pub fn single(ip: IpAddr) -> Self {
        let n = ip_to_u128(ip);
        Interval {
            v6: ip.is_ipv6(),
            lo: n,
            hi: n,
        }
    }

    /// All addresses of a network (host bits ignored).
    pub fn of_net(net: &IpNet) -> Self {
        let t = net.trunc();
        Interval {
            v6: matches!(t, IpNet::V6(_)),
            lo: ip_to_u128(t.network()),
            hi: ip_to_u128(t.broadcast()),
        }
    }

    /// From two addresses of the same family (`start <= end` is assumed
    /// by callers; an inverted pair yields an interval that contains nothing).
    pub fn range(start: IpAddr, end: IpAddr) -> Self {
        Interval {
            v6: start.is_ipv6(),
            lo: ip_to_u128(start),
            hi: ip_to_u128(end),
        }
    }

    /// Whether `ip` lies inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let n = ip_to_u128(ip);
        ip.is_ipv6() == self.v6 && self.lo <= n && n <= self.hi
    }

    /// First address as an `IpAddr`.
    pub fn start(&self) -> IpAddr {
        u128_to_ip(self.v6, self.lo)
    }

    /// Last address as an `IpAddr`.
    pub fn end(&self) -> IpAddr {
        u128_to_ip(self.v6, self.hi)
    }
}

impl Interval {
    /// The prefix length when the interval is exactly one CIDR block.
    pub fn as_prefix(&self) -> Option<u8> {
        let bits: u32 = if self.v6 { 128 } else { 32 };
        let span = self.hi.checked_sub(self.lo)?.checked_add(1);
        let host_bits = match span {
            // The whole IPv6 space: 2^128 does not fit in a u128.
            None => 128,
            Some(n) if n.is_power_of_two() => n.trailing_zeros(),
            Some(_) => return None,
        };
        if host_bits > bits || (host_bits < 128 && self.lo & ((1u128 << host_bits) - 1) != 0) {
            return None;
        }
        u8::try_from(bits - host_bits).ok()
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Interval {
    /// A single address, a CIDR when the interval is one, else `a-b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_prefix() {
            Some(_) if self.lo == self.hi => write!(f, "{}", self.start()),
            Some(p) => write!(f, "{}/{p}", self.start()),
            None => write!(f, "{}-{}", self.start(), self.end()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references_and_lists() {
        assert_eq!(
            AddressRef::parse("+dc/management"),
            Ok(AddressRef::Ipset {
                scope: Scope::Dc,
                name: "management".into()
            })
        );
        assert_eq!(
            AddressRef::parse("admin_lan"),
            Ok(AddressRef::Alias {
                scope: Scope::Auto,
                name: "admin_lan".into()
            })
        );
        assert_eq!(
            AddressRef::parse("guest/web"),
            Ok(AddressRef::Alias {
                scope: Scope::Guest,
                name: "web".into()
            })
        );
        assert!(
            matches!(AddressRef::parse("10.0.0.0/8,192.168.1.1"), Ok(AddressRef::List { entries }) if entries.len() == 2)
        );
        assert!(matches!(
            AddressRef::parse("10.0.0.1-10.0.0.20"),
            Ok(AddressRef::Range { .. })
        ));
    }

    #[test]
    fn refuses_what_pve_refuses() {
        assert_eq!(
            AddressRef::parse("10.0.0.1,2001:db8::1"),
            Err(FirewallError::MixedFamilies("10.0.0.1,2001:db8::1".into()))
        );
        assert_eq!(
            AddressRef::parse("10.0.0.1-10.0.0.20,10.0.1.1"),
            Err(FirewallError::RangeInList)
        );
        assert!(matches!(
            AddressRef::parse("10.0.0.300"),
            Err(FirewallError::InvalidAddress(_))
        ));
        assert!(matches!(
            AddressRef::parse("10.0.0.5/24"),
            Err(FirewallError::InvalidAddress(_))
        ));
        assert_eq!(
            AddressRef::parse("10.0.0.1,"),
            Err(FirewallError::ExtraneousCommas)
        );
        assert!(matches!(
            AddressRef::parse("host.example.com"),
            Err(FirewallError::InvalidAddress(_))
        ));
        assert!(matches!(
            AddressRef::parse("10.0.0.20-10.0.0.1"),
            Err(FirewallError::InvalidAddress(_))
        ));
        assert!(matches!(
            AddressRef::parse("a"),
            Err(FirewallError::InvalidAddress(_))
        ));
        assert!(matches!(
            AddressRef::parse("+"),
            Err(FirewallError::InvalidAddress(_))
        ));
        assert_eq!(
            AddressRef::parse(&format!("+{}", "a".repeat(70))),
            Err(FirewallError::IpsetNameTooLong)
        );
        assert_eq!(
            AddressRef::parse(&"a".repeat(70)),
            Err(FirewallError::AliasNameTooLong)
        );
        assert!(matches!(
            AddressRef::parse(&"1".repeat(600)),
            Err(FirewallError::AddressTooLong(600))
        ));
    }

    #[test]
    fn prints_back_as_written() {
        for s in [
            "+dc/management",
            "+blacklist",
            "dc/admins",
            "10.0.0.1",
            "10.0.0.0/8,192.168.1.1",
            "10.0.0.1-10.0.0.9",
            "2001:db8::/32",
        ] {
            assert_eq!(
                AddressRef::parse(s).map(|a| a.to_string()),
                Ok(s.to_string())
            );
        }
    }

    #[test]
    fn intervals() {
        let net: IpNet = "192.168.1.0/24"
            .parse()
            .unwrap_or_else(|_| IpNet::from(IpAddr::from([0, 0, 0, 0])));
        let i = Interval::of_net(&net);
        assert!(i.contains(IpAddr::from([192, 168, 1, 255])));
        assert!(!i.contains(IpAddr::from([192, 168, 2, 0])));
        assert_eq!(i.to_string(), "192.168.1.0/24");
        let odd = Interval {
            v6: false,
            lo: i.lo + 1,
            hi: i.hi,
        };
        assert_eq!(odd.to_string(), "192.168.1.1-192.168.1.255");
        assert_eq!(
            Interval::single(IpAddr::from([10, 0, 0, 1])).to_string(),
            "10.0.0.1"
        );
        let all6 = Interval {
            v6: true,
            lo: 0,
            hi: u128::MAX,
        };
        assert_eq!(all6.to_string(), "::/0");
        let all4 = Interval {
            v6: false,
            lo: 0,
            hi: u128::from(u32::MAX),
        };
        assert_eq!(all4.to_string(), "0.0.0.0/0");
    }
}
