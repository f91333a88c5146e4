//! The simulated node's shell, reached over SSH: the commands labwright runs on a
//! node (`zfs`, `zpool`, sanoid's package and timer, files under `/etc`) against the
//! same state the API serves.

pub mod deadman;
pub mod netns;
mod netshow;
pub mod zfs;
pub mod zpool;

use sha2::{Digest, Sha256};

use crate::fsmap;
use crate::state::{Node, State};
use crate::words::{self, Join};

/// What a command leaves behind: exit code, stdout, stderr.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Out {
    pub code: u32,
    pub out: String,
    pub err: String,
}

impl Out {
    pub fn ok(out: String) -> Out {
        Out {
            code: 0,
            out,
            err: String::new(),
        }
    }
    pub fn err(code: u32, err: String) -> Out {
        Out {
            code,
            out: String::new(),
            err,
        }
    }
}

/// Packages the node has besides what it installs (for `dpkg-query`).
const BASE_PACKAGES: &[&str] = &[
    "proxmox-ve",
    "pve-manager",
    "zfsutils-linux",
    "openssh-server",
    "rsync",
    "coreutils",
    "findutils",
];

/// Does this command line read its standard input? (Then the SSH session waits for
/// the client's EOF before running it.)
pub fn reads_stdin(line: &str) -> bool {
    let Ok(cmds) = words::split(line) else {
        return false;
    };
    cmds.iter().any(|c| {
        let a = &c.argv;
        match a.first().map(String::as_str) {
            Some("cat") => a.len() == 1 || a[1..].iter().any(|x| x == "-"),
            Some("install") => a.iter().any(|x| x == "/dev/stdin"),
            Some("tee") => true,
            _ => false,
        }
    })
}

/// Runs a command line (`;`, `&&`, `||` lists of simple commands) on `node`.
pub fn run_line(st: &mut State, node: &str, line: &str, stdin: &str) -> Out {
    run_line_scaled(st, node, line, stdin, 1.0)
}

/// [`run_line`] in a simulator running at `time_scale` (guests' boot timing).
pub fn run_line_scaled(
    st: &mut State,
    node: &str,
    line: &str,
    stdin: &str,
    time_scale: f64,
) -> Out {
    let mut out = run_line_in(st, node, line, stdin, None, time_scale);
    // A connect nobody cut short ends with bash's own timeout error.
    if out.code == netns::HANG_CODE {
        out.code = 1;
    }
    out
}

/// A command line run in network namespace `ns` (`None`: the node's own).
pub(crate) fn run_line_in(
    st: &mut State,
    node: &str,
    line: &str,
    stdin: &str,
    ns: Option<&str>,
    time_scale: f64,
) -> Out {
    let cmds = match words::split(line) {
        Ok(c) => c,
        Err(e) => return Out::err(2, format!("bash: -c: line 1: {e}\n")),
    };
    let mut acc = Out::default();
    for c in cmds {
        let go = match c.join {
            Join::First | Join::Always => true,
            Join::IfOk => acc.code == 0,
            Join::IfFailed => acc.code != 0,
        };
        if !go {
            continue;
        }
        let r = run_in(st, node, &c.argv, ns, stdin, time_scale);
        acc.code = r.code;
        acc.out.push_str(&r.out);
        acc.err.push_str(&r.err);
    }
    acc
}

/// One simple command in namespace `ns`: the network commands (`ip`, `timeout`,
/// `bash -c`) see the whole state, the others the node.
pub(crate) fn run_in(
    st: &mut State,
    node: &str,
    argv: &[String],
    ns: Option<&str>,
    stdin: &str,
    time_scale: f64,
) -> Out {
    let args = argv.get(1..).unwrap_or_default();
    match argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or_default())
    {
        Some("ip") => return netns::ip(st, node, args, ns, time_scale),
        Some("timeout") => return netns::timeout(st, node, args, ns, time_scale),
        Some("bash" | "sh") if args.iter().any(|a| a == "-c") => {
            return netns::bash(st, node, args, ns, time_scale);
        }
        Some("systemd-run") if ns.is_none() => {
            return deadman::systemd_run(st, node, args);
        }
        _ => {}
    }
    match st.nodes.get_mut(node) {
        Some(n) => run(n, argv, stdin),
        None => Out::err(255, format!("ssh: Could not resolve hostname {node}\n")),
    }
}

