//! Loading the reference spec the way the other crates' tests do.
#![allow(dead_code)]

use labwright_spec::Spec;

pub fn env(name: &str) -> Option<String> {
    (name == "ADMIN_PC_CIDR").then(|| "192.168.1.50/32".to_string())
}

pub fn load(text: &str) -> Spec {
    match labwright_spec::load_str("test.yaml", text, &env) {
        Ok(l) => l.spec,
        Err(f) => panic!("spec did not load: {:?}", f.diagnostics),
    }
}

pub const REFERENCE: &str = include_str!("../../../../specs/jarvis-homelab.desired.yaml");

/// The reference spec, as declared (its `phase:` is 0; callers compile at phase 2).
pub fn reference() -> Spec {
    load(REFERENCE)
}
