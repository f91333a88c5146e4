//! QEMU guest agent calls (need a running VM with `agent` enabled and the agent up).

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::client::{PveClient, seg};
use crate::de;
use crate::error::Error;
use crate::params::Params;

/// `GET …/agent/exec-status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExecStatus {
    /// Process has exited.
    #[serde(deserialize_with = "de::bool_lenient")]
    pub exited: bool,
    /// Exit code, once exited.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub exitcode: Option<i64>,
    /// Terminating signal.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub signal: Option<i64>,
    /// Stdout (already base64-decoded by PVE).
    #[serde(default, rename = "out-data")]
    pub out_data: Option<String>,
    /// Stderr.
    #[serde(default, rename = "err-data")]
    pub err_data: Option<String>,
    /// Stdout was truncated.
    #[serde(default, rename = "out-truncated", deserialize_with = "de::opt_bool")]
    pub out_truncated: Option<bool>,
    /// Stderr was truncated.
    #[serde(default, rename = "err-truncated", deserialize_with = "de::opt_bool")]
    pub err_truncated: Option<bool>,
}

/// A guest network interface (`network-get-interfaces`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GuestInterface {
    /// Interface name.
    pub name: String,
    /// MAC address.
    #[serde(default, rename = "hardware-address")]
    pub hardware_address: Option<String>,
    /// Addresses.
    #[serde(default, rename = "ip-addresses")]
    pub ip_addresses: Vec<GuestIpAddress>,
}

/// One guest address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GuestIpAddress {
    /// Address.
    #[serde(rename = "ip-address")]
    pub ip_address: String,
    /// `ipv4` or `ipv6`.
    #[serde(default, rename = "ip-address-type")]
    pub ip_address_type: String,
    /// Prefix length.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub prefix: Option<u32>,
}

/// The agent's answer, unwrapped: `{"result": …}` (or the bare value some commands
/// give), or its `{"error": {"class", "desc"}}` as [`Error::Agent`] rather than a
/// decode error about a map where a list was expected.
fn agent_answer<T: serde::de::DeserializeOwned>(
    vmid: u32,
    what: &str,
    v: serde_json::Value,
) -> Result<T, Error> {
    let inner = match v.get("result") {
        Some(r) => r.clone(),
        None => v,
    };
    if let Some(err) = inner.get("error").filter(|e| e.is_object()) {
        let s = |k: &str| {
            err.get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("unknown")
                .to_string()
        };
        return Err(Error::Agent {
            vmid,
            class: s("class"),
            desc: s("desc"),
        });
    }
    serde_json::from_value(inner).map_err(|e| Error::Agent {
        vmid,
        class: "UnexpectedAnswer".into(),
        desc: format!("{what}: {e}"),
    })
}

#[derive(Deserialize)]
struct ExecPid {
    #[serde(deserialize_with = "de::u64_lenient")]
    pid: u64,
}

fn agent_path(node: &str, vmid: u32, cmd: &str) -> String {
    format!("/nodes/{}/qemu/{vmid}/agent/{cmd}", seg(node))
}

impl PveClient {
    /// `POST …/agent/ping`: succeeds when the agent answers.
    pub async fn agent_ping(&self, node: &str, vmid: u32) -> Result<(), Error> {
        let v: serde_json::Value = self
            .post(&agent_path(node, vmid, "ping"), Params::new())
            .await?;
        // `ping` answers `{"result": {}}`; only an error object matters.
        agent_answer::<serde_json::Value>(vmid, "ping", v).map(|_| ())
    }

    /// `POST …/agent/exec`: start `command` (program + args); returns the guest pid.
    pub async fn agent_exec(
        &self,
        node: &str,
        vmid: u32,
        command: &[&str],
        input_data: Option<&str>,
    ) -> Result<u64, Error> {
        if command.is_empty() {
            return Err(Error::Config("agent exec needs a command".into()));
        }
        let mut p = Params::new();
        for part in command {
            p = p.push("command", *part);
        }
        let p = p.set_opt("input-data", input_data);
        let v: serde_json::Value = self.post(&agent_path(node, vmid, "exec"), p).await?;
        let r: ExecPid = agent_answer(vmid, "exec", v)?;
        Ok(r.pid)
    }

    /// `GET …/agent/exec-status?pid=N`.
    pub async fn agent_exec_status(
        &self,
        node: &str,
        vmid: u32,
        pid: u64,
    ) -> Result<ExecStatus, Error> {
        let v: serde_json::Value = self
            .get(
                &agent_path(node, vmid, "exec-status"),
                Params::new().set("pid", pid),
            )
            .await?;
        agent_answer(vmid, "exec-status", v)
    }

    /// Run a command and poll until it exits (backoff 100 ms → 1 s) or `timeout`.
    pub async fn agent_exec_wait(
        &self,
        node: &str,
        vmid: u32,
        command: &[&str],
        input_data: Option<&str>,
        timeout: Duration,
    ) -> Result<ExecStatus, Error> {
        let pid = self.agent_exec(node, vmid, command, input_data).await?;
        let start = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let st = self.agent_exec_status(node, vmid, pid).await?;
            if st.exited {
                return Ok(st);
            }
            if start.elapsed() >= timeout {
                return Err(Error::AgentExecTimeout {
                    vmid,
                    pid,
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// `POST …/agent/file-write` (content ≤ 60 KiB; PVE base64-encodes unless `encode=0`).
    pub async fn agent_file_write(
        &self,
        node: &str,
        vmid: u32,
        file: &str,
        content: &str,
        encode: Option<bool>,
    ) -> Result<(), Error> {
        let p = Params::new()
            .set("file", file)
            .set("content", content)
            .set_opt("encode", encode);
        self.post::<serde_json::Value>(&agent_path(node, vmid, "file-write"), p)
            .await
            .map(|_| ())
    }

    /// `GET …/agent/network-get-interfaces`.
    pub async fn agent_network_interfaces(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<Vec<GuestInterface>, Error> {
        let v: serde_json::Value = self
            .get(
                &agent_path(node, vmid, "network-get-interfaces"),
                Params::new(),
            )
            .await?;
        agent_answer(vmid, "network-get-interfaces", v)
    }
}
