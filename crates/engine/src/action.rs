//! The vocabulary of a plan: an *action* (one unit of work with its risk, downtime,
//! pre-snapshot and rollback hint), its typed id and kind, the changes it makes, and
//! the *held* items it will not do. Kinds build actions through these types only, so
//! no module finds another's work by formatting an id string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::canon::Effect;
use crate::op::Op;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        })
    }
}

/// A word that is not a risk level.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a risk level (low, medium, high, critical)")]
pub struct BadRisk(pub String);

impl FromStr for Risk {
    type Err = BadRisk;
    fn from_str(s: &str) -> Result<Self, BadRisk> {
        match s {
            "low" => Ok(Risk::Low),
            "medium" => Ok(Risk::Medium),
            "high" => Ok(Risk::High),
            "critical" => Ok(Risk::Critical),
            _ => Err(BadRisk(s.to_string())),
        }
    }
}

/// One field that changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub effect: Effect,
}

impl Change {
    /// A field that appears (`before` is empty) and lands without downtime.
    pub fn added(field: impl Into<String>, after: impl Into<String>) -> Self {
        Change {
            field: field.into(),
            before: None,
            after: Some(after.into()),
            effect: Effect::Hotplug,
        }
    }
}

/// The step of a VM action (the id's last part and the action's kind).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VmStep {
    Create,
    Start,
    Update,
    Reboot,
    Shutdown,
    Destroy,
    Seed,
    Reseed,
    /// Grow a declared disk (`resize-scsi0`).
    Resize(String),
    /// Grow an imported boot disk to its declared size (`grow-scsi0`).
    Grow(String),
}

/// The step of a backup-job action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobStep {
    Create,
    Update,
}

/// An action's id: typed, printed as `vm-100-create`, `backup-nightly-update`,
/// `image-debian-12-qcow2-download`, `fw-dc-rule-mgmt-admin`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActionId {
    Vm {
        vmid: u32,
        step: VmStep,
    },
    BackupJob {
        job: String,
        step: JobStep,
    },
    /// An image the node downloads, keyed by its file-name slug.
    Image {
        slug: String,
    },
    /// A firewall object, keyed by the firewall kind's own key (`dc-rule-x`).
    Firewall {
        key: String,
    },
    /// A storage object: `pool-tank`, `dataset-tank-media`, `sanoid`, `entry-tank-vm`,
    /// `mapping-tank-media`, `migrate-plex-media-copy`.
    Storage {
        key: String,
    },
    /// A host-network wave (`bridges`).
    Network {
        key: String,
    },
    /// The phase-2 router: `150-seed`, `150-ready`.
    Router {
        key: String,
    },
    /// A PCI resource mapping, keyed by its id (`pci-mapping-gpu0`).
    Pci {
        key: String,
    },
}

impl ActionId {
    pub fn storage(key: impl Into<String>) -> Self {
        ActionId::Storage { key: key.into() }
    }
    pub fn vm(vmid: u32, step: VmStep) -> Self {
        ActionId::Vm { vmid, step }
    }
    pub fn job(job: &str, step: JobStep) -> Self {
        ActionId::BackupJob {
            job: job.to_string(),
            step,
        }
    }
    /// The VM this action is about, if it is a VM action.
    pub fn vmid(&self) -> Option<u32> {
        match self {
            ActionId::Vm { vmid, .. } => Some(*vmid),
            _ => None,
        }
    }
}

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionId::Vm { vmid, step } => {
                let s = match step {
                    VmStep::Create => "create".to_string(),
                    VmStep::Start => "start".into(),
                    VmStep::Update => "update".into(),
                    VmStep::Reboot => "reboot".into(),
                    VmStep::Shutdown => "shutdown".into(),
                    VmStep::Destroy => "destroy".into(),
                    VmStep::Seed => "seed".into(),
                    VmStep::Reseed => "reseed".into(),
                    VmStep::Resize(slot) => format!("resize-{slot}"),
                    VmStep::Grow(slot) => format!("grow-{slot}"),
                };
                write!(f, "vm-{vmid}-{s}")
            }
            ActionId::BackupJob { job, step } => write!(
                f,
                "backup-{job}-{}",
                match step {
                    JobStep::Create => "create",
                    JobStep::Update => "update",
                }
            ),
            ActionId::Image { slug } => write!(f, "image-{slug}-download"),
            ActionId::Firewall { key } => write!(f, "fw-{key}"),
            ActionId::Storage { key } => write!(f, "storage-{key}"),
            ActionId::Network { key } => write!(f, "net-{key}"),
            ActionId::Router { key } => write!(f, "router-{key}"),
            ActionId::Pci { key } => write!(f, "pci-{key}"),
        }
    }
}

