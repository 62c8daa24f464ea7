//! The members of a tar archive (a docker or OCI archive), indexed once so that
//! each can be read again by name: in place for a plain tar file, from a
//! spool file for a compressed one or a stream.

use super::archive::ArchiveEntry;
use super::{copy_in_big_writes, read_capped};
use crate::CopyError;
use barge_oci::image::MAX_MANIFEST_BYTES;
use barge_oci::media::Compression;
use barge_oci::{Digest, Hasher};
use barge_store::Store;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Where each member of a tar archive starts and how long it is, in `file`:
/// the archive itself when it is a plain tar file, else a spool file in
/// the store's ingest area holding the data of the members an image needs.
pub(super) struct Members {
    file: File,
    members: HashMap<String, (u64, u64)>,
}

/// Members an archive may list, against archives of millions of tiny files.
const MAX_MEMBERS: usize = 100_000;

fn normalise_member(name: &str) -> String {
    name.trim_start_matches("./").trim_start_matches('/').to_string()
}

/// The member names `manifest.json` refers to, once it has been read.
fn referenced(manifest: &[u8]) -> Option<HashSet<String>> {
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
    pub(super) fn open(path: &Path, store: &Store) -> Result<Members, CopyError> {
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
    pub(super) fn stream(reader: Box<dyn Read + Send>, name: &str, store: &Store) -> Result<Members, CopyError> {
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
        let mut wanted: Option<HashSet<String>> = None;
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

    /// Where a member starts and how long it is.
    fn locate(&self, name: &str) -> Result<(u64, u64), CopyError> {
        self.members
            .get(&normalise_member(name))
            .copied()
            .ok_or_else(|| CopyError::Invalid(format!("the archive has no {name}")))
    }

    /// Whether the archive holds a member of this name.
    pub(super) fn has(&self, name: &str) -> bool {
        self.members.contains_key(&normalise_member(name))
    }

    pub(super) fn size(&self, name: &str) -> Result<u64, CopyError> {
        Ok(self.locate(name)?.1)
    }

    pub(super) fn reader(&self, name: &str) -> Result<impl Read + Send + '_, CopyError> {
        let (offset, size) = self.locate(name)?;
        Ok(MemberReader {
            file: &self.file,
            pos: offset,
            end: offset + size,
        })
    }

    pub(super) fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>, CopyError> {
        read_capped(self.reader(name)?, limit, &name)
    }

    /// The digest of a member's bytes.
    pub(super) fn digest(&self, name: &str) -> Result<Digest, CopyError> {
        let mut h = Hasher::new();
        let mut r = self.reader(name)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = r
                .read(&mut buf)
                .map_err(|e| CopyError::io(format!("reading {name}"), e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finish())
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
