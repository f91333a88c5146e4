//! The simulated cluster: nodes, guests, storage, network, firewall, jobs, users and
//! tasks. Plain data, serialised as JSON into the state folder so that successive
//! `labwright` commands see the same node.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A string → JSON map that keeps insertion order (PVE config sections).
pub type Obj = IndexMap<String, Value>;

/// Everything the simulator knows.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct State {
    pub cluster_name: Option<String>,
    pub nodes: IndexMap<String, Node>,
    pub vms: BTreeMap<u32, Vm>,
    /// `storage.cfg`: id → options (always with `type`).
    pub storages: IndexMap<String, Obj>,
    pub volumes: Vec<Volume>,
    pub backup_jobs: IndexMap<String, Obj>,
    pub fw: FwCluster,
    pub users: IndexMap<String, User>,
    pub acls: Vec<Acl>,
    pub tasks: Vec<Task>,
    pub next_pid: u32,
    /// Seeded counter used for MACs, UUIDs of configs and similar.
    pub serial: u64,
    /// DHCP leases of the guests' LAN: `bridge/mac` → IPv4 (crate::guestnet).
    #[serde(default)]
    pub leases: BTreeMap<String, String>,
    /// `user.cfg` groups.
    #[serde(default)]
    pub groups: IndexMap<String, AccessGroup>,
    /// `user.cfg` roles defined by users (the built-in ones are computed).
    #[serde(default)]
    pub roles: IndexMap<String, std::collections::BTreeSet<String>>,
    /// `user.cfg` pools.
    #[serde(default)]
    pub pools: IndexMap<String, Pool>,
    /// Node settings that are plain files on a real node (DNS, `/etc/pve/nodes/*/config`).
    #[serde(default)]
    pub node_files: BTreeMap<String, Obj>,
    /// `/etc/pve/ha/resources.cfg` and `groups.cfg` / `rules.cfg` entries.
    #[serde(default)]
    pub ha_resources: IndexMap<String, Obj>,
    #[serde(default)]
    pub ha_groups: IndexMap<String, Obj>,
    #[serde(default)]
    pub ha_rules: IndexMap<String, Obj>,
    /// `/etc/pve/mapping/directory.cfg`: id → mapping.
    #[serde(default)]
    pub dir_mappings: IndexMap<String, DirMapping>,
    /// `/etc/pve/mapping/pci.cfg`: id → mapping (same shape: `map` entries and a
    /// description).
    #[serde(default)]
    pub pci_mappings: IndexMap<String, DirMapping>,
    /// OPNsense `config.xml` documents found in uploaded ISO images, by volume id
    /// (crate::opnsense): such an ISO on a CD-ROM is a router seed.
    #[serde(default)]
    pub router_seeds: BTreeMap<String, String>,
    /// DHCP leases handed out by a simulated router: `bridge/mac` → lease.
    #[serde(default)]
    pub router_leases: BTreeMap<String, RouterLease>,
}

/// A DHCP lease from the router VM: address, prefix and gateway (the router).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct RouterLease {
    pub ip: String,
    pub prefix: u8,
    pub gateway: String,
}

/// A network namespace made on the node (`ip netns add`), used as a probe host.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Netns {
    /// Links inside the namespace (moved in with `ip link set … netns`).
    pub links: Vec<String>,
    /// `ADDR/PREFIX dev LINK` entries.
    pub addrs: Vec<(String, u8, String)>,
    /// The default route's gateway.
    pub gateway: Option<String>,
    /// Neighbours that answered ARP: address → (device, MAC).
    pub neigh: BTreeMap<String, (String, String)>,
}

/// A link made on the node with `ip link add` (a veth end).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct HostLink {
    pub peer: String,
    pub mac: String,
    /// The bridge it is enslaved to (`master`).
    pub master: Option<String>,
    pub up: bool,
    /// The namespace it was moved into; `None`: the node's own.
    pub netns: Option<String>,
}

/// A cluster-wide directory mapping (virtiofs shares).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct DirMapping {
    /// `node=NAME,path=/abs` property strings, as given.
    pub map: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl DirMapping {
    /// The path mapped on `node`, if the mapping has exactly one entry for it.
    pub fn path_on(&self, node: &str) -> Option<String> {
        let paths: Vec<String> = self
            .map
            .iter()
            .filter_map(|m| {
                let mut n = None;
                let mut p = None;
                for kv in m.split(',') {
                    match kv.split_once('=') {
                        Some(("node", v)) => n = Some(v),
                        Some(("path", v)) => p = Some(v),
                        _ => {}
                    }
                }
                (n == Some(node)).then(|| p.map(String::from)).flatten()
            })
            .collect();
        if paths.len() == 1 {
            paths.into_iter().next()
        } else {
            None
        }
    }
}

