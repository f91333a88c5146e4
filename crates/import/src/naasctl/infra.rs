//! Safety guards, bridges, storage entries, ZFS pools, datasets, backup jobs and
//! Tailscale.

use labwright_spec::types::Cidr;
use serde_json::Value;

use super::cx::{Cx, ensure_present, mark_read};
use super::vms::env_word;
use crate::out::Node;
use crate::path::Path;

/// `safetyGuards` → `safetyGuards`. `needs_mgmt`: the firewall is switched on, so a
/// management source is required; naasctl having none is a decision.
pub fn safety(cx: &mut Cx<'_>, root: &Value, needs_mgmt: bool) -> Node {
    let sp = Path::root().key("safetyGuards");
    let g = cx.e.map(root.get("safetyGuards"), &sp).cloned();
    let mut out = Node::map().head(format!("from {sp}"));
    let get = |k: &str| g.as_ref().and_then(|m| m.get(k));
    let mp = sp.key("executionMode");
    match cx.e.string(get("executionMode"), &mp) {
        Some(m) => {
            match execution_mode(&m) {
                Some(lw) => out.set("executionMode", Node::str(lw).from(&mp)),
                None => {
                    cx.skip(&mp, format!("execution mode `{m}` has no labwright equivalent (planOnly, safe, full)"));
                    out.set(
                        "executionMode",
                        Node::str("safe").note("labwright's default"),
                    );
                }
            }
        }
        None => out.set(
            "executionMode",
            Node::str("safe").note("naasctl gave none; labwright's default"),
        ),
    }
    let cp = sp.key("managementAccessCidrs");
    let mut list = Node::seq();
    for (i, c) in
        cx.e.list(get("managementAccessCidrs"), &cp)
            .iter()
            .enumerate()
    {
        let ip = cp.index(i);
        let Some(s) = cx.e.string(Some(c), &ip) else {
            continue;
        };
        list.push(cidr_node(cx, &s, &ip));
    }
    if list.is_empty() && needs_mgmt {
        list.push(cx.decide(
            "ADMIN_PC_CIDR",
            "the firewall is enabled and naasctl listed no managementAccessCidrs: your admin machine or LAN (e.g. 192.168.1.50/32), which must keep reaching 22 and 8006",
        ));
    }
    if !list.is_empty() {
        out.set("managementAccessCidrs", list);
    }
    for (from, to) in [
        ("runtimeFirewallChangesAllowed", "allowFirewallChanges"),
        ("runtimeNetworkChangesAllowed", "allowHostNetworkChanges"),
        ("runtimeBackupChangesAllowed", "allowBackupChanges"),
    ] {
        let fp = sp.key(from);
        if let Some(b) = cx.e.flag(get(from), &fp) {
            out.set(to, Node::bool(b).from(&fp));
        }
    }
    out
}

fn execution_mode(m: &str) -> Option<&'static str> {
    match m.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "planonly" | "plan" | "dryrun" | "readonly" => Some("planOnly"),
        "safe" => Some("safe"),
        "full" | "execute" | "apply" => Some("full"),
        _ => None,
    }
}

/// A CIDR value; naasctl's `IP:port` mistake becomes the host CIDR, with a note.
fn cidr_node(cx: &mut Cx<'_>, s: &str, p: &Path) -> Node {
    if s.starts_with("${") || s.parse::<Cidr>().is_ok() {
        return Node::str(s).from(p);
    }
    if let Some((host, port)) = s.rsplit_once(':')
        && port.parse::<u16>().is_ok()
        && host.parse::<std::net::Ipv4Addr>().is_ok()
    {
        return Node::str(&format!("{host}/32")).from(p).note(format!(
            "was `{s}`: sources are CIDRs, the port belongs in a rule"
        ));
    }
    cx.e.push(
        p,
        format!("`{p}` is `{s}`, not a CIDR"),
        "write a network such as 192.168.1.0/24",
    );
    Node::str(s).from(p)
}

