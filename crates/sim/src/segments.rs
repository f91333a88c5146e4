//! Reachability between the lab's endpoints across its bridges (issue 13): guests,
//! the node, the router's interfaces, probe namespaces on the node and the home
//! router upstream. A TCP connect is followed hop by hop: the source's route (same
//! subnet: direct, otherwise its gateway), ARP on the bridge, the router's filter on
//! the ingress interface (pf semantics, [`crate::opnsense`]), its outbound NAT, the
//! destination NIC's PVE firewall, and whether anything listens.
//!
//! The home router (the LAN bridge's `gateway`) is modelled only as far as the lab
//! needs it: it answers ARP and routes the router's internal segments to the router's
//! WAN address (the static route the twin and the runbooks assume); other
//! destinations (the internet) are not simulated and time out.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use crate::guestnet::{Service, guest_addrs, open_ports};
use crate::opnsense::{Action, Addrs, Packet};
use crate::router::{RouterRt, routers};
use crate::state::State;

/// The outcome of one TCP connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Connected; what answers, when the simulator knows it.
    Open(Option<Service>),
    /// Reached, but nothing listens there or a rule rejected it (RST).
    Refused,
    /// Dropped on the way, or nobody answered ARP.
    Timeout,
    /// The source has no route to the address.
    NoRoute,
}

#[derive(Debug, Clone, PartialEq)]
enum Owner {
    Vm(u32),
    /// Index into [`Net::routers`], interface key.
    Router(usize, String),
    Node,
    Netns,
    Upstream,
}

#[derive(Debug, Clone)]
struct Nic {
    owner: Owner,
    bridge: String,
    mac: String,
    ip: Ipv4Addr,
    /// `firewall=1` on the VM's NIC.
    fw: bool,
}

/// The network at one moment.
pub struct Net {
    nics: Vec<Nic>,
    routers: Vec<RouterRt>,
    open: std::collections::BTreeMap<u32, Vec<(u16, Service)>>,
}

/// Where a connection starts: the source's addresses and its default gateway.
#[derive(Debug, Clone, Default)]
pub struct Src {
    /// Address, network, bridge.
    pub addrs: Vec<(Ipv4Addr, Ipv4Net, String)>,
    pub gateway: Option<Ipv4Addr>,
    /// Ports open on the source itself (a connect to its own address).
    pub local_open: Vec<u16>,
}

/// A stable made-up MAC for things that have none in the config (the node, veths).
pub fn made_up_mac(what: &str) -> String {
    let d = Sha256::digest(what.as_bytes());
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        (d[0] | 0x02) & 0xfe,
        d[1],
        d[2],
        d[3],
        d[4],
        d[5]
    )
}

fn net_of(ip: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
    Ipv4Net::new(ip, prefix).ok().map(|n| n.trunc())
}

/// The node's addresses: (interface, address, network, gateway).
fn node_ifaces(st: &State, node: &str) -> Vec<(String, Ipv4Addr, Ipv4Net, Option<Ipv4Addr>)> {
    let Some(n) = st.nodes.get(node) else {
        return Vec::new();
    };
    n.network
        .iter()
        .filter(|(k, _)| !n.network_down.contains(*k))
        .filter_map(|(k, o)| {
            let cidr: Ipv4Net = o.get("cidr")?.as_str()?.parse().ok()?;
            let gw = o
                .get("gateway")
                .and_then(serde_json::Value::as_str)
                .and_then(|g| g.parse().ok());
            Some((k.clone(), cidr.addr(), cidr.trunc(), gw))
        })
        .collect()
}

/// A bridge the node has and that is up.
pub fn bridge_up(st: &State, node: &str, bridge: &str) -> bool {
    st.nodes
        .get(node)
        .is_some_and(|n| n.network.contains_key(bridge) && !n.network_down.contains(bridge))
}

