//! Phase 2 (issue 13) through the API and SSH: the OPNsense router VM imports its seed
//! (auto, or by `sendkey` on the importer's prompt), guests on the internal bridges
//! lease from it, and TCP probes from guests and from probe namespaces on the node
//! cross the segments as the router's rules say. The seed is the real config.xml the
//! OPNsense backend renders from the reference spec.
#![allow(clippy::unwrap_used, clippy::print_stderr)]
mod common;

use std::time::Duration;

use common::Api;
use common::ssh::{have_ssh, ssh};
use labwright_router::seed::seed_iso;
use labwright_router::{Backend, Opnsense, compile, router_nic_mac};
use labwright_sim::{RouterConsole, RouterSim, SimConfig};
use serde_json::Value;

const REFERENCE: &str = include_str!("../../../specs/jarvis-homelab.desired.yaml");
const NODE: &str = "/nodes/proxmox";

/// The reference spec's config.xml at phase 2.
fn reference_xml() -> String {
    let env = |name: &str| (name == "ADMIN_PC_CIDR").then(|| "192.168.1.50/32".to_string());
    let spec = match labwright_spec::load_str("jarvis.yaml", REFERENCE, &env) {
        Ok(l) => l.spec,
        Err(f) => panic!("reference spec: {:?}", f.diagnostics),
    };
    let rs = compile(&spec, 2).unwrap();
    Opnsense::for_spec(&spec, &rs).unwrap().render(&rs)
}

/// The reference config as labwright renders it (every rule on one interface: a
/// rule naming several would be floating in OPNsense and evaluated first).
fn matrix_xml() -> String {
    reference_xml()
}

fn mac(slot: &str) -> String {
    router_nic_mac("jarvis", 150, slot).to_string()
}

async fn start(router: RouterSim) -> Api {
    let api = common::start(SimConfig::for_tests()).await;
    api.sim.set_router_sim(router);
    api
}

async fn ok_task(api: &Api, r: common::Resp) {
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(api.wait(r.data()).await, "OK");
}

async fn upload_iso(api: &Api, name: &str, bytes: Vec<u8>) {
    let form = reqwest::multipart::Form::new().text("content", "iso").part(
        "filename",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
    );
    let resp = api
        .http
        .post(format!("{}{NODE}/storage/local/upload", api.base))
        .header("Authorization", &api.auth)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(api.wait(&v["data"]).await, "OK");
}

async fn power(api: &Api, vmid: u32, what: &str) {
    let r = api
        .post(&format!("{NODE}/qemu/{vmid}/status/{what}"), &[])
        .await;
    ok_task(api, r).await;
}

