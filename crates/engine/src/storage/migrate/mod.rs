//! Data migrations from a guest folder into a dataset, as guarded data moves: the
//! dataset reaches the guest as a virtiofs share (a directory mapping plus a
//! `virtiofsN` device, which the VM kind adds with its reboot and pre-change
//! snapshot), the copy runs in the guest with rsync and is verified with SHA-256
//! manifests of both sides, and only then does the switch put the dataset in the
//! folder's place. The source is never modified: the switch renames it aside
//! (`DIR.lw-migrated`), where it stays until removed by hand or a later destructive
//! step. How far a migration got is a ZFS user property on the dataset
//! ([`super::MIGRATION_PROP`]), so a scan reads it without the guest, and a copy
//! stopped midway simply runs again (rsync resumes).

mod run;

use labwright_spec::Spec;
use labwright_spec::model::Migration;
use serde::{Deserialize, Serialize};

pub(crate) use run::{run_copy, run_remove_source, run_switch};

use super::{MANIFEST_DIR, MIGRATION_PROP, StorageOp};
use crate::action::{Action, ActionId, ActionKind, Change, Held, Risk};
use crate::op::Op;
use crate::plan::{PlanCx, PlanOut};

/// Where the dataset is mounted in the guest while it is copied into.
pub const STAGING: &str = "/mnt/lw";

/// Suffix of a source folder set aside by the switch.
pub const KEPT_SUFFIX: &str = ".lw-migrated";

/// Everything a copy or switch needs (plans are self-contained).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationPlan {
    pub name: String,
    pub node: String,
    pub vmid: u32,
    /// The folder in the guest (`/opt/naas/appdata`).
    pub source: String,
    pub dataset: String,
    /// The virtiofs tag (= mapping id).
    pub tag: String,
    /// Folders under `source` that other migrations move (relative, `plex/media`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Migrations inside this one's folder, already or to be mounted there: (tag,
    /// absolute path), unmounted and mounted again around the switch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inner: Vec<(String, String)>,
    /// Every migration tag of this guest (the fstab block lists their mounts).
    pub vm_tags: Vec<String>,
    /// Stop Docker while the last sync and the switch run (the guest runs Compose).
    pub stop_docker: bool,
}

impl MigrationPlan {
    fn staging(&self) -> String {
        format!("{STAGING}/{}", self.tag)
    }

