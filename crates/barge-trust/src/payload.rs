//! The simple-signing payload a sigstore signature signs:
//! `{"critical":{"identity":{"docker-reference":…},"image":{"docker-manifest-digest":…},
//! "type":"cosign container image signature"},"optional":…}`.

use crate::TrustError;
use barge_oci::{Digest, Reference};
use serde::{Deserialize, Serialize};

/// The `critical.type` every cosign payload carries.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// A payload larger than this is not a signature payload.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 10;

/// A parsed payload. Parse only bytes whose signature verified: before that
/// nothing in it is trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// `critical.identity.docker-reference`, as written by the signer.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: Digest,
    /// `optional`, kept as JSON (`null` when absent).
    pub optional: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    critical: Critical,
    #[serde(default)]
    optional: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

impl Payload {
    /// The payload for signing `digest` as `identity`: the reference with its
    /// tag when it has one (what skopeo writes, so that the default
    /// `matchRepoDigestOrExact` accepts it), else the repository (cosign's form).
    pub fn for_image(identity: &Reference, digest: &Digest) -> Payload {
        let docker_reference = match identity.tag() {
            Some(tag) => format!("{}:{tag}", identity.name()),
            None => identity.name(),
        };
        Payload {
            docker_reference,
            manifest_digest: digest.clone(),
            optional: serde_json::json!({ "creator": concat!("barge ", env!("CARGO_PKG_VERSION")) }),
        }
    }

    /// Parses a payload strictly: unknown critical fields and another type are refused.
    pub fn parse(bytes: &[u8]) -> Result<Payload, TrustError> {
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(TrustError::Payload(format!(
                "{} bytes, more than {MAX_PAYLOAD_BYTES}",
                bytes.len()
            )));
        }
        let wire: Wire = serde_json::from_slice(bytes).map_err(|e| TrustError::Payload(e.to_string()))?;
        if wire.critical.kind != PAYLOAD_TYPE {
            return Err(TrustError::Payload(format!(
                "type {:?}, expected {PAYLOAD_TYPE:?}",
                wire.critical.kind
            )));
        }
        if !(wire.optional.is_null() || wire.optional.is_object()) {
            return Err(TrustError::Payload("\"optional\" is not an object".into()));
        }
        let manifest_digest = wire
            .critical
            .image
            .docker_manifest_digest
            .parse()
            .map_err(|e| TrustError::Payload(format!("docker-manifest-digest: {e}")))?;
        Ok(Payload {
            docker_reference: wire.critical.identity.docker_reference,
            manifest_digest,
            optional: wire.optional,
        })
    }

    /// The bytes to sign and store.
    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = Wire {
            critical: Critical {
                identity: Identity {
                    docker_reference: self.docker_reference.clone(),
                },
                image: Image {
                    docker_manifest_digest: self.manifest_digest.to_string(),
                },
                kind: PAYLOAD_TYPE.to_string(),
            },
            optional: self.optional.clone(),
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// The signed identity as a reference.
    pub fn identity(&self) -> Result<Reference, TrustError> {
        Reference::parse(&self.docker_reference)
            .map_err(|e| TrustError::Payload(format!("docker-reference {:?}: {e}", self.docker_reference)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0f0b5a0bdfb56d5d0dd5b7a0c8b6a6ef0fcd7e4d35ce3a10a1d8a1d4c68ec0b7";

    #[test]
    fn cosign_payload_parses() {
        let text = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"quay.io/x/y"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":null}}"#
        );
        let p = Payload::parse(text.as_bytes()).expect("parses");
        assert_eq!(p.docker_reference, "quay.io/x/y");
        assert_eq!(p.manifest_digest.to_string(), DIGEST);
        assert_eq!(p.identity().expect("ref").name(), "quay.io/x/y");
    }

    #[test]
    fn written_payload_has_cosign_field_order_and_reads_back() {
        let r = Reference::parse("localhost:5000/app:v1").expect("ref");
        let d: Digest = DIGEST.parse().expect("digest");
        let p = Payload::for_image(&r, &d);
        let bytes = p.to_bytes();
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(
            text.starts_with(&format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"localhost:5000/app:v1"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":{{"creator":"barge "#
            )),
            "{text}"
        );
        assert_eq!(Payload::parse(&bytes).expect("parses"), p);
    }

    #[test]
    fn optional_numbers_read_back_exactly() {
        // Found by the signature_payload fuzzer: without correctly rounded
        // float parsing, the number barge writes for this one reads back as
        // a neighbouring double, so a payload did not survive a round trip.
        let text = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"a/b"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":{{"n":1.7006666666666667e69,"m":2.2250738585072011e-308}}}}"#
        );
        let p = Payload::parse(text.as_bytes()).expect("parses");
        assert_eq!(Payload::parse(&p.to_bytes()).expect("parses again"), p);
        assert_eq!(p.optional["n"].as_f64(), Some(1.7006666666666667e69));
    }

    #[test]
    fn other_types_and_extra_critical_fields_are_refused() {
        let other = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"a/b"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"atomic container signature"}}}}"#
        );
        assert!(Payload::parse(other.as_bytes()).is_err());
        let extra = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"a/b"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature","x":1}}}}"#
        );
        assert!(Payload::parse(extra.as_bytes()).is_err());
    }
}
