//! `labwright scan`: what the node holds, without a spec.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use labwright_engine::{ScanScope, scan};

use super::common;
use crate::cli::GlobalArgs;
use crate::target;
use crate::ui;

/// Reads guests (with their configs), storage and backup jobs in as few requests as
/// the API allows. Never waits on a guest agent.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  labwright scan\n  labwright scan --inventory-only -o json")]
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
    crate::print::print(g, &observed)?;
    ui::info(g, &format!("{} requests", observed.requests));
    Ok(ExitCode::SUCCESS)
}
