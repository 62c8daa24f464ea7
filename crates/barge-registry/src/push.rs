//! Pushing: blob existence checks, cross-repository mounts, uploads, manifests.

use crate::auth::Scope;
use crate::client::{BodyError, Client, Method, Payload, Request, Target};
use crate::error::{Feature, RegistryError};
use barge_oci::{Digest, Reference};

/// What a mount request achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// The registry linked the blob from the other repository.
    Mounted,
    /// It did not; it opened an upload session instead.
    Upload(Upload),
}

/// An open upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Where the next request of the session goes.
    pub location: String,
    /// The smallest chunk the registry accepts (`OCI-Chunk-Min-Length`).
    pub min_chunk: Option<u64>,
}

impl Upload {
    fn from_response(resp: &ureq::http::Response<ureq::Body>) -> Option<Upload> {
        Some(Upload {
            location: location(resp)?,
            min_chunk: resp
                .headers()
                .get("oci-chunk-min-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
        })
    }
}

/// The end of a `Range: 0-<last>` header: bytes the registry holds.
fn range_end(resp: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    let v = resp.headers().get("range")?.to_str().ok()?;
    let (_, last) = v.trim().trim_start_matches("bytes=").split_once('-')?;
    last.trim().parse::<u64>().ok().map(|l| l + 1)
}

fn location(resp: &ureq::http::Response<ureq::Body>) -> Option<String> {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `url` with `digest=` added to its query.
fn with_digest(url: &str, digest: &Digest) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={}", digest.to_string().replace(':', "%3A"))
}

impl Client {
    /// Does the repository already have this blob?
    pub fn blob_exists(&self, r: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        if let Some(known) = self.known_blob(r, digest) {
            return Ok(known);
        }
        let path = format!("blobs/{digest}");
        let resp = self.request(Request::new(r, Method::Head, Target::Path(&path)).pushing())?;
        match resp.status().as_u16() {
            200 => {
                self.note_blob(r, digest);
                Ok(true)
            }
            404 => Ok(false),
            status => Err(self.status_error(r, "HEAD", &path, status, Some(resp))),
        }
    }

    /// Asks the registry to link a blob from repository `from` of the same
    /// registry (`from` as in references: `team/app`).
    pub fn mount_blob(&self, r: &Reference, digest: &Digest, from: &str) -> Result<MountOutcome, RegistryError> {
        let path = format!(
            "blobs/uploads/?mount={}&from={from}",
            digest.to_string().replace(':', "%3A")
        );
        let scopes = vec![Scope::push(r), Scope::pull_repository(from)];
        let resp = self.request(Request::new(r, Method::Post, Target::Path(&path)).scopes(scopes))?;
        match resp.status().as_u16() {
            201 => {
                self.note_blob(r, digest);
                Ok(MountOutcome::Mounted)
            }
            202 => Upload::from_response(&resp)
                .map(MountOutcome::Upload)
                .ok_or_else(|| self.status_error(r, "POST", &path, 202, None)),
            status => Err(self.status_error(r, "POST", &path, status, Some(resp))),
        }
    }

    /// Opens an upload session.
    pub fn start_upload(&self, r: &Reference) -> Result<Upload, RegistryError> {
        let path = "blobs/uploads/";
        let resp = self.request(Request::new(r, Method::Post, Target::Path(path)).pushing())?;
        match resp.status().as_u16() {
            202 => Upload::from_response(&resp).ok_or_else(|| self.status_error(r, "POST", path, 202, None)),
            status => Err(self.status_error(r, "POST", path, status, Some(resp))),
        }
    }

    /// Uploads a whole blob in one `PUT` to an upload session, streaming it
    /// from `file`; `progress` hears the bytes sent.
    pub fn upload_blob(
        &self,
        r: &Reference,
        session: &str,
        file: &std::fs::File,
        size: u64,
        digest: &Digest,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), RegistryError> {
        let payload = Payload::File {
            file,
            offset: 0,
            len: size,
            progress,
        };
        self.close_upload(r, session, digest, payload, &[201, 204])
    }

    /// Uploads a whole blob in one `PUT`, streaming it from `reader` (another
    /// registry's blob, say). Sent once: a stream cannot be replayed.
    pub fn upload_blob_stream(
        &self,
        r: &Reference,
        session: &str,
        reader: &mut dyn std::io::Read,
        size: u64,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        // A shorter-lived trait object, so that the cell may borrow it.
        let short: &mut dyn std::io::Read = &mut *reader;
        let cell = std::cell::RefCell::new(short);
        let payload = Payload::Stream {
            reader: &cell,
            len: size,
        };
        self.close_upload(r, session, digest, payload, &[201, 204])
    }

