//! `vmProvision[]` → `vms[]` (hardware, disks, NICs, cloud-init user, tags), with the
//! power state of `vms[]` folded in by VMID.

use std::collections::BTreeMap;

use labwright_spec::types::{Size, check_tag};
use serde_json::Value;

use super::cx::{Cx, ensure_present, mark_read};
use crate::out::Node;
use crate::path::Path;

/// Roles whose VMIDs the seeds fix, recognised in `role-*` tags.
const ROLES: [&str; 6] = [
    "edge-gateway",
    "firewall-router",
    "monitoring",
    "app-host",
    "home-assistant",
    "pbs",
];

/// The power states of `vms[]`, by VMID, with the path of each `desiredPower`.
pub fn power_states(cx: &mut Cx<'_>, root: &Value) -> BTreeMap<u64, (String, Path)> {
    let mut out = BTreeMap::new();
    let lp = Path::root().key("vms");
    for (i, item) in cx.e.list(root.get("vms"), &lp).iter().enumerate() {
        let p = lp.index(i);
        if cx.e.map(Some(item), &p).is_none() {
            continue;
        }
        let vmid = cx.e.int(item.get("vmid"), &p.key("vmid"));
        let pp = p.key("desiredPower");
        let power = cx.e.string(item.get("desiredPower"), &pp);
        if let (Some((vmid, _)), Some(power)) = (vmid, power) {
            if !matches!(power.as_str(), "running" | "stopped") {
                cx.e.push(
                    &pp,
                    format!("`{pp}` is `{power}`; naasctl knows `running` and `stopped`"),
                    "write `desiredPower: running` or `desiredPower: stopped`",
                );
                continue;
            }
            if let Some((_, first)) = out.get(&vmid) {
                let msg =
                    format!("VMID {vmid} has a second power state here (the first is {first})");
                cx.e.push(&p.key("vmid"), msg, "give each VMID one entry in `vms`");
                continue;
            }
            out.insert(vmid, (power, p));
        }
    }
    out
}

