//! Transport behaviour against a local HTTPS server (loopback only).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{CANARY, Reply, pinned_config, start};
use labwright_pve::{
    ClientConfig, Credentials, Error, Fingerprint, Params, PveClient, TlsMode, Upid, WaitOptions,
};
use serde_json::json;

fn version_ok() -> common::Responder {
    Arc::new(|_, _| {
        Reply::data(json!({"version": "9.1.1", "release": "9.1", "repoid": "abcdef12"}))
    })
}

#[tokio::test]
async fn pinned_fingerprint_is_accepted_and_token_header_sent() {
    let server = start(version_ok()).await;
    let client = PveClient::new(pinned_config(&server)).expect("client");
    let v = client.version().await.expect("version");
    assert_eq!(v.version, "9.1.1");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/api2/json/version");
    let auth = reqs[0]
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(auth, format!("PVEAPIToken=root@pam!labwright={CANARY}"));
    assert!(reqs[0].headers.get("csrfpreventiontoken").is_none());
    assert_eq!(client.request_count(), 1);
}

#[tokio::test]
async fn pin_in_lowercase_without_colons_also_matches() {
    let server = start(version_ok()).await;
    let bare = server.fingerprint.replace(':', "").to_lowercase();
    let cfg = pinned_config(&server).tls(TlsMode::Fingerprint(
        Fingerprint::parse(&bare).expect("bare hex"),
    ));
    let client = PveClient::new(cfg).expect("client");
    client.version().await.expect("version");
}

