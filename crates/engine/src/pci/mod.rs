//! The PCI mapping kind (GPU passthrough): cluster-wide PCI resource mappings
//! (`/cluster/mapping/pci`) for the devices VMs pass through, planned from the node's
//! PCI list. A mapping is held back, with the reason, when the device is not on the
//! node, shares its IOMMU group with devices the host still drives (vfio would refuse
//! to start the guest, and labwright does not use the ACS override), sits in another
//! group than the spec expects, or is held by a running guest the spec does not give
//! it to. VMs that use a held mapping get no `hostpciN` (crate::vm::diff asks
//! [`refusals`]), so a guest is never written that cannot start.

mod op;

use std::collections::BTreeMap;

use labwright_pve::PveClient;
use labwright_pve::api::mapping::{PciDevice, PciMapping as ObservedMapping};
use labwright_spec::Spec;
use labwright_spec::model::{HostPci, PciMapping};
use serde::Serialize;

pub use op::PciOp;

use crate::EngineError;
use crate::action::{Action, ActionId, ActionKind, Change, Held};
use crate::canon::Effect;
use crate::op::Op;
use crate::plan::{PlanCx, PlanOut};

/// The node's PCI functions and the cluster's PCI mappings.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedPci {
    #[serde(skip)]
    pub devices: Vec<PciDevice>,
    #[serde(skip)]
    pub mappings: BTreeMap<String, ObservedMapping>,
}

impl ObservedPci {
    pub fn fingerprint(&self) -> String {
        let mut s = String::new();
        for d in &self.devices {
            s.push_str(&format!("pci {} {} {};", d.id, d.device, d.iommugroup));
        }
        for (id, m) in &self.mappings {
            s.push_str(&format!("pcimap {id} {:?} {:?};", m.map, m.description));
        }
        s
    }

    /// The functions a mapping path names: every function of `DDDD:BB:SS`, or the one
    /// function of `DDDD:BB:SS.F`.
    pub fn functions(&self, path: &str) -> Vec<&PciDevice> {
        self.devices
            .iter()
            .filter(|d| {
                if path.contains('.') {
                    d.id == path
                } else {
                    d.id.strip_prefix(path).is_some_and(|r| r.starts_with('.'))
                }
            })
            .collect()
    }
}

/// Does `spec` pass PCI devices through (mappings, or `hostpci` on an active VM)?
pub(crate) fn active(spec: &Spec) -> bool {
    !spec.pci_mappings.is_empty()
        || spec
            .vms
            .iter()
            .any(|v| v.phase <= spec.phase && !v.hostpci.is_empty())
}

/// Reads the node's PCI list (every class: bridges and controllers matter for IOMMU
/// groups) and the PCI mappings, in parallel.
pub async fn scan_pci(client: &PveClient, node: &str) -> Result<ObservedPci, EngineError> {
    let (devices, mappings) = tokio::join!(client.pci_devices(node), client.pci_mappings());
    let devices = devices.map_err(|e| EngineError::api("read the node's PCI devices", e))?;
    let mappings = mappings.map_err(|e| EngineError::api("read the PCI mappings", e))?;
    Ok(ObservedPci {
        devices,
        mappings: mappings.into_iter().map(|m| (m.id.clone(), m)).collect(),
    })
}

/// `0000:00:17.0 (Intel Corporation Q170 … SATA Controller)`.
fn describe(d: &PciDevice) -> String {
    let name = [d.vendor_name.as_deref(), d.device_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        format!("{} ({}:{})", d.id, d.vendor, d.device)
    } else {
        format!("{} ({name})", d.id)
    }
}

/// The `hostpciN` value of a VM device: `mapping=ID[,pcie=1][,rombar=0][,x-vga=1]`.
pub fn hostpci_value(h: &HostPci) -> String {
    let mut v = format!("mapping={}", h.mapping);
    if h.pcie {
        v.push_str(",pcie=1");
    }
    if !h.rom_bar {
        v.push_str(",rombar=0");
    }
    if h.primary_gpu {
        v.push_str(",x-vga=1");
    }
    v
}

