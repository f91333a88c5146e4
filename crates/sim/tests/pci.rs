//! PCI passthrough on the simulator: the node's PCI list as pve-manager returns it,
//! PCI mappings with their checks, and what a start refuses (mapping missing, device
//! held by another running VM, shared IOMMU group, pcie without q35).
#![allow(clippy::unwrap_used)]

mod common;

use common::Api;
use labwright_sim::{Scenario, SimConfig};
use serde_json::Value;

async fn hdds() -> Api {
    common::start(SimConfig {
        scenario: Scenario::Hdds,
        time_scale: 0.02,
        ..SimConfig::for_tests()
    })
    .await
}

const GPU0_MAP: &str =
    "node=proxmox,path=0000:01:00,id=10de:2184,iommugroup=14,subsystem-id=1462:8d90";

async fn start(api: &Api, vmid: u32) -> String {
    let r = api
        .post(&format!("/nodes/proxmox/qemu/{vmid}/status/start"), &[])
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    api.wait(r.data()).await
}

#[tokio::test]
async fn the_pci_list_filters_bridges_by_default_and_names_devices() {
    let api = hdds().await;
    let r = api.get("/nodes/proxmox/hardware/pci").await;
    assert_eq!(r.status, 200);
    let list = r.data().as_array().unwrap();
    let ids: Vec<&str> = list.iter().map(|d| d["id"].as_str().unwrap()).collect();
    // Sorted, bridges (class 06) left out by default.
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(!ids.contains(&"0000:00:1c.0"));
    assert!(!ids.contains(&"0000:00:00.0"));
    let gpu = list.iter().find(|d| d["id"] == "0000:01:00.0").unwrap();
    assert_eq!(gpu["class"], "0x030000");
    assert_eq!(gpu["vendor"], "0x10de");
    assert_eq!(gpu["device"], "0x2184");
    assert_eq!(gpu["iommugroup"], 14);
    assert_eq!(gpu["vendor_name"], "NVIDIA Corporation");
    assert_eq!(gpu["device_name"], "TU116 [GeForce GTX 1660]");
    assert_eq!(gpu["subsystem_vendor"], "0x1462");
    assert!(gpu.get("mdev").is_none());
    // An empty blacklist shows everything; verbose=0 only the ids.
    let all = api
        .call(
            "GET",
            "/nodes/proxmox/hardware/pci",
            &[("pci-class-blacklist", ""), ("verbose", "0")],
        )
        .await;
    let all = all.data().as_array().unwrap();
    assert!(all.iter().any(|d| d["id"] == "0000:00:1c.0"));
    assert!(all.iter().all(|d| d.get("vendor_name").is_none()));
    // The fresh scenario has no GPU.
    let fresh = common::start_default().await;
    let r = fresh.get("/nodes/proxmox/hardware/pci").await;
    assert!(
        !r.data()
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["class"] == "0x030000")
    );
}

