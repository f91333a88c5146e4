//! The chaos soak (issue 7, part 2), shared by the long soak
//! (`crates/cli/benches/soak.rs`, `cargo bench -p labwright --bench soak`) and its short
//! version in the test suite (`crates/cli/tests/soak.rs`).
//!
//! One seeded run:
//! 1. a `labwright sim` process with a fresh state folder and seeded random faults
//!    (PVE-style 500s on a path class, dropped connections, failing and slow tasks,
//!    request latency); in *drift* runs the node first converges on
//!    `specs/nas.desired.yaml` without faults and the chaos apply is of the same spec
//!    with app-host's memory raised (pre-change snapshot + update + reboot);
//! 2. `labwright apply --yes` of the spec, SIGKILLed after a seeded number of journal
//!    events plus a seeded delay (or left to finish if it ends first);
//! 3. the simulator's tasks run out, it is stopped and restarted from the same state
//!    folder without `--reset` and without faults (its certificate and token must
//!    survive; the port is new);
//! 4. `apply` again, at most 3 times, until `plan --detailed-exitcode` says 0;
//! 5. the invariants: an empty plan, `validate` passes, VMIDs exactly 100/300/400 with
//!    exactly one successful `qmcreate` each, no `qmdestroy`/`qmrollback` task, every
//!    `lw-` snapshot expired or kept (listed) by validate and every journalled one
//!    really taken, and a journal consistent with the node's task list.
//!
//! Everything random comes from the run's seed, so `LW_SOAK_SEED=N` replays a run (the
//! kill point is a journal position plus a delay, so timing can still move it a little).
#![allow(dead_code, clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_labwright");

#[path = "../common/scrub.rs"]
mod scrub;
use scrub::SCRUB;

const VMIDS: [u32; 3] = [100, 300, 400];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// SplitMix64: small, seedable, good enough to pick fault settings.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5eed_50a4_c0ff_ee00)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next_u64() % from.len() as u64) as usize]
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Fresh node, chaos apply of the nas spec (creates, starts, backup job).
    Fresh,
    /// Converged node, chaos apply of app-host's memory change (snapshot, update, reboot).
    Drift,
    /// Converged phase-0 node with two spare disks, chaos apply of phase 1: the pool,
    /// datasets and sanoid over SSH, storage entries, the backup job's move and the
    /// migrations of app-host's data (copies cut midway by faults).
    Phase1,
    /// Converged phase-0 reference lab (without phase 1's storage), chaos apply of
    /// phase 2: the bridge wave (reloads that fail), the router from its seed, the
    /// readiness gate over SSH, the guests' moves with their reboots.
    Phase2,
}

/// The fault settings of one run, all derived from its seed.
#[derive(Clone, Debug)]
pub struct Chaos {
    pub seed: u64,
    pub mode: Mode,
    pub error_rate: f64,
    pub error_class: &'static str,
    pub drop_rate: f64,
    /// Writes carried out whose reply is lost (added after the first soak: drawn from
    /// its own stream so that the other settings of a seed stay what they were).
    pub lost_reply_rate: f64,
    pub task_failure_rate: f64,
    pub slow_task_rate: f64,
    pub slow_task_factor: f64,
    pub latency_ms: u64,
    /// Kill apply once its journal holds this many entries of this run…
    pub kill_after_events: usize,
    /// …plus this delay.
    pub kill_delay_ms: u64,
    /// Right after the kill, apply once more against the still faulty node, while the
    /// killed run's tasks may still hold their VM locks.
    pub resume_under_faults: bool,
    /// Phase 1: chance that an rsync in a guest stops partway.
    pub copy_failure_rate: f64,
    /// Phase 2: chance that a network reload fails (the wave reverts).
    pub reload_failure_rate: f64,
}

impl Chaos {
    pub fn from_seed(seed: u64) -> Chaos {
        let mut r = Rng::new(seed);
        // Phase 1 runs come from their own stream, so the other settings of a seed
        // stay what they were before phase 1 existed.
        let mut p1 = Rng::new(seed ^ 0x9a5e_0001);
        // Phase 2 likewise from its own stream; it takes some seeds that were fresh or
        // drift runs before it existed.
        let mut p2 = Rng::new(seed ^ 0x9a5e_0002);
        let phase2 = p2.chance(0.3);
        let mode = match (r.chance(0.4), p1.chance(0.35)) {
            (_, true) => Mode::Phase1,
            _ if phase2 => Mode::Phase2,
            (true, false) => Mode::Drift,
            (false, false) => Mode::Fresh,
        };
        // Journal entries of an uninterrupted chaos apply: apply-start, start/done per
        // action (and the snapshot), apply-end. Fresh: 2 image downloads, and per VM
        // create, disk grow, seed (not HAOS) and start, plus the backup job.
        let events = match mode {
            Mode::Fresh => 30,
            Mode::Drift => 7,
            // 17 actions (pool, 3 datasets, sanoid, 2 entries, 2 mappings, VM update
            // and reboot, job, 2 × copy and switch) with their snapshots.
            Mode::Phase1 => 38,
            // 11 actions (seed, image, bridges, create, grow, start, gate, 2 × update
            // and reboot) with 2 snapshots.
            Mode::Phase2 => 26,
        };
        let copy_failure_rate = if mode == Mode::Phase1 {
            p1.pick(&[0.0, 0.3, 0.6, 1.0])
        } else {
            0.0
        };
        let ssh_errors =
            (mode == Mode::Phase1 && p1.chance(0.3)) || (mode == Mode::Phase2 && p2.chance(0.3));
        let reload_failure_rate = if mode == Mode::Phase2 {
            p2.pick(&[0.0, 0.0, 0.3, 0.6])
        } else {
            0.0
        };
        let mut c = Chaos {
            seed,
            mode,
            error_rate: r.pick(&[0.0, 0.03, 0.08, 0.15]),
            error_class: r.pick(&[
                "all", "read", "write", "qemu", "tasks", "status", "snapshot", "config", "/cluster",
            ]),
            drop_rate: r.pick(&[0.0, 0.02, 0.05, 0.1]),
            task_failure_rate: r.pick(&[0.0, 0.05, 0.15, 0.3]),
            slow_task_rate: r.pick(&[0.0, 0.2, 0.5]),
            slow_task_factor: r.pick(&[3.0, 10.0]),
            latency_ms: r.pick(&[0, 0, 5, 20, 50]),
            kill_after_events: r.range(1, events - 1) as usize,
            kill_delay_ms: r.range(0, 250),
            resume_under_faults: r.chance(0.3),
            lost_reply_rate: Rng::new(seed ^ 0x1057_0e91).pick(&[0.0, 0.0, 0.05, 0.15]),
            copy_failure_rate,
            reload_failure_rate,
        };
        if ssh_errors {
            c.error_class = "ssh";
        }
        c
    }

