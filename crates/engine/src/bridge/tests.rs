//! The bridge wave planned against hand-built scans: one high-risk wave for the
//! missing internal bridges, held without the guard, the management bridge refused,
//! guests on the new bridges waiting for the wave.

use std::collections::BTreeMap;

use labwright_spec::Spec;

use super::*;
use crate::observed::Observed;
use crate::plan::plan;

fn env(name: &str) -> Option<String> {
    match name {
        "ADMIN_PC_CIDR" => Some("192.168.1.50/32".into()),
        "TAILSCALE_AUTHKEY" => Some("tskey-auth-demo".into()),
        _ => None,
    }
}

/// The reference spec at phase 2, the guard as given, `edit` applied to the text.
fn spec(allow: bool, edit: impl FnOnce(String) -> String) -> Spec {
    let text = include_str!("../../../../specs/jarvis-homelab.desired.yaml")
        .replacen("\nphase: 0\n", "\nphase: 2\n", 1)
        .replacen(
            "allowHostNetworkChanges: false",
            &format!("allowHostNetworkChanges: {allow}"),
            1,
        );
    match labwright_spec::load_str("test.yaml", &edit(text), &env) {
        Ok(l) => l.spec,
        Err(f) => panic!("spec did not load: {:?}", f.diagnostics),
    }
}

fn vmbr0() -> ObservedBridge {
    ObservedBridge {
        ports: vec!["nic0".into()],
        cidr: Some("192.168.1.10/24".into()),
        gateway: Some("192.168.1.1".into()),
        comment: Some("LAN uplink".into()),
        autostart: true,
        active: true,
    }
}

fn observed(bridges: BTreeMap<String, ObservedBridge>) -> Observed {
    Observed {
        node: "proxmox".into(),
        pve_version: Some("9.1.3".into()),
        vms: BTreeMap::new(),
        storages: Vec::new(),
        backup_jobs: BTreeMap::new(),
        network: Some(ObservedNetwork {
            bridges,
            pending: None,
        }),
        storage: None,
        pci: None,
        requests: 0,
    }
}

fn only_vmbr0() -> Observed {
    observed(BTreeMap::from([("vmbr0".to_string(), vmbr0())]))
}

fn wave(p: &crate::plan::Plan) -> Option<&Action> {
    p.actions.iter().find(|a| a.id == wave_id())
}

#[test]
fn missing_internal_bridges_are_one_high_risk_wave() {
    let p = plan(&spec(true, |t| t), &only_vmbr0());
    let waves: Vec<_> = p
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::NetworkBridges)
        .collect();
    assert_eq!(waves.len(), 1, "one wave: {:?}", p.actions);
    let w = waves[0];
    assert_eq!(w.id.to_string(), "net-bridges");
    assert_eq!(w.risk, Risk::High);
    let crate::op::Op::Bridge(op) = &w.op else {
        panic!("a bridge op: {:?}", w.op)
    };
    let names: Vec<&str> = op.create.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["vmbr1", "vmbr2"]);
    assert!(
        op.create
            .iter()
            .all(|d| d.ports.is_empty() && d.cidr.is_none())
    );
    assert_eq!(
        op.create[0].comment.as_deref(),
        Some("SERVICES internal-only")
    );
    assert!(op.update.is_empty(), "vmbr0 untouched: {:?}", op.update);
    let reloads = w
        .api_calls
        .iter()
        .filter(|c| c.starts_with("PUT /nodes/proxmox/network ("))
        .count();
    assert_eq!(reloads, 1, "one reload: {:?}", w.api_calls);
    assert_eq!(
        w.api_calls
            .iter()
            .filter(|c| c.starts_with("POST /nodes/proxmox/network"))
            .count(),
        2
    );
    assert!(
        w.elements.contains(&"networks.bridges.vmbr1".to_string()),
        "{:?}",
        w.elements
    );
    // Nothing about the bridges is held.
    assert!(
        !p.held.iter().any(|h| h.target.starts_with("bridge")),
        "{:?}",
        p.held
    );
}

#[test]
fn without_the_guard_the_wave_is_held_with_the_way_out() {
    let p = plan(&spec(false, |t| t), &only_vmbr0());
    assert!(wave(&p).is_none(), "no wave without the guard");
    let h = p
        .held
        .iter()
        .find(|h| h.target == "bridge `vmbr1`")
        .expect("vmbr1 held");
    assert!(
        h.reason.contains("the node has no bridge `vmbr1`"),
        "{}",
        h.reason
    );
    assert!(h.reason.contains("allowHostNetworkChanges"), "{}", h.reason);
    assert!(
        h.unblock.contains("allowHostNetworkChanges: true"),
        "{}",
        h.unblock
    );
    // What needs the bridge is held too (not attempted, not waiting).
    assert!(
        p.held.iter().any(|h| h.target == "vm/150 firewall-router"),
        "{:?}",
        p.held
    );
    assert!(!p.actions.iter().any(|a| a.id.vmid() == Some(150)));
}

