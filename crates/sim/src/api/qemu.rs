//! QEMU guests: create, config (digest, pending, hotplug), destroy, power, snapshots,
//! resize and the guest agent with a small simulated guest.

use std::sync::Arc;

use base64::Engine;
use indexmap::IndexMap;
use serde_json::{Value, json};

use super::missing;
use crate::formats::{format_size, parse_property_string, parse_size, parse_volid, split_list};
use crate::guestnet::Lan;
use crate::schema::{PVal, prop_format, qemu_config_prop, typed_config_value};
use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{ExecResult, State, Vm, Volume};
use crate::tasks::{self, Spec, vm_lock};

use super::snapshot::{
    snap_exists, snapshot_create, snapshot_delete, snapshot_list, snapshot_rollback,
};
use crate::util::{mac_for, now, now_f, render_conf, sha1_hex, truthy, uuid_for};

/// Request keys of create/config that are not VM options.
const NON_CONFIG: &[&str] = &[
    "node",
    "vmid",
    "digest",
    "delete",
    "revert",
    "skiplock",
    "force",
    "background_delay",
    "archive",
    "bwlimit",
    "live-restore",
    "pool",
    "start",
    "storage",
    "unique",
    "import-working-storage",
];

/// Options applied at once even while the VM runs (behaviour.md §6.2).
const FAST_PLUG: &[&str] = &[
    "description",
    "hookscript",
    "lock",
    "migrate_downtime",
    "migrate_speed",
    "name",
    "onboot",
    "protection",
    "shares",
    "startup",
    "tags",
    "vmstatestorage",
    "ciuser",
    "cipassword",
    "citype",
    "ciupgrade",
    "cicustom",
    "searchdomain",
    "nameserver",
    "sshkeys",
];

pub fn is_drive(k: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"^((ide|sata|scsi|virtio)\d+|efidisk0|tpmstate0)$")
            .unwrap_or_else(|_| crate::schema::never_regex())
    })
    .is_match(k)
}

fn is_fast_plug(k: &str) -> bool {
    FAST_PLUG.contains(&k) || k.starts_with("ipconfig")
}

/// Sum of the `size=` of all disks, in bytes.
pub fn disk_sizes(conf: &IndexMap<String, String>) -> u64 {
    conf.iter()
        .filter(|(k, v)| is_drive(k) && !v.contains("media=cdrom"))
        .filter_map(|(_, v)| {
            v.split(',')
                .find_map(|p| p.strip_prefix("size="))
                .and_then(parse_size)
        })
        .sum()
}

