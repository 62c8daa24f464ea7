//! `barge pull` against real registries.

use barge_tests::canned::{CannedServer, Response};
use barge_tests::image::{self, Compression, Image, Index, LayerBuilder, Spec, Style};
use barge_tests::registry::{Auth, Options, Registry, PASSWORD, USER};
use barge_tests::token::TokenOptions;
use barge_tests::{external_ip, require, require_root_and, Barge};
use std::path::PathBuf;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The snapshot directory holding the top layer of the image `reference`.
fn top_snapshot(b: &Barge, reference: &str) -> PathBuf {
    let out = b.ok(&["image", "inspect", "--format", "{{json .RootFS.Layers}}", reference]);
    let diff_ids: Vec<String> = serde_json::from_str(out.trim()).expect("layers json");
    // chain ID of the top layer
    let mut chain = diff_ids[0].clone();
    for d in &diff_ids[1..] {
        chain = barge_tests::sha256(format!("{chain} {d}").as_bytes());
    }
    b.root().join("snapshots").join(&chain[7..]).join("fs")
}

#[test]
fn pulls_a_busybox_image_made_by_umoci_and_skopeo() {
    if !require_root_and(&["docker-registry", "umoci", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let digest = image::busybox_via_umoci(&reg, "busybox", "latest");
    let b = Barge::new();
    let reference = format!("{}/busybox", reg.host());
    let out = b.run(&["pull", &reference]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("{}/busybox:latest\n", reg.host()),
        "stdout carries only the reference"
    );
    let err = stderr(&out);
    assert!(err.starts_with("latest: Pulling from busybox\n"), "{err}");
    assert!(err.contains(": Pull complete\n"), "{err}");
    assert!(err.contains(&format!("Digest: {digest}\n")), "{err}");
    assert!(
        err.contains(&format!(
            "Status: Downloaded newer image for {}/busybox:latest\n",
            reg.host()
        )),
        "{err}"
    );

    // The unpacked layer holds the very busybox binary.
    let fs = top_snapshot(&b, &reference);
    assert_eq!(
        std::fs::read(fs.join("bin/busybox")).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(std::fs::read_link(fs.join("bin/sh")).unwrap(), PathBuf::from("busybox"));

    // Again: nothing to do.
    let out = b.run(&["pull", &reference]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "Status: Image is up to date for {}/busybox:latest",
            reg.host()
        )),
        "{err}"
    );
    assert!(!err.contains("Pull complete"), "{err}");
}

#[test]
fn quiet_pull_prints_only_the_reference() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    Image::simple(Style::Oci, Compression::Gzip, "q").push(&reg, "app", "v1");
    let b = Barge::new();
    let out = b.run(&["pull", "-q", &format!("{}/app:v1", reg.host())]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}/app:v1\n", reg.host()));
    assert_eq!(stderr(&out), "");
}

#[test]
fn pulls_oci_and_docker_media_types_with_gzip_zstd_and_plain_layers() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let cases = [
        ("oci-gzip", Style::Oci, Compression::Gzip, image::OCI_MANIFEST),
        ("oci-zstd", Style::Oci, Compression::Zstd, image::OCI_MANIFEST),
        ("oci-plain", Style::Oci, Compression::None, image::OCI_MANIFEST),
        ("docker-gzip", Style::Docker, Compression::Gzip, image::DOCKER_MANIFEST),
    ];
    let b = Barge::new();
    for (name, style, compression, media_type) in cases {
        let img = Image::simple(style, compression, name);
        img.push(&reg, name, "latest");
        let reference = format!("{}/{name}", reg.host());
        b.ok(&["pull", "-q", &reference]);
        let fs = top_snapshot(&b, &reference);
        assert_eq!(std::fs::read_to_string(fs.join("etc/marker")).unwrap(), name);
        let desc = b.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Descriptor.mediaType}} {{.Id}}",
            &reference,
        ]);
        assert_eq!(desc.trim(), format!("{media_type} {}", img.config_digest), "{name}");
        assert!(
            b.root()
                .join("oci/blobs/sha256")
                .join(&img.layers[0].digest[7..])
                .is_file(),
            "{name}: layer blob kept"
        );
    }
}

