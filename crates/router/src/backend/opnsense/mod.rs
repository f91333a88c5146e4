//! OPNsense: the rule set as the `config.xml` its configuration importer reads at first
//! boot (see `docs/decisions.md`, "OPNsense router: how it gets its configuration").
//!
//! The subset written is what a factory `config.xml` has (opnsense/core
//! `src/etc/config.xml.sample`) plus the router's own links, DHCP, NAT and rules:
//! - links by device name: OPNsense assigns interfaces by `<if>vtnetN</if>`, never by
//!   MAC. FreeBSD numbers virtio NICs in PCI order and PVE puts `net0`…`net5` at
//!   rising PCI addresses (qemu-server `PCI.pm`), so `vtnetN` is the N-th NIC slot of
//!   the VM in slot order. The fixed MACs ([`crate::mac`]) are written as comments so
//!   `validate` can prove the mapping on the running router.
//! - filter rules in the MVC model (`OPNsense/Firewall/Filter/rules`, the form the
//!   factory config and the API use), one per address family and port range, each
//!   with the spec path in its description and a UUID derived from it;
//! - DHCP by dnsmasq (the factory default DHCP server), DNS by Unbound;
//! - outbound NAT in automatic mode, which translates exactly the internal links'
//!   networks leaving through `wan` — the model's masquerade.

mod rules;
pub mod xml;

use std::net::{IpAddr, Ipv4Addr};

use labwright_spec::types::Cidr;
use labwright_spec::{Spec, YamlPath};

use super::Backend;
use crate::error::OpnsenseError;
use crate::mac::{Mac, router_nic_mac};
use crate::model::{Role, RuleSet};
use xml::Writer;

/// Renders OPNsense `config.xml` files.
#[derive(Clone, Debug, PartialEq)]
pub struct Opnsense {
    pub hostname: String,
    /// DNS domain of the router (OPNsense's own default, `internal`).
    pub domain: String,
    /// Lab name: part of every MAC and rule UUID, so two labs never collide.
    pub lab: String,
    pub links: Vec<Link>,
}

/// One router link as OPNsense sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The spec's interface key (`services`), kept as the interface description.
    pub name: String,
    /// OPNsense's interface key: `wan`, `lan`, then `opt1`, `opt2` ….
    pub key: String,
    /// FreeBSD device (`vtnet1`).
    pub device: String,
    /// NIC slot on the VM (`net1`).
    pub nic: String,
    pub mac: Mac,
    pub role: Role,
    pub cidr: Cidr,
    pub address: Option<Cidr>,
    /// The DHCP pool, when the router serves DHCP here.
    pub dhcp_range: Option<(Ipv4Addr, Ipv4Addr)>,
}

/// The DHCP pool of a segment: its upper half, without the broadcast address, so the
/// lower half stays free for the gateway and fixed addresses (`10.10.10.0/24` →
/// `.128`–`.254`). A gateway at either end of the pool is stepped over; one inside it
/// is an error.
pub fn dhcp_range(
    cidr: Cidr,
    gateway: Option<IpAddr>,
    path: &YamlPath,
) -> Result<(Ipv4Addr, Ipv4Addr), OpnsenseError> {
    let ipnet::IpNet::V4(net) = cidr.0.trunc() else {
        return Err(OpnsenseError::DhcpNotIpv4 { path: path.clone() });
    };
    if net.prefix_len() > 29 {
        return Err(OpnsenseError::SegmentTooSmall {
            path: path.clone(),
            cidr: cidr.to_string(),
        });
    }
    let base = u32::from(net.network());
    let size = 1u32 << (32 - net.prefix_len());
    let (mut start, mut end) = (base + size / 2, base + size - 2);
    if let Some(IpAddr::V4(g)) = gateway {
        let g = u32::from(g);
        if g == start {
            start += 1;
        } else if g == end {
            end -= 1;
        } else if (start..=end).contains(&g) {
            return Err(OpnsenseError::GatewayInRange {
                path: path.clone(),
                gateway: Ipv4Addr::from(g).to_string(),
                start: Ipv4Addr::from(start).to_string(),
                end: Ipv4Addr::from(end).to_string(),
            });
        }
    }
    Ok((Ipv4Addr::from(start), Ipv4Addr::from(end)))
}

/// `net12` → 12.
fn slot_number(slot: &str) -> Option<u32> {
    slot.strip_prefix("net")?.parse().ok()
}

