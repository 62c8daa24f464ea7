//! The image commands: images, tag, rmi, image prune (and container prune's filters), history, inspect.

use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, Barge};

fn lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

fn labelled(marker: &str, labels: &[(&str, &str)]) -> Image {
    let layer = LayerBuilder::new()
        .file("etc/marker", marker.as_bytes(), 0o644)
        .file("bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
        .build(Compression::Gzip);
    let spec = Spec {
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Spec::default()
    };
    Image::new(vec![layer], Style::Oci, spec)
}

#[test]
fn images_lists_tags_with_docker_columns_formats_and_filters() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let a = labelled("abcd", &[("team", "core")]);
    let b_img = labelled("efgh-ijkl", &[]);
    a.push(&reg, "alpha", "1");
    b_img.push(&reg, "beta", "1");
    let b = Barge::new();
    let (alpha, beta) = (format!("{}/alpha:1", reg.host()), format!("{}/beta:1", reg.host()));
    b.ok(&["pull", "-q", &alpha]);
    b.ok(&["pull", "-q", &beta]);
    b.ok(&["tag", &alpha, "alpha:2"]);
    b.ok(&["image", "tag", a.short_id(), "gamma:x"]);

    let table = b.ok(&["images"]);
    let mut rows = table.lines();
    let header = rows.next().unwrap();
    let cols: Vec<&str> = header.split("   ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cols, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], "{table}");
    assert_eq!(table.lines().count(), 5, "{table}");
    let a_rows: Vec<&str> = table.lines().filter(|l| l.contains(a.short_id())).collect();
    assert_eq!(a_rows.len(), 3, "three tags, one image ID: {table}");
    assert!(
        a_rows.iter().all(|r| r.trim_end().ends_with("24B")),
        "SIZE is the content size: {table}"
    );
    assert!(table.contains("ago"), "CREATED is relative: {table}");

    let short = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert_eq!(
        lines(&short),
        lines(&format!(
            "{alpha} {a}\nalpha:2 {a}\ngamma:x {a}\n{beta} {b}\n",
            a = a.short_id(),
            b = b_img.short_id()
        ))
    );
    let quiet = b.ok(&["images", "-q"]);
    assert_eq!(quiet.lines().filter(|l| *l == a.short_id()).count(), 3);
    assert!(b.ok(&["images", "--no-trunc", "-q"]).contains(&a.config_digest));
    let digests = b.ok(&["images", "--digests"]);
    assert!(digests.lines().next().unwrap().contains("DIGEST"), "{digests}");
    assert!(digests.contains(&a.manifest_digest), "{digests}");
    for line in b.ok(&["images", "--format", "json"]).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in ["Repository", "Tag", "ID", "Digest", "CreatedSince", "CreatedAt", "Size"] {
            assert!(v.get(key).is_some(), "{key} in {line}");
        }
    }
    let custom = b.ok(&["images", "--format", "table {{.Repository}}\t{{.ID}}"]);
    assert!(custom.starts_with("REPOSITORY"), "{custom}");
    assert!(custom.lines().next().unwrap().contains("IMAGE ID"));

    let filtered = |args: &[&str]| lines(&b.ok(&[&["images", "--format", "{{.Repository}}:{{.Tag}}"], args].concat()));
    assert_eq!(filtered(&["--filter", "reference=alpha"]), ["alpha:2"]);
    assert_eq!(filtered(&["alpha"]), ["alpha:2"]);
    assert_eq!(filtered(&["--filter", "reference=*:x"]), ["gamma:x"]);
    assert_eq!(filtered(&["--filter", "label=team=core"]).len(), 3);
    assert_eq!(filtered(&["--filter", "label=team"]).len(), 3);
    assert!(filtered(&["--filter", "label=team=other"]).is_empty());
    assert!(filtered(&["--filter", "dangling=true"]).is_empty());
    assert_eq!(filtered(&["--filter", "dangling=false"]).len(), 4);
    let err = b.fails(&["images", "--filter", "colour=blue"]);
    assert!(err.contains("invalid filter 'colour'"), "{err}");
    let err = b.fails(&["images", "--format", "{{.Repository"]);
    assert!(err.contains("template"), "{err}");
    // Go's text/template as docker users write it: conditions, printf, a
    // table header made from the fields read through functions.
    let go = "{{if eq .Tag \"x\"}}{{printf \"%-6s\" .Tag}}|{{else}}{{.Tag | printf \"<%s>\"}}{{end}}";
    let tags = lines(&b.ok(&["images", "--filter", "reference=*:x", "--format", go]));
    assert_eq!(tags, ["x     |"]);
    let table = b.ok(&[
        "images",
        "--filter",
        "reference=alpha",
        "--format",
        "table {{lower .Repository}}\t{{.Tag | printf \"%q\"}}",
    ]);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].starts_with("repository") && rows[0].contains("\"TAG\""),
        "{table}"
    );
    assert!(rows[1].ends_with("\"2\""), "{table}");
    // docker's config.json sets the default format; --format still wins.
    std::fs::create_dir_all(b.docker_config()).unwrap();
    std::fs::write(b.docker_config().join("config.json"), r#"{"imagesFormat":"{{.Tag}}!"}"#).unwrap();
    assert_eq!(lines(&b.ok(&["images", "--filter", "reference=*:x"])), ["x!"]);
    assert_eq!(
        lines(&b.ok(&["images", "--filter", "reference=*:x", "--format", "{{.Tag}}"])),
        ["x"]
    );
    std::fs::write(b.docker_config().join("config.json"), "{not json").unwrap();
    let out = b.run(&["images", "--filter", "reference=*:x"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("WARNING: Error loading config file"));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("REPOSITORY"));
}

