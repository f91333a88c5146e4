//! The router guest (an OPNsense image) at run time: the configuration importer at
//! boot (the one console step; `--router-console auto|manual`, `PUT …/sendkey`), the
//! running router's interfaces and DHCP leases, and its boot fault.
//!
//! The importer (opnsense/core `src/sbin/opnsense-importer -b`): with no
//! `/conf/config.xml` it waits ~7 s for a key, then reads a device name and copies
//! `conf/config.xml` from it (`cd0`: the first CD-ROM, mounted as ISO 9660). Once
//! imported the config lives on the router's disk: reboots keep it and a new CD is not
//! read again.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::guestnet::{GuestOs, guest_os};
use crate::opnsense::{Config, IfAddr, factory};
use crate::state::{Importer, RouterGuest, RouterLease, State, Vm};
use crate::util::now_f;
use crate::{RouterConsole, RouterSim};

/// Seconds (at time scale 1) from power-on (or from the import) until the router
/// forwards and serves.
const BOOT_SECS: f64 = 8.0;
/// The importer's `Press any key` window at time scale 1 (opnsense-importer: 7 s).
const WINDOW_SECS: f64 = 7.0;
/// The window never shrinks below this many real seconds, whatever the time scale, so
/// a client can hit it reliably.
const WINDOW_FLOOR_SECS: f64 = 4.0;

