//! Probes "from the node's side" of the LAN. labwright has no shell on the node (no
//! SSH, by design), so a declared guest on the same bridge runs the probe with `curl`
//! through its guest agent: a guest that boots a cloud image (Debian's carry curl)
//! with its agent on. The output names that vantage point, so a failure is read as
//! "not reachable from the LAN", not "not running".

use std::time::{Duration, Instant};

use labwright_pve::PveClient;
use labwright_spec::Spec;
use labwright_spec::model::{OsSource, Vm};

use crate::agent::{
    ExecError, GuestCheckOptions, exec, first_line, guest_check, guest_ipv4, not_run, wait_agent,
};
use crate::observed::Observed;
use crate::validate::{Check, CheckStatus};

/// The guest that runs LAN probes towards `target` (or any LAN probe when `None`): a
/// declared, running VM with a cloud image and an agent, sharing a bridge with the
/// target, lowest VMID first so the choice is stable between runs.
pub(crate) fn lan_vantage<'a>(
    spec: &'a Spec,
    observed: &Observed,
    target: Option<&Vm>,
) -> Option<&'a Vm> {
    let mut candidates: Vec<&Vm> = spec
        .vms
        .iter()
        .filter(|v| matches!(v.os, Some(OsSource::CloudImage(_))) && v.agent)
        .filter(|v| target.is_none_or(|t| t.vmid != v.vmid))
        .filter(|v| {
            target.is_none_or(|t| {
                t.nics
                    .values()
                    .any(|n| v.nics.values().any(|m| m.bridge == n.bridge))
            })
        })
        .filter(|v| {
            observed
                .vms
                .get(&v.vmid)
                .is_some_and(|o| o.status == "running")
        })
        .collect();
    candidates.sort_by_key(|v| v.vmid);
    candidates.into_iter().next()
}

/// One `curl` of `url` inside `from`: the HTTP status, or why there was none.
pub(crate) async fn curl_status(
    client: &PveClient,
    node: &str,
    from: u32,
    url: &str,
    opts: &GuestCheckOptions,
) -> Result<u16, ExecError> {
    let argv = [
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "--max-time",
        "10",
        "-w",
        "%{http_code}",
        url,
    ];
    let (code, out, err) = exec(client, node, from, &argv, opts.exec_timeout).await?;
    let failed = |text: String| ExecError {
        text,
        unsupported: false,
    };
    match out.trim().parse::<u16>() {
        Ok(status) if status > 0 => Ok(status),
        _ if code == 127 => Err(failed("curl is not installed there".into())),
        _ => Err(failed(if err.trim().is_empty() {
            format!("curl exit {code}")
        } else {
            first_line(&err)
        })),
    }
}

/// Home Assistant answers on 8123, probed from a LAN guest. HA's first start takes a
/// while (the supervisor serves a landing page on 8123 once the OS is up), so the probe
/// repeats until `opts.agent_wait` has passed, then fails with the last error.
pub(crate) async fn haos_check(
    client: &PveClient,
    spec: &Spec,
    observed: &Observed,
    vm: &Vm,
    node: &str,
    name: &str,
    opts: &GuestCheckOptions,
) -> Check {
    let cname = format!("{name} Home Assistant on 8123");
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    // The address comes from HAOS's own agent; DHCP may not have answered yet.
    let ip = loop {
        match guest_ipv4(client, node, vm.vmid).await {
            Ok(ip) => break ip,
            Err(e) if start.elapsed() >= opts.agent_wait => {
                return guest_check(
                    cname,
                    CheckStatus::Fail,
                    format!("no address to probe: {e} (is the VM's NIC on a bridge with DHCP?)"),
                );
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    let url = format!("http://{ip}:8123/");
    let Some(from) = lan_vantage(spec, observed, Some(vm)) else {
        return guest_check(
            cname,
            CheckStatus::Skipped,
            format!(
                "skipped: no running guest with a cloud image and an agent shares a bridge with {} to probe {url} from; open it once in a browser",
                vm.name
            ),
        );
    };
    let Some(from_node) = observed.vms.get(&from.vmid).map(|o| o.node.clone()) else {
        return guest_check(
            cname,
            CheckStatus::Skipped,
            "skipped: vantage point vanished",
        );
    };
    match wait_agent(client, &from_node, from.vmid, opts).await {
        Ok(true) => {}
        Ok(false) | Err(_) => {
            return guest_check(
                cname,
                CheckStatus::Skipped,
                format!(
                    "skipped: {} (the LAN vantage point) has no answering agent to run the probe of {url}",
                    from.name
                ),
            );
        }
    }
    loop {
        let last = match curl_status(client, &from_node, from.vmid, &url, opts).await {
            Ok(status) if (200..400).contains(&status) => {
                return guest_check(
                    cname,
                    CheckStatus::Pass,
                    format!("{url} answered {status} (from {} on the LAN)", from.name),
                );
            }
            Ok(status) => format!("answered {status}"),
            // The agent refuses to run commands there: no probe is possible.
            Err(e) if e.unsupported => return not_run(cname, &e, ""),
            Err(e) if e.contains("not installed") => {
                return guest_check(
                    cname,
                    CheckStatus::Skipped,
                    format!("skipped: {}: {e}", from.name),
                );
            }
            Err(e) => e.text,
        };
        if start.elapsed() >= opts.agent_wait {
            return guest_check(
                cname,
                CheckStatus::Fail,
                format!(
                    "{url} gave no answer from {} within {}s (last: {last}); HA's first start can take minutes: run `labwright validate` again (docs/runbooks/install-haos.md)",
                    from.name,
                    opts.agent_wait.as_secs()
                ),
            );
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
