//! Images as docker shows them: lookup by name or ID prefix, details,
//! removal with docker's untag/delete rules, pruning and garbage collection.

use crate::index::ImageEntry;
use crate::{snapshots, LockGuard, Store, StoreError};
use barge_oci::image::{chain_ids, ImageConfig, MAX_MANIFEST_BYTES};
use barge_oci::{Descriptor, Digest, Manifest, Reference};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// What `rmi` and `prune` did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveEvent {
    /// A reference removed (familiar form, `busybox:latest`).
    Untagged(String),
    /// An image ID or layer (chain ID) deleted.
    Deleted(Digest),
}

/// Everything `image inspect` and `image history` show.
#[derive(Debug, Clone)]
pub struct ImageDetails {
    pub id: Digest,
    pub manifest: Descriptor,
    /// Familiar `name:tag` references.
    pub repo_tags: Vec<String>,
    /// Familiar `name@digest` references.
    pub repo_digests: Vec<String>,
    pub config_raw: Vec<u8>,
    pub config: ImageConfig,
    pub size: u64,
    /// Size of each layer's content, in manifest order.
    pub layer_sizes: Vec<u64>,
    /// Digests of the signatures a trust policy verified when the image was pulled.
    pub verified_signatures: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub events: Vec<RemoveEvent>,
    pub reclaimed: u64,
}

#[derive(Debug, Default)]
struct GcReport {
    deleted_snapshots: Vec<Digest>,
    reclaimed: u64,
}

