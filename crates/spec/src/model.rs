//! The desired-state model (`apiVersion: labwright/v1`, `kind: Homelab`).
//!
//! Every struct denies unknown keys: a key that is not here is an error, never silently
//! dropped (the failure of the tool this one replaces). Doc comments become the JSON
//! Schema descriptions shown by editors.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{Cidr, MemoryMib, SecretRef, Size};

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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_checks: Vec<ValidationCheck>,
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
}

/// How far labwright may go. Every switch is off by default: a spec must opt in to
/// firewall, host-network, backup and destructive changes.
/// Ports every management source must keep reaching on the node (SSH, web UI): the
/// one list the policy proof, the engine's proof and the matrix use.
pub const MANAGEMENT_PORTS: [u16; 2] = [22, 8006];

/// Tailscale's address range (its CGNAT block), used unless
/// `safetyGuards.tailscaleCidr` says otherwise.
pub const TAILSCALE_RANGE: Cidr = Cidr(ipnet::IpNet::new_assert(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(100, 64, 0, 0)),
    10,
));

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

fn default_true() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// A QEMU virtual machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Vm {
    pub vmid: u32,
    pub name: String,
    /// The role this VM plays (`edge-gateway`, `firewall-router`, `app-host`,
    /// `home-assistant`, `monitoring`, `pbs`); the seeds fix a VMID for each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub phase: Phase,
    pub cores: u32,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub sockets: u32,
    pub memory: MemoryMib,
    /// CPU type (default `x86-64-v2-AES`, PVE's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default)]
    pub bios: Bios,
    #[serde(default)]
    pub machine: Machine,
    /// SCSI controller (the standard is `virtio-scsi-single`).
    #[serde(default)]
    pub scsihw: ScsiHw,
    /// Guest OS type as PVE names it (`l26`, `other`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ostype: Option<String>,
    /// Disks keyed by slot: `scsi0`, `scsi1`, `virtio0`, `sata0`, `efidisk0` ….
    #[serde(default)]
    pub disks: BTreeMap<String, Disk>,
    /// NICs keyed by slot: `net0`, `net1` ….
    #[serde(default)]
    pub nics: BTreeMap<String, Nic>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// QEMU guest agent enabled (the standard: on where the guest supports it).
    #[serde(default = "default_true")]
    pub agent: bool,
    #[serde(default = "default_true")]
    pub onboot: bool,
    /// Boot order position among guests (PVE `startup: order=N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_order: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protection: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the OS comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsSource>,
    /// What to set up inside the guest on first boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Bootstrap>,
    /// Desired power state (default `running`).
    #[serde(default)]
    pub power: PowerState,
    /// Guest firewall: default inbound deny plus an allowlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<VmFirewall>,
}

