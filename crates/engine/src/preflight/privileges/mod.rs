//! Which PVE privileges on which ACL paths labwright needs, and whether a token has
//! them.
//!
//! The source is the API schema: [`table::ENDPOINTS`] lists every endpoint labwright
//! calls with its schema `permissions` object verbatim (a test compares the table
//! with `apidata-9.1.3.json`). What a handler checks beyond the schema (disks need
//! `Datastore.AllocateSpace`, NICs `SDN.Use`, each config key its `VM.Config.*`
//! class) is in [`extra`], each rule tied to the schema text that announces it.
//!
//! Two uses: a plan's needs (its actions' API calls, pre-change snapshots and the
//! reads of scan and validate, with real paths such as `/vms/300`), checked before
//! apply writes anything; and the full list (every endpoint, paths cut at their first
//! parameter: `/vms`, `/storage`), for `labwright token create` and `doctor` without
//! a spec.

mod extra;
pub mod table;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use labwright_pve::api::cluster::Permissions;
use serde::Serialize;
use serde_json::Value;

use crate::plan::Plan;

/// The pseudo-privilege of an endpoint the schema leaves without permissions: PVE
/// then admits `root@pam` only, so no role can grant it.
pub const ROOT_ONLY: &str = "root@pam";

/// One privilege on one ACL path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Need {
    pub path: String,
    pub privilege: String,
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.privilege == ROOT_ONLY {
            return f.write_str("a root@pam login (no token or role can do this)");
        }
        write!(f, "{}@{}", self.privilege, self.path)
    }
}

/// What one call needs: any one of the alternatives, each a set of privileges that
/// must all be held (an `or` in the schema, or `any` privilege of a list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// The call, as `METHOD /path` (for messages).
    pub call: String,
    pub alternatives: Vec<BTreeSet<Need>>,
}

impl Requirement {
    /// Held when one alternative is held entirely (no alternatives: nothing needed).
    pub fn held_by(&self, has: &dyn Fn(&Need) -> bool) -> bool {
        self.alternatives.is_empty() || self.alternatives.iter().any(|a| a.iter().all(has))
    }

    /// The preferred alternative: the one asking least on `/` (a node's
    /// `Sys.AccessNetwork` rather than `Sys.Modify` on everything), then the schema's
    /// order; never a root-only way when another exists.
    pub fn preferred(&self) -> BTreeSet<Need> {
        self.alternatives
            .iter()
            .enumerate()
            .min_by_key(|(i, a)| {
                (
                    a.iter().any(is_root_only),
                    a.iter().filter(|n| n.path == "/").count(),
                    *i,
                )
            })
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }
}

/// A schema `check` expression, parsed.
#[derive(Clone, Debug, PartialEq)]
enum Check {
    Perm {
        path: String,
        privs: Vec<String>,
        any: bool,
        require_param: Option<String>,
    },
    And(Vec<Check>),
    Or(Vec<Check>),
    /// `user: all` (the handler filters or checks itself) or `user: world`.
    Anyone,
    /// No permissions object: root@pam only.
    RootOnly,
}

fn parse_check(v: &Value) -> Check {
    let Some(arr) = v.as_array() else {
        return Check::RootOnly;
    };
    let op = arr.first().and_then(Value::as_str).unwrap_or("");
    match op {
        "perm" => {
            let path = arr
                .get(1)
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string();
            let privs = arr
                .get(2)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            // Options follow as key/value pairs: `"any", 1`, `"require_param", "pool"`.
            let mut any = false;
            let mut require_param = None;
            let mut i = 3;
            while i < arr.len() {
                match arr[i].as_str() {
                    Some("any") => any = true,
                    Some("require_param") => {
                        require_param = arr.get(i + 1).and_then(Value::as_str).map(String::from)
                    }
                    _ => {}
                }
                i += 2;
            }
            Check::Perm {
                path,
                privs,
                any,
                require_param,
            }
        }
        "and" => Check::And(arr[1..].iter().map(parse_check).collect()),
        "or" => Check::Or(arr[1..].iter().map(parse_check).collect()),
        // userid-param, perm-modify, …: access management, which the token never does.
        _ => Check::RootOnly,
    }
}

/// The `permissions` object of the schema as a [`Check`].
fn parse_permissions(text: &str) -> Check {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if let Some(c) = v.get("check") {
        return parse_check(c);
    }
    if v.get("user").and_then(Value::as_str).is_some() {
        return Check::Anyone;
    }
    Check::RootOnly
}

/// How `{param}` in an ACL path is filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paths<'a> {
    /// With the call's parameters (a plan's needs).
    Concrete(&'a BTreeMap<String, String>),
    /// Cut at the first parameter (`/vms/{vmid}` → `/vms`): the full list.
    Generic,
}

