//! barge's embedded OCI runner, and hand-off to an external runtime.
//!
//! [`start`] prepares everything that allocates, then `clone`s with new
//! namespaces. The child is PID 1 of its PID namespace; it mounts the
//! overlay root and the bundle's mounts inside its own mount namespace,
//! `pivot_root`s, sets hostname, rlimits, user, capabilities and
//! `no_new_privs`, marks every other fd close-on-exec and `execve`s. Until
//! `execve` it is non-dumpable, so nothing in the container can ptrace or
//! reopen it. Failures travel back on a close-on-exec pipe as
//! `<exit code>:<message>`; a clean EOF means the command is running.
//!
//! The parent must be single-threaded when it calls [`start`] (barge is:
//! pulls join their threads first): the child allocates before `execve`.

use crate::container::{process_start_time, Container};
use crate::spec::Spec;
use crate::{io_err, RuntimeError};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::MountFlags;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What the container's stdin, stdout and stderr are. Never barge's own:
/// a file or terminal of the host must not reach the container, so the
/// monitor relays pipes (or a pty the container opens) instead.
pub enum ChildIo {
    /// These become 0, 1 and 2; without `stdin`, the container's own `/dev/null`.
    Fds {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A pseudo-terminal opened inside the container; its master comes back
    /// in [`Started::terminal`].
    Terminal,
}

/// A started container process.
pub struct Started {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub start_time: u64,
    /// The pty master, for [`ChildIo::Terminal`].
    pub terminal: Option<OwnedFd>,
}

/// A mount, ready for the child.
struct PreparedMount {
    /// Path inside the root, without the leading `/`.
    dest: PathBuf,
    kind: String,
    source: CString,
    flags: MountFlags,
    data: CString,
    bind: bool,
    /// Bind source is a file: the target is created as a file.
    file: bool,
    read_only: bool,
}

/// The process to exec and its credentials, computed before forking.
pub(crate) struct ProcessPlan {
    pub(crate) cwd: PathBuf,
    pub(crate) argv: Vec<CString>,
    pub(crate) envp: Vec<CString>,
    pub(crate) path_dirs: Vec<Vec<u8>>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) groups: Vec<u32>,
    /// Bounding set; also effective and permitted for uid 0.
    pub(crate) caps: u64,
    /// The system call filter, compiled before forking.
    pub(crate) seccomp: Option<crate::seccomp::Program>,
    /// RLIMIT_NOFILE (soft, hard).
    pub(crate) nofile: (u64, u64),
    /// rlimits other than RLIMIT_NOFILE: (resource, soft, hard).
    pub(crate) rlimits: Vec<(i32, u64, u64)>,
}

