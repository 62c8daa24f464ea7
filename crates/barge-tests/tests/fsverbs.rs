//! The filesystem verbs through the real binary: `cp` both ways (files,
//! directories, tar streams, `-a`, `-L`) on running and stopped
//! containers, paths that try to leave the container, `export`/`import`
//! and `commit`.

use barge_tests::canned::{CannedServer, Response};
use barge_tests::image::busybox_store;
use barge_tests::rawtar::RawTar;
use barge_tests::registry::Registry;
use barge_tests::{stderr_of as err, Barge};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |root| {
        // A directory a container replaces: its upper copy is opaque.
        std::fs::create_dir_all(root.join("opt/old")).unwrap();
        std::fs::write(root.join("opt/old/a"), "a").unwrap();
        std::fs::write(root.join("opt/keep"), "kept").unwrap();
    })
}

fn exec(b: &Barge, c: &str, script: &str) -> String {
    b.ok(&["exec", c, "sh", "-c", script])
}

/// Names in a tar stream.
fn names(tar: &[u8]) -> Vec<String> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Host → container and back, files and directories, with docker's rules
/// for existing and missing destinations, on a running container and a
/// stopped one.
#[test]
fn cp_both_ways_running_and_stopped() {
    let Some((_reg, b, image)) = setup() else { return };
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    std::fs::create_dir_all(h.join("tree/sub")).unwrap();
    std::fs::write(h.join("tree/top.txt"), "top").unwrap();
    std::fs::write(h.join("tree/sub/deep.txt"), "deep").unwrap();
    std::fs::write(h.join("one.txt"), "one").unwrap();
    b.ok(&["run", "-d", "--name", "cpr", &image, "sleep", "300"]);

    for (round, c) in ["running", "stopped"].iter().enumerate() {
        if round == 1 {
            b.ok(&["stop", "-t", "0", "cpr"]);
        }
        let n = round.to_string();
        // A file into an existing directory, and to a new name.
        b.ok(&["cp", p(&h.join("one.txt")), "cpr:/tmp"]);
        b.ok(&["cp", p(&h.join("one.txt")), &format!("cpr:/tmp/renamed{n}")]);
        // A directory to a missing path becomes it; into an existing one
        // it goes under its own name; `/.` copies its content.
        b.ok(&["cp", p(&h.join("tree")), &format!("cpr:/made{n}")]);
        b.ok(&["cp", p(&h.join("tree")), "cpr:/etc"]);
        b.ok(&["cp", &format!("{}/.", p(&h.join("tree"))), "cpr:/home"]);
        // A destination ending in / must exist.
        let e = b.fails(&["cp", p(&h.join("one.txt")), "cpr:/nodir/"]);
        assert!(e.contains("does not exist"), "{c}: {e}");
        // A directory onto a file is refused.
        let e = b.fails(&["cp", p(&h.join("tree")), "cpr:/etc/passwd"]);
        assert!(e.contains("cannot copy a directory"), "{c}: {e}");
        // Docker's message for a missing source, exit 1.
        let o = b.run(&["cp", "cpr:/nope", p(h)]);
        assert_eq!(o.status.code(), Some(1), "{c}");
        assert_eq!(err(&o).trim(), "Error: No such container:path: cpr:/nope", "{c}");
        // A file with a trailing slash is not a directory.
        let e = b.fails(&["cp", "cpr:/etc/passwd/", p(h)]);
        assert!(e.contains("not a directory"), "{c}: {e}");

        // Back out to the host.
        let back = h.join(format!("back{n}"));
        std::fs::create_dir(&back).unwrap();
        b.ok(&["cp", &format!("cpr:/made{n}"), p(&back.join("made"))]);
        b.ok(&["cp", "cpr:/etc/tree", p(&back)]);
        b.ok(&["cp", &format!("cpr:/tmp/renamed{n}"), p(&back.join("file"))]);
        b.ok(&["cp", "cpr:/home/.", p(&back.join("home"))]);
        assert_eq!(
            std::fs::read_to_string(back.join("made/top.txt")).unwrap(),
            "top",
            "{c}"
        );
        assert_eq!(std::fs::read_to_string(back.join("made/sub/deep.txt")).unwrap(), "deep");
        assert_eq!(std::fs::read_to_string(back.join("tree/sub/deep.txt")).unwrap(), "deep");
        assert_eq!(std::fs::read_to_string(back.join("file")).unwrap(), "one");
        assert_eq!(std::fs::read_to_string(back.join("home/top.txt")).unwrap(), "top");
        // A file onto an existing host file replaces it.
        b.ok(&["cp", "cpr:/etc/hostname", p(&back.join("file"))]);
        assert_ne!(std::fs::read_to_string(back.join("file")).unwrap(), "one");
    }
    // The stopped container's layers were mounted detached: nothing on the host's tree.
    let id = b.ok(&["inspect", "--format", "{{.Id}}", "cpr"]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(id.trim()), "nothing of the container is mounted");
    b.ok(&["start", "cpr"]);
    let seen = exec(
        &b,
        "cpr",
        "cat /tmp/one.txt /tmp/renamed0 /tmp/renamed1 /made0/sub/deep.txt /made1/top.txt /etc/tree/top.txt /home/sub/deep.txt",
    );
    assert_eq!(seen, "oneoneonedeeptoptopdeep");
    b.ok(&["rm", "-f", "cpr"]);
}

