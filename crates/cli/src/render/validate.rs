//! The validate checklist.

use labwright_engine::{CheckStatus, ValidationReport};

use crate::print::{Document, table};

fn render(r: &ValidationReport, md: bool) -> String {
    let mut t = table(md);
    t.set_header(["check", "result", "detail"]);
    for c in &r.checks {
        let s = match c.status {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Skipped => "skipped",
        };
        t.add_row([c.name.clone(), s.to_string(), c.detail.clone()]);
    }
    let mut out = format!("{t}\n");
    for (vmid, s) in &r.expired_snapshots {
        out.push_str(&format!("expired pre-change snapshot {s} on VM {vmid}\n"));
    }
    for (vmid, s) in &r.kept_snapshots {
        out.push_str(&format!(
            "kept pre-change snapshot {s} on VM {vmid} ({})\n",
            if r.ok {
                "--no-cleanup, or its expiry failed"
            } else {
                "validation did not pass"
            }
        ));
    }
    out.push_str(if r.ok {
        "validate: ok\n"
    } else {
        "validate: FAILED\n"
    });
    out
}

impl Document for ValidationReport {
    fn text(&self) -> String {
        render(self, false)
    }
    fn markdown(&self) -> String {
        render(self, true)
    }
}
