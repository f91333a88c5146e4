//! Codec for PVE property strings (`key=value,key=value`, formats.md §4).
//!
//! Written from the documented algorithm, independently of the simulator, so the two
//! cannot agree on the same mistake. Parsing keeps the input order; printing uses a
//! canonical order (default key first, then the format's preferred order, then
//! alphabetical) so a re-read value compares equal and plans do not show phantom diffs.

use std::fmt;

use indexmap::IndexMap;

/// Errors from parsing or building a property string. Messages follow PVE's wording
/// where PVE has one, so users recognise them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropError {
    /// The same key appears twice.
    #[error("duplicate key in comma-separated list property: {0}")]
    DuplicateKey(String),
    /// `virtio=<mac>` after `model=…` (net).
    #[error("key alias '{0}' is already defined")]
    KeyAliasDefined(String),
    /// An alias was used after its target, e.g. `volume=` after `file=`.
    #[error("key '{0}' is already defined (via alias)")]
    AliasTargetDefined(String),
    /// A part like `tag=` or `=5`.
    #[error("missing key in comma-separated list property")]
    MissingKey,
    /// A bare value in a format without a default key.
    #[error("value without key, but schema does not define a default key")]
    NoDefaultKey,
    /// A key the typed helper requires is absent (e.g. a drive without a volume).
    #[error("property '{0}' is missing and it is not optional")]
    Missing(String),
    /// A value that cannot be represented or has the wrong type.
    #[error("invalid value '{value}' for '{key}': {reason}")]
    InvalidValue {
        /// The sub-key.
        key: String,
        /// The offending value.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A key or value that cannot be printed (contains `,` or is empty).
    #[error("cannot encode '{key}={value}': {reason}")]
    Unprintable {
        /// The sub-key.
        key: String,
        /// The value.
        value: String,
        /// Why it cannot be printed.
        reason: &'static str,
    },
    /// Wraps an error with the VM config key it came from (`net0`, `scsi1`, …).
    #[error("{param}: {source}")]
    InParam {
        /// The top-level parameter.
        param: String,
        /// The inner error.
        #[source]
        source: Box<PropError>,
    },
}

impl PropError {
    /// Attach the top-level parameter name.
    pub fn in_param(self, param: impl Into<String>) -> Self {
        Self::InParam {
            param: param.into(),
            source: Box::new(self),
        }
    }
}

/// `<model>=<mac>` style keys (net): any of `keys` used as a key sets `key` to that
/// name and stores the value under `value_key`.
#[derive(Debug)]
pub struct KeyAlias {
    /// Keys that act as aliases (the NIC models).
    pub keys: &'static [&'static str],
    /// Key that receives the alias name (`model`).
    pub key: &'static str,
    /// Key that receives the value (`macaddr`).
    pub value_key: &'static str,
}

/// What the codec needs to know about one property-string format.
#[derive(Debug)]
pub struct PropFormat {
    /// Name for diagnostics (`net`, `drive`, …).
    pub name: &'static str,
    /// Key that may be written without `key=` (`model`, `file`, `enabled`).
    pub default_key: Option<&'static str>,
    /// `(alias, target)` pairs, e.g. `("volume", "file")`.
    pub aliases: &'static [(&'static str, &'static str)],
    /// Model-style key aliasing (net only).
    pub key_alias: Option<KeyAlias>,
    /// Boolean sub-keys: `on/yes/true` → `1`, `off/no/false` → `0` on parse.
    pub booleans: &'static [&'static str],
    /// Keys printed right after the default key, in this order; others follow sorted.
    pub order: &'static [&'static str],
}

/// NIC models PVE accepts as `<model>=<mac>` keys.
pub const NET_MODELS: &[&str] = &[
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
];

/// `net[n]`.
pub static NET: PropFormat = PropFormat {
    name: "net",
    default_key: Some("model"),
    aliases: &[],
    key_alias: Some(KeyAlias {
        keys: NET_MODELS,
        key: "model",
        value_key: "macaddr",
    }),
    booleans: &["firewall", "link_down"],
    order: &[],
};

