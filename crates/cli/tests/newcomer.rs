//! What a newcomer tripped over (issue 18), each pinned by a test that failed before
//! the fix: empty JSON on nothing-to-do, a seed's wording about an auth key it does
//! not hold.

mod common;

use common::{Lab, action, spec};
use serde_json::Value;

/// A small lab: one VM, no OS image, nothing that waits on a guest.
const SMALL: &str = r#"apiVersion: labwright/v1
kind: Homelab
metadata: { name: small, owner: test }
node: { name: proxmox, address: 192.168.1.10 }
phase: 0
safetyGuards:
  managementAccessCidrs: [192.168.1.50/32]
networks:
  bridges:
    vmbr0: { ports: [nic0], address: 192.168.1.10/24 }
vms:
  - vmid: 120
    name: box
    cores: 1
    memory: 512M
    ostype: l26
    disks:
      scsi0: { size: 4G }
    nics:
      net0: { bridge: vmbr0 }
    tags: [env-lab, role-box]
"#;

#[test]
fn apply_json_prints_one_document_even_when_there_is_nothing_to_do() {
    let lab = Lab::new();
    let spec = lab.path().join("small.yaml");
    std::fs::write(&spec, SMALL).expect("write spec");
    lab.apply(&spec).expect_code(0, "first apply");
    for extra in [&[][..], &["--dry-run"][..]] {
        let journal = lab.journal_dir();
        let mut args = vec![
            "apply",
            spec.to_str().unwrap_or_default(),
            "--yes",
            "-o",
            "json",
            "--journal-dir",
            journal.to_str().unwrap_or_default(),
        ];
        args.extend_from_slice(extra);
        let out = lab.run(&args);
        out.expect_code(0, "second apply");
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {:?}", out.stdout));
        assert_eq!(v["formatVersion"], 1, "{v:#}");
        assert_eq!(v["done"], serde_json::json!([]), "{v:#}");
        assert_eq!(v["dryRun"], !extra.is_empty(), "{v:#}");
    }
}

