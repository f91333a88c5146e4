//! The OPNsense guest: its `config.xml` read independently of labwright's router crate
//! (interfaces, DHCP ranges, outbound NAT, the MVC filter rules) and the filter's
//! verdict with pf semantics. How it gets the config (the importer on the console) is
//! in [`crate::router`].
//!
//! pf: rules are evaluated in order on the interface a packet arrives on; a matching
//! `quick` rule decides at once, otherwise the last matching rule decides; OPNsense's
//! built-in default denies what no rule passes. The order is OPNsense's: a rule on
//! exactly one interface is an interface rule, any other (none, or several) is
//! floating, and floating rules come first; `sequence` orders each tier (opnsense/core
//! `FilterRuleContainerField::getPriority`: 200000 floating, 400000 interface).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// How an interface gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfAddr {
    Static(Ipv4Addr, u8),
    Dhcp,
    None,
}

/// One assigned interface (`<interfaces><wan>…`).
#[derive(Debug, Clone, PartialEq)]
pub struct Iface {
    /// `wan`, `lan`, `opt1` …
    pub key: String,
    /// FreeBSD device, `vtnetN`: NIC slot `netN` of the VM.
    pub slot: Option<u32>,
    pub addr: IfAddr,
    /// `blockpriv`: drop private sources arriving here (the factory WAN default).
    pub blockpriv: bool,
}

/// A DHCP pool served on an interface.
#[derive(Debug, Clone, PartialEq)]
pub struct DhcpRange {
    pub iface: String,
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pass,
    Block,
    Reject,
}

/// One filter rule of `OPNsense/Firewall/Filter/rules`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Evaluated before the interface rules (not exactly one interface).
    pub floating: bool,
    pub sequence: u32,
    pub action: Action,
    pub quick: bool,
    /// Interface keys; empty: floating (every interface).
    pub interfaces: Vec<String>,
    pub interface_not: bool,
    /// `in`, `out` or `any`.
    pub direction: String,
    /// Matches IPv4 (`inet`, `inet46`).
    pub ipv4: bool,
    /// `any`, `TCP`, `TCP/UDP`, … (upper case).
    pub protocol: String,
    pub source: String,
    pub source_not: bool,
    pub destination: String,
    pub destination_not: bool,
    pub destination_port: String,
    pub description: String,
}

/// A parsed `config.xml`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub hostname: String,
    pub ifaces: Vec<Iface>,
    pub dhcp: Vec<DhcpRange>,
    /// Outbound NAT mode `automatic` (or `hybrid`): internal networks leaving `wan`
    /// are translated to the WAN address.
    pub nat_auto: bool,
    /// Alias name → (type, entries).
    pub aliases: BTreeMap<String, (String, Vec<String>)>,
    pub rules: Vec<Rule>,
    /// The anti-lockout rule (on unless `webgui/noantilockout`).
    pub antilockout: bool,
}

/// Why a document is not a usable `config.xml`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("config.xml: {0}")]
pub struct ConfigError(pub String);

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(name))
}

fn text<'a>(n: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
    child(n, name).and_then(|c| c.text()).unwrap_or("").trim()
}

fn path<'a, 'i>(n: roxmltree::Node<'a, 'i>, names: &[&str]) -> Option<roxmltree::Node<'a, 'i>> {
    names.iter().try_fold(n, |n, name| child(n, name))
}

