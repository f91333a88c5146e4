//! The router kind planned against hand-built scans of the reference spec at phase 2.

use std::collections::{BTreeMap, BTreeSet};

use labwright_spec::Spec;

use super::*;
use crate::bridge::{ObservedBridge, ObservedNetwork};
use crate::observed::{Observed, ObservedVm};
use crate::plan::{Plan, plan};

fn env(name: &str) -> Option<String> {
    match name {
        "ADMIN_PC_CIDR" => Some("192.168.1.50/32".into()),
        "TAILSCALE_AUTHKEY" => Some("tskey-auth-demo".into()),
        _ => None,
    }
}

fn spec(edit: impl FnOnce(String) -> String) -> Spec {
    let text = include_str!("../../../../specs/jarvis-homelab.desired.yaml")
        .replacen("\nphase: 0\n", "\nphase: 2\n", 1)
        .replacen(
            "allowHostNetworkChanges: false",
            "allowHostNetworkChanges: true",
            1,
        );
    match labwright_spec::load_str("test.yaml", &edit(text), &env) {
        Ok(l) => l.spec,
        Err(f) => panic!("spec did not load: {:?}", f.diagnostics),
    }
}

fn bridge(active: bool) -> ObservedBridge {
    ObservedBridge {
        active,
        autostart: true,
        ..Default::default()
    }
}

/// A node with the three bridges up and the given VMs.
fn observed(vms: Vec<ObservedVm>) -> Observed {
    let mut b0 = bridge(true);
    b0.ports = vec!["nic0".into()];
    b0.cidr = Some("192.168.1.10/24".into());
    b0.gateway = Some("192.168.1.1".into());
    b0.comment = Some("LAN uplink".into());
    let mut b1 = bridge(true);
    b1.comment = Some("SERVICES internal-only".into());
    let mut b2 = bridge(true);
    b2.comment = Some("IOT internal-only".into());
    Observed {
        node: "proxmox".into(),
        pve_version: Some("9.1.3".into()),
        vms: vms.into_iter().map(|v| (v.vmid, v)).collect(),
        storages: Vec::new(),
        backup_jobs: BTreeMap::new(),
        network: Some(ObservedNetwork {
            bridges: BTreeMap::from([
                ("vmbr0".to_string(), b0),
                ("vmbr1".to_string(), b1),
                ("vmbr2".to_string(), b2),
            ]),
            pending: None,
        }),
        storage: None,
        pci: None,
        requests: 0,
    }
}

fn vm(vmid: u32, name: &str, config: &[(&str, &str)]) -> ObservedVm {
    ObservedVm {
        vmid,
        node: "proxmox".into(),
        name: name.into(),
        status: "running".into(),
        tags: vec!["lw-managed".into(), "lw-lab-jarvis".into()],
        lock: None,
        template: false,
        config: Some(
            config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        digest: Some("d".into()),
        pending: BTreeSet::new(),
        tool_snapshots: Vec::new(),
    }
}

fn action<'a>(p: &'a Plan, id: &str) -> &'a Action {
    p.actions
        .iter()
        .find(|a| a.id == id)
        .unwrap_or_else(|| panic!("no action {id} in {:?}", ids(p)))
}

fn ids(p: &Plan) -> Vec<String> {
    p.actions.iter().map(|a| a.id.to_string()).collect()
}

fn deps(a: &Action) -> Vec<String> {
    a.depends_on.iter().map(ToString::to_string).collect()
}

fn create_param<'a>(p: &'a Plan, vmid: u32, key: &str) -> &'a str {
    let a = action(p, &format!("vm-{vmid}-create"));
    let Op::Vm(crate::vm::VmOp::CreateVm { params, .. }) = &a.op else {
        panic!("not a create: {:?}", a.op);
    };
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {params:?}"))
}

