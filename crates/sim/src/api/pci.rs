//! PCI passthrough: the node's PCI devices (`/nodes/{node}/hardware/pci`, pve-manager's
//! `Hardware/PCI.pm` over `SysFSTools::lspci`), PCI resource mappings
//! (`/cluster/mapping/pci`, `Mapping/PCI.pm` in pve-manager and pve-guest-common) and
//! what qemu-server checks of `hostpciN` when a VM is configured and started
//! (`API2/Qemu.pm` `check_hostpci_perm`, `QemuServer/PCI.pm`).

use serde_json::{Value, json};

use super::mapping::{entry, local_node, map_list};
use super::missing;
use crate::formats::split_list;
use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{DirMapping, PciDev, State};

#[allow(clippy::too_many_arguments)]
fn dev(
    id: &str,
    class: &str,
    (vendor, vendor_name): (&str, &str),
    (device, device_name): (&str, &str),
    (sv, sv_name): (&str, &str),
    (sd, sd_name): (&str, &str),
    group: i64,
) -> PciDev {
    PciDev {
        id: id.into(),
        class: class.into(),
        vendor: vendor.into(),
        device: device.into(),
        subsystem_vendor: sv.into(),
        subsystem_device: sd.into(),
        vendor_name: vendor_name.into(),
        device_name: device_name.into(),
        subsystem_vendor_name: sv_name.into(),
        subsystem_device_name: sd_name.into(),
        iommugroup: group,
        mdev: false,
    }
}

const INTEL: (&str, &str) = ("0x8086", "Intel Corporation");
const NVIDIA: (&str, &str) = ("0x10de", "NVIDIA Corporation");

/// Every node's board: host bridge, a PCH root port and SATA controller sharing IOMMU
/// group 2 (as on many consumer boards), the onboard NIC.
pub fn base_devices() -> Vec<PciDev> {
    let board = ("0x1462", "Micro-Star International Co., Ltd. [MSI]");
    vec![
        dev(
            "0000:00:00.0",
            "0x060000",
            INTEL,
            (
                "0x191f",
                "Xeon E3-1200 v5/E3-1500 v5/6th Gen Core Processor Host Bridge/DRAM Registers",
            ),
            board,
            ("0x7a68", ""),
            0,
        ),
        dev(
            "0000:00:17.0",
            "0x010601",
            INTEL,
            (
                "0xa102",
                "Q170/Q150/B150/H170/H110/Z170/CM236 Chipset SATA Controller [AHCI Mode]",
            ),
            board,
            ("0x7a68", ""),
            2,
        ),
        dev(
            "0000:00:1c.0",
            "0x060400",
            INTEL,
            (
                "0xa110",
                "100 Series/C230 Series Chipset Family PCI Express Root Port #1",
            ),
            board,
            ("0x7a68", ""),
            2,
        ),
        dev(
            "0000:00:1f.6",
            "0x020000",
            INTEL,
            ("0x15b8", "Ethernet Connection (2) I219-V"),
            board,
            ("0x7a68", ""),
            6,
        ),
    ]
}

/// The `hdds` scenario's cards: a GTX 1660 with its audio function alone in IOMMU
/// group 14 (passable as a whole), and a GT 710 behind the PCH root port, in group 2
/// with the SATA controller (not passable on its own).
pub fn hdds_cards() -> Vec<PciDev> {
    let msi = ("0x1462", "Micro-Star International Co., Ltd. [MSI]");
    let asus = ("0x1043", "ASUSTeK Computer Inc.");
    vec![
        dev(
            "0000:01:00.0",
            "0x030000",
            NVIDIA,
            ("0x2184", "TU116 [GeForce GTX 1660]"),
            msi,
            ("0x8d90", ""),
            14,
        ),
        dev(
            "0000:01:00.1",
            "0x040300",
            NVIDIA,
            ("0x1aeb", "TU116 High Definition Audio Controller"),
            msi,
            ("0x8d90", ""),
            14,
        ),
        dev(
            "0000:05:00.0",
            "0x030000",
            NVIDIA,
            ("0x128b", "GK208B [GeForce GT 710]"),
            asus,
            ("0x8576", ""),
            2,
        ),
    ]
}

/// `lspci` entry as the API returns it.
fn lspci_entry(d: &PciDev, verbose: bool) -> Value {
    let mut e = json!({
        "id": d.id, "class": d.class, "vendor": d.vendor, "device": d.device,
        "iommugroup": d.iommugroup,
    });
    if d.mdev {
        e["mdev"] = json!(1);
    }
    if verbose {
        for (k, v) in [
            ("vendor_name", &d.vendor_name),
            ("device_name", &d.device_name),
            ("subsystem_vendor", &d.subsystem_vendor),
            ("subsystem_device", &d.subsystem_device),
            ("subsystem_vendor_name", &d.subsystem_vendor_name),
            ("subsystem_device_name", &d.subsystem_device_name),
        ] {
            if !v.is_empty() {
                e[k] = json!(v);
            }
        }
    }
    e
}