pub async fn dispatch(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let t = r.template.as_str();
    match (r.method.as_str(), t) {
        ("GET", "/nodes/{node}/qemu") => Ok(list(inner, r).into()),
        ("POST", "/nodes/{node}/qemu") => create(inner, r),
        ("GET", "/nodes/{node}/qemu/{vmid}") => {
            inner.with_state(|st| st.vm(&r.node(), r.vmid()).map(|_| ()))?;
            Ok(json!([{"subdir": "config"}, {"subdir": "pending"}, {"subdir": "status"},
                {"subdir": "snapshot"}, {"subdir": "agent"}, {"subdir": "firewall"}, {"subdir": "resize"}]).into())
        }
        ("DELETE", "/nodes/{node}/qemu/{vmid}") => destroy(inner, r),
        ("GET", "/nodes/{node}/qemu/{vmid}/config") => get_config(inner, r),
        ("POST", "/nodes/{node}/qemu/{vmid}/config") => update_config(inner, r, true).await,
        ("PUT", "/nodes/{node}/qemu/{vmid}/config") => update_config(inner, r, false).await,
        ("GET", "/nodes/{node}/qemu/{vmid}/pending") => pending(inner, r),
        ("PUT", "/nodes/{node}/qemu/{vmid}/resize") => resize(inner, r),
        // qemu-server `unlink`: `idlist` becomes `delete` of a synchronous config update
        // (`force` destroys the volumes instead of leaving them as unusedN).
        ("PUT", "/nodes/{node}/qemu/{vmid}/unlink") => {
            let mut params = r.params.clone();
            if let Some(ids) = params.shift_remove("idlist") {
                params.insert("delete".into(), ids);
            }
            let r2 = Req {
                method: "PUT".into(),
                template: "/nodes/{node}/qemu/{vmid}/config".into(),
                params,
                who: r.who.clone(),
                upload: None,
            };
            update_config(inner, &r2, false).await
        }
        ("POST", "/nodes/{node}/qemu/{vmid}/clone") => clone(inner, r),
        ("POST", "/nodes/{node}/qemu/{vmid}/template") => template(inner, r),
        // The cloud-init drive is regenerated from the current config at once; nothing
        // is ever pending for it.
        ("GET", "/nodes/{node}/qemu/{vmid}/cloudinit") => inner.with_state(|st| {
            let vm = st.vm(&r.node(), r.vmid())?;
            let keys = ["ciuser", "cipassword", "citype", "ciupgrade", "cicustom", "nameserver", "searchdomain", "sshkeys"];
            let out: Vec<Value> = vm
                .conf
                .iter()
                .filter(|(k, _)| keys.contains(&k.as_str()) || k.starts_with("ipconfig"))
                .map(|(k, v)| json!({"key": k, "value": if k == "cipassword" { "**********" } else { v.as_str() }}))
                .collect();
            Ok(Value::Array(out).into())
        }),
        ("PUT", "/nodes/{node}/qemu/{vmid}/cloudinit") => inner.with_state(|st| {
            st.vm(&r.node(), r.vmid())?;
            Ok(Value::Null.into())
        }),
        ("GET", "/nodes/{node}/qemu/{vmid}/status") => {
            inner.with_state(|st| st.vm(&r.node(), r.vmid()).map(|_| ()))?;
            Ok(json!([{"subdir": "current"}, {"subdir": "start"}, {"subdir": "stop"},
                {"subdir": "shutdown"}, {"subdir": "reboot"}]).into())
        }
        ("GET", "/nodes/{node}/qemu/{vmid}/status/current") => current(inner, r),
        ("POST", "/nodes/{node}/qemu/{vmid}/status/start") => power(inner, r, "qmstart"),
        ("POST", "/nodes/{node}/qemu/{vmid}/status/stop") => power(inner, r, "qmstop"),
        ("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown") => power(inner, r, "qmshutdown"),
        ("POST", "/nodes/{node}/qemu/{vmid}/status/reboot") => power(inner, r, "qmreboot"),
        ("POST", "/nodes/{node}/qemu/{vmid}/status/reset") => power(inner, r, "qmreset"),
        ("POST", "/nodes/{node}/qemu/{vmid}/status/suspend") => power(inner, r, "qmsuspend"),
        ("POST", "/nodes/{node}/qemu/{vmid}/status/resume") => power(inner, r, "qmresume"),
        ("PUT", "/nodes/{node}/qemu/{vmid}/sendkey") => super::qemu_net::sendkey(inner, r),
        ("GET", "/nodes/{node}/qemu/{vmid}/snapshot") => snapshot_list(inner, r),
        ("POST", "/nodes/{node}/qemu/{vmid}/snapshot") => snapshot_create(inner, r),
        ("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}") => {
            snap_exists(inner, r)?;
            Ok(json!([{"cmd": "rollback"}, {"cmd": "config"}]).into())
        }
        ("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}") => snapshot_delete(inner, r),
        ("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config") => {
            let snap = snap_exists(inner, r)?;
            let mut v = conf_json(&snap.conf);
            v["snaptime"] = json!(snap.snaptime);
            if !snap.description.is_empty() {
                v["description"] = json!(snap.description);
            }
            if let Some(p) = &snap.parent {
                v["parent"] = json!(p);
            }
            Ok(v.into())
        }
        ("PUT", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config") => {
            snap_exists(inner, r)?;
            inner.with_state(|st| {
                let vm = st.vm_mut(&r.node(), r.vmid())?;
                if let Some(s) = vm.snapshots.get_mut(&r.s("snapname"))
                    && let Some(d) = r.str("description") {
                        s.description = d;
                    }
                Ok::<_, String>(())
            })?;
            Ok(Value::Null.into())
        }
        ("POST", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback") => snapshot_rollback(inner, r),
        ("GET", "/nodes/{node}/qemu/{vmid}/agent") => Ok(json!([
            {"name": "exec"}, {"name": "exec-status"}, {"name": "file-read"}, {"name": "file-write"},
            {"name": "get-host-name"}, {"name": "get-osinfo"}, {"name": "info"},
            {"name": "network-get-interfaces"}, {"name": "ping"}]).into()),
        _ if t.starts_with("/nodes/{node}/qemu/{vmid}/agent/") => agent(inner, r),
        _ => Err(missing(r)),
    }
}

fn list(inner: &Inner, r: &Req) -> Value {
    let node = r.node();
    inner.with_state(|st| {
        let t = now();
        st.vms
            .values()
            .filter(|v| v.node == node)
            .filter(|v| crate::auth::has(st, &r.who, &format!("/vms/{}", v.vmid), "VM.Audit"))
            .map(|vm| {
                let maxmem = super::cluster::vm_maxmem(vm.conf.get("memory"));
                let mut e = json!({
                    "vmid": vm.vmid,
                    "name": vm.conf.get("name").cloned().unwrap_or_else(|| format!("VM {}", vm.vmid)),
                    "status": if vm.running { "running" } else { "stopped" },
                    "cpus": vm.conf.get("cores").and_then(|c| c.parse::<u64>().ok()).unwrap_or(1),
                    "maxmem": maxmem, "mem": if vm.running { maxmem / 3 } else { 0 },
                    "maxdisk": disk_sizes(&vm.conf), "disk": 0,
                    "uptime": if vm.running { t.saturating_sub(vm.started_at) } else { 0 },
                    "cpu": 0, "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
                });
                if vm.running {
                    e["pid"] = json!(100_000 + vm.vmid);
                }
                if let Some(tags) = vm.conf.get("tags") {
                    e["tags"] = json!(tags);
                }
                if let Some(l) = vm.conf.get("lock") {
                    e["lock"] = json!(l);
                }
                if truthy(vm.conf.get("template")) {
                    e["template"] = json!(1);
                }
                if r.flag("full") {
                    e["qmpstatus"] = json!(if vm.running { "running" } else { "stopped" });
                    if vm.running {
                        e["running-qemu"] = json!("10.1.2");
                        e["running-machine"] = json!("pc-i440fx-10.1+pve0");
                    }
                }
                e
            })
            .collect()
    })
}

/// The config file text (current section, pending, snapshots) and its SHA-1.
pub fn digest(vm: &Vm) -> String {
    let mut text = render_conf(&vm.conf);
    if !vm.pending.is_empty() || !vm.pending_delete.is_empty() {
        text.push_str("\n[PENDING]\n");
        let mut p = vm.pending.clone();
        if !vm.pending_delete.is_empty() {
            p.insert("delete".into(), vm.pending_delete.join(","));
        }
        text.push_str(&render_conf(&p));
    }
    for (name, s) in &vm.snapshots {
        text.push_str(&format!("\n[{name}]\n"));
        text.push_str(&render_conf(&s.conf));
        text.push_str(&format!("snaptime: {}\n", s.snaptime));
    }
    sha1_hex(&text)
}

/// Config with pending values applied (the default view of `GET …/config`).
fn effective(vm: &Vm) -> IndexMap<String, String> {
    let mut c = vm.conf.clone();
    for (k, v) in &vm.pending {
        c.insert(k.clone(), v.clone());
    }
    for k in &vm.pending_delete {
        c.shift_remove(k);
    }
    c
}

/// JSON view of a config: PVE's typing (integers and booleans as numbers, the rest as
/// strings) and the masked password.
pub(super) fn conf_json(conf: &IndexMap<String, String>) -> Value {
    let mut m = serde_json::Map::new();
    let mut keys: Vec<&String> = conf.keys().collect();
    keys.sort();
    for k in keys {
        let v = &conf[k];
        let val = if k == "cipassword" {
            json!("**********")
        } else if k == "parent" || k == "lock" {
            json!(v)
        } else {
            typed_config_value(qemu_config_prop(k), v)
        };
        m.insert(k.clone(), val);
    }
    Value::Object(m)
}

fn get_config(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    inner.with_state(|st| {
        let vm = st.vm(&r.node(), r.vmid())?;
        if let Some(s) = r.str("snapshot") {
            let snap = vm
                .snapshots
                .get(&s)
                .ok_or_else(|| ApiError::e500(format!("snapshot '{s}' does not exist")))?;
            return Ok(conf_json(&snap.conf).into());
        }
        let conf = if r.flag("current") {
            vm.conf.clone()
        } else {
            effective(vm)
        };
        let mut v = conf_json(&conf);
        v["digest"] = json!(digest(vm));
        Ok(v.into())
    })
}

fn pending(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    inner.with_state(|st| {
        let vm = st.vm(&r.node(), r.vmid())?;
        let mut keys: Vec<String> = vm.conf.keys().chain(vm.pending.keys()).cloned().collect();
        keys.extend(vm.pending_delete.iter().cloned());
        keys.sort();
        keys.dedup();
        // config_with_pending_array walks the loaded config, which carries `digest`.
        let mut out: Vec<Value> = vec![json!({"key": "digest", "value": digest(vm)})];
        out.extend(
            keys.iter()
                .filter(|k| *k != "lock" || vm.conf.contains_key("lock"))
                .map(|k| {
                    let mut e = json!({"key": k});
                    let ty = |v: &String| {
                        if k == "cipassword" {
                            json!("**********")
                        } else {
                            typed_config_value(qemu_config_prop(k), v)
                        }
                    };
                    if let Some(v) = vm.conf.get(k) {
                        e["value"] = ty(v);
                    }
                    if let Some(p) = vm.pending.get(k) {
                        e["pending"] = ty(p);
                    }
                    if vm.pending_delete.contains(k) {
                        e["delete"] = json!(1);
                    }
                    e
                }),
        );
        Ok(Value::Array(out).into())
    })
}

/// Drive properties (parsed), using the schema's format of that slot.
pub(super) fn drive_props(key: &str, value: &str) -> Option<IndexMap<String, String>> {
    let fmt = prop_format(qemu_config_prop(key)?)?;
    parse_property_string(value, &fmt).ok()
}

pub(super) fn render_drive(file: &str, props: &IndexMap<String, String>) -> String {
    let mut keys: Vec<&String> = props.keys().filter(|k| *k != "file").collect();
    keys.sort();
    let mut out = file.to_string();
    for k in keys {
        out.push(',');
        out.push_str(k);
        out.push('=');
        out.push_str(&props[k]);
    }
    out
}

fn storage_supports(st: &State, storage: &str, content: &str) -> Result<(), ApiError> {
    let cfg = st
        .storages
        .get(storage)
        .ok_or_else(|| ApiError::e500(format!("storage '{storage}' does not exist")))?;
    let c = cfg.get("content").and_then(Value::as_str).unwrap_or("");
    if !split_list(c).iter().any(|x| x == content) {
        return Err(ApiError::param(
            "storage",
            format!("storage '{storage}' does not support vm images"),
        ));
    }
    Ok(())
}

pub(super) fn next_disk_name(st: &State, storage: &str, vmid: u32, suffix: &str) -> String {
    let mut n = 0;
    loop {
        let volid = format!("{storage}:vm-{vmid}-disk-{n}{suffix}");
        if !st.volumes.iter().any(|v| v.volid == volid) {
            return volid;
        }
        n += 1;
    }
}

/// Normalises one config value the way PVE stores it, allocating disks when asked.
/// Returns the stored value and volumes to create.
fn normalise_value(
    st: &mut State,
    node: &str,
    vmid: u32,
    key: &str,
    value: &str,
) -> Result<(String, Vec<Volume>), ApiError> {
    let mut vols = vec![];
    if key.starts_with("virtiofs") {
        // The share must be mapped on the VM's node (PVE finds out at the latest when
        // the VM starts; refusing here keeps a broken VM config from being written).
        super::mapping::find_on_node(st, &super::mapping::dirid(value), node)
            .map_err(|e| ApiError::param(key, e))?;
        return Ok((value.to_string(), vols));
    }
    if key.starts_with("net") && key[3..].chars().all(|c| c.is_ascii_digit()) {
        let Some(mut p) = qemu_config_prop(key)
            .and_then(prop_format)
            .and_then(|f| parse_property_string(value, &f).ok())
        else {
            return Ok((value.to_string(), vols));
        };
        let model = p.shift_remove("model").unwrap_or_else(|| "virtio".into());
        p.shift_remove(&model);
        let mac = match p.shift_remove("macaddr") {
            Some(m) => m,
            None => {
                st.serial += 1;
                mac_for(st.serial ^ (u64::from(vmid) << 20))
            }
        };
        // print_net is print_property_string over $net_fmt: the model (the default
        // key, carrying the MAC) first, then every other option sorted by key.
        let mut out = format!("{model}={mac}");
        p.sort_keys();
        for (k, v) in p {
            out.push_str(&format!(",{k}={v}"));
        }
        return Ok((out, vols));
    }
    if key == "tags" {
        let mut tags: Vec<String> = split_list(value)
            .into_iter()
            .map(|t| t.to_lowercase())
            .collect();
        tags.sort();
        tags.dedup();
        return Ok((tags.join(";"), vols));
    }
    if is_drive(key) {
        let Some(mut p) = drive_props(key, value) else {
            return Ok((value.to_string(), vols));
        };
        let file = p.shift_remove("file").unwrap_or_default();
        let media_cdrom = p.get("media").is_some_and(|m| m == "cdrom");
        if let Some((storage, vol)) = parse_volid(&file) {
            static ALLOC: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
            let alloc = ALLOC.get_or_init(|| {
                regex::Regex::new(r"^(\d+(\.\d+)?)$")
                    .unwrap_or_else(|_| crate::schema::never_regex())
            });
            if vol == "cloudinit" {
                storage_supports(st, &storage, "images")?;
                let volid = format!("{storage}:vm-{vmid}-cloudinit");
                vols.push(Volume {
                    node: node.into(),
                    storage: storage.clone(),
                    volid: volid.clone(),
                    content: "images".into(),
                    format: "raw".into(),
                    size: 4 << 20,
                    vmid: Some(vmid),
                    ctime: now(),
                    user_data: None,
                    imported_from: None,
                    ..Default::default()
                });
                p.insert("media".into(), "cdrom".into());
                return Ok((render_drive(&volid, &p), vols));
            }
            if alloc.is_match(&vol) {
                let import = p.shift_remove("import-from");
                // create_disks: `delete $disk->{format}; # no longer needed`.
                p.shift_remove("format");
                let gib: f64 = vol.parse().unwrap_or(0.0);
                if import.is_some() && gib != 0.0 {
                    return Err(ApiError::param(
                        key,
                        "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>",
                    ));
                }
                storage_supports(st, &storage, "images")?;
                let size = match &import {
                    Some(src) => {
                        let v = st.volumes.iter().find(|v| &v.volid == src).cloned();
                        match v {
                            Some(v) if v.content == "images" || v.content == "import" => {
                                v.size.max(1 << 30)
                            }
                            Some(v) => {
                                return Err(ApiError::param(
                                    key,
                                    format!(
                                        "{src} has wrong type '{}' - needs to be 'images' or 'import'",
                                        v.content
                                    ),
                                ));
                            }
                            None => {
                                return Err(ApiError::e500(format!(
                                    "volume '{src}' does not exist"
                                )));
                            }
                        }
                    }
                    None if key == "efidisk0" => 1 << 20,
                    None if key == "tpmstate0" => 4 << 20,
                    None => (gib * (1u64 << 30) as f64) as u64,
                };
                let volid = next_disk_name(st, &storage, vmid, "");
                // The disk keeps its source image (or the one its source came from).
                let imported_from = import.as_ref().map(|src| {
                    st.volumes
                        .iter()
                        .find(|v| &v.volid == src)
                        .and_then(|v| v.imported_from.clone())
                        .unwrap_or_else(|| src.clone())
                });
                st.volumes.push(Volume {
                    node: node.into(),
                    storage: storage.clone(),
                    volid: volid.clone(),
                    content: "images".into(),
                    format: "raw".into(),
                    size,
                    vmid: Some(vmid),
                    ctime: now(),
                    user_data: None,
                    imported_from,
                    ..Default::default()
                });
                p.insert("size".into(), format_size(size));
                return Ok((render_drive(&volid, &p), vols));
            }
            let is_iso = vol.starts_with("iso/") || vol.ends_with(".iso");
            if is_iso && !media_cdrom {
                return Err(ApiError::param(
                    key,
                    "explicit 'media=cdrom' is required for iso images",
                ));
            }
            if !is_iso && !st.volumes.iter().any(|v| v.volid == file) && !vol.starts_with("vm-") {
                return Err(ApiError::e500(format!("volume '{file}' does not exist")));
            }
            return Ok((render_drive(&file, &p), vols));
        }
        return Ok((render_drive(&file, &p), vols));
    }
    Ok((value.to_string(), vols))
}

fn config_params(r: &Req) -> Vec<(String, String)> {
    r.params
        .iter()
        .filter(|(k, _)| !NON_CONFIG.contains(&k.as_str()))
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s)))
        .collect()
}

