//! policy.json and registries.d files: any document is read without
//! panicking, and a policy that parses evaluates (without signatures) for
//! a few references without panicking, accepting only where its
//! requirements need no signature.
#![no_main]

use barge_oci::{Digest, Reference};
use barge_trust::{Policy, RegistriesD};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const IMAGES: &[&str] = &[
    "busybox",
    "localhost:5000/app:v1",
    "registry.example.com:5000/ns/app@sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4",
    "quay.io/a/b/c:tag",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut d = RegistriesD::default();
    if d.merge(text).is_ok() {
        for i in IMAGES {
            if let Ok(r) = Reference::parse_default_tag(i) {
                let _ = d.use_sigstore_attachments(&r);
            }
        }
    }
    // Key paths are read relative to the policy's directory: one with no files.
    let Ok(policy) = Policy::parse(text, Path::new("/nonexistent/policy.json")) else {
        return;
    };
    let digest = Digest::of(data);
    for i in IMAGES {
        let Ok(r) = Reference::parse_default_tag(i) else {
            continue;
        };
        let needs = policy.needs_signatures(&r);
        let verdict = policy.evaluate(&r, &digest, &mut || Ok(Vec::new()));
        if let Ok(decision) = verdict {
            assert!(!needs, "{i}: accepted without signatures by {}", decision.scope);
        }
    }
});
