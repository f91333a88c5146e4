//! `labwright validate`: the node matches the spec and the constraints hold.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use comfy_table::{Table, presets};
use labwright_engine::CheckStatus;

use super::common;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::target;
use crate::{exit, ui};

/// Re-scans the node: the plan must be empty, guests in their declared power state,
/// backup jobs present with their retention, build standards met. When everything
/// passes, labwright's pre-change snapshots expire. Exit 1 on any failure.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
}

pub fn run(args: &ValidateArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = common::load_checked(&args.spec, g)?;
    let rt = common::runtime()?;
    let report = rt.block_on(async {
        let conn = target::connect(&g.target).await?;
        ui::info(g, &format!("target: {}", conn.label));
        let r = match crate::settings::for_target(&conn) {
            Ok(settings) => labwright_engine::validate(&conn.client, &loaded.spec, &settings)
                .await
                .map_err(|e| anyhow::anyhow!("{e}")),
            Err(e) => Err(e),
        };
        conn.close().await;
        r
    })?;
    let mut out = std::io::stdout().lock();
    match g.output {
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        _ => {
            let mut t = Table::new();
            t.load_style(if g.output == OutputFormat::Markdown {
                presets::ASCII_MARKDOWN
            } else {
                presets::UTF8_FULL_CONDENSED
            });
            t.set_header(["check", "result", "detail"]);
            for c in &report.checks {
                let s = match c.status {
                    CheckStatus::Pass => "pass",
                    CheckStatus::Fail => "FAIL",
                    CheckStatus::Skipped => "skipped",
                };
                t.add_row([c.name.clone(), s.to_string(), c.detail.clone()]);
            }
            writeln!(out, "{t}")?;
            for (vmid, s) in &report.expired_snapshots {
                writeln!(out, "expired pre-change snapshot {s} on VM {vmid}")?;
            }
            for (vmid, s) in &report.kept_snapshots {
                writeln!(
                    out,
                    "kept pre-change snapshot {s} on VM {vmid} (validation did not pass)"
                )?;
            }
            writeln!(
                out,
                "{}",
                if report.ok {
                    "validate: ok"
                } else {
                    "validate: FAILED"
                }
            )?;
        }
    }
    Ok(ExitCode::from(if report.ok {
        exit::OK
    } else {
        exit::ERROR
    }))
}
