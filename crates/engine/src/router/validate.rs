//! `validate` for phase 2: the router answers on each internal link from the MAC
//! labwright gave that NIC, and every checkable cell of the segment matrix is tried
//! with a real TCP connect — from a probe namespace on the source segment's bridge
//! (what a device there would see: the bridge, the router's rules, the guest's
//! firewall) or, for the admin row, from this machine. Intent comes from the spec's
//! names (`labwright_router::cells`), never from the compiled rules, so a wrong rule
//! shows up as a failing cell.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use labwright_host::HostExec;
use labwright_pve::PveClient;
use labwright_router::{Cell, Intent, L4, Path, cells};
use labwright_spec::Spec;

use super::probe::{self, Reach};
use super::{ReadyLink, links};
use crate::observed::Observed;
use crate::validate::{Check, CheckStatus};

fn c(name: String, status: CheckStatus, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

/// The router's and the matrix's checks (none unless the router is part of the lab).
pub async fn checks(
    client: &PveClient,
    spec: &Spec,
    observed: &Observed,
    host: Option<&dyn HostExec>,
    guest_exec: bool,
) -> Vec<Check> {
    let Some((_, vm)) = super::active(spec) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let name = format!("router vm/{} {}", vm.vmid, vm.name);
    let Some(obs) = observed.vms.get(&vm.vmid) else {
        out.push(c(name, CheckStatus::Fail, "the router VM does not exist"));
        return out;
    };
    if obs.status != "running" {
        out.push(c(
            name,
            CheckStatus::Fail,
            format!(
                "the router VM is {}; start it (`qm start {}`)",
                obs.status, vm.vmid
            ),
        ));
        return out;
    }
    // Each NIC carries its fixed MAC on the declared bridge.
    let cfg = obs.config.clone().unwrap_or_default();
    for (slot, nic) in &vm.nics {
        let want_mac = super::fixed_mac(spec, vm.vmid, slot).unwrap_or_default();
        let have = cfg.get(slot).cloned().unwrap_or_default();
        let ok = have
            .to_ascii_uppercase()
            .contains(&want_mac.to_ascii_uppercase())
            && have.contains(&format!("bridge={}", nic.bridge_in(spec.phase)));
        out.push(c(
            format!("{name} {slot}"),
            if ok {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            },
            if ok {
                format!("{want_mac} on {}", nic.bridge_in(spec.phase))
            } else {
                format!(
                    "`{have}`; expected MAC {want_mac} on {} (plan and apply fix it)",
                    nic.bridge_in(spec.phase)
                )
            },
        ));
    }
    let Some(host) = host else {
        out.push(c(
            "matrix".into(),
            CheckStatus::Skipped,
            "skipped: the router and the matrix are probed from the node over SSH, and no SSH target is set (`node.ssh` or LABWRIGHT_SSH_TARGET)",
        ));
        return out;
    };
    let links = links(spec);
    let all = match cells(spec, spec.phase.0) {
        Ok(c) => c,
        Err(e) => {
            out.push(c(
                "matrix".into(),
                CheckStatus::Fail,
                format!("the matrix does not compile: {e}"),
            ));
            return out;
        }
    };
    let addrs = vm_addresses(client, spec, observed).await;
    for link in &links {
        out.extend(probe_from(host, spec, link, &all, &addrs).await);
    }
    // The LAN row runs its connects inside a guest: not when in-guest checks are off.
    let lan = if guest_exec {
        lan_row(client, spec, observed, &all, &addrs).await
    } else {
        None
    };
    let lan_probed: Option<String> = lan.as_ref().map(|(seg, _)| seg.clone());
    out.extend(lan.into_iter().flat_map(|(_, c)| c));
    out.extend(other_rows(client, spec, &all, &links, lan_probed.as_deref(), host).await);
    out
}

/// The cells from the LAN (the segment of the router's WAN link), tried from a
/// running guest there through its agent (a guest with a cloud image: bash is there),
/// lowest VMID first. `None` when there is no such segment or guest.
async fn lan_row(
    client: &PveClient,
    spec: &Spec,
    observed: &Observed,
    all: &[Cell],
    addrs: &BTreeMap<String, Result<Ipv4Addr, String>>,
) -> Option<(String, Vec<Check>)> {
    let router = spec.router.as_ref()?;
    let wan = router
        .interfaces
        .values()
        .find(|i| i.address.is_none())?
        .segment
        .clone();
    let bridge = spec.networks.segments.get(&wan)?.bridge.clone();
    let mut guests: Vec<&labwright_spec::model::Vm> = spec
        .vms
        .iter()
        .filter(|v| v.phase <= spec.phase && v.agent)
        .filter(|v| matches!(v.os, Some(labwright_spec::model::OsSource::CloudImage(_))))
        .filter(|v| v.nics.values().any(|n| n.bridge_in(spec.phase) == bridge))
        .filter(|v| {
            observed
                .vms
                .get(&v.vmid)
                .is_some_and(|o| o.status == "running")
        })
        .collect();
    guests.sort_by_key(|v| v.vmid);
    let from = guests.first()?;
    let node = observed.vms.get(&from.vmid)?.node.clone();
    let me = addrs.get(&from.name).and_then(|a| a.as_ref().ok()).copied();
    let mut out = Vec::new();
    for cell in all
        .iter()
        .filter(|c| c.from == wan && c.checked && c.intent != Intent::None)
    {
        let name = cell_name(cell);
        let skip = |why: String| {
            c(
                name.clone(),
                CheckStatus::Skipped,
                format!("skipped: {why}"),
            )
        };
        if cell.proto != L4::Tcp {
            out.push(skip("only TCP cells are probed".into()));
            continue;
        }
        let dest = if cell.to == from.name {
            Err(format!("{} is the vantage point itself", cell.to))
        } else {
            cell_dest(
                cell,
                spec,
                addrs,
                Err("the router's WAN address is leased".into()),
            )
        };
        let dest = match dest {
            Ok(d) => d,
            Err(e) => {
                out.push(skip(e));
                continue;
            }
        };
        let argv = probe::connect_argv(&dest.to_string(), cell.ports.0);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let reach = match crate::agent::exec(
            client,
            &node,
            from.vmid,
            &argv,
            std::time::Duration::from_secs(u64::from(probe::CONNECT_TIMEOUT_SECS) + 15),
        )
        .await
        {
            Ok((code, _, err)) => probe::reach_of(i32::try_from(code).unwrap_or(-1), &err),
            Err(e) => Reach::Error(crate::agent::first_line(&e)),
        };
        let detail = format!(
            "intent {} ({}); from {} ({}) through its agent → {dest}:{}: {}",
            intent_words(cell.intent),
            cell.decided_by,
            from.name,
            me.map(|a| a.to_string()).unwrap_or_else(|| "?".into()),
            cell.ports.0,
            reach.words()
        );
        out.push(judged(name, cell.intent, &reach, detail));
    }
    Some((wan, out))
}

/// The address each running VM's agent reports, by VM name.
async fn vm_addresses(
    client: &PveClient,
    spec: &Spec,
    observed: &Observed,
) -> BTreeMap<String, Result<Ipv4Addr, String>> {
    let mut m = BTreeMap::new();
    for vm in spec.vms.iter().filter(|v| v.phase <= spec.phase) {
        let Some(o) = observed.vms.get(&vm.vmid) else {
            continue;
        };
        let r = if o.status != "running" {
            Err(format!("VM {} is {}", vm.vmid, o.status))
        } else {
            crate::agent::guest_ipv4(client, &o.node, vm.vmid)
                .await
                .and_then(|a| {
                    a.parse::<Ipv4Addr>()
                        .map_err(|_| format!("the agent reports `{a}`"))
                })
        };
        m.insert(vm.name.clone(), r);
    }
    m
}

/// The node's management address (the address of the bridge carrying it).
fn node_address(spec: &Spec) -> Option<Ipv4Addr> {
    spec.networks
        .bridges
        .values()
        .find_map(|b| match b.address.map(|a| a.0.addr()) {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        })
}

/// Where a cell's connect goes: the router's address as seen from the vantage point,
/// the node's management address, or the VM's address its agent reported.
fn cell_dest(
    cell: &Cell,
    spec: &Spec,
    addrs: &BTreeMap<String, Result<Ipv4Addr, String>>,
    router: Result<Ipv4Addr, String>,
) -> Result<Ipv4Addr, String> {
    match (&cell.path, cell.to.as_str()) {
        (Path::RouterItself, _) => router,
        (_, "node") => {
            node_address(spec).ok_or_else(|| "the spec gives the node no address".into())
        }
        (_, vm) => match addrs.get(vm) {
            Some(Ok(a)) => Ok(*a),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!("VM `{vm}` is not running here")),
        },
    }
}