/// The CD-ROM drives of `vm` in FreeBSD's order (`cd0`, `cd1` …: IDE, SATA, SCSI, each
/// by index), with the volume each holds.
fn cdroms(vm: &Vm) -> Vec<String> {
    let mut d: Vec<(u8, u32, String)> = vm
        .conf
        .iter()
        .filter(|(k, v)| crate::api::qemu::is_drive(k) && v.contains("media=cdrom"))
        .filter_map(|(k, v)| {
            let bus = ["ide", "sata", "scsi"]
                .iter()
                .position(|b| k.starts_with(b))?;
            let n: u32 = k
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .parse()
                .ok()?;
            Some((
                bus as u8,
                n,
                v.split(',').next().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    d.sort();
    d.into_iter().map(|(_, _, v)| v).collect()
}

/// The config.xml on device `dev` (`cd0` …) of `vm`, if that device holds a seed.
fn seed_on(st: &State, vm: &Vm, dev: &str) -> Option<String> {
    let n: usize = dev.strip_prefix("cd")?.parse().ok()?;
    let volid = cdroms(vm).into_iter().nth(n)?;
    st.volumes.iter().find(|v| v.volid == volid)?;
    st.router_seeds.get(&volid).cloned()
}

/// The first CD-ROM holding a seed, as the admin following the runbook types it.
fn any_seed(st: &State, vm: &Vm) -> Option<String> {
    (0..cdroms(vm).len()).find_map(|i| seed_on(st, vm, &format!("cd{i}")))
}

/// At every power-on, reset or reboot of `vmid` (already marked running): an OPNsense
/// guest without a config shows the importer (`auto`: imported at once, from the
/// first CD-ROM holding a seed); `failed` is this boot's fault draw.
pub fn on_boot(st: &mut State, vmid: u32, rs: RouterSim, failed: bool, scale: f64) {
    let Some(vm) = st.vms.get(&vmid) else {
        return;
    };
    if guest_os(st, vm) != GuestOs::OpnSense {
        return;
    }
    let seed = any_seed(st, vm);
    let Some(vm) = st.vms.get_mut(&vmid) else {
        return;
    };
    let now = now_f();
    let r = vm.guest.router.get_or_insert_with(RouterGuest::default);
    r.boot_failed = failed;
    r.importer = None;
    r.ready_at = now + BOOT_SECS * scale;
    if r.config.is_some() {
        return;
    }
    match rs.console {
        RouterConsole::Auto => r.config = seed,
        RouterConsole::Manual => {
            let window = (WINDOW_SECS * scale).max(WINDOW_FLOOR_SECS);
            r.importer = Some(Importer {
                closes_at: now + window,
                prompting: false,
                typed: String::new(),
            });
            // Unattended, the boot goes on without a config once the window closes.
            r.ready_at = now + window + BOOT_SECS * scale;
        }
    }
}

/// The keys QEMU's `sendkey` knows (QKeyCode names); combinations join them with `-`.
fn known_key(k: &str) -> bool {
    const NAMES: &[&str] = &[
        "shift",
        "shift_r",
        "alt",
        "alt_r",
        "ctrl",
        "ctrl_r",
        "menu",
        "esc",
        "minus",
        "equal",
        "backspace",
        "tab",
        "bracket_left",
        "bracket_right",
        "ret",
        "semicolon",
        "apostrophe",
        "grave_accent",
        "backslash",
        "comma",
        "dot",
        "slash",
        "asterisk",
        "spc",
        "caps_lock",
        "num_lock",
        "scroll_lock",
        "kp_divide",
        "kp_multiply",
        "kp_subtract",
        "kp_add",
        "kp_enter",
        "kp_decimal",
        "sysrq",
        "kp_0",
        "kp_1",
        "kp_2",
        "kp_3",
        "kp_4",
        "kp_5",
        "kp_6",
        "kp_7",
        "kp_8",
        "kp_9",
        "less",
        "home",
        "pgup",
        "pgdn",
        "end",
        "left",
        "up",
        "down",
        "right",
        "insert",
        "delete",
        "meta_l",
        "meta_r",
        "print",
        "pause",
    ];
    k.split('-').all(|p| {
        (p.len() == 1
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
            || NAMES.contains(&p)
            || p.strip_prefix('f')
                .and_then(|n| n.parse::<u8>().ok())
                .is_some_and(|n| (1..=12).contains(&n))
    })
}

/// `PUT …/sendkey` on a running VM: `Err` is PVE's error text. On an OPNsense guest
/// at its importer: any key in the window opens the device prompt; letters and digits
/// type, `backspace` erases, `ret` imports from the typed device.
pub fn sendkey(st: &mut State, vmid: u32, key: &str, scale: f64) -> Result<(), String> {
    if !known_key(key) {
        return Err(format!("invalid parameter: {key}"));
    }
    let Some(vm) = st.vms.get(&vmid) else {
        return Ok(());
    };
    let typed_dev = vm
        .guest
        .router
        .as_ref()
        .and_then(|r| r.importer.as_ref())
        .filter(|i| i.prompting && matches!(key, "ret" | "kp_enter"))
        .map(|i| i.typed.trim().to_string());
    let seed = typed_dev.as_deref().and_then(|d| seed_on(st, vm, d));
    let Some(r) = st.vms.get_mut(&vmid).and_then(|v| v.guest.router.as_mut()) else {
        return Ok(());
    };
    let now = now_f();
    let Some(imp) = r.importer.as_mut() else {
        return Ok(());
    };
    if !imp.prompting {
        if now <= imp.closes_at {
            imp.prompting = true;
            // The boot waits at the prompt (MAX, not infinity: the state is JSON).
            r.ready_at = f64::MAX;
        } else {
            r.importer = None;
        }
        return Ok(());
    }
    match key {
        "ret" | "kp_enter" => {
            if typed_dev.is_some() {
                r.config = seed;
            }
            r.importer = None;
            r.ready_at = now + BOOT_SECS * scale;
        }
        "backspace" => {
            imp.typed.pop();
        }
        k if k.len() == 1 => imp.typed.push_str(k),
        k => {
            if let Some(c) = k.strip_prefix("shift-").filter(|c| c.len() == 1) {
                imp.typed.push_str(&c.to_ascii_uppercase());
            }
        }
    }
    Ok(())
}

/// One interface of a running router, on its NIC.
#[derive(Debug, Clone)]
pub struct RtIf {
    pub key: String,
    /// NIC slot N (`netN` = `vtnetN`).
    pub slot: u32,
    pub bridge: String,
    pub mac: String,
    /// Its address and network, when it has one.
    pub addr: Option<(Ipv4Addr, Ipv4Net)>,
}

/// A booted router as the network sees it.
#[derive(Debug, Clone)]
pub struct RouterRt {
    pub vmid: u32,
    pub cfg: Config,
    /// Configured from an imported config: forwards, filters, serves DHCP.
    pub routing: bool,
    pub ifaces: Vec<RtIf>,
}

impl RouterRt {
    pub fn addrs(&self) -> Vec<(String, Ipv4Addr, Ipv4Net)> {
        self.ifaces
            .iter()
            .filter_map(|i| i.addr.map(|(a, n)| (i.key.clone(), a, n)))
            .collect()
    }
    pub fn iface_on(&self, bridge: &str) -> Option<&RtIf> {
        self.ifaces.iter().find(|i| i.bridge == bridge)
    }
    /// The interface whose network holds `ip`.
    pub fn iface_for(&self, ip: Ipv4Addr) -> Option<&RtIf> {
        self.ifaces
            .iter()
            .find(|i| i.addr.is_some_and(|(_, n)| n.contains(&ip)))
    }
}

/// `netN`'s MAC and bridge, unless the link is down.
pub fn nic_of(vm: &Vm, slot: u32) -> Option<(String, String)> {
    let v = vm.conf.get(&format!("net{slot}"))?;
    if v.split(',').any(|p| p == "link_down=1") {
        return None;
    }
    let mac = v.split(',').next()?.split_once('=')?.1.to_ascii_lowercase();
    let bridge = v
        .split(',')
        .find_map(|p| p.strip_prefix("bridge="))?
        .to_string();
    Some((mac, bridge))
}

/// Every booted OPNsense guest: the imported config (if this boot brought it up) or
/// the factory one. Their WAN leases come from the LAN like any guest's.
pub fn routers(st: &mut State) -> Vec<RouterRt> {
    let now = now_f();
    let ids: Vec<u32> = st
        .vms
        .iter()
        .filter(|(_, v)| v.running && v.guest.router.as_ref().is_some_and(|r| now >= r.ready_at))
        .map(|(k, _)| *k)
        .filter(|k| {
            st.vms
                .get(k)
                .is_some_and(|v| guest_os(st, v) == GuestOs::OpnSense)
        })
        .collect();
    let mut out = Vec::new();
    for vmid in ids {
        let Some(vm) = st.vms.get(&vmid) else {
            continue;
        };
        let node = vm.node.clone();
        let r = vm.guest.router.clone().unwrap_or_default();
        let imported = (!r.boot_failed)
            .then_some(r.config.as_deref())
            .flatten()
            .and_then(|x| Config::parse(x).ok());
        let routing = imported.is_some();
        let cfg = imported.unwrap_or_else(factory);
        // (interface key, slot, MAC, bridge) of each interface whose NIC is up.
        let nics: Vec<(String, u32, String, String)> = cfg
            .ifaces
            .iter()
            .filter_map(|i| {
                let s = i.slot?;
                let (mac, bridge) = nic_of(vm, s)?;
                Some((i.key.clone(), s, mac, bridge))
            })
            .collect();
        let mut ifaces = Vec::new();
        for (key, slot, mac, bridge) in nics {
            let addr = match cfg.iface_on_slot(slot).map(|i| i.addr) {
                Some(IfAddr::Static(a, p)) => Ipv4Net::new(a, p).ok().map(|n| (a, n.trunc())),
                Some(IfAddr::Dhcp) => {
                    let (a, p, _) = crate::guestnet::lease(st, &node, &bridge, &mac, vmid);
                    (!a.is_link_local())
                        .then(|| Ipv4Net::new(a, p).ok().map(|n| (a, n.trunc())))
                        .flatten()
                }
                _ => None,
            };
            ifaces.push(RtIf {
                key,
                slot,
                bridge,
                mac,
                addr,
            });
        }
        out.push(RouterRt {
            vmid,
            cfg,
            routing,
            ifaces,
        });
    }
    out
}

/// A lease from a routing router serving DHCP on `bridge` (stable per MAC), or the one
/// a router gave this MAC earlier (still valid). `None`: no router serves here.
pub fn dhcp_lease(st: &mut State, bridge: &str, mac: &str) -> Option<RouterLease> {
    let key = format!("{bridge}/{mac}");
    let serving = routers(st).into_iter().find_map(|r| {
        if !r.routing {
            return None;
        }
        let i = r.iface_on(bridge)?;
        let (gw, net) = i.addr?;
        let range = r.cfg.dhcp_on(&i.key)?.clone();
        Some((gw, net, range))
    });
    if let Some(l) = st.router_leases.get(&key) {
        let still = serving.as_ref().is_none_or(|(gw, net, _)| {
            l.gateway == gw.to_string()
                && l.ip.parse::<Ipv4Addr>().is_ok_and(|ip| net.contains(&ip))
        });
        if still {
            return Some(l.clone());
        }
    }
    let (gw, net, range) = serving?;
    let taken: std::collections::BTreeSet<String> =
        st.router_leases.values().map(|l| l.ip.clone()).collect();
    let pick = (u32::from(range.start)..=u32::from(range.end))
        .map(Ipv4Addr::from)
        .find(|ip| *ip != gw && net.contains(ip) && !taken.contains(&ip.to_string()))?;
    let lease = RouterLease {
        ip: pick.to_string(),
        prefix: net.prefix_len(),
        gateway: gw.to_string(),
    };
    st.router_leases.insert(key, lease.clone());
    Some(lease)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_flag_or_environment_values() {
        let r = RouterSim::from_values(Some("manual"), Some("0.25")).expect("valid");
        assert_eq!(r.console, RouterConsole::Manual);
        assert!((r.boot_failure_rate - 0.25).abs() < 1e-9);
        assert_eq!(RouterSim::from_values(None, None), Ok(RouterSim::default()));
        let e = RouterSim::from_values(Some("Auto"), None).expect_err("case matters");
        assert!(
            e.contains("`Auto` is not known: use `auto` or `manual`"),
            "{e}"
        );
        let e = RouterSim::from_values(None, Some("1.5")).expect_err("not a probability");
        assert!(
            e.contains("LABWRIGHT_SIM_FAULT_ROUTER_BOOT_FAILURE_RATE"),
            "{e}"
        );
    }

    #[test]
    fn qemu_key_names() {
        for k in ["a", "0", "ret", "shift-c", "ctrl-alt-delete", "f12", "spc"] {
            assert!(known_key(k), "{k}");
        }
        for k in ["enter", "A", "f13", "", "ctrl-", "cd0"] {
            assert!(!known_key(k), "{k}");
        }
    }
}
