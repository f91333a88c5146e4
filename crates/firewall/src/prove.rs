//! Range proofs: "every address of this CIDR reaches tcp/22 on the node".
//!
//! Every membership test the evaluator makes is "is the source inside one
//! of the intervals the config mentions" (rule addresses, aliases, ipset
//! entries, `local_network`, …). Between two consecutive interval
//! boundaries all those answers are the same, so the verdict is too.
//! Splitting the source range at every boundary and evaluating one
//! address per piece is therefore exact, not a sample.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;
use thiserror::Error;

use crate::addr::Interval;
use crate::cuts::{all_intervals, all_port_cuts, all_sport_cuts};
use crate::eval::{Backend, Decision, Flow, Target, evaluate};
use crate::model::FirewallConfig;
use crate::proto::Protocol;
use crate::rule::Verdict;

/// A piece of the source range on which every address gets the same decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceClass {
    /// The addresses of this piece.
    pub range: Interval,
    /// The address that was evaluated (the first of the piece).
    pub representative: IpAddr,
    /// Source ports this piece stands for, when a proof had to split the
    /// client ports because some rule tests `-sport`.
    pub sports: Option<(u16, u16)>,
    /// The decision for every address of the piece.
    pub decision: Decision,
}

/// The proof: the whole source range, piece by piece, all with the
/// wanted verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proof {
    /// The pieces, in address order; together they cover the source range.
    pub classes: Vec<SourceClass>,
}

/// A block of flows (sources × destination ports) the config cannot
/// tell apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowClass {
    /// Source addresses.
    pub sources: Interval,
    /// Destination ports, inclusive.
    pub ports: (u16, u16),
    /// Source ports, when split (see [`SourceClass::sports`]).
    pub sports: Option<(u16, u16)>,
    /// The decision for every flow of the block.
    pub decision: Decision,
}

/// A proof over sources and a port range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortProof {
    /// The blocks, covering the whole sources × ports rectangle.
    pub classes: Vec<FlowClass>,
}

/// An address that does not get the wanted verdict.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[error("{address} (and all of {range}){}{} gets {}: {}", fmt_port(" from port", *sport), fmt_port(" to port", *port), decision.verdict, decision.decided_by)]
pub struct Counterexample {
    /// One failing address.
    pub address: IpAddr,
    /// All addresses failing for the same reason.
    pub range: Interval,
    /// The destination port of the failing flow (for port-range proofs;
    /// otherwise the probed port).
    pub port: Option<u16>,
    /// The source port of the failing flow, when that mattered.
    pub sport: Option<u16>,
    /// What happens to them (boxed: keeps `Result` small).
    pub decision: Box<Decision>,
}

