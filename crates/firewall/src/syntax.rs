//! The rule line of a `.fw` file, read the way each PVE firewall reads it.
//!
//! `pve-firewall` (Perl, `parse_fw_rule`) and `proxmox-firewall`
//! (`proxmox-ve-config`) accept slightly different spellings of the same
//! line, and treat a line they cannot read differently: `pve-firewall`
//! warns and leaves the one line out, `proxmox-firewall` refuses the whole
//! file. [`Dialect::Any`] is labwright's own reading: every spelling either
//! of them accepts, each with the meaning PVE gives it.

use crate::addr::{AddressRef, MAX_GROUP_NAME_LEN, check_name, is_valid_name};
use crate::error::FirewallError;
use crate::eval::Backend;
use crate::macros;
use crate::ports::{PortField, PortSpec};
use crate::proto::Protocol;
use crate::rule::{Action, LogLevel, Rule, RuleKind, Verdict};

/// Whose reading of a `.fw` line or file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// labwright's: every spelling some PVE parser accepts; a line none of
    /// them reads is an error.
    Any,
    /// Exactly what this backend's parser accepts.
    Of(Backend),
}

impl Dialect {
    fn is(self, b: Backend) -> bool {
        self == Dialect::Of(b)
    }
}

/// The options a rule line can carry, by their canonical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Iface,
    Proto,
    Dport,
    Sport,
    Source,
    Dest,
    Log,
    IcmpType,
}

/// Map an option word (`-p`, `--dport`, …) to its option, as the dialect
/// spells them. `pve-firewall` knows `-i`, `-p`, `-proto`, `--proto` and
/// `-x`/`--x` for the others; `proxmox-firewall` takes one or two dashes
/// before any of `i`, `iface`, `p`, `proto`, `dport`, `sport`, `source`,
/// `dest`, `log`, `icmp-type`.
fn option_of(word: &str, dialect: Dialect) -> Option<Opt> {
    let (dashes, name) = match word.strip_prefix("--") {
        Some(n) => (2, n),
        None => (1, word.strip_prefix('-')?),
    };
    let opt = match name {
        "i" => Opt::Iface,
        "iface" => Opt::Iface,
        "p" => Opt::Proto,
        "proto" => Opt::Proto,
        "dport" => Opt::Dport,
        "sport" => Opt::Sport,
        "source" => Opt::Source,
        "dest" => Opt::Dest,
        "log" => Opt::Log,
        "icmp-type" => Opt::IcmpType,
        _ => return None,
    };
    if dialect.is(Backend::Iptables) {
        let ok = match name {
            "i" | "p" => dashes == 1,
            "iface" => false,
            _ => true,
        };
        if !ok {
            return None;
        }
    }
    Some(opt)
}

fn opt_name(o: Opt) -> &'static str {
    match o {
        Opt::Iface => "-i",
        Opt::Proto => "-p",
        Opt::Dport => "-dport",
        Opt::Sport => "-sport",
        Opt::Source => "-source",
        Opt::Dest => "-dest",
        Opt::Log => "-log",
        Opt::IcmpType => "-icmp-type",
    }
}

/// Split `body` into the rule and its comment, as the dialect does.
fn split_comment(line: &str, dialect: Dialect) -> (&str, Option<String>) {
    match line.split_once('#') {
        // proxmox-firewall keeps a trailing bare `#` in the rule (and then
        // fails on it).
        Some((_, c)) if c.is_empty() && dialect.is(Backend::Nftables) => (line, None),
        Some((body, c)) => {
            let c = c.trim();
            (body, (!c.is_empty()).then(|| c.to_string()))
        }
        None => (line, None),
    }
}

