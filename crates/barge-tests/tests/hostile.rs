//! Hostile layers through the real binary: a corpus of crafted tarballs,
//! each pulled from a registry, loaded from a `docker save` archive and
//! added with `ADD` in a build. Each is refused with one clear error or
//! applied inside its snapshot; a host directory the entries aim at stays
//! exactly as it was, and `barge system check` finds the store consistent.

use barge_tests::image::{Compression, Image, Layer, Spec, Style};
use barge_tests::rawtar::RawTar;
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, sha256, Barge};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Output;

/// What must come of a case.
enum Expect {
    /// The command fails, saying this.
    Refused(&'static str),
    /// The command succeeds; the check runs on the top layer's snapshot.
    Applied(fn(&Path, &Path)),
    /// Either, as long as nothing escapes.
    Either,
}

struct Case {
    name: &'static str,
    /// Each layer's uncompressed tar.
    layers: Vec<Vec<u8>>,
    expect: Expect,
}

/// Every name that escapes carries this prefix, so a stray one is found.
const MARK: &str = "barge-hostile-";

/// The corpus; `host` is the absolute path of the directory entries aim at.
fn corpus(host: &Path) -> Vec<Case> {
    let h = host.to_str().expect("utf-8 path");
    let deep_up = "../".repeat(12);
    let one = |name, tar: RawTar, expect| Case {
        name,
        layers: vec![tar.bytes()],
        expect,
    };
    vec![
        one(
            "dotdot",
            RawTar::new().file(&format!("{deep_up}{h}/{MARK}dotdot"), b"x", 0o644),
            Expect::Refused("refused"),
        ),
        one(
            "dotdot-inside",
            RawTar::new().file(&format!("a/../../{MARK}dotdot2"), b"x", 0o644),
            Expect::Refused("refused"),
        ),
        one(
            "absolute",
            RawTar::new().file(&format!("{h}/{MARK}abs"), b"abs", 0o644),
            Expect::Applied(|fs, host| {
                let inside = fs.join(host.strip_prefix("/").unwrap()).join(format!("{MARK}abs"));
                assert_eq!(std::fs::read(inside).unwrap(), b"abs", "an absolute name lands inside");
            }),
        ),
        one(
            "symlink-to-root",
            RawTar::new()
                .symlink("r", "/")
                .file(&format!("r{h}/{MARK}via-root"), b"r", 0o644),
            Expect::Either,
        ),
        one(
            "symlink-to-root-then-tmp",
            RawTar::new()
                .dir("tmp/", 0o1777)
                .symlink("r", "/")
                .file(&format!("r/tmp/{MARK}via-root-tmp"), b"r", 0o644),
            Expect::Applied(|fs, _| {
                assert_eq!(std::fs::read(fs.join(format!("tmp/{MARK}via-root-tmp"))).unwrap(), b"r");
            }),
        ),
        one(
            "symlink-up",
            RawTar::new()
                .dir("x/", 0o755)
                .symlink("x/up", "../../../../../../..")
                .file(&format!("x/up/{MARK}via-up"), b"u", 0o644),
            Expect::Applied(|fs, _| {
                assert!(
                    fs.join(format!("{MARK}via-up")).is_file(),
                    "resolved against the layer root"
                );
            }),
        ),
        one(
            "symlink-chain-to-host",
            RawTar::new().symlink("a", "b").symlink("b", "c").symlink("c", h).file(
                &format!("a/{MARK}chain"),
                b"c",
                0o644,
            ),
            Expect::Either,
        ),
        one(
            "symlink-loop",
            RawTar::new()
                .symlink("l1", "l2")
                .symlink("l2", "l1")
                .file(&format!("l1/{MARK}loop"), b"l", 0o644),
            Expect::Refused("l1"),
        ),
        one(
            "hardlink-to-host",
            RawTar::new().hardlink(&format!("{MARK}stolen"), &format!("{h}/file")),
            Expect::Refused("refused"),
        ),
        one(
            "hardlink-up-to-host",
            RawTar::new().hardlink(&format!("{MARK}stolen2"), &format!("{deep_up}{h}/file")),
            Expect::Refused("refused"),
        ),
        one(
            "hardlink-to-symlink-then-chmod",
            RawTar::new()
                .symlink("s", &format!("{h}/file"))
                .hardlink("hl", "s")
                .file("hl", b"replaced", 0o777)
                .owned_file("s", b"again", 0o4777, 0, 0),
            Expect::Either,
        ),
        one(
            "symlink-replaces-directory",
            RawTar::new()
                .dir("d/", 0o755)
                .file("d/early", b"e", 0o644)
                .symlink("d", h)
                .file(&format!("d/{MARK}planted"), b"p", 0o644),
            Expect::Either,
        ),
        one(
            "whiteout-dotdot",
            RawTar::new().file(".wh..", b"", 0o644),
            Expect::Refused("whiteout"),
        ),
        one(
            "whiteout-dotdotdot",
            RawTar::new().file(".wh...", b"", 0o644),
            Expect::Refused("whiteout"),
        ),
        one(
            "whiteout-bare",
            RawTar::new().file("dir/.wh.", b"", 0o644),
            Expect::Refused("whiteout"),
        ),
        one(
            "whiteout-through-symlink",
            RawTar::new().symlink("s", h).file("s/.wh.file", b"", 0o644),
            Expect::Either,
        ),
        Case {
            name: "whiteout-of-a-symlink",
            layers: vec![
                RawTar::new().symlink("ln", &format!("{h}/file")).bytes(),
                RawTar::new().file(".wh.ln", b"", 0o644).bytes(),
            ],
            expect: Expect::Applied(|fs, _| {
                let md = std::fs::symlink_metadata(fs.join("ln")).unwrap();
                assert!(md.file_type().is_char_device() && md.rdev() == 0, "a 0/0 whiteout");
            }),
        },
        one(
            "opaque-after-content",
            RawTar::new()
                .dir("o/", 0o755)
                .file("o/keep", b"k", 0o644)
                .file("o/.wh..wh..opq", b"", 0o644),
            Expect::Applied(|fs, _| {
                assert_eq!(
                    std::fs::read(fs.join("o/keep")).unwrap(),
                    b"k",
                    "the marker hides only lower layers"
                );
                let mut v = [0u8; 2];
                let n = rustix::fs::getxattr(fs.join("o"), "trusted.overlay.opaque", &mut v).unwrap();
                assert_eq!(&v[..n], b"y");
            }),
        ),
        one(
            "device-out-of-range",
            RawTar::new().device(tar::EntryType::Block, "dev/big", 0x1000, 0),
            Expect::Refused("out of range"),
        ),
        one(
            "setuid",
            RawTar::new().owned_file("bin/su", b"#!/bin/sh\n", 0o4755, 0, 0),
            Expect::Applied(|fs, _| {
                let md = std::fs::metadata(fs.join("bin/su")).unwrap();
                assert_eq!((md.mode() & 0o7777, md.uid()), (0o4755, 0), "kept as docker keeps it");
            }),
        ),
        one(
            "duplicates",
            RawTar::new()
                .file("dup", b"first", 0o644)
                .dir("dup/", 0o755)
                .file("dup", b"second", 0o600),
            Expect::Applied(|fs, _| {
                assert_eq!(std::fs::read(fs.join("dup")).unwrap(), b"second", "the last entry wins");
            }),
        ),
        one(
            "pax-huge",
            RawTar::new().declared_only(b'x', "pax", 1 << 30),
            Expect::Refused("larger than"),
        ),
        one(
            "pax-conflicting-size",
            RawTar::new().pax_file("p", b"short", &[("size", b"4096")]),
            Expect::Refused("PAX size"),
        ),
        one(
            "gnu-longname-huge",
            RawTar::new().declared_only(b'L', "././@LongLink", 1 << 30),
            Expect::Refused("larger than"),
        ),
        one(
            "long-names",
            RawTar::new().pax_file("short", b"deep", &[("path", long_name().as_bytes())]),
            Expect::Applied(|fs, _| {
                let p = fs.join(long_name());
                assert_eq!(std::fs::read(p).unwrap(), b"deep");
            }),
        ),
        one(
            "overlong-path",
            RawTar::new().pax_file("short", b"x", &[("path", "d/".repeat(2100).as_bytes())]),
            Expect::Refused("longer than"),
        ),
        one(
            "gnu-sparse",
            RawTar::new().declared_only(b'S', "sparse", 0),
            Expect::Refused("sparse"),
        ),
    ]
}

/// Ten 200-byte directory names and a file.
fn long_name() -> String {
    format!("{}/f", vec!["n".repeat(200); 10].join("/"))
}

/// Everything about a directory tree that an escape could change.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let md = std::fs::symlink_metadata(&d).unwrap();
        let mut desc = format!(
            "mode {:o} uid {} gid {} nlink {} size {} mtime {} ino {}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.nlink(),
            md.len(),
            md.mtime(),
            md.ino()
        );
        if md.is_file() {
            desc.push_str(&format!(" {}", sha256(&std::fs::read(&d).unwrap())));
        } else if md.file_type().is_symlink() {
            desc.push_str(&format!(" -> {:?}", std::fs::read_link(&d).unwrap()));
        } else if md.is_dir() {
            for e in std::fs::read_dir(&d).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.insert(d, desc);
    }
    out
}

