//! A TCP proxy in front of a registry that can throttle what it sends back,
//! and records the requests that pass through it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Shared {
    upstream: String,
    /// Bytes per second towards the client; 0 means unlimited.
    rate: AtomicU64,
    sent: AtomicU64,
    /// Bytes per second towards the server; 0 means unlimited.
    upload_rate: AtomicU64,
    /// Bytes clients sent.
    received: AtomicU64,
    /// Cut the next connection that reaches this many bytes sent (0: never).
    cut_after: AtomicU64,
    /// Cut the next connection whose client has sent this many bytes (0: never).
    cut_upload_after: AtomicU64,
    cuts: AtomicU64,
    /// Milliseconds the next connection waits before anything reaches the
    /// registry (0: none), once.
    stall_next_ms: AtomicU64,
    /// What each connection's client sent, a buffer per connection: bytes
    /// of two connections (a TLS probe's late alert and the next request)
    /// never mix inside one request line.
    requests: Mutex<Vec<Vec<u8>>>,
}

pub struct SlowProxy {
    shared: Arc<Shared>,
    pub port: u16,
    _listener: crate::server::Listener,
}

impl SlowProxy {
    pub fn start(upstream: &str, bytes_per_second: u64) -> SlowProxy {
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            rate: AtomicU64::new(bytes_per_second),
            sent: AtomicU64::new(0),
            upload_rate: AtomicU64::new(0),
            received: AtomicU64::new(0),
            cut_after: AtomicU64::new(0),
            cut_upload_after: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            stall_next_ms: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let listener = crate::server::Listener::start(move |client| relay(s.clone(), client));
        let port = listener.port;
        SlowProxy {
            shared,
            port,
            _listener: listener,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn set_rate(&self, bytes_per_second: u64) {
        self.shared.rate.store(bytes_per_second, Ordering::SeqCst);
    }

    /// Throttles what clients send (uploads).
    pub fn set_upload_rate(&self, bytes_per_second: u64) {
        self.shared.upload_rate.store(bytes_per_second, Ordering::SeqCst);
    }

    /// Bytes clients sent so far.
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::SeqCst)
    }

    /// Drops the next connection that has sent `bytes` to its client, once.
    pub fn cut_once_after(&self, bytes: u64) {
        self.shared.cut_after.store(bytes, Ordering::SeqCst);
    }

    /// Drops the next connection whose client has sent `bytes` (an upload), once.
    pub fn cut_upload_once_after(&self, bytes: u64) {
        self.shared.cut_upload_after.store(bytes, Ordering::SeqCst);
    }

    /// Holds the next connection for `stall` before it reaches the
    /// registry, once: a registry slow to answer its first request.
    pub fn stall_next_connection(&self, stall: Duration) {
        let ms = u64::try_from(stall.as_millis()).unwrap_or(u64::MAX).max(1);
        self.shared.stall_next_ms.store(ms, Ordering::SeqCst);
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Bytes sent back to clients so far.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::SeqCst)
    }

    pub fn reset_counters(&self) {
        self.shared.sent.store(0, Ordering::SeqCst);
        self.shared.received.store(0, Ordering::SeqCst);
        if let Ok(mut r) = self.shared.requests.lock() {
            // Open connections keep their slots: what they send next counts.
            r.iter_mut().for_each(Vec::clear);
        }
    }

    /// Everything clients sent (request lines, headers, bodies), a
    /// connection at a time, each ending a line.
    pub fn requests(&self) -> String {
        self.shared
            .requests
            .lock()
            .map(|r| r.iter().map(|c| String::from_utf8_lossy(c) + "\r\n").collect())
            .unwrap_or_default()
    }

    /// The request lines (`GET /v2/... HTTP/1.1`) clients sent. A line may
    /// follow a request body (or a TLS probe's bytes) on its connection
    /// without a line break between them: it is found where its method starts.
    pub fn request_lines(&self) -> Vec<String> {
        self.requests()
            .split("\r\n")
            .filter(|l| l.ends_with(" HTTP/1.1"))
            .filter_map(|l| {
                ["GET /", "HEAD /", "PUT /", "POST /", "PATCH /", "DELETE /"]
                    .iter()
                    .filter_map(|m| l.find(m))
                    .min()
                    .map(|at| l[at..].to_string())
            })
            .collect()
    }
}

fn relay(s: Arc<Shared>, client: TcpStream) {
    let stall = s.stall_next_ms.swap(0, Ordering::SeqCst);
    if stall > 0 {
        std::thread::sleep(Duration::from_millis(stall));
    }
    let Ok(server) = TcpStream::connect(&s.upstream) else {
        return;
    };
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = s.clone();
    let connection = match s.requests.lock() {
        Ok(mut r) => {
            r.push(Vec::new());
            r.len() - 1
        }
        Err(_) => return,
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut received_here = 0u64;
        loop {
            let cut = up.cut_upload_after.load(Ordering::SeqCst);
            if cut > 0
                && received_here >= cut
                && up
                    .cut_upload_after
                    .compare_exchange(cut, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                up.cuts.fetch_add(1, Ordering::SeqCst);
                let _ = c_read.shutdown(Shutdown::Both);
                break;
            }
            let rate = up.upload_rate.load(Ordering::SeqCst);
            let chunk = if rate == 0 {
                buf.len()
            } else {
                (rate / 20).clamp(1, buf.len() as u64) as usize
            };
            match c_read.read(&mut buf[..chunk]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut r) = up.requests.lock() {
                        // Request heads, not whole uploads.
                        let total: usize = r.iter().map(Vec::len).sum();
                        if let (true, Some(mine)) = (total < 4 << 20, r.get_mut(connection)) {
                            mine.extend_from_slice(&buf[..n.min(4096)]);
                        }
                    }
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    up.received.fetch_add(n as u64, Ordering::SeqCst);
                    received_here += n as u64;
                    if rate > 0 {
                        std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
                    }
                }
            }
        }
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let mut buf = [0u8; 16 * 1024];
    let mut sent_here = 0u64;
    loop {
        let cut = s.cut_after.load(Ordering::SeqCst);
        if cut > 0
            && sent_here >= cut
            && s.cut_after
                .compare_exchange(cut, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            s.cuts.fetch_add(1, Ordering::SeqCst);
            break;
        }
        let rate = s.rate.load(Ordering::SeqCst);
        // Throttled: small chunks, paced.
        let chunk = if rate == 0 {
            buf.len()
        } else {
            (rate / 20).clamp(1, buf.len() as u64) as usize
        };
        match s_read.read(&mut buf[..chunk]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if c_write.write_all(&buf[..n]).is_err() {
                    break;
                }
                s.sent.fetch_add(n as u64, Ordering::SeqCst);
                sent_here += n as u64;
                if rate > 0 {
                    std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
                }
            }
        }
    }
    let _ = c_write.shutdown(Shutdown::Both);
}