/// `-a` keeps owners both ways; without it the copy is the copying
/// user's (root in the container).
#[test]
fn cp_archive_keeps_owners() {
    let Some((_reg, b, image)) = setup() else { return };
    let host = tempfile::tempdir().unwrap();
    let f = host.path().join("owned");
    std::fs::write(&f, "x").unwrap();
    std::os::unix::fs::chown(&f, Some(1234), Some(5678)).unwrap();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "cpa",
        &image,
        "sh",
        "-c",
        "touch /app; chown 1000:1001 /app; sleep 300",
    ]);
    barge_tests::wait_until("/app is made", || {
        b.run(&["exec", "cpa", "test", "-e", "/app"]).status.success()
    });
    b.ok(&["cp", p(&f), "cpa:/plain"]);
    b.ok(&["cp", "-a", p(&f), "cpa:/kept"]);
    assert_eq!(exec(&b, "cpa", "stat -c %u:%g /plain /kept"), "0:0\n1234:5678\n");
    b.ok(&["cp", "cpa:/app", p(&host.path().join("mine"))]);
    b.ok(&["cp", "-a", "cpa:/app", p(&host.path().join("theirs"))]);
    let md = |n: &str| std::fs::metadata(host.path().join(n)).unwrap();
    assert_eq!((md("mine").uid(), md("mine").gid()), (0, 0));
    assert_eq!((md("theirs").uid(), md("theirs").gid()), (1000, 1001));
    b.ok(&["rm", "-f", "cpa"]);
}

/// `-` is a tar stream on either side; `-L` follows a symlink in SRC.
#[test]
fn cp_tar_streams_and_links() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "cps",
        &image,
        "sh",
        "-c",
        "ln -s /etc/passwd /lnk; sleep 300",
    ]);
    barge_tests::wait_until("/lnk is made", || {
        b.run(&["exec", "cps", "test", "-L", "/lnk"]).status.success()
    });
    let o = b.run(&["cp", "cps:/etc", "-"]);
    assert!(o.status.success(), "{}", err(&o));
    let listed = names(&o.stdout);
    assert!(
        listed.contains(&"etc".to_string()) || listed.contains(&"etc/".to_string()),
        "{listed:?}"
    );
    assert!(listed.contains(&"etc/passwd".to_string()), "{listed:?}");

    let tar = RawTar::new()
        .dir("in", 0o755)
        .file("in/a.txt", b"from a stream", 0o640)
        .bytes();
    let o = b.run_with_input(&["cp", "-", "cps:/tmp"], &tar);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        exec(&b, "cps", "cat /tmp/in/a.txt; stat -c %a /tmp/in/a.txt"),
        "from a stream640\n"
    );
    let o = b.run_with_input(&["cp", "-", "cps:/etc/passwd"], &tar);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("must be a directory"), "{}", err(&o));

    let host = tempfile::tempdir().unwrap();
    b.ok(&["cp", "cps:/lnk", p(&host.path().join("link"))]);
    let md = std::fs::symlink_metadata(host.path().join("link")).unwrap();
    assert!(md.file_type().is_symlink(), "without -L the link itself");
    b.ok(&["cp", "-L", "cps:/lnk", p(&host.path().join("followed"))]);
    let text = std::fs::read_to_string(host.path().join("followed")).unwrap();
    assert!(text.starts_with("root:"), "with -L the file: {text}");
    let o = b.run(&["cp", "-L", "cps:/lnk", "-"]);
    assert_eq!(names(&o.stdout), ["lnk"]);
    b.ok(&["rm", "-f", "cps"]);
}

