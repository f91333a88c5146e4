//! QEMU VMs: list, create, config (digest, sync/async), pending, destroy, power,
//! snapshots, resize.

use reqwest::Method;
use serde::Deserialize;

use super::{Extra, opt_upid_from, upid_from};
use crate::client::{PveClient, seg};
use crate::de;
use crate::error::Error;
use crate::params::Params;
use crate::upid::Upid;
use crate::vmconfig::VmConfig;

/// An entry of `GET /nodes/{node}/qemu`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VmListEntry {
    /// VMID.
    #[serde(deserialize_with = "de::u32_lenient")]
    pub vmid: u32,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// `running` or `stopped`.
    #[serde(default)]
    pub status: String,
    /// Tags.
    #[serde(default)]
    pub tags: Option<String>,
    /// Lock.
    #[serde(default)]
    pub lock: Option<String>,
    /// Template flag.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub template: Option<bool>,
    /// Memory size.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// Boot disk size.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxdisk: Option<u64>,
    /// Uptime.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `GET …/status/current`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VmStatus {
    /// VMID.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub vmid: Option<u32>,
    /// `running` or `stopped`.
    pub status: String,
    /// QMP status (`running`, `paused`, `prelaunch`, …).
    #[serde(default)]
    pub qmpstatus: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Guest agent enabled in config.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub agent: Option<bool>,
    /// Lock.
    #[serde(default)]
    pub lock: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<String>,
    /// Template flag.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub template: Option<bool>,
    /// Uptime.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// Memory size.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// QEMU version running.
    #[serde(default, rename = "running-qemu")]
    pub running_qemu: Option<String>,
    /// Everything else (`ha`, `cpus`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

impl VmStatus {
    /// Whether the VM is running.
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

/// An entry of `GET …/pending`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PendingEntry {
    /// Config key.
    pub key: String,
    /// Current value.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub value: Option<String>,
    /// Pending new value.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub pending: Option<String>,
    /// 1 = pending delete, 2 = forced delete.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub delete: Option<u32>,
}

impl PendingEntry {
    /// Whether this key has a change waiting for a restart.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some() || self.delete.is_some_and(|d| d > 0)
    }
}

/// An entry of `GET …/snapshot` (the last one is `current`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Snapshot {
    /// Name (`current` = the live state).
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Creation time.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub snaptime: Option<u64>,
    /// Includes RAM.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub vmstate: Option<bool>,
    /// Parent snapshot.
    #[serde(default)]
    pub parent: Option<String>,
    /// Incomplete snapshot state (`prepare`, `delete`).
    #[serde(default)]
    pub snapstate: Option<String>,
    /// Config digest (only on `current`).
    #[serde(default)]
    pub digest: Option<String>,
}

/// Options for `DELETE /nodes/{node}/qemu/{vmid}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestroyOptions {
    /// Also remove from backup jobs, replication and HA.
    pub purge: bool,
    /// Also destroy disks on enabled storages that are not referenced in the config.
    pub destroy_unreferenced_disks: bool,
    /// Ignore locks (root@pam ticket only).
    pub skiplock: bool,
}

/// Options for `POST …/status/shutdown`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownOptions {
    /// Seconds to wait (PVE default 60).
    pub timeout: Option<u32>,
    /// Hard-stop after the timeout instead of failing.
    pub force_stop: bool,
}

fn vm_path(node: &str, vmid: u32, suffix: &str) -> String {
    format!("/nodes/{}/qemu/{vmid}{suffix}", seg(node))
}

impl PveClient {
    async fn upid_call(&self, method: Method, path: &str, params: Params) -> Result<Upid, Error> {
        let r = self.request(method.clone(), path, params).await?;
        upid_from(method.as_str(), path, r.data)
    }

    async fn opt_upid_call(
        &self,
        method: Method,
        path: &str,
        params: Params,
    ) -> Result<Option<Upid>, Error> {
        let r = self.request(method.clone(), path, params).await?;
        opt_upid_from(method.as_str(), path, r.data)
    }

