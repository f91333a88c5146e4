//! Names in the context of one node or guest: aliases, ipsets, security
//! groups, `local_network` and the built-in `management` and `blacklist`
//! sets — each looked up the way the backend does.
//!
//! The backends agree on aliases (both lower-case alias names and the
//! names rules use) and disagree on ipsets and groups: `pve-firewall`
//! lower-cases the *defined* name only, so `[IPSET Management]` is the
//! management set and `+Management` in a rule names nothing;
//! `proxmox-firewall` keeps the case on both sides, so `[IPSET Management]`
//! is a set of its own that the built-in management accept never reads.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

use crate::addr::{AddressRef, Interval, Scope};
use crate::eval::Backend;
use crate::model::{Alias, FirewallConfig, GuestFirewall, Ipset, IpsetTarget, SecurityGroup};

/// One resolved ipset entry.
#[derive(Debug, Clone)]
pub(crate) struct SetEntry {
    pub(crate) iv: Interval,
    pub(crate) nomatch: bool,
    pub(crate) label: String,
}

/// Membership with the backend's `nomatch` semantics: iptables' hash:net
/// lets the most specific entry decide; nftables keeps a separate
/// nomatch set that excludes regardless of specificity.
pub(crate) fn set_lookup(entries: &[SetEntry], ip: IpAddr, backend: Backend) -> Option<String> {
    match backend {
        Backend::Iptables => {
            let mut best: Option<&SetEntry> = None;
            for e in entries.iter().filter(|e| e.iv.contains(ip)) {
                let better = match best {
                    None => true,
                    Some(b) => {
                        let (size, bsize) = (e.iv.hi - e.iv.lo, b.iv.hi - b.iv.lo);
                        size < bsize || (size == bsize && e.nomatch && !b.nomatch)
                    }
                };
                if better {
                    best = Some(e);
                }
            }
            best.filter(|e| !e.nomatch).map(|e| e.label.clone())
        }
        Backend::Nftables => {
            if entries.iter().any(|e| e.nomatch && e.iv.contains(ip)) {
                return None;
            }
            entries
                .iter()
                .find(|e| !e.nomatch && e.iv.contains(ip))
                .map(|e| e.label.clone())
        }
    }
}

/// Aliases: case-insensitive on both backends.
fn find_alias<'a>(map: &'a BTreeMap<String, Alias>, name: &str) -> Option<&'a Alias> {
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The definition a reference `name` reaches in `map` (ipsets, groups):
/// pve-firewall compares the name as written with the lower-cased defined
/// names; proxmox-firewall compares them as written.
pub(crate) fn find_named<'a, V>(
    map: &'a BTreeMap<String, V>,
    name: &str,
    backend: Backend,
) -> Option<&'a V> {
    match backend {
        Backend::Nftables => map.get(name),
        // When two definitions fold to the same name, pve-firewall keeps
        // the one it read last; the map cannot say which, so take the last
        // in key order (the lower-case spelling, if present).
        Backend::Iptables => map
            .iter()
            .filter(|(k, _)| k.to_ascii_lowercase() == name)
            .map(|(_, v)| v)
            .next_back(),
    }
}

/// The definition the backend's *built-in* use of a set name reaches
/// (`management`, `blacklist`): any case on pve-firewall (it lower-cases
/// definitions), exactly that name on proxmox-firewall.
fn find_builtin<'a>(
    map: &'a BTreeMap<String, Ipset>,
    name: &str,
    backend: Backend,
) -> Option<&'a Ipset> {
    find_named(map, name, backend)
}

/// Name lookups and membership tests in the context of one node or guest.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) cfg: &'a FirewallConfig,
    pub(crate) backend: Backend,
    pub(crate) node: Option<&'a str>,
    pub(crate) guest: Option<&'a GuestFirewall>,
}

impl<'a> Ctx<'a> {
    /// `local_network`: the user's alias (any case), else the network of
    /// the node's address its hostname resolves to (the first one) —
    /// pve-firewall takes the route holding that address, proxmox-firewall
    /// every interface network holding it; PVE falls back to 127.0.0.0/8
    /// when it cannot tell.
    pub(crate) fn local_network(&self) -> Vec<Interval> {
        if let Some(a) = find_alias(&self.cfg.cluster.aliases, "local_network") {
            return vec![a.cidr.interval()];
        }
        let addrs: &[IpNet] = self
            .node
            .and_then(|n| self.cfg.nodes.get(n))
            .map(|h| h.network.addrs.as_slice())
            .unwrap_or(&[]);
        let nets: Vec<Interval> = match (self.backend, addrs.first()) {
            (_, None) => Vec::new(),
            (Backend::Iptables, Some(first)) => vec![Interval::of_net(&first.trunc())],
            (Backend::Nftables, Some(first)) => {
                let mut v: Vec<Interval> = addrs
                    .iter()
                    .map(|a| Interval::of_net(&a.trunc()))
                    .filter(|iv| iv.contains(first.addr()))
                    .collect();
                v.dedup();
                v
            }
        };
        if nets.is_empty() {
            vec![loopback_v4()]
        } else {
            nets
        }
    }

    /// Resolve an alias as a rule of this context would (guest first).
    pub(crate) fn alias_ivs(&self, scope: Scope, name: &str) -> Result<Vec<Interval>, String> {
        self.alias(scope, name, true)
    }

