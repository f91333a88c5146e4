//! The dataset kind (`zfs create`/`zfs set` over SSH) and daily snapshots with
//! Debian's sanoid (installed if missing, its config generated from the spec, its
//! timer enabled). Properties are compared with the raw (`zfs get -p`) values.

use std::collections::BTreeMap;

use labwright_host::HostCmd;
use labwright_spec::model::{Dataset, SnapshotFrequency};

use super::scan::SANOID_CONF;
use super::{HostSide, StorageOp};
use crate::action::{Action, ActionId, ActionKind, Change, Held};
use crate::canon::Effect;
use crate::op::Op;
use crate::plan::{PlanCx, PlanOut};

/// Properties whose raw value is a byte count.
const SIZE_PROPS: &[&str] = &[
    "quota",
    "refquota",
    "reservation",
    "refreservation",
    "recordsize",
    "special_small_blocks",
];

/// `1M` → `1048576` for size properties (ZFS suffixes are powers of 1024); other
/// values as written.
pub(crate) fn raw_value(prop: &str, v: &str) -> String {
    if !SIZE_PROPS.contains(&prop) || v == "none" {
        return v.to_string();
    }
    let t = v
        .trim()
        .trim_end_matches(['b', 'B'])
        .trim_end_matches(['i']);
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        Some('P') => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n >= 0.0 => format!("{}", (n * mult as f64).round() as u64),
        _ => v.to_string(),
    }
}

/// The properties the spec sets on a dataset, raw.
pub(crate) fn desired_props(d: &Dataset) -> BTreeMap<String, String> {
    let mut p: BTreeMap<String, String> = d
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), raw_value(k, v)))
        .collect();
    if let Some(q) = &d.quota {
        p.insert("quota".into(), q.bytes().to_string());
    }
    p
}

