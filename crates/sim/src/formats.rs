//! PVE's named formats and property strings (formats.md §4, §7, §8), reimplemented from the
//! written rules. Every message carries PVE's exact text, including trailing newlines.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use crate::schema::{PVal, check_value, is_optional, never_regex};

fn re(p: &str) -> regex::Regex {
    regex::Regex::new(p).unwrap_or_else(|_| never_regex())
}

macro_rules! static_re {
    ($name:ident, $pat:expr) => {
        fn $name() -> &'static regex::Regex {
            static R: OnceLock<regex::Regex> = OnceLock::new();
            R.get_or_init(|| re($pat))
        }
    };
}

static_re!(kv_re, r"^([^=]+)=(.+)$");
static_re!(node_re, r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$");
static_re!(configid_re, r"(?i)^[a-z][a-z0-9_-]+$");
static_re!(storeid_re, r"(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$");
static_re!(bridge_re, r"^[-_.\w\d]+$");
static_re!(iface_re, r"(?i)^[a-z][a-z0-9_]{1,20}([:.]\d+)?$");
static_re!(vlan_re, r"^(\d+)(?:-(\d+))?$");
static_re!(mac_re, r"(?i)^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$");
static_re!(
    dns_re,
    r"^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$"
);
static_re!(user_re, r"^[\w+\-~]+(\.[\w+\-~]+)*$");
static_re!(
    email_re,
    r"^[\w+\-~]+(\.[\w+\-~]+)*@[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*$"
);
static_re!(disksize_re, r"^(\d+(\.\d+)?)([KMGT](?:iB)?)?$");
static_re!(tag_re, r"(?i)^[a-z0-9_][a-z0-9_\-+.]*$");
static_re!(urlenc_re, r"^[-%a-zA-Z0-9_.!~*'()]*$");
static_re!(volid_re, r"(?i)^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$");
static_re!(cpuset_re, r"^\s*(\d+)(?:-(\d+))?\s*$");
static_re!(override_re, r"^([a-z]+)=([^.]*(?:\.?[^.]+)+)$");
static_re!(vgname_re, r"(?i)^[a-z0-9][a-z0-9\-_.]*[a-z0-9]$");
static_re!(alias_re, r"^(dc/|guest/)?[A-Za-z][A-Za-z0-9\-_]+$");
static_re!(realm_re, r"^[A-Za-z][A-Za-z0-9.\-_]+$");
static_re!(userid_re, r"^([^\s:/]+)@([A-Za-z][A-Za-z0-9.\-_]+)$");
static_re!(
    tokenid_re,
    r"^([^\s:/]+)@([A-Za-z][A-Za-z0-9.\-_]+)!([A-Za-z][A-Za-z0-9.\-_]+)$"
);
static_re!(poolid_re, r"^[A-Za-z0-9.\-_]+(?:/[A-Za-z0-9.\-_]+){0,2}$");
static_re!(ugid_re, r"^[A-Za-z0-9.\-_]+$");
static_re!(portal_re, r"^([[:alnum:]\-.]+|\[[^\]]+\])(?::(\d+))?$");

/// `split_list`: NUL-separated, or on `,`, `;` and whitespace with empty items dropped.
pub fn split_list(s: &str) -> Vec<String> {
    if s.contains('\0') {
        return s.split('\0').map(String::from).collect();
    }
    s.replace([',', ';'], " ")
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Perl truthiness of a string.
fn truthy(s: &str) -> bool {
    !s.is_empty() && s != "0"
}

/// Parses a property string into key → value (formats.md §4.1), without the object check.
pub fn parse_property_string(
    s: &str,
    fmt: &Map<String, Value>,
) -> Result<IndexMap<String, String>, String> {
    let mut res: IndexMap<String, String> = IndexMap::new();
    let default_key = fmt
        .iter()
        .find(|(_, v)| v.get("default_key").and_then(Value::as_i64).unwrap_or(0) != 0)
        .map(|(k, _)| k.clone());
    let mut bare_seen = false;
    for part in s.split(',') {
        if part.trim().is_empty() {
            continue;
        }
        if let Some(c) = kv_re().captures(part) {
            let k = c[1].to_string();
            let mut v = c[2].to_string();
            if res.contains_key(&k) {
                return Err(format!(
                    "duplicate key in comma-separated list property: {k}\n"
                ));
            }
            let mut key = k.clone();
            if let Some(target) = fmt
                .get(&k)
                .and_then(|x| x.get("alias"))
                .and_then(Value::as_str)
            {
                if let Some(ka) = fmt
                    .get(&k)
                    .and_then(|x| x.get("keyAlias"))
                    .and_then(Value::as_str)
                {
                    if res.contains_key(ka) {
                        return Err(format!("key alias '{ka}' is already defined\n"));
                    }
                    res.insert(ka.to_string(), k.clone());
                }
                key = target.to_string();
                if res.contains_key(&key) {
                    return Err(format!("key '{key}' is already defined (via alias)\n"));
                }
            }
            if sub_type(fmt, &key) == "boolean" {
                v = norm_bool(&v);
            }
            res.insert(key, v);
        } else if !part.contains('=') {
            let Some(dk) = default_key.clone() else {
                return Err("value without key, but schema does not define a default key\n".into());
            };
            if bare_seen || res.get(&dk).is_some_and(|x| truthy(x)) {
                return Err(format!(
                    "duplicate key in comma-separated list property: {dk}\n"
                ));
            }
            bare_seen = true;
            let mut v = part.to_string();
            if sub_type(fmt, &dk) == "boolean" {
                v = norm_bool(&v);
            }
            res.insert(dk, v);
        } else {
            return Err("missing key in comma-separated list property\n".into());
        }
    }
    Ok(res)
}

fn sub_type<'a>(fmt: &'a Map<String, Value>, k: &str) -> &'a str {
    fmt.get(k)
        .and_then(|x| x.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("string")
}

fn norm_bool(v: &str) -> String {
    match v.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => "1".into(),
        "0" | "off" | "no" | "false" => "0".into(),
        _ => v.to_string(),
    }
}

