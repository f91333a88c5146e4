//! Reading `.fw` files: `cluster.fw`, `host.fw`, `<vmid>.fw`.
//!
//! Sections are `[OPTIONS]`, `[RULES]`, `[ALIASES]`, `[IPSET name]` and
//! `[group name]` (which ones a file may hold depends on its kind). Lines
//! starting with `#` are comments.
//!
//! Three readings (see [`Dialect`]):
//! * labwright's own ([`parse_cluster_fw`], …): every spelling some PVE
//!   parser accepts; the first line none of them reads is an error with its
//!   number, because a rule silently dropped is exactly the kind of
//!   surprise that locks people out;
//! * `pve-firewall`'s ([`parse_cluster_fw_as`] with [`Backend::Iptables`]):
//!   a line it cannot read is left out with a warning, as PVE does; names
//!   of ipsets and groups are lower-cased; a rule naming an ipset or alias
//!   not defined *above it* is left out (PVE checks rules while it reads);
//! * `proxmox-firewall`'s (with [`Backend::Nftables`]): the first line it
//!   cannot read makes it refuse the whole file, and the node keeps running
//!   whatever ruleset it had.

use std::collections::{BTreeMap, BTreeSet};

use crate::addr::{AddrEntry, AddressRef, MAX_GROUP_NAME_LEN, MAX_IPSET_NAME_LEN, check_name};
use crate::error::{FileError, FirewallError};
use crate::eval::Backend;
use crate::model::IpsetTarget;
use crate::model::{Alias, ClusterFirewall, GuestFirewall, HostFirewall, Ipset, IpsetEntry};
use crate::rule::{Rule, RuleContext, Verdict};
use crate::syntax::{Dialect, parse_rule};

pub use crate::file_write::{write_cluster_fw, write_guest_fw, write_host_fw};

/// A file as one backend reads it, with the lines it left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    /// What the backend makes of the file.
    pub value: T,
    /// Lines left out: every line `pve-firewall` cannot read; for
    /// `proxmox-firewall`, which refuses a file it cannot read, only rules
    /// naming a macro it does not know (by exact name).
    pub skipped: Vec<FileError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cluster,
    Host,
    Guest,
}

