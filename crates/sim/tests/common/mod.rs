//! Shared helpers for the simulator's integration tests: start a simulator and talk to it
//! over real HTTPS, trusting its cluster CA.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod ssh;

use std::sync::Arc;
use std::time::Duration;

use labwright_sim::{SimConfig, SimHandle, Simulator};
use serde_json::Value;

pub struct Api {
    pub sim: SimHandle,
    pub http: reqwest::Client,
    pub base: String,
    pub auth: String,
}

pub fn client_for(sim: &SimHandle) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(sim.ca_der()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(cfg)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn start(cfg: SimConfig) -> Api {
    let sim = Simulator::start(cfg).await.unwrap();
    let http = client_for(&sim);
    let base = format!("https://localhost:{}/api2/json", sim.addr().port());
    let auth = format!("PVEAPIToken={}={}", sim.token_id(), sim.token_secret());
    Api {
        sim,
        http,
        base,
        auth,
    }
}

pub async fn start_default() -> Api {
    start(SimConfig::for_tests()).await
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Resp {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    pub fn err(&self, key: &str) -> String {
        self.body["errors"][key].as_str().unwrap_or("").to_string()
    }
    pub fn message(&self) -> String {
        self.body["message"].as_str().unwrap_or("").to_string()
    }
}

impl Api {
    pub async fn call(&self, method: &str, path: &str, form: &[(&str, &str)]) -> Resp {
        self.call_as(&self.auth, method, path, form).await
    }

    pub async fn call_as(
        &self,
        auth: &str,
        method: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> Resp {
        let url = format!("{}{}", self.base, path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(m, url);
        if !auth.is_empty() {
            rb = rb.header("Authorization", auth);
        }
        rb = if method == "GET" || method == "DELETE" {
            rb.query(form)
        } else {
            rb.form(form)
        };
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &[]).await
    }
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.call("POST", path, form).await
    }
    pub async fn put(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.call("PUT", path, form).await
    }
    pub async fn delete(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.call("DELETE", path, form).await
    }

    /// Polls a task until it stops; returns its exitstatus.
    pub async fn wait(&self, upid: &Value) -> String {
        let upid = upid.as_str().unwrap_or_default().to_string();
        assert!(upid.starts_with("UPID:"), "not a UPID: {upid}");
        let node = upid.split(':').nth(1).unwrap().to_string();
        let enc = urlencode(&upid);
        for _ in 0..2000 {
            let r = self.get(&format!("/nodes/{node}/tasks/{enc}/status")).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            if r.data()["status"] == "stopped" {
                return r.data()["exitstatus"].as_str().unwrap_or("").to_string();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("task {upid} did not finish");
    }

    /// Creates a small VM and waits for it.
    pub async fn create_vm(&self, vmid: u32, extra: &[(&str, &str)]) {
        let id = vmid.to_string();
        let mut form = vec![
            ("vmid", id.as_str()),
            ("name", "test-vm"),
            ("memory", "2048"),
            ("cores", "2"),
            ("scsihw", "virtio-scsi-pci"),
            ("scsi0", "local-lvm:8"),
            ("net0", "virtio,bridge=vmbr0"),
        ];
        form.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        form.extend_from_slice(extra);
        let r = self.post("/nodes/proxmox/qemu", &form).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(self.wait(r.data()).await, "OK");
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends one raw HTTP/1.1 request over TLS and returns (status line, peer leaf DER, body).
/// Used where reqwest hides details (reason phrases, the served certificate).
pub fn raw_request(sim: &SimHandle, request: &str) -> (String, Vec<u8>, String) {
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(sim.ca_der()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = std::net::TcpStream::connect(sim.addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    let leaf = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, leaf, body)
}

pub fn fingerprint_of(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
