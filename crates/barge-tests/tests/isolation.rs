//! Hostile containers: the seccomp filter (docker's default profile,
//! `--security-opt`), and what a container must never reach on the host:
//! files outside its root and volumes, host processes, barge's descriptors,
//! barge's binary through `/proc/*/exe`.

use barge_tests::image::{busybox_store, sysprobe};
use barge_tests::registry::Registry;
use barge_tests::{require, require_root_and, wait_until, Barge};
use barge_tests::{stderr_of as err, stdout_of as out};
use std::process::{Command, Stdio};

/// A store with a busybox image pulled; returns it with the image reference.
fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

fn sh(b: &Barge, image: &str, flags: &[&str], script: &str) -> String {
    b.sh(image, flags, script)
}

/// The sysprobe helper as a read-only volume: (`-v` value, path inside).
fn probe_volume() -> Option<(String, String)> {
    if !require(
        "gcc with a static libc",
        Command::new("gcc").arg("--version").output().is_ok(),
    ) {
        return None;
    }
    let tool = sysprobe();
    let dir = tool.parent().expect("probe dir").display().to_string();
    Some((format!("{dir}:/probe:ro"), "/probe/sysprobe".to_string()))
}

/// Probe results as (probe, result) lines.
fn probes(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(p, r)| (p.to_string(), r.to_string()))
        .collect()
}

const PROBES: &[&str] = &[
    "clone3", "vsock", "inet", "userns", "keyctl", "pers-ok", "pers-bsd", "newns", "fork", "x32",
];

fn run_probes(
    b: &Barge,
    image: &str,
    flags: &[&str],
    vol: &str,
    tool: &str,
) -> std::collections::BTreeMap<String, String> {
    let mut args = vec!["run", "--rm", "-v", vol];
    args.extend_from_slice(flags);
    args.push(image);
    args.push(tool);
    args.extend_from_slice(PROBES);
    probes(&b.ok(&args))
}

#[test]
fn seccomp_default_profile_like_docker() {
    let Some((_reg, b, image)) = setup() else { return };
    let Some((vol, tool)) = probe_volume() else { return };
    assert_eq!(
        sh(&b, &image, &[], "grep -E '^Seccomp:' /proc/self/status"),
        "Seccomp:\t2\n",
        "filter mode for every container"
    );

    let p = run_probes(&b, &image, &[], &vol, &tool);
    let expect = |p: &std::collections::BTreeMap<String, String>, probe: &str, want: &str| {
        assert_eq!(p.get(probe).map(String::as_str), Some(want), "{probe}: {p:?}");
    };
    expect(&p, "clone3", "ENOSYS");
    expect(&p, "vsock", "EPERM");
    expect(&p, "inet", "OK");
    expect(&p, "userns", "EPERM");
    expect(&p, "keyctl", "EPERM");
    expect(&p, "pers-ok", "OK");
    expect(&p, "pers-bsd", "EPERM");
    expect(&p, "newns", "EPERM");
    expect(&p, "fork", "OK");
    if cfg!(target_arch = "x86_64") {
        expect(&p, "x32", &format!("signal {}", libc::SIGSYS));
    }
    // busybox's own applets see EPERM for what the profile refuses.
    let refused = sh(
        &b,
        &image,
        &[],
        "mkdir -p /mnt; unshare -U true 2>&1; unshare -m true 2>&1; mount -t tmpfs none /mnt 2>&1; echo done",
    );
    assert_eq!(
        refused.matches("Operation not permitted").count(),
        2,
        "unshare is refused: {refused}"
    );
    assert!(
        refused.contains("mount: permission denied"),
        "mount gets EPERM: {refused}"
    );

    // With CAP_SYS_ADMIN the filter permits what docker's permits.
    let admin = run_probes(&b, &image, &["--cap-add", "SYS_ADMIN"], &vol, &tool);
    expect(&admin, "newns", "OK");
    expect(&admin, "userns", "OK");
    assert_ne!(admin.get("clone3").map(String::as_str), Some("ENOSYS"), "{admin:?}");
    expect(&admin, "keyctl", "EPERM");
    let mounted = sh(
        &b,
        &image,
        &["--cap-add", "SYS_ADMIN"],
        "mkdir -p /mnt && mount -t tmpfs none /mnt && grep -c ' /mnt tmpfs ' /proc/mounts && unshare -m true && echo unshared",
    );
    assert_eq!(mounted, "1\nunshared\n");
}

