//! Snapshots: one unpacked layer per chain ID, in overlay lowerdir form.
//!
//! `snapshots/<chain-id hex>/fs` is the layer's content and
//! `snapshots/<chain-id hex>/info.json` its record. A snapshot is built in a
//! hidden temporary directory and renamed into place only when complete and
//! verified, so an existing `snapshots/<hex>` is always whole.

use crate::apply::{apply_tar, ApplyStats};
use crate::fsutil;
use crate::{Store, StoreError};
use barge_oci::digest::HashingReader;
use barge_oci::media::Compression;
use barge_oci::Digest;
use serde::{Deserialize, Serialize};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The record of a completed snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub chain_id: Digest,
    pub diff_id: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
    /// Bytes of file content in this layer.
    pub size: u64,
    /// The xattr that marks opaque directories in this snapshot.
    pub opaque_xattr: String,
}

impl Store {
    pub fn snapshot_dir(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(chain_id.hex())
    }

    /// The directory to use as an overlay lowerdir.
    pub fn snapshot_fs(&self, chain_id: &Digest) -> PathBuf {
        self.snapshot_dir(chain_id).join("fs")
    }

    /// A short path to the snapshot's `fs`, for overlay mount options
    /// (`l/<16 hex digits of the chain ID>`, relative to the store's root):
    /// a symbolic link to `../snapshots/<hex>/fs`, made here if missing.
    /// With 127 layers the options stay well under the kernel's page-sized
    /// limit. If the name is taken by another chain (a prefix collision),
    /// the snapshot's full path relative to the root is used instead.
    pub fn snapshot_link(&self, chain_id: &Digest) -> Result<PathBuf, StoreError> {
        let hex = chain_id.hex();
        let short = Path::new(LINKS).join(&hex[..LINK_NAME_LEN.min(hex.len())]);
        let target = Path::new("..").join("snapshots").join(hex).join("fs");
        let link = self.root.join(&short);
        // symlink() is atomic: the name exists whole or not at all.
        match std::os::unix::fs::symlink(&target, &link) {
            Ok(()) => Ok(short),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match std::fs::read_link(&link) {
                Ok(existing) if existing == target => Ok(short),
                _ => Ok(Path::new("snapshots").join(hex).join("fs")),
            },
            Err(e) => Err(StoreError::io(format!("creating {}", link.display()), e)),
        }
    }

    pub fn has_snapshot(&self, chain_id: &Digest) -> bool {
        self.snapshot_dir(chain_id).join("info.json").is_file()
    }

    pub fn snapshot_info(&self, chain_id: &Digest) -> Result<SnapshotInfo, StoreError> {
        let path = self.snapshot_dir(chain_id).join("info.json");
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))
    }

    /// Starts building the snapshot `chain_id` in a temporary directory.
    pub fn new_snapshot(&self, chain_id: &Digest) -> Result<SnapshotBuilder, StoreError> {
        let prefix = format!("tmp-{}", chain_id.short());
        self.remove_stale_builds(&prefix);
        let tmp = self.root.join("snapshots").join(fsutil::temp_name(&prefix));
        std::fs::create_dir(&tmp).map_err(|e| StoreError::io(format!("creating {}", tmp.display()), e))?;
        // Held while building: an unlocked build directory belongs to a process that died.
        let lock = fsutil::lock(&tmp.join(BUILD_LOCK), fsutil::LockKind::Exclusive)
            .map_err(|e| StoreError::io(format!("locking {}", tmp.display()), e))?;
        let fs = tmp.join("fs");
        std::fs::create_dir(&fs).map_err(|e| StoreError::io(format!("creating {}", fs.display()), e))?;
        Ok(SnapshotBuilder {
            store: self.clone(),
            chain_id: chain_id.clone(),
            tmp,
            committed: false,
            _lock: lock,
        })
    }

    /// Makes sure a stored layer blob is unpacked into its snapshot,
    /// checking its diff ID. Returns the stats when it had to be applied.
    pub fn unpack_layer(
        &self,
        layer: &barge_oci::Descriptor,
        diff_id: &Digest,
        chain_id: &Digest,
        parent: Option<&Digest>,
    ) -> Result<Option<ApplyStats>, StoreError> {
        if self.has_snapshot(chain_id) {
            return Ok(None);
        }
        let compression = barge_oci::media::layer_compression(&layer.media_type).unwrap_or(Compression::None);
        let mut file = self.open_blob(&layer.digest)?;
        let builder = self.new_snapshot(chain_id)?;
        let (actual, stats) = builder.apply(&mut file, compression, &layer.digest)?;
        if actual != *diff_id {
            return Err(StoreError::DiffIdMismatch {
                layer: layer.digest.clone(),
                expected: diff_id.clone(),
                actual,
            });
        }
        builder.commit(&actual, parent, &stats)?;
        Ok(Some(stats))
    }

    /// Removes earlier builds of a snapshot left by processes that died
    /// (killed mid-pull, say): build directories whose lock nobody holds.
    fn remove_stale_builds(&self, prefix: &str) {
        let Ok(entries) = std::fs::read_dir(self.root.join("snapshots")) else {
            return;
        };
        let marker = format!(".{prefix}-");
        for e in entries.flatten() {
            if !e.file_name().to_str().is_some_and(|n| n.starts_with(&marker)) {
                continue;
            }
            if let Ok(Some(_stale)) = fsutil::try_lock(&e.path().join(BUILD_LOCK), fsutil::LockKind::Exclusive) {
                let _ = fsutil::remove_tree(&e.path());
            }
        }
    }
}