impl ProcessPlan {
    pub(crate) fn new(
        p: &crate::spec::Process,
        seccomp: Option<&crate::seccomp::LinuxSeccomp>,
    ) -> Result<ProcessPlan, RuntimeError> {
        let path_dirs = p
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| d.as_bytes().to_vec())
            .collect();
        Ok(ProcessPlan {
            cwd: PathBuf::from(&p.cwd),
            argv: p.args.iter().map(cstr).collect::<Result<_, _>>()?,
            envp: p.env.iter().map(cstr).collect::<Result<_, _>>()?,
            path_dirs,
            uid: p.user.uid,
            gid: p.user.gid,
            groups: p.user.additional_gids.clone(),
            caps: crate::caps::mask(&p.capabilities.bounding)?,
            seccomp: seccomp.map(crate::seccomp::compile).transpose()?,
            nofile: p
                .rlimits
                .iter()
                .find(|r| r.kind == "RLIMIT_NOFILE")
                .map(|r| (r.soft, r.hard))
                .unwrap_or((1024, 4096)),
            rlimits: p
                .rlimits
                .iter()
                .filter(|r| r.kind != "RLIMIT_NOFILE")
                .map(|r| {
                    crate::limits::rlimit_resource(&r.kind)
                        .map(|n| (n, r.soft, r.hard))
                        .ok_or_else(|| RuntimeError::Corrupt(format!("unknown rlimit {:?} in the bundle", r.kind)))
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Everything the child needs, computed before `clone`.
struct Prepared {
    rootfs: PathBuf,
    snapshots_dir: PathBuf,
    overlay_data: CString,
    mounts: Vec<PreparedMount>,
    masked: Vec<PathBuf>,
    readonly: Vec<PathBuf>,
    readonly_root: bool,
    hostname: Vec<u8>,
    process: ProcessPlan,
    /// `--init`: the sealed init program, executed as PID 1.
    init: Option<OwnedFd>,
    /// A new network namespace: bring its `lo` up.
    loopback_up: bool,
    /// A network namespace to join (a bridge network's, set up by barge).
    netns: Option<OwnedFd>,
    /// The container cgroup's `cgroup.procs` files: the child joins first thing.
    cgroup_procs: Vec<OwnedFd>,
}

pub(crate) fn cstr(s: impl AsRef<[u8]>) -> Result<CString, RuntimeError> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| RuntimeError::Corrupt("a string in the bundle contains a NUL byte".into()))
}

/// Splits mount options into flags and filesystem data, as runc does.
fn mount_flags(options: &[String]) -> (MountFlags, String, bool, bool) {
    let mut flags = MountFlags::empty();
    let mut data = Vec::new();
    let (mut bind, mut ro) = (false, false);
    for o in options {
        match o.as_str() {
            "nosuid" => flags |= MountFlags::NOSUID,
            "noexec" => flags |= MountFlags::NOEXEC,
            "nodev" => flags |= MountFlags::NODEV,
            "ro" => ro = true,
            "rw" | "rprivate" | "private" => {}
            "strictatime" => flags |= MountFlags::STRICTATIME,
            "relatime" => flags |= MountFlags::RELATIME,
            "noatime" => flags |= MountFlags::NOATIME,
            "bind" => bind = true,
            "rbind" => {
                bind = true;
                flags |= MountFlags::REC;
            }
            other => data.push(other.to_string()),
        }
    }
    (flags, data.join(","), bind, ro)
}

fn prepare(c: &Container, spec: &Spec) -> Result<Prepared, RuntimeError> {
    let rootfs = c.dir.join(&spec.root.path);
    let snapshots_dir = c
        .meta
        .lower_dirs
        .first()
        .and_then(|p| p.parent())
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // Lower dirs relative to the snapshots directory keep the option string short.
    let lowers: Vec<PathBuf> = c
        .meta
        .lower_dirs
        .iter()
        .map(|p| {
            p.strip_prefix(&snapshots_dir)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| p.clone())
        })
        .collect();
    let overlay = crate::overlay_options(&lowers, Some((&c.dir.join("upper"), &c.dir.join("work"))))?;
    let mut mounts = Vec::new();
    for m in &spec.mounts {
        // Binds get nodev and nosuid on every submount when attached (`attach_copy`).
        let (flags, data, bind, ro) = mount_flags(&m.options);
        let file = bind && Path::new(&m.source).is_file();
        mounts.push(PreparedMount {
            dest: PathBuf::from(m.destination.trim_start_matches('/')),
            kind: m.kind.clone(),
            source: cstr(m.source.as_bytes())?,
            flags,
            data: cstr(data)?,
            bind,
            file,
            read_only: ro,
        });
    }
    let p = &spec.process;
    Ok(Prepared {
        rootfs,
        snapshots_dir,
        overlay_data: cstr(overlay)?,
        mounts,
        masked: spec
            .linux
            .masked_paths
            .iter()
            .map(|s| PathBuf::from(s.trim_start_matches('/')))
            .collect(),
        readonly: spec
            .linux
            .readonly_paths
            .iter()
            .map(|s| PathBuf::from(s.trim_start_matches('/')))
            .collect(),
        readonly_root: spec.root.readonly,
        hostname: spec.hostname.as_bytes().to_vec(),
        process: ProcessPlan::new(p, spec.linux.seccomp.as_ref())?,
        init: c.meta.init.then(crate::sealed::init_program).transpose()?,
        loopback_up: spec
            .linux
            .namespaces
            .iter()
            .any(|n| n.kind == "network" && n.path.is_none()),
        netns: match spec
            .linux
            .namespaces
            .iter()
            .find_map(|n| (n.kind == "network").then_some(n.path.as_ref()))
        {
            Some(Some(path)) => Some(
                rustix::fs::open(path.as_str(), OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| io_err(format!("opening the network namespace {path}"))(e.into()))?,
            ),
            _ => None,
        },
        cgroup_procs: Vec::new(),
    })
}

/// Removes the container's cgroup when a start fails half way.
struct CgroupGuard<'a>(Option<&'a Path>);

impl Drop for CgroupGuard<'_> {
    fn drop(&mut self) {
        if let Some(dir) = self.0 {
            crate::cgroups::release(dir);
        }
    }
}

/// Starts the container's process with barge's runner, or the external
/// runtime the container names.
pub fn start(c: &Container, io: ChildIo) -> Result<Started, RuntimeError> {
    let spec = c.spec()?;
    let attached = match (c.meta.network, &c.meta.network_name) {
        (crate::Network::Bridge, Some(name)) => Some(crate::network::attach(c, name, &c.meta.ports)?),
        _ => None,
    };
    let started = if c.meta.runtime.is_some() {
        external_start(c, io)
    } else {
        native_start(c, &spec, io)
    };
    if started.is_err() && attached.is_some() {
        crate::network::detach(c);
    }
    started
}

fn native_start(c: &Container, spec: &Spec, io: ChildIo) -> Result<Started, RuntimeError> {
    let mut prepared = prepare(c, spec)?;
    // The cgroup, with its limits, exists before the child does.
    let resources = spec.linux.resources.as_ref();
    let cgroup_path = spec
        .linux
        .cgroups_path
        .clone()
        .unwrap_or_else(|| crate::cgroups::default_path(c.id()));
    let cgroup = match crate::cgroups::Cgroup::create(&cgroup_path, resources) {
        Ok(cg) => cg,
        // Nothing a cgroup enforces is asked for (a bundle without limits or
        // device rules): a host where barge may not make cgroups still runs it.
        Err(_) if !crate::cgroups::limits_asked(resources) => None,
        Err(e) => return Err(e.into()),
    };
    let mut guard = CgroupGuard(None);
    if let Some(cg) = &cgroup {
        guard.0 = Some(&c.dir);
        cg.save(&c.dir)?;
        prepared.cgroup_procs = cg.procs_files()?;
    }
    let (err_read, err_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| io_err("creating a pipe")(e.into()))?;
    let terminal = match io {
        ChildIo::Terminal => Some(crate::terminal::socketpair().map_err(io_err("creating a socket pair"))?),
        _ => None,
    };
    let mut flags = libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if spec
        .linux
        .namespaces
        .iter()
        .any(|n| n.kind == "network" && n.path.is_none())
    {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack). barge is
    // single-threaded here, so the child may run ordinary code until execve.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(io_err("creating the container's namespaces (clone)")(
            std::io::Error::last_os_error(),
        ));
    }
    if pid == 0 {
        drop(err_read);
        let sock = terminal.map(|(ours, theirs)| {
            drop(ours);
            theirs
        });
        let err_fd = err_write.as_raw_fd();
        run_child(err_write, || child(&prepared, io, sock.as_ref(), err_fd));
    }
    drop(err_write);
    let pid = pid as i32;
    drop(io);
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or_else(|| RuntimeError::Corrupt("pid 0".into()))?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| io_err("watching the container process")(e.into()))?;
    let start_time = process_start_time(pid).unwrap_or(0);
    let master = match terminal {
        Some((ours, theirs)) => {
            drop(theirs);
            crate::terminal::receive_master(&ours).map_err(io_err("receiving the container's terminal"))?
        }
        None => None,
    };
    started_or_reaped(pid, err_read)?;
    guard.0 = None;
    Ok(Started {
        pid,
        pidfd,
        start_time,
        terminal: master,
    })
}

