//! The graph as a Mermaid `flowchart LR`, to paste into a README or a pull request
//! (GitHub and GitLab render it). Ids are made safe for Mermaid; labels are quoted
//! with Mermaid's entity codes for the characters its syntax uses.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::layout::box_lines;
use super::{EdgeKind, Graph, NodeKind, State};

/// A label inside `"…"`: quotes and the characters Mermaid reads as markup become
/// entity codes (`#quot;`), so no spec value can break the chart.
fn label(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '|' => out.push_str("#124;"),
            '`' => out.push_str("#96;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn shape(k: NodeKind, text: &str) -> String {
    match k {
        NodeKind::Tailnet | NodeKind::Management => format!("([\"{text}\"])"),
        NodeKind::Router => format!("{{{{\"{text}\"}}}}"),
        NodeKind::Pool | NodeKind::Dataset | NodeKind::Storage => format!("[(\"{text}\")]"),
        NodeKind::Bridge => format!("[/\"{text}\"/]"),
        NodeKind::Host | NodeKind::Vm => format!("[\"{text}\"]"),
    }
}

pub fn render(g: &Graph) -> String {
    // Mermaid ids: n0, n1, … in node order (spec names may hold any character).
    let ids: BTreeMap<&str, String> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), format!("n{i}")))
        .collect();
    let mut s = String::from("flowchart LR\n");
    let _ = writeln!(s, "  %% {}", label(&g.title()));
    for n in &g.nodes {
        let (head, detail) = box_lines(n);
        let mut text = format!("<b>{}</b>", label(&head));
        for d in detail {
            text.push_str("<br/>");
            text.push_str(&label(&d));
        }
        let _ = writeln!(s, "  {}{}", ids[n.id.as_str()], shape(n.kind, &text));
    }
    let mut links = Vec::new();
    for e in g.drawn_edges() {
        let (a, b) = (&ids[e.from.as_str()], &ids[e.to.as_str()]);
        let arrow = match (e.kind, e.kind.dashed() || e.state == State::Later) {
            (EdgeKind::Flow, false) => "==>",
            (EdgeKind::Flow, true) => "-.->",
            (_, true) => "-.-",
            (_, false) => "---",
        };
        if e.label.is_empty() {
            let _ = writeln!(s, "  {a} {arrow} {b}");
        } else {
            let _ = writeln!(
                s,
                "  {a} {arrow}|\"{}{}\"| {b}",
                label(&e.label),
                label(e.state.suffix())
            );
        }
        links.push(e);
    }
    s.push_str("  classDef later stroke-dasharray:5 4,opacity:0.6\n");
    s.push_str("  classDef missing stroke:#c62828,stroke-width:2px,stroke-dasharray:6 3\n");
    s.push_str("  classDef undeclared stroke:#d97706,stroke-width:2px\n");
    s.push_str("  classDef differs stroke:#c62828,stroke-width:2px\n");
    for st in [
        State::Later,
        State::Missing,
        State::Undeclared,
        State::Differs,
    ] {
        let members: Vec<&str> = g
            .nodes
            .iter()
            .filter(|n| n.state == st)
            .map(|n| ids[n.id.as_str()].as_str())
            .collect();
        if !members.is_empty() {
            let _ = writeln!(s, "  class {} {}", members.join(","), st.name());
        }
    }
    // Line colours by kind (Mermaid numbers links in order of appearance).
    for (i, e) in links.iter().enumerate() {
        let c = match e.kind {
            EdgeKind::Uplink => "#607d8b",
            EdgeKind::Nic | EdgeKind::Reattach => "#1565c0",
            EdgeKind::Route => "#7b1fa2",
            EdgeKind::Flow => "#2e7d32",
            EdgeKind::Storage => "#8d6e63",
        };
        let _ = writeln!(s, "  linkStyle {i} stroke:{c}");
    }
    s
}
