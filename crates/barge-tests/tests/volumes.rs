//! docker 20.10's volumes (issues 17 and 21) through the real binary:
//! `volume create|ls|inspect|rm|prune`, `-v NAME:/path`, anonymous
//! volumes (`-v /path`, the image's `VOLUME`), `--mount`, `--tmpfs`,
//! `rm -v`, inspect's `.Mounts`, `ps --filter volume=`; attacks through
//! links in the image and in the store; a rootless user's volumes.

use barge_tests::image::{busybox_image, busybox_store};
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, stderr_of as err, stdout_of as out, Barge, User};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A busybox image whose `/seed` holds `file` (1234:1234, 0640,
/// CAP_NET_RAW as a file capability), `sub/deep` and a link, and whose
/// `/data` (the image's `VOLUME`) holds `image-data`.
fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&["setcap", "getcap"], &["--config.volume", "/data"], |rootfs| {
        let seed = rootfs.join("seed");
        std::fs::create_dir_all(seed.join("sub")).unwrap();
        std::fs::write(seed.join("file"), "seeded\n").unwrap();
        std::os::unix::fs::lchown(seed.join("file"), Some(1234), Some(1234)).unwrap();
        std::fs::set_permissions(seed.join("file"), std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        // File capabilities (an xattr), set after the owner: chown clears them.
        barge_tests::run_ok(
            std::process::Command::new("setcap")
                .arg("cap_net_raw+ep")
                .arg(seed.join("file")),
        );
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
    let Some((_reg, b, image)) = setup() else { return };
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
    assert_eq!(
        b.ok(&[
            "volume",
            "ls",
            "--filter",
            "name=web",
            "--format",
            "{{.Label \"team\"}}|{{.Label \"x\"}}|"
        ]),
        "a||\n"
    );
    let json: serde_json::Value = serde_json::from_str(
        b.ok(&["volume", "ls", "--filter", "name=web", "--format", "json"])
            .trim(),
    )
    .expect("volume ls json");
    assert!(json.get("Label").is_none() && json["Labels"] == "team=a", "{json}");
    let text = b.ok(&["volume", "inspect", "web"]);
    assert!(
        text.starts_with("[\n    {\n        \"CreatedAt\": "),
        "docker's layout: {text}"
    );
    // `inspect` finds a volume after containers and images, as docker's does.
    assert_eq!(b.ok(&["inspect", "web"]), text);
    let inspect: serde_json::Value = serde_json::from_str(&text).unwrap();
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

    // In use (by a stopped container too): refused with docker's message.
    // (On /data, the image's VOLUME gets no anonymous volume.)
    let id = b.ok(&["create", "-v", "web:/data", &image, "true"]).trim().to_string();
    assert_eq!(
        b.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]).trim(),
        random
    );
    assert_eq!(
        b.ok(&["volume", "ls", "-q", "--filter", "dangling=false"]).trim(),
        "web"
    );
    let o = b.run(&["volume", "rm", "web"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o).trim(),
        format!("Error response from daemon: remove web: volume is in use - [{id}]")
    );
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
    b.ok(&["rm", &id]);
    b.ok(&["volume", "rm", "web"]);
    assert_eq!(
        b.ok(&["volume", "prune", "-f"]),
        "Deleted Volumes:\nkept\n\nTotal reclaimed space: 0B\n"
    );
    assert!(volume_names(&b).is_empty());
    assert!(!mountpoint.exists());
}

