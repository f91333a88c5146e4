//! `labwright token create`: the least-privilege token it makes is enough for the
//! phase-0 lab, the node refuses what it does not allow, apply refuses up front a
//! token that lacks a privilege, reruns change nothing, secrets stay out of output.

mod common;

use std::path::PathBuf;

use assert_cmd::Command;
use common::{Lab, Out, SimProcess, spec};
use labwright_pve::{ClientConfig, Credentials, Fingerprint, Params, PveClient, Secret, TlsMode};
use serde_json::Value;

/// A `labwright sim` process and a lab whose commands use the profile `lab`.
struct Setup {
    lab: Lab,
    sim: SimProcess,
    _simdir: Lab,
    password_file: PathBuf,
}

fn setup() -> Setup {
    setup_with(&[])
}

fn setup_with(sim_args: &[&str]) -> Setup {
    let simdir = Lab::new();
    let sim = SimProcess::start_with(simdir.path(), 0.01, sim_args);
    let lab = Lab::new();
    let password_file = lab.path().join("root-password");
    std::fs::write(&password_file, sim.cred("root_password")).expect("password file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    Setup {
        lab,
        sim,
        _simdir: simdir,
        password_file,
    }
}

impl Setup {
    /// `labwright token create` against the simulator, logging in as root@pam.
    fn create(&self, extra: &[&str]) -> Out {
        let mut cmd = self.lab.bare();
        cmd.args(["token", "create", "--target", "env", "--password-file"])
            .arg(&self.password_file)
            .args(extra)
            .env("LABWRIGHT_PVE_URL", self.sim.cred("url"))
            .env("LABWRIGHT_PVE_FINGERPRINT", self.sim.cred("fingerprint"));
        common::run(cmd)
    }

    /// A command on the profile `token create` wrote (with the node's SSH).
    fn on_lab(&self, args: &[&str]) -> Command {
        let mut cmd = self.lab.bare();
        cmd.args(args).args(["--target", "lab"]);
        for (k, v) in self.sim.ssh_env() {
            cmd.env(k, v);
        }
        cmd
    }

    fn config_dir(&self) -> PathBuf {
        self.lab.path().join("config/labwright")
    }

    fn secret(&self) -> String {
        std::fs::read_to_string(self.config_dir().join("lab.token"))
            .expect("the token file")
            .trim()
            .to_string()
    }

    fn token_client(&self, secret: &str) -> PveClient {
        let fp = Fingerprint::parse(&self.sim.cred("fingerprint")).expect("fingerprint");
        PveClient::new(
            ClientConfig::new(
                self.sim.cred("url"),
                Credentials::api_token("labwright@pve!labwright", Secret::from(secret)),
            )
            .tls(TlsMode::Fingerprint(fp)),
        )
        .expect("client")
    }
}

