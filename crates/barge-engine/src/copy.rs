//! `barge copy` (and `image save`/`load`): images between transports,
//! blobs streamed from source to destination and verified on the way.

use crate::transport::{Destination, Fetched, Source};
use crate::trust::{SignatureError, SignatureSet, TrustPolicy};
use crate::Progress;
use barge_oci::{media, Descriptor, Digest, Manifest, ManifestError, Platform};
use barge_registry::RegistryError;
use barge_store::{LayoutError, StoreError};
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Registry(Box<RegistryError>),
    #[error(transparent)]
    Store(Box<StoreError>),
    #[error(transparent)]
    Manifest(ManifestError),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("{0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid location {location:?}: {why}")]
    BadLocation { location: String, why: String },
    #[error("{host} says its pull rate limit is used up{}; try again later, or log in for a higher limit", quota(.limit, .window))]
    RateLimited {
        host: String,
        limit: Option<u64>,
        window: Option<u64>,
    },
    #[error(transparent)]
    NoMatchingPlatform(#[from] barge_oci::NoMatchingPlatform),
    #[error(transparent)]
    Signature(Box<SignatureError>),
}

impl From<SignatureError> for CopyError {
    fn from(e: SignatureError) -> Self {
        match e {
            SignatureError::Registry(r) => CopyError::Registry(r),
            other => CopyError::Signature(Box::new(other)),
        }
    }
}

fn quota(limit: &Option<u64>, window: &Option<u64>) -> String {
    match (*limit, *window) {
        (Some(l), Some(w)) => format!(" ({l} pulls per {}h)", w as f64 / 3600.0),
        (Some(l), None) => format!(" ({l} pulls)"),
        _ => String::new(),
    }
}

impl From<RegistryError> for CopyError {
    fn from(e: RegistryError) -> Self {
        CopyError::Registry(Box::new(e))
    }
}

impl From<StoreError> for CopyError {
    fn from(e: StoreError) -> Self {
        CopyError::from_store(e)
    }
}

impl From<LayoutError> for CopyError {
    fn from(e: LayoutError) -> Self {
        match e {
            LayoutError::Transfer { source, .. } => CopyError::from_transfer(source),
            LayoutError::Mismatch { expected, actual, .. } => CopyError::DigestMismatch { expected, actual },
            other => CopyError::Store(Box::new(other.into())),
        }
    }
}

