//! The firewall wave: the node's firewall as observed, the diff into actions, the
//! lockout proof and the executor with its probes.
//!
//! Why it is shaped this way:
//! - **Observed state** is read only when the spec declares a firewall (datacenter,
//!   node or a VM's `firewall:` block), so plans for specs without one cost no extra
//!   requests.
//! - **Rules are keyed by the stable id** kept in their comment (`[lw:<id>] …`), never
//!   by position: PVE renumbers on every insert and always inserts at the top.
//! - **Every firewall action is high risk** and goes to `plan.held` unless
//!   `safetyGuards.allowFirewallChanges` is set.
//! - **The lockout proof** evaluates the configuration *after every step* of the plan
//!   (not only the end state), because the order the steps run in is exactly what
//!   locks people out (a DROP policy before the allows exist).
//! - **The executor** creates non-ACCEPT rules disabled, moves them into place, and
//!   only then enables them (a DROP rule never sits at the top, even for a moment);
//!   after each step it opens a *fresh* connection (established connections survive a
//!   DROP policy, so the kept-alive one proves nothing) and reverts the step over the
//!   kept-alive connection when the fresh one fails.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use labwright_firewall::{
    Alias, Backend, DecidedBy, FirewallConfig, GuestFirewall, GuestNic, Ipset, IpsetEntry,
    Protocol, Rule, RuleKind, Target, Verdict, prove_reach,
};
use labwright_pve::api::firewall::{FirewallRule, FirewallScope};
use labwright_pve::{Params, PveClient};
use labwright_spec::Spec;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::EngineError;
use crate::canon::Effect;
use crate::error::StepError;
use crate::observed::Observed;
use crate::plan::{Action, Change, Held, Op, Plan, Risk};

pub use crate::guarded::RUNBOOK;

/// Set to `1` to let a plan whose lockout proof FAILED be applied anyway. Dangerous:
/// it exists so tests can show what the proof prevents. Never set it for a real node.
pub const SKIP_PROOF_ENV: &str = "LABWRIGHT_UNSAFE_SKIP_LOCKOUT_PROOF";

/// The address the node sees labwright connect from, when NAT or a tunnel hides it.
pub const CLIENT_ADDR_ENV: &str = "LABWRIGHT_CLIENT_ADDR";

/// Ports every management source must keep reaching on the node.
pub use labwright_spec::model::MANAGEMENT_PORTS as MGMT_PORTS;

// ---------------------------------------------------------------------------
// Scopes, steps and ops (plan data)
// ---------------------------------------------------------------------------

/// Which firewall a step writes to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "level", rename_all = "kebab-case")]
pub enum FwScope {
    /// Datacenter (`cluster.fw`).
    Cluster,
    /// A node's `host.fw`.
    Node { node: String },
    /// A guest's `<vmid>.fw`.
    Vm { node: String, vmid: u32 },
}

impl FwScope {
    fn pve(&self) -> FirewallScope {
        match self {
            FwScope::Cluster => FirewallScope::Cluster,
            FwScope::Node { node } => FirewallScope::Node(node.clone()),
            FwScope::Vm { node, vmid } => FirewallScope::Vm {
                node: node.clone(),
                vmid: *vmid,
            },
        }
    }

    fn base(&self) -> String {
        match self {
            FwScope::Cluster => "/cluster/firewall".into(),
            FwScope::Node { node } => format!("/nodes/{node}/firewall"),
            FwScope::Vm { node, vmid } => format!("/nodes/{node}/qemu/{vmid}/firewall"),
        }
    }

    fn slug(&self) -> String {
        match self {
            FwScope::Cluster => "cluster".into(),
            FwScope::Node { .. } => "node".into(),
            FwScope::Vm { vmid, .. } => format!("vm{vmid}"),
        }
    }

    fn target(&self) -> String {
        match self {
            FwScope::Cluster => "firewall/cluster".into(),
            FwScope::Node { node } => format!("firewall/node {node}"),
            FwScope::Vm { vmid, .. } => format!("firewall/vm {vmid}"),
        }
    }
}

