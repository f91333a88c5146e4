//! The storage-entry kind (`/storage`): a `zfspool` entry for guest disks and a `dir`
//! entry for backups on a dataset, with `is_mountpoint` so backups never land on the
//! system SSD when the pool is not mounted. `pbs` entries are held as "later".

use labwright_spec::model::{PveStorage, PveStorageType};

use super::StorageOp;
use crate::action::{Action, ActionId, ActionKind, Change, Held};
use crate::canon::Effect;
use crate::op::Op;
use crate::plan::{PlanCx, PlanOut};

/// Content types each storage type accepts (pve-storage's plugins).
fn supported(kind: PveStorageType) -> &'static [&'static str] {
    match kind {
        PveStorageType::Dir => &[
            "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import",
        ],
        PveStorageType::Zfspool => &["images", "rootdir"],
        PveStorageType::Pbs => &["backup"],
    }
}

fn type_name(kind: PveStorageType) -> &'static str {
    match kind {
        PveStorageType::Dir => "dir",
        PveStorageType::Zfspool => "zfspool",
        PveStorageType::Pbs => "pbs",
    }
}

/// The dataset (declared, active) whose mountpoint holds `path`: (name, mountpoint).
fn dataset_under(cx: &PlanCx<'_>, path: &str) -> Option<(String, String)> {
    let st = cx.spec.storage.as_ref()?;
    st.datasets
        .iter()
        .filter(|d| d.phase <= cx.spec.phase)
        .map(|d| (d.name.clone(), super::mountpoint_of(cx.spec, &d.name)))
        .filter(|(_, mp)| path == mp || path.starts_with(&format!("{mp}/")))
        .max_by_key(|(_, mp)| mp.len())
}

/// The entry's options as PVE stores them (content sorted).
pub(crate) fn desired_params(cx: &PlanCx<'_>, s: &PveStorage) -> Vec<(String, String)> {
    let mut content = s.content.clone();
    content.sort();
    content.dedup();
    let mut p = vec![("type".to_string(), type_name(s.kind).to_string())];
    match s.kind {
        PveStorageType::Dir => {
            let path = s.path.clone().unwrap_or_default();
            if let Some((_, mp)) = dataset_under(cx, &path) {
                let v = if mp == path { "yes".to_string() } else { mp };
                p.push(("is_mountpoint".into(), v));
            }
            p.push(("path".into(), path));
        }
        PveStorageType::Zfspool => {
            p.push(("pool".into(), s.pool.clone().unwrap_or_default()));
        }
        PveStorageType::Pbs => {}
    }
    p.push(("content".into(), content.join(",")));
    p
}

