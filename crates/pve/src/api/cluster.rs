//! Version, nodes, cluster inventory and permissions.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Extra;
use crate::client::{PveClient, seg};
use crate::de;
use crate::error::Error;
use crate::params::Params;

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Version {
    /// Full pve-manager version (`9.1.1`; PVE 7 used `7.2-3`).
    pub version: String,
    /// Release (`9.1`).
    #[serde(default)]
    pub release: String,
    /// Repository commit id.
    #[serde(default)]
    pub repoid: String,
    /// Default console, if configured.
    #[serde(default)]
    pub console: Option<String>,
}

impl Version {
    /// Major version number (`9` for `9.1.1`).
    pub fn major(&self) -> Option<u32> {
        self.version
            .split(['.', '-'])
            .next()
            .and_then(|m| m.parse().ok())
    }
}

/// An entry of `GET /nodes`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeEntry {
    /// Node name (use this, not an IP, in node paths).
    pub node: String,
    /// `online`, `offline` or `unknown`.
    #[serde(default)]
    pub status: String,
    /// SHA-256 of the node certificate (`AA:BB:…`), for pinning.
    #[serde(default)]
    pub ssl_fingerprint: Option<String>,
    /// CPU usage (0–1).
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// CPU count.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxcpu: Option<u64>,
    /// Used memory (bytes).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub mem: Option<u64>,
    /// Total memory (bytes).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// Uptime (s).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// Support level.
    #[serde(default)]
    pub level: Option<String>,
}

/// `GET /nodes/{node}/status` (the parts labwright reads; the rest is in `extra`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeStatus {
    /// `pve-manager/9.1.1/…`.
    #[serde(default)]
    pub pveversion: String,
    /// CPU usage (0–1).
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// Uptime (s).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// Memory totals.
    #[serde(default)]
    pub memory: Option<UsageInfo>,
    /// Root filesystem usage.
    #[serde(default)]
    pub rootfs: Option<UsageInfo>,
    /// Load average (PVE sends strings).
    #[serde(default)]
    pub loadavg: Vec<serde_json::Value>,
    /// Other fields (`cpuinfo`, `boot-info`, `current-kernel`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// Totals for memory or a filesystem.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UsageInfo {
    /// Total bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub total: Option<u64>,
    /// Used bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub used: Option<u64>,
    /// Free bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub free: Option<u64>,
    /// Available bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub avail: Option<u64>,
}

/// `type=` filter of `/cluster/resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// Guests (qemu + lxc).
    Vm,
    /// Storages per node.
    Storage,
    /// Nodes.
    Node,
    /// SDN objects.
    Sdn,
}

impl ResourceType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Vm => "vm",
            Self::Storage => "storage",
            Self::Node => "node",
            Self::Sdn => "sdn",
        }
    }
}

