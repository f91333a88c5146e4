//! The graph in Graphviz's DOT language, for people who lay it out with their own
//! tools (`dot -Tpng`): the same boxes, columns (`rank=same`) and lines as the SVG.

use std::fmt::Write as _;

use super::layout::box_lines;
use super::{EdgeKind, Graph, NodeKind, State};

/// A DOT string literal.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn fill(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Tailnet => "#f3e8fd",
        NodeKind::Management => "#e8eefc",
        NodeKind::Host => "#e4e7eb",
        NodeKind::Bridge => "#e3f2fd",
        NodeKind::Router => "#fff3e0",
        NodeKind::Vm => "#ffffff",
        NodeKind::Pool | NodeKind::Dataset | NodeKind::Storage => "#f5efe6",
    }
}

fn edge_color(k: EdgeKind) -> &'static str {
    match k {
        EdgeKind::Uplink => "#607d8b",
        EdgeKind::Nic | EdgeKind::Reattach => "#1565c0",
        EdgeKind::Route => "#7b1fa2",
        EdgeKind::Flow => "#2e7d32",
        EdgeKind::Storage => "#8d6e63",
    }
}

fn state_attrs(st: State) -> &'static str {
    match st {
        State::Later => ", style=\"dashed\", fontcolor=\"#7b8794\", color=\"#9aa5b1\"",
        State::Missing => ", style=\"dashed\", color=\"#c62828\", penwidth=2",
        State::Undeclared => ", color=\"#d97706\", penwidth=2",
        State::Differs => ", color=\"#c62828\", penwidth=2",
        State::Declared | State::Seen => "",
    }
}

pub fn render(g: &Graph) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph {} {{", q(&format!("labwright {}", g.lab)));
    let _ = writeln!(
        s,
        "  graph [rankdir=LR, label={}, labelloc=t, fontname=\"sans-serif\", nodesep=0.3, ranksep=1.2];",
        q(&g.title())
    );
    s.push_str(
        "  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\", fontsize=11];\n",
    );
    s.push_str("  edge [fontname=\"sans-serif\", fontsize=10];\n");
    for n in &g.nodes {
        let (head, detail) = box_lines(n);
        let mut label = head;
        for d in detail {
            label.push('\n');
            label.push_str(&d);
        }
        let style = if n.state == State::Later {
            ", style=\"rounded,filled,dashed\""
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  {} [label={}, fillcolor={}{}{}];",
            q(&n.id),
            q(&label),
            q(fill(n.kind)),
            style,
            if n.state == State::Later {
                ", fontcolor=\"#7b8794\""
            } else {
                match n.state {
                    State::Missing => ", color=\"#c62828\", penwidth=2",
                    State::Undeclared => ", color=\"#d97706\", penwidth=2",
                    State::Differs => ", color=\"#c62828\", penwidth=2",
                    _ => "",
                }
            }
        );
    }
    // One rank per column, as in the SVG.
    for lane in 0..5 {
        let ids: Vec<String> = g
            .nodes
            .iter()
            .filter(|n| n.kind.lane() == lane)
            .map(|n| q(&n.id))
            .collect();
        if !ids.is_empty() {
            let _ = writeln!(s, "  {{ rank=same; {}; }}", ids.join("; "));
        }
    }
    for e in g.drawn_edges() {
        let mut attrs = format!("color={}", q(edge_color(e.kind)));
        if !e.label.is_empty() {
            let _ = write!(attrs, ", label={}", q(&e.label));
        }
        if e.kind.dashed() && e.state != State::Later {
            attrs.push_str(", style=\"dashed\"");
        }
        if e.kind != EdgeKind::Flow {
            attrs.push_str(", arrowhead=none");
        }
        attrs.push_str(state_attrs(e.state));
        let _ = writeln!(s, "  {} -> {} [{attrs}];", q(&e.from), q(&e.to));
    }
    s.push_str("}\n");
    s
}
