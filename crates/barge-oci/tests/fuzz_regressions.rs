//! Inputs the fuzz targets (fuzz/fuzz_targets/) found to break a property,
//! kept as tests once fixed.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use barge_oci::Reference;

/// A Docker Hub repository whose first component looks like a host: the
/// familiar form used to drop `docker.io/`, and then named another registry.
#[test]
fn familiar_form_of_a_hub_repository_that_looks_like_a_host() {
    let input = "index.docker.io/ex.docker.io/library/library/iindex.docker.io/librane";
    let r = Reference::parse(input).unwrap();
    assert_eq!(r.registry(), "docker.io");
    assert_eq!(Reference::parse(&r.familiar()).unwrap(), r);
    for name in ["docker.io/my.org/app:1", "docker.io/localhost/app", "docker.io/a:b/c"] {
        let Ok(r) = Reference::parse(name) else { continue };
        assert_eq!(Reference::parse(&r.familiar()).unwrap(), r, "{name}");
    }
    // Names without that ambiguity keep their short form.
    assert_eq!(Reference::parse("docker.io/user/app").unwrap().familiar(), "user/app");
    assert_eq!(
        Reference::parse("docker.io/library/busybox").unwrap().familiar(),
        "busybox"
    );
}