fn hex_prefix(s: &str) -> Option<&str> {
    let p = s.strip_prefix("sha256:").unwrap_or(s);
    (!p.is_empty() && p.len() <= 64 && p.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(p)
}

/// The repository a familiar digest reference uses (`busybox@sha256:…`).
fn digest_ref(reference: &Reference, digest: &Digest) -> String {
    format!("{}@{digest}", reference.familiar_name())
}

impl Store {
    /// Finds an image as docker does: first as a reference (`busybox`,
    /// `busybox:1`, `name@sha256:…`), then as an image ID or unique prefix.
    pub fn find_image(&self, name: &str) -> Result<Digest, StoreError> {
        let entries = self.entries()?;
        self.find_in(&entries, name).map(|(id, _)| id)
    }

    /// Returns the image ID and whether it was named by reference.
    fn find_in(&self, entries: &[ImageEntry], name: &str) -> Result<(Digest, Option<Reference>), StoreError> {
        if let Ok(r) = Reference::parse_default_tag(name) {
            if let Some(e) = entries.iter().find(|e| e.reference.as_ref() == Some(&r)) {
                return Ok((e.meta.image_id.clone(), Some(r)));
            }
            // name@digest also finds an image pulled by tag whose repo digest it is.
            if let (Some(d), None) = (r.digest(), r.tag()) {
                if let Some(e) = entries.iter().find(|e| {
                    e.reference.as_ref().is_some_and(|er| er.name() == r.name())
                        && (e.meta.repo_digest.as_ref() == Some(d) || e.manifest.digest == *d)
                }) {
                    return Ok((e.meta.image_id.clone(), None));
                }
            }
        }
        if let Some(prefix) = hex_prefix(name) {
            let ids: BTreeSet<&Digest> = entries
                .iter()
                .map(|e| &e.meta.image_id)
                .filter(|id| id.hex().starts_with(prefix))
                .collect();
            match ids.len() {
                0 => {}
                1 => {
                    return Ok((
                        ids.into_iter()
                            .next()
                            .cloned()
                            .ok_or_else(|| StoreError::NoSuchImage(name.into()))?,
                        None,
                    ))
                }
                _ => return Err(StoreError::AmbiguousImage(name.to_string())),
            }
        }
        let shown = match Reference::parse_default_tag(name) {
            Ok(r) => r.familiar(),
            Err(_) => name.to_string(),
        };
        Err(StoreError::NoSuchImage(shown))
    }

    pub fn image_details(&self, id: &Digest) -> Result<ImageDetails, StoreError> {
        let entries = self.entries()?;
        let mine: Vec<&ImageEntry> = entries.iter().filter(|e| e.meta.image_id == *id).collect();
        let first = mine.first().ok_or_else(|| StoreError::NoSuchImage(id.to_string()))?;
        let (config_raw, config) = self.manifest_and_config(&first.manifest.digest)?;
        let mut repo_tags = Vec::new();
        let mut repo_digests = BTreeSet::new();
        let mut verified_signatures = BTreeSet::new();
        for e in &mine {
            if let Some(list) = e.manifest.annotation(crate::ANN_SIGNATURES) {
                verified_signatures.extend(list.split(',').map(str::to_string));
            }
            let Some(r) = &e.reference else { continue };
            if r.tag().is_some() {
                repo_tags.push(
                    r.with_tag(r.tag().unwrap_or("latest"))
                        .map(|t| t.familiar())
                        .unwrap_or_else(|_| r.familiar()),
                );
            }
            if let Some(d) = r.digest().or(e.meta.repo_digest.as_ref()) {
                repo_digests.insert(digest_ref(r, d));
            }
        }
        let layer_sizes = chain_ids(&config.rootfs.diff_ids)
            .iter()
            .map(|c| self.snapshot_info(c).map(|i| i.size).unwrap_or(0))
            .collect();
        Ok(ImageDetails {
            id: id.clone(),
            manifest: first.manifest.clone(),
            repo_tags,
            repo_digests: repo_digests.into_iter().collect(),
            config_raw,
            config,
            size: first.meta.size,
            layer_sizes,
            verified_signatures: verified_signatures.into_iter().collect(),
        })
    }

    /// Tags an image found by name or ID under a new reference (`docker tag`).
    pub fn tag_image(&self, source: &str, target: &Reference) -> Result<(), StoreError> {
        let _lock = self.lock_shared()?;
        let entries = self.entries()?;
        let (id, _) = self.find_in(&entries, source)?;
        let e = entries
            .iter()
            .find(|e| e.meta.image_id == id)
            .ok_or_else(|| StoreError::NoSuchImage(source.into()))?;
        let mut meta = e.meta.clone();
        meta.repo_digest = None;
        self.tag(target, &e.manifest, &meta)?;
        Ok(())
    }

    /// `docker rmi`: untags a reference, and deletes the image when nothing
    /// names it any more; by ID, deletes the image (untagging it), refusing
    /// without `force` when it is referenced in several places.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<Vec<RemoveEvent>, StoreError> {
        let _lock = self.lock_exclusive()?;
        let entries = self.entries()?;
        // `name@digest` naming the digest a tag was pulled by removes just that digest reference.
        if let Ok(r) = Reference::parse(name) {
            if let (Some(d), None) = (r.digest(), r.tag()) {
                let exact = entries.iter().any(|e| e.reference.as_ref() == Some(&r));
                let holders: Vec<String> = entries
                    .iter()
                    .filter(|e| e.meta.repo_digest.as_ref() == Some(d))
                    .filter_map(|e| {
                        e.reference
                            .as_ref()
                            .filter(|er| er.name() == r.name())
                            .map(|er| er.to_string())
                    })
                    .collect();
                if !exact && !holders.is_empty() {
                    self.update_index(|rows| {
                        for row in rows.iter_mut() {
                            if row
                                .annotation(crate::index::ANN_REF_NAME)
                                .is_some_and(|n| holders.iter().any(|h| h == n))
                            {
                                if let Some(a) = row.annotations.as_mut() {
                                    a.remove(crate::index::ANN_REPO_DIGEST);
                                }
                            }
                        }
                        Ok(())
                    })?;
                    return Ok(vec![RemoveEvent::Untagged(r.familiar())]);
                }
            }
        }
        let (id, by_ref) = self.find_in(&entries, name)?;
        let mut events = Vec::new();
        let refs: Vec<&Reference> = entries
            .iter()
            .filter(|e| e.meta.image_id == id)
            .filter_map(|e| e.reference.as_ref())
            .collect();

        let users = self.container_images().remove(&id).unwrap_or_default();
        if let Some(r) = by_ref {
            let mut remove = vec![r.clone()];
            events.push(RemoveEvent::Untagged(r.familiar()));
            let last_tag_of_repo = r.tag().is_some()
                && !refs
                    .iter()
                    .any(|o| **o != r && o.tag().is_some() && o.name() == r.name());
            if last_tag_of_repo {
                // The last tag of a repository takes that repository's digest references with it,
                // including the digest the tag was pulled by, as docker lists it.
                for o in refs.iter().filter(|o| o.tag().is_none() && o.name() == r.name()) {
                    remove.push((*o).clone());
                    events.push(RemoveEvent::Untagged(o.familiar()));
                }
                let pulled_by = entries
                    .iter()
                    .find(|e| e.reference.as_ref() == Some(&r))
                    .and_then(|e| e.meta.repo_digest.clone());
                if let Some(d) = pulled_by {
                    let dref = RemoveEvent::Untagged(digest_ref(&r, &d));
                    if !events.contains(&dref) {
                        events.push(dref);
                    }
                }
            }
            let remaining = refs.iter().filter(|o| !remove.contains(o)).count();
            if remaining == 0 && !users.is_empty() {
                if !force {
                    return Err(StoreError::ReferenceInUse {
                        reference: r.familiar(),
                        container: users[0][..12.min(users[0].len())].to_string(),
                        image: id.short().to_string(),
                    });
                }
                // Forced: untagged, but a container uses it, so it stays as a dangling image.
                self.untag_all(&id)?;
                return Ok(events);
            }
            self.update_index(|rows| {
                rows.retain(|d| {
                    let name = d.annotation(crate::index::ANN_REF_NAME);
                    !remove.iter().any(|r| Some(r.to_string().as_str()) == name)
                });
                Ok(())
            })?;
            if remaining > 0 {
                return Ok(events);
            }
        } else {
            if !users.is_empty() && !force {
                return Err(StoreError::ImageInUse {
                    image: id.short().to_string(),
                    container: users[0][..12.min(users[0].len())].to_string(),
                });
            }
            if !force && !is_single_reference(&refs) && !refs.is_empty() {
                return Err(StoreError::Conflict(id.short().to_string()));
            }
            for e in entries.iter().filter(|e| e.meta.image_id == id) {
                let Some(r) = &e.reference else { continue };
                events.push(RemoveEvent::Untagged(r.familiar()));
                if let Some(d) = &e.meta.repo_digest {
                    let dref = RemoveEvent::Untagged(digest_ref(r, d));
                    if r.digest().is_none() && !events.contains(&dref) {
                        events.push(dref);
                    }
                }
            }
        }
        if !users.is_empty() {
            // Forced, but a container still uses it: untagged, kept as a dangling image.
            self.untag_all(&id)?;
            return Ok(events);
        }
        self.delete_image_rows(&id)?;
        events.push(RemoveEvent::Deleted(id));
        let gc = self.gc(false)?;
        events.extend(gc.deleted_snapshots.into_iter().map(RemoveEvent::Deleted));
        Ok(events)
    }

    /// Containers using each image: the image IDs in `containers/*/image.id`.
    pub fn container_images(&self) -> std::collections::HashMap<Digest, Vec<String>> {
        let mut out: std::collections::HashMap<Digest, Vec<String>> = std::collections::HashMap::new();
        let Ok(rd) = std::fs::read_dir(self.root.join("containers")) else {
            return out;
        };
        for e in rd.flatten() {
            let Ok(id) = std::fs::read_to_string(e.path().join(crate::CONTAINER_IMAGE_FILE)) else {
                continue;
            };
            if let Ok(d) = id.trim().parse::<Digest>() {
                out.entry(d)
                    .or_default()
                    .push(e.file_name().to_string_lossy().into_owned());
            }
        }
        out
    }

    /// Removes every name of an image, keeping it as one dangling row.
    fn untag_all(&self, id: &Digest) -> Result<(), StoreError> {
        let id = id.to_string();
        self.update_index(|rows| {
            let mine = |d: &Descriptor| d.annotation(crate::index::ANN_IMAGE_ID) == Some(id.as_str());
            let Some(mut keep) = rows.iter().find(|d| mine(d)).cloned() else {
                return Ok(());
            };
            rows.retain(|d| !mine(d));
            if let Some(a) = keep.annotations.as_mut() {
                a.remove(crate::index::ANN_REF_NAME);
                a.remove(crate::index::ANN_REPO_DIGEST);
            }
            rows.push(keep);
            Ok(())
        })
    }

    fn delete_image_rows(&self, id: &Digest) -> Result<(), StoreError> {
        let id = id.to_string();
        let entries = self.entries()?;
        let manifests: HashSet<Digest> = entries
            .iter()
            .filter(|e| e.meta.image_id.to_string() == id)
            .map(|e| e.manifest.digest.clone())
            .collect();
        self.update_index(|rows| {
            rows.retain(|d| !manifests.contains(&d.digest));
            Ok(())
        })
    }

    /// `docker image prune`: removes dangling images (every image with
    /// `all`), then every blob, snapshot and partial download nothing uses.
    /// Only images for which `select` returns true are removed (`image
    /// prune --filter`); it is called under the exclusive store lock, so it
    /// must not lock the store itself.
    pub fn prune(&self, all: bool, select: &mut dyn FnMut(&ImageEntry) -> bool) -> Result<PruneReport, StoreError> {
        let _lock = self.lock_exclusive()?;
        let entries = self.entries()?;
        let mut events = Vec::new();
        let mut victims: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        // Dangling, for docker's prune, is without a tag: digest references do not count.
        let named: HashSet<&Digest> = entries
            .iter()
            .filter(|e| e.reference.as_ref().is_some_and(|r| r.tag().is_some()))
            .map(|e| &e.meta.image_id)
            .collect();
        let used = self.container_images();
        for e in &entries {
            if used.contains_key(&e.meta.image_id) {
                continue;
            }
            if (all || !named.contains(&e.meta.image_id)) && select(e) {
                let v = victims.entry(e.meta.image_id.clone()).or_default();
                if let Some(r) = &e.reference {
                    v.push(r.familiar());
                }
            }
        }
        for (id, refs) in victims {
            self.delete_image_rows(&id)?;
            events.extend(refs.into_iter().map(RemoveEvent::Untagged));
            events.push(RemoveEvent::Deleted(id));
        }
        let gc = self.gc(true)?;
        events.extend(gc.deleted_snapshots.into_iter().map(RemoveEvent::Deleted));
        Ok(PruneReport {
            events,
            reclaimed: gc.reclaimed,
        })
    }

    /// Deletes every blob and snapshot no image uses, for a caller that
    /// dropped references of its own (the builder's layer cache) under
    /// `_exclusive`, the store's exclusive lock. Returns the bytes freed.
    pub fn collect_garbage(&self, _exclusive: &LockGuard) -> Result<u64, StoreError> {
        Ok(self.gc(false)?.reclaimed)
    }

    /// Deletes blobs and snapshots that no index row reaches. With
    /// `partials`, also partial downloads and leftovers of interrupted
    /// snapshot builds. Callers hold the exclusive store lock.
    fn gc(&self, partials: bool) -> Result<GcReport, StoreError> {
        let mut keep_blobs: HashSet<Digest> = HashSet::new();
        let mut keep_snapshots: HashSet<Digest> = HashSet::new();
        let index = self.entries_raw()?;
        for id in self.container_images().keys() {
            // A container's image stays whole even if its rows went (they are kept, but be safe).
            if let Some(d) = index
                .iter()
                .find(|d| d.annotation(crate::index::ANN_IMAGE_ID) == Some(id.to_string().as_str()))
            {
                self.mark(&d.digest, &mut keep_blobs, &mut keep_snapshots, 0)?;
            }
        }
        for d in &index {
            keep_blobs.insert(d.digest.clone());
            if let Some(r) = d
                .annotation(crate::index::ANN_REPO_DIGEST)
                .and_then(|s| s.parse::<Digest>().ok())
            {
                keep_blobs.insert(r);
            }
            self.mark(&d.digest, &mut keep_blobs, &mut keep_snapshots, 0)?;
        }
        // The OCI forms that rows of Docker manifests point at (see `layout`).
        for d in self.layout().read_index_raw()?.manifests {
            if d.annotation(crate::layout::ANN_ORIGINAL).is_some() {
                self.mark(&d.digest, &mut keep_blobs, &mut keep_snapshots, 0)?;
            }
        }
        let mut report = GcReport::default();
        let blob_dir = self.root.join("oci/blobs/sha256");
        for entry in read_dir(&blob_dir)? {
            let name = entry.file_name();
            let keep = name
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
                .is_some_and(|d| keep_blobs.contains(&d));
            if !keep {
                report.reclaimed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(entry.path())
                    .map_err(|e| StoreError::io(format!("removing {}", entry.path().display()), e))?;
            }
        }
        for entry in read_dir(&self.root.join("snapshots"))? {
            let path = entry.path();
            let digest = entry.file_name().to_str().and_then(|n| Digest::from_hex(n).ok());
            let remove = match &digest {
                Some(d) => !keep_snapshots.contains(d),
                None => partials && snapshots::is_temp(&path),
            };
            if remove {
                let size = match &digest {
                    Some(d) => self
                        .snapshot_info(d)
                        .map(|i| i.size)
                        .unwrap_or_else(|_| crate::fsutil::du(&path)),
                    None => crate::fsutil::du(&path),
                };
                report.reclaimed += size;
                // Renamed out of the way first: an interrupted removal must not leave a
                // half-deleted snapshot under its real name.
                let doomed = match &digest {
                    Some(d) => {
                        let to = path.with_file_name(crate::fsutil::temp_name(&format!("tmp-del-{}", d.short())));
                        std::fs::rename(&path, &to)
                            .map_err(|e| StoreError::io(format!("removing {}", path.display()), e))?;
                        let _ = crate::fsutil::sync_dir(&self.root.join("snapshots"));
                        to
                    }
                    None => path.clone(),
                };
                crate::fsutil::remove_tree(&doomed)
                    .map_err(|e| StoreError::io(format!("removing {}", path.display()), e))?;
                if let Some(d) = digest {
                    report.deleted_snapshots.push(d);
                }
            }
        }
        // Short links whose snapshot is gone (`Store::snapshot_link`).
        for entry in read_dir(&self.root.join(snapshots::LINKS))? {
            if std::fs::metadata(entry.path()).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        if partials {
            for entry in read_dir(&self.root.join("ingest"))? {
                let path = entry.path();
                let is_lock = path.extension().is_some_and(|e| e == "lock");
                // A lock file held by a running download stays (the exclusive store lock makes that rare).
                if is_lock {
                    let _ = std::fs::remove_file(&path);
                } else {
                    report.reclaimed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    std::fs::remove_file(&path)
                        .map_err(|e| StoreError::io(format!("removing {}", path.display()), e))?;
                }
            }
        }
        Ok(report)
    }

    /// Marks the closure of a manifest or index: its blobs and layer snapshots.
    fn mark(
        &self,
        digest: &Digest,
        blobs: &mut HashSet<Digest>,
        snaps: &mut HashSet<Digest>,
        depth: u32,
    ) -> Result<(), StoreError> {
        blobs.insert(digest.clone());
        if depth > 4 {
            return Ok(());
        }
        let Ok(bytes) = self.read_blob(digest, MAX_MANIFEST_BYTES) else {
            return Ok(());
        };
        match Manifest::parse(&bytes, None) {
            Ok(Manifest::Image { manifest, .. }) => {
                blobs.insert(manifest.config.digest.clone());
                for l in &manifest.layers {
                    blobs.insert(l.digest.clone());
                }
                if let Ok(raw) = self.read_blob(&manifest.config.digest, barge_oci::image::MAX_CONFIG_BYTES) {
                    if let Ok(config) = ImageConfig::parse(&raw) {
                        snaps.extend(chain_ids(&config.rootfs.diff_ids));
                    }
                }
            }
            Ok(Manifest::Index { index, .. }) => {
                for m in &index.manifests {
                    self.mark(&m.digest, blobs, snaps, depth + 1)?;
                }
            }
            Err(_) => {}
        }
        Ok(())
    }

    fn entries_raw(&self) -> Result<Vec<Descriptor>, StoreError> {
        Ok(self.read_index()?.manifests)
    }
}

fn read_dir(dir: &std::path::Path) -> Result<Vec<std::fs::DirEntry>, StoreError> {
    let rd = std::fs::read_dir(dir).map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
    Ok(rd.filter_map(Result::ok).collect())
}

/// docker's rule: at most one tag, and every digest reference in that tag's repository.
fn is_single_reference(refs: &[&Reference]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let tags: Vec<&&Reference> = refs.iter().filter(|r| r.digest().is_none()).collect();
    if tags.len() > 1 {
        return false;
    }
    let canonical: BTreeSet<String> = refs.iter().filter(|r| r.digest().is_some()).map(|r| r.name()).collect();
    let single = tags.first().map(|t| t.name()).unwrap_or_else(|| refs[0].name());
    canonical.len() == 1 && canonical.contains(&single)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_reference_rule() {
        let a = Reference::parse_default_tag("a:1").unwrap();
        let a2 = Reference::parse_default_tag("a:2").unwrap();
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let ad = Reference::parse(&format!("a@{d}")).unwrap();
        let bd = Reference::parse(&format!("b@{d}")).unwrap();
        assert!(!is_single_reference(&[]));
        assert!(is_single_reference(&[&a]));
        assert!(is_single_reference(&[&a, &ad]));
        assert!(!is_single_reference(&[&a, &a2]));
        assert!(!is_single_reference(&[&a, &bd]));
        assert!(!is_single_reference(&[&ad, &bd]));
    }

    #[test]
    fn hex_prefixes() {
        assert_eq!(hex_prefix("abc123"), Some("abc123"));
        assert_eq!(hex_prefix("sha256:abc"), Some("abc"));
        assert_eq!(hex_prefix("busybox"), None);
        assert_eq!(hex_prefix(""), None);
    }
}
