//! Errors of the registry client.

use barge_oci::{Digest, ManifestError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {host}: {message}")]
    Connect {
        host: String,
        message: String,
        hint: Option<String>,
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
    #[error("{what} from {host}: {source}")]
    Manifest {
        what: String,
        host: String,
        source: ManifestError,
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
    #[error(transparent)]
    Credentials(#[from] barge_auth::AuthError),
}

fn detail(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(": {c}: {m}"),
        (Some(c), None) => format!(": {c}"),
        (None, Some(m)) => format!(": {m}"),
        (None, None) => String::new(),
    }
}

impl RegistryError {
    /// What the user should try, when barge knows.
    pub fn hint(&self) -> Option<&str> {
        match self {
            RegistryError::Connect { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }
}
