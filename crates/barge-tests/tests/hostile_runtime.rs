//! Hostile images against the runtime (issue 20): links at every path the
//! runtime mounts on, passwd lines with numeric names, the CVE-2019-5736
//! pattern, `--init`'s memory and environment, bind submounts, the
//! operator's own stdio, and `exec` on a bridge network. Each image is
//! either refused with one line and exit 125, or runs with every mask and
//! read-only path in place.

use barge_tests::image::busybox_image;
use barge_tests::registry::Registry;
use barge_tests::{read_past_line, require_root_and, rest_of, Barge};
use barge_tests::{stderr_of as err, stdout_of as out};
use std::path::Path;
use std::process::{Command, Stdio};

/// One registry holding several variants of the busybox image, and a store.
struct Corpus {
    reg: Registry,
    b: Barge,
}

impl Corpus {
    fn new() -> Option<Corpus> {
        if !require_root_and(&["docker-registry", "umoci", "skopeo"]) {
            return None;
        }
        Some(Corpus {
            reg: Registry::anonymous(),
            b: Barge::new(),
        })
    }

    /// Pushes a busybox image changed by `extra` as `tag`, pulls it, returns its reference.
    fn image(&self, tag: &str, extra: impl FnOnce(&Path)) -> String {
        busybox_image(&self.reg, "hostile", tag, &[], extra);
        let image = format!("{}/hostile:{tag}", self.reg.host());
        self.b.ok(&["pull", "-q", &image]);
        image
    }
}

fn link(rootfs: &Path, path: &str, target: &str) {
    let at = rootfs.join(path);
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let _ = std::fs::remove_file(&at);
    let _ = std::fs::remove_dir_all(&at);
    std::os::unix::fs::symlink(target, at).unwrap();
}

/// The masks and read-only paths as the container's mountinfo shows them,
/// and a write to a global sysctl, which must fail.
const MASK_PROBE: &str =
    "grep -E ' /proc/(kcore|keys|timer_list|sys|sysrq-trigger|bus|fs|irq) ' /proc/self/mountinfo | \
                          awk '{print $5, $6}'; \
                          echo '|/tmp/x' > /proc/sys/kernel/core_pattern 2>/dev/null && echo WROTE-SYSCTL; \
                          grep -c . /proc/kcore 2>/dev/null; true";

fn assert_masked(what: &str, seen: &str) {
    for (path, ro) in [
        ("/proc/kcore", false),
        ("/proc/keys", false),
        ("/proc/timer_list", false),
        ("/proc/sys", true),
        ("/proc/sysrq-trigger", true),
        ("/proc/irq", true),
        ("/proc/bus", true),
    ] {
        // Kernels without a file have nothing to mask there.
        if !Path::new(path).exists() {
            continue;
        }
        let line = seen
            .lines()
            .find(|l| l.split_whitespace().next() == Some(path))
            .unwrap_or_else(|| panic!("{what}: {path} is not masked or read-only:\n{seen}"));
        if ro {
            assert!(line.contains("ro,") || line.ends_with(" ro"), "{what}: {line}");
        }
    }
    assert!(
        !seen.contains("WROTE-SYSCTL"),
        "{what}: a global sysctl was written:\n{seen}"
    );
}

fn assert_refused(b: &Barge, args: &[&str], words: &str) {
    let o = b.run(args);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(125), "{args:?} must be refused: {e}{}", out(&o));
    assert!(e.contains(words), "{args:?}: {e}");
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
}

