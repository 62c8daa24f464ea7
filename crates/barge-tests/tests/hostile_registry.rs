//! Hostile registries and archives through the real binary: text meant to
//! drive the terminal, bodies trickled a byte at a time, listings and
//! token answers without end, compressed archive bombs; and a store whose
//! root was left open to other users.
//!
//! Each test is a regression test of security issue 20 (items 12, 14, 15, 16).

use barge_tests::canned::{CannedServer, Response};
use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::{noise, Barge};
use std::os::unix::fs::PermissionsExt;
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

/// `cmd` run by util-linux's `prlimit`, which holds it to `limit` (a
/// prlimit option such as `--as=2147483648`) from its first instruction.
fn limited(cmd: &Command, limit: &str) -> Command {
    let mut wrapped = Command::new("prlimit");
    wrapped.arg(limit).arg("--").arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
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

    // An image whose config carries them: history, labels, the command.
    let layer = LayerBuilder::new().file("f", b"x", 0o644).build(Compression::Gzip);
    let spec = Spec {
        labels: vec![("evil".into(), ESCAPES.into())],
        cmd: vec![format!("sh{ESCAPES}")],
        history: vec![(format!("RUN {ESCAPES}"), false)],
        ..Spec::default()
    };
    let img = Image::new(vec![layer], Style::Oci, spec);
    let reg = canned_image(&img, |r| r);
    let name = format!("{}/app:v1", reg.host());
    b.ok(&["pull", "-q", &name]);
    assert_inert("history", &b.ok(&["history", "--no-trunc", &name]));
    assert_inert("inspect", &b.ok(&["inspect", &name]));
    assert_inert(
        "inspect --format",
        &b.ok(&["inspect", "--format", "{{.Config.Labels}} {{json .Config.Cmd}}", &name]),
    );
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
    let start = Instant::now();
    let o = limited(&cmd, &format!("--as={}", 2u64 << 30))
        .output()
        .expect("running barge");
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

// ---------------------------------------------------------------- item 14

/// Runs barge held to `max_file` bytes per file written (RLIMIT_FSIZE): an
/// archive decompressed in full to a temporary file kills it (SIGXFSZ).
fn run_capped(b: &Barge, args: &[&str], tmp: &std::path::Path, max_file: u64) -> Output {
    let mut cmd = b.command();
    cmd.args(args).env("TMPDIR", tmp);
    limited(&cmd, &format!("--fsize={max_file}"))
        .output()
        .expect("running barge")
}

/// `len` bytes of `byte` compressed into `path` (gzip or zstd by extension).
fn compressed_bomb(path: &std::path::Path, write: impl FnOnce(&mut dyn std::io::Write)) {
    let f = std::fs::File::create(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::best());
        write(&mut e);
        e.finish().unwrap();
    } else {
        let mut e = zstd::Encoder::new(f, 3).unwrap();
        write(&mut e);
        e.finish().unwrap();
    }
}

/// Nothing is left in the store's ingest area (but its per-blob lock
/// files) or in `$TMPDIR`.
fn assert_nothing_spooled(b: &Barge, tmp: &std::path::Path) {
    for dir in [b.root().join("ingest"), tmp.to_path_buf()] {
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_none_or(|x| x != "lock"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
    }
}

#[test]
fn a_compressed_archive_that_is_no_tar_is_refused_at_its_first_header() {
    let b = Barge::new();
    let tmp = b.dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    for (name, len) in [("bomb.tar.zst", 1u64 << 30), ("bomb.tar.gz", 64 << 20)] {
        let bomb = b.dir.path().join(name);
        compressed_bomb(&bomb, |w| {
            std::io::copy(&mut std::io::Read::take(std::io::repeat(0xff), len), w).unwrap();
        });
        assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20, "{name} is small");
        let start = Instant::now();
        let o = run_capped(&b, &["load", "-i", bomb.to_str().unwrap()], &tmp, 16 << 20);
        let err = stderr(&o);
        assert!(!o.status.success(), "{name}: {err}");
        assert!(err.contains("not a readable tar archive"), "{name}: {err}");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name}: took {:?}",
            start.elapsed()
        );
        assert_nothing_spooled(&b, &tmp);
    }
}

#[test]
fn the_layer_limits_hold_for_the_outer_decompression() {
    let b = Barge::new();
    std::fs::write(
        b.dir.path().join("barge-config/barge.json"),
        r#"{"max-layer-size": 20000000}"#,
    )
    .unwrap();
    let tmp = b.dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // A tar whose one member claims 512 MiB of zeros, zstd-compressed to a few KiB.
    let bomb = b.dir.path().join("bomb.tar.zst");
    compressed_bomb(&bomb, |w| {
        let mut t = tar::Builder::new(w);
        let len = 512u64 << 20;
        let mut h = barge_tests::rawtar::RawTar::header(
            tar::EntryType::Regular,
            &format!("blobs/sha256/{}", "0".repeat(64)),
            0o644,
        );
        h.set_size(len);
        h.set_cksum();
        t.append(&h, std::io::Read::take(std::io::repeat(0), len)).unwrap();
        t.finish().unwrap();
    });
    let archive = bomb.to_str().unwrap();
    for args in [
        vec!["load", "-i", archive],
        vec!["copy", &format!("docker-archive:{archive}"), "oci:/nonexistent/never"],
    ] {
        let o = run_capped(&b, &args, &tmp, 64 << 20);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?}: {err}");
        assert!(err.contains("max-layer-size"), "{args:?}: {err}");
        assert_nothing_spooled(&b, &tmp);
    }
}

#[test]
fn compressed_archives_load_from_a_file_and_from_standard_input() {
    let img = noisy_image();
    let reg = canned_image(&img, |r| r);
    let b = Barge::new();
    let name = format!("{}/app:v1", reg.host());
    b.ok(&["pull", "-q", &name]);
    let plain = b.dir.path().join("app.tar");
    b.ok(&["save", "-o", plain.to_str().unwrap(), &name]);
    let gz = b.dir.path().join("app.tar.gz");
    compressed_bomb(&gz, |w| {
        std::io::copy(&mut std::fs::File::open(&plain).unwrap(), w).unwrap();
    });
    let tmp = b.dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // From a file, from a pipe (`gzip -dc … | barge load`), from a pipe named with -i.
    for how in ["file", "stdin", "-i /dev/stdin"] {
        let fresh = Barge::new();
        let mut cmd = fresh.command();
        cmd.env("TMPDIR", &tmp).stdout(Stdio::piped()).stderr(Stdio::piped());
        match how {
            "file" => cmd.args(["load", "-i", gz.to_str().unwrap()]),
            "stdin" => cmd.args(["load"]).stdin(Stdio::piped()),
            _ => cmd.args(["load", "-i", "/dev/stdin"]).stdin(Stdio::piped()),
        };
        let mut child = cmd.spawn().unwrap();
        if let Some(mut pipe) = child.stdin.take() {
            // barge may stop reading early when it fails: its status says so.
            let _ = std::io::copy(&mut std::fs::File::open(&gz).unwrap(), &mut pipe);
        }
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{how}: {}", stderr(&o));
        assert!(stdout(&o).contains("Loaded image: "), "{}", stdout(&o));
        let id = fresh.ok(&["inspect", "--format", "{{.Id}}", &name]);
        assert_eq!(id.trim(), img.config_digest);
        assert!(fresh.run(&["system", "check"]).status.success());
        assert_nothing_spooled(&fresh, &tmp);
    }
}
