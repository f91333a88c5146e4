//! Phase 2 end to end on `labwright sim --scenario hdds` (issue 13): from a phase-1
//! lab, the bridges, the OPNsense router from its seed CD, the readiness gate and the
//! guests' moves onto their segments are planned with their risk and downtime,
//! applied and validated — every checkable matrix cell tried with a TCP connect from
//! a probe namespace on the node or a LAN guest — and a second plan is empty. Then
//! from outside: the API shows the NICs where they belong, plain `ssh` shows no probe
//! namespace left behind, and a spec the router does not enforce fails validate on
//! exactly the cell that differs. Without the router's console step, apply stops
//! before moving any guest and says what to do; after it, apply converges.

mod common;

use std::path::PathBuf;

use common::{Lab, SimProcess, action, action_ids, rt};
use labwright_pve::params::Params;
use serde_json::Value;

const NODE: &str = "proxmox";

fn reference() -> String {
    std::fs::read_to_string(common::spec("jarvis-homelab.desired.yaml")).expect("spec")
}

fn write(lab: &Lab, name: &str, text: &str) -> PathBuf {
    let p = lab.path().join(name);
    std::fs::write(&p, text).expect("write spec");
    p
}

fn at_phase(text: &str, phase: u8) -> String {
    text.replacen("\nphase: 0\n", &format!("\nphase: {phase}\n"), 1)
        .replacen(
            "allowHostNetworkChanges: false",
            &format!("allowHostNetworkChanges: {}", phase >= 2),
            1,
        )
}

/// The reference without phase 1's storage (a faster lab for what phase 2 adds).
fn without_storage(text: &str) -> String {
    let start = text
        .find("# Phase 1: the two HDDs become a ZFS mirror.")
        .expect("the storage section");
    let end = text[start..].find("\nfirewall:").expect("firewall section") + start + 1;
    format!("{}{}", &text[..start], &text[end..])
}

fn lab_on(sim: &SimProcess) -> Lab {
    let mut lab = Lab::new();
    lab.target = sim.target();
    lab.env = sim.ssh_env();
    lab
}

fn apply(lab: &Lab, spec: &std::path::Path, risk: &str, env: &[(&str, &str)]) -> common::Out {
    let mut c = lab.apply_cmd(spec);
    c.args(["--allow-risk", risk]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.timeout(std::time::Duration::from_secs(300));
    common::run(c)
}

fn validate(lab: &Lab, spec: &std::path::Path) -> (i32, Value) {
    let o = lab.run(&["validate", &spec.to_string_lossy(), "-o", "json"]);
    (o.code, o.json())
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check `{name}` in {report:#}"))
}

fn failing(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["status"] == "fail")
                .map(|c| format!("{}: {}", c["name"], c["detail"]))
                .collect()
        })
        .unwrap_or_default()
}

fn config(sim: &SimProcess, vmid: u32) -> Value {
    rt().block_on(
        sim.client()
            .get::<Value>(&format!("/nodes/{NODE}/qemu/{vmid}/config"), Params::new()),
    )
    .expect("VM config")
}

