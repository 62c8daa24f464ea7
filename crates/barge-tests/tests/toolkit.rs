//! The registry toolkit (`manifest inspect`, `inspect --remote`, `tags`,
//! `catalog`, `digest`, `config`, `blob`, `delete`, `tag --remote`,
//! `referrers`, referrers carried by `copy`/`mirror`, `artifact push|pull`,
//! `manifest create|annotate|push|rm`) against docker-registry, compared
//! with skopeo (and podman) where they overlap.

use barge_tests::canned::{CannedServer, Response};
use barge_tests::image::{push_blob, push_manifest, Compression, Image, Index, LayerBuilder, Spec, Style};
use barge_tests::proxy::SlowProxy;
use barge_tests::registry::{Options, Registry};
use barge_tests::{require_root_and, run_ok, sha256, Barge};
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

#[test]
fn tags_lists_2500_tags_like_skopeo() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    push_blob(&reg, "many", config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len()},
        "layers": [],
    }))
    .expect("manifest");
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for worker in 0..8 {
            let (reg, manifest) = (&reg, &manifest);
            s.spawn(move || {
                for i in (worker..2500).step_by(8) {
                    push_manifest(
                        reg,
                        "many",
                        &format!("t{i:04}"),
                        "application/vnd.oci.image.manifest.v1+json",
                        manifest,
                    );
                }
            });
        }
    });
    eprintln!("pushed 2500 tags in {:?}", started.elapsed());
    let b = Barge::new();
    let repo = format!("{}/many", reg.host());
    let started = std::time::Instant::now();
    let lines = b.ok(&["tags", &repo]);
    eprintln!("barge tags: {:?}", started.elapsed());
    let started = std::time::Instant::now();
    let theirs: Value = serde_json::from_str(&skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{repo}"),
    ]))
    .expect("skopeo JSON");
    eprintln!("skopeo list-tags: {:?}", started.elapsed());
    let theirs: Vec<String> = serde_json::from_value(theirs["Tags"].clone()).expect("tags");
    assert_eq!(theirs.len(), 2500);
    let ours: Vec<&str> = lines.lines().collect();
    assert_eq!(ours, theirs, "the same tags in the registry's order");

    let json: Value = serde_json::from_str(&b.ok(&["ls", "--format", "json", &repo])).expect("JSON");
    assert_eq!(json["Repository"], repo);
    assert_eq!(json["Tags"], serde_json::to_value(&theirs).expect("tags"));
    let templated = b.ok(&["tags", "--format", "{{.Repository}}={{.Tag}}", &repo]);
    assert_eq!(templated.lines().count(), 2500);
    assert!(
        templated.lines().all(|l| l.starts_with(&format!("{repo}=t"))),
        "{templated}"
    );
}

#[test]
fn tags_follow_link_pages() {
    // docker-registry 2.8 sends every tag in one page whatever `n` says:
    // the harness's canned server stands in for a registry that pages.
    let page = |tags: &[&str], next: Option<&str>| {
        let body = serde_json::json!({"name": "paged", "tags": tags}).to_string();
        let r = Response::new(200, "application/json", body);
        match next {
            Some(n) => r.header("Link", &format!("<{n}>; rel=\"next\"")),
            None => r,
        }
    };
    let server = CannedServer::start(vec![
        (
            "/v2/paged/tags/list?n=2",
            page(&["a", "b"], Some("/v2/paged/tags/list?n=2&last=b")),
        ),
        (
            "/v2/paged/tags/list?n=2&last=b",
            page(&["c", "d"], Some("/v2/paged/tags/list?n=2&last=d")),
        ),
        ("/v2/paged/tags/list?n=2&last=d", page(&["e"], None)),
    ]);
    let b = Barge::new();
    let out = b.ok(&["tags", "--page-size", "2", &format!("{}/paged", server.host())]);
    assert_eq!(out, "a\nb\nc\nd\ne\n");
    let asked: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/tags/list"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        asked,
        [
            "/v2/paged/tags/list?n=2",
            "/v2/paged/tags/list?n=2&last=b",
            "/v2/paged/tags/list?n=2&last=d"
        ]
    );
}