pub(crate) type ChildError = (i32, String);

/// Runs the setup of a forked child, which returns only on failure, and
/// leaves the child: the failure goes to its error pipe as `<exit
/// code>:<message>`, then `_exit` (no destructor of the parent's runs
/// here). A panic in the setup is a failure too (exit 125), never an
/// unwind into the parent's code that this process still holds a copy of.
pub(crate) fn run_child(err_pipe: OwnedFd, setup: impl FnOnce() -> Result<std::convert::Infallible, ChildError>) -> ! {
    let (code, message) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(setup)) {
        Ok(Ok(never)) => match never {},
        Ok(Err(e)) => e,
        Err(_) => (125, "the container's setup failed unexpectedly".into()),
    };
    let _ = std::fs::File::from(err_pipe).write_all(format!("{code}:{message}").as_bytes());
    // SAFETY: leaving the child without running the parent's destructors.
    unsafe { libc::_exit(code) }
}

/// `<exit code>:<message>` as a failure (125 when the code is missing).
pub(crate) fn parse_failure(msg: String) -> ChildError {
    msg.split_once(':')
        .map(|(c, m)| (c.parse().unwrap_or(125), m.to_string()))
        .unwrap_or((125, msg))
}

/// Waits for the child `pid` to exec (its close-on-exec error pipe reaches
/// end of file) or fail (it wrote why; it is reaped).
pub(crate) fn started_or_reaped(pid: i32, err_pipe: OwnedFd) -> Result<(), RuntimeError> {
    let mut msg = String::new();
    let _ = std::fs::File::from(err_pipe).read_to_string(&mut msg);
    if msg.is_empty() {
        return Ok(());
    }
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
    }
    let (code, message) = parse_failure(msg);
    Err(RuntimeError::Start { code, message })
}

pub(crate) fn fail(what: impl std::fmt::Display) -> impl FnOnce(rustix::io::Errno) -> ChildError {
    let what = what.to_string();
    move |e| (125, format!("{what}: {e}"))
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens (creating as needed) a path inside the root, never leaving it.
/// Links are followed inside the root, a dangling one too: what it names
/// is created, as runc's securejoin does.
pub(crate) fn open_in_root(root: &OwnedFd, rel: &Path, create_file: bool) -> Result<OwnedFd, rustix::io::Errno> {
    open_in_root_at_depth(root, rel, create_file, 0)
}

fn open_in_root_at_depth(
    root: &OwnedFd,
    rel: &Path,
    create_file: bool,
    depth: usize,
) -> Result<OwnedFd, rustix::io::Errno> {
    if depth > 40 {
        return Err(rustix::io::Errno::LOOP);
    }
    let comps: Vec<&std::ffi::OsStr> = rel.iter().collect();
    let mut dir = rustix::fs::openat2(
        root,
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )?;
    for (i, comp) in comps.iter().enumerate() {
        let partial: PathBuf = comps[..=i].iter().collect();
        let last = i + 1 == comps.len();
        match rustix::fs::openat2(root, &partial, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), IN_ROOT) {
            Ok(fd) => dir = fd,
            Err(rustix::io::Errno::NOENT) => {
                if let Ok(target) = rustix::fs::readlinkat(&dir, *comp, Vec::new()) {
                    // A dangling link: resolve what it names from the root
                    // (absolute) or its directory, then the rest of the path.
                    let target = Path::new(std::ffi::OsStr::from_bytes(target.as_bytes()));
                    let mut next: PathBuf = match target.strip_prefix("/") {
                        Ok(abs) => abs.to_path_buf(),
                        Err(_) => comps[..i].iter().collect::<PathBuf>().join(target),
                    };
                    next.extend(&comps[i + 1..]);
                    return open_in_root_at_depth(root, &next, create_file, depth + 1);
                }
                if last && create_file {
                    let f = rustix::fs::openat(
                        &dir,
                        *comp,
                        OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o644),
                    )?;
                    drop(f);
                } else {
                    match rustix::fs::mkdirat(&dir, *comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e),
                    }
                }
                dir = rustix::fs::openat2(root, &partial, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), IN_ROOT)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(dir)
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// A refusal of the image's layout at a mount point, with docker's status.
fn refuse(what: String) -> ChildError {
    (125, what)
}

/// What [`walk_plain`] does with a component that does not exist.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// Make it a directory: a mount point of the runtime.
    Create,
    /// The whole path is absent (`None`): a file the kernel lacks.
    Absent,
}

