//! Interrupted and concurrent pulls: `kill -9` mid-blob then resume with
//! `Range`, and two processes pulling one image at once.

use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::proxy::SlowProxy;
use barge_tests::registry::Registry;
use barge_tests::{kill, noise, require_root_and, sha256, wait_within, Barge};
use rustix::process::Signal;
use std::time::Duration;

fn big_image(len: usize, seed: u64) -> (Image, Vec<u8>) {
    let data = noise(len, seed);
    let layer = LayerBuilder::new()
        .file("data/blob.bin", &data, 0o644)
        .build(Compression::Gzip);
    (Image::new(vec![layer], Style::Oci, Spec::default()), data)
}

fn chain_fs(b: &Barge, img: &Image) -> std::path::PathBuf {
    b.root().join("snapshots").join(&img.layers[0].diff_id[7..]).join("fs")
}

#[test]
fn a_pull_killed_mid_blob_resumes_with_a_range_request() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let (img, data) = big_image(24 << 20, 7);
    img.push(&reg, "big", "latest");
    let layer = &img.layers[0];
    let proxy = SlowProxy::start(&reg.host(), 4 << 20);
    let reference = format!("{}/big", proxy.host());
    let b = Barge::new();
    let partial = b.root().join("ingest").join(&layer.digest[7..]);

    let mut child = b
        .command()
        .args(["pull", &reference])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_within("a partial download", Duration::from_secs(30), || {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() > 4 << 20)
    });
    kill(child.id(), Signal::KILL);
    child.wait().unwrap();
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < layer.blob.len() as u64);
    assert!(
        !b.root().join("oci/blobs/sha256").join(&layer.digest[7..]).exists(),
        "no unverified blob is visible"
    );
    assert!(b.index()["manifests"].as_array().unwrap().is_empty(), "nothing tagged");

    proxy.set_rate(0);
    proxy.reset_counters();
    let out = b.run(&["pull", &reference]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Resuming download at byte"), "{err}");
    let requests = proxy.requests().to_ascii_lowercase();
    assert!(
        requests.contains("range: bytes="),
        "a Range request was sent:\n{requests}"
    );
    assert!(
        proxy.sent() < layer.blob.len() as u64,
        "only the rest was fetched: {} of {} bytes",
        proxy.sent(),
        layer.blob.len()
    );
    assert!(!partial.exists(), "the partial file became the blob");
    assert_eq!(
        sha256(&std::fs::read(chain_fs(&b, &img).join("data/blob.bin")).unwrap()),
        sha256(&data)
    );
    let snapshots: Vec<_> = std::fs::read_dir(b.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        snapshots.len(),
        1,
        "the killed run's half-built snapshot is gone: {snapshots:?}"
    );
}

#[test]
fn a_corrupt_partial_download_is_discarded_and_fetched_again() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let (img, data) = big_image(2 << 20, 11);
    img.push(&reg, "corrupt", "latest");
    let b = Barge::new();
    std::fs::create_dir_all(b.root().join("ingest")).unwrap();
    let partial = b.root().join("ingest").join(&img.layers[0].digest[7..]);
    std::fs::write(&partial, vec![0x55; 1 << 20]).unwrap();
    let out = b.run(&["pull", &format!("{}/corrupt", reg.host())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Resuming download at byte 1048576"), "{err}");
    assert_eq!(
        sha256(&std::fs::read(chain_fs(&b, &img).join("data/blob.bin")).unwrap()),
        sha256(&data)
    );
}

#[test]
fn two_pulls_of_one_image_at_once_download_it_once() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let (img, data) = big_image(16 << 20, 3);
    img.push(&reg, "shared", "latest");
    let proxy = SlowProxy::start(&reg.host(), 16 << 20);
    let reference = format!("{}/shared", proxy.host());
    let b = Barge::new();
    let spawn = || {
        b.command()
            .args(["pull", &reference])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (p1, p2) = (spawn(), spawn());
    let (o1, o2) = (p1.wait_with_output().unwrap(), p2.wait_with_output().unwrap());
    for o in [&o1, &o2] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{reference}:latest\n"));
    }
    let layer_len = img.layers[0].blob.len() as u64;
    assert!(
        proxy.sent() < layer_len * 3 / 2,
        "the layer was downloaded once: {} bytes for a {layer_len}-byte layer",
        proxy.sent()
    );
    let blobs: Vec<_> = std::fs::read_dir(b.root().join("oci/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(blobs.len(), 3, "layer, config and manifest, once each: {blobs:?}");
    let leftovers: Vec<_> = std::fs::read_dir(b.root().join("ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let snapshots: Vec<_> = std::fs::read_dir(b.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!(
        sha256(&std::fs::read(chain_fs(&b, &img).join("data/blob.bin")).unwrap()),
        sha256(&data)
    );
    assert_eq!(b.index()["manifests"].as_array().unwrap().len(), 1);
}

#[test]
fn a_connection_cut_mid_blob_is_resumed_within_the_same_pull() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let (img, data) = big_image(8 << 20, 5);
    img.push(&reg, "cut", "latest");
    let proxy = SlowProxy::start(&reg.host(), 0);
    let b = Barge::new();
    // Only the layer download carries this many bytes: that is the connection cut.
    proxy.cut_once_after(3 << 20);
    let out = b.run(&["pull", &format!("{}/cut", proxy.host())]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(proxy.cuts(), 1, "the connection was cut");
    let requests = proxy.requests().to_ascii_lowercase();
    assert!(
        requests.contains("range: bytes="),
        "the rest was asked for with Range:\n{requests}"
    );
    assert!(
        proxy.sent() < (img.layers[0].blob.len() as u64) * 3 / 2,
        "no full second download"
    );
    assert_eq!(
        sha256(&std::fs::read(chain_fs(&b, &img).join("data/blob.bin")).unwrap()),
        sha256(&data)
    );
}

#[test]
fn progress_bars_on_a_terminal() {
    if !require_root_and(&["docker-registry", "script"]) {
        return;
    }
    let reg = Registry::anonymous();
    let (img, _) = big_image(2 << 20, 9);
    img.push(&reg, "bars", "latest");
    let proxy = SlowProxy::start(&reg.host(), 4 << 20);
    let b = Barge::new();
    // script(1) gives barge a pseudo-terminal; its output is what a user would see.
    let out = b.on_terminal(&format!("pull {}/bars", proxy.host())).output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("Downloading ["), "a progress bar was drawn: {screen}");
    assert!(screen.contains("\x1b[2K"), "lines are redrawn in place: {screen:?}");
    assert!(screen.contains("Pull complete"), "{screen}");
}
