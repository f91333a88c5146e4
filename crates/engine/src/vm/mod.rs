//! The VM kind: a guest's config, disks, NICs and power state.
//!
//! - observe: `crate::observed` (the inventory and one config read per guest);
//! - desired: [`desired`] (the spec in PVE's keys, canonical);
//! - diff: [`diff`] (create, update with reboot when needed, resize, power, destroy);
//! - describe and execute: [`VmOp`];
//! - validate: [`validate`] (power state and build standards on the node's config).

pub mod desired;
pub mod diff;
pub mod validate;

use labwright_pve::api::qemu::{DestroyOptions, ShutdownOptions};
use serde::{Deserialize, Serialize};

use crate::error::StepError;
use crate::op::{ExecCx, Step, kv, params, wait};

pub use desired::{DesiredDisk, DesiredVm};

/// What the executor does for a VM action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum VmOp {
    CreateVm {
        node: String,
        vmid: u32,
        params: Vec<(String, String)>,
    },
    UpdateVm {
        node: String,
        vmid: u32,
        set: Vec<(String, String)>,
        delete: Vec<String>,
        digest: Option<String>,
    },
    ResizeDisk {
        node: String,
        vmid: u32,
        disk: String,
        size: String,
    },
    StartVm {
        node: String,
        vmid: u32,
    },
    ShutdownVm {
        node: String,
        vmid: u32,
    },
    RebootVm {
        node: String,
        vmid: u32,
    },
    DestroyVm {
        node: String,
        vmid: u32,
    },
}

impl VmOp {
    /// The config digest an update was planned against (optimistic locking).
    pub fn planned_digest(&self) -> Option<&str> {
        match self {
            VmOp::UpdateVm { digest, .. } => digest.as_deref(),
            _ => None,
        }
    }

    /// Sends the update with `digest` instead (a pre-change snapshot rewrote the
    /// config file, so the planned digest is stale by design).
    pub fn set_digest(&mut self, new: String) {
        if let VmOp::UpdateVm { digest, .. } = self {
            *digest = Some(new);
        }
    }
}

impl Step for VmOp {
    fn api_calls(&self) -> Vec<String> {
        match self {
            VmOp::CreateVm { node, vmid, params } => {
                vec![format!(
                    "POST /nodes/{node}/qemu vmid={vmid} {}",
                    kv(params)
                )]
            }
            VmOp::UpdateVm {
                node,
                vmid,
                set,
                delete,
                digest,
            } => {
                let mut s = format!("POST /nodes/{node}/qemu/{vmid}/config {}", kv(set));
                if !delete.is_empty() {
                    s.push_str(&format!(" delete={}", delete.join(",")));
                }
                if let Some(d) = digest {
                    s.push_str(&format!(" digest={d}"));
                }
                vec![s.trim_end().to_string()]
            }
            VmOp::ResizeDisk {
                node,
                vmid,
                disk,
                size,
            } => vec![format!(
                "PUT /nodes/{node}/qemu/{vmid}/resize disk={disk} size={size}"
            )],
            VmOp::StartVm { node, vmid } => {
                vec![format!("POST /nodes/{node}/qemu/{vmid}/status/start")]
            }
            VmOp::ShutdownVm { node, vmid } => vec![format!(
                "POST /nodes/{node}/qemu/{vmid}/status/shutdown timeout=120"
            )],
            VmOp::RebootVm { node, vmid } => {
                vec![format!("POST /nodes/{node}/qemu/{vmid}/status/reboot")]
            }
            VmOp::DestroyVm { node, vmid } => vec![
                format!("POST /nodes/{node}/qemu/{vmid}/status/stop"),
                format!("DELETE /nodes/{node}/qemu/{vmid} purge=1 destroy-unreferenced-disks=1"),
            ],
        }
    }

    fn vm(&self) -> Option<(&str, u32)> {
        match self {
            VmOp::CreateVm { node, vmid, .. }
            | VmOp::UpdateVm { node, vmid, .. }
            | VmOp::ResizeDisk { node, vmid, .. }
            | VmOp::StartVm { node, vmid }
            | VmOp::ShutdownVm { node, vmid }
            | VmOp::RebootVm { node, vmid }
            | VmOp::DestroyVm { node, vmid } => Some((node, *vmid)),
        }
    }

    async fn run(&self, cx: &ExecCx<'_>) -> Result<(), StepError> {
        let c = cx.client;
        match self {
            VmOp::CreateVm {
                node,
                vmid,
                params: p,
            } => {
                let what = format!("create VM {vmid}");
                let upid = c
                    .qemu_create(node, *vmid, params(p))
                    .await
                    .map_err(StepError::ctx(&what))?;
                wait(cx, Some(upid), &what).await
            }
            VmOp::UpdateVm {
                node,
                vmid,
                set,
                delete,
                digest,
            } => {
                let what = format!("update VM {vmid}");
                let del: Vec<&str> = delete.iter().map(String::as_str).collect();
                let upid = c
                    .qemu_update_config_async(node, *vmid, params(set), &del, digest.as_deref())
                    .await
                    .map_err(StepError::ctx(&what))?;
                wait(cx, upid, &what).await
            }
            VmOp::ResizeDisk {
                node,
                vmid,
                disk,
                size,
            } => {
                let what = format!("grow {disk} of VM {vmid}");
                let upid = c
                    .qemu_resize(node, *vmid, disk, size, None)
                    .await
                    .map_err(StepError::ctx(&what))?;
                wait(cx, upid, &what).await
            }
            VmOp::StartVm { node, vmid } => {
                let what = format!("start VM {vmid}");
                let upid = c
                    .qemu_start(node, *vmid)
                    .await
                    .map_err(StepError::ctx(&what))?;
                wait(cx, Some(upid), &what).await
            }
            VmOp::ShutdownVm { node, vmid } => {
                let what = format!("shut down VM {vmid}");
                let opts = ShutdownOptions {
                    timeout: Some(120),
                    force_stop: true,
                };
                let upid = c
                    .qemu_shutdown(node, *vmid, opts)
                    .await
                    .map_err(StepError::ctx(&what))?;
                wait(cx, Some(upid), &what).await
            }
            VmOp::RebootVm { node, vmid } => {
                let what = format!("reboot VM {vmid}");
                let upid = c
                    .qemu_reboot(node, *vmid, Some(120))
                    .await
                    .map_err(StepError::ctx(&what))?;
                wait(cx, Some(upid), &what).await
            }
            VmOp::DestroyVm { node, vmid } => {
                let what = format!("destroy VM {vmid}");
                if let Ok(st) = c.qemu_status(node, *vmid).await
                    && st.is_running()
                {
                    let upid = c
                        .qemu_stop(node, *vmid, false)
                        .await
                        .map_err(StepError::ctx(&what))?;
                    wait(cx, Some(upid), &what).await?;
                }
                let opts = DestroyOptions {
                    purge: true,
                    destroy_unreferenced_disks: true,
                    skiplock: false,
                };
                let upid = c
                    .qemu_delete(node, *vmid, opts)
                    .await
                    .map_err(StepError::ctx(&what))?;
                wait(cx, Some(upid), &what).await
            }
        }
    }
}
