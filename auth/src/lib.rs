//! Registry credentials, the way the docker CLI keeps them.
//!
//! This crate reads docker's `config.json` (`auths` with base64
//! `user:password`, `identitytoken`, `registrytoken`, and the
//! `credsStore`/`credHelpers` helper protocol) and exposes the
//! [`CredentialLookup`] trait that `barge-registry` asks when a registry
//! wants credentials.
//!
//! It is not for HTTP or token exchange (that is `barge-registry`), and it
//! never prints secrets.

use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The key docker uses for Docker Hub in `config.json`.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// What a registry may be given to prove who we are.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token realm.
    IdentityToken { username: String, token: String },
    /// A bearer token sent as is (docker's `registrytoken`).
    RegistryToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credential::IdentityToken { username, .. } => write!(f, "IdentityToken({username}, <redacted>)"),
            Credential::RegistryToken(_) => write!(f, "RegistryToken(<redacted>)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid JSON: {source}")]
    Malformed { path: PathBuf, source: serde_json::Error },
    #[error("{path}: the \"auth\" entry for {registry} is not base64 of user:password")]
    BadAuthField { path: PathBuf, registry: String },
    #[error("credential helper docker-credential-{helper} is not installed (not found on PATH); install it or remove it from {path}")]
    HelperMissing { helper: String, path: PathBuf },
    #[error("credential helper docker-credential-{helper} failed: {message}")]
    Helper { helper: String, message: String },
}

/// Anything that can tell the credentials for a registry host.
pub trait CredentialLookup: Send + Sync {
    /// `registry` is as written in references: `docker.io`, `localhost:5000`.
    fn lookup(&self, registry: &str) -> Result<Option<Credential>, AuthError>;
}

/// No credentials: anonymous access only.
pub struct Anonymous;

impl CredentialLookup for Anonymous {
    fn lookup(&self, _registry: &str) -> Result<Option<Credential>, AuthError> {
        Ok(None)
    }
}

/// The config.json key for a registry (`https://index.docker.io/v1/` for Docker Hub).
pub fn config_key(registry: &str) -> String {
    let host = key_host(registry);
    if is_docker_hub(&host) {
        DOCKER_HUB_KEY.to_string()
    } else {
        host
    }
}

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

/// The host part of a config.json key: schemes and paths stripped.
fn key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    host.to_ascii_lowercase()
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

/// Credentials from a docker `config.json`, read on each lookup.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
}

