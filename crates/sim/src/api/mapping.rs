//! Directory mappings (`/cluster/mapping/dir`, pve-manager's `Mapping::Dir`), and the
//! checks qemu-server makes of `virtiofsN` against them.

use serde_json::{Value, json};

use super::missing;
use crate::formats::split_list;
use crate::schema::PVal;
use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{DirMapping, State};
use crate::util::sha1_hex;

pub fn dispatch(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    match (r.method.as_str(), r.template.as_str()) {
        ("GET", "/cluster/mapping/dir") => inner.with_state(|st| {
            let digest = digest(st);
            let local = local_node(st);
            if let Some(n) = r.str("check-node")
                && n != local
                && n != "localhost"
            {
                return Err(ApiError::e500(format!(
                    "wrong node to check - {n} != {local}"
                )));
            }
            let list: Vec<Value> = st
                .dir_mappings
                .iter()
                .map(|(id, m)| {
                    let mut e = entry(m, &digest);
                    e["id"] = json!(id);
                    if let Some(node) = r.str("check-node") {
                        e["checks"] = json!(checks(st, m, &node));
                    }
                    e
                })
                .collect();
            Ok(Value::Array(list).into())
        }),
        ("GET", "/cluster/mapping/dir/{id}") => inner.with_state(|st| {
            let id = r.s("id");
            let m = st
                .dir_mappings
                .get(&id)
                .ok_or_else(|| ApiError::e500(format!("mapping '{id}' not found")))?;
            Ok(entry(m, &digest(st)).into())
        }),
        ("POST", "/cluster/mapping/dir") => inner.with_state(|st| {
            let id = r.s("id");
            let map = map_list(r);
            assert_valid_map_list(st, &map).map_err(ApiError::e500)?;
            if st.dir_mappings.contains_key(&id) {
                return Err(ApiError::e500(format!(
                    "create directory mapping failed: dir ID '{id}' already defined"
                )));
            }
            st.dir_mappings.insert(
                id,
                DirMapping {
                    map,
                    description: r.str("description"),
                },
            );
            Ok(Value::Null.into())
        }),
        ("PUT", "/cluster/mapping/dir/{id}") => inner.with_state(|st| {
            let id = r.s("id");
            let failed =
                |m: String| ApiError::e500(format!("update directory mapping failed: {m}"));
            if let Some(d) = r.str("digest")
                && d != digest(st)
            {
                return Err(failed(
                    "detected modified configuration - file changed by other user? Try again."
                        .into(),
                ));
            }
            if !st.dir_mappings.contains_key(&id) {
                return Err(failed(format!("dir ID '{id}' does not exist")));
            }
            let deletes = r.str("delete").map(|d| split_list(&d)).unwrap_or_default();
            for k in &deletes {
                if k == "map" {
                    return Err(failed("map: property is not optional".into()));
                }
                if k != "description" {
                    return Err(failed(format!("invalid parameter '{k}'")));
                }
            }
            let new_map = r.params.contains_key("map").then(|| map_list(r));
            if let Some(m) = &new_map {
                assert_valid_map_list(st, m).map_err(failed)?;
            }
            let m = st
                .dir_mappings
                .get_mut(&id)
                .ok_or_else(|| failed(format!("dir ID '{id}' does not exist")))?;
            if deletes.iter().any(|k| k == "description") {
                m.description = None;
            }
            if let Some(d) = r.str("description") {
                m.description = Some(d);
            }
            if let Some(map) = new_map {
                m.map = map;
            }
            Ok(Value::Null.into())
        }),
        ("DELETE", "/cluster/mapping/dir/{id}") => inner.with_state(|st| {
            st.dir_mappings.shift_remove(&r.s("id"));
            Ok(Value::Null.into())
        }),
        _ => Err(missing(r)),
    }
}

/// The node the API runs on (the first one).
pub(crate) fn local_node(st: &State) -> String {
    st.nodes.keys().next().cloned().unwrap_or_default()
}

fn digest(st: &State) -> String {
    digest_of(&st.dir_mappings)
}

/// The digest of one mapping section file (`mapping/dir.cfg`, `mapping/pci.cfg`).
pub(crate) fn digest_of(maps: &indexmap::IndexMap<String, DirMapping>) -> String {
    let mut text = String::new();
    for (id, m) in maps {
        text.push_str(&format!("{id}\n"));
        if let Some(d) = &m.description {
            text.push_str(&format!("\tdescription {d}\n"));
        }
        for e in &m.map {
            text.push_str(&format!("\tmap {e}\n"));
        }
        text.push('\n');
    }
    sha1_hex(&text)
}

