//! Tags: `oci/index.json`, one descriptor per tag or pinned digest.
//!
//! Each descriptor carries `org.opencontainers.image.ref.name` with the full
//! reference (`docker.io/library/busybox:latest`), which is what
//! `skopeo copy oci:<root>/oci:<ref>` looks up. An image that lost its last
//! tag stays as a descriptor without a name: a dangling image, as docker
//! keeps them. barge's own annotations cache what `barge images` shows, so
//! listing reads this one file.

use crate::layout::{Index, Layout};
use crate::{Store, StoreError};
use barge_oci::image::{ImageConfig, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES};
use barge_oci::{media, Descriptor, Digest, Manifest, Reference};
use std::collections::BTreeMap;

pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANN_CREATED: &str = "org.opencontainers.image.created";
pub const ANN_IMAGE_ID: &str = "dev.barge.image.id";
pub const ANN_REPO_DIGEST: &str = "dev.barge.image.repo-digest";
pub const ANN_SIZE: &str = "dev.barge.image.size";
/// The digests (comma-separated) of the signatures a policy verified when the image was pulled.
pub const ANN_SIGNATURES: &str = "dev.barge.image.verified-signatures";

/// What barge records about an image alongside its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    /// The config digest: docker's image ID.
    pub image_id: Digest,
    /// What the registry's tag resolved to (an index digest for multi-platform images).
    pub repo_digest: Option<Digest>,
    pub created: Option<String>,
    /// Bytes of file content of all layers.
    pub size: u64,
}

/// One row of `index.json`: a tag, a pinned digest, or a dangling image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// `None` for a dangling image.
    pub reference: Option<Reference>,
    pub manifest: Descriptor,
    pub meta: ImageMeta,
}

/// What tagging did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagOutcome {
    /// The tag already named this image.
    Unchanged,
    /// The tag is new, or moved here from another image.
    Tagged,
}

impl Store {
    /// The store's OCI layout (`<root>/oci`), its index lock `<root>/index.lock`.
    pub fn layout(&self) -> Layout {
        Layout::with_lock_file(&self.layout_dir(), &self.root.join("index.lock"))
    }

    pub(crate) fn read_index(&self) -> Result<Index, StoreError> {
        Ok(self.layout().read_index()?)
    }

