//! Typed endpoints against wiremock (plain HTTP): paths, parameter encoding and
//! decoding of realistic PVE replies (Perl typing quirks included).

use labwright_pve::api::cluster::ResourceType;
use labwright_pve::api::disks::ZfsCreate;
use labwright_pve::api::firewall::{FirewallRule, FirewallScope};
use labwright_pve::api::network::NetworkIfaceConfig;
use labwright_pve::api::qemu::DestroyOptions;
use labwright_pve::api::storage::UploadRequest;
use labwright_pve::{ClientConfig, Credentials, Params, PruneBackups, PveClient, RetryPolicy};
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, header_regex, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const UPID: &str = "UPID:pve:000FF1FD:10F9374C:630D702C:qmcreate:100:root@pam!lw:";

async fn setup() -> (MockServer, PveClient) {
    let server = MockServer::start().await;
    let client = PveClient::new(
        ClientConfig::new(
            server.uri(),
            Credentials::api_token("root@pam!lw", "00000000-0000-0000-0000-000000000000"),
        )
        .retry(RetryPolicy::none()),
    )
    .expect("client");
    (server, client)
}

fn data(v: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "data": v }))
}

#[tokio::test]
async fn inventory_calls_decode_perl_typing() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/api2/json/cluster/resources"))
        .and(query_param("type", "vm"))
        .respond_with(data(json!([
            {"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "pve", "status": "running",
             "name": "edge-gateway", "template": 0, "tags": "env-lab;role-edge", "maxmem": "2147483648"}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api2/json/cluster/nextid"))
        .respond_with(data(json!("101")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve/qemu/100/config"))
        .respond_with(data(json!({
            "digest": "18389648fd69603dd93ab0c443e1f32267f6c436", "memory": "4096", "cores": 4,
            "net0": "virtio=BC:24:11:4E:8F:D1,bridge=vmbr0,firewall=1", "agent": "1",
            "scsi0": "local-zfs:vm-100-disk-0,cache=none,discard=on,iothread=1,size=32G,ssd=1"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes"))
        .respond_with(data(json!([{"node": "pve", "status": "online", "maxcpu": 8,
            "ssl_fingerprint": "AB:CD:EF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC"}])))
        .mount(&server)
        .await;

    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve/certificates/info"))
        .respond_with(data(json!([{"filename": "pve-ssl.pem",
            "fingerprint": "AB:CD:EF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC",
            "san": ["127.0.0.1", "pve"], "notafter": "1900000000"}])))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api2/json/nodes/pve/qemu/100/cloudinit"))
        .respond_with(data(json!(null)))
        .expect(1)
        .mount(&server)
        .await;
    let certs = client.node_certificates("pve").await.expect("certs");
    assert_eq!(certs[0].notafter, Some(1_900_000_000));
    client
        .qemu_cloudinit_regenerate("pve", 100)
        .await
        .expect("cloudinit");

    let res = client
        .cluster_resources(Some(ResourceType::Vm))
        .await
        .expect("resources");
    assert_eq!(res[0].vmid, Some(100));
    assert_eq!(res[0].maxmem, Some(2_147_483_648));
    assert_eq!(client.next_id(None).await.expect("nextid"), 101);
    let cfg = client.qemu_config("pve", 100).await.expect("config");
    assert_eq!(
        cfg.digest.as_deref(),
        Some("18389648fd69603dd93ab0c443e1f32267f6c436")
    );
    assert_eq!(cfg.get("cores"), Some("4"));
    assert!(cfg.agent().expect("agent").expect("parses").enabled);
    let drives = cfg.drives().expect("drives");
    assert_eq!(
        drives.values().next().and_then(|d| d.cache.as_deref()),
        Some("none")
    );
    let nodes = client.nodes().await.expect("nodes");
    let fp = nodes[0].ssl_fingerprint.as_deref().expect("fp");
    labwright_pve::Fingerprint::parse(fp).expect("node fingerprint parses");
}

#[tokio::test]
async fn qemu_lifecycle_encoding() {
    let (server, client) = setup().await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve/qemu"))
        .and(body_string_contains("vmid=100"))
        .and(body_string_contains("scsi0=local-zfs%3A32%2Ccache%3Dnone"))
        .and(body_string_contains("agent=1"))
        .and(header(
            "authorization",
            "PVEAPIToken=root@pam!lw=00000000-0000-0000-0000-000000000000",
        ))
        .respond_with(data(json!(UPID)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/api2/json/nodes/pve/qemu/100"))
        .and(query_param("purge", "1"))
        .and(query_param("destroy-unreferenced-disks", "1"))
        .respond_with(data(json!(UPID)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve/qemu/100/config"))
        .and(body_string_contains("delete=ide2%2Cnet1"))
        .and(body_string_contains("digest=abc"))
        .respond_with(data(json!(null)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve/qemu/100/agent/exec"))
        .and(body_string_contains(
            "command=%2Fbin%2Fsh&command=-c&command=id",
        ))
        .respond_with(data(json!({"pid": 42})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve/qemu/100/agent/exec-status"))
        .and(query_param("pid", "42"))
        .respond_with(data(
            json!({"exited": 1, "exitcode": 0, "out-data": "uid=0(root)\n"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve/qemu/100/snapshot"))
        .respond_with(data(json!([
            {"name": "lw-pre-1", "snaptime": 1700000000, "vmstate": 0, "description": "labwright"},
            {"name": "current", "description": "You are here!", "running": 1, "digest": "abc", "parent": "lw-pre-1"}
        ])))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api2/json/nodes/pve/qemu/100/resize"))
        .and(body_string_contains("size=%2B8G"))
        .respond_with(data(json!(null)))
        .mount(&server)
        .await;

    let config = Params::new()
        .set("scsi0", "local-zfs:32,cache=none")
        .set("agent", true);
    let upid = client
        .qemu_create("pve", 100, config)
        .await
        .expect("create");
    assert_eq!(upid.task_type, "qmcreate");
    assert!(upid.is_token());
    let opts = DestroyOptions {
        purge: true,
        destroy_unreferenced_disks: true,
        skiplock: false,
    };
    client.qemu_delete("pve", 100, opts).await.expect("delete");
    let none = client
        .qemu_update_config_async("pve", 100, Params::new(), &["ide2", "net1"], Some("abc"))
        .await
        .expect("async config");
    assert!(none.is_none());
    let st = client
        .agent_exec_wait(
            "pve",
            100,
            &["/bin/sh", "-c", "id"],
            None,
            std::time::Duration::from_secs(2),
        )
        .await
        .expect("exec");
    assert_eq!(st.exitcode, Some(0));
    assert!(st.exited);
    let snaps = client.qemu_snapshots("pve", 100).await.expect("snapshots");
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[0].vmstate, Some(false));
    assert_eq!(snaps[1].digest.as_deref(), Some("abc"));
    assert!(
        client
            .qemu_resize("pve", 100, "scsi0", "+8G", None)
            .await
            .expect("resize")
            .is_none()
    );
}

#[tokio::test]
async fn network_storage_backup_firewall() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/api2/json/nodes/pve/network"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"iface": "vmbr1", "type": "bridge", "active": 0, "autostart": 1,
                      "bridge_vlan_aware": null, "families": ["inet"], "method": "manual", "priority": 5}],
            "changes": "--- /etc/network/interfaces\n+++ /etc/network/interfaces.new\n"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve/network"))
        .and(body_string_contains("type=bridge"))
        .and(body_string_contains("iface=vmbr1"))
        .and(body_string_contains("autostart=1"))
        .respond_with(data(json!(null)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api2/json/nodes/pve/network"))
        .respond_with(data(json!(
            "UPID:pve:00000ACD:00006AE8:679A423B:srvreload:networking:root@pam:"
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve/storage/local/upload"))
        .and(header_regex(
            "content-type",
            "^multipart/form-data; boundary=-+labwright-[0-9a-f]+$",
        ))
        .and(body_string_contains("filename=\"seed.iso\""))
        .and(body_string_contains("name=\"content\"\r\n\r\niso"))
        .respond_with(data(json!(
            "UPID:pve:0017C594:0ADB2769:63EC5455:imgcopy::root@pam:"
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api2/json/cluster/backup"))
        .respond_with(data(json!([{"id": "lw-daily", "schedule": "daily", "storage": "tank-backups",
            "enabled": 1, "vmid": "100,300", "prune-backups": {"keep-daily": "7", "keep-weekly": 4, "keep-monthly": 6},
            "next-run": 1700003600}])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/json/cluster/backup"))
        .and(body_string_contains(
            "prune-backups=keep-daily%3D7%2Ckeep-weekly%3D4%2Ckeep-monthly%3D6",
        ))
        .and(body_string_contains("id=lw-daily"))
        .respond_with(data(json!(null)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/json/cluster/firewall/rules"))
        .and(body_string_contains("enable=1"))
        .and(body_string_contains("source=100.64.0.0%2F10"))
        .respond_with(data(json!(null)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api2/json/nodes/pve/firewall/rules/3"))
        .and(body_string_contains("moveto=0"))
        .respond_with(data(json!(null)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(
            "/api2/json/cluster/firewall/ipset/management/10.0.0.0%2F24",
        ))
        .respond_with(data(json!(null)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve/disks/zfs"))
        .and(body_string_contains("devices=%2Fdev%2Fsdb%2C%2Fdev%2Fsdc"))
        .and(body_string_contains("raidlevel=mirror"))
        .respond_with(data(json!(
            "UPID:pve:00000ACD:00006AE8:679A423B:zfscreate:tank:root@pam:"
        )))
        .expect(1)
        .mount(&server)
        .await;

    let list = client.network_list("pve", None).await.expect("network");
    assert_eq!(list.ifaces[0].autostart, Some(true));
    assert_eq!(list.ifaces[0].active, Some(false));
    assert!(list.changes.is_some());
    client
        .network_create("pve", "vmbr1", &NetworkIfaceConfig::bridge(None))
        .await
        .expect("create bridge");
    let upid = client.network_reload("pve").await.expect("reload");
    assert_eq!(upid.id, "networking");

    let up = UploadRequest {
        content: "iso".into(),
        filename: "seed.iso".into(),
        data: b"ISO".to_vec(),
        checksum: None,
    };
    let upid = client
        .storage_upload("pve", "local", &up)
        .await
        .expect("upload");
    assert_eq!(upid.task_type, "imgcopy");

    let jobs = client.backup_jobs().await.expect("jobs");
    let prune = jobs[0].prune_backups.clone().expect("prune");
    assert_eq!(prune.keep_daily, Some(7));
    let params = labwright_pve::api::backup::BackupJobParams {
        schedule: Some("daily".into()),
        storage: Some("tank-backups".into()),
        vmid: Some("100,300".into()),
        prune_backups: Some(
            PruneBackups::parse("keep-daily=7,keep-weekly=4,keep-monthly=6").expect("prune"),
        ),
        ..Default::default()
    };
    client
        .backup_job_create("lw-daily", &params)
        .await
        .expect("create job");

    let rule = FirewallRule {
        rule_type: "in".into(),
        action: "ACCEPT".into(),
        enable: Some(true),
        macro_name: Some("SSH".into()),
        source: Some("100.64.0.0/10".into()),
        comment: Some("lw:tailscale-ssh".into()),
        ..FirewallRule::default()
    };
    client
        .firewall_rule_create(&FirewallScope::Cluster, &rule, None, None)
        .await
        .expect("rule");
    client
        .firewall_rule_move(&FirewallScope::Node("pve".into()), 3, 0, None)
        .await
        .expect("move");
    client
        .firewall_ipset_remove(&FirewallScope::Cluster, "management", "10.0.0.0/24", None)
        .await
        .expect("ipset entry");
    let z = ZfsCreate {
        name: "tank".into(),
        raidlevel: "mirror".into(),
        devices: vec!["/dev/sdb".into(), "/dev/sdc".into()],
        ..ZfsCreate::default()
    };
    client.zfs_create("pve", &z).await.expect("zfs");
}

/// A guest agent that answers with an error object (Windows guests, old agents,
/// disabled commands) is named as such, not reported as a decode error.
#[tokio::test]
async fn agent_error_objects_say_which_vm_and_what_the_agent_said() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path(
            "/api2/json/nodes/pve/qemu/100/agent/network-get-interfaces",
        ))
        .respond_with(data(json!({"result": {"error": {
            "class": "Unsupported",
            "desc": "this feature or command is not currently supported"
        }}})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api2/json/nodes/pve/qemu/101/agent/exec"))
        .respond_with(data(json!({"result": {"error": {
            "class": "CommandDisabled",
            "desc": "The command guest-exec has been disabled for this instance"
        }}})))
        .mount(&server)
        .await;
    let e = client
        .agent_network_interfaces("pve", 100)
        .await
        .expect_err("an error object is an error");
    assert_eq!(
        e.to_string(),
        "guest agent of VM 100: Unsupported: this feature or command is not currently supported"
    );
    let e = client
        .agent_exec("pve", 101, &["true"], None)
        .await
        .expect_err("an error object is an error");
    assert!(
        matches!(&e, labwright_pve::Error::Agent { vmid: 101, class, .. } if class == "CommandDisabled"),
        "{e}"
    );
}
