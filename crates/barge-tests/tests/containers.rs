//! Containers: isolation proven from inside and outside, the lifecycle
//! commands, exit codes, and the same bundle under runc.

use barge_tests::image::{busybox_store, ipctool};
use barge_tests::registry::Registry;
use barge_tests::{read_past_line, require, require_root_and, rest_of, wait_until, Barge};
use barge_tests::{stderr_of as err, stdout_of as out};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A store with a busybox image pulled; returns it with the image reference.
fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

fn sh(b: &Barge, image: &str, flags: &[&str], script: &str) -> String {
    b.sh(image, flags, script)
}

fn inspect(b: &Barge, c: &str, field: &str) -> String {
    b.ok(&["inspect", "--format", field, c]).trim().to_string()
}

#[test]
fn pid_namespace_from_inside_and_outside() {
    let Some((_reg, b, image)) = setup() else { return };
    let inside = sh(&b, &image, &[], "echo $$; ps -o pid,comm");
    let mut lines = inside.lines();
    assert_eq!(lines.next(), Some("1"), "the command is PID 1: {inside}");
    let pids: Vec<&str> = lines
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert!(pids.len() <= 3, "only the container's own processes: {inside}");

    let id = b
        .ok(&["run", "-d", "--name", "pidns", &image, "sleep", "30"])
        .trim()
        .to_string();
    let host_pid: i32 = inspect(&b, "pidns", "{{.State.Pid}}").parse().unwrap();
    assert!(host_pid > 1, "a different PID on the host");
    let cmdline = std::fs::read(format!("/proc/{host_pid}/cmdline")).unwrap();
    assert!(
        cmdline.starts_with(b"sleep\0"),
        "{:?}",
        String::from_utf8_lossy(&cmdline)
    );
    let ns_host = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let ns_container = std::fs::read_link(format!("/proc/{host_pid}/ns/pid")).unwrap();
    assert_ne!(ns_host, ns_container);
    b.ok(&["rm", "-f", &id]);
}

#[test]
fn init_reaps_orphaned_zombies() {
    let Some((_reg, b, image)) = setup() else { return };
    // An orphan is reparented to PID 1; `sleep` as PID 1 never reaps it, barge's init does.
    let script = "(sleep 0.1 &); exec sleep 30";
    b.ok(&["run", "-d", "--name", "noinit", &image, "sh", "-c", script]);
    b.ok(&["run", "-d", "--init", "--name", "withinit", &image, "sh", "-c", script]);
    let started = std::time::Instant::now();
    b.ok(&["run", "-d", "--init", "--name", "quick", &image, "sleep", "30"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "run -d --init returns at once"
    );
    // (state, command) of each process but the `ps` itself.
    let procs = |name: &str| -> Vec<(String, String)> {
        b.ok(&["exec", name, "ps", "-o", "stat,comm"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.to_string(), w.next()?.to_string()))
            })
            .filter(|(_, comm)| comm != "ps")
            .collect()
    };
    let zombies = |p: &[(String, String)]| p.iter().filter(|(stat, _)| stat.starts_with('Z')).count();
    // The orphan's 0.1 s are over once it is a zombie where nothing reaps it…
    wait_until("the orphan to exit", || zombies(&procs("noinit")) == 1);
    // …and gone where the init reaps it: only the command is left asleep.
    wait_until("the init to reap the orphan", || {
        let p = procs("withinit");
        zombies(&p) == 0 && p.iter().filter(|(_, comm)| comm == "sleep").count() == 1
    });
    assert_eq!(zombies(&procs("noinit")), 1, "without --init the orphan stays a zombie");
    let pid1 = b.ok(&["exec", "withinit", "cat", "/proc/1/cmdline"]);
    assert!(
        !pid1.starts_with("sleep"),
        "with --init the command is not PID 1: {pid1:?}"
    );
    b.ok(&["rm", "-f", "noinit", "withinit", "quick"]);
}

#[test]
fn mounts_rootfs_and_special_filesystems() {
    let Some((_reg, b, image)) = setup() else { return };
    let mounts = sh(&b, &image, &[], "cat /proc/mounts");
    assert!(
        mounts
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("overlay / overlay")),
        "{mounts}"
    );
    for (dev, fs) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        assert!(
            mounts
                .lines()
                .any(|l| l.split(' ').nth(1) == Some(dev) && l.split(' ').nth(2) == Some(fs)),
            "{dev} {fs}: {mounts}"
        );
    }
    assert!(
        mounts.lines().any(|l| l.contains(" /sys sysfs ro,")),
        "/sys is read-only: {mounts}"
    );
    let dev = sh(&b, &image, &[], "ls /dev | sort | tr '\\n' ' '");
    assert_eq!(
        dev.trim(),
        "core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero"
    );
    // docker's masked and read-only paths.
    assert_eq!(sh(&b, &image, &[], "cat /proc/kcore | wc -c").trim(), "0");
    assert_eq!(sh(&b, &image, &[], "ls /sys/firmware | wc -l").trim(), "0");
    assert!(sh(
        &b,
        &image,
        &[],
        "echo 1 > /proc/sys/kernel/domainname 2>&1 && echo wrote || echo refused"
    )
    .contains("refused"));
    assert!(sh(&b, &image, &[], "touch /sys/x 2>&1 || echo refused").contains("refused"));
    // pivot_root, not chroot: the old root is gone, not just hidden.
    assert_eq!(
        sh(&b, &image, &[], "cat /proc/1/mountinfo | grep -c ' / / ' || true").trim(),
        "1"
    );
    // /etc files.
    let etc = sh(
        &b,
        &image,
        &["--hostname", "box1"],
        "cat /etc/hostname; grep localhost /etc/hosts | head -1; test -f /etc/resolv.conf && echo resolv",
    );
    assert_eq!(etc, "box1\n127.0.0.1\tlocalhost\nresolv\n");
    // docker's /etc/hosts for --network none, byte for byte: no line for
    // the container's own name, which has no address.
    let hosts = sh(
        &b,
        &image,
        &["--network", "none", "--hostname", "box1"],
        "cat /etc/hosts",
    );
    assert_eq!(
        hosts,
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    );
    // --read-only.
    let ro = sh(
        &b,
        &image,
        &["--read-only"],
        "touch /x 2>&1 || echo refused; echo ok > /dev/shm/w && cat /dev/shm/w",
    );
    assert!(
        ro.contains("Read-only file system") && ro.contains("refused") && ro.ends_with("ok\n"),
        "{ro}"
    );
}

