//! `labwright apply`: carry out a plan (from a spec, or a saved plan file).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use labwright_engine::plan::{Action, Plan, Risk};
use labwright_engine::{ApplyOptions, Progress};
use labwright_spec::model::ExecutionMode;
use sha2::{Digest, Sha256};

use super::common;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::target;
use crate::{exit, ui};

/// Applies the changes that `plan` shows. Asks for confirmation on a terminal; scripts
/// pass --yes (without a terminal and without --yes, apply refuses rather than hang).
/// An interrupted or failed apply is resumed by running apply again.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright apply specs/nas.desired.yaml --dry-run\n  labwright apply plan.json --yes\n  labwright apply specs/preprod.firewall.desired.yaml --allow-risk high"
)]
pub struct ApplyArgs {
    /// A spec, or a plan saved with `plan --out` (refused if the node changed since).
    #[arg(value_name = "SPEC|PLANFILE")]
    pub input: PathBuf,
    /// Print exactly what would be done; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Approve actions up to this risk (default: medium).
    #[arg(long, value_name = "LEVEL", default_value = "medium", value_parser = ["low", "medium", "high", "critical"])]
    pub allow_risk: String,
    /// Approve destructive actions (the spec must also set allowDestroy).
    #[arg(long)]
    pub allow_destroy: bool,
    /// Where the journal is kept.
    #[arg(long, value_name = "DIR", default_value = ".labwright/journal")]
    pub journal_dir: PathBuf,
}

struct Lines {
    start: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
    /// `--quiet`: only failures.
    quiet: bool,
    /// A progress bar when stderr is a terminal; plain lines otherwise (CI logs).
    bar: Option<indicatif::ProgressBar>,
    /// Column width of the action ids.
    width: usize,
}