/// A ZFS dataset (filesystem) on a node.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Dataset {
    pub name: String,
    /// Effective mountpoint (`none` / `legacy` when not mountable).
    pub mountpoint: String,
    pub mounted: bool,
    /// Properties set locally (`zfs get -s local`), values as ZFS stores them (sizes in
    /// bytes).
    pub props: IndexMap<String, String>,
}

/// The `sanoid` package on a node.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Sanoid {
    pub installed: bool,
    pub timer_enabled: bool,
    pub timer_active: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct AccessGroup {
    pub comment: Option<String>,
    pub users: std::collections::BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Pool {
    pub comment: Option<String>,
    pub vms: std::collections::BTreeSet<u32>,
    pub storage: std::collections::BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Node {
    pub name: String,
    pub ip: String,
    pub online: bool,
    pub boot_time: u64,
    pub maxcpu: u32,
    pub maxmem: u64,
    /// Live `/etc/network/interfaces`.
    pub network: IndexMap<String, Obj>,
    /// `/etc/network/interfaces.new`, when changes are staged.
    pub network_pending: Option<IndexMap<String, Obj>>,
    /// Interfaces in the live file that a failed `ifreload` left down (not in the
    /// kernel: not `active`, no guest can use them).
    #[serde(default)]
    pub network_down: std::collections::BTreeSet<String>,
    /// A reload cut the management address off (fault `reload_mgmt_cut_rate`): new
    /// connections are refused until another configuration is reloaded.
    #[serde(default)]
    pub mgmt_cut: bool,
    /// `/etc/network/interfaces` copies made with `cp` (labwright's dead-man keeps the
    /// definitions from before a reload), by path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub network_saved: BTreeMap<String, IndexMap<String, Obj>>,
    /// Transient timers made with `systemd-run --on-active`, by unit name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timers: BTreeMap<String, crate::host::deadman::HostTimer>,
    pub disks: Vec<Disk>,
    pub zpools: Vec<Obj>,
    pub fw_options: Obj,
    pub fw_rules: Vec<Obj>,
    /// ZFS datasets by name (the pool's root dataset first).
    #[serde(default)]
    pub datasets: IndexMap<String, Dataset>,
    /// Host files by path (a path ending in `/` marks a directory); a dataset's files
    /// live under its mountpoint.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub sanoid: Sanoid,
    /// Network namespaces (`ip netns`), by name.
    #[serde(default)]
    pub netns: BTreeMap<String, Netns>,
    /// Links made with `ip link add`, by name.
    #[serde(default)]
    pub links: BTreeMap<String, HostLink>,
    /// PCI functions (`/sys/bus/pci/devices`), sorted by address.
    #[serde(default)]
    pub pci: Vec<PciDev>,
}

/// One PCI function of a node, as sysfs and pci.ids describe it.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct PciDev {
    /// `0000:01:00.0`.
    pub id: String,
    /// `0x030000`.
    pub class: String,
    /// `0x10de`.
    pub vendor: String,
    pub device: String,
    pub subsystem_vendor: String,
    pub subsystem_device: String,
    pub vendor_name: String,
    pub device_name: String,
    pub subsystem_vendor_name: String,
    pub subsystem_device_name: String,
    /// -1 when the node has no IOMMU.
    pub iommugroup: i64,
    #[serde(default)]
    pub mdev: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Disk {
    pub devpath: String,
    pub size: u64,
    pub model: String,
    pub serial: String,
    pub r#type: String,
    pub rpm: i64,
    pub used: Option<String>,
    pub wwn: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Volume {
    pub node: String,
    pub storage: String,
    pub volid: String,
    pub content: String,
    pub format: String,
    pub size: u64,
    pub vmid: Option<u32>,
    pub ctime: u64,
    /// The `#cloud-config` user-data found in an uploaded NoCloud seed ISO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// The image a disk was imported from (`import-from`): tells what the guest boots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
    /// Backup notes (`<archive>.notes`, from vzdump's `notes-template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Vm {
    pub vmid: u32,
    pub node: String,
    /// Current config, raw strings as in `<vmid>.conf`.
    pub conf: IndexMap<String, String>,
    /// `[PENDING]` values.
    pub pending: IndexMap<String, String>,
    /// `[PENDING] delete:` keys.
    pub pending_delete: Vec<String>,
    pub snapshots: IndexMap<String, Snapshot>,
    pub running: bool,
    pub paused: bool,
    pub started_at: u64,
    /// Wall-clock seconds (fractional) when the VM was created; drives the stats lag.
    pub created_at: f64,
    /// Wall-clock second after which the simulated guest agent answers.
    pub agent_ready_at: f64,
    /// What pvestatd last saw, and when the power state last changed (the stats lag).
    #[serde(default)]
    pub stats_running: bool,
    #[serde(default)]
    pub running_changed_at: f64,
    pub fw_options: Obj,
    pub fw_rules: Vec<Obj>,
    pub fw_aliases: IndexMap<String, Obj>,
    pub fw_ipsets: IndexMap<String, Ipset>,
    pub guest: Guest,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Snapshot {
    pub conf: IndexMap<String, String>,
    pub description: String,
    pub snaptime: u64,
    pub vmstate: bool,
    pub parent: Option<String>,
}

/// The simulated guest OS, reached through the guest agent.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Guest {
    /// Files by path; a path ending in `/` marks a directory.
    pub files: BTreeMap<String, String>,
    /// Set once the guest has run its NoCloud user-data (first boot).
    #[serde(default)]
    pub cloud_init_done: bool,
    #[serde(default)]
    pub hostname: Option<String>,
    /// SHA-1 of the user-data last run: a new seed (new instance) runs again, as
    /// cloud-init does when the instance-id changes.
    #[serde(default)]
    pub seed_digest: Option<String>,
    /// Debian packages installed by cloud-init's `packages:`.
    #[serde(default)]
    pub packages: std::collections::BTreeSet<String>,
    /// `tailscale up` succeeded: the node's tailnet state.
    #[serde(default)]
    pub tailscale: Option<TailscaleState>,
    pub exec: BTreeMap<u32, ExecResult>,
    pub next_pid: u32,
    /// Mounts beyond the root file system (virtiofs shares mounted in the guest).
    #[serde(default)]
    pub mounts: Vec<GuestMount>,
    /// NICs moved to another bridge while running: `netN` → the bridge the guest still
    /// holds its address from (until it reboots or the link flaps).
    #[serde(default)]
    pub nic_bound: BTreeMap<String, String>,
    /// The OPNsense router's own state (crate::opnsense), for a guest that boots it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterGuest>,
}

/// What an OPNsense guest holds: its imported configuration and this boot's progress.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct RouterGuest {
    /// `/conf/config.xml` once imported (survives reboots).
    pub config: Option<String>,
    /// Wall-clock second after which the booted router forwards, serves DHCP and listens.
    pub ready_at: f64,
    /// This boot failed to bring routing up (fault `router_boot_failure_rate`).
    pub boot_failed: bool,
    /// The configuration importer's console prompt during this boot.
    pub importer: Option<Importer>,
}

/// The importer's console: `Press any key …` until `closes_at`, then the device prompt.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Importer {
    pub closes_at: f64,
    /// A key was pressed in time: the device prompt reads a line.
    pub prompting: bool,
    pub typed: String,
}

/// One mounted file system in a guest.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct GuestMount {
    pub target: String,
    /// The virtiofs tag (the directory mapping id).
    pub source: String,
    pub fstype: String,
    /// The node directory the share shows (resolved when mounted).
    pub host_path: String,
}

