//! `inline-secret`: secrets are references. The value of an inline secret was never
//! kept by the loader, so this rule cannot print it even by mistake.

use labwright_spec::types::SecretRef;
use labwright_spec::{Diagnostic, YamlPath};

use crate::{Ctx, root};

fn flag(ctx: &mut Ctx<'_>, s: &SecretRef, path: &YamlPath) {
    if let SecretRef::Inline { len } = s {
        ctx.emit(
            Diagnostic::error(
                "inline-secret",
                format!("a secret is written inline ({len} characters, not shown)"),
            )
            .label("inline secret")
            .help("reference it instead: `env:TAILSCALE_AUTHKEY` or `file:~/.config/labwright/tailscale.key`; then rotate the key, since it sat in a file"),
            path,
        );
    }
}

pub(crate) fn run(ctx: &mut Ctx<'_>) {
    let spec = ctx.spec();
    if let Some(k) = spec.tailscale.as_ref().and_then(|t| t.auth_key.as_ref()) {
        flag(ctx, k, &root().key("tailscale").key("authKey"));
    }
    for (i, vm) in spec.vms.iter().enumerate() {
        if let Some(k) = vm
            .bootstrap
            .as_ref()
            .and_then(|b| b.tailscale.as_ref())
            .and_then(|t| t.auth_key.as_ref())
        {
            flag(
                ctx,
                k,
                &root()
                    .key("vms")
                    .index(i)
                    .key("bootstrap")
                    .key("tailscale")
                    .key("authKey"),
            );
        }
    }
}
