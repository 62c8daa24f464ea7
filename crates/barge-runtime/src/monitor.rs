//! The process that watches a running container: relays its output (to
//! the terminal and the log), forwards signals, waits for it, and records
//! its exit. `run` in the foreground is its own monitor; `run -d` and
//! `start` fork one that outlives the barge that started it.

use crate::container::{Container, State, Status};
use crate::logs::{LineWriter, LogFile, Rotation};
use crate::runner::{self, ChildIo, Started};
use crate::{io_err, Runtime, RuntimeError};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{AsRawFd, OwnedFd};
use std::fs::File;
use std::io::{Read, Write};

/// How a foreground container talks to the user.
#[derive(Debug, Clone, Copy)]
pub struct Foreground {
    /// Forward barge's signals to the container (docker's `--sig-proxy`).
    pub sig_proxy: bool,
    /// Do not copy the container's output to barge's own (it is still logged).
    pub quiet: bool,
}

/// Signals a monitor forwards to the container.
const FORWARDED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

pub(crate) struct SignalFd(OwnedFd);

impl SignalFd {
    /// Blocks the forwarded signals and returns a signalfd for them.
    pub(crate) fn new() -> Result<SignalFd, RuntimeError> {
        // SAFETY: building a sigset and blocking it; signalfd returns a new fd we own.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in FORWARDED {
                libc::sigaddset(&mut set, *s);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(io_err("creating a signalfd")(std::io::Error::last_os_error()));
            }
            Ok(SignalFd(<OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)))
        }
    }

    fn read(&self) -> Option<i32> {
        // SAFETY: reading one signalfd_siginfo into a zeroed buffer of its size.
        unsafe {
            let mut info: libc::signalfd_siginfo = std::mem::zeroed();
            let n = libc::read(
                self.0.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                std::mem::size_of::<libc::signalfd_siginfo>(),
            );
            (n == std::mem::size_of::<libc::signalfd_siginfo>() as isize).then_some(info.ssi_signo as i32)
        }
    }
}

