//! `barge build`: scratch images from busybox-static, RUN layers with
//! whiteouts seen after a pull elsewhere, reproducible digests, the layer
//! cache, multi-stage builds, and Dockerfile errors.

use barge_tests::image::busybox_image;
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, run_ok, Barge};
use std::path::Path;
use std::process::{Command, Output};

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `barge build -q` of `ctx` with `SOURCE_DATE_EPOCH=epoch`: the image ID.
fn build_at_epoch(b: &Barge, ctx: &Path, epoch: &str) -> String {
    let o = b
        .command()
        .args(["build", "-q", ctx.to_str().unwrap()])
        .env("SOURCE_DATE_EPOCH", epoch)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A context with the static busybox and a Dockerfile.
fn scratch_context(dockerfile: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    write(ctx.path(), "Dockerfile", dockerfile);
    ctx
}

const SCRATCH: &str = "FROM scratch\nCOPY busybox /busybox\nCMD [\"/busybox\", \"echo\", \"hi from scratch\"]\n";

#[test]
fn a_scratch_image_is_its_binary_and_runs() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(SCRATCH);
    let b = Barge::new();
    let o = b.run(&["build", "-t", "demo:1", ctx.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("Step 2/3 : COPY busybox /busybox"), "{stdout}");
    assert!(stdout.contains("Successfully tagged demo:1"), "{stdout}");

    // SIZE: the binary, and no more than a few hundred bytes besides.
    let binary = std::fs::metadata("/bin/busybox").unwrap().len();
    let size: u64 = b
        .ok(&["inspect", "--format", "{{.Size}}", "demo:1"])
        .trim()
        .parse()
        .unwrap();
    assert!(size >= binary && size - binary <= 512, "size {size}, binary {binary}");
    let listed = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"]);
    assert!(
        listed.contains("demo:1 1.98MB") || listed.contains("demo:1 "),
        "{listed}"
    );

    // History: one COPY layer, the CMD a 0B metadata step, as docker shows them.
    let h = b.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        "demo:1",
    ]);
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(lines.len(), 2, "{h}");
    assert_eq!(
        lines[0],
        "/bin/sh -c #(nop)  CMD [\"/busybox\" \"echo\" \"hi from scratch\"]|0B"
    );
    assert!(
        lines[1].starts_with("/bin/sh -c #(nop) COPY file:") && lines[1].contains(" in /busybox"),
        "{h}"
    );
    assert!(!lines[1].ends_with("|0B"), "{h}");
    let cfg: serde_json::Value =
        serde_json::from_str(&b.ok(&["inspect", "--format", "{{json .Config}}", "demo:1"])).unwrap();
    assert_eq!(cfg["Cmd"], serde_json::json!(["/busybox", "echo", "hi from scratch"]));

    let o = b.run(&["run", "--rm", "demo:1"]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi from scratch\n");
}

#[test]
fn the_same_context_builds_the_same_digest() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "FROM scratch\nCOPY busybox /bin/\nCOPY files/ /files/\nLABEL a=b\nENV X=1\nENTRYPOINT [\"/bin/busybox\"]\n",
    );
    write(ctx.path(), "files/b.txt", "bee\n");
    write(ctx.path(), "files/a.txt", "ay\n");
    write(ctx.path(), "files/sub/c.txt", "sea\n");
    let ids = |b: &Barge| {
        let id = b
            .ok(&["build", "-q", "--reproducible", ctx.path().to_str().unwrap()])
            .trim()
            .to_string();
        let manifest = b
            .ok(&["inspect", "--format", "{{.Descriptor.digest}}", &id])
            .trim()
            .to_string();
        (id, manifest)
    };
    // Two stores: no shared cache. Files touched in between: mtimes do not count.
    let first = ids(&Barge::new());
    run_ok(
        Command::new("touch")
            .arg(ctx.path().join("files/a.txt"))
            .arg(ctx.path().join("busybox")),
    );
    let second = ids(&Barge::new());
    assert_eq!(first, second, "image ID and manifest digest");
    assert!(first.0.starts_with("sha256:"));

    // SOURCE_DATE_EPOCH sets every time in the image, and still reproducibly.
    let at = |b: &Barge| {
        let id = build_at_epoch(b, ctx.path(), "1700000000");
        (
            id.clone(),
            b.ok(&["inspect", "--format", "{{.Created}}", &id]).trim().to_string(),
        )
    };
    let (id1, created) = at(&Barge::new());
    let (id2, _) = at(&Barge::new());
    assert_eq!(id1, id2);
    assert_ne!(id1, first.0);
    assert_eq!(created, "2023-11-14T22:13:20Z");

    // A changed file changes the digest.
    write(ctx.path(), "files/a.txt", "changed\n");
    assert_ne!(ids(&Barge::new()).0, first.0);
}

/// Seconds since 1970 of an RFC 3339 `created` with no fraction, in UTC.
fn unix_secs(created: &str) -> i64 {
    run_ok(Command::new("date").args(["-u", "-d", created, "+%s"]))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn created_is_the_build_time_unless_a_time_is_pinned() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context("FROM scratch\nCOPY busybox /busybox\nCMD [\"/busybox\", \"true\"]\n");
    let c = ctx.path().to_str().unwrap();
    let b = Barge::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let id = b.ok(&["build", "-q", "-t", "now:1", c]).trim().to_string();
    let created = b.ok(&["inspect", "-f", "{{.Created}}", &id]).trim().to_string();
    assert!((unix_secs(&created) - now).abs() < 60, "created {created}, now {now}");
    // The new history rows say so too, and `images` shows a recent image.
    let h = b.ok(&["history", "--format", "{{.CreatedSince}}", "now:1"]);
    let rows: Vec<&str> = h.lines().collect();
    assert_eq!(rows.len(), 2, "{h}");
    assert!(rows.iter().all(|r| r.contains("second")), "{h}");
    let listed = b.ok(&["images", "--format", "{{.Repository}} {{.CreatedSince}}"]);
    assert!(listed.contains("now ") && listed.contains("second"), "{listed}");
    // A fully cached rebuild is the same image, as docker's.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(b.ok(&["build", "-q", c]).trim(), id);

    // SOURCE_DATE_EPOCH wins, as BuildKit's.
    let pinned = build_at_epoch(&b, ctx.path(), "1700000000");
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.Created}}", &pinned]).trim(),
        "2023-11-14T22:13:20Z"
    );
    // --reproducible: the clamped time, the same ID from any store.
    let repro = |b: &Barge| b.ok(&["build", "-q", "--reproducible", c]).trim().to_string();
    let r1 = repro(&b);
    assert_eq!(r1, repro(&Barge::new()));
    assert_ne!(r1, id);
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.Created}}", &r1]).trim(),
        "1970-01-01T00:00:00Z"
    );

    // FROM scratch: docker's default PATH.
    let env = b.ok(&["inspect", "-f", "{{json .Config.Env}}", &id]);
    assert_eq!(
        env.trim(),
        r#"["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]"#
    );
}

