//! Network namespaces on the node (`ip netns`, veth pairs on a bridge, addresses,
//! a default route, the neighbour table) and the TCP probe bash's `/dev/tcp` makes
//! (`timeout 3 bash -c 'exec 3<>/dev/tcp/ADDR/PORT'`), from the node or from inside a
//! namespace (`ip netns exec NS …`). A namespace with an address on a bridge is a
//! host there for crate::segments. Messages and exit codes as iproute2 6.1 and bash
//! 5.2 print them (measured on Debian 12).

use std::net::Ipv4Addr;

use super::Out;
use crate::segments::{self, Net, Reach};
use crate::state::{HostLink, Netns, State};

fn err(code: u32, msg: impl Into<String>) -> Out {
    Out::err(code, msg.into())
}

fn no_netns(ns: &str) -> Out {
    err(
        255,
        format!("Cannot open network namespace \"{ns}\": No such file or directory\n"),
    )
}

fn no_dev(dev: &str) -> Out {
    err(1, format!("Cannot find device \"{dev}\"\n"))
}

fn incomplete() -> Out {
    err(255, "Command line is not complete. Try option \"help\"\n")
}

/// Is `dev` a device in namespace `ns` (`None`: the node's own)?
fn dev_in(st: &State, node: &str, ns: Option<&str>, dev: &str) -> bool {
    let Some(n) = st.nodes.get(node) else {
        return false;
    };
    if dev == "lo" {
        return true;
    }
    if n.links.get(dev).is_some_and(|l| l.netns.as_deref() == ns) {
        return true;
    }
    ns.is_none() && segments::bridge_up(st, node, dev)
}

/// `ip [-n NS] [-j] [-4] OBJECT …` in namespace `ns` (from `ip netns exec`).
pub fn ip(st: &mut State, node: &str, args: &[String], ns: Option<&str>, scale: f64) -> Out {
    let mut ns = ns.map(String::from);
    let mut json = false;
    let mut i = 0;
    while let Some(a) = args.get(i).filter(|a| a.starts_with('-')) {
        match a.as_str() {
            "-n" | "-netns" | "--netns" => {
                let Some(name) = args.get(i + 1) else {
                    return incomplete();
                };
                ns = Some(name.clone());
                i += 1;
            }
            "-j" | "-json" | "--json" => json = true,
            "-p" | "-pretty" | "-4" | "-br" | "-brief" | "-d" | "-details" => {}
            other => {
                return err(
                    255,
                    format!("Option \"{other}\" is unknown, try \"ip -help\".\n"),
                );
            }
        }
        i += 1;
    }
    let rest = &args[i..];
    let Some(object) = rest.first() else {
        return err(255, "Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }\n");
    };
    if object.as_str() != "netns"
        && let Some(n) = ns.as_deref()
        && !st.nodes.get(node).is_some_and(|x| x.netns.contains_key(n))
    {
        return no_netns(n);
    }
    let ns = ns.as_deref();
    let sub = &rest[1..];
    let show = sub
        .first()
        .is_none_or(|v| matches!(v.as_str(), "show" | "list" | "ls" | "lst"));
    if show {
        match object.as_str() {
            "link" | "l" => return super::netshow::link_show(st, node, ns, sub, json),
            "addr" | "address" | "a" => return super::netshow::addr_show(st, node, ns, sub, json),
            "route" | "r" | "ro" => return super::netshow::route_show(st, node, ns, json),
            _ => {}
        }
    }
    match object.as_str() {
        "netns" | "net" | "netn" => netns_cmd(st, node, sub, scale),
        "link" | "l" => link(st, node, ns, sub),
        "addr" | "address" | "a" => addr(st, node, ns, sub),
        "route" | "r" | "ro" => route(st, node, ns, sub),
        "neigh" | "neighbor" | "neighbour" | "n" => neigh(st, node, ns, sub, json),
        other => err(
            255,
            format!("Object \"{other}\" is unknown, try \"ip help\".\n"),
        ),
    }
}