/// Puts a terminal in raw mode until dropped.
pub(crate) struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    pub(crate) fn enter(fd: i32) -> Option<RawMode> {
        // SAFETY: termios calls on a descriptor we were given.
        unsafe {
            if libc::isatty(fd) != 1 {
                return None;
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the attributes saved in `enter`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

pub(crate) fn copy_window_size(from: i32, to: &OwnedFd) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a winsize on the stack.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Starts forwarding the container's published ports (on threads of this,
/// the monitor process) and records the host ports bound.
fn publish_ports(c: &Container) -> Result<(), RuntimeError> {
    if c.meta.ports.is_empty() {
        return Ok(());
    }
    let Some(a) = crate::network::attachment(c) else {
        return Ok(());
    };
    let bound = crate::network::ports::forward(&c.meta.ports, a.ip)?;
    crate::network::record_ports(c, &bound)?;
    Ok(())
}

fn pipe() -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| io_err("creating a pipe")(e.into()))
}

/// The container's output descriptors and the stream each one is.
type Streams = Vec<(OwnedFd, &'static str)>;

/// Where the container's output goes besides the log.
pub(crate) struct Outputs {
    /// Copy to barge's own stdout/stderr.
    pub(crate) to_terminal: bool,
    pub(crate) log: Option<LogFile>,
}

/// Exit status of a reaped child: its code, or 128 + the signal.
fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

fn set_running(c: &Container, s: &Started) -> Result<(), RuntimeError> {
    let mut st = c.state()?;
    st.status = Status::Running;
    st.pid = Some(s.pid);
    st.pid_start = Some(s.start_time);
    let me = std::process::id() as i32;
    st.monitor_pid = Some(me);
    st.monitor_start = crate::container::process_start_time(me);
    st.started_at = Some(crate::now_rfc3339());
    st.finished_at = None;
    st.exit_code = None;
    st.error = None;
    st.oom_killed = false;
    c.set_state(&st)
}

fn set_exited(c: &Container, code: i32, oom_killed: bool) -> Result<(), RuntimeError> {
    let mut st: State = c.state().unwrap_or_else(|_| State::created());
    st.status = Status::Exited;
    st.exit_code = Some(code);
    st.oom_killed = oom_killed;
    st.finished_at = Some(crate::now_rfc3339());
    c.set_state(&st)
}

/// Where the relay copies what barge reads on its own stdin.
pub(crate) enum StdinTo<'a> {
    /// The container's terminal: it stays open at barge's end of input.
    Pty(&'a OwnedFd),
    /// The write end of the container's stdin pipe (non-blocking): closed
    /// at barge's end of input, so the container sees it too.
    Pipe(OwnedFd),
}

/// The container's stdio as pipes: its ends (stdin only when `stdin`),
/// barge's output ends, and barge's end of the stdin pipe.
pub(crate) fn stdio_pipes(stdin: bool) -> Result<(ChildIo, Streams, Option<StdinTo<'static>>), RuntimeError> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (child_in, to) = if stdin {
        let (in_r, in_w) = pipe()?;
        rustix::fs::fcntl_setfl(&in_w, rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| io_err("setting up stdin")(e.into()))?;
        (Some(in_r), Some(StdinTo::Pipe(in_w)))
    } else {
        (None, None)
    };
    Ok((
        ChildIo::Fds {
            stdin: child_in,
            stdout: out_w,
            stderr: err_w,
        },
        vec![(out_r, "stdout"), (err_r, "stderr")],
        to,
    ))
}

/// The relay loop: until the container exits and its output ends.
pub(crate) fn relay(
    started: &Started,
    out: Outputs,
    streams: Streams,
    mut stdin_to: Option<StdinTo<'_>>,
    signals: Option<&SignalFd>,
    pty_master: Option<&OwnedFd>,
) -> i32 {
    let mut log = out.log;
    let mut writers: Vec<LineWriter> = streams.iter().map(|(_, s)| LineWriter::new(s)).collect();
    let (mut readers, names): (Vec<Option<OwnedFd>>, Vec<&str>) =
        streams.into_iter().map(|(fd, name)| (Some(fd), name)).unzip();
    let mut open: Vec<bool> = vec![true; readers.len()];
    let mut stdin_open = stdin_to.is_some();
    // Input read but not yet taken by the container's stdin pipe.
    let mut pending: Vec<u8> = Vec::new();
    let mut exit: Option<i32> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let stdin_fd = rustix::stdio::stdin();
    loop {
        if exit.is_some() && !open.iter().any(|o| *o) {
            break;
        }
        let mut fds: Vec<PollFd> = Vec::new();
        let mut kinds: Vec<(u8, usize)> = Vec::new();
        if exit.is_none() {
            fds.push(PollFd::new(&started.pidfd, PollFlags::IN));
            kinds.push((0, 0));
        }
        for (i, fd) in readers.iter().enumerate() {
            if let (true, Some(fd)) = (open[i], fd) {
                fds.push(PollFd::new(fd, PollFlags::IN));
                kinds.push((1, i));
            }
        }
        if let Some(sig) = signals {
            fds.push(PollFd::new(&sig.0, PollFlags::IN));
            kinds.push((2, 0));
        }
        if stdin_open && exit.is_none() {
            match (&stdin_to, pending.is_empty()) {
                (Some(StdinTo::Pipe(to)), false) => {
                    fds.push(PollFd::new(to, PollFlags::OUT));
                    kinds.push((4, 0));
                }
                _ => {
                    fds.push(PollFd::new(&stdin_fd, PollFlags::IN));
                    kinds.push((3, 0));
                }
            }
        }
        // After the exit, wait briefly for the last output; a process that escaped the PID namespace cannot keep us.
        let timeout = exit.map(|_| rustix::event::Timespec { tv_sec: 2, tv_nsec: 0 });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) if exit.is_some() => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
        let ready: Vec<(u8, usize, PollFlags)> = fds
            .iter()
            .zip(kinds.iter())
            .map(|(f, (k, i))| (*k, *i, f.revents()))
            .collect();
        drop(fds);
        for (kind, i, rev) in ready {
            if rev.is_empty() {
                continue;
            }
            match kind {
                0 => {
                    let mut status = 0;
                    // SAFETY: reaping our own child, named by the pidfd that became readable.
                    let r = unsafe { libc::waitpid(started.pid, &mut status, libc::WNOHANG) };
                    if r == started.pid {
                        exit = Some(exit_code(status));
                    }
                }
                1 => match readers[i].as_ref().map(|fd| rustix::io::read(fd, &mut buf)) {
                    None | Some(Ok(0)) | Some(Err(rustix::io::Errno::IO)) => open[i] = false,
                    Some(Ok(n)) => {
                        if out.to_terminal {
                            let data = &buf[..n];
                            let written = if names[i] == "stderr" {
                                std::io::stderr().write_all(data)
                            } else {
                                let mut so = std::io::stdout().lock();
                                so.write_all(data).and_then(|()| so.flush())
                            };
                            // Nobody reads barge's end any more (`| head`) and
                            // no log wants the rest: the container's write
                            // fails next, as it would on barge's own pipe.
                            if written.is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) && log.is_none() {
                                readers[i] = None;
                                open[i] = false;
                            }
                        }
                        if let Some(l) = log.as_mut() {
                            writers[i].push(&buf[..n], l);
                        }
                    }
                    Some(Err(rustix::io::Errno::INTR)) | Some(Err(rustix::io::Errno::AGAIN)) => {}
                    Some(Err(_)) => open[i] = false,
                },
                2 => {
                    while let Some(sig) = signals.and_then(SignalFd::read) {
                        if sig == libc::SIGWINCH {
                            if let Some(m) = pty_master {
                                copy_window_size(0, m);
                            }
                        } else {
                            // SAFETY: forwarding a signal to our child's pidfd.
                            unsafe {
                                libc::syscall(
                                    libc::SYS_pidfd_send_signal,
                                    started.pidfd.as_raw_fd(),
                                    sig,
                                    std::ptr::null::<libc::siginfo_t>(),
                                    0,
                                )
                            };
                        }
                    }
                }
                3 => match rustix::io::read(stdin_fd, &mut buf) {
                    Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        // The container's stdin pipe closes with barge's input.
                        if matches!(stdin_to, Some(StdinTo::Pipe(_))) {
                            stdin_to = None;
                        }
                    }
                    Ok(n) => match &stdin_to {
                        Some(StdinTo::Pty(to)) => {
                            let _ = rustix::io::write(to, &buf[..n]);
                        }
                        Some(StdinTo::Pipe(_)) => pending.extend_from_slice(&buf[..n]),
                        None => {}
                    },
                },
                _ => {
                    if let Some(StdinTo::Pipe(to)) = &stdin_to {
                        match rustix::io::write(to, &pending) {
                            Ok(n) => {
                                pending.drain(..n);
                            }
                            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                            // The container closed its stdin: drop the rest, as docker does.
                            Err(_) => {
                                pending.clear();
                                stdin_open = false;
                                stdin_to = None;
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(l) = log.as_mut() {
        for w in writers.iter_mut() {
            w.finish(l);
        }
    }
    exit.unwrap_or(255)
}

/// Closes every descriptor above stdio but `keep`: the monitor outlives
/// the barge that started it and must not hold that one's pipes open.
fn close_all_but(keep: &[i32]) {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing descriptors this process will not use; the directory's own fd is among them and already done with.
            unsafe { libc::close(fd) };
        }
    }
}

/// The container's log, rotated as its `--log-opt`s say.
fn open_log(c: &Container) -> Result<LogFile, RuntimeError> {
    let rotation = Rotation::from_opts(&c.meta.log_opts)?;
    LogFile::open(&c.log_path(), rotation).map_err(io_err(format!("opening {}", c.log_path().display())))
}

impl Runtime {
    /// Runs a created container in the foreground: output to the terminal
    /// (and the log, unless it is removed afterwards), signals forwarded.
    /// Returns the container's exit status.
    pub fn run_foreground(&self, c: &Container, fg: Foreground) -> Result<i32, RuntimeError> {
        // With a terminal, signals are always the container's (docker's
        // --sig-proxy is for non-TTY mode): barge is never killed by one
        // while the operator's terminal is in raw mode, so it is restored.
        let signals = if fg.sig_proxy || c.meta.tty {
            Some(SignalFd::new()?)
        } else {
            None
        };
        let keep_log = !c.meta.auto_remove;
        let result = if c.meta.tty {
            let started = runner::start(c, ChildIo::Terminal);
            let mut started = self.started(c, started)?;
            let master = started
                .terminal
                .take()
                .ok_or_else(|| RuntimeError::Corrupt("no terminal came back".into()))?;
            copy_window_size(0, &master);
            let _raw = if c.meta.open_stdin { RawMode::enter(0) } else { None };
            let out = Outputs {
                to_terminal: true,
                log: if keep_log { Some(open_log(c)?) } else { None },
            };
            let read_end = master.try_clone().map_err(|e| io_err("cloning the terminal")(e))?;
            let stdin_to = c.meta.open_stdin.then_some(StdinTo::Pty(&master));
            relay(
                &started,
                out,
                vec![(read_end, "stdout")],
                stdin_to,
                signals.as_ref(),
                Some(&master),
            )
        } else {
            // Pipes relayed by barge, never barge's own stdio: a file or
            // terminal of the host is not the container's to read or change.
            let (io, streams, stdin_to) = stdio_pipes(c.meta.open_stdin)?;
            let started = self.started(c, runner::start(c, io))?;
            let out = Outputs {
                to_terminal: !fg.quiet,
                log: if keep_log { Some(open_log(c)?) } else { None },
            };
            relay(&started, out, streams, stdin_to, signals.as_ref(), None)
        };
        self.finish(c, result)
    }

    /// Records a start (or its failure, removing an `--rm` container).
    fn started(&self, c: &Container, r: Result<Started, RuntimeError>) -> Result<Started, RuntimeError> {
        match r {
            Ok(s) => {
                if let Err(e) = publish_ports(c) {
                    let _ = rustix::process::pidfd_send_signal(&s.pidfd, rustix::process::Signal::KILL);
                    wait_pidfd(&s.pidfd);
                    // SAFETY: reaping our own child.
                    unsafe { libc::waitpid(s.pid, std::ptr::null_mut(), 0) };
                    crate::network::detach(c);
                    return self.started(c, Err(e));
                }
                set_running(c, &s)?;
                Ok(s)
            }
            Err(e) => {
                if c.meta.auto_remove {
                    let _ = self.remove(c);
                } else if let Ok(mut st) = c.state() {
                    st.error = Some(e.to_string());
                    let _ = c.set_state(&st);
                }
                Err(e)
            }
        }
    }

    fn finish(&self, c: &Container, code: i32) -> Result<i32, RuntimeError> {
        if c.meta.auto_remove {
            // `remove` cleans up after an external runtime, detaches the
            // network and releases the cgroup.
            self.remove(c)?;
        } else {
            if c.meta.runtime.is_some() {
                runner::external_cleanup(c);
            }
            crate::network::detach(c);
            // The OOM verdict is read before the cgroup goes.
            let oom_killed = crate::cgroups::release(&c.dir);
            set_exited(c, code, oom_killed)?;
        }
        Ok(code)
    }

    /// Starts a container in the background under a monitor process that
    /// outlives this one. Returns once the container runs (or failed to).
    pub fn run_detached(&self, c: &Container) -> Result<(), RuntimeError> {
        let (ready_r, ready_w) = pipe()?;
        // SAFETY: fork in a single-threaded process; the child only runs the monitor and exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io_err("starting the monitor (fork)")(std::io::Error::last_os_error()));
        }
        if pid == 0 {
            drop(ready_r);
            let code = self.monitor(c, ready_w);
            // SAFETY: leaving the monitor without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        drop(ready_w);
        let mut msg = String::new();
        let _ = File::from(ready_r).read_to_string(&mut msg);
        match msg.strip_prefix("ok") {
            Some(_) => Ok(()),
            None => {
                let (code, message) = runner::parse_failure(msg);
                Err(RuntimeError::Start {
                    code,
                    message: if message.is_empty() {
                        "the monitor failed".into()
                    } else {
                        message
                    },
                })
            }
        }
    }

    /// The monitor process: detach, start, report, relay to the log, record the exit.
    fn monitor(&self, c: &Container, ready: OwnedFd) -> i32 {
        let _ = rustix::process::setsid();
        close_all_but(&[ready.as_raw_fd()]);
        if let Ok(null) = rustix::fs::open("/dev/null", rustix::fs::OFlags::RDWR, rustix::fs::Mode::empty()) {
            let _ = rustix::stdio::dup2_stdin(&null);
            let _ = rustix::stdio::dup2_stdout(&null);
            let _ = rustix::stdio::dup2_stderr(&null);
        }
        let mut ready = File::from(ready);
        let report = |ready: &mut File, e: &RuntimeError| {
            let _ = ready.write_all(format!("{}:{e}", e.exit_code()).as_bytes());
        };
        let log = match open_log(c) {
            Ok(l) => l,
            Err(e) => {
                report(&mut ready, &e);
                return 1;
            }
        };
        let setup = || -> Result<(Started, Streams, Option<OwnedFd>), RuntimeError> {
            if c.meta.tty {
                let mut s = self.started(c, runner::start(c, ChildIo::Terminal))?;
                let master = s
                    .terminal
                    .take()
                    .ok_or_else(|| RuntimeError::Corrupt("no terminal came back".into()))?;
                let read_end = master.try_clone().map_err(io_err("cloning the terminal"))?;
                Ok((s, vec![(read_end, "stdout")], Some(master)))
            } else {
                let (io, streams, _) = stdio_pipes(false)?;
                Ok((self.started(c, runner::start(c, io))?, streams, None))
            }
        };
        let (started, streams, master) = match setup() {
            Ok(x) => x,
            Err(e) => {
                report(&mut ready, &e);
                return 1;
            }
        };
        let _ = ready.write_all(b"ok");
        drop(ready);
        let code = relay(
            &started,
            Outputs {
                to_terminal: false,
                log: Some(log),
            },
            streams,
            None,
            None,
            master.as_ref(),
        );
        drop(master);
        match self.finish(c, code) {
            Ok(_) => 0,
            Err(_) => 1,
        }
    }

    /// `docker stop`: the stop signal, then SIGKILL after `timeout`; waits
    /// until the monitor has recorded the exit.
    pub fn stop(&self, c: &Container, timeout: std::time::Duration) -> Result<(), RuntimeError> {
        let st = c.state()?;
        if st.status != Status::Running {
            return Ok(());
        }
        let sig = runner::parse_signal(&c.meta.stop_signal).unwrap_or(libc::SIGTERM);
        if runner::signal(c, &st, sig).is_ok() && !self.wait_exit(c, timeout)? {
            let _ = runner::signal(c, &st, libc::SIGKILL);
            self.wait_exit(c, std::time::Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// Waits until the container is no longer running; false on timeout.
    pub fn wait_exit(&self, c: &Container, timeout: std::time::Duration) -> Result<bool, RuntimeError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match c.state() {
                Ok(st) if st.status == Status::Running => {}
                // Removed (--rm) or exited.
                _ => return Ok(true),
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The pidfd of a running container, for waiting without polling files.
    pub fn pidfd(&self, c: &Container) -> Option<OwnedFd> {
        let st = c.state().ok()?;
        let pid = rustix::process::Pid::from_raw(st.pid?)?;
        let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()?;
        (crate::container::process_start_time(st.pid?) == st.pid_start).then_some(fd)
    }
}

/// Blocks until `fd` (a pidfd) says its process exited.
pub fn wait_pidfd(fd: &OwnedFd) {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    while matches!(poll(&mut fds, None), Err(rustix::io::Errno::INTR)) {}
}
