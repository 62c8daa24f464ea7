//! Several `barge copy … oci:DIR:TAG` at once into one OCI image layout:
//! every tag must survive, and skopeo must read each one.

use barge_tests::image::{manifest_digest, Compression, Image, LayerBuilder, Spec, Style};
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

/// The OCI form of a row of a layout's `index.json` and the original it names.
fn row_of(dir: &Path, name: &str) -> (String, String, Option<String>) {
    let bytes = std::fs::read(dir.join("index.json")).expect("index.json");
    let index: serde_json::Value = serde_json::from_slice(&bytes).expect("index.json is JSON");
    let row = index["manifests"]
        .as_array()
        .expect("a manifests list")
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("no row named {name} in {index}"));
    (
        row["mediaType"].as_str().expect("mediaType").to_string(),
        row["digest"].as_str().expect("digest").to_string(),
        row["annotations"]["dev.barge.original-manifest"]
            .as_str()
            .map(str::to_string),
    )
}

/// Checks that the image named `name` in the layout `dir` is an OCI form
/// naming `original`, that skopeo reads it and that umoci unpacks it into
/// `bundle` with `marker` in /etc/marker.
fn others_read(dir: &Path, name: &str, original: &str, bundle: &Path, marker: &[u8]) {
    let (media_type, oci_digest, named) = row_of(dir, name);
    assert_eq!(media_type, "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(named.as_deref(), Some(original));
    assert_ne!(oci_digest, original);
    let location = format!("oci:{}:{name}", dir.display());
    let digest = run_ok(Command::new("skopeo").args(["inspect", "--format", "{{.Digest}}", &location]));
    assert_eq!(digest.trim(), oci_digest, "skopeo inspect {location}");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image", &format!("{}:{name}", dir.display())])
            .arg(bundle),
    );
    assert_eq!(
        std::fs::read(bundle.join("rootfs/etc/marker")).expect("unpacked marker"),
        marker
    );
}

