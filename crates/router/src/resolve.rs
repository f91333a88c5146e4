//! What the names of the segment matrix stand for at one phase: segments, the admin
//! CIDRs (`management`), the Tailscale range, the node, VMs, aliases and CIDRs — their
//! addresses and the segment (zone) they sit in.

use ipnet::IpNet;
use labwright_spec::model::{Segment, Vm};
use labwright_spec::types::Cidr;
use labwright_spec::{Spec, YamlPath};

use crate::error::CompileError;
use crate::model::Host;

/// Where an endpoint sits, as the router sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Zone {
    /// On this segment (one bridge).
    Segment(String),
    /// On the tailnet.
    Tailnet,
    /// Outside every declared segment.
    Outside,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    Segment,
    Management,
    Tailscale,
    Node,
    /// A VM; `leased`: it has no fixed address, `nets` is its whole segment.
    Vm {
        leased: bool,
    },
    /// A firewall alias or a literal CIDR.
    Named,
}

/// A matrix name resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub kind: EndpointKind,
    pub nets: Vec<Cidr>,
    pub zone: Zone,
}

/// The spec seen at one phase.
pub(crate) struct World<'a> {
    pub spec: &'a Spec,
    pub phase: u8,
}

/// The host address of a CIDR (`192.168.1.10/24` → `192.168.1.10/32`).
pub(crate) fn host(c: Cidr) -> Cidr {
    Cidr(IpNet::from(c.0.addr()))
}

/// The network of a CIDR (`10.10.10.1/24` → `10.10.10.0/24`).
pub(crate) fn network(c: Cidr) -> Cidr {
    Cidr(c.0.trunc())
}

pub(crate) fn contains(outer: Cidr, inner: Cidr) -> bool {
    outer.0.contains(&inner.0)
}

impl<'a> World<'a> {
    pub fn new(spec: &'a Spec, phase: u8) -> Self {
        World { spec, phase }
    }