/// One simple command.
pub fn run(n: &mut Node, argv: &[String], stdin: &str) -> Out {
    // `env VAR=value … CMD`, and plain `VAR=value CMD`.
    let mut argv: &[String] = argv;
    if argv.first().is_some_and(|a| a == "env") {
        argv = &argv[1..];
    }
    while argv
        .first()
        .is_some_and(|a| a.contains('=') && !a.starts_with('-') && !a.starts_with('/'))
    {
        argv = &argv[1..];
    }
    let Some(cmd) = argv.first() else {
        return Out::ok(String::new());
    };
    let args = &argv[1..];
    match cmd.as_str() {
        "zfs" | "/sbin/zfs" | "/usr/sbin/zfs" => zfs::zfs(n, args),
        "zpool" | "/sbin/zpool" | "/usr/sbin/zpool" => zpool::zpool(n, args),
        "true" | ":" => Out::ok(String::new()),
        "false" => Out::err(1, String::new()),
        "hostname" => Out::ok(format!("{}\n", n.name)),
        "echo" => Out::ok(format!("{}\n", args.join(" "))),
        "dpkg-query" => dpkg_query(n, args),
        "apt-get" | "apt" => apt_get(n, args),
        "systemctl" => systemctl(n, args),
        "cp" => deadman::cp(n, args),
        "rm" => deadman::rm(n, args),
        "ifreload" | "/usr/sbin/ifreload" | "/sbin/ifreload" => deadman::ifreload(n, args),
        "cat" => cat(n, args, stdin),
        "install" => install(n, args, stdin),
        "tee" => {
            for f in args.iter().filter(|a| !a.starts_with('-')) {
                fsmap::write(&mut n.files, f, stdin);
            }
            Out::ok(stdin.to_string())
        }
        "mkdir" => {
            let parents = args.iter().any(|a| a == "-p");
            for d in args.iter().filter(|a| !a.starts_with('-')) {
                let parent = fsmap::norm(d)
                    .rsplit_once('/')
                    .map(|(p, _)| p.to_string())
                    .unwrap_or_default();
                if !parents && !fsmap::is_dir(&n.files, &parent) {
                    return Out::err(
                        1,
                        format!(
                            "mkdir: cannot create directory '{d}': No such file or directory\n"
                        ),
                    );
                }
                if !parents && fsmap::exists(&n.files, d) {
                    return Out::err(
                        1,
                        format!("mkdir: cannot create directory '{d}': File exists\n"),
                    );
                }
                fsmap::mkdir_p(&mut n.files, d);
            }
            Out::ok(String::new())
        }
        "ls" => ls(n, args),
        "test" | "[" => {
            let args: Vec<&String> = args.iter().filter(|a| *a != "]").collect();
            let ok = match (args.first().map(|s| s.as_str()), args.get(1)) {
                (Some("-e"), Some(p)) => fsmap::exists(&n.files, p),
                (Some("-d"), Some(p)) => fsmap::is_dir(&n.files, p),
                (Some("-f" | "-s"), Some(p)) => fsmap::is_file(&n.files, p),
                _ => false,
            };
            Out {
                code: u32::from(!ok),
                ..Default::default()
            }
        }
        "find" => find(&n.files, args, None),
        other => Out::err(127, format!("bash: {other}: command not found\n")),
    }
}

fn dpkg_query(n: &Node, args: &[String]) -> Out {
    let mut fmt = "${Package}\t${Version}\n".to_string();
    let mut pkgs = vec![];
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(f) = a
            .strip_prefix("-f=")
            .or_else(|| a.strip_prefix("--showformat="))
        {
            fmt = f.to_string();
        } else if a == "-f" || a == "--showformat" {
            fmt = args.get(i + 1).cloned().unwrap_or_default();
            i += 1;
        } else if !a.starts_with('-') {
            pkgs.push(a.clone());
        }
        i += 1;
    }
    let mut out = String::new();
    for p in &pkgs {
        let installed =
            (p == "sanoid" && n.sanoid.installed) || BASE_PACKAGES.contains(&p.as_str());
        if !installed {
            return Out {
                code: 1,
                out,
                err: format!("dpkg-query: no packages found matching {p}\n"),
            };
        }
        out.push_str(
            &fmt.replace("${Status}", "install ok installed")
                .replace("${Package}", p)
                .replace(
                    "${Version}",
                    if p == "sanoid" { "2.2.0-1" } else { "9.1.3" },
                )
                .replace("\\n", "\n")
                .replace("\\t", "\t"),
        );
    }
    Out::ok(out)
}

