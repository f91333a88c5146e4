//! `zfs` and `zpool` on the simulated node: datasets with local properties, validated
//! the way OpenZFS validates them, and the messages it prints.

use indexmap::IndexMap;

use crate::fsmap;
use crate::state::{Dataset, Node};

use super::Out;

/// Properties `zfs create -o` / `zfs set` accept here: name, default (`-p` form),
/// inherited by children.
const PROPS: &[(&str, &str, bool)] = &[
    ("quota", "0", false),
    ("reservation", "0", false),
    ("recordsize", "131072", true),
    ("mountpoint", "", true),
    ("compression", "off", true),
    ("atime", "on", true),
    ("canmount", "on", false),
    ("xattr", "sa", true),
    ("copies", "1", true),
    ("primarycache", "all", true),
    ("sync", "standard", true),
    ("dnodesize", "legacy", true),
    ("acltype", "off", true),
    ("relatime", "on", true),
];

/// Read-only properties `zfs get` reports.
const READONLY: &[&str] = &["type", "used", "available", "mounted"];

fn compression_ok(v: &str) -> bool {
    let num_in = |s: &str, lo: u32, hi: u32| s.parse::<u32>().is_ok_and(|n| (lo..=hi).contains(&n));
    matches!(
        v,
        "on" | "off" | "lzjb" | "gzip" | "zle" | "lz4" | "zstd" | "zstd-fast"
    ) || v.strip_prefix("gzip-").is_some_and(|n| num_in(n, 1, 9))
        || v.strip_prefix("zstd-fast-").is_some_and(|n| {
            num_in(n, 1, 10)
                || [
                    "20", "30", "40", "50", "60", "70", "80", "90", "100", "500", "1000",
                ]
                .contains(&n)
        })
        || v.strip_prefix("zstd-").is_some_and(|n| num_in(n, 1, 19))
}

/// Parses a ZFS size (`10G`, `1.5T`, `512`, `none`) into bytes.
pub fn parse_size(v: &str) -> Option<u64> {
    if v == "none" {
        return Some(0);
    }
    let t = v.trim_end_matches(['B', 'b']).trim_end_matches('i');
    let (num, mult) = match t.chars().last()? {
        c @ ('K' | 'k' | 'M' | 'm' | 'G' | 'g' | 'T' | 't' | 'P' | 'p' | 'E' | 'e') => {
            let exp = "KMGTPE"
                .find(c.to_ascii_uppercase())
                .map_or(0, |i| i as u32 + 1);
            (&t[..t.len() - 1], 1u64 << (10 * exp))
        }
        _ => (t, 1),
    };
    let n: f64 = num.parse().ok()?;
    (n >= 0.0 && n.is_finite()).then_some((n * mult as f64) as u64)
}

/// Bytes the way `zfs get` shows them without `-p` (`10G`, `1.50T`).
pub fn nice(bytes: u64) -> String {
    const U: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}")
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{}{}", v.round(), U[i])
    } else {
        format!("{v:.2}{}", U[i])
    }
}

