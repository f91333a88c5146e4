//! What several commands share: loading a spec with its policy gate and the async
//! runtime.

use std::path::Path;

use anyhow::{Context, bail};
use labwright_spec::diag::{RenderOptions, render};
use labwright_spec::{Loaded, Severity};

use crate::cli::GlobalArgs;
use crate::ui;

/// Loads a spec and runs the policy rules; errors stop here, warnings are shown.
pub fn load_checked(path: &Path, g: &GlobalArgs) -> anyhow::Result<Loaded> {
    let color = ui::stderr_color(g);
    let opts = RenderOptions {
        color,
        width: ui::width(),
    };
    let loaded = match labwright_spec::load_file(path, &labwright_spec::process_env) {
        Ok(l) => l,
        Err(f) => {
            for d in &f.diagnostics {
                ui::note(&render(d, &f.source, opts));
            }
            bail!(
                "{} did not load; fix the errors above (labwright check shows them too)",
                path.display()
            );
        }
    };
    let diags = labwright_policy::check(&loaded);
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    for d in &diags {
        if d.severity == Severity::Error || (d.severity == Severity::Warning && !g.quiet) {
            ui::note(&render(d, &loaded.source, opts));
        }
    }
    if errors > 0 {
        bail!(
            "{} breaks {errors} policy rule(s); nothing was contacted",
            path.display()
        );
    }
    Ok(loaded)
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The secret references a plan will read at apply time that cannot be read now
/// (unset variable, missing or empty file). Values are only checked for presence,
/// never kept or printed.
pub fn unreadable_secrets(
    spec: &labwright_spec::Spec,
    plan: &labwright_engine::Plan,
) -> Vec<String> {
    use labwright_spec::types::SecretRef;
    let mut missing = Vec::new();
    for r in labwright_engine::pipeline::secrets_needed(spec, plan) {
        let ok = match &r {
            SecretRef::Env(name) => std::env::var(name).is_ok_and(|v| !v.trim().is_empty()),
            SecretRef::File(path) => {
                let p = match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
                    (Some(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
                    _ => std::path::PathBuf::from(path),
                };
                std::fs::read_to_string(p).is_ok_and(|v| !v.trim().is_empty())
            }
            SecretRef::Inline { .. } => false,
        };
        if !ok {
            missing.push(r.to_string());
        }
    }
    missing
}
