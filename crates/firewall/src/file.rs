//! `.fw` files: `cluster.fw`, `host.fw`, `<vmid>.fw`.
//!
//! Sections are `[OPTIONS]`, `[RULES]`, `[ALIASES]`, `[IPSET name]` and
//! `[GROUP name]` (which ones a file may hold depends on its kind). Lines
//! starting with `#` are comments. Parsing is strict: the first bad line
//! is reported with its number, because a rule silently dropped is
//! exactly the kind of surprise that locks people out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::addr::{AddrEntry, MAX_GROUP_NAME_LEN, MAX_IPSET_NAME_LEN, check_name};
use crate::error::{FileError, FirewallError};
use crate::model::{Alias, ClusterFirewall, GuestFirewall, HostFirewall, Ipset, IpsetEntry};
use crate::rule::{Rule, RuleContext, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cluster,
    Host,
    Guest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Section {
    None,
    Options,
    Rules,
    Aliases,
    Ipset(String),
    Group(String),
}

/// One parsed line, handed to the per-kind sink.
enum Item {
    Option(String, String),
    Rule(Rule),
    Alias(Alias),
    IpsetHeader(String, Option<String>),
    IpsetEntry(String, IpsetEntry),
    GroupHeader(String, Option<String>),
    GroupRule(String, Rule),
}

fn split_comment(line: &str) -> (&str, Option<String>) {
    match line.split_once('#') {
        Some((body, c)) => {
            let c = c.trim();
            (
                body.trim(),
                if c.is_empty() {
                    None
                } else {
                    Some(c.to_string())
                },
            )
        }
        None => (line.trim(), None),
    }
}

fn parse_lines(
    text: &str,
    kind: Kind,
    mut sink: impl FnMut(Item) -> Result<(), FirewallError>,
) -> Result<(), FileError> {
    let mut section = Section::None;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let at = |error: FirewallError| FileError {
            line: line_no,
            error,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let (inner, after) = rest
                .split_once(']')
                .ok_or_else(|| at(FirewallError::UnparsedLine(line.to_string())))?;
            let (after, comment) = split_comment(after);
            if !after.is_empty() {
                return Err(at(FirewallError::UnparsedLine(line.to_string())));
            }
            let mut words = inner.split_whitespace();
            let head = words.next().unwrap_or_default().to_ascii_uppercase();
            let name = words.next();
            if words.next().is_some() {
                return Err(at(FirewallError::UnknownSection(inner.to_string())));
            }
            section = match (head.as_str(), name, kind) {
                ("OPTIONS", None, _) => Section::Options,
                ("RULES", None, _) => Section::Rules,
                ("ALIASES", None, Kind::Cluster | Kind::Guest) => Section::Aliases,
                ("IPSET", Some(n), Kind::Cluster | Kind::Guest) => {
                    check_name("ipset", n, MAX_IPSET_NAME_LEN).map_err(at)?;
                    sink(Item::IpsetHeader(n.to_string(), comment)).map_err(at)?;
                    Section::Ipset(n.to_string())
                }
                ("GROUP", Some(n), Kind::Cluster) => {
                    check_name("security group", n, MAX_GROUP_NAME_LEN).map_err(at)?;
                    sink(Item::GroupHeader(n.to_string(), comment)).map_err(at)?;
                    Section::Group(n.to_string())
                }
                _ => return Err(at(FirewallError::UnknownSection(inner.to_string()))),
            };
            continue;
        }
        let item = match &section {
            Section::None => return Err(at(FirewallError::UnparsedLine(line.to_string()))),
            Section::Options => {
                let (k, v) = line
                    .split_once(':')
                    .ok_or_else(|| at(FirewallError::UnparsedLine(line.to_string())))?;
                Item::Option(k.trim().to_string(), v.trim().to_string())
            }
            Section::Rules => {
                let rule = Rule::parse(line).map_err(at)?;
                let ctx = match kind {
                    Kind::Cluster => RuleContext::Cluster,
                    Kind::Host => RuleContext::Host,
                    Kind::Guest => RuleContext::Guest,
                };
                rule.validate_for(ctx).map_err(at)?;
                Item::Rule(rule)
            }
            Section::Group(g) => {
                let rule = Rule::parse(line).map_err(at)?;
                rule.validate_for(RuleContext::SecurityGroup).map_err(at)?;
                Item::GroupRule(g.clone(), rule)
            }
            Section::Aliases => {
                let (body, comment) = split_comment(line);
                let mut words = body.split_whitespace();
                let (Some(name), Some(cidr), None) = (words.next(), words.next(), words.next())
                else {
                    return Err(at(FirewallError::UnparsedLine(line.to_string())));
                };
                let mut alias = Alias::new(name, cidr).map_err(at)?;
                alias.comment = comment;
                Item::Alias(alias)
            }
            Section::Ipset(s) => {
                let (body, comment) = split_comment(line);
                let mut entry = IpsetEntry::parse(body).map_err(at)?;
                entry.comment = comment;
                Item::IpsetEntry(s.clone(), entry)
            }
        };
        sink(item).map_err(at)?;
    }
    Ok(())
}

