//! The mount system calls of the container's root, behind [`Mounts`], so
//! that the mount plan (`child::mount_root`: the overlay, kernel
//! filesystems, `/dev`, binds, masks, read-only paths, `pivot_root`) runs
//! against a recording fake in unit tests, without root. Everything else
//! the plan does (walking the image's directories, refusing links,
//! creating mount points) is ordinary file system work that runs for real
//! in both.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::mount::MountFlags;
use std::ffi::CStr;
use std::path::Path;

/// The mount calls of the container's setup. Targets are descriptors
/// (`/proc/self/fd/N` where a path is needed), found without following
/// the image's links before the call.
pub trait Mounts {
    /// mount(2) of a filesystem `fstype` from `source` on `target`.
    fn mount(
        &mut self,
        source: &CStr,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &CStr,
    ) -> std::io::Result<()>;
    /// A read-only (nosuid, noexec) bind mount of the host's device node
    /// `source` on `target`: the device reads and writes as ever, but the
    /// host's node cannot be chmod-ed or chown-ed from the container.
    fn bind(&mut self, source: &str, target: &Path) -> std::io::Result<()>;
    /// A copy of the tree at `from_dir`/`from` (`from` empty: `from_dir`
    /// itself), submounts too with `recursive`, with mount attributes
    /// `attrs` set on every mount of it, attached on `target`.
    fn attach_copy(
        &mut self,
        from_dir: BorrowedFd<'_>,
        from: &CStr,
        recursive: bool,
        attrs: u64,
        target: &OwnedFd,
    ) -> std::io::Result<()>;
    /// Mount attributes `attrs` set on the mount `fd` names.
    fn set_attr(&mut self, fd: &OwnedFd, attrs: u64, recursive: bool) -> std::io::Result<()>;
    /// Makes `rootfs` the root (`pivot_root(".", ".")` from it, then the
    /// old root detached) and enters it.
    fn pivot(&mut self, rootfs: &Path) -> std::io::Result<()>;
    /// Detaches the mount on `target` (`umount2(MNT_DETACH)`).
    fn unmount(&mut self, target: &Path) -> std::io::Result<()>;
}

/// The kernel's mounts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel;

impl Mounts for Kernel {
    fn mount(
        &mut self,
        source: &CStr,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &CStr,
    ) -> std::io::Result<()> {
        Ok(rustix::mount::mount(source, target, fstype, flags, data)?)
    }

    fn bind(&mut self, source: &str, target: &Path) -> std::io::Result<()> {
        use rustix::mount::{MoveMountFlags, OpenTreeFlags};
        let tree = rustix::mount::open_tree(
            rustix::fs::CWD,
            source,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )?;
        // Set before the mount is attached: never writable in the container.
        super::mount_setattr(
            &tree,
            super::MOUNT_ATTR_RDONLY | super::MOUNT_ATTR_NOSUID | super::MOUNT_ATTR_NOEXEC,
            false,
        )?;
        // `target` is a /proc/self/fd magic link to the node's empty file.
        rustix::mount::move_mount(
            &tree,
            c"",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_SYMLINKS,
        )?;
        Ok(())
    }

    /// `open_tree` + `mount_setattr(AT_RECURSIVE)` + `move_mount`: no
    /// submount escapes `attrs`, and nothing is looked up again by path.
    fn attach_copy(
        &mut self,
        from_dir: BorrowedFd<'_>,
        from: &CStr,
        recursive: bool,
        attrs: u64,
        target: &OwnedFd,
    ) -> std::io::Result<()> {
        use rustix::mount::{MoveMountFlags, OpenTreeFlags};
        let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
        if recursive {
            flags |= OpenTreeFlags::AT_RECURSIVE;
        }
        if from.is_empty() {
            flags |= OpenTreeFlags::AT_EMPTY_PATH;
        }
        let tree = rustix::mount::open_tree(from_dir, from, flags)?;
        super::mount_setattr(&tree, attrs, true)?;
        rustix::mount::move_mount(
            &tree,
            c"",
            target,
            c"",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )?;
        Ok(())
    }

