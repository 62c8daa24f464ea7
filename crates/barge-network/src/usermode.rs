//! The user-mode network of a rootless container: `pasta` (Debian `passt`)
//! or `slirp4netns` attached to a network namespace the user owns, giving
//! it outbound access and published ports without any privilege.
//!
//! A bridge needs root; a user's container gets instead a tap device
//! `eth0` whose other end is a process of the user's that turns its
//! packets into ordinary sockets on the host. Both tools are given the
//! same addresses, so what the container sees does not depend on which
//! one ran: it is [`CONTAINER`] in `10.0.2.0/24`, its default route and
//! the host's loopback are [`GATEWAY`] (when [`Config::host_loopback`]),
//! and its resolver is [`DNS`], forwarded to the host's. Published ports
//! are sockets the tool binds on the host (`-t`/`-u` for pasta, the API
//! socket's `add_hostfwd` for slirp4netns, as podman drives them).
//!
//! The tool runs in the foreground as a child of the caller; [`UserNet`]
//! stops it, and so does dropping it. slirp4netns also exits by itself
//! when the caller dies (its `--exit-fd`); pasta exits when a namespace
//! given as a path is removed, not when a process given by PID exits.

use crate::ports::{PortSpec, Proto};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd};
use rustix::io::{fcntl_setfd, FdFlags};
use rustix::pipe::{pipe_with, PipeFlags};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The container's address on its user-mode network (slirp4netns' default).
pub const CONTAINER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
/// Its prefix length.
pub const PREFIX: u8 = 24;
/// Its default gateway, which also reaches the host's loopback.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The resolver to write in its `resolv.conf`: forwarded to the host's.
pub const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// The interface inside the namespace, named as on a bridge network.
pub const INTERFACE: &str = "eth0";
/// The largest MTU both tools accept: fewer, larger packets through the tool.
const MTU: u32 = 65520;
/// How long a tool may take to configure the namespace and bind the ports.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The program that carries a user-mode network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `pasta`: L4 sockets, splice for local traffic; podman's default.
    Pasta,
    /// `slirp4netns`: a TCP/IP stack in user space (libslirp).
    Slirp4netns,
}

impl Tool {
    /// The executable's name.
    pub fn program(self) -> &'static str {
        match self {
            Tool::Pasta => "pasta",
            Tool::Slirp4netns => "slirp4netns",
        }
    }

    /// The Debian package that installs it.
    pub fn package(self) -> &'static str {
        match self {
            Tool::Pasta => "passt",
            Tool::Slirp4netns => "slirp4netns",
        }
    }

    /// Its path, if it is installed on `PATH`.
    pub fn find(self) -> Option<PathBuf> {
        self.find_in(&std::env::var_os("PATH")?)
    }

    /// Its path in a `PATH`-style list of directories.
    fn find_in(self, path: &std::ffi::OsStr) -> Option<PathBuf> {
        std::env::split_paths(path)
            .map(|dir| dir.join(self.program()))
            .find(|p| p.is_file() && rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok())
    }

    /// slirp4netns if installed, else pasta. slirp4netns first: a
    /// container's start waits for the tool, and slirp4netns is ready in a
    /// few milliseconds where pasta takes 30-50 (its splice pipe pools and
    /// namespace helpers) and as long again to exit; pasta moves bulk
    /// traffic faster, and `Config::tool` picks it.
    pub fn detect() -> Result<(Tool, PathBuf), UserNetError> {
        for tool in [Tool::Slirp4netns, Tool::Pasta] {
            if let Some(path) = tool.find() {
                return Ok((tool, path));
            }
        }
        Err(UserNetError::NoTool)
    }
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.program())
    }
}

/// The namespace to give a network to.
#[derive(Debug, Clone, Copy)]
pub enum Namespace<'a> {
    /// The network and user namespaces of a process (the container's first).
    Pid(u32),
    /// A network namespace file (a bind mount, `/proc/PID/ns/net`, or
    /// `/proc/self/fd/N` for a descriptor) and the user namespace that owns
    /// it (which the tool joins to configure it; none if it is the caller's).
    Path { netns: &'a Path, userns: Option<&'a Path> },
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which tool; `None` takes pasta if installed, else slirp4netns.
    pub tool: Option<Tool>,
    /// Ports to publish; a host port 0 is given a free one.
    pub ports: Vec<PortSpec>,
    /// Whether [`GATEWAY`] reaches services on the host's loopback (as
    /// docker's `host.docker.internal` does); without it only the host's
    /// other addresses are reachable.
    pub host_loopback: bool,
}

