//! `builder prune`: the build cache the store keeps apart from images.
//!
//! Two kinds: the directories of `RUN --mount=type=cache` (one per id)
//! and the layer cache, which maps a step's key to a stored layer. As
//! BuildKit's prune, the cache mounts always go and so do the cache
//! entries whose layers no image uses; `all` drops every entry (the
//! layers images use stay, with those images). It runs under the store's
//! exclusive lock, which a build holds shared from start to tag, so a
//! running build's cache mounts and layers are never removed: prune waits.

use crate::BuildError;
use barge_store::{fsutil, Store};
use std::path::Path;

/// The store's directory of `RUN --mount=type=cache` caches, one per id.
pub(crate) const CACHE_MOUNTS: &str = "build-cache-mounts";
/// The store's directory of layer cache entries, one file per step key.
pub(crate) const LAYER_CACHE: &str = "build-cache";

/// What [`prune`] removed.
#[derive(Debug, Default)]
pub struct BuildCachePruned {
    /// Cache mount directories and cache entries, by their names in the store.
    pub removed: Vec<String>,
    /// Bytes freed: the cache mounts' files and the layers only the cache used.
    pub reclaimed: u64,
}

/// Removes the build cache (see the module doc). `select` is told when
/// each cache mount and (with `all`) cache entry was last written, in
/// seconds since the epoch, and keeps it by saying false (`prune
/// --filter until=`); entries whose layers no image uses go with the
/// store's garbage in any case. `waiting` is called once if a build or a
/// pull holds the store, before waiting for it.
pub fn prune(
    store: &Store,
    all: bool,
    select: &dyn Fn(i64) -> bool,
    waiting: &dyn Fn(),
) -> Result<BuildCachePruned, BuildError> {
    let lock = match store.try_lock_exclusive()? {
        Some(l) => l,
        None => {
            waiting();
            store.lock_exclusive()?
        }
    };
    let mut out = BuildCachePruned::default();
    let mounts = store.root().join(CACHE_MOUNTS);
    for entry in entries(&mounts)? {
        let path = entry.path();
        // Lock files stay: a build that opened one must lock the same file as the next.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) || !select(modified(&entry)) {
            continue;
        }
        out.reclaimed += fsutil::du(&path);
        // Renamed first, so an interrupted prune never leaves a half cache under its id.
        let doomed = mounts.join(fsutil::temp_name("tmp-del"));
        let name = entry.file_name().to_string_lossy().into_owned();
        let gone = if name.starts_with(".tmp-") {
            fsutil::remove_tree(&path)
        } else {
            std::fs::rename(&path, &doomed).and_then(|()| fsutil::remove_tree(&doomed))
        };
        gone.map_err(pruning(&path))?;
        out.removed.push(name);
    }
    let layers = store.root().join(LAYER_CACHE);
    if all {
        for entry in entries(&layers)?.iter().filter(|e| select(modified(e))) {
            remove_file(&entry.path(), &mut out)?;
        }
    }
    out.reclaimed += store.collect_garbage(&lock)?;
    // The entries whose layers went with the garbage (used by no image) go too.
    for entry in entries(&layers)? {
        let path = entry.path();
        let blob = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<crate::steps::CachedLayer>(&b).ok());
        // A build-time stamp (no layer) is the filter's to keep; a dead entry goes.
        let dead = blob.as_ref().is_some_and(|l| !store.has_blob(&l.digest));
        if dead || (blob.is_none() && select(modified(&entry))) {
            remove_file(&path, &mut out)?;
        }
    }
    Ok(out)
}

/// One record of the build cache, as `system df` counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord {
    /// Its name in the store: a cache mount's directory, a cache entry's key.
    pub id: String,
    /// BuildKit's words: `exec.cachemount` or `regular`.
    pub kind: &'static str,
    /// Bytes: a cache mount's files, a cached layer's blob.
    pub size: u64,
    /// A stored image uses the layer too: prune leaves its bytes with the image.
    pub shared: bool,
    /// Seconds since the epoch the record was last written.
    pub modified: i64,
}

/// Every record of the build cache, without locking the store (a reading
/// taken while a build runs is that moment's).
pub fn usage(store: &Store) -> Result<Vec<CacheRecord>, BuildError> {
    let mut out = Vec::new();
    for entry in entries(&store.root().join(CACHE_MOUNTS))? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_dir()) && !name.starts_with('.') {
            out.push(CacheRecord {
                size: fsutil::du(&entry.path()),
                modified: modified(&entry),
                id: name,
                kind: "exec.cachemount",
                shared: false,
            });
        }
    }
    let mut image_layers = std::collections::HashSet::new();
    for e in store.entries()? {
        if let Ok((_, config)) = store.manifest_and_config(&e.manifest.digest) {
            image_layers.extend(config.rootfs.diff_ids);
        }
    }
    for entry in entries(&store.root().join(LAYER_CACHE))? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let layer = std::fs::read(entry.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<crate::steps::CachedLayer>(&b).ok());
        // Only entries whose layer is still stored count: prune drops the others' files.
        let Some(layer) = layer.filter(|l| store.has_blob(&l.digest) && !name.starts_with('.')) else {
            continue;
        };
        out.push(CacheRecord {
            size: layer.size,
            shared: image_layers.contains(&layer.diff_id),
            modified: modified(&entry),
            id: name,
            kind: "regular",
        });
    }
    Ok(out)
}

/// When a record was last written, in seconds since the epoch.
fn modified(e: &std::fs::DirEntry) -> i64 {
    use std::os::unix::fs::MetadataExt;
    e.metadata().map(|m| m.mtime()).unwrap_or(0)
}

fn entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>, BuildError> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.collect::<Result<Vec<_>, _>>().map_err(pruning(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(pruning(dir)(e)),
    }
}

fn remove_file(path: &Path, out: &mut BuildCachePruned) -> Result<(), BuildError> {
    std::fs::remove_file(path).map_err(pruning(path))?;
    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
        if !name.starts_with('.') {
            out.removed.push(name.to_string());
        }
    }
    Ok(())
}

fn pruning(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    crate::fs::io_err(format!("pruning {}", path.display()))
}