#[test]
fn a_named_volume_is_made_on_first_use_and_filled_from_the_image() {
    let Some((_reg, b, image)) = setup() else { return };
    let got = b.sh(
        &image,
        &["-v", "seedvol:/seed"],
        "cat /seed/file /seed/sub/deep; stat -c '%u:%g %a' /seed/file; readlink /seed/link; echo new > /seed/added",
    );
    assert_eq!(got, "seeded\ndeep\n1234:1234 640\n/etc/passwd\n", "{got}");
    let data = b.root().join("volumes/seedvol/_data");
    let md = std::fs::metadata(data.join("file")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (1234, 1234, 0o640));
    let caps = barge_tests::run_ok(std::process::Command::new("getcap").arg(data.join("file")));
    assert!(caps.contains("cap_net_raw"), "the file capability was copied: {caps:?}");
    assert_eq!(std::fs::read_link(data.join("link")).unwrap(), Path::new("/etc/passwd"));
    assert_eq!(std::fs::read_to_string(data.join("added")).unwrap(), "new\n");
    // The next container sees what the first left; a volume with content is not filled again.
    std::fs::remove_file(data.join("file")).unwrap();
    let again = b.sh(
        &image,
        &["-v", "seedvol:/seed:ro"],
        "ls /seed; touch /seed/x 2>/dev/null || echo read-only",
    );
    assert_eq!(again, "added\nlink\nsub\nread-only\n", "{again}");
    // nocopy: an empty volume stays empty.
    let empty = b.sh(&image, &["-v", "bare:/seed:nocopy"], "ls -A /seed | wc -l");
    assert_eq!(empty.trim(), "0");
    // -v /path alone: an anonymous volume, filled too; --rm removes it with the container.
    let before = volume_names(&b);
    let anon = b
        .ok(&["run", "-d", "-v", "/seed", &image, "sleep", "60"])
        .trim()
        .to_string();
    let names = volume_names(&b);
    let new: Vec<&String> = names.iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(new.len(), 2, "the -v /seed volume and the image's /data: {names:?}");
    assert!(new.iter().all(|n| is_hex64(n)), "{new:?}");
    assert_eq!(
        b.ok(&["exec", &anon, "cat", "/seed/file", "/data/image-data"]),
        "seeded\nfrom the image\n"
    );
    b.ok(&["rm", "-f", &anon]);
    assert_eq!(
        volume_names(&b).len(),
        names.len(),
        "rm without -v keeps anonymous volumes"
    );
    let before = volume_names(&b);
    b.sh(&image, &["-v", "/seed"], "true");
    assert_eq!(volume_names(&b), before, "--rm removed its anonymous volumes");
    // A bad name in -v: one line, exit 125, before any pull (the image cannot be reached).
    for bad in ["../x:/d", "a/b:/d", "v:/proc/x", "v:rel"] {
        let o = b.run(&["run", "--rm", "-v", bad, "127.0.0.1:9/none", "true"]);
        assert_eq!(o.status.code(), Some(125), "{bad}: {o:?}");
        let e = err(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            !e.contains("127.0.0.1:9"),
            "refused before the image was looked for: {e}"
        );
    }
}

#[test]
fn mount_and_tmpfs_flags() {
    let Some((_reg, b, image)) = setup() else { return };
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("h"), "host\n").unwrap();
    let bind = format!("type=bind,source={},target=/h,readonly", host.path().display());
    let got = b.sh(
        &image,
        &[
            "--mount",
            "type=volume,source=mvol,target=/m",
            "--mount",
            "type=volume,src=mvol,dst=/ro,readonly",
            "--mount",
            &bind,
            "--mount",
            "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770",
            "--tmpfs",
            "/run/x:size=64k,mode=0700",
        ],
        "echo w > /m/f; cat /ro/f /h/h; touch /ro/g /h/g 2>/dev/null || echo ro; \
         grep -E ' /(t|run/x) ' /proc/mounts | cut -d' ' -f2-4; stat -c %a /t /run/x",
    );
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(&lines[..3], ["w", "host", "ro"], "{got}");
    assert!(
        lines[3].starts_with("/t tmpfs rw,nosuid,nodev,noexec")
            && lines[3].contains("size=1024k")
            && lines[3].contains("mode=1770"),
        "{got}"
    );
    assert!(
        lines[4].starts_with("/run/x tmpfs rw,nosuid,nodev,noexec") && lines[4].contains("size=64k"),
        "{got}"
    );
    assert_eq!(&lines[5..], ["1770", "700"], "{got}");
    assert!(!host.path().join("g").exists());
    // Refused with one line and exit 125 before anything is pulled or made.
    for (flag, value, says) in [
        ("--mount", "type=volume,target=/d,foo=bar", "unexpected key 'foo'"),
        ("--mount", "type=nfs,target=/d", "unknown mount type"),
        ("--mount", "type=volume,source=v", "target is required"),
        ("--mount", "type=tmpfs,target=/d,tmpfs-size=huge", "tmpfs-size"),
        ("--mount", "type=tmpfs,target=/d,tmpfs-mode=99", "octal"),
        ("--mount", "type=bind,source=/no/such/dir,target=/d", "does not exist"),
        ("--mount", "type=volume,source=../up,target=/d", "invalid characters"),
        ("--mount", "type=bind,source=/tmp,target=/d,volume-nocopy", "cannot mix"),
        ("--tmpfs", "/d:size=1m,dev", "invalid tmpfs option"),
        ("--tmpfs", "/proc/x", "cannot be mounted over"),
    ] {
        let o = b.run(&["run", "--rm", flag, value, "127.0.0.1:9/none", "true"]);
        assert_eq!(o.status.code(), Some(125), "{value}: {o:?}");
        let e = err(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains(says), "{value}: {e}");
    }
    let dup = b.run(&["run", "--rm", "-v", "a1:/d", "--tmpfs", "/d", &image, "true"]);
    assert!(err(&dup).contains("Duplicate mount point: /d"), "{dup:?}");
    assert_eq!(volume_names(&b), ["mvol"]);
}

