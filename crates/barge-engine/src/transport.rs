//! Where images can be copied from and to: a registry (`docker://REF`), an
//! OCI image layout (`oci:DIR[:REF]`), a docker archive
//! (`docker-archive:FILE[:REF]`, what `docker save` writes) and barge's own
//! store (`barge:REF`). Sources hand out manifests and blob streams;
//! destinations take them, verifying digests as the bytes pass.

use crate::CopyError;
use barge_oci::image::{ImageConfig, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES};
use barge_oci::media::{self, Compression};
use barge_oci::{Descriptor, Digest, Hasher, Manifest, Reference};
use barge_registry::{Client, MountOutcome};
use barge_store::{Layout, Store};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A parsed transport address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Registry(Reference),
    Oci {
        dir: PathBuf,
        reference: Option<String>,
    },
    DockerArchive {
        file: PathBuf,
        reference: Option<Reference>,
    },
    Store(String),
}

impl Location {
    pub fn parse(s: &str) -> Result<Location, CopyError> {
        let bad = |why: &str| CopyError::BadLocation {
            location: s.to_string(),
            why: why.to_string(),
        };
        let (transport, rest) = s
            .split_once(':')
            .ok_or_else(|| bad("expected TRANSPORT:NAME, e.g. docker://busybox or oci:/dir:tag"))?;
        let split = |rest: &str| -> (String, Option<String>) {
            match rest.split_once(':') {
                Some((p, r)) if !r.is_empty() => (p.to_string(), Some(r.to_string())),
                _ => (rest.trim_end_matches(':').to_string(), None),
            }
        };
        match transport {
            "docker" => {
                let r = rest
                    .strip_prefix("//")
                    .ok_or_else(|| bad("a registry reference is docker://NAME[:TAG]"))?;
                Ok(Location::Registry(
                    Reference::parse_default_tag(r).map_err(|e| bad(&e.to_string()))?,
                ))
            }
            "oci" => {
                let (dir, reference) = split(rest);
                if dir.is_empty() {
                    return Err(bad("oci: needs a directory"));
                }
                Ok(Location::Oci {
                    dir: PathBuf::from(dir),
                    reference,
                })
            }
            "docker-archive" => {
                let (file, reference) = split(rest);
                if file.is_empty() {
                    return Err(bad("docker-archive: needs a file"));
                }
                let reference = reference
                    .map(|r| Reference::parse_default_tag(&r))
                    .transpose()
                    .map_err(|e| bad(&e.to_string()))?;
                Ok(Location::DockerArchive {
                    file: PathBuf::from(file),
                    reference,
                })
            }
            "barge" => Ok(Location::Store(rest.to_string())),
            other => Err(bad(&format!(
                "unknown transport {other:?}: use docker://, oci:, docker-archive: or barge:"
            ))),
        }
    }
}

/// A manifest (or index) as exact bytes.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

impl Fetched {
    pub fn new(bytes: Vec<u8>, media_type: &str) -> Fetched {
        Fetched {
            digest: Digest::of(&bytes),
            bytes,
            media_type: media_type.to_string(),
        }
    }

    /// The manifest, if its bytes are the ones `digest` names.
    pub fn verify(self, digest: &Digest) -> Result<Fetched, CopyError> {
        if self.digest != *digest {
            return Err(CopyError::DigestMismatch {
                expected: digest.clone(),
                actual: self.digest,
            });
        }
        Ok(self)
    }

    pub fn parse(&self) -> Result<Manifest, CopyError> {
        Manifest::parse(&self.bytes, Some(&self.media_type)).map_err(CopyError::Manifest)
    }
}

/// Where images come from.
pub trait Source: Sync {
    /// The manifest or index the location names.
    fn manifest(&self) -> Result<Fetched, CopyError>;
    /// A manifest named by digest (an index's entry).
    fn manifest_by_digest(&self, digest: &Digest) -> Result<Fetched, CopyError>;
    /// A blob's bytes, streamed.
    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>, CopyError>;
    /// The registry repository, when blobs could be mounted from it.
    fn registry(&self) -> Option<&Reference> {
        None
    }
    /// Tags the image carries, for destinations that record names (archives, the store).
    fn names(&self) -> Vec<Reference> {
        Vec::new()
    }
}