/// Checks `prop=value`; returns the value as stored, or the reason after
/// `cannot create 'X': `.
pub fn check_prop(prop: &str, value: &str) -> Result<String, String> {
    // User properties (`module:name`): any value up to 8 KiB, ZFS's name alphabet.
    if prop.contains(':') {
        let ok_name = prop.len() <= 256
            && prop.starts_with(|c: char| c.is_ascii_lowercase())
            && prop
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ":._-".contains(c));
        if !ok_name {
            return Err(format!("invalid property '{prop}'"));
        }
        if value.len() > 8191 {
            return Err(format!("property value too long for '{prop}'"));
        }
        return Ok(value.to_string());
    }
    let one_of = |allowed: &str, ok: bool| {
        if ok {
            Ok(value.to_string())
        } else {
            Err(format!("'{prop}' must be one of '{allowed}'"))
        }
    };
    match prop {
        "compression" => one_of(
            "on | off | lzjb | gzip | gzip-[1-9] | zle | lz4 | zstd | zstd-[1-19] | zstd-fast | zstd-fast-[1-10,20,30,40,50,60,70,80,90,100,500,1000]",
            compression_ok(value),
        ),
        "atime" | "relatime" => one_of("on | off", matches!(value, "on" | "off")),
        "xattr" => one_of(
            "on | off | dir | sa",
            matches!(value, "on" | "off" | "dir" | "sa"),
        ),
        "acltype" => one_of(
            "off | nfsv4 | posix",
            matches!(value, "off" | "noacl" | "nfsv4" | "posix" | "posixacl"),
        )
        .map(|v| match v.as_str() {
            "posixacl" => "posix".to_string(),
            "noacl" => "off".to_string(),
            _ => v,
        }),
        "canmount" => one_of(
            "on | off | noauto",
            matches!(value, "on" | "off" | "noauto"),
        ),
        "sync" => one_of(
            "standard | always | disabled",
            matches!(value, "standard" | "always" | "disabled"),
        ),
        "copies" => one_of("1 | 2 | 3", matches!(value, "1" | "2" | "3")),
        "primarycache" => one_of(
            "all | none | metadata",
            matches!(value, "all" | "none" | "metadata"),
        ),
        "dnodesize" => one_of(
            "legacy | auto | 1k | 2k | 4k | 8k | 16k",
            matches!(value, "legacy" | "auto" | "1k" | "2k" | "4k" | "8k" | "16k"),
        ),
        "quota" | "reservation" => parse_size(value)
            .map(|b| b.to_string())
            .ok_or_else(|| format!("bad numeric value '{value}'")),
        "recordsize" => {
            let b = parse_size(value).ok_or_else(|| format!("bad numeric value '{value}'"))?;
            if (512..=16 << 20).contains(&b) && b.is_power_of_two() {
                Ok(b.to_string())
            } else {
                Err("'recordsize' must be a power of 2 from 512B to 16M".into())
            }
        }
        "mountpoint" => match value {
            "none" | "legacy" => Ok(value.to_string()),
            v if v.starts_with('/') => Ok(fsmap::norm(v)),
            _ => Err("'mountpoint' must be an absolute path, 'none', or 'legacy'".into()),
        },
        _ => Err(format!("invalid property '{prop}'")),
    }
}