#[test]
fn catalog_pages_and_explains_refusals() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = Image::simple(Style::Oci, Compression::Gzip, "c");
    let mut repos = vec!["a/one", "b", "c/d/e", "f", "g"];
    for r in &repos {
        img.push(&reg, r, "latest");
    }
    let proxy = SlowProxy::start(&reg.host(), 0);
    let b = Barge::new();
    let out = b.ok(&["catalog", "--page-size", "2", &proxy.host()]);
    repos.sort();
    assert_eq!(out.lines().collect::<Vec<_>>(), repos);
    let pages = proxy
        .request_lines()
        .iter()
        .filter(|l| l.starts_with("GET /v2/_catalog"))
        .count();
    assert_eq!(pages, 3, "five repositories, two a page: {:?}", proxy.request_lines());
    let json: Value = serde_json::from_str(&b.ok(&["catalog", "--format", "json", &reg.host()])).expect("JSON");
    assert_eq!(json["Repositories"], serde_json::to_value(&repos).expect("repos"));

    // A registry without _catalog (404), and one that wants credentials for it (401).
    let none = CannedServer::start(vec![]);
    let e = fails_with(
        &b,
        &["catalog", &none.host()],
        "does not allow listing its repositories (_catalog)",
    );
    assert!(e.contains("barge tags REPO"), "{e}");
    let locked = CannedServer::start_with(vec![], Some("Basic nobody".into()));
    let e = fails_with(&b, &["catalog", &locked.host()], "HTTP 401");
    assert!(e.contains("_catalog"), "{e}");
}

#[test]
fn digest_config_and_blob() {
    if !require_root_and(&["docker-registry", "skopeo", "time"]) {
        return;
    }
    let reg = Registry::anonymous();
    let (img, amd, _, index) = populated(&reg);
    let proxy = SlowProxy::start(&reg.host(), 0);
    let b = Barge::new();
    let app = format!("{}/team/app:v1", proxy.host());
    let multi = format!("{}/team/multi:latest", proxy.host());

    // digest: one HEAD, as skopeo reads it.
    for (r, want) in [(&app, &img.manifest_digest), (&multi, &index.digest)] {
        let ours = b.ok(&["digest", r]);
        assert_eq!(ours.trim(), want);
        let theirs = skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &format!("docker://{r}"),
        ]);
        assert_eq!(ours.trim(), theirs.trim(), "{r}");
    }
    let by_digest = format!("{}/team/app@{}", proxy.host(), img.manifest_digest);
    assert_eq!(b.ok(&["digest", &by_digest]).trim(), img.manifest_digest);
    proxy.reset_counters();
    b.ok(&["digest", &app]);
    let lines = proxy.request_lines();
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("HEAD ") || l.starts_with("GET /v2/ ")),
        "digest sends HEADs only: {lines:?}"
    );
    fails_with(&b, &["digest", &format!("{}/team/app:gone", proxy.host())], "not found");

    // config: the exact blob, the host's platform from an index.
    for (r, want) in [(&app, &img.config), (&multi, &amd.config)] {
        let out = b.command().args(["config", r]).output().expect("barge");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(&out.stdout, want, "{r}");
        let theirs = skopeo_raw(&[
            "inspect",
            "--raw",
            "--config",
            "--tls-verify=false",
            &format!("docker://{r}"),
        ]);
        assert_eq!(out.stdout, theirs);
    }

    // blob: stdout and -o, verified.
    let layer = &img.layers[0];
    let blob_ref = format!("{}/team/app@{}", proxy.host(), layer.digest);
    let out = b.command().args(["blob", &blob_ref]).output().expect("barge");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, layer.blob);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("layer.tgz");
    b.ok(&["blob", "-o", file.to_str().expect("utf-8"), &blob_ref]);
    assert_eq!(std::fs::read(&file).expect("blob file"), layer.blob);

    // 64 MiB through a small, fixed amount of memory.
    let mut big = vec![0u8; 64 << 20];
    let mut x = 0x9e3779b97f4a7c15u64;
    for chunk in big.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    push_blob(&reg, "team/app", &big);
    let big_ref = format!("{}/team/app@{}", reg.host(), sha256(&big));
    let big_file = dir.path().join("big");
    let mut timed = Command::new("time");
    timed
        .args(["-f", "maxrss_kb=%M"])
        .arg(barge_tests::barge_bin())
        .arg("--root")
        .arg(b.root())
        .arg("--config")
        .arg(b.docker_config())
        .args(["blob", "-o", big_file.to_str().expect("utf-8"), &big_ref]);
    let out = timed.output().expect("time barge blob");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rss: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .expect("max RSS");
    eprintln!("barge blob of 64 MiB: max RSS {rss} KiB");
    assert!(rss < 40 * 1024, "the blob went through memory: {rss} KiB");
    assert_eq!(sha256(&std::fs::read(&big_file).expect("big")), sha256(&big));
    drop(big);

    // Bytes that do not match their digest never appear as the file.
    let liar = CannedServer::start(vec![(
        "/v2/r/blobs/sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        Response::new(200, "application/octet-stream", b"not the blob".to_vec()),
    )]);
    let bad_file = dir.path().join("bad");
    fails_with(
        &b,
        &[
            "blob",
            "-o",
            bad_file.to_str().expect("utf-8"),
            &format!(
                "{}/r@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                liar.host()
            ),
        ],
        "does not match its digest",
    );
    assert!(!bad_file.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 2, "no temporary file left: {left:?}");
    fails_with(
        &b,
        &["blob", &format!("{}/team/app@sha256:{}", proxy.host(), "0".repeat(64))],
        "not found",
    );
}