impl DockerConfig {
    /// `DIR/config.json` when a directory is given (`--config`), else
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn locate(dir: Option<&Path>) -> DockerConfig {
        let dir = dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("DOCKER_CONFIG").map(PathBuf::from))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from("/root/.docker"));
        DockerConfig {
            path: dir.join("config.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<ConfigFile, AuthError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
            Err(source) => {
                return Err(AuthError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ConfigFile::default());
        }
        serde_json::from_slice(&bytes).map_err(|source| AuthError::Malformed {
            path: self.path.clone(),
            source,
        })
    }

    fn helper_get(&self, helper: &str, server: &str) -> Result<Option<Credential>, AuthError> {
        let program = format!("docker-credential-{helper}");
        let mut child = match Command::new(&program)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AuthError::HelperMissing {
                    helper: helper.to_string(),
                    path: self.path.clone(),
                })
            }
            Err(e) => {
                return Err(AuthError::Helper {
                    helper: helper.to_string(),
                    message: e.to_string(),
                })
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading its input is reported by its exit status below.
            let _ = stdin.write_all(server.as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| AuthError::Helper {
            helper: helper.to_string(),
            message: e.to_string(),
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            if stdout.contains("credentials not found") {
                return Ok(None);
            }
            let message = if stdout.is_empty() {
                String::from_utf8_lossy(&out.stderr).trim().to_string()
            } else {
                stdout
            };
            return Err(AuthError::Helper {
                helper: helper.to_string(),
                message,
            });
        }
        #[derive(Deserialize)]
        struct HelperReply {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        let reply: HelperReply = serde_json::from_str(&stdout).map_err(|e| AuthError::Helper {
            helper: helper.to_string(),
            message: format!("unreadable reply: {e}"),
        })?;
        if reply.secret.is_empty() {
            return Ok(None);
        }
        // docker stores identity tokens in helpers with the user name "<token>".
        Ok(Some(if reply.username == "<token>" {
            Credential::IdentityToken {
                username: String::new(),
                token: reply.secret,
            }
        } else {
            Credential::Basic {
                username: reply.username,
                password: reply.secret,
            }
        }))
    }
}

impl CredentialLookup for DockerConfig {
    fn lookup(&self, registry: &str) -> Result<Option<Credential>, AuthError> {
        let file = self.read()?;
        let wanted = key_host(registry);
        let same = |key: &str| {
            let h = key_host(key);
            h == wanted || (is_docker_hub(&h) && is_docker_hub(&wanted))
        };
        let helper = file
            .cred_helpers
            .iter()
            .find(|(k, _)| same(k))
            .map(|(_, v)| v.clone())
            .or_else(|| file.creds_store.clone());
        if let Some(helper) = helper.filter(|h| !h.is_empty()) {
            return self.helper_get(&helper, &config_key(registry));
        }
        let Some((key, entry)) = file.auths.iter().find(|(k, _)| same(k)) else {
            return Ok(None);
        };
        if let Some(t) = entry.registrytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::RegistryToken(t.clone())));
        }
        let (mut username, mut password) = (
            entry.username.clone().unwrap_or_default(),
            entry.password.clone().unwrap_or_default(),
        );
        if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
            let bad = || AuthError::BadAuthField {
                path: self.path.clone(),
                registry: key.clone(),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (u, p) = decoded.split_once(':').ok_or_else(bad)?;
            username = u.to_string();
            password = p.to_string();
        }
        if let Some(t) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken {
                username,
                token: t.clone(),
            }));
        }
        if username.is_empty() && password.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credential::Basic { username, password }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        let cfg = DockerConfig::locate(Some(dir.path()));
        (dir, cfg)
    }

    #[test]
    fn docker_hub_keys_are_one_registry() {
        let (_d, cfg) = config_with(r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"}}}"#);
        for r in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(
                cfg.lookup(r).unwrap(),
                Some(Credential::Basic {
                    username: "user".into(),
                    password: "pass".into()
                })
            );
        }
        assert_eq!(cfg.lookup("quay.io").unwrap(), None);
        assert_eq!(config_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(config_key("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn keys_with_scheme_and_path_match_by_host() {
        let (_d, cfg) = config_with(
            r#"{"auths":{"https://registry.gitlab.com/v2/":{"auth":"YTpiOmM="},"localhost:5000":{"identitytoken":"tok","auth":"dTpw"}}}"#,
        );
        assert_eq!(
            cfg.lookup("registry.gitlab.com").unwrap(),
            Some(Credential::Basic {
                username: "a".into(),
                password: "b:c".into()
            })
        );
        assert_eq!(
            cfg.lookup("localhost:5000").unwrap(),
            Some(Credential::IdentityToken {
                username: "u".into(),
                token: "tok".into()
            })
        );
    }

    #[test]
    fn malformed_file_and_missing_helper_are_clear_errors() {
        let (_d, cfg) = config_with("{not json");
        let e = cfg.lookup("docker.io").unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("not valid JSON"), "{e}");
        let (_d, cfg) = config_with(r#"{"credsStore":"barge-test-no-such-helper"}"#);
        let e = cfg.lookup("docker.io").unwrap_err().to_string();
        assert!(e.contains("docker-credential-barge-test-no-such-helper"), "{e}");
        let (_d, cfg) = config_with(r#"{"auths":{"x.io":{"auth":"!!!"}}}"#);
        assert!(matches!(cfg.lookup("x.io"), Err(AuthError::BadAuthField { .. })));
    }

    #[test]
    fn missing_file_means_no_credentials() {
        let d = tempfile::tempdir().unwrap();
        let cfg = DockerConfig::locate(Some(d.path()));
        assert_eq!(cfg.lookup("docker.io").unwrap(), None);
    }
}
