//! Image signatures and the policy that demands them.
//!
//! barge signs and verifies images the way cosign, podman and skopeo do:
//! key-based sigstore signatures (a "simple signing" JSON payload naming the
//! image and its manifest digest, signed with ECDSA P-256 or Ed25519) stored
//! beside the image under cosign's `sha256-<hex>.sig` tag; keys in cosign's
//! files (a password-protected `ENCRYPTED SIGSTORE PRIVATE KEY`, a
//! `PUBLIC KEY`); and containers' `policy.json` and `registries.d`, which say
//! which images must carry which signatures.
//!
//! This crate is formats, cryptography and policy evaluation only: it does no
//! network or store I/O (barge-engine fetches signatures and asks this crate
//! whether to accept an image) and it does not do keyless signing (Fulcio
//! certificates, Rekor transparency logs) or GPG signatures, which it reports
//! as unsupported.

#![forbid(unsafe_code)]

pub mod attach;
pub mod keys;
pub mod payload;
pub mod policy;
pub mod registries_d;

pub use attach::{signature_tag, Attached};
pub use keys::{EncryptedKey, PrivateKey, PublicKey};
pub use payload::Payload;
pub use policy::{Candidate, Decision, IdentityRule, Policy, Requirement, Verified};
pub use registries_d::RegistriesD;

use std::path::{Path, PathBuf};

/// The file podman and skopeo read, used when barge's config directory has none.
pub const SYSTEM_POLICY: &str = "/etc/containers/policy.json";
/// Their registries.d directory.
pub const SYSTEM_REGISTRIES_D: &str = "/etc/containers/registries.d";

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{0}")]
    Key(String),
    #[error("invalid signature: {0}")]
    BadSignature(String),
    #[error("invalid signature payload: {0}")]
    Payload(String),
    #[error("invalid signature manifest: {0}")]
    Attachment(String),
    #[error("invalid policy {}: {msg}", path.display())]
    Policy { path: PathBuf, msg: String },
    #[error("invalid registries.d configuration {}: {msg}", path.display())]
    RegistriesD { path: PathBuf, msg: String },
    #[error("{image} is rejected by the policy: {why} (rule {rule})")]
    Rejected { image: String, rule: String, why: String },
    /// Fetching signatures failed (set by the caller's fetcher).
    #[error("cannot read the signatures of {image}: {msg}")]
    Fetch { image: String, msg: String },
}

/// The policy in force: `CONFIG_DIR/policy.json`, else [`SYSTEM_POLICY`]; `None` when neither exists.
pub fn policy_path(config_dir: &Path) -> Option<PathBuf> {
    [config_dir.join("policy.json"), PathBuf::from(SYSTEM_POLICY)]
        .into_iter()
        .find(|p| p.exists())
}

/// The registries.d in force: `CONFIG_DIR/registries.d` when it exists, else [`SYSTEM_REGISTRIES_D`].
pub fn registries_d_path(config_dir: &Path) -> PathBuf {
    let own = config_dir.join("registries.d");
    if own.is_dir() {
        own
    } else {
        PathBuf::from(SYSTEM_REGISTRIES_D)
    }
}
