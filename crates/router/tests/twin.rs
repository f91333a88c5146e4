//! The router's network twin: the phase-2 lab in Linux network namespaces, the router
//! running the nftables rendering of the compiled rule set, and every segment-matrix
//! cell tried with a real TCP connect.
//!
//! Topology (one run; every name carries the prefix `lwt<pid><n>`):
//! - `…-sw` holds one Linux bridge per segment, named after the spec's bridge (vmbr0…);
//! - `…-rtr` is the router: one veth leg per `router.interfaces` entry, named after the
//!   interface key (`wan`, `services`, `iot`) and plugged into its segment's bridge,
//!   forwarding on, the nft script loaded with `nft -f`. Its upstream (WAN) address is
//!   a free LAN address standing in for its DHCP lease;
//! - one namespace per host (`eth0` on its segment's bridge): the node (its management
//!   address), each VM (its fixed address, or a free one of its segment standing in for
//!   the lease the router would give), a probe host per segment (the segment's row), the
//!   admin PC (the first address of each `managementAccessCidrs` entry, on the segment
//!   holding it) and an upstream host (the LAN bridge's gateway, plus an "internet"
//!   address, 198.51.100.1). Hosts behind the router route through its address on their
//!   segment; hosts on the upstream segment get routes to the internal segments via the
//!   router's upstream address (what the home router's static route does);
//! - `…-ts` is a tailnet client (100.64.0.0/10 + 7). Routes follow
//!   `tailscale.subnetRoutes`: for a route via the router a point-to-point veth to the
//!   router's `tailscale0`; for a route via another VM (edge-gateway for the LAN) a veth
//!   to that VM's namespace, which forwards and masquerades like a Tailscale subnet
//!   router does (`--snat-subnet-routes`, the default on Linux).
//!
//! Every namespace and link lives inside the run's namespaces, so deleting them (a Drop
//! guard, also on panic) removes everything; listeners exit when the test's end of
//! their stdin closes, even if the test process is killed. Namespaces left by an
//! earlier run whose process is gone are deleted first.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use labwright_router::{Backend, Cell, Intent, L4, Nftables, Path, Role, RuleSet, cells, compile};
use labwright_spec::Spec;

const PHASE: u8 = 2;
const TIMEOUT_MS: u64 = 300;
const INTERNET: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const INTERNET_PORT: u16 = 80;
const PREFIX: &str = "lwt";
const PROBE: &str = env!("CARGO_BIN_EXE_lw-twin-probe");

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Why the twin cannot run here, or `None` when it can.
fn unavailable() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Some(format!(
            "not root (uid {uid}); network namespaces need root"
        ));
    }
    let probe = format!("{PREFIX}{}check", std::process::id());
    match Command::new("ip").args(["netns", "add", &probe]).output() {
        Ok(o) if o.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).output();
            None
        }
        Ok(o) => Some(format!(
            "`ip netns add` refused: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run `ip` (iproute2): {e}")),
    }
}

