//! `firewall simulate` (one flow's decision trail) and `firewall matrix`.

use labwright_engine::firewall::matrix::{Intent, Matrix, Reach};
use labwright_firewall::{Backend, Decision, Flow};
use serde::Serialize;

use crate::print::{Document, table};

#[derive(Serialize)]
pub struct SimulateDoc<'a> {
    pub state: &'a str,
    pub backend: Backend,
    pub flow: &'a Flow,
    pub decision: &'a Decision,
}

impl Document for SimulateDoc<'_> {
    fn text(&self) -> String {
        format!(
            "flow:    {}\nstate:   {}, {} backend\n\n{}",
            self.flow,
            self.state,
            self.backend,
            self.decision.render_trail()
        )
    }
}

#[derive(Serialize)]
pub struct MatrixDoc<'a> {
    pub state: &'a str,
    #[serde(flatten)]
    pub matrix: &'a Matrix,
}

fn render(doc: &MatrixDoc<'_>, md: bool) -> String {
    let m = doc.matrix;
    let mut out = format!(
        "Reachability, phase {}, {}, {} backend (evaluated by the PVE firewall model; routing between segments is the router's job)\n",
        m.phase, doc.state, m.backend
    );
    let mut t = table(md);
    let mut header = vec!["from \\ to".to_string()];
    for (to, ports) in &m.columns {
        header.push(format!("{to}\n{ports}"));
    }
    t.set_header(header);
    for s in &m.sources {
        let mut row = vec![s.clone()];
        for c in m.cells.iter().filter(|c| &c.from == s) {
            let mark = match c.reach {
                Reach::Allow => "allow",
                Reach::Deny => "deny",
                Reach::Partial => "partial",
            };
            let it = match c.intent {
                Intent::Allow if !c.disagrees => "",
                Intent::Allow => " (want allow)",
                Intent::Deny => "",
                Intent::None => " ?",
                Intent::Later => " (later phase)",
            };
            row.push(if c.disagrees {
                format!("✗ {mark}{it}")
            } else {
                format!("{mark}{it}")
            });
        }
        t.add_row(row);
    }
    out.push_str(&format!("{t}\n"));
    out.push_str("? = the spec states no intent for this cell · ✗ = disagrees with the intent\n");
    for c in m.cells.iter().filter(|c| c.disagrees) {
        out.push_str(&format!(
            "✗ {} → {} {}: {:?}, intent {:?} — {}\n",
            c.from, c.to, c.ports, c.reach, c.intent, c.decided_by
        ));
    }
    out.push_str(&if m.disagreements == 0 {
        "matrix: no cell disagrees with the intent\n".to_string()
    } else {
        format!(
            "matrix: {} cell(s) disagree with the intent\n",
            m.disagreements
        )
    });
    out
}

impl Document for MatrixDoc<'_> {
    fn text(&self) -> String {
        render(self, false)
    }
    fn markdown(&self) -> String {
        render(self, true)
    }
}
