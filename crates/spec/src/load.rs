//! Loading a spec: YAML → generic tree (duplicate keys refused) → `${VAR}`
//! interpolation in string values → strict typed model. Every failure becomes a
//! [`Diagnostic`] that points at file:line:col.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::diag::{Diagnostic, SourceFile, SrcSpan};
use crate::model::Spec;
use crate::path::{PathIndex, Seg, YamlPath};

/// A spec that loaded, with what is needed to point back into its file.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub spec: Spec,
    pub source: SourceFile,
    pub index: PathIndex,
}

impl Loaded {
    /// Span of a value, for diagnostics raised after loading (policy rules).
    pub fn span(&self, path: &YamlPath) -> Option<SrcSpan> {
        self.index.value(path)
    }
}

/// A spec that did not load: the diagnostics and the file they refer to.
#[derive(Clone, Debug)]
pub struct LoadFailure {
    pub source: SourceFile,
    pub diagnostics: Vec<Diagnostic>,
}

/// Looks up environment variables; tests pass a closure over a fixed map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for the CLI.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Largest spec accepted, so a mistaken path to a huge file fails fast.
const MAX_SPEC_BYTES: u64 = 16 * 1024 * 1024;

pub fn load_file(path: &Path, env: EnvLookup<'_>) -> Result<Loaded, LoadFailure> {
    let name = path.display().to_string();
    let fail = |msg: String, help: &str| LoadFailure {
        source: SourceFile {
            name: name.clone(),
            text: Arc::from(""),
        },
        diagnostics: vec![Diagnostic::error("io", msg).help(help.to_string())],
    };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_SPEC_BYTES => {
            return Err(fail(
                format!("{name} is {} bytes; a spec is at most 16 MiB", m.len()),
                "check the path",
            ));
        }
        Ok(m) if m.is_dir() => {
            return Err(fail(
                format!("{name} is a directory"),
                "pass a spec file, e.g. specs/nas.desired.yaml",
            ));
        }
        _ => {}
    }
    let bytes = std::fs::read(path).map_err(|e| {
        fail(
            format!("cannot read {name}: {e}"),
            "check the path and its permissions",
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        fail(
            format!(
                "{name} is not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            "save the spec as UTF-8",
        )
    })?;
    load_str(&name, &text, env)
}

pub fn load_str(name: &str, text: &str, env: EnvLookup<'_>) -> Result<Loaded, LoadFailure> {
    // Inline secrets are masked before anything reads the text, so no snippet, error
    // message or model value can ever carry them.
    let (masked, index_of_input) = mask_with_index(text);
    let unchanged = masked == text;
    let text = masked.as_str();
    let source = SourceFile {
        name: name.to_string(),
        text: Arc::from(text),
    };
    let fail = |d: Diagnostic| LoadFailure {
        source: source.clone(),
        diagnostics: vec![d],
    };
    if let Some(d) = check_tabs(text) {
        return Err(fail(d));
    }
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    let mut tree: Value = match serde_saphyr::from_str_with_options(text, options) {
        Ok(v) => v,
        Err(e) => return Err(fail(yaml_error(&e, text))),
    };
    if tree.is_null() {
        return Err(fail(
            Diagnostic::error("yaml-syntax", "the spec is empty")
                .help("start with `apiVersion: labwright/v1` and `kind: Homelab`"),
        ));
    }
    let index = if unchanged {
        index_of_input
    } else {
        PathIndex::build(text)
    };
    let mut diags = Vec::new();
    interpolate(&mut tree, &YamlPath::root(), env, &index, text, &mut diags);
    if !diags.is_empty() {
        return Err(LoadFailure {
            source,
            diagnostics: diags,
        });
    }
    match serde_path_to_error::deserialize::<_, Spec>(&tree) {
        Ok(spec) => Ok(Loaded {
            spec,
            source,
            index,
        }),
        Err(e) => {
            let path = convert_path(e.path());
            let msg = e.inner().to_string();
            Err(fail(classify(&msg, &path, &index, &tree)))
        }
    }
}

/// Keys whose values are secrets wherever they appear.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["authkey", "secret", "password", "passwd", "token", "apikey"]
        .iter()
        .any(|s| k.contains(s))
}

/// Replaces inline secret values with `*` (same length, so every position stays
/// right). References (`env:`, `file:`) and `${VAR}` stay readable.
pub fn mask_secrets(text: &str) -> String {
    mask_with_index(text).0
}

