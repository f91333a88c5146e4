//! Issue 16: Ansible's `community.proxmox` modules (from the PyPI `ansible` package,
//! unchanged) against the simulator. Every task runs twice: the first run changes what
//! real PVE would change, the second must report no change; afterwards the resulting
//! configs are checked through the API against what PVE stores.
//!
//! The venv lives under the target folder and is created (and `ansible` pip-installed)
//! when missing; an install failure fails the test with the reason. Set
//! `LABWRIGHT_ANSIBLE_TABLE=1` to print the pass table.
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::print_stdout)]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The venv's `bin` folder, with `ansible`, proxmoxer and requests importable.
fn ansible_bin() -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ansible-venv");
    let py = venv.join("bin").join("python");
    if !py.exists() {
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map_err(|e| format!("python3 is needed for the Ansible test: {e}"))?;
        if !st.success() {
            return Err("`python3 -m venv` failed (is python3-venv installed?)".into());
        }
    }
    let check = "import ansible, proxmoxer, requests, ansible_collections.community.proxmox";
    let have = Command::new(&py)
        .args(["-c", check])
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !have.success() {
        eprintln!("ansible test: pip install ansible proxmoxer requests (once, into {venv:?})");
        let out = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "ansible",
                "proxmoxer",
                "requests",
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "pip install ansible proxmoxer requests failed (is PyPI reachable?):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(py.parent().unwrap().to_path_buf())
}

/// One playbook task: (name, module, YAML args, does the first run change anything).
struct Step {
    name: &'static str,
    module: &'static str,
    args: &'static str,
    changes: bool,
}

const fn step(name: &'static str, module: &'static str, args: &'static str, changes: bool) -> Step {
    Step {
        name,
        module,
        args,
        changes,
    }
}

/// The playbook, in the order a user would run it.
const STEPS: &[Step] = &[
    step("node info", "proxmox_node_info", "{}", false),
    step("storage info", "proxmox_storage_info", "{}", false),
    step("user info", "proxmox_user_info", "{}", false),
    step(
        "pool create",
        "proxmox_pool",
        "{poolid: lab, comment: homelab}",
        true,
    ),
    step(
        "group create",
        "proxmox_group",
        "{groupid: ops, comment: Operators}",
        true,
    ),
    step(
        "user create",
        "proxmox_user",
        "{userid: alice@pve, email: alice@example.com, groups: [ops], comment: Alice}",
        true,
    ),
    step(
        "acl group on pool",
        "proxmox_access_acl",
        "{path: /pool/lab, type: group, ugid: ops, roleid: PVEVMUser, propagate: 1, state: present}",
        true,
    ),
    step("group info", "proxmox_group_info", "{}", false),
    step(
        "vm create",
        "proxmox_kvm",
        "{node: proxmox, vmid: 200, name: web, memory: 1024, cores: 2, scsihw: virtio-scsi-pci, scsi: {scsi0: 'local-lvm:4'}, net: {net0: 'virtio,bridge=vmbr0'}, pool: lab, tags: [web]}",
        true,
    ),
    step("vm info", "proxmox_vm_info", "{vmid: 200}", false),
    step(
        "disk add",
        "proxmox_disk",
        "{vmid: 200, disk: scsi1, storage: local-lvm, size: 2, discard: 'on', state: present}",
        true,
    ),
    step(
        "disk resize",
        "proxmox_disk",
        "{vmid: 200, disk: scsi1, size: 3G, state: resized}",
        true,
    ),
    step(
        "nic add",
        "proxmox_nic",
        "{vmid: 200, interface: net1, bridge: vmbr0, tag: 10, firewall: true}",
        true,
    ),
    step(
        "vm start",
        "proxmox_kvm",
        "{vmid: 200, state: started}",
        true,
    ),
    step(
        "snapshot with RAM",
        "proxmox_snap",
        "{vmid: 200, snapname: ram1, vmstate: true, description: with RAM}",
        true,
    ),
    step(
        "snapshot without RAM",
        "proxmox_snap",
        "{vmid: 200, snapname: disk1}",
        true,
    ),
    step(
        "snapshot rollback (RAM)",
        "proxmox_snap",
        "{vmid: 200, snapname: ram1, state: rollback}",
        true,
    ),
    step(
        "snapshot remove",
        "proxmox_snap",
        "{vmid: 200, snapname: disk1, state: absent}",
        true,
    ),
    step(
        "snapshot remove (RAM)",
        "proxmox_snap",
        "{vmid: 200, snapname: ram1, state: absent}",
        true,
    ),
    step(
        "vm stop",
        "proxmox_kvm",
        "{vmid: 200, state: stopped, force: true}",
        true,
    ),
    step(
        "nic remove",
        "proxmox_nic",
        "{vmid: 200, interface: net1, state: absent}",
        true,
    ),
    step(
        "disk remove",
        "proxmox_disk",
        "{vmid: 200, disk: scsi1, state: absent}",
        true,
    ),
    step(
        "firewall alias",
        "proxmox_firewall",
        "{level: cluster, state: present, aliases: [{name: nas, cidr: 192.168.1.20, comment: NAS}]}",
        true,
    ),
    step(
        "firewall ipset",
        "proxmox_firewall",
        "{level: cluster, state: present, ip_sets: [{name: admins, comment: Admins, cidrs: [{cidr: 192.168.1.50}]}]}",
        true,
    ),
    step(
        "firewall rule",
        "proxmox_firewall",
        "{level: cluster, state: present, rules: [{type: in, action: ACCEPT, proto: tcp, dport: '22', source: '+admins', pos: 0, enable: 1, comment: ssh}]}",
        true,
    ),
    step(
        "firewall info",
        "proxmox_firewall_info",
        "{level: cluster}",
        false,
    ),
    step(
        "vm clone",
        "proxmox_kvm",
        "{node: proxmox, clone: web, newid: 201, name: web-copy, full: true, storage: local-lvm, format: raw}",
        true,
    ),
    step(
        "pool member add",
        "proxmox_pool_member",
        "{poolid: lab, member: 201}",
        true,
    ),
    step(
        "vm template",
        "proxmox_kvm",
        "{vmid: 201, state: template}",
        true,
    ),
    step(
        "backup schedule add vm",
        "proxmox_backup_schedule",
        "{vm_id: 200, backup_id: nightly, state: present}",
        true,
    ),
    step("backup info", "proxmox_backup_info", "{}", false),
    step(
        "backup schedule remove vm",
        "proxmox_backup_schedule",
        "{vm_id: 200, backup_id: nightly, state: absent}",
        true,
    ),
    step(
        "pool member remove",
        "proxmox_pool_member",
        "{poolid: lab, member: 201, state: absent}",
        true,
    ),
    step(
        "vm delete",
        "proxmox_kvm",
        "{vmid: 201, state: absent}",
        true,
    ),
];