#[test]
fn links_at_runtime_mount_points_are_refused_or_harmless() {
    let Some(c) = Corpus::new() else { return };
    let b = &c.b;
    // The reported attack: /proc -> /sys/x, /sys/x -> /y.
    let proc_link = c.image("proc", |r| {
        std::fs::remove_dir_all(r.join("proc")).ok();
        link(r, "proc", "sys/x");
        std::fs::create_dir_all(r.join("sys")).unwrap();
        link(r, "sys/x", "/y");
    });
    assert_refused(b, &["run", "--rm", &proc_link, "true"], "/proc is a symbolic link");
    let sys_link = c.image("sys", |r| link(r, "sys", "/tmp"));
    assert_refused(b, &["run", "--rm", &sys_link, "true"], "/sys is a symbolic link");
    let dev_link = c.image("dev", |r| link(r, "dev", "/tmp"));
    assert_refused(b, &["run", "--rm", &dev_link, "true"], "/dev is a symbolic link");
    // Files where the runtime needs a directory.
    let proc_file = c.image("procfile", |r| {
        std::fs::remove_dir_all(r.join("proc")).ok();
        std::fs::write(r.join("proc"), "x").unwrap();
    });
    assert_refused(b, &["run", "--rm", &proc_file, "true"], "not an ordinary directory");
    // Runtime files bound through links into /proc.
    let hosts_link = c.image("hosts", |r| link(r, "etc/hosts", "/proc/sys/kernel/core_pattern"));
    assert_refused(
        b,
        &["run", "--rm", &hosts_link, "true"],
        "resolves to /proc/sys/kernel/core_pattern",
    );
    let resolv_link = c.image("resolv", |r| link(r, "etc/resolv.conf", "../proc/sysrq-trigger"));
    assert_refused(b, &["run", "--rm", &resolv_link, "true"], "/etc/resolv.conf");
    // Links the fresh /dev hides, or that stay inside the root, run with every mask.
    let shm_link = c.image("shm", |r| {
        std::fs::create_dir_all(r.join("dev")).unwrap();
        link(r, "dev/shm", "/");
        link(r, "dev/pts", "/proc");
        link(r, "etc/hostname", "/tmp/hostname");
    });
    for image in [&shm_link, &shm_link] {
        let seen = b.sh(image, &[], MASK_PROBE);
        assert_masked(image, &seen);
    }
    let seen = b.sh(&shm_link, &[], "cat /tmp/hostname; ls -ld /dev/shm | cut -c1");
    assert!(seen.ends_with("d\n"), "/dev/shm is the runtime's tmpfs: {seen}");
    let seen = b.sh(&shm_link, &["--read-only"], MASK_PROBE);
    assert_masked("--read-only", &seen);
}

#[test]
fn volume_destinations_through_links() {
    let Some(c) = Corpus::new() else { return };
    let b = &c.b;
    let image = c.image("vol", |r| {
        link(r, "data", "/");
        link(r, "p", "/proc");
        link(r, "d", "../dev/");
        // Dangling: what it names is made, as docker does.
        link(r, "ok", "/srv/data");
    });
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("file"), "from the host\n").unwrap();
    let v = |dest: &str| format!("{}:{dest}", host.path().display());
    assert_refused(b, &["run", "--rm", "-v", &v("/data"), &image, "true"], "resolves to /");
    assert_refused(
        b,
        &["run", "--rm", "-v", &v("/p/sys"), &image, "true"],
        "resolves to /proc/sys",
    );
    assert_refused(
        b,
        &["run", "--rm", "-v", &v("/d/shm"), &image, "true"],
        "resolves to /dev/shm",
    );
    assert_refused(
        b,
        &["run", "--rm", "-v", &v("/proc/x"), &image, "true"],
        "cannot be mounted over",
    );
    assert_refused(
        b,
        &["run", "--rm", "-v", &v("/sys"), &image, "true"],
        "cannot be mounted over",
    );
    // A link that stays inside the root is followed, as docker does.
    let seen = b.sh(&image, &["-v", &v("/ok")], "cat /srv/data/file");
    assert_eq!(seen, "from the host\n");
}

#[test]
fn numeric_users_match_uids_not_names() {
    let Some(c) = Corpus::new() else { return };
    let b = &c.b;
    let image = c.image("passwd", |r| {
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n1000:x:0:0:evil:/root:/bin/sh\n2000:x:0:0::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\n1000:x:0:\n").unwrap();
    });
    let probe = "id -u; id -g; grep ^CapEff: /proc/self/status";
    for (user, uid, gid) in [
        ("1000", "1000", "0"),
        ("1000:1000", "1000", "1000"),
        ("2000", "2000", "0"),
    ] {
        let seen = b.sh(&image, &["-u", user], probe);
        let lines: Vec<&str> = seen.lines().collect();
        assert_eq!(&lines[..2], [uid, gid], "-u {user}: {seen}");
        assert_eq!(
            lines[2], "CapEff:\t0000000000000000",
            "-u {user} has no capability: {seen}"
        );
    }
    b.ok(&["run", "-d", "--name", "numeric", &image, "sleep", "30"]);
    let seen = b.ok(&["exec", "-u", "1000", "numeric", "sh", "-c", probe]);
    assert!(
        seen.starts_with("1000\n0\nCapEff:\t0000000000000000"),
        "exec -u 1000: {seen}"
    );
    b.ok(&["rm", "-f", "numeric"]);
}

