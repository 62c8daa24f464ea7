//! Rootless barge (issue 13): the real binary run as ordinary users
//! (`runuser`), each store with XDG directories and a pause process of its
//! own. `barge-rootless` (600000:65536) and `barge-rootless2`
//! (700000:65536) have subordinate ranges; `barge-rootless1` has none (the
//! single-ID fallback). They fail, not skip, under CI=true.

use barge_tests::image::busybox_image;
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, stderr_of as err, stdout_of as out, Barge, User};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const TOOLS: &[&str] = &["docker-registry", "umoci", "skopeo", "runuser", "useradd", "newuidmap"];

fn user() -> User {
    User::ensure("barge-rootless", Some(600000))
}

fn user2() -> User {
    User::ensure("barge-rootless2", Some(700000))
}

/// A registry with busybox (files of uid 1000 and 65534 in `/owned`) and
/// `user`'s store with it pulled.
fn setup(user: &User) -> Option<(Registry, Barge, String)> {
    if !require_root_and(TOOLS) {
        return None;
    }
    let reg = Registry::anonymous();
    busybox_image(&reg, "busybox", "latest", &[], |rootfs| {
        let owned = rootfs.join("owned");
        std::fs::create_dir_all(&owned).unwrap();
        for (name, id) in [("thousand", 1000), ("nobody", 65534)] {
            let f = owned.join(name);
            std::fs::write(&f, name).unwrap();
            std::os::unix::fs::lchown(&f, Some(id), Some(id)).unwrap();
        }
    });
    let b = Barge::as_user(user);
    let image = format!("{}/busybox", reg.host());
    b.ok(&["pull", "-q", &image]);
    Some((reg, b, image))
}

fn sh(b: &Barge, image: &str, flags: &[&str], script: &str) -> String {
    b.sh(image, flags, script)
}

