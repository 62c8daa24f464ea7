//! Signatures on the wire: reading and writing cosign's `sha256-<hex>.sig`
//! signature manifests through the registry client, signing and verifying
//! an image, and the policy gate that `pull`, `copy` and `mirror` pass an
//! image through before they store any of it. The formats and the policy
//! evaluation are barge-trust's.

use barge_oci::{media, Descriptor, Digest, Manifest, Reference};
use barge_registry::{Client, RegistryError};
use barge_trust::attach::{read_signatures, signature_image, signature_layer, signature_tag};
use barge_trust::payload::MAX_PAYLOAD_BYTES;
use barge_trust::{Candidate, Decision, Payload, Policy, PrivateKey, PublicKey, RegistriesD, TrustError};
use std::path::Path;

/// A signature manifest's config is a small JSON document.
const MAX_SIGNATURE_CONFIG_BYTES: u64 = 1 << 20;

/// The signatures stored for one manifest digest, as fetched: enough to
/// evaluate them and to copy them elsewhere unchanged.
#[derive(Debug, Clone)]
pub struct SignatureSet {
    /// The tag they live under (`sha256-<hex>.sig`).
    pub tag: String,
    pub manifest: Vec<u8>,
    pub media_type: String,
    /// The config blob, then one payload blob per signature.
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
    /// The signatures with their payloads, not yet verified.
    pub candidates: Vec<Candidate>,
}

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error(transparent)]
    Registry(Box<RegistryError>),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("{0} has no signatures")]
    Unsigned(String),
    /// Reading signatures through a copy source failed.
    #[error("{0}")]
    Copy(String),
}

impl From<RegistryError> for SignatureError {
    fn from(e: RegistryError) -> Self {
        SignatureError::Registry(Box::new(e))
    }
}

/// The signatures of manifest `digest` in `at`'s repository; `None` when there are none.
pub fn fetch_signatures(
    client: &Client,
    at: &Reference,
    digest: &Digest,
) -> Result<Option<SignatureSet>, SignatureError> {
    let tag = signature_tag(digest);
    let sig_ref = at.with_tag(&tag).map_err(|e| TrustError::Attachment(e.to_string()))?;
    let fetched = match client.get_manifest(&sig_ref) {
        Ok(f) => f,
        Err(RegistryError::ManifestNotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Manifest::Image { manifest, .. } = &fetched.manifest else {
        return Err(TrustError::Attachment(format!("{tag} is an index, not a signature manifest")).into());
    };
    let attached = read_signatures(manifest)?;
    let mut blobs = vec![(
        manifest.config.clone(),
        client.get_small_blob(&sig_ref, &manifest.config, MAX_SIGNATURE_CONFIG_BYTES)?,
    )];
    let mut candidates = Vec::with_capacity(attached.len());
    for a in attached {
        let payload = client.get_small_blob(&sig_ref, &a.layer, MAX_PAYLOAD_BYTES as u64)?;
        blobs.push((a.layer.clone(), payload.clone()));
        candidates.push(Candidate { attached: a, payload });
    }
    Ok(Some(SignatureSet {
        tag,
        manifest: fetched.bytes,
        media_type: fetched.media_type,
        blobs,
        candidates,
    }))
}

/// Stores a signature set in `at`'s repository under its tag, blobs first.
pub fn put_signatures(client: &Client, at: &Reference, set: &SignatureSet) -> Result<(), SignatureError> {
    for (desc, bytes) in &set.blobs {
        put_small_blob(client, at, desc, bytes)?;
    }
    client.put_manifest(at, &set.tag, &set.media_type, &set.manifest)?;
    Ok(())
}

fn put_small_blob(client: &Client, at: &Reference, desc: &Descriptor, bytes: &[u8]) -> Result<(), SignatureError> {
    crate::remote::put_blob_if_missing(client, at, &desc.digest, desc.size, || Ok::<_, SignatureError>(bytes))
}

/// What `barge sign` did.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The manifest digest signed.
    pub digest: Digest,
    /// The identity written into the payload.
    pub identity: String,
    /// The signature manifest's tag.
    pub tag: String,
    /// The image already carried this very signature.
    pub already: bool,
}

/// Signs the manifest `reference` names and adds the signature to its signature manifest.
pub fn sign(client: &Client, reference: &Reference, key: &PrivateKey) -> Result<Signed, SignatureError> {
    let digest = match reference.digest() {
        Some(d) => d.clone(),
        None => client.get_manifest(reference)?.digest,
    };
    let identity = match reference.tag() {
        Some(t) => reference.with_tag(t).map_err(|e| TrustError::Payload(e.to_string()))?,
        None => reference.clone(),
    };
    let signed = Payload::for_image(&identity, &digest);
    let payload = signed.to_bytes();
    let docker_reference = signed.docker_reference;
    let signature = key.sign(&payload);
    let layer = signature_layer(&payload, &signature);
    let existing = fetch_signatures(client, reference, &digest)?;
    let mut layers: Vec<Descriptor> = existing
        .as_ref()
        .map(|s| s.candidates.iter().map(|c| c.attached.layer.clone()).collect())
        .unwrap_or_default();
    let tag = signature_tag(&digest);
    if layers.contains(&layer) {
        return Ok(Signed {
            digest,
            identity: docker_reference,
            tag,
            already: true,
        });
    }
    layers.push(layer.clone());
    let image = signature_image(&layers)?;
    let mut blobs = vec![image.config];
    if let Some(s) = existing {
        blobs.extend(s.blobs.into_iter().skip(1));
    }
    blobs.push((layer, payload));
    let set = SignatureSet {
        tag: tag.clone(),
        manifest: image.manifest,
        media_type: media::OCI_MANIFEST.to_string(),
        blobs,
        candidates: Vec::new(),
    };
    put_signatures(client, reference, &set)?;
    Ok(Signed {
        digest,
        identity: docker_reference,
        tag,
        already: false,
    })
}

/// A signature `barge verify` checked.
#[derive(Debug, Clone)]
pub struct VerifiedSignature {
    /// The payload as stored (what cosign prints).
    pub payload: Vec<u8>,
    pub identity: String,
    pub signature_digest: Digest,
}

/// Checks the signatures of the manifest `reference` names against `key`:
/// the signature and the manifest digest in the payload (as `cosign verify`;
/// the identity is reported, policy.json is what constrains it). Returns the
/// ones that hold; an error if none does.
pub fn verify(
    client: &Client,
    reference: &Reference,
    key: &PublicKey,
) -> Result<(Digest, Vec<VerifiedSignature>), SignatureError> {
    let digest = match reference.digest() {
        Some(d) => d.clone(),
        None => client.get_manifest(reference)?.digest,
    };
    let set =
        fetch_signatures(client, reference, &digest)?.ok_or_else(|| SignatureError::Unsigned(reference.to_string()))?;
    let keys = std::slice::from_ref(key);
    let mut good = Vec::new();
    let mut last = None;
    for c in &set.candidates {
        match barge_trust::policy::verify_candidate(keys, &digest, c) {
            Ok((payload, _)) => good.push(VerifiedSignature {
                payload: c.payload.clone(),
                identity: payload.docker_reference,
                signature_digest: c.attached.layer.digest.clone(),
            }),
            Err(why) => last = Some(why),
        }
    }
    if good.is_empty() {
        let why = last.unwrap_or_else(|| "no signatures".into());
        return Err(TrustError::BadSignature(format!("no matching signatures: {why}")).into());
    }
    Ok((digest, good))
}

/// The policy in force and where sigstore attachments are used.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    policy: Option<Policy>,
    attachments: RegistriesD,
}

