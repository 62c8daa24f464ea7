//! Several `barge copy … oci:DIR:TAG` at once into one OCI image layout:
//! every tag must survive, and skopeo must read each one.

use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, run_ok, Barge};
use std::path::Path;
use std::process::{Command, Stdio};

/// Images at once, and rounds of them, each into a fresh layout.
const IMAGES: usize = 8;
const ROUNDS: usize = 10;

fn image(marker: &str) -> Image {
    // A shared base layer, so that the copies also write the same blob at once.
    let base = LayerBuilder::new()
        .file("base", &[7u8; 20_000], 0o644)
        .build(Compression::Gzip);
    let top = LayerBuilder::new()
        .file("marker", marker.as_bytes(), 0o644)
        .build(Compression::Gzip);
    Image::new(vec![base, top], Style::Oci, Spec::default())
}

fn tags_in_index(dir: &Path) -> Vec<String> {
    let bytes = std::fs::read(dir.join("index.json")).expect("index.json");
    let index: serde_json::Value = serde_json::from_slice(&bytes).expect("index.json is JSON");
    let mut tags: Vec<String> = index["manifests"]
        .as_array()
        .expect("a manifests list")
        .iter()
        .filter_map(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    tags.sort();
    tags
}

#[test]
fn parallel_copies_into_one_layout_keep_every_tag() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let images: Vec<Image> = (0..IMAGES).map(|i| image(&format!("image {i}"))).collect();
    for (i, img) in images.iter().enumerate() {
        img.push(&reg, "src", &format!("t{i}"));
    }
    let b = Barge::new();
    let work = tempfile::tempdir().expect("temp dir");
    let mut expected: Vec<String> = (0..IMAGES).map(|i| format!("t{i}")).collect();
    expected.sort();

    for round in 0..ROUNDS {
        let dir = work.path().join(format!("layout{round}"));
        let children: Vec<_> = (0..IMAGES)
            .map(|i| {
                b.command()
                    .args([
                        "copy",
                        "-q",
                        &format!("docker://{}/src:t{i}", reg.host()),
                        &format!("oci:{}:t{i}", dir.display()),
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("starting barge copy")
            })
            .collect();
        for (i, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().expect("waiting for barge copy");
            assert!(
                out.status.success(),
                "round {round}: copy of t{i} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(tags_in_index(&dir), expected, "round {round}: tags in index.json");
        for (i, img) in images.iter().enumerate() {
            let location = format!("oci:{}:t{i}", dir.display());
            let digest = run_ok(Command::new("skopeo").args(["inspect", "--format", "{{.Digest}}", &location]));
            assert_eq!(digest.trim(), img.manifest_digest, "round {round}: {location}");
        }
        if round == 0 && barge_tests::have_tool("umoci") {
            let listed = run_ok(Command::new("umoci").args(["ls", "--layout"]).arg(&dir));
            let mut listed: Vec<&str> = listed.lines().collect();
            listed.sort();
            assert_eq!(listed, expected, "umoci ls");
        }
        // Nothing half-written is left behind: only the layout's own files (and its lock).
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("layout dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".barge-index.lock")
            .collect();
        names.sort();
        assert_eq!(names, ["blobs", "index.json", "oci-layout"], "round {round}");
        let blobs = std::fs::read_dir(dir.join("blobs/sha256")).expect("blobs").count();
        // Per image: its top layer, config and manifest; plus the shared base layer.
        assert_eq!(blobs, IMAGES * 3 + 1, "round {round}: blobs");
    }
}