    /// An alias. Neither backend makes one up: `local_network` in a rule
    /// works only when the user defined that alias.
    fn alias(&self, scope: Scope, name: &str, guest_first: bool) -> Result<Vec<Interval>, String> {
        let guest_alias: Option<&Alias> = match (scope, self.guest) {
            (Scope::Auto | Scope::Guest, Some(g)) if guest_first || scope == Scope::Guest => {
                find_alias(&g.aliases, name)
            }
            _ => None,
        };
        if let Some(a) = guest_alias {
            return Ok(vec![a.cidr.interval()]);
        }
        match scope {
            Scope::Guest => return Err(format!("no such alias 'guest/{name}'")),
            Scope::Sdn => return Err(format!("sdn alias '{name}' is not modelled")),
            Scope::Auto | Scope::Dc => {}
        }
        if let Some(a) = find_alias(&self.cfg.cluster.aliases, name) {
            return Ok(vec![a.cidr.interval()]);
        }
        Err(format!("no such alias '{name}'"))
    }

    /// A security group a GROUP rule names.
    pub(crate) fn group(&self, name: &str) -> Option<&'a SecurityGroup> {
        find_named(&self.cfg.cluster.groups, name, self.backend)
    }

    /// The set a rule's `+name` reaches. A user's `management` set is
    /// extended with `local_network` (both backends generate it that way);
    /// without one, `+management` names nothing.
    pub(crate) fn ipset(&self, scope: Scope, name: &str) -> Result<Vec<SetEntry>, String> {
        let guest_set: Option<&Ipset> = match (scope, self.guest) {
            (Scope::Auto | Scope::Guest, Some(g)) => find_named(&g.ipsets, name, self.backend),
            _ => None,
        };
        if let Some(set) = guest_set {
            return Ok(self.resolve_set(set, true));
        }
        match scope {
            Scope::Guest => return Err(format!("no such ipset 'guest/{name}'")),
            Scope::Sdn => return Err(format!("sdn ipset '{name}' is not modelled")),
            Scope::Auto | Scope::Dc => {}
        }
        let Some(set) = find_named(&self.cfg.cluster.ipsets, name, self.backend) else {
            return Err(self.no_such_ipset(name));
        };
        let mut entries = self.resolve_set(set, false);
        if name == "management" {
            self.push_local_network(&mut entries);
        }
        Ok(entries)
    }

    fn no_such_ipset(&self, name: &str) -> String {
        let other = self
            .cfg
            .cluster
            .ipsets
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name));
        match (other, self.backend) {
            (Some(k), Backend::Iptables) => format!(
                "no such ipset '{name}' (pve-firewall lower-cases the defined name to '{}'; a reference must be spelled that way)",
                k.to_ascii_lowercase()
            ),
            (Some(k), Backend::Nftables) => {
                format!("no such ipset '{name}' (proxmox-firewall keeps case: the set is '{k}')")
            }
            (None, _) => format!("no such ipset '{name}'"),
        }
    }

    fn push_local_network(&self, entries: &mut Vec<SetEntry>) {
        for iv in self.local_network() {
            entries.push(SetEntry {
                iv,
                nomatch: false,
                label: format!("local_network {iv}"),
            });
        }
    }

    /// The set behind the built-in management accept: the user's
    /// `management` set (as the backend finds it) plus `local_network`.
    pub(crate) fn management_set(&self) -> Vec<SetEntry> {
        let mut entries = find_builtin(&self.cfg.cluster.ipsets, "management", self.backend)
            .map(|s| self.resolve_set(s, false))
            .unwrap_or_default();
        self.push_local_network(&mut entries);
        entries
    }

    /// The datacenter `blacklist` set, which only pve-firewall applies
    /// (proxmox-firewall generates no blacklist rule).
    pub(crate) fn blacklist_set(&self) -> Option<Vec<SetEntry>> {
        if self.backend == Backend::Nftables {
            return None;
        }
        find_builtin(&self.cfg.cluster.ipsets, "blacklist", self.backend)
            .map(|s| self.resolve_set(s, false))
    }

    /// The entries of a set; an entry naming a missing alias is left out
    /// (pve-firewall drops it; proxmox-firewall refuses the whole ruleset,
    /// which [`crate::backend_issues`] reports).
    fn resolve_set(&self, set: &Ipset, guest_owned: bool) -> Vec<SetEntry> {
        let mut out = Vec::with_capacity(set.entries.len());
        for e in &set.entries {
            match &e.target {
                IpsetTarget::Addr(a) => out.push(SetEntry {
                    iv: a.interval(),
                    nomatch: e.nomatch,
                    label: e.to_string(),
                }),
                IpsetTarget::Alias { scope, name } => {
                    for iv in self.alias(*scope, name, guest_owned).unwrap_or_default() {
                        out.push(SetEntry {
                            iv,
                            nomatch: e.nomatch,
                            label: e.to_string(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Whether `ip` matches an address spec. `Err` means the reference
    /// does not resolve; PVE then ignores the whole rule.
    pub(crate) fn addr_match(&self, aref: &AddressRef, ip: IpAddr) -> Result<bool, String> {
        match aref {
            AddressRef::List { entries } => Ok(entries.iter().any(|e| e.interval().contains(ip))),
            AddressRef::Range { start, end } => Ok(Interval::range(*start, *end).contains(ip)),
            AddressRef::Alias { scope, name } => Ok(self
                .alias(*scope, name, true)?
                .iter()
                .any(|iv| iv.contains(ip))),
            AddressRef::Ipset { scope, name } => {
                Ok(set_lookup(&self.ipset(*scope, name)?, ip, self.backend).is_some())
            }
        }
    }
}

pub(crate) fn loopback_v4() -> Interval {
    Interval::of_net(&IpNet::V4(Ipv4Net::new_assert(
        Ipv4Addr::new(127, 0, 0, 0),
        8,
    )))
}

pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    loopback_v4().contains(ip) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
}