/// Parses and checks a property string; the error is the text after `invalid format - `.
pub fn check_property_string(
    s: &str,
    fmt: &Map<String, Value>,
    validator: Option<&str>,
    path: &str,
) -> Result<IndexMap<String, String>, String> {
    let res = parse_property_string(s, fmt)?;
    let mut lines: Vec<String> = Vec::new();
    for (k, sub) in fmt {
        if sub.get("alias").is_some() {
            continue;
        }
        if !res.contains_key(k) && !is_optional(sub) {
            lines.push(format!(
                "{path}.{k}: property is missing and it is not optional"
            ));
        }
    }
    for (k, v) in &res {
        let sub = match fmt.get(k) {
            Some(sub) if sub.get("alias").is_none() => sub,
            _ => {
                lines.push(format!(
                    "{path}.{k}: property is not defined in schema and the schema does not allow additional properties"
                ));
                continue;
            }
        };
        if let Some(req) = sub.get("requires").and_then(Value::as_str)
            && !res.contains_key(req)
        {
            lines.push(format!(
                "{path}.{req}: missing property required by '{path}.{k}'"
            ));
        }
        if let Err(e) = check_value(&PVal::Str(v.clone()), sub, &format!("{path}.{k}")) {
            lines.push(format!("{path}.{k}: {e}"));
        }
    }
    if !lines.is_empty() {
        lines.sort();
        let mut msg = String::from("format error\n");
        for l in lines {
            msg.push_str(&l);
            msg.push('\n');
        }
        return Err(msg);
    }
    if let Some(v) = validator {
        run_validator(v, &res)?;
    }
    Ok(res)
}

fn run_validator(name: &str, res: &IndexMap<String, String>) -> Result<(), String> {
    match name {
        "prune-backups" => {
            let keep_all = res.get("keep-all").is_some_and(|v| v == "1");
            let any_count = res
                .iter()
                .any(|(k, v)| k != "keep-all" && v.parse::<i64>().unwrap_or(0) > 0);
            if keep_all && any_count {
                return Err("keep-all cannot be set together with other options.\n".into());
            }
        }
        "backup-fleecing"
            if res.get("enabled").is_some_and(|v| v == "1") && !res.contains_key("storage") =>
        {
            return Err("'storage' parameter is required when 'enabled' is set\n".into());
        }
        "pve-vm-cpu-conf" => {
            let Some(ct) = res.get("cputype") else {
                return Err("CPU is missing cputype\n".into());
            };
            if let Some(name) = ct.strip_prefix("custom-") {
                return Err(format!("Custom cputype '{name}' not found\n"));
            }
            if !CPU_MODELS.split_whitespace().any(|m| m == ct) {
                return Err(format!(
                    "Built-in cputype '{ct}' is not defined (missing 'custom-' prefix?)\n"
                ));
            }
            if let Some(flags) = res.get("flags") {
                const OK: &[&str] = &[
                    "aes",
                    "amd-no-ssb",
                    "amd-ssbd",
                    "hv-evmcs",
                    "hv-tlbflush",
                    "ibpb",
                    "md-clear",
                    "nested-virt",
                    "pcid",
                    "pdpe1gb",
                    "spec-ctrl",
                    "ssbd",
                    "virt-ssbd",
                ];
                if flags
                    .split(';')
                    .any(|f| !OK.contains(&f.trim_start_matches(['+', '-'])))
                {
                    return Err(format!(
                        "VM-specific CPU flags must be a subset of: {}\n",
                        OK.join(", ")
                    ));
                }
            }
            if res.contains_key("reported-model") {
                return Err(
                    "Property 'reported-model' not allowed in VM-specific CPU config.\n".into(),
                );
            }
        }
        _ => {}
    }
    Ok(())
}

const CPU_MODELS: &str = "486 pentium pentium2 pentium3 coreduo core2duo Conroe Penryn Nehalem Nehalem-IBRS Westmere Westmere-IBRS SandyBridge SandyBridge-IBRS IvyBridge IvyBridge-IBRS Haswell Haswell-IBRS Haswell-noTSX Haswell-noTSX-IBRS Broadwell Broadwell-IBRS Broadwell-noTSX Broadwell-noTSX-IBRS Skylake-Client Skylake-Client-IBRS Skylake-Client-noTSX-IBRS Skylake-Client-v4 Skylake-Server Skylake-Server-IBRS Skylake-Server-noTSX-IBRS Skylake-Server-v4 Skylake-Server-v5 Cascadelake-Server Cascadelake-Server-v2 Cascadelake-Server-noTSX Cascadelake-Server-v4 Cascadelake-Server-v5 Cooperlake Cooperlake-v2 KnightsMill Icelake-Client Icelake-Client-noTSX Icelake-Server Icelake-Server-noTSX Icelake-Server-v3 Icelake-Server-v4 Icelake-Server-v5 Icelake-Server-v6 Icelake-Server-v7 SapphireRapids SapphireRapids-v2 SapphireRapids-v3 SapphireRapids-v4 GraniteRapids GraniteRapids-v2 GraniteRapids-v3 SierraForest SierraForest-v2 SierraForest-v3 ClearwaterForest athlon phenom Opteron_G1 Opteron_G2 Opteron_G3 Opteron_G4 Opteron_G5 EPYC EPYC-IBPB EPYC-v3 EPYC-v4 EPYC-v5 EPYC-Rome EPYC-Rome-v2 EPYC-Rome-v3 EPYC-Rome-v4 EPYC-Rome-v5 EPYC-Milan EPYC-Milan-v2 EPYC-Milan-v3 EPYC-Genoa EPYC-Genoa-v2 EPYC-Turin kvm32 kvm64 qemu32 qemu64 max host x86-64-v2 x86-64-v2-AES x86-64-v3 x86-64-v4 a64fx cortex-a35 cortex-a53 cortex-a55 cortex-a57 cortex-a710 cortex-a72 cortex-a76 neoverse-n1 neoverse-n2 neoverse-v1";

