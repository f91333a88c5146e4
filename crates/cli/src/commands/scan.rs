//! `labwright scan`: what the node holds, without a spec.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use comfy_table::{Table, presets};
use labwright_engine::{ScanScope, scan};

use super::common;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::target;
use crate::ui;

/// Reads guests (with their configs), storage and backup jobs in as few requests as
/// the API allows. Never waits on a guest agent.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Only read the inventory (no per-guest config reads).
    #[arg(long)]
    pub inventory_only: bool,
}

pub fn run(args: &ScanArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let rt = common::runtime()?;
    let observed = rt.block_on(async {
        let conn = target::connect(&g.target).await?;
        ui::info(g, &format!("target: {}", conn.label));
        let scope = ScanScope {
            all_configs: !args.inventory_only,
            concurrency: 3,
            ..Default::default()
        };
        let r = scan(&conn.client, "", &scope).await.context("scan failed");
        conn.close().await;
        r
    })?;
    let mut out = std::io::stdout().lock();
    match g.output {
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&observed)?)?,
        _ => {
            let style = if g.output == OutputFormat::Markdown {
                presets::ASCII_MARKDOWN
            } else {
                presets::UTF8_FULL_CONDENSED
            };
            let mut t = Table::new();
            t.load_style(style);
            t.set_header([
                "vmid", "name", "node", "status", "cores", "memory", "tags", "managed",
            ]);
            for vm in observed.vms.values() {
                let get = |k: &str| {
                    vm.config
                        .as_ref()
                        .and_then(|c| c.get(k).cloned())
                        .unwrap_or_default()
                };
                t.add_row([
                    vm.vmid.to_string(),
                    vm.name.clone(),
                    vm.node.clone(),
                    vm.status.clone(),
                    get("cores"),
                    get("memory"),
                    vm.tags.join(";"),
                    if vm.is_managed() {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                ]);
            }
            writeln!(out, "Guests ({})\n{t}", observed.vms.len())?;
            let mut s = Table::new();
            s.load_style(style);
            s.set_header(["storage", "node", "type", "content", "used", "total"]);
            let gib = |b: Option<u64>| {
                b.map(|b| format!("{:.1} GiB", b as f64 / 1073741824.0))
                    .unwrap_or_default()
            };
            for st in &observed.storages {
                s.add_row([
                    st.id.clone(),
                    st.node.clone(),
                    st.plugin.clone().unwrap_or_default(),
                    st.content.clone().unwrap_or_default(),
                    gib(st.used),
                    gib(st.total),
                ]);
            }
            writeln!(out, "\nStorage\n{s}")?;
            let mut b = Table::new();
            b.load_style(style);
            b.set_header([
                "backup job",
                "schedule",
                "storage",
                "guests",
                "retention",
                "enabled",
            ]);
            for j in observed.backup_jobs.values() {
                b.add_row([
                    j.id.clone(),
                    j.schedule.clone().unwrap_or_default(),
                    j.storage.clone().unwrap_or_default(),
                    if j.all {
                        "all".into()
                    } else {
                        j.vmid.clone().unwrap_or_default()
                    },
                    j.prune.clone(),
                    if j.enabled { "yes".into() } else { "no".into() },
                ]);
            }
            writeln!(out, "\nBackup jobs\n{b}")?;
            ui::info(g, &format!("{} requests", observed.requests));
        }
    }
    Ok(ExitCode::SUCCESS)
}
