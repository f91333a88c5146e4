//! `mgmt-access` and `tailscale-allow`: judged by evaluating the firewall the spec
//! declares, not by looking for rule strings. Each management source must reach the
//! node on tcp/22 and tcp/8006 for every address in its range, under the node's
//! firewall backend when it is known ([`crate::CheckOptions`]), else under both.

use labwright_firewall::{Backend, DecidedBy, FirewallConfig, Protocol, Rule, Target, prove_reach};
use labwright_spec::model::{FirewallLevel, FwDirection, FwRule, Spec};
use labwright_spec::types::Cidr;
use labwright_spec::{Diagnostic, YamlPath};
use serde_json::{Map, Value, json};

use crate::{Ctx, root};

/// Ports that must stay open to management sources (owned by the spec crate).
pub use labwright_spec::model::MANAGEMENT_PORTS as MGMT_PORTS;

/// A spec rule as the PVE API object labwright will create.
pub fn rule_to_api(r: &FwRule) -> Value {
    let mut m = Map::new();
    let kind = match r.direction {
        FwDirection::In => "in",
        FwDirection::Out => "out",
        FwDirection::Group => "group",
    };
    m.insert("type".into(), json!(kind));
    m.insert("action".into(), json!(r.action));
    let opt = |m: &mut Map<String, Value>, k: &str, v: Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), Value::String(v));
        }
    };
    opt(&mut m, "macro", r.macro_name.clone());
    opt(&mut m, "source", r.source.clone());
    opt(&mut m, "dest", r.dest.clone());
    opt(&mut m, "proto", r.proto.clone());
    opt(&mut m, "dport", r.dport.as_ref().map(ToString::to_string));
    opt(&mut m, "sport", r.sport.as_ref().map(ToString::to_string));
    opt(&mut m, "iface", r.iface.clone());
    m.insert("enable".into(), json!(u8::from(r.enable)));
    let comment = match &r.comment {
        Some(c) => format!("[lw:{}] {c}", r.id),
        None => format!("[lw:{}]", r.id),
    };
    m.insert("comment".into(), json!(comment));
    Value::Object(m)
}

/// Compiles the datacenter and node firewall the spec declares into the
/// evaluator's model. Rules that do not compile are skipped here: the
/// `firewall-rule`/`source-cidr` rules report them.
pub fn compile_host_firewall(spec: &Spec) -> FirewallConfig {
    let mut cfg = FirewallConfig::default();
    let Some(fw) = &spec.firewall else { return cfg };
    for (name, c) in &fw.aliases {
        if let Ok(a) = labwright_firewall::Alias::new(name, &c.to_string()) {
            cfg.cluster.add_alias(a);
        }
    }
    for (name, entries) in &fw.ipsets {
        let set = labwright_firewall::Ipset {
            comment: None,
            entries: entries
                .iter()
                .map(|c| labwright_firewall::IpsetEntry::net(c.0))
                .collect(),
        };
        // Names as written: the backends disagree about case (pve-firewall
        // lower-cases `Management`, proxmox-firewall keeps it), and the
        // evaluator follows each.
        cfg.cluster.ipsets.insert(name.clone(), set);
    }
    for (name, rules) in &fw.security_groups {
        let group = labwright_firewall::SecurityGroup {
            comment: None,
            rules: compile_rules(rules),
        };
        cfg.cluster.groups.insert(name.clone(), group);
    }
    if let Some(dc) = &fw.datacenter {
        cfg.cluster.options.enable = dc.options.enable.unwrap_or(false);
        cfg.cluster.options.policy_in = dc.options.policy_in.map(verdict);
        cfg.cluster.options.policy_out = dc.options.policy_out.map(verdict);
        cfg.cluster.rules = compile_rules(&dc.rules);
    }
    let mut host = labwright_firewall::HostFirewall::default();
    if let Some(n) = &fw.node {
        host.options.enable = n.options.enable.unwrap_or(true);
        host.rules = compile_rules(&n.rules);
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

fn verdict(p: labwright_spec::model::FwPolicy) -> labwright_firewall::Verdict {
    match p {
        labwright_spec::model::FwPolicy::Accept => labwright_firewall::Verdict::Accept,
        labwright_spec::model::FwPolicy::Drop => labwright_firewall::Verdict::Drop,
        labwright_spec::model::FwPolicy::Reject => labwright_firewall::Verdict::Reject,
    }
}

fn compile_rules(rules: &[FwRule]) -> Vec<Rule> {
    rules
        .iter()
        .filter_map(|r| Rule::from_api_json(&rule_to_api(r)).ok())
        .collect()
}

/// Every source that must keep management access, with where it is declared.
pub fn management_sources(spec: &Spec) -> Vec<(Cidr, YamlPath, &'static str)> {
    let g = &spec.safety_guards;
    let mut out: Vec<(Cidr, YamlPath, &'static str)> = g
        .management_access_cidrs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                *c,
                root()
                    .key("safetyGuards")
                    .key("managementAccessCidrs")
                    .index(i),
                "mgmt-access",
            )
        })
        .collect();
    if g.tailscale_management {
        let path = match g.tailscale_cidr {
            Some(_) => root().key("safetyGuards").key("tailscaleCidr"),
            None => root().key("safetyGuards").key("tailscaleManagement"),
        };
        let cidr = g.tailscale_range();
        out.push((cidr, path, "tailscale-allow"));
    }
    out
}

