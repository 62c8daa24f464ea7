//! Debian's `docker-registry` (distribution 2.8), started on a free port.

use crate::token::TokenServer;
use crate::{free_port, run_ok};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "barge-user";
pub const PASSWORD: &str = "s3cret-pass";

/// How the registry authenticates.
pub enum Auth {
    None,
    /// htpasswd Basic auth with [`USER`]/[`PASSWORD`].
    Basic,
    /// Bearer tokens from a harness token server.
    Token(crate::token::TokenOptions),
}

pub struct Options {
    pub auth: Auth,
    pub tls: bool,
    /// Listen on every interface rather than loopback only.
    pub all_interfaces: bool,
    /// Run as a pull-through cache of this registry URL.
    pub proxy_of: Option<String>,
    /// Allow `DELETE` of manifests and blobs (docker-registry's default is off).
    pub delete_enabled: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auth: Auth::None,
            tls: false,
            all_interfaces: false,
            proxy_of: None,
            delete_enabled: true,
        }
    }
}

pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub tls: bool,
    pub token: Option<TokenServer>,
}

/// A self-signed certificate and key for 127.0.0.1 and localhost.
pub fn self_signed_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=barge-test",
            ])
            .args([
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout",
                key.to_str().expect("utf-8 path"),
                "-out",
                cert.to_str().expect("utf-8 path"),
            ]),
    );
    (cert, key)
}

impl Registry {
    pub fn start(opts: Options) -> Registry {
        let dir = tempfile::tempdir().expect("registry dir");
        let port = free_port();
        let host = if opts.all_interfaces { "0.0.0.0" } else { "127.0.0.1" };
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {}\nhttp:\n  addr: {host}:{port}\n  secret: barge-test-secret\n",
            dir.path().join("data").display(),
            opts.delete_enabled
        );
        if opts.tls {
            let (cert, key) = self_signed_cert(dir.path(), "registry");
            cfg.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        let mut token = None;
        match opts.auth {
            Auth::None => {}
            Auth::Basic => {
                let htpasswd = dir.path().join("htpasswd");
                let line = run_ok(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
                std::fs::write(&htpasswd, line.trim()).expect("htpasswd");
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: barge-test\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            Auth::Token(token_opts) => {
                let server = TokenServer::start(dir.path(), token_opts);
                cfg.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    crate::token::SERVICE,
                    crate::token::ISSUER,
                    server.cert_path().display()
                ));
                token = Some(server);
            }
        }
        if let Some(remote) = &opts.proxy_of {
            cfg.push_str(&format!("proxy:\n  remoteurl: {remote}\n"));
        }
        cfg.push_str("validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n");
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).expect("registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let reg = Registry {
            child,
            port,
            dir,
            tls: opts.tls,
            token,
        };
        reg.wait_ready();
        reg
    }

    /// An anonymous registry on loopback. Every registry the harness starts
    /// accepts manifests whose layers have http(s) `urls` (foreign layers),
    /// which docker-registry refuses unless its config allows them.
    pub fn anonymous() -> Registry {
        Registry::start(Options::default())
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let agent = crate::image::agent();
        while Instant::now() < deadline {
            if agent.get(format!("{}/v2/", self.base_url())).call().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not start on port {}:\n{log}", self.port);
    }

    /// `127.0.0.1:<port>`, as references name it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The `Authorization` header the harness uses to push.
    pub fn push_auth(&self, repo: &str) -> Option<String> {
        if let Some(t) = &self.token {
            return Some(format!("Bearer {}", t.mint(USER, repo, &["pull", "push"])));
        }
        let htpasswd = self.dir.path().join("htpasswd");
        if htpasswd.exists() {
            use base64::Engine as _;
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
            return Some(format!("Basic {b}"));
        }
        None
    }

    /// The registry's storage directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
