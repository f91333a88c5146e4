//! Fixed MAC addresses for the router VM's NICs.
//!
//! PVE picks a random MAC when a NIC is created without one, so recreating VM 150 (or
//! one of its NICs) would hand the router a new WAN identity (a new upstream DHCP
//! lease) and break whatever names links by MAC (the Debian router's `.link` files,
//! `validate` matching `vtnetN` to `netN`). Deriving the MAC from what the spec already
//! fixes — lab name, VMID, NIC slot — keeps it the same across runs and machines
//! without storing it anywhere.

use std::fmt;

use sha2::{Digest, Sha256};

/// A MAC address. Displays the way PVE writes it in `netN` (`AA:BB:CC:DD:EE:FF`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Locally administered: set by an operator, never by a vendor, so it cannot
    /// clash with a burned-in address (IEEE 802, U/L bit).
    pub fn is_locally_administered(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
    /// Unicast (I/G bit clear): a NIC's own address must never be a group address.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{g:02X}")
    }
}

/// The MAC of NIC `slot` (`net0`) of VM `vmid` in lab `lab`: the first six bytes of
/// SHA-256 over the three (length-prefixed, so `("ab", "c")` and `("a", "bc")`
/// differ), made a locally administered unicast address. Stable across runs,
/// distinct per slot; two labs on one node get different MACs for the same VMID.
pub fn router_nic_mac(lab: &str, vmid: u32, slot: &str) -> Mac {
    let mut h = Sha256::new();
    h.update(b"labwright router nic mac v1\0");
    for part in [lab.as_bytes(), vmid.to_string().as_bytes(), slot.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let digest = h.finalize();
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&digest[..6]);
    mac[0] = (mac[0] | 0x02) & !0x01;
    Mac(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_across_calls_and_pinned() {
        let a = router_nic_mac("jarvis", 150, "net0");
        assert_eq!(a, router_nic_mac("jarvis", 150, "net0"));
        // Pinned (computed independently with Python hashlib): a change of derivation
        // would renumber every router's WAN lease.
        assert_eq!(a.to_string(), PINNED_JARVIS_150_NET0);
    }

    const PINNED_JARVIS_150_NET0: &str = "86:E1:50:AC:E8:2F";

    #[test]
    fn distinct_per_nic_vm_and_lab() {
        let mut all = vec![
            router_nic_mac("jarvis", 150, "net0"),
            router_nic_mac("jarvis", 150, "net1"),
            router_nic_mac("jarvis", 150, "net2"),
            router_nic_mac("jarvis", 151, "net0"),
            router_nic_mac("other", 150, "net0"),
            // Length prefixes keep concatenations apart.
            router_nic_mac("jarvis1", 50, "net0"),
        ];
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn valid_unicast_locally_administered() {
        for lab in ["jarvis", "a", "lab-with-a-long-name"] {
            for vmid in [100, 150, 999_999_999] {
                for slot in ["net0", "net1", "net2", "net31"] {
                    let m = router_nic_mac(lab, vmid, slot);
                    assert!(m.is_locally_administered(), "{m}");
                    assert!(m.is_unicast(), "{m}");
                    assert_ne!(m.0, [0x02, 0, 0, 0, 0, 0], "all-zero body");
                }
            }
        }
        let shown = router_nic_mac("jarvis", 150, "net1").to_string();
        assert_eq!(shown.len(), 17);
        assert!(
            shown
                .chars()
                .all(|c| c == ':' || c.is_ascii_digit() || ('A'..='F').contains(&c)),
            "{shown}"
        );
    }
}