#[test]
fn volumes_and_host_files() {
    let Some((_reg, b, image)) = setup() else { return };
    let host = tempfile::tempdir().unwrap();
    let rw = host.path().join("rw");
    let ro = host.path().join("ro");
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("given"), "from host").unwrap();
    let secret = host.path().join("outside-secret");
    std::fs::write(&secret, "host only").unwrap();
    let script = format!(
        "echo written > /data/out; cat /conf/given; echo x > /conf/nope 2>/dev/null || echo ro-refused; cat {} 2>/dev/null || echo invisible; echo escape > /tmp/escaped-{}",
        secret.display(),
        std::process::id()
    );
    let o = sh(
        &b,
        &image,
        &[
            "-v",
            &format!("{}:/data", rw.display()),
            "-v",
            &format!("{}:/conf:ro", ro.display()),
        ],
        &script,
    );
    assert_eq!(o, "from hostro-refused\ninvisible\n");
    assert_eq!(std::fs::read_to_string(rw.join("out")).unwrap(), "written\n");
    assert!(!ro.join("nope").exists());
    assert!(
        !std::path::Path::new(&format!("/tmp/escaped-{}", std::process::id())).exists(),
        "a container write reached the host's /tmp"
    );
    // Not a host path nor a volume name (a bare name is a volume, as in docker).
    let e = b.fails(&["run", "--rm", "-v", "../relative:/x", &image, "true"]);
    assert!(e.contains("includes invalid characters for a local volume name"), "{e}");
}

#[test]
fn device_nodes_made_inside_open_nothing() {
    let Some((_reg, b, image)) = setup() else { return };
    // Any node the container makes (it holds CAP_MKNOD, as in docker) must
    // open nothing: 1:3 (null) stands for the host's disks and /dev/mem,
    // which this machine refuses to open even to the host's root.
    let vol = tempfile::tempdir().unwrap();
    let script = "for d in /made /dev/made /tmp/made /vol/made; do mknod $d c 1 3 && echo made; \
         echo x 2>/dev/null >$d && echo OPENED $d; done; \
         echo ok > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c";
    let out = sh(&b, &image, &["-v", &format!("{}:/vol", vol.path().display())], script);
    assert_eq!(out, "made\nmade\nmade\nmade\n4\n4\n", "nodes are made but open nothing");
    // With CAP_SYS_ADMIN a container can mount a filesystem of its own that
    // allows devices: the devices cgroup (docker's allowlist) still refuses.
    let admin = sh(
        &b,
        &image,
        &["--cap-add", "SYS_ADMIN"],
        // 1:11 is /dev/kmsg, outside docker's allowlist; opened for writing, nothing written.
        "mkdir /m && mount -t tmpfs t /m && mknod /m/kmsg c 1 11 && (cat /dev/null >/m/kmsg) 2>/dev/null && echo OPENED || echo refused",
    );
    assert_eq!(admin, "refused\n");
    let tty = sh(&b, &image, &[], "ls -l /dev/null /dev/tty | cut -c1");
    assert_eq!(tty, "c\nc\n", "/dev/null and /dev/tty are the host's character devices");
}

#[test]
fn upper_dir_survives_stop_and_start_and_goes_with_rm() {
    let Some((_reg, b, image)) = setup() else { return };
    let id = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "keeper",
            &image,
            "sh",
            "-c",
            "echo data > /persist; exec sleep 30",
        ])
        .trim()
        .to_string();
    wait_until("the write", || {
        b.run(&["exec", "keeper", "cat", "/persist"]).status.success()
    });
    b.ok(&["kill", "keeper"]);
    b.ok(&["wait", "keeper"]);
    b.ok(&["start", "keeper"]);
    assert_eq!(b.ok(&["exec", "keeper", "cat", "/persist"]), "data\n");
    let dir = b.root().join("containers").join(&id);
    assert!(dir.join("upper/persist").is_file());
    b.ok(&["rm", "-f", "keeper"]);
    assert!(!dir.exists(), "rm removes the container's files");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&id),
        "nothing of the container is mounted on the host"
    );
}

#[test]
fn network_none_and_host() {
    let Some((_reg, b, image)) = setup() else { return };
    let links = sh(&b, &image, &["--network", "none"], "ip -o link");
    assert_eq!(links.lines().count(), 1, "only lo: {links}");
    assert!(links.contains("lo:") && links.contains("UP"), "lo is up: {links}");
    // Other tests add and remove veths meanwhile: the links present before
    // and after must all be seen inside.
    let host_links = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir("/sys/class/net")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let before = host_links();
    let inside: std::collections::BTreeSet<String> = sh(&b, &image, &["--network", "host"], "ls /sys/class/net")
        .lines()
        .map(str::to_string)
        .collect();
    let after = host_links();
    for l in before.intersection(&after) {
        assert!(inside.contains(l), "the host's {l} is seen inside: {inside:?}");
    }
    // The host's network comes with the host's name, as in docker;
    // --hostname still wins, and other networks get the short ID.
    let host_name = rustix::system::uname().nodename().to_string_lossy().into_owned();
    assert_eq!(sh(&b, &image, &["--network", "host"], "hostname").trim(), host_name);
    assert_eq!(
        sh(&b, &image, &["--network", "host", "--hostname", "mine"], "hostname").trim(),
        "mine"
    );
    assert_eq!(sh(&b, &image, &["--network", "none"], "hostname").trim().len(), 12);
    let help = b.ok(&["run", "--help"]);
    assert!(help.contains("bridge (the default as root"), "{help}");
}

#[test]
fn ipc_objects_stay_in_their_container() {
    let Some((_reg, b, image)) = setup() else { return };
    if !require(
        "gcc with a static libc",
        Command::new("gcc").arg("--version").output().is_ok(),
    ) {
        return;
    }
    let tool = ipctool();
    let dir = tool.parent().unwrap().display().to_string();
    let vol = format!("{dir}:/ipc:ro");
    let name = tool.file_name().unwrap().to_string_lossy().into_owned();
    let key = "0x5eed";
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ipc-a",
        "-v",
        &vol,
        &image,
        "sh",
        "-c",
        &format!("/ipc/{name} create {key} && touch /dev/mqueue/barge-q && exec sleep 30"),
    ]);
    wait_until("the segment", || {
        b.run(&["exec", "ipc-a", &format!("/ipc/{name}"), "find", key])
            .status
            .success()
    });
    assert!(b.run(&["exec", "ipc-a", "ls", "/dev/mqueue/barge-q"]).status.success());
    let other = b.run(&[
        "run",
        "--rm",
        "-v",
        &vol,
        &image,
        "sh",
        "-c",
        &format!("/ipc/{name} find {key} && echo seen || echo unseen; ls /dev/mqueue"),
    ]);
    assert_eq!(out(&other), "unseen\n", "{}", err(&other));
    assert!(
        !Command::new(&tool).args(["find", key]).status().unwrap().success(),
        "the host does not see it"
    );
    b.ok(&["rm", "-f", "ipc-a"]);
}