/// Walks `rel` below `dir` one component at a time without following a
/// link, and refuses one: the runtime's mount points, masks and read-only
/// paths must be what they look like. With [`Missing::Create`] every
/// component is (made) an ordinary directory. `what` names the purpose in
/// messages (`mount point /proc`).
fn walk_plain(dir: &OwnedFd, rel: &Path, missing: Missing, what: &str) -> Result<Option<OwnedFd>, ChildError> {
    let mut cur = rustix::fs::openat(
        dir,
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail(format!("{what}: opening its parent")))?;
    let comps: Vec<&std::ffi::OsStr> = rel.iter().collect();
    for (i, comp) in comps.iter().enumerate() {
        if *comp == "." || *comp == ".." {
            return Err(refuse(format!("{what}: '.' and '..' are not allowed")));
        }
        let open = |d: &OwnedFd| {
            rustix::fs::openat(
                d,
                *comp,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        let fd = match (open(&cur), missing) {
            (Ok(fd), _) => fd,
            (Err(rustix::io::Errno::NOENT), Missing::Absent) => return Ok(None),
            (Err(rustix::io::Errno::NOENT), Missing::Create) => {
                rustix::fs::mkdirat(&cur, *comp, Mode::from_raw_mode(0o755))
                    .map_err(fail(format!("{what}: creating it")))?;
                open(&cur).map_err(fail(format!("{what}: opening it")))?
            }
            (Err(e), _) => return Err(fail(format!("{what}: opening it"))(e)),
        };
        let kind = rustix::fs::fstat(&fd)
            .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode))
            .map_err(fail(format!("{what}: opening it")))?;
        let partial: PathBuf = comps[..=i].iter().collect();
        if kind == rustix::fs::FileType::Symlink {
            return Err(refuse(format!(
                "{what}: /{} is a symbolic link in the image; it must be an ordinary directory",
                partial.display()
            )));
        }
        if missing == Missing::Create && kind != rustix::fs::FileType::Directory {
            return Err(refuse(format!(
                "{what}: /{} in the image is not an ordinary directory",
                partial.display()
            )));
        }
        cur = fd;
    }
    Ok(Some(cur))
}

/// A mount point of the runtime (`/proc`, `/dev/pts`, …): an ordinary
/// directory of the image, made where absent (see [`walk_plain`]).
fn mount_point(root: &OwnedFd, rel: &Path) -> Result<OwnedFd, ChildError> {
    let what = format!("mount point /{}", rel.display());
    walk_plain(root, rel, Missing::Create, &what)?.ok_or_else(|| refuse(format!("{what}: not found")))
}

/// Whether a path inside the root is the root itself or at or below a
/// kernel filesystem the runtime mounts (`/proc`, `/sys`, `/dev`).
pub(crate) fn reserved_destination(rel: &Path) -> bool {
    match rel.iter().next() {
        None => true,
        Some(first) => ["proc", "sys", "dev"].iter().any(|r| first == *r),
    }
}

/// The target of a bind mount (a volume, `/etc/hosts`, …): resolved
/// inside the root, links included, as docker does, but refused where it
/// lands on the root or on `/proc`, `/sys` or `/dev` (runc's rule).
fn bind_target(root: &OwnedFd, root_path: &Path, m: &PreparedMount) -> Result<OwnedFd, ChildError> {
    let show = format!("/{}", m.dest.display());
    if reserved_destination(&m.dest) {
        return Err(refuse(format!(
            "invalid mount destination {show}: the root, /proc, /sys and /dev cannot be mounted over"
        )));
    }
    let target = open_in_root(root, &m.dest, m.file).map_err(fail(format!("mounting on {show}")))?;
    let landed = rustix::fs::readlink(fd_path(&target), Vec::new()).map_err(fail(format!("mounting on {show}")))?;
    let inside = Path::new(std::ffi::OsStr::from_bytes(landed.as_bytes()))
        .strip_prefix(root_path)
        .map(Path::to_path_buf);
    match inside {
        Ok(rel) if !reserved_destination(&rel) => Ok(target),
        Ok(rel) => Err(refuse(format!(
            "invalid mount destination {show}: it resolves to /{} through a link in the image",
            rel.display()
        ))),
        Err(_) => Err(refuse(format!(
            "invalid mount destination {show}: it resolves outside the root"
        ))),
    }
}

/// A masked or read-only path, found from the root of the kernel
/// filesystem mounted where it lies (else from the container's root),
/// without following links. `None` when the kernel has no such file.
fn open_below(root: &OwnedFd, fresh: &[(PathBuf, OwnedFd)], path: &Path) -> Result<Option<OwnedFd>, ChildError> {
    let (base, rel) = fresh
        .iter()
        .filter_map(|(dest, fd)| path.strip_prefix(dest).ok().map(|rel| (fd, rel)))
        .max_by_key(|(_, rel)| std::cmp::Reverse(rel.components().count()))
        .unwrap_or((root, path));
    walk_plain(base, rel, Missing::Absent, &format!("/{}", path.display()))
}

