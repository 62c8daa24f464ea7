//! Attaching to a running container (docker's `attach`) and its detach
//! keys.
//!
//! The process that watches a container (the monitor, [`crate::monitor`])
//! listens on `attach.sock` in the container's directory (never in its
//! rootfs): mode 0600, and a peer whose uid (`SO_PEERCRED`) is not the
//! monitor's own is dropped at once. Several clients may be attached. Each
//! gets the container's output from then on, in frames that keep stdout
//! and stderr apart, and sends its stdin, its window size and signals back.
//! A client's queue is bounded: one that does not read keeps neither the
//! container nor the log waiting, it is disconnected. When the container
//! exits and its exit is recorded, every client is told its status.
//!
//! A frame is a kind byte, the payload's length (u32, big-endian), and the
//! payload.

use crate::container::{Container, Status};
use crate::monitor::RawMode;
use crate::{io_err, RuntimeError};
use barge_runner::sys::SignalFd;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::process::Signal;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

/// The socket's name in the container's directory.
pub const SOCKET: &str = "attach.sock";

/// docker's default detach keys.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Monitor to client: the container's stdout (or its terminal's output).
const OUT: u8 = b'o';
/// Monitor to client: the container's stderr.
const ERR: u8 = b'e';
/// Monitor to client: the container exited with this status (i32, big-endian).
const EXIT: u8 = b'x';
/// Client to monitor: bytes for the container's stdin.
const IN: u8 = b'i';
/// Client to monitor: the client's window size (rows, columns: u16 each).
const RESIZE: u8 = b'w';
/// Client to monitor: a signal for the container (i32).
const SIGNAL: u8 = b's';

/// The largest payload a client may send in one frame.
const MAX_FRAME: usize = 64 * 1024;
/// What may wait for a client before it is disconnected as too slow.
const CLIENT_QUEUE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// docker's message for a `--detach-keys` it cannot read.
    #[error("Invalid detach keys ({0}) provided")]
    BadKeys(String),
    #[error("You cannot attach to a stopped container, start it first")]
    Stopped,
    #[error("You cannot attach to a restarting container, wait until it is running")]
    Restarting,
    #[error("You cannot attach to a paused container, unpause it first")]
    Paused,
    #[error("the monitor of container {0} does not accept attach connections (it was started by an older barge); restart the container")]
    NoEndpoint(String),
    #[error(
        "the monitor of the container closed the connection (a client that does not read its output is disconnected)"
    )]
    Dropped,
}

