//! The process that watches a running container: relays its output (to
//! the terminal and the log), forwards signals, waits for it, and records
//! its exit. `run` in the foreground is its own monitor (`run -it` forks
//! one that stays on the terminal until detached); `run -d` and
//! `start` fork one that outlives the barge that started it. Every
//! monitor serves attach clients ([`crate::attach`]). The forked
//! monitor also keeps the container's restart policy ([`crate::restart`]);
//! a foreground run whose container is due a restart hands it to one.

use crate::attach::{Escape, Hub, Request, Slot};
use crate::container::{Container, State, Status};
use crate::logs::{LineWriter, LogDriver, LogFile, Rotation};
use crate::runner::{self, ChildIo, Started};
use crate::{io_err, Runtime, RuntimeError};
use barge_runner::sys::{Forked, SignalFd};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::process::{Pid, Signal, WaitOptions};
use std::fs::File;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// How a foreground container talks to the user.
#[derive(Debug, Clone)]
pub struct Foreground {
    /// Forward barge's signals to the container (docker's `--sig-proxy`).
    pub sig_proxy: bool,
    /// Copy the container's stdout (and a terminal's output) to barge's
    /// own; it is logged either way (docker's `-a stdout`).
    pub stdout: bool,
    /// Copy the container's stderr to barge's own (`-a stderr`).
    pub stderr: bool,
    /// The keys that detach barge from a container with a terminal and
    /// an open stdin (`-it`), leaving it running (parsed `--detach-keys`; docker's default when
    /// `None`).
    pub detach_keys: Option<Vec<u8>>,
}

impl Foreground {
    /// Both streams shown, signals forwarded as `sig_proxy` says.
    pub fn attached(sig_proxy: bool) -> Foreground {
        Foreground {
            sig_proxy,
            stdout: true,
            stderr: true,
            detach_keys: None,
        }
    }
}

/// Signals a monitor forwards to the container.
const FORWARDED: &[Signal] = &[
    Signal::HUP,
    Signal::INT,
    Signal::QUIT,
    Signal::TERM,
    Signal::USR1,
    Signal::USR2,
    Signal::WINCH,
];

/// Blocks the forwarded signals and returns a signalfd for them.
pub(crate) fn forwarded_signals() -> Result<SignalFd, RuntimeError> {
    SignalFd::new(FORWARDED).map_err(io_err("creating a signalfd"))
}

/// Puts a terminal in raw mode until dropped.
pub(crate) struct RawMode<Fd: AsFd> {
    fd: Fd,
    saved: rustix::termios::Termios,
}

impl<Fd: AsFd> RawMode<Fd> {
    pub(crate) fn enter(fd: Fd) -> Option<RawMode<Fd>> {
        if !rustix::termios::isatty(&fd) {
            return None;
        }
        let saved = rustix::termios::tcgetattr(&fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &raw);
        Some(RawMode { fd, saved })
    }
}

impl<Fd: AsFd> Drop for RawMode<Fd> {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(&self.fd, rustix::termios::OptionalActions::Now, &self.saved);
    }
}

/// The window size of terminal `from` on terminal `to`.
pub(crate) fn copy_window_size(from: impl AsFd, to: &OwnedFd) {
    if let Ok(ws) = rustix::termios::tcgetwinsize(from) {
        let _ = rustix::termios::tcsetwinsize(to, ws);
    }
}

