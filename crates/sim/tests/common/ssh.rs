//! Running the real OpenSSH client against a simulator's SSH endpoint.

use std::io::Write;
use std::process::{Command, Stdio};

use labwright_sim::SimHandle;

/// Output of one `ssh` run.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub out: String,
    pub err: String,
}

pub fn have_ssh() -> bool {
    let ok = Command::new("ssh")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    // CI installs it (scripts/test): there, a missing client is a failure, not a skip.
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "the OpenSSH client (`ssh`) is not installed; scripts/test installs openssh-client"
    );
    if !ok {
        eprintln!("skipped: the OpenSSH client (`ssh`) is not installed");
    }
    ok
}

/// `ssh` with the simulator's key and a given known_hosts file, batch mode.
pub fn ssh_with(sim: &SimHandle, known_hosts: &str, cmd: &str, stdin: Option<&str>) -> Ran {
    let mut c = Command::new("ssh");
    c.args([
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
    ])
    .arg("-i")
    .arg(sim.ssh_client_key_path())
    .arg("-o")
    .arg(format!("UserKnownHostsFile={known_hosts}"))
    .args([
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ConnectTimeout=20",
        "-p",
    ])
    .arg(sim.ssh_port().to_string())
    .arg("root@127.0.0.1")
    .arg(cmd)
    .stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(text) = stdin {
        let mut s = child.stdin.take().unwrap();
        s.write_all(text.as_bytes()).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    Ran {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub async fn ssh(sim: &SimHandle, cmd: &str, stdin: Option<&str>) -> Ran {
    let kh = sim.ssh_known_hosts_path().display().to_string();
    // The client blocks; the simulator runs on this runtime's other worker.
    tokio::task::block_in_place(|| ssh_with(sim, &kh, cmd, stdin))
}