impl Config {
    /// The default tool, these ports, the host's loopback reachable.
    pub fn new(ports: Vec<PortSpec>) -> Config {
        Config {
            tool: None,
            ports,
            host_loopback: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserNetError {
    #[error("{tool} is not installed: install the Debian package {package} (apt-get install {package}), or use --network none or host")]
    Missing { tool: Tool, package: &'static str },
    #[error("no user-mode network tool: install the Debian package passt (for pasta) or slirp4netns, or use --network none or host")]
    NoTool,
    #[error("cannot publish port {port} as an unprivileged user: ports below {start} (sysctl net.ipv4.ip_unprivileged_port_start) can only be bound by root; publish a port >= {start}, or have root lower the limit: sysctl -w net.ipv4.ip_unprivileged_port_start={port} ({tool}: {detail})")]
    PrivilegedPort {
        port: u16,
        start: u16,
        tool: Tool,
        detail: String,
    },
    #[error("cannot open /dev/net/tun ({source}): a user-mode network needs a tap device; the device must be mode 0666 (as udev makes it: chmod 0666 /dev/net/tun) and the tun module loaded")]
    Tun { source: std::io::Error },
    #[error("{tool} failed: {detail}")]
    Failed { tool: Tool, detail: String },
    #[error("{tool} did not configure the network within {}s{}", READY_TIMEOUT.as_secs(), if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    Timeout { tool: Tool, detail: String },
    #[error("{tool} refused to publish {spec}: {reply}")]
    Publish { tool: Tool, spec: String, reply: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> UserNetError {
    let context = context.into();
    move |source| UserNetError::Io { context, source }
}

/// A running user-mode network. Dropping it stops the tool.
#[derive(Debug)]
pub struct UserNet {
    tool: Tool,
    child: Option<Child>,
    ports: Vec<PortSpec>,
    /// slirp4netns' `--exit-fd`: it exits when this closes.
    exit_fd: Option<OwnedFd>,
    /// The tool's stderr (and pasta's PID file, slirp4netns' API socket).
    scratch: tempfile::TempDir,
    /// slirp4netns' end of its `--ready-fd`, until [`UserNet::ready`].
    ready_fd: Option<OwnedFd>,
    /// Whether [`UserNet::ready`] has seen the tool ready.
    is_ready: bool,
}

impl UserNet {
    pub fn tool(&self) -> Tool {
        self.tool
    }

    /// The tool's process ID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The published ports, with the host ports actually bound.
    pub fn ports(&self) -> &[PortSpec] {
        &self.ports
    }

    /// Waits until the tool has configured `eth0` and bound every port
    /// (at once if it already has): what [`launch`] leaves to do.
    pub fn ready(&mut self) -> Result<(), UserNetError> {
        if self.is_ready {
            return Ok(());
        }
        let waited = match self.tool {
            Tool::Pasta => wait_pasta(self),
            Tool::Slirp4netns => wait_slirp(self),
        };
        match waited {
            Ok(()) => {
                self.is_ready = true;
                Ok(())
            }
            Err(UserNetError::Failed { tool, detail }) => {
                let _ = self.halt();
                Err(diagnose(tool, detail, &self.ports))
            }
            Err(e) => Err(e),
        }
    }

    /// Stops the tool. With ports published it waits for the tool's exit,
    /// so that they are free on return (an immediately following start may
    /// bind them again); without, it does not wait: the tool's exit
    /// (unmapping its buffers) takes tens of milliseconds that the
    /// container's exit would otherwise wait out, and the process is
    /// reaped by a later `stop` or when this process exits.
    pub fn stop(mut self) -> Result<(), UserNetError> {
        if !self.ports.is_empty() {
            return self.halt();
        }
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = child.kill();
        let mut exiting = EXITING.lock().unwrap_or_else(|e| e.into_inner());
        // Those reaped (or reaped by someone else: an error) are dropped.
        exiting.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        exiting.push(child);
        Ok(())
    }

    /// Ends the tool and waits for its exit.
    fn halt(&mut self) -> Result<(), UserNetError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // Neither tool keeps anything worth a graceful exit (and pasta
        // ignores SIGTERM in a user namespace): SIGKILL, and the wait
        // returns the moment it is gone (no polling in steps).
        let _ = child.kill();
        child.wait().map_err(io_err(format!("waiting for {}", self.tool)))?;
        Ok(())
    }
}

/// Tools [`UserNet::stop`] killed without waiting for, until reaped.
static EXITING: std::sync::Mutex<Vec<Child>> = std::sync::Mutex::new(Vec::new());

impl Drop for UserNet {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// The lowest port an unprivileged process may bind
/// (`net.ipv4.ip_unprivileged_port_start`; 1024 if unreadable).
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// Gives `ns` a user-mode network with `config.ports` published, once the
/// tool has configured `eth0` and bound every port.
pub fn start(ns: Namespace, config: &Config) -> Result<UserNet, UserNetError> {
    let mut net = launch(ns, config)?;
    net.ready()?;
    Ok(net)
}

/// Starts the tool for `ns` without waiting for it: the caller prepares
/// the rest of the container meanwhile (the tool takes tens of
/// milliseconds) and calls [`UserNet::ready`] before anything runs in
/// the namespace.
pub fn launch(ns: Namespace, config: &Config) -> Result<UserNet, UserNetError> {
    let (tool, program) = match config.tool {
        Some(tool) => {
            let path = tool.find().ok_or(UserNetError::Missing {
                tool,
                package: tool.package(),
            })?;
            (tool, path)
        }
        None => Tool::detect()?,
    };
    // Both tools need it, and say only "failed to open tun" without it.
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|source| UserNetError::Tun { source })?;
    let ports = config
        .ports
        .iter()
        .map(|p| with_host_port(p.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let scratch = tempfile::Builder::new()
        .prefix("barge-usernet-")
        .tempdir()
        .map_err(io_err("creating a directory for the network tool"))?;
    let stderr_path = scratch.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).map_err(io_err("creating the network tool's log"))?;
    let mut cmd = Command::new(&program);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
    let mut net = UserNet {
        tool,
        child: None,
        ports,
        exit_fd: None,
        scratch,
        ready_fd: None,
        is_ready: false,
    };
    match tool {
        Tool::Pasta => start_pasta(&mut net, cmd, ns, config)?,
        Tool::Slirp4netns => start_slirp(&mut net, cmd, ns, config)?,
    }
    Ok(net)
}

/// A failure that publishing a port below the unprivileged start explains.
fn diagnose(tool: Tool, detail: String, ports: &[PortSpec]) -> UserNetError {
    let start = unprivileged_port_start();
    let root = barge_store::fsutil::host_root();
    match ports.iter().find(|p| p.host_port < start) {
        Some(p) if !root => UserNetError::PrivilegedPort {
            port: p.host_port,
            start,
            tool,
            detail,
        },
        _ => UserNetError::Failed { tool, detail },
    }
}

/// `spec` with a free host port chosen if it asks for any. The port is
/// free when chosen; another process could take it before the tool binds
/// it, which then fails as a port in use does.
fn with_host_port(mut spec: PortSpec) -> Result<PortSpec, UserNetError> {
    if spec.host_port != 0 {
        return Ok(spec);
    }
    let addr = (spec.host_ip, 0);
    let local = match spec.proto {
        Proto::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Proto::Udp => UdpSocket::bind(addr).and_then(|s| s.local_addr()),
    };
    spec.host_port = local
        .map_err(io_err(format!(
            "choosing a free {} port on {}",
            spec.proto, spec.host_ip
        )))?
        .port();
    Ok(spec)
}

fn read_log(net: &UserNet) -> String {
    let text = std::fs::read_to_string(net.scratch.path().join("stderr")).unwrap_or_default();
    // slirp4netns narrates every step; its last lines say what went wrong.
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join("; ")
}

/// The tool exited before it was ready: its status and what it said.
fn exited(net: &mut UserNet) -> UserNetError {
    // Taken and reaped: its PID may be reused, so it must not be signalled.
    let status = net.child.take().and_then(|mut c| c.wait().ok());
    let mut detail = read_log(net);
    if detail.is_empty() {
        detail = match status {
            Some(s) => format!("exited ({s})"),
            None => "exited".to_string(),
        };
    }
    UserNetError::Failed { tool: net.tool, detail }
}

fn spawn(net: &mut UserNet, mut cmd: Command) -> Result<(), UserNetError> {
    let child = cmd.spawn().map_err(io_err(format!("starting {}", net.tool)))?;
    net.child = Some(child);
    Ok(())
}

/// pasta in the foreground: it writes its PID file once the namespace is
/// configured and the ports are bound ([`wait_pasta`]), and exits on any
/// failure before.
fn start_pasta(net: &mut UserNet, mut cmd: Command, ns: Namespace, config: &Config) -> Result<(), UserNetError> {
    let pidfile = net.scratch.path().join("pasta.pid");
    cmd.args(["--foreground", "--quiet", "--config-net", "--ipv4-only"]);
    cmd.arg("--address").arg(CONTAINER.to_string());
    cmd.arg("--netmask").arg(PREFIX.to_string());
    cmd.arg("--gateway").arg(GATEWAY.to_string());
    cmd.arg("--dns-forward").arg(DNS.to_string());
    cmd.arg("--ns-ifname").arg(INTERFACE);
    cmd.arg("--mtu").arg(MTU.to_string());
    cmd.arg("--pid").arg(&pidfile);
    if !config.host_loopback {
        cmd.arg("--no-map-gw");
    }
    // Nothing from the namespace to the host's ports but through the
    // gateway, and only the ports asked for into it (pasta's defaults
    // for a namespace forward every port either way).
    cmd.args(["--tcp-ns", "none", "--udp-ns", "none"]);
    for (flag, proto) in [("--tcp-ports", Proto::Tcp), ("--udp-ports", Proto::Udp)] {
        let specs: Vec<String> = net
            .ports
            .iter()
            .filter(|p| p.proto == proto)
            .map(|p| {
                if p.host_ip.is_unspecified() {
                    format!("{}:{}", p.host_port, p.container_port)
                } else {
                    format!("{}/{}:{}", p.host_ip, p.host_port, p.container_port)
                }
            })
            .collect();
        cmd.arg(flag);
        if specs.is_empty() {
            cmd.arg("none");
        } else {
            cmd.arg(specs.join(","));
        }
    }
    match ns {
        Namespace::Pid(pid) => {
            cmd.arg(pid.to_string());
        }
        Namespace::Path { netns, userns } => {
            if let Some(userns) = userns {
                cmd.arg("--userns").arg(userns);
            }
            cmd.arg("--netns").arg(netns);
        }
    }
    spawn(net, cmd)
}

/// Waits for pasta's PID file, woken when a file in the scratch directory
/// is written (inotify) or pasta exits (its pidfd), not in steps: pasta
/// starts while the container is prepared, and what is left of its
/// start-up is waited for to the moment it ends.
fn wait_pasta(net: &mut UserNet) -> Result<(), UserNetError> {
    let pidfile = net.scratch.path().join("pasta.pid");
    let deadline = Instant::now() + READY_TIMEOUT;
    // Watched before the first look, so a write between a look and the
    // poll is not missed (a look every 100 ms all the same); without
    // either descriptor, 5 ms steps.
    let written = rustix::fs::inotify::init(rustix::fs::inotify::CreateFlags::CLOEXEC)
        .and_then(|fd| {
            use rustix::fs::inotify::WatchFlags;
            rustix::fs::inotify::add_watch(
                &fd,
                net.scratch.path(),
                WatchFlags::MODIFY | WatchFlags::CLOSE_WRITE | WatchFlags::MOVED_TO,
            )
            .map(|_| fd)
        })
        .ok();
    let gone = net.child.as_ref().and_then(|c| {
        rustix::process::pidfd_open(
            rustix::process::Pid::from_child(c),
            rustix::process::PidfdFlags::empty(),
        )
        .ok()
    });
    loop {
        if std::fs::metadata(&pidfile).is_ok_and(|m| m.len() > 0) {
            return Ok(());
        }
        if let Some(child) = net.child.as_mut() {
            if let Ok(Some(_)) = child.try_wait() {
                return Err(exited(net));
            }
        }
        if Instant::now() >= deadline {
            let detail = read_log(net);
            let _ = net.halt();
            return Err(UserNetError::Timeout { tool: net.tool, detail });
        }
        match (&written, &gone) {
            (Some(written), Some(gone)) => {
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100));
                let timeout = Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                };
                let mut fds = [PollFd::new(written, PollFlags::IN), PollFd::new(gone, PollFlags::IN)];
                if poll(&mut fds, Some(&timeout)).is_err() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                // The events only wake this loop, which looks again.
                let mut events = [0u8; 1024];
                if fds[0].revents().contains(PollFlags::IN) {
                    let _ = rustix::io::read(written, &mut events);
                }
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// A pipe whose `child` end the tool inherits (the other stays ours).
fn inherited_pipe(child_reads: bool) -> Result<(OwnedFd, OwnedFd), UserNetError> {
    let (r, w) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| io_err("creating a pipe")(e.into()))?;
    Ok(if child_reads { (r, w) } else { (w, r) })
}

/// slirp4netns: `--ready-fd` says the namespace is configured, then each
/// port is published through its API socket ([`wait_slirp`]); `--exit-fd`
/// ends it with us.
fn start_slirp(net: &mut UserNet, mut cmd: Command, ns: Namespace, config: &Config) -> Result<(), UserNetError> {
    let api = net.scratch.path().join("api.sock");
    let (ready_child, ready_ours) = inherited_pipe(false)?;
    let (exit_child, exit_ours) = inherited_pipe(true)?;
    let inherit = [ready_child.as_raw_fd(), exit_child.as_raw_fd()];
    cmd.args(["--configure", &format!("--mtu={MTU}")]);
    cmd.arg(format!(
        "--cidr={}/{PREFIX}",
        Ipv4Addr::from(u32::from(CONTAINER) & (u32::MAX << (32 - PREFIX)))
    ));
    cmd.arg(format!("--ready-fd={}", inherit[0]));
    cmd.arg(format!("--exit-fd={}", inherit[1]));
    cmd.arg("--api-socket").arg(&api);
    // Confined as pasta confines itself (and as podman runs it): a
    // seccomp filter, and, run by root of its namespace (rootless barge
    // always is), an empty root of its own and no capabilities; the
    // sandbox needs that root (an unprivileged caller outside any user
    // namespace gets "setegid(0); parent failed").
    cmd.arg("--enable-seccomp");
    if rustix::process::geteuid().is_root() {
        cmd.arg("--enable-sandbox");
    }
    if !config.host_loopback {
        cmd.arg("--disable-host-loopback");
    }
    match ns {
        Namespace::Pid(pid) => {
            cmd.arg(pid.to_string());
        }
        Namespace::Path { netns, userns } => {
            cmd.arg("--netns-type=path");
            if let Some(userns) = userns {
                cmd.arg(format!("--userns-path={}", userns.display()));
            }
            cmd.arg(netns);
        }
    }
    cmd.arg(INTERFACE);
    // SAFETY: between fork and exec the closure only clears FD_CLOEXEC on
    // two descriptors that are open in the parent (owned above, alive until
    // after spawn), with fcntl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for fd in inherit {
                fcntl_setfd(BorrowedFd::borrow_raw(fd), FdFlags::empty())?;
            }
            Ok(())
        });
    }
    spawn(net, cmd)?;
    // Our copies of the tool's ends: the ready pipe reads EOF if it dies.
    drop(ready_child);
    drop(exit_child);
    net.exit_fd = Some(exit_ours);
    net.ready_fd = Some(ready_ours);
    Ok(())
}

fn wait_slirp(net: &mut UserNet) -> Result<(), UserNetError> {
    let Some(ready_ours) = net.ready_fd.take() else {
        return Err(exited(net));
    };
    let api = net.scratch.path().join("api.sock");
    let mut ready = std::fs::File::from(ready_ours);
    let timeout = Timespec {
        tv_sec: READY_TIMEOUT.as_secs() as i64,
        tv_nsec: 0,
    };
    let n = poll(&mut [PollFd::new(&ready, PollFlags::IN)], Some(&timeout))
        .map_err(|e| io_err("waiting for slirp4netns")(e.into()))?;
    let mut byte = [0u8; 1];
    if n == 0 {
        let detail = read_log(net);
        let _ = net.halt();
        return Err(UserNetError::Timeout { tool: net.tool, detail });
    }
    if ready
        .read(&mut byte)
        .map_err(io_err("reading slirp4netns' ready pipe"))?
        == 0
    {
        return Err(exited(net));
    }
    let ports = net.ports.clone();
    for p in &ports {
        publish_slirp(net, &api, p)?;
    }
    Ok(())
}

fn publish_slirp(net: &mut UserNet, api: &Path, p: &PortSpec) -> Result<(), UserNetError> {
    let request = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": p.proto.to_string(),
            "host_addr": p.host_ip.to_string(),
            "host_port": p.host_port,
            "guest_port": p.container_port,
        }
    });
    let context = || format!("publishing {p} through {}", api.display());
    let mut sock = UnixStream::connect(api).map_err(io_err(context()))?;
    sock.set_read_timeout(Some(READY_TIMEOUT)).map_err(io_err(context()))?;
    sock.write_all(request.to_string().as_bytes())
        .map_err(io_err(context()))?;
    sock.shutdown(std::net::Shutdown::Write).map_err(io_err(context()))?;
    let mut reply = String::new();
    sock.read_to_string(&mut reply).map_err(io_err(context()))?;
    let parsed: serde_json::Value = serde_json::from_str(&reply).unwrap_or(serde_json::Value::Null);
    if parsed.get("return").is_some() {
        return Ok(());
    }
    let why = parsed
        .pointer("/error/desc")
        .and_then(|d| d.as_str())
        .unwrap_or(reply.trim())
        .to_string();
    let _ = net.halt();
    match diagnose(net.tool, why.clone(), std::slice::from_ref(p)) {
        e @ UserNetError::PrivilegedPort { .. } => Err(e),
        _ => Err(UserNetError::Publish {
            tool: net.tool,
            spec: p.to_string(),
            reply: why,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tools_are_found_on_path_only_when_executable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).expect("join");
        assert_eq!(Tool::Pasta.find_in(&list), None);
        let pasta = dir.path().join("pasta");
        std::fs::write(&pasta, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&pasta, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        // Not executable (for root either: no execute bit at all).
        assert_eq!(Tool::Pasta.find_in(&list), None);
        std::fs::set_permissions(&pasta, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(Tool::Pasta.find_in(&list), Some(pasta));
        assert_eq!(Tool::Slirp4netns.find_in(&list), None);
    }

    #[test]
    fn a_missing_tool_names_its_debian_package() {
        let e = UserNetError::Missing {
            tool: Tool::Pasta,
            package: Tool::Pasta.package(),
        };
        assert!(e.to_string().contains("apt-get install passt"), "{e}");
        assert!(UserNetError::NoTool.to_string().contains("slirp4netns"));
    }

    #[test]
    fn a_low_port_failure_is_explained_only_for_a_user() {
        let ports = [PortSpec {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 80,
            container_port: 80,
            proto: Proto::Tcp,
        }];
        let e = diagnose(Tool::Pasta, "Failed to bind any port".into(), &ports);
        let explained = matches!(e, UserNetError::PrivilegedPort { port: 80, .. });
        let expected = !rustix::process::geteuid().is_root() && unprivileged_port_start() > 80;
        assert_eq!(explained, expected, "{e}");
    }

    #[test]
    fn host_port_zero_gets_a_free_port() {
        let spec = PortSpec {
            host_ip: Ipv4Addr::LOCALHOST,
            host_port: 0,
            container_port: 80,
            proto: Proto::Udp,
        };
        let chosen = with_host_port(spec).expect("free port");
        assert_ne!(chosen.host_port, 0);
        assert_eq!(chosen.container_port, 80);
    }
}
