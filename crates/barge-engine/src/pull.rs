//! `barge pull`.

use crate::trust::{fetch_signatures, SignatureError, TrustPolicy};
use crate::{LayerState, Progress};
use barge_oci::image::{chain_ids, ImageConfig, MAX_CONFIG_BYTES};
use barge_oci::media::{self, Compression};
use barge_oci::{Descriptor, Digest, ImageManifest, Platform, Reference};
use barge_registry::{Client, RegistryError};
use barge_store::{ImageMeta, Store, StoreError, TagOutcome};
use std::io::{self, Read};

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform wanted; `None` means this host's, with a warning if the image has another.
    pub platform: Option<Platform>,
    /// Layers downloaded at once.
    pub max_concurrent: usize,
    /// Pull-through mirrors of the reference's registry, tried in order before it.
    pub mirrors: Vec<PullMirror>,
    /// The policy the image must pass before anything of it is stored; `None`: none.
    pub trust: Option<std::sync::Arc<TrustPolicy>>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            max_concurrent: 3,
            mirrors: Vec::new(),
            trust: None,
        }
    }
}

/// A registry that serves another registry's repositories under the same
/// names (below `prefix`), like `docker-registry` in pull-through cache mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullMirror {
    /// `host[:port]`.
    pub host: String,
    /// A repository path prefix, often empty.
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub struct PullOutcome {
    /// The reference as stored (`docker.io/library/busybox:latest`).
    pub reference: Reference,
    /// What the registry's tag resolved to (the index digest for multi-platform images).
    pub digest: Digest,
    pub image_id: Digest,
    /// Nothing was downloaded and the tag already named this image.
    pub up_to_date: bool,
    /// The signatures the policy verified (recorded in the store with the image).
    pub verified: Vec<barge_trust::Verified>,
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(Box<RegistryError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    NoMatchingPlatform(#[from] barge_oci::NoMatchingPlatform),
    #[error("image {reference} is for {actual}, not the requested platform {wanted}")]
    PlatformMismatch {
        reference: String,
        actual: String,
        wanted: String,
    },
    #[error("image {reference}: the manifest has {layers} layers but the config lists {diff_ids} diff IDs")]
    LayerCount {
        reference: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("manifest for {reference}: {source}")]
    Manifest {
        reference: String,
        source: barge_oci::ManifestError,
    },
    #[error("config of {reference}: {source}")]
    Config {
        reference: String,
        source: barge_oci::image::ConfigError,
    },
    #[error(transparent)]
    Signature(Box<SignatureError>),
    #[error(transparent)]
    Remote(Box<crate::remote::RemoteError>),
}

impl From<crate::remote::RemoteError> for PullError {
    fn from(e: crate::remote::RemoteError) -> Self {
        use crate::remote::RemoteError;
        match e {
            RemoteError::Registry(r) => PullError::Registry(r),
            RemoteError::NoMatchingPlatform(p) => PullError::NoMatchingPlatform(p),
            RemoteError::Manifest { reference, source } => PullError::Manifest { reference, source },
            other => PullError::Remote(Box::new(other)),
        }
    }
}

impl From<SignatureError> for PullError {
    fn from(e: SignatureError) -> Self {
        match e {
            SignatureError::Registry(r) => PullError::Registry(r),
            other => PullError::Signature(Box::new(other)),
        }
    }
}

impl From<RegistryError> for PullError {
    fn from(e: RegistryError) -> Self {
        PullError::Registry(Box::new(e))
    }
}

/// What was resolved for one platform.
struct Resolved {
    /// The digest the tag points at (index or manifest).
    repo_digest: Digest,
    /// The index bytes when the tag names a multi-platform index.
    index: Option<(Digest, Vec<u8>)>,
    manifest_desc: Descriptor,
    manifest_bytes: Vec<u8>,
    manifest: ImageManifest,
    config_raw: Vec<u8>,
    config: ImageConfig,
}

/// Pulls `reference` into `store`. See the crate docs for the pipeline.
pub fn pull(
    client: &Client,
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<PullOutcome, PullError> {
    // name:tag@digest pulls by digest, as docker does.
    let reference = match reference.digest() {
        Some(d) => reference.with_digest(d.clone()),
        None => reference.clone(),
    };
    let _store_lock = store.lock_shared()?;
    let mut mirrors = Vec::new();
    for m in &opts.mirrors {
        match reference.moved_to(&m.host, &m.prefix) {
            Ok(r) => mirrors.push(r),
            Err(e) => progress.warning(&format!("mirror {}/{}: {e}", m.host, m.prefix)),
        }
    }
    // Whatever goes wrong with a mirror (unreachable, missing, bad data), the next source is tried.
    for mirror in &mirrors {
        match pull_from(client, store, &reference, mirror, opts, progress) {
            Err(e) => progress.warning(&format!(
                "mirror {} failed: {e}; trying the next source",
                mirror.registry()
            )),
            ok => return ok,
        }
    }
    pull_from(client, store, &reference, &reference, opts, progress)
}

/// Pulls `reference` (the name it is stored under) from `source` (the same
/// image on a mirror, or `reference` itself).
fn pull_from(
    client: &Client,
    store: &Store,
    reference: &Reference,
    source: &Reference,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<PullOutcome, PullError> {
    if let Some(mut outcome) = up_to_date(client, store, reference, source, opts)? {
        outcome.verified = check_policy(client, reference, source, &outcome.digest, opts)?;
        if !outcome.verified.is_empty() {
            record_signatures(store, reference, &outcome.verified)?;
        }
        return Ok(outcome);
    }
    let resolved = resolve(client, source, opts, progress)?;
    // Nothing of the image is stored before the policy accepts it.
    let verified = check_policy(client, reference, source, &resolved.repo_digest, opts)?;
    let shown = reference
        .tag()
        .map(str::to_string)
        .unwrap_or_else(|| reference.manifest_key());
    progress.message(&format!("{shown}: Pulling from {}", reference.repository()));

    let diff_ids = &resolved.config.rootfs.diff_ids;
    let chains = chain_ids(diff_ids);
    let downloaded = fetch_layers(client, store, source, &resolved, &chains, opts, progress)?;

    store.put_blob(&resolved.config_raw_digest(), &resolved.config_raw)?;
    store.put_blob(&resolved.manifest_desc.digest, &resolved.manifest_bytes)?;
    if let Some((d, bytes)) = &resolved.index {
        store.put_blob(d, bytes)?;
    }
    let size = chains
        .iter()
        .map(|c| store.snapshot_info(c).map(|i| i.size))
        .sum::<Result<u64, _>>()?;
    let meta = ImageMeta {
        image_id: resolved.manifest.config.digest.clone(),
        repo_digest: Some(resolved.repo_digest.clone()),
        created: resolved.config.created.clone(),
        size,
    };
    let outcome = store.tag(reference, &resolved.manifest_desc, &meta)?;
    if !verified.is_empty() {
        record_signatures(store, reference, &verified)?;
    }
    Ok(PullOutcome {
        reference: reference.clone(),
        digest: resolved.repo_digest,
        image_id: meta.image_id,
        up_to_date: !downloaded && outcome == TagOutcome::Unchanged,
        verified,
    })
}

/// Runs the policy on the manifest `digest` that `reference` resolved to at `source`.
fn check_policy(
    client: &Client,
    reference: &Reference,
    source: &Reference,
    digest: &Digest,
    opts: &PullOptions,
) -> Result<Vec<barge_trust::Verified>, PullError> {
    let Some(policy) = &opts.trust else {
        return Ok(Vec::new());
    };
    let decision = policy.check(reference, digest, &mut || fetch_signatures(client, source, digest))?;
    Ok(decision.map(|d| d.verified).unwrap_or_default())
}

fn record_signatures(
    store: &Store,
    reference: &Reference,
    verified: &[barge_trust::Verified],
) -> Result<(), PullError> {
    let digests: Vec<Digest> = verified.iter().map(|v| v.signature_digest.clone()).collect();
    Ok(store.record_signatures(reference, &digests)?)
}

impl Resolved {
    fn config_raw_digest(&self) -> Digest {
        self.manifest.config.digest.clone()
    }
}

/// The fast path: the store has this reference complete and the registry
/// (`source`: the origin or a mirror) still points it at the same content
/// (one HEAD; none for a digest).
fn up_to_date(
    client: &Client,
    store: &Store,
    reference: &Reference,
    source: &Reference,
    opts: &PullOptions,
) -> Result<Option<PullOutcome>, PullError> {
    let entries = store.entries()?;
    let Some(entry) = entries.iter().find(|e| e.reference.as_ref() == Some(reference)) else {
        return Ok(None);
    };
    if let (Some(want), Some(have)) = (&opts.platform, &entry.manifest.platform) {
        if !want.matches(have) {
            return Ok(None);
        }
    }
    let Some(repo_digest) = entry.meta.repo_digest.clone() else {
        return Ok(None);
    };
    let complete = store.has_blob(&entry.manifest.digest)
        && store
            .manifest_and_config(&entry.manifest.digest)
            .map(|(_, c)| chain_ids(&c.rootfs.diff_ids).iter().all(|ch| store.has_snapshot(ch)))
            .unwrap_or(false);
    if !complete {
        return Ok(None);
    }
    if reference.digest().is_none() {
        match client.head_manifest(source)? {
            Some(head) if head.digest == repo_digest => {}
            _ => return Ok(None),
        }
    }
    Ok(Some(PullOutcome {
        reference: reference.clone(),
        digest: repo_digest,
        image_id: entry.meta.image_id.clone(),
        up_to_date: true,
        verified: Vec::new(),
    }))
}

fn resolve(
    client: &Client,
    reference: &Reference,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Resolved, PullError> {
    let name = reference.familiar();
    let top = client.get_manifest(reference)?;
    let repo_digest = top.digest.clone();
    let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
    let crate::remote::Chosen {
        index,
        desc: manifest_desc,
        bytes: manifest_bytes,
        manifest,
    } = crate::remote::choose(client, reference, top, &wanted)?;
    manifest.check_layers().map_err(|source| PullError::Manifest {
        reference: name.clone(),
        source,
    })?;
    let config_raw = client.get_small_blob(reference, &manifest.config, MAX_CONFIG_BYTES)?;
    let config = ImageConfig::parse(&config_raw).map_err(|source| PullError::Config {
        reference: name.clone(),
        source,
    })?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(PullError::LayerCount {
            reference: name,
            layers: manifest.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    let actual = config.platform();
    if !wanted.matches(&actual) {
        if opts.platform.is_some() {
            return Err(PullError::PlatformMismatch {
                reference: name,
                actual: actual.to_string(),
                wanted: wanted.to_string(),
            });
        }
        progress.warning(&format!(
            "The requested image's platform ({actual}) does not match the detected host platform ({wanted}) and no specific platform was requested"
        ));
    }
    let mut manifest_desc = manifest_desc;
    if manifest_desc.platform.is_none() {
        manifest_desc.platform = Some(actual);
    }
    Ok(Resolved {
        repo_digest,
        index,
        manifest_desc,
        manifest_bytes,
        manifest: *manifest,
        config_raw,
        config,
    })
}

/// Fetches every layer that is missing, in parallel. Returns whether anything was fetched.
fn fetch_layers(
    client: &Client,
    store: &Store,
    reference: &Reference,
    resolved: &Resolved,
    chains: &[Digest],
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<bool, PullError> {
    let layers = &resolved.manifest.layers;
    let mut todo = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        if store.has_snapshot(&chains[i]) && store.has_blob(&layer.digest) {
            progress.layer(&layer.digest, LayerState::AlreadyExists);
        } else {
            progress.layer(&layer.digest, LayerState::PullingFsLayer);
            todo.push(i);
        }
    }
    let workers = opts.max_concurrent.max(1).min(todo.len());
    for &i in todo.iter().skip(workers) {
        progress.layer(&layers[i].digest, LayerState::Waiting);
    }
    crate::parallel(&todo, workers, |&i| {
        LayerJob {
            client,
            store,
            reference,
            desc: &layers[i],
            diff_id: &resolved.config.rootfs.diff_ids[i],
            chain_id: &chains[i],
            parent: i.checked_sub(1).map(|p| &chains[p]),
            progress,
        }
        .run()
    })?;
    Ok(!todo.is_empty())
}

struct LayerJob<'a> {
    client: &'a Client,
    store: &'a Store,
    reference: &'a Reference,
    desc: &'a Descriptor,
    diff_id: &'a Digest,
    chain_id: &'a Digest,
    parent: Option<&'a Digest>,
    progress: &'a dyn Progress,
}

impl LayerJob<'_> {
    fn run(&self) -> Result<(), PullError> {
        let digest = &self.desc.digest;
        let _blob_lock = match self.store.try_lock_blob(digest)? {
            Some(l) => l,
            None => {
                self.progress.layer(digest, LayerState::Waiting);
                self.store.lock_blob(digest)?
            }
        };
        let have_blob = self.store.has_blob(digest);
        let have_snapshot = self.store.has_snapshot(self.chain_id);
        if have_blob && have_snapshot {
            self.progress.layer(digest, LayerState::AlreadyExists);
            return Ok(());
        }
        if have_blob {
            // Downloaded before but never unpacked: unpack from the store.
            let stats = self
                .store
                .unpack_layer(self.desc, self.diff_id, self.chain_id, self.parent)?;
            if let Some(stats) = stats {
                self.warn_skipped(&stats);
            }
            self.progress.layer(digest, LayerState::PullComplete);
            return Ok(());
        }
        let resumed = self.store.ingest(digest, self.desc.size)?.offset() > 0;
        match self.download(have_snapshot) {
            // A resumed download whose old part may be bad: start once more from zero.
            Err(PullError::Store(
                StoreError::DigestMismatch { .. }
                | StoreError::SizeMismatch { .. }
                | StoreError::DiffIdMismatch { .. }
                | StoreError::Apply { .. },
            )) if resumed => {
                self.store.ingest(digest, self.desc.size)?.restart()?;
                self.download(have_snapshot)?;
            }
            other => other?,
        }
        self.progress.layer(digest, LayerState::PullComplete);
        Ok(())
    }

    /// One pass: network → hash → ingest file → decompress → snapshot.
    fn download(&self, have_snapshot: bool) -> Result<(), PullError> {
        let digest = &self.desc.digest;
        let ingest = self.store.ingest(digest, self.desc.size)?;
        let offset = ingest.offset();
        if offset > 0 {
            self.progress.layer(digest, LayerState::Resuming { from: offset });
        }
        let remote = self.client.open_blob(self.reference, self.desc, offset)?;
        let counted = Counted {
            inner: remote,
            seen: offset,
            total: self.desc.size,
            digest,
            progress: self.progress,
        };
        let mut tee = ingest.tee(counted).map_err(PullError::Store)?;
        let unpacked = if have_snapshot {
            io::copy(&mut tee, &mut io::sink()).map_err(|e| transfer(StoreError::Transfer(e)))?;
            None
        } else {
            Some(self.unpack(&mut tee))
        };
        // The blob is verified and stored before the snapshot made from it
        // appears. A blob that is not what its digest says is the error to
        // report, even when unpacking it failed first.
        self.progress.layer(digest, LayerState::VerifyingChecksum);
        tee.commit().map_err(transfer)?;
        self.progress.layer(digest, LayerState::DownloadComplete);
        if let Some(u) = unpacked {
            self.commit(u?)?;
        }
        Ok(())
    }

    /// Applies a layer stream into a new snapshot, checking its diff ID;
    /// [`LayerJob::commit`] makes it visible.
    fn unpack(&self, reader: &mut (dyn Read + Send)) -> Result<Unpacked, PullError> {
        let digest = &self.desc.digest;
        let compression = media::layer_compression(&self.desc.media_type).unwrap_or(Compression::None);
        let builder = self.store.new_snapshot(self.chain_id)?;
        let (diff_id, stats) = builder.apply(reader, compression, digest).map_err(transfer)?;
        if diff_id != *self.diff_id {
            return Err(StoreError::DiffIdMismatch {
                layer: digest.clone(),
                expected: self.diff_id.clone(),
                actual: diff_id,
            }
            .into());
        }
        Ok(Unpacked {
            builder,
            diff_id,
            stats,
        })
    }

    fn commit(&self, u: Unpacked) -> Result<(), PullError> {
        let Unpacked {
            builder,
            diff_id,
            stats,
        } = u;
        builder.commit(&diff_id, self.parent, &stats)?;
        self.warn_skipped(&stats);
        Ok(())
    }

    fn warn_skipped(&self, stats: &barge_store::ApplyStats) {
        if stats.skipped_devices > 0 {
            self.progress.warning(&format!(
                "layer {}: {} device nodes were not created because barge is not running as root",
                self.desc.digest.short(),
                stats.skipped_devices
            ));
        }
        if stats.kept_owners > 0 {
            self.progress.warning(&format!(
                "layer {}: {} files keep your user as owner: your user namespace does not map their owners (add /etc/subuid and /etc/subgid ranges)",
                self.desc.digest.short(),
                stats.kept_owners
            ));
        }
    }
}

/// A layer applied and checked, not yet visible.
struct Unpacked {
    builder: barge_store::SnapshotBuilder,
    diff_id: Digest,
    stats: barge_store::ApplyStats,
}

/// Turns a transfer failure back into the registry error that caused it.
fn transfer(e: StoreError) -> PullError {
    match e {
        StoreError::Transfer(io) => match io.get_ref().map(|i| i.is::<RegistryError>()) {
            Some(true) => match io.into_inner().map(|i| i.downcast::<RegistryError>()) {
                Some(Ok(r)) => PullError::Registry(r),
                Some(Err(other)) => PullError::Store(StoreError::Transfer(io::Error::other(other))),
                None => PullError::Store(StoreError::Transfer(io::Error::other("transfer failed"))),
            },
            _ => PullError::Store(StoreError::Transfer(io)),
        },
        other => PullError::Store(other),
    }
}

/// Counts bytes for progress reports.
struct Counted<'a, R> {
    inner: R,
    seen: u64,
    total: u64,
    digest: &'a Digest,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen += n as u64;
        self.progress.layer(
            self.digest,
            LayerState::Downloading {
                current: self.seen,
                total: self.total,
            },
        );
        Ok(n)
    }
}