fn bridge_of(net: &Value) -> String {
    net.as_str()
        .unwrap_or_default()
        .split(',')
        .find_map(|p| p.strip_prefix("bridge="))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn phase_two_from_a_phase_one_lab_converges_and_the_matrix_holds() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = SimProcess::start_with(dir.path(), 0.01, &["--scenario", "hdds"]);
    let lab = lab_on(&sim);
    let text = reference();
    apply(
        &lab,
        &write(&lab, "p0.yaml", &at_phase(&text, 0)),
        "high",
        &[],
    )
    .expect_code(0, "phase 0");
    apply(
        &lab,
        &write(&lab, "p1.yaml", &at_phase(&text, 1)),
        "critical",
        &[],
    )
    .expect_code(0, "phase 1");
    let p2 = write(&lab, "p2.yaml", &at_phase(&text, 2));

    // The plan: bridges (high), the router's seed, the router, its gate, then the
    // moves with their downtime, each after the gate.
    let plan = lab.plan_json(&p2);
    let ids = action_ids(&plan);
    for id in [
        "net-bridges",
        "router-150-seed",
        "vm-150-create",
        "vm-150-start",
        "router-150-ready",
        "vm-300-update",
        "vm-300-reboot",
        "vm-400-update",
        "vm-400-reboot",
    ] {
        assert!(ids.contains(&id.to_string()), "{id} missing from {ids:?}");
    }
    assert_eq!(action(&plan, "net-bridges")["risk"], "high");
    let pos = |id: &str| ids.iter().position(|x| x == id).unwrap_or(usize::MAX);
    assert!(pos("net-bridges") < pos("vm-150-create"));
    assert!(pos("vm-150-start") < pos("router-150-ready"));
    for vm in ["vm-300-update", "vm-400-update"] {
        let a = action(&plan, vm);
        assert!(pos("router-150-ready") < pos(vm), "{vm} after the gate");
        assert!(
            a["dependsOn"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "router-150-ready")),
            "{a:#}"
        );
        assert!(a["downtimeSeconds"].as_u64().unwrap_or(0) > 0, "{a:#}");
        assert!(a["preSnapshot"].is_string(), "{a:#}");
        assert!(
            a["reason"].as_str().is_some_and(|r| r.contains("reattach")),
            "{a:#}"
        );
    }
    let notes = plan["notes"].to_string();
    assert!(
        notes.contains("manual step") && notes.contains("router-first-boot.md"),
        "{notes}"
    );

    apply(&lab, &p2, "high", &[]).expect_code(0, "phase 2");

    let (code, report) = validate(&lab, &p2);
    assert_eq!(code, 0, "validate: {:?}", failing(&report));
    assert_eq!(report["ok"], true);
    for name in [
        "router link services (vmbr1)",
        "router link iot (vmbr2)",
        "matrix iot → home-assistant tcp/8123",
        "matrix iot → node tcp/22",
        "matrix iot → node tcp/8006",
        "matrix services → node tcp/22",
        "matrix services → node tcp/8006",
        "matrix iot → app-host tcp/22",
        "matrix services → home-assistant tcp/8123",
        "matrix lan → app-host tcp/22",
        "matrix lan → home-assistant tcp/8123",
        "matrix management → node tcp/22",
        "matrix management → node tcp/8006",
        "check home-assistant-ui",
    ] {
        assert_eq!(check(&report, name)["status"], "pass", "{name}");
    }
    // Open where allowed, dropped where denied — the detail says which.
    assert!(
        check(&report, "matrix iot → home-assistant tcp/8123")["detail"]
            .as_str()
            .is_some_and(|d| d.ends_with(": open"))
    );
    assert!(
        check(&report, "matrix iot → node tcp/22")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("dropped"))
    );
    // The tailnet is not probed from here, and says so.
    assert_eq!(
        check(&report, "matrix tailscale → node tcp/22")["status"],
        "skipped"
    );

    let again = common::run({
        let mut c = lab.cmd(&["plan", &p2.to_string_lossy(), "--detailed-exitcode"]);
        c.timeout(std::time::Duration::from_secs(120));
        c
    });
    assert_eq!(again.code, 0, "second plan: {}", again.stdout);

    // From outside: the NICs where they belong, the router's with the MACs the gate
    // checked, and no probe namespace left on the node.
    assert_eq!(bridge_of(&config(&sim, 300)["net0"]), "vmbr1");
    assert_eq!(bridge_of(&config(&sim, 400)["net0"]), "vmbr2");
    let router = config(&sim, 150);
    let gate = action(&plan, "router-150-ready")["changes"].to_string();
    for (slot, bridge) in [("net1", "vmbr1"), ("net2", "vmbr2")] {
        let net = router[slot].as_str().unwrap_or_default();
        let mac = net
            .split(',')
            .next()
            .and_then(|m| m.split_once('='))
            .map(|(_, m)| m)
            .unwrap_or_default();
        assert!(
            gate.contains(mac) && !mac.is_empty(),
            "{slot} {net} in {gate}"
        );
        assert_eq!(bridge_of(&router[slot]), bridge);
    }
    let o = sim.ssh("ip netns list");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "");

    // A matrix the router does not enforce (IOT → app-host allowed in the spec only):
    // validate fails on that cell, and plan says the router's rules are older.
    let loose = write(
        &lab,
        "p2-loose.yaml",
        &at_phase(&text, 2).replacen(
            "      - { from: iot, to: app-host }\n",
            "",
            1,
        ).replacen(
            "      - { from: lan, to: home-assistant, ports: [8123] }\n",
            "      - { from: lan, to: home-assistant, ports: [8123] }\n      - { from: iot, to: app-host, ports: [22] }\n",
            1,
        ),
    );
    let (code, report) = validate(&lab, &loose);
    assert_ne!(code, 0);
    let cell = check(&report, "matrix iot → app-host tcp/22");
    assert_eq!(cell["status"], "fail", "{cell:#}");
    assert!(
        cell["detail"]
            .as_str()
            .is_some_and(|d| d.contains("intent allow") && d.contains("dropped")),
        "{cell:#}"
    );
    assert_eq!(
        failing(&report).len(),
        1,
        "only that cell differs: {:?}",
        failing(&report)
    );
    let plan = lab.plan_json(&loose);
    assert!(
        plan["notes"].to_string().contains("renders to a new seed"),
        "{}",
        plan["notes"]
    );
}

