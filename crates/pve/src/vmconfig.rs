//! Typed views of the VM config property strings labwright reads and writes.
//!
//! The VM config itself stays a `key → string` map ([`VmConfig`]) because PVE has
//! hundreds of keys and labwright owns only a few; these helpers give the few a type
//! while keeping unknown sub-keys (`other`) so nothing is lost on a round trip.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::propstring::{
    AGENT, BOOT, DRIVE, IPCONFIG, NET, PRUNE_BACKUPS, PropError, PropFormat, PropertyString,
    split_indexed,
};
use crate::size::{SizeError, parse_disk_size};

fn take(ps: &mut PropertyString, key: &str) -> Option<String> {
    ps.remove(key)
}

fn take_bool(ps: &mut PropertyString, key: &str) -> Result<Option<bool>, PropError> {
    match ps.remove(key) {
        None => Ok(None),
        Some(v) => match v.as_str() {
            "1" => Ok(Some(true)),
            "0" => Ok(Some(false)),
            _ => Err(PropError::InvalidValue {
                key: key.into(),
                value: v,
                reason: "expected a boolean (1/0)".into(),
            }),
        },
    }
}

fn take_num<T: FromStr>(ps: &mut PropertyString, key: &str) -> Result<Option<T>, PropError> {
    match ps.remove(key) {
        None => Ok(None),
        Some(v) => v
            .parse::<T>()
            .map(Some)
            .map_err(|_| PropError::InvalidValue {
                key: key.into(),
                value: v,
                reason: "expected a number".into(),
            }),
    }
}

fn put(ps: &mut PropertyString, key: &str, v: Option<impl ToString>) -> Result<(), PropError> {
    match v {
        Some(v) => ps.set(key, v.to_string()),
        None => Ok(()),
    }
}

fn put_bool(ps: &mut PropertyString, key: &str, v: Option<bool>) -> Result<(), PropError> {
    put(ps, key, v.map(|b| if b { "1" } else { "0" }))
}

fn rest(ps: PropertyString) -> IndexMap<String, String> {
    ps.entries().clone()
}

fn put_rest(ps: &mut PropertyString, other: &IndexMap<String, String>) -> Result<(), PropError> {
    for (k, v) in other {
        ps.set(k.clone(), v.clone())?;
    }
    Ok(())
}

/// Typed helpers print through the codec. There is deliberately no `Display`: a
/// value containing `,` cannot be printed, and `to_string()` would have to panic or
/// emit a string that injects extra keys.
macro_rules! display_via_propstring {
    ($t:ty) => {
        impl $t {
            /// Canonical property-string text; fails if a value contains `,` or is empty.
            pub fn to_canonical_string(&self) -> Result<String, PropError> {
                Ok(self.to_property_string()?.to_canonical_string())
            }
        }
        impl FromStr for $t {
            type Err = PropError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

/// `net[n]`: `virtio=BC:24:11:..,bridge=vmbr0,firewall=1,tag=10`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetDevice {
    /// NIC model (`virtio`, `e1000`, …).
    pub model: String,
    /// MAC address; `None` lets PVE generate one.
    pub macaddr: Option<String>,
    /// Bridge (`vmbr0`).
    pub bridge: Option<String>,
    /// Whether the VM firewall filters this NIC.
    pub firewall: Option<bool>,
    /// Link disconnected.
    pub link_down: Option<bool>,
    /// VLAN tag (1–4094).
    pub tag: Option<u16>,
    /// MTU (`1` = bridge MTU).
    pub mtu: Option<u32>,
    /// Multiqueue count.
    pub queues: Option<u32>,
    /// Rate limit in MB/s, kept as text to preserve PVE's spelling.
    pub rate: Option<String>,
    /// Trunk VLANs, `10;20-30`.
    pub trunks: Option<String>,
    /// Sub-keys this type does not model.
    pub other: IndexMap<String, String>,
}

impl NetDevice {
    /// A NIC of `model` on `bridge`, everything else default.
    pub fn new(model: impl Into<String>, bridge: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            bridge: Some(bridge.into()),
            ..Self::default()
        }
    }

    /// Parse a `net[n]` value.
    pub fn parse(s: &str) -> Result<Self, PropError> {
        Self::from_property_string(PropertyString::parse(s, &NET)?)
    }

    /// Build from an already parsed property string.
    pub fn from_property_string(mut ps: PropertyString) -> Result<Self, PropError> {
        let model = take(&mut ps, "model").ok_or_else(|| PropError::Missing("model".into()))?;
        Ok(Self {
            model,
            macaddr: take(&mut ps, "macaddr"),
            bridge: take(&mut ps, "bridge"),
            firewall: take_bool(&mut ps, "firewall")?,
            link_down: take_bool(&mut ps, "link_down")?,
            tag: take_num(&mut ps, "tag")?,
            mtu: take_num(&mut ps, "mtu")?,
            queues: take_num(&mut ps, "queues")?,
            rate: take(&mut ps, "rate"),
            trunks: take(&mut ps, "trunks"),
            other: rest(ps),
        })
    }

    /// Convert to the generic form (canonical printing lives there).
    pub fn to_property_string(&self) -> Result<PropertyString, PropError> {
        let mut ps = PropertyString::new(&NET);
        ps.set("model", self.model.clone())?;
        put(&mut ps, "macaddr", self.macaddr.as_ref())?;
        put(&mut ps, "bridge", self.bridge.as_ref())?;
        put_bool(&mut ps, "firewall", self.firewall)?;
        put_bool(&mut ps, "link_down", self.link_down)?;
        put(&mut ps, "tag", self.tag)?;
        put(&mut ps, "mtu", self.mtu)?;
        put(&mut ps, "queues", self.queues)?;
        put(&mut ps, "rate", self.rate.as_ref())?;
        put(&mut ps, "trunks", self.trunks.as_ref())?;
        put_rest(&mut ps, &self.other)?;
        Ok(ps)
    }

    /// MAC in upper case, the form PVE generates, for comparisons.
    pub fn mac_upper(&self) -> Option<String> {
        self.macaddr.as_ref().map(|m| m.to_ascii_uppercase())
    }
}
display_via_propstring!(NetDevice);

/// What the volume part of a drive string denotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriveVolume {
    /// `none`: an empty (CD-ROM) drive.
    None,
    /// `cdrom`: the host's physical drive.
    Cdrom,
    /// `STORAGE:SIZE_GiB` (or bare `SIZE` with the create `storage` param): allocate.
    Allocate {
        /// Target storage, if given inline.
        storage: Option<String>,
        /// Size in GiB as written (may be fractional; `0` with `import-from`).
        size_gib: String,
    },
    /// An existing volume `STORAGE:NAME` (`local-zfs:vm-100-disk-0`, `local:iso/x.iso`).
    Volume {
        /// Storage id.
        storage: String,
        /// Volume name within the storage.
        name: String,
    },
    /// An absolute path (root only).
    Path(String),
}