    /// Read-modify-write of the index under its lock.
    pub(crate) fn update_index<T>(
        &self,
        f: impl FnOnce(&mut Vec<Descriptor>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.layout().update_index(f)
    }

    /// Every image row of the index. Rows written by other tools (skopeo
    /// into this layout, say) get their metadata from the blobs; rows whose
    /// blobs are missing, or that are not image manifests, are left out.
    pub fn entries(&self) -> Result<Vec<ImageEntry>, StoreError> {
        let index = self.read_index()?;
        let mut out = Vec::with_capacity(index.manifests.len());
        for d in index.manifests {
            if let Some(e) = self.entry_from_descriptor(d) {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn entry_from_descriptor(&self, d: Descriptor) -> Option<ImageEntry> {
        let reference = match d.annotation(ANN_REF_NAME) {
            Some(name) => Some(Reference::parse(name).ok()?),
            None => None,
        };
        let cached = (|| {
            Some(ImageMeta {
                image_id: d.annotation(ANN_IMAGE_ID)?.parse().ok()?,
                repo_digest: d.annotation(ANN_REPO_DIGEST).and_then(|s| s.parse().ok()),
                created: d.annotation(ANN_CREATED).map(str::to_string),
                size: d.annotation(ANN_SIZE)?.parse().ok()?,
            })
        })();
        let meta = match cached {
            Some(m) => m,
            None => {
                if !media::is_image_manifest(&d.media_type) {
                    return None;
                }
                let (_, config) = self.manifest_and_config(&d.digest).ok()?;
                let manifest = self.image_manifest(&d.digest).ok()?;
                ImageMeta {
                    image_id: manifest.config.digest.clone(),
                    repo_digest: None,
                    created: config.created.clone(),
                    size: self
                        .image_size(&config)
                        .unwrap_or_else(|| manifest.layers.iter().fold(0u64, |t, l| t.saturating_add(l.size))),
                }
            }
        };
        Some(ImageEntry {
            reference,
            manifest: d,
            meta,
        })
    }

    /// The image manifest stored under `digest`.
    pub fn image_manifest(&self, digest: &Digest) -> Result<barge_oci::ImageManifest, StoreError> {
        let bytes = self.read_blob(digest, MAX_MANIFEST_BYTES)?;
        match Manifest::parse(&bytes, None)? {
            Manifest::Image { manifest, .. } => Ok(*manifest),
            Manifest::Index { .. } => Err(StoreError::Corrupt(format!(
                "{digest} is an index, not an image manifest"
            ))),
        }
    }

    /// The raw and parsed config of the image whose manifest is `digest`.
    pub fn manifest_and_config(&self, digest: &Digest) -> Result<(Vec<u8>, ImageConfig), StoreError> {
        let manifest = self.image_manifest(digest)?;
        let raw = self.read_blob(&manifest.config.digest, MAX_CONFIG_BYTES)?;
        let config = ImageConfig::parse(&raw)?;
        Ok((raw, config))
    }

    /// Sum of the snapshot sizes of an image, if all its snapshots exist.
    pub fn image_size(&self, config: &ImageConfig) -> Option<u64> {
        barge_oci::image::chain_ids(&config.rootfs.diff_ids)
            .iter()
            .map(|c| self.snapshot_info(c).ok().map(|i| i.size))
            .sum()
    }

    /// Records an image without a name (docker's `Loaded image ID`), unless it has rows already.
    pub fn add_dangling(&self, manifest: &Descriptor, meta: &ImageMeta) -> Result<(), StoreError> {
        let id = meta.image_id.to_string();
        self.update_index(|rows| {
            if rows
                .iter()
                .any(|d| d.annotation(ANN_IMAGE_ID) == Some(id.as_str()) || d.digest == manifest.digest)
            {
                return Ok(());
            }
            let mut desc = Descriptor::new(&manifest.media_type, manifest.digest.clone(), manifest.size);
            desc.platform = manifest.platform.clone();
            let mut ann = BTreeMap::new();
            ann.insert(ANN_IMAGE_ID.to_string(), id.clone());
            ann.insert(ANN_SIZE.to_string(), meta.size.to_string());
            if let Some(c) = &meta.created {
                ann.insert(ANN_CREATED.to_string(), c.clone());
            }
            desc.annotations = Some(ann);
            rows.push(desc);
            Ok(())
        })
    }

    /// Records on the row of `reference` the signatures verified for it
    /// (read back with [`ANN_SIGNATURES`]); none removes the record.
    pub fn record_signatures(&self, reference: &Reference, signatures: &[Digest]) -> Result<(), StoreError> {
        let name = reference.to_string();
        let list: Vec<String> = signatures.iter().map(Digest::to_string).collect();
        self.update_index(|rows| {
            for d in rows
                .iter_mut()
                .filter(|d| d.annotation(ANN_REF_NAME) == Some(name.as_str()))
            {
                let ann = d.annotations.get_or_insert_with(BTreeMap::new);
                if list.is_empty() {
                    ann.remove(ANN_SIGNATURES);
                } else {
                    ann.insert(ANN_SIGNATURES.to_string(), list.join(","));
                }
            }
            Ok(())
        })
    }

    /// Points `reference` at an image. A tag that named another image moves;
    /// that image is kept as dangling if nothing else names it. Dangling rows
    /// of this image go, as it is named now.
    pub fn tag(
        &self,
        reference: &Reference,
        manifest: &Descriptor,
        meta: &ImageMeta,
    ) -> Result<TagOutcome, StoreError> {
        let name = reference.to_string();
        let image_id = meta.image_id.to_string();
        self.update_index(|rows| {
            let mut desc = Descriptor::new(&manifest.media_type, manifest.digest.clone(), manifest.size);
            desc.platform = manifest.platform.clone();
            let mut ann = BTreeMap::new();
            ann.insert(ANN_REF_NAME.to_string(), name.clone());
            ann.insert(ANN_IMAGE_ID.to_string(), meta.image_id.to_string());
            ann.insert(ANN_SIZE.to_string(), meta.size.to_string());
            if let Some(c) = &meta.created {
                ann.insert(ANN_CREATED.to_string(), c.clone());
            }
            if let Some(r) = &meta.repo_digest {
                ann.insert(ANN_REPO_DIGEST.to_string(), r.to_string());
            }
            desc.annotations = Some(ann);

            let existing = rows
                .iter()
                .position(|d| d.annotation(ANN_REF_NAME) == Some(name.as_str()));
            if let Some(i) = existing {
                let old = rows.remove(i);
                if old.digest == desc.digest && old.annotations == desc.annotations {
                    rows.insert(i, old);
                    return Ok(TagOutcome::Unchanged);
                }
                // The same image, possibly under another manifest: compare image IDs where known.
                let same_image = |d: &Descriptor| match (d.annotation(ANN_IMAGE_ID), old.annotation(ANN_IMAGE_ID)) {
                    (Some(a), Some(b)) => a == b,
                    _ => d.digest == old.digest,
                };
                let still_named = rows
                    .iter()
                    .any(|d| same_image(d) && d.annotation(ANN_REF_NAME).is_some());
                let retagged_same = old.annotation(ANN_IMAGE_ID) == Some(image_id.as_str());
                // As docker: the image the tag left keeps its digest reference
                // (`busybox@sha256:…`) if it was pulled, else it is dangling unless named otherwise.
                let digest_name = old
                    .annotation(ANN_REPO_DIGEST)
                    .and_then(|d| d.parse::<Digest>().ok())
                    .zip(Reference::parse(&name).ok())
                    .map(|(d, r)| r.with_digest(d).to_string());
                if !retagged_same {
                    match digest_name {
                        Some(dn) if !rows.iter().any(|d| d.annotation(ANN_REF_NAME) == Some(dn.as_str())) => {
                            let mut kept = old.clone();
                            if let Some(a) = kept.annotations.as_mut() {
                                a.insert(ANN_REF_NAME.to_string(), dn);
                            }
                            rows.push(kept);
                        }
                        Some(_) => {}
                        None if !still_named => {
                            let mut dangling = old.clone();
                            if let Some(a) = dangling.annotations.as_mut() {
                                a.remove(ANN_REF_NAME);
                                a.remove(ANN_REPO_DIGEST);
                            }
                            rows.push(dangling);
                        }
                        None => {}
                    }
                }
            }
            // This image is named now: it is no longer dangling.
            rows.retain(|d| {
                let dangling_of_this = d.annotation(ANN_REF_NAME).is_none()
                    && (d.digest == desc.digest || d.annotation(ANN_IMAGE_ID) == Some(image_id.as_str()));
                !dangling_of_this
            });
            rows.push(desc);
            Ok(TagOutcome::Tagged)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_files_keep_what_barge_does_not_know() {
        let text = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":7,"annotations":{"x":"y"}}],"annotations":{"made.by":"skopeo"},"custom":[1,2]}"#;
        let index: Index = serde_json::from_str(text).unwrap();
        assert_eq!(index.manifests.len(), 1);
        assert_eq!(index.manifests[0].annotation("x"), Some("y"));
        let back: serde_json::Value = serde_json::to_value(&index).unwrap();
        let original: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, original, "every field survives a read and write");
        assert!(serde_json::from_str::<Index>(r#"{"manifests":[]}"#).is_err());
        let empty: Index = serde_json::from_str(r#"{"schemaVersion":2,"manifests":null}"#).unwrap();
        assert!(empty.manifests.is_empty());
    }

    #[test]
    fn rows_other_tools_wrote_with_absurd_layer_sizes_do_not_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]}}"#;
        let config_digest = Digest::of(config);
        store.put_blob(&config_digest, config).unwrap();
        let layer = |n: u8| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{}","size":{}}}"#,
                format!("{n:02x}").repeat(32),
                u64::MAX - 1
            )
        };
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{},{}]}}"#,
            config.len(),
            layer(1),
            layer(2)
        );
        let manifest_digest = Digest::of(manifest.as_bytes());
        store.put_blob(&manifest_digest, manifest.as_bytes()).unwrap();
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"example.com/odd:latest"}}}}]}}"#,
            manifest.len()
        );
        std::fs::write(dir.path().join("oci/index.json"), index).unwrap();
        let entries = store.entries().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].meta.size, u64::MAX, "saturated, not wrapped or panicked");
    }
}
