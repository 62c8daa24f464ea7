//! The clone child: a container's first process, from `clone` to `execve`.
//!
//! [`Plan::new`] prepares everything that allocates from the bundle;
//! [`spawn`] `clone`s with new namespaces. The child is PID 1 of its PID
//! namespace; barge places it in the cgroup it is given while it mounts the overlay root and
//! the bundle's mounts inside its own mount namespace, masks and makes
//! read-only what the bundle says, `pivot_root`s, sets hostname, rlimits,
//! user, capabilities and `no_new_privs`, marks every other fd
//! close-on-exec and `execve`s. Until `execve` it is non-dumpable, so
//! nothing in the container can ptrace or reopen it. Failures travel back
//! on a close-on-exec pipe as `<exit code>:<message>`; a clean EOF means the
//! command is running.
//!
//! The parent must be single-threaded when it calls [`spawn`] (barge is:
//! pulls join their threads first): the child allocates before `execve`.

use crate::process::{
    fail, process_start_time, run_child, started_or_reaped, ChildError, ChildIo, ProcessPlan, Started,
};
use crate::spec::Spec;
use crate::sys::mounts::{Kernel, Mounts};
use crate::sys::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use crate::{cstr, io_err, RunnerError};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::MountFlags;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

/// Everything the child needs, computed before `clone`.
pub struct Plan {
    rootfs: PathBuf,
    snapshots_dir: PathBuf,
    overlay_data: CString,
    /// [`Plan::volatile_upper`]: the options without `volatile`, for a
    /// kernel that does not know it (before 5.10).
    overlay_fallback: Option<CString>,
    /// The root is already mounted on `rootfs` (fuse-overlayfs, rootless):
    /// the child mounts no overlay.
    premounted: bool,
    /// In a user namespace (rootless).
    rootless: bool,
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
    /// How the child gets into the container's cgroup.
    pub cgroup: CgroupJoin,
    /// A new network namespace (else the host's, or `netns`).
    new_net: bool,
    /// `linux.sysctl`: files below the container's `/proc/sys` (relative
    /// to it) and what is written to each.
    sysctls: Vec<(PathBuf, Vec<u8>)>,
    /// The PID namespace: new, the host's, or one joined (`--pid`).
    pid_ns: Ns,
    /// The IPC namespace: new, the host's, or one joined (`--ipc`).
    ipc_ns: Ns,
    /// The mount and UTS namespaces: new, or one an OCI bundle names.
    mnt_ns: Ns,
    uts_ns: Ns,
    /// `--device`: the host's nodes bound in the container's /dev (path
    /// below /dev, host path).
    devices: Vec<(PathBuf, PathBuf)>,
    /// An OCI bundle's device nodes that are not the host's: made here.
    nodes: Vec<DeviceNode>,
    /// A prepared root directory (an OCI bundle's `root.path`, opened
    /// before `clone`) bound on itself instead of the overlay.
    root_dir: Option<OwnedFd>,
    /// `barge-runtime create`: the exec fifo the process opens for writing
    /// (so blocks until `start` reads it) after its setup, before `execve`.
    start_gate: Option<OwnedFd>,
    /// A new cgroup namespace, made once the process is in its cgroup.
    new_cgroup_ns: bool,
    /// An OCI bundle's user namespace: its uid and gid maps (`0 1000 1`
    /// lines), written by [`spawn`] once the process is cloned into it.
    user_maps: Option<(String, String)>,
}

/// A namespace of the container: a new one, the host's (the bundle has no
/// entry of its kind), or the one a path names, opened before `clone`.
enum Ns {
    New,
    Host,
    Join(OwnedFd),
}

impl Ns {
    /// The bundle's entry of `kind`, runc's way.
    fn of(spec: &Spec, kind: crate::spec::LinuxNamespaceType) -> Result<Ns, RunnerError> {
        let entry = crate::spec::linux(spec)?
            .namespaces()
            .iter()
            .flatten()
            .find(|n| n.typ() == kind);
        Ok(match entry.map(|n| n.path().as_ref()) {
            None => Ns::Host,
            Some(None) => Ns::New,
            Some(Some(path)) => {
                // Links are followed (`/proc/PID/ns/*` are links); what
                // they name must be a namespace of this kind.
                let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| io_err(format!("opening the namespace {}", path.display()))(e.into()))?;
                match crate::sys::namespace_type(&fd) {
                    Ok(t) if t == clone_flag(kind) => Ns::Join(fd),
                    _ => {
                        return Err(RunnerError::Corrupt(format!(
                            "{} is not a {kind:?} namespace",
                            path.display()
                        )))
                    }
                }
            }
        })
    }

    /// The namespace to join, if one.
    fn joined(&self) -> Option<&OwnedFd> {
        match self {
            Ns::Join(fd) => Some(fd),
            _ => None,
        }
    }

    /// The entry of `kind` for the mount and UTS namespaces, which the
    /// runner always has: one to join, else a new one.
    fn own(spec: &Spec, kind: crate::spec::LinuxNamespaceType) -> Result<Ns, RunnerError> {
        Ok(match Ns::of(spec, kind)? {
            Ns::Join(fd) => Ns::Join(fd),
            _ => Ns::New,
        })
    }
}

