//! The layer applier against crafted tarballs, hostile ones included.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use barge_store::apply::{apply_tar, ApplyError, ApplyOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

type Tar = barge_tests::rawtar::RawTar;

fn root() -> ApplyOptions {
    ApplyOptions::for_current_user()
}

fn apply(tar: Tar, dest: &Path) -> Result<barge_store::ApplyStats, ApplyError> {
    apply_tar(&tar.bytes()[..], dest, root())
}

/// A fresh layer directory inside a sandbox whose other contents must stay untouched.
fn sandbox() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let layer = t.path().join("layer");
    std::fs::create_dir(&layer).unwrap();
    std::fs::write(t.path().join("outside"), b"host file").unwrap();
    (t, layer)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn keeps_content_modes_links_times_and_owners() {
    let (_t, layer) = sandbox();
    let tar = Tar::new()
        .dir("etc/", 0o755)
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
        .file("bin/su", b"suid", 0o4755)
        .symlink("bin/sh", "busybox")
        .hardlink("bin/su2", "bin/su")
        .link(tar::EntryType::Fifo, "run/fifo", "")
        .device(tar::EntryType::Char, "dev/null", 1, 3)
        .pax_file(
            "x/attr",
            b"a",
            &[
                ("SCHILY.xattr.user.note", b"hello"),
                ("SCHILY.xattr.trusted.overlay.redirect", b"/evil"),
            ],
        );
    let stats = apply(tar, &layer).unwrap();
    assert_eq!(
        std::fs::read(layer.join("etc/passwd")).unwrap(),
        b"root:x:0:0::/root:/bin/sh\n"
    );
    let su = std::fs::metadata(layer.join("bin/su")).unwrap();
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(su.mtime(), 1_600_000_000);
    assert_eq!(std::fs::read_link(layer.join("bin/sh")).unwrap(), Path::new("busybox"));
    assert_eq!(std::fs::metadata(layer.join("bin/su2")).unwrap().ino(), su.ino());
    assert!(std::fs::symlink_metadata(layer.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        std::fs::metadata(layer.join("etc")).unwrap().mtime(),
        1_600_000_000,
        "directory times are set last"
    );
    assert_eq!(stats.size, 26 + 4 + 1);
    let xattr = rustix::fs::getxattr(layer.join("x/attr"), "user.note", &mut [0u8; 16]);
    if let Ok(n) = xattr {
        assert_eq!(n, 5);
    }
    let mut buf = [0u8; 16];
    assert!(rustix::fs::getxattr(layer.join("x/attr"), "trusted.overlay.redirect", &mut buf).is_err());
    if is_root() {
        assert_eq!((su.uid(), su.gid()), (1000, 1001));
        let null = std::fs::metadata(layer.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    }
}

#[test]
fn whiteouts_and_opaque_dirs_become_overlay_form() {
    let (_t, layer) = sandbox();
    let tar = Tar::new()
        .dir("a/", 0o755)
        .file("a/.wh..wh..opq", b"", 0o644)
        .file("a/keep", b"k", 0o644)
        .file(".wh.gone", b"", 0o644)
        .file("b/.wh.c", b"", 0o644)
        .file("b/.wh..wh.plnk", b"", 0o644);
    let stats = apply(tar, &layer).unwrap();
    assert_eq!(stats.whiteouts, 3);
    for w in ["gone", "b/c"] {
        let md = std::fs::symlink_metadata(layer.join(w)).unwrap();
        assert!(md.file_type().is_char_device(), "{w}");
        assert_eq!(md.rdev(), 0);
    }
    assert!(!layer.join("b/.wh..wh.plnk").exists());
    let mut buf = [0u8; 4];
    let n = rustix::fs::getxattr(layer.join("a"), root().opaque_xattr(), &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert_eq!(std::fs::read(layer.join("a/keep")).unwrap(), b"k");
}

#[test]
fn refuses_paths_that_climb_out() {
    for name in ["../escape", "a/../../escape", "/../escape"] {
        let (t, layer) = sandbox();
        let err = apply(Tar::new().file(name, b"x", 0o644), &layer).unwrap_err();
        assert!(matches!(err, ApplyError::Refused { .. }), "{name}: {err}");
        assert!(!t.path().join("escape").exists());
    }
}

#[test]
fn absolute_names_stay_inside() {
    let (t, layer) = sandbox();
    apply(Tar::new().file("/outside", b"evil", 0o644), &layer).unwrap();
    assert_eq!(std::fs::read(t.path().join("outside")).unwrap(), b"host file");
    assert_eq!(std::fs::read(layer.join("outside")).unwrap(), b"evil");
}

#[test]
fn symlinks_never_lead_out() {
    // A symlink to the host root, to its parent, and a chain; then writes through them.
    let (t, layer) = sandbox();
    let outside = t.path().join("outside");
    let tar = Tar::new()
        .symlink("root", "/")
        .symlink("up", "../..")
        .symlink("chain", "up")
        .symlink("direct", outside.to_str().unwrap())
        .file("root/written-via-root", b"1", 0o644)
        .file("up/written-via-up", b"2", 0o644)
        .file("chain/written-via-chain", b"3", 0o644);
    apply(tar, &layer).unwrap();
    // Everything landed inside the layer (the symlinks resolve against the layer root).
    for f in ["written-via-root", "written-via-up", "written-via-chain"] {
        assert!(layer.join(f).is_file(), "{f}");
        assert!(!t.path().join(f).exists(), "{f} escaped");
        assert!(!Path::new("/").join(f).exists(), "{f} escaped to /");
    }
    // Replacing a symlink that points at a host file replaces the link, not the file.
    apply(Tar::new().file("direct", b"overwrite", 0o600), &layer).unwrap();
    assert_eq!(std::fs::read(&outside).unwrap(), b"host file");
    assert_eq!(std::fs::metadata(&outside).unwrap().permissions().mode() & 0o777, 0o644);
}

#[test]
fn symlink_loops_are_refused() {
    let (_t, layer) = sandbox();
    let tar = Tar::new().symlink("a", "b").symlink("b", "a").file("a/x", b"", 0o644);
    assert!(apply(tar, &layer).is_err());
}

#[test]
fn hardlinks_cannot_reach_host_files() {
    let (t, layer) = sandbox();
    let outside = t.path().join("outside");
    for target in [outside.to_str().unwrap(), "../outside", "/etc/passwd"] {
        let err = apply(Tar::new().hardlink("stolen", target), &layer).unwrap_err();
        assert!(matches!(err, ApplyError::Refused { .. }), "{target}: {err}");
    }
    assert_eq!(std::fs::metadata(&outside).unwrap().nlink(), 1);
    // Through a symlink to the host root: resolved inside the layer, where it does not exist.
    let tar = Tar::new().symlink("r", "/").hardlink("stolen", "r/etc/passwd");
    assert!(apply(tar, &layer).is_err());
    assert_eq!(std::fs::metadata("/etc/passwd").unwrap().nlink(), 1);
}

#[test]
fn hardlink_to_symlink_then_chmod_leaves_the_target_alone() {
    let (t, layer) = sandbox();
    let outside = t.path().join("outside");
    let tar = Tar::new()
        .symlink("s", outside.to_str().unwrap())
        .hardlink("h", "s")
        .file("h", b"replaced", 0o777);
    apply(tar, &layer).unwrap();
    assert_eq!(std::fs::metadata(&outside).unwrap().permissions().mode() & 0o777, 0o644);
    assert_eq!(std::fs::read(&outside).unwrap(), b"host file");
}

#[test]
fn directories_replaced_by_symlinks_do_not_redirect_later_entries() {
    let (t, layer) = sandbox();
    let tar = Tar::new()
        .dir("d/", 0o755)
        .symlink("d", t.path().to_str().unwrap())
        .file("d/planted", b"x", 0o644);
    // The symlink resolves inside the layer, where its target does not exist: refused.
    let err = apply(tar, &layer).unwrap_err();
    assert!(matches!(err, ApplyError::Refused { .. }), "{err}");
    assert!(!t.path().join("planted").exists());
}

#[test]
fn bad_whiteouts_and_devices_are_refused() {
    for name in [".wh..", "a/.wh.."] {
        let (_t, layer) = sandbox();
        assert!(apply(Tar::new().file(name, b"", 0o644), &layer).is_err(), "{name}");
    }
    let (_t, layer) = sandbox();
    // A bare ".wh." names nothing.
    assert!(apply(Tar::new().file(".wh.", b"", 0o644), &layer).is_err());
    let (_t, layer) = sandbox();
    let err = apply(Tar::new().device(tar::EntryType::Block, "dev/big", 0x1000, 0), &layer).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let (_t, layer) = sandbox();
    let tar = Tar::new()
        .file("x", b"first", 0o644)
        .file("x", b"second", 0o600)
        .dir("y/", 0o755)
        .file("y/inner", b"i", 0o644)
        .file("y", b"now a file", 0o644)
        .file(".wh.x", b"", 0o644);
    apply(tar, &layer).unwrap();
    assert!(std::fs::symlink_metadata(layer.join("x"))
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(std::fs::read(layer.join("y")).unwrap(), b"now a file");
}

#[test]
fn sparse_content_keeps_its_length() {
    let (_t, layer) = sandbox();
    let mut data = vec![0u8; 1 << 20];
    data[(1 << 20) - 1] = 1;
    apply(Tar::new().file("sparse", &data, 0o644), &layer).unwrap();
    let md = std::fs::metadata(layer.join("sparse")).unwrap();
    assert_eq!(md.len(), 1 << 20);
    assert!(md.blocks() * 512 < (1 << 20), "zero blocks are holes");
    assert_eq!(std::fs::read(layer.join("sparse")).unwrap(), data);
}

#[test]
fn oversized_extension_headers_are_refused_without_reading_them() {
    for kind in [b'L', b'K', b'x'] {
        let (_t, layer) = sandbox();
        // Declares 512 MiB; the stream ends long before: refused from the size alone.
        let tar = Tar::new().declared_only(kind, "././@LongLink", 512 << 20);
        let err = apply(tar, &layer).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{}: {err}", kind as char);
    }
}

#[test]
fn gnu_sparse_entries_and_overlong_paths_are_refused() {
    let (_t, layer) = sandbox();
    let err = apply(Tar::new().declared_only(b'S', "sparse", 0), &layer).unwrap_err();
    assert!(err.to_string().contains("sparse"), "{err}");

    let (_t, layer) = sandbox();
    let long = "d/".repeat(2100) + "f";
    let tar = Tar::new().pax_file("short", b"x", &[("path", long.as_bytes())]);
    let err = apply(tar, &layer).unwrap_err();
    assert!(err.to_string().contains("longer than 4096"), "{err}");
}

#[test]
fn long_names_and_pax_records_are_applied() {
    let (_t, layer) = sandbox();
    let deep = format!("{}/file", ["segment"; 30].join("/"));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o640);
    h.set_mtime(1_000);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, &deep, &b"long"[..]).unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_uid(0);
    link.set_gid(0);
    link.set_mode(0o777);
    link.set_mtime(1);
    link.set_size(0);
    b.append_link(&mut link, "ln", format!("/{}", "t".repeat(200))).unwrap();
    b.append_pax_extensions([("uid", &b"4242"[..]), ("gid", &b"4343"[..]), ("mtime", &b"-1.5"[..])])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(1);
    h.set_mode(0o600);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "owned", &b"o"[..]).unwrap();
    apply_tar(&b.into_inner().unwrap()[..], &layer, root()).unwrap();
    assert_eq!(std::fs::read(layer.join(&deep)).unwrap(), b"long");
    assert_eq!(
        std::fs::read_link(layer.join("ln")).unwrap().to_str().unwrap().len(),
        201
    );
    let md = std::fs::metadata(layer.join("owned")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (-2, 500_000_000));
    if is_root() {
        assert_eq!((md.uid(), md.gid()), (4242, 4343));
    }
}

#[test]
fn unprivileged_layers_with_read_only_directories_apply() {
    let (_t, layer) = sandbox();
    let tar = Tar::new()
        .dir("./", 0o555)
        .dir("root/", 0o550)
        .file("root/.bashrc", b"# rc", 0o644)
        .dir("etc/", 0o555)
        .file("etc/conf", b"c", 0o444);
    // As a user would: on a thread without the capabilities that let root
    // write into read-only directories (capabilities are per thread).
    let bytes = tar.bytes();
    std::thread::scope(|s| {
        s.spawn(|| {
            use rustix::thread::{capabilities, set_capabilities, CapabilitySet};
            let mut caps = capabilities(None).unwrap();
            let drop = CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH | CapabilitySet::FOWNER;
            caps.effective -= drop;
            set_capabilities(None, caps).unwrap();
            apply_tar(&bytes[..], &layer, ApplyOptions::unprivileged()).unwrap();
        })
        .join()
        .unwrap();
    });
    assert_eq!(std::fs::read(layer.join("root/.bashrc")).unwrap(), b"# rc");
    assert_eq!(
        std::fs::metadata(layer.join("root")).unwrap().permissions().mode() & 0o777,
        0o550
    );
    assert_eq!(
        std::fs::metadata(layer.join("etc")).unwrap().permissions().mode() & 0o777,
        0o555
    );
    assert_eq!(
        std::fs::metadata(&layer).unwrap().permissions().mode() & 0o777,
        0o555,
        "a read-only layer root too, set last"
    );
}

#[test]
fn set_group_id_directories_give_their_group_only_where_the_layer_says() {
    let (_t, layer) = sandbox();
    let mut link = Tar::header(tar::EntryType::Symlink, "s/l", 0o777);
    link.set_link_name("f").unwrap();
    link.set_uid(0);
    link.set_gid(0);
    let tar = Tar::new()
        .dir("s/", 0o2755)
        .owned_file("s/f", b"f", 0o644, 0, 0)
        .raw(link, &[])
        .owned_file("s/g", b"g", 0o644, 1000, 1001)
        .owned_file("plain", b"p", 0o644, 0, 0);
    apply(tar, &layer).unwrap();
    if is_root() {
        let owner = |p: &str| {
            let md = std::fs::symlink_metadata(layer.join(p)).unwrap();
            (md.uid(), md.gid())
        };
        assert_eq!(owner("s"), (1000, 1001));
        assert_eq!(owner("s/f"), (0, 0), "not the directory's group");
        assert_eq!(owner("s/l"), (0, 0), "not the directory's group");
        assert_eq!(owner("s/g"), (1000, 1001));
        assert_eq!(owner("plain"), (0, 0));
    }
}

#[test]
fn entries_replace_earlier_ones_of_another_kind() {
    let (_t, layer) = sandbox();
    let tar = Tar::new()
        .file("a", b"file", 0o644)
        .dir("a/", 0o750)
        .file("a/in", b"in", 0o644)
        .symlink("b", "a")
        .file("b", b"was a link", 0o644)
        .file("c", b"a file", 0o644)
        .symlink("c", "a")
        .dir("d/", 0o755)
        .file("d/x", b"x", 0o644)
        .symlink("d", "a");
    apply(tar, &layer).unwrap();
    let md = std::fs::symlink_metadata(layer.join("a")).unwrap();
    assert!(md.is_dir());
    assert_eq!(md.permissions().mode() & 0o7777, 0o750);
    assert_eq!(std::fs::read(layer.join("a/in")).unwrap(), b"in");
    assert_eq!(std::fs::read(layer.join("b")).unwrap(), b"was a link");
    assert!(std::fs::symlink_metadata(layer.join("b")).unwrap().is_file());
    assert_eq!(std::fs::read_link(layer.join("c")).unwrap(), Path::new("a"));
    assert_eq!(std::fs::read_link(layer.join("d")).unwrap(), Path::new("a"));
}