/// Skips (prints why) where namespaces are impossible; in CI (`CI` set) as root, a
/// missing capability is a failure, never a silent skip.
fn twin_or_skip() -> bool {
    static AVAILABLE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    match AVAILABLE.get_or_init(unavailable).clone() {
        None => {
            let nft = Command::new("nft").arg("--version").output();
            assert!(
                nft.is_ok_and(|o| o.status.success()),
                "`nft` is missing: install Debian's `nftables` (scripts/test does when root)"
            );
            true
        }
        Some(why)
            if std::env::var_os("CI").is_some()
                && (why.starts_with("`ip") || why.starts_with("cannot run")) =>
        {
            panic!("the namespace twin cannot run in CI: {why}")
        }
        Some(why) => {
            eprintln!("skipping the namespace twin: {why}");
            false
        }
    }
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_stdin(args: &[&str], input: &str) -> Result<(), String> {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Deletes namespaces of earlier runs whose process is gone (and what still runs in
/// them: listeners those runs started).
fn sweep_leftovers() {
    let Ok(list) = run(&["ip", "netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if pid.is_empty() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(pids) = run(&["ip", "netns", "pids", name]) {
            for p in pids.split_whitespace() {
                let _ = run(&["kill", "-9", p]);
            }
        }
        let _ = run(&["ip", "netns", "del", name]);
    }
}

/// A host of the twin: a namespace with `eth0` on a segment.
#[derive(Clone, Debug)]
struct Station {
    ns: String,
    segment: String,
    addr: Ipv4Addr,
}

/// The running twin. Dropping it stops the listeners and deletes every namespace.
struct Twin {
    namespaces: Vec<String>,
    children: Vec<Child>,
    ns_prefix: String,
    links: usize,
    /// Row or destination name → station.
    stations: BTreeMap<String, Station>,
    router_ns: String,
    /// Segment → the router's address there; `tailscale` → its tailnet address.
    router_addr: BTreeMap<String, Ipv4Addr>,
    ts_ns: Option<String>,
    upstream: Option<Station>,
}

impl Drop for Twin {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => panic!("the twin is IPv4 only; {a} is IPv6"),
    }
}

fn cidr_v4(c: labwright_spec::types::Cidr) -> (Ipv4Addr, u8) {
    (v4(c.0.network()), c.0.prefix_len())
}

impl Twin {
    fn new() -> Twin {
        let n = RUNS.fetch_add(1, Ordering::SeqCst);
        Twin {
            namespaces: Vec::new(),
            children: Vec::new(),
            ns_prefix: format!("{PREFIX}{}x{n}", std::process::id()),
            links: 0,
            stations: BTreeMap::new(),
            router_ns: String::new(),
            router_addr: BTreeMap::new(),
            ts_ns: None,
            upstream: None,
        }
    }

    fn netns(&mut self, short: &str) -> Result<String, String> {
        let ns = format!("{}-{short}", self.ns_prefix);
        run(&["ip", "netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A veth from `ns` (named `name`) to the switch, on `bridge`.
    fn plug(&mut self, ns: &str, name: &str, bridge: &str) -> Result<(), String> {
        let sw = format!("{}-sw", self.ns_prefix);
        self.links += 1;
        let peer = format!("p{}", self.links);
        run(&[
            "ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", &peer, "netns",
            &sw,
        ])?;
        run(&[
            "ip", "-n", &sw, "link", "set", &peer, "master", bridge, "up",
        ])?;
        run(&["ip", "-n", ns, "link", "set", name, "up"])?;
        Ok(())
    }

    fn sysctl_forward(ns: &str) -> Result<(), String> {
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/ip_forward",
        ])
        .map(|_| ())
    }

    /// Starts a listener on `ports` in `ns` and waits until it is bound.
    fn listen(&mut self, ns: &str, ports: &BTreeSet<u16>) -> Result<(), String> {
        let mut args = vec![
            "netns".to_string(),
            "exec".into(),
            ns.into(),
            PROBE.into(),
            "listen".into(),
        ];
        args.extend(ports.iter().map(u16::to_string));
        let mut child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("listener in {ns}: {e}"))?;
        let out = child.stdout.take();
        self.children.push(child);
        let mut line = String::new();
        if let Some(o) = out {
            let _ = BufReader::new(o).read_line(&mut line);
        }
        if line.trim() != "ready" {
            return Err(format!(
                "the listener in {ns} did not start (ports {ports:?})"
            ));
        }
        Ok(())
    }
}

/// Free addresses of a segment, from the top down, skipping the taken ones.
struct Pool {
    used: BTreeSet<Ipv4Addr>,
}

impl Pool {
    fn take(&mut self, net: Ipv4Addr, prefix: u8) -> Ipv4Addr {
        let size = 1u32 << (32 - u32::from(prefix));
        let base = u32::from(net);
        for off in (1..size - 1).rev() {
            let a = Ipv4Addr::from(base + off);
            if self.used.insert(a) {
                return a;
            }
        }
        panic!("segment {net}/{prefix} has no free address left for the twin");
    }
}

/// Builds the twin of `spec` with the router running `script`.
fn build(spec: &Spec, rs: &RuleSet, script: &str, cells: &[Cell]) -> Result<Twin, String> {
    let mut t = Twin::new();
    sweep_leftovers();
    let segs: BTreeMap<String, (Ipv4Addr, u8, String)> = spec
        .networks
        .segments
        .iter()
        .filter(|(_, s)| s.phase.0 <= PHASE)
        .map(|(n, s)| {
            let (net, p) = cidr_v4(s.cidr);
            (n.clone(), (net, p, s.bridge.clone()))
        })
        .collect();
    let mut pool = Pool {
        used: BTreeSet::new(),
    };
    for h in &rs.hosts {
        if let Some(a) = h.address {
            pool.used.insert(v4(a));
        }
    }
    for i in &rs.interfaces {
        if let Some(a) = i.address {
            pool.used.insert(v4(a.0.addr()));
        }
    }
    for c in &spec.safety_guards.management_access_cidrs {
        pool.used.insert(v4(c.0.addr()));
    }
    for b in spec.networks.bridges.values() {
        if let Some(g) = b.gateway {
            pool.used.insert(v4(g));
        }
    }

    let sw = t.netns("sw")?;
    for (_, _, bridge) in segs.values() {
        run(&["ip", "-n", &sw, "link", "add", bridge, "type", "bridge"])?;
        run(&["ip", "-n", &sw, "link", "set", bridge, "up"])?;
    }

    // The router.
    let rtr = t.netns("rtr")?;
    t.router_ns = rtr.clone();
    for i in rs.interfaces.iter().filter(|i| i.role != Role::Tailnet) {
        let seg = i.segment.clone().unwrap_or_default();
        let (net, p, bridge) = segs.get(&seg).cloned().ok_or(format!("no segment {seg}"))?;
        let addr = match i.address {
            Some(a) => v4(a.0.addr()),
            None => pool.take(net, p),
        };
        t.plug(&rtr, &i.name, &bridge)?;
        run(&[
            "ip",
            "-n",
            &rtr,
            "addr",
            "add",
            &format!("{addr}/{p}"),
            "dev",
            &i.name,
        ])?;
        t.router_addr.insert(seg, addr);
    }
    let wan = rs.interfaces.iter().find(|i| i.role == Role::Wan);
    let wan_seg = wan.and_then(|i| i.segment.clone());
    Twin::sysctl_forward(&rtr)?;

    // Hosts: the node and the VMs, a probe per segment, the admin PCs.
    let mut hosts: Vec<(String, String, Option<Ipv4Addr>)> = rs
        .hosts
        .iter()
        .map(|h| (h.name.clone(), h.segment.clone(), h.address.map(v4)))
        .collect();
    for seg in segs.keys() {
        hosts.push((seg.clone(), seg.clone(), None));
    }
    for c in &spec.safety_guards.management_access_cidrs {
        let a = v4(c.0.addr());
        if let Some((seg, _)) = segs
            .iter()
            .find(|(_, (n, p, _))| ipnet::Ipv4Net::new(*n, *p).is_ok_and(|net| net.contains(&a)))
        {
            hosts.push(("management".into(), seg.clone(), Some(a)));
        }
    }
    for (k, (name, seg, addr)) in hosts.into_iter().enumerate() {
        let Some((net, p, bridge)) = segs.get(&seg).cloned() else {
            continue;
        };
        let addr = addr.unwrap_or_else(|| pool.take(net, p));
        let ns = t.netns(&format!("h{k}"))?;
        t.plug(&ns, "eth0", &bridge)?;
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/{p}"),
            "dev",
            "eth0",
        ])?;
        route_host(&t, &ns, &seg, rs, &segs, wan_seg.as_deref())?;
        // The first station of a name wins (several admin CIDRs share one row).
        t.stations.entry(name).or_insert(Station {
            ns,
            segment: seg,
            addr,
        });
    }

    // Upstream: the LAN's gateway and, behind it, "the internet".
    if let (Some(wseg), Some(wan_addr)) = (
        &wan_seg,
        wan_seg.as_ref().and_then(|s| t.router_addr.get(s).copied()),
    ) {
        let (net, p, bridge) = segs[wseg].clone();
        let gw = spec
            .networks
            .bridges
            .get(&bridge)
            .and_then(|b| b.gateway)
            .map(v4)
            .unwrap_or_else(|| pool.take(net, p));
        let ns = t.netns("up")?;
        t.plug(&ns, "eth0", &bridge)?;
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{gw}/{p}"),
            "dev",
            "eth0",
        ])?;
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{INTERNET}/32"),
            "dev",
            "lo",
        ])?;
        // Inbound tries come from the internet address.
        for i in rs.interfaces.iter().filter(|i| i.role == Role::Internal) {
            let (n, ip) = cidr_v4(i.cidr);
            run(&[
                "ip",
                "-n",
                &ns,
                "route",
                "add",
                &format!("{n}/{ip}"),
                "via",
                &wan_addr.to_string(),
                "src",
                &INTERNET.to_string(),
            ])?;
        }
        run(&[
            "ip",
            "-n",
            &rtr,
            "route",
            "add",
            "default",
            "via",
            &gw.to_string(),
        ])?;
        t.upstream = Some(Station {
            ns,
            segment: wseg.clone(),
            addr: gw,
        });
    }

    tailnet(&mut t, spec, rs)?;

    // The rule set, then the listeners, then nothing else changes.
    run_stdin(&["ip", "netns", "exec", &rtr, "nft", "-f", "-"], script)?;
    let mut ports: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for c in cells {
        ports
            .entry(c.to.clone())
            .or_default()
            .extend([c.ports.0, c.ports.1]);
    }
    for (dest, ps) in ports {
        let ns = if dest == "router" {
            t.router_ns.clone()
        } else {
            t.stations
                .get(&dest)
                .map(|s| s.ns.clone())
                .ok_or(format!("no station for {dest}"))?
        };
        t.listen(&ns, &ps)?;
    }
    if let Some(up) = t.upstream.clone() {
        t.listen(&up.ns, &BTreeSet::from([INTERNET_PORT]))?;
    }
    Ok(t)
}