/// Paths resolve inside the container: a symlink to /etc, `..`, and an
/// absolute symlink in an intermediate component reach the container's
/// files, never the host's; a hostile tar stream stays in its directory.
#[test]
fn cp_stays_inside_the_container() {
    let Some((_reg, b, image)) = setup() else { return };
    let canary = format!("barge-cp-canary-{}", std::process::id());
    let host_canary = Path::new("/etc").join(&canary);
    std::fs::write(&host_canary, "host secret").unwrap();
    let script = format!(
        "ln -s /etc /escape; ln -s /etc/{canary} /leak; mkdir /d; ln -s / /d/root; ln -s ../../../../etc /d/up; sleep 300"
    );
    b.ok(&["run", "-d", "--name", "cpx", &image, "sh", "-c", &script]);
    barge_tests::wait_until("the links are made", || {
        b.run(&["exec", "cpx", "test", "-L", "/d/up"]).status.success()
    });
    let host = tempfile::tempdir().unwrap();
    let payload = host.path().join("payload");
    std::fs::write(&payload, "payload").unwrap();
    let before = std::fs::read_dir("/etc").unwrap().count();

    for round in ["running", "stopped"] {
        if round == "stopped" {
            b.ok(&["stop", "-t", "0", "cpx"]);
        }
        // Reads: the link names a host file the container lacks.
        for src in [
            "cpx:/leak".to_string(),
            format!("cpx:/escape/{canary}"),
            format!("cpx:/../../../../etc/{canary}"),
            format!("cpx:/d/root/etc/{canary}"),
            format!("cpx:/d/up/{canary}"),
        ] {
            let o = b.run(&["cp", "-L", &src, p(&host.path().join("got"))]);
            assert_eq!(o.status.code(), Some(1), "{round} {src}");
            assert!(err(&o).contains("No such container:path"), "{round} {src}: {}", err(&o));
            assert!(
                !host.path().join("got").exists(),
                "{round} {src}: the host's file was read"
            );
        }
        // Writes: through the same links, into the container's /etc.
        for (i, dest) in [
            "cpx:/escape/w1",
            "cpx:/../../etc/w2",
            "cpx:/d/root/etc/w3",
            "cpx:/d/up/w4",
        ]
        .iter()
        .enumerate()
        {
            let dest = format!("{dest}-{round}");
            b.ok(&["cp", p(&payload), &dest]);
            assert!(
                !Path::new(&format!("/etc/w{}-{round}", i + 1)).exists(),
                "{round}: {dest} wrote the host's /etc"
            );
        }
        // A tar stream with `../` names, links then files through them.
        let tar = RawTar::new()
            .symlink("out", "/")
            .file(&format!("out/t1-{round}"), b"t1", 0o644)
            .symlink("up", "../../../../..")
            .file(&format!("up/t2-{round}"), b"t2", 0o644)
            .bytes();
        let o = b.run_with_input(&["cp", "-", "cpx:/tmp"], &tar);
        assert!(o.status.success(), "{round}: {}", err(&o));
        for hostile in [
            RawTar::new().file("../../../../etc/t3", b"t3", 0o644).bytes(),
            RawTar::new()
                .symlink("gone", "/etc")
                .file("gone/t4", b"t4", 0o644)
                .bytes(),
        ] {
            let o = b.run_with_input(&["cp", "-", "cpx:/tmp"], &hostile);
            assert_eq!(o.status.code(), Some(1), "{round}: refused: {}", err(&o));
        }
        for t in ["t1-running", "t2-running", "t1-stopped", "t2-stopped", "t3", "t4"] {
            assert!(!Path::new("/etc").join(t).exists(), "{round}: the host's /etc/{t}");
        }
    }
    assert_eq!(
        std::fs::read_dir("/etc").unwrap().count(),
        before,
        "nothing new in the host's /etc"
    );
    assert_eq!(std::fs::read_to_string(&host_canary).unwrap(), "host secret");
    std::fs::remove_file(&host_canary).unwrap();
    b.ok(&["start", "cpx"]);
    let inside = exec(&b, "cpx", "cat /etc/w1-running /etc/w4-stopped; ls /tmp");
    assert_eq!(
        inside, "payloadpayloadgone\nout\nt1-running\nt1-stopped\nt2-running\nt2-stopped\nup\n",
        "the writes landed inside: {inside}"
    );
    b.ok(&["rm", "-f", "cpx"]);
}

