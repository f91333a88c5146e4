//! Address rules: `source-cidr`, `doc-range`, `no-public-exposure`,
//! `no-vlan-trunking` and `firewall-rule`, plus the parser for PVE address lists
//! (`10.0.0.0/8`, `admin-pc`, `+management`, `!192.168.1.0/24`, lists with commas).

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use labwright_spec::model::{FwDirection, FwRule, PortSpec};
use labwright_spec::types::Cidr;
use labwright_spec::{Diagnostic, YamlPath};

use crate::{Ctx, root};

/// One item of a PVE address list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddrItem {
    Net {
        net: IpNet,
        negated: bool,
    },
    Range {
        from: IpAddr,
        to: IpAddr,
        negated: bool,
    },
    Alias {
        name: String,
        negated: bool,
    },
    Ipset {
        name: String,
        negated: bool,
    },
}

/// Parses a source/dest value. The error says what is wrong with which item.
pub fn parse_addr_list(s: &str) -> Result<Vec<AddrItem>, String> {
    let mut out = Vec::new();
    for raw in s.split(',') {
        let item = raw.trim();
        if item.is_empty() {
            return Err(format!("empty item in address list `{s}`"));
        }
        let (negated, item) = match item.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        if let Some(set) = item.strip_prefix('+') {
            let name = set
                .strip_prefix("dc/")
                .or_else(|| set.strip_prefix("guest/"))
                .unwrap_or(set);
            if !valid_name(name) {
                return Err(format!("`+{set}` does not name an ipset"));
            }
            out.push(AddrItem::Ipset {
                name: name.to_string(),
                negated,
            });
            continue;
        }
        if item.starts_with(|c: char| c.is_ascii_digit()) || item.contains(':') {
            if let Some((a, b)) = item.split_once('-') {
                let (Ok(from), Ok(to)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>()) else {
                    return Err(format!(
                        "`{item}` is not an address range (a.b.c.d-e.f.g.h)"
                    ));
                };
                out.push(AddrItem::Range { from, to, negated });
                continue;
            }
            let c: Cidr = item.parse()?;
            out.push(AddrItem::Net { net: c.0, negated });
            continue;
        }
        let name = item.strip_prefix("dc/").unwrap_or(item);
        if !valid_name(name) {
            return Err(format!(
                "`{item}` is neither a CIDR, an alias name nor `+ipset`"
            ));
        }
        out.push(AddrItem::Alias {
            name: name.to_string(),
            negated,
        });
    }
    Ok(out)
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && n.len() <= 64
}

