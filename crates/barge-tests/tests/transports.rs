//! `barge copy` among registries, OCI layouts, docker and OCI archives and the store;
//! `image save`/`load` against skopeo and podman; the image graph.

use barge_tests::image::{self, Compression, Image, Index, LayerBuilder, Spec, Style};
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, run_ok, Barge};
use std::process::Command;

fn skopeo_digest(location: &str) -> String {
    let out =
        run_ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}", location]));
    out.trim().to_string()
}

fn skopeo_raw(location: &str) -> Vec<u8> {
    let o = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", location])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

fn two_layers(marker: &str) -> Image {
    let base = LayerBuilder::new()
        .file("base", &[3u8; 50_000], 0o644)
        .build(Compression::Gzip);
    let top = LayerBuilder::new()
        .file("marker", marker.as_bytes(), 0o644)
        .build(Compression::Gzip);
    Image::new(vec![base, top], Style::Oci, Spec::default())
}

#[test]
fn copy_preserves_digests_across_every_transport() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = two_layers("copy");
    img.push(&reg, "src", "v1");
    let b = Barge::new();
    let work = tempfile::tempdir().unwrap();
    let src = format!("docker://{}/src:v1", reg.host());

    // registry -> OCI layout
    let oci = format!("oci:{}:v1", work.path().join("layout").display());
    assert_eq!(b.ok(&["copy", "-q", &src, &oci]).trim(), img.manifest_digest);
    assert_eq!(skopeo_digest(&oci), img.manifest_digest);
    // OCI layout -> registry
    let back = format!("docker://{}/from-oci:v1", reg.host());
    b.ok(&["copy", "-q", &oci, &back]);
    assert_eq!(skopeo_raw(&back), img.manifest, "the exact manifest bytes");
    // registry -> the store -> OCI layout: still the same bytes
    b.ok(&["copy", "-q", &src, "barge:stored:v1"]);
    assert!(b
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .contains("stored:v1"));
    let oci2 = format!("oci:{}:again", work.path().join("layout2").display());
    b.ok(&["copy", "-q", "barge:stored:v1", &oci2]);
    assert_eq!(skopeo_digest(&oci2), img.manifest_digest);
    // the store -> docker archive -> registry: an archive's manifest is its own, the image ID stays
    let archive = work.path().join("img.tar");
    b.ok(&[
        "copy",
        "-q",
        "barge:stored:v1",
        &format!("docker-archive:{}:arch/img:v1", archive.display()),
    ]);
    let via = format!("docker://{}/from-archive:v1", reg.host());
    b.ok(&["copy", "-q", &format!("docker-archive:{}", archive.display()), &via]);
    let config = run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", "--config", &via]));
    assert_eq!(
        barge_tests::sha256(config.as_bytes()),
        img.config_digest,
        "same config, same image ID"
    );
    // Errors name the problem.
    let e = b.fails(&["copy", "nope:x", &oci]);
    assert!(e.contains("unknown transport"), "{e}");
    let e = b.fails(&[
        "copy",
        &format!("oci:{}:missing", work.path().join("layout").display()),
        "barge:x",
    ]);
    assert!(e.contains("not found"), "{e}");
}