#[test]
fn a_new_router_gets_its_seed_fixed_macs_and_a_gate_after_its_start() {
    let s = spec(|t| t);
    let p = plan(&s, &observed(Vec::new()));
    let seed = render_seed(&s).expect("the reference router renders");
    let file = seed.file_name(150);
    // The seed goes up before the VM is made, and the VM boots with it in ide2.
    let up = action(&p, "router-150-seed");
    assert_eq!(up.kind, ActionKind::RouterSeed);
    assert_eq!(
        create_param(&p, 150, "ide2"),
        format!("local:iso/{file},media=cdrom")
    );
    assert!(deps(action(&p, "vm-150-create")).contains(&"router-150-seed".to_string()));
    // Every router NIC carries the MAC derived from lab, VMID and slot.
    for (slot, bridge) in [("net0", "vmbr0"), ("net1", "vmbr1"), ("net2", "vmbr2")] {
        let mac = router_nic_mac("jarvis", 150, slot).to_string();
        assert_eq!(
            create_param(&p, 150, slot),
            format!("virtio={mac},bridge={bridge},firewall=0")
        );
    }
    // The gate waits for the router's start and knows what must answer where.
    let gate = action(&p, "router-150-ready");
    assert!(
        deps(gate).contains(&"vm-150-start".to_string()),
        "{:?}",
        deps(gate)
    );
    let Op::Router(RouterOp::WaitReady { links, .. }) = &gate.op else {
        panic!("not a gate: {:?}", gate.op);
    };
    let got: Vec<(String, String, String, String)> = links
        .iter()
        .map(|l| {
            (
                l.ns.bridge.clone(),
                l.ns.gateway.to_string(),
                l.ns.address.to_string(),
                l.mac.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "vmbr2".into(),
                "10.10.20.1".into(),
                "10.10.20.127".into(),
                router_nic_mac("jarvis", 150, "net2").to_string()
            ),
            (
                "vmbr1".into(),
                "10.10.10.1".into(),
                "10.10.10.127".into(),
                router_nic_mac("jarvis", 150, "net1").to_string()
            ),
        ]
    );
    // The plan names the console step, and the LAN router's routes to the segments
    // with the WAN MAC to pin its lease to.
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("manual step at VM 150") && n.contains(FIRST_BOOT_RUNBOOK)),
        "{:?}",
        p.notes
    );
    let wan_mac = router_nic_mac("jarvis", 150, "net0").to_string();
    assert!(
        p.notes.iter().any(
            |n| n.contains("manual step on the LAN's router (192.168.1.1)")
                && n.contains(&wan_mac)
                && n.contains("10.10.20.0/24")
                && n.contains("10.10.10.0/24")
        ),
        "{:?}",
        p.notes
    );
}

#[test]
fn guests_move_only_after_the_gate_and_reboot_for_a_new_lease() {
    let s = spec(|t| t);
    let router_seed = render_seed(&s).expect("renders").file_name(150);
    let seed_cd = format!("local:iso/{router_seed},media=cdrom");
    let net = |slot: &str, bridge: &str| {
        format!(
            "virtio={},bridge={bridge},firewall=0",
            router_nic_mac("jarvis", 150, slot)
        )
    };
    let (n0, n1, n2) = (
        net("net0", "vmbr0"),
        net("net1", "vmbr1"),
        net("net2", "vmbr2"),
    );
    let router = vm(
        150,
        "firewall-router",
        &[
            ("net0", &n0),
            ("net1", &n1),
            ("net2", &n2),
            ("ide2", &seed_cd),
        ],
    );
    // Home Assistant (no phase-1 shares to wait for) still on the LAN.
    let ha = vm(
        400,
        "home-assistant",
        &[("net0", "virtio=BC:24:11:15:60:75,bridge=vmbr0,firewall=1")],
    );
    let p = plan(&s, &observed(vec![router, ha]));
    assert!(
        !ids(&p).iter().any(|i| i == "router-150-seed"),
        "a running router is not seeded again: {:?}",
        ids(&p)
    );
    let gate = action(&p, "router-150-ready");
    assert!(
        !deps(gate).iter().any(|d| d.starts_with("vm-150")),
        "nothing of the router to wait for: {:?}",
        deps(gate)
    );
    let up = action(&p, "vm-400-update");
    assert!(deps(up).contains(&"router-150-ready".to_string()));
    let c = up
        .changes
        .iter()
        .find(|c| c.field == "net0")
        .expect("net0 changes");
    assert_eq!(c.effect, Effect::NeedsReboot);
    assert!(
        c.after
            .as_deref()
            .is_some_and(|a| a.contains("bridge=vmbr2"))
    );
    assert!(up.reason.contains("reattach net0 → vmbr2"), "{}", up.reason);
    assert!(
        up.pre_snapshot.is_some(),
        "a reboot of a running guest is snapshotted first"
    );
    assert!(ids(&p).contains(&"vm-400-reboot".to_string()));
    // Everything runs after what it depends on.
    let pos: BTreeMap<String, usize> = ids(&p)
        .into_iter()
        .enumerate()
        .map(|(i, a)| (a, i))
        .collect();
    for a in &p.actions {
        for d in deps(a) {
            if let Some(&j) = pos.get(&d) {
                assert!(
                    j < pos[&a.id.to_string()],
                    "{} before its dependency {d}",
                    a.id
                );
            }
        }
    }
}