/// `export` of a running and a stopped container, `import` of the
/// archive (plain, gzip on stdin, with `-c` and `-m`) run as an image.
#[test]
fn export_then_import_round_trip() {
    let Some((_reg, b, image)) = setup() else { return };
    let script = "echo hi > /etc/made; rm /bin/ls; mkdir -p /data/sub; echo deep > /data/sub/f; echo ready; sleep 300";
    b.ok(&["run", "-d", "--name", "exp", &image, "sh", "-c", script]);
    barge_tests::wait_until("the changes are made", || b.ok(&["logs", "exp"]).contains("ready"));
    let o = b.run(&["export", "exp"]);
    assert!(o.status.success(), "{}", err(&o));
    let running = names(&o.stdout);
    for want in ["etc/made", "data/sub/f", "bin/busybox", "etc/passwd", "proc/"] {
        assert!(running.iter().any(|n| n == want), "{want} in {running:?}");
    }
    assert!(!running.iter().any(|n| n == "bin/ls"), "the deleted file is gone");
    assert!(
        !running.iter().any(|n| n.starts_with("proc/") && n != "proc/"),
        "nothing of the container's /proc"
    );
    assert!(!running.iter().any(|n| n.starts_with('/') || n.starts_with("./")));

    b.ok(&["stop", "-t", "0", "exp"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exp.tar");
    b.ok(&["export", "-o", p(&file), "exp"]);
    let stopped = names(&std::fs::read(&file).unwrap());
    assert!(stopped.iter().any(|n| n == "etc/made") && !stopped.iter().any(|n| n == "bin/ls"));

    let t = b.on_terminal("export exp").output().unwrap();
    assert!(
        String::from_utf8_lossy(&t.stdout)
            .contains("cowardly refusing to save to a terminal. Use the -o flag or redirect"),
        "{}",
        String::from_utf8_lossy(&t.stdout)
    );
    assert!(!t.status.success());

    // A plain file, then gzip on stdin with changes and a message.
    let id = b.ok(&["import", p(&file), "imported:plain"]);
    assert!(id.trim().starts_with("sha256:") && id.trim().len() == 71, "{id}");
    assert_eq!(
        b.ok(&["run", "--rm", "imported:plain", "cat", "/etc/made", "/data/sub/f"]),
        "hi\ndeep\n"
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &std::fs::read(&file).unwrap()).unwrap();
    let gz = gz.finish().unwrap();
    let o = b.run_with_input(
        &[
            "import",
            "-c",
            "CMD [\"cat\", \"/etc/made\"]",
            "-c",
            "ENV GREETING=hello",
            "-m",
            "from a pipe",
            "-",
            "imported:gz",
        ],
        &gz,
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(b.ok(&["run", "--rm", "imported:gz"]), "hi\n");
    assert_eq!(
        b.ok(&["run", "--rm", "imported:gz", "sh", "-c", "echo $GREETING"]),
        "hello\n"
    );
    let history = b.ok(&["history", "--no-trunc", "--format", "{{.Comment}}", "imported:gz"]);
    assert_eq!(history.trim(), "from a pipe");
    // From a URL, for another platform; the comment names the source.
    let web = CannedServer::start(vec![("/exp.tar.gz", Response::new(200, "application/gzip", gz))]);
    let url = format!("http://{}/exp.tar.gz", web.host());
    b.ok(&["import", "--platform", "linux/arm64", &url, "imported:url"]);
    let arch = b.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Os}}/{{.Architecture}}",
        "imported:url",
    ]);
    assert_eq!(arch.trim(), "linux/arm64");
    let history = b.ok(&["history", "--no-trunc", "--format", "{{.Comment}}", "imported:url"]);
    assert_eq!(history.trim(), format!("Imported from {url}"));
    let o = b.run(&["import", "-c", "RUN true", p(&file)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("run is not a valid change command"), "{}", err(&o));
    b.ok(&["rm", "-f", "exp"]);
}

