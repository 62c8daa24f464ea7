//! The one writer of OCI image layouts: the store's `oci/` and the `oci:`
//! destination of `barge copy` both go through it.
//!
//! A layout is `oci-layout`, `blobs/sha256/<hex>` and `index.json`, as
//! skopeo and umoci read them. Blobs appear only once verified, under a
//! unique temporary name that is fsynced and renamed. `index.json` is
//! changed read-modify-write under an exclusive `flock` on a lock file
//! (`.barge-index.lock` in the layout directory unless told otherwise) and
//! replaced atomically (unique temp file, fsync, rename, fsync of the
//! directory), so that concurrent writers, threads or processes, never
//! lose each other's rows.
//!
//! skopeo, podman and umoci read only OCI media types from a layout, so a
//! Docker v2s2 manifest or manifest list that becomes a row of `index.json`
//! is written twice: its exact bytes, and its OCI form
//! ([`barge_oci::image::docker_to_oci`], same config and layer blobs). The
//! row points at the OCI form and names the original in
//! [`ANN_ORIGINAL`]; [`Layout::read_index`] and [`Layout::update_index`]
//! give barge the original back, so digests (push, copy, `RepoDigests`)
//! are the registry's.

use crate::fsutil::{self, LockGuard, LockKind};
use barge_oci::image::MAX_MANIFEST_BYTES;
use barge_oci::{media, Descriptor, Digest, Hasher};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file a layout's writers take before changing `index.json`.
pub const INDEX_LOCK_FILE: &str = ".barge-index.lock";

/// On a row of `index.json` that points at the OCI form of a Docker
/// manifest: the digest of the original, kept in `blobs/` beside it.
pub const ANN_ORIGINAL: &str = "dev.barge.original-manifest";

/// The content of `oci-layout`.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// Reading the blob's source failed (not the layout).
    #[error("reading blob {digest}: {source}")]
    Transfer { digest: Digest, source: io::Error },
    #[error("content does not match its descriptor: expected {expected} ({expected_size} bytes), got {actual} ({actual_size} bytes)")]
    Mismatch {
        expected: Digest,
        expected_size: u64,
        actual: Digest,
        actual_size: u64,
    },
    #[error("{path} is not a valid OCI index: {why}")]
    BadIndex { path: PathBuf, why: String },
}

impl LayoutError {
    fn io(context: impl Into<String>, source: io::Error) -> LayoutError {
        LayoutError::Io {
            context: context.into(),
            source,
        }
    }
}

/// `index.json`: the rows, and whatever else the file holds, kept as it is.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Fields barge does not know, kept as they are.
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

impl Index {
    /// An index without rows.
    pub fn empty() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.to_string()),
            manifests: Vec::new(),
            other: serde_json::Map::new(),
        }
    }
}

// By hand rather than derived: serde's `flatten` would buffer the whole
// document (every manifest row) before reading it, which costs more than
// the parse itself on a store with thousands of tags.
impl<'de> Deserialize<'de> for Index {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Index;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an OCI image index")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Index, A::Error> {
                let mut index = Index {
                    schema_version: 0,
                    media_type: None,
                    manifests: Vec::new(),
                    other: serde_json::Map::new(),
                };
                let mut version = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "schemaVersion" => version = Some(map.next_value()?),
                        "mediaType" => index.media_type = map.next_value()?,
                        "manifests" => {
                            index.manifests = map.next_value::<Option<Vec<Descriptor>>>()?.unwrap_or_default()
                        }
                        _ => {
                            let v = map.next_value()?;
                            index.other.insert(key, v);
                        }
                    }
                }
                index.schema_version = version.ok_or_else(|| serde::de::Error::missing_field("schemaVersion"))?;
                Ok(index)
            }
        }
        d.deserialize_map(Fields)
    }
}

/// An OCI image layout directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Layout {
    dir: PathBuf,
    lock: PathBuf,
}

