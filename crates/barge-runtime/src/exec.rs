//! `barge exec`: a new process in a running container's namespaces.
//!
//! barge opens the container's namespace files from the host, forks, and
//! the child joins the IPC, UTS, network, PID and mount namespaces (mount
//! last), non-dumpable so nothing inside can take it over; its own child
//! (the first process in the container's PID namespace) takes the
//! container's credentials and capabilities and execs the command. No
//! barge code is left inside once the command runs.

use crate::monitor::{copy_window_size, relay, stdio_pipes, Outputs, RawMode, SignalFd, StdinTo};
use crate::runner::{fail, reset_signals, run_child, started_or_reaped, ChildError, ChildIo, ProcessPlan, Started};
use crate::{io_err, Container, Runtime, RuntimeError, Status};
use rustix::fd::{AsRawFd, OwnedFd};
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
}

/// Reads a file of the running container through its root, never leaving it.
fn read_container_file(root: &OwnedFd, path: &str) -> String {
    let Ok(fd) = rustix::fs::openat2(
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

impl Runtime {
    /// Runs a command in a running container; returns its exit status.
    pub fn exec(&self, c: &Container, o: &ExecOptions) -> Result<i32, RuntimeError> {
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
        if crate::container::process_start_time(pid) != st.pid_start {
            return Err(RuntimeError::NotRunning(c.meta.name.clone()));
        }

        let spec = c.spec()?;
        let mut process = spec.process.clone();
        if o.args.is_empty() {
            return Err(RuntimeError::NoCommand);
        }
        process.args = o.args.clone();
        for kv in &o.env {
            let key = kv.split('=').next().unwrap_or_default();
            process.env.retain(|e| e.split('=').next() != Some(key));
            process.env.push(kv.clone());
        }
        if let Some(w) = &o.workdir {
            process.cwd = w.clone();
        }
        if let Some(u) = &o.user {
            let r = crate::user::resolve(
                u,
                &read_container_file(&root, "/etc/passwd"),
                &read_container_file(&root, "/etc/group"),
            )?;
            process.user = crate::spec::User {
                uid: r.uid,
                gid: r.gid,
                additional_gids: r.additional_gids,
            };
            let caps = if r.uid == 0 {
                process.capabilities.bounding.clone()
            } else {
                Vec::new()
            };
            process.capabilities.effective = caps.clone();
            process.capabilities.permitted = caps;
        }
        drop(root);
        let plan = ProcessPlan::new(&process, spec.linux.seccomp.as_ref())?;
        let terminal = if o.tty {
            Some(crate::terminal::socketpair().map_err(io_err("creating a socket pair"))?)
        } else {
            None
        };
        // Without a terminal: pipes barge relays, never barge's own stdio.
        let (io, streams, stdin_to) = if o.tty {
            (ChildIo::Terminal, Vec::new(), None)
        } else {
            stdio_pipes(o.interactive)?
        };
        let signals = SignalFd::new()?;
        // The command joins the container's cgroup: its limits and `stop` apply to it.
        // Fail closed: a container whose limits or device policy live in a
        // cgroup never gets a command outside it.
        let cgroup_procs = match crate::cgroups::Cgroup::load(&c.dir) {
            Some(cg) => cg.procs_files()?,
            None if crate::cgroups::limits_asked(spec.linux.resources.as_ref()) => {
                return Err(RuntimeError::Corrupt(format!(
                    "the cgroup of container {} is not recorded; its limits and device policy could not apply to the command",
                    c.meta.name
                )))
            }
            None => Vec::new(),
        };
        let (err_read, err_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| io_err("creating a pipe")(e.into()))?;

        // SAFETY: fork in a single-threaded process; the child runs `enter` and exits.
        let outer = unsafe { libc::fork() };
        if outer < 0 {
            return Err(io_err("fork")(std::io::Error::last_os_error()));
        }
        if outer == 0 {
            drop(err_read);
            let sock = terminal.as_ref().map(|(_, theirs)| theirs);
            let err_fd = err_write.as_raw_fd();
            run_child(err_write, || enter(&cgroup_procs, &namespaces, &plan, sock, io, err_fd));
        }
        drop(err_write);
        drop(io);
        drop(namespaces);
        drop(cgroup_procs);
        let master = match terminal {
            Some((ours, theirs)) => {
                drop(theirs);
                crate::terminal::receive_master(&ours).map_err(io_err("receiving the container's terminal"))?
            }
            None => None,
        };
        started_or_reaped(outer, err_read)?;
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(outer).ok_or_else(|| RuntimeError::Corrupt("pid 0".into()))?,
            rustix::process::PidfdFlags::empty(),
        )
        .map_err(|e| io_err("watching the exec process")(e.into()))?;
        let started = Started {
            pid: outer,
            pidfd,
            start_time: 0,
            terminal: None,
        };
        let code = match &master {
            Some(m) => {
                copy_window_size(0, m);
                let _raw = if o.interactive { RawMode::enter(0) } else { None };
                let read_end = m.try_clone().map_err(io_err("cloning the terminal"))?;
                relay(
                    &started,
                    Outputs {
                        to_terminal: true,
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
                    to_terminal: true,
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

/// The forked child: join the cgroup and the namespaces, then fork the
/// process that execs.
fn enter(
    cgroup_procs: &[OwnedFd],
    namespaces: &[OwnedFd],
    plan: &ProcessPlan,
    terminal: Option<&OwnedFd>,
    io: ChildIo,
    err_fd: i32,
) -> Result<std::convert::Infallible, ChildError> {
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    // The operator's stdio go before anything inside the container is looked
    // up: a container that controls its /dev could otherwise point a path
    // this process opens at /proc/self/fd/0 and get the operator's terminal.
    let null = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(fail("opening /dev/null"))?;
    for fd in [
        rustix::stdio::dup2_stdin,
        rustix::stdio::dup2_stdout,
        rustix::stdio::dup2_stderr,
    ] {
        fd(&null).map_err(fail("replacing stdio"))?;
    }
    drop(null);
    // Without -i the command reads an empty pipe, opened here, not a path.
    let (empty, closed) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(fail("creating a pipe"))?;
    drop(closed);
    for procs in cgroup_procs {
        rustix::io::write(procs, b"0").map_err(fail("joining the container's cgroup"))?;
    }
    for ns in namespaces {
        rustix::thread::move_into_link_name_space(rustix::fd::AsFd::as_fd(ns), None)
            .map_err(fail("joining the container's namespaces"))?;
    }
    plan.confine()?;
    // SAFETY: fork in a single-threaded process.
    let inner = unsafe { libc::fork() };
    if inner < 0 {
        return Err((125, format!("fork: {}", std::io::Error::last_os_error())));
    }
    if inner == 0 {
        reset_signals();
        rustix::process::setsid().map_err(fail("setsid"))?;
        if let Some(sock) = terminal {
            crate::terminal::attach_child(sock, plan.uid)?;
        }
        if let ChildIo::Fds { stdin, stdout, stderr } = io {
            let stdin = stdin.unwrap_or(empty);
            rustix::stdio::dup2_stdin(&stdin).map_err(fail("stdin"))?;
            rustix::stdio::dup2_stdout(&stdout).map_err(fail("stdout"))?;
            rustix::stdio::dup2_stderr(&stderr).map_err(fail("stderr"))?;
        }
        let program = plan.enter()?;
        return Err(plan.exec(&program));
    }
    // SAFETY: the exec'ing child holds the error pipe and the stdio; this
    // one only waits, holding nothing (an end of barge's stdin pipe kept
    // here would keep the command from ever seeing end of input).
    unsafe {
        let _ = err_fd;
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        let mut status = 0;
        loop {
            let r = libc::waitpid(inner, &mut status, 0);
            if r == inner || (r < 0 && *libc::__errno_location() != libc::EINTR) {
                break;
            }
        }
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        libc::_exit(code)
    }
}