/// Mounts a copy of the tree at `from_dir`/`from` on `target` with mount
/// attributes `attrs` set on every mount of the copy before it is attached
/// (`open_tree` + `mount_setattr(AT_RECURSIVE)` + `move_mount`): no
/// submount of a volume escapes `nodev`, `nosuid` or `ro`, and nothing is
/// looked up again by path.
fn attach_copy(
    from_dir: impl rustix::fd::AsFd,
    from: &std::ffi::CStr,
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
    crate::sealed::mount_setattr(&tree, attrs, true)?;
    rustix::mount::move_mount(
        &tree,
        c"",
        target,
        c"",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )?;
    Ok(())
}

/// The child: set up the container and exec. Returns only on failure.
fn child(
    p: &Prepared,
    io: ChildIo,
    terminal: Option<&OwnedFd>,
    err_fd: i32,
) -> Result<std::convert::Infallible, ChildError> {
    use rustix::mount::{mount, mount_bind, mount_change, MountPropagationFlags};
    // Into the container's cgroup before anything is charged or run.
    for procs in &p.cgroup_procs {
        rustix::io::write(procs, b"0").map_err(fail("joining the container's cgroup"))?;
    }
    // Nothing in the container may ptrace or reopen this process while it runs barge code.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    reset_signals();
    if let Some(ns) = &p.netns {
        // SAFETY: setns on a namespace descriptor opened before clone.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err((
                125,
                format!("joining the network namespace: {}", std::io::Error::last_os_error()),
            ));
        }
    }
    rustix::process::setsid().map_err(fail("setsid"))?;
    // barge's own stdio are replaced before anything of the container runs.
    let mut null_stdin = false;
    match io {
        ChildIo::Fds { stdin, stdout, stderr } => {
            match stdin {
                Some(stdin) => rustix::stdio::dup2_stdin(&stdin).map_err(fail("stdin"))?,
                // Opened once inside the root, below.
                None => null_stdin = true,
            }
            rustix::stdio::dup2_stdout(&stdout).map_err(fail("stdout"))?;
            rustix::stdio::dup2_stderr(&stderr).map_err(fail("stderr"))?;
        }
        // Opened after pivot_root, from the container's own /dev/pts.
        ChildIo::Terminal => {}
    }

    // Our mounts stay in our mount namespace.
    mount_change("/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE).map_err(fail("making / private"))?;
    rustix::process::chdir(&p.snapshots_dir).map_err(fail(format!("entering {}", p.snapshots_dir.display())))?;
    // nodev everywhere the container can create files: a device node it
    // makes (it holds CAP_MKNOD, as in docker) opens nothing. The few devices
    // it needs are the host's own nodes, bound into /dev (see `make_dev`).
    mount(
        "overlay",
        &p.rootfs,
        "overlay",
        MountFlags::NODEV,
        p.overlay_data.as_c_str(),
    )
    .map_err(fail("mounting the root filesystem (overlay)"))?;
    let root = rustix::fs::open(
        &p.rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail("opening the root"))?;

    // Where the root is, as the kernel names it: bind destinations are checked against it.
    let root_path = rustix::fs::readlink(fd_path(&root), Vec::new()).map_err(fail("locating the root"))?;
    let root_path = Path::new(std::ffi::OsStr::from_bytes(root_path.as_bytes()));
    // The root of each kernel filesystem mounted below: masks and
    // read-only paths are found from these, never by a path from the root.
    let mut fresh: Vec<(PathBuf, OwnedFd)> = Vec::new();
    for m in &p.mounts {
        let what = format!("mounting {} on /{}", m.kind, m.dest.display());
        if m.bind {
            let target = bind_target(&root, root_path, m)?;
            let mut attrs = crate::sealed::MOUNT_ATTR_NODEV | crate::sealed::MOUNT_ATTR_NOSUID;
            if m.read_only {
                attrs |= crate::sealed::MOUNT_ATTR_RDONLY;
            }
            if m.flags.contains(MountFlags::NOEXEC) {
                attrs |= crate::sealed::MOUNT_ATTR_NOEXEC;
            }
            attach_copy(
                rustix::fs::CWD,
                m.source.as_c_str(),
                m.flags.contains(MountFlags::REC),
                attrs,
                &target,
            )
            .map_err(|e| (125, format!("{what}: {e}")))?;
        } else {
            // A kernel filesystem goes on an ordinary directory of the
            // image, never through a link (runc's rule): a /proc that is a
            // link elsewhere would leave the real mount point unmasked.
            let target = mount_point(&root, &m.dest)?;
            let flags = m.flags
                | if m.read_only {
                    MountFlags::RDONLY
                } else {
                    MountFlags::empty()
                }
                | if m.dest == Path::new("dev") {
                    MountFlags::NODEV
                } else {
                    MountFlags::empty()
                };
            mount(
                m.source.as_c_str(),
                fd_path(&target),
                m.kind.as_str(),
                flags,
                m.data.as_c_str(),
            )
            .map_err(fail(&what))?;
            // The same walk now ends on the new mount's root.
            let mounted = mount_point(&root, &m.dest)?;
            if m.dest == Path::new("dev") {
                make_dev(&mounted)?;
            }
            fresh.push((m.dest.clone(), mounted));
        }
    }
    for path in &p.masked {
        let Some(target) = open_below(&root, &fresh, path)? else {
            continue;
        };
        let is_dir = rustix::fs::fstat(&target)
            .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
            .map_err(fail(format!("masking /{}", path.display())))?;
        let what = format!("masking /{}", path.display());
        if is_dir {
            mount("tmpfs", fd_path(&target), "tmpfs", MountFlags::RDONLY, c"").map_err(fail(&what))?;
        } else {
            mount_bind("/dev/null", fd_path(&target)).map_err(fail(&what))?;
        }
    }
    for path in &p.readonly {
        let Some(target) = open_below(&root, &fresh, path)? else {
            continue;
        };
        let attrs = crate::sealed::MOUNT_ATTR_RDONLY
            | crate::sealed::MOUNT_ATTR_NOSUID
            | crate::sealed::MOUNT_ATTR_NODEV
            | crate::sealed::MOUNT_ATTR_NOEXEC;
        attach_copy(&target, c"", true, attrs, &target)
            .map_err(|e| (125, format!("making /{} read-only: {e}", path.display())))?;
    }
    if p.readonly_root {
        crate::sealed::mount_setattr(&root, crate::sealed::MOUNT_ATTR_RDONLY, false)
            .map_err(|e| (125, format!("making the root read-only: {e}")))?;
    }
    drop(fresh);
    drop(root);

    rustix::process::chdir(&p.rootfs).map_err(fail("entering the root"))?;
    rustix::process::pivot_root(".", ".").map_err(fail("pivot_root"))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH).map_err(fail("detaching the old root"))?;
    rustix::process::chdir("/").map_err(fail("chdir /"))?;

    if let Some(sock) = terminal {
        crate::terminal::attach_child(sock, p.process.uid)?;
    }
    if null_stdin {
        let null = rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(fail("opening /dev/null"))?;
        rustix::stdio::dup2_stdin(&null).map_err(fail("stdin"))?;
    }
    rustix::system::sethostname(&p.hostname).map_err(fail("setting the hostname"))?;
    if p.loopback_up {
        loopback_up().map_err(|e| (125, format!("bringing up lo: {e}")))?;
    }
    let program = p.process.enter()?;
    if let Some(exe) = &p.init {
        return Err(exec_init(&p.process, &program, err_fd, exe));
    }
    Err(p.process.exec(&program))
}