fn one() -> u32 {
    1
}
fn is_one(n: &u32) -> bool {
    *n == 1
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bios {
    #[default]
    Seabios,
    Ovmf,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Machine {
    #[default]
    Q35,
    Pc,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ScsiHw {
    #[default]
    VirtioScsiSingle,
    VirtioScsiPci,
    Lsi,
    Lsi53c810,
    Megasas,
    Pvscsi,
}

impl ScsiHw {
    pub fn as_pve(&self) -> &'static str {
        match self {
            ScsiHw::VirtioScsiSingle => "virtio-scsi-single",
            ScsiHw::VirtioScsiPci => "virtio-scsi-pci",
            ScsiHw::Lsi => "lsi",
            ScsiHw::Lsi53c810 => "lsi53c810",
            ScsiHw::Megasas => "megasas",
            ScsiHw::Pvscsi => "pvscsi",
        }
    }
    pub fn is_virtio(&self) -> bool {
        matches!(self, ScsiHw::VirtioScsiSingle | ScsiHw::VirtioScsiPci)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Disk {
    pub size: Size,
    /// PVE storage id (default: the node's `vmStorage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(default)]
    pub cache: DiskCache,
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub discard: bool,
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub iothread: bool,
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub ssd: bool,
    /// Include in vzdump backups (default true).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub backup: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiskCache {
    #[default]
    None,
    Writethrough,
    Writeback,
    Unsafe,
    Directsync,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Nic {
    pub bridge: String,
    #[serde(default)]
    pub model: NicModel,
    /// PVE firewall on this NIC (needed for the VM's allowlist to apply).
    #[serde(default = "default_true")]
    pub firewall: bool,
    /// Fixed MAC address; generated by PVE and then kept when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Static address for cloud-init (`dhcp` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Cidr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<std::net::IpAddr>,
    /// Move this NIC to another bridge from a later phase on (phase 2: app-host →
    /// `vmbr1`). Until then it stays on `bridge`; the plan lists the move as deferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reattach: Option<Reattach>,
}

impl Nic {
    /// The bridge this NIC should be on while the lab is in `phase`.
    pub fn bridge_in(&self, phase: Phase) -> &str {
        match &self.reattach {
            Some(r) if phase >= r.phase => &r.bridge,
            _ => &self.bridge,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reattach {
    pub phase: Phase,
    pub bridge: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NicModel {
    #[default]
    Virtio,
    E1000,
    E1000e,
    Rtl8139,
    Vmxnet3,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    #[default]
    Running,
    Stopped,
}

/// Where a VM's OS comes from. Nothing is downloaded by labwright itself: the node
/// fetches images with `download-url`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum OsSource {
    /// A cloud image (e.g. Debian genericcloud) imported as the boot disk.
    CloudImage(ImageSource),
    /// The Home Assistant OS qcow2 image (UEFI, imported as the boot disk).
    HaosImage(ImageSource),
    /// An installer ISO already on (or downloaded to) ISO storage.
    Iso(IsoSource),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageSource {
    pub url: String,
    /// `sha256:<hex>` or `sha512:<hex>`, checked by the node.
    pub checksum: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Storage that receives the downloaded image (`import` content; default `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Disk slot the image becomes (default `scsi0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IsoSource {
    /// Volume id on the node, e.g. `local:iso/OPNsense-25.7-dvd-amd64.iso`.
    pub volume: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// First-boot setup through a cloud-init NoCloud seed (no SSH to the host).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bootstrap {
    /// The default user created in the guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<GuestUser>,
    /// Extra Debian packages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Join the tailnet. A VM with this block is a tailnet member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailscale: Option<TailscaleJoin>,
    /// Docker Engine and the Compose plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Docker>,
    /// The `/opt/naas` layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naas: Option<NaasLayout>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuestUser {
    pub name: String,
    /// Public SSH keys (not secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TailscaleJoin {
    /// Auth key reference; defaults to `tailscale.authKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_key: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Subnet routes to advertise: segment names or CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advertise_routes: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub accept_routes: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Docker {
    /// Install the Compose plugin (default true).
    #[serde(default = "default_true")]
    pub compose: bool,
    /// Users added to the `docker` group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NaasLayout {
    /// Root of the layout (default `/opt/naas`).
    #[serde(default = "default_naas_root")]
    pub root: String,
    /// Owner of the tree as `user:group` (default the bootstrap user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// One folder per stack under `stacks/` and `appdata/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<String>,
}

fn default_naas_root() -> String {
    "/opt/naas".to_string()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmFirewall {
    #[serde(default = "default_true")]
    pub enable: bool,
    #[serde(default = "drop_policy")]
    pub policy_in: FwPolicy,
    #[serde(default = "accept_policy")]
    pub policy_out: FwPolicy,
    /// Inbound allowlist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<AllowEntry>,
}

fn drop_policy() -> FwPolicy {
    FwPolicy::Drop
}
fn accept_policy() -> FwPolicy {
    FwPolicy::Accept
}

/// One allowlist line: who may reach which ports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowEntry {
    /// A segment name (`lan`), `tailscale`, `management`, an alias or a CIDR.
    pub from: String,
    #[serde(default)]
    pub proto: Proto,
    /// Ports (PVE syntax inside each entry: `22`, `8000:8100`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A port or port range, written as a number or a string (`8000:8100`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortSpec {
    Port(u16),
    Text(String),
}

impl PortSpec {
    pub fn ranges(&self) -> Result<Vec<(u16, u16)>, String> {
        match self {
            PortSpec::Port(0) => Err("port 0 is not a port".into()),
            PortSpec::Port(p) => Ok(vec![(*p, *p)]),
            PortSpec::Text(t) => crate::types::parse_ports(t),
        }
    }
}

impl std::fmt::Display for PortSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortSpec::Port(p) => write!(f, "{p}"),
            PortSpec::Text(t) => f.write_str(t),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
    Icmp,
    Any,
}

impl Proto {
    pub fn as_pve(&self) -> Option<&'static str> {
        match self {
            Proto::Tcp => Some("tcp"),
            Proto::Udp => Some("udp"),
            Proto::Icmp => Some("icmp"),
            Proto::Any => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backups {
    /// vzdump jobs.
    #[serde(default)]
    pub jobs: Vec<BackupJob>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupJob {
    /// Job id on the node (`backup-<id>` style ids are fine).
    pub id: String,
    /// PVE calendar event, e.g. `02:30` or `sun 03:00`.
    pub schedule: String,
    pub storage: String,
    pub selection: BackupSelection,
    #[serde(default)]
    pub mode: BackupMode,
    #[serde(default)]
    pub compress: Compress,
    pub retention: Retention,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default)]
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Which guests a job covers: all, or a list of VMIDs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum BackupSelection {
    All(bool),
    Vmids(Vec<u32>),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    #[default]
    Snapshot,
    Suspend,
    Stop,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    #[default]
    Zstd,
    Lzo,
    Gzip,
    None,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Storage {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zfs_pools: Vec<ZfsPool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<Dataset>,
    /// PVE storage entries (`/storage`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pve_storages: Vec<PveStorage>,
    /// Data moves (phase 1: media and appdata to `tank`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<Migration>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZfsPool {
    pub name: String,
    pub raid_level: RaidLevel,
    /// Whole disks by stable path (`/dev/disk/by-id/…`) or name (`sdb`).
    pub devices: Vec<String>,
    #[serde(default = "default_ashift")]
    pub ashift: u8,
    #[serde(default)]
    pub compression: ZfsCompression,
    #[serde(default = "one_phase")]
    pub phase: Phase,
}

fn default_ashift() -> u8 {
    12
}
fn one_phase() -> Phase {
    Phase(1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RaidLevel {
    Single,
    Mirror,
    Raidz,
    Raidz2,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ZfsCompression {
    #[default]
    Lz4,
    Zstd,
    Off,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dataset {
    /// `pool/name`, e.g. `tank/media`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotSchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Size>,
    #[serde(default = "one_phase")]
    pub phase: Phase,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotSchedule {
    pub schedule: SnapshotFrequency,
    /// How many snapshots to keep.
    pub keep: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotFrequency {
    Hourly,
    Daily,
    Weekly,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PveStorage {
    /// Storage id (`tank-backups`).
    pub id: String,
    #[serde(rename = "type")]
    pub kind: PveStorageType,
    /// Path for `dir`, pool/dataset for `zfspool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Content types (`images`, `rootdir`, `backup`, `iso`, `vztmpl`, `import`, `snippets`).
    pub content: Vec<String>,
    #[serde(default = "one_phase")]
    pub phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PveStorageType {
    Dir,
    Zfspool,
    Pbs,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Migration {
    pub name: String,
    /// Source: `vm:<vmid>:<path>` for data inside a guest, or `backup-job:<id>` to move
    /// a vzdump job's target.
    pub from: String,
    /// Destination: a dataset (`tank/appdata`) or, for a backup job, a PVE storage id.
    pub to: String,
    #[serde(default = "one_phase")]
    pub phase: Phase,
}

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

fn two_phase() -> Phase {
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

fn ok_status() -> u16 {
    200
}

impl Spec {
    /// The VM with this name, if declared.
    pub fn vm_by_name(&self, name: &str) -> Option<&Vm> {
        self.vms.iter().find(|v| v.name == name)
    }
}
