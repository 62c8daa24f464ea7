//! A token issuer for `docker-registry`'s token auth: RS256 JWTs signed with
//! a key whose certificate the registry trusts (`rootcertbundle`).

use crate::registry::{PASSWORD, USER};
use crate::run_ok;
use base64::Engine as _;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const SERVICE: &str = "barge-test-registry";
pub const ISSUER: &str = "barge-test-issuer";

/// How the token issuer behaves.
#[derive(Debug, Clone, Copy)]
pub struct TokenOptions {
    /// Anonymous requests get `pull` on every repository.
    pub anonymous_pull: bool,
    /// Answer the OAuth2 refresh-token POST (otherwise 404, as plain token servers do).
    pub oauth: bool,
    /// Seconds from issue to a JWT's `exp`. The registry accepts tokens 60 s
    /// past `exp` (clock-skew leeway), so -57 means tokens that work for 3 s.
    /// `expires_in` still says 300: the client believes them fresh.
    pub jwt_lifetime: i64,
    /// The address the realm URL names (the server itself listens on
    /// loopback): another host's realm, for a client that must not call it.
    pub realm_ip: Option<std::net::Ipv4Addr>,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            anonymous_pull: false,
            oauth: true,
            jwt_lifetime: 300,
            realm_ip: None,
        }
    }
}

/// One request the issuer answered.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub method: String,
    pub scopes: Vec<String>,
    /// Who was authenticated (by password or refresh token).
    pub user: Option<String>,
    pub grant_type: Option<String>,
    pub offline: bool,
}

struct Shared {
    key: ring::signature::RsaKeyPair,
    cert_der: Vec<u8>,
    opts: TokenOptions,
    requests: AtomicUsize,
    log: Mutex<Vec<TokenRequest>>,
    /// Refresh tokens issued: token → user.
    refresh: Mutex<Vec<(String, String)>>,
}