/// True when the declared firewall can filter node traffic at all.
fn filters_node(spec: &Spec) -> Option<(&FirewallLevel, YamlPath)> {
    let fw = spec.firewall.as_ref()?;
    let dc = fw.datacenter.as_ref()?;
    (dc.options.enable == Some(true)).then(|| {
        let p = root().key("firewall").key("datacenter").key("options");
        let p = if dc.options.policy_in.is_some() {
            p.key("policyIn")
        } else {
            p.key("enable")
        };
        (dc, p)
    })
}

pub(crate) fn run(ctx: &mut Ctx<'_>) {
    let spec = ctx.spec();
    let Some((_, anchor)) = filters_node(spec) else {
        return;
    };
    let cfg = compile_host_firewall(spec);
    let node = Target::Node(spec.node_name().to_string());
    let sources = management_sources(spec);
    if sources.is_empty() {
        ctx.emit(
            Diagnostic::error(
                "mgmt-access",
                "the firewall is enabled but no management source is declared",
            )
            .label("no management CIDRs")
            .help("list your admin networks in `safetyGuards.managementAccessCidrs` so labwright can prove they keep access"),
            &anchor,
        );
        return;
    }
    for (cidr, path, rule) in sources {
        for port in MGMT_PORTS {
            let mut failure = None;
            let mut implicit_only = false;
            for &backend in Backend::to_prove(ctx.opts.backend) {
                match prove_reach(&cfg, cidr.0, &node, Protocol::TCP, Some(port), backend) {
                    Ok(proof) => {
                        // Only iptables evaluates user rules before the automatic
                        // management accept, so only there does "decided by the
                        // implicit rule" mean "no explicit rule covers it".
                        if backend == Backend::Iptables
                            && proof.classes.iter().any(|c| {
                                matches!(
                                    c.decision.decided_by,
                                    DecidedBy::ImplicitManagementAccept { .. }
                                )
                            })
                        {
                            implicit_only = true;
                        }
                    }
                    Err(cx) => {
                        failure = Some((backend, cx));
                        break;
                    }
                }
            }
            if let Some((backend, cx)) = failure {
                let who = if rule == "tailscale-allow" {
                    "the Tailscale range"
                } else {
                    "management source"
                };
                ctx.emit(
                    Diagnostic::error(
                        rule,
                        format!(
                            "{who} {cidr} would lose tcp/{port} on node {}: a connection from {} is {} by {} ({backend} backend)",
                            spec.node_name(),
                            cx.address,
                            match cx.decision.verdict {
                                labwright_firewall::Verdict::Accept => "accepted",
                                labwright_firewall::Verdict::Drop => "dropped",
                                labwright_firewall::Verdict::Reject => "rejected",
                            },
                            cx.decision.decided_by
                        ),
                    )
                    .label("locked out")
                    .help(lockout_help(spec, backend, port, &cidr.to_string())),
                    &path,
                );
            } else if implicit_only && rule == "mgmt-access" {
                ctx.emit(
                    Diagnostic::warning(
                        "mgmt-access",
                        format!(
                            "{cidr} reaches tcp/{port} only through PVE's automatic management rule"
                        ),
                    )
                    .label("implicit access only")
                    .help(format!(
                        "add an explicit ACCEPT for {cidr} to tcp/{port}: the automatic set follows the node's local network and can change under you"
                    )),
                    &path,
                );
            }
        }
    }
}

/// The fix for a failed proof; on nftables a `management` ipset spelled in
/// another case is the usual cause, so say so.
fn lockout_help(spec: &Spec, backend: Backend, port: u16, cidr: &str) -> String {
    let add = format!(
        "add before any DROP: {{ id: mgmt-{port}, action: ACCEPT, source: {cidr}, proto: tcp, dport: {port} }} under firewall.datacenter.rules"
    );
    let miscased = spec.firewall.as_ref().and_then(|f| {
        f.ipsets
            .keys()
            .find(|k| k.eq_ignore_ascii_case("management") && *k != "management")
    });
    match (backend, miscased) {
        (Backend::Nftables, Some(name)) => format!(
            "the ipset `{name}` is not the management set on nftables nodes (proxmox-firewall keeps case): rename it to `management`, or {add}"
        ),
        _ => add,
    }
}