/// The namespace `ns`'s addresses that are on a bridge: its link is up, its peer on
/// the node is up and enslaved to a bridge that is up. (address, network, bridge, MAC)
pub fn netns_addrs(st: &State, node: &str, ns: &str) -> Vec<(Ipv4Addr, Ipv4Net, String, String)> {
    let Some(n) = st.nodes.get(node) else {
        return Vec::new();
    };
    let Some(space) = n.netns.get(ns) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (a, p, dev) in &space.addrs {
        let Some(link) = n.links.get(dev) else {
            continue;
        };
        let Some(peer) = n.links.get(&link.peer) else {
            continue;
        };
        if link.netns.as_deref() != Some(ns) || !link.up || !peer.up || peer.netns.is_some() {
            continue;
        }
        let Some(bridge) = peer.master.clone() else {
            continue;
        };
        if !bridge_up(st, node, &bridge) {
            continue;
        }
        if let (Ok(ip), Some(net)) = (
            a.parse::<Ipv4Addr>(),
            a.parse().ok().and_then(|x| net_of(x, *p)),
        ) {
            out.push((ip, net, bridge, link.mac.clone()));
        }
    }
    out
}

impl Net {
    /// Everything that answers on the bridges now.
    pub fn build(st: &mut State, time_scale: f64) -> Net {
        let routers = routers(st);
        let mut nics = Vec::new();
        let mut open = std::collections::BTreeMap::new();
        let node = st.nodes.keys().next().cloned().unwrap_or_default();
        for (i, r) in routers.iter().enumerate() {
            for f in &r.ifaces {
                if let Some((ip, _)) = f.addr {
                    nics.push(Nic {
                        owner: Owner::Router(i, f.key.clone()),
                        bridge: f.bridge.clone(),
                        mac: f.mac.clone(),
                        ip,
                        fw: false,
                    });
                }
            }
        }
        let router_ids: Vec<u32> = routers.iter().map(|r| r.vmid).collect();
        let ids: Vec<u32> = st
            .vms
            .iter()
            .filter(|(k, v)| v.running && v.node == node && !router_ids.contains(k))
            .map(|(k, _)| *k)
            .collect();
        for vmid in ids {
            let addrs = guest_addrs(st, vmid);
            let Some(vm) = st.vms.get(&vmid) else {
                continue;
            };
            if vm.guest.router.is_some() {
                // An OPNsense guest still booting: nothing answers yet.
                continue;
            }
            open.insert(vmid, open_ports(st, vm, time_scale));
            for a in addrs {
                let conf = vm.conf.get(&a.slot).cloned().unwrap_or_default();
                if conf.split(',').any(|p| p == "link_down=1") || a.ip.is_link_local() {
                    continue;
                }
                nics.push(Nic {
                    owner: Owner::Vm(vmid),
                    bridge: a.bridge.clone(),
                    mac: a.mac.clone(),
                    ip: a.ip,
                    fw: conf.split(',').any(|p| p == "firewall=1"),
                });
            }
        }
        for (iface, ip, _, gw) in node_ifaces(st, &node) {
            nics.push(Nic {
                owner: Owner::Node,
                bridge: iface.clone(),
                mac: made_up_mac(&format!("node/{node}/{iface}")),
                ip,
                fw: false,
            });
            if let Some(g) = gw {
                nics.push(Nic {
                    owner: Owner::Upstream,
                    bridge: iface.clone(),
                    mac: made_up_mac(&format!("upstream/{iface}/{g}")),
                    ip: g,
                    fw: false,
                });
            }
        }
        let spaces: Vec<String> = st
            .nodes
            .get(&node)
            .map(|n| n.netns.keys().cloned().collect())
            .unwrap_or_default();
        for ns in spaces {
            for (ip, _, bridge, mac) in netns_addrs(st, &node, &ns) {
                nics.push(Nic {
                    owner: Owner::Netns,
                    bridge,
                    mac,
                    ip,
                    fw: false,
                });
            }
        }
        Net {
            nics,
            routers,
            open,
        }
    }

    /// Who answers ARP for `ip` on `bridge` (the first to answer wins).
    fn arp(&self, bridge: &str, ip: Ipv4Addr) -> Option<&Nic> {
        self.nics.iter().find(|n| n.bridge == bridge && n.ip == ip)
    }
}