impl CopyError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> CopyError {
        CopyError::Io {
            context: context.into(),
            source,
        }
    }

    /// A failed stream: the registry error inside, if that is what it was.
    pub(crate) fn from_transfer(e: io::Error) -> CopyError {
        match RegistryError::from_io(e) {
            Ok(r) => CopyError::Registry(Box::new(r)),
            Err(e) => CopyError::io("copying a blob", e),
        }
    }

    pub(crate) fn from_store(e: StoreError) -> CopyError {
        match e {
            StoreError::Transfer(io) => CopyError::from_transfer(io),
            other => CopyError::Store(Box::new(other)),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Every platform of an index; `None`: yes, unless the destination holds one platform.
    pub all: Option<bool>,
    /// The platform to copy from an index otherwise [default: this host].
    pub platform: Option<Platform>,
    /// Blobs copied at once.
    pub max_concurrent: usize,
    /// The policy a registry source must pass before anything is written; `None`: none.
    pub trust: Option<std::sync::Arc<TrustPolicy>>,
    /// Carry the image's referrers and cosign's `.att`/`.sbom` tags too
    /// (registry to registry); `.sig` signatures go with every copy.
    pub referrers: bool,
    /// Every tag of the source repository, when known (a mirror listed
    /// them): the tags of what is attached to an image (`.sig`, `.att`,
    /// `.sbom`, `sha256-<hex>`) that are not among them are not asked for.
    pub source_tags: Option<std::sync::Arc<std::collections::BTreeSet<String>>>,
}

impl CopyOptions {
    /// Whether the source may hold `tag`: yes, unless its tags are known.
    pub(crate) fn source_may_have(&self, tag: &str) -> bool {
        self.source_tags.as_ref().is_none_or(|t| t.contains(tag))
    }
}

#[derive(Debug, Clone)]
pub struct CopyOutcome {
    /// The digest of the manifest (or index) the destination now names.
    pub digest: Digest,
}

/// Copies the image `src` names to `dst`.
pub fn copy(
    src: &dyn Source,
    dst: &dyn Destination,
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<CopyOutcome, CopyError> {
    let top = src.manifest()?;
    // The policy decides before anything reaches the destination.
    let mut signatures: Option<SignatureSet> = None;
    if let (Some(policy), Some(image)) = (&opts.trust, src.registry()) {
        policy.check(image, &top.digest, &mut || {
            signatures = src
                .signatures(&top.digest)
                .map_err(|e| SignatureError::Copy(e.to_string()))?;
            Ok(signatures.clone())
        })?;
    }
    let names = src.names();
    let all = opts.all.unwrap_or(!dst.single_platform()) && !dst.single_platform();
    // The manifests written, the one the destination names first.
    let mut children = Vec::new();
    let written = match top.parse()? {
        Manifest::Index { index, .. } if all => {
            for child in index
                .manifests
                .iter()
                .filter(|d| media::is_image_manifest(&d.media_type))
            {
                let m = src.manifest_by_digest(&child.digest)?;
                copy_image(src, dst, &m, opts, progress)?;
                dst.put_manifest(&m, false, &names)?;
                children.push(m.digest.clone());
            }
            progress.message("Writing manifest list to image destination");
            dst.put_manifest(&top, true, &names)?;
            top.digest.clone()
        }
        Manifest::Index { index, .. } => {
            let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
            let chosen = index.select(&wanted)?;
            let m = src.manifest_by_digest(&chosen.digest)?;
            copy_image(src, dst, &m, opts, progress)?;
            progress.message("Writing manifest to image destination");
            dst.put_manifest(&m, true, &names)?;
            m.digest.clone()
        }
        Manifest::Image { .. } => {
            copy_image(src, dst, &top, opts, progress)?;
            progress.message("Writing manifest to image destination");
            dst.put_manifest(&top, true, &names)?;
            top.digest.clone()
        }
    };
    // Signatures travel with the image when it kept its digest.
    let signatures = match signatures {
        Some(s) if written == top.digest => Some(s),
        _ if opts.source_may_have(&barge_trust::attach::signature_tag(&written)) => src.signatures(&written)?,
        _ => None,
    };
    if let Some(s) = signatures {
        progress.message("Copying signatures");
        dst.put_signatures(&s)?;
    }
    if let (true, Some(from), Some(to)) = (opts.referrers, src.client().zip(src.registry()), dst.registry()) {
        for subject in std::iter::once(&written).chain(&children) {
            let n = crate::attached::carry(from, to, subject, opts, progress)?;
            if n > 0 {
                progress.message(&format!("Copied {n} referrers of {}", subject.short()));
            }
        }
    }
    Ok(CopyOutcome { digest: written })
}

/// The config and layers of one image manifest.
fn copy_image(
    src: &dyn Source,
    dst: &dyn Destination,
    m: &Fetched,
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<(), CopyError> {
    let Manifest::Image { manifest, .. } = m.parse()? else {
        return Err(CopyError::Invalid(format!("{} is an index inside an index", m.digest)));
    };
    crate::parallel(&manifest.layers, opts.max_concurrent.max(1), |l| match dst.registry() {
        // A registry gets a foreign layer only if allowed; every other
        // destination (the store, a layout, an archive) keeps the bytes.
        Some((client, to)) if !client.carries(to, l) => {
            progress.message(&format!("Copying blob {} skipped: foreign layer", l.digest.short()));
            Ok(())
        }
        _ => copy_blob(src, dst, l, "blob", progress),
    })?;
    copy_blob(src, dst, &manifest.config, "config", progress)
}

/// The lock of one digest among the copies this process runs.
fn in_flight(digest: &Digest) -> std::sync::Arc<std::sync::Mutex<()>> {
    static SLOTS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<Digest, std::sync::Weak<std::sync::Mutex<()>>>>,
    > = std::sync::OnceLock::new();
    let mut slots = SLOTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    slots.retain(|_, w| w.strong_count() > 0);
    if let Some(slot) = slots.get(digest).and_then(std::sync::Weak::upgrade) {
        return slot;
    }
    let slot = std::sync::Arc::new(std::sync::Mutex::new(()));
    slots.insert(digest.clone(), std::sync::Arc::downgrade(&slot));
    slot
}

fn copy_blob(
    src: &dyn Source,
    dst: &dyn Destination,
    d: &Descriptor,
    what: &str,
    progress: &dyn Progress,
) -> Result<(), CopyError> {
    // Copies running at once (a mirror of many tags of one image) send a
    // shared blob one at a time: the others then find it there. Two uploads
    // of one digest racing in a registry can break the manifest that follows.
    let slot = in_flight(&d.digest);
    let _one_at_a_time = slot.lock().unwrap_or_else(|p| p.into_inner());
    if dst.has_blob(d)? {
        progress.message(&format!("Copying {what} {} skipped: already exists", d.digest.short()));
        return Ok(());
    }
    // A stream cannot be replayed: after a registry failure (a connection
    // cut, a token that expired mid-upload) the blob is sent once more from the start.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let r = src.blob(d)?;
        // The source is read on another thread while this one hashes and writes.
        let sent = std::thread::scope(|scope| {
            let mut ahead = barge_store::readahead::read_ahead(scope, r, 1 << 20, 4);
            dst.mount_or_put(d, &mut ahead, src.registry())
        });
        match sent {
            Ok(()) => break,
            Err(CopyError::Registry(e)) if attempt < 2 => progress.warning(&format!(
                "Copying {what} {} failed ({e}); trying again",
                d.digest.short()
            )),
            Err(e) => return Err(e),
        }
    }
    progress.message(&format!("Copying {what} {} done", d.digest.short()));
    Ok(())
}
