//! docker 20.10's `exec -d`, `run --sysctl` and `run -a`, through the real binary.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::{stderr_of, stdout_of as out, wait_until, Barge};
use std::time::{Duration, Instant};

/// A store with a busybox image pulled; returns it with the image reference.
fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

#[test]
fn exec_detached_returns_at_once_and_keeps_running() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&["run", "-d", "--name", "execd", &image, "sleep", "60"]);
    let begun = Instant::now();
    let o = b.run(&["exec", "-d", "execd", "sh", "-c", "echo noise; sleep 2; touch /done"]);
    let took = begun.elapsed();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(out(&o), "", "exec -d prints nothing");
    assert!(
        took < Duration::from_secs(2),
        "exec -d waited for the command: {took:?}"
    );
    assert!(
        !b.run(&["exec", "execd", "ls", "/done"]).status.success(),
        "the command had not finished yet"
    );
    wait_until("the detached command finishes inside the container", || {
        b.run(&["exec", "execd", "ls", "/done"]).status.success()
    });
    b.ok(&["rm", "-f", "execd"]);
}

#[test]
fn sysctl_is_written_inside_and_the_host_keeps_its_own() {
    let Some((_reg, b, image)) = setup() else { return };
    let file = "/proc/sys/net/ipv4/ip_forward";
    let host = std::fs::read_to_string(file).expect("reading the host's ip_forward");
    let wanted = if host.trim() == "1" { "0" } else { "1" };
    for network in ["none", "bridge"] {
        let inside = b.sh(
            &image,
            &[
                "--network",
                network,
                "--sysctl",
                &format!("net.ipv4.ip_forward={wanted}"),
            ],
            &format!("cat {file}"),
        );
        assert_eq!(inside.trim(), wanted, "--network {network}: the container's value");
        let now = std::fs::read_to_string(file).expect("reading the host's ip_forward");
        assert_eq!(now, host, "--network {network}: the host's ip_forward changed");
    }
    // An IPC namespace parameter, and a value with a space.
    let inside = b.sh(
        &image,
        &[
            "--sysctl",
            "kernel.shmmni=1234",
            "--sysctl",
            "net.ipv4.ping_group_range=0 0",
        ],
        "cat /proc/sys/kernel/shmmni /proc/sys/net/ipv4/ping_group_range",
    );
    let words: Vec<&str> = inside.split_whitespace().collect();
    assert_eq!(words, ["1234", "0", "0"], "{inside}");
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shmmni")
            .unwrap_or_default()
            .trim(),
        "1234",
        "the host's shmmni changed"
    );
}

#[test]
fn sysctl_refused_before_any_pull() {
    let Some((_reg, b, _image)) = setup() else { return };
    // An image that cannot be pulled: a refusal must come first.
    let image = "127.0.0.1:9/no/such:image";
    for (flags, message) in [
        (
            &["--sysctl", "kernel.hostname=x"][..],
            r#"sysctl "kernel.hostname=x" is not whitelisted"#,
        ),
        (&["--sysctl", "vm.swappiness=1"], "is not whitelisted"),
        (&["--sysctl", "net.ipv4.ip_forward"], "is not whitelisted"),
        (&["--sysctl", "net.ipv4/../../kernel/hostname=x"], "is not whitelisted"),
        (&["--sysctl", "net..ipv4.ip_forward=1"], "is not whitelisted"),
        (&["--sysctl", "net.ipv4.ip_forward/=1"], "is not whitelisted"),
        (
            &["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
            r#"sysctl "net.ipv4.ip_forward" not allowed in host network namespace"#,
        ),
    ] {
        for verb in ["run", "create"] {
            let mut args = vec![verb];
            args.extend_from_slice(flags);
            args.extend_from_slice(&[image, "true"]);
            let o = b.run(&args);
            let stderr = barge_tests::stderr_of(&o);
            assert_eq!(o.status.code(), Some(125), "{args:?}: {stderr}");
            assert!(stderr.contains(message), "{args:?}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: one line: {stderr}");
        }
    }
}

#[test]
fn sysctl_that_cannot_be_written_fails_the_start() {
    let Some((_reg, b, image)) = setup() else { return };
    let o = b.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--sysctl",
        "net.ipv4.no_such_knob=1",
        &image,
        "echo",
        "ran",
    ]);
    let stderr = barge_tests::stderr_of(&o);
    assert_eq!(o.status.code(), Some(125), "{stderr}");
    assert!(!out(&o).contains("ran"), "the command ran: {o:?}");
    assert!(stderr.contains("net/ipv4/no_such_knob"), "{stderr}");
}

#[test]
fn attach_shows_only_the_streams_named() {
    let Some((_reg, b, image)) = setup() else { return };
    let both = "echo out; echo err >&2";
    let o = b.run(&["run", "--name", "aout", "-a", "stdout", &image, "sh", "-c", both]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(out(&o), "out\n");
    assert!(
        !stderr_of(&o).contains("err"),
        "stderr was not attached: {}",
        stderr_of(&o)
    );
    // What is not shown is still logged.
    let logged = b.run(&["logs", "aout"]);
    assert_eq!(
        (out(&logged), stderr_of(&logged)),
        ("out\n".to_string(), "err\n".to_string())
    );
    let o = b.run(&["run", "--rm", "-a", "STDERR", &image, "sh", "-c", both]);
    assert_eq!(out(&o), "", "stdout was not attached");
    assert_eq!(stderr_of(&o), "err\n");
    // -i feeds the container only when stdin is among the streams.
    let o = b.run_with_stdin(&["run", "--rm", "-i", "-a", "stdout", &image, "cat"], "hello\n");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(out(&o), "", "stdin was not attached");
    let o = b.run_with_stdin(
        &["run", "--rm", "-i", "-a", "stdin", "-a", "stdout", &image, "cat"],
        "hello\n",
    );
    assert_eq!(out(&o), "hello\n");
    for (args, message) in [
        (&["-d", "-a", "stdout"][..], "Conflicting options: -a and -d"),
        (&["-a", "stdpipe"][..], "valid streams are STDIN, STDOUT and STDERR"),
    ] {
        let o = b.run(&[&["run"], args, &[image.as_str(), "true"]].concat());
        assert_eq!(o.status.code(), Some(125), "{args:?}: {o:?}");
        assert!(stderr_of(&o).contains(message), "{args:?}: {}", stderr_of(&o));
    }
}

#[test]
fn exec_detached_output_is_the_containers_own_null() {
    use std::os::unix::fs::MetadataExt;
    let Some((_reg, b, image)) = setup() else { return };
    let before = std::fs::metadata("/dev/null").map(|m| (m.mode(), m.uid())).unwrap();
    b.ok(&["run", "-d", "--name", "execnull", &image, "sleep", "60"]);
    // A container root chmods what its stdout names: never the host's node.
    b.ok(&[
        "exec",
        "-d",
        "execnull",
        "sh",
        "-c",
        "chmod 600 /proc/self/fd/1 /proc/self/fd/2; echo $? > /rc",
    ]);
    wait_until("the detached chmod ran", || {
        b.run(&["exec", "execnull", "cat", "/rc"]).status.success()
    });
    assert_eq!(b.ok(&["exec", "execnull", "cat", "/rc"]), "1\n", "chmod was refused");
    let after = std::fs::metadata("/dev/null").map(|m| (m.mode(), m.uid())).unwrap();
    assert_eq!(before, after, "the host's /dev/null changed");
    b.ok(&["rm", "-f", "execnull"]);
}