pub struct TokenServer {
    shared: Arc<Shared>,
    port: u16,
    cert: PathBuf,
    _listener: crate::server::Listener,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TokenServer {
    pub fn start(dir: &Path, opts: TokenOptions) -> TokenServer {
        let key_pem = dir.join("token.key");
        let key_der = dir.join("token.key.der");
        let cert = dir.join("token.crt");
        let cert_der = dir.join("token.crt.der");
        let p = |x: &Path| x.to_str().expect("utf-8 path").to_string();
        run_ok(Command::new("openssl").args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &p(&key_pem),
        ]));
        run_ok(Command::new("openssl").args([
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &p(&key_pem),
            "-outform",
            "DER",
            "-out",
            &p(&key_der),
        ]));
        run_ok(Command::new("openssl").args([
            "req",
            "-x509",
            "-new",
            "-key",
            &p(&key_pem),
            "-subj",
            "/CN=barge-token",
            "-days",
            "2",
            "-out",
            &p(&cert),
        ]));
        run_ok(Command::new("openssl").args(["x509", "-in", &p(&cert), "-outform", "DER", "-out", &p(&cert_der)]));
        let key = ring::signature::RsaKeyPair::from_pkcs8(&std::fs::read(&key_der).expect("key")).expect("RSA key");
        let shared = Arc::new(Shared {
            key,
            cert_der: std::fs::read(&cert_der).expect("cert"),
            opts,
            requests: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            refresh: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let listener = crate::server::Listener::start(move |conn| serve(&s, conn));
        let port = listener.port;
        TokenServer {
            shared,
            port,
            cert,
            _listener: listener,
        }
    }

    pub fn realm(&self) -> String {
        let ip = self.shared.opts.realm_ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        format!("http://{ip}:{}/token", self.port)
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// Token requests served so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Every request answered so far.
    pub fn log(&self) -> Vec<TokenRequest> {
        self.shared.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// A token granting `actions` on `repo` to `subject`.
    pub fn mint(&self, subject: &str, repo: &str, actions: &[&str]) -> String {
        mint(
            &self.shared,
            subject,
            &[(repo.to_string(), actions.iter().map(|a| a.to_string()).collect())],
        )
    }
}

fn mint(s: &Shared, subject: &str, access: &[(String, Vec<String>)]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = serde_json::json!({
        "alg": "RS256",
        "typ": "JWT",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&s.cert_der)],
    });
    let access: Vec<serde_json::Value> = access
        .iter()
        .map(|(name, actions)| serde_json::json!({"type": "repository", "name": name, "actions": actions}))
        .collect();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now as i64 + s.opts.jwt_lifetime,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", s.requests.load(Ordering::SeqCst)),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let rng = ring::rand::SystemRandom::new();
    let mut sig = vec![0u8; s.key.public().modulus_len()];
    s.key
        .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
        .expect("signing");
    format!("{input}.{}", b64url(&sig))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(v) => {
                    out.push(v);
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(conn: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn serve(s: &Shared, mut conn: TcpStream) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut auth = None;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "authorization" => auth = Some(v.trim().to_string()),
                "content-length" => content_length = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; content_length];
    let _ = std::io::Read::read_exact(&mut reader, &mut body);
    s.requests.fetch_add(1, Ordering::SeqCst);
    let method = request_line.split_whitespace().next().unwrap_or("").to_string();
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
    let form = String::from_utf8_lossy(&body).into_owned();
    let params: Vec<(String, String)> = query
        .split('&')
        .chain(form.split('&'))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    // A POSTed form carries its scopes space-separated; a GET repeats `scope=`.
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string))
        .filter(|v| !v.is_empty())
        .collect();
    let known_refresh = |token: &str| {
        s.refresh
            .lock()
            .ok()
            .and_then(|r| r.iter().find(|(t, _)| t == token).map(|(_, u)| u.clone()))
    };
    let grant_type = param("grant_type");
    let offline = param("offline_token").as_deref() == Some("true");
    let user = if method == "POST" {
        if !s.opts.oauth {
            if let Ok(mut log) = s.log.lock() {
                log.push(TokenRequest {
                    method: method.clone(),
                    scopes: scopes.clone(),
                    user: None,
                    grant_type,
                    offline,
                });
            }
            respond(&mut conn, "404 Not Found", r#"{"details":"no OAuth here"}"#);
            return;
        }
        match (grant_type.as_deref(), param("refresh_token")) {
            (Some("refresh_token"), Some(t)) => match known_refresh(&t) {
                Some(u) => Some(u),
                None => {
                    respond(&mut conn, "401 Unauthorized", r#"{"details":"invalid refresh token"}"#);
                    return;
                }
            },
            _ => {
                respond(&mut conn, "400 Bad Request", r#"{"details":"unsupported grant"}"#);
                return;
            }
        }
    } else {
        match auth.as_deref().and_then(|a| a.strip_prefix("Basic ")) {
            Some(b) => {
                let decoded = base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default();
                let decoded = String::from_utf8_lossy(&decoded).into_owned();
                let (u, p) = decoded.split_once(':').unwrap_or((&decoded, ""));
                if (u == USER && p == PASSWORD) || known_refresh(p).is_some_and(|owner| owner == u) {
                    Some(USER.to_string())
                } else {
                    respond(
                        &mut conn,
                        "401 Unauthorized",
                        r#"{"details":"incorrect username or password"}"#,
                    );
                    return;
                }
            }
            None => None,
        }
    };
    if let Ok(mut log) = s.log.lock() {
        log.push(TokenRequest {
            method: method.clone(),
            scopes: scopes.clone(),
            user: user.clone(),
            grant_type,
            offline,
        });
    }
    let mut access = Vec::new();
    for v in &scopes {
        // repository:<name>:<actions>
        let mut parts = v.splitn(3, ':');
        let (Some("repository"), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let granted: Vec<String> = actions
            .split(',')
            .filter(|a| user.is_some() || (s.opts.anonymous_pull && *a == "pull"))
            .map(str::to_string)
            .collect();
        access.push((name.to_string(), granted));
    }
    if user.is_none() && !s.opts.anonymous_pull {
        respond(
            &mut conn,
            "401 Unauthorized",
            r#"{"details":"authentication required"}"#,
        );
        return;
    }
    let token = mint(s, user.as_deref().unwrap_or(""), &access);
    let mut reply = serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
    if let (true, Some(u)) = (offline, &user) {
        let refresh = format!("refresh-{}-{}", u, s.requests.load(Ordering::SeqCst));
        if let Ok(mut r) = s.refresh.lock() {
            r.push((refresh.clone(), u.clone()));
        }
        reply["refresh_token"] = serde_json::Value::String(refresh);
    }
    respond(&mut conn, "200 OK", &reply.to_string());
}
