//! `tag-format`: Proxmox tags, with a corrected tag as the fix.

use labwright_spec::Diagnostic;
use labwright_spec::types::check_tag;

use crate::{Ctx, root};

pub(crate) fn run(ctx: &mut Ctx<'_>) {
    for (i, vm) in ctx.spec().vms.iter().enumerate() {
        let mut seen = std::collections::HashSet::new();
        for (j, tag) in vm.tags.iter().enumerate() {
            let path = root().key("vms").index(i).key("tags").index(j);
            if let Err((why, fix)) = check_tag(tag) {
                let help = match fix {
                    Some(f) => {
                        format!("write `{f}` instead (the convention is key-value, e.g. `env-lab`)")
                    }
                    None => "use letters, digits, `-`, `_`, `+` and `.`".to_string(),
                };
                ctx.emit(
                    Diagnostic::error("tag-format", why)
                        .label("invalid tag")
                        .help(help),
                    &path,
                );
            } else if !seen.insert(tag.to_lowercase()) {
                ctx.emit(
                    Diagnostic::error(
                        "tag-format",
                        format!("tag `{tag}` is listed twice on VM {}", vm.vmid),
                    )
                    .label("duplicate tag")
                    .help("PVE stores tags as a set; remove the repeat"),
                    &path,
                );
            }
        }
    }
}