/// `networks[]` (type bridge) → `networks.bridges`.
pub fn bridges(
    cx: &mut Cx<'_>,
    list: Option<&Value>,
    lp: &Path,
    phase: Option<u8>,
    out: &mut Node,
) {
    for (i, n) in cx.e.list(list, lp).iter().enumerate() {
        let np = lp.index(i);
        if cx.e.map(Some(n), &np).is_none() {
            continue;
        }
        let mut read = Vec::new();
        if !ensure_present(cx, n, &np, &mut read) || !cx.on_node(n, &np, &mut read) {
            continue;
        }
        let tp = np.key("type");
        match cx.e.string(n.get("type"), &tp).as_deref() {
            Some("bridge") | None => {}
            Some(other) => {
                cx.skip(&np, format!("a `{other}` interface: labwright manages Linux bridges only (no bonds, no VLAN interfaces)"));
                continue;
            }
        }
        if n.get("type").is_some() {
            read.push(tp);
        }
        let Some(name) = cx.e.string(n.get("name"), &np.key("name")) else {
            cx.e.push(
                &np,
                format!("`{np}` has no `name`"),
                "name the bridge (vmbr0, vmbr1 …)",
            );
            continue;
        };
        let mut b = Node::map().head(format!("from {np}"));
        read.push(np.key("name"));
        mark_read(&mut b, read, "name, type and node");
        let pp = np.key("bridge_ports");
        let ports = match n.get("bridge_ports") {
            Some(Value::String(s)) if s.trim() == "none" => Some(Vec::new()),
            v => cx.e.words(v, &pp),
        };
        let mut pl = Node::seq().from(&pp);
        if n.get("bridge_ports").is_none() {
            pl = Node::seq().note("naasctl gave no bridge_ports: internal-only");
        }
        for w in ports.unwrap_or_default() {
            pl.push(Node::str(&w));
        }
        b.set("ports", pl);
        if let Some(c) = cx.e.string(n.get("cidr"), &np.key("cidr")) {
            b.set("address", cidr_node(cx, &c, &np.key("cidr")));
        }
        if let Some(g) = cx.e.string(n.get("gateway"), &np.key("gateway")) {
            b.set("gateway", Node::str(&g).from(&np.key("gateway")));
        }
        if let Some(c) = cx.e.string(n.get("comments"), &np.key("comments")) {
            b.set("comment", Node::str(c.trim()).from(&np.key("comments")));
        }
        if let Some(ph) = phase {
            b.set(
                "phase",
                Node::int(u64::from(ph)).note("from its phase profile"),
            );
        }
        if let Some(v) =
            cx.e.flag(n.get("bridge_vlan_aware"), &np.key("bridge_vlan_aware"))
        {
            b.set(
                "vlanAware",
                Node::bool(v).from(&np.key("bridge_vlan_aware")),
            );
        }
        if let Some(v) = cx.e.flag(n.get("autostart"), &np.key("autostart")) {
            b.set("autostart", Node::bool(v).from(&np.key("autostart")));
        }
        if out.has(&name) {
            cx.e.push(
                &np,
                format!("bridge `{name}` is declared twice"),
                "declare each bridge once",
            );
            continue;
        }
        out.set(&name, b);
    }
}

/// A bridge a VM uses but naasctl never declared: labwright checks every bridge a
/// guest uses, so it is declared with what must be looked up on the node.
pub fn undeclared_bridge(cx: &mut Cx<'_>, name: &str) -> Node {
    let w = env_word(name);
    let mut b = Node::map().head(format!(
        "{name} is used by a VM but naasctl never declared it: fill in what the node has (`ip -br addr show {name}`)"
    ));
    let mut ports = Node::seq();
    ports.push(cx.decide(
        &format!("{w}_PORT"),
        format!("the physical port of existing bridge {name} (e.g. nic0 or eno1)"),
    ));
    b.set("ports", ports);
    b.set(
        "address",
        cx.decide(
            &format!("{w}_ADDRESS"),
            format!("the node's address on {name} as a CIDR (e.g. 192.168.1.10/24)"),
        ),
    );
    b
}

