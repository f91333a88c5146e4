//! Every element a spec declares, with its path, kind, label and phase: the one list
//! the planner accounts for (nothing declared is silently dropped) and the one place
//! "deferred" is computed.

use serde::Serialize;

use crate::Spec;
use crate::model::{BackupJob, Phase};
use crate::path::YamlPath;

/// What a declared element is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElementKind {
    Vm,
    Disk,
    Nic,
    /// A NIC's move to another bridge from a later phase on.
    Reattach,
    VmFirewallAllow,
    Segment,
    Bridge,
    BackupJob,
    ZfsPool,
    Dataset,
    StorageEntry,
    Migration,
    FirewallOptions,
    FirewallRule,
    FirewallAlias,
    FirewallIpset,
    SecurityGroup,
    Matrix,
    MatrixFlow,
    TailscaleRoute,
    Router,
    RouterInterface,
    PortForward,
    ValidationCheck,
    PciMapping,
    /// A passed-through PCI device of a VM (`hostpciN`).
    HostPci,
}

/// One declared element.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Element {
    /// Where it is declared (`vms[0].nics.net0`): diagnostics and plans point here.
    pub path: YamlPath,
    pub kind: ElementKind,
    /// How plans name it (`VM 150 `firewall-router``, `bridge `vmbr1``).
    pub label: String,
    /// The phase it becomes active in.
    pub phase: Phase,
    /// The element it belongs to (a VM for its NICs), when there is one: a deferred
    /// parent defers its children with it.
    #[serde(skip)]
    pub parent: Option<YamlPath>,
}

impl Element {
    fn new(path: YamlPath, kind: ElementKind, label: String, phase: Phase) -> Self {
        Element {
            path,
            kind,
            label,
            phase,
            parent: None,
        }
    }
    fn under(mut self, parent: &YamlPath) -> Self {
        self.parent = Some(parent.clone());
        self
    }
}

impl Spec {
    /// The node the lab runs on. Every place that needs "the node" asks here, so more
    /// nodes can come without touching each caller.
    pub fn node_name(&self) -> &str {
        &self.node.name
    }

    /// The declared backup jobs (none when there is no `backups:` block).
    pub fn backup_jobs(&self) -> impl Iterator<Item = &BackupJob> {
        self.backups.iter().flat_map(|b| b.jobs.iter())
    }

