//! No request may crash the simulator: odd paths, encodings, bodies and values all get
//! an HTTP answer, and the server keeps serving.
#![allow(clippy::unwrap_used)]
mod common;

#[tokio::test]
async fn hostile_inputs_get_answers_and_the_server_survives() {
    let api = common::start_default().await;
    api.create_vm(100, &[]).await;
    let paths = [
        "/nodes/%FF%FE/qemu",
        "/nodes/proxmox/qemu/%00",
        "/nodes/proxmox/qemu/4294967296/config",
        "/nodes/proxmox/qemu/-1/config",
        "/nodes/proxmox/../../etc/passwd",
        "/nodes/proxmox/qemu/100/snapshot/%2F..%2F",
        "/nodes/proxmox/tasks/UPID%3Aproxmox%3AZZZ/log",
        "/nodes/proxmox/storage/local/content/%3A%3A%3A",
        "/cluster/firewall/rules/99999999999999999999",
        "/cluster/firewall/ipset/x/%20",
        "/",
        "",
    ];
    for p in paths {
        for m in ["GET", "POST", "PUT", "DELETE"] {
            let r = api.call(m, p, &[]).await;
            assert!(
                (400..=599).contains(&r.status) || r.status == 200,
                "{m} {p}: {}",
                r.status
            );
        }
    }
    let long = "x".repeat(10_000);
    let values = [
        "",
        "=",
        "==",
        ",,,",
        "=,=",
        "a=b=c",
        "\u{0}",
        "😀=😀",
        &long,
        "virtio=,bridge=",
        "local-lvm:-1",
        "local-lvm:99999999999999999999",
        "size=1e308",
        "tag=999999999999999999999999",
        "+",
        "%",
        "%ZZ",
    ];
    for key in [
        "net0",
        "scsi0",
        "ipconfig0",
        "tags",
        "memory",
        "cores",
        "agent",
        "boot",
        "cpu",
        "description",
        "hookscript",
        "delete",
        "digest",
    ] {
        for v in values {
            let r = api
                .post("/nodes/proxmox/qemu/100/config", &[(key, v)])
                .await;
            assert!(
                matches!(r.status, 200 | 400 | 500),
                "{key}={v:?}: {}",
                r.status
            );
        }
    }
    let r = api
        .put(
            "/nodes/proxmox/qemu/100/resize",
            &[("disk", "scsi0"), ("size", "+99999999999999T")],
        )
        .await;
    assert!(matches!(r.status, 200 | 400 | 500));
    // JSON bodies of every shape.
    for body in [
        r#"[]"#,
        r#""x""#,
        r#"{"vmid": {"a": 1}}"#,
        r#"{"vmid": [[1]]}"#,
        r#"{"command": [{"a":1}]}"#,
        "{",
        r#"{"vmid": 1e400}"#,
    ] {
        let resp = api
            .http
            .post(format!("{}/nodes/proxmox/qemu", api.base))
            .header("Authorization", &api.auth)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_client_error() || resp.status().is_server_error(),
            "{body}: {}",
            resp.status()
        );
    }
    let resp = api
        .http
        .post(format!("{}/nodes/proxmox/qemu/100/agent/exec", api.base))
        .header("Authorization", &api.auth)
        .header("Content-Type", "multipart/form-data; boundary=zz")
        .body("--zz\r\nbroken")
        .send()
        .await
        .unwrap();
    assert!(resp.status().as_u16() >= 400);
    // Authorization header garbage.
    for auth in [
        "PVEAPIToken",
        "PVEAPIToken=",
        "PVEAPIToken=a!b",
        "PVEAPIToken=%FF!%FF=%FF",
        "PVEAuthCookie=::",
        "Bearer x",
    ] {
        let r = api.call_as(auth, "GET", "/version", &[]).await;
        assert_eq!(r.status, 401, "{auth}");
    }
    assert_eq!(api.get("/version").await.status, 200, "still serving");
    assert_eq!(api.get("/nodes/proxmox/qemu/100/config").await.status, 200);
}
