//! Redaction of parameter values on their way into plans, journals and logs.

/// Parameter names whose values are secrets.
pub fn is_secret_param(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "authkey",
        "cipassword",
        "key",
    ]
    .iter()
    .any(|s| k.contains(s))
        && k != "sshkeys"
}

/// The value as it may be shown: secrets become `<redacted>`.
pub fn param_value<'a>(key: &str, value: &'a str) -> std::borrow::Cow<'a, str> {
    if is_secret_param(key) {
        "<redacted>".into()
    } else {
        value.into()
    }
}