/// Sub-schemas of the property-string formats the apidata only names (formats.md §8).
pub fn hash_format(name: &str) -> Option<Map<String, Value>> {
    let b = || json!({"type": "boolean", "optional": 1});
    let v = match name {
        "pve-qm-ipconfig" => json!({
            "ip": {"type": "string", "format": "pve-ipv4-config", "optional": 1},
            "gw": {"type": "string", "format": "ipv4", "optional": 1, "requires": "ip"},
            "ip6": {"type": "string", "format": "pve-ipv6-config", "optional": 1},
            "gw6": {"type": "string", "format": "ipv6", "optional": 1, "requires": "ip6"},
        }),
        "pve-qm-hostpci" => {
            let p = r"(?:[a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(?:\.[a-f0-9])?";
            json!({
                "host": {"type": "string", "default_key": 1, "optional": 1, "pattern": format!("{p}(;{p})*")},
                "mapping": {"type": "string", "format": "pve-configid", "optional": 1},
                "rombar": b(), "pcie": b(), "x-vga": b(), "legacy-igd": b(),
                "romfile": {"type": "string", "pattern": "[^,;]+", "optional": 1},
                "mdev": {"type": "string", "pattern": r"[^/\.:]+", "optional": 1},
                "vendor-id": {"type": "string", "pattern": "^0x[0-9a-fA-F]{4}$", "optional": 1},
                "device-id": {"type": "string", "pattern": "^0x[0-9a-fA-F]{4}$", "optional": 1},
                "sub-vendor-id": {"type": "string", "pattern": "^0x[0-9a-fA-F]{4}$", "optional": 1},
                "sub-device-id": {"type": "string", "pattern": "^0x[0-9a-fA-F]{4}$", "optional": 1},
                "driver": {"type": "string", "enum": ["vfio", "keep"], "optional": 1},
            })
        }
        "pve-qm-ide" => {
            let props = crate::schema::ApiSchema::get()
                .method("POST", "/nodes/{node}/qemu")
                .and_then(|m| m.parameters.get("properties"))
                .and_then(|p| p.get("ide[n]"))
                .and_then(|p| p.get("format"))
                .and_then(Value::as_object)
                .cloned()?;
            let mut props = props;
            props.remove("import-from");
            return Some(props);
        }
        "pve-qm-boot" => json!({
            "legacy": {"type": "string", "default_key": 1, "optional": 1, "pattern": "[acdn]{1,4}"},
            "order": {"type": "string", "format": "pve-qm-bootdev-list", "optional": 1},
        }),
        "pve-qm-cicustom" => json!({
            "meta": {"type": "string", "format": "pve-volume-id", "optional": 1},
            "network": {"type": "string", "format": "pve-volume-id", "optional": 1},
            "user": {"type": "string", "format": "pve-volume-id", "optional": 1},
            "vendor": {"type": "string", "format": "pve-volume-id", "optional": 1},
        }),
        "pve-qm-rng" => json!({
            "source": {"type": "string", "default_key": 1, "enum": ["/dev/urandom", "/dev/random", "/dev/hwrng"]},
            "max_bytes": {"type": "integer", "optional": 1},
            "period": {"type": "integer", "optional": 1},
        }),
        "pve-qm-smbios1" => {
            let p = r"[A-Za-z0-9+\/]+={0,2}";
            json!({
                "uuid": {"type": "string", "optional": 1, "pattern": r"[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}"},
                "version": {"type": "string", "optional": 1, "pattern": p},
                "serial": {"type": "string", "optional": 1, "pattern": p},
                "manufacturer": {"type": "string", "optional": 1, "pattern": p},
                "product": {"type": "string", "optional": 1, "pattern": p},
                "sku": {"type": "string", "optional": 1, "pattern": p},
                "family": {"type": "string", "optional": 1, "pattern": p},
                "base64": b(),
            })
        }
        "pve-qm-watchdog" => json!({
            "model": {"type": "string", "default_key": 1, "optional": 1, "enum": ["i6300esb", "ib700"]},
            "action": {"type": "string", "optional": 1, "enum": ["reset", "shutdown", "poweroff", "pause", "debug", "none"]},
        }),
        "pve-vm-cpu-conf" => json!({
            "cputype": {"type": "string", "default_key": 1, "optional": 1},
            "reported-model": {"type": "string", "optional": 1},
            "hidden": b(),
            "hv-vendor-id": {"type": "string", "optional": 1, "pattern": "[a-zA-Z0-9]{1,12}"},
            "flags": {"type": "string", "optional": 1, "pattern": r"[+-][a-zA-Z0-9\-_\.]+(;[+-][a-zA-Z0-9\-_\.]+)*"},
            "guest-phys-bits": {"type": "integer", "optional": 1, "minimum": 32, "maximum": 64},
            "phys-bits": {"type": "string", "optional": 1, "format": "pve-phys-bits"},
        }),
        "pve-qemu-sev-fmt" => json!({
            "type": {"type": "string", "default_key": 1, "enum": ["std", "es", "snp"], "maxLength": 3},
            "no-debug": b(), "no-key-sharing": b(), "allow-smt": b(), "kernel-hashes": b(),
        }),
        "pve-qemu-tdx-fmt" => json!({
            "type": {"type": "string", "default_key": 1, "enum": ["tdx"]},
            "attestation": {"type": "boolean"},
            "vsock-cid": {"type": "integer", "optional": 1, "minimum": 2},
            "vsock-port": {"type": "integer", "optional": 1, "minimum": 0},
        }),
        "backup-fleecing" => json!({
            "enabled": {"type": "boolean", "default_key": 1, "optional": 1},
            "storage": {"type": "string", "format": "pve-storage-id", "optional": 1},
        }),
        "backup-performance" => json!({
            "max-workers": {"type": "integer", "optional": 1, "minimum": 1, "maximum": 256},
            "pbs-entries-max": {"type": "integer", "optional": 1, "minimum": 1},
        }),
        "prune-backups" => json!({
            "keep-all": b(),
            "keep-last": {"type": "integer", "optional": 1, "minimum": 0},
            "keep-hourly": {"type": "integer", "optional": 1, "minimum": 0},
            "keep-daily": {"type": "integer", "optional": 1, "minimum": 0},
            "keep-weekly": {"type": "integer", "optional": 1, "minimum": 0},
            "keep-monthly": {"type": "integer", "optional": 1, "minimum": 0},
            "keep-yearly": {"type": "integer", "optional": 1, "minimum": 0},
        }),
        _ => return None,
    };
    v.as_object().cloned()
}

