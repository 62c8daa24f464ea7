//! `cp` and `export`: tar streams out of a root directory and into one,
//! with docker's rules for what lands where.
//!
//! A root is an open directory: a container's ([`barge_runtime::rootfs`])
//! or the host's `/`. Every path is resolved inside its root with
//! `openat2(RESOLVE_IN_ROOT)`, so `..`, absolute symlinks and symlinks
//! on the way stay inside the container; below the resolved path every
//! entry is opened from its parent with no link followed. Archives are
//! written by the layer writer ([`crate::layer::LayerWriter`], plain tar,
//! files' own times) and extracted by the store's layer applier, which
//! resolves each entry inside the destination directory in the same way.

use crate::layer::{LayerWriter, Owner, Special};
use barge_store::apply::{apply_tar_at, ApplyError, ApplyOptions};
use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, StatxFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::io::{self, Read, Write};

#[derive(Debug, thiserror::Error)]
pub enum CpError {
    /// The path (inside its root) does not exist.
    #[error("no such file or directory: {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

fn io_fail(context: impl Into<String>) -> impl FnOnce(io::Error) -> CpError {
    let context = context.into();
    move |source| CpError::Io { context, source }
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// `path` (absolute inside the root) relative to it, for `openat2`.
fn relative(path: &str) -> String {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        ".".into()
    } else {
        rel.to_string()
    }
}

/// An `O_PATH` descriptor of `path` inside `root`, and what it is. The
/// last component is followed only with `follow` (or a trailing `/`).
pub fn resolve(root: BorrowedFd<'_>, path: &str, follow: bool) -> Result<(OwnedFd, Stat), CpError> {
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = match barge_store::fsutil::openat2(root, relative(path).as_str(), flags, Mode::empty(), RESOLVE) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Err(CpError::NotFound(path.to_string())),
        Err(Errno::NOTDIR) => return Err(CpError::Invalid(format!("{path}: not a directory"))),
        Err(e) => return Err(io_fail(format!("opening {path}"))(e.into())),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| io_fail(format!("reading {path}"))(e.into()))?;
    Ok((fd, st))
}

/// The directory `path` inside `root`, open for the applier.
fn open_dir(root: BorrowedFd<'_>, path: &str) -> Result<OwnedFd, CpError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match barge_store::fsutil::openat2(root, relative(path).as_str(), flags, Mode::empty(), RESOLVE) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) => Err(CpError::NotFound(path.to_string())),
        Err(Errno::NOTDIR) => Err(CpError::Invalid(format!("{path}: not a directory"))),
        Err(e) => Err(io_fail(format!("opening {path}"))(e.into())),
    }
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// The last component of a path (`/` and `/.` have none).
fn base_name(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// The parent directory of a path inside its root.
fn parent_of(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".into(),
        Some((p, _)) => p.to_string(),
    }
}

/// What to write: the tree at `path` in `root`, named `name` in the
/// archive (`.`: the directory's content, `""`: the content without an
/// entry for the directory itself, as `export` writes it).
pub struct Source<'a> {
    pub root: BorrowedFd<'a>,
    pub path: &'a str,
    /// Follow a symlink that `path` names (`cp -L`).
    pub follow: bool,
    /// Stay on the root's mount: a mount point is written, not what is
    /// mounted there (`export` of a running container: /proc, volumes).
    pub one_mount: bool,
}

/// Writes `src` as a tar stream to `out`, top entry named `name`.
pub fn write_archive(src: &Source<'_>, name: &str, out: Box<dyn Write + Send>) -> Result<(), CpError> {
    let (fd, st) = resolve(src.root, src.path, src.follow)?;
    let mut w = LayerWriter::to_writer(out);
    let mut walk = Walk {
        w: &mut w,
        links: HashMap::new(),
        mount: if src.one_mount { Some(mount_id(&fd)?) } else { None },
    };
    walk.entry(&fd, &st, name)?;
    w.finish().map_err(io_fail("writing the archive"))?;
    Ok(())
}