/// `scsi[n]`, `virtio[n]`, `sata[n]`, `ide[n]`, `efidisk0`, `tpmstate0`, `unused[n]`.
pub static DRIVE: PropFormat = PropFormat {
    name: "drive",
    default_key: Some("file"),
    aliases: &[
        ("volume", "file"),
        ("bps_rd_length", "bps_rd_max_length"),
        ("bps_wr_length", "bps_wr_max_length"),
        ("iops_rd_length", "iops_rd_max_length"),
        ("iops_wr_length", "iops_wr_max_length"),
    ],
    key_alias: None,
    booleans: &[
        "backup",
        "detect_zeroes",
        "iothread",
        "pre-enrolled-keys",
        "replicate",
        "ro",
        "shared",
        "snapshot",
        "ssd",
    ],
    order: &[],
};

/// `ipconfig[n]` (cloud-init); printed in the order PVE's own GUI writes it.
pub static IPCONFIG: PropFormat = PropFormat {
    name: "ipconfig",
    default_key: None,
    aliases: &[],
    key_alias: None,
    booleans: &[],
    order: &["ip", "gw", "ip6", "gw6"],
};

/// `agent`.
pub static AGENT: PropFormat = PropFormat {
    name: "agent",
    default_key: Some("enabled"),
    aliases: &[
        ("freeze-fs-on-backup", "freeze-fs"),
        ("guest-fsfreeze", "freeze-fs"),
    ],
    key_alias: None,
    booleans: &["enabled", "freeze-fs", "fstrim_cloned_disks"],
    order: &[],
};

/// `boot`.
pub static BOOT: PropFormat = PropFormat {
    name: "boot",
    default_key: Some("legacy"),
    aliases: &[],
    key_alias: None,
    booleans: &[],
    order: &[],
};

/// `prune-backups` (storage and backup jobs).
pub static PRUNE_BACKUPS: PropFormat = PropFormat {
    name: "prune-backups",
    default_key: None,
    aliases: &[],
    key_alias: None,
    booleans: &["keep-all"],
    order: &[
        "keep-all",
        "keep-last",
        "keep-hourly",
        "keep-daily",
        "keep-weekly",
        "keep-monthly",
        "keep-yearly",
    ],
};

/// Any other `key=value` list without a default key (e.g. `startup`, `cicustom`).
pub static GENERIC: PropFormat = PropFormat {
    name: "generic",
    default_key: None,
    aliases: &[],
    key_alias: None,
    booleans: &[],
    order: &[],
};

/// The format of a VM config key, if labwright knows it (`net3` → [`NET`]).
pub fn format_for_config_key(key: &str) -> Option<&'static PropFormat> {
    let (prefix, index) = split_indexed(key);
    match (prefix, index.is_some()) {
        ("net", true) => Some(&NET),
        ("scsi" | "virtio" | "sata" | "ide" | "unused", true) => Some(&DRIVE),
        ("efidisk" | "tpmstate", true) => Some(&DRIVE),
        ("ipconfig", true) => Some(&IPCONFIG),
        ("agent", false) => Some(&AGENT),
        ("boot", false) => Some(&BOOT),
        ("prune-backups", false) => Some(&PRUNE_BACKUPS),
        _ => None,
    }
}

/// Split `scsi12` into `("scsi", Some(12))`; keys without a numeric suffix give `None`.
pub fn split_indexed(key: &str) -> (&str, Option<u32>) {
    let digits = key.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits == key.len() {
        return (key, None);
    }
    let (prefix, num) = key.split_at(key.len() - digits);
    match num.parse::<u32>() {
        Ok(n) => (prefix, Some(n)),
        Err(_) => (key, None),
    }
}

fn perl_truthy(v: &str) -> bool {
    !v.is_empty() && v != "0"
}

fn normalise_bool(v: &str) -> Option<&'static str> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some("1"),
        "0" | "off" | "no" | "false" => Some("0"),
        _ => None,
    }
}