/// A Dockerfile that makes a busybox base from scratch, then changes it.
const WITH_RUN: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc/old /keep && echo gone > /etc/old/file && echo stays > /keep/file && echo x > /etc/removed
ARG FLAVOUR=plain
RUN rm -rf /etc/old /etc/removed && echo "$FLAVOUR" > /keep/flavour && touch /keep/new
CMD ["/bin/sh", "-c", "ls /etc /keep; cat /keep/flavour"]
"#;

#[test]
fn run_layers_carry_whiteouts_that_hold_after_a_pull_elsewhere() {
    if !require_root_and(&["busybox", "docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let ctx = scratch_context(WITH_RUN);
    let b = Barge::new();
    let o = b.run(&[
        "build",
        "--build-arg",
        "FLAVOUR=spicy",
        "-t",
        "runs:1",
        ctx.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let h = b.ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "runs:1"]);
    assert!(h.contains("|1 FLAVOUR=spicy /bin/sh -c rm -rf /etc/old"), "{h}");

    let reg = Registry::anonymous();
    let name = format!("{}/runs:1", reg.host());
    b.ok(&["tag", "runs:1", &name]);
    b.ok(&["push", &name]);

    // The last layer holds whiteouts for what RUN deleted.
    let raw =
        run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{name}")]));
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let last = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = barge_tests::image::agent()
        .get(format!("{}/v2/runs/blobs/{last}", reg.base_url()))
        .call()
        .unwrap()
        .into_body()
        .read_to_vec()
        .unwrap();
    let mut names = Vec::new();
    for e in tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]))
        .entries()
        .unwrap()
    {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(names.contains(&"etc/.wh.old".to_string()), "{names:?}");
    assert!(names.contains(&"etc/.wh.removed".to_string()), "{names:?}");
    assert!(names.contains(&"keep/new".to_string()), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("proc") || n.starts_with("etc/hosts")),
        "{names:?}"
    );

    // Pulled into another store and run: the deleted files are gone.
    let other = Barge::new();
    let o = other.run(&["run", "--rm", &name]);
    let shown = out(&o);
    assert!(o.status.success(), "{shown}");
    assert!(!shown.contains("old") && !shown.contains("removed"), "{shown}");
    assert!(
        shown.contains("flavour") && shown.contains("new") && shown.contains("spicy"),
        "{shown}"
    );

    // And umoci, applying the layers its own way, agrees.
    let work = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:img", work.path().join("layout").display());
    run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &layout,
    ]));
    run_ok(
        Command::new("umoci")
            .args([
                "unpack",
                "--image",
                &format!("{}:img", work.path().join("layout").display()),
            ])
            .arg(work.path().join("bundle")),
    );
    let rootfs = work.path().join("bundle/rootfs");
    assert!(!rootfs.join("etc/old").exists() && !rootfs.join("etc/removed").exists());
    assert_eq!(std::fs::read_to_string(rootfs.join("keep/file")).unwrap(), "stays\n");
    assert_eq!(std::fs::read_to_string(rootfs.join("keep/flavour")).unwrap(), "spicy\n");
}

