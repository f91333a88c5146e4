//! PVE's predefined firewall macros (`GET /cluster/firewall/macros`).
//!
//! A macro rule such as `IN SSH(ACCEPT)` expands into one match per
//! entry; the rule's own source, dest and iface still apply. The table
//! holds the facts (protocol and ports) of PVE's macro list.

/// One protocol/port match of a macro.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacroEntry {
    /// IP protocol number.
    pub proto: u8,
    /// Destination port ranges; empty means any port.
    pub dport: &'static [(u16, u16)],
    /// Source port ranges; empty means any port.
    pub sport: &'static [(u16, u16)],
    /// ICMP type for ICMP entries (`Ping`).
    pub icmp_type: Option<&'static str>,
}

/// A named macro.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Macro {
    /// Preferred spelling, as PVE writes it back.
    pub name: &'static str,
    /// PVE's description.
    pub description: &'static str,
    /// Matches for IPv4 traffic (and IPv6 unless `v6` is set).
    pub entries: &'static [MacroEntry],
    /// IPv6 replacement (Ping and Trcrt use ICMPv6 there).
    pub v6: Option<&'static [MacroEntry]>,
}

impl Macro {
    /// The entries that apply to a flow of the given family.
    pub fn entries_for(&self, v6: bool) -> &'static [MacroEntry] {
        match self.v6 {
            Some(e) if v6 => e,
            _ => self.entries,
        }
    }
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

const fn t(dport: &'static [(u16, u16)]) -> MacroEntry {
    MacroEntry {
        proto: TCP,
        dport,
        sport: &[],
        icmp_type: None,
    }
}
const fn u(dport: &'static [(u16, u16)]) -> MacroEntry {
    MacroEntry {
        proto: UDP,
        dport,
        sport: &[],
        icmp_type: None,
    }
}
const fn p(proto: u8) -> MacroEntry {
    MacroEntry {
        proto,
        dport: &[],
        sport: &[],
        icmp_type: None,
    }
}
const fn us(dport: &'static [(u16, u16)], sport: &'static [(u16, u16)]) -> MacroEntry {
    MacroEntry {
        proto: UDP,
        dport,
        sport,
        icmp_type: None,
    }
}
const fn icmp(proto: u8, ty: &'static str) -> MacroEntry {
    MacroEntry {
        proto,
        dport: &[],
        sport: &[],
        icmp_type: Some(ty),
    }
}

const fn m(name: &'static str, description: &'static str, entries: &'static [MacroEntry]) -> Macro {
    Macro {
        name,
        description,
        entries,
        v6: None,
    }
}

