//! `docker://NAME[:TAG]`: a repository of a registry, through the client.

use super::{Destination, Fetched, Source};
use crate::CopyError;
use barge_oci::{Descriptor, Digest, Reference};
use barge_registry::{Client, MountOutcome};
use std::io::Read;

pub struct RegistrySource<'c> {
    pub client: &'c Client,
    pub reference: Reference,
}

impl Source for RegistrySource<'_> {
    fn manifest(&self) -> Result<Fetched, CopyError> {
        Ok(self.client.get_manifest(&self.reference)?.into())
    }

    fn manifest_by_digest(&self, digest: &Digest) -> Result<Fetched, CopyError> {
        Ok(self.client.get_manifest_by_digest(&self.reference, digest)?.into())
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>, CopyError> {
        Ok(Box::new(self.client.open_blob(&self.reference, desc, 0)?))
    }

    fn registry(&self) -> Option<&Reference> {
        Some(&self.reference)
    }

    fn client(&self) -> Option<&Client> {
        Some(self.client)
    }

    fn signatures(&self, digest: &Digest) -> Result<Option<crate::trust::SignatureSet>, CopyError> {
        Ok(crate::trust::fetch_signatures(self.client, &self.reference, digest)?)
    }
}

pub struct RegistryDestination<'c> {
    pub client: &'c Client,
    pub reference: Reference,
}

impl Destination for RegistryDestination<'_> {
    fn has_blob(&self, desc: &Descriptor) -> Result<bool, CopyError> {
        Ok(self.client.blob_exists(&self.reference, &desc.digest)?)
    }

    fn put_blob(&self, desc: &Descriptor, reader: &mut dyn Read) -> Result<(), CopyError> {
        self.mount_or_put(desc, reader, None)
    }

    /// A blob of another repository of this registry is mounted; when the
    /// registry declines, the upload session its answer opened is used.
    fn mount_or_put(&self, desc: &Descriptor, blob: &mut dyn Read, from: Option<&Reference>) -> Result<(), CopyError> {
        let from =
            from.filter(|m| m.registry() == self.reference.registry() && m.repository() != self.reference.repository());
        let session = match from {
            Some(m) => match self.client.mount_blob(&self.reference, &desc.digest, m.repository())? {
                MountOutcome::Mounted => return Ok(()),
                MountOutcome::Upload(upload) => upload.location,
            },
            None => self.client.start_upload(&self.reference)?.location,
        };
        self.client
            .upload_blob_stream(&self.reference, &session, blob, desc.size, &desc.digest)?;
        Ok(())
    }

    fn put_manifest(&self, m: &Fetched, top: bool, _names: &[Reference]) -> Result<(), CopyError> {
        let key = if top {
            self.reference.manifest_key()
        } else {
            m.digest.to_string()
        };
        self.client
            .put_manifest(&self.reference, &key, &m.media_type, &m.bytes)?;
        Ok(())
    }

    fn registry(&self) -> Option<(&Client, &Reference)> {
        Some((self.client, &self.reference))
    }

    fn put_signatures(&self, signatures: &crate::trust::SignatureSet) -> Result<(), CopyError> {
        Ok(crate::trust::put_signatures(self.client, &self.reference, signatures)?)
    }
}
