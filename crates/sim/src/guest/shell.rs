//! The simple commands a simulated guest understands (argv form, as the guest agent
//! runs them).

use super::{Ctx, Ran};
use crate::fsmap;
use crate::state::GuestMount;

fn ok(out: impl Into<String>) -> Ran {
    (0, out.into(), String::new())
}

fn fail(code: i64, err: impl Into<String>) -> Ran {
    (code, String::new(), err.into())
}

pub fn run_simple(ctx: &mut Ctx<'_>, argv: &[String], input: Option<&str>) -> Ran {
    let argv: Vec<String> = argv.to_vec();
    let Some(cmd) = argv.first().cloned() else {
        return ok("");
    };
    let args = &argv[1..];
    let vm = &ctx.vm;
    let name = vm
        .guest
        .hostname
        .clone()
        .or_else(|| vm.conf.get("name").cloned())
        .unwrap_or_else(|| format!("vm{}", vm.vmid));
    let has_pkg = |p: &str| ctx.vm.guest.packages.contains(p);
    match cmd.rsplit('/').next().unwrap_or("") {
        "systemctl" if args.first().is_some_and(|a| a == "is-active") => ok("active\n"),
        "mkdir" => {
            for d in args.iter().filter(|a| !a.starts_with('-')) {
                ctx.fs().mkdir_p(d);
            }
            ok("")
        }
        "true" | "chmod" | "chown" | "systemctl" | "sync" | "apt-get" | "usermod" | "sysctl"
        | "groupadd" => ok(""),
        "false" => fail(1, ""),
        "echo" => ok(format!("{}\n", args.join(" "))),
        "hostname" => ok(format!("{name}\n")),
        "uname" => ok(format!(
            "Linux {name} 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 x86_64 GNU/Linux\n"
        )),
        "id" => ok("uid=0(root) gid=0(root) groups=0(root)\n"),
        "whoami" => ok("root\n"),
        "cloud-init" => ok("status: done\n"),
        "tailscale" | "tailscaled" if !has_pkg("tailscale") => {
            fail(127, format!("sh: 1: {cmd}: not found\n"))
        }
        "tailscale" => super::tailscale::run_tailscale(ctx.vm, args),
        "docker" if !has_pkg("docker-ce") && !args.is_empty() && args[0] == "compose" => {
            fail(127, "sh: 1: docker: not found\n")
        }
        "docker"
            if args.first().is_some_and(|a| a == "compose")
                && args.get(1).is_some_and(|a| a == "version") =>
        {
            if has_pkg("docker-compose-plugin") {
                ok("Docker Compose version v2.29.7\n")
            } else {
                fail(1, "docker: 'compose' is not a docker command.\n")
            }
        }
        "install" if args.iter().any(|a| a == "-d") => {
            // install -d [-m MODE] [-o USER] [-g GROUP] DIR…: option values are skipped.
            let mut skip = false;
            for a in args {
                if skip {
                    skip = false;
                    continue;
                }
                if matches!(a.as_str(), "-m" | "-o" | "-g") {
                    skip = true;
                    continue;
                }
                if !a.starts_with('-') {
                    ctx.fs().mkdir_p(a);
                }
            }
            ok("")
        }
        // curl is in Debian's cloud images; it reaches the other guests on the LAN.
        "curl" => crate::guestnet::curl(ctx.lan, args),
        // bash's /dev/tcp: `exec 3<>/dev/tcp/ADDR/PORT` connects (crate::segments).
        "exec" if args.iter().any(|a| a.contains("/dev/tcp/")) => {
            match crate::segments::dev_tcp_guest(
                &ctx.lan.reach,
                &format!("exec {}", args.join(" ")),
            ) {
                Some((code, err)) => (code, String::new(), err),
                None => fail(1, "bash: exec: unsupported redirection\n"),
            }
        }
        "docker" if args.first().is_some_and(|a| a == "--version") => {
            ok("Docker version 27.3.1, build ce12230\n")
        }
        "docker" => ok(""),
        "cat" => match args.first() {
            None => ok(input.unwrap_or("")),
            Some(f) => match ctx.fs().read(f) {
                Some(c) => ok(c),
                None if ctx.fs().is_dir(f) => fail(1, format!("cat: {f}: Is a directory\n")),
                None => fail(1, format!("cat: {f}: No such file or directory\n")),
            },
        },
        "touch" => {
            for f in args.iter().filter(|a| !a.starts_with('-')) {
                let mut fs = ctx.fs();
                if !fs.exists(f) {
                    fs.write(f, "");
                }
            }
            ok("")
        }
        "tee" => {
            let content = input.unwrap_or("").to_string();
            for f in args.iter().filter(|a| !a.starts_with('-')) {
                ctx.fs().write(f, &content);
            }
            ok(content)
        }
        "rm" => {
            let recursive = args
                .iter()
                .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains(['r', 'R']))
                || args.iter().any(|a| a == "--recursive");
            let force = args.iter().any(|a| a.starts_with('-') && a.contains('f'));
            for f in args.iter().filter(|a| !a.starts_with('-')) {
                let mut fs = ctx.fs();
                if fs.is_mountpoint(f) {
                    return fail(
                        1,
                        format!("rm: cannot remove '{f}': Device or resource busy\n"),
                    );
                }
                if fs.is_dir(f) && !recursive {
                    return fail(1, format!("rm: cannot remove '{f}': Is a directory\n"));
                }
                if !fs.exists(f) && !force {
                    return fail(
                        1,
                        format!("rm: cannot remove '{f}': No such file or directory\n"),
                    );
                }
                fs.remove_tree(f);
            }
            ok("")
        }
        "mv" => {
            let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
            let [from, to] = pos.as_slice() else {
                return fail(1, "mv: missing destination file operand\n");
            };
            let mut fs = ctx.fs();
            if !fs.exists(from) {
                return fail(
                    1,
                    format!("mv: cannot stat '{from}': No such file or directory\n"),
                );
            }
            if fs.is_mountpoint(from) {
                return fail(
                    1,
                    format!("mv: cannot move '{from}' to '{to}': Device or resource busy\n"),
                );
            }
            let target = if fs.is_dir(to) {
                let base = fsmap::norm(from);
                let leaf = base.rsplit('/').next().unwrap_or("");
                format!("{}/{leaf}", fsmap::norm(to))
            } else {
                to.to_string()
            };
            fs.rename(from, &target);
            ok("")
        }
        "test" | "[" => {
            let fs = ctx.fs();
            let good = match (args.first().map(String::as_str), args.get(1)) {
                (Some("-e"), Some(f)) => fs.exists(f),
                (Some("-f" | "-s"), Some(f)) => fs.is_file(f),
                (Some("-d"), Some(d)) => fs.is_dir(d),
                _ => false,
            };
            (if good { 0 } else { 1 }, String::new(), String::new())
        }
        "ls" => {
            let dir = args
                .iter()
                .find(|a| !a.starts_with('-'))
                .cloned()
                .unwrap_or_else(|| "/root".into());
            let fs = ctx.fs();
            if fs.is_file(&dir) {
                ok(format!("{dir}\n"))
            } else if fs.is_dir(&dir) {
                ok(fs
                    .list(&dir)
                    .iter()
                    .map(|x| format!("{x}\n"))
                    .collect::<String>())
            } else {
                fail(
                    2,
                    format!("ls: cannot access '{dir}': No such file or directory\n"),
                )
            }
        }
        "findmnt" => findmnt(ctx),
        "mount" => mount(ctx, args),
        "umount" => {
            let Some(dir) = args.iter().find(|a| !a.starts_with('-')) else {
                return fail(1, "umount: bad usage\n");
            };
            let target = fsmap::norm(dir);
            let before = ctx.vm.guest.mounts.len();
            ctx.vm.guest.mounts.retain(|m| m.target != target);
            if ctx.vm.guest.mounts.len() == before {
                fail(32, format!("umount: {dir}: not mounted.\n"))
            } else {
                ok("")
            }
        }
        "rsync" => super::rsync::rsync(ctx, args),
        "find" => {
            let fs = ctx.fs();
            let view = |d: &str| fs.files_below(d);
            let out = crate::host::find(&fsmap::Files::new(), args, Some(&view));
            (i64::from(out.code), out.out, out.err)
        }
        other => fail(127, format!("sh: 1: {other}: not found\n")),
    }
}

