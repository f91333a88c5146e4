//! `storage.cfg` through the API (pve-storage `API2::Storage::Config`): listing with
//! the file-wide digest, create with activation and content filtering, update with
//! fixed options.

use serde_json::{Map, Value, json};

use super::storage::storage_on_node;
use crate::auth;
use crate::formats::split_list;
use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{Obj, State};
use crate::util::sha1_hex;

/// SHA-1 of the whole `storage.cfg`: SectionConfig gives every entry the digest of the
/// file, so any change to any storage invalidates all of them.
pub(super) fn file_digest(st: &State) -> String {
    let mut text = String::new();
    for (id, cfg) in &st.storages {
        let ty = cfg.get("type").and_then(Value::as_str).unwrap_or("");
        text.push_str(&format!("{ty}: {id}\n"));
        for (k, v) in cfg.iter().filter(|(k, _)| *k != "type") {
            let v = v.as_str().map_or_else(|| v.to_string(), String::from);
            text.push_str(&format!("\t{k} {v}\n"));
        }
        text.push('\n');
    }
    sha1_hex(&text)
}

pub(super) fn cfg_json(id: &str, cfg: &Obj, digest: &str) -> Value {
    let mut m: Map<String, Value> = cfg.clone().into_iter().collect();
    m.insert("storage".into(), json!(id));
    m.insert("digest".into(), json!(digest));
    Value::Object(m)
}

pub(super) fn can_see(st: &State, r: &Req, id: &str) -> bool {
    let p = format!("/storage/{id}");
    auth::has(st, &r.who, &p, "Datastore.Audit")
        || auth::has(st, &r.who, &p, "Datastore.AllocateSpace")
}

pub(super) fn storage_list(inner: &Inner, r: &Req) -> Value {
    inner.with_state(|st| {
        let digest = file_digest(st);
        Value::Array(
            st.storages
                .iter()
                .filter(|(id, _)| can_see(st, r, id))
                .filter(|(_, c)| {
                    r.str("type")
                        .is_none_or(|t| c.get("type").and_then(Value::as_str) == Some(t.as_str()))
                })
                .map(|(id, c)| cfg_json(id, c, &digest))
                .collect(),
        )
    })
}

/// Options each storage type accepts (a subset of the real plugin lists).
fn type_options(ty: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    const COMMON: &[&str] = &["content", "nodes", "disable", "shared"];
    let _ = COMMON;
    Some(match ty {
        "dir" => (
            &[
                "path",
                "content",
                "nodes",
                "disable",
                "shared",
                "prune-backups",
                "max-protected-backups",
                "mkdir",
                "create-base-path",
                "create-subdirs",
                "is_mountpoint",
                "content-dirs",
                "format",
                "preallocation",
                "snapshot-as-volume-chain",
            ],
            &["path"],
        ),
        "lvmthin" => (
            &["vgname", "thinpool", "content", "nodes", "disable"],
            &["vgname", "thinpool"],
        ),
        "lvm" => (
            &[
                "vgname",
                "base",
                "content",
                "nodes",
                "disable",
                "shared",
                "saferemove",
                "saferemove_throughput",
                "tagged_only",
                "snapshot-as-volume-chain",
            ],
            &["vgname"],
        ),
        "zfspool" => (
            &[
                "pool",
                "blocksize",
                "sparse",
                "mountpoint",
                "content",
                "nodes",
                "disable",
                "zfs-base-path",
            ],
            &["pool"],
        ),
        "nfs" => (
            &[
                "server",
                "export",
                "path",
                "content",
                "nodes",
                "disable",
                "options",
                "prune-backups",
                "max-protected-backups",
                "mkdir",
                "create-base-path",
                "create-subdirs",
                "content-dirs",
                "format",
                "preallocation",
                "snapshot-as-volume-chain",
            ],
            &["server", "export"],
        ),
        "cifs" => (
            &[
                "server",
                "share",
                "path",
                "content",
                "nodes",
                "disable",
                "username",
                "password",
                "domain",
                "smbversion",
                "subdir",
                "options",
                "prune-backups",
                "max-protected-backups",
                "mkdir",
                "create-base-path",
                "create-subdirs",
                "content-dirs",
                "format",
                "preallocation",
                "snapshot-as-volume-chain",
            ],
            &["server", "share"],
        ),
        "pbs" => (
            &[
                "server",
                "datastore",
                "username",
                "password",
                "fingerprint",
                "namespace",
                "encryption-key",
                "master-pubkey",
                "port",
                "content",
                "nodes",
                "disable",
                "prune-backups",
                "max-protected-backups",
            ],
            &["server", "datastore", "username"],
        ),
        _ => return None,
    })
}

