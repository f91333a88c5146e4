//! The guests' LAN: addresses (a static `ipconfigN`, a DHCP lease from the router VM
//! serving the bridge (crate::router), or one from the LAN's own router), what each
//! running guest listens on, and the simulated `curl`. Whether a connection gets
//! through (bridges, the router's rules, PVE firewalls) is crate::segments; names are
//! not resolved (only IP literals).

use std::net::Ipv4Addr;

use crate::state::{State, Vm};
use crate::util::now_f;

/// One address of a guest NIC.
#[derive(Debug, Clone)]
pub struct GuestAddr {
    pub ifname: String,
    /// The NIC's config key (`net0`).
    pub slot: String,
    pub mac: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// The bridge the NIC is plugged into now.
    pub bridge: String,
    /// The default gateway the guest got with the address.
    pub gateway: Option<Ipv4Addr>,
}

/// A running guest as the LAN sees it.
#[derive(Debug, Clone)]
pub struct LanHost {
    pub ip: Ipv4Addr,
    /// TCP ports that accept connections now, with what answers an HTTP request.
    pub open: Vec<(u16, Service)>,
}

/// What answers on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// OpenSSH: accepts a connection, does not speak HTTP.
    Ssh,
    /// Home Assistant's frontend (or the supervisor's landing page while it starts).
    HomeAssistant,
    /// An HTTPS web interface (PVE's 8006, OPNsense's GUI).
    Web,
}

/// The LAN as seen from inside one guest at one moment.
#[derive(Debug, Clone, Default)]
pub struct Lan {
    pub hosts: Vec<LanHost>,
    /// Outcomes of TCP connects from this guest, worked out beforehand for the
    /// addresses its command names (crate::segments); others fall back to `hosts`.
    pub reach: std::collections::BTreeMap<(Ipv4Addr, u16), crate::segments::Reach>,
}

/// What a guest boots: known from the image its boot disk was imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestOs {
    Debian,
    HomeAssistantOs,
    /// OPNsense (the router): FreeBSD, no guest agent; see crate::router.
    OpnSense,
    /// A blank disk or an unknown image: nothing listens.
    Unknown,
}

/// The OS of `vm`: the first non-CD-ROM drive's volume remembers its source image.
pub fn guest_os(st: &State, vm: &Vm) -> GuestOs {
    for (k, v) in &vm.conf {
        if !crate::api::qemu::is_drive(k) || v.contains("media=cdrom") || k.starts_with("efidisk") {
            continue;
        }
        let volid = v.split(',').next().unwrap_or_default();
        let Some(src) = st
            .volumes
            .iter()
            .find(|x| x.volid == volid)
            .and_then(|x| x.imported_from.as_deref())
        else {
            continue;
        };
        let s = src.to_ascii_lowercase();
        if s.contains("opnsense") {
            return GuestOs::OpnSense;
        }
        if s.contains("haos") {
            return GuestOs::HomeAssistantOs;
        }
        if s.contains("debian") || s.contains("genericcloud") || s.contains("ubuntu") {
            return GuestOs::Debian;
        }
    }
    GuestOs::Unknown
}

/// Seconds after the agent answers until Home Assistant's port 8123 accepts (its
/// supervisor starts the landing page once the OS is up); scaled by `time_scale`.
const HA_START_DELAY: f64 = 4.0;