#[test]
fn delete_then_404_and_refusal_explained() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let (img, _, _, index) = populated(&reg);
    img.push(&reg, "team/app", "v2");
    let b = Barge::new();
    let host = reg.host();

    // By tag: resolved to its digest, which takes every tag naming it.
    let out = b.ok(&["delete", &format!("{host}/team/app:v1")]);
    assert_eq!(out.trim(), format!("Deleted: {host}/team/app@{}", img.manifest_digest));
    for tag in ["v1", "v2"] {
        fails_with(&b, &["digest", &format!("{host}/team/app:{tag}")], "not found");
        let gone = Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{host}/team/app:{tag}"),
            ])
            .output()
            .expect("skopeo");
        assert!(!gone.status.success(), "skopeo still finds {tag}");
    }
    // By digest.
    let pinned = format!("{host}/team/multi@{}", index.digest);
    b.ok(&["delete", &pinned]);
    fails_with(&b, &["manifest", "inspect", &pinned], "not found");
    fails_with(&b, &["delete", &pinned], "not found");

    // A registry with deletion off answers 405: explained.
    let locked = Registry::start(Options {
        delete_enabled: false,
        ..Options::default()
    });
    img.push(&locked, "team/app", "v1");
    let e = fails_with(
        &b,
        &["delete", &format!("{}/team/app:v1", locked.host())],
        "does not allow deleting manifests: it answered HTTP 405",
    );
    assert!(e.contains("REGISTRY_STORAGE_DELETE_ENABLED=true"), "{e}");
    assert_eq!(
        b.ok(&["digest", &format!("{}/team/app:v1", locked.host())]).trim(),
        img.manifest_digest
    );
}

#[test]
fn tag_remote_moves_no_blob() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let (img, _, _, index) = populated(&reg);
    let proxy = SlowProxy::start(&reg.host(), 0);
    let b = Barge::new();
    let host = proxy.host();
    let out = b.ok(&["tag", "--remote", &format!("{host}/team/app:v1"), "release"]);
    assert_eq!(out.trim(), format!("{host}/team/app:release@{}", img.manifest_digest));
    b.ok(&[
        "image",
        "tag",
        "--remote",
        &format!("{host}/team/multi"),
        &format!("{host}/team/multi:stable"),
    ]);
    for line in proxy.request_lines() {
        assert!(!line.contains("/blobs/"), "tag --remote touched a blob: {line}");
    }
    for (r, want) in [
        ("team/app:release", &img.manifest_digest),
        ("team/multi:stable", &index.digest),
    ] {
        let raw = skopeo_raw(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/{r}", reg.host()),
        ]);
        assert_eq!(&sha256(&raw), want, "{r}");
    }
    fails_with(
        &b,
        &[
            "tag",
            "--remote",
            &format!("{host}/team/app:v1"),
            &format!("{host}/other:v1"),
        ],
        "within one repository",
    );
    // Nothing was stored locally.
    assert!(
        !b.root().join("oci/index.json").exists() || b.index()["manifests"].as_array().is_none_or(|m| m.is_empty())
    );
}

#[test]
fn bad_arguments_fail_before_any_request() {
    let server = CannedServer::start(vec![]);
    let h = server.host();
    let b = Barge::new();
    let dir = tempfile::tempdir().expect("dir");
    let missing_dir = dir.path().join("nope/out");
    let d = format!("sha256:{}", "a".repeat(64));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["manifest".into(), "inspect".into(), format!("{h}/UPPER")],
            "invalid reference",
        ),
        (
            vec![
                "manifest".into(),
                "inspect".into(),
                "--platform".into(),
                "linux//".into(),
                format!("{h}/r"),
            ],
            "--platform",
        ),
        (vec!["tags".into(), format!("{h}/r:tag")], "without a tag or digest"),
        (
            vec!["tags".into(), "--format".into(), "{{.Tag".into(), format!("{h}/r")],
            "--format",
        ),
        (vec!["catalog".into(), format!("{h}/r")], "give HOST[:PORT]"),
        (vec!["digest".into(), format!("{h}/r:bad tag")], "invalid reference"),
        (vec!["config".into(), format!("{h}/r@sha256:12")], "invalid reference"),
        (vec!["blob".into(), format!("{h}/r:latest")], "name the blob by digest"),
        (
            vec![
                "blob".into(),
                "-o".into(),
                missing_dir.display().to_string(),
                format!("{h}/r@{d}"),
            ],
            "does not exist",
        ),
        (vec!["delete".into(), format!("{h}/r")], "with a tag or digest"),
        (
            vec![
                "tag".into(),
                "--remote".into(),
                format!("{h}/r:a"),
                format!("{h}/r@{d}"),
            ],
            "digest reference",
        ),
        (
            vec!["tag".into(), "--remote".into(), format!("{h}/r:a"), format!("{h}/s:b")],
            "within one repository",
        ),
        (
            vec!["inspect".into(), "--remote".into(), format!("{h}/r::")],
            "invalid reference",
        ),
    ];
    for (args, what) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&b, &args, what);
    }
    assert!(server.requests().is_empty(), "requests sent: {:?}", server.requests());
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An OCI 1.1 artifact manifest (the empty config, one layer) whose
/// subject is `subject`; pushed by digest. Returns its descriptor as a
/// referrers index lists it.
fn push_artifact(reg: &Registry, repo: &str, subject: &Image, artifact_type: &str, content: &[u8]) -> Value {
    let empty = b"{}";
    push_blob(reg, repo, empty);
    push_blob(reg, repo, content);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(empty), "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": sha256(content), "size": content.len()}],
        "subject": {"mediaType": subject.media_type, "digest": subject.manifest_digest, "size": subject.manifest.len()},
        "annotations": {"org.example.kind": artifact_type},
    }))
    .expect("artifact manifest");
    let digest = sha256(&manifest);
    push_manifest(reg, repo, &digest, OCI_MANIFEST, &manifest);
    serde_json::json!({
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": manifest.len(),
        "annotations": {"org.example.kind": artifact_type},
        "artifactType": artifact_type,
    })
}

