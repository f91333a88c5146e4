//! The plain Linux router: the rule set as an `nft -f` script. One table
//! (`inet labwright_router`) that the script deletes and recreates in the same
//! transaction, so loading it twice is a no-op and a failing script changes nothing.
//! Link names are the spec's interface keys (the Debian router names its links after
//! them by MAC).

use std::fmt::Write as _;

use labwright_spec::types::Cidr;

use super::Backend;
use crate::model::{Action, AddrSet, Chain, L4, Masquerade, Rule, RuleSet};

/// Renders `nft -f` scripts.
#[derive(Clone, Debug)]
pub struct Nftables {
    /// Table name (in family `inet`).
    pub table: String,
}

/// The table labwright owns on the router.
pub const TABLE: &str = "labwright_router";

impl Default for Nftables {
    fn default() -> Self {
        Nftables {
            table: TABLE.to_string(),
        }
    }
}

impl Backend for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn render(&self, rs: &RuleSet) -> String {
        let t = &self.table;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "#!/usr/sbin/nft -f\n# labwright: router `{}` at phase {}, generated from the spec; edits here are overwritten.",
            rs.router_vm, rs.phase
        );
        for i in &rs.interfaces {
            let _ = writeln!(
                s,
                "# link {:<12} {:<9} {:<18} router {}",
                i.name,
                format!("{:?}", i.role).to_lowercase(),
                i.cidr.to_string(),
                match (i.address, i.role) {
                    (Some(a), _) => a.to_string(),
                    (None, crate::model::Role::Tailnet) => "address from the tailnet".into(),
                    (None, _) => "address from upstream DHCP".into(),
                },
            );
        }
        for u in &rs.unrouted {
            let _ = writeln!(
                s,
                "# not routed: {} → {} ({}): {}",
                u.from, u.to, u.origin, u.reason
            );
        }
        // Creating then deleting makes the delete safe on a router that never had the
        // table; both happen in the script's one transaction.
        let _ = writeln!(
            s,
            "table inet {t}\ndelete table inet {t}\ntable inet {t} {{"
        );
        chain(
            &mut s,
            "input",
            "filter hook input priority filter",
            &rs.input,
            true,
        );
        chain(
            &mut s,
            "forward",
            "filter hook forward priority filter",
            &rs.forward,
            false,
        );
        let _ = writeln!(
            s,
            "\tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;"
        );
        for m in &rs.masquerade {
            masq(&mut s, m);
        }
        let _ = writeln!(s, "\t}}\n}}");
        s
    }
}

fn chain(s: &mut String, name: &str, hook: &str, c: &Chain, local: bool) {
    let policy = match c.policy {
        Action::Accept => "accept",
        Action::Drop | Action::Reject => "drop",
    };
    let _ = writeln!(s, "\tchain {name} {{\n\t\ttype {hook}; policy {policy};");
    let _ = writeln!(s, "\t\tct state established,related accept");
    let _ = writeln!(s, "\t\tct state invalid drop");
    if local {
        let _ = writeln!(s, "\t\tiifname \"lo\" accept");
    }
    for r in &c.rules {
        rule(s, r);
    }
    if c.policy == Action::Reject {
        let _ = writeln!(
            s,
            "\t\treject with icmpx admin-prohibited comment {}",
            quote(&format!("policy ({})", c.policy_origin))
        );
    }
    let _ = writeln!(s, "\t\t# otherwise: {policy} ({})\n\t}}", c.policy_origin);
}

