//! Networks: segments (CIDRs on bridges) and the node's bridges.

use super::*;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Networks {
    /// Network segments by name (`lan`, `services`, `iot`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub segments: BTreeMap<String, Segment>,
    /// Linux bridges on the node by name (`vmbr0` …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bridges: BTreeMap<String, Bridge>,
}
impl Networks {
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.bridges.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Segment {
    pub cidr: Cidr,
    /// The bridge that carries this segment.
    pub bridge: String,
    #[serde(default)]
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bridge {
    /// Physical ports (`nic0`); empty for an internal-only bridge.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Host address on this bridge (CIDR). Internal bridges usually have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Cidr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<std::net::IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub phase: Phase,
    /// VLAN awareness is refused: the lab has no managed switch.
    #[serde(default)]
    pub vlan_aware: bool,
    #[serde(default = "default_true")]
    pub autostart: bool,
}
