//! HTTPS transport and the request pipeline of pveproxy/pvedaemon: parse, authenticate,
//! route through the schema tree, check privileges, validate, dispatch, and wrap the
//! result in PVE's envelope with PVE's status line.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::auth::{self, AuthId};
use crate::schema::{ApiSchema, PVal, Params};
use crate::state::{Acl, State, Token, User};
use crate::tls::CertSet;
use crate::util::now;
use crate::{Credentials, SimConfig, SimError, SimHandle};

/// Shared simulator internals.
pub struct Inner {
    pub cfg: SimConfig,
    pub state: Mutex<State>,
    pub client_addr: Mutex<IpAddr>,
    pub workers: Semaphore,
    pub rng: Mutex<ChaCha8Rng>,
    pub ticket_key: String,
    pub flocks: Mutex<HashMap<String, u64>>,
    pub fingerprint: String,
    /// `certificates/info` entries: the cluster CA, then the served node certificate.
    pub cert_info: Vec<Value>,
    pub state_file: Option<PathBuf>,
    pub persist_lock: Mutex<()>,
    /// Fault injection in force (starts as `cfg.faults`, changed by `set_faults`).
    pub faults: Mutex<crate::Faults>,
    /// The router guest's console mode and boot fault (`set_router_sim`, environment).
    pub router: Mutex<crate::RouterSim>,
}

impl Inner {
    /// Runs `f` with the state locked; a poisoned lock is recovered (no request may panic
    /// the simulator, and a half-applied change is still better than no simulator).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut g = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // The node's transient timers (labwright's network dead-man) run on their own.
        crate::host::deadman::fire_due(&mut g, self.cfg.time_scale);
        f(&mut g)
    }

    /// The router guest's settings in force.
    pub fn router_sim(&self) -> crate::RouterSim {
        match self.router.lock() {
            Ok(r) => *r,
            Err(p) => *p.into_inner(),
        }
    }

    /// The faults in force.
    pub fn faults(&self) -> crate::Faults {
        match self.faults.lock() {
            Ok(f) => f.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn set_faults(&self, f: crate::Faults) {
        match self.faults.lock() {
            Ok(mut g) => *g = f,
            Err(p) => *p.into_inner() = f,
        }
    }

    /// Random number in [0,1) from the seeded generator.
    pub fn roll(&self) -> f64 {
        match self.rng.lock() {
            Ok(mut r) => r.random::<f64>(),
            Err(_) => 1.0,
        }
    }

    /// Scales a nominal duration (seconds) by the time scale.
    pub fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs * self.cfg.time_scale).max(0.0))
    }

    /// Writes the state file (atomically) when a state folder is configured.
    ///
    /// The file holds token secrets and passwords, so it is created with mode 0600, and
    /// writers are serialised so a rename never publishes a half-written file.
    pub fn persist(&self) {
        let Some(path) = &self.state_file else { return };
        let _guard = match self.persist_lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let text = self.with_state(|st| serde_json::to_string(st).unwrap_or_default());
        let tmp = path.with_extension("json.tmp");
        if write_private(&tmp, &text).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }

    /// Acquires a named flock, waiting up to `timeout` (nominal seconds).
    pub async fn flock(&self, key: &str, timeout: f64) -> Result<FlockGuard<'_>, ()> {
        let deadline = tokio::time::Instant::now() + self.scaled(timeout);
        let ticket: u64 = match self.rng.lock() {
            Ok(mut r) => r.random(),
            Err(_) => 1,
        };
        loop {
            {
                let mut f = match self.flocks.lock() {
                    Ok(f) => f,
                    Err(p) => p.into_inner(),
                };
                if !f.contains_key(key) {
                    f.insert(key.to_string(), ticket);
                    return Ok(FlockGuard {
                        inner: self,
                        key: key.to_string(),
                    });
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(());
            }
            tokio::time::sleep(self.scaled(0.05).max(Duration::from_millis(1))).await;
        }
    }
}

/// Releases a flock on drop.
pub struct FlockGuard<'a> {
    inner: &'a Inner,
    key: String,
}

impl Drop for FlockGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut f) = self.inner.flocks.lock() {
            f.remove(&self.key);
        }
    }
}

