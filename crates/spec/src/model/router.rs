//! Tailscale, the phase-2 router and the validation checks.

use super::*;

/// Tailnet-wide intent. Which VMs join is said per VM (`bootstrap.tailscale`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tailscale {
    /// Tailnet name (e.g. `example.ts.net`), for documentation and checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailnet: Option<String>,
    /// Default auth key reference for joining VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_key: Option<SecretRef>,
    /// Subnet routes the tailnet should carry, and through which VM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnet_routes: Vec<SubnetRoute>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubnetRoute {
    /// Segment name or CIDR.
    pub route: String,
    /// VM name that advertises it.
    pub via: String,
    #[serde(default)]
    pub phase: Phase,
}

/// The phase-2 router VM (OPNsense) and its interfaces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Router {
    /// VM name of the router (`firewall-router`).
    pub vm: String,
    /// Interfaces by router-side name (`wan`, `services`, `iot`).
    pub interfaces: BTreeMap<String, RouterInterface>,
    /// Port forwards. Always refused (`no-public-exposure`): remote access is Tailscale only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_forwards: Vec<serde_json::Value>,
    /// A DMZ host. Always refused (`no-public-exposure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmz_host: Option<String>,
    #[serde(default = "two_phase")]
    pub phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterInterface {
    /// NIC slot on the router VM (`net0`).
    pub nic: String,
    /// Segment this interface sits on.
    pub segment: String,
    /// Router address on the segment; `dhcp` upstream when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Cidr>,
    /// Serve DHCP on this segment.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dhcp: bool,
}

/// A check run by `validate` after apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidationCheck {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCheck {
    /// URL to fetch; `{vm:NAME}` is replaced by the VM's address as its guest agent
    /// reports it.
    pub url: String,
    #[serde(default = "ok_status")]
    pub expect_status: u16,
    /// Run from inside this VM through the guest agent (default: the node's side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_vm: Option<String>,
}

pub(crate) fn ok_status() -> u16 {
    200
}