fn parse_bool(key: &str, v: &str) -> Result<bool, FirewallError> {
    match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(FirewallError::InvalidOption {
            key: key.to_string(),
            value: v.to_string(),
        }),
    }
}

fn parse_policy(v: &str) -> Result<Verdict, FirewallError> {
    Verdict::parse(v).map_err(|_| FirewallError::InvalidPolicy(v.to_string()))
}

fn set_ipset_header(ipsets: &mut BTreeMap<String, Ipset>, name: String, comment: Option<String>) {
    ipsets.entry(name).or_default().comment = comment;
}

/// Parse `cluster.fw`.
pub fn parse_cluster_fw(text: &str) -> Result<ClusterFirewall, FileError> {
    let mut c = ClusterFirewall::default();
    parse_lines(text, Kind::Cluster, |item| {
        match item {
            Item::Option(k, v) => match k.as_str() {
                "enable" => c.options.enable = parse_bool(&k, &v)?,
                "policy_in" => c.options.policy_in = Some(parse_policy(&v)?),
                "policy_out" => c.options.policy_out = Some(parse_policy(&v)?),
                "policy_forward" => c.options.policy_forward = Some(parse_policy(&v)?),
                "ebtables" => c.options.ebtables = Some(parse_bool(&k, &v)?),
                _ => {
                    c.options.extra.insert(k, v);
                }
            },
            Item::Rule(r) => c.rules.push(r),
            Item::Alias(a) => c.add_alias(a),
            Item::IpsetHeader(n, comment) => set_ipset_header(&mut c.ipsets, n, comment),
            Item::IpsetEntry(n, e) => c.ipsets.entry(n).or_default().entries.push(e),
            Item::GroupHeader(n, comment) => c.groups.entry(n).or_default().comment = comment,
            Item::GroupRule(n, r) => c.groups.entry(n).or_default().rules.push(r),
        }
        Ok(())
    })?;
    Ok(c)
}

/// Parse `host.fw` (node network facts stay empty; fill `network` yourself).
pub fn parse_host_fw(text: &str) -> Result<HostFirewall, FileError> {
    let mut h = HostFirewall::default();
    parse_lines(text, Kind::Host, |item| {
        match item {
            Item::Option(k, v) => match k.as_str() {
                "enable" => h.options.enable = parse_bool(&k, &v)?,
                "nftables" => h.options.nftables = parse_bool(&k, &v)?,
                _ => {
                    h.options.extra.insert(k, v);
                }
            },
            Item::Rule(r) => h.rules.push(r),
            _ => return Err(FirewallError::UnparsedLine("not allowed in host.fw".into())),
        }
        Ok(())
    })?;
    Ok(h)
}