#[test]
fn seccomp_unconfined_and_custom_profiles() {
    let Some((_reg, b, image)) = setup() else { return };
    let Some((vol, tool)) = probe_volume() else { return };
    assert_eq!(
        sh(
            &b,
            &image,
            &["--security-opt", "seccomp=unconfined"],
            "grep -E '^Seccomp:' /proc/self/status"
        ),
        "Seccomp:\t0\n"
    );
    let p = run_probes(&b, &image, &["--security-opt", "seccomp=unconfined"], &vol, &tool);
    assert_ne!(p.get("clone3").map(String::as_str), Some("ENOSYS"), "{p:?}");
    assert_ne!(p.get("vsock").map(String::as_str), Some("EPERM"), "{p:?}");
    assert_ne!(p.get("keyctl").map(String::as_str), Some("EPERM"), "{p:?}");
    assert_eq!(p.get("pers-bsd").map(String::as_str), Some("OK"), "{p:?}");

    // A profile file in docker's format: everything allowed but mkdir,
    // which fails with EPERM, and rmdir, with the errno the profile names.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28},
                {"names": ["not_a_syscall_here"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_CHROOT"]}}
            ]
        }"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = sh(
        &b,
        &image,
        &["--security-opt", &opt],
        "grep -E '^Seccomp:' /proc/self/status; mkdir /made 2>&1; rmdir /tmp 2>&1; touch /file && echo touched; chroot / true && echo chrooted",
    );
    assert_eq!(
        o,
        "Seccomp:\t2\nmkdir: can't create directory '/made': Operation not permitted\nrmdir: '/tmp': No space left on device\ntouched\nchrooted\n"
    );
    // The same profile under runc, from the bundle.
    if require_root_and(&["runc"]) {
        let o = sh(
            &b,
            &image,
            &["--security-opt", &opt, "--runtime", "runc"],
            "mkdir /made 2>&1; touch /file && echo touched",
        );
        assert_eq!(
            o,
            "mkdir: can't create directory '/made': Operation not permitted\ntouched\n"
        );
    }
}