impl DriveVolume {
    /// Classify a drive's `file` value.
    pub fn parse(file: &str) -> Self {
        if file == "none" {
            return Self::None;
        }
        if file == "cdrom" {
            return Self::Cdrom;
        }
        if file.starts_with('/') {
            return Self::Path(file.to_string());
        }
        let is_size = |s: &str| {
            let (i, f) = s.split_once('.').unwrap_or((s, "0"));
            !i.is_empty()
                && !f.is_empty()
                && i.bytes().all(|b| b.is_ascii_digit())
                && f.bytes().all(|b| b.is_ascii_digit())
        };
        match file.split_once(':') {
            Some((storage, rest)) if is_size(rest) && !storage.is_empty() => Self::Allocate {
                storage: Some(storage.to_string()),
                size_gib: rest.to_string(),
            },
            Some((storage, name)) => Self::Volume {
                storage: storage.to_string(),
                name: name.to_string(),
            },
            None if is_size(file) => Self::Allocate {
                storage: None,
                size_gib: file.to_string(),
            },
            None => Self::Path(file.to_string()),
        }
    }

    /// The storage id, when the volume names one.
    pub fn storage(&self) -> Option<&str> {
        match self {
            Self::Allocate { storage, .. } => storage.as_deref(),
            Self::Volume { storage, .. } => Some(storage),
            _ => None,
        }
    }
}

/// `scsi[n]`, `virtio[n]`, `sata[n]`, `ide[n]`, `efidisk0`, `tpmstate0`, `unused[n]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Drive {
    /// The volume (default key): `local-zfs:32`, `local-zfs:vm-100-disk-0`, `none`.
    pub file: String,
    /// `cdrom` or `disk`.
    pub media: Option<String>,
    /// Size as PVE prints it (`32G`).
    pub size: Option<String>,
    /// `none`, `writeback`, …
    pub cache: Option<String>,
    /// `on` or `ignore`.
    pub discard: Option<String>,
    /// Dedicated IO thread.
    pub iothread: Option<bool>,
    /// Present as SSD to the guest.
    pub ssd: Option<bool>,
    /// Source volume to import (`local:import/x.qcow2`).
    pub import_from: Option<String>,
    /// Image format (`raw`, `qcow2`, …).
    pub format: Option<String>,
    /// Include in backups.
    pub backup: Option<bool>,
    /// Sub-keys this type does not model (`aio`, `efitype`, throttles, …).
    pub other: IndexMap<String, String>,
}

