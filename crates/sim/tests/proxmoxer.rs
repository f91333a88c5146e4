//! A third-party client works against the simulator unchanged: Python `proxmoxer`.
//! Skipped (with a message) only when python3 is absent; proxmoxer is pip-installed into
//! a venv under the target folder when missing.
#![allow(clippy::unwrap_used, clippy::print_stderr)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn venv_python() -> Option<PathBuf> {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED: python3 is not installed; the proxmoxer compatibility test needs it");
        return None;
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("proxmoxer-venv");
    let py = venv.join("bin").join("python");
    if !py.exists() {
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(st.success(), "python3 -m venv failed");
    }
    let have = Command::new(&py)
        .args(["-c", "import proxmoxer, requests"])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    if !have.success() {
        let st = Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "proxmoxer", "requests"])
            .status()
            .unwrap();
        assert!(
            st.success(),
            "pip install proxmoxer requests failed (is PyPI reachable?)"
        );
    }
    Some(py)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_lists_creates_waits_reads_and_deletes() {
    let Some(py) = tokio::task::spawn_blocking(venv_python).await.unwrap() else {
        return;
    };
    let api = common::start_default().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("pve-root-ca.pem");
    std::fs::write(&ca, api.sim.ca_pem()).unwrap();
    let token = api.sim.token_id();
    let (user, name) = token.split_once('!').unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/proxmoxer_roundtrip.py");
    let out = tokio::process::Command::new(&py)
        .arg(&script)
        .arg("localhost")
        .arg(api.sim.addr().port().to_string())
        .arg(user)
        .arg(name)
        .arg(api.sim.token_secret())
        .arg(&ca)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "proxmoxer script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("proxmoxer round trip OK"), "{stdout}");
}
