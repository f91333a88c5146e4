//! Host network (`/nodes/{node}/network`).
//!
//! Edits go to `interfaces.new` and take effect only on reload (`PUT` without an
//! iface); `DELETE` without an iface reverts the staged file. Labwright stages all
//! bridge edits, reloads once, and reverts if the reload fails.

use reqwest::Method;
use serde::Deserialize;

use super::{Extra, upid_from};
use crate::client::{PveClient, seg};
use crate::de;
use crate::error::Error;
use crate::params::Params;
use crate::upid::Upid;

/// One interface from `GET /nodes/{node}/network`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NetworkIface {
    /// Name (`vmbr0`, `eno1`).
    pub iface: String,
    /// `bridge`, `eth`, `bond`, `vlan`, …
    #[serde(rename = "type")]
    pub iface_type: String,
    /// IPv4 method (`static`, `manual`, `dhcp`).
    #[serde(default)]
    pub method: Option<String>,
    /// IPv6 method.
    #[serde(default)]
    pub method6: Option<String>,
    /// Currently active.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub active: Option<bool>,
    /// `auto <iface>` line.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub autostart: Option<bool>,
    /// Exists in the kernel.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub exists: Option<bool>,
    /// Space-separated bridge ports.
    #[serde(default)]
    pub bridge_ports: Option<String>,
    /// VLAN-aware bridge.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub bridge_vlan_aware: Option<bool>,
    /// Allowed VLANs.
    #[serde(default)]
    pub bridge_vids: Option<String>,
    /// IPv4 CIDR.
    #[serde(default)]
    pub cidr: Option<String>,
    /// IPv4 address.
    #[serde(default)]
    pub address: Option<String>,
    /// Netmask.
    #[serde(default)]
    pub netmask: Option<String>,
    /// IPv4 gateway.
    #[serde(default)]
    pub gateway: Option<String>,
    /// IPv6 CIDR.
    #[serde(default)]
    pub cidr6: Option<String>,
    /// IPv6 gateway.
    #[serde(default)]
    pub gateway6: Option<String>,
    /// Comment.
    #[serde(default)]
    pub comments: Option<String>,
    /// MTU.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub mtu: Option<u32>,
    /// Address families.
    #[serde(default)]
    pub families: Vec<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The interface list plus the pending diff, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    /// Interfaces (with staged changes applied).
    pub ifaces: Vec<NetworkIface>,
    /// Unified diff of `interfaces` vs `interfaces.new`, when changes are staged.
    pub changes: Option<String>,
}

/// Interface settings for create/update. PVE recomputes `method` from what is
/// sent, so an update must carry the full desired set.
#[derive(Debug, Clone, Default)]
pub struct NetworkIfaceConfig {
    /// `bridge`, `eth`, `bond`, `vlan`, … (required on create and update).
    pub iface_type: String,
    /// IPv4 CIDR (`192.168.1.2/24`).
    pub cidr: Option<String>,
    /// IPv4 gateway.
    pub gateway: Option<String>,
    /// IPv6 CIDR.
    pub cidr6: Option<String>,
    /// IPv6 gateway.
    pub gateway6: Option<String>,
    /// Bridge ports (`eno1` or `eno1 eno2`); omit for a port-less bridge.
    pub bridge_ports: Option<String>,
    /// VLAN aware.
    pub bridge_vlan_aware: Option<bool>,
    /// Allowed VLANs.
    pub bridge_vids: Option<String>,
    /// `auto` line.
    pub autostart: Option<bool>,
    /// Comment.
    pub comments: Option<String>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Anything else (`bond_mode`, `slaves`, `vlan-raw-device`, …).
    pub extra: Params,
}

impl NetworkIfaceConfig {
    /// A bridge with the given ports (space-separated, or `None`).
    pub fn bridge(ports: Option<&str>) -> Self {
        Self {
            iface_type: "bridge".into(),
            bridge_ports: ports.map(String::from),
            autostart: Some(true),
            ..Self::default()
        }
    }

    /// Wire parameters.
    pub fn to_params(&self) -> Params {
        Params::new()
            .set("type", self.iface_type.as_str())
            .set_opt("cidr", self.cidr.as_deref())
            .set_opt("gateway", self.gateway.as_deref())
            .set_opt("cidr6", self.cidr6.as_deref())
            .set_opt("gateway6", self.gateway6.as_deref())
            .set_opt("bridge_ports", self.bridge_ports.as_deref())
            .set_opt("bridge_vlan_aware", self.bridge_vlan_aware)
            .set_opt("bridge_vids", self.bridge_vids.as_deref())
            .set_opt("autostart", self.autostart)
            .set_opt("comments", self.comments.as_deref())
            .set_opt("mtu", self.mtu)
            .merge(self.extra.clone())
    }
}

fn net_path(node: &str) -> String {
    format!("/nodes/{}/network", seg(node))
}

impl PveClient {
    /// `GET /nodes/{node}/network[?type=…]`.
    pub async fn network_list(
        &self,
        node: &str,
        type_filter: Option<&str>,
    ) -> Result<NetworkList, Error> {
        let path = net_path(node);
        let r = self
            .request(
                Method::GET,
                &path,
                Params::new().set_opt("type", type_filter),
            )
            .await?;
        Ok(NetworkList {
            ifaces: crate::client::decode(&Method::GET, &path, r.data)?,
            changes: r.changes,
        })
    }

    /// `POST /nodes/{node}/network`: stage a new interface.
    pub async fn network_create(
        &self,
        node: &str,
        iface: &str,
        config: &NetworkIfaceConfig,
    ) -> Result<(), Error> {
        let p = config.to_params().set("iface", iface);
        self.post::<serde_json::Value>(&net_path(node), p)
            .await
            .map(|_| ())
    }

    /// `PUT /nodes/{node}/network/{iface}`: stage an update; `delete` removes keys.
    pub async fn network_update(
        &self,
        node: &str,
        iface: &str,
        config: &NetworkIfaceConfig,
        delete: &[&str],
    ) -> Result<(), Error> {
        let mut p = config.to_params();
        if !delete.is_empty() {
            p.insert("delete", delete.join(","));
        }
        self.put::<serde_json::Value>(&format!("{}/{}", net_path(node), seg(iface)), p)
            .await
            .map(|_| ())
    }

    /// `DELETE /nodes/{node}/network/{iface}`: stage a removal.
    pub async fn network_delete(&self, node: &str, iface: &str) -> Result<(), Error> {
        self.delete::<serde_json::Value>(
            &format!("{}/{}", net_path(node), seg(iface)),
            Params::new(),
        )
        .await
        .map(|_| ())
    }

    /// `PUT /nodes/{node}/network`: apply staged changes (`ifreload -a`); returns the
    /// `srvreload` task.
    pub async fn network_reload(&self, node: &str) -> Result<Upid, Error> {
        let path = net_path(node);
        let r = self.request(Method::PUT, &path, Params::new()).await?;
        upid_from("PUT", &path, r.data)
    }

    /// `DELETE /nodes/{node}/network`: discard staged changes.
    pub async fn network_revert(&self, node: &str) -> Result<(), Error> {
        self.delete::<serde_json::Value>(&net_path(node), Params::new())
            .await
            .map(|_| ())
    }
}
