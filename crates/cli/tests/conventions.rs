//! CLI conventions people expect: shell completions that complete, a man page that
//! renders.

mod common;

use common::Lab;

#[test]
fn bash_completion_completes_subcommands() {
    let lab = Lab::new();
    let out = lab.run(&["completions", "bash"]);
    out.expect_code(0, "completions bash");
    let script = lab.path().join("labwright.bash");
    std::fs::write(&script, &out.stdout).expect("write script");
    let probe = format!(
        "source {}; COMP_WORDS=(labwright ch); COMP_CWORD=1; COMP_LINE='labwright ch'; COMP_POINT=12; _labwright labwright ch labwright; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let res = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .expect("bash runs");
    let words = String::from_utf8_lossy(&res.stdout);
    assert!(
        words.lines().any(|w| w.trim() == "check"),
        "completing `labwright ch` gave {words:?} (stderr {})",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(!words.lines().any(|w| w.trim() == "plan"), "{words:?}");
}

#[test]
fn the_man_page_renders() {
    let lab = Lab::new();
    let out = lab.run(&["man"]);
    out.expect_code(0, "man");
    let page = lab.path().join("labwright.1");
    std::fs::write(&page, &out.stdout).expect("write page");
    let res = std::process::Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(&page)
        .env("MANWIDTH", "80")
        .output()
        .expect("man runs (scripts/test installs man-db)");
    let text = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "man -l failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(text.contains("labwright"), "{text}");
    assert!(text.contains("validate"), "{text}");
    // One page per subcommand for packagers.
    let dir = lab.path().join("man1");
    lab.run(&["man", "--out-dir", &dir.to_string_lossy()])
        .expect_code(0, "man --out-dir");
    assert!(dir.join("labwright-plan.1").exists());
}

/// Object keys that are data, not field names: VMIDs, PVE config keys, job ids,
/// firewall option and rule keys as PVE spells them.
const DATA_MAPS: &[&str] = &["vms", "config", "backupJobs", "options", "rule", "pending"];

fn bad_keys(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let camel = k.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && k.chars().all(|c| c.is_ascii_alphanumeric());
                if !camel {
                    out.push(format!("{path}.{k}"));
                }
                if DATA_MAPS.contains(&k.as_str()) {
                    // The map's own keys are data; their values are documents again.
                    if let serde_json::Value::Object(inner) = x {
                        for (ik, iv) in inner {
                            bad_keys(iv, &format!("{path}.{k}.{ik}"), out);
                        }
                    }
                    continue;
                }
                bad_keys(x, &format!("{path}.{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                bad_keys(x, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_json_document_parses_with_one_key_style_and_a_format_version() {
    let lab = Lab::new();
    let nas = common::spec("nas.desired.yaml");
    let nas = nas.to_string_lossy().to_string();
    let fw = common::spec("preprod.firewall.desired.yaml");
    let fw = fw.to_string_lossy().to_string();
    let jarvis = common::spec("jarvis-homelab.desired.yaml");
    let jarvis = jarvis.to_string_lossy().to_string();
    let journal = lab.journal_dir().to_string_lossy().to_string();
    let docs: Vec<(&str, Vec<&str>)> = vec![
        ("check", vec!["check", &nas]),
        ("check --list-rules", vec!["check", "--list-rules"]),
        ("plan (changes)", vec!["plan", &nas]),
        ("apply --dry-run", vec!["apply", &nas, "--dry-run"]),
        (
            "apply",
            vec!["apply", &nas, "--yes", "--journal-dir", &journal],
        ),
        (
            "apply (nothing to do)",
            vec!["apply", &nas, "--yes", "--journal-dir", &journal],
        ),
        ("plan (no changes)", vec!["plan", &nas]),
        ("scan", vec!["scan"]),
        ("validate", vec!["validate", &nas, "--no-cleanup"]),
        ("plan (firewall)", vec!["plan", &fw]),
        (
            "firewall simulate",
            vec![
                "firewall",
                "simulate",
                &fw,
                "--source",
                "192.168.1.50",
                "--port",
                "22",
            ],
        ),
        ("firewall matrix", vec!["firewall", "matrix", &jarvis]),
    ];
    for (what, mut args) in docs {
        args.extend(["-o", "json"]);
        let out = lab.run(&args);
        assert!(
            out.code == 0 || out.code == 1,
            "{what}: exit {}\n{}",
            out.code,
            out.stderr
        );
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{what}: stdout is not one JSON document ({e}): {:?}",
                out.stdout
            )
        });
        assert!(
            v.get("formatVersion")
                .is_some_and(serde_json::Value::is_u64),
            "{what}: no formatVersion"
        );
        let mut bad = Vec::new();
        bad_keys(&v, "", &mut bad);
        assert!(bad.is_empty(), "{what}: keys not in camelCase: {bad:?}");
    }
}

/// A standalone simulator prints what to paste to use it, and reads the secret from
/// its credentials file in that line instead of printing it.
#[test]
fn standalone_sim_prints_export_lines_without_the_secret() {
    use std::io::{BufRead, BufReader};
    let lab = Lab::new();
    let state = lab.path().join("simstate");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("labwright"))
        .args(["sim", "--listen", "127.0.0.1:0", "--sim-state"])
        .arg(&state)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sim starts");
    let mut banner = String::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    for var in [
        "LABWRIGHT_PVE_URL=",
        "LABWRIGHT_PVE_TOKEN_ID=",
        "LABWRIGHT_PVE_FINGERPRINT=",
        "LABWRIGHT_PVE_TOKEN_SECRET=\"$(",
    ] {
        assert!(banner.contains(&format!("export {var}")), "{banner}");
    }
    let creds: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("credentials.json")).expect("credentials"),
    )
    .expect("credentials JSON");
    let secret = creds["token_secret"].as_str().expect("secret");
    assert!(!secret.is_empty());
    assert!(
        !banner.contains(secret),
        "the banner printed the token secret"
    );
}