    /// `GET /nodes/{node}/qemu`.
    pub async fn qemu_list(&self, node: &str) -> Result<Vec<VmListEntry>, Error> {
        self.get(&format!("/nodes/{}/qemu", seg(node)), Params::new())
            .await
    }

    /// `POST /nodes/{node}/qemu`: create a VM; `config` holds config keys and create
    /// options (`storage`, `start`, …). Returns the `qmcreate` task.
    pub async fn qemu_create(&self, node: &str, vmid: u32, config: Params) -> Result<Upid, Error> {
        let p = config.set("vmid", vmid);
        self.upid_call(Method::POST, &format!("/nodes/{}/qemu", seg(node)), p)
            .await
    }

    /// `GET …/config` (pending changes applied, as PVE does by default).
    pub async fn qemu_config(&self, node: &str, vmid: u32) -> Result<VmConfig, Error> {
        self.get(&vm_path(node, vmid, "/config"), Params::new())
            .await
    }

    /// `GET …/config?current=1` (the running config, without pending changes).
    pub async fn qemu_config_current(&self, node: &str, vmid: u32) -> Result<VmConfig, Error> {
        self.get(
            &vm_path(node, vmid, "/config"),
            Params::new().set("current", true),
        )
        .await
    }

    /// `GET …/config?snapshot=NAME`.
    pub async fn qemu_config_snapshot(
        &self,
        node: &str,
        vmid: u32,
        snapshot: &str,
    ) -> Result<VmConfig, Error> {
        self.get(
            &vm_path(node, vmid, "/config"),
            Params::new().set("snapshot", snapshot),
        )
        .await
    }

    /// `POST …/config` (async; use for disk allocation, `import-from`, hotplug).
    /// Pass the `digest` from the config you planned against to fail on concurrent
    /// edits. `delete` lists keys to remove. Returns the `qmconfig` task, or `None`
    /// if the server finished within `background_delay`.
    pub async fn qemu_update_config_async(
        &self,
        node: &str,
        vmid: u32,
        changes: Params,
        delete: &[&str],
        digest: Option<&str>,
    ) -> Result<Option<Upid>, Error> {
        let p = config_params(changes, delete, digest);
        self.opt_upid_call(Method::POST, &vm_path(node, vmid, "/config"), p)
            .await
    }

    /// `PUT …/config` (sync; for changes that allocate nothing).
    pub async fn qemu_update_config(
        &self,
        node: &str,
        vmid: u32,
        changes: Params,
        delete: &[&str],
        digest: Option<&str>,
    ) -> Result<(), Error> {
        let p = config_params(changes, delete, digest);
        self.put::<serde_json::Value>(&vm_path(node, vmid, "/config"), p)
            .await
            .map(|_| ())
    }

    /// `GET …/pending`.
    pub async fn qemu_pending(&self, node: &str, vmid: u32) -> Result<Vec<PendingEntry>, Error> {
        self.get(&vm_path(node, vmid, "/pending"), Params::new())
            .await
    }

    /// `DELETE /nodes/{node}/qemu/{vmid}`: returns the `qmdestroy` task.
    pub async fn qemu_delete(
        &self,
        node: &str,
        vmid: u32,
        opts: DestroyOptions,
    ) -> Result<Upid, Error> {
        let mut p = Params::new();
        if opts.purge {
            p.insert("purge", true);
        }
        if opts.destroy_unreferenced_disks {
            p.insert("destroy-unreferenced-disks", true);
        }
        if opts.skiplock {
            p.insert("skiplock", true);
        }
        self.upid_call(Method::DELETE, &vm_path(node, vmid, ""), p)
            .await
    }

    /// `GET …/status/current`.
    pub async fn qemu_status(&self, node: &str, vmid: u32) -> Result<VmStatus, Error> {
        self.get(&vm_path(node, vmid, "/status/current"), Params::new())
            .await
    }

    /// `POST …/status/start`.
    pub async fn qemu_start(&self, node: &str, vmid: u32) -> Result<Upid, Error> {
        self.upid_call(
            Method::POST,
            &vm_path(node, vmid, "/status/start"),
            Params::new(),
        )
        .await
    }

