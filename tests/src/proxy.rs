//! A TCP proxy in front of a registry that can throttle what it sends back,
//! and records the requests that pass through it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Shared {
    upstream: String,
    /// Bytes per second towards the client; 0 means unlimited.
    rate: AtomicU64,
    sent: AtomicU64,
    /// Cut the next connection that reaches this many bytes sent (0: never).
    cut_after: AtomicU64,
    cuts: AtomicU64,
    requests: Mutex<Vec<u8>>,
    stop: AtomicBool,
}

pub struct SlowProxy {
    shared: Arc<Shared>,
    pub port: u16,
}

impl SlowProxy {
    pub fn start(upstream: &str, bytes_per_second: u64) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            rate: AtomicU64::new(bytes_per_second),
            sent: AtomicU64::new(0),
            cut_after: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || relay(s, client));
            }
        });
        SlowProxy { shared, port }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn set_rate(&self, bytes_per_second: u64) {
        self.shared.rate.store(bytes_per_second, Ordering::SeqCst);
    }

    /// Drops the next connection that has sent `bytes` to its client, once.
    pub fn cut_once_after(&self, bytes: u64) {
        self.shared.cut_after.store(bytes, Ordering::SeqCst);
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
        if let Ok(mut r) = self.shared.requests.lock() {
            r.clear();
        }
    }

    /// Everything clients sent (request lines, headers, bodies).
    pub fn requests(&self) -> String {
        self.shared
            .requests
            .lock()
            .map(|r| String::from_utf8_lossy(&r).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn relay(s: Arc<Shared>, client: TcpStream) {
    let Ok(server) = TcpStream::connect(&s.upstream) else {
        return;
    };
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = s.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut r) = up.requests.lock() {
                        r.extend_from_slice(&buf[..n]);
                    }
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
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
