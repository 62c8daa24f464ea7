//! The image hierarchy: layers (by chain ID) from base to top, and the
//! images on top of them. Shared base layers are one node.

use crate::{Store, StoreError};
use barge_oci::image::chain_ids;
use barge_oci::Digest;
use std::collections::{BTreeMap, BTreeSet};

/// A layer of the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerNode {
    pub chain_id: Digest,
    pub parent: Option<Digest>,
    /// Bytes of this layer's own content.
    pub size: u64,
}

/// An image: its top layer and its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageNode {
    pub id: Digest,
    /// Chain ID of its top layer (`None` for an image without layers).
    pub top: Option<Digest>,
    /// Familiar names: `busybox:latest`, `app@sha256:…`.
    pub names: Vec<String>,
    pub size: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// Every layer, keyed by chain ID.
    pub layers: BTreeMap<Digest, LayerNode>,
    pub images: Vec<ImageNode>,
}

impl Graph {
    /// Layers whose parent is `parent` (`None`: base layers).
    pub fn children(&self, parent: Option<&Digest>) -> Vec<&LayerNode> {
        self.layers.values().filter(|l| l.parent.as_ref() == parent).collect()
    }

    /// Images whose top layer is `layer`.
    pub fn images_on(&self, layer: Option<&Digest>) -> Vec<&ImageNode> {
        self.images.iter().filter(|i| i.top.as_ref() == layer).collect()
    }
}

impl Store {
    /// The hierarchy of every stored image.
    pub fn graph(&self) -> Result<Graph, StoreError> {
        let entries = self.entries()?;
        let mut by_image: BTreeMap<Digest, (crate::ImageEntry, BTreeSet<String>)> = BTreeMap::new();
        for e in &entries {
            let slot = by_image
                .entry(e.meta.image_id.clone())
                .or_insert_with(|| (e.clone(), BTreeSet::new()));
            if let Some(r) = &e.reference {
                slot.1.insert(r.familiar());
            }
        }
        let mut g = Graph::default();
        for (id, (entry, names)) in by_image {
            let Ok((_, config)) = self.manifest_and_config(&entry.manifest.digest) else {
                continue;
            };
            let chains = chain_ids(&config.rootfs.diff_ids);
            let mut parent: Option<Digest> = None;
            for c in &chains {
                let size = self.snapshot_info(c).map(|i| i.size).unwrap_or(0);
                g.layers.entry(c.clone()).or_insert_with(|| LayerNode {
                    chain_id: c.clone(),
                    parent: parent.clone(),
                    size,
                });
                parent = Some(c.clone());
            }
            g.images.push(ImageNode {
                id,
                top: chains.last().cloned(),
                names: names.into_iter().collect(),
                size: entry.meta.size,
            });
        }
        Ok(g)
    }
}