/// Where images go.
pub trait Destination: Sync {
    /// Whether the destination has this blob already.
    fn has_blob(&self, desc: &Descriptor) -> Result<bool, CopyError>;
    /// Stores a blob from a stream; the digest is verified on the way.
    fn put_blob(
        &self,
        desc: &Descriptor,
        reader: &mut dyn Read,
        mount_from: Option<&Reference>,
    ) -> Result<(), CopyError>;
    /// Stores a manifest; `top` is the one the destination reference names.
    fn put_manifest(&self, manifest: &Fetched, top: bool, names: &[Reference]) -> Result<(), CopyError>;
    /// Only a single-platform image fits (docker archives).
    fn single_platform(&self) -> bool {
        false
    }
    /// Writes what must come last (an archive's index).
    fn finish(&self) -> Result<(), CopyError> {
        Ok(())
    }
}

/// `io::copy` with 1 MiB writes instead of 8 KiB ones: a blob costs a few
/// hundred system calls, not tens of thousands.
pub(crate) fn copy_in_big_writes(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match r.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(total);
        }
        w.write_all(&buf[..filled])?;
        total += filled as u64;
    }
}

/// Hashes a stream and checks it against a descriptor at the end.
pub(crate) struct Verified<'a> {
    inner: &'a mut dyn Read,
    hasher: Hasher,
}

impl<'a> Verified<'a> {
    pub(crate) fn new(inner: &'a mut dyn Read) -> Self {
        Verified {
            inner,
            hasher: Hasher::new(),
        }
    }

