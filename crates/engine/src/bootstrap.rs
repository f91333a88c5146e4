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

use crate::canon::Effect;
use crate::desired::{Desired, DesiredVm};
use crate::observed::{Observed, ObservedVm};
use crate::plan::{Action, Change, Held, Op, Risk};
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
/// Estimated restart time (shutdown + boot), as in plan.rs.
const REBOOT_SECONDS: u32 = 60;

/// What the executor does for a bootstrap step (data, like the rest of a plan).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
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

impl BootOp {
    /// The API calls, as `METHOD path key=value …` lines (no secret is ever in them:
    /// the seed's checksum is only known at apply time and its content never shown).
    pub fn api_calls(&self) -> Vec<String> {
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
    pub fn vm(&self) -> Option<(&str, u32)> {
        match self {
            BootOp::DownloadImage { .. } => None,
            BootOp::GrowDisk { node, vmid, .. } | BootOp::Seed { node, vmid, .. } => {
                Some((node, *vmid))
            }
        }
    }
}

/// What apply needs beyond the plan to run seed steps: the spec (the seed is rendered
/// from it, not stored in the plan, because the real user-data holds the auth key)
/// and the resolver that reads the key.
#[derive(Clone)]
pub struct BootApplyOptions {
    pub spec: Option<Arc<Spec>>,
    pub secrets: Arc<dyn SecretResolver + Send + Sync>,
}

impl Default for BootApplyOptions {
    fn default() -> Self {
        BootApplyOptions {
            spec: None,
            secrets: Arc::new(EnvFileResolver),
        }
    }
}

impl BootApplyOptions {
    /// Seeds rendered from `spec`, secrets read from the environment or files.
    pub fn for_spec(spec: Spec) -> Self {
        BootApplyOptions {
            spec: Some(Arc::new(spec)),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for BootApplyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootApplyOptions")
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

/// What PVE's `download-url` can decompress, and only into ISO content
/// (pve-storage `decompressor_info('iso', …)`): an `import` image must be plain.
pub const NODE_DECOMPRESSES: [&str; 4] = ["gz", "lzo", "zst", "bz2"];

/// Compression suffixes seen on published images.
const COMPRESSED: [&str; 8] = ["xz", "gz", "zst", "bz2", "lzo", "zip", "7z", "lz4"];

/// The file name on the node, from an image URL (cloud image or HAOS, `import` content).
/// A compressed image is refused: the node cannot decompress into `import`.
fn image_file(url: &str) -> Result<String, String> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    if let Some((_, ext)) = name.rsplit_once('.')
        && COMPRESSED.contains(&ext)
    {
        return Err(format!(
            "`{name}` is {ext}-compressed and PVE's download-url cannot decompress into `import` content (it decompresses gz, lzo, zst and bz2, for ISO storage only); decompress it once, serve the plain image on your LAN and point the URL there (docs/runbooks/install-haos.md)"
        ));
    }
    let ok_ext = [".qcow2", ".raw", ".vmdk", ".img"]
        .iter()
        .any(|e| name.ends_with(e));
    let ok_chars = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
    if !ok_ext || !ok_chars {
        return Err(format!(
            "the image URL must end in a file name like `x.qcow2`, `x.raw`, `x.img` or `x.vmdk`; got `{name}`"
        ));
    }
    // PVE's import content takes .qcow2/.raw/.vmdk/.ova; a raw `.img` is stored as .raw.
    Ok(match name.strip_suffix(".img") {
        Some(stem) => format!("{stem}.raw"),
        None => name.to_string(),
    })
}

/// The decompression the node does for an installer ISO fetched from `url`, or why it
/// cannot: `Ok(None)` for a plain file.
fn iso_compression(url: &str) -> Result<Option<String>, String> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    match name.rsplit_once('.') {
        Some((_, ext)) if NODE_DECOMPRESSES.contains(&ext) => Ok(Some(ext.to_string())),
        Some((_, ext)) if COMPRESSED.contains(&ext) => Err(format!(
            "`{name}` is {ext}-compressed; PVE's download-url decompresses only gz, lzo, zst and bz2"
        )),
        _ => Ok(None),
    }
}

/// `sha512:<hex>` → (`sha512`, `<hex>`).
fn checksum_parts(s: &str) -> Result<(String, String), String> {
    let (algo, hex) = s
        .split_once(':')
        .ok_or_else(|| format!("checksum `{s}` is not `<algorithm>:<hex>`"))?;
    let algo = algo.trim().to_ascii_lowercase();
    let want_len = match algo.as_str() {
        "md5" => 32,
        "sha1" => 40,
        "sha224" => 56,
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(format!("checksum algorithm `{algo}` is not one PVE checks")),
    };
    let hex = hex.trim().to_ascii_lowercase();
    if hex.len() != want_len || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "the {algo} checksum must be {want_len} hex digits (got {})",
            hex.len()
        ));
    }
    Ok((algo, hex))
}

fn vm_target(vmid: u32, name: &str) -> String {
    format!("vm/{vmid} {name}")
}

fn change(field: &str, after: impl Into<String>) -> Change {
    Change {
        field: field.into(),
        before: None,
        after: Some(after.into()),
        effect: Effect::Hotplug,
    }
}

fn blank_action(id: String, kind: &str, target: String, op: Op) -> Action {
    Action {
        id,
        kind: kind.into(),
        target,
        risk: Risk::Low,
        phase: 0,
        pre_snapshot: None,
        rollback_hint: String::new(),
        expected_downtime: "none".into(),
        downtime_seconds: 0,
        reason: String::new(),
        changes: Vec::new(),
        depends_on: Vec::new(),
        api_calls: Vec::new(),
        storage_lock: None,
        op,
    }
}

/// Everything the plan hook needs to push into the plan.
pub struct PlanOut<'a> {
    pub actions: &'a mut Vec<Action>,
    pub blocked: &'a mut Vec<Held>,
    pub notes: &'a mut Vec<String>,
    /// Names pre-change snapshots (`lw-<tag>`), as plan.rs does.
    pub plan_tag: &'a str,
}

/// Adds the OS-source and seed steps for the VMs of `want` (see the module docs).
/// Runs after the VM actions of plan.rs exist, because it edits creates and starts.
pub fn plan_bootstrap(spec: &Spec, want: &Desired, observed: &Observed, out: PlanOut<'_>) {
    let PlanOut {
        actions,
        blocked,
        notes,
        plan_tag,
    } = out;
    for dvm in want.vms.values() {
        let Some(vm) = spec.vms.iter().find(|v| v.vmid == dvm.vmid) else {
            continue;
        };
        match observed.vms.get(&dvm.vmid) {
            None => {
                let before = blocked.len();
                plan_new_vm(spec, want, observed, dvm, vm, actions, blocked, notes);
                if blocked.len() > before {
                    // Nothing half-built: a VM whose OS or seed cannot be provided is
                    // not created blank (it could not get its image afterwards).
                    let prefix = format!("vm-{}-", dvm.vmid);
                    actions.retain(|a| !a.id.starts_with(&prefix));
                    for h in &mut blocked[before..] {
                        h.unblock.push_str(" (the VM is not created until then)");
                    }
                }
            }
            Some(obs) => plan_existing_vm(spec, dvm, vm, obs, actions, blocked, plan_tag),
        }
    }
    keep_marker_in_updates(observed, actions);
}

