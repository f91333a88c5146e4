//! Benchmarks of the whole `labwright` process, printed as a Markdown table.
//!
//!   cargo bench -p labwright --bench lifecycle            # all rows
//!   LW_BENCH_QUICK=1 cargo bench -p labwright --bench lifecycle   # fewer runs
//!
//! Rows: `check` of the reference spec; plan computation alone for 1000 VMs (no
//! network); scan + plan of the simulator's `large` scenario at 20 ms latency and 3
//! workers, against the lower bound (requests × latency ÷ workers), with peak memory;
//! and how scan + plan grows with the inventory (100 / 1000 / 5000 VMs).
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_labwright");

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

/// Runs a command to completion, sampling its peak RSS (VmHWM) from /proc.
fn run_measured(cmd: &mut Command) -> (Duration, u64, String, String, i32) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut peak_kib = 0u64;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut o) = stdout {
            let _ = std::io::Read::read_to_string(&mut o, &mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut o) = stderr {
            let _ = std::io::Read::read_to_string(&mut o, &mut s);
        }
        s
    });
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in status.lines() {
                if let Some(v) = line.strip_prefix("VmHWM:") {
                    let kib: u64 = v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0);
                    peak_kib = peak_kib.max(kib);
                }
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                let elapsed = start.elapsed();
                return (
                    elapsed,
                    peak_kib,
                    out_t.join().unwrap_or_default(),
                    err_t.join().unwrap_or_default(),
                    status.code().unwrap_or(-1),
                );
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

struct Sim {
    child: std::process::Child,
    creds: serde_json::Value,
    _dir: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18006)
}

fn start_sim(nodes: u32, vms: u32, latency_ms: u64) -> Sim {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = Command::new(BIN)
        .args([
            "sim",
            "--scenario",
            "large",
            "--nodes",
            &nodes.to_string(),
            "--vms",
            &vms.to_string(),
        ])
        .args(["--latency-ms", &latency_ms.to_string(), "--workers", "3"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--state")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start labwright sim");
    let creds_path = dir.path().join("credentials.json");
    // Owned by `Sim` at once, so its Drop kills and reaps the process on any path.
    let mut sim = Sim {
        child,
        creds: serde_json::Value::Null,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(t) = std::fs::read_to_string(&creds_path)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&t)
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            sim.creds = v;
            return sim;
        }
        assert!(Instant::now() < deadline, "simulator did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A spec declaring the large scenario's guests (`vm-<vmid>`, VMIDs from 100), with
/// the power states the node reports (`stopped` lists the stopped VMIDs), so the
/// benchmark measures a lab the spec describes, not one being started.
fn large_spec(vms: u32, dir: &Path, stopped: &std::collections::BTreeSet<u64>) -> PathBuf {
    let roles: BTreeMap<u32, &str> = [
        (100, "edge-gateway"),
        (150, "firewall-router"),
        (200, "monitoring"),
        (300, "app-host"),
        (400, "home-assistant"),
        (700, "pbs"),
    ]
    .into();
    let mut s = String::from(
        "apiVersion: labwright/v1\nkind: Homelab\nmetadata: { name: bench, owner: bench }\nnode: { name: pve1 }\nnetworks:\n  bridges:\n    vmbr0: { ports: [nic0] }\nvms:\n",
    );
    for i in 0..vms {
        let vmid = 100 + i;
        let mut role = roles
            .get(&vmid)
            .map(|r| format!(", role: {r}"))
            .unwrap_or_default();
        if stopped.contains(&u64::from(vmid)) {
            role.push_str(", power: stopped");
        }
        s.push_str(&format!(
            "  - {{ vmid: {vmid}, name: vm-{vmid}{role}, cores: 1, memory: 512, disks: {{ scsi0: {{ size: 16G }} }}, nics: {{ net0: {{ bridge: vmbr0 }} }} }}\n"
        ));
    }
    let p = dir.join(format!("large-{vms}.yaml"));
    std::fs::write(&p, s).expect("write spec");
    p
}

/// A venv with proxmoxer, for the peer row (created once under the target folder).
fn proxmoxer_python() -> Result<PathBuf, String> {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-proxmoxer-venv");
    let py = venv.join("bin/python");
    if !py.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("python3 -m venv failed".into());
        }
    }
    let have = Command::new(&py)
        .args(["-c", "import proxmoxer, requests"])
        .stderr(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !have.success() {
        let ok = Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "proxmoxer", "requests"])
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("pip install proxmoxer requests failed".into());
        }
    }
    Ok(py)
}

