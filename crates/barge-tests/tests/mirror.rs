//! `barge mirror` between registries, and pulls through a pull-through cache.

use barge_tests::canned::{CannedServer, Response};
use barge_tests::image::{Compression, Image, Index, LayerBuilder, Spec, Style};
use barge_tests::proxy::SlowProxy;
use barge_tests::registry::{Options, Registry};
use barge_tests::{require_root_and, run_ok, Barge};
use std::process::Command;

fn image(marker: &str) -> Image {
    let shared = LayerBuilder::new()
        .file("base", &[7u8; 40_000], 0o644)
        .build(Compression::Gzip);
    let own = LayerBuilder::new()
        .file("marker", marker.as_bytes(), 0o644)
        .build(Compression::Gzip);
    Image::new(vec![shared, own], Style::Oci, Spec::default())
}

/// The digest of the exact manifest bytes skopeo reads at `location`.
fn skopeo_digest(location: &str) -> String {
    let raw = run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", location]));
    barge_tests::sha256(raw.as_bytes())
}

#[test]
fn mirroring_a_registry_twice_moves_nothing_the_second_time() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let src = Registry::anonymous();
    let (v1, v2, dev, other) = (image("v1"), image("v2"), image("dev"), image("other"));
    v1.push(&src, "team/app", "v1");
    v2.push(&src, "team/app", "v2");
    dev.push(&src, "team/app", "dev");
    other.push(&src, "other", "latest");
    let arm = Image::new(
        vec![LayerBuilder::new()
            .file("arch", b"arm64", 0o644)
            .build(Compression::Gzip)],
        Style::Oci,
        Spec {
            arch: "arm64".into(),
            ..Spec::default()
        },
    );
    let index = Index::new(&[&v1, &arm], Style::Oci);
    index.push(&[&v1, &arm], &src, "multi", "latest");

    let dst = Registry::anonymous();
    let src_proxy = SlowProxy::start(&src.host(), 0);
    let dst_proxy = SlowProxy::start(&dst.host(), 0);
    let (s, d) = (src_proxy.host(), dst_proxy.host());
    let b = Barge::new();

    // --dry-run lists and copies nothing.
    let out = b.run(&["mirror", "--dry-run", &s, &format!("{d}/copy/")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("Would copy").count(), 5, "{stdout}");
    assert!(stdout.contains(&format!("{d}/copy/team/app:dev")), "{stdout}");
    assert!(
        dst_proxy
            .request_lines()
            .iter()
            .all(|l| l.starts_with("HEAD ") || l.starts_with("GET /v2/ ")),
        "a dry run only asks: {:?}",
        dst_proxy.request_lines()
    );

    // The real run copies every tag of every repository, every platform, digests preserved.
    src_proxy.reset_counters();
    dst_proxy.reset_counters();
    let out = b.run(&["mirror", &s, &format!("{d}/copy/")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.matches("Copied").count(), 5, "{stdout}");
    assert!(stderr.contains("5 images: 5 copied, 0 unchanged, 0 failed"), "{stderr}");
    // Into repositories without tags (one page of one tag asked each), the
    // destination is not asked about blobs or manifests barge is about to
    // write, nor the source's tags checked before the copy fetches them.
    let dst_lines = dst_proxy.request_lines();
    assert_eq!(
        dst_lines.iter().filter(|l| l.starts_with("HEAD ")).count(),
        0,
        "{dst_lines:?}"
    );
    assert_eq!(
        dst_lines.iter().filter(|l| l.contains("/tags/list?n=1 ")).count(),
        3,
        "{dst_lines:?}"
    );
    let src_lines = src_proxy.request_lines();
    assert!(
        !src_lines
            .iter()
            .any(|l| l.starts_with("HEAD ") && l.contains("/manifests/")),
        "{src_lines:?}"
    );
    for (repo, tag, digest) in [
        ("team/app", "v1", &v1.manifest_digest),
        ("team/app", "v2", &v2.manifest_digest),
        ("team/app", "dev", &dev.manifest_digest),
        ("other", "latest", &other.manifest_digest),
        ("multi", "latest", &index.digest),
    ] {
        let at = format!("docker://{}/copy/{repo}:{tag}", dst.host());
        assert_eq!(&skopeo_digest(&at), digest, "{at}");
    }
    // Both platforms of the index came along.
    let arm_at = format!("docker://{}/copy/multi@{}", dst.host(), arm.manifest_digest);
    assert_eq!(skopeo_digest(&arm_at), arm.manifest_digest);

    // Second run: HEADs (and tag/catalog listings) only; no manifest body, no blob.
    src_proxy.reset_counters();
    dst_proxy.reset_counters();
    let out = b.run(&["mirror", &s, &format!("{d}/copy/")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.matches("Unchanged").count(), 5, "{stdout}");
    assert!(stderr.contains("0 copied, 5 unchanged, 0 failed"), "{stderr}");
    for line in src_proxy.request_lines().iter().chain(dst_proxy.request_lines().iter()) {
        let listing = line.contains("/tags/list") || line.contains("/_catalog") || line.starts_with("GET /v2/ ");
        assert!(
            line.starts_with("HEAD ") || (line.starts_with("GET ") && listing),
            "second run sent {line}"
        );
        assert!(!line.contains("/blobs/"), "second run touched a blob: {line}");
    }
    assert_eq!(
        src_proxy
            .request_lines()
            .iter()
            .filter(|l| l.starts_with("HEAD ") && l.contains("/manifests/"))
            .count(),
        5,
        "one HEAD per source tag"
    );
    assert!(
        dst_proxy.request_lines().is_empty(),
        "the destination is not asked: barge recorded what it left there: {:?}",
        dst_proxy.request_lines()
    );

    // A tag removed at the destination behind barge's back: --verify finds it.
    let agent = barge_tests::image::agent();
    agent
        .delete(format!(
            "{}/v2/copy/other/manifests/{}",
            dst.base_url(),
            other.manifest_digest
        ))
        .call()
        .unwrap();
    let out = b.ok(&["mirror", &s, &format!("{d}/copy/")]);
    assert_eq!(out.matches("Unchanged").count(), 5, "trusting the record: {out}");
    let out = b.ok(&["mirror", "--verify", &s, &format!("{d}/copy/")]);
    assert_eq!(out.matches("Copied").count(), 1, "{out}");
    assert!(out.contains("copy/other:latest"), "{out}");

    // A changed tag is copied again; only the layer that changed moves.
    image("v1-new").push(&src, "team/app", "v1");
    dst_proxy.reset_counters();
    let out = b.ok(&["mirror", &format!("{s}/team/app"), &format!("{d}/copy/team/app")]);
    assert_eq!(out.matches("Copied").count(), 1, "{out}");
    assert_eq!(out.matches("Unchanged").count(), 2, "{out}");
    let uploads = dst_proxy
        .request_lines()
        .iter()
        .filter(|l| l.starts_with("POST ") && l.contains("/blobs/uploads/"))
        .count();
    assert_eq!(
        uploads,
        2,
        "the new top layer and config only: {:?}",
        dst_proxy.request_lines()
    );
}

#[test]
fn mirror_filters_tags_reads_a_file_and_lists_failures() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let src = Registry::anonymous();
    let dst = Registry::anonymous();
    for tag in ["1.0", "1.1", "1.1-rc", "latest"] {
        image(tag).push(&src, "lib/tool", tag);
    }
    let b = Barge::new();
    let out = b.ok(&[
        "mirror",
        "--tags",
        r"1\.[0-9]+",
        &format!("{}/lib/tool", src.host()),
        &format!("{}/tool", dst.host()),
    ]);
    assert_eq!(out.matches("Copied").count(), 2, "{out}");
    assert_eq!(
        barge_tests::skopeo_tags(&format!("{}/tool", dst.host())),
        ["1.0", "1.1"]
    );

    // A file of mirrors: one good, one missing; the good one is copied, the
    // missing one is listed at the end and the exit status says so.
    let file = b.dir.path().join("mirrors.json");
    std::fs::write(
        &file,
        serde_json::json!({"mirrors": [
            {"source": format!("{}/lib/tool:latest", src.host()), "destination": format!("{}/", dst.host())},
            {"source": format!("{}/lib/missing:1", src.host()), "destination": format!("{}/", dst.host())},
            {"source": format!("{}/lib/nothing-here", src.host()), "destination": format!("{}/", dst.host())},
        ]})
        .to_string(),
    )
    .unwrap();
    let out = b.run(&["mirror", "--file", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Copied"), "{stderr}");
    let failures = stderr.split("Failures:").nth(1).expect("a failure list");
    assert!(failures.contains("lib/missing:1"), "{stderr}");
    assert!(failures.contains("lib/nothing-here"), "{stderr}");
    assert!(stderr.contains("2 failed"), "{stderr}");
    assert_eq!(
        skopeo_digest(&format!("docker://{}/lib/tool:latest", dst.host())),
        image("latest").manifest_digest
    );

    // `HOST/PREFIX/` as a source: only the repositories below it, named without it.
    image("other").push(&src, "elsewhere/thing", "1");
    let out = b.ok(&[
        "mirror",
        "--tags",
        "1\\.0",
        &format!("{}/lib/", src.host()),
        &format!("{}/copied/", dst.host()),
    ]);
    assert_eq!(out.matches("Copied").count(), 1, "{out}");
    assert!(out.contains(&format!("{}/copied/tool:1.0", dst.host())), "{out}");
    assert!(!out.contains("elsewhere"), "{out}");

    // Bad input gets a one-line error.
    assert!(b
        .fails(&["mirror", "--tags", "(", "a/b", "c/d"])
        .contains("tag pattern"));
    assert!(b.fails(&["mirror"]).contains("SOURCE and DESTINATION"));
    assert!(b
        .fails(&["mirror", &format!("{}/", src.host()), &format!("{}/x:1", dst.host())])
        .contains("whole registry"));
}

#[test]
fn mirror_stops_pulling_when_the_rate_limit_is_used_up() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let img = image("limited");
    let limited = |r: Response| {
        r.header("RateLimit-Limit", "100;w=21600")
            .header("RateLimit-Remaining", "0;w=21600")
    };
    let manifest = limited(
        Response::new(200, "application/vnd.oci.image.manifest.v1+json", img.manifest.clone())
            .header("Docker-Content-Digest", &img.manifest_digest),
    );
    let canned = CannedServer::start(vec![
        (
            "/v2/app/tags/list?n=1000",
            limited(Response::new(
                200,
                "application/json",
                r#"{"name":"app","tags":["a","b"]}"#,
            )),
        ),
        ("/v2/app/manifests/a", manifest.clone()),
        ("/v2/app/manifests/b", manifest),
    ]);
    let dst = Registry::anonymous();
    let b = Barge::new();
    let out = b.run(&[
        "mirror",
        &format!("{}/app", canned.host()),
        &format!("{}/app", dst.host()),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("pull rate limit is used up (100 pulls per 6h)"),
        "{stderr}"
    );
    assert!(stderr.contains("2 failed"), "{stderr}");
    let fetched: Vec<_> = canned
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && (r.path.contains("/manifests/") || r.path.contains("/blobs/")))
        .collect();
    assert!(fetched.is_empty(), "no pull once the quota is gone: {fetched:?}");
}

#[test]
fn pulls_go_through_a_pull_through_cache_and_fall_back_to_the_origin() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let origin = Registry::anonymous();
    let img = image("cached");
    img.push(&origin, "team/app", "v1");
    // barge reaches the origin only through this proxy, so we see whether it did.
    let origin_proxy = SlowProxy::start(&origin.host(), 0);
    let cache = Registry::start(Options {
        proxy_of: Some(origin.base_url()),
        ..Options::default()
    });
    let cache_proxy = SlowProxy::start(&cache.host(), 0);
    let dead = format!("127.0.0.1:{}", barge_tests::free_port());

    let b = Barge::new();
    let settings = serde_json::json!({
        "registry-mirrors": { origin_proxy.host(): [dead, format!("http://{}", cache_proxy.host())] }
    });
    std::fs::write(b.dir.path().join("barge-config/barge.json"), settings.to_string()).unwrap();
    let name = format!("{}/team/app:v1", origin_proxy.host());
    let out = b.run(&["pull", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("mirror {dead} failed")), "{stderr}");
    // Stored under the name asked for, with the origin's digest.
    let listed = b.ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Digest}}",
    ]);
    assert!(
        listed.contains(&format!("{}/team/app:v1 {}", origin_proxy.host(), img.manifest_digest)),
        "{listed}"
    );
    let cache_lines = cache_proxy.request_lines();
    assert!(
        cache_lines
            .iter()
            .any(|l| l.starts_with("GET /v2/team/app/manifests/v1 ")),
        "{cache_lines:?}"
    );
    assert!(
        cache_lines.iter().filter(|l| l.contains("/blobs/")).count() >= 3,
        "{cache_lines:?}"
    );
    assert!(
        origin_proxy.request_lines().is_empty(),
        "barge went to the origin itself"
    );
    // The cache now holds the layers.
    let blobs = cache.data_dir().join("docker/registry/v2/blobs/sha256");
    for l in &img.layers {
        let hex = l.digest.trim_start_matches("sha256:");
        assert!(
            blobs.join(&hex[..2]).join(hex).join("data").exists(),
            "cache lacks {hex}"
        );
    }

    // With the cache gone, the pull falls back to the origin.
    drop(cache_proxy);
    drop(cache);
    let b2 = Barge::new();
    std::fs::write(b2.dir.path().join("barge-config/barge.json"), settings.to_string()).unwrap();
    let out = b2.run(&["pull", &name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The manifest came from the origin (by tag, or by digest after a HEAD).
    let origin_lines = origin_proxy.request_lines();
    assert!(
        origin_lines
            .iter()
            .any(|l| l.starts_with("GET /v2/team/app/manifests/")),
        "{origin_lines:?}"
    );
}