fn names(set: &[String]) -> String {
    match set {
        [one] => quote_name(one),
        _ => format!(
            "{{ {} }}",
            set.iter()
                .map(|n| quote_name(n))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn quote_name(n: &str) -> String {
    format!("\"{n}\"")
}

#[derive(Clone, Copy, PartialEq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn keyword(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
    fn has(self, c: &Cidr) -> bool {
        match self {
            Family::V4 => c.0.addr().is_ipv4(),
            Family::V6 => c.0.addr().is_ipv6(),
        }
    }
}

/// `ip saddr { … }` for the family, `Some("")` when the set matches any address,
/// `None` when the set has no address of this family (the rule cannot match it).
fn addr(set: &AddrSet, fam: Family, dir: &str) -> Option<String> {
    if set.is_any() {
        return Some(String::new());
    }
    let nets: Vec<String> = set
        .nets
        .iter()
        .filter(|c| fam.has(c))
        .map(|c| c.to_string())
        .collect();
    if nets.is_empty() {
        // A negated set with nothing of this family excludes nothing.
        return set.negate.then(String::new);
    }
    let neg = if set.negate { "!= " } else { "" };
    let body = if nets.len() == 1 {
        nets[0].clone()
    } else {
        format!("{{ {} }}", nets.join(", "))
    };
    Some(format!("{} {dir} {neg}{body} ", fam.keyword()))
}

fn ports(p: &[(u16, u16)]) -> String {
    let one = |(a, b): &(u16, u16)| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        }
    };
    match p {
        [single] => one(single),
        _ => format!("{{ {} }}", p.iter().map(one).collect::<Vec<_>>().join(", ")),
    }
}

fn rule(s: &mut String, r: &Rule) {
    let families: &[Family] = if r.saddr.is_any() && r.daddr.is_any() {
        &[Family::V4]
    } else {
        &[Family::V4, Family::V6]
    };
    for fam in families {
        let (Some(src), Some(dst)) = (addr(&r.saddr, *fam, "saddr"), addr(&r.daddr, *fam, "daddr"))
        else {
            continue;
        };
        // Address-free rules are rendered once, family-neutral.
        if src.is_empty() && dst.is_empty() && *fam == Family::V6 {
            continue;
        }
        let mut line = String::from("\t\t");
        if !r.iif.is_empty() {
            let _ = write!(line, "iifname {} ", names(&r.iif));
        }
        if !r.oif.is_empty() {
            let _ = write!(line, "oifname {} ", names(&r.oif));
        }
        line.push_str(&src);
        line.push_str(&dst);
        match (r.proto, r.dports.is_empty()) {
            (Some(L4::Tcp), false) => {
                let _ = write!(line, "tcp dport {} ", ports(&r.dports));
            }
            (Some(L4::Udp), false) => {
                let _ = write!(line, "udp dport {} ", ports(&r.dports));
            }
            (Some(L4::Tcp), true) => line.push_str("meta l4proto tcp "),
            (Some(L4::Udp), true) => line.push_str("meta l4proto udp "),
            (Some(L4::Icmp), _) => line.push_str(match fam {
                Family::V4 => "meta l4proto icmp ",
                Family::V6 => "meta l4proto ipv6-icmp ",
            }),
            (None, _) => {}
        }
        line.push_str(match r.action {
            Action::Accept => "accept",
            Action::Drop => "drop",
            Action::Reject => "reject with icmpx admin-prohibited",
        });
        let _ = writeln!(
            s,
            "{line} comment {}",
            quote(&format!("{} [{}]", r.comment, r.origin))
        );
    }
}

fn masq(s: &mut String, m: &Masquerade) {
    for fam in [Family::V4, Family::V6] {
        let Some(src) = addr(&m.saddr, fam, "saddr") else {
            continue;
        };
        if src.is_empty() && fam == Family::V6 {
            continue;
        }
        let _ = writeln!(
            s,
            "\t\toifname {} {src}masquerade comment {}",
            quote_name(&m.oif),
            quote(&format!("{} [{}]", m.comment, m.origin))
        );
    }
}

/// nft keeps at most 128 bytes of a comment and has no escape for `"`.
fn quote(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c == '"' || c.is_control() { '\'' } else { c })
        .collect();
    let mut end = clean.len().min(127);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    format!("\"{}\"", &clean[..end])
}
