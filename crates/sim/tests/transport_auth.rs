//! Transport, envelope, status codes and authentication, over real HTTPS.
#![allow(clippy::unwrap_used)]
mod common;

use common::{fingerprint_of, raw_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_leaf_is_signed_by_ca_and_fingerprint_matches() {
    let api = common::start_default().await;
    // reqwest trusts only the simulator's CA: a successful request proves the chain.
    assert_eq!(api.get("/version").await.status, 200);
    let sim = &api.sim;
    let (status, leaf, _) = tokio::task::block_in_place(|| {
        raw_request(
            sim,
            "GET /api2/json/version HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
    });
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert_eq!(fingerprint_of(&leaf), sim.fingerprint());
    assert_eq!(sim.fingerprint().len(), 95);
    // /nodes reports the same fingerprint, as PVE does.
    let nodes = api.get("/nodes").await;
    assert_eq!(nodes.data()[0]["ssl_fingerprint"], sim.fingerprint());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reason_phrase_and_headers_are_pves() {
    let api = common::start_default().await;
    let auth = api.auth.clone();
    let sim = &api.sim;
    let req = format!(
        "POST /api2/json/nodes/proxmox/qemu HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 19\r\nConnection: close\r\n\r\nvmid=100&frobnic=1\n"
    );
    let (status, _, body) = tokio::task::block_in_place(|| raw_request(sim, &req));
    assert_eq!(status, "HTTP/1.1 400 Parameter verification failed.");
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(v["data"], serde_json::Value::Null);
    assert_eq!(v["message"], "Parameter verification failed.\n");
    assert!(v.get("success").is_none(), "json format has no success key");
    let req = format!(
        "GET /api2/json/nodes/proxmox/qemu/999/config HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    let (status, _, _) = tokio::task::block_in_place(|| raw_request(sim, &req));
    assert_eq!(
        status,
        "HTTP/1.1 500 Configuration file 'nodes/proxmox/qemu-server/999.conf' does not exist"
    );
    let resp = api
        .http
        .get(format!("{}/version", api.base))
        .header("Authorization", &api.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["server"], "pve-api-daemon/3.0");
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;charset=UTF-8"
    );
}

#[tokio::test]
async fn unauthenticated_and_bad_token_get_401_with_empty_body() {
    let api = common::start_default().await;
    let r = api.call_as("", "GET", "/nodes", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body, serde_json::Value::Null, "401 has an empty body");
    let bad = format!(
        "PVEAPIToken={}=00000000-0000-0000-0000-000000000000",
        api.sim.token_id()
    );
    let started = std::time::Instant::now();
    let r = api.call_as(&bad, "GET", "/nodes", &[]).await;
    assert_eq!(r.status, 401);
    // The failure delay is scaled (3 s × 0.01).
    assert!(started.elapsed() >= std::time::Duration::from_millis(25));
    // The domains list is open to the world.
    assert_eq!(
        api.call_as("", "GET", "/access/domains", &[]).await.status,
        200
    );
}

#[tokio::test]
async fn token_secrets_are_uuids() {
    let api = common::start_default().await;
    for s in [api.sim.token_secret(), api.sim.readonly_token_secret()] {
        assert!(uuid::Uuid::parse_str(&s).is_ok(), "{s}");
    }
}

#[tokio::test]
async fn ticket_cookie_and_csrf_flow() {
    let api = common::start_default().await;
    let r = api
        .call_as(
            "",
            "POST",
            "/access/ticket",
            &[("username", "root@pam"), ("password", "wrong")],
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.message(), "authentication failure\n");
    let pw = api.sim.root_password();
    let r = api
        .call_as(
            "",
            "POST",
            "/access/ticket",
            &[("username", "root@pam"), ("password", &pw)],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ticket = r.data()["ticket"].as_str().unwrap().to_string();
    let csrf = r.data()["CSRFPreventionToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ticket.starts_with("PVE:root@pam:"));
    let cookie = format!("PVEAuthCookie={}", common::urlencode(&ticket));
    let get = api
        .http
        .get(format!("{}/nodes", api.base))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 200);
    // A write without the CSRF header is refused.
    let post = api
        .http
        .post(format!("{}/nodes/proxmox/qemu", api.base))
        .header("Cookie", &cookie)
        .form(&[("vmid", "150")])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 401);
    let post = api
        .http
        .post(format!("{}/nodes/proxmox/qemu", api.base))
        .header("Cookie", &cookie)
        .header("CSRFPreventionToken", &csrf)
        .form(&[("vmid", "150")])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 200);
    // Renewal: the ticket works as a password.
    let r = api
        .call_as(
            "",
            "POST",
            "/access/ticket",
            &[("username", "root@pam"), ("password", &ticket)],
        )
        .await;
    assert_eq!(r.status, 200);
    // A token may not use allowtoken=0 endpoints.
    let r = api
        .call(
            "POST",
            "/access/ticket",
            &[("username", "root@pam"), ("password", &pw)],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(
        r.message()
            .contains("not available with API token, need proper ticket"),
        "{}",
        r.message()
    );
}

#[tokio::test]
async fn readonly_token_gets_403_with_privilege_path_and_can_read() {
    let api = common::start_default().await;
    api.create_vm(100, &[]).await;
    let ro = format!(
        "PVEAPIToken={}={}",
        api.sim.readonly_token_id(),
        api.sim.readonly_token_secret()
    );
    let r = api
        .call_as(&ro, "POST", "/nodes/proxmox/qemu/100/status/start", &[])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.message(),
        "Permission check failed (/vms/100, VM.PowerMgmt)\n"
    );
    let r = api
        .call_as(&ro, "POST", "/nodes/proxmox/qemu", &[("vmid", "101")])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.message(),
        "Permission check failed (/vms/101, VM.Allocate)\n"
    );
    // Permission check happens before validation: a malformed request still gets 403.
    let r = api
        .call_as(
            &ro,
            "PUT",
            "/cluster/firewall/options",
            &[("enable", "yes")],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = api.call_as(&ro, "GET", "/nodes/proxmox/qemu", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data().as_array().unwrap().len(), 1);
    let r = api.call_as(&ro, "GET", "/access/permissions", &[]).await;
    assert_eq!(r.data()["/"]["VM.Audit"], 1);
    assert!(r.data()["/"].get("VM.PowerMgmt").is_none());
    let r = api.get("/access/permissions").await;
    assert_eq!(r.data()["/"]["VM.PowerMgmt"], 1);
}

#[tokio::test]
async fn pves_501_cases() {
    let api = common::start_default().await;
    let r = api.get("/nodes/proxmox/nonsense").await;
    assert_eq!(r.status, 501);
    assert_eq!(
        r.message(),
        "Method 'GET /nodes/proxmox/nonsense' not implemented\n"
    );
    // In the schema but not simulated: 501 naming the path.
    let r = api.get("/nodes/proxmox/ceph/status").await;
    assert_eq!(r.status, 501);
    assert!(
        r.message().contains("GET /nodes/{node}/ceph/status"),
        "{}",
        r.message()
    );
    let resp = api
        .http
        .delete(format!("{}/nodes/proxmox/qemu/100", api.base))
        .header("Authorization", &api.auth)
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 501);
    let resp = api
        .http
        .head(format!("{}/version", api.base))
        .header("Authorization", &api.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 501);
    let big = "x".repeat(600 * 1024);
    let resp = api
        .http
        .post(format!("{}/nodes/proxmox/qemu", api.base))
        .header("Authorization", &api.auth)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 501);
}

