//! The output document: a YAML tree whose every node may say where it came from.
//! Written by hand rather than through serde so that each line can carry its
//! provenance comment and the text is the same, byte for byte, for the same input.
//!
//! Provenance markers have one form the tests read back: `# <- PATH, PATH (note)`,
//! trailing a value or on a line of their own. A `# from …` line is only a heading.

use crate::path::Path;

#[derive(Clone, Debug)]
pub enum Val {
    /// An already rendered YAML scalar.
    Scalar(String),
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub val: Val,
    /// Input paths this node was made from (each covers everything under it).
    pub src: Vec<Path>,
    /// Text after the provenance paths (`8192 MB`).
    pub note: Option<String>,
    /// Comment lines above the node.
    pub head: Vec<String>,
}

impl Node {
    pub fn new(val: Val) -> Node {
        Node {
            val,
            src: Vec::new(),
            note: None,
            head: Vec::new(),
        }
    }
    pub fn map() -> Node {
        Node::new(Val::Map(Vec::new()))
    }
    pub fn seq() -> Node {
        Node::new(Val::Seq(Vec::new()))
    }
    pub fn str(s: &str) -> Node {
        Node::new(Val::Scalar(quote(s)))
    }
    pub fn int(n: u64) -> Node {
        Node::new(Val::Scalar(n.to_string()))
    }
    pub fn bool(b: bool) -> Node {
        Node::new(Val::Scalar(b.to_string()))
    }
    pub fn from(mut self, p: &Path) -> Node {
        self.src.push(p.clone());
        self
    }
    pub fn note(mut self, n: impl Into<String>) -> Node {
        self.note = Some(n.into());
        self
    }
    pub fn head(mut self, line: impl Into<String>) -> Node {
        self.head.push(line.into());
        self
    }
    /// Adds a key to a mapping node (no-op on other nodes).
    pub fn set(&mut self, key: &str, node: Node) {
        if let Val::Map(entries) = &mut self.val {
            entries.push((key.to_string(), node));
        }
    }
    /// The mapping entry `key`, if there is one.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.val {
            Val::Map(e) => e.iter_mut().find(|(k, _)| k == key).map(|(_, n)| n),
            _ => None,
        }
    }
    pub fn has(&self, key: &str) -> bool {
        matches!(&self.val, Val::Map(e) if e.iter().any(|(k, _)| k == key))
    }
    pub fn push(&mut self, node: Node) {
        if let Val::Seq(items) = &mut self.val {
            items.push(node);
        }
    }
    pub fn is_empty(&self) -> bool {
        match &self.val {
            Val::Map(e) => e.is_empty(),
            Val::Seq(i) => i.is_empty(),
            Val::Scalar(_) => false,
        }
    }
    /// Every source path in this subtree.
    pub fn sources(&self, out: &mut Vec<Path>) {
        out.extend(self.src.iter().cloned());
        match &self.val {
            Val::Map(e) => e.iter().for_each(|(_, n)| n.sources(out)),
            Val::Seq(i) => i.iter().for_each(|n| n.sources(out)),
            Val::Scalar(_) => {}
        }
    }
}

/// A string as a YAML scalar: plain when it cannot be read as anything else, else
/// double-quoted (JSON escaping is valid YAML).
pub fn quote(s: &str) -> String {
    let special = matches!(
        s.to_ascii_lowercase().as_str(),
        "" | "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    );
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '/' || c == '_');
    let radix = s.starts_with("0x") || s.starts_with("0o") || s.starts_with("0b");
    let rest_ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-' | '+' | '@' | ' '));
    let numeric = s.parse::<f64>().is_ok();
    if !special
        && first_ok
        && rest_ok
        && !numeric
        && !radix
        && !s.ends_with(' ')
        && !s.contains("  ")
    {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
    }
}

