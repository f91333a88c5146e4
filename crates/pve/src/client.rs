//! Transport: auth, TLS, retries, bounded concurrency and request counting.
//!
//! Design choices (behaviour.md §2, §3, §10):
//! - pveproxy has 3 workers, so more than 3 requests in flight only queue server-side
//!   and make lock timeouts likelier; a semaphore caps in-flight requests (default 3).
//! - Only GET is retried automatically. A POST/PUT/DELETE that timed out may have run;
//!   repeating it could create twice or delete the wrong thing.
//! - PVE uses 500 for almost every runtime error (missing VM, digest mismatch), which
//!   a retry cannot fix, so 500 is retried only for lock timeouts.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use crate::error::{ApiError, Error};
use crate::params::Params;
use crate::secret::Secret;
use crate::tls::{PinReport, TlsMode, build_rustls_config};

/// How to authenticate.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// API token (`user@realm!tokenid` + secret); stateless, preferred for automation.
    ApiToken {
        /// `user@realm!tokenid`.
        token_id: String,
        /// The token secret (a UUID).
        secret: Secret,
    },
    /// Username and password: the client logs in via `POST /access/ticket` and
    /// renews the ticket before its 2 h lifetime ends.
    Password {
        /// `user@realm`.
        username: String,
        /// The password.
        password: Secret,
    },
    /// An existing ticket and CSRF token (e.g. from an interactive TFA login).
    Ticket {
        /// `user@realm`.
        username: String,
        /// `PVE:user@realm:…` ticket.
        ticket: Secret,
        /// CSRF prevention token for writes.
        csrf_token: Secret,
    },
    /// No authentication: only PVE's few public calls work (e.g. `GET /access/domains`).
    None,
}

impl Credentials {
    /// API token credentials.
    pub fn api_token(token_id: impl Into<String>, secret: impl Into<Secret>) -> Self {
        Self::ApiToken {
            token_id: token_id.into(),
            secret: secret.into(),
        }
    }

    /// Password credentials (ticket auth).
    pub fn password(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self::Password {
            username: username.into(),
            password: password.into(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::ApiToken { .. } => "api-token",
            Self::Password { .. } => "password",
            Self::Ticket { .. } => "ticket",
            Self::None => "none",
        }
    }

    fn validate(&self) -> Result<(), Error> {
        match self {
            Self::ApiToken { token_id, secret } => {
                let valid_id = token_id
                    .split_once('@')
                    .and_then(|(_, rest)| rest.split_once('!'))
                    .is_some_and(|(realm, name)| !realm.is_empty() && !name.is_empty());
                if !valid_id {
                    return Err(Error::Config(format!(
                        "API token id '{token_id}' must look like user@realm!tokenid"
                    )));
                }
                if secret.is_empty() {
                    return Err(Error::Config("API token secret is empty".into()));
                }
                if secret.expose().contains(['\r', '\n']) {
                    return Err(Error::Config(
                        "API token secret contains a line break".into(),
                    ));
                }
            }
            Self::Password { username, password } => {
                if username.is_empty() || password.is_empty() {
                    return Err(Error::Config("username and password are required".into()));
                }
            }
            Self::Ticket { .. } | Self::None => {}
        }
        Ok(())
    }
}

/// Automatic retry of idempotent requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 disables retries).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub initial_backoff: Duration,
    /// Upper bound of the delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Everything needed to build a [`PveClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://host:8006` (with or without `/api2/json`).
    pub base_url: String,
    /// Authentication.
    pub credentials: Credentials,
    /// Certificate trust.
    pub tls: TlsMode,
    /// Maximum requests in flight (pveproxy has 3 workers by default).
    pub max_concurrency: usize,
    /// Retry policy for GET.
    pub retry: RetryPolicy,
    /// Per-request timeout (PVE holds sync calls up to ~10 s on locks).
    pub request_timeout: Duration,
    /// Timeout for multipart uploads (bodies are large; pveproxy copies them first).
    pub upload_timeout: Duration,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
}

impl ClientConfig {
    /// Defaults: system roots, 3 concurrent requests, 4 GET attempts, 60 s timeout.
    pub fn new(base_url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            base_url: base_url.into(),
            credentials,
            tls: TlsMode::default(),
            max_concurrency: 3,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(60),
            upload_timeout: Duration::from_secs(3600),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Set the TLS mode.
    pub fn tls(mut self, tls: TlsMode) -> Self {
        self.tls = tls;
        self
    }

    /// Set the concurrency bound (at least 1).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n;
        self
    }

    /// Set the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Set the per-request timeout.
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }
}