impl Config {
    /// Reads a `config.xml` document (`<opnsense>` root).
    pub fn parse(xml: &str) -> Result<Config, ConfigError> {
        let doc = roxmltree::Document::parse(xml).map_err(|e| ConfigError(e.to_string()))?;
        let root = doc.root_element();
        if !root.has_tag_name("opnsense") {
            return Err(ConfigError(format!(
                "the root element is <{}>, not <opnsense>",
                root.tag_name().name()
            )));
        }
        let mut c = Config {
            hostname: path(root, &["system", "hostname"])
                .and_then(|n| n.text())
                .unwrap_or("OPNsense")
                .to_string(),
            antilockout: path(root, &["system", "webgui", "noantilockout"]).is_none(),
            ..Default::default()
        };
        if let Some(ifs) = child(root, "interfaces") {
            for i in ifs.children().filter(roxmltree::Node::is_element) {
                let enabled = child(i, "enable").is_some_and(|e| e.text().unwrap_or("1") != "0");
                if !enabled {
                    continue;
                }
                let slot = text(i, "if")
                    .strip_prefix("vtnet")
                    .and_then(|n| n.parse().ok());
                let ip = text(i, "ipaddr");
                let addr = match (ip, ip.parse::<Ipv4Addr>(), text(i, "subnet").parse::<u8>()) {
                    ("dhcp", _, _) => IfAddr::Dhcp,
                    (_, Ok(a), Ok(p)) if p <= 32 => IfAddr::Static(a, p),
                    _ => IfAddr::None,
                };
                c.ifaces.push(Iface {
                    key: i.tag_name().name().to_string(),
                    slot,
                    addr,
                    blockpriv: text(i, "blockpriv") == "1",
                });
            }
        }
        // dnsmasq (the current factory DHCP server), then ISC dhcpd's per-interface pools.
        if let Some(d) = child(root, "dnsmasq")
            && text(d, "enable") == "1"
        {
            for r in d.children().filter(|n| n.has_tag_name("dhcp_ranges")) {
                if let (Ok(start), Ok(end)) = (
                    text(r, "start_addr").parse::<Ipv4Addr>(),
                    text(r, "end_addr").parse::<Ipv4Addr>(),
                ) {
                    c.dhcp.push(DhcpRange {
                        iface: text(r, "interface").to_string(),
                        start,
                        end,
                    });
                }
            }
        }
        if let Some(d) = child(root, "dhcpd") {
            for i in d.children().filter(roxmltree::Node::is_element) {
                let Some(range) = child(i, "range") else {
                    continue;
                };
                if child(i, "enable").is_none() {
                    continue;
                }
                if let (Ok(start), Ok(end)) = (
                    text(range, "from").parse::<Ipv4Addr>(),
                    text(range, "to").parse::<Ipv4Addr>(),
                ) {
                    c.dhcp.push(DhcpRange {
                        iface: i.tag_name().name().to_string(),
                        start,
                        end,
                    });
                }
            }
        }
        let mode = path(root, &["nat", "outbound", "mode"])
            .and_then(|n| n.text())
            .unwrap_or("automatic");
        c.nat_auto = matches!(mode, "automatic" | "hybrid");
        if let Some(al) = path(root, &["OPNsense", "Firewall", "Alias", "aliases"]) {
            for a in al.children().filter(|n| n.has_tag_name("alias")) {
                if text(a, "enabled") == "0" {
                    continue;
                }
                let entries = text(a, "content")
                    .split(['\n', ','])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                c.aliases.insert(
                    text(a, "name").to_string(),
                    (text(a, "type").to_string(), entries),
                );
            }
        }
        if let Some(rules) = path(root, &["OPNsense", "Firewall", "Filter", "rules"]) {
            for r in rules.children().filter(|n| n.has_tag_name("rule")) {
                if text(r, "enabled") == "0" {
                    continue;
                }
                let action = match text(r, "action") {
                    "block" => Action::Block,
                    "reject" => Action::Reject,
                    _ => Action::Pass,
                };
                let ipproto = text(r, "ipprotocol");
                let interfaces: Vec<String> = text(r, "interface")
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                c.rules.push(Rule {
                    floating: interfaces.len() != 1,
                    sequence: text(r, "sequence").parse().unwrap_or(0),
                    action,
                    quick: text(r, "quick") != "0",
                    interfaces,
                    interface_not: text(r, "interfacenot") == "1",
                    direction: match text(r, "direction") {
                        "" => "in".to_string(),
                        d => d.to_string(),
                    },
                    ipv4: ipproto.is_empty() || ipproto == "inet" || ipproto == "inet46",
                    protocol: match text(r, "protocol") {
                        "" => "any".to_string(),
                        p => p.to_ascii_uppercase(),
                    },
                    source: text(r, "source_net").to_string(),
                    source_not: text(r, "source_not") == "1",
                    destination: text(r, "destination_net").to_string(),
                    destination_not: text(r, "destination_not") == "1",
                    destination_port: text(r, "destination_port").to_string(),
                    description: text(r, "description").to_string(),
                });
            }
        }
        c.rules.sort_by_key(|r| (!r.floating, r.sequence));
        Ok(c)
    }

