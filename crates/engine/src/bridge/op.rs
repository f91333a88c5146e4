//! The bridge wave's executor: stage every create and update in `interfaces.new`,
//! reload once, probe over a fresh connection. A failed reload or probe is undone over
//! the kept-alive connection: staged changes are discarded (`DELETE …/network`) when
//! the reload never moved them live, otherwise the previous definitions are restored
//! and the network reloaded again — so nothing is left half-applied.

use labwright_pve::PveClient;
use labwright_pve::api::network::NetworkIfaceConfig;
use serde::{Deserialize, Serialize};

use super::deadman;
use crate::error::StepError;
use crate::guarded::{Guard, guarded, probe_fresh};
use crate::op::ExecCx;

/// A bridge stanza as labwright writes it (the full desired set: PVE recomputes the
/// method from what an update sends).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeDef {
    pub name: String,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub autostart: bool,
}

impl BridgeDef {
    pub(crate) fn declared(name: &str, b: &labwright_spec::model::Bridge) -> Self {
        BridgeDef {
            name: name.to_string(),
            ports: b.ports.clone(),
            cidr: b.address.map(|a| a.0.to_string()),
            gateway: b.gateway.map(|g| g.to_string()),
            comment: super::norm_comment(b.comment.as_deref()),
            autostart: b.autostart,
        }
    }

    pub(crate) fn observed(name: &str, o: &super::ObservedBridge) -> Self {
        BridgeDef {
            name: name.to_string(),
            ports: o.ports.clone(),
            cidr: o.cidr.clone(),
            gateway: o.gateway.clone(),
            comment: o.comment.clone(),
            autostart: o.autostart,
        }
    }

    /// "bridge, no ports, no address, comment …" for the plan's change list.
    pub(crate) fn describe(&self) -> String {
        let mut s = format!(
            "bridge, {}, {}",
            if self.ports.is_empty() {
                "no ports".to_string()
            } else {
                format!("ports {}", self.ports.join(" "))
            },
            self.cidr
                .as_deref()
                .map(|c| format!("address {c}"))
                .unwrap_or_else(|| "no address".into())
        );
        if let Some(c) = &self.comment {
            s.push_str(&format!(", comment {c:?}"));
        }
        s
    }

    fn config(&self) -> NetworkIfaceConfig {
        let mut c = NetworkIfaceConfig::bridge(None);
        c.bridge_ports = (!self.ports.is_empty()).then(|| self.ports.join(" "));
        c.autostart = Some(self.autostart);
        c.cidr = self.cidr.clone();
        c.gateway = self.gateway.clone();
        c.comments = self.comment.clone();
        c
    }

    /// Keys an update removes (absent from the definition).
    fn deletes(&self) -> Vec<&'static str> {
        let mut d = Vec::new();
        if self.ports.is_empty() {
            d.push("bridge_ports");
        }
        if self.cidr.is_none() {
            d.push("cidr");
        }
        if self.gateway.is_none() {
            d.push("gateway");
        }
        if self.comment.is_none() {
            d.push("comments");
        }
        d
    }

    fn params_text(&self) -> String {
        let mut p = vec![format!("iface={}", self.name), "type=bridge".to_string()];
        if !self.ports.is_empty() {
            p.push(format!("bridge_ports={}", self.ports.join(" ")));
        }
        if let Some(c) = &self.cidr {
            p.push(format!("cidr={c}"));
        }
        if let Some(g) = &self.gateway {
            p.push(format!("gateway={g}"));
        }
        p.push(format!("autostart={}", u8::from(self.autostart)));
        if let Some(c) = &self.comment {
            p.push(format!("comments={c}"));
        }
        p.join(" ")
    }
}

/// An existing bridge changed in place, with what it was (restored on failure).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeUpdate {
    pub want: BridgeDef,
    pub before: BridgeDef,
}

/// The whole wave: one reload for every bridge in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeOp {
    pub node: String,
    #[serde(default)]
    pub create: Vec<BridgeDef>,
    #[serde(default)]
    pub update: Vec<BridgeUpdate>,
    /// Staged changes of these bridges only (an interrupted apply) are discarded first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discard_staged: bool,
}

impl BridgeOp {
    fn path(&self) -> String {
        format!("/nodes/{}/network", self.node)
    }