fn apt_get(n: &mut Node, args: &[String]) -> Out {
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    match pos.first().map(|s| s.as_str()) {
        Some("update") => Out::ok("Reading package lists... Done\n".into()),
        Some("install") => {
            let mut out = String::from(
                "Reading package lists...\nBuilding dependency tree...\nReading state information...\n",
            );
            for p in &pos[1..] {
                if *p == "sanoid" {
                    if n.sanoid.installed {
                        out.push_str("sanoid is already the newest version (2.2.0-1).\n");
                        continue;
                    }
                    n.sanoid.installed = true;
                    n.sanoid.timer_enabled = true;
                    n.sanoid.timer_active = true;
                    fsmap::mkdir_p(&mut n.files, "/etc/sanoid");
                    fsmap::write(
                        &mut n.files,
                        "/usr/share/sanoid/sanoid.defaults.conf",
                        "[template_default]\nhourly = 48\ndaily = 90\nmonthly = 6\nyearly = 0\nautosnap = yes\nautoprune = yes\n",
                    );
                    out.push_str("Unpacking sanoid (2.2.0-1) ...\nSetting up sanoid (2.2.0-1) ...\nCreated symlink /etc/systemd/system/timers.target.wants/sanoid.timer → /lib/systemd/system/sanoid.timer.\n");
                }
            }
            Out::ok(out)
        }
        _ => Out::err(100, "E: Invalid operation\n".into()),
    }
}

fn systemctl(n: &mut Node, args: &[String]) -> Out {
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let now = args.iter().any(|a| a == "--now");
    let Some(verb) = pos.first().map(|s| s.as_str()) else {
        return Out::err(1, "Too few arguments.\n".into());
    };
    let mut acc = Out::default();
    for unit in &pos[1..] {
        let unit = unit.as_str();
        if let Some(r) = deadman::systemctl(n, verb, unit) {
            acc.code = acc.code.max(r.code);
            acc.out.push_str(&r.out);
            acc.err.push_str(&r.err);
            continue;
        }
        let sanoid = unit == "sanoid.timer" || unit == "sanoid";
        let known = sanoid && n.sanoid.installed;
        let r = match verb {
            "is-enabled" if known => {
                if n.sanoid.timer_enabled {
                    Out::ok("enabled\n".into())
                } else {
                    Out {
                        code: 1,
                        out: "disabled\n".into(),
                        err: String::new(),
                    }
                }
            }
            "is-enabled" if sanoid => Out::err(
                1,
                format!("Failed to get unit file state for {unit}: No such file or directory\n"),
            ),
            "is-active" if known && n.sanoid.timer_active => Out::ok("active\n".into()),
            "is-active" if sanoid => Out {
                code: 3,
                out: "inactive\n".into(),
                err: String::new(),
            },
            "enable" | "disable" | "start" | "stop" | "restart" if sanoid && !known => Out::err(
                if verb == "enable" || verb == "disable" {
                    1
                } else {
                    5
                },
                if verb == "enable" || verb == "disable" {
                    format!("Failed to {verb} unit: Unit file {unit} does not exist.\n")
                } else {
                    format!("Failed to {verb} {unit}: Unit {unit} not found.\n")
                },
            ),
            "enable" if sanoid => {
                n.sanoid.timer_enabled = true;
                if now {
                    n.sanoid.timer_active = true;
                }
                Out::default()
            }
            "disable" if sanoid => {
                n.sanoid.timer_enabled = false;
                if now {
                    n.sanoid.timer_active = false;
                }
                Out::default()
            }
            "start" | "restart" if sanoid => {
                n.sanoid.timer_active = true;
                Out::default()
            }
            "stop" if sanoid => {
                n.sanoid.timer_active = false;
                Out::default()
            }
            // Units of the node itself (pveproxy, zfs services…) are running.
            "is-active" => Out::ok("active\n".into()),
            "is-enabled" => Out::ok("enabled\n".into()),
            _ => Out::default(),
        };
        acc.code = acc.code.max(r.code);
        acc.out.push_str(&r.out);
        acc.err.push_str(&r.err);
    }
    acc
}

fn cat(n: &Node, args: &[String], stdin: &str) -> Out {
    let files: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with('-') || *a == "-")
        .collect();
    if files.is_empty() {
        return Out::ok(stdin.to_string());
    }
    let mut out = Out::default();
    for f in files {
        if f == "-" {
            out.out.push_str(stdin);
        } else if fsmap::is_file(&n.files, f) {
            out.out
                .push_str(n.files.get(&fsmap::norm(f)).map_or("", |s| s.as_str()));
        } else if fsmap::is_dir(&n.files, f) {
            out.code = 1;
            out.err.push_str(&format!("cat: {f}: Is a directory\n"));
        } else {
            out.code = 1;
            out.err
                .push_str(&format!("cat: {f}: No such file or directory\n"));
        }
    }
    out
}

