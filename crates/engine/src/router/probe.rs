//! A vantage point on an internal segment with no guest needed: a network namespace
//! on the node, its veth end on the segment's bridge, an address from the lower half
//! of the segment (the router's DHCP pool is the upper half) and the router as
//! default gateway. From there a TCP connect is what a device on that segment would
//! see, through the real bridge, the router's rules and the guests' firewalls. The
//! namespace exists only for the duration of one check and is removed even when the
//! check fails; a namespace left by an interrupted run is removed before a new one is
//! made.

use std::net::Ipv4Addr;

use labwright_host::{HostCmd, HostExec, HostOutput};
use serde::{Deserialize, Serialize};

/// Seconds one TCP connect may take before the cell counts as dropped.
pub const CONNECT_TIMEOUT_SECS: u32 = 3;

/// One probe namespace: where it sits and what it is called.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeNs {
    pub bridge: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// What one TCP connect found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The handshake completed.
    Open,
    /// Reset: the host was reached and nothing listens (or a REJECT answered).
    Refused,
    /// No answer within the timeout: dropped on the way.
    Timeout,
    /// No route / host unreachable.
    NoRoute,
    /// The probe itself could not run (the message says why).
    Error(String),
}

impl Reach {
    /// Did the traffic get through to the host (a connection or a reset)?
    pub fn reached(&self) -> bool {
        matches!(self, Reach::Open | Reach::Refused)
    }

    pub fn words(&self) -> String {
        match self {
            Reach::Open => "open".into(),
            Reach::Refused => "refused (reached; nothing listens)".into(),
            Reach::Timeout => format!("no answer in {CONNECT_TIMEOUT_SECS}s (dropped)"),
            Reach::NoRoute => "no route".into(),
            Reach::Error(e) => format!("probe failed: {e}"),
        }
    }
}

impl ProbeNs {
    /// The namespace name (`lw-probe-vmbr2`).
    pub fn name(&self) -> String {
        format!("lw-probe-{}", self.bridge)
    }
    /// The veth end on the bridge (`lwp-vmbr2`; interface names stop at 15 bytes).
    fn host_if(&self) -> String {
        short_if("lwp-", &self.bridge)
    }
    /// The veth end inside the namespace.
    fn ns_if(&self) -> String {
        short_if("lwq-", &self.bridge)
    }

    /// Commands that make the namespace, in order (each must succeed).
    pub fn setup(&self) -> Vec<HostCmd> {
        let ns = self.name();
        let (h, n) = (self.host_if(), self.ns_if());
        vec![
            HostCmd::new(["ip", "netns", "add", ns.as_str()]),
            HostCmd::new([
                "ip",
                "link",
                "add",
                h.as_str(),
                "type",
                "veth",
                "peer",
                "name",
                n.as_str(),
            ]),
            HostCmd::new([
                "ip",
                "link",
                "set",
                h.as_str(),
                "master",
                &self.bridge,
                "up",
            ]),
            HostCmd::new(["ip", "link", "set", n.as_str(), "netns", ns.as_str()]),
            HostCmd::new([
                "ip".to_string(),
                "-n".into(),
                ns.clone(),
                "addr".into(),
                "add".into(),
                format!("{}/{}", self.address, self.prefix),
                "dev".into(),
                n.clone(),
            ]),
            HostCmd::new(["ip", "-n", ns.as_str(), "link", "set", n.as_str(), "up"]),
            HostCmd::new([
                "ip".to_string(),
                "-n".into(),
                ns.clone(),
                "route".into(),
                "add".into(),
                "default".into(),
                "via".into(),
                self.gateway.to_string(),
            ]),
        ]
    }

    /// Removes the namespace (and with it the veth pair).
    pub fn teardown(&self) -> HostCmd {
        HostCmd::new(["ip".to_string(), "netns".into(), "del".into(), self.name()])
    }