/// `storage[]` (or a profile's `storages`) → `storage.pveStorages`.
pub fn storages(cx: &mut Cx<'_>, list: Option<&Value>, lp: &Path, phase: u8, out: &mut Node) {
    for (i, s) in cx.e.list(list, lp).iter().enumerate() {
        let sp = lp.index(i);
        if cx.e.map(Some(s), &sp).is_none() {
            continue;
        }
        let mut read = Vec::new();
        if !ensure_present(cx, s, &sp, &mut read) || !cx.on_node(s, &sp, &mut read) {
            continue;
        }
        let Some(name) = cx.e.string(s.get("name").or(s.get("id")), &sp.key("name")) else {
            cx.e.push(
                &sp,
                format!("`{sp}` has no `name`"),
                "give the storage its id",
            );
            continue;
        };
        let kind =
            cx.e.string(s.get("type"), &sp.key("type"))
                .unwrap_or_default();
        if !matches!(kind.as_str(), "dir" | "zfspool" | "pbs") {
            cx.skip(
                &sp,
                format!(
                    "storage type `{kind}`: labwright manages dir, zfspool and pbs entries only"
                ),
            );
            continue;
        }
        let key = if s.get("name").is_some() {
            "name"
        } else {
            "id"
        };
        let mut n = Node::map().head(format!("from {sp}"));
        mark_read(&mut n, read, "read; nothing to write");
        n.set("id", Node::str(&name).from(&sp.key(key)));
        n.set("type", Node::str(&kind).from(&sp.key("type")));
        for k in ["path", "pool"] {
            if let Some(v) = cx.e.string(s.get(k), &sp.key(k)) {
                n.set(k, Node::str(&v).from(&sp.key(k)));
            }
        }
        let cp = sp.key("content");
        let mut content = Node::seq();
        let is_list = matches!(s.get("content"), Some(Value::Array(_)));
        for (j, c) in
            cx.e.words(s.get("content"), &cp)
                .unwrap_or_default()
                .iter()
                .enumerate()
        {
            content.push(Node::str(c).from(&if is_list { cp.index(j) } else { cp.clone() }));
        }
        if content.is_empty() {
            content =
                Node::seq().note("naasctl gave no content types; add what this storage holds");
        }
        n.set("content", content);
        n.set("phase", Node::int(u64::from(phase)).note(phase_note(phase)));
        out.push(n);
    }
}

pub fn phase_note(phase: u8) -> &'static str {
    match phase {
        0 => "naasctl's top level: what it applied now",
        _ => "from its phase profile",
    }
}

