//! Issue 16's endpoints that answered 501: user.cfg management (users, groups, roles,
//! pools, group ACLs) as pve-access-control and pve-manager's Pool.pm behave, and the
//! node/cluster administration reads, with their privilege checks.
#![allow(clippy::unwrap_used)]
mod common;

use labwright_sim::{Scenario, SimConfig};

/// pve-access-control User.pm/Group.pm/ACL.pm: users with groups, group ACLs that
/// grant privileges to members (a user's own ACL at a level wins over its groups'),
/// `lock_user_config` error prefixes, and clean-up when a user goes.
#[tokio::test]
async fn users_groups_and_group_acls() {
    let api = common::start_default().await;
    let r = api
        .post(
            "/access/groups",
            &[("groupid", "ops"), ("comment", "Operators")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.post("/access/groups", &[("groupid", "ops")]).await;
    assert_eq!(
        r.message(),
        "create group failed: group 'ops' already exists\n"
    );
    let r = api
        .post(
            "/access/users",
            &[("userid", "alice@pve"), ("groups", "nope")],
        )
        .await;
    assert_eq!(r.message(), "create user failed: no such group 'nope'\n");
    let r = api
        .post(
            "/access/users",
            &[
                ("userid", "alice@pve"),
                ("groups", "ops"),
                ("email", "a@example.com"),
                ("password", "s3cret-pw"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let u = api.get("/access/users/alice@pve").await;
    assert_eq!(u.data()["enable"], 1);
    assert_eq!(u.data()["expire"], 0);
    assert_eq!(u.data()["email"], "a@example.com");
    assert_eq!(u.data()["groups"], serde_json::json!(["ops"]));
    let list = api.call("GET", "/access/users", &[("full", "1")]).await;
    let alice = list
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userid"] == "alice@pve")
        .unwrap()
        .clone();
    assert_eq!(alice["groups"], "ops");
    assert_eq!(alice["realm-type"], "pve");
    let g = api.get("/access/groups/ops").await;
    assert_eq!(g.data()["members"], serde_json::json!(["alice@pve"]));
    assert_eq!(g.data()["comment"], "Operators");
    // A group ACL gives members its role.
    let r = api
        .put(
            "/access/acl",
            &[("path", "/vms"), ("groups", "ops"), ("roles", "PVEVMUser")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let p = api
        .call(
            "GET",
            "/access/permissions",
            &[("userid", "alice@pve"), ("path", "/vms/100")],
        )
        .await;
    assert_eq!(p.data()["/vms/100"]["VM.PowerMgmt"], 1);
    // Her own ACL at the same level replaces the group's.
    let r = api
        .put(
            "/access/acl",
            &[
                ("path", "/vms"),
                ("users", "alice@pve"),
                ("roles", "PVEAuditor"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    let p = api
        .call(
            "GET",
            "/access/permissions",
            &[("userid", "alice@pve"), ("path", "/vms/100")],
        )
        .await;
    assert!(
        p.data()["/vms/100"].get("VM.PowerMgmt").is_none(),
        "{:?}",
        p.data()
    );
    assert_eq!(p.data()["/vms/100"]["VM.Audit"], 1);
    let acl = api.get("/access/acl").await;
    assert!(
        acl.data()
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["type"] == "group" && a["ugid"] == "ops")
    );
    let r = api
        .put(
            "/access/acl",
            &[("path", "/"), ("groups", "ghosts"), ("roles", "PVEAuditor")],
        )
        .await;
    assert_eq!(
        r.message(),
        "ACL update failed: group 'ghosts' does not exist\n"
    );
    // Update: groups replaced unless append.
    assert_eq!(
        api.post("/access/groups", &[("groupid", "dev")])
            .await
            .status,
        200
    );
    let r = api
        .put(
            "/access/users/alice@pve",
            &[("groups", "dev"), ("firstname", "Alice")],
        )
        .await;
    assert_eq!(r.status, 200);
    let u = api.get("/access/users/alice@pve").await;
    assert_eq!(u.data()["groups"], serde_json::json!(["dev"]));
    assert_eq!(u.data()["firstname"], "Alice");
    // The read-only auditor may read users but not create them.
    let ro = format!(
        "PVEAPIToken={}={}",
        api.sim.readonly_token_id(),
        api.sim.readonly_token_secret()
    );
    let r = api
        .call_as(&ro, "GET", "/access/users/alice@pve", &[])
        .await;
    assert_eq!(
        r.status, 200,
        "Sys.Audit on /access/groups is enough: {:?}",
        r.body
    );
    let r = api
        .call_as(&ro, "POST", "/access/users", &[("userid", "eve@pve")])
        .await;
    assert_eq!(r.status, 403);
    // Deleting the user removes memberships and ACLs.
    assert_eq!(api.delete("/access/users/alice@pve", &[]).await.status, 200);
    let g = api.get("/access/groups/dev").await;
    assert_eq!(g.data()["members"], serde_json::json!([]));
    let acl = api.get("/access/acl").await;
    assert!(!acl.body.to_string().contains("alice@pve"));
    let r = api.get("/access/users/alice@pve").await;
    assert_eq!(r.message(), "no such user ('alice@pve')\n");
    let r = api.delete("/access/groups/nope", &[]).await;
    assert_eq!(
        r.message(),
        "delete group failed: group 'nope' does not exist\n"
    );
}

/// pve-access-control Role.pm and `create_roles`: the built-in roles are derived
/// from the privilege groups and cannot be changed; user roles can.
#[tokio::test]
async fn roles_builtin_and_custom() {
    let api = common::start_default().await;
    let list = api.get("/access/roles").await;
    let roles = list.data().as_array().unwrap();
    let find = |n: &str| roles.iter().find(|r| r["roleid"] == n).cloned().unwrap();
    assert_eq!(find("PVETemplateUser")["privs"], "VM.Audit,VM.Clone");
    assert_eq!(
        find("PVESysAdmin")["privs"],
        "Sys.Audit,Sys.Console,Sys.Syslog"
    );
    assert_eq!(find("NoAccess")["privs"], "");
    assert_eq!(find("PVEAdmin")["special"], 1);
    assert!(
        !find("PVEAdmin")["privs"]
            .as_str()
            .unwrap()
            .contains("Mapping.Modify")
    );
    let r = api
        .post(
            "/access/roles",
            &[("roleid", "PVEFoo"), ("privs", "VM.Audit")],
        )
        .await;
    assert_eq!(
        r.err("roleid"),
        "cannot use role ID starting with the (case-insensitive) 'PVE' namespace"
    );
    let r = api
        .post(
            "/access/roles",
            &[
                ("roleid", "Backup"),
                ("privs", "VM.Backup,Datastore.AllocateSpace"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.get("/access/roles/Backup").await;
    assert_eq!(r.data()["VM.Backup"], 1);
    assert_eq!(r.data()["Datastore.AllocateSpace"], 1);
    let r = api
        .put(
            "/access/roles/Backup",
            &[("privs", "VM.Audit"), ("append", "1")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(api.get("/access/roles/Backup").await.data()["VM.Audit"], 1);
    let r = api
        .put("/access/roles/PVEAdmin", &[("privs", "VM.Audit")])
        .await;
    assert_eq!(
        r.message(),
        "auto-generated role 'PVEAdmin' cannot be modified\n"
    );
    let r = api.delete("/access/roles/Administrator", &[]).await;
    assert_eq!(
        r.message(),
        "auto-generated role 'Administrator' cannot be deleted\n"
    );
    assert_eq!(api.delete("/access/roles/Backup", &[]).await.status, 200);
    assert_eq!(
        api.get("/access/roles/Backup").await.message(),
        "role 'Backup' does not exist\n"
    );
}

/// pve-manager Pool.pm: pools, members (guests and storages) through `PUT /pools`
/// and the deprecated `/pools/{poolid}`, create with `pool=`, deletion only when empty.
#[tokio::test]
async fn pools_and_members() {
    let api = common::start_default().await;
    assert_eq!(
        api.post("/pools", &[("poolid", "lab"), ("comment", "homelab")])
            .await
            .status,
        200
    );
    let r = api.post("/pools", &[("poolid", "lab")]).await;
    assert_eq!(
        r.message(),
        "create pool failed: pool 'lab' already exists\n"
    );
    let r = api.post("/pools", &[("poolid", "nope/sub")]).await;
    assert_eq!(
        r.message(),
        "create pool failed: parent 'nope' of pool 'nope/sub' does not exist\n"
    );
    api.create_vm(100, &[("pool", "lab")]).await;
    api.create_vm(101, &[]).await;
    let r = api
        .put("/pools/lab", &[("vms", "101"), ("storage", "local")])
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api
        .put("/pools", &[("poolid", "lab"), ("vms", "101")])
        .await;
    assert_eq!(
        r.message(),
        "update pools failed: VM 101 is already a pool member\n"
    );
    let p = api.get("/pools/lab").await;
    let members = p.data()["members"].as_array().unwrap();
    let ids: Vec<&str> = members.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["qemu/100", "qemu/101", "storage/proxmox/local"]);
    assert_eq!(p.data()["comment"], "homelab");
    let list = api
        .call("GET", "/pools", &[("poolid", "lab"), ("type", "qemu")])
        .await;
    assert_eq!(list.data()[0]["members"].as_array().unwrap().len(), 2);
    let r = api.delete("/pools", &[("poolid", "lab")]).await;
    assert_eq!(
        r.message(),
        "delete pool failed: pool 'lab' is not empty (contains VM 100)\n"
    );
    let r = api.delete("/nodes/proxmox/qemu/100", &[]).await;
    assert_eq!(api.wait(r.data()).await, "OK");
    let r = api
        .put(
            "/pools/lab",
            &[("vms", "101"), ("storage", "local"), ("delete", "1")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(api.delete("/pools/lab", &[]).await.status, 200);
    assert_eq!(api.get("/pools").await.data(), &serde_json::json!([]));
}

/// pve-manager Nodes.pm / pve-cluster ClusterConfig.pm / pve-ha-manager: the reads a
/// homelab tool does on a standalone node, and the writes next to them.
#[tokio::test]
async fn node_and_cluster_administration_reads() {
    let api = common::start_default().await;
    let d = api.get("/nodes/proxmox/dns").await;
    assert_eq!(d.data()["search"], "lan");
    let r = api
        .put(
            "/nodes/proxmox/dns",
            &[("search", "home.arpa"), ("dns1", "1.1.1.1")],
        )
        .await;
    assert_eq!(r.status, 200);
    let d = api.get("/nodes/proxmox/dns").await;
    assert_eq!(
        d.data(),
        &serde_json::json!({"search": "home.arpa", "dns1": "1.1.1.1"})
    );
    let r = api
        .put(
            "/nodes/proxmox/dns",
            &[("search", "x"), ("dns1", "not-an-ip")],
        )
        .await;
    assert_eq!(r.status, 400);
    let c = api.get("/nodes/proxmox/config").await;
    let digest = c.data()["digest"].as_str().unwrap().to_string();
    let r = api
        .put(
            "/nodes/proxmox/config",
            &[("description", "rack 1"), ("digest", digest.as_str())],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        api.get("/nodes/proxmox/config").await.data()["description"],
        "rack 1"
    );
    let r = api
        .put(
            "/nodes/proxmox/config",
            &[("description", "x"), ("digest", digest.as_str())],
        )
        .await;
    assert_eq!(r.status, 500, "stale digest");
    assert_eq!(
        api.get("/nodes/proxmox/apt/update").await.data(),
        &serde_json::json!([])
    );
    let repos = api.get("/nodes/proxmox/apt/repositories").await;
    assert!(repos.data()["files"].as_array().unwrap().len() >= 2);
    let t = api.post("/nodes/proxmox/apt/update", &[]).await;
    assert_eq!(api.wait(t.data()).await, "OK");
    let log = api
        .call("GET", "/nodes/proxmox/syslog", &[("limit", "0")])
        .await;
    assert!(log.body["total"].as_u64().unwrap() >= 4);
    assert!(
        log.body.to_string().contains(":aptupdate:"),
        "task lines are in the journal"
    );
    let lvm = api.get("/nodes/proxmox/disks/lvm").await;
    assert_eq!(lvm.data()["children"][0]["name"], "pve");
    let thin = api.get("/nodes/proxmox/disks/lvmthin").await;
    assert_eq!(thin.data()[0]["lv"], "data");
    assert_eq!(
        api.get("/nodes/proxmox/disks/directory").await.data(),
        &serde_json::json!([])
    );
    // A standalone node: no join information (HTTP 424), no totem section.
    let j = api.get("/cluster/config/join").await;
    assert_eq!(j.status, 424);
    assert_eq!(
        j.message(),
        "node is not in a cluster, no join info available!\n"
    );
    let t = api.get("/cluster/config/totem").await;
    assert_eq!(t.status, 200);
    assert!(t.data().is_null());
    assert_eq!(
        api.get("/cluster/config/nodes").await.data(),
        &serde_json::json!([])
    );
    // HA and SDN start empty; a resource can be added for an existing guest.
    assert_eq!(
        api.get("/cluster/ha/resources").await.data(),
        &serde_json::json!([])
    );
    assert_eq!(
        api.get("/cluster/sdn/zones").await.data(),
        &serde_json::json!([])
    );
    let r = api
        .post("/cluster/ha/resources", &[("sid", "vm:100")])
        .await;
    assert_eq!(r.message(), "unable to find VM '100'\n");
    api.create_vm(100, &[]).await;
    assert_eq!(
        api.post("/cluster/ha/resources", &[("sid", "100")])
            .await
            .status,
        200
    );
    let h = api.get("/cluster/ha/resources/vm:100").await;
    assert_eq!(h.data()["state"], "started");
    let cur = api.get("/cluster/ha/status/current").await;
    assert_eq!(cur.data()[0]["id"], "quorum");
    assert_eq!(cur.data()[1]["sid"], "vm:100");
    // Privileges as the schema says: the auditor reads, but may not write DNS or read
    // the journal (Sys.Syslog).
    let ro = format!(
        "PVEAPIToken={}={}",
        api.sim.readonly_token_id(),
        api.sim.readonly_token_secret()
    );
    assert_eq!(
        api.call_as(&ro, "GET", "/nodes/proxmox/dns", &[])
            .await
            .status,
        200
    );
    let r = api
        .call_as(&ro, "PUT", "/nodes/proxmox/dns", &[("search", "x")])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.message(),
        "Permission check failed (/nodes/proxmox, Sys.Modify)\n"
    );
    let r = api.call_as(&ro, "GET", "/nodes/proxmox/syslog", &[]).await;
    assert_eq!(r.status, 403);
}

/// A cluster member answers the join information with its node list and totem.
#[tokio::test]
async fn cluster_join_information() {
    let api = common::start(SimConfig {
        scenario: Scenario::Cluster,
        ..SimConfig::for_tests()
    })
    .await;
    let j = api.get("/cluster/config/join").await;
    assert_eq!(j.status, 200, "{:?}", j.body);
    assert_eq!(j.data()["preferred_node"], "pve1");
    assert_eq!(j.data()["totem"]["cluster_name"], "labcluster");
    assert_eq!(j.data()["nodelist"].as_array().unwrap().len(), 3);
    assert_eq!(
        j.data()["nodelist"][0]["pve_fp"],
        api.sim.fingerprint().as_str()
    );
    let n = api.get("/cluster/config/nodes").await;
    assert_eq!(n.data().as_array().unwrap().len(), 3);
}

/// naasctl's read path (the sections of its spec it scans before planning: guests,
/// networks, storage, IAM, cluster options, pools, backup/replication/HA jobs,
/// firewall, node administration, SDN, disks): every call answers, none with 501.
#[tokio::test]
async fn naasctl_scan_calls_answer_without_501() {
    let api = common::start(SimConfig {
        scenario: Scenario::Hdds,
        ..SimConfig::for_tests()
    })
    .await;
    api.create_vm(100, &[]).await;
    let n = "/nodes/proxmox";
    let paths = [
        "/version".to_string(),
        "/nodes".into(),
        "/cluster/status".into(),
        "/cluster/resources".into(),
        "/cluster/options".into(),
        format!("{n}/status"),
        format!("{n}/qemu"),
        format!("{n}/qemu/100/config"),
        format!("{n}/qemu/100/status/current"),
        format!("{n}/qemu/100/snapshot"),
        format!("{n}/qemu/100/firewall/options"),
        format!("{n}/qemu/100/firewall/rules"),
        format!("{n}/lxc"),
        format!("{n}/network"),
        "/storage".into(),
        format!("{n}/storage"),
        format!("{n}/storage/local/content"),
        format!("{n}/disks/list"),
        format!("{n}/disks/zfs"),
        format!("{n}/disks/lvm"),
        format!("{n}/disks/lvmthin"),
        format!("{n}/disks/directory"),
        "/access/users".into(),
        "/access/users/root@pam/token".into(),
        "/access/acl".into(),
        "/access/roles".into(),
        "/access/groups".into(),
        "/access/domains".into(),
        "/access/tfa".into(),
        "/pools".into(),
        "/cluster/backup".into(),
        "/cluster/replication".into(),
        "/cluster/ha/resources".into(),
        "/cluster/ha/groups".into(),
        "/cluster/ha/rules".into(),
        "/cluster/ha/status/current".into(),
        "/cluster/firewall/options".into(),
        "/cluster/firewall/rules".into(),
        "/cluster/firewall/aliases".into(),
        "/cluster/firewall/ipset".into(),
        "/cluster/firewall/groups".into(),
        format!("{n}/firewall/options"),
        format!("{n}/firewall/rules"),
        format!("{n}/dns"),
        format!("{n}/hosts"),
        format!("{n}/time"),
        format!("{n}/config"),
        format!("{n}/apt/repositories"),
        format!("{n}/apt/update"),
        format!("{n}/apt/versions"),
        format!("{n}/syslog"),
        format!("{n}/tasks"),
        format!("{n}/certificates/info"),
        "/cluster/config/nodes".into(),
        "/cluster/config/totem".into(),
        "/cluster/sdn/zones".into(),
        "/cluster/sdn/vnets".into(),
    ];
    for p in &paths {
        let r = api.get(p).await;
        assert_eq!(r.status, 200, "GET {p}: {:?}", r.body);
    }
}

/// pve-access-control's token flow as `labwright token create` uses it: a custom role,
/// a user, a privilege-separated token (no rights of its own until its ACLs, then the
/// intersection with the user's), and `/access/permissions` with the propagate flag
/// of each privilege (0 for an entry on `/` that does not propagate).
#[tokio::test]
async fn privsep_token_permissions_with_propagate_flags() {
    let api = common::start_default().await;
    let r = api
        .post(
            "/access/roles",
            &[
                ("roleid", "Op"),
                ("privs", "VM.Audit,VM.PowerMgmt,Sys.Modify"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    api.post("/access/users", &[("userid", "lw@pve")]).await;
    let t = api.post("/access/users/lw@pve/token/t1", &[]).await;
    assert_eq!(t.data()["info"]["privsep"], 1, "{:?}", t.body);
    let secret = t.data()["value"].as_str().unwrap().to_string();
    let auth = format!("PVEAPIToken=lw@pve!t1={secret}");
    // Only the user has ACLs: the separated token has nothing.
    for (path, prop) in [("/", "0"), ("/vms", "1")] {
        let r = api
            .put(
                "/access/acl",
                &[
                    ("path", path),
                    ("roles", "Op"),
                    ("users", "lw@pve"),
                    ("propagate", prop),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let p = api.call_as(&auth, "GET", "/access/permissions", &[]).await;
    assert_eq!(p.status, 200);
    assert!(p.data().as_object().unwrap().is_empty(), "{:?}", p.body);
    let r = api
        .call_as(&auth, "POST", "/nodes/proxmox/qemu/100/status/start", &[])
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    // The token's own ACLs: now the intersection.
    for (path, prop) in [("/", "0"), ("/vms", "1")] {
        api.put(
            "/access/acl",
            &[
                ("path", path),
                ("roles", "Op"),
                ("tokens", "lw@pve!t1"),
                ("propagate", prop),
            ],
        )
        .await;
    }
    let p = api.call_as(&auth, "GET", "/access/permissions", &[]).await;
    let d = p.data();
    assert_eq!(d["/"]["Sys.Modify"], 0, "{d}");
    assert_eq!(d["/vms"]["VM.PowerMgmt"], 1, "{d}");
    // `/` does not propagate: nothing reaches /nodes, /storage through it.
    assert!(d.get("/storage").is_none(), "{d}");
    // An administrator may read the token's permissions too.
    let p = api
        .call(
            "GET",
            "/access/permissions",
            &[("userid", "lw@pve!t1"), ("path", "/vms/100")],
        )
        .await;
    assert_eq!(p.data()["/vms/100"]["VM.PowerMgmt"], 1, "{:?}", p.body);
    // The ticket flow with a password.
    let r = api
        .call_as(
            "",
            "POST",
            "/access/ticket",
            &[("username", "lw@pve"), ("password", "nope")],
        )
        .await;
    assert_eq!(r.status, 401, "{:?}", r.body);
}