/// vmbr1/vmbr2 (internal-only), the images, the seed (from `xml`), VM 150 with its
/// fixed MACs and the seed CD, and the guests: 100 (Debian, LAN), 300 (Debian, on
/// `app_bridge`), 400 (Home Assistant OS, IOT). Nothing started.
async fn build_lab(api: &Api, xml: &str, app_bridge: &str) -> String {
    for br in ["vmbr1", "vmbr2"] {
        let r = api
            .post(
                &format!("{NODE}/network"),
                &[("iface", br), ("type", "bridge"), ("autostart", "1")],
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    ok_task(api, api.put(&format!("{NODE}/network"), &[]).await).await;
    for (url, file) in [
        (
            "https://pkg.opnsense.org/releases/25.7/OPNsense-25.7-nano-amd64.img",
            "OPNsense-25.7-nano-amd64.raw",
        ),
        (
            "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2",
            "debian-12-genericcloud-amd64.qcow2",
        ),
        (
            "http://192.168.1.50:8000/haos_ova-16.3.qcow2",
            "haos_ova-16.3.qcow2",
        ),
    ] {
        let r = api
            .post(
                &format!("{NODE}/storage/local/download-url"),
                &[("url", url), ("filename", file), ("content", "import")],
            )
            .await;
        ok_task(api, r).await;
    }
    let seed = seed_iso(xml).unwrap();
    let iso = seed.file_name(150);
    upload_iso(api, &iso, seed.bytes).await;
    let n = |slot: &str, br: &str| format!("virtio={},bridge={br},firewall=0", mac(slot));
    let (n0, n1, n2) = (n("net0", "vmbr0"), n("net1", "vmbr1"), n("net2", "vmbr2"));
    let cd = format!("local:iso/{iso},media=cdrom");
    api.create_vm(
        150,
        &[
            ("name", "firewall-router"),
            ("ostype", "other"),
            ("agent", "1"),
            (
                "scsi0",
                "local-lvm:0,import-from=local:import/OPNsense-25.7-nano-amd64.raw",
            ),
            ("net0", &n0),
            ("net1", &n1),
            ("net2", &n2),
            ("ide2", &cd),
        ],
    )
    .await;
    let debian = "local-lvm:0,import-from=local:import/debian-12-genericcloud-amd64.qcow2";
    let haos = "local-lvm:0,import-from=local:import/haos_ova-16.3.qcow2";
    let app_net = format!("virtio=BC:24:11:00:03:00,bridge={app_bridge}");
    for (vmid, disk, net0) in [
        (
            100,
            debian,
            "virtio=BC:24:11:00:01:00,bridge=vmbr0".to_string(),
        ),
        (300, debian, app_net),
        (
            400,
            haos,
            "virtio=BC:24:11:00:04:00,bridge=vmbr2".to_string(),
        ),
    ] {
        api.create_vm(vmid, &[("agent", "1"), ("scsi0", disk), ("net0", &net0)])
            .await;
    }
    iso
}

async fn start_all(api: &Api) {
    for vmid in [150, 100, 300, 400] {
        power(api, vmid, "start").await;
    }
    // Boot (8 s × 0.01), Home Assistant's frontend 4 s × 0.01 later.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// The guest's first non-loopback IPv4 address (agent `network-get-interfaces`).
async fn addr_of(api: &Api, vmid: u32) -> String {
    let r = api
        .get(&format!("{NODE}/qemu/{vmid}/agent/network-get-interfaces"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.data()["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["name"] != "lo")
        .flat_map(|i| i["ip-addresses"].as_array().cloned().unwrap_or_default())
        .find(|a| a["ip-address-type"] == "ipv4")
        .map(|a| a["ip-address"].as_str().unwrap().to_string())
        .unwrap()
}

fn in_pool(ip: &str, prefix: &str) -> bool {
    ip.strip_prefix(prefix)
        .and_then(|h| h.parse::<u8>().ok())
        .is_some_and(|h| (128..=254).contains(&h))
}

async fn exec(api: &Api, vmid: u32, argv: &[&str]) -> (i64, String, String) {
    let form: Vec<(&str, &str)> = argv.iter().map(|a| ("command", *a)).collect();
    let r = api
        .post(&format!("{NODE}/qemu/{vmid}/agent/exec"), &form)
        .await;
    assert_eq!(r.status, 200, "{argv:?}: {:?}", r.body);
    let pid = r.data()["pid"].as_i64().unwrap().to_string();
    for _ in 0..400 {
        let s = api
            .call(
                "GET",
                &format!("{NODE}/qemu/{vmid}/agent/exec-status"),
                &[("pid", &pid)],
            )
            .await;
        if s.data()["exited"] == 1 {
            let d = s.data();
            let t = |k: &str| d[k].as_str().unwrap_or("").to_string();
            return (
                d["exitcode"].as_i64().unwrap(),
                t("out-data"),
                t("err-data"),
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("exec did not finish");
}

/// The engine's probe from a guest: exit code and stderr.
async fn probe_guest(api: &Api, vmid: u32, addr: &str, port: u16) -> (i64, String) {
    let script = format!("exec 3<>/dev/tcp/{addr}/{port}");
    let (code, _, err) = exec(api, vmid, &["timeout", "3", "bash", "-c", &script]).await;
    (code, err)
}

/// The engine's probe namespace on `bridge` at `addr` with gateway `gw`.
async fn make_probe(api: &Api, bridge: &str, addr: &str, gw: &str) {
    let ns = format!("lw-probe-{bridge}");
    let line = format!(
        "ip netns add {ns} && ip link add lwp-{bridge} type veth peer name lwq-{bridge} && \
         ip link set lwp-{bridge} master {bridge} up && ip link set lwq-{bridge} netns {ns} && \
         ip -n {ns} addr add {addr}/24 dev lwq-{bridge} && ip -n {ns} link set lwq-{bridge} up && \
         ip -n {ns} route add default via {gw}"
    );
    let r = ssh(&api.sim, &line, None).await;
    assert_eq!((r.code, r.err.as_str()), (0, ""), "{line}");
}

/// The engine's probe from a namespace: exit code and stderr.
async fn probe_ns(api: &Api, bridge: &str, addr: &str, port: u16) -> (i32, String) {
    let cmd = format!(
        "ip netns exec lw-probe-{bridge} timeout 3 bash -c 'exec 3<>/dev/tcp/{addr}/{port}'"
    );
    let r = ssh(&api.sim, &cmd, None).await;
    (r.code, r.err)
}

const REFUSED: &str = "bash: connect: Connection refused\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_import_leases_and_the_segment_matrix() {
    if !have_ssh() {
        return;
    }
    let api = start(RouterSim::default()).await;
    build_lab(&api, &matrix_xml(), "vmbr1").await;
    start_all(&api).await;
    let app = addr_of(&api, 300).await;
    let ha = addr_of(&api, 400).await;
    let lan_guest = addr_of(&api, 100).await;
    assert!(
        in_pool(&app, "10.10.10."),
        "app-host leased from the router: {app}"
    );
    assert!(
        in_pool(&ha, "10.10.20."),
        "home-assistant leased from the router: {ha}"
    );
    assert!(lan_guest.starts_with("192.168.1."), "{lan_guest}");
    let st = api.sim.snapshot_state();
    let lease = st
        .router_leases
        .get("vmbr2/bc:24:11:00:04:00")
        .expect("the lease is kept in the state");
    assert_eq!(
        (lease.ip.as_str(), lease.gateway.as_str()),
        (ha.as_str(), "10.10.20.1")
    );
    // Stable: asked again, the same addresses.
    assert_eq!(addr_of(&api, 400).await, ha);

    make_probe(&api, "vmbr2", "10.10.20.127", "10.10.20.1").await;
    make_probe(&api, "vmbr1", "10.10.10.127", "10.10.10.1").await;
    let neigh = "ip -n lw-probe-vmbr2 -j neigh show 10.10.20.1";
    let r = ssh(&api.sim, neigh, None).await;
    assert_eq!(r.out.trim(), "[]", "nothing asked for the gateway yet");

    // The matrix (spec `firewall.matrix`), cell by cell.
    assert_eq!(
        probe_ns(&api, "vmbr2", &ha, 8123).await,
        (0, String::new()),
        "IOT → HA 8123"
    );
    assert_eq!(
        probe_ns(&api, "vmbr2", "192.168.1.10", 22).await,
        (124, String::new()),
        "IOT → node 22"
    );
    assert_eq!(
        probe_ns(&api, "vmbr2", &app, 22).await,
        (124, String::new()),
        "IOT → app-host 22"
    );
    assert_eq!(
        probe_ns(&api, "vmbr1", "192.168.1.10", 8006).await,
        (124, String::new()),
        "SERVICES → node 8006"
    );
    assert_eq!(
        probe_guest(&api, 100, &app, 22).await,
        (0, String::new()),
        "LAN → app-host 22"
    );
    assert_eq!(
        probe_guest(&api, 100, &ha, 8123).await,
        (0, String::new()),
        "LAN → HA 8123"
    );
    // The same probe inside a script.
    let script = format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{app}/22' && echo open");
    assert_eq!(exec(&api, 100, &["sh", "-c", &script]).await.1, "open\n");
    let script = format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{app}/8080'");
    assert_eq!(exec(&api, 100, &["sh", "-c", &script]).await.0, 124);
    // Not in the matrix: LAN → app-host on another port is the default deny.
    assert_eq!(
        probe_guest(&api, 100, &app, 8080).await,
        (124, String::new())
    );
    // Reached but nothing listens: refused, in bash's words.
    let (code, err) = probe_ns(&api, "vmbr2", &ha, 9999).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!("{REFUSED}bash: /dev/tcp/{ha}/9999: Connection refused\n")
    );
    // The router's DNS on IOT is passed; its SSH from IOT is not (only admin CIDRs).
    assert_eq!(probe_ns(&api, "vmbr2", "10.10.20.1", 53).await.0, 0);
    assert_eq!(probe_ns(&api, "vmbr2", "10.10.20.1", 22).await.0, 124);

    // From the node itself (its default route: the home router, which routes the
    // segments to the router's WAN address).
    for (addr, port, want) in [
        (ha.as_str(), 8123, 0),
        (app.as_str(), 22, 0),
        (app.as_str(), 8080, 124),
    ] {
        let r = ssh(
            &api.sim,
            &format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{addr}/{port}'"),
            None,
        )
        .await;
        assert_eq!((r.code, r.err.as_str()), (want, ""), "node → {addr}:{port}");
    }
    // curl crosses the same path.
    let url = format!("http://{ha}:8123/");
    let (code, out, _) = exec(
        &api,
        100,
        &["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", &url],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "200"));
    let url = format!("http://{app}:8080/");
    let (code, _, err) = exec(&api, 100, &["curl", "-sS", "-m", "2", &url]).await;
    assert_eq!(code, 28, "{err}");
    // The router runs no guest agent; its addresses come from its config and its
    // WAN lease.
    let r = api
        .get(&format!("{NODE}/qemu/150/agent/network-get-interfaces"))
        .await;
    assert_eq!(
        (r.status, r.message().trim()),
        (500, "QEMU guest agent is not running")
    );

    // The gateway answered ARP: its lladdr is the router's net2 MAC.
    let r = ssh(&api.sim, neigh, None).await;
    let v: Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!(v[0]["dst"], "10.10.20.1");
    assert_eq!(v[0]["dev"], "lwq-vmbr2");
    assert_eq!(v[0]["lladdr"], mac("net2").to_ascii_lowercase());
    assert_eq!(v[0]["state"][0], "REACHABLE");

    // A namespace without a default route has no way off its segment.
    let r = ssh(&api.sim, "ip -n lw-probe-vmbr1 route del default", None).await;
    assert_eq!(r.code, 0, "{r:?}");
    let (code, err) = probe_ns(&api, "vmbr1", "192.168.1.10", 22).await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("bash: connect: No route to host\n"),
        "{err}"
    );

    // Cleanup: the namespace and its veth pair go.
    let r = ssh(&api.sim, "ip netns del lw-probe-vmbr2; ip netns list", None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !r.out.contains("lw-probe-vmbr2") && r.out.contains("lw-probe-vmbr1"),
        "{}",
        r.out
    );
    let r = ssh(&api.sim, "ip link del lwp-vmbr2", None).await;
    assert_eq!(
        (r.code, r.err.as_str()),
        (1, "Cannot find device \"lwp-vmbr2\"\n")
    );
    let st = api.sim.snapshot_state();
    let node = &st.nodes["proxmox"];
    assert!(!node.links.contains_key("lwq-vmbr2") && node.links.contains_key("lwq-vmbr1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_rendered_the_reference_config_lets_the_declared_flows_through() {
    if !have_ssh() {
        return;
    }
    let xml = reference_xml();
    // A default deny naming `wan,lan,opt1` was floating and shadowed every pass.
    assert!(
        !xml.contains("<interface>wan,lan,opt1</interface>"),
        "a multi-interface rule is back"
    );
    let api = start(RouterSim::default()).await;
    build_lab(&api, &xml, "vmbr1").await;
    start_all(&api).await;
    let app = addr_of(&api, 300).await;
    let ha = addr_of(&api, 400).await;
    assert!(
        in_pool(&app, "10.10.10.") && in_pool(&ha, "10.10.20."),
        "{app} {ha}"
    );
    make_probe(&api, "vmbr2", "10.10.20.127", "10.10.20.1").await;
    assert_eq!(probe_ns(&api, "vmbr2", &ha, 8123).await.0, 0);
    // The declared LAN → app-host and LAN → Home Assistant passes, and DNS on IOT.
    assert_eq!(probe_guest(&api, 100, &app, 22).await.0, 0);
    assert_eq!(probe_guest(&api, 100, &ha, 8123).await.0, 0);
    assert_eq!(probe_ns(&api, "vmbr2", "10.10.20.1", 53).await.0, 0);
    // The default deny still holds between the segments.
    assert_eq!(probe_ns(&api, "vmbr2", &app, 22).await.0, 124);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_console_routes_only_after_the_importer_keys() {
    if !have_ssh() {
        return;
    }
    let api = start(RouterSim {
        console: RouterConsole::Manual,
        boot_failure_rate: 0.0,
    })
    .await;
    build_lab(&api, &matrix_xml(), "vmbr1").await;
    let key = |k: &'static str| {
        let api = &api;
        async move {
            api.put(&format!("{NODE}/qemu/150/sendkey"), &[("key", k)])
                .await
        }
    };
    let r = key("ret").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.message().trim(), "VM 150 not running");
    start_all(&api).await;
    // Nobody pressed a key: no leases on IOT, no gateway there.
    let ha = addr_of(&api, 400).await;
    assert!(ha.starts_with("169.254."), "{ha}");
    make_probe(&api, "vmbr2", "10.10.20.127", "10.10.20.1").await;
    assert_eq!(probe_ns(&api, "vmbr2", "192.168.1.10", 8006).await.0, 124);
    // sendkey needs VM.Console: an auditor's token may not type.
    let ro = format!(
        "PVEAPIToken={}={}",
        api.sim.readonly_token_id(),
        api.sim.readonly_token_secret()
    );
    let r = api
        .call_as(
            &ro,
            "PUT",
            &format!("{NODE}/qemu/150/sendkey"),
            &[("key", "spc")],
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = key("enter").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.message().trim(), "invalid parameter: enter");
    for k in ["spc", "c", "d", "0", "ret"] {
        let r = key(k).await;
        assert_eq!(r.status, 200, "{k}: {:?}", r.body);
        assert_eq!(r.data(), &Value::Null);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let ha = addr_of(&api, 400).await;
    assert!(in_pool(&ha, "10.10.20."), "{ha}");
    let app = addr_of(&api, 300).await;
    assert_eq!(probe_guest(&api, 100, &app, 22).await, (0, String::new()));
    assert_eq!(
        probe_ns(&api, "vmbr2", "192.168.1.10", 22).await,
        (124, String::new())
    );
    // The config stays on the router: a reboot keeps routing with no key pressed.
    power(&api, 150, "reboot").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(probe_guest(&api, 100, &app, 22).await, (0, String::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_device_or_a_missed_window_leaves_it_unconfigured() {
    let api = start(RouterSim {
        console: RouterConsole::Manual,
        boot_failure_rate: 0.0,
    })
    .await;
    build_lab(&api, &matrix_xml(), "vmbr1").await;
    start_all(&api).await;
    for k in ["spc", "c", "d", "1", "ret"] {
        let r = api
            .put(&format!("{NODE}/qemu/150/sendkey"), &[("key", k)])
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(addr_of(&api, 300).await.starts_with("169.254."));
    let st = api.sim.snapshot_state();
    assert_eq!(st.vms[&150].guest.router.as_ref().unwrap().config, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_after_the_window_closed_import_nothing() {
    let api = start(RouterSim {
        console: RouterConsole::Manual,
        boot_failure_rate: 0.0,
    })
    .await;
    build_lab(&api, &matrix_xml(), "vmbr1").await;
    start_all(&api).await;
    // The window: 7 s × the time scale, never under 4 s.
    tokio::time::sleep(Duration::from_millis(4200)).await;
    for k in ["spc", "c", "d", "0", "ret"] {
        let r = api
            .put(&format!("{NODE}/qemu/150/sendkey"), &[("key", k)])
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(addr_of(&api, 300).await.starts_with("169.254."));
    let st = api.sim.snapshot_state();
    let r = st.vms[&150].guest.router.as_ref().unwrap();
    assert_eq!((r.config.as_deref(), r.importer.as_ref()), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_and_the_importer_survive_a_simulator_restart() {
    if !have_ssh() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..SimConfig::for_tests()
    };
    let manual = RouterSim {
        console: RouterConsole::Manual,
        boot_failure_rate: 0.0,
    };
    let api = common::start(cfg.clone()).await;
    api.sim.set_router_sim(manual);
    build_lab(&api, &matrix_xml(), "vmbr1").await;
    start_all(&api).await;
    make_probe(&api, "vmbr2", "10.10.20.127", "10.10.20.1").await;
    // The importer waits at its device prompt (a key was pressed) when the simulator
    // stops; labwright was killed between `ip netns add` and `del`.
    let r = api
        .put(&format!("{NODE}/qemu/150/sendkey"), &[("key", "spc")])
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    api.sim.shutdown().await;
    let api = common::start(cfg).await;
    api.sim.set_router_sim(manual);
    let r = ssh(&api.sim, "ip netns list", None).await;
    assert_eq!(r.out, "lw-probe-vmbr2 (id: 0)\n");
    assert_eq!(
        probe_ns(&api, "vmbr2", "10.10.20.1", 53).await.0,
        124,
        "still at the prompt"
    );
    for k in ["c", "d", "0", "ret"] {
        let r = api
            .put(&format!("{NODE}/qemu/150/sendkey"), &[("key", k)])
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        probe_ns(&api, "vmbr2", "10.10.20.1", 53).await,
        (0, String::new())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattached_guest_keeps_its_address_until_reboot_or_link_flap() {
    let api = start(RouterSim::default()).await;
    build_lab(&api, &matrix_xml(), "vmbr0").await;
    start_all(&api).await;
    let before = addr_of(&api, 300).await;
    assert!(before.starts_with("192.168.1."), "{before}");
    let r = api
        .put(
            &format!("{NODE}/qemu/300/config"),
            &[("net0", "virtio=BC:24:11:00:03:00,bridge=vmbr1")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let cfg = api.get(&format!("{NODE}/qemu/300/config")).await;
    assert!(
        cfg.data()["net0"]
            .as_str()
            .unwrap()
            .contains("bridge=vmbr1"),
        "hot-plugged"
    );
    assert_eq!(
        addr_of(&api, 300).await,
        before,
        "no DHCP until the guest notices"
    );
    // Its old address is useless where it is now: the LAN guest cannot reach it.
    assert_eq!(probe_guest(&api, 100, &before, 22).await.0, 124);
    power(&api, 300, "reboot").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let after = addr_of(&api, 300).await;
    assert!(in_pool(&after, "10.10.10."), "{after}");
    assert_eq!(probe_guest(&api, 100, &after, 22).await, (0, String::new()));

    // A link flap instead of a reboot: 100 moves to IOT.
    let lan = addr_of(&api, 100).await;
    for v in [
        "virtio=BC:24:11:00:01:00,bridge=vmbr2",
        "virtio=BC:24:11:00:01:00,bridge=vmbr2,link_down=1",
    ] {
        let r = api
            .put(&format!("{NODE}/qemu/100/config"), &[("net0", v)])
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(addr_of(&api, 100).await, lan);
    }
    let r = api
        .put(
            &format!("{NODE}/qemu/100/config"),
            &[("net0", "virtio=BC:24:11:00:01:00,bridge=vmbr2")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(in_pool(&addr_of(&api, 100).await, "10.10.20."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flipped_rule_changes_exactly_its_cell() {
    if !have_ssh() {
        return;
    }
    // The rule that blocks IOT → node:22 (on `opt1`); the edited config passes it.
    let xml = matrix_xml();
    let (at, end) = {
        let mut from = 0;
        loop {
            let at = from + xml[from..].find("<rule ").expect("the IOT → node:22 rule");
            let end = at + xml[at..].find("</rule>").unwrap();
            let r = &xml[at..end];
            if r.contains("<interface>opt1</interface>")
                && r.contains("<destination_net>192.168.1.10/32</destination_net>")
                && r.contains("<destination_port>22</destination_port>")
            {
                break (at, end);
            }
            from = end;
        }
    };
    let rule = &xml[at..end];
    assert!(rule.contains("<action>block</action>"), "{rule}");
    let edited = format!(
        "{}{}{}",
        &xml[..at],
        rule.replace("<action>block</action>", "<action>pass</action>"),
        &xml[end..]
    );
    let mut cells = Vec::new();
    for x in [&xml, &edited] {
        let api = start(RouterSim::default()).await;
        build_lab(&api, x, "vmbr1").await;
        start_all(&api).await;
        make_probe(&api, "vmbr2", "10.10.20.127", "10.10.20.1").await;
        let app = addr_of(&api, 300).await;
        let ha = addr_of(&api, 400).await;
        let mut row = Vec::new();
        for (addr, port) in [
            ("192.168.1.10", 22),
            ("192.168.1.10", 8006),
            (app.as_str(), 22),
            (ha.as_str(), 8123),
        ] {
            row.push(probe_ns(&api, "vmbr2", addr, port).await.0);
        }
        cells.push(row);
    }
    assert_eq!(cells[0], vec![124, 124, 124, 0]);
    assert_eq!(cells[1], vec![0, 124, 124, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_fault_leaves_the_router_not_routing() {
    if !have_ssh() {
        return;
    }
    let api = start(RouterSim {
        console: RouterConsole::Auto,
        boot_failure_rate: 1.0,
    })
    .await;
    build_lab(&api, &matrix_xml(), "vmbr1").await;
    start_all(&api).await;
    assert!(
        addr_of(&api, 400).await.starts_with("169.254."),
        "no DHCP on IOT"
    );
    make_probe(&api, "vmbr2", "10.10.20.127", "10.10.20.1").await;
    assert_eq!(
        probe_ns(&api, "vmbr2", "10.10.20.1", 443).await,
        (124, String::new())
    );
    let r = ssh(
        &api.sim,
        "ip -n lw-probe-vmbr2 -j neigh show 10.10.20.1",
        None,
    )
    .await;
    assert_eq!(r.out.trim(), "[]");
    // The fault off again, the next boot brings the imported config up.
    api.sim.set_router_sim(RouterSim::default());
    power(&api, 150, "reset").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        probe_ns(&api, "vmbr2", "10.10.20.1", 53).await,
        (0, String::new())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_namespace_commands_fail_as_iproute2_does() {
    if !have_ssh() {
        return;
    }
    let api = start(RouterSim::default()).await;
    let mut shown = Vec::new();
    for (cmd, code, err) in [
        ("ip netns add lw-probe-vmbr2", 0, ""),
        (
            "ip netns add lw-probe-vmbr2",
            1,
            "Cannot create namespace file \"/run/netns/lw-probe-vmbr2\": File exists\n",
        ),
        ("ip link add lwp-vmbr2 type veth peer name lwq-vmbr2", 0, ""),
        (
            "ip link add lwp-vmbr2 type veth peer name lwq-vmbr2",
            2,
            "RTNETLINK answers: File exists\n",
        ),
        (
            "ip link set lwp-vmbr2 master vmbr2 up",
            255,
            "Error: argument \"vmbr2\" is wrong: Device does not exist\n\n",
        ),
        (
            "ip link set nosuch up",
            1,
            "Cannot find device \"nosuch\"\n",
        ),
        (
            "ip link set lwq-vmbr2 netns nosuch",
            255,
            "Error: argument \"nosuch\" is wrong: Invalid \"netns\" value\n\n",
        ),
        (
            "ip -n nosuch addr add 10.10.20.127/24 dev lwq-vmbr2",
            255,
            "Cannot open network namespace \"nosuch\": No such file or directory\n",
        ),
        ("ip link set lwq-vmbr2 netns lw-probe-vmbr2", 0, ""),
        (
            "ip -n lw-probe-vmbr2 addr add 10.10.20.127/24 dev nodev",
            1,
            "Cannot find device \"nodev\"\n",
        ),
        (
            "ip -n lw-probe-vmbr2 addr add 10.10.20.127/24 dev lwq-vmbr2",
            0,
            "",
        ),
        (
            "ip -n lw-probe-vmbr2 addr add 10.10.20.127/24 dev lwq-vmbr2",
            2,
            "Error: ipv4: Address already assigned.\n",
        ),
        (
            "ip -n lw-probe-vmbr2 route add default via 10.10.20.1",
            2,
            "Error: Nexthop has invalid gateway.\n",
        ),
        ("ip -n lw-probe-vmbr2 link set lwq-vmbr2 up", 0, ""),
        (
            "ip -n lw-probe-vmbr2 route add default via 10.10.20.1",
            0,
            "",
        ),
        (
            "ip -n lw-probe-vmbr2 route add default via 10.10.20.1",
            2,
            "RTNETLINK answers: File exists\n",
        ),
        (
            "ip netns exec nosuch true",
            255,
            "Cannot open network namespace \"nosuch\": No such file or directory\n",
        ),
        (
            "ip link show nosuch",
            1,
            "Device \"nosuch\" does not exist.\n",
        ),
        ("ip netns del lw-probe-vmbr2", 0, ""),
        (
            "ip netns del lw-probe-vmbr2",
            1,
            "Cannot remove namespace file \"/run/netns/lw-probe-vmbr2\": No such file or directory\n",
        ),
    ] {
        let r = ssh(&api.sim, cmd, None).await;
        assert_eq!((r.code, r.err.as_str()), (code, err), "{cmd}");
        if cmd.contains("route add default") && code == 0 {
            // What a later run reads back to find leftovers.
            for show in [
                "ip -j link show lwp-vmbr2",
                "ip -n lw-probe-vmbr2 -j route show",
                "ip -n lw-probe-vmbr2 -j addr show dev lwq-vmbr2",
            ] {
                let r = ssh(&api.sim, show, None).await;
                assert_eq!(r.code, 0, "{show}: {r:?}");
                shown.push(serde_json::from_str::<Value>(r.out.trim()).unwrap());
            }
        }
    }
    assert_eq!(shown[0][0]["ifname"], "lwp-vmbr2");
    assert_eq!(shown[0][0]["link"], "lwq-vmbr2");
    assert_eq!(
        shown[0][0]["operstate"], "DOWN",
        "never set up: no bridge to join"
    );
    assert_eq!(shown[1][0]["dst"], "default");
    assert_eq!(shown[1][0]["gateway"], "10.10.20.1");
    assert_eq!(shown[1][0]["dev"], "lwq-vmbr2");
    assert_eq!(shown[2][0]["addr_info"][0]["local"], "10.10.20.127");
    assert_eq!(shown[2][0]["addr_info"][0]["prefixlen"], 24);
    // The namespace outlives the SSH session (state), until deleted.
    let r = ssh(&api.sim, "ip netns add keep", None).await;
    assert_eq!(r.code, 0);
    let st = api.sim.snapshot_state();
    assert!(st.nodes["proxmox"].netns.contains_key("keep"));
    assert!(
        !st.nodes["proxmox"].links.contains_key("lwp-vmbr2"),
        "deleted with its pair"
    );
}
