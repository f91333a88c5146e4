//! The plan builder: each resource kind adds its actions and held items, in the order
//! of [`KINDS`], then every element the spec declares is accounted for (planned, held,
//! deferred or in place). The plan is data (serialisable), so it can be saved,
//! reviewed and applied later against the scan it was made from.

use std::collections::{BTreeMap, BTreeSet};

use labwright_spec::{ElementKind, Spec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::action::{
    Action, ActionId, ActionKind, BadRisk, Change, Held, JobStep, Risk, VmStep, vm_target,
};
pub use crate::op::Op;

use crate::desired::{Desired, desired};
use crate::firewall::ObservedFirewall;
use crate::observed::Observed;

/// Stands for the plan id in snapshot names until the id is computed.
const PLAN_ID_PLACEHOLDER: &str = "<plan-id>";

/// Version of the plan file format (2: ops grouped by kind, typed ids, elements).
pub const FORMAT_VERSION: u32 = 2;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub format_version: u32,
    pub id: String,
    pub lab: String,
    pub node: String,
    /// Fingerprint of the scan this plan was computed from.
    pub scan_fingerprint: String,
    /// VMIDs the spec declares (the fingerprint covers their state).
    pub declared_vmids: Vec<u32>,
    /// The spec file and its SHA-256, for saved plans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_sha256: Option<String>,
    pub actions: Vec<Action>,
    /// Later-phase elements: listed, not applied.
    pub deferred: Vec<String>,
    /// Held: declared and active, not done this time (a safety guard, a missing
    /// dependency, not supported yet), each with its reason and the way out.
    pub held: Vec<Held>,
    /// Guests and jobs on the node that the spec does not declare (left alone).
    pub foreign: Vec<String>,
    /// Drift and other findings worth reading.
    pub notes: Vec<String>,
    /// Firewall lockout proof; present when the spec declares a firewall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<crate::firewall::FirewallReport>,
    /// What became of every element the spec declares.
    #[serde(default)]
    pub elements: Vec<ElementState>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
    pub fn max_risk(&self) -> Option<Risk> {
        self.actions.iter().map(|a| a.risk).max()
    }
}

/// One declared element and what the plan does with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElementState {
    /// Where the spec declares it (`storage.zfsPools[0]`).
    pub path: String,
    pub kind: String,
    pub label: String,
    pub status: ElementStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElementStatus {
    /// One or more actions carry it out.
    Planned,
    /// Listed under `held` with the reason and the way out.
    Held,
    /// Of a later phase.
    Deferred,
    /// Managed by a kind and already as declared.
    InPlace,
}

/// What a kind reads to plan: the spec, its desired state, and the scan.
pub struct PlanCx<'a> {
    pub spec: &'a Spec,
    pub want: &'a Desired,
    pub observed: &'a Observed,
    /// The node's firewall, when the spec declares one and it was read.
    pub firewall: Option<&'a ObservedFirewall>,
    /// Names pre-change snapshots (`lw-<tag>`).
    pub plan_tag: &'a str,
    /// Every element the spec declares (computed once per plan).
    pub elements: &'a [labwright_spec::Element],
    /// The spec path of each declared VM (`vms[2]`), by VMID.
    pub vm_paths: &'a BTreeMap<u32, String>,
}

impl PlanCx<'_> {
    /// The spec path of VM `vmid`, as the element its actions carry out.
    pub fn vm_elements(&self, vmid: u32) -> Vec<String> {
        self.vm_paths.get(&vmid).cloned().into_iter().collect()
    }
}

/// The spec path of every declared VM, by VMID.
pub fn vm_paths(spec: &Spec) -> BTreeMap<u32, String> {
    spec.vms
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (
                v.vmid,
                labwright_spec::YamlPath::root()
                    .key("vms")
                    .index(i)
                    .to_string(),
            )
        })
        .collect()
}

/// What a kind adds to a plan.
#[derive(Default)]
pub struct PlanOut {
    pub actions: Vec<Action>,
    pub held: Vec<Held>,
    pub notes: Vec<String>,
    pub foreign: Vec<String>,
    pub firewall: Option<crate::firewall::FirewallReport>,
    /// Element paths a kind manages (in place unless an action or a held item
    /// names them).
    pub owned: BTreeSet<String>,
}

impl PlanOut {
    /// The kind manages the element at `path`.
    pub fn own(&mut self, path: impl ToString) {
        self.owned.insert(path.to_string());
    }
}

