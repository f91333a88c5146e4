//! Benchmark (not a test): requests/s at 3 workers without latency, and the memory of the
//! large scenario (8 nodes / 1000 VMs). Run with
//! `cargo run --release -p labwright-sim --example bench`.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use labwright_sim::{Scenario, SimConfig, SimHandle, Simulator};

fn client(sim: &SimHandle) -> reqwest::Client {
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
        .build()
        .unwrap()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Requests/s of `path` with `clients` concurrent keep-alive clients for `secs`.
async fn throughput(sim: &SimHandle, path: &str, clients: usize, secs: f64) -> (f64, Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let url = format!("https://localhost:{}/api2/json{path}", sim.addr().port());
    let auth = format!("PVEAPIToken={}={}", sim.token_id(), sim.token_secret());
    let mut handles = vec![];
    for _ in 0..clients {
        let (http, url, auth, done, lat) = (
            client(sim),
            url.clone(),
            auth.clone(),
            done.clone(),
            lat.clone(),
        );
        handles.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = http
                    .get(&url)
                    .header("Authorization", &auth)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                let _ = r.bytes().await.unwrap();
                lat.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let n = done.load(Ordering::Relaxed).max(1);
    (
        n as f64 / secs,
        Duration::from_micros(lat.load(Ordering::Relaxed) / n),
    )
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base_rss = rss_kib();
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    println!("| scenario | request | clients | workers | req/s | mean latency |");
    println!("|---|---|---|---|---|---|");
    for (path, clients) in [
        ("/version", 8),
        ("/nodes", 8),
        ("/nodes/proxmox/qemu", 8),
        ("/cluster/resources", 8),
        ("/version", 1),
    ] {
        let (rps, lat) = throughput(&sim, path, clients, 3.0).await;
        println!("| fresh | GET {path} | {clients} | 3 | {rps:.0} | {lat:?} |");
    }
    sim.shutdown().await;

    let before = rss_kib();
    let t = Instant::now();
    let large = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        scenario: Scenario::Large {
            nodes: 8,
            vms: 1000,
        },
        workers: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let startup = t.elapsed();
    let after = rss_kib();
    for (path, clients) in [("/cluster/resources", 8), ("/nodes/pve1/qemu", 8)] {
        let (rps, lat) = throughput(&large, path, clients, 3.0).await;
        println!("| large 8/1000 | GET {path} | {clients} | 3 | {rps:.0} | {lat:?} |");
    }
    let state = serde_json::to_vec(&large.snapshot_state()).unwrap().len();
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| process RSS before any simulator | {} MiB |",
        base_rss / 1024
    );
    println!(
        "| RSS growth for the large scenario (8 nodes, 1000 VMs) | {} MiB |",
        after.saturating_sub(before) / 1024
    );
    println!(
        "| RSS after the large-scenario load | {} MiB |",
        rss_kib() / 1024
    );
    println!("| large scenario start-up | {startup:?} |");
    println!("| serialised state size | {} KiB |", state / 1024);
    large.shutdown().await;
}
