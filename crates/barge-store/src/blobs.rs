//! Blobs: verified content in `oci/blobs/sha256/`, partial downloads in `ingest/`.

use crate::fsutil::{self, LockGuard, LockKind};
use crate::{Store, StoreError};
use barge_oci::{Digest, Hasher};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

const TEE_CHUNK: usize = 256 * 1024;

/// Wraps an error of the remote stream as it passes through an
/// [`IngestReader`], so that layer unpacking can tell a broken download from
/// a broken layer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransferError(io::Error);

/// The remote error carried by `e`, or `e` itself when it is something else.
pub(crate) fn take_transfer_error(e: io::Error) -> Result<io::Error, io::Error> {
    if e.get_ref().is_some_and(|inner| inner.is::<TransferError>()) {
        match e.into_inner().map(|inner| inner.downcast::<TransferError>()) {
            Some(Ok(t)) => Ok(t.0),
            Some(Err(other)) => Err(io::Error::other(other)),
            None => Err(io::Error::other("transfer failed")),
        }
    } else {
        Err(e)
    }
}

impl Store {
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("oci/blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        File::open(self.blob_path(digest)).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::BlobMissing(digest.clone())
            } else {
                StoreError::io(format!("opening blob {digest}"), e)
            }
        })
    }

    /// Reads a small stored blob (manifest, config) whole, up to `limit` bytes.
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        let f = self.open_blob(digest)?;
        let mut bytes = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::io(format!("reading blob {digest}"), e))?;
        if bytes.len() as u64 > limit {
            return Err(StoreError::Corrupt(format!(
                "blob {digest} is larger than {limit} bytes"
            )));
        }
        Ok(bytes)
    }

    /// Stores a small blob held in memory (manifest, config) after checking its digest.
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let actual = Digest::of(bytes);
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        if self.has_blob(digest) {
            return Ok(());
        }
        fsutil::write_atomic(&self.blob_path(digest), bytes, 0o644)
            .map_err(|e| StoreError::io(format!("writing blob {digest}"), e))
    }

    /// Stores a blob streamed from `reader` (from its first byte), verifying
    /// its size and digest before it becomes visible.
    pub fn put_blob_stream(&self, digest: &Digest, size: u64, reader: &mut dyn Read) -> Result<(), StoreError> {
        let _lock = self.lock_blob(digest)?;
        if self.has_blob(digest) {
            return Ok(());
        }
        let mut ingest = self.ingest(digest, size)?;
        ingest.restart()?;
        ingest.tee(reader)?.commit()?;
        Ok(())
    }

    /// Takes the per-blob lock that serialises downloads of one digest
    /// between processes. Waits while another process holds it.
    pub fn lock_blob(&self, digest: &Digest) -> Result<LockGuard, StoreError> {
        let path = self.root.join("ingest").join(format!("{}.lock", digest.hex()));
        fsutil::lock(&path, LockKind::Exclusive).map_err(|e| StoreError::io(format!("locking {}", path.display()), e))
    }

    /// Like [`Store::lock_blob`] but returns `None` instead of waiting.
    pub fn try_lock_blob(&self, digest: &Digest) -> Result<Option<LockGuard>, StoreError> {
        let path = self.root.join("ingest").join(format!("{}.lock", digest.hex()));
        fsutil::try_lock(&path, LockKind::Exclusive)
            .map_err(|e| StoreError::io(format!("locking {}", path.display()), e))
    }

    /// Starts or resumes the download of a blob. Hold [`Store::lock_blob`] first.
    /// A partial file longer than the blob is discarded.
    pub fn ingest(&self, digest: &Digest, size: u64) -> Result<Ingest, StoreError> {
        let path = self.root.join("ingest").join(digest.hex());
        let ctx = || format!("opening {}", path.display());
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::io(ctx(), e))?;
        let mut offset = file.metadata().map_err(|e| StoreError::io(ctx(), e))?.len();
        if offset > size {
            file.set_len(0).map_err(|e| StoreError::io(ctx(), e))?;
            offset = 0;
        }
        Ok(Ingest {
            store: self.clone(),
            path,
            digest: digest.clone(),
            size,
            offset,
            file,
        })
    }
}

/// A blob being downloaded into `ingest/`. Dropped without
/// [`IngestReader::commit`], the partial file stays for the next run to resume.
pub struct Ingest {
    store: Store,
    path: PathBuf,
    digest: Digest,
    size: u64,
    offset: u64,
    file: File,
}

