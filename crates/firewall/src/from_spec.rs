//! The one compiler from a labwright spec to the PVE firewall: declared options,
//! aliases, ipsets, security groups, datacenter and node rules, and the rules each VM
//! allowlist stands for. The policy proof (`labwright check`) and the engine's diff
//! (`labwright plan`) both start from [`compile`], so what is proved is what is
//! applied. Rules carry their stable id in the comment ([`tag`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use labwright_spec::Spec;
use labwright_spec::model::{FwDirection, FwPolicy, FwRule, Proto};
use serde_json::{Map, Value, json};

use crate::model::{Alias, FirewallConfig, HostFirewall, Ipset, IpsetEntry, SecurityGroup};
use crate::rule::{LogLevel, Rule, Verdict};

/// labwright's stable rule id in a PVE rule comment: `[lw:<id>] <comment>`. PVE
/// renumbers rules on every insert, so the id is what keys a rule across runs.
pub mod tag {
    /// The comment PVE stores for rule `id` with the user's `comment`.
    pub fn encode(id: &str, comment: Option<&str>) -> String {
        match comment {
            Some(c) => format!("[lw:{id}] {c}"),
            None => format!("[lw:{id}]"),
        }
    }

    /// The id in a stored comment, if it carries one.
    pub fn decode(comment: &str) -> Option<&str> {
        let rest = comment.trim_start().strip_prefix("[lw:")?;
        let end = rest.find(']')?;
        rest.get(..end)
    }
}

/// PVE's spelling of a policy.
pub fn policy_word(p: FwPolicy) -> &'static str {
    match p {
        FwPolicy::Accept => "ACCEPT",
        FwPolicy::Drop => "DROP",
        FwPolicy::Reject => "REJECT",
    }
}

fn verdict(p: FwPolicy) -> Verdict {
    match p {
        FwPolicy::Accept => Verdict::Accept,
        FwPolicy::Drop => Verdict::Drop,
        FwPolicy::Reject => Verdict::Reject,
    }
}

fn b01(b: bool) -> String {
    if b { "1".into() } else { "0".into() }
}

/// `192.168.1.50` and `192.168.1.50/32` are the same alias value.
pub fn norm_cidr(s: &str) -> String {
    let t = s.trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return n.trunc().to_string();
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return IpNet::from(ip).to_string();
    }
    t.to_string()
}

/// `log: nolog` and no log are the same rule.
pub fn canonical(mut r: Rule) -> Rule {
    if r.log == Some(LogLevel::Nolog) {
        r.log = None;
    }
    r
}

/// A spec rule as the PVE API object labwright creates (its id in the comment).
pub fn rule_json(r: &FwRule) -> Value {
    let mut m = Map::new();
    let kind = match r.direction {
        FwDirection::In => "in",
        FwDirection::Out => "out",
        FwDirection::Group => "group",
    };
    m.insert("type".into(), json!(kind));
    m.insert("action".into(), json!(r.action));
    let mut opt = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), Value::String(v));
        }
    };
    opt("macro", r.macro_name.clone());
    opt("source", r.source.clone());
    opt("dest", r.dest.clone());
    opt("proto", r.proto.clone());
    opt("dport", r.dport.as_ref().map(ToString::to_string));
    opt("sport", r.sport.as_ref().map(ToString::to_string));
    opt("iface", r.iface.clone());
    m.insert("enable".into(), json!(u8::from(r.enable)));
    m.insert(
        "comment".into(),
        json!(tag::encode(&r.id, r.comment.as_deref())),
    );
    Value::Object(m)
}

/// Where a compiled part applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The datacenter (`cluster.fw`).
    Cluster,
    /// The spec's node (`host.fw`).
    Node,
    /// A guest (`<vmid>.fw`).
    Vm(u32),
}

/// Something declared that does not compile, with what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// What it is about (`firewall rule x`).
    pub target: String,
    /// Why it does not compile.
    pub reason: String,
    /// The way out.
    pub unblock: String,
}

