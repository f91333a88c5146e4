//! PCI passthrough: cluster-wide PCI resource mappings (`/cluster/mapping/pci`) and the
//! `hostpciN` devices of a VM that use them. A VM names a mapping, never a host
//! address, so a guest's config survives a card moving slots (only the mapping
//! changes) and non-root tokens can attach it (`Mapping.Use`).

use super::*;

/// A PCI resource mapping: a logical name for a device on the node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PciMapping {
    /// The mapping id VMs use (`gpu0`): PVE's config-id syntax.
    pub id: String,
    /// The node the device is in (default: the spec's node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The device's PCI address, `DOMAIN:BUS:SLOT` for the whole device with all its
    /// functions (a GPU with its audio function: `0000:01:00`) or
    /// `DOMAIN:BUS:SLOT.FUNCTION` for one function.
    pub path: String,
    /// The IOMMU group the device is expected in; by default the one the node
    /// reports. When given, a different group on the node holds the mapping back
    /// (the hardware changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu_group: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl PciMapping {
    /// The node the mapping is for.
    pub fn node_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.node.as_deref().unwrap_or(default)
    }
}

/// A passed-through PCI device of a VM (`hostpciN`), by mapping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostPci {
    /// The id of a `pciMappings` entry.
    pub mapping: String,
    /// Attach on the PCI Express bus (needs `machine: q35`; default true).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub pcie: bool,
    /// The guest's primary GPU (`x-vga=1`): its console is this card, not the
    /// emulated display.
    #[serde(default, skip_serializing_if = "is_false")]
    pub primary_gpu: bool,
    /// The device's ROM visible to the guest (`rombar`, default true).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub rom_bar: bool,
}