fn find_action<'a>(actions: &'a mut [Action], id: &str) -> Option<&'a mut Action> {
    actions.iter_mut().find(|a| a.id == id)
}

/// Replaces `storage:GiB,opts` by `storage:0,import-from=VOLID,opts` (PVE's import
/// syntax: the size must be 0; the disk gets the image's size and is grown after).
fn import_value(alloc: &str, volid: &str) -> String {
    let (head, rest) = match alloc.split_once(',') {
        Some((h, r)) => (h, Some(r)),
        None => (alloc, None),
    };
    let storage = head.split(':').next().unwrap_or(head);
    let mut v = format!("{storage}:0,import-from={volid}");
    if let Some(r) = rest {
        v.push(',');
        v.push_str(r);
    }
    v
}

#[allow(clippy::too_many_arguments)]
fn plan_download(
    actions: &mut Vec<Action>,
    node: &str,
    storage: &str,
    content: &str,
    filename: &str,
    url: &str,
    checksum: Option<(String, String)>,
    compression: Option<String>,
) -> String {
    let id = format!(
        "image-{}-download",
        filename
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
    );
    if actions.iter().any(|a| a.id == id) {
        return id;
    }
    let volid = format!("{storage}:{content}/{filename}");
    let mut a = blank_action(
        id.clone(),
        "image.download",
        format!("storage/{storage} {filename}"),
        Op::Bootstrap(BootOp::DownloadImage {
            node: node.into(),
            storage: storage.into(),
            content: content.into(),
            filename: filename.into(),
            url: url.into(),
            checksum_algorithm: checksum.as_ref().map(|c| c.0.clone()),
            checksum: checksum.as_ref().map(|c| c.1.clone()),
            compression: compression.clone(),
        }),
    );
    a.rollback_hint = format!(
        "delete the image once no VM is created from it: `pvesm free {volid}` (guests already imported keep their copy)"
    );
    a.expected_downtime = "none (the node downloads in the background)".into();
    a.reason = "the VM's OS image; the node fetches it itself and verifies the checksum (skipped when the volume is already there)".into();
    a.changes.push(change("volume", volid));
    a.changes.push(change("url", url));
    a.changes.push(match &checksum {
        Some((algo, hex)) => change("checksum", format!("{algo}:{hex} (verified by the node)")),
        None => change("checksum", "none given: the image is not verified"),
    });
    if let Some(c) = &compression {
        a.changes.push(change(
            "decompression",
            format!(
                "{c}, done by the node (download-url `compression`) before it stores {storage}:{content}/{filename}"
            ),
        ));
    }
    // Downloads go first in the listing: every create that imports waits for them.
    let pos = actions
        .iter()
        .take_while(|x| x.kind == "image.download")
        .count();
    actions.insert(pos, a);
    id
}