/// Options a plugin marks `fixed => 1` (set at creation, never changed).
fn fixed_options(ty: &str) -> &'static [&'static str] {
    match ty {
        "dir" | "btrfs" => &["path", "snapshot-as-volume-chain"],
        "lvm" => &["vgname", "base"],
        "lvmthin" => &["thinpool", "vgname"],
        "zfspool" => &["pool"],
        "nfs" => &["path", "server", "export", "snapshot-as-volume-chain"],
        "cifs" => &["path", "server", "share", "snapshot-as-volume-chain"],
        "pbs" => &["server", "datastore"],
        _ => &[],
    }
}

/// Plugin::decode_value for `content`: unsupported types are dropped (PVE only warns
/// "storage does not support content type '…'" to its log); nothing left is an error.
fn supported_content(ty: &str, value: &str) -> Result<String, String> {
    let valid: &[&str] = match ty {
        "dir" | "nfs" | "cifs" | "btrfs" => &[
            "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none",
        ],
        "pbs" => &["backup", "none"],
        _ => &["images", "rootdir"],
    };
    let mut kept: Vec<String> = vec![];
    for c in split_list(value) {
        if valid.contains(&c.as_str()) {
            if !kept.contains(&c) {
                kept.push(c);
            }
        } else {
            tracing::warn!("storage does not support content type '{c}'");
        }
    }
    if kept.iter().any(|c| c == "none") && kept.len() > 1 {
        return Err("unable to combine 'none' with other content types".into());
    }
    if kept.is_empty() && !valid.contains(&"none") {
        return Err("storage does not support content type 'none'".into());
    }
    Ok(kept.join(","))
}

/// DirPlugin's `is_mountpoint`: a boolean names the storage path, anything else is
/// the mount point itself.
fn mountpoint_of(cfg: &Obj) -> Option<String> {
    let v = cfg.get("is_mountpoint").and_then(Value::as_str)?;
    match v {
        "1" | "yes" | "on" | "true" => cfg.get("path").and_then(Value::as_str).map(String::from),
        "0" | "no" | "off" | "false" => None,
        path => Some(path.to_string()),
    }
}

/// The plugin's status check on `node`: ZFS datasets must exist, `is_mountpoint`
/// storages must be mounted.
pub(super) fn online(st: &State, node: &str, cfg: &Obj) -> bool {
    let Some(n) = st.nodes.get(node) else {
        return false;
    };
    match cfg.get("type").and_then(Value::as_str) {
        Some("zfspool") => {
            let dataset = cfg.get("pool").and_then(Value::as_str).unwrap_or("");
            n.datasets.contains_key(dataset)
        }
        Some("dir") => {
            mountpoint_of(cfg).is_none_or(|mp| crate::host::zfs::is_mounted_mountpoint(n, &mp))
        }
        _ => true,
    }
}