/// Split `source` into classes of addresses the config cannot tell apart,
/// and evaluate one flow per class. `template` gives everything but the
/// source address.
pub fn classify_sources(
    cfg: &FirewallConfig,
    source: IpNet,
    template: &Flow,
    backend: Backend,
) -> Vec<SourceClass> {
    let whole = Interval::of_net(&source);
    let mut cuts: Vec<u128> = vec![whole.lo];
    for iv in all_intervals(cfg) {
        if iv.v6 != whole.v6 {
            continue;
        }
        for c in [Some(iv.lo), iv.hi.checked_add(1)].into_iter().flatten() {
            if c > whole.lo && c <= whole.hi {
                cuts.push(c);
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut classes = Vec::with_capacity(cuts.len());
    for (i, lo) in cuts.iter().enumerate() {
        let hi = cuts
            .get(i + 1)
            .map_or(whole.hi, |next| next.saturating_sub(1));
        let range = Interval {
            v6: whole.v6,
            lo: *lo,
            hi,
        };
        let representative = range.start();
        let mut flow = template.clone();
        flow.source = representative;
        let decision = evaluate(cfg, &flow, backend);
        classes.push(SourceClass {
            range,
            representative,
            sports: None,
            decision,
        });
    }
    classes
}

fn fmt_port(label: &str, port: Option<u16>) -> String {
    port.map(|p| format!("{label} {p}")).unwrap_or_default()
}

/// Client source ports: what an unknown source port stands for in a proof.
pub const EPHEMERAL_PORTS: (u16, u16) = (1024, 65535);

/// When the template leaves the source port open and some rule tests
/// `-sport`, the client port ranges the config can tell apart; `None`
/// when the source port cannot matter.
fn sport_classes(cfg: &FirewallConfig, template: &Flow) -> Option<Vec<(u16, u16)>> {
    if template.sport.is_some() {
        return None;
    }
    let (lo, hi) = (u32::from(EPHEMERAL_PORTS.0), u32::from(EPHEMERAL_PORTS.1));
    let all = all_sport_cuts(cfg);
    if all.is_empty() {
        return None;
    }
    let mut cuts: Vec<u32> = all.into_iter().filter(|c| *c > lo && *c <= hi).collect();
    cuts.push(lo);
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::with_capacity(cuts.len());
    for (i, start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).map_or(hi, |n| n.saturating_sub(1));
        if let (Ok(a), Ok(b)) = (u16::try_from(*start), u16::try_from(end)) {
            out.push((a, b));
        }
    }
    Some(out)
}

/// What happens to one flow from a real client: when the flow leaves the
/// source port open and some rule tests `-sport`, one decision per class
/// of client ports ([`EPHEMERAL_PORTS`]) the config tells apart, each with
/// its port range; otherwise the one decision, with `None`.
pub fn evaluate_client_ports(
    cfg: &FirewallConfig,
    flow: &Flow,
    backend: Backend,
) -> Vec<(Option<(u16, u16)>, Decision)> {
    match sport_classes(cfg, flow) {
        None => vec![(None, evaluate(cfg, flow, backend))],
        Some(classes) => classes
            .into_iter()
            .map(|(lo, hi)| {
                let mut f = flow.clone();
                f.sport = Some(lo);
                (Some((lo, hi)), evaluate(cfg, &f, backend))
            })
            .collect(),
    }
}

/// Classes for a proof: source classes, and when the source port can
/// matter, one set of them per client-port class.
fn proof_classes(
    cfg: &FirewallConfig,
    source: IpNet,
    template: &Flow,
    backend: Backend,
) -> Vec<SourceClass> {
    match sport_classes(cfg, template) {
        None => classify_sources(cfg, source, template, backend),
        Some(sports) => {
            let mut out = Vec::new();
            for (lo, hi) in sports {
                let mut t = template.clone();
                t.sport = Some(lo);
                out.extend(
                    classify_sources(cfg, source, &t, backend)
                        .into_iter()
                        .map(|c| SourceClass {
                            sports: Some((lo, hi)),
                            ..c
                        }),
                );
            }
            out
        }
    }
}

/// Prove that every address of `source` gets `want` for `template`
/// (with its source replaced), or return the first address that does not.
/// An unknown source port stands for every client port
/// ([`EPHEMERAL_PORTS`]), so a `-sport` rule cannot hide a lockout.
pub fn prove_verdict(
    cfg: &FirewallConfig,
    source: IpNet,
    template: &Flow,
    backend: Backend,
    want: impl Fn(Verdict) -> bool,
) -> Result<Proof, Counterexample> {
    let classes = proof_classes(cfg, source, template, backend);
    if let Some(bad) = classes.iter().find(|c| !want(c.decision.verdict)) {
        return Err(Counterexample {
            address: bad.representative,
            port: template.dport,
            sport: bad.sports.map(|(lo, _)| lo).or(template.sport),
            range: bad.range,
            decision: Box::new(bad.decision.clone()),
        });
    }
    Ok(Proof { classes })
}

/// Prove that every address of `source` is accepted by `dest` on
/// `proto`/`port` (inbound): the lockout check behind "a DROP policy
/// needs ACCEPT for every management CIDR to tcp 22 and 8006".
pub fn prove_reach(
    cfg: &FirewallConfig,
    source: IpNet,
    dest: &Target,
    proto: Protocol,
    port: Option<u16>,
    backend: Backend,
) -> Result<Proof, Counterexample> {
    let template = Flow::new(source.network(), dest.clone(), proto, port);
    prove_verdict(cfg, source, &template, backend, Verdict::is_accept)
}

/// Prove that no address of `source` gets through (DROP or REJECT): the
/// check behind "SERVICES/IOT → Proxmox management blocked".
pub fn prove_blocked(
    cfg: &FirewallConfig,
    source: IpNet,
    dest: &Target,
    proto: Protocol,
    port: Option<u16>,
    backend: Backend,
) -> Result<Proof, Counterexample> {
    let template = Flow::new(source.network(), dest.clone(), proto, port);
    prove_verdict(cfg, source, &template, backend, |v| !v.is_accept())
}

/// Split `lo..=hi` at every port boundary of the config.
pub fn classify_ports(cfg: &FirewallConfig, lo: u16, hi: u16) -> Vec<(u16, u16)> {
    let (lo32, hi32) = (u32::from(lo), u32::from(hi.max(lo)));
    let mut cuts: Vec<u32> = all_port_cuts(cfg)
        .into_iter()
        .filter(|c| *c > lo32 && *c <= hi32)
        .collect();
    cuts.push(lo32);
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::with_capacity(cuts.len());
    for (i, start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).map_or(hi32, |n| n.saturating_sub(1));
        if let (Ok(a), Ok(b)) = (u16::try_from(*start), u16::try_from(end)) {
            out.push((a, b));
        }
    }
    out
}

/// Split sources × ports into blocks the config cannot tell apart and
/// evaluate one flow per block; `template` gives everything else.
pub fn classify_flows(
    cfg: &FirewallConfig,
    source: IpNet,
    ports: (u16, u16),
    template: &Flow,
    backend: Backend,
) -> Vec<FlowClass> {
    let mut out = Vec::new();
    for (plo, phi) in classify_ports(cfg, ports.0, ports.1) {
        let mut t = template.clone();
        t.dport = Some(plo);
        for c in proof_classes(cfg, source, &t, backend) {
            out.push(FlowClass {
                sources: c.range,
                ports: (plo, phi),
                sports: c.sports,
                decision: c.decision,
            });
        }
    }
    out
}

/// Prove that every flow from `source` to any port in `ports` gets a
/// verdict `want` accepts, or return one that does not. With
/// `|v| !v.is_accept()` this proves "nothing but the allowed ports is
/// open" when run over the gaps between allowed ports.
pub fn prove_ports(
    cfg: &FirewallConfig,
    source: IpNet,
    ports: (u16, u16),
    template: &Flow,
    backend: Backend,
    want: impl Fn(Verdict) -> bool,
) -> Result<PortProof, Counterexample> {
    let classes = classify_flows(cfg, source, ports, template, backend);
    if let Some(bad) = classes.iter().find(|c| !want(c.decision.verdict)) {
        return Err(Counterexample {
            address: bad.sources.start(),
            port: Some(bad.ports.0),
            sport: bad.sports.map(|(lo, _)| lo).or(template.sport),
            range: bad.sources,
            decision: Box::new(bad.decision.clone()),
        });
    }
    Ok(PortProof { classes })
}
