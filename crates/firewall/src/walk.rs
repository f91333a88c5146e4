//! Matching rules against a flow and walking rule lists (security groups
//! included), recording the trail.

use std::net::IpAddr;

use crate::eval::{
    Backend, DecidedBy, Decision, Direction, Flow, GroupJump, Level, Outcome, Target, TraceStep,
};
use crate::ports::PortSpec;
use crate::proto::Protocol;
use crate::resolve::Ctx;
use crate::rule::{Action, Rule, RuleKind, Verdict};

/// Facts of the flow after defaults are filled in.
pub(crate) struct Facts<'f> {
    pub(crate) flow: &'f Flow,
    pub(crate) local: Option<IpAddr>,
    pub(crate) iface: Option<String>,
}

fn port_match(spec: &PortSpec, port: Option<u16>, what: &str) -> Result<(), String> {
    match port {
        Some(p) if spec.contains(p) => Ok(()),
        Some(p) => Err(format!("{what} {p} not in {spec}")),
        None => Err(format!("flow has no {what}")),
    }
}

fn ranges_match(ranges: &[(u16, u16)], port: Option<u16>, what: &str) -> Result<(), String> {
    if ranges.is_empty() {
        return Ok(());
    }
    port_match(&PortSpec::from_ranges(ranges), port, what)
}

fn icmp_match(want: &str, flow: &Flow) -> Result<(), String> {
    if want == "any" {
        return Ok(());
    }
    match flow.icmp_type.as_deref() {
        Some(t) if t == want => Ok(()),
        Some(t) => Err(format!("icmp type {t} is not {want}")),
        None => Err("flow has no icmp type".into()),
    }
}

/// Protocol and port part of a rule, macros expanded.
///
/// A macro rule's own `-p`/`-dport`/`-sport` combine with each macro entry
/// differently per backend: pve-firewall fills in what an entry leaves
/// open and refuses the whole rule when a value contradicts the entry
/// (`SSH(ACCEPT) -p udp`); proxmox-firewall adds both to the generated rule,
/// so both must hold.
///
/// A rule's `-dport` naming an ICMP type is the old spelling of
/// `-icmp-type`: pve-firewall matches it, proxmox-firewall ignores it (the
/// rule then matches every ICMP packet).
fn l4_match(rule: &Rule, flow: &Flow, backend: Backend) -> Result<(), Miss> {
    let Some(mac) = rule.macro_def() else {
        return own_l4_match(rule, flow, backend).map_err(Miss::No);
    };
    let entries = mac.entries_for(flow.source.is_ipv6());
    if backend == Backend::Iptables
        && let Some(conflict) = entries.iter().find_map(|e| macro_conflict(rule, e))
    {
        return Err(Miss::Skip(format!(
            "{conflict} is already defined by macro {}; pve-firewall leaves the rule out",
            mac.name
        )));
    }
    let mut reasons = Vec::new();
    for e in entries {
        let res = (|| {
            if e.proto != flow.proto.number() {
                return Err(format!(
                    "proto {} is not {}",
                    flow.proto,
                    Protocol::from_number(e.proto)
                ));
            }
            if let Some(t) = e.icmp_type {
                icmp_match(t, flow)?;
            } else if !e.dport.is_empty() {
                ranges_match(e.dport, flow.dport, "dport")?;
            }
            if !e.sport.is_empty() {
                ranges_match(e.sport, flow.sport, "sport")?;
            }
            match backend {
                // the rule's own values fill what the entry leaves open
                Backend::Iptables => {
                    if let (true, Some(d)) =
                        (e.dport.is_empty() && e.icmp_type.is_none(), &rule.dport)
                    {
                        port_match(d, flow.dport, "dport")?;
                    }
                    if let (true, Some(sp)) = (e.sport.is_empty(), &rule.sport) {
                        port_match(sp, flow.sport, "sport")?;
                    }
                    Ok(())
                }
                // both the entry and the rule's own matches are generated
                Backend::Nftables => own_l4_match(rule, flow, backend),
            }
        })();
        match res {
            Ok(()) => return Ok(()),
            Err(r) => reasons.push(r),
        }
    }
    Err(Miss::No(format!(
        "macro {}: {}",
        mac.name,
        reasons.join("; ")
    )))
}

/// A value of the rule that contradicts a macro entry, as pve-firewall's
/// macro expansion sees it (values compared as written).
fn macro_conflict(rule: &Rule, e: &crate::macros::MacroEntry) -> Option<String> {
    if let Some(p) = &rule.proto
        && p.number() != e.proto
    {
        return Some(format!("-p {p}"));
    }
    if let Some(d) = &rule.dport
        && !e.dport.is_empty()
        && d.to_string() != PortSpec::from_ranges(e.dport).to_string()
    {
        return Some(format!("-dport {d}"));
    }
    if let Some(sp) = &rule.sport
        && !e.sport.is_empty()
        && sp.to_string() != PortSpec::from_ranges(e.sport).to_string()
    {
        return Some(format!("-sport {sp}"));
    }
    None
}