/// An observed `hostpciN` value in [`hostpci_value`]'s form (PVE keeps what it was
/// given: booleans may read `on`/`yes`, options come in any order).
pub fn canonical_hostpci(raw: &str) -> String {
    let mut mapping = None;
    let mut host = None;
    let mut flags: BTreeMap<&str, bool> = BTreeMap::new();
    for part in raw.split(',') {
        match part.split_once('=') {
            Some(("mapping", v)) => mapping = Some(v.to_string()),
            Some(("host", v)) => host = Some(v.to_string()),
            Some((k @ ("pcie" | "rombar" | "x-vga"), v)) => {
                flags.insert(k, matches!(v, "1" | "on" | "yes" | "true"));
            }
            Some(_) => return raw.to_string(),
            None if !part.is_empty() => host = Some(part.to_string()),
            None => {}
        }
    }
    let mut v = match (mapping, host) {
        (Some(m), None) => format!("mapping={m}"),
        (None, Some(h)) => format!("host={h}"),
        _ => return raw.to_string(),
    };
    if flags.get("pcie") == Some(&true) {
        v.push_str(",pcie=1");
    }
    if flags.get("rombar") == Some(&false) {
        v.push_str(",rombar=0");
    }
    if flags.get("x-vga") == Some(&true) {
        v.push_str(",x-vga=1");
    }
    v
}

/// What the node says about one declared mapping.
enum Verdict {
    /// The map entry to write for the node (`node=…,path=…,id=…,iommugroup=…,…`).
    Ok(String),
    /// Held: reason and the way out.
    Held(String, String),
}

/// The host addresses (`DDDD:BB:SS.F`) a running VM's `hostpciN` values use, and the
/// mappings they name.
fn vm_uses(config: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
    let mut hosts = Vec::new();
    let mut maps = Vec::new();
    for (k, v) in config {
        if !k.starts_with("hostpci") {
            continue;
        }
        let c = canonical_hostpci(v);
        let first = c.split(',').next().unwrap_or("");
        if let Some(m) = first.strip_prefix("mapping=") {
            maps.push(m.to_string());
        } else if let Some(h) = first.strip_prefix("host=") {
            hosts.extend(h.split(';').map(|x| {
                if x.matches(':').count() == 1 {
                    format!("0000:{x}")
                } else {
                    x.to_string()
                }
            }));
        }
    }
    (hosts, maps)
}

