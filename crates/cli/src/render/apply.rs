//! What an apply did (or, with `--dry-run`, would do).

use labwright_engine::ApplyReport;
use labwright_engine::plan::Plan;
use serde::Serialize;

use crate::print::Document;

/// The report, with the plan it ran (for rollback hints; not in the JSON).
#[derive(Serialize)]
pub struct ApplyDoc<'a> {
    #[serde(flatten)]
    pub report: &'a ApplyReport,
    #[serde(skip)]
    pub plan: &'a Plan,
    /// `-q`: a dry run's text leaves the API calls out (JSON keeps them).
    #[serde(skip)]
    pub quiet: bool,
}

impl Document for ApplyDoc<'_> {
    fn text(&self) -> String {
        let (report, plan) = (self.report, self.plan);
        let mut out = String::new();
        if report.dry_run {
            for w in report.would_run.iter().filter(|_| !self.quiet) {
                out.push_str(&format!("{}:\n", w.action));
                for c in &w.calls {
                    out.push_str(&format!("  {c}\n"));
                }
            }
            out.push_str(&format!(
                "Dry run: {} action(s) would run; nothing was written.\n",
                report.not_run.len()
            ));
            return out;
        }
        out.push_str(&format!(
            "Applied {} of {} action(s) (plan {}).\n",
            report.done.len(),
            plan.actions.len(),
            plan.id
        ));
        for (vmid, s) in &report.snapshots {
            out.push_str(&format!(
                "Pre-change snapshot {s} on VM {vmid} (expires after `labwright validate` passes).\n"
            ));
        }
        for (id, e) in &report.failed {
            out.push_str(&format!("FAILED {id}: {e}\n"));
            if let Some(a) = plan.actions.iter().find(|a| a.id == id.as_str()) {
                out.push_str(&format!("  rollback: {}\n", a.rollback_hint));
            }
        }
        if !report.not_run.is_empty() {
            out.push_str(&format!("Not run: {}\n", report.not_run.join(", ")));
            out.push_str(
                "Run `labwright apply` again to resume: it re-plans from the node and skips what is done.\n",
            );
        }
        out
    }
}