/// Maps one `vmProvision[i]`; `None` when it is left out (absent, another node).
pub fn vm(
    cx: &mut Cx<'_>,
    item: &Value,
    p: &Path,
    power: &mut BTreeMap<u64, (String, Path)>,
    phase: Option<u8>,
) -> Option<Node> {
    cx.e.map(Some(item), p)?;
    let mut read = Vec::new();
    if !ensure_present(cx, item, p, &mut read) || !cx.on_node(item, p, &mut read) {
        return None;
    }
    let vmid = cx.e.int(item.get("vmid"), &p.key("vmid"));
    let name = cx.e.string(item.get("name"), &p.key("name"));
    for (key, what) in [("vmid", "VMID"), ("name", "name")] {
        if item.get(key).is_none() {
            cx.e.push(
                p,
                format!("`{p}` has no `{key}`"),
                format!("give every VM its {what}"),
            );
        }
    }
    let (Some((vmid, _)), Some(name)) = (vmid, name) else {
        return None;
    };
    let mut vm = Node::map().head(format!("from {p} ({name})"));
    mark_read(&mut vm, read, "read; nothing to write");
    vm.set("vmid", Node::int(vmid).from(&p.key("vmid")));
    vm.set("name", Node::str(&name).from(&p.key("name")));

    let tags = tags(cx, item, p);
    if let Some((role, tp)) = tags.iter().find_map(|(t, tp)| {
        let r = t.strip_prefix("role-")?;
        ROLES.contains(&r).then(|| (r.to_string(), tp.clone()))
    }) {
        vm.set("role", Node::str(&role).from(&tp).note("the role-* tag"));
    }
    if let Some(ph) = phase {
        vm.set(
            "phase",
            Node::int(u64::from(ph)).note("from its phase profile"),
        );
    }

    // CPU and memory.
    let cpu = cx.e.map(item.get("cpu"), &p.key("cpu")).cloned();
    let cpu_p = p.key("cpu");
    let cores = cpu
        .as_ref()
        .and_then(|c| cx.e.int(c.get("cores"), &cpu_p.key("cores")));
    vm.set(
        "cores",
        match cores {
            Some((n, note)) => with_note(Node::int(n).from(&cpu_p.key("cores")), note),
            None => Node::int(1).note("naasctl gave no cpu.cores; PVE's default"),
        },
    );
    if let Some((n, note)) = cpu
        .as_ref()
        .and_then(|c| cx.e.int(c.get("sockets"), &cpu_p.key("sockets")))
    {
        vm.set(
            "sockets",
            with_note(Node::int(n).from(&cpu_p.key("sockets")), note),
        );
    }
    let mem_p = p.key("memory");
    let mem = cx.e.map(item.get("memory"), &mem_p).cloned();
    let size = mem
        .as_ref()
        .and_then(|m| cx.e.int(m.get("size"), &mem_p.key("size")));
    vm.set(
        "memory",
        match size {
            Some((mb, note)) => {
                let n = Node::str(&mib(mb)).from(&mem_p.key("size"));
                with_note(n, note.or(Some(format!("{mb} MB"))))
            }
            None => Node::str("512M").note("naasctl gave no memory.size; PVE's default"),
        },
    );
    if let Some(t) = cpu
        .as_ref()
        .and_then(|c| cx.e.string(c.get("type"), &cpu_p.key("type")))
    {
        vm.set("cpu", Node::str(&t).from(&cpu_p.key("type")));
    }
    let boot_p = p.key("boot");
    if let Some(boot) = cx.e.map(item.get("boot"), &boot_p).cloned()
        && let Some(bios) = cx.e.string(boot.get("bios"), &boot_p.key("bios"))
    {
        if matches!(bios.as_str(), "seabios" | "ovmf") {
            vm.set("bios", Node::str(&bios).from(&boot_p.key("bios")));
        } else {
            cx.skip(
                &boot_p.key("bios"),
                format!("bios `{bios}` is not seabios or ovmf"),
            );
        }
    }
    for key in ["machine", "scsihw"] {
        let kp = p.key(key);
        if let Some(v) = cx.e.string(item.get(key), &kp) {
            let ok = match key {
                "machine" => matches!(v.as_str(), "q35" | "pc"),
                _ => matches!(
                    v.as_str(),
                    "virtio-scsi-single"
                        | "virtio-scsi-pci"
                        | "lsi"
                        | "lsi53c810"
                        | "megasas"
                        | "pvscsi"
                ),
            };
            if ok {
                vm.set(
                    key,
                    Node::str(&v)
                        .from(&kp)
                        .note("naasctl's schema ignored this key"),
                );
            } else {
                cx.skip(&kp, format!("`{v}` is not a {key} value labwright knows"));
            }
        }
    }
    if let Some(os) = cx.e.string(item.get("ostype"), &p.key("ostype")) {
        vm.set("ostype", Node::str(&os).from(&p.key("ostype")));
    }
    vm.set("disks", disks(cx, item, p));
    vm.set("nics", nics(cx, item, p));
    if !tags.is_empty() {
        let mut list = Node::seq();
        for (t, tp) in &tags {
            list.push(fixed_tag(t, tp));
        }
        vm.set("tags", list);
    }
    if let Some(agent) = agent(cx, item.get("agent"), &p.key("agent")) {
        vm.set("agent", Node::bool(agent).from(&p.key("agent")));
    }
    for key in ["onboot", "protection"] {
        if let Some(b) = cx.e.flag(item.get(key), &p.key(key)) {
            vm.set(key, Node::bool(b).from(&p.key(key)));
        }
    }
    if let Some(d) = cx.e.string(item.get("description"), &p.key("description")) {
        vm.set("description", Node::str(&d).from(&p.key("description")));
    }
    bootstrap(cx, item, p, &name, &mut vm);
    if let Some((state, pp)) = power.remove(&vmid) {
        vm.set(
            "power",
            Node::str(&state)
                .from(&pp.key("desiredPower"))
                .note("power state by VMID"),
        );
        vm.src.push(pp.key("vmid"));
        vm.note
            .get_or_insert_with(|| "read; nothing to write".to_string());
    }
    Some(vm)
}

