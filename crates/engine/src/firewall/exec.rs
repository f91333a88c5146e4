//! The executor of firewall steps: rules created disabled, moved, then enabled;
//! every step guarded by a probe over a fresh connection.

use super::*;

// ---------------------------------------------------------------------------

pub(crate) fn to_pve_rule(v: &Value, enable: bool) -> FirewallRule {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    FirewallRule {
        pos: None,
        rule_type: s("type").unwrap_or_else(|| "in".into()),
        action: s("action").unwrap_or_default(),
        enable: Some(enable),
        macro_name: s("macro"),
        proto: s("proto"),
        dport: s("dport"),
        sport: s("sport"),
        source: s("source"),
        dest: s("dest"),
        iface: s("iface"),
        log: s("log"),
        comment: s("comment"),
        icmp_type: s("icmp-type"),
        ipversion: None,
        digest: None,
    }
}

pub(crate) const RULE_FIELDS: [&str; 10] = [
    "macro",
    "proto",
    "dport",
    "sport",
    "source",
    "dest",
    "iface",
    "log",
    "comment",
    "icmp-type",
];

pub(crate) fn find_rule(list: &[FirewallRule], id: &str) -> Option<(u32, Option<String>)> {
    list.iter().find_map(|r| {
        let c = r.comment.as_deref()?;
        (comment_id(c) == Some(id)).then(|| (r.pos.unwrap_or(0), r.digest.clone()))
    })
}

pub(crate) fn list_digest(list: &[FirewallRule]) -> Option<String> {
    list.first().and_then(|r| r.digest.clone())
}

/// The `moveto` that brings the rule at `pos` to `target`. PVE's `update_rule`
/// re-inserts the rule *before the original index* `moveto` (so moving down needs
/// `target + 1`, and anything past the end appends); an implementation that removes
/// first and then inserts at `moveto` lands one further down, which the caller sees on
/// re-listing and corrects with a move up — where both readings agree.
pub(crate) fn moveto_for(pos: u32, target: u32) -> u32 {
    if pos > target {
        target
    } else {
        target.saturating_add(1)
    }
}

pub(crate) async fn move_rule(
    client: &PveClient,
    ps: &FirewallScope,
    id: &str,
    index: usize,
) -> Result<(), StepError> {
    // Where the rule lands is checked after every move (see `moveto_for`).
    for _ in 0..3u32 {
        let list = client
            .firewall_rules(ps)
            .await
            .map_err(StepError::ctx("list rules"))?;
        let Some((pos, _)) = find_rule(&list, id) else {
            return Err(StepError::Refused(format!(
                "rule [lw:{id}] vanished while moving it"
            )));
        };
        let last = list.len().saturating_sub(1);
        let target = u32::try_from(index.min(last)).unwrap_or(u32::MAX);
        if pos == target {
            return Ok(());
        }
        let moveto = moveto_for(pos, target);
        client
            .firewall_rule_move(ps, pos, moveto, list_digest(&list).as_deref())
            .await
            .map_err(StepError::ctx(format!("move rule [lw:{id}] to {index}")))?;
    }
    let list = client
        .firewall_rules(ps)
        .await
        .map_err(StepError::ctx("list rules"))?;
    match find_rule(&list, id) {
        Some((pos, _)) if pos as usize == index.min(list.len().saturating_sub(1)) => Ok(()),
        _ => Err(StepError::Refused(format!(
            "could not move rule [lw:{id}] to position {index}"
        ))),
    }
}

