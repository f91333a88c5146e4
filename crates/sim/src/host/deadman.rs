//! What labwright's network dead-man needs on the node (docs/decisions.md,
//! "Bridges"): `cp` of `/etc/network/interfaces` (the live definitions saved, and
//! restored), `rm -f /etc/network/interfaces.new` (staged changes dropped),
//! `ifreload -a` (the live file applied again: whatever a failed or cutting reload
//! left is healed), `systemd-run --on-active=SECS` transient timers — fired at the
//! first state access after their time, in real seconds (labwright sets the time as a
//! margin around its own steps, so scaling it with the simulator would make it fire
//! mid-step) — and `systemctl stop UNIT.timer`.

use serde::{Deserialize, Serialize};

use super::Out;
use crate::state::{Node, State};
use crate::util::now_f;

/// The live network definitions as a file.
pub const LIVE: &str = "/etc/network/interfaces";
/// Staged changes (what the API's `POST/PUT …/network` write).
pub const STAGED: &str = "/etc/network/interfaces.new";

/// A transient timer unit and the command its service runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostTimer {
    /// Wall-clock time (seconds) it fires at.
    pub fire_at: f64,
    pub command: String,
}

/// `systemd-run --unit=NAME --on-active=SECS [--timer-property=…] CMD…`: only timer
/// units (what labwright makes). Prints what systemd-run prints, on stderr.
pub fn systemd_run(st: &mut State, node: &str, args: &[String]) -> Out {
    let mut unit = None;
    let mut secs = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if a.starts_with("--") => (k, Some(v.to_string())),
            _ => (a, None),
        };
        let takes = matches!(key, "--unit" | "--on-active" | "--timer-property" | "-p");
        if !key.starts_with('-') {
            break;
        }
        let value = match (takes, inline) {
            (true, Some(v)) => Some(v),
            (true, None) => {
                i += 1;
                args.get(i).cloned()
            }
            (false, _) => None,
        };
        match key {
            "--unit" => unit = value,
            "--on-active" => secs = value.as_deref().and_then(parse_secs),
            "--timer-property" | "-p" | "--quiet" | "-q" | "--collect" | "-G" => {}
            other => {
                return Out::err(1, format!("systemd-run: unrecognized option '{other}'\n"));
            }
        }
        i += 1;
    }
    let cmd = &args[i.min(args.len())..];
    let (Some(unit), Some(secs)) = (unit, secs) else {
        return Out::err(
            1,
            "labwright-sim: systemd-run is simulated only with --unit and --on-active\n".into(),
        );
    };
    if cmd.is_empty() {
        return Out::err(1, "Command line to execute required.\n".into());
    }
    // `/bin/sh -c 'SCRIPT'` runs SCRIPT; anything else runs as one command line.
    let command = match cmd {
        [sh, c, script] if sh.rsplit('/').next() == Some("sh") && c == "-c" => script.clone(),
        _ => cmd
            .iter()
            .map(|a| crate::words::quote(a))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let Some(n) = st.nodes.get_mut(node) else {
        return Out::err(255, format!("ssh: Could not resolve hostname {node}\n"));
    };
    if n.timers.contains_key(&unit) {
        return Out::err(
            1,
            format!(
                "Failed to start transient timer unit: Unit {unit}.timer was already loaded or has a fragment file.\n"
            ),
        );
    }
    n.timers.insert(
        unit.clone(),
        HostTimer {
            fire_at: now_f() + secs,
            command,
        },
    );
    Out {
        code: 0,
        out: String::new(),
        err: format!(
            "Running timer as unit: {unit}.timer\nWill run service as unit: {unit}.service\n"
        ),
    }
}

/// `120`, `120s`, `2min`.
fn parse_secs(v: &str) -> Option<f64> {
    let v = v.trim();
    if let Some(m) = v.strip_suffix("min") {
        return m.trim().parse::<f64>().ok().map(|m| m * 60.0);
    }
    v.strip_suffix('s').unwrap_or(v).trim().parse().ok()
}

