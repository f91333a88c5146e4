//! Property tests: property strings and sizes round-trip through print ↔ parse.

use labwright_pve::propstring::{
    AGENT, BOOT, DRIVE, GENERIC, IPCONFIG, NET, NET_MODELS, PRUNE_BACKUPS, PropFormat,
    PropertyString,
};
use labwright_pve::size::{format_disk_size, parse_disk_size};
use labwright_pve::{Drive, NetDevice};
use proptest::prelude::*;

fn formats() -> impl Strategy<Value = &'static PropFormat> {
    prop_oneof![
        Just(&NET),
        Just(&DRIVE),
        Just(&IPCONFIG),
        Just(&AGENT),
        Just(&BOOT),
        Just(&PRUNE_BACKUPS),
        Just(&GENERIC),
    ]
}

/// Keys that are not aliases (aliases are rewritten on parse by design).
fn key(format: &'static PropFormat) -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,10}".prop_filter("alias keys are rewritten", move |k| {
        !format.aliases.iter().any(|(a, _)| a == k)
            && !format
                .key_alias
                .as_ref()
                .is_some_and(|ka| ka.keys.contains(&k.as_str()))
    })
}

fn value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9:./_+;=-]{1,16}"
}

fn entries() -> impl Strategy<Value = (&'static PropFormat, Vec<(String, String)>)> {
    formats().prop_flat_map(|f| (Just(f), proptest::collection::vec((key(f), value()), 0..8)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn print_parse_roundtrip((format, pairs) in entries()) {
        let mut ps = PropertyString::new(format);
        for (k, v) in &pairs {
            ps.set(k.clone(), v.clone()).expect("printable");
        }
        let text = ps.to_canonical_string();
        let back = PropertyString::parse(&text, format)
            .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(&back, &ps, "text was {:?}", text);
        // Canonical printing is a fixed point.
        prop_assert_eq!(back.to_canonical_string(), text);
    }

    #[test]
    fn parse_is_order_insensitive((format, pairs) in entries(), seed in any::<u64>()) {
        let mut ps = PropertyString::new(format);
        for (k, v) in &pairs {
            ps.set(k.clone(), v.clone()).expect("printable");
        }
        // Print in a scrambled key=value order (no bare values), parse, compare.
        let mut items: Vec<(String, String)> =
            ps.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let n = items.len().max(1);
        items.rotate_left((seed as usize) % n);
        let text: Vec<String> = items.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let back = PropertyString::parse(&text.join(","), format)
            .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(back.to_canonical_string(), ps.to_canonical_string());
    }

    #[test]
    fn net_device_roundtrip(
        model in proptest::sample::select(NET_MODELS),
        mac in proptest::option::of("([0-9A-F]{2}:){5}[0-9A-F]{2}"),
        bridge in proptest::option::of("vmbr[0-9]{1,2}"),
        firewall in proptest::option::of(any::<bool>()),
        tag in proptest::option::of(1u16..4095),
        mtu in proptest::option::of(1u32..65520),
        trunks in proptest::option::of("[0-9]{1,3}(;[0-9]{1,3}){0,2}"),
    ) {
        let n = NetDevice {
            model: model.to_string(),
            macaddr: mac,
            bridge,
            firewall,
            tag,
            mtu,
            trunks,
            ..NetDevice::default()
        };
        let text = n.to_canonical_string().expect("prints");
        prop_assert_eq!(NetDevice::parse(&text).expect("parses"), n);
    }

    #[test]
    fn drive_roundtrip(
        storage in "[a-z][a-z0-9-]{0,8}",
        name in "vm-[0-9]{3}-disk-[0-9]",
        size in proptest::option::of(1u64..(1 << 44)),
        cache in proptest::option::of(proptest::sample::select(&["none", "writeback", "writethrough", "unsafe", "directsync"][..])),
        iothread in proptest::option::of(any::<bool>()),
        ssd in proptest::option::of(any::<bool>()),
        discard in proptest::option::of(proptest::sample::select(&["on", "ignore"][..])),
    ) {
        let d = Drive {
            file: format!("{storage}:{name}"),
            size: size.map(format_disk_size),
            cache: cache.map(String::from),
            iothread,
            ssd,
            discard: discard.map(String::from),
            ..Drive::default()
        };
        let text = d.to_canonical_string().expect("prints");
        prop_assert!(text.starts_with(&d.file));
        prop_assert_eq!(Drive::parse(&text).expect("parses"), d);
    }

    #[test]
    fn size_roundtrip(bytes in any::<u64>()) {
        prop_assert_eq!(parse_disk_size(&format_disk_size(bytes)), Ok(bytes));
    }

    #[test]
    fn size_units(n in 0u64..(1 << 20), unit in 0usize..4) {
        let (suffix, shift) = [("K", 10), ("M", 20), ("G", 30), ("T", 40)][unit];
        prop_assert_eq!(parse_disk_size(&format!("{n}{suffix}")), Ok(n << shift));
        prop_assert_eq!(parse_disk_size(&format!("{n}{suffix}iB")), Ok(n << shift));
    }
}