#[test]
fn hostname_capabilities_user_fds_and_limits() {
    let Some((_reg, b, image)) = setup() else { return };
    let id = b
        .ok(&["create", "--name", "uts", &image, "hostname"])
        .trim()
        .to_string();
    b.ok(&["start", "-a", "uts"])
        .contains(&id[..12])
        .then_some(())
        .expect("hostname is the short ID");
    assert_eq!(sh(&b, &image, &["--hostname", "custom"], "hostname"), "custom\n");

    let status = sh(
        &b,
        &image,
        &[],
        "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status",
    );
    assert!(
        status.contains("CapEff:\t00000000a80425fb") && status.contains("CapBnd:\t00000000a80425fb"),
        "docker's default set: {status}"
    );
    assert!(status.contains("NoNewPrivs:\t0"), "off by default, as docker: {status}");
    let none = sh(&b, &image, &["--cap-drop", "ALL"], "grep CapBnd /proc/self/status");
    assert!(none.contains("0000000000000000"), "{none}");
    let plus = sh(
        &b,
        &image,
        &["--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN"],
        "grep CapEff /proc/self/status",
    );
    assert!(
        plus.contains("00000000a80435fa"),
        "NET_ADMIN added, CHOWN dropped: {plus}"
    );
    let e = b.fails(&["run", "--rm", "--cap-add", "BOGUS", &image, "true"]);
    assert!(e.contains("unknown capability"), "{e}");

    // Users come from the image's own /etc/passwd and /etc/group; the
    // primary group is among the supplementary ones, as with runc.
    assert_eq!(
        sh(&b, &image, &["-u", "app"], "id"),
        "uid=1234(app) gid=1234(app) groups=29(audio),1234(app)\n"
    );
    assert_eq!(sh(&b, &image, &["-u", "4000:4001"], "id -u; id -g"), "4000\n4001\n");
    let nouser = b.run(&["run", "--rm", "-u", "nobody-here", &image, "true"]);
    assert_eq!(nouser.status.code(), Some(125));
    assert!(
        err(&nouser).contains("unable to find user nobody-here"),
        "{}",
        err(&nouser)
    );
    let caps = sh(&b, &image, &["-u", "app"], "grep CapEff /proc/self/status");
    assert!(
        caps.contains("0000000000000000"),
        "a non-root user has no effective capabilities: {caps}"
    );

    // Only stdio is open (the 3 is ls's own directory handle).
    let fds = sh(&b, &image, &[], "ls /proc/self/fd | tr '\\n' ' '");
    assert_eq!(fds.trim(), "0 1 2 3", "{fds}");
    let nofile: u64 = sh(&b, &image, &[], "ulimit -n").trim().parse().unwrap();
    assert!(nofile > 1024, "RLIMIT_NOFILE is raised: {nofile}");
}