#[test]
fn guests_on_new_bridges_wait_for_the_wave() {
    let p = plan(&spec(true, |t| t), &only_vmbr0());
    // Home Assistant moves to vmbr2 in phase 2 (app-host waits for phase 1 storage
    // in this scan, so it is held for that).
    let ha: Vec<&Action> = p
        .actions
        .iter()
        .filter(|a| a.id.vmid() == Some(400))
        .collect();
    assert!(!ha.is_empty(), "home-assistant is planned: {:?}", p.held);
    for a in &ha {
        assert!(
            a.depends_on.contains(&wave_id()),
            "{} waits for the wave: {:?}",
            a.id,
            a.depends_on
        );
    }
    // VM 100 stays on vmbr0: it does not wait.
    for a in p.actions.iter().filter(|a| a.id.vmid() == Some(100)) {
        assert!(!a.depends_on.contains(&wave_id()), "{}", a.id);
    }
    assert!(
        !p.held.iter().any(|h| h.target == "vm/400 home-assistant"),
        "{:?}",
        p.held
    );
}

#[test]
fn moving_the_management_address_is_refused_with_the_reason() {
    let s = spec(true, |t| {
        t.replacen("address: 192.168.1.10/24", "address: 192.168.1.20/24", 1)
    });
    let p = plan(&s, &only_vmbr0());
    let h = p
        .held
        .iter()
        .find(|h| h.target == "bridge `vmbr0`")
        .expect("vmbr0 refused");
    assert!(h.reason.starts_with("critical, refused"), "{}", h.reason);
    assert!(
        h.reason
            .contains("move its address from 192.168.1.10/24 to 192.168.1.20/24"),
        "{}",
        h.reason
    );
    assert!(h.unblock.contains("management bridge"), "{}", h.unblock);
    // The internal bridges still go ahead; vmbr0 is in no action.
    let w = wave(&p).expect("the wave for vmbr1/vmbr2");
    assert!(!w.elements.iter().any(|e| e.contains("vmbr0")));
}

#[test]
fn dropping_the_uplink_or_gateway_is_refused() {
    let s = spec(true, |t| {
        t.replacen("ports: [nic0]", "ports: []", 1)
            .replacen("      gateway: 192.168.1.1\n", "", 1)
    });
    let p = plan(&s, &only_vmbr0());
    let h = p
        .held
        .iter()
        .find(|h| h.target == "bridge `vmbr0`")
        .expect("vmbr0 refused");
    assert!(
        h.reason.contains("remove its gateway 192.168.1.1"),
        "{}",
        h.reason
    );
    assert!(h.reason.contains("drop its port nic0"), "{}", h.reason);
}

#[test]
fn a_new_bridge_taking_the_management_address_is_refused() {
    let s = spec(true, |t| {
        t.replacen(
            "      ports: []\n      comment: SERVICES internal-only",
            "      ports: []\n      address: 192.168.1.10/24\n      comment: SERVICES internal-only",
            1,
        )
    });
    let p = plan(&s, &only_vmbr0());
    let h = p
        .held
        .iter()
        .find(|h| h.target == "bridge `vmbr1`")
        .expect("vmbr1 refused");
    assert!(h.reason.contains("management address"), "{}", h.reason);
    let w = wave(&p).expect("vmbr2 still goes");
    let crate::op::Op::Bridge(op) = &w.op else {
        panic!()
    };
    assert_eq!(op.create.len(), 1);
    assert_eq!(op.create[0].name, "vmbr2");
}

#[test]
fn a_converged_node_has_no_wave_and_a_comment_drift_joins_it() {
    let mut b = BTreeMap::from([("vmbr0".to_string(), vmbr0())]);
    for (n, c) in [
        ("vmbr1", "SERVICES internal-only"),
        ("vmbr2", "IOT internal-only"),
    ] {
        b.insert(
            n.into(),
            ObservedBridge {
                comment: Some(c.into()),
                autostart: true,
                active: true,
                ..Default::default()
            },
        );
    }
    let s = spec(true, |t| t);
    let p = plan(&s, &observed(b.clone()));
    assert!(wave(&p).is_none(), "{:?}", p.actions);
    // The management bridge's comment drifts: a note, never a reload.
    let mut m = b.clone();
    if let Some(x) = m.get_mut("vmbr0") {
        x.comment = None;
    }
    let p = plan(&s, &observed(m));
    assert!(wave(&p).is_none());
    assert!(p.notes.iter().any(|n| n.contains("vmbr0")), "{:?}", p.notes);
    // Another bridge's comment drifts: the wave updates it, remembering the old one.
    if let Some(x) = b.get_mut("vmbr2") {
        x.comment = Some("old".into());
    }
    let p = plan(&s, &observed(b));
    let w = wave(&p).expect("comment wave");
    let crate::op::Op::Bridge(op) = &w.op else {
        panic!()
    };
    assert!(op.create.is_empty());
    assert_eq!(op.update.len(), 1);
    assert_eq!(op.update[0].before.comment.as_deref(), Some("old"));
    assert_eq!(
        op.update[0].want.comment.as_deref(),
        Some("IOT internal-only")
    );
}

