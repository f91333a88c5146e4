//! What a scan saw: guests, storage, backup jobs.

use labwright_engine::Observed;

use crate::print::{Document, table};

fn render(o: &Observed, md: bool) -> String {
    let mut t = table(md);
    t.set_header([
        "vmid", "name", "node", "status", "cores", "memory", "tags", "managed",
    ]);
    for vm in o.vms.values() {
        let get = |k: &str| {
            vm.config
                .as_ref()
                .and_then(|c| c.get(k).cloned())
                .unwrap_or_default()
        };
        t.add_row([
            vm.vmid.to_string(),
            vm.name.clone(),
            vm.node.clone(),
            vm.status.clone(),
            get("cores"),
            get("memory"),
            vm.tags.join(";"),
            if vm.is_managed() {
                "yes".into()
            } else {
                "no".into()
            },
        ]);
    }
    let mut out = format!("Guests ({})\n{t}\n", o.vms.len());
    let mut s = table(md);
    s.set_header(["storage", "node", "type", "content", "used", "total"]);
    let gib = |b: Option<u64>| {
        b.map(|b| format!("{:.1} GiB", b as f64 / 1073741824.0))
            .unwrap_or_default()
    };
    for st in &o.storages {
        s.add_row([
            st.id.clone(),
            st.node.clone(),
            st.plugin.clone().unwrap_or_default(),
            st.content.clone().unwrap_or_default(),
            gib(st.used),
            gib(st.total),
        ]);
    }
    out.push_str(&format!("\nStorage\n{s}\n"));
    let mut b = table(md);
    b.set_header([
        "backup job",
        "schedule",
        "storage",
        "guests",
        "retention",
        "enabled",
    ]);
    for j in o.backup_jobs.values() {
        b.add_row([
            j.id.clone(),
            j.schedule.clone().unwrap_or_default(),
            j.storage.clone().unwrap_or_default(),
            if j.all {
                "all".into()
            } else {
                j.vmid.clone().unwrap_or_default()
            },
            j.prune.clone(),
            if j.enabled { "yes".into() } else { "no".into() },
        ]);
    }
    out.push_str(&format!("\nBackup jobs\n{b}\n"));
    out
}

impl Document for Observed {
    fn text(&self) -> String {
        render(self, false)
    }
    fn markdown(&self) -> String {
        render(self, true)
    }
}
