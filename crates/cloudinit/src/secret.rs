//! Resolving secret references (`env:NAME`, `file:PATH`) into values that cannot be
//! printed by accident.
//!
//! The value is only ever needed in one place, the user-data inside the seed ISO, so
//! it lives in [`SecretValue`], whose `Debug` is redacted and which has no `Display`.
//! Errors name the reference, never the value.

use std::fmt;
use std::path::PathBuf;

use labwright_spec::types::SecretRef;

/// A resolved secret. `Debug` prints only the reference it came from; there is no
/// `Display`, `Serialize` or `Clone`, so the value cannot leak through formatting or a
/// plan file without an explicit [`SecretValue::expose`].
pub struct SecretValue {
    value: String,
    from: String,
}

impl SecretValue {
    /// Wraps a value read from `from` (the reference, e.g. `env:TAILSCALE_AUTHKEY`).
    pub fn new(value: String, from: &SecretRef) -> Self {
        SecretValue {
            value,
            from: from.to_string(),
        }
    }

    /// The secret itself; named so that every use is easy to find in review.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The reference this value was read from (safe to print).
    pub fn reference(&self) -> &str {
        &self.from
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<redacted:{}>)", self.from)
    }
}

/// Why a secret reference could not be resolved. Every variant carries the reference
/// (safe to print) and never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret `{reference}` is not set (export {name} before running labwright)")]
    EnvMissing { reference: String, name: String },
    #[error("secret `{reference}` could not be read: {reason}")]
    FileUnreadable { reference: String, reason: String },
    #[error("secret `{reference}` is empty")]
    Empty { reference: String },
    #[error(
        "secret `{reference}` is not a single-line token (it contains whitespace or control characters)"
    )]
    Malformed { reference: String },
    #[error("an inline secret was given where a reference is expected; use env:NAME or file:PATH")]
    Inline,
}

/// Turns a [`SecretRef`] into its value. The CLI uses [`EnvFileResolver`]; tests pass a
/// closure over fixed values, so no test needs real environment variables or files.
pub trait SecretResolver {
    fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, SecretError>;
}

impl<F> SecretResolver for F
where
    F: Fn(&SecretRef) -> Result<SecretValue, SecretError>,
{
    fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, SecretError> {
        self(reference)
    }
}

/// Reads `env:NAME` from the process environment and `file:PATH` from disk (a leading
/// `~/` means the home directory). One trailing newline is trimmed from files, since
/// `echo KEY > file` is how people write them.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvFileResolver;

impl SecretResolver for EnvFileResolver {
    fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, SecretError> {
        let raw = match reference {
            SecretRef::Env(name) => std::env::var(name).map_err(|_| SecretError::EnvMissing {
                reference: reference.to_string(),
                name: name.clone(),
            })?,
            SecretRef::File(path) => {
                let path = expand_home(path);
                std::fs::read_to_string(&path).map_err(|e| SecretError::FileUnreadable {
                    reference: reference.to_string(),
                    // The io::Error text names the kind (not found, permission denied),
                    // never the file's content.
                    reason: e.kind().to_string(),
                })?
            }
            SecretRef::Inline { .. } => return Err(SecretError::Inline),
        };
        let trimmed = raw
            .strip_suffix("\r\n")
            .or_else(|| raw.strip_suffix('\n'))
            .unwrap_or(&raw);
        Ok(SecretValue::new(trimmed.to_string(), reference))
    }
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Checks that a secret can be embedded in YAML and a command line as one token:
/// non-empty, no whitespace, no control characters. Auth keys always are; anything
/// else is a mistake (a pasted multi-line file, a stray quote) better caught here.
pub(crate) fn check_token(secret: &SecretValue) -> Result<(), SecretError> {
    let v = secret.expose();
    if v.is_empty() {
        return Err(SecretError::Empty {
            reference: secret.reference().to_string(),
        });
    }
    if v.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '`' | '\\'))
    {
        return Err(SecretError::Malformed {
            reference: secret.reference().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let v = SecretValue::new("tskey-auth-CANARY".into(), &SecretRef::Env("TS".into()));
        let shown = format!("{v:?}");
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(shown.contains("env:TS"), "{shown}");
    }

    #[test]
    fn missing_env_names_the_reference() {
        let r = SecretRef::Env("LABWRIGHT_TEST_SURELY_UNSET_VAR".into());
        let e = EnvFileResolver.resolve(&r).err();
        let msg = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("env:LABWRIGHT_TEST_SURELY_UNSET_VAR"), "{msg}");
    }

    #[test]
    fn unreadable_file_names_the_reference_not_content() {
        let r = SecretRef::File("/nonexistent/labwright/ts.key".into());
        let msg = EnvFileResolver
            .resolve(&r)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("file:/nonexistent/labwright/ts.key"), "{msg}");
    }

    #[test]
    fn file_secret_is_trimmed_of_one_newline() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("k");
        std::fs::write(&p, "tskey-auth-FILE\n")?;
        let r = SecretRef::File(p.display().to_string());
        let v = EnvFileResolver.resolve(&r)?;
        assert_eq!(v.expose(), "tskey-auth-FILE");
        Ok(())
    }

    #[test]
    fn malformed_tokens_are_refused_without_echo() {
        let r = SecretRef::Env("TS".into());
        for bad in ["", "two words", "line\nbreak", "quo'te"] {
            let v = SecretValue::new(bad.into(), &r);
            let e = check_token(&v)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("env:TS"), "{e}");
            if !bad.is_empty() {
                assert!(!e.contains(bad), "{e}");
            }
        }
    }
}