#[test]
fn unchanged_steps_reuse_their_layers() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY app.txt /app.txt\nRUN wc -c /app.txt > /count\n",
    );
    write(ctx.path(), "app.txt", "one\n");
    let b = Barge::new();
    let build = |b: &Barge| {
        let o = b.run(&["build", "-t", "cached:1", ctx.path().to_str().unwrap()]);
        assert!(o.status.success(), "{}", out(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let first = build(&b);
    assert_eq!(first.matches("Using cache").count(), 0, "{first}");
    assert_eq!(first.matches("Running in").count(), 2, "{first}");
    let id1 = b.ok(&["inspect", "--format", "{{.Id}}", "cached:1"]);
    let second = build(&b);
    assert_eq!(second.matches("Using cache").count(), 4, "{second}");
    assert_eq!(second.matches("Running in").count(), 0, "nothing ran again: {second}");
    assert_eq!(b.ok(&["inspect", "--format", "{{.Id}}", "cached:1"]), id1);
    // A changed file: the steps before it stay cached, the ones from it run again.
    write(ctx.path(), "app.txt", "three\n");
    let third = build(&b);
    assert_eq!(third.matches("Using cache").count(), 2, "{third}");
    assert_eq!(third.matches("Running in").count(), 1, "{third}");
    let o = b.run(&["run", "--rm", "cached:1", "cat", "/count"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "6 /app.txt");
    // --no-cache runs everything.
    let o = b.run(&["build", "--no-cache", ctx.path().to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).matches("Using cache").count(), 0);
}

#[test]
fn copy_add_globs_ignore_files_and_a_stored_base() {
    if !require_root_and(&["busybox", "docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::anonymous();
    busybox_image(&reg, "base", "1", &[], |_| {});
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    write(c, "src/a.conf", "a\n");
    write(c, "src/b.conf", "b\n");
    write(c, "src/skip.log", "log\n");
    write(c, "src/nested/deep.conf", "deep\n");
    write(c, ".dockerignore", "**/*.log\nsecret\n");
    write(c, "secret", "do not ship\n");
    // A tar for ADD to extract.
    let tar_path = c.join("bundle.tar.gz");
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(&tar_path).unwrap(), flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    let mut h = tar::Header::new_ustar();
    h.set_size(8);
    h.set_mode(0o600);
    h.set_uid(1234);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    t.append_data(&mut h, "inside/file.txt", &b"from tar"[..]).unwrap();
    t.into_inner().unwrap().finish().unwrap();
    write(
        c,
        "Dockerfile",
        &format!(
            "ARG BASE={}/base:1\nFROM $BASE\nWORKDIR /etc/app\nCOPY src/*.conf ./\nCOPY --chown=app:audio src/nested nested/\nADD bundle.tar.gz /opt/\nUSER app\nEXPOSE 8080 53/udp\nVOLUME /data\nSTOPSIGNAL SIGINT\n",
            reg.host()
        ),
    );
    let b = Barge::new();
    let o = b.run(&["build", "--label", "built.by=barge", "-t", "app:1", c.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let ls = b.ok(&[
        "run",
        "--rm",
        "--user",
        "0",
        "app:1",
        "sh",
        "-c",
        "cd /etc/app && ls -n . nested /opt/inside && cat /opt/inside/file.txt; ls / ",
    ]);
    assert!(
        ls.contains("a.conf") && ls.contains("b.conf") && ls.contains("deep.conf"),
        "{ls}"
    );
    assert!(!ls.contains("skip.log") && !ls.contains("secret"), "{ls}");
    assert!(ls.contains("1234     29") && ls.contains("from tar"), "{ls}");
    let cfg: serde_json::Value =
        serde_json::from_str(&b.ok(&["inspect", "--format", "{{json .Config}}", "app:1"])).unwrap();
    assert_eq!(cfg["User"], "app");
    assert_eq!(cfg["WorkingDir"], "/etc/app");
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert_eq!(cfg["Labels"]["built.by"], "barge");
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object() && cfg["ExposedPorts"]["53/udp"].is_object());
    assert!(cfg["Volumes"]["/data"].is_object());
    assert_eq!(cfg["Cmd"], serde_json::json!(["/bin/sh"]), "inherited from the base");
    // Base history comes first, then ours.
    let h = b.ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "app:1"]);
    assert!(h.lines().next().unwrap().contains("STOPSIGNAL SIGINT"), "{h}");
}

#[test]
fn dockerfile_errors_name_the_line() {
    if !require_root_and(&[]) {
        return;
    }
    let ctx = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/etc", ctx.path().join("hostetc")).unwrap();
    let b = Barge::new();
    let c = ctx.path().to_str().unwrap();
    for (dockerfile, expected) in [
        (
            "FROM scratch\nCOPY a /a\nHEALTHCHECK --interval=5 CMD true\n",
            "line 3: HEALTHCHECK: --interval=5: expected a duration",
        ),
        ("FROM scratch\nFROB x\n", "line 2: unknown instruction: FROB"),
        ("COPY a /a\n", "line 1: COPY: a Dockerfile must begin with FROM"),
        (
            "FROM scratch\nCOPY missing /x\n",
            "line 2: COPY: missing: file not found in build context",
        ),
        (
            "FROM scratch\nCOPY ../etc/passwd /x\n",
            "forbidden path outside the build context",
        ),
        ("FROM scratch\nRUN true\n", "line 2: RUN: there is nothing to run it in"),
        (
            "FROM scratch AS a\nFROM scratch AS A\n",
            "line 2: FROM: duplicate stage name \"a\"",
        ),
        (
            "FROM scratch\nCOPY --from=0 /a /a\n",
            "line 2: COPY: --from=0: a stage can only copy from the stages before it",
        ),
        ("FROM scratch\nEXPOSE 99999\n", "invalid port"),
        ("FROM scratch\nENV LONELY\n", "line 2: ENV: LONELY needs a value"),
        ("FROM scratch\nCOPY a b /x\n", "must be a directory and end with a /"),
        (
            "FROM scratch\nADD git@example.com:me/repo.git /x\n",
            "ADD of a git repository is not supported",
        ),
    ] {
        write(ctx.path(), "Dockerfile", dockerfile);
        write(ctx.path(), "a", "a");
        write(ctx.path(), "b", "b");
        let e = b.fails(&["build", c]);
        assert!(e.contains(expected), "{dockerfile:?}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    }
    let e = b.fails(&["build", "/nonexistent/context"]);
    assert!(e.contains("not found or not a directory"), "{e}");
}

/// Mistakes that need no variable are the parser's: found, with their
/// line, before any step runs or the base image is looked for (the base
/// here is on a port where nothing listens).
#[test]
fn dockerfile_mistakes_are_found_before_any_step_runs() {
    if !require_root_and(&[]) {
        return;
    }
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "a", "a");
    let b = Barge::new();
    let c = ctx.path().to_str().unwrap();
    for (dockerfile, expected) in [
        (
            "FROM 127.0.0.1:9/absent\nCOPY --chmod=9 a /a\n",
            "line 2: COPY: --chmod=9: expected an octal mode such as 755",
        ),
        (
            "FROM 127.0.0.1:9/absent\nADD --checksum=sha256:00 a /a\n",
            "line 2: ADD: --checksum=sha256:00: expected sha256: and 64 hexadecimal digits",
        ),
        (
            "FROM 127.0.0.1:9/absent\nENV A=1\nSHELL /bin/bash -c\n",
            "line 3: SHELL: needs the JSON form",
        ),
        (
            "FROM 127.0.0.1:9/absent\nRUN --mount=type=tmpfs,target=/t make\n",
            "line 2: RUN: --mount=type=tmpfs is not supported",
        ),
        ("FROM 127.0.0.1:9/absent\nCMD\n", "line 2: CMD: needs a command"),
        (
            "FROM --pull=always 127.0.0.1:9/absent\n",
            "line 1: FROM: unknown flag --pull",
        ),
    ] {
        write(ctx.path(), "Dockerfile", dockerfile);
        let o = b.run(&["build", c]);
        let shown = out(&o);
        assert!(!o.status.success(), "{dockerfile:?}: {shown}");
        assert!(shown.contains(expected), "{dockerfile:?}: {shown}");
        assert!(!shown.contains("Step 1/"), "no step ran: {shown}");
        assert!(!shown.contains("base image"), "the base was not looked for: {shown}");
    }
}

#[test]
fn a_failing_run_stops_the_build_with_its_code() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN exit 3\n",
    );
    let b = Barge::new();
    let o = b.run(&["build", "-t", "fails:1", ctx.path().to_str().unwrap()]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(
            "line 4: [4/4] RUN exit 3: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"
        ),
        "{e}"
    );
    assert!(
        b.ok(&["ps", "-a", "-q"]).trim().is_empty(),
        "the build container is gone"
    );
    assert!(!b.ok(&["images"]).contains("fails"));
}

#[test]
fn quiet_builds_print_the_image_id_only() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN echo loud-run-output; echo loud-on-stderr >&2\n",
    );
    let b = Barge::new();
    let o = b.run(&["build", "-q", ctx.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.trim().starts_with("sha256:") && stdout.trim().lines().count() == 1,
        "{}",
        out(&o)
    );
    assert!(!out(&o).contains("loud"), "{}", out(&o));
    // Without -q the RUN output shows.
    let o = b.run(&["build", "--no-cache", ctx.path().to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("loud-run-output"),
        "{}",
        out(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("loud-on-stderr"),
        "{}",
        out(&o)
    );
}

#[test]
fn copy_follows_docker_rules() {
    if !require_root_and(&["busybox", "docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::anonymous();
    // A base with /home/app owned by app (1234).
    busybox_image(&reg, "owned", "1", &[], |root| {
        std::os::unix::fs::chown(root.join("home/app"), Some(1234), Some(1234)).unwrap();
    });
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    write(c, "real/inner.txt", "inner\n");
    std::os::unix::fs::symlink("real", c.join("link")).unwrap();
    write(c, "tree/keep.md", "keep\n");
    write(c, "tree/drop.md", "drop\n");
    write(c, "tree/.git/objects/aa/blob", "git\n");
    write(c, ".dockerignore", "tree/.git\n*.md\ntree/*.md\n!tree/keep.md\n");
    write(
        c,
        "Dockerfile",
        &format!(
            "FROM {}/owned:1\nARG TARGETARCH\nCOPY tree/ /home/app/\nCOPY --chown=4321 link /linked/\nCOPY . /ctx/\nRUN echo \"$TARGETARCH\" > /arch\n",
            reg.host()
        ),
    );
    let b = Barge::new();
    let o = b.run(&["build", "-t", "rules:1", c.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let shown = b.ok(&[
        "run",
        "--rm",
        "--user",
        "0",
        "rules:1",
        "sh",
        "-c",
        "ls -nd /home/app; ls -n /linked; ls -a /home/app; cat /arch; ls -a /ctx",
    ]);
    let mut lines = shown.lines();
    let home = lines.next().unwrap();
    assert!(
        home.contains(" 1234 ") && home.contains("1234"),
        "an existing directory keeps its owner: {shown}"
    );
    assert!(
        shown.contains("4321     4321") && shown.contains("inner.txt"),
        "a top-level link is followed, --chown=UID sets GID too: {shown}"
    );
    assert!(shown.contains("keep.md") && !shown.contains("drop.md"), "{shown}");
    assert!(
        !shown.contains(".git"),
        "an excluded directory leaves no skeleton: {shown}"
    );
    assert!(
        shown.contains(
            std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64")
                .as_str()
        ),
        "{shown}"
    );
    assert!(
        shown.contains("Dockerfile") && shown.contains("real"),
        "COPY . copies the context: {shown}"
    );
}

/// The interfaces of a `/proc/net/dev` listing.
fn interfaces(proc_net_dev: &str) -> Vec<String> {
    proc_net_dev
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .collect()
}

/// What one RUN step printed between `==NAME==` and `==end==`.
fn section<'a>(build_output: &'a str, name: &str) -> &'a str {
    let start = format!("=={name}==\n");
    let from = build_output
        .find(&start)
        .map(|i| i + start.len())
        .unwrap_or_else(|| panic!("no {name} in {build_output}"));
    let rest = &build_output[from..];
    &rest[..rest.find("==end==").unwrap_or(rest.len())]
}

#[test]
fn run_steps_get_a_network_of_their_own_unless_host_is_asked() {
    if !require_root_and(&["busybox", "iptables"]) {
        return;
    }
    // A service only the host's own processes should reach, as a plain-HTTP registry on 127.0.0.1.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in listener.incoming().flatten() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let _ = s.read(&mut [0u8; 1024]);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 21\r\n\r\nhost-loopback-secret\n");
        }
    });
    let host_netns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let host_ifaces = interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    let ctx = scratch_context(&format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN echo ==netns==; readlink /proc/self/ns/net; echo ==end==; \
         echo ==dev==; cat /proc/net/dev; echo ==end==; \
         echo ==loopback==; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 127.0.0.1 {port} 2>&1 || echo unreachable; echo ==end==\n"
    ));
    let b = Barge::new();
    let build = |flags: &[&str]| {
        // No cache: every build runs its RUN steps.
        let mut args = vec!["build", "--no-cache"];
        args.extend_from_slice(flags);
        args.push(ctx.path().to_str().unwrap());
        let o = b.run(&args);
        assert!(o.status.success(), "{}", out(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };

    for flags in [&[][..], &["--network", "default"][..], &["--network", "bridge"][..]] {
        let shown = build(flags);
        assert_ne!(
            section(&shown, "netns").trim(),
            host_netns.to_str().unwrap(),
            "{flags:?}: RUN is not in the host's network namespace: {shown}"
        );
        let seen = interfaces(section(&shown, "dev"));
        assert!(
            seen.iter().all(|i| i == "lo" || i == "eth0"),
            "{flags:?}: only its own lo and eth0, none of the host's {host_ifaces:?}: {seen:?}"
        );
        assert!(seen.iter().any(|i| i == "eth0"), "{flags:?}: on the bridge: {seen:?}");
        let reached = section(&shown, "loopback");
        assert!(
            reached.contains("unreachable") && !reached.contains("host-loopback-secret"),
            "{flags:?}: the host's 127.0.0.1 is out of reach: {reached}"
        );
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no connection came in"
    );

    let none = build(&["--network", "none"]);
    assert_eq!(interfaces(section(&none, "dev")), ["lo"], "{none}");
    assert!(section(&none, "loopback").contains("unreachable"), "{none}");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no connection came in"
    );

    // Only when asked: the host's network, its loopback services and interfaces.
    let host = build(&["--network", "host"]);
    assert_eq!(section(&host, "netns").trim(), host_netns.to_str().unwrap(), "{host}");
    let seen = interfaces(section(&host, "dev"));
    assert!(
        seen.iter().any(|i| i != "lo" && i != "eth0" && host_ifaces.contains(i)) || host_ifaces.len() <= 2,
        "the host's interfaces {host_ifaces:?}: {seen:?}"
    );
    assert!(section(&host, "loopback").contains("host-loopback-secret"), "{host}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    let help = b
        .ok(&["build", "--help"])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("isolated bridge") && help.contains("only when asked"),
        "{help}"
    );
}

/// Three stages and a broken one: `ARG` in `FROM`, a stage as a base,
/// `COPY --from` a stage by name, by index and an image in a registry.
const STAGES: &str = "\
ARG TOOLS=tools
FROM scratch AS tools
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
FROM ${TOOLS} AS build
ARG TOOLS
RUN mkdir -p /out && echo \"built from $TOOLS\" > /out/made.txt && chown 1234:1234 /out/made.txt
FROM tools AS broken
RUN echo broken-stage-ran; exit 7
FROM scratch
COPY --from=build /out /out
COPY --from=0 /bin/busybox /bin/
COPY --from=REGISTRY/stageimg:1 /etc/passwd /etc/passwd
CMD [\"/bin/busybox\", \"cat\", \"/out/made.txt\"]
";

#[test]
fn multi_stage_builds_build_what_the_target_needs() {
    if !require_root_and(&["busybox", "docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::anonymous();
    busybox_image(&reg, "stageimg", "1", &[], |_| {});
    let ctx = scratch_context(&STAGES.replace("REGISTRY", &reg.host()));
    let c = ctx.path().to_str().unwrap();
    let b = Barge::new();
    let iid = ctx.path().join("iid");
    let o = b.run(&["build", "-t", "staged:1", "--iidfile", iid.to_str().unwrap(), c]);
    assert!(o.status.success(), "{}", out(&o));
    let shown = out(&o);
    assert!(
        !shown.contains("broken-stage-ran"),
        "the broken stage is not built: {shown}"
    );
    assert!(shown.contains("Step 1/12 : ARG TOOLS=tools"), "{shown}");
    let id = std::fs::read_to_string(&iid).unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(b.ok(&["inspect", "--format", "{{.Id}}", "staged:1"]).trim(), id);

    // Only the last stage's layers: three COPYs; the owner made in `build` kept.
    let layers = b.ok(&["inspect", "--format", "{{len .RootFS.Layers}}", "staged:1"]);
    assert_eq!(layers.trim(), "3");
    let o = b.run(&["run", "--rm", "staged:1"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "built from tools\n", "{}", out(&o));
    let ls = b.ok(&["run", "--rm", "staged:1", "/bin/busybox", "ls", "-n", "/out"]);
    assert!(ls.contains("1234     1234"), "COPY --from keeps owners: {ls}");
    let passwd = b.ok(&["run", "--rm", "staged:1", "/bin/busybox", "cat", "/etc/passwd"]);
    assert!(passwd.contains("app:x:1234"), "{passwd}");

    // A second build: every layer from the cache, across the stages.
    let o = b.run(&["build", "-q", c]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);
    let o = b.run(&["build", c]);
    let shown = out(&o);
    assert_eq!(shown.matches("Using cache").count(), 6, "{shown}");
    assert!(!shown.contains("Running in"), "{shown}");

    // The broken stage as the target: its RUN fails, named as docker names it.
    let e = b.fails(&["build", "--target", "broken", c]);
    assert!(
        e.contains("Dockerfile line 9: [broken 2/2] RUN echo broken-stage-ran; exit 7: process \"/bin/sh -c echo broken-stage-ran; exit 7\" did not complete successfully: exit code: 7"),
        "{e}"
    );
    let e = b.fails(&["build", "--target", "nope", c]);
    assert!(
        e.contains(
            "target stage \"nope\" could not be found; the Dockerfile's stages are: tools, build, broken, stage-3"
        ),
        "{e}"
    );
    // --target build: that stage's image, with its history.
    let built = b.ok(&["build", "-q", "--target", "build", c]);
    let shown = b.ok(&["run", "--rm", built.trim(), "cat", "/out/made.txt"]);
    assert_eq!(shown, "built from tools\n");
}

#[test]
fn multi_stage_builds_are_reproducible() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "FROM scratch AS tools\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN mkdir /out && echo made > /out/a && ln -s a /out/b\n\
         FROM scratch\nCOPY --from=tools /out/ /srv/\nCOPY --from=tools /bin/busybox /bin/sh\nENTRYPOINT [\"/bin/sh\"]\n",
    );
    let id = |b: &Barge| build_at_epoch(b, ctx.path(), "1700000000");
    // Two stores: nothing shared, RUN ran twice; mtimes in the stages differ.
    let (first, second) = (id(&Barge::new()), id(&Barge::new()));
    assert_eq!(first, second);
    assert!(first.starts_with("sha256:"), "{first}");
}

#[test]
fn heredocs_run_scripts_and_make_files() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "# syntax=docker/dockerfile:1.4\nFROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nARG NAME=world\nENV GREETING=hello\n\
         RUN <<EOF\necho \"$GREETING $NAME\" > /simple.txt\n\n# a comment, for the shell\necho second >> /simple.txt\nEOF\n\
         RUN <<-EOT cat > /tabs.txt && cat <<'RAW' > /raw.txt\n\tindented $NAME\n\tEOT\nraw $NAME\nRAW\n\
         RUN <<EOF\n#!/bin/sh\necho \"a script at $0\" > /script.txt\nEOF\n\
         COPY <<conf <<\"raw.txt\" /etc/app/\nname=$NAME \\$HOME\nconf\nkeep $NAME\nraw.txt\n\
         COPY --chmod=600 <<EOF /only\nx\nEOF\n",
    );
    let b = Barge::new();
    let o = b.run(&["build", "-t", "heredocs:1", ctx.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let shown = b.ok(&[
        "run",
        "--rm",
        "heredocs:1",
        "sh",
        "-c",
        "cat /simple.txt /tabs.txt /raw.txt /script.txt /etc/app/conf /etc/app/raw.txt; stat -c '%a %u' /etc/app/conf /only",
    ]);
    assert_eq!(
        shown,
        "hello world\nsecond\nindented world\nraw $NAME\na script at /.barge-heredocs/EOF\nname=world $HOME\nkeep $NAME\n644 0\n600 0\n"
    );
    // The script's mount leaves nothing in the image.
    let layers = b.ok(&["history", "--format", "{{.CreatedBy}}", "heredocs:1"]);
    assert!(layers.contains("/.barge-heredocs/EOF"), "{layers}");
    let o = b.run(&["run", "--rm", "heredocs:1", "ls", "-d", "/.barge-heredocs"]);
    assert!(!o.status.success(), "{}", out(&o));
}

#[test]
fn healthcheck_and_onbuild_are_kept_and_triggered() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let base = scratch_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         HEALTHCHECK --interval=1m30s --timeout=3s --retries=2 CMD test -f /t.txt\n\
         ONBUILD RUN echo \"triggered in $(pwd)\" > /t.txt\nONBUILD COPY hello.txt /hello.txt\n",
    );
    let b = Barge::new();
    let o = b.run(&["build", "-t", "onbase:1", base.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let cfg = |image: &str| -> serde_json::Value {
        serde_json::from_str(&b.ok(&["inspect", "--format", "{{json .Config}}", image])).unwrap()
    };
    let c = cfg("onbase:1");
    assert_eq!(
        c["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "test -f /t.txt"], "Interval": 90_000_000_000i64, "Timeout": 3_000_000_000i64, "Retries": 2})
    );
    assert_eq!(
        c["OnBuild"],
        serde_json::json!(["RUN echo \"triggered in $(pwd)\" > /t.txt", "COPY hello.txt /hello.txt"])
    );

    // Used as a base: the triggers run first, with the child's context, then are gone.
    let child = tempfile::tempdir().unwrap();
    write(child.path(), "hello.txt", "hello from the child\n");
    write(
        child.path(),
        "Dockerfile",
        "FROM onbase:1\nWORKDIR /srv\nHEALTHCHECK NONE\n",
    );
    let o = b.run(&["build", "-t", "onchild:1", child.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("# Executing 2 build triggers"), "{}", out(&o));
    let shown = b.ok(&["run", "--rm", "onchild:1", "cat", "/t.txt", "/hello.txt"]);
    assert_eq!(shown, "triggered in /\nhello from the child\n");
    let c = cfg("onchild:1");
    assert!(c["OnBuild"].is_null(), "{c}");
    assert_eq!(c["Healthcheck"], serde_json::json!({"Test": ["NONE"]}));

    // A trigger that fails names the FROM line.
    write(child.path(), "Dockerfile", "ARG X=1\nFROM onbase:1\n");
    std::fs::remove_file(child.path().join("hello.txt")).unwrap();
    let e = b.fails(&["build", child.path().to_str().unwrap()]);
    assert!(
        e.contains("line 2: COPY: hello.txt: file not found in build context"),
        "{e}"
    );
}

/// `barge build` with `args`, `stdin` written to it.
fn build_with_stdin(b: &Barge, args: &[&str], envs: &[(&str, &str)], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = b
        .command()
        .arg("build")
        .args(args)
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn dockerfiles_from_stdin_and_outside_the_context() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let base = scratch_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    );
    let b = Barge::new();
    b.ok(&["build", "-t", "stdinbase:1", base.path().to_str().unwrap()]);

    // `build -`: no context; a bare --build-arg takes the environment's value.
    let df =
        b"FROM stdinbase:1\nARG FROM_ENV\nARG UNSET_HERE=default\nRUN echo \"$FROM_ENV $UNSET_HERE\" > /args.txt\n";
    let o = build_with_stdin(
        &b,
        &[
            "-t",
            "fromstdin:1",
            "--build-arg",
            "FROM_ENV",
            "--build-arg",
            "UNSET_HERE",
            "--label",
            "k=v",
            "-",
        ],
        &[("FROM_ENV", "from-the-environment")],
        df,
    );
    assert!(o.status.success(), "{}", out(&o));
    let shown = b.ok(&["run", "--rm", "fromstdin:1", "cat", "/args.txt"]);
    assert_eq!(
        shown, "from-the-environment default\n",
        "an unset variable leaves the default"
    );
    let labels = b.ok(&["inspect", "--format", "{{json .Config.Labels}}", "fromstdin:1"]);
    assert_eq!(labels.trim(), r#"{"k":"v"}"#);
    let o = build_with_stdin(&b, &["-"], &[], b"FROM stdinbase:1\nCOPY a /a\n");
    assert!(
        out(&o).contains("line 2: COPY: a: file not found in build context"),
        "{}",
        out(&o)
    );
    let mut tar = vec![0u8; 1024];
    tar[257..262].copy_from_slice(b"ustar");
    let o = build_with_stdin(&b, &["-"], &[], &tar);
    assert!(out(&o).contains("STDIN holds an archive"), "{}", out(&o));

    // -f - with a context, and -f naming a file outside it.
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "in-context.txt", "context file\n");
    let c = ctx.path().to_str().unwrap();
    let o = build_with_stdin(
        &b,
        &["-q", "-f", "-", c],
        &[],
        b"FROM stdinbase:1\nCOPY in-context.txt /\n",
    );
    assert!(o.status.success(), "{}", out(&o));
    let elsewhere = tempfile::tempdir().unwrap();
    write(
        elsewhere.path(),
        "app.Dockerfile",
        "FROM stdinbase:1\nCOPY in-context.txt /copied.txt\n",
    );
    let f = elsewhere.path().join("app.Dockerfile");
    b.ok(&["build", "-t", "outside:1", "-f", f.to_str().unwrap(), c]);
    assert_eq!(
        b.ok(&["run", "--rm", "outside:1", "cat", "/copied.txt"]),
        "context file\n"
    );
}

/// Where buildah and BuildKit agree: a variable set again keeps its
/// place; directories COPY makes are 0755 and owned by `--chown`, which
/// `--chmod` does not touch.
#[test]
fn env_order_and_made_directories_follow_buildkit() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         ENV A=1 B=2\nENV A=3\nCOPY --chown=1234:29 --chmod=600 files/ /opt/new/\n",
    );
    write(ctx.path(), "files/a", "a\n");
    let b = Barge::new();
    let o = b.run(&["build", "-t", "made:1", ctx.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let env = b.ok(&["inspect", "--format", "{{json .Config.Env}}", "made:1"]);
    assert!(env.contains(r#"/bin","A=3","B=2"]"#), "{env}");
    let shown = b.ok(&[
        "run",
        "--rm",
        "made:1",
        "stat",
        "-c",
        "%n %a %u:%g",
        "/opt",
        "/opt/new",
        "/opt/new/a",
    ]);
    assert_eq!(
        shown,
        "/opt 755 1234:29\n/opt/new 755 1234:29\n/opt/new/a 600 1234:29\n"
    );
}

/// `RUN --mount=type=cache`: the directory outlives the build, in the
/// store, and neither it nor its mount point lands in a layer.
#[test]
fn cache_mounts_persist_across_builds_and_stay_out_of_layers() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nARG RUNS\n\
         RUN --mount=type=cache,target=/var/cache/app,id=app,sharing=locked,uid=1234,mode=0750 \\\n\
         echo \"run $RUNS\" >> /var/cache/app/log && cp /var/cache/app/log /seen && stat -c '%u %a' /var/cache/app > /owner\n\
         RUN --mount=type=cache,target=/var/cache/app,id=app,ro ls /var/cache/app > /listed\n",
    );
    let b = Barge::new();
    let c = ctx.path().to_str().unwrap();
    let build = |runs: &str| {
        let o = b.run(&["build", "-t", "cached:1", "--build-arg", &format!("RUNS={runs}"), c]);
        assert!(o.status.success(), "{}", out(&o));
    };
    build("1");
    build("2");
    let shown = b.ok(&["run", "--rm", "cached:1", "cat", "/seen", "/owner", "/listed"]);
    assert_eq!(shown, "run 1\nrun 2\n1234 750\nlog\n");
    let o = b.run(&["run", "--rm", "cached:1", "ls", "/var"]);
    assert!(!o.status.success(), "no /var/cache/app stub in the image: {}", out(&o));
    // A read-only cache cannot be written.
    write(
        ctx.path(),
        "Dockerfile",
        "FROM cached:1\nRUN --mount=type=cache,target=/c,id=app,readonly touch /c/x\n",
    );
    let e = b.fails(&["build", c]);
    assert!(e.contains("exit code: 1"), "{e}");
}

/// A stage is hostile like any image: its links are resolved inside its
/// own root by `COPY --from`, never on the host.
#[test]
fn copy_from_a_stage_never_follows_links_onto_the_host() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let stage = "FROM scratch AS evil\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
                 RUN ln -s / /hostroot && ln -s /etc/shadow /shadowlink && mkdir -p /etc && echo stage > /etc/stage.txt\n\
                 FROM scratch\nCOPY busybox /bin/busybox\n";
    let ctx = scratch_context(&format!("{stage}COPY --from=evil /hostroot/etc/ /copied/\n"));
    let b = Barge::new();
    let o = b.run(&["build", "-t", "linked:1", ctx.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let listed = b.ok(&["run", "--rm", "linked:1", "/bin/busybox", "ls", "-A", "/copied"]);
    assert_eq!(listed, "stage.txt\n", "the stage's /etc, not the host's");
    write(
        ctx.path(),
        "Dockerfile",
        &format!("{stage}COPY --from=evil /shadowlink /shadow\n"),
    );
    let e = b.fails(&["build", ctx.path().to_str().unwrap()]);
    assert!(e.contains("line 7: COPY: /shadowlink: not found in stage evil"), "{e}");
}

/// `RUN --mount=type=secret` with `--secret`: the command reads it; no
/// layer, no history entry and no cache key holds it.
#[test]
fn secrets_reach_run_and_nothing_else() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN --mount=type=secret,id=token --mount=type=secret,id=api,target=/etc/api.key,uid=1234,mode=0440 \\\n\
         tr a-z A-Z < /run/secrets/token > /upper && wc -c < /run/secrets/token > /len && \\\n\
         stat -c '%a %u' /etc/api.key /run/secrets/token > /modes && cat /etc/api.key > /dev/null\n\
         RUN --mount=type=secret,id=absent ls /run/secrets > /listed 2>&1 || echo none > /listed\n",
    );
    let token = ctx.path().join("token.txt");
    std::fs::write(&token, "s3cret-token").unwrap();
    let b = Barge::new();
    let c = ctx.path().to_str().unwrap();
    let secret = format!("id=token,src={}", token.display());
    let o = b
        .command()
        .args([
            "build",
            "-t",
            "secret:1",
            "--secret",
            &secret,
            "--secret",
            "id=api,env=API_KEY",
            c,
        ])
        .env("API_KEY", "s3cret-api")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let shown = b.ok(&["run", "--rm", "secret:1", "cat", "/upper", "/len", "/modes", "/listed"]);
    assert_eq!(shown, "S3CRET-TOKEN12\n440 1234\n400 0\nnone\n");
    let o = b.run(&["run", "--rm", "secret:1", "ls", "/run"]);
    assert!(!o.status.success(), "no /run/secrets stub in the image: {}", out(&o));
    let o = b.run(&["run", "--rm", "secret:1", "ls", "/etc"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("api.key"), "{}", out(&o));
    // Nothing of the secrets in the store: layers (uncompressed too), history, cache.
    let mut found = Vec::new();
    for entry in walkdir(&b.root()) {
        let Ok(bytes) = std::fs::read(&entry) else { continue };
        let mut plain = Vec::new();
        let _ = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut plain);
        if [&bytes, &plain].iter().any(|b| b.windows(7).any(|w| w == b"s3cret-")) {
            found.push(entry);
        }
    }
    assert!(found.is_empty(), "the secret is in {found:?}");
    let e = b.fails(&["build", "--secret", "id=x", c]);
    assert!(e.contains("--secret \"id=x\": give one of src= and env="), "{e}");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM secret:1\nRUN --mount=type=secret,id=needed,required true\n",
    );
    let e = b.fails(&["build", c]);
    assert!(e.contains("line 2: RUN: the secret \"needed\" is required"), "{e}");
}

/// Every regular file below `dir`.
fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(md) = e.path().symlink_metadata() else { continue };
        if md.is_dir() {
            out.extend(walkdir(&e.path()));
        } else if md.is_file() {
            out.push(e.path());
        }
    }
    out
}

/// `COPY --from` an image is pulled as FROM's base is: through the trust
/// policy, from the store unless `--pull`.
#[test]
fn copy_from_images_obey_pull_and_the_trust_policy() {
    if !require_root_and(&["busybox", "docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::anonymous();
    let image = format!("{}/fromimg:1", reg.host());
    busybox_image(&reg, "fromimg", "1", &[], |root| write(root, "version", "one\n"));
    let ctx = scratch_context(&format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY --from={image} /version /version\n"
    ));
    let c = ctx.path().to_str().unwrap();
    let b = Barge::new();
    let version = |b: &Barge| b.ok(&["run", "--rm", "v:1", "/bin/busybox", "cat", "/version"]);
    b.ok(&["build", "-t", "v:1", c]);
    assert_eq!(version(&b), "one\n");
    // The tag moves: the stored image is used, until --pull.
    busybox_image(&reg, "fromimg", "1", &[], |root| write(root, "version", "two\n"));
    b.ok(&["build", "-t", "v:1", c]);
    assert_eq!(version(&b), "one\n");
    b.ok(&["build", "--pull", "-t", "v:1", c]);
    assert_eq!(version(&b), "two\n");
    // A policy that rejects the registry stops the build, whatever the store has.
    std::fs::write(
        b.dir.path().join("barge-config/policy.json"),
        format!(
            r#"{{"default": [{{"type": "insecureAcceptAnything"}}], "transports": {{"docker": {{"{}": [{{"type": "reject"}}]}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let e = b.fails(&["build", "--pull", c]);
    assert!(
        e.contains(&format!("base image {image}")) && e.contains("reject"),
        "{e}"
    );
}

/// `RUN --network=none` takes a step off the network; `--network=host`
/// needs the build's own `--network host`: a Dockerfile cannot ask for it.
#[test]
fn run_network_flags_narrow_but_never_widen() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN --network=none cat /proc/net/dev > /devs\n",
    );
    let c = ctx.path().to_str().unwrap();
    let b = Barge::new();
    b.ok(&["build", "-t", "net:1", "--network", "host", c]);
    let devs = b.ok(&["run", "--rm", "--network", "none", "net:1", "cat", "/devs"]);
    assert_eq!(interfaces(&devs), ["lo"], "{devs}");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM net:1\nRUN --network=host readlink /proc/self/ns/net > /ns\n",
    );
    let e = b.fails(&["build", c]);
    assert!(
        e.contains("line 2: RUN: --network=host needs the build's consent: run barge build --network host"),
        "{e}"
    );
    b.ok(&["build", "-t", "net:2", "--network", "host", c]);
    let ns = b.ok(&["run", "--rm", "--network", "none", "net:2", "cat", "/ns"]);
    assert_eq!(
        ns.trim(),
        std::fs::read_link("/proc/self/ns/net").unwrap().to_str().unwrap()
    );
}

/// `RUN --mount=type=bind`: the context (as .dockerignore leaves it) or a
/// stage, for one command, as a copy; nothing of it in the layer, and a
/// change to what is bound reruns the step.
#[test]
fn bind_mounts_show_the_context_or_a_stage_for_one_run() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "FROM scratch AS tools\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN mkdir -p /out && echo from-stage > /out/made && chown 1234:29 /out/made\n\
         FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN --mount=type=bind,target=/src --mount=type=bind,from=tools,source=/out,target=/stage \\\n\
             --mount=type=bind,source=conf/app.conf,target=/etc/app.conf,rw \\\n\
             ls -A /src/conf > /listed && cat /etc/app.conf /stage/made > /seen && stat -c '%u:%g' /stage/made >> /seen && \\\n\
             echo scribble > /etc/app.conf && ! touch /src/new 2>/dev/null\n",
    );
    write(ctx.path(), "conf/app.conf", "setting=1\n");
    write(ctx.path(), "conf/secret.key", "not for the build\n");
    write(ctx.path(), ".dockerignore", "conf/*.key\n");
    let c = ctx.path().to_str().unwrap();
    let b = Barge::new();
    let o = b.run(&["build", "-t", "bound:1", c]);
    assert!(o.status.success(), "{}", out(&o));
    let shown = b.ok(&["run", "--rm", "bound:1", "cat", "/listed", "/seen"]);
    assert_eq!(shown, "app.conf\nsetting=1\nfrom-stage\n1234:29\n");
    let o = b.run(&["run", "--rm", "bound:1", "ls", "/src", "/stage", "/etc/app.conf"]);
    assert!(!o.status.success(), "no mount points in the image: {}", out(&o));
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("conf/app.conf")).unwrap(),
        "setting=1\n"
    );
    // Same content: cached; changed content: run again.
    let o = b.run(&["build", c]);
    assert!(!out(&o).contains("Running in"), "{}", out(&o));
    write(ctx.path(), "conf/app.conf", "setting=2\n");
    let o = b.run(&["build", c]);
    assert_eq!(out(&o).matches("Running in").count(), 1, "{}", out(&o));
}

