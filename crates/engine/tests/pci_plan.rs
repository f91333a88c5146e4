//! The PCI mapping kind planned against hand-built scans: a mapping created from the
//! device the node reports, converged, held (device missing, IOMMU group shared or
//! changed, device held by a running foreign guest), and a VM's hostpci that waits
//! for its mapping or is left out with the mapping's reason.

use std::collections::{BTreeMap, BTreeSet};

use labwright_engine::observed::{Observed, ObservedVm};
use labwright_engine::pci::ObservedPci;
use labwright_engine::plan::{ActionId, Plan, plan};
use labwright_pve::api::mapping::{PciDevice, PciMapping};

fn spec(path: &str, group: Option<i64>) -> labwright_spec::Spec {
    let group = group
        .map(|g| format!(", iommuGroup: {g}"))
        .unwrap_or_default();
    let text = format!(
        r#"apiVersion: labwright/v1
kind: Homelab
metadata: {{ name: unit, owner: loic }}
node: {{ name: proxmox, address: 192.168.1.10 }}
safetyGuards: {{ managementAccessCidrs: [192.168.1.50/32] }}
pciMappings:
  - {{ id: gpu0, path: "{path}"{group} }}
vms:
  - vmid: 500
    name: gpu-worker
    cores: 2
    memory: 4G
    bios: ovmf
    disks: {{ scsi0: {{ size: 16G }} }}
    nics: {{ net0: {{ bridge: vmbr0 }} }}
    hostpci: {{ hostpci0: {{ mapping: gpu0, primaryGpu: true, romBar: false }} }}
"#
    );
    match labwright_spec::load_str("unit.yaml", &text, &|_| None) {
        Ok(l) => l.spec,
        Err(f) => panic!("{:?}", f.diagnostics),
    }
}

fn dev(id: &str, class: &str, device: &str, name: &str, group: i64) -> PciDevice {
    serde_json::from_value(serde_json::json!({
        "id": id, "class": class, "vendor": "0x10de", "device": device,
        "iommugroup": group, "vendor_name": "NVIDIA Corporation", "device_name": name,
        "subsystem_vendor": "0x1462", "subsystem_device": "0x8d90",
    }))
    .expect("device")
}

fn devices() -> Vec<PciDevice> {
    vec![
        dev("0000:00:17.0", "0x010601", "0xa102", "SATA Controller", 2),
        dev(
            "0000:00:1c.0",
            "0x060400",
            "0xa110",
            "PCI Express Root Port",
            2,
        ),
        dev(
            "0000:01:00.0",
            "0x030000",
            "0x2184",
            "TU116 [GeForce GTX 1660]",
            14,
        ),
        dev("0000:01:00.1", "0x040300", "0x1aeb", "TU116 Audio", 14),
        dev(
            "0000:05:00.0",
            "0x030000",
            "0x128b",
            "GK208B [GeForce GT 710]",
            2,
        ),
    ]
}

fn observed(mappings: Vec<PciMapping>, vms: Vec<ObservedVm>) -> Observed {
    Observed {
        node: "proxmox".into(),
        pve_version: Some("9.1.3".into()),
        vms: vms.into_iter().map(|v| (v.vmid, v)).collect(),
        storages: Vec::new(),
        backup_jobs: BTreeMap::new(),
        network: Some(labwright_engine::bridge::ObservedNetwork::with_bridges([
            "vmbr0",
        ])),
        storage: None,
        pci: Some(ObservedPci {
            devices: devices(),
            mappings: mappings.into_iter().map(|m| (m.id.clone(), m)).collect(),
        }),
        requests: 0,
    }
}

const ENTRY: &str =
    "node=proxmox,path=0000:01:00,id=10de:2184,iommugroup=14,subsystem-id=1462:8d90";

fn gpu0_id() -> ActionId {
    ActionId::Pci {
        key: "mapping-gpu0".into(),
    }
}

fn ids(p: &Plan) -> Vec<String> {
    p.actions.iter().map(|a| a.id.to_string()).collect()
}

fn held_reason(p: &Plan, target: &str) -> String {
    p.held
        .iter()
        .find(|h| h.target == target)
        .map(|h| h.reason.clone())
        .unwrap_or_else(|| panic!("{target} not held: {:?}", p.held))
}

fn foreign(vmid: u32, status: &str, hostpci: &str) -> ObservedVm {
    ObservedVm {
        vmid,
        node: "proxmox".into(),
        name: "media-box".into(),
        status: status.into(),
        tags: vec![],
        lock: None,
        template: false,
        config: Some(BTreeMap::from([(
            "hostpci0".to_string(),
            hostpci.to_string(),
        )])),
        digest: Some("d".into()),
        pending: BTreeSet::new(),
        tool_snapshots: Vec::new(),
    }
}