/// One comment line, never spanning lines.
fn comment(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn marker(n: &Node) -> Option<String> {
    let paths: Vec<String> = n.src.iter().map(ToString::to_string).collect();
    match (paths.is_empty(), &n.note) {
        (true, None) => None,
        (true, Some(note)) => Some(format!("# {}", comment(note))),
        (false, None) => Some(format!("# <- {}", paths.join(", "))),
        (false, Some(note)) => Some(format!("# <- {} ({})", paths.join(", "), comment(note))),
    }
}

fn with_marker(line: String, n: &Node) -> String {
    match marker(n) {
        Some(m) => format!("{line}  {m}"),
        None => line,
    }
}

fn heads(n: &Node, indent: usize, out: &mut Vec<String>) {
    for h in &n.head {
        out.push(format!("{}# {}", " ".repeat(indent), comment(h)));
    }
}

/// Renders a mapping's entries at `indent`.
fn emit_entries(entries: &[(String, Node)], indent: usize, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    for (k, n) in entries {
        heads(n, indent, out);
        let key = quote(k);
        match &n.val {
            Val::Scalar(s) => out.push(with_marker(format!("{pad}{key}: {s}"), n)),
            Val::Map(e) if e.is_empty() => out.push(with_marker(format!("{pad}{key}: {{}}"), n)),
            Val::Seq(i) if i.is_empty() => out.push(with_marker(format!("{pad}{key}: []"), n)),
            Val::Map(e) => {
                out.push(with_marker(format!("{pad}{key}:"), n));
                emit_entries(e, indent + 2, out);
            }
            Val::Seq(items) => {
                out.push(with_marker(format!("{pad}{key}:"), n));
                emit_items(items, indent + 2, out);
            }
        }
    }
}

fn emit_items(items: &[Node], indent: usize, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    for n in items {
        heads(n, indent, out);
        match &n.val {
            Val::Scalar(s) => out.push(with_marker(format!("{pad}- {s}"), n)),
            Val::Map(e) if e.is_empty() => out.push(with_marker(format!("{pad}- {{}}"), n)),
            Val::Seq(i) if i.is_empty() => out.push(with_marker(format!("{pad}- []"), n)),
            Val::Map(e) => {
                // The item's own marker goes on a line of its own above it.
                if let Some(m) = marker(n) {
                    out.push(format!("{pad}{m}"));
                }
                let mut lines = Vec::new();
                emit_entries(e, indent + 2, &mut lines);
                let inner = " ".repeat(indent + 2);
                let mut dashed = false;
                for l in lines {
                    if !dashed && !l.trim_start().starts_with('#') {
                        out.push(format!("{pad}- {}", &l[inner.len()..]));
                        dashed = true;
                    } else {
                        out.push(l);
                    }
                }
            }
            Val::Seq(i) => {
                out.push(with_marker(format!("{pad}-"), n));
                emit_items(i, indent + 2, out);
            }
        }
    }
}

/// The document as YAML text (the root must be a mapping).
pub fn render(root: &Node) -> String {
    let mut lines = Vec::new();
    if let Val::Map(e) = &root.val {
        emit_entries(e, 0, &mut lines);
    }
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_yaml_would_misread() {
        assert_eq!(quote("app-host"), "app-host");
        assert_eq!(quote("02:30"), "\"02:30\"");
        assert_eq!(quote("yes"), "\"yes\"");
        assert_eq!(quote("12"), "\"12\"");
        assert_eq!(quote("${ADMIN_PC_CIDR}"), "\"${ADMIN_PC_CIDR}\"");
        assert_eq!(quote("a # b"), "\"a # b\"");
        assert_eq!(quote("line\nbreak"), "\"line\\nbreak\"");
    }

    #[test]
    fn renders_nested_lists_of_maps_with_markers() {
        let p = Path::root().key("vmProvision").index(0);
        let mut root = Node::map();
        let mut vms = Node::seq();
        let mut vm = Node::map().head("from vmProvision[0] (a)");
        vm.set("vmid", Node::int(100).from(&p.key("vmid")));
        vm.set("name", Node::str("a").from(&p.key("name")));
        let mut disks = Node::map();
        disks.set("scsi0", Node::map());
        vm.set("disks", disks);
        vms.push(vm);
        root.set("vms", vms);
        let text = render(&root);
        assert_eq!(
            text,
            "vms:\n  # from vmProvision[0] (a)\n  - vmid: 100  # <- vmProvision[0].vmid\n    name: a  # <- vmProvision[0].name\n    disks:\n      scsi0: {}\n"
        );
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap_or_default();
        assert_eq!(v["vms"][0]["vmid"], 100);
    }
}
