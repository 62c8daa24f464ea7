//! An HTTP proxy in front of a registry that injects one fault into the
//! requests it matches: an error status, a cut or damaged body, wrong
//! headers, an ignored `Range`, a stall. One request per connection
//! (`Connection: close` upstream); every request is logged.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and headers, without asking the registry.
    Status(u16, Vec<(String, String)>),
    /// Send the registry's answer but only `n` bytes of its body, then close.
    Truncate(usize),
    /// Flip one byte of the body at this offset.
    FlipByte(usize),
    /// Add this to the `Content-Length` the client is told (the body is sent as is).
    ContentLengthDelta(i64),
    /// Forward without the request's `Range` header: a 200 with the whole body.
    IgnoreRange,
    /// On a 206, shift the start of `Content-Range` by this much.
    ShiftContentRange(i64),
    /// Send the head and this much of the body, then stall for the duration.
    Stall(usize, Duration),
    /// Replace the `Content-Type` of the answer.
    ContentType(String),
}

#[derive(Debug, Clone)]
struct Rule {
    method: String,
    path_contains: String,
    fault: Fault,
    /// How many more matching requests get the fault (`u32::MAX`: all).
    left: u32,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub faulted: bool,
    pub range: Option<String>,
    pub authorization: bool,
}

struct Shared {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Seen>>,
}

pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
    _listener: crate::server::Listener,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let listener = crate::server::Listener::start(move |conn| serve(&s, conn));
        FaultProxy {
            port: listener.port,
            shared,
            _listener: listener,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The next `times` requests `METHOD` whose path contains `path` get `fault`.
    pub fn inject(&self, method: &str, path: &str, fault: Fault, times: u32) {
        if let Ok(mut r) = self.shared.rules.lock() {
            r.push(Rule {
                method: method.to_string(),
                path_contains: path.to_string(),
                fault,
                left: times,
            });
        }
    }

    pub fn clear(&self) {
        if let Ok(mut r) = self.shared.rules.lock() {
            r.clear();
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn take_fault(s: &Shared, method: &str, path: &str) -> Option<Fault> {
    let mut rules = s.rules.lock().ok()?;
    let rule = rules
        .iter_mut()
        .find(|r| r.left > 0 && r.method == method && path.contains(&r.path_contains))?;
    if rule.left != u32::MAX {
        rule.left -= 1;
    }
    Some(rule.fault.clone())
}

fn serve(s: &Shared, client: TcpStream) {
    let Ok(read_half) = client.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let Some(req) = crate::server::RequestHead::read(&mut reader) else {
        return;
    };
    let (method, path) = (req.method.clone(), req.path.clone());
    let fault = take_fault(s, &method, &path);
    let length = req.content_length();
    let range = req.header("range").map(str::to_string);
    let authorization = req.header("authorization").is_some();
    let head = req.forwarded(|h| !(h.starts_with("range:") && matches!(fault, Some(Fault::IgnoreRange))));
    let mut body = Vec::new();
    let _ = (&mut reader).take(length).read_to_end(&mut body);
    let mut client = client;
    let log = |status: u16| {
        if let Ok(mut l) = s.log.lock() {
            l.push(Seen {
                method: method.clone(),
                path: path.clone(),
                status,
                faulted: fault.is_some(),
                range: range.clone(),
                authorization,
            });
        }
    };
    if let Some(Fault::Status(code, headers)) = &fault {
        let msg = format!(r#"{{"errors":[{{"code":"UNAVAILABLE","message":"injected {code}"}}]}}"#);
        let mut resp = format!(
            "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            msg.len()
        );
        for (k, v) in headers {
            resp.push_str(&format!("{k}: {v}\r\n"));
        }
        resp.push_str("\r\n");
        resp.push_str(&msg);
        let _ = client.write_all(resp.as_bytes());
        let _ = client.shutdown(Shutdown::Both);
        log(*code);
        return;
    }
    let Ok(mut up) = TcpStream::connect(&s.upstream) else {
        return;
    };
    if up.write_all(head.as_bytes()).is_err() || up.write_all(&body).is_err() {
        return;
    }
    let mut response = Vec::new();
    let _ = up.read_to_end(&mut response);
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        let _ = client.write_all(&response);
        return;
    };
    let head_text = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut resp_body = response[split + 4..].to_vec();
    let status: u16 = head_text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    log(status);
    let mut lines: Vec<String> = head_text.split("\r\n").map(str::to_string).collect();
    let header_value = |lines: &[String], name: &str| -> Option<(usize, String)> {
        lines.iter().enumerate().skip(1).find_map(|(i, l)| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| (i, v.trim().to_string()))
        })
    };
    let mut stall = None;
    match &fault {
        Some(Fault::FlipByte(at)) if *at < resp_body.len() => resp_body[*at] ^= 0x55,
        Some(Fault::ContentLengthDelta(delta)) => {
            if let Some((i, v)) = header_value(&lines, "content-length") {
                let n: i64 = v.parse().unwrap_or(0);
                lines[i] = format!("Content-Length: {}", n + delta);
            }
        }
        Some(Fault::ShiftContentRange(delta)) if status == 206 => {
            if let Some((i, v)) = header_value(&lines, "content-range") {
                // bytes START-END/TOTAL
                let shifted = v
                    .strip_prefix("bytes ")
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(a, rest)| {
                        let (b, total) = rest.split_once('/')?;
                        let (a, b): (i64, i64) = (a.parse().ok()?, b.parse().ok()?);
                        Some(format!("bytes {}-{}/{total}", a + delta, b + delta))
                    });
                if let Some(sh) = shifted {
                    lines[i] = format!("Content-Range: {sh}");
                }
            }
        }
        Some(Fault::ContentType(t)) => {
            if let Some((i, _)) = header_value(&lines, "content-type") {
                lines[i] = format!("Content-Type: {t}");
            }
        }
        Some(Fault::Truncate(n)) => resp_body.truncate((*n).min(resp_body.len())),
        Some(Fault::Stall(n, d)) => stall = Some(((*n).min(resp_body.len()), *d)),
        _ => {}
    }
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    match stall {
        Some((n, d)) => {
            out.extend_from_slice(&resp_body[..n]);
            let _ = client.write_all(&out);
            std::thread::sleep(d);
        }
        None => {
            out.extend_from_slice(&resp_body);
            let _ = client.write_all(&out);
        }
    }
    let _ = client.shutdown(Shutdown::Both);
}