/// What a user would write with proxmoxer: list nodes, list each node's guests, read
/// every guest's config one after the other, read the backup jobs.
const PROXMOXER_SCRIPT: &str = r#"
import os, sys, time, urllib3
urllib3.disable_warnings()
from proxmoxer import ProxmoxAPI
host = os.environ["PX_HOST"]; port = int(os.environ["PX_PORT"])
user, token = os.environ["PX_TOKEN_ID"].split("!")
px = ProxmoxAPI(host, port=port, user=user, token_name=token,
                token_value=os.environ["PX_SECRET"], verify_ssl=False)
t = time.time(); n = 0
for node in px.nodes.get():
    for vm in px.nodes(node["node"]).qemu.get():
        px.nodes(node["node"]).qemu(vm["vmid"]).config.get(); n += 1
px.cluster.backup.get()
print(f"{time.time() - t:.3f} {n}")
"#;

/// Runs the proxmoxer script against the simulator: (seconds, guests read).
fn proxmoxer_row(creds: &serde_json::Value) -> Result<(f64, u64), String> {
    let py = proxmoxer_python()?;
    let url = creds["url"].as_str().unwrap_or_default();
    let hostport = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default();
    let (host, port) = hostport.rsplit_once(':').ok_or("bad url")?;
    let out = Command::new(py)
        .args(["-c", PROXMOXER_SCRIPT])
        .env("PX_HOST", host)
        .env("PX_PORT", port)
        .env(
            "PX_TOKEN_ID",
            creds["token_id"].as_str().unwrap_or_default(),
        )
        .env(
            "PX_SECRET",
            creds["token_secret"].as_str().unwrap_or_default(),
        )
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
            .to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let secs = it.next().and_then(|v| v.parse().ok()).ok_or("no timing")?;
    let n = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((secs, n))
}

struct Row {
    name: String,
    value: String,
    detail: String,
}