    /// Removes the veth pair from the node's side: a run cut off between making the
    /// pair and moving its end into the namespace leaves it outside any namespace.
    pub fn unlink(&self) -> HostCmd {
        HostCmd::new([
            "ip".to_string(),
            "link".into(),
            "del".into(),
            self.host_if(),
        ])
    }

    /// One TCP connect from inside the namespace (bash's `/dev/tcp`: on every node,
    /// no netcat flavour to guess).
    pub fn connect(&self, ip: Ipv4Addr, port: u16) -> HostCmd {
        let mut argv = vec!["ip".to_string(), "netns".into(), "exec".into(), self.name()];
        argv.extend(connect_argv(&ip.to_string(), port));
        HostCmd::new(argv)
    }

    /// The namespace's neighbour entry for `ip` (its MAC once `ip` answered ARP).
    pub fn neigh(&self, ip: Ipv4Addr) -> HostCmd {
        HostCmd::new([
            "ip".to_string(),
            "-n".into(),
            self.name(),
            "-j".into(),
            "neigh".into(),
            "show".into(),
            ip.to_string(),
        ])
    }
}

/// `timeout 3 bash -c 'exec 3<>/dev/tcp/IP/PORT'` as argv (also what a guest's agent
/// runs).
pub fn connect_argv(ip: &str, port: u16) -> Vec<String> {
    vec![
        "timeout".into(),
        CONNECT_TIMEOUT_SECS.to_string(),
        "bash".into(),
        "-c".into(),
        format!("exec 3<>/dev/tcp/{ip}/{port}"),
    ]
}

fn short_if(prefix: &str, bridge: &str) -> String {
    let mut s = format!("{prefix}{bridge}");
    s.truncate(15);
    s
}

/// Reads a connect's exit code and stderr (bash and coreutils' `timeout` wording).
pub fn reach_of(code: i32, stderr: &str) -> Reach {
    let e = stderr.to_ascii_lowercase();
    match code {
        0 => Reach::Open,
        124 => Reach::Timeout,
        _ if e.contains("connection refused") => Reach::Refused,
        _ if e.contains("no route to host")
            || e.contains("network is unreachable")
            || e.contains("host is unreachable") =>
        {
            Reach::NoRoute
        }
        _ if e.contains("timed out") => Reach::Timeout,
        _ => Reach::Error(format!(
            "exit {code}{}",
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", stderr.trim())
            }
        )),
    }
}

/// The MAC of a usable neighbour entry in `ip -j neigh` output (upper case, as PVE
/// writes MACs), or `None` when there is none or it failed.
pub fn neigh_mac(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    v.as_array()?.iter().find_map(|e| {
        let failed = e["state"].as_array().is_some_and(|s| {
            s.iter()
                .any(|x| matches!(x.as_str(), Some("FAILED" | "INCOMPLETE")))
        });
        if failed {
            return None;
        }
        e["lladdr"].as_str().map(str::to_ascii_uppercase)
    })
}

/// Runs `body` inside a fresh probe namespace: a stale one is removed first, the new
/// one always removed after. Errors name the command that failed.
pub async fn with_ns<T, F>(host: &dyn HostExec, ns: &ProbeNs, body: F) -> Result<T, String>
where
    F: AsyncFnOnce(&dyn HostExec, &ProbeNs) -> Result<T, String>,
{
    // A namespace or a veth pair an interrupted run left behind (their exit codes do
    // not matter: usually there is none).
    let _ = host.run(&ns.teardown()).await;
    let _ = host.run(&ns.unlink()).await;
    let mut made = Ok(());
    for cmd in ns.setup() {
        match host.run(&cmd).await {
            Ok(o) if o.ok() => {}
            Ok(o) => {
                made = Err(failed(host, &cmd, &o));
                break;
            }
            Err(e) => {
                made = Err(e.to_string());
                break;
            }
        }
    }
    let result = match made {
        Ok(()) => body(host, ns).await,
        Err(e) => Err(format!(
            "cannot make the probe namespace on {}: {e}",
            ns.bridge
        )),
    };
    let gone = host.run(&ns.teardown()).await;
    match (result, gone) {
        (Ok(v), Ok(o)) if o.ok() => Ok(v),
        (Ok(_), Ok(o)) => Err(format!(
            "the probe namespace {} could not be removed: {}; remove it by hand: `ip netns del {}`",
            ns.name(),
            o.stderr.trim(),
            ns.name()
        )),
        (Ok(_), Err(e)) => Err(format!(
            "the probe namespace {} could not be removed ({e}); remove it by hand: `ip netns del {}`",
            ns.name(),
            ns.name()
        )),
        (Err(e), _) => Err(e),
    }
}

