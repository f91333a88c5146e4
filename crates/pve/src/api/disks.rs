//! Physical disks and ZFS pools.

use reqwest::Method;
use serde::Deserialize;

use super::{Extra, upid_from};
use crate::client::{PveClient, seg};
use crate::de;
use crate::error::Error;
use crate::params::Params;
use crate::upid::Upid;

/// An entry of `GET /nodes/{node}/disks/list`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Disk {
    /// `/dev/sdb`.
    pub devpath: String,
    /// Size in bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub size: Option<u64>,
    /// `hdd`, `ssd`, `nvme`, `usb`, `unknown`.
    #[serde(default, rename = "type")]
    pub disk_type: Option<String>,
    /// Model.
    #[serde(default)]
    pub model: Option<String>,
    /// Serial.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub serial: Option<String>,
    /// WWN.
    #[serde(default)]
    pub wwn: Option<String>,
    /// What uses it (`ZFS`, `LVM`, `partitions`, a filesystem, …); absent = free.
    #[serde(default)]
    pub used: Option<String>,
    /// SMART health.
    #[serde(default)]
    pub health: Option<String>,
    /// Has a GPT.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub gpt: Option<bool>,
    /// Mounted.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub mounted: Option<bool>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Disk {
    /// Not used by anything PVE can see.
    pub fn is_unused(&self) -> bool {
        self.used.as_deref().is_none_or(str::is_empty) && self.mounted != Some(true)
    }
}

/// An entry of `GET /nodes/{node}/disks/zfs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ZfsPool {
    /// Pool name.
    pub name: String,
    /// Size.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub size: Option<u64>,
    /// Allocated.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub alloc: Option<u64>,
    /// Free.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub free: Option<u64>,
    /// `ONLINE`, `DEGRADED`, …
    #[serde(default)]
    pub health: Option<String>,
    /// Fragmentation %.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub frag: Option<u64>,
    /// Dedup ratio.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub dedup: Option<f64>,
}

/// `POST /nodes/{node}/disks/zfs`.
#[derive(Debug, Clone, Default)]
pub struct ZfsCreate {
    /// Pool name.
    pub name: String,
    /// `single`, `mirror`, `raid10`, `raidz`, `raidz2`, `raidz3`, `draid*`.
    pub raidlevel: String,
    /// Devices (`/dev/sdb`).
    pub devices: Vec<String>,
    /// ashift (PVE default 12).
    pub ashift: Option<u32>,
    /// Compression (PVE default `on`).
    pub compression: Option<String>,
    /// Also create a `zfspool` storage named after the pool.
    pub add_storage: Option<bool>,
}

/// Filters for the disk list.
#[derive(Debug, Clone, Default)]
pub struct DiskListFilter {
    /// `unused`, `journal_disks`.
    pub disk_type: Option<String>,
    /// Include partitions.
    pub include_partitions: Option<bool>,
    /// Skip SMART checks (faster).
    pub skipsmart: Option<bool>,
}

impl PveClient {
    /// `GET /nodes/{node}/disks/list`.
    pub async fn disks_list(
        &self,
        node: &str,
        filter: &DiskListFilter,
    ) -> Result<Vec<Disk>, Error> {
        self.get(
            &format!("/nodes/{}/disks/list", seg(node)),
            Params::new()
                .set_opt("type", filter.disk_type.as_deref())
                .set_opt("include-partitions", filter.include_partitions)
                .set_opt("skipsmart", filter.skipsmart),
        )
        .await
    }

    /// `GET /nodes/{node}/disks/zfs`.
    pub async fn zfs_pools(&self, node: &str) -> Result<Vec<ZfsPool>, Error> {
        self.get(&format!("/nodes/{}/disks/zfs", seg(node)), Params::new())
            .await
    }

    /// `POST /nodes/{node}/disks/zfs`: returns the `zfscreate` task.
    pub async fn zfs_create(&self, node: &str, req: &ZfsCreate) -> Result<Upid, Error> {
        let path = format!("/nodes/{}/disks/zfs", seg(node));
        let p = Params::new()
            .set("name", req.name.as_str())
            .set("raidlevel", req.raidlevel.as_str())
            .set("devices", req.devices.join(","))
            .set_opt("ashift", req.ashift)
            .set_opt("compression", req.compression.as_deref())
            .set_opt("add_storage", req.add_storage);
        let r = self.request(Method::POST, &path, p).await?;
        upid_from("POST", &path, r.data)
    }
}

/// `GET /nodes/{node}/disks/zfs/{name}`: the pool's vdev tree and health.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ZfsPoolDetail {
    pub name: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub errors: Option<String>,
    #[serde(default)]
    pub children: Vec<ZfsVdev>,
}

/// One vdev (or section) of a pool; mirrors and raidz groups nest their disks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ZfsVdev {
    pub name: String,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub read: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub write: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub cksum: Option<u64>,
    #[serde(default)]
    pub children: Vec<ZfsVdev>,
}

impl PveClient {
    /// `GET /nodes/{node}/disks/zfs/{name}`.
    pub async fn zfs_pool_detail(&self, node: &str, name: &str) -> Result<ZfsPoolDetail, Error> {
        self.get(
            &format!("/nodes/{}/disks/zfs/{}", seg(node), seg(name)),
            Params::new(),
        )
        .await
    }
}
