//! Authentication (API tokens, tickets + CSRF) and ACL privilege evaluation.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::formats::all_privs;
use crate::state::State;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct AuthId {
    /// `user@realm`.
    pub user: String,
    /// Token name when authenticated by API token.
    pub token: Option<String>,
}

impl AuthId {
    /// `user@realm` or `user@realm!token`, as PVE writes it into UPIDs.
    pub fn full(&self) -> String {
        match &self.token {
            Some(t) => format!("{}!{}", self.user, t),
            None => self.user.clone(),
        }
    }
    pub fn is_root_ticket(&self) -> bool {
        self.user == "root@pam" && self.token.is_none()
    }
}

/// Privileges of a built-in role.
pub fn role_privs(role: &str) -> Vec<&'static str> {
    let all = all_privs();
    match role {
        "Administrator" => all,
        "PVEAdmin" => all
            .into_iter()
            .filter(|p| !p.starts_with("Permissions.") && !p.starts_with("Realm."))
            .collect(),
        "PVEAuditor" => vec![
            "Datastore.Audit",
            "Mapping.Audit",
            "Pool.Audit",
            "SDN.Audit",
            "Sys.Audit",
            "VM.Audit",
            "VM.GuestAgent.Audit",
        ],
        "PVEVMAdmin" => all.into_iter().filter(|p| p.starts_with("VM.")).collect(),
        "PVEVMUser" => vec![
            "VM.Audit",
            "VM.Console",
            "VM.PowerMgmt",
            "VM.Backup",
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.GuestAgent.Audit",
        ],
        "PVEDatastoreUser" => vec![
            "Datastore.Audit",
            "Datastore.AllocateSpace",
            "Datastore.AllocateTemplate",
        ],
        _ => vec![],
    }
}

/// Effective privileges of one ACL subject (user or token) on `path`: the deepest level
/// that has entries for the subject wins; ancestors count only when propagating.
fn subject_privs(st: &State, ugid: &str, path: &str) -> BTreeSet<String> {
    let mut prefixes = vec!["/".to_string()];
    let mut acc = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        acc.push('/');
        acc.push_str(seg);
        prefixes.push(acc.clone());
    }
    let mut result = BTreeSet::new();
    for (i, p) in prefixes.iter().enumerate() {
        let exact = i + 1 == prefixes.len();
        let entries: Vec<_> = st
            .acls
            .iter()
            .filter(|a| a.ugid == ugid && &a.path == p && (exact || a.propagate))
            .collect();
        if !entries.is_empty() {
            result = entries
                .iter()
                .flat_map(|a| role_privs(&a.role))
                .map(String::from)
                .collect();
        }
    }
    result
}

/// Effective privileges of the caller on `path` (privsep tokens: intersection).
pub fn privs(st: &State, who: &AuthId, path: &str) -> BTreeSet<String> {
    let user_privs = if who.user == "root@pam" {
        all_privs().into_iter().map(String::from).collect()
    } else {
        subject_privs(st, &who.user, path)
    };
    match &who.token {
        None => user_privs,
        Some(t) => {
            let privsep = st
                .users
                .get(&who.user)
                .and_then(|u| u.tokens.get(t))
                .is_none_or(|tok| tok.privsep);
            if !privsep {
                return user_privs;
            }
            let tp = subject_privs(st, &who.full(), path);
            user_privs.intersection(&tp).cloned().collect()
        }
    }
}

pub fn has(st: &State, who: &AuthId, path: &str, privilege: &str) -> bool {
    privs(st, who, path).contains(privilege)
}

