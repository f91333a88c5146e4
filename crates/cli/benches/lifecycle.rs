//! Benchmarks of the whole `labwright` process, printed as a Markdown table.
//!
//!   cargo bench -p labwright --bench lifecycle            # all rows
//!   LW_BENCH_QUICK=1 cargo bench -p labwright --bench lifecycle   # fewer runs
//!   LW_BENCH_NO_PEERS=1 …                                 # without the peer rows
//!   LW_BENCH_ONLY=check,plan,report,scan,growth,apply …    # only those groups
//!
//! Rows: `check` of the reference spec; plan computation alone for 1000 VMs (no
//! network); scan + plan of the simulator's `large` scenario at 20 ms latency and 3
//! workers, against the lower bound (requests × latency ÷ workers), with peak memory,
//! next to a plain proxmoxer script and Ansible's `community.proxmox.proxmox_vm_info`
//! reading the same inventory; how scan + plan grows with the inventory (100 / 1000 /
//! 5000 VMs); and apply of 50 new VMs on a fresh simulator next to a sequential
//! proxmoxer script making the same VMs. The peers are installed from PyPI into venvs
//! under the target folder on first use; the token reaches them through the
//! environment only.
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
    start_sim_with(
        &[
            "--scenario",
            "large",
            "--nodes",
            &nodes.to_string(),
            "--vms",
            &vms.to_string(),
        ],
        latency_ms,
    )
}

/// Starts `labwright sim` with `scenario` flags, `latency_ms` and 3 workers, in a
/// fresh state folder, and waits until it serves.
fn start_sim_with(scenario: &[&str], latency_ms: u64) -> Sim {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = Command::new(BIN)
        .arg("sim")
        .args(scenario)
        .args(["--latency-ms", &latency_ms.to_string(), "--workers", "3"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--sim-state")
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

/// A venv under the target folder (created once) in which `python -c check` succeeds,
/// `packages` being installed from PyPI first when it does not.
fn venv_python(name: &str, check: &str, packages: &[&str]) -> Result<PathBuf, String> {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
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
        .args(["-c", check])
        .stderr(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !have.success() {
        eprintln!("bench: pip install {} (once)", packages.join(" "));
        let ok = Command::new(&py)
            .args(["-m", "pip", "install", "--quiet"])
            .args(packages)
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err(format!("pip install {} failed", packages.join(" ")));
        }
    }
    Ok(py)
}

/// A venv with proxmoxer, for the peer rows.
fn proxmoxer_python() -> Result<PathBuf, String> {
    venv_python(
        "bench-proxmoxer-venv",
        "import proxmoxer, requests",
        &["proxmoxer", "requests"],
    )
}

/// The simulator's host and port, from its URL.
fn host_port(creds: &serde_json::Value) -> Result<(String, String), String> {
    let url = creds["url"].as_str().unwrap_or_default();
    let hostport = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default();
    let (host, port) = hostport.rsplit_once(':').ok_or("bad url")?;
    Ok((host.to_string(), port.to_string()))
}

/// The `labwright --target env` variables for the simulator (the secret goes through
/// the environment only).
fn lw_env<'a>(cmd: &'a mut Command, c: &serde_json::Value) -> &'a mut Command {
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
        .env("NO_COLOR", "1")
}

/// The proxmoxer scripts' variables (`PX_*`; the secret goes through the environment
/// only).
fn px_env<'a>(cmd: &'a mut Command, c: &serde_json::Value) -> Result<&'a mut Command, String> {
    let (host, port) = host_port(c)?;
    Ok(cmd
        .env("PX_HOST", host)
        .env("PX_PORT", port)
        .env("PX_TOKEN_ID", c["token_id"].as_str().unwrap_or_default())
        .env("PX_SECRET", c["token_secret"].as_str().unwrap_or_default()))
}

