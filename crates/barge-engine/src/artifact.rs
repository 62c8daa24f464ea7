//! Artifacts as oras keeps them: files pushed as the layers of an OCI 1.1
//! image manifest with an `artifactType`, the empty config (`{}`), each
//! layer titled with `org.opencontainers.image.title`, and optionally a
//! `subject` (then the artifact is one of that image's referrers); and
//! pulled back into a directory by title.
//!
//! Files are streamed both ways, never held in memory. A pulled file is
//! written beside its final name and renamed there only once its digest
//! is verified. Titles are hostile input: absolute paths, `..`, and paths
//! through symlinks (under the output directory) are refused.

use crate::remote::{self, RemoteError};
use crate::transport::copy_in_big_writes;
use barge_oci::digest::HashingReader;
use barge_oci::{media, Descriptor, Digest, Manifest, Reference};
use barge_registry::{Client, RegistryError};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The config of an artifact with none, and its content.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY: &[u8] = b"{}";
/// The annotation that names a layer's file.
pub const TITLE: &str = "org.opencontainers.image.title";
/// A file's media type when none is given (oras's default).
pub const DEFAULT_FILE_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// One file to push.
#[derive(Debug, Clone)]
pub struct ArtifactFile {
    pub path: PathBuf,
    /// Its layer's media type; [`DEFAULT_FILE_MEDIA_TYPE`] when `None`.
    pub media_type: Option<String>,
}

/// What to push.
#[derive(Debug, Clone)]
pub struct ArtifactPush<'a> {
    pub reference: &'a Reference,
    pub artifact_type: &'a str,
    pub files: &'a [ArtifactFile],
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The image the artifact refers to (same repository).
    pub subject: Option<&'a Reference>,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest as a referrers list shows it.
    pub descriptor: Descriptor,
    /// The subject's digest, when there is one.
    pub subject: Option<Digest>,
    /// The registry has no referrers API: the `sha256-<hex>` index was updated.
    pub tag_schema: bool,
}

fn io_err<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> RemoteError + 'p {
    move |source| RemoteError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Pushes an artifact: each file's blob (hashed in a first pass, streamed
/// in a second), the empty config, then the manifest under the
/// reference's tag (a reference without one: by digest alone); with a
/// subject, makes it findable as a referrer of it.
pub fn push(client: &Client, req: &ArtifactPush<'_>) -> Result<Pushed, RemoteError> {
    let subject = match req.subject {
        Some(s) if s.registry() != req.reference.registry() || s.repository() != req.reference.repository() => {
            return Err(RemoteError::SubjectElsewhere {
                subject: s.familiar(),
                reference: req.reference.familiar(),
            })
        }
        Some(s) => {
            let m = client.get_manifest(s)?;
            Some(Descriptor::new(&m.media_type, m.digest, m.bytes.len() as u64))
        }
        None => None,
    };
    let mut layers: Vec<Descriptor> = Vec::with_capacity(req.files.len());
    for f in req.files {
        let title = f
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| RemoteError::BadTitle {
                title: f.path.display().to_string(),
                why: "a file to push needs a name in UTF-8".into(),
            })?;
        if layers.iter().any(|l| l.annotation(TITLE) == Some(title)) {
            return Err(RemoteError::BadTitle {
                title: title.to_string(),
                why: "two files of one artifact have that name".into(),
            });
        }
        let file = File::open(&f.path).map_err(io_err("opening", &f.path))?;
        let mut hashing = HashingReader::new(file);
        let size = io::copy(&mut hashing, &mut io::sink()).map_err(io_err("reading", &f.path))?;
        let (digest, _) = hashing.finish();
        // A file changed between the passes no longer matches its digest: the registry refuses it.
        remote::put_blob_if_missing(client, req.reference, &digest, size, || {
            File::open(&f.path).map_err(io_err("opening", &f.path))
        })?;
        let mut d = Descriptor::new(f.media_type.as_deref().unwrap_or(DEFAULT_FILE_MEDIA_TYPE), digest, size);
        d.annotations = Some(BTreeMap::from([(TITLE.to_string(), title.to_string())]));
        layers.push(d);
    }
    let config = Descriptor::new(EMPTY_MEDIA_TYPE, Digest::of(EMPTY), EMPTY.len() as u64);
    remote::put_blob_if_missing(client, req.reference, &config.digest, config.size, || {
        Ok::<_, RemoteError>(EMPTY)
    })?;
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": req.artifact_type,
        "config": config,
        "layers": layers,
    });
    if let Some(s) = &subject {
        manifest["subject"] = serde_json::json!(s);
    }
    if !req.annotations.is_empty() {
        manifest["annotations"] = serde_json::json!(req.annotations);
    }
    let bytes = manifest.to_string().into_bytes();
    // A repository alone: by digest, untagged (as `oras attach` does).
    let key = match (req.reference.tag(), req.reference.digest()) {
        (None, None) => Digest::of(&bytes).to_string(),
        _ => req.reference.manifest_key(),
    };
    client.put_manifest(req.reference, &key, media::OCI_MANIFEST, &bytes)?;
    let parsed = match Manifest::parse(&bytes, Some(media::OCI_MANIFEST)) {
        Ok(Manifest::Image { manifest, .. }) => manifest,
        Ok(Manifest::Index { media_type, .. }) => {
            return Err(RemoteError::NotAnArtifact {
                reference: req.reference.familiar(),
                media_type,
            })
        }
        Err(source) => {
            return Err(RemoteError::Manifest {
                reference: req.reference.familiar(),
                source,
            })
        }
    };
    let descriptor = remote::referrer_descriptor(media::OCI_MANIFEST, &bytes, &parsed);
    let tag_schema = match &subject {
        Some(s) => remote::index_referrers(client, req.reference, &s.digest, std::slice::from_ref(&descriptor))?,
        None => false,
    };
    Ok(Pushed {
        descriptor,
        subject: subject.map(|s| s.digest),
        tag_schema,
    })
}