#[test]
fn pull_and_run_as_a_user_with_subordinate_ids() {
    let user = user();
    let Some((_reg, b, image)) = setup(&user) else { return };
    // The store is the user's, under its XDG data directory.
    let md = std::fs::metadata(b.root().join("oci/index.json")).unwrap();
    assert_eq!(md.uid(), user.uid, "the store belongs to the user");
    // The pause process keeps the namespace: the user mapped to 0, the range to 1..65536.
    let pause = b.pause_pid().expect("a pause process");
    let map = std::fs::read_to_string(format!("/proc/{pause}/uid_map")).unwrap();
    let rows: Vec<Vec<&str>> = map.lines().map(|l| l.split_whitespace().collect()).collect();
    let own = user.uid.to_string();
    assert_eq!(
        rows,
        [vec!["0", own.as_str(), "1"], vec!["1", "600000", "65536"]],
        "{map}"
    );

    let inside = sh(
        &b,
        &image,
        &[],
        "id -u; stat -c '%u:%g %n' /owned/thousand /owned/nobody",
    );
    assert_eq!(
        inside.lines().collect::<Vec<_>>(),
        ["0", "1000:1000 /owned/thousand", "65534:65534 /owned/nobody"],
        "{inside}"
    );
    // On the host, the files belong to the subordinate IDs.
    let snapshots = b.root().join("snapshots");
    let owners: Vec<u32> = walk(&snapshots)
        .into_iter()
        .filter(|p| p.ends_with("owned/thousand"))
        .map(|p| std::fs::symlink_metadata(p).unwrap().uid())
        .collect();
    assert_eq!(owners, [600000 + 999], "uid 1000 inside is 600999 outside");

    for uid in ["1000", "1234", "65534"] {
        let got = sh(&b, &image, &["-u", uid], "id -u");
        assert_eq!(got.trim(), uid);
    }
    assert_eq!(sh(&b, &image, &["-u", "app"], "id -un").trim(), "app");
    let info = b.ok(&["info", "--format", "json"]);
    assert!(info.contains("name=rootless,ids=subordinate"), "{info}");
    // `system check` and `images` stay right.
    b.ok(&["system", "check"]);
    let images = b.ok(&["images", "--format", "{{.Size}}"]);
    assert!(images.trim().ends_with("MB"), "{images}");

    // Every command joined the same pause process; a PID file naming
    // anything else (here init, root's) is not joined: a new one starts.
    assert_eq!(b.pause_pid(), Some(pause));
    std::fs::write(b.dir.path().join("run/barge/pause.pid"), "1\n").unwrap();
    b.ok(&["images"]);
    let new = b.pause_pid().unwrap();
    assert!(new != 1 && new != pause, "{new}");
    let cmdline = std::fs::read(format!("/proc/{new}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"barge-pause\0"));
    barge_tests::kill(pause as u32, rustix::process::Signal::KILL);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// A one-shot HTTP server on the host's 127.0.0.1: answers `hello from
/// the host` to the first request and returns its port. (HTTP, with
/// wget as the client: nc half-closes when its input ends, after which
/// the pasta of Debian 12 was seen to drop the reply now and then.)
fn host_server() -> (u16, std::thread::JoinHandle<bool>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || match l.accept() {
        Ok((mut s, _)) => {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(&s), &mut line);
            line.starts_with("GET ") && s.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello from the host\n").is_ok()
        }
        Err(_) => false,
    });
    (port, t)
}

/// The client of [`host_server`] in a container, never hanging.
fn client(host: &str, port: u16) -> String {
    format!("timeout 10 wget -q -O - http://{host}:{port}/")
}

#[test]
fn the_user_mode_network_reaches_the_host_and_publishes_ports() {
    let user = user();
    let Some((_reg, b, image)) = setup(&user) else { return };
    // Outbound: the host's loopback through the gateway 10.0.2.2.
    let (port, served) = host_server();
    let started = std::time::Instant::now();
    let got = sh(
        &b,
        &image,
        &[],
        &format!("ip -4 addr show eth0; {}", client("10.0.2.2", port)),
    );
    // The network tool goes with the container, with no wait for a
    // SIGTERM pasta blocks (2 s, then SIGKILL).
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    assert!(got.contains("10.0.2.100/24"), "{got}");
    assert!(got.contains("hello from the host"), "{got}");
    assert!(served.join().unwrap());

    // Published: a server in the container reached from the host.
    let host_port = barge_tests::free_port();
    let id = b
        .ok(&[
            "run",
            "-d",
            "-p",
            &format!("127.0.0.1:{host_port}:8080"),
            &image,
            "sh",
            "-c",
            "while true; do echo hello from the container | nc -l -p 8080; done",
        ])
        .trim()
        .to_string();
    let ps = b.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("127.0.0.1:{host_port}->8080/tcp")), "{ps}");
    let mut text = String::new();
    barge_tests::wait_until("the published port", || {
        text.clear();
        TcpStream::connect(("127.0.0.1", host_port)).is_ok_and(|mut s| {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            s.read_to_string(&mut text).is_ok() && text.contains("hello from the container")
        })
    });
    // stats counts the container's own traffic.
    let net_io = b.ok(&["stats", "--no-stream", "--format", "{{.NetIO}}", &id]);
    assert_ne!(net_io.trim(), "0B / 0B");
    // exec joins the same network namespace.
    let exec = b.ok(&["exec", &id, "ip", "-4", "addr", "show", "eth0"]);
    assert!(exec.contains("10.0.2.100"), "{exec}");
    b.ok(&["rm", "-f", &id]);
    // The tool is gone with the container: the port is free again.
    barge_tests::wait_until("the host port to be released", || {
        TcpListener::bind(("127.0.0.1", host_port)).is_ok()
    });

    // A port below ip_unprivileged_port_start says why it fails.
    let e = b.fails(&["run", "--rm", "-p", "80:80", &image, "true"]);
    assert!(e.contains("ip_unprivileged_port_start"), "{e}");
    // --network none and host still work.
    let none = sh(&b, &image, &["--network", "none"], "ls /sys/class/net");
    assert_eq!(none.split_whitespace().collect::<Vec<_>>(), ["lo"], "{none}");
    let (port, served) = host_server();
    let host = sh(&b, &image, &["--network", "host"], &client("127.0.0.1", port));
    assert!(host.contains("hello from the host"), "{host}");
    assert!(served.join().unwrap());
}

