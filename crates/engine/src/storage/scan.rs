//! Reads the storage side: disks, pools, storage entries and mappings from the API,
//! datasets and sanoid over SSH (only when the spec needs them).

use std::collections::BTreeMap;

use labwright_host::{HostCmd, HostExec};
use labwright_pve::PveClient;
use labwright_pve::api::disks::DiskListFilter;
use labwright_spec::Spec;

use super::{HostSide, HostState, ObservedDataset, ObservedStorageSide, SanoidState};
use crate::EngineError;

pub(crate) const SANOID_CONF: &str = "/etc/sanoid/sanoid.conf";

/// Reads what the storage kinds of `spec` plan from.
pub async fn scan_storage(
    client: &PveClient,
    host: Option<&dyn HostExec>,
    spec: &Spec,
    node: &str,
) -> Result<ObservedStorageSide, EngineError> {
    let filter = DiskListFilter {
        skipsmart: Some(true),
        ..Default::default()
    };
    let (disks, pools, configs, status, mappings) = tokio::join!(
        client.disks_list(node, &filter),
        client.zfs_pools(node),
        client.storage_list(),
        client.node_storage_status(node, None),
        client.dir_mappings(),
    );
    let disks = disks.map_err(|e| EngineError::api("read the node's disks", e))?;
    let pools = pools.map_err(|e| EngineError::api("read the node's ZFS pools", e))?;
    let configs = configs.map_err(|e| EngineError::api("read the storage entries", e))?;
    let status = status.map_err(|e| EngineError::api("read the storage status", e))?;
    // Directory mappings need PVE 8.4+; an older node simply has none.
    let mappings = mappings.unwrap_or_default();
    let mut side = ObservedStorageSide {
        disks,
        pools,
        configs: configs
            .into_iter()
            .map(|c| (c.storage.clone(), c))
            .collect(),
        status: status.into_iter().map(|s| (s.storage.clone(), s)).collect(),
        mappings: mappings.into_iter().map(|m| (m.id.clone(), m)).collect(),
        ..Default::default()
    };
    let declared: Vec<String> = spec
        .storage
        .iter()
        .flat_map(|s| s.zfs_pools.iter())
        .filter(|p| p.phase <= spec.phase)
        .map(|p| p.name.clone())
        .collect();
    for name in &declared {
        if side.pool(name).is_some() {
            let d = client
                .zfs_pool_detail(node, name)
                .await
                .map_err(|e| EngineError::api(&format!("read ZFS pool {name}"), e))?;
            side.pool_details.insert(name.clone(), d);
        }
    }
    // A backup job that moves leaves its archives where they are: read them to say so.
    let moved_from: Vec<String> = spec
        .storage
        .iter()
        .flat_map(|s| s.migrations.iter())
        .filter(|m| m.phase <= spec.phase)
        .filter_map(|m| m.from.strip_prefix("backup-job:"))
        .filter_map(|id| spec.backup_jobs().find(|j| j.id == id))
        .map(|j| j.storage.clone())
        .collect();
    for st in moved_from {
        if let Ok(list) = client
            .storage_content(node, &st, Some("backup"), None)
            .await
        {
            side.old_backups
                .insert(st, list.into_iter().map(|c| c.volid).collect());
        }
    }
    if super::needs_host(spec) {
        side.host = match host {
            None => HostSide::Unavailable {
                why: "no SSH target for the node (set `node.ssh` in the spec or LABWRIGHT_SSH_TARGET=user@host:port)".into(),
            },
            // SSH is set up but does not work (host key, refused, a failing `zfs`):
            // that is for the person to fix now, not a held item to overlook.
            Some(h) => HostSide::Read(read_host(h, &declared).await.map_err(|why| {
                EngineError::Refused(format!(
                    "cannot read the node's datasets over SSH ({}): {why}",
                    h.target()
                ))
            })?),
        };
    }
    Ok(side)
}

async fn run(h: &dyn HostExec, argv: &[&str]) -> Result<labwright_host::HostOutput, String> {
    let cmd = HostCmd::new(argv.iter().copied());
    h.run(&cmd).await.map_err(|e| e.to_string())
}

async fn read_host(h: &dyn HostExec, pools: &[String]) -> Result<HostState, String> {
    let mut st = HostState::default();
    let cmd = [
        "zfs",
        "list",
        "-H",
        "-p",
        "-t",
        "filesystem",
        "-o",
        "name,mountpoint,mounted",
    ];
    let out = run(h, &cmd).await?;
    if !out.ok() {
        return Err(format!(
            "`zfs list` on {} failed: {}",
            h.target(),
            crate::agent::first_line(&out.stderr)
        ));
    }
    for line in out.stdout.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if let [name, mp, mounted] = f[..] {
            st.datasets.insert(
                name.to_string(),
                ObservedDataset {
                    mountpoint: mp.to_string(),
                    mounted: mounted == "yes",
                    props: BTreeMap::new(),
                },
            );
        }
    }
    let present: Vec<&String> = pools
        .iter()
        .filter(|p| st.datasets.contains_key(*p))
        .collect();
    for pool in present {
        let out = run(
            h,
            &[
                "zfs",
                "get",
                "-H",
                "-p",
                "-r",
                "-s",
                "local",
                "-o",
                "name,property,value",
                "all",
                pool,
            ],
        )
        .await?;
        if !out.ok() {
            return Err(format!(
                "`zfs get` on {} failed: {}",
                h.target(),
                crate::agent::first_line(&out.stderr)
            ));
        }
        for line in out.stdout.lines() {
            let mut f = line.splitn(3, '\t');
            if let (Some(n), Some(p), Some(v)) = (f.next(), f.next(), f.next())
                && let Some(d) = st.datasets.get_mut(n)
            {
                d.props.insert(p.to_string(), v.to_string());
            }
        }
    }
    let installed = run(h, &["dpkg-query", "-W", "-f=${Status}", "sanoid"]).await?;
    st.sanoid.installed = installed.ok() && installed.stdout.contains("install ok installed");
    if st.sanoid.installed {
        let conf = run(h, &["cat", SANOID_CONF]).await?;
        st.sanoid.config = conf.ok().then_some(conf.stdout);
        let en = run(h, &["systemctl", "is-enabled", "sanoid.timer"]).await?;
        st.sanoid.timer_enabled = en.ok() && en.stdout.trim() == "enabled";
        let ac = run(h, &["systemctl", "is-active", "sanoid.timer"]).await?;
        st.sanoid.timer_active = ac.ok() && ac.stdout.trim() == "active";
    } else {
        st.sanoid = SanoidState::default();
    }
    Ok(st)
}
