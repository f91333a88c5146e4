//! Running bootstrap steps: downloads, grows, and the seed rendered at apply time.

use super::*;
use crate::error::StepError;

// ---------------------------------------------------------------- apply

pub(crate) async fn wait_opt(
    client: &PveClient,
    upid: Option<labwright_pve::Upid>,
    opts: &WaitOptions,
) -> Result<(), StepError> {
    if let Some(u) = upid {
        client
            .wait_task(&u, *opts)
            .await
            .map_err(StepError::ctx("wait for the task"))?;
    }
    Ok(())
}

/// Runs one bootstrap step. Errors are for people: they name the step, the VM and,
/// for secrets, the reference, never a value.
pub(crate) async fn run_boot_op(
    client: &PveClient,
    op: &BootOp,
    boot: &SeedSource,
    wait: &WaitOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), StepError> {
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
                .map_err(StepError::ctx(format!("list {storage} ({content})")))?;
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
                .map_err(StepError::ctx(format!("download {url} to {volid}")))?;
            // Images are large: the node may need far longer than a config task.
            let opts = WaitOptions {
                timeout: wait.timeout.max(Duration::from_secs(3600)),
                ..*wait
            };
            // While the node downloads, its task log says how far it is: read the
            // last lines now and then and pass the newest percent on.
            let done = client.wait_task(&upid, opts);
            tokio::pin!(done);
            let mut last = String::new();
            loop {
                tokio::select! {
                    r = &mut done => {
                        r.map_err(StepError::ctx(format!("download {url} to {volid}")))?;
                        return Ok(());
                    }
                    () = tokio::time::sleep(Duration::from_millis(500)) => {
                        if let Ok(lines) = client.task_log_tail(&upid, 3).await
                            && let Some(p) = lines.iter().rev().find_map(|l| percent_of(l))
                            && p != last
                        {
                            progress(&format!("downloading {filename}: {p}"));
                            last = p;
                        }
                    }
                }
            }
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
                .map_err(StepError::ctx(format!("read the config of VM {vmid}")))?;
            let raw = cfg.get(disk).ok_or_else(|| {
                StepError::Refused(format!("VM {vmid} has no {disk} after the import"))
            })?;
            let drive = Drive::parse(raw)
                .map_err(|e| StepError::Refused(format!("VM {vmid} {disk}: {e}")))?;
            let have = match drive.size_bytes() {
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    return Err(StepError::Refused(format!("VM {vmid} {disk} size: {e}")));
                }
                None => 0,
            };
            if have > *size_bytes {
                return Err(StepError::Refused(format!(
                    "VM {vmid}: the imported image made {disk} {} but the spec declares {size}; disks never shrink: raise `disks.{disk}.size` to at least the image size",
                    labwright_spec::types::Size(have)
                )));
            }
            if have == *size_bytes {
                return Ok(());
            }
            let upid = client
                .qemu_resize(node, *vmid, disk, size, cfg.digest.as_deref())
                .await
                .map_err(StepError::ctx(format!(
                    "grow {disk} of VM {vmid} to {size}"
                )))?;
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

pub(crate) struct SeedStep<'a> {
    pub(crate) node: &'a str,
    pub(crate) vmid: u32,
    pub(crate) storage: &'a str,
    pub(crate) instance_id: &'a str,
    pub(crate) volume_file: &'a str,
    pub(crate) reboot: bool,
}

pub(crate) async fn run_seed(
    client: &PveClient,
    boot: &SeedSource,
    wait: &WaitOptions,
    s: SeedStep<'_>,
) -> Result<(), StepError> {
    let vmid = s.vmid;
    let spec = boot.spec.as_ref().ok_or_else(|| {
        StepError::Refused(format!(
            "VM {vmid}: a seed is rendered from the spec, and this apply was given none"
        ))
    })?;
    let vm = spec.vms.iter().find(|v| v.vmid == vmid).ok_or_else(|| {
        StepError::Refused(format!(
            "VM {vmid} is not in the spec any more; run plan again"
        ))
    })?;
    let cfg = client
        .qemu_config(s.node, vmid)
        .await
        .map_err(StepError::ctx(format!("read the config of VM {vmid}")))?;
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
        .map_err(|e| StepError::Secret(format!("seed for VM {vmid}: {e}")))?;
    if seed.plan.instance_id != s.instance_id {
        return Err(StepError::Refused(format!(
            "VM {vmid}: the bootstrap in the spec changed since the plan was made (seed {} planned, {} now); run `labwright plan` again",
            s.instance_id, seed.plan.instance_id
        )));
    }
    let iso = labwright_cloudinit::build_iso(&seed)
        .map_err(|e| StepError::Refused(format!("seed for VM {vmid}: {e}")))?;
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
        .map_err(StepError::ctx(format!("upload the seed {volid}")))?;
    client
        .wait_task(&upid, *wait)
        .await
        .map_err(StepError::ctx(format!("upload the seed {volid}")))?;
    let description = with_marker(cfg.get("description").unwrap_or_default(), s.instance_id);
    let mut p = Params::new();
    p.insert(SEED_SLOT, format!("{volid},media=cdrom"));
    p.insert("description", description);
    // `boot` is left as created (`order=<boot disk>`): the CD is found by its
    // `cidata` label, never booted.
    let upid = client
        .qemu_update_config_async(s.node, vmid, p, &[], cfg.digest.as_deref())
        .await
        .map_err(StepError::ctx(format!("attach the seed to VM {vmid}")))?;
    wait_opt(client, upid, wait).await?;
    if s.reboot {
        let upid = client
            .qemu_reboot(s.node, vmid, Some(120))
            .await
            .map_err(StepError::ctx(format!(
                "reboot VM {vmid} into its new seed"
            )))?;
        client
            .wait_task(&upid, *wait)
            .await
            .map_err(StepError::ctx(format!(
                "reboot VM {vmid} into its new seed"
            )))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- validate

/// Deletes a volume and checks it is gone. The task id of `imgdel` carries the volume
/// id (with its `:`), which not every UPID reader accepts, so the result is verified
/// by listing the storage rather than only by the task.
pub(crate) async fn delete_volume(
    client: &PveClient,
    node: &str,
    storage: &str,
    volid: &str,
    wait: &WaitOptions,
) -> Result<(), StepError> {
    let upid = client
        .storage_delete_volume(node, storage, volid)
        .await
        .map_err(StepError::ctx(format!("delete {volid}")))?;
    wait_opt(client, upid, wait).await?;
    // The listing confirms it: a seed left behind would keep the auth key on the node.
    let start = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let list = client
            .storage_content(node, storage, Some("iso"), None)
            .await
            .map_err(StepError::ctx(format!("list {storage}")))?;
        if !list.iter().any(|v| v.volid == volid) {
            return Ok(());
        }
        if start.elapsed() >= wait.timeout.min(Duration::from_secs(60)) {
            return Err(StepError::Refused(format!(
                "{volid} is still on {storage} after deleting it"
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// The last `NN%` / `NN.NN%` in a task-log line.
pub(crate) fn percent_of(line: &str) -> Option<String> {
    let end = line.rfind('%')?;
    let start = line[..end]
        .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(0, |i| i + 1);
    let num = &line[start..end];
    (!num.is_empty() && num.chars().any(|c| c.is_ascii_digit())).then(|| format!("{num}%"))
}