/// A host directory for the corpus to aim at, and the places an escape could land.
struct Host {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    before: BTreeMap<PathBuf, String>,
}

impl Host {
    fn new() -> Host {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("host");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("file"), b"host file").unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/inner"), b"inner").unwrap();
        let before = fingerprint(tmp.path());
        Host { dir, before, _tmp: tmp }
    }

    /// Nothing changed in the host directory, and no marked name anywhere likely.
    fn assert_untouched(&self, what: &str, store: &Path) {
        assert_eq!(
            fingerprint(self.dir.parent().unwrap()),
            self.before,
            "{what}: the host directory changed"
        );
        for place in [
            Path::new("/"),
            Path::new("/tmp"),
            store,
            &std::env::current_dir().unwrap(),
        ] {
            for e in std::fs::read_dir(place).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                assert!(
                    !name.starts_with(MARK),
                    "{what}: {name} escaped into {}",
                    place.display()
                );
            }
        }
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The snapshot of the top layer of `layers` (each an uncompressed tar).
fn top_snapshot(b: &Barge, layers: &[Vec<u8>]) -> PathBuf {
    let mut chain = String::new();
    for l in layers {
        let diff = sha256(l);
        chain = if chain.is_empty() {
            diff
        } else {
            sha256(format!("{chain} {diff}").as_bytes())
        };
    }
    b.root().join("snapshots").join(&chain[7..]).join("fs")
}

