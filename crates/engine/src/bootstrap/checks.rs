//! Checks inside the guests after apply, through the guest agent, and the seeds'
//! removal once everything passes.

use super::*;

/// Expected advertised routes of a VM (segment names resolved to CIDRs).
pub(crate) fn expected_routes(spec: &Spec, vm: &Vm) -> Vec<Cidr> {
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
pub(crate) fn naas_dirs(vm: &Vm) -> Vec<String> {
    vm.bootstrap
        .as_ref()
        .and_then(|b| b.naas.as_ref())
        .map(labwright_cloudinit::naas_dirs)
        .unwrap_or_default()
}

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
                        Err(e) => not_run(format!("{name} {what}"), &e, ""),
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
                        Err(e) => not_run(cname, &e, ""),
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

pub(crate) async fn tailscale_check(
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
        Err(e) => return not_run(cname, &e, " `tailscale status --json`"),
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

/// address NAME's agent reports. A check without `fromVm` runs from the node's side of
/// the LAN: through a guest on the target's bridge (crate::probe::lan_vantage).
/// The spec's `validationChecks` (HTTP status checks). A check with `fromVm` runs
/// `curl` inside that VM through its guest agent; `{vm:NAME}` in the URL becomes the
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
                Err(e) if e.unsupported => not_run(name, &e, ""),
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
        let res: Result<(), crate::error::StepError> = async {
            let upid = client
                .qemu_update_config_async(&obs.node, dvm.vmid, Params::new(), &[SEED_SLOT], None)
                .await
                .map_err(crate::error::StepError::ctx(format!("detach {SEED_SLOT}")))?;
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
