//! `phase-gate`: resources of a later phase are deferred. They are reported (so the
//! whole lab stays visible) and the planner skips them.

use labwright_spec::model::Phase;
use labwright_spec::{Diagnostic, YamlPath};

use crate::{Ctx, root};

fn defer(ctx: &mut Ctx<'_>, what: String, phase: Phase, path: &YamlPath) {
    let now = ctx.spec().phase;
    if phase > now {
        ctx.emit_at_key(
            Diagnostic::advice(
                "phase-gate",
                format!(
                    "{what} is deferred to phase {} (the lab is in phase {})",
                    phase.0, now.0
                ),
            )
            .label(format!("phase {}", phase.0))
            .help(format!(
                "it will be planned once `phase: {}` is set",
                phase.0
            )),
            path,
        );
    }
}

pub(crate) fn run(ctx: &mut Ctx<'_>) {
    let spec = ctx.spec();
    for (name, s) in &spec.networks.segments {
        defer(
            ctx,
            format!("segment `{name}`"),
            s.phase,
            &root().key("networks").key("segments").key(name.clone()),
        );
    }
    for (name, b) in &spec.networks.bridges {
        defer(
            ctx,
            format!("bridge `{name}`"),
            b.phase,
            &root().key("networks").key("bridges").key(name.clone()),
        );
    }
    for (i, vm) in spec.vms.iter().enumerate() {
        let vp = root().key("vms").index(i);
        defer(ctx, format!("VM {} `{}`", vm.vmid, vm.name), vm.phase, &vp);
        // An active VM must not depend on a deferred bridge: it could not be built.
        if vm.phase <= spec.phase {
            for (slot, nic) in &vm.nics {
                let bridge = nic.bridge_in(spec.phase);
                if let Some(b) = spec.networks.bridges.get(bridge)
                    && b.phase > spec.phase
                {
                    let key = if nic.reattach.as_ref().is_some_and(|r| r.bridge == bridge) {
                        "reattach"
                    } else {
                        "bridge"
                    };
                    ctx.emit(
                        Diagnostic::error(
                            "phase-gate",
                            format!(
                                "VM {} is active in phase {} but its {slot} uses bridge `{bridge}`, which is deferred to phase {}",
                                vm.vmid, spec.phase.0, b.phase.0
                            ),
                        )
                        .label("deferred bridge")
                        .help(format!(
                            "keep {slot} on an active bridge until phase {} (use `reattach: {{ phase: {}, bridge: {bridge} }}`)",
                            b.phase.0, b.phase.0
                        )),
                        &vp.key("nics").key(slot.clone()).key(key),
                    );
                }
            }
        }
        if vm.phase <= spec.phase {
            for (slot, nic) in &vm.nics {
                if let Some(r) = &nic.reattach {
                    defer(
                        ctx,
                        format!("moving {}'s {slot} to `{}`", vm.name, r.bridge),
                        r.phase,
                        &vp.key("nics").key(slot.clone()).key("reattach"),
                    );
                }
            }
        }
    }
    if let Some(b) = &spec.backups {
        for (i, j) in b.jobs.iter().enumerate() {
            defer(
                ctx,
                format!("backup job `{}`", j.id),
                j.phase,
                &root().key("backups").key("jobs").index(i),
            );
        }
    }
    if let Some(st) = &spec.storage {
        let sp = root().key("storage");
        for (i, p) in st.zfs_pools.iter().enumerate() {
            defer(
                ctx,
                format!("ZFS pool `{}`", p.name),
                p.phase,
                &sp.key("zfsPools").index(i),
            );
        }
        for (i, d) in st.datasets.iter().enumerate() {
            defer(
                ctx,
                format!("dataset `{}`", d.name),
                d.phase,
                &sp.key("datasets").index(i),
            );
        }
        for (i, s) in st.pve_storages.iter().enumerate() {
            defer(
                ctx,
                format!("storage `{}`", s.id),
                s.phase,
                &sp.key("pveStorages").index(i),
            );
        }
        for (i, m) in st.migrations.iter().enumerate() {
            defer(
                ctx,
                format!("migration `{}`", m.name),
                m.phase,
                &sp.key("migrations").index(i),
            );
        }
    }
    if let Some(m) = spec.firewall.as_ref().and_then(|f| f.matrix.as_ref()) {
        defer(
            ctx,
            "the segment matrix".to_string(),
            m.phase,
            &root().key("firewall").key("matrix"),
        );
    }
    if let Some(r) = &spec.router {
        defer(
            ctx,
            format!("router `{}`", r.vm),
            r.phase,
            &root().key("router"),
        );
    }
    if let Some(t) = &spec.tailscale {
        for (i, r) in t.subnet_routes.iter().enumerate() {
            defer(
                ctx,
                format!("route `{}` via `{}`", r.route, r.via),
                r.phase,
                &root().key("tailscale").key("subnetRoutes").index(i),
            );
        }
    }
    for (i, c) in spec.validation_checks.iter().enumerate() {
        if let Some(p) = c.phase {
            defer(
                ctx,
                format!("check `{}`", c.name),
                p,
                &root().key("validationChecks").index(i),
            );
        }
    }
}
