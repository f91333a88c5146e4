//! Guest OS sources, NoCloud seeds and in-guest validation (issue 5).
//!
//! This module hooks into the lifecycle at three points, so that plan.rs, apply.rs and
//! validate.rs only carry a call each:
//! - **plan** ([`plan_bootstrap`]): a new VM whose OS comes from an image gets an
//!   `image.download` step (the node fetches and verifies the image itself with
//!   `download-url`; labwright downloads nothing), its boot disk is created with
//!   `import-from` and then grown to the declared size; an installer ISO is attached as
//!   `ide2`. A VM with a `bootstrap` block gets a `vm.seed` step before its first
//!   start; an existing VM whose recorded seed differs gets a visible `vm.reseed`
//!   (reboot, first-boot downtime), never a rebuild.
//! - **apply** ([`run_boot_op`]): the seed is rendered only here, with the auth key
//!   resolved from its reference, packed into a `cidata` ISO, uploaded and attached.
//!   The key exists in memory and inside that ISO only; plans, the journal and every
//!   error show the reference (`env:TAILSCALE_AUTHKEY`).
//! - **validate** ([`guest_checks`], [`cleanup_seeds`]): checks run inside the guest
//!   through the guest agent with bounded waits (a guest without an agent is
//!   "skipped: no agent", never a hang); once everything passes, the seed is detached
//!   and deleted, which ends the window in which the auth key sits on the node.
//!
//! The seed that a VM was last given is recorded in its description as a
//! `labwright-seed: <instance-id>` line: there is no state file, so the node itself
//! has to say which bootstrap it received. Comparisons strip that line
//! ([`strip_seed_marker`]), so it never shows up as drift.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use labwright_cloudinit::{EnvFileResolver, SecretResolver, SeedOptions, needs_seed, plan_seed};
use labwright_pve::api::storage::{DownloadUrlRequest, UploadRequest};
use labwright_pve::vmconfig::{Drive, NetDevice};
use labwright_pve::{Params, PveClient, WaitOptions};
use labwright_spec::Spec;
use labwright_spec::model::{OsSource, PowerState, Vm};
use labwright_spec::types::Cidr;
use serde::{Deserialize, Serialize};

use crate::action::{Action, Change, Held, Risk};
use crate::agent::{
    GuestCheckOptions, exec, first_line, guest_check, guest_ipv4, not_run, wait_agent,
};
use crate::canon::Effect;
use crate::desired::{Desired, DesiredVm};
use crate::observed::{Observed, ObservedVm};
use crate::op::Op;
use crate::validate::{Check, CheckStatus};

/// The description line that records the seed a VM was given.
pub const SEED_MARKER: &str = "labwright-seed:";
/// Default storage that receives downloaded images (`import` content).
pub const DEFAULT_IMAGE_STORAGE: &str = "local";
/// Default storage for seeds and installer ISOs.
pub const DEFAULT_ISO_STORAGE: &str = "local";
/// Where the seed CD-ROM goes. `ide2` is PVE's conventional CD slot and is never a
/// data disk in a labwright spec.
pub const SEED_SLOT: &str = "ide2";
/// Rough time from first power-on until cloud-init has installed the packages.
const FIRST_BOOT_SECONDS: u32 = 180;
use crate::canon::REBOOT_SECONDS;

/// What the executor does for a bootstrap step (data, like the rest of a plan).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "step",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum BootOp {
    /// The node fetches an image (`download-url`) unless the volume is already there.
    DownloadImage {
        node: String,
        storage: String,
        /// `import` or `iso`.
        content: String,
        filename: String,
        url: String,
        checksum_algorithm: Option<String>,
        checksum: Option<String>,
        /// Decompression done by the node (ISO content only: gz, lzo, zst, bz2).
        compression: Option<String>,
    },
    /// Grows an imported boot disk to the declared size (never shrinks).
    GrowDisk {
        node: String,
        vmid: u32,
        disk: String,
        size: String,
        size_bytes: u64,
    },
    /// Renders, uploads and attaches the NoCloud seed; `reboot` for a re-seed of a
    /// running guest.
    Seed {
        node: String,
        vmid: u32,
        storage: String,
        instance_id: String,
        volume_file: String,
        reboot: bool,
    },
}