/// A parsed property string: ordered `key → value` plus the format it belongs to.
///
/// Equality ignores order (two strings with the same keys and values are equal).
#[derive(Clone)]
pub struct PropertyString {
    format: &'static PropFormat,
    entries: IndexMap<String, String>,
}

impl PartialEq for PropertyString {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.format, other.format) && self.entries == other.entries
    }
}

impl Eq for PropertyString {}

impl fmt::Debug for PropertyString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropertyString")
            .field("format", &self.format.name)
            .field("entries", &self.entries)
            .finish()
    }
}

impl PropertyString {
    /// An empty property string of the given format.
    pub fn new(format: &'static PropFormat) -> Self {
        Self {
            format,
            entries: IndexMap::new(),
        }
    }

    /// Parse following PVE's algorithm: split on `,`, skip blank parts, honour the
    /// default key, aliases and the net `<model>=<mac>` key alias.
    pub fn parse(input: &str, format: &'static PropFormat) -> Result<Self, PropError> {
        let mut entries: IndexMap<String, String> = IndexMap::new();
        let mut bare_seen = false;
        for part in input.split(',') {
            if part.trim().is_empty() {
                continue;
            }
            if let Some((key, value)) = part.split_once('=') {
                // A blank key (`  =1`) could never be printed back (see `set`).
                if key.trim().is_empty() || value.is_empty() {
                    return Err(PropError::MissingKey);
                }
                if entries.contains_key(key) {
                    return Err(PropError::DuplicateKey(key.to_string()));
                }
                let mut key = key.to_string();
                if let Some(ka) = &format.key_alias
                    && ka.keys.contains(&key.as_str())
                {
                    if entries.contains_key(ka.key) {
                        return Err(PropError::KeyAliasDefined(ka.key.to_string()));
                    }
                    entries.insert(ka.key.to_string(), key.clone());
                    key = ka.value_key.to_string();
                    if entries.contains_key(&key) {
                        return Err(PropError::AliasTargetDefined(key));
                    }
                } else if let Some((_, target)) =
                    format.aliases.iter().find(|(alias, _)| *alias == key)
                {
                    if entries.contains_key(*target) {
                        return Err(PropError::AliasTargetDefined((*target).to_string()));
                    }
                    key = (*target).to_string();
                }
                let value = normalise_value(format, &key, value);
                entries.insert(key, value);
            } else {
                let Some(dk) = format.default_key else {
                    return Err(PropError::NoDefaultKey);
                };
                if bare_seen || entries.get(dk).is_some_and(|v| perl_truthy(v)) {
                    return Err(PropError::DuplicateKey(dk.to_string()));
                }
                bare_seen = true;
                let value = normalise_value(format, dk, part);
                entries.insert(dk.to_string(), value);
            }
        }
        Ok(Self { format, entries })
    }

