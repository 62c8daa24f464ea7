//! Applies one layer tarball into an empty directory in overlayfs form.
//!
//! Written for hostile input. Every path is resolved with `openat2` and
//! `RESOLVE_IN_ROOT`, so `..`, absolute names and symlinks (including ones
//! the same layer just created) can never lead outside the snapshot; the
//! final component of every entry is created with `*at` calls that do not
//! follow symlinks. Whiteouts (`.wh.name`) become 0/0 character devices and
//! opaque markers (`.wh..wh..opq`) the `overlay.opaque` xattr, as overlayfs
//! expects. Modes, ownership, xattrs, times, hard links, symlinks, devices
//! and fifos are kept.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{
    chownat, fchmod, fchown, fsetxattr, futimens, linkat, lsetxattr, makedev, mkdirat, mknodat, openat, statat,
    symlinkat, unlinkat, utimensat, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid,
    XattrFlags,
};
use rustix::io::Errno;
use tar::EntryType;

/// What the applier may do.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Running as the host's root: create devices, use `trusted.` xattrs.
    /// Unprivileged, device nodes are skipped and opaque directories are
    /// marked with `user.overlay.opaque`.
    pub privileged: bool,
    /// What becomes of the owners the layer names.
    pub owners: Owners,
    /// `.wh.` names are overlay whiteouts (a layer); false: plain names
    /// (an archive `cp` extracts).
    pub whiteouts: bool,
}

/// The owners policy: what the applier does with an entry's uid and gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// Set them; a failure fails the layer (the host's root).
    Set,
    /// Set them where this user namespace maps the IDs; an entry whose
    /// owner it does not map (a single-ID rootless namespace, an ID past
    /// the subordinate range) stays owned by the namespace's root, the
    /// user, and is counted in [`ApplyStats::kept_owners`].
    Mapped,
    /// Leave every entry owned by whoever applies the layer (an
    /// unprivileged user outside any namespace of its own).
    Keep,
}

impl ApplyOptions {
    /// Privileged when barge holds what the privileged path needs (chown,
    /// mknod, `trusted.` xattrs) in the initial user namespace — not merely
    /// uid 0, which in a user namespace has none of them on the store.
    pub fn for_current_user() -> ApplyOptions {
        const CHOWN: u32 = 0;
        const SYS_ADMIN: u32 = 21;
        const MKNOD: u32 = 27;
        let caps = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
            })
            .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
            .unwrap_or(0);
        let in_initial_userns = crate::fsutil::in_initial_user_namespace();
        let all = [CHOWN, SYS_ADMIN, MKNOD].iter().all(|c| caps & (1 << c) != 0);
        let privileged = all && in_initial_userns;
        let owners = if privileged {
            Owners::Set
        } else if caps & (1 << CHOWN) != 0 && rustix::process::geteuid().is_root() {
            // Root of a user namespace (rootless barge): chown works for the IDs it maps.
            Owners::Mapped
        } else {
            Owners::Keep
        };
        ApplyOptions {
            privileged,
            owners,
            whiteouts: true,
        }
    }

    /// An unprivileged user's applier: no owners, devices or `trusted.` xattrs.
    pub fn unprivileged() -> ApplyOptions {
        ApplyOptions {
            privileged: false,
            owners: Owners::Keep,
            whiteouts: true,
        }
    }

    /// The xattr that marks an opaque directory.
    pub fn opaque_xattr(&self) -> &'static str {
        if self.privileged {
            "trusted.overlay.opaque"
        } else {
            "user.overlay.opaque"
        }
    }
}

