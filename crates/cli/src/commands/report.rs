//! `labwright report`: one offline HTML page with the plan, the topology, the
//! reachability matrix, the router's rules, the last validate checklist and the
//! lockout proof. Every value comes from the commands that already compute it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use labwright_engine::Plan;
use labwright_engine::firewall::{compile_spec, matrix};
use sha2::{Digest, Sha256};

use super::common;
use crate::cli::GlobalArgs;
use crate::render::report::{self, Inputs, RouterView, SavedValidation};
use crate::{exit, target, ui};

/// Writes one self-contained HTML file (inline CSS and SVG, no script, nothing
/// loaded from anywhere) that reads on a phone and prints on paper.
///
/// The plan comes from a scan of the target, like `labwright plan`, or from a plan
/// saved with `labwright plan --out` (`--plan`, no node contacted). The checklist
/// comes from a saved `labwright validate -o json` (`--validate`): the report never
/// runs validate itself, because a passing validate cleans up on the node.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright report specs/jarvis-homelab.desired.yaml --out report.html\n  labwright plan specs/nas.desired.yaml --out plan.json && labwright report specs/nas.desired.yaml --plan plan.json --out report.html\n  labwright validate specs/nas.desired.yaml -o json > v.json; labwright report specs/nas.desired.yaml --validate v.json --out report.html"
)]
pub struct ReportArgs {
    /// The spec.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// Where to write the HTML page (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Use this saved plan (`labwright plan --out FILE`) instead of scanning the node.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Show this saved validate result (`labwright validate -o json > FILE`).
    #[arg(long, value_name = "FILE")]
    pub validate: Option<PathBuf>,
}

fn read_plan(path: &Path, spec_path: &Path, g: &GlobalArgs) -> anyhow::Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the plan {}", path.display()))?;
    let plan: Plan = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a plan saved by `labwright plan --out FILE`",
            path.display()
        )
    })?;
    if let Some(want) = &plan.spec_sha256 {
        let now = hex::encode(Sha256::digest(std::fs::read(spec_path).unwrap_or_default()));
        if &now != want {
            ui::warn(&format!(
                "the plan {} was made from another version of {}: the report shows the plan as saved",
                path.display(),
                spec_path.display()
            ));
        }
    }
    ui::info(g, &format!("plan read from {}", path.display()));
    Ok(plan)
}

fn read_validation(path: &Path) -> anyhow::Result<SavedValidation> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the validate result {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not the output of `labwright validate SPEC -o json`",
            path.display()
        )
    })
}

pub fn run(args: &ReportArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = common::load_checked(&args.spec, g)?;
    // Read first: a wrong file is said before any node is contacted.
    let validation = args.validate.as_deref().map(read_validation).transpose()?;
    let (plan, source) = match &args.plan {
        Some(p) => (
            read_plan(p, &args.spec, g)?,
            format!("the saved plan {}", p.display()),
        ),
        None => {
            let rt = common::runtime()?;
            rt.block_on(async {
                let conn = target::connect(&g.target).await?;
                ui::info(g, &format!("target: {}", conn.label));
                let plan = super::plan::compute(&loaded, &args.spec, &conn, g).await;
                let label = conn.label.clone();
                conn.close().await;
                plan.map(|p| (p, format!("a scan of {label}")))
            })?
        }
    };
    let started = Instant::now();
    let html = render(&loaded.spec, &plan, &source, validation.as_ref(), args)?;
    ui::info(
        g,
        &format!(
            "report rendered in {:.1} ms ({} actions, {} bytes)",
            started.elapsed().as_secs_f64() * 1000.0,
            plan.actions.len(),
            html.len()
        ),
    );
    match &args.out {
        Some(path) => {
            std::fs::write(path, &html)
                .with_context(|| format!("cannot write {}", path.display()))?;
            ui::info(g, &format!("report written to {}", path.display()));
        }
        None => crate::print::raw(&html)?,
    }
    Ok(ExitCode::from(exit::OK))
}

/// The page from the values: the matrix and the router at the spec's phase, the
/// topology of the spec.
fn render(
    spec: &labwright_spec::Spec,
    plan: &Plan,
    source: &str,
    validation: Option<&SavedValidation>,
    args: &ReportArgs,
) -> anyhow::Result<String> {
    let phase = spec.phase.0;
    let m = matrix::reachability(spec, phase, &compile_spec(spec));
    let picture = crate::render::graph::from_spec(spec, phase, Some(&m));
    let svg = picture.svg_inline();
    let router: RouterView = match labwright_router::compile(spec, phase) {
        Ok(rs) => labwright_router::cells(spec, phase)
            .map(|c| (rs, c))
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let vname = args
        .validate
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    Ok(report::html(&Inputs {
        spec,
        plan,
        plan_source: source,
        topology_svg: &svg,
        matrix: &m,
        router: &router,
        validation: validation.map(|v| (vname.as_str(), v)),
    }))
}
