//! Firewall rules: the model, the `.fw` line format
//! (`IN SSH(ACCEPT) -source +dc/management -i vmbr0 # comment`) and the
//! API JSON objects.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::addr::{AddressRef, MAX_GROUP_NAME_LEN, check_name};
use crate::error::FirewallError;
use crate::macros;
use crate::ports::{PortField, PortSpec, is_icmp_type};
use crate::proto::Protocol;

/// Rule direction (`type` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// Inbound.
    In,
    /// Outbound.
    Out,
    /// Routed traffic (nftables backend only; iptables ignores it).
    Forward,
    /// Jump into a security group.
    Group,
}

impl RuleKind {
    /// Lower-case API spelling.
    pub fn as_api(self) -> &'static str {
        match self {
            RuleKind::In => "in",
            RuleKind::Out => "out",
            RuleKind::Forward => "forward",
            RuleKind::Group => "group",
        }
    }

    fn parse(s: &str) -> Result<Self, FirewallError> {
        match s.to_ascii_lowercase().as_str() {
            "in" => Ok(RuleKind::In),
            "out" => Ok(RuleKind::Out),
            "forward" => Ok(RuleKind::Forward),
            "group" => Ok(RuleKind::Group),
            _ => Err(FirewallError::UnknownRuleType(s.to_string())),
        }
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_api().to_ascii_uppercase())
    }
}

/// A final verdict, also used for policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Let it through.
    Accept,
    /// Silently discard.
    Drop,
    /// Discard and answer (TCP reset / ICMP unreachable).
    Reject,
}

impl Verdict {
    /// Parse `ACCEPT`/`DROP`/`REJECT` (upper case, as PVE writes them).
    pub fn parse(s: &str) -> Result<Self, FirewallError> {
        match s {
            "ACCEPT" => Ok(Verdict::Accept),
            "DROP" => Ok(Verdict::Drop),
            "REJECT" => Ok(Verdict::Reject),
            _ => Err(FirewallError::UnknownAction(s.to_string())),
        }
    }

    /// Whether traffic gets through.
    pub fn is_accept(self) -> bool {
        self == Verdict::Accept
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Accept => "ACCEPT",
            Verdict::Drop => "DROP",
            Verdict::Reject => "REJECT",
        })
    }
}

/// What a rule does: a verdict, or (for GROUP rules) the group to jump
/// to. Serialises as PVE writes it (`ACCEPT`, or the group name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// ACCEPT.
    Accept,
    /// DROP.
    Drop,
    /// REJECT.
    Reject,
    /// Security group name.
    Group(String),
}

impl Action {
    /// The verdict of a non-group action.
    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            Action::Accept => Some(Verdict::Accept),
            Action::Drop => Some(Verdict::Drop),
            Action::Reject => Some(Verdict::Reject),
            Action::Group(_) => None,
        }
    }
}

impl From<Verdict> for Action {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Accept => Action::Accept,
            Verdict::Drop => Action::Drop,
            Verdict::Reject => Action::Reject,
        }
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Group(g) => f.write_str(g),
            other => match other.verdict() {
                Some(v) => write!(f, "{v}"),
                None => Ok(()),
            },
        }
    }
}

/// `-log` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// emerg
    Emerg,
    /// alert
    Alert,
    /// crit
    Crit,
    /// err
    Err,
    /// warning
    Warning,
    /// notice
    Notice,
    /// info
    Info,
    /// debug
    Debug,
    /// nolog
    Nolog,
}

const LOG_LEVELS: &[(&str, LogLevel)] = &[
    ("emerg", LogLevel::Emerg),
    ("alert", LogLevel::Alert),
    ("crit", LogLevel::Crit),
    ("err", LogLevel::Err),
    ("warning", LogLevel::Warning),
    ("notice", LogLevel::Notice),
    ("info", LogLevel::Info),
    ("debug", LogLevel::Debug),
    ("nolog", LogLevel::Nolog),
];

impl LogLevel {
    /// Parse a PVE log level name.
    pub fn parse(s: &str) -> Result<Self, FirewallError> {
        LOG_LEVELS
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, l)| *l)
            .ok_or_else(|| FirewallError::InvalidLogLevel(s.to_string()))
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = LOG_LEVELS
            .iter()
            .find(|(_, l)| l == self)
            .map(|(n, _)| *n)
            .unwrap_or("nolog");
        f.write_str(name)
    }
}

/// Where a rule lives; decides which types and interfaces are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleContext {
    /// `cluster.fw` `[RULES]`.
    Cluster,
    /// `host.fw` `[RULES]`.
    Host,
    /// `<vmid>.fw` `[RULES]`.
    Guest,
    /// A `[GROUP name]` section.
    SecurityGroup,
}

