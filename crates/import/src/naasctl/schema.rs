//! What naasctl's own schema (`desiredSpecSchema`, zod) knew, and why labwright does
//! not take what it cannot map. zod drops unknown keys without a word, so a key
//! outside these shapes was never acted on by naasctl.
//!
//! Written from the format notes (docs/import-naasctl.md): the families are named
//! there, the fields of the `proxmox*` and `grafana*` lists are not, so any key under
//! such a list counts as known to naasctl.

use crate::path::Path;

/// Field shapes naasctl's schema declares (indices erased, `**`: anything below).
const KNOWN: &[&str] = &[
    "vms[].vmid",
    "vms[].desiredPower",
    "vms[].risky",
    "vms[].snapshotBeforeRisky",
    "vmProvision[].name",
    "vmProvision[].vmid",
    "vmProvision[].node",
    "vmProvision[].ensure",
    "vmProvision[].clone.source",
    "vmProvision[].clone.full",
    "vmProvision[].clone.pool",
    "vmProvision[].clone.snapname",
    "vmProvision[].cpu.cores",
    "vmProvision[].cpu.sockets",
    "vmProvision[].cpu.type",
    "vmProvision[].cpu.limit",
    "vmProvision[].cpu.units",
    "vmProvision[].cpu.numa",
    "vmProvision[].memory.size",
    "vmProvision[].memory.balloon",
    "vmProvision[].memory.shares",
    "vmProvision[].disks[].interface",
    "vmProvision[].disks[].index",
    "vmProvision[].disks[].storage",
    "vmProvision[].disks[].size",
    "vmProvision[].disks[].format",
    "vmProvision[].disks[].cache",
    "vmProvision[].disks[].discard",
    "vmProvision[].disks[].ssd",
    "vmProvision[].disks[].iothread",
    "vmProvision[].networks[].interface",
    "vmProvision[].networks[].index",
    "vmProvision[].networks[].model",
    "vmProvision[].networks[].bridge",
    "vmProvision[].networks[].tag",
    "vmProvision[].networks[].vlan",
    "vmProvision[].networks[].firewall",
    "vmProvision[].networks[].mac",
    "vmProvision[].networks[].rate",
    "vmProvision[].ipconfig[].**",
    "vmProvision[].cloudInit.**",
    "vmProvision[].boot.order[]",
    "vmProvision[].boot.bios",
    "vmProvision[].onboot",
    "vmProvision[].protection",
    "vmProvision[].tags[]",
    "vmProvision[].description",
    "vmProvision[].ostype",
    "vmProvision[].agent",
    "vmProvision[].hotplug",
    "composeProjects[].path",
    "composeProjects[].ensure",
    "safetyGuards.executionMode",
    "safetyGuards.runtimeFirewallChangesAllowed",
    "safetyGuards.runtimeNetworkChangesAllowed",
    "safetyGuards.runtimeBackupChangesAllowed",
    "safetyGuards.managementAccessCidrs[]",
    "safetyGuards.notes[]",
    "validation.enabled",
    "validation.prometheusDatasourceName",
    "validation.checks[].expr",
    "validation.checks[].min",
    "validation.checks[].max",
    "networks[].name",
    "networks[].node",
    "networks[].ensure",
    "networks[].type",
    "networks[].bridge_ports",
    "networks[].bridge_vlan_aware",
    "networks[].vlan_id",
    "networks[].cidr",
    "networks[].gateway",
    "networks[].autostart",
    "networks[].comments",
    "storage[].name",
    "storage[].node",
    "storage[].ensure",
    "storage[].type",
    "storage[].content[]",
    "storage[].path",
    "storage[].server",
    "storage[].export",
    "storage[].share",
    "storage[].vgname",
    "storage[].pool",
    "storage[].blocksize",
    "storage[].sparse",
];

/// True when one shape is the other or lies under it at a segment boundary.
fn nested(a: &str, b: &str) -> bool {
    a == b
        || (a.starts_with(b) && matches!(a.as_bytes().get(b.len()), Some(b'.' | b'[')))
        || (b.starts_with(a) && matches!(b.as_bytes().get(a.len()), Some(b'.' | b'[')))
}

/// Whether naasctl's schema kept this path (and so naasctl could act on it).
pub fn naasctl_acted(path: &Path) -> bool {
    let fam = path.family();
    let list_family = |prefix: &str| {
        fam.strip_prefix(prefix)
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_uppercase()))
    };
    if list_family("proxmox") || list_family("grafana") {
        return true;
    }
    let shape = path.shape();
    KNOWN.iter().any(|k| match k.strip_suffix(".**") {
        Some(base) => nested(&shape, base),
        None => nested(&shape, k),
    })
}