/// The IPv4 addresses of `vmid`'s NICs: `ipconfigN: ip=…` when set, otherwise a DHCP
/// lease kept in the state per MAC, so an address never changes between calls.
pub fn guest_addrs(st: &mut State, vmid: u32) -> Vec<GuestAddr> {
    let Some(vm) = st.vms.get(&vmid) else {
        return Vec::new();
    };
    if guest_os(st, vm) == GuestOs::OpnSense {
        return router_addrs(st, vmid);
    }
    let node = vm.node.clone();
    let mut nets: Vec<(String, String)> = vm
        .conf
        .iter()
        .filter(|(k, _)| k.starts_with("net") && k[3..].parse::<u32>().is_ok())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    nets.sort_by_key(|(k, _)| k[3..].parse::<u32>().unwrap_or(0));
    let ipconfs: Vec<Option<String>> = nets
        .iter()
        .map(|(k, _)| vm.conf.get(&format!("ipconfig{}", &k[3..])).cloned())
        .collect();
    let bound = vm.guest.nic_bound.clone();
    let mut out = Vec::new();
    for (i, ((k, v), ipconf)) in nets.iter().zip(ipconfs).enumerate() {
        let mac = v
            .split(',')
            .next()
            .and_then(|p| p.split_once('='))
            .map(|x| x.1.to_ascii_lowercase())
            .unwrap_or_default();
        let bridge = v
            .split(',')
            .find_map(|p| p.strip_prefix("bridge="))
            .unwrap_or_default()
            .to_string();
        let fixed = ipconf.as_deref().and_then(|c| {
            let cidr = c.split(',').find_map(|p| p.strip_prefix("ip="))?;
            let net: ipnet::Ipv4Net = cidr.parse().ok()?;
            let gw = c
                .split(',')
                .find_map(|p| p.strip_prefix("gw="))
                .and_then(|g| g.parse().ok());
            Some((net.addr(), net.prefix_len(), gw))
        });
        // A NIC moved while the guest runs keeps the address of the bridge it leased on.
        let leased_on = bound.get(k).cloned().unwrap_or_else(|| bridge.clone());
        let (ip, prefix, gateway) = match fixed {
            Some(x) => x,
            None => match crate::router::dhcp_lease(st, &leased_on, &mac) {
                Some(l) => (
                    l.ip.parse().unwrap_or(Ipv4Addr::new(169, 254, 0, 1)),
                    l.prefix,
                    l.gateway.parse().ok(),
                ),
                None => lease(st, &node, &leased_on, &mac, vmid),
            },
        };
        out.push(GuestAddr {
            ifname: format!("eth{i}"),
            slot: k.clone(),
            mac,
            ip,
            prefix,
            bridge,
            gateway,
        });
    }
    out
}

/// The router's interface addresses (`vtnetN` on `netN`) while it is up; nothing
/// while it boots.
fn router_addrs(st: &mut State, vmid: u32) -> Vec<GuestAddr> {
    let Some(r) = crate::router::routers(st)
        .into_iter()
        .find(|r| r.vmid == vmid)
    else {
        return Vec::new();
    };
    let gw = r.ifaces.iter().find(|i| i.key == "wan").and_then(|w| {
        let (a, n) = w.addr?;
        let node = st.vms.get(&vmid)?.node.clone();
        let (_, _, gw) = lease(st, &node, &w.bridge, &w.mac, vmid);
        gw.filter(|g| n.contains(g) && *g != a)
    });
    r.ifaces
        .iter()
        .filter_map(|i| {
            let (ip, net) = i.addr?;
            Some(GuestAddr {
                ifname: format!("vtnet{}", i.slot),
                slot: format!("net{}", i.slot),
                mac: i.mac.clone(),
                ip,
                prefix: net.prefix_len(),
                bridge: i.bridge.clone(),
                gateway: (i.key == "wan").then_some(gw).flatten(),
            })
        })
        .collect()
}

/// The DHCP lease of `mac` on `bridge`: the bridge's subnet (from the node's network
/// configuration), hosts .100 upward, skipping the node, its gateway and other leases.
/// A bridge without an address has no DHCP server: the guest gets a link-local address.
pub(crate) fn lease(
    st: &mut State,
    node: &str,
    bridge: &str,
    mac: &str,
    vmid: u32,
) -> (Ipv4Addr, u8, Option<Ipv4Addr>) {
    let subnet = st.nodes.get(node).and_then(|n| {
        let iface = n.network.get(bridge)?;
        let cidr = iface.get("cidr").and_then(serde_json::Value::as_str)?;
        let net: ipnet::Ipv4Net = cidr.parse().ok()?;
        let gw = iface
            .get("gateway")
            .and_then(serde_json::Value::as_str)
            .and_then(|g| g.parse::<Ipv4Addr>().ok());
        Some((net, gw))
    });
    let Some((net, gw)) = subnet else {
        let [a, b] = u16::try_from(vmid % 65_000).unwrap_or(0).to_be_bytes();
        return (Ipv4Addr::new(169, 254, a.max(1), b.max(1)), 16, None);
    };
    let key = format!("{bridge}/{mac}");
    if let Some(ip) = st.leases.get(&key).and_then(|s| s.parse().ok()) {
        return (ip, net.prefix_len(), gw);
    }
    let node_ip = st
        .nodes
        .get(node)
        .and_then(|n| n.ip.parse::<Ipv4Addr>().ok());
    let base = u32::from(net.network());
    let last = u32::from(net.broadcast()).saturating_sub(1);
    let taken: std::collections::BTreeSet<String> = st.leases.values().cloned().collect();
    let mut pick = None;
    for h in (base.saturating_add(100)..=last)
        .chain(base.saturating_add(2)..base.saturating_add(100).min(last.saturating_add(1)))
    {
        let ip = Ipv4Addr::from(h);
        if Some(ip) == node_ip || Some(ip) == gw || taken.contains(&ip.to_string()) {
            continue;
        }
        pick = Some(ip);
        break;
    }
    // A full pool: the guest gets no lease, as a real DHCP server would leave it.
    let ip = pick.unwrap_or(Ipv4Addr::new(169, 254, 0, 1));
    if pick.is_some() {
        st.leases.insert(key, ip.to_string());
    }
    (ip, net.prefix_len(), pick.and(gw))
}