/// `team/app:v1` (an image marked `marker`) and an SPDX SBOM artifact
/// whose subject it is; returns the image and the SBOM's descriptor.
fn subject_with_sbom(reg: &Registry, marker: &str) -> (Image, Value) {
    let img = Image::simple(Style::Oci, Compression::Gzip, marker);
    img.push(reg, "team/app", "v1");
    let sbom = push_artifact(
        reg,
        "team/app",
        &img,
        "application/spdx+json",
        b"{\"spdxVersion\":\"SPDX-2.3\"}",
    );
    (img, sbom)
}

#[test]
fn referrers_fall_back_to_the_tag_schema() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    // docker-registry 2.8 has no referrers API: the fallback's test.
    let reg = Registry::anonymous();
    let (img, sbom) = subject_with_sbom(&reg, "subject");
    let sig = push_artifact(
        &reg,
        "team/app",
        &img,
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        b"signature",
    );
    let proxy = SlowProxy::start(&reg.host(), 0);
    let b = Barge::new();
    let subject = format!("{}/team/app:v1", proxy.host());
    let tag = format!("sha256-{}", &img.manifest_digest[7..]);

    // No fallback index yet: nothing refers to it.
    let out = b.run(&["referrers", &subject]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "the header alone"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("listed the {tag} tag instead")));
    let lines = proxy.request_lines();
    let api = lines
        .iter()
        .position(|l| l.contains(&format!("/referrers/{}", img.manifest_digest)));
    let fallback = lines.iter().position(|l| l.contains(&format!("/manifests/{tag}")));
    assert!(
        matches!((api, fallback), (Some(a), Some(f)) if a < f),
        "the API first, then the tag: {lines:?}"
    );

    // The index a pusher keeps under sha256-<hex>, as oras and cosign do.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [sbom, sig],
    }))
    .expect("index");
    push_manifest(&reg, "team/app", &tag, OCI_INDEX, &index);

    let table = b.ok(&["referrers", &subject]);
    for d in [&sbom, &sig] {
        let digest = d["digest"].as_str().expect("digest");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(digest) && l.contains(d["artifactType"].as_str().expect("type"))),
            "{table}"
        );
    }
    let only: Vec<String> = b
        .ok(&[
            "referrers",
            "--artifact-type",
            "application/spdx+json",
            "--format",
            "{{.Digest}}",
            &subject,
        ])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(only, [sbom["digest"].as_str().expect("digest")]);
    // By digest, as JSON: the same descriptors skopeo reads under the tag.
    let pinned = format!("{}/team/app@{}", proxy.host(), img.manifest_digest);
    let ours: Value = serde_json::from_str(&b.ok(&["referrers", "--format", "json", &pinned])).expect("JSON");
    let theirs: Value = serde_json::from_slice(&skopeo_raw(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/team/app:{tag}", reg.host()),
    ]))
    .expect("skopeo JSON");
    assert_eq!(ours["manifests"], theirs["manifests"]);
    assert_eq!(ours["mediaType"], OCI_INDEX);
    fails_with(
        &b,
        &["referrers", "--artifact-type", "sbom", &subject],
        "give a media type",
    );
}

