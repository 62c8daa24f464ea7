//! `barge push`.

use crate::{LayerState, Progress};
use barge_oci::{Descriptor, Digest, Reference};
use barge_registry::{Client, MountOutcome, RegistryError, Upload};
use barge_store::{Store, StoreError};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Layers uploaded at once.
    pub max_concurrent: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions { max_concurrent: 3 }
    }
}

#[derive(Debug, Clone)]
pub struct PushOutcome {
    pub reference: Reference,
    /// The manifest digest, as the registry now serves it.
    pub digest: Digest,
    /// The manifest's size in bytes.
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(Box<RegistryError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("An image does not exist locally with the tag: {0}")]
    NoSuchImage(String),
    #[error("the registry accepted a chunk of blob {0} but holds no more of it than before")]
    Stalled(Digest),
}

impl From<RegistryError> for PushError {
    fn from(e: RegistryError) -> Self {
        PushError::Registry(Box::new(e))
    }
}

/// Pushes the stored image `reference` names to that reference.
pub fn push(
    client: &Client,
    store: &Store,
    reference: &Reference,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<PushOutcome, PushError> {
    let _lock = store.lock_shared()?;
    let entries = store.entries()?;
    let entry = entries
        .iter()
        .find(|e| e.reference.as_ref() == Some(reference))
        .ok_or_else(|| PushError::NoSuchImage(reference.familiar()))?;
    let manifest_bytes = store.read_blob(&entry.manifest.digest, barge_oci::image::MAX_MANIFEST_BYTES)?;
    let manifest = store.image_manifest(&entry.manifest.digest)?;
    progress.message(&format!("The push refers to repository [{}]", reference.name()));

    // Repositories of the same registry that stored images came from: mount sources.
    let mut sources: HashMap<&Digest, String> = HashMap::new();
    let manifests: Vec<_> = entries
        .iter()
        .filter_map(|e| e.reference.as_ref().map(|r| (r, &e.manifest.digest)))
        .filter(|(r, _)| r.registry() == reference.registry() && r.repository() != reference.repository())
        .filter_map(|(r, d)| store.image_manifest(d).ok().map(|m| (r.repository().to_string(), m)))
        .collect();
    for (repo, m) in &manifests {
        for l in &m.layers {
            sources.entry(&l.digest).or_insert_with(|| repo.clone());
        }
    }

    // Docker lists layers top first.
    let layers: Vec<&Descriptor> = manifest.layers.iter().rev().collect();
    for l in &layers {
        progress.layer(&l.digest, LayerState::Preparing);
    }
    crate::parallel(&layers, opts.max_concurrent, |l| {
        if !client.carries(reference, l) {
            progress.layer(&l.digest, LayerState::SkippedForeign);
            return Ok(());
        }
        let state = send_blob(
            client,
            store,
            reference,
            l,
            sources.get(&l.digest).map(String::as_str),
            Some(progress),
        )?;
        progress.layer(&l.digest, state);
        Ok::<(), PushError>(())
    })?;
    send_blob(client, store, reference, &manifest.config, None, None)?;

    let key = reference.manifest_key();
    let digest = client.put_manifest(reference, &key, &entry.manifest.media_type, &manifest_bytes)?;
    if reference.tag().is_some() {
        // As docker does, remember the digest the registry now has for this tag.
        let mut meta = entry.meta.clone();
        meta.repo_digest = Some(digest.clone());
        store.tag(reference, &entry.manifest, &meta)?;
    }
    Ok(PushOutcome {
        reference: reference.clone(),
        digest,
        size: manifest_bytes.len() as u64,
    })
}

/// Makes sure the registry has one blob: already there, mounted, or
/// uploaded in one `PUT`, in `PATCH` chunks if the registry refuses a body
/// that big. A push run again after an interruption finds the blobs that
/// made it with `HEAD` and sends only the rest.
fn send_blob(
    client: &Client,
    store: &Store,
    reference: &Reference,
    blob: &Descriptor,
    mount_from: Option<&str>,
    progress: Option<&dyn Progress>,
) -> Result<LayerState, PushError> {
    if client.blob_exists(reference, &blob.digest)? {
        return Ok(LayerState::LayerAlreadyExists);
    }
    let upload = match mount_from {
        Some(from) => match client.mount_blob(reference, &blob.digest, from)? {
            MountOutcome::Mounted => return Ok(LayerState::MountedFrom(from.to_string())),
            MountOutcome::Upload(upload) => upload,
        },
        None => client.start_upload(reference)?,
    };
    let file = store.open_blob(&blob.digest)?;
    let report = |sent: u64| {
        if let Some(p) = progress {
            p.layer(
                &blob.digest,
                LayerState::Pushing {
                    current: sent,
                    total: blob.size,
                },
            );
        }
    };
    match client.upload_blob(reference, &upload.location, &file, blob.size, &blob.digest, &report) {
        Ok(()) => Ok(LayerState::Pushed),
        Err(RegistryError::Status { status: 413, .. }) => {
            let upload = client.start_upload(reference)?;
            send_chunked(client, reference, blob, &file, &upload, &report)?;
            Ok(LayerState::Pushed)
        }
        Err(e) => Err(e.into()),
    }
}

/// Sends a blob in `PATCH` chunks: half the blob at first, halved again on
/// each 413 but never below the registry's `OCI-Chunk-Min-Length`; then
/// closes the session with the digest.
fn send_chunked(
    client: &Client,
    r: &Reference,
    blob: &Descriptor,
    file: &std::fs::File,
    upload: &Upload,
    report: &(dyn Fn(u64) + Sync),
) -> Result<(), PushError> {
    let min = upload.min_chunk.unwrap_or(0).max(1);
    let mut chunk = (blob.size / 2).max(min);
    let mut location = upload.location.clone();
    let mut offset = 0;
    while offset < blob.size {
        let len = chunk.min(blob.size - offset);
        match client.upload_chunk(r, &location, file, offset, len, report) {
            Ok((next, held)) if held > offset => {
                location = next;
                offset = held;
            }
            Ok(_) => return Err(PushError::Stalled(blob.digest.clone())),
            Err(RegistryError::Status { status: 413, .. }) if chunk / 2 >= min => chunk /= 2,
            Err(e) => return Err(e.into()),
        }
    }
    client.finish_upload(r, &location, &blob.digest)?;
    Ok(())
}