/// The `clone` flag of a namespace kind.
fn clone_flag(kind: crate::spec::LinuxNamespaceType) -> i32 {
    use crate::spec::LinuxNamespaceType as T;
    match kind {
        T::Mount => libc::CLONE_NEWNS,
        T::Uts => libc::CLONE_NEWUTS,
        T::Ipc => libc::CLONE_NEWIPC,
        T::Pid => libc::CLONE_NEWPID,
        T::Network => libc::CLONE_NEWNET,
        T::User => libc::CLONE_NEWUSER,
        T::Cgroup => libc::CLONE_NEWCGROUP,
        T::Time => libc::CLONE_NEWTIME,
    }
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

impl Plan {
    /// The plan for the bundle at `bundle` whose root is an overlay of
    /// `lower_dirs` (topmost first) with the bundle's `upper` and `work`;
    /// `init` runs barge's init as PID 1.
    pub fn new(spec: &Spec, bundle: &Path, lower_dirs: &[PathBuf], init: bool) -> Result<Plan, RunnerError> {
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| RunnerError::Corrupt("the bundle has no root".into()))?;
        let linux = crate::spec::linux(spec)?;
        let rootfs = bundle.join(root.path());
        // The child enters `snapshots_dir` before mounting.
        let (snapshots_dir, overlay) = if lower_dirs.is_empty() {
            (PathBuf::from("/"), String::new())
        } else {
            let (dir, lowers) = crate::relative_lowers(lower_dirs);
            let upper = (bundle.join("upper"), bundle.join("work"));
            (dir, crate::overlay_options(&lowers, Some((&upper.0, &upper.1)))?)
        };
        let mut mounts = Vec::new();
        for m in spec.mounts().iter().flatten() {
            // Binds get nodev and nosuid on every submount when attached (`attach_copy`).
            let (flags, data, bind, ro) = mount_flags(m.options().as_deref().unwrap_or_default());
            let source = m.source().as_deref().unwrap_or(Path::new(""));
            let file = bind && source.is_file();
            mounts.push(PreparedMount {
                dest: m
                    .destination()
                    .strip_prefix("/")
                    .unwrap_or(m.destination())
                    .to_path_buf(),
                kind: m.typ().clone().unwrap_or_default(),
                source: cstr(source.as_os_str().as_bytes())?,
                flags,
                data: cstr(data)?,
                bind,
                file,
                read_only: ro,
            });
        }
        let relative = |paths: &Option<Vec<String>>| {
            paths
                .iter()
                .flatten()
                .map(|s| PathBuf::from(s.trim_start_matches('/')))
                .collect()
        };
        let network = crate::spec::network_namespace(spec);
        Ok(Plan {
            rootfs,
            snapshots_dir,
            overlay_data: cstr(overlay)?,
            overlay_fallback: None,
            premounted: false,
            rootless: false,
            mounts,
            masked: relative(linux.masked_paths()),
            readonly: relative(linux.readonly_paths()),
            readonly_root: root.readonly().unwrap_or(false),
            hostname: spec.hostname().as_deref().unwrap_or_default().as_bytes().to_vec(),
            process: ProcessPlan::new(crate::spec::process(spec)?, linux.seccomp().as_ref())?,
            init: init.then(crate::sealed::init_program).transpose()?,
            loopback_up: network == Some(None),
            netns: match network {
                Some(Some(path)) => Some(
                    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                        .map_err(|e| io_err(format!("opening the network namespace {}", path.display()))(e.into()))?,
                ),
                _ => None,
            },
            cgroup: CgroupJoin::None,
            new_net: network == Some(None),
            sysctls: sysctl_files(linux.sysctl().as_ref())?,
            pid_ns: Ns::of(spec, crate::spec::LinuxNamespaceType::Pid)?,
            ipc_ns: Ns::of(spec, crate::spec::LinuxNamespaceType::Ipc)?,
            mnt_ns: Ns::own(spec, crate::spec::LinuxNamespaceType::Mount)?,
            uts_ns: Ns::own(spec, crate::spec::LinuxNamespaceType::Uts)?,
            devices: Vec::new(),
            nodes: Vec::new(),
            root_dir: None,
            start_gate: None,
            new_cgroup_ns: false,
            user_maps: None,
        })
    }

    /// The plan for any OCI bundle whose root is a directory (`root.path`,
    /// relative to `bundle` or absolute; links in it are the bundle
    /// author's, followed once here): the child binds that directory on
    /// itself (nodev, as the overlay) in its own mount namespace, checks
    /// it is still the directory opened here, and builds the root on it as
    /// for barge's own containers.
    pub fn for_directory(spec: &Spec, bundle: &Path) -> Result<Plan, RunnerError> {
        let mut plan = Plan::new(spec, bundle, &[], false)?;
        let dir = rustix::fs::open(
            &plan.rootfs,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(format!("opening the root {}", plan.rootfs.display()))(e.into()))?;
        let real =
            rustix::fs::readlink(fd_path(&dir), Vec::new()).map_err(|e| io_err("locating the root")(e.into()))?;
        plan.rootfs = PathBuf::from(std::ffi::OsStr::from_bytes(real.as_bytes()));
        plan.root_dir = Some(dir);
        plan.new_cgroup_ns = matches!(Ns::of(spec, crate::spec::LinuxNamespaceType::Cgroup)?, Ns::New);
        Ok(plan)
    }

    /// Makes the process wait, once set up, until the fifo `fifo` (an
    /// `O_PATH` descriptor) is opened for reading: `create`, then `start`.
    /// [`spawn`] returns when the process waits there.
    pub fn gate_start(&mut self, fifo: OwnedFd) {
        self.start_gate = Some(fifo);
    }
}

impl Plan {
    /// The host's device nodes to bind in the container's fresh /dev:
    /// (path below /dev, host path). The host path is the operator's; the
    /// container's is made in the fresh tmpfs, never through the image.
    pub fn bind_devices(&mut self, devices: Vec<(PathBuf, PathBuf)>) {
        self.devices = devices;
    }

    /// Device nodes to make in the container's fresh /dev (`barge-runtime`:
    /// a bundle's `linux.devices` that the host does not have at that path).
    pub fn make_devices(&mut self, nodes: Vec<DeviceNode>) {
        self.nodes = nodes;
    }

    /// A new user namespace with these ID maps (`inside outside count`
    /// lines; container root must be mapped). The process waits until
    /// [`spawn`] has written them, then becomes the namespace's root for
    /// its setup; the host's sysfs stands in where a new one may not be
    /// mounted, as for rootless barge.
    pub fn user_namespace(&mut self, uid_map: String, gid_map: String) {
        self.user_maps = Some((uid_map, gid_map));
        self.rootless = true;
    }

    /// Rootless (in a user namespace): the kernel overlay keeps its
    /// metadata in `user.overlay.*` xattrs (`userxattr`, which is what the
    /// store's unprivileged applier writes), or with `premounted` the
    /// caller has mounted the root on `rootfs` already (fuse-overlayfs).
    pub fn rootless(&mut self, premounted: bool) -> Result<(), RunnerError> {
        let mut data = self.overlay_data.as_bytes().to_vec();
        data.extend_from_slice(b",userxattr");
        crate::check_options_len(&data)?;
        self.overlay_data = cstr(data)?;
        self.premounted = premounted;
        self.rootless = true;
        Ok(())
    }

    /// The container's writable layer is thrown away when it exits (`--rm`):
    /// the overlay is mounted `volatile`, so that its unmount (when the
    /// container's mount namespace dies with its last process) does not
    /// `syncfs` the store's whole filesystem, nor `fsync` in the container
    /// reach the disk. A kernel without the option (before 5.10) mounts it
    /// as before. Call after [`Plan::rootless`].
    pub fn volatile_upper(&mut self) -> Result<(), RunnerError> {
        if self.premounted || self.root_dir.is_some() || self.overlay_data.is_empty() {
            return Ok(());
        }
        let mut data = self.overlay_data.as_bytes().to_vec();
        data.extend_from_slice(b",volatile");
        crate::check_options_len(&data)?;
        self.overlay_fallback = Some(std::mem::replace(&mut self.overlay_data, cstr(data)?));
        Ok(())
    }
}

