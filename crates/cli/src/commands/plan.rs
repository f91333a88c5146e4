//! `labwright plan`: the diff of spec and node, with risk, downtime and rollback.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use sha2::{Digest, Sha256};

use super::common;
use crate::cli::GlobalArgs;
use crate::target;
use crate::{exit, ui};

/// Scans the node and prints what apply would do, in dependency order. Nothing is
/// written to the node.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright plan specs/nas.desired.yaml\n  labwright plan specs/nas.desired.yaml --out plan.json\n  labwright plan specs/nas.desired.yaml --detailed-exitcode -q"
)]
pub struct PlanArgs {
    /// The spec.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// Also save the plan (JSON, bound to this scan) for `labwright apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there is nothing to do and 2 when there are changes.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// Computes a plan for `spec` against the target: shared with apply.
pub async fn compute(
    loaded: &labwright_spec::Loaded,
    spec_path: &std::path::Path,
    conn: &target::Connected,
    g: &GlobalArgs,
) -> anyhow::Result<labwright_engine::Plan> {
    let settings = crate::settings::for_target(conn)?;
    let host = conn.host(&loaded.spec)?;
    let planned = labwright_engine::pipeline::plan_spec(
        &conn.client,
        crate::host::as_exec(&host),
        &loaded.spec,
        &settings,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    for line in &planned.info {
        tracing::info!("{line}");
    }
    for line in &planned.warnings {
        ui::warn(line);
    }
    let mut plan = planned.plan;
    // Said now, not at the end of a long apply.
    let missing = common::unreadable_secrets(&loaded.spec, &plan);
    if !missing.is_empty() && !g.quiet {
        ui::warn(&format!(
            "secret(s) {} that apply will need cannot be read now; apply refuses to start without them",
            missing.join(", ")
        ));
    }
    let text = std::fs::read(spec_path).unwrap_or_default();
    // Absolute, so that `apply plan.json` works from any directory.
    let abs = std::fs::canonicalize(spec_path).unwrap_or_else(|_| spec_path.to_path_buf());
    plan.spec_path = Some(abs.display().to_string());
    plan.spec_sha256 = Some(hex::encode(Sha256::digest(&text)));
    Ok(plan)
}

pub fn run(args: &PlanArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = common::load_checked(&args.spec, g)?;
    let rt = common::runtime()?;
    let plan = rt.block_on(async {
        let conn = target::connect(&g.target).await?;
        ui::info(g, &format!("target: {}", conn.label));
        let plan = compute(&loaded, &args.spec, &conn, g).await;
        conn.close().await;
        plan
    })?;
    crate::print::print(g, &plan)?;
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(&plan)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        ui::info(
            g,
            &format!(
                "plan saved to {} (apply it with `labwright apply {}`)",
                path.display(),
                path.display()
            ),
        );
    }
    let code = if args.detailed_exitcode && !plan.is_empty() {
        exit::CHANGES
    } else {
        exit::OK
    };
    Ok(ExitCode::from(code))
}