/// Parses docker's detach key format: comma-separated keys, each a single
/// character or `ctrl-` and one of `a`–`z`, `@`, `[`, `\`, `]`, `^`, `_`.
pub fn parse_detach_keys(keys: &str) -> Result<Vec<u8>, AttachError> {
    let bad = || AttachError::BadKeys(keys.to_string());
    let mut out = Vec::new();
    for key in keys.split(',') {
        let b = key.as_bytes();
        match b {
            [c] => out.push(*c),
            [b'c', b't', b'r', b'l', b'-', c] => match c {
                b'a'..=b'z' => out.push(c - b'a' + 1),
                b'@' => out.push(0),
                b'[' | b'\\' | b']' | b'^' | b'_' => out.push(c - b'@'),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// Watches input for the detach keys. Bytes that may begin the sequence
/// are held back until the sequence completes (they are never sent) or
/// breaks (they are sent with what follows), as docker's escape proxy.
#[derive(Debug, Clone)]
pub struct Escape {
    keys: Vec<u8>,
    matched: usize,
}

impl Escape {
    pub fn new(keys: Vec<u8>) -> Escape {
        Escape { keys, matched: 0 }
    }

    /// The bytes of `input` to pass on, and whether the sequence was completed.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Takes the complete frames off the front of `buf`; `None` for a frame
/// that is too big (the peer is not barge, or not well).
fn take_frames(buf: &mut Vec<u8>, max: usize) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut frames = Vec::new();
    let mut at = 0;
    while buf.len() - at >= 5 {
        let len = u32::from_be_bytes([buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4]]) as usize;
        if len > max {
            return None;
        }
        if buf.len() - at - 5 < len {
            break;
        }
        frames.push((buf[at], buf[at + 5..at + 5 + len].to_vec()));
        at += 5 + len;
    }
    buf.drain(..at);
    Some(frames)
}

/// The path of the container's attach socket through an `O_PATH`
/// descriptor of its directory: `sun_path` holds 108 bytes, a store's
/// root may be longer. Keep the descriptor while the path is used.
fn socket_path(c: &Container) -> Result<(OwnedFd, PathBuf), RuntimeError> {
    use rustix::fs::{Mode, OFlags};
    let dir = rustix::fs::open(
        &c.dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(format!("opening {}", c.dir.display()))(e.into()))?;
    use rustix::fd::AsRawFd;
    let path = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET}", dir.as_raw_fd()));
    Ok((dir, path))
}

/// What a client asked of the container.
pub(crate) enum Request {
    Stdin(Vec<u8>),
    Resize(rustix::termios::Winsize),
    Signal(i32),
}

struct Peer {
    sock: UnixStream,
    queue: Vec<u8>,
    input: Vec<u8>,
}

/// The monitor's end: the listening socket and the attached clients.
pub(crate) struct Hub {
    listener: UnixListener,
    peers: Vec<Option<Peer>>,
    path: PathBuf,
    uid: u32,
}

/// What the relay polls a hub for: the listener, or peer `i`.
#[derive(Clone, Copy)]
pub(crate) enum Slot {
    Listener,
    Peer(usize),
}

impl Hub {
    /// Listens on the container's attach socket (replacing a stale one).
    pub(crate) fn listen(c: &Container) -> Result<Hub, RuntimeError> {
        let (_dir, path) = socket_path(c)?;
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(io_err("listening for attach clients"))?;
        // The container's directory is 0700 too; this keeps the socket the
        // owner's even where that changes.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("setting the attach socket's mode"))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("listening for attach clients"))?;
        Ok(Hub {
            listener,
            peers: Vec::new(),
            path: c.dir.join(SOCKET),
            uid: rustix::process::geteuid().as_raw(),
        })
    }

    /// The descriptors to poll and what each one is.
    pub(crate) fn poll_list(&self) -> Vec<(BorrowedFd<'_>, PollFlags, Slot)> {
        let mut list = vec![(self.listener.as_fd(), PollFlags::IN, Slot::Listener)];
        for (i, p) in self.peers.iter().enumerate() {
            if let Some(p) = p {
                let mut flags = PollFlags::IN;
                if !p.queue.is_empty() {
                    flags |= PollFlags::OUT;
                }
                list.push((p.sock.as_fd(), flags, Slot::Peer(i)));
            }
        }
        list
    }

    /// Handles a ready descriptor; returns what its client asked.
    pub(crate) fn ready(&mut self, slot: Slot, rev: PollFlags) -> Vec<Request> {
        match slot {
            Slot::Listener => {
                self.accept();
                Vec::new()
            }
            Slot::Peer(i) => {
                let mut asked = Vec::new();
                let keep = match self.peers.get_mut(i).and_then(Option::as_mut) {
                    Some(p) => Self::serve(p, rev, &mut asked),
                    None => true,
                };
                if !keep {
                    self.peers[i] = None;
                }
                asked
            }
        }
    }

    fn accept(&mut self) {
        while let Ok((sock, _)) = self.listener.accept() {
            // Only the store's own user: anyone else is dropped unheard.
            match rustix::net::sockopt::socket_peercred(&sock) {
                Ok(cred) if cred.uid.as_raw() == self.uid => {}
                _ => continue,
            }
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            let peer = Peer {
                sock,
                queue: Vec::new(),
                input: Vec::new(),
            };
            match self.peers.iter().position(Option::is_none) {
                Some(i) => self.peers[i] = Some(peer),
                None => self.peers.push(Some(peer)),
            }
        }
    }

    /// Reads and writes what peer `p` is ready for; false: drop it.
    fn serve(p: &mut Peer, rev: PollFlags, asked: &mut Vec<Request>) -> bool {
        if rev.contains(PollFlags::OUT) && !flush(p) {
            return false;
        }
        if rev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            let mut buf = [0u8; 16 * 1024];
            match p.sock.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => p.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {
                }
                Err(_) => return false,
            }
            let Some(frames) = take_frames(&mut p.input, MAX_FRAME) else {
                return false;
            };
            for (kind, body) in frames {
                match (kind, body.as_slice()) {
                    (IN, _) => asked.push(Request::Stdin(body)),
                    (RESIZE, [r0, r1, c0, c1]) => asked.push(Request::Resize(rustix::termios::Winsize {
                        ws_row: u16::from_be_bytes([*r0, *r1]),
                        ws_col: u16::from_be_bytes([*c0, *c1]),
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    })),
                    (SIGNAL, [a, b, c, d]) => asked.push(Request::Signal(i32::from_be_bytes([*a, *b, *c, *d]))),
                    _ => return false,
                }
            }
        }
        true
    }

    /// Queues output of `stream` ("stdout" or "stderr") for every client;
    /// a client whose queue is full is disconnected.
    pub(crate) fn broadcast(&mut self, stream: &str, data: &[u8]) {
        let kind = if stream == "stderr" { ERR } else { OUT };
        let f = frame(kind, data);
        for slot in self.peers.iter_mut() {
            let Some(p) = slot else { continue };
            if p.queue.len() + f.len() > CLIENT_QUEUE {
                *slot = None;
                continue;
            }
            p.queue.extend_from_slice(&f);
            if !flush(p) {
                *slot = None;
            }
        }
    }

    /// Tells every client the container's exit status (waiting a little
    /// for each to take its queue), then stops listening.
    pub(crate) fn exited(mut self, code: i32) {
        let _ = std::fs::remove_file(&self.path);
        let f = frame(EXIT, &code.to_be_bytes());
        for p in self.peers.iter_mut().flatten() {
            if p.queue.len() + f.len() > CLIENT_QUEUE {
                continue;
            }
            p.queue.extend_from_slice(&f);
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while !p.queue.is_empty() && std::time::Instant::now() < deadline {
                let mut fds = [PollFd::new(&p.sock, PollFlags::OUT)];
                let _ = poll(
                    &mut fds,
                    Some(&rustix::event::Timespec {
                        tv_sec: 0,
                        tv_nsec: 100_000_000,
                    }),
                );
                if !flush(p) {
                    break;
                }
            }
        }
    }
}