/// Tasks whose module has no way to report "no change" (it does not compare): they
/// are listed in the pass table but not held to the second-run rule.
const ALWAYS_CHANGES: &[&str] = &["snapshot rollback (RAM)"];

fn playbook() -> String {
    let mut y = String::from(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  vars:\n    ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n  module_defaults:\n    group/community.proxmox.proxmox:\n      api_host: localhost\n      api_port: \"{{ lookup('env', 'PX_PORT') | int }}\"\n      api_user: \"{{ lookup('env', 'PX_USER') }}\"\n      api_token_id: \"{{ lookup('env', 'PX_TOKEN') }}\"\n      api_token_secret: \"{{ lookup('env', 'PX_SECRET') }}\"\n      validate_certs: true\n  tasks:\n",
    );
    for s in STEPS {
        for round in ["1", "2"] {
            y.push_str(&format!(
                "    - name: \"{} #{round}\"\n      ignore_errors: true\n      community.proxmox.{}: {}\n",
                s.name, s.module, s.args
            ));
        }
    }
    y
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_proxmox_playbook_runs_twice_idempotently() {
    let bin = match tokio::task::spawn_blocking(ansible_bin).await.unwrap() {
        Ok(b) => b,
        Err(e) => panic!("the Ansible test cannot run: {e}"),
    };
    let api = common::start_default().await;
    // The backup job the schedule module edits (community.proxmox cannot create one),
    // made as the GUI makes it (with `mode`, which proxmox_backup_info reads), for an
    // existing guest.
    api.create_vm(150, &[("name", "keeper")]).await;
    let r = api
        .post(
            "/cluster/backup",
            &[
                ("id", "nightly"),
                ("schedule", "02:00"),
                ("storage", "local"),
                ("vmid", "150"),
                ("mode", "snapshot"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("pve-root-ca.pem");
    std::fs::write(&ca, api.sim.ca_pem()).unwrap();
    let pb = dir.path().join("playbook.yml");
    std::fs::write(&pb, playbook()).unwrap();
    let token = api.sim.token_id();
    let (user, tname) = token.split_once('!').unwrap();
    let mut cmd = tokio::process::Command::new(bin.join("ansible-playbook"));
    cmd.arg("-i")
        .arg("localhost,")
        .arg(&pb)
        .current_dir(dir.path())
        .env("PX_PORT", api.sim.addr().port().to_string())
        .env("PX_USER", user)
        .env("PX_TOKEN", tname)
        .env("PX_SECRET", api.sim.token_secret())
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
        .env("ANSIBLE_HOME", dir.path().join("home"))
        .env("ANSIBLE_LOCAL_TEMP", dir.path().join("tmp"))
        .env("ANSIBLE_CONFIG", dir.path().join("none.cfg"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCALHOST_WARNING", "False")
        .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "False");
    let t0 = std::time::Instant::now();
    let out = cmd.output().await.unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "ansible-playbook output is not JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let tasks = report["plays"][0]["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut results = std::collections::BTreeMap::new();
    for t in &tasks {
        let name = t["task"]["name"].as_str().unwrap_or("").to_string();
        results.insert(name, t["hosts"]["localhost"].clone());
    }
    let mut table =
        String::from("| task | module | 1st run changed | 2nd run changed |\n|---|---|---|---|\n");
    let mut problems = vec![];
    for s in STEPS {
        let r1 = results
            .get(&format!("{} #1", s.name))
            .cloned()
            .unwrap_or(Value::Null);
        let r2 = results
            .get(&format!("{} #2", s.name))
            .cloned()
            .unwrap_or(Value::Null);
        let show = |r: &Value| {
            if r.is_null() {
                "not run".to_string()
            } else if r["failed"] == true {
                format!(
                    "FAILED: {}",
                    r["msg"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(160)
                        .collect::<String>()
                )
            } else {
                (r["changed"] == true).to_string()
            }
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            s.name,
            s.module,
            show(&r1),
            show(&r2)
        ));
        if r1["failed"] == true || r2["failed"] == true || r1.is_null() || r2.is_null() {
            problems.push(format!("{}: {} / {}", s.name, show(&r1), show(&r2)));
            continue;
        }
        if (r1["changed"] == true) != s.changes {
            problems.push(format!(
                "{}: first run changed={} (expected {})",
                s.name, r1["changed"], s.changes
            ));
        }
        if r2["changed"] == true && !ALWAYS_CHANGES.contains(&s.name) {
            problems.push(format!("{}: second run reported a change", s.name));
        }
    }
    if std::env::var_os("LABWRIGHT_ANSIBLE_TABLE").is_some() {
        println!("{table}\nansible-playbook wall time: {secs:.1} s");
    }
    assert!(
        problems.is_empty(),
        "playbook problems:\n{}\n\n{table}\nstderr:\n{}",
        problems.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );

    // The resulting state, read through the API, is what PVE stores.
    let c = api.get("/nodes/proxmox/qemu/200/config").await;
    let d = c.data();
    assert_eq!(d["name"], "web");
    assert_eq!(d["memory"], "1024");
    assert_eq!(d["boot"], "order=scsi0;net0");
    assert!(
        d["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:vm-200-disk-0,")
    );
    assert!(d.get("scsi1").is_none() && d.get("net1").is_none(), "{d:?}");
    // `state: absent` unlinks with force=1: the volume is destroyed, not left unused.
    assert!(d.get("unused0").is_none(), "{d:?}");
    let vols = api.get("/nodes/proxmox/storage/local-lvm/content").await;
    assert!(
        !vols.body.to_string().contains("vm-200-disk-1"),
        "{:?}",
        vols.body
    );
    assert!(
        !vols.body.to_string().contains("state-ram1"),
        "RAM state freed with its snapshot"
    );
    assert!(
        d.get("vmstate").is_none() && d.get("parent").is_none(),
        "{d:?}"
    );
    let snaps = api.get("/nodes/proxmox/qemu/200/snapshot").await;
    assert_eq!(
        snaps.data().as_array().unwrap().len(),
        1,
        "only 'current' is left"
    );
    let st = api.get("/nodes/proxmox/qemu/200/status/current").await;
    assert_eq!(st.data()["status"], "stopped");
    assert_eq!(
        api.get("/nodes/proxmox/qemu/201/config").await.status,
        500,
        "the clone was deleted"
    );
    let u = api.get("/access/users/alice@pve").await;
    assert_eq!(u.data()["groups"], serde_json::json!(["ops"]));
    assert_eq!(u.data()["email"], "alice@example.com");
    let acl = api.get("/access/acl").await;
    assert!(
        acl.data()
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["path"] == "/pool/lab"
                && a["ugid"] == "ops"
                && a["type"] == "group"
                && a["roleid"] == "PVEVMUser")
    );
    let p = api.get("/pools/lab").await;
    let ids: Vec<&str> = p.data()["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["qemu/200"]);
    let rules = api.get("/cluster/firewall/rules").await;
    let rule = &rules.data()[0];
    assert_eq!(rule["source"], "+admins");
    assert_eq!(rule["dport"], "22");
    assert_eq!(rule["enable"], 1);
    let al = api.get("/cluster/firewall/aliases/nas").await;
    assert_eq!(al.data()["cidr"], "192.168.1.20");
    assert_eq!(al.data()["ipversion"], 4);
    let set = api.get("/cluster/firewall/ipset/admins").await;
    assert_eq!(set.data()[0]["cidr"], "192.168.1.50");
    let job = api.get("/cluster/backup/nightly").await;
    assert_eq!(job.data()["vmid"], "150");
    let res = api
        .call("GET", "/cluster/resources", &[("type", "vm")])
        .await;
    let web = res
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vmid"] == 200)
        .unwrap()
        .clone();
    assert_eq!(web["tags"], "web");
}
