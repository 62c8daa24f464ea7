//! barge's on-disk store: an OCI image layout with tags, resumable
//! downloads and overlay-form layer snapshots.
//!
//! Layout under the root (see `docs/architecture.md`): `oci/` is a plain OCI
//! image layout that skopeo and umoci read; `ingest/` holds partial
//! downloads kept for resume; `snapshots/<chain-id>/fs` holds each layer
//! applied once in overlayfs form. Every write is atomic (temp file, fsync,
//! rename, fsync of the directory) and a blob becomes visible only after its
//! digest is verified. Processes coordinate with `flock`: additions take the
//! store lock shared, deletions exclusive, each blob download its own lock.
//! [`layout`] is the one writer of OCI layouts, the store's and any other
//! (`barge copy … oci:DIR`): verified blobs, `index.json` changed under a lock.
//!
//! It is not for networking (`barge-registry`) or running containers
//! (`barge-runtime`), and has no opinion on output formatting.

#![forbid(unsafe_code)]

pub mod apply;
mod blobs;
mod check;
pub mod fsutil;
mod graph;
mod gunzip;
mod images;
mod index;
pub mod layout;
pub mod limits;
pub mod lowers;
pub mod readahead;
mod snapshots;

pub use apply::{ApplyError, ApplyOptions, ApplyStats, Owners};
pub use blobs::{Ingest, IngestReader};
pub use check::CheckReport;
pub use fsutil::LockGuard;
pub use graph::{Graph, ImageNode, LayerNode};
pub use gunzip::Gunzip;
pub use images::{ImageDetails, PruneReport, RemoveEvent};
pub use index::{ImageEntry, ImageMeta, TagOutcome, ANN_SIGNATURES};
pub use layout::{Layout, LayoutError};
pub use limits::LayerLimits;
pub use snapshots::{SnapshotBuilder, SnapshotInfo};

use barge_oci::{Digest, ManifestError};
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("blob {0} is missing from the store")]
    BlobMissing(Digest),
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest} should be {expected} bytes but {actual} arrived")]
    SizeMismatch { digest: Digest, expected: u64, actual: u64 },
    #[error("layer {layer} unpacks to {actual}, but the image config says its diff ID is {expected}")]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("download failed: {0}")]
    Transfer(io::Error),
    #[error("unpacking layer {layer}: {source}")]
    Apply { layer: Digest, source: ApplyError },
    #[error("store is inconsistent: {0}")]
    Corrupt(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("multiple images match the ID prefix {0}; use more digits")]
    AmbiguousImage(String),
    #[error("conflict: unable to delete {0} (must be forced) - image is referenced in multiple repositories")]
    Conflict(String),
    #[error("conflict: unable to remove repository reference \"{reference}\" (must force) - container {container} is using its referenced image {image}")]
    ReferenceInUse {
        reference: String,
        container: String,
        image: String,
    },
    #[error("conflict: unable to delete {image} (must be forced) - image is being used by container {container}")]
    ImageInUse { image: String, container: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("image config: {0}")]
    Config(#[from] barge_oci::image::ConfigError),
}

impl From<LayoutError> for StoreError {
    fn from(e: LayoutError) -> Self {
        match e {
            LayoutError::Io { context, source } => StoreError::Io { context, source },
            LayoutError::Transfer { source, .. } => StoreError::Transfer(source),
            LayoutError::Mismatch {
                expected,
                expected_size,
                actual,
                actual_size,
            } if expected == actual => StoreError::SizeMismatch {
                digest: expected,
                expected: expected_size,
                actual: actual_size,
            },
            LayoutError::Mismatch { expected, actual, .. } => StoreError::DigestMismatch { expected, actual },
            LayoutError::BadIndex { path, why } => {
                StoreError::Corrupt(format!("{} is not a valid OCI index: {why}", path.display()))
            }
        }
    }
}

impl StoreError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> StoreError {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A store rooted at a directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    apply: ApplyOptions,
    limits: LayerLimits,
}