/// Checks a value against a named format; `Err` is the text after `invalid format - `.
pub fn check_named(name: &str, v: &str, path: &str) -> Result<(), String> {
    static SPLIT: OnceLock<regex::Regex> = OnceLock::new();
    let split = SPLIT.get_or_init(|| re(r"^(.*?)(?:-(list|opt))?$"));
    let (base, suffix) = match split.captures(name) {
        Some(c) => (
            c.get(1).map_or(name, |m| m.as_str()).to_string(),
            c.get(2).map(|m| m.as_str().to_string()),
        ),
        None => (name.to_string(), None),
    };
    // Formats whose own name ends in -list are registered whole.
    if matches!(name, "pve-hotplug-features") {
        return check_code(name, v);
    }
    match suffix.as_deref() {
        Some("list") => {
            for item in split_list(v) {
                check_one(&base, &item, path)?;
            }
            Ok(())
        }
        Some("opt") => {
            if truthy(v) {
                check_one(&base, v, path)
            } else {
                Ok(())
            }
        }
        _ => check_one(&base, v, path),
    }
}

fn check_one(base: &str, v: &str, path: &str) -> Result<(), String> {
    if let Some(fmt) = hash_format(base) {
        let validator = matches!(
            base,
            "prune-backups" | "backup-fleecing" | "pve-vm-cpu-conf"
        )
        .then_some(base);
        return check_property_string(v, &fmt, validator, path).map(|_| ());
    }
    check_code(base, v)
}

fn ipv4_ok(s: &str) -> bool {
    s.parse::<Ipv4Addr>().is_ok()
}

fn ipv6_ok(s: &str) -> bool {
    s.parse::<Ipv6Addr>().is_ok()
}

fn cidr_ok(s: &str, v4: bool, v6: bool) -> bool {
    let Some((a, p)) = s.split_once('/') else {
        return false;
    };
    let Ok(p) = p.parse::<u32>() else {
        return false;
    };
    if p.to_string() != s.split_once('/').map_or("", |x| x.1) {
        return false;
    }
    (v4 && ipv4_ok(a) && (8..=32).contains(&p)) || (v6 && ipv6_ok(a) && (8..=128).contains(&p))
}

/// Services from `/etc/services` that rules may name (a Debian netbase subset).
pub const SERVICES: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("tftp", 69),
    ("http", 80),
    ("kerberos", 88),
    ("pop3", 110),
    ("sunrpc", 111),
    ("ntp", 123),
    ("netbios-ns", 137),
    ("imap2", 143),
    ("snmp", 161),
    ("ldap", 389),
    ("https", 443),
    ("microsoft-ds", 445),
    ("submission", 587),
    ("ldaps", 636),
    ("rsync", 873),
    ("imaps", 993),
    ("pop3s", 995),
    ("openvpn", 1194),
    ("nfs", 2049),
    ("mysql", 3306),
    ("postgresql", 5432),
    ("syslog", 514),
    ("bootps", 67),
    ("bootpc", 68),
    ("isakmp", 500),
    ("mdns", 5353),
    ("http-alt", 8080),
    ("x11", 6000),
    ("iscsi-target", 3260),
    ("mqtt", 1883),
];

