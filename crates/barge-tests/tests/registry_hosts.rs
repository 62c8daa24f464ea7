//! How barge finds each registry host: one slow host does not hold up the
//! others, and a host it cannot reach gets a hint that fits the cause.

use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::proxy::SlowProxy;
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, Barge};
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