/// Writes what the socket takes of `p`'s queue; false when the client is gone.
fn flush(p: &mut Peer) -> bool {
    while !p.queue.is_empty() {
        match p.sock.write(&p.queue) {
            Ok(0) => return false,
            Ok(n) => {
                p.queue.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// How `attach` connects.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// Relay barge's stdin (when the container has an open stdin).
    pub stdin: bool,
    /// Forward barge's signals (without a terminal; docker's --sig-proxy).
    pub sig_proxy: bool,
    /// The detach keys, already parsed.
    pub detach_keys: Vec<u8>,
}

/// How an attached session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The container exited with this status.
    Exited(i32),
    /// The user typed the detach keys; the container runs on.
    Detached,
}

/// The window size of barge's terminal as a resize frame.
fn resize_frame() -> Option<Vec<u8>> {
    let ws = rustix::termios::tcgetwinsize(rustix::stdio::stdin())
        .or_else(|_| rustix::termios::tcgetwinsize(rustix::stdio::stdout()))
        .ok()?;
    let mut body = ws.ws_row.to_be_bytes().to_vec();
    body.extend_from_slice(&ws.ws_col.to_be_bytes());
    Some(frame(RESIZE, &body))
}

impl crate::Runtime {
    /// `attach`: relays the running container's output from now on to
    /// barge's stdout and stderr, barge's stdin to it (with an open
    /// stdin), until it exits or the detach keys are typed.
    pub fn attach(&self, c: &Container, o: &AttachOptions) -> Result<Ended, RuntimeError> {
        let st = c.state()?;
        match st.status {
            Status::Running if st.restarting => return Err(AttachError::Restarting.into()),
            Status::Running => {}
            _ if st.restarting => return Err(AttachError::Restarting.into()),
            _ => return Err(AttachError::Stopped.into()),
        }
        if self.paused(c) {
            return Err(AttachError::Paused.into());
        }
        let (_dir, path) = socket_path(c)?;
        let mut sock = match UnixStream::connect(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AttachError::NoEndpoint(c.meta.name.clone()).into())
            }
            Err(e) => return Err(io_err(format!("connecting to the monitor of {}", c.meta.name))(e)),
        };
        let send_err = io_err("sending to the container's monitor");
        let stdin_on = o.stdin && c.meta.open_stdin;
        let tty = c.meta.tty;
        let _raw = if tty && stdin_on {
            RawMode::enter(rustix::stdio::stdin())
        } else {
            None
        };
        if tty {
            if let Some(f) = resize_frame() {
                sock.write_all(&f).map_err(send_err)?;
            }
        }
        // With a terminal, docker proxies no signal; the window size follows.
        let signals = if tty {
            Some(SignalFd::new(&[Signal::WINCH]).map_err(io_err("creating a signalfd"))?)
        } else if o.sig_proxy {
            Some(crate::monitor::forwarded_signals()?)
        } else {
            None
        };
        // As docker's, the detach keys are read on a terminal only: a
        // pipe's bytes all go to the container.
        let mut escape = Escape::new(if tty { o.detach_keys.clone() } else { Vec::new() });
        let mut stdin_open = stdin_on;
        let mut input = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let stdin = rustix::stdio::stdin();
        loop {
            let mut fds = vec![PollFd::new(&sock, PollFlags::IN)];
            if let Some(s) = &signals {
                fds.push(PollFd::new(s, PollFlags::IN));
            }
            if stdin_open {
                fds.push(PollFd::new(&stdin, PollFlags::IN));
            }
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io_err("waiting for the container")(e.into())),
            }
            let revs: Vec<PollFlags> = fds.iter().map(PollFd::revents).collect();
            drop(fds);
            if !revs[0].is_empty() {
                let n = match sock.read(&mut buf) {
                    Ok(0) => return Err(AttachError::Dropped.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                    Err(e) => return Err(io_err("reading from the container's monitor")(e)),
                };
                input.extend_from_slice(&buf[..n]);
                let frames = take_frames(&mut input, usize::MAX).unwrap_or_default();
                for (kind, body) in frames {
                    match (kind, body.as_slice()) {
                        (OUT, data) => {
                            let mut so = std::io::stdout().lock();
                            let _ = so.write_all(data).and_then(|()| so.flush());
                        }
                        (ERR, data) => {
                            let _ = std::io::stderr().write_all(data);
                        }
                        (EXIT, [a, b, c, d]) => return Ok(Ended::Exited(i32::from_be_bytes([*a, *b, *c, *d]))),
                        _ => {}
                    }
                }
            }
            let mut at = 1;
            if let Some(s) = &signals {
                if !revs[at].is_empty() {
                    while let Some(sig) = s.read() {
                        let f = if sig == Signal::WINCH.as_raw() {
                            if !tty {
                                continue;
                            }
                            match resize_frame() {
                                Some(f) => f,
                                None => continue,
                            }
                        } else {
                            frame(SIGNAL, &sig.to_be_bytes())
                        };
                        sock.write_all(&f)
                            .map_err(io_err("sending to the container's monitor"))?;
                    }
                }
                at += 1;
            }
            if stdin_open && !revs[at].is_empty() {
                match rustix::io::read(stdin, &mut buf) {
                    Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                    // The container's stdin stays open for others, as docker's
                    // (it is closed only for the client that started it).
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let (pass, detached) = escape.feed(&buf[..n]);
                        if !pass.is_empty() {
                            sock.write_all(&frame(IN, &pass))
                                .map_err(io_err("sending to the container's monitor"))?;
                        }
                        if detached {
                            return Ok(Ended::Detached);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_as_docker_reads_them() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            parse_detach_keys("a,ctrl-@,ctrl-[,ctrl-_").unwrap(),
            vec![b'a', 0, 27, 31]
        );
        assert_eq!(parse_detach_keys("ctrl-\\").unwrap(), vec![28]);
        for bad in ["", "ctrl-", "ctrl-1", "ab", "ctrl-p,", "ctrl-A", "ctrl-pp"] {
            let e = parse_detach_keys(bad).unwrap_err();
            assert_eq!(e.to_string(), format!("Invalid detach keys ({bad}) provided"));
        }
    }

    #[test]
    fn escape_holds_a_prefix_and_passes_a_broken_one() {
        let mut e = Escape::new(vec![16, 17]);
        assert_eq!(e.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(e.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(e.feed(b"x\x10\x10"), (b"x\x10".to_vec(), false));
        assert_eq!(e.feed(b"\x11rest"), (Vec::new(), true));
        let mut none = Escape::new(Vec::new());
        assert_eq!(none.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }

    #[test]
    fn frames_split_anywhere_and_refuse_oversize() {
        let mut buf = frame(IN, b"hello");
        buf.extend_from_slice(&frame(SIGNAL, &15i32.to_be_bytes())[..3]);
        let got = take_frames(&mut buf, MAX_FRAME).unwrap();
        assert_eq!(got, vec![(IN, b"hello".to_vec())]);
        assert_eq!(buf.len(), 3);
        let mut big = frame(IN, &vec![0; MAX_FRAME + 1]);
        assert!(take_frames(&mut big, MAX_FRAME).is_none());
    }
}