#[test]
fn copy_between_registries_keeps_every_platform() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let other = Registry::anonymous();
    let per_arch = |arch: &str| {
        let l = LayerBuilder::new()
            .file("arch", arch.as_bytes(), 0o644)
            .build(Compression::Gzip);
        Image::new(
            vec![l],
            Style::Oci,
            Spec {
                arch: arch.into(),
                ..Spec::default()
            },
        )
    };
    let (amd, arm) = (per_arch("amd64"), per_arch("arm64"));
    let index = Index::new(&[&amd, &arm], Style::Oci);
    index.push(&[&amd, &arm], &reg, "multi", "latest");
    let b = Barge::new();
    let dest = format!("docker://{}/mirror/multi:latest", other.host());
    b.ok(&["copy", "-q", &format!("docker://{}/multi:latest", reg.host()), &dest]);
    assert_eq!(skopeo_raw(&dest), index.bytes, "the index itself");
    for m in [&amd, &arm] {
        assert_eq!(
            skopeo_raw(&format!("docker://{}/mirror/multi@{}", other.host(), m.manifest_digest)),
            m.manifest
        );
    }
    // Into a docker archive only one platform fits: this host's.
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("one.tar");
    b.ok(&["copy", "-q", &dest, &format!("docker-archive:{}", archive.display())]);
    let arch = run_ok(Command::new("skopeo").args([
        "inspect",
        "--format",
        "{{.Architecture}}",
        &format!("docker-archive:{}", archive.display()),
    ]));
    assert_eq!(arch.trim(), "amd64");
}

#[test]
fn save_is_read_by_skopeo_and_podman_and_load_reads_theirs() {
    if !require_root_and(&["docker-registry", "skopeo", "podman", "umoci"]) {
        return;
    }
    let reg = Registry::anonymous();
    image::busybox_image(&reg, "bb", "v1", &[], |_| {});
    let b = Barge::new();
    b.ok(&["pull", "-q", &format!("{}/bb:v1", reg.host())]);
    b.ok(&["tag", &format!("{}/bb:v1", reg.host()), "saved/bb:v1"]);
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("saved.tar");
    b.ok(&["image", "save", "-o", archive.to_str().unwrap(), "saved/bb:v1"]);
    let id = b
        .ok(&["inspect", "--format", "{{.Id}}", "saved/bb:v1"])
        .trim()
        .to_string();

    // skopeo reads it…
    let oci = format!("oci:{}:fromsave", work.path().join("layout").display());
    run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("docker-archive:{}", archive.display()),
        &oci,
    ]));
    // skopeo re-encodes a config when it converts docker-archive to OCI: compare contents.
    let config: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new("skopeo").args(["inspect", "--raw", "--config", &oci]),
    ))
    .unwrap();
    let ours: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.root().join("oci/blobs/sha256").join(&id[7..])).unwrap()).unwrap();
    assert_eq!(config, ours);
    // …and podman loads it, under its name, and runs nothing barge did not give it.
    let podman_root = work.path().join("podman");
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(&podman_root)
            .arg("--runroot")
            .arg(work.path().join("podman-run"))
            .args(args);
        run_ok(&mut c)
    };
    let loaded = podman(&["load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("saved/bb:v1"), "{loaded}");
    let listed = podman(&["images", "--format", "{{.ID}}"]);
    assert!(id.contains(listed.trim()), "{listed} vs {id}");

    // load reads skopeo's archives: plain, gzip and zstd.
    let made = work.path().join("skopeo.tar");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{}/bb:v1", reg.host()),
        &format!("docker-archive:{}:by/skopeo:v2", made.display()),
    ]));
    let b2 = Barge::new();
    assert_eq!(
        b2.ok(&["load", "-i", made.to_str().unwrap()]),
        "Loaded image: by/skopeo:v2\n"
    );
    assert_eq!(b2.ok(&["run", "--rm", "by/skopeo:v2", "echo", "runs"]), "runs\n");
    run_ok(Command::new("gzip").arg("-k").arg(&made));
    run_ok(
        Command::new("zstd")
            .arg("-q")
            .arg(&made)
            .arg("-o")
            .arg(work.path().join("skopeo.tar.zst")),
    );
    for f in ["skopeo.tar.gz", "skopeo.tar.zst"] {
        let b3 = Barge::new();
        assert_eq!(
            b3.ok(&["image", "load", "-i", work.path().join(f).to_str().unwrap()]),
            "Loaded image: by/skopeo:v2\n",
            "{f}"
        );
    }
    // From stdin, as `docker load < file`.
    let b4 = Barge::new();
    let out = b4
        .command()
        .arg("load")
        .stdin(std::fs::File::open(&archive).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: saved/bb:v1\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = Barge::new().fails(&["load", "-i", "/nonexistent.tar"]);
    assert!(e.contains("/nonexistent.tar"), "{e}");
}

