//! Virtual machines: hardware, disks, NICs, OS source, bootstrap, VM firewall.

use super::*;

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
    /// Passed-through PCI devices keyed by slot: `hostpci0` … `hostpci15`. Needs
    /// `machine: q35` and `bios: ovmf`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hostpci: BTreeMap<String, HostPci>,
}

pub(crate) fn one() -> u32 {
    1
}
pub(crate) fn is_one(n: &u32) -> bool {
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
    /// The OPNsense **nano** image (a pre-installed raw disk, imported as the boot
    /// disk). The router VM gets its configuration from a seed CD labwright renders
    /// from `router:` (docs/decisions.md, "OPNsense router").
    OpnsenseImage(ImageSource),
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

pub(crate) fn default_naas_root() -> String {
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

pub(crate) fn drop_policy() -> FwPolicy {
    FwPolicy::Drop
}
pub(crate) fn accept_policy() -> FwPolicy {
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
