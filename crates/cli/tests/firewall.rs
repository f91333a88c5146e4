//! The firewall wave through the real binary against `--target sim`, whose own
//! firewall refuses connections from the client address (192.168.1.50) when the
//! node's configuration drops it:
//! - `specs/preprod.firewall.desired.yaml` plans only high-risk firewall actions with
//!   a passing proof, converges, re-plans empty, and validate re-proves — and the
//!   client still gets in;
//! - a spec that would lock the client out is refused at plan time with the flow, the
//!   deciding rule and the fix;
//! - forced past the proof (a test-only switch), the simulator really refuses the next
//!   connection: the executor's fresh-connection probe fails and the step is reverted.
//!
//! Every test has its own simulator state folder and journal.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn preprod() -> PathBuf {
    repo("specs/preprod.firewall.desired.yaml")
}

struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Self {
        Lab {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write spec");
        p
    }

    fn run(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
        let mut cmd = std::process::Command::cargo_bin("labwright").expect("binary");
        cmd.args(args)
            .arg("--target")
            .arg("sim")
            .arg("--sim-state")
            .arg(self.path("sim"))
            .env("ADMIN_PC_CIDR", "192.168.1.50/32")
            .env("NO_COLOR", "1")
            .env("LABWRIGHT_SIM_TIME_SCALE", "0.01")
            .env_remove("LABWRIGHT_PVE_URL")
            .env_remove("LABWRIGHT_TARGET")
            .env_remove("LABWRIGHT_CLIENT_ADDR")
            .env_remove("LABWRIGHT_SIM_CLIENT_ADDR")
            .env_remove("LABWRIGHT_UNSAFE_SKIP_LOCKOUT_PROOF")
            .current_dir(self.dir.path());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.output().expect("labwright runs")
    }

    fn apply(&self, spec: &Path, extra_env: &[(&str, &str)]) -> Output {
        let journal = self.path("journal");
        self.run(
            &[
                "apply",
                &spec.display().to_string(),
                "--yes",
                "--allow-risk",
                "high",
                "--journal-dir",
                &journal.display().to_string(),
            ],
            extra_env,
        )
    }

    fn plan_json(&self, spec: &Path) -> Value {
        let out = self.run(&["plan", &spec.display().to_string(), "-o", "json"], &[]);
        assert!(out.status.success(), "plan failed: {}", text(&out));
        serde_json::from_slice(&out.stdout).expect("plan JSON")
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const LOCKOUT: &str = r#"
apiVersion: labwright/v1
kind: Homelab
metadata: { name: lockout, owner: test }
node: { name: proxmox, address: 192.168.1.10 }
safetyGuards:
  executionMode: full
  # The VPN range is covered; the admin PC labwright runs on (192.168.1.50) is not,
  # and local_network is narrowed to the node itself, as the PVE docs recommend for
  # hosts on shared networks — so nothing lets the client in any more.
  managementAccessCidrs: [10.0.0.0/24]
  allowFirewallChanges: true
firewall:
  aliases:
    local_network: 192.168.1.10/32
  datacenter:
    options: { enable: true, policyIn: DROP }
    rules:
      - { id: mgmt-vpn, action: ACCEPT, source: 10.0.0.0/24, proto: tcp, dport: "22,8006" }
"#;

#[test]
fn preprod_wave_converges_and_the_client_keeps_access() {
    let lab = Lab::new();
    let spec = preprod();
    let plan = lab.plan_json(&spec);
    let actions = plan["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 10, "{plan:#}");
    for a in actions {
        assert!(
            a["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("firewall.")),
            "{a:#}"
        );
        assert_eq!(a["risk"], "high", "{a:#}");
        assert!(a["apiCalls"].as_array().is_some_and(|c| !c.is_empty()));
    }
    let last = actions.last().expect("an action");
    assert_eq!(last["id"], "fw-cluster-policy-in");
    let fw = &plan["firewall"];
    assert_eq!(fw["proofOk"], true, "{fw:#}");
    assert_eq!(fw["clientAddr"], "192.168.1.50");
    assert_eq!(fw["backend"], "iptables");

    // Without approval of high risk, nothing happens.
    let out = lab.run(
        &[
            "apply",
            &spec.display().to_string(),
            "--yes",
            "--journal-dir",
            &lab.path("journal").display().to_string(),
        ],
        &[],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--allow-risk high"), "{}", text(&out));

    let out = lab.apply(&spec, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Applied 10 of 10"),
        "{}",
        text(&out)
    );

    // The client keeps access: a brand-new process connects, and nothing is left to do.
    let again = lab.plan_json(&spec);
    assert_eq!(
        again["actions"].as_array().map(Vec::len),
        Some(0),
        "{again:#}"
    );
    assert_eq!(again["firewall"]["proofOk"], true);

    let out = lab.run(&["validate", &spec.display().to_string()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("firewall matches the spec"), "{stdout}");
    assert!(
        stdout.contains("management access proved on the node's firewall"),
        "{stdout}"
    );

    // Validate re-proves on what the node has, for the address labwright says it
    // connects from: seen from elsewhere, the same node fails the proof.
    let out = lab.run(
        &["validate", &spec.display().to_string()],
        &[("LABWRIGHT_CLIENT_ADDR", "10.1.1.1")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("labwright client 10.1.1.1/32 would lose tcp/22"),
        "{}",
        text(&out)
    );

    // The live decision trail names the rule that lets the admin in, and an outsider
    // meets the DROP policy.
    let sim = |src: &str| {
        lab.run(
            &[
                "firewall",
                "simulate",
                &spec.display().to_string(),
                "--source",
                src,
                "--dest",
                "node",
                "--port",
                "8006",
                "--state",
                "live",
            ],
            &[],
        )
    };
    let out = sim("192.168.1.50");
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("verdict: ACCEPT"), "{s}");
    assert!(s.contains("[lw:mgmt-admin-webui]"), "{s}");
    let s = String::from_utf8_lossy(&sim("203.0.113.9").stdout).to_string();
    assert!(s.contains("verdict: DROP (cluster policy DROP)"), "{s}");
}

#[test]
fn the_guard_holds_firewall_changes_back() {
    let lab = Lab::new();
    let text_spec = std::fs::read_to_string(preprod())
        .expect("spec")
        .replace("allowFirewallChanges: true", "allowFirewallChanges: false");
    let spec = lab.write("guarded.yaml", &text_spec);
    let plan = lab.plan_json(&spec);
    assert_eq!(
        plan["actions"].as_array().map(Vec::len),
        Some(0),
        "{plan:#}"
    );
    let blocked = plan["held"].as_array().expect("blocked");
    assert_eq!(blocked.len(), 10);
    assert!(blocked.iter().all(|b| {
        b["unblock"]
            .as_str()
            .is_some_and(|u| u.contains("allowFirewallChanges"))
    }));
}

#[test]
fn a_spec_that_locks_the_client_out_is_refused_at_plan_time() {
    let lab = Lab::new();
    let spec = lab.write("lockout.yaml", LOCKOUT);
    let out = lab.run(&["plan", &spec.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("the lockout proof failed"), "{all}");
    // The flow, what drops it, and the fix.
    assert!(
        all.contains("labwright client 192.168.1.50/32 would lose tcp/22"),
        "{all}"
    );
    assert!(all.contains("DROP by cluster policy DROP"), "{all}");
    assert!(all.contains("after step `fw-cluster-enable`"), "{all}");
    assert!(
        all.contains(
            "Fix: add `{ id: mgmt-22-192-168-1-50-32, action: ACCEPT, source: 192.168.1.50/32"
        ),
        "{all}"
    );

    // apply refuses the same way and writes nothing.
    let out = lab.apply(&spec, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = lab.run(
        &[
            "firewall",
            "simulate",
            &spec.display().to_string(),
            "--source",
            "192.168.1.50",
            "--port",
            "8006",
            "--state",
            "live",
        ],
        &[],
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("firewall disabled at cluster level"),
        "{}",
        text(&out)
    );
}

#[test]
fn forced_past_the_proof_the_simulator_refuses_the_next_connection() {
    let lab = Lab::new();
    let spec = lab.write("lockout.yaml", LOCKOUT);
    let out = lab.apply(&spec, &[("LABWRIGHT_UNSAFE_SKIP_LOCKOUT_PROOF", "1")]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("lockout proof FAILED and is being ignored"),
        "{all}"
    );
    // The step that switches the firewall on is applied, and the very next
    // connection — the probe's fresh one — is refused by the simulated node.
    assert!(
        all.contains(
            "FAILED fw-cluster-enable: probe over a fresh connection failed after this step"
        ),
        "{all}"
    );
    assert!(all.contains("cannot connect"), "{all}");
    // The kept-alive connection survived (established traffic passes), so the step was
    // reverted and the node answers new connections again.
    assert!(
        all.contains("the step was reverted and the node answers again"),
        "{all}"
    );
    assert!(all.contains("Not run: fw-cluster-policy-in"), "{all}");
    let out = lab.run(&["scan"], &[]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn the_reference_matrix_has_no_cell_in_disagreement() {
    let lab = Lab::new();
    let spec = repo("specs/jarvis-homelab.desired.yaml");
    for phase in ["0", "2"] {
        let out = lab.run(
            &[
                "firewall",
                "matrix",
                &spec.display().to_string(),
                "--phase",
                phase,
                "-o",
                "json",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["disagreements"], 0, "{v:#}");
        let cell = |from: &str, to: &str, ports: &str| {
            v["cells"]
                .as_array()
                .and_then(|c| {
                    c.iter()
                        .find(|x| x["from"] == from && x["to"] == to && x["ports"] == ports)
                })
                .cloned()
                .unwrap_or(Value::Null)
        };
        if phase == "2" {
            assert_eq!(cell("iot", "home-assistant", "tcp/8123")["reach"], "allow");
            assert_eq!(cell("iot", "node", "tcp/8006")["reach"], "deny");
            assert_eq!(cell("iot", "node", "tcp/8006")["intent"], "deny");
            assert_eq!(cell("services", "node", "tcp/22")["reach"], "deny");
            assert_eq!(cell("iot", "app-host", "tcp/22")["reach"], "deny");
        }
        assert_eq!(cell("tailscale", "node", "tcp/22")["reach"], "allow");
        assert_eq!(cell("management", "node", "tcp/8006")["intent"], "allow");
    }

    // A spec whose allowlist contradicts the matrix is flagged.
    let text_spec = std::fs::read_to_string(&spec).expect("spec").replace(
        "- { from: iot, ports: [8123, 1883], comment: IOT devices → HA and MQTT }",
        "- { from: iot, ports: [8123], comment: IOT devices → HA }",
    );
    let broken = lab.write("broken.yaml", &text_spec);
    let out = lab.run(
        &[
            "firewall",
            "matrix",
            &broken.display().to_string(),
            "--phase",
            "2",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("✗ iot → home-assistant tcp/1883"),
        "{}",
        text(&out)
    );
}

#[test]
fn drop_rules_land_in_place_and_a_reorder_is_one_move() {
    let lab = Lab::new();
    // A DROP between the allows: created disabled at the top, moved down, then enabled.
    let base = std::fs::read_to_string(preprod()).expect("spec");
    let with_drop = base.replace(
        "      - id: ping-lan\n",
        "      - id: no-smb\n        action: DROP\n        proto: tcp\n        dport: \"139,445\"\n      - id: ping-lan\n",
    );
    assert_ne!(with_drop, base);
    let spec = lab.write("drop.yaml", &with_drop);
    let out = lab.apply(&spec, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let again = lab.plan_json(&spec);
    assert_eq!(
        again["actions"].as_array().map(Vec::len),
        Some(0),
        "{again:#}"
    );

    // Swap two rules in the spec: one move of one rule, keyed by its id.
    let swapped = with_drop.replace(
        "      - id: mgmt-tailscale\n        action: ACCEPT\n        source: tailnet\n        proto: tcp\n        dport: \"22,8006\"\n        comment: Tailscale → SSH and web UI\n",
        "",
    );
    let swapped = swapped.replace(
        "      - id: mgmt-admin-ssh\n",
        "      - id: mgmt-tailscale\n        action: ACCEPT\n        source: tailnet\n        proto: tcp\n        dport: \"22,8006\"\n        comment: Tailscale → SSH and web UI\n      - id: mgmt-admin-ssh\n",
    );
    assert_ne!(swapped, with_drop);
    let spec2 = lab.write("swapped.yaml", &swapped);
    let plan = lab.plan_json(&spec2);
    let ids: Vec<&str> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, ["fw-cluster-rule-mgmt-tailscale"], "{plan:#}");
    let out = lab.apply(&spec2, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let again = lab.plan_json(&spec2);
    assert_eq!(
        again["actions"].as_array().map(Vec::len),
        Some(0),
        "{again:#}"
    );
}

#[test]
fn vm_allowlists_are_applied_after_the_vm_exists() {
    let lab = Lab::new();
    let base = std::fs::read_to_string(repo("specs/nas.desired.yaml")).expect("spec");
    let text_spec = base
        .replace(
            "allowFirewallChanges: false",
            "allowFirewallChanges: true #",
        )
        .replace(
            "  - vmid: 300\n",
            "    firewall:\n      policyIn: DROP\n      allow:\n        - { from: lan, ports: [22], comment: SSH from the LAN }\n        - { from: tailscale, ports: [22] }\n  - vmid: 300\n",
        );
    let env = [("TAILSCALE_AUTHKEY", "tskey-auth-test")];
    // Without the datacenter master switch the allowlist filters nothing: the plan says so.
    let spec = lab.write("nasfw-off.yaml", &text_spec);
    let out = lab.run(&["plan", &spec.display().to_string()], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("VM allowlists filter nothing while the datacenter firewall is off"),
        "{}",
        text(&out)
    );
    let text_spec = format!(
        "{text_spec}\nfirewall:\n  datacenter:\n    options: {{ enable: true, policyIn: ACCEPT }}\n"
    );
    let spec = lab.write("nasfw.yaml", &text_spec);
    let out = lab.run(&["plan", &spec.display().to_string(), "-o", "json"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    let fw_rule = plan["actions"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == "fw-vm100-rule-allow-lan"))
        .cloned()
        .unwrap_or(Value::Null);
    assert!(
        fw_rule["dependsOn"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "vm-100-create")),
        "{fw_rule:#}"
    );
    let out = lab.apply(&spec, &env);
    assert!(out.status.success(), "{}", text(&out));
    let out = lab.run(&["plan", &spec.display().to_string(), "-o", "json"], &env);
    let again: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        again["actions"].as_array().map(Vec::len),
        Some(0),
        "{again:#}"
    );
    // The live VM firewall lets the LAN in on 22 and nobody on 80.
    let sim = |src: &str, port: &str| {
        let o = lab.run(
            &[
                "firewall",
                "simulate",
                &spec.display().to_string(),
                "--source",
                src,
                "--dest",
                "vm:100",
                "--port",
                port,
                "--state",
                "live",
            ],
            &env,
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let s = sim("192.168.1.77", "22");
    assert!(s.contains("verdict: ACCEPT"), "{s}");
    assert!(s.contains("[lw:allow-lan]"), "{s}");
    let s = sim("192.168.1.77", "80");
    assert!(s.contains("verdict: DROP (vm 100 policy DROP)"), "{s}");
}

/// `--state live` is the node's firewall, whichever spec is given: a spec without a
/// `firewall:` block must not make the live datacenter firewall look disabled.
#[test]
fn live_state_reads_the_node_firewall_even_when_the_spec_declares_none() {
    let lab = Lab::new();
    let out = lab.apply(&preprod(), &[]);
    assert!(out.status.success(), "apply: {}", text(&out));
    let verdict = |spec: &Path| -> Value {
        let out = lab.run(
            &[
                "firewall",
                "simulate",
                &spec.display().to_string(),
                "--state",
                "live",
                "--source",
                "203.0.113.9",
                "--port",
                "22",
                "-o",
                "json",
            ],
            &[],
        );
        assert!(out.status.success(), "simulate: {}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("simulate JSON");
        v["decision"].clone()
    };
    let with_fw = verdict(&preprod());
    let without_fw = verdict(&repo("specs/nas.desired.yaml"));
    assert_eq!(
        with_fw["verdict"], without_fw["verdict"],
        "{with_fw:#}\n{without_fw:#}"
    );
    assert_ne!(without_fw["verdict"], "ACCEPT", "{without_fw:#}");
    assert!(
        !without_fw.to_string().contains("disabled"),
        "the live firewall is on: {without_fw:#}"
    );
}
