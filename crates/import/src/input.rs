//! Reading the naasctl document: typed accessors that record shape errors (with the
//! path they are about) instead of failing on the first one, and the leaf walk that
//! decides what was mapped and what was not.

use serde_json::Value;

use crate::path::Path;

/// A wrong shape in the input: what naasctl itself would have refused.
#[derive(Clone, Debug)]
pub struct ShapeError {
    pub path: Path,
    pub message: String,
    pub help: String,
}

/// A value of the input with its path.
#[derive(Clone, Copy)]
pub struct In<'a> {
    pub v: &'a Value,
    pub p: &'a Path,
}

/// What a value is, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Collects shape errors while mappers read the input.
#[derive(Default)]
pub struct Errors(pub Vec<ShapeError>);

impl Errors {
    pub fn push(&mut self, path: &Path, message: impl Into<String>, help: impl Into<String>) {
        self.0.push(ShapeError {
            path: path.clone(),
            message: message.into(),
            help: help.into(),
        });
    }

    fn wrong(&mut self, path: &Path, v: &Value, want: &str) {
        self.push(
            path,
            format!("`{path}` should be {want}, but is {}", kind(v)),
            format!("write {want} here, as naasctl's schema expects"),
        );
    }

    /// A list (absent or null: empty). Anything else is a shape error.
    pub fn list<'a>(&mut self, v: Option<&'a Value>, p: &Path) -> &'a [Value] {
        match v {
            Some(Value::Array(a)) => a,
            None | Some(Value::Null) => &[],
            Some(other) => {
                self.wrong(p, other, "a list");
                &[]
            }
        }
    }

    /// A mapping (absent or null: none).
    pub fn map<'a>(
        &mut self,
        v: Option<&'a Value>,
        p: &Path,
    ) -> Option<&'a serde_json::Map<String, Value>> {
        match v {
            Some(Value::Object(m)) => Some(m),
            None | Some(Value::Null) => None,
            Some(other) => {
                self.wrong(p, other, "a mapping");
                None
            }
        }
    }

    /// A string (numbers are accepted and printed, as YAML authors mix them).
    pub fn string(&mut self, v: Option<&Value>, p: &Path) -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Null => None,
            other => {
                self.wrong(p, other, "a string");
                None
            }
        }
    }

    /// A whole number. `${VAR:-N}` (naasctl expands it) gives its default, with a note.
    pub fn int(&mut self, v: Option<&Value>, p: &Path) -> Option<(u64, Option<String>)> {
        match v? {
            Value::Number(n) => match n.as_u64() {
                Some(u) => Some((u, None)),
                None => {
                    self.push(
                        p,
                        format!("`{p}` should be a whole number of 0 or more, but is {n}"),
                        "write a whole number here",
                    );
                    None
                }
            },
            Value::String(s) => {
                let t = s.trim();
                if let Ok(u) = t.parse::<u64>() {
                    return Some((u, None));
                }
                if let Some((name, default)) = var_default(t)
                    && let Ok(u) = default.parse::<u64>()
                {
                    return Some((
                        u,
                        Some(format!(
                            "naasctl expanded `${{{name}:-{default}}}`; labwright needs a number here, so the default was taken"
                        )),
                    ));
                }
                self.push(
                    p,
                    format!(
                        "`{p}` should be a whole number, but is the string {:?}",
                        short(t)
                    ),
                    "write a whole number here (e.g. 2)",
                );
                None
            }
            Value::Null => None,
            other => {
                self.wrong(p, other, "a whole number");
                None
            }
        }
    }

    /// A switch: naasctl takes PVE's `0`/`1` as well as booleans.
    pub fn flag(&mut self, v: Option<&Value>, p: &Path) -> Option<bool> {
        match v? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) if n.as_u64() == Some(0) => Some(false),
            Value::Number(n) if n.as_u64() == Some(1) => Some(true),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Some(true),
                "0" | "false" | "no" | "off" => Some(false),
                _ => {
                    self.push(
                        p,
                        format!("`{p}` should be true/false or 1/0, but is {:?}", short(s)),
                        "write true, false, 1 or 0",
                    );
                    None
                }
            },
            Value::Null => None,
            other => {
                self.wrong(p, other, "true/false or 1/0");
                None
            }
        }
    }

    /// A list of strings, or one string separated by commas, semicolons or spaces
    /// (PVE writes tags and content types that way).
    pub fn words(&mut self, v: Option<&Value>, p: &Path) -> Option<Vec<String>> {
        match v? {
            Value::Array(a) => {
                let mut out = Vec::new();
                for (i, x) in a.iter().enumerate() {
                    if let Some(s) = self.string(Some(x), &p.index(i)) {
                        out.push(s);
                    }
                }
                Some(out)
            }
            Value::String(s) => Some(
                s.split([',', ';', ' '])
                    .map(str::trim)
                    .filter(|w| !w.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            Value::Null => None,
            other => {
                self.wrong(p, other, "a list of strings");
                None
            }
        }
    }
}

/// `${NAME:-default}` → (NAME, default).
pub fn var_default(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix("${")?.strip_suffix('}')?;
    body.split_once(":-")
}

/// At most 40 characters of a value, for messages (never used on secret keys).
fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Every leaf of the document with its path, in document order. A leaf is a scalar,
/// an empty list or an empty mapping.
pub fn leaves(v: &Value, p: &Path, out: &mut Vec<Path>) {
    match v {
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, &p.index(i), out);
            }
        }
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                leaves(x, &p.key(k), out);
            }
        }
        _ => out.push(p.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_scalars_and_shape_errors() {
        let mut e = Errors::default();
        let p = Path::root().key("x");
        assert_eq!(e.flag(Some(&Value::from(1)), &p), Some(true));
        assert_eq!(e.flag(Some(&Value::from("0")), &p), Some(false));
        assert_eq!(
            e.int(Some(&Value::from("${CORES:-4}")), &p).map(|x| x.0),
            Some(4)
        );
        assert_eq!(
            e.words(Some(&Value::from("env-lab;role-app-host")), &p),
            Some(vec!["env-lab".into(), "role-app-host".into()])
        );
        assert!(e.0.is_empty());
        assert_eq!(e.int(Some(&Value::from("four")), &p), None);
        assert_eq!(e.list(Some(&Value::from("x")), &p).len(), 0);
        assert_eq!(e.0.len(), 2);
        assert!(
            e.0[1].message.contains("should be a list"),
            "{}",
            e.0[1].message
        );
    }

    #[test]
    fn leaves_in_document_order() {
        let v: Value = serde_json::json!({"a": {"b": 1, "c": []}, "d": [{"e": "x"}, {}]});
        let mut out = Vec::new();
        leaves(&v, &Path::root(), &mut out);
        let s: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(s, ["a.b", "a.c", "d[0].e", "d[1]"]);
    }
}
