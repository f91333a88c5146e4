//! Storage configuration and content, uploads and downloads, disks and ZFS pools, backup
//! jobs and vzdump.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::missing;
use super::storage_cfg::{
    can_see, cfg_json, file_digest, storage_create, storage_list, storage_update,
};
use crate::formats::{check_property_string, hash_format, parse_property_string, split_list};
use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{Obj, State, Volume};
use crate::tasks::{self, Spec};
use crate::util::now;

pub fn dispatch(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    match (r.method.as_str(), r.template.as_str()) {
        ("GET", "/storage") => Ok(storage_list(inner, r).into()),
        ("POST", "/storage") => storage_create(inner, r),
        ("GET", "/storage/{storage}") => inner.with_state(|st| {
            let id = r.s("storage");
            let cfg = st.storages.get(&id).ok_or_else(|| ApiError::e500(format!("storage '{id}' does not exist")))?;
            Ok(cfg_json(&id, cfg, &file_digest(st)).into())
        }),
        ("PUT", "/storage/{storage}") => storage_update(inner, r),
        ("DELETE", "/storage/{storage}") => inner.with_state(|st| {
            let id = r.s("storage");
            st.storages.shift_remove(&id).ok_or_else(|| ApiError::e500(format!("storage '{id}' does not exist")))?;
            Ok(Value::Null.into())
        }),
        ("GET", "/nodes/{node}/storage") => Ok(node_storage(inner, r).into()),
        ("GET", "/nodes/{node}/storage/{storage}") => {
            storage_cfg(inner, r)?;
            Ok(json!([{"subdir": "content"}, {"subdir": "status"}, {"subdir": "upload"}, {"subdir": "download-url"}]).into())
        }
        ("GET", "/nodes/{node}/storage/{storage}/status") => {
            let cfg = storage_cfg(inner, r)?;
            inner.with_state(|st| Ok(status_entry(st, &r.node(), &r.s("storage"), &cfg).into()))
        }
        ("GET", "/nodes/{node}/storage/{storage}/content") => content_list(inner, r),
        ("GET", "/nodes/{node}/storage/{storage}/content/{volume}") => inner.with_state(|st| {
            let volid = full_volid(r);
            let v = st.volumes.iter().find(|v| v.volid == volid).ok_or_else(|| ApiError::e500(format!("volume '{volid}' does not exist")))?;
            Ok(json!({"path": volume_path(st, v), "size": v.size, "used": v.size, "format": v.format}).into())
        }),
        ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}") => content_delete(inner, r),
        ("POST", "/nodes/{node}/storage/{storage}/upload") => upload(inner, r, true),
        ("POST", "/nodes/{node}/storage/{storage}/download-url") => upload(inner, r, false),
        ("GET", "/nodes/{node}/disks/list") => disks_list(inner, r),
        ("GET", "/nodes/{node}/disks/zfs") => inner.with_state(|st| {
            let n = st.nodes.get(&r.node()).ok_or_else(|| ApiError::e500("no such node"))?;
            Ok(Value::Array(n.zpools.iter().map(|p| json!({"name": p.get("name"), "size": p.get("size"), "alloc": 0, "free": p.get("size"), "frag": 0, "dedup": 1.0, "health": "ONLINE"})).collect()).into())
        }),
        ("POST", "/nodes/{node}/disks/zfs") => zfs_create(inner, r),
        ("DELETE", "/nodes/{node}/disks/zfs/{name}") => zfs_delete(inner, r),
        ("GET", "/nodes/{node}/disks/zfs/{name}") => inner.with_state(|st| {
            let n = st.nodes.get(&r.node()).ok_or_else(|| ApiError::e500("no such node"))?;
            let name = r.s("name");
            let p = n.zpools.iter().find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str())).ok_or_else(|| ApiError::e500(format!("zpool '{name}' does not exist")))?;
            let devs: Vec<Value> = p.get("devices").and_then(Value::as_array).cloned().unwrap_or_default().iter()
                .map(|d| {
                    let d = d.as_str().unwrap_or("");
                    let name = n.disks.iter().find(|x| x.devpath == d)
                        .map(|x| crate::host::zpool::by_id(&x.model, &x.serial))
                        .unwrap_or_else(|| d.to_string());
                    json!({"name": name.trim_start_matches("/dev/disk/by-id/").trim_start_matches("/dev/"), "state": "ONLINE", "read": 0, "write": 0, "cksum": 0})
                })
                .collect();
            let level = p.get("raidlevel").and_then(Value::as_str).unwrap_or("single");
            let children = if level == "single" { devs } else { vec![json!({"name": format!("{level}-0"), "state": "ONLINE", "read": 0, "write": 0, "cksum": 0, "children": devs})] };
            Ok(json!({"name": name, "state": "ONLINE", "status": "", "action": "", "scan": "none requested", "errors": "No known data errors",
                "children": [{"name": name, "state": "ONLINE", "read": 0, "write": 0, "cksum": 0, "children": children}]}).into())
        }),
        ("GET", "/cluster/backup") => inner.with_state(|st| {
            Ok(Value::Array(st.backup_jobs.iter().map(|(id, j)| job_json(id, j)).collect()).into())
        }),
        ("POST", "/cluster/backup") => job_create(inner, r),
        ("GET", "/cluster/backup/{id}") => inner.with_state(|st| {
            let id = r.s("id");
            let j = st.backup_jobs.get(&id).ok_or_else(|| ApiError::param("id", format!("No such job '{id}'")))?;
            Ok(job_json(&id, j).into())
        }),
        ("PUT", "/cluster/backup/{id}") => job_update(inner, r),
        ("DELETE", "/cluster/backup/{id}") => inner.with_state(|st| {
            let id = r.s("id");
            st.backup_jobs.shift_remove(&id).ok_or_else(|| ApiError::param("id", format!("No such job '{id}'")))?;
            Ok(Value::Null.into())
        }),
        ("POST", "/nodes/{node}/vzdump") => vzdump(inner, r),
        _ => Err(missing(r)),
    }
}

