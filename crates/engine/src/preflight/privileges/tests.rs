use std::collections::BTreeMap;

use serde_json::Value;

use super::table::{ENDPOINTS, Extra};
use super::*;

/// The schema's methods by (method, path).
fn schema() -> BTreeMap<(String, String), Value> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/data/apidata-9.1.3.json");
    let text = std::fs::read_to_string(&path).expect("the API schema");
    let tree: Value = serde_json::from_str(&text).expect("schema JSON");
    let mut out = BTreeMap::new();
    fn walk(n: &Value, out: &mut BTreeMap<(String, String), Value>) {
        let path = n["path"].as_str().unwrap_or("").to_string();
        if let Some(info) = n["info"].as_object() {
            for (m, i) in info {
                out.insert((m.clone(), path.clone()), i.clone());
            }
        }
        for c in n["children"].as_array().into_iter().flatten() {
            walk(c, out);
        }
    }
    for n in tree.as_array().expect("schema top level") {
        walk(n, &mut out);
    }
    out
}

#[test]
fn table_matches_the_schema() {
    let schema = schema();
    let mut wrong = Vec::new();
    for e in ENDPOINTS {
        let Some(info) = schema.get(&(e.method.to_string(), e.path.to_string())) else {
            wrong.push(format!("{} {} is not in the schema", e.method, e.path));
            continue;
        };
        let want = info.get("permissions").cloned().unwrap_or(Value::Null);
        let have: Value = serde_json::from_str(e.permissions).expect("table JSON");
        if want != have {
            wrong.push(format!(
                "{} {}: the schema says {}",
                e.method,
                e.path,
                serde_json::to_string(&want).unwrap_or_default()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn handler_checks_are_announced_by_the_schema() {
    let schema = schema();
    for e in ENDPOINTS.iter().filter(|e| e.extra != Extra::None) {
        let info = &schema[&(e.method.to_string(), e.path.to_string())];
        let mut perms = info["permissions"].to_string();
        if matches!(e.extra, Extra::VmConfig | Extra::VmCreate) {
            // One handler path checks disks and bridges for create and update; the
            // create endpoint's description names them.
            perms.push_str(
                &schema[&("POST".to_string(), "/nodes/{node}/qemu".to_string())]["permissions"]
                    .to_string(),
            );
        }
        let params: BTreeMap<String, String> = [
            ("vmid", "100"),
            ("storage", "local"),
            ("scsi0", "local-lvm:8"),
            ("net0", "virtio,bridge=vmbr0"),
            ("add_storage", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut got = extra::needs(e, Paths::Concrete(&params), &params);
        got.extend(extra::needs(e, Paths::Generic, &params));
        assert!(!got.is_empty(), "{} {} adds nothing", e.method, e.path);
        for n in got {
            // VM config classes are the config endpoint's `any` list; the rest is
            // named in the description.
            let config = schema[&(
                "PUT".to_string(),
                "/nodes/{node}/qemu/{vmid}/config".to_string(),
            )]["permissions"]
                .to_string();
            assert!(
                perms.contains(&n.privilege)
                    || (n.privilege.starts_with("VM.Config.") && config.contains(&n.privilege)),
                "{} {}: {n} is not announced by its permissions: {perms}",
                e.method,
                e.path
            );
        }
    }
}

#[test]
fn every_privilege_is_a_pve_9_privilege() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/data/apidata-9.1.3.json"),
    )
    .expect("schema");
    let all = full_list();
    assert!(all.len() > 10, "{all:?}");
    for n in &all {
        assert!(n.path.starts_with('/'), "{n}");
        if !is_root_only(n) {
            assert!(
                text.contains(&format!("\"{}\"", n.privilege)),
                "{n} is unknown to PVE 9"
            );
        }
    }
    // What labwright cannot do without: create, configure, start VMs, upload seeds.
    for want in [
        "VM.Allocate@/vms",
        "VM.Config.Disk@/vms",
        "VM.Config.Network@/vms",
        "VM.PowerMgmt@/vms",
        "VM.Snapshot@/vms",
        "Datastore.AllocateSpace@/storage",
        "Datastore.AllocateTemplate@/storage",
        "SDN.Use@/sdn/zones/localnetwork",
        "Sys.Audit@/nodes",
    ] {
        assert!(
            all.iter().any(|n| n.to_string() == want),
            "{want} missing from {all:?}"
        );
    }
    // Nothing of access management: the token must not be able to widen itself.
    assert!(!all.iter().any(|n| n.privilege.starts_with("Permissions.")
        || n.privilege.starts_with("User.")
        || n.privilege.starts_with("Realm.")));
}

fn needs_of(line: &str) -> Requirement {
    for_call(&Call::parse(line).expect("a call")).expect("a known endpoint")
}

#[test]
fn a_vm_create_needs_its_storage_bridge_and_key_classes() {
    let r = needs_of(
        "POST /nodes/pve/qemu vmid=300 name=app-host cores=2 memory=4096 scsihw=virtio-scsi-single scsi0=local-lvm:32,discard=on net0=virtio,bridge=vmbr1 ipconfig0=ip=dhcp description=Managed by labwright",
    );
    let first: Vec<String> = r.preferred().iter().map(ToString::to_string).collect();
    for want in [
        "VM.Allocate@/vms/300",
        "Datastore.AllocateSpace@/storage/local-lvm",
        "SDN.Use@/sdn/zones/localnetwork/vmbr1",
        "VM.Config.CPU@/vms/300",
        "VM.Config.Memory@/vms/300",
        "VM.Config.HWType@/vms/300",
        "VM.Config.Disk@/vms/300",
        "VM.Config.Network@/vms/300",
        "VM.Config.Cloudinit@/vms/300",
        "VM.Config.Options@/vms/300",
    ] {
        assert!(first.contains(&want.to_string()), "{want} not in {first:?}");
    }
    // The pool way is only open when the call names a pool.
    assert_eq!(r.alternatives.len(), 1, "{r:?}");
}

#[test]
fn download_url_offers_either_way_to_reach_the_network() {
    let r = needs_of(
        "POST /nodes/pve/storage/local/download-url content=iso filename=x.img url=https://x",
    );
    let ways: Vec<Vec<String>> = r
        .alternatives
        .iter()
        .map(|a| a.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(ways.len(), 2, "{ways:?}");
    assert!(
        ways.iter()
            .all(|w| w.contains(&"Datastore.AllocateTemplate@/storage/local".to_string()))
    );
    assert!(
        ways.iter()
            .any(|w| w.contains(&"Sys.AccessNetwork@/nodes/pve".to_string()))
    );
    // The narrower way is preferred: the node's network, not Sys.Modify on `/`.
    assert!(
        r.preferred()
            .iter()
            .any(|n| n.to_string() == "Sys.AccessNetwork@/nodes/pve")
    );
}

fn perms(v: Value) -> Permissions {
    serde_json::from_value(v).expect("permissions")
}

#[test]
fn missing_lists_what_the_token_lacks_and_nothing_else() {
    let reqs = vec![
        needs_of("POST /nodes/pve/qemu/100/status/start"),
        needs_of("PUT /nodes/pve/qemu/100/resize disk=scsi0 size=+8G"),
    ];
    let have = perms(serde_json::json!({"/vms": {"VM.PowerMgmt": 1, "VM.Audit": 1}}));
    let m = missing(&reqs, &have, false);
    assert_eq!(
        missing_needs(&m)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["VM.Config.Disk@/vms/100"]
    );
    // Not propagated from /vms: a privilege on /vms itself does not reach /vms/100.
    let have = perms(serde_json::json!({"/vms": {"VM.PowerMgmt": 0, "VM.Config.Disk": 1}}));
    let m = missing(&reqs, &have, false);
    assert_eq!(
        missing_needs(&m)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["VM.PowerMgmt@/vms/100"]
    );
}

#[test]
fn calls_parse_and_skip_what_is_not_an_api_call() {
    assert!(Call::parse("SSH zfs create tank/media").is_none());
    let c =
        Call::parse("POST /nodes/pve/qemu/100/config description=a b c net0=virtio,bridge=vmbr0")
            .expect("call");
    assert_eq!(c.params["description"], "a b c");
    assert_eq!(c.params["net0"], "virtio,bridge=vmbr0");
    assert_eq!(
        match_template(
            "/nodes/{node}/storage/{storage}/content/{volume}",
            "/nodes/pve/storage/local/content/local%3Aiso%2Fx.iso"
        )
        .map(|p| p["volume"].clone()),
        Some("local:iso/x.iso".to_string())
    );
}

#[test]
fn generic_paths_cut_at_the_first_parameter() {
    assert_eq!(fill("/vms/{vmid}", Paths::Generic).as_deref(), Some("/vms"));
    assert_eq!(fill("/", Paths::Generic).as_deref(), Some("/"));
    assert_eq!(
        fill("/nodes/{node}", Paths::Generic).as_deref(),
        Some("/nodes")
    );
}

/// `docs/privileges.md` shows the table as the code has it.
/// `LABWRIGHT_UPDATE_DOCS=1` rewrites the generated part.
#[test]
fn the_document_matches_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/privileges.md");
    let text = std::fs::read_to_string(&path).expect("docs/privileges.md");
    let (begin, end) = ("<!-- generated: begin -->\n", "<!-- generated: end -->");
    let (Some(a), Some(b)) = (text.find(begin), text.find(end)) else {
        panic!("docs/privileges.md lacks the generated markers");
    };
    let want = markdown();
    let have = &text[a + begin.len()..b];
    if have != want {
        if std::env::var("LABWRIGHT_UPDATE_DOCS").is_ok() {
            let new = format!("{}{begin}{want}{}", &text[..a], &text[b..]);
            std::fs::write(&path, new).expect("write docs");
        } else {
            panic!("docs/privileges.md is stale; run with LABWRIGHT_UPDATE_DOCS=1:\n{want}");
        }
    }
}

#[test]
fn validate_cleanup_needs_the_cd_the_snapshot_and_the_volume() {
    let reqs = for_cleanup("pve", &[100], "local");
    let all: Vec<String> = reqs
        .iter()
        .flat_map(|r| r.preferred())
        .map(|n| n.to_string())
        .collect();
    for want in [
        "VM.Config.CDROM@/vms/100",
        "VM.Snapshot@/vms/100",
        "Datastore.Allocate@/storage/local",
    ] {
        assert!(all.contains(&want.to_string()), "{want} not in {all:?}");
    }
}

#[test]
fn a_root_only_call_is_missing_for_any_token() {
    let reqs = vec![needs_of("PUT /nodes/pve/disks/wipedisk disk=/dev/sdc")];
    let all = perms(serde_json::json!({"/": {"Sys.Modify": 1, "Sys.Audit": 1}}));
    let m = missing(&reqs, &all, false);
    assert_eq!(m.len(), 1);
    assert!(
        m[0].needs[0].to_string().contains("root@pam login"),
        "{m:?}"
    );
    assert!(missing(&reqs, &all, true).is_empty());
    // No role can grant it: it is not in the role.
    assert!(!role_privileges().contains(ROOT_ONLY));
}
