//! The desired-state spec of a labwright homelab: its model, how it is loaded from
//! YAML with positions, environment interpolation and secret references, and the
//! diagnostics every later stage reports through.

pub mod diag;
pub mod elements;
pub mod load;
pub mod model;
pub mod path;
pub mod types;

pub use diag::{Diagnostic, Severity, SourceFile, SrcSpan};
pub use elements::{Element, ElementKind};
pub use load::{LoadFailure, Loaded, load_file, load_str, process_env};
pub use model::Spec;
pub use path::{PathIndex, YamlPath};

/// The JSON Schema of the spec (draft 2020-12), for editors and `labwright schema`.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(model::Spec);
    serde_json::to_value(&schema).unwrap_or(serde_json::Value::Null)
}

/// Serialises a spec back to YAML (used by round-trip tests and `plan` artifacts).
pub fn to_yaml(spec: &Spec) -> Result<String, serde_saphyr::ser_error::Error> {
    serde_saphyr::to_string(spec)
}
