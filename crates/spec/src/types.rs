//! Small value types of the spec that carry their own syntax (CIDRs, sizes, tags,
//! secret references). Each parses from a YAML string and says what is wrong in a
//! sentence that can be shown next to the offending value.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Deserialize` through `FromStr` and `Serialize` through `Display`, so
/// that the YAML form and the printed form are one and the same.
macro_rules! string_type {
    ($ty:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<$ty, E> {
                        n.to_string().parse().map_err(E::custom)
                    }
                    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<$ty, E> {
                        n.to_string().parse().map_err(E::custom)
                    }
                }
                d.deserialize_any(V)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

/// An IP network in CIDR notation. A bare address is accepted and means a single host
/// (`/32` or `/128`), the way PVE's firewall reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(pub IpNet);

impl Cidr {
    pub fn net(&self) -> IpNet {
        self.0
    }
    /// True when the host bits are zero (`192.168.1.0/24`, not `192.168.1.7/24`).
    pub fn is_network_address(&self) -> bool {
        self.0.network() == self.0.addr()
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty CIDR; expected a network such as 192.168.1.0/24".into());
        }
        if let Some((host, port)) = t.rsplit_once(':')
            && !t.contains('/')
            && host.parse::<std::net::Ipv4Addr>().is_ok()
            && port.parse::<u16>().is_ok()
        {
            return Err(format!(
                "`{t}` is an address with a port; firewall sources and destinations are CIDRs (use `{host}/32` and put the port in `dport`)"
            ));
        }
        if let Some((addr, len)) = t.split_once('/') {
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("`{addr}` in `{t}` is not an IP address"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len: u8 = len
                .parse()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("`/{len}` in `{t}` is not a prefix length (0–{max})"))?;
            IpNet::new(ip, len)
                .map(Cidr)
                .map_err(|e| format!("`{t}` is not a CIDR: {e}"))
        } else {
            let ip: IpAddr = t.parse().map_err(|_| {
                format!("`{t}` is not a CIDR or IP address; expected e.g. 192.168.1.0/24")
            })?;
            Ok(Cidr(IpNet::from(ip)))
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
string_type!(Cidr, "a CIDR such as 192.168.1.0/24");

impl JsonSchema for Cidr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cidr".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "IPv4/IPv6 network in CIDR notation (e.g. 192.168.1.0/24); a bare address means one host.",
        })
    }
}

/// A byte size as PVE writes it: a number with an optional `K`, `M`, `G` or `T` suffix
/// (binary units, `GiB` also accepted). A bare integer is a number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Size(pub u64);

const KIB: u64 = 1024;