/// The LAN as it is now: every running guest's addresses and open ports.
pub fn lan_view(st: &mut State, time_scale: f64) -> Lan {
    let ids: Vec<u32> = st
        .vms
        .iter()
        .filter(|(_, v)| v.running)
        .map(|(k, _)| *k)
        .collect();
    let mut hosts = Vec::new();
    for vmid in ids {
        let addrs = guest_addrs(st, vmid);
        let Some(vm) = st.vms.get(&vmid) else {
            continue;
        };
        let open = open_ports(st, vm, time_scale);
        for a in addrs {
            hosts.push(LanHost {
                ip: a.ip,
                open: open.clone(),
            });
        }
    }
    Lan {
        hosts,
        reach: Default::default(),
    }
}

/// What a running guest listens on now (Debian: SSH once booted; Home Assistant OS:
/// its SSH add-on port and the frontend a little later). The router is elsewhere
/// (crate::segments).
pub fn open_ports(st: &State, vm: &Vm, time_scale: f64) -> Vec<(u16, Service)> {
    let booted = now_f() >= vm.agent_ready_at;
    match guest_os(st, vm) {
        GuestOs::Debian if booted => vec![(22, Service::Ssh)],
        GuestOs::HomeAssistantOs if now_f() >= vm.agent_ready_at + HA_START_DELAY * time_scale => {
            vec![(22222, Service::Ssh), (8123, Service::HomeAssistant)]
        }
        _ => Vec::new(),
    }
}

