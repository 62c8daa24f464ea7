//! Looking at and changing what a registry holds without moving images:
//! a blob's size by `HEAD`, manifest deletion, the referrers API.

use crate::auth::Scope;
use crate::client::{encode_query, Client, Method, Request, Target};
use crate::error::{Feature, RegistryError};
use barge_oci::{Descriptor, Digest, Reference};

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
        let resp = self.request(Request::new(r, Method::Delete, Target::Path(&path)).scopes(vec![Scope::delete(r)]))?;
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

    /// The manifests that name `digest` as their `subject`, through the OCI
    /// 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`, following
    /// `Link` pages), only those of `artifact_type` when given (asked of
    /// the registry, and applied here too: registries may ignore the
    /// filter). `None` when the registry has no referrers API (404): the
    /// caller falls back to the `sha256-<hex>` tag schema. A 404 without
    /// an error code is remembered for the host, which is not asked again.
    pub fn referrers(
        &self,
        r: &Reference,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            manifests: Vec<Descriptor>,
        }
        let host = self.host(r.api_host())?;
        if host.no_referrers_api.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(None);
        }
        let base = host.base.clone();
        let mut first = format!("{base}/v2/{}/referrers/{digest}", r.repository());
        if let Some(t) = artifact_type {
            first.push('?');
            first.push_str(&encode_query(&[("artifactType", t.to_string())]));
        }
        let mut out = Vec::new();
        let listed = self.pages(r, &[Scope::pull(r)], first, "referrers", |p: Page| {
            let n = p.manifests.len();
            out.extend(p.manifests);
            n
        });
        match listed {
            Ok(()) => {}
            Err(RegistryError::Status { status: 404, code, .. }) => {
                // A registry with the API says why (NAME_UNKNOWN, …); one without it answers
                // as for any unknown path, and that holds for all its repositories.
                if code.is_none() {
                    host.no_referrers_api.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        if let Some(t) = artifact_type {
            out.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(Some(out))
    }
}
