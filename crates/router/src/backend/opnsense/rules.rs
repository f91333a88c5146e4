//! Model rules → OPNsense MVC filter rules (`OPNsense/Firewall/Filter/rules/rule`).
//!
//! OPNsense matches a rule on the interface a packet arrives on (`direction in`); the
//! model's outgoing links are implied by the destination addresses (the compiler
//! derives them from where the destination sits), so they are not written. A rule
//! with no incoming link, or one on a link OPNsense has no interface for (Tailscale),
//! is a floating rule (empty `interface`): it matches on every interface, by address.
//! Negated address sets become a network alias, since pf reads a negated inline list
//! `!{a, b}` as "not a OR not b", which matches everything; a negated table is exact.

use labwright_spec::types::Cidr;
use sha2::{Digest, Sha256};

use super::Opnsense;
use super::xml::Writer;
use crate::model::{Action, AddrSet, Chain, L4, Rule, RuleSet};

/// One `<rule>` of OPNsense's filter model.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct OpnRule {
    pub uuid: String,
    pub sequence: u32,
    pub action: &'static str,
    /// Comma-separated interface keys; empty: floating.
    pub interface: String,
    pub ipprotocol: &'static str,
    pub protocol: &'static str,
    pub source_net: String,
    pub source_not: bool,
    pub destination_net: String,
    pub destination_not: bool,
    pub destination_port: String,
    pub description: String,
}

/// A network alias (`type network`), for a negated set.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Alias {
    pub uuid: String,
    pub name: String,
    pub content: Vec<String>,
    pub description: String,
}

pub(super) struct Compiled {
    pub rules: Vec<OpnRule>,
    pub aliases: Vec<Alias>,
}

/// UUID (version-8 layout: derived, not random) of `key` in `lab`: the same rule
/// keeps the same UUID across renders, so later API edits can address it.
fn uuid(lab: &str, key: &str) -> String {
    let mut h = Sha256::new();
    for part in ["labwright opnsense uuid v1", lab, key] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Fam {
    V4,
    V6,
}

fn of_fam(nets: &[Cidr], fam: Fam) -> Vec<String> {
    nets.iter()
        .filter(|c| c.0.addr().is_ipv4() == (fam == Fam::V4))
        .map(|c| c.to_string())
        .collect()
}

struct Ctx<'a> {
    o: &'a Opnsense,
    out: Compiled,
    seq: u32,
    used: Vec<String>,
}

impl Ctx<'_> {
    fn alias_for(&mut self, set: &AddrSet, why: &str) -> String {
        let content: Vec<String> = set.nets.iter().map(Cidr::to_string).collect();
        if let Some(a) = self.out.aliases.iter().find(|a| a.content == content) {
            return a.name.clone();
        }
        let name = format!("lw_nets_{}", self.out.aliases.len() + 1);
        self.out.aliases.push(Alias {
            uuid: uuid(&self.o.lab, &format!("alias|{}", content.join(","))),
            name: name.clone(),
            content,
            description: format!("labwright: {why}"),
        });
        name
    }

    /// (value, negated) of a matcher for one family; `None`: the set has no address
    /// of that family, so the rule cannot match it.
    fn side(&mut self, set: &AddrSet, fam: Option<Fam>, why: &str) -> Option<(String, bool)> {
        if set.is_any() {
            return Some(("any".into(), false));
        }
        if set.negate {
            return Some((self.alias_for(set, why), true));
        }
        let nets = match fam {
            Some(f) => of_fam(&set.nets, f),
            None => set.nets.iter().map(Cidr::to_string).collect(),
        };
        (!nets.is_empty()).then(|| (nets.join(","), false))
    }

    fn interface(&self, iif: &[String]) -> String {
        let keys: Option<Vec<&str>> = iif.iter().map(|n| self.o.key_of(n)).collect();
        match keys {
            Some(k) => k.join(","),
            None => String::new(),
        }
    }

    fn push(&mut self, mut r: OpnRule, key: String) {
        let mut k = key;
        while self.used.contains(&k) {
            k.push('+');
        }
        r.uuid = uuid(&self.o.lab, &k);
        self.used.push(k);
        self.seq += 10;
        r.sequence = self.seq;
        self.out.rules.push(r);
    }

    /// The interfaces a rule is written for, one rule each: OPNsense evaluates a rule
    /// naming several interfaces (or none) as *floating*, before every interface rule
    /// (core `FilterRuleField::getPriority`: floating 200000, interface 400000), which
    /// would reorder it against the model's first match. A rule on every link (no
    /// incoming interface in the model) is written per link too; only a rule on an
    /// interface OPNsense has no link for (Tailscale's) stays floating.
    fn interfaces(&self, iif: &[String]) -> Vec<String> {
        if iif.is_empty() {
            return self.o.links.iter().map(|l| l.key.clone()).collect();
        }
        match self.interface(iif).as_str() {
            "" => vec![String::new()],
            keys => keys.split(',').map(str::to_string).collect(),
        }
    }

    fn rule(&mut self, r: &Rule, input: bool) {
        for interface in self.interfaces(&r.iif) {
            self.rule_on(r, input, interface);
        }
    }

    fn rule_on(&mut self, r: &Rule, input: bool, interface: String) {
        let positive = |s: &AddrSet| !s.is_any() && !s.negate;
        let fams: Vec<Option<Fam>> = if positive(&r.saddr) || positive(&r.daddr) {
            vec![Some(Fam::V4), Some(Fam::V6)]
        } else {
            vec![None]
        };
        let dhcp = r.proto == Some(L4::Udp) && r.dports.iter().any(|(a, b)| *a <= 67 && 67 <= *b);
        let ports: Vec<String> = if r.dports.is_empty() {
            vec![String::new()]
        } else {
            r.dports
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect()
        };
        let why = format!("{} [{}]", r.comment, r.origin);
        for fam in fams {
            let Some((src, src_not)) = self.side(&r.saddr, fam, &why) else {
                continue;
            };
            let dst = if input && r.daddr.is_any() && !dhcp {
                // The router itself; DHCP requests go to 255.255.255.255 instead.
                Some(("(self)".to_string(), false))
            } else {
                self.side(&r.daddr, fam, &why)
            };
            let Some((dst, dst_not)) = dst else {
                continue;
            };
            let ipprotocol = match fam {
                Some(Fam::V4) => "inet",
                Some(Fam::V6) => "inet6",
                None => "inet46",
            };
            for port in &ports {
                let rule = OpnRule {
                    uuid: String::new(),
                    sequence: 0,
                    action: action(r.action),
                    interface: interface.clone(),
                    ipprotocol,
                    protocol: match r.proto {
                        Some(L4::Tcp) => "TCP",
                        Some(L4::Udp) => "UDP",
                        Some(L4::Icmp) if fam == Some(Fam::V6) => "IPV6-ICMP",
                        Some(L4::Icmp) => "ICMP",
                        None => "any",
                    },
                    source_net: src.clone(),
                    source_not: src_not,
                    destination_net: dst.clone(),
                    destination_not: dst_not,
                    destination_port: port.clone(),
                    description: why.clone(),
                };
                let key = format!(
                    "{}|{}|{}|{}|{}|{}|{}",
                    r.origin, rule.interface, ipprotocol, rule.protocol, src, dst, port
                );
                self.push(rule, key);
            }
        }
    }

    /// What no rule matched: the chain's policy as a last rule on every interface.
    fn policy(&mut self, c: &Chain, what: &str) {
        let links: Vec<String> = self.o.links.iter().map(|l| l.key.clone()).collect();
        for interface in links {
            self.policy_on(c, what, interface);
        }
    }

    fn policy_on(&mut self, c: &Chain, what: &str, interface: String) {
        let rule = OpnRule {
            uuid: String::new(),
            sequence: 0,
            action: action(c.policy),
            interface,
            ipprotocol: "inet46",
            protocol: "any",
            source_net: "any".into(),
            source_not: false,
            destination_net: "any".into(),
            destination_not: false,
            destination_port: String::new(),
            description: format!("{what} [{}]", c.policy_origin),
        };
        let key = format!("policy|{what}|{}", rule.interface);
        self.push(rule, key);
    }
}

