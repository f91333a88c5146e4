//! Configurations for `firewall simulate` / `matrix` and the validate checks.

use super::*;

// Configurations for `firewall simulate` / `firewall matrix`
// ---------------------------------------------------------------------------

/// A node with no firewall configuration at all (a fresh install), with the VMs whose
/// firewall the spec declares present and empty.
pub fn empty_observed(spec: &Spec, client_addr: Option<IpAddr>) -> ObservedFirewall {
    let node = spec.node_name().to_string();
    let mut config = FirewallConfig::default();
    let host = labwright_firewall::HostFirewall {
        network: labwright_firewall::NodeNetwork {
            addrs: node_addrs(spec),
            default_iface: Some("vmbr0".into()),
        },
        ..Default::default()
    };
    config.nodes.insert(node.clone(), host);
    let mut options = BTreeMap::new();
    options.insert(scope_key(&FwScope::Cluster), BTreeMap::new());
    options.insert(
        scope_key(&FwScope::Node { node: node.clone() }),
        BTreeMap::new(),
    );
    for vm in active_fw_vms(spec) {
        let nics = vm
            .nics
            .iter()
            .map(|(k, n)| {
                (
                    k.clone(),
                    GuestNic {
                        firewall: n.firewall,
                        addrs: n.address.map(|a| vec![a.0.addr()]).unwrap_or_default(),
                    },
                )
            })
            .collect();
        config.vms.insert(
            vm.vmid,
            GuestFirewall {
                node: Some(node.clone()),
                nics,
                ..GuestFirewall::default()
            },
        );
        options.insert(
            scope_key(&FwScope::Vm {
                node: node.clone(),
                vmid: vm.vmid,
            }),
            BTreeMap::new(),
        );
    }
    ObservedFirewall {
        node,
        options,
        config,
        client_addr,
        unreadable: Vec::new(),
        requests: 0,
        vm_nodes: BTreeMap::new(),
    }
}

/// The configuration `obs` would have after applying the spec (guard ignored: this
/// answers "what would it be", it changes nothing).
pub fn post_plan_config(spec: &Spec, obs: &ObservedFirewall) -> FirewallConfig {
    let mut s = spec.clone();
    s.safety_guards.allow_firewall_changes = true;
    let p = plan_firewall(&s, obs, &[]);
    let mut st = FwState::of(obs);
    for a in &p.actions {
        if let Op::Firewall(f) = &a.op {
            for step in &f.steps {
                model_step(&mut st, &f.scope, step);
            }
        }
    }
    st.config
}

/// The configuration the spec declares, compiled onto a fresh node.
pub fn compile_spec(spec: &Spec) -> FirewallConfig {
    post_plan_config(spec, &empty_observed(spec, None))
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Checks on the observed firewall: it matches the spec, and every management source
/// (and labwright's own address, when known) provably reaches 22 and 8006.
pub fn validate_checks(spec: &Spec, obs: &ObservedFirewall) -> Vec<crate::validate::Check> {
    use crate::validate::{Check, CheckStatus};
    let mut out = Vec::new();
    let p = plan_firewall(spec, obs, &[]);
    let allowed = spec.safety_guards.allow_firewall_changes;
    let pending: Vec<String> = if allowed {
        p.actions.iter().map(|a| a.id.to_string()).collect()
    } else {
        p.held.iter().map(|b| b.reason.clone()).collect()
    };
    out.push(Check {
        name: "firewall matches the spec".into(),
        status: if pending.is_empty() {
            CheckStatus::Pass
        } else if allowed {
            CheckStatus::Fail
        } else {
            // Held back by the guard: the spec does not allow labwright to close the
            // gap, so it is reported, not failed (like other held changes).
            CheckStatus::Skipped
        },
        detail: if pending.is_empty() {
            "options, aliases, ipsets and [lw:] rules as declared".into()
        } else if allowed {
            format!("pending: {}", pending.join(", "))
        } else {
            format!(
                "differs, held back by `allowFirewallChanges: false`: {}",
                pending.join("; ")
            )
        },
    });
    let sources = proof_sources(spec, obs.client_addr);
    let (lines, fail) = prove_management(&obs.config, &obs.node, &sources);
    let ok = fail.is_none() && obs.unreadable.is_empty();
    out.push(Check {
        name: "management access proved on the node's firewall".into(),
        status: if ok {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        detail: match fail {
            Some(f) => f,
            None if !obs.unreadable.is_empty() => {
                format!("unreadable entries: {}", obs.unreadable.join("; "))
            }
            None => format!(
                "{} source×port flows accepted ({} backend)",
                lines.len(),
                Backend::for_node(&obs.config, &obs.node)
            ),
        },
    });
    out
}
