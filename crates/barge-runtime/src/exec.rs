//! `barge exec`: a new process in a running container's namespaces.
//!
//! barge opens the container's namespace files from the host and its
//! cgroup's `cgroup.procs` files, resolves the user inside the container,
//! and hands them to `barge-runner`'s [`barge_runner::exec`], which forks
//! the process that joins them and execs the command; then it relays the
//! command's stdio as the monitor does.

use crate::monitor::{copy_window_size, forwarded_signals, relay, stdio_pipes, Outputs, RawMode, StdinTo};
use crate::{io_err, Container, Runtime, RuntimeError, Status};
use barge_runner::{ChildIo, ProcessPlan};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io::Read;

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub args: Vec<String>,
    /// `-e KEY=VALUE`, on top of the container's environment.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    /// `-d`: start the command and return at once; its stdio are the
    /// container's `/dev/null`, nobody waits for it here.
    pub detach: bool,
    /// `--privileged`: every capability and no seccomp filter for the command.
    pub privileged: bool,
}

/// Reads a file of the running container through its root, never leaving it.
fn read_container_file(root: &OwnedFd, path: &str) -> String {
    let Ok(fd) = barge_store::fsutil::openat2(
        root,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) else {
        return String::new();
    };
    let is_file = rustix::fs::fstat(&fd)
        .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_file())
        .unwrap_or(false);
    let mut s = String::new();
    if is_file {
        let _ = std::fs::File::from(fd).take(4 << 20).read_to_string(&mut s);
    }
    s
}

/// The stdio of a detached command: output goes to the container's own
/// `/dev/null` (the read-only bind the runner made, opened through the
/// container's root), never a descriptor of the host's `/dev`, whose node
/// a container root could chmod through `/proc/self/fd`. Input is empty.
fn detached_io(root: &OwnedFd) -> Result<ChildIo, RuntimeError> {
    let null = || -> Result<OwnedFd, RuntimeError> {
        let what = "opening the container's /dev/null";
        let fd = barge_store::fsutil::openat2(
            root,
            "dev/null",
            OFlags::WRONLY | OFlags::NOCTTY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|e| io_err(what)(e.into()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| io_err(what)(e.into()))?;
        let is_null = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice
            && (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)) == (1, 3);
        if !is_null {
            return Err(RuntimeError::Corrupt(format!("{what}: it is not the null device")));
        }
        Ok(fd)
    };
    Ok(ChildIo::Fds {
        stdin: None,
        stdout: null()?,
        stderr: null()?,
    })
}

/// What a command needs to enter a running container, opened from the
/// host: [`Runtime::exec`]'s and the health probe's one way in.
pub(crate) struct Entry {
    /// The container's namespaces, the mount namespace last.
    pub(crate) namespaces: Vec<OwnedFd>,
    /// The container cgroup's join files (none for a rootless one without).
    pub(crate) cgroup_procs: Vec<OwnedFd>,
    /// The command with the container's user, capabilities, seccomp filter.
    pub(crate) plan: ProcessPlan,
    /// The stdio of a detached command (`-d`).
    pub(crate) detached: Option<ChildIo>,
}

impl Entry {
    /// Starts the command in the container (see [`barge_runner::exec::spawn`]).
    pub(crate) fn spawn(
        self,
        terminal: Option<(OwnedFd, OwnedFd)>,
        io: ChildIo,
    ) -> Result<barge_runner::Started, RuntimeError> {
        Ok(barge_runner::exec::spawn(
            self.cgroup_procs,
            self.namespaces,
            &self.plan,
            terminal,
            io,
        )?)
    }
}