/// The cache mount directories in `b`'s store.
fn cache_mount_dirs(b: &Barge) -> usize {
    std::fs::read_dir(b.root().join("build-cache-mounts"))
        .map(|rd| rd.filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir())).count())
        .unwrap_or(0)
}

/// `builder prune` drops the cache mounts and the layers only the cache
/// holds (an earlier stage's RUN), `--all` every cache entry.
#[test]
fn builder_prune_drops_cache_mounts_and_cached_layers() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "FROM scratch AS tools\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN --mount=type=cache,target=/c,id=app echo run >> /c/log && cp /c/log /made && touch /tools && head -c 100000 /dev/zero > /c/big\n\
         FROM scratch\nCOPY busybox /bin/busybox\nCOPY --from=tools /made /made\n",
    );
    let b = Barge::new();
    let c = ctx.path().to_str().unwrap();
    let build = || {
        let o = b.run(&["build", "-t", "pruned:1", c]);
        assert!(o.status.success(), "{}", out(&o));
        out(&o)
    };
    build();
    assert!(build().contains("Using cache"));
    assert_eq!(cache_mount_dirs(&b), 1);
    let shown = b.ok(&["builder", "prune", "-f"]);
    assert!(shown.starts_with("Deleted build cache objects:\n"), "{shown}");
    let total = shown.lines().last().unwrap_or_default();
    assert!(
        total.starts_with("Total reclaimed space: ") && !total.ends_with(" 0B"),
        "{shown}"
    );
    assert_eq!(cache_mount_dirs(&b), 0);
    // The tools stage's RUNs run again, the second on an empty cache; the image's layers stay cached.
    let again = build();
    assert_eq!(again.matches("Using cache").count(), 3, "{again}");
    assert_eq!(
        b.ok(&["run", "--rm", "pruned:1", "/bin/busybox", "cat", "/made"]),
        "run\n"
    );
    // --all: nothing left to reuse (the final stage's COPY reuses the first's), and the image still runs.
    b.ok(&["builder", "prune", "--all", "--force"]);
    let fresh = build();
    assert_eq!(fresh.matches("Using cache").count(), 1, "{fresh}");
    assert_eq!(
        b.ok(&["run", "--rm", "pruned:1", "/bin/busybox", "cat", "/made"]),
        "run\n"
    );
    let shown = b.ok(&["builder", "prune", "-a", "-f"]);
    assert!(shown.contains("Total reclaimed space: "), "{shown}");
}