/// Sets `IFF_UP` on `lo` (a new network namespace starts with it down).
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: an ifreq on the stack, a datagram socket closed at the end.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut r = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            r = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let e = std::io::Error::last_os_error();
        libc::close(sock);
        if r < 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// Standard devices and links in the container's fresh `/dev`: the host's
/// own nodes bound onto empty files, as /dev itself is `nodev`.
fn make_dev(dev: &OwnedFd) -> Result<(), ChildError> {
    let dev = rustix::fs::openat(
        dev,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail("opening /dev"))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let what = format!("creating /dev/{name}");
        let file = rustix::fs::openat(
            &dev,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .map_err(fail(&what))?;
        rustix::mount::mount_bind(format!("/dev/{name}").as_str(), fd_path(&file)).map_err(fail(&what))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        rustix::fs::symlinkat(target, &dev, name).map_err(fail(format!("creating /dev/{name}")))?;
    }
    Ok(())
}

pub(crate) fn reset_signals() {
    // SAFETY: plain signal-mask and disposition resets in the child.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

impl ProcessPlan {
    /// The bundle's rlimits (`--ulimit`), for the container's command and
    /// every `exec`.
    fn set_rlimits(&self) -> Result<(), ChildError> {
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(1 << 20);
        let limit = rustix::process::Rlimit {
            current: Some(self.nofile.0.min(nr_open)),
            maximum: Some(self.nofile.1.min(nr_open)),
        };
        if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Nofile, limit) {
            // Without CAP_SYS_RESOURCE the hard limit cannot rise: use all of the current one.
            let current = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            let capped = rustix::process::Rlimit {
                current: current.maximum,
                maximum: current.maximum,
            };
            rustix::process::setrlimit(rustix::process::Resource::Nofile, capped)
                .map_err(|_| fail("setting RLIMIT_NOFILE")(e))?;
        }
        for &(resource, soft, hard) in &self.rlimits {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // SAFETY: setrlimit with a valid resource number and an rlimit on the stack.
            if unsafe { libc::setrlimit(resource as _, &limit) } != 0 {
                return Err((
                    125,
                    format!("setting rlimit {resource}: {}", std::io::Error::last_os_error()),
                ));
            }
        }
        Ok(())
    }

    /// In the container: rlimits, working directory (created if missing, as docker
    /// does), the program found on PATH, credentials, capabilities,
    /// `no_new_privs`, every fd but stdio marked close-on-exec, and last
    /// the seccomp filter: nothing but `execve` (of the command, or of
    /// `--init`'s program) runs under it.
    pub(crate) fn enter(&self) -> Result<CString, ChildError> {
        self.set_rlimits()?;
        if let Ok(root) = rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) {
            let rel = self.cwd.strip_prefix("/").unwrap_or(&self.cwd);
            if !rel.as_os_str().is_empty() {
                let _ = open_in_root(&root, rel, false);
            }
        }
        rustix::process::chdir(&self.cwd).map_err(fail(format!(
            "chdir to working directory {:?}",
            self.cwd.display().to_string()
        )))?;
        let program = self.find_program()?;
        self.set_credentials()?;
        rustix::thread::set_no_new_privs(true).map_err(fail("setting no_new_privs"))?;
        // SAFETY: close_range only marks descriptors close-on-exec.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
            )
        };
        if let Some(filter) = &self.seccomp {
            filter.install().map_err(fail("installing the seccomp filter"))?;
        }
        Ok(program)
    }

    /// The command's path: as given when it has a `/`, else found on the container's PATH.
    fn find_program(&self) -> Result<CString, ChildError> {
        let arg0 = self.argv.first().ok_or((125, "no command".to_string()))?;
        let bytes = arg0.as_bytes();
        if bytes.contains(&b'/') {
            return Ok(arg0.clone());
        }
        for dir in &self.path_dirs {
            let mut cand = dir.clone();
            cand.push(b'/');
            cand.extend_from_slice(bytes);
            let path = Path::new(std::ffi::OsStr::from_bytes(&cand));
            if let Ok(md) = std::fs::metadata(path) {
                use std::os::unix::fs::PermissionsExt;
                if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                    return CString::new(cand).map_err(|_| (125, "bad path".to_string()));
                }
            }
        }
        Err((
            127,
            format!(
                "exec: {:?}: executable file not found in $PATH",
                String::from_utf8_lossy(bytes)
            ),
        ))
    }

    /// Drops every capability not in `keep` from the bounding set (which
    /// needs CAP_SETPCAP in the effective set).
    fn limit_bounding_set(keep: u64) -> Result<(), ChildError> {
        use rustix::thread::CapabilitySet;
        let last = crate::caps::last_cap();
        for cap in 0..=last.min(63) {
            if keep & (1 << cap) == 0 {
                match rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(1 << cap)) {
                    Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                    Err(e) => return Err(fail("dropping capabilities")(e)),
                }
            }
        }
        Ok(())
    }

    /// Keeps only the capabilities in `keep`: bounding, effective and
    /// permitted sets (the uid does not change here).
    fn limit_capabilities(keep: u64) -> Result<(), ChildError> {
        use rustix::thread::{CapabilitySet, CapabilitySets};
        Self::limit_bounding_set(keep)?;
        let current = rustix::thread::capabilities(None).map_err(fail("reading capabilities"))?;
        let set = CapabilitySet::from_bits_retain(keep);
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: current.effective & set,
                permitted: current.permitted & set,
                inheritable: CapabilitySet::empty(),
            },
        )
        .map_err(fail("dropping capabilities"))
    }

    /// Before a process enters a container's PID namespace, where the
    /// container can see it: no capability beyond the container's own
    /// (and those taking the container's user and bounding set need), and
    /// no copy of barge's environment, so that a container allowed to
    /// ptrace gains nothing by taking it over.
    pub(crate) fn confine(&self) -> Result<(), ChildError> {
        // CAP_SETGID, CAP_SETUID, and CAP_SETPCAP to finish the bounding set.
        const SETUP: u64 = (1 << 6) | (1 << 7) | (1 << 8);
        Self::limit_capabilities(self.caps | SETUP)?;
        scrub_environment();
        Ok(())
    }

    fn set_credentials(&self) -> Result<(), ChildError> {
        use rustix::thread::{CapabilitySet, CapabilitySets};
        Self::limit_bounding_set(self.caps)?;
        let groups: Vec<rustix::process::Gid> =
            self.groups.iter().map(|g| rustix::process::Gid::from_raw(*g)).collect();
        rustix::thread::set_thread_groups(&groups).map_err(fail("setgroups"))?;
        let gid = rustix::process::Gid::from_raw(self.gid);
        rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(fail(format!("setgid {}", self.gid)))?;
        let uid = rustix::process::Uid::from_raw(self.uid);
        rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(fail(format!("setuid {}", self.uid)))?;
        let set = if self.uid == 0 {
            CapabilitySet::from_bits_retain(self.caps)
        } else {
            CapabilitySet::empty()
        };
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: set,
                permitted: set,
                inheritable: CapabilitySet::empty(),
            },
        )
        .map_err(fail("setting capabilities"))?;
        let _ = rustix::thread::clear_ambient_capability_set();
        Ok(())
    }

    /// execve; returns only the error, with docker's exit status for it.
    pub(crate) fn exec(&self, program: &CString) -> ChildError {
        execve(program, &self.argv, &self.envp)
    }
}