#[test]
fn image_volumes_inspect_rm_v_and_ps_filter() {
    let Some((_reg, b, image)) = setup() else { return };
    let id = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "app",
            "-v",
            "named:/srv:ro",
            &image,
            "sleep",
            "60",
        ])
        .trim()
        .to_string();
    let c: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "app"])).unwrap();
    let mounts = c[0]["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 2, "{mounts:?}");
    let named = mounts.iter().find(|m| m["Destination"] == "/srv").unwrap();
    let anon = mounts.iter().find(|m| m["Destination"] == "/data").unwrap();
    assert_eq!(named["Type"], "volume");
    assert_eq!(named["Name"], "named");
    assert_eq!(
        named["Source"],
        b.root().join("volumes/named/_data").display().to_string()
    );
    assert_eq!(named["Driver"], "local");
    assert_eq!(named["Mode"], "ro");
    assert_eq!(named["RW"], false);
    assert_eq!(named["Propagation"], "");
    let anon_name = anon["Name"].as_str().unwrap().to_string();
    assert!(is_hex64(&anon_name), "{anon:?}");
    assert_eq!(anon["RW"], true);
    assert_eq!(c[0]["HostConfig"]["Binds"], serde_json::json!(["named:/srv:ro"]));
    assert_eq!(c[0]["Config"]["Volumes"], serde_json::json!({"/data": {}}));
    // ps --filter volume= by name and by destination.
    for filter in ["volume=named", &format!("volume={anon_name}"), "volume=/data"] {
        assert_eq!(
            b.ok(&["ps", "-q", "--no-trunc", "--filter", filter]).trim(),
            id,
            "{filter}"
        );
    }
    assert_eq!(b.ok(&["ps", "-q", "--filter", "volume=other"]).trim(), "");
    // A mount asked for covers the image's VOLUME: no anonymous volume then.
    let before = volume_names(&b);
    b.sh(
        &image,
        &["--mount", "type=volume,source=cover,target=/data"],
        "cat /data/image-data",
    );
    b.sh(&image, &["--tmpfs", "/data"], "true");
    let after = volume_names(&b);
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    // container prune leaves volumes; rm -v removes the anonymous one, not the named.
    b.ok(&["stop", "-t", "1", "app"]);
    b.ok(&["create", "--name", "other", &image, "true"]);
    b.ok(&["container", "prune", "-f", "--filter", "label=none"]);
    b.ok(&["rm", "other"]);
    assert!(volume_names(&b).contains(&anon_name));
    b.ok(&["rm", "-v", "app"]);
    let left = volume_names(&b);
    assert!(!left.contains(&anon_name), "{left:?}");
    assert!(left.contains(&"named".to_string()), "{left:?}");
    // The --mount form is in HostConfig.Mounts, --tmpfs in HostConfig.Tmpfs.
    b.ok(&[
        "create",
        "--name",
        "mnt",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "--tmpfs",
        "/u:size=8k",
        "--mount",
        "type=volume,target=/v,volume-nocopy",
        &image,
    ]);
    let c: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "mnt"])).unwrap();
    let hc = &c[0]["HostConfig"];
    assert_eq!(
        hc["Mounts"][0],
        serde_json::json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576}})
    );
    assert_eq!(
        hc["Mounts"][1],
        serde_json::json!({"Type": "volume", "Target": "/v", "VolumeOptions": {"NoCopy": true}})
    );
    assert!(hc["Tmpfs"]["/u"].as_str().unwrap().contains("size=8k"), "{hc}");
    assert_eq!(hc["Binds"], serde_json::Value::Null);
}