/// A running guest as a source.
pub fn src_vm(st: &mut State, vmid: u32, time_scale: f64) -> Src {
    let addrs = guest_addrs(st, vmid);
    let mut src = Src::default();
    let Some(vm) = st.vms.get(&vmid) else {
        return src;
    };
    for a in addrs {
        let conf = vm.conf.get(&a.slot).cloned().unwrap_or_default();
        if conf.split(',').any(|p| p == "link_down=1") || a.ip.is_link_local() {
            continue;
        }
        if let Some(net) = net_of(a.ip, a.prefix) {
            src.addrs.push((a.ip, net, a.bridge.clone()));
        }
        if src.gateway.is_none() {
            src.gateway = a.gateway;
        }
    }
    src.local_open = open_ports(st, vm, time_scale)
        .iter()
        .map(|(p, _)| *p)
        .collect();
    src
}

/// The node itself as a source.
pub fn src_node(st: &State, node: &str) -> Src {
    let mut src = Src {
        local_open: vec![22, 8006],
        ..Default::default()
    };
    for (iface, ip, net, gw) in node_ifaces(st, node) {
        src.addrs.push((ip, net, iface));
        if src.gateway.is_none() {
            src.gateway = gw;
        }
    }
    src
}

/// The device of namespace `space` on whose network `ip` lies (its first one if none).
pub fn netns_addrs_dev(space: &crate::state::Netns, ip: Ipv4Addr) -> String {
    space
        .addrs
        .iter()
        .find(|(a, p, _)| {
            a.parse()
                .ok()
                .and_then(|a| net_of(a, *p))
                .is_some_and(|n| n.contains(&ip))
        })
        .or(space.addrs.first())
        .map(|(_, _, d)| d.clone())
        .unwrap_or_default()
}

/// A probe namespace as a source.
pub fn src_netns(st: &State, node: &str, ns: &str) -> Src {
    let gateway = st
        .nodes
        .get(node)
        .and_then(|n| n.netns.get(ns))
        .and_then(|s| s.gateway.as_deref())
        .and_then(|g| g.parse().ok());
    Src {
        addrs: netns_addrs(st, node, ns)
            .into_iter()
            .map(|(ip, net, bridge, _)| (ip, net, bridge))
            .collect(),
        gateway,
        local_open: Vec::new(),
    }
}

/// The first hop's neighbour that answered ARP: (address, MAC).
pub type Neigh = Option<(Ipv4Addr, String)>;

/// A TCP connect from `src` to `dst:port`.
pub fn connect(st: &State, net: &Net, src: &Src, dst: Ipv4Addr, port: u16) -> (Reach, Neigh) {
    if dst.is_loopback() || src.addrs.iter().any(|(a, _, _)| *a == dst) {
        let r = if src.local_open.contains(&port) {
            Reach::Open(None)
        } else {
            Reach::Refused
        };
        return (r, None);
    }
    let (ip, bridge, hop) =
        if let Some((a, _, b)) = src.addrs.iter().find(|(_, n, _)| n.contains(&dst)) {
            (*a, b.clone(), dst)
        } else if let Some(gw) = src.gateway
            && let Some((a, _, b)) = src.addrs.iter().find(|(_, n, _)| n.contains(&gw))
        {
            (*a, b.clone(), gw)
        } else {
            return (Reach::NoRoute, None);
        };
    // Nobody answers ARP: the kernel retries for ~3 s, longer than the probe waits.
    let Some(first) = net.arp(&bridge, hop) else {
        return (Reach::Timeout, None);
    };
    let neigh = Some((hop, first.mac.clone()));
    let p = Packet {
        src: ip,
        dst,
        dport: port,
    };
    let r = if hop == dst {
        deliver(st, net, first, p)
    } else {
        match &first.owner {
            Owner::Router(i, key) => forward(st, net, *i, key, p),
            Owner::Upstream => {
                // The home router's static route: the router's internal segments via
                // its WAN address on this bridge.
                let via = net.routers.iter().enumerate().find_map(|(i, r)| {
                    let wan = r.iface_on(&bridge)?;
                    let inner = r.iface_for(dst)?;
                    (r.routing && inner.key != wan.key && wan.addr.is_some())
                        .then(|| (i, wan.key.clone()))
                });
                match via {
                    Some((i, key)) => forward(st, net, i, &key, p),
                    None => Reach::Timeout,
                }
            }
            _ => Reach::Timeout,
        }
    };
    (r, neigh)
}

