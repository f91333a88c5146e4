//! The router kind's steps: upload the seed CD, and wait for the router to answer on
//! its gateway addresses with its own MACs.

use std::time::Instant;

use labwright_host::HostExec;
use labwright_pve::api::storage::UploadRequest;
use serde::{Deserialize, Serialize};

use super::probe::{self, ProbeNs, Reach};
use crate::error::StepError;
use crate::op::{ExecCx, Step};

/// One internal link of the router as the gate checks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyLink {
    /// The spec's interface key (`services`).
    pub name: String,
    /// The router VM's NIC slot (`net1`).
    pub nic: String,
    /// The MAC labwright gave that NIC.
    pub mac: String,
    pub ns: ProbeNs,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum RouterOp {
    /// Renders the seed again from the spec (it must hash as planned) and uploads it
    /// to ISO storage unless a file of that name is there.
    UploadSeed {
        node: String,
        vmid: u32,
        storage: String,
        file: String,
        config_sha256: String,
    },
    /// From a probe namespace on each link's bridge, waits until the gateway address
    /// answers from the router NIC's MAC.
    WaitReady {
        node: String,
        vmid: u32,
        links: Vec<ReadyLink>,
    },
}

impl Step for RouterOp {
    fn api_calls(&self) -> Vec<String> {
        match self {
            RouterOp::UploadSeed {
                node,
                storage,
                file,
                ..
            } => vec![
                format!("GET /nodes/{node}/storage/{storage}/content content=iso"),
                format!(
                    "POST /nodes/{node}/storage/{storage}/upload content=iso filename={file} (config.xml, no secret)"
                ),
            ],
            RouterOp::WaitReady { links, .. } => {
                let mut v = Vec::new();
                for l in links {
                    v.push(format!("SSH {} (a leftover, if any)", l.ns.unlink()));
                    v.extend(l.ns.setup().iter().map(|c| format!("SSH {c}")));
                    v.push(format!("SSH {}", l.ns.connect(l.ns.gateway, 53)));
                    v.push(format!("SSH {}", l.ns.neigh(l.ns.gateway)));
                    v.push(format!("SSH {}", l.ns.teardown()));
                }
                v
            }
        }
    }

    async fn run(&self, cx: &ExecCx<'_>) -> Result<(), StepError> {
        match self {
            RouterOp::UploadSeed {
                node,
                vmid,
                storage,
                file,
                config_sha256,
            } => upload_seed(cx, node, *vmid, storage, file, config_sha256).await,
            RouterOp::WaitReady { vmid, links, .. } => {
                let host = crate::storage::op::host(cx)?;
                wait_ready(cx, host, *vmid, links).await
            }
        }
    }
}

async fn upload_seed(
    cx: &ExecCx<'_>,
    node: &str,
    vmid: u32,
    storage: &str,
    file: &str,
    planned: &str,
) -> Result<(), StepError> {
    let spec = cx.seeds.spec.as_ref().ok_or_else(|| {
        StepError::Refused(format!(
            "VM {vmid}: the router seed is rendered from the spec, and this apply was given none"
        ))
    })?;
    let seed = super::render_seed(spec)
        .map_err(|e| StepError::Refused(format!("the router seed for VM {vmid}: {e}")))?;
    if seed.config_sha256 != planned {
        return Err(StepError::Refused(format!(
            "VM {vmid}: `router:` or the matrix changed since the plan was made (config {} planned, {} now); run `labwright plan` again",
            &planned[..planned.len().min(8)],
            &seed.config_sha256[..8]
        )));
    }
    let volid = format!("{storage}:iso/{file}");
    let have = cx
        .client
        .storage_content(node, storage, Some("iso"), None)
        .await
        .map_err(StepError::ctx(format!("list {storage}'s ISO files")))?;
    if have.iter().any(|c| c.volid == volid) {
        return Ok(());
    }
    let sha = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(&seed.bytes))
    };
    let upload = UploadRequest {
        content: "iso".into(),
        filename: file.to_string(),
        data: seed.bytes,
        checksum: Some(("sha256".into(), sha)),
    };
    let upid = cx
        .client
        .storage_upload(node, storage, &upload)
        .await
        .map_err(StepError::ctx(format!("upload the router seed {volid}")))?;
    cx.client
        .wait_task(&upid, cx.wait)
        .await
        .map_err(StepError::ctx(format!("upload the router seed {volid}")))?;
    Ok(())
}

/// What one look at a link found.
enum Look {
    Ready,
    /// Someone else answers for the gateway address.
    WrongMac(String),
    NotYet(String),
}

async fn look(host: &dyn HostExec, link: &ReadyLink) -> Result<Look, String> {
    let mac = link.mac.to_ascii_uppercase();
    probe::with_ns(host, &link.ns, async |h, ns| {
        // Any packet toward the gateway makes it answer ARP; DNS is what devices on
        // the segment use it for.
        let reach = probe::connect(h, ns, ns.gateway, 53).await;
        if let Reach::Error(e) = &reach {
            return Err(e.clone());
        }
        let out = h
            .run(&ns.neigh(ns.gateway))
            .await
            .map_err(|e| e.to_string())?;
        Ok(match probe::neigh_mac(&out.stdout) {
            Some(m) if m == mac => Look::Ready,
            Some(m) => Look::WrongMac(m),
            None => Look::NotYet(format!(
                "no ARP answer for {} ({})",
                ns.gateway,
                reach.words()
            )),
        })
    })
    .await
}

async fn wait_ready(
    cx: &ExecCx<'_>,
    host: &dyn HostExec,
    vmid: u32,
    links: &[ReadyLink],
) -> Result<(), StepError> {
    let deadline = Instant::now() + cx.settings.router_wait;
    let mut pending: Vec<&ReadyLink> = links.iter().collect();
    let mut last = String::new();
    loop {
        let mut still = Vec::new();
        for l in pending {
            match look(host, l).await.map_err(StepError::Refused)? {
                Look::Ready => {
                    (cx.progress)(&format!("{} answers on {}", l.ns.gateway, l.ns.bridge));
                }
                Look::WrongMac(m) => {
                    return Err(StepError::Refused(format!(
                        "{} on {} answers from {m}, not from VM {vmid}'s {} ({}): another device holds the router's address; find it (`ip neigh` on a host of that segment) and free the address, then run apply again. Guests were not moved.",
                        l.ns.gateway, l.ns.bridge, l.nic, l.mac
                    )));
                }
                Look::NotYet(why) => {
                    last = why;
                    still.push(l);
                }
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let l = still[0];
            return Err(StepError::Refused(format!(
                "VM {vmid} does not answer on {} ({}) after {}s: {last}. If this is its first boot, do the console step ({}) and run apply again; otherwise see docs/runbooks/router-unreachable.md. Guests were not moved.",
                l.ns.gateway,
                l.ns.bridge,
                cx.settings.router_wait.as_secs(),
                super::FIRST_BOOT_RUNBOOK
            )));
        }
        pending = still;
        tokio::time::sleep(cx.settings.router_poll).await;
    }
}