/// Checks one outcome against its case; `how` says which path it took.
fn judge(case: &Case, how: &str, out: &Output, b: &Barge, host: &Host) {
    let what = format!("{} ({how})", case.name);
    host.assert_untouched(&what, &b.root());
    match &case.expect {
        Expect::Refused(says) => {
            assert!(!out.status.success(), "{what}: should be refused");
            let err = text(out);
            assert!(err.contains(says), "{what}: the error should say {says:?}: {err}");
        }
        Expect::Applied(check) => {
            assert!(out.status.success(), "{what}: should apply: {}", text(out));
            check(&top_snapshot(b, &case.layers), &host.dir);
        }
        Expect::Either => {
            if !out.status.success() {
                let err = text(out);
                assert!(!err.trim().is_empty(), "{what}: a failure says why");
            }
        }
    }
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(1), "{what}: {}", text(out));
    }
    let check = b.run(&["system", "check"]);
    assert!(
        check.status.success(),
        "{what}: the store is inconsistent afterwards: {}{}",
        String::from_utf8_lossy(&check.stdout),
        text(&check)
    );
}

fn image_of(case: &Case) -> Image {
    let layers = case
        .layers
        .iter()
        .map(|t| Layer::from_tar(t.clone(), Compression::Gzip))
        .collect();
    Image::new(layers, Style::Oci, Spec::default())
}