pub(crate) fn entry(m: &DirMapping, digest: &str) -> Value {
    let mut e = json!({"map": m.map, "digest": digest});
    if let Some(d) = &m.description {
        e["description"] = json!(d);
    }
    e
}

pub(crate) fn map_list(r: &Req) -> Vec<String> {
    match r.params.get("map") {
        Some(PVal::Arr(a)) => a.iter().filter_map(PVal::as_str).collect(),
        Some(v) => v.as_str().into_iter().collect(),
        None => vec![],
    }
}

fn entry_fields(e: &str) -> (Option<String>, Option<String>) {
    let (mut node, mut path) = (None, None);
    for kv in e.split(',') {
        match kv.split_once('=') {
            Some(("node", v)) => node = Some(v.to_string()),
            Some(("path", v)) => path = Some(v.to_string()),
            _ => {}
        }
    }
    (node, path)
}

/// `assert_valid`: the path is a folder on this node.
fn assert_valid(st: &State, node: &str, path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.contains([';', ',', '=', '(', ')']) {
        return Err("Value does not look like a valid absolute path. These symbols are currently not allowed in path: ;,=()".into());
    }
    let files = st.nodes.get(node).map(|n| &n.files);
    match files {
        Some(f) if crate::fsmap::is_dir(f, path) => Ok(()),
        Some(f) if crate::fsmap::is_file(f, path) => {
            Err(format!("Path {path} exists, but is not a directory"))
        }
        _ => Err(format!("Path {path} does not exist")),
    }
}

/// `assert_valid_map_list`: entries for this node must name existing folders, and no
/// node may appear twice.
fn assert_valid_map_list(st: &State, map: &[String]) -> Result<(), String> {
    let local = local_node(st);
    let mut count: indexmap::IndexMap<String, usize> = indexmap::IndexMap::new();
    for e in map {
        let (node, path) = entry_fields(e);
        let node = node.unwrap_or_default();
        if node == local {
            assert_valid(st, &node, path.as_deref().unwrap_or(""))?;
        }
        *count.entry(node).or_default() += 1;
    }
    for (node, n) in count {
        if n > 1 {
            return Err(format!("Node '{node}' is specified {n} times."));
        }
    }
    Ok(())
}

fn checks(st: &State, m: &DirMapping, node: &str) -> Vec<Value> {
    let entries: Vec<String> = m
        .map
        .iter()
        .filter(|e| entry_fields(e).0.as_deref() == Some(node))
        .cloned()
        .collect();
    if entries.is_empty() {
        return vec![
            json!({"severity": "warning", "message": format!("No mapping for node {node}.")}),
        ];
    }
    entries
        .iter()
        .filter_map(|e| {
            let path = entry_fields(e).1.unwrap_or_default();
            assert_valid(st, node, &path).err().map(|err| {
                json!({"severity": "error", "message": format!("Invalid configuration: {err}")})
            })
        })
        .collect()
}

/// The dirid of a `virtiofsN` value (`[dirid=]ID,…`).
pub fn dirid(value: &str) -> String {
    let first = value.split(',').next().unwrap_or("");
    first.strip_prefix("dirid=").unwrap_or(first).to_string()
}

/// `find_on_current_node` for `node`: the mapped path, or PVE's error.
pub fn find_on_node(st: &State, id: &str, node: &str) -> Result<String, String> {
    let m = st
        .dir_mappings
        .get(id)
        .ok_or_else(|| format!("Directory ID {id} does not exist."))?;
    let n = m
        .map
        .iter()
        .filter(|e| entry_fields(e).0.as_deref() == Some(node))
        .count();
    match n {
        0 => Err(format!("No directory mapping for node {node}.")),
        1 => m
            .path_on(node)
            .ok_or_else(|| format!("No directory mapping for node {node}.")),
        _ => Err(format!(
            "More than than one directory mapping for node {node}."
        )),
    }
}

/// What `qm start` checks of every `virtiofsN` (config generation):
/// the mapping resolves on the node and its folder exists.
pub fn assert_virtiofs(st: &State, node: &str, value: &str) -> Result<String, String> {
    let id = dirid(value);
    let path = find_on_node(st, &id, node)?;
    assert_valid(st, node, &path).map_err(|e| format!("directory mapping invalid: {e}"))?;
    Ok(path)
}