/// Is a storage available on `node` (its `nodes` restriction)?
pub fn storage_on_node(cfg: &Obj, node: &str) -> bool {
    match cfg.get("nodes").and_then(Value::as_str) {
        Some(list) => split_list(list).iter().any(|n| n == node),
        None => true,
    }
}

fn is_shared(cfg: &Obj) -> bool {
    matches!(
        cfg.get("type").and_then(Value::as_str),
        Some("nfs" | "cifs" | "pbs" | "cephfs" | "rbd")
    ) || cfg
        .get("shared")
        .is_some_and(|v| v == &json!(1) || v == &json!("1"))
}

/// (total, used) bytes of a storage on a node.
pub fn usage(st: &State, node: &str, id: &str, cfg: &Obj) -> (u64, u64) {
    let shared = is_shared(cfg);
    let used: u64 = st
        .volumes
        .iter()
        .filter(|v| v.storage == id && (shared || v.node == node))
        .map(|v| v.size)
        .sum();
    let total = match cfg.get("type").and_then(Value::as_str) {
        Some("lvmthin") => 374_538_764_288,
        Some("zfspool") => {
            let pool = cfg.get("pool").and_then(Value::as_str).unwrap_or("");
            st.nodes
                .get(node)
                .and_then(|n| {
                    n.zpools
                        .iter()
                        .find(|p| p.get("name").and_then(Value::as_str) == pool.split('/').next())
                })
                .and_then(|p| p.get("size").and_then(Value::as_u64))
                .unwrap_or(3_770_000_000_000)
        }
        _ => 100_861_726_720,
    };
    (total, used.min(total))
}

fn storage_cfg(inner: &Inner, r: &Req) -> Result<Obj, ApiError> {
    let id = r.s("storage");
    inner.with_state(|st| {
        let c = st
            .storages
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::e500(format!("storage '{id}' does not exist")))?;
        if !storage_on_node(&c, &r.node()) {
            return Err(ApiError::e500(format!(
                "storage '{id}' is not available on node '{}'",
                r.node()
            )));
        }
        Ok(c)
    })
}

fn status_entry(st: &State, node: &str, id: &str, cfg: &Obj) -> Value {
    let enabled = cfg
        .get("disable")
        .is_none_or(|v| v != &json!("1") && v != &json!(1));
    // A storage whose plugin status fails (dataset gone, mount point not mounted) is
    // listed inactive with zero sizes, as PVE's storage_info does.
    let active = enabled && super::storage_cfg::online(st, node, cfg);
    let (total, used) = if active {
        usage(st, node, id, cfg)
    } else {
        (0, 0)
    };
    json!({
        "storage": id, "type": cfg.get("type"), "content": cfg.get("content").cloned().unwrap_or(json!("")),
        "active": if active { 1 } else { 0 }, "enabled": if enabled { 1 } else { 0 },
        "shared": if is_shared(cfg) { 1 } else { 0 },
        "total": total, "used": used, "avail": total - used,
        "used_fraction": if total > 0 { used as f64 / total as f64 } else { 0.0 },
    })
}