    /// The `PUT` that closes an upload session with the blob's digest,
    /// carrying `payload` (the blob, or the rest of it, or nothing after
    /// chunks); the registry must answer with one of `accepted`.
    fn close_upload(
        &self,
        r: &Reference,
        session: &str,
        digest: &Digest,
        payload: Payload<'_>,
        accepted: &[u16],
    ) -> Result<(), RegistryError> {
        let url = with_digest(session, digest);
        let mut req = Request::new(r, Method::Put, Target::Url(&url))
            .pushing()
            .payload(payload);
        if !matches!(payload, Payload::None) {
            req = req.header("Content-Type", "application/octet-stream");
        }
        let resp = self.request(req)?;
        match resp.status().as_u16() {
            status if accepted.contains(&status) => {
                self.note_blob(r, digest);
                Ok(())
            }
            status => Err(self.status_error(r, "PUT", &format!("blobs/uploads (blob {digest})"), status, Some(resp))),
        }
    }

    /// Sends bytes `offset..offset+len` of `file` as one `PATCH` chunk;
    /// returns the session's next location and how much the registry now holds.
    #[allow(clippy::too_many_arguments)]
    pub fn upload_chunk(
        &self,
        r: &Reference,
        session: &str,
        file: &std::fs::File,
        offset: u64,
        len: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(String, u64), RegistryError> {
        let payload = Payload::File {
            file,
            offset,
            len,
            progress: &|sent| progress(offset + sent),
        };
        let resp = self.request(
            Request::new(r, Method::Patch, Target::Url(session))
                .pushing()
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{offset}-{}", offset + len - 1))
                .payload(payload),
        )?;
        match resp.status().as_u16() {
            202 | 204 => {
                let next = location(&resp).unwrap_or_else(|| session.to_string());
                Ok((next, range_end(&resp).unwrap_or(offset + len)))
            }
            status => Err(self.status_error(r, "PATCH", "blobs/uploads (chunk)", status, Some(resp))),
        }
    }

    /// Closes a chunked upload with the blob's digest.
    pub fn finish_upload(&self, r: &Reference, session: &str, digest: &Digest) -> Result<(), RegistryError> {
        self.close_upload(r, session, digest, Payload::None, &[201, 202, 204])
    }

    /// Puts a manifest under a tag or digest; returns the digest the registry reports.
    pub fn put_manifest(
        &self,
        r: &Reference,
        key: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let path = format!("manifests/{key}");
        let resp = self.request(
            Request::new(r, Method::Put, Target::Path(&path))
                .pushing()
                .header("Content-Type", media_type)
                .payload(Payload::Bytes(bytes)),
        )?;
        match resp.status().as_u16() {
            201 | 200 | 204 => {
                let reported = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let ours = Digest::of(bytes);
                match reported {
                    Some(d) if d != ours => Err(RegistryError::DigestMismatch {
                        host: r.api_host().to_string(),
                        expected: ours,
                        actual: d,
                    }),
                    _ => {
                        self.note_manifest(r, key, &ours);
                        Ok(ours)
                    }
                }
            }
            status => Err(self.status_error(r, "PUT", &path, status, Some(resp))),
        }
    }
}

/// Names a listing asks for per page unless told otherwise.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// JSON a paginated listing may send in all its pages together.
const MAX_LISTING_BYTES: u64 = 32 << 20;
/// Names (tags, repositories) a listing may hold.
const MAX_LISTING_NAMES: usize = 1_000_000;
/// Pages a listing may take.
const MAX_LISTING_PAGES: usize = 10_000;

/// The next page of a paginated listing, from a `Link: <url>; rel="next"` header.
fn next_link(resp: &ureq::http::Response<ureq::Body>) -> Option<String> {
    let link = resp.headers().get("link")?.to_str().ok()?;
    link.split(',')
        .find(|l| l.contains("rel=\"next\"") || l.contains("rel=next"))
        .and_then(|l| {
            let start = l.find('<')? + 1;
            let end = l[start..].find('>')? + start;
            Some(l[start..end].to_string())
        })
}

impl Client {
    /// Every tag of a repository, following `Link` pagination, asking for
    /// `page_size` tags a page (`?n=`; registries may send fewer or more).
    pub fn list_tags(&self, r: &Reference, page_size: u32) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let base = self.host(r.api_host())?.base.clone();
        let first = format!("{base}/v2/{}/tags/list?n={}", r.repository(), page_size.max(1));
        let mut out = Vec::new();
        self.pages(r, &[Scope::pull(r)], first, "tags/list", |p: Tags| {
            let tags = p.tags.unwrap_or_default();
            let n = tags.len();
            out.extend(tags);
            n
        })?;
        Ok(out)
    }