#[test]
fn exit_codes_like_docker() {
    let Some((_reg, b, image)) = setup() else { return };
    assert_eq!(b.run(&["run", "--rm", &image, "true"]).status.code(), Some(0));
    assert_eq!(
        b.run(&["run", "--rm", &image, "sh", "-c", "exit 1"]).status.code(),
        Some(1)
    );
    assert_eq!(
        b.run(&["run", "--rm", &image, "sh", "-c", "exit 42"]).status.code(),
        Some(42)
    );
    assert_eq!(b.run(&["run", "--rm", "--bogus-flag", &image]).status.code(), Some(125));
    assert_eq!(b.run(&["run", "--rm", "127.0.0.1:1/nothing"]).status.code(), Some(125));
    let o = b.run(&["run", "--rm", &image, "/etc/hosts"]);
    assert_eq!(o.status.code(), Some(126), "{}", err(&o));
    let o = b.run(&["run", "--rm", &image, "nosuchcommand"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(
        err(&o).contains("exec: \"nosuchcommand\": executable file not found in $PATH"),
        "{}",
        err(&o)
    );
    // Detached, the monitor's report is said once, with the same status.
    let o = b.run(&["run", "-d", &image, "nosuchcommand"]);
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert_eq!(err(&o).matches("did not start").count(), 1, "{}", err(&o));
    // Killed by a signal: 128 + the signal (PID 1 cannot be SIGKILLed from inside, so under --init).
    assert_eq!(
        b.run(&["run", "--rm", "--init", &image, "sh", "-c", "kill -9 $$"])
            .status
            .code(),
        Some(137)
    );
}

#[test]
fn signals_are_forwarded_to_the_container() {
    let Some((_reg, b, image)) = setup() else { return };
    let mut child = b
        .command()
        .args([
            "run",
            "--rm",
            &image,
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    barge_tests::kill(child.id(), rustix::process::Signal::TERM);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(status.code(), Some(42));
    assert!(rest.contains("got-term"), "{rest}");

    // kill -s sends the signal; stop sends SIGTERM, then SIGKILL after the timeout.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "trapper",
        &image,
        "sh",
        "-c",
        "trap 'exit 7' USR1; echo trapping; while true; do sleep 0.1; done",
    ]);
    // Until the trap is set, USR1 to the namespace's PID 1 would be dropped.
    wait_until("the trap", || b.ok(&["logs", "trapper"]) == "trapping\n");
    b.ok(&["kill", "-s", "USR1", "trapper"]);
    assert_eq!(b.ok(&["wait", "trapper"]), "7\n");
    b.ok(&["run", "-d", "--name", "stubborn", &image, "sleep", "60"]);
    let started = std::time::Instant::now();
    assert_eq!(b.ok(&["stop", "-t", "1", "stubborn"]), "stubborn\n");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(inspect(&b, "stubborn", "{{.State.ExitCode}}"), "137");
    let e = b.fails(&["kill", "stubborn"]);
    assert!(e.contains("is not running"), "{e}");
}

#[test]
fn detached_containers_ps_logs_stop_rm() {
    let Some((_reg, b, image)) = setup() else { return };
    let id = b.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "-l",
        "team=core",
        &image,
        "sh",
        "-c",
        "echo start; echo oops >&2; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    wait_until("some output", || b.ok(&["logs", "ticker"]).contains("tick 2"));
    let table = b.ok(&["ps"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ]
    );
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.starts_with(&id[..12]) && row.contains("Up ") && row.trim_end().ends_with("ticker"),
        "{table}"
    );
    assert!(row.contains("\"sh -c echo start; e…\""), "{row}");

    let logs = b.run(&["logs", "ticker"]);
    assert!(out(&logs).starts_with("start\ntick 0\n"), "{}", out(&logs));
    assert_eq!(err(&logs), "oops\n", "stderr stays stderr");
    assert_eq!(b.ok(&["logs", "--tail", "1", "ticker"]).lines().count(), 1);
    let stamped = b.ok(&["logs", "-t", "--tail", "1", "ticker"]);
    assert!(stamped.starts_with("20") && stamped.contains("Z tick"), "{stamped}");
    // -f follows until the container stops: it shows a tick written after
    // the log was last read, then ends when the container does.
    let ticks = b
        .ok(&["logs", "ticker"])
        .lines()
        .filter(|l| l.starts_with("tick "))
        .count();
    let mut follow = b
        .command()
        .args(["logs", "-f", "ticker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut rest = read_past_line(&mut follow, &format!("tick {}", ticks + 2));
    assert_eq!(b.ok(&["stop", "ticker"]), "ticker\n");
    rest_of(&mut follow, &mut rest);
    let status = b.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(status.starts_with("Exited (") && status.contains("ago"), "{status}");
    let e = b.fails(&["logs", "nosuch"]);
    assert!(e.contains("No such container: nosuch"), "{e}");
    assert_eq!(b.ok(&["rm", "ticker"]), "ticker\n");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn rm_of_a_running_container_needs_force_and_rm_flag_removes() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&["run", "-d", "--name", "busy", &image, "sleep", "30"]);
    let e = b.fails(&["rm", "busy"]);
    assert!(
        e.contains("container is running: stop the container before removing or force remove"),
        "{e}"
    );
    b.ok(&["rm", "-f", "busy"]);
    b.ok(&["run", "--rm", "--name", "gone", &image, "true"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    b.ok(&["run", "-d", "--rm", "--name", "gone2", &image, "true"]);
    wait_until("--rm of a detached container", || b.ok(&["ps", "-aq"]).is_empty());
    // rm -f of a running --rm container: its monitor removes it as it
    // dies, and rm -f still succeeds, printing the name as docker does.
    for i in 0..3 {
        let name = format!("rmrace{i}");
        b.ok(&["run", "-d", "--rm", "--name", &name, &image, "sleep", "30"]);
        assert_eq!(b.ok(&["rm", "-f", &name]), format!("{name}\n"));
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn ps_filters_formats_and_prune() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&["run", "--name", "ok0", "-l", "tier=a", &image, "true"]);
    let _ = b.run(&["run", "--name", "bad3", "-l", "tier=b", &image, "sh", "-c", "exit 3"]);
    b.ok(&["create", "--name", "fresh", &image, "true"]);
    b.ok(&["run", "-d", "--name", "live", "-l", "tier=a", &image, "sleep", "30"]);
    let names = |args: &[&str]| {
        let mut v: Vec<String> = b
            .ok(&[&["ps", "--format", "{{.Names}}"], args].concat())
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&[]), ["live"]);
    assert_eq!(names(&["-a"]), ["bad3", "fresh", "live", "ok0"]);
    assert_eq!(names(&["-a", "--filter", "label=tier=a"]), ["live", "ok0"]);
    assert_eq!(names(&["-a", "--filter", "status=exited"]), ["bad3", "ok0"]);
    assert_eq!(names(&["--filter", "exited=3"]), ["bad3"]);
    assert_eq!(names(&["-a", "--filter", "status=created"]), ["fresh"]);
    assert_eq!(names(&["-a", "--filter", "name=ok"]), ["ok0"]);
    assert_eq!(names(&["-a", "--filter", &format!("ancestor={image}")]).len(), 4);
    assert_eq!(names(&["-l"]), ["live"], "the latest created");
    assert_eq!(b.ok(&["ps", "-n", "2", "-q"]).lines().count(), 2);
    let json: serde_json::Value = serde_json::from_str(b.ok(&["ps", "--format", "json"]).trim()).unwrap();
    assert_eq!(json["Names"], "live");
    assert_eq!(json["State"], "running");
    assert!(json.get("Label").is_none(), "a method, not a field: {json}");
    // docker's `.Label "KEY"`, and LocalVolumes counting volume mounts.
    assert_eq!(
        b.ok(&[
            "ps",
            "--format",
            "{{.Label \"tier\"}}|{{.Label \"no\"}}|{{.LocalVolumes}}"
        ]),
        "a||0\n"
    );
    b.ok(&[
        "run",
        "-d",
        "--name",
        "withvol",
        "-v",
        "psvol:/data",
        "-v",
        "/tmp:/hosttmp",
        &image,
        "sleep",
        "30",
    ]);
    assert_eq!(
        b.ok(&[
            "ps",
            "--filter",
            "name=withvol",
            "--format",
            "{{.LocalVolumes}} {{.Mounts}}"
        ]),
        "1 psvol,/tmp\n"
    );
    b.ok(&["rm", "-f", "withvol"]);
    assert_eq!(b.ok(&["ps", "--no-trunc", "-q"]).trim().len(), 64);
    let sized = b.ok(&["ps", "-s"]);
    assert!(
        sized.lines().next().unwrap().contains("SIZE") && sized.contains("(virtual "),
        "{sized}"
    );
    let e = b.fails(&["ps", "--filter", "colour=red"]);
    assert!(e.contains("invalid filter"), "{e}");
    // The rest of docker's filters.
    let vol = tempfile::tempdir().unwrap();
    let bind = format!("{}:/data", vol.path().display());
    b.ok(&[
        "run",
        "-d",
        "--name",
        "vol",
        "-v",
        &bind,
        "--network",
        "none",
        &image,
        "sleep",
        "30",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1::8080",
        &image,
        "sleep",
        "30",
    ]);
    assert_eq!(names(&["--filter", "volume=/data"]), ["vol"]);
    assert_eq!(
        names(&["--filter", &format!("volume={}", vol.path().display())]),
        ["vol"]
    );
    assert_eq!(names(&["--filter", "network=none"]), ["vol"]);
    assert_eq!(names(&["--filter", "network=bridge"]), ["live", "web"]);
    assert_eq!(names(&["--filter", "publish=8080"]), ["web"]);
    assert_eq!(names(&["--filter", "publish=8080/udp"]), Vec::<String>::new());
    assert_eq!(names(&["--filter", "expose=8080/tcp"]), ["web"]);
    assert_eq!(names(&["--filter", "health=none"]), ["live", "vol", "web"]);
    assert_eq!(names(&["--filter", "health=healthy"]), Vec::<String>::new());
    assert_eq!(names(&["--filter", "is-task=false", "--filter", "name=web"]), ["web"]);
    for bad in ["health=great", "publish=http", "expose=0"] {
        let e = b.fails(&["ps", "--filter", bad]);
        assert!(e.contains(&format!("invalid filter '{bad}")), "{e}");
    }
    b.ok(&["rm", "-f", "vol", "web"]);
    // psFormat in docker's config.json is the default; --format wins.
    std::fs::create_dir_all(b.docker_config()).unwrap();
    std::fs::write(
        b.docker_config().join("config.json"),
        r#"{"psFormat":"{{.Names}}:{{if eq .State \"running\"}}up{{else}}down{{end}}"}"#,
    )
    .unwrap();
    assert_eq!(b.ok(&["ps"]), "live:up\n");
    assert_eq!(b.ok(&["ps", "--format", "{{.Names}}"]), "live\n");
    std::fs::remove_file(b.docker_config().join("config.json")).unwrap();

    // prune: "n" keeps everything; label filter; then all stopped ones.
    let o = b.run_with_stdin(&["container", "prune"], "n\n");
    assert!(
        err(&o).contains("WARNING! This will remove all stopped containers.")
            && err(&o).contains("Are you sure you want to continue? [y/N]")
    );
    assert_eq!(names(&["-a"]).len(), 4);
    let ok0 = inspect(&b, "ok0", "{{.Id}}");
    let o = b.ok(&["container", "prune", "-f", "--filter", "label=tier=a"]);
    assert_eq!(
        o.lines().take(2).collect::<Vec<_>>(),
        ["Deleted Containers:", ok0.as_str()]
    );
    assert!(
        o.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("Total reclaimed space: "),
        "{o}"
    );
    let o = b.run_with_stdin(&["container", "prune"], "y\n");
    assert!(out(&o).contains("Deleted Containers:"));
    assert_eq!(names(&["-a"]), ["live"], "running containers stay");
    b.ok(&["rm", "-f", "live"]);
}

#[test]
fn twenty_containers_at_once() {
    let Some((_reg, b, image)) = setup() else { return };
    let children: Vec<_> = (0..20)
        .map(|_| {
            b.command()
                .args(["run", "-d", &image, "sleep", "30"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", err(&o));
        ids.push(out(&o).trim().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    let running = b.ok(&["ps", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = running.lines().collect();
    assert_eq!(names.len(), 20);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 20, "unique names");
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.iter().map(String::as_str));
    b.ok(&rm);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn exec_enters_the_namespaces_and_leaves_nothing_behind() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "host1",
        "--hostname",
        "inside",
        &image,
        "sleep",
        "30",
    ]);
    assert_eq!(b.ok(&["exec", "host1", "hostname"]), "inside\n");
    assert_eq!(b.ok(&["exec", "host1", "cat", "/proc/1/cmdline"]), "sleep\u{0}30\u{0}");
    assert_eq!(b.run(&["exec", "host1", "sh", "-c", "exit 5"]).status.code(), Some(5));
    assert_eq!(
        b.ok(&[
            "exec",
            "-u",
            "app",
            "-w",
            "/tmp",
            "-e",
            "X=1",
            "host1",
            "sh",
            "-c",
            "id -u; pwd; echo $X"
        ]),
        "1234\n/tmp\n1\n"
    );
    let ps = b.ok(&["exec", "host1", "ps", "-o", "comm"]);
    assert_eq!(
        ps.lines().skip(1).collect::<Vec<_>>(),
        ["sleep", "ps"],
        "no barge process inside: {ps}"
    );
    let o = b.run(&["exec", "host1", "nosuch"]);
    assert_eq!(o.status.code(), Some(127));
    b.ok(&["rm", "-f", "host1"]);
    let e = b.fails(&["exec", "host1", "true"]);
    assert!(e.contains("No such container"), "{e}");
}

#[test]
fn images_used_by_containers_need_force_to_remove() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&["create", "--name", "user", &image, "true"]);
    let e = b.fails(&["rmi", &image]);
    assert!(
        e.contains("(must force) - container") && e.contains("is using its referenced image"),
        "{e}"
    );
    let out = b.ok(&["rmi", "-f", &image]);
    assert!(
        out.contains("Untagged:") && !out.contains("Deleted:"),
        "untagged, kept: {out}"
    );
    // The container still runs: its image (now dangling) and layers stay.
    b.ok(&["start", "-a", "user"]);
    let pruned = b.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(pruned, "Total reclaimed space: 0B\n", "images in use survive prune -a");
    b.ok(&["rm", "user"]);
    assert!(b.ok(&["image", "prune", "-f"]).contains("deleted: sha256:"));
}

#[test]
fn a_terminal_with_dash_t() {
    let Some((_reg, b, image)) = setup() else { return };
    if !require_root_and(&["script"]) {
        return;
    }
    let o = b
        .on_terminal(&format!("run --rm -t {image} sh -c 'tty; stty size; echo done'"))
        .output()
        .unwrap();
    let screen = out(&o);
    assert!(o.status.success(), "{screen}");
    assert!(screen.contains("/dev/pts/0"), "{screen}");
    assert!(screen.contains("done"), "{screen}");
}

#[test]
fn the_same_bundle_runs_under_runc() {
    let Some((_reg, b, image)) = setup() else { return };
    if !require_root_and(&["runc"]) {
        return;
    }
    // The seccomp filter of the bundle applies under runc too: unshare and
    // mount are refused, a user namespace (which needs no capability) too.
    let probe = "id; hostname; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; cat /etc/hostname; echo $$; ls / | tr '\\n' ' '; unshare -U true 2>&1; mount -t tmpfs none /mnt 2>&1; echo";
    let ours = sh(&b, &image, &["--hostname", "same"], probe);
    let theirs = sh(&b, &image, &["--hostname", "same", "--runtime", "runc"], probe);
    assert_eq!(ours, theirs, "the same observable result");
    assert!(ours.contains("Seccomp:\t2"), "{ours}");
    assert!(ours.contains("unshare(0x10000000): Operation not permitted"), "{ours}");
    let bundle_check = b.ok(&["create", "--name", "bundle", &image, "true"]);
    let dir = b.root().join("containers").join(bundle_check.trim());
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["ociVersion"], "1.0.2");
    assert_eq!(spec["root"]["path"], "rootfs");
    b.ok(&["rm", "bundle"]);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&b.root().join("containers").display().to_string()),
        "runc's rootfs mount is gone: {mountinfo}"
    );
}

#[test]
fn restart_wait_and_more_ps_filters() {
    let Some((_reg, b, image)) = setup() else { return };
    let first = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "first",
            &image,
            "sh",
            "-c",
            "echo run; exec sleep 30",
        ])
        .trim()
        .to_string();
    let second = b.ok(&["create", "--name", "second", &image, "true"]).trim().to_string();
    let third = b.ok(&["create", "--name", "third", &image, "true"]).trim().to_string();
    let names = |args: &[&str]| {
        b.ok(&[&["ps", "-a", "--format", "{{.Names}}"], args].concat())
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&["--filter", &format!("id={}", &second[..8])]), ["second"]);
    assert_eq!(names(&["--filter", "before=third"]), ["second", "first"]);
    assert_eq!(names(&["--filter", "since=first"]), ["third", "second"]);
    let _ = third;

    let pid_before = inspect(&b, "first", "{{.State.Pid}}");
    assert_eq!(b.ok(&["restart", "-t", "1", "first"]), "first\n");
    let pid_after = inspect(&b, "first", "{{.State.Pid}}");
    assert_ne!(pid_before, pid_after, "a new process");
    assert_eq!(inspect(&b, &first, "{{.State.Status}}"), "running");
    // The monitor relays the new output a moment after `restart` returns.
    wait_until("the log to continue across restarts", || {
        b.ok(&["logs", "first"]) == "run\nrun\n"
    });
    b.ok(&["kill", "-s", "TERM", "first"]);
    b.ok(&["kill", "first"]);
    assert_eq!(b.ok(&["wait", "first"]), "137\n");
    // until= keeps containers newer than the cut-off.
    let o = b.ok(&["container", "prune", "-f", "--filter", "until=1h"]);
    assert_eq!(o, "Total reclaimed space: 0B\n");
    b.ok(&["rm", "first", "second", "third"]);
}