    /// Segments that exist at this phase, in name order.
    pub fn segments(&self) -> impl Iterator<Item = (&'a String, &'a Segment)> + '_ {
        self.spec
            .networks
            .segments
            .iter()
            .filter(|(_, s)| s.phase.0 <= self.phase)
    }

    pub fn known_segments(&self) -> String {
        let names: Vec<&str> = self
            .spec
            .networks
            .segments
            .keys()
            .map(String::as_str)
            .collect();
        if names.is_empty() {
            "none (declare them under networks.segments)".into()
        } else {
            names.join(", ")
        }
    }

    /// The live segment `name`, or why not.
    pub fn segment(&self, name: &str, path: &YamlPath) -> Result<&'a Segment, CompileError> {
        let Some(s) = self.spec.networks.segments.get(name) else {
            return Err(CompileError::UnknownSegment {
                path: path.clone(),
                name: name.to_string(),
                known: self.known_segments(),
            });
        };
        if s.phase.0 > self.phase {
            return Err(CompileError::NotInPhase {
                path: path.clone(),
                name: name.to_string(),
                its_phase: s.phase.0,
                phase: self.phase,
            });
        }
        Ok(s)
    }

    /// The live segment holding every one of `nets`.
    pub fn zone_of(&self, nets: &[Cidr]) -> Zone {
        if nets.is_empty() {
            return Zone::Outside;
        }
        self.segments()
            .find(|(_, s)| nets.iter().all(|n| contains(network(s.cidr), *n)))
            .map_or(Zone::Outside, |(n, _)| Zone::Segment(n.clone()))
    }

    fn vm_index(&self, name: &str) -> Option<(usize, &'a Vm)> {
        self.spec
            .vms
            .iter()
            .enumerate()
            .find(|(_, v)| v.name == name)
    }

    /// Where VM `name` sits at this phase: its first NIC (slot order) on a live
    /// segment's bridge, with the NIC's fixed address if it has one.
    pub fn vm_host(&self, name: &str, path: &YamlPath) -> Result<Host, CompileError> {
        let Some((i, vm)) = self.vm_index(name) else {
            return Err(CompileError::UnknownVm {
                path: path.clone(),
                name: name.to_string(),
            });
        };
        if vm.phase.0 > self.phase {
            return Err(CompileError::NotInPhase {
                path: path.clone(),
                name: name.to_string(),
                its_phase: vm.phase.0,
                phase: self.phase,
            });
        }
        let vm_path = YamlPath::root().key("vms").index(i);
        let phase = labwright_spec::model::Phase(self.phase);
        for (slot, nic) in &vm.nics {
            let bridge = nic.bridge_in(phase);
            let Some((seg_name, seg)) = self.segments().find(|(_, s)| s.bridge == bridge) else {
                continue;
            };
            let nic_path = vm_path.key("nics").key(slot.as_str());
            let address = match nic.address {
                Some(a) => {
                    if !contains(network(seg.cidr), host(a)) {
                        let moved = nic
                            .reattach
                            .as_ref()
                            .filter(|r| r.phase <= phase)
                            .map(|r| {
                                format!(" (the NIC moves to {} in phase {})", r.bridge, r.phase.0)
                            })
                            .unwrap_or_default();
                        return Err(CompileError::AddressOutsideSegment {
                            path: nic_path.key("address"),
                            address: format!("{a}{moved}"),
                            segment: seg_name.clone(),
                            cidr: seg.cidr.to_string(),
                        });
                    }
                    Some(a.0.addr())
                }
                None => None,
            };
            return Ok(Host {
                name: vm.name.clone(),
                segment: seg_name.clone(),
                address,
                origin: nic_path,
            });
        }
        let nics: Vec<String> = vm
            .nics
            .iter()
            .map(|(slot, n)| format!("{slot} on {}", n.bridge_in(phase)))
            .collect();
        Err(CompileError::NoAddress {
            path: path.clone(),
            vm: name.to_string(),
            phase: self.phase,
            reason: if nics.is_empty() {
                "it has no NIC".into()
            } else {
                format!(
                    "none of its NICs ({}) is on the bridge of a segment declared for this phase; attach it to a segment's bridge",
                    nics.join(", ")
                )
            },
        })
    }

    /// Where the node sits (its management address).
    pub fn node_host(&self, path: &YamlPath) -> Result<Host, CompileError> {
        let Some(addr) = self.spec.node.address else {
            return Err(CompileError::NodeWithoutAddress { path: path.clone() });
        };
        let zone = self.zone_of(&[host(addr)]);
        let Zone::Segment(segment) = zone else {
            return Err(CompileError::NotBehindRouter {
                path: YamlPath::root().key("node").key("address"),
                name: "node".into(),
                nets: addr.to_string(),
            });
        };
        Ok(Host {
            name: "node".into(),
            segment,
            address: Some(addr.0.addr()),
            origin: YamlPath::root().key("node").key("address"),
        })
    }

    fn known_endpoints(&self) -> String {
        let mut names: Vec<String> = self.spec.networks.segments.keys().cloned().collect();
        names.extend(["management", "tailscale", "node"].map(String::from));
        names.extend(self.spec.vms.iter().map(|v| v.name.clone()));
        if let Some(f) = &self.spec.firewall {
            names.extend(f.aliases.keys().cloned());
        }
        names.join(", ")
    }

    /// Resolves a matrix name (`from`/`to` of a flow) found at `path`.
    pub fn endpoint(&self, name: &str, path: &YamlPath) -> Result<Endpoint, CompileError> {
        let named = |kind: EndpointKind, nets: Vec<Cidr>| {
            let zone = self.zone_of(&nets);
            Endpoint {
                name: name.to_string(),
                kind,
                nets,
                zone,
            }
        };
        if self.spec.networks.segments.contains_key(name) {
            let s = self.segment(name, path)?;
            return Ok(Endpoint {
                name: name.to_string(),
                kind: EndpointKind::Segment,
                nets: vec![network(s.cidr)],
                zone: Zone::Segment(name.to_string()),
            });
        }
        match name {
            "management" => {
                let cidrs = &self.spec.safety_guards.management_access_cidrs;
                if cidrs.is_empty() {
                    return Err(CompileError::NoManagementCidrs { path: path.clone() });
                }
                return Ok(named(
                    EndpointKind::Management,
                    cidrs.iter().map(|c| network(*c)).collect(),
                ));
            }
            "tailscale" => {
                return Ok(Endpoint {
                    name: name.to_string(),
                    kind: EndpointKind::Tailscale,
                    nets: vec![network(self.spec.safety_guards.tailscale_range())],
                    zone: Zone::Tailnet,
                });
            }
            "node" => {
                let h = self.node_host(path)?;
                let nets = h
                    .address
                    .map(|a| Cidr(IpNet::from(a)))
                    .into_iter()
                    .collect();
                return Ok(Endpoint {
                    name: name.to_string(),
                    kind: EndpointKind::Node,
                    nets,
                    zone: Zone::Segment(h.segment),
                });
            }
            _ => {}
        }
        if self.vm_index(name).is_some() {
            let h = self.vm_host(name, path)?;
            let seg = self.segment(&h.segment, path)?;
            let (nets, leased) = match h.address {
                Some(a) => (vec![Cidr(IpNet::from(a))], false),
                None => (vec![network(seg.cidr)], true),
            };
            return Ok(Endpoint {
                name: name.to_string(),
                kind: EndpointKind::Vm { leased },
                nets,
                zone: Zone::Segment(h.segment),
            });
        }
        let alias = self
            .spec
            .firewall
            .as_ref()
            .and_then(|f| f.aliases.get(name).copied());
        if let Some(c) = alias.or_else(|| name.parse::<Cidr>().ok()) {
            return Ok(named(EndpointKind::Named, vec![network(c)]));
        }
        Err(CompileError::UnknownEndpoint {
            path: path.clone(),
            name: name.to_string(),
            known: self.known_endpoints(),
        })
    }
}

/// True when every net of `inner` lies in some net of `outer`.
pub(crate) fn all_within(inner: &[Cidr], outer: &[Cidr]) -> bool {
    !inner.is_empty() && inner.iter().all(|i| outer.iter().any(|o| contains(*o, *i)))
}
