//! QEMU guest behaviour: create, config typing and normalisation, digests, pending
//! changes, locks, power, snapshots, resize and the guest agent.
#![allow(clippy::unwrap_used)]
mod common;

use std::time::Duration;

use labwright_sim::{Faults, SimConfig};

#[tokio::test]
async fn create_normalises_like_pve_and_refuses_duplicates() {
    let api = common::start_default().await;
    api.create_vm(
        100,
        &[
            ("tags", "Web;prod,web"),
            ("agent", "1"),
            ("ide2", "local:iso/debian.iso,media=cdrom"),
        ],
    )
    .await;
    let c = api.get("/nodes/proxmox/qemu/100/config").await;
    let d = c.data();
    assert_eq!(d["tags"], "prod;web");
    assert_eq!(d["memory"], "2048", "memory is a string in PVE's output");
    assert_eq!(d["cores"], 2);
    assert!(d["meta"].as_str().unwrap().starts_with("creation-qemu="));
    assert!(d["smbios1"].as_str().unwrap().starts_with("uuid="));
    assert_eq!(d["vmgenid"].as_str().unwrap().len(), 36);
    assert_eq!(d["ide2"], "local:iso/debian.iso,media=cdrom");
    assert!(d.get("lock").is_none());
    let r = api.post("/nodes/proxmox/qemu", &[("vmid", "100")]).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.message(),
        "unable to create VM 100 - VM 100 already exists on node 'proxmox'\n"
    );
    let r = api
        .post(
            "/nodes/proxmox/qemu",
            &[("vmid", "101"), ("ide2", "local:iso/debian.iso")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.err("ide2"),
        "explicit 'media=cdrom' is required for iso images"
    );
    let r = api
        .post(
            "/nodes/proxmox/qemu",
            &[("vmid", "101"), ("scsi0", "local:8")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.err("storage"),
        "storage 'local' does not support vm images"
    );
    // The volume exists on the storage.
    let r = api.get("/nodes/proxmox/storage/local-lvm/content").await;
    let vols: Vec<&str> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["volid"].as_str().unwrap())
        .collect();
    assert_eq!(vols, ["local-lvm:vm-100-disk-0"]);
}

#[tokio::test]
async fn nextid_resources_lag_and_task_listing() {
    let api = common::start(SimConfig {
        time_scale: 0.05,
        ..SimConfig::for_tests()
    })
    .await;
    assert_eq!(api.get("/cluster/nextid").await.data(), "100");
    api.create_vm(100, &[]).await;
    let r = api.get("/cluster/resources?type=vm").await;
    let e = &r.data()[0];
    assert_eq!(
        e["status"], "unknown",
        "pvestatd has not seen the new guest yet: {e}"
    );
    assert!(e.get("name").is_none());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = api.get("/cluster/resources?type=vm").await;
    assert_eq!(r.data()[0]["name"], "test-vm");
    assert_eq!(r.data()[0]["status"], "stopped");
    assert_eq!(api.get("/cluster/nextid").await.data(), "101");
    // Power changes also reach /cluster/resources only with the next stats round.
    let s = api.post("/nodes/proxmox/qemu/100/status/start", &[]).await;
    assert_eq!(api.wait(s.data()).await, "OK");
    assert_eq!(
        api.get("/nodes/proxmox/qemu/100/status/current")
            .await
            .data()["status"],
        "running"
    );
    let r = api.get("/cluster/resources?type=vm").await;
    assert_eq!(r.data()[0]["status"], "stopped", "stats lag");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = api.get("/cluster/resources?type=vm").await;
    assert_eq!(r.data()[0]["status"], "running");
    let r = api.call("GET", "/cluster/nextid", &[("vmid", "100")]).await;
    assert_eq!(r.status, 400);
    let r = api
        .call("GET", "/nodes/proxmox/tasks", &[("typefilter", "qmcreate")])
        .await;
    assert_eq!(r.body["total"], 1);
    let upid = r.data()[0]["upid"].as_str().unwrap().to_string();
    assert_eq!(r.data()[0]["type"], "qmcreate");
    let log = api
        .get(&format!(
            "/nodes/proxmox/tasks/{}/log",
            common::urlencode(&upid)
        ))
        .await;
    let lines = log.data().as_array().unwrap();
    assert_eq!(lines.last().unwrap()["t"], "TASK OK");
    assert_eq!(lines[0]["n"], 1);
    assert_eq!(log.body["total"], lines.len());
    let bad = api.get("/nodes/proxmox/tasks/UPID:nope/status").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.err("upid"), "unable to parse worker upid");
}