fn pool_of(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

fn parent_of(name: &str) -> Option<&str> {
    name.rsplit_once('/').map(|(p, _)| p)
}

pub(crate) fn plan(cx: &PlanCx<'_>, out: &mut PlanOut) {
    let Some(st) = &cx.spec.storage else { return };
    let Some(side) = cx.observed.storage.as_ref() else {
        return;
    };
    let mut list: Vec<(usize, &Dataset)> = st
        .datasets
        .iter()
        .enumerate()
        .filter(|(_, d)| d.phase <= cx.spec.phase)
        .collect();
    // Parents before children.
    list.sort_by_key(|(_, d)| d.name.matches('/').count());
    for (i, d) in list {
        let path = super::spec_path("datasets", i);
        out.own(&path);
        let target = format!("zfs-dataset/{}", d.name);
        let host = match &side.host {
            HostSide::Read(h) => h,
            HostSide::Unavailable { why } => {
                let mut h = Held::new(
                    target,
                    format!("datasets are made over SSH (the API has no dataset calls): {why}"),
                    "give labwright the node's SSH (node.ssh or LABWRIGHT_SSH_TARGET), with its host key in known_hosts",
                );
                h.elements.push(path);
                out.held.push(h);
                continue;
            }
            HostSide::NotNeeded => continue,
        };
        let pool = pool_of(&d.name);
        let pool_action = ActionId::storage(format!("pool-{pool}"));
        let pool_planned = out.actions.iter().any(|a| a.id == pool_action);
        if side.pool(pool).is_none() && !pool_planned {
            let mut h = Held::new(
                target,
                format!("its pool `{pool}` is not on the node and is not created by this plan"),
                "see the pool's own held item",
            );
            h.elements.push(path);
            out.held.push(h);
            continue;
        }
        let want = desired_props(d);
        let mut deps = Vec::new();
        if pool_planned {
            deps.push(pool_action);
        }
        if let Some(parent) = parent_of(&d.name) {
            let pa = ActionId::storage(format!("dataset-{}", super::mapping_id(parent)));
            if out.actions.iter().any(|a| a.id == pa) {
                deps.push(pa);
            }
        }
        let id = ActionId::storage(format!("dataset-{}", super::mapping_id(&d.name)));
        let (cmds, changes, reason) = match host.datasets.get(&d.name) {
            None => {
                let mut argv = vec!["zfs".to_string(), "create".into()];
                for (k, v) in &want {
                    argv.push("-o".into());
                    argv.push(format!("{k}={v}"));
                }
                argv.push(d.name.clone());
                (
                    vec![HostCmd::new(argv)],
                    want.iter()
                        .map(|(k, v)| Change::added(k, v))
                        .chain([Change::added(
                            "mountpoint",
                            super::mountpoint_of(cx.spec, &d.name),
                        )])
                        .collect::<Vec<_>>(),
                    "declared in the spec, absent on the node".to_string(),
                )
            }
            Some(have) => {
                let mut cmds = Vec::new();
                let mut changes = Vec::new();
                for (k, v) in &want {
                    let cur = have.props.get(k);
                    if cur != Some(v) {
                        cmds.push(HostCmd::new([
                            "zfs".to_string(),
                            "set".into(),
                            format!("{k}={v}"),
                            d.name.clone(),
                        ]));
                        changes.push(Change {
                            field: k.clone(),
                            before: cur.cloned(),
                            after: Some(v.clone()),
                            effect: Effect::Hotplug,
                        });
                    }
                }
                (cmds, changes, "properties differ from the spec".to_string())
            }
        };
        if cmds.is_empty() {
            continue;
        }
        let mut a = Action::new(
            id,
            ActionKind::ZfsDataset,
            target,
            Op::Storage(StorageOp::Host { cmds }),
        );
        a.phase = d.phase.0;
        a.changes = changes;
        a.reason = reason;
        a.depends_on = deps;
        a.rollback_hint = format!(
            "`zfs destroy {}` on the node if it holds nothing yet (labwright never destroys datasets)",
            d.name
        );
        a.expected_downtime = "none".into();
        a.elements.push(path);
        out.actions.push(a);
    }
    plan_sanoid(cx, out);
}

/// `/etc/sanoid/sanoid.conf` for the datasets with snapshots (`None`: none have).
pub(crate) fn sanoid_conf(cx: &PlanCx<'_>) -> Option<String> {
    let st = cx.spec.storage.as_ref()?;
    let mut s = String::from(
        "# managed by labwright — changes here are overwritten\n# (the spec's storage.datasets[].snapshots)\n",
    );
    let mut any = false;
    for d in st.datasets.iter().filter(|d| d.phase <= cx.spec.phase) {
        let Some(snap) = &d.snapshots else { continue };
        any = true;
        let n = |f: SnapshotFrequency| {
            if snap.schedule == f { snap.keep } else { 0 }
        };
        s.push_str(&format!(
            "\n[{}]\n\tfrequently = 0\n\thourly = {}\n\tdaily = {}\n\tweekly = {}\n\tmonthly = 0\n\tyearly = 0\n\tautosnap = yes\n\tautoprune = yes\n",
            d.name,
            n(SnapshotFrequency::Hourly),
            n(SnapshotFrequency::Daily),
            n(SnapshotFrequency::Weekly),
        ));
    }
    any.then_some(s)
}

fn plan_sanoid(cx: &PlanCx<'_>, out: &mut PlanOut) {
    let Some(conf) = sanoid_conf(cx) else { return };
    let Some(host) = cx.observed.storage.as_ref().and_then(|s| s.host()) else {
        return;
    };
    let mut cmds = Vec::new();
    let mut changes = Vec::new();
    let sn = &host.sanoid;
    if !sn.installed {
        cmds.push(HostCmd::new([
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "sanoid",
        ]));
        changes.push(Change::added("package", "sanoid"));
    }
    if sn.config.as_deref() != Some(conf.as_str()) {
        cmds.push(
            HostCmd::new(["install", "-D", "-m", "0644", "/dev/stdin", SANOID_CONF])
                .with_stdin(conf.clone()),
        );
        changes.push(Change {
            field: SANOID_CONF.into(),
            before: sn.config.as_ref().map(|c| format!("{} bytes", c.len())),
            after: Some(format!(
                "{} bytes (the spec's snapshot schedules)",
                conf.len()
            )),
            effect: Effect::Hotplug,
        });
    }
    if !sn.installed || !sn.timer_enabled || !sn.timer_active {
        cmds.push(HostCmd::new([
            "systemctl",
            "enable",
            "--now",
            "sanoid.timer",
        ]));
        changes.push(Change::added("sanoid.timer", "enabled, active"));
    }
    if cmds.is_empty() {
        return;
    }
    let deps: Vec<ActionId> = out
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::ZfsDataset)
        .map(|a| a.id.clone())
        .collect();
    let mut a = Action::new(
        ActionId::storage("sanoid"),
        ActionKind::ZfsSnapshots,
        "sanoid",
        Op::Storage(StorageOp::Host { cmds }),
    );
    a.phase = 1;
    a.changes = changes;
    a.depends_on = deps;
    a.reason = "daily ZFS snapshots of the datasets that declare them (sanoid)".into();
    a.rollback_hint = "`systemctl disable --now sanoid.timer` on the node stops new snapshots; existing ones stay until pruned".into();
    a.expected_downtime = "none".into();
    if let Some(st) = &cx.spec.storage {
        for (i, d) in st.datasets.iter().enumerate() {
            if d.snapshots.is_some() && d.phase <= cx.spec.phase {
                a.elements.push(super::spec_path("datasets", i));
            }
        }
    }
    out.actions.push(a);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_properties_compare_raw() {
        assert_eq!(raw_value("recordsize", "1M"), "1048576");
        assert_eq!(raw_value("recordsize", "128K"), "131072");
        assert_eq!(raw_value("quota", "2T"), "2199023255552");
        assert_eq!(raw_value("quota", "none"), "none");
        assert_eq!(raw_value("quota", "1.5G"), "1610612736");
        assert_eq!(raw_value("atime", "off"), "off");
        assert_eq!(raw_value("compression", "1M"), "1M");
    }
}
