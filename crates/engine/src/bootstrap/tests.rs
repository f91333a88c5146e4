use super::*;

#[test]
fn image_names_and_compression_the_node_can_do() {
    assert_eq!(
        image_file("https://x/y/debian-12-genericcloud-amd64.qcow2"),
        Ok("debian-12-genericcloud-amd64.qcow2".into())
    );
    assert_eq!(
        image_file("http://192.168.1.50:8000/haos_ova-16.3.img?x=1"),
        Ok("haos_ova-16.3.raw".into())
    );
    // PVE cannot decompress into `import` content: refused, with the way out.
    let e = image_file("https://github.com/a/16.3/haos_ova-16.3.qcow2.xz").expect_err("xz refused");
    assert!(
        e.contains("xz-compressed") && e.contains("install-haos.md"),
        "{e}"
    );
    assert!(image_file("https://x/y/img.qcow2.gz").is_err());
    assert_eq!(
        iso_compression("https://x/OPNsense-25.7-dvd-amd64.iso.bz2"),
        Ok(Some("bz2".into()))
    );
    assert_eq!(iso_compression("https://x/debian-12.iso"), Ok(None));
    assert!(iso_compression("https://x/a.iso.xz").is_err());
    assert!(image_file("https://x/y/image.iso").is_err());
    assert!(image_file("https://x/y/").is_err());
}

#[test]
fn checksums_are_checked() {
    let hex = "a".repeat(64);
    assert_eq!(
        checksum_parts(&format!("sha256:{hex}")),
        Ok(("sha256".into(), hex.clone()))
    );
    assert!(checksum_parts("sha256:abc").is_err());
    assert!(checksum_parts(&format!("crc32:{hex}")).is_err());
    assert!(checksum_parts(&hex).is_err());
}

#[test]
fn marker_round_trip() {
    let d = with_marker("Tailscale entry point.", "lw-100-0123");
    assert_eq!(d, "Tailscale entry point.\nlabwright-seed: lw-100-0123");
    assert_eq!(seed_marker(&d).as_deref(), Some("lw-100-0123"));
    assert_eq!(strip_seed_marker(&d), "Tailscale entry point.");
    let again = with_marker(&d, "lw-100-4567");
    assert_eq!(seed_marker(&again).as_deref(), Some("lw-100-4567"));
    assert_eq!(again.matches(SEED_MARKER).count(), 1);
    assert_eq!(with_marker("", "lw-1"), "labwright-seed: lw-1");
}

#[test]
fn a_seed_cd_pending_removal_needs_no_reboot() {
    let mut obs = ObservedVm {
        vmid: 100,
        node: "proxmox".into(),
        name: "edge-gateway".into(),
        status: "running".into(),
        tags: Vec::new(),
        lock: None,
        template: false,
        config: Some(BTreeMap::from([("memory".to_string(), "2048".to_string())])),
        digest: None,
        pending: BTreeSet::from(["ide2".to_string()]),
        tool_snapshots: Vec::new(),
    };
    assert!(reboot_pending(&obs).is_empty());
    obs.pending.insert("memory".into());
    assert_eq!(reboot_pending(&obs), BTreeSet::from(["memory".to_string()]));
    // A CD that is being attached (present in the config) does count.
    if let Some(c) = obs.config.as_mut() {
        c.insert("ide2".into(), "local:iso/x.iso,media=cdrom".into());
    }
    assert!(reboot_pending(&obs).contains("ide2"));
}

#[test]
fn import_syntax() {
    assert_eq!(
        import_value("local-lvm:16,cache=none,discard=on", "local:import/d.qcow2"),
        "local-lvm:0,import-from=local:import/d.qcow2,cache=none,discard=on"
    );
    assert_eq!(
        import_value("local-lvm:16", "local:import/d.qcow2"),
        "local-lvm:0,import-from=local:import/d.qcow2"
    );
}

#[test]
fn download_progress_is_read_from_task_log_lines() {
    assert_eq!(
        percent_of("downloaded 40 of 100 units (40.00%)").as_deref(),
        Some("40.00%")
    );
    assert_eq!(
        percent_of("  51200K ........ ........  7% 3.1M 2m").as_deref(),
        Some("7%")
    );
    assert_eq!(percent_of("TASK OK"), None);
    assert_eq!(percent_of("100% sure: no digits before %").as_deref(), None);
}
