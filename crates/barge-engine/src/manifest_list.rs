//! Manifest lists drafted locally and pushed, as `docker manifest create`,
//! `annotate`, `push` and `rm` (and podman's) do: a draft names the image
//! manifests of a list with their platforms, kept as JSON under the
//! store's `manifests/` directory until it is pushed (and, with
//! `--purge`, removed).
//!
//! Pushing copies each manifest (and its blobs, mounted within a
//! registry) into the list's repository when it is not there, then puts
//! an OCI index, or a Docker manifest list on request.

use crate::copy::{copy, CopyError, CopyOptions};
use crate::remote::RemoteError;
use crate::transport::{RegistryDestination, RegistrySource};
use crate::Silent;
use barge_oci::image::{ImageConfig, MAX_CONFIG_BYTES};
use barge_oci::{media, Descriptor, Digest, Manifest, Platform, Reference};
use barge_registry::Client;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Copy(Box<CopyError>),
    #[error("a manifest list {0} exists here already: add --amend to add to it, or remove it with barge manifest rm")]
    Exists(String),
    #[error("no manifest list {0} here: create it with barge manifest create")]
    NotFound(String),
    #[error("{image} is not in the manifest list {list}")]
    NotInList { list: String, image: String },
    #[error("the manifest list {0} is empty")]
    Empty(String),
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the draft {} is not valid: {source}; remove it with barge manifest rm", .path.display())]
    Corrupt { path: PathBuf, source: serde_json::Error },
}

impl From<CopyError> for ListError {
    fn from(e: CopyError) -> Self {
        ListError::Copy(Box::new(e))
    }
}

impl From<barge_registry::RegistryError> for ListError {
    fn from(e: barge_registry::RegistryError) -> Self {
        ListError::Remote(e.into())
    }
}

/// One image manifest of a draft.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DraftEntry {
    /// The image as given to `create` (`host/app:amd64`).
    pub image: String,
    /// Where its manifest is, pinned by digest.
    pub pinned: String,
    /// Its descriptor in the list (media type, digest, size, platform).
    pub descriptor: Descriptor,
}

/// A manifest list being drafted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Draft {
    /// The list's reference.
    pub name: String,
    pub entries: Vec<DraftEntry>,
}

/// The drafts of one store: `<root>/manifests/<sha256 of the name>.json`.
pub struct Drafts {
    dir: PathBuf,
}

/// Which kind of list `push` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// An OCI image index.
    Oci,
    /// A Docker manifest list (v2 schema 2).
    Docker,
}

impl Drafts {
    pub fn new(root: &Path) -> Drafts {
        Drafts {
            dir: root.join("manifests"),
        }
    }

    fn path(&self, list: &Reference) -> PathBuf {
        let name = list.to_string();
        let digest = Digest::of(name.as_bytes());
        self.dir.join(format!("{}.json", digest.hex()))
    }