/// Routes of a host: through the router's address on its segment when the router is
/// its gateway; to the internal segments via the router's upstream address otherwise.
fn route_host(
    t: &Twin,
    ns: &str,
    seg: &str,
    rs: &RuleSet,
    segs: &BTreeMap<String, (Ipv4Addr, u8, String)>,
    wan_seg: Option<&str>,
) -> Result<(), String> {
    let Some(gw) = t.router_addr.get(seg) else {
        return Ok(());
    };
    if Some(seg) == wan_seg {
        for i in rs.interfaces.iter().filter(|i| i.role == Role::Internal) {
            let (n, p) = cidr_v4(i.cidr);
            run(&[
                "ip",
                "-n",
                ns,
                "route",
                "add",
                &format!("{n}/{p}"),
                "via",
                &gw.to_string(),
            ])?;
        }
    } else if segs.contains_key(seg) {
        run(&[
            "ip",
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &gw.to_string(),
        ])?;
    }
    Ok(())
}

/// The tailnet client and its subnet routes (see the module doc).
fn tailnet(t: &mut Twin, spec: &Spec, rs: &RuleSet) -> Result<(), String> {
    let Some(ts) = &spec.tailscale else {
        return Ok(());
    };
    let (base, _) = cidr_v4(spec.safety_guards.tailscale_range());
    let at = |off: u32| Ipv4Addr::from(u32::from(base) + off);
    let client = at(7);
    let ns = t.netns("ts")?;
    run(&[
        "ip",
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{client}/32"),
        "dev",
        "lo",
    ])?;
    let mut legs: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    for r in ts.subnet_routes.iter().filter(|r| r.phase.0 <= PHASE) {
        let cidr = match spec.networks.segments.get(&r.route) {
            Some(s) => s.cidr,
            None => r
                .route
                .parse()
                .map_err(|e| format!("route {}: {e}", r.route))?,
        };
        let (net, p) = cidr_v4(cidr);
        let peer = match legs.get(&r.via) {
            Some(a) => *a,
            None => {
                let peer = at(1 + legs.len() as u32);
                let (peer_ns, is_router) = if r.via == rs.router_vm {
                    (t.router_ns.clone(), true)
                } else {
                    let Some(s) = t.stations.get(&r.via) else {
                        continue;
                    };
                    (s.ns.clone(), false)
                };
                let leg = format!("t{}", legs.len());
                run(&[
                    "ip",
                    "-n",
                    &ns,
                    "link",
                    "add",
                    &leg,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "tailscale0",
                    "netns",
                    &peer_ns,
                ])?;
                run(&["ip", "-n", &ns, "link", "set", &leg, "up"])?;
                run(&["ip", "-n", &peer_ns, "link", "set", "tailscale0", "up"])?;
                run(&[
                    "ip",
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{client}/32"),
                    "peer",
                    &format!("{peer}/32"),
                    "dev",
                    &leg,
                ])?;
                run(&[
                    "ip",
                    "-n",
                    &peer_ns,
                    "addr",
                    "add",
                    &format!("{peer}/32"),
                    "peer",
                    &format!("{client}/32"),
                    "dev",
                    "tailscale0",
                ])?;
                if is_router {
                    t.router_addr.insert("tailscale".into(), peer);
                } else {
                    Twin::sysctl_forward(&peer_ns)?;
                    run_stdin(
                        &["ip", "netns", "exec", &peer_ns, "nft", "-f", "-"],
                        &format!(
                            "table ip tailscale_snat {{\n chain post {{\n  type nat hook postrouting priority srcnat; policy accept;\n  oifname \"eth0\" ip saddr {base}/10 masquerade\n }}\n}}\n"
                        ),
                    )?;
                }
                legs.insert(r.via.clone(), peer);
                peer
            }
        };
        run(&[
            "ip",
            "-n",
            &ns,
            "route",
            "add",
            &format!("{net}/{p}"),
            "via",
            &peer.to_string(),
            "src",
            &client.to_string(),
        ])?;
    }
    t.ts_ns = Some(ns.clone());
    t.stations.insert(
        "tailscale".into(),
        Station {
            ns,
            segment: "tailscale".into(),
            addr: client,
        },
    );
    Ok(())
}

