//! `labwright check`: load specs and run the policy rules, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use labwright_spec::diag::{RenderOptions, render};
use labwright_spec::{Diagnostic, Severity, SourceFile};

use crate::cli::{GlobalArgs, OutputFormat};
use crate::render::{CheckReport, RulesDoc, SpecReport};
use crate::{exit, ui};

/// Spec files are checked without contacting any node. Environment variables used in
/// the spec (`${ADMIN_PC_CIDR}`) must be set. Exit code 1 on any error (or warning
/// with --strict).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright check specs/*.desired.yaml\n  labwright check --strict specs/nas.desired.yaml -o json\n  labwright check --list-rules"
)]
pub struct CheckArgs {
    /// Spec files to check.
    #[arg(value_name = "SPEC", required_unless_present = "list_rules")]
    pub specs: Vec<PathBuf>,
    /// Treat warnings as errors.
    #[arg(long)]
    pub strict: bool,
    /// List every policy rule with its id and exit.
    #[arg(long)]
    pub list_rules: bool,
}

/// Loads and checks one spec: load diagnostics, or policy diagnostics.
pub fn check_one(path: &std::path::Path) -> (SourceFile, Vec<Diagnostic>) {
    match labwright_spec::load_file(path, &labwright_spec::process_env) {
        Ok(loaded) => {
            let diags = labwright_policy::check(&loaded);
            (loaded.source, diags)
        }
        Err(f) => (f.source, f.diagnostics),
    }
}

pub fn run(args: &CheckArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if args.list_rules {
        return list_rules(g);
    }
    let color = ui::stderr_color(g);
    let mut reports = Vec::new();
    for path in &args.specs {
        let (source, diags) = check_one(path);
        let count = |s: Severity| diags.iter().filter(|d| d.severity == s).count();
        let acknowledged = diags
            .iter()
            .filter(|d| d.severity == Severity::Advice && d.rule != "phase-gate")
            .count();
        let (errors, warnings, deferred) = (
            count(Severity::Error),
            count(Severity::Warning),
            count(Severity::Advice) - acknowledged,
        );
        let ok = errors == 0 && !(args.strict && warnings > 0);
        if g.output == OutputFormat::Table {
            for d in &diags {
                let hidden = match d.severity {
                    Severity::Advice => g.quiet || g.verbose == 0,
                    // -q shows errors only, unless --strict makes warnings errors.
                    Severity::Warning => g.quiet && !args.strict,
                    Severity::Error => false,
                };
                if hidden {
                    continue;
                }
                let text = render(
                    d,
                    &source,
                    RenderOptions {
                        color,
                        width: ui::width(),
                    },
                );
                ui::note(&text);
            }
            if !g.quiet {
                let verdict = if ok { "ok" } else { "FAILED" };
                let hint = match (deferred, acknowledged, g.verbose) {
                    (_, _, v) if v > 0 => "",
                    (d, _, _) if d > 0 => " (-v lists deferred items)",
                    (_, a, _) if a > 0 => " (-v shows the acknowledged findings)",
                    _ => "",
                };
                let ack = if acknowledged > 0 {
                    format!(", {acknowledged} acknowledged")
                } else {
                    String::new()
                };
                ui::note(&format!(
                    "{}: {verdict} — {errors} error(s), {warnings} warning(s){ack}, {deferred} deferred{hint}",
                    source.name
                ));
            }
        }
        reports.push(SpecReport {
            file: source.name.clone(),
            ok,
            errors,
            warnings,
            deferred,
            diagnostics: diags,
        });
    }
    let all_ok = reports.iter().all(|r| r.ok);
    crate::print::print(
        g,
        &CheckReport {
            format_version: 1,
            ok: all_ok,
            specs: reports,
        },
    )?;
    Ok(ExitCode::from(if all_ok { exit::OK } else { exit::ERROR }))
}

fn list_rules(g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    crate::print::print(
        g,
        &RulesDoc {
            rules: labwright_policy::RULES,
        },
    )?;
    Ok(ExitCode::from(exit::OK))
}
