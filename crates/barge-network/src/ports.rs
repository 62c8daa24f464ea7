//! Published ports (`-p`, `-P`): parsing docker's syntax, and a userspace
//! forwarder run by the container's monitor process.
//!
//! Why userspace rather than DNAT rules: it serves 127.0.0.1 without
//! `route_localnet`, works the same on iptables and nftables hosts, and
//! leaves nothing in the kernel when barge dies (the listening sockets go
//! with the monitor, so a crash cannot leave a port forwarded to an address
//! a later container reuses). docker does the same for loopback
//! (docker-proxy). The cost is a copy through the monitor and the client's
//! address hidden from the container.

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::{Entry, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One published port. `host_port` 0 means any free port (bound later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl std::fmt::Display for PortSpec {
    /// As `docker ps` shows it: `0.0.0.0:8080->80/tcp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}->{}/{}",
            self.host_ip, self.host_port, self.container_port, self.proto
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("invalid port specification: {0:?}")]
    Invalid(String),
    #[error("Bind for {addr} failed: port is already allocated")]
    InUse { addr: String },
    #[error("binding {addr}: {source}")]
    Bind { addr: String, source: io::Error },
}

fn port_range(s: &str, spec: &str) -> Result<(u16, u16), PortError> {
    let bad = || PortError::Invalid(spec.to_string());
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if a == 0 || b < a {
        return Err(bad());
    }
    Ok((a, b))
}

/// Parses `-p [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]`, ranges included.
pub fn parse(spec: &str) -> Result<Vec<PortSpec>, PortError> {
    let bad = || PortError::Invalid(spec.to_string());
    let (addr, proto) = match spec.rsplit_once('/') {
        Some((a, "tcp")) => (a, Proto::Tcp),
        Some((a, "udp")) => (a, Proto::Udp),
        Some(_) => return Err(bad()),
        None => (spec, Proto::Tcp),
    };
    let parts: Vec<&str> = addr.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => return Err(bad()),
    };
    let host_ip: Ipv4Addr = if ip.is_empty() {
        Ipv4Addr::UNSPECIFIED
    } else {
        ip.parse().map_err(|_| bad())?
    };
    let (c0, c1) = port_range(container, spec)?;
    let hosts = if host.is_empty() {
        None
    } else {
        let (h0, h1) = port_range(host, spec)?;
        if h1 - h0 != c1 - c0 {
            return Err(bad());
        }
        Some(h0)
    };
    Ok((c0..=c1)
        .map(|c| PortSpec {
            host_ip,
            host_port: hosts.map(|h0| h0 + (c - c0)).unwrap_or(0),
            container_port: c,
            proto,
        })
        .collect())
}

/// Parses an image's `ExposedPorts` key (`80/tcp`) for `-P`.
/// `--expose PORT[-END][/PROTO]`: the container ports `-P` publishes.
pub fn parse_expose(spec: &str) -> Result<Vec<PortSpec>, PortError> {
    let bad = || PortError::Invalid(spec.to_string());
    let (range, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let (first, last) = range.split_once('-').unwrap_or((range, range));
    let first: u16 = first.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    let last: u16 = last.parse().ok().filter(|p| *p >= first).ok_or_else(bad)?;
    (first..=last)
        .map(|p| exposed(&format!("{p}/{proto}")).ok_or_else(bad))
        .collect()
}

pub fn exposed(key: &str) -> Option<PortSpec> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    Some(PortSpec {
        host_ip: Ipv4Addr::UNSPECIFIED,
        host_port: 0,
        container_port: port.parse().ok().filter(|p| *p > 0)?,
        proto,
    })
}

enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// Binds every published port, then forwards each to `target` on threads
/// of this process. Returns the ports with the host ports actually bound.
/// Binding happens before anything is forwarded, so an error leaves nothing.
pub fn forward(specs: &[PortSpec], target: Ipv4Addr) -> Result<Vec<PortSpec>, PortError> {
    let mut bound = Vec::new();
    for s in specs {
        let addr = SocketAddr::new(IpAddr::V4(s.host_ip), s.host_port);
        let shown = format!("{}:{}", s.host_ip, s.host_port);
        let map = |e: io::Error| {
            if e.kind() == io::ErrorKind::AddrInUse {
                PortError::InUse { addr: shown.clone() }
            } else {
                PortError::Bind {
                    addr: shown.clone(),
                    source: e,
                }
            }
        };
        let (sock, port) = match s.proto {
            Proto::Tcp => {
                let l = TcpListener::bind(addr).map_err(map)?;
                let port = l.local_addr().map_err(map)?.port();
                (Bound::Tcp(l), port)
            }
            Proto::Udp => {
                let u = UdpSocket::bind(addr).map_err(map)?;
                let port = u.local_addr().map_err(map)?.port();
                (Bound::Udp(u), port)
            }
        };
        let mut actual = s.clone();
        actual.host_port = port;
        bound.push((sock, actual));
    }
    let mut out = Vec::new();
    for (sock, spec) in bound {
        let to = SocketAddr::new(IpAddr::V4(target), spec.container_port);
        match sock {
            Bound::Tcp(l) => {
                std::thread::spawn(move || serve_tcp(l, to));
            }
            Bound::Udp(u) => {
                std::thread::spawn(move || serve_udp(u, to));
            }
        }
        out.push(spec);
    }
    Ok(out)
}