/// Protocols from `/etc/protocols` (name, number).
pub const PROTOCOLS: &[(&str, u8)] = &[
    ("ip", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ggp", 3),
    ("ipencap", 4),
    ("st", 5),
    ("tcp", 6),
    ("egp", 8),
    ("igp", 9),
    ("pup", 12),
    ("udp", 17),
    ("hmp", 20),
    ("xns-idp", 22),
    ("rdp", 27),
    ("iso-tp4", 29),
    ("dccp", 33),
    ("xtp", 36),
    ("ddp", 37),
    ("idpr-cmtp", 38),
    ("ipv6", 41),
    ("ipv6-route", 43),
    ("ipv6-frag", 44),
    ("idrp", 45),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("skip", 57),
    ("ipv6-icmp", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("rspf", 73),
    ("vmtp", 81),
    ("eigrp", 88),
    ("ospf", 89),
    ("ax.25", 93),
    ("ipip", 94),
    ("etherip", 97),
    ("encap", 98),
    ("pim", 103),
    ("ipcomp", 108),
    ("vrrp", 112),
    ("l2tp", 115),
    ("isis", 124),
    ("sctp", 132),
    ("fc", 133),
    ("mobility-header", 135),
    ("udplite", 136),
    ("mpls-in-ip", 137),
    ("manet", 138),
    ("hip", 139),
    ("shim6", 140),
    ("wesp", 141),
    ("rohc", 142),
    ("ethernet", 143),
];

pub const ICMP_TYPES: &str = "any echo-reply destination-unreachable network-unreachable host-unreachable protocol-unreachable port-unreachable fragmentation-needed source-route-failed network-unknown host-unknown network-prohibited host-prohibited TOS-network-unreachable TOS-host-unreachable communication-prohibited host-precedence-violation precedence-cutoff source-quench redirect network-redirect host-redirect TOS-network-redirect TOS-host-redirect echo-request router-advertisement router-solicitation time-exceeded ttl-zero-during-transit ttl-zero-during-reassembly parameter-problem ip-header-bad required-option-missing timestamp-request timestamp-reply address-mask-request address-mask-reply";
pub const ICMPV6_TYPES: &str = "destination-unreachable no-route communication-prohibited beyond-scope address-unreachable port-unreachable failed-policy reject-route packet-too-big time-exceeded ttl-zero-during-transit ttl-zero-during-reassembly parameter-problem bad-header unknown-header-type unknown-option echo-request echo-reply router-solicitation router-advertisement neighbor-solicitation neighbour-solicitation neighbor-advertisement neighbour-advertisement redirect";

fn is_icmp_name(s: &str) -> bool {
    ICMP_TYPES.split(' ').any(|x| x == s) || ICMPV6_TYPES.split(' ').any(|x| x == s)
}

/// pve-firewall `parse_port_name_number_or_range`: Perl's `split /,/` (a trailing
/// comma makes the rejoined text differ: "extraneous commas"), `N:M` ranges with the
/// offending side named, plain numbers, `/etc/services` names, ICMP type names for
/// dport.
fn ports_check(v: &str, dport: bool) -> Result<(), String> {
    let digits = |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_digit());
    let big = |x: &str| {
        x.trim_start_matches('0').len() > 5 || x.parse::<u32>().map_or(true, |n| n > 65535)
    };
    let mut items: Vec<&str> = v.split(',').collect();
    while items.last().is_some_and(|i| i.is_empty()) {
        items.pop();
    }
    if items.join(",") != v {
        return Err("extraneous commas in list\n".into());
    }
    let mut count = 0;
    let mut icmp = false;
    for item in &items {
        if let Some((a, b)) = item.split_once(':')
            && digits(a)
            && digits(b)
        {
            count += 2;
            if big(a) {
                return Err(format!("invalid port '{a}'\n"));
            }
            if big(b) {
                return Err(format!("invalid port '{b}'\n"));
            }
            let (x, y): (u32, u32) = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
            if x > y {
                return Err(format!(
                    "backwards range '{a}:{b}' not allowed, did you mean '{b}:{a}'?\n"
                ));
            }
        } else if digits(item) {
            count += 1;
            if big(item) {
                return Err(format!("invalid port '{item}'\n"));
            }
        } else if dport && is_icmp_name(item) {
            icmp = true;
        } else if !SERVICES.iter().any(|(n, _)| n == item) {
            return Err(format!("invalid port '{item}'\n"));
        }
    }
    if icmp && count > 0 {
        return Err("ICMP ports not allowed in port range\n".into());
    }
    if count > 15 {
        return Err("too many entries in port list (> 15 numbers)\n".into());
    }
    Ok(())
}

fn storage_id_check(v: &str) -> Result<(), String> {
    if v.chars().count() < 2 {
        return Err(format!(
            "storage ID '{v}' cannot be shorter than 2 characters\n"
        ));
    }
    if !storeid_re().is_match(v) {
        return Err(format!("storage ID '{v}' contains illegal characters\n"));
    }
    Ok(())
}

fn volid_check(v: &str) -> Result<(), String> {
    if volid_re().is_match(v) {
        Ok(())
    } else {
        Err(format!("unable to parse volume ID '{v}'\n"))
    }
}

fn drive_name_ok(s: &str, allow_efi: bool) -> bool {
    let ranges = [("ide", 3), ("sata", 5), ("scsi", 30), ("virtio", 15)];
    if allow_efi && (s == "efidisk0" || s == "tpmstate0") {
        return true;
    }
    ranges.iter().any(|(p, max)| {
        s.strip_prefix(p)
            .and_then(|n| {
                (!n.is_empty() && (n == "0" || !n.starts_with('0')))
                    .then(|| n.parse::<u32>().ok())
                    .flatten()
            })
            .is_some_and(|n| n <= *max)
    })
}

fn indexed_ok(s: &str, prefix: &str, max: u32) -> bool {
    s.strip_prefix(prefix)
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n <= max)
}

