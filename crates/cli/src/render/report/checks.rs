//! The validate checklist (from a saved `validate -o json`) and the plan's lockout
//! proof.

use std::fmt::Write as _;

use labwright_engine::Plan;

use super::{SavedValidation, esc};

pub fn validation(s: &mut String, v: Option<(&str, &SavedValidation)>) {
    s.push_str("<section id=\"checks\"><h2>Validate checklist</h2>\n");
    let Some((source, v)) = v else {
        s.push_str("<p class=\"muted\">No validate result was given. Save one with <code>labwright validate SPEC -o json &gt; validate.json</code> and pass <code>--validate validate.json</code>; the report never runs validate itself (validate cleans up seed ISOs and snapshots when it passes).</p></section>\n");
        return;
    };
    let _ = writeln!(
        s,
        "<p>From <code>{}</code>: <span class=\"{}\">{}</span></p>",
        esc(source),
        if v.ok { "pass" } else { "fail" },
        if v.ok {
            "validate: ok"
        } else {
            "validate: FAILED"
        }
    );
    s.push_str("<div class=\"scroll\"><table class=\"checks\"><thead><tr><th>check</th><th>result</th><th>detail</th></tr></thead><tbody>");
    for c in &v.checks {
        let (class, word) = match c.status.as_str() {
            "pass" => ("pass", "pass"),
            "fail" => ("fail", "FAIL"),
            _ => ("skipped", "skipped"),
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"{class}\">{word}</td><td>{}</td></tr>",
            esc(&c.name),
            esc(&c.detail)
        );
    }
    s.push_str("</tbody></table></div>\n");
    for (vmid, snap) in &v.expired_snapshots {
        let _ = writeln!(
            s,
            "<p class=\"muted\">expired pre-change snapshot {} on VM {vmid}</p>",
            esc(snap)
        );
    }
    for (vmid, snap) in &v.kept_snapshots {
        let _ = writeln!(
            s,
            "<p class=\"muted\">kept pre-change snapshot {} on VM {vmid}</p>",
            esc(snap)
        );
    }
    s.push_str("</section>\n");
}

pub fn proof(s: &mut String, plan: &Plan) {
    s.push_str("<section id=\"proof\"><h2>Lockout proof</h2>\n");
    let Some(f) = &plan.firewall else {
        s.push_str("<p class=\"muted\">This plan carries no lockout proof: the spec declares no firewall for this node, so nothing in it can cut management access.</p></section>\n");
        return;
    };
    let verdict = if f.proof_ok {
        "PASSED"
    } else if f.proof_skipped {
        "FAILED — SKIPPED BY LABWRIGHT_UNSAFE_SKIP_LOCKOUT_PROOF"
    } else {
        "FAILED"
    };
    let _ = writeln!(
        s,
        "<p>Evaluated: {} ({} backend{}): <span class=\"{}\">{verdict}</span></p>",
        esc(&f.evaluated),
        esc(&f.backend),
        f.client_addr
            .as_ref()
            .map(|a| format!(", client {}", esc(a)))
            .unwrap_or_default(),
        if f.proof_ok { "pass" } else { "fail" }
    );
    s.push_str("<div class=\"scroll\"><table class=\"proof\"><thead><tr><th>who</th><th>source</th><th>port</th><th>reaches</th><th>decided by</th></tr></thead><tbody>");
    for l in &f.lines {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}{}</td></tr>",
            esc(&l.label),
            esc(&l.source),
            l.port,
            if l.ok { "pass" } else { "fail" },
            if l.ok { "yes" } else { "NO" },
            esc(&l.decided_by),
            l.counterexample
                .as_ref()
                .map(|c| format!(" (e.g. {})", esc(c)))
                .unwrap_or_default()
        );
    }
    s.push_str("</tbody></table></div>\n");
    if let Some(why) = &f.failure {
        let _ = writeln!(s, "<p class=\"fail\">{}</p>", esc(why));
    }
    s.push_str("</section>\n");
}
