#![allow(clippy::unwrap_used)]
mod common;

#[tokio::test]
async fn version_and_vm_lifecycle() {
    let api = common::start_default().await;
    let v = api.get("/version").await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    assert_eq!(v.data()["release"], "9.1");
    api.create_vm(100, &[]).await;
    let c = api.get("/nodes/proxmox/qemu/100/config").await;
    assert_eq!(c.status, 200);
    assert_eq!(c.data()["memory"], "2048");
    assert_eq!(c.data()["cores"], 2);
    assert!(
        c.data()["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:vm-100-disk-0,size=8G"),
        "{}",
        c.data()
    );
    assert!(
        c.data()["net0"]
            .as_str()
            .unwrap()
            .starts_with("virtio=BC:24:11:"),
        "{}",
        c.data()
    );
    assert_eq!(c.data()["digest"].as_str().unwrap().len(), 40);
    let d = api
        .delete("/nodes/proxmox/qemu/100", &[("purge", "1")])
        .await;
    assert_eq!(api.wait(d.data()).await, "OK");
    let c = api.get("/nodes/proxmox/qemu/100/config").await;
    assert_eq!(c.status, 500);
    api.sim.shutdown().await;
}
