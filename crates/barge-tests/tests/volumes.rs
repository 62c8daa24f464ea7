//! docker 20.10's volumes (issues 17 and 21) through the real binary:
//! `volume create|ls|inspect|rm|prune`.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::{stderr_of as err, Barge};

/// A busybox image whose `/seed` holds `file` (1234:1234, 0640) and
/// `sub/deep`, and whose `/data` (the image's `VOLUME`) holds `image-data`.
fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &["--config.volume", "/data"], |rootfs| {
        let seed = rootfs.join("seed");
        std::fs::create_dir_all(seed.join("sub")).unwrap();
        std::fs::write(seed.join("file"), "seeded\n").unwrap();
        std::os::unix::fs::lchown(seed.join("file"), Some(1234), Some(1234)).unwrap();
        std::fs::set_permissions(seed.join("file"), std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        std::fs::write(seed.join("sub/deep"), "deep\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", seed.join("link")).unwrap();
        std::fs::create_dir_all(rootfs.join("data")).unwrap();
        std::fs::write(rootfs.join("data/image-data"), "from the image\n").unwrap();
    })
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn volume_names(b: &Barge) -> Vec<String> {
    b.ok(&["volume", "ls", "-q"]).lines().map(str::to_string).collect()
}

#[test]
fn volume_verbs_as_docker_has_them() {
    let Some((_reg, b, _image)) = setup() else { return };
    assert_eq!(b.ok(&["volume", "create", "--label", "team=a", "web"]).trim(), "web");
    // Creating it again returns it, as docker does.
    assert_eq!(b.ok(&["volume", "create", "web"]).trim(), "web");
    let random = b.ok(&["volume", "create"]).trim().to_string();
    assert!(is_hex64(&random), "{random}");
    let table = b.ok(&["volume", "ls"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("DRIVER") && lines[0].contains("VOLUME NAME"),
        "{table}"
    );
    assert_eq!(lines.len(), 3, "{table}");
    assert!(table.contains("local     web"), "{table}");
    assert_eq!(b.ok(&["volume", "ls", "-q", "--filter", "label=team=a"]).trim(), "web");
    assert_eq!(b.ok(&["volume", "ls", "-q", "--filter", "name=we"]).trim(), "web");
    assert_eq!(
        b.ok(&[
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}}",
            "--filter",
            "label=team"
        ])
        .trim(),
        "web local"
    );
    let inspect: serde_json::Value = serde_json::from_str(&b.ok(&["volume", "inspect", "web"])).unwrap();
    let v = &inspect[0];
    assert_eq!(v["Name"], "web");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"]["team"], "a");
    assert_eq!(v["Options"], serde_json::json!({}));
    assert!(v["CreatedAt"].as_str().unwrap().ends_with('Z'));
    let mountpoint = b.root().join("volumes/web/_data");
    assert_eq!(v["Mountpoint"], mountpoint.display().to_string());
    assert!(mountpoint.is_dir());
    assert_eq!(
        b.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "web"]).trim(),
        mountpoint.display().to_string()
    );

    // Hostile names: one line, nothing made.
    for bad in ["../x", "a/b", ".hidden", "x"] {
        let o = b.run(&["volume", "create", bad]);
        assert_eq!(o.status.code(), Some(1), "{bad}: {o:?}");
        let e = err(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains("includes invalid characters for a local volume name"), "{e}");
    }
    assert!(!b.root().join("x").exists() && !b.root().join("volumes/a").exists());
    assert!(b
        .fails(&["volume", "create", "--driver", "nfs", "n1"])
        .contains("local"));

    assert!(b.fails(&["volume", "rm", "nope"]).contains("No such volume: nope"));
    b.ok(&["volume", "rm", "-f", "nope"]);
    assert!(b.fails(&["volume", "inspect", "nope"]).contains("No such volume: nope"));

    // prune: every unused volume (docker 20.10), with label filters.
    b.ok(&["volume", "create", "--label", "keep=yes", "kept"]);
    std::fs::write(b.root().join(format!("volumes/{random}/_data/bytes")), vec![7u8; 3000]).unwrap();
    let pruned = b.ok(&[
        "volume",
        "prune",
        "-f",
        "--filter",
        "label!=keep",
        "--filter",
        "label!=team",
    ]);
    assert_eq!(
        pruned,
        format!("Deleted Volumes:\n{random}\n\nTotal reclaimed space: 3kB\n"),
        "{pruned}"
    );
    assert_eq!(volume_names(&b), ["kept", "web"]);
    assert!(b
        .fails(&["volume", "prune", "-f", "--filter", "until=1h"])
        .contains("invalid filter"));
    b.ok(&["volume", "rm", "web"]);
    assert_eq!(
        b.ok(&["volume", "prune", "-f"]),
        "Deleted Volumes:\nkept\n\nTotal reclaimed space: 0B\n"
    );
    assert!(volume_names(&b).is_empty());
    assert!(!mountpoint.exists());
}