const PRIVS: &str = "Permissions.Modify VM.Config.Disk VM.Config.CPU VM.Config.Memory VM.Config.Network VM.Config.HWType VM.Config.Options VM.Allocate VM.Clone VM.GuestAgent.Unrestricted VM.Migrate VM.Replicate VM.Snapshot VM.Snapshot.Rollback VM.Config.CDROM VM.Config.Cloudinit VM.Console VM.Backup VM.GuestAgent.FileRead VM.GuestAgent.FileSystemMgmt VM.GuestAgent.FileWrite VM.PowerMgmt VM.Audit VM.GuestAgent.Audit Sys.PowerMgmt Sys.Modify Sys.Incoming Sys.AccessNetwork Sys.Console Sys.Syslog Sys.Audit Datastore.Allocate Datastore.AllocateTemplate Datastore.AllocateSpace Datastore.Audit SDN.Allocate SDN.Audit SDN.Use Realm.Allocate User.Modify Group.Allocate Realm.AllocateUser Pool.Allocate Pool.Audit Mapping.Modify Mapping.Use Mapping.Audit";

/// All privilege names of PVE 9.
pub fn all_privs() -> Vec<&'static str> {
    PRIVS.split(' ').collect()
}

fn check_code(name: &str, v: &str) -> Result<(), String> {
    match name {
        "pve-vmid" => {
            static R: OnceLock<regex::Regex> = OnceLock::new();
            if !R.get_or_init(|| re(r"^[1-9][0-9]{2,8}$")).is_match(v) {
                return Err("value does not look like a valid VM ID\n".into());
            }
        }
        "pve-node" if !node_re().is_match(v) => {
            return Err("value does not look like a valid node name\n".into());
        }
        // Mapping::Dir's path (no quoting in property strings yet).
        "pve-storage-path-in-property-string"
            if !v.starts_with('/') || v.len() < 2 || v.contains([';', ',', '=', '(', ')']) =>
        {
            return Err("Value does not look like a valid absolute path. These symbols are currently not allowed in path: ;,=()\n".into());
        }
        "pve-configid" if !configid_re().is_match(v) => {
            return Err(format!("invalid configuration ID '{v}'\n"));
        }
        "pve-storage-id" => storage_id_check(v)?,
        "pve-bridge-id" if !bridge_re().is_match(v) => {
            return Err(format!("invalid bridge ID '{v}'\n"));
        }
        "pve-iface" if !iface_re().is_match(v) => {
            return Err(format!("invalid network interface name '{v}'\n"));
        }
        "pve-vlan-id-or-range" => {
            // pve_verify_vlan_id_or_range: the start tag is checked first, each tag
            // is named on its own; an end of "0" is Perl-false and not checked.
            let Some(c) = vlan_re().captures(v) else {
                return Err(format!("invalid VLAN configuration '{v}'\n"));
            };
            let tag_ok = |t: &str| {
                let n: f64 = t.parse().unwrap_or(f64::MAX);
                if (2.0..=4094.0).contains(&n) {
                    Ok(n)
                } else {
                    Err(format!("invalid VLAN tag '{t}'\n"))
                }
            };
            let a = tag_ok(&c[1])?;
            if let Some(b) = c.get(2).map(|m| m.as_str()).filter(|b| *b != "0") {
                let b = tag_ok(b)?;
                if a >= b {
                    return Err(format!(
                        "VLAN range must go from lower to higher tag '{v}'\n"
                    ));
                }
            }
        }
        "mac-addr" if !mac_re().is_match(v) => {
            return Err("value does not look like a valid unicast MAC address\n".into());
        }
        "mac-prefix" => {}
        "ipv4" if !ipv4_ok(v) => {
            return Err("value does not look like a valid IPv4 address\n".into());
        }
        "ipv6" if !ipv6_ok(v) => {
            return Err("value does not look like a valid IPv6 address\n".into());
        }
        "ip" if !ipv4_ok(v) && !ipv6_ok(v) => {
            return Err("value does not look like a valid IP address\n".into());
        }
        "ipv4mask" => {
            let ok = v.parse::<Ipv4Addr>().is_ok_and(|ip| {
                let b = u32::from(ip);
                b.leading_ones() + b.trailing_zeros() == 32 || b == 0
            });
            if !ok {
                return Err("value does not look like a valid IP netmask\n".into());
            }
        }
        "CIDRv4" if !cidr_ok(v, true, false) => {
            return Err("value does not look like a valid IPv4 CIDR network\n".into());
        }
        "CIDRv6" if !cidr_ok(v, false, true) => {
            return Err("value does not look like a valid IPv6 CIDR network\n".into());
        }
        "CIDR" if !cidr_ok(v, true, true) => {
            return Err("value does not look like a valid CIDR network\n".into());
        }
        "dns-name" if !dns_re().is_match(v) => {
            return Err("value does not look like a valid DNS name\n".into());
        }
        "address" if !ipv4_ok(v) && !ipv6_ok(v) && !dns_re().is_match(v) => {
            return Err(format!("value does not look like a valid address: {v}\n"));
        }
        "email-or-username" if !email_re().is_match(v) && !user_re().is_match(v) => {
            return Err("value does not look like a valid email address or user name\n".into());
        }
        "email" if !email_re().is_match(v) => {
            return Err("value does not look like a valid email address\n".into());
        }
        "disk-size" if !disksize_re().is_match(v) => {
            return Err(format!("value does not look like a valid disk size: {v}\n"));
        }
        "pve-startup-order" => {
            let ok = truthy(v)
                && v.split(',').filter(|p| !p.trim().is_empty()).all(|p| {
                    static R: OnceLock<regex::Regex> = OnceLock::new();
                    R.get_or_init(|| re(r"^(order=|up=|down=)?\d+$"))
                        .is_match(p)
                });
            if !ok {
                return Err("unable to parse startup options\n".into());
            }
        }
        "pve-tag" if !tag_re().is_match(v) => {
            return Err("invalid characters in tag\n".into());
        }
        "urlencoded" if !urlenc_re().is_match(v) => {
            return Err(format!("invalid urlencoded string: {v}\n"));
        }
        "storage-pair" if v != "1" => {
            let parts: Vec<&str> = v.split(':').collect();
            let bad = parts.len() > 2 || parts.iter().any(|p| storage_id_check(p).is_err());
            if bad {
                let e = storage_id_check(v).err().unwrap_or_default();
                return Err(format!("entry '{v}' contains invalid ID - {e}\n\n"));
            }
        }
        "pve-volume-id" => volid_check(v)?,
        "pve-volume-id-or-absolute-path" if !v.starts_with('/') => {
            volid_check(v)?;
        }
        "pve-volume-id-or-qm-path" if v != "none" && v != "cdrom" && !v.starts_with('/') => {
            volid_check(v)?;
        }
        "pve-qm-bootdisk" if !drive_name_ok(v, true) => {
            return Err(format!("invalid boot disk '{v}'\n"));
        }
        "pve-qm-bootdev" => {
            let ok = drive_name_ok(v, false)
                || indexed_ok(v, "net", 31)
                || indexed_ok(v, "usb", 13)
                || indexed_ok(v, "hostpci", 15);
            if !ok {
                return Err(format!("invalid boot device '{v}'\n"));
            }
        }
        "pve-cpuset" => {
            // CpuSet::parse_cpuset over Perl's `split /,/`, which drops trailing empty
            // fields: `0-3,` is `0-3`, while `,0-3` or `0,,1` have an empty part.
            let mut parts: Vec<&str> = v.split(',').collect();
            while parts.last().is_some_and(|p| p.is_empty()) {
                parts.pop();
            }
            for p in parts {
                let ok = cpuset_re().captures(p).is_some_and(|c| {
                    let a: u64 = c[1].parse().unwrap_or(0);
                    c.get(2)
                        .is_none_or(|b| b.as_str().parse::<u64>().is_ok_and(|b| a <= b))
                });
                if !ok {
                    return Err("unable to parse cpuset option\n".into());
                }
            }
        }
        "pve-hotplug-features" if v != "0" && v != "1" => {
            for f in split_list(v) {
                if !["network", "disk", "cpu", "memory", "usb", "cloudinit"].contains(&f.as_str()) {
                    return Err(format!("invalid hotplug feature '{f}'\n"));
                }
            }
        }
        "pve-phys-bits" => {
            let ok = v == "host"
                || (v.len() <= 2 && v.parse::<u32>().is_ok_and(|n| (8..=64).contains(&n)));
            if !ok {
                return Err("value must be an integer between 8 and 64 or 'host'\n".into());
            }
        }
        "pve-storage-content"
            if ![
                "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "none", "import",
            ]
            .contains(&v) =>
        {
            return Err(format!("invalid content type '{v}'\n"));
        }
        "pve-dir-override" => {
            let Some(c) = override_re().captures(v) else {
                return Err(format!("invalid override '{v}'\n"));
            };
            check_code("pve-storage-content", &c[1])?;
        }
        "pve-storage-path" => {
            static R: OnceLock<regex::Regex> = OnceLock::new();
            if !R.get_or_init(|| re(r"^/[^;()]+")).is_match(v) {
                return Err("value does not look like a valid absolute path\n".into());
            }
        }
        "pve-storage-server" if !ipv4_ok(v) && !ipv6_ok(v) && !dns_re().is_match(v) => {
            return Err("value does not look like a valid server name or IP address\n".into());
        }
        "pve-storage-portal-dns" => {
            let ok = portal_re().is_match(v) || ipv6_ok(v.rsplit_once('.').map_or(v, |x| x.0));
            if !ok || v.contains('_') {
                return Err("value does not look like a valid portal address\n".into());
            }
        }
        "pve-storage-vgname" if !vgname_re().is_match(v) => {
            return Err(format!("lvm name '{v}' contains illegal characters\n"));
        }
        "pve-storage-options" if (v.is_empty() || v.chars().any(char::is_whitespace)) => {
            return Err(format!("invalid options '{v}'\n"));
        }
        "IPorCIDR" => ip_or_cidr(v)?,
        "IPorCIDRorAlias" if !alias_re().is_match(v) => {
            ip_or_cidr(v)?;
        }
        "pve-fw-addr-spec" => {
            if v.is_empty() {
                return Ok(());
            }
            if let Some(name) = v.strip_prefix('+')
                && !name.is_empty()
                && !name.chars().any(char::is_whitespace)
            {
                if v.len() > 65 {
                    return Err("ipset name too long\n".into());
                }
                return Ok(());
            }
            if alias_re().is_match(v) {
                if v.len() > 64 {
                    return Err("alias name too long\n".into());
                }
                return Ok(());
            }
            crate::netip::address_list(v).map_err(|e| format!("{e}\n"))?;
        }
        "pve-fw-dport-spec" => ports_check(v, true)?,
        "pve-fw-sport-spec" => ports_check(v, false)?,
        "pve-fw-protocol-spec"
            if !v.is_empty()
                && v != "icmpv6"
                && !PROTOCOLS
                    .iter()
                    .any(|(n, num)| *n == v || num.to_string() == v) =>
        {
            return Err(format!("unknown protocol '{v}'\n"));
        }
        "pve-fw-icmp-type-spec" if !v.is_empty() && !is_icmp_name(v) => {
            return Err(format!("invalid icmp-type value '{v}'\n"));
        }
        "pve-fw-conntrack-helper" => {
            const H: &[&str] = &[
                "amanda",
                "ftp",
                "irc",
                "netbios-ns",
                "pptp",
                "sane",
                "sip",
                "snmp",
                "tftp",
            ];
            let items: Vec<&str> = v.split(',').collect();
            if v.is_empty() {
                return Ok(());
            }
            for i in items {
                if !H.contains(&i) {
                    return Err(format!(
                        "unknown helper {i} at /usr/share/perl5/PVE/Firewall.pm line 1167.\n"
                    ));
                }
            }
        }
        "pve-realm" if !realm_re().is_match(v) => {
            return Err("value does not look like a valid realm\n".into());
        }
        "pve-priv" if !PRIVS.split(' ').any(|p| p == v) => {
            return Err(format!("invalid privilege '{v}'\n"));
        }
        "pve-poolid" => {
            if v.split('/').count() > 3 {
                return Err(format!(
                    "pool name '{v}' nested too deeply (max levels = 3)\n"
                ));
            }
            if !poolid_re().is_match(v) {
                return Err(format!("pool name '{v}' contains invalid characters\n"));
            }
        }
        "pve-day-of-week" if !["mon", "tue", "wed", "thu", "fri", "sat", "sun"].contains(&v) => {
            return Err(format!("invalid day '{v}'\n"));
        }
        "pve-calendar-event" => {
            crate::calendar::parse(v)
                .map_err(|e| format!("invalid calendar event '{v}' - {e}\n"))?;
        }
        "pve-ipv4-config" if v != "dhcp" && v != "manual" && !cidr_ok(v, true, false) => {
            return Err("value does not look like a valid ipv4 network configuration\n".into());
        }
        "pve-ipv6-config"
            if !["auto", "dhcp", "manual"].contains(&v) && !cidr_ok(v, false, true) =>
        {
            return Err("value does not look like a valid ipv6 network configuration\n".into());
        }
        "pve-userid" => {
            if v.len() < 3 {
                return Err(format!("user name '{v}' is too short\n"));
            }
            if v.len() > 64 {
                return Err(format!("user name '{v}' is too long ({} > 64)\n", v.len()));
            }
            if !userid_re().is_match(v) {
                return Err(format!(
                    "value '{v}' does not look like a valid user name\n"
                ));
            }
        }
        "pve-tokenid" if !tokenid_re().is_match(v) => {
            return Err(format!("value '{v}' does not look like a valid token ID\n"));
        }
        "pve-groupid" if !ugid_re().is_match(v) => {
            return Err(format!("group name '{v}' contains invalid characters\n"));
        }
        "pve-roleid" if !ugid_re().is_match(v) => {
            return Err(format!("role name '{v}' contains invalid characters\n"));
        }
        "pve-task-status-type" if !["ok", "error", "warning", "unknown"].contains(&v) => {
            return Err(format!("invalid task status type '{v}'\n"));
        }
        // Formats outside the simulated endpoints are accepted as is (their endpoints
        // answer 501 anyway).
        _ => {}
    }
    Ok(())
}