/// What applying a layer produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Bytes of regular file content written (hard links not counted twice).
    pub size: u64,
    pub entries: u64,
    pub whiteouts: u64,
    /// Device nodes not created because barge is not running as root.
    pub skipped_devices: u64,
    /// Entries left owned by the user: the user namespace does not map
    /// their owner ([`Owners::Mapped`]).
    pub kept_owners: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("layer entry {path:?} is refused: {reason}")]
    Refused { path: String, reason: String },
    #[error("layer entry {path:?}: {source}")]
    Io { path: String, source: io::Error },
    #[error("the layer is not a valid tar stream: {0}")]
    Tar(io::Error),
    #[error("{0}")]
    TooLarge(String),
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// Applies the tar stream `reader` into the directory `dest`.
pub fn apply_tar<R: Read>(reader: R, dest: &Path, opts: ApplyOptions) -> Result<ApplyStats, ApplyError> {
    let root = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ApplyError::Io {
        path: dest.display().to_string(),
        source: e.into(),
    })?;
    apply_tar_at(reader, root, opts)
}

/// Applies the tar stream `reader` into the open directory `root`, which
/// every entry stays inside (a directory found inside a container's root,
/// say, without following its path from the host).
pub fn apply_tar_at<R: Read>(reader: R, root: OwnedFd, opts: ApplyOptions) -> Result<ApplyStats, ApplyError> {
    let mut applier = Applier {
        root,
        opts,
        dirs: Vec::new(),
        stats: ApplyStats::default(),
        buf: Vec::new(),
        last_parent: None,
        me: (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw()),
    };
    let mut archive = tar::Archive::new(reader);
    // Raw entries: extension headers are read here, with size limits,
    // rather than by the tar crate, which would read any size into memory.
    let mut pending = Extensions::default();
    for entry in archive.entries().map_err(ApplyError::Tar)?.raw(true) {
        let mut entry = entry.map_err(ApplyError::Tar)?;
        let kind = entry.header().entry_type();
        let extension = matches!(
            kind,
            EntryType::GNULongName | EntryType::GNULongLink | EntryType::XHeader | EntryType::XGlobalHeader
        );
        if extension {
            if entry.size() > MAX_EXTENSION {
                return Err(ApplyError::Refused {
                    path: display(&entry.path_bytes()),
                    reason: format!(
                        "a {kind:?} header of {} bytes is larger than the {MAX_EXTENSION} allowed",
                        entry.size()
                    ),
                });
            }
            let mut data = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut data).map_err(ApplyError::Tar)?;
            match kind {
                EntryType::GNULongName => pending.path = Some(trim_nul(data)),
                EntryType::GNULongLink => pending.link = Some(trim_nul(data)),
                EntryType::XHeader => pending.pax = parse_pax(&data),
                // Global headers: nothing barge applies.
                _ => {}
            }
            continue;
        }
        if kind == EntryType::GNUSparse {
            return Err(ApplyError::Refused {
                path: display(&entry.path_bytes()),
                reason: "GNU sparse entries are not supported (no image tool writes them)".into(),
            });
        }
        let ext = std::mem::take(&mut pending);
        applier.entry(&mut entry, ext)?;
    }
    applier.finish_dirs()?;
    Ok(applier.stats)
}

/// The largest GNU long-name or PAX header accepted.
const MAX_EXTENSION: u64 = 1 << 20;
/// The longest entry path accepted (Linux's PATH_MAX).
const MAX_PATH: usize = 4096;

/// What extension headers said about the next entry.
#[derive(Default)]
struct Extensions {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    pax: Vec<(String, Vec<u8>)>,
}