/// All macros, sorted case-insensitively by name.
pub const MACROS: &[Macro] = &[
    m(
        "Amanda",
        "Amanda Backup",
        &[u(&[(10080, 10080)]), t(&[(10080, 10080)])],
    ),
    m("Auth", "Auth (identd) traffic", &[t(&[(113, 113)])]),
    m(
        "BGP",
        "Border Gateway Protocol traffic",
        &[t(&[(179, 179)])],
    ),
    m(
        "BitTorrent",
        "BitTorrent traffic for BitTorrent 3.1 and earlier",
        &[t(&[(6881, 6889)]), u(&[(6881, 6881)])],
    ),
    m(
        "BitTorrent32",
        "BitTorrent traffic for BitTorrent 3.2 and later",
        &[t(&[(6881, 6999)]), u(&[(6881, 6881)])],
    ),
    m(
        "Ceph",
        "Ceph Storage Cluster traffic (Ceph Monitors, OSD & MDS Daemons)",
        &[t(&[(6789, 6789)]), t(&[(3300, 3300)]), t(&[(6800, 7300)])],
    ),
    m(
        "Citrix",
        "Citrix/ICA traffic (ICA, ICA Browser, CGP)",
        &[t(&[(1494, 1494)]), u(&[(1604, 1604)]), t(&[(2598, 2598)])],
    ),
    m(
        "CVS",
        "Concurrent Versions System pserver traffic",
        &[t(&[(2401, 2401)])],
    ),
    m(
        "DAAP",
        "Digital Audio Access Protocol traffic (iTunes, Rythmbox daemons)",
        &[t(&[(3689, 3689)]), u(&[(3689, 3689)])],
    ),
    m(
        "DCC",
        "Distributed Checksum Clearinghouse spam filtering mechanism",
        &[t(&[(6277, 6277)])],
    ),
    m(
        "DHCPfwd",
        "Forwarded DHCP traffic",
        &[us(&[(67, 68)], &[(67, 68)])],
    ),
    Macro {
        name: "DHCPv6",
        description: "DHCPv6 traffic",
        entries: &[us(&[(546, 547)], &[(546, 547)])],
        v6: Some(&[us(&[(546, 547)], &[(546, 547)])]),
    },
    m(
        "Distcc",
        "Distributed Compiler service",
        &[t(&[(3632, 3632)])],
    ),
    m(
        "DNS",
        "Domain Name System traffic (upd and tcp)",
        &[u(&[(53, 53)]), t(&[(53, 53)])],
    ),
    m("Finger", "Finger protocol (RFC 742)", &[t(&[(79, 79)])]),
    m("FTP", "File Transfer Protocol", &[t(&[(21, 21)])]),
    m(
        "Git",
        "Git distributed revision control traffic",
        &[t(&[(9418, 9418)])],
    ),
    m(
        "GNUnet",
        "GNUnet secure peer-to-peer networking traffic",
        &[
            t(&[(2086, 2086)]),
            u(&[(2086, 2086)]),
            t(&[(1080, 1080)]),
            u(&[(1080, 1080)]),
        ],
    ),
    m(
        "GRE",
        "Generic Routing Encapsulation tunneling protocol",
        &[p(47)],
    ),
    m(
        "HKP",
        "OpenPGP HTTP key server protocol traffic",
        &[t(&[(11371, 11371)])],
    ),
    m(
        "HTTP",
        "Hypertext Transfer Protocol (WWW)",
        &[t(&[(80, 80)])],
    ),
    m(
        "HTTPS",
        "Hypertext Transfer Protocol (WWW) over SSL",
        &[t(&[(443, 443)])],
    ),
    m(
        "ICPV2",
        "Internet Cache Protocol V2 (Squid) traffic",
        &[u(&[(3130, 3130)])],
    ),
    m(
        "ICQ",
        "AOL Instant Messenger traffic",
        &[t(&[(5190, 5190)])],
    ),
    m(
        "IMAP",
        "Internet Message Access Protocol",
        &[t(&[(143, 143)])],
    ),
    m(
        "IMAPS",
        "Internet Message Access Protocol over SSL",
        &[t(&[(993, 993)])],
    ),
    m("IPIP", "IPIP capsulation traffic", &[p(94)]),
    m(
        "IPsec",
        "IPsec traffic",
        &[us(&[(500, 500)], &[(500, 500)]), p(50)],
    ),
    m(
        "IPsecah",
        "IPsec authentication (AH) traffic",
        &[us(&[(500, 500)], &[(500, 500)]), p(51)],
    ),
    m(
        "IPsecnat",
        "IPsec traffic and Nat-Traversal",
        &[u(&[(500, 500)]), u(&[(4500, 4500)]), p(50)],
    ),
    m("IRC", "Internet Relay Chat traffic", &[t(&[(6667, 6667)])]),
    m("Jetdirect", "HP Jetdirect printing", &[t(&[(9100, 9100)])]),
    m(
        "L2TP",
        "Layer 2 Tunneling Protocol traffic",
        &[u(&[(1701, 1701)])],
    ),
    m(
        "LDAP",
        "Lightweight Directory Access Protocol traffic",
        &[t(&[(389, 389)])],
    ),
    m(
        "LDAPS",
        "Secure Lightweight Directory Access Protocol traffic",
        &[t(&[(636, 636)])],
    ),
    m(
        "Mail",
        "Mail traffic (SMTP, SMTPS, Submission)",
        &[t(&[(25, 25)]), t(&[(465, 465)]), t(&[(587, 587)])],
    ),
    m("MDNS", "Multicast DNS", &[u(&[(5353, 5353)])]),
    m(
        "MSNP",
        "Microsoft Notification Protocol",
        &[t(&[(1863, 1863)])],
    ),
    m("MSSQL", "Microsoft SQL Server", &[t(&[(1433, 1433)])]),
    m(
        "Munin",
        "Munin networked resource monitoring traffic",
        &[t(&[(4949, 4949)])],
    ),
    m("MySQL", "MySQL server", &[t(&[(3306, 3306)])]),
    Macro {
        name: "NeighborDiscovery",
        description: "IPv6 neighbor solicitation, neighbor and router advertisement",
        entries: &[
            icmp(ICMPV6, "router-solicitation"),
            icmp(ICMPV6, "router-advertisement"),
            icmp(ICMPV6, "neighbor-solicitation"),
            icmp(ICMPV6, "neighbor-advertisement"),
        ],
        v6: None,
    },
    m("NNTP", "NNTP traffic (Usenet).", &[t(&[(119, 119)])]),
    m(
        "NNTPS",
        "Encrypted NNTP traffic (Usenet)",
        &[t(&[(563, 563)])],
    ),
    m("NTP", "Network Time Protocol (ntpd)", &[u(&[(123, 123)])]),
    m("OpenVPN", "OpenVPN traffic", &[u(&[(1194, 1194)])]),
    m("OSPF", "OSPF multicast traffic", &[p(89)]),
    m(
        "PCA",
        "Symantec PCAnywere (tm)",
        &[u(&[(5632, 5632)]), t(&[(5631, 5631)])],
    ),
    Macro {
        name: "Ping",
        description: "ICMP echo request",
        entries: &[icmp(ICMP, "echo-request")],
        v6: Some(&[icmp(ICMPV6, "echo-request")]),
    },
    m(
        "PMG",
        "Proxmox Mail Gateway web interface",
        &[t(&[(8006, 8006)])],
    ),
    m("POP3", "POP3 traffic", &[t(&[(110, 110)])]),
    m("POP3S", "Encrypted POP3 traffic", &[t(&[(995, 995)])]),
    m("PostgreSQL", "PostgreSQL server", &[t(&[(5432, 5432)])]),
    m(
        "PPtP",
        "Point-to-Point Tunneling Protocol",
        &[p(47), t(&[(1723, 1723)])],
    ),
    m(
        "Printer",
        "Line Printer protocol printing",
        &[t(&[(515, 515)])],
    ),
    m("Razor", "Razor Antispam System", &[t(&[(2703, 2703)])]),
    m("Rdate", "Remote time retrieval (rdate)", &[t(&[(37, 37)])]),
    m(
        "RDP",
        "Microsoft Remote Desktop Protocol traffic",
        &[t(&[(3389, 3389)])],
    ),
    m(
        "RIP",
        "Routing Information Protocol (bidirectional)",
        &[u(&[(520, 520)])],
    ),
    m(
        "RNDC",
        "BIND remote management protocol",
        &[t(&[(953, 953)])],
    ),
    m("Rsync", "Rsync server", &[t(&[(873, 873)])]),
    m("SANE", "SANE network scanning", &[t(&[(6566, 6566)])]),
    m(
        "SixXS",
        "SixXS IPv6 Deployment and Tunnel Broker",
        &[
            t(&[(3874, 3874)]),
            u(&[(3740, 3740)]),
            p(41),
            u(&[(5072, 5072), (8374, 8374)]),
        ],
    ),
    m(
        "SMB",
        "Microsoft SMB traffic",
        &[
            u(&[(135, 135), (445, 445)]),
            u(&[(137, 139)]),
            us(&[(1024, 65535)], &[(137, 137)]),
            t(&[(135, 135), (139, 139), (445, 445)]),
        ],
    ),
    m(
        "SMBswat",
        "Samba Web Administration Tool",
        &[t(&[(901, 901)])],
    ),
    m("SMTP", "Simple Mail Transfer Protocol", &[t(&[(25, 25)])]),
    m(
        "SMTPS",
        "Encrypted Simple Mail Transfer Protocol",
        &[t(&[(465, 465)])],
    ),
    m(
        "SNMP",
        "Simple Network Management Protocol",
        &[u(&[(161, 162)]), t(&[(161, 161)])],
    ),
    m("SPAMD", "Spam Assassin SPAMD traffic", &[t(&[(783, 783)])]),
    m(
        "SPICEproxy",
        "Proxmox VE SPICE display proxy traffic",
        &[t(&[(3128, 3128)])],
    ),
    m("Squid", "Squid web proxy traffic", &[t(&[(3128, 3128)])]),
    m("SSH", "Secure shell traffic", &[t(&[(22, 22)])]),
    m(
        "Submission",
        "Mail message submission traffic",
        &[t(&[(587, 587)])],
    ),
    m("SVN", "Subversion server (svnserve)", &[t(&[(3690, 3690)])]),
    m(
        "Syslog",
        "Syslog protocol (RFC 5424) traffic",
        &[u(&[(514, 514)]), t(&[(514, 514)])],
    ),
    m("Telnet", "Telnet traffic", &[t(&[(23, 23)])]),
    m("Telnets", "Telnet over SSL", &[t(&[(992, 992)])]),
    m(
        "TFTP",
        "Trivial File Transfer Protocol traffic",
        &[u(&[(69, 69)])],
    ),
    m("Time", "RFC 868 Time protocol", &[t(&[(37, 37)])]),
    Macro {
        name: "Trcrt",
        description: "Traceroute (for up to 30 hops) traffic",
        entries: &[u(&[(33434, 33524)]), icmp(ICMP, "echo-request")],
        v6: Some(&[u(&[(33434, 33524)]), icmp(ICMPV6, "echo-request")]),
    },
    m(
        "VNC",
        "VNC traffic for VNC display's 0 - 99",
        &[t(&[(5900, 5999)])],
    ),
    m(
        "VNCL",
        "VNC traffic from Vncservers to Vncviewers in listen mode",
        &[t(&[(5500, 5500)])],
    ),
    m(
        "Web",
        "WWW traffic (HTTP and HTTPS)",
        &[t(&[(80, 80)]), t(&[(443, 443)])],
    ),
    m(
        "Webcache",
        "Web Cache/Proxy traffic (port 8080)",
        &[t(&[(8080, 8080)])],
    ),
    m("Webmin", "Webmin traffic", &[t(&[(10000, 10000)])]),
    m(
        "Whois",
        "Whois (nicname, RFC 3912) traffic",
        &[t(&[(43, 43)])],
    ),
];