impl crate::op::Step for BootOp {
    /// The API calls, as `METHOD path key=value …` lines (no secret is ever in them:
    /// the seed's checksum is only known at apply time and its content never shown).
    fn api_calls(&self) -> Vec<String> {
        match self {
            BootOp::DownloadImage {
                node,
                storage,
                content,
                filename,
                url,
                checksum_algorithm,
                checksum,
                compression,
            } => {
                let mut s = format!(
                    "POST /nodes/{node}/storage/{storage}/download-url content={content} filename={filename} url={url}"
                );
                if let (Some(a), Some(c)) = (checksum_algorithm, checksum) {
                    s.push_str(&format!(" checksum-algorithm={a} checksum={c}"));
                }
                if let Some(c) = compression {
                    s.push_str(&format!(" compression={c}"));
                }
                vec![
                    format!("GET /nodes/{node}/storage/{storage}/content content={content}"),
                    s,
                ]
            }
            BootOp::GrowDisk {
                node,
                vmid,
                disk,
                size,
                ..
            } => vec![
                format!("GET /nodes/{node}/qemu/{vmid}/config"),
                format!("PUT /nodes/{node}/qemu/{vmid}/resize disk={disk} size={size}"),
            ],
            BootOp::Seed {
                node,
                vmid,
                storage,
                instance_id,
                volume_file,
                reboot,
            } => {
                let mut v = vec![
                    format!("GET /nodes/{node}/qemu/{vmid}/config"),
                    format!(
                        "POST /nodes/{node}/storage/{storage}/upload content=iso filename={volume_file} checksum-algorithm=sha256 checksum=<sha256 of the seed>"
                    ),
                    format!(
                        "POST /nodes/{node}/qemu/{vmid}/config {SEED_SLOT}={storage}:iso/{volume_file},media=cdrom description=<description + `{SEED_MARKER} {instance_id}`>"
                    ),
                ];
                if *reboot {
                    v.push(format!("POST /nodes/{node}/qemu/{vmid}/status/reboot"));
                }
                v
            }
        }
    }

    /// The VM this step works on, if any.
    fn vm(&self) -> Option<(&str, u32)> {
        match self {
            BootOp::DownloadImage { .. } => None,
            BootOp::GrowDisk { node, vmid, .. } | BootOp::Seed { node, vmid, .. } => {
                Some((node, *vmid))
            }
        }
    }

    async fn run(&self, cx: &crate::op::ExecCx<'_>) -> Result<(), crate::error::StepError> {
        run_boot_op(cx.client, self, cx.seeds, &cx.wait, cx.progress).await
    }
}

/// What apply needs beyond the plan to run seed steps: the spec (the seed is rendered
/// from it, not stored in the plan, because the real user-data holds the auth key)
/// and the resolver that reads the key.
#[derive(Clone)]
pub struct SeedSource {
    pub spec: Option<Arc<Spec>>,
    pub secrets: Arc<dyn SecretResolver + Send + Sync>,
}

impl Default for SeedSource {
    fn default() -> Self {
        SeedSource {
            spec: None,
            secrets: Arc::new(EnvFileResolver),
        }
    }
}

impl SeedSource {
    /// Seeds rendered from `spec`, secrets read from the environment or files.
    pub fn for_spec(spec: Spec) -> Self {
        SeedSource {
            spec: Some(Arc::new(spec)),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for SeedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedSource")
            .field("spec", &self.spec.as_ref().map(|s| s.metadata.name.clone()))
            .finish_non_exhaustive()
    }
}

/// The description without labwright's seed line (for comparisons with the spec).
pub fn strip_seed_marker(description: &str) -> String {
    description
        .lines()
        .filter(|l| !l.trim_start().starts_with(SEED_MARKER))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The instance-id recorded in a description, if any.
pub fn seed_marker(description: &str) -> Option<String> {
    description.lines().find_map(|l| {
        l.trim_start()
            .strip_prefix(SEED_MARKER)
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
    })
}

fn with_marker(description: &str, instance_id: &str) -> String {
    let base = strip_seed_marker(description);
    let base = base.trim_end();
    if base.is_empty() {
        format!("{SEED_MARKER} {instance_id}")
    } else {
        format!("{base}\n{SEED_MARKER} {instance_id}")
    }
}

/// Pending keys that need a restart to take effect. A CD-ROM slot that is pending
/// deletion (the seed detached from a running guest) does not: the guest loses a CD
/// it no longer reads, and the seed's volume is already gone from storage.
pub fn reboot_pending(obs: &ObservedVm) -> BTreeSet<String> {
    let cfg = obs.config.as_ref();
    obs.pending
        .iter()
        .filter(|k| {
            let cd_slot = k.starts_with("ide") || k.starts_with("sata");
            let deleted = cfg.is_none_or(|c| !c.contains_key(k.as_str()));
            !(cd_slot && deleted)
        })
        .cloned()
        .collect()
}

/// Storage for seeds (the spec's `node.isoStorage`, default `local`).
pub fn iso_storage(spec: &Spec) -> String {
    spec.node
        .iso_storage
        .clone()
        .unwrap_or_else(|| DEFAULT_ISO_STORAGE.to_string())
}

mod checks;
mod exec;
mod image;
mod plan;

pub use checks::*;
pub(crate) use exec::*;
pub use image::*;
pub(crate) use plan::*;

#[cfg(test)]
mod tests;
