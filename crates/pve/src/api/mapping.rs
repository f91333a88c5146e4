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
