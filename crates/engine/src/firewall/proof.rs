//! The firewall model stepped through a plan, and the lockout proof over every
//! intermediate state.

use super::*;

// ---------------------------------------------------------------------------

/// Options and model together: what a step changes.
#[derive(Clone, Debug)]
pub struct FwState {
    pub options: BTreeMap<String, BTreeMap<String, String>>,
    pub config: FirewallConfig,
}

impl FwState {
    pub fn of(obs: &ObservedFirewall) -> Self {
        FwState {
            options: obs.options.clone(),
            config: obs.config.clone(),
        }
    }
}

pub(crate) fn rules_mut<'a>(cfg: &'a mut FirewallConfig, scope: &FwScope) -> &'a mut Vec<Rule> {
    match scope {
        FwScope::Cluster => &mut cfg.cluster.rules,
        FwScope::Node { node } => &mut cfg.nodes.entry(node.clone()).or_default().rules,
        FwScope::Vm { vmid, .. } => &mut cfg.vms.entry(*vmid).or_default().rules,
    }
}

pub(crate) fn position(rules: &[Rule], id: &str) -> Option<usize> {
    rules.iter().position(|r| rule_id(r) == Some(id))
}

/// Applies one step to the model, as the executor will apply it to the node.
pub fn model_step(st: &mut FwState, scope: &FwScope, step: &FwStep) {
    match step {
        FwStep::SetOptions { set, delete } => {
            let map = st.options.entry(scope_key(scope)).or_default();
            for k in delete {
                map.remove(k);
            }
            for (k, v) in set {
                map.insert(k.clone(), v.clone());
            }
            let map = map.clone();
            sync_options(&mut st.config, scope, &map);
        }
        FwStep::AliasCreate {
            name,
            cidr,
            comment,
        }
        | FwStep::AliasUpdate {
            name,
            cidr,
            comment,
        } => {
            if let Ok(mut a) = Alias::new(name, cidr) {
                a.comment = comment.clone();
                st.config.cluster.add_alias(a);
            }
        }
        FwStep::AliasDelete { name } => {
            st.config.cluster.aliases.remove(&name.to_ascii_lowercase());
        }
        FwStep::IpsetCreate { name } => {
            ipset_as_written(&mut st.config, name);
        }
        FwStep::IpsetAdd { name, cidr } => {
            if let Ok(e) = IpsetEntry::parse(cidr) {
                ipset_as_written(&mut st.config, name).entries.push(e);
            }
        }
        FwStep::IpsetRemove { name, cidr } => {
            if let Some(s) = st.config.cluster.ipsets.get_mut(name) {
                let want = norm_cidr(cidr);
                s.entries
                    .retain(|e| norm_cidr(&e.target.to_string()) != want);
            }
        }
        FwStep::IpsetDelete { name } => {
            st.config
                .cluster
                .ipsets
                .retain(|k, _| !k.eq_ignore_ascii_case(name));
        }
        FwStep::RulePut { id, rule, index } => {
            let rules = rules_mut(&mut st.config, scope);
            if let Some(p) = position(rules, id) {
                rules.remove(p);
            }
            if let Ok(r) = Rule::from_api_json(rule) {
                let at = (*index).min(rules.len());
                rules.insert(at, canonical(r));
            }
        }
        FwStep::RuleDelete { id } => {
            let rules = rules_mut(&mut st.config, scope);
            if let Some(p) = position(rules, id) {
                rules.remove(p);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Proof
// ---------------------------------------------------------------------------

/// One proved (or failed) flow class: a management source to a port on the node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofLine {
    /// Who: `managementAccessCidrs`, `tailscale`, `labwright client`.
    pub label: String,
    pub source: String,
    pub port: u16,
    pub ok: bool,
    /// What decided (for the first failing address when not ok).
    pub decided_by: String,
    /// A failing address, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<String>,
    /// The refusal for this flow (flow, deciding rule, fix), when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The lockout proof as the plan shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirewallReport {
    /// `iptables` or `nftables` (the node's `nftables` option after the plan).
    pub backend: String,
    /// The address labwright connects from, as the node sees it.
    pub client_addr: Option<String>,
    /// What was evaluated: `post-plan (N steps)` or `current`.
    pub evaluated: String,
    pub proof_ok: bool,
    /// The proof failed and `LABWRIGHT_UNSAFE_SKIP_LOCKOUT_PROOF` let the plan through.
    #[serde(default)]
    pub proof_skipped: bool,
    /// Per source and port, for the final state.
    pub lines: Vec<ProofLine>,
    /// Why the plan is refused (flow, deciding rule, fix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl FirewallReport {
    /// One line per source, for the plan's notes.
    pub fn summary(&self) -> Vec<String> {
        let mut out = vec![format!(
            "lockout proof ({}, {} backend{}): {}",
            self.evaluated,
            self.backend,
            self.client_addr
                .as_ref()
                .map(|a| format!(", client {a}"))
                .unwrap_or_else(|| {
                    format!(", client address unknown: set {CLIENT_ADDR_ENV} to cover it")
                }),
            if self.proof_ok {
                "PASSED"
            } else if self.proof_skipped {
                "FAILED — SKIPPED BY LABWRIGHT_UNSAFE_SKIP_LOCKOUT_PROOF"
            } else {
                "FAILED"
            }
        )];
        for l in &self.lines {
            out.push(format!(
                "  {} {} → tcp/{}: {} ({})",
                l.label,
                l.source,
                l.port,
                if l.ok { "reaches" } else { "BLOCKED" },
                l.decided_by
            ));
        }
        out
    }
}

/// Sources that must keep reaching 22 and 8006: `managementAccessCidrs`, the
/// Tailscale range when Tailscale management is expected, and labwright's own address.
pub fn proof_sources(spec: &Spec, client_addr: Option<IpAddr>) -> Vec<(String, IpNet)> {
    let mut out: Vec<(String, IpNet)> = labwright_policy::management_sources(spec)
        .into_iter()
        .map(|(c, _, rule)| {
            let label = if rule == "tailscale-allow" {
                "tailscale range"
            } else {
                "managementAccessCidrs"
            };
            (label.to_string(), c.0)
        })
        .collect();
    if let Some(a) = client_addr {
        out.push(("labwright client".into(), IpNet::from(a)));
    }
    out
}

pub(crate) fn fix_for(label: &str, source: &IpNet, port: u16, d: &DecidedBy) -> String {
    let add = format!(
        "add `{{ id: mgmt-{port}-{}, action: ACCEPT, source: {source}, proto: tcp, dport: {port} }}` at the top of firewall.datacenter.rules",
        slug(&source.to_string())
    );
    let extra = match d {
        DecidedBy::Rule { comment, .. } => match comment.as_deref().and_then(comment_id) {
            Some(id) => format!(", or change rule `{id}`, which matches this flow first"),
            None => ", or remove the rule above on the node (it is not labwright's)".into(),
        },
        DecidedBy::Policy { .. } => String::new(),
        DecidedBy::Blacklist { entry } => {
            format!(", and remove {entry} from the `blacklist` ipset")
        }
        _ => String::new(),
    };
    let who = if label == "labwright client" {
        format!(
            " (or, if the node sees you under another address, set {CLIENT_ADDR_ENV} / the target's client-address)"
        )
    } else {
        String::new()
    };
    format!("{add}{extra}{who}")
}

/// Proves every source reaches tcp/22 and tcp/8006 on the node under the backend the
/// node runs. Returns the lines and the first failure, rendered.
pub fn prove_management(
    cfg: &FirewallConfig,
    node: &str,
    sources: &[(String, IpNet)],
) -> (Vec<ProofLine>, Option<String>) {
    let backend = Backend::for_node(cfg, node);
    let target = Target::Node(node.to_string());
    let mut lines = Vec::new();
    let mut failure = None;
    for (label, src) in sources {
        for port in MGMT_PORTS {
            match prove_reach(cfg, *src, &target, Protocol::TCP, Some(port), backend) {
                Ok(p) => {
                    let mut deciders: Vec<String> = p
                        .classes
                        .iter()
                        .map(|c| c.decision.decided_by.to_string())
                        .collect();
                    deciders.dedup();
                    lines.push(ProofLine {
                        label: label.clone(),
                        source: src.to_string(),
                        port,
                        ok: true,
                        decided_by: deciders.join("; "),
                        counterexample: None,
                        failure: None,
                    });
                }
                Err(cx) => {
                    let msg = format!(
                        "{label} {src} would lose tcp/{port} on node {node}: a new connection from {} is {} by {} ({backend} backend). Fix: {}",
                        cx.address,
                        cx.decision.verdict,
                        cx.decision.decided_by,
                        fix_for(label, src, port, &cx.decision.decided_by)
                    );
                    if failure.is_none() {
                        failure = Some(msg.clone());
                    }
                    lines.push(ProofLine {
                        failure: Some(msg),
                        label: label.clone(),
                        source: src.to_string(),
                        port,
                        ok: false,
                        decided_by: cx.decision.decided_by.to_string(),
                        counterexample: Some(format!("{} ({})", cx.address, cx.range)),
                    });
                }
            }
        }
    }
    (lines, failure)
}

// ---------------------------------------------------------------------------
// Diff → actions
// ---------------------------------------------------------------------------

/// The plan may be applied: its proof passed, or the dangerous skip switch is set.
pub fn check_plan_proof(plan: &Plan, skip: bool) -> Result<(), EngineError> {
    let touches = plan.actions.iter().any(|a| matches!(a.op, Op::Firewall(_)));
    if !touches {
        return Ok(());
    }
    match &plan.firewall {
        None => Err(EngineError::Refused(
            "the plan changes the firewall but carries no lockout proof; run `labwright plan` again".into(),
        )),
        Some(r) if !r.proof_ok && !skip => Err(EngineError::Refused(format!(
            "lockout proof failed, refusing to touch the firewall: {}",
            r.failure.as_deref().unwrap_or("(no detail)")
        ))),
        Some(_) => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Executor

/// The ipset `name` in the model, under the spelling the spec gives. PVE's API lists
/// ipsets lower-cased, but the backends disagree on what a mixed-case name means
/// (proxmox-firewall keeps the case, so `Management` is not the management set there):
/// the proof takes the spec's spelling, the conservative reading.
fn ipset_as_written<'a>(
    cfg: &'a mut FirewallConfig,
    name: &str,
) -> &'a mut labwright_firewall::Ipset {
    let other: Vec<String> = cfg
        .cluster
        .ipsets
        .keys()
        .filter(|k| k.eq_ignore_ascii_case(name) && k.as_str() != name)
        .cloned()
        .collect();
    let mut merged = labwright_firewall::Ipset::default();
    for k in other {
        if let Some(s) = cfg.cluster.ipsets.remove(&k) {
            merged = s;
        }
    }
    cfg.cluster.ipsets.entry(name.to_string()).or_insert(merged)
}