impl Ingest {
    /// How many bytes are already on disk from an earlier attempt.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Drops the partial content to start again from byte 0.
    pub fn restart(&mut self) -> Result<(), StoreError> {
        self.file
            .set_len(0)
            .map_err(|e| StoreError::io(format!("truncating {}", self.path.display()), e))?;
        self.offset = 0;
        Ok(())
    }

    /// A reader yielding the whole blob: first the bytes already on disk,
    /// then `remote`'s, which it appends to the partial file as they pass.
    /// Everything read is hashed once.
    pub fn tee<R: Read>(self, remote: R) -> Result<IngestReader<R>, StoreError> {
        let existing = File::open(&self.path)
            .map_err(|e| StoreError::io(format!("reopening {}", self.path.display()), e))?
            .take(self.offset);
        Ok(IngestReader {
            existing: Some(existing),
            remote,
            hasher: Hasher::new(),
            buf: vec![0; TEE_CHUNK],
            start: 0,
            end: 0,
            write_failed: None,
            ingest: self,
        })
    }
}

/// See [`Ingest::tee`].
pub struct IngestReader<R> {
    ingest: Ingest,
    existing: Option<io::Take<File>>,
    remote: R,
    hasher: Hasher,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A failed write of the partial file (a full disk): the bytes of that
    /// chunk are lost, so every later read and the commit fail the same way,
    /// whoever swallowed the first error.
    write_failed: Option<(io::ErrorKind, String)>,
}

impl<R: Read> IngestReader<R> {
    fn failure(&self) -> Option<io::Error> {
        self.write_failed.as_ref().map(|(k, m)| io::Error::new(*k, m.clone()))
    }

    fn fill(&mut self) -> io::Result<()> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.start = 0;
        self.end = 0;
        if let Some(existing) = self.existing.as_mut() {
            let n = existing.read(&mut self.buf)?;
            if n > 0 {
                self.hasher.update(&self.buf[..n]);
                self.end = n;
                return Ok(());
            }
            self.existing = None;
        }
        // Read a large chunk so that the file sees few, big writes.
        let mut n = 0;
        while n < self.buf.len() {
            match self.remote.read(&mut self.buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Keep what arrived; the error recurs on the next read.
                Err(_) if n > 0 => break,
                Err(e) => return Err(io::Error::other(TransferError(e))),
            }
        }
        if n > 0 {
            if let Err(e) = self.ingest.file.write_all(&self.buf[..n]) {
                self.write_failed = Some((e.kind(), e.to_string()));
                return Err(e);
            }
            self.hasher.update(&self.buf[..n]);
            self.end = n;
        }
        Ok(())
    }

    /// Reads what is left, checks size and digest, and moves the blob into
    /// place atomically. On a mismatch the partial file is removed.
    pub fn commit(mut self) -> Result<PathBuf, StoreError> {
        let copied = io::copy(&mut self, &mut io::sink());
        if let Some(e) = self.failure() {
            let _ = std::fs::remove_file(&self.ingest.path);
            return Err(StoreError::io("writing the download", e));
        }
        copied.map_err(|e| match take_transfer_error(e) {
            Ok(remote) => StoreError::Transfer(remote),
            Err(local) => StoreError::io("writing the download", local),
        })?;
        let Ingest {
            store,
            path,
            digest,
            size,
            file,
            ..
        } = self.ingest;
        let got = self.hasher.len();
        let actual = self.hasher.finish();
        if got != size || actual != digest {
            drop(file);
            let _ = std::fs::remove_file(&path);
            if got != size {
                return Err(StoreError::SizeMismatch {
                    digest,
                    expected: size,
                    actual: got,
                });
            }
            return Err(StoreError::DigestMismatch {
                expected: digest,
                actual,
            });
        }
        file.sync_all()
            .map_err(|e| StoreError::io(format!("syncing {}", path.display()), e))?;
        drop(file);
        let dest = store.blob_path(&digest);
        std::fs::rename(&path, &dest).map_err(|e| StoreError::io(format!("moving blob {digest} into place"), e))?;
        if let Some(dir) = dest.parent() {
            fsutil::sync_dir(dir).map_err(|e| StoreError::io("syncing the blob directory", e))?;
        }
        Ok(dest)
    }
}

impl<R: Read> Read for IngestReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            self.fill()?;
            if self.start == self.end {
                return Ok(0);
            }
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}