#[tokio::test]
async fn wrong_pin_is_refused_without_fallback() {
    let server = start(version_ok()).await;
    let wrong = Fingerprint::parse(&"AB".repeat(32)).expect("fp");
    // The chain is valid for this CA, yet the pin must still win.
    let cfg = pinned_config(&server).tls(TlsMode::Fingerprint(wrong));
    let client = PveClient::new(cfg).expect("client");
    let err = client.version().await.expect_err("must refuse");
    match &err {
        Error::FingerprintMismatch { expected, got, .. } => {
            assert_eq!(*expected, wrong);
            assert_eq!(got.to_string(), server.fingerprint);
        }
        other => panic!("expected FingerprintMismatch, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&wrong.to_string()) && text.contains(&server.fingerprint),
        "{text}"
    );
    assert!(
        server.requests().is_empty(),
        "no request may reach the server"
    );
    // A pin mismatch is not retried.
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn ca_file_trust_and_system_roots_refusal() {
    let server = start(version_ok()).await;
    let dir = std::env::temp_dir().join(format!("lw-pve-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &server.ca_pem).expect("write ca");
    let client =
        PveClient::new(pinned_config(&server).tls(TlsMode::CaFile(ca.clone()))).expect("client");
    client.version().await.expect("CA-signed leaf accepted");

    let client = PveClient::new(pinned_config(&server).tls(TlsMode::SystemRoots)).expect("client");
    let err = client.version().await.expect_err("unknown CA refused");
    assert!(matches!(err, Error::CertificateRejected { .. }), "{err:?}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert_eq!(
        client.stats().retries,
        0,
        "certificate errors are not retried"
    );

    let client = PveClient::new(pinned_config(&server).tls(TlsMode::Insecure)).expect("client");
    assert!(client.is_insecure());
    client.version().await.expect("insecure accepts when asked");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bad_request_maps_errors_and_message() {
    let server = start(Arc::new(|_, _| {
        Reply::json(
            400,
            json!({"data": null, "message": "Parameter verification failed.\n", "errors": {
                "net0": "invalid format - format error\nnet0.tag: value must have a maximum value of 4094\n",
                "bogus": "property is not defined in schema and the schema does not allow additional properties"
            }}),
        )
        .reason("Parameter verification failed.")
    }))
    .await;
    let client = PveClient::new(pinned_config(&server)).expect("client");
    let err = client
        .qemu_update_config(
            "pve",
            100,
            Params::new().set("net0", "virtio,bridge=vmbr0,tag=5000"),
            &[],
            None,
        )
        .await
        .expect_err("400");
    let api = err.api().expect("api error");
    assert_eq!(api.status, 400);
    assert_eq!(api.method, "PUT");
    assert_eq!(api.path, "/nodes/pve/qemu/100/config");
    assert_eq!(api.message, "Parameter verification failed.");
    assert!(api.errors["net0"].contains("maximum value of 4094"));
    assert!(api.errors.contains_key("bogus"));
    let text = err.to_string();
    assert!(text.contains("net0: invalid format"), "{text}");
    // Form body, booleans and values encoded; the write is not retried.
    assert_eq!(server.count("PUT", "/config"), 1);
    assert!(
        server.requests()[0]
            .body
            .contains("net0=virtio%2Cbridge%3Dvmbr0%2Ctag%3D5000")
    );
}

#[tokio::test]
async fn old_servers_message_comes_from_reason_phrase() {
    let server = start(Arc::new(|_, _| {
        Reply::json(500, json!({"data": null})).reason("VM 100 not running")
    }))
    .await;
    let client = PveClient::new(pinned_config(&server)).expect("client");
    let err = client.qemu_reboot("pve", 100, None).await.expect_err("500");
    assert_eq!(
        err.api().map(|a| a.message.as_str()),
        Some("VM 100 not running")
    );
    assert!(!err.is_not_found());
}

#[tokio::test]
async fn get_is_retried_on_503_but_post_is_not() {
    let server = start(Arc::new(|r, _| {
        if r.method == "GET" && r.path.ends_with("/version") {
            // Fails twice, then succeeds.
            let n = RETRY_GETS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n < 2 {
                return Reply::json(503, json!({"data": null})).reason("Service Unavailable");
            }
            return Reply::data(json!({"version": "9.1.1", "release": "9.1", "repoid": "x"}));
        }
        Reply::json(503, json!({"data": null}))
    }))
    .await;
    let client = PveClient::new(pinned_config(&server)).expect("client");
    client.version().await.expect("third attempt succeeds");
    assert_eq!(server.count("GET", "/version"), 3);
    assert_eq!(client.stats().retries, 2);

    let err = client.qemu_start("pve", 100).await.expect_err("POST fails");
    assert_eq!(err.status(), Some(503));
    assert_eq!(
        server.count("POST", "/status/start"),
        1,
        "writes are never retried"
    );
    assert_eq!(client.request_count(), 4);
}

static RETRY_GETS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[tokio::test]
async fn get_retry_stops_on_plain_500() {
    let server = start(Arc::new(|_, _| {
        Reply::json(
            500,
            json!({"data": null, "message": "Configuration file 'nodes/pve/qemu-server/999.conf' does not exist\n"}),
        )
    }))
    .await;
    let client = PveClient::new(pinned_config(&server)).expect("client");
    let err = client.qemu_config("pve", 999).await.expect_err("500");
    assert!(err.is_not_found());
    assert_eq!(server.count("GET", "/config"), 1);
}

#[tokio::test]
async fn concurrency_bound_is_honoured() {
    let server = start(Arc::new(|_, _| {
        Reply::data(json!({"version": "9.1.1", "release": "9.1", "repoid": "x"}))
            .delay(Duration::from_millis(60))
    }))
    .await;
    let client = PveClient::new(pinned_config(&server).max_concurrency(2)).expect("client");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = client.clone();
        set.spawn(async move { c.version().await.map(|_| ()) });
    }
    while let Some(r) = set.join_next().await {
        r.expect("join").expect("request");
    }
    let max = server
        .max_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(max <= 2, "server saw {max} concurrent requests");
    assert!(max >= 1);
    assert_eq!(client.request_count(), 8);
}

const UPID_OK: &str = "UPID:pve:000FF1FD:10F9374C:630D702C:qmstart:100:root@pam!labwright:";

#[tokio::test]
async fn wait_task_success_with_backoff() {
    let server = start(Arc::new(|r, _| {
        if r.path.ends_with("/status/start") {
            return Reply::data(json!(UPID_OK));
        }
        if r.path.ends_with("/status") {
            let n = POLLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n < 2 {
                return Reply::data(json!({"upid": UPID_OK, "status": "running", "pid": 1044989}));
            }
            return Reply::data(json!({"upid": UPID_OK, "status": "stopped", "exitstatus": "OK",
                "type": "qmstart", "id": "100", "node": "pve", "user": "root@pam", "starttime": "1661825068"}));
        }
        Reply::json(501, json!({"data": null}))
    }))
    .await;
    let client = PveClient::new(pinned_config(&server)).expect("client");
    let upid = client.qemu_start("pve", 100).await.expect("upid");
    assert_eq!(upid.node, "pve");
    let st = client
        .wait_task(&upid, WaitOptions::with_timeout(Duration::from_secs(5)))
        .await
        .expect("task ok");
    assert!(st.is_success());
    let polls = server.count("GET", "/status");
    assert_eq!(polls, 3);
    // The node in the path comes from the UPID, and the UPID is one encoded segment
    // (as the PVE GUI does with encodeURIComponent).
    let status_req = server
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/status"))
        .expect("poll");
    assert!(
        status_req
            .path
            .starts_with("/api2/json/nodes/pve/tasks/UPID%3Apve%3A000FF1FD"),
        "{}",
        status_req.path
    );
}

static POLLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[tokio::test]
async fn wait_task_failure_returns_log_tail() {
    let upid = "UPID:pve:00001234:10F9374C:630D702C:qmcreate:100:root@pam:";
    let server = start(Arc::new(move |r, _| {
        if r.path.ends_with("/status") {
            return Reply::data(json!({"upid": upid, "status": "stopped",
                "exitstatus": "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"}));
        }
        if r.path.ends_with("/log") {
            let lines: Vec<_> = (1..=30)
                .map(|n| json!({"n": n, "t": if n == 30 { "TASK ERROR: can't lock file".to_string() } else { format!("line {n}") }}))
                .collect();
            let start: usize = r
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("start="))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let limit: usize = r
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("limit="))
                .and_then(|s| s.parse().ok())
                .unwrap_or(50);
            let page: Vec<_> = lines.into_iter().skip(start).take(limit).collect();
            return Reply::json(200, json!({"data": page, "total": 30}));
        }
        Reply::json(501, json!({"data": null}))
    }))
    .await;
    let client = PveClient::new(pinned_config(&server)).expect("client");
    let upid = Upid::parse(upid).expect("upid");
    let opts = WaitOptions {
        log_tail: 5,
        ..WaitOptions::with_timeout(Duration::from_secs(5))
    };
    let err = client
        .wait_task(&upid, opts)
        .await
        .expect_err("task failed");
    match &err {
        Error::TaskFailed {
            exitstatus,
            log_tail,
            ..
        } => {
            assert!(exitstatus.contains("got timeout"));
            assert_eq!(log_tail.len(), 5);
            assert_eq!(
                log_tail.last().map(String::as_str),
                Some("TASK ERROR: can't lock file")
            );
            assert_eq!(log_tail.first().map(String::as_str), Some("line 26"));
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    assert!(err.to_string().contains("TASK ERROR"));
}

#[tokio::test]
async fn wait_task_times_out() {
    let server = start(Arc::new(|_, _| {
        Reply::data(json!({"upid": UPID_OK, "status": "running"}))
    }))
    .await;
    let client = PveClient::new(pinned_config(&server)).expect("client");
    let upid = Upid::parse(UPID_OK).expect("upid");
    let err = client
        .wait_task(&upid, WaitOptions::with_timeout(Duration::from_millis(300)))
        .await
        .expect_err("timeout");
    assert!(matches!(err, Error::TaskTimeout { .. }), "{err:?}");
    // Backoff keeps the poll count low: 50+100+200 ms fits about 4 polls.
    assert!(server.count("GET", "/status") <= 5);
}

#[tokio::test]
async fn ticket_auth_sends_cookie_and_csrf_on_writes() {
    let server = start(Arc::new(|r, _| {
        if r.path.ends_with("/access/ticket") {
            return Reply::data(json!({"username": "root@pam",
                "ticket": "PVE:root@pam:6565A1B2::c2lnbmF0dXJl", "CSRFPreventionToken": "6565A1B2:csrf"}));
        }
        if r.method == "GET" {
            return Reply::data(json!({"version": "9.1.1", "release": "9.1", "repoid": "x"}));
        }
        Reply::data(json!(null))
    }))
    .await;
    let cfg = ClientConfig::new(
        server.url.clone(),
        Credentials::password("root@pam", CANARY),
    )
    .tls(TlsMode::Fingerprint(
        Fingerprint::parse(&server.fingerprint).expect("fp"),
    ));
    let client = PveClient::new(cfg).expect("client");
    client.version().await.expect("get");
    client
        .qemu_update_config(
            "pve",
            100,
            Params::new().set("onboot", true),
            &[],
            Some("abc"),
        )
        .await
        .expect("put");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3, "one login, then two calls");
    assert!(reqs[0].body.contains("username=root%40pam"));
    let cookie = |i: usize| {
        reqs[i]
            .headers
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(cookie(1).starts_with("PVEAuthCookie=PVE%3Aroot%40pam%3A6565A1B2"));
    assert!(reqs[1].headers.get("csrfpreventiontoken").is_none());
    assert_eq!(
        reqs[2]
            .headers
            .get("csrfpreventiontoken")
            .and_then(|v| v.to_str().ok()),
        Some("6565A1B2:csrf")
    );
    assert!(reqs[2].body.contains("onboot=1"));
    assert!(reqs[2].body.contains("digest=abc"));
}

#[tokio::test]
async fn failed_login_names_user_not_password() {
    let server = start(Arc::new(|_, _| {
        Reply::json(
            401,
            json!({"data": null, "message": "authentication failure\n"}),
        )
    }))
    .await;
    let cfg = ClientConfig::new(
        server.url.clone(),
        Credentials::password("root@pam", CANARY),
    )
    .tls(TlsMode::Fingerprint(
        Fingerprint::parse(&server.fingerprint).expect("fp"),
    ));
    let client = PveClient::new(cfg).expect("client");
    let err = client.version().await.expect_err("login fails");
    assert!(err.is_auth());
    let text = format!("{err} {err:?}");
    assert!(text.contains("root@pam") && text.contains("authentication failure"));
    assert!(!text.contains(CANARY));
}

#[tokio::test]
async fn probe_fingerprint_reports_the_leaf_for_tofu() {
    let server = start(Arc::new(|_, _| Reply::json(401, json!({"data": null})))).await;
    let fp = labwright_pve::probe_fingerprint(&server.url, Duration::from_secs(5))
        .await
        .expect("probe");
    assert_eq!(fp.to_string(), server.fingerprint);
    assert!(
        server.requests()[0].headers.get("authorization").is_none(),
        "the probe must not send credentials"
    );
}

#[tokio::test]
async fn expired_ticket_triggers_a_fresh_login() {
    let server = start(Arc::new(|r, n| {
        if r.path.ends_with("/access/ticket") {
            return Reply::data(json!({"username": "root@pam",
                "ticket": format!("PVE:root@pam:0000000{n}::sig"), "CSRFPreventionToken": "x:y"}));
        }
        // The first API call after the first login is refused as expired.
        if n == 1 {
            return Reply::json(401, json!({"data": null})).reason("authentication failure");
        }
        Reply::data(json!({"version": "9.1.1", "release": "9.1", "repoid": "x"}))
    }))
    .await;
    let cfg = ClientConfig::new(
        server.url.clone(),
        Credentials::password("root@pam", CANARY),
    )
    .tls(TlsMode::Fingerprint(
        Fingerprint::parse(&server.fingerprint).expect("fp"),
    ));
    let client = PveClient::new(cfg).expect("client");
    let err = client.version().await.expect_err("401 surfaces");
    assert!(err.is_auth());
    client.version().await.expect("re-login then success");
    assert_eq!(server.count("POST", "/access/ticket"), 2);
}

#[tokio::test]
async fn wait_task_tolerates_no_such_task_right_after_start() {
    let server = start(Arc::new(|_, n| {
        if n == 0 {
            return Reply::json(
                400,
                json!({"data": null, "errors": {"upid": "no such task"}, "message": "Parameter verification failed.\n"}),
            );
        }
        Reply::data(json!({"upid": UPID_OK, "status": "stopped", "exitstatus": "WARNINGS: 1"}))
    }))
    .await;
    let client = PveClient::new(pinned_config(&server)).expect("client");
    let upid = Upid::parse(UPID_OK).expect("upid");
    let st = client
        .wait_task(&upid, WaitOptions::with_timeout(Duration::from_secs(5)))
        .await
        .expect("warnings count as success");
    assert!(st.has_warnings());
}

#[tokio::test]
async fn proxy_errors_595_are_retried_for_get() {
    let server = start(Arc::new(|_, n| {
        if n == 0 {
            return Reply::json(595, json!({"data": null})).reason(
                "Errors during connection establishment, proxy handshake: No route to host",
            );
        }
        Reply::data(json!([{"node": "pve2", "status": "online"}]))
    }))
    .await;
    let client = PveClient::new(pinned_config(&server)).expect("client");
    let nodes = client.nodes().await.expect("second attempt");
    assert_eq!(nodes[0].node, "pve2");
    assert_eq!(
        client.stats(),
        labwright_pve::RequestStats {
            requests: 2,
            retries: 1
        }
    );
}