/// `proxmoxNodeZfsCreate[]` (or a profile's pools) → `storage.zfsPools`. Placeholder
/// devices (`/dev/disk/by-id/HDD1`) become decisions.
pub fn zfs_pools(cx: &mut Cx<'_>, list: Option<&Value>, lp: &Path, phase: u8, out: &mut Node) {
    for (i, z) in cx.e.list(list, lp).iter().enumerate() {
        let zp = lp.index(i);
        if cx.e.map(Some(z), &zp).is_none() {
            continue;
        }
        let mut read = Vec::new();
        if !ensure_present(cx, z, &zp, &mut read) || !cx.on_node(z, &zp, &mut read) {
            continue;
        }
        let Some(name) = cx.e.string(z.get("name"), &zp.key("name")) else {
            cx.e.push(
                &zp,
                format!("`{zp}` has no `name`"),
                "name the pool (e.g. tank)",
            );
            continue;
        };
        let opts = z.get("options");
        let op = zp.key("options");
        // naasctl spells it raidLevel; its profiles raidlevel, under `options` too.
        let level = [
            ("raidLevel", z.get("raidLevel"), zp.key("raidLevel")),
            ("raidlevel", z.get("raidlevel"), zp.key("raidlevel")),
            (
                "raidlevel",
                opts.and_then(|o| o.get("raidlevel")),
                op.key("raidlevel"),
            ),
            (
                "raidLevel",
                opts.and_then(|o| o.get("raidLevel")),
                op.key("raidLevel"),
            ),
        ]
        .into_iter()
        .find_map(|(_, v, p)| v.map(|v| (v, p)));
        let mut n = Node::map().head(format!("from {zp}"));
        mark_read(&mut n, read, "read; nothing to write");
        n.set("name", Node::str(&name).from(&zp.key("name")));
        match level {
            Some((v, p)) => match cx.e.string(Some(v), &p) {
                Some(l) if matches!(l.as_str(), "single" | "mirror" | "raidz" | "raidz2") => {
                    n.set("raidLevel", Node::str(&l).from(&p));
                }
                Some(l) => {
                    cx.skip(&zp, format!("raid level `{l}`: labwright creates single, mirror, raidz and raidz2 pools"));
                    continue;
                }
                None => continue,
            },
            None => {
                let w = env_word(&name);
                n.set("raidLevel", cx.decide(&format!("{w}_RAID_LEVEL"), format!("naasctl gave pool {name} no raid level: single, mirror, raidz or raidz2")));
            }
        }
        let dp = zp.key("devices");
        let mut devs = Node::seq();
        for (j, d) in cx.e.list(z.get("devices"), &dp).iter().enumerate() {
            let p = dp.index(j);
            let Some(d) = cx.e.string(Some(d), &p) else {
                continue;
            };
            if is_placeholder_device(&d) {
                let var = format!("{}_DISK{}", env_word(&name), j + 1);
                let node = cx
                    .decide(&var, format!("naasctl's placeholder `{d}`: the disk's stable path (`ls -l /dev/disk/by-id`)"))
                    .from(&p)
                    .note(format!("was the placeholder `{d}`"));
                devs.push(node);
            } else {
                devs.push(Node::str(&d).from(&p));
            }
        }
        n.set("devices", devs);
        for (key, v, p) in [
            ("ashift", z.get("ashift"), zp.key("ashift")),
            (
                "ashift",
                opts.and_then(|o| o.get("ashift")),
                op.key("ashift"),
            ),
        ] {
            if let Some((a, _)) = cx.e.int(v, &p) {
                n.set(key, Node::int(a).from(&p));
                break;
            }
        }
        for (v, p) in [
            (z.get("compression"), zp.key("compression")),
            (
                opts.and_then(|o| o.get("compression")),
                op.key("compression"),
            ),
        ] {
            if let Some(c) = cx.e.string(v, &p) {
                let lw = match c.as_str() {
                    "on" | "lz4" => "lz4",
                    "zstd" => "zstd",
                    "off" => "off",
                    _ => {
                        cx.skip(
                            &p,
                            format!("compression `{c}`: labwright sets lz4, zstd or off"),
                        );
                        break;
                    }
                };
                n.set("compression", Node::str(lw).from(&p));
                break;
            }
        }
        n.set(
            "phase",
            Node::int(u64::from(phase.max(1))).note(if phase == 0 {
                "pools are phase 1 in labwright; naasctl created it now"
            } else {
                "from its phase profile"
            }),
        );
        out.push(n);
    }
}

fn is_placeholder_device(d: &str) -> bool {
    let last = d.rsplit('/').next().unwrap_or(d).to_ascii_uppercase();
    let stem = last.trim_end_matches(|c: char| c.is_ascii_digit());
    stem.len() < last.len()
        && matches!(
            stem,
            "HDD" | "SSD" | "DISK" | "NVME" | "DEVICE" | "HDD_" | "DISK_"
        )
}

/// A profile's `datasets` (names or `{name, snapshots, quota}`) → `storage.datasets`.
pub fn datasets(cx: &mut Cx<'_>, list: Option<&Value>, lp: &Path, phase: u8, out: &mut Node) {
    for (i, d) in cx.e.list(list, lp).iter().enumerate() {
        let dp = lp.index(i);
        let mut n = Node::map();
        match d {
            Value::String(s) => n.set("name", Node::str(s).from(&dp)),
            Value::Object(m) => {
                let Some(name) = cx.e.string(m.get("name"), &dp.key("name")) else {
                    cx.e.push(
                        &dp,
                        format!("`{dp}` has no `name`"),
                        "name the dataset (tank/media)",
                    );
                    continue;
                };
                n.set("name", Node::str(&name).from(&dp.key("name")));
                if let Some(q) = cx.e.string(m.get("quota"), &dp.key("quota")) {
                    n.set("quota", Node::str(&q).from(&dp.key("quota")));
                }
            }
            other => {
                cx.e.push(
                    &dp,
                    format!(
                        "`{dp}` should be a dataset name or mapping, but is {}",
                        crate::input::kind(other)
                    ),
                    "write `- tank/media`",
                );
                continue;
            }
        }
        n.set(
            "phase",
            Node::int(u64::from(phase.max(1))).note("from its phase profile"),
        );
        out.push(n);
    }
}

