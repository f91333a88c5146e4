//! `labwright import naasctl FILE`: a naasctl spec → a labwright spec. The mapping
//! lives in `labwright-import`; this file reads, writes and reports.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use labwright_spec::diag::{RenderOptions, render};

use crate::cli::{GlobalArgs, OutputFormat};
use crate::{exit, ui};

/// Arguments of `labwright import` (its help text is the `Import` variant's doc in
/// `cli.rs`). Writes the labwright spec to stdout (or `--out`), with a comment on every value
/// naming the key it came from and, on top, every key that was not mapped, the
/// decisions left to you (`${VAR}` placeholders) and the secrets found (never
/// copied). The same list goes to stderr. Exit code 1 when the input cannot be read.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright import naasctl naasctl.desired.yaml > lab.desired.yaml\n  labwright import naasctl old/spec.yaml --out specs/lab.desired.yaml --force\n  labwright import naasctl spec.yaml -o json | jq '.unmapped'"
)]
pub struct ImportArgs {
    /// The format of FILE.
    #[arg(value_enum, value_name = "FORMAT")]
    pub format: ImportFormat,
    /// The spec to convert.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Write the labwright spec here instead of stdout.
    #[arg(long, value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// Overwrite OUT when it exists.
    #[arg(long, requires = "out")]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// naasctl's desired-state YAML (the TypeScript tool the homelab brief came from).
    Naasctl,
}

/// Largest input accepted, as for specs.
const MAX_BYTES: u64 = 16 * 1024 * 1024;

pub fn run(args: &ImportArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let ImportFormat::Naasctl = args.format;
    let name = args.file.display().to_string();
    let fail = |msg: String| {
        crate::ui::print_error(&anyhow::anyhow!(msg), g);
        Ok(ExitCode::from(exit::ERROR))
    };
    if let Some(out) = &args.out
        && out.exists()
        && !args.force
    {
        return fail(format!(
            "{} exists; pass --force to overwrite it, or choose another --out",
            out.display()
        ));
    }
    match std::fs::metadata(&args.file) {
        Ok(m) if m.is_dir() => {
            return fail(format!("{name} is a directory; pass the naasctl spec file"));
        }
        Ok(m) if m.len() > MAX_BYTES => {
            return fail(format!(
                "{name} is {} bytes; a spec is at most 16 MiB",
                m.len()
            ));
        }
        _ => {}
    }
    let text = match std::fs::read(&args.file).map(String::from_utf8) {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            return fail(format!(
                "{name} is not UTF-8 (invalid byte at offset {}); save it as UTF-8",
                e.utf8_error().valid_up_to()
            ));
        }
        Err(e) => return fail(format!("cannot read {name}: {e}; check the path")),
    };
    let imported = match labwright_import::naasctl(&name, &text) {
        Ok(i) => i,
        Err(f) => {
            let opts = RenderOptions {
                color: ui::stderr_color(g),
                width: ui::width(),
            };
            for d in &f.diagnostics {
                ui::note(&render(d, &f.source, opts));
            }
            ui::note(&format!(
                "{name}: not imported — {} error(s); fix the input and run again",
                f.diagnostics.len()
            ));
            return Ok(ExitCode::from(exit::ERROR));
        }
    };
    if !g.quiet {
        for l in labwright_import::report_lines(&imported) {
            ui::note(&l);
        }
        ui::note(&format!(
            "{name}: imported — {} of {} keys mapped, {} not mapped, {} decision(s) left",
            imported.mapped,
            imported.leaves,
            imported.unmapped.len(),
            imported.decisions.len()
        ));
    }
    let doc = match g.output {
        OutputFormat::Json => {
            let v = serde_json::json!({
                "formatVersion": crate::print::FORMAT_VERSION,
                "spec": imported.yaml,
                "mapped": imported.mapped,
                "leaves": imported.leaves,
                "unmapped": imported.unmapped.iter().map(|u| serde_json::json!({
                    "path": u.path.to_string(),
                    "naasctlActed": u.naasctl_acted,
                    "secret": u.secret,
                    "reason": u.reason,
                })).collect::<Vec<_>>(),
                "decisions": imported.decisions.iter().map(|d| serde_json::json!({
                    "var": d.var, "what": d.what,
                })).collect::<Vec<_>>(),
                "secrets": imported.secrets.iter().map(|s| serde_json::json!({
                    "path": s.path.to_string(), "env": s.var, "note": s.note,
                })).collect::<Vec<_>>(),
            });
            serde_json::to_string_pretty(&v)? + "\n"
        }
        _ => imported.yaml.clone(),
    };
    match &args.out {
        Some(out) if g.output != OutputFormat::Json => {
            let mut f = std::fs::File::create(out)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
            f.write_all(doc.as_bytes())?;
            ui::info(g, &format!("wrote {}", out.display()));
        }
        _ => crate::print::raw(&doc)?,
    }
    Ok(ExitCode::from(exit::OK))
}
