//! `ip link|addr|route show` on the node and in its namespaces: what labwright reads
//! back to find (and clean up) probe links a killed run left behind. The fields are
//! the ones iproute2 6.1 prints, a subset of its JSON (`-j`).

use serde_json::{Value, json};

use super::Out;
use crate::segments;
use crate::state::{HostLink, State};

/// One device as `ip link` shows it.
struct Dev {
    name: String,
    peer: Option<String>,
    up: bool,
    carrier: bool,
    mac: String,
    master: Option<String>,
    bridge: bool,
}

fn devices(st: &State, node: &str, ns: Option<&str>) -> Vec<Dev> {
    let Some(n) = st.nodes.get(node) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if ns.is_none() {
        for br in n
            .network
            .keys()
            .filter(|k| segments::bridge_up(st, node, k))
        {
            out.push(Dev {
                name: br.clone(),
                peer: None,
                up: true,
                carrier: true,
                mac: segments::made_up_mac(&format!("node/{node}/{br}")),
                master: None,
                bridge: true,
            });
        }
    }
    for (name, l) in n.links.iter().filter(|(_, l)| l.netns.as_deref() == ns) {
        let peer_up = n.links.get(&l.peer).is_some_and(|p: &HostLink| p.up);
        out.push(Dev {
            name: name.clone(),
            peer: Some(l.peer.clone()),
            up: l.up,
            carrier: l.up && peer_up,
            mac: l.mac.clone(),
            master: l.master.clone(),
            bridge: false,
        });
    }
    out
}

fn flags(d: &Dev) -> Vec<&'static str> {
    let mut f = Vec::new();
    if d.up && !d.carrier {
        f.push("NO-CARRIER");
    }
    f.extend(["BROADCAST", "MULTICAST"]);
    if d.up {
        f.push("UP");
        f.push(if d.carrier { "LOWER_UP" } else { "M-DOWN" });
    }
    f
}

fn operstate(d: &Dev) -> &'static str {
    match (d.up, d.carrier) {
        (false, _) => "DOWN",
        (true, true) => "UP",
        (true, false) => "LOWERLAYERDOWN",
    }
}

/// The device named in `sub` (`[dev] NAME`), if any.
fn named(sub: &[String]) -> Option<&String> {
    sub.iter()
        .skip_while(|a| matches!(a.as_str(), "show" | "list" | "ls" | "lst"))
        .find(|a| a.as_str() != "dev")
}

pub fn link_show(st: &State, node: &str, ns: Option<&str>, sub: &[String], json_out: bool) -> Out {
    let want = named(sub);
    let devs: Vec<Dev> = devices(st, node, ns)
        .into_iter()
        .filter(|d| want.is_none_or(|w| *w == d.name))
        .collect();
    if let Some(w) = want
        && devs.is_empty()
    {
        return Out::err(1, format!("Device \"{w}\" does not exist.\n"));
    }
    if json_out {
        let v: Vec<Value> = devs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut o = json!({"ifindex": i + 2});
                if let Some(p) = &d.peer {
                    o["link"] = json!(p);
                }
                o["ifname"] = json!(d.name);
                o["flags"] = json!(flags(d));
                o["mtu"] = json!(1500);
                o["qdisc"] = json!(if d.up { "noqueue" } else { "noop" });
                if let Some(m) = &d.master {
                    o["master"] = json!(m);
                }
                o["operstate"] = json!(operstate(d));
                o["linkmode"] = json!("DEFAULT");
                o["group"] = json!("default");
                o["txqlen"] = json!(if d.bridge { 0 } else { 1000 });
                o["link_type"] = json!("ether");
                o["address"] = json!(d.mac);
                o["broadcast"] = json!("ff:ff:ff:ff:ff:ff");
                o
            })
            .collect();
        return Out::ok(format!("{}\n", Value::Array(v)));
    }
    let mut out = String::new();
    for (i, d) in devs.iter().enumerate() {
        let name = match &d.peer {
            Some(p) => format!("{}@{p}", d.name),
            None => d.name.clone(),
        };
        let master = d
            .master
            .as_ref()
            .map(|m| format!(" master {m}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{}: {name}: <{}> mtu 1500 qdisc {}{master} state {} mode DEFAULT group default qlen 1000\n    link/ether {} brd ff:ff:ff:ff:ff:ff\n",
            i + 2,
            flags(d).join(","),
            if d.up { "noqueue" } else { "noop" },
            operstate(d),
            d.mac
        ));
    }
    Out::ok(out)
}

