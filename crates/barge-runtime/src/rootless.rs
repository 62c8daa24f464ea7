//! The root filesystem of a rootless container (barge in the user's
//! namespace, see `barge_runner::userns`): the kernel's overlayfs with
//! `userxattr` (Linux 5.11 and later allow it in a user namespace), else
//! `fuse-overlayfs` mounted on the bundle's `rootfs` before the child
//! starts, else an error naming the package. Whether its limit flags
//! can apply ([`check_limits`]): only in a delegated cgroup v2 subtree.
//!
//! Whether the kernel's overlayfs works is probed on a scratch overlay
//! once per boot and filesystem, and remembered in the user's runtime
//! directory ([`kernel_overlay`]): the probe's directories and mount cost
//! milliseconds that every start would otherwise pay.

use crate::{Container, RuntimeError};
use barge_runner::child::Plan;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `BARGE_OVERLAY=fuse-overlayfs` skips the kernel's overlayfs (to use or
/// test the fallback on a kernel that has it).
pub const OVERLAY_ENV: &str = "BARGE_OVERLAY";

/// Whether barge runs rootless: not as the host's root.
pub fn rootless() -> bool {
    !barge_store::fsutil::host_root()
}

/// Rootless: Ok when every limit flag of `limits` can be applied, that
/// is when barge is in a cgroup v2 subtree delegated to the user with the
/// controllers the flags need; else which flag cannot, and why.
pub fn check_limits(limits: &crate::limits::Limits) -> Result<(), RuntimeError> {
    let flags = limits.cgroup_flags();
    let Some((first, _)) = flags.first() else {
        return Ok(());
    };
    let delegation = barge_cgroups::Delegation::find().map_err(|why| RuntimeError::Rootless { flag: first, why })?;
    for (flag, controller) in flags {
        delegation
            .require(controller)
            .map_err(|why| RuntimeError::Rootless { flag, why })?;
    }
    Ok(())
}

/// Chooses and prepares the container's root for `plan`.
pub fn prepare_root(c: &Container, plan: &mut Plan) -> Result<(), RuntimeError> {
    let forced_fuse = std::env::var(OVERLAY_ENV).is_ok_and(|v| v == "fuse-overlayfs");
    let kernel = if forced_fuse {
        Err(format!("{OVERLAY_ENV}=fuse-overlayfs"))
    } else {
        kernel_overlay(&c.dir)
    };
    match kernel {
        Ok(()) => Ok(plan.rootless(false)?),
        Err(why) => {
            mount_fuse(c).map_err(|fuse| RuntimeError::NoOverlay { kernel: why, fuse })?;
            Ok(plan.rootless(true)?)
        }
    }
}

/// Unmounts what [`prepare_root`] mounted with fuse-overlayfs, if anything.
pub fn release_root(c: &Container) {
    let rootfs = c.dir.join("rootfs");
    if is_fuse_mount(&rootfs) {
        let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
    }
}

fn is_fuse_mount(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type == 0x6573_5546) // FUSE_SUPER_MAGIC
}

/// Whether the kernel's overlayfs with `userxattr` works for a container
/// in `dir`: known when a probe on this filesystem succeeded since the
/// host booted (the record in the runtime directory holds the boot ID, so
/// another kernel probes again), else probed now. A failure is not
/// recorded: the next start probes again, and falls back to fuse-overlayfs.
fn kernel_overlay(dir: &Path) -> Result<(), String> {
    let record = probe_record(dir);
    if let Some((path, boot)) = &record {
        if std::fs::read_to_string(path).is_ok_and(|s| s == *boot) {
            return Ok(());
        }
    }
    probe_kernel_overlay(dir)?;
    if let Some((path, boot)) = record {
        // Best effort: without the record the next start probes again.
        let _ = std::fs::write(path, boot);
    }
    Ok(())
}

/// Where a successful probe for `dir`'s filesystem is recorded, and what
/// the record holds (this boot's ID).
fn probe_record(dir: &Path) -> Option<(PathBuf, String)> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let run = barge_runner::userns::runtime_dir().ok()?;
    Some((run.join(format!("overlay-probed-{dev:x}")), boot.trim().to_string()))
}

/// Mounts a throw-away overlay with `userxattr` in the container's
/// directory: Ok when the kernel allows what the child will do. The
/// overlay is `volatile`: unmounting it then does not sync the upper
/// directory's filesystem, which takes tens of milliseconds on a busy disk.
fn probe_kernel_overlay(dir: &Path) -> Result<(), String> {
    let probe = dir.join(".overlay-probe");
    let _ = std::fs::remove_dir_all(&probe);
    let result = (|| {
        for d in ["l", "u", "w", "m"] {
            std::fs::create_dir_all(probe.join(d)).map_err(|e| format!("preparing a probe: {e}"))?;
        }
        let p = |d: &str| probe.join(d).display().to_string();
        let data = format!(
            "lowerdir={},upperdir={},workdir={},userxattr,volatile",
            p("l"),
            p("u"),
            p("w")
        );
        let data = std::ffi::CString::new(data).map_err(|_| "a NUL byte in the container's path".to_string())?;
        rustix::mount::mount(
            "overlay",
            probe.join("m"),
            "overlay",
            rustix::mount::MountFlags::NODEV,
            data.as_c_str(),
        )
        .map_err(|e| format!("overlayfs with userxattr: {e}"))?;
        let _ = rustix::mount::unmount(probe.join("m"), rustix::mount::UnmountFlags::DETACH);
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&probe);
    result
}

fn fuse_overlayfs() -> Option<PathBuf> {
    [
        "/usr/bin/fuse-overlayfs",
        "/bin/fuse-overlayfs",
        "/usr/local/bin/fuse-overlayfs",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// fuse-overlayfs on the bundle's `rootfs` (it daemonizes once mounted).
fn mount_fuse(c: &Container) -> Result<(), String> {
    let program = fuse_overlayfs().ok_or_else(|| "is not installed".to_string())?;
    // Named from the directory the lowers share (the store's `l/`), as the child does.
    let (base, lowers) = barge_runner::relative_lowers(&c.meta.lower_dirs);
    let options = barge_runner::overlay_options(&lowers, Some((&c.dir.join("upper"), &c.dir.join("work"))))
        .map_err(|e| e.to_string())?;
    let rootfs = c.dir.join("rootfs");
    release_root(c);
    let out = Command::new(&program)
        .current_dir(&base)
        .arg("-o")
        .arg(options)
        .arg(&rootfs)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}
