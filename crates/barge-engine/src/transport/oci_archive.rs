//! `oci-archive:FILE[:REF]`: a tar of an OCI image layout, what
//! `podman save --format oci-archive` and skopeo write. The source reads
//! the tar through the docker archive's member index (`members`), blobs
//! looked up only as `blobs/sha256/<hex>` of a parsed digest; the
//! destination writes a layout with the `oci:` destination (the store's
//! `Layout`) in a directory beside the file, then tars it into place.

use super::archive::tar_header;
use super::members::Members;
use super::oci::{OciDestination, REF_NAME};
use super::{pick_image, Destination, Fetched, Source};
use crate::CopyError;
use barge_oci::image::MAX_MANIFEST_BYTES;
use barge_oci::{Descriptor, Digest, Reference};
use barge_store::Store;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn blob_member(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// One image (a row of `index.json`) of an OCI archive.
pub struct OciArchiveSource {
    members: Arc<Members>,
    row: Descriptor,
}

impl OciArchiveSource {
    /// The image of an OCI archive named `reference` (its `ref.name`), or its only image.
    pub fn open(file: &Path, reference: Option<&str>, store: &Store) -> Result<OciArchiveSource, CopyError> {
        let mut all = OciArchiveSource::images(Arc::new(Members::open(file, store)?), &file.display())?;
        let i = pick_image(
            &all,
            reference,
            |s| s.row.annotation(REF_NAME) == reference,
            &file.display(),
            "oci-archive:FILE:REF",
        )?;
        Ok(all.swap_remove(i))
    }

    /// Every image of an archive already indexed.
    pub(super) fn images(
        members: Arc<Members>,
        name: &dyn std::fmt::Display,
    ) -> Result<Vec<OciArchiveSource>, CopyError> {
        #[derive(serde::Deserialize)]
        struct Index {
            #[serde(default)]
            manifests: Vec<Descriptor>,
        }
        let bytes = members.read("index.json", MAX_MANIFEST_BYTES)?;
        let index: Index =
            serde_json::from_slice(&bytes).map_err(|e| CopyError::Invalid(format!("index.json of {name}: {e}")))?;
        Ok(index
            .manifests
            .into_iter()
            .map(|row| {
                // A row barge pointed at the OCI form of a Docker manifest gives the original.
                let row = barge_store::layout::original_of(row, |d| members.size(&blob_member(d)).ok());
                OciArchiveSource {
                    members: members.clone(),
                    row,
                }
            })
            .collect())
    }

    fn read_manifest(&self, digest: &Digest) -> Result<Vec<u8>, CopyError> {
        self.members.read(&blob_member(digest), MAX_MANIFEST_BYTES)
    }
}

impl Source for OciArchiveSource {
    fn manifest(&self) -> Result<Fetched, CopyError> {
        Fetched::new(self.read_manifest(&self.row.digest)?, &self.row.media_type).verify(&self.row.digest)
    }

    fn manifest_by_digest(&self, digest: &Digest) -> Result<Fetched, CopyError> {
        Fetched::sniffed(self.read_manifest(digest)?)?.verify(digest)
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>, CopyError> {
        Ok(Box::new(self.members.reader(&blob_member(&desc.digest))?))
    }

    /// The `ref.name` when it is a full reference (`host/repo:tag`, as
    /// podman writes); a bare tag names nothing outside the archive.
    fn names(&self) -> Vec<Reference> {
        self.row
            .annotation(REF_NAME)
            .filter(|n| n.contains('/') || n.contains(':'))
            .and_then(|n| Reference::parse_default_tag(n).ok())
            .into_iter()
            .collect()
    }
}

/// Writes an OCI archive: an OCI layout built in a directory beside the
/// file, tarred into a temporary file there by `finish`, which is renamed
/// over the file.
pub struct OciArchiveDestination {
    layout: OciDestination,
    dir: Mutex<Option<tempfile::TempDir>>,
    path: PathBuf,
}

impl OciArchiveDestination {
    pub fn create(path: &Path, reference: Option<String>) -> Result<OciArchiveDestination, CopyError> {
        let parent = super::parent_dir(path);
        let dir = tempfile::Builder::new()
            .prefix(".barge-oci-archive-")
            .tempdir_in(parent)
            .map_err(|e| CopyError::io(format!("creating a directory in {}", parent.display()), e))?;
        let layout = OciDestination::new(dir.path(), reference)?;
        Ok(OciArchiveDestination {
            layout,
            dir: Mutex::new(Some(dir)),
            path: path.to_path_buf(),
        })
    }

    /// Tars the layout at `dir` into `out`: its directories, `oci-layout`,
    /// `index.json` and every blob, streamed from disk.
    fn write_tar(dir: &Path, out: File) -> Result<File, CopyError> {
        let io = |what: &Path, e| CopyError::io(format!("archiving {}", what.display()), e);
        let mut tar = tar::Builder::new(out);
        for d in ["blobs/", "blobs/sha256/"] {
            let mut h = tar_header(0);
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            tar.append_data(&mut h, d, std::io::empty())
                .map_err(|e| io(Path::new(d), e))?;
        }
        let blobs = dir.join("blobs/sha256");
        let mut names: Vec<String> = std::fs::read_dir(&blobs)
            .map_err(|e| io(&blobs, e))?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| Digest::from_hex(n).is_ok())
            .collect();
        names.sort();
        let members = ["oci-layout".to_string(), "index.json".to_string()]
            .into_iter()
            .chain(names.into_iter().map(|n| format!("blobs/sha256/{n}")));
        for member in members {
            let path = dir.join(&member);
            let mut f = File::open(&path).map_err(|e| io(&path, e))?;
            let size = f.metadata().map_err(|e| io(&path, e))?.len();
            let mut h = tar_header(size);
            tar.append_data(&mut h, &member, &mut f).map_err(|e| io(&path, e))?;
        }
        tar.into_inner().map_err(|e| io(dir, e))
    }
}

impl Destination for OciArchiveDestination {
    fn has_blob(&self, desc: &Descriptor) -> Result<bool, CopyError> {
        self.layout.has_blob(desc)
    }

    fn put_blob(&self, desc: &Descriptor, reader: &mut dyn Read) -> Result<(), CopyError> {
        self.layout.put_blob(desc, reader)
    }

    fn put_manifest(&self, m: &Fetched, top: bool, names: &[Reference]) -> Result<(), CopyError> {
        self.layout.put_manifest(m, top, names)
    }

    fn finish(&self) -> Result<(), CopyError> {
        let dir = self
            .dir
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| CopyError::Invalid("the archive is already finished".into()))?;
        let parent = dir.path().parent().unwrap_or(Path::new("."));
        let fail = |e| CopyError::io(format!("writing {}", self.path.display()), e);
        let temp = tempfile::Builder::new()
            .prefix(".barge-save-")
            .tempfile_in(parent)
            .map_err(fail)?;
        let (f, temp) = temp.into_parts();
        let mut f = OciArchiveDestination::write_tar(dir.path(), f)?;
        f.flush().map_err(fail)?;
        f.sync_all().map_err(fail)?;
        temp.persist(&self.path).map_err(|e| fail(e.error))?;
        dir.close()
            .map_err(|e| CopyError::io(format!("removing the layout beside {}", self.path.display()), e))
    }
}

/// Every image of an archive `barge load` reads: a docker archive
/// (`manifest.json`) or an OCI archive (`index.json`, `oci-layout`).
fn sources_of(members: Members, name: &str) -> Result<Vec<Box<dyn Source>>, CopyError> {
    if !members.has("manifest.json") && members.has("index.json") {
        let all = OciArchiveSource::images(Arc::new(members), &name)?;
        return Ok(all.into_iter().map(|s| Box::new(s) as Box<dyn Source>).collect());
    }
    let all = super::ArchiveSource::images(members, name)?;
    Ok(all.into_iter().map(|s| Box::new(s) as Box<dyn Source>).collect())
}

/// Every image of an archive file, docker's or OCI's (see [`sources_of`]).
pub fn archive_sources(file: &Path, store: &Store) -> Result<Vec<Box<dyn Source>>, CopyError> {
    sources_of(Members::open(file, store)?, &file.display().to_string())
}

/// Every image of an archive read from a stream (standard input), named `name` in messages.
pub fn archive_sources_from(
    reader: Box<dyn Read + Send>,
    name: &str,
    store: &Store,
) -> Result<Vec<Box<dyn Source>>, CopyError> {
    sources_of(Members::stream(reader, name, store)?, name)
}
