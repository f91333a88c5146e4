//! naasctl's desired-state YAML → a labwright spec. One mapper per family; every
//! output value names its source, and whatever no mapper took is reported.

mod cx;
mod firewall;
mod infra;
pub mod schema;
mod vms;

use serde_json::Value;

use cx::Cx;
pub use cx::{Decision, Secret};

use crate::input::{Errors, ShapeError};
use crate::out::Node;
use crate::path::Path;

/// What the mapping produced before the report is written around it.
pub struct Mapped {
    pub doc: Node,
    pub decisions: Vec<Decision>,
    pub secrets: Vec<Secret>,
    pub skipped: Vec<(Path, String)>,
}

/// Maps the document. `lab` names the lab (from the file name).
pub fn map(
    root: &Value,
    lab: &str,
    is_secret: &dyn Fn(&Path) -> bool,
) -> Result<Mapped, Vec<ShapeError>> {
    let mut cx = Cx {
        e: Errors::default(),
        decisions: Vec::new(),
        secrets: Vec::new(),
        skipped: Vec::new(),
        node: None,
        is_secret,
        bridges_used: Vec::new(),
        ts_routes: Vec::new(),
    };
    let profiles = profile_list(&mut cx, root);
    let root_zfs = !cx
        .e
        .list(
            root.get("proxmoxNodeZfsCreate"),
            &Path::root().key("proxmoxNodeZfsCreate"),
        )
        .is_empty();
    let phase: u8 = u8::from(root_zfs);

    // Tailscale before the VMs: a VM that routes a subnet joins the tailnet.
    let tailscale = infra::tailscale(&mut cx, root);
    // VMs next: they fix the node name and the bridges in use.
    let mut power = vms::power_states(&mut cx, root);
    let mut vm_list = Node::seq();
    let vp = Path::root().key("vmProvision");
    for (i, item) in cx.e.list(root.get("vmProvision"), &vp).iter().enumerate() {
        if let Some(vm) = vms::vm(&mut cx, item, &vp.index(i), &mut power, None) {
            vm_list.push(vm);
        }
    }
    for (n, prof, pp) in &profiles {
        let lp = pp.key("vmProvision");
        for (i, item) in cx.e.list(prof.get("vmProvision"), &lp).iter().enumerate() {
            let ip = lp.index(i);
            let vmid = item.get("vmid").map(|v| v.to_string());
            if let Some(existing) = vmid.and_then(|id| vm_by_id(&mut vm_list, &id)) {
                vms::reattach(&mut cx, item, &ip, *n, existing);
            } else if let Some(vm) = vms::vm(&mut cx, item, &ip, &mut power, Some(*n)) {
                vm_list.push(vm);
            }
        }
    }
    for (vmid, (_, p)) in &power {
        cx.skip(
            p,
            format!("no vmProvision entry has VMID {vmid}: labwright declares a guest whole (cores, memory, disks), not its power state alone"),
        );
    }

    let mut bridges = Node::map();
    infra::bridges(
        &mut cx,
        root.get("networks"),
        &Path::root().key("networks"),
        None,
        &mut bridges,
    );
    for (n, prof, pp) in &profiles {
        for key in ["networks", "bridges"] {
            infra::bridges(&mut cx, prof.get(key), &pp.key(key), Some(*n), &mut bridges);
        }
    }
    for b in cx.bridges_used.clone() {
        if !bridges.has(&b) {
            let node = infra::undeclared_bridge(&mut cx, &b);
            bridges.set(&b, node);
        }
    }

    let mut pools = Node::seq();
    let mut datasets = Node::seq();
    let mut stores = Node::seq();
    let mut jobs = Node::seq();
    infra::zfs_pools(
        &mut cx,
        root.get("proxmoxNodeZfsCreate"),
        &Path::root().key("proxmoxNodeZfsCreate"),
        phase,
        &mut pools,
    );
    infra::storages(
        &mut cx,
        root.get("storage"),
        &Path::root().key("storage"),
        phase,
        &mut stores,
    );
    infra::backup_jobs(
        &mut cx,
        root.get("proxmoxBackupJobs"),
        &Path::root().key("proxmoxBackupJobs"),
        0,
        &mut jobs,
    );
    for (n, prof, pp) in &profiles {
        for key in ["proxmoxNodeZfsCreate", "zfsPools", "pools"] {
            infra::zfs_pools(&mut cx, prof.get(key), &pp.key(key), *n, &mut pools);
        }
        if let Some(z) = cx.e.map(prof.get("zfs"), &pp.key("zfs")).cloned() {
            let zp = pp.key("zfs");
            infra::zfs_pools(&mut cx, z.get("pools"), &zp.key("pools"), *n, &mut pools);
            infra::datasets(
                &mut cx,
                z.get("datasets"),
                &zp.key("datasets"),
                *n,
                &mut datasets,
            );
        }
        infra::datasets(
            &mut cx,
            prof.get("datasets"),
            &pp.key("datasets"),
            *n,
            &mut datasets,
        );
        for key in ["storages", "storage"] {
            infra::storages(&mut cx, prof.get(key), &pp.key(key), *n, &mut stores);
        }
        for key in ["proxmoxBackupJobs", "backupJobs"] {
            infra::backup_jobs(&mut cx, prof.get(key), &pp.key(key), *n, &mut jobs);
        }
    }

    let fw = firewall::firewall(&mut cx, root);
    let needs_mgmt = fw.as_ref().is_some_and(firewall_enabled);
    let safety = infra::safety(&mut cx, root, needs_mgmt);

    // The document, in the order of labwright's reference spec.
    let mut doc = Node::map();
    doc.set("apiVersion", Node::str("labwright/v1"));
    doc.set("kind", Node::str("Homelab"));
    let mut meta = Node::map();
    meta.set(
        "name",
        Node::str(lab).note("the input file's name: naasctl specs have no lab name"),
    );
    let owner = vm_list_owner(root);
    meta.set(
        "owner",
        match owner {
            Some((o, p)) => Node::str(&o).from(&p).note("the owner-* tag"),
            None => cx.decide(
                "LAB_OWNER",
                "who owns the lab (naasctl has no owner; it names the owner-* tag)",
            ),
        },
    );
    doc.set("metadata", meta);
    let mut node = Node::map();
    node.set(
        "name",
        match cx.node.clone() {
            Some(n) => Node::str(&n).note("the `node:` of the items above"),
            None => cx.decide(
                "PVE_NODE",
                "the Proxmox node's name (naasctl's items named none)",
            ),
        },
    );
    doc.set("node", node);
    doc.set(
        "phase",
        Node::int(u64::from(phase)).note(if phase == 1 {
            "naasctl creates a ZFS pool now: phase 1"
        } else {
            "naasctl's top level is what it applied now; its phase profiles are deferred"
        }),
    );
    doc.set("safetyGuards", safety);
    if !bridges.is_empty() {
        let mut nets = Node::map();
        nets.set("bridges", bridges);
        doc.set("networks", nets);
    }
    if let Some(t) = tailscale {
        doc.set("tailscale", t);
    }
    if !vm_list.is_empty() {
        doc.set("vms", vm_list);
    }
    if !jobs.is_empty() {
        let mut b = Node::map();
        b.set("jobs", jobs);
        doc.set("backups", b);
    }
    let mut storage = Node::map();
    for (k, v) in [
        ("zfsPools", pools),
        ("datasets", datasets),
        ("pveStorages", stores),
    ] {
        if !v.is_empty() {
            storage.set(k, v);
        }
    }
    if !storage.is_empty() {
        doc.set("storage", storage);
    }
    if let Some(f) = fw {
        doc.set("firewall", f);
    }
    if cx.e.0.is_empty() {
        Ok(Mapped {
            doc,
            decisions: cx.decisions,
            secrets: cx.secrets,
            skipped: cx.skipped,
        })
    } else {
        Err(cx.e.0)
    }
}