    fn sim_args(&self) -> Vec<String> {
        vec![
            "--seed".into(),
            self.seed.to_string(),
            "--latency-ms".into(),
            self.latency_ms.to_string(),
            "--fault-error-rate".into(),
            self.error_rate.to_string(),
            "--fault-error-class".into(),
            self.error_class.into(),
            "--fault-drop-rate".into(),
            self.drop_rate.to_string(),
            "--fault-lost-reply-rate".into(),
            self.lost_reply_rate.to_string(),
            "--fault-task-failure-rate".into(),
            self.task_failure_rate.to_string(),
            "--fault-slow-task-rate".into(),
            self.slow_task_rate.to_string(),
            "--fault-slow-task-factor".into(),
            self.slow_task_factor.to_string(),
            "--fault-copy-failure-rate".into(),
            self.copy_failure_rate.to_string(),
            "--fault-reload-failure-rate".into(),
            self.reload_failure_rate.to_string(),
        ]
    }
}

/// Settings of the whole soak.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// The simulator's time scale (task durations, lock waits, guest boot).
    pub time_scale: f64,
    /// A single labwright command running longer than this is a failure (a hang).
    pub cmd_timeout: Duration,
    /// Keep the folder of a failed run (state, journal, logs) for a look.
    pub keep_failed: bool,
    /// Keep every run's folder (`LW_SOAK_KEEP=1`).
    pub keep_all: bool,
    /// Print one line per run.
    pub verbose: bool,
}

impl Default for SoakConfig {
    fn default() -> Self {
        SoakConfig {
            time_scale: 0.02,
            cmd_timeout: Duration::from_secs(120),
            keep_failed: true,
            keep_all: false,
            verbose: true,
        }
    }
}

/// What one seeded run ended with.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub seed: u64,
    pub mode: Mode,
    /// The apply was SIGKILLed (rather than ending before the kill point).
    pub killed: bool,
    /// Exit code of the chaos apply when it ended on its own.
    pub chaos_exit: Option<i32>,
    /// Applies after the kill until the plan was empty (`None`: not within 3).
    pub reruns: Option<usize>,
    pub violations: Vec<String>,
    /// What the run saw on the way (failed applies, non-empty plans), for a diagnosis.
    pub notes: Vec<String>,
    pub secs: f64,
    /// Kept folder of a failed run.
    pub kept: Option<PathBuf>,
}