/// A probed cell's check: pass when what the connect found matches the intent.
fn judged(name: String, intent: Intent, reach: &Reach, detail: String) -> Check {
    let status = if verdict(intent, reach) == Some(true) {
        CheckStatus::Pass
    } else {
        CheckStatus::Fail
    };
    c(name, status, detail)
}

fn cell_name(cell: &Cell) -> String {
    format!("matrix {} → {} {}", cell.from, cell.to, cell.ports_text())
}

/// Does what a connect found match the intent? (`None`: nothing to compare.)
fn verdict(intent: Intent, reach: &Reach) -> Option<bool> {
    match (intent, reach) {
        (_, Reach::Error(_)) | (Intent::None, _) => None,
        (Intent::Allow, r) => Some(r.reached()),
        (Intent::Deny, r) => Some(!r.reached()),
    }
}

fn intent_words(i: Intent) -> &'static str {
    match i {
        Intent::Allow => "allow",
        Intent::Deny => "deny",
        Intent::None => "unspecified",
    }
}

/// The cells whose source is `link`'s segment, probed from its namespace, plus the
/// link's own check (the gateway answers from the router's MAC).
async fn probe_from(
    host: &dyn HostExec,
    spec: &Spec,
    link: &ReadyLink,
    all: &[Cell],
    addrs: &BTreeMap<String, Result<Ipv4Addr, String>>,
) -> Vec<Check> {
    let segment = spec
        .router
        .as_ref()
        .and_then(|r| r.interfaces.get(&link.name))
        .map(|i| i.segment.clone())
        .unwrap_or_default();
    let mine: Vec<&Cell> = all
        .iter()
        .filter(|c| c.from == segment && c.checked && c.intent != Intent::None)
        .collect();
    let ns = &link.ns;
    let vantage = format!("from {}/{} on {}", ns.address, ns.prefix, ns.bridge);
    let res = probe::with_ns(host, ns, async |h, ns| {
        let mut out = Vec::new();
        let reach = probe::connect(h, ns, ns.gateway, 53).await;
        let o = h.run(&ns.neigh(ns.gateway)).await.map_err(|e| e.to_string())?;
        let mac = probe::neigh_mac(&o.stdout);
        let ok = mac.as_deref() == Some(link.mac.to_ascii_uppercase().as_str());
        out.push(c(
            format!("router link {} ({})", link.name, ns.bridge),
            if ok { CheckStatus::Pass } else { CheckStatus::Fail },
            match &mac {
                Some(m) if ok => format!("{} answers from {m} ({}); DNS {}", ns.gateway, link.nic, reach.words()),
                Some(m) => format!(
                    "{} answers from {m}, not from the router's {} ({}): another device holds the address",
                    ns.gateway, link.nic, link.mac
                ),
                None => format!(
                    "{} does not answer on {} (docs/runbooks/router-unreachable.md)",
                    ns.gateway, ns.bridge
                ),
            },
        ));
        for cell in &mine {
            let name = cell_name(cell);
            if cell.proto != L4::Tcp {
                out.push(c(name, CheckStatus::Skipped, "skipped: only TCP cells are probed (a UDP or ICMP drop cannot be told from silence)"));
                continue;
            }
            let dest = match cell_dest(cell, spec, addrs, Ok(ns.gateway)) {
                Ok(d) => d,
                Err(e) => {
                    out.push(c(name, CheckStatus::Skipped, format!("skipped: no address for {}: {e}", cell.to)));
                    continue;
                }
            };
            let reach = probe::connect(h, ns, dest, cell.ports.0).await;
            let detail = format!(
                "intent {} ({}); {} → {dest}:{}: {}",
                intent_words(cell.intent),
                cell.decided_by,
                vantage,
                cell.ports.0,
                reach.words()
            );
            out.push(judged(name, cell.intent, &reach, detail));
        }
        Ok(out)
    })
    .await;
    match res {
        Ok(v) => v,
        Err(e) => vec![c(
            format!("router link {} ({})", link.name, ns.bridge),
            CheckStatus::Fail,
            e,
        )],
    }
}