/// Starts forwarding the container's published ports (on threads of this,
/// the monitor process) and records the host ports bound.
fn publish_ports(c: &Container) -> Result<(), RuntimeError> {
    // A user-mode network's tool publishes its ports itself.
    if c.meta.ports.is_empty() || c.meta.network == crate::Network::User {
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
    /// Copy the container's stdout to barge's own.
    pub(crate) to_stdout: bool,
    /// Copy the container's stderr to barge's own.
    pub(crate) to_stderr: bool,
    pub(crate) log: Option<LogFile>,
}

/// Exit status of a reaped child: its code, or 128 + the signal.
pub(crate) fn exit_code(status: rustix::process::WaitStatus) -> i32 {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 255,
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
    st.restarting = false;
    c.set_state(&st)
}

/// Whether `c`'s restart policy (read anew: `update` may have changed it)
/// starts it again after it exited with `code`: not once a user stopped
/// it, nor for an `--rm` container.
fn restart_wanted(c: &Container, st: &State, code: i32) -> bool {
    let policy = c.restart_policy();
    !c.meta.auto_remove && !policy.is_no() && !st.manually_stopped && policy.wants_restart(code, st.restart_count)
}

/// A user starts the container: its policy applies again.
fn clear_manual_stop(c: &Container) -> Result<(), RuntimeError> {
    let mut st = c.state()?;
    if st.manually_stopped {
        st.manually_stopped = false;
        c.set_state(&st)?;
    }
    Ok(())
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

/// What a monitor's relay serves besides its own stdio.
#[derive(Default)]
pub(crate) struct Attachments {
    /// The attach socket and its clients.
    pub(crate) hub: Option<Hub>,
    /// A foreground relay that may detach (barge's forked monitor).
    pub(crate) detach: Option<Detach>,
    /// Do not read barge's own stdin (a detached monitor's is /dev/null):
    /// the container's stdin is fed by attached clients only.
    pub(crate) no_own_stdin: bool,
}

/// Points this process's stdin, stdout and stderr at `/dev/null`.
fn stdio_to_null() {
    if let Ok(null) = rustix::fs::open("/dev/null", rustix::fs::OFlags::RDWR, rustix::fs::Mode::empty()) {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
}

/// A foreground monitor's way out: its detach keys, the link to the barge
/// that waits for it, and the operator's terminal mode to restore.
pub(crate) struct Detach {
    escape: Escape,
    link: Option<std::os::unix::net::UnixStream>,
    raw: Option<RawMode<rustix::fd::BorrowedFd<'static>>>,
}

impl Detach {
    /// Leaves the operator's terminal (restored) and session, then tells
    /// the waiting barge, which returns; the relay goes on to the log and
    /// attached clients.
    fn now(&mut self, out: &mut Outputs) {
        self.raw.take();
        stdio_to_null();
        let _ = rustix::process::setsid();
        if let Some(mut link) = self.link.take() {
            let _ = link.write_all(b"d");
        }
        out.to_stdout = false;
        out.to_stderr = false;
    }
}

/// The relay loop: until the container exits and its output ends.
pub(crate) fn relay(
    started: &Started,
    out: Outputs,
    streams: Streams,
    stdin_to: Option<StdinTo<'_>>,
    signals: Option<&SignalFd>,
    pty_master: Option<&OwnedFd>,
) -> i32 {
    relay_with(
        started,
        out,
        streams,
        stdin_to,
        signals,
        pty_master,
        Attachments::default(),
    )
    .0
}

/// [`relay`], serving attach clients and detaching as `more` says;
/// returns the exit status and the clients, to be told it once recorded.
pub(crate) fn relay_with(
    started: &Started,
    mut out: Outputs,
    streams: Streams,
    mut stdin_to: Option<StdinTo<'_>>,
    signals: Option<&SignalFd>,
    pty_master: Option<&OwnedFd>,
    more: Attachments,
) -> (i32, Option<Hub>) {
    let Attachments {
        mut hub,
        mut detach,
        no_own_stdin,
    } = more;
    let mut log = out.log.take();
    let mut writers: Vec<LineWriter> = streams.iter().map(|(_, s)| LineWriter::new(s)).collect();
    let (mut readers, names): (Vec<Option<OwnedFd>>, Vec<&str>) =
        streams.into_iter().map(|(fd, name)| (Some(fd), name)).unzip();
    let mut open: Vec<bool> = vec![true; readers.len()];
    let mut stdin_open = stdin_to.is_some() && !no_own_stdin;
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
            fds.push(PollFd::new(sig, PollFlags::IN));
            kinds.push((2, 0));
        }
        if exit.is_none() {
            match (&stdin_to, pending.is_empty()) {
                (Some(StdinTo::Pipe(to)), false) => {
                    fds.push(PollFd::new(to, PollFlags::OUT));
                    kinds.push((4, 0));
                }
                _ if stdin_open => {
                    fds.push(PollFd::new(&stdin_fd, PollFlags::IN));
                    kinds.push((3, 0));
                }
                _ => {}
            }
        }
        let slots: Vec<Slot> = match &hub {
            Some(h) => h
                .poll_list()
                .into_iter()
                .map(|(fd, flags, slot)| {
                    fds.push(PollFd::from_borrowed_fd(fd, flags));
                    kinds.push((5, 0));
                    slot
                })
                .collect(),
            None => Vec::new(),
        };
        if let Some(link) = detach.as_ref().and_then(|d| d.link.as_ref()) {
            fds.push(PollFd::new(link, PollFlags::IN));
            kinds.push((6, 0));
        }
        // After the exit, wait briefly for the last output; a process that escaped the PID namespace cannot keep us.
        let timeout = exit.map(|_| rustix::event::Timespec { tv_sec: 2, tv_nsec: 0 });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) if exit.is_some() => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
        let mut slot = 0;
        let ready: Vec<(u8, usize, PollFlags)> = fds
            .iter()
            .zip(kinds.iter())
            .map(|(f, (k, i))| {
                // A hub's descriptors are numbered by their slot.
                let i = if *k == 5 {
                    slot += 1;
                    slot - 1
                } else {
                    *i
                };
                (*k, i, f.revents())
            })
            .collect();
        drop(fds);
        for (kind, i, rev) in ready {
            if rev.is_empty() {
                continue;
            }
            match kind {
                0 => {
                    // Our own child, named by the pidfd that became readable.
                    let pid = Pid::from_raw(started.pid);
                    let reaped = pid.and_then(|pid| rustix::process::waitpid(Some(pid), WaitOptions::NOHANG).ok());
                    if let Some(Some((_, status))) = reaped {
                        exit = Some(exit_code(status));
                    }
                }
                1 => match readers[i].as_ref().map(|fd| rustix::io::read(fd, &mut buf)) {
                    None | Some(Ok(0)) | Some(Err(rustix::io::Errno::IO)) => open[i] = false,
                    Some(Ok(n)) => {
                        let is_stderr = names[i] == "stderr";
                        if (is_stderr && out.to_stderr) || (!is_stderr && out.to_stdout) {
                            let data = &buf[..n];
                            let written = if is_stderr {
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
                        if let Some(h) = hub.as_mut() {
                            h.broadcast(names[i], &buf[..n]);
                        }
                    }
                    Some(Err(rustix::io::Errno::INTR)) | Some(Err(rustix::io::Errno::AGAIN)) => {}
                    Some(Err(_)) => open[i] = false,
                },
                2 => {
                    while let Some((sig, from)) = signals.and_then(SignalFd::read_from) {
                        // A foreground monitor forwards what the barge that
                        // waits for it sends (the terminal signals both).
                        let forward = match &detach {
                            Some(d) if d.link.is_some() => {
                                from == rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32)
                            }
                            Some(_) => false,
                            None => true,
                        };
                        if sig == Signal::WINCH.as_raw() {
                            if let Some(m) = pty_master {
                                copy_window_size(rustix::stdio::stdin(), m);
                            }
                        } else if forward {
                            let _ = barge_runner::sys::send_signal(&started.pidfd, sig);
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
                    Ok(n) => {
                        let (pass, detached) = match detach.as_mut() {
                            Some(d) => d.escape.feed(&buf[..n]),
                            None => (buf[..n].to_vec(), false),
                        };
                        feed_stdin(&stdin_to, &mut pending, &pass);
                        if let (Some(d), true) = (detach.as_mut(), detached) {
                            d.now(&mut out);
                            stdin_open = false;
                        }
                    }
                },
                5 => {
                    let Some(h) = hub.as_mut() else { continue };
                    for asked in h.ready(slots[i], rev) {
                        match asked {
                            Request::Stdin(data) => feed_stdin(&stdin_to, &mut pending, &data),
                            Request::Resize(ws) => {
                                if let Some(m) = pty_master {
                                    let _ = rustix::termios::tcsetwinsize(m, ws);
                                }
                            }
                            Request::Signal(sig) => {
                                let _ = barge_runner::sys::send_signal(&started.pidfd, sig);
                            }
                        }
                    }
                }
                6 => {
                    // The barge that waited is gone (killed, or its
                    // terminal closed): the container runs on, detached.
                    if let Some(d) = detach.as_mut() {
                        d.link = None;
                        d.now(&mut out);
                        stdin_open = false;
                    }
                }
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
    (exit.unwrap_or(255), hub)
}

/// Input for the container: to its terminal now, or queued for its pipe.
fn feed_stdin(to: &Option<StdinTo<'_>>, pending: &mut Vec<u8>, data: &[u8]) {
    match to {
        Some(StdinTo::Pty(to)) => {
            let _ = rustix::io::write(to, data);
        }
        Some(StdinTo::Pipe(_)) => pending.extend_from_slice(data),
        None => {}
    }
}

/// The container's log, rotated as its `--log-opt`s say; none with
/// `--log-driver none`.
fn open_log(c: &Container) -> Result<Option<LogFile>, RuntimeError> {
    if c.meta.log_driver == LogDriver::None {
        return Ok(None);
    }
    let rotation = Rotation::from_opts(&c.meta.log_opts)?;
    LogFile::open(&c.log_path(), rotation)
        .map(Some)
        .map_err(io_err(format!("opening {}", c.log_path().display())))
}

impl Runtime {
    /// Runs a created container in the foreground: output to the terminal
    /// (and the log, unless it is removed afterwards), signals forwarded.
    /// Returns the container's exit status.
    pub fn run_foreground(&self, c: &Container, fg: Foreground) -> Result<i32, RuntimeError> {
        clear_manual_stop(c)?;
        // As docker's, the detach keys are read on a terminal only.
        if c.meta.open_stdin && c.meta.tty {
            return self.run_forked(c, fg);
        }
        self.run_attached(c, fg, None)
    }

    /// A foreground run that may be detached from (`-it`: the container
    /// reads barge's terminal): a forked monitor, still on the operator's terminal,
    /// runs it while this barge waits. On the detach keys (or when this
    /// barge is killed) the monitor leaves the terminal and goes on alone;
    /// this barge returns 0. Otherwise it returns the monitor's status,
    /// the container's. Signals reach the container through the monitor.
    fn run_forked(&self, c: &Container, fg: Foreground) -> Result<i32, RuntimeError> {
        use std::os::unix::net::UnixStream;
        let (link, theirs) = UnixStream::pair().map_err(io_err("starting the monitor (socketpair)"))?;
        // Blocked before the fork: none sent meanwhile is lost. Without
        // --sig-proxy (and a terminal) a signal ends this barge as docker's.
        let signals = if fg.sig_proxy || c.meta.tty {
            Some(forwarded_signals()?)
        } else {
            None
        };
        let monitor = match barge_runner::sys::fork().map_err(io_err("starting the monitor (fork)"))? {
            Forked::Child => {
                drop(link);
                drop(signals);
                let keys = match &fg.detach_keys {
                    Some(k) => k.clone(),
                    None => crate::attach::parse_detach_keys(crate::attach::DEFAULT_DETACH_KEYS).unwrap_or_default(),
                };
                let mut theirs = theirs;
                let link = theirs.try_clone().ok();
                let detach = Detach {
                    escape: Escape::new(keys),
                    link,
                    raw: None,
                };
                let code = match self.run_attached(c, fg, Some(detach)) {
                    Ok(code) => code,
                    Err(e) => {
                        let _ = theirs.write_all(format!("e{}:{e}", e.exit_code()).as_bytes());
                        e.exit_code()
                    }
                };
                // Without running the parent's destructors.
                barge_runner::sys::exit(code);
            }
            Forked::Parent { child } => child,
        };
        drop(theirs);
        let mut link = link;
        let mut msg = Vec::new();
        loop {
            let mut fds = vec![PollFd::new(&link, PollFlags::IN)];
            if let Some(s) = &signals {
                fds.push(PollFd::new(s, PollFlags::IN));
            }
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(io_err("waiting for the container")(e.into())),
            }
            let revs: Vec<PollFlags> = fds.iter().map(PollFd::revents).collect();
            drop(fds);
            if revs.get(1).is_some_and(|r| !r.is_empty()) {
                while let Some(sig) = signals.as_ref().and_then(SignalFd::read) {
                    // The terminal's own resize reaches the monitor too.
                    if sig != Signal::WINCH.as_raw() {
                        if let (Some(pid), Some(sig)) = (Pid::from_raw(monitor), Signal::from_named_raw(sig)) {
                            let _ = rustix::process::kill_process(pid, sig);
                        }
                    }
                }
            }
            if !revs[0].is_empty() {
                let mut buf = [0u8; 4096];
                match link.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => msg.extend_from_slice(&buf[..n]),
                }
                if msg.first() == Some(&b'd') {
                    // Detached: the monitor is no child to wait for any more.
                    return Ok(0);
                }
            }
        }
        let status = Pid::from_raw(monitor)
            .and_then(|pid| rustix::process::waitpid(Some(pid), WaitOptions::empty()).ok().flatten());
        let code = status.map_or(255, |(_, st)| exit_code(st));
        match String::from_utf8_lossy(&msg).strip_prefix('e') {
            Some(failure) => {
                let (code, message) = barge_runner::process::parse_failure(failure.to_string());
                Err(RuntimeError::Relayed { code, message })
            }
            None => Ok(code),
        }
    }

    /// The foreground run proper: relays until the container exits, then
    /// hands it to a forked monitor when its restart policy says so.
    fn run_attached(&self, c: &Container, fg: Foreground, detach: Option<Detach>) -> Result<i32, RuntimeError> {
        let began = Instant::now();
        let code = self.relay_foreground(c, fg, detach)?;
        // As with docker, the command returns; the policy restarts the
        // container in the background.
        if c.state().is_ok_and(|st| restart_wanted(c, &st, code)) {
            self.fork_monitor(c, Some((code, began.elapsed())))?;
        }
        Ok(code)
    }

    fn relay_foreground(&self, c: &Container, fg: Foreground, mut detach: Option<Detach>) -> Result<i32, RuntimeError> {
        // Forked first, while barge is single-threaded and holds none of
        // the container's descriptors; stopped before the exit is recorded.
        let prober = self.fork_prober(c);
        // With a terminal, signals are always the container's (docker's
        // --sig-proxy is for non-TTY mode): barge is never killed by one
        // while the operator's terminal is in raw mode, so it is restored.
        // A forked monitor takes them all: it forwards its parent's.
        let signals = if fg.sig_proxy || c.meta.tty || detach.is_some() {
            Some(forwarded_signals()?)
        } else {
            None
        };
        let keep_log = !c.meta.auto_remove;
        let (result, hub) = if c.meta.tty {
            let started = runner::start(c, ChildIo::Terminal);
            let mut started = self.started(c, started)?;
            let master = started
                .terminal
                .take()
                .ok_or_else(|| RuntimeError::Corrupt("no terminal came back".into()))?;
            copy_window_size(rustix::stdio::stdin(), &master);
            let raw = if c.meta.open_stdin {
                RawMode::enter(rustix::stdio::stdin())
            } else {
                None
            };
            // A monitor that detaches restores the terminal then.
            let _raw = match detach.as_mut() {
                Some(d) => {
                    d.raw = raw;
                    None
                }
                None => raw,
            };
            let out = Outputs {
                to_stdout: fg.stdout,
                to_stderr: fg.stderr,
                log: if keep_log { open_log(c)? } else { None },
            };
            let read_end = master.try_clone().map_err(|e| io_err("cloning the terminal")(e))?;
            let stdin_to = c.meta.open_stdin.then_some(StdinTo::Pty(&master));
            relay_with(
                &started,
                out,
                vec![(read_end, "stdout")],
                stdin_to,
                signals.as_ref(),
                Some(&master),
                Attachments {
                    hub: Hub::listen(c).ok(),
                    detach,
                    no_own_stdin: false,
                },
            )
        } else {
            // Pipes relayed by barge, never barge's own stdio: a file or
            // terminal of the host is not the container's to read or change.
            let (io, streams, stdin_to) = stdio_pipes(c.meta.open_stdin)?;
            let started = self.started(c, runner::start(c, io))?;
            let out = Outputs {
                to_stdout: fg.stdout,
                to_stderr: fg.stderr,
                log: if keep_log { open_log(c)? } else { None },
            };
            relay_with(
                &started,
                out,
                streams,
                stdin_to,
                signals.as_ref(),
                None,
                Attachments {
                    hub: Hub::listen(c).ok(),
                    detach,
                    no_own_stdin: false,
                },
            )
        };
        drop(prober);
        let code = self.finish(c, result)?;
        if let Some(h) = hub {
            h.exited(code);
        }
        Ok(code)
    }

    /// Records a start (or its failure, removing an `--rm` container).
    fn started(&self, c: &Container, r: Result<Started, RuntimeError>) -> Result<Started, RuntimeError> {
        match r {
            Ok(s) => {
                if let Err(e) = publish_ports(c) {
                    let _ = rustix::process::pidfd_send_signal(&s.pidfd, rustix::process::Signal::KILL);
                    wait_pidfd(&s.pidfd);
                    // Reaping our own child.
                    if let Some(pid) = Pid::from_raw(s.pid) {
                        let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
                    }
                    crate::network::detach(c);
                    return self.started(c, Err(e));
                }
                set_running(c, &s)?;
                Ok(s)
            }
            Err(e) => {
                if c.meta.auto_remove {
                    let _ = self.remove(c).and_then(|()| self.remove_anonymous_volumes(c));
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
            // As docker's --rm: its anonymous volumes go with it.
            self.remove_anonymous_volumes(c)?;
        } else {
            if c.meta.runtime.is_some() {
                runner::external_cleanup(c);
            }
            crate::network::detach(c);
            crate::rootless::release_root(c);
            crate::sharing::release(c);
            // The OOM verdict is read before the cgroup goes.
            let oom_killed = barge_cgroups::release(&c.dir);
            set_exited(c, code, oom_killed)?;
        }
        Ok(code)
    }

    /// Starts a container in the background under a monitor process that
    /// outlives this one. Returns once the container runs (or failed to).
    pub fn run_detached(&self, c: &Container) -> Result<(), RuntimeError> {
        clear_manual_stop(c)?;
        self.fork_monitor(c, None)
    }

    /// Forks the monitor; with `after`, the exit status and run time of
    /// the run before, it starts the container when its policy says so.
    fn fork_monitor(&self, c: &Container, after: Option<(i32, Duration)>) -> Result<(), RuntimeError> {
        let (ready_r, ready_w) = pipe()?;
        // barge is single-threaded here; the child only runs the monitor and exits.
        if let Forked::Child = barge_runner::sys::fork().map_err(io_err("starting the monitor (fork)"))? {
            drop(ready_r);
            let code = self.monitor(c, ready_w, after);
            // Without running the parent's destructors.
            barge_runner::sys::exit(code);
        }
        drop(ready_w);
        let mut msg = String::new();
        let _ = File::from(ready_r).read_to_string(&mut msg);
        match msg.strip_prefix("ok") {
            Some(_) => Ok(()),
            None => {
                // The monitor's message is a whole error already ("the
                // process did not start: ..."): relayed as it said it.
                let (code, message) = barge_runner::process::parse_failure(msg);
                Err(RuntimeError::Relayed {
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

    /// The monitor process: detach, start, report, relay to the log, record
    /// the exit; again after each exit its restart policy wants restarted.
    fn monitor(&self, c: &Container, ready: OwnedFd, mut after: Option<(i32, Duration)>) -> i32 {
        let _ = rustix::process::setsid();
        barge_runner::sys::close_all_but(&[ready.as_raw_fd()]);
        stdio_to_null();
        // For a service manager that started `barge start` (PIDFile=):
        // written before the caller hears that the container started.
        let pid_file = c.monitor_pid_path();
        let _ = barge_store::fsutil::write_atomic(&pid_file, format!("{}\n", std::process::id()).as_bytes(), 0o644);
        // Told once: that the container started, or why it did not.
        let mut ready = Some(File::from(ready));
        let tell = |ready: &mut Option<File>, what: Result<(), &RuntimeError>| {
            if let Some(mut r) = ready.take() {
                let _ = match what {
                    Ok(()) => r.write_all(b"ok"),
                    Err(e) => r.write_all(format!("{}:{e}", e.exit_code()).as_bytes()),
                };
            }
        };
        let mut backoff = crate::restart::Backoff::default();
        loop {
            if let Some((code, ran)) = after {
                let Some(delay) = self.restart_due(c, code, ran, &mut backoff) else {
                    break;
                };
                tell(&mut ready, Ok(()));
                if !self.wait_to_restart(c, delay) {
                    break;
                }
            }
            let began = Instant::now();
            let prober = self.fork_prober(c);
            let code = match self.start_logged(c) {
                Ok((started, streams, master, log, stdin_pipe)) => {
                    // Listening before the caller hears of the start: an
                    // `attach` right after `run -d` finds the socket.
                    let hub = Hub::listen(c).ok();
                    tell(&mut ready, Ok(()));
                    // Attach clients feed an open stdin: the terminal, or a pipe
                    // that stays open while no client writes.
                    let stdin_to = match (&master, stdin_pipe) {
                        (Some(m), _) if c.meta.open_stdin => Some(StdinTo::Pty(m)),
                        (_, Some(p)) => Some(p),
                        _ => None,
                    };
                    let (code, hub) = relay_with(
                        &started,
                        Outputs {
                            to_stdout: false,
                            to_stderr: false,
                            log,
                        },
                        streams,
                        stdin_to,
                        None,
                        master.as_ref(),
                        Attachments {
                            hub,
                            detach: None,
                            no_own_stdin: true,
                        },
                    );
                    drop(master);
                    drop(prober);
                    let code = match self.finish(c, code) {
                        Ok(code) => code,
                        Err(_) => return 1,
                    };
                    if let Some(h) = hub {
                        h.exited(code);
                    }
                    code
                }
                // The first start's failure is the caller's to report; a
                // restart's is recorded (`started`) and counts as an exit.
                Err(e) if ready.is_some() => {
                    tell(&mut ready, Err(&e));
                    let _ = std::fs::remove_file(&pid_file);
                    return 1;
                }
                Err(e) => e.exit_code(),
            };
            after = Some((code, began.elapsed()));
        }
        tell(&mut ready, Ok(()));
        let _ = std::fs::remove_file(&pid_file);
        0
    }

    /// Starts the container with its output to pipes (or its terminal) and its log.
    #[allow(clippy::type_complexity)]
    fn start_logged(
        &self,
        c: &Container,
    ) -> Result<
        (
            Started,
            Streams,
            Option<OwnedFd>,
            Option<LogFile>,
            Option<StdinTo<'static>>,
        ),
        RuntimeError,
    > {
        let log = open_log(c)?;
        if c.meta.tty {
            let mut s = self.started(c, runner::start(c, ChildIo::Terminal))?;
            let master = s
                .terminal
                .take()
                .ok_or_else(|| RuntimeError::Corrupt("no terminal came back".into()))?;
            let read_end = master.try_clone().map_err(io_err("cloning the terminal"))?;
            Ok((s, vec![(read_end, "stdout")], Some(master), log, None))
        } else {
            let (io, streams, stdin_to) = stdio_pipes(c.meta.open_stdin)?;
            Ok((self.started(c, runner::start(c, io))?, streams, None, log, stdin_to))
        }
    }

    /// The delay before the policy restarts a container that exited with
    /// `code` after running for `ran`, marked as restarting (by this
    /// monitor); `None`: it stays exited.
    fn restart_due(
        &self,
        c: &Container,
        code: i32,
        ran: Duration,
        backoff: &mut crate::restart::Backoff,
    ) -> Option<Duration> {
        let mut st = c.state().ok()?;
        if !restart_wanted(c, &st, code) {
            return None;
        }
        st.restarting = true;
        st.restart_count += 1;
        let me = std::process::id() as i32;
        st.monitor_pid = Some(me);
        st.monitor_start = crate::container::process_start_time(me);
        c.set_state(&st).ok()?;
        Some(backoff.delay(ran))
    }

    /// Waits out a restart's delay; false when a user stopped the
    /// container meanwhile (or removed it).
    fn wait_to_restart(&self, c: &Container, delay: Duration) -> bool {
        let end = Instant::now() + delay;
        loop {
            let Ok(mut st) = c.state() else { return false };
            if st.manually_stopped {
                st.restarting = false;
                let _ = c.set_state(&st);
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }

    /// `docker stop`: the stop signal, then SIGKILL after `timeout`; waits
    /// until the monitor has recorded the exit.
    pub fn stop(&self, c: &Container, timeout: std::time::Duration) -> Result<(), RuntimeError> {
        let st = self.mark_stopped(c)?;
        if st.status != Status::Running {
            return Ok(());
        }
        let sig = runner::parse_signal(&c.meta.stop_signal).unwrap_or(Signal::TERM.as_raw());
        if runner::signal(c, &st, sig).is_ok() && !self.wait_exit(c, timeout)? {
            let _ = runner::signal(c, &st, Signal::KILL.as_raw());
            self.wait_exit(c, std::time::Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// A user stops or kills the container: its restart policy leaves it
    /// be. A restart under way is let finish (the monitor gives up on
    /// seeing the mark, or has started it already: then it is running and
    /// the caller's signal reaches it). Returns the state after that.
    pub fn mark_stopped(&self, c: &Container) -> Result<State, RuntimeError> {
        let mut st = c.state()?;
        if c.meta.restart.is_no() {
            return Ok(st);
        }
        if !st.manually_stopped {
            st.manually_stopped = true;
            c.set_state(&st)?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while st.restarting && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            st = c.state()?;
        }
        Ok(st)
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