impl Drive {
    /// A drive for `file`, everything else default.
    pub fn new(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            ..Self::default()
        }
    }

    /// Parse a drive value.
    pub fn parse(s: &str) -> Result<Self, PropError> {
        Self::from_property_string(PropertyString::parse(s, &DRIVE)?)
    }

    /// Build from an already parsed property string.
    pub fn from_property_string(mut ps: PropertyString) -> Result<Self, PropError> {
        let file = take(&mut ps, "file").ok_or_else(|| PropError::Missing("file".into()))?;
        Ok(Self {
            file,
            media: take(&mut ps, "media"),
            size: take(&mut ps, "size"),
            cache: take(&mut ps, "cache"),
            discard: take(&mut ps, "discard"),
            iothread: take_bool(&mut ps, "iothread")?,
            ssd: take_bool(&mut ps, "ssd")?,
            import_from: take(&mut ps, "import-from"),
            format: take(&mut ps, "format"),
            backup: take_bool(&mut ps, "backup")?,
            other: rest(ps),
        })
    }

    /// Convert to the generic form.
    pub fn to_property_string(&self) -> Result<PropertyString, PropError> {
        let mut ps = PropertyString::new(&DRIVE);
        ps.set("file", self.file.clone())?;
        put(&mut ps, "media", self.media.as_ref())?;
        put(&mut ps, "size", self.size.as_ref())?;
        put(&mut ps, "cache", self.cache.as_ref())?;
        put(&mut ps, "discard", self.discard.as_ref())?;
        put_bool(&mut ps, "iothread", self.iothread)?;
        put_bool(&mut ps, "ssd", self.ssd)?;
        put(&mut ps, "import-from", self.import_from.as_ref())?;
        put(&mut ps, "format", self.format.as_ref())?;
        put_bool(&mut ps, "backup", self.backup)?;
        put_rest(&mut ps, &self.other)?;
        Ok(ps)
    }

    /// What the volume denotes.
    pub fn volume(&self) -> DriveVolume {
        DriveVolume::parse(&self.file)
    }

    /// Whether this is a CD-ROM drive.
    pub fn is_cdrom(&self) -> bool {
        self.media.as_deref() == Some("cdrom")
    }

    /// A cloud-init drive (`STORAGE:cloudinit` on input, `…:vm-N-cloudinit` stored).
    pub fn is_cloudinit(&self) -> bool {
        matches!(self.volume(), DriveVolume::Volume { name, .. }
            if name == "cloudinit" || name.ends_with("-cloudinit") || name.contains("-cloudinit."))
    }

    /// `size=` in bytes, if present.
    pub fn size_bytes(&self) -> Option<Result<u64, SizeError>> {
        self.size.as_deref().map(parse_disk_size)
    }
}
display_via_propstring!(Drive);

/// `ipconfig[n]` (cloud-init): `ip=10.0.0.5/24,gw=10.0.0.1,ip6=auto`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpConfig {
    /// `dhcp`, `manual` or an IPv4 CIDR.
    pub ip: Option<String>,
    /// IPv4 gateway (requires `ip`).
    pub gw: Option<String>,
    /// `auto`, `dhcp`, `manual` or an IPv6 CIDR.
    pub ip6: Option<String>,
    /// IPv6 gateway.
    pub gw6: Option<String>,
    /// Unknown sub-keys.
    pub other: IndexMap<String, String>,
}

impl IpConfig {
    /// Parse an `ipconfig[n]` value.
    pub fn parse(s: &str) -> Result<Self, PropError> {
        let mut ps = PropertyString::parse(s, &IPCONFIG)?;
        Ok(Self {
            ip: take(&mut ps, "ip"),
            gw: take(&mut ps, "gw"),
            ip6: take(&mut ps, "ip6"),
            gw6: take(&mut ps, "gw6"),
            other: rest(ps),
        })
    }

    /// Convert to the generic form.
    pub fn to_property_string(&self) -> Result<PropertyString, PropError> {
        let mut ps = PropertyString::new(&IPCONFIG);
        put(&mut ps, "ip", self.ip.as_ref())?;
        put(&mut ps, "gw", self.gw.as_ref())?;
        put(&mut ps, "ip6", self.ip6.as_ref())?;
        put(&mut ps, "gw6", self.gw6.as_ref())?;
        put_rest(&mut ps, &self.other)?;
        Ok(ps)
    }
}
display_via_propstring!(IpConfig);

/// `agent`: `1,fstrim_cloned_disks=1,type=virtio`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentConfig {
    /// Guest agent enabled.
    pub enabled: bool,
    /// Freeze filesystems during backup.
    pub freeze_fs: Option<bool>,
    /// Trim cloned disks.
    pub fstrim_cloned_disks: Option<bool>,
    /// `virtio` or `isa`.
    pub agent_type: Option<String>,
    /// Unknown sub-keys.
    pub other: IndexMap<String, String>,
}