/// One connect from the namespace.
pub async fn connect(host: &dyn HostExec, ns: &ProbeNs, ip: Ipv4Addr, port: u16) -> Reach {
    match host.run(&ns.connect(ip, port)).await {
        Ok(o) => reach_of(o.code, &o.stderr),
        Err(e) => Reach::Error(e.to_string()),
    }
}

fn failed(host: &dyn HostExec, cmd: &HostCmd, o: &HostOutput) -> String {
    format!(
        "`{}` on {} failed (exit {}): {}",
        cmd.line(),
        host.target(),
        o.code,
        o.stderr.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_results_read_as_bash_words_them() {
        assert_eq!(reach_of(0, ""), Reach::Open);
        assert_eq!(reach_of(124, ""), Reach::Timeout);
        assert_eq!(
            reach_of(
                1,
                "bash: connect: Connection refused\nbash: line 1: /dev/tcp/10.0.0.1/22: Connection refused\n"
            ),
            Reach::Refused
        );
        assert_eq!(
            reach_of(1, "bash: connect: No route to host\n"),
            Reach::NoRoute
        );
        assert!(matches!(reach_of(127, "bash: not found"), Reach::Error(_)));
        assert!(Reach::Refused.reached() && !Reach::Timeout.reached());
    }

    #[test]
    fn neighbour_entries_give_the_mac_unless_failed() {
        let ok = r#"[{"dst":"10.10.20.1","dev":"lwq-vmbr2","lladdr":"02:ab:cd:00:11:22","state":["REACHABLE"]}]"#;
        assert_eq!(neigh_mac(ok).as_deref(), Some("02:AB:CD:00:11:22"));
        let failed = r#"[{"dst":"10.10.20.1","dev":"lwq-vmbr2","state":["FAILED"]}]"#;
        assert_eq!(neigh_mac(failed), None);
        assert_eq!(neigh_mac("[]"), None);
        assert_eq!(neigh_mac("not json"), None);
    }

    #[test]
    fn commands_are_the_documented_ones() {
        let ns = ProbeNs {
            bridge: "vmbr2".into(),
            address: Ipv4Addr::new(10, 10, 20, 127),
            prefix: 24,
            gateway: Ipv4Addr::new(10, 10, 20, 1),
        };
        let lines: Vec<String> = ns.setup().iter().map(HostCmd::line).collect();
        assert_eq!(lines[0], "ip netns add lw-probe-vmbr2");
        assert_eq!(
            lines[1],
            "ip link add lwp-vmbr2 type veth peer name lwq-vmbr2"
        );
        assert_eq!(
            lines[4],
            "ip -n lw-probe-vmbr2 addr add 10.10.20.127/24 dev lwq-vmbr2"
        );
        assert_eq!(
            lines[6],
            "ip -n lw-probe-vmbr2 route add default via 10.10.20.1"
        );
        assert_eq!(
            ns.connect(Ipv4Addr::new(10, 10, 20, 5), 8123).line(),
            "ip netns exec lw-probe-vmbr2 timeout 3 bash -c 'exec 3<>/dev/tcp/10.10.20.5/8123'"
        );
        assert_eq!(ns.teardown().line(), "ip netns del lw-probe-vmbr2");
        assert_eq!(ns.unlink().line(), "ip link del lwp-vmbr2");
        // A long bridge name still gives a valid interface name.
        assert_eq!(short_if("lwp-", "vmbr_services_long").len(), 15);
    }
}