fn with_note(n: Node, note: Option<String>) -> Node {
    match note {
        Some(t) => n.note(t),
        None => n,
    }
}

/// MB (naasctl, as PVE) in labwright's form: `8G` when whole GiB, else `1536M`.
fn mib(mb: u64) -> String {
    if mb >= 1024 && mb.is_multiple_of(1024) {
        format!("{}G", mb / 1024)
    } else {
        format!("{mb}M")
    }
}

/// The VM's tags with their paths (a list, or one `;`/`,` separated string).
fn tags(cx: &mut Cx<'_>, item: &Value, p: &Path) -> Vec<(String, Path)> {
    let tp = p.key("tags");
    let Some(words) = cx.e.words(item.get("tags"), &tp) else {
        return Vec::new();
    };
    let is_list = matches!(item.get("tags"), Some(Value::Array(_)));
    words
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, if is_list { tp.index(i) } else { tp.clone() }))
        .collect()
}

/// A tag as PVE accepts it; an invalid one is corrected, and says so.
fn fixed_tag(t: &str, tp: &Path) -> Node {
    match check_tag(t) {
        Ok(()) => Node::str(t).from(tp),
        Err((why, Some(fix))) => Node::str(&fix).from(tp).note(format!("was `{t}`: {why}")),
        Err((why, None)) => Node::str(t).from(tp).note(why),
    }
}

/// `agent: 1`, `true` or PVE's `enabled=1,fstrim_cloned_disks=1`.
fn agent(cx: &mut Cx<'_>, v: Option<&Value>, p: &Path) -> Option<bool> {
    if let Some(Value::String(s)) = v
        && let Some(rest) = s.strip_prefix("enabled=")
    {
        return Some(rest.starts_with('1'));
    }
    cx.e.flag(v, p)
}

/// `disks[]` → `disks.<bus><index>`.
fn disks(cx: &mut Cx<'_>, item: &Value, p: &Path) -> Node {
    let lp = p.key("disks");
    let mut out = Node::map();
    let mut next: BTreeMap<String, u64> = BTreeMap::new();
    for (i, d) in cx.e.list(item.get("disks"), &lp).iter().enumerate() {
        let dp = lp.index(i);
        if cx.e.map(Some(d), &dp).is_none() {
            continue;
        }
        let bus =
            cx.e.string(d.get("interface"), &dp.key("interface"))
                .unwrap_or_else(|| "scsi".into());
        if !matches!(bus.as_str(), "scsi" | "virtio" | "sata" | "ide") {
            cx.skip(
                &dp,
                format!("disk bus `{bus}` is not scsi, virtio, sata or ide"),
            );
            continue;
        }
        let index = match cx.e.int(d.get("index"), &dp.key("index")) {
            Some((n, _)) => n,
            None => *next.get(&bus).unwrap_or(&0),
        };
        next.insert(bus.clone(), index + 1);
        let slot = format!("{bus}{index}");
        let mut disk = Node::map();
        for k in ["interface", "index"] {
            if d.get(k).is_some() {
                disk.src.push(dp.key(k));
            }
        }
        if disk.src.is_empty() {
            disk.note = Some(format!("slot {slot} by position"));
        }
        let sp = dp.key("size");
        match d.get("size") {
            Some(Value::Number(n)) if n.as_u64().is_some() => {
                let g = n.as_u64().unwrap_or(0);
                disk.set(
                    "size",
                    Node::str(&format!("{g}G"))
                        .from(&sp)
                        .note("a bare number is GiB in PVE"),
                );
            }
            _ => match cx.e.string(d.get("size"), &sp) {
                Some(s) => match s.parse::<Size>() {
                    Ok(size) => disk.set("size", Node::str(&size.to_string()).from(&sp)),
                    Err(e) => {
                        cx.e.push(&sp, format!("`{sp}`: {e}"), "write a size such as 32G")
                    }
                },
                None => {
                    cx.e.push(
                        &dp,
                        format!("`{dp}` has no `size`"),
                        "give every disk its size, e.g. `size: 32G`",
                    );
                    continue;
                }
            },
        }
        if let Some(s) = cx.e.string(d.get("storage"), &dp.key("storage")) {
            disk.set("storage", Node::str(&s).from(&dp.key("storage")));
        }
        if let Some(c) = cx.e.string(d.get("cache"), &dp.key("cache")) {
            if matches!(
                c.as_str(),
                "none" | "writethrough" | "writeback" | "unsafe" | "directsync"
            ) {
                disk.set("cache", Node::str(&c).from(&dp.key("cache")));
            } else {
                cx.skip(
                    &dp.key("cache"),
                    format!("cache mode `{c}` is not one PVE knows"),
                );
            }
        }
        for k in ["discard", "iothread", "ssd"] {
            let kp = dp.key(k);
            let b = match d.get(k) {
                Some(Value::String(s)) if s == "ignore" => Some(false),
                v => cx.e.flag(v, &kp),
            };
            if let Some(b) = b {
                disk.set(k, Node::bool(b).from(&kp));
            }
        }
        if out.has(&slot) {
            cx.e.push(
                &dp,
                format!("`{dp}` uses slot {slot} a second time"),
                "give each disk its own interface and index",
            );
            continue;
        }
        out.set(&slot, disk);
    }
    out
}