#[tokio::test]
async fn uri_parameter_conflict_and_json_bodies() {
    let api = common::start_default().await;
    let r = api
        .post(
            "/nodes/proxmox/qemu/100/config",
            &[("vmid", "101"), ("name", "x")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.err("vmid"),
        "duplicate parameter (already defined in URI) with conflicting values!"
    );
    // JSON bodies: booleans and numbers are typed like Perl's decoder sees them.
    let resp = api.http.post(format!("{}/nodes/proxmox/qemu", api.base)).header("Authorization", &api.auth)
        .json(&serde_json::json!({"vmid": 100, "onboot": true, "cores": true, "memory": 2048.0, "bogus": 1}))
        .send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        v["errors"]["cores"],
        "type check ('integer') failed - got JSON::PP::Boolean"
    );
    assert_eq!(
        v["errors"]["bogus"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    assert!(v["errors"].get("onboot").is_none());
    assert!(v["errors"].get("memory").is_none());
}

#[tokio::test]
async fn unknown_node_and_offline_node() {
    let api = common::start(labwright_sim::SimConfig {
        scenario: labwright_sim::Scenario::Cluster,
        ..labwright_sim::SimConfig::for_tests()
    })
    .await;
    let r = api.get("/nodes/ghost/status").await;
    assert_eq!(r.status, 500);
    assert!(
        r.message().starts_with("hostname lookup 'ghost' failed"),
        "{}",
        r.message()
    );
    api.sim.set_node_online("pve2", false);
    let r = api.get("/nodes/pve2/status").await;
    assert_eq!(r.status, 596);
    let r = api.get("/nodes").await;
    let st: Vec<&str> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["status"].as_str().unwrap())
        .collect();
    assert_eq!(st, ["online", "offline", "online"]);
    let r = api.get("/cluster/status").await;
    assert_eq!(r.data()[0]["type"], "cluster");
    assert_eq!(r.data().as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn new_privsep_token_starts_without_rights_until_an_acl_grants_them() {
    let api = common::start_default().await;
    let r = api
        .post(
            "/access/users/root@pam/token/automation",
            &[("comment", "ci")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["full-tokenid"], "root@pam!automation");
    assert_eq!(r.data()["info"]["privsep"], 1);
    let secret = r.data()["value"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&secret).is_ok());
    let tok = format!("PVEAPIToken=root@pam!automation={secret}");
    // privsep: the intersection of user and token ACLs, which is empty: lists filter.
    let r = api.call_as(&tok, "GET", "/cluster/resources", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data().as_array().unwrap().len(), 0, "{:?}", r.body);
    let r = api.call_as(&tok, "GET", "/nodes/proxmox/status", &[]).await;
    assert_eq!(
        r.message(),
        "Permission check failed (/nodes/proxmox, Sys.Audit)\n"
    );
    let r = api
        .put(
            "/access/acl",
            &[
                ("path", "/"),
                ("roles", "PVEAuditor"),
                ("tokens", "root@pam!automation"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        api.call_as(&tok, "GET", "/nodes/proxmox/status", &[])
            .await
            .status,
        200
    );
    assert_eq!(
        api.delete("/access/users/root@pam/token/automation", &[])
            .await
            .status,
        200
    );
    assert_eq!(api.call_as(&tok, "GET", "/nodes", &[]).await.status, 401);
}

#[tokio::test]
async fn root_ticket_may_skiplock() {
    let api = common::start_default().await;
    api.create_vm(100, &[]).await;
    let pw = api.sim.root_password();
    let r = api
        .call_as(
            "",
            "POST",
            "/access/ticket",
            &[("username", "root"), ("realm", "pam"), ("password", &pw)],
        )
        .await;
    let ticket = r.data()["ticket"].as_str().unwrap().to_string();
    let csrf = r.data()["CSRFPreventionToken"]
        .as_str()
        .unwrap()
        .to_string();
    let cookie = format!("PVEAuthCookie={}", common::urlencode(&ticket));
    let resp = api
        .http
        .put(format!("{}/nodes/proxmox/qemu/100/config", api.base))
        .header("Cookie", &cookie)
        .header("CSRFPreventionToken", &csrf)
        .form(&[("lock", "backup")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let r = api
        .put("/nodes/proxmox/qemu/100/config", &[("name", "x")])
        .await;
    assert_eq!(r.message(), "VM is locked (backup)\n");
    let resp = api
        .http
        .put(format!("{}/nodes/proxmox/qemu/100/config", api.base))
        .header("Cookie", &cookie)
        .header("CSRFPreventionToken", &csrf)
        .form(&[("delete", "lock"), ("skiplock", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        api.put("/nodes/proxmox/qemu/100/config", &[("name", "x")])
            .await
            .status,
        200
    );
}
