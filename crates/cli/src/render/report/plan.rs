//! The plan section: the text plan's blocks as HTML, in the same order and with the
//! same words (`risk … · downtime: …`, `pre-snapshot:`, `after:`, `rollback:`, the
//! held/deferred/foreign/notes lists under the text plan's headings), every change
//! listed (the page has room the terminal has not). Actions are rendered from their
//! generic fields, so a new kind of action shows up without a change here.

use std::fmt::Write as _;

use labwright_engine::plan::{ActionKind, Plan, Risk};

use super::esc;

use crate::render::plan::change_line;

/// Seed files and other long values are cut, as in the text plan (JSON has them).
const SHOWN_LINES: usize = 12;

pub fn section(s: &mut String, plan: &Plan, source: &str) {
    let _ = writeln!(
        s,
        "<section id=\"plan\"><h2>Plan {} for lab <code>{}</code> on node <code>{}</code>: {} action(s){}</h2>",
        esc(&plan.id),
        esc(&plan.lab),
        esc(&plan.node),
        plan.actions.len(),
        plan.max_risk()
            .map(|r| format!(", highest risk {r}"))
            .unwrap_or_default()
    );
    let _ = writeln!(s, "<p class=\"muted\">From {}.</p>", esc(source));
    if plan.actions.is_empty() {
        s.push_str("<p>No changes: the node matches the spec.</p>\n");
    } else {
        s.push_str("<ol class=\"actions\">\n");
        for (i, a) in plan.actions.iter().enumerate() {
            let risk = a.risk.to_string();
            let _ = write!(
                s,
                "<li class=\"action risk-{risk}\" id=\"action-{}\" data-action=\"{}\"><div class=\"head\">{}. {} ({}) → {}</div>",
                i + 1,
                esc(&a.id.to_string()),
                i + 1,
                esc(&a.id.to_string()),
                esc(&a.kind.to_string()),
                esc(&a.target)
            );
            let _ = write!(
                s,
                "<div class=\"meta\"><span class=\"badge risk-{risk}\">risk {risk}</span><span>· downtime: {}</span>",
                esc(&a.expected_downtime)
            );
            if let Some(snap) = &a.pre_snapshot {
                let _ = write!(s, "<span>pre-snapshot: <code>{}</code></span>", esc(snap));
            }
            s.push_str("</div>");
            let tell = a.risk == Risk::Critical
                || a.destroys_data()
                || matches!(
                    a.kind,
                    ActionKind::MigrationCopy | ActionKind::MigrationSwitch
                );
            if !a.reason.is_empty() {
                let _ = write!(
                    s,
                    "<div class=\"{}\">why: {}</div>",
                    if tell { "why strong" } else { "why muted" },
                    esc(&a.reason)
                );
            }
            if !a.depends_on.is_empty() {
                let after: Vec<String> = a.depends_on.iter().map(ToString::to_string).collect();
                let _ = write!(
                    s,
                    "<div class=\"muted\">after: {}</div>",
                    esc(&after.join(", "))
                );
            }
            if !a.changes.is_empty() {
                s.push_str("<ul class=\"changes\">");
                for c in &a.changes {
                    let full = change_line(c);
                    let lines: Vec<&str> = full.lines().collect();
                    let mut shown = lines
                        .iter()
                        .take(SHOWN_LINES)
                        .copied()
                        .collect::<Vec<_>>()
                        .join("\n");
                    if lines.len() > SHOWN_LINES {
                        let _ = write!(shown, "\n… {} more line(s)", lines.len() - SHOWN_LINES);
                    }
                    let _ = write!(s, "<li>{}</li>", esc(shown.trim_end()));
                }
                s.push_str("</ul>");
            }
            let cmds: Vec<&String> = a
                .api_calls
                .iter()
                .filter(|c| c.starts_with("SSH ") || c.starts_with("AGENT "))
                .collect();
            for c in cmds {
                let _ = write!(s, "<div class=\"cmd\">$ {}</div>", esc(c));
            }
            let _ = writeln!(
                s,
                "<div class=\"rollback\">rollback: {}</div></li>",
                esc(&a.rollback_hint)
            );
        }
        s.push_str("</ol>\n");
    }
    let list = |s: &mut String, id: &str, title: &str, items: &[String]| {
        if items.is_empty() {
            return;
        }
        let _ = write!(s, "<h3 id=\"{id}\">{}</h3><ul class=\"{id}\">", esc(title));
        for i in items {
            let _ = write!(s, "<li>{}</li>", esc(i));
        }
        s.push_str("</ul>\n");
    };
    let held: Vec<String> = plan
        .held
        .iter()
        .map(|b| format!("{}: {} — to proceed: {}", b.target, b.reason, b.unblock))
        .collect();
    list(s, "held", "Held back (not applied)", &held);
    list(s, "deferred", "Deferred to a later phase", &plan.deferred);
    list(s, "foreign", "Not declared (left alone)", &plan.foreign);
    list(s, "notes", "Notes", &plan.notes);
    s.push_str("</section>\n");
}