pub(crate) async fn run_step(
    client: &PveClient,
    scope: &FwScope,
    step: &FwStep,
) -> Result<(), StepError> {
    let ps = scope.pve();
    let e = |what: String| StepError::ctx(what);
    match step {
        FwStep::SetOptions { set, delete } => {
            let mut p = Params::new();
            for (k, v) in set {
                p.insert(k.clone(), v.as_str());
            }
            let del: Vec<&str> = delete.iter().map(String::as_str).collect();
            client
                .firewall_set_options(&ps, p, &del, None)
                .await
                .map_err(e(format!("set options on {}", scope.target())))
        }
        FwStep::AliasCreate {
            name,
            cidr,
            comment,
        } => {
            let have = client
                .firewall_aliases(&ps)
                .await
                .map_err(e("list aliases".into()))?;
            if have.iter().any(|a| a.name.eq_ignore_ascii_case(name)) {
                client
                    .firewall_alias_update(&ps, name, cidr, comment.as_deref(), None, None)
                    .await
                    .map_err(e(format!("update alias {name}")))
            } else {
                client
                    .firewall_alias_create(&ps, name, cidr, comment.as_deref())
                    .await
                    .map_err(e(format!("create alias {name}")))
            }
        }
        FwStep::AliasUpdate {
            name,
            cidr,
            comment,
        } => client
            .firewall_alias_update(&ps, name, cidr, comment.as_deref(), None, None)
            .await
            .map_err(e(format!("update alias {name}"))),
        FwStep::AliasDelete { name } => client
            .firewall_alias_delete(&ps, name, None)
            .await
            .map_err(e(format!("delete alias {name}"))),
        FwStep::IpsetCreate { name } => {
            let have = client
                .firewall_ipsets(&ps)
                .await
                .map_err(e("list ipsets".into()))?;
            if have.iter().any(|s| s.name.eq_ignore_ascii_case(name)) {
                return Ok(());
            }
            client
                .firewall_ipset_create(&ps, name, Some("labwright"))
                .await
                .map_err(e(format!("create ipset {name}")))
        }
        FwStep::IpsetAdd { name, cidr } => {
            let have = client
                .firewall_ipset_entries(&ps, name)
                .await
                .map_err(e(format!("list ipset {name}")))?;
            if have.iter().any(|x| norm_cidr(&x.cidr) == norm_cidr(cidr)) {
                return Ok(());
            }
            client
                .firewall_ipset_add(&ps, name, cidr, None, false)
                .await
                .map_err(e(format!("add {cidr} to ipset {name}")))
        }
        FwStep::IpsetRemove { name, cidr } => {
            let have = client
                .firewall_ipset_entries(&ps, name)
                .await
                .map_err(e(format!("list ipset {name}")))?;
            let Some(x) = have.iter().find(|x| norm_cidr(&x.cidr) == norm_cidr(cidr)) else {
                return Ok(());
            };
            client
                .firewall_ipset_remove(&ps, name, &x.cidr, None)
                .await
                .map_err(e(format!("remove {cidr} from ipset {name}")))
        }
        FwStep::IpsetDelete { name } => client
            .firewall_ipset_delete(&ps, name, true)
            .await
            .map_err(e(format!("delete ipset {name}"))),
        FwStep::RulePut { id, rule, index } => {
            let want_enable = rule.get("enable").and_then(Value::as_u64) == Some(1);
            let is_accept = rule.get("action").and_then(Value::as_str) == Some("ACCEPT")
                && rule.get("type").and_then(Value::as_str) != Some(RuleKind::Group.as_api());
            let list = client
                .firewall_rules(&ps)
                .await
                .map_err(e("list rules".into()))?;
            let mut enable_after = false;
            match find_rule(&list, id) {
                None => {
                    // New rules land at the top: only an ACCEPT may be live there.
                    let live = want_enable && is_accept;
                    enable_after = want_enable && !live;
                    client
                        .firewall_rule_create(
                            &ps,
                            &to_pve_rule(rule, live),
                            None,
                            list_digest(&list).as_deref(),
                        )
                        .await
                        .map_err(e(format!("create rule [lw:{id}]")))?;
                }
                Some((pos, digest)) => {
                    let delete: Vec<&str> = RULE_FIELDS
                        .iter()
                        .copied()
                        .filter(|k| rule.get(*k).is_none())
                        .collect();
                    client
                        .firewall_rule_update(
                            &ps,
                            pos,
                            &to_pve_rule(rule, want_enable),
                            &delete,
                            digest.as_deref(),
                        )
                        .await
                        .map_err(e(format!("update rule [lw:{id}]")))?;
                }
            }
            move_rule(client, &ps, id, *index).await?;
            if enable_after {
                let list = client
                    .firewall_rules(&ps)
                    .await
                    .map_err(e("list rules".into()))?;
                let Some((pos, digest)) = find_rule(&list, id) else {
                    return Err(StepError::Refused(format!(
                        "rule [lw:{id}] vanished before it was enabled"
                    )));
                };
                client
                    .firewall_rule_update(
                        &ps,
                        pos,
                        &to_pve_rule(rule, true),
                        &[],
                        digest.as_deref(),
                    )
                    .await
                    .map_err(e(format!("enable rule [lw:{id}]")))?;
            }
            Ok(())
        }
        FwStep::RuleDelete { id } => {
            let list = client
                .firewall_rules(&ps)
                .await
                .map_err(e("list rules".into()))?;
            let Some((pos, digest)) = find_rule(&list, id) else {
                return Ok(());
            };
            client
                .firewall_rule_delete(&ps, pos, digest.as_deref())
                .await
                .map_err(e(format!("delete rule [lw:{id}]")))
        }
    }
}

impl crate::op::Step for FwOp {
    fn api_calls(&self) -> Vec<String> {
        self.describe()
    }

    /// The steps, guarded: probed over a fresh connection, reverted over the
    /// kept-alive one when the probe fails.
    async fn run(&self, cx: &crate::op::ExecCx<'_>) -> Result<(), StepError> {
        let guard = crate::guarded::Guard {
            probe: cx.settings.probe.as_ref(),
            settle: cx.settings.probe_settle,
        };
        let change = async {
            for s in &self.steps {
                run_step(cx.client, &self.scope, s).await?;
            }
            Ok(())
        };
        let revert = || async {
            for s in &self.revert {
                run_step(cx.client, &self.scope, s).await?;
            }
            Ok(())
        };
        crate::guarded::guarded(&guard, change, revert).await
    }
}
