//! How barge finds each registry host: one slow host does not hold up the
//! others, and a host it cannot reach gets a hint that fits the cause.

use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::proxy::SlowProxy;
use barge_tests::registry::{Options, Registry};
use barge_tests::{external_ip, free_port, require, require_root_and, Barge};
use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn image(marker: &str) -> Image {
    let layer = LayerBuilder::new()
        .file("marker", marker.as_bytes(), 0o644)
        .build(Compression::Gzip);
    Image::new(vec![layer], Style::Oci, Spec::default())
}

#[test]
fn a_slow_registry_does_not_stall_the_others_in_a_parallel_mirror() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let (slow_src, fast_src, dst) = (Registry::anonymous(), Registry::anonymous(), Registry::anonymous());
    image("slow").push(&slow_src, "app", "v1");
    image("fast").push(&fast_src, "app", "v1");
    // The slow registry takes this long to answer its first request (`GET /v2/`).
    let stall = Duration::from_secs(15);
    let slow = SlowProxy::start(&slow_src.host(), 0);
    slow.stall_next_connection(stall);

    let b = Barge::new();
    let file = b.dir.path().join("mirrors.json");
    std::fs::write(
        &file,
        serde_json::json!({"mirrors": [
            {"source": format!("{}/app:v1", slow.host()), "destination": format!("{}/slow:v1", dst.host())},
            {"source": format!("{}/app:v1", fast_src.host()), "destination": format!("{}/fast:v1", dst.host())},
        ]})
        .to_string(),
    )
    .unwrap();
    let start = Instant::now();
    let mut child = b
        .command()
        .args(["mirror", "-j", "4", "--file", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running barge");
    // When each line came: the fast copy is reported as it finishes.
    let lines: Vec<(Duration, String)> = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .map(|l| (start.elapsed(), l))
        .collect();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{lines:?}\n{stderr}");
    let when = |name: &str| {
        lines
            .iter()
            .find(|(_, l)| l.starts_with("Copied") && l.contains(name))
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no Copied line for {name}: {lines:?}\n{stderr}"))
    };
    let (fast, slow_done) = (when("/fast:v1"), when("/slow:v1"));
    assert!(slow_done >= stall, "the slow registry stalled: {lines:?}");
    assert!(
        fast < stall - Duration::from_secs(5),
        "the normal registry finished in {fast:?}, held up by the slow one's {stall:?}: {lines:?}"
    );
}
#[test]
fn a_name_that_does_not_resolve_gets_a_name_hint() {
    let b = Barge::new();
    let err = b.fails(&["pull", "nonexistent.invalid:5000/x"]);
    assert!(err.contains("cannot reach registry nonexistent.invalid:5000"), "{err}");
    assert!(err.contains("does not resolve"), "{err}");
    assert!(err.contains("check the name"), "{err}");
    assert!(!err.contains("--insecure-registry"), "{err}");
}

#[test]
fn a_port_where_nothing_listens_gets_a_refused_hint() {
    let b = Barge::new();
    let host = format!("127.0.0.1:{}", free_port());
    let err = b.fails(&["pull", &format!("{host}/x")]);
    assert!(err.contains(&format!("cannot reach registry {host}")), "{err}");
    assert!(err.contains("connection refused"), "{err}");
    assert!(err.contains(&format!("nothing listens on {host}")), "{err}");
    assert!(!err.contains("--insecure-registry"), "{err}");
    assert!(!err.contains("check the name"), "{err}");
}

#[test]
fn a_tls_mismatch_gets_the_insecure_registry_hint() {
    if !require_root_and(&["docker-registry", "openssl"]) {
        return;
    }
    let Some(ip) = external_ip() else {
        assert!(require("a non-loopback IPv4 address", false));
        return;
    };
    // Plain HTTP reached as HTTPS, and HTTPS with a certificate nobody signed.
    for tls in [false, true] {
        let reg = Registry::start(Options {
            all_interfaces: true,
            tls,
            ..Options::default()
        });
        let host = format!("{ip}:{}", reg.port);
        let b = Barge::new();
        let err = b.fails(&["pull", &format!("{host}/x")]);
        assert!(err.contains(&format!("cannot reach registry {host}")), "{err}");
        assert!(err.contains("TLS"), "tls {tls}: {err}");
        assert!(
            err.contains(&format!("pass --insecure-registry {host}")),
            "tls {tls}: {err}"
        );
        assert!(!err.contains("nothing listens"), "{err}");
        assert!(!err.contains("check the name"), "{err}");
    }
}