impl Size {
    pub fn bytes(&self) -> u64 {
        self.0
    }
    pub fn mib(&self) -> u64 {
        self.0 / (KIB * KIB)
    }
    pub fn gib(n: u64) -> Size {
        Size(n * KIB * KIB * KIB)
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(digits_end);
        let n: u64 = num.parse().map_err(|_| {
            format!("`{t}` is not a size; expected a whole number with a unit, e.g. 32G or 512M")
        })?;
        let mult = match unit.trim() {
            "" | "B" => 1,
            "K" | "KiB" | "k" => KIB,
            "M" | "MiB" => KIB * KIB,
            "G" | "GiB" => KIB * KIB * KIB,
            "T" | "TiB" => KIB * KIB * KIB * KIB,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{t}`; use K, M, G or T (binary units, as PVE does)"
                ));
            }
        };
        n.checked_mul(mult)
            .map(Size)
            .ok_or_else(|| format!("size `{t}` is too large"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [
            (KIB * KIB * KIB * KIB, "T"),
            (KIB * KIB * KIB, "G"),
            (KIB * KIB, "M"),
            (KIB, "K"),
        ];
        for (m, u) in units {
            if self.0 >= m && self.0.is_multiple_of(m) {
                return write!(f, "{}{u}", self.0 / m);
            }
        }
        write!(f, "{}", self.0)
    }
}
string_type!(Size, "a size such as 32G or 512M");

impl JsonSchema for Size {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(B|K|KiB|M|MiB|G|GiB|T|TiB)?$",
            "description": "Size with a binary unit suffix, e.g. 32G, 512M, 1T.",
        })
    }
}

/// Memory in MiB: either an integer (MiB, as PVE's `memory`) or a size string (`2G`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemoryMib(pub u64);

impl FromStr for MemoryMib {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u64>() {
            return Ok(MemoryMib(n));
        }
        let size: Size = t.parse()?;
        if !size.0.is_multiple_of(KIB * KIB) {
            return Err(format!("memory `{t}` is not a whole number of MiB"));
        }
        Ok(MemoryMib(size.mib()))
    }
}
impl fmt::Display for MemoryMib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1024 && self.0.is_multiple_of(1024) {
            write!(f, "{}G", self.0 / 1024)
        } else {
            write!(f, "{}M", self.0)
        }
    }
}
string_type!(MemoryMib, "memory in MiB (2048) or with a unit (2G)");

impl JsonSchema for MemoryMib {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Memory".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                {"type": "integer", "minimum": 16, "description": "MiB"},
                {"type": "string", "pattern": "^[0-9]+(M|MiB|G|GiB)$"}
            ],
            "description": "Guest memory: MiB as an integer, or a size such as 2G.",
        })
    }
}

/// A reference to a secret. Secrets are never written in a spec: only where to read
/// them (`env:NAME` or `file:PATH`). Anything else is kept as [`SecretRef::Inline`]
/// *without its value*, so that the `inline-secret` policy can point at it while the
/// value itself can never be printed, serialised or logged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SecretRef {
    Env(String),
    File(String),
    /// An inline value was given; only its length is kept.
    Inline {
        len: usize,
    },
}

impl SecretRef {
    pub fn is_inline(&self) -> bool {
        matches!(self, SecretRef::Inline { .. })
    }
}

impl FromStr for SecretRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Some(name) = t.strip_prefix("env:") {
            let ok = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return Err(format!(
                    "`env:{name}` does not name an environment variable (letters, digits and `_`)"
                ));
            }
            return Ok(SecretRef::Env(name.to_string()));
        }
        if let Some(path) = t.strip_prefix("file:") {
            if path.is_empty() {
                return Err("`file:` needs a path, e.g. file:~/.config/labwright/ts.key".into());
            }
            return Ok(SecretRef::File(path.to_string()));
        }
        Ok(SecretRef::Inline { len: t.len() })
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{p}"),
            SecretRef::Inline { .. } => f.write_str("<redacted inline secret>"),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Deliberately not `deserialize_any` with numbers: a secret is a string; a
        // wrong type error must not echo the value either.
        let s = String::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a secret reference must be a string such as env:NAME or file:PATH",
            )
        })?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for SecretRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretRef".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$",
            "description": "Where to read a secret: env:NAME or file:PATH. Inline secrets are refused.",
        })
    }
}

/// Checks a Proxmox tag: PVE accepts `[a-z0-9_][a-z0-9_+.-]*` (case-insensitive), and
/// `=` in particular breaks the tag list. Returns a corrected suggestion on failure.
pub fn check_tag(tag: &str) -> Result<(), (String, Option<String>)> {
    let valid_first = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let valid_rest = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '.' | '-');
    let ok = tag.chars().next().is_some_and(valid_first) && tag.chars().all(valid_rest);
    if ok {
        return Ok(());
    }
    let mut fixed: String = tag
        .chars()
        .map(|c| {
            if valid_rest(c) {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while fixed.starts_with(['-', '+', '.']) {
        fixed.remove(0);
    }
    while fixed.contains("--") {
        fixed = fixed.replace("--", "-");
    }
    let why = if tag.contains('=') {
        format!("tag `{tag}` contains `=`, which Proxmox tags may not contain")
    } else if tag.is_empty() {
        "empty tag".to_string()
    } else {
        format!(
            "tag `{tag}` is not a valid Proxmox tag (letters, digits, `_`, `+`, `.`, `-`; not starting with `+`, `.` or `-`)"
        )
    };
    let suggestion = (!fixed.is_empty() && fixed != tag).then_some(fixed);
    Err((why, suggestion))
}

/// Parses a PVE-style port list: `22`, `8000:8100`, `80,443`. Returns inclusive ranges.
pub fn parse_ports(s: &str) -> Result<Vec<(u16, u16)>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let parse = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{p}` in port list `{s}` is not a port number (1–65535)"))
        };
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let p = parse(part)?;
                (p, p)
            }
        };
        if a > b {
            return Err(format!("port range `{part}` runs backwards"));
        }
        out.push((a, b));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_and_rejects_ip_port() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().map(|c| c.to_string()),
            Ok("10.0.0.0/8".into())
        );
        assert_eq!(
            "10.0.0.1".parse::<Cidr>().map(|c| c.to_string()),
            Ok("10.0.0.1/32".into())
        );
        let e = "192.168.1.5:22".parse::<Cidr>().err().unwrap_or_default();
        assert!(e.contains("port"), "{e}");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("banana".parse::<Cidr>().is_err());
    }

    #[test]
    fn size_round_trips_in_canonical_form() {
        for (i, o) in [
            ("32G", "32G"),
            ("1024M", "1G"),
            ("1T", "1T"),
            ("512MiB", "512M"),
        ] {
            assert_eq!(i.parse::<Size>().map(|s| s.to_string()), Ok(o.to_string()));
        }
        assert!("32X".parse::<Size>().is_err());
        assert!("G".parse::<Size>().is_err());
    }

    #[test]
    fn secret_ref_never_displays_inline_value() {
        let s: SecretRef = "tskey-auth-SECRET"
            .parse()
            .unwrap_or(SecretRef::Env("X".into()));
        assert!(s.is_inline());
        assert!(!format!("{s} {s:?}").contains("SECRET"));
    }

    #[test]
    fn tags() {
        assert!(check_tag("env-lab").is_ok());
        let (why, fix) = check_tag("env=lab").err().unwrap_or_default();
        assert!(why.contains('='));
        assert_eq!(fix.as_deref(), Some("env-lab"));
    }

    #[test]
    fn ports() {
        assert_eq!(
            parse_ports("22,8000:8006"),
            Ok(vec![(22, 22), (8000, 8006)])
        );
        assert!(parse_ports("0").is_err());
        assert!(parse_ports("90:80").is_err());
    }
}