/// What `tailscale status --json` reports once the guest joined.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct TailscaleState {
    pub hostname: String,
    pub routes: Vec<String>,
    pub accept_routes: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ExecResult {
    pub exitcode: i64,
    pub out: String,
    pub err: String,
    /// Wall-clock second when the process finishes.
    pub done_at: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct FwCluster {
    pub options: Obj,
    pub rules: Vec<Obj>,
    pub aliases: IndexMap<String, Obj>,
    pub ipsets: IndexMap<String, Ipset>,
    pub groups: IndexMap<String, Group>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Ipset {
    pub comment: Option<String>,
    pub entries: Vec<Obj>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Group {
    pub comment: Option<String>,
    pub rules: Vec<Obj>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct User {
    pub password: String,
    pub enable: bool,
    pub tokens: IndexMap<String, Token>,
    #[serde(default)]
    pub expire: u64,
    #[serde(default)]
    pub firstname: Option<String>,
    #[serde(default)]
    pub lastname: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub keys: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Token {
    pub secret: String,
    pub privsep: bool,
    pub comment: Option<String>,
    pub expire: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Acl {
    pub path: String,
    /// `user@realm` or `user@realm!token`.
    pub ugid: String,
    pub role: String,
    pub propagate: bool,
    /// `ugid` names a group.
    #[serde(default)]
    pub group: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Task {
    pub upid: String,
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: u64,
    pub r#type: String,
    pub id: String,
    pub user: String,
    pub running: bool,
    pub exitstatus: Option<String>,
    pub endtime: Option<u64>,
    pub log: Vec<String>,
}

/// The built-in scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scenario {
    /// One node `proxmox`, one SSD, vmbr0 on nic0 at 192.168.1.10/24, local + local-lvm.
    Fresh,
    /// `Fresh` plus two unused HDDs (for the ZFS mirror of phase 1).
    Hdds,
    /// `Hdds`, but `/dev/sdc` still carries old partitions (pool creation refuses it).
    HddsUsed,
    /// Three nodes `pve1`..`pve3`.
    Cluster,
    /// `nodes` nodes and `vms` guests spread over them.
    Large { nodes: u32, vms: u32 },
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fresh" => Ok(Scenario::Fresh),
            "hdds" => Ok(Scenario::Hdds),
            "hdds-used" => Ok(Scenario::HddsUsed),
            "cluster" => Ok(Scenario::Cluster),
            "large" => Ok(Scenario::Large {
                nodes: 8,
                vms: 1000,
            }),
            other => Err(format!(
                "unknown scenario '{other}' (expected fresh, hdds, hdds-used, cluster or large)"
            )),
        }
    }
}

fn o(v: Value) -> Obj {
    match v {
        Value::Object(m) => m.into_iter().collect(),
        _ => Obj::new(),
    }
}

fn base_node(name: &str, ip: &str, now: u64) -> Node {
    let mut network = IndexMap::new();
    network.insert(
        "nic0".to_string(),
        o(
            json!({"iface": "nic0", "type": "eth", "method": "manual", "method6": "manual",
                 "families": ["inet"], "active": 1, "exists": 1, "priority": 3}),
        ),
    );
    network.insert(
        "vmbr0".to_string(),
        o(
            json!({"iface": "vmbr0", "type": "bridge", "method": "static", "method6": "manual",
                 "families": ["inet"], "active": 1, "autostart": 1, "priority": 4,
                 "address": ip, "netmask": "24", "cidr": format!("{ip}/24"),
                 "gateway": "192.168.1.1", "bridge_ports": "nic0", "bridge_stp": "off",
                 "bridge_fd": "0"}),
        ),
    );
    Node {
        name: name.into(),
        ip: ip.into(),
        online: true,
        boot_time: now.saturating_sub(3600 * 24),
        maxcpu: 8,
        maxmem: 32 << 30,
        network,
        network_pending: None,
        network_down: Default::default(),
        mgmt_cut: false,
        network_saved: BTreeMap::new(),
        timers: BTreeMap::new(),
        disks: vec![Disk {
            devpath: "/dev/sda".into(),
            size: 500_107_862_016,
            model: "Samsung SSD 870 EVO 500GB".into(),
            serial: format!("S6PXNS0T{}", name.len() * 1000 + 123),
            r#type: "ssd".into(),
            rpm: 0,
            used: Some("LVM".into()),
            wwn: "0x5002538f00000001".into(),
        }],
        zpools: vec![],
        fw_options: Obj::new(),
        fw_rules: vec![],
        datasets: IndexMap::new(),
        files: [
            "/",
            "/etc/",
            "/root/",
            "/var/",
            "/var/lib/",
            "/var/lib/vz/",
            "/mnt/",
        ]
        .iter()
        .map(|d| (d.to_string(), String::new()))
        .collect(),
        sanoid: Sanoid::default(),
        netns: BTreeMap::new(),
        links: BTreeMap::new(),
        pci: crate::api::pci::base_devices(),
    }
}

impl Vm {
    /// Changes the power state, remembering what the (lagging) stats view showed.
    pub fn set_running(&mut self, running: bool) {
        if self.running != running {
            self.stats_running = self.running;
            self.running_changed_at = crate::util::now_f();
            self.running = running;
        }
    }

    /// The power state as `/cluster/resources` reports it: RRD data is refreshed every
    /// `lag` seconds, so a change shows up late.
    pub fn stats_view_running(&self, lag: f64) -> bool {
        if crate::util::now_f() - self.running_changed_at < lag {
            self.stats_running
        } else {
            self.running
        }
    }
}

impl State {
    /// Builds a scenario from scratch.
    pub fn scenario(s: Scenario, now: u64) -> State {
        let mut st = State {
            next_pid: 4000,
            ..Default::default()
        };
        st.storages.insert(
            "local".into(),
            o(json!({"type": "dir", "path": "/var/lib/vz", "content": "iso,vztmpl,backup,import"})),
        );
        st.storages.insert(
            "local-lvm".into(),
            o(json!({"type": "lvmthin", "thinpool": "data", "vgname": "pve", "content": "rootdir,images"})),
        );
        let names: Vec<String> = match s {
            Scenario::Fresh | Scenario::Hdds | Scenario::HddsUsed => vec!["proxmox".into()],
            Scenario::Cluster => (1..=3).map(|i| format!("pve{i}")).collect(),
            Scenario::Large { nodes, .. } => {
                (1..=nodes.max(1)).map(|i| format!("pve{i}")).collect()
            }
        };
        for (i, n) in names.iter().enumerate() {
            let ip = format!("192.168.1.{}", 10 + i);
            st.nodes.insert(n.clone(), base_node(n, &ip, now));
        }
        if names.len() > 1 {
            st.cluster_name = Some("labcluster".into());
        }
        if matches!(s, Scenario::Hdds | Scenario::HddsUsed)
            && let Some(node) = st.nodes.get_mut("proxmox")
        {
            for (dev, serial) in [
                ("/dev/sdb", "WD-WX12A0000001"),
                ("/dev/sdc", "WD-WX12A0000002"),
            ] {
                node.disks.push(Disk {
                    devpath: dev.into(),
                    size: 4_000_787_030_016,
                    model: "WDC WD40EFPX-68C6CN0".into(),
                    serial: serial.into(),
                    r#type: "hdd".into(),
                    rpm: 5400,
                    used: (s == Scenario::HddsUsed && dev == "/dev/sdc")
                        .then(|| "partitions".to_string()),
                    wwn: format!("0x50014ee2{}", &serial[8..]),
                });
            }
        }
        if matches!(s, Scenario::Hdds | Scenario::HddsUsed)
            && let Some(node) = st.nodes.get_mut("proxmox")
        {
            node.pci.extend(crate::api::pci::hdds_cards());
            node.pci.sort_by(|a, b| a.id.cmp(&b.id));
        }
        if let Scenario::Large { vms, .. } = s {
            let n = names.len().max(1);
            for i in 0..vms {
                let vmid = 100 + i;
                let node = names[(i as usize) % n].clone();
                let mut conf = IndexMap::new();
                conf.insert("name".to_string(), format!("vm-{vmid}"));
                conf.insert("memory".to_string(), "2048".into());
                conf.insert("cores".to_string(), "2".into());
                conf.insert("scsihw".to_string(), "virtio-scsi-pci".into());
                conf.insert(
                    "scsi0".to_string(),
                    format!("local-lvm:vm-{vmid}-disk-0,size=16G"),
                );
                conf.insert(
                    "net0".to_string(),
                    format!("virtio={},bridge=vmbr0", crate::util::mac_for(vmid as u64)),
                );
                conf.insert("ostype".to_string(), "l26".into());
                conf.insert("tags".to_string(), "bench".into());
                st.volumes.push(Volume {
                    node: node.clone(),
                    storage: "local-lvm".into(),
                    volid: format!("local-lvm:vm-{vmid}-disk-0"),
                    content: "images".into(),
                    format: "raw".into(),
                    size: 16 << 30,
                    vmid: Some(vmid),
                    ctime: now,
                    user_data: None,
                    imported_from: None,
                    ..Default::default()
                });
                st.vms.insert(
                    vmid,
                    Vm {
                        vmid,
                        node,
                        conf,
                        running: i % 3 != 0,
                        started_at: now.saturating_sub(600),
                        created_at: 0.0,
                        ..Default::default()
                    },
                );
            }
        }
        st
    }

    /// The node holding a VM, or the config-missing error PVE gives.
    pub fn vm_mut(&mut self, node: &str, vmid: u32) -> Result<&mut Vm, String> {
        match self.vms.get_mut(&vmid) {
            Some(vm) if vm.node == node => Ok(vm),
            _ => Err(format!(
                "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
            )),
        }
    }

    pub fn vm(&self, node: &str, vmid: u32) -> Result<&Vm, String> {
        match self.vms.get(&vmid) {
            Some(vm) if vm.node == node => Ok(vm),
            _ => Err(format!(
                "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
            )),
        }
    }
}