/// The firewall a spec declares, in PVE's terms.
#[derive(Clone, Debug, Default)]
pub struct Compiled {
    /// Declared option keys per level (only what the spec declares is owned).
    pub options: Vec<(Level, BTreeMap<String, String>)>,
    /// Alias name → (CIDR, comment), including the shared aliases VM allowlists use.
    pub aliases: BTreeMap<String, (String, Option<String>)>,
    /// Ipset name → CIDRs, normalised.
    pub ipsets: BTreeMap<String, Vec<String>>,
    /// Declared security groups (labwright does not create them yet: see `problems`).
    pub groups: BTreeMap<String, Vec<Rule>>,
    /// Managed rules per level, in order, keyed by their stable id.
    pub rules: Vec<(Level, Vec<(String, Rule)>)>,
    /// What does not compile.
    pub problems: Vec<Problem>,
    /// Remarks worth showing in a plan.
    pub notes: Vec<String>,
}

fn compile_rules(rules: &[FwRule], problems: &mut Vec<Problem>) -> Vec<(String, Rule)> {
    let mut out = Vec::new();
    for r in rules {
        match Rule::from_api_json(&rule_json(r)) {
            Ok(rule) => out.push((r.id.clone(), canonical(rule))),
            Err(e) => problems.push(Problem {
                target: format!("firewall rule {}", r.id),
                reason: format!("the rule does not compile: {e}"),
                unblock: "fix the rule (labwright check shows where)".into(),
            }),
        }
    }
    out
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Icmp => "icmp",
        Proto::Any => "any",
    }
}

