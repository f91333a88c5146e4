//! Typed endpoint wrappers (`impl PveClient` blocks), grouped by API area.
//!
//! Inputs that PVE models as dozens of optional parameters take a small typed struct
//! for what labwright sets plus an `extra: Params` escape hatch; outputs are structs
//! with tolerant deserialisers and an `extra` map for fields not modelled.

pub mod access;
pub mod agent;
pub mod backup;
pub mod cluster;
pub mod disks;
pub mod firewall;
pub mod mapping;
pub mod network;
pub mod qemu;
pub mod storage;

use serde_json::Value;

use crate::error::Error;
use crate::upid::Upid;

/// Interpret a reply that must be a UPID.
pub(crate) fn upid_from(method: &str, path: &str, data: Value) -> Result<Upid, Error> {
    match data {
        Value::String(s) => Ok(Upid::parse(&s)?),
        other => Err(Error::Decode {
            method: method.into(),
            path: path.into(),
            message: format!("expected a task UPID, got {other}"),
        }),
    }
}

/// A reply that is a UPID or `null` (calls that finished synchronously).
pub(crate) fn opt_upid_from(method: &str, path: &str, data: Value) -> Result<Option<Upid>, Error> {
    match data {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        other => upid_from(method, path, other).map(Some),
    }
}

/// Fields of a reply that the typed struct does not model.
pub type Extra = indexmap::IndexMap<String, Value>;
