//! An HTTP front for a registry that refuses request bodies above a size
//! with 413, as some proxies and registries do, and can announce an
//! `OCI-Chunk-Min-Length` on upload sessions. One request per connection;
//! every request is logged with its body length and the status returned.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};

/// A request as seen: method, path, `Content-Length`, the status returned.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub length: u64,
    pub status: u16,
}

struct Shared {
    upstream: String,
    max_body: u64,
    chunk_min: Option<u64>,
    log: Mutex<Vec<Seen>>,
}

pub struct BodyLimit {
    pub port: u16,
    shared: Arc<Shared>,
    _listener: crate::server::Listener,
}

impl BodyLimit {
    pub fn start(upstream: &str, max_body: u64, chunk_min: Option<u64>) -> BodyLimit {
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            max_body,
            chunk_min,
            log: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let listener = crate::server::Listener::start(move |conn| serve(&s, conn));
        BodyLimit {
            port: listener.port,
            shared,
            _listener: listener,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn serve(s: &Shared, client: TcpStream) {
    let Ok(read_half) = client.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let Some(req) = crate::server::RequestHead::read(&mut reader) else {
        return;
    };
    let (method, path) = (req.method.clone(), req.path.clone());
    let length = req.content_length();
    let head = req.forwarded(|_| true);
    let mut body = reader.take(length);
    let mut client = client;
    let log = |status: u16| {
        if let Ok(mut l) = s.log.lock() {
            l.push(Seen {
                method: method.clone(),
                path: path.clone(),
                length,
                status,
            });
        }
    };
    if matches!(method.as_str(), "PUT" | "PATCH") && length > s.max_body {
        let _ = std::io::copy(&mut body, &mut std::io::sink());
        let msg = r#"{"errors":[{"code":"SIZE_INVALID","message":"request body too large"}]}"#;
        let _ = write!(
            client,
            "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
            msg.len()
        );
        log(413);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut up) = TcpStream::connect(&s.upstream) else {
        return;
    };
    if up.write_all(head.as_bytes()).is_err() || std::io::copy(&mut body, &mut up).is_err() {
        return;
    }
    let mut response = Vec::new();
    let _ = up.read_to_end(&mut response);
    let status = std::str::from_utf8(&response[..response.len().min(16)])
        .ok()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    log(status);
    // Announce a minimum chunk on new upload sessions.
    if let (Some(min), true) = (s.chunk_min, method == "POST" && path.contains("/blobs/uploads/")) {
        if let Some(eol) = response.windows(2).position(|w| w == b"\r\n") {
            let extra = format!("\r\nOCI-Chunk-Min-Length: {min}");
            response.splice(eol..eol, extra.into_bytes());
        }
    }
    let _ = client.write_all(&response);
    let _ = client.shutdown(Shutdown::Both);
}
