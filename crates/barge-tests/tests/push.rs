//! `barge push` with stored credentials, token scopes and cross-repository mounts.

use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::registry::{Auth, Options, Registry, PASSWORD, USER};
use barge_tests::token::TokenOptions;
use barge_tests::{require_root_and, run_ok, Barge};
use std::process::{Command, Output};

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn login(b: &Barge, host: &str) {
    let o = b.run_with_stdin(&["login", "-u", USER, "--password-stdin", host], PASSWORD);
    assert!(o.status.success(), "{}", err(&o));
}

fn two_layer_image() -> Image {
    let base = LayerBuilder::new()
        .file("base", &[1u8; 100_000], 0o644)
        .build(Compression::Gzip);
    let top = LayerBuilder::new().file("top", b"top", 0o644).build(Compression::Gzip);
    Image::new(vec![base, top], Style::Oci, Spec::default())
}

#[test]
fn push_to_a_basic_auth_registry_with_a_stored_login() {
    if !require_root_and(&["docker-registry", "htpasswd", "skopeo"]) {
        return;
    }
    let source = Registry::anonymous();
    let img = two_layer_image();
    img.push(&source, "app", "v1");
    let dest = Registry::start(Options {
        auth: Auth::Basic,
        ..Options::default()
    });
    let b = Barge::new();
    b.ok(&["pull", "-q", &format!("{}/app:v1", source.host())]);
    let target = format!("{}/team/app:v1", dest.host());
    b.ok(&["tag", &format!("{}/app:v1", source.host()), &target]);

    let e = b.fails(&["push", &target]);
    assert!(e.contains("barge login"), "{e}");
    login(&b, &dest.host());
    let o = b.run(&["push", &target]);
    assert!(o.status.success(), "{}", err(&o));
    let stderr = err(&o);
    assert!(
        stderr.starts_with(&format!("The push refers to repository [{}/team/app]\n", dest.host())),
        "{stderr}"
    );
    for l in &img.layers {
        assert!(stderr.contains(&format!("{}: Pushed", &l.digest[7..19])), "{stderr}");
    }
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("v1: digest: {} size: {}\n", img.manifest_digest, img.manifest.len()),
        "the exact manifest bytes were pushed"
    );
    let inspected = run_ok(
        Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--creds",
                &format!("{USER}:{PASSWORD}"),
            ])
            .arg(format!("docker://{target}")),
    );
    assert_eq!(inspected.as_bytes(), &img.manifest[..]);
    // The pushed reference now knows its repo digest.
    let digests = b.ok(&["inspect", "--format", "{{json .RepoDigests}}", &target]);
    assert!(
        digests.contains(&format!("{}/team/app@{}", dest.host(), img.manifest_digest)),
        "{digests}"
    );

    let o = b.run(&["push", &target]);
    assert!(o.status.success());
    assert!(err(&o).contains(": Layer already exists"), "{}", err(&o));
    assert!(!err(&o).contains(": Pushed"), "{}", err(&o));
}

#[test]
fn token_push_uses_push_scopes_and_mounts_across_repositories() {
    if !require_root_and(&["docker-registry", "openssl", "skopeo"]) {
        return;
    }
    let source = Registry::anonymous();
    let img = two_layer_image();
    img.push(&source, "app", "v1");
    let dest = Registry::start(Options {
        auth: Auth::Token(TokenOptions::default()),
        ..Options::default()
    });
    let b = Barge::new();
    b.ok(&["pull", "-q", &format!("{}/app:v1", source.host())]);
    let first = format!("{}/one:v1", dest.host());
    let second = format!("{}/two:v1", dest.host());
    b.ok(&["tag", &format!("{}/app:v1", source.host()), &first]);
    b.ok(&["tag", &format!("{}/app:v1", source.host()), &second]);

    let e = b.fails(&["push", &first]);
    assert!(
        e.contains("denied") && e.contains("barge login"),
        "anonymous push is refused: {e}"
    );
    login(&b, &dest.host());
    b.ok(&["push", &first]);
    let o = b.run(&["push", &second]);
    assert!(o.status.success(), "{}", err(&o));
    for l in &img.layers {
        assert!(
            err(&o).contains(&format!("{}: Mounted from one", &l.digest[7..19])),
            "{}",
            err(&o)
        );
    }
    let log = dest.token.as_ref().unwrap().log();
    assert!(
        log.iter()
            .any(|r| r.scopes.contains(&"repository:one:pull,push".to_string())),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|r| r.scopes.contains(&"repository:two:pull,push".to_string())
                && r.scopes.contains(&"repository:one:pull".to_string())),
        "one token covers the target and the mount source: {log:?}"
    );
    // skopeo, through the same token flow, reads the exact manifest pushed.
    let inspected = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &format!("{USER}:{PASSWORD}"),
        &format!("docker://{second}"),
    ]));
    assert_eq!(inspected.as_bytes(), &img.manifest[..]);
    // The mounted image is whole: another store can pull it.
    let b2 = Barge::new();
    login(&b2, &dest.host());
    b2.ok(&["pull", "-q", &second]);
}

#[test]
fn pushing_what_is_not_stored_fails_clearly() {
    let b = Barge::new();
    let e = b.fails(&["push", "127.0.0.1:1/nothing:here"]);
    assert!(
        e.contains("An image does not exist locally with the tag: 127.0.0.1:1/nothing:here"),
        "{e}"
    );
}

