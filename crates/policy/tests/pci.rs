//! PCI passthrough rules on whole specs: q35 + OVMF, declared mappings, one running
//! VM per device, each diagnostic at the right place with its help.

use labwright_policy::check;
use labwright_spec::{Diagnostic, Loaded};

fn load(vm_extra: &str, mappings: &str) -> Loaded {
    let text = format!(
        r#"apiVersion: labwright/v1
kind: Homelab
metadata:
  name: gpu-test
  owner: tester
node:
  name: proxmox
{mappings}
vms:
  - vmid: 500
    name: gpu-worker
    cores: 4
    memory: 8192
{vm_extra}
    disks:
      scsi0: {{ size: 32G }}
    nics:
      net0: {{ bridge: vmbr0 }}
networks:
  bridges:
    vmbr0: {{ ports: [nic0], address: 192.168.1.10/24, gateway: 192.168.1.1 }}
"#
    );
    match labwright_spec::load_str("gpu.yaml", &text, &|_| None) {
        Ok(l) => l,
        Err(f) => panic!("spec does not load: {:?}", f.diagnostics),
    }
}

const GPU0: &str = "pciMappings:\n  - id: gpu0\n    path: \"0000:01:00\"\n";

fn of<'a>(ds: &'a [Diagnostic], rule: &str) -> Vec<&'a Diagnostic> {
    ds.iter().filter(|d| d.rule == rule).collect()
}

#[test]
fn a_passthrough_vm_on_q35_ovmf_with_a_declared_mapping_passes() {
    let l = load(
        "    bios: ovmf\n    machine: q35\n    hostpci:\n      hostpci0: { mapping: gpu0, primaryGpu: true }",
        GPU0,
    );
    let ds = check(&l);
    assert!(of(&ds, "hostpci-machine").is_empty(), "{ds:?}");
    assert!(of(&ds, "pci-mapping").is_empty(), "{ds:?}");
}

#[test]
fn seabios_or_i440fx_is_refused_with_the_reason() {
    let l = load(
        "    bios: seabios\n    machine: pc\n    hostpci:\n      hostpci0: { mapping: gpu0 }",
        GPU0,
    );
    let ds = check(&l);
    let d = of(&ds, "hostpci-machine");
    assert_eq!(d.len(), 1, "{ds:?}");
    assert!(
        d[0].message.contains("`machine: q35` and `bios: ovmf`"),
        "{}",
        d[0].message
    );
    assert!(d[0].message.contains("q35 machine model is not enabled"));
    assert_eq!(d[0].path.as_deref(), Some("vms[0].hostpci"));
    assert!(d[0].span.is_some());
    assert!(d[0].help.as_deref().unwrap_or("").contains("machine: q35"));

    // OVMF missing alone (q35 is the default machine) is still an error.
    let l = load("    hostpci:\n      hostpci0: { mapping: gpu0 }", GPU0);
    let ds = check(&l);
    let d = of(&ds, "hostpci-machine");
    assert_eq!(d.len(), 1, "{ds:?}");
    assert!(d[0].message.contains("`bios: ovmf`"));
    assert!(!d[0].message.contains("machine: q35"));
}

#[test]
fn an_undeclared_mapping_is_an_error_with_a_suggestion() {
    let l = load(
        "    bios: ovmf\n    hostpci:\n      hostpci0: { mapping: gpu1 }",
        GPU0,
    );
    let ds = check(&l);
    let d = of(&ds, "pci-mapping");
    assert_eq!(d.len(), 1, "{ds:?}");
    assert_eq!(d[0].message, "PCI mapping `gpu1` is not declared");
    assert_eq!(
        d[0].path.as_deref(),
        Some("vms[0].hostpci.hostpci0.mapping")
    );
    assert_eq!(d[0].help.as_deref(), Some("did you mean `gpu0`?"));
}

#[test]
fn bad_mapping_ids_paths_nodes_and_slots_are_errors() {
    let l = load(
        "    bios: ovmf\n    hostpci:\n      hostpci16: { mapping: gpu0 }",
        "pciMappings:\n  - id: gpu0\n    path: \"01:00.0\"\n    node: other\n  - id: gpu0\n    path: \"0000:02:00\"\n",
    );
    let ds = check(&l);
    let msgs: Vec<&str> = of(&ds, "pci-mapping")
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("`01:00.0` is not a PCI address")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("node `other`")), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.contains("already declared")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("`hostpci16` is not a PCI passthrough slot")),
        "{msgs:?}"
    );
}

#[test]
fn one_device_in_two_running_vms_is_refused() {
    let text = format!(
        r#"apiVersion: labwright/v1
kind: Homelab
metadata: {{ name: gpu-test, owner: tester }}
node: {{ name: proxmox }}
{GPU0}
vms:
  - {{ vmid: 500, name: a, cores: 1, memory: 1024, bios: ovmf, hostpci: {{ hostpci0: {{ mapping: gpu0 }} }} }}
  - {{ vmid: 501, name: b, cores: 1, memory: 1024, bios: ovmf, hostpci: {{ hostpci1: {{ mapping: gpu0 }} }} }}
  - {{ vmid: 502, name: c, cores: 1, memory: 1024, bios: ovmf, power: stopped, hostpci: {{ hostpci0: {{ mapping: gpu0 }} }} }}
"#
    );
    let l = match labwright_spec::load_str("two.yaml", &text, &|_| None) {
        Ok(l) => l,
        Err(f) => panic!("{:?}", f.diagnostics),
    };
    let ds = check(&l);
    let d = of(&ds, "pci-mapping");
    // VM b is refused; the stopped VM c may share the device.
    assert_eq!(d.len(), 1, "{ds:?}");
    assert!(
        d[0].message.contains("VM 500 `a` (hostpci0)"),
        "{}",
        d[0].message
    );
    assert_eq!(
        d[0].path.as_deref(),
        Some("vms[1].hostpci.hostpci1.mapping")
    );
}

#[test]
fn the_rules_are_listed() {
    for id in ["hostpci-machine", "pci-mapping"] {
        assert!(labwright_policy::rule_info(id).is_some(), "{id}");
    }
}
