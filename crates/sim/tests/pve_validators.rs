//! Issue 16, "Held to PVE's own validators": requests where PVE's validation code
//! (pve-common JSONSchema with the formats of pve-firewall, qemu-server, pve-manager,
//! proxmox-time) and the simulator disagreed. PVE's answer is the reference.
#![allow(clippy::unwrap_used)]
mod common;

async fn rule(api: &common::Api, path: &str, extra: &[(&str, &str)]) -> common::Resp {
    let mut form = vec![("type", "in"), ("action", "ACCEPT")];
    form.extend_from_slice(extra);
    api.post(path, &form).await
}

/// pve-firewall `parse_address_list` → `Net::IP->new`: host bits in an IPv6 prefix,
/// a range whose end is not of the start's family, Net::IP's own texts; and what
/// Net::IP accepts that `std::net` would not.
#[tokio::test]
async fn firewall_addresses_are_read_by_net_ip() {
    let api = common::start_default().await;
    let p = "/cluster/firewall/rules";
    for (src, err) in [
        (
            "fe80::1/64",
            "invalid format - invalid IP address: Invalid prefix 11111110100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001/64\n",
        ),
        (
            "10.0.0.1-fe80::1",
            "invalid format - invalid IP address: Not a valid IPv4 address fe80::1\n",
        ),
        (
            "fe80::zz",
            "invalid format - invalid IP address: Invalid IP address fe80::zz\n",
        ),
        (
            "10.0.0.5-10.0.0.1",
            "invalid format - invalid IP address: Begin address is greater than End address 10.0.0.5 - 10.0.0.1\n",
        ),
        (
            "1..2",
            "invalid format - invalid IP address: Empty quad in IP address 1..2\n",
        ),
        (
            "10.0.0.0/8,fe80::/64",
            "invalid format - detected mixed ipv4/ipv6 addresses in address list '10.0.0.0/8,fe80::/64'\n",
        ),
        (
            "10.0.0.1-10.0.0.5,10.0.1.1",
            "invalid format - you can't use a range in a list\n",
        ),
        ("10.0.0.1,", "invalid format - extraneous commas in list\n"),
    ] {
        let r = rule(&api, p, &[("source", src)]).await;
        assert_eq!(r.status, 400, "{src}: {:?}", r.body);
        assert_eq!(r.err("source"), err, "{src}");
    }
    for src in [
        "1.2.3",
        "10.0.0.1/24/3",
        "10.0.0.0/-1",
        "10.1",
        "fe80::/64",
        "::ffff:1.2.3.4",
    ] {
        let r = rule(&api, p, &[("source", src)]).await;
        assert_eq!(r.status, 200, "{src}: {:?}", r.body);
    }
    // The family of each side is what the rule stores as ipversion; sides of
    // different families are refused on the second side.
    let r = rule(&api, p, &[("source", "fe80::/64"), ("dest", "10.0.0.1")]).await;
    assert_eq!(r.err("dest"), "detected mixed ipv4/ipv6 addresses in rule");
    let r = rule(&api, p, &[("proto", "icmp"), ("source", "fe80::/64")]).await;
    assert_eq!(
        r.err("source"),
        "detected mixed ipv4/ipv6 addresses in rule"
    );
    let r = rule(&api, p, &[("proto", "icmpv6"), ("dest", "fe80::1")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        api.get("/cluster/firewall/rules/0").await.data()["ipversion"],
        6
    );
}

/// pve-firewall `verify_rule`: ipsets (`management` and `blacklist` included) must be
/// defined; the message names the set without its scope. Aliases are looked up
/// case-insensitively and give the rule their family.
#[tokio::test]
async fn ipset_and_alias_references_follow_verify_rule() {
    let api = common::start_default().await;
    let p = "/cluster/firewall/rules";
    for (src, name) in [
        ("+management", "management"),
        ("+blacklist", "blacklist"),
        ("+dc/nonexist", "nonexist"),
        ("+guest/nonexist", "nonexist"),
    ] {
        let r = rule(&api, p, &[("source", src)]).await;
        assert_eq!(r.status, 400, "{src}");
        assert_eq!(r.err("source"), format!("no such ipset '{name}'"), "{src}");
    }
    assert_eq!(
        api.post("/cluster/firewall/ipset", &[("name", "management")])
            .await
            .status,
        200
    );
    assert_eq!(
        rule(&api, p, &[("source", "+management")]).await.status,
        200
    );
    assert_eq!(
        rule(&api, p, &[("source", "+dc/management")]).await.status,
        200
    );
    let r = rule(&api, p, &[("source", "+9bad")]).await;
    assert_eq!(r.err("source"), "invalid ipset name '+9bad'");
    // Aliases.
    let r = rule(&api, p, &[("dest", "nosuch")]).await;
    assert_eq!(r.err("dest"), "no such alias 'nosuch'");
    let r = api
        .post(
            "/cluster/firewall/aliases",
            &[("name", "NAS"), ("cidr", "fd00::5/128")],
        )
        .await;
    assert_eq!(r.status, 200);
    let a = api.get("/cluster/firewall/aliases/nas").await;
    assert_eq!(a.data()["name"], "NAS");
    assert_eq!(
        a.data()["cidr"],
        "fd00::5",
        "a host-length prefix is dropped"
    );
    assert_eq!(a.data()["ipversion"], 6);
    let r = api
        .post(
            "/cluster/firewall/aliases",
            &[("name", "nas"), ("cidr", "10.0.0.9")],
        )
        .await;
    assert_eq!(r.err("name"), "alias 'nas' already exists");
    assert_eq!(rule(&api, p, &[("dest", "nas")]).await.status, 200);
    assert_eq!(
        api.get("/cluster/firewall/rules/0").await.data()["ipversion"],
        6
    );
    let r = rule(&api, p, &[("source", "10.0.0.1"), ("dest", "dc/Nas")]).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.message(), "detected mixed ipv4/ipv6 addresses in rule\n");
}