#[test]
fn exec_with_a_terminal() {
    let Some((_reg, b, image)) = setup() else { return };
    if !require_root_and(&["script"]) {
        return;
    }
    b.ok(&["run", "-d", "--name", "tty-target", &image, "sleep", "30"]);
    let o = b
        .on_terminal("exec -t tty-target sh -c 'tty; echo done'")
        .output()
        .unwrap();
    let screen = out(&o);
    assert!(o.status.success(), "{screen}");
    assert!(screen.contains("/dev/pts/") && screen.contains("done"), "{screen}");
    b.ok(&["rm", "-f", "tty-target"]);
}

/// A container's size counts a file with several hard links once, as the
/// store's (and du's) count does.
#[test]
fn container_size_counts_hard_links_once() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&[
        "run",
        "--name",
        "links",
        &image,
        "sh",
        "-c",
        "head -c 1048576 /dev/zero > /big && ln /big /l1 && ln /big /l2 && ln /big /l3",
    ]);
    let size: u64 = inspect(&b, "links", "{{.SizeRw}}").parse().unwrap();
    assert!(
        (1 << 20..2 << 20).contains(&size),
        "1 MiB written once, linked thrice: {size}"
    );
    b.ok(&["rm", "links"]);
}

/// Options are checked before any image is looked up or pulled: a bad
/// limit or volume is reported at once, with no download attempted.
#[test]
fn options_are_checked_before_any_pull() {
    let b = Barge::new();
    // Nothing listens on port 1: a pull would fail with "cannot reach registry".
    for (flags, words) in [
        (&["--memory", "1k"][..], "Minimum memory limit allowed is 6MB"),
        (&["-v", "../rel:/x"][..], "invalid characters for a local volume name"),
        (&["-v", "/a:/b:bad"][..], "invalid mode"),
        (&["-p", "99999:80"][..], "invalid port specification"),
        (&["--cap-add", "NOPE"][..], "NOPE"),
        (&["--log-opt", "max-size=lots"][..], "invalid size"),
    ] {
        for verb in ["run", "create"] {
            let mut args = vec![verb];
            args.extend_from_slice(flags);
            args.extend(["127.0.0.1:1/nothing", "true"]);
            let o = b.run(&args);
            let e = err(&o);
            assert_eq!(o.status.code(), Some(125), "{args:?}: {e}");
            assert!(e.contains(words), "{args:?}: {e}");
            assert!(
                !e.contains("Unable to find image") && !e.contains("cannot reach"),
                "{args:?} pulled first: {e}"
            );
        }
    }
}