/// Inserts `a` right after the action `after` (listing order only; the executor
/// follows `dependsOn`).
fn insert_after(actions: &mut Vec<Action>, after: &str, a: Action) {
    match actions.iter().position(|x| x.id == after) {
        Some(i) => actions.insert(i + 1, a),
        None => actions.push(a),
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_new_vm(
    spec: &Spec,
    want: &Desired,
    observed: &Observed,
    dvm: &DesiredVm,
    vm: &Vm,
    actions: &mut Vec<Action>,
    blocked: &mut Vec<Held>,
    notes: &mut Vec<String>,
) {
    let vmid = dvm.vmid;
    let target = vm_target(vmid, &dvm.name);
    let create_id = format!("vm-{vmid}-create");
    if !actions.iter().any(|a| a.id == create_id) {
        return;
    }
    let mut last = create_id.clone();
    match &vm.os {
        None => {}
        Some(OsSource::CloudImage(img)) | Some(OsSource::HaosImage(img)) => {
            let is_haos = matches!(vm.os, Some(OsSource::HaosImage(_)));
            let filename = match image_file(&img.url) {
                Ok(f) => f,
                Err(why) => {
                    blocked.push(Held {
                        target,
                        reason: format!("OS image: {why}"),
                        unblock: "fix `os.*.url` in the spec".into(),
                    });
                    return;
                }
            };
            let checksum = match checksum_parts(&img.checksum) {
                Ok(c) => c,
                Err(why) => {
                    blocked.push(Held {
                        target,
                        reason: format!("OS image: {why}"),
                        unblock: "put the published checksum in `os.*.checksum`".into(),
                    });
                    return;
                }
            };
            let storage = img
                .storage
                .clone()
                .unwrap_or_else(|| DEFAULT_IMAGE_STORAGE.to_string());
            let slot = img.disk.clone().unwrap_or_else(|| "scsi0".to_string());
            if let Err(why) = storage_takes(observed, &want.node, &storage, "import") {
                blocked.push(Held {
                    target,
                    reason: format!("OS image: {why}"),
                    unblock: format!(
                        "enable the `import` content type on storage `{storage}` (Datacenter → Storage), or name another storage in `os.*.storage`"
                    ),
                });
                return;
            }
            let volid = format!("{storage}:import/{filename}");
            let dl = plan_download(
                actions,
                &want.node,
                &storage,
                "import",
                &filename,
                &img.url,
                Some(checksum),
                None,
            );
            let Some(create) = find_action(actions, &create_id) else {
                return;
            };
            if let Op::CreateVm { params, .. } = &mut create.op {
                match params.iter_mut().find(|(k, _)| *k == slot) {
                    Some((_, v)) => *v = import_value(v, &volid),
                    None => params.push((
                        slot.clone(),
                        format!("{}:0,import-from={volid}", dvm.storage),
                    )),
                }
                params.retain(|(k, _)| k != "boot");
                params.push(("boot".into(), format!("order={slot}")));
                params.sort();
                create.changes = params.iter().map(|(k, v)| change(k, v.clone())).collect();
            }
            create.depends_on.push(dl);
            create.reason = format!(
                "declared in the spec, absent on the node; boot disk {slot} imported from {volid}{}",
                if is_haos {
                    " (UEFI, Home Assistant OS)"
                } else {
                    ""
                }
            );
            if let Some(d) = dvm.disks.get(&slot) {
                let size = labwright_spec::types::Size(d.size_bytes).to_string();
                let id = format!("vm-{vmid}-grow-{slot}");
                let mut a = blank_action(
                    id.clone(),
                    "vm.resize",
                    target.clone(),
                    Op::Bootstrap(BootOp::GrowDisk {
                        node: want.node.clone(),
                        vmid,
                        disk: slot.clone(),
                        size: size.clone(),
                        size_bytes: d.size_bytes,
                    }),
                );
                a.rollback_hint = format!(
                    "a disk cannot shrink; the VM is new and holds no data: `qm destroy {vmid} --purge` and plan again"
                );
                a.expected_downtime = "none (new guest, not started yet)".into();
                a.reason = format!(
                    "the imported image is smaller than the declared {slot}; grown before the first boot (the guest grows its filesystem)"
                );
                a.changes.push(change(&format!("{slot} size"), size));
                a.depends_on.push(last.clone());
                insert_after(actions, &last, a);
                last = id;
            }
            if is_haos {
                notes.push(format!(
                    "VM {vmid} boots Home Assistant OS from {volid} (UEFI, efidisk0); HAOS has no cloud-init: its guest agent is built in and Tailscale comes from the HA add-on (docs/runbooks)"
                ));
            }
        }
        Some(OsSource::Iso(iso)) => {
            let Some(create) = find_action(actions, &create_id) else {
                return;
            };
            let first_disk = dvm
                .disks
                .keys()
                .next()
                .cloned()
                .unwrap_or_else(|| "scsi0".into());
            if let Op::CreateVm { params, .. } = &mut create.op {
                params.retain(|(k, _)| k != "boot" && k != SEED_SLOT);
                params.push((SEED_SLOT.into(), format!("{},media=cdrom", iso.volume)));
                params.push(("boot".into(), format!("order={first_disk};{SEED_SLOT}")));
                params.sort();
                create.changes = params.iter().map(|(k, v)| change(k, v.clone())).collect();
            }
            create.reason = format!(
                "declared in the spec, absent on the node; installer {} attached as {SEED_SLOT} (boots from it while {first_disk} is empty)",
                iso.volume
            );
            if let Some(url) = &iso.url {
                let (storage, file) = match iso.volume.split_once(":iso/") {
                    Some((s, f)) => (s.to_string(), f.to_string()),
                    None => {
                        blocked.push(Held {
                            target,
                            reason: format!(
                                "installer ISO `{}` is not an `<storage>:iso/<file>` volume",
                                iso.volume
                            ),
                            unblock: "fix `os.iso.volume`".into(),
                        });
                        return;
                    }
                };
                let checksum = match iso.checksum.as_deref().map(checksum_parts) {
                    None => None,
                    Some(Ok(c)) => Some(c),
                    Some(Err(why)) => {
                        blocked.push(Held {
                            target,
                            reason: format!("installer ISO: {why}"),
                            unblock: "fix `os.iso.checksum`".into(),
                        });
                        return;
                    }
                };
                let compression = match iso_compression(url) {
                    Ok(c) => c,
                    Err(why) => {
                        blocked.push(Held {
                            target,
                            reason: format!("installer ISO: {why}"),
                            unblock: "point `os.iso.url` at a plain or gz/zst/bz2 file".into(),
                        });
                        return;
                    }
                };
                let dl = plan_download(
                    actions,
                    &want.node,
                    &storage,
                    "iso",
                    &file,
                    url,
                    checksum,
                    compression,
                );
                if let Some(create) = find_action(actions, &create_id) {
                    create.depends_on.push(dl);
                }
            }
        }
    }
    if needs_seed(vm) {
        let storage = iso_storage(spec);
        if let Err(why) = storage_takes(observed, &want.node, &storage, "iso") {
            blocked.push(Held {
                target,
                reason: format!("guest bootstrap: the seed goes to `{storage}`: {why}"),
                unblock: format!(
                    "enable the `iso` content type on storage `{storage}`, or set `node.isoStorage`"
                ),
            });
            return;
        }
        match plan_seed(spec, vm, &SeedOptions::default()) {
            Err(e) => {
                blocked.push(Held {
                    target: target.clone(),
                    reason: format!("guest bootstrap: {e}"),
                    unblock: "fix the VM's `bootstrap` block".into(),
                });
            }
            Ok(sp) => {
                let id = format!("vm-{vmid}-seed");
                let mut a = blank_action(
                    id.clone(),
                    "vm.seed",
                    target.clone(),
                    Op::Bootstrap(BootOp::Seed {
                        node: want.node.clone(),
                        vmid,
                        storage: storage.clone(),
                        instance_id: sp.instance_id.clone(),
                        volume_file: sp.volume_file.clone(),
                        reboot: false,
                    }),
                );
                a.rollback_hint = format!(
                    "detach and delete the seed: `qm set {vmid} --delete {SEED_SLOT}` and `pvesm free {}`; the VM is new: `qm destroy {vmid} --purge` undoes all of it",
                    sp.volume_id(&storage)
                );
                a.expected_downtime = format!(
                    "none (new guest; its first boot runs cloud-init, ~{FIRST_BOOT_SECONDS}s until Tailscale/Docker are up)"
                );
                a.reason =
                    "first-boot setup through a cloud-init NoCloud seed (no SSH to the host)"
                        .into();
                seed_changes(&mut a, &sp, &storage);
                a.depends_on.push(last.clone());
                insert_after(actions, &last, a);
                last = id;
            }
        }
    }
    if last != create_id
        && let Some(start) = find_action(actions, &format!("vm-{vmid}-start"))
    {
        start.depends_on = vec![last];
    }
}

fn seed_changes(a: &mut Action, sp: &labwright_cloudinit::SeedPlan, storage: &str) {
    a.changes
        .push(change("instance-id", sp.instance_id.clone()));
    a.changes.push(change(
        SEED_SLOT,
        format!("{},media=cdrom", sp.volume_id(storage)),
    ));
    a.changes.push(match &sp.auth_key {
        Some(r) => change(
            "tailscale auth key",
            format!("{r} (read at apply time; written only into the seed ISO)"),
        ),
        None => change("tailscale auth key", "none (no Tailscale join)"),
    });
    a.changes.push(change(
        "seed cleanup",
        "detached and deleted after `labwright validate` passes (until then the auth key sits in the seed on the node: use a one-off, pre-approved key)",
    ));
    a.changes.push(change(
        "description",
        format!("+ `{SEED_MARKER} {}`", sp.instance_id),
    ));
    a.changes.push(change("meta-data", sp.meta_data.clone()));
    a.changes
        .push(change("network-config", sp.network_config.clone()));
    a.changes.push(change(
        "user-data (redacted)",
        sp.user_data_redacted.clone(),
    ));
}

/// Whether `storage` on `node` accepts `content`, as far as the scan knows. An
/// unknown content list is not held against it (the node decides at apply).
fn storage_takes(
    observed: &Observed,
    node: &str,
    storage: &str,
    content: &str,
) -> Result<(), String> {
    if observed.storages.is_empty() {
        return Ok(());
    }
    let Some(st) = observed
        .storages
        .iter()
        .find(|s| s.id == storage && (s.node == node || s.node.is_empty()))
    else {
        return Err(format!("storage `{storage}` is not on node `{node}`"));
    };
    match &st.content {
        Some(c) if !c.split(',').any(|x| x.trim() == content) => Err(format!(
            "storage `{storage}` does not take `{content}` content (it has: {c})"
        )),
        _ => Ok(()),
    }
}

/// NIC slot → MAC, from a VM config (what PVE assigned at create).
fn nic_macs(config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    config
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix("net")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
        .filter_map(|(k, v)| {
            NetDevice::parse(v)
                .ok()
                .and_then(|n| n.macaddr)
                .map(|m| (k.clone(), m))
        })
        .collect()
}

fn plan_existing_vm(
    spec: &Spec,
    dvm: &DesiredVm,
    vm: &Vm,
    obs: &ObservedVm,
    actions: &mut Vec<Action>,
    blocked: &mut Vec<Held>,
    plan_tag: &str,
) {
    if !needs_seed(vm) || obs.lock.is_some() {
        return;
    }
    let Some(config) = &obs.config else { return };
    let vmid = dvm.vmid;
    let target = vm_target(vmid, &dvm.name);
    let opts = SeedOptions {
        nic_macs: nic_macs(config),
    };
    let sp = match plan_seed(spec, vm, &opts) {
        Ok(sp) => sp,
        Err(e) => {
            blocked.push(Held {
                target,
                reason: format!("guest bootstrap: {e}"),
                unblock: "fix the VM's `bootstrap` block".into(),
            });
            return;
        }
    };
    let recorded = config.get("description").and_then(|d| seed_marker(d));
    if recorded.as_deref() == Some(sp.instance_id.as_str()) {
        return;
    }
    let running = obs.status == "running";
    let will_run = dvm.power == PowerState::Running;
    let reboot = running && will_run;
    let storage = iso_storage(spec);
    let snap = reboot.then(|| format!("lw-{plan_tag}"));
    let mut a = blank_action(
        format!("vm-{vmid}-reseed"),
        "vm.reseed",
        target,
        Op::Bootstrap(BootOp::Seed {
            node: obs.node.clone(),
            vmid,
            storage: storage.clone(),
            instance_id: sp.instance_id.clone(),
            volume_file: sp.volume_file.clone(),
            reboot,
        }),
    );
    a.risk = Risk::Medium;
    a.pre_snapshot = snap.clone();
    a.rollback_hint = match &snap {
        Some(s) => format!(
            "roll back to the pre-change snapshot: `qm rollback {vmid} {s}` (the setup re-runs idempotently; nothing is rebuilt)"
        ),
        None => format!(
            "detach the seed before the next start: `qm set {vmid} --delete {SEED_SLOT}` and `pvesm free {}`",
            sp.volume_id(&storage)
        ),
    };
    a.expected_downtime = if reboot {
        format!(
            "~{REBOOT_SECONDS}s reboot, then cloud-init re-runs the setup (~{FIRST_BOOT_SECONDS}s until services settle)"
        )
    } else {
        "none now (the VM is stopped; the setup runs at its next start)".into()
    };
    a.downtime_seconds = if reboot { REBOOT_SECONDS } else { 0 };
    a.reason = match &recorded {
        Some(old) => format!(
            "the bootstrap changed: the VM was seeded with {old}, the spec now gives {} (a re-seed re-runs the idempotent setup; the disk is kept)",
            sp.instance_id
        ),
        None => "the VM carries no record of a labwright seed; re-seeding runs the idempotent setup on it (the disk is kept)".into(),
    };
    if let Some(old) = &recorded {
        a.changes.push(Change {
            field: "instance-id".into(),
            before: Some(old.clone()),
            after: Some(sp.instance_id.clone()),
            effect: if reboot {
                Effect::NeedsReboot
            } else {
                Effect::Hotplug
            },
        });
    }
    seed_changes(&mut a, &sp, &storage);
    if recorded.is_some() {
        // The first "instance-id" entry (with its before value) says it already.
        if let Some(pos) = a
            .changes
            .iter()
            .skip(1)
            .position(|c| c.field == "instance-id")
        {
            a.changes.remove(pos + 1);
        }
    }
    let prefix = format!("vm-{vmid}-");
    let start_id = format!("vm-{vmid}-start");
    a.depends_on = actions
        .iter()
        .filter(|x| x.id.starts_with(&prefix) && x.id != start_id)
        .map(|x| x.id.clone())
        .collect();
    let id = a.id.clone();
    actions.push(a);
    if let Some(start) = find_action(actions, &start_id) {
        start.depends_on = vec![id];
    }
}

/// An update that rewrites the description keeps the recorded seed line, or the next
/// plan would re-seed the VM.
fn keep_marker_in_updates(observed: &Observed, actions: &mut [Action]) {
    for a in actions.iter_mut() {
        let Op::UpdateVm { vmid, set, .. } = &mut a.op else {
            continue;
        };
        let Some(marker) = observed
            .vms
            .get(vmid)
            .and_then(|o| o.config.as_ref())
            .and_then(|c| c.get("description"))
            .and_then(|d| seed_marker(d))
        else {
            continue;
        };
        for (k, v) in set.iter_mut() {
            if k == "description" {
                *v = with_marker(v, &marker);
            }
        }
    }
}

// ---------------------------------------------------------------- apply

async fn wait_opt(
    client: &PveClient,
    upid: Option<labwright_pve::Upid>,
    opts: &WaitOptions,
) -> Result<(), String> {
    if let Some(u) = upid {
        client
            .wait_task(&u, *opts)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Runs one bootstrap step. Errors are for people: they name the step, the VM and,
/// for secrets, the reference, never a value.
pub async fn run_boot_op(
    client: &PveClient,
    op: &BootOp,
    boot: &BootApplyOptions,
    wait: &WaitOptions,
) -> Result<(), String> {
    match op {
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
            let volid = format!("{storage}:{content}/{filename}");
            let have = client
                .storage_content(node, storage, Some(content), None)
                .await
                .map_err(|e| format!("list {storage} ({content}): {e}"))?;
            if have.iter().any(|v| v.volid == volid) {
                return Ok(());
            }
            let req = DownloadUrlRequest {
                url: url.clone(),
                filename: filename.clone(),
                content: content.clone(),
                checksum: checksum.clone(),
                checksum_algorithm: checksum_algorithm.clone(),
                compression: compression.clone(),
                verify_certificates: None,
            };
            let upid = client
                .storage_download_url(node, storage, &req)
                .await
                .map_err(|e| format!("download {url} to {volid}: {e}"))?;
            // Images are large: the node may need far longer than a config task.
            let opts = WaitOptions {
                timeout: wait.timeout.max(Duration::from_secs(3600)),
                ..*wait
            };
            client
                .wait_task(&upid, opts)
                .await
                .map_err(|e| format!("download {url} to {volid}: {e}"))?;
            Ok(())
        }
        BootOp::GrowDisk {
            node,
            vmid,
            disk,
            size,
            size_bytes,
        } => {
            let cfg = client
                .qemu_config(node, *vmid)
                .await
                .map_err(|e| format!("read the config of VM {vmid}: {e}"))?;
            let raw = cfg
                .get(disk)
                .ok_or_else(|| format!("VM {vmid} has no {disk} after the import"))?;
            let drive = Drive::parse(raw).map_err(|e| format!("VM {vmid} {disk}: {e}"))?;
            let have = match drive.size_bytes() {
                Some(Ok(b)) => b,
                Some(Err(e)) => return Err(format!("VM {vmid} {disk} size: {e}")),
                None => 0,
            };
            if have > *size_bytes {
                return Err(format!(
                    "VM {vmid}: the imported image made {disk} {} but the spec declares {size}; disks never shrink: raise `disks.{disk}.size` to at least the image size",
                    labwright_spec::types::Size(have)
                ));
            }
            if have == *size_bytes {
                return Ok(());
            }
            let upid = client
                .qemu_resize(node, *vmid, disk, size, cfg.digest.as_deref())
                .await
                .map_err(|e| format!("grow {disk} of VM {vmid} to {size}: {e}"))?;
            wait_opt(client, upid, wait).await
        }
        BootOp::Seed {
            node,
            vmid,
            storage,
            instance_id,
            volume_file,
            reboot,
        } => {
            run_seed(
                client,
                boot,
                wait,
                SeedStep {
                    node,
                    vmid: *vmid,
                    storage,
                    instance_id,
                    volume_file,
                    reboot: *reboot,
                },
            )
            .await
        }
    }
}

struct SeedStep<'a> {
    node: &'a str,
    vmid: u32,
    storage: &'a str,
    instance_id: &'a str,
    volume_file: &'a str,
    reboot: bool,
}

async fn run_seed(
    client: &PveClient,
    boot: &BootApplyOptions,
    wait: &WaitOptions,
    s: SeedStep<'_>,
) -> Result<(), String> {
    let vmid = s.vmid;
    let spec = boot.spec.as_ref().ok_or_else(|| {
        format!("VM {vmid}: a seed is rendered from the spec, and this apply was given none")
    })?;
    let vm = spec
        .vms
        .iter()
        .find(|v| v.vmid == vmid)
        .ok_or_else(|| format!("VM {vmid} is not in the spec any more; run plan again"))?;
    let cfg = client
        .qemu_config(s.node, vmid)
        .await
        .map_err(|e| format!("read the config of VM {vmid}: {e}"))?;
    let values: BTreeMap<String, String> = cfg
        .values
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let opts = SeedOptions {
        nic_macs: nic_macs(&values),
    };
    // The only place the auth key is read. Errors carry the reference, not the value.
    let seed = labwright_cloudinit::render_seed(spec, vm, &opts, boot.secrets.as_ref())
        .map_err(|e| format!("seed for VM {vmid}: {e}"))?;
    if seed.plan.instance_id != s.instance_id {
        return Err(format!(
            "VM {vmid}: the bootstrap in the spec changed since the plan was made (seed {} planned, {} now); run `labwright plan` again",
            s.instance_id, seed.plan.instance_id
        ));
    }
    let iso =
        labwright_cloudinit::build_iso(&seed).map_err(|e| format!("seed for VM {vmid}: {e}"))?;
    let sha = iso.sha256().to_string();
    let upload = UploadRequest {
        content: "iso".into(),
        filename: s.volume_file.to_string(),
        data: iso.into_bytes(),
        checksum: Some(("sha256".into(), sha)),
    };
    let volid = format!("{}:iso/{}", s.storage, s.volume_file);
    let upid = client
        .storage_upload(s.node, s.storage, &upload)
        .await
        .map_err(|e| format!("upload the seed {volid}: {e}"))?;
    client
        .wait_task(&upid, *wait)
        .await
        .map_err(|e| format!("upload the seed {volid}: {e}"))?;
    let description = with_marker(cfg.get("description").unwrap_or_default(), s.instance_id);
    let mut p = Params::new();
    p.insert(SEED_SLOT, format!("{volid},media=cdrom"));
    p.insert("description", description);
    // `boot` is left as created (`order=<boot disk>`): the CD is found by its
    // `cidata` label, never booted.
    let upid = client
        .qemu_update_config_async(s.node, vmid, p, &[], cfg.digest.as_deref())
        .await
        .map_err(|e| format!("attach the seed to VM {vmid}: {e}"))?;
    wait_opt(client, upid, wait).await?;
    if s.reboot {
        let upid = client
            .qemu_reboot(s.node, vmid, Some(120))
            .await
            .map_err(|e| format!("reboot VM {vmid} into its new seed: {e}"))?;
        client
            .wait_task(&upid, *wait)
            .await
            .map_err(|e| format!("reboot VM {vmid} into its new seed: {e}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- validate

/// Deletes a volume and checks it is gone. The task id of `imgdel` carries the volume
/// id (with its `:`), which not every UPID reader accepts, so the result is verified
/// by listing the storage rather than only by the task.
async fn delete_volume(
    client: &PveClient,
    node: &str,
    storage: &str,
    volid: &str,
    wait: &WaitOptions,
) -> Result<(), String> {
    let upid = client
        .storage_delete_volume(node, storage, volid)
        .await
        .map_err(|e| format!("delete {volid}: {e}"))?;
    wait_opt(client, upid, wait).await?;
    // The listing confirms it: a seed left behind would keep the auth key on the node.
    let start = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let list = client
            .storage_content(node, storage, Some("iso"), None)
            .await
            .map_err(|e| format!("list {storage}: {e}"))?;
        if !list.iter().any(|v| v.volid == volid) {
            return Ok(());
        }
        if start.elapsed() >= wait.timeout.min(Duration::from_secs(60)) {
            return Err(format!("{volid} is still on {storage} after deleting it"));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Bounds of the in-guest checks: no check waits longer than this, so a guest whose
/// agent never comes up fails validate instead of hanging it.
#[derive(Clone, Copy, Debug)]
pub struct GuestCheckOptions {
    /// How long to wait for the agent of a booting guest to answer.
    pub agent_wait: Duration,
    /// How long one command may run inside the guest.
    pub exec_timeout: Duration,
    /// `false` skips every in-guest check (`LABWRIGHT_GUEST_CHECKS=off`), e.g. where
    /// guests cannot run the checked tools; the output says they were skipped.
    pub enabled: bool,
}

impl Default for GuestCheckOptions {
    fn default() -> Self {
        GuestCheckOptions {
            agent_wait: Duration::from_secs(90),
            exec_timeout: Duration::from_secs(30),
            enabled: true,
        }
    }
}

impl GuestCheckOptions {
    /// The defaults, with `LABWRIGHT_AGENT_WAIT_SECS` overriding the agent wait (a
    /// first boot that installs packages takes minutes on a real node).
    pub fn from_env() -> Self {
        let mut o = Self::default();
        if let Some(s) = std::env::var("LABWRIGHT_AGENT_WAIT_SECS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            o.agent_wait = Duration::from_secs(s);
        }
        if std::env::var("LABWRIGHT_GUEST_CHECKS")
            .is_ok_and(|v| matches!(v.trim(), "off" | "0" | "false" | "no"))
        {
            o.enabled = false;
        }
        o
    }
}

pub(crate) fn guest_check(name: String, status: CheckStatus, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

/// Runs `argv` in the guest: (exit code, stdout, stderr), or why it could not run.
pub(crate) async fn exec(
    client: &PveClient,
    node: &str,
    vmid: u32,
    argv: &[&str],
    timeout: Duration,
) -> Result<(i64, String, String), String> {
    let st = client
        .agent_exec_wait(node, vmid, argv, None, timeout)
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        st.exitcode.unwrap_or(-1),
        st.out_data.unwrap_or_default(),
        st.err_data.unwrap_or_default(),
    ))
}

pub(crate) fn first_line(s: &str) -> String {
    let l = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut out: String = l.chars().take(160).collect();
    if l.chars().count() > 160 {
        out.push('…');
    }
    out
}

/// Expected advertised routes of a VM (segment names resolved to CIDRs).
fn expected_routes(spec: &Spec, vm: &Vm) -> Vec<Cidr> {
    let Some(ts) = vm.bootstrap.as_ref().and_then(|b| b.tailscale.as_ref()) else {
        return Vec::new();
    };
    ts.advertise_routes
        .iter()
        .filter_map(|r| match spec.networks.segments.get(r) {
            Some(seg) => Some(seg.cidr),
            None => r.parse::<Cidr>().ok(),
        })
        .collect()
}

/// Folders the `/opt/naas` layout must have: the ones the seed creates.
fn naas_dirs(vm: &Vm) -> Vec<String> {
    vm.bootstrap
        .as_ref()
        .and_then(|b| b.naas.as_ref())
        .map(labwright_cloudinit::naas_dirs)
        .unwrap_or_default()
}

/// Waits for the agent to answer. `Ok(false)`: the VM has no agent configured.
pub(crate) async fn wait_agent(
    client: &PveClient,
    node: &str,
    vmid: u32,
    opts: &GuestCheckOptions,
) -> Result<bool, String> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match client.agent_ping(node, vmid).await {
            Ok(()) => return Ok(true),
            Err(e) => {
                let text = e.to_string();
                if text.contains("No QEMU guest agent configured") {
                    return Ok(false);
                }
                if start.elapsed() >= opts.agent_wait {
                    return Err(format!(
                        "no answer within {}s: {}",
                        opts.agent_wait.as_secs(),
                        first_line(&text)
                    ));
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// The in-guest checks of every declared, running VM with a bootstrap or an OS image
/// (through the guest agent; see the module docs).
pub async fn guest_checks(
    client: &PveClient,
    spec: &Spec,
    observed: &Observed,
    opts: &GuestCheckOptions,
) -> Vec<Check> {
    let want = crate::desired::desired(spec);
    // One VM's checks never wait for another's agent: the VMs are checked together.
    let mut jobs = Vec::new();
    for dvm in want.vms.values() {
        jobs.push(async move {
            let mut out = Vec::new();
            let Some(vm) = spec.vms.iter().find(|v| v.vmid == dvm.vmid) else {
                return out;
            };
            if !opts.enabled && (vm.bootstrap.is_some() || vm.os.is_some()) {
                out.push(guest_check(
                    format!("vm/{} {} guest", vm.vmid, vm.name),
                    CheckStatus::Skipped,
                    "skipped: in-guest checks are off (LABWRIGHT_GUEST_CHECKS=off)",
                ));
                return out;
            }
            let is_haos = matches!(vm.os, Some(OsSource::HaosImage(_)));
            if vm.bootstrap.is_none() && !is_haos {
                return out;
            }
            let name = format!("vm/{} {}", vm.vmid, vm.name);
            let Some(obs) = observed.vms.get(&vm.vmid) else {
                return out;
            };
            if !vm.agent {
                out.push(guest_check(
                    format!("{name} guest"),
                    CheckStatus::Skipped,
                    "skipped: no agent (`agent: false` in the spec); nothing can be checked inside the guest",
                ));
                return out;
            }
            if obs.status != "running" {
                out.push(guest_check(
                    format!("{name} guest"),
                    CheckStatus::Skipped,
                    format!("skipped: the VM is {}", obs.status),
                ));
                return out;
            }
            match wait_agent(client, &obs.node, vm.vmid, opts).await {
                Ok(true) => out.push(guest_check(
                    format!("{name} guest agent"),
                    CheckStatus::Pass,
                    "answers (agent/ping)",
                )),
                Ok(false) => {
                    out.push(guest_check(
                        format!("{name} guest agent"),
                        CheckStatus::Skipped,
                        "skipped: no agent (the VM has no guest agent configured on the node)",
                    ));
                    return out;
                }
                Err(why) => {
                    out.push(guest_check(
                        format!("{name} guest agent"),
                        CheckStatus::Fail,
                        format!(
                            "{why}; the in-guest checks did not run (is qemu-guest-agent installed and the seed attached? see `cloud-init status` on the console)"
                        ),
                    ));
                    return out;
                }
            }
            if is_haos {
                out.push(
                    crate::probe::haos_check(client, spec, observed, vm, &obs.node, &name, opts)
                        .await,
                );
                return out;
            }
            let Some(b) = &vm.bootstrap else { return out };
            if let Some(_ts) = &b.tailscale {
                out.push(tailscale_check(client, spec, vm, &obs.node, &name, opts).await);
            }
            if let Some(d) = &b.docker {
                let argv: &[&str] = if d.compose {
                    &["docker", "compose", "version"]
                } else {
                    &["docker", "version"]
                };
                let what = argv.join(" ");
                out.push(
                    match exec(client, &obs.node, vm.vmid, argv, opts.exec_timeout).await {
                        Ok((0, o, _)) => guest_check(
                            format!("{name} {what}"),
                            CheckStatus::Pass,
                            if o.trim().is_empty() {
                                "exit 0".to_string()
                            } else {
                                first_line(&o)
                            },
                        ),
                        Ok((c, _, e)) => guest_check(
                            format!("{name} {what}"),
                            CheckStatus::Fail,
                            format!("exit {c}: {}", first_line(&e)),
                        ),
                        Err(e) => guest_check(
                            format!("{name} {what}"),
                            CheckStatus::Fail,
                            format!("could not run: {}", first_line(&e)),
                        ),
                    },
                );
            }
            let dirs = naas_dirs(vm);
            if !dirs.is_empty() {
                let script = dirs
                    .iter()
                    .map(|d| format!("test -d {d}"))
                    .collect::<Vec<_>>()
                    .join(" && ");
                let root = dirs.first().cloned().unwrap_or_default();
                let cname = format!("{name} {root} folders");
                out.push(
                    match exec(
                        client,
                        &obs.node,
                        vm.vmid,
                        &["sh", "-c", &script],
                        opts.exec_timeout,
                    )
                    .await
                    {
                        Ok((0, _, _)) => guest_check(
                            cname,
                            CheckStatus::Pass,
                            format!("{} folders exist", dirs.len()),
                        ),
                        Ok((c, _, _)) => guest_check(
                            cname,
                            CheckStatus::Fail,
                            format!("missing (test -d exit {c}); expected {}", dirs.join(" ")),
                        ),
                        Err(e) => guest_check(
                            cname,
                            CheckStatus::Fail,
                            format!("could not run: {}", first_line(&e)),
                        ),
                    },
                );
            }
            out
        });
    }
    futures_util::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn tailscale_check(
    client: &PveClient,
    spec: &Spec,
    vm: &Vm,
    node: &str,
    name: &str,
    opts: &GuestCheckOptions,
) -> Check {
    let cname = format!("{name} tailscale");
    let (code, o, e) = match exec(
        client,
        node,
        vm.vmid,
        &["tailscale", "status", "--json"],
        opts.exec_timeout,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            return guest_check(
                cname,
                CheckStatus::Fail,
                format!(
                    "could not run `tailscale status --json`: {}",
                    first_line(&e)
                ),
            );
        }
    };
    if code != 0 && o.trim().is_empty() {
        return guest_check(
            cname,
            CheckStatus::Fail,
            format!(
                "`tailscale status --json` exit {code}: {} (check the auth key reference and `cloud-init status` in the guest)",
                first_line(&e)
            ),
        );
    }
    let doc: serde_json::Value = match serde_json::from_str(&o) {
        Ok(v) => v,
        Err(_) => {
            return guest_check(
                cname,
                CheckStatus::Fail,
                "`tailscale status --json` did not print JSON",
            );
        }
    };
    let backend = doc
        .get("BackendState")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown");
    if backend != "Running" {
        return guest_check(
            cname,
            CheckStatus::Fail,
            format!(
                "backend is {backend}, not Running (the join failed: a used-up or expired auth key shows as NeedsLogin)"
            ),
        );
    }
    let want = expected_routes(spec, vm);
    if want.is_empty() {
        return guest_check(cname, CheckStatus::Pass, "backend Running");
    }
    let have: BTreeSet<String> = ["PrimaryRoutes", "AllowedIPs"]
        .iter()
        .filter_map(|k| doc.get("Self").and_then(|s| s.get(*k)))
        .filter_map(|v| v.as_array())
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let missing: Vec<String> = want
        .iter()
        .map(|c| c.to_string())
        .filter(|c| !have.contains(c))
        .collect();
    if missing.is_empty() {
        guest_check(
            cname,
            CheckStatus::Pass,
            format!(
                "backend Running; routes {}",
                want.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else {
        guest_check(
            cname,
            CheckStatus::Fail,
            format!(
                "backend Running but route(s) {} are not active: approve them in the Tailscale admin console (or with autoApprovers)",
                missing.join(", ")
            ),
        )
    }
}

/// The first IPv4 address (not loopback) the guest agent of `vmid` reports.
pub(crate) async fn guest_ipv4(
    client: &PveClient,
    node: &str,
    vmid: u32,
) -> Result<String, String> {
    let ifs = client
        .agent_network_interfaces(node, vmid)
        .await
        .map_err(|e| first_line(&e.to_string()))?;
    ifs.iter()
        .filter(|i| i.name != "lo")
        .flat_map(|i| i.ip_addresses.iter())
        .find(|a| a.ip_address_type == "ipv4" && !a.ip_address.starts_with("127."))
        .map(|a| a.ip_address.clone())
        .ok_or_else(|| "the guest agent reports no IPv4 address".to_string())
}

/// The spec's `validationChecks` (HTTP status checks). A check with `fromVm` runs
/// `curl` inside that VM through its guest agent; `{vm:NAME}` in the URL becomes the
/// address NAME's agent reports. A check without `fromVm` runs from the node's side of
/// the LAN: through a guest on the target's bridge (crate::probe::lan_vantage).
pub async fn http_checks(
    client: &PveClient,
    spec: &Spec,
    observed: &Observed,
    opts: &GuestCheckOptions,
) -> Vec<Check> {
    let mut out = Vec::new();
    for c in &spec.validation_checks {
        if c.phase.is_some_and(|p| p > spec.phase) {
            continue;
        }
        let name = format!("check {}", c.name);
        let Some(http) = &c.http else {
            out.push(guest_check(
                name,
                CheckStatus::Skipped,
                "skipped: no probe declared",
            ));
            continue;
        };
        if !opts.enabled {
            out.push(guest_check(
                name,
                CheckStatus::Skipped,
                "skipped: in-guest checks are off (LABWRIGHT_GUEST_CHECKS=off)",
            ));
            continue;
        }
        let vm_of = |n: &str| {
            spec.vms
                .iter()
                .find(|v| v.name == n)
                .and_then(|v| observed.vms.get(&v.vmid).map(|o| (v.vmid, o.node.clone())))
        };
        // Without `fromVm`, the probe runs "from the node's side": a LAN guest on the
        // target's bridge (crate::probe), named in the output.
        let (from, picked) = match &http.from_vm {
            Some(f) => (f.clone(), false),
            None => {
                let target = http
                    .url
                    .split_once("{vm:")
                    .and_then(|(_, r)| r.split_once('}'))
                    .and_then(|(t, _)| spec.vms.iter().find(|v| v.name == t));
                match crate::probe::lan_vantage(spec, observed, target) {
                    Some(v) => (v.name.clone(), true),
                    None => {
                        out.push(guest_check(
                            name,
                            CheckStatus::Skipped,
                            format!(
                                "skipped: {} is fetched from the node's side of the LAN, and no running guest with a cloud image and an agent is there to run it; set `fromVm`",
                                http.url
                            ),
                        ));
                        continue;
                    }
                }
            }
        };
        let from = from.as_str();
        let from_label = if picked {
            format!("{from}, the LAN vantage point")
        } else {
            from.to_string()
        };
        let Some((from_id, from_node)) = vm_of(from) else {
            out.push(guest_check(
                name,
                CheckStatus::Fail,
                format!("`fromVm: {from}` is not a VM on the node"),
            ));
            continue;
        };
        // `{vm:NAME}` → the address NAME's guest agent reports.
        let mut url = http.url.clone();
        let mut bad = None;
        while let Some(start) = url.find("{vm:") {
            let Some(len) = url[start..].find('}') else {
                bad = Some("an unclosed `{vm:` in the URL".to_string());
                break;
            };
            let target = url[start + 4..start + len].to_string();
            let addr = match vm_of(&target) {
                None => Err(format!("`{target}` is not a VM on the node")),
                Some((id, node)) => guest_ipv4(client, &node, id).await,
            };
            match addr {
                Ok(a) => url.replace_range(start..start + len + 1, &a),
                Err(e) => {
                    bad = Some(format!("address of {target}: {e}"));
                    break;
                }
            }
        }
        if let Some(why) = bad {
            out.push(guest_check(name, CheckStatus::Fail, why));
            continue;
        }
        out.push(
            match crate::probe::curl_status(client, &from_node, from_id, &url, opts).await {
                Ok(code) if code == http.expect_status => guest_check(
                    name,
                    CheckStatus::Pass,
                    format!("{url} answered {code} (from {from_label})"),
                ),
                Ok(code) => guest_check(
                    name,
                    CheckStatus::Fail,
                    format!(
                        "{url} answered {code}, expected {} (from {from_label})",
                        http.expect_status
                    ),
                ),
                Err(e) => guest_check(
                    name,
                    CheckStatus::Fail,
                    format!("curl {url} in {from_label} gave no status: {e}"),
                ),
            },
        );
    }
    out
}

/// After a passing validate: detaches each declared VM's seed CD and deletes the seed
/// volume, so the auth key no longer sits on the node. Reported as checks, so the
/// output says what happened; when validate did not pass, the seeds are kept (and
/// the output says so) because a failed first boot may need them again.
pub async fn cleanup_seeds(
    client: &PveClient,
    spec: &Spec,
    observed: &Observed,
    ok: bool,
    wait: &WaitOptions,
) -> Vec<Check> {
    let want = crate::desired::desired(spec);
    let storage = iso_storage(spec);
    let mut out = Vec::new();
    for dvm in want.vms.values() {
        let Some(obs) = observed.vms.get(&dvm.vmid) else {
            continue;
        };
        let Some(cfg) = &obs.config else { continue };
        let Some(attached) = cfg.get(SEED_SLOT) else {
            continue;
        };
        let volid = attached.split(',').next().unwrap_or_default().to_string();
        let prefix = format!("{storage}:iso/lw-seed-{}-", dvm.vmid);
        if !volid.starts_with(&prefix) {
            continue;
        }
        let name = format!("vm/{} {} seed removed", dvm.vmid, dvm.name);
        if !ok {
            out.push(guest_check(
                name,
                CheckStatus::Skipped,
                format!(
                    "kept {volid} attached because validation did not pass (it holds the auth key until removed)"
                ),
            ));
            continue;
        }
        let res: Result<(), String> = async {
            let upid = client
                .qemu_update_config_async(&obs.node, dvm.vmid, Params::new(), &[SEED_SLOT], None)
                .await
                .map_err(|e| format!("detach {SEED_SLOT}: {e}"))?;
            wait_opt(client, upid, wait).await?;
            delete_volume(client, &obs.node, &storage, &volid, wait).await
        }
        .await;
        out.push(match res {
            Ok(()) => guest_check(
                name,
                CheckStatus::Pass,
                format!("detached {SEED_SLOT} and deleted {volid}: the auth key is no longer on the node"),
            ),
            Err(e) => guest_check(
                name,
                CheckStatus::Fail,
                format!("{e}; remove it by hand: `qm set {} --delete {SEED_SLOT}` and `pvesm free {volid}`", dvm.vmid),
            ),
        });
    }
    // Seeds no VM has attached any more (a re-seed's predecessor, an apply that failed
    // after the upload) still hold a key: they go too, once validate passes.
    let seeded: BTreeMap<u32, String> = spec
        .vms
        .iter()
        .filter(|v| want.vms.contains_key(&v.vmid) && needs_seed(v))
        .map(|v| (v.vmid, v.name.clone()))
        .collect();
    if !ok || seeded.is_empty() {
        return out;
    }
    let attached: BTreeSet<String> = observed
        .vms
        .values()
        .filter_map(|v| v.config.as_ref())
        .flat_map(|c| c.values())
        .filter_map(|v| v.split(',').next().map(str::to_string))
        .collect();
    let list = match client
        .storage_content(&want.node, &storage, Some("iso"), None)
        .await
    {
        Ok(l) => l,
        Err(e) => {
            out.push(guest_check(
                "stale seeds".into(),
                CheckStatus::Fail,
                format!(
                    "cannot list {storage} to remove stale seeds: {}",
                    first_line(&e.to_string())
                ),
            ));
            return out;
        }
    };
    for vol in list {
        let Some((vmid, name)) = seeded.iter().find(|(id, _)| {
            vol.volid
                .starts_with(&format!("{storage}:iso/lw-seed-{id}-"))
        }) else {
            continue;
        };
        if attached.contains(&vol.volid) {
            continue;
        }
        let cname = format!("vm/{vmid} {name} stale seed removed");
        out.push(
            match delete_volume(client, &want.node, &storage, &vol.volid, wait).await {
                Ok(()) => guest_check(
                    cname,
                    CheckStatus::Pass,
                    format!("deleted {} (no VM had it attached)", vol.volid),
                ),
                Err(e) => guest_check(
                    cname,
                    CheckStatus::Fail,
                    format!("{e}; remove it by hand: `pvesm free {}`", vol.volid),
                ),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_and_compression_the_node_can_do() {
        assert_eq!(
            image_file("https://x/y/debian-12-genericcloud-amd64.qcow2"),
            Ok("debian-12-genericcloud-amd64.qcow2".into())
        );
        assert_eq!(
            image_file("http://192.168.1.50:8000/haos_ova-16.3.img?x=1"),
            Ok("haos_ova-16.3.raw".into())
        );
        // PVE cannot decompress into `import` content: refused, with the way out.
        let e =
            image_file("https://github.com/a/16.3/haos_ova-16.3.qcow2.xz").expect_err("xz refused");
        assert!(
            e.contains("xz-compressed") && e.contains("install-haos.md"),
            "{e}"
        );
        assert!(image_file("https://x/y/img.qcow2.gz").is_err());
        assert_eq!(
            iso_compression("https://x/OPNsense-25.7-dvd-amd64.iso.bz2"),
            Ok(Some("bz2".into()))
        );
        assert_eq!(iso_compression("https://x/debian-12.iso"), Ok(None));
        assert!(iso_compression("https://x/a.iso.xz").is_err());
        assert!(image_file("https://x/y/image.iso").is_err());
        assert!(image_file("https://x/y/").is_err());
    }

    #[test]
    fn checksums_are_checked() {
        let hex = "a".repeat(64);
        assert_eq!(
            checksum_parts(&format!("sha256:{hex}")),
            Ok(("sha256".into(), hex.clone()))
        );
        assert!(checksum_parts("sha256:abc").is_err());
        assert!(checksum_parts(&format!("crc32:{hex}")).is_err());
        assert!(checksum_parts(&hex).is_err());
    }

    #[test]
    fn marker_round_trip() {
        let d = with_marker("Tailscale entry point.", "lw-100-0123");
        assert_eq!(d, "Tailscale entry point.\nlabwright-seed: lw-100-0123");
        assert_eq!(seed_marker(&d).as_deref(), Some("lw-100-0123"));
        assert_eq!(strip_seed_marker(&d), "Tailscale entry point.");
        let again = with_marker(&d, "lw-100-4567");
        assert_eq!(seed_marker(&again).as_deref(), Some("lw-100-4567"));
        assert_eq!(again.matches(SEED_MARKER).count(), 1);
        assert_eq!(with_marker("", "lw-1"), "labwright-seed: lw-1");
    }

    #[test]
    fn a_seed_cd_pending_removal_needs_no_reboot() {
        let mut obs = ObservedVm {
            vmid: 100,
            node: "proxmox".into(),
            name: "edge-gateway".into(),
            status: "running".into(),
            tags: Vec::new(),
            lock: None,
            template: false,
            config: Some(BTreeMap::from([("memory".to_string(), "2048".to_string())])),
            digest: None,
            pending: BTreeSet::from(["ide2".to_string()]),
            tool_snapshots: Vec::new(),
        };
        assert!(reboot_pending(&obs).is_empty());
        obs.pending.insert("memory".into());
        assert_eq!(reboot_pending(&obs), BTreeSet::from(["memory".to_string()]));
        // A CD that is being attached (present in the config) does count.
        if let Some(c) = obs.config.as_mut() {
            c.insert("ide2".into(), "local:iso/x.iso,media=cdrom".into());
        }
        assert!(reboot_pending(&obs).contains("ide2"));
    }

    #[test]
    fn import_syntax() {
        assert_eq!(
            import_value("local-lvm:16,cache=none,discard=on", "local:import/d.qcow2"),
            "local-lvm:0,import-from=local:import/d.qcow2,cache=none,discard=on"
        );
        assert_eq!(
            import_value("local-lvm:16", "local:import/d.qcow2"),
            "local-lvm:0,import-from=local:import/d.qcow2"
        );
    }
}