impl Extensions {
    fn pax(&self, key: &str) -> Option<&[u8]> {
        self.pax.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// PAX records: `<length> <key>=<value>\n`, the length counting the whole record.
fn parse_pax(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(space) = rest.iter().position(|b| *b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|l| l.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space + 1 || len > rest.len() {
            break;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|b| *b == b'=') {
            if let Ok(key) = std::str::from_utf8(&record[..eq]) {
                out.push((key.to_string(), record[eq + 1..].to_vec()));
            }
        }
        rest = &rest[len..];
    }
    out
}

struct Applier {
    root: OwnedFd,
    opts: ApplyOptions,
    /// Directories whose times are set last, once nothing more is written in them.
    /// With the mode to set then, when it could not be set at once (unprivileged,
    /// a read-only directory would stop this layer's own entries below it).
    dirs: Vec<(PathBuf, Timestamps, Option<u32>)>,
    stats: ApplyStats,
    /// The copy buffer, one for every file.
    buf: Vec<u8>,
    /// The last entry's parent directory, kept open for the next entries:
    /// a layer lists a directory's entries together. Forgotten whenever an
    /// entry removes anything, the only way a path here can come to name
    /// another directory.
    last_parent: Option<(Vec<OsString>, Rc<Parent>)>,
    /// The owner of what this process creates: its effective user and group.
    me: (u32, u32),
}

/// A directory of the snapshot that entries are created in.
struct Parent {
    fd: OwnedFd,
    /// Its group, when it is set-group-ID: what is created in it takes that group.
    setgid: Option<u32>,
}

impl Parent {
    /// The owner that an entry created in this directory starts with.
    fn new_owner(&self, me: (u32, u32)) -> (u32, u32) {
        (me.0, self.setgid.unwrap_or(me.1))
    }
}

/// Ownership, mode, times and xattrs of an entry.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    times: Timestamps,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// The normalised components of an entry name: leading `/` and `.` dropped,
/// `..` resolved lexically, refusing any that climbs above the root.
pub(crate) fn clean_path(raw: &[u8]) -> Result<Vec<OsString>, String> {
    let mut out: Vec<OsString> = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("its path climbs out of the layer root with '..'".into());
                }
            }
            c => out.push(OsString::from_vec(c.to_vec())),
        }
    }
    Ok(out)
}

fn join(comps: &[OsString]) -> PathBuf {
    if comps.is_empty() {
        return PathBuf::from(".");
    }
    let mut p = PathBuf::new();
    for c in comps {
        p.push(c);
    }
    p
}