/// OpenZFS's dataset name check, as `cannot create 'X': …` reasons.
fn check_name(name: &str) -> Result<(), String> {
    if name.starts_with('/') {
        return Err("leading slash in name".into());
    }
    if name.ends_with('/') {
        return Err("trailing slash in name".into());
    }
    if name.split('/').any(str::is_empty) {
        return Err("empty component in name".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.: /".contains(*c)))
    {
        return Err(format!("invalid character '{c}' in name"));
    }
    if name.len() > 255 {
        return Err("name is too long".into());
    }
    Ok(())
}

/// The mountpoint a dataset inherits from its parent (`none` stays `none`).
fn inherited_mountpoint(node: &Node, name: &str) -> String {
    match name.rsplit_once('/') {
        Some((parent, leaf)) => match node.datasets.get(parent).map(|d| d.mountpoint.as_str()) {
            Some(p) if p.starts_with('/') => fsmap::norm(&format!("{p}/{leaf}")),
            Some(other) => other.to_string(),
            None => format!("/{name}"),
        },
        None => format!("/{name}"),
    }
}

/// Creates a dataset (the caller has validated everything).
fn insert(node: &mut Node, name: &str, props: IndexMap<String, String>) {
    let mountpoint = props
        .get("mountpoint")
        .cloned()
        .unwrap_or_else(|| inherited_mountpoint(node, name));
    let mounted = mountpoint.starts_with('/') && props.get("canmount").is_none_or(|c| c == "on");
    if mounted {
        fsmap::mkdir_p(&mut node.files, &mountpoint);
    }
    node.datasets.insert(
        name.to_string(),
        Dataset {
            name: name.to_string(),
            mountpoint,
            mounted,
            props,
        },
    );
}

/// The root dataset of a new pool (`POST …/disks/zfs`): mounted at `/NAME`, with the
/// compression PVE sets on it.
pub fn create_pool_root(node: &mut Node, name: &str, compression: &str) {
    let mut props = IndexMap::new();
    props.insert("compression".to_string(), compression.to_string());
    insert(node, name, props);
}

/// Drops a destroyed pool's datasets.
pub fn destroy_pool(node: &mut Node, pool: &str) {
    let prefix = format!("{pool}/");
    node.datasets
        .retain(|n, _| n != pool && !n.starts_with(&prefix));
    fsmap::remove_tree(&mut node.files, &format!("/{pool}"));
}

/// Is `path` the mountpoint of a mounted dataset?
pub fn is_mounted_mountpoint(node: &Node, path: &str) -> bool {
    let p = fsmap::norm(path);
    node.datasets
        .values()
        .any(|d| d.mounted && d.mountpoint == p)
}

pub(super) fn pool_names(node: &Node) -> Vec<String> {
    node.zpools
        .iter()
        .filter_map(|p| p.get("name").and_then(|v| v.as_str()).map(String::from))
        .collect()
}

pub fn zfs(node: &mut Node, args: &[String]) -> Out {
    match args.first().map(String::as_str) {
        Some("list") => list(node, &args[1..]),
        Some("get") => get(node, &args[1..]),
        Some("create") => create(node, &args[1..]),
        Some("set") => set(node, &args[1..]),
        Some(c @ ("mount" | "unmount" | "umount")) => mount(node, c != "mount", &args[1..]),
        Some(other) => Out::err(
            2,
            format!("unrecognized command '{other}'\nusage: zfs command args ...\n"),
        ),
        None => Out::err(2, "usage: zfs command args ...\n".into()),
    }
}

fn list(node: &Node, args: &[String]) -> Out {
    let mut fields = vec!["name", "used", "avail", "refer", "mountpoint"];
    let (mut tab, mut i) = (false, 0);
    let mut wanted: Vec<String> = vec![];
    while i < args.len() {
        match args[i].as_str() {
            "-H" => tab = true,
            "-p" | "-r" => {}
            "-Hp" | "-pH" => tab = true,
            "-t" => i += 1,
            "-o" => {
                fields = args
                    .get(i + 1)
                    .map(|f| f.split(',').collect())
                    .unwrap_or_default();
                i += 1;
            }
            a if a.starts_with('-') => {}
            a => wanted.push(a.to_string()),
        }
        i += 1;
    }
    for w in &wanted {
        if !node.datasets.contains_key(w) {
            return Out::err(1, format!("cannot open '{w}': dataset does not exist\n"));
        }
    }
    let mut out = String::new();
    let mut names: Vec<&String> = node.datasets.keys().collect();
    names.sort();
    for n in names {
        if !wanted.is_empty()
            && !wanted
                .iter()
                .any(|w| n == w || n.starts_with(&format!("{w}/")))
        {
            continue;
        }
        let d = &node.datasets[n];
        let cols: Vec<String> = fields
            .iter()
            .map(|f| value(node, d, f, true).unwrap_or_else(|| "-".into()))
            .collect();
        out.push_str(&cols.join(if tab { "\t" } else { "  " }));
        out.push('\n');
    }
    Out::ok(out)
}

fn used(node: &Node, d: &Dataset) -> u64 {
    if !d.mountpoint.starts_with('/') {
        return 0;
    }
    fsmap::tree(&node.files, &d.mountpoint)
        .iter()
        .filter_map(|(_, c)| c.as_ref().map(|c| c.len() as u64))
        .sum()
}

/// A property's value (and for settable ones, whether it is local) as `zfs get` shows it.
fn value(node: &Node, d: &Dataset, prop: &str, parsable: bool) -> Option<String> {
    let size = |b: u64| if parsable { b.to_string() } else { nice(b) };
    Some(match prop {
        "name" => d.name.clone(),
        "type" => "filesystem".into(),
        "mounted" => if d.mounted { "yes" } else { "no" }.into(),
        "mountpoint" => d.mountpoint.clone(),
        "used" | "refer" | "referenced" => size(used(node, d)),
        "avail" | "available" => {
            let pool = d.name.split('/').next().unwrap_or("");
            let total = node
                .zpools
                .iter()
                .find(|p| p.get("name").and_then(|v| v.as_str()) == Some(pool))
                .and_then(|p| p.get("size").and_then(|v| v.as_u64()))
                .unwrap_or(0);
            size(total.saturating_sub(used(node, d)))
        }
        // A user property that is not set reads as `-`.
        p if p.contains(':') => source_of(node, d, p).map_or_else(|| "-".into(), |(v, _)| v),
        _ => {
            let (_, default, inherits) = PROPS.iter().find(|(n, _, _)| *n == prop)?;
            let raw = source_of(node, d, prop)
                .map(|(v, _)| v)
                .unwrap_or_else(|| default.to_string());
            let _ = inherits;
            match prop {
                "quota" | "reservation" if !parsable && raw == "0" => "none".into(),
                "quota" | "reservation" | "recordsize" if !parsable => {
                    raw.parse().map(nice).unwrap_or(raw)
                }
                _ => raw,
            }
        }
    })
}

/// Where a settable property's value comes from: (value, `local` or
/// `inherited from X`); `None` means the default.
fn source_of(node: &Node, d: &Dataset, prop: &str) -> Option<(String, String)> {
    if let Some(v) = d.props.get(prop) {
        return Some((v.clone(), "local".into()));
    }
    // User properties inherit like the built-in inheritable ones.
    let inherits = prop.contains(':') || PROPS.iter().any(|(n, _, i)| *n == prop && *i);
    if !inherits {
        return None;
    }
    let mut name = d.name.as_str();
    while let Some((parent, _)) = name.rsplit_once('/') {
        if let Some(v) = node.datasets.get(parent).and_then(|p| p.props.get(prop)) {
            return Some((v.clone(), format!("inherited from {parent}")));
        }
        name = parent;
    }
    None
}

fn get(node: &Node, args: &[String]) -> Out {
    let (mut tab, mut parsable, mut recursive) = (false, false, false);
    let mut sources: Option<Vec<String>> = None;
    let mut fields: Vec<String> = ["name", "property", "value", "source"]
        .map(String::from)
        .to_vec();
    let mut rest: Vec<String> = vec![];
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-s" | "-o" | "-t" | "-d" => {
                let v = args.get(i + 1).cloned().unwrap_or_default();
                let list: Vec<String> = v.split(',').map(String::from).collect();
                match a {
                    "-s" => sources = Some(list),
                    "-o" => fields = list,
                    _ => {}
                }
                i += 1;
            }
            _ if a.starts_with('-') && a.len() > 1 => {
                for c in a[1..].chars() {
                    match c {
                        'H' => tab = true,
                        'p' => parsable = true,
                        'r' => recursive = true,
                        _ => {}
                    }
                }
            }
            _ => rest.push(a.to_string()),
        }
        i += 1;
    }
    let Some(props_arg) = rest.first().cloned() else {
        return Out::err(2, "missing property argument\n".into());
    };
    let targets: Vec<String> = rest[1..].to_vec();
    let mut names: Vec<String> = vec![];
    for t in &targets {
        if !node.datasets.contains_key(t) {
            return Out::err(1, format!("cannot open '{t}': dataset does not exist\n"));
        }
        let mut all: Vec<&String> = node.datasets.keys().collect();
        all.sort();
        for n in all {
            if n == t || (recursive && n.starts_with(&format!("{t}/"))) {
                names.push(n.clone());
            }
        }
    }
    let props: Vec<String> = if props_arg == "all" {
        READONLY
            .iter()
            .map(|s| s.to_string())
            .chain(PROPS.iter().map(|(n, _, _)| n.to_string()))
            .collect()
    } else {
        props_arg.split(',').map(String::from).collect()
    };
    for p in &props {
        if !p.contains(':')
            && !READONLY.contains(&p.as_str())
            && !PROPS.iter().any(|(n, _, _)| n == p)
            && !["name", "avail", "refer", "referenced"].contains(&p.as_str())
        {
            return Out::err(2, format!("bad property list: invalid property '{p}'\n"));
        }
    }
    let mut out = String::new();
    for n in &names {
        let d = &node.datasets[n];
        // `all` lists the user properties (`module:name`) set on the dataset too.
        let mut props = props.clone();
        if props_arg == "all" {
            props.extend(d.props.keys().filter(|k| k.contains(':')).cloned());
        }
        for p in &props {
            let src = if READONLY.contains(&p.as_str()) || p == "name" {
                "-".to_string()
            } else if p == "mountpoint" && !d.props.contains_key("mountpoint") {
                source_of(node, d, p).map_or("default".into(), |(_, s)| s)
            } else {
                source_of(node, d, p).map_or("default".into(), |(_, s)| s)
            };
            let src_word = if src.starts_with("inherited") {
                "inherited"
            } else {
                src.as_str()
            };
            if let Some(s) = &sources
                && !s
                    .iter()
                    .any(|x| x == src_word || (x == "none" && src == "-"))
            {
                continue;
            }
            let Some(v) = value(node, d, p, parsable) else {
                continue;
            };
            let cols: Vec<String> = fields
                .iter()
                .map(|f| match f.as_str() {
                    "name" => n.clone(),
                    "property" => p.clone(),
                    "value" => v.clone(),
                    "source" => src.clone(),
                    _ => "-".into(),
                })
                .collect();
            out.push_str(&cols.join(if tab { "\t" } else { "  " }));
            out.push('\n');
        }
    }
    Out::ok(out)
}

