//! Phase 1 end to end on a `labwright sim --scenario hdds` node (issue 12): the pool,
//! datasets, sanoid, storage entries, the backup job's move and the migrations, planned
//! with their risk and downtime, applied, validated, a second plan empty — then checked
//! from outside labwright: the API and plain `ssh` to the simulated node, and the
//! migrated files compared with the kept source, byte for byte (SHA-256).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{Lab, SimProcess, action, action_ids, rt};
use serde_json::Value;

const NODE: &str = "proxmox";

/// The reference spec at `phase`.
fn at_phase(lab: &Lab, phase: u8) -> PathBuf {
    let text = std::fs::read_to_string(common::spec("jarvis-homelab.desired.yaml")).expect("spec");
    let text = text.replacen("\nphase: 0\n", &format!("\nphase: {phase}\n"), 1);
    let p = lab.path().join(format!("phase{phase}.yaml"));
    std::fs::write(&p, text).expect("write spec");
    p
}

fn lab_on(sim: &SimProcess) -> Lab {
    let mut lab = Lab::new();
    lab.target = sim.target();
    lab.env = sim.ssh_env();
    lab
}

/// `relative path → sha256` of the files under `dir` in guest 300, through the API.
fn guest_manifest(sim: &SimProcess, dir: &str) -> BTreeMap<String, String> {
    let client = sim.client();
    let rt = rt();
    // A guest that just (re)booted answers once its agent is up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rt.block_on(client.agent_ping(NODE, 300)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "VM 300's agent never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let st = rt
        .block_on(client.agent_exec_wait(
            NODE,
            300,
            &["find", dir, "-type", "f", "-exec", "sha256sum", "{}", "+"],
            None,
            std::time::Duration::from_secs(20),
        ))
        .expect("agent exec");
    assert_eq!(st.exitcode, Some(0), "find in the guest: {:?}", st.err_data);
    parse_manifest(&st.out_data.unwrap_or_default(), dir)
}

fn parse_manifest(text: &str, dir: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, p)| {
            (
                p.strip_prefix(&format!("{dir}/")).unwrap_or(p).to_string(),
                h.to_string(),
            )
        })
        .collect()
}

/// `relative path → sha256` of the files under `dir` on the node, over plain ssh.
fn host_manifest(sim: &SimProcess, dir: &str) -> BTreeMap<String, String> {
    let o = sim.ssh(&format!("find {dir} -type f -exec sha256sum {{}} +"));
    assert!(
        o.status.success(),
        "ssh find: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    parse_manifest(&String::from_utf8_lossy(&o.stdout), dir)
}

fn check(report: &Value, name: &str) -> Value {
    report["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no check `{name}` in {report:#}"))
}