/// `networks[]` → `nics.net<index>`, then `ipconfig[k]` onto `net<k>`.
fn nics(cx: &mut Cx<'_>, item: &Value, p: &Path) -> Node {
    let lp = p.key("networks");
    let mut out = Node::map();
    let mut next = 0;
    for (i, n) in cx.e.list(item.get("networks"), &lp).iter().enumerate() {
        let np = lp.index(i);
        if cx.e.map(Some(n), &np).is_none() {
            continue;
        }
        let index = match cx.e.int(n.get("index"), &np.key("index")) {
            Some((k, _)) => k,
            None => next,
        };
        next = index + 1;
        let slot = format!("net{index}");
        let mut nic = Node::map();
        for k in ["interface", "index"] {
            if n.get(k).is_some() {
                nic.src.push(np.key(k));
            }
        }
        match cx.e.string(n.get("bridge"), &np.key("bridge")) {
            Some(b) => {
                if !cx.bridges_used.contains(&b) {
                    cx.bridges_used.push(b.clone());
                }
                nic.set("bridge", Node::str(&b).from(&np.key("bridge")))
            }
            None => nic.set(
                "bridge",
                cx.decide(
                    "VM_BRIDGE",
                    format!("{np} names no bridge; labwright needs one (vmbr0 is the LAN)"),
                ),
            ),
        }
        if let Some(m) = cx.e.string(n.get("model"), &np.key("model")) {
            if matches!(
                m.as_str(),
                "virtio" | "e1000" | "e1000e" | "rtl8139" | "vmxnet3"
            ) {
                nic.set("model", Node::str(&m).from(&np.key("model")));
            } else {
                cx.skip(
                    &np.key("model"),
                    format!("NIC model `{m}` is not one labwright knows"),
                );
            }
        }
        if let Some(b) = cx.e.flag(n.get("firewall"), &np.key("firewall")) {
            nic.set("firewall", Node::bool(b).from(&np.key("firewall")));
        }
        if let Some(mac) = cx.e.string(n.get("mac"), &np.key("mac")) {
            nic.set("macAddress", Node::str(&mac).from(&np.key("mac")));
        }
        out.set(&slot, nic);
    }
    let ip = p.key("ipconfig");
    for (k, c) in cx.e.list(item.get("ipconfig"), &ip).iter().enumerate() {
        let cp = ip.index(k);
        let slot = format!("net{k}");
        if !out.has(&slot) {
            cx.skip(&cp, format!("there is no NIC {slot} for this address"));
            continue;
        }
        let pairs = match ipconfig_pairs(c) {
            Some(p) => p,
            None => {
                cx.skip(
                    &cp,
                    "only `ip=` and `gw=` (IPv4) map to a NIC's address and gateway",
                );
                continue;
            }
        };
        let Some(nic) = out.get_mut(&slot) else {
            continue;
        };
        for (key, val, src) in pairs {
            let src = match src {
                Some(s) => cp.key(&s),
                None => cp.clone(),
            };
            match key.as_str() {
                "ip" if val == "dhcp" => nic.src.push(src),
                "ip" => nic.set("address", Node::str(&val).from(&src)),
                _ => nic.set("gateway", Node::str(&val).from(&src)),
            }
        }
    }
    out
}

