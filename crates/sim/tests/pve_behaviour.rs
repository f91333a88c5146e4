//! Issue 16: places where the simulator differed from PVE 9 under third-party clients
//! (Ansible's community.proxmox, naasctl). Each test names the PVE code it follows.
#![allow(clippy::unwrap_used)]
mod common;

use std::time::Duration;

use labwright_sim::{Scenario, SimConfig};
use serde_json::Value;

async fn task_log(api: &common::Api, upid: &Value) -> Vec<String> {
    let upid = upid.as_str().unwrap();
    let enc = common::urlencode(upid);
    let r = api
        .call(
            "GET",
            &format!("/nodes/proxmox/tasks/{enc}/log"),
            &[("limit", "0")],
        )
        .await;
    r.data()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["t"].as_str().unwrap().to_string())
        .collect()
}

/// qemu-server `Network::print_net` is `print_property_string($net, $net_fmt)`: the
/// model (default key, carrying the MAC) first, then the other keys sorted.
#[tokio::test]
async fn nic_strings_are_model_mac_then_sorted_keys() {
    let api = common::start_default().await;
    api.create_vm(
        100,
        &[("net0", "virtio,tag=10,firewall=1,bridge=vmbr0,queues=2")],
    )
    .await;
    let r = api
        .put(
            "/nodes/proxmox/qemu/100/config",
            &[("net1", "e1000,rate=10,link_down=1,bridge=vmbr0,mtu=1400")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let c = api.get("/nodes/proxmox/qemu/100/config").await;
    let re = regex::Regex::new(
        r"^virtio=BC:24:11:[0-9A-F:]{8},bridge=vmbr0,firewall=1,queues=2,tag=10$",
    )
    .unwrap();
    assert!(
        re.is_match(c.data()["net0"].as_str().unwrap()),
        "{}",
        c.data()["net0"]
    );
    let net1 = c.data()["net1"].as_str().unwrap();
    assert!(net1.starts_with("e1000=BC:24:11:"), "{net1}");
    assert!(
        net1.ends_with(",bridge=vmbr0,link_down=1,mtu=1400,rate=10"),
        "{net1}"
    );
    // Writing the string back as read is no change at all (what proxmox_nic compares).
    let before = c.data()["digest"].clone();
    let r = api
        .put("/nodes/proxmox/qemu/100/config", &[("net1", net1)])
        .await;
    assert_eq!(r.status, 200);
    let after = api.get("/nodes/proxmox/qemu/100/config").await;
    assert_eq!(after.data()["net1"], net1);
    assert_eq!(
        after.data()["digest"],
        before,
        "same config text, same digest"
    );
}

/// qemu-server API `create_vm`: without `boot`, `get_default_bootdevices` (first disk,
/// first CD-ROM, first NIC) goes through `print_bootorder`; nothing bootable, no line.
#[tokio::test]
async fn create_without_boot_gets_the_default_order() {
    let api = common::start_default().await;
    api.create_vm(
        100,
        &[
            ("ide2", "local:iso/debian.iso,media=cdrom"),
            ("virtio1", "local-lvm:2"),
        ],
    )
    .await;
    let c = api.get("/nodes/proxmox/qemu/100/config").await;
    assert_eq!(c.data()["boot"], "order=scsi0;ide2;net0");
    let r = api
        .post("/nodes/proxmox/qemu", &[("vmid", "101"), ("memory", "512")])
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let c = api.get("/nodes/proxmox/qemu/101/config").await;
    assert!(c.data().get("boot").is_none(), "{:?}", c.data());
    api.create_vm(102, &[("boot", "order=net0")]).await;
    let c = api.get("/nodes/proxmox/qemu/102/config").await;
    assert_eq!(c.data()["boot"], "order=net0");
}

/// qemu-server API `resize_vm` (PVE 8/9): the worker is forked at once and every
/// check runs inside it, so refusals are failed `resize` tasks, not HTTP errors.
#[tokio::test]
async fn resize_refusals_are_task_failures() {
    let api = common::start_default().await;
    api.create_vm(100, &[]).await;
    for (disk, size, want) in [
        ("scsi0", "1G", "shrinking disks is not supported"),
        ("scsi5", "+1G", "disk 'scsi5' does not exist"),
    ] {
        let r = api
            .put(
                "/nodes/proxmox/qemu/100/resize",
                &[("disk", disk), ("size", size)],
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert!(r.data().as_str().unwrap().contains(":resize:100:"));
        assert_eq!(api.wait(r.data()).await, want);
    }
    // Same size: nothing to do, the task succeeds without touching the disk.
    let r = api
        .put(
            "/nodes/proxmox/qemu/100/resize",
            &[("disk", "scsi0"), ("size", "8G")],
        )
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let r = api
        .put(
            "/nodes/proxmox/qemu/100/resize",
            &[("disk", "scsi0"), ("size", "+1G")],
        )
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let log = task_log(&api, r.data()).await;
    assert_eq!(
        log[0],
        "  Size of logical volume pve/vm-100-disk-0 changed from 8.00 GiB (2048 extents) to 9.00 GiB (2304 extents)."
    );
}

/// qemu-server `QemuConfig::__snapshot_rollback_hook`: a VM with a `vmgenid` gets a
/// new one on rollback, so the guest learns it went back in time.
#[tokio::test]
async fn rollback_gives_a_new_vmgenid() {
    let api = common::start_default().await;
    api.create_vm(100, &[]).await;
    let before = api.get("/nodes/proxmox/qemu/100/config").await.data()["vmgenid"].clone();
    let r = api
        .post("/nodes/proxmox/qemu/100/snapshot", &[("snapname", "s1")])
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let r = api
        .post("/nodes/proxmox/qemu/100/snapshot/s1/rollback", &[])
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let after = api.get("/nodes/proxmox/qemu/100/config").await.data()["vmgenid"].clone();
    assert_eq!(after.as_str().unwrap().len(), 36);
    assert_ne!(before, after);
}

/// pve-guest-common `AbstractConfig::snapshot_rollback`: volumes the snapshot does not
/// use become unusedN; current unused disks and the description are kept
/// (`__snapshot_apply_config`); snapshots never store either (`__snapshot_copy_config`).
#[tokio::test]
async fn rollback_keeps_unused_disks_and_description() {
    let api = common::start_default().await;
    api.create_vm(100, &[("description", "before")]).await;
    let r = api
        .post("/nodes/proxmox/qemu/100/snapshot", &[("snapname", "s1")])
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let snap = api.get("/nodes/proxmox/qemu/100/snapshot/s1/config").await;
    assert!(
        snap.data().get("description").is_none(),
        "{:?}",
        snap.data()
    );
    let r = api
        .put(
            "/nodes/proxmox/qemu/100/config",
            &[("scsi1", "local-lvm:1"), ("description", "after")],
        )
        .await;
    assert_eq!(r.status, 200);
    let r = api
        .post("/nodes/proxmox/qemu/100/snapshot/s1/rollback", &[])
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let c = api.get("/nodes/proxmox/qemu/100/config").await;
    assert!(c.data().get("scsi1").is_none());
    assert_eq!(c.data()["unused0"], "local-lvm:vm-100-disk-1");
    assert_eq!(c.data()["description"], "after");
    assert_eq!(c.data()["parent"], "s1");
}

/// qemu-server `__snapshot_save_vmstate`: a RAM snapshot allocates
/// `vm-<id>-state-<snap>` (2 × memory + 500 MiB) on the VM's storage and records
/// `vmstate`, `runningmachine`, `runningcpu`; deleting the snapshot frees the volume.
#[tokio::test]
async fn ram_snapshots_have_a_state_volume() {
    let api = common::start_default().await;
    api.create_vm(100, &[]).await;
    let s = api.post("/nodes/proxmox/qemu/100/status/start", &[]).await;
    assert_eq!(api.wait(s.data()).await, "OK");
    let r = api
        .post(
            "/nodes/proxmox/qemu/100/snapshot",
            &[("snapname", "ram1"), ("vmstate", "1")],
        )
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let log = task_log(&api, r.data()).await;
    assert_eq!(log[0], "saving VM state and RAM using storage 'local-lvm'");
    assert!(
        log.contains(&"snapshotting 'drive-scsi0' (local-lvm:vm-100-disk-0)".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(&"  Logical volume \"snap_vm-100-disk-0_ram1\" created.".to_string()),
        "{log:?}"
    );
    let c = api
        .get("/nodes/proxmox/qemu/100/snapshot/ram1/config")
        .await;
    assert_eq!(c.data()["vmstate"], "local-lvm:vm-100-state-ram1");
    assert!(
        c.data()["runningmachine"]
            .as_str()
            .unwrap()
            .starts_with("pc-i440fx-")
    );
    assert!(c.data()["runningcpu"].is_string());
    let list = api.get("/nodes/proxmox/qemu/100/snapshot").await;
    assert_eq!(list.data()[0]["vmstate"], 1);
    let content = api.get("/nodes/proxmox/storage/local-lvm/content").await;
    let state = content
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["volid"] == "local-lvm:vm-100-state-ram1")
        .cloned()
        .expect("state volume listed");
    assert_eq!(state["size"], (2048u64 * 2 + 500) << 20);
    assert_eq!(state["vmid"], 100);
    // The current config carries none of the snapshot-only keys.
    let cur = api.get("/nodes/proxmox/qemu/100/config").await;
    assert!(cur.data().get("vmstate").is_none());
    let r = api
        .delete("/nodes/proxmox/qemu/100/snapshot/ram1", &[])
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let log = task_log(&api, r.data()).await;
    assert_eq!(
        log[..2],
        [
            "  Logical volume \"vm-100-state-ram1\" successfully removed.".to_string(),
            "  Logical volume \"snap_vm-100-disk-0_ram1\" successfully removed.".to_string()
        ]
    );
    let content = api.get("/nodes/proxmox/storage/local-lvm/content").await;
    assert!(!content.body.to_string().contains("state-ram1"));
    // A snapshot of a stopped VM never has RAM.
    let s = api.post("/nodes/proxmox/qemu/100/status/stop", &[]).await;
    assert_eq!(api.wait(s.data()).await, "OK");
    let r = api
        .post(
            "/nodes/proxmox/qemu/100/snapshot",
            &[("snapname", "cold"), ("vmstate", "1")],
        )
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let c = api
        .get("/nodes/proxmox/qemu/100/snapshot/cold/config")
        .await;
    assert!(c.data().get("vmstate").is_none());
}

/// pve-manager `/cluster/resources`: `lock` and `tags` come from the cluster's VM
/// list (the config) at once, while the RRD-based fields lag.
#[tokio::test]
async fn new_guests_show_lock_and_tags_in_resources_at_once() {
    let api = common::start(SimConfig {
        time_scale: 1.0,
        ..SimConfig::for_tests()
    })
    .await;
    let r = api
        .post(
            "/nodes/proxmox/qemu",
            &[("vmid", "100"), ("tags", "web"), ("scsi0", "local-lvm:1")],
        )
        .await;
    assert_eq!(r.status, 200);
    let res = api
        .call("GET", "/cluster/resources", &[("type", "vm")])
        .await;
    let e = &res.data()[0];
    assert_eq!(e["status"], "unknown");
    assert_eq!(e["lock"], "create");
    // Tags are set by the create worker, which takes 2 s here; poll until written.
    for _ in 0..100 {
        let res = api
            .call("GET", "/cluster/resources", &[("type", "vm")])
            .await;
        if res.data()[0]["tags"] == "web" {
            assert!(res.data()[0].get("lock").is_none() || res.data()[0]["lock"] == "create");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tags never showed up in /cluster/resources");
}

/// qemu-server `clone_vm`: `PVE::Firewall::clone_vmfw_conf` copies the VM firewall;
/// everything but snapshot keys and unused disks is copied (so `meta` stays), smbios1
/// gets a new uuid and vmgenid a new value only when set.
#[tokio::test]
async fn clones_copy_the_vm_firewall_and_meta() {
    let api = common::start_default().await;
    api.create_vm(9000, &[("name", "tpl")]).await;
    let base = "/nodes/proxmox/qemu/9000/firewall";
    assert_eq!(
        api.put(
            &format!("{base}/options"),
            &[("enable", "1"), ("policy_in", "DROP")]
        )
        .await
        .status,
        200
    );
    let r = api
        .post(
            &format!("{base}/rules"),
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("proto", "tcp"),
                ("dport", "22"),
                ("enable", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        api.post(
            &format!("{base}/aliases"),
            &[("name", "gw"), ("cidr", "192.168.1.1")]
        )
        .await
        .status,
        200
    );
    let src = api.get("/nodes/proxmox/qemu/9000/config").await;
    // A full clone of a normal VM.
    let r = api
        .post(
            "/nodes/proxmox/qemu/9000/clone",
            &[("newid", "101"), ("name", "c1")],
        )
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let c = api.get("/nodes/proxmox/qemu/101/config").await;
    assert_eq!(c.data()["meta"], src.data()["meta"]);
    assert_ne!(c.data()["smbios1"], src.data()["smbios1"]);
    assert_ne!(c.data()["vmgenid"], src.data()["vmgenid"]);
    let rules = api.get("/nodes/proxmox/qemu/101/firewall/rules").await;
    assert_eq!(rules.data()[0]["dport"], "22");
    let opts = api.get("/nodes/proxmox/qemu/101/firewall/options").await;
    assert_eq!(opts.data()["enable"], 1);
    assert_eq!(opts.data()["policy_in"], "DROP");
    let al = api.get("/nodes/proxmox/qemu/101/firewall/aliases").await;
    assert_eq!(al.data()[0]["name"], "gw");
    // A linked clone of a non-template names the volume and the drive (PVE 9 text).
    let r = api
        .post(
            "/nodes/proxmox/qemu/9000/clone",
            &[("newid", "102"), ("full", "0")],
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.message(),
        "Linked clone feature is not supported for 'local-lvm:vm-9000-disk-0' (scsi0)\n"
    );
}

/// qemu-server `create_disks`: `delete $disk->{format}; # no longer needed` after the
/// volume is allocated (EFI disks included).
#[tokio::test]
async fn allocated_disks_keep_no_format() {
    let api = common::start_default().await;
    api.create_vm(
        100,
        &[
            (
                "efidisk0",
                "local-lvm:1,format=raw,efitype=4m,pre-enrolled-keys=1",
            ),
            ("scsi1", "local-lvm:2,format=raw,discard=on"),
        ],
    )
    .await;
    let c = api.get("/nodes/proxmox/qemu/100/config").await;
    assert_eq!(
        c.data()["efidisk0"],
        "local-lvm:vm-100-disk-1,efitype=4m,pre-enrolled-keys=1,size=1M"
    );
    assert_eq!(
        c.data()["scsi1"],
        "local-lvm:vm-100-disk-2,discard=on,size=2G"
    );
}

/// pve-storage `API2::Storage::Config` create/update: new storages are activated
/// (a missing pool fails "create storage failed: …"), content types the plugin does
/// not support are dropped, fixed options cannot be given on update, and every entry
/// carries the digest of the whole storage.cfg.
#[tokio::test]
async fn storage_create_activates_and_update_refuses_fixed_options() {
    let api = common::start(SimConfig {
        scenario: Scenario::Hdds,
        ..SimConfig::for_tests()
    })
    .await;
    let r = api
        .post(
            "/storage",
            &[("storage", "tank"), ("type", "zfspool"), ("pool", "tank")],
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.message(),
        "create storage failed: could not activate storage 'tank', zfs error: cannot import 'tank': no such pool available\n"
    );
    let r = api
        .post(
            "/storage",
            &[
                ("storage", "thin2"),
                ("type", "lvmthin"),
                ("vgname", "pve"),
                ("thinpool", "nope"),
            ],
        )
        .await;
    assert_eq!(
        r.message(),
        "create storage failed: no such logical volume pve/nope\n"
    );
    assert_eq!(
        api.get("/storage/tank").await.status,
        500,
        "nothing was written"
    );
    let z = api
        .post(
            "/nodes/proxmox/disks/zfs",
            &[
                ("name", "tank"),
                ("raidlevel", "mirror"),
                ("devices", "/dev/sdb,/dev/sdc"),
                ("add_storage", "0"),
            ],
        )
        .await;
    assert_eq!(api.wait(z.data()).await, "OK");
    let r = api
        .post(
            "/storage",
            &[
                ("storage", "tank"),
                ("type", "zfspool"),
                ("pool", "tank"),
                ("content", "images,backup,rootdir"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let t = api.get("/storage/tank").await;
    assert_eq!(
        t.data()["content"],
        "images,rootdir",
        "zfspool has no 'backup'"
    );
    let r = api.put("/storage/tank", &[("pool", "tank")]).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.message(),
        "update storage failed: can't change value of fixed parameter 'pool'\n"
    );
    // One digest for the whole file.
    let all = api.get("/storage").await;
    let digests: Vec<&Value> = all
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["digest"])
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    let old = digests[0].as_str().unwrap().to_string();
    let r = api.put("/storage/tank", &[("sparse", "1")]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let local = api.get("/storage/local").await;
    assert_ne!(
        local.data()["digest"],
        old.as_str(),
        "a change to tank changes local's digest"
    );
    let r = api
        .put(
            "/storage/local",
            &[("digest", old.as_str()), ("disable", "0")],
        )
        .await;
    assert_eq!(r.status, 500);
    assert!(
        r.message().contains("detected modified configuration"),
        "{}",
        r.message()
    );
}

/// pve-manager `Certificates` info: the cluster CA (`pve-root-ca.pem`) and the node
/// certificate actually served (`pve-ssl.pem`), read from the certificates.
#[tokio::test]
async fn certificate_info_describes_the_served_certificate() {
    let api = common::start_default().await;
    let r = api.get("/nodes/proxmox/certificates/info").await;
    let list = r.data().as_array().unwrap();
    assert_eq!(list.len(), 2);
    let (ca, leaf) = (&list[0], &list[1]);
    assert_eq!(ca["filename"], "pve-root-ca.pem");
    assert_eq!(leaf["filename"], "pve-ssl.pem");
    assert_eq!(leaf["fingerprint"], api.sim.fingerprint().as_str());
    assert_eq!(leaf["issuer"], ca["subject"]);
    assert_eq!(ca["issuer"], ca["subject"], "the CA is self-signed");
    assert!(
        ca["subject"]
            .as_str()
            .unwrap()
            .starts_with("/CN=Proxmox Virtual Environment/OU=")
    );
    assert_eq!(
        leaf["subject"],
        "/OU=PVE Cluster Node/O=Proxmox Virtual Environment/CN=proxmox.lan"
    );
    assert_eq!(ca["pem"], api.sim.ca_pem().as_str());
    assert!(
        leaf["pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let san: Vec<&str> = leaf["san"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for want in [
        "localhost",
        "proxmox",
        "proxmox.lan",
        "127.0.0.1",
        "192.168.1.10",
    ] {
        assert!(san.contains(&want), "{san:?}");
    }
    let days = (leaf["notafter"].as_i64().unwrap() - leaf["notbefore"].as_i64().unwrap()) / 86400;
    assert_eq!(days, 730, "node certificates are valid for two years");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(leaf["notbefore"].as_i64().unwrap() <= now);
    assert_eq!(leaf["public-key-bits"], 256);
}

/// pve-guest-common `AbstractConfig::snapshot_create`: the flock is held only while
/// `lock: snapshot` is set; a stop during the snapshot fails at once with
/// "VM is locked (snapshot)" instead of waiting for the snapshot to end.
#[tokio::test]
async fn stop_during_a_snapshot_fails_on_the_config_lock() {
    let api = common::start(SimConfig {
        time_scale: 0.5,
        ..SimConfig::for_tests()
    })
    .await;
    api.create_vm(100, &[]).await;
    let s = api.post("/nodes/proxmox/qemu/100/status/start", &[]).await;
    assert_eq!(api.wait(s.data()).await, "OK");
    let snap = api
        .post("/nodes/proxmox/qemu/100/snapshot", &[("snapname", "s1")])
        .await;
    let c = api.get("/nodes/proxmox/qemu/100/config").await;
    assert_eq!(c.data()["lock"], "snapshot");
    let t0 = std::time::Instant::now();
    let stop = api.post("/nodes/proxmox/qemu/100/status/stop", &[]).await;
    assert_eq!(api.wait(stop.data()).await, "VM is locked (snapshot)");
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "the stop did not wait"
    );
    assert_eq!(api.wait(snap.data()).await, "OK");
    let c = api.get("/nodes/proxmox/qemu/100/status/current").await;
    assert_eq!(c.data()["status"], "running");
    // A second snapshot while one runs: its prepare step finds the lock.
    let a = api
        .post("/nodes/proxmox/qemu/100/snapshot", &[("snapname", "s2")])
        .await;
    let b = api
        .post("/nodes/proxmox/qemu/100/snapshot", &[("snapname", "s3")])
        .await;
    assert_eq!(api.wait(b.data()).await, "VM is locked (snapshot)");
    assert_eq!(api.wait(a.data()).await, "OK");
}

/// Smaller ones: `verify_rule` stores `ipversion`; vzdump backups are listed with
/// `subtype` and their notes; the destroy task logs lvremove's lines.
#[tokio::test]
async fn rules_ipversion_backup_subtype_notes_and_destroy_log() {
    let api = common::start_default().await;
    let r = api
        .post(
            "/cluster/firewall/rules",
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("source", "10.0.0.0/8"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    let r = api
        .post(
            "/cluster/firewall/rules",
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("proto", "tcp"),
                ("dport", "22"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    let rules = api.get("/cluster/firewall/rules").await;
    assert!(
        rules.data()[0].get("ipversion").is_none(),
        "no address, no family"
    );
    assert_eq!(rules.data()[1]["ipversion"], 4);
    api.create_vm(100, &[("name", "web1")]).await;
    let r = api
        .post(
            "/nodes/proxmox/vzdump",
            &[
                ("vmid", "100"),
                ("storage", "local"),
                ("notes-template", "{{guestname}} on {{node}}"),
            ],
        )
        .await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let b = api
        .call(
            "GET",
            "/nodes/proxmox/storage/local/content",
            &[("content", "backup")],
        )
        .await;
    let e = &b.data()[0];
    assert_eq!(e["subtype"], "qemu");
    assert_eq!(e["notes"], "web1 on proxmox");
    assert_eq!(e["vmid"], 100);
    let r = api.delete("/nodes/proxmox/qemu/100", &[]).await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let log = task_log(&api, r.data()).await;
    assert_eq!(
        log[0],
        "  Logical volume \"vm-100-disk-0\" successfully removed."
    );
}
