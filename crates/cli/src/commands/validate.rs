//! `labwright validate`: the node matches the spec and the constraints hold.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::common;
use crate::cli::GlobalArgs;
use crate::target;
use crate::{exit, ui};

/// Re-scans the node: the plan must be empty, guests in their declared power state,
/// backup jobs present with their retention, build standards met, checks inside the
/// guests pass. Exit 1 on any failure.
///
/// What it changes when everything passes: the guests' seed ISOs are detached and
/// deleted (they hold the Tailscale auth key) and labwright's pre-change snapshots
/// (`lw-…`) expire. `--no-cleanup` makes it read-only.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright validate specs/nas.desired.yaml\n  labwright validate specs/nas.desired.yaml --no-cleanup -o json"
)]
pub struct ValidateArgs {
    /// The spec to validate against.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// Change nothing: keep the seeds and the pre-change snapshots.
    #[arg(long)]
    pub no_cleanup: bool,
}

pub fn run(args: &ValidateArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = common::load_checked(&args.spec, g)?;
    let rt = common::runtime()?;
    let report = rt.block_on(async {
        let conn = target::connect(&g.target).await?;
        ui::info(g, &format!("target: {}", conn.label));
        // The clean-up writes: the token must allow it before validate starts.
        if !args.no_cleanup
            && let Err(e) = super::doctor::preflight_cleanup(&conn, &loaded.spec).await
        {
            conn.close().await;
            return Err(e);
        }
        let r = match crate::settings::for_target(&conn) {
            Ok(settings) => match conn.host(&loaded.spec) {
                Ok(host) => labwright_engine::validate(
                    &conn.client,
                    crate::host::as_exec(&host),
                    &loaded.spec,
                    &settings,
                    !args.no_cleanup,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}")),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        conn.close().await;
        r
    })?;
    crate::print::print(g, &report)?;
    Ok(ExitCode::from(if report.ok {
        exit::OK
    } else {
        exit::ERROR
    }))
}
