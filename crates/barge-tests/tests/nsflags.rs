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
fn host_namespaces_rootless_are_refused() {
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
    let o = b.run(&["create", "--ipc", "host", "127.0.0.1:9/no/such:image", "true"]);
    let stderr = stderr_of(&o);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(stderr.contains("--ipc host is not available rootless"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let _ = out(&o);
}

#[test]
fn ipc_modes_as_docker() {
    let Some((_reg, b, image)) = setup() else { return };
    let host_ns = std::fs::read_link("/proc/self/ns/ipc").expect("the host's IPC namespace");
    let host_ns = host_ns.display().to_string();
    let ns_and_shm = "readlink /proc/self/ns/ipc; ls -d /dev/shm 2>/dev/null || echo no-shm";

    // private (the default) and none: namespaces of their own; none has no /dev/shm.
    let private = b.sh(&image, &[], ns_and_shm);
    assert_ne!(private.lines().next(), Some(host_ns.as_str()), "{private}");
    assert_eq!(private.lines().nth(1), Some("/dev/shm"), "{private}");
    let none = b.sh(&image, &["--ipc", "none"], ns_and_shm);
    assert_ne!(none.lines().next(), Some(host_ns.as_str()), "{none}");
    assert_eq!(none.lines().nth(1), Some("no-shm"), "{none}");

    // host: the host's namespace and its /dev/shm.
    let marker = format!("/dev/shm/barge-ipc-test-{}", std::process::id());
    std::fs::write(&marker, "from the host\n").expect("a file in the host's /dev/shm");
    let host = b.sh(
        &image,
        &["--ipc", "host"],
        &format!("readlink /proc/self/ns/ipc; cat {marker}"),
    );
    let _ = std::fs::remove_file(&marker);
    assert_eq!(host, format!("{host_ns}\nfrom the host\n"));

    // shareable, joined: one namespace, one /dev/shm.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ipcowner",
        "--ipc",
        "shareable",
        &image,
        "sh",
        "-c",
        "echo shared > /dev/shm/marker; sleep 300",
    ]);
    barge_tests::wait_until("the owner wrote its marker", || {
        b.run(&["exec", "ipcowner", "cat", "/dev/shm/marker"]).status.success()
    });
    let owner_ns = b.ok(&["exec", "ipcowner", "readlink", "/proc/self/ns/ipc"]);
    let joined = b.sh(
        &image,
        &["--ipc", "container:ipcowner"],
        "readlink /proc/self/ns/ipc; cat /dev/shm/marker; echo back > /dev/shm/reply",
    );
    assert_eq!(joined, format!("{}shared\n", owner_ns), "{joined}");
    assert_ne!(owner_ns.trim(), host_ns);
    assert_eq!(b.ok(&["exec", "ipcowner", "cat", "/dev/shm/reply"]), "back\n");
    b.ok(&[
        "create",
        "--name",
        "ipcjoiner",
        "--ipc",
        "container:ipcowner",
        &image,
        "true",
    ]);
    for (name, mode) in [("ipcowner", "shareable"), ("ipcjoiner", "container:ipcowner")] {
        assert_eq!(inspect(&b, "{{.HostConfig.IpcMode}}", name), mode);
    }

    // A private container cannot be joined; a stopped one neither.
    b.ok(&["run", "-d", "--name", "ipcprivate", &image, "sleep", "300"]);
    assert_eq!(inspect(&b, "{{.HostConfig.IpcMode}}", "ipcprivate"), "private");
    refused(
        &b,
        &["run", "--rm", "--ipc", "container:ipcprivate", &image, "true"],
        "cannot join the IPC namespace of container ipcprivate: it is not shareable",
    );
    b.ok(&["stop", "-t", "0", "ipcowner"]);
    // `start` fails with docker's status 1, one line.
    let o = b.run(&["start", "ipcjoiner"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr_of(&o).contains("ipcowner: it is not running"), "{o:?}");
    assert_eq!(stderr_of(&o).trim().lines().count(), 1, "{o:?}");
    // The owner's /dev/shm went with it; a new start has an empty one.
    let owner_dir = b.root().join("containers").join(inspect(&b, "{{.Id}}", "ipcowner"));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(!mounts.contains(&owner_dir.display().to_string()), "{mounts}");
    refused(
        &b,
        &["create", "--ipc", "shared", &image, "true"],
        "invalid --ipc value",
    );
    b.ok(&["rm", "-f", "ipcowner", "ipcjoiner", "ipcprivate"]);
}

#[test]
fn device_is_bound_in_dev_with_its_cgroup_permissions() {
    let Some((_reg, b, image)) = setup() else { return };
    let zeros = b.sh(
        &image,
        &["--device", "/dev/zero:/dev/myzero"],
        "head -c 4 /dev/myzero | od -An -tx1; echo x > /dev/myzero && echo wrote",
    );
    assert_eq!(
        zeros.split_whitespace().collect::<Vec<_>>(),
        ["00", "00", "00", "00", "wrote"]
    );
    // Read-only in the device cgroup: reads work, writes are refused.
    let o = b.run(&[
        "run",
        "--rm",
        "--device",
        "/dev/zero:/dev/sub/ro:r",
        &image,
        "sh",
        "-c",
        "head -c 2 /dev/sub/ro | od -An -tx1; echo x > /dev/sub/ro && echo wrote",
    ]);
    assert_eq!(out(&o).split_whitespace().collect::<Vec<_>>(), ["00", "00"], "{o:?}");
    assert!(stderr_of(&o).contains("Operation not permitted"), "{o:?}");
    // Without --device the node is not there.
    let o = b.run(&["run", "--rm", &image, "ls", "/dev/myzero"]);
    assert!(!o.status.success(), "{o:?}");

    b.ok(&[
        "create",
        "--name",
        "devbox",
        "--device",
        "/dev/zero:/dev/myzero:rw",
        &image,
        "true",
    ]);
    assert_eq!(
        inspect(&b, "{{json .HostConfig.Devices}}", "devbox"),
        r#"[{"PathOnHost":"/dev/zero","PathInContainer":"/dev/myzero","CgroupPermissions":"rw"}]"#
    );
    assert_eq!(
        inspect(&b, "{{json .HostConfig.Devices}}", &image_free(&b, &image)),
        "[]"
    );
    b.ok(&["rm", "-f", "devbox"]);

    // Refused before anything is made (or pulled): one line each.
    let nowhere = "127.0.0.1:9/no/such:image";
    for (device, message) in [
        ("/etc/passwd", "/etc/passwd is not a device node"),
        ("/dev/no-such-node", "/dev/no-such-node: No such file"),
        ("/dev/zero:/etc/zero", "must be below /dev"),
        ("/dev/zero:/dev/../etc/zero", "must be below /dev"),
        ("/dev/zero:/dev/z:rx", "permissions are some of r, w and m"),
    ] {
        refused(&b, &["create", "--device", device, nowhere, "true"], message);
    }
}

/// A container without flags, made to compare with; returns its name.
fn image_free(b: &Barge, image: &str) -> String {
    let name = "plainbox";
    let _ = b.run(&["rm", "-f", name]);
    b.ok(&["create", "--name", name, image, "true"]);
    name.to_string()
}

#[test]
fn device_never_goes_through_the_images_links() {
    if !barge_tests::require_root_and(&["docker-registry", "umoci", "skopeo"]) {
        return;
    }
    // An image whose /dev/x and /dev/dir lead to /etc: the fresh /dev hides them.
    let reg = Registry::anonymous();
    barge_tests::image::busybox_image(&reg, "linked", "latest", &[], |root| {
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("dev/x")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("dev/dir")).unwrap();
    });
    // An image whose /dev itself is a link to /etc: refused.
    barge_tests::image::busybox_image(&reg, "devlink", "latest", &[], |root| {
        std::os::unix::fs::symlink("etc", root.join("dev")).unwrap();
    });
    let b = Barge::new();
    let linked = format!("{}/linked", reg.host());
    let devlink = format!("{}/devlink", reg.host());
    b.ok(&["pull", "-q", &linked]);
    b.ok(&["pull", "-q", &devlink]);
    let seen = b.sh(
        &linked,
        &["--device", "/dev/zero:/dev/x", "--device", "/dev/null:/dev/dir/passwd"],
        "head -c 1 /dev/x | od -An -tx1; cat /etc/passwd; ls -l /etc | grep -c passwd; [ -c /dev/dir/passwd ] && echo node",
    );
    let lines: Vec<&str> = seen.lines().map(str::trim).collect();
    assert_eq!(lines[0], "00", "{seen}");
    assert!(
        lines[1].starts_with("root:x:0:0"),
        "the image's passwd is intact: {seen}"
    );
    assert_eq!(lines.last(), Some(&"node"), "{seen}");
    let o = b.run(&[
        "run",
        "--name",
        "devlinked",
        "--device",
        "/dev/zero:/dev/x",
        &devlink,
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(stderr_of(&o).contains("/dev is a symbolic link in the image"), "{o:?}");
    // Nothing was made in the image's /etc through the link.
    let upper = inspect(&b, "{{.GraphDriver.Data.UpperDir}}", "devlinked");
    assert!(!std::path::Path::new(&upper).join("etc/x").exists(), "{upper}");
    b.ok(&["rm", "-f", "devlinked"]);
}

/// CapEff of a process with every capability barge can give: those of
/// its own bounding set (all the kernel has, unless barge runs confined).
fn full_caps() -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .expect("CapBnd")
        .trim()
        .to_string()
}

/// What the privileged test looks at, one line each: CapEff, Seccomp,
/// whether /dev/loop-control opens, /proc/keys masked (mounts on it),
/// /sys's mount options.
const PRIVILEGES: &str = "grep CapEff /proc/self/status | cut -f2; grep '^Seccomp:' /proc/self/status | cut -f2; \
     (exec 3</dev/loop-control && echo opened) 2>/dev/null || echo absent; \
     grep -c ' /proc/keys ' /proc/self/mountinfo; awk '$5 == \"/sys\" {print substr($6, 1, 2)}' /proc/self/mountinfo";

#[test]
fn privileged_lifts_every_restriction_and_only_then() {
    let Some((_reg, b, image)) = setup() else { return };
    assert!(
        std::path::Path::new("/dev/loop-control").exists(),
        "the host needs /dev/loop-control for this test"
    );
    let full = full_caps();
    let privileged = b.sh(&image, &["--privileged"], PRIVILEGES);
    assert_eq!(
        privileged.lines().collect::<Vec<_>>(),
        [full.as_str(), "0", "opened", "0", "rw"],
        "--privileged"
    );
    // Without it, docker's restrictions hold.
    let plain = b.sh(&image, &[], PRIVILEGES);
    let plain: Vec<&str> = plain.lines().collect();
    assert_ne!(plain[0], full, "{plain:?}");
    assert_eq!(&plain[1..], ["2", "absent", "1", "ro"], "{plain:?}");

    // exec --privileged: that command only.
    b.ok(&["run", "-d", "--name", "privexec", &image, "sleep", "300"]);
    let caps = "grep CapEff /proc/self/status | cut -f2; grep '^Seccomp:' /proc/self/status | cut -f2";
    let o = b.ok(&["exec", "--privileged", "privexec", "sh", "-c", caps]);
    assert_eq!(o, format!("{full}\n0\n"));
    let o = b.ok(&["exec", "privexec", "sh", "-c", caps]);
    assert_ne!(o, format!("{full}\n0\n"));
    assert!(o.ends_with("\n2\n"), "{o}");
    assert_eq!(inspect(&b, "{{.HostConfig.Privileged}}", "privexec"), "false");
    b.ok(&["create", "--name", "privbox", "--privileged", &image, "true"]);
    assert_eq!(inspect(&b, "{{.HostConfig.Privileged}}", "privbox"), "true");
    b.ok(&["rm", "-f", "privexec", "privbox"]);
}

#[test]
fn rootless_privileged_and_joins_stay_within_the_users_namespace() {
    let tools = ["docker-registry", "umoci", "skopeo", "runuser", "useradd", "newuidmap"];
    if !barge_tests::require_root_and(&tools) {
        return;
    }
    let reg = Registry::anonymous();
    barge_tests::image::busybox_image(&reg, "busybox", "latest", &[], |_| {});
    let user = barge_tests::User::ensure("barge-rootless", Some(600000));
    let b = Barge::as_user(&user);
    let image = format!("{}/busybox", reg.host());
    b.ok(&["pull", "-q", &image]);
    // Every capability, but of the user's namespace: the host's root
    // powers stay out of reach (a device only the host's root may open
    // stays closed, though its node is bound).
    let seen = b.sh(
        &image,
        &["--privileged"],
        "grep '^Seccomp:' /proc/self/status | cut -f2; \
         (exec 3</dev/loop-control && echo opened) 2>/dev/null || echo refused; \
         cat /proc/self/uid_map | awk '{print $2}'",
    );
    let lines: Vec<&str> = seen.lines().map(str::trim).collect();
    assert_eq!(lines[0], "0", "no seccomp filter: {seen}");
    assert_eq!(lines[1], "refused", "the host's loop-control is root's: {seen}");
    assert_eq!(lines[2], user.uid.to_string(), "root inside is the user: {seen}");
    // And a device cgroup permission cannot be enforced: refused.
    let o = b.run(&["create", "--device", "/dev/zero:/dev/z:r", &image, "true"]);
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(stderr_of(&o).contains("no device cgroup"), "{o:?}");

    // Another of the user's containers can be joined: its PID and IPC
    // namespaces and its /dev/shm (mounted in the user's mount namespace).
    b.ok(&[
        "run",
        "-d",
        "--name",
        "rlowner",
        "--ipc",
        "shareable",
        &image,
        "sh",
        "-c",
        "echo shared > /dev/shm/marker; exec sleep 300",
    ]);
    barge_tests::wait_until("the owner wrote its marker", || {
        b.run(&["exec", "rlowner", "cat", "/dev/shm/marker"]).status.success()
    });
    let seen = b.sh(
        &image,
        &["--ipc", "container:rlowner", "--pid", "container:rlowner"],
        "cat /dev/shm/marker; cat /proc/1/cmdline | tr '\\0' ' '",
    );
    assert_eq!(seen.trim(), "shared\nsleep 300", "{seen}");
    b.ok(&["rm", "-f", "rlowner"]);
}

#[test]
fn inspect_shows_the_sysctls() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&[
        "create",
        "--name",
        "sysctlbox",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--sysctl",
        "kernel.shmmni=1234",
        &image,
        "true",
    ]);
    assert_eq!(
        inspect(&b, "{{json .HostConfig.Sysctls}}", "sysctlbox"),
        r#"{"kernel.shmmni":"1234","net.ipv4.ip_forward":"1"}"#
    );
    assert_eq!(
        inspect(&b, "{{index .HostConfig.Sysctls \"kernel.shmmni\"}}", "sysctlbox"),
        "1234"
    );
    // None set: absent, as docker leaves it out.
    let all = b.ok(&["inspect", &image_free(&b, &image)]);
    assert!(!all.contains("Sysctls"), "{all}");
    b.ok(&["rm", "-f", "sysctlbox", "plainbox"]);
}