pub(super) fn check_root_only(r: &Req, keys: &[&str]) -> Result<(), ApiError> {
    for k in keys {
        if r.params.contains_key(*k) && !r.who.is_root_ticket() {
            return Err(ApiError::param(k, "Only root may use this option."));
        }
    }
    Ok(())
}

fn create(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let vmid = r.vmid();
    if r.params.contains_key("archive") {
        return Err(ApiError::new(
            501,
            "restore from archive is not simulated by labwright-sim",
        ));
    }
    let start_after = r.flag("start");
    let pool = r.str("pool");
    let params = config_params(r);
    super::pci::check_perm(inner, r, &params)?;
    match r.str("pool") {
        Some(pool) if super::require(inner, r, &format!("/pool/{pool}"), "VM.Allocate").is_ok() => {
        }
        _ => super::require(inner, r, &format!("/vms/{vmid}"), "VM.Allocate")?,
    }
    for (k, v) in &params {
        if is_drive(k)
            && let Some((s, vol)) = v.split(',').next().and_then(parse_volid)
            && (vol.parse::<f64>().is_ok() || vol == "cloudinit")
        {
            super::require(
                inner,
                r,
                &format!("/storage/{s}"),
                "Datastore.AllocateSpace",
            )?;
        }
    }
    let storages: Vec<String> = inner.with_state(|st| {
        if let Some(vm) = st.vms.get(&vmid) {
            return Err(ApiError::e500(format!(
                "unable to create VM {vmid} - VM {vmid} already exists on node '{}'",
                vm.node
            )));
        }
        // Synchronous drive checks (storage, iso media) before forking.
        for (k, v) in &params {
            if is_drive(k)
                && let Some(p) = drive_props(k, v)
            {
                let file = p.get("file").cloned().unwrap_or_default();
                if let Some((s, vol)) = parse_volid(&file) {
                    let alloc = vol.parse::<f64>().is_ok() || vol == "cloudinit";
                    if alloc {
                        storage_supports(st, &s, "images")?;
                    } else if (vol.starts_with("iso/") || vol.ends_with(".iso"))
                        && p.get("media").is_none_or(|m| m != "cdrom")
                    {
                        return Err(ApiError::param(
                            k,
                            "explicit 'media=cdrom' is required for iso images",
                        ));
                    }
                }
            }
        }
        let mut conf = IndexMap::new();
        conf.insert("lock".to_string(), "create".to_string());
        st.vms.insert(
            vmid,
            Vm {
                vmid,
                node: node.clone(),
                conf,
                created_at: now_f(),
                ..Default::default()
            },
        );
        Ok(params
            .iter()
            .filter(|(k, _)| is_drive(k))
            .filter_map(|(_, v)| v.split(':').next().map(String::from))
            .filter(|s| !s.starts_with('/') && s != "none" && s != "cdrom")
            .collect())
    })?;
    let mut locks = vec![vm_lock(vmid, 5.0)];
    let mut seen = std::collections::BTreeSet::new();
    for s in storages {
        if seen.insert(s.clone()) {
            locks.push(tasks::storage_lock(&s, false));
        }
    }
    let node2 = node.clone();
    let inner2 = inner.clone();
    let user = r.who.full();
    let upid = tasks::spawn(
        inner,
        Spec {
            node: node.clone(),
            kind: "qmcreate",
            id: vmid.to_string(),
            user: user.clone(),
            secs: 2.0,
            locks,
            fail_text: Some(format!("unable to create VM {vmid} - command failed")),
            config_lock: None,
        },
        Box::new(move |st| {
            let mut conf = IndexMap::new();
            let mut log = vec![];
            let mut result = Ok(());
            for (k, v) in &params {
                match normalise_value(st, &node2, vmid, k, v) {
                    Ok((val, vols)) => {
                        st.volumes.extend(vols);
                        if is_drive(k) && val.contains("vm-") && !val.contains("media=cdrom") {
                            if let Some((_, lv)) =
                                alloc_log_name(st, val.split(',').next().unwrap_or(""))
                            {
                                log.push(format!("  Logical volume \"{lv}\" created."));
                            }
                            log.push(format!("{k}: successfully created disk '{val}'"));
                        }
                        conf.insert(k.clone(), val);
                    }
                    Err(e) => {
                        result = Err(e
                            .errors
                            .map(|m| {
                                format!(
                                    "400 Parameter verification failed. {}",
                                    m.iter()
                                        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")))
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                )
                            })
                            .unwrap_or(e.message));
                        break;
                    }
                }
            }
            if let Err(e) = result {
                st.vms.remove(&vmid);
                st.volumes.retain(|v| v.vmid != Some(vmid));
                return Err(format!("unable to create VM {vmid} - {e}"));
            }
            if !conf.contains_key("boot")
                && let Some(order) = default_boot_order(&conf)
            {
                conf.insert("boot".into(), order);
            }
            st.serial += 1;
            let s = st.serial;
            conf.entry("smbios1".into())
                .or_insert_with(|| format!("uuid={}", uuid_for(s, u64::from(vmid))));
            conf.entry("vmgenid".into())
                .or_insert_with(|| uuid_for(s + 7, 0x5eed));
            conf.entry("meta".into())
                .or_insert_with(|| format!("creation-qemu=10.1.2,ctime={}", now()));
            if let Some(vm) = st.vms.get_mut(&vmid) {
                vm.conf = conf;
            }
            if let Some(p) = &pool {
                super::access::add_vm_to_pool(st, vmid, p);
            }
            Ok(log)
        }),
    );
    if start_after {
        let upid2 = upid.clone();
        tokio::spawn(async move {
            loop {
                let done = inner2.with_state(|st| {
                    st.tasks
                        .iter()
                        .find(|t| t.upid == upid2)
                        .map(|t| (t.running, t.exitstatus.clone()))
                });
                match done {
                    Some((true, _)) => {
                        tokio::time::sleep(
                            inner2.scaled(0.1).max(std::time::Duration::from_millis(1)),
                        )
                        .await
                    }
                    Some((false, Some(s))) if s == "OK" => {
                        start_task(&inner2, &node, vmid, &user, false);
                        break;
                    }
                    _ => break,
                }
            }
        });
    }
    Ok(json!(upid).into())
}