    /// `POST …/status/stop` (hard stop); `overrule_shutdown` aborts running shutdowns.
    pub async fn qemu_stop(
        &self,
        node: &str,
        vmid: u32,
        overrule_shutdown: bool,
    ) -> Result<Upid, Error> {
        let mut p = Params::new();
        if overrule_shutdown {
            p.insert("overrule-shutdown", true);
        }
        self.upid_call(Method::POST, &vm_path(node, vmid, "/status/stop"), p)
            .await
    }

    /// `POST …/status/shutdown` (ACPI or guest agent).
    pub async fn qemu_shutdown(
        &self,
        node: &str,
        vmid: u32,
        opts: ShutdownOptions,
    ) -> Result<Upid, Error> {
        let mut p = Params::new().set_opt("timeout", opts.timeout);
        if opts.force_stop {
            p.insert("forceStop", true);
        }
        self.upid_call(Method::POST, &vm_path(node, vmid, "/status/shutdown"), p)
            .await
    }

    /// `POST …/status/reboot` (applies pending changes).
    pub async fn qemu_reboot(
        &self,
        node: &str,
        vmid: u32,
        timeout: Option<u32>,
    ) -> Result<Upid, Error> {
        self.upid_call(
            Method::POST,
            &vm_path(node, vmid, "/status/reboot"),
            Params::new().set_opt("timeout", timeout),
        )
        .await
    }

    /// `GET …/snapshot`.
    pub async fn qemu_snapshots(&self, node: &str, vmid: u32) -> Result<Vec<Snapshot>, Error> {
        self.get(&vm_path(node, vmid, "/snapshot"), Params::new())
            .await
    }

    /// `POST …/snapshot`: returns the `qmsnapshot` task.
    pub async fn qemu_snapshot_create(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        description: Option<&str>,
        vmstate: bool,
    ) -> Result<Upid, Error> {
        let mut p = Params::new()
            .set("snapname", name)
            .set_opt("description", description);
        if vmstate {
            p.insert("vmstate", true);
        }
        self.upid_call(Method::POST, &vm_path(node, vmid, "/snapshot"), p)
            .await
    }

    /// `POST …/snapshot/{name}/rollback`; `start` starts the VM afterwards.
    pub async fn qemu_snapshot_rollback(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        start: Option<bool>,
    ) -> Result<Upid, Error> {
        self.upid_call(
            Method::POST,
            &vm_path(node, vmid, &format!("/snapshot/{}/rollback", seg(name))),
            Params::new().set_opt("start", start),
        )
        .await
    }

    /// `DELETE …/snapshot/{name}`; `force` removes the config entry even if
    /// removing the disk snapshots fails.
    pub async fn qemu_snapshot_delete(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        force: bool,
    ) -> Result<Upid, Error> {
        let mut p = Params::new();
        if force {
            p.insert("force", true);
        }
        self.upid_call(
            Method::DELETE,
            &vm_path(node, vmid, &format!("/snapshot/{}", seg(name))),
            p,
        )
        .await
    }

    /// `PUT …/cloudinit`: regenerate the cloud-init drive now (changes otherwise
    /// reach the guest only at the next start).
    pub async fn qemu_cloudinit_regenerate(&self, node: &str, vmid: u32) -> Result<(), Error> {
        self.put::<serde_json::Value>(&vm_path(node, vmid, "/cloudinit"), Params::new())
            .await
            .map(|_| ())
    }

    /// `PUT …/resize`: `size` is absolute (`32G`) or relative (`+8G`). PVE 9
    /// returns a task; older versions return `null`.
    pub async fn qemu_resize(
        &self,
        node: &str,
        vmid: u32,
        disk: &str,
        size: &str,
        digest: Option<&str>,
    ) -> Result<Option<Upid>, Error> {
        let p = Params::new()
            .set("disk", disk)
            .set("size", size)
            .set_opt("digest", digest);
        self.opt_upid_call(Method::PUT, &vm_path(node, vmid, "/resize"), p)
            .await
    }
}

fn config_params(changes: Params, delete: &[&str], digest: Option<&str>) -> Params {
    let mut p = changes.set_opt("digest", digest);
    if !delete.is_empty() {
        p.insert("delete", delete.join(","));
    }
    p
}