/// `zfs create`'s arguments: `-o` properties, positional names, `-p`, and the first
/// option it does not know.
type CreateArgs = (Vec<(String, String)>, Vec<String>, bool, Option<String>);

/// Splits `-o PROP=VALUE` options; the rest are positional.
fn options(args: &[String]) -> CreateArgs {
    let (mut props, mut pos, mut parents) = (vec![], vec![], false);
    let mut bad = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let kv = if a == "-o" {
            i += 1;
            args.get(i).cloned()
        } else if let Some(rest) = a.strip_prefix("-o") {
            Some(rest.to_string())
        } else if a == "-p" {
            parents = true;
            None
        } else if a.starts_with('-') && a.len() > 1 {
            bad.get_or_insert_with(|| a.clone());
            None
        } else {
            pos.push(a.clone());
            None
        };
        if let Some(kv) = kv {
            match kv.split_once('=') {
                Some((k, v)) => props.push((k.to_string(), v.to_string())),
                None => {
                    bad.get_or_insert(format!("-o {kv}"));
                }
            }
        }
        i += 1;
    }
    (props, pos, parents, bad)
}

fn create(node: &mut Node, args: &[String]) -> Out {
    let (props, pos, parents, bad) = options(args);
    if let Some(b) = bad {
        return Out::err(
            2,
            format!(
                "invalid option '{b}'\nusage:\n\tcreate [-p] [-o property=value] ... <filesystem>\n"
            ),
        );
    }
    let [name] = pos.as_slice() else {
        return Out::err(
            2,
            "missing filesystem argument\nusage:\n\tcreate [-p] [-o property=value] ... <filesystem>\n".into(),
        );
    };
    let fail = |why: String| Out::err(1, format!("cannot create '{name}': {why}\n"));
    if let Err(e) = check_name(name) {
        return fail(e);
    }
    let pool = name.split('/').next().unwrap_or("");
    if !pool_names(node).iter().any(|p| p == pool) {
        return fail(format!("no such pool '{pool}'"));
    }
    if node.datasets.contains_key(name) {
        return fail("dataset already exists".into());
    }
    let mut local = IndexMap::new();
    for (k, v) in &props {
        match check_prop(k, v) {
            Ok(v) => {
                local.insert(k.clone(), v);
            }
            Err(e) => return fail(e),
        }
    }
    let parent = name.rsplit_once('/').map(|(p, _)| p.to_string());
    if let Some(p) = &parent
        && !node.datasets.contains_key(p)
    {
        if !parents {
            return fail("parent does not exist".into());
        }
        let mut acc = String::new();
        for seg in p.split('/') {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(seg);
            if !node.datasets.contains_key(&acc) {
                insert(node, &acc.clone(), IndexMap::new());
            }
        }
    }
    insert(node, name, local);
    Out::ok(String::new())
}