/// An API error as PVE reports it.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub errors: Option<Map<String, Value>>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            errors: None,
        }
    }
    /// A plain `die` in a handler.
    pub fn e500(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }
    /// `raise_param_exc` with one key.
    pub fn param(key: &str, msg: impl Into<String>) -> Self {
        let mut m = Map::new();
        m.insert(key.to_string(), Value::String(msg.into()));
        ApiError {
            status: 400,
            message: "Parameter verification failed.".into(),
            errors: Some(m),
        }
    }
    pub fn params(errors: crate::schema::Errors) -> Self {
        ApiError {
            status: 400,
            message: "Parameter verification failed.".into(),
            errors: Some(
                errors
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ),
        }
    }
    pub fn e403(message: impl Into<String>) -> Self {
        Self::new(403, message)
    }
}

impl From<String> for ApiError {
    fn from(s: String) -> Self {
        ApiError::e500(s)
    }
}

/// A successful reply: `data` plus optional top-level keys (`total`, `changes`).
pub struct Reply {
    pub data: Value,
    pub extra: Vec<(String, Value)>,
}

impl From<Value> for Reply {
    fn from(data: Value) -> Self {
        Reply {
            data,
            extra: vec![],
        }
    }
}

/// The file part of an upload: what the simulator keeps of it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub size: u64,
    /// `#cloud-config` text found in the file (a NoCloud seed ISO stores it verbatim).
    pub user_data: Option<String>,
    /// An OPNsense `config.xml` found in the file (a router seed ISO stores it verbatim).
    pub router_config: Option<String>,
}

/// One parsed and validated request, as handlers see it.
pub struct Req {
    pub method: String,
    pub template: String,
    pub params: Params,
    pub who: AuthId,
    /// For uploads: file name and size of the multipart file part.
    pub upload: Option<Upload>,
}

impl Req {
    pub fn str(&self, k: &str) -> Option<String> {
        self.params.get(k).and_then(PVal::as_str)
    }
    pub fn s(&self, k: &str) -> String {
        self.str(k).unwrap_or_default()
    }
    pub fn u32(&self, k: &str) -> u32 {
        self.str(k).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }
    pub fn i64(&self, k: &str) -> Option<i64> {
        self.str(k).and_then(|v| v.trim().parse().ok())
    }
    pub fn flag(&self, k: &str) -> bool {
        self.str(k).is_some_and(|v| v == "1")
    }
    pub fn node(&self) -> String {
        self.s("node")
    }
    pub fn vmid(&self) -> u32 {
        self.u32("vmid")
    }
}

/// Creates a file readable by its owner only (0600).
pub fn write_private(path: &Path, content: &str) -> io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(content.as_bytes())
}

/// Refuses connections that the simulated node's firewall would drop.
#[derive(Clone)]
struct FwAcceptor {
    inner: Arc<Inner>,
}

impl<S: Send + 'static> Accept<TcpStream, S> for FwAcceptor {
    type Stream = TcpStream;
    type Service = S;
    type Future = std::future::Ready<io::Result<(TcpStream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let addr = self.inner.client_addr.lock().map(|a| *a).ok();
        let allowed = match addr {
            Some(a) => self.inner.with_state(|st| {
                crate::fweval::host_allows(st, a, 8006)
                    && st
                        .nodes
                        .values()
                        .next()
                        .is_none_or(crate::api::network::mgmt_reachable)
            }),
            None => true,
        };
        if allowed {
            std::future::ready(Ok((stream, service)))
        } else {
            tracing::info!(client = ?addr, "simulated firewall dropped connection to 8006");
            std::future::ready(Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "dropped by simulated PVE firewall",
            )))
        }
    }
}

fn ensure_users(st: &mut State, rng: &mut ChaCha8Rng) {
    let mut uuid = || {
        uuid::Builder::from_random_bytes(rng.random())
            .into_uuid()
            .to_string()
    };
    if !st.users.contains_key("root@pam") {
        let mut root = User {
            password: uuid(),
            enable: true,
            ..Default::default()
        };
        root.tokens.insert(
            "labwright".into(),
            Token {
                secret: uuid(),
                privsep: false,
                comment: Some("labwright".into()),
                expire: 0,
            },
        );
        st.users.insert("root@pam".into(), root);
    }
    if !st.users.contains_key("auditor@pve") {
        let mut aud = User {
            password: uuid(),
            enable: true,
            ..Default::default()
        };
        aud.tokens.insert(
            "readonly".into(),
            Token {
                secret: uuid(),
                privsep: true,
                comment: Some("read-only".into()),
                expire: 0,
            },
        );
        st.users.insert("auditor@pve".into(), aud);
        for ugid in ["auditor@pve", "auditor@pve!readonly"] {
            st.acls.push(Acl {
                path: "/".into(),
                ugid: ugid.into(),
                role: "PVEAuditor".into(),
                propagate: true,
                group: false,
            });
        }
    }
}

pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let state_file = match &cfg.state_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| SimError::State {
                path: d.clone(),
                source: e,
            })?;
            Some(d.join("state.json"))
        }
        None => None,
    };
    let mut st = match &state_file {
        Some(f) if f.exists() && !cfg.reset => {
            let text = std::fs::read_to_string(f).map_err(|e| SimError::State {
                path: f.clone(),
                source: e,
            })?;
            let mut st: State = serde_json::from_str(&text).map_err(|e| SimError::StateFormat {
                path: f.clone(),
                source: e,
            })?;
            crate::tasks::recover_after_restart(&mut st);
            st
        }
        _ => State::scenario(cfg.scenario, now()),
    };
    ensure_users(&mut st, &mut rng);
    let (node, ip) = st
        .nodes
        .values()
        .next()
        .map(|n| (n.name.clone(), n.ip.clone()))
        .unwrap_or_else(|| ("proxmox".into(), "192.168.1.10".into()));
    if cfg.reset
        && let Some(d) = &cfg.state_dir
    {
        for f in ["pve-root-ca.pem", "pve-ssl.pem", "pve-ssl.key"] {
            let _ = std::fs::remove_file(d.join(f));
        }
    }
    let certs = CertSet::load_or_generate(cfg.state_dir.as_deref(), &node, &ip)?;
    let fingerprint = certs.fingerprint();
    let tls = RustlsConfig::from_config(certs.server_config()?);

    let listener = std::net::TcpListener::bind(cfg.listen).map_err(|e| SimError::Bind {
        addr: cfg.listen,
        source: e,
    })?;
    listener.set_nonblocking(true).map_err(|e| SimError::Bind {
        addr: cfg.listen,
        source: e,
    })?;
    let addr = listener.local_addr().map_err(|e| SimError::Bind {
        addr: cfg.listen,
        source: e,
    })?;

    let root = st.users.get("root@pam").cloned().unwrap_or_default();
    let aud = st.users.get("auditor@pve").cloned().unwrap_or_default();
    let creds = Credentials {
        url: format!("https://{addr}"),
        node: node.clone(),
        fingerprint: fingerprint.clone(),
        token_id: "root@pam!labwright".into(),
        token_secret: root
            .tokens
            .get("labwright")
            .map(|t| t.secret.clone())
            .unwrap_or_default(),
        readonly_token_id: "auditor@pve!readonly".into(),
        readonly_token_secret: aud
            .tokens
            .get("readonly")
            .map(|t| t.secret.clone())
            .unwrap_or_default(),
        root_password: root.password.clone(),
        ca_pem: certs.ca_pem.clone(),
        ssh_port: 0,
        ssh_user: "root".into(),
        ssh_host_key: String::new(),
        ssh_client_key: String::new(),
        ssh_known_hosts: String::new(),
    };
    let ticket_key = uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string();
    let router = crate::RouterSim::from_env().map_err(SimError::Config)?;
    let inner = Arc::new(Inner {
        workers: Semaphore::new(cfg.workers.max(1)),
        client_addr: Mutex::new(cfg.client_addr),
        state: Mutex::new(st),
        rng: Mutex::new(rng),
        ticket_key,
        flocks: Mutex::new(HashMap::new()),
        fingerprint,
        cert_info: [
            (certs.ca_pem.as_str(), "pve-root-ca.pem"),
            (certs.leaf_pem.as_str(), "pve-ssl.pem"),
        ]
        .iter()
        .filter_map(|(pem, f)| crate::tls::describe(pem, f))
        .collect(),
        state_file,
        persist_lock: Mutex::new(()),
        faults: Mutex::new(cfg.faults.clone()),
        router: Mutex::new(router),
        cfg,
    });
    inner.persist();
    // The SSH endpoint: keys in the state folder, or in a private temporary folder.
    let (key_dir, key_tmp) = match &inner.cfg.state_dir {
        // Absolute: ssh is run from wherever the reader of credentials.json is.
        Some(d) => (std::path::absolute(d).unwrap_or_else(|_| d.clone()), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("labwright-sim-ssh-")
                .tempdir()
                .map_err(|e| SimError::State {
                    path: std::env::temp_dir(),
                    source: e,
                })?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let keys = crate::ssh::load_or_generate(&key_dir, inner.cfg.reset)?;
    let ssh = crate::ssh::start(inner.clone(), &keys)?;
    let mut creds = creds;
    creds.ssh_port = ssh.addr.port();
    creds.ssh_host_key = crate::ssh::host_key_line(&keys.host);
    creds.ssh_client_key = keys.client_path.display().to_string();
    creds.ssh_known_hosts = crate::ssh::write_known_hosts(&key_dir, ssh.addr, &creds.ssh_host_key)?
        .display()
        .to_string();
    let credentials_path = match &inner.cfg.state_dir {
        Some(d) => {
            let p = d.join("credentials.json");
            let text = serde_json::to_string_pretty(&creds).unwrap_or_default();
            write_private(&p, &text).map_err(|e| SimError::State {
                path: p.clone(),
                source: e,
            })?;
            Some(p)
        }
        None => None,
    };

    let app = axum::Router::new()
        .fallback(handle)
        .with_state(inner.clone());
    let handle_srv = axum_server::Handle::new();
    let acceptor = RustlsAcceptor::new(tls).acceptor(FwAcceptor {
        inner: inner.clone(),
    });
    let server = axum_server::from_tcp(listener)
        .map_err(|e| SimError::Bind { addr, source: e })?
        .acceptor(acceptor)
        .http1_only()
        .handle(handle_srv.clone());
    let join = tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!("simulator server stopped: {e}");
        }
    });
    tracing::info!(url = %creds.url, fingerprint = %creds.fingerprint, "PVE simulator listening");
    Ok(SimHandle {
        inner,
        addr,
        creds,
        server: handle_srv,
        join: Mutex::new(Some(join)),
        credentials_path,
        ssh: Mutex::new(Some(ssh)),
        key_dir: Mutex::new(key_tmp),
    })
}