#[test]
fn a_router_labwright_cannot_seed_is_said_and_left_to_the_user() {
    let s = spec(|t| {
        let start = t
            .find("      opnsenseImage:")
            .expect("the reference uses the nano image");
        let end = t[start..]
            .find("version: \"25.7\"\n")
            .expect("its version line")
            + start
            + 17;
        let mut t2 = t.clone();
        t2.replace_range(
            start..end,
            "      iso:\n        volume: local:iso/OPNsense-25.7-dvd-amd64.iso\n",
        );
        t2
    });
    let p = plan(&s, &observed(Vec::new()));
    assert!(!ids(&p).iter().any(|i| i == "router-150-seed"));
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("cannot give it its configuration")),
        "{:?}",
        p.notes
    );
    assert!(
        p.held
            .iter()
            .any(|h| h.reason.contains("the router is not managed")),
        "the router element stays held: {:?}",
        p.held.iter().map(|h| &h.reason).collect::<Vec<_>>()
    );
}

#[test]
fn the_seed_is_stable_and_follows_the_matrix() {
    let a = render_seed(&spec(|t| t)).expect("renders");
    let b = render_seed(&spec(|t| t)).expect("renders");
    assert_eq!(a.bytes, b.bytes, "same spec, same seed");
    let changed = render_seed(&spec(|t| {
        t.replace(
            "- { from: lan, to: home-assistant, ports: [8123] }",
            "- { from: lan, to: home-assistant, ports: [8123, 1883] }",
        )
    }))
    .expect("renders");
    assert_ne!(a.file_name(150), changed.file_name(150));
}

#[test]
fn moving_back_to_an_earlier_phase_reboots_too() {
    // Phase 1 again after phase 2: home-assistant goes back to vmbr0, and needs a new
    // lease from the home router just the same.
    let s = spec(|t| t.replacen("\nphase: 2\n", "\nphase: 1\n", 1));
    let ha = vm(
        400,
        "home-assistant",
        &[("net0", "virtio=BC:24:11:15:60:75,bridge=vmbr2,firewall=1")],
    );
    let p = plan(&s, &observed(vec![ha]));
    let up = action(&p, "vm-400-update");
    let c = up
        .changes
        .iter()
        .find(|c| c.field == "net0")
        .expect("net0 changes");
    assert!(
        c.after
            .as_deref()
            .is_some_and(|a| a.contains("bridge=vmbr0"))
    );
    assert_eq!(c.effect, Effect::NeedsReboot);
    assert!(ids(&p).contains(&"vm-400-reboot".to_string()));
    assert!(
        !ids(&p).iter().any(|i| i.starts_with("router-")),
        "no router at phase 1: {:?}",
        ids(&p)
    );
}

#[test]
fn no_seed_is_planned_for_a_router_that_waits_for_a_held_bridge() {
    // Bridges missing and host network changes not allowed: the router VM is held
    // with its bridges, and so are its seed and its gate (nothing to upload for).
    let s = spec(|t| {
        t.replacen(
            "allowHostNetworkChanges: true",
            "allowHostNetworkChanges: false",
            1,
        )
    });
    let mut o = observed(Vec::new());
    if let Some(n) = o.network.as_mut() {
        n.bridges.retain(|k, _| k == "vmbr0");
    }
    let p = plan(&s, &o);
    assert!(
        !ids(&p)
            .iter()
            .any(|i| i.starts_with("router-") || i.starts_with("vm-150")),
        "{:?}",
        ids(&p)
    );
}
