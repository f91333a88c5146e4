//! What the executor runs for a storage action: API calls (pool, storage entries,
//! mappings), commands on the node over SSH (datasets, sanoid) and migration steps
//! (guest agent + SSH).

use labwright_host::{HostCmd, HostExec};
use labwright_pve::api::disks::ZfsCreate;
use serde::{Deserialize, Serialize};

use super::migrate::{self, MigrationPlan};
use crate::error::StepError;
use crate::op::{ExecCx, Step, kv, params};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum StorageOp {
    /// `POST /nodes/{node}/disks/zfs` (after wiping used disks the spec allows).
    CreatePool {
        node: String,
        name: String,
        raidlevel: String,
        devices: Vec<String>,
        ashift: u8,
        compression: String,
        /// Disks wiped first (`PUT …/disks/wipedisk`): used disks the spec allows.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        wipe: Vec<String>,
    },
    /// Commands on the node, in order; each must succeed.
    Host { cmds: Vec<HostCmd> },
    /// `POST /storage` or `PUT /storage/{id}`.
    Entry {
        id: String,
        create: bool,
        params: Vec<(String, String)>,
    },
    /// `POST /cluster/mapping/dir` or `PUT …/{id}`.
    Mapping {
        id: String,
        create: bool,
        map: Vec<String>,
    },
    /// Copy a guest folder into its dataset and verify both sides.
    MigrateCopy(MigrationPlan),
    /// Stop writers, sync, verify, put the dataset in place of the folder.
    MigrateSwitch(MigrationPlan),
    /// Check the kept source against the verified manifest, then remove it.
    MigrateRemoveSource { plan: MigrationPlan, kept: String },
}

impl StorageOp {
    /// Whether the step needs the host shell.
    pub fn needs_host(&self) -> bool {
        matches!(
            self,
            StorageOp::Host { .. }
                | StorageOp::MigrateCopy(_)
                | StorageOp::MigrateSwitch(_)
                | StorageOp::MigrateRemoveSource { .. }
        )
    }
}

/// The host shell of `cx`, or why there is none.
pub(crate) fn host<'a>(cx: &ExecCx<'a>) -> Result<&'a dyn HostExec, StepError> {
    cx.host.ok_or_else(|| {
        StepError::Refused(
            "this step runs commands on the node over SSH, and no SSH target is set (`node.ssh` in the spec or LABWRIGHT_SSH_TARGET=user@host:port)".into(),
        )
    })
}

/// Runs `cmd` on the node; a non-zero exit is an error naming the command.
pub(crate) async fn run_checked(
    h: &dyn HostExec,
    cmd: &HostCmd,
) -> Result<labwright_host::HostOutput, StepError> {
    let out = h
        .run(cmd)
        .await
        .map_err(|e| StepError::Refused(e.to_string()))?;
    out.checked(&h.target(), cmd)
        .map_err(|e| StepError::Refused(e.to_string()))
}

impl Step for StorageOp {
    fn api_calls(&self) -> Vec<String> {
        match self {
            StorageOp::CreatePool {
                node,
                name,
                raidlevel,
                devices,
                ashift,
                compression,
                wipe,
            } => {
                let mut v: Vec<String> = wipe
                    .iter()
                    .map(|d| format!("PUT /nodes/{node}/disks/wipedisk disk={d}"))
                    .collect();
                v.push(format!(
                    "POST /nodes/{node}/disks/zfs name={name} raidlevel={raidlevel} devices={} ashift={ashift} compression={compression} add_storage=0",
                    devices.join(",")
                ));
                v
            }
            StorageOp::Host { cmds } => cmds.iter().map(|c| format!("SSH {c}")).collect(),
            StorageOp::Entry { id, create, params } => vec![if *create {
                format!("POST /storage storage={id} {}", kv(params))
            } else {
                format!("PUT /storage/{id} {}", kv(params))
            }],
            StorageOp::Mapping { id, create, map } => {
                let m: Vec<String> = map.iter().map(|m| format!("map={m}")).collect();
                vec![if *create {
                    format!("POST /cluster/mapping/dir id={id} {}", m.join(" "))
                } else {
                    format!("PUT /cluster/mapping/dir/{id} {}", m.join(" "))
                }]
            }
            StorageOp::MigrateCopy(m) => migrate::copy_calls(m),
            StorageOp::MigrateSwitch(m) => migrate::switch_calls(m),
            StorageOp::MigrateRemoveSource { plan, kept } => migrate::remove_calls(plan, kept),
        }
    }

    fn vm(&self) -> Option<(&str, u32)> {
        match self {
            StorageOp::MigrateSwitch(m) => Some((m.node.as_str(), m.vmid)),
            _ => None,
        }
    }

    async fn run(&self, cx: &ExecCx<'_>) -> Result<(), StepError> {
        match self {
            StorageOp::CreatePool {
                node,
                name,
                raidlevel,
                devices,
                ashift,
                compression,
                wipe,
            } => {
                for d in wipe {
                    let r: Result<serde_json::Value, _> = cx
                        .client
                        .put(
                            &format!("/nodes/{node}/disks/wipedisk"),
                            labwright_pve::Params::new().set("disk", d.as_str()),
                        )
                        .await;
                    let v = r.map_err(|e| StepError::api(format!("wipe disk {d}"), e))?;
                    if let serde_json::Value::String(s) = v
                        && let Ok(u) = labwright_pve::Upid::parse(&s)
                    {
                        crate::op::wait(cx, Some(u), &format!("wipe disk {d}")).await?;
                    }
                }
                let req = ZfsCreate {
                    name: name.clone(),
                    raidlevel: raidlevel.clone(),
                    devices: devices.clone(),
                    ashift: Some(u32::from(*ashift)),
                    compression: Some(compression.clone()),
                    add_storage: Some(false),
                };
                let what = format!("create ZFS pool {name}");
                let upid = cx
                    .client
                    .zfs_create(node, &req)
                    .await
                    .map_err(StepError::ctx(&what))?;
                crate::op::wait(cx, Some(upid), &what).await
            }
            StorageOp::Host { cmds } => {
                let h = host(cx)?;
                for c in cmds {
                    (cx.progress)(&c.display());
                    run_checked(h, c).await?;
                }
                Ok(())
            }
            StorageOp::Entry {
                id,
                create,
                params: p,
            } => {
                let what = format!("{} storage {id}", if *create { "add" } else { "update" });
                let r: Result<serde_json::Value, _> = if *create {
                    let mut all = labwright_pve::Params::new().set("storage", id.as_str());
                    for (k, v) in p {
                        all.insert(k.clone(), v.as_str());
                    }
                    cx.client.post("/storage", all).await
                } else {
                    cx.client.put(&format!("/storage/{id}"), params(p)).await
                };
                r.map(|_| ()).map_err(StepError::ctx(what))
            }
            StorageOp::Mapping { id, create, map } => {
                let what = format!("map {id} for guests");
                if *create {
                    cx.client
                        .dir_mapping_create(id, map, Some("labwright: dataset shared with guests"))
                        .await
                } else {
                    cx.client.dir_mapping_update(id, map).await
                }
                .map_err(StepError::ctx(what))
            }
            StorageOp::MigrateCopy(m) => migrate::run_copy(cx, m).await,
            StorageOp::MigrateSwitch(m) => migrate::run_switch(cx, m).await,
            StorageOp::MigrateRemoveSource { plan, kept } => {
                migrate::run_remove_source(cx, plan, kept).await
            }
        }
    }
}