/// An entry of `GET /cluster/resources`: the one-request inventory for scans.
///
/// Fields fed from RRD data lag ~10 s; right after a create only `id`, `vmid`,
/// `node`, `type` and `status: unknown` may be present.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClusterResource {
    /// `qemu/100`, `node/pve`, `storage/pve/local`.
    pub id: String,
    /// `qemu`, `lxc`, `node`, `storage`, `pool`, `sdn`, …
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Node.
    #[serde(default)]
    pub node: Option<String>,
    /// Guest id.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub vmid: Option<u32>,
    /// Guest name.
    #[serde(default)]
    pub name: Option<String>,
    /// `running`, `stopped`, `online`, `available`, `unknown`, …
    #[serde(default)]
    pub status: Option<String>,
    /// Guest is a template.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub template: Option<bool>,
    /// Tags (`;`-separated).
    #[serde(default)]
    pub tags: Option<String>,
    /// Config lock.
    #[serde(default)]
    pub lock: Option<String>,
    /// Pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// HA state.
    #[serde(default)]
    pub hastate: Option<String>,
    /// Storage id.
    #[serde(default)]
    pub storage: Option<String>,
    /// Storage plugin type.
    #[serde(default)]
    pub plugintype: Option<String>,
    /// Storage content types.
    #[serde(default)]
    pub content: Option<String>,
    /// Shared storage.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub shared: Option<bool>,
    /// CPU usage.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// CPUs.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub maxcpu: Option<f64>,
    /// Memory used.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub mem: Option<u64>,
    /// Memory size.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// Disk used.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub disk: Option<u64>,
    /// Disk size.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxdisk: Option<u64>,
    /// Uptime.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An entry of `GET /cluster/status`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClusterStatusEntry {
    /// `cluster` or `node/<name>`.
    pub id: String,
    /// Cluster or node name.
    pub name: String,
    /// `cluster` or `node`.
    #[serde(rename = "type")]
    pub entry_type: String,
    /// Node IP.
    #[serde(default)]
    pub ip: Option<String>,
    /// The node answering this request.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub local: Option<bool>,
    /// Node online.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub online: Option<bool>,
    /// Cluster quorate.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub quorate: Option<bool>,
    /// Node count.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub nodes: Option<u64>,
    /// Node id.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub nodeid: Option<u64>,
}

/// An entry of `GET /nodes/{node}/certificates/info`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CertificateInfo {
    /// File name (`pve-ssl.pem`, `pveproxy-ssl.pem`, `pve-root-ca.pem`).
    #[serde(default)]
    pub filename: Option<String>,
    /// SHA-256 fingerprint (`AA:BB:…`).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Issuer.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Subject alternative names.
    #[serde(default)]
    pub san: Vec<String>,
    /// Not valid after (epoch).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub notafter: Option<u64>,
    /// Not valid before (epoch).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub notbefore: Option<u64>,
}

/// `GET /access/permissions`: path → privilege → propagate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions(pub BTreeMap<String, BTreeMap<String, bool>>);

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, BTreeMap<String, serde_json::Value>>::deserialize(d)?;
        Ok(Self(
            raw.into_iter()
                .map(|(path, privs)| {
                    let privs = privs
                        .into_iter()
                        .map(|(p, v)| (p, de::value_to_bool(&v).unwrap_or(false)))
                        .collect();
                    (path, privs)
                })
                .collect(),
        ))
    }
}

impl Permissions {
    /// Whether `privilege` is granted on exactly `path` or inherited from a parent
    /// path with propagation (the server already resolves most of this).
    pub fn has(&self, path: &str, privilege: &str) -> bool {
        if self.0.get(path).is_some_and(|p| p.contains_key(privilege)) {
            return true;
        }
        let mut cur = path.trim_end_matches('/');
        while let Some(idx) = cur.rfind('/') {
            cur = &cur[..idx];
            let parent = if cur.is_empty() { "/" } else { cur };
            if self
                .0
                .get(parent)
                .and_then(|p| p.get(privilege))
                .is_some_and(|propagate| *propagate)
            {
                return true;
            }
            if cur.is_empty() {
                break;
            }
        }
        false
    }
}

/// `GET /nodes/{node}/time`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeTime {
    /// Seconds since the epoch (UTC), by the node's clock.
    #[serde(deserialize_with = "de::u64_lenient")]
    pub time: u64,
    #[serde(default)]
    pub timezone: Option<String>,
}

impl PveClient {
    /// `GET /nodes/{node}/time`: the node's clock (for a clock-skew check).
    pub async fn node_time(&self, node: &str) -> Result<NodeTime, Error> {
        self.get(&format!("/nodes/{}/time", seg(node)), Params::new())
            .await
    }

    /// `GET /version`: cheap connectivity and auth check.
    pub async fn version(&self) -> Result<Version, Error> {
        self.get("/version", Params::new()).await
    }