#[test]
fn multi_platform_indexes_select_the_platform() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    for style in [Style::Oci, Style::Docker] {
        let platform_image = |arch: &str, variant: Option<&str>| {
            let marker = format!("{arch}{}", variant.unwrap_or(""));
            let layer = LayerBuilder::new()
                .file("etc/marker", marker.as_bytes(), 0o644)
                .build(Compression::Gzip);
            Image::new(
                vec![layer],
                style,
                Spec {
                    arch: arch.into(),
                    variant: variant.map(str::to_string),
                    ..Spec::default()
                },
            )
        };
        let amd = platform_image("amd64", None);
        let arm64 = platform_image("arm64", Some("v8"));
        let arm7 = platform_image("arm", Some("v7"));
        let images = [&amd, &arm64, &arm7];
        let index = Index::new(&images, style);
        let repo = format!("multi-{}", if style == Style::Oci { "oci" } else { "docker" });
        index.push(&images, &reg, &repo, "latest");
        let reference = format!("{}/{repo}", reg.host());

        let b = Barge::new();
        let out = b.run(&["pull", &reference]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("Digest: {}", index.digest)),
            "the index digest is reported"
        );
        assert_eq!(
            std::fs::read_to_string(top_snapshot(&b, &reference).join("etc/marker")).unwrap(),
            "amd64"
        );
        let digests = b.ok(&["image", "inspect", "--format", "{{json .RepoDigests}}", &reference]);
        assert!(digests.contains(&index.digest), "{digests}");

        for (platform, marker) in [
            ("linux/arm64", "arm64v8"),
            ("linux/arm/v7", "armv7"),
            ("linux/arm", "armv7"),
        ] {
            let b = Barge::new();
            b.ok(&["pull", "-q", "--platform", platform, &reference]);
            assert_eq!(
                std::fs::read_to_string(top_snapshot(&b, &reference).join("etc/marker")).unwrap(),
                marker,
                "{platform}"
            );
            let arch = b.ok(&["image", "inspect", "--format", "{{.Architecture}}", &reference]);
            assert_eq!(arch.trim(), platform.split('/').nth(1).unwrap());
        }
        let err = Barge::new().fails(&["pull", "--platform", "linux/s390x", &reference]);
        assert!(err.contains("no matching manifest for linux/s390x"), "{err}");
        assert!(err.contains("linux/arm64/v8"), "lists what is available: {err}");
    }
}