#[test]
fn the_token_is_enough_for_phase_0_and_a_rerun_changes_nothing() {
    let s = setup();
    let out = s.create(&["-o", "json"]);
    out.expect_code(0, "token create");
    let doc = out.json();
    assert_eq!(doc["roleChange"], "created");
    assert_eq!(doc["tokenChange"], "created");
    assert_eq!(doc["changed"], true);
    let secret = s.secret();
    assert_eq!(secret.len(), 36, "a UUID");
    assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["lab.token", "config.toml"] {
            let mode = std::fs::metadata(s.config_dir().join(f))
                .expect("written")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{f} is readable by others: {mode:o}");
        }
    }
    let config = std::fs::read_to_string(s.config_dir().join("config.toml")).expect("config");
    assert!(config.contains("[targets.lab]"), "{config}");
    assert!(config.contains("token-id = \"labwright@pve!labwright\""));
    assert!(!config.contains(&secret), "the secret is in config.toml");

    // The role holds exactly the privileges of the full list, privilege-separated.
    let admin = s.sim.client();
    let rt = common::rt();
    let privs: Value = rt
        .block_on(admin.get("/access/roles/LabwrightOperator", Params::new()))
        .expect("role");
    let mut have: Vec<&String> = privs.as_object().expect("privs").keys().collect();
    have.sort();
    let want: Vec<String> = serde_json::from_value(doc["privileges"].clone()).expect("list");
    assert_eq!(have, want.iter().collect::<Vec<_>>());
    let tokens: Value = rt
        .block_on(admin.get("/access/users/labwright@pve/token", Params::new()))
        .expect("tokens");
    assert_eq!(tokens[0]["privsep"], 1, "{tokens}");

    // Doctor, the phase-0 apply and validate of the reference spec, all with the token.
    let reference = spec("jarvis-homelab.desired.yaml");
    let r = reference.to_string_lossy();
    let doctor = common::run(s.on_lab(&["doctor", &r, "-o", "json"]));
    doctor.expect_code(0, "doctor with the new token");
    let journal = s.lab.journal_dir();
    let apply = common::run(s.on_lab(&[
        "apply",
        &r,
        "--yes",
        "--journal-dir",
        &journal.to_string_lossy(),
    ]));
    apply.expect_code(0, "apply with the new token");
    let validate = common::run(s.on_lab(&["validate", &r]));
    validate.expect_code(0, "validate with the new token");
    let plan = common::run(s.on_lab(&["plan", &r, "--detailed-exitcode", "-q"]));
    plan.expect_code(0, "second plan is empty");
    for o in [&doctor, &apply, &validate, &plan] {
        assert!(!o.stdout.contains(&secret) && !o.stderr.contains(&secret));
    }

    // A second run: nothing changed, the same secret still works.
    let again = s.create(&[]);
    again.expect_code(0, "token create again");
    assert!(again.stdout.contains("Nothing changed"), "{}", again.stdout);
    assert_eq!(s.secret(), secret);
    // --rotate: a new secret; the old one stops working.
    let rotated = s.create(&["--rotate", "-o", "json"]);
    rotated.expect_code(0, "token create --rotate");
    assert_eq!(rotated.json()["tokenChange"], "rotated");
    let new = s.secret();
    assert_ne!(new, secret);
    let err = rt
        .block_on(s.token_client(&secret).version())
        .expect_err("the old secret is refused");
    assert_eq!(err.status(), Some(401), "{err}");
    let doctor = common::run(s.on_lab(&["doctor", "-o", "json"]));
    doctor.expect_code(0, "doctor with the rotated token");
}

