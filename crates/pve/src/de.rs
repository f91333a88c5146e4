//! Tolerant deserialisers for PVE's Perl-typed JSON.
//!
//! PVE emits booleans as `0`/`1` (sometimes `"0"`), numbers as strings (`"memory":"4096"`)
//! and occasionally floats where integers are documented. A strict serde derive would
//! break on a minor PVE update, so every typed field goes through these helpers.

use serde::{Deserialize, Deserializer, de::Error as _};
use serde_json::Value;

/// Interpret a JSON value as a boolean: `true/false`, numbers (non-zero = true) and
/// the strings PVE uses (`1/0`, `yes/no`, `on/off`, `true/false`).
pub fn value_to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "yes" | "on" | "true" => Some(true),
            "0" | "no" | "off" | "false" | "" => Some(false),
            _ => None,
        },
        Value::Null => None,
        _ => None,
    }
}

/// Interpret a JSON value as an unsigned integer (numbers, numeric strings, whole floats).
pub fn value_to_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => {
            let t = s.trim();
            t.parse::<u64>().ok().or_else(|| {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| *f >= 0.0)
                    .map(|f| f as u64)
            })
        }
        Value::Bool(b) => Some(u64::from(*b)),
        _ => None,
    }
}

/// Interpret a JSON value as a signed integer.
pub fn value_to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            let t = s.trim();
            t.parse::<i64>()
                .ok()
                .or_else(|| t.parse::<f64>().ok().map(|f| f as i64))
        }
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// Interpret a JSON value as a float.
pub fn value_to_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// Render a scalar JSON value as the string PVE would have stored (numbers and
/// booleans become their decimal text; booleans as `1`/`0`).
pub fn value_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}

fn type_err<E: serde::de::Error>(want: &str, v: &Value) -> E {
    E::custom(format!("expected {want}, got {v}"))
}

/// Required lenient boolean.
pub fn bool_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = Value::deserialize(d)?;
    value_to_bool(&v).ok_or_else(|| type_err("boolean", &v))
}

/// Optional lenient boolean (`null` or missing → `None`).
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    value_to_bool(&v)
        .map(Some)
        .ok_or_else(|| type_err("boolean", &v))
}

/// Required lenient unsigned integer.
pub fn u64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Value::deserialize(d)?;
    value_to_u64(&v).ok_or_else(|| type_err("unsigned integer", &v))
}

/// Optional lenient unsigned integer.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() || v.as_str().is_some_and(str::is_empty) {
        return Ok(None);
    }
    value_to_u64(&v)
        .map(Some)
        .ok_or_else(|| type_err("unsigned integer", &v))
}

/// Required lenient `u32` (VMIDs, positions, pids).
pub fn u32_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = Value::deserialize(d)?;
    value_to_u64(&v)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| type_err("32-bit unsigned integer", &v))
}

/// Optional lenient `u32`.
pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() || v.as_str().is_some_and(str::is_empty) {
        return Ok(None);
    }
    value_to_u64(&v)
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| type_err("32-bit unsigned integer", &v))
}

/// Optional lenient signed integer.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() || v.as_str().is_some_and(str::is_empty) {
        return Ok(None);
    }
    value_to_i64(&v)
        .map(Some)
        .ok_or_else(|| type_err("integer", &v))
}

/// Optional lenient float.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() || v.as_str().is_some_and(str::is_empty) {
        return Ok(None);
    }
    value_to_f64(&v)
        .map(Some)
        .ok_or_else(|| type_err("number", &v))
}

/// Optional string that may arrive as a number (`"id": 110` vs `"id": "110"`).
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    value_to_string(&v)
        .map(Some)
        .ok_or_else(|| type_err("string", &v))
}

/// Required string that may arrive as a number.
pub fn string_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    value_to_string(&v).ok_or_else(|| type_err("string", &v))
}

/// A map whose scalar values are rendered as strings; nested objects/arrays are
/// serialised back to JSON text so nothing is silently dropped.
pub fn string_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<indexmap::IndexMap<String, String>, D::Error> {
    let v = Value::deserialize(d)?;
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => return Ok(indexmap::IndexMap::new()),
        other => return Err(D::Error::custom(format!("expected object, got {other}"))),
    };
    let mut out = indexmap::IndexMap::with_capacity(obj.len());
    for (k, v) in obj {
        let s = match &v {
            Value::Null => continue,
            Value::Object(_) | Value::Array(_) => v.to_string(),
            other => value_to_string(other).unwrap_or_default(),
        };
        out.insert(k, s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "opt_bool")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "opt_u64")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "opt_string")]
        s: Option<String>,
    }

    #[test]
    fn perl_quirks() {
        for (input, b, n) in [
            (json!({"b": 1, "n": "4096"}), Some(true), Some(4096)),
            (json!({"b": "0", "n": 4096}), Some(false), Some(4096)),
            (json!({"b": true, "n": 4096.0}), Some(true), Some(4096)),
            (json!({}), None, None),
        ] {
            let t: T = serde_json::from_value(input).expect("decodes");
            assert_eq!(t.b, b);
            assert_eq!(t.n, n);
        }
        let t: T = serde_json::from_value(json!({"s": 110})).expect("decodes");
        assert_eq!(t.s.as_deref(), Some("110"));
        assert!(serde_json::from_value::<T>(json!({"b": "maybe"})).is_err());
    }
}