/// `/vms/{vmid}` with parameters; `None` when a parameter is missing.
fn fill(path: &str, paths: Paths<'_>) -> Option<String> {
    match paths {
        Paths::Generic => {
            let cut = path.find('{').map_or(path, |i| &path[..i]);
            let cut = cut.trim_end_matches('/');
            Some(if cut.is_empty() { "/" } else { cut }.to_string())
        }
        Paths::Concrete(params) => {
            let mut out = String::new();
            let mut rest = path;
            while let Some(start) = rest.find('{') {
                out.push_str(&rest[..start]);
                let end = rest[start..].find('}')? + start;
                out.push_str(params.get(&rest[start + 1..end])?);
                rest = &rest[end + 1..];
            }
            out.push_str(rest);
            Some(out)
        }
    }
}

fn need(path: String, privilege: &str) -> Need {
    Need {
        path,
        privilege: privilege.to_string(),
    }
}

/// Disjunctive normal form of a check: the alternatives, each a set of needs.
fn alternatives(c: &Check, paths: Paths<'_>) -> Vec<BTreeSet<Need>> {
    match c {
        Check::Anyone => vec![BTreeSet::new()],
        Check::RootOnly => vec![BTreeSet::from([need("/".into(), ROOT_ONLY)])],
        Check::Perm {
            path,
            privs,
            any,
            require_param,
        } => {
            // `require_param`: this way is only open when the call passes the parameter.
            if let Some(p) = require_param {
                match paths {
                    Paths::Concrete(params) if params.contains_key(p) => {}
                    _ => return vec![],
                }
            }
            let Some(path) = fill(path, paths) else {
                return vec![];
            };
            if *any {
                privs
                    .iter()
                    .map(|p| BTreeSet::from([need(path.clone(), p)]))
                    .collect()
            } else {
                vec![privs.iter().map(|p| need(path.clone(), p)).collect()]
            }
        }
        Check::Or(cs) => cs.iter().flat_map(|c| alternatives(c, paths)).collect(),
        Check::And(cs) => {
            let mut acc = vec![BTreeSet::new()];
            for c in cs {
                let alts = alternatives(c, paths);
                let mut next = Vec::new();
                for a in &acc {
                    for b in &alts {
                        next.push(a.union(b).cloned().collect());
                    }
                }
                acc = next;
            }
            acc
        }
    }
}

/// An API call as the plan shows it: `POST /nodes/pve/qemu vmid=100 name=edge …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub params: BTreeMap<String, String>,
}

impl Call {
    /// Parses a plan line; `None` for what is not an API call (`SSH …`).
    pub fn parse(line: &str) -> Option<Call> {
        let mut words = line.split(' ');
        let method = words.next()?;
        if !matches!(method, "GET" | "POST" | "PUT" | "DELETE") {
            return None;
        }
        let path = words.next()?.to_string();
        let mut params: BTreeMap<String, String> = BTreeMap::new();
        let mut last: Option<String> = None;
        for w in words {
            match w.split_once('=') {
                // A key is a config key (`net0`, `delete`, `checksum-algorithm`).
                Some((k, v))
                    if !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
                {
                    params.insert(k.to_string(), v.to_string());
                    last = Some(k.to_string());
                }
                // A value with spaces (a description) continues the last parameter.
                _ => {
                    if let Some(v) = last.as_ref().and_then(|k| params.get_mut(k)) {
                        v.push(' ');
                        v.push_str(w);
                    }
                }
            }
        }
        Some(Call {
            method: method.to_string(),
            path,
            params,
        })
    }
}

/// Matches a concrete path against a schema template, returning its parameters.
fn match_template(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut out = BTreeMap::new();
    for (a, b) in t.iter().zip(&p) {
        if let Some(name) = a.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
            let v = percent_decode(b);
            out.insert(name.to_string(), v);
        } else if a != b {
            return None;
        }
    }
    Some(out)
}

