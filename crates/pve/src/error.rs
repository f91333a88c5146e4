//! The client's error type.
//!
//! Every variant names the method and API path so a failed apply says *which* call
//! failed; none carries request headers or bodies, so credentials cannot leak through
//! `Display` or `Debug` (a test formats every variant against a canary secret).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::propstring::PropError;
use crate::tls::Fingerprint;
use crate::upid::UpidError;

/// An error reply from the PVE API (any non-2xx status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP method.
    pub method: String,
    /// API path below `/api2/json` (no query string).
    pub path: String,
    /// HTTP status code (PVE also uses 595/596 for proxy failures).
    pub status: u16,
    /// PVE's message: the JSON `message`, else the reason phrase, trimmed.
    pub message: String,
    /// Per-parameter errors of a 400 reply.
    pub errors: BTreeMap<String, String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: HTTP {}: {}",
            self.method, self.path, self.status, self.message
        )?;
        for (param, msg) in &self.errors {
            write!(f, "\n  {param}: {}", msg.trim_end().replace('\n', "\n    "))?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to PVE.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration is unusable (bad URL, empty token, …).
    #[error("invalid PVE client configuration: {0}")]
    Config(String),
    /// TLS could not be set up (unreadable CA file, …).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The server's certificate does not match the pinned fingerprint. Never retried.
    #[error(
        "{method} {path}: TLS certificate fingerprint mismatch: expected {expected}, got {got} \
         (if the node certificate was renewed, re-pin it after checking it out of band)"
    )]
    FingerprintMismatch {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// The configured pin.
        expected: Fingerprint,
        /// The server's leaf fingerprint.
        got: Fingerprint,
    },
    /// The server certificate failed verification (unknown CA, wrong host name,
    /// expired). Not retried.
    #[error(
        "{method} {path}: server certificate rejected: {reason} \
         (trust the cluster CA with a CA file, or pin the node's SHA-256 fingerprint)"
    )]
    CertificateRejected {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// What the verifier objected to.
        reason: String,
    },
    /// No connection could be made (DNS, refused, TLS handshake); the request was not sent.
    #[error("{method} {path}: cannot connect: {message}")]
    Connect {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Cause.
        message: String,
    },
    /// The request may have reached the server but no complete reply came back.
    #[error("{method} {path}: request failed: {message}")]
    Transport {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Cause.
        message: String,
    },
    /// No reply within the request timeout.
    #[error("{method} {path}: timed out after {timeout:?}")]
    Timeout {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// PVE answered with an error status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The reply was not the JSON we expected.
    #[error("{method} {path}: cannot decode reply: {message}")]
    Decode {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Cause.
        message: String,
    },
    /// Ticket login failed.
    #[error("login as {username} failed: {message}")]
    Login {
        /// The user (never the password).
        username: String,
        /// Cause.
        message: String,
    },
    /// A task ended with an error exit status.
    #[error("task {upid} failed: {exitstatus}{}", fmt_log_tail(.log_tail))]
    TaskFailed {
        /// The task.
        upid: String,
        /// PVE's exit status text (the error message).
        exitstatus: String,
        /// The last lines of the task log.
        log_tail: Vec<String>,
    },
    /// A task did not finish in time.
    #[error("task {upid} still running after {waited:?}")]
    TaskTimeout {
        /// The task.
        upid: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The guest agent answered with an error object instead of a result (Windows
    /// guests, old agents, commands disabled in the agent's configuration).
    #[error("guest agent of VM {vmid}: {class}: {desc}")]
    Agent {
        /// The VM.
        vmid: u32,
        /// The agent's error class (`Unsupported`, `CommandDisabled`, …).
        class: String,
        /// The agent's description.
        desc: String,
    },
    /// A guest-agent command did not exit in time.
    #[error("guest agent command (pid {pid}) in VM {vmid} still running after {waited:?}")]
    AgentExecTimeout {
        /// The VM.
        vmid: u32,
        /// Guest process id.
        pid: u64,
        /// How long we waited.
        waited: Duration,
    },
    /// A string that should be a UPID is not one.
    #[error(transparent)]
    Upid(#[from] UpidError),
    /// A property string could not be parsed or built.
    #[error(transparent)]
    PropertyString(#[from] PropError),
}

fn fmt_log_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n  task log (tail):");
    for l in lines {
        s.push_str("\n    ");
        s.push_str(l);
    }
    s
}

impl Error {
    /// HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api(e) => Some(e.status),
            _ => None,
        }
    }

    /// The API error, if this is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the object does not exist (PVE reports most of these as 500).
    pub fn is_not_found(&self) -> bool {
        self.api().is_some_and(|e| {
            e.status == 404
                || (e.status == 500
                    && (e.message.contains("does not exist") || e.message.contains("no such")))
        })
    }

    /// A lock timeout (`can't lock file … got timeout`): worth retrying a little later,
    /// by the caller, who knows whether the operation is idempotent.
    pub fn is_lock_timeout(&self) -> bool {
        self.api()
            .is_some_and(|e| e.status == 500 && e.message.contains("got timeout"))
    }

    /// Authentication failed (401).
    pub fn is_auth(&self) -> bool {
        self.status() == Some(401) || matches!(self, Self::Login { .. })
    }

    /// The request was guaranteed not to reach the server.
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::FingerprintMismatch { .. }
        )
    }
}