pub(crate) fn plan(cx: &PlanCx<'_>, out: &mut PlanOut) {
    let Some(st) = &cx.spec.storage else { return };
    let Some(side) = cx.observed.storage.as_ref() else {
        return;
    };
    for (i, s) in st.pve_storages.iter().enumerate() {
        if s.phase > cx.spec.phase {
            continue;
        }
        let path = super::spec_path("pveStorages", i);
        out.own(&path);
        let target = format!("storage/{}", s.id);
        let mut held = |reason: String, way: &str| {
            let mut h = Held::new(target.clone(), reason, way);
            h.elements.push(path.clone());
            out.held.push(h);
        };
        if s.kind == PveStorageType::Pbs {
            held(
                "Proxmox Backup Server comes later; vzdump to a directory storage stays the backup target meanwhile".into(),
                "keep the vzdump job; add the PBS entry by hand once the server runs",
            );
            continue;
        }
        let bad: Vec<&String> = s
            .content
            .iter()
            .filter(|c| !supported(s.kind).contains(&c.as_str()))
            .collect();
        if !bad.is_empty() {
            held(
                format!(
                    "a {} storage cannot hold {}; PVE would drop it",
                    type_name(s.kind),
                    bad.iter()
                        .map(|b| format!("`{b}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "keep to the content types the storage type supports",
            );
            continue;
        }
        let want = desired_params(cx, s);
        let get = |k: &str| want.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        let mut deps = Vec::new();
        let base = match s.kind {
            PveStorageType::Dir => {
                dataset_under(cx, s.path.as_deref().unwrap_or("")).map(|(n, _)| n)
            }
            _ => s.pool.clone(),
        };
        if let Some(b) = &base {
            for key in [
                format!("dataset-{}", super::mapping_id(b)),
                format!("pool-{}", b.split('/').next().unwrap_or(b)),
            ] {
                let id = ActionId::storage(key);
                if out.actions.iter().any(|a| a.id == id) {
                    deps.push(id);
                }
            }
        }
        // A folder on a dataset waits for the dataset: without it the path is an
        // empty folder on the system disk.
        if s.kind == PveStorageType::Dir
            && let Some(b) = &base
        {
            let planned = deps
                .iter()
                .any(|d| *d == ActionId::storage(format!("dataset-{}", super::mapping_id(b))));
            let there = side.host().is_some_and(|h| h.datasets.contains_key(b));
            if !planned && !there {
                held(
                    format!(
                        "its folder lies on dataset `{b}`, which is not on the node (or could not be read) and is not created by this plan"
                    ),
                    "see the dataset's held item",
                );
                continue;
            }
        }
        let id = ActionId::storage(format!("entry-{}", s.id));
        let (create, params, changes, reason) = match side.configs.get(&s.id) {
            None => (
                true,
                want.clone(),
                want.iter()
                    .map(|(k, v)| Change::added(k, v))
                    .collect::<Vec<_>>(),
                "declared in the spec, absent on the node".to_string(),
            ),
            Some(have) => {
                let fixed = [
                    ("type", Some(have.storage_type.clone())),
                    ("path", have.path.clone()),
                    ("pool", have.pool.clone()),
                ];
                if let Some((k, h)) = fixed.iter().find(|(k, h)| get(k).is_some() && get(k) != *h) {
                    held(
                        format!(
                            "storage `{}` exists with {k}={}, the spec says {}; PVE cannot change {k} of an existing storage",
                            s.id,
                            h.as_deref().unwrap_or("(none)"),
                            get(k).unwrap_or_default()
                        ),
                        "remove the entry (Datacenter → Storage; the data stays on disk) or use another id",
                    );
                    continue;
                }
                let mut params = Vec::new();
                let mut changes = Vec::new();
                let have_content = {
                    let mut c: Vec<&str> = have
                        .content
                        .as_deref()
                        .unwrap_or("")
                        .split(',')
                        .filter(|x| !x.is_empty())
                        .collect();
                    c.sort();
                    c.join(",")
                };
                let have_mp = have
                    .extra
                    .get("is_mountpoint")
                    .and_then(|v| v.as_str().map(str::to_string).or(Some(v.to_string())));
                for (k, cur) in [("content", Some(have_content)), ("is_mountpoint", have_mp)] {
                    let w = get(k);
                    let norm = |v: &Option<String>| {
                        v.as_deref()
                            .map(|x| if x == "1" { "yes" } else { x }.to_string())
                    };
                    if w.is_some() && norm(&w) != norm(&cur) {
                        params.push((k.to_string(), w.clone().unwrap_or_default()));
                        changes.push(Change {
                            field: k.into(),
                            before: cur,
                            after: w,
                            effect: Effect::Hotplug,
                        });
                    }
                }
                (
                    false,
                    params,
                    changes,
                    "options differ from the spec".to_string(),
                )
            }
        };
        if params.is_empty() {
            continue;
        }
        let mut a = Action::new(
            id,
            ActionKind::StorageEntry,
            target.clone(),
            Op::Storage(StorageOp::Entry {
                id: s.id.clone(),
                create,
                params,
            }),
        );
        a.phase = s.phase.0;
        a.changes = changes;
        a.reason = reason;
        a.depends_on = deps;
        a.rollback_hint = format!(
            "remove the entry: `pvesh delete /storage/{}` (the files on disk stay)",
            s.id
        );
        a.expected_downtime = "none".into();
        a.elements.push(path);
        out.actions.push(a);
    }
}