impl Lines {
    fn new(total: usize, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "  {spinner} {bar:30.cyan/blue} {pos}/{len} {elapsed_precise} {wide_msg}",
            ) {
                b.set_style(style);
            }
            // The clock keeps moving during a minutes-long step (an image download).
            b.enable_steady_tick(std::time::Duration::from_millis(250));
            b
        });
        Lines {
            start: Default::default(),
            quiet,
            bar,
            width: 28,
        }
    }

    /// Ids padded to the longest one of the plan, so columns stay aligned.
    fn for_plan(plan: &Plan, quiet: bool) -> Self {
        let mut l = Lines::new(plan.actions.len(), quiet);
        l.width = plan
            .actions
            .iter()
            .map(|a| a.id.to_string().chars().count())
            .max()
            .unwrap_or(28);
        l
    }

    /// One line above the bar (or plain on stderr).
    #[allow(clippy::print_stderr)]
    fn line(&self, text: String) {
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn running(&self) -> String {
        self.start
            .lock()
            .map(|m| {
                let mut ids: Vec<&str> = m.keys().map(String::as_str).collect();
                ids.sort_unstable();
                ids.join(", ")
            })
            .unwrap_or_default()
    }

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for Lines {
    fn started(&self, a: &Action) {
        if let Ok(mut m) = self.start.lock() {
            m.insert(a.id.to_string(), Instant::now());
        }
        let snap = a
            .pre_snapshot
            .as_ref()
            .map(|s| format!(" (snapshot {s} first)"))
            .unwrap_or_default();
        if let Some(b) = &self.bar {
            b.set_message(self.running());
        } else if !self.quiet {
            self.line(format!(
                "  → {:<w$} {}{snap}",
                a.id.to_string(),
                a.target,
                w = self.width
            ));
        }
    }
    fn finished(&self, a: &Action, result: Result<(), &str>) {
        let secs = self
            .start
            .lock()
            .ok()
            .and_then(|mut m| {
                m.remove(&a.id.to_string())
                    .map(|t| t.elapsed().as_secs_f64())
            })
            .unwrap_or_default();
        match result {
            Ok(()) if self.quiet => {}
            Ok(()) => self.line(format!(
                "  ✓ {:<w$} {:.1}s",
                a.id.to_string(),
                secs,
                w = self.width
            )),
            Err(e) => self.line(format!("  ✗ {:<w$} {e}", a.id.to_string(), w = self.width)),
        }
        if let Some(b) = &self.bar {
            b.inc(1);
            b.set_message(self.running());
        }
    }
    fn note(&self, line: &str) {
        if !self.quiet {
            self.line(format!("  {line}"));
        }
    }
    fn step(&self, a: &Action, detail: &str) {
        match &self.bar {
            Some(b) => b.set_message(format!("{} {detail}", a.id)),
            None if !self.quiet => {
                self.line(format!(
                    "  … {:<w$} {detail}",
                    a.id.to_string(),
                    w = self.width
                ));
            }
            None => {}
        }
    }
}

/// Every secret a seed will need is readable before anything is written: a missing
/// `TAILSCALE_AUTHKEY` must not stop an apply half-way.
fn preflight_secrets(spec: &labwright_spec::Spec, plan: &Plan) -> anyhow::Result<()> {
    let missing = common::unreadable_secrets(spec, plan);
    if missing.is_empty() {
        return Ok(());
    }
    bail!(
        "secret(s) {} needed by the guest seeds cannot be read; nothing was applied (export the variable or create the file, then run apply again)",
        missing.join(", ")
    )
}

fn is_plan_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

/// Asks on the terminal. A plan with high or critical actions needs the word `yes`
/// typed out (terraform's habit): a reflexive `y` is not enough there.
fn confirm(plan: &Plan) -> anyhow::Result<bool> {
    let serious = plan.max_risk().is_some_and(|r| r >= Risk::High);
    #[allow(clippy::print_stderr)]
    {
        if serious {
            eprint!(
                "The plan has {} action(s) on node `{}`, up to {} risk. Type `yes` to apply: ",
                plan.actions.len(),
                plan.node,
                plan.max_risk().unwrap_or(Risk::High)
            );
        } else {
            eprint!(
                "Apply {} action(s) to node `{}`? [y/N] ",
                plan.actions.len(),
                plan.node
            );
        }
    }
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(if serious {
        line.trim() == "yes"
    } else {
        matches!(line.trim(), "y" | "Y" | "yes")
    })
}

pub fn run(args: &ApplyArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let allow_risk: Risk = args.allow_risk.parse()?;
    // A saved plan carries its spec's path and hash; the spec is re-checked either way.
    let (spec_path, saved): (PathBuf, Option<Plan>) = if is_plan_file(&args.input) {
        let text = std::fs::read_to_string(&args.input)
            .with_context(|| format!("cannot read {}", args.input.display()))?;
        // The version first: an older plan file says so instead of failing to parse.
        let raw: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", args.input.display()))?;
        let version = raw.get("formatVersion").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(labwright_engine::plan::FORMAT_VERSION)) {
            bail!(
                "{} has plan format {}, this labwright reads {}; run `labwright plan --out` again",
                args.input.display(),
                version.map_or_else(|| "(none)".to_string(), |v| v.to_string()),
                labwright_engine::plan::FORMAT_VERSION
            );
        }
        let plan: Plan = serde_json::from_value(raw)
            .with_context(|| format!("{} is not a labwright plan file", args.input.display()))?;
        let sp = plan
            .spec_path
            .clone()
            .context("the plan file does not name its spec")?;
        (PathBuf::from(sp), Some(plan))
    } else {
        (args.input.clone(), None)
    };
    let loaded = common::load_checked(&spec_path, g)?;
    if let Some(p) = &saved {
        let text = std::fs::read(&spec_path).unwrap_or_default();
        if p.spec_sha256.as_deref() != Some(hex::encode(Sha256::digest(&text)).as_str()) {
            bail!(
                "{} changed since the plan was saved; run `labwright plan` again",
                spec_path.display()
            );
        }
    }
    if loaded.spec.safety_guards.execution_mode == ExecutionMode::PlanOnly && !args.dry_run {
        bail!(
            "the spec sets `safetyGuards.executionMode: planOnly`; apply writes nothing (use --dry-run to preview)"
        );
    }
    let rt = common::runtime()?;
    rt.block_on(async {
        let conn = target::connect(&g.target).await?;
        ui::info(g, &format!("target: {}", conn.label));
        let result = run_connected(args, g, &loaded, &spec_path, saved, allow_risk, &conn).await;
        conn.close().await;
        result
    })
}

