//! Small helpers shared by the handlers.

use std::time::{SystemTime, UNIX_EPOCH};

use indexmap::IndexMap;
use sha1::{Digest, Sha1};

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Fractional seconds since the epoch.
pub fn now_f() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// SHA-1 hex of a text, PVE's digest.
pub fn sha1_hex(s: &str) -> String {
    hex::encode(Sha1::digest(s.as_bytes()))
}

/// A deterministic MAC with Proxmox's `BC:24:11` prefix.
pub fn mac_for(n: u64) -> String {
    let b = n.wrapping_mul(2_654_435_761).to_be_bytes();
    format!("BC:24:11:{:02X}:{:02X}:{:02X}", b[5], b[6], b[7])
}

/// A deterministic UUID-shaped string from a counter.
pub fn uuid_for(n: u64, salt: u64) -> String {
    let a = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    let b = a.rotate_left(29).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let h = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Renders a VM config section the way `<vmid>.conf` stores it (description first).
pub fn render_conf(conf: &IndexMap<String, String>) -> String {
    let mut out = String::new();
    if let Some(d) = conf.get("description") {
        for l in d.lines() {
            out.push('#');
            out.push_str(l);
            out.push('\n');
        }
    }
    let mut keys: Vec<&String> = conf.keys().filter(|k| *k != "description").collect();
    keys.sort();
    for k in keys {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(&conf[k]);
        out.push('\n');
    }
    out
}

/// Perl truthiness of a config value.
pub fn truthy(s: Option<&String>) -> bool {
    s.is_some_and(|v| !v.is_empty() && v != "0")
}