impl AgentConfig {
    /// Parse an `agent` value (`1` alone is the common form).
    pub fn parse(s: &str) -> Result<Self, PropError> {
        let mut ps = PropertyString::parse(s, &AGENT)?;
        Ok(Self {
            enabled: take_bool(&mut ps, "enabled")?
                .ok_or_else(|| PropError::Missing("enabled".into()))?,
            freeze_fs: take_bool(&mut ps, "freeze-fs")?,
            fstrim_cloned_disks: take_bool(&mut ps, "fstrim_cloned_disks")?,
            agent_type: take(&mut ps, "type"),
            other: rest(ps),
        })
    }

    /// Convert to the generic form.
    pub fn to_property_string(&self) -> Result<PropertyString, PropError> {
        let mut ps = PropertyString::new(&AGENT);
        put_bool(&mut ps, "enabled", Some(self.enabled))?;
        put_bool(&mut ps, "freeze-fs", self.freeze_fs)?;
        put_bool(&mut ps, "fstrim_cloned_disks", self.fstrim_cloned_disks)?;
        put(&mut ps, "type", self.agent_type.as_ref())?;
        put_rest(&mut ps, &self.other)?;
        Ok(ps)
    }
}
display_via_propstring!(AgentConfig);

/// `boot`: `order=scsi0;ide2;net0` (or the deprecated legacy `cdn`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootConfig {
    /// Boot devices in order.
    pub order: Vec<String>,
    /// Deprecated `[acdn]{1,4}` form.
    pub legacy: Option<String>,
    /// Unknown sub-keys.
    pub other: IndexMap<String, String>,
}

