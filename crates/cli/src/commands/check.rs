//! `labwright check`: load specs and run the policy rules, offline.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use labwright_spec::diag::{RenderOptions, render};
use labwright_spec::{Diagnostic, Severity, SourceFile};
use serde::Serialize;

use crate::cli::{GlobalArgs, OutputFormat};
use crate::{exit, ui};

/// Spec files are checked without contacting any node. Environment variables used in
/// the spec (`${ADMIN_PC_CIDR}`) must be set. Exit code 1 on any error (or warning
/// with --strict).
#[derive(Debug, Args)]
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

#[derive(Serialize)]
struct SpecReport {
    file: String,
    ok: bool,
    errors: usize,
    warnings: usize,
    deferred: usize,
    diagnostics: Vec<Diagnostic>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    format_version: u32,
    ok: bool,
    specs: Vec<SpecReport>,
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
        let (errors, warnings, deferred) = (
            count(Severity::Error),
            count(Severity::Warning),
            count(Severity::Advice),
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
                let hint = if deferred > 0 && g.verbose == 0 {
                    " (-v lists deferred items)"
                } else {
                    ""
                };
                ui::note(&format!(
                    "{}: {verdict} — {errors} error(s), {warnings} warning(s), {deferred} deferred{hint}",
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
    let mut out = std::io::stdout().lock();
    match g.output {
        OutputFormat::Table => {}
        OutputFormat::Json => {
            let report = Report {
                format_version: 1,
                ok: all_ok,
                specs: reports,
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        }
        OutputFormat::Markdown => {
            for r in &reports {
                writeln!(
                    out,
                    "### `{}` — {}\n",
                    r.file,
                    if r.ok { "ok" } else { "failed" }
                )?;
                if r.diagnostics.is_empty() {
                    writeln!(out, "No findings.\n")?;
                    continue;
                }
                writeln!(out, "| severity | rule | where | message |")?;
                writeln!(out, "|---|---|---|---|")?;
                for d in &r.diagnostics {
                    let at = d
                        .span
                        .map(|s| format!("{}:{}", s.line, s.column))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "| {} | `{}` | {} | {} |",
                        d.severity,
                        d.rule,
                        at,
                        d.message.replace('|', "\\|")
                    )?;
                }
                writeln!(out)?;
            }
        }
    }
    Ok(ExitCode::from(if all_ok { exit::OK } else { exit::ERROR }))
}

fn list_rules(g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match g.output {
        OutputFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(labwright_policy::RULES)?
        )?,
        _ => {
            let mut t = comfy_table::Table::new();
            t.load_style(if g.output == OutputFormat::Markdown {
                comfy_table::presets::ASCII_MARKDOWN
            } else {
                comfy_table::presets::UTF8_FULL_CONDENSED
            });
            t.set_header(["rule", "severity", "what it checks"]);
            for r in labwright_policy::RULES {
                t.add_row([
                    r.id.to_string(),
                    r.severity.to_string(),
                    r.summary.to_string(),
                ]);
            }
            writeln!(out, "{t}")?;
        }
    }
    Ok(ExitCode::from(exit::OK))
}
