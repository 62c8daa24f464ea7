//! The registry toolkit: looking at and changing images in a registry
//! without pulling them (`manifest inspect`, `inspect --remote`, `digest`,
//! `config`, `blob`, `delete`, `tag --remote`). Every request goes through
//! the same [`Client`] as pull, so auth, retries and `--insecure-registry`
//! behave the same; an index is resolved to one platform as pull does it.
//! `manifest inspect`, `inspect --remote`, `digest` and `config` also read
//! any transport `copy` reads (an OCI layout, an archive, the store)
//! through its [`Source`]: the `source_*` functions.

use crate::transport::{copy_in_big_writes, Fetched, Source};
use crate::CopyError;
use barge_oci::digest::HashingReader;
use barge_oci::image::{ImageConfig, MAX_CONFIG_BYTES};
use barge_oci::{Descriptor, Digest, ImageManifest, Manifest, Platform, Reference};
use barge_registry::{Client, FetchedManifest, RegistryError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Registry(Box<RegistryError>),
    #[error(transparent)]
    NoMatchingPlatform(#[from] barge_oci::NoMatchingPlatform),
    #[error("manifest for {reference}: {source}")]
    Manifest {
        reference: String,
        source: barge_oci::ManifestError,
    },
    #[error("{reference} is an index, which has no config: pass --platform or name one of its manifests by digest")]
    NoConfig { reference: String },
    #[error("config of {reference}: {source}")]
    Config {
        reference: String,
        source: barge_oci::image::ConfigError,
    },
    #[error("blob {digest} not found in {repository}")]
    BlobNotFound { repository: String, digest: Digest },
    #[error("blob {digest} arrived as {actual} ({size} bytes): it does not match its digest; nothing was kept")]
    BlobMismatch { digest: Digest, actual: Digest, size: u64 },
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("writing the blob to standard output: {0}")]
    Stdout(io::Error),
    #[error("{reference} holds a {media_type}, not the index of referrers its tag stands for")]
    NotAnIndex { reference: String, media_type: String },
    #[error(transparent)]
    Reference(#[from] barge_oci::ReferenceError),
    #[error("{reference} is a {media_type}, not an artifact: name one image manifest")]
    NotAnArtifact { reference: String, media_type: String },
    #[error("file title {title:?}: {why}; nothing was written")]
    BadTitle { title: String, why: String },
    #[error("the subject {subject} is in another repository than {reference}: a manifest can refer only to one of its own repository")]
    SubjectElsewhere { subject: String, reference: String },
}

impl From<RegistryError> for RemoteError {
    fn from(e: RegistryError) -> Self {
        RemoteError::Registry(Box::new(e))
    }
}

/// An image manifest chosen for one platform.
pub(crate) struct Chosen {
    /// The index it was chosen from (digest and exact bytes), when the reference named one.
    pub(crate) index: Option<(Digest, Vec<u8>)>,
    /// Its descriptor, with the platform the index gave it.
    pub(crate) desc: Descriptor,
    pub(crate) bytes: Vec<u8>,
    pub(crate) manifest: Box<ImageManifest>,
}

/// `top` itself when it is an image manifest, else the manifest of its
/// index entry for `wanted`, fetched and verified by digest.
pub(crate) fn choose(
    client: &Client,
    reference: &Reference,
    top: FetchedManifest,
    wanted: &Platform,
) -> Result<Chosen, RemoteError> {
    match top.manifest {
        Manifest::Index { index: list, .. } => {
            let entry = list.select(wanted)?.clone();
            let fetched = client.get_manifest_by_digest(reference, &entry.digest)?;
            let Manifest::Image { manifest, .. } = fetched.manifest else {
                return Err(RemoteError::Manifest {
                    reference: reference.familiar(),
                    source: barge_oci::ManifestError::UnsupportedMediaType("a nested index".into()),
                });
            };
            let mut desc = Descriptor::new(&fetched.media_type, fetched.digest.clone(), fetched.bytes.len() as u64);
            desc.platform = entry.platform.clone();
            Ok(Chosen {
                index: Some((top.digest, top.bytes)),
                desc,
                bytes: fetched.bytes,
                manifest,
            })
        }
        Manifest::Image { manifest, .. } => Ok(Chosen {
            index: None,
            desc: Descriptor::new(&top.media_type, top.digest.clone(), top.bytes.len() as u64),
            bytes: top.bytes,
            manifest,
        }),
    }
}

/// The manifest or index `reference` names, exact bytes; with `platform`,
/// an index's manifest for that platform instead.
pub fn manifest(
    client: &Client,
    reference: &Reference,
    platform: Option<&Platform>,
) -> Result<FetchedManifest, RemoteError> {
    let top = client.get_manifest(reference)?;
    match (platform, &top.manifest) {
        (Some(wanted), Manifest::Index { index, .. }) => {
            let entry = index.select(wanted)?;
            Ok(client.get_manifest_by_digest(reference, &entry.digest)?)
        }
        _ => Ok(top),
    }
}

/// One manifest as `manifest inspect --verbose` shows it.
pub struct Entry {
    /// The reference pinned to its digest.
    pub reference: Reference,
    /// Its descriptor (with the platform an index gave it).
    pub descriptor: Descriptor,
    pub manifest: FetchedManifest,
}

/// The image manifests `reference` names: itself, or every image manifest
/// of its index, each fetched by digest.
pub fn manifests(client: &Client, reference: &Reference) -> Result<(FetchedManifest, Vec<Entry>), RemoteError> {
    let top = client.get_manifest(reference)?;
    let mut out = Vec::new();
    match &top.manifest {
        Manifest::Index { index, .. } => {
            for d in index
                .manifests
                .iter()
                .filter(|d| barge_oci::media::is_image_manifest(&d.media_type))
            {
                out.push(Entry {
                    reference: reference.with_digest(d.digest.clone()),
                    descriptor: d.clone(),
                    manifest: client.get_manifest_by_digest(reference, &d.digest)?,
                });
            }
        }
        Manifest::Image { .. } => out.push(Entry {
            reference: reference.clone(),
            descriptor: Descriptor::new(&top.media_type, top.digest.clone(), top.bytes.len() as u64),
            manifest: top.clone(),
        }),
    }
    Ok((top, out))
}

/// The digest `reference` resolves to, by a `HEAD` (no body).
pub fn digest(client: &Client, reference: &Reference) -> Result<Digest, RemoteError> {
    match client.head_manifest(reference)? {
        Some(head) => Ok(head.digest),
        None => Err(RegistryError::ManifestNotFound {
            reference: reference.familiar(),
        }
        .into()),
    }
}

/// The config blob (exact bytes) of the image `reference` names, for
/// `platform` (default: this host) when it names an index.
pub fn config(client: &Client, reference: &Reference, platform: Option<&Platform>) -> Result<Vec<u8>, RemoteError> {
    let top = client.get_manifest(reference)?;
    let wanted = platform.cloned().unwrap_or_else(Platform::host);
    let chosen = choose(client, reference, top, &wanted)?;
    Ok(client.get_small_blob(reference, &chosen.manifest.config, MAX_CONFIG_BYTES)?)
}

/// What `inspect --remote` shows: skopeo inspect's fields, same names.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoteImage {
    /// `registry/repository`; none for an image of a layout, an archive
    /// or the store, as skopeo leaves it out.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The digest the reference resolves to (an index's for a multi-platform image).
    pub digest: Digest,
    pub repo_tags: Vec<String>,
    pub created: Option<String>,
    pub docker_version: String,
    pub labels: Option<indexmap::IndexMap<String, String>>,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub os: String,
    /// Layer digests, compressed, bottom first.
    pub layers: Vec<Digest>,
    pub layers_data: Vec<LayerData>,
    pub env: Option<Vec<String>>,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LayerData {
    #[serde(rename = "MIMEType")]
    pub mime_type: String,
    pub digest: Digest,
    pub size: u64,
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// Inspects an image in its registry: manifest (for `platform`, default
/// this host), config and the repository's tags; no layer is fetched.
pub fn inspect(
    client: &Client,
    reference: &Reference,
    platform: Option<&Platform>,
) -> Result<RemoteImage, RemoteError> {
    let top = client.get_manifest(reference)?;
    let digest = top.digest.clone();
    let wanted = platform.cloned().unwrap_or_else(Platform::host);
    let chosen = choose(client, reference, top, &wanted)?;
    let raw = client.get_small_blob(reference, &chosen.manifest.config, MAX_CONFIG_BYTES)?;
    let config = ImageConfig::parse(&raw).map_err(|source| RemoteError::Config {
        reference: reference.familiar(),
        source,
    })?;
    let repo_tags = client.list_tags(reference, barge_registry::DEFAULT_PAGE_SIZE)?;
    Ok(describe(reference.name(), digest, repo_tags, &config, &chosen.manifest))
}

/// skopeo inspect's fields of one image.
fn describe(
    name: String,
    digest: Digest,
    repo_tags: Vec<String>,
    config: &ImageConfig,
    manifest: &ImageManifest,
) -> RemoteImage {
    let container = config.config.clone().unwrap_or_default();
    RemoteImage {
        name,
        digest,
        repo_tags,
        created: config.created.clone(),
        docker_version: config.docker_version.clone().unwrap_or_default(),
        labels: container.labels,
        architecture: config.architecture.clone(),
        variant: config.variant.clone(),
        os: config.os.clone(),
        layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
        layers_data: manifest
            .layers
            .iter()
            .map(|l| LayerData {
                mime_type: l.media_type.clone(),
                digest: l.digest.clone(),
                size: l.size,
                annotations: l.annotations.clone(),
            })
            .collect(),
        env: container.env,
    }
}

/// The manifest or index a [`Source`] names, exact bytes; with
/// `platform`, an index's manifest for that platform instead.
pub fn source_manifest(src: &dyn Source, platform: Option<&Platform>) -> Result<Fetched, CopyError> {
    let top = src.manifest()?;
    match (platform, top.parse()?) {
        (Some(wanted), Manifest::Index { index, .. }) => src.manifest_by_digest(&index.select(wanted)?.digest),
        _ => Ok(top),
    }
}

/// The image manifest a [`Source`] names for `wanted` (itself, or its
/// index's entry), with its config's exact bytes, read whole (at most
/// [`MAX_CONFIG_BYTES`]) and checked against their digest.
fn source_image(src: &dyn Source, wanted: &Platform) -> Result<(Fetched, Box<ImageManifest>, Vec<u8>), CopyError> {
    let top = src.manifest()?;
    let top_digest = top.digest.clone();
    let chosen = match top.parse()? {
        Manifest::Index { index, .. } => src.manifest_by_digest(&index.select(wanted)?.digest)?,
        Manifest::Image { .. } => top,
    };
    let Manifest::Image { manifest, .. } = chosen.parse()? else {
        return Err(CopyError::Invalid(format!("{top_digest} is an index inside an index")));
    };
    let desc = &manifest.config;
    if desc.size > MAX_CONFIG_BYTES {
        return Err(CopyError::Invalid(format!(
            "config {} is {} bytes, more than the {MAX_CONFIG_BYTES} allowed",
            desc.digest, desc.size
        )));
    }
    let mut raw = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(src.blob(desc)?, MAX_CONFIG_BYTES + 1), &mut raw)
        .map_err(|e| CopyError::io("reading the config", e))?;
    let actual = Digest::of(&raw);
    if actual != desc.digest {
        return Err(CopyError::DigestMismatch {
            expected: desc.digest.clone(),
            actual,
        });
    }
    Ok((
        Fetched {
            digest: top_digest,
            ..chosen
        },
        manifest,
        raw,
    ))
}

/// [`config`] of an image a [`Source`] holds.
pub fn source_config(src: &dyn Source, platform: Option<&Platform>) -> Result<Vec<u8>, CopyError> {
    let wanted = platform.cloned().unwrap_or_else(Platform::host);
    Ok(source_image(src, &wanted)?.2)
}

/// [`inspect`] of an image a [`Source`] holds; its tags are the names the
/// source records for it.
pub fn source_inspect(src: &dyn Source, platform: Option<&Platform>) -> Result<RemoteImage, CopyError> {
    let wanted = platform.cloned().unwrap_or_else(Platform::host);
    let (top, manifest, raw) = source_image(src, &wanted)?;
    let config = ImageConfig::parse(&raw).map_err(|e| CopyError::Invalid(format!("config: {e}")))?;
    let tags = src.names().iter().filter_map(|r| r.tag().map(str::to_string)).collect();
    Ok(describe(String::new(), top.digest, tags, &config, &manifest))
}

/// Where `blob` writes.
pub enum BlobOutput<'a> {
    /// A file, which appears (renamed from a temporary file beside it)
    /// only once the blob's digest is verified.
    File(&'a Path),
    /// A stream (standard output): the digest is checked at the end, and a
    /// mismatch is an error after the bytes went out.
    Stream(&'a mut dyn Write),
}

/// Streams the blob `reference`'s digest names to `out`, verifying its
/// digest; never holds it in memory. Returns its size.
pub fn blob(client: &Client, reference: &Reference, digest: &Digest, out: BlobOutput<'_>) -> Result<u64, RemoteError> {
    let Some(size) = client.blob_size(reference, digest)? else {
        return Err(RemoteError::BlobNotFound {
            repository: reference.familiar_name(),
            digest: digest.clone(),
        });
    };
    let desc = Descriptor::new("application/octet-stream", digest.clone(), size);
    let mut reader = HashingReader::new(client.open_blob(reference, &desc, 0)?);
    // A failed read carries the registry's error; anything else failed writing.
    let failed = |e: io::Error, write: &dyn Fn(io::Error) -> RemoteError| match RegistryError::from_io(e) {
        Ok(r) => RemoteError::from(r),
        Err(e) => write(e),
    };
    match out {
        BlobOutput::Stream(w) => {
            let n = copy_in_big_writes(&mut reader, w).map_err(|e| failed(e, &RemoteError::Stdout))?;
            w.flush().map_err(RemoteError::Stdout)?;
            verify(reader, digest, n)
        }
        BlobOutput::File(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let io_err = |what, source| RemoteError::Io {
                what,
                path: path.to_path_buf(),
                source,
            };
            let mut tmp = tempfile::Builder::new()
                .prefix(".barge-blob-")
                .tempfile_in(dir)
                .map_err(|e| io_err("creating a temporary file beside", e))?;
            let n =
                copy_in_big_writes(&mut reader, tmp.as_file_mut()).map_err(|e| failed(e, &|e| io_err("writing", e)))?;
            let n = verify(reader, digest, n)?;
            tmp.as_file().sync_all().map_err(|e| io_err("writing", e))?;
            tmp.persist(path).map_err(|e| io_err("renaming the blob to", e.error))?;
            Ok(n)
        }
    }
}

fn verify<R: io::Read>(reader: HashingReader<R>, digest: &Digest, size: u64) -> Result<u64, RemoteError> {
    let (actual, _) = reader.finish();
    if actual != *digest {
        return Err(RemoteError::BlobMismatch {
            digest: digest.clone(),
            actual,
            size,
        });
    }
    Ok(size)
}

/// Sends `size` bytes of `digest` to `at`'s repository from what `open`
/// gives, unless the registry has that blob already.
pub(crate) fn put_blob_if_missing<R: io::Read, E: From<RegistryError>>(
    client: &Client,
    at: &Reference,
    digest: &Digest,
    size: u64,
    open: impl FnOnce() -> Result<R, E>,
) -> Result<(), E> {
    if client.blob_exists(at, digest)? {
        return Ok(());
    }
    let mut reader = open()?;
    let session = client.start_upload(at)?.location;
    client.upload_blob_stream(at, &session, &mut reader, size, digest)?;
    Ok(())
}

/// Deletes the manifest `reference` names from its registry, resolving a
/// tag to its digest first (the distribution API deletes by digest only,
/// and every tag naming that digest goes with it). Returns the digest.
pub fn delete(client: &Client, reference: &Reference) -> Result<Digest, RemoteError> {
    let digest = match reference.digest() {
        Some(d) => d.clone(),
        None => digest(client, reference)?,
    };
    client.delete_manifest(reference, &digest)?;
    Ok(digest)
}

/// Puts the manifest `source` names under `tag` in the same repository:
/// its exact bytes, so the digest stays and no blob moves. Returns the digest.
pub fn retag(client: &Client, source: &Reference, tag: &str) -> Result<Digest, RemoteError> {
    let m = client.get_manifest(source)?;
    Ok(client.put_manifest(source, tag, &m.media_type, &m.bytes)?)
}

/// Where a list of referrers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersSource {
    /// The OCI 1.1 referrers API.
    Api,
    /// The registry has no such API: the index tagged `sha256-<hex>`,
    /// which tools pushing a manifest with a `subject` keep up to date.
    TagSchema,
}

/// The manifests that refer to an image.
#[derive(Debug, Clone)]
pub struct Referrers {
    /// The digest they refer to (the reference resolved).
    pub subject: Digest,
    pub source: ReferrersSource,
    pub manifests: Vec<Descriptor>,
}

/// The tag under which the referrers of `digest` are kept where a registry
/// has no referrers API: `sha256-<hex>`.
pub fn referrers_tag(digest: &Digest) -> String {
    digest.to_string().replace(':', "-")
}

/// Lists the referrers of the manifest `reference` names (a tag is
/// resolved by a `HEAD`), only those of `artifact_type` when given:
/// through the referrers API, else the `sha256-<hex>` tag schema (no such
/// tag: none).
pub fn referrers(
    client: &Client,
    reference: &Reference,
    artifact_type: Option<&str>,
) -> Result<Referrers, RemoteError> {
    let subject = match reference.digest() {
        Some(d) => d.clone(),
        None => digest(client, reference)?,
    };
    referrers_of(client, reference, &subject, artifact_type, &|_| true)
}

/// The referrers of `subject` in `at`'s repository: the API, else the
/// `sha256-<hex>` tag, asked for only when `may_have` says that tag may exist.
pub(crate) fn referrers_of(
    client: &Client,
    at: &Reference,
    subject: &Digest,
    artifact_type: Option<&str>,
    may_have: &dyn Fn(&str) -> bool,
) -> Result<Referrers, RemoteError> {
    if let Some(manifests) = client.referrers(at, subject, artifact_type)? {
        return Ok(Referrers {
            subject: subject.clone(),
            source: ReferrersSource::Api,
            manifests,
        });
    }
    let tag = referrers_tag(subject);
    let mut manifests = if may_have(&tag) {
        tagged_referrers(client, &at.with_tag(&tag)?)?
    } else {
        Vec::new()
    };
    if let Some(t) = artifact_type {
        manifests.retain(|d| d.artifact_type.as_deref() == Some(t));
    }
    Ok(Referrers {
        subject: subject.clone(),
        source: ReferrersSource::TagSchema,
        manifests,
    })
}

/// The descriptors of the referrers index at the `sha256-<hex>` tag
/// `tagged`; none when there is no such tag.
fn tagged_referrers(client: &Client, tagged: &Reference) -> Result<Vec<Descriptor>, RemoteError> {
    match client.get_manifest(tagged) {
        Ok(FetchedManifest {
            manifest: Manifest::Index { index, .. },
            ..
        }) => Ok(index.manifests),
        Ok(other) => Err(RemoteError::NotAnIndex {
            reference: tagged.familiar(),
            media_type: other.media_type,
        }),
        Err(RegistryError::ManifestNotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Makes `added` (manifests just pushed with `subject` as their subject)
/// findable as its referrers at `at`'s repository. A registry with the
/// referrers API indexes them itself; for one without it, the index
/// tagged `sha256-<hex>` is read, the missing descriptors appended, and
/// written back. Returns whether the fallback index was written.
pub fn index_referrers(
    client: &Client,
    at: &Reference,
    subject: &Digest,
    added: &[Descriptor],
) -> Result<bool, RemoteError> {
    if added.is_empty() || client.referrers(at, subject, None)?.is_some() {
        return Ok(false);
    }
    let tagged = at.with_tag(&referrers_tag(subject))?;
    let mut manifests = tagged_referrers(client, &tagged)?;
    let before = manifests.len();
    for d in added {
        if !manifests.iter().any(|m| m.digest == d.digest) {
            manifests.push(d.clone());
        }
    }
    if manifests.len() == before {
        return Ok(false);
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": barge_oci::media::OCI_INDEX,
        "manifests": manifests,
    });
    let bytes = index.to_string().into_bytes();
    client.put_manifest(&tagged, &tagged.manifest_key(), barge_oci::media::OCI_INDEX, &bytes)?;
    Ok(true)
}

/// The descriptor a referrers list gives a manifest: its media type,
/// digest and size, with the artifact type (else its config's media type)
/// and annotations.
pub fn referrer_descriptor(media_type: &str, bytes: &[u8], manifest: &ImageManifest) -> Descriptor {
    let mut d = Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64);
    d.artifact_type = manifest
        .artifact_type
        .clone()
        .or_else(|| Some(manifest.config.media_type.clone()));
    d.annotations = manifest.annotations.clone().filter(|a| !a.is_empty());
    d
}