/// A full reply envelope, for callers that need `total` or `changes`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    /// The `data` member.
    pub data: Value,
    /// `total` on paged lists (task log, task list).
    pub total: Option<u64>,
    /// `changes` (pending host network diff).
    pub changes: Option<String>,
}

/// Counters for benchmarks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestStats {
    /// HTTP requests sent (every attempt, including logins and retries).
    pub requests: u64,
    /// Of those, automatic retries.
    pub retries: u64,
}

#[derive(Clone)]
struct TicketState {
    ticket: Secret,
    csrf: Secret,
    obtained: Instant,
}

/// Request body shapes.
pub(crate) enum Body {
    Params(Params),
    Multipart {
        content_type: String,
        bytes: Vec<u8>,
    },
}

struct Inner {
    http: reqwest::Client,
    api_base: String,
    credentials: Credentials,
    tls_desc: &'static str,
    pinned: Option<crate::tls::Fingerprint>,
    pin_report: Arc<PinReport>,
    ticket: Mutex<Option<TicketState>>,
    semaphore: Semaphore,
    max_concurrency: usize,
    requests: AtomicU64,
    retries: AtomicU64,
    retry: RetryPolicy,
    request_timeout: Duration,
    upload_timeout: Duration,
}

/// The Proxmox VE API client. Cheap to clone; clones share the connection pool,
/// ticket, concurrency bound and counters.
#[derive(Clone)]
pub struct PveClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for PveClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PveClient")
            .field("api_base", &self.inner.api_base)
            .field("auth", &self.inner.credentials.kind())
            .field("tls", &self.inner.tls_desc)
            .field("max_concurrency", &self.inner.max_concurrency)
            .finish_non_exhaustive()
    }
}

/// Tickets live 2 h; renew well before that.
const TICKET_RENEW_AFTER: Duration = Duration::from_secs(3600);

