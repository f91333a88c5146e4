//! The management proof and the name warnings, per firewall backend: the node's
//! backend (its `nftables` option) decides which firewall the proof evaluates; when
//! it is not known, the proof must hold for both.

use labwright_policy::{Backend, CheckOptions, check, check_with};
use labwright_spec::{Diagnostic, Loaded, Severity};

/// A firewall-only spec: datacenter DROP inbound, no explicit allow, the admin PC
/// outside the node's network, and the admin PC in an ipset called `set_name`.
fn spec(set_name: &str) -> Loaded {
    let text = format!(
        r#"apiVersion: labwright/v1
kind: Homelab
metadata:
  name: backend-test
  owner: tester
node:
  name: proxmox
  address: 10.20.0.2/24
phase: 0
safetyGuards:
  managementAccessCidrs:
    - 192.168.1.50/32
  allowFirewallChanges: true
firewall:
  ipsets:
    {set_name}:
      - 192.168.1.50/32
  datacenter:
    options:
      enable: true
      policyIn: DROP
"#
    );
    match labwright_spec::load_str("backend.yaml", &text, &|_| None) {
        Ok(l) => l,
        Err(f) => panic!("spec does not load: {:?}", f.diagnostics),
    }
}

fn errors<'a>(diags: &'a [Diagnostic], rule: &str) -> Vec<&'a Diagnostic> {
    diags
        .iter()
        .filter(|d| d.rule == rule && d.severity == Severity::Error)
        .collect()
}

fn nft() -> CheckOptions {
    CheckOptions {
        backend: Some(Backend::Nftables),
    }
}

fn ipt() -> CheckOptions {
    CheckOptions {
        backend: Some(Backend::Iptables),
    }
}

/// `[IPSET Management]` is the management set for pve-firewall (it lower-cases the
/// name) and a separate, unused set for proxmox-firewall: on an nftables node the
/// admin PC would be dropped, so the proof refuses the spec there.
#[test]
fn management_ipset_spelled_management_is_refused_on_nftables() {
    let loaded = spec("Management");
    let on_nft = check_with(&loaded, &nft());
    let errs = errors(&on_nft, "mgmt-access");
    assert_eq!(errs.len(), 2, "tcp/22 and tcp/8006 both lost: {on_nft:#?}");
    for e in &errs {
        assert!(e.message.contains("nftables backend"), "{}", e.message);
        assert!(
            e.message.contains("dropped by cluster policy DROP"),
            "{}",
            e.message
        );
        assert!(
            e.help
                .as_deref()
                .is_some_and(|h| h.contains("rename it to `management`")),
            "{:?}",
            e.help
        );
    }
    // The same spec on an iptables node: pve-firewall reads it as `management`.
    let on_ipt = check_with(&loaded, &ipt());
    assert!(errors(&on_ipt, "mgmt-access").is_empty(), "{on_ipt:#?}");
    // Backend unknown: the proof must hold for both, so it is refused too.
    assert_eq!(errors(&check(&loaded), "mgmt-access").len(), 2);
    // Spelled as both backends read it, the proof holds on nftables.
    let ok = check_with(&spec("management"), &nft());
    assert!(errors(&ok, "mgmt-access").is_empty(), "{ok:#?}");
}

/// Names that mean different things on the two backends are warned about, with
/// the key they sit on.
#[test]
fn names_whose_meaning_differs_between_backends_are_warned_about() {
    let warned = |d: &[Diagnostic]| -> Vec<String> {
        d.iter()
            .filter(|d| d.rule == "fw-backend-names")
            .map(|d| format!("{}: {}", d.path.clone().unwrap_or_default(), d.message))
            .collect()
    };
    let w = warned(&check(&spec("Management")));
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(w[0].starts_with("firewall.ipsets.Management: "), "{}", w[0]);
    assert!(w[0].contains("unused set on nftables nodes"), "{}", w[0]);

    let w = warned(&check(&spec("blacklist")));
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].contains("proxmox-firewall (nftables) ignores it"),
        "{}",
        w[0]
    );

    let w = warned(&check(&spec("Admins")));
    assert!(
        w.iter()
            .any(|m| m.contains("`+Admins` finds it only on nftables")),
        "{w:#?}"
    );
    assert!(warned(&check(&spec("admins"))).is_empty());
}