    /// The interface on NIC slot `n`.
    pub fn iface_on_slot(&self, n: u32) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.slot == Some(n))
    }

    /// The DHCP pool served on interface `key`.
    pub fn dhcp_on(&self, key: &str) -> Option<&DhcpRange> {
        self.dhcp.iter().find(|d| d.iface.eq_ignore_ascii_case(key))
    }
}

/// A packet as the filter sees it: a new TCP connection (SYN).
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

/// The running router's addresses, to resolve `(self)`, `lan`, `lanip` ….
pub struct Addrs<'a> {
    /// Interface key → its address and network, where it has one.
    pub ifaces: &'a [(String, Ipv4Addr, Ipv4Net)],
}

impl Addrs<'_> {
    fn is_self(&self, ip: Ipv4Addr) -> bool {
        self.ifaces.iter().any(|(_, a, _)| *a == ip)
    }
}

fn elem_contains(e: &str, ip: Ipv4Addr) -> bool {
    if let Some((a, b)) = e.split_once('-')
        && let (Ok(a), Ok(b)) = (a.trim().parse::<Ipv4Addr>(), b.trim().parse::<Ipv4Addr>())
    {
        return a <= ip && ip <= b;
    }
    if let Ok(n) = e.parse::<Ipv4Net>() {
        return n.contains(&ip);
    }
    e.parse::<Ipv4Addr>().is_ok_and(|a| a == ip)
}

impl Config {
    /// Does a `source_net`/`destination_net` value hold `ip`? Aliases nest up to 4 deep.
    fn net_matches(&self, spec: &str, ip: Ipv4Addr, me: &Addrs<'_>, depth: u8) -> bool {
        let spec = spec.trim();
        match spec {
            "" | "any" => return true,
            "(self)" | "this_firewall" => return me.is_self(ip),
            _ => {}
        }
        if let Some((_, a, n)) = me.ifaces.iter().find(|(k, _, _)| k == spec) {
            let _ = a;
            return n.contains(&ip);
        }
        if let Some(k) = spec.strip_suffix("ip")
            && let Some((_, a, _)) = me.ifaces.iter().find(|(key, _, _)| key == k)
        {
            return *a == ip;
        }
        if let Some((_, entries)) = self.aliases.get(spec) {
            return depth < 4
                && entries
                    .iter()
                    .any(|e| elem_contains(e, ip) || self.net_matches(e, ip, me, depth + 1));
        }
        spec.split(',').any(|e| elem_contains(e.trim(), ip))
    }

    fn port_matches(&self, spec: &str, port: u16, depth: u8) -> bool {
        let spec = spec.trim();
        if spec.is_empty() || spec == "any" {
            return true;
        }
        if let Some((ty, entries)) = self.aliases.get(spec) {
            return depth < 4
                && ty == "port"
                && entries
                    .iter()
                    .any(|e| self.port_matches(e, port, depth + 1));
        }
        spec.split(',').any(|p| {
            let p = p.trim();
            if let Some((a, b)) = p.split_once(['-', ':']) {
                return matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= port && port <= b);
            }
            match p.parse::<u16>() {
                Ok(n) => n == port,
                Err(_) => crate::formats::SERVICES
                    .iter()
                    .any(|(n, p2)| *n == p && *p2 == port),
            }
        })
    }

    fn rule_matches(&self, r: &Rule, iface: &str, dir: &str, p: Packet, me: &Addrs<'_>) -> bool {
        if !r.ipv4 {
            return false;
        }
        if !(r.direction == "any" || r.direction == dir) {
            return false;
        }
        if !r.interfaces.is_empty() && (r.interfaces.iter().any(|k| k == iface) == r.interface_not)
        {
            return false;
        }
        if !matches!(r.protocol.as_str(), "ANY" | "TCP" | "TCP/UDP") {
            return false;
        }
        if self.net_matches(&r.source, p.src, me, 0) == r.source_not {
            return false;
        }
        if self.net_matches(&r.destination, p.dst, me, 0) == r.destination_not {
            return false;
        }
        self.port_matches(&r.destination_port, p.dport, 0)
    }

    /// The filter's verdict for `p` arriving on `iface` (`dir` `in`) or leaving through
    /// it (`out`): OPNsense's automatic rules first (anti-lockout, private networks on
    /// WAN), then the rules; no match: `in` is denied, `out` passed (OPNsense's
    /// defaults).
    pub fn verdict(&self, iface: &str, dir: &str, p: Packet, me: &Addrs<'_>) -> Action {
        if dir == "in" {
            let lockout_if = if self.ifaces.iter().any(|i| i.key == "lan") {
                "lan"
            } else {
                "wan"
            };
            if self.antilockout
                && iface == lockout_if
                && me
                    .ifaces
                    .iter()
                    .any(|(k, a, _)| k == lockout_if && *a == p.dst)
                && [22, 80, 443].contains(&p.dport)
            {
                return Action::Pass;
            }
            if self.ifaces.iter().any(|i| i.key == iface && i.blockpriv) && p.src.is_private() {
                return Action::Block;
            }
        }
        let mut last = None;
        for r in &self.rules {
            if self.rule_matches(r, iface, dir, p, me) {
                if r.quick {
                    return r.action;
                }
                last = Some(r.action);
            }
        }
        last.unwrap_or(if dir == "in" {
            Action::Block
        } else {
            Action::Pass
        })
    }
}