#[test]
fn a_role_missing_one_privilege_refuses_apply_before_any_write() {
    let s = setup();
    s.create(&[]).expect_code(0, "token create");
    // An administrator takes VM.PowerMgmt (and Datastore.Allocate, which only
    // validate's clean-up needs) out of the role.
    let admin = s.sim.client();
    let rt = common::rt();
    let privs: Value = rt
        .block_on(admin.get("/access/roles/LabwrightOperator", Params::new()))
        .expect("role");
    let fewer: Vec<&String> = privs
        .as_object()
        .expect("privs")
        .keys()
        .filter(|p| *p != "VM.PowerMgmt" && *p != "Datastore.Allocate")
        .collect();
    let list = fewer
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let _: Value = rt
        .block_on(admin.put(
            "/access/roles/LabwrightOperator",
            Params::new().set("privs", list),
        ))
        .expect("role update");
    // What a write would change: the guests and volumes on the node.
    let state = || {
        let ids: Value = rt
            .block_on(admin.get("/cluster/resources", Params::new()))
            .expect("resources");
        let mut ids: Vec<String> = ids
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|r| r["id"].as_str().map(String::from))
            .collect();
        ids.sort();
        let content: Value = rt
            .block_on(admin.get("/nodes/proxmox/storage/local/content", Params::new()))
            .expect("content");
        (ids, content)
    };
    let before = state();

    let nas = spec("nas.desired.yaml");
    let journal = s.lab.journal_dir();
    let out = common::run(s.on_lab(&[
        "apply",
        &nas.to_string_lossy(),
        "--yes",
        "--journal-dir",
        &journal.to_string_lossy(),
    ]));
    out.expect_code(1, "apply with a token lacking VM.PowerMgmt");
    for want in [
        "VM.PowerMgmt@/vms/100",
        "VM.PowerMgmt@/vms/300",
        "VM.PowerMgmt@/vms/400",
        "nothing was applied",
        "labwright token create",
    ] {
        assert!(out.stderr.contains(want), "{want}:\n{}", out.stderr);
    }
    // Only what this plan needs is named.
    assert!(
        !out.stderr.contains("Datastore.Allocate@"),
        "{}",
        out.stderr
    );
    // Nothing was written: no guest, no image, no journal.
    assert_eq!(before, state());
    assert!(s.lab.journal().is_empty(), "{:?}", s.lab.journal());
    // Doctor says the same.
    let doctor = common::run(s.on_lab(&["doctor", &nas.to_string_lossy(), "-o", "json"]));
    doctor.expect_code(1, "doctor");
    assert!(
        doctor.stdout.contains("VM.PowerMgmt@/vms/100"),
        "{}",
        doctor.stdout
    );

    // Validate's clean-up deletes the seed ISOs: refused before it starts, with the
    // read-only way out.
    let v = common::run(s.on_lab(&["validate", &nas.to_string_lossy()]));
    v.expect_code(1, "validate with cleanup");
    assert!(
        v.stderr.contains("Datastore.Allocate@/storage/local"),
        "{}",
        v.stderr
    );
    assert!(v.stderr.contains("--no-cleanup"), "{}", v.stderr);
    let v = common::run(s.on_lab(&["validate", &nas.to_string_lossy(), "--no-cleanup"]));
    assert!(!v.stderr.contains("lacks"), "{}", v.stderr);

    // And the node itself refuses what the token may not do: starting a guest.
    let _: Value = rt
        .block_on(admin.post(
            "/nodes/proxmox/qemu",
            Params::new().set("vmid", 150).set("memory", 512),
        ))
        .expect("an admin creates VM 150");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let err = rt
        .block_on(
            s.token_client(&s.secret())
                .post::<Value>("/nodes/proxmox/qemu/150/status/start", Params::new()),
        )
        .expect_err("refused");
    assert_eq!(err.status(), Some(403), "{err}");
    assert!(err.to_string().contains("VM.PowerMgmt"), "{err}");
}

