//! The homelab's hard constraints as rules with stable ids. `check` runs them on a
//! loaded spec; `plan` and `apply` run them again before touching anything.
//!
//! Each rule lives in a small module and reports [`Diagnostic`]s that point into the
//! spec file. Rule ids are part of the interface: scripts filter on them, so they never
//! change meaning.

mod addr;
mod backups;
mod fwnames;
mod mgmt;
mod pci;
mod phase;
mod refs;
mod secrets;
mod storage;
mod tags;
mod vms;

use labwright_spec::{Diagnostic, Loaded, Severity, YamlPath};

pub use addr::{AddrItem, parse_addr_list};
pub use backups::{is_system_ssd_storage, retained_bytes_upper_bound};
pub use labwright_firewall::Backend;
pub use mgmt::management_sources;
pub use pci::valid_pci_path;

/// A rule as listed by `labwright check --list-rules`.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct RuleInfo {
    pub id: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
}

/// Every rule, in the order they are documented.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: "tag-format",
        severity: Severity::Error,
        summary: "VM tags use Proxmox tag syntax (no `=`, no spaces).",
    },
    RuleInfo {
        id: "source-cidr",
        severity: Severity::Error,
        summary: "Firewall sources and destinations are CIDRs, aliases or ipsets, never IP:port.",
    },
    RuleInfo {
        id: "mgmt-access",
        severity: Severity::Error,
        summary: "A DROP/REJECT inbound policy keeps every management CIDR reaching tcp/22 and tcp/8006 (proved by evaluating the rules).",
    },
    RuleInfo {
        id: "fw-backend-names",
        severity: Severity::Warning,
        summary: "Ipset, alias and security group names mean the same on both firewall backends (lower case), and no `blacklist` ipset that the nftables backend ignores.",
    },
    RuleInfo {
        id: "tailscale-allow",
        severity: Severity::Error,
        summary: "When Tailscale management is expected, the Tailscale range keeps reaching tcp/22 and tcp/8006.",
    },
    RuleInfo {
        id: "doc-range",
        severity: Severity::Error,
        summary: "Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are not management sources.",
    },
    RuleInfo {
        id: "no-public-exposure",
        severity: Severity::Error,
        summary: "No port forward, DMZ or inbound allow from public addresses: remote access is Tailscale only.",
    },
    RuleInfo {
        id: "vm-standards",
        severity: Severity::Error,
        summary: "VirtIO NIC, VirtIO SCSI, cache=none, disks on SCSI; guest agent on where applicable (warning).",
    },
    RuleInfo {
        id: "vmid-unique",
        severity: Severity::Error,
        summary: "VMIDs and VM names are unique and VMIDs are in PVE's range (100–999999999).",
    },
    RuleInfo {
        id: "vmid-stable",
        severity: Severity::Error,
        summary: "The named roles keep their VMIDs: edge-gateway 100, firewall-router 150, monitoring 200, app-host 300, home-assistant 400, pbs 700.",
    },
    RuleInfo {
        id: "phase-gate",
        severity: Severity::Advice,
        summary: "Resources of a later phase than `phase` are deferred: listed, not applied.",
    },
    RuleInfo {
        id: "inline-secret",
        severity: Severity::Error,
        summary: "Secrets are references (env:NAME, file:PATH), never inline values.",
    },
    RuleInfo {
        id: "policy-acknowledge",
        severity: Severity::Error,
        summary: "`policy.acknowledge` names existing warning rules only.",
    },
    RuleInfo {
        id: "ssd-backup-space",
        severity: Severity::Warning,
        summary: "Backups on the system SSD share its space and its fate with the guests they protect.",
    },
    RuleInfo {
        id: "ref-unknown",
        severity: Severity::Error,
        summary: "Names used in the spec (bridges, segments, VMs, pools, aliases, ipsets, jobs) are declared.",
    },
    RuleInfo {
        id: "slot-key",
        severity: Severity::Error,
        summary: "Disks and NICs are keyed by a valid PVE slot (scsi0–30, virtio0–15, sata0–5, ide0–3, net0–31).",
    },
    RuleInfo {
        id: "no-vlan-trunking",
        severity: Severity::Error,
        summary: "No VLAN-aware bridges: segmentation uses internal-only bridges and a router VM.",
    },
    RuleInfo {
        id: "firewall-rule",
        severity: Severity::Error,
        summary: "Firewall rules have unique kebab-case ids, a valid action, macro, protocol and ports.",
    },
    RuleInfo {
        id: "bootstrap-source",
        severity: Severity::Error,
        summary: "Guest bootstrap (cloud-init) needs a cloud-image OS source.",
    },
    RuleInfo {
        id: "image-source",
        severity: Severity::Error,
        summary: "OS images are files the node can fetch itself: no xz/zip for `import` images (PVE decompresses gz/lzo/zst/bz2, for ISOs only).",
    },
    RuleInfo {
        id: "zfs-layout",
        severity: Severity::Error,
        summary: "A pool has enough devices for its raid level (mirror 2, raidz 3, raidz2 4), each disk in one pool once, ashift 9–16.",
    },
    RuleInfo {
        id: "zfs-device-name",
        severity: Severity::Warning,
        summary: "Pool devices are named by /dev/disk/by-id/… or serial, not kernel names (sdb) that change across boots.",
    },
    RuleInfo {
        id: "storage-path",
        severity: Severity::Error,
        summary: "Storage entries hold content their type supports; a dir storage on a pool lies under a declared dataset's mountpoint.",
    },
    RuleInfo {
        id: "backup-target",
        severity: Severity::Error,
        summary: "Backups do not target the storage that holds the guests' disks.",
    },
    RuleInfo {
        id: "migration-target",
        severity: Severity::Error,
        summary: "Each migrated guest folder moves into a dataset of its own.",
    },
    RuleInfo {
        id: "hostpci-machine",
        severity: Severity::Error,
        summary: "A VM with passed-through PCI devices uses `machine: q35` and `bios: ovmf` (PCIe needs q35).",
    },
    RuleInfo {
        id: "pci-mapping",
        severity: Severity::Error,
        summary: "PCI mappings have valid ids and device addresses on the lab's node; a VM's hostpci names a declared mapping, used by one running VM at a time.",
    },
    RuleInfo {
        id: "vm-resources",
        severity: Severity::Error,
        summary: "VM cores, memory and disk sizes are within what PVE accepts.",
    },
];

