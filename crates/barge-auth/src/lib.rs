//! Registry credentials, kept the way the docker CLI keeps them.
//!
//! [`AuthStore`] reads and writes docker's `config.json` (`auths` with
//! base64 `user:password`, `identitytoken`, `registrytoken`; `credsStore`;
//! `credHelpers`), talks to `docker-credential-*` helpers, falls back to
//! containers' `auth.json`, and implements [`CredentialLookup`], the trait
//! `barge-registry` asks when a registry wants credentials. [`keyring`] is
//! barge's own helper, backed by the OS keyring (the Secret Service).
//!
//! It is not for HTTP or token exchange (that is `barge-registry`). It never
//! prints, logs or formats a secret: [`Credential`]'s `Debug` redacts them.

#![forbid(unsafe_code)]

mod file;
pub mod helper;
pub mod keyring;
mod store;

pub use store::{AuthStore, ConfigEntry, Stored};

use std::path::PathBuf;

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

impl Credential {
    /// The user name, when there is one.
    pub fn username(&self) -> Option<&str> {
        match self {
            Credential::Basic { username, .. } | Credential::IdentityToken { username, .. } => {
                Some(username.as_str()).filter(|u| !u.is_empty())
            }
            Credential::RegistryToken(_) => None,
        }
    }
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
    // The message says the cause (`error`), so it is not also a `source`:
    // a printed cause chain would repeat it.
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("cannot write {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
    #[error("{path} is not valid JSON ({error}); fix or remove it, barge will not overwrite it")]
    Malformed { path: PathBuf, error: serde_json::Error },
    #[error("{path}: {what}; fix or remove it, barge will not overwrite it")]
    Invalid { path: PathBuf, what: String },
    #[error("{path}: the \"auth\" entry for {registry} is not base64 of user:password")]
    BadAuthField { path: PathBuf, registry: String },
    #[error(
        "credential helper docker-credential-{helper} is not installed (not found on PATH); install it or remove it from {path}"
    )]
    HelperMissing { helper: String, path: PathBuf },
    #[error("credential helper docker-credential-{helper} failed: {message}")]
    Helper { helper: String, message: String },
    #[error(transparent)]
    Keyring(#[from] keyring::KeyringError),
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

pub(crate) fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

/// The host part of a config.json key: schemes and paths stripped.
pub(crate) fn key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    host.to_ascii_lowercase()
}

/// Do two config.json keys name the same registry?
pub(crate) fn same_registry(a: &str, b: &str) -> bool {
    let (a, b) = (key_host(a), key_host(b));
    a == b || (is_docker_hub(&a) && is_docker_hub(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise_like_docker() {
        assert_eq!(config_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(config_key("registry-1.docker.io"), DOCKER_HUB_KEY);
        assert_eq!(config_key("https://index.docker.io/v1/"), DOCKER_HUB_KEY);
        assert_eq!(config_key("localhost:5000"), "localhost:5000");
        assert_eq!(config_key("https://Registry.GitLab.com/v2/"), "registry.gitlab.com");
        assert!(same_registry("http://localhost:5000/v2/", "localhost:5000"));
        assert!(same_registry("index.docker.io", "https://index.docker.io/v1/"));
        assert!(!same_registry("localhost:5000", "localhost:5001"));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credential::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = Credential::IdentityToken {
            username: "u".into(),
            token: "tok-secret".into(),
        };
        assert!(!format!("{c:?}").contains("tok-secret"));
    }
}
