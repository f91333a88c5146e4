//! The diff of desired and observed firewall into ordered, proved actions.

use super::*;
use crate::action::{ActionId, ActionKind, VmStep};

/// What the firewall adds to a plan.
#[derive(Debug, Default)]
pub struct FwPlan {
    pub actions: Vec<Action>,
    pub held: Vec<Held>,
    pub notes: Vec<String>,
    pub report: Option<FirewallReport>,
}

pub(crate) struct Pending {
    /// The firewall's own key (`alias-admin-pc`, `dc-rule-mgmt-admin`).
    pub(crate) id: String,
    pub(crate) kind: ActionKind,
    pub(crate) op: FwOp,
    pub(crate) changes: Vec<Change>,
    pub(crate) reason: String,
    pub(crate) rollback: String,
    pub(crate) extra_deps: Vec<ActionId>,
    pub(crate) phase: u8,
}

pub(crate) fn change(
    field: impl Into<String>,
    before: Option<String>,
    after: Option<String>,
) -> Change {
    Change {
        field: field.into(),
        before,
        after,
        effect: Effect::Hotplug,
    }
}

/// Diffs the spec against the observed firewall. `existing` are the plan's other
/// actions (VM firewall actions wait for the VM's creation).
pub fn plan_firewall(spec: &Spec, obs: &ObservedFirewall, existing: &[Action]) -> FwPlan {
    let node = spec.node_name().to_string();
    let vm_node = |vmid: u32| -> String {
        obs.vm_nodes
            .get(&vmid)
            .cloned()
            .unwrap_or_else(|| node.clone())
    };
    let want = desired_fw(spec, &vm_node);
    let mut out = FwPlan {
        held: want.held.clone(),
        notes: want.notes.clone(),
        ..FwPlan::default()
    };
    let mut st = FwState::of(obs);
    let mut pend: Vec<Pending> = Vec::new();

    // 1. Aliases.
    for (name, (cidr, comment)) in &want.aliases {
        let have = st
            .config
            .cluster
            .aliases
            .get(&name.to_ascii_lowercase())
            .cloned();
        let step_revert = match &have {
            None => Some((
                FwStep::AliasCreate {
                    name: name.clone(),
                    cidr: cidr.clone(),
                    comment: comment.clone(),
                },
                FwStep::AliasDelete { name: name.clone() },
                None,
            )),
            Some(a) if norm_cidr(&a.cidr.to_string()) != norm_cidr(cidr) => Some((
                FwStep::AliasUpdate {
                    name: a.name.clone(),
                    cidr: cidr.clone(),
                    comment: comment.clone().or(a.comment.clone()),
                },
                FwStep::AliasUpdate {
                    name: a.name.clone(),
                    cidr: a.cidr.to_string(),
                    comment: a.comment.clone(),
                },
                Some(a.cidr.to_string()),
            )),
            Some(_) => None,
        };
        if let Some((step, revert, before)) = step_revert {
            model_step(&mut st, &FwScope::Cluster, &step);
            pend.push(Pending {
                id: format!("alias-{}", slug(name)),
                kind: ActionKind::FirewallAlias,
                rollback: match &before {
                    None => {
                        format!("delete the alias: `pvesh delete /cluster/firewall/aliases/{name}`")
                    }
                    Some(b) => format!(
                        "set it back: `pvesh set /cluster/firewall/aliases/{name} --cidr {b}`"
                    ),
                },
                changes: vec![change(format!("alias {name}"), before, Some(cidr.clone()))],
                reason: "declared in the spec".into(),
                op: FwOp {
                    scope: FwScope::Cluster,
                    steps: vec![step],
                    revert: vec![revert],
                },
                extra_deps: Vec::new(),
                phase: 0,
            });
        }
    }

    // 2. IP sets.
    for (name, entries) in &want.ipsets {
        // PVE's API lists ipset names lower-cased: match them that way.
        let have = st
            .config
            .cluster
            .ipsets
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone());
        let have_entries: Vec<String> = have
            .as_ref()
            .map(|s| {
                s.entries
                    .iter()
                    .map(|e| norm_cidr(&e.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut steps = Vec::new();
        let mut revert = Vec::new();
        let mut changes = Vec::new();
        if have.is_none() {
            steps.push(FwStep::IpsetCreate { name: name.clone() });
            revert.push(FwStep::IpsetDelete { name: name.clone() });
            changes.push(change(
                format!("ipset {name}"),
                None,
                Some("created".into()),
            ));
        }
        for e in entries {
            if !have_entries.contains(e) {
                steps.push(FwStep::IpsetAdd {
                    name: name.clone(),
                    cidr: e.clone(),
                });
                if have.is_some() {
                    revert.push(FwStep::IpsetRemove {
                        name: name.clone(),
                        cidr: e.clone(),
                    });
                }
                changes.push(change(format!("ipset {name}"), None, Some(e.clone())));
            }
        }
        for e in &have_entries {
            if !entries.contains(e) {
                steps.push(FwStep::IpsetRemove {
                    name: name.clone(),
                    cidr: e.clone(),
                });
                revert.push(FwStep::IpsetAdd {
                    name: name.clone(),
                    cidr: e.clone(),
                });
                changes.push(change(format!("ipset {name}"), Some(e.clone()), None));
            }
        }
        if steps.is_empty() {
            continue;
        }
        for s in &steps {
            model_step(&mut st, &FwScope::Cluster, s);
        }
        revert.reverse();
        pend.push(Pending {
            id: format!("ipset-{}", slug(name)),
            kind: ActionKind::FirewallIpset,
            rollback: format!("restore the entries of ipset `{name}` shown under changes"),
            changes,
            reason: "declared in the spec".into(),
            op: FwOp {
                scope: FwScope::Cluster,
                steps,
                revert,
            },
            extra_deps: Vec::new(),
            phase: 0,
        });
    }

    // 3. Rules, per scope: puts in spec order, then deletes of stale managed rules.
    let vm_dep = |scope: &FwScope| -> (Vec<ActionId>, u8, bool) {
        if let FwScope::Vm { vmid, .. } = scope {
            let create = ActionId::vm(*vmid, VmStep::Create);
            let phase = spec
                .vms
                .iter()
                .find(|v| v.vmid == *vmid)
                .map_or(0, |v| v.phase.0);
            let exists = obs.config.vms.contains_key(vmid);
            if existing.iter().any(|a| a.id == create) {
                return (vec![create], phase, true);
            }
            return (Vec::new(), phase, exists);
        }
        (Vec::new(), 0, true)
    };
    let mut absent_vms = BTreeSet::new();
    for (scope, rules) in &want.rules {
        let (deps, phase, present) = vm_dep(scope);
        if !present {
            if let FwScope::Vm { vmid, .. } = scope {
                absent_vms.insert(*vmid);
            }
            continue;
        }
        let before_rules = rules_mut(&mut st.config, scope).clone();
        let wanted_ids: BTreeSet<&str> = rules.iter().map(|(id, _)| id.as_str()).collect();
        for (i, (id, rule)) in rules.iter().enumerate() {
            let cur = rules_mut(&mut st.config, scope).clone();
            let pos = position(&cur, id);
            let same = pos.and_then(|p| cur.get(p)).is_some_and(|r| r == rule);
            if pos == Some(i) && same {
                continue;
            }
            let step = FwStep::RulePut {
                id: id.clone(),
                rule: rule.to_api_json(),
                index: i,
            };
            let orig =
                position(&before_rules, id).and_then(|p| before_rules.get(p).map(|r| (p, r)));
            let revert = match orig {
                None => FwStep::RuleDelete { id: id.clone() },
                Some((p, r)) => FwStep::RulePut {
                    id: id.clone(),
                    rule: r.to_api_json(),
                    index: p,
                },
            };
            let (changes, reason) = match pos.and_then(|p| cur.get(p)) {
                None => (
                    vec![change(format!("rule {id}"), None, Some(rule.to_string()))],
                    "declared in the spec, absent on the node".to_string(),
                ),
                Some(old) if old != rule => (
                    vec![change(
                        format!("rule {id}"),
                        Some(old.to_string()),
                        Some(rule.to_string()),
                    )],
                    "the rule on the node differs from the spec".to_string(),
                ),
                Some(_) => (
                    vec![change(
                        format!("rule {id} position"),
                        pos.map(|p| p.to_string()),
                        Some(i.to_string()),
                    )],
                    "rule order differs from the spec".to_string(),
                ),
            };
            model_step(&mut st, scope, &step);
            pend.push(Pending {
                id: format!("{}-rule-{}", scope.slug(), slug(id)),
                kind: ActionKind::FirewallRule,
                rollback: match orig {
                    None => format!(
                        "delete the rule with comment [lw:{id}] ({} rules)",
                        scope.target()
                    ),
                    Some(_) => format!("restore the previous rule [lw:{id}] (see changes)"),
                },
                changes,
                reason,
                op: FwOp {
                    scope: scope.clone(),
                    steps: vec![step],
                    revert: vec![revert],
                },
                extra_deps: deps.clone(),
                phase,
            });
        }
        let stale: Vec<(usize, Rule)> = before_rules
            .iter()
            .enumerate()
            .filter(|(_, r)| rule_id(r).is_some_and(|id| !wanted_ids.contains(id)))
            .map(|(p, r)| (p, r.clone()))
            .collect();
        for (p, r) in stale {
            let Some(id) = rule_id(&r).map(str::to_string) else {
                continue;
            };
            let step = FwStep::RuleDelete { id: id.clone() };
            model_step(&mut st, scope, &step);
            pend.push(Pending {
                id: format!("{}-rule-{}-delete", scope.slug(), slug(&id)),
                kind: ActionKind::FirewallRuleDelete,
                rollback: format!("re-create it: {r}"),
                changes: vec![change(format!("rule {id}"), Some(r.to_string()), None)],
                reason: "managed by labwright ([lw:…] comment) and no longer in the spec".into(),
                op: FwOp {
                    scope: scope.clone(),
                    steps: vec![step],
                    revert: vec![FwStep::RulePut {
                        id,
                        rule: r.to_api_json(),
                        index: p,
                    }],
                },
                extra_deps: deps.clone(),
                phase,
            });
        }
    }
    for vmid in &absent_vms {
        out.notes.push(format!(
            "VM {vmid}'s firewall is planned once the VM exists (it is not on the node and no create is planned)"
        ));
    }

    // 4. Options: everything but the datacenter enable/policy_in first, then the
    // datacenter switch, then the DROP policy last.
    let mut late: Vec<(FwScope, String, String)> = Vec::new();
    for (scope, opts) in &want.options {
        if let FwScope::Vm { vmid, .. } = scope
            && absent_vms.contains(vmid)
        {
            continue;
        }
        let (deps, phase, _) = vm_dep(scope);
        let have = st
            .options
            .get(&scope_key(scope))
            .cloned()
            .unwrap_or_default();
        let mut set = Vec::new();
        let mut rset = Vec::new();
        let mut rdel = Vec::new();
        let mut changes = Vec::new();
        for (k, v) in opts {
            let cur = have.get(k).cloned();
            if cur.as_deref().map(str::trim) == Some(v.as_str()) {
                continue;
            }
            if *scope == FwScope::Cluster && (k == "enable" || k == "policy_in") {
                late.push((scope.clone(), k.clone(), v.clone()));
                continue;
            }
            changes.push(change(k.clone(), cur.clone(), Some(v.clone())));
            set.push((k.clone(), v.clone()));
            match cur {
                Some(c) => rset.push((k.clone(), c)),
                None => rdel.push(k.clone()),
            }
        }
        if set.is_empty() {
            continue;
        }
        let step = FwStep::SetOptions {
            set,
            delete: Vec::new(),
        };
        model_step(&mut st, scope, &step);
        pend.push(Pending {
            id: format!("{}-options", scope.slug()),
            kind: ActionKind::FirewallOptions,
            rollback: format!("set the previous values again on {}", scope.target()),
            changes,
            reason: "the options on the node differ from the spec".into(),
            op: FwOp {
                scope: scope.clone(),
                steps: vec![step],
                revert: vec![FwStep::SetOptions {
                    set: rset,
                    delete: rdel,
                }],
            },
            extra_deps: deps,
            phase,
        });
    }
    // Tightening (DROP/REJECT) goes after the switch, last of all; an ACCEPT policy
    // goes before it, so the switch never turns on under PVE's default DROP.
    late.sort_by_key(|(_, k, v)| match (k.as_str(), v.as_str()) {
        ("enable", _) => 1,
        (_, "ACCEPT") => 0,
        _ => 2,
    });
    for (scope, k, v) in late {
        let cur = st
            .options
            .get(&scope_key(&scope))
            .and_then(|m| m.get(&k))
            .cloned();
        let step = FwStep::SetOptions {
            set: vec![(k.clone(), v.clone())],
            delete: Vec::new(),
        };
        let revert = match &cur {
            Some(c) => FwStep::SetOptions {
                set: vec![(k.clone(), c.clone())],
                delete: Vec::new(),
            },
            None => FwStep::SetOptions {
                set: Vec::new(),
                delete: vec![k.clone()],
            },
        };
        model_step(&mut st, &scope, &step);
        let (id, reason) = if k == "enable" {
            (
                "cluster-enable".to_string(),
                "the datacenter firewall switch differs from the spec (switched after rules are in place)",
            )
        } else if v == "ACCEPT" {
            (
                "cluster-policy-in".to_string(),
                "the inbound policy differs from the spec (an ACCEPT policy goes before the switch)",
            )
        } else {
            (
                "cluster-policy-in".to_string(),
                "the inbound policy differs from the spec (applied last, after the allows exist)",
            )
        };
        pend.push(Pending {
            id,
            kind: ActionKind::FirewallOptions,
            rollback: match &cur {
                Some(c) => format!("`pvesh set /cluster/firewall/options --{k} {c}`"),
                None => format!("`pvesh set /cluster/firewall/options --delete {k}`"),
            },
            changes: vec![change(k.clone(), cur, Some(v))],
            reason: reason.into(),
            op: FwOp {
                scope,
                steps: vec![step],
                revert: vec![revert],
            },
            extra_deps: Vec::new(),
            phase: 0,
        });
    }

    // Chain: every firewall action waits for the previous one (probe in between).
    let mut prev: Option<ActionId> = None;
    let mut actions = Vec::new();
    for p in pend {
        let mut deps = p.extra_deps;
        if let Some(pr) = &prev {
            deps.push(pr.clone());
        }
        let id = ActionId::Firewall { key: p.id };
        prev = Some(id.clone());
        let op = Op::Firewall(p.op);
        actions.push(Action {
            id,
            kind: p.kind,
            target: match &op {
                Op::Firewall(f) => f.scope.target(),
                _ => String::new(),
            },
            risk: Risk::High,
            phase: p.phase,
            pre_snapshot: None,
            rollback_hint: format!(
                "{}; if the node no longer answers, follow {RUNBOOK} from the console",
                p.rollback
            ),
            expected_downtime:
                "none expected (lockout proof below); a failed probe reverts this step".into(),
            downtime_seconds: 0,
            reason: p.reason,
            changes: p.changes,
            depends_on: deps,
            api_calls: Vec::new(),
            storage_lock: None,
            elements: Vec::new(),
            op,
        });
    }

    // The proof: every intermediate state, not only the last.
    let sources = proof_sources(spec, obs.client_addr);
    let mut proof_state = FwState::of(obs);
    let mut failure = None;
    if !obs.unreadable.is_empty() {
        failure = Some(format!(
            "cannot prove management access: the node has firewall entries labwright cannot read ({}); fix or remove them first",
            obs.unreadable.join("; ")
        ));
    }
    // Access only grows along the way: a step must not take away access the node
    // gives today or that an earlier step gave (access still missing is the end
    // state's business, proved below).
    let (now_lines, _) = prove_management(&proof_state.config, &node, &sources);
    let mut had: BTreeSet<(String, u16)> = now_lines
        .iter()
        .filter(|l| l.ok)
        .map(|l| (l.source.clone(), l.port))
        .collect();
    for a in &actions {
        if let Op::Firewall(f) = &a.op {
            for s in &f.steps {
                model_step(&mut proof_state, &f.scope, s);
            }
            if failure.is_none() {
                let (lines, _) = prove_management(&proof_state.config, &node, &sources);
                if let Some(l) = lines
                    .iter()
                    .find(|l| !l.ok && had.contains(&(l.source.clone(), l.port)))
                {
                    failure = Some(format!(
                        "after step `{}`: {}",
                        a.id,
                        l.failure.as_deref().unwrap_or("access lost")
                    ));
                }
                had.extend(
                    lines
                        .iter()
                        .filter(|l| l.ok)
                        .map(|l| (l.source.clone(), l.port)),
                );
            }
        }
    }
    let (lines, final_fail) = prove_management(&proof_state.config, &node, &sources);
    if failure.is_none()
        && let Some(msg) = final_fail
    {
        failure = Some(msg);
    }
    if active_fw_vms(spec).next().is_some() && !proof_state.config.cluster.options.enable {
        out.notes.push(
            "VM allowlists filter nothing while the datacenter firewall is off: PVE's master switch is `firewall.datacenter.options.enable`".into(),
        );
    }
    let touches = !actions.is_empty();
    let allowed = spec.safety_guards.allow_firewall_changes;
    let report = FirewallReport {
        backend: Backend::for_node(&proof_state.config, &node).to_string(),
        client_addr: obs.client_addr.map(|a| a.to_string()),
        evaluated: if touches && allowed {
            format!("post-plan, every one of {} steps", actions.len())
        } else {
            "current".into()
        },
        proof_ok: failure.is_none(),
        proof_skipped: false,
        lines,
        failure,
    };

    if !allowed && touches {
        for a in actions {
            out.held.push(Held::new(
                a.target.clone(),
                format!("{} `{}` held back by the firewall guard", a.kind, a.id),
                "set `safetyGuards.allowFirewallChanges: true` (the lockout proof runs then)",
            ));
        }
        if !report.proof_ok {
            out.notes
                .push("the node's CURRENT firewall fails the lockout proof (see below)".into());
        }
        out.notes.extend(report.summary());
        out.report = Some(report);
        return out;
    }
    if !touches && !report.proof_ok {
        out.notes.push(
            "the node's CURRENT firewall fails the lockout proof; this plan does not change it"
                .into(),
        );
    }
    out.notes.extend(report.summary());
    out.actions = actions;
    out.report = Some(report);
    out
}