#[test]
fn everything_after_the_image_or_container_is_the_commands() {
    let Some((_reg, b, image)) = setup() else { return };
    let each = "for a; do echo \"[$a]\"; done";
    // Flags of barge's own (-l, -e, --rm, --cpu-shares) after IMAGE are the
    // command's; before IMAGE they are barge's.
    let out = b.ok(&[
        "run", "--rm", "-e", "X=1", &image, "sh", "-c", each, "sh", "-l", "-e", "--rm", "-c",
    ]);
    assert_eq!(out, "[-l]\n[-e]\n[--rm]\n[-c]\n");
    let out = b.ok(&["run", "--rm", "--entrypoint", "sh", &image, "-c", "echo hi $X"]);
    assert_eq!(out, "hi\n");
    let out = b.ok(&[
        "run",
        "--rm",
        "-e",
        "X=1",
        "--entrypoint",
        "sh",
        &image,
        "-c",
        "echo $X",
    ]);
    assert_eq!(out, "1\n");
    let ls = b.ok(&["run", "--rm", "--entrypoint", "ls", &image, "-ld", "/"]);
    assert!(ls.starts_with('d') && ls.trim_end().ends_with(" /"), "{ls}");
    // `IMAGE --help` runs `--help` in the container, as docker does.
    let o = b.run(&["run", "--rm", &image, "--help"]);
    assert_eq!(o.status.code(), Some(127), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--help"), "{o:?}");
    let id = b.ok(&["create", &image, "sh", "-c", each, "sh", "-a", "-t"]);
    let o = b.ok(&["start", "-a", id.trim()]);
    assert_eq!(o, "[-a]\n[-t]\n");

    b.ok(&["run", "-d", "--name", "argv", &image, "sleep", "300"]);
    let out = b.ok(&["exec", "argv", "sh", "-c", each, "sh", "-d", "-e", "X", "-w", "/x"]);
    assert_eq!(out, "[-d]\n[-e]\n[X]\n[-w]\n[/x]\n");
    let out = b.ok(&["exec", "-e", "Y=2", "argv", "sh", "-c", "echo $Y"]);
    assert_eq!(out, "2\n");
    let e = b.fails(&["exec", "argv"]);
    assert!(e.contains("\"barge exec\" requires at least 2 arguments"), "{e}");
    let e = b.fails(&["run"]);
    assert!(e.contains("IMAGE"), "{e}");
}

#[test]
fn exit_statuses_are_dockers() {
    let Some((_reg, b, image)) = setup() else { return };
    let status = |args: &[&str]| {
        let o = b.run_with_stdin(args, "");
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    // A missing container is 1 for every verb; 125 belongs to run/create.
    for verb in [
        &["logs"][..],
        &["exec"],
        &["stats", "--no-stream"],
        &["kill"],
        &["inspect"],
        &["port"],
        &["stop"],
    ] {
        let mut args = verb.to_vec();
        args.push("nosuch");
        if verb == ["exec"] {
            args.push("true");
        }
        let (code, e) = status(&args);
        assert_eq!(code, Some(1), "{args:?}: {e}");
        assert!(e.contains("nosuch"), "{args:?}: {e}");
    }
    b.ok(&["create", "--name", "idle", &image, "true"]);
    let (code, e) = status(&["exec", "idle", "true"]);
    assert_eq!(code, Some(1), "{e}");
    assert!(e.contains("is not running"), "{e}");
    let (code, e) = status(&["kill", "-s", "BOGUS", "idle"]);
    assert_eq!(code, Some(1), "{e}");
    // -it wants a terminal on stdin (here a pipe); -i alone does not.
    let (code, e) = status(&["run", "-it", "--rm", &image, "true"]);
    assert_eq!(
        (code, e.trim_start_matches("Error: ").trim()),
        (Some(1), "the input device is not a TTY")
    );
    assert_eq!(
        b.run_with_stdin(&["run", "-i", "--rm", &image, "cat"], "piped\n")
            .stdout,
        b"piped\n"
    );
    assert_eq!(status(&["run", "--rm", &image, "nosuchcommand"]).0, Some(127));

    b.ok(&["run", "-d", "--name", "live", &image, "sleep", "300"]);
    let (code, e) = status(&["exec", "-it", "live", "true"]);
    assert_eq!(code, Some(1), "{e}");
    assert!(e.contains("the input device is not a TTY"), "{e}");
    // exec -w with a missing directory fails with 126 and creates nothing.
    let (code, e) = status(&["exec", "-w", "/made/by/exec", "live", "pwd"]);
    assert_eq!(code, Some(126), "{e}");
    assert!(e.contains("/made/by/exec"), "{e}");
    assert_eq!(
        status(&["exec", "live", "test", "-e", "/made"]).0,
        Some(1),
        "exec -w created it"
    );
    assert_eq!(b.ok(&["exec", "-w", "/proc", "live", "pwd"]), "/proc\n");
    assert_eq!(status(&["exec", "live", "nosuchcommand"]).0, Some(127));
    b.ok(&["exec", "live", "sh", "-c", "echo x > /tmp/plain"]);
    assert_eq!(status(&["exec", "live", "/tmp/plain"]).0, Some(126));
    assert_eq!(status(&["exec", "live", "sh", "-c", "exit 7"]).0, Some(7));
}

#[test]
fn container_inspect_has_dockers_config_fields() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&[
        "run", "-d", "--name", "cfg", "-e", "FOO=1", "-t", &image, "sleep", "300",
    ]);
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "cfg"])).unwrap();
    let c = &v[0];
    let image_env: serde_json::Value =
        serde_json::from_str(&b.ok(&["image", "inspect", "--format", "{{json .Config.Env}}", &image])).unwrap();
    let mut want: Vec<serde_json::Value> = image_env.as_array().cloned().unwrap_or_default();
    want.push("FOO=1".into());
    // Config.Env is the image's and the user's; HOSTNAME, HOME and TERM
    // are the process's, as in docker.
    assert_eq!(c["Config"]["Env"], serde_json::Value::Array(want), "{}", c["Config"]);
    let env = b.ok(&["exec", "cfg", "env"]);
    assert!(
        env.contains("HOSTNAME=") && env.contains("HOME=") && env.contains("TERM=xterm"),
        "{env}"
    );
    assert!(c["Config"]["Entrypoint"].is_null(), "{}", c["Config"]);
    assert_eq!(c["Config"]["Cmd"], serde_json::json!(["sleep", "300"]));
    for key in [
        "Hostname",
        "Domainname",
        "User",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "Tty",
        "OpenStdin",
        "StdinOnce",
        "Env",
        "Cmd",
        "Image",
        "Volumes",
        "WorkingDir",
        "Entrypoint",
        "OnBuild",
        "Labels",
    ] {
        assert!(c["Config"].get(key).is_some(), "Config.{key} missing: {}", c["Config"]);
    }
    for key in [
        "Id",
        "Created",
        "Path",
        "Args",
        "State",
        "Image",
        "ResolvConfPath",
        "HostnamePath",
        "HostsPath",
        "LogPath",
        "Name",
        "RestartCount",
        "Driver",
        "Platform",
        "MountLabel",
        "ProcessLabel",
        "AppArmorProfile",
        "ExecIDs",
        "HostConfig",
        "GraphDriver",
        "Mounts",
        "Config",
        "NetworkSettings",
    ] {
        assert!(c.get(key).is_some(), "{key} missing");
    }
    let hosts = c["HostsPath"].as_str().unwrap();
    assert!(std::fs::read_to_string(hosts).unwrap().contains("localhost"), "{hosts}");
    let upper = c["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap();
    b.ok(&["exec", "cfg", "sh", "-c", "echo x > /written"]);
    assert!(std::path::Path::new(upper).join("written").is_file(), "{upper}");
    b.ok(&["run", "-d", "--name", "ep", "--entrypoint", "sleep", &image, "300"]);
    let ep = inspect(&b, "ep", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}");
    assert_eq!(ep, r#"["sleep"] ["300"]"#);
}

#[test]
fn stop_signal_stop_timeout_group_add_expose_and_cidfile() {
    let Some((_reg, b, image)) = setup() else { return };
    // --stop-signal: what `stop` sends first.
    let trap = "trap 'echo got it; exit 3' USR1; echo ready; while :; do sleep 0.1; done";
    b.ok(&[
        "run",
        "-d",
        "--name",
        "sig",
        "--stop-signal",
        "SIGUSR1",
        &image,
        "sh",
        "-c",
        trap,
    ]);
    assert_eq!(inspect(&b, "sig", "{{.Config.StopSignal}}"), "SIGUSR1");
    wait_until("the trap is set", || b.ok(&["logs", "sig"]).contains("ready"));
    b.ok(&["stop", "sig"]);
    assert_eq!(inspect(&b, "sig", "{{.State.ExitCode}}"), "3");
    assert!(b.ok(&["logs", "sig"]).contains("got it"));
    let e = b.fails(&["run", "--rm", "--stop-signal", "SIGNOPE", "127.0.0.1:1/nothing"]);
    assert!(e.contains("SIGNOPE"), "refused before any pull: {e}");

    // --stop-timeout: how long a plain `stop` waits before SIGKILL.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "--stop-timeout",
        "1",
        &image,
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    assert_eq!(inspect(&b, "stubborn", "{{.Config.StopTimeout}}"), "1");
    wait_until("the trap is set", || b.ok(&["logs", "stubborn"]).contains("ready"));
    let started = std::time::Instant::now();
    b.ok(&["stop", "stubborn"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "stop waited {:?}",
        started.elapsed()
    );
    assert_eq!(inspect(&b, "stubborn", "{{.State.ExitCode}}"), "137");

    // --group-add: by the image's group name or by number.
    let groups = sh(
        &b,
        &image,
        &["-u", "app", "--group-add", "root", "--group-add", "4242"],
        "id -G",
    );
    let mut groups: Vec<&str> = groups.split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["0", "1234", "29", "4242"]);
    let e = b.fails(&["run", "--rm", "--group-add", "nosuchgroup", &image, "true"]);
    assert!(e.contains("nosuchgroup"), "{e}");

    // --expose: published by -P beside the image's own ports.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "exposed",
        "--expose",
        "7000-7001/tcp",
        "-P",
        &image,
        "sleep",
        "300",
    ]);
    let ports = b.ok(&["port", "exposed"]);
    assert!(
        ports.contains("7000/tcp ->") && ports.contains("7001/tcp ->"),
        "{ports}"
    );
    let e = b.fails(&["run", "--rm", "--expose", "9-3", &image, "true"]);
    assert!(e.contains("9-3"), "{e}");

    // --dns, --dns-search, --dns-option replace their lines of the
    // host's resolv.conf; --add-host adds to /etc/hosts, on every network,
    // and network setup keeps both.
    for net in ["bridge", "none", "host"] {
        let out = sh(
            &b,
            &image,
            &[
                "--network",
                net,
                "--dns",
                "192.0.2.53",
                "--dns-search",
                "example.test",
                "--dns-option",
                "ndots:2",
                "--add-host",
                "db.example:192.0.2.7",
                "--add-host",
                "v6:2001:db8::1",
            ],
            "cat /etc/resolv.conf; echo --; cat /etc/hosts",
        );
        let (resolv, hosts) = out.split_once("--\n").unwrap();
        let lines = |t: &str, kind: &str| {
            t.lines()
                .filter(|l| l.starts_with(kind))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            lines(resolv, "nameserver"),
            ["nameserver 192.0.2.53"],
            "{net}: {resolv}"
        );
        assert_eq!(lines(resolv, "search"), ["search example.test"], "{net}: {resolv}");
        assert_eq!(lines(resolv, "options"), ["options ndots:2"], "{net}: {resolv}");
        assert!(
            hosts.contains("192.0.2.7\tdb.example\n") && hosts.contains("2001:db8::1\tv6\n"),
            "{net}: {hosts}"
        );
    }
    let resolved = sh(
        &b,
        &image,
        &["--add-host", "db.example:192.0.2.7"],
        "ping -c1 -W1 db.example 2>&1 | head -1",
    );
    assert!(resolved.contains("192.0.2.7"), "{resolved}");
    for (flag, value) in [
        ("--add-host", "nocolon"),
        ("--add-host", "h:not-an-ip"),
        ("--dns", "dns.example"),
    ] {
        let e = b.fails(&["run", "--rm", flag, value, "127.0.0.1:1/nothing"]);
        assert!(e.contains(value), "refused before any pull: {e}");
    }
    // A value cannot add lines of its own to /etc/hosts or resolv.conf.
    for (flag, value) in [
        ("--add-host", "a\n10.0.0.1 evil:192.0.2.1"),
        ("--dns-search", "ok.test\nnameserver 10.0.0.9"),
        ("--dns-option", "ndots:1 #x"),
    ] {
        let o = b.run(&["run", "--rm", flag, value, "127.0.0.1:1/nothing"]);
        assert_eq!(o.status.code(), Some(125), "{flag}");
        assert!(
            err(&o).contains(&format!("for {flag}")),
            "refused before any pull: {}",
            err(&o)
        );
    }

    // --shm-size: the size of /dev/shm (docker's 64m by default).
    let shm = |flags: &[&str]| {
        sh(&b, &image, flags, "df -k /dev/shm | tail -1")
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(shm(&[]), "65536");
    assert_eq!(shm(&["--shm-size", "128m"]), "131072");
    let e = b.fails(&["run", "--rm", "--shm-size", "0", &image, "true"]);
    assert!(e.contains("--shm-size"), "{e}");

    // --cidfile: the ID is written; an existing file refuses the run.
    let dir = tempfile::tempdir().unwrap();
    let cid = dir.path().join("cid");
    let id = b.ok(&["run", "-d", "--cidfile", cid.to_str().unwrap(), &image, "sleep", "300"]);
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id.trim());
    let o = b.run(&["run", "--rm", "--cidfile", cid.to_str().unwrap(), &image, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("container ID file found"), "{}", err(&o));
    let gone = dir.path().join("gone");
    let o = b.run(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "--cidfile",
        gone.to_str().unwrap(),
        "127.0.0.1:1/nothing",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(!gone.exists(), "a container that was not made leaves no ID file");
}

#[test]
fn rename_and_diff_as_docker() {
    let Some((_reg, b, image)) = setup() else { return };
    let vol = tempfile::tempdir().unwrap();
    let bind = format!("{}:/data/vol", vol.path().display());
    let script = "echo x > /etc/added; rm /bin/true 2>/dev/null || rm /bin/ls; echo y >> /etc/passwd; mkdir -p /new/dir; ln -s / /new/root; echo ready; sleep 300";
    b.ok(&["run", "-d", "--name", "before", "-v", &bind, &image, "sh", "-c", script]);
    wait_until("the changes are made", || b.ok(&["logs", "before"]).contains("ready"));
    b.ok(&["rename", "before", "after"]);
    assert_eq!(b.ok(&["ps", "--format", "{{.Names}}"]), "after\n");
    assert_eq!(b.run(&["inspect", "before"]).status.code(), Some(1));
    let diff = b.ok(&["diff", "after"]);
    let lines: Vec<&str> = diff.lines().collect();
    for want in [
        "C /etc",
        "A /etc/added",
        "C /etc/passwd",
        "A /new",
        "A /new/dir",
        "C /bin",
    ] {
        assert!(lines.contains(&want), "{want} missing: {diff}");
    }
    assert!(lines.iter().any(|l| *l == "D /bin/true" || *l == "D /bin/ls"), "{diff}");
    // The mount points barge made (/proc, /dev, /etc/hosts, the volume's) are not changes.
    for hidden in [
        "/proc",
        "/dev",
        "/sys",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
        "/data",
    ] {
        assert!(
            !lines.iter().any(|l| l.ends_with(&format!(" {hidden}"))),
            "{hidden}: {diff}"
        );
    }
    // A link the container made is listed, never followed (here to the
    // host's root if it were).
    assert!(lines.contains(&"A /new/root"), "{diff}");
    assert!(!lines.iter().any(|l| l.starts_with("A /new/root/")), "{diff}");
    let mut sorted = lines.clone();
    sorted.sort_by_key(|l| &l[2..]);
    assert_eq!(lines, sorted, "sorted by path");
    // A container that changed nothing has no changes, as in docker: not
    // even /etc, which only barge's mount points for /etc/hosts touched.
    b.ok(&["run", "-d", "--name", "quiet", &image, "sleep", "300"]);
    assert_eq!(b.ok(&["diff", "quiet"]), "");
    // Names are checked and unique, as at create.
    b.ok(&["create", "--name", "other", &image, "true"]);
    let e = b.fails(&["rename", "after", "other"]);
    assert!(e.contains("is already in use"), "{e}");
    let e = b.fails(&["rename", "after", "bad name"]);
    assert!(e.contains("Invalid container name"), "{e}");
    assert_eq!(b.run(&["rename", "nosuch", "x"]).status.code(), Some(1));
}

#[test]
fn top_lists_the_containers_processes_only() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        &image,
        "sh",
        "-c",
        "sleep 301 & sleep 302 & wait",
    ]);
    wait_until("both sleeps run", || {
        let t = b.ok(&["top", "busy"]);
        t.lines()
            .filter(|l| l.ends_with(" sleep 301") || l.ends_with(" sleep 302"))
            .count()
            == 2
    });
    let top = b.ok(&["top", "busy"]);
    let mut lines = top.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "{top}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "sh and two sleeps, nothing of the host: {top}");
    assert!(rows.iter().all(|r| r.starts_with("root")), "{top}");
    let custom = b.ok(&["top", "busy", "-o", "pid,comm"]);
    assert!(
        custom.starts_with("  PID COMMAND") || custom.starts_with("PID COMMAND"),
        "{custom}"
    );
    assert_eq!(custom.lines().filter(|l| l.ends_with("sleep")).count(), 2, "{custom}");
    b.ok(&["create", "--name", "idle", &image, "true"]);
    let e = b.fails(&["top", "idle"]);
    assert!(e.contains("is not running"), "{e}");
}