/// qemu-server's `get_default_bootdevices` + `print_bootorder`: the first disk, the
/// first CD-ROM (by ide, scsi, virtio, sata order) and the first NIC; `None` when
/// there is nothing to boot from (PVE then stores no `boot` line).
fn default_boot_order(conf: &IndexMap<String, String>) -> Option<String> {
    let buses = [("ide", 4), ("scsi", 31), ("virtio", 16), ("sata", 6)];
    let names: Vec<String> = buses
        .iter()
        .flat_map(|(b, n)| (0..*n).map(move |i| format!("{b}{i}")))
        .collect();
    let first = |cdrom: bool| {
        names.iter().find(|k| {
            conf.get(*k)
                .is_some_and(|v| v.split(',').any(|p| p == "media=cdrom") == cdrom)
        })
    };
    let mut devs: Vec<String> = vec![];
    devs.extend(first(false).cloned());
    devs.extend(first(true).cloned());
    devs.extend(
        (0..32)
            .map(|i| format!("net{i}"))
            .find(|k| conf.contains_key(k)),
    );
    if devs.is_empty() {
        None
    } else {
        Some(format!("order={}", devs.join(";")))
    }
}

pub(super) fn check_lock(vm: &Vm, skiplock: bool) -> Result<(), String> {
    match vm.conf.get("lock") {
        Some(l) if !skiplock => Err(format!("VM is locked ({l})")),
        _ => Ok(()),
    }
}

/// One validated config update (PUT runs it inline, POST in a `qmconfig` task).
struct ConfigUpdate {
    node: String,
    vmid: u32,
    params: Vec<(String, String)>,
    deletes: Vec<String>,
    reverts: Vec<String>,
    force: bool,
    skiplock: bool,
    digest: Option<String>,
    logline: String,
}

impl ConfigUpdate {
    fn pre(&self, st: &mut State) -> Result<(), ApiError> {
        let (node, vmid, deletes, skiplock) = (&self.node, self.vmid, &self.deletes, self.skiplock);
        let vm = st.vm(node, vmid)?;
        if let Some(d) = &self.digest
            && *d != digest(vm)
        {
            return Err(ApiError::e500(
                "checksum mismatch (file change by other user?)",
            ));
        }
        if deletes.len() == 1 && deletes[0] == "lock" && skiplock {
            return Ok(());
        }
        check_lock(vm, skiplock)?;
        if deletes
            .iter()
            .any(|k| is_drive(k) || k.starts_with("unused"))
            && truthy(vm.conf.get("protection"))
        {
            return Err(ApiError::e500(
                "can't remove drive - protection mode enabled".to_string(),
            ));
        }
        Ok(())
    }

    fn apply(&self, st: &mut State) -> Result<Vec<String>, ApiError> {
        let (node, vmid, params, deletes, reverts, force) = (
            &self.node,
            self.vmid,
            &self.params,
            &self.deletes,
            &self.reverts,
            self.force,
        );
        let running = st.vm(node, vmid)?.running;
        let hotplug = st
            .vm(node, vmid)?
            .conf
            .get("hotplug")
            .cloned()
            .unwrap_or_else(|| "network,disk,usb".into());
        let hot: Vec<String> = if hotplug == "1" {
            vec!["network".into(), "disk".into(), "usb".into()]
        } else {
            split_list(&hotplug)
        };
        let mut normalised = vec![];
        for (k, v) in params {
            let (val, vols) = normalise_value(st, node, vmid, k, v)?;
            st.volumes.extend(vols);
            normalised.push((k.clone(), val));
        }
        let vm = st.vm_mut(node, vmid)?;
        for k in reverts {
            vm.pending.shift_remove(k);
            vm.pending_delete.retain(|d| d != k);
        }
        let mut unused_new = vec![];
        let mut destroyed: Vec<String> = vec![];
        // qemu-server's vmconfig_hotplug_pending / vmconfig_update_disk: with `disk`
        // hotplug, SCSI/VirtIO drives are plugged and unplugged live, IDE/SATA never;
        // a CD-ROM's medium is swapped live on any bus; anything else waits.
        let disk_hot = hot.iter().any(|h| h == "disk");
        let live_bus = |k: &str| !(k.starts_with("ide") || k.starts_with("sata"));
        for k in deletes {
            let immediate = !running
                || is_fast_plug(k)
                || (k.starts_with("net") && hot.iter().any(|h| h == "network"))
                || (is_drive(k) && disk_hot && live_bus(k))
                || k == "lock";
            if immediate {
                vm.guest.nic_bound.remove(k);
                if let Some(old) = vm.conf.shift_remove(k) {
                    let volid = old.split(',').next().unwrap_or("").to_string();
                    if k.starts_with("unused") || (is_drive(k) && force) {
                        destroyed.push(volid);
                    } else if is_drive(k)
                        && !old.contains("media=cdrom")
                        && !old.contains("cloudinit")
                    {
                        unused_new.push(volid);
                    }
                }
                vm.pending.shift_remove(k);
                vm.pending_delete.retain(|d| d != k);
            } else if !vm.pending_delete.contains(k) {
                vm.pending_delete.push(k.clone());
            }
        }
        for f in unused_new {
            let mut n = 0;
            while vm.conf.contains_key(&format!("unused{n}")) {
                n += 1;
            }
            vm.conf.insert(format!("unused{n}"), f);
        }
        for (k, v) in normalised {
            let cd = |x: &str| x.contains("media=cdrom");
            let old = vm.conf.get(&k).cloned();
            if running
                && is_drive(&k)
                && let Some(o) = &old
                && cd(o) != cd(&v)
            {
                return Err(ApiError::param(&k, "unable to change media type"));
            }
            let immediate = !running
                || is_fast_plug(&k)
                || (k.starts_with("net") && hot.iter().any(|h| h == "network"))
                || (is_drive(&k) && old.is_none() && disk_hot && live_bus(&k))
                || (is_drive(&k) && old.as_deref().is_some_and(cd) && cd(&v));
            if immediate {
                if running && k.starts_with("net") {
                    super::qemu_net::note_nic_move(vm, &k, old.as_deref(), &v);
                }
                vm.conf.insert(k.clone(), v);
                vm.pending.shift_remove(&k);
            } else {
                vm.pending.insert(k.clone(), v);
            }
            vm.pending_delete.retain(|d| *d != k);
        }
        // Deleting an unused disk destroys its volume.
        st.volumes.retain(|v| !destroyed.contains(&v.volid));
        Ok(vec![self.logline.clone()])
    }
}

