//! Endpoints, authentication, retries and manifest requests.

use crate::auth::{Scope, Token};
use crate::challenge::{self, Challenge};
use crate::error::{ConnectCause, RegistryError};
use crate::speed::{too_slow, Pace, Paced, TooSlow};
use crate::text::{sanitize, sanitize_opt};
use barge_auth::CredentialLookup;
use barge_oci::image::MAX_MANIFEST_BYTES;
use barge_oci::{media, Descriptor, Digest, Manifest, Reference};
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use ureq::http::Response;
use ureq::{Agent, Body};

/// How the client behaves; the defaults suit interactive use.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Hosts (`host[:port]`) that may be reached over plain HTTP or HTTPS
    /// without certificate verification, in addition to loopback ones.
    pub insecure_registries: Vec<String>,
    /// Attempts per request before giving up (first try included).
    pub max_attempts: u32,
    /// First backoff delay; doubled after each failure.
    pub retry_base: Duration,
    /// Longest single wait, including a server's `Retry-After`.
    pub retry_max: Duration,
    pub connect_timeout: Duration,
    /// Longest wait for any single read from the network.
    pub read_timeout: Duration,
    /// Bytes per second a body must average over `low_speed_time` of
    /// waiting for it, or the transfer is given up (0: no minimum).
    pub low_speed_limit: u64,
    pub low_speed_time: Duration,
    pub user_agent: String,
    /// Registries (`host[:port]`) that receive non-distributable (foreign)
    /// layers on push; elsewhere such a layer is left to its URLs, as
    /// docker's `allow-nondistributable-artifacts`.
    pub allow_nondistributable: Vec<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            max_attempts: 5,
            retry_base: Duration::from_millis(250),
            retry_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            low_speed_limit: 1024,
            low_speed_time: Duration::from_secs(60),
            user_agent: concat!("barge/", env!("CARGO_PKG_VERSION")).to_string(),
            allow_nondistributable: Vec::new(),
        }
    }
}

/// A registry client shared by all threads of one command.
pub struct Client {
    verifying: Agent,
    trusting: Agent,
    pub(crate) creds: Arc<dyn CredentialLookup>,
    opts: ClientOptions,
    /// One slot per host. The table's lock is held only to find or add a
    /// slot; a slot's own lock is held while its host is probed, so threads
    /// wanting the same host probe it once and other hosts never wait.
    hosts: Mutex<HashMap<String, Arc<HostSlot>>>,
    /// What this process wrote to, or found empty in, repositories.
    pub(crate) known: crate::known::Known,
}

/// A host as probed, or `None` until a probe succeeds.
type HostSlot = Mutex<Option<Arc<HostState>>>;

pub(crate) struct HostState {
    /// `https://host:port` or `http://host:port`.
    pub(crate) base: String,
    pub(crate) insecure: bool,
    pub(crate) challenge: Mutex<Option<Challenge>>,
    /// Bearer tokens by scope key.
    pub(crate) tokens: Mutex<HashMap<String, Token>>,
    /// The last rate limit the registry announced.
    pub(crate) rate_limit: Mutex<Option<RateLimit>>,
    /// The registry answered a referrers request with a plain 404 (no
    /// error code): it has no referrers API, and is not asked again.
    pub(crate) no_referrers_api: std::sync::atomic::AtomicBool,
}

/// A registry's pull quota as its `RateLimit-Limit`/`RateLimit-Remaining`
/// headers announce it (Docker Hub: `ratelimit-remaining: 76;w=21600`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: Option<u64>,
    pub remaining: u64,
    /// The quota window in seconds.
    pub window: Option<u64>,
}

impl RateLimit {
    /// Reads the headers of a response; `None` when it carries none.
    pub fn from_headers(headers: &ureq::http::HeaderMap) -> Option<RateLimit> {
        fn parse(v: &str) -> (Option<u64>, Option<u64>) {
            let mut parts = v.split(';');
            let n = parts.next().and_then(|n| n.trim().parse().ok());
            let w = parts
                .filter_map(|p| p.trim().strip_prefix("w="))
                .find_map(|w| w.trim().parse().ok());
            (n, w)
        }
        let (remaining, w1) = parse(headers.get("ratelimit-remaining")?.to_str().ok()?);
        let (limit, w2) = headers
            .get("ratelimit-limit")
            .and_then(|v| v.to_str().ok())
            .map(parse)
            .unwrap_or((None, None));
        Some(RateLimit {
            limit,
            remaining: remaining?,
            window: w1.or(w2),
        })
    }
}

/// A manifest as fetched: exact bytes, media type, digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
    pub manifest: Manifest,
}

