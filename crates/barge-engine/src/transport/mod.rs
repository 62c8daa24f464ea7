//! Where images can be copied from and to: a registry (`docker://REF`), an
//! OCI image layout (`oci:DIR[:REF]`), a docker archive
//! (`docker-archive:FILE[:REF]`, what `docker save` writes), an OCI archive
//! (`oci-archive:FILE[:REF]`, a tar of an OCI layout) and barge's own store
//! (`barge:REF`). Sources hand out manifests and blob streams;
//! destinations take them, verifying digests as the bytes pass.
//!
//! This file holds what every transport shares: the address parser
//! ([`Location`]), the [`Source`] and [`Destination`] traits and the stream
//! helpers. Each transport has its own file with its source and destination:
//! `registry`, `oci`, `oci_archive`, `store` and `archive` (whose tar
//! reading is `members`, the OCI archive's too).

mod archive;
mod members;
mod oci;
mod oci_archive;
mod registry;
mod store;

pub use archive::{ArchiveDestination, ArchiveSource};
pub use oci::{OciDestination, OciSource};
pub use oci_archive::{archive_sources, archive_sources_from, OciArchiveDestination, OciArchiveSource};
pub use registry::{RegistryDestination, RegistrySource};
pub use store::{StoreDestination, StoreSource};