async fn run_connected(
    args: &ApplyArgs,
    g: &GlobalArgs,
    loaded: &labwright_spec::Loaded,
    spec_path: &Path,
    saved: Option<Plan>,
    allow_risk: Risk,
    conn: &target::Connected,
) -> anyhow::Result<ExitCode> {
    let settings = crate::settings::for_target(conn)?;
    let plan = match saved {
        Some(p) => {
            let host = conn.host(&loaded.spec)?;
            labwright_engine::pipeline::check_fresh(
                &conn.client,
                crate::host::as_exec(&host),
                &loaded.spec,
                &p,
                &settings,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            p
        }
        None => super::plan::compute(loaded, spec_path, conn, g).await?,
    };
    // -q hides the plan, unless it is about to be confirmed by a person.
    let shown = GlobalArgs {
        quiet: g.quiet && (args.yes || args.dry_run),
        output: OutputFormat::Table,
        ..g.clone()
    };
    ui::info(&shown, &crate::render::plan::render_plan(&plan, false));
    if plan.is_empty() {
        ui::info(g, "Nothing to do.");
        // Every `-o json` prints one document, nothing-to-do included.
        if g.output != OutputFormat::Table {
            let report = labwright_engine::ApplyReport {
                plan: plan.id.clone(),
                dry_run: args.dry_run,
                ..Default::default()
            };
            crate::print::print(
                g,
                &crate::render::ApplyDoc {
                    report: &report,
                    plan: &plan,
                    quiet: g.quiet,
                },
            )?;
        }
        return Ok(ExitCode::from(exit::OK));
    }
    labwright_engine::apply::check_risk(&plan, allow_risk).map_err(|e| anyhow::anyhow!("{e}"))?;
    labwright_engine::apply::check_destroy(&plan, args.allow_destroy)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !args.dry_run {
        preflight_secrets(&loaded.spec, &plan)?;
        super::doctor::preflight_privileges(conn, &plan).await?;
    }
    if !args.dry_run && !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "refusing to apply without confirmation: stdin is not a terminal; pass --yes to apply non-interactively"
            );
        }
        if !confirm(&plan)? {
            ui::note("Not applied.");
            return Ok(ExitCode::from(exit::ERROR));
        }
    }
    let opts = ApplyOptions {
        dry_run: args.dry_run,
        allow_destroy: args.allow_destroy,
        allow_risk,
        journal_dir: (!args.dry_run).then(|| args.journal_dir.clone()),
        // Seeds are rendered from the spec at apply time; the auth key is read here only.
        seeds: labwright_engine::bootstrap::SeedSource::for_spec(loaded.spec.clone()),
        host: conn
            .host(&loaded.spec)?
            .map(|h| h as std::sync::Arc<dyn labwright_host::HostExec>),
    };
    let progress = Lines::for_plan(&plan, g.quiet);
    let report = tokio::select! {
        r = labwright_engine::apply(&conn.client, &plan, &opts, &settings, &progress) => r.map_err(|e| anyhow::anyhow!("{e}"))?,
        _ = tokio::signal::ctrl_c() => {
            ui::note(&format!(
                "interrupted: the journal in {} records what was done; run `labwright apply` again to resume",
                args.journal_dir.display()
            ));
            return Ok(ExitCode::from(exit::INTERRUPTED));
        }
    };
    progress.done();
    crate::print::print(
        g,
        &crate::render::ApplyDoc {
            report: &report,
            plan: &plan,
            quiet: g.quiet,
        },
    )?;
    Ok(ExitCode::from(if report.ok() {
        exit::OK
    } else {
        exit::ERROR
    }))
}