    /// Every repository of a registry (`_catalog`), following `Link`
    /// pagination, `page_size` names a page. `any` is any reference on that
    /// registry. A registry that does not offer its catalog (404, 405,
    /// `UNSUPPORTED`) or not to this user (401, 403) is
    /// [`RegistryError::Unsupported`].
    pub fn catalog(&self, any: &Reference, page_size: u32) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let base = self.host(any.api_host())?.base.clone();
        let mut out = Vec::new();
        let listed = self.pages(
            any,
            &[Scope::catalog()],
            format!("{base}/v2/_catalog?n={}", page_size.max(1)),
            "_catalog",
            |p: Catalog| {
                let n = p.repositories.len();
                out.extend(p.repositories);
                n
            },
        );
        let refused = |status: u16, code: Option<String>| RegistryError::Unsupported {
            host: any.api_host().to_string(),
            feature: Feature::Catalog,
            status,
            code,
        };
        match listed {
            Ok(()) => Ok(out),
            Err(RegistryError::Unauthorized { code, .. }) => Err(refused(401, code)),
            Err(RegistryError::Status { status, code, .. })
                if matches!(status, 404 | 405) || code.as_deref() == Some("UNSUPPORTED") =>
            {
                Err(refused(status, code))
            }
            Err(e) => Err(e),
        }
    }

    /// GETs a JSON listing page by page (`Link: <…>; rel="next"`). The
    /// pages together may hold at most [`MAX_LISTING_BYTES`] of JSON and
    /// [`MAX_LISTING_NAMES`] names in at most [`MAX_LISTING_PAGES`] pages:
    /// everything listed stays in memory, and a registry decides how many
    /// pages there are. `each` returns how many names a page added.
    /// One page of a listing at `url`, at most `left` bytes (past that,
    /// `TooLarge` saying `limit`): the page, the next page's URL, the
    /// bytes read.
    fn page<T: serde::de::DeserializeOwned>(
        &self,
        r: &Reference,
        scopes: &[Scope],
        url: &str,
        what: &str,
        (left, limit): (u64, u64),
    ) -> Result<(T, Option<String>, u64), RegistryError> {
        let resp = self.request(Request::new(r, Method::Get, Target::Url(url)).scopes(scopes.to_vec()))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(self.status_error(r, "GET", what, status, Some(resp)));
        }
        let next = next_link(&resp);
        let body = self.read_body(resp, left).map_err(|e| match e {
            BodyError::TooLarge => RegistryError::TooLarge {
                what: format!("the {what} listing"),
                host: r.api_host().to_string(),
                limit,
            },
            other => other.into_error(&format!("the {what} listing"), r.api_host(), left),
        })?;
        let page = serde_json::from_slice(&body)
            .map_err(|e| self.status_error(r, "GET", &crate::sanitize(&format!("{what}: {e}")), 200, None))?;
        Ok((page, next, body.len() as u64))
    }

    /// Whether the repository has any tag: one page of one tag; a
    /// repository the registry does not know (`NAME_UNKNOWN`) has none.
    pub fn has_tags(&self, r: &Reference) -> Result<bool, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let base = self.host(r.api_host())?.base.clone();
        let url = format!("{base}/v2/{}/tags/list?n=1", r.repository());
        match self.page::<Tags>(r, &[Scope::pull(r)], &url, "tags/list", (1 << 20, 1 << 20)) {
            Ok((page, _, _)) => Ok(page.tags.is_some_and(|t| !t.is_empty())),
            Err(RegistryError::Status { status: 404, code, .. }) if code.as_deref() == Some("NAME_UNKNOWN") => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) fn pages<T: serde::de::DeserializeOwned>(
        &self,
        r: &Reference,
        scopes: &[Scope],
        first: String,
        what: &str,
        mut each: impl FnMut(T) -> usize,
    ) -> Result<(), RegistryError> {
        let host = r.api_host().to_string();
        let mut url = first;
        let (mut bytes, mut names) = (0u64, 0usize);
        for _ in 0..MAX_LISTING_PAGES {
            let left = MAX_LISTING_BYTES - bytes;
            let (page, next, size) = self.page(r, scopes, &url, what, (left, MAX_LISTING_BYTES))?;
            bytes += size;
            names += each(page);
            if names > MAX_LISTING_NAMES {
                return Err(RegistryError::TooLarge {
                    what: format!("the {what} listing (names)"),
                    host,
                    limit: MAX_LISTING_NAMES as u64,
                });
            }
            match next {
                Some(n) => url = n,
                None => return Ok(()),
            }
        }
        Err(RegistryError::TooLarge {
            what: format!("the {what} listing (pages)"),
            host,
            limit: MAX_LISTING_PAGES as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn link_headers() {
        let resp = ureq::http::Response::builder()
            .header("Link", r#"</v2/_catalog?last=b&n=2>; rel="next""#)
            .body(ureq::Body::builder().data(Vec::new()))
            .unwrap();
        assert_eq!(super::next_link(&resp).as_deref(), Some("/v2/_catalog?last=b&n=2"));
    }
}
