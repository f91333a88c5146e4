//! No credential may appear in any error, config or client formatting.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{CANARY, Reply, pinned_config, start};
use labwright_pve::{
    ClientConfig, Credentials, Error, Fingerprint, PveClient, RetryPolicy, TlsMode, Upid,
    WaitOptions,
};
use serde_json::json;

fn assert_clean(label: &str, text: &str) {
    assert!(!text.contains(CANARY), "{label} leaks the secret: {text}");
    assert!(
        !text.contains("canary"),
        "{label} leaks part of the secret: {text}"
    );
}

fn check(label: &str, err: &Error) {
    assert_clean(label, &err.to_string());
    assert_clean(label, &format!("{err:?}"));
    assert_clean(label, &format!("{err:#?}"));
    let mut src = std::error::Error::source(err);
    while let Some(s) = src {
        assert_clean(label, &s.to_string());
        src = s.source();
    }
}

fn password_cfg(url: &str, fp: &str) -> ClientConfig {
    ClientConfig::new(url, Credentials::password("root@pam", CANARY))
        .tls(TlsMode::Fingerprint(Fingerprint::parse(fp).expect("fp")))
        .retry(RetryPolicy::none())
}

/// A plain-TCP server that reads the request and hangs up without answering.
async fn hang_up_server() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn every_error_variant_hides_the_secret() {
    let mut errors: Vec<(&str, Error)> = Vec::new();

    // Api: 400 with errors map, 401, 500; Decode: not JSON.
    let server = start(Arc::new(|r, _| match r.path.as_str() {
        p if p.ends_with("/bad") => Reply::json(
            400,
            json!({"data": null, "errors": {"vmid": "invalid format"}, "message": "Parameter verification failed.\n"}),
        ),
        p if p.ends_with("/unauth") => Reply::json(401, json!({})).reason("authentication failure"),
        p if p.ends_with("/garbage") => Reply {
            status: 200,
            body: "<html>not json</html>".into(),
            delay: Duration::ZERO,
            reason: None,
        },
        p if p.ends_with("/slow") => Reply::data(json!(null)).delay(Duration::from_millis(400)),
        p if p.ends_with("/status") => Reply::data(json!({"upid": "x", "status": "stopped", "exitstatus": "boom"})),
        p if p.ends_with("/log") => Reply::json(200, json!({"data": [{"n": 1, "t": "TASK ERROR: boom"}], "total": 1})),
        p if p.ends_with("/agent/exec") => Reply::data(json!({"pid": 7})),
        p if p.ends_with("/agent/exec-status") => Reply::data(json!({"exited": 0})),
        _ => Reply::json(500, json!({"data": null, "message": "VM 100 is locked (backup)\n"})),
    }))
    .await;
    let token = PveClient::new(pinned_config(&server)).expect("client");
    for path in ["/bad", "/unauth", "/garbage", "/other"] {
        let e = token
            .post::<serde_json::Value>(path, labwright_pve::Params::new().set("x", "1"))
            .await
            .expect_err("error");
        errors.push(("api/decode (token)", e));
    }
    let short = PveClient::new(pinned_config(&server).request_timeout(Duration::from_millis(100)))
        .expect("client");
    errors.push((
        "timeout",
        short
            .post::<serde_json::Value>("/slow", labwright_pve::Params::new())
            .await
            .expect_err("timeout"),
    ));

    // Task failure and timeout.
    let upid = Upid::parse("UPID:pve:00001234:10F9374C:630D702C:qmstart:100:root@pam!labwright:")
        .expect("upid");
    errors.push((
        "task failed",
        token
            .wait_task(&upid, WaitOptions::with_timeout(Duration::from_secs(2)))
            .await
            .expect_err("failed"),
    ));
    let running = start(Arc::new(|_, _| {
        Reply::data(json!({"upid": "x", "status": "running"}))
    }))
    .await;
    let c = PveClient::new(pinned_config(&running)).expect("client");
    errors.push((
        "task timeout",
        c.wait_task(&upid, WaitOptions::with_timeout(Duration::from_millis(60)))
            .await
            .expect_err("timeout"),
    ));

    errors.push((
        "agent exec timeout",
        token
            .agent_exec_wait(
                "pve",
                100,
                &["true"],
                Some(CANARY),
                Duration::from_millis(50),
            )
            .await
            .expect_err("timeout"),
    ));

    // Login failure with a password canary (server says 401).
    let login_fail = start(Arc::new(|_, _| {
        Reply::json(
            401,
            json!({"data": null, "message": "authentication failure\n"}),
        )
    }))
    .await;
    let c = PveClient::new(password_cfg(&login_fail.url, &login_fail.fingerprint)).expect("client");
    errors.push(("login", c.version().await.expect_err("login")));
    // Login reply without a ticket.
    let no_ticket = start(Arc::new(|_, _| {
        Reply::data(json!({"username": "root@pam"}))
    }))
    .await;
    let c = PveClient::new(password_cfg(&no_ticket.url, &no_ticket.fingerprint)).expect("client");
    errors.push(("login no ticket", c.version().await.expect_err("login")));

    // Fingerprint mismatch (token and password).
    let wrong = "00".repeat(32);
    let c = PveClient::new(pinned_config(&server).tls(TlsMode::Fingerprint(
        Fingerprint::parse(&wrong).expect("fp"),
    )))
    .expect("client");
    errors.push(("pin mismatch", c.version().await.expect_err("pin")));
    let c = PveClient::new(password_cfg(&server.url, &wrong)).expect("client");
    let e = c.version().await.expect_err("pin");
    assert!(matches!(e, Error::FingerprintMismatch { .. }), "{e:?}");
    errors.push(("pin mismatch (login)", e));

    let c = PveClient::new(pinned_config(&server).tls(TlsMode::SystemRoots)).expect("client");
    errors.push(("cert rejected", c.version().await.expect_err("unknown CA")));

    // Connect: nothing listens on the port any more.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let c = PveClient::new(
        ClientConfig::new(
            format!("https://127.0.0.1:{closed}"),
            Credentials::api_token("root@pam!labwright", CANARY),
        )
        .tls(TlsMode::Insecure)
        .retry(RetryPolicy::none()),
    )
    .expect("client");
    let e = c.version().await.expect_err("refused");
    assert!(e.is_connect(), "{e:?}");
    errors.push(("connect", e));

    // Transport: the server hangs up after reading the request.
    let url = hang_up_server().await;
    let c = PveClient::new(
        ClientConfig::new(url, Credentials::api_token("root@pam!labwright", CANARY))
            .retry(RetryPolicy::none()),
    )
    .expect("client");
    let e = c
        .post::<serde_json::Value>("/x", labwright_pve::Params::new())
        .await
        .expect_err("hang up");
    errors.push(("transport", e));

    // Config and TLS errors built from configs that hold the canary.
    for cfg in [
        ClientConfig::new("ftp://pve", Credentials::api_token("root@pam!t", CANARY)),
        ClientConfig::new(
            "https://pve:8006",
            Credentials::api_token("root@pam", CANARY),
        ),
        ClientConfig::new(
            "https://pve:8006",
            Credentials::api_token("root@pam!t", format!("{CANARY}\n")),
        ),
        ClientConfig::new(
            "https://pve:8006",
            Credentials::api_token("root@pam!t", CANARY),
        )
        .tls(TlsMode::CaFile("/nonexistent/ca.pem".into())),
        ClientConfig::new(
            "https://pve:8006",
            Credentials::api_token("root@pam!t", CANARY),
        )
        .tls(TlsMode::CaPem("not a pem".into())),
        ClientConfig::new(
            "https://pve:8006",
            Credentials::password("root@pam", CANARY),
        )
        .max_concurrency(0),
    ] {
        errors.push(("config", PveClient::new(cfg).expect_err("config error")));
    }

    // UPID and property-string errors.
    errors.push((
        "upid",
        Error::from(Upid::parse("UPID:bad").expect_err("bad")),
    ));
    errors.push((
        "propstring",
        Error::from(labwright_pve::NetDevice::parse("virtio,tag=").expect_err("bad")),
    ));

    let variants: std::collections::BTreeSet<String> = errors
        .iter()
        .map(|(_, e)| {
            let d = format!("{e:?}");
            d.split(['(', ' ', '{'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    for want in [
        "Config",
        "Tls",
        "FingerprintMismatch",
        "CertificateRejected",
        "Connect",
        "Transport",
        "Timeout",
        "Api",
        "Decode",
        "Login",
        "TaskFailed",
        "TaskTimeout",
        "AgentExecTimeout",
        "Upid",
        "PropertyString",
    ] {
        assert!(
            variants.contains(want),
            "variant {want} not exercised: {variants:?}"
        );
    }
    for (label, e) in &errors {
        check(label, e);
    }
}

#[test]
fn error_is_send_sync_static() {
    fn check<T: Send + Sync + 'static + std::error::Error>() {}
    check::<Error>();
}

#[tokio::test]
async fn client_and_config_debug_hide_the_secret() {
    let server = start(Arc::new(|_, _| Reply::data(json!(null)))).await;
    let cfg = pinned_config(&server);
    assert_clean("config", &format!("{cfg:?}"));
    assert_clean("config", &format!("{cfg:#?}"));
    let client = PveClient::new(cfg).expect("client");
    assert_clean("client", &format!("{client:?}"));

    let cfg = ClientConfig::new(
        server.url.clone(),
        Credentials::password("root@pam", CANARY),
    );
    assert_clean("password config", &format!("{cfg:#?}"));
    let ticket = Credentials::Ticket {
        username: "root@pam".into(),
        ticket: CANARY.into(),
        csrf_token: CANARY.into(),
    };
    assert_clean("ticket", &format!("{ticket:?}"));
    let p = labwright_pve::Params::new().set("cipassword", CANARY);
    assert_clean("params", &format!("{p:?}"));
}