/// `profilesConfig.phase1` / `phase2` (naasctl's schema ignored them).
fn profile_list(cx: &mut Cx<'_>, root: &Value) -> Vec<(u8, serde_json::Map<String, Value>, Path)> {
    let pp = Path::root().key("profilesConfig");
    let Some(pc) = cx.e.map(root.get("profilesConfig"), &pp).cloned() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in &pc {
        let n = match k.as_str() {
            "phase1" => 1,
            "phase2" => 2,
            _ => continue,
        };
        if let Some(m) = cx.e.map(Some(v), &pp.key(k)).cloned() {
            out.push((n, m, pp.key(k)));
        }
    }
    out
}

/// The first `owner-*` tag of any VM.
fn vm_list_owner(root: &Value) -> Option<(String, Path)> {
    let vp = Path::root().key("vmProvision");
    for (i, vm) in root.get("vmProvision")?.as_array()?.iter().enumerate() {
        let tp = vp.index(i).key("tags");
        match vm.get("tags")? {
            Value::Array(a) => {
                for (j, t) in a.iter().enumerate() {
                    if let Some(o) = t.as_str().and_then(|t| t.strip_prefix("owner-")) {
                        return Some((o.to_string(), tp.index(j)));
                    }
                }
            }
            Value::String(s) => {
                if let Some(o) = s
                    .split([';', ',', ' '])
                    .find_map(|t| t.strip_prefix("owner-"))
                {
                    return Some((o.to_string(), tp));
                }
            }
            _ => {}
        }
    }
    None
}

/// The output VM with this VMID (as printed), if one was emitted.
fn vm_by_id<'n>(list: &'n mut Node, vmid: &str) -> Option<&'n mut Node> {
    use crate::out::Val;
    let Val::Seq(items) = &mut list.val else {
        return None;
    };
    items.iter_mut().find(|vm| {
        matches!(&vm.val, Val::Map(e) if e.iter().any(|(k, v)| k == "vmid"
            && matches!(&v.val, Val::Scalar(s) if s.trim_matches('"') == vmid.trim_matches('"'))))
    })
}

/// The datacenter firewall is switched on in the output.
fn firewall_enabled(fw: &Node) -> bool {
    use crate::out::Val;
    let Val::Map(levels) = &fw.val else {
        return false;
    };
    levels.iter().any(|(k, l)| {
        k == "datacenter"
            && matches!(&l.val, Val::Map(e) if e.iter().any(|(k, o)| k == "options"
                && matches!(&o.val, Val::Map(oe) if oe.iter().any(|(k, v)| k == "enable"
                    && matches!(&v.val, Val::Scalar(s) if s == "true")))))
    })
}