fn display(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

impl Applier {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, ext: Extensions) -> Result<(), ApplyError> {
        let kind = entry.header().entry_type();
        let raw_path = match ext.pax("path").map(<[u8]>::to_vec).or_else(|| ext.path.clone()) {
            Some(p) => p,
            None => entry.path_bytes().into_owned(),
        };
        let link_name: Option<Vec<u8>> = ext
            .pax("linkpath")
            .map(<[u8]>::to_vec)
            .or_else(|| ext.link.clone())
            .or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
        if raw_path.len() > MAX_PATH || link_name.as_ref().is_some_and(|l| l.len() > MAX_PATH) {
            return Err(ApplyError::Refused {
                path: display(&raw_path[..raw_path.len().min(200)]),
                reason: format!("a path longer than {MAX_PATH} bytes"),
            });
        }
        if let Some(size) = ext
            .pax("size")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if size != entry.size() {
                return Err(ApplyError::Refused {
                    path: display(&raw_path),
                    reason: "a PAX size that differs from the header's is not supported".into(),
                });
            }
        }
        let path = display(&raw_path);
        let refuse = |reason: &str| ApplyError::Refused {
            path: path.clone(),
            reason: reason.to_string(),
        };
        let io_err = |source: io::Error| ApplyError::Io {
            path: path.clone(),
            source,
        };
        let comps = clean_path(&raw_path).map_err(|r| refuse(&r))?;
        self.stats.entries += 1;

        let Some(name) = comps.last().cloned() else {
            // The layer root itself ("./"): only a directory makes sense.
            if kind != EntryType::Directory {
                return Err(refuse("the layer root can only be a directory"));
            }
            let meta = self.meta(entry, &ext).map_err(io_err)?;
            let root = self.root.try_clone().map_err(io_err)?;
            let (now, deferred) = self.writable_until_done(meta);
            self.set_meta_fd(&root, &now, None).map_err(io_err)?;
            self.last_parent = None;
            self.dirs.push((PathBuf::new(), now.times, deferred));
            return Ok(());
        };
        let parent_comps = &comps[..comps.len() - 1];

        if let Some(target) = name.as_bytes().strip_prefix(b".wh.").filter(|_| self.opts.whiteouts) {
            return self.whiteout(parent_comps, target).map_err(|e| match e {
                WhiteoutError::Refused(r) => refuse(&r),
                WhiteoutError::Io(e) => io_err(e),
            });
        }

        let parent = self.parent_dir(parent_comps).map_err(|e| match e {
            ParentError::Refused(r) => refuse(&r),
            ParentError::Io(e) => io_err(e),
        })?;
        let meta = self.meta(entry, &ext).map_err(io_err)?;
        let new_owner = Some(parent.new_owner(self.me));
        let parent_fd = &parent.fd;
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let fd = self
                    .create(parent_fd, &name, |p, n| {
                        openat(
                            p,
                            n,
                            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::from_raw_mode(0o600),
                        )
                    })
                    .map_err(io_err)?;
                let mut file = File::from(fd);
                let written = copy_sparse(entry, &mut file, &mut self.buf).map_err(io_err)?;
                self.stats.size += written;
                if written >= EARLY_WRITEBACK {
                    crate::fsutil::start_writeback(&file);
                }
                self.set_meta_fd(file.as_fd(), &meta, new_owner).map_err(io_err)?;
            }
            EntryType::Directory => {
                let made = match mkdirat(parent_fd, &name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => true,
                    Err(Errno::EXIST) => {
                        let existed = self.replace(parent_fd, &name, true).map_err(io_err)?;
                        if !existed {
                            mkdirat(parent_fd, &name, Mode::from_raw_mode(0o700)).map_err(|e| io_err(e.into()))?;
                        }
                        !existed
                    }
                    Err(e) => return Err(io_err(e.into())),
                };
                let dir = openat(
                    parent_fd,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_err(e.into()))?;
                let (now, deferred) = self.writable_until_done(meta);
                self.set_meta_fd(dir.as_fd(), &now, new_owner.filter(|_| made))
                    .map_err(io_err)?;
                // Its set-group-ID bit may have changed: look again.
                self.last_parent = None;
                self.dirs.push((join(&comps), now.times, deferred));
            }
            EntryType::Symlink => {
                let target = link_name.clone().ok_or_else(|| refuse("symlink without a target"))?;
                if target.is_empty() || target.contains(&0) {
                    return Err(refuse("symlink with an empty or invalid target"));
                }
                let target = OsStr::from_bytes(&target);
                self.create(parent_fd, &name, |p, n| symlinkat(target, p, n))
                    .map_err(io_err)?;
                self.set_meta_at(parent_fd, &name, &meta, true, new_owner)
                    .map_err(io_err)?;
            }
            EntryType::Link => {
                let target_raw = link_name.clone().ok_or_else(|| refuse("hard link without a target"))?;
                let target = clean_path(&target_raw).map_err(|r| refuse(&format!("hard link target: {r}")))?;
                let Some(target_name) = target.last() else {
                    return Err(refuse("hard link to the layer root"));
                };
                let target_parent = self.existing_dir(&target[..target.len() - 1]).map_err(|_| {
                    refuse(&format!(
                        "hard link target {:?} is not in this layer",
                        display(&target_raw)
                    ))
                })?;
                let st = statat(&target_parent, target_name, AtFlags::SYMLINK_NOFOLLOW).map_err(|_| {
                    refuse(&format!(
                        "hard link target {:?} is not in this layer",
                        display(&target_raw)
                    ))
                })?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    return Err(refuse("hard link to a directory"));
                }
                if target == comps {
                    return Ok(()); // a link to itself changes nothing
                }
                self.replace(parent_fd, &name, false).map_err(io_err)?;
                linkat(&target_parent, target_name, parent_fd, &name, AtFlags::empty())
                    .map_err(|e| io_err(e.into()))?;
            }
            EntryType::Char | EntryType::Block => {
                let major = entry.header().device_major().map_err(io_err)?.unwrap_or(0);
                let minor = entry.header().device_minor().map_err(io_err)?.unwrap_or(0);
                if major > 0xfff || minor > 0xfffff {
                    return Err(refuse(&format!("device number {major}:{minor} is out of range")));
                }
                if !self.opts.privileged {
                    self.stats.skipped_devices += 1;
                    return Ok(());
                }
                let ft = if kind == EntryType::Char {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                self.replace(parent_fd, &name, false).map_err(io_err)?;
                mknodat(parent_fd, &name, ft, Mode::from_raw_mode(0o600), makedev(major, minor))
                    .map_err(|e| io_err(e.into()))?;
                self.set_meta_at(parent_fd, &name, &meta, false, new_owner)
                    .map_err(io_err)?;
            }
            EntryType::Fifo => {
                self.replace(parent_fd, &name, false).map_err(io_err)?;
                mknodat(parent_fd, &name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    .map_err(|e| io_err(e.into()))?;
                self.set_meta_at(parent_fd, &name, &meta, false, new_owner)
                    .map_err(io_err)?;
            }
            other => return Err(refuse(&format!("unsupported tar entry type {other:?}"))),
        }
        Ok(())
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, ext: &Extensions) -> io::Result<Meta> {
        let h = entry.header();
        let pax_num = |key: &str| {
            ext.pax(key)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let uid = u32::try_from(pax_num("uid").map_or_else(|| h.uid(), Ok)?)
            .map_err(|_| io::Error::other("uid out of range"))?;
        let gid = u32::try_from(pax_num("gid").map_or_else(|| h.gid(), Ok)?)
            .map_err(|_| io::Error::other("gid out of range"))?;
        let mode = h.mode()? & 0o7777;
        let mut mtime = Timespec {
            tv_sec: i64::try_from(h.mtime()?).unwrap_or(0),
            tv_nsec: 0,
        };
        if let Some(t) = ext
            .pax("mtime")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(parse_pax_time)
        {
            mtime = t;
        }
        let mut xattrs = Vec::new();
        for (key, value) in &ext.pax {
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if allowed_xattr(name, self.opts.privileged) {
                    xattrs.push((name.to_string(), value.clone()));
                }
            }
        }
        Ok(Meta {
            uid,
            gid,
            mode,
            times: Timestamps {
                last_access: mtime,
                last_modification: mtime,
            },
            xattrs,
        })
    }

    /// Ownership, mode, xattrs and times on an open file or directory.
    /// A directory's metadata to set now, and the mode to set once the layer
    /// is done: unprivileged, write permission is needed until then.
    fn writable_until_done(&self, meta: Meta) -> (Meta, Option<u32>) {
        let deferred = (!self.opts.privileged && meta.mode & 0o700 != 0o700).then_some(meta.mode);
        let now = Meta {
            mode: if deferred.is_some() { 0o700 } else { meta.mode },
            ..meta
        };
        (now, deferred)
    }

    /// Applies the owners policy to one entry's `chown` result.
    fn owned(&mut self, chown: Result<(), Errno>) -> io::Result<()> {
        match (chown, self.opts.owners) {
            (Ok(()), _) => Ok(()),
            // EINVAL: an ID this user namespace does not map.
            (Err(Errno::INVAL), Owners::Mapped) => {
                self.stats.kept_owners += 1;
                Ok(())
            }
            (Err(e), _) => Err(e.into()),
        }
    }

    /// `created`: the owner the entry was created with, if it was just
    /// created; no `chown` when that is the owner wanted.
    fn set_meta_fd(&mut self, fd: impl AsFd, meta: &Meta, created: Option<(u32, u32)>) -> io::Result<()> {
        if self.opts.owners != Owners::Keep && created != Some((meta.uid, meta.gid)) {
            let r = fchown(&fd, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)));
            self.owned(r)?;
        }
        // After chown, which clears setuid/setgid bits.
        fchmod(&fd, Mode::from_raw_mode(meta.mode))?;
        for (name, value) in &meta.xattrs {
            match fsetxattr(&fd, name.as_str(), value, XattrFlags::empty()) {
                Ok(()) | Err(Errno::NOTSUP) => {}
                Err(e) => return Err(io::Error::other(format!("setting xattr {name}: {e}"))),
            }
        }
        futimens(&fd, &meta.times)?;
        Ok(())
    }

    /// The same for a symlink, device or fifo, by name in its parent.
    fn set_meta_at(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
        symlink: bool,
        created: Option<(u32, u32)>,
    ) -> io::Result<()> {
        if self.opts.owners != Owners::Keep && created != Some((meta.uid, meta.gid)) {
            let r = chownat(
                parent,
                name,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            );
            self.owned(r)?;
        }
        if !symlink {
            rustix::fs::chmodat(parent, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())?;
        }
        if !meta.xattrs.is_empty() {
            // No *at form exists for xattrs: name the entry through its parent's fd.
            let path = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd())).join(name);
            for (xname, value) in &meta.xattrs {
                match lsetxattr(&path, xname.as_str(), value, XattrFlags::empty()) {
                    // user.* xattrs are not allowed on symlinks and devices.
                    Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) => {}
                    Err(e) => return Err(io::Error::other(format!("setting xattr {xname}: {e}"))),
                }
            }
        }
        utimensat(parent, name, &meta.times, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    /// Creates `name` in `parent` with `make`, which fails with `EEXIST`
    /// when the name is taken: then what is there is removed and `make`
    /// tried once more (one system call for the common case, a new name).
    fn create<T>(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        make: impl Fn(&OwnedFd, &OsStr) -> Result<T, Errno>,
    ) -> io::Result<T> {
        match make(parent, name) {
            Err(Errno::EXIST) => {
                self.replace(parent, name, false)?;
                Ok(make(parent, name)?)
            }
            other => Ok(other?),
        }
    }

    /// Clears the slot `name` in `parent` for a new entry. A directory is kept
    /// when `keep_dir` (a directory entry over a directory); anything else
    /// there is removed. Returns whether a directory was kept.
    fn replace(&mut self, parent: &OwnedFd, name: &OsStr, keep_dir: bool) -> io::Result<bool> {
        let found = statat(parent, name, AtFlags::SYMLINK_NOFOLLOW);
        let stays = match &found {
            Err(Errno::NOENT) => true,
            Ok(st) => keep_dir && is_dir(st),
            Err(_) => false,
        };
        if !stays {
            // Something goes: paths may now resolve elsewhere.
            self.last_parent = None;
        }
        match found {
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
            Ok(st) if is_dir(&st) => {
                if keep_dir {
                    return Ok(true);
                }
                // std's remove_dir_all opens each level with O_NOFOLLOW.
                let path = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd())).join(name);
                std::fs::remove_dir_all(path)?;
                Ok(false)
            }
            Ok(_) => {
                unlinkat(parent, name, AtFlags::empty())?;
                Ok(false)
            }
        }
    }

    fn whiteout(&mut self, parent_comps: &[OsString], target: &[u8]) -> Result<(), WhiteoutError> {
        if target == b".wh..opq" {
            let dir = self.parent_dir(parent_comps).map_err(WhiteoutError::from)?;
            let dir = openat(
                &dir.fd,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| WhiteoutError::Io(e.into()))?;
            fsetxattr(&dir, self.opts.opaque_xattr(), b"y", XattrFlags::empty())
                .map_err(|e| WhiteoutError::Io(e.into()))?;
            self.stats.whiteouts += 1;
            return Ok(());
        }
        if target.starts_with(b".wh.") {
            // Other aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content.
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(WhiteoutError::Refused("a whiteout must name an entry".into()));
        }
        let parent = self.parent_dir(parent_comps).map_err(WhiteoutError::from)?;
        let name = OsStr::from_bytes(target);
        self.replace(&parent.fd, name, false).map_err(WhiteoutError::Io)?;
        mknodat(
            &parent.fd,
            name,
            FileType::CharacterDevice,
            Mode::empty(),
            makedev(0, 0),
        )
        .map_err(|e| WhiteoutError::Io(e.into()))?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    /// Opens an existing directory of the snapshot, resolving symlinks inside it only.
    fn existing_dir(&self, comps: &[OsString]) -> Result<OwnedFd, Errno> {
        crate::fsutil::openat2(
            &self.root,
            join(comps),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
    }

    /// The directory `comps`, created as [`Applier::open_parent`] does;
    /// the last entry's when it is the same.
    fn parent_dir(&mut self, comps: &[OsString]) -> Result<Rc<Parent>, ParentError> {
        if let Some((last, dir)) = &self.last_parent {
            if last.as_slice() == comps {
                return Ok(dir.clone());
            }
        }
        let fd = self.open_parent(comps)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| ParentError::Io(e.into()))?;
        let setgid = (st.st_mode & 0o2000 != 0).then_some(st.st_gid);
        let dir = Rc::new(Parent { fd, setgid });
        self.last_parent = Some((comps.to_vec(), dir.clone()));
        Ok(dir)
    }

    /// Opens the directory `comps`, creating missing levels as 0755 directories.
    fn open_parent(&self, comps: &[OsString]) -> Result<OwnedFd, ParentError> {
        match self.existing_dir(comps) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(Errno::NOTDIR) => return Err(ParentError::Refused("a parent path is not a directory".into())),
            Err(Errno::LOOP) => return Err(ParentError::Refused("a parent path is a symlink loop".into())),
            Err(e) => return Err(ParentError::Io(e.into())),
        }
        let mut dir = self.existing_dir(&[]).map_err(|e| ParentError::Io(e.into()))?;
        for i in 1..=comps.len() {
            dir = match self.existing_dir(&comps[..i]) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match mkdirat(&dir, &comps[i - 1], Mode::from_raw_mode(0o755)) {
                        Ok(()) => {}
                        Err(Errno::EXIST) => {
                            return Err(ParentError::Refused(format!(
                                "{:?} is a symlink to a directory that is not in this layer",
                                join(&comps[..i])
                            )))
                        }
                        Err(e) => return Err(ParentError::Io(e.into())),
                    }
                    self.existing_dir(&comps[..i]).map_err(|e| ParentError::Io(e.into()))?
                }
                Err(Errno::NOTDIR) => return Err(ParentError::Refused("a parent path is not a directory".into())),
                Err(e) => return Err(ParentError::Io(e.into())),
            };
        }
        Ok(dir)
    }

    /// Sets directory times last: writing into a directory changes its mtime.
    fn finish_dirs(&mut self) -> Result<(), ApplyError> {
        for (path, times, mode) in std::mem::take(&mut self.dirs) {
            let shown = path.display().to_string();
            let err = |e: rustix::io::Errno| ApplyError::Io {
                path: shown.clone(),
                source: e.into(),
            };
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                if let Some(m) = mode {
                    fchmod(&self.root, Mode::from_raw_mode(m)).map_err(err)?;
                }
                futimens(&self.root, &times).map_err(err)?;
                continue;
            };
            // Entries after the directory may have replaced it: then there is nothing to do.
            let Ok(parent) = crate::fsutil::openat2(
                &self.root,
                parent_or_dot(parent),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            ) else {
                continue;
            };
            match statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                    if let Some(m) = mode {
                        rustix::fs::chmodat(&parent, name, Mode::from_raw_mode(m), AtFlags::empty()).map_err(err)?;
                    }
                    utimensat(&parent, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(err)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn is_dir(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

fn parent_or_dot(p: &Path) -> &Path {
    if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    }
}

enum ParentError {
    Refused(String),
    Io(io::Error),
}

enum WhiteoutError {
    Refused(String),
    Io(io::Error),
}

impl From<ParentError> for WhiteoutError {
    fn from(e: ParentError) -> Self {
        match e {
            ParentError::Refused(r) => WhiteoutError::Refused(r),
            ParentError::Io(e) => WhiteoutError::Io(e),
        }
    }
}

/// Xattrs barge restores. Overlay's own (`*.overlay.*`) never: they would
/// let a layer redirect or hide paths of the union.
fn allowed_xattr(name: &str, privileged: bool) -> bool {
    if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
        return false;
    }
    if name.starts_with("user.") {
        return true;
    }
    privileged
        && (name == "security.capability" || name.starts_with("trusted.") || name.starts_with("system.posix_acl_"))
}

/// PAX times are decimal seconds with an optional fraction.
fn parse_pax_time(s: &str) -> Option<Timespec> {
    let negative = s.starts_with('-');
    let (secs, frac) = s
        .trim_start_matches(['-', '+'])
        .split_once('.')
        .unwrap_or((s.trim_start_matches(['-', '+']), ""));
    let whole: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32)
    };
    // Timespec nanoseconds are never negative: -1.5 s is -2 s + 0.5 s.
    Some(match (negative, nanos) {
        (false, n) => Timespec {
            tv_sec: whole,
            tv_nsec: n,
        },
        (true, 0) => Timespec {
            tv_sec: -whole,
            tv_nsec: 0,
        },
        (true, n) => Timespec {
            tv_sec: -whole - 1,
            tv_nsec: 1_000_000_000 - n,
        },
    })
}