/// Parse `<vmid>.fw` (NICs and node stay empty; fill them yourself).
pub fn parse_guest_fw(text: &str) -> Result<GuestFirewall, FileError> {
    let mut g = GuestFirewall::default();
    parse_lines(text, Kind::Guest, |item| {
        match item {
            Item::Option(k, v) => match k.as_str() {
                "enable" => g.options.enable = parse_bool(&k, &v)?,
                "policy_in" => g.options.policy_in = Some(parse_policy(&v)?),
                "policy_out" => g.options.policy_out = Some(parse_policy(&v)?),
                "dhcp" => g.options.dhcp = parse_bool(&k, &v)?,
                _ => {
                    g.options.extra.insert(k, v);
                }
            },
            Item::Rule(r) => g.rules.push(r),
            Item::Alias(a) => g.add_alias(a),
            Item::IpsetHeader(n, comment) => set_ipset_header(&mut g.ipsets, n, comment),
            Item::IpsetEntry(n, e) => g.ipsets.entry(n).or_default().entries.push(e),
            Item::GroupHeader(..) | Item::GroupRule(..) => {
                return Err(FirewallError::UnparsedLine(
                    "security groups live in cluster.fw".into(),
                ));
            }
        }
        Ok(())
    })?;
    Ok(g)
}

fn comment_suffix(c: &Option<String>) -> String {
    match c {
        Some(c) if !c.trim().is_empty() => format!(" # {}", c.trim()),
        _ => String::new(),
    }
}

fn write_options(out: &mut String, opts: &[(String, String)]) {
    if opts.is_empty() {
        return;
    }
    out.push_str("[OPTIONS]\n\n");
    for (k, v) in opts {
        let _ = writeln!(out, "{k}: {v}");
    }
    out.push('\n');
}

fn write_aliases(out: &mut String, aliases: &BTreeMap<String, Alias>) {
    if aliases.is_empty() {
        return;
    }
    out.push_str("[ALIASES]\n\n");
    for a in aliases.values() {
        let cidr = match a.cidr {
            AddrEntry::Ip(ip) => ip.to_string(),
            AddrEntry::Net(n) => n.to_string(),
        };
        let _ = writeln!(out, "{} {cidr}{}", a.name, comment_suffix(&a.comment));
    }
    out.push('\n');
}

fn write_ipsets(out: &mut String, ipsets: &BTreeMap<String, Ipset>) {
    for (name, set) in ipsets {
        let _ = writeln!(out, "[IPSET {name}]{}\n", comment_suffix(&set.comment));
        for e in &set.entries {
            let _ = writeln!(out, "{e}{}", comment_suffix(&e.comment));
        }
        out.push('\n');
    }
}

fn write_rules(out: &mut String, header: &str, rules: &[Rule]) -> Result<(), FirewallError> {
    out.push_str(header);
    out.push_str("\n\n");
    for r in rules {
        r.check_fields()?;
        let _ = writeln!(out, "{r}");
    }
    out.push('\n');
    Ok(())
}

fn bool_opt(b: bool) -> String {
    u8::from(b).to_string()
}