fn mount_id(fd: &OwnedFd) -> Result<u64, CpError> {
    rustix::fs::statx(
        fd,
        "",
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::MNT_ID,
    )
    .map(|x| x.stx_mnt_id)
    .map_err(|e| io_fail("reading a mount ID")(e.into()))
}

struct Walk<'w> {
    w: &'w mut LayerWriter,
    /// Files with several links: the first name each was written under.
    links: HashMap<(u64, u64), String>,
    /// The root's mount, when the walk stays on it.
    mount: Option<u64>,
}

impl Walk<'_> {
    fn entry(&mut self, fd: &OwnedFd, st: &Stat, name: &str) -> Result<(), CpError> {
        let o = Owner {
            uid: st.st_uid as u64,
            gid: st.st_gid as u64,
            mode: st.st_mode & 0o7777,
        };
        self.w.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        let fail = io_fail(format!("adding {name} to the archive"));
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                if !name.is_empty() {
                    self.w.dir(name, o).map_err(fail)?;
                }
                let other_mount = match self.mount {
                    Some(root) => mount_id(fd)? != root,
                    None => false,
                };
                if !other_mount {
                    self.children(fd, name)?;
                }
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        return self.w.hardlink(name, first, o).map_err(fail);
                    }
                    self.links.insert(key, name.to_string());
                }
                // Reopened through its own descriptor: the file found, no path again.
                let file = rustix::fs::open(
                    format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
                    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
                    Mode::empty(),
                )
                .map_err(|e| io_fail(format!("opening {name}"))(e.into()))?;
                self.w
                    .file(name, o, st.st_size as u64, std::fs::File::from(file))
                    .map_err(fail)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(fd, "", Vec::new())
                    .map_err(|e| io_fail(format!("reading the link {name}"))(e.into()))?;
                self.w.symlink(name, &target.to_string_lossy(), o).map_err(fail)?;
            }
            t @ (FileType::CharacterDevice | FileType::BlockDevice) => {
                let (ma, mi) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
                let kind = if t == FileType::CharacterDevice {
                    Special::Char(ma, mi)
                } else {
                    Special::Block(ma, mi)
                };
                self.w.special(name, kind, o).map_err(fail)?;
            }
            FileType::Fifo => self.w.special(name, Special::Fifo, o).map_err(fail)?,
            // Sockets and the unknown: nothing a tar stream holds.
            _ => {}
        }
        Ok(())
    }

    fn children(&mut self, fd: &OwnedFd, name: &str) -> Result<(), CpError> {
        let dir = rustix::fs::openat(
            fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_fail(format!("opening {name}"))(e.into()))?;
        let mut names: Vec<std::ffi::CString> = rustix::fs::Dir::read_from(&dir)
            .map_err(|e| io_fail(format!("listing {name}"))(e.into()))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect();
        names.sort();
        for n in names {
            let child = match rustix::fs::openat(
                &dir,
                n.as_c_str(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(c) => c,
                // Removed since the listing (a running container).
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(io_fail(format!("opening {name}/{n:?}"))(e.into())),
            };
            let st = rustix::fs::fstat(&child).map_err(|e| io_fail(format!("reading {name}/{n:?}"))(e.into()))?;
            let n = n.to_string_lossy();
            let path = if name.is_empty() {
                n.into_owned()
            } else {
                format!("{name}/{n}")
            };
            self.entry(&child, &st, &path)?;
        }
        Ok(())
    }
}

/// Extracts the tar stream `tar` into the directory `dir` of `root`.
pub fn extract(tar: impl Read, root: BorrowedFd<'_>, dir: &str, archive: bool) -> Result<(), CpError> {
    let fd = open_dir(root, dir)?;
    apply_tar_at(tar, fd, apply_options(archive))?;
    Ok(())
}

/// `cp`'s applier: names taken literally; owners kept with `-a`, else the
/// files are the copying user's (root's in a container, as docker's).
fn apply_options(archive: bool) -> ApplyOptions {
    let mut o = ApplyOptions::for_current_user();
    o.whiteouts = false;
    if !archive {
        o.owners = barge_store::apply::Owners::Keep;
    }
    o
}