/// Files at least this big start their writeback as soon as they are
/// written, so that the `syncfs` making the snapshot durable finds most of
/// the work done.
const EARLY_WRITEBACK: u64 = 256 << 10;

const BLOCK: usize = 64 * 1024;

/// Copies file content, leaving holes where whole blocks are zero.
fn copy_sparse(src: &mut impl Read, dst: &mut File, buf: &mut Vec<u8>) -> io::Result<u64> {
    buf.resize(BLOCK, 0);
    let mut total = 0u64;
    let mut pending_hole = false;
    loop {
        // Fill a whole block so hole detection is aligned.
        let mut n = 0;
        while n < BLOCK {
            match src.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if n == 0 {
            break;
        }
        if n == BLOCK && buf.iter().all(|b| *b == 0) {
            dst.seek(SeekFrom::Current(BLOCK as i64))?;
            pending_hole = true;
        } else {
            dst.write_all(&buf[..n])?;
            pending_hole = false;
        }
        total += n as u64;
        if n < BLOCK {
            break;
        }
    }
    if pending_hole {
        dst.set_len(total)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        let c = |s: &str| clean_path(s.as_bytes()).map(|v| join(&v).display().to_string());
        assert_eq!(c("./a/b/").unwrap(), "a/b");
        assert_eq!(c("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(c("a/../b").unwrap(), "b");
        assert_eq!(c("./").unwrap(), ".");
        assert!(c("../x").is_err());
        assert!(c("a/../../x").is_err());
        assert!(c("/..").is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(
            parse_pax_time("12.5"),
            Some(Timespec {
                tv_sec: 12,
                tv_nsec: 500_000_000
            })
        );
        assert_eq!(parse_pax_time("7"), Some(Timespec { tv_sec: 7, tv_nsec: 0 }));
        assert_eq!(parse_pax_time("x"), None);
        assert_eq!(
            parse_pax_time("-1.5"),
            Some(Timespec {
                tv_sec: -2,
                tv_nsec: 500_000_000
            })
        );
        assert_eq!(
            parse_pax_time("-0.25"),
            Some(Timespec {
                tv_sec: -1,
                tv_nsec: 750_000_000
            })
        );
        assert_eq!(parse_pax_time("-3"), Some(Timespec { tv_sec: -3, tv_nsec: 0 }));
    }

    #[test]
    fn overlay_xattrs_are_never_restored() {
        assert!(!allowed_xattr("trusted.overlay.redirect", true));
        assert!(!allowed_xattr("user.overlay.opaque", true));
        assert!(allowed_xattr("user.mime", false));
        assert!(allowed_xattr("security.capability", true));
        assert!(!allowed_xattr("security.capability", false));
        assert!(!allowed_xattr("security.selinux", true));
    }
}
