//! What a fast container start does differently, through the real binary:
//! an `--rm` container's writable layer is mounted `volatile` (its unmount
//! does not sync the store's filesystem), one kept is not, and the mark a
//! volatile mount leaves does not stop a root from being mounted again; on
//! a bridge the exited container's veth goes with its namespace, and its
//! address stays taken while the veth is there; on cgroup v1 the
//! container's process moves itself into its cgroup, and the cgroups'
//! `barge` parents stay.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::{barge_bin, require, require_root_and, Barge};
use std::process::Command;

/// A store with a busybox image pulled; returns it with the image reference.
fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

/// The container's root mount as `/proc/mounts` shows it.
const ROOT_MOUNT: &str = "grep '^overlay / ' /proc/mounts";

#[test]
fn only_a_removed_container_gets_a_volatile_upper() {
    let Some((_reg, b, image)) = setup() else { return };
    // The kernel shows `volatile` (5.10) or `fsync=volatile` (6.x).
    let removed = b.ok(&["run", "--rm", "--network", "none", &image, "sh", "-c", ROOT_MOUNT]);
    assert!(removed.contains("volatile"), "{removed}");
    let kept = b.ok(&[
        "run",
        "--name",
        "kept",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        ROOT_MOUNT,
    ]);
    assert!(kept.starts_with("overlay / "), "{kept}");
    assert!(!kept.contains("volatile"), "{kept}");
    // A kept container starts again on the same writable layer.
    b.ok(&["start", "kept"]);

    // What a previous volatile mount of a root left (a start that barge
    // did not see to its end): the kernel refuses to mount the work
    // directory again unless the mark is cleared.
    let id = b
        .ok(&["create", "--rm", "--network", "none", &image, "echo", "again"])
        .trim()
        .to_string();
    let mark = b
        .root()
        .join("containers")
        .join(&id)
        .join("work/work/incompat/volatile");
    std::fs::create_dir_all(&mark).expect("the mark of a volatile mount");
    assert_eq!(b.ok(&["start", "-a", &id]), "again\n");
}

#[test]
fn an_address_stays_taken_while_a_removed_containers_veth_is_there() {
    let Some((_reg, b, image)) = setup() else { return };
    let leases = std::path::Path::new("/run/barge/leases/barge0");
    let address = |b: &Barge| {
        let out = b.ok(&["run", "--rm", &image, "sh", "-c", "ip -o -4 addr show eth0"]);
        let inet = out
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .unwrap_or_default();
        inet.split('/').next().unwrap_or_default().to_string()
    };
    // The veths of containers gone before are gone too (the kernel deletes
    // them with their namespaces), so the first free address stays first.
    let veth_left = || {
        std::fs::read_dir(leases).into_iter().flatten().flatten().any(|e| {
            std::fs::read_to_string(e.path())
                .ok()
                .and_then(|h| h.strip_prefix("veth:").map(str::to_string))
                .is_some_and(|veth| std::path::Path::new("/sys/class/net").join(veth).exists())
        })
    };
    let first = address(&b);
    assert!(first.starts_with("10.222."), "{first}");
    barge_tests::wait_until("the removed containers' veths to go", || !veth_left());
    let first = address(&b);
    // Held by a link that exists (`lo`): not leased again.
    std::fs::write(leases.join(&first), "veth:lo").unwrap();
    assert_ne!(address(&b), first);
    // Held by a link that is gone: free.
    std::fs::write(leases.join(&first), "veth:bargegone0").unwrap();
    barge_tests::wait_until("the removed containers' veths to go", || !veth_left());
    assert_eq!(address(&b), first);
}

/// On cgroup v1 the container's first process, one thread, moves itself
/// into its cgroup by writing `0` to each hierarchy's `tasks`: moving a
/// whole process (`cgroup.procs`) takes a global lock whose first taking
/// after a quiet spell waits for an RCU grace period (8–16 ms). Seen with
/// strace: the writes come from the child, not from barge, and nothing is
/// written to the container's `cgroup.procs`.
#[test]
fn on_cgroup_v1_the_container_process_joins_its_cgroup_itself() {
    let v1 = std::path::Path::new("/sys/fs/cgroup/pids/tasks").exists();
    if !require_root_and(&["strace"]) || !require("a cgroup v1 pids hierarchy at /sys/fs/cgroup/pids", v1) {
        return;
    }
    let Some((_reg, b, image)) = setup() else { return };
    let trace = b.dir.path().join("strace.out");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-y", "-e", "trace=write", "-e", "signal=none", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(barge_bin())
        .arg("--root")
        .arg(b.root())
        .arg("--config")
        .arg(b.docker_config())
        .args(["run", "--rm", "--network", "none", &image, "true"])
        .env("BARGE_CONFIG", b.dir.path().join("barge-config"))
        .env_remove("BARGE_ROOT")
        .output()
        .expect("strace");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trace = std::fs::read_to_string(&trace).expect("the trace");
    let barge_pid = trace.split_whitespace().next().expect("a traced call");
    let joins: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("/barge/") && l.contains("/tasks>"))
        .collect();
    assert!(joins.len() >= 4, "one join per v1 hierarchy:\n{trace}");
    for join in &joins {
        assert!(join.contains(", \"0\", 1) = 1"), "{join}");
        assert!(
            !join.starts_with(&format!("{barge_pid} ")),
            "barge moved the child: {join}"
        );
    }
    let child = joins[0].split_whitespace().next();
    assert!(
        joins.iter().all(|j| j.split_whitespace().next() == child),
        "one process joins every hierarchy:\n{joins:#?}"
    );
    assert!(
        !trace
            .lines()
            .any(|l| l.contains("/barge/") && l.contains("/cgroup.procs>")),
        "a whole process was moved:\n{trace}"
    );
    // The container's cgroup went with it; the `barge` parent stays, as
    // docker's `docker` does (making and removing it cost ~2 ms a start).
    let own = joins[0]
        .split('<')
        .nth(1)
        .and_then(|p| p.strip_suffix("/tasks>, \"0\", 1) = 1"));
    let own = std::path::Path::new(own.expect("the cgroup's path"));
    assert!(!own.exists(), "{} is left", own.display());
    let parent = own.parent().expect("the barge parent");
    assert!(parent.ends_with("barge") && parent.is_dir(), "{}", parent.display());
}