/// `PVE::Storage::activate_storage` for a new storage on the local node: ZFS pools must
/// exist (or be importable), LVM-thin pools must exist, directories must exist unless
/// the plugin may create them (`create-base-path`, default on).
fn activate(st: &State, node: &str, id: &str, cfg: &Obj) -> Result<(), String> {
    let get = |k: &str| cfg.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let n = st.nodes.get(node);
    let pools: Vec<String> = n
        .map(|n| {
            n.zpools
                .iter()
                .filter_map(|p| p.get("name").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    match get("type").as_str() {
        "zfspool" => {
            let dataset = get("pool");
            let pool = dataset.split('/').next().unwrap_or("").to_string();
            if !pools.contains(&pool) {
                return Err(format!(
                    "could not activate storage '{id}', zfs error: cannot import '{pool}': no such pool available"
                ));
            }
            Ok(())
        }
        "lvmthin" => {
            let (vg, lv) = (get("vgname"), get("thinpool"));
            let known = st.storages.values().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("lvmthin")
                    && c.get("vgname").and_then(Value::as_str) == Some(vg.as_str())
                    && c.get("thinpool").and_then(Value::as_str) == Some(lv.as_str())
            }) || (vg == "pve" && lv == "data");
            if known {
                Ok(())
            } else {
                Err(format!("no such logical volume {vg}/{lv}"))
            }
        }
        "dir" => {
            let path = get("path");
            if let Some(mp) = mountpoint_of(cfg)
                && !n.is_some_and(|n| crate::host::zfs::is_mounted_mountpoint(n, &mp))
            {
                return Err(format!(
                    "unable to activate storage '{id}' - directory is expected to be a mount point but is not mounted: '{mp}'"
                ));
            }
            let may_create = ["create-base-path", "mkdir"]
                .iter()
                .all(|k| cfg.get(*k).is_none_or(|v| v != "0"));
            let exists = path == "/var/lib/vz"
                || path.starts_with("/var/lib/vz/")
                || st
                    .storages
                    .values()
                    .any(|c| c.get("path").and_then(Value::as_str) == Some(path.as_str()))
                || pools
                    .iter()
                    .any(|p| path == format!("/{p}") || path.starts_with(&format!("/{p}/")));
            if exists || may_create {
                Ok(())
            } else {
                Err(format!(
                    "unable to activate storage '{id}' - directory '{path}' does not exist or is unreachable"
                ))
            }
        }
        _ => Ok(()),
    }
}

pub(super) fn storage_create(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("storage");
    let ty = r.s("type");
    let (allowed, required) = type_options(&ty).ok_or_else(|| {
        ApiError::e500(format!(
            "storage type '{ty}' is not simulated by labwright-sim"
        ))
    })?;
    for k in r.params.keys() {
        if k != "storage" && k != "type" && !allowed.contains(&k.as_str()) {
            return Err(ApiError::e500(format!("unexpected property '{k}'")));
        }
    }
    for k in required {
        if !r.params.contains_key(*k) {
            return Err(ApiError::e500(format!(
                "missing value for required option '{k}'"
            )));
        }
    }
    inner.with_state(|st| {
        if st.storages.contains_key(&id) {
            return Err(ApiError::e500(format!("storage ID '{id}' already defined")));
        }
        let mut cfg = Obj::new();
        cfg.insert("type".into(), json!(ty));
        for (k, v) in &r.params {
            if k != "storage"
                && k != "type"
                && let Some(s) = v.as_str()
            {
                cfg.insert(k.clone(), json!(s));
            }
        }
        if let Some(c) = cfg.get("content").and_then(Value::as_str) {
            let kept = supported_content(&ty, c)
                .map_err(|e| ApiError::e500(format!("create storage failed: {e}")))?;
            cfg.insert("content".into(), json!(kept));
        } else {
            let default = match ty.as_str() {
                "dir" | "nfs" | "cifs" => "images,rootdir,iso,vztmpl,backup,snippets,import",
                "pbs" => "backup",
                _ => "images,rootdir",
            };
            cfg.insert("content".into(), json!(default));
        }
        // The API activates a new storage that is enabled on this node, to find
        // problems at once; a failure leaves storage.cfg unchanged.
        let node = st.nodes.keys().next().cloned().unwrap_or_default();
        let disabled = cfg.get("disable").is_some_and(|v| v == "1");
        if !disabled && storage_on_node(&cfg, &node) {
            activate(st, &node, &id, &cfg)
                .map_err(|e| ApiError::e500(format!("create storage failed: {e}")))?;
        }
        st.storages.insert(id.clone(), cfg);
        Ok(json!({"storage": id, "type": ty}).into())
    })
}

pub(super) fn storage_update(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("storage");
    inner.with_state(|st| {
        let digest = file_digest(st);
        let cfg = st
            .storages
            .get_mut(&id)
            .ok_or_else(|| ApiError::e500(format!("storage '{id}' does not exist")))?;
        if let Some(d) = r.str("digest")
            && d != digest
        {
            return Err(ApiError::e500(
                "update storage failed: detected modified configuration - file changed by other user? Try again.",
            ));
        }
        let ty = cfg
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (allowed, required) = type_options(&ty).unwrap_or((&[], &[]));
        let fixed = fixed_options(&ty);
        let failed = |m: String| ApiError::e500(format!("update storage failed: {m}"));
        let mut set = vec![];
        for (k, v) in &r.params {
            if ["storage", "digest", "delete"].contains(&k.as_str()) {
                continue;
            }
            if !allowed.contains(&k.as_str()) {
                return Err(failed(format!("unexpected property '{k}'")));
            }
            // SectionConfig::check_config on update: fixed options cannot be given at
            // all, not even with their current value.
            if fixed.contains(&k.as_str()) {
                return Err(failed(format!("can't change value of fixed parameter '{k}'")));
            }
            if let Some(s) = v.as_str() {
                let s = if k == "content" {
                    supported_content(&ty, &s).map_err(failed)?
                } else {
                    s
                };
                set.push((k.clone(), s));
            }
        }
        let dels = r.str("delete").map(|d| split_list(&d)).unwrap_or_default();
        for k in &dels {
            if !allowed.contains(&k.as_str()) {
                return Err(failed(format!("no such option '{k}'")));
            }
            if required.contains(&k.as_str()) {
                return Err(failed(format!("unable to delete required option '{k}'")));
            }
            if fixed.contains(&k.as_str()) {
                return Err(failed(format!("unable to delete fixed option '{k}'")));
            }
            if set.iter().any(|(s, _)| s == k) {
                return Err(failed(format!(
                    "cannot set and delete property '{k}' at the same time!"
                )));
            }
        }
        for k in &dels {
            cfg.shift_remove(k);
        }
        for (k, v) in set {
            cfg.insert(k, json!(v));
        }
        Ok(json!({"storage": id, "type": ty}).into())
    })
}