/// What a `HEAD` on a manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Digest,
    pub media_type: Option<String>,
    pub size: Option<u64>,
}

/// Is this `host[:port]` on the loopback interface?
pub fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':')
            .map(|(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
            .unwrap_or(host)
    };
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

/// Where a request goes: a path below `/v2/<repository>/`, or an absolute
/// URL the registry handed out (an upload `Location`).
pub(crate) enum Target<'a> {
    Path(&'a str),
    Url(&'a str),
}

/// What a request carries.
#[derive(Clone, Copy)]
pub(crate) enum Payload<'a> {
    None,
    Bytes(&'a [u8]),
    /// `len` bytes of `file` from `offset`, re-read from the start on every
    /// attempt; `progress` hears the bytes sent so far.
    File {
        file: &'a std::fs::File,
        offset: u64,
        len: u64,
        progress: &'a (dyn Fn(u64) + Sync),
    },
    /// `len` bytes from a stream: sent once, never retried (it cannot be re-read).
    Stream {
        reader: &'a std::cell::RefCell<&'a mut dyn std::io::Read>,
        len: u64,
    },
}

/// One request to a registry, for [`Client::request`]: by default a pull
/// with no headers, no body, and redirects answered rather than followed.
/// Its body has a lifetime of its own (`'p`): a stream's is invariant.
pub(crate) struct Request<'a, 'p> {
    pub(crate) reference: &'a Reference,
    /// The token scopes it needs.
    pub(crate) scopes: Vec<Scope>,
    pub(crate) method: Method,
    pub(crate) target: Target<'a>,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) payload: Payload<'p>,
    /// Follow redirects (blob downloads, to a CDN say).
    pub(crate) follow: bool,
}

impl<'a, 'p> Request<'a, 'p> {
    pub(crate) fn new(reference: &'a Reference, method: Method, target: Target<'a>) -> Request<'a, 'p> {
        Request {
            reference,
            scopes: vec![Scope::pull(reference)],
            method,
            target,
            headers: Vec::new(),
            payload: Payload::None,
            follow: false,
        }
    }

    /// Needs push (and pull) access to the repository.
    pub(crate) fn pushing(self) -> Request<'a, 'p> {
        let scopes = vec![Scope::push(self.reference)];
        self.scopes(scopes)
    }

    pub(crate) fn scopes(mut self, scopes: Vec<Scope>) -> Request<'a, 'p> {
        self.scopes = scopes;
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Request<'a, 'p> {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn payload(mut self, payload: Payload<'p>) -> Request<'a, 'p> {
        self.payload = payload;
        self
    }

    pub(crate) fn following_redirects(mut self) -> Request<'a, 'p> {
        self.follow = true;
        self
    }

    /// Can it be sent again (after a transport error or a 401)? A stream is consumed.
    fn replayable(&self) -> bool {
        !matches!(self.payload, Payload::Stream { .. })
    }
}

/// One HTTP exchange, no retry: method, headers, `Authorization`, body.
fn send_once(
    agent: &Agent,
    req: &Request<'_, '_>,
    url: &str,
    auth: Option<&str>,
) -> Result<Response<Body>, ureq::Error> {
    fn with_headers<B>(
        mut builder: ureq::RequestBuilder<B>,
        req: &Request<'_, '_>,
        auth: Option<&str>,
    ) -> ureq::RequestBuilder<B> {
        for (k, v) in &req.headers {
            builder = builder.header(*k, v.as_str());
        }
        if let Some(a) = auth {
            builder = builder.header("Authorization", a);
        }
        builder
    }
    match req.method {
        Method::Get => with_headers(agent.get(url), req, auth).call(),
        Method::Head => with_headers(agent.head(url), req, auth).call(),
        Method::Post => send_payload(with_headers(agent.post(url), req, auth), req.payload),
        Method::Put => send_payload(with_headers(agent.put(url), req, auth), req.payload),
        Method::Patch => send_payload(with_headers(agent.patch(url), req, auth), req.payload),
        Method::Delete => with_headers(agent.delete(url), req, auth).call(),
    }
}

/// Sends a request's body.
fn send_payload(
    builder: ureq::RequestBuilder<ureq::typestate::WithBody>,
    payload: Payload<'_>,
) -> Result<Response<Body>, ureq::Error> {
    match payload {
        Payload::None => builder.header("Content-Length", "0").send_empty(),
        Payload::Bytes(b) => builder.send(b),
        Payload::File {
            file,
            offset,
            len,
            progress,
        } => {
            let mut reader = FileRange {
                file,
                pos: offset,
                end: offset + len,
                sent: 0,
                progress,
            };
            builder
                .header("Content-Length", len.to_string())
                .send(ureq::SendBody::from_reader(&mut reader))
        }
        Payload::Stream { reader, len } => {
            let mut r = reader.borrow_mut();
            builder
                .header("Content-Length", len.to_string())
                .send(ureq::SendBody::from_reader(&mut **r))
        }
    }
}

/// Records the rate limit a response of the registry's own host announces.
fn note_rate_limit(host: &HostState, resp: &Response<Body>) {
    if let Some(limit) = RateLimit::from_headers(resp.headers()) {
        *host.rate_limit.lock().unwrap_or_else(|e| e.into_inner()) = Some(limit);
    }
}

/// After a 401: takes the registry's new challenge and drops the token for
/// `scopes`, so that the next attempt asks for a fresh one.
fn forget_token(host: &HostState, scopes: &[Scope], resp: &Response<Body>) {
    if let Some(c) = pick_challenge(resp) {
        *host.challenge.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
    }
    host.tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&Scope::key(scopes));
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// A restartable reader over part of a file (pread, no shared offset).
struct FileRange<'a> {
    file: &'a std::fs::File,
    pos: u64,
    end: u64,
    sent: u64,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl std::io::Read for FileRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = buf.len().min((self.end - self.pos).min(usize::MAX as u64) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        self.sent += n as u64;
        (self.progress)(self.sent);
        Ok(n)
    }
}

impl Client {
    pub fn new(creds: Arc<dyn CredentialLookup>, opts: ClientOptions) -> Client {
        let agent = |verify: bool| -> Agent {
            Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .max_redirects_will_error(false)
                .user_agent(opts.user_agent.as_str())
                .timeout_connect(Some(opts.connect_timeout))
                .timeout_per_read(Some(opts.read_timeout))
                // A response head trickled in byte by byte is bounded too.
                .timeout_recv_response(Some(opts.read_timeout.max(opts.low_speed_time)))
                .tls_config(ureq::tls::TlsConfig::builder().disable_verification(!verify).build())
                .build()
                .into()
        };
        Client {
            verifying: agent(true),
            trusting: agent(false),
            creds,
            opts,
            hosts: Mutex::new(HashMap::new()),
            known: Default::default(),
        }
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The pull quota `host` announced last, if it announces one.
    pub fn rate_limit(&self, host: &str) -> Option<RateLimit> {
        let slot = self.hosts.lock().unwrap_or_else(|e| e.into_inner()).get(host)?.clone();
        let state = slot.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        let limit = *state.rate_limit.lock().unwrap_or_else(|e| e.into_inner());
        limit
    }

    /// Whether a push to `registry` carries `layer` itself: yes, unless the
    /// layer is foreign (non-distributable, with URLs) and the registry is
    /// not one allowed to hold such layers.
    pub fn carries(&self, registry: &Reference, layer: &Descriptor) -> bool {
        !layer.is_foreign()
            || self
                .opts
                .allow_nondistributable
                .iter()
                .any(|h| h.eq_ignore_ascii_case(registry.registry()) || h.eq_ignore_ascii_case(registry.api_host()))
    }

    pub(crate) fn is_insecure(&self, host: &str) -> bool {
        is_loopback(host)
            || self
                .opts
                .insecure_registries
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host))
    }

    pub(crate) fn agent_for(&self, insecure: bool) -> &Agent {
        if insecure {
            &self.trusting
        } else {
            &self.verifying
        }
    }

    /// Finds (once per host) whether the registry speaks HTTPS or plain HTTP
    /// and what it challenges for, by a `GET /v2/`.
    pub(crate) fn host(&self, host: &str) -> Result<Arc<HostState>, RegistryError> {
        let slot = self
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(host.to_string())
            .or_default()
            .clone();
        // The table is unlocked: a slow host holds up only its own slot.
        let mut state = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = state.as_ref() {
            return Ok(h.clone());
        }
        let probed = Arc::new(self.probe(host)?);
        *state = Some(probed.clone());
        Ok(probed)
    }

    /// `GET /v2/` over HTTPS, then (for insecure hosts) plain HTTP.
    fn probe(&self, host: &str) -> Result<HostState, RegistryError> {
        let insecure = self.is_insecure(host);
        let schemes: &[&str] = if insecure { &["https", "http"] } else { &["https"] };
        let mut last_err = ConnectCause::Other("no address to try".into());
        for (i, scheme) in schemes.iter().enumerate() {
            let base = format!("{scheme}://{host}");
            // With a plain-HTTP fallback left, HTTPS gets one try, as docker does.
            let attempts = if i + 1 < schemes.len() {
                1
            } else {
                self.opts.max_attempts
            };
            match self.retrying(attempts, || self.agent_for(insecure).get(format!("{base}/v2/")).call()) {
                Ok(resp) => {
                    let challenge = (resp.status().as_u16() == 401).then(|| pick_challenge(&resp)).flatten();
                    return Ok(HostState {
                        base,
                        insecure,
                        challenge: Mutex::new(challenge),
                        tokens: Mutex::new(HashMap::new()),
                        rate_limit: Mutex::new(None),
                        no_referrers_api: Default::default(),
                    });
                }
                Err(e) => last_err = ConnectCause::of(&e),
            }
        }
        Err(RegistryError::Connect {
            host: host.to_string(),
            cause: last_err,
            insecure,
        })
    }

    /// Runs a request, retrying transport errors and 429/5xx answers with backoff.
    pub(crate) fn with_retries(
        &self,
        send: impl FnMut() -> Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>, ureq::Error> {
        self.retrying(self.opts.max_attempts, send)
    }

    fn retrying(
        &self,
        attempts: u32,
        mut send: impl FnMut() -> Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>, ureq::Error> {
        let mut attempt = 1;
        loop {
            match send() {
                Ok(resp) if retryable_status(resp.status().as_u16()) && attempt < attempts => {
                    let wait = retry_after(&resp).unwrap_or_else(|| self.backoff(attempt));
                    std::thread::sleep(wait.min(self.opts.retry_max));
                }
                Ok(resp) => return Ok(resp),
                Err(e) if attempt < attempts && retryable_error(&e) => {
                    std::thread::sleep(self.backoff(attempt));
                }
                Err(e) => return Err(e),
            }
            attempt += 1;
        }
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(10);
        (self.opts.retry_base * factor).min(self.opts.retry_max)
    }

    /// Sends a request through the layers of the protocol: authentication
    /// (the registry's challenge answered, and once more after a 401),
    /// retries with backoff ([`Client::send_retrying`]), the rate limit the
    /// registry announces, and redirects when the request follows them.
    /// `Authorization` goes only to the registry's own host.
    pub(crate) fn request(&self, req: Request<'_, '_>) -> Result<Response<Body>, RegistryError> {
        let host_name = req.reference.api_host();
        let host = self.host(host_name)?;
        let url = self.target_url(&host, host_name, &req)?;
        let same_host = authority(&url).eq_ignore_ascii_case(host_name) && url.starts_with(&format!("{}/", host.base));
        let insecure = host.insecure || self.is_insecure(authority(&url));
        let mut reauthenticated = false;
        loop {
            let auth = if same_host {
                self.authorization(&host, host_name, &req.scopes)?
            } else {
                None
            };
            let resp = self
                .send_retrying(&req, &url, insecure, auth.as_deref())
                .map_err(|e| self.connect_error(host_name, &e))?;
            if same_host {
                note_rate_limit(&host, &resp);
            }
            let status = resp.status().as_u16();
            if status == 401 && !reauthenticated && same_host && req.replayable() {
                reauthenticated = true;
                forget_token(&host, &req.scopes, &resp);
                continue;
            }
            if status == 401 || status == 403 {
                let (code, message) = self.error_body(resp);
                return Err(RegistryError::Unauthorized {
                    host: req.reference.registry().to_string(),
                    repository: req.reference.familiar_name(),
                    code,
                    message,
                });
            }
            if req.follow && is_redirect(status) {
                return self.follow_redirects(host_name, &url, resp, &auth, &req.headers);
            }
            return Ok(resp);
        }
    }

    /// The URL a request goes to. An upload location must not downgrade
    /// HTTPS: credentials and content would travel in clear.
    fn target_url(&self, host: &HostState, host_name: &str, req: &Request<'_, '_>) -> Result<String, RegistryError> {
        let url = match req.target {
            Target::Path(path) => format!("{}/v2/{}/{}", host.base, req.reference.repository(), path),
            Target::Url(u) => resolve_location(&host.base, u).ok_or_else(|| RegistryError::Redirect {
                host: host_name.to_string(),
                location: sanitize(u),
                why: "it is not an http(s) URL".into(),
            })?,
        };
        if url.starts_with("http://") && host.base.starts_with("https://") && !self.is_insecure(authority(&url)) {
            return Err(RegistryError::Redirect {
                host: host_name.to_string(),
                location: sanitize(&url),
                why: "it downgrades HTTPS to plain HTTP".into(),
            });
        }
        Ok(url)
    }

    /// The retry layer: sends the request until it gets an answer worth
    /// keeping, at most `max_attempts` times (a stream once: it cannot be re-read).
    fn send_retrying(
        &self,
        req: &Request<'_, '_>,
        url: &str,
        insecure: bool,
        auth: Option<&str>,
    ) -> Result<Response<Body>, ureq::Error> {
        let attempts = if req.replayable() { self.opts.max_attempts } else { 1 };
        let agent = self.agent_for(insecure);
        self.retrying(attempts, || send_once(agent, req, url, auth))
    }

    /// Follows blob redirects (to a CDN, say). `Authorization` goes only to
    /// the registry's own host; HTTPS is never downgraded to HTTP unless the
    /// target is itself loopback or an insecure registry.
    fn follow_redirects(
        &self,
        host_name: &str,
        start: &str,
        mut resp: Response<Body>,
        auth: &Option<String>,
        headers: &[(&'static str, String)],
    ) -> Result<Response<Body>, RegistryError> {
        let mut url = start.to_string();
        for _ in 0..10 {
            let status = resp.status().as_u16();
            if !is_redirect(status) {
                return Ok(resp);
            }
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| RegistryError::Redirect {
                    host: host_name.to_string(),
                    location: String::new(),
                    why: "the redirect has no Location header".into(),
                })?
                .to_string();
            let next = resolve_location(&url, &location).ok_or_else(|| RegistryError::Redirect {
                host: host_name.to_string(),
                location: sanitize(&location),
                why: "it is not an http(s) URL".into(),
            })?;
            let next_authority = authority(&next).to_string();
            let target_insecure = self.is_insecure(&next_authority);
            if next.starts_with("http://") && url.starts_with("https://") && !target_insecure {
                return Err(RegistryError::Redirect {
                    host: host_name.to_string(),
                    location: sanitize(&next),
                    why: "it downgrades HTTPS to plain HTTP".into(),
                });
            }
            let same_host =
                next_authority.eq_ignore_ascii_case(authority(&url)) && next_authority.eq_ignore_ascii_case(host_name);
            resp = self
                .with_retries(|| {
                    let mut req = self.agent_for(target_insecure).get(&next);
                    for (k, v) in headers {
                        req = req.header(*k, v.as_str());
                    }
                    if let (true, Some(a)) = (same_host, auth) {
                        req = req.header("Authorization", a.as_str());
                    }
                    req.call()
                })
                .map_err(|e| self.connect_error(&next_authority, &e))?;
            url = next;
        }
        Err(RegistryError::Redirect {
            host: host_name.to_string(),
            location: sanitize(&url),
            why: "too many redirects".into(),
        })
    }

    /// A plain `GET` of any http(s) URL (Dockerfile `ADD https://…`), with
    /// the registry transport's timeouts, retries, TLS verification
    /// (skipped only for loopback and `--insecure-registry` hosts) and
    /// redirect rules, but no credentials. The body is streamed.
    pub fn get_url(&self, url: &str) -> Result<impl std::io::Read + Send + 'static, RegistryError> {
        let resp = self.get_url_from(url, 0)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(url_status(url, status));
        }
        Ok(resp.into_body().into_reader())
    }

    /// [`Client::get_url`]'s request, asking for the bytes from `offset` on
    /// (`Range`) when it is not 0; the answer is the caller's to check.
    pub(crate) fn get_url_from(&self, url: &str, offset: u64) -> Result<Response<Body>, RegistryError> {
        let host = authority(url).to_string();
        if !(url.starts_with("https://") || url.starts_with("http://")) || host.is_empty() {
            return Err(RegistryError::Redirect {
                host,
                location: sanitize(url),
                why: "it is not an http(s) URL".into(),
            });
        }
        let headers: Vec<(&'static str, String)> = match offset {
            0 => Vec::new(),
            n => vec![("Range", format!("bytes={n}-"))],
        };
        let insecure = self.is_insecure(&host);
        let first = self
            .with_retries(|| {
                let mut req = self.agent_for(insecure).get(url);
                for (k, v) in &headers {
                    req = req.header(*k, v.as_str());
                }
                req.call()
            })
            .map_err(|e| self.connect_error(&host, &e))?;
        self.follow_redirects(&host, url, first, &None, &headers)
    }

    pub(crate) fn connect_error(&self, host: &str, e: &ureq::Error) -> RegistryError {
        RegistryError::Connect {
            host: host.to_string(),
            cause: ConnectCause::of(e),
            insecure: self.is_insecure(host),
        }
    }

    /// `HEAD` of a manifest: its digest without its body; `None` when the registry has no such tag.
    pub fn head_manifest(&self, reference: &Reference) -> Result<Option<ManifestHead>, RegistryError> {
        if self.known_absent_manifest(reference, &reference.manifest_key()) {
            return Ok(None);
        }
        let path = format!("manifests/{}", reference.manifest_key());
        let resp = self.request(
            Request::new(reference, Method::Head, Target::Path(&path)).header("Accept", media::MANIFEST_ACCEPT),
        )?;
        match resp.status().as_u16() {
            200 => {
                let h = resp.headers();
                let digest = h
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let Some(digest) = digest else { return Ok(None) };
                Ok(Some(ManifestHead {
                    digest,
                    media_type: h.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string),
                    size: h
                        .get("content-length")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok()),
                }))
            }
            404 => Ok(None),
            status => Err(self.status_error(reference, "HEAD", &path, status, None)),
        }
    }

    /// Fetches the manifest a reference names (by digest when pinned, else by tag).
    pub fn get_manifest(&self, reference: &Reference) -> Result<FetchedManifest, RegistryError> {
        let key = reference.manifest_key();
        if self.known_absent_manifest(reference, &key) {
            return Err(RegistryError::ManifestNotFound {
                reference: reference.familiar(),
            });
        }
        self.get_manifest_key(reference, &key, reference.digest())
    }

    /// Fetches a manifest by digest (an index entry) and verifies it.
    pub fn get_manifest_by_digest(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<FetchedManifest, RegistryError> {
        self.get_manifest_key(reference, &digest.to_string(), Some(digest))
    }

    fn get_manifest_key(
        &self,
        reference: &Reference,
        key: &str,
        expected: Option<&Digest>,
    ) -> Result<FetchedManifest, RegistryError> {
        let path = format!("manifests/{key}");
        let resp = self.request(
            Request::new(reference, Method::Get, Target::Path(&path)).header("Accept", media::MANIFEST_ACCEPT),
        )?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Err(RegistryError::ManifestNotFound {
                reference: reference.familiar(),
            });
        }
        if status != 200 {
            return Err(self.status_error(reference, "GET", &path, status, Some(resp)));
        }
        let host = reference.api_host().to_string();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let header_digest: Option<Digest> = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = self
            .read_body(resp, MAX_MANIFEST_BYTES)
            .map_err(|e| e.into_error("manifest", &host, MAX_MANIFEST_BYTES))?;
        let digest = Digest::of(&bytes);
        if let Some(expected) = expected.or(header_digest.as_ref()) {
            if *expected != digest {
                return Err(RegistryError::DigestMismatch {
                    host,
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let manifest = Manifest::parse(&bytes, content_type.as_deref()).map_err(|error| RegistryError::Manifest {
            what: format!("manifest for {}", reference.familiar()),
            host: host.clone(),
            error,
        })?;
        let media_type = manifest.media_type().to_string();
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
            manifest,
        })
    }

    /// Fetches a small blob (an image config) whole, verifying size and digest.
    pub fn get_small_blob(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let host = reference.api_host().to_string();
        if desc.size > limit {
            return Err(RegistryError::TooLarge {
                what: format!("blob {}", desc.digest),
                host,
                limit,
            });
        }
        let mut reader = self.open_blob(reference, desc, 0)?;
        let mut bytes = Vec::with_capacity(desc.size as usize);
        std::io::Read::read_to_end(&mut reader, &mut bytes)
            .map_err(|e| crate::blob::into_registry_error(e, &host, &desc.digest))?;
        let actual = Digest::of(&bytes);
        if actual != desc.digest || bytes.len() as u64 != desc.size {
            return Err(RegistryError::DigestMismatch {
                host,
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    pub(crate) fn status_error(
        &self,
        reference: &Reference,
        method: &str,
        path: &str,
        status: u16,
        resp: Option<Response<Body>>,
    ) -> RegistryError {
        let (code, message) = resp.map(|r| self.error_body(r)).unwrap_or((None, None));
        RegistryError::Status {
            host: reference.api_host().to_string(),
            method: method.to_string(),
            path: format!("/v2/{}/{}", reference.repository(), path),
            status,
            code,
            message,
        }
    }
}

/// The registry name the credential store knows for an API host.
pub(crate) fn registry_name(api_host: &str) -> &str {
    if api_host == barge_oci::reference::DOCKER_HUB_API_HOST {
        barge_oci::reference::DOCKER_HUB
    } else {
        api_host
    }
}

pub(crate) fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// Prefers a Bearer challenge, then Basic.
pub(crate) fn pick_challenge(resp: &Response<Body>) -> Option<Challenge> {
    let mut all = Vec::new();
    for v in resp.headers().get_all("www-authenticate") {
        if let Ok(s) = v.to_str() {
            all.extend(challenge::parse(s));
        }
    }
    let pos = all
        .iter()
        .position(|c| c.scheme == "bearer")
        .or_else(|| all.iter().position(|c| c.scheme == "basic"))?;
    Some(all.swap_remove(pos))
}

fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Transport errors worth another try. TLS failures (reported as invalid
/// data) are not: they will not go away by waiting.
pub(crate) fn retryable_error(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => io.kind() != std::io::ErrorKind::InvalidData,
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::Protocol(_) => true,
        _ => false,
    }
}

/// `Retry-After` in seconds or as an HTTP-date.
pub(crate) fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = parse_http_date(v)?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u32 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u32
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4].split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if hms.len() != 3 || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 || !(1..=31).contains(&day) {
        return None;
    }
    let days = barge_oci::time::days_from_civil(year, month, day);
    let secs = days * 86400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

impl Client {
    /// Reads a body of at most `limit` bytes at no less than the minimum speed.
    pub(crate) fn read_body(&self, resp: Response<Body>, limit: u64) -> Result<Vec<u8>, BodyError> {
        use std::io::Read as _;
        if resp.body().content_length().is_some_and(|l| l > limit) {
            return Err(BodyError::TooLarge);
        }
        let mut reader = Paced {
            inner: resp.into_body().into_with_config().reader(),
            pace: Pace::new(&self.opts),
        };
        let mut bytes = Vec::new();
        match (&mut reader).take(limit.saturating_add(1)).read_to_end(&mut bytes) {
            Ok(_) if bytes.len() as u64 > limit => Err(BodyError::TooLarge),
            Ok(_) => Ok(bytes),
            Err(e) => Err(match too_slow(&e) {
                Some(slow) => BodyError::Slow(slow),
                None => BodyError::Failed(sanitize(&e.to_string())),
            }),
        }
    }

    /// The registry's `{"errors":[{"code":…,"message":…}]}` body, if any, sanitised.
    pub(crate) fn error_body(&self, resp: Response<Body>) -> (Option<String>, Option<String>) {
        registry_error_body(self.read_body(resp, 64 * 1024).ok())
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    TooLarge,
    Slow(TooSlow),
    Failed(String),
}

impl BodyError {
    /// The error to report for `what` from `host`.
    pub(crate) fn into_error(self, what: &str, host: &str, limit: u64) -> RegistryError {
        match self {
            BodyError::TooLarge => RegistryError::TooLarge {
                what: what.to_string(),
                host: host.to_string(),
                limit,
            },
            BodyError::Slow(slow) => RegistryError::TooSlow {
                what: what.to_string(),
                host: host.to_string(),
                detail: slow.to_string(),
            },
            BodyError::Failed(message) => RegistryError::Connect {
                host: host.to_string(),
                cause: ConnectCause::Other(message),
                insecure: false,
            },
        }
    }
}

/// The first error of a `{"errors":[{"code":…,"message":…}]}` body.
fn registry_error_body(body: Option<Vec<u8>>) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let Some(body) = body else {
        return (None, None);
    };
    match serde_json::from_slice::<Errors>(&body) {
        Ok(e) => e
            .errors
            .into_iter()
            .next()
            .map(|i| (sanitize_opt(i.code), sanitize_opt(i.message)))
            .unwrap_or((None, None)),
        Err(_) => (None, None),
    }
}

/// One line describing a transport error.
pub(crate) fn describe(e: &ureq::Error) -> String {
    ConnectCause::of(e).to_string()
}

impl ConnectCause {
    /// Sorts a transport error by what the user can do about it; the text
    /// is sanitised (it may quote what a server sent).
    pub(crate) fn of(e: &ureq::Error) -> ConnectCause {
        use std::io::ErrorKind;
        match e {
            ureq::Error::HostNotFound => ConnectCause::HostNotFound("no address".into()),
            // std reports a failed getaddrinfo as an uncategorised I/O error.
            ureq::Error::Io(io) if io.to_string().starts_with("failed to lookup address") => {
                ConnectCause::HostNotFound(sanitize(&io.to_string()))
            }
            ureq::Error::Io(io) if io.kind() == ErrorKind::ConnectionRefused => ConnectCause::Refused,
            // rustls reports a failed handshake as invalid data.
            ureq::Error::Io(io) if io.kind() == ErrorKind::InvalidData => ConnectCause::Tls(sanitize(&io.to_string())),
            ureq::Error::Tls(t) => ConnectCause::Tls(sanitize(t)),
            ureq::Error::Rustls(t) => ConnectCause::Tls(sanitize(&t.to_string())),
            ureq::Error::Io(io) if io.kind() == ErrorKind::TimedOut => {
                ConnectCause::TimedOut(sanitize(&io.to_string()))
            }
            ureq::Error::Timeout(t) => ConnectCause::TimedOut(t.to_string()),
            ureq::Error::Io(io) => ConnectCause::Other(sanitize(&io.to_string())),
            other => ConnectCause::Other(sanitize(&other.to_string())),
        }
    }
}

/// The `host[:port]` of an absolute URL.
/// The error for an unexpected answer to a plain `GET` of `url`.
pub(crate) fn url_status(url: &str, status: u16) -> RegistryError {
    RegistryError::Status {
        host: authority(url).to_string(),
        method: "GET".into(),
        path: sanitize(url.split_once(authority(url)).map(|(_, p)| p).unwrap_or(url)),
        status,
        code: None,
        message: None,
    }
}

pub(crate) fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    auth.rsplit_once('@').map(|(_, h)| h).unwrap_or(auth)
}

/// Resolves a `Location` header against the URL that sent it.
pub(crate) fn resolve_location(base: &str, location: &str) -> Option<String> {
    if location.starts_with("https://") || location.starts_with("http://") {
        return Some(location.to_string());
    }
    if location.contains("://") {
        return None;
    }
    let (scheme, rest) = base.split_once("://")?;
    let host_end = rest.find('/').unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..host_end]);
    if let Some(stripped) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{stripped}"));
    }
    if location.starts_with('/') {
        return Some(format!("{origin}{location}"));
    }
    let path = &rest[host_end..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = path.rfind('/').map(|i| &path[..=i]).unwrap_or("/");
    Some(format!("{origin}{dir}{location}"))
}

pub(crate) fn encode_query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_headers() {
        let mut h = ureq::http::HeaderMap::new();
        assert_eq!(RateLimit::from_headers(&h), None);
        h.insert("ratelimit-limit", "100;w=21600".parse().unwrap());
        h.insert("ratelimit-remaining", "76;w=21600".parse().unwrap());
        assert_eq!(
            RateLimit::from_headers(&h),
            Some(RateLimit {
                limit: Some(100),
                remaining: 76,
                window: Some(21600)
            })
        );
        h.insert("ratelimit-remaining", "0".parse().unwrap());
        assert_eq!(
            RateLimit::from_headers(&h).map(|l| (l.remaining, l.window)),
            Some((0, Some(21600)))
        );
        h.insert("ratelimit-remaining", "lots".parse().unwrap());
        assert_eq!(RateLimit::from_headers(&h), None);
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:5000",
            "[::1]",
            "LOCALHOST:1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:5000",
            "[::2]:1",
            "localhost.example.com",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 784111777);
        assert!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
        assert!(parse_http_date("garbage").is_none());
    }

    #[test]
    fn locations_and_authorities() {
        assert_eq!(authority("https://user@a.b:5000/v2/x"), "a.b:5000");
        assert_eq!(authority("http://h"), "h");
        assert_eq!(
            resolve_location("https://a/v2/r/blobs/x", "/other").as_deref(),
            Some("https://a/other")
        );
        assert_eq!(
            resolve_location("https://a/v2/r/blobs/x", "https://cdn/x").as_deref(),
            Some("https://cdn/x")
        );
        assert_eq!(
            resolve_location("https://a/v2/r/blobs/x", "//cdn/y").as_deref(),
            Some("https://cdn/y")
        );
        assert_eq!(
            resolve_location("https://a/v2/r/blobs/x", "y").as_deref(),
            Some("https://a/v2/r/blobs/y")
        );
        assert_eq!(resolve_location("https://a/v2/", "ftp://x"), None);
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            encode_query(&[("scope", "repository:a/b:pull".into()), ("service", "x y".into())]),
            "scope=repository%3Aa%2Fb%3Apull&service=x%20y"
        );
    }

    #[test]
    fn threads_wanting_one_host_probe_it_once() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let probes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = probes.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let counted = counted.clone();
                std::thread::spawn(move || {
                    let mut conn = conn;
                    let mut buf = [0u8; 4096];
                    let n = conn.read(&mut buf).unwrap_or(0);
                    // HTTPS is tried first: a TLS hello is not a probe.
                    if buf[..n].starts_with(b"GET /v2/ ") {
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        // Slow enough that the other threads ask meanwhile.
                        std::thread::sleep(Duration::from_millis(300));
                        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                });
            }
        });
        let c = Client::new(Arc::new(barge_auth::Anonymous), ClientOptions::default());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert!(c.host(&host).is_ok()));
            }
        });
        assert_eq!(probes.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(c.host(&host).unwrap().base.starts_with("http://"));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let c = Client::new(Arc::new(barge_auth::Anonymous), ClientOptions::default());
        assert_eq!(c.backoff(1), Duration::from_millis(250));
        assert_eq!(c.backoff(2), Duration::from_millis(500));
        assert_eq!(c.backoff(30), Duration::from_secs(30));
    }
}