#[test]
fn security_opt_errors_are_one_line_and_125() {
    let Some((_reg, b, image)) = setup() else { return };
    for (opt, says) in [
        ("apparmor=unconfined", "invalid --security-opt \"apparmor=unconfined\""),
        ("bogus", "invalid --security-opt \"bogus\""),
        (
            "seccomp=/no/such/profile.json",
            "reading seccomp profile /no/such/profile.json",
        ),
    ] {
        let o = b.run(&["run", "--rm", "--security-opt", opt, &image, "true"]);
        assert_eq!(o.status.code(), Some(125), "{opt}: {}", err(&o));
        let e = err(&o);
        assert!(e.contains(says), "{opt}: {e}");
        assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
        assert_eq!(
            b.run(&["create", "--security-opt", opt, &image, "true"]).status.code(),
            Some(125)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    for (profile, says) in [
        (
            r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#,
            "SCMP_ACT_NOTIFY is not supported",
        ),
        ("{ not json", "is not a valid profile"),
    ] {
        std::fs::write(&bad, profile).unwrap();
        let opt = format!("seccomp={}", bad.display());
        let o = b.run(&["run", "--rm", "--security-opt", &opt, &image, "true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(err(&o).contains(says), "{}", err(&o));
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "", "no container is left behind");
    // no_new_privs is off unless asked for, as in docker.
    let nnp = |flags: &[&str]| sh(&b, &image, flags, "grep NoNewPrivs /proc/self/status");
    assert_eq!(nnp(&[]), "NoNewPrivs:\t0\n");
    assert_eq!(nnp(&["--security-opt", "no-new-privileges"]), "NoNewPrivs:\t1\n");
    assert_eq!(nnp(&["--security-opt", "no-new-privileges=true"]), "NoNewPrivs:\t1\n");
    assert_eq!(nnp(&["--security-opt", "no-new-privileges=false"]), "NoNewPrivs:\t0\n");
}

#[test]
fn setuid_programs_work_unless_no_new_privileges() {
    if !require(
        "gcc with a static libc",
        Command::new("gcc").arg("--version").output().is_ok(),
    ) {
        return;
    }
    let euid = barge_tests::image::euid();
    let Some((_reg, b, image)) = busybox_store(&[], &[], |root| {
        let dest = root.join("bin/euid");
        std::fs::copy(&euid, &dest).unwrap();
        std::os::unix::fs::chown(&dest, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    }) else {
        return;
    };
    let run = |flags: &[&str]| {
        let mut args = vec!["run", "--rm", "-u", "1000"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[image.as_str(), "/bin/euid"]);
        b.ok(&args)
    };
    // As docker: a setuid program (su, ping, sudo) takes its owner's ID…
    assert_eq!(run(&[]), "0\n");
    // …unless no-new-privileges is set, per container or in barge.json.
    assert_eq!(run(&["--security-opt", "no-new-privileges"]), "1000\n");
    std::fs::write(
        b.dir.path().join("barge-config/barge.json"),
        r#"{"no-new-privileges": true}"#,
    )
    .unwrap();
    assert_eq!(run(&[]), "1000\n");
    assert_eq!(run(&["--security-opt", "no-new-privileges=false"]), "0\n");
    // Still inside docker's bounding set: the setuid root process cannot
    // load a module or mount, whatever its ID.
    let caps = b.ok(&[
        "run",
        "--rm",
        "-u",
        "1000",
        &image,
        "sh",
        "-c",
        "grep CapBnd /proc/self/status",
    ]);
    assert_eq!(caps, "CapBnd:\t00000000a80425fb\n");
}

#[test]
fn exec_runs_under_the_containers_filter() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&["run", "-d", "--name", "confined", &image, "sleep", "30"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "free",
        "--security-opt",
        "seccomp=unconfined",
        &image,
        "sleep",
        "30",
    ]);
    assert_eq!(
        b.ok(&["exec", "confined", "grep", "-E", "^Seccomp:", "/proc/self/status"]),
        "Seccomp:\t2\n"
    );
    let o = b.run(&["exec", "confined", "unshare", "-U", "true"]);
    assert!(
        !o.status.success() && err(&o).contains("Operation not permitted"),
        "{}",
        err(&o)
    );
    let o = b.run(&["exec", "-u", "app", "confined", "unshare", "-U", "true"]);
    assert!(
        !o.status.success() && err(&o).contains("Operation not permitted"),
        "{}",
        err(&o)
    );
    assert_eq!(
        b.ok(&["exec", "free", "grep", "-E", "^Seccomp:", "/proc/self/status"]),
        "Seccomp:\t0\n"
    );
    // --init: the reaper and the command are both filtered.
    b.ok(&["run", "-d", "--init", "--name", "reaped", &image, "sleep", "30"]);
    assert_eq!(
        b.ok(&[
            "exec",
            "reaped",
            "sh",
            "-c",
            "grep -h '^Seccomp:' /proc/1/status /proc/2/status"
        ]),
        "Seccomp:\t2\nSeccomp:\t2\n"
    );
    b.ok(&["rm", "-f", "confined", "free", "reaped"]);
}

/// A directory on the host that containers must not reach.
struct Canary {
    dir: tempfile::TempDir,
}

impl Canary {
    fn new() -> Canary {
        let dir = tempfile::Builder::new().prefix("barge-canary-").tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "canary\n").unwrap();
        Canary { dir }
    }

    fn assert_untouched(&self) {
        let mut entries: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        assert_eq!(entries, ["file"], "nothing was added next to the canary");
        assert_eq!(
            std::fs::read_to_string(self.dir.path().join("file")).unwrap(),
            "canary\n"
        );
    }
}

/// A block device of the host (the first disk in /proc/partitions), as
/// `major minor`; 8 0 (sda) when there is none.
fn host_disk() -> (u64, u64) {
    std::fs::read_to_string("/proc/partitions")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let real = f.len() == 4 && !f[3].starts_with("loop") && !f[3].starts_with("ram");
            real.then(|| Some((f[0].parse().ok()?, f[1].parse().ok()?)))?
        })
        .next()
        .unwrap_or((8, 0))
}

