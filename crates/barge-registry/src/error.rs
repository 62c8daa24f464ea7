//! Errors of the registry client.

use barge_oci::{Digest, ManifestError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {host}: {cause}")]
    Connect {
        host: String,
        /// Why, as the transport reported it; the hint is chosen from it.
        cause: ConnectCause,
        /// Was the host already trusted without verification (loopback or
        /// `--insecure-registry`)? Then `--insecure-registry` cannot help.
        insecure: bool,
    },
    #[error("registry {host} answered {method} {path} with HTTP {status}{}", detail(.code, .message))]
    Status {
        host: String,
        method: String,
        path: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    #[error("access to {repository} on {host} was denied: the repository does not exist or needs 'barge login {host}'{}", detail(.code, .message))]
    Unauthorized {
        host: String,
        repository: String,
        code: Option<String>,
        message: Option<String>,
    },
    #[error("manifest for {reference} not found: manifest unknown")]
    ManifestNotFound { reference: String },
    #[error("blob {digest} not found in {repository}")]
    BlobNotFound { repository: String, digest: Digest },
    /// A foreign layer none of whose URLs answered, and not in the registry either.
    #[error("foreign layer {digest} of {repository} could not be fetched from its URLs ({tried}), and the registry does not have it")]
    ForeignBlob {
        repository: String,
        digest: Digest,
        tried: String,
    },
    // The message says the cause (`error`), so it is not also a `source`:
    // a printed cause chain would repeat it.
    #[error("{what} from {host}: {error}")]
    Manifest {
        what: String,
        host: String,
        error: ManifestError,
    },
    #[error("content from {host} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        host: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what} from {host} is larger than the {limit} bytes allowed")]
    TooLarge { what: String, host: String, limit: u64 },
    #[error("{what} from {host} arrived too slowly: {detail}")]
    TooSlow { what: String, host: String, detail: String },
    #[error("{registry} rejected the login: {message}")]
    LoginRejected { registry: String, message: String },
    #[error("token server {realm} failed: {message}")]
    Token { realm: String, message: String },
    #[error("refusing to send credentials for {host} to {realm} over plain HTTP")]
    InsecureRealm { host: String, realm: String },
    #[error("registry {host} redirected to {location}, which barge refuses: {why}")]
    Redirect {
        host: String,
        location: String,
        why: String,
    },
    #[error("reading blob {digest} from {host} failed after {attempts} attempts: {message}")]
    BlobTransfer {
        host: String,
        digest: Digest,
        attempts: u32,
        message: String,
    },
    /// The registry refuses an operation it may leave out: deletion is
    /// off by default in docker-registry, and Docker Hub and GitLab keep
    /// `_catalog` to themselves.
    #[error("registry {host} does not allow {feature}: it answered HTTP {status}{}", detail(.code, &None))]
    Unsupported {
        host: String,
        feature: Feature,
        status: u16,
        code: Option<String>,
    },
    #[error(transparent)]
    Credentials(#[from] barge_auth::AuthError),
}

/// What a registry may refuse to do ([`RegistryError::Unsupported`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `DELETE /v2/<name>/manifests/<digest>`.
    Delete,
    /// `GET /v2/_catalog`.
    Catalog,
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Feature::Delete => "deleting manifests",
            Feature::Catalog => "listing its repositories (_catalog)",
        })
    }
}

fn detail(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(": {c}: {m}"),
        (Some(c), None) => format!(": {c}"),
        (None, Some(m)) => format!(": {m}"),
        (None, None) => String::new(),
    }
}

/// Why a registry could not be reached. Kept apart from its text so that
/// the hint fits the cause: a name that does not resolve and a TLS handshake
/// that fails want different advice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectCause {
    /// The host name does not resolve (the resolver's words).
    #[error("the name does not resolve ({0})")]
    HostNotFound(String),
    /// The host answered, but nothing accepts connections on the port.
    #[error("connection refused")]
    Refused,
    /// The TLS handshake failed: plain HTTP reached as HTTPS, or a
    /// certificate that does not verify.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("timed out ({0})")]
    TimedOut(String),
    /// Anything else: a reset connection, an answer that is not HTTP.
    #[error("{0}")]
    Other(String),
}

