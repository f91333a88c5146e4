//! Typed errors for everything that reads firewall input.
//!
//! The parsers here are fed user files and API answers (and, later, a
//! fuzzer), so every failure is a value, never a panic. Messages follow
//! PVE's wording where PVE has one, so a user sees the same complaint
//! from labwright as from the node.

use thiserror::Error;

/// Why a piece of firewall input (rule line, address, port list, file)
/// was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// The rule line was empty (after removing a `|` and a comment).
    #[error("empty rule")]
    EmptyRule,
    /// The first word was not IN, OUT, FORWARD or GROUP.
    #[error("unknown rule type '{0}'")]
    UnknownRuleType(String),
    /// A rule line had a type but no action.
    #[error("missing action")]
    MissingAction,
    /// The action was not ACCEPT, DROP or REJECT (or `Macro(ACTION)`).
    #[error("unknown action '{0}'")]
    UnknownAction(String),
    /// A macro name that PVE does not define.
    #[error("unknown macro '{0}'")]
    UnknownMacro(String),
    /// A macro was used on a GROUP rule, which PVE does not allow.
    #[error("macros are not allowed on group rules")]
    MacroOnGroup,
    /// The same `-option` appeared twice in one rule line.
    #[error("duplicate option '{0}'")]
    DuplicateOption(String),
    /// Text that is not a known `-option value` pair.
    #[error("unable to parse rule parameters: {0}")]
    UnparsedParameters(String),
    /// An option given without a value (`-dport` at end of line).
    #[error("option '{0}' needs a value")]
    MissingOptionValue(String),
    /// A `-log` level outside emerg..debug/nolog.
    #[error("invalid log level '{0}'")]
    InvalidLogLevel(String),
    /// An address, CIDR, range or list that PVE's `pve-fw-addr-spec` refuses.
    #[error("invalid IP address: {0}")]
    InvalidAddress(String),
    /// `pve-fw-addr-spec` is limited to 512 characters.
    #[error("address specification too long ({0} > 512 characters)")]
    AddressTooLong(usize),
    /// A list mixing IPv4 and IPv6 elements.
    #[error("detected mixed ipv4/ipv6 addresses in address list '{0}'")]
    MixedFamilies(String),
    /// A range (`a-b`) inside a list of several elements.
    #[error("you can't use a range in a list")]
    RangeInList,
    /// An empty element in a comma list (`a,,b`, `a,`).
    #[error("extraneous commas in list")]
    ExtraneousCommas,
    /// An ipset reference longer than PVE allows.
    #[error("ipset name too long")]
    IpsetNameTooLong,
    /// An alias reference longer than PVE allows.
    #[error("alias name too long")]
    AliasNameTooLong,
    /// A name (alias, ipset, group) that does not match
    /// `[A-Za-z][A-Za-z0-9-_]+`.
    #[error("invalid {kind} name '{name}'")]
    InvalidName {
        /// What kind of object the name is for.
        kind: &'static str,
        /// The refused name.
        name: String,
    },
    /// A port outside 0..=65535, or a word that is not a known service.
    #[error("invalid port '{0}'")]
    InvalidPort(String),
    /// `N:M` with `N > M`.
    #[error("backwards range '{lo}:{hi}' not allowed, did you mean '{hi}:{lo}'?")]
    BackwardsRange {
        /// First number as written.
        lo: u16,
        /// Second number as written.
        hi: u16,
    },
    /// More than 15 "numbers" in one port list (a range counts 2).
    #[error("too many entries in port list (> 15 numbers)")]
    TooManyPorts,
    /// An ICMP type name mixed with numeric ports.
    #[error("ICMP ports not allowed in port range")]
    IcmpInPortList,
    /// A protocol that is neither a known name nor a number 0..=255.
    #[error("unknown protocol '{0}'")]
    UnknownProtocol(String),
    /// `-dport`/`-sport` on a protocol without ports (icmp, gre, …).
    #[error("protocol '{0}' does not support ports")]
    ProtocolWithoutPorts(String),
    /// `-dport`/`-sport` without `-p`.
    #[error("missing property - '{0}' requires a protocol")]
    PortsNeedProtocol(&'static str),
    /// An ICMP type name that iptables does not know.
    #[error("invalid icmp-type value '{0}'")]
    InvalidIcmpType(String),
    /// `-icmp-type` together with `-dport` (both backends refuse it).
    #[error("'icmp-type' cannot be specified together with 'dport'")]
    IcmpTypeWithDport,
    /// `-source` and `-dest` of different address families.
    #[error("detected mixed ipv4/ipv6 addresses in rule")]
    MixedFamiliesInRule,
    /// `-icmp-type` on a protocol other than icmp/icmpv6.
    #[error("icmp-type requires proto icmp or icmpv6")]
    IcmpTypeNeedsIcmp,
    /// A rule type not allowed at this level (e.g. FORWARD in a VM).
    #[error("rule type '{kind}' is not allowed in {level} rules")]
    TypeNotAllowed {
        /// The rule type.
        kind: &'static str,
        /// The level the rule was checked for.
        level: &'static str,
    },
    /// PVE refuses REJECT on the forward chain.
    #[error("cannot define REJECT rules on forward chain")]
    RejectOnForward,
    /// An interface name PVE would refuse at this level.
    #[error("invalid interface '{0}'")]
    InvalidInterface(String),
    /// A comment containing a line break cannot be written to a .fw file.
    #[error("comment must not contain a line break")]
    CommentWithNewline,
    /// A JSON rule object that is not an object, or a field of the wrong type.
    #[error("invalid API rule: {0}")]
    InvalidApiRule(String),
    /// A firewall option with a value of the wrong shape.
    #[error("invalid value '{value}' for option '{key}'")]
    InvalidOption {
        /// The option name.
        key: String,
        /// The refused value.
        value: String,
    },
    /// A policy other than ACCEPT, DROP, REJECT.
    #[error("invalid policy '{0}'")]
    InvalidPolicy(String),
    /// A `[SECTION]` header that this kind of file does not have.
    #[error("unknown section '{0}'")]
    UnknownSection(String),
    /// A line outside any section, or not valid in its section.
    #[error("unable to parse line: {0}")]
    UnparsedLine(String),
}

/// An error in a `.fw` file, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {error}")]
pub struct FileError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong with that line.
    #[source]
    pub error: FirewallError,
}