    /// `GET /nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeEntry>, Error> {
        self.get("/nodes", Params::new()).await
    }

    /// `GET /nodes/{node}/status`.
    pub async fn node_status(&self, node: &str) -> Result<NodeStatus, Error> {
        self.get(&format!("/nodes/{}/status", seg(node)), Params::new())
            .await
    }

    /// `GET /cluster/resources[?type=…]`.
    pub async fn cluster_resources(
        &self,
        filter: Option<ResourceType>,
    ) -> Result<Vec<ClusterResource>, Error> {
        let p = Params::new().set_opt("type", filter.map(ResourceType::as_str));
        self.get("/cluster/resources", p).await
    }

    /// `GET /cluster/status`.
    pub async fn cluster_status(&self) -> Result<Vec<ClusterStatusEntry>, Error> {
        self.get("/cluster/status", Params::new()).await
    }

    /// `GET /cluster/nextid`; with `vmid`, checks that id is free (error if taken).
    pub async fn next_id(&self, vmid: Option<u32>) -> Result<u32, Error> {
        let v: serde_json::Value = self
            .get("/cluster/nextid", Params::new().set_opt("vmid", vmid))
            .await?;
        de::value_to_u64(&v)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| Error::Decode {
                method: "GET".into(),
                path: "/cluster/nextid".into(),
                message: format!("expected a VMID, got {v}"),
            })
    }

    /// `GET /nodes/{node}/certificates/info`: fingerprints for (re-)pinning after a
    /// certificate renewal, checked over an already trusted connection.
    pub async fn node_certificates(&self, node: &str) -> Result<Vec<CertificateInfo>, Error> {
        self.get(
            &format!("/nodes/{}/certificates/info", seg(node)),
            Params::new(),
        )
        .await
    }

    /// `GET /access/permissions` for the caller (or `userid`, optionally one `path`).
    pub async fn permissions(
        &self,
        path: Option<&str>,
        userid: Option<&str>,
    ) -> Result<Permissions, Error> {
        let p = Params::new()
            .set_opt("path", path)
            .set_opt("userid", userid);
        self.get("/access/permissions", p).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_real_resource_entries() {
        let r: Vec<ClusterResource> = serde_json::from_value(json!([
            {"cpu":0.01,"disk":0,"diskread":32633856,"id":"qemu/100","maxcpu":1,"maxdisk":4294967296u64,
             "maxmem":536870912,"mem":385351680,"name":"pve-suivi","node":"n1","status":"running",
             "template":0,"type":"qemu","uptime":127,"vmid":100},
            {"id":"qemu/101","vmid":"101","node":"n1","type":"qemu","status":"unknown"},
            {"id":"storage/n1/local","type":"storage","storage":"local","shared":0,"content":"iso,backup",
             "plugintype":"dir","status":"available","node":"n1"}
        ]))
        .expect("decodes");
        assert_eq!(r[0].vmid, Some(100));
        assert_eq!(r[0].template, Some(false));
        assert!(r[0].extra.contains_key("diskread"));
        assert_eq!(r[1].vmid, Some(101));
        assert_eq!(r[1].name, None);
        assert_eq!(r[2].shared, Some(false));
    }

    #[test]
    fn permissions_lookup() {
        let p: Permissions = serde_json::from_value(json!({
            "/": {"Sys.Audit": 1},
            "/vms": {"VM.Audit": 0},
            "/vms/100": {"VM.PowerMgmt": 1}
        }))
        .expect("decodes");
        assert!(p.has("/vms/100", "VM.PowerMgmt"));
        assert!(p.has("/nodes/pve", "Sys.Audit"));
        assert!(!p.has("/vms/100", "VM.Audit"));
        assert!(p.has("/vms", "VM.Audit"));
        assert!(!p.has("/storage/local", "Datastore.Audit"));
    }

    #[test]
    fn version_major() {
        let v: Version =
            serde_json::from_value(json!({"version":"9.1.1","release":"9.1","repoid":"abc"}))
                .expect("v");
        assert_eq!(v.major(), Some(9));
    }
}
