//! The registry toolkit (`manifest inspect`, `inspect --remote`, `tags`,
//! `catalog`, `digest`, `config`, `blob`, `delete`, `tag --remote`)
//! against docker-registry, compared with skopeo where they overlap.

use barge_tests::image::{Compression, Image, Index, LayerBuilder, Spec, Style};
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, run_ok, Barge};
use serde_json::Value;
use std::process::Command;

fn skopeo(args: &[&str]) -> String {
    run_ok(Command::new("skopeo").args(args))
}

fn skopeo_raw(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo").args(args).output().expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Asserts a failed command: status 1, one line on stderr that says `what`.
fn fails_with(b: &Barge, args: &[&str], what: &str) -> String {
    let out = b.run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "barge {args:?}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "barge {args:?}: one line: {stderr}"
    );
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert!(stderr.contains(what), "barge {args:?}: expected {what:?} in {stderr}");
    stderr
}

fn labelled(marker: &str, arch: &str) -> Image {
    let layer = LayerBuilder::new()
        .file("marker", marker.as_bytes(), 0o644)
        .build(Compression::Gzip);
    let base = LayerBuilder::new()
        .file("base", &[3u8; 20_000], 0o644)
        .build(Compression::Gzip);
    Image::new(
        vec![base, layer],
        Style::Oci,
        Spec {
            arch: arch.into(),
            labels: vec![("org.example.marker".into(), marker.into())],
            ..Spec::default()
        },
    )
}

/// A registry holding `team/app:v1` (an image) and `team/multi:latest`
/// (an index of amd64 and arm64). Returns the image, the two platform
/// images and the index.
fn populated(reg: &Registry) -> (Image, Image, Image, Index) {
    let img = Image::simple(Style::Docker, Compression::Gzip, "v1");
    img.push(reg, "team/app", "v1");
    let (amd, arm) = (labelled("amd", "amd64"), labelled("arm", "arm64"));
    let index = Index::new(&[&amd, &arm], Style::Oci);
    index.push(&[&amd, &arm], reg, "team/multi", "latest");
    (img, amd, arm, index)
}

#[test]
fn manifest_inspect_prints_what_the_registry_served() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let (img, amd, arm, index) = populated(&reg);
    let b = Barge::new();
    let app = format!("{}/team/app:v1", reg.host());
    let multi = format!("{}/team/multi", reg.host());

    // --raw: the exact bytes, as skopeo reads them.
    for (r, want) in [(&app, &img.manifest), (&multi, &index.bytes)] {
        let out = b
            .command()
            .args(["manifest", "inspect", "--raw", r])
            .output()
            .expect("barge");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(&out.stdout, want, "{r}");
        let theirs = skopeo_raw(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{r}")]);
        assert_eq!(out.stdout, theirs, "{r}: byte for byte as skopeo");
    }
    // --platform picks the index's entry.
    let out = b
        .command()
        .args(["manifest", "inspect", "--raw", "--platform", "linux/arm64", &multi])
        .output()
        .expect("barge");
    assert_eq!(out.stdout, arm.manifest);

    // The default: the same document, tab-indented as docker prints it.
    let pretty = b.ok(&["manifest", "inspect", &app]);
    assert!(pretty.contains("\n\t\"schemaVersion\": 2"), "{pretty}");
    let parsed: Value = serde_json::from_str(&pretty).expect("JSON");
    assert_eq!(parsed, serde_json::from_slice::<Value>(&img.manifest).expect("JSON"));

    // --verbose: every platform with its reference, descriptor and raw bytes.
    let verbose: Value = serde_json::from_str(&b.ok(&["manifest", "inspect", "-v", &multi])).expect("JSON");
    let entries = verbose.as_array().expect("an array for an index");
    assert_eq!(entries.len(), 2);
    for (e, image) in entries.iter().zip([&amd, &arm]) {
        assert_eq!(e["Ref"], format!("{multi}@{}", image.manifest_digest));
        assert_eq!(e["Descriptor"]["digest"], image.manifest_digest);
        assert_eq!(e["Descriptor"]["platform"]["architecture"], image.spec.arch);
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(e["Raw"].as_str().expect("Raw"))
            .expect("base64");
        assert_eq!(raw, image.manifest);
        assert_eq!(e["OCIManifest"]["config"]["digest"], image.config_digest);
    }
    let one: Value = serde_json::from_str(&b.ok(&["manifest", "inspect", "--verbose", &app])).expect("JSON");
    assert_eq!(one["Descriptor"]["digest"], img.manifest_digest);
    assert_eq!(one["SchemaV2Manifest"]["schemaVersion"], 2);

    fails_with(
        &b,
        &["manifest", "inspect", &format!("{}/team/app:nope", reg.host())],
        "not found",
    );
    fails_with(
        &b,
        &["manifest", "inspect", "--platform", "linux/s390x", &multi],
        "no matching manifest for linux/s390x",
    );
}

#[test]
fn inspect_remote_matches_skopeo_and_pulls_nothing() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let (_, amd, arm, index) = populated(&reg);
    labelled("amd", "amd64").push(&reg, "team/multi", "other");
    let b = Barge::new();
    let multi = format!("{}/team/multi:latest", reg.host());
    let fields = [
        "Name",
        "Digest",
        "Created",
        "DockerVersion",
        "Labels",
        "Architecture",
        "Os",
        "Layers",
        "Env",
    ];
    for (platform, image) in [(None, &amd), (Some("arm64"), &arm)] {
        let mut ours = vec!["inspect", "--remote", multi.as_str()];
        let mut theirs = vec!["inspect", "--tls-verify=false"];
        let p = platform.map(|a| format!("linux/{a}"));
        if let (Some(arch), Some(p)) = (platform, &p) {
            ours.extend(["--platform", p.as_str()]);
            theirs.extend(["--override-arch", arch]);
        }
        let at = format!("docker://{multi}");
        theirs.push(&at);
        let ours: Value = serde_json::from_str(&b.ok(&ours)).expect("barge JSON");
        let theirs: Value = serde_json::from_str(&skopeo(&theirs)).expect("skopeo JSON");
        for f in fields {
            assert_eq!(ours[f], theirs[f], "{f} for {platform:?}");
        }
        let tags = |v: &Value| {
            let mut t: Vec<String> = serde_json::from_value(v["RepoTags"].clone()).expect("tags");
            t.sort();
            t
        };
        assert_eq!(tags(&ours), tags(&theirs));
        assert_eq!(ours["Digest"], index.digest, "the digest the tag names");
        assert_eq!(ours["Architecture"], image.spec.arch);
        assert_eq!(ours["Layers"][1], image.layers[1].digest);
        // skopeo 1.9 has no LayersData yet; newer ones print it so.
        assert_eq!(ours["LayersData"][1]["Digest"], image.layers[1].digest);
        assert_eq!(ours["LayersData"][1]["Size"], image.layers[1].blob.len());
    }
    // A template, and nothing was pulled.
    let arch = b.ok(&[
        "inspect",
        "--remote",
        "--platform",
        "linux/arm64",
        "--format",
        "{{.Architecture}}",
        &multi,
    ]);
    assert_eq!(arch.trim(), "arm64");
    assert!(
        !b.root().join("oci/index.json").exists() || b.index()["manifests"].as_array().is_none_or(|m| m.is_empty()),
        "inspect --remote stored nothing"
    );
    fails_with(&b, &["inspect", "--remote", "Bad Name"], "invalid reference");
    fails_with(&b, &["container", "inspect", "--remote", &multi], "--remote");
}
