//! Renderers: the text and Markdown forms of each document the commands print
//! (through `crate::print`). One file per document; no domain logic here.

mod apply;
mod audit;
mod check;
mod firewall;
pub mod graph;
pub mod plan;
pub mod report;
mod scan;
mod validate;

pub use apply::ApplyDoc;
pub use audit::{AuditMatrixDoc, AuditSimDoc};
pub use check::{CheckReport, RulesDoc, SpecReport};
pub use firewall::{MatrixDoc, SimulateDoc};
