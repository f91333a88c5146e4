//! The simulated guest OS behind the QEMU guest agent: a tiny shell over the guest's
//! files, virtiofs mounts that show folders of the node, and the sample data a naas
//! guest starts with.

pub mod fs;
mod rsync;
pub mod seed;
mod shell;
mod tailscale;

use base64::Engine;
use indexmap::IndexMap;
use serde_json::Value;

use crate::fsmap::Files;
use crate::guestnet::Lan;
use crate::state::{DirMapping, GuestMount, State, Vm};

use fs::GuestFs;

/// Exit code, stdout, stderr.
pub type Ran = (i64, String, String);

/// What a guest command may touch besides the guest itself.
pub struct Ctx<'a> {
    pub vm: &'a mut Vm,
    /// The files of the VM's node (what virtiofs shares show).
    pub host: Option<&'a mut Files>,
    pub mappings: &'a IndexMap<String, DirMapping>,
    pub lan: &'a Lan,
    /// `Some(seed)`: an `rsync` in this command stops partway (the copy fault).
    pub copy_fault: Option<u64>,
}

impl<'a> Ctx<'a> {
    /// Borrows the guest `vmid` and its node's files out of the state.
    pub fn of(st: &'a mut State, vmid: u32, lan: &'a Lan) -> Option<Ctx<'a>> {
        let State {
            vms,
            nodes,
            dir_mappings,
            ..
        } = st;
        let vm = vms.get_mut(&vmid)?;
        let host = nodes.get_mut(&vm.node).map(|n| &mut n.files);
        Some(Ctx {
            vm,
            host,
            mappings: dir_mappings,
            lan,
            copy_fault: None,
        })
    }

    pub fn fs(&mut self) -> GuestFs<'_> {
        let g = &mut self.vm.guest;
        GuestFs {
            guest: &mut g.files,
            host: self.host.as_deref_mut(),
            mounts: &g.mounts,
        }
    }

    /// The node folder behind a virtiofs tag, if the tag is in the VM's running
    /// config (pending shares do not count: the device appears on the next start).
    pub fn share_path(&self, tag: &str) -> Option<String> {
        let in_config = self
            .vm
            .conf
            .iter()
            .any(|(k, v)| k.starts_with("virtiofs") && crate::api::mapping::dirid(v) == tag);
        if !in_config || !self.vm.running {
            return None;
        }
        self.mappings.get(tag)?.path_on(&self.vm.node)
    }
}

/// Runs a command in the simulated guest: `sh -c SCRIPT` or an argv.
pub fn run_guest(ctx: &mut Ctx<'_>, argv: &[String], input: Option<&str>) -> Ran {
    // `timeout [-k D] [-s SIG] DURATION CMD…`: a connect still hanging when the
    // duration ends is killed (exit 124, nothing printed).
    if argv.first().is_some_and(|a| a == "timeout") {
        let mut i = 1;
        while i < argv.len() && argv[i].starts_with('-') {
            i += if matches!(argv[i].as_str(), "-k" | "-s" | "--kill-after" | "--signal") {
                2
            } else {
                1
            };
        }
        let rest = argv.get(i + 1..).unwrap_or_default();
        if rest.is_empty() {
            return (
                125,
                String::new(),
                "timeout: missing operand\nTry 'timeout --help' for more information.\n".into(),
            );
        }
        let r = run_guest(ctx, rest, input);
        return if r.0 == crate::segments::HANG {
            (124, r.1, String::new())
        } else {
            r
        };
    }
    if argv.len() >= 3
        && ["sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/bash"].contains(&argv[0].as_str())
        && argv[1] == "-c"
    {
        // Inside a script the words arrive split (`bash -c 'exec 3<>…'`): rejoin them.
        return run_script(ctx, &argv[2..].join(" "), input);
    }
    shell::run_simple(ctx, argv, input)
}