#[test]
fn referrers_api_is_used_where_the_registry_has_one() {
    // docker-registry 2.8 has no referrers API and none is packaged here:
    // the harness's canned server answers that one endpoint (and the HEAD
    // that resolves the tag), pages and all, ignoring artifactType.
    let subject = format!("sha256:{}", "5".repeat(64));
    let desc = |n: char, t: &str| serde_json::json!({"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", n.to_string().repeat(64)), "size": 100, "artifactType": t});
    let page = |manifests: Vec<Value>| {
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).to_string()
    };
    let first = format!("/v2/r/referrers/{subject}");
    let next = format!("{first}?last=2");
    let server = CannedServer::start(vec![
        (
            "/v2/r/manifests/v1",
            Response::new(200, OCI_MANIFEST, "{}").header("Docker-Content-Digest", &subject),
        ),
        (
            first.as_str(),
            Response::new(
                200,
                OCI_INDEX,
                page(vec![desc('1', "application/spdx+json"), desc('2', "text/plain")]),
            )
            .header("Link", &format!("<{next}>; rel=\"next\"")),
        ),
        (
            next.as_str(),
            Response::new(200, OCI_INDEX, page(vec![desc('3', "application/spdx+json")])),
        ),
    ]);
    let b = Barge::new();
    let at = format!("{}/r:v1", server.host());
    let out = b.run(&["referrers", "--format", "{{.Digest}} {{.ArtifactType}}", &at]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.stderr.is_empty(),
        "no fallback note: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(listed.lines().count(), 3, "both pages: {listed}");
    let spdx = b.ok(&[
        "referrers",
        "--artifact-type",
        "application/spdx+json",
        "--format",
        "{{.Digest}}",
        &at,
    ]);
    assert_eq!(
        spdx,
        format!("sha256:{}\nsha256:{}\n", "1".repeat(64), "3".repeat(64)),
        "filtered here when the registry did not"
    );
    let asked: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert!(
        asked
            .iter()
            .any(|p| p == &format!("{first}?artifactType=application%2Fspdx%2Bjson")),
        "the filter is asked of the registry: {asked:?}"
    );
    assert!(
        !asked.iter().any(|p| p.contains("/manifests/sha256-")),
        "no fallback: {asked:?}"
    );
}

/// A file holding `content` in a new temporary directory (kept alive by the first).
fn work_file(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.txt");
    std::fs::write(&path, content).expect("write");
    (dir, path)
}

/// The digest skopeo reads at `docker://LOCATION`, or `None` when there is no such manifest.
fn skopeo_digest(location: &str) -> Option<String> {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{location}"),
        ])
        .output()
        .expect("running skopeo");
    out.status.success().then(|| sha256(&out.stdout))
}

