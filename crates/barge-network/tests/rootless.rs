//! Rootless user-mode networks with the real pasta and slirp4netns, run as
//! an unprivileged user (`barge-rn`, created if missing) on a namespace
//! that user made with `unshare -Urn`, as a rootless container's is.
//!
//! Each `#[test]` is root's side: it reruns this executable as the user
//! (`runuser`) with one `#[ignore]`d test selected, which does the work.
//! They fail, not skip, under CI=true.

use barge_network::ports::{PortSpec, Proto};
use barge_network::usermode::{self, Config, Namespace, Tool, UserNetError, GATEWAY};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "barge-rn";

/// Root's side: runs the ignored test `inner` as the unprivileged user.
fn as_user(tool: &str, inner: &str) {
    if !barge_tests::require_root_and(&[tool, "runuser", "unshare", "nsenter", "python3", "useradd"]) {
        return;
    }
    ensure_user();
    let exe = std::env::current_exe().expect("test executable");
    let out = Command::new("runuser")
        .args(["-u", USER, "--"])
        .arg(exe)
        .args(["--ignored", "--exact", inner, "--nocapture", "--test-threads=1"])
        .current_dir("/")
        .output()
        .expect("runuser");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{inner} as {USER}: {}\n{stdout}\n{stderr}",
        out.status
    );
}

fn ensure_user() {
    barge_tests::User::ensure(USER, None);
}

/// A user and network namespace owned by the user, held by `sleep`.
struct Holder(Child);