use crate::CopyError;
use barge_oci::{Descriptor, Digest, Hasher, Manifest, Reference};
use std::fmt::Display;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

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
    OciArchive {
        file: PathBuf,
        reference: Option<String>,
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
            "oci-archive" => {
                let (file, reference) = split(rest);
                if file.is_empty() {
                    return Err(bad("oci-archive: needs a file"));
                }
                Ok(Location::OciArchive {
                    file: PathBuf::from(file),
                    reference,
                })
            }
            "barge" => Ok(Location::Store(rest.to_string())),
            other => Err(bad(&format!(
                "unknown transport {other:?}: use docker://, oci:, docker-archive:, oci-archive: or barge:"
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

    /// A manifest whose media type is not known from elsewhere: read from its bytes.
    pub(crate) fn sniffed(bytes: Vec<u8>) -> Result<Fetched, CopyError> {
        let media_type = Manifest::parse(&bytes, None)
            .map_err(CopyError::Manifest)?
            .media_type()
            .to_string();
        Ok(Fetched::new(bytes, &media_type))
    }

    pub fn parse(&self) -> Result<Manifest, CopyError> {
        Manifest::parse(&self.bytes, Some(&self.media_type)).map_err(CopyError::Manifest)
    }
}

impl From<barge_registry::FetchedManifest> for Fetched {
    fn from(m: barge_registry::FetchedManifest) -> Fetched {
        Fetched {
            bytes: m.bytes,
            media_type: m.media_type,
            digest: m.digest,
        }
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
    /// The client that reads a registry source (for what is attached to an image).
    fn client(&self) -> Option<&barge_registry::Client> {
        None
    }
    /// The cosign signatures stored for manifest `digest`, where the transport keeps any.
    fn signatures(&self, _digest: &Digest) -> Result<Option<crate::trust::SignatureSet>, CopyError> {
        Ok(None)
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
    fn put_blob(&self, desc: &Descriptor, reader: &mut dyn Read) -> Result<(), CopyError>;
    /// Stores a blob, linking it from the registry repository `from`
    /// instead when the destination can (a registry of the same host);
    /// else the same as [`Destination::put_blob`].
    fn mount_or_put(&self, desc: &Descriptor, blob: &mut dyn Read, from: Option<&Reference>) -> Result<(), CopyError> {
        let _ = from;
        self.put_blob(desc, blob)
    }
    /// Stores a manifest; `top` is the one the destination reference names.
    fn put_manifest(&self, manifest: &Fetched, top: bool, names: &[Reference]) -> Result<(), CopyError>;
    /// Stores signatures beside the image, where the transport keeps any (registries do).
    fn put_signatures(&self, _signatures: &crate::trust::SignatureSet) -> Result<(), CopyError> {
        Ok(())
    }
    /// The client and repository of a registry destination.
    fn registry(&self) -> Option<(&barge_registry::Client, &Reference)> {
        None
    }
    /// Only a single-platform image fits (docker archives).
    fn single_platform(&self) -> bool {
        false
    }
    /// Writes what must come last (an archive's index).
    fn finish(&self) -> Result<(), CopyError> {
        Ok(())
    }
}

/// The directory a file is written in (`.` for a bare name), where its
/// temporary files go so that a rename puts it in place.
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `io::copy` with 1 MiB writes instead of 8 KiB ones: a blob costs a few
/// hundred system calls, not tens of thousands.
pub(crate) fn copy_in_big_writes(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let filled = barge_store::fsutil::read_full(r, &mut buf)?;
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

/// Reads at most `limit` bytes of `r`, the whole of `what`: more is an error.
pub(crate) fn read_capped(mut r: impl Read, limit: u64, what: &dyn Display) -> Result<Vec<u8>, CopyError> {
    let mut bytes = Vec::new();
    (&mut r)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CopyError::io(format!("reading {what}"), e))?;
    if bytes.len() as u64 > limit {
        return Err(CopyError::Invalid(format!("{what} is larger than {limit} bytes")));
    }
    Ok(bytes)
}

/// Which of a file's `images` the user means: the one `is_named` picks
/// when a name was given, else the only one. `place` names the file and
/// `syntax` shows how to name an image in it.
pub(crate) fn pick_image<T>(
    images: &[T],
    name: Option<&str>,
    is_named: impl Fn(&T) -> bool,
    place: &dyn Display,
    syntax: &str,
) -> Result<usize, CopyError> {
    let found = match name {
        Some(_) => images.iter().position(is_named),
        None if images.len() == 1 => Some(0),
        None => {
            return Err(CopyError::Invalid(format!(
                "{place} holds {} images: name one with {syntax}",
                images.len()
            )))
        }
    };
    found.ok_or_else(|| CopyError::NotFound(format!("{} in {place}", name.unwrap_or_default())))
}

/// The names a destination that records names gives an image: the one it
/// was told, else the source's.
pub(crate) fn names_to_record(told: Option<&Reference>, source: &[Reference]) -> Vec<Reference> {
    match told {
        Some(r) => vec![r.clone()],
        None => source.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_image_takes_the_named_or_the_only_image() {
        let images = ["a", "b"];
        let pick =
            |name: Option<&str>, images: &[&str]| pick_image(images, name, |i| Some(*i) == name, &"/x", "oci:DIR:REF");
        assert_eq!(pick(Some("b"), &images).unwrap(), 1);
        assert_eq!(pick(None, &["a"]).unwrap(), 0);
        let e = pick(None, &images).unwrap_err().to_string();
        assert_eq!(e, "/x holds 2 images: name one with oci:DIR:REF");
        let e = pick(Some("c"), &images).unwrap_err().to_string();
        assert_eq!(e, "not found: c in /x");
        let e = pick(None, &[]).unwrap_err().to_string();
        assert_eq!(e, "/x holds 0 images: name one with oci:DIR:REF");
    }

    #[test]
    fn oci_archive_locations_name_a_file_and_maybe_an_image() {
        assert_eq!(
            Location::parse("oci-archive:/tmp/a.tar:host:5000/app:1").unwrap(),
            Location::OciArchive {
                file: PathBuf::from("/tmp/a.tar"),
                reference: Some("host:5000/app:1".into())
            }
        );
        assert_eq!(
            Location::parse("oci-archive:a.tar").unwrap(),
            Location::OciArchive {
                file: PathBuf::from("a.tar"),
                reference: None
            }
        );
        assert!(Location::parse("oci-archive:").is_err());
    }

    #[test]
    fn read_capped_refuses_one_byte_more() {
        assert_eq!(read_capped(&b"four"[..], 4, &"f").unwrap(), b"four");
        let e = read_capped(&b"fives"[..], 4, &"f").unwrap_err().to_string();
        assert_eq!(e, "f is larger than 4 bytes");
    }

    #[test]
    fn names_to_record_prefers_the_one_given() {
        let r = |s: &str| Reference::parse_default_tag(s).unwrap();
        let source = [r("a:1"), r("b:2")];
        assert_eq!(names_to_record(Some(&r("c:3")), &source), [r("c:3")]);
        assert_eq!(names_to_record(None, &source), source);
    }

    #[test]
    fn sniffed_manifests_carry_the_media_type_of_their_bytes() {
        let bytes = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        let f = Fetched::sniffed(bytes.to_vec()).unwrap();
        assert_eq!(f.media_type, barge_oci::media::OCI_INDEX);
        assert_eq!(f.digest, Digest::of(bytes));
        assert!(Fetched::sniffed(b"{}".to_vec()).is_err());
    }
}
