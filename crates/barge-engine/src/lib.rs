//! Workflows that move images between registries, the store and files:
//! pull (through pull-through mirrors when configured), push, copy (with
//! save and load) and mirror.
//!
//! `pull` resolves a reference to one platform's image, then streams each
//! missing layer once: bytes from the socket are hashed, appended to the
//! store's ingest file and decompressed into the layer's snapshot in the same
//! pass, several layers in parallel. A partial download left by an earlier
//! run (even one killed with `kill -9`) is resumed with a `Range` request.
//! Progress is reported through [`Progress`]; this crate prints nothing.
//!
//! `push` sends a stored image: each layer is checked with `HEAD`, mounted
//! from another repository of the same registry when a stored image came
//! from there, or streamed from the store (in chunks when the registry
//! refuses one big body); the manifest goes last.
//!
//! `copy` streams an image between any two transports, digests preserved;
//! `mirror` plans repository and registry copies and re-copies only what
//! changed, found with `HEAD` requests. Both can carry what is attached
//! to an image (`attached`): referrers and cosign's legacy tags.
//!
//! `remote` is the registry toolkit: manifests, remote inspect, digests,
//! configs, blobs, deletion and retagging, without the store; `artifact`
//! pushes and pulls files as OCI artifacts, as oras does; `manifest_list`
//! drafts manifest lists locally and pushes them (docker manifest).
//!
//! It is not for the protocol details (`barge-registry`), the disk layout
//! (`barge-store`) or output formatting (the CLI).

#![forbid(unsafe_code)]

pub mod artifact;
pub mod attached;
mod copy;
pub mod manifest_list;
pub mod mirror;
mod pull;
mod push;
pub mod remote;
pub mod transport;
pub mod trust;

pub use copy::{copy, CopyError, CopyOptions, CopyOutcome};
pub use pull::{pull, PullError, PullMirror, PullOptions, PullOutcome};
pub use push::{push, PushError, PushOptions, PushOutcome};

use barge_oci::Digest;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `job` on every item with at most `workers` threads; stops handing
/// out items after the first error, which it returns.
fn parallel<T: Sync, E: Send>(items: &[T], workers: usize, job: impl Fn(&T) -> Result<(), E> + Sync) -> Result<(), E> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<E>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    if let Err(e) = job(item) {
                        failed.store(true, Ordering::Relaxed);
                        first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Receives progress as a pull or push goes. Called from several threads.
pub trait Progress: Sync {
    /// A line about the whole operation (`latest: Pulling from library/busybox`).
    fn message(&self, _text: &str) {}
    /// A layer changed state.
    fn layer(&self, _layer: &Digest, _state: LayerState) {}
    /// Something the user should know but that does not stop the pull.
    fn warning(&self, _message: &str) {}
}

/// The states a layer goes through, named as docker names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerState {
    /// The layer is needed.
    PullingFsLayer,
    /// Queued behind other layers, or another process is fetching it.
    Waiting,
    /// Picking up a partial download of this many bytes.
    Resuming {
        from: u64,
    },
    /// Bytes arrived and were unpacked: `current` of `total`.
    Downloading {
        current: u64,
        total: u64,
    },
    VerifyingChecksum,
    DownloadComplete,
    /// Stored and unpacked.
    PullComplete,
    /// Already in the store.
    AlreadyExists,
    /// About to be pushed.
    Preparing,
    /// Bytes sent: `current` of `total`.
    Pushing {
        current: u64,
        total: u64,
    },
    Pushed,
    /// The registry has it.
    LayerAlreadyExists,
    /// Linked from another repository of the registry.
    MountedFrom(String),
    /// A foreign layer, left to its URLs.
    SkippedForeign,
}

impl LayerState {
    /// docker's wording.
    pub fn label(&self) -> String {
        match self {
            LayerState::PullingFsLayer => "Pulling fs layer".into(),
            LayerState::Waiting => "Waiting".into(),
            LayerState::Resuming { from } => format!("Resuming download at byte {from}"),
            LayerState::Downloading { .. } => "Downloading".into(),
            LayerState::VerifyingChecksum => "Verifying Checksum".into(),
            LayerState::DownloadComplete => "Download complete".into(),
            LayerState::PullComplete => "Pull complete".into(),
            LayerState::AlreadyExists => "Already exists".into(),
            LayerState::Preparing => "Preparing".into(),
            LayerState::Pushing { .. } => "Pushing".into(),
            LayerState::Pushed => "Pushed".into(),
            LayerState::LayerAlreadyExists => "Layer already exists".into(),
            LayerState::MountedFrom(repo) => format!("Mounted from {repo}"),
            LayerState::SkippedForeign => "Skipped foreign layer".into(),
        }
    }

    /// Bytes moved so far and in all, for a transfer in progress.
    pub fn transfer(&self) -> Option<(u64, u64)> {
        match self {
            LayerState::Downloading { current, total } | LayerState::Pushing { current, total } => {
                Some((*current, *total))
            }
            _ => None,
        }
    }
}

/// Progress that goes nowhere (`pull -q`).
pub struct Silent;

impl Progress for Silent {}
