//! Endpoint handlers. Every (method, path) served is listed in [`IMPLEMENTED`]; all other
//! schema endpoints answer 501 naming the path, so nothing is silently accepted.

use std::sync::Arc;

use crate::server::{ApiError, Inner, Reply, Req};

pub(crate) mod access;
pub(crate) mod admin;
pub(crate) mod cluster;
pub(crate) mod firewall;
pub(crate) mod mapping;
pub(crate) mod network;
pub(crate) mod pci;
pub(crate) mod qemu;
pub(crate) mod qemu_net;
pub(crate) mod snapshot;
pub(crate) mod storage;
pub(crate) mod storage_cfg;

/// The endpoints the simulator implements (method, schema path).
pub const IMPLEMENTED: &[(&str, &str)] = &[
    ("GET", "/version"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{node}"),
    ("GET", "/nodes/{node}/status"),
    ("GET", "/nodes/{node}/version"),
    ("GET", "/nodes/{node}/certificates/info"),
    ("GET", "/cluster/resources"),
    ("GET", "/cluster/status"),
    ("GET", "/cluster/nextid"),
    ("GET", "/cluster/tasks"),
    ("GET", "/nodes/{node}/tasks"),
    ("GET", "/nodes/{node}/tasks/{upid}"),
    ("GET", "/nodes/{node}/tasks/{upid}/status"),
    ("GET", "/nodes/{node}/tasks/{upid}/log"),
    ("DELETE", "/nodes/{node}/tasks/{upid}"),
    ("GET", "/access/ticket"),
    ("POST", "/access/ticket"),
    ("GET", "/access/domains"),
    ("GET", "/access/permissions"),
    ("GET", "/access/acl"),
    ("PUT", "/access/acl"),
    ("GET", "/access/users"),
    ("POST", "/access/users"),
    ("GET", "/access/users/{userid}"),
    ("PUT", "/access/users/{userid}"),
    ("DELETE", "/access/users/{userid}"),
    ("GET", "/access/groups"),
    ("POST", "/access/groups"),
    ("GET", "/access/groups/{groupid}"),
    ("PUT", "/access/groups/{groupid}"),
    ("DELETE", "/access/groups/{groupid}"),
    ("GET", "/access/tfa"),
    ("GET", "/access/roles"),
    ("POST", "/access/roles"),
    ("GET", "/access/roles/{roleid}"),
    ("PUT", "/access/roles/{roleid}"),
    ("DELETE", "/access/roles/{roleid}"),
    ("PUT", "/access/users/{userid}/token/{tokenid}"),
    ("GET", "/pools"),
    ("POST", "/pools"),
    ("PUT", "/pools"),
    ("DELETE", "/pools"),
    ("GET", "/pools/{poolid}"),
    ("PUT", "/pools/{poolid}"),
    ("DELETE", "/pools/{poolid}"),
    ("GET", "/access/users/{userid}/token"),
    ("GET", "/access/users/{userid}/token/{tokenid}"),
    ("POST", "/access/users/{userid}/token/{tokenid}"),
    ("DELETE", "/access/users/{userid}/token/{tokenid}"),
    // Inventories the simulator keeps empty (no containers, HA, replication or pools).
    ("GET", "/cluster/options"),
    ("GET", "/cluster/replication"),
    ("GET", "/nodes/{node}/lxc"),
    // Node and cluster administration (api/admin.rs).
    ("GET", "/nodes/{node}/dns"),
    ("PUT", "/nodes/{node}/dns"),
    ("GET", "/nodes/{node}/config"),
    ("PUT", "/nodes/{node}/config"),
    ("GET", "/nodes/{node}/apt"),
    ("GET", "/nodes/{node}/apt/update"),
    ("POST", "/nodes/{node}/apt/update"),
    ("GET", "/nodes/{node}/apt/repositories"),
    ("GET", "/nodes/{node}/apt/versions"),
    ("GET", "/nodes/{node}/syslog"),
    ("GET", "/nodes/{node}/disks"),
    ("GET", "/nodes/{node}/disks/lvm"),
    ("GET", "/nodes/{node}/disks/lvmthin"),
    ("GET", "/nodes/{node}/disks/directory"),
    ("GET", "/cluster/config"),
    ("GET", "/cluster/config/apiversion"),
    ("GET", "/cluster/config/nodes"),
    ("GET", "/cluster/config/totem"),
    ("GET", "/cluster/config/qdevice"),
    ("GET", "/cluster/config/join"),
    ("GET", "/cluster/ha"),
    ("GET", "/cluster/ha/status"),
    ("GET", "/cluster/ha/status/current"),
    ("GET", "/cluster/ha/status/manager_status"),
    ("GET", "/cluster/ha/resources"),
    ("POST", "/cluster/ha/resources"),
    ("GET", "/cluster/ha/resources/{sid}"),
    ("PUT", "/cluster/ha/resources/{sid}"),
    ("DELETE", "/cluster/ha/resources/{sid}"),
    ("GET", "/cluster/ha/groups"),
    ("GET", "/cluster/ha/groups/{group}"),
    ("GET", "/cluster/ha/rules"),
    ("POST", "/cluster/ha/rules"),
    ("GET", "/cluster/ha/rules/{rule}"),
    ("PUT", "/cluster/ha/rules/{rule}"),
    ("DELETE", "/cluster/ha/rules/{rule}"),
    ("GET", "/cluster/sdn"),
    ("GET", "/cluster/sdn/zones"),
    ("GET", "/cluster/sdn/vnets"),
    ("GET", "/nodes/{node}/time"),
    ("GET", "/nodes/{node}/hosts"),
    // Directory mappings (virtiofs shares)
    ("GET", "/cluster/mapping/dir"),
    ("POST", "/cluster/mapping/dir"),
    ("GET", "/cluster/mapping/dir/{id}"),
    ("PUT", "/cluster/mapping/dir/{id}"),
    ("DELETE", "/cluster/mapping/dir/{id}"),
    // PCI passthrough
    ("GET", "/nodes/{node}/hardware/pci"),
    ("GET", "/cluster/mapping/pci"),
    ("POST", "/cluster/mapping/pci"),
    ("GET", "/cluster/mapping/pci/{id}"),
    ("PUT", "/cluster/mapping/pci/{id}"),
    ("DELETE", "/cluster/mapping/pci/{id}"),
    // QEMU
    ("GET", "/nodes/{node}/qemu"),
    ("POST", "/nodes/{node}/qemu"),
    ("GET", "/nodes/{node}/qemu/{vmid}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}"),
    ("GET", "/nodes/{node}/qemu/{vmid}/config"),
    ("POST", "/nodes/{node}/qemu/{vmid}/config"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/config"),
    ("GET", "/nodes/{node}/qemu/{vmid}/pending"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/resize"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/unlink"),
    ("POST", "/nodes/{node}/qemu/{vmid}/clone"),
    ("POST", "/nodes/{node}/qemu/{vmid}/template"),
    ("GET", "/nodes/{node}/qemu/{vmid}/cloudinit"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/cloudinit"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/start"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/stop"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/reboot"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/reset"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/suspend"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/resume"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/sendkey"),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("POST", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
    (
        "GET",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config",
    ),
    (
        "PUT",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config",
    ),
    (
        "POST",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
    ),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent"),
    ("POST", "/nodes/{node}/qemu/{vmid}/agent/ping"),
    (
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
    ),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-osinfo"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-host-name"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/info"),
    ("POST", "/nodes/{node}/qemu/{vmid}/agent/exec"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/exec-status"),
    ("POST", "/nodes/{node}/qemu/{vmid}/agent/file-write"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/file-read"),
    // Host network
    ("GET", "/nodes/{node}/network"),
    ("POST", "/nodes/{node}/network"),
    ("PUT", "/nodes/{node}/network"),
    ("DELETE", "/nodes/{node}/network"),
    ("GET", "/nodes/{node}/network/{iface}"),
    ("PUT", "/nodes/{node}/network/{iface}"),
    ("DELETE", "/nodes/{node}/network/{iface}"),
    // Storage, disks, backup
    ("GET", "/storage"),
    ("POST", "/storage"),
    ("GET", "/storage/{storage}"),
    ("PUT", "/storage/{storage}"),
    ("DELETE", "/storage/{storage}"),
    ("GET", "/nodes/{node}/storage"),
    ("GET", "/nodes/{node}/storage/{storage}"),
    ("GET", "/nodes/{node}/storage/{storage}/status"),
    ("GET", "/nodes/{node}/storage/{storage}/content"),
    ("GET", "/nodes/{node}/storage/{storage}/content/{volume}"),
    ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}"),
    ("POST", "/nodes/{node}/storage/{storage}/upload"),
    ("POST", "/nodes/{node}/storage/{storage}/download-url"),
    ("GET", "/nodes/{node}/disks/list"),
    ("GET", "/nodes/{node}/disks/zfs"),
    ("POST", "/nodes/{node}/disks/zfs"),
    ("GET", "/nodes/{node}/disks/zfs/{name}"),
    ("DELETE", "/nodes/{node}/disks/zfs/{name}"),
    ("GET", "/cluster/backup"),
    ("POST", "/cluster/backup"),
    ("GET", "/cluster/backup/{id}"),
    ("PUT", "/cluster/backup/{id}"),
    ("DELETE", "/cluster/backup/{id}"),
    ("POST", "/nodes/{node}/vzdump"),
    // Firewall
    ("GET", "/cluster/firewall/options"),
    ("PUT", "/cluster/firewall/options"),
    ("GET", "/cluster/firewall/rules"),
    ("POST", "/cluster/firewall/rules"),
    ("GET", "/cluster/firewall/rules/{pos}"),
    ("PUT", "/cluster/firewall/rules/{pos}"),
    ("DELETE", "/cluster/firewall/rules/{pos}"),
    ("GET", "/cluster/firewall/aliases"),
    ("POST", "/cluster/firewall/aliases"),
    ("GET", "/cluster/firewall/aliases/{name}"),
    ("PUT", "/cluster/firewall/aliases/{name}"),
    ("DELETE", "/cluster/firewall/aliases/{name}"),
    ("GET", "/cluster/firewall/ipset"),
    ("POST", "/cluster/firewall/ipset"),
    ("GET", "/cluster/firewall/ipset/{name}"),
    ("POST", "/cluster/firewall/ipset/{name}"),
    ("DELETE", "/cluster/firewall/ipset/{name}"),
    ("GET", "/cluster/firewall/ipset/{name}/{cidr}"),
    ("PUT", "/cluster/firewall/ipset/{name}/{cidr}"),
    ("DELETE", "/cluster/firewall/ipset/{name}/{cidr}"),
    ("GET", "/cluster/firewall/groups"),
    ("POST", "/cluster/firewall/groups"),
    ("GET", "/cluster/firewall/groups/{group}"),
    ("POST", "/cluster/firewall/groups/{group}"),
    ("DELETE", "/cluster/firewall/groups/{group}"),
    ("GET", "/cluster/firewall/groups/{group}/{pos}"),
    ("PUT", "/cluster/firewall/groups/{group}/{pos}"),
    ("DELETE", "/cluster/firewall/groups/{group}/{pos}"),
    ("GET", "/cluster/firewall/macros"),
    ("GET", "/cluster/firewall/refs"),
    ("GET", "/nodes/{node}/firewall/options"),
    ("PUT", "/nodes/{node}/firewall/options"),
    ("GET", "/nodes/{node}/firewall/rules"),
    ("POST", "/nodes/{node}/firewall/rules"),
    ("GET", "/nodes/{node}/firewall/rules/{pos}"),
    ("PUT", "/nodes/{node}/firewall/rules/{pos}"),
    ("DELETE", "/nodes/{node}/firewall/rules/{pos}"),
    ("GET", "/nodes/{node}/qemu/{vmid}/firewall/options"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/firewall/options"),
    ("GET", "/nodes/{node}/qemu/{vmid}/firewall/rules"),
    ("POST", "/nodes/{node}/qemu/{vmid}/firewall/rules"),
    ("GET", "/nodes/{node}/qemu/{vmid}/firewall/rules/{pos}"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/firewall/rules/{pos}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/firewall/rules/{pos}"),
    ("GET", "/nodes/{node}/qemu/{vmid}/firewall/aliases"),
    ("POST", "/nodes/{node}/qemu/{vmid}/firewall/aliases"),
    ("GET", "/nodes/{node}/qemu/{vmid}/firewall/ipset"),
    ("POST", "/nodes/{node}/qemu/{vmid}/firewall/ipset"),
    ("GET", "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}"),
    ("POST", "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}"),
    (
        "GET",
        "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}/{cidr}",
    ),
    (
        "PUT",
        "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}/{cidr}",
    ),
    (
        "DELETE",
        "/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}/{cidr}",
    ),
    ("GET", "/nodes/{node}/qemu/{vmid}/firewall/aliases/{name}"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/firewall/aliases/{name}"),
    (
        "DELETE",
        "/nodes/{node}/qemu/{vmid}/firewall/aliases/{name}",
    ),
    ("GET", "/nodes/{node}/qemu/{vmid}/firewall/refs"),
];

pub fn is_implemented(method: &str, path: &str) -> bool {
    IMPLEMENTED.iter().any(|(m, p)| *m == method && *p == path)
}

pub async fn dispatch(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let t = r.template.as_str();
    if let Some(rep) = admin::dispatch(inner, r) {
        return rep;
    }
    if t.starts_with("/nodes/{node}/qemu/{vmid}/firewall")
        || t.starts_with("/cluster/firewall")
        || t.starts_with("/nodes/{node}/firewall")
    {
        return firewall::dispatch(inner, r);
    }
    if t.starts_with("/cluster/mapping/dir") {
        return mapping::dispatch(inner, r);
    }
    if t.starts_with("/cluster/mapping/pci") || t == "/nodes/{node}/hardware/pci" {
        return pci::dispatch(inner, r);
    }
    if t.starts_with("/nodes/{node}/qemu") {
        return qemu::dispatch(inner, r).await;
    }
    if t.starts_with("/nodes/{node}/network") {
        return network::dispatch(inner, r);
    }
    if t.starts_with("/storage")
        || t.starts_with("/nodes/{node}/storage")
        || t.starts_with("/nodes/{node}/disks")
        || t.starts_with("/cluster/backup")
        || t == "/nodes/{node}/vzdump"
    {
        return storage::dispatch(inner, r);
    }
    if t.starts_with("/access/users/{userid}/token") {
        return cluster::dispatch(inner, r);
    }
    if t.starts_with("/access/users")
        || t.starts_with("/access/groups")
        || t.starts_with("/access/roles")
        || t == "/access/tfa"
        || t == "/access/acl"
        || t.starts_with("/pools")
    {
        return access::dispatch(inner, r);
    }
    cluster::dispatch(inner, r)
}

/// Shorthand for "this handler has no case for the route" (a bug: listed but missing).
fn missing(r: &Req) -> ApiError {
    ApiError::new(
        501,
        format!("Method '{} {}' not implemented", r.method, r.template),
    )
}

/// A privilege check done inside a handler (endpoints whose schema says `user: all`
/// and describes the real check in prose).
pub(crate) fn require(inner: &Inner, r: &Req, path: &str, privilege: &str) -> Result<(), ApiError> {
    if inner.with_state(|st| crate::auth::has(st, &r.who, path, privilege)) {
        Ok(())
    } else {
        Err(ApiError::e403(format!(
            "Permission check failed ({path}, {privilege})"
        )))
    }
}

/// Task access: the owner, or whoever holds `privilege` on the task's node.
pub(crate) fn require_task(inner: &Inner, r: &Req, privilege: &str) -> Result<(), ApiError> {
    let upid = r.s("upid");
    let owner = upid.split(':').nth(7).unwrap_or("");
    if owner == r.who.full() || owner == r.who.user {
        return Ok(());
    }
    require(inner, r, &format!("/nodes/{}", r.node()), privilege)
}
