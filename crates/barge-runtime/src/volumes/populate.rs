//! A new container's volumes: made on first use, filled from the image
//! when new and empty, checked again before each start.

use super::{plain_dir, vio, MountKind, VolumeError};
use crate::container::{Container, Volume};
use crate::{Runtime, RuntimeError};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Copies what the image has at `dest` (its links resolved inside the
/// image, never out of it) into the empty volume directory `data`:
/// directories, files and links with their owners, modes, `user.*` xattrs
/// and file capabilities (hard links become copies; devices, sockets and
/// FIFOs are left out). The volume may be mounted in a running container
/// already, which could swap a directory for a link meanwhile: so nothing
/// below `data` is looked up by path. Every entry is made with an `*at`
/// call in the directory fd made just before it (`O_NOFOLLOW`, `O_EXCL`),
/// and owners, modes and xattrs are set through its own fd.
fn fill(data: &Path, lowers: &barge_store::lowers::Lowers, dest: &str) -> Result<(), VolumeError> {
    let rel = lowers.resolve(dest, true);
    let Some((_, top)) = lowers.find(&rel) else {
        return Ok(());
    };
    if !top.is_dir() {
        return Ok(());
    }
    let fail = |what: &str, path: &str| {
        let context = format!("{what} {}/{path}", data.display());
        move |e: rustix::io::Errno| VolumeError::Io {
            context,
            source: e.into(),
        }
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let root = rustix::fs::open(data, dir_flags, Mode::empty()).map_err(fail("opening", ""))?;
    // The volume takes the image directory's owner and mode, as docker's copy does.
    set_owner_mode(&root, &top).map_err(fail("setting the owner and mode of", ""))?;
    // The directories from `root` down to the current entry's parent
    // (`walk` lists parents first, depth first).
    let mut open: Vec<(String, OwnedFd)> = vec![(String::new(), root)];
    for (path, src, md) in lowers.walk(&rel) {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        while open.len() > 1 && open.last().is_some_and(|(p, _)| p != parent) {
            open.pop();
        }
        let Some((p, dir)) = open.last() else { break };
        if p != parent {
            // Not below a directory made here: cannot happen with `walk`'s order.
            continue;
        }
        let ft = md.file_type();
        if ft.is_dir() {
            rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)).map_err(fail("creating", &path))?;
            let fd = rustix::fs::openat(dir, name, dir_flags, Mode::empty()).map_err(fail("opening", &path))?;
            set_owner_mode(&fd, &md).map_err(fail("setting the owner and mode of", &path))?;
            copy_xattrs(&src, &fd).map_err(fail("setting the xattrs of", &path))?;
            open.push((path.clone(), fd));
        } else if ft.is_file() {
            let from = rustix::fs::open(&src, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| VolumeError::Io {
                    context: format!("reading {}", src.display()),
                    source: e.into(),
                })?;
            let to = rustix::fs::openat(
                dir,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(fail("creating", &path))?;
            let (mut from, mut to) = (std::fs::File::from(from), std::fs::File::from(to));
            std::io::copy(&mut from, &mut to).map_err(|e| VolumeError::Io {
                context: format!("copying {} to {}/{path}", src.display(), data.display()),
                source: e,
            })?;
            // Owner first: chown clears setuid bits and file capabilities.
            set_owner_mode(to.as_fd(), &md).map_err(fail("setting the owner and mode of", &path))?;
            copy_xattrs(&src, to.as_fd()).map_err(fail("setting the xattrs of", &path))?;
        } else if ft.is_symlink() {
            let target = rustix::fs::readlink(&src, Vec::new()).map_err(|e| VolumeError::Io {
                context: format!("reading {}", src.display()),
                source: e.into(),
            })?;
            rustix::fs::symlinkat(target.as_c_str(), dir, name).map_err(fail("creating", &path))?;
            rustix::fs::chownat(
                dir,
                name,
                Some(rustix::fs::Uid::from_raw(md.uid())),
                Some(rustix::fs::Gid::from_raw(md.gid())),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(fail("setting the owner of", &path))?;
        }
    }
    Ok(())
}

/// The owner, then the mode (permission bits, setuid, setgid, sticky) of `md`.
fn set_owner_mode(fd: impl AsFd, md: &std::fs::Metadata) -> Result<(), rustix::io::Errno> {
    let fd = fd.as_fd();
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(md.uid())),
        Some(rustix::fs::Gid::from_raw(md.gid())),
    )?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(md.mode() & 0o7777))
}