/// One file pulled.
#[derive(Debug, Clone)]
pub struct PulledFile {
    pub title: String,
    pub digest: Digest,
    pub size: u64,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The manifest's digest.
    pub digest: Digest,
    pub files: Vec<PulledFile>,
    /// Layers without a title, which name no file: not written.
    pub untitled: usize,
}

/// The components of a title, or why it is refused: it must stay below
/// the output directory.
fn title_components(title: &str) -> Result<Vec<&str>, RemoteError> {
    let refuse = |why: &str| RemoteError::BadTitle {
        title: title.to_string(),
        why: why.to_string(),
    };
    if title.starts_with('/') {
        return Err(refuse("an absolute path"));
    }
    if title.contains('\0') {
        return Err(refuse("a NUL byte"));
    }
    let comps: Vec<&str> = title.split('/').collect();
    for c in &comps {
        match *c {
            "" => return Err(refuse("an empty path component")),
            "." | ".." => return Err(refuse("a path that leaves or names the output directory")),
            _ => {}
        }
    }
    Ok(comps)
}

/// Opens the directory `comps` below `root`, creating missing levels; a
/// symlink anywhere on the way is refused.
fn beneath(root: &OwnedFd, comps: &[&str], title: &str) -> Result<OwnedFd, RemoteError> {
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let open = |path: &str| {
        barge_store::fsutil::openat2(
            root,
            if path.is_empty() { "." } else { path },
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        )
    };
    let refused = |e: rustix::io::Errno| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => RemoteError::BadTitle {
            title: title.to_string(),
            why: "its path goes through a symlink".into(),
        },
        rustix::io::Errno::NOTDIR => RemoteError::BadTitle {
            title: title.to_string(),
            why: "its path goes through a file that is not a directory".into(),
        },
        e => RemoteError::Io {
            what: "creating the directories of",
            path: PathBuf::from(title),
            source: e.into(),
        },
    };
    let mut dir = open("").map_err(refused)?;
    for i in 1..=comps.len() {
        let path = comps[..i].join("/");
        dir = match open(&path) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(&dir, comps[i - 1], Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(refused(e)),
                }
                open(&path).map_err(refused)?
            }
            Err(e) => return Err(refused(e)),
        };
    }
    Ok(dir)
}

