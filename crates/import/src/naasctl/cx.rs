//! What the mappers share while they read one naasctl document: shape errors, the
//! decisions left to the user (placeholders), secrets found, the node, and reasons
//! that override the schema's for whole subtrees (`ensure: absent` items).

use serde_json::Value;

use crate::input::Errors;
use crate::out::Node;
use crate::path::Path;

/// A value naasctl did not have and labwright needs: written as `${VAR}`, which
/// `labwright check` reports as unset until the user decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub var: String,
    pub what: String,
}

/// A secret found in the input. Its value is never read into the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    pub path: Path,
    /// The variable the output refers to (`env:NAME`), when labwright has a slot.
    pub var: Option<String>,
    pub note: String,
}

pub struct Cx<'a> {
    pub e: Errors,
    pub decisions: Vec<Decision>,
    pub secrets: Vec<Secret>,
    /// Subtrees left out on purpose, with the reason (checked before the schema's).
    pub skipped: Vec<(Path, String)>,
    /// The node every `node:` key must name, with where it was first seen.
    pub node: Option<String>,
    /// Whether a leaf holds a secret (decided on the original text, never printed).
    pub is_secret: &'a dyn Fn(&Path) -> bool,
    /// Bridges the VMs' NICs name, in order of first use.
    pub bridges_used: Vec<String>,
    /// Tailscale subnet routes as (via VM, route, source): the VM joins the tailnet.
    pub ts_routes: Vec<(String, String, Path)>,
}

impl Cx<'_> {
    /// `${VAR}` for a value the user must supply; the first reason given is kept.
    pub fn decide(&mut self, var: &str, what: impl Into<String>) -> Node {
        if !self.decisions.iter().any(|d| d.var == var) {
            self.decisions.push(Decision {
                var: var.to_string(),
                what: what.into(),
            });
        }
        Node::str(&format!("${{{var}}}"))
    }

    pub fn skip(&mut self, p: &Path, why: impl Into<String>) {
        self.skipped.push((p.clone(), why.into()));
    }

    /// True when an item's `node:` names the lab's node (or is absent). A matching
    /// key is recorded in `read` (it is consumed); another node is skipped.
    pub fn on_node(&mut self, item: &Value, p: &Path, read: &mut Vec<Path>) -> bool {
        let np = p.key("node");
        let Some(v) = item.get("node") else {
            return true;
        };
        let Some(name) = self.e.string(Some(v), &np) else {
            return true;
        };
        match &self.node {
            Some(n) if *n == name => {
                read.push(np);
                true
            }
            Some(n) => {
                let why = format!(
                    "names node `{name}`; a labwright spec is for one node (`{n}`): import the other node's part into its own spec"
                );
                self.skip(p, why);
                false
            }
            None => {
                self.node = Some(name);
                read.push(np);
                true
            }
        }
    }
}

/// Items that were read but write nothing (`ensure: present`, `node:`) are named on a
/// marker line above the item, so that nothing read is unaccounted for.
pub fn mark_read(node: &mut Node, read: Vec<Path>, why: &str) {
    if !read.is_empty() {
        node.src.extend(read);
        node.note = Some(why.to_string());
    }
}

/// `ensure:` of a list item: present (default), absent (skipped), or a shape error.
pub fn ensure_present(cx: &mut Cx<'_>, item: &Value, p: &Path, read: &mut Vec<Path>) -> bool {
    let ep = p.key("ensure");
    match cx.e.string(item.get("ensure"), &ep).as_deref() {
        None => true,
        Some("present" | "running") => {
            read.push(ep);
            true
        }
        Some("absent") => {
            cx.skip(
                p,
                "`ensure: absent`: labwright removes what it owns when the spec stops declaring it (with allowDestroy), so the item is left out",
            );
            false
        }
        Some(other) => {
            let msg = format!("`{ep}` is `{other}`; naasctl knows `present` and `absent`");
            cx.e.push(&ep, msg, "write `ensure: present` or `ensure: absent`");
            false
        }
    }
}
