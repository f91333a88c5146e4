//! The bridge wave (issue 13) on `labwright sim --scenario hdds`: phase 2 of the
//! reference spec with `allowHostNetworkChanges: true` creates vmbr1 and vmbr2 in one
//! reload and the guests on them start; a failed reload or a reload that cuts
//! management is undone — the node's network is as before, nothing staged, and new
//! connections to the API still work — and apply says so.

mod common;

use std::path::PathBuf;

use common::{Lab, SimProcess, action_ids, rt};
use labwright_pve::task::TaskListFilter;

const NODE: &str = "proxmox";

fn phase_two(lab: &Lab) -> PathBuf {
    lab.spec_copy("jarvis-homelab.desired.yaml", |t| {
        t.replacen("\nphase: 0\n", "\nphase: 2\n", 1).replacen(
            "allowHostNetworkChanges: false",
            "allowHostNetworkChanges: true",
            1,
        )
    })
}

fn lab_on(sim: &SimProcess) -> Lab {
    let mut lab = Lab::new();
    lab.target = sim.target();
    lab.env = sim.ssh_env();
    lab
}

fn apply(lab: &Lab, spec: &std::path::Path) -> common::Out {
    let mut c = lab.apply_cmd(spec);
    // Phase 1's pool comes with phase 2 (it erases its disks: critical).
    c.args(["--allow-risk", "critical"]);
    c.timeout(std::time::Duration::from_secs(240));
    common::run(c)
}

/// The node's bridges, and whether changes are staged, read over a new client.
fn bridges(sim: &SimProcess) -> (Vec<(String, bool, Option<String>)>, bool) {
    let list = rt()
        .block_on(sim.client().network_list(NODE, None))
        .expect("a new connection to the API works");
    let b = list
        .ifaces
        .iter()
        .filter(|i| i.iface_type == "bridge")
        .map(|i| (i.iface.clone(), i.active.unwrap_or(false), i.cidr.clone()))
        .collect();
    (b, list.changes.is_some())
}

fn reloads(sim: &SimProcess) -> usize {
    let f = TaskListFilter {
        typefilter: Some("srvreload".into()),
        limit: Some(100),
        ..Default::default()
    };
    rt().block_on(sim.client().task_list(NODE, &f))
        .expect("task list")
        .len()
}

fn only_vmbr0(sim: &SimProcess) {
    let (b, staged) = bridges(sim);
    assert_eq!(
        b,
        vec![(
            "vmbr0".to_string(),
            true,
            Some("192.168.1.10/24".to_string())
        )],
        "the node's network is as before"
    );
    assert!(!staged, "nothing left staged");
}

#[test]
fn phase_two_creates_internal_bridges_in_one_reload_and_replans_empty() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = SimProcess::start_with(dir.path(), 0.01, &["--scenario", "hdds"]);
    let lab = lab_on(&sim);
    let spec = phase_two(&lab);
    let plan = lab.plan_json(&spec);
    let w = common::action(&plan, "net-bridges");
    assert_eq!(w["risk"], "high");
    assert_eq!(w["type"], "network.bridges");

    let out = apply(&lab, &spec);
    out.expect_code(0, "phase 2 apply");
    let (b, staged) = bridges(&sim);
    let names: Vec<&str> = b.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(names, ["vmbr0", "vmbr1", "vmbr2"], "{b:?}");
    assert!(b.iter().all(|x| x.1), "all up: {b:?}");
    assert!(!staged);
    assert_eq!(reloads(&sim), 1, "one reload for the whole wave");

    // Guests on the new bridges run.
    let client = sim.client();
    let rt = rt();
    let mut on_new = 0;
    for vm in rt.block_on(client.qemu_list(NODE)).expect("vms") {
        let cfg = rt
            .block_on(client.qemu_config(NODE, vm.vmid))
            .expect("config");
        let nets: Vec<&str> = cfg
            .values
            .iter()
            .filter(|(k, _)| k.starts_with("net"))
            .map(|(_, v)| v.as_str())
            .collect();
        if nets
            .iter()
            .any(|n| n.contains("bridge=vmbr1") || n.contains("bridge=vmbr2"))
        {
            on_new += 1;
            assert_eq!(vm.status, "running", "VM {} on a new bridge runs", vm.vmid);
        }
    }
    assert!(on_new >= 1, "a guest sits on vmbr1 or vmbr2");

    let again = lab.plan_json(&spec);
    assert!(
        !action_ids(&again).iter().any(|i| i == "net-bridges"),
        "second plan: {:?}",
        action_ids(&again)
    );
    let val = lab.run(&["validate", &spec.to_string_lossy(), "-o", "json"]);
    let report = val.json();
    for name in ["bridge vmbr1 exists", "bridge vmbr2 exists"] {
        let c = report["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no check {name}: {report:#}"));
        assert_eq!(c["status"], "pass", "{c}");
    }
}

#[test]
fn a_failed_reload_is_undone_and_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = SimProcess::start_with(
        dir.path(),
        0.01,
        &["--scenario", "hdds", "--fault-reload-failure-rate", "1"],
    );
    let lab = lab_on(&sim);
    let out = apply(&lab, &phase_two(&lab));
    assert_ne!(out.code, 0, "apply reports the failure");
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("network reload failed"), "{text}");
    assert!(text.contains("ifreload -a"), "{text}");
    assert!(text.contains("reverted"), "{text}");
    only_vmbr0(&sim);
    // The failed reload plus the one that restored the old definitions.
    assert_eq!(reloads(&sim), 2);
}

/// A reload that cuts management: no connection is left to restore over, so the
/// dead-man armed over SSH before the reload puts the node's network back by itself
/// (docs/decisions.md, "Bridges"); apply waits for the node to answer and says the
/// step was reverted. Afterwards nothing of the dead-man is left on the node.
#[test]
fn a_reload_that_cuts_management_is_restored() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = SimProcess::start_with(
        dir.path(),
        0.01,
        &["--scenario", "hdds", "--fault-reload-mgmt-cut-rate", "1"],
    );
    let lab = lab_on(&sim);
    let mut c = lab.apply_cmd(&phase_two(&lab));
    c.args(["--allow-risk", "critical"]);
    // The node restores itself 10 s after the dead-man is armed (the reload and the
    // first probe are well within that, even on a busy CI machine).
    c.env("LABWRIGHT_NET_DEADMAN_SECS", "10");
    c.timeout(std::time::Duration::from_secs(240));
    let out = common::run(c);
    assert_ne!(out.code, 0, "apply reports the failure");
    let text = format!("{}{}", out.stdout, out.stderr);
    // Either the probe failed and labwright waited for the node to restore itself,
    // or the cut also stalled the reload's task polling until the dead-man had fired:
    // both end with the node on its previous network, said as such.
    assert!(text.contains("dead-man"), "{text}");
    assert!(
        (text.contains("probe over a fresh connection failed") && text.contains("reverted"))
            || text.contains("the node is back on its previous network"),
        "{text}"
    );
    only_vmbr0(&sim);
    let o = sim.ssh("systemctl is-active lw-net-deadman.timer");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "inactive");
}
