//! `labwright report`: one self-contained HTML page over the values the other commands
//! print — the plan (same wording and order as the text plan), the topology picture,
//! the reachability matrix (intent against what the firewall model decides), the
//! router's rules, the last validate checklist and the lockout proof. Inline CSS and
//! SVG only: no script, no font, no image, no link to anything outside the page.

mod checks;
mod plan;
mod reach;

use std::fmt::Write as _;

use labwright_engine::Plan;
use labwright_engine::firewall::matrix::Matrix;
use labwright_spec::Spec;
use serde::Deserialize;

pub use crate::render::graph::xml_escape as esc;

const STYLE: &str = include_str!("style.css");

/// A validate result saved with `labwright validate -o json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedValidation {
    pub ok: bool,
    pub checks: Vec<SavedCheck>,
    #[serde(default)]
    pub expired_snapshots: Vec<(u32, String)>,
    #[serde(default)]
    pub kept_snapshots: Vec<(u32, String)>,
}

#[derive(Debug, Deserialize)]
pub struct SavedCheck {
    pub name: String,
    /// `pass`, `fail` or `skipped`.
    pub status: String,
    #[serde(default)]
    pub detail: String,
}

/// The router's compiled rules and cells, or why there are none at this phase.
pub type RouterView = Result<(labwright_router::RuleSet, Vec<labwright_router::Cell>), String>;

/// Everything the page shows, computed elsewhere.
pub struct Inputs<'a> {
    pub spec: &'a Spec,
    pub plan: &'a Plan,
    /// Where the plan comes from (`scan of sim (…)`, `saved plan plan.json`).
    pub plan_source: &'a str,
    /// The topology picture, inline SVG.
    pub topology_svg: &'a str,
    pub matrix: &'a Matrix,
    pub router: &'a RouterView,
    pub validation: Option<(&'a str, &'a SavedValidation)>,
}

/// The whole page.
pub fn html(inp: &Inputs<'_>) -> String {
    let spec = inp.spec;
    let plan = inp.plan;
    let title = format!(
        "labwright report — {} on {} (phase {})",
        spec.metadata.name,
        spec.node_name(),
        spec.phase.0
    );
    let mut s = String::with_capacity(64 * 1024 + plan.actions.len() * 1024);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // Nothing may be fetched: the policy says so to the browser too.
    s.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n");
    let _ = writeln!(s, "<title>{}</title>", esc(&title));
    let _ = writeln!(s, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(s, "<header><h1>{}</h1>", esc(&title));
    if let Some(d) = &spec.metadata.description {
        let _ = writeln!(s, "<p class=\"lead\">{}</p>", esc(d));
    }
    s.push_str("<nav><a href=\"#plan\">Plan</a> <a href=\"#topology\">Topology</a> <a href=\"#reachability\">Reachability</a> <a href=\"#checks\">Checks</a> <a href=\"#proof\">Lockout proof</a></nav>\n");
    summary(&mut s, inp);
    s.push_str("</header>\n<main>\n");
    plan::section(&mut s, plan, inp.plan_source);
    let _ = writeln!(
        s,
        "<section id=\"topology\"><h2>Topology</h2>\n<p class=\"muted\">As the spec declares it at phase {}; later phases faded. The same picture: <code>labwright graph SPEC</code>.</p>\n<div class=\"picture\">{}</div></section>",
        spec.phase.0, inp.topology_svg
    );
    reach::section(&mut s, spec, inp.matrix, inp.router);
    checks::validation(&mut s, inp.validation);
    checks::proof(&mut s, plan);
    s.push_str("</main>\n<footer>Made by labwright from the spec and the node; secrets are never part of it.</footer>\n</body>\n</html>\n");
    s
}

fn summary(s: &mut String, inp: &Inputs<'_>) {
    let plan = inp.plan;
    let risk = plan
        .max_risk()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "none".into());
    let downtime: u64 = plan
        .actions
        .iter()
        .map(|a| u64::from(a.downtime_seconds))
        .sum();
    let proof = match &plan.firewall {
        Some(f) if f.proof_ok => "passed",
        Some(f) if f.proof_skipped => "FAILED (skipped)",
        Some(_) => "FAILED",
        None => "not needed",
    };
    let checks = match inp.validation {
        Some((_, v)) if v.ok => "ok".to_string(),
        Some((_, v)) => format!(
            "{} failed",
            v.checks.iter().filter(|c| c.status == "fail").count()
        ),
        None => "not given".into(),
    };
    let cards = [
        ("actions", plan.actions.len().to_string(), String::new()),
        ("highest risk", risk.clone(), format!("risk-{risk}")),
        (
            "downtime (sum)",
            if downtime == 0 {
                "none".into()
            } else {
                format!("{downtime} s")
            },
            String::new(),
        ),
        ("held", plan.held.len().to_string(), String::new()),
        ("deferred", plan.deferred.len().to_string(), String::new()),
        (
            "matrix disagreements",
            inp.matrix.disagreements.to_string(),
            if inp.matrix.disagreements > 0 {
                "bad".into()
            } else {
                String::new()
            },
        ),
        ("lockout proof", proof.into(), String::new()),
        ("validate", checks, String::new()),
    ];
    s.push_str("<dl class=\"cards\">");
    for (k, v, class) in cards {
        let _ = write!(
            s,
            "<div class=\"card {class}\"><dt>{}</dt><dd>{}</dd></div>",
            esc(k),
            esc(&v)
        );
    }
    s.push_str("</dl>\n");
}
