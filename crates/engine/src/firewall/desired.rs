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

pub(crate) use labwright_firewall::from_spec::norm_cidr;

/// The stable id in a rule comment (`[lw:<id>] …`).
pub fn rule_id(r: &Rule) -> Option<&str> {
    comment_id(r.comment.as_deref()?)
}

pub(crate) fn comment_id(c: &str) -> Option<&str> {
    labwright_firewall::from_spec::tag::decode(c)
}

/// The spec's firewall, from the one compiler the policy proof also uses, placed on
/// the scopes of this node (a VM's scope names the node it runs on).
pub(crate) fn desired_fw(spec: &Spec, observed_vm_node: &dyn Fn(u32) -> String) -> DesiredFw {
    use labwright_firewall::from_spec::{Level, compile};
    let c = compile(spec);
    let node = spec.node_name().to_string();
    let scope = |l: &Level| match l {
        Level::Cluster => FwScope::Cluster,
        Level::Node => FwScope::Node { node: node.clone() },
        Level::Vm(vmid) => FwScope::Vm {
            node: observed_vm_node(*vmid),
            vmid: *vmid,
        },
    };
    DesiredFw {
        options: c
            .options
            .iter()
            .map(|(l, o)| (scope(l), o.clone()))
            .collect(),
        aliases: c.aliases,
        ipsets: c.ipsets,
        rules: c.rules.iter().map(|(l, r)| (scope(l), r.clone())).collect(),
        held: c
            .problems
            .into_iter()
            .map(|p| Held::new(p.target, p.reason, p.unblock))
            .collect(),
        notes: c.notes,
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

// ---------------------------------------------------------------------------
// Model: applying steps to a configuration (for the diff and the proof)
