//! A tiny HTTPS stand-in for pveproxy: rcgen CA + leaf, axum-server with rustls,
//! one scripted responder, and a log of what the client sent.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// What the client sent.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: String,
}

/// What to answer.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub reason: Option<String>,
}

impl Reply {
    pub fn data(v: serde_json::Value) -> Self {
        Self::json(200, serde_json::json!({ "data": v }))
    }
    pub fn json(status: u16, v: serde_json::Value) -> Self {
        Self {
            status,
            body: v.to_string(),
            delay: Duration::ZERO,
            reason: None,
        }
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    pub fn reason(mut self, r: &str) -> Self {
        self.reason = Some(r.to_string());
        self
    }
}

pub type Responder = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

pub struct TestServer {
    pub url: String,
    /// `AA:BB:…` SHA-256 of the leaf certificate.
    pub fingerprint: String,
    /// PEM of the issuing CA.
    pub ca_pem: String,
    pub log: Arc<Mutex<Vec<Recorded>>>,
    pub max_in_flight: Arc<AtomicUsize>,
    handle: axum_server::Handle<std::net::SocketAddr>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl TestServer {
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().map(|g| g.clone()).unwrap_or_default()
    }

    pub fn count(&self, method: &str, path_suffix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(path_suffix))
            .count()
    }
}

fn certs() -> (Vec<u8>, Vec<u8>, Vec<u8>, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "labwright test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf cert");
    (
        leaf.der().to_vec(),
        leaf_key.serialize_der(),
        ca.der().to_vec(),
        ca.pem(),
    )
}

pub async fn start(responder: Responder) -> TestServer {
    let (leaf_der, key_der, ca_der, ca_pem) = certs();
    let fingerprint = labwright_pve::Fingerprint::of_der(&leaf_der).to_string();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_der.into(), ca_der.into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key_der.into()),
        )
        .expect("server cert");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];

    let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));

    let app = {
        let log = log.clone();
        let in_flight = in_flight.clone();
        let max_in_flight = max_in_flight.clone();
        axum::Router::new().fallback(move |req: Request| {
            let log = log.clone();
            let responder = responder.clone();
            let in_flight = in_flight.clone();
            let max_in_flight = max_in_flight.clone();
            let calls = calls.clone();
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max_in_flight.fetch_max(now, Ordering::SeqCst);
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 24)
                    .await
                    .unwrap_or_default();
                let rec = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or_default().to_string(),
                    headers: parts.headers.clone(),
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                };
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let reply = responder(&rec, n);
                if let Ok(mut g) = log.lock() {
                    g.push(rec);
                }
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let mut resp = Response::new(Body::from(reply.body));
                *resp.status_mut() =
                    StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                resp.headers_mut().insert(
                    "content-type",
                    axum::http::HeaderValue::from_static("application/json;charset=UTF-8"),
                );
                if let Some(r) = reply.reason
                    && let Ok(rp) = hyper::ext::ReasonPhrase::try_from(r)
                {
                    resp.extensions_mut().insert(rp);
                }
                resp
            }
        })
    };

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cfg)),
    )
    .expect("server")
    .handle(handle.clone());
    tokio::spawn(async move {
        let _ = server.serve(app.into_make_service()).await;
    });
    TestServer {
        url: format!("https://127.0.0.1:{}", addr.port()),
        fingerprint,
        ca_pem,
        log,
        max_in_flight,
        handle,
    }
}

/// A client pinned to the server's fingerprint with a canary token.
pub const CANARY: &str = "canary-5ec2e7-do-not-print";

pub fn pinned_config(server: &TestServer) -> labwright_pve::ClientConfig {
    labwright_pve::ClientConfig::new(
        server.url.clone(),
        labwright_pve::Credentials::api_token("root@pam!labwright", CANARY),
    )
    .tls(labwright_pve::TlsMode::Fingerprint(
        labwright_pve::Fingerprint::parse(&server.fingerprint).expect("fingerprint"),
    ))
    .retry(labwright_pve::RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    })
}