/// Substitutes `{param}` in an ACL path from the request parameters.
fn subst(path: &str, params: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 1..start + end];
        out.push_str(&params(name).unwrap_or_default());
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Evaluates a schema `check` expression. `Err` is the 403 message.
pub fn check(
    st: &State,
    who: &AuthId,
    expr: &Value,
    params: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let Some(arr) = expr.as_array() else {
        return Ok(());
    };
    let op = arr.first().and_then(Value::as_str).unwrap_or("");
    match op {
        "perm" => {
            let path = subst(arr.get(1).and_then(Value::as_str).unwrap_or("/"), params);
            let wanted: Vec<&str> = arr
                .get(2)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let any = arr.get(3).and_then(Value::as_str) == Some("any");
            let have = privs(st, who, &path);
            if any {
                if wanted.iter().any(|p| have.contains(*p)) {
                    Ok(())
                } else {
                    Err(format!(
                        "Permission check failed ({path}, {})",
                        wanted.join("|")
                    ))
                }
            } else {
                match wanted.iter().find(|p| !have.contains(**p)) {
                    None => Ok(()),
                    Some(p) => Err(format!("Permission check failed ({path}, {p})")),
                }
            }
        }
        "and" => {
            for e in &arr[1..] {
                check(st, who, e, params)?;
            }
            Ok(())
        }
        "or" => {
            let mut first = None;
            for e in &arr[1..] {
                match check(st, who, e, params) {
                    Ok(()) => return Ok(()),
                    Err(m) => {
                        first.get_or_insert(m);
                    }
                }
            }
            Err(first.unwrap_or_else(|| "Permission check failed".into()))
        }
        "userid-param" => {
            let target = params("userid").unwrap_or_default();
            if target == who.user || who.user == "root@pam" {
                Ok(())
            } else {
                Err("Permission check failed".into())
            }
        }
        "perm-modify" => {
            let path = subst(arr.get(1).and_then(Value::as_str).unwrap_or("/"), params);
            if has(st, who, &path, "Permissions.Modify") {
                Ok(())
            } else {
                Err(format!(
                    "Permission check failed ({path}, Permissions.Modify)"
                ))
            }
        }
        "userid-group" => {
            if has(st, who, "/access/groups", "User.Modify") {
                Ok(())
            } else {
                Err("Permission check failed (/access/groups, User.Modify)".into())
            }
        }
        _ => {
            if who.user == "root@pam" {
                Ok(())
            } else {
                Err("Permission check failed".into())
            }
        }
    }
}

/// Signs ticket data with the simulator's secret.
fn sign(key: &str, data: &str) -> String {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(b":");
    h.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(h.finalize())
}

/// `PVE:<user>:<HEX time>::<signature>`.
pub fn make_ticket(key: &str, user: &str, now: u64) -> String {
    let data = format!("PVE:{user}:{now:08X}");
    format!("{data}::{}", sign(key, &data))
}

/// Verifies a ticket; returns the user. Tickets live 2 hours.
pub fn verify_ticket(key: &str, ticket: &str, now: u64) -> Option<String> {
    let (data, sig) = ticket.split_once("::")?;
    if sign(key, data) != sig {
        return None;
    }
    let mut parts = data.split(':');
    if parts.next()? != "PVE" {
        return None;
    }
    let user = parts.next()?.to_string();
    let t = u64::from_str_radix(parts.next()?, 16).ok()?;
    (now + 300 >= t && now < t + 7200).then_some(user)
}

/// `<HEX time>:<signature over time:user>`.
pub fn make_csrf(key: &str, user: &str, now: u64) -> String {
    let ts = format!("{now:08X}");
    format!("{ts}:{}", sign(key, &format!("csrf:{ts}:{user}")))
}

pub fn verify_csrf(key: &str, token: &str, user: &str, now: u64) -> bool {
    let Some((ts, sig)) = token.split_once(':') else {
        return false;
    };
    let Ok(t) = u64::from_str_radix(ts, 16) else {
        return false;
    };
    sign(key, &format!("csrf:{ts}:{user}")) == sig && now < t + 7200
}

/// Parses `PVEAPIToken=user@realm!name=secret` (or a space after `PVEAPIToken`).
pub fn parse_token_header(h: &str) -> Option<(String, String, String)> {
    let rest = h
        .strip_prefix("PVEAPIToken=")
        .or_else(|| h.strip_prefix("PVEAPIToken "))?;
    let rest = urlencoding::decode(rest).ok()?.into_owned();
    let (id, secret) = rest.rsplit_once('=')?;
    let (user, token) = id.split_once('!')?;
    Some((user.to_string(), token.to_string(), secret.to_string()))
}