/// Why labwright does not map a path (first match wins).
pub fn reason(path: &Path) -> &'static str {
    let fam = path.family();
    let shape = path.shape();
    let under = |p: &str| nested(&shape, p) && shape.len() >= p.len();
    const IAM: &[&str] = &[
        "Users", "Tokens", "Acls", "Roles", "Groups", "Realms", "Tfa", "Acl", "Token", "User",
    ];
    if let Some(rest) = fam.strip_prefix("proxmox") {
        if IAM.iter().any(|s| rest.starts_with(s)) {
            return "access control (users, tokens, ACLs, roles, realms, TFA) is not managed by labwright";
        }
        if rest.starts_with("Sdn") {
            return "SDN is not used: segmentation is internal bridges and a router VM";
        }
        if rest.contains("Crud") {
            return "raw API requests are not replayed: labwright plans typed changes only";
        }
        if rest.starts_with("Ha") || rest.starts_with("Replication") {
            return "HA and replication need a cluster; the lab is one node";
        }
        if rest.starts_with("NodeZfsCreate") {
            return "declare the pool's PVE storage in storage.pveStorages (type zfspool) instead";
        }
        if rest.contains("FirewallOptions") {
            return "labwright's firewall options are enable, policyIn and policyOut";
        }
        if rest.starts_with("Datacenter") || rest.starts_with("Node") {
            return "this part of the node or datacenter has no labwright resource";
        }
        return "no labwright resource for this naasctl list";
    }
    if fam.starts_with("grafana") {
        return "dashboards and alerts are not part of the lab spec";
    }
    match fam {
        "composeProjects" | "dockerStacks" => {
            return "labwright prepares /opt/naas but does not deploy Compose stacks";
        }
        "validation" => {
            return "labwright's checks are HTTP probes; Prometheus expressions have no equivalent";
        }
        "validationChecks" => {
            return "free-form checks; write them as labwright validationChecks (http) by hand";
        }
        "profiles" | "assumptions" => return "documentation for people; no labwright field",
        "firewallPolicies" => return "free-form intent; write it as firewall.matrix by hand",
        "backupPolicies" => return "free-form intent; the jobs themselves map to backups.jobs",
        _ => {}
    }
    if under("vmProvision[].clone") {
        return "labwright builds guests from a cloud image or ISO, never by cloning a template";
    }
    if under("vmProvision[].networks[].tag") || under("vmProvision[].networks[].vlan") {
        return "VLAN tags are refused: no VLAN trunking in this lab";
    }
    if under("vmProvision[].cpu") || under("vmProvision[].memory") {
        return "CPU limits, NUMA, ballooning and shares are left to PVE's defaults";
    }
    if under("vmProvision[].boot.order") {
        return "the boot order follows the OS disk labwright creates";
    }
    if under("vmProvision[].disks[].format") {
        return "labwright picks the disk format the storage needs";
    }
    if under("vmProvision[].networks[].rate") {
        return "NIC rate limits are not modelled";
    }
    if under("vmProvision[].cloudInit") {
        return "no labwright bootstrap field for this cloud-init setting";
    }
    if under("vms[].risky") || under("vms[].snapshotBeforeRisky") {
        return "labwright classifies risk itself and always snapshots before reboot-needing changes";
    }
    if under("safetyGuards.notes") {
        return "notes for people; copy them into comments by hand";
    }
    if fam == "networks" {
        return "only Linux bridges are managed (no bonds, no VLAN interfaces)";
    }
    if fam == "storage" {
        return "no labwright field for this storage option";
    }
    if fam == "profilesConfig" {
        return "no labwright field for this part of the phase profile";
    }
    if fam == "tailscaleConfig" {
        return "no labwright tailscale field for this key";
    }
    "no labwright field for this key"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Path {
        let mut out = Path::root();
        for x in s {
            out = match x.parse::<usize>() {
                Ok(i) => out.index(i),
                Err(_) => out.key(x),
            };
        }
        out
    }

    #[test]
    fn acted_follows_the_schema() {
        assert!(naasctl_acted(&p(&["vmProvision", "0", "cpu", "numa"])));
        assert!(naasctl_acted(&p(&[
            "vmProvision",
            "0",
            "cloudInit",
            "anything"
        ])));
        assert!(naasctl_acted(&p(&["proxmoxUsers", "0", "userid"])));
        assert!(naasctl_acted(&p(&["vmProvision", "0", "tags"]))); // empty list
        assert!(!naasctl_acted(&p(&["vmProvision", "0", "scsihw"])));
        assert!(!naasctl_acted(&p(&["tailscaleConfig", "authKey"])));
        assert!(!naasctl_acted(&p(&[
            "profilesConfig",
            "phase1",
            "storages",
            "0"
        ])));
        assert!(!naasctl_acted(&p(&["proxmox"])));
        assert!(!naasctl_acted(&p(&["vmProvisions", "0"])));
    }
}