/// What a connect got.
#[derive(Clone, Debug, PartialEq)]
enum Actual {
    /// Open; the address the server saw.
    Open(String),
    Closed(String),
}

struct Outcome {
    cell: Cell,
    target: String,
    actual: Actual,
    mismatch: bool,
}

/// The address a row reaches `dest` at.
fn dest_addr(t: &Twin, row: &Station, dest: &str) -> Option<Ipv4Addr> {
    if dest == "router" {
        let key = if row.segment == "tailscale" {
            "tailscale"
        } else {
            row.segment.as_str()
        };
        return t.router_addr.get(key).copied();
    }
    t.stations.get(dest).map(|s| s.addr)
}

/// Tries every cell (and the upstream checks) and compares with intent.
type Extra = (String, String, String, Ipv4Addr, u16, Intent);

fn probe(t: &Twin, cells: &[Cell], extra: &[Extra]) -> Vec<Outcome> {
    // One prober per source namespace, all at once.
    let mut jobs: BTreeMap<String, Vec<(Cell, String)>> = BTreeMap::new();
    for c in cells.iter().filter(|c| c.proto == L4::Tcp) {
        let Some(row) = t.stations.get(&c.from) else {
            continue;
        };
        let Some(addr) = dest_addr(t, row, &c.to) else {
            continue;
        };
        for port in BTreeSet::from([c.ports.0, c.ports.1]) {
            jobs.entry(row.ns.clone())
                .or_default()
                .push((c.clone(), format!("{addr}:{port}")));
        }
    }
    for (from_ns, from, to, addr, port, intent) in extra {
        let cell = Cell {
            from: from.clone(),
            to: to.clone(),
            proto: L4::Tcp,
            ports: (*port, *port),
            path: Path::Router,
            intent: *intent,
            decided_by: "upstream check".into(),
            checked: true,
            note: None,
        };
        jobs.entry(from_ns.clone())
            .or_default()
            .push((cell, format!("{addr}:{port}")));
    }
    let running: Vec<(Vec<(Cell, String)>, Child)> = jobs
        .into_iter()
        .map(|(ns, list)| {
            let mut args = vec![
                "netns".to_string(),
                "exec".into(),
                ns,
                PROBE.into(),
                "connect".into(),
                TIMEOUT_MS.to_string(),
            ];
            args.extend(list.iter().map(|(_, target)| target.clone()));
            let child = Command::new("ip")
                .args(&args)
                .stdout(Stdio::piped())
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn the prober");
            (list, child)
        })
        .collect();
    let mut out = Vec::new();
    for (list, child) in running {
        let o = child.wait_with_output().expect("prober output");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        for (i, (cell, target)) in list.into_iter().enumerate() {
            let words: Vec<&str> = lines
                .get(i)
                .map_or(Vec::new(), |l| l.split_whitespace().collect());
            let actual = match words.as_slice() {
                [_, "open", peer] => Actual::Open((*peer).to_string()),
                [_, "closed", why] => Actual::Closed((*why).to_string()),
                _ => Actual::Closed(format!("no answer from the prober: {:?}", lines.get(i))),
            };
            let open = matches!(actual, Actual::Open(_));
            let mismatch = cell.checked
                && match cell.intent {
                    Intent::Allow => !open,
                    Intent::Deny => open,
                    Intent::None => false,
                };
            out.push(Outcome {
                cell,
                target,
                actual,
                mismatch,
            });
        }
    }
    out
}

