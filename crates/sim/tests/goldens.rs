//! Golden tests: real PVE responses and messages quoted in behaviour.md and formats.md
//! (the ✔ messages were produced by PVE's own validators), reproduced over HTTP.
#![allow(clippy::unwrap_used)]
mod common;

use serde_json::{Value, json};

/// behaviour.md §2.3 example 1: unknown parameter (shape of the whole body).
#[tokio::test]
async fn golden_400_unknown_parameter_body() {
    let api = common::start_default().await;
    api.create_vm(102, &[]).await;
    let r = api
        .post(
            "/nodes/proxmox/qemu/102/status/stop",
            &[("overrule-shutdown", "1"), ("bogus", "1")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"data": null, "message": "Parameter verification failed.\n",
               "errors": {"bogus": "property is not defined in schema and the schema does not allow additional properties"}})
    );
}

/// behaviour.md §2.3 example 2 (WHMCS#92): nested property-string error and VM id format.
#[tokio::test]
async fn golden_400_ipconfig_gw_and_vmid() {
    let api = common::start_default().await;
    let r = api
        .post(
            "/nodes/proxmox/qemu/99/config",
            &[("ipconfig0", "ip=10.0.0.5/24,gw=10.0.0.300")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["errors"],
        json!({"ipconfig0": "invalid format - format error\nipconfig0.gw: invalid format - value does not look like a valid IPv4 address\n\n",
               "vmid": "invalid format - value does not look like a valid VM ID\n"})
    );
}

/// behaviour.md §2.3 example 3 / §4: 500 lock text and 403 body.
#[tokio::test]
async fn golden_lock_and_permission_bodies() {
    let faults = labwright_sim::Faults {
        error_rate: 1.0,
        error_class: Some("write".into()),
        ..Default::default()
    };
    let api = common::start(labwright_sim::SimConfig {
        faults,
        ..labwright_sim::SimConfig::for_tests()
    })
    .await;
    let r = api
        .put("/nodes/proxmox/qemu/203/config", &[("name", "x")])
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        json!({"data": null, "message": "can't lock file '/var/lock/qemu-server/lock-203.conf' - got timeout\n"})
    );
    let ro = format!(
        "PVEAPIToken={}={}",
        api.sim.readonly_token_id(),
        api.sim.readonly_token_secret()
    );
    let r = api
        .call_as(&ro, "POST", "/nodes/proxmox/qemu/100/status/start", &[])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body,
        json!({"data": null, "message": "Permission check failed (/vms/100, VM.PowerMgmt)\n"})
    );
}

