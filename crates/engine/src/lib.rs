//! labwright's core loop: the observed model (scan), the diff into a plan, the
//! executor (apply and dry-run) with its journal, and validation.
//!
//! The engine talks to a node only through `labwright-pve`; it knows nothing of the
//! simulator.

pub mod apply;
pub mod bootstrap;
pub mod canon;
pub mod desired;
pub mod firewall;
pub mod journal;
pub mod observed;
pub mod plan;
mod probe;
pub mod redact;
pub mod validate;

pub use apply::{ApplyOptions, ApplyReport, Progress, apply};
pub use observed::{Observed, ScanScope, scan};
pub use plan::{Action, Plan, Risk, plan, plan_with_firewall};
pub use validate::{Check, CheckStatus, ValidationReport, validate};

/// Errors of the engine. Messages name the operation and the API path; they never
/// contain secrets (the client's errors do not either).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("could not {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: Box<labwright_pve::Error>,
    },
    #[error("{0}")]
    Refused(String),
    #[error("journal {path}: {message}")]
    Journal { path: String, message: String },
}

impl EngineError {
    pub fn api(what: &str, source: labwright_pve::Error) -> Self {
        EngineError::Api {
            what: what.to_string(),
            source: Box::new(source),
        }
    }
}