/// Connection failures say it once: a refused token gets a hint and no doubled
/// "caused by"; an untrusted certificate is one error, not a log line per retry.
#[test]
fn connection_failures_are_said_once_with_what_to_check() {
    let mut lab = Lab::new();
    let sim = common::SimProcess::start(lab.path(), 0.01);
    lab.target = common::Target::Env {
        url: sim.cred("url"),
        token_id: sim.cred("token_id"),
        secret: "00000000-0000-0000-0000-000000000000".into(),
        fingerprint: sim.cred("fingerprint"),
    };
    let out = lab.run(&["scan"]);
    out.expect_code(1, "wrong secret");
    assert!(out.stderr.contains("HTTP 401"), "{}", out.stderr);
    assert!(
        out.stderr.contains("check its id and secret"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("Authentication failed").count(),
        1,
        "{}",
        out.stderr
    );
    // No pinned fingerprint and a self-signed certificate: refused, said once.
    lab.target = common::Target::Env {
        url: sim.cred("url"),
        token_id: sim.cred("token_id"),
        secret: sim.cred("token_secret"),
        fingerprint: String::new(),
    };
    let out = lab.run(&["scan"]);
    out.expect_code(1, "untrusted certificate");
    assert!(!out.stderr.contains("ERROR"), "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("UnknownIssuer").count(),
        1,
        "{}",
        out.stderr
    );
}

/// `labwright sim -v` logs one line per request; `--target env` trusts the node's CA
/// file (`LABWRIGHT_PVE_CA_FILE`) without a pinned fingerprint; a second simulator on
/// a busy address says how to pick another.
#[test]
fn sim_logs_requests_and_env_target_takes_a_ca_file() {
    let lab = Lab::new();
    let state = lab.path().join("simv");
    let log = lab.path().join("sim.log");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("labwright"))
        .args(["sim", "-v", "--listen", "127.0.0.1:0", "--sim-state"])
        .arg(&state)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("sim starts");
    let creds_path = state.join("credentials.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let creds: serde_json::Value = loop {
        if let Some(v) = std::fs::read_to_string(&creds_path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .filter(|v| v["url"].is_string())
        {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no credentials");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let s = |k: &str| creds[k].as_str().unwrap_or_default().to_string();
    let mut scan = lab.bare();
    scan.args(["--target", "env", "scan", "-o", "json"])
        .env("LABWRIGHT_PVE_URL", s("url"))
        .env("LABWRIGHT_PVE_TOKEN_ID", s("token_id"))
        .env("LABWRIGHT_PVE_TOKEN_SECRET", s("token_secret"))
        .env("LABWRIGHT_PVE_CA_FILE", state.join("pve-root-ca.pem"))
        .env_remove("LABWRIGHT_PVE_FINGERPRINT");
    let out = common::run(scan);
    // A second simulator on the same address.
    let addr = s("url")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let busy = common::run({
        let mut c = lab.bare();
        c.args(["sim", "--listen", &addr, "--sim-state"])
            .arg(lab.path().join("other"));
        c
    });
    let _ = child.kill();
    let _ = child.wait();
    out.expect_code(0, "scan through the CA file");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("GET /api2/json/cluster/resources →"),
        "no request line in the sim log:\n{text}"
    );
    assert_ne!(busy.code, 0);
    assert!(
        busy.stderr.contains("--listen 127.0.0.1:0"),
        "{}",
        busy.stderr
    );
}

/// Help of offline commands leaves the node flags out, however it is asked for.
#[test]
fn offline_help_has_no_node_flags() {
    let lab = Lab::new();
    for args in [
        vec!["check", "--help"],
        vec!["--output", "json", "check", "--help"],
        vec!["help", "schema"],
        vec!["completions", "-h"],
    ] {
        let out = common::run({
            let mut c = lab.bare();
            c.args(&args);
            c
        });
        out.expect_code(0, &format!("{args:?}"));
        assert!(
            out.stdout.contains("Usage: labwright"),
            "{args:?}: {}",
            out.stdout
        );
        assert!(!out.stdout.contains("--target"), "{args:?}: {}", out.stdout);
    }
    let out = common::run({
        let mut c = lab.bare();
        c.args(["plan", "--help"]);
        c
    });
    assert!(out.stdout.contains("--target"));
}