#[tokio::test]
async fn digest_pending_and_hotplug() {
    let api = common::start_default().await;
    api.create_vm(100, &[]).await;
    let c = api.get("/nodes/proxmox/qemu/100/config").await;
    let digest = c.data()["digest"].as_str().unwrap().to_string();
    let r = api
        .put(
            "/nodes/proxmox/qemu/100/config",
            &[("name", "renamed"), ("digest", &"0".repeat(40))],
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.message(),
        "checksum mismatch (file change by other user?)\n"
    );
    let r = api
        .put(
            "/nodes/proxmox/qemu/100/config",
            &[("name", "renamed"), ("digest", &digest)],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.put("/nodes/proxmox/qemu/100/config", &[]).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.message(), "no options specified\n");
    let r = api
        .put("/nodes/proxmox/qemu/100/config", &[("delete", "foo")])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.err("delete"), "unknown option 'foo'");
    // Running VM: memory is not hot-pluggable by default, the name is.
    let s = api.post("/nodes/proxmox/qemu/100/status/start", &[]).await;
    assert_eq!(api.wait(s.data()).await, "OK");
    let r = api
        .put(
            "/nodes/proxmox/qemu/100/config",
            &[("memory", "4096"), ("name", "hot")],
        )
        .await;
    assert_eq!(r.status, 200);
    let cur = api
        .call("GET", "/nodes/proxmox/qemu/100/config", &[("current", "1")])
        .await;
    assert_eq!(cur.data()["memory"], "2048");
    assert_eq!(cur.data()["name"], "hot");
    let eff = api.get("/nodes/proxmox/qemu/100/config").await;
    assert_eq!(eff.data()["memory"], "4096");
    let p = api.get("/nodes/proxmox/qemu/100/pending").await;
    let mem = p
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "memory")
        .unwrap()
        .clone();
    assert_eq!(mem["value"], "2048");
    assert_eq!(mem["pending"], "4096");
    // The loaded config carries its digest, so `/pending` lists it (what optimistic
    // locking of a running guest's update relies on).
    let listed = p
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "digest")
        .map(|e| e["value"].clone());
    assert_eq!(listed, Some(eff.data()["digest"].clone()));
    // A second NIC is hot-plugged.
    let r = api
        .post(
            "/nodes/proxmox/qemu/100/config",
            &[("net1", "virtio,bridge=vmbr0,firewall=1")],
        )
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let cur = api
        .call("GET", "/nodes/proxmox/qemu/100/config", &[("current", "1")])
        .await;
    assert!(
        cur.data()["net1"]
            .as_str()
            .unwrap()
            .ends_with(",bridge=vmbr0,firewall=1")
    );
    // Reboot applies pending changes.
    let r = api.post("/nodes/proxmox/qemu/100/status/reboot", &[]).await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let p = api.get("/nodes/proxmox/qemu/100/pending").await;
    assert!(
        p.data()
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("pending").is_none())
    );
    let r = api.delete("/nodes/proxmox/qemu/100", &[]).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.message(), "VM 100 is running - destroy failed\n");
    let r = api.post("/nodes/proxmox/qemu/100/status/start", &[]).await;
    assert_eq!(api.wait(r.data()).await, "VM 100 already running");
    // A paused VM cannot be shut down without forceStop.
    let r = api
        .post("/nodes/proxmox/qemu/100/status/suspend", &[])
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    assert_eq!(
        api.get("/nodes/proxmox/qemu/100/status/current")
            .await
            .data()["qmpstatus"],
        "paused"
    );
    let r = api
        .post("/nodes/proxmox/qemu/100/status/shutdown", &[])
        .await;
    assert_eq!(api.wait(r.data()).await, "VM is paused - cannot shutdown");
    let r = api.post("/nodes/proxmox/qemu/100/status/resume", &[]).await;
    assert_eq!(api.wait(r.data()).await, "OK");
    for _ in 0..2 {
        let r = api.post("/nodes/proxmox/qemu/100/status/stop", &[]).await;
        assert_eq!(api.wait(r.data()).await, "OK", "stop is idempotent");
    }
    let r = api.post("/nodes/proxmox/qemu/100/status/reboot", &[]).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.message(), "VM 100 not running\n");
    let c = api.get("/nodes/proxmox/qemu/100/status/current").await;
    assert_eq!(c.data()["status"], "stopped");
    assert_eq!(c.data()["ha"]["managed"], 0);
}