#[tokio::test]
async fn mappings_are_crud_with_pve_errors_and_checks() {
    let api = hdds().await;
    let r = api
        .post("/cluster/mapping/pci", &[("id", "gpu0"), ("map", GPU0_MAP)])
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let again = api
        .post("/cluster/mapping/pci", &[("id", "gpu0"), ("map", GPU0_MAP)])
        .await;
    assert_eq!(again.status, 500);
    assert!(
        again
            .message()
            .contains("create hardware mapping failed: pci ID 'gpu0' already defined"),
        "{}",
        again.message()
    );
    // A bad map entry is refused by the schema (vendor:device pattern).
    let bad = api
        .post(
            "/cluster/mapping/pci",
            &[
                ("id", "gpu9"),
                ("map", "node=proxmox,path=0000:01:00,id=10de"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    // An entry without the ids the device has fails the node check.
    let r = api
        .post(
            "/cluster/mapping/pci",
            &[
                ("id", "old"),
                ("map", "node=proxmox,path=0000:01:00,id=10de:1234"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let list = api
        .call("GET", "/cluster/mapping/pci", &[("check-node", "proxmox")])
        .await;
    let list = list.data().as_array().unwrap();
    let find = |id: &str| list.iter().find(|m| m["id"] == id).unwrap().clone();
    assert_eq!(find("gpu0")["checks"], Value::Array(vec![]));
    let msg = find("old")["checks"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        msg,
        "Invalid configuration: 'id' does not match for 'old' (10de:2184 != 10de:1234)"
    );
    let missing = api
        .put("/cluster/mapping/pci/nope", &[("description", "x")])
        .await;
    assert!(
        missing
            .message()
            .contains("update hardware mapping failed: pci ID 'nope' does not exist")
    );
    let r = api
        .put("/cluster/mapping/pci/gpu0", &[("description", "GTX 1660")])
        .await;
    assert_eq!(r.status, 200);
    let one = api.get("/cluster/mapping/pci/gpu0").await;
    assert_eq!(one.data()["description"], "GTX 1660");
    assert_eq!(one.data()["map"][0], GPU0_MAP);
    assert_eq!(
        api.delete("/cluster/mapping/pci/old", &[]).await.status,
        200
    );
    let list = api.get("/cluster/mapping/pci").await;
    assert_eq!(list.data().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_start_resolves_the_mapping_and_refuses_what_pve_refuses() {
    let api = hdds().await;
    let dev = [
        ("machine", "q35"),
        ("bios", "ovmf"),
        ("hostpci0", "mapping=gpu0,pcie=1"),
    ];
    api.create_vm(500, &dev).await;
    // No mapping yet: the start fails the way qemu-server fails it.
    let status = start(&api, 500).await;
    assert!(
        status.contains("PCI device mapping not found for 'gpu0'"),
        "{status}"
    );
    api.post("/cluster/mapping/pci", &[("id", "gpu0"), ("map", GPU0_MAP)])
        .await;
    assert_eq!(start(&api, 500).await, "OK");
    let cur = api.get("/nodes/proxmox/qemu/500/status/current").await;
    assert_eq!(cur.data()["status"], "running");
    // A second VM with the same device cannot start while 500 runs.
    api.create_vm(501, &dev).await;
    let status = start(&api, 501).await;
    assert!(
        status.contains("PCI device '0000:01:00.0' already in use by VMID '500'"),
        "{status}"
    );
    // pcie=1 on i440fx.
    api.create_vm(
        502,
        &[("machine", "pc"), ("hostpci0", "mapping=gpu0,pcie=1")],
    )
    .await;
    let status = start(&api, 502).await;
    assert!(
        status.contains("q35 machine model is not enabled"),
        "{status}"
    );
    // The GT 710 shares IOMMU group 2 with the SATA controller: vfio refuses it.
    api.post(
        "/cluster/mapping/pci",
        &[
            ("id", "gt710"),
            (
                "map",
                "node=proxmox,path=0000:05:00.0,id=10de:128b,iommugroup=2,subsystem-id=1043:8576",
            ),
        ],
    )
    .await;
    api.create_vm(503, &[("machine", "q35"), ("hostpci0", "mapping=gt710")])
        .await;
    let status = start(&api, 503).await;
    assert!(status.contains("group 2 is not viable"), "{status}");
}

#[tokio::test]
async fn host_addresses_are_for_root_and_values_are_schema_checked() {
    let api = hdds().await;
    // The test token is root@pam's: a token is not root@pam itself.
    let r = api
        .post(
            "/nodes/proxmox/qemu",
            &[("vmid", "510"), ("hostpci0", "0000:01:00.0")],
        )
        .await;
    assert_eq!(r.status, 500, "{:?}", r.body);
    assert!(
        r.message()
            .contains("only root can set 'hostpci0' config for non-mapped devices"),
        "{}",
        r.message()
    );
    let r = api
        .post(
            "/nodes/proxmox/qemu",
            &[("vmid", "511"), ("hostpci0", "1:00.0")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.err("hostpci0")
            .contains("does not match the regex pattern"),
        "{:?}",
        r.body
    );
}