/// What a finished command printed.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.stdout).ok()
    }
    fn brief(&self) -> String {
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(6)..].join(" | ")
        };
        format!(
            "exit {}; stdout: {}; stderr: {}",
            self.code,
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

/// Runs a child to completion with a time limit (killed after it).
fn wait_output(mut child: Child, limit: Duration) -> Out {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read = |o: Option<std::process::ChildStdout>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut o) = o {
                let _ = std::io::Read::read_to_string(&mut o, &mut s);
            }
            s
        })
    };
    let out_t = read(stdout);
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut o) = stderr {
            let _ = std::io::Read::read_to_string(&mut o, &mut s);
        }
        s
    });
    let deadline = Instant::now() + limit;
    let code = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code().unwrap_or(-1),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break -2;
            }
        }
    };
    Out {
        code,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// A `labwright sim` process on a free loopback port.
struct Sim {
    child: Child,
    creds: Value,
}

impl Sim {
    fn start(
        dir: &Path,
        state: &Path,
        time_scale: f64,
        extra: &[String],
        n: usize,
    ) -> Result<Sim, String> {
        let creds_path = state.join("credentials.json");
        // The credentials of an earlier start would look ready at once.
        let _ = std::fs::remove_file(&creds_path);
        let log = std::fs::File::create(dir.join(format!("sim-{n}.log")))
            .map_err(|e| format!("sim log: {e}"))?;
        let mut cmd = Command::new(BIN);
        for v in SCRUB {
            cmd.env_remove(v);
        }
        let child = cmd
            .args(["sim", "--listen", "127.0.0.1:0", "--sim-state"])
            .arg(state)
            .arg("--time-scale")
            .arg(time_scale.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn labwright sim: {e}"))?;
        let mut sim = Sim {
            child,
            creds: Value::Null,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = std::fs::read_to_string(&creds_path)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                && v["url"].is_string()
            {
                sim.creds = v;
                return Ok(sim);
            }
            if let Ok(Some(status)) = sim.child.try_wait() {
                return Err(format!("labwright sim exited at start ({status})"));
            }
            if Instant::now() > deadline {
                return Err("labwright sim wrote no credentials in 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn cred(&self, k: &str) -> String {
        self.creds[k].as_str().unwrap_or_default().to_string()
    }

    /// Stops the simulator the way Ctrl-C does (it saves its state).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The simulator's saved state (`state.json`).
fn sim_state(state: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(state.join("state.json"))
        .map_err(|e| format!("read state.json: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("state.json: {e}"))
}

fn tasks(st: &Value) -> Vec<&Value> {
    st["tasks"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Waits until no task of the simulator runs (a killed client leaves its tasks
/// running on the node, as PVE does) and the state stayed the same for `quiet`: a
/// request the killed client sent may still be queued or sleeping in the simulator,
/// and start a task after the first look.
fn drain_tasks(state: &Path, limit: Duration, quiet: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut last: Option<(String, Instant)> = None;
    loop {
        let text = std::fs::read_to_string(state.join("state.json"))
            .map_err(|e| format!("read state.json: {e}"))?;
        let st: Value = serde_json::from_str(&text).map_err(|e| format!("state.json: {e}"))?;
        let running: Vec<String> = tasks(&st)
            .iter()
            .filter(|t| t["running"] == true)
            .map(|t| format!("{} {}", t["type"], t["id"]))
            .collect();
        if running.is_empty() {
            match &last {
                Some((prev, since)) if *prev == text => {
                    if since.elapsed() >= quiet {
                        return Ok(());
                    }
                }
                _ => last = Some((text, Instant::now())),
            }
        } else {
            last = None;
        }
        if Instant::now() > deadline {
            return Err(format!("tasks still running after {limit:?}: {running:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `lw-` snapshots on the node, from the simulator's state: (vmid, name).
fn lw_snapshots(st: &Value) -> BTreeSet<(u32, String)> {
    let mut out = BTreeSet::new();
    if let Some(vms) = st["vms"].as_object() {
        for (id, vm) in vms {
            let Ok(vmid) = id.parse::<u32>() else {
                continue;
            };
            if let Some(snaps) = vm["snapshots"].as_object() {
                for name in snaps.keys().filter(|n| n.starts_with("lw-")) {
                    out.insert((vmid, name.clone()));
                }
            }
        }
    }
    out
}

fn read_journal(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// One run's folder and commands.
struct Lab {
    dir: PathBuf,
    state: PathBuf,
    journal_dir: PathBuf,
    cfg: SoakConfig,
    sim_starts: usize,
    /// How long the simulator's state must stay unchanged before it counts as idle.
    quiet: Duration,
    /// Added to every apply (phase 1 needs `--allow-risk critical` for its pool).
    apply_args: Vec<String>,
}

impl Lab {
    fn journal(&self) -> Vec<Value> {
        read_journal(&self.journal_dir.join("journal.jsonl"))
    }

    fn start_sim(&mut self, extra: &[String]) -> Result<Sim, String> {
        self.sim_starts += 1;
        Sim::start(
            &self.dir,
            &self.state,
            self.cfg.time_scale,
            extra,
            self.sim_starts,
        )
    }

    fn cmd(&self, sim: &Sim, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        for v in SCRUB {
            cmd.env_remove(v);
        }
        cmd.current_dir(&self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("ADMIN_PC_CIDR", "192.168.1.50/32")
            .env("TAILSCALE_AUTHKEY", "tskey-auth-soak")
            // The simulated guest cannot run tailscale/install yet (issue 5); the
            // in-guest checks are covered by tests/bootstrap.rs.
            .env("LABWRIGHT_GUEST_CHECKS", "off")
            // A router that never comes up fails the gate in a minute, not ten.
            .env("LABWRIGHT_ROUTER_WAIT_SECS", "60")
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env("LABWRIGHT_PVE_URL", sim.cred("url"))
            .env("LABWRIGHT_PVE_TOKEN_ID", sim.cred("token_id"))
            .env("LABWRIGHT_PVE_TOKEN_SECRET", sim.cred("token_secret"))
            .env("LABWRIGHT_PVE_FINGERPRINT", sim.cred("fingerprint"))
            // The node's SSH (datasets, sanoid): the simulator's own endpoint.
            .env(
                "LABWRIGHT_SSH_TARGET",
                format!("root@127.0.0.1:{}", sim.creds["ssh_port"]),
            )
            .env("LABWRIGHT_SSH_IDENTITY", sim.cred("ssh_client_key"))
            .env("LABWRIGHT_SSH_KNOWN_HOSTS", sim.cred("ssh_known_hosts"))
            .args(args)
            .args(["--target", "env"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn run(&self, sim: &Sim, args: &[&str]) -> Result<Out, String> {
        let child = self
            .cmd(sim, args)
            .spawn()
            .map_err(|e| format!("spawn labwright {args:?}: {e}"))?;
        let out = wait_output(child, self.cfg.cmd_timeout);
        if out.code == -2 {
            return Err(format!(
                "labwright {} hung (killed after {:?})",
                args.join(" "),
                self.cfg.cmd_timeout
            ));
        }
        Ok(out)
    }

    fn apply(&self, sim: &Sim, spec: &Path) -> Result<Out, String> {
        let spec = spec.to_string_lossy();
        let journal = self.journal_dir.to_string_lossy();
        let mut args = vec!["apply", &spec, "--yes", "--journal-dir", &journal];
        args.extend(self.apply_args.iter().map(String::as_str));
        self.run(sim, &args)
    }

    /// `plan --detailed-exitcode -o json`: (exit code, action ids, blocked).
    fn plan(&self, sim: &Sim, spec: &Path) -> Result<(i32, Vec<String>, Value), String> {
        let out = self.run(
            sim,
            &[
                "plan",
                &spec.to_string_lossy(),
                "--detailed-exitcode",
                "-o",
                "json",
            ],
        )?;
        let Some(doc) = out.json() else {
            return Ok((
                out.code,
                vec![format!("<no plan: {}>", out.brief())],
                Value::Null,
            ));
        };
        let ids = doc["actions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["id"].as_str().unwrap_or("?").to_string())
                    .collect()
            })
            .unwrap_or_default();
        Ok((out.code, ids, doc["held"].clone()))
    }

    /// Applies until the plan is empty, at most `max` times: how many it took.
    fn converge(
        &self,
        sim: &Sim,
        spec: &Path,
        max: usize,
        log: &mut Vec<String>,
    ) -> Result<Option<usize>, String> {
        for i in 1..=max {
            let out = self.apply(sim, spec)?;
            if out.code != 0 {
                log.push(format!("apply #{i} without faults: {}", out.brief()));
            }
            let (code, ids, blocked) = self.plan(sim, spec)?;
            if code == 0 && ids.is_empty() && nothing_blocked(&blocked) {
                return Ok(Some(i));
            }
            log.push(format!(
                "plan after apply #{i}: exit {code}, actions {ids:?}, blocked {blocked}"
            ));
        }
        Ok(None)
    }
}

/// No guest of the plan is held back by a lock (`plan --detailed-exitcode` says 0
/// then, though the guest is not in sync). Other held-back items (image import and
/// bootstrap, not applied by this version) are permanent and expected.
fn nothing_blocked(blocked: &Value) -> bool {
    blocked.as_array().is_some_and(|a| {
        !a.iter()
            .any(|b| b["reason"].as_str().is_some_and(|r| r.contains("locked")))
    })
}

/// The nas spec with app-host's memory raised (a reboot-needing change).
fn bigger_memory(text: &str) -> Result<String, String> {
    let old = "    cores: 4\n    memory: 8G\n";
    if text.matches(old).count() != 1 {
        return Err("the nas spec's app-host block changed shape".into());
    }
    Ok(text.replace(old, "    cores: 4\n    memory: 12G\n"))
}

/// The nas spec at phase 1: the HDD mirror, its datasets, storage entries, the
/// backup job's move and app-host's data moved into the datasets.
fn phase_one(text: &str) -> Result<String, String> {
    if text.matches("\nphase: 0\n").count() != 1 {
        return Err("the nas spec's `phase: 0` line changed shape".into());
    }
    Ok(text.replacen("\nphase: 0\n", "\nphase: 1\n", 1)
        + r#"
storage:
  zfsPools:
    - name: tank
      raidLevel: mirror
      devices:
        - /dev/disk/by-id/ata-WDC_WD40EFPX-68C6CN0_WD-WX12A0000001
        - /dev/disk/by-id/ata-WDC_WD40EFPX-68C6CN0_WD-WX12A0000002
  datasets:
    - name: tank/media
      snapshots: { schedule: daily, keep: 14 }
    - name: tank/appdata
      snapshots: { schedule: daily, keep: 14 }
    - name: tank/backups
  pveStorages:
    - { id: tank-backups, type: dir, path: /tank/backups, content: [backup] }
  migrations:
    - { name: plex-media, from: "vm:300:/opt/naas/appdata/plex/media", to: tank/media }
    - { name: docker-appdata, from: "vm:300:/opt/naas/appdata", to: tank/appdata }
    - { name: backup-target, from: "backup-job:nightly", to: tank-backups }
"#)
}

/// The reference spec without phase 1's storage: (phase 0, phase 2 with host
/// network changes allowed).
fn phase_two(text: &str) -> Result<(String, String), String> {
    let start = text
        .find("# Phase 1: the two HDDs become a ZFS mirror.")
        .ok_or("the reference spec's storage section changed shape")?;
    let end = text[start..]
        .find("\nfirewall:")
        .ok_or("the reference spec's firewall section changed shape")?
        + start
        + 1;
    let base = format!("{}{}", &text[..start], &text[end..]);
    if base.matches("\nphase: 0\n").count() != 1 {
        return Err("the reference spec's `phase: 0` line changed shape".into());
    }
    let p2 = base.replacen("\nphase: 0\n", "\nphase: 2\n", 1).replacen(
        "allowHostNetworkChanges: false",
        "allowHostNetworkChanges: true",
        1,
    );
    Ok((base, p2))
}

/// Phase 2 on the node: each internal bridge made once and up, the router made once
/// with the guests moved, and no probe namespace left behind.
fn check_phase_two(st: &Value, v: &mut Vec<String>) {
    let node = &st["nodes"]["proxmox"];
    for b in ["vmbr1", "vmbr2"] {
        if node["network"].get(b).is_none() {
            v.push(format!("phase 2: bridge {b} missing"));
        }
    }
    if node["network_pending"].is_object() {
        v.push("phase 2: network changes left staged".into());
    }
    let creates = tasks(st)
        .iter()
        .filter(|t| t["type"] == "qmcreate" && t["id"] == "150" && t["exitstatus"] == "OK")
        .count();
    if creates != 1 {
        v.push(format!("phase 2: VM 150 created {creates} time(s), want 1"));
    }
    for (vmid, bridge) in [("300", "vmbr1"), ("400", "vmbr2")] {
        let net0 = st["vms"][vmid]["conf"]["net0"].as_str().unwrap_or("");
        if !net0.contains(&format!("bridge={bridge}")) {
            v.push(format!("phase 2: VM {vmid} net0 `{net0}`, want {bridge}"));
        }
    }
    if node["netns"].as_object().is_some_and(|m| !m.is_empty()) {
        v.push(format!("phase 2: probe namespaces left: {}", node["netns"]));
    }
}

/// Files under `prefix` in a `path → content` map, by their path below it.
fn files_under(files: &Value, prefix: &str) -> BTreeMap<String, String> {
    files
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !k.ends_with('/'))
                .filter_map(|(k, v)| {
                    Some((k.strip_prefix(prefix)?.to_string(), v.as_str()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Phase 1's invariants on the node's saved state: one pool made once over the two
/// disks, the datasets, and every moved file equal to its kept source.
fn check_phase_one(st: &Value, v: &mut Vec<String>) {
    let node = &st["nodes"]["proxmox"];
    let pools: Vec<&str> = node["zpools"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    if pools != ["tank"] {
        v.push(format!("phase 1: pools {pools:?}, want [tank]"));
    }
    let creates = tasks(st)
        .iter()
        .filter(|t| t["type"] == "zfscreate" && t["exitstatus"] == "OK")
        .count();
    if creates != 1 {
        v.push(format!(
            "phase 1: {creates} successful zfscreate task(s), want 1"
        ));
    }
    for d in ["tank/media", "tank/appdata", "tank/backups"] {
        if node["datasets"].get(d).is_none() {
            v.push(format!("phase 1: dataset {d} missing"));
        }
    }
    let guest = &st["vms"]["300"]["guest"]["files"];
    let host = &node["files"];
    // Set aside inside appdata, which was then set aside whole (inner switches first).
    let media_src = files_under(
        guest,
        "/opt/naas/appdata.lw-migrated/plex/media.lw-migrated/",
    );
    let media_dst = files_under(host, "/tank/media/");
    if media_src.is_empty() || media_src != media_dst {
        v.push(format!(
            "phase 1: tank/media ({} files) differs from the kept source ({} files)",
            media_dst.len(),
            media_src.len()
        ));
    }
    let skip =
        |k: &String| k.starts_with("plex/media/") || k.starts_with("plex/media.lw-migrated/");
    let app_src: BTreeMap<String, String> = files_under(guest, "/opt/naas/appdata.lw-migrated/")
        .into_iter()
        .filter(|(k, _)| !skip(k))
        .collect();
    let app_dst: BTreeMap<String, String> = files_under(host, "/tank/appdata/")
        .into_iter()
        .filter(|(k, _)| !skip(k))
        .collect();
    if app_src.is_empty() || app_src != app_dst {
        v.push(format!(
            "phase 1: tank/appdata ({} files) differs from the kept source ({} files)",
            app_dst.len(),
            app_src.len()
        ));
    }
}

/// Starts apply and SIGKILLs it at the chaos point. Returns (killed, exit code if it
/// ended by itself).
fn chaos_apply(
    lab: &Lab,
    sim: &Sim,
    spec: &Path,
    chaos: &Chaos,
) -> Result<(bool, Option<i32>, Out), String> {
    let base = lab.journal().len();
    let spec_s = spec.to_string_lossy();
    let journal = lab.journal_dir.to_string_lossy();
    let mut args = vec!["apply", &spec_s, "--yes", "--journal-dir", &journal];
    args.extend(lab.apply_args.iter().map(String::as_str));
    let mut child = lab
        .cmd(sim, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn chaos apply: {e}"))?;
    let deadline = Instant::now() + lab.cfg.cmd_timeout;
    let mut kill_at: Option<Instant> = None;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            let code = st.code().unwrap_or(-1);
            let out = Out {
                code,
                stdout: String::new(),
                stderr: String::new(),
            };
            return Ok((false, Some(code), out));
        }
        let now = Instant::now();
        if now > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "chaos apply hung (no end nor kill point in {:?})",
                lab.cfg.cmd_timeout
            ));
        }
        match kill_at {
            None => {
                if lab.journal().len().saturating_sub(base) >= chaos.kill_after_events {
                    kill_at = Some(now + Duration::from_millis(chaos.kill_delay_ms));
                }
            }
            Some(t) if now >= t => {
                let _ = child.kill(); // SIGKILL
                let _ = child.wait();
                let out = Out {
                    code: -9,
                    stdout: String::new(),
                    stderr: String::new(),
                };
                return Ok((true, None, out));
            }
            Some(_) => {}
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Checks the journal against the node's task list. `chaos_segment`: index of the
/// apply session of the killed run (the only one allowed to lack `apply-end`).
pub fn check_journal(
    journal: &[Value],
    st: &Value,
    killed_segment: Option<usize>,
    v: &mut Vec<String>,
) {
    // Sessions: each begins with apply-start.
    let mut segments: Vec<Vec<&Value>> = Vec::new();
    for e in journal {
        if e["event"] == "apply-start" {
            segments.push(Vec::new());
        }
        match segments.last_mut() {
            Some(s) => s.push(e),
            None => v.push(format!("journal: entry before any apply-start: {e}")),
        }
    }
    let ok_tasks = |kind: &str, vmid: u32, since: u64| {
        tasks(st)
            .iter()
            .filter(|t| {
                t["type"] == kind
                    && t["id"].as_str() == Some(&vmid.to_string())
                    && t["exitstatus"] == "OK"
                    && t["starttime"].as_u64().unwrap_or(0) + 1 >= since
            })
            .count()
    };
    let mut create_done: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, seg) in segments.iter().enumerate() {
        let start_ts = seg.first().and_then(|e| e["ts"].as_u64()).unwrap_or(0);
        let plan = seg
            .first()
            .map(|e| e["plan"].clone())
            .unwrap_or(Value::Null);
        let mut started: BTreeSet<String> = BTreeSet::new();
        let mut finished: BTreeSet<String> = BTreeSet::new();
        let mut any_failed = false;
        let mut end: Option<String> = None;
        for e in seg {
            let ev = e["event"].as_str().unwrap_or("");
            let action = e["action"].as_str().unwrap_or("").to_string();
            if e["plan"] != plan {
                v.push(format!("journal: session {i} mixes plans: {e}"));
            }
            if end.is_some() {
                v.push(format!(
                    "journal: session {i} has an entry after apply-end: {e}"
                ));
            }
            match ev {
                "apply-start" => {}
                "apply-end" => end = Some(e["detail"].as_str().unwrap_or("").to_string()),
                "start" => {
                    if !started.insert(action.clone()) {
                        v.push(format!("journal: session {i} starts {action} twice"));
                    }
                }
                "snapshot" | "done" | "failed" => {
                    if !started.contains(&action) {
                        v.push(format!(
                            "journal: session {i}: `{ev}` of {action} without a preceding `start`"
                        ));
                    }
                    if finished.contains(&action) {
                        v.push(format!(
                            "journal: session {i}: `{ev}` of {action} after it ended"
                        ));
                    }
                    if ev != "snapshot" {
                        finished.insert(action.clone());
                    }
                    any_failed |= ev == "failed";
                }
                other => v.push(format!("journal: unknown event `{other}`")),
            }
            // A `done` (or snapshot) must be a real change on the node.
            let vmid = action
                .strip_prefix("vm-")
                .and_then(|r| r.split('-').next())
                .and_then(|n| n.parse::<u32>().ok());
            let kind = action.rsplit('-').next().unwrap_or("");
            match (ev, vmid, kind) {
                ("done", Some(id), "create") => {
                    *create_done.entry(id).or_default() += 1;
                    if ok_tasks("qmcreate", id, start_ts) == 0 {
                        v.push(format!(
                            "journal: {action} done but no successful qmcreate of {id}"
                        ));
                    }
                }
                ("done", Some(id), "start") if ok_tasks("qmstart", id, start_ts) == 0 => {
                    v.push(format!(
                        "journal: {action} done but no successful qmstart of {id}"
                    ));
                }
                ("done", Some(id), "reboot") if ok_tasks("qmreboot", id, start_ts) == 0 => {
                    v.push(format!(
                        "journal: {action} done but no successful qmreboot of {id}"
                    ));
                }
                ("snapshot", Some(id), _) if ok_tasks("qmsnapshot", id, 0) == 0 => {
                    v.push(format!(
                        "journal: snapshot of {action} but no successful qmsnapshot of {id}"
                    ));
                }
                ("done", Some(id), _)
                    if action.contains("-grow-") && ok_tasks("resize", id, start_ts) == 0 =>
                {
                    v.push(format!(
                        "journal: {action} done but no successful resize of {id}"
                    ));
                }
                // A download is planned while a create still imports the image and
                // skipped when the volume is there: any successful download counts.
                ("done", None, "download")
                    if !tasks(st)
                        .iter()
                        .any(|t| t["type"] == "download" && t["exitstatus"] == "OK") =>
                {
                    v.push(format!(
                        "journal: {action} done but no successful download task"
                    ));
                }
                ("done", None, "create") => {
                    if let Some(job) = action
                        .strip_prefix("backup-")
                        .and_then(|r| r.strip_suffix("-create"))
                        && st["backup_jobs"].get(job).is_none()
                    {
                        v.push(format!("journal: {action} done but no backup job `{job}`"));
                    }
                }
                _ => {}
            }
        }
        match &end {
            Some(d) => {
                let want = if any_failed { "failed" } else { "ok" };
                if d != want {
                    v.push(format!(
                        "journal: session {i} ends `{d}` but has failed={any_failed}"
                    ));
                }
                // A session that ended left nothing started and unfinished.
                let open: Vec<&String> = started.difference(&finished).collect();
                if !open.is_empty() {
                    v.push(format!(
                        "journal: session {i} ended with {open:?} neither done nor failed"
                    ));
                }
            }
            None if Some(i) == killed_segment => {}
            None => v.push(format!(
                "journal: session {i} has no apply-end (only the killed one may)"
            )),
        }
    }
    for (id, n) in create_done {
        if n > 1 {
            v.push(format!("journal: vm-{id}-create done {n} times"));
        }
    }
}

/// One seeded run.
pub fn run_seed(seed: u64, cfg: &SoakConfig) -> RunOutcome {
    let started = Instant::now();
    let chaos = Chaos::from_seed(seed);
    let tmp = tempfile::Builder::new()
        .prefix(&format!("lw-soak-{seed}-"))
        .tempdir();
    let mut out = RunOutcome {
        seed,
        mode: chaos.mode,
        killed: false,
        chaos_exit: None,
        reruns: None,
        violations: Vec::new(),
        notes: Vec::new(),
        secs: 0.0,
        kept: None,
    };
    let tmp = match tmp {
        Ok(t) => t,
        Err(e) => {
            out.violations.push(format!("harness: temp dir: {e}"));
            return out;
        }
    };
    let mut notes = Vec::new();
    if let Err(e) = run_inner(tmp.path(), &chaos, cfg, &mut out, &mut notes) {
        out.violations.push(e);
    }
    out.secs = started.elapsed().as_secs_f64();
    let failed = !out.violations.is_empty();
    let _ = std::fs::write(tmp.path().join("soak-notes.txt"), notes.join("\n"));
    out.notes = notes;
    if cfg.keep_all || (failed && cfg.keep_failed) {
        out.kept = Some(tmp.keep());
    }
    out
}

fn run_inner(
    dir: &Path,
    chaos: &Chaos,
    cfg: &SoakConfig,
    out: &mut RunOutcome,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let mut lab = Lab {
        dir: dir.to_path_buf(),
        state: dir.join("simd"),
        journal_dir: dir.join("journal"),
        cfg: cfg.clone(),
        sim_starts: 0,
        quiet: Duration::from_millis(300 + 4 * chaos.latency_ms),
        apply_args: Vec::new(),
    };
    let nas_text = std::fs::read_to_string(repo_root().join("specs/nas.desired.yaml"))
        .map_err(|e| format!("harness: read nas spec: {e}"))?;
    let nas = dir.join("nas.desired.yaml");
    std::fs::write(&nas, &nas_text).map_err(|e| format!("harness: write spec: {e}"))?;
    let spec = match chaos.mode {
        Mode::Fresh => nas.clone(),
        Mode::Drift => {
            let p = dir.join("nas-bigger.yaml");
            std::fs::write(&p, bigger_memory(&nas_text)?)
                .map_err(|e| format!("harness: write spec: {e}"))?;
            // The node first converges on the nas spec, without faults.
            let sim = lab.start_sim(&[])?;
            match lab.converge(&sim, &nas, 3, notes)? {
                Some(_) => {}
                None => {
                    return Err("drift setup: the nas spec did not converge without faults".into());
                }
            }
            drain_tasks(&lab.state, Duration::from_secs(60), lab.quiet)?;
            sim.stop();
            p
        }
        Mode::Phase1 => {
            let p = dir.join("nas-phase1.yaml");
            std::fs::write(&p, phase_one(&nas_text)?)
                .map_err(|e| format!("harness: write spec: {e}"))?;
            // Phase 0 first, without faults, on a node with two spare disks.
            let sim = lab.start_sim(&["--scenario".to_string(), "hdds".to_string()])?;
            if lab.converge(&sim, &nas, 3, notes)?.is_none() {
                return Err("phase-1 setup: the nas spec did not converge without faults".into());
            }
            drain_tasks(&lab.state, Duration::from_secs(60), lab.quiet)?;
            sim.stop();
            lab.apply_args = vec!["--allow-risk".into(), "critical".into()];
            p
        }
        Mode::Phase2 => {
            let text =
                std::fs::read_to_string(repo_root().join("specs/jarvis-homelab.desired.yaml"))
                    .map_err(|e| format!("harness: read reference spec: {e}"))?;
            let (p0, p2) = phase_two(&text)?;
            let p0_path = dir.join("jarvis-phase0.yaml");
            let p2_path = dir.join("jarvis-phase2.yaml");
            std::fs::write(&p0_path, p0).map_err(|e| format!("harness: write spec: {e}"))?;
            std::fs::write(&p2_path, p2).map_err(|e| format!("harness: write spec: {e}"))?;
            let sim = lab.start_sim(&[])?;
            if lab.converge(&sim, &p0_path, 3, notes)?.is_none() {
                return Err(
                    "phase-2 setup: the phase-0 reference lab did not converge without faults"
                        .into(),
                );
            }
            drain_tasks(&lab.state, Duration::from_secs(60), lab.quiet)?;
            sim.stop();
            lab.apply_args = vec!["--allow-risk".into(), "high".into()];
            p2_path
        }
    };

    // The chaos apply.
    let sim = lab.start_sim(&chaos.sim_args())?;
    let (fp, secret) = (sim.cred("fingerprint"), sim.cred("token_secret"));
    let journal_before = lab.journal();
    let segments_before = journal_before
        .iter()
        .filter(|e| e["event"] == "apply-start")
        .count();
    let (killed, code, _) = chaos_apply(&lab, &sim, &spec, chaos)?;
    out.killed = killed;
    out.chaos_exit = code;
    let segments_after = lab
        .journal()
        .iter()
        .filter(|e| e["event"] == "apply-start")
        .count();
    let killed_segment = (killed && segments_after > segments_before).then(|| segments_after - 1);
    if chaos.resume_under_faults {
        let o = lab.apply(&sim, &spec)?;
        notes.push(format!(
            "apply right after the kill, under faults: {}",
            o.brief()
        ));
        if !matches!(o.code, 0 | 1) {
            out.violations
                .push(format!("apply under faults: exit {} (want 0 or 1)", o.code));
        }
    }
    // The node's tasks run on without the client; then faults off.
    drain_tasks(&lab.state, Duration::from_secs(60), lab.quiet)?;
    sim.stop();
    let sim = lab.start_sim(&[])?;
    if sim.cred("fingerprint") != fp || sim.cred("token_secret") != secret {
        out.violations.push(
            "sim restart: the certificate or the token changed across a restart without --reset"
                .into(),
        );
    }

    // Converge.
    out.reruns = lab.converge(&sim, &spec, 3, notes)?;
    if out.reruns.is_none() {
        out.violations
            .push("not converged: the plan is not empty after 3 applies without faults".into());
    }

    // Invariants.
    let v = &mut out.violations;
    let (code, ids, _) = lab.plan(&sim, &spec)?;
    if code != 0 || !ids.is_empty() {
        v.push(format!(
            "final plan: exit {code}, actions {ids:?} (want 0, none)"
        ));
    }
    let before = lw_snapshots(&sim_state(&lab.state)?);
    let val = lab.run(&sim, &["validate", &spec.to_string_lossy(), "-o", "json"])?;
    let report = val.json().unwrap_or(Value::Null);
    if val.code != 0 || report["ok"] != true {
        let failing: Vec<String> = report["checks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|c| c["status"] == "fail")
                    .map(|c| format!("{}: {}", c["name"], c["detail"]))
                    .collect()
            })
            .unwrap_or_default();
        if failing.is_empty() {
            v.push(format!("validate failed: {}", val.brief()));
        } else {
            v.push(format!("validate failed: {failing:?}"));
        }
    }
    let pairs = |k: &str| -> BTreeSet<(u32, String)> {
        report[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| {
                        Some((
                            u32::try_from(p[0].as_u64()?).ok()?,
                            p[1].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (expired, kept) = (pairs("expiredSnapshots"), pairs("keptSnapshots"));
    drain_tasks(&lab.state, Duration::from_secs(60), lab.quiet)?;
    sim.stop();
    let st = sim_state(&lab.state)?;

    // Guests: exactly 100/300/400 (and the router in phase 2), each created once.
    let want: Vec<u32> = match chaos.mode {
        Mode::Phase2 => vec![100, 150, 300, 400],
        _ => VMIDS.to_vec(),
    };
    let vmids: Vec<u32> = st["vms"]
        .as_object()
        .map(|o| o.keys().filter_map(|k| k.parse().ok()).collect())
        .unwrap_or_default();
    if vmids != want {
        v.push(format!("guests: VMIDs {vmids:?}, want {want:?}"));
    }
    for &id in &want {
        let creates: Vec<String> = tasks(&st)
            .iter()
            .filter(|t| t["type"] == "qmcreate" && t["id"].as_str() == Some(&id.to_string()))
            .map(|t| t["exitstatus"].as_str().unwrap_or("running").to_string())
            .collect();
        if creates.iter().filter(|s| *s == "OK").count() != 1 {
            v.push(format!(
                "guests: VM {id} created {creates:?} (want exactly one OK)"
            ));
        }
    }
    // Nothing deleted or rolled back: the plans never say so here.
    for t in tasks(&st) {
        if t["type"] == "qmdestroy" || t["type"] == "qmrollback" {
            v.push(format!(
                "unplanned {} of {} ({})",
                t["type"], t["id"], t["exitstatus"]
            ));
        }
    }
    let deletes = tasks(&st)
        .iter()
        .filter(|t| t["type"] == "qmdelsnapshot")
        .count();
    if deletes != expired.len() {
        v.push(format!(
            "snapshots: {deletes} qmdelsnapshot task(s), validate expired {}",
            expired.len()
        ));
    }
    // Snapshots: each one expired or kept (listed) by validate; none left unlisted.
    let listed: BTreeSet<(u32, String)> = expired.union(&kept).cloned().collect();
    if before != listed {
        v.push(format!(
            "snapshots: on the node before validate {before:?}, expired {expired:?} + kept {kept:?}"
        ));
    }
    let after = lw_snapshots(&st);
    if after != kept {
        v.push(format!(
            "snapshots: left on the node {after:?}, validate kept {kept:?}"
        ));
    }
    let journal = lab.journal();
    for e in journal.iter().filter(|e| e["event"] == "snapshot") {
        let d = e["detail"].as_str().unwrap_or("");
        let mut w = d.split_whitespace();
        let (Some("vm"), Some(id), Some(name)) = (w.next(), w.next(), w.next()) else {
            v.push(format!("journal: snapshot entry `{d}`"));
            continue;
        };
        let key = (id.parse::<u32>().unwrap_or(0), name.to_string());
        if !before.contains(&key) {
            v.push(format!(
                "snapshots: journalled {key:?} was not on the node before validate"
            ));
        }
    }
    if chaos.mode == Mode::Phase1 {
        check_phase_one(&st, v);
    }
    if chaos.mode == Mode::Phase2 {
        check_phase_two(&st, v);
    }
    if chaos.mode == Mode::Drift {
        let mem = st["vms"]["300"]["conf"]["memory"].as_str().unwrap_or("");
        if mem != "12288" {
            v.push(format!("drift: app-host memory {mem}, want 12288"));
        }
    }
    check_journal(&journal, &st, killed_segment, v);
    Ok(())
}

/// Totals of a soak.
#[derive(Default, Debug)]
pub struct Summary {
    pub runs: usize,
    pub converged: usize,
    pub killed: usize,
    /// Re-runs needed → runs.
    pub reruns: BTreeMap<usize, usize>,
    pub not_converged: usize,
    pub by_mode: BTreeMap<String, usize>,
    pub violations: usize,
    pub failed_seeds: Vec<u64>,
    pub secs: f64,
}

impl Summary {
    pub fn add(&mut self, o: &RunOutcome) {
        self.runs += 1;
        self.killed += usize::from(o.killed);
        *self
            .by_mode
            .entry(format!("{:?}", o.mode).to_lowercase())
            .or_default() += 1;
        match o.reruns {
            Some(n) => {
                self.converged += 1;
                *self.reruns.entry(n).or_default() += 1;
            }
            None => self.not_converged += 1,
        }
        self.violations += o.violations.len();
        if !o.violations.is_empty() {
            self.failed_seeds.push(o.seed);
        }
    }

    pub fn render(&self) -> String {
        let dist: Vec<String> = self
            .reruns
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let modes: Vec<String> = self
            .by_mode
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let seeds = if self.failed_seeds.is_empty() {
            "none".to_string()
        } else {
            self.failed_seeds
                .iter()
                .map(|s| format!("LW_SOAK_SEED={s}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "runs: {}\nconverged: {} (not converged: {})\nre-runs needed (applies after the kill → runs): {}\nkilled mid-apply: {} (the others ended before their kill point)\nmodes: {}\ninvariant violations: {}\nfailed seeds: {}\nwall time: {:.0} s ({:.1} s/run)",
            self.runs,
            self.converged,
            self.not_converged,
            if dist.is_empty() {
                "-".into()
            } else {
                dist.join(", ")
            },
            self.killed,
            modes.join(", "),
            self.violations,
            seeds,
            self.secs,
            if self.runs > 0 {
                self.secs / self.runs as f64
            } else {
                0.0
            },
        )
    }
}

/// Runs seeds until `runs` are done or `max` time has passed; prints a line per run.
pub fn soak(
    seeds: impl IntoIterator<Item = u64>,
    runs: usize,
    max: Duration,
    cfg: &SoakConfig,
) -> (Summary, Vec<RunOutcome>) {
    let started = Instant::now();
    let mut sum = Summary::default();
    let mut outcomes = Vec::new();
    for seed in seeds.into_iter().take(runs) {
        if started.elapsed() >= max {
            eprintln!("soak: time limit {max:?} reached after {} run(s)", sum.runs);
            break;
        }
        let o = run_seed(seed, cfg);
        sum.add(&o);
        if cfg.verbose {
            let c = Chaos::from_seed(seed);
            println!(
                "seed {seed:>5} {:<5} err {:.2}@{:<8} drop {:.2} lost {:.2} taskfail {:.2} slow {:.1}x{:<2} lat {:>2}ms kill@{}+{}ms{}: {} reruns {} {:.1}s{}",
                format!("{:?}", o.mode).to_lowercase(),
                c.error_rate,
                c.error_class,
                c.drop_rate,
                c.lost_reply_rate,
                c.task_failure_rate,
                c.slow_task_rate,
                c.slow_task_factor,
                c.latency_ms,
                c.kill_after_events,
                c.kill_delay_ms,
                if c.resume_under_faults {
                    " +resume"
                } else {
                    ""
                },
                if o.killed {
                    "killed".to_string()
                } else {
                    format!("ended {}", o.chaos_exit.unwrap_or(-1))
                },
                o.reruns.map_or("-".into(), |n| n.to_string()),
                o.secs,
                if o.violations.is_empty() {
                    ""
                } else {
                    "  VIOLATION"
                },
            );
            for v in &o.violations {
                println!("    {v}");
            }
            if !o.violations.is_empty() {
                for n in &o.notes {
                    println!("    note: {n}");
                }
            }
            if let Some(k) = &o.kept {
                println!("    kept: {}", k.display());
            }
        }
        outcomes.push(o);
    }
    sum.secs = started.elapsed().as_secs_f64();
    (sum, outcomes)
}
