//! labwright's core loop: scan, plan, apply (and dry-run) with its journal, validate.
//!
//! The engine is cut by *resource kind* (`vm`, `backup_job`, `bootstrap`, `firewall`,
//! `network`, and `unsupported` for what is not managed yet): each kind owns its
//! desired state, diff, steps (API calls and how they run) and checks. Shared
//! machinery stays small: the plan builder ([`plan`]), the executor ([`apply`]), the
//! guarded change ([`guarded`]), guest-agent plumbing ([`agent`]) and the pipeline
//! ([`pipeline`]) that the CLI calls. The engine talks to a node only through
//! `labwright-pve`; it knows nothing of the simulator and reads no environment.

pub mod action;
pub mod agent;
pub mod apply;
pub mod backup_job;
pub mod bootstrap;
pub mod bridge;
pub mod canon;
pub mod desired;
mod error;
pub mod firewall;
pub mod guarded;
pub mod journal;
pub mod network;
pub mod observed;
pub mod op;
pub mod pci;
pub mod pipeline;
pub mod plan;
pub mod preflight;
mod probe;
pub mod redact;
pub mod router;
pub mod settings;
pub mod storage;
mod unsupported;
pub mod validate;
pub mod vm;

pub use apply::{ApplyOptions, ApplyReport, Progress, apply};
pub use error::{EngineError, StepError};
pub use observed::{Observed, ScanScope, scan};
pub use plan::{Action, Plan, Risk, plan, plan_with_firewall};
pub use settings::Settings;
pub use validate::{Check, CheckStatus, ValidationReport, validate};
