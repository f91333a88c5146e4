//! The bridges kind: the node's interfaces read in full, compared with
//! `networks.bridges`. Missing internal bridges (no ports, no address) and changed
//! comments become ONE wave — every change staged in `interfaces.new`, one reload,
//! one probe over a fresh connection — because each reload touches the whole host
//! network and is the risky part. The bridge carrying the management address is never
//! changed by this version: a declared move of its address, gateway or ports is refused
//! at plan time with the reason (docs/decisions.md, "Bridges").

mod deadman;
mod op;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;

pub use op::{BridgeDef, BridgeOp, BridgeUpdate};

use crate::action::{Action, ActionId, ActionKind, Change, Held, Risk};
use crate::canon::Effect;
use crate::plan::{PlanCx, PlanOut};

/// The wave's action id (`net-bridges`).
pub fn wave_id() -> ActionId {
    ActionId::Network {
        key: "bridges".into(),
    }
}

/// One bridge as the node reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedBridge {
    pub ports: Vec<String>,
    pub cidr: Option<String>,
    pub gateway: Option<String>,
    pub comment: Option<String>,
    pub autostart: bool,
    /// Up in the kernel: guests can use it. A stanza a failed reload left behind is not.
    pub active: bool,
}

/// The node's network as `GET /nodes/{node}/network` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedNetwork {
    pub bridges: BTreeMap<String, ObservedBridge>,
    /// Staged changes nobody applied (the diff of `interfaces.new`): a reload would
    /// apply them along with labwright's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