/// `install [-D] [-d] [-m MODE] [-o U] [-g G] SRC DEST` and `install -d DIR…`.
fn install(n: &mut Node, args: &[String], stdin: &str) -> Out {
    let (mut dirs, mut make_parents) = (false, false);
    let mut pos = vec![];
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-d" => dirs = true,
            "-D" => make_parents = true,
            "-m" | "-o" | "-g" => i += 1,
            a if a.starts_with('-') => {}
            a => pos.push(a.to_string()),
        }
        i += 1;
    }
    if dirs {
        for d in &pos {
            fsmap::mkdir_p(&mut n.files, d);
        }
        return Out::ok(String::new());
    }
    let [src, dest] = pos.as_slice() else {
        return Out::err(1, "install: missing destination file operand\n".into());
    };
    let content = if src == "/dev/stdin" || src == "-" {
        stdin.to_string()
    } else {
        match n.files.get(&fsmap::norm(src)) {
            Some(c) => c.clone(),
            None => {
                return Out::err(
                    1,
                    format!("install: cannot stat '{src}': No such file or directory\n"),
                );
            }
        }
    };
    let parent = fsmap::norm(dest)
        .rsplit_once('/')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default();
    if !make_parents && !fsmap::is_dir(&n.files, &parent) {
        return Out::err(
            1,
            format!("install: cannot create regular file '{dest}': No such file or directory\n"),
        );
    }
    fsmap::write(&mut n.files, dest, &content);
    Out::ok(String::new())
}

fn ls(n: &Node, args: &[String]) -> Out {
    let root = "/root".to_string();
    let mut dirs: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if dirs.is_empty() {
        dirs.push(&root);
    }
    let mut out = Out::default();
    for d in dirs {
        if fsmap::is_file(&n.files, d) {
            out.out.push_str(&format!("{d}\n"));
        } else if fsmap::is_dir(&n.files, d) {
            for name in fsmap::list(&n.files, d) {
                out.out.push_str(&format!("{name}\n"));
            }
        } else {
            out.code = 2;
            out.err.push_str(&format!(
                "ls: cannot access '{d}': No such file or directory\n"
            ));
        }
    }
    out
}

/// Lists the files (relative path, content) below a folder, `None` if it is none.
pub type FileView<'a> = dyn Fn(&str) -> Option<Vec<(String, String)>> + 'a;

/// SHA-256 of a text, lowercase hex.
pub fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// `find DIR -type f -exec sha256sum {} +` and `find DIR -type f -printf '%s\t%P\n'`
/// over a file map; `view` lists a guest's merged tree instead of `files`.
pub fn find(files: &fsmap::Files, args: &[String], view: Option<&FileView<'_>>) -> Out {
    let Some(dir) = args.first().filter(|a| !a.starts_with('-')) else {
        return Out::err(1, "find: missing starting point\n".into());
    };
    let rest = &args[1..];
    let only_files = rest.windows(2).any(|w| w[0] == "-type" && w[1] == "f");
    let entries: Vec<(String, String)> = match view {
        Some(v) => match v(dir) {
            Some(e) => e,
            None => {
                return Out::err(1, format!("find: '{dir}': No such file or directory\n"));
            }
        },
        None => {
            if !fsmap::is_dir(files, dir) {
                return Out::err(1, format!("find: '{dir}': No such file or directory\n"));
            }
            fsmap::tree(files, dir)
                .into_iter()
                .filter_map(|(rel, c)| c.map(|c| (rel, c)))
                .collect()
        }
    };
    if !only_files {
        return Out::err(1, "find: only `-type f` listings are simulated\n".into());
    }
    let base = if dir == "/" {
        String::new()
    } else {
        dir.trim_end_matches('/').to_string()
    };
    let mut out = String::new();
    if rest.iter().any(|a| a == "sha256sum") {
        for (rel, c) in &entries {
            out.push_str(&format!("{}  {base}/{rel}\n", sha256(c)));
        }
    } else if let Some(i) = rest.iter().position(|a| a == "-printf") {
        let fmt = rest.get(i + 1).cloned().unwrap_or_default();
        for (rel, c) in &entries {
            out.push_str(
                &fmt.replace("%s", &c.len().to_string())
                    .replace("%P", rel)
                    .replace("%p", &format!("{base}/{rel}"))
                    .replace("\\t", "\t")
                    .replace("\\n", "\n"),
            );
        }
    } else {
        for (rel, _) in &entries {
            out.push_str(&format!("{base}/{rel}\n"));
        }
    }
    Out::ok(out)
}