/// `commit`: the container's changes as a layer (whiteouts, an opaque
/// directory) on its image, `-c` changes, `-m`, `-a`; the image runs,
/// pushes, and skopeo reads its config and history.
#[test]
fn commit_runs_and_pushes() {
    let Some((reg, b, image)) = setup() else { return };
    let script =
        "echo new > /etc/new; rm /bin/ls; rm -rf /opt/old; mkdir /opt/old; echo b > /opt/old/b; echo ready; sleep 300";
    b.ok(&["run", "-d", "--name", "com", &image, "sh", "-c", script]);
    barge_tests::wait_until("the changes are made", || b.ok(&["logs", "com"]).contains("ready"));
    let target = format!("{}/committed:v1", reg.host());
    let id = b.ok(&[
        "commit",
        "-m",
        "a message",
        "-a",
        "Someone <someone@example.com>",
        "-c",
        "ENV FOO=bar",
        "-c",
        "CMD [\"cat\", \"/etc/new\"]",
        "-c",
        "LABEL purpose=test",
        "-c",
        "WORKDIR /opt",
        "-c",
        "EXPOSE 8080/tcp",
        "com",
        &target,
    ]);
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert!(
        b.ok(&["ps", "--format", "{{.Status}}"]).starts_with("Up"),
        "running again after the pause"
    );
    assert_eq!(b.ok(&["run", "--rm", &target]), "new\n");
    let seen = b.ok(&[
        "run",
        "--rm",
        &target,
        "sh",
        "-c",
        "echo $FOO; pwd; test -e /bin/ls || echo no-ls; ls /opt/old; cat /opt/keep",
    ]);
    assert_eq!(
        seen, "bar\n/opt\nno-ls\nb\nkept",
        "the change, the deletion, the opaque directory"
    );
    let o = b.run(&["commit", "-c", "FROM scratch", "com"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("from is not a valid change command"), "{}", err(&o));
    // Stopped, without pausing: a second layer on the first image.
    b.ok(&["stop", "-t", "0", "com"]);
    let again = b.ok(&["commit", "--pause=false", "com"]);
    assert!(again.trim().starts_with("sha256:"), "{again}");

    // The layer's entries: a whiteout and an opaque marker.
    let layers = b.ok(&["image", "inspect", "--format", "{{json .RootFS.Layers}}", &target]);
    let layers: Vec<String> = serde_json::from_str(layers.trim()).unwrap();
    assert_eq!(layers.len(), 2, "the base's layer and the commit's");

    b.ok(&["push", &target]);
    let skopeo = |args: &[&str]| {
        let o = std::process::Command::new("skopeo").args(args).output().unwrap();
        assert!(o.status.success(), "skopeo {args:?}: {}", err(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &format!("docker://{target}")]);
    let last = raw["layers"][1]["digest"].as_str().unwrap().to_string();
    let blob = std::fs::read(
        b.root()
            .join("oci/blobs/sha256")
            .join(last.trim_start_matches("sha256:")),
    )
    .unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&blob[..]).read_to_end(&mut tar).unwrap();
    let entries = names(&tar);
    for want in ["bin/.wh.ls", "opt/old/.wh..wh..opq", "opt/old/b", "etc/new"] {
        assert!(entries.iter().any(|e| e == want), "{want} in {entries:?}");
    }
    let config = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        &format!("docker://{target}"),
    ]);
    assert_eq!(config["author"], "Someone <someone@example.com>");
    let env = config["config"]["Env"].to_string();
    assert!(env.contains("FOO=bar"), "{env}");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["cat", "/etc/new"]));
    assert_eq!(config["config"]["Labels"]["purpose"], "test");
    assert_eq!(config["config"]["WorkingDir"], "/opt");
    assert!(config["config"]["ExposedPorts"]["8080/tcp"].is_object());
    let history = config["history"].as_array().unwrap();
    let row = history.last().unwrap();
    assert_eq!(row["comment"], "a message");
    assert_eq!(row["author"], "Someone <someone@example.com>");
    assert!(
        row["created_by"].as_str().unwrap().starts_with("sh -c echo new"),
        "{row}"
    );
    assert!(row.get("empty_layer").is_none());
    let nop = history
        .iter()
        .filter(|r| r["created_by"].to_string().contains("#(nop)"))
        .count();
    assert_eq!(nop, 0, "one row for the commit, none for its changes: {history:?}");
    assert_eq!(
        history[history.len() - 2]["created_by"],
        "umoci config",
        "the base's rows kept"
    );
    b.ok(&["rm", "-f", "com"]);
}