/// Parse one rule line in `dialect`. Field checks (what PVE's
/// `verify_rule` refuses) are included; checks that depend on where the
/// rule lives are not (see [`Rule::validate_for`]).
pub(crate) fn parse_rule(line: &str, dialect: Dialect) -> Result<Rule, FirewallError> {
    let (body, comment) = split_comment(line.trim(), dialect);
    let mut body = body.trim();
    let mut enable = true;
    if let Some(rest) = body.strip_prefix('|') {
        // pve-firewall wants the type right after the bar.
        if dialect.is(Backend::Iptables) && rest.starts_with(char::is_whitespace) {
            return Err(FirewallError::UnparsedLine(format!(
                "'{}': no space allowed after '|'",
                line.trim()
            )));
        }
        body = rest.trim_start();
        enable = false;
    }
    let mut words = body.split_whitespace();
    let type_word = words.next().ok_or(FirewallError::EmptyRule)?;
    let kind = parse_kind(type_word, dialect)?;
    let action_word = words.next().ok_or(FirewallError::MissingAction)?;
    let (action, macro_name) = parse_action(kind, action_word, dialect)?;
    let mut rule = Rule::new(kind, action);
    rule.macro_name = macro_name;
    rule.enable = enable;
    rule.comment = comment;
    if dialect.is(Backend::Iptables) {
        check_single_spaces(body)?;
    }

    let mut seen: Vec<Opt> = Vec::new();
    let mut raw = RawPorts::default();
    while let Some(word) = words.next() {
        let opt = option_of(word, dialect);
        let group_extra = kind == RuleKind::Group && opt.is_some_and(|o| o != Opt::Iface);
        let Some(opt) = opt.filter(|_| !group_extra) else {
            if let Some(o) = opt {
                return Err(FirewallError::UnparsedParameters(format!(
                    "{} is not allowed on group rules",
                    opt_name(o)
                )));
            }
            let rest: Vec<&str> = std::iter::once(word).chain(words).collect();
            return Err(FirewallError::UnparsedParameters(rest.join(" ")));
        };
        let value = words
            .next()
            .ok_or_else(|| FirewallError::MissingOptionValue(opt_name(opt).to_string()))?;
        if seen.contains(&opt) {
            // pve-firewall lets the later one win; proxmox-firewall refuses.
            if dialect.is(Backend::Nftables) {
                return Err(FirewallError::DuplicateOption(opt_name(opt).to_string()));
            }
        } else {
            seen.push(opt);
        }
        set_option(&mut rule, &mut raw, opt, value, dialect)?;
    }
    raw.apply(&mut rule, dialect)?;
    rule.check_fields()?;
    Ok(rule)
}

/// Port and ICMP-type options, kept as written until the protocol is
/// known: proxmox-firewall reads them only for the protocols that have
/// them and ignores them otherwise (so `-p icmp -dport echo-request`
/// matches every ICMP packet there, and `-dport 22` without `-p` matches
/// everything).
#[derive(Default)]
struct RawPorts<'a> {
    dport: Option<&'a str>,
    sport: Option<&'a str>,
    icmp_type: Option<&'a str>,
}

