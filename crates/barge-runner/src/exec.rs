//! `barge exec`'s process: a new process in a running container's
//! namespaces.
//!
//! [`spawn`] forks; the child joins the container's cgroup and its IPC,
//! UTS, network, PID and mount namespaces (mount last, from descriptors
//! opened on the host), non-dumpable so nothing inside can take it over;
//! its own child (the first process in the container's PID namespace)
//! takes the container's credentials and capabilities and execs the
//! command. No barge code is left inside once the command runs.

use crate::process::{fail, run_child, started_or_reaped, ChildError, ChildIo, ProcessPlan, Started};
use crate::sys::Forked;
use crate::{io_err, RunnerError};
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::{Mode, OFlags};

/// Starts `plan` in the namespaces `namespaces` (descriptors of
/// `/proc/PID/ns/*`, the mount namespace last) and the cgroup whose
/// join files (`tasks` on v1, `cgroup.procs` on v2) are `cgroup_procs`:
/// the forked child, one thread, writes `0` to each. With `terminal` (a socket pair
/// from [`crate::terminal::socketpair`]) the command gets a pty opened
/// inside, whose master is in [`Started::terminal`].
pub fn spawn(
    cgroup_procs: Vec<OwnedFd>,
    namespaces: Vec<OwnedFd>,
    plan: &ProcessPlan,
    terminal: Option<(OwnedFd, OwnedFd)>,
    io: ChildIo,
) -> Result<Started, RunnerError> {
    let (err_read, err_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| io_err("creating a pipe")(e.into()))?;
    let outer = match crate::sys::fork().map_err(io_err("fork"))? {
        Forked::Child => {
            drop(err_read);
            let sock = terminal.as_ref().map(|(_, theirs)| theirs);
            let err_fd = err_write.as_raw_fd();
            run_child(err_write, || enter(&cgroup_procs, &namespaces, plan, sock, io, err_fd));
        }
        Forked::Parent { child } => child,
    };
    drop(err_write);
    drop(io);
    drop(namespaces);
    drop(cgroup_procs);
    let master = crate::terminal::master_from(terminal)?;
    started_or_reaped(outer, err_read)?;
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(outer).ok_or_else(|| RunnerError::Corrupt("pid 0".into()))?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| io_err("watching the exec process")(e.into()))?;
    Ok(Started {
        pid: outer,
        pidfd,
        start_time: 0,
        terminal: master,
    })
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
    plan.install_filter_before_confine()?;
    plan.confine()?;
    let inner = match crate::sys::fork() {
        Ok(Forked::Parent { child }) => child,
        Ok(Forked::Child) => 0,
        Err(e) => return Err((125, format!("fork: {e}"))),
    };
    // The child: the container's process.
    if inner == 0 {
        crate::sys::reset_signals();
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
        let program = plan.enter_for_exec()?;
        return Err(plan.exec(&program));
    }
    // The exec'ing child holds the error pipe and the stdio; this one only
    // waits, holding nothing (an end of barge's stdin pipe kept here would
    // keep the command from ever seeing end of input).
    let _ = err_fd;
    crate::sys::close_from(3);
    let pid = rustix::process::Pid::from_raw(inner);
    let status = loop {
        match rustix::process::waitpid(pid, rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => break Some(status),
            Err(rustix::io::Errno::INTR) => {}
            _ => break None,
        }
    };
    let code = match status {
        Some(s) => s
            .exit_status()
            .unwrap_or_else(|| 128 + s.terminating_signal().unwrap_or(0)),
        None => 0,
    };
    crate::sys::exit(code)
}