/// One side of a copy: a root and a path inside it.
pub struct Side<'a> {
    pub root: BorrowedFd<'a>,
    pub path: &'a str,
}

/// `cp SRC DEST` between two roots, with docker's rules: a directory
/// copied to a missing path becomes it; into an existing directory it
/// goes under its own name, or only its content when SRC ends in `/.`;
/// a file replaces a file or goes into a directory; DEST ending in `/`
/// must be a directory.
pub fn copy(src: &Side<'_>, follow: bool, dest: &Side<'_>, archive: bool) -> Result<(), CpError> {
    let (_, st) = resolve(src.root, src.path, follow)?;
    let src_dir = is_dir(&st);
    let contents = src.path.ends_with("/.") || base_name(src.path).is_empty();
    if !src_dir && (src.path.ends_with('/') || src.path.ends_with("/.")) {
        return Err(CpError::Invalid(format!("{}: not a directory", src.path)));
    }
    let (into, name) = match resolve(dest.root, dest.path, true) {
        Ok((_, d)) if is_dir(&d) => {
            if src_dir && contents {
                (dest.path.to_string(), ".".to_string())
            } else {
                (dest.path.to_string(), base_name(src.path).to_string())
            }
        }
        Ok(_) if src_dir => {
            return Err(CpError::Invalid(format!(
                "cannot copy a directory to a file: {} is a file",
                dest.path
            )))
        }
        Ok(_) => (parent_of(dest.path), base_name(dest.path).to_string()),
        Err(CpError::NotFound(_)) if dest.path.ends_with('/') => {
            return Err(CpError::Invalid(format!(
                "destination directory {} does not exist",
                dest.path
            )))
        }
        Err(CpError::NotFound(_)) => {
            let parent = parent_of(dest.path);
            match resolve(dest.root, &parent, true) {
                Ok((_, p)) if is_dir(&p) => (parent, base_name(dest.path).to_string()),
                Ok(_) => return Err(CpError::Invalid(format!("{parent}: not a directory"))),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let dir = open_dir(dest.root, &into)?;
    let (reader, writer) = io::pipe().map_err(io_fail("making a pipe"))?;
    std::thread::scope(|s| {
        let source = Source {
            root: src.root,
            path: src.path,
            follow,
            one_mount: false,
        };
        let producer = s.spawn(move || write_archive(&source, &name, Box::new(writer)));
        let applied = apply_tar_at(reader, dir, apply_options(archive));
        let written = producer
            .join()
            .unwrap_or_else(|_| Err(CpError::Invalid("the archive writer failed".into())));
        // The reader's failure first: the writer then only saw a closed pipe.
        applied?;
        written
    })
}

/// `path` on the host as an absolute path (relative to the working
/// directory), for a [`Side`] whose root is the host's `/`.
pub fn host_path(path: &str) -> Result<String, CpError> {
    if path.starts_with('/') {
        return Ok(path.to_string());
    }
    let cwd = std::env::current_dir().map_err(io_fail("reading the working directory"))?;
    Ok(format!("{}/{path}", cwd.display()))
}

/// The host's `/`.
pub fn host_root() -> Result<OwnedFd, CpError> {
    rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io_fail("opening /")(e.into()))
}

/// Whether `path` in `root` is a directory (links followed inside the root).
pub fn is_directory(root: BorrowedFd<'_>, path: &str) -> Result<bool, CpError> {
    Ok(is_dir(&resolve(root, path, true)?.1))
}

/// The name `cp CONTAINER:SRC -` gives the top of its archive: SRC's own
/// name, or `.` for a directory's content (`/`, a path ending in `/.`).
pub fn archive_name(path: &str) -> String {
    match base_name(path) {
        "" => ".".into(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fd::AsFd;
    use std::path::Path;

    /// A root directory with a tree, an absolute link to /etc and a
    /// climbing one, opened as a container's root would be.
    fn root() -> (tempfile::TempDir, OwnedFd) {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("src/sub")).unwrap();
        std::fs::write(r.join("src/a"), "a").unwrap();
        std::fs::write(r.join("src/sub/b"), "b").unwrap();
        std::fs::write(r.join("file"), "f").unwrap();
        std::os::unix::fs::symlink("/etc", r.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../../etc", r.join("up")).unwrap();
        let fd = rustix::fs::open(r, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        (d, fd)
    }

    fn cp(fd: &OwnedFd, src: &str, dest: &str) -> Result<(), CpError> {
        let s = Side {
            root: fd.as_fd(),
            path: src,
        };
        let d = Side {
            root: fd.as_fd(),
            path: dest,
        };
        copy(&s, false, &d, false)
    }

    fn read(r: &Path, p: &str) -> String {
        std::fs::read_to_string(r.join(p)).unwrap()
    }

    #[test]
    fn docker_rules_for_destinations() {
        let (d, fd) = root();
        let r = d.path();
        cp(&fd, "/src", "/new").unwrap();
        assert_eq!(read(r, "new/sub/b"), "b", "a directory to a missing path becomes it");
        cp(&fd, "/src", "/new").unwrap();
        assert_eq!(read(r, "new/src/a"), "a", "into an existing one, under its name");
        std::fs::create_dir(r.join("content")).unwrap();
        cp(&fd, "/src/.", "/content").unwrap();
        assert_eq!(read(r, "content/a"), "a", "/. copies the content");
        cp(&fd, "/file", "/content").unwrap();
        cp(&fd, "/file", "/content/renamed").unwrap();
        assert_eq!(read(r, "content/file") + &read(r, "content/renamed"), "ff");
        assert!(matches!(cp(&fd, "/src", "/file"), Err(CpError::Invalid(_))));
        assert!(matches!(cp(&fd, "/file", "/nodir/"), Err(CpError::Invalid(_))));
        assert!(matches!(cp(&fd, "/file/", "/x"), Err(CpError::Invalid(_))));
        assert!(matches!(cp(&fd, "/nope", "/x"), Err(CpError::NotFound(p)) if p == "/nope"));
        assert!(matches!(cp(&fd, "/file", "/no/such/x"), Err(CpError::NotFound(_))));
    }

    #[test]
    fn links_resolve_inside_the_root() {
        let (d, fd) = root();
        let r = d.path();
        for dest in ["/escape/w", "/up/w2", "/../../etc/w3"] {
            cp(&fd, "/file", dest).unwrap();
        }
        for w in ["w", "w2", "w3"] {
            assert_eq!(read(r, &format!("etc/{w}")), "f", "inside the root's /etc");
        }
        // The host's /etc has a passwd; the root's has none.
        assert!(Path::new("/etc/passwd").exists());
        assert!(matches!(
            resolve(fd.as_fd(), "/escape/passwd", true),
            Err(CpError::NotFound(_))
        ));
        assert!(matches!(
            resolve(fd.as_fd(), "/up/passwd", true),
            Err(CpError::NotFound(_))
        ));
    }

    #[test]
    fn archives_name_their_top_and_keep_links() {
        let (_d, fd) = root();
        let (w, r) = io::pipe().unwrap();
        let src = Source {
            root: fd.as_fd(),
            path: "/",
            follow: false,
            one_mount: false,
        };
        let reader = std::thread::spawn(move || {
            let mut names = Vec::new();
            for e in tar::Archive::new(w).entries().unwrap() {
                let e = e.unwrap();
                names.push(e.path().unwrap().display().to_string());
            }
            names
        });
        write_archive(&src, "", Box::new(r)).unwrap();
        let names = reader.join().unwrap();
        assert_eq!(
            names,
            ["escape", "etc/", "file", "src/", "src/a", "src/sub/", "src/sub/b", "up"]
        );
        assert_eq!(archive_name("/a/b/"), "b");
        assert_eq!(archive_name("/a/."), ".");
        assert_eq!(archive_name("/"), ".");
    }
}
