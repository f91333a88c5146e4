//! What the spec asks of the firewall, compiled into PVE's options and rules.

use super::*;

pub(crate) fn flag(v: Option<&String>) -> Option<bool> {
    v.map(|s| s.trim() == "1" || s.trim().eq_ignore_ascii_case("true"))
}

pub(crate) fn policy(v: Option<&String>) -> Option<Verdict> {
    v.and_then(|s| Verdict::parse(s.trim()).ok())
}

/// Mirrors raw options into the evaluator's model.
pub(crate) fn sync_options(
    cfg: &mut FirewallConfig,
    scope: &FwScope,
    map: &BTreeMap<String, String>,
) {
    match scope {
        FwScope::Cluster => {
            let o = &mut cfg.cluster.options;
            o.enable = flag(map.get("enable")).unwrap_or(false);
            o.policy_in = policy(map.get("policy_in"));
            o.policy_out = policy(map.get("policy_out"));
        }
        FwScope::Node { node } => {
            let h = cfg.nodes.entry(node.clone()).or_default();
            h.options.enable = flag(map.get("enable")).unwrap_or(true);
            h.options.nftables = flag(map.get("nftables")).unwrap_or(false);
        }
        FwScope::Vm { vmid, .. } => {
            let g = cfg.vms.entry(*vmid).or_default();
            g.options.enable = flag(map.get("enable")).unwrap_or(false);
            g.options.policy_in = policy(map.get("policy_in"));
            g.options.policy_out = policy(map.get("policy_out"));
            g.options.dhcp = flag(map.get("dhcp")).unwrap_or(false);
        }
    }
}

// ---------------------------------------------------------------------------
// Desired firewall
// ---------------------------------------------------------------------------

/// What the spec asks of the firewall.
#[derive(Debug, Default)]
pub(crate) struct DesiredFw {
    /// Declared option keys only (owning only what the spec declares).
    pub(crate) options: Vec<(FwScope, BTreeMap<String, String>)>,
    /// name → (cidr, comment).
    pub(crate) aliases: BTreeMap<String, (String, Option<String>)>,
    pub(crate) ipsets: BTreeMap<String, Vec<String>>,
    /// Managed rules per scope, in order.
    pub(crate) rules: Vec<(FwScope, Vec<(String, Rule)>)>,
    pub(crate) held: Vec<Held>,
    pub(crate) notes: Vec<String>,
}

pub(crate) fn policy_str(p: FwPolicy) -> String {
    match p {
        FwPolicy::Accept => "ACCEPT",
        FwPolicy::Drop => "DROP",
        FwPolicy::Reject => "REJECT",
    }
    .to_string()
}

pub(crate) fn b01(b: bool) -> String {
    if b { "1".into() } else { "0".into() }
}

/// `192.168.1.50` and `192.168.1.50/32` are the same alias value.
pub(crate) fn norm_cidr(s: &str) -> String {
    let t = s.trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return n.trunc().to_string();
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return IpNet::from(ip).to_string();
    }
    t.to_string()
}

/// The stable id in a rule comment (`[lw:<id>] …`).
pub fn rule_id(r: &Rule) -> Option<&str> {
    comment_id(r.comment.as_deref()?)
}

pub(crate) fn comment_id(c: &str) -> Option<&str> {
    let rest = c.trim_start().strip_prefix("[lw:")?;
    let end = rest.find(']')?;
    rest.get(..end)
}

pub(crate) fn tailscale_cidr(spec: &Spec) -> String {
    norm_cidr(&spec.safety_guards.tailscale_range().to_string())
}

pub(crate) fn desired_fw(spec: &Spec, observed_vm_node: &dyn Fn(u32) -> String) -> DesiredFw {
    let mut d = DesiredFw::default();
    let node = spec.node_name().to_string();
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
        if !fw.security_groups.is_empty() {
            d.held.push(Held {
                elements: Vec::new(),
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
                o.insert("policy_in".to_string(), policy_str(p));
            }
            if let Some(p) = dc.options.policy_out {
                o.insert("policy_out".to_string(), policy_str(p));
            }
            d.options.push((FwScope::Cluster, o));
            d.rules
                .push((FwScope::Cluster, compile_spec_rules(&dc.rules, &mut d.held)));
        }
        if let Some(n) = &fw.node {
            let mut o = BTreeMap::new();
            if let Some(e) = n.options.enable {
                o.insert("enable".to_string(), b01(e));
            }
            let scope = FwScope::Node { node: node.clone() };
            d.options.push((scope.clone(), o));
            d.rules
                .push((scope, compile_spec_rules(&n.rules, &mut d.held)));
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
        let scope = FwScope::Vm {
            node: observed_vm_node(vm.vmid),
            vmid: vm.vmid,
        };
        let mut o = BTreeMap::new();
        o.insert("enable".to_string(), b01(vf.enable));
        o.insert("policy_in".to_string(), policy_str(vf.policy_in));
        o.insert("policy_out".to_string(), policy_str(vf.policy_out));
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
                    let ports: Vec<String> = entry
                        .ports
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>();
                    m.insert("dport".into(), Value::from(ports.join(",")));
                }
                m.insert("enable".into(), Value::from(1));
                let comment = match &entry.comment {
                    Some(c) => format!("[lw:{id}] {c}"),
                    None => format!("[lw:{id}]"),
                };
                m.insert("comment".into(), Value::from(comment));
                match Rule::from_api_json(&Value::Object(m)) {
                    Ok(r) => rules.push((id, canonical(r))),
                    Err(e) => d.notes.push(format!(
                        "VM {} allowlist entry `from: {}` does not compile: {e}",
                        vm.vmid, entry.from
                    )),
                }
            }
        }
        d.options.push((scope.clone(), o));
        d.rules.push((scope, rules));
    }
    d
}

pub(crate) fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Icmp => "icmp",
        Proto::Any => "any",
    }
}

pub(crate) fn slug(s: &str) -> String {
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

/// Sources a VM allowlist `from:` stands for: segments and `tailscale` become shared
/// datacenter aliases (so every VM's rules name the same object), `management` the
/// declared management CIDRs.
pub(crate) fn allow_sources(
    spec: &Spec,
    from: &str,
    d: &mut DesiredFw,
) -> Result<Vec<String>, String> {
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
                tailscale_cidr(spec),
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

pub(crate) fn compile_spec_rules(
    rules: &[labwright_spec::model::FwRule],
    held: &mut Vec<Held>,
) -> Vec<(String, Rule)> {
    let mut out = Vec::new();
    for r in rules {
        match Rule::from_api_json(&labwright_policy::rule_to_api(r)) {
            Ok(rule) => out.push((r.id.clone(), canonical(rule))),
            Err(e) => held.push(Held {
                elements: Vec::new(),
                target: format!("firewall rule {}", r.id),
                reason: format!("the rule does not compile: {e}"),
                unblock: "fix the rule (labwright check shows where)".into(),
            }),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Model: applying steps to a configuration (for the diff and the proof)