async fn update_config(inner: &Arc<Inner>, r: &Req, is_async: bool) -> Result<Reply, ApiError> {
    let node = r.node();
    let vmid = r.vmid();
    check_root_only(r, &["skiplock"])?;
    let skiplock = r.flag("skiplock");
    let force = r.flag("force");
    let params = config_params(r);
    super::pci::check_perm(inner, r, &params)?;
    for (k, v) in &params {
        if is_drive(k)
            && let Some((s, vol)) = v.split(',').next().and_then(parse_volid)
            && vol.parse::<f64>().is_ok()
        {
            super::require(
                inner,
                r,
                &format!("/storage/{s}"),
                "Datastore.AllocateSpace",
            )?;
        }
    }
    let deletes: Vec<String> = r
        .str("delete")
        .map(|d| split_list(&d))
        .unwrap_or_default()
        .into_iter()
        .map(|k| if k == "cdrom" { "ide2".into() } else { k })
        .collect();
    let reverts: Vec<String> = r.str("revert").map(|d| split_list(&d)).unwrap_or_default();
    for k in &deletes {
        if k != "lock" && qemu_config_prop(k).is_none() {
            return Err(ApiError::param("delete", format!("unknown option '{k}'")));
        }
        if params.iter().any(|(p, _)| p == k) {
            return Err(ApiError::param(
                "delete",
                format!("you can't use '-{k}' and -delete {k}' at the same time"),
            ));
        }
        if reverts.contains(k) {
            return Err(ApiError::param(
                "revert",
                format!("you can't use '-delete {k}' and -revert {k}' at the same time"),
            ));
        }
    }
    for k in &reverts {
        if qemu_config_prop(k).is_none() {
            return Err(ApiError::param("revert", format!("unknown option '{k}'")));
        }
    }
    if params.is_empty() && deletes.is_empty() && reverts.is_empty() {
        return Err(ApiError::e500("no options specified"));
    }
    let logline = format!(
        "update VM {vmid}: {}",
        r.params
            .keys()
            .filter(|k| !["node", "vmid", "digest"].contains(&k.as_str()))
            .map(|k| format!("-{k}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let up = Arc::new(ConfigUpdate {
        node,
        vmid,
        params,
        deletes,
        reverts,
        force,
        skiplock,
        digest: r.str("digest"),
        logline,
    });
    inner.with_state(|st| up.pre(st))?;
    if !is_async {
        let _g = inner
            .flock(&format!("vm-{vmid}"), 10.0)
            .await
            .map_err(|()| {
                ApiError::e500(format!(
                    "can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout"
                ))
            })?;
        inner.with_state(|st| {
            up.pre(st)?;
            up.apply(st)
        })?;
        return Ok(Value::Null.into());
    }
    let upid = tasks::spawn(
        inner,
        Spec {
            node: r.node(),
            kind: "qmconfig",
            id: vmid.to_string(),
            user: r.who.full(),
            secs: 0.3,
            locks: vec![vm_lock(vmid, 10.0)],
            fail_text: None,
            config_lock: None,
        },
        Box::new(move |st| {
            up.pre(st).map_err(|e| e.message)?;
            up.apply(st).map_err(|e| match e.errors {
                Some(m) => format!(
                    "400 Parameter verification failed. {}",
                    m.iter()
                        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                None => e.message,
            })
        }),
    );
    if let Some(delay) = r.i64("background_delay") {
        let deadline = tokio::time::Instant::now() + inner.scaled(delay as f64);
        loop {
            let st = inner.with_state(|st| {
                st.tasks
                    .iter()
                    .find(|t| t.upid == upid)
                    .map(|t| t.exitstatus.clone())
            });
            match st {
                Some(Some(s)) if s == "OK" => return Ok(Value::Null.into()),
                Some(Some(s)) => {
                    return Err(ApiError::e500(format!("failed to update VM {vmid}: {s}")));
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(inner.scaled(0.05).max(std::time::Duration::from_millis(1))).await;
        }
    }
    Ok(json!(upid).into())
}

fn destroy(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let vmid = r.vmid();
    check_root_only(r, &["skiplock"])?;
    let skiplock = r.flag("skiplock");
    let purge = r.flag("purge");
    inner.with_state(|st| {
        let vm = st.vm(&node, vmid)?;
        if vm.running {
            return Err(ApiError::e500(format!(
                "VM {vmid} is running - destroy failed"
            )));
        }
        if truthy(vm.conf.get("protection")) {
            return Err(ApiError::e500(format!(
                "can't remove VM {vmid} - protection mode enabled"
            )));
        }
        Ok(())
    })?;
    let upid = tasks::spawn(
        inner,
        Spec {
            node: node.clone(),
            kind: "qmdestroy",
            id: vmid.to_string(),
            user: r.who.full(),
            secs: 1.0,
            locks: vec![vm_lock(vmid, 10.0)],
            fail_text: None,
            config_lock: None,
        },
        Box::new(move |st| {
            let vm = st.vm(&node, vmid)?;
            check_lock(vm, skiplock)?;
            if vm.running {
                return Err(format!("VM {vmid} is running - destroy failed"));
            }
            let mut log = vec![];
            for v in st
                .volumes
                .iter()
                .filter(|v| v.vmid == Some(vmid) && v.content == "images")
            {
                if let Some((_, lv)) = alloc_log_name(st, &v.volid) {
                    log.push(format!("  Logical volume \"{lv}\" successfully removed."));
                }
            }
            st.volumes
                .retain(|v| !(v.vmid == Some(vmid) && v.content == "images"));
            st.vms.remove(&vmid);
            super::access::remove_vm_access(st, vmid);
            if purge {
                for job in st.backup_jobs.values_mut() {
                    if let Some(Value::String(list)) = job.get("vmid").cloned() {
                        let rest: Vec<String> = split_list(&list)
                            .into_iter()
                            .filter(|x| x != &vmid.to_string())
                            .collect();
                        job.insert("vmid".into(), json!(rest.join(",")));
                    }
                }
                log.push(format!("purging VM {vmid} from related configurations.."));
            }
            Ok(log)
        }),
    );
    Ok(json!(upid).into())
}

fn current(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    inner.with_state(|st| {
        let vm = st.vm(&r.node(), r.vmid())?;
        let maxmem = super::cluster::vm_maxmem(vm.conf.get("memory"));
        let agent = vm.conf.get("agent").is_some_and(|a| agent_enabled(a));
        let mut v = json!({
            "vmid": vm.vmid,
            "name": vm.conf.get("name").cloned().unwrap_or_else(|| format!("VM {}", vm.vmid)),
            "status": if vm.running { "running" } else { "stopped" },
            "qmpstatus": if vm.running { if vm.paused { "paused" } else { "running" } } else { "stopped" },
            "cpus": vm.conf.get("cores").and_then(|c| c.parse::<u64>().ok()).unwrap_or(1),
            "maxmem": maxmem, "mem": if vm.running { maxmem / 3 } else { 0 },
            "maxdisk": disk_sizes(&vm.conf), "disk": 0,
            "uptime": if vm.running { now().saturating_sub(vm.started_at) } else { 0 },
            "cpu": 0, "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
            "ha": {"managed": 0},
        });
        if agent {
            v["agent"] = json!(1);
        }
        if vm.running {
            v["pid"] = json!(100_000 + vm.vmid);
            v["running-qemu"] = json!("10.1.2");
            v["running-machine"] = json!("pc-i440fx-10.1+pve0");
        }
        if let Some(l) = vm.conf.get("lock") {
            v["lock"] = json!(l);
        }
        if let Some(t) = vm.conf.get("tags") {
            v["tags"] = json!(t);
        }
        if truthy(vm.conf.get("template")) {
            v["template"] = json!(1);
        }
        Ok(v.into())
    })
}

fn agent_enabled(a: &str) -> bool {
    let first = a.split(',').next().unwrap_or("");
    matches!(
        first,
        "1" | "enabled=1" | "enabled=yes" | "yes" | "on" | "true"
    )
}

fn apply_pending(vm: &mut Vm) {
    let pending = std::mem::take(&mut vm.pending);
    for (k, v) in pending {
        vm.conf.insert(k, v);
    }
    for k in std::mem::take(&mut vm.pending_delete) {
        vm.conf.shift_remove(&k);
    }
}

fn start_task(inner: &Arc<Inner>, node: &str, vmid: u32, user: &str, skiplock: bool) -> String {
    let node2 = node.to_string();
    let scale = inner.cfg.time_scale;
    let (rs, router_failed) = super::qemu_net::router_roll(inner);
    tasks::spawn(
        inner,
        Spec {
            node: node.to_string(),
            kind: "qmstart",
            id: vmid.to_string(),
            user: user.to_string(),
            secs: 1.5,
            locks: vec![vm_lock(vmid, 10.0)],
            fail_text: Some("start failed: QEMU exited with code 1".to_string()),
            config_lock: None,
        },
        Box::new(move |st| {
            let bridges: Vec<String> = st
                .nodes
                .get(&node2)
                .map(|n| {
                    n.network
                        .keys()
                        .filter(|k| !n.network_down.contains(*k))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let seed = st.vms.get(&vmid).and_then(|vm| seed_user_data(st, vm));
            let vm = st.vm_mut(&node2, vmid)?;
            check_lock(vm, skiplock)?;
            if truthy(vm.conf.get("template")) {
                return Err("you can't start a vm if it's a template".into());
            }
            if vm.running {
                return Err(format!("VM {vmid} already running"));
            }
            apply_pending(vm);
            let shares: Vec<String> = vm
                .conf
                .iter()
                .filter(|(k, _)| k.starts_with("virtiofs"))
                .map(|(_, v)| v.clone())
                .collect();
            // Config generation resolves every share (PVE's Virtiofs::config).
            for v in shares {
                super::mapping::assert_virtiofs(st, &node2, &v)?;
            }
            // Passed-through devices resolve, are free and sit in viable groups.
            super::pci::assert_start(st, &node2, vmid)?;
            let vm = st.vm_mut(&node2, vmid)?;
            for (k, v) in &vm.conf {
                if k.starts_with("net")
                    && let Some(b) = v.split(',').find_map(|p| p.strip_prefix("bridge="))
                    && !bridges.iter().any(|x| x == b)
                {
                    return Err(format!("bridge '{b}' does not exist"));
                }
            }
            vm.set_running(true);
            vm.paused = false;
            vm.started_at = now();
            vm.agent_ready_at = now_f() + 8.0 * scale;
            vm.guest.nic_bound.clear();
            crate::router::on_boot(st, vmid, rs, router_failed, scale);
            let vm = st.vm_mut(&node2, vmid)?;
            let mut log = vec![];
            if vm
                .conf
                .keys()
                .any(|k| k.starts_with("ipconfig") || k == "ciuser")
            {
                log.push("generating cloud-init ISO".to_string());
            }
            let mut first_boot = None;
            if let Some(text) = seed {
                // cloud-init runs a seed once per instance: the first boot, and again
                // when a different seed (a new instance-id) is attached.
                let digest = sha1_hex(&text);
                if vm.guest.seed_digest.as_deref() != Some(digest.as_str()) {
                    vm.guest.cloud_init_done = true;
                    vm.guest.seed_digest = Some(digest);
                    first_boot = Some(text);
                }
            }
            let lan = Lan::default();
            if let Some(mut ctx) = crate::guest::Ctx::of(st, vmid, &lan) {
                crate::guest::boot(&mut ctx);
                if let Some(text) = first_boot {
                    log.extend(crate::guest::apply_cloud_config(&mut ctx, &text));
                }
                if crate::guest::seed::plant(&mut ctx.vm.guest.files, vmid) {
                    log.push(format!(
                        "guest: {} holds the apps' data",
                        crate::guest::seed::APPDATA
                    ));
                }
            }
            Ok(log)
        }),
    )
}

/// The `#cloud-config` of a seed ISO attached as a CD-ROM, if any.
fn seed_user_data(st: &State, vm: &Vm) -> Option<String> {
    effective(vm)
        .iter()
        .filter(|(k, v)| is_drive(k) && v.contains("media=cdrom"))
        .filter_map(|(_, v)| v.split(',').next())
        .find_map(|volid| {
            st.volumes
                .iter()
                .find(|x| x.volid == volid)
                .and_then(|x| x.user_data.clone())
        })
}

fn power(inner: &Arc<Inner>, r: &Req, kind: &'static str) -> Result<Reply, ApiError> {
    let node = r.node();
    let vmid = r.vmid();
    check_root_only(
        r,
        &[
            "skiplock",
            "keepActive",
            "migratedfrom",
            "stateuri",
            "force-cpu",
            "nocheck",
        ],
    )?;
    let skiplock = r.flag("skiplock");
    inner.with_state(|st| {
        let vm = st.vm(&node, vmid)?;
        if matches!(kind, "qmreboot" | "qmreset" | "qmsuspend" | "qmresume") && !vm.running {
            return Err(ApiError::e500(format!("VM {vmid} not running")));
        }
        Ok(())
    })?;
    if kind == "qmstart" {
        return Ok(json!(start_task(inner, &node, vmid, &r.who.full(), skiplock)).into());
    }
    let force_stop = r.flag("forceStop");
    let secs = match kind {
        "qmstop" => 0.5,
        "qmshutdown" => 3.0,
        "qmsuspend" | "qmresume" | "qmreset" => 0.3,
        _ => 4.0,
    };
    let scale = inner.cfg.time_scale;
    let (rs, router_failed) = super::qemu_net::router_roll(inner);
    let upid = tasks::spawn(
        inner,
        Spec {
            node: node.clone(),
            kind,
            id: vmid.to_string(),
            user: r.who.full(),
            secs,
            locks: vec![vm_lock(vmid, 10.0)],
            fail_text: Some("VM quit/powerdown failed - got timeout".into()),
            config_lock: None,
        },
        Box::new(move |st| {
            let vm = st.vm_mut(&node, vmid)?;
            check_lock(vm, skiplock)?;
            match kind {
                "qmstop" => {
                    vm.set_running(false);
                }
                "qmshutdown" => {
                    if vm.paused && !force_stop {
                        return Err("VM is paused - cannot shutdown".into());
                    }
                    vm.set_running(false);
                }
                "qmsuspend" => {
                    vm.paused = true;
                    return Ok(vec![]);
                }
                "qmresume" => {
                    if !vm.paused {
                        return Err(format!("VM {vmid} not paused"));
                    }
                }
                "qmreset" => {
                    vm.started_at = now();
                    vm.agent_ready_at = now_f() + 8.0 * scale;
                }
                _ => {
                    if !vm.running {
                        return Err(format!("VM {vmid} not running"));
                    }
                    apply_pending(vm);
                    vm.started_at = now();
                    vm.agent_ready_at = now_f() + 8.0 * scale;
                }
            }
            vm.paused = false;
            // Every power change re-runs the guest's DHCP on the bridges it is on now.
            vm.guest.nic_bound.clear();
            if matches!(kind, "qmreset" | "qmreboot") {
                crate::router::on_boot(st, vmid, rs, router_failed, scale);
            }
            Ok(vec![])
        }),
    );
    Ok(json!(upid).into())
}

/// `PUT …/resize`: PVE 8/9 fork the worker at once; every check (digest, lock, disk,
/// CD-ROM, shrinking) runs inside the `resize` task, so a refusal is a failed task.
fn resize(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let vmid = r.vmid();
    check_root_only(r, &["skiplock"])?;
    let skiplock = r.flag("skiplock");
    let disk = r.s("disk");
    let size = r.s("size");
    let want_digest = r.str("digest");
    inner.with_state(|st| st.vm(&node, vmid).map(|_| ()))?;
    let upid = tasks::spawn(
        inner,
        Spec {
            node: node.clone(),
            kind: "resize",
            id: vmid.to_string(),
            user: r.who.full(),
            secs: 0.5,
            locks: vec![vm_lock(vmid, 10.0)],
            fail_text: None,
            config_lock: None,
        },
        Box::new(move |st| {
            let vm = st.vm(&node, vmid)?;
            if let Some(d) = &want_digest
                && *d != digest(vm)
            {
                return Err("checksum mismatch (file change by other user?)".into());
            }
            if !skiplock {
                check_lock(vm, false)?;
            }
            let val = vm
                .conf
                .get(&disk)
                .cloned()
                .ok_or_else(|| format!("disk '{disk}' does not exist"))?;
            let mut props = drive_props(&disk, &val).unwrap_or_default();
            let volid = props.shift_remove("file").unwrap_or_default();
            if volid.is_empty() || volid == "none" {
                return Err(format!("disk '{disk}' has no associated volume"));
            }
            if props.get("media").is_some_and(|m| m == "cdrom") {
                return Err("you can't resize a cdrom".into());
            }
            let cur = st
                .volumes
                .iter()
                .find(|v| v.volid == volid)
                .map(|v| v.size)
                .or_else(|| props.get("size").and_then(|s| parse_size(s)))
                .unwrap_or(0);
            let (plus, num) = match size.strip_prefix('+') {
                Some(n) => (true, n),
                None => (false, size.as_str()),
            };
            let amount = parse_size(num).ok_or_else(|| "internal error".to_string())?;
            let new = if plus {
                cur.saturating_add(amount)
            } else {
                amount
            };
            if new < cur {
                return Err("shrinking disks is not supported".into());
            }
            if new == cur {
                return Ok(vec![]);
            }
            if let Some(v) = st.volumes.iter_mut().find(|v| v.volid == volid) {
                v.size = new;
            }
            let lv = alloc_log_name(st, &volid);
            let vm = st.vm_mut(&node, vmid)?;
            props.insert("size".into(), format_size(new));
            vm.conf.insert(disk.clone(), render_drive(&volid, &props));
            Ok(match lv {
                Some((vg, name)) => vec![format!(
                    "  Size of logical volume {vg}/{name} changed from {} to {}.",
                    lvm_size(cur),
                    lvm_size(new)
                )],
                None => vec![],
            })
        }),
    );
    Ok(json!(upid).into())
}

/// LVM-backed volumes: (volume group, LV name) as lvcreate/lvremove name them in the
/// task log; other storage types log nothing for these steps.
pub(super) fn alloc_log_name(st: &State, volid: &str) -> Option<(String, String)> {
    let (sid, name) = parse_volid(volid)?;
    let cfg = st.storages.get(&sid)?;
    match cfg.get("type").and_then(Value::as_str) {
        Some("lvm" | "lvmthin") => {
            let vg = cfg.get("vgname").and_then(Value::as_str).unwrap_or("pve");
            Some((
                vg.to_string(),
                name.rsplit('/').next().unwrap_or(&name).to_string(),
            ))
        }
        _ => None,
    }
}

/// LVM's own size notation (`8.00 GiB <4 extents>` without the extents).
fn lvm_size(bytes: u64) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    format!("{gib:.2} GiB ({} extents)", bytes.div_ceil(4 << 20))
}

fn agent(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let vmid = r.vmid();
    let cmd = r.template.rsplit('/').next().unwrap_or("").to_string();
    inner.with_state(|st| {
        // The LAN view (leases, open ports) is taken before borrowing the guest.
        let (lan, addrs) = match cmd.as_str() {
            "exec" => (super::qemu_net::exec_lan(st, vmid, r, inner.cfg.time_scale), Vec::new()),
            "network-get-interfaces" => (Lan::default(), crate::guestnet::guest_addrs(st, vmid)),
            _ => (Lan::default(), Vec::new()),
        };
        // The OPNsense seed installs no guest agent plugin: nothing answers.
        let no_agent = st
            .vms
            .get(&vmid)
            .is_some_and(|v| crate::guestnet::guest_os(st, v) == crate::guestnet::GuestOs::OpnSense);
        let vm = st.vm_mut(&node, vmid)?;
        if !vm.conf.get("agent").is_some_and(|a| agent_enabled(a)) {
            return Err(ApiError::e500("No QEMU guest agent configured"));
        }
        if !vm.running {
            return Err(ApiError::e500(format!("VM {vmid} is not running")));
        }
        if no_agent || now_f() < vm.agent_ready_at {
            return Err(ApiError::e500("QEMU guest agent is not running"));
        }
        // An agent started with `--block-rpcs` answers with an error object.
        let rpc = format!("guest-{cmd}");
        if inner.cfg.agent_blocked.contains(&rpc) {
            return Ok(json!({"result": {"error": {
                "class": "CommandDisabled",
                "desc": format!("The command {rpc} has been disabled for this instance")
            }}})
            .into());
        }
        match cmd.as_str() {
            "ping" => Ok(json!({"result": {}}).into()),
            "info" => Ok(json!({"result": {"version": "7.2.15", "supported_commands": [
                {"name": "guest-ping", "enabled": true, "success-response": true},
                {"name": "guest-exec", "enabled": true, "success-response": true},
                {"name": "guest-file-write", "enabled": true, "success-response": true}]}}).into()),
            "get-host-name" => Ok(json!({"result": {"host-name": vm.conf.get("name").cloned().unwrap_or_default()}}).into()),
            "get-osinfo" => Ok(json!({"result": {"id": "debian", "name": "Debian GNU/Linux", "pretty-name": "Debian GNU/Linux 12 (bookworm)",
                "version": "12 (bookworm)", "version-id": "12", "kernel-release": "6.1.0-28-amd64",
                "kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)", "machine": "x86_64"}}).into()),
            "network-get-interfaces" => {
                let mut ifs = vec![json!({"name": "lo", "hardware-address": "00:00:00:00:00:00",
                    "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                                      {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}],
                    "statistics": {"rx-bytes": 0, "rx-packets": 0, "tx-bytes": 0, "tx-packets": 0, "rx-errs": 0, "tx-errs": 0, "rx-dropped": 0, "tx-dropped": 0}})];
                for a in &addrs {
                    ifs.push(json!({"name": a.ifname, "hardware-address": a.mac,
                        "ip-addresses": [{"ip-address": a.ip.to_string(), "ip-address-type": "ipv4", "prefix": a.prefix}],
                        "statistics": {"rx-bytes": 1_234_567, "rx-packets": 4321, "tx-bytes": 765_432, "tx-packets": 2345, "rx-errs": 0, "tx-errs": 0, "rx-dropped": 0, "tx-dropped": 0}}));
                }
                Ok(json!({"result": ifs}).into())
            }
            "exec" => {
                let argv: Vec<String> = match r.params.get("command") {
                    Some(PVal::Arr(a)) => a.iter().filter_map(PVal::as_str).collect(),
                    Some(v) => v.as_str().into_iter().collect(),
                    None => vec![],
                };
                if argv.is_empty() {
                    return Err(ApiError::param("command", "property is missing and it is not optional"));
                }
                // The copy fault is drawn per command, before the guest runs it.
                let f = inner.faults();
                let copy_fault = (argv.first().is_some_and(|c| c.ends_with("rsync"))
                    && f.copy_failure_rate > 0.0
                    && inner.roll() < f.copy_failure_rate)
                    .then(|| (inner.roll() * u64::MAX as f64) as u64);
                let (mut code, out, err) = match crate::guest::Ctx::of(st, vmid, &lan) {
                    Some(mut ctx) => {
                        ctx.copy_fault = copy_fault;
                        crate::guest::run_guest(&mut ctx, &argv, r.str("input-data").as_deref())
                    }
                    None => (1, String::new(), String::new()),
                };
                // A connect nobody cut short ends with bash's own timeout error.
                if code == crate::segments::HANG {
                    code = 1;
                }
                let vm = st.vm_mut(&node, vmid)?;
                vm.guest.next_pid = vm.guest.next_pid.max(1000) + 1;
                let pid = vm.guest.next_pid;
                vm.guest.exec.insert(pid, ExecResult { exitcode: code, out, err, done_at: now_f() + 0.5 * inner.cfg.time_scale });
                Ok(json!({"pid": pid}).into())
            }
            "exec-status" => {
                let pid = r.u32("pid");
                let e = vm.guest.exec.get(&pid).ok_or_else(|| ApiError::e500("Agent error: Invalid parameter 'pid'".to_string()))?;
                if now_f() < e.done_at {
                    return Ok(json!({"exited": 0}).into());
                }
                let mut v = json!({"exited": 1, "exitcode": e.exitcode});
                if !e.out.is_empty() {
                    v["out-data"] = json!(e.out);
                }
                if !e.err.is_empty() {
                    v["err-data"] = json!(e.err);
                }
                Ok(v.into())
            }
            "file-write" => {
                let content = r.s("content");
                let text = if r.str("encode").as_deref() == Some("0") {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(content.trim())
                        .map_err(|_| ApiError::e500("Agent error: Guest agent command failed, error was 'Invalid base64 data'"))?;
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    content
                };
                vm.guest.files.insert(r.s("file"), text);
                Ok(Value::Null.into())
            }
            "file-read" => {
                let f = r.s("file");
                match vm.guest.files.get(&f) {
                    Some(c) => Ok(json!({"content": c}).into()),
                    None => Err(ApiError::e500(format!("Agent error: Failed to open file '{f}': No such file or directory"))),
                }
            }
            _ => Err(missing(r)),
        }
    })
}

/// `POST …/clone`: a full copy, or a linked clone of a template (the default for
/// templates). The new VM is registered at once with `lock: clone`.
fn clone(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let vmid = r.vmid();
    let newid = r.u32("newid");
    if r.str("target").is_some_and(|t| t != node) {
        return Err(ApiError::new(
            501,
            "cloning to another node is not simulated by labwright-sim",
        ));
    }
    let target_storage = r.str("storage");
    let name = r.str("name");
    let description = r.str("description");
    let snapname = r.str("snapname");
    if let Some(s) = &target_storage {
        super::require(
            inner,
            r,
            &format!("/storage/{s}"),
            "Datastore.AllocateSpace",
        )?;
    }
    let full = inner.with_state(|st| {
        let src = st.vm(&node, vmid)?;
        if let Some(v) = st.vms.get(&newid) {
            return Err(ApiError::e500(format!(
                "VM {newid} already exists on node '{}'",
                v.node
            )));
        }
        let is_template = truthy(src.conf.get("template"));
        let full = r.str("full").map_or(!is_template, |f| f == "1");
        if let Some(sn) = &snapname
            && !src.snapshots.contains_key(sn)
        {
            return Err(ApiError::e500(format!("snapshot '{sn}' does not exist")));
        }
        if !full && target_storage.is_some() {
            return Err(ApiError::e500(
                "parameter 'storage' not allowed for linked clones",
            ));
        }
        if !full && r.params.contains_key("format") {
            return Err(ApiError::e500(
                "parameter 'format' not allowed for linked clones",
            ));
        }
        // qemu-server's early clone checks: a linked clone needs the storage's `clone`
        // feature, which LVM-thin/ZFS/dir volumes only have for base (template) volumes.
        if !full {
            let base = match &snapname {
                Some(sn) => src
                    .snapshots
                    .get(sn)
                    .map(|s| s.conf.clone())
                    .unwrap_or_default(),
                None => src.conf.clone(),
            };
            let mut keys: Vec<&String> = base.keys().filter(|k| is_drive(k)).collect();
            keys.sort();
            for k in keys {
                let v = &base[k];
                if v.split(',').any(|p| p == "media=cdrom") {
                    continue;
                }
                let file = v.split(',').next().unwrap_or("");
                let vol = parse_volid(file).map(|(_, v)| v).unwrap_or_default();
                if !vol.starts_with("base-") && !vol.contains("/base-") {
                    let snap = if snapname.is_some() {
                        " a snapshot of"
                    } else {
                        ""
                    };
                    return Err(ApiError::e500(format!(
                        "Linked clone feature is not supported for{snap} '{file}' ({k})"
                    )));
                }
            }
        }
        let mut conf = IndexMap::new();
        conf.insert("lock".to_string(), "clone".to_string());
        st.vms.insert(
            newid,
            Vm {
                vmid: newid,
                node: node.clone(),
                conf,
                created_at: now_f(),
                ..Default::default()
            },
        );
        Ok(full)
    })?;
    let node2 = node.clone();
    let upid = tasks::spawn(
        inner,
        Spec {
            node: node.clone(),
            kind: "qmclone",
            id: vmid.to_string(),
            user: r.who.full(),
            secs: if full { 5.0 } else { 1.0 },
            locks: vec![vm_lock(vmid, 10.0)],
            fail_text: Some(
                "clone failed: cfs-lock 'storage-local-lvm' error: got lock request timeout"
                    .to_string(),
            ),
            config_lock: None,
        },
        Box::new(move |st| {
            let Ok(src) = st.vm(&node2, vmid).cloned() else {
                st.vms.remove(&newid);
                return Err(format!(
                    "Configuration file 'nodes/{node2}/qemu-server/{vmid}.conf' does not exist"
                ));
            };
            let base = match &snapname {
                Some(sn) => src
                    .snapshots
                    .get(sn)
                    .map(|s| s.conf.clone())
                    .unwrap_or_default(),
                None => src.conf.clone(),
            };
            let mut conf = IndexMap::new();
            let mut log = vec![format!(
                "create {} clone of drives",
                if full { "full" } else { "linked" }
            )];
            for (k, v) in &base {
                if [
                    "lock",
                    "template",
                    "parent",
                    "snaptime",
                    "vmstate",
                    "runningcpu",
                    "runningmachine",
                ]
                .contains(&k.as_str())
                    || k.starts_with("unused")
                {
                    continue;
                }
                let value = if k.starts_with("net") && k[3..].chars().all(|c| c.is_ascii_digit()) {
                    st.serial += 1;
                    let mac = mac_for(st.serial ^ (u64::from(newid) << 20));
                    let mut parts: Vec<String> = v.split(',').map(String::from).collect();
                    if let Some(first) = parts.first_mut() {
                        let model = first.split('=').next().unwrap_or("virtio").to_string();
                        *first = format!("{model}={mac}");
                    }
                    parts.join(",")
                } else if is_drive(k) && !v.contains("media=cdrom") {
                    let mut props = drive_props(k, v).unwrap_or_default();
                    let file = props.shift_remove("file").unwrap_or_default();
                    let Some((storage, _)) = parse_volid(&file) else {
                        conf.insert(k.clone(), v.clone());
                        continue;
                    };
                    let storage = target_storage.clone().filter(|_| full).unwrap_or(storage);
                    let (size, imported_from) = st
                        .volumes
                        .iter()
                        .find(|x| x.volid == file)
                        .map_or((0, None), |x| (x.size, x.imported_from.clone()));
                    let volid = next_disk_name(st, &storage, newid, "");
                    st.volumes.push(Volume {
                        node: node2.clone(),
                        storage: storage.clone(),
                        volid: volid.clone(),
                        content: "images".into(),
                        format: "raw".into(),
                        size,
                        vmid: Some(newid),
                        ctime: now(),
                        user_data: None,
                        imported_from,
                        ..Default::default()
                    });
                    log.push(format!(
                        "drive-{k}: transferred {} of {}",
                        format_size(size),
                        format_size(size)
                    ));
                    render_drive(&volid, &props)
                } else {
                    v.clone()
                };
                conf.insert(k.clone(), value);
            }
            conf.insert(
                "name".into(),
                name.clone().unwrap_or_else(|| {
                    format!(
                        "Copy-of-VM-{}",
                        base.get("name")
                            .cloned()
                            .unwrap_or_else(|| vmid.to_string())
                    )
                }),
            );
            if let Some(d) = &description {
                conf.insert("description".into(), d.clone());
            }
            // A new smbios1 uuid (other smbios1 fields kept), a new vmgenid only when
            // the source had one; `meta` is copied like any other option.
            st.serial += 1;
            let s = st.serial;
            let uuid = uuid_for(s, u64::from(newid));
            let smbios = match conf.get("smbios1") {
                Some(old) => {
                    let mut parts: Vec<String> = old
                        .split(',')
                        .filter(|p| !p.starts_with("uuid=") && !p.is_empty())
                        .map(String::from)
                        .collect();
                    parts.push(format!("uuid={uuid}"));
                    parts.sort();
                    parts.join(",")
                }
                None => format!("uuid={uuid}"),
            };
            conf.insert("smbios1".into(), smbios);
            if conf.contains_key("vmgenid") {
                conf.insert("vmgenid".into(), uuid_for(s + 7, 0x5eed));
            }
            // PVE::Firewall::clone_vmfw_conf: the VM firewall file is copied as is.
            let fw = st.vms.get(&vmid).map(|v| {
                (
                    v.fw_options.clone(),
                    v.fw_rules.clone(),
                    v.fw_aliases.clone(),
                    v.fw_ipsets.clone(),
                )
            });
            if let Some(vm) = st.vms.get_mut(&newid) {
                vm.conf = conf;
                if let Some((o, r, a, i)) = fw {
                    vm.fw_options = o;
                    vm.fw_rules = r;
                    vm.fw_aliases = a;
                    vm.fw_ipsets = i;
                }
            }
            Ok(log)
        }),
    );
    Ok(json!(upid).into())
}

/// `POST …/template`: disks become read-only base volumes and the VM a template.
fn template(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let vmid = r.vmid();
    inner.with_state(|st| {
        let vm = st.vm(&node, vmid)?;
        if truthy(vm.conf.get("template")) {
            return Err(ApiError::e500("you can't convert a template to a template"));
        }
        if vm.running {
            return Err(ApiError::e500(
                "you can't convert a VM to template if VM is running",
            ));
        }
        check_lock(vm, false)?;
        Ok(())
    })?;
    let upid = tasks::spawn(
        inner,
        Spec {
            node: node.clone(),
            kind: "qmtemplate",
            id: vmid.to_string(),
            user: r.who.full(),
            secs: 1.0,
            locks: vec![vm_lock(vmid, 10.0)],
            fail_text: None,
            config_lock: None,
        },
        Box::new(move |st| {
            let vm = st.vm(&node, vmid)?.clone();
            let mut renames = vec![];
            let mut conf = vm.conf.clone();
            for (k, v) in &vm.conf {
                if is_drive(k) && !v.contains("media=cdrom") && !v.contains("cloudinit") {
                    let old = v.split(',').next().unwrap_or("").to_string();
                    let new =
                        old.replace(&format!("vm-{vmid}-disk-"), &format!("base-{vmid}-disk-"));
                    conf.insert(k.clone(), v.replacen(&old, &new, 1));
                    renames.push((old, new));
                }
            }
            for (old, new) in &renames {
                if let Some(v) = st.volumes.iter_mut().find(|x| &x.volid == old) {
                    v.volid = new.clone();
                }
            }
            conf.insert("template".into(), "1".into());
            if let Ok(vm) = st.vm_mut(&node, vmid) {
                vm.conf = conf;
            }
            Ok(renames
                .iter()
                .map(|(o, n)| format!("  Renamed \"{o}\" to \"{n}\""))
                .collect())
        }),
    );
    Ok(json!(upid).into())
}
