//! Phase 1 of issue 12 on the simulator: directory mappings, virtiofs shares that appear
//! on the next start, a guest folder copied into a ZFS dataset through the guest agent
//! (seen the same over SSH), the copy fault, and the `hdds-used` scenario.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Api;
use common::ssh::{have_ssh, ssh};
use labwright_sim::{Faults, Scenario, SimConfig};
use serde_json::Value;

fn cfg(scenario: Scenario) -> SimConfig {
    SimConfig {
        scenario,
        time_scale: 0.02,
        ..SimConfig::for_tests()
    }
}

/// Runs a command through the guest agent and waits for it: (exit code, out, err).
async fn exec(api: &Api, vmid: u32, argv: &[&str]) -> (i64, String, String) {
    exec_in(api, vmid, argv, None).await
}

async fn exec_in(
    api: &Api,
    vmid: u32,
    argv: &[&str],
    input: Option<&str>,
) -> (i64, String, String) {
    let mut form: Vec<(&str, &str)> = argv.iter().map(|a| ("command", *a)).collect();
    if let Some(i) = input {
        form.push(("input-data", i));
    }
    let r = api
        .post(&format!("/nodes/proxmox/qemu/{vmid}/agent/exec"), &form)
        .await;
    assert_eq!(r.status, 200, "{argv:?}: {:?}", r.body);
    let pid = r.data()["pid"].as_i64().unwrap().to_string();
    for _ in 0..400 {
        let s = api
            .call(
                "GET",
                &format!("/nodes/proxmox/qemu/{vmid}/agent/exec-status"),
                &[("pid", &pid)],
            )
            .await;
        if s.data()["exited"] == 1 {
            let d = s.data();
            let text = |k: &str| d[k].as_str().unwrap_or("").to_string();
            return (
                d["exitcode"].as_i64().unwrap(),
                text("out-data"),
                text("err-data"),
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("exec did not finish");
}

/// `HEX  DIR/rel` lines → rel → hex (what labwright does with a manifest).
fn manifest(out: &str, dir: &str) -> BTreeMap<String, String> {
    out.lines()
        .map(|l| {
            let (hex, path) = l.split_once("  ").unwrap();
            let rel = path
                .strip_prefix(&format!("{}/", dir.trim_end_matches('/')))
                .unwrap();
            (rel.to_string(), hex.to_string())
        })
        .collect()
}

async fn pool_and_dataset(api: &Api) {
    let r = api
        .post(
            "/nodes/proxmox/disks/zfs",
            &[
                ("name", "tank"),
                ("raidlevel", "mirror"),
                ("devices", "/dev/sdb,/dev/sdc"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(api.wait(r.data()).await, "OK");
    let r = ssh(&api.sim, "zfs create -o compression=lz4 tank/media", None).await;
    assert_eq!(r.code, 0, "{r:?}");
}

/// A naas guest: its seed's runcmd makes /opt/naas/appdata (install -d), which the
/// simulated apps fill.
async fn naas_guest(api: &Api, vmid: u32) {
    let mut iso = vec![0u8; 32768];
    iso.extend_from_slice(b"CD001 cidata");
    iso.extend(vec![0u8; 2048]);
    iso.extend_from_slice(
        b"#cloud-config\nhostname: naas\nruncmd:\n  - [install, -d, -m, '0755', /opt/naas/appdata, /opt/naas/stacks]\n",
    );
    iso.extend(vec![0u8; 4096]);
    let form = reqwest::multipart::Form::new().text("content", "iso").part(
        "filename",
        reqwest::multipart::Part::bytes(iso).file_name("naas-seed.iso"),
    );
    let resp = api
        .http
        .post(format!("{}/nodes/proxmox/storage/local/upload", api.base))
        .header("Authorization", &api.auth)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(api.wait(&v["data"]).await, "OK");
    api.create_vm(
        vmid,
        &[
            ("agent", "1"),
            ("ide2", "local:iso/naas-seed.iso,media=cdrom"),
        ],
    )
    .await;
    power(api, vmid, "start").await;
}

async fn power(api: &Api, vmid: u32, what: &str) {
    let s = api
        .post(&format!("/nodes/proxmox/qemu/{vmid}/status/{what}"), &[])
        .await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    assert_eq!(api.wait(s.data()).await, "OK");
    if what == "start" {
        // The agent answers a moment after boot.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn mapping(api: &Api) {
    let r = api
        .post(
            "/cluster/mapping/dir",
            &[
                ("id", "tank-media"),
                ("map", "node=proxmox,path=/tank/media"),
                ("description", "tank/media for guests"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_folder_copied_into_a_dataset_looks_the_same_on_both_sides() {
    if !have_ssh() {
        return;
    }
    let api = common::start(cfg(Scenario::Hdds)).await;
    pool_and_dataset(&api).await;
    mapping(&api).await;
    naas_guest(&api, 120).await;

    // The sample data is there, deterministic, with a name that has spaces.
    let (c, sizes, _) = exec(
        &api,
        120,
        &[
            "find",
            "/opt/naas/appdata",
            "-type",
            "f",
            "-printf",
            "%s\\t%P\\n",
        ],
    )
    .await;
    assert_eq!(c, 0);
    let rels: Vec<&str> = sizes
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    for want in [
        "plex/config/Preferences.xml",
        "plex/media/tv/Show Name/S01E01.mkv",
        "jarvis/data.db",
    ] {
        assert!(rels.contains(&want), "{want} in {rels:?}");
    }
    assert!(
        rels.iter()
            .filter(|r| r.starts_with("plex/media/movies/"))
            .count()
            >= 2
    );
    for l in sizes.lines() {
        let bytes: usize = l.split('\t').next().unwrap().parse().unwrap();
        assert!(bytes > 1000, "{l}");
    }

    // virtiofs on a running VM waits for the next start.
    let r = api
        .put(
            "/nodes/proxmox/qemu/120/config",
            &[("virtiofs0", "tank-media,expose-acl=1")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let p = api.get("/nodes/proxmox/qemu/120/pending").await;
    let entry = p
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "virtiofs0")
        .cloned()
        .unwrap();
    assert_eq!(entry["pending"], "tank-media,expose-acl=1", "{entry:?}");
    assert!(entry.get("value").is_none(), "{entry:?}");
    assert_eq!(
        exec(&api, 120, &["mkdir", "-p", "/mnt/lw/tank-media"])
            .await
            .0,
        0
    );
    let (c, _, err) = exec(
        &api,
        120,
        &[
            "mount",
            "-t",
            "virtiofs",
            "tank-media",
            "/mnt/lw/tank-media",
        ],
    )
    .await;
    assert_eq!(c, 32);
    assert_eq!(
        err,
        "mount: /mnt/lw/tank-media: wrong fs type, bad option, bad superblock on tank-media, missing codepage or helper program, or other error.\n"
    );
    power(&api, 120, "stop").await;
    power(&api, 120, "start").await;
    let cur = api.get("/nodes/proxmox/qemu/120/config").await;
    assert_eq!(cur.data()["virtiofs0"], "tank-media,expose-acl=1");
    let (c, _, err) = exec(
        &api,
        120,
        &[
            "mount",
            "-t",
            "virtiofs",
            "tank-media",
            "/mnt/lw/tank-media",
        ],
    )
    .await;
    assert_eq!((c, err.as_str()), (0, ""));
    let (_, mounts, _) = exec(&api, 120, &["findmnt", "-rn", "-o", "TARGET,SOURCE,FSTYPE"]).await;
    assert!(mounts.starts_with("/ /dev/sda1 ext4\n"), "{mounts}");
    assert!(
        mounts.contains("/mnt/lw/tank-media tank-media virtiofs\n"),
        "{mounts}"
    );

    // Something on the dataset that is not in the source goes; an excluded path stays.
    let r = ssh(
        &api.sim,
        "install -D -m 0644 /dev/stdin /tank/media/stray.txt",
        Some("old\n"),
    )
    .await;
    assert_eq!(r.code, 0);
    let r = ssh(
        &api.sim,
        "install -D -m 0644 /dev/stdin /tank/media/jarvis/keep.txt",
        Some("keep\n"),
    )
    .await;
    assert_eq!(r.code, 0);
    let (c, _, err) = exec(
        &api,
        120,
        &[
            "rsync",
            "-aHAX",
            "--delete",
            "--exclude=/jarvis/",
            "/opt/naas/appdata/",
            "/mnt/lw/tank-media/",
        ],
    )
    .await;
    assert_eq!((c, err.as_str()), (0, ""));

    let (_, src, _) = exec(
        &api,
        120,
        &[
            "find",
            "/opt/naas/appdata",
            "-type",
            "f",
            "-exec",
            "sha256sum",
            "{}",
            "+",
        ],
    )
    .await;
    let (_, dst, _) = exec(
        &api,
        120,
        &[
            "find",
            "/mnt/lw/tank-media",
            "-type",
            "f",
            "-exec",
            "sha256sum",
            "{}",
            "+",
        ],
    )
    .await;
    let host = ssh(
        &api.sim,
        "find /tank/media -type f -exec sha256sum {} +",
        None,
    )
    .await;
    assert_eq!(host.code, 0);
    let mut src = manifest(&src, "/opt/naas/appdata");
    let dst = manifest(&dst, "/mnt/lw/tank-media");
    let host = manifest(&host.out, "/tank/media");
    assert_eq!(
        dst, host,
        "the guest's view of the share is the node's dataset"
    );
    src.retain(|k, _| !k.starts_with("jarvis/"));
    let mut dst_copied = dst.clone();
    assert_eq!(
        dst_copied.remove("jarvis/keep.txt").map(|h| h.len()),
        Some(64)
    );
    assert_eq!(src, dst_copied, "copied exactly, stray file deleted");
    assert!(!dst.contains_key("stray.txt"));
    assert!(!dst.contains_key("jarvis/data.db"), "excluded");
    // Sizes agree too.
    let (_, s1, _) = exec(
        &api,
        120,
        &[
            "find",
            "/opt/naas/appdata/plex",
            "-type",
            "f",
            "-printf",
            "%s\\t%P\\n",
        ],
    )
    .await;
    let (_, s2, _) = exec(
        &api,
        120,
        &[
            "find",
            "/mnt/lw/tank-media/plex",
            "-type",
            "f",
            "-printf",
            "%s\\t%P\\n",
        ],
    )
    .await;
    assert_eq!(s1, s2);

    // A file written in the guest shows on the node, and the other way round.
    let (c, _, _) = exec_in(
        &api,
        120,
        &["tee", "/mnt/lw/tank-media/from-guest.txt"],
        Some("hello\n"),
    )
    .await;
    assert_eq!(c, 0);
    let r = ssh(&api.sim, "cat /tank/media/from-guest.txt", None).await;
    assert_eq!(r.out, "hello\n");
    let r = ssh(
        &api.sim,
        "install -D -m 0644 /dev/stdin '/tank/media/plex/new file.txt'",
        Some("from host\n"),
    )
    .await;
    assert_eq!(r.code, 0);
    let (_, out, _) = exec(&api, 120, &["cat", "/mnt/lw/tank-media/plex/new file.txt"]).await;
    assert_eq!(out, "from host\n");

    // The switch: unmount, set the source aside, mount the share in its place.
    assert_eq!(
        exec(&api, 120, &["umount", "/mnt/lw/tank-media"]).await.0,
        0
    );
    let (c, _, err) = exec(&api, 120, &["umount", "/mnt/lw/tank-media"]).await;
    assert_eq!(
        (c, err.as_str()),
        (32, "umount: /mnt/lw/tank-media: not mounted.\n")
    );
    assert_eq!(
        exec(
            &api,
            120,
            &["systemctl", "stop", "docker.socket", "docker.service"]
        )
        .await
        .0,
        0
    );
    assert_eq!(
        exec(
            &api,
            120,
            &["mv", "/opt/naas/appdata", "/opt/naas/appdata.lw-migrated"]
        )
        .await
        .0,
        0
    );
    assert_eq!(
        exec(&api, 120, &["mkdir", "-p", "/opt/naas/appdata"])
            .await
            .0,
        0
    );
    assert_eq!(
        exec(
            &api,
            120,
            &["mount", "-t", "virtiofs", "tank-media", "/opt/naas/appdata"]
        )
        .await
        .0,
        0
    );
    let (_, mounts, _) = exec(&api, 120, &["findmnt", "-rn", "-o", "TARGET,SOURCE,FSTYPE"]).await;
    assert!(
        mounts.contains("/opt/naas/appdata tank-media virtiofs\n"),
        "{mounts}"
    );
    let (_, now, _) = exec(
        &api,
        120,
        &[
            "find",
            "/opt/naas/appdata",
            "-type",
            "f",
            "-exec",
            "sha256sum",
            "{}",
            "+",
        ],
    )
    .await;
    assert_eq!(
        manifest(&now, "/opt/naas/appdata").get("plex/config/Preferences.xml"),
        src.get("plex/config/Preferences.xml")
    );
    let (_, kept, _) = exec(
        &api,
        120,
        &[
            "find",
            "/opt/naas/appdata.lw-migrated",
            "-type",
            "f",
            "-exec",
            "sha256sum",
            "{}",
            "+",
        ],
    )
    .await;
    assert_eq!(
        manifest(&kept, "/opt/naas/appdata.lw-migrated").len(),
        src.len() + 1,
        "the source is kept whole (jarvis included)"
    );
    assert_eq!(
        exec(&api, 120, &["rm", "-rf", "/opt/naas/appdata.lw-migrated"])
            .await
            .0,
        0
    );
    assert_eq!(
        exec(&api, 120, &["test", "-e", "/opt/naas/appdata.lw-migrated"])
            .await
            .0,
        1
    );
    assert_eq!(
        exec(&api, 120, &["systemctl", "start", "docker.service"])
            .await
            .0,
        0
    );

    // With an fstab line, the share is back after a reboot; a path with a space is
    // escaped by findmnt.
    let fstab = "# labwright begin\ntank-media /opt/naas/appdata virtiofs defaults,nofail 0 0\n# labwright end\n";
    let r = api
        .post(
            "/nodes/proxmox/qemu/120/agent/file-write",
            &[("file", "/etc/fstab"), ("content", fstab)],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    power(&api, 120, "stop").await;
    power(&api, 120, "start").await;
    let (_, mounts, _) = exec(&api, 120, &["findmnt", "-rn", "-o", "TARGET,SOURCE,FSTYPE"]).await;
    assert!(
        mounts.contains("/opt/naas/appdata tank-media virtiofs\n"),
        "{mounts}"
    );
    assert_eq!(
        exec(&api, 120, &["mkdir", "-p", "/mnt/with space"]).await.0,
        0
    );
    assert_eq!(
        exec(
            &api,
            120,
            &["mount", "-t", "virtiofs", "tank-media", "/mnt/with space"]
        )
        .await
        .0,
        0
    );
    let (_, mounts, _) = exec(&api, 120, &["findmnt", "-rn", "-o", "TARGET,SOURCE,FSTYPE"]).await;
    assert!(
        mounts.contains("/mnt/with\\x20space tank-media virtiofs\n"),
        "{mounts}"
    );
    api.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_copy_leaves_part_and_the_source_intact_then_resumes() {
    if !have_ssh() {
        return;
    }
    let api = common::start(cfg(Scenario::Hdds)).await;
    pool_and_dataset(&api).await;
    mapping(&api).await;
    naas_guest(&api, 121).await;
    let r = api
        .put(
            "/nodes/proxmox/qemu/121/config",
            &[("virtiofs1", "dirid=tank-media")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    power(&api, 121, "reboot").await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        exec(&api, 121, &["mkdir", "-p", "/mnt/lw/tank-media"])
            .await
            .0,
        0
    );
    let (c, _, e) = exec(
        &api,
        121,
        &[
            "mount",
            "-t",
            "virtiofs",
            "tank-media",
            "/mnt/lw/tank-media",
        ],
    )
    .await;
    assert_eq!(c, 0, "reboot applies pending virtiofs: {e}");
    let sum = [
        "find",
        "/opt/naas/appdata",
        "-type",
        "f",
        "-exec",
        "sha256sum",
        "{}",
        "+",
    ];
    let before = manifest(&exec(&api, 121, &sum).await.1, "/opt/naas/appdata");
    assert!(before.len() >= 6);

    api.sim.set_faults(Faults {
        copy_failure_rate: 1.0,
        ..Faults::default()
    });
    let rsync = [
        "rsync",
        "-aHAX",
        "--delete",
        "/opt/naas/appdata/",
        "/mnt/lw/tank-media/",
    ];
    let (c, _, err) = exec(&api, 121, &rsync).await;
    assert_eq!(c, 12);
    assert!(
        err.ends_with("rsync error: error in rsync protocol data stream (code 12) at io.c(231) [sender=3.2.7]\n"),
        "{err}"
    );
    let host = ssh(
        &api.sim,
        "find /tank/media -type f -exec sha256sum {} +",
        None,
    )
    .await;
    let partial = manifest(&host.out, "/tank/media");
    assert!(
        !partial.is_empty() && partial.len() < before.len(),
        "{} of {}",
        partial.len(),
        before.len()
    );
    for (k, v) in &partial {
        assert_eq!(before.get(k), Some(v), "what was copied is complete");
    }
    assert_eq!(
        manifest(&exec(&api, 121, &sum).await.1, "/opt/naas/appdata"),
        before,
        "source intact"
    );

    api.sim.set_faults(Faults::default());
    let (c, _, _) = exec(&api, 121, &rsync).await;
    assert_eq!(c, 0);
    let host = ssh(
        &api.sim,
        "find /tank/media -type f -exec sha256sum {} +",
        None,
    )
    .await;
    assert_eq!(
        manifest(&host.out, "/tank/media"),
        before,
        "the next run completes the copy"
    );
    api.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapping_api_errors_like_pve() {
    if !have_ssh() {
        return;
    }
    let api = common::start(cfg(Scenario::Hdds)).await;
    pool_and_dataset(&api).await;
    let r = api
        .post(
            "/cluster/mapping/dir",
            &[
                ("id", "tank-media"),
                ("map", "node=proxmox,path=/tank/nothing"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.message().as_str()),
        (500, "Path /tank/nothing does not exist\n")
    );
    let r = api
        .post(
            "/cluster/mapping/dir",
            &[
                ("id", "tank-media"),
                ("map", "node=proxmox,path=tank/media"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(r.body["errors"].to_string().contains("map"), "{:?}", r.body);
    let r = api
        .post(
            "/cluster/mapping/dir",
            &[
                ("id", "tank-media"),
                ("map", "node=proxmox,path=/tank/media"),
                ("map", "node=proxmox,path=/tank"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.message().as_str()),
        (500, "Node 'proxmox' is specified 2 times.\n")
    );
    mapping(&api).await;
    let r = api
        .post(
            "/cluster/mapping/dir",
            &[
                ("id", "tank-media"),
                ("map", "node=proxmox,path=/tank/media"),
            ],
        )
        .await;
    assert_eq!(
        r.message(),
        "create directory mapping failed: dir ID 'tank-media' already defined\n"
    );
    let r = api.get("/cluster/mapping/dir").await;
    let list = r.data().as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], "tank-media");
    assert_eq!(
        list[0]["map"],
        serde_json::json!(["node=proxmox,path=/tank/media"])
    );
    assert_eq!(list[0]["description"], "tank/media for guests");
    let r = api.get("/cluster/mapping/dir/nope").await;
    assert_eq!(r.message(), "mapping 'nope' not found\n");
    let r = api
        .put("/cluster/mapping/dir/nope", &[("description", "x")])
        .await;
    assert_eq!(
        r.message(),
        "update directory mapping failed: dir ID 'nope' does not exist\n"
    );
    let r = api
        .put(
            "/cluster/mapping/dir/tank-media",
            &[
                ("map", "node=proxmox,path=/tank"),
                ("delete", "description"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.get("/cluster/mapping/dir/tank-media").await;
    assert_eq!(
        r.data()["map"],
        serde_json::json!(["node=proxmox,path=/tank"])
    );
    assert!(r.data().get("description").is_none());
    // A mapping for another node only.
    let r = api
        .post(
            "/cluster/mapping/dir",
            &[("id", "elsewhere"), ("map", "node=pve9,path=/srv/x")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // virtiofs needs a mapping with an entry for the VM's node.
    api.create_vm(130, &[]).await;
    let r = api
        .put("/nodes/proxmox/qemu/130/config", &[("virtiofs0", "nope")])
        .await;
    assert_eq!(
        (r.status, r.err("virtiofs0").as_str()),
        (400, "Directory ID nope does not exist.")
    );
    let r = api
        .put(
            "/nodes/proxmox/qemu/130/config",
            &[("virtiofs0", "elsewhere")],
        )
        .await;
    assert_eq!(r.err("virtiofs0"), "No directory mapping for node proxmox.");
    let r = api
        .put(
            "/nodes/proxmox/qemu/130/config",
            &[("virtiofs0", "tank-media")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Stopped VM: applied at once. A share whose folder vanished stops the start.
    let r = api.get("/nodes/proxmox/qemu/130/config").await;
    assert_eq!(r.data()["virtiofs0"], "tank-media");
    let r = api
        .put(
            "/cluster/mapping/dir/tank-media",
            &[("map", "node=proxmox,path=/tank/media")],
        )
        .await;
    assert_eq!(r.status, 200);
    let r = ssh(&api.sim, "zfs set mountpoint=/srv/media tank/media", None).await;
    assert_eq!(r.code, 0, "{r:?}");
    let s = api.post("/nodes/proxmox/qemu/130/status/start", &[]).await;
    let status = api.wait(s.data()).await;
    assert_eq!(
        status,
        "directory mapping invalid: Path /tank/media does not exist"
    );
    assert_eq!(
        api.delete("/cluster/mapping/dir/tank-media", &[])
            .await
            .status,
        200
    );
    assert_eq!(
        api.get("/cluster/mapping/dir")
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    api.sim.shutdown().await;
}

#[tokio::test]
async fn hdds_used_refuses_the_partitioned_disk() {
    let api = common::start(cfg("hdds-used".parse().unwrap())).await;
    let r = api.get("/nodes/proxmox/disks/list").await;
    let disks = r.data().as_array().unwrap();
    let sdc = disks.iter().find(|d| d["devpath"] == "/dev/sdc").unwrap();
    assert_eq!(sdc["used"], "partitions");
    assert_eq!(
        sdc["by_id_link"],
        "/dev/disk/by-id/ata-WDC_WD40EFPX-68C6CN0_WD-WX12A0000002"
    );
    let sdb = disks.iter().find(|d| d["devpath"] == "/dev/sdb").unwrap();
    assert!(sdb.get("used").is_none());
    let unused = api
        .call("GET", "/nodes/proxmox/disks/list", &[("type", "unused")])
        .await;
    assert!(
        unused
            .data()
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["devpath"] != "/dev/sdc")
    );
    for devices in [
        "/dev/sdb,/dev/sdc",
        "/dev/disk/by-id/ata-WDC_WD40EFPX-68C6CN0_WD-WX12A0000001,/dev/disk/by-id/ata-WDC_WD40EFPX-68C6CN0_WD-WX12A0000002",
    ] {
        let r = api
            .post(
                "/nodes/proxmox/disks/zfs",
                &[
                    ("name", "tank"),
                    ("raidlevel", "mirror"),
                    ("devices", devices),
                ],
            )
            .await;
        assert_eq!(r.status, 500, "{:?}", r.body);
        let dev = devices.split(',').nth(1).unwrap();
        assert_eq!(r.message(), format!("device '{dev}' is already in use\n"));
    }
    let r = api
        .post(
            "/nodes/proxmox/disks/zfs",
            &[
                ("name", "tank"),
                ("raidlevel", "single"),
                ("devices", "/dev/disk/by-id/nothing"),
            ],
        )
        .await;
    assert_eq!(
        r.message(),
        "unable to get device info for '/dev/disk/by-id/nothing'\n"
    );
    let e = "nope".parse::<Scenario>().unwrap_err();
    assert!(e.contains("hdds-used"), "{e}");
}
