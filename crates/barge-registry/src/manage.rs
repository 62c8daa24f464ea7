//! Looking at and changing what a registry holds without moving images:
//! a blob's size by `HEAD`, and manifest deletion.

use crate::client::{Client, Method, Request, Target};
use crate::error::{Feature, RegistryError};
use barge_oci::{Digest, Reference};

impl Client {
    /// The size of a blob of the repository (`HEAD`, pull access), or
    /// `None` when the repository has no such blob.
    pub fn blob_size(&self, r: &Reference, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let path = format!("blobs/{digest}");
        let resp = self.request(Request::new(r, Method::Head, Target::Path(&path)).following_redirects())?;
        match resp.status().as_u16() {
            200 => {
                let size = resp
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok());
                match size {
                    Some(s) => Ok(Some(s)),
                    None => Err(self.status_error(r, "HEAD", &format!("{path} (no Content-Length)"), 200, None)),
                }
            }
            404 => Ok(None),
            status => Err(self.status_error(r, "HEAD", &path, status, None)),
        }
    }

    /// Deletes the manifest `digest` from the repository (every tag that
    /// names it goes with it). A registry with deletion turned off answers
    /// 405 (docker-registry) or `UNSUPPORTED`: that is
    /// [`RegistryError::Unsupported`].
    pub fn delete_manifest(&self, r: &Reference, digest: &Digest) -> Result<(), RegistryError> {
        let path = format!("manifests/{digest}");
        let resp = self.request(Request::new(r, Method::Delete, Target::Path(&path)).pushing())?;
        match resp.status().as_u16() {
            200 | 202 | 204 => Ok(()),
            404 => Err(RegistryError::ManifestNotFound {
                reference: r.with_digest(digest.clone()).familiar(),
            }),
            status => {
                let (code, message) = self.error_body(resp);
                if status == 405 || code.as_deref() == Some("UNSUPPORTED") {
                    return Err(RegistryError::Unsupported {
                        host: r.api_host().to_string(),
                        feature: Feature::Delete,
                        status,
                        code,
                    });
                }
                Err(RegistryError::Status {
                    host: r.api_host().to_string(),
                    method: "DELETE".into(),
                    path: format!("/v2/{}/{path}", r.repository()),
                    status,
                    code,
                    message,
                })
            }
        }
    }
}
