//! GPU passthrough end to end (issue 15) against `labwright sim --scenario hdds`: a
//! worker VM with a GTX 1660 passed through by mapping plans, applies and validates,
//! and a second plan is empty; a card that shares its IOMMU group with the SATA
//! controller is refused with the reason, and apply writes nothing for it.

mod common;

use std::path::PathBuf;

use common::{Lab, SimProcess, action, action_ids, rt};
use serde_json::Value;

fn lab_on(sim: &SimProcess) -> Lab {
    let mut lab = Lab::new();
    lab.target = sim.target();
    lab.env = sim.ssh_env();
    lab
}

fn spec(lab: &Lab, edit: impl FnOnce(String) -> String) -> PathBuf {
    lab.spec_copy("gpu.desired.yaml", edit)
}

#[test]
fn a_passthrough_vm_plans_applies_validates_and_replans_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = SimProcess::start_with(dir.path(), 0.01, &["--scenario", "hdds"]);
    let lab = lab_on(&sim);
    let spec = spec(&lab, |t| t);

    let plan = lab.plan_json(&spec);
    let ids = action_ids(&plan);
    assert_eq!(
        ids,
        vec!["pci-mapping-gpu0", "vm-500-create", "vm-500-start"],
        "{plan:#}"
    );
    let map = action(&plan, "pci-mapping-gpu0");
    let call = map["apiCalls"][0].as_str().unwrap_or_default();
    assert!(
        call.starts_with("POST /cluster/mapping/pci id=gpu0 map=node=proxmox,path=0000:01:00,id=10de:2184,iommugroup=14,subsystem-id=1462:8d90"),
        "{call}"
    );
    let create = action(&plan, "vm-500-create");
    assert!(
        create["dependsOn"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "pci-mapping-gpu0")),
        "{create:#}"
    );
    let calls = create["apiCalls"].to_string();
    assert!(calls.contains("hostpci0=mapping=gpu0,pcie=1"), "{calls}");
    assert!(
        calls.contains("machine=q35") && calls.contains("bios=ovmf"),
        "{calls}"
    );

    lab.apply(&spec).expect_code(0, "apply");

    // On the node: the mapping, the VM config, running.
    let client = sim.client();
    let rt = rt();
    let maps = rt.block_on(client.pci_mappings()).expect("mappings");
    assert_eq!(maps.len(), 1);
    assert_eq!(
        maps[0].description.as_deref(),
        Some("GeForce GTX 1660 for the GPU worker")
    );
    let conf = rt
        .block_on(client.qemu_config("proxmox", 500))
        .expect("config");
    assert_eq!(
        conf.values.get("hostpci0").map(String::as_str),
        Some("mapping=gpu0,pcie=1"),
        "{conf:?}"
    );

    let v = lab.run(&["validate", &spec.to_string_lossy(), "-o", "json"]);
    v.expect_code(0, "validate");
    let report = v.json();
    let attached = report["checks"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|c| c["name"] == "VM 500 hostpci0: gpu0 attached")
                .cloned()
        })
        .unwrap_or(Value::Null);
    assert_eq!(attached["status"], "pass", "{report:#}");

    let again = lab.plan_json(&spec);
    assert!(action_ids(&again).is_empty(), "{again:#}");
    assert!(
        again["held"].as_array().is_some_and(|h| h.is_empty()),
        "{again:#}"
    );
}

#[test]
fn a_card_sharing_its_iommu_group_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = SimProcess::start_with(dir.path(), 0.01, &["--scenario", "hdds"]);
    let lab = lab_on(&sim);
    // The GT 710 behind the PCH root port shares group 2 with the SATA controller.
    let spec = spec(&lab, |t| {
        t.replace("path: \"0000:01:00\"", "path: \"0000:05:00\"")
            .replace("iommuGroup: 14", "iommuGroup: 2")
    });
    let plan = lab.plan_json(&spec);
    let ids = action_ids(&plan);
    assert!(!ids.iter().any(|i| i.starts_with("pci-")), "{ids:?}");
    let held = plan["held"].as_array().cloned().unwrap_or_default();
    let refusal = held
        .iter()
        .find(|h| h["target"] == "pci-mapping/gpu0")
        .unwrap_or_else(|| panic!("no held mapping: {plan:#}"));
    let reason = refusal["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("refused: 0000:05:00 shares IOMMU group 2 with 0000:00:17.0"),
        "{reason}"
    );
    assert!(reason.contains("SATA Controller"), "{reason}");
    // The root port (a bridge) is no reason to refuse.
    assert!(!reason.contains("0000:00:1c.0"), "{reason}");
    assert!(
        refusal["unblock"]
            .as_str()
            .unwrap_or_default()
            .contains("ACS override")
    );
    // The VM is planned without the device, and its hostpci0 is held with the reason.
    let create = action(&plan, "vm-500-create");
    assert!(
        !create["apiCalls"].to_string().contains("hostpci0"),
        "{create:#}"
    );
    let dev = held
        .iter()
        .find(|h| h["elements"].to_string().contains("hostpci0"))
        .unwrap_or_else(|| panic!("hostpci0 not held: {plan:#}"));
    assert!(
        dev["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("shares IOMMU group 2")
    );
    let elements = plan["elements"].as_array().cloned().unwrap_or_default();
    let st = |path: &str| {
        elements
            .iter()
            .find(|e| e["path"] == path)
            .map(|e| e["status"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(st("pciMappings[0]"), "held");
    assert_eq!(st("vms[0].hostpci.hostpci0"), "held");

    lab.apply(&spec).expect_code(0, "apply");
    let client = sim.client();
    let rt = rt();
    assert!(
        rt.block_on(client.pci_mappings())
            .expect("mappings")
            .is_empty()
    );
    let conf = rt
        .block_on(client.qemu_config("proxmox", 500))
        .expect("config");
    assert!(!conf.values.contains_key("hostpci0"), "{conf:?}");
}