/// `ip=…,gw=…` or `{ip, gw}`: (key, value, source key when a mapping). `None` when it
/// holds anything else (IPv6), so that nothing is half-taken.
fn ipconfig_pairs(c: &Value) -> Option<Vec<(String, String, Option<String>)>> {
    let mut out = Vec::new();
    match c {
        Value::String(s) => {
            for part in s.split(',') {
                let (k, v) = part.trim().split_once('=')?;
                if !matches!(k, "ip" | "gw") {
                    return None;
                }
                out.push((k.to_string(), v.to_string(), None));
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                let v = v.as_str()?;
                if !matches!(k.as_str(), "ip" | "gw") {
                    return None;
                }
                out.push((k.clone(), v.to_string(), Some(k.clone())));
            }
        }
        _ => return None,
    }
    Some(out)
}

/// `cloudInit` → `bootstrap.user` (name, SSH keys) and `packages`; the password is a
/// secret with nowhere to go. A VM that routes a Tailscale subnet joins the tailnet.
/// A bootstrap needs a cloud image: its URL and checksum are decisions (naasctl cloned
/// a template instead).
fn bootstrap(cx: &mut Cx<'_>, item: &Value, p: &Path, name: &str, vm: &mut Node) {
    let cp = p.key("cloudInit");
    let ci =
        cx.e.map(item.get("cloudInit"), &cp)
            .cloned()
            .unwrap_or_default();
    let mut user = Node::map();
    for key in ["user", "ciuser"] {
        if let Some(u) = cx.e.string(ci.get(key), &cp.key(key)) {
            user.set("name", Node::str(&u).from(&cp.key(key)));
            break;
        }
    }
    for key in ["sshKeys", "sshkeys", "sshAuthorizedKeys"] {
        let kp = cp.key(key);
        let keys = match ci.get(key) {
            Some(Value::String(s)) => Some(
                s.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| (l.to_string(), kp.clone()))
                    .collect::<Vec<_>>(),
            ),
            Some(v) => cx.e.words(Some(v), &kp).map(|w| {
                w.into_iter()
                    .enumerate()
                    .map(|(i, k)| (k, kp.index(i)))
                    .collect()
            }),
            None => None,
        };
        if let Some(keys) = keys {
            let mut list = Node::seq();
            for (k, src) in keys {
                list.push(Node::str(&k).from(&src));
            }
            user.set("sshAuthorizedKeys", list);
            break;
        }
    }
    for k in ci.keys() {
        let kp = cp.key(k);
        if (cx.is_secret)(&kp) {
            cx.secrets.push(super::cx::Secret {
                path: kp,
                var: None,
                note: "not copied: labwright's bootstrap logs in with SSH keys and has no password field".into(),
            });
        }
    }
    let mut boot = Node::map();
    if user.has("name") {
        boot.set("user", user);
    }
    if let Some(pk) = cx.e.words(ci.get("packages"), &cp.key("packages")) {
        let mut list = Node::seq();
        for (i, w) in pk.iter().enumerate() {
            list.push(Node::str(w).from(&cp.key("packages").index(i)));
        }
        boot.set("packages", list);
    }
    let routes: Vec<(String, Path)> = cx
        .ts_routes
        .iter()
        .filter(|(via, _, _)| via == name)
        .map(|(_, r, p)| (r.clone(), p.clone()))
        .collect();
    if !routes.is_empty() {
        let mut ts = Node::map()
            .head("it routes a subnet (tailscaleConfig.subnetRoutes), so it joins the tailnet");
        let mut adv = Node::seq();
        for (r, src) in routes {
            adv.push(Node::str(&r).from(&src));
        }
        ts.set("advertiseRoutes", adv);
        boot.set("tailscale", ts);
    }
    if boot.is_empty() {
        return;
    }
    let template = item
        .get("clone")
        .and_then(|c| c.get("source"))
        .and_then(|s| match s {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        });
    let stem = match &template {
        Some(t) => format!("TEMPLATE_{}", env_word(t)),
        None => env_word(name),
    };
    let why = match &template {
        Some(t) => format!(
            "naasctl cloned template {t}; labwright builds from a cloud image: the URL of the image that template was made from"
        ),
        None => format!("{name} is bootstrapped by cloud-init, which needs a cloud image: its URL"),
    };
    let mut img = Node::map();
    img.set("url", cx.decide(&format!("{stem}_IMAGE_URL"), why));
    img.set(
        "checksum",
        cx.decide(
            &format!("{stem}_IMAGE_CHECKSUM"),
            "the image's checksum as sha256:<hex> or sha512:<hex> (from its SHA*SUMS file)",
        ),
    );
    let mut os =
        Node::map().head("cloud-init needs a cloud image (labwright never clones templates)");
    os.set("cloudImage", img);
    vm.set("os", os);
    vm.set("bootstrap", boot);
}

