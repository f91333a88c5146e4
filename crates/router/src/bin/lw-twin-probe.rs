//! Test helper of the router's namespace twin (`tests/twin.rs`), run inside a network
//! namespace with `ip netns exec`. std only.
//!
//! `lw-twin-probe listen PORT...` — listens on every port (all addresses), prints
//! `ready` once all are bound, answers each connection with the peer's address (so the
//! prober sees NAT), and exits when its stdin closes (so it never outlives the test,
//! even one that was killed).
//!
//! `lw-twin-probe connect TIMEOUT_MS ADDR:PORT...` — tries every target at once and
//! prints one line per target, in order: `ADDR:PORT open PEER` or
//! `ADDR:PORT closed REASON`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("listen") => listen(&args[1..]),
        Some("connect") => connect(&args[1..]),
        _ => {
            eprintln!("usage: lw-twin-probe listen PORT... | connect TIMEOUT_MS ADDR:PORT...");
            ExitCode::from(64)
        }
    }
}

fn listen(ports: &[String]) -> ExitCode {
    let mut listeners = Vec::new();
    for p in ports {
        let Ok(port) = p.parse::<u16>() else {
            eprintln!("not a port: {p}");
            return ExitCode::from(64);
        };
        match TcpListener::bind(("0.0.0.0", port)) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("cannot listen on {port}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    for l in listeners {
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let peer = s
                    .peer_addr()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                let _ = writeln!(s, "{peer}");
            }
        });
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    // Stay up until the test closes our stdin (or dies).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    ExitCode::SUCCESS
}

fn connect(args: &[String]) -> ExitCode {
    let Some(ms) = args.first().and_then(|t| t.parse::<u64>().ok()) else {
        eprintln!("connect needs a timeout in milliseconds first");
        return ExitCode::from(64);
    };
    let timeout = Duration::from_millis(ms);
    let handles: Vec<_> = args[1..]
        .iter()
        .map(|t| {
            let t = t.clone();
            std::thread::spawn(move || {
                let Ok(addr) = t.parse::<SocketAddr>() else {
                    return format!("{t} closed bad-address");
                };
                match TcpStream::connect_timeout(&addr, timeout) {
                    Ok(s) => {
                        let _ = s.set_read_timeout(Some(timeout));
                        let mut line = String::new();
                        let _ = BufReader::new(s).read_line(&mut line);
                        let peer = line.trim();
                        format!("{t} open {}", if peer.is_empty() { "?" } else { peer })
                    }
                    Err(e) => {
                        let why = match e.kind() {
                            std::io::ErrorKind::TimedOut => "timeout".to_string(),
                            std::io::ErrorKind::ConnectionRefused => "refused".to_string(),
                            _ => e.to_string().replace(' ', "-"),
                        };
                        format!("{t} closed {why}")
                    }
                }
            })
        })
        .collect();
    for h in handles {
        match h.join() {
            Ok(line) => println!("{line}"),
            Err(_) => println!("? closed probe-thread-panicked"),
        }
    }
    ExitCode::SUCCESS
}
