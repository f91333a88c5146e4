//! The reachability section: a segment × segment grid (one cell per ordered pair of
//! segments: is anything on the second reachable from the first, as intended and as
//! the firewall model decides), the engine's whole matrix with the deciding rule of
//! every cell, and the router's compiled rules.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use labwright_engine::firewall::matrix::{Cell, Intent, Matrix, Reach};
use labwright_spec::Spec;
use labwright_spec::model::Phase;

use super::{RouterView, esc};

/// The matrix columns (node, guests) that sit on `segment` at the matrix's phase.
fn hosts_on(spec: &Spec, phase: u8, segment: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(seg) = spec.networks.segments.get(segment) else {
        return out;
    };
    let node_here = spec
        .node
        .address
        .is_some_and(|a| seg.cidr.0.contains(&a.0.addr()));
    if node_here {
        out.insert("node".to_string());
    }
    for vm in &spec.vms {
        if vm
            .nics
            .values()
            .any(|n| n.bridge_in(Phase(phase)) == seg.bridge)
        {
            out.insert(vm.name.clone());
        }
    }
    out
}

fn reach_word(r: Reach) -> &'static str {
    match r {
        Reach::Allow => "allow",
        Reach::Deny => "deny",
        Reach::Partial => "partial",
    }
}

fn intent_word(i: Intent) -> &'static str {
    match i {
        Intent::Allow => "allow",
        Intent::Deny => "deny",
        Intent::None => "no intent",
        Intent::Later => "later phase",
    }
}

fn cell_line(c: &Cell) -> String {
    format!(
        "{} → {} {}: {} (intent: {}){} — {}",
        c.from,
        c.to,
        c.ports,
        reach_word(c.reach),
        intent_word(c.intent),
        if c.disagrees { " ✗" } else { "" },
        c.decided_by
    )
}

pub fn section(s: &mut String, spec: &Spec, m: &Matrix, router: &RouterView) {
    let _ = writeln!(
        s,
        "<section id=\"reachability\"><h2>Reachability</h2>\n<p class=\"muted\">Phase {}, the spec's firewall compiled onto a fresh node, evaluated by the PVE firewall model ({} backend). Intent comes from the spec (matrix, allowlists, safety guards); hover a cell for the rule that decided. {}</p>",
        m.phase,
        m.backend,
        if m.disagreements == 0 {
            "No cell disagrees with the intent.".to_string()
        } else {
            format!("{} cell(s) disagree with the intent (✗).", m.disagreements)
        }
    );
    segment_grid(s, spec, m);
    full_matrix(s, m);
    router_rules(s, router);
    s.push_str("</section>\n");
}

/// One cell per ordered segment pair: `open` when a declared port of something on the
/// second segment is reachable from the first, else `closed`; intended and actual.
fn segment_grid(s: &mut String, spec: &Spec, m: &Matrix) {
    let segs: Vec<(&String, &labwright_spec::model::Segment)> =
        spec.networks.segments.iter().collect();
    if segs.is_empty() {
        return;
    }
    s.push_str("<h3>Between segments</h3>\n<div class=\"scroll\"><table class=\"segments\"><thead><tr><th>from \\ to</th>");
    for (name, seg) in &segs {
        let _ = write!(
            s,
            "<th>{}<br><small>{}{}</small></th>",
            esc(name),
            seg.cidr,
            if seg.phase.0 > m.phase {
                format!(" · phase {}", seg.phase.0)
            } else {
                String::new()
            }
        );
    }
    s.push_str("</tr></thead><tbody>\n");
    let hosts: Vec<BTreeSet<String>> = segs
        .iter()
        .map(|(n, _)| hosts_on(spec, m.phase, n))
        .collect();
    for (from, _) in &segs {
        let _ = write!(s, "<tr><th>{}</th>", esc(from));
        for ((to, _), on) in segs.iter().zip(&hosts) {
            let cells: Vec<&Cell> = m
                .cells
                .iter()
                .filter(|c| &c.from == *from && on.contains(&c.to))
                .collect();
            if cells.is_empty() {
                let _ = write!(
                    s,
                    "<td class=\"pair none\" data-from=\"{}\" data-to=\"{}\" data-expected=\"none\" data-actual=\"none\" title=\"nothing on {} has a declared port\">—</td>",
                    esc(from),
                    esc(to),
                    esc(to)
                );
                continue;
            }
            let expected = if cells.iter().any(|c| c.intent == Intent::Allow) {
                "open"
            } else {
                "closed"
            };
            let open: Vec<String> = cells
                .iter()
                .filter(|c| c.reach != Reach::Deny)
                .map(|c| format!("{} {}", c.to, c.ports))
                .collect();
            let actual = if open.is_empty() { "closed" } else { "open" };
            let bad = cells.iter().any(|c| c.disagrees);
            let tip: Vec<String> = cells.iter().map(|c| cell_line(c)).collect();
            let _ = write!(
                s,
                "<td class=\"pair {actual}{}\" data-from=\"{}\" data-to=\"{}\" data-expected=\"{expected}\" data-actual=\"{actual}\" title=\"{}\">{}{actual}{}<small>{}</small></td>",
                if bad { " disagrees" } else { "" },
                esc(from),
                esc(to),
                esc(&tip.join("\n")),
                if bad { "✗ " } else { "" },
                if expected == actual {
                    String::new()
                } else {
                    format!(" (want {expected})")
                },
                esc(&if open.is_empty() {
                    "nothing open".to_string()
                } else {
                    open.join(", ")
                })
            );
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table></div>\n");
}

fn full_matrix(s: &mut String, m: &Matrix) {
    s.push_str("<h3>Sources × destinations</h3>\n<div class=\"scroll\"><table class=\"matrix\"><thead><tr><th>from \\ to</th>");
    for (to, ports) in &m.columns {
        let _ = write!(s, "<th>{}<br><small>{}</small></th>", esc(to), esc(ports));
    }
    s.push_str("</tr></thead><tbody>\n");
    // Cells come row by row in column order; walk them once.
    let mut it = m.cells.iter().peekable();
    for src in &m.sources {
        let _ = write!(s, "<tr><th>{}</th>", esc(src));
        while let Some(c) = it.next_if(|c| &c.from == src) {
            let mark = match c.intent {
                Intent::None => " ?",
                Intent::Later => " (later)",
                _ => "",
            };
            let _ = write!(
                s,
                "<td class=\"{}{}\" title=\"{}\">{}{}{}</td>",
                reach_word(c.reach),
                if c.disagrees { " disagrees" } else { "" },
                esc(&cell_line(c)),
                if c.disagrees { "✗ " } else { "" },
                reach_word(c.reach),
                mark
            );
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table></div>\n<p class=\"muted\">? = the spec states no intent for this cell · ✗ = disagrees with the intent</p>\n");
    let _ = write!(
        s,
        "<details><summary>The deciding rule of every cell ({})</summary><div class=\"scroll\"><table class=\"decided\"><thead><tr><th>from</th><th>to</th><th>ports</th><th>actual</th><th>intent</th><th>decided by</th></tr></thead><tbody>",
        m.cells.len()
    );
    for c in &m.cells {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}{}\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.from),
            esc(&c.to),
            esc(&c.ports),
            reach_word(c.reach),
            if c.disagrees { " disagrees" } else { "" },
            reach_word(c.reach),
            intent_word(c.intent),
            esc(&c.decided_by)
        );
    }
    s.push_str("</tbody></table></div></details>\n");
}

