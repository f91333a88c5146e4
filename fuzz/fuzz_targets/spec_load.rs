//! The whole spec loading path on arbitrary text: secret masking, YAML parsing,
//! the position index, `${VAR}` interpolation, the typed model, diagnostics (rendered
//! through miette), the policy rules on what loads, and a serialise → reload round
//! trip.
//!
//! Properties:
//! - nothing panics, loops or blows the memory limit;
//! - masking keeps every byte offset (same length) and leaves no `tskey-` and no
//!   inline value under a secret key in the text anything else sees;
//! - a failure carries at least one diagnostic with a rule id;
//! - every span (loader, index, policy) lies inside the masked text, on character
//!   boundaries, and its line:column is the one its byte offset is at;
//! - a spec that loads serialises, and (when nothing depends on the environment or
//!   on masked secrets) reloads to the same model.

#![no_main]

use labwright_spec::diag::{RenderOptions, render};
use labwright_spec::load::mask_secrets;
use labwright_spec::path::Seg;
use labwright_spec::{Diagnostic, PathIndex, SourceFile, SrcSpan, load_str, to_yaml};
use libfuzzer_sys::fuzz_target;

const NAME: &str = "fuzz.yaml";

fn env(name: &str) -> Option<String> {
    match name {
        "ADMIN_PC_CIDR" => Some("192.168.1.50/32".into()),
        "LW_FUZZ_EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// The loader's notion of a secret key (kept in step with `load::is_secret_key`).
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["authkey", "secret", "password", "passwd", "token", "apikey"]
        .iter()
        .any(|s| k.contains(s))
}

/// Line and 1-based character column of a byte offset (YAML line breaks: `\n`,
/// `\r\n`, lone `\r`).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let mut line = 1;
    let mut col = 1;
    let mut prev_cr = false;
    for c in before.chars() {
        match c {
            '\n' if prev_cr => {}
            '\n' | '\r' => {
                line += 1;
                col = 1;
            }
            _ => col += 1,
        }
        prev_cr = c == '\r';
    }
    (line, col)
}

fn check_span(text: &str, s: &SrcSpan, what: &dyn std::fmt::Display) {
    let end = s
        .offset
        .checked_add(s.len)
        .unwrap_or_else(|| panic!("{what}: span {s:?} overflows"));
    assert!(
        end <= text.len(),
        "{what}: span {s:?} ends past the text ({} bytes)",
        text.len()
    );
    assert!(
        text.is_char_boundary(s.offset) && text.is_char_boundary(end),
        "{what}: span {s:?} splits a character"
    );
    assert_eq!(
        line_col(text, s.offset),
        (s.line, s.column),
        "{what}: span {s:?} says line:column {}:{} but its offset is elsewhere",
        s.line,
        s.column
    );
}

fn check_diags(file: &SourceFile, diags: &[Diagnostic]) {
    for d in diags {
        assert!(!d.rule.is_empty(), "diagnostic without a rule id: {d:?}");
        if let Some(s) = &d.span {
            check_span(&file.text, s, &format_args!("diagnostic [{}] {}", d.rule, d.message));
        }
    }
    // Rendering reads the snippet: the first few are enough to exercise it.
    for d in diags.iter().take(3) {
        let out = render(d, file, RenderOptions::default());
        assert!(out.contains(&d.rule), "rendered diagnostic lost its rule id:\n{out}");
    }
}

/// What masking promises on the text it was given.
fn check_masking(text: &str, masked: &str) {
    assert_eq!(masked.len(), text.len(), "masking changed the length");
    assert!(!masked.contains("tskey-"), "a `tskey-` survived masking");
    for (path, span) in PathIndex::build(text).values() {
        let Some(Seg::Key(key)) = path.0.last() else {
            continue;
        };
        if !is_secret_key(key) {
            continue;
        }
        let Some(raw) = text.get(span.offset..span.offset + span.len) else {
            continue;
        };
        let value = raw.trim_matches(|c| c == '"' || c == '\'');
        let is_ref = value.starts_with("env:")
            || value.starts_with("file:")
            || (value.starts_with("${") && value.ends_with('}'));
        let is_null = matches!(raw, "~" | "null" | "Null" | "NULL");
        if is_ref || is_null || raw.contains('\n') {
            continue;
        }
        let shown = masked.get(span.offset..span.offset + span.len);
        assert!(
            shown.is_some_and(|m| m.bytes().all(|b| matches!(b, b'x' | b'"' | b'\''))),
            "inline secret at `{path}` ({span:?}) is not masked: {shown:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let masked = mask_secrets(text);
    check_masking(text, &masked);

    match load_str(NAME, text, &env) {
        Err(fail) => {
            assert!(!fail.diagnostics.is_empty(), "a failed load said nothing");
            assert_eq!(&*fail.source.text, masked.as_str(), "failure shows unmasked text");
            check_diags(&fail.source, &fail.diagnostics);
        }
        Ok(loaded) => {
            assert_eq!(&*loaded.source.text, masked.as_str(), "spec keeps unmasked text");
            for (path, span) in loaded.index.values() {
                check_span(&loaded.source.text, &span, &format_args!("index `{path}`"));
            }
            let diags = labwright_policy::check(&loaded);
            check_diags(&loaded.source, &diags);

            let yaml = match to_yaml(&loaded.spec) {
                Ok(y) => y,
                Err(e) => panic!("a loaded spec does not serialise: {e}"),
            };
            // Interpolated values, masked inline secrets (kept as a length only) and
            // `tskey-` text do not survive a reload by design; everything else must.
            let portable = !text.contains("${")
                && !yaml.contains('$')
                && !yaml.contains("<redacted inline secret>")
                && !yaml.contains("tskey-");
            if portable {
                match load_str("roundtrip.yaml", &yaml, &env) {
                    Ok(again) => assert_eq!(
                        loaded.spec, again.spec,
                        "the model changed in a serialise → reload round trip:\n{yaml}"
                    ),
                    Err(f) => panic!(
                        "a serialised spec does not reload: {:?}\n{yaml}",
                        f.diagnostics
                    ),
                }
            }
        }
    }
});