#[test]
fn phase_one_converges_and_checks_out_from_outside() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = SimProcess::start_with(dir.path(), 0.01, &["--scenario", "hdds"]);
    let lab = lab_on(&sim);
    lab.apply(&at_phase(&lab, 0)).expect_code(0, "phase 0");
    let p1 = at_phase(&lab, 1);
    let before_media = guest_manifest(&sim, "/opt/naas/appdata/plex/media");
    let before_all = guest_manifest(&sim, "/opt/naas/appdata");
    assert!(
        before_media.len() >= 3,
        "the guest has media to move: {before_media:?}"
    );

    // The plan: every part of phase 1, the pool critical with its disks named.
    let plan = lab.plan_json(&p1);
    let ids = action_ids(&plan);
    for id in [
        "storage-pool-tank",
        "storage-dataset-tank-media",
        "storage-dataset-tank-appdata",
        "storage-dataset-tank-backups",
        "storage-sanoid",
        "storage-entry-tank-backups",
        "storage-entry-tank-vm",
        "storage-mapping-tank-media",
        "backup-nightly-update",
        "vm-300-update",
        "storage-migrate-plex-media-copy",
        "storage-migrate-plex-media-switch",
        "storage-migrate-docker-appdata-copy",
        "storage-migrate-docker-appdata-switch",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} planned: {ids:?}");
    }
    let pool = action(&plan, "storage-pool-tank");
    assert_eq!(pool["risk"], "critical");
    let why = pool["reason"].as_str().unwrap_or_default();
    for s in ["WD-WX12A0000001", "WD-WX12A0000002", "4.0 TB", "ERASED"] {
        assert!(why.contains(s), "{s} in {why}");
    }
    let switch = action(&plan, "storage-migrate-docker-appdata-switch");
    assert_eq!(switch["risk"], "medium");
    assert!(switch["preSnapshot"].is_string());
    assert!(
        switch["expectedDowntime"]
            .as_str()
            .unwrap_or_default()
            .contains("Docker")
    );
    assert!(
        action(&plan, "vm-300-update")["expectedDowntime"]
            .as_str()
            .unwrap_or_default()
            .contains("virtiofs"),
        "the share needs a reboot, and says so"
    );

    // Critical needs saying so.
    let refused = lab.apply(&p1);
    assert_ne!(
        refused.code, 0,
        "a critical plan without --allow-risk critical"
    );
    assert!(refused.stderr.contains("critical"), "{}", refused.stderr);
    let mut c = lab.apply_cmd(&p1);
    c.args(["--allow-risk", "critical"]);
    common::run(c).expect_code(0, "phase 1 apply");

    let val = lab.run(&["validate", &p1.to_string_lossy(), "-o", "json"]);
    let report = val.json();
    val.expect_code(0, "validate");
    for name in [
        "zfs pool tank health",
        "zfs pool tank layout",
        "dataset tank/media",
        "sanoid snapshots",
        "storage tank-backups",
        "storage tank-vm",
        "migration plex-media",
        "migration docker-appdata",
    ] {
        assert_eq!(check(&report, name)["status"], "pass", "{name}: {report:#}");
    }
    let again = lab.plan_json(&p1);
    assert!(
        action_ids(&again).is_empty(),
        "second plan: {:?}",
        action_ids(&again)
    );

    // From outside: the API.
    let client = sim.client();
    let rt = rt();
    let detail = rt
        .block_on(client.zfs_pool_detail(NODE, "tank"))
        .expect("pool detail");
    let text = format!("{:?}", detail.children);
    assert!(text.contains("mirror"), "mirror: {text}");
    assert!(
        text.contains("WD-WX12A0000001") && text.contains("WD-WX12A0000002"),
        "both disks: {text}"
    );
    let status = rt
        .block_on(client.node_storage_status(NODE, None))
        .expect("status");
    for id in ["tank-backups", "tank-vm"] {
        let s = status
            .iter()
            .find(|s| s.storage == id)
            .expect("storage listed");
        assert_eq!(s.active, Some(true), "{id} active");
    }
    let jobs = rt.block_on(client.backup_jobs()).expect("jobs");
    let job = jobs.iter().find(|j| j.id == "nightly").expect("job");
    assert_eq!(job.storage.as_deref(), Some("tank-backups"));
    let prune = format!("{:?}", job.prune_backups);
    for k in ["7", "4", "6"] {
        assert!(prune.contains(k), "retention {prune}");
    }

    // From outside: plain ssh.
    let o = sim.ssh("zfs get -H -o name,property,value -s local all tank");
    let props = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(props.contains("tank\tcompression\tlz4"), "{props}");
    let o = sim.ssh("zfs list -H -o name,mountpoint");
    let list = String::from_utf8_lossy(&o.stdout);
    for d in [
        "tank/media\t/tank/media",
        "tank/appdata",
        "tank/backups",
        "tank/ha",
    ] {
        assert!(list.contains(d), "{d} in {list}");
    }
    let conf = String::from_utf8_lossy(&sim.ssh("cat /etc/sanoid/sanoid.conf").stdout).into_owned();
    assert!(
        conf.contains("[tank/media]") && conf.contains("daily = 14"),
        "{conf}"
    );

    // The data: byte-identical in the datasets, the source kept untouched.
    let media = host_manifest(&sim, "/tank/media");
    assert_eq!(media, before_media, "tank/media holds exactly the media");
    // The media folder was set aside inside appdata, which was then set aside whole.
    assert_eq!(
        guest_manifest(&sim, "/opt/naas/appdata.lw-migrated/plex/media.lw-migrated"),
        before_media,
        "the kept media source is untouched"
    );
    let appdata = host_manifest(&sim, "/tank/appdata");
    let want: BTreeMap<String, String> = before_all
        .iter()
        .filter(|(k, _)| !k.starts_with("plex/media/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(appdata, want, "tank/appdata holds the rest");
    // The guest sees the datasets in place.
    assert_eq!(
        guest_manifest(&sim, "/opt/naas/appdata/plex/media"),
        before_media
    );
}

#[test]
fn a_used_disk_is_refused_with_the_reason_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = SimProcess::start_with(dir.path(), 0.01, &["--scenario", "hdds-used"]);
    let lab = lab_on(&sim);
    let p1 = at_phase(&lab, 1);
    let plan = lab.plan_json(&p1);
    assert!(
        !action_ids(&plan)
            .iter()
            .any(|i| i.starts_with("storage-pool"))
    );
    let held = plan["held"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["target"] == "zfs-pool/tank").cloned())
        .expect("pool held");
    let reason = held["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("/dev/sdc") && reason.contains("in use"),
        "{reason}"
    );
    let mut c = lab.apply_cmd(&p1);
    c.args(["--allow-risk", "critical"]);
    let out = common::run(c);
    assert!(out.stdout.contains("in use") || out.stderr.contains("in use"));
    let pools = rt().block_on(sim.client().zfs_pools(NODE)).expect("pools");
    assert!(pools.is_empty(), "no pool was made: {pools:?}");
    // Allowed in the spec but not on the command line: refused before anything runs.
    let wipe = std::fs::read_to_string(&p1).expect("spec").replacen(
        "      ashift: 12\n",
        "      ashift: 12\n      wipeUsedDisks: true\n",
        1,
    );
    std::fs::write(&p1, wipe).expect("write");
    let mut c = lab.apply_cmd(&p1);
    c.args(["--allow-risk", "critical"]);
    let out = common::run(c);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("--allow-destroy"), "{}", out.stderr);
    assert!(
        rt().block_on(sim.client().zfs_pools(NODE))
            .expect("pools")
            .is_empty()
    );
}