/// Text that is not an action id.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a labwright action id")]
pub struct BadActionId(pub String);

impl FromStr for ActionId {
    type Err = BadActionId;
    fn from_str(s: &str) -> Result<Self, BadActionId> {
        let bad = || BadActionId(s.to_string());
        if let Some(rest) = s.strip_prefix("vm-") {
            let (vmid, step) = rest.split_once('-').ok_or_else(bad)?;
            let vmid: u32 = vmid.parse().map_err(|_| bad())?;
            let step = match step {
                "create" => VmStep::Create,
                "start" => VmStep::Start,
                "update" => VmStep::Update,
                "reboot" => VmStep::Reboot,
                "shutdown" => VmStep::Shutdown,
                "destroy" => VmStep::Destroy,
                "seed" => VmStep::Seed,
                "reseed" => VmStep::Reseed,
                s => match (s.strip_prefix("resize-"), s.strip_prefix("grow-")) {
                    (Some(slot), _) => VmStep::Resize(slot.to_string()),
                    (_, Some(slot)) => VmStep::Grow(slot.to_string()),
                    _ => return Err(bad()),
                },
            };
            return Ok(ActionId::Vm { vmid, step });
        }
        if let Some(rest) = s.strip_prefix("backup-") {
            let (job, step) = rest.rsplit_once('-').ok_or_else(bad)?;
            let step = match step {
                "create" => JobStep::Create,
                "update" => JobStep::Update,
                _ => return Err(bad()),
            };
            return Ok(ActionId::job(job, step));
        }
        if let Some(slug) = s
            .strip_prefix("image-")
            .and_then(|r| r.strip_suffix("-download"))
        {
            return Ok(ActionId::Image { slug: slug.into() });
        }
        if let Some(key) = s.strip_prefix("fw-") {
            return Ok(ActionId::Firewall { key: key.into() });
        }
        if let Some(key) = s.strip_prefix("storage-").filter(|k| !k.is_empty()) {
            return Ok(ActionId::Storage { key: key.into() });
        }
        if let Some(key) = s.strip_prefix("net-").filter(|k| !k.is_empty()) {
            return Ok(ActionId::Network { key: key.into() });
        }
        if let Some(key) = s.strip_prefix("router-").filter(|k| !k.is_empty()) {
            return Ok(ActionId::Router { key: key.into() });
        }
        if let Some(key) = s.strip_prefix("pci-").filter(|k| !k.is_empty()) {
            return Ok(ActionId::Pci { key: key.into() });
        }
        Err(bad())
    }
}

impl Serialize for ActionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ActionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl PartialEq<str> for ActionId {
    fn eq(&self, other: &str) -> bool {
        other.parse::<ActionId>().is_ok_and(|o| &o == self)
    }
}