fn normalise_base(url: &str) -> Result<String, Error> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|e| Error::Config(format!("invalid URL '{trimmed}': {e}")))?;
    match parsed.scheme() {
        "https" => {}
        "http" => tracing::warn!("PVE URL uses plain http; credentials travel unencrypted"),
        other => {
            return Err(Error::Config(format!(
                "unsupported URL scheme '{other}' (use https://host:8006)"
            )));
        }
    }
    if parsed.host_str().is_none() {
        return Err(Error::Config(format!("URL '{trimmed}' has no host")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::Config(
            "credentials must not be embedded in the URL".into(),
        ));
    }
    if trimmed.ends_with("/api2/json") {
        Ok(trimmed.to_string())
    } else {
        Ok(format!("{trimmed}/api2/json"))
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn is_retryable(e: &Error) -> bool {
    match e {
        Error::Connect { .. } | Error::Transport { .. } | Error::Timeout { .. } => true,
        Error::Api(a) => {
            matches!(a.status, 502..=504 | 595 | 596)
                || (a.status == 500 && a.message.contains("got timeout"))
        }
        _ => false,
    }
}

impl PveClient {
    /// Build a client. Does not contact the server.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        config.credentials.validate()?;
        let api_base = normalise_base(&config.base_url)?;
        if config.max_concurrency == 0 {
            return Err(Error::Config("max_concurrency must be at least 1".into()));
        }
        let (tls_config, pin_report) = build_rustls_config(&config.tls)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config)
            .http1_only()
            // PVE never redirects; refusing keeps credentials on the configured host.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            // pveproxy closes idle connections after 5 s; do not reuse them later.
            .pool_idle_timeout(Duration::from_secs(4))
            .user_agent(concat!("labwright/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {}", error_chain(&e))))?;
        let (tls_desc, pinned) = match &config.tls {
            TlsMode::SystemRoots => ("system-roots", None),
            TlsMode::CaFile(_) | TlsMode::CaPem(_) => ("ca", None),
            TlsMode::Fingerprint(fp) => ("pinned-fingerprint", Some(*fp)),
            TlsMode::Insecure => ("insecure", None),
        };
        let ticket = match &config.credentials {
            Credentials::Ticket {
                ticket, csrf_token, ..
            } => Some(TicketState {
                ticket: ticket.clone(),
                csrf: csrf_token.clone(),
                obtained: Instant::now(),
            }),
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api_base,
                credentials: config.credentials,
                tls_desc,
                pinned,
                pin_report,
                ticket: Mutex::new(ticket),
                semaphore: Semaphore::new(config.max_concurrency),
                max_concurrency: config.max_concurrency,
                requests: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                retry: config.retry,
                request_timeout: config.request_timeout,
                upload_timeout: config.upload_timeout,
            }),
        })
    }

    /// `https://host:8006/api2/json`.
    pub fn api_base(&self) -> &str {
        &self.inner.api_base
    }

    /// Whether certificate verification is off (`--insecure`), so the CLI can warn
    /// on stderr even when no tracing subscriber is installed.
    pub fn is_insecure(&self) -> bool {
        self.inner.tls_desc == "insecure"
    }

    /// The configured concurrency bound.
    pub fn max_concurrency(&self) -> usize {
        self.inner.max_concurrency
    }

    /// Requests sent so far (every attempt).
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Requests and retries so far.
    pub fn stats(&self) -> RequestStats {
        RequestStats {
            requests: self.inner.requests.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
        }
    }

    /// Reset the counters (between benchmark phases).
    pub fn reset_stats(&self) {
        self.inner.requests.store(0, Ordering::Relaxed);
        self.inner.retries.store(0, Ordering::Relaxed);
    }

    /// Log in now (ticket auth) instead of on the first request; no-op for tokens.
    pub async fn login(&self) -> Result<(), Error> {
        if let Credentials::Password { .. } = self.inner.credentials {
            self.ticket(true).await?;
        }
        Ok(())
    }

    // ---- generic escape hatch -------------------------------------------------

    /// `GET path` and decode `data`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, params: Params) -> Result<T, Error> {
        self.call(Method::GET, path, params).await
    }

    /// `POST path` and decode `data`.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, params: Params) -> Result<T, Error> {
        self.call(Method::POST, path, params).await
    }

    /// `PUT path` and decode `data`.
    pub async fn put<T: DeserializeOwned>(&self, path: &str, params: Params) -> Result<T, Error> {
        self.call(Method::PUT, path, params).await
    }

    /// `DELETE path` and decode `data`.
    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        params: Params,
    ) -> Result<T, Error> {
        self.call(Method::DELETE, path, params).await
    }

    /// Any method; decode `data` into `T` (`()` for `null`, `Value` for anything).
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: Params,
    ) -> Result<T, Error> {
        let resp = self.request(method.clone(), path, params).await?;
        decode(&method, path, resp.data)
    }

    /// Any method; return the whole envelope.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        params: Params,
    ) -> Result<ApiResponse, Error> {
        self.send(method, path, Body::Params(params)).await
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<ApiResponse, Error> {
        let idempotent = method == Method::GET;
        let policy = self.inner.retry;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let result = self.attempt(&method, path, &body).await;
            match result {
                Err(e) if idempotent && attempt < policy.max_attempts && is_retryable(&e) => {
                    let delay = policy.backoff(attempt);
                    tracing::debug!(%method, path, attempt, ?delay, error = %e, "retrying idempotent request");
                    self.inner.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    if e.status() == Some(401) {
                        // A stale ticket: force a fresh login on the next call.
                        if let Credentials::Password { .. } = self.inner.credentials {
                            *self.inner.ticket.lock().await = None;
                        }
                    }
                    return Err(e);
                }
                Ok(r) => return Ok(r),
            }
        }
    }

    async fn auth_headers(&self, method: &Method) -> Result<HeaderMap, Error> {
        let mut headers = HeaderMap::new();
        let sensitive = |s: String| -> Result<HeaderValue, Error> {
            let mut v = HeaderValue::from_str(&s)
                .map_err(|_| Error::Config("credential contains invalid characters".into()))?;
            v.set_sensitive(true);
            Ok(v)
        };
        match &self.inner.credentials {
            Credentials::None => {}
            Credentials::ApiToken { token_id, secret } => {
                headers.insert(
                    reqwest::header::AUTHORIZATION,
                    sensitive(format!("PVEAPIToken={token_id}={}", secret.expose()))?,
                );
            }
            Credentials::Password { .. } | Credentials::Ticket { .. } => {
                let t = self.ticket(false).await?;
                headers.insert(
                    reqwest::header::COOKIE,
                    sensitive(format!(
                        "PVEAuthCookie={}",
                        urlencoding::encode(t.ticket.expose())
                    ))?,
                );
                if *method != Method::GET {
                    headers.insert(
                        "CSRFPreventionToken",
                        sensitive(t.csrf.expose().to_string())?,
                    );
                }
            }
        }
        Ok(headers)
    }

    async fn ticket(&self, force: bool) -> Result<TicketState, Error> {
        let mut guard = self.inner.ticket.lock().await;
        if let Some(t) = guard.as_ref()
            && !force
            && (t.obtained.elapsed() < TICKET_RENEW_AFTER
                || !matches!(self.inner.credentials, Credentials::Password { .. }))
        {
            return Ok(t.clone());
        }
        let Credentials::Password { username, password } = &self.inner.credentials else {
            return guard
                .clone()
                .ok_or_else(|| Error::Config("no ticket available".into()));
        };
        let params = Params::new()
            .set("username", username.as_str())
            .set("password", password.expose());
        let resp = self
            .exchange(
                &Method::POST,
                "/access/ticket",
                &Body::Params(params),
                HeaderMap::new(),
            )
            .await
            .map_err(|e| match e {
                // Transport and TLS errors keep their own variant (pin mismatch etc.).
                Error::Api(a) => Error::Login {
                    username: username.clone(),
                    message: format!("HTTP {}: {}", a.status, a.message),
                },
                other => other,
            })?;
        let ticket = resp.data.get("ticket").and_then(Value::as_str);
        let csrf = resp.data.get("CSRFPreventionToken").and_then(Value::as_str);
        if resp
            .data
            .get("NeedTFA")
            .is_some_and(|v| crate::de::value_to_bool(v) == Some(true))
        {
            return Err(Error::Login {
                username: username.clone(),
                message: "two-factor authentication required; use an API token".into(),
            });
        }
        let (Some(ticket), Some(csrf)) = (ticket, csrf) else {
            return Err(Error::Login {
                username: username.clone(),
                message: "reply lacks ticket or CSRFPreventionToken".into(),
            });
        };
        let state = TicketState {
            ticket: Secret::new(ticket),
            csrf: Secret::new(csrf),
            obtained: Instant::now(),
        };
        *guard = Some(state.clone());
        Ok(state)
    }

    /// Authenticate, then one HTTP exchange.
    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        body: &Body,
    ) -> Result<ApiResponse, Error> {
        // Auth first: a ticket login needs its own permit, so get it before ours.
        let headers = self.auth_headers(method).await?;
        self.exchange(method, path, body, headers).await
    }

    /// One HTTP exchange under the concurrency bound.
    async fn exchange(
        &self,
        method: &Method,
        path: &str,
        body: &Body,
        headers: HeaderMap,
    ) -> Result<ApiResponse, Error> {
        let m = method.as_str();
        let timeout = match body {
            Body::Multipart { .. } => self.inner.upload_timeout,
            Body::Params(_) => self.inner.request_timeout,
        };
        let url = if path.starts_with('/') {
            format!("{}{path}", self.inner.api_base)
        } else {
            format!("{}/{path}", self.inner.api_base)
        };
        let mut rb = self
            .inner
            .http
            .request(method.clone(), &url)
            .headers(headers)
            .timeout(timeout);
        rb = match body {
            Body::Params(p) if *method == Method::GET || *method == Method::DELETE => {
                if p.is_empty() {
                    rb
                } else {
                    rb.query(p.pairs())
                }
            }
            Body::Params(p) => rb.form(p.pairs()),
            Body::Multipart {
                content_type,
                bytes,
            } => rb
                .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                .body(bytes.clone()),
        };
        let _permit = self
            .inner
            .semaphore
            .acquire()
            .await
            .map_err(|_| Error::Config("client is shutting down".into()))?;
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let resp = rb
            .send()
            .await
            .map_err(|e| self.send_error(e, m, path, timeout))?;
        let status = resp.status();
        tracing::debug!(
            method = m,
            path,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "PVE request"
        );
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let bytes = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                Error::Timeout {
                    method: m.into(),
                    path: path.into(),
                    timeout,
                }
            } else {
                Error::Transport {
                    method: m.into(),
                    path: path.into(),
                    message: error_chain(&e.without_url()),
                }
            }
        })?;
        let json: Option<Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        if status.is_success() {
            let Some(Value::Object(mut obj)) = json else {
                return Err(Error::Decode {
                    method: m.into(),
                    path: path.into(),
                    message: "reply is not a JSON object with 'data'".into(),
                });
            };
            return Ok(ApiResponse {
                data: obj.remove("data").unwrap_or(Value::Null),
                total: obj.get("total").and_then(crate::de::value_to_u64),
                changes: obj
                    .get("changes")
                    .and_then(|v| v.as_str())
                    .map(String::from),
            });
        }
        let mut message = json
            .as_ref()
            .and_then(|j| j.get("message"))
            .and_then(Value::as_str)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| reason.map(|r| r.trim().to_string()))
            .or_else(|| status.canonical_reason().map(String::from))
            .unwrap_or_default();
        let errors: std::collections::BTreeMap<String, String> = json
            .as_ref()
            .and_then(|j| j.get("errors"))
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        let text = crate::de::value_to_string(v).unwrap_or_else(|| v.to_string());
                        (k.clone(), text.trim_end().to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        if message.is_empty() && !errors.is_empty() {
            message = "Parameter verification failed.".into();
        }
        Err(Error::Api(Box::new(ApiError {
            method: m.into(),
            path: path.into(),
            status: status.as_u16(),
            message,
            errors,
        })))
    }

    fn send_error(&self, e: reqwest::Error, method: &str, path: &str, timeout: Duration) -> Error {
        if let Some(expected) = self.inner.pinned
            && e.is_connect()
        {
            // Prefer the typed error from the chain; fall back to what the verifier
            // recorded if some layer flattened it to text.
            let got = crate::tls::find_pin_mismatch(&e)
                .map(|m| m.got)
                .or_else(|| {
                    error_chain(&e)
                        .contains("PinMismatch")
                        .then(|| {
                            self.inner
                                .pin_report
                                .last_mismatch
                                .lock()
                                .ok()
                                .and_then(|g| *g)
                        })
                        .flatten()
                });
            if let Some(got) = got {
                return Error::FingerprintMismatch {
                    method: method.into(),
                    path: path.into(),
                    expected,
                    got,
                };
            }
        }
        if e.is_timeout() {
            return Error::Timeout {
                method: method.into(),
                path: path.into(),
                timeout,
            };
        }
        if let Some(reason) = crate::tls::find_certificate_error(&e) {
            return Error::CertificateRejected {
                method: method.into(),
                path: path.into(),
                reason,
            };
        }
        let is_connect = e.is_connect();
        let message = error_chain(&e.without_url());
        if is_connect {
            Error::Connect {
                method: method.into(),
                path: path.into(),
                message,
            }
        } else {
            Error::Transport {
                method: method.into(),
                path: path.into(),
                message,
            }
        }
    }
}