#[test]
fn hostile_layers_pulled_from_a_registry() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let host = Host::new();
    let b = Barge::new();
    for case in corpus(&host.dir) {
        let repo = format!("hostile/{}", case.name);
        image_of(&case).push(&reg, &repo, "latest");
        let out = b.run(&["pull", "-q", &format!("{}/{repo}", reg.host())]);
        judge(&case, "pull", &out, &b, &host);
        if !out.status.success() {
            let listed = b.ok(&["images", "-q", &format!("{}/{repo}", reg.host())]);
            assert!(listed.trim().is_empty(), "{}: a refused image is not stored", case.name);
        }
    }
}

/// A `docker save` archive of `image` with its layers as plain tars.
fn docker_archive(image: &Image, layers: &[Vec<u8>], tag: &str, path: &Path) {
    let mut t = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, bytes).unwrap();
    };
    let config = format!("{}.json", &image.config_digest[7..]);
    add(&config, &image.config);
    let mut names = Vec::new();
    for l in layers {
        let name = format!("{}/layer.tar", &sha256(l)[7..]);
        add(&name, l);
        names.push(name);
    }
    let manifest = serde_json::json!([{"Config": config, "RepoTags": [tag], "Layers": names}]);
    add("manifest.json", manifest.to_string().as_bytes());
    t.into_inner().unwrap().flush().unwrap();
}

#[test]
fn hostile_layers_loaded_from_an_archive() {
    if !require_root_and(&[]) {
        return;
    }
    let host = Host::new();
    let b = Barge::new();
    for case in corpus(&host.dir) {
        let archive = b.dir.path().join(format!("{}.tar", case.name));
        docker_archive(
            &image_of(&case),
            &case.layers,
            &format!("hostile/{}:latest", case.name),
            &archive,
        );
        let out = b.run(&["load", "-q", "-i", archive.to_str().unwrap()]);
        judge(&case, "load", &out, &b, &host);
    }
}

#[test]
fn hostile_tars_added_in_a_build() {
    if !require_root_and(&[]) {
        return;
    }
    let host = Host::new();
    let b = Barge::new();
    for case in corpus(&host.dir).into_iter().filter(|c| c.layers.len() == 1) {
        let ctx = b.dir.path().join(format!("ctx-{}", case.name));
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join("layer.tar"), &case.layers[0]).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nADD layer.tar /\n").unwrap();
        let out = b.run(&[
            "build",
            "-q",
            "-t",
            &format!("added/{}", case.name),
            ctx.to_str().unwrap(),
        ]);
        // ADD writes a new layer (absolute names below the destination, links
        // recorded rather than followed), which the applier then unpacks: every
        // outcome must leave the host as it was and the store consistent.
        let what = format!("{} (ADD)", case.name);
        host.assert_untouched(&what, &b.root());
        if case.name.starts_with("dotdot") || case.name.starts_with("hardlink-up") {
            assert!(!out.status.success(), "{what}: entries climbing out are refused");
        }
        if !out.status.success() {
            assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
            assert!(!text(&out).trim().is_empty(), "{what}: a failure says why");
        }
        let check = b.run(&["system", "check"]);
        assert!(check.status.success(), "{what}: {}", text(&check));
    }
}

/// A layer of one file named `bomb` of `len` zero bytes (a multiple of
/// 1 MiB), compressed, built without compressing gigabytes: a gzip member
/// per MiB, or zstd RLE blocks. The diff ID is computed only when `hash`.
fn bomb(len: u64, compression: Compression, hash: bool) -> Layer {
    const MIB: u64 = 1 << 20;
    assert_eq!(len % MIB, 0);
    let mut header = tar::Header::new_gnu();
    header.set_path("bomb").unwrap();
    header.set_size(len);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    let header = header.as_bytes().to_vec();
    // After the header: the content, then two zero blocks ending the archive.
    let zeros_after = len + 1024;
    let diff_id = if hash {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(&header);
        let mib = vec![0u8; MIB as usize];
        for _ in 0..len / MIB {
            h.update(&mib);
        }
        h.update([0u8; 1024]);
        format!("sha256:{:x}", h.finalize())
    } else {
        sha256(b"never checked: the layer is refused first")
    };
    let blob = match compression {
        Compression::Gzip => {
            let member = |data: &[u8]| {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            };
            let mib = member(&vec![0u8; MIB as usize]);
            let mut blob = member(&header);
            for _ in 0..len / MIB {
                blob.extend_from_slice(&mib);
            }
            blob.extend_from_slice(&member(&[0u8; 1024]));
            blob
        }
        Compression::Zstd => {
            // Frame header: magic, no content size, a 128 KiB window.
            let mut blob = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3];
            let block = |blob: &mut Vec<u8>, kind: u32, size: u32, last: bool| {
                let h = u32::from(last) | kind << 1 | size << 3;
                blob.extend_from_slice(&h.to_le_bytes()[..3]);
            };
            block(&mut blob, 0, header.len() as u32, false);
            blob.extend_from_slice(&header);
            let mut left = zeros_after;
            while left > 0 {
                let n = left.min(128 << 10);
                left -= n;
                block(&mut blob, 1, n as u32, left == 0);
                blob.push(0);
            }
            blob
        }
        Compression::None => panic!("a bomb is compressed"),
    };
    Layer {
        compression,
        digest: sha256(&blob),
        blob,
        diff_id,
    }
}