/// One resource kind, as the plan builder sees it.
pub(crate) struct Kind {
    /// For the log (`-vvv` shows each kind as it plans).
    pub name: &'static str,
    /// desired → diff → actions (with their API calls) or held items.
    pub plan: fn(&PlanCx<'_>, &mut PlanOut),
}

/// Every kind, in planning order: later kinds see the actions of earlier ones (guest
/// bootstrap edits VM creates; backup jobs and firewall objects wait for the VMs they
/// name; the host network holds what needs a bridge the node lacks).
pub(crate) const KINDS: &[Kind] = &[
    Kind {
        name: "zfs pool",
        plan: crate::storage::pool::plan,
    },
    Kind {
        name: "zfs dataset",
        plan: crate::storage::dataset::plan,
    },
    Kind {
        name: "storage entry",
        plan: crate::storage::entry::plan,
    },
    Kind {
        name: "directory mapping",
        plan: crate::storage::migrate::plan_mappings,
    },
    Kind {
        name: "pci mapping",
        plan: crate::pci::plan,
    },
    Kind {
        name: "vm",
        plan: crate::vm::diff::plan,
    },
    Kind {
        name: "guest bootstrap",
        plan: crate::bootstrap::plan,
    },
    Kind {
        name: "backup job",
        plan: crate::backup_job::plan,
    },
    Kind {
        name: "data migration",
        plan: crate::storage::migrate::plan,
    },
    Kind {
        name: "firewall",
        plan: crate::firewall::plan,
    },
    Kind {
        name: "bridges",
        plan: crate::bridge::plan,
    },
    Kind {
        name: "host network",
        plan: crate::network::plan,
    },
    // After the host network: the router's seed and gate go with a router VM that
    // is still planned once guests needing a missing bridge were held.
    Kind {
        name: "router",
        plan: crate::router::plan,
    },
    Kind {
        name: "not supported yet",
        plan: crate::unsupported::plan,
    },
];

/// Computes the plan of `spec` against `observed` (no firewall read).
pub fn plan(spec: &Spec, observed: &Observed) -> Plan {
    plan_with_firewall(spec, observed, None)
}

/// [`plan`] with the node's firewall, when the spec declares one.
pub fn plan_with_firewall(spec: &Spec, observed: &Observed, fw: Option<&ObservedFirewall>) -> Plan {
    let want = desired(spec);
    let declared: BTreeSet<u32> = want.vms.keys().copied().collect();
    let fingerprint = observed.fingerprint(&declared);
    // Snapshot names carry the plan id (`lw-<plan id>`), which hashes the actions:
    // they are planned with a placeholder, replaced once the id is known.
    let plan_tag = PLAN_ID_PLACEHOLDER.to_string();
    let elements = spec.elements();
    let paths = vm_paths(spec);
    let cx = PlanCx {
        spec,
        want: &want,
        observed,
        firewall: fw,
        plan_tag: &plan_tag,
        elements: &elements,
        vm_paths: &paths,
    };
    let mut out = PlanOut::default();
    for k in KINDS {
        tracing::trace!(kind = k.name, "planning");
        (k.plan)(&cx, &mut out);
    }
    out.actions = in_dependency_order(std::mem::take(&mut out.actions));
    let states = account(&cx, &mut out);
    let deferred = labwright_spec::elements::deferred_of(&elements, spec.phase)
        .iter()
        .map(|e| format!("{} (phase {})", e.label, e.phase.0))
        .collect();
    let mut plan = Plan {
        format_version: FORMAT_VERSION,
        id: String::new(),
        lab: spec.metadata.name.clone(),
        node: spec.node_name().to_string(),
        scan_fingerprint: crate::firewall::combined_fingerprint(&fingerprint, fw),
        declared_vmids: declared.iter().copied().collect(),
        spec_path: None,
        spec_sha256: None,
        actions: out.actions,
        deferred,
        held: out.held,
        foreign: out.foreign,
        notes: out.notes,
        firewall: out.firewall,
        elements: states,
    };
    for a in &mut plan.actions {
        a.api_calls = a.op.api_calls();
    }
    let mut h = Sha256::new();
    h.update(plan.scan_fingerprint.as_bytes());
    h.update(serde_json::to_vec(&plan.actions).unwrap_or_default());
    plan.id = hex::encode(&h.finalize()[..4]);
    let real = plan.id.clone();
    let fill = |s: &mut String| {
        if s.contains(PLAN_ID_PLACEHOLDER) {
            *s = s.replace(PLAN_ID_PLACEHOLDER, &real);
        }
    };
    for a in &mut plan.actions {
        if let Some(s) = a.pre_snapshot.as_mut() {
            fill(s);
        }
        fill(&mut a.rollback_hint);
        fill(&mut a.reason);
        fill(&mut a.expected_downtime);
    }
    plan
}

/// The actions in an order that runs each after what it depends on (kinds may add
/// a dependency on a later kind's action: the router gate before a reattachment),
/// otherwise as planned. A cycle keeps the planned order for what is left; the
/// executor refuses it.
fn in_dependency_order(actions: Vec<Action>) -> Vec<Action> {
    let index: BTreeMap<String, usize> = actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.to_string(), i))
        .collect();
    let n = actions.len();
    let mut waiting = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, a) in actions.iter().enumerate() {
        let mut deps: Vec<usize> = a
            .depends_on
            .iter()
            .filter_map(|d| index.get(&d.to_string()).copied())
            .filter(|&d| d != i)
            .collect();
        deps.sort_unstable();
        deps.dedup();
        waiting[i] = deps.len();
        for d in deps {
            dependents[d].push(i);
        }
    }
    // Ready actions, earliest planned first.
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.insert(j);
            }
        }
    }
    let mut done = vec![false; n];
    for &i in &order {
        done[i] = true;
    }
    order.extend((0..n).filter(|&i| !done[i]));
    let mut slots: Vec<Option<Action>> = actions.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Every declared element gets a status. An element no kind manages is held as "not