/// Path segments are percent-encoded in calls (`local:iso/x.iso`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a call needs. Unknown endpoints (not in the table) need nothing known: the
/// table test makes sure every call labwright plans is in it.
pub fn for_call(call: &Call) -> Option<Requirement> {
    let (ep, mut params) = table::ENDPOINTS.iter().find_map(|e| {
        (e.method == call.method)
            .then(|| match_template(e.path, &call.path))
            .flatten()
            .map(|p| (e, p))
    })?;
    for (k, v) in &call.params {
        params.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let mut alts = alternatives(&parse_permissions(ep.permissions), Paths::Concrete(&params));
    let extra = extra::needs(ep, Paths::Concrete(&params), &params);
    for a in &mut alts {
        a.extend(extra.iter().cloned());
    }
    if alts.is_empty() && !extra.is_empty() {
        alts.push(extra.into_iter().collect());
    }
    Some(Requirement {
        call: format!("{} {}", call.method, call.path),
        alternatives: alts,
    })
}

/// Everything `plan` needs to be applied and validated: its calls, the pre-change
/// snapshots, and the reads of scan and validate for the node and declared guests.
pub fn for_plan(plan: &Plan) -> Vec<Requirement> {
    let mut lines: Vec<String> = Vec::new();
    for e in table::ENDPOINTS.iter().filter(|e| e.scan) {
        let mut p = BTreeMap::new();
        p.insert("node".to_string(), plan.node.clone());
        if e.path.contains("{vmid}") {
            for v in &plan.declared_vmids {
                p.insert("vmid".into(), v.to_string());
                if let Some(path) = fill(e.path, Paths::Concrete(&p)) {
                    lines.push(format!("{} {path}", e.method));
                }
            }
        } else if let Some(path) = fill(e.path, Paths::Concrete(&p)) {
            lines.push(format!("{} {path}", e.method));
        }
    }
    for a in &plan.actions {
        if a.pre_snapshot.is_some()
            && let Some((node, vmid)) = a.op.vm()
        {
            lines.push(format!("POST /nodes/{node}/qemu/{vmid}/snapshot"));
            lines.push(format!("DELETE /nodes/{node}/qemu/{vmid}/snapshot/lw"));
        }
        for l in &a.api_calls {
            // `AGENT 300 mkdir …`: a command run through the guest agent.
            match l.strip_prefix("AGENT ").and_then(|r| r.split(' ').next()) {
                Some(vmid) => {
                    // Migrations wait for the agent, run commands, write fstab.
                    for (m, call) in [
                        ("POST", "ping"),
                        ("POST", "exec"),
                        ("GET", "exec-status"),
                        ("POST", "file-write"),
                    ] {
                        lines.push(format!("{m} /nodes/{}/qemu/{vmid}/agent/{call}", plan.node));
                    }
                }
                None => lines.push(l.clone()),
            }
        }
    }
    let mut out: Vec<Requirement> = Vec::new();
    for l in &lines {
        if let Some(r) = Call::parse(l).as_ref().and_then(for_call)
            && !out.contains(&r)
        {
            out.push(r);
        }
    }
    out
}

/// The plan's API calls that are not in the table (a new endpoint someone forgot to
/// add): doctor reports them, since their privileges are not checked.
pub fn unknown_calls(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in &plan.actions {
        for l in &a.api_calls {
            if let Some(c) = Call::parse(l)
                && for_call(&c).is_none()
            {
                let s = format!("{} {}", c.method, c.path);
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// Every privilege labwright may need, on generic paths: what the role of
/// `labwright token create` holds and where it is granted.
pub fn full_list() -> BTreeSet<Need> {
    let mut all = BTreeSet::new();
    for e in table::ENDPOINTS {
        let r = Requirement {
            call: String::new(),
            alternatives: alternatives(&parse_permissions(e.permissions), Paths::Generic),
        };
        let way = r.preferred();
        // Root-only endpoints (wiping a disk) no role can grant: left out.
        if !way.iter().any(is_root_only) {
            all.extend(way);
        }
        let none = BTreeMap::new();
        all.extend(extra::needs(e, Paths::Generic, &none));
    }
    all
}

/// The full list as requirements (one per need), for checking a token without a plan.
pub fn full_requirements() -> Vec<Requirement> {
    full_list()
        .into_iter()
        .map(|n| Requirement {
            call: "labwright (any command)".into(),
            alternatives: vec![BTreeSet::from([n])],
        })
        .collect()
}

pub fn is_root_only(n: &Need) -> bool {
    n.privilege == ROOT_ONLY
}

/// The privileges of [`full_list`], for the role.
pub fn role_privileges() -> BTreeSet<String> {
    full_list()
        .into_iter()
        .filter(|n| !is_root_only(n))
        .map(|n| n.privilege)
        .collect()
}

/// The ACL paths of [`full_list`], for the role's ACL entries.
pub fn acl_paths() -> BTreeSet<String> {
    full_list()
        .into_iter()
        .filter(|n| !is_root_only(n))
        .map(|n| n.path)
        .collect()
}

/// One requirement a token does not meet, with what it would take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub call: String,
    /// The privileges of the preferred way that the token lacks.
    pub needs: Vec<Need>,
}

/// The requirements `perms` (from `GET /access/permissions` of the token) does not
/// meet. `root` says the caller is a `root@pam` login (a ticket), the only one PVE
/// admits to root-only endpoints — root's own tokens included are refused there.
pub fn missing(reqs: &[Requirement], perms: &Permissions, root: bool) -> Vec<Missing> {
    let has = |n: &Need| {
        if is_root_only(n) {
            root
        } else {
            perms.has(&n.path, &n.privilege)
        }
    };
    let mut out: Vec<Missing> = Vec::new();
    for r in reqs {
        if r.held_by(&has) {
            continue;
        }
        let needs: Vec<Need> = r.preferred().into_iter().filter(|n| !has(n)).collect();
        out.push(Missing {
            call: r.call.clone(),
            needs,
        });
    }
    out
}

/// The distinct missing privileges, `Privilege@path`, sorted.
pub fn missing_needs(m: &[Missing]) -> Vec<Need> {
    let set: BTreeSet<Need> = m.iter().flat_map(|x| x.needs.iter().cloned()).collect();
    set.into_iter().collect()
}

/// What validate's clean-up writes when every check passes: the seed CD of each
/// declared guest detached (`ide2`, a CD drive: `VM.Config.CDROM`), its ISO deleted
/// from `iso_storage`, labwright's pre-change snapshots expired.
pub fn for_cleanup(node: &str, vmids: &[u32], iso_storage: &str) -> Vec<Requirement> {
    let mut out: Vec<Requirement> = Vec::new();
    for v in vmids {
        for l in [
            format!("POST /nodes/{node}/qemu/{v}/config ide2=none,media=cdrom"),
            format!("DELETE /nodes/{node}/qemu/{v}/snapshot/lw"),
            format!(
                "DELETE /nodes/{node}/storage/{iso_storage}/content/{iso_storage}:iso%2Flw-seed-{v}"
            ),
        ] {
            if let Some(r) = Call::parse(&l).as_ref().and_then(for_call)
                && !out.contains(&r)
            {
                out.push(r);
            }
        }
    }
    out
}

/// Why [`check`] refuses a plan.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the API token lacks {} privilege(s) this plan needs; nothing was applied:\n{}",
        needs.len(),
        needs.iter().map(|n| format!("  - {n}")).collect::<Vec<_>>().join("\n")
    )]
    Missing {
        needs: Vec<Need>,
        detail: Vec<Missing>,
    },
    /// The token's permissions could not be read (the node still checks each call).
    #[error("cannot read the token's permissions: {0}")]
    Read(#[from] labwright_pve::Error),
}

/// Compares what `plan` needs with `GET /access/permissions` of the caller, before
/// anything is written. `root` as in [`missing`].
pub async fn check(
    client: &labwright_pve::PveClient,
    plan: &Plan,
    root: bool,
) -> Result<(), Refusal> {
    let perms = client.permissions(None, None).await?;
    let m = missing(&for_plan(plan), &perms, root);
    if m.is_empty() {
        return Ok(());
    }
    Err(Refusal::Missing {
        needs: missing_needs(&m),
        detail: m,
    })
}

/// The table of `docs/privileges.md`: every endpoint and what it needs on generic
/// paths (a test keeps the document equal to this).
pub fn markdown() -> String {
    let mut s = String::new();
    s.push_str("The role `LabwrightOperator` holds:\n\n");
    for p in role_privileges() {
        s.push_str(&format!("- `{p}`\n"));
    }
    s.push_str("\nIt is granted on: ");
    let paths: Vec<String> = acl_paths().into_iter().map(|p| format!("`{p}`")).collect();
    s.push_str(&paths.join(", "));
    s.push_str(" (`/` without propagation, the others with).\n\n");
    s.push_str("| Call | Needs (any one line of a cell) |\n|---|---|\n");
    for e in table::ENDPOINTS {
        let alts = alternatives(&parse_permissions(e.permissions), Paths::Generic);
        let none = BTreeMap::new();
        let extra = extra::needs(e, Paths::Generic, &none);
        let mut ways: Vec<String> = alts
            .iter()
            .map(|a| {
                let mut all: BTreeSet<Need> = a.clone();
                all.extend(extra.iter().cloned());
                if all.iter().any(is_root_only) {
                    "root@pam only (no role can grant it)".to_string()
                } else if all.is_empty() {
                    "any user (the list is filtered, or the handler checks)".to_string()
                } else {
                    all.iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            })
            .collect();
        ways.dedup();
        if ways.is_empty() {
            ways.push("(only with a parameter labwright does not send)".into());
        }
        s.push_str(&format!(
            "| `{} {}` | {} |\n",
            e.method,
            e.path,
            ways.join("<br>or ")
        ));
    }
    s
}