fn scan_plan_row(vms: u32, latency: u64, runs: usize, with_peer: bool) -> (Row, Option<Row>) {
    let sim = start_sim(8, vms, latency);
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = &sim.creds;
    let env = |cmd: &mut Command| {
        cmd.env("LABWRIGHT_PVE_URL", c["url"].as_str().unwrap_or_default())
            .env(
                "LABWRIGHT_PVE_TOKEN_ID",
                c["token_id"].as_str().unwrap_or_default(),
            )
            .env(
                "LABWRIGHT_PVE_TOKEN_SECRET",
                c["token_secret"].as_str().unwrap_or_default(),
            )
            .env(
                "LABWRIGHT_PVE_FINGERPRINT",
                c["fingerprint"].as_str().unwrap_or_default(),
            )
            .env("NO_COLOR", "1");
    };
    let mut inv = Command::new(BIN);
    inv.args(["scan", "--inventory-only", "-o", "json", "--target", "env"]);
    env(&mut inv);
    let out = inv.output().expect("inventory scan");
    let obs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("scan json");
    let stopped: std::collections::BTreeSet<u64> = obs["vms"]
        .as_object()
        .map(|m| {
            m.values()
                .filter(|v| v["status"] == "stopped")
                .filter_map(|v| v["vmid"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    let spec = large_spec(vms, tmp.path(), &stopped);
    let mut times = Vec::new();
    let mut requests = 0u64;
    let mut peak = 0u64;
    for _ in 0..runs {
        let (t, kib, _out, err, code) = run_measured(
            Command::new(BIN)
                .args(["plan", "-v", "-o", "json", "--target", "env"])
                .arg(&spec)
                .env("LABWRIGHT_PVE_URL", c["url"].as_str().unwrap_or_default())
                .env(
                    "LABWRIGHT_PVE_TOKEN_ID",
                    c["token_id"].as_str().unwrap_or_default(),
                )
                .env(
                    "LABWRIGHT_PVE_TOKEN_SECRET",
                    c["token_secret"].as_str().unwrap_or_default(),
                )
                .env(
                    "LABWRIGHT_PVE_FINGERPRINT",
                    c["fingerprint"].as_str().unwrap_or_default(),
                )
                .env("NO_COLOR", "1"),
        );
        assert_eq!(code, 0, "plan failed: {err}");
        if let Some(n) = err.lines().find_map(|l| {
            let i = l.find("guests with ")?;
            l[i + 12..].split_whitespace().next()?.parse::<u64>().ok()
        }) {
            requests = n;
        }
        peak = peak.max(kib);
        times.push(t.as_secs_f64());
    }
    let med = median(times);
    let peer = with_peer.then(|| {
        let (value, detail) = match proxmoxer_row(c) {
            Ok((secs, n)) => (
                format!("{secs:.2} s"),
                format!(
                    "sequential per-VM config reads ({n}); labwright {:.1}× faster",
                    secs / med
                ),
            ),
            Err(e) => (String::new(), format!("not measured: {e}")),
        };
        Row {
            name: "same inventory read by a plain proxmoxer script (peer)".into(),
            value,
            detail,
        }
    });
    let bound = requests as f64 * latency as f64 / 1000.0 / 3.0;
    let ratio = if bound > 0.0 { med / bound } else { 0.0 };
    (
        Row {
            name: format!(
                "scan + plan, large: 8 nodes / {vms} VMs, {latency} ms latency, 3 workers"
            ),
            value: format!("{:.2} s", med),
            detail: format!(
                "{requests} requests; lower bound {requests} × {latency} ms ÷ 3 = {bound:.2} s; ratio {ratio:.2}×; peak RSS {:.1} MiB; median of {runs}",
                peak as f64 / 1024.0
            ),
        },
        peer,
    )
}

fn main() {
    let quick = std::env::var_os("LW_BENCH_QUICK").is_some();
    let mut rows = Vec::new();

    // check of the full reference spec, whole process.
    let runs = if quick { 5 } else { 30 };
    let spec = workspace().join("specs/jarvis-homelab.desired.yaml");
    let mut times = Vec::new();
    let mut peak = 0;
    for _ in 0..runs {
        let (t, kib, _, err, code) = run_measured(
            Command::new(BIN)
                .arg("check")
                .arg(&spec)
                .env("ADMIN_PC_CIDR", "192.168.1.50/32"),
        );
        assert_eq!(code, 0, "check failed: {err}");
        times.push(t.as_secs_f64() * 1000.0);
        peak = peak.max(kib);
    }
    rows.push(Row {
        name: "check specs/jarvis-homelab.desired.yaml (whole process)".into(),
        value: format!("{:.1} ms", median(times.clone())),
        detail: format!(
            "min {:.1} ms; peak RSS {:.1} MiB; median of {runs}",
            times.iter().copied().fold(f64::MAX, f64::min),
            peak as f64 / 1024.0
        ),
    });

    // Plan computation alone: the diff for 1000 declared, existing VMs.
    {
        use labwright_engine::observed::{Observed, ObservedVm};
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = large_spec(1000, tmp.path(), &Default::default());
        let loaded = labwright_spec::load_file(&path, &|_| None).expect("spec loads");
        let want = labwright_engine::desired::desired(&loaded.spec);
        let mut vms = BTreeMap::new();
        for vm in want.vms.values() {
            let mut config: BTreeMap<String, String> = vm.config.clone();
            config.insert(
                "scsi0".into(),
                format!(
                    "local-lvm:vm-{}-disk-0,cache=none,discard=on,iothread=1,size=16G,ssd=1",
                    vm.vmid
                ),
            );
            config.insert(
                "net0".into(),
                "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1".into(),
            );
            vms.insert(
                vm.vmid,
                ObservedVm {
                    vmid: vm.vmid,
                    node: "pve1".into(),
                    name: vm.name.clone(),
                    status: "running".into(),
                    tags: vec!["lw-managed".into()],
                    lock: None,
                    template: false,
                    config: Some(config),
                    digest: Some("0".repeat(40)),
                    pending: Default::default(),
                    tool_snapshots: Vec::new(),
                },
            );
        }
        let observed = Observed {
            node: "pve1".into(),
            pve_version: None,
            vms,
            storages: Vec::new(),
            backup_jobs: BTreeMap::new(),
            requests: 0,
        };
        let iters = if quick { 3 } else { 20 };
        let mut t = Vec::new();
        let mut actions = 0;
        for _ in 0..iters {
            let s = Instant::now();
            let p = labwright_engine::plan(&loaded.spec, &observed);
            t.push(s.elapsed().as_secs_f64() * 1000.0);
            actions = p.actions.len();
        }
        rows.push(Row {
            name: "plan computation alone, 1000 VMs (no network)".into(),
            value: format!("{:.1} ms", median(t)),
            detail: format!("{actions} actions (converged inventory); median of {iters}"),
        });
    }

    // Scan + plan against the simulator.
    let runs = if quick { 1 } else { 3 };
    let (row, peer) = scan_plan_row(
        1000,
        20,
        runs,
        std::env::var_os("LW_BENCH_NO_PEERS").is_none(),
    );
    rows.push(row);
    rows.extend(peer);
    if !quick {
        for n in [100, 5000] {
            let (row, _) = scan_plan_row(n, 20, 1, false);
            rows.push(row);
        }
    }

    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n| benchmark | result | detail |\n|---|---|---|");
    for r in rows {
        let _ = writeln!(out, "| {} | {} | {} |", r.name, r.value, r.detail);
    }
}
