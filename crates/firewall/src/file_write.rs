//! Writing `.fw` files the way PVE writes them: `[IPSET name]` and
//! `[group name]` headers (the only spellings both backends read),
//! options, aliases, ipsets, rules, groups.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::addr::AddrEntry;
use crate::error::FirewallError;
use crate::model::{Alias, ClusterFirewall, GuestFirewall, HostFirewall, Ipset};
use crate::rule::Rule;

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
            &format!("[group {name}]{}", comment_suffix(&g.comment)),
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
