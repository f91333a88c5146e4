//! The guests' network side of the qemu endpoints: `sendkey` (the router's console),
//! the LAN a guest command sees, the router boot fault's draw, and NICs moved between
//! bridges while a guest runs.

use std::sync::Arc;

use serde_json::Value;

use super::qemu::{check_lock, check_root_only};
use crate::guestnet::Lan;
use crate::schema::PVal;
use crate::server::{ApiError, Inner, Reply, Req};
use crate::state::{State, Vm};

/// The LAN as `vmid`'s command will see it: the hosts, and the outcome of a connect
/// to every address and port the command names (crate::segments).
pub(super) fn exec_lan(st: &mut State, vmid: u32, r: &Req, scale: f64) -> Lan {
    let argv: Vec<String> = match r.params.get("command") {
        Some(PVal::Arr(a)) => a.iter().filter_map(PVal::as_str).collect(),
        Some(v) => v.as_str().into_iter().collect(),
        None => vec![],
    };
    let mut lan = crate::guestnet::lan_view(st, scale);
    let targets = crate::guestnet::targets(&argv);
    if !targets.is_empty() {
        let net = crate::segments::Net::build(st, scale);
        let src = crate::segments::src_vm(st, vmid, scale);
        for (ip, port) in targets {
            let (reach, _) = crate::segments::connect(st, &net, &src, ip, port);
            lan.reach.insert((ip, port), reach);
        }
    }
    lan
}

/// The router settings in force and this boot's draw of the router boot fault.
pub(super) fn router_roll(inner: &Inner) -> (crate::RouterSim, bool) {
    let rs = inner.router_sim();
    let failed = rs.boot_failure_rate > 0.0 && inner.roll() < rs.boot_failure_rate;
    (rs, failed)
}

/// A running guest's NIC `k` changes from `old` to `new` (hot-plugged). qemu-server
/// moves the tap to the new bridge without the guest seeing a link change, so the
/// guest keeps the address of the bridge it leased on; a link flap (`link_down=1`,
/// then cleared) makes it lease again where it is now.
pub(super) fn note_nic_move(vm: &mut Vm, k: &str, old: Option<&str>, new: &str) {
    let bridge = |v: &str| {
        v.split(',')
            .find_map(|p| p.strip_prefix("bridge="))
            .unwrap_or_default()
            .to_string()
    };
    let down = |v: &str| v.split(',').any(|p| p == "link_down=1");
    let Some(old) = old else {
        vm.guest.nic_bound.remove(k);
        return;
    };
    let mac = |v: &str| v.split(',').next().unwrap_or_default().to_ascii_lowercase();
    if mac(old) != mac(new) || (down(old) && !down(new)) {
        vm.guest.nic_bound.remove(k);
        return;
    }
    let was = vm
        .guest
        .nic_bound
        .get(k)
        .cloned()
        .unwrap_or_else(|| bridge(old));
    if was == bridge(new) {
        vm.guest.nic_bound.remove(k);
    } else {
        vm.guest.nic_bound.insert(k.to_string(), was);
    }
}

/// `PUT …/sendkey` (qemu-server `vm_sendkey`: HMP `sendkey` under the config lock).
pub(super) fn sendkey(inner: &Arc<Inner>, r: &Req) -> Result<Reply, ApiError> {
    let node = r.node();
    let vmid = r.vmid();
    check_root_only(r, &["skiplock"])?;
    let key = r.s("key");
    let scale = inner.cfg.time_scale;
    inner.with_state(|st| {
        let vm = st.vm(&node, vmid)?;
        check_lock(vm, r.flag("skiplock")).map_err(ApiError::e500)?;
        if !vm.running {
            return Err(ApiError::e500(format!("VM {vmid} not running")));
        }
        crate::router::sendkey(st, vmid, &key, scale).map_err(ApiError::e500)?;
        Ok(Value::Null.into())
    })
}