#[test]
fn mirror_and_copy_carry_referrers_and_cosign_tags() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    // Neither registry has the referrers API: the tag schema on both sides.
    let src = Registry::anonymous();
    let (img, sbom) = subject_with_sbom(&src, "carried");
    let tag = format!("sha256-{}", &img.manifest_digest[7..]);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [sbom],
    }))
    .expect("index");
    push_manifest(&src, "team/app", &tag, OCI_INDEX, &index);
    // cosign's legacy attestation tag: an image manifest of its own.
    let att = Image::simple(Style::Oci, Compression::Gzip, "attestation");
    att.push(&src, "team/app", &format!("{tag}.att"));
    let sbom_digest = sbom["digest"].as_str().expect("digest").to_string();
    // And a cosign signature (sha256-<hex>.sig), made by barge sign. (Debian's skopeo
    // and podman are built without sigstore: they can neither sign nor verify.)
    let keys = tempfile::tempdir().expect("tempdir");
    let prefix = keys.path().join("cosign").display().to_string();
    let with_password = |args: &[&str]| {
        let out = Barge::new()
            .command()
            .args(args)
            .env("COSIGN_PASSWORD", "pw")
            .output()
            .expect("running barge");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    with_password(&["generate-key", "--output-key-prefix", &prefix]);
    with_password(&[
        "sign",
        "--key",
        &format!("{prefix}.key"),
        &format!("{}/team/app:v1", src.host()),
    ]);

    let dst = Registry::anonymous();
    let src_proxy = SlowProxy::start(&src.host(), 0);
    let dst_proxy = SlowProxy::start(&dst.host(), 0);
    let (s, d) = (src_proxy.host(), dst_proxy.host());
    let b = Barge::new();

    // The attachment tags are not images of their own: one image mirrored.
    let out = b.run(&["mirror", &format!("{s}/team/app"), &format!("{d}/team/app")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1 images: 1 copied, 0 unchanged, 0 failed"), "{stderr}");
    // The tag list said which attachment tags exist; a 404 from the referrers API is asked once.
    let asked = src_proxy.request_lines();
    assert!(!asked.iter().any(|l| l.contains(".sbom")), "{asked:?}");
    assert_eq!(
        asked.iter().filter(|l| l.contains("/referrers/")).count(),
        1,
        "{asked:?}"
    );
    let at = |repo: &str, key: &str| {
        let sep = if key.starts_with("sha256:") { '@' } else { ':' };
        skopeo_digest(&format!("{}/{repo}{sep}{key}", dst.host()))
    };
    assert_eq!(at("team/app", "v1").as_deref(), Some(img.manifest_digest.as_str()));
    assert_eq!(at("team/app", &sbom_digest).as_deref(), Some(sbom_digest.as_str()));
    assert_eq!(
        at("team/app", &format!("{tag}.att")).as_deref(),
        Some(att.manifest_digest.as_str())
    );
    // The fallback index at the destination lists the SBOM, as barge referrers reads it.
    let listed = b.ok(&[
        "referrers",
        "--format",
        "{{.Digest}} {{.ArtifactType}}",
        &format!("{}/team/app:v1", dst.host()),
    ]);
    assert_eq!(listed, format!("{sbom_digest} application/spdx+json\n"));
    // The signature came along and still verifies there.
    b.ok(&[
        "verify",
        "--key",
        &format!("{prefix}.pub"),
        &format!("{}/team/app:v1", dst.host()),
    ]);

    // A re-run: one HEAD per tag at the source, nothing at the destination.
    src_proxy.reset_counters();
    dst_proxy.reset_counters();
    let out = b.ok(&["mirror", &format!("{s}/team/app"), &format!("{d}/team/app")]);
    assert_eq!(out.matches("Unchanged").count(), 1, "{out}");
    let heads: Vec<String> = src_proxy
        .request_lines()
        .into_iter()
        .filter(|l| !l.contains("/tags/list") && !l.starts_with("GET /v2/ "))
        .collect();
    assert_eq!(heads.len(), 1, "one HEAD for v1: {heads:?}");
    assert!(
        heads[0].starts_with("HEAD ") && heads[0].contains("/manifests/v1"),
        "{heads:?}"
    );
    assert!(dst_proxy.request_lines().is_empty(), "{:?}", dst_proxy.request_lines());

    // Attached since: a re-run trusts its record and does not look; --verify brings it.
    let late = work_file(b"late report");
    let late_digest = b
        .ok(&[
            "artifact",
            "push",
            "--artifact-type",
            "text/plain",
            "--subject",
            &format!("{}/team/app:v1", src.host()),
            &format!("{}/team/app", src.host()),
            &late.1.display().to_string(),
        ])
        .trim()
        .to_string();
    b.ok(&["mirror", &format!("{s}/team/app"), &format!("{d}/team/app")]);
    assert_eq!(at("team/app", &late_digest), None);
    let out = b.ok(&["mirror", "--verify", &format!("{s}/team/app"), &format!("{d}/team/app")]);
    assert_eq!(out.matches("Unchanged").count(), 1, "{out}");
    assert_eq!(at("team/app", &late_digest).as_deref(), Some(late_digest.as_str()));
    let listed = b.ok(&[
        "referrers",
        "--format",
        "{{.Digest}}",
        &format!("{}/team/app:v1", dst.host()),
    ]);
    assert_eq!(listed, format!("{sbom_digest}\n{late_digest}\n"));

    // copy leaves referrers behind unless asked.
    b.ok(&[
        "copy",
        &format!("docker://{s}/team/app:v1"),
        &format!("docker://{d}/plain:v1"),
    ]);
    assert_eq!(at("plain", &sbom_digest), None);
    assert_eq!(at("plain", &tag), None);
    b.ok(&[
        "copy",
        "--referrers",
        &format!("docker://{s}/team/app:v1"),
        &format!("docker://{d}/carried:v1"),
    ]);
    assert_eq!(at("carried", &sbom_digest).as_deref(), Some(sbom_digest.as_str()));
    assert!(at("carried", &tag).is_some(), "the fallback index was written");
    assert_eq!(
        at("carried", &format!("{tag}.att")).as_deref(),
        Some(att.manifest_digest.as_str())
    );
    fails_with(
        &b,
        &[
            "copy",
            "--referrers",
            &format!("docker://{s}/team/app:v1"),
            &format!("oci:{}", keys.path().join("layout").display()),
        ],
        "docker:// on both sides",
    );
    // Mirroring again with --referrers=false copies the attachment tags as tags.
    let out = b.ok(&[
        "mirror",
        "--dry-run",
        "--referrers=false",
        &format!("{s}/team/app"),
        &format!("{d}/other"),
    ]);
    assert_eq!(out.matches("Would copy").count(), 4, "{out}");
}

#[test]
fn artifacts_push_and_pull_back_byte_identical() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = Image::simple(Style::Oci, Compression::Gzip, "subject");
    img.push(&reg, "team/app", "v1");
    let work = tempfile::tempdir().expect("tempdir");
    // Bigger than any buffer, with every byte value.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(work.path().join("sbom.json"), b"{\"spdxVersion\":\"SPDX-2.3\"}").expect("write");
    std::fs::write(work.path().join("blob.bin"), &big).expect("write");
    let b = Barge::new();
    let at = format!("{}/team/app:sbom", reg.host());
    let sbom_arg = format!("{}:application/spdx+json", work.path().join("sbom.json").display());
    let blob_arg = work.path().join("blob.bin").display().to_string();
    let out = b.run(&[
        "artifact",
        "push",
        "--artifact-type",
        "application/vnd.example.sbom",
        "--annotation",
        "org.example.note=hello",
        "--subject",
        &format!("{}/team/app:v1", reg.host()),
        &at,
        &sbom_arg,
        &blob_arg,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("has no referrers API"), "{stderr}");
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();

    // What skopeo reads: an OCI 1.1 artifact manifest with the empty config.
    let raw = skopeo_raw(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{at}")]);
    assert_eq!(sha256(&raw), digest);
    let m: Value = serde_json::from_slice(&raw).expect("manifest JSON");
    assert_eq!(m["mediaType"], OCI_MANIFEST);
    assert_eq!(m["artifactType"], "application/vnd.example.sbom");
    assert_eq!(m["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
    assert_eq!(m["config"]["digest"], sha256(b"{}"));
    assert_eq!(m["subject"]["digest"], img.manifest_digest.as_str());
    assert_eq!(m["annotations"]["org.example.note"], "hello");
    assert_eq!(m["layers"][0]["mediaType"], "application/spdx+json");
    assert_eq!(
        m["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "sbom.json"
    );
    assert_eq!(m["layers"][1]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    assert_eq!(m["layers"][1]["size"], big.len());

    // It is a referrer of its subject (through the tag schema here).
    let listed = b.ok(&[
        "referrers",
        "--format",
        "{{.Digest}} {{.ArtifactType}}",
        &format!("{}/team/app:v1", reg.host()),
    ]);
    assert_eq!(listed, format!("{digest} application/vnd.example.sbom\n"));

    // Pulled back: byte-identical, by title.
    let out_dir = work.path().join("out");
    let pulled = b.ok(&["artifact", "pull", &at, "-o", &out_dir.display().to_string()]);
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    assert_eq!(std::fs::read(out_dir.join("blob.bin")).expect("blob.bin"), big);
    assert_eq!(
        std::fs::read(out_dir.join("sbom.json")).expect("sbom.json"),
        b"{\"spdxVersion\":\"SPDX-2.3\"}"
    );

    // A repository alone with --subject: pushed by digest, untagged, found through its subject.
    let sig = work.path().join("sig.txt");
    std::fs::write(&sig, b"signed").expect("write");
    let untagged = b.ok(&[
        "artifact",
        "push",
        "--artifact-type",
        "text/plain",
        "--subject",
        &format!("{}/team/app:v1", reg.host()),
        &format!("{}/team/app", reg.host()),
        &sig.display().to_string(),
    ]);
    let untagged = untagged.trim();
    let tags = b.ok(&["tags", &format!("{}/team/app", reg.host())]);
    assert!(!tags.lines().any(|t| t == "latest"), "{tags}");
    let listed = b.ok(&[
        "referrers",
        "--format",
        "{{.Digest}}",
        &format!("{}/team/app:v1", reg.host()),
    ]);
    assert_eq!(listed, format!("{digest}\n{untagged}\n"));
}

#[test]
fn artifact_pull_refuses_titles_that_leave_the_directory() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let content = b"not for you";
    push_blob(&reg, "evil", b"{}");
    push_blob(&reg, "evil", content);
    let with_title = |title: &str| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "text/plain",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
            "layers": [
                {"mediaType": "text/plain", "digest": sha256(content), "size": content.len(),
                 "annotations": {"org.opencontainers.image.title": "fine.txt"}},
                {"mediaType": "text/plain", "digest": sha256(content), "size": content.len(),
                 "annotations": {"org.opencontainers.image.title": title}},
            ],
        }))
        .expect("manifest")
    };
    let work = tempfile::tempdir().expect("tempdir");
    let out_dir = work.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let outside = work.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::os::unix::fs::symlink(&outside, out_dir.join("link")).expect("symlink");
    let b = Barge::new();
    for (tag, title, what) in [
        ("dotdot", "../escaped.txt", "leaves"),
        ("absolute", "/tmp/escaped.txt", "absolute"),
        ("symlink", "link/escaped.txt", "symlink"),
    ] {
        push_manifest(&reg, "evil", tag, OCI_MANIFEST, &with_title(title));
        fails_with(
            &b,
            &[
                "artifact",
                "pull",
                &format!("{}/evil:{tag}", reg.host()),
                "-o",
                &out_dir.display().to_string(),
            ],
            what,
        );
    }
    assert!(!work.path().join("escaped.txt").exists());
    assert!(!outside.join("escaped.txt").exists());
    assert!(!std::path::Path::new("/tmp/escaped.txt").exists());
    // Titles are checked first: not even the harmless file was written.
    assert!(!out_dir.join("fine.txt").exists());
}

#[test]
fn manifest_lists_drafted_pushed_and_read_by_skopeo_and_podman() {
    if !require_root_and(&["docker-registry", "skopeo", "podman"]) {
        return;
    }
    let reg = Registry::anonymous();
    // Two platforms in two repositories: the list's repository gets both.
    let (amd, arm) = (labelled("amd", "amd64"), labelled("arm", "arm64"));
    amd.push(&reg, "team/amd", "v1");
    arm.push(&reg, "team/arm", "v1");
    let h = reg.host();
    let b = Barge::new();
    let list = format!("{h}/team/multi:v1");
    let (amd_ref, arm_ref) = (format!("{h}/team/amd:v1"), format!("{h}/team/arm:v1"));
    let out = b.ok(&["manifest", "create", &list, &amd_ref, &arm_ref]);
    assert!(out.contains("2 manifests"), "{out}");
    fails_with(&b, &["manifest", "create", &list, &amd_ref], "--amend");
    b.ok(&["manifest", "annotate", &list, &arm_ref, "--variant", "v8"]);
    fails_with(
        &b,
        &[
            "manifest",
            "annotate",
            &list,
            &format!("{h}/team/other:v1"),
            "--os",
            "linux",
        ],
        "is not in the manifest list",
    );
    let digest = b.ok(&["manifest", "push", "--purge", &list]).trim().to_string();

    // skopeo reads an OCI index of both, as pushed, platforms from the configs and the annotation.
    let raw = skopeo_raw(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{list}")]);
    assert_eq!(sha256(&raw), digest);
    let index: Value = serde_json::from_slice(&raw).expect("index JSON");
    assert_eq!(index["mediaType"], OCI_INDEX);
    let m = index["manifests"].as_array().expect("manifests");
    assert_eq!(m.len(), 2, "{index}");
    assert_eq!(m[0]["digest"], amd.manifest_digest.as_str());
    assert_eq!(m[0]["platform"]["architecture"], "amd64");
    assert_eq!(m[1]["digest"], arm.manifest_digest.as_str());
    assert_eq!(m[1]["platform"]["architecture"], "arm64");
    assert_eq!(m[1]["platform"]["variant"], "v8");
    assert_eq!(m[1]["platform"]["os"], "linux");
    // The manifests were copied into the list's repository.
    assert_eq!(
        skopeo_digest(&format!("{h}/team/multi@{}", arm.manifest_digest)).as_deref(),
        Some(arm.manifest_digest.as_str())
    );
    // --purge removed the draft.
    fails_with(&b, &["manifest", "push", &list], "create it with barge manifest create");

    // podman pulls the arm64 image through the list.
    let work = tempfile::tempdir().expect("tempdir");
    let podman = |args: &[&str]| barge_tests::podman_in(work.path(), args);
    podman(&["pull", "-q", "--platform", "linux/arm64", "--tls-verify=false", &list]);
    let arch = podman(&["image", "inspect", "--format", "{{.Architecture}} {{.Digest}}", &list]);
    assert_eq!(
        arch.trim(),
        format!("arm64 {digest}"),
        "the arm64 image, pulled through the list"
    );

    // A Docker manifest list on request, to another tag; rm drops a draft.
    b.ok(&["manifest", "create", &list, &amd_ref, &arm_ref]);
    let v2s2 = format!("{h}/team/multi:v2s2");
    b.ok(&["manifest", "push", "--format", "v2s2", &list, &v2s2]);
    let raw = skopeo_raw(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{v2s2}")]);
    let docker: Value = serde_json::from_slice(&raw).expect("list JSON");
    assert_eq!(
        docker["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(docker["manifests"].as_array().map(Vec::len), Some(2));
    b.ok(&["manifest", "rm", &list]);
    fails_with(
        &b,
        &["manifest", "annotate", &list, &amd_ref, "--os", "linux"],
        "no manifest list",
    );
}

#[test]
fn artifact_pull_writes_nothing_that_does_not_match_its_digest() {
    // A registry that serves other bytes than the manifest's digest names:
    // the harness's canned server, since docker-registry checks what it stores.
    let good = b"the real report";
    let bad = b"a forged report";
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "text/plain",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": "text/plain", "digest": sha256(good), "size": good.len(),
                    "annotations": {"org.opencontainers.image.title": "report.txt"}}],
    })
    .to_string();
    let blob = format!("/v2/r/blobs/{}", sha256(good));
    let server = CannedServer::start(vec![
        ("/v2/r/manifests/v1", Response::new(200, OCI_MANIFEST, manifest)),
        (
            blob.as_str(),
            Response::new(200, "application/octet-stream", bad.to_vec()),
        ),
    ]);
    let out_dir = tempfile::tempdir().expect("tempdir");
    let b = Barge::new();
    fails_with(
        &b,
        &[
            "artifact",
            "pull",
            &format!("{}/r:v1", server.host()),
            "-o",
            &out_dir.path().display().to_string(),
        ],
        "does not match its digest",
    );
    let left: Vec<_> = std::fs::read_dir(out_dir.path()).expect("read_dir").collect();
    assert!(left.is_empty(), "nothing written, no temporary file left: {left:?}");
}