#[test]
fn rmi_untags_and_deletes_as_docker_does() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = labelled("rmi", &[]);
    img.push(&reg, "alpha", "1");
    let b = Barge::new();
    let host = reg.host();
    let alpha1 = format!("{host}/alpha:1");
    b.ok(&["pull", "-q", &alpha1]);
    b.ok(&["tag", &alpha1, &format!("{host}/alpha:2")]);
    b.ok(&["tag", &alpha1, "other:1"]);

    // rmi of the digest a tag was pulled by drops only that reference, as docker does.
    let by_digest = format!("{host}/alpha@{}", img.manifest_digest);
    assert_eq!(b.ok(&["rmi", &by_digest]), format!("Untagged: {by_digest}\n"));
    assert_eq!(b.ok(&["inspect", "--format", "{{json .RepoDigests}}", &alpha1]), "[]\n");
    b.ok(&["pull", "-q", &alpha1]);

    let out = b.run(&["rmi", img.short_id()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            img.short_id()
        )),
        "{err}"
    );
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 3, "nothing removed");

    assert_eq!(
        b.ok(&["rmi", &format!("{host}/alpha:2")]),
        format!("Untagged: {host}/alpha:2\n")
    );
    assert_eq!(b.ok(&["image", "rm", "other:1"]), "Untagged: other:1\n");
    // One reference left: removing by ID needs no force, and deletes.
    let out = b.ok(&["rmi", img.short_id()]);
    assert_eq!(
        out,
        format!(
            "Untagged: {alpha1}\nUntagged: {host}/alpha@{}\nDeleted: {}\nDeleted: {}\n",
            img.manifest_digest, img.config_digest, img.layers[0].diff_id
        )
    );
    let blobs = std::fs::read_dir(b.root().join("oci/blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 0, "all blobs gone");
    assert_eq!(std::fs::read_dir(b.root().join("snapshots")).unwrap().count(), 0);

    // -f by ID removes every tag at once.
    b.ok(&["pull", "-q", &alpha1]);
    b.ok(&["tag", &alpha1, "x:1"]);
    b.ok(&["tag", &alpha1, "y:1"]);
    let out = b.ok(&["rmi", "-f", img.short_id()]);
    for r in [alpha1.as_str(), "x:1", "y:1"] {
        assert!(out.contains(&format!("Untagged: {r}\n")), "{out}");
    }
    assert!(out.contains(&format!("Deleted: {}\n", img.config_digest)), "{out}");
    assert_eq!(b.ok(&["images", "-q"]), "");

    // Removing the last tag deletes the image.
    b.ok(&["pull", "-q", &alpha1]);
    let out = b.ok(&["rmi", &alpha1]);
    assert!(out.starts_with(&format!("Untagged: {alpha1}\n")), "{out}");
    assert!(out.contains(&format!("Deleted: {}\n", img.config_digest)), "{out}");

    let out = b.run(&["rmi", "nosuch", &alpha1]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Error: No such image: nosuch:latest"), "{err}");
    assert!(err.contains(&format!("No such image: {alpha1}")), "{err}");
}

#[test]
fn removing_one_image_keeps_layers_another_uses() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let base = LayerBuilder::new()
        .file("base", b"shared base", 0o644)
        .build(Compression::Gzip);
    let top1 = LayerBuilder::new().file("one", b"1", 0o644).build(Compression::Gzip);
    let top2 = LayerBuilder::new().file("two", b"2", 0o644).build(Compression::Gzip);
    let i1 = Image::new(vec![base.clone(), top1], Style::Oci, Spec::default());
    let i2 = Image::new(vec![base.clone(), top2], Style::Oci, Spec::default());
    i1.push(&reg, "one", "latest");
    i2.push(&reg, "two", "latest");
    let b = Barge::new();
    b.ok(&["pull", "-q", &format!("{}/one", reg.host())]);
    let out = b.run(&["pull", &format!("{}/two", reg.host())]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}: Already exists", &base.digest[7..19])));
    b.ok(&["rmi", &format!("{}/one", reg.host())]);
    assert!(b.root().join("oci/blobs/sha256").join(&base.digest[7..]).is_file());
    assert!(b
        .root()
        .join("snapshots")
        .join(&base.diff_id[7..])
        .join("fs/base")
        .is_file());
    b.ok(&["image", "inspect", &format!("{}/two", reg.host())]);
}

#[test]
fn dangling_images_and_prune() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let old = labelled("old", &[]);
    let new = labelled("new", &[]);
    let reference = format!("{}/app:latest", reg.host());
    let b = Barge::new();
    old.push(&reg, "app", "latest");
    b.ok(&["pull", "-q", &reference]);
    new.push(&reg, "app", "latest");
    b.ok(&["pull", "-q", &reference]);

    // The old image keeps its digest reference, as docker keeps `app@sha256:…`.
    let rows = b.ok(&["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"]);
    assert_eq!(
        lines(&rows),
        lines(&format!(
            "{host}/app <none> {}\n{host}/app latest {}\n",
            old.short_id(),
            new.short_id(),
            host = reg.host()
        ))
    );
    assert_eq!(
        b.ok(&["images", "-q", "--filter", "dangling=true"]),
        format!("{}\n", old.short_id())
    );
    let old_digest = format!("{}/app@{}", reg.host(), old.manifest_digest);
    assert!(b.ok(&["images", "--digests"]).contains(&old.manifest_digest));

    // Without -f, "n" at the prompt changes nothing.
    let mut child = b
        .command()
        .args(["image", "prune"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 2);

    std::fs::write(b.root().join("ingest/stale-partial"), vec![1u8; 5000]).unwrap();
    let out = b.ok(&["image", "prune", "-f"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Images:\nuntagged: {old_digest}\ndeleted: {}\n",
            old.config_digest
        )),
        "{out}"
    );
    let reclaimed = out.lines().last().unwrap();
    assert!(
        reclaimed.starts_with("Total reclaimed space: ") && !reclaimed.ends_with(" 0B"),
        "{out}"
    );
    assert!(!b
        .root()
        .join("oci/blobs/sha256")
        .join(&old.layers[0].digest[7..])
        .exists());
    assert!(!b.root().join("ingest/stale-partial").exists());
    assert!(b
        .root()
        .join("oci/blobs/sha256")
        .join(&new.layers[0].digest[7..])
        .exists());
    assert_eq!(b.ok(&["image", "prune", "-f"]), "Total reclaimed space: 0B\n");

    let out = b.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains(&format!("untagged: {reference}\n")), "{out}");
    assert!(out.contains(&format!("deleted: {}\n", new.config_digest)), "{out}");
    assert_eq!(std::fs::read_dir(b.root().join("oci/blobs/sha256")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(b.root().join("snapshots")).unwrap().count(), 0);
    assert!(b.index()["manifests"].as_array().unwrap().is_empty());
}