/// Compiles the firewall `spec` declares for its current phase.
pub fn compile(spec: &Spec) -> Compiled {
    let mut d = Compiled::default();
    if let Some(fw) = &spec.firewall {
        for (name, c) in &fw.aliases {
            d.aliases.insert(name.clone(), (c.to_string(), None));
        }
        for (name, set) in &fw.ipsets {
            d.ipsets.insert(
                name.clone(),
                set.iter().map(|c| norm_cidr(&c.to_string())).collect(),
            );
        }
        let mut group_problems = Vec::new();
        for (name, rules) in &fw.security_groups {
            let compiled = compile_rules(rules, &mut group_problems);
            d.groups
                .insert(name.clone(), compiled.into_iter().map(|(_, r)| r).collect());
        }
        if !fw.security_groups.is_empty() {
            d.problems.push(Problem {
                target: "firewall/security-groups".into(),
                reason: "security groups are not managed by this labwright version".into(),
                unblock: "create them in the UI, or use plain rules".into(),
            });
        }
        if let Some(dc) = &fw.datacenter {
            let mut o = BTreeMap::new();
            if let Some(e) = dc.options.enable {
                o.insert("enable".to_string(), b01(e));
            }
            if let Some(p) = dc.options.policy_in {
                o.insert("policy_in".to_string(), policy_word(p).to_string());
            }
            if let Some(p) = dc.options.policy_out {
                o.insert("policy_out".to_string(), policy_word(p).to_string());
            }
            d.options.push((Level::Cluster, o));
            let rules = compile_rules(&dc.rules, &mut d.problems);
            d.rules.push((Level::Cluster, rules));
        }
        if let Some(n) = &fw.node {
            let mut o = BTreeMap::new();
            if let Some(e) = n.options.enable {
                o.insert("enable".to_string(), b01(e));
            }
            d.options.push((Level::Node, o));
            let rules = compile_rules(&n.rules, &mut d.problems);
            d.rules.push((Level::Node, rules));
        }
        if fw.matrix.as_ref().is_some_and(|m| m.phase > spec.phase) {
            d.notes.push(
                "firewall matrix: phase 2 intent; `labwright firewall matrix SPEC` checks it against the compiled rules".into(),
            );
        }
    }
    for vm in &spec.vms {
        let Some(vf) = &vm.firewall else { continue };
        if vm.phase > spec.phase {
            continue;
        }
        let mut o = BTreeMap::new();
        o.insert("enable".to_string(), b01(vf.enable));
        o.insert(
            "policy_in".to_string(),
            policy_word(vf.policy_in).to_string(),
        );
        o.insert(
            "policy_out".to_string(),
            policy_word(vf.policy_out).to_string(),
        );
        let mut rules = Vec::new();
        let mut used = BTreeSet::new();
        for entry in &vf.allow {
            let sources = match allow_sources(spec, &entry.from, &mut d) {
                Ok(s) => s,
                Err(why) => {
                    d.notes.push(format!(
                        "VM {} allowlist entry `from: {}` skipped: {why}",
                        vm.vmid, entry.from
                    ));
                    continue;
                }
            };
            for (i, source) in sources.iter().enumerate() {
                let mut id = format!("allow-{}", slug(&entry.from));
                if entry.proto != Proto::Tcp {
                    id.push_str(&format!("-{}", proto_name(entry.proto)));
                }
                if sources.len() > 1 {
                    id.push_str(&format!("-{i}"));
                }
                let mut n = 2;
                let base = id.clone();
                while !used.insert(id.clone()) {
                    id = format!("{base}-{n}");
                    n += 1;
                }
                let mut m = Map::new();
                m.insert("type".into(), Value::from("in"));
                m.insert("action".into(), Value::from("ACCEPT"));
                m.insert("source".into(), Value::from(source.clone()));
                if let Some(p) = entry.proto.as_pve() {
                    m.insert("proto".into(), Value::from(p));
                }
                if !entry.ports.is_empty() && matches!(entry.proto, Proto::Tcp | Proto::Udp) {
                    let ports: Vec<String> = entry.ports.iter().map(ToString::to_string).collect();
                    m.insert("dport".into(), Value::from(ports.join(",")));
                }
                m.insert("enable".into(), Value::from(1));
                m.insert(
                    "comment".into(),
                    Value::from(tag::encode(&id, entry.comment.as_deref())),
                );
                match Rule::from_api_json(&Value::Object(m)) {
                    Ok(r) => rules.push((id, canonical(r))),
                    Err(e) => d.notes.push(format!(
                        "VM {} allowlist entry `from: {}` does not compile: {e}",
                        vm.vmid, entry.from
                    )),
                }
            }
        }
        d.options.push((Level::Vm(vm.vmid), o));
        d.rules.push((Level::Vm(vm.vmid), rules));
    }
    d
}

/// Sources a VM allowlist `from:` stands for: segments and `tailscale` become shared
/// datacenter aliases (so every VM's rules name the same object), `management` the
/// declared management CIDRs.
fn allow_sources(spec: &Spec, from: &str, d: &mut Compiled) -> Result<Vec<String>, String> {
    let declared_alias = spec
        .firewall
        .as_ref()
        .is_some_and(|f| f.aliases.keys().any(|k| k.eq_ignore_ascii_case(from)));
    if declared_alias {
        return Ok(vec![format!("dc/{from}")]);
    }
    if let Some(seg) = spec.networks.segments.get(from) {
        if seg.phase > spec.phase {
            return Err(format!("segment `{from}` is phase {}", seg.phase.0));
        }
        d.aliases.entry(from.to_string()).or_insert((
            seg.cidr.to_string(),
            Some(format!("labwright: segment {from}")),
        ));
        return Ok(vec![format!("dc/{from}")]);
    }
    match from {
        "tailscale" => {
            d.aliases.entry("tailscale".into()).or_insert((
                norm_cidr(&spec.safety_guards.tailscale_range().to_string()),
                Some("labwright: Tailscale range".into()),
            ));
            Ok(vec!["dc/tailscale".into()])
        }
        "management" => {
            let v: Vec<String> = spec
                .safety_guards
                .management_access_cidrs
                .iter()
                .map(ToString::to_string)
                .collect();
            if v.is_empty() {
                Err("no managementAccessCidrs declared".into())
            } else {
                Ok(v)
            }
        }
        other if other.starts_with('+') => Ok(vec![other.to_string()]),
        other => match other.parse::<IpNet>() {
            Ok(n) => Ok(vec![n.to_string()]),
            Err(_) => match other.parse::<IpAddr>() {
                Ok(ip) => Ok(vec![ip.to_string()]),
                Err(_) => Err(format!(
                    "`{other}` is not a segment, alias, `tailscale`, `management` or CIDR"
                )),
            },
        },
    }
}

