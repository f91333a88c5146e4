//! Audit mode through the real binary: `labwright firewall simulate|matrix --fw-dir`
//! on the firewall oracle's case folders (kept in crates/firewall/tests/oracle)
//! reproduces the verdicts Proxmox's own firewalls gave, with no spec and no node.
//! The whole tables run in the firewall crate's suite; here a sample (every fifth
//! flow of each table, plus the cases where the backends differ) goes through the
//! command line.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn oracle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../firewall/tests/oracle")
}

fn labwright(args: &[&str]) -> Output {
    let mut cmd = std::process::Command::cargo_bin("labwright").expect("binary");
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("LABWRIGHT_PVE_URL")
        .env_remove("LABWRIGHT_TARGET")
        .output()
        .expect("run labwright")
}

struct Flow {
    backend: &'static str,
    case: String,
    iface: Option<String>,
    source: String,
    proto: String,
    port: String,
    verdict: String,
}

fn table(backend: &'static str) -> Vec<Flow> {
    let text = std::fs::read_to_string(oracle().join(backend).join("verdicts.tsv")).expect("table");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<String> = l.split('\t').map(str::to_string).collect();
            let get = |i: usize| f.get(i).cloned().unwrap_or_default();
            if backend == "iptables" {
                Flow {
                    backend,
                    case: get(0),
                    iface: Some(get(1)),
                    source: get(2),
                    proto: get(3),
                    port: get(4),
                    verdict: get(5),
                }
            } else {
                Flow {
                    backend,
                    case: get(0),
                    iface: None,
                    source: get(1),
                    proto: get(2),
                    port: get(3),
                    verdict: get(4),
                }
            }
        })
        .collect()
}