#[test]
fn pause_freezes_and_unpause_thaws() {
    let Some((_reg, b, image)) = setup() else { return };
    let count = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done";
    b.ok(&["run", "-d", "--name", "ticker", &image, "sh", "-c", count]);
    let upper = std::path::PathBuf::from(inspect(&b, "ticker", "{{.GraphDriver.Data.UpperDir}}")).join("tmp/count");
    let read = || {
        std::fs::read_to_string(&upper)
            .unwrap_or_default()
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    wait_until("the counter runs", || read() > 2);
    assert_eq!(b.ok(&["pause", "ticker"]), "ticker\n");
    let frozen = read();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read(), frozen, "nothing runs while paused");
    let ps = b.ok(&["ps", "--format", "{{.Names}} {{.State}} {{.Status}}"]);
    assert!(
        ps.starts_with("ticker paused Up ") && ps.trim_end().ends_with("(Paused)"),
        "{ps}"
    );
    assert_eq!(
        inspect(&b, "ticker", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    assert_eq!(b.ok(&["ps", "--filter", "status=paused", "-q"]).lines().count(), 1);
    // docker refuses these on a paused container, and pausing twice.
    for args in [
        &["exec", "ticker", "true"][..],
        &["stop", "ticker"],
        &["kill", "ticker"],
        &["pause", "ticker"],
    ] {
        let e = b.fails(args);
        assert!(e.contains("paused"), "{args:?}: {e}");
    }
    assert_eq!(b.ok(&["unpause", "ticker"]), "ticker\n");
    wait_until("the counter runs again", || read() > frozen);
    assert_eq!(inspect(&b, "ticker", "{{.State.Status}}"), "running");
    assert!(b.fails(&["unpause", "ticker"]).contains("is not paused"));
    // rm -f thaws a paused container to kill it.
    b.ok(&["pause", "ticker"]);
    b.ok(&["rm", "-f", "ticker"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    b.ok(&["create", "--name", "idle", &image, "true"]);
    assert!(b.fails(&["pause", "idle"]).contains("is not running"));
}