fn set(node: &mut Node, args: &[String]) -> Out {
    let (assign, targets): (Vec<&String>, Vec<&String>) =
        args.iter().partition(|a| a.contains('='));
    if assign.is_empty() || targets.is_empty() {
        return Out::err(
            2,
            "missing arguments\nusage:\n\tset <property=value> ... <filesystem|volume|snapshot> ...\n".into(),
        );
    }
    for t in &targets {
        if !node.datasets.contains_key(*t) {
            return Out::err(1, format!("cannot open '{t}': dataset does not exist\n"));
        }
    }
    for a in &assign {
        let (k, v) = a.split_once('=').unwrap_or((a.as_str(), ""));
        let v = match check_prop(k, v) {
            Ok(v) => v,
            Err(e) => {
                return Out::err(
                    1,
                    format!("cannot set property for '{}': {e}\n", targets[0]),
                );
            }
        };
        for t in &targets {
            let old_mp = node
                .datasets
                .get(*t)
                .map(|d| d.mountpoint.clone())
                .unwrap_or_default();
            if let Some(d) = node.datasets.get_mut(*t) {
                d.props.insert(k.to_string(), v.clone());
                match k {
                    "canmount" => d.mounted = v == "on" && d.mountpoint.starts_with('/'),
                    "mountpoint" => {
                        d.mountpoint = v.clone();
                        d.mounted =
                            v.starts_with('/') && d.props.get("canmount").is_none_or(|c| c == "on");
                    }
                    _ => {}
                }
            }
            if k == "mountpoint" {
                remount(node, t, &old_mp);
            }
        }
    }
    Out::ok(String::new())
}