#[test]
fn explicit_platform_must_match_a_single_manifest() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let layer = LayerBuilder::new().file("x", b"x", 0o644).build(Compression::Gzip);
    Image::new(
        vec![layer],
        Style::Oci,
        Spec {
            arch: "arm64".into(),
            ..Spec::default()
        },
    )
    .push(&reg, "armonly", "latest");
    let reference = format!("{}/armonly", reg.host());
    let err = Barge::new().fails(&["pull", "--platform", "linux/amd64", &reference]);
    assert!(err.contains("linux/arm64") && err.contains("linux/amd64"), "{err}");
    // Without --platform: pulled with a warning, as docker does.
    let out = Barge::new().run(&["pull", &reference]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("WARNING: The requested image's platform (linux/arm64) does not match"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pulls_by_digest() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = Image::simple(Style::Oci, Compression::Gzip, "pinned");
    img.push(&reg, "pinned", "v1");
    let b = Barge::new();
    let by_digest = format!("{}/pinned@{}", reg.host(), img.manifest_digest);
    assert_eq!(b.ok(&["pull", "-q", &by_digest]), format!("{by_digest}\n"));
    let rows = b.ok(&["images", "--format", "{{.Repository}} {{.Tag}} {{.Digest}} {{.ID}}"]);
    assert_eq!(
        rows,
        format!(
            "{}/pinned <none> {} {}\n",
            reg.host(),
            img.manifest_digest,
            img.short_id()
        )
    );
    // name:tag@digest pulls the digest.
    let both = format!("{}/pinned:v1@{}", reg.host(), img.manifest_digest);
    let out = b.run(&["pull", &both]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Image is up to date"), "{}", stderr(&out));
}

#[test]
fn anonymous_bearer_token_flow() {
    if !require_root_and(&["docker-registry", "openssl"]) {
        return;
    }
    let reg = Registry::start(Options {
        auth: Auth::Token(TokenOptions {
            anonymous_pull: true,
            ..TokenOptions::default()
        }),
        ..Options::default()
    });
    Image::simple(Style::Oci, Compression::Gzip, "tok").push(&reg, "team/app", "latest");
    let token = reg.token.as_ref().unwrap();
    let before = token.requests();
    let b = Barge::new();
    let out = b.run(&["pull", &format!("{}/team/app", reg.host())]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(token.requests() > before, "barge asked the token server");
    let log = token.log();
    assert!(
        log.iter()
            .any(|r| r.scopes == ["repository:team/app:pull"] && r.user.is_none()),
        "{log:?}"
    );
}

#[test]
fn token_auth_uses_credentials_from_docker_config() {
    if !require_root_and(&["docker-registry", "openssl"]) {
        return;
    }
    let reg = Registry::start(Options {
        auth: Auth::Token(TokenOptions::default()),
        ..Options::default()
    });
    Image::simple(Style::Oci, Compression::Gzip, "private").push(&reg, "private", "latest");
    let reference = format!("{}/private", reg.host());
    let b = Barge::new();
    let err = b.fails(&["pull", &reference]);
    assert!(err.contains("barge login"), "tells the user to log in: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    write_docker_auth(&b, &reg.host());
    b.ok(&["pull", "-q", &reference]);
    let log = reg.token.as_ref().unwrap().log();
    assert!(log.iter().any(|r| r.user.as_deref() == Some(USER)), "{log:?}");
}

fn write_docker_auth(b: &Barge, host: &str) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let cfg = serde_json::json!({"auths": {host: {"auth": auth}}});
    std::fs::write(b.docker_config().join("config.json"), cfg.to_string()).unwrap();
}

#[test]
fn basic_auth_registry() {
    if !require_root_and(&["docker-registry", "htpasswd"]) {
        return;
    }
    let reg = Registry::start(Options {
        auth: Auth::Basic,
        ..Options::default()
    });
    Image::simple(Style::Docker, Compression::Gzip, "basic").push(&reg, "basic", "latest");
    let reference = format!("{}/basic", reg.host());
    let b = Barge::new();
    let err = b.fails(&["pull", &reference]);
    assert!(err.contains("barge login"), "{err}");
    write_docker_auth(&b, &format!("http://{}/v2/", reg.host()));
    b.ok(&["pull", "-q", &reference]);
}

#[test]
fn tls_registry_on_loopback() {
    if !require_root_and(&["docker-registry", "openssl"]) {
        return;
    }
    let reg = Registry::start(Options {
        tls: true,
        ..Options::default()
    });
    Image::simple(Style::Oci, Compression::Gzip, "tls").push(&reg, "secure", "latest");
    let b = Barge::new();
    b.ok(&["pull", "-q", &format!("{}/secure", reg.host())]);
}

/// A non-loopback IPv4 address of this machine.
#[test]
fn plain_http_to_other_hosts_needs_insecure_registry() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let Some(ip) = external_ip() else {
        assert!(require("a non-loopback IPv4 address", false));
        return;
    };
    let reg = Registry::start(Options {
        all_interfaces: true,
        ..Options::default()
    });
    Image::simple(Style::Oci, Compression::Gzip, "remote").push(&reg, "remote", "latest");
    let host = format!("{ip}:{}", reg.port);
    let reference = format!("{host}/remote");
    let b = Barge::new();
    let err = b.fails(&["pull", &reference]);
    assert!(err.contains(&format!("--insecure-registry {host}")), "{err}");
    b.ok(&["pull", "-q", "--insecure-registry", &host, &reference]);
    // The same from barge.json.
    let b = Barge::new();
    std::fs::write(
        b.dir.path().join("barge-config/barge.json"),
        serde_json::json!({"insecure-registries": [host]}).to_string(),
    )
    .unwrap();
    b.ok(&["pull", "-q", &reference]);
}

#[test]
fn schema1_and_oversized_manifests_are_refused() {
    let schema1 =
        r#"{"schemaVersion":1,"name":"old","tag":"latest","architecture":"amd64","fsLayers":[],"history":[]}"#;
    let big = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[],"pad":"{}"}}"#,
        image::OCI_INDEX,
        "x".repeat(5 << 20)
    );
    let server = CannedServer::start(vec![
        (
            "/v2/old/manifests/latest",
            Response::new(
                200,
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                schema1,
            ),
        ),
        ("/v2/big/manifests/latest", Response::new(200, image::OCI_INDEX, big)),
    ]);
    let b = Barge::new();
    let err = b.fails(&["pull", &format!("{}/old", server.host())]);
    assert!(err.contains("schema 1"), "{err}");
    let err = b.fails(&["pull", &format!("{}/big", server.host())]);
    assert!(err.contains("larger than"), "{err}");
    let err = b.fails(&["pull", &format!("{}/missing", server.host())]);
    assert!(err.contains("manifest unknown"), "{err}");
}