/// Starts the container's first process as `plan` says.
pub fn spawn(plan: &Plan, io: ChildIo) -> Result<Started, RunnerError> {
    let (err_read, err_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| io_err("creating a pipe")(e.into()))?;
    let terminal = match io {
        ChildIo::Terminal => Some(crate::terminal::socketpair().map_err(io_err("creating a socket pair"))?),
        _ => None,
    };
    // A user namespace's maps: the child waits on this pipe for them.
    let maps_pipe = match &plan.user_maps {
        Some(_) => Some(
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| io_err("creating a pipe")(e.into()))?,
        ),
        None => None,
    };
    let new = crate::sys::NewNamespaces {
        user: plan.user_maps.is_some(),
        mount: matches!(plan.mnt_ns, Ns::New),
        uts: matches!(plan.uts_ns, Ns::New),
        net: plan.new_net,
        pid: matches!(plan.pid_ns, Ns::New),
        ipc: matches!(plan.ipc_ns, Ns::New),
        sibling: false,
    };
    // `create`: the child says on a copy of the error pipe when it waits
    // for `start` (a NUL byte), as the pipe stays open until `execve`.
    let ready = match &plan.start_gate {
        Some(_) => {
            Some(rustix::io::fcntl_dupfd_cloexec(&err_write, 3).map_err(|e| io_err("creating a pipe")(e.into()))?)
        }
        None => None,
    };
    // cgroup v2: barge moves the child into its cgroup while the child
    // builds its root (see `CgroupJoin::ByParent`); the child waits for the
    // byte on this pipe before it takes the container's credentials.
    let joined = match &plan.cgroup {
        CgroupJoin::ByParent(files) if !files.is_empty() => Some(
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| io_err("creating a pipe")(e.into()))?,
        ),
        _ => None,
    };
    let forked = match &plan.pid_ns {
        Ns::Join(ns) => clone_in_pid_namespace(ns, new),
        _ => crate::sys::clone_into_namespaces(new),
    };
    let forked = forked.map_err(io_err("creating the container's namespaces (clone)"))?;
    let pid = match forked {
        crate::sys::Forked::Parent { child } => child,
        crate::sys::Forked::Child => {
            drop(err_read);
            let sock = terminal.map(|(ours, theirs)| {
                drop(ours);
                theirs
            });
            let maps_ready = maps_pipe.map(|(read, write)| {
                drop(write);
                read
            });
            let err_fd = err_write.as_raw_fd();
            let joined = joined.map(|(read, _)| read);
            run_child(err_write, || {
                child(plan, io, sock.as_ref(), err_fd, ready, maps_ready.as_ref(), joined)
            });
        }
    };
    if let (Some((uid_map, gid_map)), Some((_, write))) = (&plan.user_maps, &maps_pipe) {
        // setgroups stays allowed: the maps are written by the host's root.
        let mapped = crate::userns::write_maps(pid, uid_map, gid_map, false)
            .map_err(|e| match e {
                crate::userns::UserNsError::Io { context, source } => RunnerError::Io { context, source },
                other => RunnerError::Corrupt(other.to_string()),
            })
            .and_then(|()| {
                rustix::io::write(write, b"m")
                    .map(drop)
                    .map_err(|e| io_err("releasing the container's process")(e.into()))
            });
        if let Err(e) = mapped {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            }
            return Err(e);
        }
    }
    drop(maps_pipe);
    drop(err_write);
    drop(io);
    if let Some((_, joined)) = joined {
        join_cgroup(plan, pid, joined, &err_read)?;
    }
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or_else(|| RunnerError::Corrupt("pid 0".into()))?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| io_err("watching the container process")(e.into()))?;
    let start_time = process_start_time(pid).unwrap_or(0);
    let master = crate::terminal::master_from(terminal)?;
    drop(ready);
    match plan.start_gate {
        Some(_) => crate::process::waiting_or_reaped(pid, err_read)?,
        None => started_or_reaped(pid, err_read)?,
    }
    Ok(Started {
        pid,
        pidfd,
        start_time,
        terminal: master,
    })
}

/// Writes the child's `pid` into each of the cgroup's `cgroup.procs`, then
/// lets it go on (a byte on `joined`). On failure the child is killed and
/// reaped, and the failure is its own message when it wrote one first.
fn join_cgroup(plan: &Plan, pid: i32, joined: OwnedFd, err_read: &OwnedFd) -> Result<(), RunnerError> {
    let line = pid.to_string();
    let written = plan
        .cgroup
        .files()
        .iter()
        .try_for_each(|procs| rustix::io::write(procs, line.as_bytes()).map(drop))
        .and_then(|()| rustix::io::write(&joined, &[1]).map(drop));
    let Err(e) = written else {
        return Ok(());
    };
    drop(joined);
    let child = rustix::process::Pid::from_raw(pid);
    if let Some(child) = child {
        let _ = rustix::process::kill_process(child, rustix::process::Signal::KILL);
    }
    let mut msg = String::new();
    if let Ok(read) = err_read.try_clone() {
        let _ = std::io::Read::read_to_string(&mut std::fs::File::from(read), &mut msg);
    }
    let _ = rustix::process::waitpid(child, rustix::process::WaitOptions::empty());
    let (code, message) = match msg.is_empty() {
        true => (125, format!("joining the container's cgroup: {e}")),
        false => crate::process::parse_failure(msg),
    };
    Err(RunnerError::Start { code, message })
}

/// How the container's first process gets into its cgroup.
#[derive(Debug, Default)]
pub enum CgroupJoin {
    /// No cgroup.
    #[default]
    None,
    /// cgroup v1's `tasks` files, open for writing: the child, still one
    /// thread, writes `0` to each first thing. A thread that moves itself
    /// takes no global lock; moving a whole process (`cgroup.procs`) takes
    /// one whose first taking after a quiet spell waits for an RCU grace
    /// period (8–16 ms on this project's test machine).
    Itself(Vec<OwnedFd>),
    /// cgroup v2's `cgroup.procs` files: barge writes the child's PID to
    /// each while the child mounts its root (the grace period overlaps the
    /// mounts), and the child waits for that before its credentials.
    ByParent(Vec<OwnedFd>),
}

impl CgroupJoin {
    /// The files, whoever writes them.
    pub fn files(&self) -> &[OwnedFd] {
        match self {
            CgroupJoin::None => &[],
            CgroupJoin::Itself(files) | CgroupJoin::ByParent(files) => files,
        }
    }
}

/// In the child, first thing: moves itself into its cgroup when it is the
/// one to (`CgroupJoin::Itself`).
fn join_cgroup_itself(join: &CgroupJoin) -> Result<(), ChildError> {
    if let CgroupJoin::Itself(files) = join {
        for file in files {
            rustix::io::write(file, b"0").map_err(fail("joining the container's cgroup"))?;
        }
    }
    Ok(())
}

/// In the child: waits until barge has placed it in its cgroup.
fn wait_for_cgroup(joined: Option<OwnedFd>) -> Result<(), ChildError> {
    let Some(joined) = joined else {
        return Ok(());
    };
    let mut byte = [0u8; 1];
    match rustix::io::read(&joined, &mut byte) {
        Ok(1) => Ok(()),
        _ => Err(refuse(
            "joining the container's cgroup: barge did not place the process".into(),
        )),
    }
}