/// CVE-2019-5736: the container replaces a command with `#!/proc/self/exe`
/// so that barge's own binary runs inside (the image carries the loader
/// and libraries it needs), keeps a descriptor of it, and writes it once
/// that process has exited. It must never reach the binary barge runs from
/// (a copy here, so that a failure cannot damage the build).
#[test]
fn the_barge_binary_cannot_be_overwritten_from_a_container() {
    let Some(c) = Corpus::new() else { return };
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("barge");
    std::fs::copy(barge_tests::barge_bin(), &copy).unwrap();
    let watcher = barge_tests::image::exewatch();
    let image = c.image("cve", |r| {
        std::fs::write(r.join("bin/evil"), "#!/proc/self/exe\n").unwrap();
        std::fs::copy(&watcher, r.join("bin/exewatch")).unwrap();
        for f in ["bin/evil", "bin/exewatch"] {
            std::fs::set_permissions(r.join(f), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        // What the dynamic barge binary needs to start inside.
        let ldd = Command::new("ldd").arg(&copy).output().unwrap();
        for lib in out(&ldd).split_whitespace().filter(|w| w.starts_with('/')) {
            let dest = r.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(lib, dest).unwrap();
        }
    });
    let before = std::fs::read(&copy).unwrap();
    let barge = |args: &[&str]| {
        let mut cmd = c.b.command_of(&copy);
        cmd.args(args);
        cmd
    };
    // The container's monitor and the watcher's exec run the installed
    // barge; the attacked `exec`s run the copy, as after an upgrade, so
    // nothing else holds the copy busy once they are done.
    c.b.ok(&["run", "-d", "--name", "cve", &image, "sleep", "60"]);
    let mut watch =
        c.b.command()
            .args(["exec", "cve", "/bin/exewatch", "/tmp/stop"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let mut watched = read_past_line(&mut watch, "watching");
    for _ in 0..20 {
        // barge runs inside as the script's interpreter (and fails on its arguments).
        let o = barge(&["exec", "cve", "/bin/evil"]).output().unwrap();
        assert!(
            err(&o).contains("'/bin/evil' is not a barge command"),
            "barge did not run inside: {}",
            err(&o)
        );
    }
    c.b.ok(&["exec", "cve", "touch", "/tmp/stop"]);
    let seen = rest_of(&mut watch, &mut watched);
    assert!(!seen.contains("WROTE"), "a container wrote the barge binary:\n{seen}");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        before,
        "the barge binary changed:\n{seen}"
    );
    // The attack did catch barge's binary (else this test proves nothing).
    assert!(seen.contains("refused"), "no barge process was caught inside:\n{seen}");
    c.b.ok(&["rm", "-f", "cve"]);
}

#[test]
fn init_holds_nothing_of_the_host() {
    let Some(c) = Corpus::new() else { return };
    let image = c.image("init", |_| {});
    let mut run = c.b.command();
    run.env("BARGE_TEST_SECRET", "s3cr3t-token").args([
        "run",
        "-d",
        "--init",
        "--cap-add",
        "SYS_PTRACE",
        "--name",
        "init",
        &image,
        "sleep",
        "60",
    ]);
    let o = run.output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let seen = c.b.ok(&[
        "exec",
        "init",
        "sh",
        "-c",
        "tr '\\0' '\\n' < /proc/1/environ; cat /proc/1/cmdline | tr '\\0' ' '; echo; \
         readlink /proc/1/exe; ls /proc/1/fd; \
         echo x >> /proc/1/exe 2>/dev/null && echo WROTE-EXE; true",
    ]);
    assert!(!seen.contains("s3cr3t"), "PID 1 holds barge's environment:\n{seen}");
    assert!(!seen.contains("BARGE"), "{seen}");
    assert!(seen.contains("barge-init"), "PID 1 is barge's init: {seen}");
    assert!(!seen.contains("WROTE-EXE"), "{seen}");
    assert!(
        !seen.contains(&barge_tests::barge_bin().display().to_string()),
        "{seen}"
    );
    c.b.ok(&["rm", "-f", "init"]);
}

#[test]
fn bind_submounts_are_nodev_nosuid_and_read_only() {
    let Some(c) = Corpus::new() else { return };
    let image = c.image("binds", |_| {});
    let host = tempfile::tempdir().unwrap();
    let sub = host.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    // A submount that allows devices, with a node of the host's /dev/null in it.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "dev,suid", "barge-test", sub.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(mounted.success());
    let guard = Unmount(sub.clone());
    assert!(Command::new("mknod")
        .arg(sub.join("null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap()
        .success());
    std::fs::write(sub.join("file"), "x").unwrap();
    let v = format!("{}:/v", host.path().display());
    let probe = "grep ' /v/sub ' /proc/self/mountinfo | awk '{print $6}'; \
                 echo hi > /v/sub/null && echo OPENED-DEVICE; \
                 touch /v/sub/new 2>/dev/null && echo WROTE; true";
    let seen = c.b.sh(&image, &["-v", &v], probe);
    let opts = seen.lines().next().unwrap_or_default();
    assert!(opts.contains("nodev") && opts.contains("nosuid"), "{seen}");
    assert!(
        !seen.contains("OPENED-DEVICE"),
        "a device opened through a volume's submount:\n{seen}"
    );
    assert!(seen.contains("WROTE"), "rw volume: {seen}");
    let seen = c.b.sh(&image, &["-v", &format!("{v}:ro")], probe);
    let opts = seen.lines().next().unwrap_or_default();
    assert!(opts.starts_with("ro,"), "{seen}");
    assert!(
        !seen.contains("WROTE") && !seen.contains("OPENED-DEVICE"),
        ":ro reaches below: {seen}"
    );
    drop(guard);
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn the_operators_stdio_never_enters_the_container() {
    let Some(c) = Corpus::new() else { return };
    let image = c.image("stdio", |_| {});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.log");
    std::fs::write(&file, "SECRET from before\n").unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "typed by the operator\n").unwrap();
    let script = "for fd in 0 1 2; do readlink /proc/self/fd/$fd; done; \
                  : > /proc/self/fd/1; cat; echo done";
    for extra in [&["--rm"][..], &["--rm", "-i"][..]] {
        let out_file = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
        let mut cmd = c.b.command();
        cmd.arg("run").args(extra).args([&image, "sh", "-c", script]);
        let o = cmd
            .stdin(std::fs::File::open(&input).unwrap())
            .stdout(out_file)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", err(&o));
        let log = std::fs::read_to_string(&file).unwrap();
        assert!(
            log.starts_with("SECRET from before\n"),
            "the container truncated the file: {log:?}"
        );
        assert_eq!(
            log.matches("SECRET").count(),
            1,
            "the container read the file back: {log:?}"
        );
        assert!(!log.contains(&file.display().to_string()), "{log}");
        assert!(!log.contains(&input.display().to_string()), "{log}");
        // -i relays stdin through a pipe; without it the container reads nothing.
        assert_eq!(log.contains("typed by the operator"), extra.contains(&"-i"), "{log}");
        assert!(log.trim_end().ends_with("done"), "{log}");
    }
    // exec, too.
    c.b.ok(&["run", "-d", "--name", "stdio", &image, "sleep", "30"]);
    let o =
        c.b.command()
            .args([
                "exec",
                "-i",
                "stdio",
                "sh",
                "-c",
                "for fd in 0 1 2; do readlink /proc/self/fd/$fd; done; cat",
            ])
            .stdin(std::fs::File::open(&input).unwrap())
            .output()
            .unwrap();
    let seen = out(&o);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(seen.lines().filter(|l| l.starts_with("pipe:")).count(), 3, "{seen}");
    assert!(seen.contains("typed by the operator"), "{seen}");
    c.b.ok(&["rm", "-f", "stdio"]);
}

#[test]
fn exec_joins_the_containers_network() {
    let Some(c) = Corpus::new() else { return };
    if !require_root_and(&["iptables"]) {
        return;
    }
    let image = c.image("net", |_| {});
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    c.b.ok(&["run", "-d", "--name", "bridged", &image, "sleep", "60"]);
    let pid = c.b.ok(&["inspect", "--format", "{{.State.Pid}}", "bridged"]);
    let container_ns = std::fs::read_link(format!("/proc/{}/ns/net", pid.trim())).unwrap();
    let seen = c.b.ok(&[
        "exec",
        "bridged",
        "sh",
        "-c",
        &format!("readlink /proc/self/ns/net; grep -c eth0 /proc/net/dev; nc -w 1 127.0.0.1 {port} </dev/null && echo REACHED-HOST; true"),
    ]);
    let first = seen.lines().next().unwrap_or_default();
    assert_eq!(first, container_ns.display().to_string(), "{seen}");
    assert!(
        !seen.contains("REACHED-HOST"),
        "exec reached the host's loopback: {seen}"
    );
    c.b.ok(&["rm", "-f", "bridged"]);
    drop(listener);
}

/// A container given CAP_SYS_ADMIN replaces its /dev/null with a link to
/// /proc/self/fd/1: the process `exec` starts must not open it while its
/// stdout is still the operator's file.
#[test]
fn exec_opens_nothing_of_the_container_while_holding_the_operators_stdio() {
    let Some(c) = Corpus::new() else { return };
    let image = c.image("devnull", |_| {});
    c.b.ok(&[
        "run",
        "-d",
        "--cap-add",
        "SYS_ADMIN",
        "--name",
        "devnull",
        &image,
        "sleep",
        "60",
    ]);
    c.b.ok(&[
        "exec",
        "devnull",
        "sh",
        "-c",
        "umount -l /dev/null && rm /dev/null && ln -s /proc/self/fd/1 /dev/null",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("operator.log");
    std::fs::write(&file, "SECRET of the operator\n").unwrap();
    let o =
        c.b.command()
            .args(["exec", "devnull", "sh", "-c", "cat; readlink /proc/self/fd/0"])
            .stdout(std::fs::OpenOptions::new().append(true).open(&file).unwrap())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let log = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        log.matches("SECRET").count(),
        1,
        "the command read the operator's file: {log:?}"
    );
    assert!(log.contains("pipe:"), "{log}");
    c.b.ok(&["rm", "-f", "devnull"]);
}

/// `/etc` a link out of the layer: create must not read the host's passwd
/// through it (a hostile image probing the host's accounts).
#[test]
fn user_lookup_never_follows_a_link_out_of_the_image() {
    let Some(c) = Corpus::new() else { return };
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("passwd"), "spy:x:4321:10::/HOST-SECRET-HOME:/bin/sh\n").unwrap();
    std::fs::write(host.path().join("group"), "spies:x:10:spy\n").unwrap();
    let up = "../".repeat(40);
    let target = format!("{up}{}", host.path().display().to_string().trim_start_matches('/'));
    let image = c.image("etclink", |r| {
        std::fs::remove_dir_all(r.join("etc")).unwrap();
        std::os::unix::fs::symlink(&target, r.join("etc")).unwrap();
    });
    let o =
        c.b.run(&["run", "--rm", "-u", "spy", &image, "sh", "-c", "id -u; echo $HOME"]);
    assert!(
        !out(&o).contains("4321") && !out(&o).contains("HOST-SECRET"),
        "{}",
        out(&o)
    );
    assert!(err(&o).contains("unable to find user spy"), "{}", err(&o));
}

#[test]
fn exec_gets_the_containers_ulimits_and_ids_stay_in_range() {
    let Some(c) = Corpus::new() else { return };
    let image = c.image("ulimit", |_| {});
    c.b.ok(&[
        "run",
        "-d",
        "--ulimit",
        "nofile=64:64",
        "--name",
        "ulimit",
        &image,
        "sleep",
        "60",
    ]);
    assert_eq!(c.b.ok(&["exec", "ulimit", "sh", "-c", "ulimit -n"]).trim(), "64");
    c.b.ok(&["rm", "-f", "ulimit"]);
    // -1 means "unchanged" to setresuid: refused before anything starts.
    for user in ["4294967295", "0:4294967295"] {
        assert_refused(&c.b, &["run", "--rm", "-u", user, &image, "true"], "must be in range");
    }
}

/// A container allowed to ptrace sees exec's process enter its PID
/// namespace: that process must hold no capability beyond the
/// container's and no copy of barge's environment by then.
#[test]
fn exec_enters_holding_nothing_a_tracer_could_take() {
    let Some(c) = Corpus::new() else { return };
    let spy = barge_tests::image::procspy();
    let image = c.image("spy", |r| {
        std::fs::copy(&spy, r.join("bin/procspy")).unwrap();
        std::fs::set_permissions(
            r.join("bin/procspy"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    });
    c.b.ok(&[
        "run",
        "-d",
        "--cap-add",
        "SYS_PTRACE",
        "--name",
        "spy",
        &image,
        "sleep",
        "60",
    ]);
    let mut watch =
        c.b.command()
            .args(["exec", "spy", "/bin/procspy", "/tmp/stop"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let mut watched = read_past_line(&mut watch, "watching");
    for _ in 0..40 {
        let o =
            c.b.command()
                .env("BARGE_TEST_SECRET", "hunter2")
                .args(["exec", "spy", "true"])
                .output()
                .unwrap();
        assert!(o.status.success(), "{}", err(&o));
    }
    c.b.ok(&["exec", "spy", "touch", "/tmp/stop"]);
    let seen = rest_of(&mut watch, &mut watched);
    assert!(seen.contains("looked at"), "{seen}");
    assert!(!seen.contains("ENV "), "barge's environment inside: {seen}");
    assert!(
        !seen.contains("CAPS "),
        "capabilities beyond the container's inside: {seen}"
    );
    c.b.ok(&["rm", "-f", "spy"]);
}

/// Without a firewall a bridge's containers would be open to other
/// networks and the LAN: the start fails instead (fail closed).
#[test]
fn no_bridge_without_its_firewall() {
    let Some(c) = Corpus::new() else { return };
    if !require_root_and(&["iptables"]) {
        return;
    }
    let image = c.image("nofw", |_| {});
    // iptables lives in /usr/sbin: a PATH without it.
    let o =
        c.b.command()
            .env("PATH", "/usr/bin:/bin")
            .args(["run", "--rm", &image, "true"])
            .output()
            .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("bridge networks need iptables"), "{}", err(&o));
    assert_eq!(c.b.ok(&["ps", "-aq"]).trim(), "", "a refused container is left behind");
    let o =
        c.b.command()
            .env("PATH", "/usr/bin:/bin")
            .args(["run", "--rm", "--network", "none", &image, "true"])
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", err(&o));
}

/// With relayed pipes, `barge run IMAGE yes | head -1` must still end: when
/// barge's own stdout is closed and no log wants the output, the
/// container's write fails as it would have on barge's pipe.
#[test]
fn a_closed_reader_ends_the_containers_output() {
    let Some(c) = Corpus::new() else { return };
    let image = c.image("yes", |_| {});
    let mut child =
        c.b.command()
            .args(["run", "--rm", &image, "yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let mut first = [0u8; 2];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"y\n");
    drop(child.stdout.take());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "barge kept relaying to a closed pipe"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(c.b.ok(&["ps", "-aq"]).trim(), "");
}

/// `-u NAME` is looked up in `/etc/passwd` as the container will see it:
/// an upper layer that makes `/etc` opaque hides a lower layer's stale
/// passwd (here one that names `app` root).
#[test]
fn user_lookup_honours_opaque_directories() {
    use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
    let Some(c) = Corpus::new() else { return };
    let base = LayerBuilder::new()
        .dir("etc/", 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0::/root:/bin/sh\napp:x:0:0::/:/bin/sh\n",
            0o644,
        )
        .build(Compression::Gzip);
    let top = LayerBuilder::new()
        .dir("etc/", 0o755)
        .opaque("etc")
        .file("etc/group", b"root:x:0:\n", 0o644)
        .build(Compression::Gzip);
    Image::new(vec![base, top], Style::Oci, Spec::default()).push(&c.reg, "opaque", "latest");
    let image = format!("{}/opaque", c.reg.host());
    c.b.ok(&["pull", "-q", &image]);
    let o = c.b.run(&["run", "--rm", "-u", "app", &image, "/bin/true"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("unable to find user app"), "{}", err(&o));
}