/// skopeo, podman and umoci read only OCI manifests from a layout: an
/// image pushed as Docker v2s2 must be readable in the store and in an
/// `oci:` destination, and still push with the registry's digest.
#[test]
fn docker_v2s2_images_in_layouts_are_readable_by_other_tools() {
    if !require_root_and(&["docker-registry", "skopeo", "umoci", "podman"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = Image::simple(Style::Docker, Compression::Gzip, "v2s2 image");
    img.push(&reg, "v2s2", "1");
    let b = Barge::new();
    let name = format!("{}/v2s2:1", reg.host());
    b.ok(&["pull", "-q", &name]);
    let work = tempfile::tempdir().expect("temp dir");

    // The store: its row points at an OCI form that names the original.
    let store = b.root().join("oci");
    others_read(
        &store,
        &name,
        &img.manifest_digest,
        &work.path().join("from-store"),
        b"v2s2 image",
    );
    // podman names what it pulls from `oci:` after the path, which must
    // then be lowercase: reach the store through a lowercase link.
    let link = std::env::temp_dir().join(format!("barge-v2s2-store-{}", std::process::id()));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&store, &link).expect("link to the store");
    let pulled = Command::new("podman")
        .args(["pull", "-q", &format!("oci:{}:{name}", link.display())])
        .output()
        .expect("running podman");
    let _ = std::fs::remove_file(&link);
    assert!(
        pulled.status.success(),
        "podman pull: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let podman_id = String::from_utf8_lossy(&pulled.stdout).trim().to_string();
    assert!(
        img.config_digest.ends_with(&podman_id),
        "podman's image {podman_id} is {}",
        img.config_digest
    );
    let _ = Command::new("podman").args(["rmi", "-f", &podman_id]).output();
    // prune keeps the OCI form the row points at.
    b.ok(&["image", "prune", "-f"]);
    run_ok(Command::new("skopeo").args(["inspect", &format!("oci:{}:{name}", store.display())]));
    // barge still sees the registry's digest and the same image ID.
    let inspected = b.ok(&["inspect", "--format", "{{.Id}} {{.RepoDigests}}", &name]);
    assert!(inspected.contains(&img.config_digest), "{inspected}");
    assert!(inspected.contains(&img.manifest_digest), "{inspected}");

    // An `oci:` destination, the same.
    let dir = work.path().join("layout");
    let location = format!("oci:{}:v1", dir.display());
    b.ok(&["copy", "-q", &format!("docker://{name}"), &location]);
    others_read(
        &dir,
        "v1",
        &img.manifest_digest,
        &work.path().join("bundle"),
        b"v2s2 image",
    );

    // Out again to a registry, from the store and from the layout: the original bytes.
    let pushed = format!("{}/again:1", reg.host());
    b.ok(&["tag", &name, &pushed]);
    b.ok(&["push", "-q", &pushed]);
    assert_eq!(manifest_digest(&reg, "again", "1"), img.manifest_digest, "push");
    b.ok(&["copy", "-q", &location, &format!("docker://{}/copied:1", reg.host())]);
    assert_eq!(
        manifest_digest(&reg, "copied", "1"),
        img.manifest_digest,
        "copy from oci:"
    );
    b.ok(&[
        "copy",
        "-q",
        &format!("barge:{name}"),
        &format!("docker://{}/fromstore:1", reg.host()),
    ]);
    assert_eq!(
        manifest_digest(&reg, "fromstore", "1"),
        img.manifest_digest,
        "copy from barge:"
    );

    // system check verifies the OCI form too.
    b.ok(&["system", "check"]);
    let (_, oci_digest, _) = row_of(&store, &name);
    std::fs::remove_file(store.join("blobs/sha256").join(&oci_digest[7..])).expect("removing the OCI form");
    let o = b.run(&["system", "check"]);
    let damage = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success() && damage.contains("OCI form"), "{damage}");
}

/// A Docker manifest list copied whole into a layout: the row points at an
/// OCI index of the OCI forms, and the list goes back out with its digest.
#[test]
fn docker_manifest_lists_in_layouts_are_readable_by_skopeo() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let amd = Image::simple(Style::Docker, Compression::Gzip, "amd64");
    let arm_layer = LayerBuilder::new()
        .file("etc/marker", b"arm64", 0o644)
        .build(Compression::Gzip);
    let arm = Image::new(
        vec![arm_layer],
        Style::Docker,
        Spec {
            arch: "arm64".into(),
            ..Spec::default()
        },
    );
    let list = barge_tests::image::Index::new(&[&amd, &arm], Style::Docker);
    list.push(&[&amd, &arm], &reg, "list", "1");
    let b = Barge::new();
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path().join("layout");
    let location = format!("oci:{}:all", dir.display());
    b.ok(&[
        "copy",
        "-q",
        "--all",
        &format!("docker://{}/list:1", reg.host()),
        &location,
    ]);

    let (media_type, _, original) = row_of(&dir, "all");
    assert_eq!(media_type, "application/vnd.oci.image.index.v1+json");
    assert_eq!(original.as_deref(), Some(list.digest.as_str()));
    let raw = run_ok(Command::new("skopeo").args(["inspect", "--raw", &location]));
    let index: serde_json::Value = serde_json::from_str(&raw).expect("an index");
    for entry in index["manifests"].as_array().expect("manifests") {
        assert_eq!(
            entry["mediaType"], "application/vnd.oci.image.manifest.v1+json",
            "{raw}"
        );
    }
    for (arch, img) in [("amd64", &amd), ("arm64", &arm)] {
        let shown = run_ok(Command::new("skopeo").args([
            "--override-arch",
            arch,
            "inspect",
            "--format",
            "{{.Architecture}} {{.Layers}}",
            &location,
        ]));
        assert!(shown.starts_with(arch), "{shown}");
        assert!(shown.contains(&img.layers[0].digest), "{shown}");
    }
    b.ok(&[
        "copy",
        "-q",
        "--all",
        &location,
        &format!("docker://{}/back:1", reg.host()),
    ]);
    assert_eq!(manifest_digest(&reg, "back", "1"), list.digest);
}