    fn set_attr(&mut self, fd: &OwnedFd, attrs: u64, recursive: bool) -> std::io::Result<()> {
        super::mount_setattr(fd.as_fd(), attrs, recursive)
    }

    fn pivot(&mut self, rootfs: &Path) -> std::io::Result<()> {
        rustix::process::chdir(rootfs)?;
        rustix::process::pivot_root(".", ".")?;
        rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)?;
        rustix::process::chdir("/")?;
        Ok(())
    }

    fn unmount(&mut self, target: &Path) -> std::io::Result<()> {
        Ok(rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH)?)
    }
}

/// A mount call as [`Recorder`] saw it; paths inside the root as the
/// container will see them (`/proc`), others as given.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Mount {
        fstype: String,
        target: String,
        flags: MountFlags,
    },
    Bind {
        source: String,
        target: String,
    },
    AttachCopy {
        source: String,
        target: String,
        recursive: bool,
        attrs: u64,
    },
    SetAttr {
        target: String,
        attrs: u64,
        recursive: bool,
    },
    Pivot,
    Unmount {
        target: String,
    },
}

/// A fake that records the calls and mounts nothing: the plan then sees
/// the image's own directories where kernel filesystems would be.
#[cfg(test)]
#[derive(Debug)]
pub struct Recorder {
    /// The root as the kernel names it: paths below are shown from `/`.
    pub root: std::path::PathBuf,
    pub ops: Vec<Op>,
}

#[cfg(test)]
impl Recorder {
    pub fn new(root: &Path) -> Recorder {
        Recorder {
            root: std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()),
            ops: Vec::new(),
        }
    }

    /// `path` (or the file a `/proc/self/fd/N` names) inside the root, as `/…`.
    fn show(&self, path: &Path) -> String {
        let real = if path.starts_with("/proc/self/fd") {
            std::fs::read_link(path).unwrap_or_else(|_| path.to_path_buf())
        } else {
            path.to_path_buf()
        };
        match real.strip_prefix(&self.root) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => real.display().to_string(),
        }
    }

    fn show_fd(&self, fd: BorrowedFd<'_>) -> String {
        use rustix::fd::AsRawFd;
        self.show(Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())))
    }
}

#[cfg(test)]
impl Mounts for Recorder {
    fn mount(&mut self, _: &CStr, target: &Path, fstype: &str, flags: MountFlags, _: &CStr) -> std::io::Result<()> {
        let target = self.show(target);
        self.ops.push(Op::Mount {
            fstype: fstype.into(),
            target,
            flags,
        });
        Ok(())
    }

    fn bind(&mut self, source: &str, target: &Path) -> std::io::Result<()> {
        let target = self.show(target);
        self.ops.push(Op::Bind {
            source: source.into(),
            target,
        });
        Ok(())
    }

    fn attach_copy(
        &mut self,
        from_dir: BorrowedFd<'_>,
        from: &CStr,
        recursive: bool,
        attrs: u64,
        target: &OwnedFd,
    ) -> std::io::Result<()> {
        let source = if from.is_empty() {
            self.show_fd(from_dir)
        } else {
            from.to_string_lossy().into_owned()
        };
        let target = self.show_fd(target.as_fd());
        self.ops.push(Op::AttachCopy {
            source,
            target,
            recursive,
            attrs,
        });
        Ok(())
    }

    fn set_attr(&mut self, fd: &OwnedFd, attrs: u64, recursive: bool) -> std::io::Result<()> {
        let target = self.show_fd(fd.as_fd());
        self.ops.push(Op::SetAttr {
            target,
            attrs,
            recursive,
        });
        Ok(())
    }

    fn pivot(&mut self, _: &Path) -> std::io::Result<()> {
        self.ops.push(Op::Pivot);
        Ok(())
    }

    fn unmount(&mut self, target: &Path) -> std::io::Result<()> {
        let target = self.show(target);
        self.ops.push(Op::Unmount { target });
        Ok(())
    }
}