#[test]
fn foreign_staged_changes_hold_the_wave() {
    let mut o = only_vmbr0();
    if let Some(n) = o.network.as_mut() {
        n.pending = Some("--- a\n+++ b\n+auto vmbr9\n".into());
    }
    let p = plan(&spec(true, |t| t), &o);
    assert!(wave(&p).is_none());
    let h = p
        .held
        .iter()
        .find(|h| h.target == "bridge `vmbr1`")
        .expect("held");
    assert!(h.reason.contains("staged network changes"), "{}", h.reason);
}

#[test]
fn staged_changes_of_the_waves_own_bridges_are_recognised() {
    let names = vec!["vmbr1".to_string(), "vmbr2".to_string()];
    // An interrupted wave: its two stanzas staged (whole-file diff, as the simulator
    // gives; PVE's `diff -u` has the stanza headers in the added lines too).
    let created = "--- /etc/network/interfaces\n+++ /etc/network/interfaces.new\n@@ -1,9 +1,21 @@\n auto lo\n iface lo inet loopback\n \n auto vmbr0\n iface vmbr0 inet static\n \taddress 192.168.1.10/24\n+\n+auto vmbr1\n+iface vmbr1 inet manual\n+\tbridge-ports none\n+#SERVICES internal-only\n+\n+auto vmbr2\n+iface vmbr2 inet manual\n+\tbridge-ports none\n";
    assert!(staged_only_for(created, &names));
    // Its revert of them, staged and not reloaded.
    let reverted = "--- a\n+++ b\n@@ -8,10 +8,0 @@\n-auto vmbr1\n-iface vmbr1 inet manual\n-\tbridge-ports none\n-\n-auto vmbr2\n-iface vmbr2 inet manual\n-\tbridge-ports none\n";
    assert!(staged_only_for(reverted, &names));
    // Someone else's change to the management bridge is not ours.
    let theirs = "--- a\n+++ b\n@@ -4,4 +4,4 @@\n auto vmbr0\n iface vmbr0 inet static\n-\taddress 192.168.1.10/24\n+\taddress 192.168.1.11/24\n";
    assert!(!staged_only_for(theirs, &names));
    // A change whose stanza the context does not show is not ours either.
    let headless =
        "--- a\n+++ b\n@@ -12,3 +12,3 @@\n \tbridge-stp off\n-\tbridge-fd 0\n+\tbridge-fd 2\n";
    assert!(!staged_only_for(headless, &names));
    // A `source` line is nobody's bridge.
    let source = "--- a\n+++ b\n@@ -1,1 +1,2 @@\n auto lo\n+source /etc/network/interfaces.d/*\n";
    assert!(!staged_only_for(source, &names));
    assert!(
        !staged_only_for("", &names),
        "no change is not a change of ours"
    );
}

#[test]
fn the_wave_discards_its_own_staged_changes_and_holds_on_others() {
    let ours = "--- a\n+++ b\n@@ -1,2 +1,6 @@\n auto vmbr0\n iface vmbr0 inet static\n+\n+auto vmbr1\n+iface vmbr1 inet manual\n+\tbridge-ports none\n";
    let mut o = only_vmbr0();
    if let Some(n) = o.network.as_mut() {
        n.pending = Some(ours.into());
    }
    let p = plan(&spec(true, |t| t), &o);
    let w = wave(&p).expect("the wave is planned");
    let crate::op::Op::Bridge(op) = &w.op else {
        panic!("not a bridge op");
    };
    assert!(op.discard_staged);
    assert!(
        w.op.api_calls()[0].starts_with("DELETE /nodes/proxmox/network"),
        "{:?}",
        w.op.api_calls()
    );
    let theirs = "--- a\n+++ b\n@@ -1,3 +1,3 @@\n auto vmbr0\n iface vmbr0 inet static\n-\taddress 192.168.1.10/24\n+\taddress 192.168.1.11/24\n";
    if let Some(n) = o.network.as_mut() {
        n.pending = Some(theirs.into());
    }
    let p = plan(&spec(true, |t| t), &o);
    assert!(
        wave(&p).is_none(),
        "someone else's staged change holds the wave"
    );
    assert!(
        p.held
            .iter()
            .any(|h| h.reason.contains("staged network changes nobody applied")),
        "{:?}",
        p.held
    );
}