/// The functions `SysFSTools::lspci($filter)` finds for an id prefix
/// (`0000:01:00` is every function of the device; the domain may be left out).
fn lspci<'a>(st: &'a State, node: &str, id: &str) -> Vec<&'a PciDev> {
    let Some(n) = st.nodes.get(node) else {
        return vec![];
    };
    n.pci
        .iter()
        .filter(|d| {
            d.id.starts_with(id)
                || d.id
                    .strip_prefix("0000:")
                    .is_some_and(|x| x.starts_with(id))
        })
        .collect()
}

pub fn dispatch(inner: &Inner, r: &Req) -> Result<Reply, ApiError> {
    match (r.method.as_str(), r.template.as_str()) {
        ("GET", "/nodes/{node}/hardware/pci") => inner.with_state(|st| {
            let node = r.node();
            let blacklist = r
                .str("pci-class-blacklist")
                .unwrap_or_else(|| "05;06;0b".into());
            let classes = split_list(&blacklist);
            let verbose = r.str("verbose").is_none_or(|v| v == "1");
            let devs = st
                .nodes
                .get(&node)
                .map(|n| n.pci.clone())
                .unwrap_or_default();
            let list: Vec<Value> = devs
                .iter()
                .filter(|d| {
                    !classes
                        .iter()
                        .any(|c| !c.is_empty() && d.class.starts_with(&format!("0x{c}")))
                })
                .map(|d| lspci_entry(d, verbose))
                .collect();
            Ok(Value::Array(list).into())
        }),
        ("GET", "/cluster/mapping/pci") => inner.with_state(|st| {
            let digest = digest(st);
            let local = local_node(st);
            if let Some(n) = r.str("check-node")
                && n != local
                && n != "localhost"
            {
                return Err(ApiError::e500(format!(
                    "wrong node to check - {n} != {local}"
                )));
            }
            let list: Vec<Value> = st
                .pci_mappings
                .iter()
                .map(|(id, m)| {
                    let mut e = entry(m, &digest);
                    e["id"] = json!(id);
                    if let Some(node) = r.str("check-node") {
                        e["checks"] = json!(checks(st, id, m, &node));
                    }
                    e
                })
                .collect();
            Ok(Value::Array(list).into())
        }),
        ("GET", "/cluster/mapping/pci/{id}") => inner.with_state(|st| {
            let id = r.s("id");
            let m = st
                .pci_mappings
                .get(&id)
                .ok_or_else(|| ApiError::e500(format!("mapping '{id}' not found")))?;
            Ok(entry(m, &digest(st)).into())
        }),
        ("POST", "/cluster/mapping/pci") => inner.with_state(|st| {
            let id = r.s("id");
            let failed = |m: String| ApiError::e500(format!("create hardware mapping failed: {m}"));
            if st.pci_mappings.contains_key(&id) {
                return Err(failed(format!("pci ID '{id}' already defined")));
            }
            st.pci_mappings.insert(
                id,
                DirMapping {
                    map: map_list(r),
                    description: r.str("description"),
                },
            );
            Ok(Value::Null.into())
        }),
        ("PUT", "/cluster/mapping/pci/{id}") => inner.with_state(|st| {
            let id = r.s("id");
            let failed = |m: String| ApiError::e500(format!("update hardware mapping failed: {m}"));
            if let Some(d) = r.str("digest")
                && d != digest(st)
            {
                return Err(failed(
                    "detected modified configuration - file changed by other user? Try again."
                        .into(),
                ));
            }
            let deletes = r.str("delete").map(|d| split_list(&d)).unwrap_or_default();
            let new_map = r.params.contains_key("map").then(|| map_list(r));
            let m = st
                .pci_mappings
                .get_mut(&id)
                .ok_or_else(|| failed(format!("pci ID '{id}' does not exist")))?;
            for k in &deletes {
                match k.as_str() {
                    "description" => m.description = None,
                    "map" => m.map.clear(),
                    "mdev" | "live-migration-capable" => {}
                    _ => return Err(failed(format!("invalid parameter '{k}'"))),
                }
            }
            if let Some(d) = r.str("description") {
                m.description = Some(d);
            }
            if let Some(map) = new_map {
                m.map = map;
            }
            Ok(Value::Null.into())
        }),
        ("DELETE", "/cluster/mapping/pci/{id}") => inner.with_state(|st| {
            st.pci_mappings.shift_remove(&r.s("id"));
            Ok(Value::Null.into())
        }),
        _ => Err(missing(r)),
    }
}