/// The clone of [`spawn`], born in the PID namespace `ns`: a helper
/// process joins it (`setns` changes the namespace of a process's
/// children only) and clones with CLONE_PARENT, so that the child is
/// barge's own, as without a namespace to join, then reports its PID and
/// exits. barge itself never changes namespace (rootless, it could not
/// return to its own: the host's root owns it).
fn clone_in_pid_namespace(ns: &OwnedFd, new: crate::sys::NewNamespaces) -> std::io::Result<crate::sys::Forked> {
    use crate::sys::Forked;
    let (report_read, report_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    match crate::sys::fork()? {
        Forked::Child => {
            drop(report_read);
            let cloned = rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::ProcessID),
            )
            .map_err(std::io::Error::from)
            .and_then(|()| crate::sys::clone_into_namespaces(crate::sys::NewNamespaces { sibling: true, ..new }));
            let report = match cloned {
                Ok(Forked::Child) => {
                    drop(report_write);
                    return Ok(Forked::Child);
                }
                Ok(Forked::Parent { child }) => child,
                Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
            };
            let _ = rustix::io::write(&report_write, &report.to_ne_bytes());
            crate::sys::exit(0)
        }
        Forked::Parent { child: helper } => {
            drop(report_write);
            let mut buf = [0u8; 4];
            let read = rustix::io::read(&report_read, &mut buf);
            if let Some(helper) = rustix::process::Pid::from_raw(helper) {
                let _ = rustix::process::waitpid(Some(helper), rustix::process::WaitOptions::empty());
            }
            match (read, i32::from_ne_bytes(buf)) {
                (Ok(4), pid) if pid > 0 => Ok(Forked::Parent { child: pid }),
                (Ok(4), errno) => Err(std::io::Error::from_raw_os_error(-errno)),
                (Ok(_), _) => Err(std::io::Error::other("the helper joining the PID namespace died")),
                (Err(e), _) => Err(e.into()),
            }
        }
    }
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens (creating as needed) a path inside the root, never leaving it.
/// Links are followed inside the root, a dangling one too: what it names
/// is created, as runc's securejoin does.
pub(crate) fn open_in_root(root: &OwnedFd, rel: &Path, create_file: bool) -> Result<OwnedFd, rustix::io::Errno> {
    open_in_root_at_depth(root, rel, create_file, 0)
}

/// `openat2`, asked again while the kernel answers `EAGAIN`: with
/// `RESOLVE_IN_ROOT` it does so when a mount or a rename anywhere on the
/// host raced a `..` of the walk, and openat2(2) says to retry (the same
/// loop as barge-store's `fsutil::openat2`, which this crate cannot use).
fn openat2_retrying(
    root: &OwnedFd,
    path: impl AsRef<Path>,
    flags: OFlags,
    mode: Mode,
    resolve: ResolveFlags,
) -> Result<OwnedFd, rustix::io::Errno> {
    let path = path.as_ref();
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(root, path, flags, mode, resolve) {
            Err(rustix::io::Errno::AGAIN) if tries < 100 => tries += 1,
            other => return other,
        }
    }
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
    let mut dir = openat2_retrying(
        root,
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )?;
    for (i, comp) in comps.iter().enumerate() {
        let partial: PathBuf = comps[..=i].iter().collect();
        let last = i + 1 == comps.len();
        match openat2_retrying(root, &partial, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), IN_ROOT) {
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
                dir = openat2_retrying(root, &partial, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), IN_ROOT)?;
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
pub fn reserved_destination(rel: &Path) -> bool {
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

/// The container's root, as the plan says: the overlay on `rootfs`, each
/// bundle mount (kernel filesystems on ordinary directories of the image,
/// binds resolved inside the root and refused on `/proc`, `/sys`, `/dev`),
/// a fresh `/dev`, masked and read-only paths found from the kernel
/// filesystems' own roots, `--read-only`; then `pivot_root` into it. Every
/// mount call goes through `sys` (the kernel, or a recording fake in tests).
fn mount_root(p: &Plan, sys: &mut impl Mounts) -> Result<(), ChildError> {
    // nodev everywhere the container can create files: a device node it
    // makes (it holds CAP_MKNOD, as in docker) opens nothing. The few devices
    // it needs are the host's own nodes, bound into /dev (see `make_dev`).
    if let Some(opened) = &p.root_dir {
        bind_root_dir(p, opened, sys)?;
    } else if !p.premounted {
        let overlay = |sys: &mut _, data: &CString| {
            Mounts::mount(
                sys,
                c"overlay",
                &p.rootfs,
                "overlay",
                MountFlags::NODEV,
                data.as_c_str(),
            )
        };
        match (overlay(sys, &p.overlay_data), &p.overlay_fallback) {
            (Err(e), Some(plain)) if e.raw_os_error() == Some(libc::EINVAL) => overlay(sys, plain),
            (r, _) => r,
        }
        .map_err(io_fail("mounting the root filesystem (overlay)"))?;
    }
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
            // /dev/shm of the host's or a shared IPC namespace: on the
            // fresh /dev's own directory, which no image link can reach.
            let target = if m.dest == Path::new("dev/shm") {
                mount_point(&root, &m.dest)?
            } else {
                bind_target(&root, root_path, m)?
            };
            let mut attrs = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID;
            if m.read_only {
                attrs |= MOUNT_ATTR_RDONLY;
            }
            if m.flags.contains(MountFlags::NOEXEC) {
                attrs |= MOUNT_ATTR_NOEXEC;
            }
            sys.attach_copy(
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
            let mounted = sys.mount(
                m.source.as_c_str(),
                &fd_path(&target),
                m.kind.as_str(),
                flags,
                m.data.as_c_str(),
            );
            match mounted {
                // Rootless on the host's network: a user namespace may not
                // mount the sysfs of a network namespace it does not own.
                // The host's /sys, read-only, as runc does there; the masks
                // below apply to it as to a fresh one.
                Err(e) if p.rootless && m.kind == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
                    let attrs = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_RDONLY;
                    sys.attach_copy(rustix::fs::CWD, c"/sys", true, attrs, &target)
                        .map_err(|e| (125, format!("{what} (the host's, read-only): {e}")))?;
                }
                r => r.map_err(io_fail(&what))?,
            }
            // The same walk now ends on the new mount's root.
            let mounted = mount_point(&root, &m.dest)?;
            if m.dest == Path::new("dev") {
                make_dev(&mounted, &p.devices, sys)?;
                make_nodes(&mounted, &p.nodes, sys)?;
            }
            fresh.push((m.dest.clone(), mounted));
        }
    }
    write_sysctls(&p.sysctls, &fresh)?;
    for path in &p.masked {
        let Some(target) = open_below(&root, &fresh, path)? else {
            continue;
        };
        let is_dir = rustix::fs::fstat(&target)
            .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
            .map_err(fail(format!("masking /{}", path.display())))?;
        let what = format!("masking /{}", path.display());
        if is_dir {
            sys.mount(c"tmpfs", &fd_path(&target), "tmpfs", MountFlags::RDONLY, c"")
                .map_err(io_fail(&what))?;
        } else {
            sys.bind("/dev/null", &fd_path(&target)).map_err(io_fail(&what))?;
        }
    }
    for path in &p.readonly {
        let Some(target) = open_below(&root, &fresh, path)? else {
            continue;
        };
        let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
        sys.attach_copy(target.as_fd(), c"", true, attrs, &target)
            .map_err(|e| (125, format!("making /{} read-only: {e}", path.display())))?;
    }
    if p.readonly_root {
        sys.set_attr(&root, MOUNT_ATTR_RDONLY, false)
            .map_err(|e| (125, format!("making the root read-only: {e}")))?;
    }
    drop(fresh);
    drop(root);

    sys.pivot(&p.rootfs).map_err(io_fail("pivot_root"))
}