#[test]
fn layers_must_match_the_configs_diff_ids() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let good = LayerBuilder::new().file("a", b"a", 0o644).build(Compression::Gzip);
    let other = LayerBuilder::new().file("b", b"b", 0o644).build(Compression::Gzip);
    // The config claims the diff ID of another layer.
    let mut lying = good.clone();
    lying.diff_id = other.diff_id.clone();
    let img = Image::new(vec![lying], Style::Oci, Spec::default());
    img.push(&reg, "lying", "latest");
    let b = Barge::new();
    let err = b.fails(&["pull", &format!("{}/lying", reg.host())]);
    assert!(err.contains("diff ID"), "{err}");
    assert_eq!(b.index()["manifests"].as_array().unwrap().len(), 0, "nothing tagged");
    let snapshots: Vec<_> = std::fs::read_dir(b.root().join("snapshots")).unwrap().collect();
    assert!(snapshots.is_empty(), "no snapshot left: {snapshots:?}");
}

#[test]
fn bad_references_and_missing_images_fail_clearly() {
    let b = Barge::new();
    let err = b.fails(&["pull", "Busybox"]);
    assert!(err.contains("must be lowercase"), "{err}");
    let err = b.fails(&["pull", "busybox:bad tag"]);
    assert!(err.contains("invalid reference format"), "{err}");
    let err = b.fails(&["pull", "--platform", "linux", "busybox@sha256:1234"]);
    assert!(
        err.contains("invalid reference format") || err.contains("digest"),
        "{err}"
    );
    let err = b.fails(&["pull", "--platform", "not a platform", "busybox"]);
    assert!(err.contains("invalid platform"), "{err}");
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let err = b.fails(&["pull", &format!("{}/nothing:here", reg.host())]);
    assert!(err.contains("manifest for") && err.contains("not found"), "{err}");
    // Nothing listens here.
    let err = b.fails(&["pull", &format!("127.0.0.1:{}/x", barge_tests::free_port())]);
    assert!(err.contains("cannot reach registry"), "{err}");
}

/// `-D` prints the cause chain, and each cause once: not again when the
/// message above already says it.
#[test]
fn debug_output_prints_each_cause_once() {
    let server = CannedServer::start(vec![(
        "/v2/broken/manifests/latest",
        Response::new(200, image::OCI_MANIFEST, "{\"schemaVersion\": 2, oops"),
    )]);
    let b = Barge::new();
    let err = b.fails(&["-D", "pull", &format!("{}/broken", server.host())]);
    // The `debug:` line is the error's Debug form: it repeats by design.
    let chain: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("Error: ") || l.starts_with("  caused by: "))
        .collect();
    assert!(chain[0].contains("manifest is not valid JSON"), "{err}");
    let text = chain.join("\n");
    for what in ["manifest is not valid JSON", "key must be a string"] {
        assert_eq!(text.matches(what).count(), 1, "{what:?} once in:\n{err}");
    }
    // Every line of the chain says something the lines above did not.
    for (i, line) in chain.iter().enumerate().skip(1) {
        let cause = line.trim_start_matches("  caused by: ");
        assert!(
            !chain[..i].iter().any(|l| l.contains(cause)),
            "{cause:?} repeated:\n{err}"
        );
    }
}