/// A name as an environment variable word: `app-host` → `APP_HOST`.
pub fn env_word(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A phase profile's entry for a VM the top level already declares: a NIC on another
/// bridge is the seeds' reattachment (app-host → vmbr1 in phase 2). Anything else it
/// changes is left out and listed.
pub fn reattach(cx: &mut Cx<'_>, item: &Value, p: &Path, phase: u8, vm: &mut Node) {
    let mut read = vec![p.key("vmid")];
    if item.get("name").is_some() {
        read.push(p.key("name"));
    }
    let lp = p.key("networks");
    for (i, n) in cx.e.list(item.get("networks"), &lp).iter().enumerate() {
        let np = lp.index(i);
        if cx.e.map(Some(n), &np).is_none() {
            continue;
        }
        let index = match cx.e.int(n.get("index"), &np.key("index")) {
            Some((k, _)) => k,
            None => i as u64,
        };
        let slot = format!("net{index}");
        let Some(bridge) = cx.e.string(n.get("bridge"), &np.key("bridge")) else {
            continue;
        };
        let Some(nic) = vm.get_mut("nics").and_then(|nics| nics.get_mut(&slot)) else {
            cx.skip(
                &np,
                format!("the VM has no {slot} at the top level to move"),
            );
            continue;
        };
        let same = matches!(nic.get_mut("bridge"), Some(b)
            if matches!(&b.val, crate::out::Val::Scalar(s) if *s == crate::out::quote(&bridge)));
        if same {
            cx.skip(&np, format!("{slot} is on {bridge} already: nothing moves"));
            continue;
        }
        let mut r = Node::map().head(format!("from {np}: moves in phase {phase}"));
        for k in ["interface", "index"] {
            if n.get(k).is_some() {
                r.src.push(np.key(k));
            }
        }
        r.set(
            "phase",
            Node::int(u64::from(phase)).note("from its phase profile"),
        );
        r.set("bridge", Node::str(&bridge).from(&np.key("bridge")));
        if !cx.bridges_used.contains(&bridge) {
            cx.bridges_used.push(bridge.clone());
        }
        nic.set("reattach", r);
    }
    let mut marker = Node::map();
    mark_read(&mut marker, read, "the phase profile's entry for this VM");
    vm.head.push(format!(
        "{p} changes this VM in phase {phase}: NIC bridge moves become `reattach`; its other keys are listed as not mapped"
    ));
    vm.src.extend(marker.src);
    vm.note
        .get_or_insert_with(|| "read; nothing to write".to_string());
    cx.skip(
        p,
        "a phase profile's change to a VM the top level declares: only NIC bridge moves map (reattach)",
    );
}
