//! `labwright doctor`: every check's failure, shown on a simulator that is wrong in
//! that one way, and a run where everything passes.

mod common;

use common::{Lab, SimProcess, Target, spec};
use serde_json::Value;

/// The finding of `check` in a doctor JSON document.
fn check<'a>(doc: &'a Value, check: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no `{check}` check in {doc:#}"))
}

fn status(doc: &Value, name: &str) -> String {
    check(doc, name)["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn everything_passes_on_a_fresh_simulated_node() {
    let lab = Lab::new();
    let out = lab.run(&["doctor", "-o", "json"]);
    out.expect_code(0, "doctor");
    let doc = out.json();
    assert_eq!(doc["ok"], true);
    for name in [
        "endpoint",
        "tls",
        "clock",
        "version",
        "privileges",
        "ssh",
        "storage",
    ] {
        assert_eq!(status(&doc, name), "ok", "{name}: {doc:#}");
    }
    assert!(
        check(&doc, "ssh")["detail"]
            .as_str()
            .unwrap_or("")
            .contains("host key known"),
        "{doc:#}"
    );
    // With a spec: the plan's needs; the text form has one line per check.
    let nas = spec("nas.desired.yaml");
    let out = lab.run(&["doctor", &nas.to_string_lossy()]);
    out.expect_code(0, "doctor SPEC");
    assert!(
        out.stdout
            .contains("ok    privileges the token holds what the plan"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("ready"), "{}", out.stdout);
    let md = lab.run(&["doctor", "-o", "markdown"]);
    md.expect_code(0, "doctor -o markdown");
    assert!(
        md.stdout
            .contains("| check | status | detail | what to do |"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains("| version | ok | Proxmox VE 9.1.1 |"),
        "{}",
        md.stdout
    );
    for word in ["endpoint", "tls", "clock", "version", "ssh", "storage"] {
        assert!(
            out.stdout.lines().any(
                |l| l.contains(word) && ["ok", "warn", "skip"].iter().any(|s| l.starts_with(s))
            ),
            "{word}: {}",
            out.stdout
        );
    }
}

#[test]
fn an_unreachable_endpoint_fails_and_skips_the_rest() {
    let mut lab = Lab::new();
    lab.target = Target::Env {
        // Port 1 on loopback: connection refused at once.
        url: "https://127.0.0.1:1".into(),
        token_id: "labwright@pve!lab".into(),
        secret: "00000000-0000-0000-0000-000000000000".into(),
        fingerprint: ["AB"; 32].join(":"),
    };
    let out = lab.run(&["doctor", "-o", "json"]);
    out.expect_code(1, "doctor");
    let doc = out.json();
    assert_eq!(doc["ok"], false);
    assert_eq!(status(&doc, "endpoint"), "fail", "{doc:#}");
    assert!(
        check(&doc, "endpoint")["detail"]
            .as_str()
            .unwrap_or("")
            .contains("127.0.0.1:1")
    );
    assert!(check(&doc, "endpoint")["fix"].is_string());
    for name in ["tls", "clock", "version", "privileges", "ssh", "storage"] {
        assert_eq!(status(&doc, name), "skip", "{name}: {doc:#}");
    }
}

#[test]
fn a_wrong_pin_fails_tls_and_names_both_fingerprints() {
    let lab0 = Lab::new();
    let sim = SimProcess::start(lab0.path(), 0.01);
    let mut lab = Lab::new();
    let wrong = ["AB"; 32].join(":");
    lab.target = Target::Env {
        url: sim.cred("url"),
        token_id: sim.cred("token_id"),
        secret: sim.cred("token_secret"),
        fingerprint: wrong.clone(),
    };
    let out = lab.run(&["doctor", "-o", "json"]);
    out.expect_code(1, "doctor");
    let doc = out.json();
    assert_eq!(status(&doc, "endpoint"), "ok", "{doc:#}");
    assert_eq!(status(&doc, "tls"), "fail", "{doc:#}");
    let detail = check(&doc, "tls")["detail"].as_str().unwrap_or("");
    assert!(detail.contains(&wrong), "{detail}");
    assert!(detail.contains(&sim.cred("fingerprint")), "{detail}");
    assert!(
        check(&doc, "tls")["fix"]
            .as_str()
            .unwrap_or("")
            .contains("pvenode cert info")
    );
}

#[test]
fn an_unsupported_version_fails() {
    let lab = Lab::new();
    let mut cmd = lab.cmd(&["doctor", "-o", "json"]);
    cmd.env("LABWRIGHT_SIM_PVE_VERSION", "7.4-3");
    let out = common::run(cmd);
    out.expect_code(1, "doctor");
    let doc = out.json();
    assert_eq!(status(&doc, "version"), "fail", "{doc:#}");
    assert!(
        check(&doc, "version")["detail"]
            .as_str()
            .unwrap_or("")
            .contains("7.4-3")
    );
    // The rest still ran.
    assert_eq!(status(&doc, "privileges"), "ok", "{doc:#}");
    // 8.x is supported.
    let mut cmd = lab.cmd(&["doctor", "-o", "json"]);
    cmd.env("LABWRIGHT_SIM_PVE_VERSION", "8.4.1");
    let out = common::run(cmd);
    out.expect_code(0, "doctor on 8.4");
    assert_eq!(status(&out.json(), "version"), "ok");
}

#[test]
fn a_token_without_the_privileges_fails_with_the_missing_list() {
    let lab0 = Lab::new();
    let sim = SimProcess::start(lab0.path(), 0.01);
    let mut lab = Lab::new();
    // The simulator's audit-only token: it sees everything and may change nothing.
    lab.target = Target::Env {
        url: sim.cred("url"),
        token_id: sim.cred("readonly_token_id"),
        secret: sim.cred("readonly_token_secret"),
        fingerprint: sim.cred("fingerprint"),
    };
    let out = lab.run(&["doctor", "-o", "json"]);
    out.expect_code(1, "doctor");
    let doc = out.json();
    assert_eq!(status(&doc, "privileges"), "fail", "{doc:#}");
    let missing: Vec<&str> = check(&doc, "privileges")["missing"]
        .as_array()
        .expect("missing list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(missing.contains(&"VM.Allocate@/vms"), "{missing:?}");
    assert!(
        !missing.iter().any(|m| m.starts_with("VM.Audit")),
        "{missing:?}"
    );
    assert!(
        check(&doc, "privileges")["fix"]
            .as_str()
            .unwrap_or("")
            .contains("labwright token create")
    );
    // With a spec: the plan's own paths.
    let nas = spec("nas.desired.yaml");
    let out = lab.run(&["doctor", &nas.to_string_lossy(), "-o", "json"]);
    out.expect_code(1, "doctor SPEC");
    let doc = out.json();
    let missing = check(&doc, "privileges")["missing"].to_string();
    for want in [
        "VM.Allocate@/vms/100",
        "VM.PowerMgmt@/vms/400",
        "Datastore.AllocateSpace@/storage/local-lvm",
        "SDN.Use@/sdn/zones/localnetwork/vmbr0",
        "Sys.Modify@/",
    ] {
        assert!(missing.contains(want), "{want} not in {missing}");
    }
}

#[test]
fn an_unknown_ssh_host_key_fails() {
    let lab0 = Lab::new();
    let sim = SimProcess::start(lab0.path(), 0.01);
    let mut lab = Lab::new();
    lab.target = sim.target();
    let empty = lab.path().join("known_hosts");
    std::fs::write(&empty, "").expect("empty known_hosts");
    let mut env = sim.ssh_env();
    for (k, v) in &mut env {
        if k == "LABWRIGHT_SSH_KNOWN_HOSTS" {
            *v = empty.to_string_lossy().into_owned();
        }
    }
    lab.env = env;
    let out = lab.run(&["doctor", "-o", "json"]);
    out.expect_code(1, "doctor");
    let doc = out.json();
    assert_eq!(status(&doc, "ssh"), "fail", "{doc:#}");
    let detail = check(&doc, "ssh")["detail"].as_str().unwrap_or("");
    assert!(detail.contains("host key"), "{detail}");
    // The key was not accepted on the way.
    assert_eq!(std::fs::read_to_string(&empty).unwrap_or_default(), "");
    // With the simulator's known_hosts the same check passes.
    lab.env = sim.ssh_env();
    let out = lab.run(&["doctor", "-o", "json"]);
    out.expect_code(0, "doctor with the host key known");
}

#[test]
fn a_planned_disk_too_big_for_its_storage_fails() {
    let lab = Lab::new();
    // VM 300's disk grows to 5 TiB on `local-lvm` (a few hundred GiB free).
    let big = lab.spec_copy("nas.desired.yaml", |t| {
        t.replace("scsi0: { size: 64G }", "scsi0: { size: 5T }")
    });
    let out = lab.run(&["doctor", &big.to_string_lossy(), "-o", "json"]);
    out.expect_code(1, "doctor");
    let doc = out.json();
    assert_eq!(status(&doc, "storage"), "fail", "{doc:#}");
    let detail = check(&doc, "storage")["detail"].as_str().unwrap_or("");
    assert!(detail.contains("`local-lvm`"), "{detail}");
    assert!(detail.contains("GiB free"), "{detail}");
    // The unchanged spec fits (backups on the SSD only warn).
    let nas = spec("nas.desired.yaml");
    let out = lab.run(&["doctor", &nas.to_string_lossy(), "-o", "json"]);
    out.expect_code(0, "doctor");
    assert_ne!(status(&out.json(), "storage"), "fail");
}

#[test]
fn a_node_clock_far_off_fails_and_a_small_skew_warns() {
    let lab = Lab::new();
    for (offset, want, code) in [("-900", "fail", 1), ("45", "warn", 0), ("2", "ok", 0)] {
        let mut cmd = lab.cmd(&["doctor", "-o", "json"]);
        cmd.env("LABWRIGHT_SIM_CLOCK_OFFSET", offset);
        let out = common::run(cmd);
        out.expect_code(code, "doctor");
        let doc = out.json();
        assert_eq!(status(&doc, "clock"), want, "offset {offset}: {doc:#}");
    }
    let mut cmd = lab.cmd(&["doctor", "-o", "json"]);
    cmd.env("LABWRIGHT_SIM_CLOCK_OFFSET", "-900");
    let doc = common::run(cmd).json();
    let detail = check(&doc, "clock")["detail"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(detail.contains("ahead of"), "{detail}");
    assert!(
        check(&doc, "clock")["fix"]
            .as_str()
            .unwrap_or("")
            .contains("NTP")
    );
}

#[test]
fn a_rejected_token_fails_the_privileges_check_once() {
    let lab0 = Lab::new();
    let sim = SimProcess::start(lab0.path(), 0.01);
    let mut lab = Lab::new();
    lab.target = Target::Env {
        url: sim.cred("url"),
        token_id: sim.cred("token_id"),
        secret: "00000000-0000-0000-0000-000000000000".into(),
        fingerprint: sim.cred("fingerprint"),
    };
    let out = lab.run(&["doctor", "-o", "json"]);
    out.expect_code(1, "doctor");
    let doc = out.json();
    assert_eq!(status(&doc, "endpoint"), "ok", "{doc:#}");
    assert_eq!(status(&doc, "tls"), "ok", "{doc:#}");
    assert_eq!(status(&doc, "privileges"), "fail", "{doc:#}");
    let n = doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["check"] == "privileges")
        .count();
    assert_eq!(n, 1, "{doc:#}");
    assert!(
        !out.stdout.contains("00000000-0000"),
        "the secret was printed"
    );
}
