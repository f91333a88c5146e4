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
//!
//! ```no_run
//! use std::time::Duration;
//! use labwright_pve::{ClientConfig, Credentials, Fingerprint, NetDevice, Params, PveClient, TlsMode, WaitOptions};
//!
//! # async fn demo() -> Result<(), labwright_pve::Error> {
//! let config = ClientConfig::new(
//!     "https://proxmox:8006",
//!     Credentials::api_token("labwright@pve!apply", "0e1c…-uuid"),
//! )
//! .tls(TlsMode::Fingerprint(Fingerprint::parse("AB:CD:…").map_err(|e| {
//!     labwright_pve::Error::Config(e.to_string())
//! })?));
//! let pve = PveClient::new(config)?;
//!
//! let cfg = pve.qemu_config("proxmox", 300).await?;
//! let mut net0 = cfg.nets()?.remove(&0).unwrap_or_else(|| NetDevice::new("virtio", "vmbr0"));
//! net0.bridge = Some("vmbr1".into());
//! let upid = pve
//!     .qemu_update_config_async(
//!         "proxmox",
//!         300,
//!         Params::new().set("net0", net0.to_canonical_string()?),
//!         &[],
//!         cfg.digest.as_deref(),
//!     )
//!     .await?;
//! if let Some(upid) = upid {
//!     pve.wait_task(&upid, WaitOptions::with_timeout(Duration::from_secs(120))).await?;
//! }
//! # Ok(())
//! # }
//! ```

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

pub use client::{
    ApiResponse, ClientConfig, Credentials, PveClient, RequestStats, RetryPolicy, probe_fingerprint,
};
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
    VmConfig, canonical_tags, decode_sshkeys, encode_sshkeys,
};

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