fn simulate(f: &Flow) -> (Output, Value) {
    let dir = oracle().join(f.backend).join(&f.case);
    let dir = dir.to_string_lossy().to_string();
    let mut args = vec![
        "firewall",
        "simulate",
        "--fw-dir",
        &dir,
        "--node-address",
        "172.16.1.2/24",
        "--backend",
        f.backend,
        "--source",
        &f.source,
        "--proto",
        &f.proto,
        "-o",
        "json",
    ];
    if f.port != "-" {
        args.extend(["--port", &f.port]);
    }
    if let Some(i) = &f.iface {
        args.extend(["--iface", i]);
    }
    let out = labwright(&args);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{} {}: not JSON ({e}): {}\n{}",
            f.backend,
            f.case,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

#[test]
fn simulate_fw_dir_reproduces_the_oracle_verdicts() {
    let differ = [
        "c17_blacklist",
        "c19_ipset_case",
        "c23_sport",
        "c08_drop22_before_mgmt",
    ];
    let mut checked = 0;
    let mut bad = Vec::new();
    for backend in ["iptables", "nftables"] {
        for (i, f) in table(backend).into_iter().enumerate() {
            if i % 5 != 0 && !differ.contains(&f.case.as_str()) {
                continue;
            }
            let (out, json) = simulate(&f);
            assert!(
                out.status.success(),
                "{}: {}",
                f.case,
                String::from_utf8_lossy(&out.stderr)
            );
            let results = json["results"].as_array().cloned().unwrap_or_default();
            assert!(!results.is_empty(), "{}: no results", f.case);
            for r in &results {
                assert_eq!(r["backend"], backend, "{}", f.case);
                if r["verdict"] != f.verdict.as_str() {
                    bad.push(format!(
                        "{backend}/{} {} {}/{}: want {}, got {} ({})",
                        f.case, f.source, f.proto, f.port, f.verdict, r["verdict"], r["decidedBy"]
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 120, "only {checked} flows sampled");
    assert!(
        bad.is_empty(),
        "{} disagree:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// The deciding rule and the backend are in the JSON; without --backend the one
/// host.fw declares is used, and with no host.fw both are evaluated.
#[test]
fn json_names_backend_and_deciding_rule() {
    let dir = oracle().join("nftables/c11_cluster_macro_order");
    let dir = dir.to_string_lossy().to_string();
    let out = labwright(&[
        "firewall",
        "simulate",
        "--fw-dir",
        &dir,
        "--node-address",
        "172.16.1.2/24",
        "--source",
        "100.101.102.103",
        "--port",
        "22",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let r = &v["results"][0];
    // nftables accepts management first, then the host DROP, then the cluster SSH accept
    assert_eq!(r["backend"], "nftables");
    assert_eq!(r["verdict"], "DROP");
    assert_eq!(
        r["rule"],
        "IN DROP -source 100.101.102.103 -p tcp -dport 22"
    );
    assert!(
        r["decidedBy"]
            .as_str()
            .is_some_and(|s| s.contains("rule #0")),
        "{r}"
    );

    let dir = oracle().join("iptables/c13-blacklist");
    let dir = dir.to_string_lossy().to_string();
    let out = labwright(&[
        "firewall",
        "simulate",
        "--fw-dir",
        &dir,
        "--node-address",
        "172.16.1.2/24",
        "--source",
        "100.101.102.103",
        "--port",
        "22",
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let got: Vec<(String, String)> = v["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["backend"].as_str().unwrap_or("").to_string(),
                r["verdict"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    // no host.fw: both backends; only pve-firewall applies the blacklist
    assert_eq!(
        got,
        vec![
            ("iptables".into(), "DROP".into()),
            ("nftables".into(), "ACCEPT".into())
        ]
    );
}

#[test]
fn matrix_fw_dir_covers_every_source() {
    let dir = oracle().join("nftables/c19_ipset_case");
    let dir = dir.to_string_lossy().to_string();
    let out = labwright(&[
        "firewall",
        "matrix",
        "--fw-dir",
        &dir,
        "--node-address",
        "172.16.1.2/24",
        "--port",
        "22",
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let m = &v["matrices"][0];
    assert_eq!(m["backend"], "nftables");
    let rows = m["rows"].as_array().cloned().unwrap_or_default();
    let find = |src: &str| {
        rows.iter()
            .find(|r| r["source"] == src)
            .map(|r| r["cells"][0]["verdict"].clone())
    };
    // `[IPSET Management]` is not the management set on nftables: only the LAN gets in
    assert_eq!(
        find("172.16.1.0/24"),
        Some(Value::from("ACCEPT")),
        "{rows:#?}"
    );
    assert!(
        rows.iter()
            .filter(|r| r["source"] != "172.16.1.0/24" && r["source"] != "127.0.0.0/8")
            .all(|r| r["cells"][0]["verdict"] == "DROP"),
        "{rows:#?}"
    );
    // and the table form says the same
    let out = labwright(&[
        "firewall",
        "matrix",
        "--fw-dir",
        &dir,
        "--node-address",
        "172.16.1.2/24",
        "--source",
        "203.0.113.9",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("203.0.113.9/32") && text.contains("DROP  cluster policy DROP"),
        "{text}"
    );
}

#[test]
fn audit_errors_are_clear() {
    let tmp = tempfile::tempdir().expect("tmp");
    let empty = tmp.path().to_string_lossy().to_string();
    let out = labwright(&[
        "firewall", "simulate", "--fw-dir", &empty, "--source", "10.0.0.1", "--port", "22",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no cluster.fw, host.fw or <vmid>.fw here"),
        "{err}"
    );

    // a file proxmox-firewall refuses: exit 1, and the line it stops at
    std::fs::write(
        tmp.path().join("cluster.fw"),
        "[OPTIONS]\nenable: 1\n\n[GROUP web]\nIN ACCEPT -p tcp -dport 80\n",
    )
    .expect("write");
    let out = labwright(&[
        "firewall",
        "simulate",
        "--fw-dir",
        &empty,
        "--backend",
        "nftables",
        "--source",
        "10.0.0.1",
        "--port",
        "80",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("refused: cluster.fw:4: unknown section '[GROUP web]'"),
        "{text}"
    );

    // flags that only make sense with --fw-dir are refused without it
    let out = labwright(&[
        "firewall",
        "matrix",
        "specs/x.yaml",
        "--backend",
        "nftables",
    ]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = labwright(&["firewall", "matrix", "specs/x.yaml", "--fw-dir", &empty]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("either a SPEC or --fw-dir"));
}