#[test]
fn without_the_console_step_guests_stay_and_apply_says_what_to_do() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = SimProcess::start_with(dir.path(), 0.01, &["--router-console", "manual"]);
    let lab = lab_on(&sim);
    let text = without_storage(&reference());
    apply(
        &lab,
        &write(&lab, "p0.yaml", &at_phase(&text, 0)),
        "high",
        &[],
    )
    .expect_code(0, "phase 0");
    let p2 = write(&lab, "p2.yaml", &at_phase(&text, 2));
    let out = apply(&lab, &p2, "high", &[("LABWRIGHT_ROUTER_WAIT_SECS", "2")]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    for words in [
        "does not answer on 10.10.",
        "console step",
        "router-first-boot.md",
        "Guests were not moved",
    ] {
        assert!(all.contains(words), "`{words}` in {all}");
    }
    assert_eq!(bridge_of(&config(&sim, 300)["net0"]), "vmbr0");
    assert_eq!(bridge_of(&config(&sim, 400)["net0"]), "vmbr0");

    // The step, as the runbook says, through the API's console keys: restart the
    // router, press a key at the importer's prompt, type cd0.
    let client = sim.client();
    let rt = rt();
    let upid = rt
        .block_on(client.qemu_reboot(NODE, 150, None))
        .expect("reboot the router");
    rt.block_on(client.wait_task(&upid, labwright_pve::WaitOptions::default()))
        .expect("the reboot finishes");
    rt.block_on(client.put::<Value>(
        &format!("/nodes/{NODE}/qemu/150/sendkey"),
        Params::new().set("key", "ret"),
    ))
    .expect("sendkey");
    for k in ["c", "d", "0", "ret"] {
        rt.block_on(client.put::<Value>(
            &format!("/nodes/{NODE}/qemu/150/sendkey"),
            Params::new().set("key", k),
        ))
        .expect("sendkey");
    }

    apply(&lab, &p2, "high", &[("LABWRIGHT_ROUTER_WAIT_SECS", "30")])
        .expect_code(0, "phase 2 after the console step");
    assert_eq!(bridge_of(&config(&sim, 300)["net0"]), "vmbr1");
    assert_eq!(bridge_of(&config(&sim, 400)["net0"]), "vmbr2");
    let (code, report) = validate(&lab, &p2);
    assert_eq!(code, 0, "validate: {:?}", failing(&report));
}