impl Opnsense {
    /// The OPNsense view of `rs` (compiled from `spec`): links mapped to devices by
    /// the router VM's NIC slots, MACs, DHCP pools. Fails with the spec path when
    /// OPNsense cannot carry the rule set.
    pub fn for_spec(spec: &Spec, rs: &RuleSet) -> Result<Self, OpnsenseError> {
        let router_path = YamlPath::root().key("router");
        let vm = spec.vm_by_name(&rs.router_vm);
        let vms_path = YamlPath::root().key("vms");
        let vm_path = spec
            .vms
            .iter()
            .position(|v| v.name == rs.router_vm)
            .map(|i| vms_path.index(i))
            .unwrap_or(vms_path);
        let mut slots: Vec<(u32, String)> = Vec::new();
        for slot in vm
            .map(|v| v.nics.keys().cloned().collect())
            .unwrap_or_else(|| {
                rs.interfaces
                    .iter()
                    .filter_map(|i| i.nic.clone())
                    .collect::<Vec<_>>()
            })
        {
            let Some(n) = slot_number(&slot) else {
                return Err(OpnsenseError::BadNicSlot {
                    path: vm_path.key("nics").key(slot.as_str()),
                    slot,
                });
            };
            slots.push((n, slot));
        }
        slots.sort();
        let vmid = vm.map(|v| v.vmid).unwrap_or(0);
        let lab = spec.metadata.name.clone();

        let mut links = Vec::new();
        let mut opt = 0;
        // wan first, then the internal links in NIC order (lan, opt1, …).
        let mut phys: Vec<_> = rs.interfaces.iter().filter(|i| i.nic.is_some()).collect();
        phys.sort_by_key(|i| {
            let n = i.nic.as_deref().and_then(slot_number).unwrap_or(u32::MAX);
            (i.role != Role::Wan, n)
        });
        if phys.first().is_none_or(|i| i.role != Role::Wan) {
            return Err(OpnsenseError::NoWan {
                path: router_path.key("interfaces"),
            });
        }
        for i in phys {
            let nic = i.nic.clone().unwrap_or_default();
            let index = slots.iter().position(|(_, s)| *s == nic).unwrap_or(0);
            let key = match (i.role, opt) {
                (Role::Wan, _) => "wan".to_string(),
                (_, 0) => "lan".to_string(),
                (_, n) => format!("opt{n}"),
            };
            if i.role != Role::Wan {
                opt += 1;
            }
            let dhcp_range = if i.dhcp {
                Some(dhcp_range(
                    i.cidr,
                    i.address.map(|a| a.0.addr()),
                    &i.origin.key("dhcp"),
                )?)
            } else {
                None
            };
            links.push(Link {
                name: i.name.clone(),
                key,
                device: format!("vtnet{index}"),
                mac: router_nic_mac(&lab, vmid, &nic),
                nic,
                role: i.role,
                cidr: i.cidr,
                address: i.address,
                dhcp_range,
            });
        }
        Ok(Opnsense {
            hostname: rs.router_vm.clone(),
            domain: "internal".into(),
            lab,
            links,
        })
    }

    /// The OPNsense key of a spec link name, if OPNsense has an interface for it.
    fn key_of(&self, name: &str) -> Option<&str> {
        self.links
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.key.as_str())
    }
}

impl Backend for Opnsense {
    fn name(&self) -> &'static str {
        "opnsense"
    }

    /// `config.xml` for `rs`; build `self` with [`Opnsense::for_spec`] from the same
    /// rule set (a link it does not know is matched on every interface).
    fn render(&self, rs: &RuleSet) -> String {
        let mut w = Writer::new();
        w.open("opnsense", &[]);
        w.comment(&format!(
            "labwright: router `{}` of lab `{}` at phase {}, generated from the spec; changes go through labwright.",
            rs.router_vm, self.lab, rs.phase
        ));
        for l in &self.links {
            w.comment(&format!(
                "link {} = {} on {} ({}, MAC {}): {} {}",
                l.name,
                l.key,
                l.device,
                l.nic,
                l.mac,
                l.cidr,
                match l.address {
                    Some(a) => format!("router {a}"),
                    None => "router address from upstream DHCP".into(),
                }
            ));
        }
        for i in rs.interfaces.iter().filter(|i| i.role == Role::Tailnet) {
            w.comment(&format!(
                "link {} ({}): Tailscale on the router needs the os-tailscale plugin; rules naming it match on any interface by the tailnet's addresses [{}]",
                i.name, i.cidr, i.origin
            ));
        }
        for u in &rs.unrouted {
            w.comment(&format!(
                "not routed: {} → {} ({}): {}",
                u.from, u.to, u.origin, u.reason
            ));
        }
        w.leaf("theme", "opnsense");
        self.system(&mut w);
        self.interfaces(&mut w);
        self.dhcp(&mut w);
        w.open("unbound", &[]);
        w.leaf("enable", "1");
        w.close();
        w.open("nat", &[]);
        for m in &rs.masquerade {
            w.comment(&format!(
                "{} via {}: automatic outbound NAT translates every internal link's network leaving through wan [{}]",
                m.comment, m.oif, m.origin
            ));
        }
        w.open("outbound", &[]);
        w.leaf("mode", "automatic");
        w.close();
        w.close();
        // The legacy rule list stays empty: the rules live in the MVC model below.
        w.leaf("filter", "");
        let compiled = rules::compile(self, rs);
        w.open("OPNsense", &[]);
        w.open("Firewall", &[]);
        rules::write_aliases(&mut w, &compiled.aliases);
        w.open("Filter", &[]);
        w.open("rules", &[]);
        for r in &compiled.rules {
            rules::write_rule(&mut w, r);
        }
        w.close();
        w.close();
        w.close();
        w.close();
        w.finish()
    }
}

