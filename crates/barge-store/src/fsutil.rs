//! Durable file writes, advisory locks, and `openat2` as the kernel asks
//! it to be called.

use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// A unique name for a temporary file in this process.
pub fn temp_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        ".{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// fsync a directory so that renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` atomically: temp file in the same directory,
/// fsync, rename, fsync of the directory. Readers see the old or the new
/// content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent directory"))?;
    let tmp = dir.join(temp_name("tmp"));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether this process is in the host's (initial) user namespace, where
/// uid 0 has its capabilities over the host's files, devices and links.
/// Read once: a process's user namespace does not change under barge
/// (`barge_runner::userns::in_initial_user_namespace` is the runner's
/// copy; the runner depends on no barge crate).
pub fn in_initial_user_namespace() -> bool {
    static INITIAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INITIAL.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
            .unwrap_or(true)
    })
}

/// Whether barge runs as the host's root: uid 0 in the initial user
/// namespace. Root of a user namespace (rootless barge inside its pause
/// namespace) is not: it owns no host path, device or link, and its store,
/// config and containers are the user's.
pub fn host_root() -> bool {
    rustix::process::geteuid().is_root() && in_initial_user_namespace()
}

/// An advisory lock held until dropped (flock on an open file).
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Shared,
    Exclusive,
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// Takes a lock on `path` (created if missing), waiting for it.
pub fn lock(path: &Path, kind: LockKind) -> io::Result<LockGuard> {
    let file = open_lock_file(path)?;
    let op = match kind {
        LockKind::Shared => FlockOperation::LockShared,
        LockKind::Exclusive => FlockOperation::LockExclusive,
    };
    loop {
        match flock(&file, op) {
            Ok(()) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(LockGuard { _file: file })
}

/// Tries to take a lock without waiting: `None` when someone else holds it.
pub fn try_lock(path: &Path, kind: LockKind) -> io::Result<Option<LockGuard>> {
    let file = open_lock_file(path)?;
    let op = match kind {
        LockKind::Shared => FlockOperation::NonBlockingLockShared,
        LockKind::Exclusive => FlockOperation::NonBlockingLockExclusive,
    };
    match flock(&file, op) {
        Ok(()) => Ok(Some(LockGuard { _file: file })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Total size of the regular files under `path` (hard links counted once), without following symlinks.
pub fn du(path: &Path) -> u64 {
    use std::collections::HashSet;
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if md.is_file() && (md.nlink() == 1 || seen.insert((md.dev(), md.ino()))) {
            total += md.len();
        }
    }
    total
}

/// Removes a directory tree, first making directories writable if a
/// read-only one stops an unprivileged removal. Never follows symlinks.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            use std::os::unix::fs::PermissionsExt;
            let mut stack = vec![path.to_path_buf()];
            while let Some(p) = stack.pop() {
                let Ok(md) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                if md.is_dir() {
                    let _ =
                        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(md.permissions().mode() | 0o700));
                    if let Ok(rd) = std::fs::read_dir(&p) {
                        stack.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
                    }
                }
            }
            std::fs::remove_dir_all(path)
        }
        other => other,
    }
}

/// Reads from `reader` until `buf` is full or the stream ends, so that
/// callers write in whole buffers (a network read returns a few KiB);
/// returns how many bytes were read (0 at the end of the stream).
pub fn read_full(reader: &mut dyn std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Starts writing a file's dirty pages to disk without waiting, so that a
/// later `fsync`/`syncfs` finds most of the work done. Best effort.
///
/// `POSIX_FADV_DONTNEED` starts asynchronous writeback of the dirty pages
/// (as `sync_file_range(SYNC_FILE_RANGE_WRITE)` does) and lets the kernel
/// drop the pages already written: a blob or a big unpacked file is not
/// read back soon after it is written (pulls tee the network stream into
/// the unpacker), so a gigabyte layer no longer pushes everything else out
/// of the page cache.
pub fn start_writeback(file: &File) {
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
}

/// `openat2`, asked again while the kernel answers `EAGAIN`: with
/// `RESOLVE_IN_ROOT` or `RESOLVE_BENEATH` it does so when a mount or a
/// rename anywhere on the host raced a `..` of the walk, and openat2(2)
/// says to retry. Every resolution inside a root goes through here
/// (barge-runner, which depends on no barge crate, has the same loop for
/// the container's mount points: `child::openat2_retrying`).
pub fn openat2(
    dir: impl std::os::fd::AsFd,
    path: impl AsRef<Path>,
    flags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
    resolve: rustix::fs::ResolveFlags,
) -> rustix::io::Result<std::os::fd::OwnedFd> {
    let (dir, path) = (dir.as_fd(), path.as_ref());
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir, path, flags, mode, resolve) {
            Err(rustix::io::Errno::AGAIN) if tries < 100 => tries += 1,
            other => return other,
        }
    }
}