    /// Every element the spec declares, in document order of its sections.
    pub fn elements(&self) -> Vec<Element> {
        use ElementKind as K;
        let root = YamlPath::root();
        let mut out = Vec::new();
        for (name, s) in &self.networks.segments {
            let p = root.key("networks").key("segments").key(name.clone());
            out.push(Element::new(
                p,
                K::Segment,
                format!("segment `{name}`"),
                s.phase,
            ));
        }
        for (name, b) in &self.networks.bridges {
            let p = root.key("networks").key("bridges").key(name.clone());
            out.push(Element::new(
                p,
                K::Bridge,
                format!("bridge `{name}`"),
                b.phase,
            ));
        }
        for (i, vm) in self.vms.iter().enumerate() {
            let vp = root.key("vms").index(i);
            let label = format!("VM {} `{}`", vm.vmid, vm.name);
            out.push(Element::new(vp.clone(), K::Vm, label, vm.phase));
            for slot in vm.disks.keys() {
                let p = vp.key("disks").key(slot.clone());
                let label = format!("{} {slot}", vm.name);
                out.push(Element::new(p, K::Disk, label, vm.phase).under(&vp));
            }
            for (slot, nic) in &vm.nics {
                let np = vp.key("nics").key(slot.clone());
                let label = format!("{} {slot} on {}", vm.name, nic.bridge);
                out.push(Element::new(np.clone(), K::Nic, label, vm.phase).under(&vp));
                if let Some(r) = &nic.reattach {
                    let label = format!("{} {slot} → {}", vm.name, r.bridge);
                    let phase = r.phase.max(vm.phase);
                    out.push(
                        Element::new(np.key("reattach"), K::Reattach, label, phase).under(&vp),
                    );
                }
            }
            for (slot, h) in &vm.hostpci {
                let p = vp.key("hostpci").key(slot.clone());
                let label = format!("{} {slot} → mapping `{}`", vm.name, h.mapping);
                out.push(Element::new(p, K::HostPci, label, vm.phase).under(&vp));
            }
            if let Some(fw) = &vm.firewall {
                for (j, a) in fw.allow.iter().enumerate() {
                    let p = vp.key("firewall").key("allow").index(j);
                    let label = format!("{} firewall: allow from {}", vm.name, a.from);
                    out.push(Element::new(p, K::VmFirewallAllow, label, vm.phase).under(&vp));
                }
            }
        }
        for (i, m) in self.pci_mappings.iter().enumerate() {
            let p = root.key("pciMappings").index(i);
            out.push(Element::new(
                p,
                K::PciMapping,
                format!("PCI mapping `{}`", m.id),
                Phase(0),
            ));
        }
        for (i, j) in self.backup_jobs().enumerate() {
            let p = root.key("backups").key("jobs").index(i);
            out.push(Element::new(
                p,
                K::BackupJob,
                format!("backup job `{}`", j.id),
                j.phase,
            ));
        }
        if let Some(st) = &self.storage {
            let sp = root.key("storage");
            for (i, x) in st.zfs_pools.iter().enumerate() {
                let p = sp.key("zfsPools").index(i);
                out.push(Element::new(
                    p,
                    K::ZfsPool,
                    format!("ZFS pool `{}`", x.name),
                    x.phase,
                ));
            }
            for (i, x) in st.datasets.iter().enumerate() {
                let p = sp.key("datasets").index(i);
                out.push(Element::new(
                    p,
                    K::Dataset,
                    format!("dataset `{}`", x.name),
                    x.phase,
                ));
            }
            for (i, x) in st.pve_storages.iter().enumerate() {
                let p = sp.key("pveStorages").index(i);
                let label = format!("storage `{}`", x.id);
                out.push(Element::new(p, K::StorageEntry, label, x.phase));
            }
            for (i, x) in st.migrations.iter().enumerate() {
                let p = sp.key("migrations").index(i);
                let label = format!("migration `{}`", x.name);
                out.push(Element::new(p, K::Migration, label, x.phase));
            }
        }
        if let Some(fw) = &self.firewall {
            let fp = root.key("firewall");
            for name in fw.aliases.keys() {
                let p = fp.key("aliases").key(name.clone());
                out.push(Element::new(
                    p,
                    K::FirewallAlias,
                    format!("alias `{name}`"),
                    Phase(0),
                ));
            }
            for name in fw.ipsets.keys() {
                let p = fp.key("ipsets").key(name.clone());
                out.push(Element::new(
                    p,
                    K::FirewallIpset,
                    format!("ipset `{name}`"),
                    Phase(0),
                ));
            }
            for (name, rules) in &fw.security_groups {
                let gp = fp.key("securityGroups").key(name.clone());
                let label = format!("security group `{name}`");
                out.push(Element::new(gp.clone(), K::SecurityGroup, label, Phase(0)));
                for (i, r) in rules.iter().enumerate() {
                    let label = format!("security group `{name}` rule `{}`", r.id);
                    out.push(
                        Element::new(gp.index(i), K::FirewallRule, label, Phase(0)).under(&gp),
                    );
                }
            }
            for (level, l) in [("datacenter", &fw.datacenter), ("node", &fw.node)] {
                let Some(l) = l else { continue };
                let lp = fp.key(level);
                let label = format!("{level} firewall options");
                out.push(Element::new(
                    lp.key("options"),
                    K::FirewallOptions,
                    label,
                    Phase(0),
                ));
                for (i, r) in l.rules.iter().enumerate() {
                    let label = format!("{level} firewall rule `{}`", r.id);
                    out.push(Element::new(
                        lp.key("rules").index(i),
                        K::FirewallRule,
                        label,
                        Phase(0),
                    ));
                }
            }
            if let Some(m) = &fw.matrix {
                let mp = fp.key("matrix");
                out.push(Element::new(
                    mp.clone(),
                    K::Matrix,
                    "segment matrix".into(),
                    m.phase,
                ));
                for (list, flows) in [("allow", &m.allow), ("deny", &m.deny)] {
                    for (i, f) in flows.iter().enumerate() {
                        let label = format!("matrix {list} {} → {}", f.from, f.to);
                        out.push(
                            Element::new(mp.key(list).index(i), K::MatrixFlow, label, m.phase)
                                .under(&mp),
                        );
                    }
                }
            }
        }
        if let Some(ts) = &self.tailscale {
            for (i, r) in ts.subnet_routes.iter().enumerate() {
                let p = root.key("tailscale").key("subnetRoutes").index(i);
                let label = format!("Tailscale route `{}` via {}", r.route, r.via);
                out.push(Element::new(p, K::TailscaleRoute, label, r.phase));
            }
        }
        if let Some(r) = &self.router {
            let rp = root.key("router");
            out.push(Element::new(
                rp.clone(),
                K::Router,
                format!("router `{}`", r.vm),
                r.phase,
            ));
            for name in r.interfaces.keys() {
                let p = rp.key("interfaces").key(name.clone());
                let label = format!("router interface `{name}`");
                out.push(Element::new(p, K::RouterInterface, label, r.phase).under(&rp));
            }
            for i in 0..r.port_forwards.len() {
                let p = rp.key("portForwards").index(i);
                let label = format!("router port forward #{}", i + 1);
                out.push(Element::new(p, K::PortForward, label, r.phase).under(&rp));
            }
        }
        for (i, c) in self.validation_checks.iter().enumerate() {
            let p = root.key("validationChecks").index(i);
            let label = format!("validation check `{}`", c.name);
            out.push(Element::new(
                p,
                K::ValidationCheck,
                label,
                c.phase.unwrap_or_default(),
            ));
        }
        out
    }

    /// Elements of a later phase than the lab's, named once each: children of a
    /// deferred element go with it.
    pub fn deferred(&self) -> Vec<Element> {
        deferred_of(&self.elements(), self.phase)
            .into_iter()
            .cloned()
            .collect()
    }
}

/// [`Spec::deferred`] over elements already listed (a plan lists them once).
pub fn deferred_of(all: &[Element], now: Phase) -> Vec<&Element> {
    let later: Vec<&Element> = all.iter().filter(|e| e.phase > now).collect();
    let paths: std::collections::HashSet<&YamlPath> = later.iter().map(|e| &e.path).collect();
    later
        .into_iter()
        .filter(|e| e.parent.as_ref().is_none_or(|p| !paths.contains(p)))
        .collect()
}
