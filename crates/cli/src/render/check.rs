//! `check`'s document: per spec, its verdict and findings (the rendered diagnostics
//! themselves go to stderr), and the list of policy rules.

use labwright_spec::Diagnostic;
use serde::Serialize;

use crate::print::{Document, table};

#[derive(Serialize)]
pub struct SpecReport {
    pub file: String,
    pub ok: bool,
    pub errors: usize,
    pub warnings: usize,
    pub deferred: usize,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub format_version: u32,
    pub ok: bool,
    pub specs: Vec<SpecReport>,
}

impl Document for CheckReport {
    /// The terminal reads the diagnostics on stderr; stdout stays empty.
    fn text(&self) -> String {
        String::new()
    }
    fn markdown(&self) -> String {
        let mut out = String::new();
        for r in &self.specs {
            out.push_str(&format!(
                "### `{}` — {}\n\n",
                r.file,
                if r.ok { "ok" } else { "failed" }
            ));
            if r.diagnostics.is_empty() {
                out.push_str("No findings.\n\n");
                continue;
            }
            out.push_str("| severity | rule | where | message |\n|---|---|---|---|\n");
            for d in &r.diagnostics {
                let at = d
                    .span
                    .map(|s| format!("{}:{}", s.line, s.column))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "| {} | `{}` | {} | {} |\n",
                    d.severity,
                    d.rule,
                    at,
                    d.message.replace('|', "\\|")
                ));
            }
            out.push('\n');
        }
        out
    }
}

/// `check --list-rules`.
#[derive(Serialize)]
pub struct RulesDoc {
    pub rules: &'static [labwright_policy::RuleInfo],
}

fn rules(doc: &RulesDoc, md: bool) -> String {
    let mut t = table(md);
    t.set_header(["rule", "severity", "what it checks"]);
    for r in doc.rules {
        t.add_row([
            r.id.to_string(),
            r.severity.to_string(),
            r.summary.to_string(),
        ]);
    }
    format!("{t}\n")
}

impl Document for RulesDoc {
    fn text(&self) -> String {
        rules(self, false)
    }
    fn markdown(&self) -> String {
        rules(self, true)
    }
}
