//! The accept loop and request reading the harness servers share.

use std::io::BufRead;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A loopback TCP server handling each connection on its own thread,
/// stopped when dropped.
pub struct Listener {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Listener {
    pub fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = Arc::new(handle);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let handle = handle.clone();
                std::thread::spawn(move || handle(conn));
            }
        });
        Listener { port, stop }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A request's line and header lines as read off a connection.
pub struct RequestHead {
    pub line: String,
    pub method: String,
    pub path: String,
    /// Header lines as sent, CRLF included.
    pub headers: Vec<String>,
}

impl RequestHead {
    /// Reads the next request's head; `None` at the end of the connection.
    pub fn read(reader: &mut impl BufRead) -> Option<RequestHead> {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            headers.push(h);
        }
        Some(RequestHead {
            line,
            method,
            path,
            headers,
        })
    }

    /// The value of header `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn content_length(&self) -> u64 {
        self.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// The head to send upstream: the request line, the header lines
    /// `keep` accepts (it sees them lower-cased) but `Connection`, and
    /// `Connection: close`.
    pub fn forwarded(&self, keep: impl Fn(&str) -> bool) -> String {
        let mut head = self.line.clone();
        for h in &self.headers {
            let lower = h.to_ascii_lowercase();
            if !lower.starts_with("connection:") && keep(&lower) {
                head.push_str(h);
            }
        }
        head.push_str("Connection: close\r\n\r\n");
        head
    }
}
