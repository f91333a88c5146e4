//! `fw-backend-names`: names whose meaning differs between the two PVE firewall
//! backends. `pve-firewall` (iptables) lower-cases the names of ipsets and security
//! groups it reads and compares rule references with them as written;
//! `proxmox-firewall` (nftables) keeps the case on both sides. So `Management` is the
//! management set on one and an unused set on the other, and `GROUP Web` reaches a
//! group on one and nothing on the other. Aliases are lower-cased by both, but two
//! that differ only in case collide (`proxmox-firewall` then refuses the file). The
//! `blacklist` ipset is applied by `pve-firewall` only.

use labwright_spec::Diagnostic;
use labwright_spec::model::{FwDirection, FwRule};

use crate::{Ctx, root};

fn mixed(name: &str) -> bool {
    name.chars().any(|c| c.is_ascii_uppercase())
}

pub(crate) fn run(ctx: &mut Ctx<'_>) {
    let Some(fw) = ctx.spec().firewall.as_ref() else {
        return;
    };
    let fw_path = root().key("firewall");
    let mut out = Vec::new();
    for name in fw.ipsets.keys() {
        let path = fw_path.key("ipsets").key(name);
        let lower = name.to_ascii_lowercase();
        if mixed(name) {
            let d = match lower.as_str() {
                "management" => Diagnostic::warning(
                    "fw-backend-names",
                    format!(
                        "ipset `{name}` is the management set on iptables nodes (pve-firewall lower-cases it) but an unused set on nftables nodes (proxmox-firewall keeps case): management access there falls back to the local network"
                    ),
                )
                .label("case matters on nftables")
                .help("name it `management`"),
                "blacklist" => Diagnostic::warning(
                    "fw-backend-names",
                    format!(
                        "ipset `{name}` is the blacklist on iptables nodes only; nftables nodes apply no blacklist at all"
                    ),
                )
                .label("case matters")
                .help("name it `blacklist`, and see the note on `blacklist`"),
                _ => Diagnostic::warning(
                    "fw-backend-names",
                    format!(
                        "ipset `{name}` is `{lower}` on iptables nodes and `{name}` on nftables nodes: a rule's `+{name}` finds it only on nftables, `+{lower}` only on iptables"
                    ),
                )
                .label("case matters")
                .help(format!("name it `{lower}` (and `+{lower}` in rules)")),
            };
            out.push((d, path.clone()));
        }
        if lower == "blacklist" {
            out.push((
                Diagnostic::warning(
                    "fw-backend-names",
                    "the `blacklist` ipset is applied by pve-firewall (iptables) only; proxmox-firewall (nftables) ignores it, so these sources are not blocked on nftables nodes",
                )
                .label("ignored on nftables")
                .help("block them with explicit DROP rules (`source: +blacklist`) at the top of firewall.datacenter.rules, which both backends apply"),
                path,
            ));
        }
    }
    let mut lower_aliases: Vec<String> = Vec::new();
    for name in fw.aliases.keys() {
        let lower = name.to_ascii_lowercase();
        let path = fw_path.key("aliases").key(name);
        if lower_aliases.contains(&lower) {
            out.push((
                Diagnostic::warning(
                    "fw-backend-names",
                    format!(
                        "alias `{name}` differs from another alias only in case: both backends lower-case alias names, so pve-firewall keeps one of them and proxmox-firewall refuses the whole file"
                    ),
                )
                .label("collides")
                .help("give the aliases distinct names"),
                path,
            ));
            continue;
        }
        lower_aliases.push(lower.clone());
        if mixed(name) {
            out.push((
                Diagnostic::warning(
                    "fw-backend-names",
                    format!(
                        "alias `{name}` is stored as `{lower}` by both backends; PVE shows and writes it back in lower case"
                    ),
                )
                .label("lower-cased by PVE")
                .help(format!("name it `{lower}`")),
                path,
            ));
        }
    }
    for name in fw.security_groups.keys().filter(|n| mixed(n)) {
        let lower = name.to_ascii_lowercase();
        out.push((
            Diagnostic::warning(
                "fw-backend-names",
                format!(
                    "security group `{name}` is `{lower}` on iptables nodes, where `GROUP {name}` finds nothing, and `{name}` on nftables nodes, where `GROUP {lower}` makes proxmox-firewall refuse the whole ruleset"
                ),
            )
            .label("case matters")
            .help(format!("name it `{lower}`")),
            fw_path.key("securityGroups").key(name),
        ));
    }
    // Rule references spelled in another case than the definition.
    let mut refs = |rules: &[FwRule], base: labwright_spec::YamlPath| {
        for (i, r) in rules.iter().enumerate() {
            let path = base.index(i);
            if r.direction == FwDirection::Group && mixed(&r.action) {
                out.push((
                    Diagnostic::warning(
                        "fw-backend-names",
                        format!(
                            "`GROUP {}` reaches no group on iptables nodes (pve-firewall lower-cases group names)",
                            r.action
                        ),
                    )
                    .label("case matters")
                    .help("use lower-case group names"),
                    path.key("action"),
                ));
            }
            for (key, v) in [("source", &r.source), ("dest", &r.dest)] {
                let Some(set) = v.as_deref().and_then(|v| v.strip_prefix('+')) else {
                    continue;
                };
                let name = set.rsplit('/').next().unwrap_or(set);
                if mixed(name) {
                    out.push((
                        Diagnostic::warning(
                            "fw-backend-names",
                            format!(
                                "`+{set}` names no ipset on iptables nodes (pve-firewall lower-cases ipset names), so the rule is left out there"
                            ),
                        )
                        .label("case matters")
                        .help("use lower-case ipset names"),
                        path.key(key),
                    ));
                }
            }
        }
    };
    if let Some(dc) = &fw.datacenter {
        refs(&dc.rules, fw_path.key("datacenter").key("rules"));
    }
    if let Some(n) = &fw.node {
        refs(&n.rules, fw_path.key("node").key("rules"));
    }
    for (g, rules) in &fw.security_groups {
        refs(rules, fw_path.key("securityGroups").key(g));
    }
    for (d, path) in out {
        ctx.emit_at_key(d, &path);
    }
}
