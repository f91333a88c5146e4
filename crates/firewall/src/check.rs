//! Whole-config checks: references that do not resolve, rules not valid
//! at their level. PVE keeps such rules in the file but silently leaves
//! them out of the generated ruleset, so a user believes an ACCEPT exists
//! that is never enforced.

use std::fmt;

use serde::Serialize;

use crate::addr::AddressRef;
use crate::eval::{Backend, Level};
use crate::model::{FirewallConfig, GuestFirewall, IpsetTarget};
use crate::resolve::Ctx;
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
        if let Action::Group(g) = &r.action
            && ctx.group(g).is_none()
        {
            push(format!("no such security group '{g}'"));
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

/// Why `proxmox-firewall` would refuse to load the ruleset for this
/// configuration and keep whatever it ran before: a GROUP rule naming a
/// group not defined under exactly that name (the jump goes to a chain
/// that does not exist, and nft rejects the whole batch), or an ipset
/// entry naming an alias that does not exist. `pve-firewall` skips the
/// rule or entry instead.
pub fn nftables_refusals(cfg: &FirewallConfig) -> Vec<ConfigIssue> {
    let mut out = Vec::new();
    if !cfg.cluster.options.enable {
        return out;
    }
    let ctx = Ctx {
        cfg,
        backend: Backend::Nftables,
        node: None,
        guest: None,
    };
    let groups = |level: &Level, rules: &[Rule], out: &mut Vec<ConfigIssue>| {
        for (i, r) in rules.iter().enumerate() {
            if let Action::Group(g) = &r.action
                && r.enable
                && ctx.group(g).is_none()
            {
                out.push(ConfigIssue {
                    level: level.clone(),
                    rule: Some(i),
                    message: format!(
                        "GROUP {g}: no security group named exactly '{g}'; proxmox-firewall refuses the whole ruleset"
                    ),
                });
            }
        }
    };
    groups(&Level::Cluster, &cfg.cluster.rules, &mut out);
    for (name, h) in &cfg.nodes {
        groups(&Level::Node(name.clone()), &h.rules, &mut out);
    }
    for (id, g) in &cfg.vms {
        if g.options.enable {
            groups(&Level::Vm(*id), &g.rules, &mut out);
        }
    }
    let entries = |level: &Level,
                   guest: Option<&GuestFirewall>,
                   sets: &std::collections::BTreeMap<String, crate::model::Ipset>,
                   out: &mut Vec<ConfigIssue>| {
        let c = Ctx { guest, ..ctx };
        for (name, set) in sets {
            for e in &set.entries {
                if let IpsetTarget::Alias { scope, name: alias } = &e.target
                    && c.alias_ivs(*scope, alias).is_err()
                {
                    out.push(ConfigIssue {
                        level: level.clone(),
                        rule: None,
                        message: format!(
                            "ipset '{name}' entry '{e}': no such alias; proxmox-firewall refuses the whole ruleset"
                        ),
                    });
                }
            }
        }
    };
    entries(&Level::Cluster, None, &cfg.cluster.ipsets, &mut out);
    for (id, g) in &cfg.vms {
        if g.options.enable {
            entries(&Level::Vm(*id), Some(g), &g.ipsets, &mut out);
        }
    }
    out
}