fn verdict(cx: &PlanCx<'_>, pci: &ObservedPci, m: &PciMapping) -> Verdict {
    let node = m.node_or(cx.spec.node_name());
    let funcs = pci.functions(&m.path);
    let Some(first) = funcs.first() else {
        let gpus: Vec<String> = pci
            .devices
            .iter()
            .filter(|d| d.class.starts_with("0x03"))
            .map(describe)
            .collect();
        return Verdict::Held(
            format!(
                "PCI device {} is not on node `{node}`{}",
                m.path,
                if gpus.is_empty() {
                    " (it reports no display controller)".to_string()
                } else {
                    format!(" (display controllers there: {})", gpus.join(", "))
                }
            ),
            "check `lspci -D` on the node and fix `path`".into(),
        );
    };
    let group = first.iommugroup;
    if group < 0 {
        return Verdict::Held(
            format!("node `{node}` reports no IOMMU group for {}: IOMMU is off", first.id),
            "enable VT-d / AMD-Vi in the firmware (and `intel_iommu=on` on older kernels), reboot the node, plan again".into(),
        );
    }
    if let Some(want) = m.iommu_group
        && want != group
    {
        return Verdict::Held(
            format!(
                "{} is in IOMMU group {group} on the node, the spec expects group {want} (the hardware or firmware changed)",
                first.id
            ),
            "check the card's slot and firmware settings, then set `iommuGroup` to what the node reports".into(),
        );
    }
    let ours: Vec<&str> = funcs.iter().map(|d| d.id.as_str()).collect();
    // PCI bridges in a group stay with the host driver; vfio accepts them.
    let others: Vec<String> = pci
        .devices
        .iter()
        .filter(|d| d.iommugroup == group && !ours.contains(&d.id.as_str()))
        .filter(|d| !d.class.starts_with("0x0604"))
        .map(describe)
        .collect();
    if !others.is_empty() {
        return Verdict::Held(
            format!(
                "refused: {} shares IOMMU group {group} with {}; passing it through would take those devices from the host (vfio refuses to start a guest with a group it does not own)",
                m.path,
                others.join(", ")
            ),
            "move the card to a slot with its own IOMMU group (a CPU-attached slot), or pass the whole group through; labwright does not use the ACS override".into(),
        );
    }
    // A running guest the spec does not give this device to holds it.
    let wanted_by: Vec<u32> = cx
        .spec
        .vms
        .iter()
        .filter(|v| v.hostpci.values().any(|h| h.mapping == m.id))
        .map(|v| v.vmid)
        .collect();
    for vm in cx.observed.vms.values() {
        if vm.status != "running" || wanted_by.contains(&vm.vmid) {
            continue;
        }
        let Some(config) = &vm.config else { continue };
        let (hosts, maps) = vm_uses(config);
        let by_host = hosts.iter().any(|h| {
            ours.iter()
                .any(|o| o == h || o.starts_with(&format!("{h}.")))
        });
        if by_host || maps.contains(&m.id) {
            return Verdict::Held(
                format!(
                    "{} is already attached to running VM {} `{}`",
                    m.path, vm.vmid, vm.name
                ),
                format!(
                    "stop VM {} or take the device out of its config (`qm set {} --delete hostpciN`), then plan again",
                    vm.vmid, vm.vmid
                ),
            );
        }
    }
    let strip = |s: &str| s.trim_start_matches("0x").to_string();
    let mut e = format!(
        "node={node},path={},id={}:{},iommugroup={group}",
        m.path,
        strip(&first.vendor),
        strip(&first.device)
    );
    if let (Some(sv), Some(sd)) = (&first.subsystem_vendor, &first.subsystem_device) {
        e.push_str(&format!(",subsystem-id={}:{}", strip(sv), strip(sd)));
    }
    Verdict::Ok(e)
}

/// The mapping ids the plan holds back, with the reason (VMs leave their `hostpciN`
/// for these out). Empty when the PCI side was not read.
pub(crate) fn refusals(cx: &PlanCx<'_>) -> BTreeMap<String, String> {
    let Some(pci) = &cx.observed.pci else {
        return BTreeMap::new();
    };
    cx.spec
        .pci_mappings
        .iter()
        .filter_map(|m| match verdict(cx, pci, m) {
            Verdict::Held(why, _) => Some((m.id.clone(), why)),
            Verdict::Ok(_) => None,
        })
        .collect()
}

/// The action that creates or updates mapping `id`, when this plan has one.
pub(crate) fn mapping_action(out: &PlanOut, id: &str) -> Option<ActionId> {
    let want = ActionId::Pci {
        key: format!("mapping-{id}"),
    };
    out.actions.iter().any(|a| a.id == want).then_some(want)
}

/// Fields of a map entry, for comparison (order does not matter).
fn fields(e: &str) -> BTreeMap<String, String> {
    e.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_ascii_lowercase()))
        .collect()
}