/// `cp` as a user (rootless barge), both ways, on a running container and
/// a stopped one (its layers mounted in the user's namespace, `userxattr`).
#[test]
fn cp_as_a_user() {
    let Some((_reg, b, user, image)) = barge_tests::image::busybox_store_as("barge-rootless", 600000) else {
        return;
    };
    let host = tempfile::tempdir().unwrap();
    user.give(host.path());
    let f = host.path().join("mine");
    std::fs::write(&f, "mine").unwrap();
    user.give(&f);
    // /home replaced: its upper copy is opaque (user.overlay.opaque, rootless).
    let script = "rm -rf /home; mkdir /home; echo y > /home/new; sleep 300";
    b.ok(&["run", "-d", "--name", "ucp", &image, "sh", "-c", script]);
    barge_tests::wait_until("/home is replaced", || {
        b.run(&["exec", "ucp", "test", "-e", "/home/new"]).status.success()
    });
    b.ok(&["cp", p(&f), "ucp:/tmp/mine"]);
    assert_eq!(exec(&b, "ucp", "cat /tmp/mine; stat -c %u /tmp/mine"), "mine0\n");
    b.ok(&["cp", "ucp:/etc/passwd", p(&host.path().join("passwd"))]);
    assert_eq!(std::fs::metadata(host.path().join("passwd")).unwrap().uid(), user.uid);
    b.ok(&["stop", "-t", "0", "ucp"]);
    b.ok(&["cp", p(&f), "ucp:/tmp/stopped"]);
    b.ok(&["cp", "ucp:/tmp/mine", p(&host.path().join("back"))]);
    let o = b.run(&["cp", "ucp:/home", "-"]);
    assert_eq!(
        names(&o.stdout),
        ["home/", "home/new"],
        "the opaque directory hides the image's /home/app"
    );
    assert_eq!(std::fs::read_to_string(host.path().join("back")).unwrap(), "mine");
    b.ok(&["start", "ucp"]);
    assert_eq!(exec(&b, "ucp", "cat /tmp/stopped; stat -c %u /tmp/stopped"), "mine0\n");
    b.ok(&["rm", "-f", "ucp"]);
}
