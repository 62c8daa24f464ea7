//! cosign's signature storage: the signatures of manifest `sha256:<hex>` live
//! in the same repository under the tag `sha256-<hex>.sig`, as an OCI image
//! manifest whose layers are the signed payloads (media type
//! `application/vnd.dev.cosign.simplesigning.v1+json`), each with its base64
//! signature in the annotation `dev.cosignproject.cosign/signature`.
//!
//! This module builds and reads those manifests; moving the blobs is the
//! caller's business.

use crate::TrustError;
use barge_oci::{media, Descriptor, Digest, ImageManifest};
use base64::Engine as _;
use std::collections::BTreeMap;

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Annotations that mark keyless (Fulcio certificate / Rekor bundle) signatures.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// Signature manifests with more layers than this are refused.
pub const MAX_SIGNATURES: usize = 256;

/// The tag holding the signatures of `digest`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// One signature found in a signature manifest, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The payload layer's descriptor (fetch the payload with it).
    pub layer: Descriptor,
    /// The decoded signature, or why it could not be decoded.
    pub signature: Result<Vec<u8>, String>,
    /// The signature carries a certificate or Rekor bundle (keyless signing).
    pub keyless: bool,
}

/// The signatures a signature manifest lists, in order. Layers of other media types are skipped.
pub fn read_signatures(manifest: &ImageManifest) -> Result<Vec<Attached>, TrustError> {
    if manifest.layers.len() > MAX_SIGNATURES {
        return Err(TrustError::Attachment(format!(
            "{} signatures, more than {MAX_SIGNATURES}",
            manifest.layers.len()
        )));
    }
    Ok(manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
        .map(|layer| {
            let ann = layer.annotations.as_ref();
            let signature = match ann.and_then(|a| a.get(SIGNATURE_ANNOTATION)) {
                Some(s) => base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_err(|e| format!("its signature annotation is not base64: {e}")),
                None => Err(format!("it has no {SIGNATURE_ANNOTATION} annotation")),
            };
            let keyless =
                ann.is_some_and(|a| a.contains_key(CERTIFICATE_ANNOTATION) || a.contains_key(BUNDLE_ANNOTATION));
            Attached {
                layer: layer.clone(),
                signature,
                keyless,
            }
        })
        .collect())
}

/// A signature manifest and the blobs it needs (config, then payloads), ready to push.
#[derive(Debug, Clone)]
pub struct SignatureImage {
    pub manifest: Vec<u8>,
    pub config: (Descriptor, Vec<u8>),
}

/// The layer descriptor of a payload and its signature.
pub fn signature_layer(payload: &[u8], signature: &[u8]) -> Descriptor {
    let mut d = Descriptor::new(SIMPLE_SIGNING_MEDIA_TYPE, Digest::of(payload), payload.len() as u64);
    let mut ann = BTreeMap::new();
    ann.insert(
        SIGNATURE_ANNOTATION.to_string(),
        base64::engine::general_purpose::STANDARD.encode(signature),
    );
    d.annotations = Some(ann);
    d
}

/// The manifest listing `layers` (existing signatures first, then new ones),
/// with the config cosign writes: an empty image whose diff_ids are the payload digests.
pub fn signature_image(layers: &[Descriptor]) -> Result<SignatureImage, TrustError> {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
    let config = serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    });
    let config = serde_json::to_vec(&config).map_err(|e| TrustError::Attachment(e.to_string()))?;
    let config_desc = Descriptor::new(media::OCI_CONFIG, Digest::of(&config), config.len() as u64);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": config_desc,
        "layers": layers,
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| TrustError::Attachment(e.to_string()))?;
    Ok(SignatureImage {
        manifest,
        config: (config_desc, config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use barge_oci::Manifest;

    #[test]
    fn a_built_signature_manifest_reads_back() {
        let layer = signature_layer(b"payload", b"sig");
        let image = signature_image(std::slice::from_ref(&layer)).expect("build");
        let Manifest::Image { manifest, .. } =
            Manifest::parse(&image.manifest, Some(media::OCI_MANIFEST)).expect("parse")
        else {
            panic!("not an image manifest")
        };
        let sigs = read_signatures(&manifest).expect("read");
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].layer, layer);
        assert_eq!(sigs[0].signature.as_deref(), Ok(&b"sig"[..]));
        assert!(!sigs[0].keyless);
        let config: serde_json::Value = serde_json::from_slice(&image.config.1).expect("json");
        assert_eq!(config["rootfs"]["diff_ids"][0], layer.digest.to_string());
    }

    #[test]
    fn the_tag_is_cosigns() {
        let d = Digest::of(b"x");
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", d.hex()));
    }
}
