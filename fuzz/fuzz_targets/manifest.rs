//! Manifests, indexes and image configs as registries (or hostile peers)
//! send them: parsing never panics, the media type decided from the body
//! is stable when the registry's `Content-Type` agrees with it, and what
//! barge computes from a parsed document (digests, chain IDs, platform
//! selection, descriptors written back to index.json) is consistent.
#![no_main]

use barge_oci::image::chain_ids;
use barge_oci::{media, Descriptor, Digest, ImageConfig, Manifest, ManifestError, Platform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = Manifest::parse(data, None);
    if let Ok(m) = &parsed {
        // The registry confirming the media type changes nothing.
        let confirmed = Manifest::parse(data, Some(m.media_type()))
            .unwrap_or_else(|e| panic!("parses alone as {}, not with that Content-Type: {e}", m.media_type()));
        assert_eq!(confirmed.media_type(), m.media_type());
        // Nor do parameters or a generic type.
        let with_params = format!("{}; charset=utf-8", m.media_type());
        assert!(Manifest::parse(data, Some(&with_params)).is_ok());
        assert!(Manifest::parse(data, Some("application/json")).is_ok());
        check_manifest(m);
    }
    // A known Content-Type that disagrees with the body is an error or, when
    // the body names no type, decides the kind alone.
    for header in [media::OCI_INDEX, media::DOCKER_MANIFEST] {
        if let Ok(m) = Manifest::parse(data, Some(header)) {
            check_manifest(&m);
        }
    }
    // Schema 1, whatever the body.
    assert!(matches!(
        Manifest::parse(data, Some(media::DOCKER_SCHEMA1_SIGNED)),
        Err(ManifestError::Schema1) | Err(ManifestError::TooLarge { .. })
    ));
    if let Ok(config) = ImageConfig::parse(data) {
        let ids = chain_ids(&config.rootfs.diff_ids);
        assert_eq!(ids.len(), config.rootfs.diff_ids.len());
        assert_eq!(ids.first(), config.rootfs.diff_ids.first());
        let _ = (config.platform().to_string(), config.labels());
    }
});

fn check_manifest(m: &Manifest) {
    match m {
        Manifest::Image { media_type, manifest } => {
            assert!(media::is_image_manifest(media_type));
            assert_eq!(manifest.schema_version, 2);
            let _ = manifest.check_layers();
            check_descriptor(&manifest.config);
            let mut diff_ids: Vec<Digest> = Vec::new();
            let mut total: Option<u64> = Some(0);
            for l in &manifest.layers {
                check_descriptor(l);
                let _ = media::layer_compression(&l.media_type);
                diff_ids.push(l.digest.clone());
                total = total.and_then(|t| t.checked_add(l.size));
            }
            let ids = chain_ids(&diff_ids);
            assert_eq!(ids.len(), diff_ids.len());
        }
        Manifest::Index { media_type, index } => {
            assert!(media::is_index(media_type));
            assert_eq!(index.schema_version, 2);
            for d in &index.manifests {
                check_descriptor(d);
            }
            let host = Platform::host();
            let chosen = host.select(
                index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| (p, &d.digest))),
            );
            if let Some(digest) = chosen {
                assert!(index.manifests.iter().any(|d| &d.digest == digest));
            }
        }
    }
}

/// A descriptor survives being written to index.json and read back, and its
/// digest prints as it parses.
fn check_descriptor(d: &Descriptor) {
    let shown = d.digest.to_string();
    assert_eq!(shown.parse::<Digest>().as_ref(), Ok(&d.digest));
    assert_eq!(d.digest.short().len(), 12);
    let json = serde_json::to_vec(d).unwrap_or_else(|e| panic!("{d:?} does not serialise: {e}"));
    let back: Descriptor =
        serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{d:?} does not read back from JSON: {e}"));
    assert_eq!(&back, d);
}
