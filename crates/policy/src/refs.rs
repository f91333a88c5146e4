//! `ref-unknown`: every name the spec uses is declared somewhere in it.

use labwright_spec::model::{BackupSelection, Spec};
use labwright_spec::types::Cidr;
use labwright_spec::{Diagnostic, YamlPath};

use crate::{Ctx, root};

fn unknown(what: &str, name: &str, candidates: &[String], declare_hint: &str) -> Diagnostic {
    let help = match labwright_spec::load::suggest(name, candidates) {
        Some(s) => format!("did you mean `{s}`?"),
        None if candidates.is_empty() => declare_hint.to_string(),
        None => format!("{declare_hint} (declared: {})", candidates.join(", ")),
    };
    Diagnostic::error("ref-unknown", format!("{what} `{name}` is not declared"))
        .label(format!("unknown {what}"))
        .help(help)
}

fn is_segment_or_cidr(spec: &Spec, s: &str) -> bool {
    spec.networks.segments.contains_key(s) || s.parse::<Cidr>().is_ok()
}

pub(crate) fn run(ctx: &mut Ctx<'_>) {
    let spec = ctx.spec();
    let bridges: Vec<String> = spec.networks.bridges.keys().cloned().collect();
    let segments: Vec<String> = spec.networks.segments.keys().cloned().collect();
    let vm_names: Vec<String> = spec.vms.iter().map(|v| v.name.clone()).collect();
    let bridge_hint = "declare it under `networks.bridges`";

    let check_bridge = |ctx: &mut Ctx<'_>, name: &str, path: &YamlPath| {
        if !spec.networks.bridges.contains_key(name) {
            ctx.emit(unknown("bridge", name, &bridges, bridge_hint), path);
        }
    };

    for (seg, s) in &spec.networks.segments {
        check_bridge(
            ctx,
            &s.bridge,
            &root()
                .key("networks")
                .key("segments")
                .key(seg.clone())
                .key("bridge"),
        );
    }
    for (i, vm) in spec.vms.iter().enumerate() {
        let vp = root().key("vms").index(i);
        for (slot, nic) in &vm.nics {
            let np = vp.key("nics").key(slot.clone());
            check_bridge(ctx, &nic.bridge, &np.key("bridge"));
            if let Some(r) = &nic.reattach {
                check_bridge(ctx, &r.bridge, &np.key("reattach").key("bridge"));
            }
        }
        if let Some(ts) = vm.bootstrap.as_ref().and_then(|b| b.tailscale.as_ref()) {
            for (j, r) in ts.advertise_routes.iter().enumerate() {
                if !is_segment_or_cidr(spec, r) {
                    ctx.emit(
                        unknown(
                            "segment",
                            r,
                            &segments,
                            "name a segment under `networks.segments` or write a CIDR",
                        ),
                        &vp.key("bootstrap")
                            .key("tailscale")
                            .key("advertiseRoutes")
                            .index(j),
                    );
                }
            }
        }
    }

    if let Some(ts) = &spec.tailscale {
        for (i, r) in ts.subnet_routes.iter().enumerate() {
            let p = root().key("tailscale").key("subnetRoutes").index(i);
            if !is_segment_or_cidr(spec, &r.route) {
                ctx.emit(
                    unknown(
                        "segment",
                        &r.route,
                        &segments,
                        "name a segment or write a CIDR",
                    ),
                    &p.key("route"),
                );
            }
            match spec.vm_by_name(&r.via) {
                None => ctx.emit(
                    unknown("VM", &r.via, &vm_names, "declare the VM under `vms`"),
                    &p.key("via"),
                ),
                Some(vm)
                    if vm
                        .bootstrap
                        .as_ref()
                        .and_then(|b| b.tailscale.as_ref())
                        .is_none()
                        && vm.role.as_deref().is_none_or(|r| r != "firewall-router") =>
                {
                    ctx.emit(
                        Diagnostic::error(
                            "ref-unknown",
                            format!(
                                "`{}` routes `{}` but does not join the tailnet",
                                r.via, r.route
                            ),
                        )
                        .label("not a tailnet member")
                        .help(format!("add `bootstrap.tailscale` to VM `{}`", r.via)),
                        &p.key("via"),
                    );
                }
                Some(_) => {}
            }
        }
    }
    if spec.vms.iter().any(|v| {
        v.bootstrap
            .as_ref()
            .and_then(|b| b.tailscale.as_ref())
            .is_some_and(|t| t.auth_key.is_none())
    }) && spec
        .tailscale
        .as_ref()
        .and_then(|t| t.auth_key.as_ref())
        .is_none()
        && let Some((i, _)) = spec.vms.iter().enumerate().find(|(_, v)| {
            v.bootstrap
                .as_ref()
                .and_then(|b| b.tailscale.as_ref())
                .is_some_and(|t| t.auth_key.is_none())
        })
    {
        ctx.emit_at_key(
            Diagnostic::error(
                "ref-unknown",
                "Tailscale join without an auth key reference",
            )
            .label("no auth key")
            .help("set `tailscale.authKey: env:TAILSCALE_AUTHKEY` (or `authKey` on this VM)"),
            &root().key("vms").index(i).key("bootstrap").key("tailscale"),
        );
    }

    if let Some(r) = &spec.router {
        let rp = root().key("router");
        match spec.vm_by_name(&r.vm) {
            None => ctx.emit(
                unknown("VM", &r.vm, &vm_names, "declare the router VM under `vms`"),
                &rp.key("vm"),
            ),
            Some(vm) => {
                for (name, itf) in &r.interfaces {
                    let ip = rp.key("interfaces").key(name.clone());
                    if !vm.nics.contains_key(&itf.nic) {
                        let nics: Vec<String> = vm.nics.keys().cloned().collect();
                        ctx.emit(
                            unknown(
                                "NIC",
                                &itf.nic,
                                &nics,
                                "declare it under the router VM's `nics`",
                            ),
                            &ip.key("nic"),
                        );
                    }
                    if !spec.networks.segments.contains_key(&itf.segment) {
                        ctx.emit(
                            unknown(
                                "segment",
                                &itf.segment,
                                &segments,
                                "declare it under `networks.segments`",
                            ),
                            &ip.key("segment"),
                        );
                    }
                }
            }
        }
    }

    if let Some(b) = &spec.backups {
        for (i, job) in b.jobs.iter().enumerate() {
            if let BackupSelection::Vmids(ids) = &job.selection {
                for (j, id) in ids.iter().enumerate() {
                    if !spec.vms.iter().any(|v| v.vmid == *id) {
                        ctx.emit(
                            Diagnostic::warning(
                                "ref-unknown",
                                format!("backup job `{}` selects VM {id}, which this spec does not declare", job.id),
                            )
                            .label("undeclared VM")
                            .help("labwright will back it up if it exists, but cannot check it"),
                            &root().key("backups").key("jobs").index(i).key("selection").key("vmids").index(j),
                        );
                    }
                }
            }
        }
    }

    if let Some(st) = &spec.storage {
        let pools: Vec<String> = st.zfs_pools.iter().map(|p| p.name.clone()).collect();
        let sp = root().key("storage");
        for (i, d) in st.datasets.iter().enumerate() {
            let pool = d.name.split('/').next().unwrap_or_default();
            if !d.name.contains('/') || !pools.iter().any(|p| p == pool) {
                ctx.emit(
                    unknown(
                        "ZFS pool",
                        pool,
                        &pools,
                        "datasets are `pool/name` with the pool under `storage.zfsPools`",
                    ),
                    &sp.key("datasets").index(i).key("name"),
                );
            }
        }
        for (i, s) in st.pve_storages.iter().enumerate() {
            if let Some(pool) = &s.pool {
                let base = pool.split('/').next().unwrap_or_default();
                if !pools.iter().any(|p| p == base) {
                    ctx.emit(
                        unknown(
                            "ZFS pool",
                            base,
                            &pools,
                            "declare it under `storage.zfsPools`",
                        ),
                        &sp.key("pveStorages").index(i).key("pool"),
                    );
                }
            }
        }
        for (i, m) in st.migrations.iter().enumerate() {
            let mp = sp.key("migrations").index(i);
            if let Some(job) = m.from.strip_prefix("backup-job:") {
                let jobs: Vec<String> = spec
                    .backups
                    .iter()
                    .flat_map(|b| b.jobs.iter().map(|j| j.id.clone()))
                    .collect();
                if !jobs.iter().any(|j| j == job) {
                    ctx.emit(
                        unknown("backup job", job, &jobs, "declare it under `backups.jobs`"),
                        &mp.key("from"),
                    );
                }
                let storages: Vec<String> = st.pve_storages.iter().map(|s| s.id.clone()).collect();
                if !storages.contains(&m.to) {
                    ctx.emit(
                        unknown(
                            "PVE storage",
                            &m.to,
                            &storages,
                            "declare it under `storage.pveStorages`",
                        ),
                        &mp.key("to"),
                    );
                }
            } else if let Some(rest) = m.from.strip_prefix("vm:") {
                let vmid = rest.split(':').next().and_then(|v| v.parse::<u32>().ok());
                match vmid {
                    Some(id) if spec.vms.iter().any(|v| v.vmid == id) => {}
                    _ => ctx.emit(
                        Diagnostic::error(
                            "ref-unknown",
                            format!("`{}` does not name a declared VM", m.from),
                        )
                        .label("unknown source")
                        .help("write `vm:<vmid>:<path>` with a VMID from `vms`"),
                        &mp.key("from"),
                    ),
                }
                let datasets: Vec<String> = st.datasets.iter().map(|d| d.name.clone()).collect();
                if !datasets.contains(&m.to) {
                    ctx.emit(
                        unknown(
                            "dataset",
                            &m.to,
                            &datasets,
                            "declare it under `storage.datasets`",
                        ),
                        &mp.key("to"),
                    );
                }
            } else {
                ctx.emit(
                    Diagnostic::error(
                        "ref-unknown",
                        format!("migration source `{}` is not understood", m.from),
                    )
                    .label("unknown source")
                    .help("write `vm:<vmid>:<path>` or `backup-job:<id>`"),
                    &mp.key("from"),
                );
            }
        }
    }
}