/// Zeroes this (forked) process's environment strings in place.
fn scrub_environment() {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: walking the NUL-terminated environ array of this
    // single-threaded child and zeroing each string within its length.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let s = *p;
            std::ptr::write_bytes(s, 0, libc::strlen(s));
            p = p.add(1);
        }
    }
}

/// The pointers of `strings` and a NULL, as execve takes them; valid
/// while `strings` lives.
pub(crate) fn nul_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings.iter().map(|s| s.as_ptr()).chain([std::ptr::null()]).collect()
}

/// execve; returns only the error, with docker's exit status for it.
pub(crate) fn execve(program: &CString, argv: &[CString], envp: &[CString]) -> ChildError {
    let argv = nul_terminated(argv);
    let envp = nul_terminated(envp);
    // SAFETY: NUL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let e = std::io::Error::last_os_error();
    let name = String::from_utf8_lossy(program.as_bytes()).into_owned();
    match e.raw_os_error() {
        Some(libc::ENOENT) => (127, format!("exec: {name:?}: no such file or directory")),
        Some(libc::EACCES) => (126, format!("exec: {name:?}: permission denied")),
        _ => (126, format!("exec: {name:?}: {e}")),
    }
}

/// `--init`: PID 1 becomes barge's static init (`init/init.c`), executed
/// from the sealed memfd `exe` with the container's environment: it forks
/// and execs `program`, whose exec failure it reports on `err_fd`.
fn exec_init(p: &ProcessPlan, program: &CString, err_fd: i32, exe: &OwnedFd) -> ChildError {
    // The error pipe must outlive this exec (the init's child closes it on its own exec).
    // SAFETY: clearing FD_CLOEXEC on a descriptor we own.
    unsafe { libc::fcntl(err_fd, libc::F_SETFD, 0) };
    let mut argv = vec![
        CString::from(c"barge-init"),
        CString::new(err_fd.to_string()).unwrap_or_default(),
        program.clone(),
    ];
    argv.extend(p.argv.iter().cloned());
    (
        125,
        format!("starting the init: {}", crate::sealed::execveat(exe, &argv, &p.envp)),
    )
}

