//! Request parameters in PVE's wire form.
//!
//! PVE wants booleans as `0`/`1` (`true` is a 400) and array parameters as repeated
//! keys (`command=a&command=b`), which a plain map or serde struct does not express.

use std::fmt;

/// A value that can be sent as a PVE parameter.
pub trait ParamValue {
    /// The wire text.
    fn to_param(&self) -> String;
}

impl ParamValue for str {
    fn to_param(&self) -> String {
        self.to_string()
    }
}
impl ParamValue for String {
    fn to_param(&self) -> String {
        self.clone()
    }
}
impl<T: ParamValue + ?Sized> ParamValue for &T {
    fn to_param(&self) -> String {
        (**self).to_param()
    }
}
impl ParamValue for bool {
    fn to_param(&self) -> String {
        if *self { "1" } else { "0" }.to_string()
    }
}
macro_rules! num_param {
    ($($t:ty),*) => {$(
        impl ParamValue for $t {
            fn to_param(&self) -> String { self.to_string() }
        }
    )*};
}
num_param!(u8, u16, u32, u64, usize, i32, i64, f64);

/// Ordered list of `key=value` pairs; keys may repeat.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `key`, replacing earlier values.
    pub fn set(mut self, key: impl Into<String>, value: impl ParamValue) -> Self {
        self.insert(key, value);
        self
    }

    /// Set `key` only when `value` is `Some`.
    pub fn set_opt<V: ParamValue>(mut self, key: impl Into<String>, value: Option<V>) -> Self {
        if let Some(v) = value {
            self.insert(key, v);
        }
        self
    }

    /// Append a value without replacing (array parameters).
    pub fn push(mut self, key: impl Into<String>, value: impl ParamValue) -> Self {
        self.0.push((key.into(), value.to_param()));
        self
    }

    /// In-place variant of [`Params::set`].
    pub fn insert(&mut self, key: impl Into<String>, value: impl ParamValue) {
        let key = key.into();
        self.0.retain(|(k, _)| *k != key);
        self.0.push((key, value.to_param()));
    }

    /// Remove all values of `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    /// Append all pairs of `other`, replacing keys it sets.
    pub fn merge(mut self, other: Params) -> Self {
        for (k, v) in other.0 {
            self.insert(k, v);
        }
        self
    }

    /// First value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

impl<K: Into<String>, V: ParamValue> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut p = Params::new();
        for (k, v) in iter {
            p.0.push((k.into(), v.to_param()));
        }
        p
    }
}

impl fmt::Debug for Params {
    /// Keys only: values may hold secrets (`cipassword`, `password`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let p = Params::new()
            .set("purge", true)
            .set("vmid", 100u32)
            .set_opt("name", None::<&str>)
            .push("command", "/bin/sh")
            .push("command", "-c")
            .set("purge", false);
        assert_eq!(p.get("purge"), Some("0"));
        assert_eq!(p.pairs().iter().filter(|(k, _)| k == "command").count(), 2);
        assert!(!format!("{p:?}").contains("/bin/sh"));
    }
}