fn router_rules(s: &mut String, router: &RouterView) {
    s.push_str("<h3>Router</h3>\n");
    let (rs, cells) = match router {
        Ok(v) => v,
        Err(why) => {
            let _ = writeln!(
                s,
                "<p class=\"muted\">No router rules at this phase: {}</p>",
                esc(why)
            );
            return;
        }
    };
    let _ = writeln!(
        s,
        "<p class=\"muted\">VM <code>{}</code> forwards between its links by these rules, in order; anything else: <b>{:?}</b> ({}).</p>",
        esc(&rs.router_vm),
        rs.forward.policy,
        esc(&rs.forward.policy_origin.to_string())
    );
    s.push_str("<div class=\"scroll\"><table class=\"router\"><thead><tr><th>#</th><th>from → to</th><th>ports</th><th>action</th><th>comment</th><th>from the spec</th></tr></thead><tbody>");
    for (i, r) in rs.forward.rules.iter().enumerate() {
        let ports: Vec<String> = r
            .dports
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{} → {}</td><td>{}{}</td><td class=\"{}\">{:?}</td><td>{}</td><td><code>{}</code></td></tr>",
            i + 1,
            esc(&r.from),
            esc(&r.to),
            r.proto
                .map(|p| format!("{p:?} ").to_lowercase())
                .unwrap_or_default(),
            esc(&if ports.is_empty() {
                "any".to_string()
            } else {
                ports.join(", ")
            }),
            if r.action == labwright_router::Action::Accept {
                "allow"
            } else {
                "deny"
            },
            r.action,
            esc(&r.comment),
            esc(&r.origin.to_string())
        );
    }
    s.push_str("</tbody></table></div>\n");
    let _ = write!(
        s,
        "<details><summary>Cells as the router sees them ({}): path and intent</summary><div class=\"scroll\"><table class=\"router-cells\"><thead><tr><th>from</th><th>to</th><th>ports</th><th>path</th><th>intent</th><th>decided by</th></tr></thead><tbody>",
        cells.len()
    );
    for c in cells {
        let intent = match c.intent {
            labwright_router::Intent::Allow => "allow",
            labwright_router::Intent::Deny => "deny",
            labwright_router::Intent::None => "none",
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{intent}\">{intent}</td><td>{}{}</td></tr>",
            esc(&c.from),
            esc(&c.to),
            esc(&c.ports_text()),
            esc(&c.path.to_string()),
            esc(&c.decided_by),
            c.note
                .as_ref()
                .map(|n| format!(" — {}", esc(n)))
                .unwrap_or_default()
        );
    }
    s.push_str("</tbody></table></div></details>\n");
}