/// RFC 5737 / RFC 3849 documentation networks.
fn doc_ranges() -> Vec<IpNet> {
    [
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// Address space that cannot be reached from the internet without a port forward:
/// RFC 1918, CGNAT (Tailscale), loopback, link-local, ULA.
pub(crate) fn is_non_public(net: &IpNet) -> bool {
    let private: Vec<IpNet> = [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect();
    private.iter().any(|p| p.contains(net))
}

/// Built-in ipsets PVE provides without declaration.
const BUILTIN_IPSETS: &[&str] = &["management", "local_network", "blacklist"];

/// PVE firewall macros a homelab uses; the evaluator knows their ports.
pub(crate) const KNOWN_MACROS: &[&str] = &[
    "SSH",
    "HTTP",
    "HTTPS",
    "DNS",
    "Ping",
    "NTP",
    "SMB",
    "NFS",
    "SNMP",
    "Web",
    "Telnet",
    "RDP",
    "VNC",
    "MySQL",
    "PostgreSQL",
    "SMTP",
    "IMAP",
    "IMAPS",
    "POP3",
    "POP3S",
    "FTP",
    "Rsync",
    "Syslog",
    "DHCPfwd",
    "DHCPv6",
    "BitTorrent",
    "OpenVPN",
    "IPsec",
    "Squid",
    "Jabber",
    "LDAP",
    "LDAPS",
    "MDNS",
    "BGP",
    "Ceph",
    "SPICEproxy",
    "Git",
    "Razor",
    "Trcrt",
    "Traceroute",
];

const PROTOS: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "icmpv6",
    "ipv6-icmp",
    "sctp",
    "udplite",
    "gre",
    "esp",
    "ah",
    "igmp",
    "ospf",
];

pub(crate) fn run(ctx: &mut Ctx<'_>) {
    let spec = ctx.spec();
    let guards = &spec.safety_guards;

    // doc-range
    let docs = doc_ranges();
    for (i, c) in guards.management_access_cidrs.iter().enumerate() {
        if docs.iter().any(|d| d.contains(&c.0) || c.0.contains(d)) {
            ctx.emit(
                Diagnostic::error(
                    "doc-range",
                    format!("management source {c} is a documentation range, not a real network"),
                )
                .label("example address")
                .help("put your admin machine's LAN address here, e.g. export ADMIN_PC_CIDR=192.168.1.50/32"),
                &root().key("safetyGuards").key("managementAccessCidrs").index(i),
            );
        }
        if !c.is_network_address() {
            ctx.emit(
                Diagnostic::error("source-cidr", format!("`{}` has host bits set", c.0))
                    .label("host bits set")
                    .help(format!(
                        "write the network `{}` or a single host `{}/{}`",
                        c.0.trunc(),
                        c.0.addr(),
                        c.0.max_prefix_len()
                    )),
                &root()
                    .key("safetyGuards")
                    .key("managementAccessCidrs")
                    .index(i),
            );
        }
    }

    // no-vlan-trunking
    for (name, b) in &spec.networks.bridges {
        if b.vlan_aware {
            ctx.emit(
                Diagnostic::error(
                    "no-vlan-trunking",
                    format!("bridge `{name}` is VLAN-aware, but the lab has no managed switch"),
                )
                .label("VLAN trunking")
                .help("segment with internal-only bridges (no ports) and the router VM instead"),
                &root()
                    .key("networks")
                    .key("bridges")
                    .key(name.clone())
                    .key("vlanAware"),
            );
        }
    }

    // no-public-exposure: router
    if let Some(r) = &spec.router {
        if !r.port_forwards.is_empty() {
            ctx.emit_at_key(
                Diagnostic::error(
                    "no-public-exposure",
                    "port forwards are not allowed: remote access is Tailscale only",
                )
                .label("port forward")
                .help("remove `portForwards`; reach services over Tailscale (subnet routes or in-guest Tailscale)"),
                &root().key("router").key("portForwards"),
            );
        }
        if r.dmz_host.is_some() {
            ctx.emit(
                Diagnostic::error(
                    "no-public-exposure",
                    "a DMZ host exposes a guest to the internet",
                )
                .label("DMZ")
                .help("remove `dmzHost`; remote access is Tailscale only"),
                &root().key("router").key("dmzHost"),
            );
        }
    }

    // Firewall rules at datacenter, node and in security groups.
    let Some(fw) = &spec.firewall else {
        check_allowlists(ctx);
        return;
    };
    let aliases: HashSet<&str> = fw.aliases.keys().map(String::as_str).collect();
    let ipsets: HashSet<&str> = fw
        .ipsets
        .keys()
        .map(String::as_str)
        .chain(BUILTIN_IPSETS.iter().copied())
        .collect();
    let groups: HashSet<&str> = fw.security_groups.keys().map(String::as_str).collect();
    let mut ids: HashSet<String> = HashSet::new();
    let mut lists: Vec<(YamlPath, &FwRule)> = Vec::new();
    for (lvl, level) in [("datacenter", &fw.datacenter), ("node", &fw.node)] {
        if let Some(level) = level {
            for (i, r) in level.rules.iter().enumerate() {
                lists.push((root().key("firewall").key(lvl).key("rules").index(i), r));
            }
        }
    }
    for (g, rules) in &fw.security_groups {
        for (i, r) in rules.iter().enumerate() {
            lists.push((
                root()
                    .key("firewall")
                    .key("securityGroups")
                    .key(g.clone())
                    .index(i),
                r,
            ));
        }
    }
    for (path, rule) in lists {
        if !ids.insert(rule.id.clone()) {
            ctx.emit(
                Diagnostic::error(
                    "firewall-rule",
                    format!("rule id `{}` is used twice", rule.id),
                )
                .label("duplicate id")
                .help("rule ids are kept in the rule comment on the node; they must be unique"),
                &path.key("id"),
            );
        }
        if !valid_name(&rule.id) || rule.id.chars().any(|c| c.is_ascii_uppercase() || c == '_') {
            ctx.emit(
                Diagnostic::error(
                    "firewall-rule",
                    format!("rule id `{}` is not kebab-case", rule.id),
                )
                .label("invalid id")
                .help("use lowercase words joined by `-`, e.g. `mgmt-admin-ssh`"),
                &path.key("id"),
            );
        }
        check_rule(ctx, &path, rule, &aliases, &ipsets, &groups);
    }
    check_allowlists(ctx);
}

fn check_rule(
    ctx: &mut Ctx<'_>,
    path: &YamlPath,
    rule: &FwRule,
    aliases: &HashSet<&str>,
    ipsets: &HashSet<&str>,
    groups: &HashSet<&str>,
) {
    match rule.direction {
        FwDirection::Group => {
            if !groups.contains(rule.action.as_str()) {
                ctx.emit(
                    Diagnostic::error(
                        "ref-unknown",
                        format!("security group `{}` is not declared", rule.action),
                    )
                    .label("unknown group")
                    .help("declare it under `firewall.securityGroups`"),
                    &path.key("action"),
                );
            }
        }
        _ => {
            if !matches!(rule.action.as_str(), "ACCEPT" | "DROP" | "REJECT") {
                let help = match rule.action.to_uppercase().as_str() {
                    a @ ("ACCEPT" | "DROP" | "REJECT") => format!("write `{a}` in capitals"),
                    _ => "use ACCEPT, DROP or REJECT (or `direction: group` with a security group name)".into(),
                };
                ctx.emit(
                    Diagnostic::error(
                        "firewall-rule",
                        format!("`{}` is not a firewall action", rule.action),
                    )
                    .label("invalid action")
                    .help(help),
                    &path.key("action"),
                );
            }
        }
    }
    if let Some(m) = &rule.macro_name
        && !KNOWN_MACROS.iter().any(|k| k == m)
    {
        let suggestion = KNOWN_MACROS.iter().find(|k| k.eq_ignore_ascii_case(m));
        ctx.emit(
            Diagnostic::error("firewall-rule", format!("unknown firewall macro `{m}`"))
                .label("unknown macro")
                .help(match suggestion {
                    Some(s) => format!("did you mean `{s}`? (macro names are case-sensitive)"),
                    None => "use a PVE macro such as SSH, HTTPS, DNS or Ping, or give proto/dport"
                        .into(),
                }),
            &path.key("macro"),
        );
    }
    if let Some(p) = &rule.proto
        && !PROTOS.contains(&p.as_str())
        && p.parse::<u8>().is_err()
    {
        ctx.emit(
            Diagnostic::error("firewall-rule", format!("unknown protocol `{p}`"))
                .label("unknown protocol")
                .help("use tcp, udp, icmp (or a protocol number)"),
            &path.key("proto"),
        );
    }
    for (key, ports) in [("dport", &rule.dport), ("sport", &rule.sport)] {
        if let Some(ps) = ports {
            if let Err(e) = ps.ranges() {
                ctx.emit(
                    Diagnostic::error("firewall-rule", e).label("invalid port"),
                    &path.key(key),
                );
            } else if rule.proto.is_none() && rule.macro_name.is_none() {
                ctx.emit(
                    Diagnostic::error(
                        "firewall-rule",
                        format!("`{key}` needs `proto` (tcp or udp)"),
                    )
                    .label("port without protocol")
                    .help("PVE refuses ports without a protocol; add `proto: tcp`"),
                    &path.key(key),
                );
            }
        }
    }
    for (key, val) in [("source", &rule.source), ("dest", &rule.dest)] {
        let Some(v) = val else {
            if key == "source"
                && rule.action == "ACCEPT"
                && rule.direction == FwDirection::In
                && rule.enable
            {
                ctx.emit_at_key(
                    Diagnostic::error(
                        "no-public-exposure",
                        format!("rule `{}` accepts inbound traffic from anywhere", rule.id),
                    )
                    .label("no source")
                    .help("add `source:` with the LAN, Tailscale or admin CIDR (remote access is Tailscale only)"),
                    path,
                );
            }
            continue;
        };
        let vp = path.key(key);
        match parse_addr_list(v) {
            Err(e) => ctx.emit(
                Diagnostic::error("source-cidr", e)
                    .label("not a CIDR, alias or ipset")
                    .help("write a CIDR (192.168.1.0/24), an alias name, or +ipset; ports go in dport"),
                &vp,
            ),
            Ok(items) => {
                for it in items {
                    match it {
                        AddrItem::Alias { name, .. } if !aliases.contains(name.as_str()) => ctx
                            .emit(
                                Diagnostic::error(
                                    "ref-unknown",
                                    format!("alias `{name}` is not declared"),
                                )
                                .label("unknown alias")
                                .help("declare it under `firewall.aliases`, or write a CIDR"),
                                &vp,
                            ),
                        AddrItem::Ipset { name, .. } if !ipsets.contains(name.as_str()) => ctx
                            .emit(
                                Diagnostic::error(
                                    "ref-unknown",
                                    format!("ipset `{name}` is not declared"),
                                )
                                .label("unknown ipset")
                                .help("declare it under `firewall.ipsets` (built-in: management, local_network)"),
                                &vp,
                            ),
                        AddrItem::Net { net, negated: false }
                            if key == "source"
                                && rule.action == "ACCEPT"
                                && rule.direction == FwDirection::In
                                && rule.enable
                                && !is_non_public(&net) =>
                        {
                            ctx.emit(
                                Diagnostic::error(
                                    "no-public-exposure",
                                    format!("rule `{}` accepts inbound traffic from public addresses ({net})", rule.id),
                                )
                                .label("public source")
                                .help("allow only LAN, Tailscale (100.64.0.0/10) or admin CIDRs: remote access is Tailscale only"),
                                &vp,
                            )
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// VM allowlists and matrix flows name sources by segment, `tailscale`,
/// `management`, alias or CIDR.
fn check_allowlists(ctx: &mut Ctx<'_>) {
    let spec = ctx.spec();
    for (i, vm) in spec.vms.iter().enumerate() {
        let Some(fw) = &vm.firewall else { continue };
        for (j, a) in fw.allow.iter().enumerate() {
            let p = root()
                .key("vms")
                .index(i)
                .key("firewall")
                .key("allow")
                .index(j);
            check_endpoint(ctx, &p.key("from"), &a.from, false);
            check_ports(ctx, &p, &a.ports);
        }
    }
    if let Some(m) = spec.firewall.as_ref().and_then(|f| f.matrix.as_ref()) {
        for (kind, flows) in [("allow", &m.allow), ("deny", &m.deny)] {
            for (j, f) in flows.iter().enumerate() {
                let p = root().key("firewall").key("matrix").key(kind).index(j);
                check_endpoint(ctx, &p.key("from"), &f.from, false);
                check_endpoint(ctx, &p.key("to"), &f.to, true);
                check_ports(ctx, &p, &f.ports);
            }
        }
    }
}

fn check_ports(ctx: &mut Ctx<'_>, p: &YamlPath, ports: &[PortSpec]) {
    for (k, port) in ports.iter().enumerate() {
        if let Err(e) = port.ranges() {
            ctx.emit(
                Diagnostic::error("firewall-rule", e).label("invalid port"),
                &p.key("ports").index(k),
            );
        }
    }
}

/// Resolves a matrix/allowlist endpoint name. `is_dest` also accepts VM names and
/// `node`.
fn check_endpoint(ctx: &mut Ctx<'_>, path: &YamlPath, name: &str, is_dest: bool) {
    let spec = ctx.spec();
    let known = name == "tailscale"
        || name == "management"
        || name == "any"
        || spec.networks.segments.contains_key(name)
        || spec
            .firewall
            .as_ref()
            .is_some_and(|f| f.aliases.contains_key(name))
        || (is_dest && (name == "node" || spec.vm_by_name(name).is_some()));
    if known {
        if name == "any" && !is_dest {
            ctx.emit(
                Diagnostic::error(
                    "no-public-exposure",
                    "`any` as a source admits the internet",
                )
                .label("any source")
                .help("name a segment (`lan`), `tailscale`, `management` or a CIDR"),
                path,
            );
        }
        return;
    }
    match name.parse::<Cidr>() {
        Ok(c) if !is_dest && !is_non_public(&c.0) => ctx.emit(
            Diagnostic::error(
                "no-public-exposure",
                format!("`{c}` is a public range: inbound from it would expose the lab"),
            )
            .label("public source")
            .help("allow only LAN, segment or Tailscale sources"),
            path,
        ),
        Ok(_) => {}
        Err(e) if name.contains(':') || name.starts_with(|c: char| c.is_ascii_digit()) => ctx.emit(
            Diagnostic::error("source-cidr", e)
                .label("not a CIDR")
                .help("write a CIDR such as 192.168.1.0/24; ports go in `ports`"),
            path,
        ),
        Err(_) => {
            let mut candidates: Vec<String> = spec.networks.segments.keys().cloned().collect();
            candidates.extend(["tailscale".to_string(), "management".to_string()]);
            if is_dest {
                candidates.push("node".into());
                candidates.extend(spec.vms.iter().map(|v| v.name.clone()));
            }
            let help = match labwright_spec::load::suggest(name, &candidates) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known names: {}", candidates.join(", ")),
            };
            ctx.emit(
                Diagnostic::error(
                    "ref-unknown",
                    format!("`{name}` is not a segment, VM, alias or CIDR"),
                )
                .label("unknown name")
                .help(help),
                path,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists() {
        let items =
            parse_addr_list("10.0.0.0/8, !192.168.1.5,+dc/management,admin-pc").unwrap_or_default();
        assert_eq!(items.len(), 4);
        assert!(matches!(items[1], AddrItem::Net { negated: true, .. }));
        assert!(matches!(&items[2], AddrItem::Ipset { name, .. } if name == "management"));
        assert!(parse_addr_list("192.168.1.5:22").is_err_and(|e| e.contains("port")));
        assert!(parse_addr_list("10.0.0.1-10.0.0.9").is_ok());
        assert!(parse_addr_list("").is_err());
    }

    #[test]
    fn public_ranges() {
        let n = |s: &str| {
            s.parse::<IpNet>()
                .unwrap_or_else(|_| IpNet::from(IpAddr::from([0, 0, 0, 0])))
        };
        assert!(is_non_public(&n("192.168.1.0/24")));
        assert!(is_non_public(&n("100.64.0.0/10")));
        assert!(!is_non_public(&n("0.0.0.0/0")));
        assert!(!is_non_public(&n("8.8.8.8/32")));
    }
}