#[test]
fn token_create_needs_a_password_from_a_file_or_a_terminal_and_never_prints_it() {
    let s = setup();
    // A wrong password (a canary): refused, and the canary appears nowhere.
    let canary = "CANARY-pw-7f3e9a1c";
    let wrong = s.lab.path().join("wrong-password");
    std::fs::write(&wrong, canary).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let mut cmd = s.lab.bare();
    cmd.args([
        "token",
        "create",
        "--target",
        "env",
        "-vv",
        "--password-file",
    ])
    .arg(&wrong)
    .env("LABWRIGHT_LOG", "trace")
    .env("LABWRIGHT_PVE_URL", s.sim.cred("url"))
    .env("LABWRIGHT_PVE_FINGERPRINT", s.sim.cred("fingerprint"));
    let out = common::run(cmd);
    out.expect_code(1, "wrong password");
    assert!(out.stderr.contains("root@pam"), "{}", out.stderr);
    assert!(!out.stdout.contains(canary) && !out.stderr.contains(canary));
    assert!(!s.config_dir().join("config.toml").exists());

    // A password file others can read is refused before anything is sent.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut cmd = s.lab.bare();
        cmd.args(["token", "create", "--target", "env", "--password-file"])
            .arg(&wrong)
            .env("LABWRIGHT_PVE_URL", s.sim.cred("url"))
            .env("LABWRIGHT_PVE_FINGERPRINT", s.sim.cred("fingerprint"));
        let out = common::run(cmd);
        out.expect_code(1, "readable password file");
        assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
    }

    // No file and no terminal: a clear error, never a hang.
    let mut cmd = s.lab.bare();
    cmd.args(["token", "create", "--target", "env"])
        .env("LABWRIGHT_PVE_URL", s.sim.cred("url"))
        .env("LABWRIGHT_PVE_FINGERPRINT", s.sim.cred("fingerprint"));
    let out = common::run(cmd);
    out.expect_code(1, "no terminal");
    assert!(out.stderr.contains("--password-file"), "{}", out.stderr);
    // There is no flag for the password itself.
    let mut cmd = s.lab.bare();
    cmd.args(["token", "create", "--password", canary]);
    let out = common::run(cmd);
    out.expect_code(64, "--password is not a flag");
    assert!(!out.stderr.contains(canary) || out.stderr.contains("unexpected argument"));

    // The real run, traced: neither the password nor the new secret shows.
    let password = s.sim.cred("root_password");
    let mut cmd = s.lab.bare();
    cmd.args([
        "token",
        "create",
        "--target",
        "env",
        "-vv",
        "--password-file",
    ])
    .arg(&s.password_file)
    .env("LABWRIGHT_LOG", "trace")
    .env("LABWRIGHT_PVE_URL", s.sim.cred("url"))
    .env("LABWRIGHT_PVE_FINGERPRINT", s.sim.cred("fingerprint"));
    let out = common::run(cmd);
    out.expect_code(0, "token create");
    let secret = s.secret();
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(&secret), "the secret was printed:\n{text}");
        assert!(
            !text.contains(&password),
            "the password was printed:\n{text}"
        );
    }
    let doctor = common::run({
        let mut c = s.on_lab(&["doctor", "-vv"]);
        c.env("LABWRIGHT_LOG", "trace");
        c
    });
    doctor.expect_code(0, "doctor");
    for text in [&doctor.stdout, &doctor.stderr] {
        assert!(
            !text.contains(&secret),
            "doctor printed the secret:\n{text}"
        );
    }
}

/// Phase 1 (pool, datasets over SSH, storage entries, directory mappings, the backup
/// job's move, migrations through the guest agent) needs nothing beyond the role.
#[test]
fn the_token_is_enough_for_phase_1_too() {
    let s = setup_with(&["--scenario", "hdds"]);
    s.create(&[]).expect_code(0, "token create");
    let reference = spec("jarvis-homelab.desired.yaml");
    let journal = s.lab.journal_dir();
    let j = journal.to_string_lossy().to_string();
    let r = reference.to_string_lossy().to_string();
    common::run(s.on_lab(&["apply", &r, "--yes", "--journal-dir", &j])).expect_code(0, "phase 0");
    common::run(s.on_lab(&["validate", &r])).expect_code(0, "validate phase 0");
    let p1 = s.lab.spec_copy("jarvis-homelab.desired.yaml", |t| {
        t.replacen("\nphase: 0", "\nphase: 1", 1)
    });
    let p1 = p1.to_string_lossy().to_string();
    let doctor = common::run(s.on_lab(&["doctor", &p1, "-o", "json"]));
    doctor.expect_code(0, "doctor phase 1");
    // Every call of the phase-1 plan is in the table (else: `warn`, not checked).
    let privs = doctor.json()["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == "privileges")
        .cloned()
        .expect("privileges check");
    assert_eq!(privs["status"], "ok", "{privs:#}");
    let apply = common::run(s.on_lab(&[
        "apply",
        &p1,
        "--yes",
        "--allow-risk",
        "critical",
        "--journal-dir",
        &j,
    ]));
    apply.expect_code(0, "phase 1 with the token");
    common::run(s.on_lab(&["validate", &p1])).expect_code(0, "validate phase 1");
}
