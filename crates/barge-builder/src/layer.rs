//! Writes layers as reproducible tar streams: one fixed mtime, numeric
//! owners without names, no access or change times, entries in the order
//! given (callers sort), gzip with a fixed header. The uncompressed stream
//! is hashed (the diff ID) and the compressed one written to a temporary
//! file beside the store and hashed (the blob digest), in one pass.

use barge_oci::digest::Hasher;
use barge_oci::Digest;
use flate2::write::GzEncoder;
use std::io::{self, Read, Write};
use std::path::Path;

/// Hashes what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Out {
    /// Only the diff ID is wanted (to look up the cache).
    Sink,
    Gzip(Box<GzEncoder<Hashing<tempfile::NamedTempFile>>>),
    /// A plain tar stream to a writer (`cp`, `export`).
    Plain(Box<dyn Write + Send>),
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Out::Sink => Ok(buf.len()),
            Out::Gzip(g) => g.write(buf),
            Out::Plain(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Out::Sink => Ok(()),
            Out::Gzip(g) => g.flush(),
            Out::Plain(w) => w.flush(),
        }
    }
}

/// What [`LayerWriter::finish`] produced.
pub struct Written {
    pub diff_id: Digest,
    /// The compressed blob, when one was written: file, digest, size.
    pub blob: Option<(tempfile::NamedTempFile, Digest, u64)>,
}

/// Kinds of special files.
#[derive(Debug, Clone, Copy)]
pub enum Special {
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// Ownership and permission bits of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u64,
    pub gid: u64,
    pub mode: u32,
}

pub struct LayerWriter {
    tar: tar::Builder<Hashing<Out>>,
    mtime: u64,
    /// Entries keep their files' mtimes ([`LayerWriter::keep_times`]).
    keep_times: bool,
}

/// A gzip stream with a fixed header into a temporary file in `dir`,
/// hashed as written.
fn gzip_file(dir: &Path) -> io::Result<GzEncoder<Hashing<tempfile::NamedTempFile>>> {
    std::fs::create_dir_all(dir)?;
    let file = tempfile::Builder::new().prefix("build-").tempfile_in(dir)?;
    Ok(flate2::GzBuilder::new().mtime(0).operating_system(255).write(
        Hashing {
            inner: file,
            hasher: Hasher::new(),
        },
        flate2::Compression::default(),
    ))
}

/// The temporary file, digest and size of a finished gzip stream.
fn finish_gzip(gz: GzEncoder<Hashing<tempfile::NamedTempFile>>) -> io::Result<(tempfile::NamedTempFile, Digest, u64)> {
    let mut h = gz.finish()?;
    h.inner.as_file_mut().sync_all()?;
    let size = h.hasher.len();
    Ok((h.inner, h.hasher.finish(), size))
}

/// An uncompressed tar stream (`import`) as a layer: compressed into a
/// temporary file in `dir`, hashed before (the diff ID) and after (the
/// blob digest), streamed.
pub fn compress_to_file(dir: &Path, mut tar: impl Read) -> io::Result<Written> {
    let mut out = Hashing {
        inner: gzip_file(dir)?,
        hasher: Hasher::new(),
    };
    io::copy(&mut tar, &mut out)?;
    let diff_id = out.hasher.finish();
    Ok(Written {
        diff_id,
        blob: Some(finish_gzip(out.inner)?),
    })
}

impl LayerWriter {
    /// A layer written, gzip-compressed, to a temporary file in `dir`.
    pub fn to_file(dir: &Path, mtime: u64) -> io::Result<LayerWriter> {
        Ok(LayerWriter::over(Out::Gzip(Box::new(gzip_file(dir)?)), mtime))
    }

    /// A plain tar stream to `out`, entries with their own times
    /// ([`LayerWriter::set_mtime`]).
    pub fn to_writer(out: Box<dyn Write + Send>) -> LayerWriter {
        LayerWriter::over(Out::Plain(out), 0)
    }

    /// Entries written by `write_entry` keep their files' mtimes (commit).
    pub fn keep_times(mut self) -> LayerWriter {
        self.keep_times = true;
        self
    }

    /// The mtime of the entries written next.
    pub fn set_mtime(&mut self, mtime: u64) {
        self.mtime = mtime;
    }

    /// The file's own mtime for the next entry, when times are kept.
    pub(crate) fn entry_time(&mut self, mtime: i64) {
        if self.keep_times {
            self.mtime = u64::try_from(mtime).unwrap_or(0);
        }
    }

    /// A layer only hashed, to learn its diff ID.
    pub fn hash_only(mtime: u64) -> LayerWriter {
        LayerWriter::over(Out::Sink, mtime)
    }

    fn over(out: Out, mtime: u64) -> LayerWriter {
        let mut tar = tar::Builder::new(Hashing {
            inner: out,
            hasher: Hasher::new(),
        });
        tar.mode(tar::HeaderMode::Deterministic);
        tar.follow_symlinks(false);
        LayerWriter {
            tar,
            mtime,
            keep_times: false,
        }
    }

    fn header(&self, kind: tar::EntryType, o: Owner, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(o.mode & 0o7777);
        h.set_uid(o.uid);
        h.set_gid(o.gid);
        h.set_mtime(self.mtime);
        h.set_size(size);
        h
    }

