//! Programs that processes inside a container may reach through
//! `/proc/PID/exe`: never writable (CVE-2019-5736).
//!
//! Every process barge puts into a container — the clone child that sets
//! the container up, `exec`'s children — is barge itself until it
//! `execve`s. A container that replaces the command
//! with `#!/proc/self/exe` makes the kernel run *that* binary inside, where
//! `/proc/PID/exe` reopened for writing would be the host's barge. So the
//! commands that start container processes first re-execute barge from a
//! copy nothing can write, as runc does with its cloned binary:
//!
//! - as root: a detached, read-only bind mount of the binary
//!   (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_RDONLY)`):
//!   no copy, writes fail with `EROFS`;
//! - else: a sealed memfd copy (`F_SEAL_WRITE|GROW|SHRINK|SEAL`).
//!
//! A binary already on a read-only mount, or already sealed, runs as is.
//! `--init`'s PID 1 is not barge: a small static program built with it,
//! executed from a sealed memfd ([`init_program`]).

use crate::sys::{execveat, mount_setattr, MOUNT_ATTR_RDONLY};
use crate::{io_err, RunnerError};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// Whether the running binary can be written through `/proc/self/exe`.
fn writable_exe() -> bool {
    let Ok(exe) = rustix::fs::open("/proc/self/exe", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) else {
        return true;
    };
    if rustix::fs::fstatvfs(&exe).is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY)) {
        return false;
    }
    // Files that cannot be sealed answer EINVAL.
    !rustix::fs::fcntl_get_seals(&exe).is_ok_and(|s| s.contains(rustix::fs::SealFlags::WRITE))
}

/// A read-only, detached bind mount of the binary at `path` (the running
/// one: `/proc/self/exe`, or its path in another mount namespace).
pub(crate) fn read_only_mount(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let fd = rustix::mount::open_tree(
        rustix::fs::CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    mount_setattr(&fd, MOUNT_ATTR_RDONLY, false)?;
    Ok(fd)
}

/// A sealed memfd named `name` holding what `content` reads.
fn sealed_copy(name: &str, mut content: impl std::io::Read) -> std::io::Result<OwnedFd> {
    let mem = rustix::fs::memfd_create(
        name,
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )?;
    let mut copy = std::fs::File::from(mem);
    std::io::copy(&mut content, &mut copy)?;
    let mem = OwnedFd::from(copy);
    rustix::fs::fcntl_add_seals(
        &mem,
        rustix::fs::SealFlags::SEAL
            | rustix::fs::SealFlags::SHRINK
            | rustix::fs::SealFlags::GROW
            | rustix::fs::SealFlags::WRITE,
    )?;
    Ok(mem)
}

fn cstrings(items: impl Iterator<Item = Vec<u8>>) -> Result<Vec<CString>, RunnerError> {
    items
        .map(|b| CString::new(b).map_err(|_| RunnerError::Corrupt("an argument contains a NUL byte".into())))
        .collect()
}

/// Re-executes barge (same arguments and environment) from a copy that no
/// container process can write, unless the binary already is one. Call it
/// first thing in commands that start container processes, while nothing
/// else has happened. Returns only when nothing needed doing; fails (and
/// the command with it) when no safe copy can be made.
pub fn ensure() -> Result<(), RunnerError> {
    if !writable_exe() {
        return Ok(());
    }
    let exe = match read_only_mount(std::path::Path::new("/proc/self/exe")) {
        Ok(fd) => fd,
        Err(_) => std::fs::File::open("/proc/self/exe")
            .and_then(|exe| sealed_copy("barge", exe))
            .map_err(io_err("making a sealed copy of the barge binary"))?,
    };
    let argv = cstrings(std::env::args_os().map(|a| a.as_bytes().to_vec()))?;
    let envp = cstrings(std::env::vars_os().map(|(k, v)| {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        kv
    }))?;
    Err(io_err("re-executing barge from its sealed copy")(execveat(
        &exe, &argv, &envp,
    )))
}

/// `--init`'s PID 1 (`init/init.c`), built static with barge so that it
/// runs in any image.
const INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/barge-init"));

/// The init program in a sealed memfd, to execute inside the container.
pub fn init_program() -> Result<OwnedFd, RunnerError> {
    sealed_copy("barge-init", INIT).map_err(io_err("preparing the container's init"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fd::AsRawFd;

    #[test]
    fn a_sealed_copy_cannot_be_written_or_resized() {
        let fd = sealed_copy("test", &b"\x7fELF and the rest"[..]).unwrap();
        let seals = rustix::fs::fcntl_get_seals(&fd).unwrap();
        use rustix::fs::SealFlags;
        for seal in [SealFlags::WRITE, SealFlags::GROW, SealFlags::SHRINK, SealFlags::SEAL] {
            assert!(seals.contains(seal), "seal {seal:?} missing");
        }
        // Reopened for writing through /proc, as a container would try.
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let mut w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let err = std::io::Write::write_all(&mut w, b"pwned").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        assert!(w.set_len(0).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"\x7fELF and the rest");
    }

    #[test]
    fn the_init_program_is_sealed_and_static() {
        let fd = init_program().unwrap();
        let bytes = std::fs::read(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(&bytes[..4], b"\x7fELF");
        // A static program has no PT_INTERP (3): it runs in images without a loader.
        let u = |at: usize, n: usize| bytes[at..at + n].iter().rev().fold(0usize, |v, b| v << 8 | *b as usize);
        let (phoff, phentsize, phnum) = (u(0x20, 8), u(0x36, 2), u(0x38, 2));
        let types: Vec<usize> = (0..phnum).map(|i| u(phoff + i * phentsize, 4)).collect();
        assert!(!types.is_empty() && !types.contains(&3), "program headers {types:?}");
    }
}