/// The store root: `$BARGE_ROOT`, else `/var/lib/barge` for root, else
/// `$XDG_DATA_HOME/barge` (`~/.local/share/barge`).
pub fn default_root() -> PathBuf {
    if let Some(r) = std::env::var_os("BARGE_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(r);
    }
    if fsutil::host_root() {
        return PathBuf::from("/var/lib/barge");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("barge");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/share/barge")
}

/// The file in each container directory (`<root>/containers/<id>/`) that
/// names the image it uses: the store keeps such images, and their
/// snapshots, while the container exists.
pub const CONTAINER_IMAGE_FILE: &str = "image.id";

/// The store's own directories, all 0700.
const STORE_DIRS: [&str; 8] = [
    "",
    "l",
    "oci",
    "oci/blobs",
    "oci/blobs/sha256",
    "ingest",
    "snapshots",
    "containers",
];

impl Store {
    /// Opens the store at `root`, creating its layout if needed.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        // Absolute, so that paths into the store stay valid after a chdir (container setup does one).
        let absolute;
        let root = if root.is_absolute() {
            root
        } else {
            let cwd = std::env::current_dir().map_err(|e| StoreError::io("finding the current directory", e))?;
            absolute = cwd.join(root);
            absolute.as_path()
        };
        let ctx = |what: &str| format!("creating the store at {} ({what})", root.display());
        // Image configs, manifests, layers and containers are private to the
        // store's owner, as docker keeps its data root: every directory of the
        // store is 0700, and one found open to others (a store made by an
        // older barge, or `--root` naming a 0755 directory) is closed.
        for dir in STORE_DIRS {
            let p = root.join(dir);
            match std::fs::metadata(&p) {
                Ok(md) if md.is_dir() => {
                    if md.permissions().mode() & 0o077 != 0 {
                        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                            StoreError::io(
                                format!(
                                    "{} is open to other users (mode {:o}) and cannot be made private (0700)",
                                    p.display(),
                                    md.permissions().mode() & 0o7777
                                ),
                                e,
                            )
                        })?;
                    }
                }
                _ => std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&p)
                    .map_err(|e| StoreError::io(ctx(dir), e))?,
            }
        }
        let store = Store {
            root: root.to_path_buf(),
            apply: ApplyOptions::for_current_user(),
            limits: LayerLimits::default(),
        };
        // `oci-layout` and an empty `index.json`, if missing.
        store.layout().create(0o700)?;
        Ok(store)
    }

    /// Holds every layer unpacked from now on to `limits`.
    pub fn with_layer_limits(mut self, limits: LayerLimits) -> Store {
        self.limits = limits;
        self
    }

    pub fn layer_limits(&self) -> LayerLimits {
        self.limits
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The OCI image layout directory (`<root>/oci`), for skopeo and umoci.
    pub fn layout_dir(&self) -> PathBuf {
        self.root.join("oci")
    }

    /// An unnamed file (0600) in `ingest/`, for data a command keeps only
    /// while it runs (the entries of an archive being loaded): it holds no
    /// name, so nothing is left behind, whatever happens to the process.
    pub fn spool_file(&self) -> Result<std::fs::File, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.root.join("ingest");
        let ctx = || format!("creating a spool file in {}", dir.display());
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(&dir)
        {
            Ok(f) => Ok(f),
            // A file system without O_TMPFILE: a named file, unlinked at once.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EISDIR)) => {
                let path = dir.join(fsutil::temp_name("spool"));
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| StoreError::io(ctx(), e))?;
                std::fs::remove_file(&path).map_err(|e| StoreError::io(ctx(), e))?;
                Ok(f)
            }
            Err(e) => Err(StoreError::io(ctx(), e)),
        }
    }

    /// Shared store lock: held by anything that adds content, so that
    /// deletions (which take it exclusively) never remove what a running
    /// pull is about to reference.
    pub fn lock_shared(&self) -> Result<LockGuard, StoreError> {
        fsutil::lock(&self.root.join("lock"), fsutil::LockKind::Shared)
            .map_err(|e| StoreError::io("locking the store", e))
    }

    /// Exclusive store lock, for removals and garbage collection.
    pub fn lock_exclusive(&self) -> Result<LockGuard, StoreError> {
        fsutil::lock(&self.root.join("lock"), fsutil::LockKind::Exclusive)
            .map_err(|e| StoreError::io("locking the store", e))
    }

    /// The exclusive store lock if no one holds the store now (`None`
    /// while a pull or a build runs), so a caller can say it waits.
    pub fn try_lock_exclusive(&self) -> Result<Option<LockGuard>, StoreError> {
        fsutil::try_lock(&self.root.join("lock"), fsutil::LockKind::Exclusive)
            .map_err(|e| StoreError::io("locking the store", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_an_oci_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        let layout = std::fs::read(store.layout_dir().join("oci-layout")).unwrap();
        assert_eq!(layout, crate::layout::OCI_LAYOUT);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.layout_dir().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        assert!(index["manifests"].as_array().unwrap().is_empty());
        // Opening again keeps what is there.
        Store::open(&dir.path().join("s")).unwrap();
    }
}