/// A prune while a build's RUN uses a cache mount waits for the build:
/// the cache is never taken from under it.
#[test]
fn builder_prune_waits_for_a_running_build() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let ctx = scratch_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN --mount=type=cache,target=/c,id=slow echo kept > /c/f && sleep 3 && cat /c/f > /seen\n",
    );
    let b = Barge::new();
    let mut running = b
        .command()
        .args(["build", "--no-cache", "-t", "slow:1", ctx.path().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while cache_mount_dirs(&b) == 0 {
        assert!(start.elapsed().as_secs() < 60, "the build never made its cache");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = b.run(&["builder", "prune", "-f"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Waiting for the builds"),
        "{}",
        out(&o)
    );
    assert!(running.wait().unwrap().success(), "the build lost its cache");
    assert_eq!(b.ok(&["run", "--rm", "slow:1", "cat", "/seen"]), "kept\n");
    assert_eq!(cache_mount_dirs(&b), 0);
}

/// A loopback HTTP server: `/files/hello.txt`, `/moved` redirecting to
/// it, 404 for anything else.
fn file_server() -> barge_tests::server::Listener {
    use std::io::{BufReader, Write};
    barge_tests::server::Listener::start(|conn| {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let Some(head) = barge_tests::server::RequestHead::read(&mut reader) else {
            return;
        };
        let mut conn = conn;
        let reply = match head.path.as_str() {
            "/files/hello.txt" => {
                "HTTP/1.1 200 OK\r\nContent-Length: 19\r\nConnection: close\r\n\r\nhello from the web\n"
            }
            "/moved" => {
                "HTTP/1.1 302 Found\r\nLocation: /files/hello.txt\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        };
        let _ = conn.write_all(reply.as_bytes());
    })
}

/// `ADD URL`: downloaded as docker does (name from the URL, mode 0600),
/// `--checksum` checked before the file lands; git URLs refused.
#[test]
fn add_downloads_urls_and_checks_their_digest() {
    if !require_root_and(&["busybox"]) {
        return;
    }
    let server = file_server();
    let base = format!("http://127.0.0.1:{}", server.port);
    let good = barge_tests::sha256(b"hello from the web\n");
    let ctx = scratch_context(&format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nADD {base}/files/hello.txt /srv/\n\
         ADD --checksum={good} --chmod=644 {base}/moved /named\n"
    ));
    let b = Barge::new();
    let c = ctx.path().to_str().unwrap();
    b.ok(&["build", "-t", "added:1", c]);
    let shown = b.ok(&[
        "run",
        "--rm",
        "added:1",
        "/bin/busybox",
        "stat",
        "-c",
        "%n %a %u %s",
        "/srv/hello.txt",
        "/named",
    ]);
    assert_eq!(shown, "/srv/hello.txt 600 0 19\n/named 644 0 19\n");
    assert_eq!(
        b.ok(&["run", "--rm", "added:1", "/bin/busybox", "cat", "/named"]),
        "hello from the web\n"
    );
    let bad = format!("sha256:{}", "0".repeat(64));
    let failing = |dockerfile: String| {
        write(ctx.path(), "Dockerfile", &dockerfile);
        b.fails(&["build", c])
    };
    let e = failing(format!(
        "FROM scratch\nADD --checksum={bad} {base}/files/hello.txt /x\n"
    ));
    assert!(e.contains(&format!("expected {bad}, got {good}")), "{e}");
    let e = failing(format!("FROM scratch\nADD {base}/missing /x\n"));
    assert!(e.contains("line 2") && e.contains("HTTP 404"), "{e}");
    let e = failing(format!("FROM scratch\nADD {base}/repo.git /src\n"));
    assert!(e.contains("a git repository or another scheme is not supported"), "{e}");
    let e = failing("FROM scratch\nADD git@example.com:me/repo.git /src\n".into());
    assert!(e.contains("ADD of a git repository is not supported"), "{e}");
    let e = failing(format!(
        "FROM scratch\nCOPY busybox /\nADD --checksum={good} busybox /x\n"
    ));
    assert!(e.contains("--checksum needs one http(s) URL"), "{e}");
}

/// `--cache-from`: a store that never built the Dockerfile reuses the RUN
/// layers of an image pulled from a registry (no RUN executes: its cache
/// mount is never made), and gets the same image; a changed step before a
/// RUN makes it run.
#[test]
fn cache_from_an_image_reuses_its_run_layers() {
    if !require_root_and(&["busybox", "docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let image = format!("{}/cachefrom:1", reg.host());
    let dockerfile = |step: &str| {
        format!(
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             ENV STEP={step}\nRUN --mount=type=cache,target=/c,id=runs echo ran >> /c/log && cp /c/log /ran\n"
        )
    };
    let ctx = scratch_context(&dockerfile("one"));
    let c = ctx.path().to_str().unwrap();
    let first = Barge::new();
    first.ok(&["build", "-t", &image, c]);
    first.ok(&["push", &image]);
    let id = first.ok(&["inspect", "--format", "{{.Id}}", &image]);

    // A second later: the image keeps the time of the one it was cached from.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let other = Barge::new();
    let o = other.run(&["build", "--cache-from", &image, "-t", "local:1", c]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(!out(&o).contains("Running in"), "{}", out(&o));
    assert_eq!(out(&o).matches("Using cache").count(), 2, "{}", out(&o));
    assert_eq!(cache_mount_dirs(&other), 0, "a RUN ran");
    assert_eq!(other.ok(&["inspect", "--format", "{{.Id}}", "local:1"]), id);
    // ENV changed before the last RUN: it runs, the one before it does not.
    write(ctx.path(), "Dockerfile", &dockerfile("two"));
    let o = other.run(&["build", "--cache-from", &image, c]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(out(&o).matches("Running in").count(), 1, "{}", out(&o));
    assert_eq!(cache_mount_dirs(&other), 1);
}