fn netns_cmd(st: &mut State, node: &str, sub: &[String], scale: f64) -> Out {
    let Some(n) = st.nodes.get_mut(node) else {
        return err(255, "");
    };
    let name = sub.get(1).cloned().unwrap_or_default();
    match sub.first().map(String::as_str) {
        None | Some("list" | "show" | "ls") => {
            let mut out = String::new();
            for (i, (k, v)) in n.netns.iter().enumerate() {
                if v.links.is_empty() {
                    out.push_str(&format!("{k}\n"));
                } else {
                    out.push_str(&format!("{k} (id: {i})\n"));
                }
            }
            Out::ok(out)
        }
        Some("add") => {
            if name.is_empty() {
                return incomplete();
            }
            if name.contains('/') || name == "." || name == ".." {
                return err(1, format!("Invalid netns name \"{name}\"\n"));
            }
            if n.netns.contains_key(&name) {
                return err(
                    1,
                    format!("Cannot create namespace file \"/run/netns/{name}\": File exists\n"),
                );
            }
            n.netns.insert(name, Netns::default());
            Out::ok(String::new())
        }
        Some("del" | "delete") => {
            if name.is_empty() {
                return incomplete();
            }
            let Some(space) = n.netns.remove(&name) else {
                return err(
                    1,
                    format!(
                        "Cannot remove namespace file \"/run/netns/{name}\": No such file or directory\n"
                    ),
                );
            };
            // Its links go with it, and a veth's peer with its other end.
            for l in space.links {
                if let Some(link) = n.links.remove(&l) {
                    n.links.remove(&link.peer);
                }
            }
            Out::ok(String::new())
        }
        Some("exec") => {
            if name.is_empty() || sub.len() < 3 {
                return incomplete();
            }
            if !n.netns.contains_key(&name) {
                return no_netns(&name);
            }
            super::run_in(st, node, &sub[2..], Some(&name), "", scale)
        }
        Some(other) => err(
            255,
            format!("Command \"{other}\" is unknown, try \"ip netns help\".\n"),
        ),
    }
}

fn link(st: &mut State, node: &str, ns: Option<&str>, sub: &[String]) -> Out {
    match sub.first().map(String::as_str) {
        Some("add") => {
            // ip link add NAME type veth peer [name] PEER
            let name = sub.get(1).cloned().unwrap_or_default();
            let ty = sub
                .iter()
                .position(|a| a == "type")
                .and_then(|i| sub.get(i + 1));
            let peer = sub.iter().position(|a| a == "peer").and_then(|i| {
                match sub.get(i + 1).map(String::as_str) {
                    Some("name") => sub.get(i + 2),
                    _ => sub.get(i + 1),
                }
            });
            if name.is_empty() {
                return err(2, "Not enough information: \"dev\" argument is required.\n");
            }
            if ty.map(String::as_str) != Some("veth") {
                return err(
                    2,
                    "RTNETLINK answers: Operation not supported\n(only veth pairs are simulated)\n",
                );
            }
            let peer = peer.cloned().unwrap_or_else(|| format!("{name}p"));
            if dev_in(st, node, ns, &name) || dev_in(st, node, ns, &peer) {
                return err(2, "RTNETLINK answers: File exists\n");
            }
            let Some(n) = st.nodes.get_mut(node) else {
                return err(2, "");
            };
            for (a, b) in [(&name, &peer), (&peer, &name)] {
                n.links.insert(
                    a.clone(),
                    HostLink {
                        peer: b.clone(),
                        mac: segments::made_up_mac(&format!("veth/{node}/{a}")),
                        master: None,
                        up: false,
                        netns: ns.map(String::from),
                    },
                );
            }
            if let Some(space) = ns.and_then(|s| n.netns.get_mut(s)) {
                space.links.push(name);
                space.links.push(peer);
            }
            Out::ok(String::new())
        }
        Some("set") => link_set(st, node, ns, &sub[1..]),
        Some("del" | "delete") => {
            let Some(dev) = sub.get(1) else {
                return incomplete();
            };
            let ours = st
                .nodes
                .get(node)
                .and_then(|n| n.links.get(dev))
                .is_some_and(|l| l.netns.as_deref() == ns);
            if !ours {
                return no_dev(dev);
            }
            if let Some(n) = st.nodes.get_mut(node)
                && let Some(l) = n.links.remove(dev)
            {
                n.links.remove(&l.peer);
                for space in n.netns.values_mut() {
                    space.links.retain(|x| x != dev && *x != l.peer);
                    space.addrs.retain(|(_, _, d)| d != dev && *d != l.peer);
                }
            }
            Out::ok(String::new())
        }
        Some(other) => err(
            255,
            format!("Command \"{other}\" is unknown, try \"ip link help\".\n"),
        ),
        None => Out::ok(String::new()),
    }
}