/// Images whose `/data` (their `VOLUME`) is a link to `/etc` or `../../../../etc`.
#[test]
fn links_in_the_image_or_the_store_never_reach_the_host() {
    if !require_root_and(&["docker-registry", "umoci", "skopeo"]) {
        return;
    }
    let reg = Registry::anonymous();
    for (tag, target) in [("abs", "/etc"), ("rel", "../../../../etc")] {
        busybox_image(&reg, "evil", tag, &["--config.volume", "/data"], |rootfs| {
            std::os::unix::fs::symlink(target, rootfs.join("data")).unwrap();
        });
    }
    let b = Barge::new();
    let marker = format!("barge-volume-attack-{}", std::process::id());
    let host_passwd = std::fs::read("/etc/passwd").unwrap();
    for tag in ["abs", "rel"] {
        let image = format!("{}/evil:{tag}", reg.host());
        b.ok(&["pull", "-q", &image]);
        for flags in [
            vec![],
            vec!["-v", "evilvol:/data"],
            vec!["-v", "/data"],
            vec!["--mount", "type=volume,target=/data"],
        ] {
            let mut args = vec!["run", "--rm"];
            args.extend(flags.iter().copied());
            let script = format!("echo pwned > /data/{marker}; echo x >> /data/passwd; cat /etc/{marker}");
            args.extend([image.as_str(), "sh", "-c", script.as_str()]);
            let o = b.run(&args);
            // docker's way: the volume is mounted on the container's own /etc.
            assert!(o.status.success(), "{tag} {flags:?}: {o:?}");
            assert_eq!(out(&o), "pwned\n");
            assert!(
                !Path::new("/etc").join(&marker).exists(),
                "{tag} {flags:?}: the host's /etc was written"
            );
            assert_eq!(std::fs::read("/etc/passwd").unwrap(), host_passwd, "{tag} {flags:?}");
        }
    }
    // The volume holds the image's /etc (copied inside the image), not the host's.
    let data = b.root().join("volumes/evilvol/_data");
    let copied = std::fs::read_to_string(data.join("passwd")).unwrap();
    assert!(
        copied.starts_with("root:x:0:0:root:/root:/bin/sh\napp:x:1234"),
        "{copied}"
    );

    // A volume whose _data became a link: refused at start, not followed.
    let image = format!("{}/evil:abs", reg.host());
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("keep"), "host file\n").unwrap();
    b.ok(&["volume", "create", "victim"]);
    let victim = b.root().join("volumes/victim/_data");
    std::fs::remove_dir(&victim).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &victim).unwrap();
    let o = b.run(&["run", "--rm", "-v", "victim:/x", &image, "sh", "-c", "touch /x/written"]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(err(&o).contains("not a plain directory"), "{o:?}");
    // A container made before the swap is refused at start too.
    b.ok(&["volume", "create", "later"]);
    b.ok(&[
        "create",
        "--name",
        "late",
        "-v",
        "later:/x",
        &image,
        "touch",
        "/x/written",
    ]);
    let later = b.root().join("volumes/later/_data");
    std::fs::remove_dir(&later).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &later).unwrap();
    let o = b.run(&["start", "-a", "late"]);
    assert!(!o.status.success(), "{o:?}");
    assert!(err(&o).contains("not a plain directory"), "{o:?}");
    b.ok(&["rm", "late"]);
    b.ok(&["volume", "rm", "victim", "later"]);
    let left: Vec<_> = std::fs::read_dir(elsewhere.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["keep"], "the link's target is untouched");
    assert_eq!(
        std::fs::read_to_string(elsewhere.path().join("keep")).unwrap(),
        "host file\n"
    );
}

/// A rootless user's volumes live in the user's store, are filled with
/// the image's owners as the user namespace maps them, and another user
/// and root see none of them.
#[test]
fn rootless_volumes_are_the_users_own() {
    const TOOLS: &[&str] = &["docker-registry", "umoci", "skopeo", "runuser", "useradd", "newuidmap"];
    if !require_root_and(TOOLS) {
        return;
    }
    let reg = Registry::anonymous();
    busybox_image(&reg, "busybox", "latest", &[], |rootfs| {
        let owned = rootfs.join("owned");
        std::fs::create_dir_all(&owned).unwrap();
        std::fs::write(owned.join("thousand"), "1000\n").unwrap();
        std::os::unix::fs::lchown(owned.join("thousand"), Some(1000), Some(1000)).unwrap();
    });
    let user = User::ensure("barge-rootless", Some(600000));
    let b = Barge::as_user(&user);
    let image = format!("{}/busybox", reg.host());
    b.ok(&["pull", "-q", &image]);
    let got = b.sh(
        &image,
        &[
            "-v",
            "mine:/owned",
            "--tmpfs",
            "/scratch:size=1m",
            "--mount",
            "type=volume,target=/anon",
        ],
        "stat -c %u /owned/thousand; echo hi > /owned/new; echo t > /scratch/t && echo t > /anon/a && cat /scratch/t",
    );
    assert_eq!(got, "1000\nt\n");
    let data = b.root().join("volumes/mine/_data");
    assert_eq!(std::fs::metadata(data.join("thousand")).unwrap().uid(), 600000 + 999);
    assert_eq!(std::fs::metadata(data.join("new")).unwrap().uid(), user.uid);
    assert_eq!(b.ok(&["volume", "ls", "-q"]).trim(), "mine");
    let other = Barge::as_user(&User::ensure("barge-rootless2", Some(700000)));
    assert_eq!(other.ok(&["volume", "ls", "-q"]).trim(), "");
    assert!(other.fails(&["volume", "inspect", "mine"]).contains("No such volume"));
    assert_eq!(Barge::new().ok(&["volume", "ls", "-q"]).trim(), "");
    b.ok(&["volume", "rm", "mine"]);
}
