//! The graph as SVG: boxes in columns ([`super::layout`]), curved lines between
//! them with their labels, a tooltip (`<title>`) on every box and line, and a legend.
//! System fonts only; nothing is loaded from anywhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::layout::{Curve, LINE, Layout, MARGIN, PAD, box_lines, layout};
use super::{Graph, xml_escape as esc};

/// A standalone SVG file (with the XML namespace).
pub fn render(g: &Graph) -> String {
    render_with(g, true)
}

/// The CSS of the picture; classes are prefixed so the report's own styles never
/// collide with them.
const STYLE: &str = "
.lw-t{font:600 15px system-ui,-apple-system,'Segoe UI',sans-serif;fill:#1f2933}
.lw-c{font:600 11px system-ui,sans-serif;fill:#7b8794;letter-spacing:.06em;text-transform:uppercase}
.lw-n rect{stroke:#52606d;stroke-width:1.2;fill:#fff}
.lw-n .lw-h{font:600 13px system-ui,sans-serif;fill:#1f2933}
.lw-n .lw-d{font:12px system-ui,sans-serif;fill:#3e4c59}
.lw-k-tailnet rect{fill:#f3e8fd}.lw-k-management rect{fill:#e8eefc}
.lw-k-host rect{fill:#e4e7eb;stroke-width:1.8}.lw-k-bridge rect{fill:#e3f2fd}
.lw-k-router rect{fill:#fff3e0}.lw-k-pool rect,.lw-k-dataset rect,.lw-k-storage rect{fill:#f5efe6}
.lw-s-later{opacity:.55}.lw-s-later rect{stroke-dasharray:5 4}
.lw-s-missing rect{stroke:#c62828;stroke-width:2;stroke-dasharray:6 3}
.lw-s-undeclared rect{stroke:#d97706;stroke-width:2}
.lw-s-differs rect{stroke:#c62828;stroke-width:2}
.lw-e path{fill:none;stroke-width:1.6}
.lw-e text{font:11px system-ui,sans-serif}
.lw-e .lw-bg{fill:#fff;opacity:.85;stroke:none}
.lw-e-uplink path{stroke:#607d8b}.lw-e-uplink text{fill:#455a64}
.lw-e-nic path{stroke:#1565c0}.lw-e-nic text{fill:#0d47a1}
.lw-e-reattach path{stroke:#1565c0;stroke-dasharray:6 4}.lw-e-reattach text{fill:#0d47a1;font-style:italic}
.lw-e-route path{stroke:#7b1fa2}.lw-e-route text{fill:#6a1b9a}
.lw-e-flow path{stroke:#2e7d32;marker-end:url(#lw-arrow)}.lw-e-flow text{fill:#1b5e20}
.lw-e-storage path{stroke:#8d6e63}.lw-e-storage text{fill:#5d4037}
.lw-es-later{opacity:.5}.lw-es-later path{stroke-dasharray:3 4}
.lw-es-missing path,.lw-es-differs path{stroke:#c62828;stroke-width:2}
.lw-es-undeclared path{stroke:#d97706}
.lw-l text{font:11px system-ui,sans-serif;fill:#3e4c59}
";

const COLUMN_NAMES: [&str; 5] = [
    "outside",
    "node",
    "bridges · pools",
    "guests · datasets",
    "storage",
];

/// Which side of a box a line leaves or enters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Left,
    Right,
}

pub fn render_with(g: &Graph, standalone: bool) -> String {
    let top = 64.0;
    let lay = layout(g, top);
    let index: BTreeMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let edges: Vec<(usize, usize, &super::Edge)> = g
        .drawn_edges()
        .filter_map(|e| Some((*index.get(e.from.as_str())?, *index.get(e.to.as_str())?, e)))
        .collect();

    // Ports: the lines on one side of a box are spread along it, in the order of
    // the heights of their other ends, so they do not cross at the box.
    // (height of the other end, line, this box is the line's start) per box side.
    type Ends = Vec<(f64, usize, bool)>;
    let mut sides: BTreeMap<(usize, Side), Ends> = BTreeMap::new();
    for (k, &(a, b, _)) in edges.iter().enumerate() {
        let (sa, sb) = sides_of(&lay, a, b);
        sides
            .entry((a, sa))
            .or_default()
            .push((lay.boxes[b].cy(), k, true));
        sides
            .entry((b, sb))
            .or_default()
            .push((lay.boxes[a].cy(), k, false));
    }
    let mut ports: BTreeMap<(usize, bool), (f64, f64)> = BTreeMap::new();
    for ((i, side), mut list) in sides {
        list.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let b = &lay.boxes[i];
        let n = list.len() as f64;
        let x = if side == Side::Right { b.x + b.w } else { b.x };
        for (j, (_, k, is_from)) in list.into_iter().enumerate() {
            let y = b.y + 6.0 + (b.h - 12.0) * (j as f64 + 1.0) / (n + 1.0);
            ports.insert((k, is_from), (x, y));
        }
    }

    let (w, h) = (
        lay.width.max(480.0),
        lay.height + 40.0 + 15.0 * g.notes.len() as f64,
    );
    let mut s = String::new();
    if standalone {
        s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    }
    let _ = writeln!(
        s,
        "<svg{} class=\"lw-graph\" viewBox=\"0 0 {w:.0} {h:.0}\" width=\"{w:.0}\" height=\"{h:.0}\" role=\"img\" aria-labelledby=\"lw-graph-title\">",
        if standalone {
            " xmlns=\"http://www.w3.org/2000/svg\""
        } else {
            ""
        }
    );
    let title = g.title();
    let _ = writeln!(
        s,
        "<title id=\"lw-graph-title\">{}</title>\n<style>{STYLE}</style>",
        esc(&title)
    );
    s.push_str("<defs><marker id=\"lw-arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#2e7d32\"/></marker></defs>\n");
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{w:.0}\" height=\"{h:.0}\" fill=\"#fbfcfd\"/>"
    );
    let _ = writeln!(
        s,
        "<text class=\"lw-t\" x=\"{MARGIN}\" y=\"26\">{}</text>",
        esc(&title)
    );
    for (x, _, lane) in &lay.columns {
        let _ = writeln!(
            s,
            "<text class=\"lw-c\" x=\"{x:.1}\" y=\"52\">{}</text>",
            COLUMN_NAMES.get(*lane).copied().unwrap_or_default()
        );
    }

    s.push_str("<g class=\"lw-edges\">\n");
    for (k, &(a, b, e)) in edges.iter().enumerate() {
        let (sa, sb) = sides_of(&lay, a, b);
        let (Some(&p), Some(&q)) = (ports.get(&(k, true)), ports.get(&(k, false))) else {
            continue;
        };
        let curve = Curve::between(p, q, sa == Side::Right, sb == Side::Left);
        let _ = write!(
            s,
            "<g class=\"lw-e lw-e-{} lw-es-{}\"><title>{}</title><path d=\"{}\"/>",
            e.kind.name(),
            e.state.name(),
            esc(&format!(
                "{} → {}: {}{}",
                g.nodes[a].label,
                g.nodes[b].label,
                if e.label.is_empty() {
                    e.kind.name()
                } else {
                    &e.label
                },
                e.state.suffix()
            )),
            curve.path()
        );
        if !e.label.is_empty() {
            // Right next to the box the line reaches, where the lines arrive apart
            // (boxes are tall enough for that); cut short, the tooltip has it whole.
            let mut text = format!("{}{}", e.label, e.state.suffix());
            if text.chars().count() > 40 {
                text = text.chars().take(39).collect::<String>() + "…";
            }
            let tw = text.chars().count() as f64 * 6.1 + 6.0;
            let lx = if sb == Side::Left {
                q.0 - tw / 2.0 - 6.0
            } else {
                q.0 + tw / 2.0 + 6.0
            };
            let (_, ly) = if (q.0 - p.0).abs() < 1.0 {
                curve.at(0.5)
            } else {
                curve.at_x(lx)
            };
            let _ = write!(
                s,
                "<rect class=\"lw-bg\" x=\"{:.1}\" y=\"{:.1}\" width=\"{tw:.1}\" height=\"13\" rx=\"3\"/><text x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                lx - tw / 2.0,
                ly - 10.0,
                ly + 0.5,
                esc(&text)
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</g>\n<g class=\"lw-nodes\">\n");
    for (i, n) in g.nodes.iter().enumerate() {
        let b = &lay.boxes[i];
        let (head, detail) = box_lines(n);
        let mut tip = format!("{}{}", n.label, n.state.suffix());
        for d in &n.detail {
            tip.push('\n');
            tip.push_str(d);
        }
        let _ = write!(
            s,
            "<g class=\"lw-n lw-k-{} lw-s-{}\" id=\"lw-{}\"><title>{}</title><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"{}\"/>",
            n.kind.name(),
            n.state.name(),
            esc(&n
                .id
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")),
            esc(&tip),
            b.x,
            b.y,
            b.w,
            b.h,
            if n.kind == super::NodeKind::Bridge {
                3
            } else {
                7
            }
        );
        let _ = write!(
            s,
            "<text class=\"lw-h\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            b.x + PAD,
            b.y + PAD + 12.0,
            esc(&head)
        );
        for (j, d) in detail.iter().enumerate() {
            let _ = write!(
                s,
                "<text class=\"lw-d\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                b.x + PAD,
                b.y + PAD + 12.0 + 2.0 + LINE * (j as f64 + 1.0),
                esc(d)
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</g>\n");
    legend(&mut s, g, lay.height + 8.0);
    s.push_str("</svg>\n");
    s
}

fn sides_of(lay: &Layout, a: usize, b: usize) -> (Side, Side) {
    let (la, lb) = (lay.boxes[a].lane, lay.boxes[b].lane);
    match la.cmp(&lb) {
        std::cmp::Ordering::Less => (Side::Right, Side::Left),
        std::cmp::Ordering::Greater => (Side::Left, Side::Right),
        std::cmp::Ordering::Equal => (Side::Right, Side::Right),
    }
}

fn legend(s: &mut String, g: &Graph, y: f64) {
    let mut items: Vec<(&str, &str)> = vec![
        ("lw-e-nic", "NIC on a bridge"),
        ("lw-e-reattach", "NIC moved in a later phase"),
        ("lw-e-route", "Tailscale subnet route"),
        ("lw-e-flow", "allowed flow"),
        ("lw-e-storage", "storage"),
    ];
    if g.source == "live" {
        items.push(("lw-e-nic lw-es-missing", "missing / differs"));
        items.push(("lw-e-nic lw-es-undeclared", "not declared"));
    } else {
        items.push(("lw-e-nic lw-es-later", "later phase"));
    }
    let _ = write!(s, "<g class=\"lw-l\">");
    let mut x = MARGIN;
    for (class, text) in items {
        let _ = write!(
            s,
            "<g class=\"lw-e {class}\"><path d=\"M{x:.1},{:.1} h26\"/></g><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            y + 12.0,
            x + 32.0,
            y + 16.0,
            esc(text)
        );
        x += 32.0 + text.chars().count() as f64 * 6.1 + 22.0;
    }
    for (k, note) in g.notes.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"{MARGIN}\" y=\"{:.1}\">{}</text>",
            y + 36.0 + 15.0 * k as f64,
            esc(note)
        );
    }
    s.push_str("</g>\n");
}