/// `ip link set [dev] DEV [master BR | nomaster] [up | down] [netns NS]`: arguments
/// are checked first (as iproute2 parses them), then the device is looked up.
fn link_set(st: &mut State, node: &str, ns: Option<&str>, sub: &[String]) -> Out {
    let mut dev = None;
    let mut master: Option<Option<String>> = None;
    let mut up = None;
    let mut to_ns = None;
    let mut i = 0;
    while i < sub.len() {
        match sub[i].as_str() {
            "dev" => {
                dev = sub.get(i + 1).cloned();
                i += 1;
            }
            "master" => {
                let Some(br) = sub.get(i + 1) else {
                    return incomplete();
                };
                if !dev_in(st, node, ns, br) {
                    return err(
                        255,
                        format!("Error: argument \"{br}\" is wrong: Device does not exist\n\n"),
                    );
                }
                master = Some(Some(br.clone()));
                i += 1;
            }
            "nomaster" => master = Some(None),
            "up" => up = Some(true),
            "down" => up = Some(false),
            "netns" => {
                let Some(target) = sub.get(i + 1) else {
                    return incomplete();
                };
                if !st
                    .nodes
                    .get(node)
                    .is_some_and(|n| n.netns.contains_key(target))
                {
                    return err(
                        255,
                        format!(
                            "Error: argument \"{target}\" is wrong: Invalid \"netns\" value\n\n"
                        ),
                    );
                }
                to_ns = Some(target.clone());
                i += 1;
            }
            d if dev.is_none() => dev = Some(d.to_string()),
            other => {
                return err(
                    255,
                    format!("Error: either \"dev\" is duplicate, or \"{other}\" is a garbage.\n"),
                );
            }
        }
        i += 1;
    }
    let Some(dev) = dev else {
        return err(
            255,
            "Not enough information: \"dev\" argument is required.\n",
        );
    };
    if !dev_in(st, node, ns, &dev) {
        return no_dev(&dev);
    }
    let Some(n) = st.nodes.get_mut(node) else {
        return no_dev(&dev);
    };
    let Some(l) = n.links.get_mut(&dev) else {
        // A bridge or the loopback: nothing the simulator tracks changes.
        return Out::ok(String::new());
    };
    if let Some(m) = master {
        l.master = m;
    }
    if let Some(u) = up {
        l.up = u;
    }
    if let Some(target) = to_ns {
        // Moving a link to another namespace takes it down and drops its addresses
        // and its master.
        let from = l.netns.replace(target.clone());
        l.up = false;
        l.master = None;
        if let Some(f) = from.and_then(|f| n.netns.get_mut(&f)) {
            f.links.retain(|x| *x != dev);
            f.addrs.retain(|(_, _, d)| *d != dev);
        }
        if let Some(t) = n.netns.get_mut(&target) {
            t.links.push(dev);
        }
    }
    Out::ok(String::new())
}