#[test]
fn a_seed_without_a_tailscale_join_does_not_speak_of_an_auth_key_in_it() {
    let lab = Lab::new();
    // app-host (VM 300) has a bootstrap without Tailscale.
    let plan = lab.plan_json(&spec("nas.desired.yaml"));
    let seed = action(&plan, "vm-300-seed");
    let changes = seed["changes"].as_array().expect("changes");
    let get = |field: &str| -> String {
        changes
            .iter()
            .find(|c| c["field"] == field)
            .and_then(|c| c["after"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        get("tailscale auth key").contains("no Tailscale join"),
        "{seed:#}"
    );
    let cleanup = get("seed cleanup");
    assert!(!cleanup.contains("auth key"), "{cleanup}");
    assert!(cleanup.contains("holds no secret"), "{cleanup}");
    // VM 100 joins Tailscale: its seed does carry the key until validate.
    let seed = action(&plan, "vm-100-seed");
    let cleanup = seed["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["field"] == "seed cleanup")
        .and_then(|c| c["after"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(cleanup.contains("auth key sits in the seed"), "{cleanup}");
}

#[test]
fn labs_sharing_a_node_do_not_claim_each_others_guests() {
    let lab = Lab::new();
    let small = lab.path().join("small.yaml");
    std::fs::write(&small, SMALL).expect("write spec");
    lab.apply(&small).expect_code(0, "apply the small lab");

    // A firewall-only wave never claims guests.
    let plan = lab.plan_json(&spec("preprod.firewall.desired.yaml"));
    let blocked = plan["held"].to_string();
    assert!(
        !blocked.contains("VM 120") && !blocked.contains("vm/120"),
        "{plan:#}"
    );
    assert!(
        plan["foreign"]
            .to_string()
            .contains("managed by lab `small`"),
        "{plan:#}"
    );

    // Another lab with guests of its own leaves this one's alone.
    let other = lab.path().join("other.yaml");
    std::fs::write(
        &other,
        SMALL
            .replace("name: small,", "name: other,")
            .replace("vmid: 120", "vmid: 121")
            .replace("name: box", "name: box2"),
    )
    .expect("write spec");
    let plan = lab.plan_json(&other);
    assert!(
        !plan["held"].to_string().contains("120"),
        "lab `other` must not hold a destroy of lab `small`'s VM: {plan:#}"
    );
    assert!(plan["foreign"].to_string().contains("VM 120"), "{plan:#}");

    // Renaming the lab is said out loud: the guest's lab tag changes.
    let renamed = lab.path().join("renamed.yaml");
    std::fs::write(&renamed, SMALL.replace("name: small,", "name: small2,")).expect("write spec");
    let plan = lab.plan_json(&renamed);
    assert!(
        plan["notes"].to_string().contains("belongs to lab `small`"),
        "{plan:#}"
    );
    let update = action(&plan, "vm-120-update");
    assert!(
        update["changes"].to_string().contains("lw-lab-small2"),
        "{update:#}"
    );
}

#[test]
fn dry_run_prints_the_api_calls_on_stdout_and_in_json() {
    let lab = Lab::new();
    let spec = lab.path().join("small.yaml");
    std::fs::write(&spec, SMALL).expect("write spec");
    let sp = spec.to_string_lossy().to_string();
    let out = lab.run(&["apply", &sp, "--dry-run"]);
    out.expect_code(0, "dry run");
    assert!(out.stdout.contains("vm-120-create:"), "{}", out.stdout);
    assert!(
        out.stdout.contains("POST /nodes/proxmox/qemu vmid=120"),
        "{}",
        out.stdout
    );
    let out = lab.run(&["apply", &sp, "--dry-run", "-o", "json"]);
    out.expect_code(0, "dry run json");
    let v = out.json();
    let calls = v["wouldRun"].to_string();
    assert!(calls.contains("POST /nodes/proxmox/qemu vmid=120"), "{v:#}");
    // Nothing was written.
    let plan = lab.plan_json(&spec);
    assert!(common::action_ids(&plan).contains(&"vm-120-create".to_string()));
}

#[test]
fn plan_warns_early_about_a_secret_apply_will_need() {
    let lab = Lab::new();
    let mut cmd = lab.cmd(&["plan", &spec("nas.desired.yaml").to_string_lossy()]);
    cmd.env_remove("TAILSCALE_AUTHKEY");
    let out = common::run(cmd);
    out.expect_code(0, "plan without the key");
    assert!(
        out.stderr.contains("env:TAILSCALE_AUTHKEY") && out.stderr.contains("cannot be read now"),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_no_cleanup_changes_nothing() {
    let lab = Lab::new();
    let spec = lab.path().join("small.yaml");
    std::fs::write(&spec, SMALL).expect("write spec");
    lab.apply(&spec).expect_code(0, "apply");
    // A change that needs a reboot takes a pre-change snapshot.
    let bigger = lab.path().join("bigger.yaml");
    std::fs::write(&bigger, SMALL.replace("memory: 512M", "memory: 1G")).expect("write");
    lab.apply(&bigger).expect_code(0, "apply the reboot change");
    let sp = bigger.to_string_lossy().to_string();
    let out = lab.run(&["validate", &sp, "--no-cleanup", "-o", "json"]);
    out.expect_code(0, "validate --no-cleanup");
    let v = out.json();
    assert_eq!(v["expiredSnapshots"], serde_json::json!([]), "{v:#}");
    assert_eq!(
        v["keptSnapshots"].as_array().map(Vec::len),
        Some(1),
        "{v:#}"
    );
    // Without the flag, the same validate expires it.
    let out = lab.run(&["validate", &sp, "-o", "json"]);
    out.expect_code(0, "validate");
    assert_eq!(
        out.json()["expiredSnapshots"].as_array().map(Vec::len),
        Some(1)
    );
}

/// On a terminal, a plan with high-risk actions needs `yes` typed out; `y` is not
/// enough there (`script` gives the command a terminal, stdin feeds the answer).
#[test]
fn high_risk_applies_on_a_terminal_need_the_word_yes() {
    let lab = Lab::new();
    let bin = assert_cmd::cargo::cargo_bin("labwright");
    let fw = spec("preprod.firewall.desired.yaml");
    let line = format!(
        "{} apply {} --allow-risk high --target sim --sim-state {} --journal-dir {}",
        bin.display(),
        fw.display(),
        lab.sim_state().display(),
        lab.journal_dir().display()
    );
    let answer = |text: &str| {
        let mut c = std::process::Command::new("script");
        c.args(["-q", "-e", "-c", &line, "/dev/null"])
            .current_dir(lab.path())
            .env("ADMIN_PC_CIDR", "192.168.1.50/32")
            .env("NO_COLOR", "1")
            .env("LABWRIGHT_SIM_TIME_SCALE", "0.01")
            .env_remove("LABWRIGHT_TARGET")
            .env_remove("LABWRIGHT_PVE_URL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().expect("script runs");
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().expect("script ends");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, text) = answer("y\n");
    assert!(text.contains("Type `yes` to apply"), "{text}");
    assert!(text.contains("Not applied."), "{text}");
    assert_eq!(code, Some(1), "{text}");
    let (code, text) = answer("yes\n");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Applied"), "{text}");
}

/// The shipped specs pass `check --strict`: their one known warning (backups on the
/// SSD in phase 0) is acknowledged in the spec, on purpose and visibly.
#[test]
fn shipped_specs_pass_check_strict_and_acknowledging_is_checked() {
    let lab = Lab::new();
    for name in [
        "nas.desired.yaml",
        "jarvis-homelab.desired.yaml",
        "preprod.firewall.desired.yaml",
    ] {
        let out = lab.run(&["check", "--strict", &spec(name).to_string_lossy()]);
        out.expect_code(0, name);
    }
    let out = lab.run(&["check", "-v", &spec("nas.desired.yaml").to_string_lossy()]);
    assert!(
        out.stderr.contains("advice[ssd-backup-space]") && out.stderr.contains("acknowledged"),
        "{}",
        out.stderr
    );
    // Only warning rules that exist can be acknowledged.
    let bad = lab.spec_copy("nas.desired.yaml", |t| {
        t.replace(
            "acknowledge: [ssd-backup-space]",
            "acknowledge: [ssd-backup-space, no-such-rule, tag-format]",
        )
    });
    let out = lab.run(&["check", &bad.to_string_lossy()]);
    out.expect_code(1, "unknown and error rules");
    assert!(
        out.stderr.contains("`no-such-rule` is not a rule id"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("`tag-format` reports errors"),
        "{}",
        out.stderr
    );
}

/// A guest agent that refuses commands (Windows guests, old agents, `--block-rpcs`)
/// makes the in-guest checks "skipped" with the agent's own words, not a decode error
/// and not a failure.
#[test]
fn an_agent_that_refuses_commands_skips_the_in_guest_checks_with_its_reason() {
    let lab = Lab::new();
    let nas = spec("nas.desired.yaml");
    let mut apply = lab.apply_cmd(&nas);
    apply.env_remove("LABWRIGHT_GUEST_CHECKS");
    common::run(apply).expect_code(0, "apply");
    let mut validate = lab.cmd(&[
        "validate",
        &nas.to_string_lossy(),
        "--no-cleanup",
        "-o",
        "json",
    ]);
    validate
        .env_remove("LABWRIGHT_GUEST_CHECKS")
        .env("LABWRIGHT_SIM_AGENT_BLOCK", "guest-exec")
        .env("LABWRIGHT_AGENT_WAIT_SECS", "20");
    let out = common::run(validate);
    let v = out.json();
    let checks = v["checks"].as_array().expect("checks");
    let docker = checks
        .iter()
        .find(|c| c["name"].as_str().is_some_and(|n| n.contains("docker")))
        .unwrap_or_else(|| panic!("no docker check: {v:#}"));
    assert_eq!(docker["status"], "skipped", "{docker:#}");
    let detail = docker["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("guest agent of VM 300: CommandDisabled"),
        "{detail}"
    );
    assert!(!v.to_string().contains("invalid type: map"), "{v:#}");
    // Nothing in-guest failed because of the refusal.
    for c in checks {
        if c["status"] == "fail" {
            assert!(
                !c["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("CommandDisabled"),
                "{c:#}"
            );
        }
    }
}

/// A plan saved by an older labwright says which format it is, instead of failing to
/// parse.
#[test]
fn an_old_plan_file_is_refused_by_its_format_version() {
    let lab = Lab::new();
    let old = lab.path().join("old-plan.json");
    std::fs::write(
        &old,
        r#"{"formatVersion": 1, "id": "1a2b3c4d", "actions": [{"op": {"op": "create-vm"}}], "blocked": []}"#,
    )
    .expect("write plan");
    let out = lab.run(&["apply", &old.to_string_lossy(), "--yes"]);
    out.expect_code(1, "old plan file");
    assert!(
        out.stderr
            .contains("has plan format 1, this labwright reads 2"),
        "{}",
        out.stderr
    );
}

/// A minutes-long image download does not look frozen: the node's task log is
/// followed and its percent shown while the step runs.
#[test]
fn a_download_shows_its_progress_while_it_runs() {
    let lab = Lab::new();
    let nas = spec("nas.desired.yaml");
    let mut apply = lab.apply_cmd(&nas);
    // Downloads of ≈ 1.5 s, progress every ≈ 0.3 s, polled every 0.5 s.
    apply.env("LABWRIGHT_SIM_TIME_SCALE", "0.3");
    let out = common::run(apply);
    out.expect_code(0, "apply");
    let progress: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("image-") && l.contains("downloading") && l.contains('%'))
        .collect();
    assert!(
        !progress.is_empty(),
        "no download progress shown:\n{}",
        out.stderr
    );
}

/// The embedded simulator says once that it made a new node here.
#[test]
fn a_new_simulated_node_is_announced_once() {
    let lab = Lab::new();
    let nas = spec("nas.desired.yaml");
    let first = lab.run(&["plan", &nas.to_string_lossy()]);
    first.expect_code(0, "first plan");
    assert!(
        first.stderr.contains("created a new simulated node"),
        "{}",
        first.stderr
    );
    let second = lab.run(&["plan", &nas.to_string_lossy()]);
    assert!(
        !second.stderr.contains("created a new simulated node"),
        "{}",
        second.stderr
    );
}