/// `proxmoxBackupJobs[]` → `backups.jobs`.
pub fn backup_jobs(cx: &mut Cx<'_>, list: Option<&Value>, lp: &Path, phase: u8, out: &mut Node) {
    for (i, j) in cx.e.list(list, lp).iter().enumerate() {
        let jp = lp.index(i);
        if cx.e.map(Some(j), &jp).is_none() {
            continue;
        }
        let mut read = Vec::new();
        if !ensure_present(cx, j, &jp, &mut read) || !cx.on_node(j, &jp, &mut read) {
            continue;
        }
        let mut n = Node::map().head(format!("from {jp}"));
        mark_read(&mut n, read, "read; nothing to write");
        match cx.e.string(j.get("id"), &jp.key("id")) {
            Some(id) => n.set("id", Node::str(&id).from(&jp.key("id"))),
            None => n.set(
                "id",
                Node::str(&format!("job-{}", i + 1)).note("naasctl gave no id"),
            ),
        }
        match cx.e.string(j.get("schedule"), &jp.key("schedule")) {
            Some(s) => n.set("schedule", Node::str(&s).from(&jp.key("schedule"))),
            None => n.set(
                "schedule",
                cx.decide(
                    "BACKUP_SCHEDULE",
                    "naasctl gave a backup job no schedule: a PVE calendar event such as 02:30",
                ),
            ),
        }
        match cx.e.string(j.get("storage"), &jp.key("storage")) {
            Some(s) => n.set("storage", Node::str(&s).from(&jp.key("storage"))),
            None => n.set(
                "storage",
                cx.decide(
                    "BACKUP_STORAGE",
                    "naasctl gave a backup job no storage: the PVE storage id it writes to",
                ),
            ),
        }
        let mut sel = Node::map();
        if let Some(true) = cx.e.flag(j.get("all"), &jp.key("all")) {
            sel.set("all", Node::bool(true).from(&jp.key("all")));
        } else if let Some(v) = j.get("vmid") {
            let vp = jp.key("vmid");
            let mut ids = Node::seq();
            match v {
                Value::Number(_) => ids.push(Node::str(&v.to_string()).from(&vp)),
                _ => {
                    let is_list = v.is_array();
                    for (k, w) in
                        cx.e.words(Some(v), &vp)
                            .unwrap_or_default()
                            .iter()
                            .enumerate()
                    {
                        match w.parse::<u64>() {
                            Ok(id) => ids.push(Node::int(id).from(&if is_list {
                                vp.index(k)
                            } else {
                                vp.clone()
                            })),
                            Err(_) => cx.e.push(
                                &vp,
                                format!("`{vp}` holds `{w}`, not a VMID"),
                                "list VMIDs: `vmid: 100,300`",
                            ),
                        }
                    }
                }
            }
            sel.set("vmids", ids);
        } else {
            sel.set(
                "all",
                Node::bool(true).note("naasctl named no guests: vzdump's default is all"),
            );
        }
        n.set("selection", sel);
        for k in ["mode", "compress"] {
            if let Some(v) = cx.e.string(j.get(k), &jp.key(k)) {
                let ok = match k {
                    "mode" => matches!(v.as_str(), "snapshot" | "suspend" | "stop"),
                    _ => matches!(v.as_str(), "zstd" | "lzo" | "gzip" | "none"),
                };
                if ok {
                    n.set(k, Node::str(&v).from(&jp.key(k)));
                } else {
                    cx.skip(&jp.key(k), format!("{k} `{v}` is not one labwright knows"));
                }
            }
        }
        n.set("retention", retention(cx, j, &jp));
        if let Some(b) = cx.e.flag(j.get("enabled"), &jp.key("enabled")) {
            n.set("enabled", Node::bool(b).from(&jp.key("enabled")));
        }
        if phase > 0 {
            n.set(
                "phase",
                Node::int(u64::from(phase)).note("from its phase profile"),
            );
        }
        if let Some(c) = cx.e.string(j.get("comment"), &jp.key("comment")) {
            n.set("comment", Node::str(&c).from(&jp.key("comment")));
        }
        out.push(n);
    }
}