/// [`mask_secrets`], also handing back the position index it built of `text`: when
/// nothing was masked (the usual spec, whose secrets are references) the loader reuses
/// it instead of building it a second time (half of `check`'s work, docs/benchmarks.md).
fn mask_with_index(text: &str) -> (String, PathIndex) {
    let index = PathIndex::build(text);
    let mut spans: Vec<SrcSpan> = Vec::new();
    for (path, span) in index.values() {
        let Some(Seg::Key(key)) = path.0.last() else {
            continue;
        };
        let Some(raw) = text.get(span.offset..span.offset + span.len) else {
            continue;
        };
        let value = raw.trim_matches(|c| c == '"' || c == '\'');
        let is_ref = value.starts_with("env:")
            || value.starts_with("file:")
            || (value.starts_with("${") && value.ends_with('}'));
        // An explicit null hides nothing, and must stay null like an empty value.
        let is_null = matches!(raw, "~" | "null" | "Null" | "NULL");
        if (is_secret_key(key) && !is_ref && !is_null && !raw.contains('\n'))
            || value.starts_with("tskey-")
        {
            spans.push(span);
        }
    }
    // Tailscale keys anywhere else (comments, wrong keys) are masked too.
    let mut out: Vec<u8> = text.as_bytes().to_vec();
    for s in spans {
        for b in out.iter_mut().skip(s.offset).take(s.len) {
            // Every byte of a multi-byte character becomes `x` too: still UTF-8.
            if !matches!(*b, b'"' | b'\'') {
                *b = b'x';
            }
        }
    }
    let mut masked = String::from_utf8(out).unwrap_or_else(|_| text.to_string());
    while let Some(pos) = masked.find("tskey-") {
        // A key is `tskey-` + letters, digits and dashes: stop at anything else, so a
        // key inside a flow collection (`{note: x tskey-…}`) keeps its closing bracket.
        let end = masked[pos..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(masked.len(), |e| pos + e);
        let stars = "x".repeat(end - pos);
        masked.replace_range(pos..end, &stars);
    }
    (masked, index)
}

/// YAML forbids tabs in indentation; say so plainly at the tab itself. Public for
/// other YAML readers (the naasctl importer) that report the way the loader does.
pub fn check_tabs(text: &str) -> Option<Diagnostic> {
    let mut offset = 0;
    for (i, line) in yaml_lines(text).enumerate() {
        let indent: usize = line
            .find(|c: char| c != ' ' && c != '\t')
            .unwrap_or(line.len());
        if let Some(col) = line[..indent].find('\t') {
            return Some(
                Diagnostic::error("yaml-syntax", "tab character used for indentation")
                    .with_span(Some(SrcSpan {
                        line: i + 1,
                        column: col + 1,
                        offset: offset + col,
                        len: 1,
                    }))
                    .label("tab here")
                    .help("YAML indentation must use spaces; replace the tab with spaces"),
            );
        }
        offset += line.len();
    }
    None
}

/// A YAML parse error as a diagnostic at its position (public for the importer).
pub fn yaml_error(e: &serde_saphyr::Error, text: &str) -> Diagnostic {
    let raw = e.without_snippet().to_string();
    // The crate prefixes its own location; keep the message only.
    let msg = raw
        .split_once(" at line ")
        .map(|(m, _)| m.to_string())
        .unwrap_or(raw.clone());
    let mut msg = msg
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string();
    // The crate's advice about its own options means nothing to a spec author.
    if let Some(pos) = msg.find("duplicate mapping key") {
        let rest = &msg[pos + "duplicate mapping key".len()..];
        let key = rest
            .trim_start_matches([':', ' '])
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        msg = if key.is_empty() || key.starts_with(',') {
            "duplicate key".to_string()
        } else {
            format!("duplicate key `{key}`")
        };
    }
    let lower = msg.to_lowercase();
    let (rule, help) = if lower.contains("duplicate") {
        (
            "duplicate-key",
            "each key may appear once per mapping; remove or merge the repeated key",
        )
    } else if lower.contains("budget") || lower.contains("limit") {
        (
            "yaml-limits",
            "the document exceeds labwright's safety limits (depth, size or aliases)",
        )
    } else {
        (
            "yaml-syntax",
            "check indentation (spaces only) and quoting near this position",
        )
    };
    let span = e.location().and_then(|l| {
        let line = usize::try_from(l.line()).ok()?;
        let column = usize::try_from(l.column()).ok()?;
        if line == 0 {
            return None;
        }
        let offset = offset_of(text, line, column);
        Some(SrcSpan {
            line,
            column,
            offset,
            len: token_len(text, offset),
        })
    });
    Diagnostic::error(rule, msg).with_span(span).help(help)
}

/// The lines of `text`, each with its line break, split where the YAML parser counts
/// a new line: at `\n`, `\r\n` and a lone `\r`.
fn yaml_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = match rest.find(['\n', '\r']) {
            Some(i) if rest[i..].starts_with("\r\n") => i + 2,
            Some(i) => i + 1,
            None => rest.len(),
        };
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

/// Byte offset of a 1-based line and character column.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut off = 0;
    for (i, l) in yaml_lines(text).enumerate() {
        if i + 1 == line {
            let col_bytes: usize = l
                .chars()
                .take_while(|&c| c != '\n' && c != '\r')
                .take(column.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            return off + col_bytes;
        }
        off += l.len();
    }
    text.len()
}

/// Length of the token at `offset`: at least the character there, nothing at the end.
fn token_len(text: &str, offset: usize) -> usize {
    let rest = text.get(offset..).unwrap_or_default();
    let token = rest
        .find(|c: char| c.is_whitespace() || c == ',' || c == ']' || c == '}')
        .unwrap_or(rest.len());
    token.max(rest.chars().next().map_or(0, char::len_utf8))
}

fn convert_path(p: &serde_path_to_error::Path) -> YamlPath {
    let mut out = YamlPath::root();
    for seg in p.iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => out = out.index(*index),
            serde_path_to_error::Segment::Map { key } => out = out.key(key.clone()),
            serde_path_to_error::Segment::Enum { variant } => out = out.key(variant.clone()),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

/// Turns a serde message into a rule id, a span and a hint.
fn classify(msg: &str, path: &YamlPath, index: &PathIndex, tree: &Value) -> Diagnostic {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (field, expected) = split_expected(rest);
        let key_path = path.key(field.clone());
        let span = if index.contains(&key_path) {
            index.key(&key_path)
        } else {
            // serde_path_to_error may already include the field.
            index.key(path)
        };
        let mut d = Diagnostic::error("unknown-key", format!("unknown key `{field}`"))
            .at(
                if index.contains(&key_path) {
                    &key_path
                } else {
                    path
                },
                span,
            )
            .label("not a key labwright knows here");
        d.help = Some(match suggest(&field, &expected) {
            Some(s) => format!("did you mean `{s}`?"),
            None if expected.is_empty() => "remove this key".to_string(),
            None => format!("valid keys here: {}", expected.join(", ")),
        });
        return d;
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (variant, expected) = split_expected(rest);
        let parent_is_map_key = lookup(tree, path).is_some_and(Value::is_object);
        let (span, label) = if parent_is_map_key {
            (index.key(&path.key(variant.clone())), "unknown choice")
        } else {
            (index.value(path), "not one of the allowed values")
        };
        let help = match suggest(&variant, &expected) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("expected one of: {}", expected.join(", ")),
        };
        return Diagnostic::error(
            "invalid-value",
            format!("`{variant}` is not a valid value for `{}`", leaf(path)),
        )
        .at(path, span)
        .label(label)
        .help(help);
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        let span = index.key(path);
        let shown = if path.0.is_empty() {
            "the spec".to_string()
        } else {
            format!("`{path}`")
        };
        return Diagnostic::error(
            "missing-field",
            format!("{shown} is missing the required key `{field}`"),
        )
        .at(path, span)
        .label(format!("`{field}` missing here"))
        .help(format!("add `{field}:` to this mapping"));
    }
    if msg.starts_with("invalid type") || msg.starts_with("invalid length") {
        return Diagnostic::error("wrong-type", format!("`{path}`: {msg}"))
            .at(path, index.value(path))
            .label("wrong type")
            .help("see `labwright schema` for the expected types");
    }
    if msg.starts_with("duplicate field") {
        return Diagnostic::error("duplicate-key", msg.to_string())
            .at(path, index.key(path))
            .help("each key may appear once per mapping");
    }
    Diagnostic::error("invalid-value", format!("`{path}`: {msg}"))
        .at(path, index.value(path))
        .label("invalid value")
}