/// The rule's own `-p`, `-dport`, `-sport`, `-icmp-type`.
fn own_l4_match(rule: &Rule, flow: &Flow, backend: Backend) -> Result<(), String> {
    if let Some(p) = &rule.proto
        && !p.same(&flow.proto)
    {
        return Err(format!("proto {} is not {p}", flow.proto));
    }
    if let Some(d) = &rule.dport {
        match d.icmp_type() {
            Some(_) if backend == Backend::Nftables => {}
            Some(t) => icmp_match(t, flow)?,
            None => port_match(d, flow.dport, "dport")?,
        }
    }
    if let Some(s) = &rule.sport {
        port_match(s, flow.sport, "sport")?;
    }
    if let Some(t) = &rule.icmp_type {
        icmp_match(t, flow)?;
    }
    Ok(())
}

/// Whether a rule (not a GROUP rule) matches; `Err(Skip)` when PVE would
/// drop the rule for an unresolvable reference.
enum Miss {
    No(String),
    Skip(String),
}

/// Where a rule sits: directly in a chain, or inside a security group.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Chain,
    InGroup,
}

fn rule_match(ctx: &Ctx<'_>, rule: &Rule, facts: &Facts<'_>, place: Place) -> Result<(), Miss> {
    let flow = facts.flow;
    let want = match flow.direction {
        Direction::In => RuleKind::In,
        Direction::Out => RuleKind::Out,
    };
    if rule.kind != want {
        return Err(Miss::No(format!("type {} is not {want}", rule.kind)));
    }
    member_iface_match(ctx, rule, facts, place)?;
    let (src_ip, dst_ip) = match flow.direction {
        Direction::In => (Some(flow.source), facts.local),
        Direction::Out => (facts.local, Some(flow.source)),
    };
    for (label, aref, ip) in [
        ("source", &rule.source, src_ip),
        ("dest", &rule.dest, dst_ip),
    ] {
        if let Some(a) = aref {
            let Some(ip) = ip else {
                return Err(Miss::No(format!(
                    "{label} address of the target is unknown"
                )));
            };
            match ctx.addr_match(a, ip) {
                Ok(true) => {}
                Ok(false) => return Err(Miss::No(format!("{label} {ip} not in {a}"))),
                Err(e) => return Err(Miss::Skip(e)),
            }
        }
    }
    l4_match(rule, flow, ctx.backend)
}

/// `-i` of a rule. Inside a security group the backends differ:
/// pve-firewall does not allow it there and leaves such a rule out (only
/// the GROUP rule's own `-i`, on the jump, counts); proxmox-firewall
/// matches it like any `-i` — on the host, against the arriving interface;
/// in a guest's group it names a `netN` that no packet ever carries, so
/// the rule never matches.
fn member_iface_match(
    ctx: &Ctx<'_>,
    rule: &Rule,
    facts: &Facts<'_>,
    place: Place,
) -> Result<(), Miss> {
    let Some(want) = rule.iface.as_deref() else {
        return Ok(());
    };
    match (place, ctx.backend) {
        (Place::Chain, _) => iface_match(Some(want), facts).map_err(Miss::No),
        (Place::InGroup, Backend::Iptables) => Err(Miss::Skip(format!(
            "-i {want} is not allowed in a security group; pve-firewall leaves the rule out"
        ))),
        (Place::InGroup, Backend::Nftables) if matches!(facts.flow.dest, Target::Vm(_)) => {
            Err(Miss::No(format!(
                "-i {want} inside a group is never true for guest traffic on proxmox-firewall"
            )))
        }
        (Place::InGroup, Backend::Nftables) => iface_match(Some(want), facts).map_err(Miss::No),
    }
}

fn iface_match(want: Option<&str>, facts: &Facts<'_>) -> Result<(), String> {
    match (want, facts.iface.as_deref()) {
        (None, _) => Ok(()),
        (Some(w), Some(i)) if w == i => Ok(()),
        (Some(w), Some(i)) => Err(format!("iface {i} is not {w}")),
        (Some(w), None) => Err(format!("flow interface unknown (rule wants {w})")),
    }
}

/// Walks chains, recording the trail.
pub(crate) struct Walk {
    pub(crate) trail: Vec<TraceStep>,
}

impl Walk {
    pub(crate) fn step(&mut self, chain: &str, what: impl Into<String>, outcome: Outcome) {
        self.trail.push(TraceStep {
            chain: chain.to_string(),
            what: what.into(),
            outcome,
        });
    }

    pub(crate) fn done(self, verdict: Verdict, decided_by: DecidedBy) -> Decision {
        Decision {
            verdict,
            decided_by,
            trail: self.trail,
        }
    }

