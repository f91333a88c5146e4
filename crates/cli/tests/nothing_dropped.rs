//! Nothing a spec declares is silently dropped: for the three canonical specs at
//! phases 0, 1 and 2, on a simulated node with two spare disks, every element of the
//! spec ends up in the plan as planned, held (with a reason and a way out), deferred,
//! or in place. The element list is derived here from the spec model itself (its
//! serialised form, walked with the JSON Schema to tell maps from structs), not from a
//! hand list, so a new kind in the model is covered without editing this test.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Lab;
use serde_json::Value;

/// Follows `$ref` and picks the non-null branch of `anyOf`/`oneOf` (an `Option<T>`).
fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    if let Some(r) = s.get("$ref").and_then(Value::as_str)
        && let Some(name) = r.strip_prefix("#/$defs/")
        && let Some(def) = root.get("$defs").and_then(|d| d.get(name))
    {
        return resolve(root, def);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = s.get(key).and_then(Value::as_array) {
            let non_null: Vec<&Value> = branches
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if non_null.len() == 1 {
                return resolve(root, non_null[0]);
            }
        }
    }
    s
}

/// Every element of the serialised spec: map entries (a schema with
/// `additionalProperties`), objects in arrays, and objects that carry a `phase`.
/// Values: the phase that applies (own or nearest ancestor's).
fn walk(
    root: &Value,
    schema: &Value,
    value: &Value,
    path: String,
    phase: u64,
    out: &mut BTreeMap<String, u64>,
) {
    let s = resolve(root, schema);
    match value {
        Value::Object(map) => {
            let phase = map.get("phase").and_then(Value::as_u64).unwrap_or(phase);
            if map.contains_key("phase") && !path.is_empty() {
                out.insert(path.clone(), phase);
            }
            let map_schema = s.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match map_schema {
                    Some(item) => {
                        out.insert(p.clone(), phase);
                        walk(root, item, v, p, phase, out);
                    }
                    None => {
                        let child = s
                            .get("properties")
                            .and_then(|ps| ps.get(k))
                            .unwrap_or(&Value::Null);
                        walk(root, child, v, p, phase, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            let item_schema = s.get("items").unwrap_or(&Value::Null);
            for (i, v) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                if v.is_object() {
                    let own = v.get("phase").and_then(Value::as_u64).unwrap_or(phase);
                    out.insert(p.clone(), own);
                }
                walk(root, item_schema, v, p, phase, out);
            }
        }
        _ => {}
    }
}

fn declared_elements(spec_text: &str) -> (BTreeMap<String, u64>, u64) {
    let env = |name: &str| match name {
        "ADMIN_PC_CIDR" => Some("192.168.1.50/32".to_string()),
        _ => None,
    };
    let loaded = labwright_spec::load_str("spec.yaml", spec_text, &env).expect("spec loads");
    let value = serde_json::to_value(&loaded.spec).expect("spec serialises");
    let schema = labwright_spec::json_schema();
    let mut out = BTreeMap::new();
    walk(&schema, &schema, &value, String::new(), 0, &mut out);
    (out, u64::from(loaded.spec.phase.0))
}

fn ancestors(path: &str) -> Vec<String> {
    let mut v = vec![path.to_string()];
    let mut p = path.to_string();
    while let Some(i) = p.rfind(['.', '[']) {
        p.truncate(i);
        v.push(p.clone());
    }
    v
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn check_plan(name: &str, phase: u8, text: &str, plan: &Value) {
    let (declared, spec_phase) = declared_elements(text);
    assert_eq!(spec_phase, u64::from(phase));
    assert!(!declared.is_empty(), "{name}: no elements found");
    let states: BTreeMap<String, &Value> = plan["elements"]
        .as_array()
        .expect("plan.elements")
        .iter()
        .map(|e| (e["path"].as_str().unwrap_or_default().to_string(), e))
        .collect();
    let in_actions: BTreeSet<String> = plan["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| strings(&a["elements"]))
        .collect();
    let in_held: BTreeSet<String> = plan["held"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|h| strings(&h["elements"]))
        .collect();
    for h in plan["held"].as_array().into_iter().flatten() {
        assert!(
            !h["reason"].as_str().unwrap_or_default().is_empty()
                && !h["unblock"].as_str().unwrap_or_default().is_empty(),
            "{name} phase {phase}: a held item without reason or way out: {h}"
        );
    }
    for (path, own_phase) in &declared {
        let Some(state) = states.get(path) else {
            panic!(
                "{name} phase {phase}: `{path}` is declared but the plan does not account for it"
            );
        };
        let status = state["status"].as_str().unwrap_or_default();
        let later = *own_phase > spec_phase;
        assert_eq!(
            status == "deferred",
            later,
            "{name} phase {phase}: `{path}` (phase {own_phase}) is {status}"
        );
        let chain = ancestors(path);
        match status {
            "held" => assert!(
                chain.iter().any(|p| in_held.contains(p)),
                "{name} phase {phase}: `{path}` is held but no held item names it"
            ),
            "planned" => assert!(
                chain.iter().any(|p| in_actions.contains(p)),
                "{name} phase {phase}: `{path}` is planned but no action carries it out"
            ),
            "deferred" => assert!(
                !plan["deferred"].as_array().is_none_or(Vec::is_empty),
                "{name} phase {phase}: `{path}` is deferred but the plan lists nothing deferred"
            ),
            "in-place" => {
                assert!(
                    !chain.iter().any(|p| in_held.contains(p)),
                    "{name} phase {phase}: `{path}` is in place and held at once"
                );
                assert!(
                    !in_actions.contains(path),
                    "{name} phase {phase}: `{path}` is in place but an action carries it out"
                );
            }
            other => panic!("{name} phase {phase}: `{path}` has status {other}"),
        }
    }
}

fn with_phase(text: &str, phase: u8) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("phase:") {
                format!("phase: {phase}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn every_declared_element_is_planned_held_deferred_or_in_place() {
    for name in [
        "nas.desired.yaml",
        "jarvis-homelab.desired.yaml",
        "preprod.firewall.desired.yaml",
    ] {
        for phase in 0..=2u8 {
            let lab = Lab::new();
            let spec = lab.spec_copy(name, |t| with_phase(&t, phase));
            let text = std::fs::read_to_string(&spec).expect("spec copy");
            let out = lab
                .cmd(&["plan", &spec.to_string_lossy(), "-o", "json"])
                .env("LABWRIGHT_SIM_SCENARIO", "hdds")
                .output()
                .expect("run plan");
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name} phase {phase}: plan failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let plan: Value = serde_json::from_slice(&out.stdout).expect("plan json");
            check_plan(name, phase, &text, &plan);
        }
    }
}

#[test]
fn phase_two_on_spare_disks_applies_what_it_can_and_holds_the_rest() {
    let lab = Lab::new();
    let spec = lab.spec_copy("jarvis-homelab.desired.yaml", |t| with_phase(&t, 2));
    let journal = lab.journal_dir();
    let out = common::run({
        let mut c = lab.cmd(&[
            "apply",
            &spec.to_string_lossy(),
            "--yes",
            "--journal-dir",
            &journal.to_string_lossy(),
            // Phase 1's pool comes with phase 2 (it erases its disks: critical).
            "--allow-risk",
            "critical",
        ]);
        c.env("LABWRIGHT_SIM_SCENARIO", "hdds");
        c
    });
    out.expect_code(0, "apply of phase 2 on hdds");
    assert!(!out.stdout.contains("FAILED"), "{}", out.stdout);
    // What needs the missing bridges is held, with the reason, not attempted.
    assert!(
        out.stderr.contains("the node has no bridge `vmbr1`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("vm/150 firewall-router"),
        "{}",
        out.stderr
    );
    // App-host waits for its bridge, so its data migrations wait with it.
    assert!(
        out.stderr.contains("migration/plex-media"),
        "{}",
        out.stderr
    );
    // The VM that needs nothing missing was built.
    let plan = {
        let mut c = lab.cmd(&["plan", &spec.to_string_lossy(), "-o", "json"]);
        c.env("LABWRIGHT_SIM_SCENARIO", "hdds");
        common::run(c).json()
    };
    let ids = common::action_ids(&plan);
    assert!(
        !ids.iter().any(|i| i.starts_with("vm-100-")),
        "VM 100 should be built already: {ids:?}"
    );
    assert!(
        !ids.iter().any(|i| i == "storage-pool-tank"),
        "the pool should be there already: {ids:?}"
    );
}