impl RawPorts<'_> {
    fn apply(&self, rule: &mut Rule, dialect: Dialect) -> Result<(), FirewallError> {
        if !dialect.is(Backend::Nftables) {
            if let Some(d) = self.dport {
                rule.dport = Some(PortSpec::parse(d, PortField::Dport)?);
            }
            if let Some(s) = self.sport {
                rule.sport = Some(PortSpec::parse(s, PortField::Sport)?);
            }
            rule.icmp_type = self.icmp_type.map(str::to_string);
            return Ok(());
        }
        if self.dport.is_some() && self.icmp_type.is_some() {
            return Err(FirewallError::IcmpTypeWithDport);
        }
        match &rule.proto {
            Some(p) if p.has_ports() => {
                if let Some(d) = self.dport {
                    rule.dport = Some(PortSpec::parse_nft(d)?);
                }
                if let Some(s) = self.sport {
                    rule.sport = Some(PortSpec::parse_nft(s)?);
                }
            }
            Some(p) if p.is_icmp() => {
                if let Some(t) = self.icmp_type {
                    if !crate::ports::is_icmp_type(t) {
                        return Err(FirewallError::InvalidIcmpType(t.to_string()));
                    }
                    rule.icmp_type = Some(t.to_string());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `pve-firewall` matches `-opt value` with exactly one space between
/// an option and its value (`s/^-p (\S+)\s*//`).
fn check_single_spaces(body: &str) -> Result<(), FirewallError> {
    fn next_word(s: &str) -> (&str, &str) {
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        s.split_at(end)
    }
    let mut rest = body.trim_start();
    for _ in 0..2 {
        rest = next_word(rest).1.trim_start();
    }
    while !rest.is_empty() {
        let (opt, tail) = next_word(rest);
        if tail.is_empty() {
            // no value at all: reported by the option loop
            return Ok(());
        }
        let value = tail
            .strip_prefix(' ')
            .filter(|v| !v.is_empty() && !v.starts_with(char::is_whitespace))
            .ok_or_else(|| {
                FirewallError::UnparsedParameters(format!(
                    "{opt}{tail} (pve-firewall wants one space between an option and its value)"
                ))
            })?;
        rest = next_word(value).1.trim_start();
    }
    Ok(())
}

fn parse_kind(word: &str, dialect: Dialect) -> Result<RuleKind, FirewallError> {
    let kind = match word.to_ascii_lowercase().as_str() {
        "in" => RuleKind::In,
        "out" => RuleKind::Out,
        "forward" => RuleKind::Forward,
        "group" => RuleKind::Group,
        _ => return Err(FirewallError::UnknownRuleType(word.to_string())),
    };
    // proxmox-firewall recognises a group rule only by an upper-case GROUP.
    if kind == RuleKind::Group && dialect.is(Backend::Nftables) && word != "GROUP" {
        return Err(FirewallError::UnknownRuleType(format!(
            "{word} (proxmox-firewall wants GROUP in upper case)"
        )));
    }
    Ok(kind)
}

fn parse_verdict(word: &str, dialect: Dialect) -> Result<Verdict, FirewallError> {
    match dialect {
        // pve-firewall: ACCEPT, DROP, REJECT exactly.
        Dialect::Of(Backend::Iptables) => Verdict::parse(word),
        _ => Verdict::parse(&word.to_ascii_uppercase())
            .map_err(|_| FirewallError::UnknownAction(word.to_string())),
    }
}

fn parse_action(
    kind: RuleKind,
    word: &str,
    dialect: Dialect,
) -> Result<(Action, Option<String>), FirewallError> {
    if kind == RuleKind::Group {
        if word.contains('(') {
            return Err(FirewallError::MacroOnGroup);
        }
        check_name("security group", word, MAX_GROUP_NAME_LEN)?;
        return Ok((Action::Group(word.to_string()), None));
    }
    if let Some(open) = word.find('(') {
        let name = word.get(..open).unwrap_or_default();
        let inner = word
            .get(open + 1..)
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| FirewallError::UnknownAction(word.to_string()))?;
        let verdict = parse_verdict(inner, dialect)?;
        let mac = match dialect {
            // proxmox-firewall looks macros up by their exact name and
            // leaves a rule with an unknown one out.
            Dialect::Of(Backend::Nftables) => macros::MACROS.iter().find(|m| m.name == name),
            _ => macros::lookup(name),
        }
        .ok_or_else(|| FirewallError::UnknownMacro(name.to_string()))?;
        return Ok((verdict.into(), Some(mac.name.to_string())));
    }
    Ok((parse_verdict(word, dialect)?.into(), None))
}

fn set_option<'a>(
    rule: &mut Rule,
    raw: &mut RawPorts<'a>,
    opt: Opt,
    value: &'a str,
    dialect: Dialect,
) -> Result<(), FirewallError> {
    match opt {
        Opt::Iface => rule.iface = Some(value.to_string()),
        Opt::Proto => rule.proto = Some(Protocol::parse(value)?),
        Opt::Dport => raw.dport = Some(value),
        Opt::Sport => raw.sport = Some(value),
        Opt::Source => rule.source = Some(parse_addr(value, dialect)?),
        Opt::Dest => rule.dest = Some(parse_addr(value, dialect)?),
        Opt::Log => rule.log = Some(LogLevel::parse(value)?),
        Opt::IcmpType => raw.icmp_type = Some(value),
    }
    Ok(())
}

fn parse_addr(value: &str, dialect: Dialect) -> Result<AddressRef, FirewallError> {
    let a = AddressRef::parse(value)?;
    // proxmox-firewall knows the `sdn/` scope for ipsets only, and no
    // scope it does not list.
    if dialect.is(Backend::Nftables)
        && let AddressRef::Alias { name, .. } = &a
        && !is_valid_name(name)
    {
        return Err(FirewallError::InvalidAddress(value.to_string()));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPT: Dialect = Dialect::Of(Backend::Iptables);
    const NFT: Dialect = Dialect::Of(Backend::Nftables);

    fn ok(line: &str, d: Dialect) -> Rule {
        parse_rule(line, d).unwrap_or_else(|e| panic!("{line:?} in {d:?}: {e}"))
    }

    #[test]
    fn spellings_both_backends_read() {
        for d in [Dialect::Any, IPT, NFT] {
            let r = ok(
                "IN ACCEPT --proto tcp --dport 22 --source 10.0.0.0/8 # x",
                d,
            );
            assert_eq!(
                r.to_string(),
                "IN ACCEPT -source 10.0.0.0/8 -p tcp -dport 22 # x"
            );
            let r = ok("in DROP -proto udp -sport 53", d);
            assert_eq!(r.to_string(), "IN DROP -p udp -sport 53");
        }
    }

    #[test]
    fn spellings_only_one_backend_reads() {
        // lower-case verdicts: proxmox-firewall only
        assert!(parse_rule("IN accept -p tcp", IPT).is_err());
        assert_eq!(ok("IN accept -p tcp", NFT).action, Action::Accept);
        assert_eq!(ok("IN ssh(accept)", Dialect::Any).action, Action::Accept);
        // lower-case group keyword: pve-firewall only
        assert!(parse_rule("group web", NFT).is_err());
        assert_eq!(ok("group web", IPT).action, Action::Group("web".into()));
        // -iface and --p: proxmox-firewall only
        assert!(parse_rule("IN ACCEPT -iface vmbr0", IPT).is_err());
        assert_eq!(
            ok("IN ACCEPT -iface vmbr0", NFT).iface.as_deref(),
            Some("vmbr0")
        );
        assert!(parse_rule("IN ACCEPT --p tcp", IPT).is_err());
        // a repeated option: the later wins on pve-firewall, refused by proxmox-firewall
        assert_eq!(
            ok("IN ACCEPT -p tcp -p udp", IPT).proto,
            Some(Protocol::UDP)
        );
        assert!(matches!(
            parse_rule("IN ACCEPT -p tcp -p udp", NFT),
            Err(FirewallError::DuplicateOption(_))
        ));
        // macro names: case-insensitive on pve-firewall, exact on proxmox-firewall
        assert_eq!(ok("IN ssh(ACCEPT)", IPT).macro_name.as_deref(), Some("SSH"));
        assert!(parse_rule("IN ssh(ACCEPT)", NFT).is_err());
        // `| IN`: proxmox-firewall only
        assert!(parse_rule("| IN DROP", IPT).is_err());
        assert!(!ok("| IN DROP", NFT).enable);
        // one space between option and value on pve-firewall
        assert!(parse_rule("IN ACCEPT -p  tcp", IPT).is_err());
        assert!(parse_rule("IN ACCEPT -p  tcp", NFT).is_ok());
        // proxmox-firewall reads ports only for protocols that have them
        let r = ok("IN DROP -dport 22", NFT);
        assert_eq!((r.proto, r.dport), (None, None));
        assert!(parse_rule("IN DROP -dport 22", IPT).is_err());
        assert!(
            ok("IN ACCEPT -p icmp -dport echo-request", NFT)
                .dport
                .is_none()
        );
        assert!(ok("IN ACCEPT -p gre -dport 22", NFT).dport.is_none());
        assert!(parse_rule("IN ACCEPT -p gre -dport 22", IPT).is_err());
        assert!(
            ok("IN ACCEPT -p tcp -icmp-type echo-request", NFT)
                .icmp_type
                .is_none()
        );
        // … and takes more than 15 ports, and named ranges
        let many = (1..=16)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let line = format!("IN ACCEPT -p tcp -dport {many}");
        assert!(ok(&line, NFT).dport.is_some_and(|d| d.contains(16)));
        assert_eq!(parse_rule(&line, IPT), Err(FirewallError::TooManyPorts));
        assert!(
            ok("IN ACCEPT -p tcp -dport ssh:http", NFT)
                .dport
                .is_some_and(|d| d.contains(50))
        );
        assert!(parse_rule("IN ACCEPT -p tcp -dport ssh:http", IPT).is_err());
        // contradictions both backends refuse
        for d in [Dialect::Any, IPT, NFT] {
            assert_eq!(
                parse_rule("IN ACCEPT -source 10.0.0.1 -dest 2001:db8::1", d),
                Err(FirewallError::MixedFamiliesInRule)
            );
            assert_eq!(
                parse_rule(
                    "IN ACCEPT -p icmp -icmp-type echo-request -dport echo-reply",
                    d
                )
                .map(|_| ()),
                Err(FirewallError::IcmpTypeWithDport)
            );
        }
        // icmp with IPv6 addresses: pve-firewall refuses the rule
        assert_eq!(
            ok("IN ACCEPT -p icmp -source 2001:db8::/32", Dialect::Any).ip_family(),
            Err(FirewallError::MixedFamiliesInRule)
        );
        // group rules take -i only
        assert!(parse_rule("GROUP web -p tcp", IPT).is_err());
        assert!(parse_rule("GROUP web -i vmbr0", NFT).is_ok());
    }
}
