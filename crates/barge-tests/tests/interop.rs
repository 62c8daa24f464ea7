//! Independent tools agree with barge: skopeo reads barge's store, and the
//! overlay of barge's snapshots shows what `umoci unpack` produces.

use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, run_ok, sha256, Barge};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn skopeo_reads_the_store() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = Image::simple(Style::Oci, Compression::Gzip, "skopeo");
    img.push(&reg, "readable", "v1");
    let b = Barge::new();
    let reference = format!("{}/readable:v1", reg.host());
    b.ok(&["pull", "-q", &reference]);
    let layout = b.root().join("oci");
    let source = format!("oci:{}:{reference}", layout.display());
    let inspected: serde_json::Value =
        serde_json::from_str(&run_ok(Command::new("skopeo").args(["inspect", &source]))).unwrap();
    assert_eq!(inspected["Digest"], img.manifest_digest.as_str());
    let out = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:copied", out.path().display());
    run_ok(Command::new("skopeo").args(["copy", "--quiet", "--preserve-digests", &source, &dest]));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], img.manifest_digest.as_str());
    assert!(out
        .path()
        .join("blobs/sha256")
        .join(&img.layers[0].digest[7..])
        .is_file());
}

/// A three-layer image exercising whiteouts, opaque dirs, links, modes and owners.
fn layered_image() -> Image {
    let l1 = LayerBuilder::new()
        .dir("etc/", 0o755)
        .file("etc/hosts", b"127.0.0.1 localhost\n", 0o644)
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
        .file("usr/bin/su", b"setuid", 0o4755)
        .symlink("usr/bin/alias", "tool")
        .hardlink("usr/bin/tool2", "usr/bin/tool")
        .dir("var/", 0o755)
        .dir("var/lib/", 0o755)
        .dir("var/lib/app/", 0o750)
        .file_owned("var/lib/app/data1", b"one", 0o640, 1000, 1000)
        .file("var/lib/app/data2", b"two", 0o600)
        .dir("opt/", 0o755)
        .dir("opt/x/", 0o755)
        .file("opt/x/old", b"old", 0o644)
        .fifo("run/fifo")
        .build(Compression::Gzip);
    let l2 = LayerBuilder::new()
        .whiteout("etc/passwd")
        .file("etc/hosts", b"127.0.0.1 localhost barge\n", 0o644)
        .dir("var/lib/app/", 0o755)
        .opaque("var/lib/app")
        .file("var/lib/app/fresh", b"fresh", 0o644)
        .file("usr/bin/alias", b"now a file", 0o755)
        .symlink("bin", "usr/bin")
        // umoci 0.4 reads gzip and plain layers only.
        .build(Compression::Gzip);
    let l3 = LayerBuilder::new()
        .whiteout("opt")
        .dir("opt2/", 0o755)
        .file("opt2/y", b"y", 0o644)
        .dir("etc/", 0o700)
        .build(Compression::None);
    Image::new(vec![l1, l2, l3], Style::Oci, Spec::default())
}

/// Everything about a tree that an image defines, path by path.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let ft = md.file_type();
            let what = if ft.is_symlink() {
                format!("symlink -> {}", std::fs::read_link(&path).unwrap().display())
            } else if ft.is_dir() {
                stack.push(path.clone());
                "dir".to_string()
            } else if ft.is_file() {
                format!(
                    "file {} {} mtime={} links={}",
                    md.len(),
                    sha256(&std::fs::read(&path).unwrap()),
                    md.mtime(),
                    md.nlink()
                )
            } else {
                format!("special {:o}", md.mode() & 0o170000)
            };
            let perm = if ft.is_symlink() {
                0
            } else {
                md.permissions().mode() & 0o7777
            };
            out.insert(rel, format!("{what} mode={perm:o} owner={}:{}", md.uid(), md.gid()));
        }
    }
    out
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn overlay_of_snapshots_matches_umoci_unpack() {
    if !require_root_and(&["docker-registry", "umoci", "mount"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = layered_image();
    img.push(&reg, "layered", "latest");
    let b = Barge::new();
    let reference = format!("{}/layered", reg.host());
    b.ok(&["pull", "-q", &reference]);

    // umoci unpacks the same image from an OCI layout.
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    img.write_layout(&layout, "latest");
    let bundle = work.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image", &format!("{}:latest", layout.display())])
            .arg(&bundle),
    );

    // barge's snapshots, stacked by overlayfs, top layer first.
    let mut chain = img.layers[0].diff_id.clone();
    let mut lowers = vec![b.root().join("snapshots").join(&chain[7..]).join("fs")];
    for l in &img.layers[1..] {
        chain = sha256(format!("{chain} {}", l.diff_id).as_bytes());
        lowers.push(b.root().join("snapshots").join(&chain[7..]).join("fs"));
    }
    lowers.reverse();
    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let lowerdir = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    run_ok(
        Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &format!("ro,lowerdir={lowerdir}")])
            .arg(&mnt),
    );
    let _unmount = Mount(mnt.clone());

    let ours = describe(&mnt);
    let theirs = describe(&bundle.join("rootfs"));
    // Directory modes of implicitly created parents and dir mtimes differ by tool; everything else must agree.
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "same paths"
    );
    for (path, t) in &theirs {
        assert_eq!(ours.get(path), Some(t), "{path}");
    }
    assert!(
        !ours.contains_key("etc/passwd") && !ours.contains_key("opt"),
        "whiteouts hide lower files"
    );
    assert!(
        !ours.contains_key("var/lib/app/data1"),
        "opaque directory hides lower content"
    );
    assert!(ours["usr/bin/su"].contains("mode=4755"), "{}", ours["usr/bin/su"]);
    assert!(ours["var/lib/app/fresh"].contains("owner=0:0"));
}