impl Holder {
    fn start() -> Holder {
        let own = std::fs::read_link("/proc/self/ns/user").expect("own userns");
        let child = Command::new("unshare")
            .args(["-Urn", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare -Urn");
        let holder = Holder(child);
        let user = holder.ns("user");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(&user).ok().is_none_or(|l| l == own) {
            assert!(Instant::now() < deadline, "unshare -Urn made no namespace");
            std::thread::sleep(Duration::from_millis(5));
        }
        holder
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn ns(&self, kind: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{kind}", self.pid()))
    }

    /// `python3 -c code` inside the namespace.
    fn python(&self, code: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args([
            "-t",
            &self.pid().to_string(),
            "-U",
            "-n",
            "--preserve-credentials",
            "python3",
            "-c",
            code,
        ]);
        cmd
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn published(container_port: u16, host_port: u16) -> PortSpec {
    PortSpec {
        host_ip: Ipv4Addr::UNSPECIFIED,
        host_port,
        container_port,
        proto: Proto::Tcp,
    }
}

/// The user's side: outbound to a server on the host's loopback through
/// the gateway, a published port reaching a server in the namespace, and
/// nothing left bound once stopped; for the namespace given by path and
/// by PID.
fn outbound_and_published(tool: Tool) {
    assert!(!barge_tests::is_root(), "must run as the unprivileged user");
    for by_pid in [false, true] {
        let holder = Holder::start();
        let (netns, userns) = (holder.ns("net"), holder.ns("user"));
        let ns = if by_pid {
            Namespace::Pid(holder.pid())
        } else {
            Namespace::Path {
                netns: &netns,
                userns: Some(&userns),
            }
        };

        let host = TcpListener::bind("127.0.0.1:0").expect("host server");
        let host_port = host.local_addr().expect("addr").port();
        let served = std::thread::spawn(move || {
            let (mut c, _) = host.accept().expect("accept");
            c.write_all(b"from-host").expect("write");
        });

        let mut config = Config::new(vec![published(8080, 0)]);
        config.tool = Some(tool);
        let net = usermode::start(ns, &config).unwrap_or_else(|e| panic!("{tool} (by pid: {by_pid}): {e}"));
        assert_eq!(net.tool(), tool);
        let port = net.ports()[0].host_port;
        assert_ne!(port, 0, "a free host port is chosen");

        let out = holder
            .python(&format!(
                "import socket; s=socket.create_connection(('{GATEWAY}', {host_port}), 5); print(s.recv(100).decode())"
            ))
            .output()
            .expect("nsenter");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "from-host",
            "outbound via {tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        served.join().expect("host server thread");

        let mut server = holder
            .python(
                "import socket\nl=socket.socket(); l.bind(('0.0.0.0', 8080)); l.listen(); print('ready', flush=True)\nc,_=l.accept(); c.sendall(b'from-ns'); c.close()",
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("server in the namespace");
        let mut line = String::new();
        BufReader::new(server.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server ready");
        assert_eq!(line.trim(), "ready");
        let mut c = TcpStream::connect(("127.0.0.1", port)).expect("published port");
        c.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut got = String::new();
        c.read_to_string(&mut got).expect("read published");
        assert_eq!(got, "from-ns", "published port via {tool}");
        assert!(server.wait().expect("server").success());

        net.stop().expect("stop");
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still bound after {tool} stopped"
        );
    }
}

/// The user's side: `-p 80:80` fails, saying why.
fn low_port_explained(tool: Tool) {
    assert!(!barge_tests::is_root(), "must run as the unprivileged user");
    let start = usermode::unprivileged_port_start();
    assert!(
        start > 80,
        "net.ipv4.ip_unprivileged_port_start is {start}: port 80 is allowed here"
    );
    let holder = Holder::start();
    let mut config = Config::new(vec![published(80, 80)]);
    config.tool = Some(tool);
    match usermode::start(Namespace::Pid(holder.pid()), &config) {
        Err(e @ UserNetError::PrivilegedPort { port: 80, .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("net.ipv4.ip_unprivileged_port_start"), "{msg}");
            assert!(msg.contains("root"), "{msg}");
        }
        Err(e) => panic!("{tool} on port 80: wrong error: {e}"),
        Ok(_) => panic!("{tool} published port 80 as a user"),
    }
}

/// The user's side: without host loopback the gateway reaches no host
/// loopback service.
fn no_host_loopback(tool: Tool) {
    assert!(!barge_tests::is_root(), "must run as the unprivileged user");
    let holder = Holder::start();
    let host = TcpListener::bind("127.0.0.1:0").expect("host server");
    let host_port = host.local_addr().expect("addr").port();
    let mut config = Config::new(vec![]);
    config.tool = Some(tool);
    config.host_loopback = false;
    let _net = usermode::start(Namespace::Pid(holder.pid()), &config).unwrap_or_else(|e| panic!("{tool}: {e}"));
    let out = holder
        .python(&format!(
            "import socket\ntry:\n socket.create_connection(('{GATEWAY}', {host_port}), 3); print('connected')\nexcept OSError as e: print('refused')"
        ))
        .output()
        .expect("nsenter");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "refused", "{tool}");
}

/// A test as root that runs `$inner` (ignored, the scenario with the
/// tool) as the unprivileged user.
macro_rules! as_user_test {
    ($outer:ident, $inner:ident, $tool:expr, $scenario:ident) => {
        #[test]
        fn $outer() {
            as_user($tool.program(), stringify!($inner));
        }

        #[test]
        #[ignore = "run as the unprivileged user by its test without the user_ prefix"]
        fn $inner() {
            $scenario($tool);
        }
    };
}

as_user_test!(
    pasta_gives_outbound_access_and_publishes_ports,
    user_pasta_gives_outbound_access_and_publishes_ports,
    Tool::Pasta,
    outbound_and_published
);
as_user_test!(
    slirp4netns_gives_outbound_access_and_publishes_ports,
    user_slirp4netns_gives_outbound_access_and_publishes_ports,
    Tool::Slirp4netns,
    outbound_and_published
);
as_user_test!(
    pasta_low_port_fails_saying_why,
    user_pasta_low_port_fails_saying_why,
    Tool::Pasta,
    low_port_explained
);
as_user_test!(
    slirp4netns_low_port_fails_saying_why,
    user_slirp4netns_low_port_fails_saying_why,
    Tool::Slirp4netns,
    low_port_explained
);
as_user_test!(
    pasta_host_loopback_can_be_closed,
    user_pasta_host_loopback_can_be_closed,
    Tool::Pasta,
    no_host_loopback
);
as_user_test!(
    slirp4netns_host_loopback_can_be_closed,
    user_slirp4netns_host_loopback_can_be_closed,
    Tool::Slirp4netns,
    no_host_loopback
);