impl ObservedNetwork {
    /// Bridges that exist and are up, by name only (hand-built scans).
    pub fn with_bridges<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        ObservedNetwork {
            bridges: names
                .into_iter()
                .map(|n| {
                    (
                        n.into(),
                        ObservedBridge {
                            active: true,
                            autostart: true,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            pending: None,
        }
    }

    /// From the API's list.
    pub fn from_list(list: labwright_pve::api::network::NetworkList) -> Self {
        let bridges = list
            .ifaces
            .into_iter()
            .filter(|i| i.iface_type.eq_ignore_ascii_case("bridge") || i.iface_type == "OVSBridge")
            .map(|i| {
                let b = ObservedBridge {
                    ports: ports_of(i.bridge_ports.as_deref()),
                    cidr: i.cidr.clone().or_else(|| {
                        i.address
                            .as_ref()
                            .map(|a| format!("{a}/{}", i.netmask.as_deref().unwrap_or("32")))
                    }),
                    gateway: i.gateway.clone().filter(|g| !g.is_empty()),
                    comment: norm_comment(i.comments.as_deref()),
                    autostart: i.autostart.unwrap_or(false),
                    active: i.active.unwrap_or(false),
                };
                (i.iface, b)
            })
            .collect();
        ObservedNetwork {
            bridges,
            pending: list.changes.filter(|c| !c.trim().is_empty()),
        }
    }

    /// The bridge exists and is up.
    pub fn has(&self, name: &str) -> bool {
        self.bridges.get(name).is_some_and(|b| b.active)
    }
}

/// `"nic0 nic1"` (or `none`) as a list.
fn ports_of(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split_whitespace()
        .filter(|p| *p != "none")
        .map(str::to_string)
        .collect()
}

/// PVE keeps comment lines with their newline; empty means none.
pub(crate) fn norm_comment(c: Option<&str>) -> Option<String> {
    c.map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

fn ip_of(cidr: &str) -> &str {
    cidr.split('/').next().unwrap_or(cidr)
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Why a declared bridge that exists differs in what only a critical change could do
/// (address, gateway, ports); empty when only the comment (or nothing) differs.
fn hard_diffs(b: &labwright_spec::model::Bridge, o: &ObservedBridge) -> Vec<String> {
    let mut why = Vec::new();
    let want_cidr = b.address.map(|a| a.0.to_string());
    match (&o.cidr, &want_cidr) {
        (Some(have), Some(want)) if have != want => {
            why.push(format!("move its address from {have} to {want}"));
        }
        (Some(have), None) => why.push(format!("remove its address {have}")),
        (None, Some(want)) => why.push(format!("add the address {want}")),
        _ => {}
    }
    let want_gw = b.gateway.map(|g| g.to_string());
    match (&o.gateway, &want_gw) {
        (Some(have), Some(want)) if have != want => {
            why.push(format!("move its gateway from {have} to {want}"));
        }
        (Some(have), None) => why.push(format!("remove its gateway {have}")),
        (None, Some(want)) => why.push(format!("add the gateway {want}")),
        _ => {}
    }
    let (have, want) = (sorted(&o.ports), sorted(&b.ports));
    if have != want {
        let dropped: Vec<&String> = have.iter().filter(|p| !want.contains(p)).collect();
        let added: Vec<&String> = want.iter().filter(|p| !have.contains(p)).collect();
        if !dropped.is_empty() {
            why.push(format!(
                "drop its port{} {}",
                if dropped.len() > 1 { "s" } else { "" },
                dropped
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !added.is_empty() {
            why.push(format!(
                "add the port{} {}",
                if added.len() > 1 { "s" } else { "" },
                added
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    why
}

/// The bridge carrying the node's management address: the one whose address is
/// `node.address`, else (no address declared) the one holding the default gateway.
fn management_bridge<'a>(spec: &labwright_spec::Spec, net: &'a ObservedNetwork) -> Option<&'a str> {
    let by_addr = spec.node.address.and_then(|a| {
        let ip = a.0.addr().to_string();
        net.bridges
            .iter()
            .find(|(_, b)| b.cidr.as_deref().is_some_and(|c| ip_of(c) == ip))
            .map(|(n, _)| n.as_str())
    });
    by_addr.or_else(|| {
        net.bridges
            .iter()
            .find(|(_, b)| b.gateway.is_some())
            .map(|(n, _)| n.as_str())
    })
}

const MGMT_WAY_OUT: &str = "labwright does not change the management bridge in this version: keep the spec as the node is (Node → System → Network shows it), or make the change from the console with a revert armed (docs/decisions.md, \"Bridges\")";

pub(crate) fn plan(cx: &PlanCx<'_>, out: &mut PlanOut) {
    let Some(net) = &cx.observed.network else {
        return;
    };
    let spec = cx.spec;
    let mgmt = management_bridge(spec, net);
    let mgmt_ip = spec.node.address.map(|a| a.0.addr().to_string());
    let mut create = Vec::new();
    let mut update = Vec::new();
    let mut changes = Vec::new();
    let mut elements = Vec::new();
    let mut phase = 0u8;
    for (name, b) in &spec.networks.bridges {
        if b.phase > spec.phase {
            continue;
        }
        let path = labwright_spec::YamlPath::root()
            .key("networks")
            .key("bridges")
            .key(name.clone())
            .to_string();
        let hold = |out: &mut PlanOut, reason: String, unblock: &str| {
            let mut h = Held::new(format!("bridge `{name}`"), reason, unblock);
            h.elements.push(path.clone());
            out.held.push(h);
        };
        let want = BridgeDef::declared(name, b);
        match net.bridges.get(name) {
            None => {
                if let (Some(a), Some(ip)) = (b.address, &mgmt_ip)
                    && a.0.addr().to_string() == *ip
                {
                    hold(
                        out,
                        format!(
                            "critical, refused: creating `{name}` with {} would move the node's management address off {} and cut management access",
                            a.0,
                            mgmt.unwrap_or("its bridge")
                        ),
                        MGMT_WAY_OUT,
                    );
                    continue;
                }
                if !b.ports.is_empty() || b.address.is_some() || b.gateway.is_some() {
                    hold(
                        out,
                        format!(
                            "the node has no bridge `{name}`, and labwright creates only internal bridges (no ports, no address) in this version: one with ports or a host address changes how the node itself is reached"
                        ),
                        "create it by hand (Node → System → Network → Create → Linux Bridge) and plan again, or declare it without ports and address",
                    );
                    continue;
                }
                changes.push(Change::added(name.clone(), want.describe()));
                create.push(want);
            }
            Some(o) => {
                let hard = hard_diffs(b, o);
                let comment_differs =
                    b.comment.is_some() && norm_comment(b.comment.as_deref()) != o.comment;
                if Some(name.as_str()) == mgmt {
                    if !hard.is_empty() {
                        hold(
                            out,
                            format!(
                                "critical, refused: `{name}` carries the node's management address{}; the spec would {} — a reload could cut management access",
                                o.cidr
                                    .as_deref()
                                    .map(|c| format!(" ({c})"))
                                    .unwrap_or_default(),
                                hard.join(", ")
                            ),
                            MGMT_WAY_OUT,
                        );
                        continue;
                    }
                    if comment_differs {
                        out.notes.push(format!(
                            "bridge `{name}` carries management: its comment differs (node: {}, spec: {}); labwright does not reload the management bridge for a comment — edit it by hand if it matters",
                            o.comment.as_deref().unwrap_or("none"),
                            b.comment.as_deref().unwrap_or("none")
                        ));
                    }
                    out.own(&path);
                    continue;
                }
                if !hard.is_empty() {
                    hold(
                        out,
                        format!(
                            "bridge `{name}` differs: the spec would {}; labwright changes only the comment of an existing bridge in this version",
                            hard.join(", ")
                        ),
                        "make the change by hand (Node → System → Network) and plan again, or declare the bridge as it is",
                    );
                    continue;
                }
                if !comment_differs && o.active {
                    out.own(&path);
                    continue;
                }
                if comment_differs {
                    changes.push(Change {
                        field: format!("{name}.comment"),
                        before: o.comment.clone(),
                        after: b.comment.clone(),
                        effect: Effect::Hotplug,
                    });
                }
                if !o.active {
                    changes.push(Change {
                        field: format!("{name}.active"),
                        before: Some("down".into()),
                        after: Some("up".into()),
                        effect: Effect::Hotplug,
                    });
                }
                update.push(BridgeUpdate {
                    before: BridgeDef::observed(name, o),
                    want,
                });
            }
        }
        elements.push(path);
        phase = phase.max(b.phase.0);
    }
    if create.is_empty() && update.is_empty() {
        return;
    }
    let names: Vec<String> = create
        .iter()
        .map(|d| d.name.clone())
        .chain(update.iter().map(|u| u.want.name.clone()))
        .collect();
    let hold_all = |out: &mut PlanOut, reason: &dyn Fn(&str) -> String, unblock: &str| {
        for (n, path) in names.iter().zip(&elements) {
            let mut h = Held::new(format!("bridge `{n}`"), reason(n), unblock);
            h.elements.push(path.clone());
            out.held.push(h);
        }
    };
    let mut discard_staged = false;
    if let Some(diff) = &net.pending
        && staged_only_for(diff, &names)
    {
        // What an interrupted apply of this wave left staged (its stanzas, or its
        // revert of them): discarded and staged again from the live definitions.
        out.notes.push(format!(
            "the node has staged network changes that touch only {} (an interrupted apply): the bridge wave discards them and stages again",
            names.join(", ")
        ));
        discard_staged = true;
    } else if let Some(diff) = &net.pending {
        let lines = diff
            .lines()
            .filter(|l| l.starts_with(['+', '-']) && !l.starts_with("+++") && !l.starts_with("---"))
            .count();
        hold_all(
            out,
            &|n| {
                format!(
                    "`{n}` needs a network reload, but the node has staged network changes nobody applied ({lines} changed lines in /etc/network/interfaces.new): a reload would apply them too"
                )
            },
            "review them under Node → System → Network, then Apply Configuration or Revert, and plan again",
        );
        return;
    }
    if !spec.safety_guards.allow_host_network_changes {
        let created: Vec<&str> = create.iter().map(|d| d.name.as_str()).collect();
        hold_all(
            out,
            &|n| {
                if created.contains(&n) {
                    format!(
                        "the node has no bridge `{n}`; creating it reloads the node's network (high risk), and `safetyGuards.allowHostNetworkChanges` is false"
                    )
                } else {
                    format!(
                        "bridge `{n}` needs a network reload (high risk), and `safetyGuards.allowHostNetworkChanges` is false"
                    )
                }
            },
            "set `safetyGuards.allowHostNetworkChanges: true` and apply with `--allow-risk high` (labwright stages every bridge, reloads once, probes over a fresh connection and reverts on failure); or create the bridge by hand (Node → System → Network → Create → Linux Bridge, no ports, no address) and plan again",
        );
        return;
    }
    let op = BridgeOp {
        node: spec.node_name().to_string(),
        create,
        update,
        discard_staged,
    };
    let mut a = Action::new(
        wave_id(),
        ActionKind::NetworkBridges,
        format!("node/{} network", spec.node_name()),
        crate::op::Op::Bridge(op),
    );
    a.risk = Risk::High;
    a.phase = phase;
    a.changes = changes;
    a.elements = elements;
    a.reason = format!(
        "bridges {} are declared and not as declared on the node: staged together, one network reload (`ifreload -a`), then a probe over a fresh connection",
        names.join(", ")
    );
    a.expected_downtime =
        "none expected: new internal bridges and comments; the reload leaves existing links up"
            .into();
    a.rollback_hint = format!(
        "automatic: a failed reload or probe discards the staged changes or restores the previous definitions and reloads; later, by hand: remove {} under Node → System → Network (no guest may use them) and Apply Configuration",
        names.join(", ")
    );
    out.actions.push(a);
}

/// Does the spec declare, at its phase, a bridge besides the management one (the
/// only kind the wave makes)?
pub fn has_internal_bridges(spec: &labwright_spec::Spec) -> bool {
    spec.networks
        .bridges
        .values()
        .any(|b| b.phase <= spec.phase && b.address.is_none() && b.ports.is_empty())
}

/// Stops a dead-man timer an interrupted wave left armed (best effort: it is only
/// there after a kill between a reload and its probe).
pub async fn confirm_leftover_deadman(h: &dyn labwright_host::HostExec) {
    match h.run(&deadman::is_active()).await {
        Ok(o) if o.ok() && o.stdout.trim() == "active" => match h.run(&deadman::disarm()).await {
            Ok(o) if o.ok() => tracing::warn!(
                "stopped the network dead-man an interrupted apply left armed; the node answers over fresh connections, so its network stays as it is"
            ),
            Ok(o) => tracing::warn!(
                "could not stop a leftover network dead-man: {}",
                o.stderr.trim()
            ),
            Err(e) => tracing::warn!("could not stop a leftover network dead-man: {e}"),
        },
        _ => {}
    }
}

/// Does the staged diff (`changes` of `GET …/network`, a unified diff of
/// `interfaces` → `interfaces.new`) change only the stanzas of `names`? Each changed
/// line is attributed to the `auto`/`iface` stanza it sits in; a line whose stanza the
/// diff does not show (context cut short), or a `source` line, is not ours. Blank
/// lines are nobody's.
pub(crate) fn staged_only_for(diff: &str, names: &[String]) -> bool {
    let mut current: Option<Vec<String>> = None;
    let mut changed = false;
    for line in diff.lines() {
        if line.starts_with("---") || line.starts_with("+++") {
            continue;
        }
        if line.starts_with("@@") {
            current = None;
            continue;
        }
        let (mark, text) = match line.char_indices().nth(1) {
            Some((i, _)) => (&line[..i], &line[i..]),
            None => (line, ""),
        };
        let t = text.trim();
        let mut words = t.split_whitespace();
        match words.next() {
            Some("auto" | "allow-hotplug") => current = Some(words.map(str::to_string).collect()),
            Some("iface") => current = words.next().map(|w| vec![w.to_string()]),
            Some(w) if !text.starts_with([' ', '\t']) && !w.starts_with('#') => {
                // `source …` and other top-level lines belong to no bridge.
                current = Some(vec![w.to_string()]);
            }
            _ => {}
        }
        if mark == "+" || mark == "-" {
            if t.is_empty() {
                continue;
            }
            changed = true;
            match &current {
                Some(c) if !c.is_empty() && c.iter().all(|n| names.contains(n)) => {}
                _ => return false,
            }
        }
    }
    changed
}

/// Every declared active bridge exists, is up, and has the declared ports and comment.
/// The management bridge's comment is not checked: labwright leaves it alone.
pub(crate) fn validate(
    spec: &labwright_spec::Spec,
    net: &ObservedNetwork,
) -> Vec<crate::validate::Check> {
    let mgmt = management_bridge(spec, net);
    spec.networks
        .bridges
        .iter()
        .filter(|(_, b)| b.phase <= spec.phase)
        .map(|(name, b)| {
            let Some(o) = net.bridges.get(name) else {
                return crate::validate::check(
                    format!("bridge {name} exists"),
                    false,
                    "not on the node (see the plan: held or not yet applied)",
                );
            };
            let mut bad = Vec::new();
            if !o.active {
                bad.push("configured but not up".to_string());
            }
            if sorted(&o.ports) != sorted(&b.ports) {
                bad.push(format!(
                    "ports [{}], declared [{}]",
                    o.ports.join(" "),
                    b.ports.join(" ")
                ));
            }
            if Some(name.as_str()) != mgmt
                && b.comment.is_some()
                && norm_comment(b.comment.as_deref()) != o.comment
            {
                bad.push(format!(
                    "comment {:?}, declared {:?}",
                    o.comment.as_deref().unwrap_or(""),
                    b.comment.as_deref().unwrap_or("")
                ));
            }
            crate::validate::check(
                format!("bridge {name} exists"),
                bad.is_empty(),
                if bad.is_empty() {
                    format!("up, ports [{}]", o.ports.join(" "))
                } else {
                    bad.join("; ")
                },
            )
        })
        .collect()
}