fn addr(st: &mut State, node: &str, ns: Option<&str>, sub: &[String]) -> Out {
    let Some(space_name) = ns else {
        return err(
            2,
            "RTNETLINK answers: Operation not permitted\n(the node's own addresses come from /etc/network/interfaces)\n",
        );
    };
    match sub.first().map(String::as_str) {
        Some("add" | "del" | "delete") => {
            let adding = sub[0] == "add";
            let Some(cidr) = sub.get(1) else {
                return incomplete();
            };
            let dev = sub
                .iter()
                .position(|a| a == "dev")
                .and_then(|i| sub.get(i + 1));
            let Some(dev) = dev else {
                return err(2, "Not enough information: \"dev\" argument is required.\n");
            };
            let (ip, prefix) = match cidr.split_once('/') {
                Some((a, p)) => (
                    a.parse::<Ipv4Addr>(),
                    p.parse::<u8>().ok().filter(|p| *p <= 32),
                ),
                None => (cidr.parse::<Ipv4Addr>(), Some(32)),
            };
            let (Ok(ip), Some(prefix)) = (ip, prefix) else {
                return err(
                    1,
                    format!("Error: inet prefix is expected rather than \"{cidr}\".\n"),
                );
            };
            if !dev_in(st, node, ns, dev) {
                return no_dev(dev);
            }
            let Some(space) = st
                .nodes
                .get_mut(node)
                .and_then(|n| n.netns.get_mut(space_name))
            else {
                return no_netns(space_name);
            };
            let entry = (ip.to_string(), prefix, dev.clone());
            let have = space
                .addrs
                .iter()
                .position(|(a, _, d)| *a == entry.0 && d == dev);
            match (adding, have) {
                (true, Some(_)) => err(2, "Error: ipv4: Address already assigned.\n"),
                (true, None) => {
                    space.addrs.push(entry);
                    Out::ok(String::new())
                }
                (false, Some(i)) => {
                    space.addrs.remove(i);
                    Out::ok(String::new())
                }
                (false, None) => err(2, "Error: ipv4: Address not found.\n"),
            }
        }
        Some(other) => err(
            255,
            format!("Command \"{other}\" is unknown, try \"ip address help\".\n"),
        ),
        None => Out::ok(String::new()),
    }
}