impl RuleContext {
    fn name(self) -> &'static str {
        match self {
            RuleContext::Cluster => "cluster",
            RuleContext::Host => "host",
            RuleContext::Guest => "vm",
            RuleContext::SecurityGroup => "security group",
        }
    }
}

/// One firewall rule, as PVE stores it.
///
/// Position is the index in its list, not a field: PVE renumbers on
/// every insert, so a stored position would go stale.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Rule {
    /// Direction or GROUP.
    #[serde(rename = "type")]
    pub kind: RuleKind,
    /// Verdict, or the group name for GROUP rules.
    pub action: Action,
    /// Macro in PVE's preferred spelling (`SSH`, `HTTPS`, `Ping`, …).
    #[serde(rename = "macro", skip_serializing_if = "Option::is_none")]
    pub macro_name: Option<String>,
    /// `-i`: host interface (`vmbr0`) or guest NIC (`net0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    /// `-source`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<AddressRef>,
    /// `-dest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest: Option<AddressRef>,
    /// `-p`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<Protocol>,
    /// `-dport`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dport: Option<PortSpec>,
    /// `-sport`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sport: Option<PortSpec>,
    /// `-icmp-type`.
    #[serde(rename = "icmp-type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<String>,
    /// `-log`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogLevel>,
    /// False for rules written with a leading `|` (or `enable: 0`).
    pub enable: bool,
    /// Text after `#`; labwright keeps its stable rule id here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Rule {
    /// An enabled rule with no matches beyond its type and action.
    pub fn new(kind: RuleKind, action: Action) -> Self {
        Rule {
            kind,
            action,
            macro_name: None,
            iface: None,
            source: None,
            dest: None,
            proto: None,
            dport: None,
            sport: None,
            icmp_type: None,
            log: None,
            enable: true,
            comment: None,
        }
    }

    /// A `GROUP name` rule.
    pub fn group(name: &str) -> Self {
        Rule::new(RuleKind::Group, Action::Group(name.to_string()))
    }

    /// Parse one `.fw` rule line. Never panics; every refusal is typed.
    ///
    /// Accepts every spelling some PVE firewall accepts (`--dport`,
    /// `-proto`, `in`, `ssh(ACCEPT)`, `IN accept`, …), each with PVE's
    /// meaning; [`Rule::parse_as`] reads a line exactly as one backend does.
    pub fn parse(line: &str) -> Result<Self, FirewallError> {
        crate::syntax::parse_rule(line, crate::syntax::Dialect::Any)
    }

    /// Parse one rule line exactly as `backend`'s own parser reads it:
    /// what it refuses is an error here too.
    pub fn parse_as(line: &str, backend: crate::eval::Backend) -> Result<Self, FirewallError> {
        crate::syntax::parse_rule(line, crate::syntax::Dialect::Of(backend))
    }

    /// Field checks that do not depend on where the rule lives: what
    /// PVE's `verify_rule` refuses for any rule.
    pub fn check_fields(&self) -> Result<(), FirewallError> {
        if let Some(c) = &self.comment
            && (c.contains('\n') || c.contains('\r'))
        {
            return Err(FirewallError::CommentWithNewline);
        }
        if let Some(iface) = &self.iface
            && !valid_iface(iface)
        {
            return Err(FirewallError::InvalidInterface(iface.clone()));
        }
        if self.kind == RuleKind::Group {
            if let Action::Group(name) = &self.action {
                check_name("security group", name, MAX_GROUP_NAME_LEN)?;
            }
            if self.macro_name.is_some() {
                return Err(FirewallError::MacroOnGroup);
            }
            let extra = [
                ("-source", self.source.is_some()),
                ("-dest", self.dest.is_some()),
                ("-p", self.proto.is_some()),
                ("-dport", self.dport.is_some()),
                ("-sport", self.sport.is_some()),
                ("-icmp-type", self.icmp_type.is_some()),
            ];
            if let Some((name, _)) = extra.iter().find(|(_, set)| *set) {
                return Err(FirewallError::UnparsedParameters(format!(
                    "{name} is not allowed on group rules"
                )));
            }
            return Ok(());
        }
        if matches!(self.action, Action::Group(_)) {
            return Err(FirewallError::UnknownAction(self.action.to_string()));
        }
        if let Some(m) = &self.macro_name
            && macros::lookup(m).is_none()
        {
            return Err(FirewallError::UnknownMacro(m.clone()));
        }
        if self.kind == RuleKind::Forward && self.action == Action::Reject {
            return Err(FirewallError::RejectOnForward);
        }
        match &self.proto {
            Some(p) => {
                if (self.dport.as_ref().is_some_and(|d| !d.is_icmp()) || self.sport.is_some())
                    && !p.has_ports()
                {
                    return Err(FirewallError::ProtocolWithoutPorts(p.to_string()));
                }
                if self.dport.as_ref().is_some_and(PortSpec::is_icmp) && !p.is_icmp() {
                    return Err(FirewallError::InvalidPort(
                        self.dport
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                    ));
                }
            }
            None if self.macro_name.is_none() => {
                if self.dport.is_some() {
                    return Err(FirewallError::PortsNeedProtocol("dport"));
                }
                if self.sport.is_some() {
                    return Err(FirewallError::PortsNeedProtocol("sport"));
                }
            }
            None => {}
        }
        if let Some(t) = &self.icmp_type {
            if !is_icmp_type(t) {
                return Err(FirewallError::InvalidIcmpType(t.clone()));
            }
            if !self.proto.as_ref().is_some_and(Protocol::is_icmp) {
                return Err(FirewallError::IcmpTypeNeedsIcmp);
            }
            if self.dport.is_some() {
                return Err(FirewallError::IcmpTypeWithDport);
            }
        }
        if let (Some(s), Some(d)) = (family(&self.source), family(&self.dest))
            && s != d
        {
            return Err(FirewallError::MixedFamiliesInRule);
        }
        Ok(())
    }

    /// The address family the rule is limited to by its own addresses and
    /// protocol (`Some(true)` for IPv6), when they say; `Err` when they
    /// contradict each other, which pve-firewall refuses (`icmp` with IPv6
    /// addresses, `icmpv6` with IPv4 ones).
    pub fn ip_family(&self) -> Result<Option<bool>, FirewallError> {
        let mut fam = family(&self.source).or(family(&self.dest));
        if let Some(p) = &self.proto {
            let by_proto = if p.same(&Protocol::ICMP) {
                Some(false)
            } else if p.same(&Protocol::ICMPV6) {
                Some(true)
            } else {
                None
            };
            match (fam, by_proto) {
                (Some(a), Some(b)) if a != b => return Err(FirewallError::MixedFamiliesInRule),
                (None, b) => fam = b,
                _ => {}
            }
        }
        Ok(fam)
    }

    /// Checks for a rule at a given level: allowed types and interface
    /// naming (PVE wants `netN` on guests).
    pub fn validate_for(&self, ctx: RuleContext) -> Result<(), FirewallError> {
        self.check_fields()?;
        let allowed = match ctx {
            RuleContext::Cluster | RuleContext::Host => true,
            RuleContext::Guest => self.kind != RuleKind::Forward,
            RuleContext::SecurityGroup => self.kind != RuleKind::Group,
        };
        if !allowed {
            return Err(FirewallError::TypeNotAllowed {
                kind: self.kind.as_api(),
                level: ctx.name(),
            });
        }
        if ctx == RuleContext::Guest
            && let Some(iface) = &self.iface
        {
            let ok = iface.strip_prefix("net").is_some_and(|n| {
                !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit())
            });
            if !ok {
                return Err(FirewallError::InvalidInterface(iface.clone()));
            }
        }
        Ok(())
    }

    /// Build from an API rule object (`GET …/rules` element). A missing
    /// `enable` means disabled, because PVE creates rules that way.
    pub fn from_api_json(v: &Value) -> Result<Self, FirewallError> {
        let obj = v
            .as_object()
            .ok_or_else(|| FirewallError::InvalidApiRule("not an object".into()))?;
        let kind = RuleKind::parse(
            &api_str(obj, "type")?
                .ok_or_else(|| FirewallError::InvalidApiRule("missing 'type'".into()))?,
        )?;
        let action_text = api_str(obj, "action")?.ok_or(FirewallError::MissingAction)?;
        let action = if kind == RuleKind::Group {
            Action::Group(action_text)
        } else {
            Verdict::parse(&action_text)?.into()
        };
        let mut rule = Rule::new(kind, action);
        if let Some(m) = api_str(obj, "macro")? {
            let mac = macros::lookup(&m).ok_or(FirewallError::UnknownMacro(m))?;
            rule.macro_name = Some(mac.name.to_string());
        }
        rule.iface = api_str(obj, "iface")?;
        rule.source = api_str(obj, "source")?
            .map(|s| AddressRef::parse(&s))
            .transpose()?;
        rule.dest = api_str(obj, "dest")?
            .map(|s| AddressRef::parse(&s))
            .transpose()?;
        rule.proto = api_str(obj, "proto")?
            .map(|s| Protocol::parse(&s))
            .transpose()?;
        rule.dport = api_str(obj, "dport")?
            .map(|s| PortSpec::parse(&s, PortField::Dport))
            .transpose()?;
        rule.sport = api_str(obj, "sport")?
            .map(|s| PortSpec::parse(&s, PortField::Sport))
            .transpose()?;
        rule.icmp_type = api_str(obj, "icmp-type")?;
        rule.log = api_str(obj, "log")?
            .map(|s| LogLevel::parse(&s))
            .transpose()?;
        rule.comment = api_text(obj, "comment")?
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        rule.enable = match obj.get("enable") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => false,
                Some(1) => true,
                _ => {
                    return Err(FirewallError::InvalidApiRule(format!(
                        "enable must be 0 or 1, got {n}"
                    )));
                }
            },
            Some(Value::String(s)) if s == "0" => false,
            Some(Value::String(s)) if s == "1" => true,
            Some(other) => {
                return Err(FirewallError::InvalidApiRule(format!(
                    "enable must be 0 or 1, got {other}"
                )));
            }
        };
        rule.check_fields()?;
        Ok(rule)
    }

    /// The API object for this rule (without `pos`/`digest`), the shape
    /// a POST/PUT to `…/rules` takes.
    pub fn to_api_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), Value::from(self.kind.as_api()));
        m.insert("action".into(), Value::from(self.action.to_string()));
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_string(), Value::from(v));
            }
        };
        put("macro", self.macro_name.clone());
        put("iface", self.iface.clone());
        put("source", self.source.as_ref().map(ToString::to_string));
        put("dest", self.dest.as_ref().map(ToString::to_string));
        put("proto", self.proto.as_ref().map(ToString::to_string));
        put("dport", self.dport.as_ref().map(ToString::to_string));
        put("sport", self.sport.as_ref().map(ToString::to_string));
        put("icmp-type", self.icmp_type.clone());
        put("log", self.log.map(|l| l.to_string()));
        put("comment", self.comment.clone());
        m.insert("enable".into(), Value::from(u8::from(self.enable)));
        Value::Object(m)
    }

    /// The macro definition, when the rule uses one.
    pub fn macro_def(&self) -> Option<&'static macros::Macro> {
        self.macro_name.as_deref().and_then(macros::lookup)
    }
}

