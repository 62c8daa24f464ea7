//! Hostile registries and archives through the real binary: text meant to
//! drive the terminal, bodies trickled a byte at a time, listings and
//! token answers without end, compressed archive bombs; and a store whose
//! root was left open to other users.

use barge_tests::canned::{CannedServer, Response};
use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::{noise, Barge};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An image served by a canned registry as `app:v1`, the layer's response
/// changed by `layer`.
fn canned_image(img: &Image, layer: impl Fn(Response) -> Response) -> CannedServer {
    let l = &img.layers[0];
    CannedServer::start(vec![
        (
            "/v2/app/manifests/v1",
            Response::new(200, img.media_type, img.manifest.clone())
                .header("Docker-Content-Digest", &img.manifest_digest),
        ),
        (
            &format!("/v2/app/blobs/{}", img.config_digest),
            Response::new(200, "application/octet-stream", img.config.clone()),
        ),
        (
            &format!("/v2/app/blobs/{}", l.digest),
            layer(Response::new(200, "application/octet-stream", l.blob.clone())),
        ),
    ])
}

fn noisy_image() -> Image {
    let layer = LayerBuilder::new()
        .file("noise", &noise(64 * 1024, 3), 0o644)
        .build(Compression::Gzip);
    Image::new(vec![layer], Style::Oci, Spec::default())
}

// ---------------------------------------------------------------- item 16

/// Group and other bits of a path's mode.
fn open_bits(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o077
}

#[test]
fn the_store_is_private_even_in_a_root_left_open() {
    let img = noisy_image();
    let reg = canned_image(&img, |r| r);
    let b = Barge::new();
    let root = b.root();
    // A store an older barge made under a 0755 root, with a 0755 oci/.
    for d in ["", "oci", "oci/blobs", "oci/blobs/sha256"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
        std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    b.ok(&["pull", &format!("{}/app:v1", reg.host())]);
    for d in [
        "",
        "oci",
        "oci/blobs",
        "oci/blobs/sha256",
        "ingest",
        "snapshots",
        "containers",
    ] {
        assert_eq!(open_bits(&root.join(d)), 0, "{d:?} is open to other users");
    }
    // A fresh --root that exists with mode 0755.
    let other = b.dir.path().join("open-root");
    std::fs::create_dir(&other).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = Command::new(barge_tests::barge_bin())
        .arg("--root")
        .arg(&other)
        .arg("--config")
        .arg(b.docker_config())
        .env("BARGE_CONFIG", b.dir.path().join("barge-config"))
        .args(["pull", &format!("{}/app:v1", reg.host())])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(open_bits(&other), 0, "--root left open to other users");
    let config = other.join("oci/blobs/sha256").join(&img.config_digest[7..]);
    assert!(config.is_file(), "the config is stored");
}