/// Write `cluster.fw`. Fails only on rules that cannot be written (a
/// comment with a line break).
pub fn write_cluster_fw(c: &ClusterFirewall) -> Result<String, FirewallError> {
    let mut out = String::new();
    let mut opts = vec![("enable".to_string(), bool_opt(c.options.enable))];
    if let Some(p) = c.options.policy_in {
        opts.push(("policy_in".into(), p.to_string()));
    }
    if let Some(p) = c.options.policy_out {
        opts.push(("policy_out".into(), p.to_string()));
    }
    if let Some(p) = c.options.policy_forward {
        opts.push(("policy_forward".into(), p.to_string()));
    }
    if let Some(e) = c.options.ebtables {
        opts.push(("ebtables".into(), bool_opt(e)));
    }
    opts.extend(c.options.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    write_options(&mut out, &opts);
    write_aliases(&mut out, &c.aliases);
    write_ipsets(&mut out, &c.ipsets);
    if !c.rules.is_empty() {
        write_rules(&mut out, "[RULES]", &c.rules)?;
    }
    for (name, g) in &c.groups {
        write_rules(
            &mut out,
            &format!("[GROUP {name}]{}", comment_suffix(&g.comment)),
            &g.rules,
        )?;
    }
    Ok(out)
}

/// Write `host.fw`.
pub fn write_host_fw(h: &HostFirewall) -> Result<String, FirewallError> {
    let mut out = String::new();
    let mut opts = vec![("enable".to_string(), bool_opt(h.options.enable))];
    if h.options.nftables {
        opts.push(("nftables".into(), "1".into()));
    }
    opts.extend(h.options.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    write_options(&mut out, &opts);
    if !h.rules.is_empty() {
        write_rules(&mut out, "[RULES]", &h.rules)?;
    }
    Ok(out)
}

/// Write `<vmid>.fw`.
pub fn write_guest_fw(g: &GuestFirewall) -> Result<String, FirewallError> {
    let mut out = String::new();
    let mut opts = vec![("enable".to_string(), bool_opt(g.options.enable))];
    if let Some(p) = g.options.policy_in {
        opts.push(("policy_in".into(), p.to_string()));
    }
    if let Some(p) = g.options.policy_out {
        opts.push(("policy_out".into(), p.to_string()));
    }
    if g.options.dhcp {
        opts.push(("dhcp".into(), "1".into()));
    }
    opts.extend(g.options.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    write_options(&mut out, &opts);
    write_aliases(&mut out, &g.aliases);
    write_ipsets(&mut out, &g.ipsets);
    if !g.rules.is_empty() {
        write_rules(&mut out, "[RULES]", &g.rules)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "\
[OPTIONS]
enable: 1
policy_in: DROP
log_ratelimit: enable=1,rate=1/second,burst=5

[ALIASES]
admin_lan 192.168.1.0/24 # admin LAN
tailnet 100.64.0.0/10

[IPSET management] # who may manage
dc/admin_lan
100.64.0.0/10
!100.64.0.66 # lost laptop

[RULES]
IN SSH(ACCEPT) -source +management # lw:ssh
|IN DROP -p tcp -dport 8006

[GROUP web] # web servers
IN HTTPS(ACCEPT)
";

    #[test]
    fn cluster_file_round_trip() {
        let c = parse_cluster_fw(CLUSTER).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.options.enable);
        assert_eq!(c.options.policy_in, Some(Verdict::Drop));
        assert_eq!(c.aliases.len(), 2);
        assert_eq!(c.ipsets.get("management").map(|s| s.entries.len()), Some(3));
        assert!(
            c.ipsets
                .get("management")
                .is_some_and(|s| s.entries.iter().any(|e| e.nomatch))
        );
        assert_eq!(c.rules.len(), 2);
        assert!(!c.rules.get(1).is_some_and(|r| r.enable));
        assert_eq!(c.groups.get("web").map(|g| g.rules.len()), Some(1));
        let text = write_cluster_fw(&c).unwrap_or_default();
        assert_eq!(parse_cluster_fw(&text), Ok(c));
    }

    #[test]
    fn errors_carry_line_numbers() {
        let bad = "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 99999\n";
        let e = parse_cluster_fw(bad);
        assert_eq!(
            e,
            Err(FileError {
                line: 5,
                error: FirewallError::InvalidPort("99999".into())
            })
        );
        assert!(parse_cluster_fw("IN ACCEPT\n").is_err());
        assert!(parse_cluster_fw("[FROB]\n").is_err());
        assert!(parse_host_fw("[IPSET x]\n").is_err());
        assert!(parse_guest_fw("[RULES]\nFORWARD ACCEPT\n").is_err());
        assert!(parse_guest_fw("[RULES]\nIN ACCEPT -i vmbr0\n").is_err());
        assert!(parse_cluster_fw("[OPTIONS]\nenable: yes\n").is_err());
        assert!(parse_cluster_fw("[OPTIONS]\npolicy_in: MAYBE\n").is_err());
    }

    #[test]
    fn guest_and_host_files() {
        let g = parse_guest_fw(
            "[OPTIONS]\nenable: 1\npolicy_in: REJECT\ndhcp: 1\n\n[RULES]\nIN ACCEPT -i net0 -p tcp -dport 8123\n",
        );
        let g = g.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.options.policy_in, Some(Verdict::Reject));
        assert!(g.options.dhcp);
        assert_eq!(
            parse_guest_fw(&write_guest_fw(&g).unwrap_or_default()),
            Ok(g)
        );
        let h =
            parse_host_fw("[OPTIONS]\nenable: 0\nnftables: 1\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(!h.options.enable && h.options.nftables);
        assert_eq!(parse_host_fw(&write_host_fw(&h).unwrap_or_default()), Ok(h));
    }
}