/// Starts the container with an external OCI runtime: the overlay is
/// mounted on the bundle's `rootfs` on the host first (unmounted again when
/// the container is cleaned up).
fn external_start(c: &Container, io: ChildIo) -> Result<Started, RuntimeError> {
    let runtime = c.meta.runtime.clone().unwrap_or_default();
    let rootfs = c.dir.join("rootfs");
    let overlay = crate::overlay_options(&c.meta.lower_dirs, Some((&c.dir.join("upper"), &c.dir.join("work"))))?;
    let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
    rustix::mount::mount(
        "overlay",
        &rootfs,
        "overlay",
        MountFlags::empty(),
        cstr(overlay)?.as_c_str(),
    )
    .map_err(|e| io_err(format!("mounting {}", rootfs.display()))(e.into()))?;
    let mut cmd = std::process::Command::new(&runtime);
    cmd.arg("--root")
        .arg(external_state_dir(c))
        .args(["run", "--bundle"])
        .arg(&c.dir)
        .arg(c.id());
    match io {
        ChildIo::Fds { stdin, stdout, stderr } => {
            let stdin = match stdin {
                Some(fd) => fd,
                // An empty pipe, not the host's /dev/null.
                None => {
                    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                        .map_err(|e| io_err("creating a pipe")(e.into()))?
                        .0
                }
            };
            cmd.stdin(std::process::Stdio::from(stdin))
                .stdout(std::process::Stdio::from(stdout))
                .stderr(std::process::Stdio::from(stderr));
        }
        ChildIo::Terminal => {
            return Err(RuntimeError::External {
                runtime,
                message: "a terminal (-t) is not supported with --runtime yet".into(),
            })
        }
    }
    let child = cmd.spawn().map_err(|e| RuntimeError::External {
        runtime: runtime.clone(),
        message: e.to_string(),
    })?;
    let pid = child.id() as i32;
    // The Child handle is not waited on: the pidfd and waitid do that.
    std::mem::forget(child);
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or_else(|| RuntimeError::Corrupt("pid 0".into()))?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| io_err("watching the runtime process")(e.into()))?;
    Ok(Started {
        pid,
        pidfd,
        start_time: process_start_time(pid).unwrap_or(0),
        terminal: None,
    })
}

fn external_state_dir(c: &Container) -> PathBuf {
    c.dir
        .parent()
        .and_then(Path::parent)
        .map(|root| root.join("runc"))
        .unwrap_or_else(|| PathBuf::from("/run/barge-runc"))
}

/// After an external runtime's container ended: its state and our rootfs mount go.
pub fn external_cleanup(c: &Container) {
    if let Some(runtime) = &c.meta.runtime {
        let _ = std::process::Command::new(runtime)
            .arg("--root")
            .arg(external_state_dir(c))
            .args(["delete", "--force", c.id()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        // runc leaves the (empty) `barge/` parents of its cgroups behind.
        crate::cgroups::remove_empty_barge_parents();
    }
    let _ = rustix::mount::unmount(c.dir.join("rootfs"), rustix::mount::UnmountFlags::DETACH);
}

/// Sends a signal to a container's main process, checking it is still ours.
pub fn signal(c: &Container, st: &crate::State, sig: i32) -> Result<(), RuntimeError> {
    let (Some(pid), Some(start)) = (st.pid, st.pid_start) else {
        return Err(RuntimeError::NotRunning(c.meta.name.clone()));
    };
    let fd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or_else(|| RuntimeError::NotRunning(c.meta.name.clone()))?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|_| RuntimeError::NotRunning(c.meta.name.clone()))?;
    if process_start_time(pid) != Some(start) {
        return Err(RuntimeError::NotRunning(c.meta.name.clone()));
    }
    if c.meta.runtime.is_some() {
        // runc run forwards signals to the container; SIGKILL cannot be forwarded, so ask runc.
        if sig == libc::SIGKILL {
            let _ = std::process::Command::new(c.meta.runtime.as_deref().unwrap_or("runc"))
                .arg("--root")
                .arg(external_state_dir(c))
                .args(["kill", c.id(), "KILL"])
                .status();
        }
    }
    // SAFETY: pidfd_send_signal on a pidfd we own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_fd().as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(io_err("sending the signal")(std::io::Error::last_os_error()));
    }
    if sig == libc::SIGKILL && c.meta.runtime.is_none() {
        // Every process of the container, not only its PID 1.
        if let Some(cg) = crate::cgroups::Cgroup::load(&c.dir) {
            cg.kill_all();
        }
    }
    Ok(())
}

/// Signal numbers from docker's spellings: `TERM`, `SIGTERM`, `15`.
pub fn parse_signal(s: &str) -> Result<i32, RuntimeError> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(RuntimeError::BadSignal(s.to_string()));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return Err(RuntimeError::BadSignal(s.to_string())),
    };
    Ok(n)
}