/// pve-common `pve_verify_vlan_id_or_range`: the start tag is checked first and each
/// tag is named on its own.
#[tokio::test]
async fn bridge_vids_check_the_start_of_a_range_first() {
    let api = common::start_default().await;
    for (vids, err) in [
        ("1-5000", "invalid VLAN tag '1'"),
        ("2-5000", "invalid VLAN tag '5000'"),
        (
            "100-10",
            "VLAN range must go from lower to higher tag '100-10'",
        ),
        ("x", "invalid VLAN configuration 'x'"),
    ] {
        let r = api
            .post(
                "/nodes/proxmox/network",
                &[
                    ("iface", "vmbr9"),
                    ("type", "bridge"),
                    ("bridge_vlan_aware", "1"),
                    ("bridge_vids", vids),
                ],
            )
            .await;
        assert_eq!(r.status, 400, "{vids}: {:?}", r.body);
        assert!(
            r.err("bridge_vids").contains(err),
            "{vids}: {}",
            r.err("bridge_vids")
        );
    }
}

/// proxmox-time `CalendarEvent::from_str` (through pve-common's CalendarEvent.pm):
/// the error quotes what was left where parsing stopped (formats.md §7.6).
#[tokio::test]
async fn calendar_event_errors_quote_the_text_left() {
    let api = common::start_default().await;
    api.create_vm(100, &[]).await;
    for (ev, tail) in [
        ("12:00:60", "at ':60' - Nom(Eof)"),
        ("*/0", "at '/0' - Nom(Eof)"),
        ("24:00:00", "at ':00' - Nom(Eof)"),
        ("daily 02:00", "at 'daily' - Context(\"weekday\")"),
        ("mon-fri 02:00", "at '-fri 02:00' - Nom(Eof)"),
    ] {
        let r = api
            .post(
                "/cluster/backup",
                &[("vmid", "100"), ("storage", "local"), ("schedule", ev)],
            )
            .await;
        assert_eq!(r.status, 400, "{ev}");
        assert_eq!(
            r.err("schedule"),
            format!(
                "invalid format - invalid calendar event '{ev}' - unable to parse calendar event {tail}\n\n"
            ),
            "{ev}"
        );
    }
    let r = api
        .post(
            "/cluster/backup",
            &[
                ("vmid", "100"),
                ("storage", "local"),
                ("schedule", "mon..fri 02:00"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// qemu-server `pve_verify_cpuset` → `CpuSet::parse_cpuset` splits with Perl's
/// `split /,/`, which drops a trailing empty field.
#[tokio::test]
async fn affinity_ignores_a_trailing_comma() {
    let api = common::start_default().await;
    api.create_vm(100, &[]).await;
    let r = api
        .put("/nodes/proxmox/qemu/100/config", &[("affinity", "0-3,")])
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for bad in [",0-3", "0,,1", "3-1"] {
        let r = api
            .put("/nodes/proxmox/qemu/100/config", &[("affinity", bad)])
            .await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(
            r.err("affinity"),
            "invalid format - unable to parse cpuset option\n",
            "{bad}"
        );
    }
}

/// pve-firewall `parse_port_name_number_or_range`: what is a number, a range or a
/// service name, and which side of a range is named when it is out of bounds.
#[tokio::test]
async fn firewall_ports_follow_parse_port_name_number_or_range() {
    let api = common::start_default().await;
    let p = "/cluster/firewall/rules";
    for (dport, err) in [
        ("1:70000", "invalid port '70000'"),
        ("70000:1", "invalid port '70000'"),
        (
            "80:22",
            "backwards range '80:22' not allowed, did you mean '22:80'?",
        ),
        ("+5", "invalid port '+5'"),
        ("22-80", "invalid port '22-80'"),
        ("22,", "extraneous commas in list"),
        (",22", "invalid port ''"),
        ("echo-request,22", "ICMP ports not allowed in port range"),
    ] {
        let r = rule(&api, p, &[("proto", "tcp"), ("dport", dport)]).await;
        assert_eq!(r.status, 400, "{dport}");
        assert_eq!(
            r.err("dport"),
            format!("invalid format - {err}\n"),
            "{dport}"
        );
    }
    for ok in ["22:80", "ssh,https", "0080", "1,2,3"] {
        assert_eq!(
            rule(&api, p, &[("proto", "tcp"), ("dport", ok)])
                .await
                .status,
            200,
            "{ok}"
        );
    }
}