#[test]
fn push_all_tags_sends_every_stored_tag_of_the_repository() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let source = Registry::anonymous();
    let dest = Registry::anonymous();
    two_layer_image().push(&source, "app", "v1");
    let b = Barge::new();
    let pulled = format!("{}/app:v1", source.host());
    b.ok(&["pull", "-q", &pulled]);
    let repo = format!("{}/many", dest.host());
    for tag in ["v1", "v2", "latest"] {
        b.ok(&["tag", &pulled, &format!("{repo}:{tag}")]);
    }
    b.ok(&["tag", &pulled, &format!("{}/other:v9", dest.host())]);
    let out = b.ok(&["push", "--all-tags", &repo]);
    for tag in ["latest", "v1", "v2"] {
        assert!(out.contains(&format!("{tag}: digest: sha256:")), "{out}");
    }
    assert_eq!(
        barge_tests::skopeo_tags(&repo),
        ["latest", "v1", "v2"],
        "only this repository's tags"
    );
    let e = b.fails(&["push", "-a", &format!("{repo}:v1")]);
    assert!(e.contains("tag can't be used with --all-tags"), "{e}");
    let e = b.fails(&["push", "-a", &format!("{}/none", dest.host())]);
    assert!(e.contains("does not exist locally"), "{e}");
}

/// A stored image built by barge with one layer per entry of `layers_mib`,
/// each that many MiB of random bytes.
fn random_image(b: &Barge, name: &str, layers_mib: &[usize]) {
    let ctx = tempfile::tempdir().unwrap();
    let mut dockerfile = String::from("FROM scratch\n");
    for (i, mib) in layers_mib.iter().enumerate() {
        let mut data = vec![0u8; mib << 20];
        let mut seed = 0x9e3779b97f4a7c15u64 ^ ((i as u64) << 32) ^ *mib as u64;
        for chunk in data.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(ctx.path().join(format!("random{i}.bin")), &data).unwrap();
        dockerfile.push_str(&format!("COPY random{i}.bin /random{i}.bin\n"));
    }
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    b.ok(&["build", "-q", "-t", name, ctx.path().to_str().unwrap()]);
}

#[test]
fn push_falls_back_to_chunks_when_the_registry_refuses_big_bodies() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    // Bodies above 1 MiB get 413; sessions announce a 256 KiB minimum chunk.
    let front = barge_tests::limit::BodyLimit::start(&reg.host(), 1 << 20, Some(256 << 10));
    let b = Barge::new();
    let name = format!("{}/chunked:1", front.host());
    random_image(&b, &name, &[3]);
    let o = b.run(&["push", &name]);
    assert!(o.status.success(), "{}", err(&o));
    let seen = front.seen();
    assert!(
        seen.iter().any(|r| r.method == "PUT" && r.status == 413),
        "the monolithic upload was refused: {seen:?}"
    );
    let patches: Vec<_> = seen.iter().filter(|r| r.method == "PATCH" && r.status == 202).collect();
    assert!(patches.len() >= 3, "{seen:?}");
    let total: u64 = patches.iter().map(|r| r.length).sum();
    let refused = seen
        .iter()
        .find(|r| r.method == "PUT" && r.status == 413)
        .map(|r| r.length);
    assert_eq!(Some(total), refused, "every byte of the layer once: {seen:?}");
    for p in &patches[..patches.len() - 1] {
        assert!(p.length >= 256 << 10 && p.length <= 1 << 20, "{p:?}");
    }
    // What the registry holds is the image, byte for byte.
    let local = b.ok(&["inspect", "--format", "{{.Descriptor.digest}}", &name]);
    let remote = run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{}/chunked:1", reg.host()),
    ]));
    assert_eq!(local.trim(), remote.trim());
    let other = Barge::new();
    other.ok(&["pull", "-q", &format!("{}/chunked:1", reg.host())]);
    assert_eq!(
        other.ok(&["inspect", "--format", "{{.Id}}", &format!("{}/chunked:1", reg.host())]),
        b.ok(&["inspect", "--format", "{{.Id}}", &name])
    );
}

#[test]
fn an_interrupted_push_sends_only_what_is_missing_when_run_again() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let proxy = barge_tests::proxy::SlowProxy::start(&reg.host(), 0);
    // Slow enough that the third layer is still on its way when a loaded
    // machine gets round to the kill.
    proxy.set_upload_rate(8 << 20);
    let b = Barge::new();
    let name = format!("{}/resumed:1", proxy.host());
    random_image(&b, &name, &[8, 8, 8]);
    let mut child = b
        .command()
        .args(["push", "--max-concurrent-uploads", "1", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Two layers through, the third on its way: kill -9.
    while proxy.received() < 20 << 20 {
        assert!(std::time::Instant::now() < deadline, "the push did not get going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // What the dead client left in socket buffers drains through the proxy first.
    proxy.set_upload_rate(0);
    let mut last = proxy.received();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = proxy.received();
        if now == last {
            break;
        }
        last = now;
    }
    proxy.reset_counters();
    let o = b.run(&["push", &name]);
    assert!(o.status.success(), "{}", err(&o));
    let stderr = err(&o);
    assert_eq!(stderr.matches(": Layer already exists").count(), 2, "{stderr}");
    assert_eq!(stderr.matches(": Pushed").count(), 1, "{stderr}");
    let again = proxy.received();
    assert!(
        again < 9 << 20,
        "the second run sent {again} bytes: only the third layer was missing"
    );
    let remote = run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{}/resumed:1", reg.host()),
    ]));
    assert_eq!(
        remote.trim(),
        b.ok(&["inspect", "--format", "{{.Descriptor.digest}}", &name]).trim()
    );
    // The blobs are whole: a pull elsewhere verifies every digest.
    Barge::new().ok(&["pull", "-q", &format!("{}/resumed:1", reg.host())]);
}