/// Builds a reply with PVE's headers and reason phrase.
fn respond(status: u16, reason: &str, body: Option<Value>) -> Response {
    let mut resp = Response::new(match body {
        Some(b) => Body::from(serde_json::to_vec(&b).unwrap_or_default()),
        None => Body::empty(),
    });
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    h.insert(
        header::SERVER,
        HeaderValue::from_static("pve-api-daemon/3.0"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=0"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::EXPIRES,
        HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
    );
    if status >= 400 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let first = reason.lines().next().unwrap_or("").trim_end();
    let clean: String = first.chars().filter(|c| !c.is_control()).collect();
    if let Ok(rp) = hyper::ext::ReasonPhrase::try_from(clean.into_bytes()) {
        resp.extensions_mut().insert(rp);
    }
    resp
}

fn error_response(e: ApiError) -> Response {
    let mut msg = e.message.clone();
    if !msg.ends_with('\n') {
        msg.push('\n');
    }
    let mut body = json!({"data": null, "message": msg});
    if let Some(errs) = e.errors {
        body["errors"] = Value::Object(errs);
    }
    respond(e.status, &e.message, Some(body))
}

fn ok_response(r: Reply) -> Response {
    let mut body = json!({"data": r.data});
    for (k, v) in r.extra {
        body[k] = v;
    }
    respond(200, "OK", Some(body))
}

/// A response whose body fails: hyper cuts the connection mid-reply.
fn dropped_response() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, io::Error>(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "fault: dropped",
        ))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

/// Decodes `application/x-www-form-urlencoded` the way pve-http-server does.
pub fn parse_form(body: &str, out: &mut Params) {
    for pair in body.split(['&', ';']) {
        if pair.is_empty() {
            continue;
        }
        let mut it = pair.split('=');
        let k = it.next().unwrap_or("");
        let v = it.next().unwrap_or("");
        let dec = |s: &str| {
            let s = s.replace('+', " ");
            urlencoding::decode(&s).map(|c| c.into_owned()).unwrap_or(s)
        };
        let (k, v) = (dec(k), dec(v));
        match out.get_mut(&k) {
            Some(PVal::Arr(a)) => a.push(PVal::Str(v)),
            Some(prev) => {
                let p = prev.clone();
                *prev = PVal::Arr(vec![p, PVal::Str(v)]);
            }
            None => {
                out.insert(k, PVal::Str(v));
            }
        }
    }
}

