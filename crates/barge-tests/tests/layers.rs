//! Images of many layers: up to docker's overlay2 depth (127 image
//! layers) run from a store with a long root path; more are refused with a
//! clear message before anything is mounted.

use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, Barge, User};

/// An image of `n` layers: busybox and `/etc/gone` at the bottom, one file
/// `/layer/<i>` per layer above, and a whiteout of `/etc/gone` in the
/// second-highest layer.
fn many_layers(n: usize) -> Image {
    let busybox = std::fs::read("/bin/busybox").expect("reading /bin/busybox");
    let mut layers = vec![LayerBuilder::new()
        .dir("bin/", 0o755)
        .file("bin/busybox", &busybox, 0o755)
        .dir("etc/", 0o755)
        .file("etc/gone", b"lower\n", 0o644)
        .dir("layer/", 0o755)
        .file("layer/0", b"layer 0\n", 0o644)
        .build(Compression::Gzip)];
    for i in 1..n {
        let mut l = LayerBuilder::new().dir("layer/", 0o755).file(
            &format!("layer/{i}"),
            format!("layer {i}\n").as_bytes(),
            0o644,
        );
        if i == n - 2 {
            l = l.whiteout("etc/gone");
        }
        layers.push(l.build(Compression::Gzip));
    }
    let spec = Spec {
        cmd: vec!["/bin/busybox".into(), "sh".into()],
        ..Spec::default()
    };
    Image::new(layers, Style::Oci, spec)
}

/// Pulls an image of `n` layers into a store with a ~100-character root.
fn pulled(n: usize) -> Option<(Registry, Barge, String)> {
    if !require_root_and(&["docker-registry"]) {
        return None;
    }
    let reg = Registry::anonymous();
    many_layers(n).push(&reg, "deep", "latest");
    let b = Barge::with_long_root(100);
    assert!(b.root().as_os_str().len() >= 95, "{}", b.root().display());
    let image = format!("{}/deep", reg.host());
    b.ok(&["pull", "-q", &image]);
    Some((reg, b, image))
}

fn runs_all_layers(n: usize) {
    let Some((_reg, b, image)) = pulled(n) else { return };
    shows_all_layers(&b, &image, n, None);
    let links = || std::fs::read_dir(b.root().join("l")).unwrap().count();
    assert_eq!(links(), n, "one short link per layer");
    b.ok(&["rmi", &image]);
    assert_eq!(links(), 0, "the links go with the snapshots");
}

/// Runs `image` of `n` layers (with `overlay` as `BARGE_OVERLAY`) and
/// checks the bottom and top files, the count, the whiteout, and the
/// root's filesystem type (`fuse.fuse-overlayfs` or `overlay`).
fn shows_all_layers(b: &Barge, image: &str, n: usize, overlay: Option<&str>) {
    let top = n - 1;
    let script = format!(
        "cat /layer/0 /layer/{top}; ls /layer | wc -l; test -e /etc/gone || echo gone; \
         grep ' / ' /proc/mounts | cut -d' ' -f3"
    );
    let mut cmd = b.command();
    if let Some(o) = overlay {
        cmd.env("BARGE_OVERLAY", o);
    }
    let out = barge_tests::run_ok(cmd.args(["run", "--rm", image, "/bin/busybox", "sh", "-c", &script]));
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        [
            "layer",
            "0",
            "layer",
            &top.to_string(),
            &n.to_string(),
            "gone",
            if overlay.is_some() {
                "fuse.fuse-overlayfs"
            } else {
                "overlay"
            }
        ],
        "{out}"
    );
}

#[test]
fn an_image_of_100_layers_runs() {
    runs_all_layers(100);
}

#[test]
fn an_image_of_127_layers_runs() {
    runs_all_layers(127);
}

#[test]
fn an_image_of_128_layers_is_refused_clearly() {
    let Some((_reg, b, image)) = pulled(128) else { return };
    let out = b.run(&["run", "--rm", &image, "/bin/busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("128 layers") && err.contains("at most 127"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn rootless_runs_127_layers_with_kernel_overlay_and_fuse_overlayfs() {
    let tools = ["docker-registry", "runuser", "useradd", "newuidmap", "fuse-overlayfs"];
    if !require_root_and(&tools) {
        return;
    }
    let reg = Registry::anonymous();
    many_layers(127).push(&reg, "deep", "latest");
    let b = Barge::as_user(&User::ensure("barge-rootless", Some(600000)));
    let image = format!("{}/deep", reg.host());
    b.ok(&["pull", "-q", &image]);
    shows_all_layers(&b, &image, 127, None);
    shows_all_layers(&b, &image, 127, Some("fuse-overlayfs"));
}
