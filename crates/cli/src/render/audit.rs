//! `firewall simulate|matrix --fw-dir`: the audit of a directory of `.fw` files.

use std::fmt::Write;

use labwright_firewall::{AuditMatrix, AuditVerdict, Backend, DecidedBy, Flow};
use serde::Serialize;

use crate::print::{Document, table};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimResult<'a> {
    backend: Backend,
    /// ACCEPT, DROP, REJECT; null when the backend refuses the files.
    verdict: Option<labwright_firewall::Verdict>,
    /// What decided, in words.
    decided_by: Option<String>,
    /// The deciding rule's `.fw` line, when a rule decided.
    rule: Option<&'a str>,
    /// Client source ports this result holds for (when it depends on them).
    sports: Option<(u16, u16)>,
    refused: Option<String>,
    decision: Option<&'a labwright_firewall::Decision>,
}

#[derive(Serialize)]
pub struct SimOut<'a> {
    dir: String,
    node: &'a str,
    files: &'a [String],
    flow: &'a labwright_firewall::Flow,
    results: Vec<SimResult<'a>>,
}

pub fn sim_result(v: &AuditVerdict) -> SimResult<'_> {
    SimResult {
        backend: v.backend,
        verdict: v.decision.as_ref().map(|d| d.verdict),
        decided_by: v.decision.as_ref().map(|d| d.decided_by.to_string()),
        rule: v.decision.as_ref().and_then(|d| match &d.decided_by {
            DecidedBy::Rule { rule, .. } => Some(rule.as_str()),
            _ => None,
        }),
        sports: v.sports,
        refused: v.refused.as_ref().map(ToString::to_string),
        decision: v.decision.as_ref(),
    }
}

/// One flow through the files, per backend.
pub struct AuditSimDoc<'a> {
    pub dir: String,
    pub node: &'a str,
    pub files: &'a [String],
    pub flow: &'a Flow,
    /// `iptables and nftables`.
    pub backends: String,
    /// Why those backends (host.fw says, or --backend, or unknown).
    pub why: String,
    pub verdicts: &'a [AuditVerdict],
}

impl Serialize for AuditSimDoc<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SimOut {
            dir: self.dir.clone(),
            node: self.node,
            files: self.files,
            flow: self.flow,
            results: self.verdicts.iter().map(sim_result).collect(),
        }
        .serialize(s)
    }
}

impl Document for AuditSimDoc<'_> {
    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "files:   {} (node {})",
            self.files.join(", "),
            self.node
        );
        let _ = writeln!(out, "flow:    {}", self.flow);
        let _ = writeln!(out, "backend: {} ({})", self.backends, self.why);
        for r in self.verdicts {
            let _ = writeln!(out);
            let ports = r
                .sports
                .map(|(lo, hi)| format!(", client ports {lo}-{hi}"))
                .unwrap_or_default();
            let _ = writeln!(out, "── {}{ports}", r.backend);
            match (&r.decision, &r.refused) {
                (Some(d), _) => out.push_str(&d.render_trail()),
                (None, Some(why)) => {
                    let _ = writeln!(
                        out,
                        "refused: {why}\n(proxmox-firewall keeps whatever ruleset it had; nothing can be said about this flow)"
                    );
                }
                (None, None) => {}
            }
        }
        out
    }
}

/// The matrix of sources × services, per backend.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditMatrixDoc<'a> {
    pub node: &'a str,
    pub files: &'a [String],
    pub backends: String,
    pub why: String,
    pub matrices: &'a [AuditMatrix],
}

fn render(doc: &AuditMatrixDoc<'_>, md: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "files:   {} (node {})", doc.files.join(", "), doc.node);
    let _ = writeln!(out, "backend: {} ({})", doc.backends, doc.why);
    for x in doc.matrices {
        let _ = writeln!(out);
        let _ = render_matrix(&mut out, x, md);
    }
    out
}

impl Document for AuditMatrixDoc<'_> {
    fn text(&self) -> String {
        render(self, false)
    }
    fn markdown(&self) -> String {
        render(self, true)
    }
}

fn render_matrix(out: &mut String, x: &AuditMatrix, markdown: bool) -> std::fmt::Result {
    writeln!(out, "── {} → node {}", x.backend, x.node)?;
    if let Some(r) = &x.refused {
        writeln!(
            out,
            "refused: {r}\n(proxmox-firewall keeps whatever ruleset it had; nothing can be said about these flows)"
        )?;
        return Ok(());
    }
    let mut t = table(markdown);
    let mut head = vec!["source".to_string()];
    head.extend(x.services.iter().map(ToString::to_string));
    t.set_header(head);
    let mut notes = Vec::new();
    for row in &x.rows {
        let mut cells = vec![row.source.clone()];
        for c in &row.cells {
            match c.verdict {
                Some(v) => cells.push(format!("{v}  {}", short(&c.decided_by))),
                None => {
                    cells.push("mixed (see below)".into());
                    for p in &c.parts {
                        notes.push(format!(
                            "{} {}: {} from {} ({})",
                            row.source, c.service, p.verdict, p.range, p.decided_by
                        ));
                    }
                }
            }
        }
        t.add_row(cells);
    }
    writeln!(out, "{t}")?;
    for n in notes {
        writeln!(out, "  {n}")?;
    }
    Ok(())
}

/// What decided, short enough for a table cell.
fn short(d: &DecidedBy) -> String {
    match d {
        DecidedBy::Rule { level, index, .. } => format!("{level} rule #{index}"),
        DecidedBy::Policy { level, policy } => format!("{level} policy {policy}"),
        DecidedBy::FirewallDisabled { level } => format!("firewall off ({level})"),
        DecidedBy::ImplicitManagementAccept { entry, .. } => format!("management ({entry})"),
        DecidedBy::Blacklist { entry } => format!("blacklist ({entry})"),
        DecidedBy::Builtin { what } => format!("built-in: {what}"),
        other => other.to_string(),
    }
}
