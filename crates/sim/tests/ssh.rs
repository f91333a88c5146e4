//! The simulated node's SSH endpoint, driven with the real OpenSSH client: host key
//! verification, public-key login, exec with stdin, exit codes, and the host commands
//! of docs/host-commands.md against the state the API serves.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::process::{Command, Stdio};

use common::ssh::{have_ssh, ssh, ssh_with};
use labwright_sim::{Faults, Scenario, SimConfig};

fn hdds() -> SimConfig {
    SimConfig {
        scenario: Scenario::Hdds,
        ..SimConfig::for_tests()
    }
}

/// A mirror `tank` over the two HDDs, through the API.
async fn make_pool(api: &common::Api) {
    let node = api.sim.node();
    let r = api
        .post(
            &format!("/nodes/{node}/disks/zfs"),
            &[
                ("name", "tank"),
                ("raidlevel", "mirror"),
                (
                    "devices",
                    "/dev/disk/by-id/ata-WDC_WD40EFPX-68C6CN0_WD-WX12A0000001,/dev/sdc",
                ),
                ("compression", "lz4"),
                ("ashift", "12"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(api.wait(r.data()).await, "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_known_hosts_describe_the_endpoint() {
    let api = common::start(hdds()).await;
    let sim = &api.sim;
    let c = sim.credentials();
    assert!(c.ssh_port > 0 && c.ssh_port != sim.addr().port());
    assert_eq!(c.ssh_user, "root");
    assert!(
        c.ssh_host_key.starts_with("ssh-ed25519 AAAA"),
        "{}",
        c.ssh_host_key
    );
    let key_text = std::fs::read_to_string(&c.ssh_client_key).unwrap();
    assert!(key_text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&c.ssh_client_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let kh = std::fs::read_to_string(&c.ssh_known_hosts).unwrap();
    assert_eq!(
        kh.trim(),
        format!("[127.0.0.1]:{} {}", c.ssh_port, c.ssh_host_key)
    );
    let key_dir = std::path::PathBuf::from(&c.ssh_client_key);
    sim.shutdown().await;
    assert!(
        !key_dir.exists(),
        "the temporary key folder is removed on shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zfs_over_ssh_matches_the_api() {
    if !have_ssh() {
        return;
    }
    let api = common::start(hdds()).await;
    let sim = &api.sim;
    // No pool yet: empty list, exit 0.
    let r = ssh(
        sim,
        "zfs list -H -p -t filesystem -o name,mountpoint,mounted",
        None,
    )
    .await;
    assert_eq!((r.code, r.out.as_str()), (0, ""), "{r:?}");
    make_pool(&api).await;
    let r = ssh(
        sim,
        "zfs list -H -p -t filesystem -o name,mountpoint,mounted",
        None,
    )
    .await;
    assert_eq!((r.code, r.out.as_str()), (0, "tank\t/tank\tyes\n"), "{r:?}");

    // Parents first; a missing parent and a duplicate are refused like ZFS does.
    let r = ssh(
        sim,
        "zfs create -o compression=zstd -o quota=10G tank/media/movies",
        None,
    )
    .await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err,
        "cannot create 'tank/media/movies': parent does not exist\n"
    );
    let r = ssh(
        sim,
        "zfs create -o compression=zstd -o quota=10G -o recordsize=1M tank/media",
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = ssh(sim, "zfs create tank/media", None).await;
    assert_eq!(
        (r.code, r.err.as_str()),
        (1, "cannot create 'tank/media': dataset already exists\n")
    );
    let r = ssh(sim, "zfs create -o compresion=lz4 tank/x", None).await;
    assert_eq!(
        (r.code, r.err.as_str()),
        (1, "cannot create 'tank/x': invalid property 'compresion'\n")
    );
    let r = ssh(sim, "zfs create -o compression=fast tank/x", None).await;
    assert_eq!(r.code, 1);
    assert!(
        r.err.starts_with(
            "cannot create 'tank/x': 'compression' must be one of 'on | off | lzjb | gzip"
        ),
        "{}",
        r.err
    );
    let r = ssh(sim, "zfs create 'tank/bad*name'", None).await;
    assert_eq!(
        r.err,
        "cannot create 'tank/bad*name': invalid character '*' in name\n"
    );

    let r = ssh(
        sim,
        "zfs get -H -p -r -s local -o name,property,value all tank",
        None,
    )
    .await;
    assert_eq!(r.code, 0);
    assert_eq!(
        r.out,
        "tank\tcompression\tlz4\ntank/media\tquota\t10737418240\ntank/media\trecordsize\t1048576\ntank/media\tcompression\tzstd\n"
    );
    let r = ssh(
        sim,
        "zfs get -H -p -r -s local -o name,property,value all nopool",
        None,
    )
    .await;
    assert_eq!(
        (r.code, r.err.as_str()),
        (1, "cannot open 'nopool': dataset does not exist\n")
    );
    let r = ssh(sim, "zfs set compression=lz4 tank/nothere", None).await;
    assert_eq!(
        (r.code, r.err.as_str()),
        (1, "cannot open 'tank/nothere': dataset does not exist\n")
    );
    let r = ssh(
        sim,
        "zfs set compression=lz4 tank/media && zfs get -H -o value compression tank/media",
        None,
    )
    .await;
    assert_eq!((r.code, r.out.as_str()), (0, "lz4\n"));
    // User properties (labwright records a migration's progress in one).
    let r = ssh(
        sim,
        "zfs set labwright:migration=media=copied tank/media && zfs get -H -p -s local -o property,value all tank/media",
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.ends_with("labwright:migration\tmedia=copied\n"),
        "{}",
        r.out
    );
    let r = ssh(sim, "zfs get -H -o value labwright:migration tank", None).await;
    assert_eq!((r.code, r.out.as_str()), (0, "-\n"));
    let r = ssh(sim, "zfs set Bad:Name=1 tank/media", None).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("invalid property 'Bad:Name'"), "{}", r.err);

    // The API sees the dataset: a zfspool storage on it works and is active.
    let node = sim.node();
    let r = api
        .post(
            "/storage",
            &[
                ("storage", "media"),
                ("type", "zfspool"),
                ("pool", "tank/media"),
                ("content", "rootdir,images,iso"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.get("/storage/media").await;
    assert_eq!(
        r.data()["content"],
        "rootdir,images",
        "content types the type does not support are dropped"
    );
    let r = api
        .get(&format!("/nodes/{node}/storage/media/status"))
        .await;
    assert_eq!(r.data()["active"], 1, "{:?}", r.body);
    // A dataset that does not exist: PVE's activation imports the pool and mounts all
    // (which succeeds), so the storage is added, but its status is inactive.
    let r = api
        .post(
            "/storage",
            &[
                ("storage", "ghost"),
                ("type", "zfspool"),
                ("pool", "tank/ghost"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api
        .get(&format!("/nodes/{node}/storage/ghost/status"))
        .await;
    assert_eq!(r.data()["active"], 0, "{:?}", r.body);
    let r = api
        .post(
            "/storage",
            &[
                ("storage", "nopool"),
                ("type", "zfspool"),
                ("pool", "vault/x"),
            ],
        )
        .await;
    assert_eq!(r.status, 500);
    assert!(
        r.message().contains("could not activate storage 'nopool'"),
        "{}",
        r.message()
    );
    // Fixed options cannot be changed.
    let r = api.put("/storage/media", &[("pool", "tank/other")]).await;
    assert_eq!(r.status, 500);
    assert!(
        r.message()
            .contains("can't change value of fixed parameter 'pool'"),
        "{}",
        r.message()
    );

    // Pool health, with by-id device names.
    let r = ssh(sim, "zpool list -H -o name,health", None).await;
    assert_eq!(r.out, "tank\tONLINE\n");
    let r = ssh(sim, "zpool status tank", None).await;
    assert!(
        r.out.contains("  pool: tank\n state: ONLINE\n"),
        "{}",
        r.out
    );
    assert!(r.out.contains("mirror-0"), "{}", r.out);
    assert!(
        r.out.contains("ata-WDC_WD40EFPX-68C6CN0_WD-WX12A0000001"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("ata-WDC_WD40EFPX-68C6CN0_WD-WX12A0000002"),
        "{}",
        r.out
    );
    assert!(!r.out.contains("sdb"), "{}", r.out);
    api.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_storage_on_a_mountpoint_is_active_only_while_mounted() {
    if !have_ssh() {
        return;
    }
    let api = common::start(hdds()).await;
    let sim = &api.sim;
    let node = sim.node();
    make_pool(&api).await;
    // Not a mount point (yet): creation is refused with PVE's text.
    let r = api
        .post(
            "/storage",
            &[
                ("storage", "backups"),
                ("type", "dir"),
                ("path", "/tank/backups"),
                ("is_mountpoint", "yes"),
                ("content", "backup"),
            ],
        )
        .await;
    assert_eq!(r.status, 500);
    assert!(
        r.message().contains("unable to activate storage 'backups' - directory is expected to be a mount point but is not mounted: '/tank/backups'"),
        "{}",
        r.message()
    );
    assert_eq!(ssh(sim, "zfs create tank/backups", None).await.code, 0);
    let r = api
        .post(
            "/storage",
            &[
                ("storage", "backups"),
                ("type", "dir"),
                ("path", "/tank/backups"),
                ("is_mountpoint", "1"),
                ("content", "backup"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let active = |body: &serde_json::Value| {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["storage"] == "backups")
            .map(|s| s["active"].clone())
    };
    let r = api.get(&format!("/nodes/{node}/storage")).await;
    assert_eq!(active(&r.body), Some(serde_json::json!(1)));
    let r = ssh(sim, "zfs unmount tank/backups", None).await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = ssh(
        sim,
        "zfs list -H -p -t filesystem -o name,mountpoint,mounted",
        None,
    )
    .await;
    assert!(
        r.out.contains("tank/backups\t/tank/backups\tno\n"),
        "{}",
        r.out
    );
    let r = api.get(&format!("/nodes/{node}/storage")).await;
    assert_eq!(active(&r.body), Some(serde_json::json!(0)));
    assert_eq!(ssh(sim, "zfs mount tank/backups", None).await.code, 0);
    let r = api
        .get(&format!("/nodes/{node}/storage/backups/status"))
        .await;
    assert_eq!(r.data()["active"], 1);
    api.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sanoid_install_config_and_timer() {
    if !have_ssh() {
        return;
    }
    let api = common::start(hdds()).await;
    let sim = &api.sim;
    let r = ssh(sim, "dpkg-query -W -f='${Status}' sanoid", None).await;
    assert_eq!(
        (r.code, r.err.as_str()),
        (1, "dpkg-query: no packages found matching sanoid\n")
    );
    let r = ssh(sim, "systemctl is-active sanoid.timer", None).await;
    assert_eq!((r.code, r.out.as_str()), (3, "inactive\n"));
    let r = ssh(sim, "cat /etc/sanoid/sanoid.conf", None).await;
    assert_eq!(
        (r.code, r.err.as_str()),
        (
            1,
            "cat: /etc/sanoid/sanoid.conf: No such file or directory\n"
        )
    );
    let r = ssh(
        sim,
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y sanoid",
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = ssh(sim, "dpkg-query -W -f='${Status}' sanoid", None).await;
    assert_eq!((r.code, r.out.as_str()), (0, "install ok installed"));
    let r = ssh(sim, "systemctl is-enabled sanoid.timer", None).await;
    assert_eq!((r.code, r.out.as_str()), (0, "enabled\n"));
    // The config travels on stdin.
    let conf = "# managed by labwright — changes here are overwritten\n[tank/media]\n\tuse_template = lw_daily\n";
    let r = ssh(
        sim,
        "install -D -m 0644 /dev/stdin /etc/sanoid/sanoid.conf",
        Some(conf),
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = ssh(sim, "cat /etc/sanoid/sanoid.conf", None).await;
    assert_eq!((r.code, r.out.as_str()), (0, conf));
    let st = sim.snapshot_state();
    assert_eq!(
        st.nodes[&sim.node()]
            .files
            .get("/etc/sanoid/sanoid.conf")
            .map(String::as_str),
        Some(conf)
    );
    // Timer off and on again.
    assert_eq!(
        ssh(sim, "systemctl disable --now sanoid.timer", None)
            .await
            .code,
        0
    );
    let r = ssh(
        sim,
        "systemctl is-enabled sanoid.timer; systemctl is-active sanoid.timer",
        None,
    )
    .await;
    assert_eq!((r.code, r.out.as_str()), (3, "disabled\ninactive\n"));
    assert_eq!(
        ssh(sim, "systemctl enable --now sanoid.timer", None)
            .await
            .code,
        0
    );
    let r = ssh(sim, "systemctl is-active sanoid.timer", None).await;
    assert_eq!((r.code, r.out.as_str()), (0, "active\n"));
    // Odds and ends of the shell.
    let r = ssh(sim, "frobnicate --now", None).await;
    assert_eq!(
        (r.code, r.err.as_str()),
        (127, "bash: frobnicate: command not found\n")
    );
    let r = ssh(sim, "hostname && test -d /etc/sanoid && echo yes", None).await;
    assert_eq!(r.out, format!("{}\nyes\n", sim.node()));
    let r = ssh(sim, "mkdir -p '/root/a b/c' && ls '/root/a b'", None).await;
    assert_eq!((r.code, r.out.as_str()), (0, "c\n"));
    let r = ssh(sim, "echo 'one\"two' \"three's\" four\\ five", None).await;
    assert_eq!(r.out, "one\"two three's four five\n");
    api.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_key_and_foreign_client_key_are_refused() {
    if !have_ssh() {
        return;
    }
    let api = common::start(hdds()).await;
    let sim = &api.sim;
    let dir = tempfile::tempdir().unwrap();
    // known_hosts that names another key for this endpoint.
    let other = dir.path().join("known_hosts");
    std::fs::write(
        &other,
        format!(
            "[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBlZRYkP7bJv9bV6pMfcQnGxF0mKq7yE4nZl9cV2o3Xa\n",
            sim.ssh_port()
        ),
    )
    .unwrap();
    let r =
        tokio::task::block_in_place(|| ssh_with(sim, &other.display().to_string(), "true", None));
    assert_eq!(r.code, 255);
    assert!(
        r.err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || r.err.contains("Host key verification failed"),
        "{}",
        r.err
    );
    // An empty known_hosts: StrictHostKeyChecking refuses the unknown key.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let r =
        tokio::task::block_in_place(|| ssh_with(sim, &empty.display().to_string(), "true", None));
    assert_eq!(r.code, 255);
    assert!(r.err.contains("Host key verification failed"), "{}", r.err);
    // The simulator's known_hosts line is exactly what ssh verifies.
    let ours = dir.path().join("ours");
    std::fs::write(
        &ours,
        format!("[127.0.0.1]:{} {}\n", sim.ssh_port(), sim.ssh_host_key()),
    )
    .unwrap();
    let r =
        tokio::task::block_in_place(|| ssh_with(sim, &ours.display().to_string(), "true", None));
    assert_eq!(r.code, 0, "{r:?}");
    // Another client key is refused by the server.
    let foreign = dir.path().join("id_other");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&foreign)
        .status();
    if st.map(|s| s.success()).unwrap_or(false) {
        let o = tokio::task::block_in_place(|| {
            Command::new("ssh")
                .args([
                    "-F",
                    "/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "IdentitiesOnly=yes",
                    "-i",
                ])
                .arg(&foreign)
                .arg("-o")
                .arg(format!(
                    "UserKnownHostsFile={}",
                    sim.ssh_known_hosts_path().display()
                ))
                .args(["-o", "StrictHostKeyChecking=yes", "-p"])
                .arg(sim.ssh_port().to_string())
                .args(["root@127.0.0.1", "true"])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        });
        assert_eq!(o.status.code(), Some(255));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("Permission denied (publickey)."), "{err}");
    }
    api.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_faults_drop_the_connection_before_the_command_runs() {
    if !have_ssh() {
        return;
    }
    let api = common::start(hdds()).await;
    let sim = &api.sim;
    make_pool(&api).await;
    sim.set_faults(Faults {
        error_rate: 1.0,
        error_class: Some("ssh".into()),
        ..Faults::default()
    });
    let r = ssh(sim, "zfs create tank/faulty", None).await;
    assert_eq!(r.code, 255, "{r:?}");
    // The API is not affected by the `ssh` class.
    let r = api.get(&format!("/nodes/{}/disks/zfs", sim.node())).await;
    assert_eq!(r.status, 200);
    sim.set_faults(Faults::default());
    let r = ssh(sim, "zfs list -H -o name", None).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "tank\n"),
        "the faulty command never ran"
    );
    api.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_persist_in_the_state_folder() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..hdds()
    };
    let sim = labwright_sim::Simulator::start(cfg.clone()).await.unwrap();
    let (host, key) = (sim.ssh_host_key(), sim.ssh_client_key_path());
    assert!(key.starts_with(dir.path()));
    let creds = labwright_sim::Credentials::load(dir.path()).unwrap();
    assert_eq!(creds.ssh_port, sim.ssh_port());
    assert_eq!(creds.ssh_host_key, host);
    sim.shutdown().await;
    let sim = labwright_sim::Simulator::start(cfg.clone()).await.unwrap();
    assert_eq!(sim.ssh_host_key(), host, "the host key is reloaded");
    assert_eq!(sim.ssh_client_key_path(), key);
    sim.shutdown().await;
    let sim = labwright_sim::Simulator::start(SimConfig { reset: true, ..cfg })
        .await
        .unwrap();
    assert_ne!(sim.ssh_host_key(), host, "--reset makes new keys");
    sim.shutdown().await;
    // A credentials.json from before the SSH endpoint still loads.
    let old = r#"{"url":"https://127.0.0.1:8006","node":"proxmox","fingerprint":"AA","token_id":"root@pam!labwright","token_secret":"x","readonly_token_id":"a","readonly_token_secret":"b","root_password":"c","ca_pem":"d"}"#;
    std::fs::write(dir.path().join("credentials.json"), old).unwrap();
    let c = labwright_sim::Credentials::load(dir.path()).unwrap();
    assert_eq!((c.ssh_port, c.ssh_user.as_str()), (0, ""));
}