impl Kind {
    fn ctx(self) -> RuleContext {
        match self {
            Kind::Cluster => RuleContext::Cluster,
            Kind::Host => RuleContext::Host,
            Kind::Guest => RuleContext::Guest,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Section {
    Options,
    Rules,
    Aliases,
    Ipset(String),
    Group(String),
    /// Read but not used by this kind of file (proxmox-firewall parses
    /// `[ALIASES]` and groups in any file).
    Ignored,
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

/// Names defined so far, for pve-firewall's read-time reference check.
#[derive(Default)]
struct Known {
    ipsets: BTreeSet<String>,
    aliases: BTreeSet<String>,
}

impl Known {
    fn of(c: &ClusterFirewall) -> Self {
        Known {
            ipsets: c.ipsets.keys().cloned().collect(),
            aliases: c.aliases.keys().map(|k| k.to_ascii_lowercase()).collect(),
        }
    }
}

/// pve-firewall's `verify_rule` checks that a rule's ipset (name as
/// written, against the lower-cased names defined so far) and alias
/// (case-insensitive) exist when it reads the rule.
fn ipt_refs_known(rule: &Rule, known: &[&Known]) -> Result<(), FirewallError> {
    for a in [&rule.source, &rule.dest].into_iter().flatten() {
        match a {
            AddressRef::Ipset { name, .. } if !known.iter().any(|k| k.ipsets.contains(name)) => {
                return Err(FirewallError::UnparsedLine(format!(
                    "no such ipset '{name}' (pve-firewall needs it defined above the rule, in lower case)"
                )));
            }
            AddressRef::Alias { name, .. }
                if !known
                    .iter()
                    .any(|k| k.aliases.contains(&name.to_ascii_lowercase())) =>
            {
                return Err(FirewallError::UnparsedLine(format!(
                    "no such alias '{name}' (pve-firewall needs it defined above the rule)"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

fn split_comment(line: &str) -> (&str, Option<String>) {
    match line.split_once('#') {
        Some((body, c)) => {
            let c = c.trim();
            (body.trim(), (!c.is_empty()).then(|| c.to_string()))
        }
        None => (line.trim(), None),
    }
}

/// `NAME] # comment` after `[IPSET` / `[group`.
fn named_tail(tail: &str, strict_space: bool) -> Option<(&str, Option<String>)> {
    if strict_space && !tail.starts_with(char::is_whitespace) {
        return None;
    }
    let (inner, after) = tail.split_once(']')?;
    let name = inner.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let after = after.trim();
    let comment = match after.strip_prefix('#') {
        Some(c) => (!c.trim().is_empty()).then(|| c.trim().to_string()),
        None if after.is_empty() => None,
        None => return None,
    };
    Some((name, comment))
}

/// What a `[...]` line is, in the dialect; `Ok(None)` when pve-firewall
/// does not take it for a header (it then reads it as a line of the
/// current section).
fn header(line: &str, kind: Kind, dialect: Dialect) -> Result<Option<Header>, FirewallError> {
    let unknown = || FirewallError::UnknownSection(line.to_string());
    let allowed = |h: &Header| match h {
        Header::Options | Header::Rules | Header::Skip => true,
        Header::Aliases => kind != Kind::Host,
        Header::Ipset(..) => kind != Kind::Host,
        Header::Group(..) => kind == Kind::Cluster,
    };
    let h = match dialect {
        Dialect::Of(Backend::Nftables) => {
            let h = if line.eq_ignore_ascii_case("[OPTIONS]") {
                Header::Options
            } else if line.eq_ignore_ascii_case("[RULES]") {
                Header::Rules
            } else if line.eq_ignore_ascii_case("[ALIASES]") {
                Header::Aliases
            } else if let Some(t) = line.strip_prefix("[IPSET") {
                let (n, c) = named_tail(t, true).ok_or_else(unknown)?;
                Header::Ipset(n.to_string(), c)
            } else if let Some(t) = line.strip_prefix("[group") {
                let (n, c) = named_tail(t, true).ok_or_else(unknown)?;
                Header::Group(n.to_string(), c)
            } else {
                return Err(unknown());
            };
            return match h {
                Header::Ipset(..) if kind == Kind::Host => Err(unknown()),
                Header::Aliases | Header::Group(..) if !allowed(&h) => Ok(Some(Header::Skip)),
                h => Ok(Some(h)),
            };
        }
        Dialect::Of(Backend::Iptables) => {
            let lower = line.to_ascii_lowercase();
            let h = match lower.as_str() {
                "[options]" => Some(Header::Options),
                "[rules]" => Some(Header::Rules),
                "[aliases]" => Some(Header::Aliases),
                _ => {
                    let tail = |p: &str| {
                        lower
                            .strip_prefix(p)
                            .and_then(|_| line.get(p.len()..))
                            .and_then(|t| named_tail(t, true))
                    };
                    if let Some((n, c)) = tail("[ipset") {
                        Some(Header::Ipset(n.to_string(), c))
                    } else {
                        tail("[group").map(|(n, c)| Header::Group(n.to_string(), c))
                    }
                }
            };
            return Ok(h.filter(allowed));
        }
        Dialect::Any => {
            let rest = line.strip_prefix('[').ok_or_else(unknown)?;
            let (inner, after) = rest.split_once(']').ok_or_else(unknown)?;
            let after = after.trim();
            let comment = match after.strip_prefix('#') {
                Some(c) => (!c.trim().is_empty()).then(|| c.trim().to_string()),
                None if after.is_empty() => None,
                None => return Err(FirewallError::UnparsedLine(line.to_string())),
            };
            let mut words = inner.split_whitespace();
            let head = words.next().unwrap_or_default().to_ascii_uppercase();
            let name = words.next();
            if words.next().is_some() {
                return Err(unknown());
            }
            match (head.as_str(), name) {
                ("OPTIONS", None) => Header::Options,
                ("RULES", None) => Header::Rules,
                ("ALIASES", None) => Header::Aliases,
                ("IPSET", Some(n)) => Header::Ipset(n.to_string(), comment),
                ("GROUP", Some(n)) => Header::Group(n.to_string(), comment),
                _ => return Err(unknown()),
            }
        }
    };
    if allowed(&h) {
        Ok(Some(h))
    } else {
        Err(unknown())
    }
}

enum Header {
    Options,
    Rules,
    Aliases,
    Ipset(String, Option<String>),
    Group(String, Option<String>),
    Skip,
}

/// Reads the lines; returns the ones left out (pve-firewall), or the first
/// error (labwright's and proxmox-firewall's readings).
fn parse_lines(
    text: &str,
    kind: Kind,
    dialect: Dialect,
    cluster: Option<&ClusterFirewall>,
    mut sink: impl FnMut(Item) -> Result<(), FirewallError>,
) -> Result<Vec<FileError>, FileError> {
    let lenient = dialect == Dialect::Of(Backend::Iptables);
    let ipt = lenient;
    let mut skipped = Vec::new();
    let mut section: Option<Section> = None;
    let mut own = Known::default();
    let outer = cluster.map(Known::of).unwrap_or_default();
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let res = (|| -> Result<(), FirewallError> {
            if line.starts_with('[') {
                let h = header(line, kind, dialect);
                // pve-firewall: an unrecognised header is a line like any other
                if let Some(h) = h? {
                    section = None;
                    match h {
                        Header::Options => section = Some(Section::Options),
                        Header::Rules => section = Some(Section::Rules),
                        Header::Aliases => section = Some(Section::Aliases),
                        Header::Skip => section = Some(Section::Ignored),
                        Header::Ipset(name, comment) => {
                            check_name("ipset", &name, MAX_IPSET_NAME_LEN)?;
                            let name = if ipt { name.to_ascii_lowercase() } else { name };
                            own.ipsets.insert(name.clone());
                            sink(Item::IpsetHeader(name.clone(), comment))?;
                            section = Some(Section::Ipset(name));
                        }
                        Header::Group(name, comment) => {
                            check_name("security group", &name, MAX_GROUP_NAME_LEN)?;
                            let name = if ipt { name.to_ascii_lowercase() } else { name };
                            sink(Item::GroupHeader(name.clone(), comment))?;
                            section = Some(Section::Group(name));
                        }
                    }
                    return Ok(());
                }
            }
            let Some(sec) = &section else {
                return Err(FirewallError::UnparsedLine(format!(
                    "{line} (not inside a section)"
                )));
            };
            let item = match sec {
                Section::Ignored => return Ok(()),
                Section::Options => {
                    let (k, v) = line
                        .split_once(':')
                        .ok_or_else(|| FirewallError::UnparsedLine(line.to_string()))?;
                    let k = k.trim();
                    let k = if dialect == Dialect::Of(Backend::Nftables) {
                        k.to_string()
                    } else {
                        k.to_ascii_lowercase()
                    };
                    Item::Option(k, v.trim().to_string())
                }
                Section::Rules => {
                    let rule = parse_rule(line, dialect)?;
                    rule.validate_for(kind.ctx())?;
                    if ipt {
                        rule.ip_family()?;
                        ipt_refs_known(&rule, &[&own, &outer])?;
                    }
                    Item::Rule(rule)
                }
                Section::Group(g) => {
                    let rule = parse_rule(line, dialect)?;
                    rule.validate_for(RuleContext::SecurityGroup)?;
                    if ipt {
                        if let Some(i) = &rule.iface {
                            return Err(FirewallError::UnparsedLine(format!(
                                "-i {i}: pve-firewall allows no interface on rules inside a security group"
                            )));
                        }
                        rule.ip_family()?;
                        ipt_refs_known(&rule, &[&own])?;
                    }
                    Item::GroupRule(g.clone(), rule)
                }
                Section::Aliases => {
                    let alias = parse_alias(line, dialect)?;
                    own.aliases.insert(alias.name.to_ascii_lowercase());
                    Item::Alias(alias)
                }
                Section::Ipset(s) => {
                    let (body, comment) = split_comment(line);
                    let mut entry = IpsetEntry::parse(body)?;
                    if ipt {
                        if let IpsetTarget::Alias { name, .. } = &entry.target
                            && !own.aliases.contains(&name.to_ascii_lowercase())
                            && !outer.aliases.contains(&name.to_ascii_lowercase())
                        {
                            return Err(FirewallError::UnparsedLine(format!(
                                "no such alias '{name}' (pve-firewall needs it defined above the ipset)"
                            )));
                        }
                        if let IpsetTarget::Addr(AddrEntry::Net(net)) = &entry.target
                            && net.prefix_len() == 0
                        {
                            return Err(FirewallError::InvalidAddress(format!(
                                "{net}: a zero prefix is not allowed in ipset entries"
                            )));
                        }
                    }
                    entry.comment = comment;
                    Item::IpsetEntry(s.clone(), entry)
                }
            };
            sink(item)
        })();
        if let Err(error) = res {
            let e = FileError {
                line: line_no,
                error,
            };
            // proxmox-firewall reads a rule with a macro it does not know
            // and leaves it out when it generates the ruleset.
            let nft_skips = dialect == Dialect::Of(Backend::Nftables)
                && matches!(e.error, FirewallError::UnknownMacro(_));
            if lenient || nft_skips {
                skipped.push(e);
            } else {
                return Err(e);
            }
        }
    }
    Ok(skipped)
}

fn parse_alias(line: &str, dialect: Dialect) -> Result<Alias, FirewallError> {
    let (body, comment) = split_comment(line);
    let mut words = body.split_whitespace();
    let (Some(name), Some(cidr), None) = (words.next(), words.next(), words.next()) else {
        return Err(FirewallError::UnparsedLine(line.to_string()));
    };
    if dialect == Dialect::Of(Backend::Iptables) && body.contains("  ") {
        return Err(FirewallError::UnparsedLine(format!(
            "{line} (pve-firewall wants one space between name and address)"
        )));
    }
    let mut alias = Alias::new(name, cidr)?;
    alias.comment = comment;
    Ok(alias)
}

fn invalid(key: &str, v: &str) -> FirewallError {
    FirewallError::InvalidOption {
        key: key.to_string(),
        value: v.to_string(),
    }
}

/// A 0/1 switch. proxmox-firewall also takes `true/false/on/off/yes/no`.
fn parse_bool(key: &str, v: &str, dialect: Dialect) -> Result<bool, FirewallError> {
    match v {
        "0" => return Ok(false),
        "1" => return Ok(true),
        _ => {}
    }
    if dialect != Dialect::Of(Backend::Iptables) {
        let l = v.to_ascii_lowercase();
        if ["true", "on", "yes"].contains(&l.as_str()) {
            return Ok(true);
        }
        if ["false", "off", "no"].contains(&l.as_str()) {
            return Ok(false);
        }
    }
    Err(invalid(key, v))
}

/// The datacenter switch: pve-firewall reads any number and takes a value
/// above 1 for a time stamp (the GUI's "enable for 60 s" safety), on only
/// within a minute of it — so, for a file at rest, off.
fn parse_cluster_enable(v: &str, dialect: Dialect) -> Result<bool, FirewallError> {
    if dialect == Dialect::Of(Backend::Iptables)
        && !v.is_empty()
        && v.bytes().all(|b| b.is_ascii_digit())
    {
        return Ok(v.trim_start_matches('0') == "1");
    }
    parse_bool("enable", v, dialect)
}

fn parse_policy(key: &str, v: &str) -> Result<Verdict, FirewallError> {
    Verdict::parse(&v.to_ascii_uppercase()).map_err(|_| {
        if key.is_empty() {
            FirewallError::InvalidPolicy(v.to_string())
        } else {
            FirewallError::InvalidPolicy(format!("{v} (for {key})"))
        }
    })
}

/// Options pve-firewall knows per file kind (others it warns about and
/// drops); proxmox-firewall ignores keys it does not know.
const IPT_CLUSTER_OPTS: &[&str] = &["log_ratelimit"];
const IPT_HOST_OPTS: &[&str] = &[
    "nosmurfs",
    "tcpflags",
    "ndp",
    "log_nf_conntrack",
    "nf_conntrack_allow_invalid",
    "protection_synflood",
    "log_level_in",
    "log_level_out",
    "log_level_forward",
    "tcp_flags_log_level",
    "smurf_log_level",
    "nf_conntrack_helpers",
    "nf_conntrack_max",
    "nf_conntrack_tcp_timeout_established",
    "nf_conntrack_tcp_timeout_syn_recv",
    "protection_synflood_rate",
    "protection_synflood_burst",
    "protection_limit",
];
const IPT_GUEST_OPTS: &[&str] = &[
    "ndp",
    "radv",
    "macfilter",
    "ipfilter",
    "ips",
    "log_level_in",
    "log_level_out",
    "ips_queues",
    "layer2_protocols",
];

fn extra_option(
    extra: &mut BTreeMap<String, String>,
    known: &[&str],
    k: String,
    v: String,
    dialect: Dialect,
) -> Result<(), FirewallError> {
    if dialect == Dialect::Of(Backend::Iptables) && !known.contains(&k.as_str()) {
        return Err(FirewallError::UnparsedLine(format!(
            "can't parse option '{k}: {v}'"
        )));
    }
    extra.insert(k, v);
    Ok(())
}

/// proxmox-firewall refuses a file that sets an option twice.
fn once(seen: &mut BTreeSet<String>, k: &str, dialect: Dialect) -> Result<(), FirewallError> {
    if !seen.insert(k.to_string()) && dialect == Dialect::Of(Backend::Nftables) {
        return Err(FirewallError::UnparsedLine(format!(
            "duplicate option '{k}'"
        )));
    }
    Ok(())
}

fn finish<T>(value: T, res: Result<Vec<FileError>, FileError>) -> Result<Parsed<T>, FileError> {
    res.map(|skipped| Parsed { value, skipped })
}

fn cluster_as(text: &str, dialect: Dialect) -> Result<Parsed<ClusterFirewall>, FileError> {
    let mut c = ClusterFirewall::default();
    let mut seen = BTreeSet::new();
    let mut groups_seen = BTreeSet::new();
    let res = parse_lines(text, Kind::Cluster, dialect, None, |item| {
        match item {
            Item::Option(k, v) => {
                once(&mut seen, &k, dialect)?;
                match k.as_str() {
                    "enable" => c.options.enable = parse_cluster_enable(&v, dialect)?,
                    "policy_in" => c.options.policy_in = Some(parse_policy(&k, &v)?),
                    "policy_out" => c.options.policy_out = Some(parse_policy(&k, &v)?),
                    "policy_forward" => c.options.policy_forward = Some(parse_policy(&k, &v)?),
                    "ebtables" => c.options.ebtables = Some(parse_bool(&k, &v, dialect)?),
                    _ => extra_option(&mut c.options.extra, IPT_CLUSTER_OPTS, k, v, dialect)?,
                }
            }
            Item::Rule(r) => c.rules.push(r),
            Item::Alias(a) => add_alias(&mut c.aliases, a, dialect)?,
            Item::IpsetHeader(n, comment) => add_ipset(&mut c.ipsets, n, comment, dialect)?,
            Item::IpsetEntry(n, e) => c.ipsets.entry(n).or_default().entries.push(e),
            Item::GroupHeader(n, comment) => {
                if !groups_seen.insert(n.clone()) && dialect != Dialect::Of(Backend::Iptables) {
                    return Err(FirewallError::UnparsedLine(format!(
                        "duplicate group '{n}'"
                    )));
                }
                // pve-firewall starts a group afresh when it sees it again
                c.groups.insert(
                    n,
                    crate::model::SecurityGroup {
                        comment,
                        rules: Vec::new(),
                    },
                );
            }
            Item::GroupRule(n, r) => c.groups.entry(n).or_default().rules.push(r),
        }
        Ok(())
    });
    finish(c, res)
}

fn add_alias(
    aliases: &mut BTreeMap<String, Alias>,
    a: Alias,
    dialect: Dialect,
) -> Result<(), FirewallError> {
    let key = a.name.to_ascii_lowercase();
    if aliases.contains_key(&key) && dialect != Dialect::Of(Backend::Iptables) {
        return Err(FirewallError::UnparsedLine(format!(
            "duplicate alias '{}'",
            a.name
        )));
    }
    aliases.insert(key, a);
    Ok(())
}

fn add_ipset(
    ipsets: &mut BTreeMap<String, Ipset>,
    name: String,
    comment: Option<String>,
    dialect: Dialect,
) -> Result<(), FirewallError> {
    if ipsets.contains_key(&name) && dialect != Dialect::Of(Backend::Iptables) {
        return Err(FirewallError::UnparsedLine(format!(
            "duplicate ipset '{name}'"
        )));
    }
    // pve-firewall starts a set afresh when it sees it again
    ipsets.insert(
        name,
        Ipset {
            comment,
            entries: Vec::new(),
        },
    );
    Ok(())
}

fn host_as(
    text: &str,
    dialect: Dialect,
    cluster: Option<&ClusterFirewall>,
) -> Result<Parsed<HostFirewall>, FileError> {
    let mut h = HostFirewall::default();
    let mut seen = BTreeSet::new();
    let res = parse_lines(text, Kind::Host, dialect, cluster, |item| {
        match item {
            Item::Option(k, v) => {
                once(&mut seen, &k, dialect)?;
                match k.as_str() {
                    "enable" => h.options.enable = parse_bool(&k, &v, dialect)?,
                    "nftables" => h.options.nftables = parse_bool(&k, &v, dialect)?,
                    _ => extra_option(&mut h.options.extra, IPT_HOST_OPTS, k, v, dialect)?,
                }
            }
            Item::Rule(r) => h.rules.push(r),
            _ => return Err(FirewallError::UnparsedLine("not allowed in host.fw".into())),
        }
        Ok(())
    });
    finish(h, res)
}

fn guest_as(
    text: &str,
    dialect: Dialect,
    cluster: Option<&ClusterFirewall>,
) -> Result<Parsed<GuestFirewall>, FileError> {
    let mut g = GuestFirewall::default();
    let mut seen = BTreeSet::new();
    let res = parse_lines(text, Kind::Guest, dialect, cluster, |item| {
        match item {
            Item::Option(k, v) => {
                once(&mut seen, &k, dialect)?;
                match k.as_str() {
                    "enable" => g.options.enable = parse_bool(&k, &v, dialect)?,
                    "policy_in" => g.options.policy_in = Some(parse_policy(&k, &v)?),
                    "policy_out" => g.options.policy_out = Some(parse_policy(&k, &v)?),
                    "dhcp" => g.options.dhcp = parse_bool(&k, &v, dialect)?,
                    _ => extra_option(&mut g.options.extra, IPT_GUEST_OPTS, k, v, dialect)?,
                }
            }
            Item::Rule(r) => g.rules.push(r),
            Item::Alias(a) => add_alias(&mut g.aliases, a, dialect)?,
            Item::IpsetHeader(n, comment) => add_ipset(&mut g.ipsets, n, comment, dialect)?,
            Item::IpsetEntry(n, e) => g.ipsets.entry(n).or_default().entries.push(e),
            Item::GroupHeader(..) | Item::GroupRule(..) => {
                return Err(FirewallError::UnparsedLine(
                    "security groups live in cluster.fw".into(),
                ));
            }
        }
        Ok(())
    });
    finish(g, res)
}

fn strict<T>(p: Result<Parsed<T>, FileError>) -> Result<T, FileError> {
    p.map(|p| p.value)
}

/// Parse `cluster.fw` (labwright's reading: every spelling PVE accepts,
/// the first unreadable line is an error).
pub fn parse_cluster_fw(text: &str) -> Result<ClusterFirewall, FileError> {
    strict(cluster_as(text, Dialect::Any))
}

/// Parse `host.fw` (node network facts stay empty; fill `network` yourself).
pub fn parse_host_fw(text: &str) -> Result<HostFirewall, FileError> {
    strict(host_as(text, Dialect::Any, None))
}

/// Parse `<vmid>.fw` (NICs and node stay empty; fill them yourself).
pub fn parse_guest_fw(text: &str) -> Result<GuestFirewall, FileError> {
    strict(guest_as(text, Dialect::Any, None))
}

/// Read `cluster.fw` as `backend` does. `Err` only for `proxmox-firewall`,
/// which refuses a file it cannot read entirely.
pub fn parse_cluster_fw_as(
    text: &str,
    backend: Backend,
) -> Result<Parsed<ClusterFirewall>, FileError> {
    cluster_as(text, Dialect::Of(backend))
}

/// Read `host.fw` as `backend` does; `cluster` is the datacenter file as
/// the same backend read it (pve-firewall checks references against it).
pub fn parse_host_fw_as(
    text: &str,
    backend: Backend,
    cluster: &ClusterFirewall,
) -> Result<Parsed<HostFirewall>, FileError> {
    host_as(text, Dialect::Of(backend), Some(cluster))
}

/// Read `<vmid>.fw` as `backend` does (see [`parse_host_fw_as`]).
pub fn parse_guest_fw_as(
    text: &str,
    backend: Backend,
    cluster: &ClusterFirewall,
) -> Result<Parsed<GuestFirewall>, FileError> {
    guest_as(text, Dialect::Of(backend), Some(cluster))
}