/// Find a macro case-insensitively, as PVE does, returning its preferred
/// spelling with it.
pub fn lookup(name: &str) -> Option<&'static Macro> {
    MACROS.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_normalises() {
        assert_eq!(lookup("ssh").map(|m| m.name), Some("SSH"));
        assert_eq!(lookup("https").map(|m| m.name), Some("HTTPS"));
        assert_eq!(lookup("PING").map(|m| m.name), Some("Ping"));
        assert!(lookup("nosuch").is_none());
    }

    #[test]
    fn homelab_macros_have_the_right_ports() {
        let dns = lookup("DNS").map(|m| m.entries).unwrap_or(&[]);
        assert_eq!(dns.len(), 2);
        assert!(dns.iter().any(|e| e.proto == UDP && e.dport == [(53, 53)]));
        assert!(dns.iter().any(|e| e.proto == TCP && e.dport == [(53, 53)]));
        let ping = lookup("Ping").map(|m| m.entries_for(true)).unwrap_or(&[]);
        assert_eq!(
            ping.first().map(|e| (e.proto, e.icmp_type)),
            Some((ICMPV6, Some("echo-request")))
        );
        let web = lookup("Web").map(|m| m.entries).unwrap_or(&[]);
        assert_eq!(web.len(), 2);
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in MACROS.iter().enumerate() {
            for b in MACROS.iter().skip(i + 1) {
                assert!(!a.name.eq_ignore_ascii_case(b.name), "{} twice", a.name);
            }
        }
    }
}