/// The last line of a failed process's stderr (or stdout).
fn last_line(out: &str, err: &str) -> String {
    err.lines()
        .chain(out.lines())
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("failed")
        .chars()
        .take(200)
        .collect()
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
fn proxmoxer_read(creds: &serde_json::Value) -> Result<(f64, u64), String> {
    let py = proxmoxer_python()?;
    let out = px_env(Command::new(py).args(["-c", PROXMOXER_SCRIPT]), creds)?
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(last_line(&text, &String::from_utf8_lossy(&out.stderr)));
    }
    let mut it = text.split_whitespace();
    let secs = it.next().and_then(|v| v.parse().ok()).ok_or("no timing")?;
    let n = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((secs, n))
}

/// A venv with the `ansible` PyPI package (ansible-core plus the bundled collections,
/// community.proxmox among them: Galaxy is not needed) and proxmoxer, which the
/// module imports. Returns the venv's `bin` folder and the versions in use.
fn ansible_venv() -> Result<(PathBuf, String), String> {
    let py = venv_python(
        "bench-ansible-venv",
        "import ansible, proxmoxer, requests, ansible_collections.community.proxmox",
        &["ansible", "ansible-core", "proxmoxer", "requests"],
    )?;
    let out = Command::new(&py)
        .args([
            "-c",
            r#"
import json, os, importlib.metadata as m
import ansible_collections.community.proxmox as c
man = json.load(open(os.path.join(list(c.__path__)[0], "MANIFEST.json")))
print(f"community.proxmox {man['collection_info']['version']} from PyPI `ansible` {m.version('ansible')} (ansible-core {m.version('ansible-core')}, proxmoxer {m.version('proxmoxer')})")
"#,
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err("community.proxmox is not in the installed ansible package".into());
    }
    let versions = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let bin = py.parent().ok_or("venv has no bin")?.to_path_buf();
    Ok((bin, versions))
}

/// The playbook a user would write: every VM with its configuration, through the
/// collection's info module. Connection values and the token come from the
/// environment (`lookup('env')`), never from the command line.
const ANSIBLE_PLAYBOOK: &str = r#"- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: read every VM with its configuration
      community.proxmox.proxmox_vm_info:
        api_host: "{{ lookup('env', 'PX_HOST') }}"
        api_port: "{{ lookup('env', 'PX_PORT') | int }}"
        api_user: "{{ lookup('env', 'PX_USER') }}"
        api_token_id: "{{ lookup('env', 'PX_TOKEN') }}"
        api_token_secret: "{{ lookup('env', 'PX_SECRET') }}"
        validate_certs: false
        config: current
      register: inventory
    - name: count what was read
      ansible.builtin.debug:
        msg: "vms={{ inventory.proxmox_vms | length }} configs={{ inventory.proxmox_vms | selectattr('config', 'defined') | list | length }}"
"#;

/// One `ansible-playbook` run against the simulator: (wall seconds, VMs, configs).
fn ansible_read(bin: &Path, creds: &serde_json::Value) -> Result<(f64, u64, u64), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let pb = tmp.path().join("inventory.yml");
    std::fs::write(&pb, ANSIBLE_PLAYBOOK).map_err(|e| e.to_string())?;
    let token_id = creds["token_id"].as_str().unwrap_or_default();
    let (user, token) = token_id.split_once('!').ok_or("bad token id")?;
    let mut cmd = Command::new(bin.join("ansible-playbook"));
    cmd.args(["-i", "localhost,"])
        .arg(&pb)
        .current_dir(tmp.path())
        .env("PX_USER", user)
        .env("PX_TOKEN", token)
        // Nothing from the user's ~/.ansible or an ansible.cfg: only the bundled
        // collections.
        .env("ANSIBLE_HOME", tmp.path().join("home"))
        .env("ANSIBLE_LOCAL_TEMP", tmp.path().join("tmp"))
        .env("ANSIBLE_COLLECTIONS_PATH", tmp.path().join("collections"))
        .env("ANSIBLE_CONFIG", tmp.path().join("none.cfg"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCALHOST_WARNING", "False")
        .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "False");
    px_env(&mut cmd, creds)?;
    let (t, _, out, err, code) = run_measured(&mut cmd);
    if code != 0 {
        return Err(format!(
            "ansible-playbook exited {code}: {}",
            last_line(&out, &err)
        ));
    }
    let count = |key: &str| {
        out.split(key)
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let vms = count("vms=").ok_or("no VM count in the playbook output")?;
    let configs = count("configs=").unwrap_or(0);
    Ok((t.as_secs_f64(), vms, configs))
}

struct Row {
    name: String,
    value: String,
    detail: String,
}

/// The peer rows of the large inventory: proxmoxer and Ansible, `runs` each.
fn read_peer_rows(
    c: &serde_json::Value,
    nodes: u64,
    runs: usize,
    lw: f64,
    requests: u64,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut times = Vec::new();
    let mut read = 0;
    let mut error = None;
    for _ in 0..runs {
        match proxmoxer_read(c) {
            Ok((secs, n)) => {
                times.push(secs);
                read = n;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let (value, detail) = match error {
        Some(e) => (String::new(), format!("not measured: {e}")),
        None => {
            let med = median(times);
            (
                format!("{med:.2} s"),
                format!(
                    "sequential per-VM config reads ({read}); **labwright {:.1}× faster**; median of {runs}",
                    med / lw
                ),
            )
        }
    };
    rows.push(Row {
        name: "same inventory read by a plain proxmoxer script (peer)".into(),
        value,
        detail,
    });

    let (value, detail) = match ansible_venv() {
        Err(e) => (String::new(), format!("not measured: {e}")),
        Ok((bin, versions)) => {
            let mut times = Vec::new();
            let mut counts = (0, 0);
            let mut error = None;
            for _ in 0..runs {
                match ansible_read(&bin, c) {
                    Ok((t, vms, configs)) => {
                        times.push(t);
                        counts = (vms, configs);
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            match error {
                Some(e) => (String::new(), format!("not measured: {e}")),
                None => {
                    let med = median(times);
                    (
                        format!("{med:.2} s"),
                        format!(
                            "{versions}; `ansible-playbook` wall time (localhost, connection local); the module reads `/version`, `/cluster/resources`, each node's `qemu` list, then `GET …/qemu/{{vmid}}/config?current=1` per VM, one request at a time ({} VMs, {} configs: {} requests; labwright {requests}, 3 at once); **labwright {:.1}× faster**; median of {runs}",
                            counts.0,
                            counts.1,
                            2 + nodes + counts.0,
                            med / lw
                        ),
                    )
                }
            }
        }
    };
    rows.push(Row {
        name: "same inventory read by Ansible's `community.proxmox.proxmox_vm_info` with `config: current` (peer)".into(),
        value,
        detail,
    });
    rows
}

fn scan_plan_row(vms: u32, latency: u64, runs: usize, peer_runs: usize) -> Vec<Row> {
    let sim = start_sim(8, vms, latency);
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = &sim.creds;
    let mut inv = Command::new(BIN);
    inv.args(["scan", "--inventory-only", "-o", "json", "--target", "env"]);
    lw_env(&mut inv, c);
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
        let (t, kib, _out, err, code) = run_measured(lw_env(
            Command::new(BIN)
                .args(["plan", "-v", "-o", "json", "--target", "env"])
                .arg(&spec),
            c,
        ));
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
    let bound = requests as f64 * latency as f64 / 1000.0 / 3.0;
    let ratio = if bound > 0.0 { med / bound } else { 0.0 };
    let mut rows = vec![Row {
        name: format!("scan + plan, large: 8 nodes / {vms} VMs, {latency} ms latency, 3 workers"),
        value: format!("{:.2} s", med),
        detail: format!(
            "{requests} requests; lower bound {requests} × {latency} ms ÷ 3 = {bound:.2} s; ratio {ratio:.2}×; peak RSS {:.1} MiB; median of {runs}",
            peak as f64 / 1024.0
        ),
    }];
    if peer_runs > 0 {
        rows.extend(read_peer_rows(c, 8, peer_runs, med, requests));
    }
    rows
}

/// `labwright report` of the 1000-VM spec with a saved plan creating every guest
/// (the plan of an empty node: the most actions that inventory can have): the whole
/// process, and the rendering alone as the command logs it.
fn report_row(runs: usize) -> Row {
    use labwright_engine::observed::Observed;
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = large_spec(1000, tmp.path(), &Default::default());
    let loaded = labwright_spec::load_file(&spec, &|_| None).expect("spec loads");
    let empty = Observed {
        node: "pve1".into(),
        pve_version: None,
        vms: BTreeMap::new(),
        storages: Vec::new(),
        backup_jobs: BTreeMap::new(),
        network: Some(labwright_engine::bridge::ObservedNetwork::with_bridges([
            "vmbr0",
        ])),
        storage: None,
        pci: None,
        requests: 0,
    };
    let plan = labwright_engine::plan(&loaded.spec, &empty);
    let plan_file = tmp.path().join("plan.json");
    std::fs::write(&plan_file, serde_json::to_string(&plan).expect("plan json")).expect("write");
    let page = tmp.path().join("report.html");
    let (mut wall, mut render) = (Vec::new(), Vec::new());
    let mut peak = 0;
    for _ in 0..runs {
        let (t, kib, _out, err, code) = run_measured(
            Command::new(BIN)
                .args(["report", "-v", "--plan"])
                .arg(&plan_file)
                .arg("--out")
                .arg(&page)
                .arg(&spec)
                .env("NO_COLOR", "1"),
        );
        assert_eq!(code, 0, "report failed: {err}");
        if let Some(ms) = err.lines().find_map(|l| {
            let i = l.find("report rendered in ")?;
            l[i + 19..].split_whitespace().next()?.parse::<f64>().ok()
        }) {
            render.push(ms);
        }
        peak = peak.max(kib);
        wall.push(t.as_secs_f64() * 1000.0);
    }
    let size = std::fs::metadata(&page).map(|m| m.len()).unwrap_or(0);
    Row {
        name: "report, 1000 VMs: saved plan → one HTML page (whole process)".into(),
        value: format!("{:.0} ms", median(wall)),
        detail: format!(
            "{} actions; rendering alone {:.0} ms (matrix, topology SVG, HTML); page {:.1} MiB; peak RSS {:.1} MiB; median of {runs}",
            plan.actions.len(),
            median(render),
            size as f64 / 1048576.0,
            peak as f64 / 1024.0
        ),
    }
}

/// How many new VMs the apply rows create.
const APPLY_VMS: u32 = 50;
/// The simulator's `qmcreate` (holds the storage's lock) and `qmstart` durations, in
/// seconds (`crates/sim/src/api/qemu.rs`), for the apply row's lower bound.
const SIM_CREATE_SECS: f64 = 2.0;
const SIM_START_SECS: f64 = 1.5;

/// A spec of `APPLY_VMS` new, running VMs on `node` (one disk each on local-lvm).
fn apply_spec(dir: &Path, node: &str) -> PathBuf {
    let mut s = format!(
        "apiVersion: labwright/v1\nkind: Homelab\nmetadata: {{ name: bench, owner: bench }}\nnode: {{ name: {node} }}\nnetworks:\n  bridges:\n    vmbr0: {{ ports: [nic0] }}\nvms:\n"
    );
    for i in 0..APPLY_VMS {
        let vmid = 1000 + i;
        s.push_str(&format!(
            "  - {{ vmid: {vmid}, name: vm-{vmid}, cores: 1, memory: 512, disks: {{ scsi0: {{ size: 8G }} }}, nics: {{ net0: {{ bridge: vmbr0 }} }} }}\n"
        ));
    }
    let p = dir.join("apply.yaml");
    std::fs::write(&p, s).expect("write spec");
    p
}

/// What a user would write with proxmoxer to make the same VMs: for each, create it
/// (the parameters labwright's plan sends), wait for the task, start it, wait.
/// `tasks/{upid}/status` is polled every 100 ms (proxmoxer's own
/// `Tasks.blocking_status` polls every second and sleeps once more after the end).
const PROXMOXER_APPLY_SCRIPT: &str = r#"
import json, os, sys, time, urllib3
urllib3.disable_warnings()
from proxmoxer import ProxmoxAPI
host = os.environ["PX_HOST"]; port = int(os.environ["PX_PORT"])
user, token = os.environ["PX_TOKEN_ID"].split("!")
px = ProxmoxAPI(host, port=port, user=user, token_name=token,
                token_value=os.environ["PX_SECRET"], verify_ssl=False)
node = os.environ["PX_NODE"]
vms = json.load(open(os.environ["PX_VMS"]))  # [[vmid, {param: value}], ...]
def wait(upid):
    while True:
        st = px.nodes(node).tasks(upid).status.get()
        if st["status"] == "stopped":
            if st.get("exitstatus") != "OK":
                sys.exit(f"task {upid} failed: {st.get('exitstatus')}")
            return
        time.sleep(0.1)
t = time.time()
for vmid, params in vms:
    wait(px.nodes(node).qemu.post(vmid=vmid, **params))
    wait(px.nodes(node).qemu(vmid).status.start.post())
print(f"{time.time() - t:.3f} {len(vms)}")
"#;

/// `labwright plan --detailed-exitcode` of `spec`: 0 once the node matches it.
fn plan_exit(spec: &Path, c: &serde_json::Value) -> i32 {
    let out = lw_env(
        Command::new(BIN)
            .args(["plan", "--detailed-exitcode", "-q", "--target", "env"])
            .arg(spec),
        c,
    )
    .output()
    .expect("plan");
    out.status.code().unwrap_or(-1)
}

/// One `labwright apply` of the spec on a fresh simulator: (wall seconds, what it did).
fn apply_labwright() -> (f64, String) {
    let sim = start_sim_with(&["--scenario", "fresh"], 20);
    let c = &sim.creds;
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = apply_spec(tmp.path(), c["node"].as_str().unwrap_or("pve1"));
    let (t, _, out, err, code) = run_measured(
        lw_env(
            Command::new(BIN)
                .args(["apply", "--yes", "-o", "json", "--target", "env"])
                .arg(&spec),
            c,
        )
        .current_dir(tmp.path()),
    );
    assert_eq!(code, 0, "apply failed: {err}");
    assert_eq!(plan_exit(&spec, c), 0, "apply left changes");
    let report: serde_json::Value = serde_json::from_str(&out).expect("apply report json");
    let done: Vec<&str> = report["done"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    let n = |suffix: &str| done.iter().filter(|d| d.ends_with(suffix)).count();
    (
        t.as_secs_f64(),
        format!(
            "{} actions ({} creates, {} starts)",
            done.len(),
            n("-create"),
            n("-start")
        ),
    )
}

/// One run of the sequential proxmoxer script on a fresh simulator, with the create
/// parameters of labwright's plan for the same spec (wall seconds of the process).
fn apply_proxmoxer() -> Result<f64, String> {
    let py = proxmoxer_python()?;
    let sim = start_sim_with(&["--scenario", "fresh"], 20);
    let c = &sim.creds;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let node = c["node"].as_str().unwrap_or("pve1");
    let spec = apply_spec(tmp.path(), node);
    let out = lw_env(
        Command::new(BIN)
            .args(["plan", "-o", "json", "--target", "env"])
            .arg(&spec),
        c,
    )
    .output()
    .map_err(|e| e.to_string())?;
    let plan: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("plan json: {e}"))?;
    let mut vms = Vec::new();
    let mut starts = 0;
    for a in plan["actions"].as_array().into_iter().flatten() {
        match a["op"]["op"].as_str() {
            Some("create-vm") => {
                let params: serde_json::Map<String, serde_json::Value> = a["op"]["params"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|kv| Some((kv[0].as_str()?.to_string(), kv[1].clone())))
                    .collect();
                vms.push(serde_json::json!([a["op"]["vmid"], params]));
            }
            Some("start-vm") => starts += 1,
            other => return Err(format!("unexpected action {other:?} in the plan")),
        }
    }
    if vms.len() != APPLY_VMS as usize || starts != vms.len() {
        return Err(format!(
            "plan has {} creates and {starts} starts",
            vms.len()
        ));
    }
    let list = tmp.path().join("vms.json");
    std::fs::write(&list, serde_json::Value::Array(vms).to_string()).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(py);
    cmd.args(["-c", PROXMOXER_APPLY_SCRIPT])
        .env("PX_NODE", node)
        .env("PX_VMS", &list);
    px_env(&mut cmd, c)?;
    let (t, _, out, err, code) = run_measured(&mut cmd);
    if code != 0 {
        return Err(last_line(&out, &err));
    }
    // The same end state as labwright's apply: nothing left to do for the spec.
    match plan_exit(&spec, c) {
        0 => Ok(t.as_secs_f64()),
        n => Err(format!(
            "the script's VMs differ from the spec (plan exit {n})"
        )),
    }
}

/// apply of `APPLY_VMS` new running VMs, against the sequential proxmoxer script,
/// alternating, each run on its own fresh simulator.
fn apply_rows(runs: usize, with_peer: bool) -> Vec<Row> {
    let mut lw = Vec::new();
    let mut px = Vec::new();
    let mut actions = String::new();
    let mut error = None;
    for _ in 0..runs {
        let (t, a) = apply_labwright();
        lw.push(t);
        actions = a;
        if with_peer && error.is_none() {
            match apply_proxmoxer() {
                Ok(t) => px.push(t),
                Err(e) => error = Some(e),
            }
        }
    }
    let lw_med = median(lw);
    let n = f64::from(APPLY_VMS);
    let bound = n * SIM_CREATE_SECS + SIM_START_SECS;
    let mut rows = vec![Row {
        name: format!(
            "apply, fresh node: {APPLY_VMS} new running VMs (create + start), 20 ms latency, 3 workers"
        ),
        value: format!("{lw_med:.2} s"),
        detail: format!(
            "{actions}, 3 in flight, creates one at a time on local-lvm; lower bound {APPLY_VMS} × {SIM_CREATE_SECS:.1} s create (serialised by the storage lock) + {SIM_START_SECS:.1} s last start = {bound:.1} s; ratio {:.2}×; median of {runs}",
            lw_med / bound
        ),
    }];
    if with_peer {
        let (value, detail) = match error {
            Some(e) => (String::new(), format!("not measured: {e}")),
            None => {
                let med = median(px);
                (
                    format!("{med:.2} s"),
                    format!(
                        "per VM: `POST nodes/{{node}}/qemu` with labwright's parameters, poll `tasks/{{upid}}/status` every 100 ms, `POST …/status/start`, poll; lower bound {:.1} s; **labwright {:.2}× faster**; median of {runs}",
                        n * (SIM_CREATE_SECS + SIM_START_SECS),
                        med / lw_med
                    ),
                )
            }
        };
        rows.push(Row {
            name: format!(
                "same {APPLY_VMS} VMs by a sequential proxmoxer script (peer), fresh simulator, same settings"
            ),
            value,
            detail,
        });
    }
    rows
}

fn main() {
    let quick = std::env::var_os("LW_BENCH_QUICK").is_some();
    let peers = std::env::var_os("LW_BENCH_NO_PEERS").is_none();
    // LW_BENCH_ONLY=check,plan,scan,growth,apply runs only those groups of rows.
    let only_list = std::env::var("LW_BENCH_ONLY").unwrap_or_default();
    let only =
        |group: &str| only_list.is_empty() || only_list.split(',').any(|g| g.trim() == group);
    let mut rows = Vec::new();

    // check of the full reference spec, whole process.
    if only("check") {
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
    }

    // Plan computation alone: the diff for 1000 declared, existing VMs.
    if only("plan") {
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
            network: None,
            storage: None,
            pci: None,
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

    // The HTML report of a 1000-VM plan (saved, so no node is contacted).
    if only("report") {
        rows.push(report_row(if quick { 3 } else { 10 }));
    }

    // Scan + plan against the simulator, with the peers reading the same inventory.
    if only("scan") {
        let runs = if quick { 1 } else { 3 };
        rows.extend(scan_plan_row(1000, 20, runs, if peers { runs } else { 0 }));
    }
    // How scan + plan grows with the inventory.
    if !quick && only("growth") {
        for n in [100, 5000] {
            rows.extend(scan_plan_row(n, 20, 1, 0));
        }
    }
    // apply of new VMs against a sequential script.
    if only("apply") {
        rows.extend(apply_rows(if quick { 1 } else { 3 }, peers));
    }

    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n| benchmark | result | detail |\n|---|---|---|");
    for r in rows {
        let _ = writeln!(out, "| {} | {} | {} |", r.name, r.value, r.detail);
    }
}