const BUILD_LOCK: &str = "building.lock";
/// The store's directory of short links to snapshots (see [`Store::snapshot_link`]).
pub const LINKS: &str = "l";
const LINK_NAME_LEN: usize = 16;

/// A snapshot being built; removed on drop unless committed.
pub struct SnapshotBuilder {
    store: Store,
    chain_id: Digest,
    tmp: PathBuf,
    committed: bool,
    _lock: fsutil::LockGuard,
}

impl SnapshotBuilder {
    pub fn fs_path(&self) -> PathBuf {
        self.tmp.join("fs")
    }

    /// Decompresses `reader` and applies the tar stream, hashing the
    /// uncompressed bytes. Reads the stream to its end and returns the diff ID.
    ///
    /// Two threads share the work: one reads (and so downloads, hashes and
    /// stores the blob) and decompresses; this one hashes the tar stream and
    /// writes the files. Chunks pass between them through a short queue.
    pub fn apply(
        &self,
        reader: &mut (dyn Read + Send),
        compression: Compression,
        layer: &Digest,
    ) -> Result<(Digest, ApplyStats), StoreError> {
        let apply_err = |source| StoreError::Apply {
            layer: layer.clone(),
            source,
        };
        // A failing read of the network stream is a transfer problem, not a bad layer.
        let read_err = |e: io::Error| match crate::blobs::take_transfer_error(e) {
            Ok(remote) => StoreError::Transfer(remote),
            Err(e) => match crate::limits::exceeded(&e) {
                Some(why) => apply_err(crate::ApplyError::TooLarge(why)),
                None => apply_err(crate::ApplyError::Tar(e)),
            },
        };
        let (reader, compressed) = crate::limits::Counting::new(reader);
        let compressed = (compression != Compression::None).then_some(compressed);
        let limits = self.store.limits;
        // Made on the reading thread: ISA-L's decoder cannot move between threads.
        let decompress = move || {
            let decompressed: Box<dyn Read + '_> = match compression {
                Compression::None => Box::new(reader),
                Compression::Gzip => Box::new(crate::gunzip::Gunzip::new(reader)),
                Compression::Zstd => Box::new(
                    zstd::stream::read::Decoder::new(reader).map_err(|e| io::Error::other(format!("zstd: {e}")))?,
                ),
            };
            Ok(crate::limits::Limited::new(decompressed, limits, compressed))
        };
        std::thread::scope(|scope| {
            let ahead = crate::readahead::read_ahead_with(scope, decompress, CHUNK, QUEUE_CHUNKS);
            let mut hashing = HashingReader::new(ahead);
            let stats = apply_tar(&mut hashing, &self.fs_path(), self.store.apply).map_err(|e| match e {
                crate::ApplyError::Tar(io) => read_err(io),
                crate::ApplyError::Io { path, source } => match crate::blobs::take_transfer_error(source) {
                    Ok(remote) => StoreError::Transfer(remote),
                    Err(source) => apply_err(crate::ApplyError::Io { path, source }),
                },
                other => apply_err(other),
            })?;
            // The tar end-of-archive blocks and any padding are part of the diff ID.
            io::copy(&mut hashing, &mut io::sink()).map_err(read_err)?;
            let (diff_id, _) = hashing.finish();
            Ok((diff_id, stats))
        })
    }

    /// Makes the snapshot visible. If another process completed the same
    /// snapshot first, theirs is kept and this one discarded.
    pub fn commit(
        mut self,
        diff_id: &Digest,
        parent: Option<&Digest>,
        stats: &ApplyStats,
    ) -> Result<SnapshotInfo, StoreError> {
        let info = SnapshotInfo {
            chain_id: self.chain_id.clone(),
            diff_id: diff_id.clone(),
            parent: parent.cloned(),
            size: stats.size,
            opaque_xattr: self.store.apply.opaque_xattr().to_string(),
        };
        let bytes = serde_json::to_vec_pretty(&info).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let info_path = self.tmp.join("info.json");
        std::fs::write(&info_path, bytes).map_err(|e| StoreError::io(format!("writing {}", info_path.display()), e))?;
        // One syncfs makes every file of the layer durable before it becomes visible.
        let dir = std::fs::File::open(&self.tmp).map_err(|e| StoreError::io("opening the snapshot", e))?;
        rustix::fs::syncfs(&dir).map_err(|e| StoreError::io("syncing the snapshot", e.into()))?;
        let dest = self.store.snapshot_dir(&self.chain_id);
        match std::fs::rename(&self.tmp, &dest) {
            Ok(()) => {
                self.committed = true;
                let _ = std::fs::remove_file(dest.join(BUILD_LOCK));
                if let Some(parent) = dest.parent() {
                    fsutil::sync_dir(parent).map_err(|e| StoreError::io("syncing the snapshot directory", e))?;
                }
            }
            // Someone else finished it first (ENOTEMPTY/EEXIST): theirs is as good.
            Err(_) if self.store.has_snapshot(&self.chain_id) => {}
            Err(e) => {
                return Err(StoreError::io(
                    format!("moving snapshot {} into place", self.chain_id),
                    e,
                ))
            }
        }
        Ok(info)
    }
}