#[test]
fn limit_flags_say_what_a_user_is_missing() {
    let user = user();
    let Some((_reg, b, image)) = setup(&user) else { return };
    for flags in [["--memory", "64m"], ["--cpus", "0.5"], ["--pids-limit", "20"]] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&[&image, "true"]);
        let e = b.fails(&args);
        assert!(
            e.contains(flags[0]) && e.contains("cgroup v2") && e.contains("delegated"),
            "{e}"
        );
    }
    // --ulimit needs no cgroup.
    let got = sh(&b, &image, &["--ulimit", "nofile=100:100"], "ulimit -n");
    assert_eq!(got.trim(), "100");
}

#[test]
fn lifecycle_commands_and_users_do_not_see_each_other() {
    let user = user();
    let Some((reg, b, image)) = setup(&user) else { return };
    let id = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "mine",
            &image,
            "sh",
            "-c",
            "echo started; sleep 60",
        ])
        .trim()
        .to_string();
    barge_tests::wait_until("the log", || out(&b.run(&["logs", "mine"])).contains("started"));
    assert!(b.ok(&["ps", "-q", "--no-trunc"]).contains(&id));
    assert_eq!(b.ok(&["exec", "mine", "id", "-u"]).trim(), "0");
    // The monitor runs from a read-only mount of barge made in the user's
    // mount namespace, not from a memfd copy of the whole binary.
    let pid = b.ok(&["inspect", "--format", "{{.State.Pid}}", "mine"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .to_string();
    let exe = std::fs::read_link(format!("/proc/{ppid}/exe")).unwrap();
    assert!(!exe.to_string_lossy().starts_with("/memfd:"), "{}", exe.display());
    let stats = b.ok(&["stats", "--no-stream", "--format", "{{.Name}}", "mine"]);
    assert_eq!(stats.trim(), "mine");

    // Another user, with a store and namespace of its own, sees none of it.
    let other = Barge::as_user(&user2());
    other.ok(&["pull", "-q", &format!("{}/busybox", reg.host())]);
    assert_eq!(other.ok(&["ps", "-aq"]).trim(), "");
    let e = other.fails(&["stop", "mine"]);
    assert!(e.contains("No such container"), "{e}");
    assert_ne!(b.pause_pid(), other.pause_pid());
    // Nor does root's store.
    assert_eq!(Barge::new().ok(&["ps", "-aq"]).trim(), "");

    b.ok(&["stop", "-t", "1", "mine"]);
    let status = b.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(status.starts_with("Exited"), "{status}");
    b.ok(&["rm", "mine"]);
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn a_volume_is_the_users_files() {
    let user = user();
    let Some((_reg, b, image)) = setup(&user) else { return };
    let vol = b.dir.path().join("home/vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("in"), "from the host\n").unwrap();
    user.give(&vol);
    let spec = format!("{}:/data", vol.display());
    let got = sh(
        &b,
        &image,
        &["-v", &spec],
        "cat /data/in; stat -c %u /data/in; echo out > /data/out",
    );
    assert_eq!(got.lines().collect::<Vec<_>>(), ["from the host", "0"], "{got}");
    let md = std::fs::metadata(vol.join("out")).unwrap();
    assert_eq!(md.uid(), user.uid, "root inside writes as the user");
}

#[test]
fn build_with_run_and_copy_chown() {
    let user = user();
    let Some((_reg, b, image)) = setup(&user) else { return };
    let ctx = b.dir.path().join("home/ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("file"), "copied\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {image}\nCOPY --chown=1000:1000 file /copied\nRUN echo ran > /ran && chown 65534:65534 /ran && id -u > /uid\n"
        ),
    )
    .unwrap();
    user.give(&ctx);
    b.ok(&["build", "-q", "-t", "built", ctx.to_str().unwrap()]);
    let got = sh(&b, "built", &[], "stat -c '%u:%g %n' /copied /ran; cat /uid /copied");
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        ["1000:1000 /copied", "65534:65534 /ran", "0", "copied"],
        "{got}"
    );
}

#[test]
fn multi_stage_build_keeps_owners_through_copy_from() {
    let user = user();
    let Some((_reg, b, image)) = setup(&user) else { return };
    let ctx = b.dir.path().join("home/ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // The first stage makes files of other owners inside the namespace;
    // the final one copies them out of that stage, once keeping their
    // owners and once giving them new ones.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {image} AS make\n\
             RUN mkdir /out && echo a > /out/a && echo b > /out/b && \
             chown 1000:1000 /out/a && chown 65534:65534 /out/b\n\
             FROM {image}\n\
             COPY --from=make /out /kept\n\
             COPY --from=make --chown=1000:65534 /out /given\n\
             RUN stat -c '%u:%g %n' /kept/b /given/a > /seen\n"
        ),
    )
    .unwrap();
    user.give(&ctx);
    b.ok(&["build", "-q", "-t", "staged", ctx.to_str().unwrap()]);
    let got = sh(
        &b,
        "staged",
        &[],
        "stat -c '%u:%g %n' /kept/a /kept/b /given/a /given/b; cat /seen /given/b",
    );
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "1000:1000 /kept/a",
            "65534:65534 /kept/b",
            "1000:65534 /given/a",
            "1000:65534 /given/b",
            // A RUN after the copies sees the same owners.
            "65534:65534 /kept/b",
            "1000:65534 /given/a",
            "b"
        ],
        "{got}"
    );
}