/// A shell script: lines and `;` run in sequence, `&&` stops at the first failure,
/// `if C; then A; else B; fi` branches on C's exit code, and redirections
/// (`>/dev/null`, `2>&1`) are accepted and ignored.
pub fn run_script(ctx: &mut Ctx<'_>, script: &str, input: Option<&str>) -> Ran {
    let mut acc = (0, String::new(), String::new());
    for line in script.lines() {
        let stmts: Vec<&str> = line
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.starts_with('#'))
            .collect();
        let mut i = 0;
        while i < stmts.len() {
            let stmt = stmts[i];
            if let Some(cond) = stmt.strip_prefix("if ") {
                // Collect `then …`, optional `else …`, up to `fi`.
                let (mut then_part, mut else_part, mut in_else) = (Vec::new(), Vec::new(), false);
                let mut j = i + 1;
                while j < stmts.len() && stmts[j] != "fi" {
                    let s = stmts[j];
                    if let Some(rest) = s.strip_prefix("then ") {
                        then_part.push(rest);
                    } else if let Some(rest) = s.strip_prefix("else ") {
                        in_else = true;
                        else_part.push(rest);
                    } else if in_else {
                        else_part.push(s);
                    } else {
                        then_part.push(s);
                    }
                    j += 1;
                }
                let (c, _, _) = run_chain(ctx, cond, input);
                for s in if c == 0 { then_part } else { else_part } {
                    acc = merge(acc, run_chain(ctx, s, input));
                }
                i = j + 1;
                continue;
            }
            acc = merge(acc, run_chain(ctx, stmt, input));
            i += 1;
        }
    }
    acc
}

fn merge(acc: Ran, next: Ran) -> Ran {
    (next.0, acc.1 + &next.1, acc.2 + &next.2)
}

/// `a && b && c`: stops at the first failure.
fn run_chain(ctx: &mut Ctx<'_>, stmt: &str, input: Option<&str>) -> Ran {
    let (mut code, mut out, mut err) = (0, String::new(), String::new());
    for part in stmt.split("&&").map(str::trim).filter(|s| !s.is_empty()) {
        let words: Vec<String> = part
            .split_whitespace()
            .filter(|w| !w.starts_with('>') && !w.starts_with("2>") && !w.starts_with("1>"))
            .map(|w| w.trim_matches(|c| c == '\'' || c == '"').to_string())
            .collect();
        let (c, o, e) = run_guest(ctx, &words, input);
        code = c;
        out.push_str(&o);
        err.push_str(&e);
        if c != 0 {
            break;
        }
    }
    (code, out, err)
}

/// A (re)boot: mounts are gone, then the virtiofs lines of `/etc/fstab` whose tag the
/// VM has are mounted again (`nofail` skips the others).
pub fn boot(ctx: &mut Ctx<'_>) {
    ctx.vm.guest.mounts.clear();
    let fstab = ctx
        .vm
        .guest
        .files
        .get("/etc/fstab")
        .cloned()
        .unwrap_or_default();
    for line in fstab.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 3 && f[2] == "virtiofs" && !f[0].starts_with('#') {
            let target = crate::fsmap::norm(&unescape(f[1]));
            if let Some(host_path) = ctx.share_path(f[0])
                && ctx.fs().is_dir(&target)
            {
                ctx.vm.guest.mounts.push(GuestMount {
                    target,
                    source: f[0].to_string(),
                    fstype: "virtiofs".into(),
                    host_path,
                });
            }
        }
    }
}

/// fstab and findmnt write a space as `\040` / `\x20`.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\x20", " ")
}

/// Applies the parts of a cloud-config the simulated guest understands: `hostname`,
/// `write_files` (plain or base64), `bootcmd` and `runcmd` (through the tiny shell).
pub fn apply_cloud_config(ctx: &mut Ctx<'_>, text: &str) -> Vec<String> {
    let doc: Value = match serde_saphyr::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![format!("cloud-init: user-data is not valid YAML: {e}")],
    };
    let mut log = vec![];
    if let Some(h) = doc.get("hostname").and_then(Value::as_str) {
        ctx.vm.guest.hostname = Some(h.to_string());
    }
    for f in doc
        .get("write_files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(path) = f.get("path").and_then(Value::as_str) else {
            continue;
        };
        let raw = f.get("content").and_then(Value::as_str).unwrap_or("");
        let content = match f.get("encoding").and_then(Value::as_str) {
            Some("b64" | "base64") => base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            _ => raw.to_string(),
        };
        ctx.fs().write(path, &content);
        log.push(format!("cloud-init: wrote {path}"));
    }
    // `packages:` installs from Debian and the sources in `apt.sources`; the simulated
    // mirror has every package name it is asked for.
    for p in doc
        .get("packages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        ctx.vm.guest.packages.insert(p.to_string());
        log.push(format!("cloud-init: installed {p}"));
    }
    for key in ["bootcmd", "runcmd"] {
        for c in doc.get(key).and_then(Value::as_array).into_iter().flatten() {
            let (code, _, _) = match c {
                Value::String(s) => run_script(ctx, s, None),
                Value::Array(a) => {
                    let argv: Vec<String> = a
                        .iter()
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
                        .collect();
                    run_guest(ctx, &argv, None)
                }
                _ => continue,
            };
            log.push(format!("cloud-init: {key} {c} exited {code}"));
        }
    }
    log
}