#[test]
fn host_files_stay_out_of_reach() {
    let Some((_reg, b, image)) = setup() else { return };
    let canary = Canary::new();
    let path = canary.dir.path().display().to_string();
    let vol_dir = tempfile::tempdir().unwrap();
    let vol = format!("{}:/vol", vol_dir.path().display());
    let (major, minor) = host_disk();
    let escapes = [
        // Through /proc: the container's own root, whatever the pid.
        format!("echo pwned > /proc/1/root{path}/file"),
        format!("echo pwned > /proc/self/root{path}/file"),
        format!("echo pwned > /proc/1/cwd/../../../..{path}/file"),
        format!("cat /proc/1/root{path}/file"),
        // `..` from everywhere, and through symlinks made inside.
        format!("cd /; cd ../../../..; echo pwned > .{path}/file"),
        format!("echo pwned > /vol/../../../..{path}/file"),
        format!("ln -s ../../../../.. /vol/up; echo pwned > /vol/up{path}/file"),
        format!("ln -s {path} /tmp/link; echo pwned > /tmp/link/file"),
        // Kernel interfaces.
        "echo 1 > /proc/sys/kernel/sysrq".into(),
        "echo b > /proc/sysrq-trigger".into(),
        "echo x > /sys/kernel/uevent_helper".into(),
        "echo 1 > /proc/sys/vm/drop_caches".into(),
        "mkdir /sys/fs/cgroup/escape".into(),
        "echo 1 > /sys/fs/cgroup/memory/release_agent 2>/dev/null || echo 1 > /sys/fs/cgroup/release_agent".into(),
        // The host's disk, through a device node made inside (CAP_MKNOD is
        // docker's default): it may be created, never opened.
        format!("mknod /disk b {major} {minor} && head -c 512 /disk > /dev/null"),
        format!("mknod /dev/disk2 b {major} {minor} && head -c 512 /dev/disk2 > /dev/null"),
        format!("mknod /vol/disk3 b {major} {minor} && head -c 512 /vol/disk3 > /dev/null"),
        format!("mknod /dev/shm/disk4 b {major} {minor} && head -c 512 /dev/shm/disk4 > /dev/null"),
        "mknod /mem c 1 1 && head -c 1 /mem > /dev/null".into(),
        "mknod /kmsg c 1 11 && echo pwned > /kmsg".into(),
        // Moving the root, mounting the host.
        format!("mkdir -p /mnt; mknod /disk b {major} {minor}; mount /disk /mnt && ls /mnt"),
        "chroot /proc/1/root/.. true && ls /proc/1/root/..".into(),
    ];
    for script in &escapes {
        let o = b.run(&["run", "--rm", "-v", &vol, &image, "sh", "-c", script]);
        assert!(
            !o.status.success() || script.starts_with("chroot"),
            "{script} succeeded: {}{}",
            out(&o),
            err(&o)
        );
        assert!(!out(&o).contains("canary"), "{script} read the host file: {}", out(&o));
        canary.assert_untouched();
    }
    let volume_entries: Vec<_> = std::fs::read_dir(vol_dir.path()).unwrap().collect();
    assert!(volume_entries.len() <= 2, "only the link and the node the scripts made");
}

