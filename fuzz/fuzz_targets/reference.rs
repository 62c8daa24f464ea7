//! Image references (and platforms, the other string users type):
//! parsing never panics, and what barge prints parses back to the same value.
#![no_main]

use barge_oci::{Platform, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(s) {
        check_reference(s, &r);
    }
    if let Ok(r) = Reference::parse_default_tag(s) {
        assert!(
            r.tag().is_some() || r.digest().is_some(),
            "{s:?}: {r} has neither tag nor digest"
        );
    }
    if let Ok(p) = Platform::parse(s) {
        let shown = p.to_string();
        let again = Platform::parse(&shown).unwrap_or_else(|e| panic!("{s:?} -> {shown:?} does not parse: {e}"));
        assert_eq!(again, p, "{s:?} -> {shown:?}");
        assert!(p.matches(&p), "{s:?}: {p:?} does not match itself");
    }
});

fn check_reference(input: &str, r: &Reference) {
    // The full form (docker.io/library/busybox:latest) is what the store keeps.
    let full = r.to_string();
    let again = Reference::parse(&full).unwrap_or_else(|e| panic!("{input:?} -> {full:?} does not parse: {e}"));
    assert_eq!(&again, r, "{input:?} -> {full:?}");
    assert_eq!(full.len(), {
        let mut n = r.name().len();
        n += r.tag().map_or(0, |t| t.len() + 1);
        n += r.digest().map_or(0, |d| d.to_string().len() + 1);
        n
    });
    // The familiar form (busybox:latest) is what tables show. A bare
    // 64-hex-digit name is refused as ambiguous with an image ID (as docker
    // does), so `docker.io/library/<64 hex>` has no familiar form that parses.
    let familiar = r.familiar();
    let ambiguous = familiar.len() == 64 && familiar.bytes().all(|b| b.is_ascii_hexdigit());
    if !ambiguous {
        let again =
            Reference::parse(&familiar).unwrap_or_else(|e| panic!("{input:?} -> {familiar:?} does not parse: {e}"));
        assert_eq!(&again, r, "{input:?} -> familiar {familiar:?}");
    }
    assert_eq!(r.name(), format!("{}/{}", r.registry(), r.repository()));
    assert!(!r.api_host().is_empty());
    let key = r.manifest_key();
    match r.digest() {
        Some(d) => assert_eq!(key, d.to_string()),
        None => assert_eq!(Some(key.as_str()), r.tag().or(Some("latest"))),
    }
    let tagged = r
        .with_tag("latest")
        .unwrap_or_else(|e| panic!("{input:?}: with_tag(latest): {e}"));
    assert_eq!(tagged.name(), r.name());
    if let Some(d) = r.digest() {
        let pinned = r.with_digest(d.clone());
        assert_eq!(Reference::parse(&pinned.to_string()).as_ref(), Ok(&pinned));
    }
    // Mirrors rename references; the result is either refused or valid.
    if let Ok(m) = r.moved_to("mirror.example:5000", "/cache/") {
        assert_eq!(Reference::parse(&m.to_string()).as_ref(), Ok(&m));
        assert_eq!(m.tag(), r.tag());
        assert_eq!(m.digest(), r.digest());
    }
}