impl BootConfig {
    /// Boot from these devices in order.
    pub fn order<I: IntoIterator<Item = S>, S: Into<String>>(devices: I) -> Self {
        Self {
            order: devices.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Parse a `boot` value.
    pub fn parse(s: &str) -> Result<Self, PropError> {
        let mut ps = PropertyString::parse(s, &BOOT)?;
        let order = take(&mut ps, "order")
            .map(|o| {
                o.split([';', ' '])
                    .filter(|d| !d.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            order,
            legacy: take(&mut ps, "legacy"),
            other: rest(ps),
        })
    }

    /// Convert to the generic form.
    pub fn to_property_string(&self) -> Result<PropertyString, PropError> {
        let mut ps = PropertyString::new(&BOOT);
        put(&mut ps, "legacy", self.legacy.as_ref())?;
        if !self.order.is_empty() {
            ps.set("order", self.order.join(";"))?;
        }
        put_rest(&mut ps, &self.other)?;
        Ok(ps)
    }
}
display_via_propstring!(BootConfig);

/// `prune-backups`: `keep-daily=7,keep-weekly=4,keep-monthly=6`.
///
/// Deserialises from the property string *and* from the JSON object that
/// `GET /cluster/backup` returns (PVE is asymmetric here).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PruneBackups {
    /// Keep everything (exclusive with the counts).
    pub keep_all: Option<bool>,
    /// Keep the last N.
    pub keep_last: Option<u32>,
    /// Hourly.
    pub keep_hourly: Option<u32>,
    /// Daily.
    pub keep_daily: Option<u32>,
    /// Weekly.
    pub keep_weekly: Option<u32>,
    /// Monthly.
    pub keep_monthly: Option<u32>,
    /// Yearly.
    pub keep_yearly: Option<u32>,
}

const PRUNE_COUNT_KEYS: [&str; 6] = [
    "keep-last",
    "keep-hourly",
    "keep-daily",
    "keep-weekly",
    "keep-monthly",
    "keep-yearly",
];

impl PruneBackups {
    fn counts_mut(&mut self) -> [&mut Option<u32>; 6] {
        [
            &mut self.keep_last,
            &mut self.keep_hourly,
            &mut self.keep_daily,
            &mut self.keep_weekly,
            &mut self.keep_monthly,
            &mut self.keep_yearly,
        ]
    }

    fn counts(&self) -> [Option<u32>; 6] {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
    }

    /// Parse the property string and apply PVE's validator (keep-all exclusivity).
    pub fn parse(s: &str) -> Result<Self, PropError> {
        let mut ps = PropertyString::parse(s, &PRUNE_BACKUPS)?;
        let mut out = Self {
            keep_all: take_bool(&mut ps, "keep-all")?,
            ..Self::default()
        };
        for (key, slot) in PRUNE_COUNT_KEYS.iter().zip(out.counts_mut()) {
            *slot = take_num(&mut ps, key)?;
        }
        if let Some((k, v)) = ps.iter().next() {
            return Err(PropError::InvalidValue {
                key: k.into(),
                value: v.into(),
                reason: "property is not defined in schema".into(),
            });
        }
        out.validate()?;
        Ok(out)
    }

    /// PVE's rule: `keep-all` cannot be combined with a positive count.
    pub fn validate(&self) -> Result<(), PropError> {
        if self.keep_all == Some(true) && self.counts().iter().any(|c| c.is_some_and(|n| n > 0)) {
            return Err(PropError::InvalidValue {
                key: "keep-all".into(),
                value: "1".into(),
                reason: "keep-all cannot be set together with other options.".into(),
            });
        }
        Ok(())
    }

    /// The effective policy as PVE sees it (all counts 0/absent means keep-all).
    pub fn normalized(&self) -> Self {
        if self.counts().iter().all(|c| c.is_none_or(|n| n == 0)) {
            return Self {
                keep_all: Some(true),
                ..Self::default()
            };
        }
        let mut out = self.clone();
        out.keep_all = None;
        for c in out.counts_mut() {
            if *c == Some(0) {
                *c = None;
            }
        }
        out
    }

    /// Convert to the generic form.
    pub fn to_property_string(&self) -> Result<PropertyString, PropError> {
        let mut ps = PropertyString::new(&PRUNE_BACKUPS);
        put_bool(&mut ps, "keep-all", self.keep_all)?;
        for (key, val) in PRUNE_COUNT_KEYS.iter().zip(self.counts()) {
            put(&mut ps, key, val)?;
        }
        Ok(ps)
    }
}
display_via_propstring!(PruneBackups);

impl<'de> Deserialize<'de> for PruneBackups {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        match &v {
            // Reading must not fail on a retention PVE itself accepted (or on keys a
            // newer PVE adds), so unknown keys are ignored here; `parse` stays strict.
            serde_json::Value::String(s) => {
                let ps = PropertyString::parse(s, &PRUNE_BACKUPS).map_err(D::Error::custom)?;
                let num = |k: &str| ps.get(k).and_then(|v| v.parse::<u32>().ok());
                Ok(Self {
                    keep_all: ps.get("keep-all").map(|v| v == "1"),
                    keep_last: num("keep-last"),
                    keep_hourly: num("keep-hourly"),
                    keep_daily: num("keep-daily"),
                    keep_weekly: num("keep-weekly"),
                    keep_monthly: num("keep-monthly"),
                    keep_yearly: num("keep-yearly"),
                })
            }
            serde_json::Value::Object(o) => {
                let mut out = Self {
                    keep_all: o.get("keep-all").and_then(crate::de::value_to_bool),
                    ..Self::default()
                };
                for (key, slot) in PRUNE_COUNT_KEYS.iter().zip(out.counts_mut()) {
                    *slot = o
                        .get(*key)
                        .and_then(crate::de::value_to_u64)
                        .and_then(|n| u32::try_from(n).ok());
                }
                Ok(out)
            }
            other => Err(D::Error::custom(format!(
                "expected prune-backups, got {other}"
            ))),
        }
    }
}

/// Bus of a drive slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriveBus {
    /// `ide0`–`ide3`.
    Ide,
    /// `sata0`–`sata5`.
    Sata,
    /// `scsi0`–`scsi30`.
    Scsi,
    /// `virtio0`–`virtio15`.
    Virtio,
    /// `efidisk0`.
    EfiDisk,
    /// `tpmstate0`.
    TpmState,
    /// `unused0`–`unused255`.
    Unused,
}

/// A drive key like `scsi0`, ordered by bus then index (so `scsi2` < `scsi10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DriveSlot {
    /// The bus.
    pub bus: DriveBus,
    /// The index on that bus.
    pub index: u32,
}

impl DriveSlot {
    /// Parse a config key; `None` if it is not a drive key or out of range.
    pub fn parse(key: &str) -> Option<Self> {
        let (prefix, index) = split_indexed(key);
        let index = index?;
        let (bus, max) = match prefix {
            "ide" => (DriveBus::Ide, 3),
            "sata" => (DriveBus::Sata, 5),
            "scsi" => (DriveBus::Scsi, 30),
            "virtio" => (DriveBus::Virtio, 15),
            "efidisk" => (DriveBus::EfiDisk, 0),
            "tpmstate" => (DriveBus::TpmState, 0),
            "unused" => (DriveBus::Unused, 255),
            _ => return None,
        };
        (index <= max).then_some(Self { bus, index })
    }
}

impl DriveSlot {
    /// `unused[n]`: a detached volume, not a device the guest sees.
    pub fn is_unused(&self) -> bool {
        self.bus == DriveBus::Unused
    }
}

