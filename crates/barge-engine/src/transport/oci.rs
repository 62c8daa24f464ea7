//! `oci:DIR[:REF]`: an OCI image layout, read and written through the
//! store's [`Layout`], its images named by their `ref.name` annotation.

use super::{pick_image, read_capped, Destination, Fetched, Source};
use crate::CopyError;
use barge_oci::image::MAX_MANIFEST_BYTES;
use barge_oci::{Descriptor, Digest, Reference};
use barge_store::Layout;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The annotation that names an image of a layout's index.
pub(super) const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, CopyError> {
    let f = File::open(path).map_err(|e| CopyError::io(format!("reading {}", path.display()), e))?;
    read_capped(f, limit, &path.display())
}

/// Reads an image out of an OCI image layout; its paths are the store's [`Layout`]'s.
pub struct OciSource {
    pub layout: Layout,
    pub reference: Option<String>,
}

impl OciSource {
    pub fn new(dir: &Path, reference: Option<String>) -> OciSource {
        OciSource {
            layout: Layout::at(dir),
            reference,
        }
    }

    fn index(&self) -> Result<Vec<Descriptor>, CopyError> {
        #[derive(serde::Deserialize)]
        struct Index {
            #[serde(default)]
            manifests: Vec<Descriptor>,
        }
        let bytes = read_limited(&self.layout.index_path(), MAX_MANIFEST_BYTES)?;
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| CopyError::Invalid(format!("{}/index.json: {e}", self.layout.dir().display())))?;
        // A row barge pointed at the OCI form of a Docker manifest gives
        // the original, whose digest is the registry's.
        Ok(index.manifests.into_iter().map(|d| self.layout.original(d)).collect())
    }
}

impl Source for OciSource {
    fn manifest(&self) -> Result<Fetched, CopyError> {
        let index = self.index()?;
        let name = self.reference.as_deref();
        let i = pick_image(
            &index,
            name,
            |d| d.annotation(REF_NAME) == name,
            &self.layout.dir().display(),
            "oci:DIR:REF",
        )?;
        let desc = &index[i];
        let bytes = read_limited(&self.layout.blob_path(&desc.digest), MAX_MANIFEST_BYTES)?;
        Fetched::new(bytes, &desc.media_type).verify(&desc.digest)
    }

    fn manifest_by_digest(&self, digest: &Digest) -> Result<Fetched, CopyError> {
        let bytes = read_limited(&self.layout.blob_path(digest), MAX_MANIFEST_BYTES)?;
        Fetched::sniffed(bytes)?.verify(digest)
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>, CopyError> {
        let p = self.layout.blob_path(&desc.digest);
        Ok(Box::new(
            File::open(&p).map_err(|e| CopyError::io(format!("opening {}", p.display()), e))?,
        ))
    }
}

/// Writes into an OCI image layout through the store's layout writer, so
/// that several copies into one layout, at once, keep every tag.
pub struct OciDestination {
    pub layout: Layout,
    pub reference: Option<String>,
}

impl OciDestination {
    pub fn new(dir: &Path, reference: Option<String>) -> Result<OciDestination, CopyError> {
        let layout = Layout::at(dir);
        layout.create(0o755)?;
        Ok(OciDestination { layout, reference })
    }
}

impl Destination for OciDestination {
    fn has_blob(&self, desc: &Descriptor) -> Result<bool, CopyError> {
        Ok(self.layout.has_blob(&desc.digest))
    }

    fn put_blob(&self, desc: &Descriptor, reader: &mut dyn Read) -> Result<(), CopyError> {
        Ok(self.layout.put_blob(desc, reader)?)
    }

    fn put_manifest(&self, m: &Fetched, top: bool, _names: &[Reference]) -> Result<(), CopyError> {
        let mut desc = Descriptor::new(&m.media_type, m.digest.clone(), m.bytes.len() as u64);
        self.layout.put_blob_bytes(&desc, &m.bytes)?;
        if !top {
            return Ok(());
        }
        if let Some(r) = &self.reference {
            desc.annotations = Some(BTreeMap::from([(REF_NAME.to_string(), r.clone())]));
        }
        self.layout.update_index(|rows| {
            rows.retain(|d| match &self.reference {
                Some(r) => d.annotation(REF_NAME) != Some(r.as_str()),
                None => d.digest != m.digest,
            });
            rows.push(desc);
            Ok::<_, CopyError>(())
        })
    }
}