/// The prepared root directory bound on itself, in the child's own mount
/// namespace (a mount of the caller's namespace cannot be cloned, so the
/// path is opened again here and must still be the directory `opened`).
fn bind_root_dir(p: &Plan, opened: &OwnedFd, sys: &mut impl Mounts) -> Result<(), ChildError> {
    let here = rustix::fs::open(
        &p.rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail("opening the root directory"))?;
    let (a, b) = (
        rustix::fs::fstat(opened).map_err(fail("opening the root directory"))?,
        rustix::fs::fstat(&here).map_err(fail("opening the root directory"))?,
    );
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
        return Err(refuse(
            "the root directory was replaced while the container was created".into(),
        ));
    }
    sys.attach_copy(here.as_fd(), c"", true, MOUNT_ATTR_NODEV, &here)
        .map_err(io_fail("binding the root directory"))
}

/// `linux.sysctl` as files below `/proc/sys`: `net.ipv4.ip_forward` is
/// `net/ipv4/ip_forward`. A key whose parts are empty or hold a `/` would
/// name another file: refused.
fn sysctl_files(
    sysctl: Option<&std::collections::HashMap<String, String>>,
) -> Result<Vec<(PathBuf, Vec<u8>)>, RunnerError> {
    let mut files = Vec::new();
    for (key, value) in sysctl.into_iter().flatten() {
        if key.split('.').any(|part| part.is_empty() || part.contains(['/', '\0'])) {
            return Err(RunnerError::Corrupt(format!(
                "sysctl {key:?} does not name a kernel parameter"
            )));
        }
        files.push((key.split('.').collect(), value.as_bytes().to_vec()));
    }
    Ok(files)
}

/// Writes the sysctls through the container's fresh `/proc` (its own
/// network and IPC namespaces, never the host's), before `/proc/sys` is
/// made read-only. No link is followed; one that cannot be written fails
/// the start.
fn write_sysctls(sysctls: &[(PathBuf, Vec<u8>)], fresh: &[(PathBuf, OwnedFd)]) -> Result<(), ChildError> {
    if sysctls.is_empty() {
        return Ok(());
    }
    let proc = fresh
        .iter()
        .find(|(dest, _)| dest == Path::new("proc"))
        .map(|(_, fd)| fd)
        .ok_or_else(|| refuse("--sysctl: the container has no /proc to write it in".into()))?;
    for (file, value) in sysctls {
        let what = format!("writing sysctl /proc/sys/{}", file.display());
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            return Err(refuse(format!("{what}: not a kernel parameter")));
        };
        let dir = walk_plain(proc, &Path::new("sys").join(dir), Missing::Absent, &what)?
            .ok_or_else(|| refuse(format!("{what}: no such kernel parameter")))?;
        let f = rustix::fs::openat(
            &dir,
            name,
            OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail(&what))?;
        let written = rustix::io::write(&f, value).map_err(fail(&what))?;
        if written != value.len() {
            return Err(refuse(format!("{what}: a short write")));
        }
    }
    Ok(())
}

