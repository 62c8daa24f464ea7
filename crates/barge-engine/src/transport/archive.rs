//! `docker-archive:FILE[:REF]`: what `docker save` writes and `docker load`
//! reads. The source synthesises an OCI manifest for each image of the
//! archive; the destination writes docker's layout and an OCI one over the
//! same blobs.

use super::members::Members;
use super::oci::REF_NAME;
use super::{copy_in_big_writes, names_to_record, pick_image, Destination, Fetched, Source, Verified};
use crate::CopyError;
use barge_oci::image::{ImageConfig, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES};
use barge_oci::media::{self, Compression};
use barge_oci::{Descriptor, Digest, Manifest, Reference};
use barge_store::Store;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A row of an archive's `manifest.json`: one image.
#[derive(serde::Deserialize, serde::Serialize, Clone)]
pub(super) struct ArchiveEntry {
    #[serde(rename = "Config")]
    pub(super) config: String,
    #[serde(rename = "RepoTags", default)]
    pub(super) repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    pub(super) layers: Vec<String>,
}

/// An image of a docker archive (`docker save`, `skopeo copy … docker-archive:`).
pub struct ArchiveSource {
    members: Arc<Members>,
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

    pub(super) fn images(members: Members, name: &str) -> Result<Vec<ArchiveSource>, CopyError> {
        let members = Arc::new(members);
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
        let i = pick_image(
            &all,
            reference.map(|r| r.familiar()).as_deref(),
            |s| reference.is_some_and(|r| s.names().contains(r)),
            &file.display(),
            "docker-archive:FILE:REF",
        )?;
        Ok(all.swap_remove(i))
    }

    fn new(members: Arc<Members>, entry: ArchiveEntry) -> Result<ArchiveSource, CopyError> {
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
            let size = members.size(path)?;
            let mut head = [0u8; 4];
            let n = members
                .reader(path)?
                .read(&mut head)
                .map_err(|e| CopyError::io(format!("reading {path}"), e))?;
            let (media_type, digest) = match &head[..n] {
                [0x1f, 0x8b, ..] => (media::OCI_LAYER_GZIP, members.digest(path)?),
                [0x28, 0xb5, 0x2f, 0xfd] => (media::OCI_LAYER_ZSTD, members.digest(path)?),
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
    written: HashSet<String>,
    /// Stored blob → (diff ID, size) of its uncompressed form in the archive.
    layers: HashMap<Digest, (Digest, u64)>,
    configs: HashMap<Digest, Vec<u8>>,
    entries: Vec<ArchiveEntry>,
    index: Vec<serde_json::Value>,
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

/// The header of a regular file of `size` bytes, owned by root, mode 0644, time 0.
pub(super) fn tar_header(size: u64) -> tar::Header {
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
        let dir = super::parent_dir(path);
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

    fn put_blob(&self, desc: &Descriptor, reader: &mut dyn Read) -> Result<(), CopyError> {
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
        let targets = names_to_record(self.reference.as_ref(), names);
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
