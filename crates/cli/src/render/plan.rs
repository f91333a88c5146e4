//! The plan as text (one block per action, readable at 80 columns) and as Markdown
//! (a table, for pull requests). JSON is the plan itself.

use labwright_engine::plan::{ActionKind, Plan};

use crate::print::Document;

impl Document for Plan {
    fn text(&self) -> String {
        render_plan(self, false)
    }
    fn markdown(&self) -> String {
        render_plan(self, true)
    }
}

/// How many changes of one action the text layout shows (JSON has them all).
const SHOWN_CHANGES: usize = 8;

/// One change as the text plan writes it (the report shares it: same words).
pub(crate) fn change_line(c: &labwright_engine::plan::Change) -> String {
    match (&c.before, &c.after) {
        (None, Some(v)) => format!("+ {}={v}", c.field),
        (Some(b), Some(v)) => format!("~ {}: {b} → {v}", c.field),
        (Some(b), None) => format!("- {}={b}", c.field),
        (None, None) => format!("  {}", c.field),
    }
}

/// The text layout of a plan's actions: one block per action, like `terraform plan`,
/// so it reads on an 80-column terminal where a nine-column table does not.
fn render_actions_text(plan: &Plan) -> String {
    let mut out = String::new();
    let width = plan.actions.len().to_string().len();
    for (i, a) in plan.actions.iter().enumerate() {
        let pad = " ".repeat(width + 2);
        out.push_str(&format!(
            "\n{:>width$}. {} ({}) → {}\n",
            i + 1,
            a.id,
            a.kind,
            a.target
        ));
        out.push_str(&format!(
            "{pad}risk {} · downtime: {}\n",
            a.risk, a.expected_downtime
        ));
        if let Some(snap) = &a.pre_snapshot {
            out.push_str(&format!("{pad}pre-snapshot: {snap}\n"));
        }
        // Why, where it matters most: what a critical step erases, what a migration does.
        let tell = a.risk == labwright_engine::plan::Risk::Critical
            || a.destroys_data()
            || matches!(
                a.kind,
                ActionKind::MigrationCopy | ActionKind::MigrationSwitch
            );
        if tell && !a.reason.is_empty() {
            out.push_str(&format!("{pad}why: {}\n", a.reason));
        }
        if !a.depends_on.is_empty() {
            out.push_str(&format!(
                "{pad}after: {}\n",
                a.depends_on
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for c in a.changes.iter().take(SHOWN_CHANGES) {
            // Multi-line values (seed files) stay indented under their change, cut
            // short: the whole text is in `-o json`.
            let full = change_line(c);
            let lines: Vec<&str> = full.lines().collect();
            let mut shown = lines
                .iter()
                .take(6)
                .copied()
                .collect::<Vec<_>>()
                .join(&format!("\n{pad}    "));
            if lines.len() > 6 {
                shown.push_str(&format!("\n{pad}    … {} more line(s)", lines.len() - 6));
            }
            let line = shown;
            out.push_str(&format!("{pad}{}\n", line.trim_end()));
        }
        let more = a.changes.len().saturating_sub(SHOWN_CHANGES);
        if more > 0 {
            out.push_str(&format!(
                "{pad}… {more} more change(s) (`-o json` lists them all)\n"
            ));
        }
        // Commands run on the node or in a guest are shown like the API calls they
        // stand in for (JSON has every call).
        for c in a
            .api_calls
            .iter()
            .filter(|c| c.starts_with("SSH ") || c.starts_with("AGENT "))
        {
            out.push_str(&format!("{pad}$ {c}\n"));
        }
        out.push_str(&format!("{pad}rollback: {}\n", a.rollback_hint));
    }
    out
}

/// Renders a plan as text blocks or a Markdown table (JSON is the plan itself).
pub fn render_plan(plan: &Plan, md: bool) -> String {
    let mut out = String::new();
    let h = |s: &str| {
        if md {
            format!("\n### {s}\n\n")
        } else {
            format!("\n{s}\n")
        }
    };
    out.push_str(&format!(
        "{}Plan {} for lab `{}` on node `{}`: {} action(s){}\n",
        if md { "## " } else { "" },
        plan.id,
        plan.lab,
        plan.node,
        plan.actions.len(),
        plan.max_risk()
            .map(|r| format!(", highest risk {r}"))
            .unwrap_or_default()
    ));
    if !plan.actions.is_empty() && !md {
        out.push_str(&render_actions_text(plan));
    } else if !plan.actions.is_empty() {
        let mut t = crate::print::table(md);
        t.set_header([
            "#",
            "id",
            "type",
            "target",
            "risk",
            "downtime",
            "pre-snapshot",
            "changes",
            "depends on",
        ]);
        for (i, a) in plan.actions.iter().enumerate() {
            let changes: Vec<String> = a
                .changes
                .iter()
                .take(6)
                .map(|c| match (&c.before, &c.after) {
                    (None, Some(v)) => format!("+{}={v}", c.field),
                    (Some(b), Some(v)) => format!("{}: {b} → {v}", c.field),
                    (Some(b), None) => format!("-{}={b}", c.field),
                    (None, None) => c.field.clone(),
                })
                .collect();
            let more = a.changes.len().saturating_sub(6);
            let mut ch = changes.join("\n");
            if more > 0 {
                ch.push_str(&format!("\n… {more} more"));
            }
            t.add_row([
                (i + 1).to_string(),
                a.id.to_string(),
                a.kind.to_string(),
                a.target.clone(),
                a.risk.to_string(),
                a.expected_downtime.clone(),
                a.pre_snapshot.clone().unwrap_or_else(|| "—".into()),
                if md { ch.replace('\n', "<br>") } else { ch },
                a.depends_on
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
        out.push_str(&h("Rollback"));
        for a in &plan.actions {
            out.push_str(&format!("- {}: {}\n", a.id, a.rollback_hint));
        }
    } else {
        out.push_str("No changes: the node matches the spec.\n");
    }
    let list = |out: &mut String, title: &str, items: &[String]| {
        if !items.is_empty() {
            out.push_str(&h(title));
            for i in items {
                out.push_str(&format!("- {i}\n"));
            }
        }
    };
    let blocked: Vec<String> = plan
        .held
        .iter()
        .map(|b| format!("{}: {} — to proceed: {}", b.target, b.reason, b.unblock))
        .collect();
    list(&mut out, "Held back (not applied)", &blocked);
    list(&mut out, "Deferred to a later phase", &plan.deferred);
    list(&mut out, "Not declared (left alone)", &plan.foreign);
    list(&mut out, "Notes", &plan.notes);
    out
}