/// formats.md §4.2 table (✔ messages), through `POST …/config`.
#[tokio::test]
async fn golden_property_string_messages() {
    let api = common::start_default().await;
    api.create_vm(100, &[]).await;
    let cases: &[(&str, &str, &str)] = &[
        (
            "net0",
            "virtio=BC:24:11:4E:8F:D1,bridge=vmbr0,frobnicate=1",
            "invalid format - format error\nnet0.frobnicate: property is not defined in schema and the schema does not allow additional properties\n",
        ),
        (
            "net0",
            "virtio,bridge=vmbr0,tag=5000",
            "invalid format - format error\nnet0.tag: value must have a maximum value of 4094\n",
        ),
        (
            "net0",
            "bridge=vmbr0",
            "invalid format - format error\nnet0.model: property is missing and it is not optional\n",
        ),
        (
            "ipconfig0",
            "gw=10.0.0.1",
            "invalid format - format error\nipconfig0.ip: missing property required by 'ipconfig0.gw'\n",
        ),
        (
            "net0",
            "virtio,firewall=maybe",
            "invalid format - format error\nnet0.firewall: type check ('boolean') failed - got 'maybe'\n",
        ),
        (
            "net0",
            "virtio,bridge=vmbr0,bridge=vmbr1",
            "invalid format - duplicate key in comma-separated list property: bridge\n",
        ),
        (
            "net0",
            "virtio,e1000",
            "invalid format - duplicate key in comma-separated list property: model\n",
        ),
        (
            "net0",
            "virtio=BC:24:11:4E:8F:D1,model=e1000",
            "invalid format - duplicate key in comma-separated list property: model\n",
        ),
        (
            "net0",
            "model=e1000,virtio=BC:24:11:4E:8F:D1",
            "invalid format - key alias 'model' is already defined\n",
        ),
        (
            "net0",
            "macaddr=BC:24:11:4E:8F:D2,virtio=BC:24:11:4E:8F:D1",
            "invalid format - key 'macaddr' is already defined (via alias)\n",
        ),
        (
            "net0",
            "virtio=BC:24:11:4E:8F:D1,macaddr=BC:24:11:4E:8F:D2",
            "invalid format - duplicate key in comma-separated list property: macaddr\n",
        ),
        (
            "net0",
            "virtio,tag=",
            "invalid format - missing key in comma-separated list property\n",
        ),
        (
            "net0",
            "virtio,bridge=vmbr0,trunks=20,30",
            "invalid format - duplicate key in comma-separated list property: model\n",
        ),
        (
            "scsi0",
            "local-lvm:32,cyls=2",
            "invalid format - format error\nscsi0.cyls: property is not defined in schema and the schema does not allow additional properties\n",
        ),
        (
            "scsi0",
            "local-lvm:vm-100-disk-0,volume=local-lvm:vm-100-disk-1",
            "invalid format - key 'file' is already defined (via alias)\n",
        ),
        (
            "agent",
            "freeze-fs=1,guest-fsfreeze=0",
            "invalid format - key 'freeze-fs' is already defined (via alias)\n",
        ),
        (
            "scsi0",
            "local-lvm:32,iops_rd_length=5,iops_rd_max_length=6",
            "invalid format - duplicate key in comma-separated list property: iops_rd_max_length\n",
        ),
        (
            "scsi0",
            "local-lvm:32,size=32GB",
            "invalid format - format error\nscsi0.size: invalid format - value does not look like a valid disk size: 32GB\n\n",
        ),
        (
            "scsi0",
            "32",
            "invalid format - format error\nscsi0.file: invalid format - unable to parse volume ID '32'\n\n",
        ),
        (
            "net0",
            "virtio,bridge=vmbr 0",
            "invalid format - format error\nnet0.bridge: invalid format - invalid bridge ID 'vmbr 0'\n\n",
        ),
        (
            "boot",
            "order=scsi0;efidisk0",
            "invalid format - format error\nboot.order: invalid format - invalid boot device 'efidisk0'\n\n",
        ),
        (
            "cicustom",
            "local:snippets/user.yaml",
            "invalid format - value without key, but schema does not define a default key\n",
        ),
        (
            "cicustom",
            "user=/root/user.yaml",
            "invalid format - format error\ncicustom.user: invalid format - unable to parse volume ID '/root/user.yaml'\n\n",
        ),
        (
            "rng0",
            "max_bytes=1024",
            "invalid format - format error\nrng0.source: property is missing and it is not optional\n",
        ),
        (
            "cpu",
            "Skylake",
            "invalid format - Built-in cputype 'Skylake' is not defined (missing 'custom-' prefix?)\n",
        ),
        (
            "cpu",
            "flags=+aes",
            "invalid format - CPU is missing cputype\n",
        ),
        (
            "cpu",
            "host,flags=aes",
            "invalid format - format error\ncpu.flags: value does not match the regex pattern\n",
        ),
        (
            "ipconfig0",
            "ip=10.0.0.5",
            "invalid format - format error\nipconfig0.ip: invalid format - value does not look like a valid ipv4 network configuration\n\n",
        ),
        (
            "hostpci0",
            "1:00.0",
            "invalid format - format error\nhostpci0.host: value does not match the regex pattern\n",
        ),
        (
            "smbios1",
            "uuid=not-a-uuid",
            "invalid format - format error\nsmbios1.uuid: value does not match the regex pattern\n",
        ),
        (
            "watchdog",
            "action=reboot",
            "invalid format - format error\nwatchdog.action: value 'reboot' does not have a value in the enumeration 'reset, shutdown, poweroff, pause, debug, none'\n",
        ),
        (
            "amd-sev",
            "no-debug=1",
            "invalid format - format error\namd-sev.type: property is missing and it is not optional\n",
        ),
        (
            "intel-tdx",
            "tdx,attestation=1,vsock-cid=1",
            "invalid format - format error\nintel-tdx.vsock-cid: value must have a minimum value of 2\n",
        ),
        (
            "tags",
            "-bad",
            "invalid format - invalid characters in tag\n",
        ),
        (
            "sshkeys",
            "ssh-ed25519 AAAA",
            "invalid format - invalid urlencoded string: ssh-ed25519 AAAA\n",
        ),
        (
            "name",
            "web_01",
            "invalid format - value does not look like a valid DNS name\n",
        ),
        (
            "startup",
            "order=1,delay=5",
            "invalid format - unable to parse startup options\n",
        ),
        (
            "hotplug",
            "network,pci",
            "invalid format - invalid hotplug feature 'pci'\n",
        ),
        (
            "affinity",
            "3-1",
            "invalid format - unable to parse cpuset option\n",
        ),
        (
            "bootdisk",
            "efidisk0",
            "value does not match the regex pattern",
        ),
        (
            "bootdisk",
            "scsi31",
            "invalid format - invalid boot disk 'scsi31'\n",
        ),
        (
            "nameserver",
            "1.1.1.1;bad_host",
            "invalid format - value does not look like a valid address: bad_host\n",
        ),
        (
            "net32",
            "virtio",
            "property is not defined in schema and the schema does not allow additional properties",
        ),
        (
            "ostype",
            "win12",
            "value 'win12' does not have a value in the enumeration 'other, wxp, w2k, w2k3, w2k8, wvista, win7, win8, win10, win11, l24, l26, solaris'",
        ),
        ("cores", "4.0", "type check ('integer') failed - got '4.0'"),
        (
            "onboot",
            "true",
            "type check ('boolean') failed - got 'true'",
        ),
    ];
    let mut failures = vec![];
    for (key, value, expected) in cases {
        let r = api
            .post("/nodes/proxmox/qemu/100/config", &[(key, value)])
            .await;
        let got = r.err(key);
        if r.status != 400 || got != *expected {
            failures.push(format!(
                "{key}={value}: status {} got {got:?}, want {expected:?}",
                r.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (method, path, form, error key, expected message).
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);

/// formats.md §7 named-format messages on other endpoints.
#[tokio::test]
async fn golden_named_format_messages_elsewhere() {
    let api = common::start_default().await;
    let cases: &[Case<'_>] = &[
        (
            "POST",
            "/cluster/firewall/rules",
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("source", "10.0.0.1,2001:db8::1"),
            ],
            "source",
            "invalid format - detected mixed ipv4/ipv6 addresses in address list '10.0.0.1,2001:db8::1'\n",
        ),
        (
            "POST",
            "/cluster/firewall/rules",
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("source", "10.0.0.5/24"),
            ],
            "source",
            "invalid format - invalid IP address: Invalid prefix 00001010000000000000000000000101/24\n",
        ),
        (
            "POST",
            "/cluster/firewall/rules",
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("source", "10.0.0.300"),
            ],
            "source",
            "invalid format - invalid IP address: Invalid quad in IP address 10.0.0.300 - 300\n",
        ),
        (
            "POST",
            "/cluster/firewall/rules",
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("source", "10.0.0.1-10.0.0.20,10.0.1.1"),
            ],
            "source",
            "invalid format - you can't use a range in a list\n",
        ),
        (
            "POST",
            "/cluster/firewall/rules",
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("proto", "tcp"),
                ("dport", "90:80"),
            ],
            "dport",
            "invalid format - backwards range '90:80' not allowed, did you mean '80:90'?\n",
        ),
        (
            "POST",
            "/cluster/firewall/rules",
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("proto", "tcp"),
                ("dport", "70000"),
            ],
            "dport",
            "invalid format - invalid port '70000'\n",
        ),
        (
            "POST",
            "/cluster/firewall/rules",
            &[("type", "in"), ("action", "ACCEPT"), ("proto", "TCP")],
            "proto",
            "invalid format - unknown protocol 'TCP'\n",
        ),
        (
            "POST",
            "/cluster/firewall/rules",
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("proto", "icmp"),
                ("icmp-type", "8"),
            ],
            "icmp-type",
            "invalid format - invalid icmp-type value '8'\n",
        ),
        (
            "POST",
            "/cluster/firewall/aliases",
            &[("name", "a1"), ("cidr", "192.168.1.0/40")],
            "cidr",
            "invalid format - Prefix length 40 is longer than IP address (32)\n",
        ),
        (
            "POST",
            "/cluster/firewall/aliases",
            &[("name", "a1"), ("cidr", "myhost")],
            "cidr",
            "invalid format - value does not look like a valid IP address or CIDR network\n",
        ),
        (
            "PUT",
            "/nodes/proxmox/firewall/options",
            &[("nf_conntrack_helpers", "http")],
            "nf_conntrack_helpers",
            "invalid format - unknown helper http at /usr/share/perl5/PVE/Firewall.pm line 1167.\n",
        ),
        (
            "POST",
            "/nodes/proxmox/network",
            &[("iface", "e"), ("type", "bridge")],
            "iface",
            "invalid format - invalid network interface name 'e'\n",
        ),
        (
            "POST",
            "/nodes/proxmox/network",
            &[
                ("iface", "vmbr5"),
                ("type", "bridge"),
                ("bridge_vids", "30-20"),
            ],
            "bridge_vids",
            "invalid format - VLAN range must go from lower to higher tag '30-20'\n",
        ),
        (
            "POST",
            "/nodes/proxmox/network",
            &[("iface", "vmbr5"), ("type", "bridge"), ("netmask", "24")],
            "netmask",
            "invalid format - value does not look like a valid IP netmask\n",
        ),
        (
            "POST",
            "/nodes/proxmox/network",
            &[
                ("iface", "vmbr5"),
                ("type", "bridge"),
                ("address", "192.168.1.2"),
            ],
            "netmask",
            "missing property required by 'address'",
        ),
        (
            "POST",
            "/nodes/proxmox/network",
            &[
                ("iface", "vmbr5"),
                ("type", "bridge"),
                ("cidr", "192.168.1.10/33"),
            ],
            "cidr",
            "invalid format - value does not look like a valid IPv4 CIDR network\n",
        ),
        (
            "POST",
            "/storage",
            &[("storage", "x"), ("type", "dir")],
            "storage",
            "invalid format - storage ID 'x' cannot be shorter than 2 characters\n",
        ),
        (
            "POST",
            "/storage",
            &[("storage", "9store"), ("type", "dir")],
            "storage",
            "invalid format - storage ID '9store' contains illegal characters\n",
        ),
        (
            "POST",
            "/storage",
            &[
                ("storage", "s1"),
                ("type", "dir"),
                ("content", "images,disk"),
            ],
            "content",
            "invalid format - invalid content type 'disk'\n",
        ),
        (
            "POST",
            "/storage",
            &[("storage", "s1"), ("type", "dir"), ("path", "mnt/data")],
            "path",
            "invalid format - value does not look like a valid absolute path\n",
        ),
        (
            "POST",
            "/cluster/backup",
            &[
                ("vmid", "100"),
                ("schedule", "daily"),
                ("prune-backups", "keep-last=-1"),
            ],
            "prune-backups",
            "invalid format - format error\nprune-backups.keep-last: value must have a minimum value of 0\n",
        ),
        (
            "POST",
            "/cluster/backup",
            &[
                ("vmid", "100"),
                ("schedule", "daily"),
                ("prune-backups", "keep-weekly=2,maxfiles=3"),
            ],
            "prune-backups",
            "invalid format - format error\nprune-backups.maxfiles: property is not defined in schema and the schema does not allow additional properties\n",
        ),
        (
            "POST",
            "/cluster/backup",
            &[("vmid", "100"), ("schedule", "daily"), ("fleecing", "1")],
            "fleecing",
            "invalid format - 'storage' parameter is required when 'enabled' is set\n",
        ),
        (
            "POST",
            "/cluster/backup",
            &[
                ("vmid", "100"),
                ("schedule", "daily"),
                ("performance", "max-workers=300"),
            ],
            "performance",
            "invalid format - format error\nperformance.max-workers: value must have a maximum value of 256\n",
        ),
        (
            "POST",
            "/cluster/backup",
            &[("vmid", "100"), ("schedule", "daily"), ("performance", "8")],
            "performance",
            "invalid format - value without key, but schema does not define a default key\n",
        ),
        (
            "POST",
            "/cluster/backup",
            &[("vmid", "100"), ("schedule", "daily"), ("dow", "Mon")],
            "dow",
            "invalid format - invalid day 'Mon'\n",
        ),
        (
            "POST",
            "/cluster/backup",
            &[("vmid", "100"), ("schedule", "daily"), ("mailto", "admin@")],
            "mailto",
            "invalid format - value does not look like a valid email address or user name\n",
        ),
        (
            "POST",
            "/cluster/backup",
            &[("vmid", "100,abc"), ("schedule", "daily")],
            "vmid",
            "invalid format - value does not look like a valid VM ID\n",
        ),
        (
            "POST",
            "/cluster/backup",
            &[("vmid", "100"), ("schedule", "foo")],
            "schedule",
            "invalid format - invalid calendar event 'foo' - unable to parse calendar event at 'foo' - Context(\"weekday\")\n\n",
        ),
        (
            "POST",
            "/nodes/proxmox/qemu/100/snapshot",
            &[("snapname", "1st")],
            "snapname",
            "invalid format - invalid configuration ID '1st'\n",
        ),
        (
            "POST",
            "/nodes/proxmox/qemu/100/snapshot",
            &[("snapname", &"a".repeat(46))],
            "snapname",
            "value may only be 40 characters long",
        ),
        (
            "POST",
            "/access/ticket",
            &[
                ("username", "root@pam"),
                ("password", "x"),
                ("privs", "VM.Monitor"),
            ],
            "privs",
            "invalid format - invalid privilege 'VM.Monitor'\n",
        ),
        (
            "POST",
            "/access/ticket",
            &[
                ("username", "root@pam"),
                ("password", "x"),
                ("privs", "VM.Audit"),
            ],
            "path",
            "missing property required by 'privs'",
        ),
        (
            "POST",
            "/access/ticket",
            &[("username", "root@pam"), ("password", "x"), ("realm", "p")],
            "realm",
            "invalid format - value does not look like a valid realm\n",
        ),
    ];
    let mut failures = vec![];
    for (m, path, form, key, expected) in cases {
        let auth = if *path == "/access/ticket" {
            String::new()
        } else {
            api.auth.clone()
        };
        let r = api.call_as(&auth, m, path, form).await;
        let got = r.err(key);
        if r.status != 400 || got != *expected {
            failures.push(format!(
                "{m} {path} {key}: status {} got {got:?}, want {expected:?}",
                r.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// behaviour.md §7.4: a real VM config GET — value typing and normalised drive strings.
#[tokio::test]
async fn golden_vm_config_shape() {
    let api = common::start_default().await;
    api.create_vm(111, &[("scsi0", "local-lvm:160,discard=on,ssd=1"), ("efidisk0", "local-lvm:1,efitype=4m"), ("kvm", "1"),
        ("onboot", "1"), ("cores", "4"), ("memory", "4096"), ("bios", "ovmf"), ("machine", "q35"), ("cpu", "host"),
        ("ipconfig0", "ip=10.100.1.174/24,gw=10.100.1.1,ip6=auto"), ("boot", "order=scsi0"), ("serial0", "socket"),
        ("net0", "virtio=bc:24:11:4e:8f:d1,bridge=vmbr0,firewall=1"), ("scsi1", "local-lvm:cloudinit"),
        ("sshkeys", "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAILnyd2niY8ht8KRea6M6y%2BTBx08F7zRdhBlKjk7aywMT")]).await;
    let d = api
        .get("/nodes/proxmox/qemu/111/config")
        .await
        .data()
        .clone();
    assert_eq!(d["memory"], "4096");
    assert_eq!(d["cores"], 4);
    assert_eq!(d["kvm"], 1);
    assert_eq!(d["onboot"], 1);
    assert_eq!(
        d["scsi0"],
        "local-lvm:vm-111-disk-0,discard=on,size=160G,ssd=1"
    );
    assert_eq!(d["efidisk0"], "local-lvm:vm-111-disk-1,efitype=4m,size=1M");
    assert_eq!(d["scsi1"], "local-lvm:vm-111-cloudinit,media=cdrom");
    assert_eq!(
        d["net0"],
        "virtio=bc:24:11:4e:8f:d1,bridge=vmbr0,firewall=1"
    );
    assert_eq!(d["ipconfig0"], "ip=10.100.1.174/24,gw=10.100.1.1,ip6=auto");
    assert_eq!(
        d["sshkeys"],
        "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAILnyd2niY8ht8KRea6M6y%2BTBx08F7zRdhBlKjk7aywMT"
    );
    let digest = d["digest"].as_str().unwrap();
    assert!(digest.len() == 40 && digest.chars().all(|c| c.is_ascii_hexdigit()));
    for k in ["smbios1", "vmgenid", "meta"] {
        assert!(d.get(k).is_some(), "{k} is added on create");
    }
}

/// behaviour.md §5: UPID format and task status shape (the proxmoxer mock's keys).
#[tokio::test]
async fn golden_upid_and_task_status_shape() {
    let api = common::start_default().await;
    let r = api.post("/nodes/proxmox/qemu", &[("vmid", "110")]).await;
    let upid = r.data().as_str().unwrap().to_string();
    let re = regex::Regex::new(r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$").unwrap();
    let c = re.captures(&upid).unwrap();
    assert_eq!(&c[6], "qmcreate");
    assert_eq!(&c[7], "110");
    assert_eq!(&c[8], "root@pam!labwright");
    assert_eq!(api.wait(r.data()).await, "OK");
    let s = api
        .get(&format!(
            "/nodes/proxmox/tasks/{}/status",
            common::urlencode(&upid)
        ))
        .await;
    let d = s.data().as_object().unwrap();
    let keys: std::collections::BTreeSet<&str> = d.keys().map(String::as_str).collect();
    let want: std::collections::BTreeSet<&str> = [
        "upid",
        "starttime",
        "user",
        "type",
        "pstart",
        "status",
        "exitstatus",
        "pid",
        "id",
        "node",
        "tokenid",
    ]
    .into();
    assert_eq!(keys, want);
    assert!(d["pid"].is_u64() && d["pstart"].is_u64() && d["starttime"].is_u64());
    assert_eq!(d["user"], "root@pam");
    assert_eq!(d["tokenid"], "labwright");
    assert_eq!(d["status"], "stopped");
}

/// behaviour.md §8: /version, /nodes and /cluster/resources shapes.
#[tokio::test]
async fn golden_version_nodes_resources_shapes() {
    let api = common::start(labwright_sim::SimConfig {
        time_scale: 0.0,
        ..labwright_sim::SimConfig::for_tests()
    })
    .await;
    let v = api.get("/version").await;
    for k in ["version", "release", "repoid"] {
        assert!(v.data()[k].is_string(), "{k}");
    }
    api.create_vm(100, &[]).await;
    let r = api.get("/cluster/resources").await;
    let all = r.data().as_array().unwrap();
    let vm = all.iter().find(|e| e["type"] == "qemu").unwrap();
    for k in [
        "cpu",
        "disk",
        "diskread",
        "diskwrite",
        "id",
        "maxcpu",
        "maxdisk",
        "maxmem",
        "mem",
        "name",
        "netin",
        "netout",
        "node",
        "status",
        "template",
        "type",
        "uptime",
        "vmid",
    ] {
        assert!(vm.get(k).is_some(), "qemu entry lacks {k}: {vm}");
    }
    assert_eq!(vm["id"], "qemu/100");
    assert!(vm["vmid"].is_u64() && vm["template"].is_u64() && vm["cpu"].is_number());
    let st = all.iter().find(|e| e["type"] == "storage").unwrap();
    assert_eq!(st["status"], "available");
    assert!(st["id"].as_str().unwrap().starts_with("storage/proxmox/"));
    let node = all.iter().find(|e| e["type"] == "node").unwrap();
    assert_eq!(node["id"], "node/proxmox");
    assert_eq!(node["status"], "online");
    let r = api.get("/nodes/proxmox/status").await;
    for k in [
        "boot-info",
        "cpu",
        "cpuinfo",
        "current-kernel",
        "loadavg",
        "memory",
        "pveversion",
        "rootfs",
    ] {
        assert!(r.data().get(k).is_some(), "{k}");
    }
    let l = api.get("/nodes/proxmox/tasks").await;
    assert!(l.body["total"].is_u64());
    let _: Value = l.body;
}