/// The `(address, port)` pairs a command line names: URLs (`http://A:P/`, default
/// ports 80 and 443) and `/dev/tcp/A/P`, so their outcomes can be worked out before
/// the guest runs it.
pub fn targets(argv: &[String]) -> Vec<(Ipv4Addr, u16)> {
    let mut out = Vec::new();
    for a in argv {
        for part in a.split(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            if let Some(rest) = part.split("/dev/tcp/").nth(1)
                && let Some((h, p)) = rest.split_once('/')
                && let (Ok(h), Ok(p)) = (h.parse(), p.parse())
            {
                out.push((h, p));
            }
            for (scheme, port) in [("http://", 80u16), ("https://", 443)] {
                if let Some(rest) = part.split(scheme).nth(1) {
                    let hp = rest.split(['/', '?']).next().unwrap_or_default();
                    let (h, p) = match hp.rsplit_once(':') {
                        Some((h, p)) => (h, p.parse().unwrap_or(port)),
                        None => (hp, port),
                    };
                    if let Ok(h) = h.parse() {
                        out.push((h, p));
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The simulated `curl` (HTTP only): `-s -S -f -k -L -I -o FILE -m/--max-time N
/// -w FMT URL`; `%{http_code}` in `-w` is replaced. Exit codes as curl's: 3 bad URL,
/// 6 a host name (no resolver here), 7 refused, 22 `-f` and a status ≥ 400, 28 no
/// answer (no host with that address on the LAN).
pub fn curl(lan: &Lan, args: &[String]) -> (i64, String, String) {
    let mut silent = false;
    let mut show_err = false;
    let mut fail = false;
    let mut to_null = false;
    let mut write_out = None;
    let mut max_time = 300.0_f64;
    let mut url = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" | "--output" => to_null = it.next().is_some_and(|f| f == "/dev/null"),
            "-w" | "--write-out" => write_out = it.next().cloned(),
            "-m" | "--max-time" | "--connect-timeout" => {
                max_time = it.next().and_then(|v| v.parse().ok()).unwrap_or(max_time);
            }
            "-H" | "--header" | "-X" | "--request" | "-u" | "--user" | "-d" | "--data" => {
                it.next();
            }
            f if f.starts_with("--") => match f {
                "--silent" => silent = true,
                "--show-error" => show_err = true,
                "--fail" => fail = true,
                _ => {}
            },
            f if f.starts_with('-') && f.len() > 1 => {
                for c in f[1..].chars() {
                    match c {
                        's' => silent = true,
                        'S' => show_err = true,
                        'f' => fail = true,
                        _ => {}
                    }
                }
            }
            u => url = Some(u.to_string()),
        }
    }
    let err = |code: i64, msg: String| {
        let out = write_out
            .as_deref()
            .map(|w| w.replace("%{http_code}", "000"))
            .unwrap_or_default();
        let e = if !silent || show_err {
            format!("curl: ({code}) {msg}\n")
        } else {
            String::new()
        };
        (code, out, e)
    };
    let Some(url) = url else {
        return err(2, "no URL specified".into());
    };
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return err(
            1,
            format!("Protocol not supported or disabled in libcurl: {url}"),
        );
    };
    let https = url.starts_with("https://");
    let hostport = rest.split(['/', '?']).next().unwrap_or_default();
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) => (h, p),
            Err(_) => {
                return err(
                    3,
                    "URL rejected: Port number was not a decimal number between 0 and 65535"
                        .to_string(),
                );
            }
        },
        None => (hostport, if https { 443 } else { 80 }),
    };
    let Ok(ip) = host.parse::<Ipv4Addr>() else {
        return err(6, format!("Could not resolve host: {host}"));
    };
    let timeout_msg = || {
        format!(
            "Failed to connect to {ip} port {port} after {} ms: Timeout was reached",
            (max_time * 1000.0) as u64
        )
    };
    let refused_msg =
        || format!("Failed to connect to {ip} port {port} after 0 ms: Couldn't connect to server");
    let svc = match lan.reach.get(&(ip, port)) {
        Some(crate::segments::Reach::Timeout) => return err(28, timeout_msg()),
        Some(crate::segments::Reach::Refused) => return err(7, refused_msg()),
        Some(crate::segments::Reach::NoRoute) => {
            return err(
                7,
                format!("Failed to connect to {ip} port {port} after 0 ms: No route to host"),
            );
        }
        Some(crate::segments::Reach::Open(s)) => Some(s.unwrap_or(Service::Web)),
        None => None,
    };
    let svc = match svc {
        Some(s) => s,
        None => match lan_service(lan, ip, port) {
            Ok(s) => s,
            Err(true) => return err(28, timeout_msg()),
            Err(false) => return err(7, refused_msg()),
        },
    };
    let (status, body) = match (svc, https) {
        (Service::Ssh, _) => return err(1, "Received HTTP/0.9 when not allowed".into()),
        (Service::Web, false) => return err(52, "Empty reply from server".into()),
        (Service::Web, true) => (200u16, "<!DOCTYPE html><html></html>\n"),
        (Service::HomeAssistant, true) => {
            return err(
                35,
                "TLS connect error: error:0A00010B:SSL routines::wrong version number".into(),
            );
        }
        (Service::HomeAssistant, false) => (
            200u16,
            "<!DOCTYPE html><html><head><title>Home Assistant</title></head><body></body></html>\n",
        ),
    };
    if fail && status >= 400 {
        return err(22, format!("The requested URL returned error: {status}"));
    }
    let mut out = String::new();
    if !to_null {
        out.push_str(body);
    }
    if let Some(w) = &write_out {
        out.push_str(&w.replace("%{http_code}", &status.to_string()));
    }
    (0, out, String::new())
}