impl fmt::Display for DriveSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.bus {
            DriveBus::Ide => "ide",
            DriveBus::Sata => "sata",
            DriveBus::Scsi => "scsi",
            DriveBus::Virtio => "virtio",
            DriveBus::EfiDisk => "efidisk",
            DriveBus::TpmState => "tpmstate",
            DriveBus::Unused => "unused",
        };
        write!(f, "{p}{}", self.index)
    }
}

/// A VM config as returned by `GET …/config`: every value as a string (PVE mixes
/// numbers and strings), plus the `digest` for optimistic concurrency.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmConfig {
    /// SHA-1 of the config file; send it back with updates.
    pub digest: Option<String>,
    /// All other keys.
    pub values: IndexMap<String, String>,
}

impl<'de> Deserialize<'de> for VmConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut values = crate::de::string_map(d)?;
        let digest = values.shift_remove("digest");
        Ok(Self { digest, values })
    }
}

impl VmConfig {
    /// Raw value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Parse a key with its known property-string format.
    pub fn property(&self, key: &str) -> Option<Result<PropertyString, PropError>> {
        let fmt: &'static PropFormat = crate::propstring::format_for_config_key(key)?;
        let v = self.get(key)?;
        Some(PropertyString::parse(v, fmt).map_err(|e| e.in_param(key)))
    }