/// A failed mount call, as a [`ChildError`] with status 125.
fn io_fail(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> ChildError {
    let what = what.to_string();
    move |e| (125, format!("{what}: {e}"))
}

/// The child: set up the container and exec. Returns only on failure.
fn child(
    p: &Plan,
    io: ChildIo,
    terminal: Option<&OwnedFd>,
    err_fd: i32,
    ready: Option<OwnedFd>,
    maps_ready: Option<&OwnedFd>,
    mut joined: Option<OwnedFd>,
) -> Result<std::convert::Infallible, ChildError> {
    use rustix::mount::{mount_change, MountPropagationFlags};
    join_cgroup_itself(&p.cgroup)?;
    if let Some(maps_ready) = maps_ready {
        // Once the parent has mapped the IDs: the namespace's root, whose
        // capabilities there set the container up.
        let mut byte = [0u8; 1];
        match rustix::io::read(maps_ready, &mut byte) {
            Ok(1) => {}
            _ => return Err((125, "the user namespace's ID maps were not written".into())),
        }
        let root_gid = rustix::process::Gid::from_raw(0);
        rustix::thread::set_thread_res_gid(root_gid, root_gid, root_gid)
            .map_err(fail("becoming root of the user namespace (setgid 0)"))?;
        let root = rustix::process::Uid::from_raw(0);
        rustix::thread::set_thread_res_uid(root, root, root)
            .map_err(fail("becoming root of the user namespace (setuid 0)"))?;
    }
    if p.new_cgroup_ns {
        // The namespace is rooted at the cgroup the process is in.
        wait_for_cgroup(joined.take())?;
        crate::sys::unshare_cgroup_namespace().map_err(|e| (125, format!("creating a cgroup namespace: {e}")))?;
    }
    // Nothing in the container may ptrace or reopen this process while it runs barge code.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    crate::sys::reset_signals();
    // The namespaces given by path. A bundle's mount namespace: the root
    // is built in it, as runc does (its other processes see the
    // container's mounts and root).
    use rustix::thread::LinkNameSpaceType as Kind;
    let joins = [
        (p.netns.as_ref(), Kind::Network, "network"),
        (p.ipc_ns.joined(), Kind::InterProcessCommunication, "IPC"),
        (p.mnt_ns.joined(), Kind::Mount, "mount"),
        (p.uts_ns.joined(), Kind::HostNameAndNISDomainName, "UTS"),
    ];
    for (ns, kind, name) in joins {
        if let Some(ns) = ns {
            rustix::thread::move_into_link_name_space(ns.as_fd(), Some(kind))
                .map_err(fail(format!("joining the {name} namespace")))?;
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
    mount_root(p, &mut Kernel)?;

    if let Some(sock) = terminal {
        crate::terminal::attach_child(sock, p.process.uid)?;
    }
    if null_stdin {
        let null = rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(fail("opening /dev/null"))?;
        rustix::stdio::dup2_stdin(&null).map_err(fail("stdin"))?;
    }
    // A bundle without a hostname keeps the one its new UTS namespace copied.
    if !p.hostname.is_empty() {
        rustix::system::sethostname(&p.hostname).map_err(fail("setting the hostname"))?;
    }
    if p.loopback_up {
        crate::sys::loopback_up().map_err(|e| (125, format!("bringing up lo: {e}")))?;
    }
    // In the container's cgroup before its credentials, filter and
    // command (barge placed it there meanwhile; the mounts above are
    // barge's work, charged to barge's cgroup).
    wait_for_cgroup(joined)?;
    let program = p.process.enter()?;
    if let (Some(fifo), Some(ready)) = (&p.start_gate, ready) {
        wait_for_start(fifo, ready)?;
    }
    if let Some(exe) = &p.init {
        return Err(exec_init(&p.process, &program, err_fd, exe));
    }
    Err(p.process.exec(&program))
}

/// `create`'s gate: tells the creator the process is set up (a NUL byte
/// on `ready`), then opens the exec fifo for writing through this
/// process's own descriptor (no path of the container's), which blocks
/// until `start` opens it for reading, and writes one byte there.
fn wait_for_start(fifo: &OwnedFd, ready: OwnedFd) -> Result<(), ChildError> {
    rustix::io::write(&ready, &[0]).map_err(fail("reporting the container created"))?;
    drop(ready);
    let gate = rustix::fs::open(fd_path(fifo), OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()).map_err(fail(
        "waiting for start (opening the exec fifo; the container needs /proc)",
    ))?;
    rustix::io::write(&gate, b"0").map_err(fail("waiting for start"))?;
    Ok(())
}

/// Standard devices and links in the container's fresh `/dev`: the host's
/// own nodes bound onto empty files, as /dev itself is `nodev`; then the
/// `devices` asked for (path below /dev, host path), the same way.
fn make_dev(dev: &OwnedFd, devices: &[(PathBuf, PathBuf)], sys: &mut impl Mounts) -> Result<(), ChildError> {
    let dev = reopen_dir(dev, "opening /dev")?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let what = format!("creating /dev/{name}");
        let file = rustix::fs::openat(
            &dev,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .map_err(fail(&what))?;
        sys.bind(&format!("/dev/{name}"), &fd_path(&file))
            .map_err(io_fail(&what))?;
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
    for (rel, host) in devices {
        let what = format!("creating the device /dev/{}", rel.display());
        let file = node_target(&dev, rel, &what)?;
        let host = host
            .to_str()
            .ok_or_else(|| refuse(format!("{what}: the host path is not UTF-8")))?;
        sys.bind(host, &fd_path(&file)).map_err(io_fail(&what))?;
    }
    Ok(())
}

/// The directory `dir` (an `O_PATH` descriptor) opened for `*at` calls
/// that create in it.
fn reopen_dir(dir: &OwnedFd, what: &str) -> Result<OwnedFd, ChildError> {
    rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail(what))
}

/// The empty file at `rel` below the fresh `/dev` (opened as `dev`) that a
/// device node is bound on, made with its directories. The fresh tmpfs
/// holds only what barge made: ordinary directories, no link.
fn node_target(dev: &OwnedFd, rel: &Path, what: &str) -> Result<OwnedFd, ChildError> {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Err(refuse(format!("{what}: not a path below /dev")));
    };
    let dir = walk_plain(dev, parent, Missing::Create, what)?.ok_or_else(|| refuse(what.to_string()))?;
    let dir = reopen_dir(&dir, what)?;
    rustix::fs::openat(
        &dir,
        name,
        OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(fail(what))
}

/// A device node an OCI bundle asks for (`linux.devices`), made with
/// mknod as runc makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Below /dev: plain components only.
    pub path: PathBuf,
    /// A character or block device, or a FIFO.
    pub kind: rustix::fs::FileType,
    pub major: u32,
    pub minor: u32,
    /// Permission bits (no set-id or sticky bit).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Where [`make_nodes`] makes the nodes: a directory of the fresh /dev,
/// removed before anything of the container runs.
const NODES_DIR: &str = ".barge-nodes";

/// The bundle's device nodes in the container's fresh `/dev`, which is
/// `nodev`: each is made on a private tmpfs that allows devices
/// (nosuid, noexec), bound read-only on an empty file at its path (as
/// the host's nodes are), and the tmpfs is detached and its mount point
/// removed. The device cgroup's rules still decide what opens.
fn make_nodes(dev: &OwnedFd, nodes: &[DeviceNode], sys: &mut impl Mounts) -> Result<(), ChildError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let dev = reopen_dir(dev, "opening /dev")?;
    let what = "making the bundle's device nodes";
    rustix::fs::mkdirat(&dev, NODES_DIR, Mode::from_raw_mode(0o700)).map_err(fail(what))?;
    let store = rustix::fs::openat(
        &dev,
        NODES_DIR,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail(what))?;
    let flags = MountFlags::NOSUID | MountFlags::NOEXEC;
    sys.mount(c"tmpfs", &fd_path(&store), "tmpfs", flags, c"mode=700")
        .map_err(io_fail(what))?;
    // The same walk now ends on the tmpfs's root.
    let store = rustix::fs::openat(
        &dev,
        NODES_DIR,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail(what))?;
    for (i, node) in nodes.iter().enumerate() {
        let what = format!("creating the device /dev/{}", node.path.display());
        let made = format!("n{i}");
        let devno = rustix::fs::makedev(node.major, node.minor);
        let mode = Mode::from_raw_mode(node.mode & 0o777);
        rustix::fs::mknodat(&store, made.as_str(), node.kind, mode, devno).map_err(fail(&what))?;
        let (uid, gid) = (
            rustix::process::Uid::from_raw(node.uid),
            rustix::process::Gid::from_raw(node.gid),
        );
        rustix::fs::chownat(
            &store,
            made.as_str(),
            Some(uid),
            Some(gid),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(fail(&what))?;
        // Exactly the mode asked for, whatever the umask.
        rustix::fs::chmodat(&store, made.as_str(), mode, rustix::fs::AtFlags::empty()).map_err(fail(&what))?;
        let file = node_target(&dev, &node.path, &what)?;
        let source = fd_path(&store).join(&made);
        let source = source.to_str().ok_or_else(|| refuse(format!("{what}: not UTF-8")))?;
        sys.bind(source, &fd_path(&file)).map_err(io_fail(&what))?;
        // The bind holds the node; the tmpfs keeps nothing.
        rustix::fs::unlinkat(&store, made.as_str(), rustix::fs::AtFlags::empty()).map_err(fail(&what))?;
    }
    drop(store);
    let dir = rustix::fs::openat(
        &dev,
        NODES_DIR,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail(what))?;
    sys.unmount(&fd_path(&dir)).map_err(io_fail(what))?;
    drop(dir);
    rustix::fs::unlinkat(&dev, NODES_DIR, rustix::fs::AtFlags::REMOVEDIR).map_err(fail(what))
}

/// `--init`: PID 1 becomes barge's static init (`init/init.c`), executed
/// from the sealed memfd `exe` with the container's environment: it forks
/// and execs `program`, whose exec failure it reports on `err_fd`.
fn exec_init(p: &ProcessPlan, program: &CString, err_fd: i32, exe: &OwnedFd) -> ChildError {
    // The error pipe must outlive this exec (the init's child closes it on its own exec).
    crate::sys::clear_cloexec(err_fd);
    let mut argv = vec![
        CString::from(c"barge-init"),
        CString::new(err_fd.to_string()).unwrap_or_default(),
        program.clone(),
    ];
    argv.extend(p.argv.iter().cloned());
    (
        125,
        format!("starting the init: {}", crate::sys::execveat(exe, &argv, &p.envp)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{self, Linux, Mount, Process, Root};
    use crate::sys::mounts::{Op, Recorder};

    const NODEV: u64 = MOUNT_ATTR_NODEV;
    const NOSUID: u64 = MOUNT_ATTR_NOSUID;
    const RDONLY: u64 = MOUNT_ATTR_RDONLY;
    const NOEXEC: u64 = MOUNT_ATTR_NOEXEC;

    /// A bundle as `create` writes it: docker's mounts, masks and
    /// read-only paths, plus `extra` mounts.
    fn spec(extra: Vec<Mount>, readonly_root: bool) -> Spec {
        let mut mounts = spec::default_mounts();
        mounts.extend(extra);
        let mut process = Process::default();
        process
            .set_args(Some(vec!["/bin/true".into()]))
            .set_env(Some(Vec::new()))
            .set_capabilities(None)
            .set_rlimits(None);
        let mut root = Root::default();
        root.set_readonly(Some(readonly_root));
        let mut linux = Linux::default();
        linux
            .set_namespaces(Some(Vec::new()))
            .set_masked_paths(Some(spec::MASKED_PATHS.iter().map(|s| s.to_string()).collect()))
            .set_readonly_paths(Some(spec::READONLY_PATHS.iter().map(|s| s.to_string()).collect()))
            .set_resources(None);
        let mut s = Spec::default();
        s.set_process(Some(process))
            .set_root(Some(root))
            .set_hostname(Some("box".into()))
            .set_mounts(Some(mounts))
            .set_linux(Some(linux));
        s
    }

    fn bind(source: &Path, destination: &str, options: &[&str]) -> Mount {
        spec::mount(destination, "bind", &source.display().to_string(), options)
    }

    /// Runs the mount plan of `spec` over the image `rootfs` against the fake.
    fn run(bundle: &Path, spec: &Spec) -> (Result<(), ChildError>, Vec<Op>) {
        let lowers = [bundle.join("snapshots/a/fs")];
        let plan = Plan::new(spec, bundle, &lowers, false).unwrap();
        let mut rec = Recorder::new(&bundle.join("rootfs"));
        let r = mount_root(&plan, &mut rec);
        (r, rec.ops)
    }

    fn mount(fstype: &str, target: &str, flags: MountFlags) -> Op {
        Op::Mount {
            fstype: fstype.into(),
            target: target.into(),
            flags,
        }
    }

    #[test]
    fn a_prepared_root_directory_is_bound_on_itself_not_overlaid() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        // root.path through a link: resolved once, to the directory itself.
        std::os::unix::fs::symlink("rootfs", d.path().join("link")).unwrap();
        let mut s = spec(Vec::new(), true);
        let mut r = Root::default();
        r.set_path(PathBuf::from("link")).set_readonly(Some(true));
        s.set_root(Some(r));
        let plan = Plan::for_directory(&s, d.path()).unwrap();
        assert_eq!(plan.rootfs, std::fs::canonicalize(&root).unwrap());
        assert_eq!(plan.snapshots_dir, PathBuf::from("/"));
        let mut rec = Recorder::new(&plan.rootfs);
        mount_root(&plan, &mut rec).unwrap();
        assert_eq!(
            rec.ops.first(),
            Some(&Op::AttachCopy {
                source: "/".into(),
                target: "/".into(),
                recursive: true,
                attrs: NODEV,
            })
        );
        assert!(!rec
            .ops
            .iter()
            .any(|op| matches!(op, Op::Mount { fstype, .. } if fstype == "overlay")));
        assert_eq!(rec.ops.last(), Some(&Op::Pivot));
        // Replaced between the plan and the child: refused.
        std::fs::rename(&root, d.path().join("old")).unwrap();
        std::fs::create_dir(&root).unwrap();
        let mut rec = Recorder::new(&plan.rootfs);
        let (code, msg) = mount_root(&plan, &mut rec).unwrap_err();
        assert_eq!(code, 125);
        assert!(msg.contains("replaced"), "{msg}");
    }

    #[test]
    fn the_mount_plan_in_order() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("rootfs");
        // An image with some of what the kernel filesystems will hold.
        for dir in ["etc", "proc/acpi", "proc/sys", "sys/firmware"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("proc/kcore"), b"").unwrap();
        let volume = d.path().join("volume");
        std::fs::create_dir(&volume).unwrap();
        let hosts = d.path().join("hosts");
        std::fs::write(&hosts, b"127.0.0.1 localhost\n").unwrap();
        let spec = spec(
            vec![
                bind(&volume, "/data/in", &["rbind", "ro"]),
                bind(&hosts, "/etc/hosts", &["bind", "noexec"]),
            ],
            true,
        );
        let (r, ops) = run(d.path(), &spec);
        r.unwrap();

        let mut want = vec![
            mount("overlay", "/", MountFlags::NODEV),
            mount(
                "proc",
                "/proc",
                MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV,
            ),
            mount(
                "tmpfs",
                "/dev",
                MountFlags::NOSUID | MountFlags::STRICTATIME | MountFlags::NODEV,
            ),
        ];
        // The host's standard nodes on empty files of the nodev /dev.
        for name in ["null", "zero", "full", "random", "urandom", "tty"] {
            want.push(Op::Bind {
                source: format!("/dev/{name}"),
                target: format!("/dev/{name}"),
            });
        }
        want.extend([
            mount("devpts", "/dev/pts", MountFlags::NOSUID | MountFlags::NOEXEC),
            mount(
                "sysfs",
                "/sys",
                MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV | MountFlags::RDONLY,
            ),
            mount(
                "mqueue",
                "/dev/mqueue",
                MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV,
            ),
            mount(
                "tmpfs",
                "/dev/shm",
                MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV,
            ),
            // Binds: a copy with nodev and nosuid on every submount, ro and noexec as asked.
            Op::AttachCopy {
                source: volume.display().to_string(),
                target: "/data/in".into(),
                recursive: true,
                attrs: NODEV | NOSUID | RDONLY,
            },
            Op::AttachCopy {
                source: hosts.display().to_string(),
                target: "/etc/hosts".into(),
                recursive: false,
                attrs: NODEV | NOSUID | NOEXEC,
            },
            // Masks: a directory under an empty read-only tmpfs, a file under /dev/null;
            // what the image (here: the kernel) lacks is skipped.
            mount("tmpfs", "/proc/acpi", MountFlags::RDONLY),
            Op::Bind {
                source: "/dev/null".into(),
                target: "/proc/kcore".into(),
            },
            mount("tmpfs", "/sys/firmware", MountFlags::RDONLY),
            Op::AttachCopy {
                source: "/proc/sys".into(),
                target: "/proc/sys".into(),
                recursive: true,
                attrs: RDONLY | NOSUID | NODEV | NOEXEC,
            },
            Op::SetAttr {
                target: "/".into(),
                attrs: RDONLY,
                recursive: false,
            },
            Op::Pivot,
        ]);
        assert_eq!(ops, want);
        // Mount points and the bind targets were made as ordinary files and directories.
        assert!(root.join("dev/pts").is_dir() && root.join("data/in").is_dir());
        assert!(root.join("etc/hosts").is_file());
        assert_eq!(
            std::fs::read_link(root.join("dev/ptmx")).unwrap(),
            Path::new("pts/ptmx")
        );
    }

    #[test]
    fn a_volatile_upper_keeps_the_plain_options_for_older_kernels() {
        let d = tempfile::tempdir().unwrap();
        let lowers = [d.path().join("snapshots/a/fs")];
        let mut plan = Plan::new(&spec(Vec::new(), false), d.path(), &lowers, false).unwrap();
        let plain = plan.overlay_data.clone();
        plan.volatile_upper().unwrap();
        assert_eq!(plan.overlay_data.to_bytes(), [plain.to_bytes(), b",volatile"].concat());
        assert_eq!(plan.overlay_fallback, Some(plain));
        // A root mounted by the caller (fuse-overlayfs) gets nothing.
        let mut plan = Plan::new(&spec(Vec::new(), false), d.path(), &lowers, false).unwrap();
        plan.rootless(true).unwrap();
        plan.volatile_upper().unwrap();
        assert!(plan.overlay_fallback.is_none());
    }

    #[test]
    fn devices_and_a_shared_dev_shm_go_on_the_fresh_dev() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("rootfs");
        std::fs::create_dir_all(&root).unwrap();
        let shm = d.path().join("shm");
        std::fs::create_dir(&shm).unwrap();
        let mut s = spec(Vec::new(), false);
        let mut mounts = s.mounts().clone().unwrap();
        for m in mounts.iter_mut().filter(|m| m.destination() == Path::new("/dev/shm")) {
            *m = bind(&shm, "/dev/shm", &["rbind"]);
        }
        s.set_mounts(Some(mounts));
        let lowers = [d.path().join("snapshots/a/fs")];
        let mut plan = Plan::new(&s, d.path(), &lowers, false).unwrap();
        plan.bind_devices(vec![
            (PathBuf::from("myzero"), PathBuf::from("/dev/zero")),
            (PathBuf::from("sub/dir/x"), PathBuf::from("/dev/null")),
        ]);
        let mut rec = Recorder::new(&root);
        mount_root(&plan, &mut rec).unwrap();
        for (source, target) in [("/dev/zero", "/dev/myzero"), ("/dev/null", "/dev/sub/dir/x")] {
            assert!(
                rec.ops.contains(&Op::Bind {
                    source: source.into(),
                    target: target.into()
                }),
                "{target}: {:?}",
                rec.ops
            );
        }
        assert!(root.join("dev/sub/dir/x").is_file());
        assert!(rec.ops.contains(&Op::AttachCopy {
            source: shm.display().to_string(),
            target: "/dev/shm".into(),
            recursive: true,
            attrs: NODEV | NOSUID,
        }));
        // Any other bind on /dev is still refused.
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("rootfs")).unwrap();
        let (r, _) = run(d.path(), &spec(vec![bind(&shm, "/dev/other", &["rbind"])], false));
        let (_, msg) = r.unwrap_err();
        assert!(msg.contains("cannot be mounted over"), "{msg}");
    }

    #[test]
    fn bundle_device_nodes_are_made_on_a_tmpfs_of_their_own_and_bound() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("rootfs");
        std::fs::create_dir_all(&root).unwrap();
        let lowers = [d.path().join("snapshots/a/fs")];
        let mut plan = Plan::new(&spec(Vec::new(), false), d.path(), &lowers, false).unwrap();
        // A FIFO: mknod needs no privilege for one.
        plan.make_devices(vec![DeviceNode {
            path: PathBuf::from("sub/fifo"),
            kind: rustix::fs::FileType::Fifo,
            major: 0,
            minor: 0,
            mode: 0o640,
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        }]);
        let mut rec = Recorder::new(&root);
        mount_root(&plan, &mut rec).unwrap();
        let at = |want: &dyn Fn(&Op) -> bool| rec.ops.iter().position(want).unwrap_or_else(|| panic!("{:?}", rec.ops));
        let tmpfs = at(&|op| *op == mount("tmpfs", "/dev/.barge-nodes", MountFlags::NOSUID | MountFlags::NOEXEC));
        let bound =
            at(&|op| matches!(op, Op::Bind { source, target } if source.ends_with("/n0") && target == "/dev/sub/fifo"));
        let detached = at(&|op| {
            *op == Op::Unmount {
                target: "/dev/.barge-nodes".into(),
            }
        });
        assert!(tmpfs < bound && bound < detached, "{:?}", rec.ops);
        assert!(root.join("dev/sub/fifo").is_file(), "the bind target is an empty file");
        assert!(!root.join("dev/.barge-nodes").exists(), "the node store is gone");
    }

    #[test]
    fn kernel_filesystems_never_go_through_a_link() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("rootfs");
        std::fs::create_dir_all(root.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("elsewhere", root.join("proc")).unwrap();
        let (r, ops) = run(d.path(), &spec(Vec::new(), false));
        let (code, msg) = r.unwrap_err();
        assert_eq!(code, 125);
        assert!(msg.contains("mount point /proc: /proc is a symbolic link"), "{msg}");
        // Only the overlay was mounted: nothing went on the link's target.
        assert_eq!(ops, [mount("overlay", "/", MountFlags::NODEV)]);
    }

    #[test]
    fn binds_are_refused_on_and_through_links_to_kernel_filesystems() {
        for (dest, why) in [
            ("/proc/sys", "the root, /proc, /sys and /dev cannot be mounted over"),
            ("/", "the root, /proc, /sys and /dev cannot be mounted over"),
            (
                "/innocent/x",
                "it resolves to /sys/kernel/x through a link in the image",
            ),
        ] {
            let d = tempfile::tempdir().unwrap();
            let root = d.path().join("rootfs");
            std::fs::create_dir_all(&root).unwrap();
            std::os::unix::fs::symlink("/sys/kernel", root.join("innocent")).unwrap();
            let volume = d.path().join("volume");
            std::fs::create_dir(&volume).unwrap();
            let (r, ops) = run(d.path(), &spec(vec![bind(&volume, dest, &["rbind"])], false));
            let (code, msg) = r.unwrap_err();
            assert_eq!(code, 125);
            assert!(msg.contains(why), "{dest}: {msg}");
            assert!(
                !ops.iter().any(|op| matches!(op, Op::AttachCopy { .. })),
                "{dest}: {ops:?}"
            );
        }
    }
}
