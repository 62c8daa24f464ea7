//! The OCI distribution protocol over HTTP, as barge speaks it.
//!
//! [`Client`] finds each registry's endpoint (HTTPS, or plain HTTP for
//! loopback and `--insecure-registry` hosts, as docker does), answers its
//! challenges (anonymous and credentialed Bearer tokens, Basic), retries
//! with backoff honouring `Retry-After`, fetches manifests with size limits
//! and digest checks, and streams blobs through [`BlobReader`], which
//! resumes with `Range` requests when a connection breaks.
//!
//! It knows nothing about the store's disk layout (`barge-store`) and holds
//! no blob in memory: callers read blobs as streams and verify their
//! digests as they write them.

#![forbid(unsafe_code)]

mod auth;
mod blob;
mod challenge;
mod client;
mod error;
mod known;
mod manage;
mod push;
mod speed;
mod text;

pub use auth::Scope;
pub use blob::BlobReader;
pub use challenge::{parse as parse_challenges, Challenge};
pub use client::{is_loopback, Client, ClientOptions, FetchedManifest, ManifestHead, RateLimit};
pub use error::{ConnectCause, Feature, RegistryError};
pub use push::{MountOutcome, Upload, DEFAULT_PAGE_SIZE};
pub use text::sanitize;