    /// First-match over a rule list, entering security groups.
    pub(crate) fn rules(
        &mut self,
        ctx: &Ctx<'_>,
        chain: &str,
        level: &Level,
        rules: &[Rule],
        facts: &Facts<'_>,
    ) -> Option<(Verdict, DecidedBy)> {
        for (index, rule) in rules.iter().enumerate() {
            let line = rule.to_string();
            let what = format!("{level} #{index}: {line}");
            if !rule.enable {
                self.step(chain, what, Outcome::Skipped("disabled".into()));
                continue;
            }
            if rule.kind == RuleKind::Group {
                let Action::Group(gname) = &rule.action else {
                    self.step(
                        chain,
                        what,
                        Outcome::Skipped("group rule without group name".into()),
                    );
                    continue;
                };
                if let Err(r) = iface_match(rule.iface.as_deref(), facts) {
                    self.step(chain, what, Outcome::NoMatch(r));
                    continue;
                }
                let Some(group) = ctx.group(gname) else {
                    self.step(chain, what, Outcome::Skipped(no_such_group(ctx, gname)));
                    continue;
                };
                self.step(chain, what, Outcome::Note("enter group".into()));
                let glevel = Level::Group(gname.clone());
                let gchain = format!("GROUP-{gname}");
                // Group chains are generated once from cluster.fw, so names
                // inside a group resolve at datacenter level only.
                let gctx = Ctx {
                    guest: None,
                    ..*ctx
                };
                for (gi, grule) in group.rules.iter().enumerate() {
                    let gline = grule.to_string();
                    let gwhat = format!("{glevel} #{gi}: {gline}");
                    if !grule.enable {
                        self.step(&gchain, gwhat, Outcome::Skipped("disabled".into()));
                        continue;
                    }
                    match rule_match(&gctx, grule, facts, Place::InGroup) {
                        Ok(()) => {
                            let Some(v) = grule.action.verdict() else {
                                self.step(&gchain, gwhat, Outcome::Skipped("nested group".into()));
                                continue;
                            };
                            let v = adjust(v, ctx, facts);
                            self.step(&gchain, gwhat, Outcome::Matched(v));
                            let via = GroupJump {
                                level: level.clone(),
                                index,
                                rule: line,
                            };
                            return Some((
                                v,
                                DecidedBy::Rule {
                                    level: glevel,
                                    index: gi,
                                    rule: gline,
                                    comment: grule.comment.clone(),
                                    via: Some(Box::new(via)),
                                },
                            ));
                        }
                        Err(Miss::No(r)) => self.step(&gchain, gwhat, Outcome::NoMatch(r)),
                        Err(Miss::Skip(r)) => self.step(&gchain, gwhat, Outcome::Skipped(r)),
                    }
                }
                self.step(
                    chain,
                    format!("{level} #{index}: {line}"),
                    Outcome::GroupExhausted,
                );
                continue;
            }
            match rule_match(ctx, rule, facts, Place::Chain) {
                Ok(()) => {
                    let Some(v) = rule.action.verdict() else {
                        self.step(
                            chain,
                            what,
                            Outcome::Skipped("group action on a non-group rule".into()),
                        );
                        continue;
                    };
                    let v = adjust(v, ctx, facts);
                    self.step(chain, what, Outcome::Matched(v));
                    return Some((
                        v,
                        DecidedBy::Rule {
                            level: level.clone(),
                            index,
                            rule: line,
                            comment: rule.comment.clone(),
                            via: None,
                        },
                    ));
                }
                Err(Miss::No(r)) => self.step(chain, what, Outcome::NoMatch(r)),
                Err(Miss::Skip(r)) => self.step(chain, what, Outcome::Skipped(r)),
            }
        }
        None
    }
}

/// What a REJECT really does: nftables cannot REJECT guest traffic and
/// drops instead; iptables' `PVEFW-reject` drops ICMP rather than
/// answering it.
pub(crate) fn reject_becomes_drop(backend: Backend, flow: &Flow) -> Option<&'static str> {
    match backend {
        Backend::Nftables if matches!(flow.dest, Target::Vm(_)) => {
            Some("nftables cannot REJECT guest traffic; dropping")
        }
        Backend::Iptables if flow.proto.same(&Protocol::ICMP) => {
            Some("PVEFW-reject drops ICMP instead of answering")
        }
        _ => None,
    }
}

pub(crate) fn adjust(v: Verdict, ctx: &Ctx<'_>, facts: &Facts<'_>) -> Verdict {
    if v == Verdict::Reject && reject_becomes_drop(ctx.backend, facts.flow).is_some() {
        Verdict::Drop
    } else {
        v
    }
}

fn no_such_group(ctx: &Ctx<'_>, name: &str) -> String {
    let other = ctx
        .cfg
        .cluster
        .groups
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name));
    match (other, ctx.backend) {
        (Some(k), Backend::Iptables) => format!(
            "no such security group '{name}' (pve-firewall lower-cases the defined name to '{}')",
            k.to_ascii_lowercase()
        ),
        (Some(k), Backend::Nftables) => format!(
            "no such security group '{name}' (proxmox-firewall keeps case: the group is '{k}'; it refuses the whole ruleset)"
        ),
        (None, Backend::Nftables) => {
            format!("no such security group '{name}' (proxmox-firewall refuses the whole ruleset)")
        }
        (None, Backend::Iptables) => format!("no such security group '{name}'"),
    }
}
