//! `barge:NAME`: barge's own store. Images copied in are unpacked into
//! snapshots and tagged, as a pull would leave them.

use super::{names_to_record, Destination, Fetched, Source};
use crate::CopyError;
use barge_oci::image::{ImageConfig, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES};
use barge_oci::{Descriptor, Digest, Manifest, Reference};
use barge_store::Store;
use std::io::Read;
use std::sync::Mutex;

pub struct StoreSource {
    pub store: Store,
    pub name: String,
}

impl StoreSource {
    fn entry(&self) -> Result<barge_store::ImageEntry, CopyError> {
        let id = self.store.find_image(&self.name)?;
        let entries = self.store.entries()?;
        let by_name = Reference::parse_default_tag(&self.name).ok();
        entries
            .iter()
            .find(|e| e.reference.is_some() && e.reference == by_name)
            .or_else(|| entries.iter().find(|e| e.meta.image_id == id))
            .cloned()
            .ok_or_else(|| CopyError::NotFound(self.name.clone()))
    }
}

impl Source for StoreSource {
    fn manifest(&self) -> Result<Fetched, CopyError> {
        let e = self.entry()?;
        Ok(Fetched::new(
            self.store.read_blob(&e.manifest.digest, MAX_MANIFEST_BYTES)?,
            &e.manifest.media_type,
        ))
    }

    fn manifest_by_digest(&self, digest: &Digest) -> Result<Fetched, CopyError> {
        Fetched::sniffed(self.store.read_blob(digest, MAX_MANIFEST_BYTES)?)
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>, CopyError> {
        Ok(Box::new(self.store.open_blob(&desc.digest)?))
    }

    fn names(&self) -> Vec<Reference> {
        let Ok(id) = self.store.find_image(&self.name) else {
            return Vec::new();
        };
        let entries = self.store.entries().unwrap_or_default();
        let asked = Reference::parse_default_tag(&self.name).ok();
        // The name asked for when it is a tag, else every tag of the image.
        match asked.filter(|r| entries.iter().any(|e| e.reference.as_ref() == Some(r)) && r.tag().is_some()) {
            Some(r) => vec![r],
            None => entries
                .iter()
                .filter(|e| e.meta.image_id == id)
                .filter_map(|e| e.reference.clone())
                .filter(|r| r.tag().is_some())
                .collect(),
        }
    }
}

/// Copies into barge's store: blobs verified, layers unpacked, names tagged.
pub struct StoreDestination {
    pub store: Store,
    /// The name to tag; else the source's names.
    pub reference: Option<Reference>,
    /// What was tagged, with the image ID.
    pub tagged: Mutex<Vec<(Option<Reference>, Digest)>>,
}

impl Destination for StoreDestination {
    fn has_blob(&self, desc: &Descriptor) -> Result<bool, CopyError> {
        Ok(self.store.has_blob(&desc.digest))
    }

    fn put_blob(&self, desc: &Descriptor, reader: &mut dyn Read) -> Result<(), CopyError> {
        self.store
            .put_blob_stream(&desc.digest, desc.size, reader)
            .map_err(CopyError::from_store)
    }

    fn single_platform(&self) -> bool {
        true
    }

    fn put_manifest(&self, m: &Fetched, top: bool, names: &[Reference]) -> Result<(), CopyError> {
        self.store.put_blob(&m.digest, &m.bytes)?;
        let Manifest::Image { manifest, .. } = m.parse()? else {
            return Ok(());
        };
        if !top {
            return Ok(());
        }
        let raw = self.store.read_blob(&manifest.config.digest, MAX_CONFIG_BYTES)?;
        let config = ImageConfig::parse(&raw).map_err(|e| CopyError::Invalid(e.to_string()))?;
        let chains = barge_oci::image::chain_ids(&config.rootfs.diff_ids);
        if chains.len() != manifest.layers.len() {
            return Err(CopyError::Invalid(
                "the config's diff IDs do not match the manifest's layers".into(),
            ));
        }
        for (i, layer) in manifest.layers.iter().enumerate() {
            let parent = i.checked_sub(1).map(|p| &chains[p]);
            self.store
                .unpack_layer(layer, &config.rootfs.diff_ids[i], &chains[i], parent)?;
        }
        let size = chains
            .iter()
            .filter_map(|c| self.store.snapshot_info(c).ok())
            .map(|i| i.size)
            .sum();
        let meta = barge_store::ImageMeta {
            image_id: manifest.config.digest.clone(),
            repo_digest: None,
            created: config.created.clone(),
            size,
        };
        let mut desc = Descriptor::new(&m.media_type, m.digest.clone(), m.bytes.len() as u64);
        desc.platform = Some(config.platform());
        let targets = names_to_record(self.reference.as_ref(), names);
        let mut tagged = self.tagged.lock().unwrap_or_else(|p| p.into_inner());
        if targets.is_empty() {
            // Nothing to name it: kept as a dangling image, docker's "Loaded image ID".
            self.store.add_dangling(&desc, &meta)?;
            tagged.push((None, meta.image_id.clone()));
        }
        for r in targets {
            self.store.tag(&r, &desc, &meta)?;
            tagged.push((Some(r), meta.image_id.clone()));
        }
        Ok(())
    }
}