#[test]
fn history_shows_layers_and_metadata_steps() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let l1 = LayerBuilder::new()
        .file("rootfs", &[7u8; 3000], 0o644)
        .build(Compression::Gzip);
    let l2 = LayerBuilder::new()
        .file("built", &[8u8; 1500], 0o644)
        .build(Compression::Gzip);
    let long = "/bin/sh -c make all install PREFIX=/usr/local DESTDIR=/ && rm -rf /src";
    let spec = Spec {
        history: vec![
            ("ADD rootfs.tar /".into(), false),
            ("ENV A=b".into(), true),
            (long.into(), false),
            ("CMD [\"/bin/sh\"]".into(), true),
        ],
        ..Spec::default()
    };
    let img = Image::new(vec![l1, l2], Style::Docker, spec);
    img.push(&reg, "hist", "latest");
    let b = Barge::new();
    let reference = format!("{}/hist", reg.host());
    b.ok(&["pull", "-q", &reference]);

    let out = b.ok(&["history", &reference]);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 5, "{out}");
    let header: Vec<&str> = rows[0].split("   ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(header, ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]);
    assert!(
        rows[1].starts_with(img.short_id()) && rows[1].contains("CMD [\"/bin/sh\"]") && rows[1].contains("0B"),
        "{out}"
    );
    assert!(
        rows[2].starts_with("<missing>") && rows[2].contains("1.5kB") && rows[2].contains('…'),
        "{out}"
    );
    assert!(rows[3].contains("ENV A=b") && rows[3].contains("0B"), "{out}");
    assert!(rows[4].contains("ADD rootfs.tar /") && rows[4].contains("3kB"), "{out}");

    let raw = b.ok(&["image", "history", "-H=false", "--no-trunc", &reference]);
    assert!(raw.contains(long), "{raw}");
    assert!(raw.contains("2024-01-02T03:04:05Z"), "{raw}");
    assert!(raw.lines().nth(2).unwrap().contains("1500"), "{raw}");
    assert!(raw.lines().nth(1).unwrap().starts_with(&img.config_digest), "{raw}");
    assert_eq!(
        b.ok(&["history", "-q", &reference]),
        format!("{}\n<missing>\n<missing>\n<missing>\n", img.short_id())
    );
}