/// A minimal multipart/form-data reader for uploads: text fields and one file part.
fn parse_multipart(body: &[u8], ctype: &str, out: &mut Params) -> Option<Upload> {
    let boundary = ctype.split("boundary=").nth(1)?.trim_matches('"');
    let delim = format!("--{boundary}");
    let mut file = None;
    let d = delim.as_bytes();
    let mut pos = 0;
    let mut starts = vec![];
    while let Some(i) = find(&body[pos..], d) {
        starts.push(pos + i);
        pos += i + d.len();
    }
    for w in starts.windows(2) {
        let part = &body[w[0] + d.len()..w[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let Some(hend) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let headers = String::from_utf8_lossy(&part[..hend]).to_string();
        let mut content = &part[hend + 4..];
        content = content.strip_suffix(b"\r\n").unwrap_or(content);
        let name = headers
            .split("name=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())?;
        if let Some(fname) = headers
            .split("filename=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        {
            file = Some(Upload {
                size: content.len() as u64,
                user_data: find_cloud_config(content),
                router_config: crate::opnsense::find_config(content),
            });
            if name != "filename" {
                out.insert("filename".into(), PVal::Str(fname.to_string()));
            } else {
                out.insert(name.into(), PVal::Str(fname.to_string()));
            }
        } else {
            out.insert(
                name.into(),
                PVal::Str(String::from_utf8_lossy(content).into_owned()),
            );
        }
    }
    file
}

/// The `#cloud-config` document inside an image: ISO 9660 stores file data verbatim and
/// pads sectors with zeros, so the text runs from the marker to the first NUL.
fn find_cloud_config(data: &[u8]) -> Option<String> {
    let start = find(data, b"#cloud-config")?;
    let rest = &data[start..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    String::from_utf8(rest[..end].to_vec()).ok()
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    h.windows(n.len()).position(|w| w == n)
}

fn cookie_ticket(headers: &HeaderMap) -> Option<String> {
    for c in headers.get_all(header::COOKIE) {
        let Ok(s) = c.to_str() else { continue };
        for part in s.split(';') {
            if let Some(v) = part.trim().strip_prefix("PVEAuthCookie=") {
                return urlencoding::decode(v).ok().map(|x| x.into_owned());
            }
        }
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.strip_prefix("PVEAuthCookie="))
        .map(String::from)
}

enum AuthOutcome {
    Ok(AuthId),
    Anonymous,
    Fail(&'static str),
}

fn authenticate(inner: &Inner, headers: &HeaderMap, method: &str, is_upload: bool) -> AuthOutcome {
    let now = now();
    if let Some(h) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        && h.starts_with("PVEAPIToken")
    {
        let Some((user, token, secret)) = auth::parse_token_header(h) else {
            return AuthOutcome::Fail("Authentication failed!");
        };
        let ok = inner.with_state(|st| {
            st.users.get(&user).is_some_and(|u| {
                u.enable
                    && u.tokens
                        .get(&token)
                        .is_some_and(|t| t.secret == secret && (t.expire == 0 || t.expire > now))
            })
        });
        return if ok {
            AuthOutcome::Ok(AuthId {
                user,
                token: Some(token),
            })
        } else {
            AuthOutcome::Fail("Authentication failed!")
        };
    }
    let Some(ticket) = cookie_ticket(headers) else {
        return AuthOutcome::Anonymous;
    };
    let Some(user) = auth::verify_ticket(&inner.ticket_key, &ticket, now) else {
        return AuthOutcome::Fail("Authentication failed!");
    };
    if method != "GET" && !is_upload {
        let csrf = headers
            .get("CSRFPreventionToken")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !auth::verify_csrf(&inner.ticket_key, csrf, &user, now) {
            return AuthOutcome::Fail("Permission denied - invalid csrf token");
        }
    }
    AuthOutcome::Ok(AuthId { user, token: None })
}

fn fault_applies(class: &str, method: &str, path: &str) -> bool {
    match class {
        "all" | "" => true,
        "read" => method == "GET",
        "write" => method != "GET",
        "qemu" => path.contains("/qemu"),
        "storage" => path.contains("/storage"),
        "network" => path.contains("/network"),
        "firewall" => path.contains("/firewall"),
        "tasks" => path.contains("/tasks"),
        other => path.contains(other),
    }
}

async fn handle(AxState(inner): AxState<Arc<Inner>>, req: Request) -> Response {
    let started = std::time::Instant::now();
    let line = format!("{} {}", req.method(), req.uri().path());
    let resp = handle_inner(inner, req).await;
    // One line per request (`labwright sim -v`); the path only, never the body.
    tracing::info!(
        target: "labwright_sim::request",
        "{line} → {} ({} ms)",
        resp.status().as_u16(),
        started.elapsed().as_millis()
    );
    resp
}

async fn handle_inner(inner: Arc<Inner>, req: Request) -> Response {
    let _permit = inner.workers.acquire().await;
    if inner.cfg.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(inner.cfg.latency_ms)).await;
    }
    let resp = process(&inner, req).await;
    match resp {
        Ok(r) => r,
        Err(e) => {
            if e.status == 401 {
                tokio::time::sleep(Duration::from_secs_f64(
                    (inner.cfg.auth_fail_delay_secs * inner.cfg.time_scale).max(0.0),
                ))
                .await;
                // A failed login reports itself in the body; other 401s have none.
                if e.message == "authentication failure" {
                    return error_response(e);
                }
                return respond(401, &e.message, None);
            }
            error_response(e)
        }
    }
}

const BODY_LIMIT: usize = 512 * 1024;
const UPLOAD_LIMIT: usize = 256 * 1024 * 1024;

async fn process(inner: &Arc<Inner>, req: Request) -> Result<Response, ApiError> {
    let method = req.method().as_str().to_string();
    if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "DELETE") {
        return Err(ApiError::new(
            501,
            format!("method '{method}' not available"),
        ));
    }
    let raw_path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let Some(rel) = raw_path.strip_prefix("/api2/json") else {
        return Err(ApiError::new(501, "no such uri"));
    };
    let segments: Vec<String> = rel
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            urlencoding::decode(s)
                .map(|c| c.into_owned())
                .unwrap_or_else(|_| s.to_string())
        })
        .collect();
    let rel_path = format!("/{}", segments.join("/"));
    let is_upload = method == "POST" && rel_path.ends_with("/upload");
    let limit = if is_upload { UPLOAD_LIMIT } else { BODY_LIMIT };
    let body = match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(_) => return Err(ApiError::new(501, "for data too large")),
    };
    if (method == "GET" || method == "DELETE") && !body.is_empty() {
        return Err(ApiError::new(
            501,
            format!("Unexpected content for method '{method}'"),
        ));
    }

    // Authentication (a few calls are open to the world).
    let open = matches!(
        (method.as_str(), rel_path.as_str()),
        ("GET" | "POST", "/access/ticket") | ("GET", "/access/domains")
    );
    let who = match authenticate(inner, &headers, &method, is_upload) {
        AuthOutcome::Ok(w) => Some(w),
        AuthOutcome::Anonymous if open => None,
        AuthOutcome::Anonymous => return Err(ApiError::new(401, "No ticket")),
        AuthOutcome::Fail(m) => {
            if open && rel_path == "/access/ticket" {
                None
            } else {
                return Err(ApiError::new(401, m));
            }
        }
    };

    // Routing through the schema tree.
    let schema = ApiSchema::get();
    let not_impl = || ApiError::new(501, format!("Method '{method} {rel_path}' not implemented"));
    let Some(rm) = schema.route(&segments) else {
        return Err(not_impl());
    };
    let Some(info) = rm.node.methods.get(&method) else {
        return Err(not_impl());
    };
    let template = rm.node.path.clone();
    if !crate::api::is_implemented(&method, &template) {
        return Err(ApiError::new(
            501,
            format!(
                "Method '{method} {rel_path}' not implemented (labwright-sim does not simulate '{method} {template}')"
            ),
        ));
    }
    let anon = AuthId {
        user: String::new(),
        token: None,
    };
    let who_ref = who.as_ref().unwrap_or(&anon);
    if who_ref.token.is_some() && !info.allowtoken {
        return Err(ApiError::e403(format!(
            "Permission check failed (URI '{rel_path}' not available with API token, need proper ticket.)"
        )));
    }

    // Parameter merge: body, then query (wins), then URI parameters.
    let mut params = Params::new();
    let mut upload = None;
    if !body.is_empty() {
        let ctype = headers
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("application/x-www-form-urlencoded")
            .to_string();
        if ctype.starts_with("application/json") {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => {
                    for (k, v) in m {
                        if let Some(p) = PVal::from_json(&v) {
                            params.insert(k, p);
                        }
                    }
                }
                _ => return Err(ApiError::new(400, "malformed JSON body")),
            }
        } else if ctype.starts_with("multipart/form-data") {
            if !is_upload {
                return Err(ApiError::new(
                    501,
                    "multipart content is only allowed for uploads",
                ));
            }
            upload = parse_multipart(&body, &ctype, &mut params);
        } else {
            parse_form(&String::from_utf8_lossy(&body), &mut params);
        }
    }
    let mut q = Params::new();
    parse_form(&query, &mut q);
    for (k, v) in q {
        params.insert(k, v);
    }
    params.shift_remove("_dc");
    let mut dup = crate::schema::Errors::new();
    for (k, v) in &rm.uri_params {
        if let Some(existing) = params.get(k)
            && existing.as_str().as_deref() != Some(v.as_str())
        {
            dup.insert(
                k.clone(),
                "duplicate parameter (already defined in URI) with conflicting values!".into(),
            );
        }
        params.insert(k.clone(), PVal::Str(v.clone()));
    }
    if !dup.is_empty() {
        return Err(ApiError::params(dup));
    }

    // Privilege check (before validation, like PVE).
    if let Some(w) = &who {
        let perms = &info.permissions;
        let user_all = perms.get("user").and_then(Value::as_str) == Some("all");
        if let Some(chk) = perms.get("check") {
            let lookup = |n: &str| params.get(n).and_then(PVal::as_str);
            inner
                .with_state(|st| auth::check(st, w, chk, &lookup))
                .map_err(ApiError::e403)?;
        } else if !user_all
            && perms.get("user").and_then(Value::as_str) != Some("world")
            && perms.as_object().is_some_and(|o| o.is_empty())
            && w.user != "root@pam"
        {
            return Err(ApiError::e403("Permission check failed (user != root@pam)"));
        }
    }

    // Proxying to another node.
    if info.proxyto.as_deref() == Some("node") {
        let node = params
            .get("node")
            .and_then(PVal::as_str)
            .unwrap_or_default();
        let status = inner.with_state(|st| st.nodes.get(&node).map(|n| n.online));
        match status {
            None => {
                return Err(ApiError::e500(format!(
                    "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
                )));
            }
            Some(false) => return Err(ApiError::new(596, "Connection timed out")),
            Some(true) => {}
        }
    }

    crate::schema::validate(&mut params, &info.parameters).map_err(ApiError::params)?;

    // Node-scoped calls that PVE does not proxy still resolve the node name.
    if template.contains("{node}") && info.proxyto.is_none() {
        let node = params
            .get("node")
            .and_then(PVal::as_str)
            .unwrap_or_default();
        if inner.with_state(|st| !st.nodes.contains_key(&node)) {
            return Err(ApiError::e500(format!(
                "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
            )));
        }
    }

    // Fault injection (after validation: a fault looks like a runtime failure).
    let f = &inner.faults();
    if f.error_rate > 0.0
        && fault_applies(
            f.error_class.as_deref().unwrap_or("all"),
            &method,
            &rel_path,
        )
        && inner.roll() < f.error_rate
    {
        let msg = match params.get("vmid").and_then(PVal::as_str) {
            Some(v) => {
                format!("can't lock file '/var/lock/qemu-server/lock-{v}.conf' - got timeout")
            }
            None => "cfs-lock 'file-cluster_cfg' error: got lock request timeout".into(),
        };
        return Err(ApiError::e500(msg));
    }
    if f.drop_rate > 0.0 && inner.roll() < f.drop_rate {
        return Ok(dropped_response());
    }

    let r = Req {
        method: method.clone(),
        template,
        params,
        who: who_ref.clone(),
        upload,
    };
    let result = crate::api::dispatch(inner, &r).await;
    if method != "GET" {
        inner.persist();
        // The worst network fault for a client: the write happened, the reply is gone.
        if result.is_ok() && f.lost_reply_rate > 0.0 && inner.roll() < f.lost_reply_rate {
            return Ok(dropped_response());
        }
    }
    result.map(ok_response)
}
