//! The PVE firewall the spec declares and the phase-2 segment matrix.

use super::*;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Firewall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<FirewallLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<FirewallLevel>,
    /// Named addresses (`admin-pc: 192.168.1.50`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, Cidr>,
    /// Named address sets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ipsets: BTreeMap<String, Vec<Cidr>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub security_groups: BTreeMap<String, Vec<FwRule>>,
    /// Phase-2 segment matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<Matrix>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FirewallLevel {
    #[serde(default)]
    pub options: FwOptions,
    /// Rules in order; each has a stable `id` kept in the rule comment on the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<FwRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FwOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_in: Option<FwPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_out: Option<FwPolicy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum FwPolicy {
    Accept,
    Drop,
    Reject,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FwRule {
    /// Stable id (kebab-case), kept in the rule comment as `[lw:<id>]`.
    pub id: String,
    /// `ACCEPT`, `DROP`, `REJECT`, or a security group name with `direction: group`.
    pub action: String,
    #[serde(default)]
    pub direction: FwDirection,
    /// A PVE macro such as `SSH`, `HTTPS`, `DNS`, `Ping`.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "macro")]
    pub macro_name: Option<String>,
    /// CIDR, address, alias name or `+ipset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// PVE port syntax: `22`, `80,443`, `8000:8100`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<PortSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<PortSpec>,
    /// Interface (`vmbr0`, `net0`); a rule on a WAN-facing interface is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default = "default_true")]
    pub enable: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub log: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FwDirection {
    #[default]
    In,
    Out,
    Group,
}

/// Phase-2 segmentation intent: default deny between segments plus explicit flows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matrix {
    #[serde(default = "drop_policy")]
    pub default_between_segments: FwPolicy,
    #[serde(default = "two_phase")]
    pub phase: Phase,
    /// Allowed flows (`from` / `to`: segment, VM name, `management`, `tailscale`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<MatrixFlow>,
    /// Explicitly blocked flows (documented intent; checked by the matrix proof).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<MatrixFlow>,
}

pub(crate) fn two_phase() -> Phase {
    Phase(2)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatrixFlow {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub proto: Proto,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}