    pub fn dir(&mut self, path: &str, o: Owner) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Directory, o, 0);
        let p = format!("{}/", path.trim_end_matches('/'));
        self.tar.append_data(&mut h, p, io::empty())
    }

    /// A regular file of exactly `size` bytes from `data`.
    pub fn file(&mut self, path: &str, o: Owner, size: u64, data: impl Read) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Regular, o, size);
        let mut exact = ExactSize {
            inner: data,
            left: size,
        };
        self.tar.append_data(&mut h, path, &mut exact)?;
        if exact.left != 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path} changed size while being read"),
            ));
        }
        Ok(())
    }

    pub fn symlink(&mut self, path: &str, target: &str, o: Owner) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Symlink, Owner { mode: 0o777, ..o }, 0);
        self.tar.append_link(&mut h, path, target)
    }

    pub fn hardlink(&mut self, path: &str, target: &str, o: Owner) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Link, o, 0);
        self.tar.append_link(&mut h, path, target)
    }

    pub fn special(&mut self, path: &str, kind: Special, o: Owner) -> io::Result<()> {
        let (t, dev) = match kind {
            Special::Char(ma, mi) => (tar::EntryType::Char, Some((ma, mi))),
            Special::Block(ma, mi) => (tar::EntryType::Block, Some((ma, mi))),
            Special::Fifo => (tar::EntryType::Fifo, None),
        };
        let mut h = self.header(t, o, 0);
        if let Some((ma, mi)) = dev {
            h.set_device_major(ma)?;
            h.set_device_minor(mi)?;
        }
        self.tar.append_data(&mut h, path, io::empty())
    }

    /// Extended attributes for the entry written next, as a PAX header
    /// (`SCHILY.xattr.<name>`), sorted by name.
    pub fn xattrs(&mut self, attrs: &[(String, Vec<u8>)]) -> io::Result<()> {
        let mut records: Vec<(String, &[u8])> = attrs
            .iter()
            .map(|(name, value)| (format!("SCHILY.xattr.{name}"), value.as_slice()))
            .collect();
        records.sort();
        self.tar
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    /// An AUFS-style whiteout hiding `path` of the layers below.
    pub fn whiteout(&mut self, path: &str) -> io::Result<()> {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path),
        };
        let root = Owner {
            uid: 0,
            gid: 0,
            mode: 0,
        };
        self.file(&format!("{dir}.wh.{name}"), root, 0, io::empty())
    }

    /// Marks directory `dir` opaque: nothing below it in lower layers shows.
    pub fn opaque(&mut self, dir: &str) -> io::Result<()> {
        self.whiteout(&format!("{}/.wh..opq", dir.trim_end_matches('/')))
    }

    pub fn finish(self) -> io::Result<Written> {
        let hashing = self.tar.into_inner()?;
        let diff_id = hashing.hasher.finish();
        let blob = match hashing.inner {
            Out::Sink => None,
            Out::Gzip(gz) => Some(finish_gzip(*gz)?),
            Out::Plain(mut w) => {
                w.flush()?;
                None
            }
        };
        Ok(Written { diff_id, blob })
    }
}

/// Reads exactly `left` bytes, no more.
struct ExactSize<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being read",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(w: &mut LayerWriter) {
        let o = Owner {
            uid: 0,
            gid: 0,
            mode: 0o755,
        };
        w.dir("bin", o).unwrap();
        w.file("bin/tool", o, 5, &b"hello"[..]).unwrap();
        w.symlink("bin/link", "tool", o).unwrap();
        w.whiteout("etc/gone").unwrap();
        w.opaque("var").unwrap();
    }

    #[test]
    fn same_input_same_digests() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = LayerWriter::to_file(dir.path(), 0).unwrap();
        sample(&mut a);
        let a = a.finish().unwrap();
        let mut b = LayerWriter::to_file(dir.path(), 0).unwrap();
        sample(&mut b);
        let b = b.finish().unwrap();
        let mut c = LayerWriter::hash_only(0);
        sample(&mut c);
        let c = c.finish().unwrap();
        assert_eq!(a.diff_id, b.diff_id);
        assert_eq!(a.diff_id, c.diff_id);
        let (fa, da, sa) = a.blob.unwrap();
        let (_, db, _) = b.blob.unwrap();
        assert_eq!(da, db);
        assert_eq!(std::fs::metadata(fa.path()).unwrap().len(), sa);

        let mut names = Vec::new();
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(fa.path()).unwrap());
        for e in tar::Archive::new(gz).entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(e.header().mtime().unwrap(), 0);
            names.push(e.path().unwrap().display().to_string());
        }
        assert_eq!(
            names,
            ["bin/", "bin/tool", "bin/link", "etc/.wh.gone", "var/.wh..wh..opq"]
        );
    }

    #[test]
    fn xattrs_reach_the_entry_that_follows() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LayerWriter::to_file(dir.path(), 0).unwrap();
        let o = Owner {
            uid: 0,
            gid: 0,
            mode: 0o755,
        };
        w.xattrs(&[
            ("user.b".into(), b"2".to_vec()),
            ("security.capability".into(), vec![1, 0, 0, 2]),
        ])
        .unwrap();
        w.file("bin/ping", o, 2, &b"hi"[..]).unwrap();
        let (f, _, _) = w.finish().unwrap().blob.unwrap();
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(f.path()).unwrap());
        let mut ar = tar::Archive::new(gz);
        let mut e = ar.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("bin/ping"));
        let exts: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| {
                let x = x.unwrap();
                (x.key().unwrap().to_string(), x.value_bytes().to_vec())
            })
            .collect();
        assert_eq!(
            exts,
            [
                ("SCHILY.xattr.security.capability".to_string(), vec![1, 0, 0, 2]),
                ("SCHILY.xattr.user.b".to_string(), b"2".to_vec())
            ]
        );
    }

    #[test]
    fn short_files_are_refused() {
        let mut w = LayerWriter::hash_only(0);
        let o = Owner {
            uid: 0,
            gid: 0,
            mode: 0o644,
        };
        assert!(w.file("f", o, 10, &b"abc"[..]).is_err());
    }
}