/// Fetch the SHA-256 fingerprint of the server's leaf certificate without trusting
/// it, for a trust-on-first-use prompt ("pin AA:BB:…?"). Sends one unauthenticated
/// `GET /version`; the reply status does not matter. Show the result to the user and
/// let them compare it with `pvenode cert info` before pinning it.
pub async fn probe_fingerprint(
    base_url: &str,
    timeout: Duration,
) -> Result<crate::tls::Fingerprint, Error> {
    let api_base = normalise_base(base_url)?;
    if !api_base.starts_with("https://") {
        return Err(Error::Config(
            "fingerprint probing needs an https:// URL".into(),
        ));
    }
    let (tls, seen) = crate::tls::recording_config()?;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .timeout(timeout)
        .build()
        .map_err(|e| Error::Config(format!("HTTP client: {}", error_chain(&e))))?;
    let path = "/version";
    let result = http.get(format!("{api_base}{path}")).send().await;
    if let Some(fp) = seen.lock().ok().and_then(|g| *g) {
        return Ok(fp);
    }
    Err(match result {
        Err(e) => Error::Connect {
            method: "GET".into(),
            path: path.into(),
            message: error_chain(&e.without_url()),
        },
        Ok(_) => Error::Tls("server presented no certificate".into()),
    })
}