/// Rows with no probe namespace: the admin CIDRs (this machine reaches the node's
/// API and SSH, or it would not be validating), the tailnet and the LAN.
async fn other_rows(
    client: &PveClient,
    spec: &Spec,
    all: &[Cell],
    links: &[ReadyLink],
    lan: Option<&str>,
    host: &dyn HostExec,
) -> Vec<Check> {
    let probed: Vec<String> = links
        .iter()
        .filter_map(|l| {
            spec.router
                .as_ref()
                .and_then(|r| r.interfaces.get(&l.name))
                .map(|i| i.segment.clone())
        })
        .collect();
    let mut api_ok = None;
    let mut ssh_ok = None;
    let mut out = Vec::new();
    for cell in all.iter().filter(|c| {
        c.checked
            && c.intent != Intent::None
            && !probed.contains(&c.from)
            && Some(c.from.as_str()) != lan
    }) {
        let name = cell_name(cell);
        let skipped = |why: &str| {
            c(
                name.clone(),
                CheckStatus::Skipped,
                format!("skipped: {why}"),
            )
        };
        if cell.from == "management" && cell.to == "node" && cell.intent == Intent::Allow {
            let port = cell.ports.0;
            let reached = if port == 22 {
                if ssh_ok.is_none() {
                    let r = host.run(&labwright_host::HostCmd::new(["true"])).await;
                    ssh_ok = Some(r.is_ok_and(|o| o.ok()));
                }
                ssh_ok
            } else if port == 8006 {
                if api_ok.is_none() {
                    api_ok = Some(client.version().await.is_ok());
                }
                api_ok
            } else {
                None
            };
            out.push(match reached {
                Some(true) => c(name, CheckStatus::Pass, format!("intent allow ({}); this machine (the admin side) reaches it over a fresh connection", cell.decided_by)),
                Some(false) => c(name, CheckStatus::Fail, format!("intent allow ({}); this machine cannot reach it: see docs/runbooks/recover-from-lockout.md", cell.decided_by)),
                None => skipped("no probe for this port from this machine"),
            });
            continue;
        }
        out.push(match cell.from.as_str() {
            "tailscale" => skipped("labwright probes from the node and this machine, not from the tailnet; check from a tailnet device (docs/runbooks/approve-tailscale-routes.md)"),
            "management" if cell.to == "router" => skipped("the router's WAN address is leased"),
            "management" => skipped("from this machine only the node's management is probed (it need not sit on the lab's LAN)"),
            _ => skipped("no probe point on this segment: labwright makes probe namespaces only on the router's internal segments (it knows a free address there), and no running guest with a cloud image and an agent sits here"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_counts_as_reached_a_timeout_as_dropped() {
        assert_eq!(verdict(Intent::Allow, &Reach::Open), Some(true));
        assert_eq!(verdict(Intent::Allow, &Reach::Refused), Some(true));
        assert_eq!(verdict(Intent::Allow, &Reach::Timeout), Some(false));
        assert_eq!(verdict(Intent::Deny, &Reach::Timeout), Some(true));
        assert_eq!(verdict(Intent::Deny, &Reach::NoRoute), Some(true));
        assert_eq!(verdict(Intent::Deny, &Reach::Open), Some(false));
        assert_eq!(verdict(Intent::Deny, &Reach::Refused), Some(false));
        assert_eq!(verdict(Intent::Deny, &Reach::Error("x".into())), None);
    }
}