fn node_storage(inner: &Inner, r: &Req) -> Value {
    let node = r.node();
    inner.with_state(|st| {
        Value::Array(
            st.storages
                .iter()
                .filter(|(_, c)| storage_on_node(c, &node))
                .filter(|(id, _)| can_see(st, r, id))
                .filter(|(id, _)| r.str("storage").is_none_or(|s| &s == *id))
                .filter(|(_, c)| {
                    r.str("content").is_none_or(|want| {
                        let have =
                            split_list(c.get("content").and_then(Value::as_str).unwrap_or(""));
                        split_list(&want).iter().any(|w| have.contains(w))
                    })
                })
                .map(|(id, c)| status_entry(st, &node, id, c))
                .filter(|e| !r.flag("enabled") || e["enabled"] == 1)
                .collect(),
        )
    })
}

fn volume_path(st: &State, v: &Volume) -> String {
    let cfg = st.storages.get(&v.storage);
    let base = cfg
        .and_then(|c| c.get("path"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = v.volid.split_once(':').map_or("", |x| x.1);
    match cfg.and_then(|c| c.get("type")).and_then(Value::as_str) {
        Some("lvmthin") => format!("/dev/pve/{name}"),
        Some("zfspool") => format!(
            "/dev/zvol/{}/{name}",
            cfg.and_then(|c| c.get("pool"))
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        _ => match name.split_once('/') {
            Some((dir, f)) => format!(
                "{base}/template/{}/{f}",
                if dir == "iso" { "iso" } else { dir }
            ),
            None => format!("{base}/images/{name}"),
        },
    }
}

fn full_volid(r: &Req) -> String {
    let v = r.s("volume");
    if v.contains(':') {
        v
    } else {
        format!("{}:{v}", r.s("storage"))
    }
}

fn content_list(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    storage_cfg(inner, r)?;
    let id = r.s("storage");
    let node = r.node();
    inner.with_state(|st| {
        let shared = st.storages.get(&id).is_some_and(is_shared);
        let list: Vec<Value> = st
            .volumes
            .iter()
            .filter(|v| v.storage == id && (shared || v.node == node))
            .filter(|v| r.str("content").is_none_or(|c| c == v.content))
            .filter(|v| r.str("vmid").is_none_or(|id| v.vmid.map(|x| x.to_string()) == Some(id)))
            .map(|v| {
                let mut e = json!({"volid": v.volid, "format": v.format, "size": v.size, "content": v.content, "ctime": v.ctime});
                if let Some(id) = v.vmid {
                    e["vmid"] = json!(id);
                    if v.content == "images" {
                        e["used"] = json!(v.size);
                    }
                }
                // Backups: the guest type parsed from the archive name, and the notes
                // file when there is one.
                if v.content == "backup" {
                    if v.volid.contains("vzdump-qemu-") {
                        e["subtype"] = json!("qemu");
                    } else if v.volid.contains("vzdump-lxc-") {
                        e["subtype"] = json!("lxc");
                    }
                    if let Some(n) = &v.notes {
                        e["notes"] = json!(n);
                    }
                }
                e
            })
            .collect();
        Ok(Value::Array(list).into())
    })
}

fn content_delete(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let volid = full_volid(r);
    super::require(
        inner,
        r,
        &format!("/storage/{}", r.s("storage")),
        "Datastore.Allocate",
    )?;
    inner.with_state(|st| {
        let v = st
            .volumes
            .iter()
            .find(|v| v.volid == volid)
            .ok_or_else(|| ApiError::e500(format!("volume '{volid}' does not exist")))?;
        if let Some(vmid) = v.vmid {
            let in_use = st.vms.get(&vmid).is_some_and(|vm| {
                vm.conf
                    .values()
                    .any(|c| c.split(',').next() == Some(volid.as_str()))
            });
            if in_use {
                return Err(ApiError::e500(format!(
                    "unable to delete '{volid}' - volume is still in use (referenced by VM {vmid})"
                )));
            }
        }
        Ok(())
    })?;
    let owner_id = inner.with_state(|st| {
        let owner = st
            .volumes
            .iter()
            .find(|v| v.volid == volid)
            .and_then(|v| v.vmid);
        let storage = volid.split(':').next().unwrap_or_default().to_string();
        match owner {
            Some(vmid) => format!("{vmid}@{storage}"),
            None => storage,
        }
    });
    let upid = tasks::spawn(
        inner,
        Spec {
            node: r.node(),
            kind: "imgdel",
            // pve-storage Content.pm: the worker id is `<ownervm>@<storage>` or the
            // storage (a volid holds `:`, which a UPID cannot).
            id: owner_id,
            user: r.who.full(),
            secs: 0.5,
            locks: vec![],
            fail_text: None,
            config_lock: None,
        },
        Box::new(move |st| {
            st.volumes.retain(|v| v.volid != volid);
            Ok(vec![format!("Removed volume '{volid}'")])
        }),
    );
    Ok(json!(upid).into())
}

fn upload(inner: &Arc<Inner>, r: &Req, is_upload: bool) -> Result<Reply, ApiError> {
    let cfg = storage_cfg(inner, r)?;
    let id = r.s("storage");
    let node = r.node();
    let content = r.s("content");
    let ty = cfg
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !matches!(ty.as_str(), "dir" | "nfs" | "cifs" | "cephfs") {
        return Err(ApiError::e500(format!(
            "can't upload to storage type '{ty}', not a file based storage!"
        )));
    }
    let have = split_list(cfg.get("content").and_then(Value::as_str).unwrap_or(""));
    if !have.contains(&content) {
        return Err(ApiError::e500(format!(
            "storage '{id}' is not configured for content-type '{content}'"
        )));
    }
    let filename = r.s("filename");
    let ok_ext = match content.as_str() {
        "iso" => filename.ends_with(".iso") || filename.ends_with(".img"),
        "vztmpl" => [".tar.gz", ".tar.xz", ".tar.zst", ".tar.bz2", ".tar"]
            .iter()
            .any(|e| filename.ends_with(e)),
        "import" => [".ova", ".qcow2", ".raw", ".vmdk"]
            .iter()
            .any(|e| filename.ends_with(e)),
        _ => false,
    };
    if !ok_ext || filename.contains('/') {
        return Err(ApiError::param(
            "filename",
            "invalid filename or wrong extension",
        ));
    }
    let dir = if content == "vztmpl" {
        "vztmpl"
    } else {
        content.as_str()
    };
    let volid = format!("{id}:{dir}/{filename}");
    let size = r.upload.as_ref().map_or(350 << 20, |u| u.size);
    let user_data = r.upload.as_ref().and_then(|u| u.user_data.clone());
    let router_config = r.upload.as_ref().and_then(|u| u.router_config.clone());
    if is_upload && r.upload.is_none() {
        return Err(ApiError::param("filename", "missing file upload"));
    }
    let (kind, secs) = if is_upload {
        ("imgcopy", 1.0)
    } else {
        ("download", 5.0)
    };
    let url = r.s("url");
    // The worker's checks (pve-storage's download_url): the node decompresses gz, lzo,
    // zst and bz2, and only into ISO content.
    let compression = r.str("compression").filter(|_| !is_upload);
    let node2 = node.clone();
    let upid = tasks::spawn(
        inner,
        Spec {
            node,
            kind,
            id: String::new(),
            user: r.who.full(),
            secs,
            locks: vec![],
            fail_text: Some(if is_upload {
                "import failed: checksum verification failed".into()
            } else {
                "download failed: 404 Not Found".into()
            }),
            config_lock: None,
        },
        Box::new(move |st| {
            if let Some(c) = &compression {
                if content != "iso" {
                    return Err(format!("decompression not supported for {content}"));
                }
                if !matches!(c.as_str(), "gz" | "lzo" | "zst" | "bz2") {
                    return Err("no decompression method found".to_string());
                }
            }
            st.volumes.retain(|v| v.volid != volid);
            // An ISO holding an OPNsense config.xml is a router seed (crate::router).
            match router_config.filter(|_| content == "iso") {
                Some(x) => st.router_seeds.insert(volid.clone(), x),
                None => st.router_seeds.remove(&volid),
            };
            st.volumes.push(Volume {
                node: node2,
                storage: id,
                volid: volid.clone(),
                content: content.clone(),
                format: filename.rsplit('.').next().unwrap_or("raw").to_string(),
                size,
                vmid: None,
                ctime: now(),
                user_data,
                imported_from: None,
                ..Default::default()
            });
            Ok(if is_upload {
                vec![
                    format!("target node: proxmox"),
                    format!("file size is: {size}"),
                    format!("finalized upload of '{volid}'"),
                ]
            } else {
                vec![
                    format!("downloading {url} to {volid}"),
                    "download of '…' finished".into(),
                ]
            })
        }),
    );
    Ok(json!(upid).into())
}

fn disks_list(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    inner.with_state(|st| {
        let n = st.nodes.get(&r.node()).ok_or_else(|| ApiError::e500("no such node"))?;
        let unused_only = r.str("type").as_deref() == Some("unused");
        let list: Vec<Value> = n
            .disks
            .iter()
            .filter(|d| !unused_only || d.used.is_none())
            .filter(|d| r.str("type").is_none_or(|t| t == "unused" || t == d.r#type || (t == "journal_disks" && d.used.is_none())))
            .map(|d| {
                let mut e = json!({"devpath": d.devpath, "size": d.size, "model": d.model, "serial": d.serial,
                    "vendor": "ATA     ", "type": d.r#type, "rpm": d.rpm, "wwn": d.wwn, "health": "PASSED",
                    "wearout": if d.r#type == "ssd" { json!(98) } else { json!("N/A") }, "gpt": if d.used.is_some() { 1 } else { 0 },
                    "mounted": 0, "osdid": -1, "osdid-list": null,
                    "by_id_link": crate::host::zpool::by_id(&d.model, &d.serial)});
                if let Some(u) = &d.used {
                    e["used"] = json!(u);
                }
                e
            })
            .collect();
        Ok(Value::Array(list).into())
    })
}

fn zfs_create(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let name = r.s("name");
    let level = r.s("raidlevel");
    let devices = split_list(&r.s("devices"));
    let add_storage = r.flag("add_storage");
    let n = devices.len();
    let count_err = match level.as_str() {
        "single" if n != 1 => Some("please give only one disk for single disk mode".to_string()),
        "mirror" if n < 2 => Some("mirror needs at least 2 disks".into()),
        "raid10" if n < 4 || !n.is_multiple_of(2) => Some(if n < 4 {
            "raid10 needs at least 4 disks".into()
        } else {
            "raid10 needs an even number of disks".into()
        }),
        "raidz" | "draid" if n < 3 => Some(format!("{level} needs at least 3 disks")),
        "raidz2" | "draid2" if n < 4 => Some(format!("{level} needs at least 4 disks")),
        "raidz3" | "draid3" if n < 5 => Some(format!("{level} needs at least 5 disks")),
        _ => None,
    };
    if let Some(e) = count_err {
        return Err(ApiError::e500(e));
    }
    let size = inner.with_state(|st| {
        let nd = st
            .nodes
            .get(&node)
            .ok_or_else(|| ApiError::e500("no such node"))?;
        if nd
            .zpools
            .iter()
            .any(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
        {
            return Err(ApiError::e500(format!(
                "pool '{name}' already exists on node '{node}'"
            )));
        }
        if add_storage && st.storages.contains_key(&name) {
            return Err(ApiError::e500(format!(
                "storage ID '{name}' already defined"
            )));
        }
        let mut sizes = vec![];
        let mut resolved = vec![];
        for d in &devices {
            // `/dev/sdb` or its udev link `/dev/disk/by-id/ata-MODEL_SERIAL`.
            let disk = nd
                .disks
                .iter()
                .find(|x| &x.devpath == d || crate::host::zpool::by_id(&x.model, &x.serial) == *d)
                .ok_or_else(|| ApiError::e500(format!("unable to get device info for '{d}'")))?;
            if disk.used.is_some() {
                return Err(ApiError::e500(format!("device '{d}' is already in use")));
            }
            if resolved.contains(&disk.devpath) {
                return Err(ApiError::e500(format!("device '{d}' is given twice")));
            }
            resolved.push(disk.devpath.clone());
            sizes.push(disk.size);
        }
        let min = sizes.iter().copied().min().unwrap_or(0);
        let usable = match level.as_str() {
            "mirror" => min,
            "raid10" => min * (n as u64 / 2),
            "raidz" | "draid" => min * (n as u64 - 1),
            "raidz2" | "draid2" => min * (n as u64 - 2),
            "raidz3" | "draid3" => min * (n as u64 - 3),
            _ => sizes.iter().sum(),
        };
        Ok((usable, resolved))
    })?;
    let (size, devices) = size;
    let ashift = r.str("ashift").unwrap_or_else(|| "12".into());
    let compression = r.str("compression").unwrap_or_else(|| "on".into());
    let upid = tasks::spawn(
        inner,
        Spec {
            node: node.clone(),
            kind: "zfscreate",
            id: name.clone(),
            user: r.who.full(),
            secs: 3.0,
            locks: vec![],
            fail_text: Some("command '/sbin/zpool create' failed: exit code 1".into()),
            config_lock: None,
        },
        Box::new(move |st| {
            let nd = st.nodes.get_mut(&node).ok_or("no such node")?;
            for d in nd.disks.iter_mut().filter(|d| devices.contains(&d.devpath)) {
                if d.used.is_some() {
                    return Err(format!("device '{}' is already in use", d.devpath));
                }
                d.used = Some("ZFS".into());
            }
            let mut p = Obj::new();
            p.insert("name".into(), json!(name));
            p.insert("raidlevel".into(), json!(level));
            p.insert("devices".into(), json!(devices));
            p.insert("size".into(), json!(size));
            p.insert("ashift".into(), json!(ashift));
            p.insert("compression".into(), json!(compression));
            nd.zpools.push(p);
            crate::host::zfs::create_pool_root(nd, &name, &compression);
            let log = vec![
                format!(
                    "# /sbin/zpool create -o ashift={ashift} {name} {} {}",
                    if level == "single" {
                        ""
                    } else {
                        level.as_str()
                    },
                    devices.join(" ")
                ),
                format!("# /sbin/zfs set compression={compression} {name}"),
                format!("# systemctl enable zfs-import@{name}.service"),
            ];
            if add_storage {
                let mut s = Obj::new();
                s.insert("type".into(), json!("zfspool"));
                s.insert("pool".into(), json!(name));
                s.insert("content".into(), json!("images,rootdir"));
                s.insert("nodes".into(), json!(node));
                st.storages.insert(name.clone(), s);
            }
            Ok(log)
        }),
    );
    Ok(json!(upid).into())
}

/// `DELETE …/disks/zfs/{name}`: destroys the pool (a task), optionally wiping the disks
/// and removing storages that use it.
fn zfs_delete(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let name = r.s("name");
    let cleanup_config = r.flag("cleanup-config");
    let cleanup_disks = r.flag("cleanup-disks");
    if cleanup_config {
        super::require(inner, r, "/storage", "Datastore.Allocate")?;
    }
    inner.with_state(|st| {
        let nd = st
            .nodes
            .get(&node)
            .ok_or_else(|| ApiError::e500("no such node"))?;
        if !nd
            .zpools
            .iter()
            .any(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
        {
            return Err(ApiError::e500(format!("zpool '{name}' does not exist")));
        }
        let users: Vec<String> = st
            .storages
            .iter()
            .filter(|(_, c)| {
                c.get("pool")
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.split('/').next() == Some(name.as_str()))
            })
            .map(|(id, _)| id.clone())
            .collect();
        if st
            .volumes
            .iter()
            .any(|v| users.contains(&v.storage) && v.node == node)
        {
            return Err(ApiError::e500(format!(
                "cannot destroy '{name}': pool is busy"
            )));
        }
        Ok(())
    })?;
    let upid = tasks::spawn(
        inner,
        Spec {
            node: node.clone(),
            kind: "zfsremove",
            id: name.clone(),
            user: r.who.full(),
            secs: 2.0,
            locks: vec![],
            fail_text: None,
            config_lock: None,
        },
        Box::new(move |st| {
            let nd = st.nodes.get_mut(&node).ok_or("no such node")?;
            let Some(i) = nd
                .zpools
                .iter()
                .position(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
            else {
                return Err(format!("zpool '{name}' does not exist"));
            };
            let pool = nd.zpools.remove(i);
            crate::host::zfs::destroy_pool(nd, &name);
            let devices: Vec<String> = pool
                .get("devices")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            for d in nd.disks.iter_mut().filter(|d| devices.contains(&d.devpath)) {
                d.used = if cleanup_disks {
                    None
                } else {
                    Some("ZFS".into())
                };
            }
            if cleanup_config {
                st.storages.retain(|_, c| {
                    c.get("pool")
                        .and_then(Value::as_str)
                        .is_none_or(|p| p.split('/').next() != Some(name.as_str()))
                });
            }
            Ok(vec![format!("# /sbin/zpool destroy {name}")])
        }),
    );
    Ok(json!(upid).into())
}

/// Job config as GET returns it: property strings become objects (the string/object
/// duality of `prune-backups`, `fleecing`, `performance`).
fn job_json(id: &str, j: &Obj) -> Value {
    let mut m: Map<String, Value> = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("type".into(), json!("vzdump"));
    for (k, v) in j {
        let fmt = match k.as_str() {
            "prune-backups" => hash_format("prune-backups"),
            "fleecing" => hash_format("backup-fleecing"),
            "performance" => hash_format("backup-performance"),
            _ => None,
        };
        match (fmt, v.as_str()) {
            (Some(f), Some(s)) => {
                let parsed = parse_property_string(s, &f).unwrap_or_default();
                let obj: Map<String, Value> = parsed
                    .into_iter()
                    .map(|(k2, v2)| {
                        let val = v2
                            .parse::<i64>()
                            .map(Value::from)
                            .unwrap_or(Value::String(v2));
                        (k2, val)
                    })
                    .collect();
                m.insert(k.clone(), Value::Object(obj));
            }
            _ => {
                let val = match k.as_str() {
                    "enabled" | "all" | "repeat-missed" | "protected" | "remove"
                    | "stdexcludes" => v
                        .as_str()
                        .and_then(|s| s.parse::<i64>().ok())
                        .map(Value::from)
                        .unwrap_or(v.clone()),
                    _ => v.clone(),
                };
                m.insert(k.clone(), val);
            }
        }
    }
    m.entry("enabled").or_insert(json!(1));
    if m.get("enabled") == Some(&json!(1)) && m.contains_key("schedule") {
        m.insert(
            "next-run".into(),
            json!(now() / 86400 * 86400 + 86400 + 7200),
        );
    }
    Value::Object(m)
}

fn job_checks(r: &Req, existing: Option<&Obj>) -> Result<(), ApiError> {
    let has = |k: &str| r.params.contains_key(k) || existing.is_some_and(|e| e.contains_key(k));
    if r.params.contains_key("vmid") {
        for k in ["all", "exclude", "pool"] {
            if r.params.contains_key(k) && !(k == "all" && r.str("all").as_deref() == Some("0")) {
                return Err(ApiError::param(k, "option conflicts with option 'vmid'"));
            }
        }
    }
    let all = has("all") && r.str("all").as_deref() != Some("0");
    if !(has("vmid") || all || has("pool")) {
        return Err(ApiError::param("vmid", "property is missing"));
    }
    if r.params.contains_key("schedule") && r.params.contains_key("starttime") {
        return Err(ApiError::param(
            "starttime",
            "'starttime' and 'schedule' cannot both be set",
        ));
    }
    if existing.is_none() && !has("schedule") && !has("starttime") {
        return Err(ApiError::param(
            "schedule",
            "neither 'starttime' nor 'schedule' were set",
        ));
    }
    for k in ["tmpdir", "dumpdir", "script", "job-id"] {
        if r.params.contains_key(k) && r.who.user != "root@pam" {
            return Err(ApiError::param(k, "Only root may set this option."));
        }
    }
    Ok(())
}

fn job_create(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    job_checks(r, None)?;
    inner.with_state(|st| {
        let id = match r.str("id") {
            Some(i) => i,
            None => {
                st.serial += 1;
                format!("backup-{}", &crate::util::uuid_for(st.serial, 0xb4c)[..13])
            }
        };
        if st.backup_jobs.contains_key(&id) {
            return Err(ApiError::e500(format!("Job '{id}' already exists")));
        }
        if let Some(s) = r.str("storage")
            && !st.storages.contains_key(&s)
        {
            return Err(ApiError::e500(format!("storage '{s}' does not exist")));
        }
        let mut j = Obj::new();
        for (k, v) in &r.params {
            if k != "id"
                && let Some(s) = v.as_str()
            {
                j.insert(k.clone(), json!(s));
            }
        }
        st.backup_jobs.insert(id, j);
        Ok(Value::Null.into())
    })
}

fn job_update(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    let id = r.s("id");
    inner.with_state(|st| {
        let existing = st
            .backup_jobs
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::param("id", format!("No such job '{id}'")))?;
        job_checks(r, Some(&existing))?;
        let j = st
            .backup_jobs
            .get_mut(&id)
            .ok_or_else(|| ApiError::param("id", format!("No such job '{id}'")))?;
        if let Some(del) = r.str("delete") {
            for k in split_list(&del) {
                j.shift_remove(&k);
            }
        }
        for (k, v) in &r.params {
            if k != "id"
                && k != "delete"
                && let Some(s) = v.as_str()
            {
                j.insert(k.clone(), json!(s));
            }
        }
        if r.params.contains_key("vmid") {
            j.shift_remove("all");
            j.shift_remove("exclude");
            j.shift_remove("pool");
        }
        Ok(Value::Null.into())
    })
}

fn vzdump(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let storage = r.str("storage").unwrap_or_else(|| "local".into());
    if let Some(p) = r.str("prune-backups")
        && let Some(f) = hash_format("prune-backups")
    {
        check_property_string(&p, &f, Some("prune-backups"), "prune-backups")
            .map_err(|e| ApiError::param("prune-backups", format!("invalid format - {e}")))?;
    }
    let vmids: Vec<u32> = inner.with_state(|st| {
        if !st.storages.contains_key(&storage) {
            return Err(ApiError::e500(format!(
                "storage '{storage}' does not exist"
            )));
        }
        Ok(if r.flag("all") {
            let ex = split_list(&r.s("exclude"));
            st.vms
                .values()
                .filter(|v| v.node == node && !ex.contains(&v.vmid.to_string()))
                .map(|v| v.vmid)
                .collect()
        } else {
            split_list(&r.s("vmid"))
                .iter()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
    })?;
    super::require(
        inner,
        r,
        &format!("/storage/{storage}"),
        "Datastore.AllocateSpace",
    )?;
    for id in &vmids {
        super::require(inner, r, &format!("/vms/{id}"), "VM.Backup")?;
    }
    let mode = r.str("mode").unwrap_or_else(|| "snapshot".into());
    let notes_template = r.str("notes-template");
    let cluster = inner.with_state(|st| st.cluster_name.clone());
    let node2 = node.clone();
    let upid = tasks::spawn(
        inner,
        Spec {
            node,
            kind: "vzdump",
            id: vmids.first().map(u32::to_string).unwrap_or_default(),
            user: r.who.full(),
            secs: 4.0 + vmids.len() as f64,
            locks: vec![],
            fail_text: Some("job errors".into()),
            config_lock: None,
        },
        Box::new(move |st| {
            let mut log = vec![format!(
                "INFO: starting new backup job: vzdump {} --mode {mode} --storage {storage}",
                vmids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            )];
            let mut errors = false;
            let stamp = time::OffsetDateTime::now_utc();
            let ts = format!(
                "{:04}_{:02}_{:02}-{:02}_{:02}_{:02}",
                stamp.year(),
                u8::from(stamp.month()),
                stamp.day(),
                stamp.hour(),
                stamp.minute(),
                stamp.second()
            );
            for id in &vmids {
                match st.vms.get(id) {
                    Some(vm) if vm.conf.contains_key("lock") => {
                        log.push(format!(
                            "ERROR: Backup of VM {id} failed - VM is locked ({})",
                            vm.conf.get("lock").cloned().unwrap_or_default()
                        ));
                        errors = true;
                    }
                    Some(vm) => {
                        let size = crate::api::qemu::disk_sizes(&vm.conf) / 10;
                        let notes = notes_template.as_ref().map(|t| {
                            t.replace(
                                "{{guestname}}",
                                vm.conf.get("name").map_or("", |s| s.as_str()),
                            )
                            .replace("{{vmid}}", &id.to_string())
                            .replace("{{node}}", &node2)
                            .replace("{{cluster}}", cluster.as_deref().unwrap_or(""))
                            .replace("\\n", "\n")
                        });
                        let volid = format!("{storage}:backup/vzdump-qemu-{id}-{ts}.vma.zst");
                        st.volumes.push(Volume {
                            node: node2.clone(),
                            storage: storage.clone(),
                            volid: volid.clone(),
                            content: "backup".into(),
                            format: "vma.zst".into(),
                            size,
                            vmid: Some(*id),
                            ctime: now(),
                            user_data: None,
                            imported_from: None,
                            notes,
                        });
                        log.push(format!("INFO: Starting Backup of VM {id} (qemu)"));
                        log.push(format!("INFO: creating vzdump archive '{volid}'"));
                        log.push(format!("INFO: Finished Backup of VM {id}"));
                    }
                    None => {
                        log.push(format!(
                            "ERROR: Backup of VM {id} failed - unable to find VM '{id}'"
                        ));
                        errors = true;
                    }
                }
            }
            if errors {
                return Err("job errors".into());
            }
            log.push("INFO: Backup job finished successfully".into());
            Ok(log)
        }),
    );
    Ok(json!(upid).into())
}
