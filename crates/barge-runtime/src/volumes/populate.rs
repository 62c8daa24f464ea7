//! A new container's volumes: made on first use, filled from the image
//! when new and empty, checked again before each start.

use super::{plain_dir, vio, MountKind, VolumeError};
use crate::container::{Container, Volume};
use crate::{Runtime, RuntimeError};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Copies what the image has at `dest` (its links resolved inside the
/// image, never out of it) into the empty volume directory `data`:
/// directories, files and links with their owners and modes (hard links
/// become copies; devices, sockets and FIFOs are left out). Nothing below
/// `data` is followed: every entry is made new (`O_EXCL`, `lchown`).
fn fill(data: &Path, lowers: &barge_store::lowers::Lowers, dest: &str) -> Result<(), VolumeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let rel = lowers.resolve(dest, true);
    let Some((top, md)) = lowers.find(&rel) else {
        return Ok(());
    };
    if !md.is_dir() {
        return Ok(());
    }
    let _ = top;
    let own = |path: &Path, md: &std::fs::Metadata| {
        std::os::unix::fs::lchown(path, Some(md.uid()), Some(md.gid()))
            .map_err(vio(format!("chown {}", path.display())))
    };
    // The volume takes the image directory's owner and mode, as docker's copy does.
    own(data, &md)?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(md.mode() & 0o7777))
        .map_err(vio(format!("chmod {}", data.display())))?;
    for (path, src, md) in lowers.walk(&rel) {
        let to = data.join(&path);
        let ft = md.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&to).map_err(vio(format!("creating {}", to.display())))?;
            own(&to, &md)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(vio(format!("chmod {}", to.display())))?;
            copy_xattrs(&src, &to)?;
        } else if ft.is_file() {
            let mut from = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc_o_nofollow())
                .open(&src)
                .map_err(vio(format!("reading {}", src.display())))?;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&to)
                .map_err(vio(format!("creating {}", to.display())))?;
            std::io::copy(&mut from, &mut out).map_err(vio(format!("copying {}", src.display())))?;
            own(&to, &md)?;
            // After chown, which clears setuid bits and file capabilities.
            out.set_permissions(std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(vio(format!("chmod {}", to.display())))?;
            copy_xattrs(&src, &to)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&src).map_err(vio(format!("reading {}", src.display())))?;
            std::os::unix::fs::symlink(&target, &to).map_err(vio(format!("creating {}", to.display())))?;
            own(&to, &md)?;
        }
    }
    Ok(())
}

/// The extended attributes a copy keeps: `user.*` and
/// `security.capability` (file capabilities); overlayfs' own are never
/// read. A filesystem without xattrs takes none.
fn copy_xattrs(from: &Path, to: &Path) -> Result<(), VolumeError> {
    let attrs = barge_store::lowers::xattrs(from)
        .map_err(|e| vio(format!("reading the extended attributes of {}", from.display()))(e.into()))?;
    for (name, value) in attrs {
        if !(name.starts_with("user.") || name == "security.capability") {
            continue;
        }
        match rustix::fs::lsetxattr(to, name.as_str(), &value, rustix::fs::XattrFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOTSUP) => {}
            Err(e) => return Err(vio(format!("setting {name} on {}", to.display()))(e.into())),
        }
    }
    Ok(())
}

/// `O_NOFOLLOW`, as std's `custom_flags` takes it.
fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
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