fn ip_or_cidr(v: &str) -> Result<(), String> {
    static R: OnceLock<regex::Regex> = OnceLock::new();
    let r = R.get_or_init(|| re(r"^([0-9a-fA-F:.]+)(/\d+)?$"));
    let Some(c) = r.captures(v) else {
        return Err("value does not look like a valid IP address or CIDR network\n".into());
    };
    let addr = &c[1];
    if !ipv4_ok(addr) && !ipv6_ok(addr) {
        return Err("value does not look like a valid IP address or CIDR network\n".into());
    }
    if let Some(p) = c.get(2) {
        let p: u32 = p.as_str()[1..].parse().unwrap_or(999);
        let max = if addr.contains(':') { 128 } else { 32 };
        if p > max {
            return Err(format!(
                "Prefix length {p} is longer than IP address ({max})\n"
            ));
        }
        if p == 0
            && addr != "0.0.0.0"
            && addr != "::"
            && let Ok(ip) = addr.parse::<Ipv4Addr>()
        {
            return Err(format!("Invalid prefix {:032b}/0\n", u32::from(ip)));
        }
    }
    Ok(())
}

/// Is `s` a valid volume id (`storage:volume`)? Used by handlers.
pub fn parse_volid(s: &str) -> Option<(String, String)> {
    volid_re()
        .captures(s)
        .map(|c| (c[1].to_string(), c[2].to_string()))
}

/// Parses a `disk-size` value into bytes (powers of 1024, truncated).
pub fn parse_size(s: &str) -> Option<u64> {
    let c = disksize_re().captures(s)?;
    let n: f64 = c[1].parse().ok()?;
    let mul = match c.get(3).map(|m| m.as_str().chars().next()) {
        Some(Some('K')) => 1u64 << 10,
        Some(Some('M')) => 1 << 20,
        Some(Some('G')) => 1 << 30,
        Some(Some('T')) => 1 << 40,
        _ => 1,
    };
    Some((n * mul as f64) as u64)
}

/// PVE's `format_size`: the largest exact unit, without `iB`.
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("T", 40u32), ("G", 30), ("M", 20), ("K", 10)] {
        let m = 1u64 << shift;
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{unit}", bytes / m);
        }
    }
    bytes.to_string()
}