    /// Stages the wave; on a refusal, what was staged is discarded.
    async fn stage(&self, c: &PveClient) -> Result<(), StepError> {
        let mut list = c
            .network_list(&self.node, None)
            .await
            .map_err(StepError::ctx("read the node's network"))?;
        let names: Vec<String> = self
            .create
            .iter()
            .map(|d| d.name.clone())
            .chain(self.update.iter().map(|u| u.want.name.clone()))
            .collect();
        if self.discard_staged
            && list
                .changes
                .as_deref()
                .is_some_and(|d| super::staged_only_for(d, &names))
        {
            c.network_revert(&self.node).await.map_err(StepError::ctx(
                "discard the staged changes an interrupted apply left",
            ))?;
            list = c
                .network_list(&self.node, None)
                .await
                .map_err(StepError::ctx("read the node's network"))?;
        }
        if list
            .changes
            .as_deref()
            .is_some_and(|d| !d.trim().is_empty())
        {
            return Err(StepError::Refused(format!(
                "the node has staged network changes this plan did not make ({}): a reload would apply them too. Review them under Node → System → Network, apply or revert them, then plan again",
                self.path()
            )));
        }
        let staged = async {
            for d in &self.create {
                match list.ifaces.iter().find(|i| i.iface == d.name) {
                    // Made meanwhile (a rerun after a lost reply): update it instead.
                    Some(i) if i.iface_type == "bridge" => c
                        .network_update(&self.node, &d.name, &d.config(), &d.deletes())
                        .await
                        .map_err(StepError::ctx(format!("stage bridge {}", d.name)))?,
                    Some(i) => {
                        return Err(StepError::Refused(format!(
                            "`{}` exists on the node as a {} interface, not a bridge",
                            d.name, i.iface_type
                        )));
                    }
                    None => c
                        .network_create(&self.node, &d.name, &d.config())
                        .await
                        .map_err(StepError::ctx(format!("stage bridge {}", d.name)))?,
                }
            }
            for u in &self.update {
                c.network_update(
                    &self.node,
                    &u.want.name,
                    &u.want.config(),
                    &u.want.deletes(),
                )
                .await
                .map_err(StepError::ctx(format!("stage bridge {}", u.want.name)))?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = staged {
            if let Err(re) = c.network_revert(&self.node).await {
                return Err(StepError::ProbeFailedRevertFailed {
                    probe: format!("staging the bridges failed ({e})"),
                    revert: format!(
                        "discarding the staged changes failed too ({re}): click Revert under Node → System → Network before anything reloads the network"
                    ),
                });
            }
            return Err(e);
        }
        Ok(())
    }

    async fn reload(&self, cx: &ExecCx<'_>) -> Result<(), StepError> {
        let upid = cx
            .client
            .network_reload(&self.node)
            .await
            .map_err(StepError::ctx("reload the node's network"))?;
        crate::op::wait(cx, Some(upid), "reload the node's network").await
    }

    /// [`Self::restore_once`], retried while new connections are refused: the revert
    /// needs a kept-alive connection, and with other actions in flight every pooled
    /// one may be busy for a moment. Restoring is idempotent (it re-reads the node).
    async fn restore(&self, cx: &ExecCx<'_>) -> Result<(), StepError> {
        let mut tries = 0u32;
        loop {
            match self.restore_once(cx).await {
                Err(StepError::Api { source, .. }) if source.is_connect() && tries < 40 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// Puts the node back as it was: staged changes discarded; if they went live,
    /// created bridges removed, updated ones restored, and the network reloaded.
    async fn restore_once(&self, cx: &ExecCx<'_>) -> Result<(), StepError> {
        let c = cx.client;
        let list = c
            .network_list(&self.node, None)
            .await
            .map_err(StepError::ctx("read the node's network"))?;
        if list
            .changes
            .as_deref()
            .is_some_and(|d| !d.trim().is_empty())
        {
            c.network_revert(&self.node)
                .await
                .map_err(StepError::ctx("discard the staged network changes"))?;
        }
        let list = c
            .network_list(&self.node, None)
            .await
            .map_err(StepError::ctx("read the node's network"))?;
        let mut live = false;
        for d in &self.create {
            if list.ifaces.iter().any(|i| i.iface == d.name) {
                live = true;
                c.network_delete(&self.node, &d.name)
                    .await
                    .map_err(StepError::ctx(format!("remove bridge {}", d.name)))?;
            }
        }
        for u in &self.update {
            let now = list.ifaces.iter().find(|i| i.iface == u.want.name);
            let was = u.before.comment.as_deref();
            if now.is_some_and(|i| super::norm_comment(i.comments.as_deref()).as_deref() != was) {
                live = true;
                c.network_update(
                    &self.node,
                    &u.before.name,
                    &u.before.config(),
                    &u.before.deletes(),
                )
                .await
                .map_err(StepError::ctx(format!("restore bridge {}", u.before.name)))?;
            }
        }
        if live {
            self.reload(cx).await?;
        }
        Ok(())
    }

    /// After a failed reload: restore, confirm over a fresh connection, and say so.
    async fn undo_failed_reload(&self, cx: &ExecCx<'_>, e: StepError) -> StepError {
        let what = format!("the network reload failed ({e})");
        match self.restore(cx).await {
            Err(re) => StepError::ProbeFailedRevertFailed {
                probe: what,
                revert: format!(
                    "restoring the previous network definitions failed too ({re}). Check Node → System → Network from the console; see {}",
                    crate::guarded::RUNBOOK
                ),
            },
            Ok(()) => match cx.settings.probe.as_ref() {
                Some(cfg) => match probe_fresh(cfg).await {
                    Ok(_) => StepError::ProbeFailedReverted { probe: what },
                    Err(p) => StepError::ProbeFailedRevertFailed {
                        probe: what,
                        revert: format!(
                            "the previous definitions were restored but the node refuses new connections ({p}); recover from the console with {}",
                            crate::guarded::RUNBOOK
                        ),
                    },
                },
                None => StepError::ProbeFailedReverted { probe: what },
            },
        }
    }
}

impl crate::op::Step for BridgeOp {
    fn api_calls(&self) -> Vec<String> {
        let path = self.path();
        let mut v: Vec<String> = Vec::new();
        if self.discard_staged {
            v.push(format!(
                "DELETE {path} (discard what an interrupted apply staged)"
            ));
        }
        v.extend(
            self.create
                .iter()
                .map(|d| format!("POST {path} {}", d.params_text())),
        );
        v.extend(
            self.update
                .iter()
                .map(|u| format!("PUT {path}/{} {}", u.want.name, u.want.params_text())),
        );
        v.push(format!(
            "PUT {path} (one reload: ifreload -a, srvreload task)"
        ));
        v.push(
            "GET /version over a fresh connection (probe); on failure DELETE the staged changes or restore the previous definitions and PUT (reload) again"
                .to_string(),
        );
        // With SSH to the node: the dead-man around the reload.
        v.extend(
            deadman::arm_cmds(120).iter().map(|c| {
                format!("SSH {c} (with SSH, before the reload; LABWRIGHT_NET_DEADMAN_SECS)")
            }),
        );
        v.push(format!(
            "SSH {} (after the probe passed)",
            deadman::disarm()
        ));
        v
    }

    async fn run(&self, cx: &ExecCx<'_>) -> Result<(), StepError> {
        // A dead-man an interrupted run left must not fire into this wave.
        if let Some(h) = cx.host {
            let _ = h.run(&deadman::disarm()).await;
        }
        self.stage(cx.client).await?;
        let secs = cx.settings.net_deadman.as_secs().max(1);
        let armed = match cx.host {
            None => None,
            Some(h) => match deadman::arm(h, secs).await {
                Ok(()) => Some(std::time::Instant::now()),
                Err(e) => {
                    let _ = cx.client.network_revert(&self.node).await;
                    return Err(StepError::Refused(format!(
                        "cannot arm the network dead-man on the node ({e}); the staged bridges were discarded and nothing was reloaded"
                    )));
                }
            },
        };
        let guard = Guard {
            probe: cx.settings.probe.as_ref(),
            settle: cx.settings.probe_settle,
        };
        let change = async {
            match self.reload(cx).await {
                Ok(()) => Ok(()),
                Err(e) => Err(self.undo_failed_reload(cx, e).await),
            }
        };
        let revert = || async {
            match (self.restore(cx).await, armed, cx.settings.probe.as_ref()) {
                (Ok(()), _, _) => Ok(()),
                // No connection left to restore over: the node restores itself.
                (Err(e), Some(at), Some(cfg)) => deadman::wait(cx, cfg, at, secs, e).await,
                (Err(e), _, _) => Err(e),
            }
        };
        let mut result = guarded(&guard, change, revert).await;
        if let Some(h) = cx.host {
            match (deadman::stop(h).await, &mut result) {
                (Ok(()), _) => {}
                (Err(why), Err(StepError::ProbeFailedReverted { probe }))
                    if why.contains("already fired") =>
                {
                    probe.push_str(
                        "; with no connection left, the node restored its previous network by itself (the dead-man timer)",
                    );
                }
                (Err(_), Err(_)) => {}
                (Err(why), Ok(())) if why.contains("already fired") => {
                    return Err(StepError::Refused(format!(
                        "the dead-man fired before the wave confirmed the new network ({secs}s after it was armed): the node is back on its previous network; run apply again (a slow node needs a larger LABWRIGHT_NET_DEADMAN_SECS)"
                    )));
                }
                (Err(why), Ok(())) => {
                    return Err(StepError::Refused(format!(
                        "the bridges came up and the probe passed, but the dead-man could not be stopped ({why}); the node restores its previous network within {secs}s of the reload: run apply again afterwards"
                    )));
                }
            }
        }
        result
    }
}
