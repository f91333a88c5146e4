//! `mgmt-access` and `tailscale-allow`: judged by evaluating the firewall the spec
//! declares, not by looking for rule strings. Each management source must reach the
//! node on tcp/22 and tcp/8006 for every address in its range, under the node's
//! firewall backend when it is known ([`crate::CheckOptions`]), else under both.

use labwright_firewall::{Backend, DecidedBy, Protocol, Target, prove_reach};
use labwright_spec::model::{FirewallLevel, Spec};
use labwright_spec::types::Cidr;
use labwright_spec::{Diagnostic, YamlPath};

use crate::{Ctx, root};

/// Ports that must stay open to management sources (owned by the spec crate).
pub use labwright_spec::model::MANAGEMENT_PORTS as MGMT_PORTS;

/// The spec's host firewall, compiled by the one compiler the engine applies.
use labwright_firewall::from_spec::host_config as compile_host_firewall;

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
