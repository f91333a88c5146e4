//! The topology picture: one [`Graph`] value built from the spec (or from a scan,
//! `--live`), rendered as SVG (laid out here, no Graphviz), DOT, Mermaid or JSON.
//! The graph only re-arranges values that exist already: the spec model, the router's
//! links, the reachability matrix the engine evaluates, the scan.

mod dot;
mod layout;
pub mod live;
mod mermaid;
mod spec;
mod svg;

use serde::Serialize;

pub use spec::from_spec;

/// The picture of one lab at one phase.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Graph {
    pub lab: String,
    pub phase: u8,
    /// `spec` or `live`.
    pub source: &'static str,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// What the picture leaves out, said once under it.
    pub notes: Vec<String>,
}

/// A box of the picture.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// Unique, stable: `vm-100`, `bridge-vmbr1`.
    pub id: String,
    pub kind: NodeKind,
    pub label: String,
    pub detail: Vec<String>,
    pub state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    Tailnet,
    Management,
    Host,
    Bridge,
    Vm,
    Router,
    Pool,
    Dataset,
    Storage,
}

impl NodeKind {
    /// The column of the picture, left to right: who comes in, the node, what the
    /// node provides (bridges, pools), the guests and datasets, the storage entries.
    pub fn lane(self) -> usize {
        match self {
            NodeKind::Tailnet | NodeKind::Management => 0,
            NodeKind::Host => 1,
            NodeKind::Bridge | NodeKind::Pool => 2,
            NodeKind::Vm | NodeKind::Router | NodeKind::Dataset => 3,
            NodeKind::Storage => 4,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Tailnet => "tailnet",
            NodeKind::Management => "management",
            NodeKind::Host => "host",
            NodeKind::Bridge => "bridge",
            NodeKind::Vm => "vm",
            NodeKind::Router => "router",
            NodeKind::Pool => "pool",
            NodeKind::Dataset => "dataset",
            NodeKind::Storage => "storage",
        }
    }
}

/// How an element stands against the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Declared and part of the phase drawn.
    Declared,
    /// Declared for a later phase (drawn faded).
    Later,
    /// Live: on the node as the spec declares it.
    Seen,
    /// Live: declared for this phase, not on the node.
    Missing,
    /// Live: on the node, not declared by the spec.
    Undeclared,
    /// Live: on the node, not as the spec declares it.
    Differs,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Declared => "declared",
            State::Later => "later",
            State::Seen => "seen",
            State::Missing => "missing",
            State::Undeclared => "undeclared",
            State::Differs => "differs",
        }
    }
    /// Said after a label where the state is worth saying.
    pub fn suffix(self) -> &'static str {
        match self {
            State::Missing => " (missing)",
            State::Undeclared => " (not declared)",
            State::Differs => " (differs)",
            _ => "",
        }
    }
}

/// A line of the picture.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub label: String,
    pub state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// The node's link to a bridge (its ports, or internal-only).
    Uplink,
    /// A guest's NIC on a bridge.
    Nic,
    /// A NIC's move to another bridge in a later phase (or where it was before).
    Reattach,
    /// A Tailscale subnet route, from the tailnet to the guest that advertises it.
    Route,
    /// Traffic the reachability matrix lets through.
    Flow,
    /// Pool → dataset → storage entry.
    Storage,
}

impl EdgeKind {
    pub fn name(self) -> &'static str {
        match self {
            EdgeKind::Uplink => "uplink",
            EdgeKind::Nic => "nic",
            EdgeKind::Reattach => "reattach",
            EdgeKind::Route => "route",
            EdgeKind::Flow => "flow",
            EdgeKind::Storage => "storage",
        }
    }
    /// Drawn dashed.
    pub fn dashed(self) -> bool {
        matches!(self, EdgeKind::Reattach)
    }
}

impl Graph {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
    /// Edges whose both ends are drawn (a builder may name an end it did not add).
    pub fn drawn_edges(&self) -> impl Iterator<Item = &Edge> {
        let ids: std::collections::BTreeSet<&str> =
            self.nodes.iter().map(|n| n.id.as_str()).collect();
        self.edges
            .iter()
            .filter(move |e| ids.contains(e.from.as_str()) && ids.contains(e.to.as_str()))
    }
    pub fn svg(&self) -> String {
        svg::render(self)
    }
    /// The SVG for an HTML page (no XML prolog or namespace: HTML supplies them).
    pub fn svg_inline(&self) -> String {
        svg::render_with(self, false)
    }
    pub fn dot(&self) -> String {
        dot::render(self)
    }
    pub fn mermaid(&self) -> String {
        mermaid::render(self)
    }
    /// The title said above the picture.
    pub fn title(&self) -> String {
        format!(
            "{} — phase {}, {}",
            self.lab,
            self.phase,
            if self.source == "live" {
                "as the scan sees it"
            } else {
                "as the spec declares it"
            }
        )
    }
}

/// Text safe inside XML/HTML text and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}