impl Layout {
    /// The layout at `dir`, its index lock `dir/.barge-index.lock`. Nothing is created.
    pub fn at(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
            lock: dir.join(INDEX_LOCK_FILE),
        }
    }

    /// The layout at `dir` with its index lock at `lock` (the store keeps
    /// its lock beside the layout, where older barges look for it).
    pub fn with_lock_file(dir: &Path, lock: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
            lock: lock.to_path_buf(),
        }
    }

    /// Creates what is missing of the layout (`blobs/sha256`, `oci-layout`,
    /// an empty `index.json`); keeps what is there. Directories it creates
    /// get `dir_mode`; existing ones keep theirs.
    pub fn create(&self, dir_mode: u32) -> Result<(), LayoutError> {
        use std::os::unix::fs::DirBuilderExt;
        let blobs = self.dir.join("blobs/sha256");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(&blobs)
            .map_err(|e| LayoutError::io(format!("creating {}", blobs.display()), e))?;
        let marker = self.dir.join("oci-layout");
        if !marker.exists() {
            fsutil::write_atomic(&marker, OCI_LAYOUT, 0o644)
                .map_err(|e| LayoutError::io(format!("writing {}", marker.display()), e))?;
        }
        let index = self.index_path();
        if !index.exists() {
            let _lock = self.lock_index()?;
            if !index.exists() {
                self.write_index(&Index::empty())?;
            }
        }
        Ok(())
    }

    /// The layout's directory (for messages).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Stores a blob streamed from `reader`. It becomes visible (renamed
    /// from a unique temporary name, fsynced, directory fsynced) only once
    /// its size and digest match `desc`.
    pub fn put_blob(&self, desc: &Descriptor, reader: &mut dyn Read) -> Result<(), LayoutError> {
        let dest = self.blob_path(&desc.digest);
        let dir = self.dir.join("blobs/sha256");
        let tmp = dir.join(fsutil::temp_name("blob"));
        let io = |e| LayoutError::io(format!("writing {}", dest.display()), e);
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&tmp)
                .map_err(io)?;
            let (actual, actual_size) = copy_hashing(&desc.digest, reader, &mut f).map_err(|e| match e {
                LayoutError::Io { source, .. } => io(source),
                other => other,
            })?;
            if actual != desc.digest || actual_size != desc.size {
                return Err(LayoutError::Mismatch {
                    expected: desc.digest.clone(),
                    expected_size: desc.size,
                    actual,
                    actual_size,
                });
            }
            f.sync_all().map_err(io)?;
            std::fs::rename(&tmp, &dest).map_err(io)?;
            fsutil::sync_dir(&dir).map_err(io)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Stores a blob held in memory (a manifest).
    pub fn put_blob_bytes(&self, desc: &Descriptor, bytes: &[u8]) -> Result<(), LayoutError> {
        self.put_blob(desc, &mut &bytes[..])
    }

    /// Takes the index lock, waiting for other writers.
    fn lock_index(&self) -> Result<LockGuard, LayoutError> {
        fsutil::lock(&self.lock, LockKind::Exclusive)
            .map_err(|e| LayoutError::io(format!("locking {}", self.lock.display()), e))
    }

    /// Reads `index.json` with every row that points at the OCI form of a
    /// Docker manifest turned back into the original's descriptor (no lock
    /// needed: the file is only ever replaced whole).
    pub fn read_index(&self) -> Result<Index, LayoutError> {
        let mut index = self.read_index_raw()?;
        index.manifests = index.manifests.into_iter().map(|d| self.original(d)).collect();
        Ok(index)
    }

    /// The descriptor of the original manifest of a row that points at an
    /// OCI form ([`ANN_ORIGINAL`]); any other row, or one whose original
    /// is gone, as it is.
    pub fn original(&self, row: Descriptor) -> Descriptor {
        original_of(row, |d| std::fs::metadata(self.blob_path(d)).ok().map(|m| m.len()))
    }

    /// Reads `index.json` as it is on disk.
    pub fn read_index_raw(&self) -> Result<Index, LayoutError> {
        let path = self.index_path();
        let bytes = std::fs::read(&path).map_err(|e| LayoutError::io(format!("reading {}", path.display()), e))?;
        serde_json::from_slice(&bytes).map_err(|e| LayoutError::BadIndex {
            path: path.clone(),
            why: e.to_string(),
        })
    }

    /// Replaces `index.json` atomically. Hold [`Layout::lock_index`] first.
    fn write_index(&self, index: &Index) -> Result<(), LayoutError> {
        let path = self.index_path();
        let bytes = serde_json::to_vec(index).map_err(|e| LayoutError::BadIndex {
            path: path.clone(),
            why: e.to_string(),
        })?;
        fsutil::write_atomic(&path, &bytes, 0o644)
            .map_err(|e| LayoutError::io(format!("writing {}", path.display()), e))
    }

    /// Read-modify-write of `index.json` under the index lock. A missing
    /// `index.json` reads as an empty index. `f` sees the rows as
    /// [`Layout::read_index`] gives them; a row it leaves with a Docker
    /// manifest or list is written pointing at the OCI form (made now if
    /// missing, from the original's blob, which must be in the layout).
    pub fn update_index<T, E: From<LayoutError>>(
        &self,
        f: impl FnOnce(&mut Vec<Descriptor>) -> Result<T, E>,
    ) -> Result<T, E> {
        let _lock = self.lock_index()?;
        let mut index = match self.read_index_raw() {
            Err(LayoutError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Index::empty(),
            other => other?,
        };
        let mut known: HashMap<Digest, Descriptor> = HashMap::new();
        let rows = std::mem::take(&mut index.manifests);
        for raw in rows {
            let row = self.original(raw.clone());
            if row.digest != raw.digest {
                known.insert(row.digest.clone(), raw);
            }
            index.manifests.push(row);
        }
        let out = f(&mut index.manifests)?;
        for row in index.manifests.iter_mut() {
            if row.media_type != media::DOCKER_MANIFEST && row.media_type != media::DOCKER_MANIFEST_LIST {
                continue;
            }
            let oci = match known.get(&row.digest) {
                Some(d) => Some(Descriptor::new(&d.media_type, d.digest.clone(), d.size)),
                None => self.write_oci_form(&row.digest, 0)?,
            };
            if let Some(oci) = oci {
                let original = std::mem::replace(&mut row.digest, oci.digest);
                row.media_type = oci.media_type;
                row.size = oci.size;
                row.annotations
                    .get_or_insert_with(Default::default)
                    .insert(ANN_ORIGINAL.to_string(), original.to_string());
            }
        }
        self.write_index(&index)?;
        Ok(out)
    }

    /// Writes the OCI form of the Docker manifest or list stored as
    /// `digest` (and of the list's manifests that are stored) and returns
    /// its descriptor; `None` when the blob is missing or not Docker's.
    fn write_oci_form(&self, digest: &Digest, depth: u32) -> Result<Option<Descriptor>, LayoutError> {
        let path = self.blob_path(digest);
        let bytes = match File::open(&path) {
            Ok(f) => {
                let mut bytes = Vec::new();
                f.take(MAX_MANIFEST_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| LayoutError::io(format!("reading {}", path.display()), e))?;
                bytes
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LayoutError::io(format!("reading {}", path.display()), e)),
        };
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Ok(None);
        }
        let mut failed = None;
        let converted = barge_oci::image::docker_to_oci(&bytes, |entry| {
            if depth > 0 || entry.media_type != media::DOCKER_MANIFEST || failed.is_some() {
                return None;
            }
            self.write_oci_form(&entry.digest, depth + 1).unwrap_or_else(|e| {
                failed = Some(e);
                None
            })
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let Some((media_type, converted)) = converted else {
            return Ok(None);
        };
        let desc = Descriptor::new(media_type, Digest::of(&converted), converted.len() as u64);
        if !self.has_blob(&desc.digest) {
            self.put_blob_bytes(&desc, &converted)?;
        }
        Ok(Some(desc))
    }
}

/// The descriptor of the original manifest a row names in [`ANN_ORIGINAL`]
/// (its size from `size_of`, `None` when the blob is missing); any other
/// row, or one whose original is gone, as it is. For layouts read
/// elsewhere than from a directory (an archive).
pub fn original_of(row: Descriptor, size_of: impl FnOnce(&Digest) -> Option<u64>) -> Descriptor {
    let Some(digest) = row.annotation(ANN_ORIGINAL).and_then(|s| s.parse::<Digest>().ok()) else {
        return row;
    };
    let media_type = match row.media_type.as_str() {
        media::OCI_MANIFEST => media::DOCKER_MANIFEST,
        media::OCI_INDEX => media::DOCKER_MANIFEST_LIST,
        _ => return row,
    };
    let Some(size) = size_of(&digest) else {
        return row;
    };
    let mut out = row;
    out.media_type = media_type.to_string();
    out.digest = digest;
    out.size = size;
    if let Some(ann) = out.annotations.as_mut() {
        ann.remove(ANN_ORIGINAL);
    }
    if out.annotations.as_ref().is_some_and(|a| a.is_empty()) {
        out.annotations = None;
    }
    out
}

/// Copies `reader` into `file` in 1 MiB writes, starting writeback every
/// 8 MiB, and returns the digest and length of what passed.
fn copy_hashing(digest: &Digest, reader: &mut dyn Read, file: &mut File) -> Result<(Digest, u64), LayoutError> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut since = 0usize;
    loop {
        let filled = fsutil::read_full(reader, &mut buf).map_err(|source| LayoutError::Transfer {
            digest: digest.clone(),
            source,
        })?;
        if filled == 0 {
            let len = hasher.len();
            return Ok((hasher.finish(), len));
        }
        hasher.update(&buf[..filled]);
        file.write_all(&buf[..filled])
            .map_err(|e| LayoutError::io("writing a blob", e))?;
        since += filled;
        if since >= 8 << 20 {
            fsutil::start_writeback(file);
            since = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn row(n: usize) -> Descriptor {
        let mut d = Descriptor::new(media::OCI_MANIFEST, Digest::of(n.to_string().as_bytes()), 1);
        d.annotations = Some([("org.opencontainers.image.ref.name".to_string(), format!("t{n}"))].into());
        d
    }

    #[test]
    fn create_makes_a_layout_and_keeps_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(&dir.path().join("l"));
        layout.create(0o755).unwrap();
        assert_eq!(std::fs::read(dir.path().join("l/oci-layout")).unwrap(), OCI_LAYOUT);
        assert!(dir.path().join("l/blobs/sha256").is_dir());
        assert!(layout.read_index().unwrap().manifests.is_empty());
        layout
            .update_index(|rows| {
                rows.push(row(1));
                Ok::<_, LayoutError>(())
            })
            .unwrap();
        layout.create(0o755).unwrap();
        assert_eq!(layout.read_index().unwrap().manifests, vec![row(1)]);
    }

    #[test]
    fn concurrent_updates_lose_no_row_and_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path());
        layout.create(0o755).unwrap();
        let n = 16;
        let barrier = Arc::new(Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let (layout, barrier) = (layout.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    for j in 0..5 {
                        layout
                            .update_index(|rows| {
                                // Widen the window between read and write.
                                std::thread::yield_now();
                                rows.push(row(i * 100 + j));
                                Ok::<_, LayoutError>(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let rows = layout.read_index().unwrap().manifests;
        assert_eq!(rows.len(), n * 5);
        for i in 0..n {
            for j in 0..5 {
                assert!(rows.contains(&row(i * 100 + j)), "row {i}/{j} lost");
            }
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [
                INDEX_LOCK_FILE.to_string(),
                "blobs".into(),
                "index.json".into(),
                "oci-layout".into()
            ],
            "{names:?}"
        );
    }

    #[test]
    fn a_failed_update_leaves_the_index_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path());
        layout.create(0o755).unwrap();
        layout
            .update_index(|rows| {
                rows.push(row(1));
                Ok::<_, LayoutError>(())
            })
            .unwrap();
        let before = std::fs::read(layout.index_path()).unwrap();
        let r: Result<(), LayoutError> = layout.update_index(|rows| {
            rows.clear();
            Err(LayoutError::io("refused", io::Error::other("no")))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(layout.index_path()).unwrap(), before);
    }

    #[test]
    fn blobs_appear_only_when_verified() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path());
        layout.create(0o755).unwrap();
        let data = b"hello layout";
        let good = Descriptor::new(media::OCI_LAYER_GZIP, Digest::of(data), data.len() as u64);
        let bad = Descriptor::new(media::OCI_LAYER_GZIP, Digest::of(b"other"), data.len() as u64);
        let err = layout.put_blob_bytes(&bad, data).unwrap_err();
        assert!(matches!(err, LayoutError::Mismatch { .. }), "{err}");
        assert!(!layout.has_blob(&bad.digest));
        layout.put_blob_bytes(&good, data).unwrap();
        assert_eq!(std::fs::read(layout.blob_path(&good.digest)).unwrap(), data);
        // Nothing but the blob is left in blobs/sha256.
        assert_eq!(std::fs::read_dir(dir.path().join("blobs/sha256")).unwrap().count(), 1);
    }

    #[test]
    fn docker_rows_point_at_an_oci_form_and_read_back_as_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path());
        layout.create(0o755).unwrap();
        let d = Digest::of(b"x");
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{d}","size":1}},"layers":[]}}"#,
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG
        );
        let original = Descriptor::new(media::DOCKER_MANIFEST, Digest::of(m.as_bytes()), m.len() as u64);
        layout.put_blob_bytes(&original, m.as_bytes()).unwrap();
        let mut named = original.clone();
        named.annotations = Some([("org.opencontainers.image.ref.name".to_string(), "t".to_string())].into());
        for _ in 0..2 {
            layout
                .update_index(|rows| {
                    rows.retain(|r| r.digest != original.digest);
                    rows.push(named.clone());
                    Ok::<_, LayoutError>(())
                })
                .unwrap();
        }
        let raw = layout.read_index_raw().unwrap().manifests;
        assert_eq!(raw.len(), 1);
        assert_eq!(raw[0].media_type, media::OCI_MANIFEST);
        assert_eq!(
            raw[0].annotation(ANN_ORIGINAL),
            Some(original.digest.to_string().as_str())
        );
        assert_eq!(raw[0].annotation("org.opencontainers.image.ref.name"), Some("t"));
        let oci = std::fs::read(layout.blob_path(&raw[0].digest)).unwrap();
        assert_eq!(Digest::of(&oci), raw[0].digest);
        assert!(String::from_utf8_lossy(&oci).contains(media::OCI_CONFIG));
        assert_eq!(layout.read_index().unwrap().manifests, vec![named]);
    }

    #[test]
    fn a_docker_row_written_before_reads_as_it_is_until_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path());
        layout.create(0o755).unwrap();
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":1}},"layers":[]}}"#,
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            Digest::of(b"c")
        );
        let old = Descriptor::new(media::DOCKER_MANIFEST, Digest::of(m.as_bytes()), m.len() as u64);
        layout.put_blob_bytes(&old, m.as_bytes()).unwrap();
        // As an older barge wrote it: the Docker row itself.
        let mut index = Index::empty();
        index.manifests.push(old.clone());
        std::fs::write(layout.index_path(), serde_json::to_vec(&index).unwrap()).unwrap();
        assert_eq!(layout.read_index().unwrap().manifests, vec![old.clone()]);
        assert_eq!(layout.read_index_raw().unwrap().manifests, vec![old.clone()]);
        layout.update_index(|_| Ok::<_, LayoutError>(())).unwrap();
        let raw = layout.read_index_raw().unwrap().manifests;
        assert_eq!(raw[0].media_type, media::OCI_MANIFEST);
        assert_eq!(layout.read_index().unwrap().manifests, vec![old]);
    }
}