/// One API-level change. Rules are addressed by id, never by a stored position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum FwStep {
    /// `PUT …/options`.
    SetOptions {
        set: Vec<(String, String)>,
        delete: Vec<String>,
    },
    /// `POST /cluster/firewall/aliases`.
    AliasCreate {
        name: String,
        cidr: String,
        comment: Option<String>,
    },
    /// `PUT /cluster/firewall/aliases/{name}`.
    AliasUpdate {
        name: String,
        cidr: String,
        comment: Option<String>,
    },
    /// `DELETE /cluster/firewall/aliases/{name}` (only as a revert).
    AliasDelete { name: String },
    /// `POST /cluster/firewall/ipset`.
    IpsetCreate { name: String },
    /// `POST /cluster/firewall/ipset/{name}`.
    IpsetAdd { name: String, cidr: String },
    /// `DELETE /cluster/firewall/ipset/{name}/{cidr}`.
    IpsetRemove { name: String, cidr: String },
    /// `DELETE /cluster/firewall/ipset/{name}` (only as a revert).
    IpsetDelete { name: String },
    /// Create or update the rule carrying `[lw:id]` and move it to `index`.
    RulePut {
        id: String,
        /// The rule as the API takes it (`Rule::to_api_json`).
        rule: Value,
        index: usize,
    },
    /// Delete the rule carrying `[lw:id]`.
    RuleDelete { id: String },
}

/// What one firewall action does, and how to undo it if the probe after it fails.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FwOp {
    pub scope: FwScope,
    pub steps: Vec<FwStep>,
    /// Steps that restore the state the plan was made from (run over the kept-alive
    /// connection when the fresh-connection probe fails).
    pub revert: Vec<FwStep>,
}