/// Build a rule list from a `GET …/rules` answer, ordered by `pos`
/// (entries without `pos` keep their array order after the others).
pub fn rules_from_api_json(v: &Value) -> Result<Vec<Rule>, FirewallError> {
    let arr = v
        .as_array()
        .ok_or_else(|| FirewallError::InvalidApiRule("rule list is not an array".into()))?;
    let mut rules = Vec::with_capacity(arr.len());
    for (i, item) in arr.iter().enumerate() {
        let pos = item.get("pos").and_then(Value::as_u64).unwrap_or(u64::MAX);
        rules.push((pos, i, Rule::from_api_json(item)?));
    }
    rules.sort_by_key(|(pos, i, _)| (*pos, *i));
    Ok(rules.into_iter().map(|(_, _, r)| r).collect())
}

/// A value field: empty or `-` (PVE's "unset") means absent.
fn api_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, FirewallError> {
    Ok(api_text(obj, key)?.filter(|s| !s.is_empty() && s != "-"))
}

/// A free-text field (`comment`) as stored: `-` is text like any other.
fn api_text(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, FirewallError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(FirewallError::InvalidApiRule(format!(
            "field '{key}' must be a string, got {other}"
        ))),
    }
}

/// The family of an explicit address list or range (`Some(true)`: IPv6).
fn family(a: &Option<AddressRef>) -> Option<bool> {
    match a {
        Some(AddressRef::List { entries }) => entries.first().map(crate::addr::AddrEntry::is_v6),
        Some(AddressRef::Range { start, .. }) => Some(start.is_ipv6()),
        _ => None,
    }
}