/// Decode `data` into `T`, naming the call on failure.
pub(crate) fn decode<T: DeserializeOwned>(
    method: &Method,
    path: &str,
    data: Value,
) -> Result<T, Error> {
    serde_json::from_value(data).map_err(|e| Error::Decode {
        method: method.as_str().into(),
        path: path.into(),
        message: e.to_string(),
    })
}

/// Percent-encode one path segment (ipset CIDRs contain `/`, volumes contain `:`).
pub(crate) fn seg(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_forms() {
        assert_eq!(
            normalise_base("https://pve:8006").ok().as_deref(),
            Some("https://pve:8006/api2/json")
        );
        assert_eq!(
            normalise_base("https://pve:8006/api2/json/")
                .ok()
                .as_deref(),
            Some("https://pve:8006/api2/json")
        );
        assert!(normalise_base("ftp://pve").is_err());
        assert!(normalise_base("https://root:pw@pve:8006").is_err());
        assert!(normalise_base("not a url").is_err());
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(4), Duration::from_millis(500));
        assert_eq!(p.backoff(60), Duration::from_millis(500));
    }

    #[test]
    fn token_validation() {
        assert!(
            Credentials::api_token("root@pam!ci", "x")
                .validate()
                .is_ok()
        );
        assert!(Credentials::api_token("root@pam", "x").validate().is_err());
        assert!(
            Credentials::api_token("root@pam!ci", "")
                .validate()
                .is_err()
        );
    }
}