/// Pulls the artifact `reference` names into `dir` (created when
/// missing): every titled layer becomes the file of that title, verified
/// before it appears. Every title (and the directories it goes through)
/// is checked before any file is written.
pub fn pull(client: &Client, reference: &Reference, dir: &Path) -> Result<Pulled, RemoteError> {
    let fetched = client.get_manifest(reference)?;
    let Manifest::Image { manifest, .. } = &fetched.manifest else {
        return Err(RemoteError::NotAnArtifact {
            reference: reference.familiar(),
            media_type: fetched.media_type,
        });
    };
    let mut wanted: Vec<(&str, Vec<&str>, &Descriptor)> = Vec::new();
    for l in &manifest.layers {
        let Some(title) = l.annotation(TITLE) else { continue };
        let comps = title_components(title)?;
        if wanted.iter().any(|(_, c, _)| *c == comps) {
            return Err(RemoteError::BadTitle {
                title: title.to_string(),
                why: "two layers of the artifact have that title".into(),
            });
        }
        wanted.push((title, comps, l));
    }
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let root = rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io_err("opening", dir)(e.into()))?;
    // Every parent directory is found (through no symlink) before any file is written.
    let mut targets = Vec::with_capacity(wanted.len());
    for (title, comps, layer) in &wanted {
        let (name, parents) = comps.split_last().ok_or_else(|| RemoteError::BadTitle {
            title: title.to_string(),
            why: "it is empty".into(),
        })?;
        targets.push((title, beneath(&root, parents, title)?, *name, *layer));
    }
    let mut files = Vec::with_capacity(targets.len());
    for (i, (title, parent, name, layer)) in targets.into_iter().enumerate() {
        let size = fetch_into(client, reference, layer, &parent, name, i, title)?;
        files.push(PulledFile {
            title: title.to_string(),
            digest: layer.digest.clone(),
            size,
        });
    }
    Ok(Pulled {
        digest: fetched.digest,
        files,
        untitled: manifest.layers.len() - wanted.len(),
    })
}

/// Streams `layer` into a new file beside `name` in `parent`, verifies
/// it, and renames it to `name` (replacing what was there; a symlink
/// there is replaced, never followed).
fn fetch_into(
    client: &Client,
    reference: &Reference,
    layer: &Descriptor,
    parent: &OwnedFd,
    name: &str,
    n: usize,
    title: &str,
) -> Result<u64, RemoteError> {
    let shown = PathBuf::from(title);
    let err = |what: &'static str| {
        let shown = shown.clone();
        move |e: rustix::io::Errno| RemoteError::Io {
            what,
            path: shown,
            source: e.into(),
        }
    };
    let tmp = format!(".barge-artifact-{}-{n}", std::process::id());
    let fd = rustix::fs::openat(
        parent,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(err("creating a temporary file for"))?;
    let mut file = File::from(fd);
    let written = (|| {
        let mut reader = HashingReader::new(client.open_blob(reference, layer, 0)?);
        let n = copy_in_big_writes(&mut reader, &mut file).map_err(|e| match RegistryError::from_io(e) {
            Ok(r) => RemoteError::from(r),
            Err(e) => io_err("writing", &shown)(e),
        })?;
        let (actual, _) = reader.finish();
        if actual != layer.digest || n != layer.size {
            return Err(RemoteError::BlobMismatch {
                digest: layer.digest.clone(),
                actual,
                size: n,
            });
        }
        file.sync_all().map_err(io_err("writing", &shown))?;
        rustix::fs::renameat(parent, tmp.as_str(), parent, name).map_err(err("renaming the file to"))?;
        Ok(n)
    })();
    if written.is_err() {
        let _ = rustix::fs::unlinkat(parent, tmp.as_str(), rustix::fs::AtFlags::empty());
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_stay_below_the_directory() {
        assert_eq!(title_components("a.txt").unwrap(), ["a.txt"]);
        assert_eq!(title_components("docs/a.txt").unwrap(), ["docs", "a.txt"]);
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            ".",
            "",
            "a/",
            "a/./b",
            "x\0y",
        ] {
            assert!(title_components(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn symlinks_under_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/tmp", dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        let root = rustix::fs::open(dir.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        assert!(matches!(
            beneath(&root, &["link"], "link/x"),
            Err(RemoteError::BadTitle { .. })
        ));
        assert!(beneath(&root, &["real", "new", "deeper"], "t").is_ok());
        assert!(dir.path().join("real/new/deeper").is_dir());
    }
}