fn leaf(path: &YamlPath) -> String {
    match path.0.last() {
        Some(Seg::Key(k)) => k.clone(),
        Some(Seg::Index(_)) | None => path.to_string(),
    }
}

fn lookup<'a>(tree: &'a Value, path: &YamlPath) -> Option<&'a Value> {
    let mut cur = tree;
    for s in &path.0 {
        cur = match s {
            Seg::Key(k) => cur.get(k)?,
            Seg::Index(i) => cur.get(*i)?,
        };
    }
    Some(cur)
}

/// Splits "x`, expected one of `a`, `b`" into ("x", ["a", "b"]).
fn split_expected(rest: &str) -> (String, Vec<String>) {
    let mut parts = rest.splitn(2, '`');
    let name = parts.next().unwrap_or_default().to_string();
    let tail = parts.next().unwrap_or_default();
    let expected = tail
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect();
    (name, expected)
}

/// The closest expected name, if it is close enough to be a typo.
pub fn suggest(got: &str, expected: &[String]) -> Option<String> {
    let lower = got.to_lowercase();
    expected
        .iter()
        .map(|e| (strsim::jaro_winkler(&lower, &e.to_lowercase()), e))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, e)| e.clone())
}

/// Replaces `${NAME}` and `${NAME:-default}` in every string value; `$${` is a
/// literal `${`. Keys are never interpolated.
fn interpolate(
    v: &mut Value,
    path: &YamlPath,
    env: EnvLookup<'_>,
    index: &PathIndex,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) {
    match v {
        Value::String(s) if s.contains("${") => match expand(s, env) {
            Ok(new) => *s = new,
            Err(err) => {
                let mut span = index.value(path);
                // Point at the `${` itself when the raw text shows it.
                if let Some(sp) = span.as_mut()
                    && let Some(raw) = text.get(sp.offset..sp.offset + sp.len)
                    && let Some(pos) = raw.find(&err.needle)
                {
                    let before = &raw[..pos];
                    sp.offset += pos;
                    // A multi-line scalar: the `${` may sit on a later line.
                    let breaks = yaml_lines(before)
                        .filter(|l| l.ends_with(['\n', '\r']))
                        .count();
                    match before.rfind(['\n', '\r']) {
                        Some(last) if breaks > 0 => {
                            sp.line += breaks;
                            sp.column = before[last + 1..].chars().count() + 1;
                        }
                        _ => sp.column += before.chars().count(),
                    }
                    sp.len = err.needle.len();
                }
                diags.push(
                    Diagnostic::error("env-unset", err.message)
                        .at(path, span)
                        .label("unset variable")
                        .help(err.help),
                );
            }
        },
        Value::Array(items) => {
            for (i, it) in items.iter_mut().enumerate() {
                interpolate(it, &path.index(i), env, index, text, diags);
            }
        }
        Value::Object(map) => {
            for (k, it) in map.iter_mut() {
                interpolate(it, &path.key(k.clone()), env, index, text, diags);
            }
        }
        _ => {}
    }
}

