//! Workflows that move images between registries and the store.
//!
//! `pull` resolves a reference to one platform's image, then streams each
//! missing layer once: bytes from the socket are hashed, appended to the
//! store's ingest file and decompressed into the layer's snapshot in the same
//! pass, several layers in parallel. A partial download left by an earlier
//! run (even one killed with `kill -9`) is resumed with a `Range` request.
//! Progress is reported through [`Progress`]; this crate prints nothing.
//!
//! It is not for the protocol details (`barge-registry`), the disk layout
//! (`barge-store`) or output formatting (the CLI).

mod pull;

pub use pull::{pull, LayerState, PullError, PullOptions, PullOutcome};

use barge_oci::Digest;

/// Receives progress as a pull goes. Called from several threads.
pub trait Progress: Sync {
    /// Before any layer: `tag_or_digest: Pulling from repository`.
    fn start(&self, _tag_or_digest: &str, _repository: &str) {}
    /// A layer changed state.
    fn layer(&self, _layer: &Digest, _state: LayerState) {}
    /// Something the user should know but that does not stop the pull.
    fn warning(&self, _message: &str) {}
}

/// Progress that goes nowhere (`pull -q`).
pub struct Silent;

impl Progress for Silent {}