fn serve_tcp(listener: TcpListener, to: SocketAddr) {
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        std::thread::spawn(move || {
            let Ok(upstream) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
                return;
            };
            let back = std::thread::spawn(move || pipe(u2, c2));
            pipe(client, upstream);
            let _ = back.join();
        });
    }
}

/// Copies until EOF, then passes the EOF on.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// A UDP flow closes after this long without a datagram either way, as
/// docker-proxy's (`UDPConnTrackTimeout`).
pub const UDP_IDLE: Duration = Duration::from_secs(90);

/// At most this many UDP flows per published port: a new client beyond it
/// closes the least recently active flow.
pub const MAX_UDP_FLOWS: usize = 1024;

/// Datagrams handled from one socket per wakeup, so no flow starves the others.
const UDP_BATCH: usize = 64;

/// One client address's socket to the container (connected to it, so the
/// container's replies come back on it and go to that client).
struct Flow {
    sock: UdpSocket,
    last: Instant,
}

/// The UDP flows of one published port, keyed by client address. Times are
/// passed in, so expiry is tested without waiting.
struct UdpRelay {
    to: SocketAddr,
    idle: Duration,
    cap: usize,
    flows: HashMap<SocketAddr, Flow>,
    /// No flow expires before this (lasts only move forward).
    next_sweep: Option<Instant>,
}

impl UdpRelay {
    fn new(to: SocketAddr, idle: Duration, cap: usize) -> UdpRelay {
        UdpRelay {
            to,
            idle,
            cap: cap.max(1),
            flows: HashMap::new(),
            next_sweep: None,
        }
    }

    /// Closes the flows idle for `idle` at `now`; returns when the next may expire.
    fn expire(&mut self, now: Instant) -> Option<Instant> {
        if self.next_sweep.is_some_and(|t| now >= t) {
            let idle = self.idle;
            self.flows.retain(|_, f| now.saturating_duration_since(f.last) < idle);
            self.next_sweep = self.flows.values().map(|f| f.last + idle).min();
        }
        self.next_sweep
    }

    /// The flow of `client`, opened if new (closing the least recently
    /// active one when at the cap), marked active at `now`.
    fn flow(&mut self, client: SocketAddr, now: Instant) -> io::Result<&UdpSocket> {
        if !self.flows.contains_key(&client) {
            while self.flows.len() >= self.cap {
                let Some(oldest) = self.flows.iter().min_by_key(|(_, f)| f.last).map(|(a, _)| *a) else {
                    break;
                };
                self.flows.remove(&oldest);
            }
        }
        let flow = match self.flows.entry(client) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                sock.connect(self.to)?;
                sock.set_nonblocking(true)?;
                v.insert(Flow { sock, last: now })
            }
        };
        flow.last = now;
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + self.idle);
        }
        Ok(&flow.sock)
    }

    /// Marks `client`'s flow active at `now` (a reply went to it).
    fn touch(&mut self, client: &SocketAddr, now: Instant) {
        if let Some(f) = self.flows.get_mut(client) {
            f.last = now;
        }
    }
}

