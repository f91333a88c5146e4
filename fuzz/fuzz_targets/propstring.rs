//! The PVE property-string codec (`crates/pve/src/propstring.rs`) and the typed views
//! built on it (`vmconfig.rs`).
//!
//! Input: the first line is a VM config key (`net0`, `scsi1`, `agent`, …), the rest
//! is the value. The key picks the format through `format_for_config_key`; keys it
//! does not know use the generic format.
//!
//! Properties, for whatever parses:
//! - the canonical text re-parses to an equal value and is a fixed point
//!   (print ∘ parse ∘ print = print), and `canonicalize` agrees with it;
//! - every entry can be set again through the checked `set` (what the typed helpers
//!   use to print), giving an equal value;
//! - the typed view (NetDevice, Drive, IpConfig, AgentConfig, BootConfig,
//!   PruneBackups) prints and re-parses to an equal value;
//! - nothing panics.

#![no_main]

use labwright_pve::propstring::{
    self, AGENT, BOOT, DRIVE, GENERIC, IPCONFIG, NET, PRUNE_BACKUPS, PropFormat,
    PropertyString, format_for_config_key,
};
use labwright_pve::vmconfig::{
    AgentConfig, BootConfig, Drive, DriveSlot, DriveVolume, IpConfig, NetDevice, PruneBackups,
};
use libfuzzer_sys::fuzz_target;

fn same(a: &PropFormat, b: &PropFormat) -> bool {
    std::ptr::eq(a, b)
}

/// Typed round trip: parse → print → parse gives the same value.
macro_rules! typed_round_trip {
    ($t:ty, $value:expr) => {
        if let Ok(v) = <$t>::parse($value) {
            let text = match v.to_canonical_string() {
                Ok(t) => t,
                Err(e) => panic!(
                    "{} parsed from {:?} does not print: {e}\n{v:?}",
                    stringify!($t),
                    $value
                ),
            };
            match <$t>::parse(&text) {
                Ok(again) => assert_eq!(
                    v,
                    again,
                    "{} changed in a round trip through {text:?}",
                    stringify!($t)
                ),
                Err(e) => panic!(
                    "{} printed as {text:?} does not re-parse: {e}",
                    stringify!($t)
                ),
            }
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (key, value) = input.split_once('\n').unwrap_or(("", input));
    let format: &'static PropFormat = format_for_config_key(key).unwrap_or(&GENERIC);
    let _ = DriveSlot::parse(key).map(|s| s.to_string());

    if let Ok(ps) = PropertyString::parse(value, format) {
        let text = ps.to_canonical_string();
        assert_eq!(ps.to_string(), text, "Display differs from to_canonical_string");
        let again = match PropertyString::parse(&text, format) {
            Ok(p) => p,
            Err(e) => panic!("canonical text {text:?} (from {value:?}) does not re-parse: {e}"),
        };
        assert_eq!(ps, again, "value changed in a round trip through {text:?}");
        assert_eq!(
            again.to_canonical_string(),
            text,
            "canonical text is not a fixed point"
        );
        assert_eq!(
            propstring::canonicalize(value, format).as_deref(),
            Ok(text.as_str()),
            "canonicalize disagrees with parse + print"
        );
        let mut sorted = ps.clone();
        sorted.canonicalize();
        assert_eq!(sorted, ps, "canonicalize() changed the value");
        assert_eq!(sorted.to_canonical_string(), text);

        // Every parsed entry is printable through the checked setter.
        let mut rebuilt = PropertyString::new(format);
        for (k, v) in ps.iter() {
            if let Err(e) = rebuilt.set(k, v) {
                panic!("parsed entry {k:?}={v:?} (from {value:?}) cannot be set back: {e}");
            }
        }
        assert_eq!(rebuilt, ps, "setting the parsed entries gives another value");
    }

    if same(format, &NET) {
        typed_round_trip!(NetDevice, value);
        if let Ok(n) = NetDevice::parse(value) {
            let _ = n.mac_upper();
        }
    } else if same(format, &DRIVE) {
        typed_round_trip!(Drive, value);
        if let Ok(d) = Drive::parse(value) {
            let vol = d.volume();
            let _ = (vol.storage(), d.is_cdrom(), d.is_cloudinit(), d.size_bytes());
            assert_eq!(vol, DriveVolume::parse(&d.file));
        }
    } else if same(format, &IPCONFIG) {
        typed_round_trip!(IpConfig, value);
    } else if same(format, &AGENT) {
        typed_round_trip!(AgentConfig, value);
    } else if same(format, &BOOT) {
        typed_round_trip!(BootConfig, value);
    } else if same(format, &PRUNE_BACKUPS) {
        typed_round_trip!(PruneBackups, value);
        if let Ok(p) = PruneBackups::parse(value) {
            let n = p.normalized();
            assert!(n.validate().is_ok(), "normalized() is invalid: {n:?}");
            assert_eq!(n.normalized(), n, "normalized() is not idempotent");
            // The JSON string form (GET /cluster/backup) reads the same value.
            let from_json: Result<PruneBackups, _> =
                serde_json::from_value(serde_json::Value::String(value.to_string()));
            assert_eq!(from_json.ok(), Some(p), "JSON string form reads differently");
        }
    }
});
