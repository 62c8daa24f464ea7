//! Blob streams that survive broken connections.

use crate::client::{authority, url_status, Client, Method, Request, Target};
use crate::error::RegistryError;
use crate::speed::Pace;
use barge_oci::{Descriptor, Digest, Reference};
use std::io::{self, Read};
use std::time::Instant;
use ureq::BodyReader;

/// Reads one blob from a registry, from `offset` to its declared size.
///
/// When the connection breaks or ends early, the reader asks again with
/// `Range: bytes=<position>-` (skipping ahead itself if the registry
/// ignores ranges), backing off between attempts; it gives up after the
/// client's `max_attempts` consecutive failures without progress. It never
/// yields more than the descriptor's size. Callers verify the digest.
///
/// The time spent in its reads, reconnections included, is held to the
/// client's minimum speed ([`crate::speed`]): a registry that keeps every
/// connection alive with a byte now and then, or answers each reconnection
/// with one more byte, is given up once a window falls short, for good.
///
/// A blob whose descriptor lists `urls` (a foreign layer) is read from the
/// first of them that answers, without credentials, as docker and
/// containerd do; the registry is asked only when none does.
pub struct BlobReader<'c> {
    client: &'c Client,
    reference: Reference,
    digest: Digest,
    size: u64,
    pos: u64,
    body: Option<BodyReader<'static>>,
    failures: u32,
    last_error: String,
    pace: Pace,
    /// The URL the blob is read from instead of the registry.
    url: Option<String>,
}

impl Client {
    /// Opens a blob stream positioned at `offset` (a resumed download passes
    /// the length of what it already has).
    pub fn open_blob(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        offset: u64,
    ) -> Result<BlobReader<'_>, RegistryError> {
        let mut r = BlobReader {
            client: self,
            reference: reference.clone(),
            digest: desc.digest.clone(),
            size: desc.size,
            pos: offset.min(desc.size),
            body: None,
            failures: 0,
            last_error: String::new(),
            pace: Pace::new(self.options()),
            url: None,
        };
        if r.pos >= r.size {
            return Ok(r);
        }
        let mut tried = Vec::new();
        for url in desc.urls() {
            r.url = Some(url.clone());
            match r.connect() {
                Ok(()) => return Ok(r),
                Err(e) => tried.push(e.to_string()),
            }
        }
        r.url = None;
        match r.connect() {
            Err(RegistryError::BlobNotFound { repository, digest }) if !tried.is_empty() => {
                Err(RegistryError::ForeignBlob {
                    repository,
                    digest,
                    tried: tried.join("; "),
                })
            }
            other => other.map(|()| r),
        }
    }
}

impl BlobReader<'_> {
    fn connect(&mut self) -> Result<(), RegistryError> {
        let path = format!("blobs/{}", self.digest);
        let resp = match &self.url {
            Some(url) => self.client.get_url_from(url, self.pos)?,
            None => {
                let mut req = Request::new(&self.reference, Method::Get, Target::Path(&path)).following_redirects();
                if self.pos > 0 {
                    req = req.header("Range", format!("bytes={}-", self.pos));
                }
                self.client.request(req)?
            }
        };
        let status = resp.status().as_u16();
        match status {
            206 => {
                let start = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if start != Some(self.pos) {
                    return Err(self.transfer_error(format!(
                        "asked for bytes from {} and got a Content-Range starting at {}",
                        self.pos,
                        start
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "an unreadable position".into())
                    )));
                }
                self.body = Some(resp.into_body().into_reader());
            }
            200 => {
                let mut body = resp.into_body().into_reader();
                // The registry ignored the range: skip what we already have.
                if self.pos > 0 {
                    let skipped = io::copy(&mut (&mut body).take(self.pos), &mut io::sink())
                        .map_err(|e| self.transfer_error(e.to_string()))?;
                    if skipped != self.pos {
                        return Err(self.transfer_error("the registry sent less than was already downloaded".into()));
                    }
                }
                self.body = Some(body);
            }
            404 if self.url.is_none() => {
                return Err(RegistryError::BlobNotFound {
                    repository: self.reference.familiar_name(),
                    digest: self.digest.clone(),
                })
            }
            416 => return Err(self.transfer_error("the registry refused the range request (416)".into())),
            _ if self.url.is_some() => return Err(url_status(self.url.as_deref().unwrap_or_default(), status)),
            _ => {
                return Err(self
                    .client
                    .status_error(&self.reference, "GET", &path, status, Some(resp)))
            }
        }
        Ok(())
    }

    /// Where the bytes come from: the foreign URL's host, else the registry.
    fn host(&self) -> String {
        match &self.url {
            Some(url) => authority(url).to_string(),
            None => self.reference.api_host().to_string(),
        }
    }

    fn transfer_error(&self, message: String) -> RegistryError {
        RegistryError::BlobTransfer {
            host: self.host(),
            digest: self.digest.clone(),
            attempts: self.failures + 1,
            message,
        }
    }

    /// Records a failure; errors out once there have been too many in a row.
    fn fail(&mut self, message: String) -> io::Result<()> {
        self.body = None;
        self.failures += 1;
        self.last_error = message;
        if self.failures >= self.client.options().max_attempts {
            return Err(io::Error::other(RegistryError::BlobTransfer {
                host: self.host(),
                digest: self.digest.clone(),
                attempts: self.failures,
                message: self.last_error.clone(),
            }));
        }
        std::thread::sleep(self.client.backoff(self.failures));
        Ok(())
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = Instant::now();
        let result = self.read_unpaced(buf);
        let n = *result.as_ref().unwrap_or(&0);
        if let Err(slow) = self.pace.record(n, start.elapsed()) {
            self.body = None;
            return Err(io::Error::other(RegistryError::TooSlow {
                what: format!("blob {}", self.digest),
                host: self.host(),
                detail: slow.to_string(),
            }));
        }
        result
    }
}

impl BlobReader<'_> {
    fn read_unpaced(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min((self.size - self.pos).min(usize::MAX as u64) as usize);
        loop {
            if self.body.is_none() {
                match self.connect() {
                    Ok(()) => {}
                    Err(
                        e @ (RegistryError::BlobTransfer { .. }
                        | RegistryError::Connect { .. }
                        | RegistryError::Status { .. }),
                    ) => {
                        self.fail(e.to_string())?;
                        continue;
                    }
                    Err(e) => return Err(io::Error::other(e)),
                }
            }
            let Some(body) = self.body.as_mut() else { continue };
            match body.read(&mut buf[..want]) {
                Ok(0) => {
                    let msg = format!("connection closed after {} of {} bytes", self.pos, self.size);
                    self.fail(msg)?;
                }
                Ok(n) => {
                    self.pos += n as u64;
                    // Progress was made: consecutive failures start over.
                    self.failures = 0;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.fail(e.to_string())?,
            }
        }
    }
}

/// Turns an I/O error from a [`BlobReader`] back into the registry error it carries.
pub(crate) fn into_registry_error(e: io::Error, host: &str, digest: &Digest) -> RegistryError {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<RegistryError>()) {
        Some(_) => match e.into_inner().map(|inner| inner.downcast::<RegistryError>()) {
            Some(Ok(r)) => *r,
            _ => RegistryError::BlobTransfer {
                host: host.into(),
                digest: digest.clone(),
                attempts: 1,
                message: "transfer failed".into(),
            },
        },
        None => RegistryError::BlobTransfer {
            host: host.into(),
            digest: digest.clone(),
            attempts: 1,
            message: e.to_string(),
        },
    }
}
