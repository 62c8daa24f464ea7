//! Foreign (non-distributable) layers: fetched from their `urls`, digest
//! verified, and left out of pushes and copies unless barge.json's
//! `allow-nondistributable-artifacts` names the destination registry.

use barge_tests::canned::{CannedServer, Response};
use barge_tests::image::{self, Compression, Image, Layer, LayerBuilder, Spec, Style};
use barge_tests::registry::{Auth, Options, Registry, PASSWORD, USER};
use barge_tests::{require_root_and, stderr_of, Barge};

const FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A two-layer Docker image whose top layer is foreign, served at `url`.
/// Returns the image, its manifest bytes and their digest.
fn foreign_image(url: &str) -> (Image, Vec<u8>, String) {
    let base = LayerBuilder::new()
        .dir("etc/", 0o755)
        .file("etc/base", b"from the registry\n", 0o644)
        .build(Compression::Gzip);
    let top = LayerBuilder::new()
        .file("etc/foreign", b"from a url\n", 0o644)
        .build(Compression::Gzip);
    let img = Image::new(vec![base, top], Style::Docker, Spec::default());
    let mut m: serde_json::Value = serde_json::from_slice(&img.manifest).expect("manifest");
    m["layers"][1]["mediaType"] = FOREIGN.into();
    m["layers"][1]["urls"] = serde_json::json!([url]);
    let bytes = serde_json::to_vec(&m).expect("manifest json");
    let digest = barge_tests::sha256(&bytes);
    (img, bytes, digest)
}

/// Puts the image's config and base layer (not the foreign one) under `repo:tag`.
fn push_without_foreign(reg: &Registry, repo: &str, tag: &str, img: &Image, manifest: &[u8]) {
    image::push_blob(reg, repo, &img.layers[0].blob);
    image::push_blob(reg, repo, &img.config);
    image::push_manifest(reg, repo, tag, DOCKER_MANIFEST, manifest);
}

/// The status of `HEAD /v2/REPO/blobs/DIGEST`.
fn blob_status(reg: &Registry, repo: &str, digest: &str) -> u16 {
    let mut req = image::agent().head(format!("{}/v2/{repo}/blobs/{digest}", reg.base_url()));
    if let Some(a) = reg.push_auth(repo) {
        req = req.header("Authorization", a.as_str());
    }
    req.call().expect("HEAD blob").status().as_u16()
}

fn cdn(layer: &Layer) -> CannedServer {
    CannedServer::start(vec![(
        "/layers/top.tar.gz",
        Response::new(200, "application/octet-stream", layer.blob.clone()),
    )])
}

fn login(b: &Barge, host: &str) {
    let o = b.run_with_stdin(&["login", "-u", USER, "--password-stdin", host], PASSWORD);
    assert!(o.status.success(), "{}", stderr_of(&o));
}