#[test]
fn without_subordinate_ids_a_single_id_namespace_warns_and_runs() {
    let user = User::ensure("barge-rootless1", None);
    let Some((_reg, b, image)) = setup(&user) else { return };
    let run = b.run(&["run", "--rm", &image, "sh", "-c", "id -u; stat -c %u /owned/thousand"]);
    assert!(run.status.success(), "{}", err(&run));
    assert_eq!(
        out(&run).lines().collect::<Vec<_>>(),
        ["0", "0"],
        "kept as the user's: {}",
        out(&run)
    );
    let warning = err(&run);
    assert_eq!(warning.lines().count(), 1, "one warning line: {warning}");
    assert!(
        warning.contains("/etc/subuid") && warning.contains("-u") && warning.contains("uidmap"),
        "{warning}"
    );
    let pause = b.pause_pid().unwrap();
    let map = std::fs::read_to_string(format!("/proc/{pause}/uid_map")).unwrap();
    assert_eq!(map.lines().count(), 1, "{map}");
    assert!(b.ok(&["info", "--format", "json"]).contains("name=rootless,ids=single"));
    // -u of another user cannot work there, as the warning said.
    assert!(!b.run(&["run", "--rm", "-u", "1000", &image, "true"]).status.success());
}

#[test]
fn a_rootless_container_cannot_reach_what_its_user_cannot() {
    let user = user();
    let Some((_reg, b, image)) = setup(&user) else { return };
    // A host file the user may not write, bound in: root inside is not root outside.
    let canary = b.dir.path().join("canary");
    std::fs::write(&canary, "root's\n").unwrap();
    let spec = format!("{}:/canary", canary.display());
    let got = sh(
        &b,
        &image,
        &["-v", &spec, "--cap-add", "ALL"],
        "echo pwned > /canary 2>/dev/null && echo wrote || echo refused; \
         ls /proc | grep -c '^[0-9]'",
    );
    let mut lines = got.lines();
    assert_eq!(lines.next(), Some("refused"), "{got}");
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "root's\n");
    // The pause process and barge are not in the container's PID namespace.
    let pids: u32 = lines.next().unwrap_or("0").trim().parse().unwrap();
    assert!(pids <= 3, "only the container's own processes: {got}");
    // The host's /etc is not the container's to write, even with every capability.
    let before = std::fs::read("/etc/passwd").unwrap();
    let e = b.run(&[
        "run",
        "--rm",
        "-v",
        "/etc:/hostetc",
        "--cap-add",
        "ALL",
        &image,
        "sh",
        "-c",
        "echo x >> /hostetc/passwd",
    ]);
    assert!(!e.status.success(), "appending to the host's /etc/passwd must fail");
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), before);
}