impl Drop for SnapshotBuilder {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fsutil::remove_tree(&self.tmp);
        }
    }
}

/// Is this a leftover of an interrupted snapshot build?
pub(crate) fn is_temp(name: &Path) -> bool {
    name.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".tmp-"))
}

/// Decompressed bytes per hand-over between the two threads of `apply`.
const CHUNK: usize = 256 << 10;
/// Chunks in flight: at most 2 MiB per layer.
const QUEUE_CHUNKS: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_links_name_snapshots_and_never_another() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let chain = Digest::of(b"layer");
        std::fs::create_dir_all(store.snapshot_fs(&chain)).unwrap();
        std::fs::write(store.snapshot_fs(&chain).join("f"), b"x").unwrap();
        let short = store.snapshot_link(&chain).unwrap();
        assert_eq!(short, Path::new("l").join(&chain.hex()[..16]));
        assert_eq!(store.snapshot_link(&chain).unwrap(), short, "made once, found again");
        assert_eq!(std::fs::read(dir.path().join(&short).join("f")).unwrap(), b"x");
        // A name taken by another chain: the snapshot's own path instead.
        let link = dir.path().join(&short);
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("../snapshots/other/fs", &link).unwrap();
        assert_eq!(
            store.snapshot_link(&chain).unwrap(),
            Path::new("snapshots").join(chain.hex()).join("fs")
        );
    }
}
