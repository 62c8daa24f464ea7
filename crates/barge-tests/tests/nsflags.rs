//! docker 20.10's `--pid`, `--ipc`, `--device` and `--privileged`, through
//! the real binary.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::{stderr_of, stdout_of as out, Barge};

/// A store with a busybox image pulled; returns it with the image reference.
fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

/// `inspect -f TEMPLATE NAME`, trimmed.
fn inspect(b: &Barge, template: &str, name: &str) -> String {
    b.ok(&["inspect", "-f", template, name]).trim().to_string()
}

/// A refusal: status 125 and one line of stderr holding `message`.
fn refused(b: &Barge, args: &[&str], message: &str) {
    let o = b.run(args);
    let stderr = stderr_of(&o);
    assert_eq!(o.status.code(), Some(125), "{args:?}: {o:?}");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: one line: {stderr}");
}

#[test]
fn pid_namespace_of_the_host_and_of_another_container() {
    let Some((_reg, b, image)) = setup() else { return };
    // Its own namespace by default: the shell is PID 1.
    assert_eq!(b.sh(&image, &[], "echo $$").trim(), "1");

    // The host's: PID 1 is the host's init, the shell is not.
    let host_init = std::fs::read_to_string("/proc/1/comm").expect("the host's init");
    let seen = b.sh(&image, &["--pid", "host"], "cat /proc/1/comm; echo $$");
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], host_init.trim(), "{seen}");
    assert_ne!(lines[1], "1", "{seen}");
    b.ok(&["create", "--name", "pidhost", "--pid", "host", &image, "true"]);
    assert_eq!(inspect(&b, "{{.HostConfig.PidMode}}", "pidhost"), "host");

    // Another container's: its processes are seen, its sleep is PID 1.
    b.ok(&["run", "-d", "--name", "pidtarget", &image, "sleep", "300"]);
    let seen = b.sh(
        &image,
        &["--pid", "container:pidtarget"],
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    );
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0].trim(), "sleep 300", "{seen}");
    assert_ne!(lines[1], "1", "{seen}");
    // The target's own view is unchanged, and it sees the joiner while it runs.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "pidjoiner",
        "--pid",
        "container:pidtarget",
        &image,
        "sleep",
        "301",
    ]);
    let inside = b.ok(&[
        "exec",
        "pidtarget",
        "sh",
        "-c",
        "cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
    ]);
    assert!(inside.contains("sleep 301"), "{inside}");
    assert_eq!(
        inspect(&b, "{{.HostConfig.PidMode}}", "pidjoiner"),
        "container:pidtarget"
    );
    // exec into the joiner is in the shared namespace too.
    let inside = b.ok(&["exec", "pidjoiner", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"]);
    assert_eq!(inside.trim(), "sleep 300");
    assert_eq!(inspect(&b, "{{.HostConfig.PidMode}}", "pidtarget"), "");

    // A target that is not running, or not there: one line, nothing runs.
    b.ok(&["create", "--name", "pidstopped", &image, "sleep", "300"]);
    refused(
        &b,
        &["run", "--rm", "--pid", "container:pidstopped", &image, "echo", "ran"],
        "cannot join the namespaces of container pidstopped: it is not running",
    );
    refused(
        &b,
        &["run", "--rm", "--pid", "container:nosuchbox", &image, "true"],
        "No such container: nosuchbox",
    );
    refused(&b, &["create", "--pid", "hots", &image, "true"], "invalid --pid value");
    b.ok(&["rm", "-f", "pidtarget", "pidjoiner", "pidstopped", "pidhost"]);
}

#[test]
fn pid_host_rootless_is_refused() {
    if !barge_tests::require_root_and(&["docker-registry", "umoci", "skopeo"]) {
        return;
    }
    let user = barge_tests::User::ensure("barge-rootless", Some(600000));
    let b = Barge::as_user(&user);
    // Refused before any pull: the image cannot be pulled.
    let o = b.run(&["create", "--pid", "host", "127.0.0.1:9/no/such:image", "true"]);
    let stderr = stderr_of(&o);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(stderr.contains("--pid host is not available rootless"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let _ = out(&o);
}