/// Relays datagrams between clients of `sock` and `to`, on this thread:
/// one poll over the port and every flow's socket.
fn serve_udp(sock: UdpSocket, to: SocketAddr) {
    if sock.set_nonblocking(true).is_err() {
        return;
    }
    let mut relay = UdpRelay::new(to, UDP_IDLE, MAX_UDP_FLOWS);
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        let timeout = relay.expire(now).map(|t| {
            // Rounded up, so the wakeup is not just before the deadline.
            let d = t.saturating_duration_since(now) + Duration::from_millis(1);
            Timespec {
                tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: d.subsec_nanos().into(),
            }
        });
        let (port_ready, replies) = {
            let clients: Vec<SocketAddr> = relay.flows.keys().copied().collect();
            let mut fds = vec![PollFd::new(&sock, PollFlags::IN)];
            fds.extend(relay.flows.values().map(|f| PollFd::new(&f.sock, PollFlags::IN)));
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            }
            let ready = |f: &PollFd| !f.revents().is_empty();
            let replies: Vec<SocketAddr> = fds[1..]
                .iter()
                .zip(clients)
                .filter_map(|(f, c)| ready(f).then_some(c))
                .collect();
            (ready(&fds[0]), replies)
        };
        let now = Instant::now();
        for client in replies {
            let Some(f) = relay.flows.get(&client) else { continue };
            let mut replied = false;
            for _ in 0..UDP_BATCH {
                // An error (the container's port refused) is consumed by reading it.
                let Ok(n) = f.sock.recv(&mut buf) else { break };
                let _ = sock.send_to(&buf[..n], client);
                replied = true;
            }
            if replied {
                relay.touch(&client, now);
            }
        }
        if port_ready {
            for _ in 0..UDP_BATCH {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { break };
                if let Ok(up) = relay.flow(from, now) {
                    let _ = up.send(&buf[..n]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> String {
        let v = parse(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v[0].to_string()
    }

    #[test]
    fn docker_port_syntax() {
        assert_eq!(one("8080:80"), "0.0.0.0:8080->80/tcp");
        assert_eq!(one("127.0.0.1:8080:80/udp"), "127.0.0.1:8080->80/udp");
        assert_eq!(one("127.0.0.1::80"), "127.0.0.1:0->80/tcp");
        assert_eq!(one("80"), "0.0.0.0:0->80/tcp");
        let r = parse("8000-8002:80-82").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[2].to_string(), "0.0.0.0:8002->82/tcp");
        for bad in [
            "",
            "x",
            "80/sctp",
            "0",
            "1:2:3:4",
            "8000-8001:80",
            "nope:80:80",
            "70000:80",
            "90-80",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(exposed("53/udp").unwrap().to_string(), "0.0.0.0:0->53/udp");
        assert!(exposed("x/tcp").is_none());
    }

    /// A UDP socket standing for the container, and a relay to it.
    fn relay(idle: Duration, cap: usize) -> (UdpSocket, UdpRelay) {
        let container = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = container.local_addr().unwrap();
        (container, UdpRelay::new(to, idle, cap))
    }

    fn client(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), port))
    }

    #[test]
    fn udp_flows_expire_when_idle() {
        let (_container, mut r) = relay(UDP_IDLE, 8);
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        r.flow(client(1), t0).unwrap();
        r.flow(client(2), secs(60)).unwrap();
        assert_eq!(r.expire(secs(89)), Some(secs(90)));
        assert_eq!(r.flows.len(), 2);
        assert_eq!(r.expire(secs(90)), Some(secs(150)), "1 went at 90 s");
        assert_eq!(r.flows.keys().collect::<Vec<_>>(), [&client(2)]);
        // Traffic either way keeps a flow: a reply to 2 at 100 s.
        r.touch(&client(2), secs(100));
        assert_eq!(r.expire(secs(150)), Some(secs(190)));
        assert_eq!(r.flows.len(), 1);
        assert_eq!(r.expire(secs(190)), None, "all idle, all closed");
        assert!(r.flows.is_empty());
        // A later datagram opens a new flow.
        r.flow(client(1), secs(200)).unwrap();
        assert_eq!(r.expire(secs(201)), Some(secs(290)));
    }

    #[test]
    fn the_udp_cap_closes_the_least_recently_active_flow() {
        let (container, mut r) = relay(UDP_IDLE, 2);
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        r.flow(client(1), t0).unwrap();
        let second = r.flow(client(2), secs(1)).unwrap().local_addr().unwrap();
        r.flow(client(1), secs(2)).unwrap().send(b"one").unwrap();
        r.flow(client(3), secs(3)).unwrap().send(b"three").unwrap();
        let mut keys: Vec<_> = r.flows.keys().copied().collect();
        keys.sort();
        assert_eq!(keys, [client(1), client(3)]);
        // 2's socket is closed: its port can be bound again.
        UdpSocket::bind(second).unwrap();
        container.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 10];
        for want in [&b"one"[..], b"three"] {
            let n = container.recv(&mut b).unwrap();
            assert_eq!(&b[..n], want);
        }
    }

    #[test]
    fn tcp_and_udp_are_forwarded() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in server.incoming().flatten() {
                let mut w = c.try_clone().unwrap();
                let _ = io::copy(&mut &c, &mut w);
            }
        });
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let uport = udp.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut b = [0u8; 100];
            while let Ok((n, from)) = udp.recv_from(&mut b) {
                let _ = udp.send_to(&b[..n], from);
            }
        });
        let specs = [
            PortSpec {
                host_ip: Ipv4Addr::LOCALHOST,
                host_port: 0,
                container_port: port,
                proto: Proto::Tcp,
            },
            PortSpec {
                host_ip: Ipv4Addr::LOCALHOST,
                host_port: 0,
                container_port: uport,
                proto: Proto::Udp,
            },
        ];
        let bound = forward(&specs, Ipv4Addr::LOCALHOST).unwrap();
        assert!(bound.iter().all(|b| b.host_port != 0));
        let mut c = TcpStream::connect(("127.0.0.1", bound[0].host_port)).unwrap();
        io::Write::write_all(&mut c, b"hello").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = String::new();
        io::Read::read_to_string(&mut c, &mut back).unwrap();
        assert_eq!(back, "hello");
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        u.send_to(b"ping", ("127.0.0.1", bound[1].host_port)).unwrap();
        let mut b = [0u8; 10];
        let n = u.recv(&mut b).unwrap();
        assert_eq!(&b[..n], b"ping");
        // The same host port again is taken.
        let again = forward(&[bound[0].clone()], Ipv4Addr::LOCALHOST).unwrap_err();
        assert!(again.to_string().contains("port is already allocated"), "{again}");
    }
}