#[test]
fn fuse_overlayfs_is_the_fallback() {
    let user = user();
    if !require_root_and(&["fuse-overlayfs"]) {
        return;
    }
    let Some((_reg, b, image)) = setup(&user) else { return };
    let mut cmd = b.command();
    cmd.env("BARGE_OVERLAY", "fuse-overlayfs");
    let got = barge_tests::run_ok(cmd.args([
        "run",
        "--rm",
        &image,
        "sh",
        "-c",
        "grep ' / ' /proc/mounts; stat -c %u /owned/thousand; echo x > /new && cat /new",
    ]));
    assert!(got.contains("fuse"), "{got}");
    assert!(got.contains("1000\nx"), "{got}");
}

#[test]
fn commands_started_together_share_one_namespace() {
    let user = user2();
    let Some((_reg, b, image)) = setup(&user) else { return };
    // A fresh runtime directory: the next commands race to start the pause process.
    let pause = b.pause_pid().unwrap();
    barge_tests::kill(pause as u32, rustix::process::Signal::KILL);
    let children: Vec<_> = (0..3)
        .map(|_| {
            b.command()
                .args(["run", "--rm", &image, "readlink", "/proc/self/ns/user"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let seen: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", err(&o));
            out(&o).trim().to_string()
        })
        .collect();
    // Containers get no user namespace of their own: they are in the
    // pause process's, one for all three commands.
    let pause = b.pause_pid().unwrap();
    let ns = std::fs::read_link(format!("/proc/{pause}/ns/user")).unwrap();
    for s in &seen {
        assert_eq!(s, &ns.display().to_string(), "{seen:?}");
    }
}

#[test]
fn without_xdg_runtime_dir_the_pause_pid_is_in_a_private_tmp_dir() {
    if !require_root_and(TOOLS) {
        return;
    }
    let user = user2();
    let b = Barge::as_user(&user);
    let dir = std::path::PathBuf::from(format!("/tmp/barge-run-{}", user.uid));
    let images = |b: &Barge| {
        let d = b.dir.path();
        std::process::Command::new("runuser")
            .args(["-u", &user.name, "--", "env", "-u", "XDG_RUNTIME_DIR"])
            .arg(format!("HOME={}", d.join("home").display()))
            .arg(format!("XDG_DATA_HOME={}", d.join("data").display()))
            .arg(barge_tests::barge_bin())
            .arg("images")
            .current_dir("/")
            .output()
            .unwrap()
    };
    // Another user's directory at that name (here root's) is refused.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let o = images(&b);
    assert!(!o.status.success());
    assert!(err(&o).contains("not a directory owned by you"), "{}", err(&o));
    std::fs::remove_dir(&dir).unwrap();

    let o = images(&b);
    assert!(o.status.success(), "{}", err(&o));
    let md = std::fs::symlink_metadata(&dir).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (user.uid, 0o700));
    let pid: i32 = std::fs::read_to_string(dir.join("pause.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"barge-pause\0"));
    barge_tests::kill(pid as u32, rustix::process::Signal::KILL);
    let _ = std::fs::remove_dir_all(&dir);
}