/// PVE's `prune-backups: keep-daily=7,keep-weekly=4` (or a `retention` mapping).
fn retention(cx: &mut Cx<'_>, j: &Value, jp: &Path) -> Node {
    let mut r = Node::map();
    let pp = jp.key("prune-backups");
    if let Some(s) = cx.e.string(j.get("prune-backups"), &pp) {
        for part in s.split(',') {
            let Some((k, v)) = part.trim().split_once('=') else {
                continue;
            };
            let key = k.trim().strip_prefix("keep-").unwrap_or(k.trim());
            match (key, v.trim().parse::<u64>()) {
                ("last" | "daily" | "weekly" | "monthly" | "yearly", Ok(n)) => {
                    r.set(key, Node::int(n).from(&pp))
                }
                _ => cx.e.push(
                    &pp,
                    format!(
                        "`{pp}`: `{}` is not keep-last/daily/weekly/monthly/yearly=N",
                        part.trim()
                    ),
                    "write e.g. keep-daily=7,keep-weekly=4",
                ),
            }
        }
    }
    let rp = jp.key("retention");
    if let Some(m) = cx.e.map(j.get("retention"), &rp).cloned() {
        for (k, v) in &m {
            let key = k.strip_prefix("keep-").unwrap_or(k);
            let key = key
                .strip_prefix("keep")
                .map(|s| s.to_ascii_lowercase())
                .unwrap_or(key.to_string());
            if !matches!(
                key.as_str(),
                "last" | "daily" | "weekly" | "monthly" | "yearly"
            ) {
                continue;
            }
            if let Some((n, _)) = cx.e.int(Some(v), &rp.key(k)) {
                r.set(&key, Node::int(n).from(&rp.key(k)));
            }
        }
    }
    if r.is_empty() {
        r = r.note("naasctl kept no retention: add e.g. daily: 7, weekly: 4, monthly: 6");
    }
    r
}

/// `tailscaleConfig` (ignored by naasctl's schema) → `tailscale`. The auth key
/// becomes a reference; its value is never read.
pub fn tailscale(cx: &mut Cx<'_>, root: &Value) -> Option<Node> {
    let tp = Path::root().key("tailscaleConfig");
    let t = cx.e.map(root.get("tailscaleConfig"), &tp)?.clone();
    let mut n = Node::map().head(format!(
        "from {tp} (naasctl's schema ignored this block; labwright acts on it)"
    ));
    if let Some(s) = cx.e.string(t.get("tailnet"), &tp.key("tailnet")) {
        n.set("tailnet", Node::str(&s).from(&tp.key("tailnet")));
    }
    for key in ["authKey", "authkey", "auth_key"] {
        let kp = tp.key(key);
        let Some(v) = t.get(key) else { continue };
        let var = match v.as_str().map(str::trim) {
            Some(s) if s.starts_with("env:") => s["env:".len()..].to_string(),
            Some(s) if s.starts_with("${") && s.ends_with('}') => s[2..s.len() - 1]
                .split(":-")
                .next()
                .unwrap_or("TAILSCALE_AUTHKEY")
                .to_string(),
            _ => "TAILSCALE_AUTHKEY".to_string(),
        };
        cx.secrets.push(super::cx::Secret {
            path: kp.clone(),
            var: Some(var.clone()),
            note: format!("export {var}=… (a one-off, pre-approved key) before apply"),
        });
        n.set(
            "authKey",
            Node::str(&format!("env:{var}"))
                .from(&kp)
                .note(format!("secret not copied: set {var}")),
        );
        break;
    }
    let rp = tp.key("subnetRoutes");
    let mut routes = Node::seq();
    for (i, r) in cx.e.list(t.get("subnetRoutes"), &rp).iter().enumerate() {
        let p = rp.index(i);
        let Some(m) = cx.e.map(Some(r), &p).cloned() else {
            continue;
        };
        let (Some(route), Some(via)) = (
            cx.e.string(m.get("route").or(m.get("cidr")), &p.key("route")),
            cx.e.string(m.get("via"), &p.key("via")),
        ) else {
            cx.skip(
                &p,
                "a subnet route needs `route` and `via` (the VM that advertises it)",
            );
            continue;
        };
        let mut e = Node::map();
        let rk = if m.get("route").is_some() {
            "route"
        } else {
            "cidr"
        };
        e.set("route", Node::str(&route).from(&p.key(rk)));
        e.set("via", Node::str(&via).from(&p.key("via")));
        routes.push(e);
        cx.ts_routes.push((via, route, p.key(rk)));
    }
    if !routes.is_empty() {
        n.set("subnetRoutes", routes);
    }
    Some(n)
}