#[test]
fn a_mapping_is_created_from_the_device_and_the_vm_waits_for_it() {
    let p = plan(&spec("0000:01:00", Some(14)), &observed(vec![], vec![]));
    assert_eq!(
        ids(&p),
        ["pci-mapping-gpu0", "vm-500-create", "vm-500-start"]
    );
    let calls = p.actions[0].api_calls.join("\n");
    assert_eq!(
        calls,
        format!("POST /cluster/mapping/pci id=gpu0 map={ENTRY}")
    );
    let create = &p.actions[1];
    assert!(create.depends_on.iter().any(|d| *d == gpu0_id()));
    assert!(
        create
            .api_calls
            .join(" ")
            .contains("hostpci0=mapping=gpu0,pcie=1,rombar=0,x-vga=1"),
        "{:?}",
        create.api_calls
    );
}

#[test]
fn a_converged_mapping_plans_nothing_and_a_stale_one_is_updated() {
    let have = |entry: &str| PciMapping {
        id: "gpu0".into(),
        map: vec![
            entry.into(),
            "node=other,path=0000:02:00,id=10de:2184".into(),
        ],
        description: None,
    };
    let p = plan(
        &spec("0000:01:00", None),
        &observed(vec![have(ENTRY)], vec![]),
    );
    assert!(
        !ids(&p).iter().any(|i| i.starts_with("pci-")),
        "{:?}",
        ids(&p)
    );
    // Field order on the node does not matter.
    let shuffled = "path=0000:01:00,node=proxmox,subsystem-id=1462:8d90,iommugroup=14,id=10de:2184";
    let p = plan(
        &spec("0000:01:00", None),
        &observed(vec![have(shuffled)], vec![]),
    );
    assert!(!ids(&p).iter().any(|i| i.starts_with("pci-")));
    // The card changed: the entry is rewritten, the other node's entry kept.
    let p = plan(
        &spec("0000:01:00", None),
        &observed(
            vec![have("node=proxmox,path=0000:01:00,id=10de:1c82")],
            vec![],
        ),
    );
    let a = p
        .actions
        .iter()
        .find(|a| a.id == gpu0_id())
        .expect("update");
    let call = &a.api_calls[0];
    assert!(
        call.starts_with("PUT /cluster/mapping/pci/gpu0 map=node=other,"),
        "{call}"
    );
    assert!(call.contains(&format!("map={ENTRY}")), "{call}");
}

#[test]
fn a_shared_iommu_group_is_refused_and_the_vm_goes_without_the_device() {
    let p = plan(&spec("0000:05:00", None), &observed(vec![], vec![]));
    let why = held_reason(&p, "pci-mapping/gpu0");
    assert!(
        why.starts_with("refused: 0000:05:00 shares IOMMU group 2 with 0000:00:17.0 (NVIDIA Corporation SATA Controller)"),
        "{why}"
    );
    assert!(!why.contains("Root Port"), "bridges do not count: {why}");
    assert_eq!(ids(&p), ["vm-500-create", "vm-500-start"]);
    assert!(!p.actions[0].api_calls.join(" ").contains("hostpci"));
    assert!(
        p.held
            .iter()
            .any(|h| h.elements == ["vms[0].hostpci.hostpci0"])
    );
}

#[test]
fn a_missing_device_or_a_changed_group_is_held() {
    let p = plan(&spec("0000:09:00", None), &observed(vec![], vec![]));
    let why = held_reason(&p, "pci-mapping/gpu0");
    assert!(
        why.starts_with("PCI device 0000:09:00 is not on node `proxmox`"),
        "{why}"
    );
    assert!(
        why.contains("0000:01:00.0 (NVIDIA Corporation TU116 [GeForce GTX 1660])"),
        "{why}"
    );
    let p = plan(&spec("0000:01:00", Some(15)), &observed(vec![], vec![]));
    let why = held_reason(&p, "pci-mapping/gpu0");
    assert!(
        why.contains("IOMMU group 14 on the node, the spec expects group 15"),
        "{why}"
    );
}

#[test]
fn a_device_held_by_a_running_foreign_guest_is_held() {
    for value in ["0000:01:00.0,pcie=1", "01:00", "mapping=gpu0"] {
        let p = plan(
            &spec("0000:01:00", None),
            &observed(vec![], vec![foreign(600, "running", value)]),
        );
        let why = held_reason(&p, "pci-mapping/gpu0");
        assert!(
            why.contains("already attached to running VM 600 `media-box`"),
            "{value}: {why}"
        );
    }
    // Stopped, it does not hold the card.
    let p = plan(
        &spec("0000:01:00", None),
        &observed(vec![], vec![foreign(600, "stopped", "0000:01:00.0")]),
    );
    assert!(
        ids(&p).iter().any(|i| i == "pci-mapping-gpu0"),
        "{:?}",
        p.held
    );
}
