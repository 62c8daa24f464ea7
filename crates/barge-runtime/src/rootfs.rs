//! A container's merged filesystem, opened from the host for `cp` and
//! `export`: the directory every path of theirs is resolved inside.
//!
//! A running container's root is its process's (`/proc/PID/root`, the
//! process checked to be the container's after the open, so a recycled
//! PID is not taken for it): its volumes and bind mounts are seen as the
//! container sees them. A stopped one's is its overlay (lower layers,
//! upper and work directories) made with the new mount API and never
//! attached anywhere: the mount exists only as the descriptor, gone when
//! it is closed, so nothing stays mounted on the host if barge is killed.
//! Its volumes are not mounted: a path below one is the mount point's
//! directory in the upper layer.

use crate::container::{Container, Status};
use crate::RuntimeError;
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags, MountAttrFlags,
};

/// A container's root directory, open.
pub struct RootFs {
    pub fd: OwnedFd,
    /// The root is the running container's, not a mount of its layers.
    pub running: bool,
}

impl Container {
    /// The container's merged filesystem (see the module's doc).
    pub fn open_root(&self) -> Result<RootFs, RuntimeError> {
        let st = self.state()?;
        if st.status == Status::Running {
            if let (Some(pid), Some(start)) = (st.pid, st.pid_start) {
                let path = format!("/proc/{pid}/root");
                let fd = rustix::fs::open(
                    path.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                );
                // Opened before the check: a PID recycled after it is not this root.
                if let Ok(fd) = fd {
                    if crate::container::process_start_time(pid) == Some(start) {
                        return Ok(RootFs { fd, running: true });
                    }
                }
            }
            // It stopped meanwhile: its layers are free to mount.
        }
        self.mount_layers()
    }

    fn mount_layers(&self) -> Result<RootFs, RuntimeError> {
        let fail = |what: &str, e: rustix::io::Errno| {
            let hint = if e == rustix::io::Errno::PERM {
                " (mounting a stopped container's layers needs root; start it, or use root's barge)"
            } else if e == rustix::io::Errno::BUSY {
                " (the container is starting or another command has its layers mounted; try again)"
            } else {
                ""
            };
            RuntimeError::Overlay(format!(
                "mounting the filesystem of container {}: {what}: {e}{hint}",
                self.meta.name
            ))
        };
        crate::runner::clear_volatile_mark(self);
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| fail("fsopen", e))?;
        for dir in &self.meta.lower_dirs {
            fsconfig_set_string(&fs, "lowerdir+", dir.as_path()).map_err(|e| fail("lowerdir", e))?;
        }
        fsconfig_set_string(&fs, "upperdir", self.dir.join("upper").as_path()).map_err(|e| fail("upperdir", e))?;
        fsconfig_set_string(&fs, "workdir", self.dir.join("work").as_path()).map_err(|e| fail("workdir", e))?;
        if !barge_store::fsutil::in_initial_user_namespace() {
            // Rootless: overlay metadata in user.overlay.* xattrs, as the container's own mount.
            fsconfig_set_flag(&fs, "userxattr").map_err(|e| fail("userxattr", e))?;
        }
        fsconfig_create(&fs).map_err(|e| fail("creating the overlay", e))?;
        let mnt = fsmount(
            &fs,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID,
        )
        .map_err(|e| fail("fsmount", e))?;
        Ok(RootFs {
            fd: mnt,
            running: false,
        })
    }
}