fn kv(p: &[(String, String)]) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn rule_params_text(rule: &Value) -> String {
    match rule.as_object() {
        Some(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => String::new(),
    }
}

impl FwOp {
    /// The API calls, as `METHOD path key=value` lines (positions are looked up by id
    /// when the step runs).
    pub fn describe(&self) -> Vec<String> {
        let base = self.scope.base();
        let mut out = Vec::new();
        for s in &self.steps {
            match s {
                FwStep::SetOptions { set, delete } => {
                    let mut l = format!("PUT {base}/options {}", kv(set));
                    if !delete.is_empty() {
                        l.push_str(&format!(" delete={}", delete.join(",")));
                    }
                    out.push(l.trim_end().to_string());
                }
                FwStep::AliasCreate { name, cidr, .. } => {
                    out.push(format!("POST {base}/aliases name={name} cidr={cidr}"))
                }
                FwStep::AliasUpdate { name, cidr, .. } => {
                    out.push(format!("PUT {base}/aliases/{name} cidr={cidr}"))
                }
                FwStep::AliasDelete { name } => out.push(format!("DELETE {base}/aliases/{name}")),
                FwStep::IpsetCreate { name } => out.push(format!("POST {base}/ipset name={name}")),
                FwStep::IpsetAdd { name, cidr } => {
                    out.push(format!("POST {base}/ipset/{name} cidr={cidr}"))
                }
                FwStep::IpsetRemove { name, cidr } => {
                    out.push(format!("DELETE {base}/ipset/{name}/{cidr}"))
                }
                FwStep::IpsetDelete { name } => {
                    out.push(format!("DELETE {base}/ipset/{name} force=1"))
                }
                FwStep::RulePut { id, rule, index } => {
                    out.push(format!(
                        "POST {base}/rules {} (PUT {base}/rules/<pos of [lw:{id}]> when it exists; a new non-ACCEPT rule is created with enable=0 and enabled after the move)",
                        rule_params_text(rule)
                    ));
                    out.push(format!(
                        "PUT {base}/rules/<pos of [lw:{id}]> moveto={index}"
                    ));
                }
                FwStep::RuleDelete { id } => {
                    out.push(format!("DELETE {base}/rules/<pos of [lw:{id}]>"))
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Observed firewall
// ---------------------------------------------------------------------------

/// The firewall as the node has it: raw options (for the diff) and the evaluator's
mod audit;
mod desired;
mod diff;
mod exec;
pub mod matrix;
mod observe;
mod proof;

pub use audit::*;
pub use diff::*;

pub use desired::*;
pub use observe::*;
pub use proof::*;

#[cfg(test)]
mod tests;

/// The firewall kind's part of a plan: when the spec declares a firewall and it was
/// read, its objects are diffed and the lockout proof runs over every step.
pub(crate) fn plan(cx: &crate::plan::PlanCx<'_>, out: &mut crate::plan::PlanOut) {
    use labwright_spec::ElementKind as K;
    // The firewall's elements are this kind's whether or not the node's firewall was
    // read for this plan (validate's re-plan checks it separately).
    for e in cx.elements {
        if matches!(
            e.kind,
            K::FirewallOptions
                | K::FirewallRule
                | K::FirewallAlias
                | K::FirewallIpset
                | K::SecurityGroup
                | K::VmFirewallAllow
        ) {
            out.own(&e.path);
        }
    }
    let Some(fw) = cx.firewall else {
        return;
    };
    let mut f = plan_firewall(cx.spec, fw, &out.actions);
    for a in &mut f.actions {
        if let Op::Firewall(op) = &a.op {
            a.elements = elements_of(cx.spec, op);
        }
    }
    out.actions.extend(f.actions);
    out.held.extend(f.held);
    out.notes.extend(f.notes);
    out.firewall = f.report;
}

/// The spec elements a firewall op carries out (for the plan's account).
fn elements_of(spec: &Spec, op: &FwOp) -> Vec<String> {
    let root = labwright_spec::YamlPath::root();
    let fp = root.key("firewall");
    let Some(fw) = &spec.firewall else {
        return Vec::new();
    };
    let vm_allow = |vmid: u32| -> Vec<String> {
        spec.vms
            .iter()
            .enumerate()
            .filter(|(_, v)| v.vmid == vmid)
            .flat_map(|(i, v)| {
                let n = v.firewall.as_ref().map_or(0, |f| f.allow.len());
                let base = root.key("vms").index(i).key("firewall").key("allow");
                (0..n).map(move |j| base.index(j).to_string())
            })
            .collect()
    };
    let level_rule = |level: &str, id: &str| -> Option<String> {
        let l = match level {
            "datacenter" => fw.datacenter.as_ref(),
            _ => fw.node.as_ref(),
        }?;
        l.rules
            .iter()
            .position(|r| r.id == id)
            .map(|i| fp.key(level).key("rules").index(i).to_string())
    };
    let mut out = Vec::new();
    for s in &op.steps {
        let found: Vec<String> = match (s, &op.scope) {
            (FwStep::AliasCreate { name, .. } | FwStep::AliasUpdate { name, .. }, _) => fw
                .aliases
                .keys()
                .filter(|k| k.eq_ignore_ascii_case(name))
                .map(|k| fp.key("aliases").key(k.clone()).to_string())
                .collect(),
            (
                FwStep::IpsetCreate { name }
                | FwStep::IpsetAdd { name, .. }
                | FwStep::IpsetRemove { name, .. },
                _,
            ) => fw
                .ipsets
                .keys()
                .filter(|k| k.eq_ignore_ascii_case(name))
                .map(|k| fp.key("ipsets").key(k.clone()).to_string())
                .collect(),
            (FwStep::RulePut { id, .. } | FwStep::RuleDelete { id }, FwScope::Cluster) => {
                level_rule("datacenter", id).into_iter().collect()
            }
            (FwStep::RulePut { id, .. } | FwStep::RuleDelete { id }, FwScope::Node { .. }) => {
                level_rule("node", id).into_iter().collect()
            }
            (FwStep::SetOptions { .. }, FwScope::Cluster) => {
                vec![fp.key("datacenter").key("options").to_string()]
            }
            (FwStep::SetOptions { .. }, FwScope::Node { .. }) => {
                vec![fp.key("node").key("options").to_string()]
            }
            (_, FwScope::Vm { vmid, .. }) => vm_allow(*vmid),
            _ => Vec::new(),
        };
        for e in found {
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    out
}