    /// The format this value belongs to.
    pub fn format(&self) -> &'static PropFormat {
        self.format
    }

    /// Value of a sub-key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Set a sub-key, refusing values that could not be printed back.
    pub fn set(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), PropError> {
        let key = key.into();
        let value = value.into();
        check_printable(&key, &value)?;
        let value = normalise_value(self.format, &key, &value);
        self.entries.insert(key, value);
        Ok(())
    }

    /// Remove a sub-key, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.entries.shift_remove(key)
    }

    /// Entries in their current order (input order after `parse`).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of sub-keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no sub-keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The underlying map.
    pub fn entries(&self) -> &IndexMap<String, String> {
        &self.entries
    }

    /// Keys in canonical order.
    pub fn canonical_keys(&self) -> Vec<&str> {
        let f = self.format;
        let mut keys: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        let rank = |k: &str| -> (usize, usize) {
            if Some(k) == f.default_key {
                return (0, 0);
            }
            if let Some(ka) = &f.key_alias
                && k == ka.value_key
            {
                return (0, 1);
            }
            match f.order.iter().position(|o| *o == k) {
                Some(p) => (1, p),
                None => (2, 0),
            }
        };
        keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
        keys
    }

    /// Reorder the entries canonically (useful before storing or comparing text).
    pub fn canonicalize(&mut self) {
        let order: Vec<String> = self
            .canonical_keys()
            .into_iter()
            .map(String::from)
            .collect();
        let mut sorted = IndexMap::with_capacity(self.entries.len());
        for k in order {
            if let Some(v) = self.entries.get(&k) {
                sorted.insert(k, v.clone());
            }
        }
        self.entries = sorted;
    }

    /// Print in canonical order: `<model>=<mac>` or the bare default-key value first,
    /// then the remaining keys.
    pub fn to_canonical_string(&self) -> String {
        let f = self.format;
        let mut parts: Vec<String> = Vec::with_capacity(self.entries.len());
        let mut skip: Vec<&str> = Vec::new();
        if let Some(ka) = &f.key_alias
            && let (Some(model), Some(mac)) = (self.get(ka.key), self.get(ka.value_key))
            && ka.keys.contains(&model)
        {
            parts.push(format!("{model}={mac}"));
            skip.push(ka.key);
            skip.push(ka.value_key);
        }
        for key in self.canonical_keys() {
            if skip.contains(&key) {
                continue;
            }
            let value = self.get(key).unwrap_or_default();
            let bare_ok = Some(key) == f.default_key
                && parts.is_empty()
                && !value.contains('=')
                && !value.trim().is_empty();
            if bare_ok {
                parts.push(value.to_string());
            } else {
                parts.push(format!("{key}={value}"));
            }
        }
        parts.join(",")
    }
}

impl fmt::Display for PropertyString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_canonical_string())
    }
}

fn normalise_value(format: &PropFormat, key: &str, value: &str) -> String {
    if format.booleans.contains(&key)
        && let Some(b) = normalise_bool(value)
    {
        return b.to_string();
    }
    value.to_string()
}

fn check_printable(key: &str, value: &str) -> Result<(), PropError> {
    let bad = |reason| {
        Err(PropError::Unprintable {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        })
    };
    if key.is_empty() || key.contains([',', '=']) || key.trim().is_empty() {
        return bad("key must be non-empty without ',' or '='");
    }
    if value.is_empty() {
        return bad("value must not be empty (delete the key instead)");
    }
    if value.contains(',') {
        return bad("value must not contain ','");
    }
    Ok(())
}

