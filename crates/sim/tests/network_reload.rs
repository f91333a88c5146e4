//! Network reload faults (issue 13): a failing `ifreload` leaves the new stanzas live in
//! the file but down (nothing staged, guests cannot use them) with PVE's task error; a
//! reload that cuts management refuses new connections while kept-alive ones work;
//! restoring the old definitions and reloading heals both.
#![allow(clippy::unwrap_used)]

mod common;

use labwright_sim::{Faults, SimConfig};
use serde_json::Value;

const NET: &str = "/nodes/proxmox/network";

async fn start(faults: Faults) -> common::Api {
    common::start(SimConfig {
        faults,
        ..SimConfig::for_tests()
    })
    .await
}

fn iface<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|i| i["iface"] == name)
}

#[tokio::test]
async fn a_failed_ifreload_leaves_new_bridges_down_and_a_restore_heals() {
    let api = start(Faults {
        reload_failure_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let r = api
        .post(
            NET,
            &[("iface", "vmbr1"), ("type", "bridge"), ("autostart", "1")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.put(NET, &[]).await;
    let status = api.wait(r.data()).await;
    assert_eq!(status, "command 'ifreload -a' failed: exit code 1");
    let upid = r.data().as_str().unwrap().to_string();
    let log = api
        .get(&format!(
            "/nodes/proxmox/tasks/{}/log",
            common::urlencode(&upid)
        ))
        .await;
    assert!(
        log.body.to_string().contains("vmbr1 : error: vmbr1:"),
        "{}",
        log.body
    );
    // The file moved live (nothing staged), but the bridge is not up.
    let l = api.get(NET).await;
    assert!(l.body.get("changes").is_none(), "{:?}", l.body);
    let b = iface(l.data(), "vmbr1").expect("vmbr1 in the live file");
    assert!(b.get("active").is_none(), "not up: {b}");
    assert_eq!(iface(l.data(), "vmbr0").unwrap()["active"], 1);
    // A guest on it does not start.
    api.create_vm(900, &[("net0", "virtio,bridge=vmbr1")]).await;
    let s = api.post("/nodes/proxmox/qemu/900/status/start", &[]).await;
    assert_eq!(api.wait(s.data()).await, "bridge 'vmbr1' does not exist");
    // Restore: remove it and reload (no new interface: the fault does not strike).
    assert_eq!(api.delete(&format!("{NET}/vmbr1"), &[]).await.status, 200);
    let r = api.put(NET, &[]).await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let l = api.get(NET).await;
    assert!(iface(l.data(), "vmbr1").is_none());
}

#[tokio::test]
async fn a_reload_that_cuts_management_refuses_new_connections_until_restored() {
    let api = start(Faults {
        reload_mgmt_cut_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let r = api
        .post(NET, &[("iface", "vmbr1"), ("type", "bridge")])
        .await;
    assert_eq!(r.status, 200);
    let r = api.put(NET, &[]).await;
    assert_eq!(api.wait(r.data()).await, "OK");
    // A brand-new client cannot connect; the kept-alive one still talks.
    let fresh = common::client_for(&api.sim);
    let url = format!("{}/version", api.base);
    assert!(
        fresh.get(&url).send().await.is_err(),
        "new connections refused"
    );
    assert_eq!(api.get("/version").await.status, 200, "kept-alive works");
    assert_eq!(api.delete(&format!("{NET}/vmbr1"), &[]).await.status, 200);
    let r = api.put(NET, &[]).await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let again = common::client_for(&api.sim);
    let v = again
        .get(&url)
        .header("Authorization", &api.auth)
        .send()
        .await
        .expect("new connections work again");
    assert_eq!(v.status().as_u16(), 200);
}

/// labwright's dead-man as the node runs it: the live file saved, a transient timer
/// armed, a reload that cuts management — then, with no connection used at all, the
/// timer puts the saved file back, drops anything staged and reloads: new
/// connections work again and the bridge is gone. A stopped timer never fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_man_restores_the_network_without_any_connection() {
    if !common::ssh::have_ssh() {
        return;
    }
    let api = start(Faults {
        reload_mgmt_cut_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let sh = |c: &'static str| {
        let sim = &api.sim;
        async move { common::ssh::ssh(sim, c, None).await }
    };
    let r = sh("cp -p /etc/network/interfaces /etc/network/interfaces.lw-before").await;
    assert_eq!(r.code, 0, "{}", r.err);
    let r = sh("systemd-run --unit=lw-net-deadman --on-active=1 --timer-property=AccuracySec=1s /bin/sh -c 'cp /etc/network/interfaces.lw-before /etc/network/interfaces && rm -f /etc/network/interfaces.new && ifreload -a'").await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.err
            .contains("Running timer as unit: lw-net-deadman.timer"),
        "{}",
        r.err
    );
    // Arming twice is refused, as systemd-run does for a loaded unit.
    let r = sh("systemd-run --unit=lw-net-deadman --on-active=100 /bin/true").await;
    assert_eq!(r.code, 1);
    assert_eq!(
        sh("systemctl is-active lw-net-deadman.timer").await.out,
        "active\n"
    );
    let r = api
        .post(NET, &[("iface", "vmbr1"), ("type", "bridge")])
        .await;
    assert_eq!(r.status, 200);
    let r = api.put(NET, &[]).await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let url = format!("{}/version", api.base);
    assert!(
        common::client_for(&api.sim).get(&url).send().await.is_err(),
        "management is cut"
    );
    // A node's timer runs on wall-clock time; nobody touches anything meanwhile.
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let v = common::client_for(&api.sim)
        .get(&url)
        .header("Authorization", &api.auth)
        .send()
        .await
        .expect("new connections work again");
    assert_eq!(v.status().as_u16(), 200);
    let l = api.get(NET).await;
    assert!(iface(l.data(), "vmbr1").is_none(), "the saved file is back");
    assert!(l.body.get("changes").is_none());
    assert_eq!(
        sh("systemctl is-active lw-net-deadman.timer").await.out,
        "inactive\n"
    );
    // A stopped timer does nothing.
    let r = sh("systemd-run --unit=lw-net-deadman --on-active=100 /bin/sh -c 'rm -f /etc/network/interfaces.lw-before'").await;
    assert_eq!(r.code, 0, "{}", r.err);
    let r = sh("systemctl stop lw-net-deadman.timer").await;
    assert_eq!(r.code, 0, "{}", r.err);
    let r = sh("systemctl stop lw-net-deadman.timer").await;
    assert_eq!(r.code, 5, "stopping it again: not loaded");
    assert!(r.err.contains("not loaded"), "{}", r.err);
}