/// The config an OPNsense image boots with before anything is imported
/// (opnsense/core `config.xml.sample`): WAN by DHCP on `vtnet0` (private sources
/// blocked), LAN 192.168.1.1/24 on `vtnet1`. Not modelled: its DHCP server on LAN and
/// its LAN → any rule; an unconfigured router routes nothing in the simulator.
pub fn factory() -> Config {
    Config {
        hostname: "OPNsense".into(),
        ifaces: vec![
            Iface {
                key: "wan".into(),
                slot: Some(0),
                addr: IfAddr::Dhcp,
                blockpriv: true,
            },
            Iface {
                key: "lan".into(),
                slot: Some(1),
                addr: IfAddr::Static(Ipv4Addr::new(192, 168, 1, 1), 24),
                blockpriv: false,
            },
        ],
        antilockout: true,
        nat_auto: true,
        ..Default::default()
    }
}

/// Finds an `<opnsense>…</opnsense>` document inside uploaded bytes (an ISO 9660
/// image stores file data verbatim), with its XML declaration when one precedes it.
pub fn find_config(data: &[u8]) -> Option<String> {
    let start = find(data, b"<opnsense>")?;
    let end = find(&data[start..], b"</opnsense>")? + start + b"</opnsense>".len();
    let decl = b"<?xml";
    let from = data[..start]
        .windows(decl.len())
        .rposition(|w| w == decl)
        .filter(|d| start - d < 100)
        .unwrap_or(start);
    String::from_utf8(data[from..end].to_vec()).ok()
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    if h.len() < n.len() {
        return None;
    }
    h.windows(n.len()).position(|w| w == n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0"?>
<opnsense>
  <system><hostname>r</hostname><webgui><noantilockout>1</noantilockout></webgui></system>
  <interfaces>
    <wan><enable>1</enable><if>vtnet0</if><ipaddr>dhcp</ipaddr><blockpriv>0</blockpriv></wan>
    <lan><enable>1</enable><if>vtnet1</if><ipaddr>10.10.10.1</ipaddr><subnet>24</subnet></lan>
    <opt1><enable>1</enable><if>vtnet2</if><ipaddr>10.10.20.1</ipaddr><subnet>24</subnet></opt1>
  </interfaces>
  <dnsmasq><enable>1</enable><dhcp_ranges><interface>opt1</interface><start_addr>10.10.20.128</start_addr><end_addr>10.10.20.254</end_addr></dhcp_ranges></dnsmasq>
  <OPNsense><Firewall>
    <Alias><aliases><alias><enabled>1</enabled><name>nets</name><type>network</type><content>10.10.10.0/24
10.10.20.0/24
192.168.1.0/24</content></alias></aliases></Alias>
    <Filter><rules>
      <rule><sequence>30</sequence><action>pass</action><quick>1</quick><interface>opt1</interface><protocol>any</protocol><source_net>any</source_net><destination_net>nets</destination_net><destination_not>1</destination_not></rule>
      <rule><sequence>10</sequence><action>block</action><quick>1</quick><interface>opt1</interface><protocol>TCP</protocol><source_net>opt1</source_net><destination_net>192.168.1.10/32</destination_net><destination_port>22</destination_port></rule>
      <rule><sequence>20</sequence><action>pass</action><quick>0</quick><interface/><protocol>TCP</protocol><source_net>any</source_net><destination_net>(self)</destination_net><destination_port>443</destination_port></rule>
      <rule><sequence>5</sequence><action>pass</action><quick>1</quick><interface>opt1</interface><protocol>TCP</protocol><source_net>any</source_net><destination_net>10.10.10.99</destination_net><destination_port>22</destination_port></rule>
      <rule><sequence>40</sequence><action>block</action><quick>1</quick><interface>wan,opt1</interface><protocol>any</protocol><source_net>any</source_net><destination_net>10.10.10.99/32</destination_net></rule>
      <rule><sequence>25</sequence><action>reject</action><quick>0</quick><interface>opt1</interface><protocol>TCP</protocol><source_net>any</source_net><destination_net>(self)</destination_net><destination_port>443</destination_port></rule>
    </rules></Filter>
  </Firewall></OPNsense>
</opnsense>"#;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    #[test]
    fn parses_interfaces_dhcp_and_rules_in_sequence_order() {
        let c = Config::parse(XML).expect("parses");
        assert_eq!(c.ifaces.len(), 3);
        assert_eq!(c.ifaces[0].addr, IfAddr::Dhcp);
        assert_eq!(c.iface_on_slot(2).map(|i| i.key.as_str()), Some("opt1"));
        assert_eq!(c.dhcp_on("opt1").map(|d| d.start), Some(ip("10.10.20.128")));
        // Floating (no interface, or several) first, then interface rules; each tier
        // by sequence.
        let seq: Vec<u32> = c.rules.iter().map(|r| r.sequence).collect();
        assert_eq!(seq, vec![20, 40, 5, 10, 25, 30]);
        assert!(!c.antilockout);
        assert!(Config::parse("<pfsense/>").is_err());
        assert!(Config::parse("<opnsense>").is_err());
    }

    #[test]
    fn pf_semantics_quick_first_then_last_match_then_default_deny() {
        let c = Config::parse(XML).expect("parses");
        let me_v = vec![
            (
                "lan".to_string(),
                ip("10.10.10.1"),
                "10.10.10.0/24".parse().expect("net"),
            ),
            (
                "opt1".to_string(),
                ip("10.10.20.1"),
                "10.10.20.0/24".parse().expect("net"),
            ),
        ];
        let me = Addrs { ifaces: &me_v };
        let p = |s: &str, d: &str, port| Packet {
            src: ip(s),
            dst: ip(d),
            dport: port,
        };
        // quick block wins before the later pass.
        assert_eq!(
            c.verdict("opt1", "in", p("10.10.20.5", "192.168.1.10", 22), &me),
            Action::Block
        );
        // negated alias: 192.168.1.10:8006 is inside `nets`, so not passed: default deny.
        assert_eq!(
            c.verdict("opt1", "in", p("10.10.20.5", "192.168.1.10", 8006), &me),
            Action::Block
        );
        // outside `nets`: passed.
        assert_eq!(
            c.verdict("opt1", "in", p("10.10.20.5", "198.51.100.1", 80), &me),
            Action::Pass
        );
        // non-quick: the last match (reject on opt1) wins over the earlier floating pass.
        assert_eq!(
            c.verdict("opt1", "in", p("10.10.20.5", "10.10.20.1", 443), &me),
            Action::Reject
        );
        assert_eq!(
            c.verdict("lan", "in", p("10.10.10.5", "10.10.20.1", 443), &me),
            Action::Pass
        );
        // The floating block (sequence 40, on wan and opt1) precedes the interface pass
        // with sequence 5.
        assert_eq!(
            c.verdict("opt1", "in", p("10.10.20.5", "10.10.10.99", 22), &me),
            Action::Block
        );
        // out: default pass.
        assert_eq!(
            c.verdict("lan", "out", p("10.10.20.5", "10.10.10.7", 22), &me),
            Action::Pass
        );
    }

    #[test]
    fn finds_the_document_in_iso_bytes() {
        let mut iso = vec![0u8; 4096];
        iso.extend_from_slice(b"<?xml version=\"1.0\"?>\n<opnsense>\n</opnsense>\n");
        iso.extend_from_slice(&[0u8; 100]);
        let found = find_config(&iso).expect("found");
        assert!(found.starts_with("<?xml"), "{found}");
        assert!(found.ends_with("</opnsense>"));
        assert_eq!(find_config(b"#cloud-config\n"), None);
    }
}