#[test]
fn the_image_graph_draws_shared_layers_once() {
    if !require_root_and(&["docker-registry", "dot"]) {
        return;
    }
    let reg = Registry::anonymous();
    let base = LayerBuilder::new()
        .file("base", b"shared", 0o644)
        .build(Compression::Gzip);
    let one = Image::new(
        vec![
            base.clone(),
            LayerBuilder::new().file("a", b"1", 0o644).build(Compression::Gzip),
        ],
        Style::Oci,
        Spec::default(),
    );
    let two = Image::new(
        vec![
            base.clone(),
            LayerBuilder::new().file("b", b"2", 0o644).build(Compression::Gzip),
        ],
        Style::Oci,
        Spec::default(),
    );
    one.push(&reg, "one", "latest");
    two.push(&reg, "two", "latest");
    let b = Barge::new();
    b.ok(&["pull", "-q", &format!("{}/one", reg.host())]);
    b.ok(&["pull", "-q", &format!("{}/two", reg.host())]);
    b.ok(&["tag", &format!("{}/one", reg.host()), "one:extra"]);
    let dot = b.ok(&["images", "--dot"]);
    assert_eq!(dot, b.ok(&["image", "graph", "--dot"]));
    for tag in [
        format!("{}/one:latest", reg.host()),
        format!("{}/two:latest", reg.host()),
        "one:extra".to_string(),
    ] {
        assert!(dot.contains(&tag), "{tag} in {dot}");
    }
    assert_eq!(
        dot.matches(&format!("\"{}\" [label", base.diff_id)).count(),
        1,
        "the shared base is one node"
    );
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(dot.as_bytes()).unwrap();
    let svg = child.wait_with_output().unwrap();
    assert!(
        svg.status.success() && String::from_utf8_lossy(&svg.stdout).contains("<svg"),
        "dot parsed it"
    );
    let tree = b.ok(&["images", "--tree"]);
    assert!(
        tree.lines()
            .next()
            .unwrap()
            .starts_with(&format!("└─{}", &base.diff_id[7..19])),
        "{tree}"
    );
    assert_eq!(tree.matches("└─image").count(), 2, "{tree}");
}