/// Parse-then-print: the canonical text of a property string.
pub fn canonicalize(input: &str, format: &'static PropFormat) -> Result<String, PropError> {
    Ok(PropertyString::parse(input, format)?.to_canonical_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, f: &'static PropFormat) -> PropertyString {
        PropertyString::parse(s, f).expect("parses")
    }

    #[test]
    fn net_model_mac_form() {
        let n = p("virtio=BC:24:11:4E:8F:D1,bridge=vmbr0,firewall=1", &NET);
        assert_eq!(n.get("model"), Some("virtio"));
        assert_eq!(n.get("macaddr"), Some("BC:24:11:4E:8F:D1"));
        assert_eq!(n.get("bridge"), Some("vmbr0"));
        assert_eq!(
            n.to_string(),
            "virtio=BC:24:11:4E:8F:D1,bridge=vmbr0,firewall=1"
        );
        // Other spellings normalise to the same canonical text.
        let n2 = p(
            "firewall=yes,bridge=vmbr0,model=virtio,macaddr=BC:24:11:4E:8F:D1",
            &NET,
        );
        assert_eq!(n, n2);
        assert_eq!(n2.to_string(), n.to_string());
        assert_eq!(
            p("virtio,bridge=vmbr0", &NET).to_string(),
            "virtio,bridge=vmbr0"
        );
        assert_eq!(p("model=e1000", &NET).to_string(), "e1000");
    }

    #[test]
    fn net_errors_match_pve() {
        let e = |s| PropertyString::parse(s, &NET).expect_err("must fail");
        assert_eq!(
            e("virtio,bridge=vmbr0,bridge=vmbr1"),
            PropError::DuplicateKey("bridge".into())
        );
        assert_eq!(e("virtio,e1000"), PropError::DuplicateKey("model".into()));
        assert_eq!(
            e("virtio=BC:24:11:4E:8F:D1,model=e1000"),
            PropError::DuplicateKey("model".into())
        );
        assert_eq!(
            e("model=e1000,virtio=BC:24:11:4E:8F:D1"),
            PropError::KeyAliasDefined("model".into())
        );
        assert_eq!(
            e("macaddr=BC:24:11:4E:8F:D2,virtio=BC:24:11:4E:8F:D1"),
            PropError::AliasTargetDefined("macaddr".into())
        );
        assert_eq!(e("virtio,tag="), PropError::MissingKey);
        assert_eq!(
            e("virtio,bridge=vmbr0,trunks=20,30"),
            PropError::DuplicateKey("model".into())
        );
        assert_eq!(
            PropertyString::parse("8", &GENERIC).expect_err("no default key"),
            PropError::NoDefaultKey
        );
    }

    #[test]
    fn drive_forms() {
        let d = p(
            "local-zfs:vm-100-disk-0,ssd=1,size=32G,cache=none,iothread=on,discard=on",
            &DRIVE,
        );
        assert_eq!(d.get("file"), Some("local-zfs:vm-100-disk-0"));
        assert_eq!(d.get("iothread"), Some("1"));
        assert_eq!(
            d.to_string(),
            "local-zfs:vm-100-disk-0,cache=none,discard=on,iothread=1,size=32G,ssd=1"
        );
        assert_eq!(
            p("volume=local:iso/x.iso,media=cdrom", &DRIVE).to_string(),
            "local:iso/x.iso,media=cdrom"
        );
        assert_eq!(
            PropertyString::parse(
                "local-lvm:vm-100-disk-0,volume=local-lvm:vm-100-disk-1",
                &DRIVE
            ),
            Err(PropError::AliasTargetDefined("file".into()))
        );
        // Skipped blank parts, values containing '='.
        assert_eq!(
            p("a:1,,serial=UHJveG1veA==,", &DRIVE).get("serial"),
            Some("UHJveG1veA==")
        );
    }

    #[test]
    fn agent_truthiness_quirk() {
        assert_eq!(p("enabled=0,1", &AGENT).get("enabled"), Some("1"));
        assert_eq!(
            PropertyString::parse("1,0", &AGENT),
            Err(PropError::DuplicateKey("enabled".into()))
        );
        assert_eq!(
            p("1,fstrim_cloned_disks=ON", &AGENT).to_string(),
            "1,fstrim_cloned_disks=1"
        );
        assert_eq!(
            PropertyString::parse("freeze-fs=1,guest-fsfreeze=0", &AGENT),
            Err(PropError::AliasTargetDefined("freeze-fs".into()))
        );
    }

    #[test]
    fn ipconfig_order() {
        assert_eq!(
            p("ip6=auto,gw=10.100.1.1,ip=10.100.1.174/24", &IPCONFIG).to_string(),
            "ip=10.100.1.174/24,gw=10.100.1.1,ip6=auto"
        );
    }

    #[test]
    fn set_refuses_unprintable() {
        let mut ps = PropertyString::new(&NET);
        assert!(ps.set("trunks", "10,20").is_err());
        assert!(ps.set("tag", "").is_err());
        assert!(ps.set("firewall", "true").is_ok());
        assert_eq!(ps.get("firewall"), Some("1"));
    }

    #[test]
    fn indexed_keys() {
        assert_eq!(split_indexed("scsi12"), ("scsi", Some(12)));
        assert_eq!(split_indexed("agent"), ("agent", None));
        assert_eq!(split_indexed("123"), ("123", None));
        assert!(std::ptr::eq(
            format_for_config_key("net31").expect("net"),
            &NET
        ));
        assert!(std::ptr::eq(
            format_for_config_key("efidisk0").expect("efi"),
            &DRIVE
        ));
        assert!(format_for_config_key("memory").is_none());
    }
}