#[test]
fn a_copy_cut_midway_resumes_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("dir");
    let lab_dir;
    let p1;
    let before;
    {
        let sim = SimProcess::start_with(dir.path(), 0.01, &["--scenario", "hdds"]);
        let lab = lab_on(&sim);
        lab.apply(&at_phase(&lab, 0)).expect_code(0, "phase 0");
        before = guest_manifest(&sim, "/opt/naas/appdata");
        p1 = at_phase(&lab, 1);
        lab_dir = lab;
    }
    // Every copy stops partway.
    let sim = SimProcess::start_with(
        dir.path(),
        0.01,
        &["--scenario", "hdds", "--fault-copy-failure-rate", "1"],
    );
    let mut lab = lab_dir;
    lab.target = sim.target();
    lab.env = sim.ssh_env();
    let mut c = lab.apply_cmd(&p1);
    c.args(["--allow-risk", "critical"]);
    let out = common::run(c);
    assert_ne!(out.code, 0, "the copy failed");
    assert!(out.stderr.contains("resumes"), "{}", out.stderr);
    assert_eq!(
        guest_manifest(&sim, "/opt/naas/appdata"),
        before,
        "source untouched"
    );
    let partial = host_manifest(&sim, "/tank/media");
    assert!(
        partial.len()
            < before
                .keys()
                .filter(|k| k.starts_with("plex/media/"))
                .count()
    );
    drop(sim);
    // Faults off: the next apply finishes the job.
    let sim = SimProcess::start_with(dir.path(), 0.01, &["--scenario", "hdds"]);
    lab.target = sim.target();
    lab.env = sim.ssh_env();
    let mut c = lab.apply_cmd(&p1);
    c.args(["--allow-risk", "critical"]);
    common::run(c).expect_code(0, "apply again");
    lab.run(&["validate", &p1.to_string_lossy()])
        .expect_code(0, "validate");
    let media: BTreeMap<String, String> = before
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("plex/media/")?.to_string(), v.clone())))
        .collect();
    assert_eq!(host_manifest(&sim, "/tank/media"), media, "nothing lost");
}

#[test]
fn an_unknown_host_key_stops_the_plan_and_is_never_accepted() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = SimProcess::start_with(dir.path(), 0.01, &["--scenario", "hdds"]);
    let mut lab = lab_on(&sim);
    let empty = lab.path().join("known_hosts");
    std::fs::write(&empty, "").expect("empty known_hosts");
    for (k, v) in lab.env.iter_mut() {
        if k == "LABWRIGHT_SSH_KNOWN_HOSTS" {
            *v = empty.to_string_lossy().into_owned();
        }
    }
    let p1 = at_phase(&lab, 1);
    let out = lab.run(&["plan", &p1.to_string_lossy()]);
    assert_ne!(out.code, 0, "a plan that cannot read the datasets fails");
    for s in [
        "never accepts host keys",
        "Host key verification failed",
        "ssh-keyscan -p",
        &empty.to_string_lossy(),
    ] {
        assert!(out.stderr.contains(s), "{s} in:\n{}", out.stderr);
    }
    assert_eq!(
        std::fs::read_to_string(&empty).expect("read"),
        "",
        "the key was not added on the fly"
    );
    // Nothing was written on the node either.
    assert!(
        rt().block_on(sim.client().zfs_pools(NODE))
            .expect("pools")
            .is_empty()
    );
}