fn route(st: &mut State, node: &str, ns: Option<&str>, sub: &[String]) -> Out {
    let Some(space_name) = ns else {
        return err(
            2,
            "RTNETLINK answers: Operation not permitted\n(the node's routes come from /etc/network/interfaces)\n",
        );
    };
    let on_link: Vec<ipnet::Ipv4Net> = segments::netns_addrs(st, node, space_name)
        .into_iter()
        .map(|(_, n, _, _)| n)
        .chain(
            // An address on a link that is up counts even before the veth reaches a
            // bridge (the kernel only needs the link up).
            st.nodes
                .get(node)
                .and_then(|n| n.netns.get(space_name).map(|s| (n, s)))
                .map(|(n, s)| {
                    s.addrs
                        .iter()
                        .filter(|(_, _, d)| n.links.get(d).is_some_and(|l| l.up))
                        .filter_map(|(a, p, _)| {
                            ipnet::Ipv4Net::new(a.parse().ok()?, *p)
                                .ok()
                                .map(|x| x.trunc())
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        )
        .collect();
    let Some(space) = st
        .nodes
        .get_mut(node)
        .and_then(|n| n.netns.get_mut(space_name))
    else {
        return no_netns(space_name);
    };
    match sub.first().map(String::as_str) {
        Some(verb @ ("add" | "replace" | "change")) => {
            if sub.get(1).map(String::as_str) != Some("default") {
                return err(
                    2,
                    "RTNETLINK answers: Operation not supported\n(only the default route is simulated)\n",
                );
            }
            let Some(gw) = sub
                .iter()
                .position(|a| a == "via")
                .and_then(|i| sub.get(i + 1))
            else {
                return incomplete();
            };
            let Ok(g) = gw.parse::<Ipv4Addr>() else {
                return err(
                    1,
                    format!("Error: inet address is expected rather than \"{gw}\".\n"),
                );
            };
            if verb == "add" && space.gateway.is_some() {
                return err(2, "RTNETLINK answers: File exists\n");
            }
            if !on_link.iter().any(|n| n.contains(&g)) {
                return err(2, "Error: Nexthop has invalid gateway.\n");
            }
            space.gateway = Some(g.to_string());
            Out::ok(String::new())
        }
        Some("del" | "delete") => {
            if space.gateway.take().is_none() {
                return err(2, "RTNETLINK answers: No such process\n");
            }
            Out::ok(String::new())
        }
        Some(other) => err(
            255,
            format!("Command \"{other}\" is unknown, try \"ip route help\".\n"),
        ),
        None => Out::ok(String::new()),
    }
}

fn neigh(st: &mut State, node: &str, ns: Option<&str>, sub: &[String], json: bool) -> Out {
    let filter = sub
        .iter()
        .skip_while(|a| matches!(a.as_str(), "show" | "list" | "ls"))
        .find(|a| a.parse::<Ipv4Addr>().is_ok())
        .cloned();
    let entries: Vec<(String, String, String)> = ns
        .and_then(|s| st.nodes.get(node).and_then(|n| n.netns.get(s)))
        .map(|s| {
            s.neigh
                .iter()
                .filter(|(a, _)| filter.as_ref().is_none_or(|f| f == *a))
                .map(|(a, (d, m))| (a.clone(), d.clone(), m.clone()))
                .collect()
        })
        .unwrap_or_default();
    if json {
        let v: Vec<serde_json::Value> = entries
            .iter()
            .map(|(a, d, m)| serde_json::json!({"dst": a, "dev": d, "lladdr": m, "state": ["REACHABLE"]}))
            .collect();
        return Out::ok(format!("{}\n", serde_json::Value::Array(v)));
    }
    Out::ok(
        entries
            .iter()
            .map(|(a, d, m)| format!("{a} dev {d} lladdr {m} REACHABLE\n"))
            .collect(),
    )
}

/// `timeout [OPTS] DURATION CMD…`: a connect still hanging at the end is killed (124).
pub fn timeout(st: &mut State, node: &str, args: &[String], ns: Option<&str>, scale: f64) -> Out {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        i += if matches!(args[i].as_str(), "-k" | "-s" | "--kill-after" | "--signal") {
            2
        } else {
            1
        };
    }
    let rest = args.get(i + 1..).unwrap_or_default();
    if rest.is_empty() {
        return err(
            125,
            "timeout: missing operand\nTry 'timeout --help' for more information.\n",
        );
    }
    let out = super::run_in(st, node, rest, ns, "", scale);
    if out.code == HANG_CODE {
        return Out {
            code: 124,
            out: out.out,
            err: String::new(),
        };
    }
    out
}

/// Exit code standing for "still connecting" until `timeout` or the end of the line.
pub const HANG_CODE: u32 = 1124;

/// `bash -c SCRIPT`: a `/dev/tcp` connect, or the script run as a command line.
pub fn bash(st: &mut State, node: &str, args: &[String], ns: Option<&str>, scale: f64) -> Out {
    let Some(script) = args
        .iter()
        .position(|a| a == "-c")
        .and_then(|i| args.get(i + 1))
    else {
        return err(2, "bash: only `bash -c COMMAND` is simulated\n");
    };
    let Some((host, port)) = segments::dev_tcp_target(script) else {
        return super::run_line_in(st, node, script, "", ns, scale);
    };
    let net = Net::build(st, scale);
    let src = match ns {
        Some(n) => segments::src_netns(st, node, n),
        None => segments::src_node(st, node),
    };
    let (reach, neigh) = match segments::dev_tcp(st, &net, &src, &host, &port) {
        Ok(x) => x,
        Err((code, e)) => return err(u32::try_from(code).unwrap_or(1), e),
    };
    if let (Some(n), Some((ip, mac))) = (ns, neigh)
        && let Some(space) = st.nodes.get_mut(node).and_then(|x| x.netns.get_mut(n))
    {
        let dev = segments::netns_addrs_dev(space, ip);
        space.neigh.insert(ip.to_string(), (dev, mac));
    }
    let (code, e) = segments::dev_tcp_result(reach, &host, &port, false);
    if reach == Reach::Timeout {
        return Out {
            code: HANG_CODE,
            out: String::new(),
            err: e,
        };
    }
    Out {
        code: u32::try_from(code).unwrap_or(1),
        out: String::new(),
        err: e,
    }
}