struct ExpandError {
    message: String,
    help: String,
    needle: String,
}

fn expand(s: &str, env: EnvLookup<'_>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(lit) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = lit;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(ExpandError {
                message: "`${` without a closing `}`".into(),
                help: "write `${NAME}` or `${NAME:-default}`, or `$${` for a literal".into(),
                needle: "${".into(),
            });
        };
        let body = &body_start[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(ExpandError {
                message: format!("`${{{body}}}` is not a valid variable reference"),
                help: "variable names use letters, digits and `_`".into(),
                needle: format!("${{{body}}}"),
            });
        }
        match (env(name).filter(|v| !v.is_empty()), default) {
            (Some(val), _) => out.push_str(&val),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(ExpandError {
                    message: format!("environment variable `{name}` is not set"),
                    help: format!(
                        "export {name}=… before running labwright, or give a default: `${{{name}:-value}}`"
                    ),
                    needle: format!("${{{body}}}"),
                });
            }
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "ADMIN").then(|| "192.168.1.50/32".to_string())
    }

    #[test]
    fn expands_variables_and_defaults() {
        let e = |s: &str| expand(s, &env).map_err(|e| e.message);
        assert_eq!(e("${ADMIN}"), Ok("192.168.1.50/32".into()));
        assert_eq!(e("x${NOPE:-d}y"), Ok("xdy".into()));
        assert_eq!(e("$${ADMIN}"), Ok("${ADMIN}".into()));
        assert_eq!(e("cost $5"), Ok("cost $5".into()));
        assert!(e("${NOPE}").is_err_and(|m| m.contains("NOPE")));
        assert!(e("${ADMIN").is_err());
    }

    #[test]
    fn suggests_close_keys() {
        let exp = vec!["memory".to_string(), "cores".to_string()];
        assert_eq!(suggest("memroy", &exp).as_deref(), Some("memory"));
        assert_eq!(suggest("zzz", &exp), None);
    }
}
