//! `zpool list` and `zpool status` on the simulated node (device names as udev's
//! by-id links, the way PVE creates pools).

use crate::state::Node;

use super::Out;
use super::zfs::{nice, pool_names};

/// The by-id name of a disk, as udev links it.
pub fn by_id(model: &str, serial: &str) -> String {
    format!("/dev/disk/by-id/ata-{}_{serial}", model.replace(' ', "_"))
}

pub fn zpool(node: &Node, args: &[String]) -> Out {
    match args.first().map(String::as_str) {
        Some("list") => {
            let mut fields = vec!["name", "size", "alloc", "free", "health"];
            let mut tab = false;
            let mut want = vec![];
            let mut i = 1;
            while i < args.len() {
                match args[i].as_str() {
                    "-H" => tab = true,
                    "-o" => {
                        fields = args
                            .get(i + 1)
                            .map(|f| f.split(',').collect())
                            .unwrap_or_default();
                        i += 1;
                    }
                    "-p" => {}
                    a => want.push(a.to_string()),
                }
                i += 1;
            }
            let pools = pool_names(node);
            for w in &want {
                if !pools.contains(w) {
                    return Out::err(1, format!("cannot open '{w}': no such pool\n"));
                }
            }
            let mut out = String::new();
            for p in node.zpools.iter() {
                let name = p.get("name").and_then(|v| v.as_str()).unwrap_or("");
                if !want.is_empty() && !want.iter().any(|w| w == name) {
                    continue;
                }
                let size = p.get("size").and_then(|v| v.as_u64()).unwrap_or(0);
                let cols: Vec<String> = fields
                    .iter()
                    .map(|f| match *f {
                        "name" => name.to_string(),
                        "health" => "ONLINE".into(),
                        "size" => nice(size),
                        "alloc" => "0".into(),
                        "free" => nice(size),
                        _ => "-".into(),
                    })
                    .collect();
                out.push_str(&cols.join(if tab { "\t" } else { "  " }));
                out.push('\n');
            }
            if out.is_empty() && !tab {
                out = "no pools available\n".into();
            }
            Out::ok(out)
        }
        Some("status") => {
            let want: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
            let pools = pool_names(node);
            for w in &want {
                if !pools.contains(w) {
                    return Out::err(1, format!("cannot open '{w}': no such pool\n"));
                }
            }
            if pools.is_empty() {
                return Out::ok("no pools available\n".into());
            }
            let mut out = String::new();
            for p in &node.zpools {
                let name = p.get("name").and_then(|v| v.as_str()).unwrap_or("");
                if !want.is_empty() && !want.iter().any(|w| *w == name) {
                    continue;
                }
                out.push_str(&status_text(node, p));
            }
            Out::ok(out)
        }
        _ => Out::err(2, "usage: zpool command args ...\n".into()),
    }
}

fn status_text(node: &Node, p: &crate::state::Obj) -> String {
    let name = p.get("name").and_then(|v| v.as_str()).unwrap_or("");
    let level = p
        .get("raidlevel")
        .and_then(|v| v.as_str())
        .unwrap_or("single");
    let devs: Vec<String> = p
        .get("devices")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str())
        .map(|d| {
            node.disks
                .iter()
                .find(|x| x.devpath == d)
                .map(|x| by_id(&x.model, &x.serial))
                .unwrap_or_else(|| d.to_string())
                .trim_start_matches("/dev/disk/by-id/")
                .to_string()
        })
        .collect();
    let mut rows: Vec<(usize, String)> = vec![(0, name.to_string())];
    let (indent, mut group) = if level == "single" {
        (1, None)
    } else {
        (2, Some(format!("{level}-0")))
    };
    if let Some(g) = group.take() {
        rows.push((1, g));
    }
    for d in devs {
        rows.push((indent, d));
    }
    let width = rows
        .iter()
        .map(|(i, n)| i * 2 + n.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut s = format!("  pool: {name}\n state: ONLINE\nconfig:\n\n");
    s.push_str(&format!(
        "\t{:<width$}  STATE     READ WRITE CKSUM\n",
        "NAME"
    ));
    for (i, n) in rows {
        let label = format!("{}{n}", "  ".repeat(i));
        s.push_str(&format!("\t{label:<width$}  ONLINE       0     0     0\n"));
    }
    s.push_str("\nerrors: No known data errors\n");
    s
}