impl RegistryError {
    /// The registry error an I/O error from a [`crate::BlobReader`]
    /// carries, or the I/O error back when it carries none (a failed write
    /// downstream, say).
    pub fn from_io(e: std::io::Error) -> Result<RegistryError, std::io::Error> {
        if !e.get_ref().is_some_and(|i| i.is::<RegistryError>()) {
            return Err(e);
        }
        match e.into_inner().map(|i| i.downcast::<RegistryError>()) {
            Some(Ok(r)) => Ok(*r),
            Some(Err(other)) => Err(std::io::Error::other(other)),
            None => Err(std::io::Error::other("transfer failed")),
        }
    }

    /// What the user should try, when barge knows.
    pub fn hint(&self) -> Option<String> {
        let (host, cause, insecure) = match self {
            RegistryError::Connect { host, cause, insecure } => (host, cause, insecure),
            RegistryError::Unsupported { feature, .. } => return Some(feature_hint(*feature)),
            _ => return None,
        };
        Some(match cause {
            ConnectCause::HostNotFound(_) => {
                format!("check the name {host}, and whether this machine is offline or its DNS is down")
            }
            ConnectCause::Refused => {
                format!("nothing listens on {host}: check that the registry is running and the port is right")
            }
            ConnectCause::Tls(_) if !insecure => {
                format!("if {host} serves plain HTTP or a self-signed certificate, pass --insecure-registry {host}")
            }
            ConnectCause::Tls(_) | ConnectCause::TimedOut(_) | ConnectCause::Other(_) => {
                "check that the registry is running and the address is right".to_string()
            }
        })
    }
}

fn feature_hint(feature: Feature) -> String {
    match feature {
        Feature::Delete => "deletion is disabled on this registry: its operator must enable it \
            (docker-registry: storage.delete.enabled: true, or REGISTRY_STORAGE_DELETE_ENABLED=true)"
            .into(),
        Feature::Catalog => "Docker Hub, GitLab and others keep _catalog to administrators or do not offer it: \
            list one repository's tags with 'barge tags REPO', or log in if this registry wants credentials"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(cause: ConnectCause, insecure: bool) -> String {
        RegistryError::Connect {
            host: "reg.example:5000".into(),
            cause,
            insecure,
        }
        .hint()
        .unwrap_or_default()
    }

    #[test]
    fn connection_hints_fit_their_cause() {
        let dns = hint(ConnectCause::HostNotFound("no address".into()), false);
        assert!(dns.contains("check the name reg.example:5000"), "{dns}");
        let refused = hint(ConnectCause::Refused, false);
        assert!(refused.contains("nothing listens on reg.example:5000"), "{refused}");
        let tls = hint(ConnectCause::Tls("bad certificate".into()), false);
        assert!(tls.contains("--insecure-registry reg.example:5000"), "{tls}");
        // Already trusted: --insecure-registry would change nothing.
        let trusted = hint(ConnectCause::Tls("bad record".into()), true);
        assert!(!trusted.contains("--insecure-registry"), "{trusted}");
        for h in [dns, refused] {
            assert!(!h.contains("--insecure-registry"), "{h}");
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        let refused = |feature| RegistryError::Unsupported {
            host: "reg.example".into(),
            feature,
            status: 405,
            code: Some("UNSUPPORTED".into()),
        };
        let delete = refused(Feature::Delete);
        assert_eq!(
            delete.to_string(),
            "registry reg.example does not allow deleting manifests: it answered HTTP 405: UNSUPPORTED"
        );
        assert!(delete
            .hint()
            .unwrap_or_default()
            .contains("REGISTRY_STORAGE_DELETE_ENABLED=true"));
        let catalog = refused(Feature::Catalog);
        assert!(catalog.to_string().contains("listing its repositories (_catalog)"));
        assert!(catalog.hint().unwrap_or_default().contains("barge tags REPO"));
    }

    #[test]
    fn registry_errors_come_back_out_of_io_errors() {
        let inside = std::io::Error::other(RegistryError::ManifestNotFound { reference: "x".into() });
        assert!(matches!(
            RegistryError::from_io(inside),
            Ok(RegistryError::ManifestNotFound { .. })
        ));
        let plain = std::io::Error::new(std::io::ErrorKind::WriteZero, "disk full");
        assert_eq!(
            RegistryError::from_io(plain).map_err(|e| e.kind()).err(),
            Some(std::io::ErrorKind::WriteZero)
        );
    }
}