/// Runs the commands of every timer whose time has come (then it is gone, as a
/// transient unit is once it ran).
pub fn fire_due(st: &mut State, time_scale: f64) {
    let now = now_f();
    let due: Vec<(String, String, String)> = st
        .nodes
        .iter()
        .flat_map(|(node, n)| {
            n.timers
                .iter()
                .filter(|(_, t)| t.fire_at <= now)
                .map(|(u, t)| (node.clone(), u.clone(), t.command.clone()))
        })
        .collect();
    for (node, unit, command) in due {
        if let Some(n) = st.nodes.get_mut(&node) {
            n.timers.remove(&unit);
        }
        let out = super::run_line_scaled(st, &node, &command, "", time_scale);
        tracing::info!(node, unit, code = out.code, "simulated timer fired");
    }
}

/// `systemctl stop|reset-failed|is-active NAME.timer` of a transient timer; `None`
/// for other units (the caller knows those).
pub fn systemctl(n: &mut Node, verb: &str, unit: &str) -> Option<Out> {
    let name = unit
        .strip_suffix(".timer")
        .or_else(|| unit.strip_suffix(".service"))?;
    if !name.starts_with("lw-") {
        return None;
    }
    Some(match verb {
        "stop" => {
            if n.timers.remove(name).is_some() {
                Out::default()
            } else {
                Out::err(
                    5,
                    format!("Failed to stop {unit}: Unit {unit} not loaded.\n"),
                )
            }
        }
        "reset-failed" => Out::default(),
        "is-active" if n.timers.contains_key(name) => Out::ok("active\n".into()),
        "is-active" => Out {
            code: 3,
            out: "inactive\n".into(),
            err: String::new(),
        },
        _ => return None,
    })
}

/// `cp [-p] SRC DST`: the live network definitions saved or restored; other files
/// copied in the node's file map.
pub fn cp(n: &mut Node, args: &[String]) -> Out {
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let [src, dst] = paths.as_slice() else {
        return Out::err(1, "cp: missing destination file operand\n".into());
    };
    let (src, dst) = (src.as_str(), dst.as_str());
    if src == LIVE {
        n.network_saved.insert(dst.to_string(), n.network.clone());
        crate::fsmap::write(&mut n.files, dst, &crate::api::network::render(&n.network));
        return Out::default();
    }
    if dst == LIVE {
        return match n.network_saved.get(src) {
            Some(saved) => {
                n.network = saved.clone();
                Out::default()
            }
            None => Out::err(
                1,
                format!("cp: cannot stat '{src}': No such file or directory\n"),
            ),
        };
    }
    match n.files.get(&crate::fsmap::norm(src)).cloned() {
        Some(content) if crate::fsmap::is_file(&n.files, src) => {
            crate::fsmap::write(&mut n.files, dst, &content);
            Out::default()
        }
        _ => Out::err(
            1,
            format!("cp: cannot stat '{src}': No such file or directory\n"),
        ),
    }
}

/// `rm [-f] PATH…`: the staged network file drops the staged changes; saved copies
/// and plain files go.
pub fn rm(n: &mut Node, args: &[String]) -> Out {
    let force = args.iter().any(|a| a.starts_with('-') && a.contains('f'));
    for p in args.iter().filter(|a| !a.starts_with('-')) {
        if p == STAGED {
            n.network_pending = None;
            continue;
        }
        let saved = n.network_saved.remove(p.as_str()).is_some();
        let file = crate::fsmap::is_file(&n.files, p);
        if file {
            n.files.remove(&crate::fsmap::norm(p));
        }
        if !saved && !file && !force {
            return Out::err(
                1,
                format!("rm: cannot remove '{p}': No such file or directory\n"),
            );
        }
    }
    Out::default()
}

/// `ifreload -a`: the live file applied; interfaces a failed reload left down come
/// up and a cut management address answers again.
pub fn ifreload(n: &mut Node, args: &[String]) -> Out {
    if !args.iter().any(|a| a == "-a") {
        return Out::err(
            1,
            "error: ifreload: -a or interface names required\n".into(),
        );
    }
    n.network_down.clear();
    n.mgmt_cut = false;
    Out::default()
}