/// Interface names: PVE's `pve-iface` is ≤ 20 characters of
/// `[A-Za-z0-9_.-]` (plus `:` for aliases), starting with a letter.
fn valid_iface(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 20
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
}

impl fmt::Display for Rule {
    /// The `.fw` line, in PVE's option order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enable {
            f.write_str("|")?;
        }
        write!(f, "{}", self.kind)?;
        match &self.macro_name {
            Some(m) if self.kind != RuleKind::Group => write!(f, " {m}({})", self.action)?,
            _ => write!(f, " {}", self.action)?,
        }
        if let Some(i) = &self.iface {
            write!(f, " -i {i}")?;
        }
        if let Some(s) = &self.source {
            write!(f, " -source {s}")?;
        }
        if let Some(d) = &self.dest {
            write!(f, " -dest {d}")?;
        }
        if let Some(p) = &self.proto {
            write!(f, " -p {p}")?;
        }
        if let Some(d) = &self.dport {
            write!(f, " -dport {d}")?;
        }
        if let Some(s) = &self.sport {
            write!(f, " -sport {s}")?;
        }
        if let Some(l) = &self.log {
            write!(f, " -log {l}")?;
        }
        if let Some(t) = &self.icmp_type {
            write!(f, " -icmp-type {t}")?;
        }
        if let Some(c) = &self.comment {
            let c = c.trim();
            if !c.is_empty() {
                write!(f, " # {c}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Rule {
    type Err = FirewallError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
