//! The desired-state model (`apiVersion: labwright/v1`, `kind: Homelab`).
//!
//! Every struct denies unknown keys: a key that is not here is an error, never silently
//! dropped (the failure of the tool this one replaces). Doc comments become the JSON
//! Schema descriptions shown by editors.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{Cidr, MemoryMib, SecretRef, Size};

mod backups;
mod firewall;
mod network;
mod pci;
mod router;
mod storage;
mod vms;

pub use backups::*;
pub use firewall::*;
pub use network::*;
pub use pci::*;
pub use router::*;
pub use storage::*;
pub use vms::*;

/// The root of a labwright spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// Always `labwright/v1`.
    pub api_version: ApiVersion,
    /// Always `Homelab`.
    pub kind: Kind,
    pub metadata: Metadata,
    /// The Proxmox VE node the lab lives on.
    pub node: Node,
    /// The phase the lab is in now (0: SSD only, 1: HDDs and ZFS, 2: segmentation).
    /// Resources of a later phase are planned as deferred, never applied.
    #[serde(default)]
    pub phase: Phase,
    #[serde(default)]
    pub safety_guards: SafetyGuards,
    #[serde(default, skip_serializing_if = "Networks::is_empty")]
    pub networks: Networks,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<Vm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backups: Option<Backups>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<Firewall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailscale: Option<Tailscale>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<Router>,
    /// PCI resource mappings (cluster-wide): devices VMs pass through by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pci_mappings: Vec<PciMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_checks: Vec<ValidationCheck>,
    /// How `labwright check` treats this spec's findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicySettings>,
}

/// Warnings the spec's author has read and accepts (`policy.acknowledge: [rule-id]`):
/// they are still shown, as advice, and no longer fail `check --strict`. Errors cannot
/// be acknowledged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySettings {
    /// Rule ids whose warnings are accepted (see `labwright check --list-rules`).
    #[serde(default)]
    pub acknowledge: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "labwright/v1")]
    V1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    Homelab,
}

/// A deployment phase: 0, 1 or 2.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub struct Phase(pub u8);

impl TryFrom<u8> for Phase {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        if v <= 2 {
            Ok(Phase(v))
        } else {
            Err(format!("phase {v} does not exist; phases are 0, 1 and 2"))
        }
    }
}
impl From<Phase> for u8 {
    fn from(p: Phase) -> u8 {
        p.0
    }
}
impl JsonSchema for Phase {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Phase".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "integer", "enum": [0, 1, 2]})
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Name of the lab (used in snapshot names and plan files).
    pub name: String,
    /// Who owns the lab (used for the `owner-*` tag convention).
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The Proxmox VE node. A cluster will add `nodes:`; today there is exactly one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// PVE node name (`proxmox` in the reference lab).
    pub name: String,
    /// The node's management address, for the lockout proof and probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Cidr>,
    /// Storage that holds the system SSD's guest disks (default `local-lvm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_storage: Option<String>,
    /// Storage for ISO images and cloud-init seeds (default `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso_storage: Option<String>,
    /// The node's SSH, `user@host[:port]`, for what the API cannot do (ZFS datasets,
    /// sanoid). Your own ssh client, agent and known_hosts are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<String>,
}

/// Ports every management source must keep reaching on the node (SSH, web UI): the
/// one list the policy proof, the engine's proof and the matrix use.
pub const MANAGEMENT_PORTS: [u16; 2] = [22, 8006];

/// Tailscale's address range (its CGNAT block), used unless
/// `safetyGuards.tailscaleCidr` says otherwise.
pub const TAILSCALE_RANGE: Cidr = Cidr(ipnet::IpNet::new_assert(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(100, 64, 0, 0)),
    10,
));

/// How far labwright may go. Every switch is off by default: a spec must opt in to
/// firewall, host-network, backup and destructive changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SafetyGuards {
    #[serde(default)]
    pub execution_mode: ExecutionMode,
    /// Admin networks that must always reach the node on tcp/22 and tcp/8006.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub management_access_cidrs: Vec<Cidr>,
    /// The Tailscale address range (100.64.0.0/10 unless the tailnet says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailscale_cidr: Option<Cidr>,
    /// Management of the node is expected over Tailscale: the Tailscale range must then
    /// keep reaching 22 and 8006.
    #[serde(default)]
    pub tailscale_management: bool,
    #[serde(default)]
    pub allow_firewall_changes: bool,
    #[serde(default)]
    pub allow_host_network_changes: bool,
    #[serde(default)]
    pub allow_backup_changes: bool,
    /// Allow plans that delete guests, disks or jobs (apply also needs `--allow-destroy`).
    #[serde(default)]
    pub allow_destroy: bool,
}

impl SafetyGuards {
    /// The Tailscale range this lab uses.
    pub fn tailscale_range(&self) -> Cidr {
        self.tailscale_cidr.unwrap_or(TAILSCALE_RANGE)
    }
}

/// `planOnly`: apply refuses to write. `safe`: only additive and low/medium-risk
/// changes without explicit approval. `full`: everything the guards allow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExecutionMode {
    PlanOnly,
    #[default]
    Safe,
    Full,
}

pub(crate) fn default_true() -> bool {
    true
}
pub(crate) fn is_true(b: &bool) -> bool {
    *b
}
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

impl Spec {
    /// The VM with this name, if declared.
    pub fn vm_by_name(&self, name: &str) -> Option<&Vm> {
        self.vms.iter().find(|v| v.name == name)
    }
}