/// The extended attributes a copy keeps: `user.*` and
/// `security.capability` (file capabilities); overlayfs' own are never
/// read. A filesystem without xattrs takes none.
fn copy_xattrs(from: &Path, to: impl AsFd) -> Result<(), rustix::io::Errno> {
    for (name, value) in barge_store::lowers::xattrs(from)? {
        if !(name.starts_with("user.") || name == "security.capability") {
            continue;
        }
        match rustix::fs::fsetxattr(to.as_fd(), name.as_str(), &value, rustix::fs::XattrFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOTSUP) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether the directory at `path` is empty.
fn is_empty(path: &Path) -> Result<bool, VolumeError> {
    Ok(std::fs::read_dir(path)
        .map_err(vio(format!("reading {}", path.display())))?
        .next()
        .is_none())
}

impl Runtime {
    /// Makes the volumes a new container mounts that do not exist yet and
    /// fills each empty one from the image (unless `volume-nocopy`).
    /// Returns the names it made, for [`Runtime::forget_volumes`].
    pub(crate) fn make_volumes(&self, mounts: &[Volume], lower_dirs: &[PathBuf]) -> Result<Vec<String>, RuntimeError> {
        let volumes = self.volumes();
        let lowers = barge_store::lowers::Lowers::new(lower_dirs.to_vec());
        let mut made = Vec::new();
        let result = (|| {
            for m in mounts.iter().filter(|m| m.kind == MountKind::Volume) {
                let Some(name) = &m.name else { continue };
                let (_, new) = volumes.create(Some(name), "local", BTreeMap::new(), m.anonymous)?;
                if new {
                    made.push(name.clone());
                }
                let data = volumes.data_dir(name)?;
                if !m.no_copy && is_empty(&data)? {
                    fill(&data, &lowers, &m.destination)?;
                }
            }
            Ok::<(), VolumeError>(())
        })();
        match result {
            Ok(()) => Ok(made),
            Err(e) => {
                self.forget_volumes(&made);
                Err(e.into())
            }
        }
    }

    /// Removes volumes [`Runtime::make_volumes`] made for a container
    /// that was not created after all.
    pub(crate) fn forget_volumes(&self, names: &[String]) {
        let volumes = self.volumes();
        for n in names {
            let _ = volumes.delete(n);
        }
    }
}

/// Before a start: every volume the container mounts is still a plain
/// directory (never a link somewhere else on the host).
pub(crate) fn check_sources(c: &Container) -> Result<(), RuntimeError> {
    for m in c.meta.volumes.iter().filter(|m| m.kind == MountKind::Volume) {
        let Some(name) = &m.name else { continue };
        let vdir = m.source.parent().unwrap_or(Path::new("/"));
        for path in [vdir, m.source.as_path()] {
            if !plain_dir(path) {
                return Err(VolumeError::NotADirectory {
                    name: name.clone(),
                    path: path.to_path_buf(),
                }
                .into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_copies_the_image_tree_through_its_own_links_only() {
        let d = tempfile::tempdir().unwrap();
        let (upper, lower) = (d.path().join("upper"), d.path().join("lower"));
        for dir in ["d/a/y", "d/b"] {
            std::fs::create_dir_all(lower.join(dir)).unwrap();
        }
        std::fs::write(lower.join("d/a/x"), "x").unwrap();
        std::fs::write(lower.join("d/a/y/z"), "z").unwrap();
        std::fs::write(lower.join("d/c"), "c").unwrap();
        std::os::unix::fs::symlink("/etc", lower.join("d/l")).unwrap();
        std::fs::set_permissions(lower.join("d/c"), std::os::unix::fs::PermissionsExt::from_mode(0o751)).unwrap();
        // The upper layer points /data at ../../d: resolved inside the image.
        std::fs::create_dir_all(&upper).unwrap();
        std::os::unix::fs::symlink("../../d", upper.join("data")).unwrap();
        let lowers = barge_store::lowers::Lowers::new(vec![upper, lower]);
        let data = d.path().join("volume");
        std::fs::create_dir(&data).unwrap();
        fill(&data, &lowers, "/data").unwrap();
        let mut got: Vec<String> = Vec::new();
        let mut stack = vec![data.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let md = std::fs::symlink_metadata(e.path()).unwrap();
                got.push(e.path().strip_prefix(&data).unwrap().display().to_string());
                if md.is_dir() {
                    stack.push(e.path());
                }
            }
        }
        got.sort();
        assert_eq!(got, ["a", "a/x", "a/y", "a/y/z", "b", "c", "l"]);
        assert_eq!(std::fs::read_to_string(data.join("a/y/z")).unwrap(), "z");
        assert_eq!(std::fs::read_link(data.join("l")).unwrap(), Path::new("/etc"));
        assert_eq!(std::fs::metadata(data.join("c")).unwrap().mode() & 0o7777, 0o751);
        // Nothing at all where the image has no directory.
        let empty = d.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        fill(&empty, &lowers, "/d/c").unwrap();
        fill(&empty, &lowers, "/nowhere").unwrap();
        assert!(is_empty(&empty).unwrap());
    }
}