fn action(a: Action) -> &'static str {
    match a {
        Action::Accept => "pass",
        Action::Drop => "block",
        Action::Reject => "reject",
    }
}

/// The rules in evaluation order: the router's own services first (so the admin
/// CIDRs' access to it is decided before any deny), then the forward rules, then the
/// forward policy (default deny between segments) as the last rule. The input policy
/// is OPNsense's built-in default deny.
pub(super) fn compile(o: &Opnsense, rs: &RuleSet) -> Compiled {
    let mut cx = Ctx {
        o,
        out: Compiled {
            rules: Vec::new(),
            aliases: Vec::new(),
        },
        seq: 0,
        used: Vec::new(),
    };
    for r in &rs.input.rules {
        cx.rule(r, true);
    }
    for r in &rs.forward.rules {
        cx.rule(r, false);
    }
    let what = match rs.forward.policy {
        Action::Accept => "default allow between segments",
        Action::Drop | Action::Reject => "default deny between segments",
    };
    cx.policy(&rs.forward, what);
    cx.out
}

pub(super) fn write_aliases(w: &mut Writer, aliases: &[Alias]) {
    if aliases.is_empty() {
        return;
    }
    w.open("Alias", &[]);
    w.open("aliases", &[]);
    for a in aliases {
        w.open("alias", &[("uuid", &a.uuid)]);
        w.leaf("enabled", "1");
        w.leaf("name", &a.name);
        w.leaf("type", "network");
        w.leaf("content", &a.content.join("\n"));
        w.leaf("description", &a.description);
        w.close();
    }
    w.close();
    w.close();
}

pub(super) fn write_rule(w: &mut Writer, r: &OpnRule) {
    let b = |v: bool| if v { "1" } else { "0" };
    w.open("rule", &[("uuid", &r.uuid)]);
    w.leaf("enabled", "1");
    w.leaf("statetype", "keep");
    w.leaf("sequence", &r.sequence.to_string());
    w.leaf("action", r.action);
    w.leaf("quick", "1");
    w.leaf("interfacenot", "0");
    w.leaf("interface", &r.interface);
    w.leaf("direction", "in");
    w.leaf("ipprotocol", r.ipprotocol);
    w.leaf("protocol", r.protocol);
    w.leaf("source_net", &r.source_net);
    w.leaf("source_not", b(r.source_not));
    w.leaf("source_port", "");
    w.leaf("destination_net", &r.destination_net);
    w.leaf("destination_not", b(r.destination_not));
    w.leaf("destination_port", &r.destination_port);
    w.leaf("log", if r.action == "pass" { "0" } else { "1" });
    w.leaf("description", &r.description);
    w.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_stable_distinct_and_well_formed() {
        let a = uuid("jarvis", "k1");
        assert_eq!(a, uuid("jarvis", "k1"));
        assert_ne!(a, uuid("jarvis", "k2"));
        assert_ne!(a, uuid("other", "k1"));
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, vec![8, 4, 4, 4, 12]);
        assert_eq!(&a[14..15], "8", "version nibble: {a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "variant: {a}");
    }
}