/// `findmnt -rn -o TARGET,SOURCE,FSTYPE` (raw output escapes spaces as `\x20`).
fn findmnt(ctx: &Ctx<'_>) -> Ran {
    let esc = |s: &str| s.replace(' ', "\\x20");
    let mut out = String::from(
        "/ /dev/sda1 ext4\n/dev udev devtmpfs\n/proc proc proc\n/sys sysfs sysfs\n/run tmpfs tmpfs\n/boot/efi /dev/sda15 vfat\n",
    );
    for m in &ctx.vm.guest.mounts {
        out.push_str(&format!(
            "{} {} {}\n",
            esc(&m.target),
            esc(&m.source),
            m.fstype
        ));
    }
    ok(out)
}

/// `mount -t virtiofs TAG DIR` and `mount -a` (the virtiofs lines of /etc/fstab).
fn mount(ctx: &mut Ctx<'_>, args: &[String]) -> Ran {
    if args.iter().any(|a| a == "-a") {
        let keep = ctx.vm.guest.mounts.clone();
        super::boot(ctx);
        for m in keep {
            if !ctx.vm.guest.mounts.iter().any(|x| x.target == m.target) {
                ctx.vm.guest.mounts.push(m);
            }
        }
        return ok("");
    }
    let mut fstype = None;
    let mut pos = vec![];
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-t" => {
                fstype = args.get(i + 1).cloned();
                i += 1;
            }
            "-o" => i += 1,
            a if a.starts_with('-') => {}
            a => pos.push(a.to_string()),
        }
        i += 1;
    }
    let [tag, dir] = pos.as_slice() else {
        return fail(
            1,
            "mount: bad usage\nTry 'mount --help' for more information.\n",
        );
    };
    if fstype.as_deref() != Some("virtiofs") {
        return fail(
            32,
            format!("mount: {dir}: special device {tag} does not exist.\n"),
        );
    }
    let target = fsmap::norm(dir);
    if !ctx.fs().is_dir(&target) {
        return fail(32, format!("mount: {dir}: mount point does not exist.\n"));
    }
    let Some(host_path) = ctx.share_path(tag) else {
        return fail(
            32,
            format!(
                "mount: {dir}: wrong fs type, bad option, bad superblock on {tag}, missing codepage or helper program, or other error.\n"
            ),
        );
    };
    if ctx
        .vm
        .guest
        .mounts
        .iter()
        .any(|m| m.target == target && m.source == *tag)
    {
        return fail(
            32,
            format!("mount: {dir}: {tag} already mounted on {dir}.\n"),
        );
    }
    ctx.vm.guest.mounts.push(GuestMount {
        target,
        source: tag.clone(),
        fstype: "virtiofs".into(),
        host_path,
    });
    ok("")
}