impl Runtime {
    /// Opens what `o` needs to run in the running container `c`.
    pub(crate) fn exec_entry(&self, c: &Container, o: &ExecOptions) -> Result<Entry, RuntimeError> {
        let st = c.state()?;
        let (Status::Running, Some(pid)) = (st.status, st.pid) else {
            return Err(RuntimeError::NotRunning(c.meta.name.clone()));
        };
        if c.meta.runtime.is_some() {
            return Err(RuntimeError::External {
                runtime: c.meta.runtime.clone().unwrap_or_default(),
                message: "exec into containers of an external runtime is not supported; use the runtime's own exec"
                    .into(),
            });
        }
        let open = |what: &str| {
            rustix::fs::open(
                format!("/proc/{pid}/{what}"),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|_| RuntimeError::NotRunning(c.meta.name.clone()))
        };
        let mut namespaces = vec![open("ns/ipc")?, open("ns/uts")?];
        // Every namespace of the container, the network's included (a
        // bridge network's is the container's own too); only a container
        // on the host's network shares the host's.
        if c.meta.network != crate::Network::Host {
            namespaces.push(open("ns/net")?);
        }
        namespaces.push(open("ns/pid")?);
        namespaces.push(open("ns/mnt")?);
        let root = rustix::fs::open(
            format!("/proc/{pid}/root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| RuntimeError::NotRunning(c.meta.name.clone()))?;
        if barge_runner::process::process_start_time(pid) != st.pid_start {
            return Err(RuntimeError::NotRunning(c.meta.name.clone()));
        }

        let spec = c.spec()?;
        let mut process = crate::spec::process(&spec)?.clone();
        if o.args.is_empty() {
            return Err(RuntimeError::NoCommand);
        }
        process.set_args(Some(o.args.clone()));
        let env = process.env_mut().get_or_insert_with(Vec::new);
        for kv in &o.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        if let Some(w) = &o.workdir {
            process.set_cwd(w.into());
        }
        if let Some(u) = &o.user {
            let r = crate::user::resolve(
                u,
                &read_container_file(&root, "/etc/passwd"),
                &read_container_file(&root, "/etc/group"),
            )?;
            let user = process.user_mut();
            user.set_uid(r.uid)
                .set_gid(r.gid)
                .set_additional_gids(Some(r.additional_gids).filter(|g| !g.is_empty()));
            if let Some(caps) = process.capabilities().clone() {
                let set = if r.uid == 0 {
                    caps.bounding().clone()
                } else {
                    Some(Default::default())
                };
                let mut caps = caps;
                caps.set_effective(set.clone()).set_permitted(set);
                process.set_capabilities(Some(caps));
            }
        }
        let detached = if o.detach { Some(detached_io(&root)?) } else { None };
        drop(root);
        let seccomp = if o.privileged {
            crate::sharing::privileged_process(&mut process)?;
            None
        } else {
            crate::spec::seccomp(&spec)
        };
        let plan = ProcessPlan::new(&process, seccomp)?.for_exec();
        // The command joins the container's cgroup: its limits and `stop` apply to it.
        // Fail closed: a container whose limits or device policy live in a
        // cgroup never gets a command outside it.
        let cgroup_procs = match barge_cgroups::Cgroup::load(&c.dir) {
            Some(cg) => cg.join_files()?,
            // A rootless container has none without a delegated v2 subtree (see `runner::start`).
            None if !crate::rootless::rootless() && barge_cgroups::limits_asked(crate::spec::resources(&spec)) => {
                return Err(RuntimeError::Corrupt(format!(
                    "the cgroup of container {} is not recorded; its limits and device policy could not apply to the command",
                    c.meta.name
                )))
            }
            None => Vec::new(),
        };
        Ok(Entry {
            namespaces,
            cgroup_procs,
            plan,
            detached,
        })
    }

    /// Runs a command in a running container; returns its exit status.
    pub fn exec(&self, c: &Container, o: &ExecOptions) -> Result<i32, RuntimeError> {
        let mut entry = self.exec_entry(c, o)?;
        let detached = entry.detached.take();
        let terminal = if o.tty && !o.detach {
            Some(barge_runner::terminal::socketpair().map_err(io_err("creating a socket pair"))?)
        } else {
            None
        };
        // Without a terminal: pipes barge relays, never barge's own stdio.
        let (io, streams, stdin_to) = if let Some(io) = detached {
            (io, Vec::new(), None)
        } else if o.tty {
            (ChildIo::Terminal, Vec::new(), None)
        } else {
            stdio_pipes(o.interactive)?
        };
        let signals = forwarded_signals()?;
        let mut started = entry.spawn(terminal, io)?;
        if o.detach {
            // The waiting process outlives barge; init reaps it.
            return Ok(0);
        }
        let master = started.terminal.take();
        let code = match &master {
            Some(m) => {
                copy_window_size(rustix::stdio::stdin(), m);
                let _raw = if o.interactive {
                    RawMode::enter(rustix::stdio::stdin())
                } else {
                    None
                };
                let read_end = m.try_clone().map_err(io_err("cloning the terminal"))?;
                relay(
                    &started,
                    Outputs {
                        to_stdout: true,
                        to_stderr: true,
                        log: None,
                    },
                    vec![(read_end, "stdout")],
                    o.interactive.then_some(StdinTo::Pty(m)),
                    Some(&signals),
                    Some(m),
                )
            }
            None => relay(
                &started,
                Outputs {
                    to_stdout: true,
                    to_stderr: true,
                    log: None,
                },
                streams,
                stdin_to,
                Some(&signals),
                None,
            ),
        };
        Ok(code)
    }
}
