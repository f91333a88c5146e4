//! Whole-config checks: references that do not resolve, rules not valid
//! at their level. PVE keeps such rules in the file but silently leaves
//! them out of the generated ruleset, so a user believes an ACCEPT exists
//! that is never enforced.

use std::fmt;

use serde::Serialize;

use crate::addr::AddressRef;
use crate::eval::{Backend, Ctx, Level};
use crate::model::{FirewallConfig, GuestFirewall, IpsetTarget};
use crate::rule::{Action, Rule, RuleContext};

/// One problem found in a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigIssue {
    /// Where it is.
    pub level: Level,
    /// Index of the rule, when the issue is about a rule.
    pub rule: Option<usize>,
    /// What is wrong, in PVE's words where PVE has them.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule {
            Some(i) => write!(f, "{} rule #{i}: {}", self.level, self.message),
            None => write!(f, "{}: {}", self.level, self.message),
        }
    }
}

fn check_rules(
    ctx: &Ctx<'_>,
    level: &Level,
    rules: &[Rule],
    rctx: RuleContext,
    guest: Option<&GuestFirewall>,
    out: &mut Vec<ConfigIssue>,
) {
    for (i, r) in rules.iter().enumerate() {
        let mut push = |message: String| {
            out.push(ConfigIssue {
                level: level.clone(),
                rule: Some(i),
                message,
            })
        };
        if let Err(e) = r.validate_for(rctx) {
            push(e.to_string());
        }
        if let Action::Group(g) = &r.action {
            let known = ctx
                .cfg
                .cluster
                .groups
                .keys()
                .any(|k| k.eq_ignore_ascii_case(g));
            if !known {
                push(format!("no such security group '{g}'"));
            }
        }
        for a in [&r.source, &r.dest].into_iter().flatten() {
            if let Err(e) = ctx.resolve(a) {
                push(e);
            }
        }
        if let (Some(g), Some(iface)) = (guest, &r.iface)
            && !g.nics.is_empty()
            && !g.nics.contains_key(iface)
        {
            push(format!("interface '{iface}' is not a NIC of this guest"));
        }
    }
}

impl Ctx<'_> {
    /// Resolve a reference; `Err` carries PVE's message.
    pub(crate) fn resolve(&self, a: &AddressRef) -> Result<(), String> {
        match a {
            AddressRef::Ipset { scope, name } => self.ipset(*scope, name).map(|_| ()),
            AddressRef::Alias { scope, name } => self.alias_ivs(*scope, name).map(|_| ()),
            AddressRef::List { .. } | AddressRef::Range { .. } => Ok(()),
        }
    }
}

/// Every issue in the config, in a stable order (cluster, groups, nodes,
/// guests).
pub fn check_config(cfg: &FirewallConfig) -> Vec<ConfigIssue> {
    let mut out = Vec::new();
    let dc = Ctx {
        cfg,
        backend: Backend::Iptables,
        node: None,
        guest: None,
    };
    check_rules(
        &dc,
        &Level::Cluster,
        &cfg.cluster.rules,
        RuleContext::Cluster,
        None,
        &mut out,
    );
    for (name, g) in &cfg.cluster.groups {
        check_rules(
            &dc,
            &Level::Group(name.clone()),
            &g.rules,
            RuleContext::SecurityGroup,
            None,
            &mut out,
        );
    }
    for (name, set) in &cfg.cluster.ipsets {
        for e in &set.entries {
            if let IpsetTarget::Alias { scope, name: alias } = &e.target
                && let Err(m) = dc.alias_ivs(*scope, alias)
            {
                out.push(ConfigIssue {
                    level: Level::Cluster,
                    rule: None,
                    message: format!("ipset '{name}': {m}"),
                });
            }
        }
    }
    for (name, h) in &cfg.nodes {
        let ctx = Ctx {
            node: Some(name),
            ..dc
        };
        check_rules(
            &ctx,
            &Level::Node(name.clone()),
            &h.rules,
            RuleContext::Host,
            None,
            &mut out,
        );
    }
    for (id, g) in &cfg.vms {
        let ctx = Ctx {
            node: g.node.as_deref(),
            guest: Some(g),
            ..dc
        };
        let level = Level::Vm(*id);
        check_rules(
            &ctx,
            &level,
            &g.rules,
            RuleContext::Guest,
            Some(g),
            &mut out,
        );
        for (name, set) in &g.ipsets {
            for e in &set.entries {
                if let IpsetTarget::Alias { scope, name: alias } = &e.target
                    && let Err(m) = ctx.alias_ivs(*scope, alias)
                {
                    out.push(ConfigIssue {
                        level: level.clone(),
                        rule: None,
                        message: format!("ipset '{name}': {m}"),
                    });
                }
            }
        }
    }
    out
}