/// Looks up a rule's description by id.
pub fn rule_info(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id == id)
}

/// What is known of the node a spec is checked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// The node's firewall backend, when it was read from the node (its
    /// `nftables` option: [`Backend::from_nftables_option`]). `None`: not
    /// known, so the management proof must hold for both backends.
    pub backend: Option<Backend>,
}

/// The state every rule reads: the spec and where its values sit.
pub(crate) struct Ctx<'a> {
    pub loaded: &'a Loaded,
    pub opts: CheckOptions,
    pub out: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    pub fn spec(&self) -> &'a labwright_spec::Spec {
        &self.loaded.spec
    }
    /// Adds a diagnostic placed at the value of `path`.
    pub fn emit(&mut self, d: Diagnostic, path: &YamlPath) {
        let span = self.loaded.index.value(path);
        self.out.push(d.at(path, span));
    }
    /// Adds a diagnostic placed at the key of `path` (for whole mappings).
    pub fn emit_at_key(&mut self, d: Diagnostic, path: &YamlPath) {
        let span = self.loaded.index.head(path, &self.loaded.source.text);
        self.out.push(d.at(path, span));
    }
}

/// Runs every rule, for a node whose firewall backend is not known (the
/// management proof holds for both). Diagnostics come back in file order.
pub fn check(loaded: &Loaded) -> Vec<Diagnostic> {
    check_with(loaded, &CheckOptions::default())
}

/// Runs every rule for a node of which `opts` says what is known (its
/// firewall backend, read from its options). Diagnostics come back in file
/// order.
pub fn check_with(loaded: &Loaded, opts: &CheckOptions) -> Vec<Diagnostic> {
    let mut ctx = Ctx {
        loaded,
        opts: *opts,
        out: Vec::new(),
    };
    tags::run(&mut ctx);
    vms::run(&mut ctx);
    refs::run(&mut ctx);
    addr::run(&mut ctx);
    mgmt::run(&mut ctx);
    fwnames::run(&mut ctx);
    secrets::run(&mut ctx);
    backups::run(&mut ctx);
    storage::run(&mut ctx);
    pci::run(&mut ctx);
    phase::run(&mut ctx);
    acknowledge(&mut ctx);
    let mut out = ctx.out;
    out.sort_by_key(|d| {
        (
            d.span
                .map(|s| (s.line, s.column))
                .unwrap_or((usize::MAX, 0)),
            std::cmp::Reverse(d.severity),
            d.rule.clone(),
        )
    });
    out.dedup();
    out
}

/// Warnings of rules listed in `policy.acknowledge` become advice (still shown, no
/// longer failing `--strict`); an id that is no rule, or an error rule, is an error.
fn acknowledge(ctx: &mut Ctx<'_>) {
    let Some(p) = ctx.spec().policy.clone() else {
        return;
    };
    for (i, id) in p.acknowledge.iter().enumerate() {
        let path = root().key("policy").key("acknowledge").index(i);
        match RULES.iter().find(|r| r.id == id.as_str()) {
            None => ctx.emit(
                Diagnostic::error("policy-acknowledge", format!("`{id}` is not a rule id"))
                    .label("unknown rule")
                    .help("`labwright check --list-rules` lists the rule ids"),
                &path,
            ),
            Some(r) if r.severity == Severity::Error => ctx.emit(
                Diagnostic::error(
                    "policy-acknowledge",
                    format!("`{id}` reports errors, which cannot be acknowledged"),
                )
                .label("error rule")
                .help("fix what it reports instead"),
                &path,
            ),
            Some(_) => {}
        }
    }
    for d in &mut ctx.out {
        if d.severity == Severity::Warning && p.acknowledge.contains(&d.rule) {
            d.severity = Severity::Advice;
            d.message
                .push_str(" (acknowledged in `policy.acknowledge`)");
        }
    }
}

pub(crate) fn root() -> YamlPath {
    YamlPath::root()
}

/// The YAML spelling of an enum value (`writeback`, `e1000`).
pub(crate) fn enum_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".to_string(),
    }
}