#[test]
fn a_copy_sends_a_blob_again_when_the_upload_is_cut() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let src = Registry::anonymous();
    let dst = Registry::anonymous();
    let mut noise = vec![0u8; 400_000];
    let mut x = 0x2545f4914f6cdd1du64;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let layer = LayerBuilder::new()
        .file("noise", &noise, 0o644)
        .build(Compression::Gzip);
    let img = Image::new(vec![layer], Style::Oci, Spec::default());
    img.push(&src, "app", "v1");
    let proxy = barge_tests::proxy::SlowProxy::start(&dst.host(), 0);
    proxy.cut_upload_once_after(100_000);
    let b = Barge::new();
    let o = b.run(&[
        "copy",
        &format!("docker://{}/app:v1", src.host()),
        &format!("docker://{}/app:v1", proxy.host()),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(proxy.cuts(), 1, "the upload was cut");
    assert!(stderr.contains("trying again"), "{stderr}");
    assert_eq!(
        skopeo_digest(&format!("docker://{}/app:v1", dst.host())),
        img.manifest_digest
    );
}

/// A copy between two repositories of one registry mounts every blob
/// instead of sending it: the registry destination's `mount_or_put`.
#[test]
fn a_copy_within_one_registry_mounts_the_blobs() {
    if !require_root_and(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = two_layers("mounted");
    img.push(&reg, "app", "v1");
    let proxy = barge_tests::proxy::SlowProxy::start(&reg.host(), 0);
    let b = Barge::new();
    b.ok(&[
        "copy",
        "-q",
        &format!("docker://{}/app:v1", proxy.host()),
        &format!("docker://{}/other:v1", proxy.host()),
    ]);
    let sent = proxy.requests();
    let mounts = sent.matches("mount=").count();
    assert_eq!(mounts, 3, "two layers and the config mounted: {sent}");
    assert!(
        !sent.contains("PATCH ") && !sent.contains("?digest="),
        "no blob was uploaded: {sent}"
    );
    assert_eq!(
        skopeo_digest(&format!("docker://{}/other:v1", reg.host())),
        img.manifest_digest
    );
}

#[test]
fn a_failed_save_leaves_the_old_archive_alone() {
    let b = Barge::new();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("images.tar");
    std::fs::write(&out, "the archive of yesterday").unwrap();
    let e = b.fails(&["save", "-o", out.to_str().unwrap(), "nothing-here:1"]);
    assert!(e.contains("nothing-here"), "{e}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "the archive of yesterday");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "no temporary file left behind: {left:?}");
}

/// `oci-archive:`: `barge load` reads podman's `save --format oci-archive`;
/// `copy` writes one skopeo reads, and reads it back, digests preserved.
#[test]
fn oci_archives_from_podman_load_and_copy_both_ways() {
    if !require_root_and(&["docker-registry", "skopeo", "podman"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = Image::simple(Style::Docker, Compression::Gzip, "in an oci archive");
    img.push(&reg, "oa", "v1");
    let work = tempfile::tempdir().unwrap();
    let podman = |args: &[&str]| barge_tests::podman_in(work.path(), args);
    let name = format!("{}/oa:v1", reg.host());
    podman(&["pull", "-q", "--tls-verify=false", &name]);
    let from_podman = work.path().join("podman.tar");
    podman(&[
        "save",
        "-q",
        "--format",
        "oci-archive",
        "-o",
        from_podman.to_str().unwrap(),
        &name,
    ]);

    let b = Barge::new();
    let loaded = b.ok(&["load", "-i", from_podman.to_str().unwrap()]);
    assert_eq!(loaded, format!("Loaded image: {name}\n"));
    // podman re-encodes the config when it writes v2s2 as OCI: the image
    // ID is that of the archive's config.
    let saved = format!("oci-archive:{}", from_podman.display());
    let manifest: serde_json::Value =
        serde_json::from_str(&run_ok(Command::new("skopeo").args(["inspect", "--raw", &saved]))).unwrap();
    let id = b.ok(&["inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(id.trim(), manifest["config"]["digest"], "{manifest}");

    // From standard input, as `docker load < file`.
    let b3 = Barge::new();
    let out = b3
        .command()
        .arg("load")
        .stdin(std::fs::File::open(&from_podman).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("Loaded image: {name}\n"));

    // Out to an OCI archive that skopeo reads, and back in.
    let archive = work.path().join("barge.tar");
    let location = format!("oci-archive:{}:mine", archive.display());
    let copied = b.ok(&["copy", "-q", &format!("barge:{name}"), &location]);
    let shown = run_ok(Command::new("skopeo").args(["inspect", "--format", "{{.Digest}}", &location]));
    assert_eq!(shown, copied);
    let b2 = Barge::new();
    b2.ok(&["copy", "-q", &location, "barge:back/oa:v2"]);
    let back = b2.ok(&["inspect", "--format", "{{.Id}}", "back/oa:v2"]);
    assert_eq!(back, id);
    // From the registry to an archive and on to another registry: the v2s2 digest survives.
    let archive2 = work.path().join("registry.tar");
    let location2 = format!("oci-archive:{}:r", archive2.display());
    b2.ok(&["copy", "-q", &format!("docker://{name}"), &location2]);
    run_ok(Command::new("skopeo").args(["inspect", &location2]));
    b2.ok(&["copy", "-q", &location2, &format!("docker://{}/oa2:v1", reg.host())]);
    assert_eq!(image::manifest_digest(&reg, "oa2", "v1"), img.manifest_digest);
}
