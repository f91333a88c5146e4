//! VM checks after apply, judged on the node's config (not on the spec): power state
//! and the build standards (VirtIO NIC and SCSI, cache=none, valid tags).

use labwright_spec::model::PowerState;

use crate::canon::split_tags;
use crate::plan::PlanCx;
use crate::validate::{Check, check};

/// The checks of every declared VM of this phase.
pub(crate) fn validate(cx: &PlanCx<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    for vm in cx.want.vms.values() {
        let name = format!("vm/{} {}", vm.vmid, vm.name);
        let Some(obs) = cx.observed.vms.get(&vm.vmid) else {
            out.push(check(format!("{name} exists"), false, "not on the node"));
            continue;
        };
        let want_state = match vm.power {
            PowerState::Running => "running",
            PowerState::Stopped => "stopped",
        };
        out.push(check(
            format!("{name} is {want_state}"),
            obs.status == want_state,
            format!("node says {}", obs.status),
        ));
        // The hard constraints, judged on the node's config, not on the spec.
        if let Some(cfg) = &obs.config {
            let mut bad = Vec::new();
            for (k, v) in cfg {
                if k.starts_with("net")
                    && k[3..].chars().all(|c| c.is_ascii_digit())
                    && !v.starts_with("virtio")
                {
                    bad.push(format!("{k} is not VirtIO"));
                }
                if k.starts_with("scsi")
                    && k[4..].chars().all(|c| c.is_ascii_digit())
                    && !v.contains("media=cdrom")
                {
                    let cache = v
                        .split(',')
                        .find_map(|p| p.strip_prefix("cache="))
                        .unwrap_or("none");
                    if cache != "none" {
                        bad.push(format!("{k} cache={cache}"));
                    }
                }
            }
            if !cfg
                .get("scsihw")
                .is_some_and(|s| s.starts_with("virtio-scsi"))
            {
                bad.push("controller is not VirtIO SCSI".into());
            }
            if let Some(tags) = cfg.get("tags") {
                for t in split_tags(tags) {
                    if labwright_spec::types::check_tag(t).is_err() {
                        bad.push(format!("tag `{t}` is invalid"));
                    }
                }
            }
            out.push(check(
                format!("{name} meets the build standards"),
                bad.is_empty(),
                if bad.is_empty() {
                    "VirtIO NIC and SCSI, cache=none, valid tags".to_string()
                } else {
                    bad.join("; ")
                },
            ));
        }
    }
    out
}
