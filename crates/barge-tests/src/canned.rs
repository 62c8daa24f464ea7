//! A tiny HTTP server that answers fixed responses per path, for registry
//! behaviour a real registry will not produce (schema 1 manifests,
//! oversized manifests, blob redirects to another host, bodies trickled a
//! byte at a time). It records every request's method, path and headers.
//! A route matches the request's path with its query, else without it.

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the body one byte per this interval instead of at once.
    pub trickle: Option<Duration>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            trickle: None,
        }
    }

    /// The body goes out one byte every `interval` (a registry that never
    /// stalls long enough for a read timeout, yet never finishes).
    pub fn trickled(mut self, interval: Duration) -> Response {
        self.trickle = Some(interval);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A request as received: method, path, lower-cased header names.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

struct Shared {
    routes: HashMap<String, Response>,
    /// `Authorization` value every request but `/v2/` must carry; `None`: no auth.
    require: Option<String>,
    log: Mutex<Vec<Request>>,
}

pub struct CannedServer {
    pub port: u16,
    shared: Arc<Shared>,
    _listener: crate::server::Listener,
}

impl CannedServer {
    /// Serves `routes` (path → response); `/v2/` answers 200; anything else 404.
    pub fn start(routes: Vec<(&str, Response)>) -> CannedServer {
        CannedServer::start_with(routes, None)
    }

    /// Like `start`, but requests without `Authorization: <require>` get a
    /// 401 with a Basic challenge.
    pub fn start_with(routes: Vec<(&str, Response)>, require: Option<String>) -> CannedServer {
        let shared = Arc::new(Shared {
            routes: routes.into_iter().map(|(p, r)| (p.to_string(), r)).collect(),
            require,
            log: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let listener = crate::server::Listener::start(move |conn| serve(&s, conn));
        let port = listener.port;
        CannedServer {
            port,
            shared,
            _listener: listener,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn serve(s: &Shared, conn: TcpStream) {
    let Ok(clone) = conn.try_clone() else { return };
    let mut reader = BufReader::new(clone);
    let mut conn = conn;
    while let Some(req) = crate::server::RequestHead::read(&mut reader) {
        let (method, path) = (req.method.clone(), req.path.clone());
        let headers: HashMap<String, String> = req
            .headers
            .iter()
            .filter_map(|h| h.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let authorized = match &s.require {
            Some(want) => headers.get("authorization") == Some(want),
            None => true,
        };
        if let Ok(mut log) = s.log.lock() {
            log.push(Request {
                method: method.clone(),
                path: path.clone(),
                headers,
            });
        }
        let resp = if !authorized {
            Response::new(
                401,
                "application/json",
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )
            .header("WWW-Authenticate", r#"Basic realm="canned""#)
        } else {
            let without_query = path.split('?').next().unwrap_or(&path);
            match s.routes.get(&path).or_else(|| s.routes.get(without_query)) {
                Some(r) => r.clone(),
                None if path == "/v2/" => Response::new(200, "application/json", "{}"),
                None => Response::new(
                    404,
                    "application/json",
                    r#"{"errors":[{"code":"NOT_FOUND","message":"not here"}]}"#,
                ),
            }
        };
        let mut head = format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\n", resp.status, resp.body.len());
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if conn.write_all(head.as_bytes()).is_err() {
            return;
        }
        if method == "HEAD" {
            continue;
        }
        match resp.trickle {
            None => {
                if conn.write_all(&resp.body).is_err() {
                    return;
                }
            }
            Some(interval) => {
                for b in &resp.body {
                    if conn
                        .write_all(std::slice::from_ref(b))
                        .and_then(|_| conn.flush())
                        .is_err()
                    {
                        return;
                    }
                    std::thread::sleep(interval);
                }
            }
        }
    }
}
