//! What `validate` checks of phase 1 storage, from the scan: the pool's layout and
//! health, datasets and their properties, sanoid, storage entries active, and each
//! migration switched with its manifest recorded.

use labwright_spec::model::RaidLevel;

use super::dataset::desired_props;
use super::{HostSide, pool};
use crate::plan::PlanCx;
use crate::validate::{Check, CheckStatus, check};

pub(crate) fn validate(cx: &PlanCx<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    let (Some(st), Some(side)) = (&cx.spec.storage, cx.observed.storage.as_ref()) else {
        return out;
    };
    let phase = cx.spec.phase;
    for p in st.zfs_pools.iter().filter(|p| p.phase <= phase) {
        let name = format!("zfs pool {}", p.name);
        let Some(detail) = side.pool_details.get(&p.name) else {
            out.push(check(name, false, "not on the node"));
            continue;
        };
        let healthy = detail.state.as_deref() == Some("ONLINE");
        let errors = detail.errors.clone().unwrap_or_default();
        let clean = errors.is_empty() || errors.contains("No known data errors");
        out.push(check(
            format!("{name} health"),
            healthy && clean,
            format!(
                "state {}; {}",
                detail.state.as_deref().unwrap_or("unknown"),
                if errors.is_empty() {
                    "no errors reported"
                } else {
                    &errors
                }
            ),
        ));
        // The vdev tree: pool → (mirror-0 → disks) or pool → disks.
        let top = detail
            .children
            .iter()
            .find(|c| c.name == p.name)
            .map_or(&detail.children, |c| &c.children);
        let want_group = match p.raid_level {
            RaidLevel::Single => None,
            RaidLevel::Mirror => Some("mirror"),
            RaidLevel::Raidz => Some("raidz1"),
            RaidLevel::Raidz2 => Some("raidz2"),
        };
        let leaves: Vec<&labwright_pve::api::disks::ZfsVdev> = match want_group {
            Some(g) => top
                .iter()
                .filter(|c| {
                    c.name.starts_with(g) || (g == "raidz1" && c.name.starts_with("raidz-"))
                })
                .flat_map(|c| c.children.iter())
                .collect(),
            None => top.iter().collect(),
        };
        let disks: Vec<String> = p
            .devices
            .iter()
            .filter_map(|d| pool::resolve(d, &side.disks))
            .map(|d| d.devpath.clone())
            .collect();
        let member = |leaf: &str, devpath: &str| {
            let d = side.disks.iter().find(|x| x.devpath == devpath);
            leaf == devpath
                || leaf.starts_with(devpath)
                || d.and_then(|d| d.serial.as_deref())
                    .is_some_and(|s| !s.is_empty() && leaf.contains(s))
        };
        let all_in = disks
            .iter()
            .all(|dp| leaves.iter().any(|l| member(&l.name, dp)));
        let online = leaves.iter().all(|l| l.state.as_deref() == Some("ONLINE"));
        out.push(check(
            format!("{name} layout"),
            all_in && leaves.len() == disks.len() && online,
            format!(
                "{} of {} with {}",
                want_group.unwrap_or("single disks"),
                leaves
                    .iter()
                    .map(|l| format!("{} {}", l.name, l.state.as_deref().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", "),
                if all_in {
                    "every declared disk"
                } else {
                    "NOT every declared disk"
                }
            ),
        ));
    }
    let host = match &side.host {
        HostSide::Read(h) => Some(h),
        HostSide::Unavailable { why } => {
            out.push(Check {
                name: "datasets".into(),
                status: CheckStatus::Fail,
                detail: format!("cannot read them: {why}"),
            });
            None
        }
        HostSide::NotNeeded => None,
    };
    if let Some(h) = host {
        for d in st.datasets.iter().filter(|d| d.phase <= phase) {
            let name = format!("dataset {}", d.name);
            match h.datasets.get(&d.name) {
                None => out.push(check(name, false, "absent on the node")),
                Some(have) => {
                    let want = desired_props(d);
                    let wrong: Vec<String> = want
                        .iter()
                        .filter(|(k, v)| have.props.get(*k) != Some(*v))
                        .map(|(k, v)| {
                            format!(
                                "{k}: node {}, spec {v}",
                                have.props.get(k).map_or("(inherited)", String::as_str)
                            )
                        })
                        .collect();
                    out.push(check(
                        name,
                        wrong.is_empty() && have.mounted,
                        if !have.mounted {
                            format!("not mounted (mountpoint {})", have.mountpoint)
                        } else if wrong.is_empty() {
                            format!("mounted on {}, properties as declared", have.mountpoint)
                        } else {
                            wrong.join("; ")
                        },
                    ));
                }
            }
        }
        if let Some(conf) = super::dataset::sanoid_conf(cx) {
            let s = &h.sanoid;
            out.push(check(
                "sanoid snapshots",
                s.installed
                    && s.config.as_deref() == Some(conf.as_str())
                    && s.timer_enabled
                    && s.timer_active,
                format!(
                    "package {}, config {}, timer {} and {}",
                    if s.installed { "installed" } else { "missing" },
                    if s.config.as_deref() == Some(conf.as_str()) {
                        "as generated"
                    } else {
                        "differs"
                    },
                    if s.timer_enabled {
                        "enabled"
                    } else {
                        "disabled"
                    },
                    if s.timer_active { "active" } else { "inactive" }
                ),
            ));
        }
        for (_, m, _, _) in super::migrate::vm_migrations(cx.spec) {
            let state = side.migration_state(&m.to, &m.name);
            out.push(check(
                format!("migration {}", m.name),
                matches!(state.as_deref(), Some("switched" | "removed")),
                match state.as_deref() {
                    Some("removed") => format!("{} in place, kept source removed", m.to),
                    Some("switched") => format!(
                        "{} in place, verified manifest in {}/{}.sha256",
                        m.to,
                        super::MANIFEST_DIR,
                        m.name
                    ),
                    Some(s) => format!("{s}, not switched yet"),
                    None => "not started".into(),
                },
            ));
        }
    }
    for s in st.pve_storages.iter().filter(|s| s.phase <= phase) {
        if s.kind == labwright_spec::model::PveStorageType::Pbs {
            continue;
        }
        let name = format!("storage {}", s.id);
        match (side.configs.get(&s.id), side.status.get(&s.id)) {
            (None, _) => out.push(check(name, false, "absent on the node")),
            (Some(_), st) => {
                let active = st.and_then(|x| x.active).unwrap_or(false);
                out.push(check(
                    name,
                    active,
                    if active {
                        "active".to_string()
                    } else {
                        "configured but not active (is its pool/dataset mounted?)".into()
                    },
                ));
            }
        }
    }
    out
}