    /// The draft of `list`.
    pub fn load(&self, list: &Reference) -> Result<Draft, ListError> {
        let path = self.path(list);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ListError::NotFound(list.to_string())),
            Err(source) => {
                return Err(ListError::Io {
                    what: "reading",
                    path,
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes).map_err(|source| ListError::Corrupt { path, source })
    }

    fn save(&self, list: &Reference, draft: &Draft) -> Result<(), ListError> {
        let io_err = |what, source| ListError::Io {
            what,
            path: self.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| io_err("creating", e))?;
        let bytes = serde_json::to_vec_pretty(draft).map_err(|e| io_err("encoding a draft in", e.into()))?;
        barge_store::fsutil::write_atomic(&self.path(list), &bytes, 0o600).map_err(|e| io_err("writing a draft in", e))
    }

    /// Removes the draft of `list`.
    pub fn remove(&self, list: &Reference) -> Result<(), ListError> {
        let path = self.path(list);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ListError::NotFound(list.to_string())),
            Err(source) => Err(ListError::Io {
                what: "removing",
                path,
                source,
            }),
        }
    }

    /// Drafts `list` from `images` (each an image manifest, whose platform
    /// its config gives, or an index, whose image manifests all join);
    /// with `amend`, adds them to the existing draft. An entry of the same
    /// digest is replaced.
    pub fn create(
        &self,
        client: &Client,
        list: &Reference,
        images: &[Reference],
        amend: bool,
    ) -> Result<Draft, ListError> {
        let mut draft = match self.load(list) {
            Ok(_) if !amend => return Err(ListError::Exists(list.to_string())),
            Ok(d) => d,
            Err(ListError::NotFound(_)) => Draft {
                name: list.to_string(),
                entries: Vec::new(),
            },
            Err(e) => return Err(e),
        };
        for image in images {
            for entry in entries_of(client, image)? {
                draft.entries.retain(|e| e.descriptor.digest != entry.descriptor.digest);
                draft.entries.push(entry);
            }
        }
        self.save(list, &draft)?;
        Ok(draft)
    }

    /// Sets the platform fields given of `image`'s entry in `list`.
    pub fn annotate(
        &self,
        list: &Reference,
        image: &Reference,
        os: Option<&str>,
        arch: Option<&str>,
        variant: Option<&str>,
    ) -> Result<Descriptor, ListError> {
        let mut draft = self.load(list)?;
        let wanted = image.to_string();
        let entry = draft
            .entries
            .iter_mut()
            .find(|e| e.image == wanted || e.pinned == wanted || Some(&e.descriptor.digest) == image.digest())
            .ok_or_else(|| ListError::NotInList {
                list: list.to_string(),
                image: image.familiar(),
            })?;
        let p = entry.descriptor.platform.get_or_insert_with(|| Platform {
            architecture: String::new(),
            os: String::new(),
            os_version: None,
            os_features: None,
            variant: None,
        });
        if let Some(os) = os {
            p.os = os.to_string();
        }
        if let Some(arch) = arch {
            p.architecture = arch.to_string();
        }
        if let Some(v) = variant {
            p.variant = (!v.is_empty()).then(|| v.to_string());
        }
        let desc = entry.descriptor.clone();
        self.save(list, &draft)?;
        Ok(desc)
    }
}

/// The entries `image` contributes to a list.
fn entries_of(client: &Client, image: &Reference) -> Result<Vec<DraftEntry>, ListError> {
    let top = client.get_manifest(image)?;
    match &top.manifest {
        Manifest::Index { index, .. } => Ok(index
            .manifests
            .iter()
            .filter(|d| media::is_image_manifest(&d.media_type))
            .map(|d| DraftEntry {
                image: image.to_string(),
                pinned: image.with_digest(d.digest.clone()).to_string(),
                descriptor: d.clone(),
            })
            .collect()),
        Manifest::Image { manifest, .. } => {
            let raw = client.get_small_blob(image, &manifest.config, MAX_CONFIG_BYTES)?;
            let config = ImageConfig::parse(&raw).map_err(|source| RemoteError::Config {
                reference: image.familiar(),
                source,
            })?;
            let mut d = Descriptor::new(&top.media_type, top.digest.clone(), top.bytes.len() as u64);
            d.platform = Some(Platform {
                architecture: config.architecture.clone(),
                os: config.os.clone(),
                os_version: None,
                os_features: None,
                variant: config.variant.clone(),
            });
            Ok(vec![DraftEntry {
                image: image.to_string(),
                pinned: image.with_digest(top.digest.clone()).to_string(),
                descriptor: d,
            }])
        }
    }
}

/// Pushes `draft` to `dest`: each manifest is copied into `dest`'s
/// repository first when missing there (blobs mounted within a
/// registry), then the list goes under `dest`'s tag. Returns its digest.
pub fn push(
    client: &Client,
    draft: &Draft,
    dest: &Reference,
    format: ListFormat,
    max_concurrent: usize,
) -> Result<Digest, ListError> {
    if draft.entries.is_empty() {
        return Err(ListError::Empty(draft.name.clone()));
    }
    for e in &draft.entries {
        let target = dest.with_digest(e.descriptor.digest.clone());
        if client.head_manifest(&target)?.is_some() {
            continue;
        }
        let pinned = Reference::parse(&e.pinned).map_err(RemoteError::from)?;
        copy(
            &RegistrySource {
                client,
                reference: pinned,
            },
            &RegistryDestination {
                client,
                reference: target,
            },
            &CopyOptions {
                all: Some(true),
                max_concurrent,
                ..Default::default()
            },
            &Silent,
        )?;
    }
    let media_type = match format {
        ListFormat::Oci => media::OCI_INDEX,
        ListFormat::Docker => media::DOCKER_MANIFEST_LIST,
    };
    let manifests: Vec<&Descriptor> = draft.entries.iter().map(|e| &e.descriptor).collect();
    let bytes = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": manifests,
    })
    .to_string()
    .into_bytes();
    Ok(client.put_manifest(dest, &dest.manifest_key(), media_type, &bytes)?)
}
