//! Hostile registries and archives through the real binary: text meant to
//! drive the terminal, bodies trickled a byte at a time, listings and
//! token answers without end, compressed archive bombs; and a store whose
//! root was left open to other users.

use barge_tests::canned::{CannedServer, Response};
use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::{noise, Barge};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Terminal escapes a registry might send: erase the line, move up, set the
/// window title, ring the bell, a C1 CSI, a bidi override.
const ESCAPES: &str = "\u{1b}[2K\r\u{1b}[1A\u{1b}]0;pwned\u{7}\u{9b}31m\u{202e}";

/// A registry error body whose message tries to rewrite the terminal.
fn hostile_errors(code: &str) -> String {
    serde_json::json!({"errors": [{
        "code": format!("{code}{ESCAPES}"),
        "message": format!("{ESCAPES}Login Succeeded\n"),
    }]})
    .to_string()
}

/// No byte of `text` can drive a terminal: no C0 but newline, no DEL, no
/// C1, no bidi override; and the escapes are still visible, written out.
fn assert_inert(what: &str, text: &str) {
    for c in text.chars() {
        assert!(
            c == '\n' || !(c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "{what}: raw {c:?} reaches the terminal:\n{text:?}"
        );
    }
    assert!(
        text.contains("\\x1b[2K"),
        "{what}: the escape is shown, not dropped: {text:?}"
    );
}

/// Runs barge; kills it if it is still running after `limit`.
fn run_within(b: &Barge, args: &[&str], limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = b
        .command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running barge");
    loop {
        if child.try_wait().expect("waiting for barge").is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().expect("barge output");
            panic!(
                "barge {args:?} still running after {limit:?}:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (child.wait_with_output().expect("barge output"), start.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
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

// ---------------------------------------------------------------- item 12

#[test]
fn registry_text_cannot_drive_the_terminal() {
    // A login rejected with a 401 whose body tries to print "Login Succeeded".
    let reg = CannedServer::start(vec![(
        "/v2/",
        Response::new(401, "application/json", hostile_errors("UNAUTHORIZED"))
            .header("WWW-Authenticate", r#"Basic realm="hostile""#),
    )]);
    let b = Barge::new();
    let o = b.run_with_stdin(&["login", "-u", "user", "--password-stdin", &reg.host()], "secret\n");
    assert!(!o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("Login Succeeded"), "{}", stdout(&o));
    assert_inert("login", &stderr(&o));

    // A pull whose manifest request is answered with such an error.
    let reg = CannedServer::start(vec![(
        "/v2/app/manifests/v1",
        Response::new(400, "application/json", hostile_errors("DENIED")),
    )]);
    let o = b.run(&["pull", &format!("{}/app:v1", reg.host())]);
    assert!(!o.status.success(), "{}", stderr(&o));
    assert_inert("pull", &stderr(&o));
    assert_inert(
        "pull --debug",
        &stderr(&b.run(&["--debug", "pull", &format!("{}/app:v1", reg.host())])),
    );

    // A token server that refuses with one, behind a Bearer challenge.
    let tokens = CannedServer::start(vec![(
        "/token",
        Response::new(401, "application/json", hostile_errors("UNAUTHORIZED")),
    )]);
    let realm = format!(r#"Bearer realm="http://{}/token",service="hostile""#, tokens.host());
    let reg = CannedServer::start(vec![(
        "/v2/",
        Response::new(401, "application/json", "{}").header("WWW-Authenticate", &realm),
    )]);
    let o = b.run(&["pull", &format!("{}/app:v1", reg.host())]);
    assert!(!o.status.success(), "{}", stderr(&o));
    assert_inert("token", &stderr(&o));
}

// ---------------------------------------------------------------- item 15

#[test]
fn a_registry_trickling_bytes_is_given_up_at_the_minimum_speed() {
    let img = noisy_image();
    let b = Barge::new();
    std::fs::write(
        b.dir.path().join("barge-config/barge.json"),
        r#"{"low-speed-limit": 1000, "low-speed-time": 3}"#,
    )
    .unwrap();

    // A layer sent one byte every 100 ms: no read ever times out.
    let reg = canned_image(&img, |r| r.trickled(Duration::from_millis(100)));
    let (o, took) = run_within(
        &b,
        &["pull", &format!("{}/app:v1", reg.host())],
        Duration::from_secs(60),
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("too slowly") && err.contains("low-speed-limit"), "{err}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(b.ok(&["images", "-q"]).trim().is_empty(), "nothing tagged");
    assert!(b.run(&["system", "check"]).status.success());

    // A manifest sent the same way.
    let reg = CannedServer::start(vec![(
        "/v2/app/manifests/v1",
        Response::new(200, img.media_type, img.manifest.clone()).trickled(Duration::from_millis(100)),
    )]);
    let (o, _) = run_within(
        &b,
        &["pull", &format!("{}/app:v1", reg.host())],
        Duration::from_secs(60),
    );
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("manifest from") && err.contains("too slowly"),
        "{err}"
    );

    // Fast enough, the same limits let a pull through.
    let reg = canned_image(&img, |r| r);
    let (o, _) = run_within(
        &b,
        &["pull", &format!("{}/app:v1", reg.host())],
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_oversized_token_answer_is_named_for_what_it_is() {
    let huge_token = serde_json::json!({"token": "t".repeat(512 * 1024)}).to_string();
    let huge_reply = serde_json::json!({"token": "t", "padding": "p".repeat(2 << 20)}).to_string();
    for (what, body, expected) in [
        ("a token too long for any header", huge_token, "token from 127.0.0.1"),
        (
            "a reply over the limit",
            huge_reply,
            "token server reply from 127.0.0.1",
        ),
    ] {
        let tokens = CannedServer::start(vec![("/token", Response::new(200, "application/json", body))]);
        let realm = format!(r#"Bearer realm="http://{}/token",service="big""#, tokens.host());
        let reg = CannedServer::start(vec![(
            "/v2/",
            Response::new(401, "application/json", "{}").header("WWW-Authenticate", &realm),
        )]);
        let b = Barge::new();
        let err = b.fails(&["pull", &format!("{}/app:v1", reg.host())]);
        assert!(
            err.contains(expected) && err.contains("is larger than"),
            "{what}: {err}"
        );
        assert!(!err.contains("cannot reach"), "{what}: {err}");
    }
}

#[test]
fn endless_tag_pagination_stops_at_a_bound() {
    // Every page is 1 MiB of tags and points at a next one, forever.
    let tags: Vec<String> = (0..10_000).map(|i| format!("{i:0>110}")).collect();
    let page = serde_json::json!({"name": "app", "tags": tags}).to_string();
    assert!(page.len() > 1 << 20);
    let reg = CannedServer::start(vec![(
        "/v2/app/tags/list",
        Response::new(200, "application/json", page).header("Link", r#"</v2/app/tags/list?n=1000&last=x>; rel="next""#),
    )]);
    let b = Barge::new();
    let mut cmd = b.command();
    cmd.args([
        "mirror",
        "--dry-run",
        &format!("{}/app", reg.host()),
        &format!("{}/copy/", reg.host()),
    ]);
    // Held to 2 GiB of address space: the unbounded listing fails here, not the machine.
    // SAFETY: setrlimit is async-signal-safe and touches only this child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 2 << 30,
                rlim_max: 2 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let o = cmd.output().expect("running barge");
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("tags/list listing") && err.contains("is larger than"),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(60), "took {:?}", start.elapsed());
    let pages = reg.requests().iter().filter(|r| r.path.contains("tags/list")).count();
    assert!(pages <= 40, "{pages} pages fetched");
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