/// After `mountpoint` changed on `name`: children that inherit it follow, and the
/// files move with the dataset.
fn remount(node: &mut Node, name: &str, old_mp: &str) {
    let new_mp = node
        .datasets
        .get(name)
        .map(|d| d.mountpoint.clone())
        .unwrap_or_default();
    if old_mp.starts_with('/') && new_mp.starts_with('/') && old_mp != new_mp {
        fsmap::rename(&mut node.files, old_mp, &new_mp);
    } else if new_mp.starts_with('/') {
        fsmap::mkdir_p(&mut node.files, &new_mp);
    }
    let mut kids: Vec<String> = node
        .datasets
        .keys()
        .filter(|k| k.starts_with(&format!("{name}/")))
        .cloned()
        .collect();
    kids.sort();
    for k in kids {
        if node
            .datasets
            .get(&k)
            .is_some_and(|d| !d.props.contains_key("mountpoint"))
        {
            let mp = inherited_mountpoint(node, &k);
            if let Some(d) = node.datasets.get_mut(&k) {
                d.mountpoint = mp.clone();
                d.mounted =
                    mp.starts_with('/') && d.props.get("canmount").is_none_or(|c| c == "on");
            }
        }
    }
}

fn mount(node: &mut Node, unmount: bool, args: &[String]) -> Out {
    let all = args.iter().any(|a| a == "-a");
    let names: Vec<String> = if all {
        node.datasets.keys().cloned().collect()
    } else {
        args.iter()
            .filter(|a| !a.starts_with('-'))
            .cloned()
            .collect()
    };
    for n in names {
        let Some(d) = node.datasets.get_mut(&n) else {
            return Out::err(1, format!("cannot open '{n}': dataset does not exist\n"));
        };
        if unmount {
            if !d.mounted && !all {
                return Out::err(1, format!("cannot unmount '{n}': not currently mounted\n"));
            }
            d.mounted = false;
        } else if d.mountpoint.starts_with('/')
            && d.props.get("canmount").is_none_or(|c| c != "off")
        {
            if d.mounted && !all {
                return Out::err(
                    1,
                    format!("cannot mount '{n}': filesystem already mounted\n"),
                );
            }
            if all && d.props.get("canmount").is_some_and(|c| c == "noauto") {
                continue;
            }
            d.mounted = true;
            let mp = d.mountpoint.clone();
            fsmap::mkdir_p(&mut node.files, &mp);
        }
    }
    Out::ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_checks() {
        assert_eq!(check_prop("compression", "zstd-3"), Ok("zstd-3".into()));
        assert!(check_prop("compression", "zstd-20").is_err());
        assert_eq!(check_prop("quota", "1G"), Ok((1u64 << 30).to_string()));
        assert_eq!(check_prop("recordsize", "1M"), Ok((1u64 << 20).to_string()));
        assert!(check_prop("recordsize", "3K").is_err());
        assert_eq!(check_prop("acltype", "posixacl"), Ok("posix".into()));
        assert_eq!(
            check_prop("bogus", "1"),
            Err("invalid property 'bogus'".into())
        );
        // User properties: any value, ZFS's name alphabet.
        assert_eq!(
            check_prop("labwright:migration", "media=copied"),
            Ok("media=copied".into())
        );
        assert!(check_prop("Labwright:x", "1").is_err());
        assert!(check_prop("lw:a b", "1").is_err());
        assert_eq!(nice(10 << 30), "10G");
        assert_eq!(nice(1536 << 20), "1.50G");
    }
}