impl TrustPolicy {
    /// `policy_file` (none: accept anything, as podman without a policy) and the registries.d directory.
    pub fn load(policy_file: Option<&Path>, registries_d: &Path) -> Result<TrustPolicy, TrustError> {
        Ok(TrustPolicy {
            policy: policy_file.map(Policy::load).transpose()?,
            attachments: RegistriesD::load(registries_d)?,
        })
    }

    /// Decides whether `image` (the name it is wanted under) with manifest
    /// `digest` may be used. `fetch` reads its signatures (from the image's
    /// repository or a mirror of it); it is called only if the policy needs
    /// them and registries.d enables sigstore attachments for the image.
    /// `Ok(None)`: there is no policy file.
    pub fn check(
        &self,
        image: &Reference,
        digest: &Digest,
        fetch: &mut dyn FnMut() -> Result<Option<SignatureSet>, SignatureError>,
    ) -> Result<Option<Decision>, SignatureError> {
        let Some(policy) = &self.policy else { return Ok(None) };
        let use_attachments = self.attachments.use_sigstore_attachments(image);
        let mut fetch_error = None;
        let decision = policy.evaluate(image, digest, &mut || {
            if !use_attachments {
                return Ok(Vec::new());
            }
            match fetch() {
                Ok(set) => Ok(set.map(|s| s.candidates).unwrap_or_default()),
                Err(e) => {
                    let msg = e.to_string();
                    fetch_error = Some(e);
                    Err(TrustError::Fetch {
                        image: image.to_string(),
                        msg,
                    })
                }
            }
        });
        match (decision, fetch_error) {
            (Ok(d), _) => Ok(Some(d)),
            (Err(_), Some(e)) => Err(e),
            (Err(TrustError::Rejected { image, rule, why }), None)
                if !use_attachments && rule.starts_with("\"sigstoreSigned\"") =>
            {
                Err(TrustError::Rejected {
                    image,
                    rule,
                    why: format!(
                        "{why} (sigstore attachments are not enabled for this image: set use-sigstore-attachments in registries.d)"
                    ),
                }
                .into())
            }
            (Err(e), None) => Err(e.into()),
        }
    }
}