    fn indexed<T>(
        &self,
        prefix: &str,
        parse: impl Fn(&str) -> Result<T, PropError>,
    ) -> Result<BTreeMap<u32, T>, PropError> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.values {
            if let (p, Some(i)) = split_indexed(k)
                && p == prefix
            {
                out.insert(i, parse(v).map_err(|e| e.in_param(k.clone()))?);
            }
        }
        Ok(out)
    }

    /// All `net[n]` entries by index.
    pub fn nets(&self) -> Result<BTreeMap<u32, NetDevice>, PropError> {
        self.indexed("net", NetDevice::parse)
    }

    /// All `ipconfig[n]` entries by index.
    pub fn ipconfigs(&self) -> Result<BTreeMap<u32, IpConfig>, PropError> {
        self.indexed("ipconfig", IpConfig::parse)
    }

    /// All drives (including `unused[n]`), ordered by slot.
    pub fn drives(&self) -> Result<BTreeMap<DriveSlot, Drive>, PropError> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.values {
            if let Some(slot) = DriveSlot::parse(k) {
                out.insert(slot, Drive::parse(v).map_err(|e| e.in_param(k.clone()))?);
            }
        }
        Ok(out)
    }

    /// The `agent` setting, if present.
    pub fn agent(&self) -> Option<Result<AgentConfig, PropError>> {
        self.get("agent")
            .map(|v| AgentConfig::parse(v).map_err(|e| e.in_param("agent")))
    }

    /// The `boot` setting, if present.
    pub fn boot(&self) -> Option<Result<BootConfig, PropError>> {
        self.get("boot")
            .map(|v| BootConfig::parse(v).map_err(|e| e.in_param("boot")))
    }

    /// Tags, split on `;`, `,` or whitespace as PVE accepts them.
    pub fn tags(&self) -> Vec<String> {
        self.get("tags")
            .map(|t| {
                t.split([';', ',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Memory in MiB (`memory` may be `4096` or `current=4096`).
    pub fn memory_mib(&self) -> Option<u64> {
        let m = self.get("memory")?;
        let m = m.strip_prefix("current=").unwrap_or(m);
        m.split(',').next()?.parse().ok()
    }

    /// An integer key (`cores`, `sockets`, `balloon`).
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }

    /// A boolean key (`onboot`, `protection`, `template`).
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        crate::de::value_to_bool(&serde_json::Value::String(self.get(key)?.to_string()))
    }
}

/// Encode `sshkeys` for PVE's `urlencoded` format (`%20` for spaces, `%0A` for
/// newlines). The form encoder then encodes it again; that double encoding is what
/// PVE expects, and `GET …/config` returns this single-encoded text.
pub fn encode_sshkeys(keys: &str) -> String {
    urlencoding::encode(keys).into_owned()
}

/// Decode the `sshkeys` value from a VM config back to the key text.
pub fn decode_sshkeys(value: &str) -> Result<String, PropError> {
    urlencoding::decode(value)
        .map(|c| c.into_owned())
        .map_err(|e| PropError::InvalidValue {
            key: "sshkeys".into(),
            value: value.into(),
            reason: e.to_string(),
        })
}

/// Tags in the form PVE stores by default: lower-cased, sorted, de-duplicated,
/// joined by `;`. Comparing this with the observed `tags` avoids order-only diffs.
pub fn canonical_tags<I: IntoIterator<Item = S>, S: AsRef<str>>(tags: I) -> String {
    let mut v: Vec<String> = tags
        .into_iter()
        .map(|t| t.as_ref().trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshkeys_and_tags() {
        let keys = "ssh-ed25519 AAAAC3Nz+TBx user@host\nssh-rsa AAAB";
        let enc = encode_sshkeys(keys);
        assert!(enc.starts_with("ssh-ed25519%20AAAAC3Nz%2BTBx%20user%40host"));
        assert!(
            enc.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-%_.~".contains(&b))
        );
        assert_eq!(decode_sshkeys(&enc).ok().as_deref(), Some(keys));
        assert_eq!(
            canonical_tags(["role-edge", "Env-Lab", "role-edge", " "]),
            "env-lab;role-edge"
        );
    }

    #[test]
    fn net_typed_roundtrip() {
        let n = NetDevice::parse("virtio=bc:24:11:4e:8f:d1,bridge=vmbr0,firewall=1,tag=10,foo=bar")
            .expect("parses");
        assert_eq!(n.model, "virtio");
        assert_eq!(n.mac_upper().as_deref(), Some("BC:24:11:4E:8F:D1"));
        assert_eq!(n.firewall, Some(true));
        assert_eq!(n.tag, Some(10));
        assert_eq!(n.other.get("foo").map(String::as_str), Some("bar"));
        assert_eq!(
            n.to_canonical_string().expect("prints"),
            "virtio=bc:24:11:4e:8f:d1,bridge=vmbr0,firewall=1,foo=bar,tag=10"
        );
        assert_eq!(
            NetDevice::parse(&n.to_canonical_string().expect("prints")).expect("reparses"),
            n
        );
        let mut fresh = NetDevice::new("virtio", "vmbr1");
        fresh.firewall = Some(true);
        assert_eq!(
            fresh.to_canonical_string().expect("prints"),
            "virtio,bridge=vmbr1,firewall=1"
        );
        assert!(NetDevice::parse("virtio,tag=abc").is_err());
        // A value with ',' would inject keys; printing refuses instead.
        let evil = NetDevice::new("virtio", "vmbr0,firewall=0");
        assert!(evil.to_canonical_string().is_err());
        assert_eq!(
            NetDevice::parse("bridge=vmbr0"),
            Err(PropError::Missing("model".into()))
        );
    }

    #[test]
    fn drive_typed() {
        let d = Drive::parse("local-zfs:vm-111-disk-1,discard=on,size=160G,ssd=1").expect("parses");
        assert_eq!(
            d.volume(),
            DriveVolume::Volume {
                storage: "local-zfs".into(),
                name: "vm-111-disk-1".into()
            }
        );
        assert_eq!(d.size_bytes(), Some(Ok(160 << 30)));
        assert_eq!(d.ssd, Some(true));
        let mut new = Drive::new("local-zfs:0");
        new.import_from = Some("local:import/debian-12.qcow2".into());
        new.cache = Some("none".into());
        new.iothread = Some(true);
        assert_eq!(
            new.to_canonical_string().expect("prints"),
            "local-zfs:0,cache=none,import-from=local:import/debian-12.qcow2,iothread=1"
        );
        assert_eq!(
            new.volume(),
            DriveVolume::Allocate {
                storage: Some("local-zfs".into()),
                size_gib: "0".into()
            }
        );
        let cd = Drive::parse("local:iso/debian.iso,media=cdrom").expect("cd");
        assert!(cd.is_cdrom());
        assert!(!cd.is_cloudinit());
        assert!(
            Drive::parse("local-zfs:vm-111-cloudinit,media=cdrom")
                .expect("ci")
                .is_cloudinit()
        );
        assert!(
            Drive::parse("local-zfs:cloudinit")
                .expect("ci")
                .is_cloudinit()
        );
        assert!(
            Drive::parse("local:111/vm-111-cloudinit.qcow2,media=cdrom")
                .expect("ci")
                .is_cloudinit()
        );
        assert!(DriveSlot::parse("unused3").is_some_and(|s| s.is_unused()));
        assert!(DriveSlot::parse("scsi31").is_none());
        assert_eq!(DriveVolume::parse("none"), DriveVolume::None);
        assert_eq!(
            DriveVolume::parse("/dev/sdb"),
            DriveVolume::Path("/dev/sdb".into())
        );
        assert_eq!(
            DriveVolume::parse("32.5"),
            DriveVolume::Allocate {
                storage: None,
                size_gib: "32.5".into()
            }
        );
        let efi = Drive::parse("local-zfs:vm-111-disk-0,efitype=4m,size=1M").expect("efi");
        assert_eq!(efi.other.get("efitype").map(String::as_str), Some("4m"));
    }

    #[test]
    fn ipconfig_agent_boot_prune() {
        let ip = IpConfig::parse("ip=10.100.1.174/24,gw=10.100.1.1,ip6=auto").expect("ip");
        assert_eq!(ip.gw.as_deref(), Some("10.100.1.1"));
        assert_eq!(
            ip.to_canonical_string().expect("prints"),
            "ip=10.100.1.174/24,gw=10.100.1.1,ip6=auto"
        );

        let a = AgentConfig::parse("1").expect("agent");
        assert!(a.enabled);
        assert_eq!(a.to_canonical_string().expect("prints"), "1");
        let a = AgentConfig::parse("enabled=yes,fstrim_cloned_disks=1,type=virtio").expect("agent");
        assert_eq!(
            a.to_canonical_string().expect("prints"),
            "1,fstrim_cloned_disks=1,type=virtio"
        );

        let b = BootConfig::parse("order=scsi0;ide2;net0").expect("boot");
        assert_eq!(b.order, vec!["scsi0", "ide2", "net0"]);
        assert_eq!(
            b.to_canonical_string().expect("prints"),
            "order=scsi0;ide2;net0"
        );
        assert_eq!(
            BootConfig::parse("cdn").expect("legacy").legacy.as_deref(),
            Some("cdn")
        );

        let p = PruneBackups::parse("keep-monthly=6,keep-daily=7,keep-weekly=4").expect("prune");
        assert_eq!(p.keep_daily, Some(7));
        assert_eq!(
            p.to_canonical_string().expect("prints"),
            "keep-daily=7,keep-weekly=4,keep-monthly=6"
        );
        assert!(PruneBackups::parse("keep-all=1,keep-last=2").is_err());
        assert!(PruneBackups::parse("keep-weekly=2,maxfiles=3").is_err());
        assert_eq!(
            PruneBackups::parse("keep-last=0")
                .expect("zero")
                .normalized(),
            PruneBackups::parse("keep-all=1").expect("all")
        );
        let from_obj: PruneBackups =
            serde_json::from_value(serde_json::json!({"keep-daily": "7", "keep-weekly": 4}))
                .expect("object form");
        assert_eq!(
            from_obj.to_canonical_string().expect("prints"),
            "keep-daily=7,keep-weekly=4"
        );
        let lenient: PruneBackups =
            serde_json::from_value(serde_json::json!("keep-last=3,maxfiles=2"))
                .expect("lenient read");
        assert_eq!(lenient.keep_last, Some(3));
    }

    #[test]
    fn vm_config_from_real_get() {
        let cfg: VmConfig = serde_json::from_str(
            r#"{"smbios1":"uuid=42ecc256-a7c5-4d93-b630-0e7a06c051c2","cpu":"host","scsihw":"virtio-scsi-pci","bios":"ovmf",
 "ostype":"l26","serial0":"socket","net0":"virtio=bc:24:11:4e:8f:d1,bridge=vmbr0,firewall=1",
 "meta":"creation-qemu=10.0.2,ctime=1754900283","scsi0":"local-zfs:vm-111-disk-1,discard=on,size=160G,ssd=1",
 "scsi1":"local-zfs:vm-111-cloudinit,media=cdrom","vmgenid":"abac705c-31ed-4b75-8587-8c86d5c810c4",
 "digest":"18389648fd69603dd93ab0c443e1f32267f6c436","efidisk0":"local-zfs:vm-111-disk-0,efitype=4m,size=1M",
 "machine":"q35","kvm":1,"onboot":1,"memory":"4096","cores":4,"ipconfig0":"ip=10.100.1.174/24,gw=10.100.1.1,ip6=auto","boot":"order=scsi0",
 "tags":"prod;web","scsi10":"local-zfs:vm-111-disk-2,size=1G","scsi2":"local-zfs:vm-111-disk-3,size=2G"}"#,
        )
        .expect("decodes");
        assert_eq!(
            cfg.digest.as_deref(),
            Some("18389648fd69603dd93ab0c443e1f32267f6c436")
        );
        assert_eq!(cfg.memory_mib(), Some(4096));
        assert_eq!(cfg.get_u64("cores"), Some(4));
        assert_eq!(cfg.get_bool("onboot"), Some(true));
        assert_eq!(cfg.tags(), vec!["prod", "web"]);
        let nets = cfg.nets().expect("nets");
        assert_eq!(
            nets.get(&0).and_then(|n| n.bridge.as_deref()),
            Some("vmbr0")
        );
        let drives = cfg.drives().expect("drives");
        let keys: Vec<String> = drives.keys().map(ToString::to_string).collect();
        assert_eq!(keys, vec!["scsi0", "scsi1", "scsi2", "scsi10", "efidisk0"]);
        assert_eq!(
            cfg.boot().and_then(Result::ok).map(|b| b.order),
            Some(vec!["scsi0".to_string()])
        );
        assert!(cfg.property("meta").is_none());
        assert!(cfg.property("net0").is_some_and(|r| r.is_ok()));
    }
}