/// The service on `ip:port` by the plain host list: `Err(true)` no such host (a
/// timeout), `Err(false)` nothing listens (refused).
fn lan_service(lan: &Lan, ip: Ipv4Addr, port: u16) -> Result<Service, bool> {
    let h = lan.hosts.iter().find(|h| h.ip == ip).ok_or(true)?;
    h.open
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, s)| *s)
        .ok_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lan() -> Lan {
        Lan {
            hosts: vec![LanHost {
                ip: Ipv4Addr::new(192, 168, 1, 101),
                open: vec![(8123, Service::HomeAssistant)],
            }],
            reach: Default::default(),
        }
    }

    fn run(args: &[&str]) -> (i64, String, String) {
        let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        curl(&lan(), &a)
    }

    #[test]
    fn targets_are_found_in_urls_and_dev_tcp() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap_or(Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            targets(&a(&[
                "timeout",
                "3",
                "bash",
                "-c",
                "exec 3<>/dev/tcp/10.10.20.101/8123"
            ])),
            vec![(ip("10.10.20.101"), 8123)]
        );
        assert_eq!(
            targets(&a(&[
                "sh",
                "-c",
                "curl -s http://10.0.0.5/ && curl https://10.0.0.6:8443/x"
            ])),
            vec![(ip("10.0.0.5"), 80), (ip("10.0.0.6"), 8443)]
        );
        assert!(targets(&a(&["curl", "http://homeassistant.local:8123/"])).is_empty());
    }

    #[test]
    fn curl_reports_the_status_of_a_listening_port() {
        let (code, out, _) = run(&[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://192.168.1.101:8123/",
        ]);
        assert_eq!((code, out.as_str()), (0, "200"));
    }

    #[test]
    fn curl_refused_and_unreachable_differ() {
        let (code, out, e) = run(&[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://192.168.1.101:80/",
        ]);
        assert_eq!((code, out.as_str()), (7, "000"));
        assert!(e.contains("Couldn't connect"), "{e}");
        let (code, _, e) = run(&["-sS", "--max-time", "5", "http://192.168.1.9:8123/"]);
        assert_eq!(code, 28);
        assert!(e.contains("after 5000 ms"), "{e}");
        let (code, _, e) = run(&["-s", "http://192.168.1.9:8123/"]);
        assert_eq!(code, 28);
        assert!(e.is_empty(), "-s without -S prints no error: {e}");
        let (code, _, _) = run(&["-sS", "http://homeassistant.local:8123/"]);
        assert_eq!(code, 6);
    }

    fn vm_on(st: &mut State, vmid: u32, net0: &str) {
        let mut vm = Vm {
            vmid,
            node: "proxmox".into(),
            ..Default::default()
        };
        vm.conf.insert("net0".into(), net0.into());
        st.vms.insert(vmid, vm);
    }

    #[test]
    fn leases_are_distinct_stable_and_skip_the_node_and_gateway() {
        let mut st = State::scenario(crate::state::Scenario::Fresh, 0);
        for (vmid, mac) in [
            (100, "BC:24:11:00:00:01"),
            (300, "BC:24:11:00:00:02"),
            (400, "BC:24:11:00:00:03"),
        ] {
            vm_on(&mut st, vmid, &format!("virtio={mac},bridge=vmbr0"));
        }
        let ips: Vec<Ipv4Addr> = [100, 300, 400]
            .iter()
            .map(|v| guest_addrs(&mut st, *v)[0].ip)
            .collect();
        let unique: std::collections::BTreeSet<_> = ips.iter().collect();
        assert_eq!(unique.len(), 3, "{ips:?}");
        for ip in &ips {
            assert!(ip.to_string().starts_with("192.168.1."), "{ip}");
            assert_ne!(ip.to_string(), "192.168.1.10");
            assert_ne!(ip.to_string(), "192.168.1.1");
        }
        // Asked again (in any order), each guest keeps its address.
        assert_eq!(guest_addrs(&mut st, 400)[0].ip, ips[2]);
        assert_eq!(guest_addrs(&mut st, 100)[0].ip, ips[0]);
        // A static ipconfig wins over DHCP; a bridge without an address has no DHCP.
        st.vms.get_mut(&300).map(|v| {
            v.conf
                .insert("ipconfig0".into(), "ip=10.0.0.5/24,gw=10.0.0.1".into())
        });
        assert_eq!(guest_addrs(&mut st, 300)[0].ip, Ipv4Addr::new(10, 0, 0, 5));
        vm_on(&mut st, 500, "virtio=BC:24:11:00:00:05,bridge=vmbr9");
        assert!(guest_addrs(&mut st, 500)[0].ip.is_link_local());
        // A small subnet never hands out an address past its last host.
        let mut small = crate::state::Obj::new();
        small.insert("cidr".into(), serde_json::json!("10.9.9.1/30"));
        if let Some(n) = st.nodes.get_mut("proxmox") {
            n.network.insert("vmbr5".into(), small);
        }
        vm_on(&mut st, 600, "virtio=BC:24:11:00:00:06,bridge=vmbr5");
        vm_on(&mut st, 601, "virtio=BC:24:11:00:00:07,bridge=vmbr5");
        assert_eq!(guest_addrs(&mut st, 600)[0].ip, Ipv4Addr::new(10, 9, 9, 2));
        assert!(guest_addrs(&mut st, 601)[0].ip.is_link_local(), "pool full");
    }
}