fn action_reach(a: Action) -> Option<Reach> {
    match a {
        Action::Pass => None,
        Action::Block => Some(Reach::Timeout),
        Action::Reject => Some(Reach::Refused),
    }
}

/// The router `i` receives `p` on interface `ingress` and forwards it.
fn forward(st: &State, net: &Net, i: usize, ingress: &str, p: Packet) -> Reach {
    let Some(r) = net.routers.get(i) else {
        return Reach::Timeout;
    };
    if !r.routing {
        return Reach::Timeout;
    }
    let addrs = r.addrs();
    let me = Addrs { ifaces: &addrs };
    if addrs.iter().any(|(_, a, _)| *a == p.dst) {
        return to_router(r, ingress, p);
    }
    if let Some(x) = action_reach(r.cfg.verdict(ingress, "in", p, &me)) {
        return x;
    }
    let Some(egress) = r.iface_for(p.dst) else {
        // Beyond the lab (the internet through the WAN gateway): not simulated.
        return Reach::Timeout;
    };
    if let Some(x) = action_reach(r.cfg.verdict(&egress.key, "out", p, &me)) {
        return x;
    }
    let mut seen = p;
    if r.cfg.nat_auto
        && egress.key == "wan"
        && ingress != "wan"
        && let Some((wan_ip, _)) = egress.addr
    {
        seen.src = wan_ip;
    }
    match net.arp(&egress.bridge, p.dst) {
        Some(target) => deliver(st, net, target, seen),
        None => Reach::Timeout,
    }
}

/// A connection to the router's own address, arriving on `ingress`.
fn to_router(r: &RouterRt, ingress: &str, p: Packet) -> Reach {
    let addrs = r.addrs();
    let me = Addrs { ifaces: &addrs };
    if let Some(x) = action_reach(r.cfg.verdict(ingress, "in", p, &me)) {
        return x;
    }
    // sshd, the web GUI and Unbound; the factory config has SSH off.
    let listening: &[u16] = if r.routing {
        &[22, 443, 53]
    } else {
        &[80, 443, 53]
    };
    if listening.contains(&p.dport) {
        Reach::Open(matches!(p.dport, 443 | 80).then_some(Service::Web))
    } else {
        Reach::Refused
    }
}

/// `p` reaches the NIC `n` on its bridge.
fn deliver(st: &State, net: &Net, n: &Nic, p: Packet) -> Reach {
    match &n.owner {
        Owner::Vm(vmid) => {
            if n.fw
                && let Some(vm) = st.vms.get(vmid)
            {
                match crate::fweval::vm_allows(st, vm, IpAddr::V4(p.src), p.dport) {
                    crate::fweval::VmVerdict::Accept => {}
                    crate::fweval::VmVerdict::Drop => return Reach::Timeout,
                    crate::fweval::VmVerdict::Reject => return Reach::Refused,
                }
            }
            match net
                .open
                .get(vmid)
                .and_then(|o| o.iter().find(|(port, _)| *port == p.dport))
            {
                Some((_, svc)) => Reach::Open(Some(*svc)),
                None => Reach::Refused,
            }
        }
        Owner::Node => {
            if !crate::fweval::host_allows(st, IpAddr::V4(p.src), p.dport) {
                return Reach::Timeout;
            }
            match p.dport {
                22 => Reach::Open(Some(Service::Ssh)),
                8006 => Reach::Open(Some(Service::Web)),
                _ => Reach::Refused,
            }
        }
        Owner::Router(i, key) => match net.routers.get(*i) {
            Some(r) => to_router(r, key, p),
            None => Reach::Timeout,
        },
        Owner::Netns => Reach::Refused,
        Owner::Upstream => Reach::Timeout,
    }
}

/// A `/dev/tcp/ADDR/PORT` target in a script such as `exec 3<>/dev/tcp/A/P`.
pub fn dev_tcp_target(script: &str) -> Option<(String, String)> {
    let t = script.trim();
    let rest = t.split("/dev/tcp/").nth(1)?;
    let before = t.split("/dev/tcp/").next().unwrap_or_default().trim();
    let redirect_only = before
        .trim_start_matches("exec")
        .trim()
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == ':')
        .trim();
    if !matches!(redirect_only, "<>" | ">" | "<" | ">>") {
        return None;
    }
    let (host, port) = rest.split_once('/')?;
    let port = port.trim();
    if port.contains(char::is_whitespace) {
        return None;
    }
    Some((host.to_string(), port.to_string()))
}