#[test]
fn host_device_nodes_keep_their_owner_and_mode() {
    use std::os::unix::fs::MetadataExt;
    let Some((_reg, b, image)) = setup() else { return };
    // The container's /dev/null, /dev/zero, … are the host's nodes bound
    // in: a container root (CAP_CHOWN, CAP_FOWNER) must not change them.
    let nodes = ["null", "zero", "full", "random", "urandom", "tty"];
    let owners_and_modes = || -> Vec<_> {
        nodes
            .iter()
            .map(|n| {
                std::fs::metadata(format!("/dev/{n}"))
                    .map(|m| (m.mode(), m.uid(), m.gid()))
                    .unwrap()
            })
            .collect()
    };
    let before = owners_and_modes();
    for n in nodes {
        // And through a descriptor of it (no controlling terminal: no /dev/tty fd).
        let through_fd = if n == "tty" {
            ""
        } else {
            " || chmod 600 /proc/self/fd/9"
        };
        let script = format!("chmod 600 /dev/{n} || chown 1000:1000 /dev/{n}{through_fd}");
        let opened = if n == "tty" {
            String::new()
        } else {
            format!("exec 9</dev/{n}; ")
        };
        let o = b.run(&["run", "--rm", &image, "sh", "-c", &format!("{opened}{script}")]);
        assert!(!o.status.success(), "{script} succeeded: {}", err(&o));
        assert!(err(&o).contains("Read-only file system"), "{n}: {}", err(&o));
    }
    assert_eq!(before, owners_and_modes(), "the host's device nodes changed");
    // The devices still work.
    let o = b.run(&[
        "run",
        "--rm",
        &image,
        "sh",
        "-c",
        "echo x > /dev/null && head -c 3 /dev/zero | wc -c",
    ]);
    assert_eq!(out(&o).trim(), "3", "{}", err(&o));
}

#[test]
fn host_processes_are_invisible() {
    let Some((_reg, b, image)) = setup() else { return };
    let marker = format!("4242.{}", std::process::id());
    let mut sleeper = Command::new("sleep")
        .arg(&marker)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let inside = sh(
        &b,
        &image,
        &[],
        "ls -d /proc/[0-9]* | tr '\\n' ' '; echo; cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
    );
    let mut lines = inside.lines();
    let pids: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert!(pids.len() <= 3, "only the container's processes: {inside}");
    assert!(pids.contains(&"/proc/1"), "{inside}");
    assert!(!inside.contains(&marker), "a host process is visible: {inside}");
    // Host pid numbers do not exist inside.
    let host_pid = sleeper.id();
    let probe = sh(
        &b,
        &image,
        &[],
        &format!("test -e /proc/{host_pid}/cmdline && cat /proc/{host_pid}/cmdline; echo end"),
    );
    assert!(!probe.contains(&marker), "{probe}");
    assert!(
        b.run(&["run", "--rm", &image, "kill", "-0", &host_pid.to_string()])
            .status
            .code()
            != Some(0)
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

/// The descriptors of a process as (fd, target), from the host.
fn host_fds(pid: i32) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), target)
        })
        .collect();
    v.sort();
    v
}

fn assert_clean_fds(what: &str, fds: &[(String, String)], store: &str) {
    let numbers: Vec<&str> = fds.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(numbers, ["0", "1", "2"], "{what}: {fds:?}");
    for (_, target) in fds {
        assert!(
            !target.contains(store) && !target.contains("barge") && !target.contains("lock"),
            "{what} holds {target}"
        );
    }
}

#[test]
fn no_barge_descriptor_survives_exec() {
    let Some((_reg, b, image)) = setup() else { return };
    let store = b.root().display().to_string();
    // Foreground run: the command's own view (ls's directory is 3).
    let inside = sh(&b, &image, &[], "ls -l /proc/1/fd");
    assert!(!inside.contains(&store) && !inside.contains("barge"), "{inside}");
    // The name column of `ls -l` lines for links (ls's own fd has no target).
    let fd_lines = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with('l'))
            .filter_map(|l| l.split(" -> ").next()?.split_whitespace().last().map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert_eq!(fd_lines(&inside), ["0", "1", "2", "3"], "{inside}");

    // Detached run and --init: from the host.
    b.ok(&["run", "-d", "--name", "fds", &image, "sleep", "30"]);
    b.ok(&["run", "-d", "--init", "--name", "fds-init", &image, "sleep", "30"]);
    for name in ["fds", "fds-init"] {
        let pid: i32 = b
            .ok(&["inspect", "--format", "{{.State.Pid}}", name])
            .trim()
            .parse()
            .unwrap();
        assert_clean_fds(&format!("{name} pid 1"), &host_fds(pid), &store);
        let inside = b.ok(&["exec", name, "ls", "/proc/1/fd"]);
        assert_eq!(
            inside.split_whitespace().collect::<Vec<_>>(),
            ["0", "1", "2"],
            "{inside}"
        );
        if name == "fds-init" {
            // The command under the reaper.
            let child = b.ok(&["exec", name, "ls", "/proc/2/fd"]);
            assert_eq!(child.split_whitespace().collect::<Vec<_>>(), ["0", "1", "2"], "{child}");
        }
    }

    // exec: the process it starts, seen from the host while it runs.
    let mut exec = b
        .command()
        .args(["exec", "fds", "sleep", "5"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let container_pid: i32 = b
        .ok(&["inspect", "--format", "{{.State.Pid}}", "fds"])
        .trim()
        .parse()
        .unwrap();
    let ns = std::fs::read_link(format!("/proc/{container_pid}/ns/pid")).unwrap();
    let mut found = None;
    wait_until("the exec'd sleep", || {
        found = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let in_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()? == ns;
            (pid != container_pid && in_ns && cmd.starts_with(b"sleep\0")).then_some(pid)
        });
        found.is_some()
    });
    let pid = found.unwrap();
    assert_clean_fds("the exec'd process", &host_fds(pid), &store);
    let inside = b.ok(&["exec", "fds", "sh", "-c", "ls -l /proc/[0-9]*/fd"]);
    assert!(!inside.contains(&store) && !inside.contains("barge"), "{inside}");
    exec.kill().unwrap();
    exec.wait().unwrap();
    b.ok(&["rm", "-f", "fds", "fds-init"]);
}