fn table(outcomes: &[Outcome]) -> String {
    let mut s = format!(
        "{:<11} {:<15} {:<10} {:<19} {:<17} {:<6} {:<22} {:<5} {}\n",
        "from", "to", "port", "target", "path", "intent", "actual", "ok", "decided by"
    );
    for o in outcomes {
        let actual = match &o.actual {
            Actual::Open(peer) => format!("open (seen {peer})"),
            Actual::Closed(why) => format!("closed ({why})"),
        };
        let ok = if !o.cell.checked {
            "-"
        } else if o.mismatch {
            "FAIL"
        } else {
            "yes"
        };
        s.push_str(&format!(
            "{:<11} {:<15} {:<10} {:<19} {:<17} {:<6} {:<22} {:<5} {}\n",
            o.cell.from,
            o.cell.to,
            o.cell.ports_text(),
            o.target,
            o.cell.path.to_string(),
            format!("{:?}", o.cell.intent).to_lowercase(),
            actual,
            ok,
            o.cell.decided_by
        ));
        if let Some(n) = &o.cell.note {
            s.push_str(&format!("{:>12}note: {n}\n", ""));
        }
    }
    s
}

/// Runs the twin with `rs` and returns the outcomes, or `None` when skipped.
fn twin(label: &str, spec: &Spec, rs: &RuleSet) -> Vec<Outcome> {
    let started = Instant::now();
    let cells = cells(spec, PHASE).expect("the cells of the reference spec");
    let script = Nftables::default().render(rs);
    let t = build(spec, rs, &script, &cells).unwrap_or_else(|e| panic!("building the twin: {e}"));
    // Upstream checks: internal segments reach the internet, NATed to the router's
    // upstream address; nothing new comes in from the internet.
    let mut extra = Vec::new();
    if let Some(up) = &t.upstream {
        for i in rs.interfaces.iter().filter(|i| i.role == Role::Internal) {
            if let Some(s) = i.segment.as_ref().and_then(|seg| t.stations.get(seg)) {
                extra.push((
                    s.ns.clone(),
                    i.name.clone(),
                    "internet".into(),
                    INTERNET,
                    INTERNET_PORT,
                    Intent::Allow,
                ));
            }
        }
        for h in rs
            .hosts
            .iter()
            .filter(|h| Some(h.segment.as_str()) != Some(up.segment.as_str()))
        {
            if let Some(s) = t.stations.get(&h.name) {
                let port = cells
                    .iter()
                    .find(|c| c.to == h.name)
                    .map_or(22, |c| c.ports.0);
                extra.push((
                    up.ns.clone(),
                    "internet".into(),
                    h.name.clone(),
                    s.addr,
                    port,
                    Intent::Deny,
                ));
            }
        }
    }
    let outcomes = probe(&t, &cells, &extra);
    let wan_addr = t
        .upstream
        .as_ref()
        .and_then(|u| t.router_addr.get(&u.segment).copied());
    let prefix = t.ns_prefix.clone();
    drop(t);
    println!("== twin: {label} ==\n{}", table(&outcomes));
    // Outbound NAT: the internet sees the router's upstream address.
    for o in outcomes.iter().filter(|o| o.cell.to == "internet") {
        if let (Actual::Open(peer), Some(w)) = (&o.actual, wan_addr) {
            assert_eq!(
                peer,
                &w.to_string(),
                "{} is not NATed to the router's upstream address",
                o.cell.from
            );
        }
    }
    let prefix_left: Vec<String> = run(&["ip", "netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect();
    println!(
        "== twin: {label}: {} cells probed in {:?} ==",
        outcomes.len(),
        started.elapsed()
    );
    assert_eq!(prefix_left, Vec::<String>::new(), "namespaces left behind");
    outcomes
}

fn reference_phase2() -> Spec {
    common::reference()
}

fn mismatches(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter(|o| o.mismatch)
        .map(|o| format!("{} → {} {}", o.cell.from, o.cell.to, o.cell.ports_text()))
        .collect()
}

#[test]
fn every_matrix_cell_matches_intent_with_real_packets() {
    if !twin_or_skip() {
        return;
    }
    let spec = reference_phase2();
    let rs = compile(&spec, PHASE).expect("the reference spec compiles");
    let outcomes = twin("the reference rule set", &spec, &rs);
    let checked = outcomes.iter().filter(|o| o.cell.checked).count();
    assert!(checked >= 30, "only {checked} cells were checked");
    // Both verdicts are exercised: a twin that blocks (or passes) everything fails.
    let open = outcomes
        .iter()
        .filter(|o| o.cell.checked && matches!(o.actual, Actual::Open(_)))
        .count();
    assert!(
        open >= 10 && open < checked,
        "{open} of {checked} checked cells open"
    );
    assert_eq!(
        mismatches(&outcomes),
        Vec::<String>::new(),
        "cells disagree with intent"
    );
    // The declared flows keep their source address (no NAT between segments).
    let lan_app = outcomes
        .iter()
        .find(|o| o.cell.from == "management" && o.cell.to == "app-host")
        .expect("management → app-host cell");
    assert_eq!(lan_app.actual, Actual::Open("192.168.1.50".into()));
}

#[test]
fn a_wrong_rule_set_is_caught() {
    if !twin_or_skip() {
        return;
    }
    let spec = reference_phase2();
    let good = compile(&spec, PHASE).expect("the reference spec compiles");

    // 1. `iot → node 22/8006` flipped from deny to allow.
    let mut flipped = good.clone();
    let rule = flipped
        .forward
        .rules
        .iter_mut()
        .find(|r| r.from == "iot" && r.to == "node")
        .expect("the iot → node deny");
    rule.action = labwright_router::Action::Accept;
    let got = mismatches(&twin(
        "WRONG: iot → node flipped to accept",
        &spec,
        &flipped,
    ));
    assert_eq!(got, vec!["iot → node tcp/22", "iot → node tcp/8006"]);

    // 2. No default drop between segments (and no upstream drop).
    let mut open = good;
    open.forward.policy = labwright_router::Action::Accept;
    open.forward.rules.retain(|r| r.from != "upstream");
    let got = mismatches(&twin("WRONG: no default drop", &spec, &open));
    for want in [
        "services → edge-gateway tcp/22",
        "iot → edge-gateway tcp/22",
        "lan → home-assistant tcp/1883",
        "services → home-assistant tcp/8123",
        "internet → app-host tcp/22",
    ] {
        assert!(
            got.iter().any(|g| g == want),
            "{want} not caught; caught: {got:?}"
        );
    }
}