/// supported yet" here, so a kind missing from [`KINDS`] shows up in the plan instead
/// of vanishing from it.
fn account(cx: &PlanCx<'_>, out: &mut PlanOut) -> Vec<ElementState> {
    let spec = cx.spec;
    let in_actions: BTreeSet<String> = out
        .actions
        .iter()
        .flat_map(|a| a.elements.iter().cloned())
        .collect();
    let mut in_held: BTreeSet<String> = out
        .held
        .iter()
        .flat_map(|h| h.elements.iter().cloned())
        .collect();
    // Each path printed once.
    let keys: Vec<(String, Option<String>)> = cx
        .elements
        .iter()
        .map(|e| {
            (
                e.path.to_string(),
                e.parent.as_ref().map(ToString::to_string),
            )
        })
        .collect();
    let deferred: BTreeSet<&str> = cx
        .elements
        .iter()
        .zip(&keys)
        .filter(|(e, _)| e.phase > spec.phase)
        .map(|(_, k)| k.0.as_str())
        .collect();
    let mut states = Vec::new();
    for (e, (path, parent)) in cx.elements.iter().zip(&keys) {
        let path = path.clone();
        let parent_deferred = parent.as_deref().is_some_and(|p| deferred.contains(p));
        let status = if deferred.contains(path.as_str()) || parent_deferred {
            ElementStatus::Deferred
        } else if in_held.contains(&path) {
            ElementStatus::Held
        } else if in_actions.contains(&path) {
            ElementStatus::Planned
        } else if parent.as_ref().is_some_and(|p| in_held.contains(p)) {
            // A held VM holds its disks, NICs and allow entries with it.
            ElementStatus::Held
        } else if out.owned.contains(&path)
            || parent.as_ref().is_some_and(|p| out.owned.contains(p))
        {
            // A VM's disks and NICs go with the VM.
            match parent {
                Some(p) if in_actions.contains(p) => ElementStatus::Planned,
                _ => ElementStatus::InPlace,
            }
        } else {
            let mut h = Held::new(
                e.label.clone(),
                format!(
                    "{} is not managed by this version of labwright (not supported yet); nothing is done about it",
                    kind_words(e.kind)
                ),
                "set it up by hand on the node for now; labwright will report it once it manages this kind",
            );
            h.elements.push(path.clone());
            out.held.push(h);
            in_held.insert(path.clone());
            ElementStatus::Held
        };
        states.push(ElementState {
            path,
            kind: crate::canon::enum_name(&e.kind),
            label: e.label.clone(),
            status,
        });
    }
    states
}

/// "a ZFS pool", "a bridge": how a held item names a kind.
pub(crate) fn kind_words(k: ElementKind) -> &'static str {
    use ElementKind as K;
    match k {
        K::Vm => "a VM",
        K::Disk => "a disk",
        K::Nic => "a NIC",
        K::Reattach => "a NIC reattachment",
        K::VmFirewallAllow => "a VM firewall allow entry",
        K::Segment => "a segment",
        K::Bridge => "a bridge",
        K::BackupJob => "a backup job",
        K::ZfsPool => "a ZFS pool",
        K::Dataset => "a ZFS dataset",
        K::StorageEntry => "a PVE storage entry",
        K::Migration => "a data migration",
        K::FirewallOptions => "firewall options",
        K::FirewallRule => "a firewall rule",
        K::FirewallAlias => "a firewall alias",
        K::FirewallIpset => "a firewall ipset",
        K::SecurityGroup => "a security group",
        K::Matrix => "the segment matrix",
        K::MatrixFlow => "a segment-matrix flow",
        K::TailscaleRoute => "a Tailscale subnet route",
        K::Router => "the router",
        K::RouterInterface => "a router interface",
        K::PortForward => "a port forward",
        K::ValidationCheck => "a validation check",
        K::PciMapping => "a PCI mapping",
        K::HostPci => "a passed-through PCI device",
    }
}