impl Opnsense {
    fn system(&self, w: &mut Writer) {
        w.open("system", &[]);
        w.leaf("optimization", "normal");
        w.leaf("hostname", &self.hostname);
        w.leaf("domain", &self.domain);
        w.leaf("timezone", "Etc/UTC");
        w.open("group", &[]);
        w.leaf("name", "admins");
        w.leaf("description", "System Administrators");
        w.leaf("scope", "system");
        w.leaf("gid", "1999");
        w.leaf("member", "0");
        w.leaf("priv", "page-all");
        w.close();
        // No password hash: the seed must hold no secret, and the factory hash is a
        // known password. Until one is set (console menu, option 3) root can log in
        // on the console only; the console menu is left unlocked for that reason.
        w.comment("root has no password until it is set on the console (option 3)");
        w.open("user", &[]);
        w.leaf("name", "root");
        w.leaf("descr", "System Administrator");
        w.leaf("scope", "system");
        w.leaf("groupname", "admins");
        w.leaf("uid", "0");
        w.close();
        w.open("webgui", &[]);
        w.leaf("protocol", "https");
        w.leaf("port", "443");
        // OPNsense's own anti-lockout opens the GUI and SSH on `lan` to anyone there
        // (here: a whole internal segment); the rules below admit only the admin
        // CIDRs and Tailscale, first.
        w.leaf("noantilockout", "1");
        w.close();
        w.open("ssh", &[]);
        w.leaf("enabled", "enabled");
        w.leaf("group", "admins");
        w.leaf("permitrootlogin", "1");
        w.close();
        w.leaf("usevirtualterminal", "1");
        w.close();
    }

    fn interfaces(&self, w: &mut Writer) {
        w.open("interfaces", &[]);
        for l in &self.links {
            w.open(&l.key, &[]);
            w.leaf("enable", "1");
            w.leaf("if", &l.device);
            w.leaf("descr", &l.name);
            match l.address {
                Some(a) => {
                    w.leaf("ipaddr", &a.0.addr().to_string());
                    w.leaf("subnet", &a.0.prefix_len().to_string());
                }
                None => w.leaf("ipaddr", "dhcp"),
            }
            if l.role == Role::Wan {
                // Upstream is the home LAN (private addresses): blocking private
                // sources there would cut the declared LAN → segment flows.
                w.leaf("blockpriv", "0");
                w.leaf("blockbogons", "1");
            }
            w.close();
        }
        w.close();
    }

    fn dhcp(&self, w: &mut Writer) {
        let served: Vec<&Link> = self
            .links
            .iter()
            .filter(|l| l.dhcp_range.is_some())
            .collect();
        if served.is_empty() {
            return;
        }
        w.open("dnsmasq", &[]);
        w.leaf("enable", "1");
        // Unbound answers DNS on 53; dnsmasq only hands out leases.
        w.leaf("port", "53053");
        w.leaf(
            "interface",
            &served
                .iter()
                .map(|l| l.key.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
        for l in served {
            if let Some((start, end)) = l.dhcp_range {
                w.open("dhcp_ranges", &[]);
                w.leaf("interface", &l.key);
                w.leaf("start_addr", &start.to_string());
                w.leaf("end_addr", &end.to_string());
                w.close();
            }
        }
        w.close();
    }
}
