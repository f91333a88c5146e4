//! labwright-pve: a thin typed client for the Proxmox VE API.
//!
//! - [`PveClient`] does transport: API-token or ticket auth, TLS with system roots,
//!   a CA file or a pinned SHA-256 fingerprint, GET-only retries, a concurrency bound
//!   and a request counter.
//! - Typed calls for what labwright uses live in `impl PveClient` blocks under [`api`].
//! - [`propstring`] is the property-string codec; [`vmconfig`] has typed helpers for
//!   `net[n]`, drives, `ipconfig[n]`, `agent`, `boot`, `prune-backups`.
//! - [`PveClient::wait_task`] polls UPIDs with backoff.
//!
//! The simulator (`crates/sim`) shares no code with this crate on purpose: two
//! independent readings of the PVE docs catch each other's mistakes.

pub mod api;
pub mod client;
pub mod de;
pub mod error;
pub mod params;
pub mod propstring;
pub mod secret;
pub mod size;
pub mod task;
pub mod tls;
pub mod upid;
pub mod vmconfig;

pub use client::{ApiResponse, ClientConfig, Credentials, PveClient, RequestStats, RetryPolicy};
pub use error::{ApiError, Error};
pub use params::{ParamValue, Params};
pub use propstring::{PropError, PropFormat, PropertyString};
pub use reqwest::Method;
pub use secret::Secret;
pub use task::{TaskLogLine, TaskStatus, WaitOptions};
pub use tls::{Fingerprint, TlsMode};
pub use upid::Upid;
pub use vmconfig::{
    AgentConfig, BootConfig, Drive, DriveSlot, DriveVolume, IpConfig, NetDevice, PruneBackups,
    VmConfig,
};

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