#[test]
fn proc_exe_never_reaches_the_barge_binary() {
    let Some((_reg, b, image)) = setup() else { return };
    let bin = barge_tests::barge_bin();
    let before = std::fs::read(&bin).unwrap();
    let mtime = std::fs::metadata(&bin).unwrap().modified().unwrap();
    let bin_name = bin.display().to_string();

    // PID 1 of an --init container is barge's static init, executed from a
    // sealed memfd: it may be read, never written, and is not barge.
    b.ok(&["run", "-d", "--init", "--name", "exe", &image, "sleep", "60"]);
    let attack = "for p in /proc/[0-9]*; do \
                    echo \"$p $(readlink $p/exe 2>&1)\"; \
                    echo x >> $p/exe 2>/dev/null && echo \"$p written\"; \
                    cp /bin/busybox $p/exe 2>/dev/null && echo \"$p replaced\"; \
                  done; true";
    let seen = b.ok(&["exec", "exe", "sh", "-c", attack]);
    assert!(!seen.contains(&bin_name), "{seen}");
    assert!(!seen.contains("written") && !seen.contains("replaced"), "{seen}");
    assert!(
        seen.lines().any(|l| l == "/proc/1 /memfd:barge-init (deleted)"),
        "PID 1 is the sealed init: {seen}"
    );

    // While `barge exec` helpers come and go, a loop inside keeps trying
    // every exe it can see.
    let watcher = b
        .command()
        .args([
            "exec",
            "exe",
            "sh",
            "-c",
            "end=$(($(date +%s)+3)); while [ $(date +%s) -lt $end ]; do \
               for p in /proc/[0-9]*; do \
                 l=$(readlink $p/exe 2>/dev/null) && echo \"$l\"; \
                 echo x >> $p/exe 2>/dev/null && echo written; \
               done; \
             done | sort -u",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..15 {
        b.ok(&["exec", "exe", "true"]);
    }
    let watched = watcher.wait_with_output().unwrap();
    let seen = out(&watched);
    assert!(!seen.contains(&bin_name) && !seen.contains("written"), "{seen}");
    for exe in seen.lines() {
        assert!(
            exe.starts_with("/bin/") || exe.is_empty() || exe == "/memfd:barge-init (deleted)",
            "an exe outside the image: {exe}"
        );
    }

    // The same tries in a plain container (PID 1 is the command).
    let plain = sh(&b, &image, &[], attack);
    assert!(
        !plain.contains(&bin_name) && !plain.contains("written") && !plain.contains("replaced"),
        "{plain}"
    );
    b.ok(&["rm", "-f", "exe"]);
    assert!(std::fs::read(&bin).unwrap() == before, "the barge binary changed");
    assert_eq!(std::fs::metadata(&bin).unwrap().modified().unwrap(), mtime);
}