    pub(crate) fn check(self, desc: &Descriptor) -> Result<(), CopyError> {
        let len = self.hasher.len();
        let actual = self.hasher.finish();
        if actual != desc.digest || len != desc.size {
            return Err(CopyError::DigestMismatch {
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

impl Read for Verified<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

// ---------------------------------------------------------------- registry

pub struct RegistrySource<'c> {
    pub client: &'c Client,
    pub reference: Reference,
}

impl Source for RegistrySource<'_> {
    fn manifest(&self) -> Result<Fetched, CopyError> {
        let m = self.client.get_manifest(&self.reference)?;
        Ok(Fetched {
            bytes: m.bytes,
            media_type: m.media_type,
            digest: m.digest,
        })
    }

    fn manifest_by_digest(&self, digest: &Digest) -> Result<Fetched, CopyError> {
        let m = self.client.get_manifest_by_digest(&self.reference, digest)?;
        Ok(Fetched {
            bytes: m.bytes,
            media_type: m.media_type,
            digest: m.digest,
        })
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>, CopyError> {
        Ok(Box::new(self.client.open_blob(&self.reference, desc, 0)?))
    }

    fn registry(&self) -> Option<&Reference> {
        Some(&self.reference)
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

    fn put_blob(
        &self,
        desc: &Descriptor,
        reader: &mut dyn Read,
        mount_from: Option<&Reference>,
    ) -> Result<(), CopyError> {
        let from = mount_from
            .filter(|m| m.registry() == self.reference.registry() && m.repository() != self.reference.repository());
        let session = match from {
            Some(m) => match self.client.mount_blob(&self.reference, &desc.digest, m.repository())? {
                MountOutcome::Mounted => return Ok(()),
                MountOutcome::Upload(upload) => upload.location,
            },
            None => self.client.start_upload(&self.reference)?.location,
        };
        self.client
            .upload_blob_stream(&self.reference, &session, reader, desc.size, &desc.digest)?;
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
}

// ---------------------------------------------------------------- OCI layout

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, CopyError> {
    let f = File::open(path).map_err(|e| CopyError::io(format!("reading {}", path.display()), e))?;
    let mut bytes = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CopyError::io(format!("reading {}", path.display()), e))?;
    if bytes.len() as u64 > limit {
        return Err(CopyError::Invalid(format!(
            "{} is larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(bytes)
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
        Ok(index.manifests)
    }
}

impl Source for OciSource {
    fn manifest(&self) -> Result<Fetched, CopyError> {
        let index = self.index()?;
        let desc = match &self.reference {
            Some(r) => index.iter().find(|d| d.annotation(REF_NAME) == Some(r.as_str())),
            None if index.len() == 1 => index.first(),
            None => {
                return Err(CopyError::Invalid(format!(
                    "{} holds {} images: name one with oci:DIR:REF",
                    self.layout.dir().display(),
                    index.len()
                )))
            }
        }
        .ok_or_else(|| {
            CopyError::NotFound(format!(
                "{} in {}",
                self.reference.clone().unwrap_or_default(),
                self.layout.dir().display()
            ))
        })?;
        let bytes = read_limited(&self.layout.blob_path(&desc.digest), MAX_MANIFEST_BYTES)?;
        Fetched::new(bytes, &desc.media_type).verify(&desc.digest)
    }

    fn manifest_by_digest(&self, digest: &Digest) -> Result<Fetched, CopyError> {
        let bytes = read_limited(&self.layout.blob_path(digest), MAX_MANIFEST_BYTES)?;
        let media_type = Manifest::parse(&bytes, None)
            .map_err(CopyError::Manifest)?
            .media_type()
            .to_string();
        Fetched::new(bytes, &media_type).verify(digest)
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

    fn put_blob(
        &self,
        desc: &Descriptor,
        reader: &mut dyn Read,
        _mount_from: Option<&Reference>,
    ) -> Result<(), CopyError> {
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

// ---------------------------------------------------------------- the store

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
        let bytes = self.store.read_blob(digest, MAX_MANIFEST_BYTES)?;
        let media_type = Manifest::parse(&bytes, None)
            .map_err(CopyError::Manifest)?
            .media_type()
            .to_string();
        Ok(Fetched::new(bytes, &media_type))
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

    fn put_blob(
        &self,
        desc: &Descriptor,
        reader: &mut dyn Read,
        _mount_from: Option<&Reference>,
    ) -> Result<(), CopyError> {
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
        let targets: Vec<Reference> = match &self.reference {
            Some(r) => vec![r.clone()],
            None => names.to_vec(),
        };
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

// ---------------------------------------------------------------- docker archives

/// Where each member of a tar archive starts and how long it is, in `file`:
/// the archive itself when it is a plain tar file, else a spool file in
/// the store's ingest area holding the data of the members an image needs.
struct Members {
    file: File,
    members: HashMap<String, (u64, u64)>,
}

/// Members an archive may list, against archives of millions of tiny files.
const MAX_MEMBERS: usize = 100_000;

fn normalise_member(name: &str) -> String {
    name.trim_start_matches("./").trim_start_matches('/').to_string()
}

/// The member names `manifest.json` refers to, once it has been read.
fn referenced(manifest: &[u8]) -> Option<std::collections::HashSet<String>> {
    let entries: Vec<ArchiveEntry> = serde_json::from_slice(manifest).ok()?;
    Some(
        entries
            .iter()
            .flat_map(|e| std::iter::once(&e.config).chain(&e.layers))
            .map(|n| normalise_member(n))
            .collect(),
    )
}

impl Members {
    /// Reads an archive once. A plain tar file is indexed where it is; a
    /// gzip or zstd one is decompressed as it is read, held to the store's
    /// layer limits, and only the members an image may need are spooled
    /// into the store's ingest area (`manifest.json` often comes last, so
    /// that is every regular file until it has been seen).
    fn open(path: &Path, store: &Store) -> Result<Members, CopyError> {
        let io = |e| CopyError::io(format!("reading {}", path.display()), e);
        let mut f = File::open(path).map_err(io)?;
        // A pipe (`-i /dev/stdin`) cannot seek: it is a stream from the start.
        if !f.metadata().map_err(io)?.is_file() {
            return Members::stream(Box::new(f), &path.display().to_string(), store);
        }
        let mut magic = [0u8; 4];
        let n = f.read(&mut magic).map_err(io)?;
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        if barge_store::limits::sniff(&magic[..n]) != Compression::None {
            return Members::stream(Box::new(f), &path.display().to_string(), store);
        }
        let mut members = HashMap::new();
        {
            let mut archive = tar::Archive::new(&f);
            for entry in archive.entries_with_seek().map_err(|e| not_tar(path.display(), e))? {
                let entry = entry.map_err(|e| not_tar(path.display(), e))?;
                if members.len() >= MAX_MEMBERS {
                    return Err(too_many(path.display()));
                }
                let name = normalise_member(&String::from_utf8_lossy(&entry.path_bytes()));
                members.insert(name, (entry.raw_file_position(), entry.size()));
            }
        }
        Ok(Members { file: f, members })
    }

    /// Reads an archive from a stream (a compressed file, standard input),
    /// named `name` in messages, spooling what it needs into the store.
    fn stream(reader: Box<dyn Read + Send>, name: &str, store: &Store) -> Result<Members, CopyError> {
        let io = |e| CopyError::io(format!("reading {name}"), e);
        let mut reader = io::BufReader::with_capacity(1 << 20, reader);
        let compression = barge_store::limits::sniff(io::BufRead::fill_buf(&mut reader).map_err(io)?);
        let limited = barge_store::limits::decompress_limited(reader, compression, store.layer_limits()).map_err(io)?;
        // A limit tripped or a bad header: say which, not just "I/O error".
        let failed = |e: io::Error| match barge_store::limits::exceeded(&e) {
            Some(why) => CopyError::Invalid(format!("{name}: {why}")),
            None => not_tar(name, e),
        };
        let mut spool = store.spool_file()?;
        let mut members = HashMap::new();
        let mut wanted: Option<std::collections::HashSet<String>> = None;
        let mut offset = 0u64;
        let mut archive = tar::Archive::new(limited);
        for entry in archive.entries().map_err(failed)? {
            let mut entry = entry.map_err(failed)?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let member = normalise_member(&String::from_utf8_lossy(&entry.path_bytes()));
            if member == "manifest.json" {
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(MAX_MANIFEST_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(failed)?;
                if bytes.len() as u64 > MAX_MANIFEST_BYTES {
                    return Err(CopyError::Invalid(format!(
                        "manifest.json of {name} is larger than {MAX_MANIFEST_BYTES} bytes"
                    )));
                }
                wanted = referenced(&bytes);
                spool.write_all(&bytes).map_err(io)?;
                members.insert(member, (offset, bytes.len() as u64));
                offset += bytes.len() as u64;
                continue;
            }
            if wanted.as_ref().is_some_and(|w| !w.contains(&member)) {
                continue;
            }
            if members.len() >= MAX_MEMBERS {
                return Err(too_many(name));
            }
            let size = copy_in_big_writes(&mut entry, &mut spool).map_err(|e| match e.get_ref() {
                // Errors of the spool file itself are plain I/O errors.
                None => io(e),
                Some(_) => failed(e),
            })?;
            members.insert(member, (offset, size));
            offset += size;
        }
        Ok(Members { file: spool, members })
    }

    fn reader(&self, name: &str) -> Result<impl Read + Send + '_, CopyError> {
        let (offset, size) = *self
            .members
            .get(&normalise_member(name))
            .ok_or_else(|| CopyError::Invalid(format!("the archive has no {name}")))?;
        Ok(MemberReader {
            file: &self.file,
            pos: offset,
            end: offset + size,
        })
    }

    fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>, CopyError> {
        let mut bytes = Vec::new();
        self.reader(name)?
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| CopyError::io(format!("reading {name}"), e))?;
        if bytes.len() as u64 > limit {
            return Err(CopyError::Invalid(format!("{name} is larger than {limit} bytes")));
        }
        Ok(bytes)
    }
}

/// The error of an archive whose tar stream does not read.
fn not_tar(name: impl std::fmt::Display, e: io::Error) -> CopyError {
    CopyError::Invalid(format!("{name} is not a readable tar archive: {e}"))
}

fn too_many(name: impl std::fmt::Display) -> CopyError {
    CopyError::Invalid(format!("{name} holds more than {MAX_MEMBERS} files"))
}

struct MemberReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = buf.len().min((self.end - self.pos).min(usize::MAX as u64) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[derive(serde::Deserialize, serde::Serialize, Clone)]
struct ArchiveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// An image of a docker archive (`docker save`, `skopeo copy … docker-archive:`).
pub struct ArchiveSource {
    members: std::sync::Arc<Members>,
    entry: ArchiveEntry,
    /// The synthesised OCI manifest and where each of its blobs lives in the archive.
    manifest: Fetched,
    paths: HashMap<Digest, String>,
}

impl ArchiveSource {
    /// Every image in an archive file. What has to be kept of a
    /// compressed one goes to `store`'s ingest area, held to its layer limits.
    pub fn open_all(file: &Path, store: &Store) -> Result<Vec<ArchiveSource>, CopyError> {
        ArchiveSource::images(Members::open(file, store)?, &file.display().to_string())
    }

    /// Every image in an archive read from a stream (standard input), named
    /// `name` in messages.
    pub fn read_all(reader: Box<dyn Read + Send>, name: &str, store: &Store) -> Result<Vec<ArchiveSource>, CopyError> {
        ArchiveSource::images(Members::stream(reader, name, store)?, name)
    }

    fn images(members: Members, name: &str) -> Result<Vec<ArchiveSource>, CopyError> {
        let members = std::sync::Arc::new(members);
        let bytes = members.read("manifest.json", MAX_MANIFEST_BYTES)?;
        let entries: Vec<ArchiveEntry> =
            serde_json::from_slice(&bytes).map_err(|e| CopyError::Invalid(format!("manifest.json of {name}: {e}")))?;
        entries
            .into_iter()
            .map(|e| ArchiveSource::new(members.clone(), e))
            .collect()
    }

    /// The image of an archive with this name (or its only image).
    pub fn open(file: &Path, reference: Option<&Reference>, store: &Store) -> Result<ArchiveSource, CopyError> {
        let mut all = ArchiveSource::open_all(file, store)?;
        let pick = match reference {
            Some(r) => all.iter().position(|s| s.names().contains(r)),
            None if all.len() == 1 => Some(0),
            None => {
                return Err(CopyError::Invalid(format!(
                    "{} holds {} images: name one with docker-archive:FILE:REF",
                    file.display(),
                    all.len()
                )))
            }
        };
        let i = pick.ok_or_else(|| {
            CopyError::NotFound(format!(
                "{} in {}",
                reference.map(|r| r.familiar()).unwrap_or_default(),
                file.display()
            ))
        })?;
        Ok(all.swap_remove(i))
    }

    fn new(members: std::sync::Arc<Members>, entry: ArchiveEntry) -> Result<ArchiveSource, CopyError> {
        let config_bytes = members.read(&entry.config, MAX_CONFIG_BYTES)?;
        let config = ImageConfig::parse(&config_bytes).map_err(|e| CopyError::Invalid(e.to_string()))?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(CopyError::Invalid(
                "the archive's config and layer list disagree".into(),
            ));
        }
        let mut paths = HashMap::new();
        let config_digest = Digest::of(&config_bytes);
        paths.insert(config_digest.clone(), entry.config.clone());
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            let (_, size) = *members
                .members
                .get(&normalise_member(path))
                .ok_or_else(|| CopyError::Invalid(format!("the archive has no {path}")))?;
            let mut head = [0u8; 4];
            let n = members
                .reader(path)?
                .read(&mut head)
                .map_err(|e| CopyError::io(format!("reading {path}"), e))?;
            let (media_type, digest) = match &head[..n] {
                [0x1f, 0x8b, ..] => (media::OCI_LAYER_GZIP, hash_member(&members, path)?),
                [0x28, 0xb5, 0x2f, 0xfd] => (media::OCI_LAYER_ZSTD, hash_member(&members, path)?),
                _ => (media::OCI_LAYER, diff_id.clone()),
            };
            paths.insert(digest.clone(), path.clone());
            layers.push(serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": size}));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| CopyError::Invalid(e.to_string()))?;
        Ok(ArchiveSource {
            members,
            entry,
            manifest: Fetched::new(bytes, media::OCI_MANIFEST),
            paths,
        })
    }
}

fn hash_member(members: &Members, path: &str) -> Result<Digest, CopyError> {
    let mut h = Hasher::new();
    let mut r = members.reader(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| CopyError::io(format!("reading {path}"), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

impl Source for ArchiveSource {
    fn manifest(&self) -> Result<Fetched, CopyError> {
        Ok(self.manifest.clone())
    }

    fn manifest_by_digest(&self, digest: &Digest) -> Result<Fetched, CopyError> {
        if *digest == self.manifest.digest {
            return Ok(self.manifest.clone());
        }
        Err(CopyError::NotFound(digest.to_string()))
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>, CopyError> {
        let path = self
            .paths
            .get(&desc.digest)
            .ok_or_else(|| CopyError::NotFound(desc.digest.to_string()))?;
        Ok(Box::new(self.members.reader(path)?))
    }

    fn names(&self) -> Vec<Reference> {
        self.entry
            .repo_tags
            .iter()
            .flatten()
            .filter_map(|t| Reference::parse_default_tag(t).ok())
            .collect()
    }
}

/// Writes a docker archive (what `docker save` writes): every layer
/// uncompressed as `blobs/sha256/<diff ID>`, the config, `manifest.json`
/// and `repositories` for docker and podman, and an OCI layout
/// (`index.json`, `oci-layout`) over the same blobs, as docker 25 does.
pub struct ArchiveDestination {
    state: Mutex<ArchiveState>,
    path: PathBuf,
    /// The archive being written beside `path`, renamed over it by `finish`.
    temp: Mutex<Option<tempfile::TempPath>>,
    /// Names for the image copied in next when the source has none.
    pub reference: Option<Reference>,
}

struct ArchiveState {
    tar: Option<tar::Builder<File>>,
    written: std::collections::HashSet<String>,
    /// Stored blob → (diff ID, size) of its uncompressed form in the archive.
    layers: HashMap<Digest, (Digest, u64)>,
    configs: HashMap<Digest, Vec<u8>>,
    entries: Vec<ArchiveEntry>,
    index: Vec<serde_json::Value>,
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

fn tar_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

impl ArchiveDestination {
    /// An archive at `path`, which appears (replacing what was there) only
    /// when the archive is complete.
    pub fn create(path: &Path, reference: Option<Reference>) -> Result<ArchiveDestination, CopyError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".barge-save-")
            .tempfile_in(dir)
            .map_err(|e| CopyError::io(format!("creating a file in {}", dir.display()), e))?;
        let (f, temp) = temp.into_parts();
        let dest = ArchiveDestination::on(f, path, reference);
        *dest.temp.lock().unwrap_or_else(|p| p.into_inner()) = Some(temp);
        Ok(dest)
    }

    /// An archive written straight to `f` (standard output), named `path` in messages.
    pub fn on(f: File, path: &Path, reference: Option<Reference>) -> ArchiveDestination {
        ArchiveDestination {
            state: Mutex::new(ArchiveState {
                tar: Some(tar::Builder::new(f)),
                written: Default::default(),
                layers: HashMap::new(),
                configs: HashMap::new(),
                entries: Vec::new(),
                index: Vec::new(),
                repositories: BTreeMap::new(),
            }),
            path: path.to_path_buf(),
            temp: Mutex::new(None),
            reference,
        }
    }

    fn append(st: &mut ArchiveState, name: &str, size: u64, data: &mut dyn Read) -> Result<(), CopyError> {
        if !st.written.insert(name.to_string()) {
            return Ok(());
        }
        let tar = st
            .tar
            .as_mut()
            .ok_or_else(|| CopyError::Invalid("the archive is already finished".into()))?;
        let mut h = tar_header(size);
        tar.append_data(&mut h, name, data)
            .map_err(|e| CopyError::io(format!("writing {name}"), e))
    }
}

impl Destination for ArchiveDestination {
    fn has_blob(&self, _desc: &Descriptor) -> Result<bool, CopyError> {
        Ok(false)
    }

    fn single_platform(&self) -> bool {
        true
    }

    fn put_blob(
        &self,
        desc: &Descriptor,
        reader: &mut dyn Read,
        _mount_from: Option<&Reference>,
    ) -> Result<(), CopyError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match media::layer_compression(&desc.media_type) {
            None => {
                // A config (or another small blob): kept to write with its manifest.
                let mut v = Verified::new(reader);
                let mut bytes = Vec::new();
                (&mut v)
                    .take(MAX_CONFIG_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(CopyError::from_transfer)?;
                v.check(desc)?;
                st.configs.insert(desc.digest.clone(), bytes);
            }
            Some(compression) => {
                // Layers go in uncompressed, so their size must be known first: spooled to a temporary file.
                let io = |e| CopyError::io(format!("spooling layer {}", desc.digest.short()), e);
                let mut spool = tempfile::tempfile().map_err(io)?;
                let mut v = Verified::new(reader);
                let mut plain: Box<dyn Read> = match compression {
                    Compression::None => Box::new(&mut v),
                    Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut v)),
                    Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(&mut v).map_err(io)?),
                };
                let mut hashing = barge_oci::digest::HashingReader::new(&mut plain);
                let size = copy_in_big_writes(&mut hashing, &mut spool).map_err(CopyError::from_transfer)?;
                let (diff_id, _) = hashing.finish();
                drop(plain);
                v.check(desc)?;
                spool.seek(SeekFrom::Start(0)).map_err(io)?;
                ArchiveDestination::append(&mut st, &format!("blobs/sha256/{}", diff_id.hex()), size, &mut spool)?;
                st.layers.insert(desc.digest.clone(), (diff_id, size));
            }
        }
        Ok(())
    }

    fn put_manifest(&self, m: &Fetched, top: bool, names: &[Reference]) -> Result<(), CopyError> {
        let Manifest::Image { manifest, .. } = m.parse()? else {
            return Err(CopyError::Invalid(
                "a docker archive holds single-platform images".into(),
            ));
        };
        if !top {
            return Ok(());
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let config = st
            .configs
            .get(&manifest.config.digest)
            .cloned()
            .ok_or_else(|| CopyError::Invalid("config missing".into()))?;
        let config_name = format!("blobs/sha256/{}", manifest.config.digest.hex());
        ArchiveDestination::append(&mut st, &config_name, config.len() as u64, &mut &config[..])?;
        let mut layer_names = Vec::new();
        let mut layer_descs = Vec::new();
        for l in &manifest.layers {
            let (diff_id, size) = st
                .layers
                .get(&l.digest)
                .cloned()
                .ok_or_else(|| CopyError::Invalid(format!("layer {} missing", l.digest)))?;
            layer_names.push(format!("blobs/sha256/{}", diff_id.hex()));
            layer_descs
                .push(serde_json::json!({"mediaType": media::OCI_LAYER, "digest": diff_id.to_string(), "size": size}));
        }
        let oci = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": manifest.config.digest.to_string(), "size": config.len()},
            "layers": layer_descs,
        }))
        .map_err(|e| CopyError::Invalid(e.to_string()))?;
        let oci_digest = Digest::of(&oci);
        ArchiveDestination::append(
            &mut st,
            &format!("blobs/sha256/{}", oci_digest.hex()),
            oci.len() as u64,
            &mut &oci[..],
        )?;
        let targets: Vec<Reference> = match &self.reference {
            Some(r) => vec![r.clone()],
            None => names.to_vec(),
        };
        let tags: Vec<String> = targets
            .iter()
            .filter(|r| r.tag().is_some())
            .map(|r| r.familiar())
            .collect();
        for r in targets.iter().filter(|r| r.tag().is_some()) {
            st.repositories.entry(r.familiar_name()).or_default().insert(
                r.tag().unwrap_or("latest").to_string(),
                manifest.config.digest.hex().to_string(),
            );
            st.index.push(serde_json::json!({
                "mediaType": media::OCI_MANIFEST,
                "digest": oci_digest.to_string(),
                "size": oci.len(),
                "annotations": {"io.containerd.image.name": r.to_string(), REF_NAME: r.tag().unwrap_or("latest")},
            }));
        }
        if tags.is_empty() {
            st.index.push(serde_json::json!({"mediaType": media::OCI_MANIFEST, "digest": oci_digest.to_string(), "size": oci.len()}));
        }
        st.entries.push(ArchiveEntry {
            config: config_name,
            repo_tags: Some(tags),
            layers: layer_names,
        });
        Ok(())
    }

    fn finish(&self) -> Result<(), CopyError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let json = |v: &serde_json::Value| serde_json::to_vec(v).map_err(|e| CopyError::Invalid(e.to_string()));
        let manifest = serde_json::to_value(&st.entries).map_err(|e| CopyError::Invalid(e.to_string()))?;
        let files = [
            ("manifest.json", json(&manifest)?),
            (
                "repositories",
                json(&serde_json::to_value(&st.repositories).map_err(|e| CopyError::Invalid(e.to_string()))?)?,
            ),
            (
                "index.json",
                json(&serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": st.index}))?,
            ),
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ];
        for (name, bytes) in files {
            ArchiveDestination::append(&mut st, name, bytes.len() as u64, &mut &bytes[..])?;
        }
        let tar = st
            .tar
            .take()
            .ok_or_else(|| CopyError::Invalid("the archive is already finished".into()))?;
        let mut f = tar
            .into_inner()
            .map_err(|e| CopyError::io(format!("finishing {}", self.path.display()), e))?;
        let fail = |e| CopyError::io(format!("finishing {}", self.path.display()), e);
        f.flush().map_err(fail)?;
        let temp = self.temp.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(temp) = temp {
            f.sync_all().map_err(fail)?;
            temp.persist(&self.path).map_err(|e| fail(e.error))?;
        }
        Ok(())
    }
}