/// (device, address, prefix) in `ns`, or the node's own.
fn addrs(st: &State, node: &str, ns: Option<&str>) -> Vec<(String, String, u8)> {
    let Some(n) = st.nodes.get(node) else {
        return Vec::new();
    };
    match ns {
        Some(s) => n
            .netns
            .get(s)
            .map(|x| {
                x.addrs
                    .iter()
                    .map(|(a, p, d)| (d.clone(), a.clone(), *p))
                    .collect()
            })
            .unwrap_or_default(),
        None => n
            .network
            .iter()
            .filter(|(k, _)| segments::bridge_up(st, node, k))
            .filter_map(|(k, o)| {
                let cidr: ipnet::Ipv4Net = o.get("cidr")?.as_str()?.parse().ok()?;
                Some((k.clone(), cidr.addr().to_string(), cidr.prefix_len()))
            })
            .collect(),
    }
}

pub fn addr_show(st: &State, node: &str, ns: Option<&str>, sub: &[String], json_out: bool) -> Out {
    let want = named(sub);
    let all = addrs(st, node, ns);
    let devs: Vec<Dev> = devices(st, node, ns)
        .into_iter()
        .filter(|d| want.is_none_or(|w| *w == d.name))
        .collect();
    if let Some(w) = want
        && devs.is_empty()
    {
        return Out::err(1, format!("Device \"{w}\" does not exist.\n"));
    }
    if json_out {
        let v: Vec<Value> = devs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let info: Vec<Value> = all
                    .iter()
                    .filter(|(dev, _, _)| *dev == d.name)
                    .map(|(_, a, p)| json!({"family": "inet", "local": a, "prefixlen": p, "scope": "global", "label": d.name}))
                    .collect();
                json!({"ifindex": i + 2, "ifname": d.name, "flags": flags(d),
                    "operstate": operstate(d), "address": d.mac, "addr_info": info})
            })
            .collect();
        return Out::ok(format!("{}\n", Value::Array(v)));
    }
    let mut out = String::new();
    for (i, d) in devs.iter().enumerate() {
        out.push_str(&format!(
            "{}: {}: <{}> mtu 1500 state {}\n    link/ether {} brd ff:ff:ff:ff:ff:ff\n",
            i + 2,
            d.name,
            flags(d).join(","),
            operstate(d),
            d.mac
        ));
        for (_, a, p) in all.iter().filter(|(dev, _, _)| *dev == d.name) {
            out.push_str(&format!("    inet {a}/{p} scope global {}\n", d.name));
        }
    }
    Out::ok(out)
}

pub fn route_show(st: &State, node: &str, ns: Option<&str>, json_out: bool) -> Out {
    let Some(n) = st.nodes.get(node) else {
        return Out::ok(String::new());
    };
    // (dst, gateway, dev, prefsrc)
    let mut routes: Vec<(String, Option<String>, String, Option<String>)> = Vec::new();
    match ns {
        Some(s) => {
            let Some(space) = n.netns.get(s) else {
                return Out::ok(String::new());
            };
            let up = |d: &str| n.links.get(d).is_some_and(|l| l.up);
            if let Some(g) = &space.gateway {
                let dev = g
                    .parse()
                    .map(|ip| segments::netns_addrs_dev(space, ip))
                    .unwrap_or_default();
                routes.push(("default".into(), Some(g.clone()), dev, None));
            }
            for (a, p, d) in space.addrs.iter().filter(|(_, _, d)| up(d)) {
                if let Ok(net) = format!("{a}/{p}").parse::<ipnet::Ipv4Net>() {
                    routes.push((net.trunc().to_string(), None, d.clone(), Some(a.clone())));
                }
            }
        }
        None => {
            for (k, o) in n
                .network
                .iter()
                .filter(|(k, _)| segments::bridge_up(st, node, k))
            {
                if let Some(g) = o.get("gateway").and_then(Value::as_str) {
                    routes.insert(0, ("default".into(), Some(g.to_string()), k.clone(), None));
                }
                if let Some(net) = o
                    .get("cidr")
                    .and_then(Value::as_str)
                    .and_then(|c| c.parse::<ipnet::Ipv4Net>().ok())
                {
                    routes.push((
                        net.trunc().to_string(),
                        None,
                        k.clone(),
                        Some(net.addr().to_string()),
                    ));
                }
            }
        }
    }
    if json_out {
        let v: Vec<Value> = routes
            .iter()
            .map(|(dst, gw, dev, src)| match (gw, src) {
                (Some(g), _) => json!({"dst": dst, "gateway": g, "dev": dev, "flags": []}),
                (None, Some(s)) => json!({"dst": dst, "dev": dev, "protocol": "kernel", "scope": "link", "prefsrc": s, "flags": []}),
                (None, None) => json!({"dst": dst, "dev": dev, "flags": []}),
            })
            .collect();
        return Out::ok(format!("{}\n", Value::Array(v)));
    }
    Out::ok(
        routes
            .iter()
            .map(|(dst, gw, dev, src)| match (gw, src) {
                (Some(g), _) => format!("{dst} via {g} dev {dev} \n"),
                (None, Some(s)) => format!("{dst} dev {dev} proto kernel scope link src {s} \n"),
                (None, None) => format!("{dst} dev {dev} \n"),
            })
            .collect(),
    )
}
