//! The registry toolkit against registries that want a login: htpasswd
//! (Basic) and a token server (Bearer, scopes per repository). Every verb
//! works once logged in, and says what to do when not.

use barge_tests::image::{Compression, Image, Style};
use barge_tests::registry::{Auth, Options, Registry, PASSWORD, USER};
use barge_tests::token::TokenOptions;
use barge_tests::{require_root_and, stderr_of, Barge};

fn verbs_work_once_logged_in(reg: &Registry) {
    let host = reg.host();
    let img = Image::simple(Style::Docker, Compression::Gzip, "auth");
    img.push(reg, "team/app", "v1");
    let app = format!("{host}/team/app:v1");
    let b = Barge::new();

    // Logged out: one line that names the registry and the way in, exit 1.
    for args in [
        vec!["manifest", "inspect", app.as_str()],
        vec!["inspect", "--remote", app.as_str()],
        vec!["digest", app.as_str()],
        vec!["config", app.as_str()],
    ] {
        let o = b.run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr_of(&o));
        let err = stderr_of(&o);
        assert!(err.contains("barge login") && err.contains(&host), "{args:?}: {err}");
    }

    let o = b.run_with_stdin(&["login", "-u", USER, "--password-stdin", &host], PASSWORD);
    assert!(o.status.success(), "login: {}", stderr_of(&o));
    assert_eq!(b.ok(&["digest", &app]).trim(), img.manifest_digest);
    let raw = b
        .command()
        .args(["manifest", "inspect", "--raw", &app])
        .output()
        .expect("manifest inspect");
    assert!(raw.status.success(), "{}", stderr_of(&raw));
    assert_eq!(raw.stdout, img.manifest);
    assert_eq!(b.ok(&["config", &app]).as_bytes(), &img.config[..]);
    let inspected: serde_json::Value =
        serde_json::from_str(&b.ok(&["inspect", "--remote", &app])).expect("inspect JSON");
    assert_eq!(inspected["Digest"], img.manifest_digest.as_str());
    assert_eq!(inspected["RepoTags"], serde_json::json!(["v1"]));
    assert_eq!(b.ok(&["tags", &format!("{host}/team/app")]), "v1\n");
    let blob = b
        .command()
        .args(["blob", &format!("{host}/team/app@{}", img.layers[0].digest)])
        .output()
        .expect("blob");
    assert!(blob.status.success(), "{}", stderr_of(&blob));
    assert_eq!(blob.stdout, img.layers[0].blob);
    b.ok(&["tag", "--remote", &app, "v2"]);
    assert_eq!(
        b.ok(&["digest", &format!("{host}/team/app:v2")]).trim(),
        img.manifest_digest
    );

    // An artifact with the image as subject, found as its referrer.
    let dir = tempfile::tempdir().expect("temp dir");
    let sbom = dir.path().join("sbom.json");
    std::fs::write(&sbom, br#"{"spdxVersion":"SPDX-2.3"}"#).expect("sbom");
    b.ok(&[
        "artifact",
        "push",
        "--artifact-type",
        "application/spdx+json",
        "--subject",
        &app,
        &format!("{host}/team/app"),
        sbom.to_str().expect("path"),
    ]);
    let referrers = b.ok(&["referrers", &app]);
    assert!(referrers.contains("application/spdx+json"), "{referrers}");

    // A mirror to another repository of the same registry, then delete.
    let out = b.run(&["mirror", &format!("{host}/team/app"), &format!("{host}/copy/app")]);
    assert!(out.status.success(), "mirror: {}", stderr_of(&out));
    assert_eq!(
        b.ok(&["digest", &format!("{host}/copy/app:v1")]).trim(),
        img.manifest_digest
    );
    b.ok(&["delete", &format!("{host}/copy/app:v1")]);
    let o = b.run(&["digest", &format!("{host}/copy/app:v1")]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn toolkit_verbs_on_a_basic_auth_registry() {
    if !require_root_and(&["docker-registry", "htpasswd"]) {
        return;
    }
    verbs_work_once_logged_in(&Registry::start(Options {
        auth: Auth::Basic,
        ..Options::default()
    }));
}

#[test]
fn toolkit_verbs_on_a_token_registry() {
    if !require_root_and(&["docker-registry", "openssl"]) {
        return;
    }
    verbs_work_once_logged_in(&Registry::start(Options {
        auth: Auth::Token(TokenOptions::default()),
        ..Options::default()
    }));
}
