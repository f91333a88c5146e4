//! Cluster-wide resource mappings: directory mappings (`/cluster/mapping/dir`) give a
//! host folder to guests as a virtiofs share.

use serde::Deserialize;

use crate::client::{PveClient, seg};
use crate::error::Error;
use crate::params::Params;

/// An entry of `GET /cluster/mapping/dir`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DirMapping {
    pub id: String,
    /// `node=NAME,path=/abs` property strings, one per node.
    #[serde(default)]
    pub map: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl DirMapping {
    /// The folder mapped on `node`, if any.
    pub fn path_on(&self, node: &str) -> Option<String> {
        self.map.iter().find_map(|m| {
            let mut n = None;
            let mut p = None;
            for part in m.split(',') {
                match part.split_once('=') {
                    Some(("node", v)) => n = Some(v),
                    Some(("path", v)) => p = Some(v),
                    _ => {}
                }
            }
            (n == Some(node)).then(|| p.map(str::to_string)).flatten()
        })
    }
}

impl PveClient {
    /// `GET /cluster/mapping/dir`.
    pub async fn dir_mappings(&self) -> Result<Vec<DirMapping>, Error> {
        self.get("/cluster/mapping/dir", Params::new()).await
    }

    /// `POST /cluster/mapping/dir`.
    pub async fn dir_mapping_create(
        &self,
        id: &str,
        map: &[String],
        description: Option<&str>,
    ) -> Result<(), Error> {
        let mut p = Params::new().set("id", id);
        for m in map {
            p = p.push("map", m.as_str());
        }
        let p = p.set_opt("description", description);
        let _: serde_json::Value = self.post("/cluster/mapping/dir", p).await?;
        Ok(())
    }

    /// `PUT /cluster/mapping/dir/{id}` (replaces the node list).
    pub async fn dir_mapping_update(&self, id: &str, map: &[String]) -> Result<(), Error> {
        let mut p = Params::new();
        for m in map {
            p = p.push("map", m.as_str());
        }
        let _: serde_json::Value = self
            .put(&format!("/cluster/mapping/dir/{}", seg(id)), p)
            .await?;
        Ok(())
    }
}

/// An entry of `GET /cluster/mapping/pci`: `map` entries are
/// `node=…,path=…,id=VENDOR:DEVICE[,iommugroup=N][,subsystem-id=…]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PciMapping {
    pub id: String,
    #[serde(default)]
    pub map: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A function of `GET /nodes/{node}/hardware/pci`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PciDevice {
    /// `0000:01:00.0`.
    pub id: String,
    /// `0x030000`.
    pub class: String,
    /// `0x10de`.
    pub vendor: String,
    pub device: String,
    /// -1 when the node has no IOMMU.
    #[serde(default = "no_group")]
    pub iommugroup: i64,
    #[serde(default)]
    pub subsystem_vendor: Option<String>,
    #[serde(default)]
    pub subsystem_device: Option<String>,
    #[serde(default)]
    pub vendor_name: Option<String>,
    #[serde(default)]
    pub device_name: Option<String>,
    #[serde(default, deserialize_with = "crate::de::opt_bool")]
    pub mdev: Option<bool>,
}

fn no_group() -> i64 {
    -1
}

impl PveClient {
    /// `GET /cluster/mapping/pci`.
    pub async fn pci_mappings(&self) -> Result<Vec<PciMapping>, Error> {
        self.get("/cluster/mapping/pci", Params::new()).await
    }

    /// `GET /nodes/{node}/hardware/pci` with no class filtered out (bridges and
    /// other members of an IOMMU group matter for passthrough).
    pub async fn pci_devices(&self, node: &str) -> Result<Vec<PciDevice>, Error> {
        self.get(
            &format!("/nodes/{}/hardware/pci", seg(node)),
            Params::new().set("pci-class-blacklist", ""),
        )
        .await
    }

    /// `POST /cluster/mapping/pci`.
    pub async fn pci_mapping_create(
        &self,
        id: &str,
        map: &[String],
        description: Option<&str>,
    ) -> Result<(), Error> {
        let mut p = Params::new().set("id", id);
        for m in map {
            p = p.push("map", m.as_str());
        }
        let p = p.set_opt("description", description);
        let _: serde_json::Value = self.post("/cluster/mapping/pci", p).await?;
        Ok(())
    }

    /// `PUT /cluster/mapping/pci/{id}` (replaces the node list).
    pub async fn pci_mapping_update(
        &self,
        id: &str,
        map: &[String],
        description: Option<&str>,
    ) -> Result<(), Error> {
        let mut p = Params::new();
        for m in map {
            p = p.push("map", m.as_str());
        }
        let p = p.set_opt("description", description);
        let _: serde_json::Value = self
            .put(&format!("/cluster/mapping/pci/{}", seg(id)), p)
            .await?;
        Ok(())
    }
}