#[tokio::test]
async fn deleting_a_disk_leaves_an_unused_volume_and_protection_blocks_destroy() {
    let api = common::start_default().await;
    api.create_vm(100, &[("scsi1", "local-lvm:4")]).await;
    let r = api
        .put("/nodes/proxmox/qemu/100/config", &[("delete", "scsi1")])
        .await;
    assert_eq!(r.status, 200);
    let c = api.get("/nodes/proxmox/qemu/100/config").await;
    assert_eq!(c.data()["unused0"], "local-lvm:vm-100-disk-1");
    assert_eq!(
        api.put("/nodes/proxmox/qemu/100/config", &[("protection", "1")])
            .await
            .status,
        200
    );
    let r = api
        .put("/nodes/proxmox/qemu/100/config", &[("delete", "unused0")])
        .await;
    assert_eq!(
        r.status, 500,
        "protection blocks disk removal: {:?}",
        r.body
    );
    let r = api.delete("/nodes/proxmox/qemu/100", &[]).await;
    assert_eq!(
        r.message(),
        "can't remove VM 100 - protection mode enabled\n"
    );
}

#[tokio::test]
async fn locks_and_cant_lock_file_under_concurrent_writes() {
    let faults = Faults {
        slow_task_rate: 1.0,
        slow_task_factor: 10.0,
        ..Faults::default()
    };
    let api = common::start(SimConfig {
        time_scale: 0.05,
        faults,
        ..SimConfig::for_tests()
    })
    .await;
    // While the (slow) create runs, the config carries lock: create.
    let r = api
        .post(
            "/nodes/proxmox/qemu",
            &[("vmid", "100"), ("scsi0", "local-lvm:4")],
        )
        .await;
    let upid = r.data().clone();
    let r2 = api
        .post(
            "/nodes/proxmox/qemu",
            &[("vmid", "101"), ("scsi0", "local-lvm:4")],
        )
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = api
        .put("/nodes/proxmox/qemu/100/config", &[("name", "x")])
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.message(), "VM is locked (create)\n");
    assert_eq!(api.wait(&upid).await, "OK");
    // The second create waited for the storage lock longer than 10 s (scaled) and failed.
    assert_eq!(
        api.wait(r2.data()).await,
        "can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout"
    );
    // A start holds the VM's flock; a concurrent sync config write times out.
    let s = api.post("/nodes/proxmox/qemu/100/status/start", &[]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = api
        .put("/nodes/proxmox/qemu/100/config", &[("name", "x")])
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.message(),
        "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout\n"
    );
    assert_eq!(api.wait(s.data()).await, "OK");
    // skiplock is for root@pam tickets only.
    let r = api
        .put(
            "/nodes/proxmox/qemu/100/config",
            &[("delete", "lock"), ("skiplock", "1")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.err("skiplock"), "Only root may use this option.");
}

#[tokio::test]
async fn snapshots_rollback_and_resize() {
    let api = common::start_default().await;
    api.create_vm(100, &[]).await;
    let r = api
        .post(
            "/nodes/proxmox/qemu/100/snapshot",
            &[("snapname", "before"), ("description", "pre-change")],
        )
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let r = api
        .post(
            "/nodes/proxmox/qemu/100/snapshot",
            &[("snapname", "before")],
        )
        .await;
    assert_eq!(r.message(), "snapshot name 'before' already used\n");
    assert_eq!(
        api.put("/nodes/proxmox/qemu/100/config", &[("memory", "8192")])
            .await
            .status,
        200
    );
    let l = api.get("/nodes/proxmox/qemu/100/snapshot").await;
    let list = l.data().as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "before");
    assert_eq!(list[1]["name"], "current");
    assert_eq!(list[1]["description"], "You are here!");
    assert_eq!(list[1]["parent"], "before");
    let r = api
        .post("/nodes/proxmox/qemu/100/snapshot/before/rollback", &[])
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    assert_eq!(
        api.get("/nodes/proxmox/qemu/100/config").await.data()["memory"],
        "2048"
    );
    let r = api
        .get("/nodes/proxmox/qemu/100/snapshot/nope/config")
        .await;
    assert_eq!(r.message(), "snapshot 'nope' does not exist\n");
    let r = api
        .delete("/nodes/proxmox/qemu/100/snapshot/before", &[])
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    assert_eq!(
        api.get("/nodes/proxmox/qemu/100/snapshot")
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = api
        .put(
            "/nodes/proxmox/qemu/100/resize",
            &[("disk", "scsi0"), ("size", "+2G")],
        )
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let c = api.get("/nodes/proxmox/qemu/100/config").await;
    assert!(
        c.data()["scsi0"].as_str().unwrap().contains("size=10G"),
        "{}",
        c.data()["scsi0"]
    );
    let r = api
        .put(
            "/nodes/proxmox/qemu/100/resize",
            &[("disk", "scsi0"), ("size", "4G")],
        )
        .await;
    // PVE 8/9 check inside the resize worker: the call returns a UPID, the task fails.
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(api.wait(r.data()).await, "shrinking disks is not supported");
}

