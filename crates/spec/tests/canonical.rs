//! The three canonical specs load, and survive a serialise → reload round trip.

use std::path::PathBuf;

use labwright_spec::{Spec, load_file, load_str};

fn env(name: &str) -> Option<String> {
    match name {
        "ADMIN_PC_CIDR" => Some("192.168.1.50/32".into()),
        _ => None,
    }
}

fn spec_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../specs")
        .join(name)
}

const CANONICAL: [&str; 3] = [
    "nas.desired.yaml",
    "jarvis-homelab.desired.yaml",
    "preprod.firewall.desired.yaml",
];

fn load(name: &str) -> Spec {
    match load_file(&spec_path(name), &env) {
        Ok(l) => l.spec,
        Err(f) => panic!("{name} failed to load: {:#?}", f.diagnostics),
    }
}

#[test]
fn canonical_specs_round_trip() {
    for name in CANONICAL {
        let spec = load(name);
        let yaml = labwright_spec::to_yaml(&spec).expect("serialises");
        let again = match load_str("roundtrip.yaml", &yaml, &env) {
            Ok(l) => l.spec,
            Err(f) => panic!("{name} re-load failed: {:#?}\n{yaml}", f.diagnostics),
        };
        assert_eq!(spec, again, "{name} changed in the round trip");
    }
}

#[test]
fn interpolation_fills_management_cidr() {
    let spec = load("nas.desired.yaml");
    let cidrs: Vec<String> = spec
        .safety_guards
        .management_access_cidrs
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(cidrs, ["192.168.1.50/32"]);
    assert_eq!(
        spec.vms.iter().map(|v| v.vmid).collect::<Vec<_>>(),
        [100, 300, 400]
    );
}

#[test]
fn reference_spec_covers_all_phases() {
    let spec = load("jarvis-homelab.desired.yaml");
    let phases: std::collections::BTreeSet<u8> = spec.vms.iter().map(|v| v.phase.0).collect();
    assert!(phases.contains(&0) && phases.contains(&2));
    let storage = spec.storage.expect("phase-1 storage");
    assert_eq!(storage.zfs_pools[0].name, "tank");
    assert!(spec.firewall.and_then(|f| f.matrix).is_some());
    assert!(spec.router.is_some());
}