#[test]
fn inspect_reports_docker_fields() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = labelled("inspect", &[("maintainer", "barge")]);
    img.push(&reg, "insp", "v1");
    let b = Barge::new();
    let reference = format!("{}/insp:v1", reg.host());
    b.ok(&["pull", "-q", &reference]);
    b.ok(&["tag", &reference, "local:v1"]);
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["image", "inspect", &reference])).unwrap();
    let o = &v[0];
    assert_eq!(o["Id"], img.config_digest.as_str());
    assert_eq!(o["RepoTags"], serde_json::json!([reference, "local:v1"]));
    assert_eq!(
        o["RepoDigests"],
        serde_json::json!([format!("{}/insp@{}", reg.host(), img.manifest_digest)])
    );
    assert_eq!(o["Created"], "2024-01-02T03:04:05Z");
    assert_eq!(o["Architecture"], "amd64");
    assert_eq!(o["Os"], "linux");
    assert_eq!(o["Config"]["Labels"]["maintainer"], "barge");
    assert_eq!(o["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(o["RootFS"]["Type"], "layers");
    assert_eq!(o["RootFS"]["Layers"], serde_json::json!([img.layers[0].diff_id]));
    assert_eq!(o["Size"], 27);
    assert_eq!(
        b.ok(&["inspect", "--format", "{{.Id}} {{.Os}}", "local:v1"]),
        format!("{} linux\n", img.config_digest)
    );

    let out = b.run(&["inspect", "local:v1", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed.as_array().unwrap().len(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such object: nosuch"));
    let e = b.fails(&["image", "inspect", "nosuch"]);
    assert!(e.contains("No such image: nosuch:latest"), "{e}");
}

#[test]
fn tag_errors_are_clear() {
    let b = Barge::new();
    let err = b.fails(&["tag", "nosuch", "x:1"]);
    assert!(err.contains("No such image: nosuch:latest"), "{err}");
    let err = b.fails(&[
        "tag",
        "nosuch",
        "x@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ]);
    assert!(
        err.contains("refusing to create a tag with a digest reference"),
        "{err}"
    );
    let err = b.fails(&["tag", "nosuch", "UPPER:1"]);
    assert!(err.contains("must be lowercase"), "{err}");
}

#[test]
fn a_repository_holding_the_image_by_digest_only_is_a_none_row() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = labelled("bydigest", &[]);
    img.push(&reg, "tagged", "1");
    img.push(&reg, "digested", "1");
    let digest = barge_tests::image::manifest_digest(&reg, "digested", "1");
    let b = Barge::new();
    b.ok(&["pull", "-q", &format!("{}/tagged:1", reg.host())]);
    b.ok(&["pull", "-q", &format!("{}/digested@{digest}", reg.host())]);
    let rows = lines(&b.ok(&["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"]));
    assert_eq!(
        rows,
        [
            format!("{}/digested <none> {}", reg.host(), img.short_id()),
            format!("{}/tagged 1 {}", reg.host(), img.short_id()),
        ]
    );
    let with_digests = b.ok(&["images", "--digests", "--format", "{{.Repository}} {{.Digest}}"]);
    assert!(with_digests.contains(&format!("/digested {digest}")), "{with_digests}");
    // Untagging the tagged repository leaves the digest row.
    b.ok(&["rmi", &format!("{}/tagged:1", reg.host())]);
    let rows = lines(&b.ok(&["images", "--format", "{{.Repository}} {{.Tag}}"]));
    assert_eq!(rows, [format!("{}/digested <none>", reg.host())]);
}

#[test]
fn prune_filters_by_until_and_label() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let dated = |marker: &str, created: &str, labels: &[(&str, &str)]| {
        let layer = LayerBuilder::new()
            .file("etc/marker", marker.as_bytes(), 0o644)
            .build(Compression::Gzip);
        let spec = Spec {
            created: created.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Spec::default()
        };
        Image::new(vec![layer], Style::Oci, spec)
    };
    // Old and unlabelled; new (created in the future, so never "before now") and labelled.
    let old = dated("old", "2020-01-01T00:00:00Z", &[]);
    let new = dated("new", "2100-01-01T00:00:00Z", &[("tier", "web")]);
    old.push(&reg, "old", "1");
    new.push(&reg, "new", "1");
    let (old_ref, new_ref) = (format!("{}/old:1", reg.host()), format!("{}/new:1", reg.host()));
    let b = Barge::new();
    let pull_both = || {
        b.ok(&["pull", "-q", &old_ref]);
        b.ok(&["pull", "-q", &new_ref]);
    };
    let ids = || lines(&b.ok(&["images", "-q"]));
    pull_both();
    let both = lines(&format!("{}\n{}\n", old.short_id(), new.short_id()));
    assert_eq!(ids(), both);

    // An unknown key is refused before anything is removed.
    for bad in ["x=1", "until!=1h", "until=yesterday"] {
        let o = b.run(&["image", "prune", "-a", "-f", "--filter", bad]);
        assert_eq!(o.status.code(), Some(1), "{bad}");
        let key = bad.split('=').next().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(&format!("invalid filter '{key}")), "{bad}: {stderr}");
    }
    assert_eq!(ids(), both);

    // Each filter removes exactly the one image it selects.
    for (filter, gone) in [
        ("until=24h", &old),
        ("until=1h30m", &old),
        ("until=2050-01-01T00:00:00Z", &old),
        ("until=1700000000", &old),
        ("label=tier=web", &new),
        ("label=tier", &new),
        ("label!=tier", &old),
    ] {
        let out = b.ok(&["image", "prune", "-a", "-f", "--filter", filter]);
        assert!(
            out.contains(&format!("deleted: {}\n", gone.config_digest)),
            "{filter}: {out}"
        );
        let left = if std::ptr::eq(gone, &old) { &new } else { &old };
        assert_eq!(ids(), [left.short_id().to_string()], "{filter}");
        pull_both();
    }
    // Filters combine: nothing is both old and labelled.
    let out = b.ok(&[
        "image",
        "prune",
        "-a",
        "-f",
        "--filter",
        "until=24h",
        "--filter",
        "label=tier",
    ]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    assert_eq!(ids(), both);

    // container prune: the same parser, over the containers' labels and created times
    // (the old image has no labels, so `late` has none).
    let id_of = |name: &str| b.ok(&["inspect", "--format", "{{.Id}}", name]).trim().to_string();
    b.ok(&["create", "--name", "early", "-l", "tier=web", &old_ref]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let cut = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    b.ok(&["create", "--name", "late", &old_ref]);
    let o = b.run(&["container", "prune", "-f", "--filter", "x=1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid filter 'x'"));
    let names = || lines(&b.ok(&["ps", "-a", "--format", "{{.Names}}"]));
    assert_eq!(names(), ["early", "late"]);
    let prune = |filter: &str, gone: &str, left: &str| {
        let id = id_of(gone);
        let out = b.ok(&["container", "prune", "-f", "--filter", filter]);
        assert!(
            out.starts_with(&format!("Deleted Containers:\n{id}\n")),
            "{filter}: {out}"
        );
        assert_eq!(names(), [left], "{filter}");
    };
    prune(&format!("until={cut}"), "early", "late");
    b.ok(&["create", "--name", "early", "-l", "tier=web", &old_ref]);
    prune("label!=tier", "late", "early");
    b.ok(&["create", "--name", "late", &old_ref]);
    prune("label=tier=web", "early", "late");
    b.ok(&["rm", "late"]);
}
