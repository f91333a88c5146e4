//! PCI passthrough rules: `hostpci-machine` (a VM with passed-through devices boots
//! q35 + OVMF) and `pci-mapping` (mappings are well formed and every device a VM
//! names is declared, and not given to two running VMs). What only the node knows
//! (the device exists, its IOMMU group is its own, no other guest holds it) is checked
//! by the engine's `pci mapping` kind at plan time.

use std::collections::HashMap;

use labwright_spec::Diagnostic;
use labwright_spec::model::{Bios, Machine, PowerState};

use crate::{Ctx, root};

/// PVE's `pve-configid`: a letter, then letters, digits, `-` or `_`.
fn valid_config_id(id: &str) -> bool {
    let mut c = id.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic())
        && id.len() >= 2
        && c.all(|x| x.is_ascii_alphanumeric() || x == '-' || x == '_')
}

/// One PCI address as a mapping's `path` takes it: `DDDD:BB:SS` or `DDDD:BB:SS.F`,
/// lower-case hex (pve-guest-common's pattern).
pub fn valid_pci_path(p: &str) -> bool {
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    };
    let (dev, func) = match p.split_once('.') {
        Some((d, f)) => (d, Some(f)),
        None => (p, None),
    };
    let parts: Vec<&str> = dev.split(':').collect();
    parts.len() == 3
        && parts[0].len() >= 4
        && hex(parts[0], parts[0].len())
        && hex(parts[1], 2)
        && hex(parts[2], 2)
        && func.is_none_or(|f| hex(f, 1))
}

pub(crate) fn run(ctx: &mut Ctx<'_>) {
    let spec = ctx.spec();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, m) in spec.pci_mappings.iter().enumerate() {
        let mp = root().key("pciMappings").index(i);
        if !valid_config_id(&m.id) {
            ctx.emit(
                Diagnostic::error(
                    "pci-mapping",
                    format!("mapping id `{}` is not a valid PVE configuration id", m.id),
                )
                .label("invalid id")
                .help("start with a letter, then letters, digits, `-` or `_` (e.g. `gpu0`)"),
                &mp.key("id"),
            );
        }
        if let Some(first) = ids.insert(m.id.as_str(), i) {
            ctx.emit(
                Diagnostic::error(
                    "pci-mapping",
                    format!(
                        "mapping id `{}` is already declared (pciMappings[{first}])",
                        m.id
                    ),
                )
                .label("duplicate id")
                .help("give every mapping its own id"),
                &mp.key("id"),
            );
        }
        if !valid_pci_path(&m.path) {
            ctx.emit(
                Diagnostic::error(
                    "pci-mapping",
                    format!("`{}` is not a PCI address PVE accepts in a mapping", m.path),
                )
                .label("invalid PCI address")
                .help("write the full address in lower-case hex: `0000:01:00` for the whole device, `0000:01:00.0` for one function (`lspci -D` shows it)"),
                &mp.key("path"),
            );
        }
        if let Some(n) = &m.node
            && n != spec.node_name()
        {
            ctx.emit(
                Diagnostic::error(
                    "pci-mapping",
                    format!(
                        "the mapping is for node `{n}`, but the lab's node is `{}`",
                        spec.node_name()
                    ),
                )
                .label("other node")
                .help("leave `node` out (the lab's node) or name the lab's node"),
                &mp.key("node"),
            );
        }
    }
    let declared: Vec<String> = spec.pci_mappings.iter().map(|m| m.id.clone()).collect();
    // mapping id → (vm index, slot) of the first running VM that uses it.
    let mut running_users: HashMap<&str, (usize, &str)> = HashMap::new();
    for (i, vm) in spec.vms.iter().enumerate() {
        if vm.hostpci.is_empty() {
            continue;
        }
        let vp = root().key("vms").index(i);
        let mut missing = Vec::new();
        if vm.machine != Machine::Q35 {
            missing.push("`machine: q35`");
        }
        if vm.bios != Bios::Ovmf {
            missing.push("`bios: ovmf`");
        }
        if !missing.is_empty() {
            let pcie = vm.hostpci.values().any(|h| h.pcie);
            ctx.emit_at_key(
                Diagnostic::error(
                    "hostpci-machine",
                    format!(
                        "VM {} `{}` passes PCI devices through but lacks {}{}",
                        vm.vmid,
                        vm.name,
                        missing.join(" and "),
                        if pcie && vm.machine != Machine::Q35 {
                            " (`pcie: true` needs q35: PVE refuses to start it with \"q35 machine model is not enabled\")"
                        } else {
                            ""
                        }
                    ),
                )
                .label("passthrough needs q35 + OVMF")
                .help("set `machine: q35` and `bios: ovmf` on this VM (a GPU's UEFI ROM needs OVMF; PCIe needs q35)"),
                &vp.key("hostpci"),
            );
        }
        for (slot, h) in &vm.hostpci {
            let hp = vp.key("hostpci").key(slot.clone());
            let index_ok = slot
                .strip_prefix("hostpci")
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n <= 15 && format!("hostpci{n}") == *slot);
            if !index_ok {
                ctx.emit_at_key(
                    Diagnostic::error(
                        "pci-mapping",
                        format!("`{slot}` is not a PCI passthrough slot"),
                    )
                    .label("invalid slot")
                    .help("key passed-through devices `hostpci0` … `hostpci15`"),
                    &hp,
                );
            }
            if !declared.contains(&h.mapping) {
                let help = match labwright_spec::load::suggest(&h.mapping, &declared) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "declare it under `pciMappings` (id, path of the device)".to_string(),
                };
                ctx.emit(
                    Diagnostic::error(
                        "pci-mapping",
                        format!("PCI mapping `{}` is not declared", h.mapping),
                    )
                    .label("unknown mapping")
                    .help(help),
                    &hp.key("mapping"),
                );
                continue;
            }
            if vm.power == PowerState::Running {
                if let Some((first, first_slot)) = running_users.get(h.mapping.as_str()) {
                    let other = &spec.vms[*first];
                    ctx.emit(
                        Diagnostic::error(
                            "pci-mapping",
                            format!(
                                "mapping `{}` is already passed through to VM {} `{}` ({first_slot}); a device can be in one running VM only",
                                h.mapping, other.vmid, other.name
                            ),
                        )
                        .label("device used twice")
                        .help("give each running VM its own device, or set `power: stopped` on one of them"),
                        &hp.key("mapping"),
                    );
                } else {
                    running_users.insert(h.mapping.as_str(), (i, slot.as_str()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_paths() {
        assert!(valid_pci_path("0000:01:00"));
        assert!(valid_pci_path("0000:01:00.1"));
        assert!(!valid_pci_path("01:00.0"));
        assert!(!valid_pci_path("0000:01:00.10"));
        assert!(!valid_pci_path("0000:0A:00"));
    }

    #[test]
    fn config_ids() {
        assert!(valid_config_id("gpu0"));
        assert!(!valid_config_id("0gpu"));
        assert!(!valid_config_id("g"));
        assert!(!valid_config_id("gpu.0"));
    }
}