fn digest(st: &State) -> String {
    super::mapping::digest_of(&st.pci_mappings)
}

fn fields(e: &str) -> indexmap::IndexMap<String, String> {
    e.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `get_node_mapping`: the entries of mapping `id` for `node`.
fn node_entries(
    st: &State,
    id: &str,
    node: &str,
) -> Option<Vec<indexmap::IndexMap<String, String>>> {
    let m = st.pci_mappings.get(id)?;
    Some(
        m.map
            .iter()
            .map(|e| fields(e))
            .filter(|f| f.get("node").map(String::as_str) == Some(node))
            .collect(),
    )
}

/// `PVE::Mapping::PCI::assert_valid`: each path's first function exists and has the
/// ids (and, for the first path, the IOMMU group) the entry expects.
fn assert_valid(
    st: &State,
    node: &str,
    name: &str,
    e: &indexmap::IndexMap<String, String>,
) -> Result<(), String> {
    let paths = e.get("path").cloned().unwrap_or_default();
    for (idx, p) in paths.split(';').enumerate() {
        let path = if p.contains('.') {
            p.to_string()
        } else {
            format!("{p}.0")
        };
        let info = st
            .nodes
            .get(node)
            .and_then(|n| n.pci.iter().find(|d| d.id == path))
            .ok_or_else(|| format!("pci device '{path}' not found"))?;
        let strip = |s: &str| s.trim_start_matches("0x").to_string();
        let expected: Vec<(&str, Option<String>)> = vec![
            (
                "id",
                Some(format!("{}:{}", strip(&info.vendor), strip(&info.device))),
            ),
            (
                "iommugroup",
                (info.iommugroup >= 0).then(|| info.iommugroup.to_string()),
            ),
            ("mdev", Some(if info.mdev { "1" } else { "0" }.into())),
            (
                "subsystem-id",
                (!info.subsystem_vendor.is_empty()).then(|| {
                    format!(
                        "{}:{}",
                        strip(&info.subsystem_vendor),
                        strip(&info.subsystem_device)
                    )
                }),
            ),
        ];
        for (prop, want) in expected {
            if prop == "iommugroup" && idx > 0 {
                continue;
            }
            let have = if prop == "mdev" {
                // The mapping's own `mdev` flag (labwright never sets it).
                Some("0".to_string())
            } else {
                e.get(prop).cloned()
            };
            match (&want, &have) {
                (None, None) => {}
                (Some(_), None) => {
                    return Err(format!(
                        "missing expected property '{prop}' for device '{path}'"
                    ));
                }
                (None, Some(_)) => {
                    return Err(format!(
                        "unexpected property '{prop}' configured for device '{path}'"
                    ));
                }
                (Some(w), Some(h)) => {
                    let (w, h) = (w.replace("0x", ""), h.replace("0x", ""));
                    if w != h {
                        return Err(format!("'{prop}' does not match for '{name}' ({w} != {h})"));
                    }
                }
            }
        }
    }
    Ok(())
}

fn checks(st: &State, id: &str, _m: &DirMapping, node: &str) -> Vec<Value> {
    let entries = node_entries(st, id, node).unwrap_or_default();
    if entries.is_empty() {
        return vec![
            json!({"severity": "warning", "message": format!("No mapping for node {node}.")}),
        ];
    }
    entries
        .iter()
        .filter_map(|e| {
            assert_valid(st, node, id, e).err().map(|err| {
                json!({"severity": "error", "message": format!("Invalid configuration: {err}")})
            })
        })
        .collect()
}

/// A `hostpciN` value's `host` and `mapping` (the default key is `host`).
fn host_and_mapping(value: &str) -> (Option<String>, Option<String>, bool) {
    let (mut host, mut mapping, mut pcie) = (None, None, false);
    for part in value.split(',') {
        match part.split_once('=') {
            Some(("host", v)) => host = Some(v.to_string()),
            Some(("mapping", v)) => mapping = Some(v.to_string()),
            Some(("pcie", v)) => pcie = matches!(v, "1" | "on" | "yes" | "true"),
            Some(_) => {}
            None if !part.is_empty() => host = Some(part.to_string()),
            None => {}
        }
    }
    (host, mapping, pcie)
}

/// `check_hostpci_perm`, for every `hostpciN` a create or config update sets: host
/// addresses are root's alone; a mapping needs `Mapping.Use` on it and
/// `VM.Config.HWType` on the VM.
pub fn check_perm(inner: &Inner, r: &Req, params: &[(String, String)]) -> Result<(), ApiError> {
    if r.who.user == "root@pam" && r.who.token.is_none() {
        return Ok(());
    }
    for (k, v) in params.iter().filter(|(k, _)| k.starts_with("hostpci")) {
        let (host, mapping, _) = host_and_mapping(v);
        if host.is_some() {
            return Err(ApiError::e500(format!(
                "only root can set '{k}' config for non-mapped devices"
            )));
        }
        let Some(m) = mapping else {
            return Err(ApiError::e500("either 'host' or 'mapping' must be set."));
        };
        super::require(inner, r, &format!("/mapping/pci/{m}"), "Mapping.Use")?;
        super::require(inner, r, &format!("/vms/{}", r.vmid()), "VM.Config.HWType")?;
    }
    Ok(())
}

/// The functions a VM's `hostpciN` values resolve to on `node` (`parse_hostpci` and
/// `choose_hostpci_devices`), or the error qemu-server stops the start with.
fn resolve(st: &State, node: &str, vmid: u32) -> Result<Vec<String>, String> {
    let Some(vm) = st.vms.get(&vmid) else {
        return Ok(vec![]);
    };
    let q35 = vm.conf.get("machine").is_some_and(|m| m.contains("q35"));
    let mut used: Vec<String> = Vec::new();
    for i in 0..16 {
        let Some(v) = vm.conf.get(&format!("hostpci{i}")) else {
            continue;
        };
        let (host, mapping, pcie) = host_and_mapping(v);
        let paths: Vec<String> = match (host, mapping) {
            (Some(_), Some(_)) => return Err("Cannot set both 'host' and 'mapping'.".into()),
            (Some(h), None) => h.split(';').map(str::to_string).collect(),
            (None, Some(m)) => {
                let entries = node_entries(st, &m, node).unwrap_or_default();
                if entries.is_empty() {
                    return Err(format!("PCI device mapping not found for '{m}'"));
                }
                let mut paths = Vec::new();
                for e in &entries {
                    assert_valid(st, node, &m, e).map_err(|err| {
                        format!("PCI device mapping invalid (hardware probably changed): {err}")
                    })?;
                    paths.extend(
                        e.get("path")
                            .map(|p| p.split(';').next().unwrap_or("").to_string()),
                    );
                }
                paths
            }
            (None, None) => return Err("Either 'host' or 'mapping' must be set.".into()),
        };
        for p in paths {
            let devs = lspci(st, node, &p);
            if devs.is_empty() {
                return Err(format!("no PCI device found for '{p}'"));
            }
            for d in devs {
                if used.contains(&d.id) {
                    return Err(format!("device '{}' assigned more than once", d.id));
                }
                used.push(d.id.clone());
            }
        }
        if pcie && !q35 {
            return Err("q35 machine model is not enabled".into());
        }
    }
    Ok(used)
}

/// What a start checks of the VM's passed-through devices: they resolve, no running
/// guest holds one (`reserve_pci_usage`), and their IOMMU groups hold nothing else the
/// host still drives (vfio's "group is not viable"; PCI bridges do not count).
pub fn assert_start(st: &State, node: &str, vmid: u32) -> Result<(), String> {
    let mine = resolve(st, node, vmid)?;
    if mine.is_empty() {
        return Ok(());
    }
    for (other, vm) in &st.vms {
        if *other == vmid || !vm.running || vm.node != node {
            continue;
        }
        let theirs = resolve(st, node, *other).unwrap_or_default();
        if let Some(id) = mine.iter().find(|d| theirs.contains(d)) {
            return Err(format!(
                "PCI device '{id}' already in use by VMID '{other}'"
            ));
        }
    }
    let devs = st
        .nodes
        .get(node)
        .map(|n| n.pci.as_slice())
        .unwrap_or_default();
    for id in &mine {
        let Some(d) = devs.iter().find(|d| &d.id == id) else {
            continue;
        };
        if d.iommugroup < 0 {
            return Err("cannot prepare PCI pass-through, IOMMU not present".into());
        }
        let blocker = devs.iter().any(|x| {
            x.iommugroup == d.iommugroup && !mine.contains(&x.id) && !x.class.starts_with("0x0604")
        });
        if blocker {
            return Err(format!(
                "kvm: -device vfio-pci,host={id}: vfio {id}: group {} is not viable\nPlease ensure all devices within the iommu_group are bound to their vfio bus driver.",
                d.iommugroup
            ));
        }
    }
    Ok(())
}