#[tokio::test]
async fn guest_agent_with_simulated_guest() {
    let api = common::start(SimConfig {
        time_scale: 0.02,
        ..SimConfig::for_tests()
    })
    .await;
    api.create_vm(100, &[("ipconfig0", "ip=192.168.1.30/24,gw=192.168.1.1")])
        .await;
    let r = api.post("/nodes/proxmox/qemu/100/agent/ping", &[]).await;
    assert_eq!(r.message(), "No QEMU guest agent configured\n");
    assert_eq!(
        api.put("/nodes/proxmox/qemu/100/config", &[("agent", "enabled=1")])
            .await
            .status,
        200
    );
    let r = api.post("/nodes/proxmox/qemu/100/agent/ping", &[]).await;
    assert_eq!(r.message(), "VM 100 is not running\n");
    let s = api.post("/nodes/proxmox/qemu/100/status/start", &[]).await;
    assert_eq!(api.wait(s.data()).await, "OK");
    let r = api.post("/nodes/proxmox/qemu/100/agent/ping", &[]).await;
    assert_eq!(
        r.message(),
        "QEMU guest agent is not running\n",
        "the guest is still booting"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = api.post("/nodes/proxmox/qemu/100/agent/ping", &[]).await;
    assert_eq!(r.body["data"]["result"], serde_json::json!({}));
    let r = api
        .post(
            "/nodes/proxmox/qemu/100/agent/file-write",
            &[("file", "/etc/motd"), ("content", "hello lab\n")],
        )
        .await;
    assert_eq!(r.status, 200);
    // Repeated `command` keys form the argument array.
    let r = api
        .post(
            "/nodes/proxmox/qemu/100/agent/exec",
            &[("command", "cat"), ("command", "/etc/motd")],
        )
        .await;
    let pid = r.data()["pid"].as_i64().unwrap().to_string();
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = api
            .call(
                "GET",
                "/nodes/proxmox/qemu/100/agent/exec-status",
                &[("pid", &pid)],
            )
            .await
            .data()
            .clone();
        if status["exited"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status["exited"], 1);
    assert_eq!(status["exitcode"], 0);
    assert_eq!(status["out-data"], "hello lab\n");
    let r = api
        .get("/nodes/proxmox/qemu/100/agent/network-get-interfaces")
        .await;
    let eth0 = &r.data()["result"][1];
    assert_eq!(eth0["ip-addresses"][0]["ip-address"], "192.168.1.30");
    assert_eq!(eth0["ip-addresses"][0]["prefix"], 24);
}

#[tokio::test]
async fn purge_removes_vm_from_backup_jobs_and_task_failure_is_reported() {
    let faults = Faults {
        task_failure_rate: 1.0,
        ..Faults::default()
    };
    let api = common::start(SimConfig {
        faults,
        ..SimConfig::for_tests()
    })
    .await;
    let r = api.post("/nodes/proxmox/qemu", &[("vmid", "100")]).await;
    let st = api.wait(r.data()).await;
    assert_eq!(st, "unable to create VM 100 - command failed");
    let upid = common::urlencode(r.data().as_str().unwrap());
    let log = api.get(&format!("/nodes/proxmox/tasks/{upid}/log")).await;
    assert_eq!(
        log.data().as_array().unwrap().last().unwrap()["t"],
        "TASK ERROR: unable to create VM 100 - command failed"
    );
    let errs = api
        .call("GET", "/nodes/proxmox/tasks", &[("errors", "1")])
        .await;
    assert_eq!(errs.body["total"], 1);
}

/// Chaos soak, seed 110: a create failed by fault injection left VM 100 behind with
/// only `lock: create`, which held back every later apply. qemu-server removes the
/// half-made config when a create fails; only a crash leaves the lock.
#[tokio::test]
async fn soak_seed_110_failed_create_leaves_no_locked_guest() {
    let api = common::start(SimConfig {
        faults: Faults {
            task_failure_rate: 1.0,
            ..Faults::default()
        },
        ..SimConfig::for_tests()
    })
    .await;
    let r = api
        .post(
            "/nodes/proxmox/qemu",
            &[("vmid", "100"), ("scsi0", "local-lvm:4")],
        )
        .await;
    assert_eq!(
        api.wait(r.data()).await,
        "unable to create VM 100 - command failed"
    );
    let r = api.get("/nodes/proxmox/qemu/100/config").await;
    assert_eq!(r.status, 500, "{:?}", r.body);
    assert!(r.message().contains("does not exist"), "{}", r.message());
    assert_eq!(
        api.get("/nodes/proxmox/qemu").await.data(),
        &serde_json::json!([])
    );
    // The VMID is free again.
    assert_eq!(api.get("/cluster/nextid").await.data(), "100");
}

#[tokio::test]
async fn purge_cleans_backup_jobs() {
    let api = common::start_default().await;
    api.create_vm(100, &[]).await;
    api.create_vm(101, &[]).await;
    let r = api
        .post(
            "/cluster/backup",
            &[
                ("id", "daily"),
                ("vmid", "100,101"),
                ("schedule", "daily"),
                ("storage", "local"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let d = api
        .delete("/nodes/proxmox/qemu/100", &[("purge", "1")])
        .await;
    assert_eq!(api.wait(d.data()).await, "OK");
    assert_eq!(api.get("/cluster/backup/daily").await.data()["vmid"], "101");
}

#[tokio::test]
async fn template_and_clones() {
    let api = common::start_default().await;
    api.create_vm(9000, &[("name", "debian-tpl")]).await;
    let r = api
        .post(
            "/nodes/proxmox/qemu/9000/clone",
            &[("newid", "101"), ("full", "0")],
        )
        .await;
    assert_eq!(
        r.message(),
        "Linked clone feature is not supported for 'local-lvm:vm-9000-disk-0' (scsi0)\n"
    );
    let r = api.post("/nodes/proxmox/qemu/9000/template", &[]).await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let c = api.get("/nodes/proxmox/qemu/9000/config").await;
    assert_eq!(c.data()["template"], 1);
    assert!(
        c.data()["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:base-9000-disk-0,")
    );
    let r = api.post("/nodes/proxmox/qemu/9000/status/start", &[]).await;
    assert_eq!(
        api.wait(r.data()).await,
        "you can't start a vm if it's a template"
    );
    let r = api
        .post(
            "/nodes/proxmox/qemu/9000/clone",
            &[("newid", "101"), ("name", "app-host")],
        )
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let c = api.get("/nodes/proxmox/qemu/101/config").await;
    assert_eq!(c.data()["name"], "app-host");
    assert!(
        c.data()["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:vm-101-disk-0,")
    );
    assert!(c.data().get("template").is_none());
    let src_mac = api.get("/nodes/proxmox/qemu/9000/config").await.data()["net0"].clone();
    assert_ne!(c.data()["net0"], src_mac, "clones get a new MAC");
    let r = api
        .post("/nodes/proxmox/qemu/9000/clone", &[("newid", "101")])
        .await;
    assert_eq!(r.message(), "VM 101 already exists on node 'proxmox'\n");
}

/// Runs a command through the guest agent and waits for it.
async fn guest_exec(api: &common::Api, vmid: u32, argv: &[&str]) -> serde_json::Value {
    let form: Vec<(&str, &str)> = argv.iter().map(|a| ("command", *a)).collect();
    let r = api
        .post(&format!("/nodes/proxmox/qemu/{vmid}/agent/exec"), &form)
        .await;
    let pid = r.data()["pid"].as_i64().unwrap().to_string();
    for _ in 0..200 {
        let s = api
            .call(
                "GET",
                &format!("/nodes/proxmox/qemu/{vmid}/agent/exec-status"),
                &[("pid", &pid)],
            )
            .await;
        if s.data()["exited"] == 1 {
            return s.data().clone();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("exec did not finish");
}

#[tokio::test]
async fn nocloud_seed_user_data_runs_on_first_boot() {
    let api = common::start(SimConfig {
        time_scale: 0.02,
        ..SimConfig::for_tests()
    })
    .await;
    let mut iso = vec![0u8; 32768];
    iso.extend_from_slice(b"CD001 cidata");
    iso.extend(vec![0u8; 2048]);
    iso.extend_from_slice(
        b"#cloud-config\nhostname: app-host\nwrite_files:\n  - path: /opt/naas/stacks/README\n    content: |\n      managed by labwright\nruncmd:\n  - mkdir -p /opt/naas/appdata /opt/naas/logs\n  - [touch, /var/lib/done]\n",
    );
    iso.extend(vec![0u8; 4096]);
    let form = reqwest::multipart::Form::new().text("content", "iso").part(
        "filename",
        reqwest::multipart::Part::bytes(iso).file_name("app-host-seed.iso"),
    );
    let resp = api
        .http
        .post(format!("{}/nodes/proxmox/storage/local/upload", api.base))
        .header("Authorization", &api.auth)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(api.wait(&v["data"]).await, "OK");
    api.create_vm(
        300,
        &[
            ("agent", "1"),
            ("ide2", "local:iso/app-host-seed.iso,media=cdrom"),
        ],
    )
    .await;
    let s = api.post("/nodes/proxmox/qemu/300/status/start", &[]).await;
    assert_eq!(api.wait(s.data()).await, "OK");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = guest_exec(&api, 300, &["hostname"]).await;
    assert_eq!(r["out-data"], "app-host\n");
    let r = guest_exec(&api, 300, &["cat", "/opt/naas/stacks/README"]).await;
    assert_eq!(r["out-data"], "managed by labwright\n");
    for dir in ["/opt/naas/stacks", "/opt/naas/appdata", "/opt/naas/logs"] {
        let r = guest_exec(&api, 300, &["sh", "-c", &format!("test -d {dir}")]).await;
        assert_eq!(r["exitcode"], 0, "{dir}");
    }
    let r = guest_exec(&api, 300, &["test", "-d", "/opt/naas/media"]).await;
    assert_eq!(r["exitcode"], 1);
    let r = guest_exec(&api, 300, &["test", "-f", "/var/lib/done"]).await;
    assert_eq!(r["exitcode"], 0);
}

/// Drives on a running VM follow qemu-server: a CD-ROM's medium is swapped live; new
/// SCSI drives are hot-plugged and removed live (into `unusedN`); IDE/SATA drives are
/// never hot-plugged, so adding or removing one waits for the next start; a CD-ROM
/// cannot become a disk.
#[tokio::test]
async fn drive_hotplug_follows_qemu_server() {
    let api = common::start_default().await;
    api.create_vm(100, &[("ide2", "local:iso/a.iso,media=cdrom")])
        .await;
    let s = api.post("/nodes/proxmox/qemu/100/status/start", &[]).await;
    assert_eq!(api.wait(s.data()).await, "OK");
    let put = |form: Vec<(&'static str, &'static str)>| {
        let api = &api;
        async move { api.put("/nodes/proxmox/qemu/100/config", &form).await }
    };
    let current = || async {
        api.call("GET", "/nodes/proxmox/qemu/100/config", &[("current", "1")])
            .await
            .data()
            .clone()
    };
    let r = put(vec![("ide2", "local:iso/b.iso,media=cdrom")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        current().await["ide2"],
        "local:iso/b.iso,media=cdrom",
        "swapped live"
    );
    let r = put(vec![("scsi1", "local-lvm:1")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        current().await["scsi1"].as_str().is_some(),
        "SCSI hot-plugged"
    );
    let r = put(vec![("sata1", "local-lvm:1")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        current().await.get("sata1").is_none(),
        "SATA waits for a start"
    );
    let r = put(vec![("delete", "ide2")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(current().await.get("ide2").is_some(), "IDE removal waits");
    let p = api.get("/nodes/proxmox/qemu/100/pending").await;
    assert!(
        p.data()
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "ide2" && e["delete"] == 1),
        "{:?}",
        p.body
    );
    let r = put(vec![("delete", "scsi1")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let cur = current().await;
    assert!(cur.get("scsi1").is_none(), "SCSI unplugged live");
    assert!(
        cur["unused0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:vm-100-disk-"),
        "{cur}"
    );
    let r = put(vec![("ide0", "local:iso/c.iso,media=cdrom")]).await;
    assert_eq!(r.status, 200);
    let s = api.post("/nodes/proxmox/qemu/100/status/stop", &[]).await;
    assert_eq!(api.wait(s.data()).await, "OK");
    let s = api.post("/nodes/proxmox/qemu/100/status/start", &[]).await;
    assert_eq!(api.wait(s.data()).await, "OK");
    let r = put(vec![("ide0", "local-lvm:1")]).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.err("ide0"), "unable to change media type");
}