pub(crate) fn plan(cx: &PlanCx<'_>, out: &mut PlanOut) {
    for (i, m) in cx.spec.pci_mappings.iter().enumerate() {
        let path = labwright_spec::YamlPath::root()
            .key("pciMappings")
            .index(i)
            .to_string();
        out.own(&path);
        let Some(pci) = &cx.observed.pci else {
            continue;
        };
        let target = format!("pci-mapping/{}", m.id);
        let entry = match verdict(cx, pci, m) {
            Verdict::Held(reason, way) => {
                let mut h = Held::new(target, reason, way);
                h.elements.push(path);
                out.held.push(h);
                continue;
            }
            Verdict::Ok(e) => e,
        };
        let node = m.node_or(cx.spec.node_name()).to_string();
        let have = pci.mappings.get(&m.id);
        // Entries of other nodes stay as they are.
        let mut map: Vec<String> = have
            .map(|h| {
                h.map
                    .iter()
                    .filter(|e| fields(e).get("node") != Some(&node))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        map.push(entry.clone());
        let have_entry = have.and_then(|h| {
            h.map
                .iter()
                .find(|e| fields(e).get("node") == Some(&node))
                .cloned()
        });
        let same_entry = have_entry.as_deref().map(fields) == Some(fields(&entry));
        let same_desc =
            have.is_none_or(|h| m.description.is_none() || h.description == m.description);
        if have.is_some() && same_entry && same_desc {
            continue;
        }
        let mut changes = Vec::new();
        if !same_entry {
            changes.push(Change {
                field: format!("map ({node})"),
                before: have_entry,
                after: Some(entry.clone()),
                effect: Effect::Hotplug,
            });
        }
        if let Some(d) = &m.description
            && !(have.is_some() && same_desc)
        {
            changes.push(Change {
                field: "description".into(),
                before: have.and_then(|h| h.description.clone()),
                after: Some(d.clone()),
                effect: Effect::Hotplug,
            });
        }
        let create = have.is_none();
        let mut a = Action::new(
            ActionId::Pci {
                key: format!("mapping-{}", m.id),
            },
            ActionKind::PciMapping,
            target,
            Op::Pci(PciOp::Mapping {
                id: m.id.clone(),
                create,
                map,
                description: m.description.clone(),
            }),
        );
        a.changes = changes;
        a.reason = if create {
            "declared in the spec, absent on the node".into()
        } else {
            "the mapping differs from the spec (or from the device the node reports)".into()
        };
        a.rollback_hint = if create {
            format!("remove it: `pvesh delete /cluster/mapping/pci/{}`", m.id)
        } else {
            format!(
                "set the previous entry again: `pvesh set /cluster/mapping/pci/{} --map '<before>'`",
                m.id
            )
        };
        a.expected_downtime = "none".into();
        a.elements.push(path);
        out.actions.push(a);
    }
}

/// `validate`: every VM with passed-through devices runs with them in its config.
pub(crate) fn validate(cx: &PlanCx<'_>) -> Vec<crate::validate::Check> {
    let mut out = Vec::new();
    let refused = refusals(cx);
    for vm in cx.spec.vms.iter().filter(|v| v.phase <= cx.spec.phase) {
        if vm.hostpci.is_empty() {
            continue;
        }
        let obs = cx.observed.vms.get(&vm.vmid);
        for (slot, h) in &vm.hostpci {
            let name = format!("VM {} {slot}: {} attached", vm.vmid, h.mapping);
            if let Some(why) = refused.get(&h.mapping) {
                out.push(crate::validate::Check {
                    name,
                    status: crate::validate::CheckStatus::Skipped,
                    detail: format!("held: {why}"),
                });
                continue;
            }
            let have = obs
                .and_then(|o| o.config.as_ref())
                .and_then(|c| c.get(slot))
                .map(|v| canonical_hostpci(v));
            let running = obs.is_some_and(|o| o.status == "running");
            let ok = have.as_deref() == Some(hostpci_value(h).as_str())
                && (running || vm.power != labwright_spec::model::PowerState::Running);
            out.push(crate::validate::check(
                name,
                ok,
                match (&have, running) {
                    (None, _) => format!("{slot} is not in the VM's config"),
                    (Some(v), true) => format!("{slot}: {v}; the VM runs with it"),
                    (Some(v), false) => format!("{slot}: {v}; the VM is not running"),
                },
            ));
        }
    }
    out
}
