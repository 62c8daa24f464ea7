//! The toolkit verbs that read an image (`manifest inspect`, `inspect
//! --remote`, `digest`, `config`) on the transports `copy` reads: an OCI
//! layout, OCI and docker archives, the store, and `docker://`, compared
//! with skopeo on the same locations.

use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, run_ok, Barge};
use serde_json::Value;
use std::process::Command;

fn image() -> Image {
    let layer = LayerBuilder::new()
        .dir("etc/", 0o755)
        .file("etc/marker", b"transports\n", 0o644)
        .build(Compression::Gzip);
    Image::new(
        vec![layer],
        Style::Oci,
        Spec {
            labels: vec![("team".into(), "barge".into())],
            ..Spec::default()
        },
    )
}

#[test]
fn image_verbs_read_layouts_archives_and_the_store() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = image();
    img.push(&reg, "app", "1");
    let dir = tempfile::tempdir().expect("temp dir");
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");
    let b = Barge::new();
    let in_store = format!("{}/app:1", reg.host());
    b.ok(&["pull", "-q", &in_store]);
    let docker_archive = dir.path().join("app.tar");
    b.ok(&["save", "-o", docker_archive.to_str().expect("path"), &in_store]);
    let oci_archive = dir.path().join("app-oci.tar");
    b.ok(&[
        "copy",
        &format!("oci:{}:v1", layout.display()),
        &format!("oci-archive:{}:v1", oci_archive.display()),
    ]);

    let oci = format!("oci:{}:v1", layout.display());
    let registry = format!("docker://{in_store}");
    let locations = [
        oci.clone(),
        format!("oci-archive:{}:v1", oci_archive.display()),
        format!("docker-archive:{}", docker_archive.display()),
        format!("barge:{in_store}"),
        registry.clone(),
    ];
    for loc in &locations {
        // The config is the image's exact bytes wherever it is read.
        assert_eq!(b.ok(&["config", loc]).as_bytes(), &img.config[..], "config of {loc}");
        // skopeo reads the same locations (the store is barge's own).
        let inspect: Value = serde_json::from_str(&b.ok(&["inspect", "--remote", loc])).expect("barge JSON");
        assert_eq!(inspect["Labels"]["team"], "barge", "{loc}");
        assert_eq!(inspect["Architecture"], "amd64", "{loc}");
        if !loc.starts_with("barge:") {
            let theirs: Value = serde_json::from_str(&run_ok(Command::new("skopeo").args([
                "inspect",
                "--tls-verify=false",
                loc.as_str(),
            ])))
            .expect("skopeo JSON");
            for f in ["Created", "Labels", "Architecture", "Os", "Env"] {
                assert_eq!(inspect[f], theirs[f], "{f} of {loc}");
            }
            // A docker archive has no manifest: each tool makes up its own.
            if !loc.starts_with("docker-archive:") {
                for f in ["Digest", "Layers"] {
                    assert_eq!(inspect[f], theirs[f], "{f} of {loc}");
                }
                let digest = b.ok(&["digest", loc]);
                assert_eq!(
                    digest.trim(),
                    theirs["Digest"].as_str().expect("Digest"),
                    "digest of {loc}"
                );
            }
        }
    }
    // A layout holds the manifest's exact bytes: --raw prints them.
    let raw = Command::new(barge_tests::barge_bin())
        .args(["manifest", "inspect", "--raw", &oci])
        .output()
        .expect("manifest inspect");
    assert!(raw.status.success());
    assert_eq!(raw.stdout, img.manifest);
    assert_eq!(b.ok(&["digest", &oci]).trim(), img.manifest_digest);
    let pretty: Value = serde_json::from_str(&b.ok(&["manifest", "inspect", &oci])).expect("JSON");
    assert_eq!(pretty["config"]["digest"], img.config_digest.as_str());
    // The store's copy, and registries named with docker://, as without it.
    assert_eq!(b.ok(&["digest", &registry]).trim(), img.manifest_digest);

    // Errors: a missing layout or tag, --verbose (a registry's view), a bad transport.
    for (args, what) in [
        (
            vec!["digest".to_string(), format!("oci:{}:nope", layout.display())],
            "nope",
        ),
        (
            vec!["config".into(), format!("oci:{}/missing:v1", dir.path().display())],
            "missing",
        ),
        (
            vec!["manifest".into(), "inspect".into(), "--verbose".into(), oci.clone()],
            "--verbose",
        ),
        (vec!["digest".into(), "docker-archive:".into()], "needs a file"),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = b.run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(what), "{args:?}: {err}");
    }
}