/// What bash prints and returns for `exec 3<>/dev/tcp/HOST/PORT` given the outcome;
/// `timed` when it runs under `timeout` (124 when the connect hangs).
pub fn dev_tcp_result(reach: Reach, host: &str, port: &str, timed: bool) -> (i64, String) {
    let fail = |why: &str| {
        (
            1,
            format!("bash: connect: {why}\nbash: /dev/tcp/{host}/{port}: {why}\n"),
        )
    };
    match reach {
        Reach::Open(_) => (0, String::new()),
        Reach::Refused => fail("Connection refused"),
        Reach::NoRoute => fail("No route to host"),
        Reach::Timeout if timed => (124, String::new()),
        Reach::Timeout => fail("Connection timed out"),
    }
}

/// The outcome of `/dev/tcp/HOST/PORT` from `src`, or bash's own complaint about the
/// target (a name it cannot resolve).
pub fn dev_tcp(
    st: &State,
    net: &Net,
    src: &Src,
    host: &str,
    port: &str,
) -> Result<(Reach, Neigh), (i64, String)> {
    let Ok(ip) = host.parse::<Ipv4Addr>() else {
        return Err((
            1,
            format!(
                "bash: {host}: Name or service not known\nbash: /dev/tcp/{host}/{port}: Invalid argument\n"
            ),
        ));
    };
    let Ok(p) = port.parse::<u16>() else {
        return Err((
            1,
            format!(
                "bash: {port}: Servname not supported for ai_socktype\nbash: /dev/tcp/{host}/{port}: Invalid argument\n"
            ),
        ));
    };
    Ok(connect(st, net, src, ip, p))
}

/// Exit code standing for "still connecting" inside a guest command, until `timeout`
/// turns it into 124 (or the command's end into bash's own timeout error).
pub const HANG: i64 = -124;

/// `exec 3<>/dev/tcp/A/P` in a guest, from the outcomes worked out before the command
/// ran (`reach`); `None`: not that form.
pub fn dev_tcp_guest(
    reach: &std::collections::BTreeMap<(Ipv4Addr, u16), Reach>,
    script: &str,
) -> Option<(i64, String)> {
    let (host, port) = dev_tcp_target(script)?;
    let Ok(ip) = host.parse::<Ipv4Addr>() else {
        return Some((
            1,
            format!(
                "bash: {host}: Name or service not known\nbash: /dev/tcp/{host}/{port}: Invalid argument\n"
            ),
        ));
    };
    let Ok(p) = port.parse::<u16>() else {
        return Some((
            1,
            format!(
                "bash: {port}: Servname not supported for ai_socktype\nbash: /dev/tcp/{host}/{port}: Invalid argument\n"
            ),
        ));
    };
    let r = reach.get(&(ip, p)).copied().unwrap_or(Reach::Timeout);
    let (code, err) = dev_tcp_result(r, &host, &port, false);
    Some(if r == Reach::Timeout {
        (HANG, err)
    } else {
        (code, err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_tcp_forms() {
        assert_eq!(
            dev_tcp_target("exec 3<>/dev/tcp/10.10.20.1/22"),
            Some(("10.10.20.1".into(), "22".into()))
        );
        assert_eq!(
            dev_tcp_target(": > /dev/tcp/1.2.3.4/80"),
            Some(("1.2.3.4".into(), "80".into()))
        );
        assert_eq!(dev_tcp_target("cat /dev/tcp/1.2.3.4/80"), None);
        let (code, err) = dev_tcp_result(Reach::Refused, "1.2.3.4", "22", true);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "bash: connect: Connection refused\nbash: /dev/tcp/1.2.3.4/22: Connection refused\n"
        );
        assert_eq!(
            dev_tcp_result(Reach::Timeout, "a", "1", true),
            (124, String::new())
        );
        assert_eq!(
            dev_tcp_result(Reach::Open(None), "a", "1", true),
            (0, String::new())
        );
    }
}