#[test]
fn a_foreign_layer_comes_from_its_url_and_is_not_pushed() {
    if !require_root_and(&["docker-registry", "htpasswd", "skopeo"]) {
        return;
    }
    let reg = Registry::start(Options {
        auth: Auth::Basic,
        ..Options::default()
    });
    let host = reg.host();
    // The foreign layer's bytes are only on the "CDN", which needs no login.
    let probe = foreign_image("http://unused/");
    let server = cdn(&probe.0.layers[1]);
    let url = format!("http://{}/layers/top.tar.gz", server.host());
    let (img, manifest, digest) = foreign_image(&url);
    push_without_foreign(&reg, "app", "1", &img, &manifest);
    let top = &img.layers[1].digest;
    assert_eq!(
        blob_status(&reg, "app", top),
        404,
        "the registry must not have the foreign layer"
    );

    let b = Barge::new();
    login(&b, &host);
    let out = b.run(&["pull", &format!("{host}/app:1")]);
    assert!(out.status.success(), "pull: {}", stderr_of(&out));
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "one GET of the URL: {requests:?}");
    assert!(
        !requests[0].headers.contains_key("authorization"),
        "the registry's credentials went to the foreign host: {:?}",
        requests[0].headers
    );
    // Both layers are there: the image runs from them.
    let shown = b.ok(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        &format!("{host}/app:1"),
    ]);
    assert_eq!(shown.trim(), "2");
    let saved = tempfile::tempdir().expect("temp dir");
    let layout = saved.path().join("layout");
    b.ok(&[
        "copy",
        &format!("barge:{host}/app:1"),
        &format!("oci:{}:app", layout.display()),
    ]);
    let blob = std::fs::read(layout.join("blobs/sha256").join(&top[7..])).expect("the foreign blob was stored");
    assert_eq!(blob, img.layers[1].blob);

    // A push to a registry that is not allowed leaves the layer to its URL,
    // with the manifest's bytes (and so its digest) unchanged.
    b.ok(&["tag", &format!("{host}/app:1"), &format!("{host}/pushed:1")]);
    let out = b.run(&["push", &format!("{host}/pushed:1")]);
    assert!(out.status.success(), "push: {}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!("{}: Skipped foreign layer", &top[7..19])),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(blob_status(&reg, "pushed", top), 404);
    assert_eq!(blob_status(&reg, "pushed", &img.layers[0].digest), 200);
    assert_eq!(image::manifest_digest(&reg, "pushed", "1"), digest);

    // Registry to registry: the same.
    b.ok(&[
        "copy",
        &format!("docker://{host}/app:1"),
        &format!("docker://{host}/copied:1"),
    ]);
    assert_eq!(blob_status(&reg, "copied", top), 404);
    assert_eq!(image::manifest_digest(&reg, "copied", "1"), digest);

    // A second store pulls the pushed copy: the layer comes from its URL again.
    let b2 = Barge::new();
    login(&b2, &host);
    b2.ok(&["pull", &format!("{host}/pushed:1")]);
    assert_eq!(server.requests().len(), 2);

    // Where barge.json allows it, the layer itself is pushed.
    let settings = b.root().parent().expect("store parent").join("barge-config/barge.json");
    std::fs::write(
        &settings,
        format!(r#"{{"allow-nondistributable-artifacts": ["{host}"]}}"#),
    )
    .expect("barge.json");
    b.ok(&["tag", &format!("{host}/app:1"), &format!("{host}/allowed:1")]);
    let out = b.run(&["push", &format!("{host}/allowed:1")]);
    assert!(out.status.success(), "push: {}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("Skipped foreign layer"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(blob_status(&reg, "allowed", top), 200);
    assert_eq!(image::manifest_digest(&reg, "allowed", "1"), digest);
}

#[test]
fn a_foreign_layer_is_verified_and_falls_back_to_the_registry() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let host = reg.host();

    // A URL that serves other bytes of the right length: refused, nothing stored.
    let probe = foreign_image("http://unused/");
    let forged = vec![0x1fu8; probe.0.layers[1].blob.len()];
    let liar = CannedServer::start(vec![(
        "/layers/top.tar.gz",
        Response::new(200, "application/octet-stream", forged),
    )]);
    let (img, manifest, _) = foreign_image(&format!("http://{}/layers/top.tar.gz", liar.host()));
    push_without_foreign(&reg, "forged", "1", &img, &manifest);
    let b = Barge::new();
    let out = b.run(&["pull", &format!("{host}/forged:1")]);
    assert!(!out.status.success(), "a forged foreign layer was accepted");
    let err = stderr_of(&out);
    assert!(err.contains(&img.layers[1].digest), "the error names the layer: {err}");
    assert!(
        !b.ok(&["images", "-q"]).contains(&img.short_id()[..12]),
        "the image was stored"
    );
    let top_blob = b.root().join("blobs/sha256").join(&img.layers[1].digest[7..]);
    assert!(!top_blob.exists(), "an unverified blob is in the store");

    // No URL answers (a closed port): the registry's copy, when it has one,
    // is used instead.
    let closed = barge_tests::free_port();
    let mut m: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest");
    m["layers"][1]["urls"] = serde_json::json!([format!("http://127.0.0.1:{closed}/x")]);
    let fallback = serde_json::to_vec(&m).expect("manifest json");
    image::push_blob(&reg, "fallback", &img.layers[1].blob);
    push_without_foreign(&reg, "fallback", "1", &img, &fallback);
    b.ok(&["pull", &format!("{host}/fallback:1")]);

    // Neither the URLs nor the registry: one line that says both.
    push_without_foreign(&reg, "nowhere", "1", &img, &fallback);
    let b2 = Barge::new();
    let out = b2.run(&["pull", &format!("{host}/nowhere:1")]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("could not be fetched from its URLs") && err.contains("the registry does not have it"),
        "{err}"
    );
}