    fn rsync(&self) -> Vec<String> {
        let mut v: Vec<String> = ["rsync", "-aHAX", "--delete"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for e in &self.excludes {
            v.push(format!("--exclude=/{e}/"));
            v.push(format!("--exclude=/{e}{KEPT_SUFFIX}/"));
        }
        v.push(format!("{}/", self.source));
        v.push(format!("{}/", self.staging()));
        v
    }

    fn manifest_file(&self) -> String {
        format!("{MANIFEST_DIR}/{}.sha256", self.name)
    }
}

/// `vm:300:/opt/naas/appdata` → (300, `/opt/naas/appdata`).
pub(crate) fn parse_vm_source(from: &str) -> Option<(u32, String)> {
    let rest = from.strip_prefix("vm:")?;
    let (id, path) = rest.split_once(':')?;
    let path = path.trim_end_matches('/');
    (path.starts_with('/') && path.len() > 1).then_some((id.parse().ok()?, path.to_string()))
}

/// The active migrations out of guests: (index in the spec, migration, vmid, source).
pub(crate) fn vm_migrations(spec: &Spec) -> Vec<(usize, &Migration, u32, String)> {
    spec.storage
        .iter()
        .flat_map(|s| s.migrations.iter().enumerate())
        .filter(|(_, m)| m.phase <= spec.phase)
        .filter_map(|(i, m)| parse_vm_source(&m.from).map(|(v, p)| (i, m, v, p)))
        .collect()
}

/// The `virtiofsN` keys a VM gets for the migrations out of it (spec order).
pub fn virtiofs_for(spec: &Spec, vmid: u32) -> Vec<(String, String)> {
    vm_migrations(spec)
        .into_iter()
        .filter(|(_, _, v, _)| *v == vmid)
        .enumerate()
        .map(|(n, (_, m, _, _))| {
            (
                format!("virtiofs{n}"),
                format!("{},expose-acl=1", super::mapping_id(&m.to)),
            )
        })
        .collect()
}

fn path_of(i: usize) -> String {
    super::spec_path("migrations", i)
}

/// The directory-mapping kind: one mapping per dataset a guest receives.
pub(crate) fn plan_mappings(cx: &PlanCx<'_>, out: &mut PlanOut) {
    let Some(side) = cx.observed.storage.as_ref() else {
        return;
    };
    let mut seen = Vec::new();
    for (i, m, _, _) in vm_migrations(cx.spec) {
        let id = super::mapping_id(&m.to);
        if seen.contains(&id) {
            continue;
        }
        seen.push(id.clone());
        let mp = super::mountpoint_of(cx.spec, &m.to);
        let ds = ActionId::storage(format!("dataset-{id}"));
        let ds_planned = out.actions.iter().any(|x| x.id == ds);
        let ds_there = side.host().is_some_and(|h| h.datasets.contains_key(&m.to));
        if !ds_planned && !ds_there {
            let mut h = Held::new(
                format!("mapping/{id}"),
                format!(
                    "it shares dataset `{}`, which is not on the node and not created by this plan",
                    m.to
                ),
                "see the dataset's held item",
            );
            h.elements.push(path_of(i));
            out.held.push(h);
            continue;
        }
        let want = format!("node={},path={mp}", cx.want.node);
        let have = side.mappings.get(&id);
        if have.and_then(|h| h.path_on(&cx.want.node)).as_deref() == Some(mp.as_str()) {
            continue;
        }
        let mut map: Vec<String> = have
            .map(|h| {
                h.map
                    .iter()
                    .filter(|e| !e.split(',').any(|p| p == format!("node={}", cx.want.node)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        map.push(want.clone());
        let mut a = Action::new(
            ActionId::storage(format!("mapping-{id}")),
            ActionKind::DirMapping,
            format!("mapping/{id}"),
            Op::Storage(StorageOp::Mapping {
                id: id.clone(),
                create: have.is_none(),
                map,
            }),
        );
        if ds_planned {
            a.depends_on.push(ds);
        }
        a.phase = m.phase.0;
        a.changes = vec![Change::added("map", want)];
        a.reason = format!(
            "shares dataset `{}` with guests as virtiofs tag `{id}`",
            m.to
        );
        a.rollback_hint = format!("`pvesh delete /cluster/mapping/dir/{id}` once no VM uses it");
        a.expected_downtime = "none".into();
        a.elements.push(path_of(i));
        out.actions.push(a);
    }
}

/// The migration kind: a copy and a switch per guest folder not yet switched.
pub(crate) fn plan(cx: &PlanCx<'_>, out: &mut PlanOut) {
    let Some(side) = cx.observed.storage.as_ref() else {
        return;
    };
    let all = vm_migrations(cx.spec);
    // A guest's new virtiofs devices need their mappings first.
    let mapping_ids: Vec<ActionId> = out
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::DirMapping)
        .map(|a| a.id.clone())
        .collect();
    for a in out.actions.iter_mut() {
        let adds_share = a.changes.iter().any(|c| c.field.starts_with("virtiofs"));
        if adds_share && a.id.vmid().is_some() {
            for id in &mapping_ids {
                if !a.depends_on.contains(id) {
                    a.depends_on.push(id.clone());
                }
            }
        }
    }
    // One copy at a time per guest (they read and write the same disks).
    let mut last_copy: std::collections::BTreeMap<u32, ActionId> = Default::default();
    // Inner migrations switch first: the outer switch mounts them back.
    let mut order: Vec<&(usize, &Migration, u32, String)> = all.iter().collect();
    order.sort_by_key(|(_, _, _, src)| std::cmp::Reverse(src.matches('/').count()));
    for (i, m, vmid, source) in order {
        let (i, vmid) = (*i, *vmid);
        let path = path_of(i);
        out.own(&path);
        let target = format!("migration/{}", m.name);
        let host_read = side.host().is_some();
        if !host_read {
            let why = match &side.host {
                super::HostSide::Unavailable { why } => why.clone(),
                _ => "the node's datasets were not read".into(),
            };
            let mut h = Held::new(
                target,
                format!("a migration needs the node's SSH: {why}"),
                "give labwright the node's SSH (node.ssh or LABWRIGHT_SSH_TARGET)",
            );
            h.elements.push(path);
            out.held.push(h);
            continue;
        }
        let state = side.migration_state(&m.to, &m.name);
        let done = matches!(state.as_deref(), Some("switched" | "removed"));
        let remove = m.remove_source && state.as_deref() == Some("switched");
        if done && !remove {
            continue;
        }
        let tag = super::mapping_id(&m.to);
        let inner: Vec<&(usize, &Migration, u32, String)> = all
            .iter()
            .filter(|(_, _, v, s)| *v == vmid && s.starts_with(&format!("{source}/")))
            .collect();
        let vm_spec = cx.spec.vms.iter().find(|v| v.vmid == vmid);
        let mp = MigrationPlan {
            name: m.name.clone(),
            node: cx.want.node.clone(),
            vmid,
            source: source.clone(),
            dataset: m.to.clone(),
            tag: tag.clone(),
            excludes: inner
                .iter()
                .filter_map(|(_, _, _, s)| s.strip_prefix(&format!("{source}/")))
                .map(str::to_string)
                .collect(),
            inner: inner
                .iter()
                .map(|(_, im, _, s)| (super::mapping_id(&im.to), s.clone()))
                .collect(),
            vm_tags: all
                .iter()
                .filter(|(_, _, v, _)| *v == vmid)
                .map(|(_, im, _, _)| super::mapping_id(&im.to))
                .collect(),
            stop_docker: vm_spec
                .and_then(|v| v.bootstrap.as_ref())
                .is_some_and(|b| b.docker.is_some()),
        };
        if remove {
            // The outer kept folder holds the inner ones: removing it removes theirs.
            let keeps: Vec<&str> = inner
                .iter()
                .filter(|(_, im, _, _)| {
                    !im.remove_source
                        && side.migration_state(&im.to, &im.name).as_deref() != Some("removed")
                })
                .map(|(_, im, _, _)| im.name.as_str())
                .collect();
            if !keeps.is_empty() {
                let mut h = Held::new(
                    target,
                    format!(
                        "removing its kept source would also remove the kept source of {}, which the spec keeps",
                        keeps.join(", ")
                    ),
                    "set `removeSource: true` on those migrations too, or move their kept folders out first",
                );
                h.elements.push(path);
                out.held.push(h);
                continue;
            }
            let kept = kept_path(cx, &all, vmid, source);
            let mut a = Action::new(
                ActionId::storage(format!("migrate-{}-remove-source", m.name)),
                ActionKind::MigrationRemoveSource,
                target.clone(),
                Op::Storage(StorageOp::MigrateRemoveSource {
                    plan: mp,
                    kept: kept.clone(),
                }),
            );
            a.phase = m.phase.0;
            a.risk = Risk::High;
            a.changes = vec![Change {
                field: "kept source".into(),
                before: Some(kept.clone()),
                after: None,
                effect: crate::canon::Effect::Hotplug,
            }];
            a.reason = format!(
                "`removeSource: true`: {kept} is checked against the manifest of the verified copy, then removed (the data lives in `{}`)",
                m.to
            );
            a.rollback_hint = format!(
                "none: the kept copy is gone; `{}` and its snapshots hold the data",
                m.to
            );
            a.expected_downtime = "none".into();
            a.elements.push(path);
            // Inner kept folders go before the outer one that holds them.
            for (_, im, _, _) in &inner {
                let id = ActionId::storage(format!("migrate-{}-remove-source", im.name));
                if out.actions.iter().any(|x| x.id == id) {
                    a.depends_on.push(id);
                }
            }
            out.actions.push(a);
            continue;
        }
        // Everything the guest and the share need comes first.
        let mut deps: Vec<ActionId> = out
            .actions
            .iter()
            .filter(|a| {
                a.id.vmid() == Some(vmid)
                    || a.id == ActionId::storage(format!("mapping-{tag}"))
                    || a.id == ActionId::storage(format!("dataset-{tag}"))
            })
            .map(|a| a.id.clone())
            .collect();
        let vm_name = vm_spec.map(|v| v.name.clone()).unwrap_or_default();
        if state.is_none() {
            let mut a = Action::new(
                ActionId::storage(format!("migrate-{}-copy", m.name)),
                ActionKind::MigrationCopy,
                target.clone(),
                Op::Storage(StorageOp::MigrateCopy(mp.clone())),
            );
            a.phase = m.phase.0;
            a.depends_on = deps.clone();
            if let Some(prev) = last_copy.insert(vmid, a.id.clone()) {
                a.depends_on.push(prev);
            }
            a.changes = vec![Change::added(
                "copy",
                format!("vm {vmid}:{source} → {} (verified by SHA-256)", m.to),
            )];
            a.reason = format!(
                "copies {source} in {vm_name} into dataset `{}` with rsync and compares both sides (count, bytes, SHA-256); the source is only read",
                m.to
            );
            a.rollback_hint = format!(
                "nothing to undo in the guest; the copy in `{}` can be removed with `zfs destroy` and recreated",
                m.to
            );
            a.expected_downtime =
                "none (the guest keeps running; a stopped copy resumes on the next apply)".into();
            a.elements.push(path.clone());
            deps = vec![a.id.clone()];
            out.actions.push(a);
        }
        for (_, im, _, _) in &inner {
            let sw = ActionId::storage(format!("migrate-{}-switch", im.name));
            if out.actions.iter().any(|a| a.id == sw) {
                deps.push(sw);
            }
        }
        let mut a = Action::new(
            ActionId::storage(format!("migrate-{}-switch", m.name)),
            ActionKind::MigrationSwitch,
            target,
            Op::Storage(StorageOp::MigrateSwitch(mp.clone())),
        );
        a.phase = m.phase.0;
        a.risk = Risk::Medium;
        a.depends_on = deps;
        a.pre_snapshot = Some(format!("lw-{}", cx.plan_tag));
        a.changes = vec![
            Change::added("mount", format!("{tag} on {source} (virtiofs, fstab)")),
            Change::added("kept source", format!("{source}{KEPT_SUFFIX}")),
        ];
        a.reason = format!(
            "{}a last sync and compare, then dataset `{}` is mounted in place of {source}; the old folder is kept as {source}{KEPT_SUFFIX}",
            if mp.stop_docker {
                "Docker is stopped, "
            } else {
                ""
            },
            m.to
        );
        a.expected_downtime = if mp.stop_docker {
            "Docker's containers are stopped during the last sync and the switch (about a minute plus the changes since the copy)".into()
        } else {
            "writes to the folder pause during the last sync and the switch".into()
        };
        a.downtime_seconds = 60;
        a.rollback_hint = format!(
            "in the guest: `umount {source} && rmdir {source} && mv {source}{KEPT_SUFFIX} {source}` and drop the labwright block from /etc/fstab; or `qm rollback {vmid} lw-{}`",
            cx.plan_tag
        );
        a.elements.push(path);
        out.actions.push(a);
    }
}

/// Where the source of the migration out of `source` is kept now: `DIR.lw-migrated`,
/// or inside the kept folder of an outer migration switched after it.
fn kept_path(
    cx: &PlanCx<'_>,
    all: &[(usize, &Migration, u32, String)],
    vmid: u32,
    source: &str,
) -> String {
    let side = cx.observed.storage.as_ref();
    let outer = all
        .iter()
        .filter(|(_, om, v, s)| {
            *v == vmid
                && source.starts_with(&format!("{s}/"))
                && side
                    .and_then(|x| x.migration_state(&om.to, &om.name))
                    .as_deref()
                    == Some("switched")
        })
        .max_by_key(|(_, _, _, s)| s.len());
    match outer {
        Some((_, _, _, os)) => {
            let rel = source.strip_prefix(&format!("{os}/")).unwrap_or(source);
            format!("{}/{rel}{KEPT_SUFFIX}", kept_path(cx, all, vmid, os))
        }
        None => format!("{source}{KEPT_SUFFIX}"),
    }
}

/// The lines a removal shows in the plan.
pub(crate) fn remove_calls(m: &MigrationPlan, kept: &str) -> Vec<String> {
    vec![
        format!("SSH cat {}", m.manifest_file()),
        format!(
            "AGENT {} find {kept} -type f -exec sha256sum {{}} +",
            m.vmid
        ),
        format!("AGENT {} rm -rf {kept}", m.vmid),
        format!(
            "SSH zfs set {MIGRATION_PROP}={}=removed {}",
            m.name, m.dataset
        ),
    ]
}

/// The lines a copy shows in the plan.
pub(crate) fn copy_calls(m: &MigrationPlan) -> Vec<String> {
    let g = |s: &str| format!("AGENT {} {s}", m.vmid);
    vec![
        g(&format!("mkdir -p {}", m.staging())),
        g(&format!("mount -t virtiofs {} {}", m.tag, m.staging())),
        g("rsync --version (apt-get install -y rsync when missing)"),
        g(&m.rsync().join(" ")),
        g(&format!("find {} -type f -exec sha256sum {{}} +", m.source)),
        g(&format!(
            "find {} -type f -exec sha256sum {{}} +",
            m.staging()
        )),
        format!(
            "SSH install -D -m 0644 /dev/stdin {} < (manifest)",
            m.manifest_file()
        ),
        format!(
            "SSH zfs set {MIGRATION_PROP}={}=copied {}",
            m.name, m.dataset
        ),
    ]
}

/// The lines a switch shows in the plan.
pub(crate) fn switch_calls(m: &MigrationPlan) -> Vec<String> {
    let g = |s: &str| format!("AGENT {} {s}", m.vmid);
    let mut v = Vec::new();
    if m.stop_docker {
        v.push(g("systemctl stop docker.socket docker.service"));
    }
    v.push(g(&m.rsync().join(" ")));
    v.push(g("(manifests of both sides compared again)"));
    v.push(g(&format!("umount {}", m.staging())));
    for (_, p) in m.inner.iter().rev() {
        v.push(g(&format!("umount {p}")));
    }
    v.push(g(&format!("mv {} {}{KEPT_SUFFIX}", m.source, m.source)));
    v.push(g(&format!("mkdir -p {}", m.source)));
    v.push(g(&format!("mount -t virtiofs {} {}", m.tag, m.source)));
    for (t, p) in &m.inner {
        v.push(g(&format!("mount -t virtiofs {t} {p}")));
    }
    v.push(g(
        "/etc/fstab: the labwright block lists the virtiofs mounts",
    ));
    if m.stop_docker {
        v.push(g("systemctl start docker.service"));
    }
    v.push(format!(
        "SSH zfs set {MIGRATION_PROP}={}=switched {}",
        m.name, m.dataset
    ));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_sources_parse() {
        assert_eq!(
            parse_vm_source("vm:300:/opt/naas/appdata/"),
            Some((300, "/opt/naas/appdata".into()))
        );
        assert_eq!(parse_vm_source("vm:300:relative"), None);
        assert_eq!(parse_vm_source("vm:x:/a"), None);
        assert_eq!(parse_vm_source("backup-job:nightly"), None);
        assert_eq!(parse_vm_source("vm:300:/"), None);
    }

    #[test]
    fn rsync_excludes_inner_folders_and_their_kept_copies() {
        let m = MigrationPlan {
            name: "docker-appdata".into(),
            node: "n".into(),
            vmid: 300,
            source: "/opt/naas/appdata".into(),
            dataset: "tank/appdata".into(),
            tag: "tank-appdata".into(),
            excludes: vec!["plex/media".into()],
            inner: vec![],
            vm_tags: vec![],
            stop_docker: true,
        };
        assert_eq!(
            m.rsync().join(" "),
            "rsync -aHAX --delete --exclude=/plex/media/ --exclude=/plex/media.lw-migrated/ /opt/naas/appdata/ /mnt/lw/tank-appdata/"
        );
    }
}