#[test]
fn decompression_bombs_stop_at_the_limits() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let b = Barge::new();
    let pull = |repo: &str| b.run(&["pull", "-q", &format!("{}/{repo}", reg.host())]);

    // zstd: 3 GiB of zeros in 96 KiB; the ratio stops it past 1 GiB.
    let z = bomb(3 << 30, Compression::Zstd, false);
    assert!(z.blob.len() < 1 << 20, "{}", z.blob.len());
    Image::new(vec![z], Style::Oci, Spec::default()).push(&reg, "bomb/zstd", "latest");
    let out = pull("bomb/zstd");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("decompression bomb"), "{}", text(&out));

    // gzip can only expand about 1000:1, so a size limit catches it.
    std::fs::write(
        b.dir.path().join("barge-config/barge.json"),
        r#"{"max-layer-size": 67108864}"#,
    )
    .unwrap();
    let g = bomb(256 << 20, Compression::Gzip, false);
    Image::new(vec![g], Style::Oci, Spec::default()).push(&reg, "bomb/gzip", "latest");
    let out = pull("bomb/gzip");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("more than 67108864 bytes (max-layer-size)"),
        "{}",
        text(&out)
    );
    let left: Vec<_> = std::fs::read_dir(b.root().join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "nothing is left of a refused layer: {left:?}");
    assert!(b.run(&["system", "check"]).status.success());

    // The same archive added in a build is held to the same limit.
    let ctx = b.dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    let gz = bomb(256 << 20, Compression::Gzip, false);
    std::fs::write(ctx.join("bomb.tar.gz"), &gz.blob).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nADD bomb.tar.gz /\n").unwrap();
    let out = b.run(&["build", "-q", ctx.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("max-layer-size"), "{}", text(&out));

    // Within the limits, a huge file of zeros is applied as holes.
    std::fs::write(b.dir.path().join("barge-config/barge.json"), "{}").unwrap();
    let sparse = bomb(1 << 30, Compression::Gzip, true);
    let chain = sparse.diff_id.clone();
    Image::new(vec![sparse], Style::Oci, Spec::default()).push(&reg, "bomb/sparse", "latest");
    b.ok(&["pull", "-q", &format!("{}/bomb/sparse", reg.host())]);
    let md = std::fs::metadata(b.root().join("snapshots").join(&chain[7..]).join("fs/bomb")).unwrap();
    assert_eq!(md.len(), 1 << 30);
    assert!(md.blocks() * 512 < 1 << 20, "{} blocks: zeros are holes", md.blocks());
}

#[test]
fn the_host_fingerprint_sees_every_change() {
    let host = Host::new();
    let file = host.dir.join("file");
    let changes: [&dyn Fn(); 4] = [
        &|| std::fs::write(&file, b"host filE").unwrap(),
        &|| std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap(),
        &|| std::fs::hard_link(&file, host.dir.join("sub/link")).unwrap(),
        &|| std::fs::write(host.dir.join("sub/new"), b"").unwrap(),
    ];
    for (i, change) in changes.iter().enumerate() {
        let before = fingerprint(host.dir.parent().unwrap());
        change();
        assert_ne!(
            fingerprint(host.dir.parent().unwrap()),
            before,
            "change {i} went unseen"
        );
    }
}