/// The datacenter and the node's firewall as the spec declares them, in the
/// evaluator's model: what the policy proof evaluates. Built from [`compile`], the
/// same parts the engine applies.
pub fn host_config(spec: &Spec) -> FirewallConfig {
    let c = compile(spec);
    let mut cfg = FirewallConfig::default();
    for (name, (cidr, comment)) in &c.aliases {
        if let Ok(mut a) = Alias::new(name, cidr) {
            a.comment.clone_from(comment);
            cfg.cluster.add_alias(a);
        }
    }
    if let Some(fw) = &spec.firewall {
        for (name, entries) in &fw.ipsets {
            let set = Ipset {
                comment: None,
                entries: entries.iter().map(|e| IpsetEntry::net(e.0)).collect(),
            };
            // Names as written: the backends disagree about case (pve-firewall
            // lower-cases `Management`, proxmox-firewall keeps it), and the evaluator
            // follows each.
            cfg.cluster.ipsets.insert(name.clone(), set);
        }
    }
    for (name, rules) in &c.groups {
        cfg.cluster.groups.insert(
            name.clone(),
            SecurityGroup {
                comment: None,
                rules: rules.clone(),
            },
        );
    }
    let mut host = HostFirewall::default();
    let opt = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned();
    for (level, o) in &c.options {
        match level {
            Level::Cluster => {
                cfg.cluster.options.enable = opt(o, "enable").is_some_and(|v| v == "1");
                cfg.cluster.options.policy_in =
                    opt(o, "policy_in").and_then(|v| Verdict::parse(&v).ok());
                cfg.cluster.options.policy_out =
                    opt(o, "policy_out").and_then(|v| Verdict::parse(&v).ok());
            }
            Level::Node => host.options.enable = opt(o, "enable").is_none_or(|v| v == "1"),
            Level::Vm(_) => {}
        }
    }
    for (level, rules) in &c.rules {
        let rules: Vec<Rule> = rules.iter().map(|(_, r)| r.clone()).collect();
        match level {
            Level::Cluster => cfg.cluster.rules = rules,
            Level::Node => host.rules = rules,
            Level::Vm(_) => {}
        }
    }
    host.network.addrs = spec
        .networks
        .bridges
        .values()
        .filter_map(|b| b.address.map(|a| a.0))
        .collect();
    if host.network.addrs.is_empty()
        && let Some(a) = spec.node.address
    {
        host.network.addrs.push(a.0);
    }
    host.network.default_iface = Some("vmbr0".into());
    cfg.nodes.insert(spec.node_name().to_string(), host);
    cfg
}

/// A spec policy as the evaluator's verdict.
pub fn policy_verdict(p: FwPolicy) -> Verdict {
    verdict(p)
}

#[cfg(test)]
mod tests {
    use super::tag;

    #[test]
    fn tags_round_trip() {
        assert_eq!(tag::encode("a-1", Some("SSH")), "[lw:a-1] SSH");
        assert_eq!(tag::decode("[lw:a-1] SSH"), Some("a-1"));
        assert_eq!(tag::decode(&tag::encode("x", None)), Some("x"));
        assert_eq!(tag::decode("no tag [lw:x]"), None);
    }
}