impl PartialEq<&str> for ActionId {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

/// What kind of work an action is (its `type` in plan files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ActionKind {
    #[serde(rename = "vm.create")]
    VmCreate,
    #[serde(rename = "vm.start")]
    VmStart,
    #[serde(rename = "vm.update")]
    VmUpdate,
    #[serde(rename = "vm.reboot")]
    VmReboot,
    #[serde(rename = "vm.resize")]
    VmResize,
    #[serde(rename = "vm.shutdown")]
    VmShutdown,
    #[serde(rename = "vm.destroy")]
    VmDestroy,
    #[serde(rename = "vm.seed")]
    VmSeed,
    #[serde(rename = "vm.reseed")]
    VmReseed,
    #[serde(rename = "image.download")]
    ImageDownload,
    #[serde(rename = "backup.create")]
    BackupCreate,
    #[serde(rename = "backup.update")]
    BackupUpdate,
    #[serde(rename = "firewall.alias")]
    FirewallAlias,
    #[serde(rename = "firewall.ipset")]
    FirewallIpset,
    #[serde(rename = "firewall.rule")]
    FirewallRule,
    #[serde(rename = "firewall.rule-delete")]
    FirewallRuleDelete,
    #[serde(rename = "firewall.options")]
    FirewallOptions,
    #[serde(rename = "zfs.pool")]
    ZfsPool,
    #[serde(rename = "zfs.dataset")]
    ZfsDataset,
    #[serde(rename = "zfs.snapshots")]
    ZfsSnapshots,
    #[serde(rename = "storage.entry")]
    StorageEntry,
    #[serde(rename = "storage.mapping")]
    DirMapping,
    #[serde(rename = "migration.copy")]
    MigrationCopy,
    #[serde(rename = "migration.switch")]
    MigrationSwitch,
    #[serde(rename = "migration.remove-source")]
    MigrationRemoveSource,
    #[serde(rename = "network.bridges")]
    NetworkBridges,
    #[serde(rename = "router.seed")]
    RouterSeed,
    #[serde(rename = "router.ready")]
    RouterReady,
    #[serde(rename = "pci.mapping")]
    PciMapping,
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => f.write_str(&s),
            _ => write!(f, "{self:?}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub id: ActionId,
    #[serde(rename = "type")]
    pub kind: ActionKind,
    pub target: String,
    pub risk: Risk,
    pub phase: u8,
    /// Name of the snapshot taken (and verified) before this action runs.
    pub pre_snapshot: Option<String>,
    pub rollback_hint: String,
    pub expected_downtime: String,
    pub downtime_seconds: u32,
    pub reason: String,
    pub changes: Vec<Change>,
    pub depends_on: Vec<ActionId>,
    pub api_calls: Vec<String>,
    /// Storage whose creates must be serialised (`can't lock file`).
    pub storage_lock: Option<String>,
    /// Spec elements this action carries out (paths such as `vms[0]`), for the
    /// plan's account of every declared element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<String>,
    pub op: Op,
}

impl Action {
    /// Destroys a guest or data on disks (a pool over used disks): needs
    /// `--allow-destroy` on top of the risk level.
    pub fn destroys_data(&self) -> bool {
        self.kind == ActionKind::VmDestroy
            || self.kind == ActionKind::MigrationRemoveSource
            || matches!(
                &self.op,
                Op::Storage(crate::storage::StorageOp::CreatePool { wipe, .. }) if !wipe.is_empty()
            )
    }

    /// Runs with no other action in flight: a network reload disturbs every
    /// connection, and its revert needs a kept-alive one that no other action holds.
    pub fn exclusive(&self) -> bool {
        self.kind == ActionKind::NetworkBridges
    }

    /// A low-risk action with no downtime, to be filled in by its kind.
    pub fn new(id: ActionId, kind: ActionKind, target: impl Into<String>, op: Op) -> Self {
        Action {
            id,
            kind,
            target: target.into(),
            risk: Risk::Low,
            phase: 0,
            pre_snapshot: None,
            rollback_hint: String::new(),
            expected_downtime: "none".into(),
            downtime_seconds: 0,
            reason: String::new(),
            changes: Vec::new(),
            depends_on: Vec::new(),
            api_calls: Vec::new(),
            storage_lock: None,
            elements: Vec::new(),
            op,
        }
    }
}

/// Something the spec asks for that this plan will not do, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    pub target: String,
    pub reason: String,
    /// What would unblock it (a guard, a flag, a later version).
    pub unblock: String,
    /// Spec elements it concerns (paths such as `storage.zfsPools[0]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<String>,
}

impl Held {
    pub fn new(
        target: impl Into<String>,
        reason: impl Into<String>,
        unblock: impl Into<String>,
    ) -> Self {
        Held {
            target: target.into(),
            reason: reason.into(),
            unblock: unblock.into(),
            elements: Vec::new(),
        }
    }
}

/// `vm/100 edge-gateway`: how plans name a guest.
pub fn vm_target(vmid: u32, name: &str) -> String {
    format!("vm/{vmid} {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_back() {
        for id in [
            ActionId::vm(100, VmStep::Create),
            ActionId::vm(7, VmStep::Resize("scsi0".into())),
            ActionId::vm(7, VmStep::Grow("virtio1".into())),
            ActionId::job("nightly-all", JobStep::Update),
            ActionId::Image {
                slug: "debian-12-qcow2".into(),
            },
            ActionId::Firewall {
                key: "dc-rule-mgmt-admin".into(),
            },
            ActionId::Storage {
                key: "dataset-tank-media".into(),
            },
            ActionId::Network {
                key: "bridges".into(),
            },
        ] {
            let s = id.to_string();
            assert_eq!(s.parse::<ActionId>().ok(), Some(id), "{s}");
        }
        assert_eq!(ActionId::vm(100, VmStep::Create), "vm-100-create");
        assert!("vm-x-create".parse::<ActionId>().is_err());
        assert!("nonsense".parse::<ActionId>().is_err());
    }
}
