//! IP protocols (`pve-fw-protocol-spec`): names from `/etc/protocols` or
//! numbers.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::error::FirewallError;

/// An IP protocol. Remembers whether it was written as a number so that a
/// rule prints back the way it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Protocol {
    number: u8,
    numeric: bool,
}

/// Names PVE accepts (Debian's `/etc/protocols` first column, plus
/// `icmpv6`). The first name for a number is the one we print.
const PROTOCOLS: &[(&str, u8)] = &[
    ("ip", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ggp", 3),
    ("ipencap", 4),
    ("st", 5),
    ("tcp", 6),
    ("egp", 8),
    ("igp", 9),
    ("pup", 12),
    ("udp", 17),
    ("hmp", 20),
    ("xns-idp", 22),
    ("rdp", 27),
    ("iso-tp4", 29),
    ("dccp", 33),
    ("xtp", 36),
    ("ddp", 37),
    ("idpr-cmtp", 38),
    ("ipv6", 41),
    ("ipv6-route", 43),
    ("ipv6-frag", 44),
    ("idrp", 45),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("skip", 57),
    ("icmpv6", 58),
    ("ipv6-icmp", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("rspf", 73),
    ("vmtp", 81),
    ("eigrp", 88),
    ("ospf", 89),
    ("ax.25", 93),
    ("ipip", 94),
    ("etherip", 97),
    ("encap", 98),
    ("pim", 103),
    ("ipcomp", 108),
    ("vrrp", 112),
    ("l2tp", 115),
    ("isis", 124),
    ("sctp", 132),
    ("fc", 133),
    ("mobility-header", 135),
    ("udplite", 136),
    ("mpls-in-ip", 137),
    ("manet", 138),
    ("hip", 139),
    ("shim6", 140),
    ("wesp", 141),
    ("rohc", 142),
    ("ethernet", 143),
];

impl Protocol {
    /// TCP (6).
    pub const TCP: Protocol = Protocol {
        number: 6,
        numeric: false,
    };
    /// UDP (17).
    pub const UDP: Protocol = Protocol {
        number: 17,
        numeric: false,
    };
    /// ICMP (1).
    pub const ICMP: Protocol = Protocol {
        number: 1,
        numeric: false,
    };
    /// ICMPv6 (58).
    pub const ICMPV6: Protocol = Protocol {
        number: 58,
        numeric: false,
    };
    /// IGMP (2); the host chain accepts it before user rules.
    pub const IGMP: Protocol = Protocol {
        number: 2,
        numeric: false,
    };
    /// GRE (47).
    pub const GRE: Protocol = Protocol {
        number: 47,
        numeric: false,
    };

    /// Protocol by number, printed by name when it has one.
    pub fn from_number(number: u8) -> Self {
        Protocol {
            number,
            numeric: Self::name_of(number).is_none(),
        }
    }

    /// Parse a name (case-sensitive, as PVE) or a number 0..=255.
    pub fn parse(s: &str) -> Result<Self, FirewallError> {
        if let Some((_, n)) = PROTOCOLS.iter().find(|(name, _)| *name == s) {
            return Ok(Protocol {
                number: *n,
                numeric: false,
            });
        }
        if !s.is_empty()
            && s.len() <= 3
            && s.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = s.parse::<u8>()
        {
            return Ok(Protocol {
                number: n,
                numeric: true,
            });
        }
        Err(FirewallError::UnknownProtocol(s.to_string()))
    }

    /// The IANA protocol number.
    pub fn number(&self) -> u8 {
        self.number
    }

    /// Whether rules may carry `dport`/`sport` for this protocol.
    pub fn has_ports(&self) -> bool {
        matches!(self.number, 6 | 17 | 33 | 132 | 136)
    }

    /// ICMP or ICMPv6, whose "ports" are ICMP type names.
    pub fn is_icmp(&self) -> bool {
        matches!(self.number, 1 | 58)
    }

    /// Same protocol regardless of spelling.
    pub fn same(&self, other: &Protocol) -> bool {
        self.number == other.number
    }

    fn name_of(number: u8) -> Option<&'static str> {
        PROTOCOLS
            .iter()
            .find(|(_, n)| *n == number)
            .map(|(name, _)| *name)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Self::name_of(self.number) {
            Some(name) if !self.numeric => f.write_str(name),
            _ => write!(f, "{}", self.number),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(Protocol::parse("tcp"), Ok(Protocol::TCP));
        assert_eq!(Protocol::parse("17").map(|p| p.number()), Ok(17));
        assert_eq!(
            Protocol::parse("17").map(|p| p.to_string()),
            Ok("17".to_string())
        );
        assert!(Protocol::parse("ipv6-icmp").is_ok_and(|p| p.same(&Protocol::ICMPV6)));
        assert_eq!(
            Protocol::parse("TCP"),
            Err(FirewallError::UnknownProtocol("TCP".into()))
        );
        assert!(Protocol::parse("256").is_err());
        assert!(Protocol::parse("foo").is_err());
        assert!(Protocol::UDP.has_ports());
        assert!(!Protocol::ICMP.has_ports());
    }
}
