//! The container's device policy: docker's allow-list, enforced by the
//! devices cgroup on v1 and by barge's eBPF device program on cgroup v2,
//! and no container started where it cannot be applied.
//!
//! The CI host is cgroup v1 (hybrid: its cgroup2 mount has no
//! controllers). A pure v2 host is made for barge in a private mount
//! namespace: the v1 hierarchies unmounted and cgroup2 mounted at
//! /sys/fs/cgroup, the same hierarchy as the host's cgroup2 mount.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::{require, stdout_of as out, Barge};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// How barge sees the host's cgroups.
#[derive(Debug, Clone, Copy)]
enum View {
    Host,
    /// Only cgroup v2, mounted at /sys/fs/cgroup.
    V2Only,
    /// v1 without the devices hierarchy.
    NoDevicesHierarchy,
    /// No cgroup filesystem at all.
    NoCgroups,
}

/// Runs barge with `args` in a private mount namespace showing `view`.
fn barge_in(b: &Barge, view: View, args: &[&str]) -> Output {
    let setup = match view {
        View::Host => "",
        View::V2Only => "umount -R /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && ",
        View::NoDevicesHierarchy => "umount /sys/fs/cgroup/devices && ",
        View::NoCgroups => "umount -R /sys/fs/cgroup && ",
    };
    let barge = b.command();
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("{setup}exec \"$@\""))
        .arg("sh")
        .arg(barge.get_program())
        .args(barge.get_args());
    for (k, v) in barge.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.args(args).output().expect("running unshare")
}

fn ok_in(b: &Barge, view: View, args: &[&str]) -> String {
    let o = barge_in(b, view, args);
    assert!(
        o.status.success(),
        "barge {args:?} in {view:?} failed ({}):\n{}\n{}",
        o.status,
        out(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    out(&o)
}

/// The busybox store, with the tools and the layout these tests need.
fn setup(tools: &[&str]) -> Option<(Registry, Barge, String)> {
    let mut needed = vec!["unshare"];
    needed.extend_from_slice(tools);
    let v1 = Path::new("/sys/fs/cgroup/devices/devices.list").exists();
    let v2 = std::fs::read_to_string("/proc/filesystems").is_ok_and(|f| f.contains("cgroup2"));
    if !require("a cgroup v1 devices hierarchy at /sys/fs/cgroup/devices", v1) || !require("cgroup2", v2) {
        return None;
    }
    busybox_store(&needed, &[], |_| {})
}

/// The cgroup2 mount point as this process sees it.
fn host_cgroup2() -> PathBuf {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mi.lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mount = pre.split(' ').nth(4)?;
            post.starts_with("cgroup2 ").then(|| PathBuf::from(mount))
        })
        .expect("a cgroup2 mount")
}

/// A tmpfs of the container's own (CAP_SYS_ADMIN) allows devices: there
/// only the device policy stands between it and the host's devices. 1:11
/// is /dev/kmsg (opened for writing, nothing written), 7:0 the host's first
/// loop device (opened for reading), both outside docker's allow-list;
/// 1:3 (null) is on it.
const PROBE: &str = "mkdir /m && mount -t tmpfs t /m && mknod /m/kmsg c 1 11 && mknod /m/loop b 7 0 && \
     mknod /m/null c 1 3 && echo made; \
     { true >/m/kmsg; } 2>&1 && echo OPENED kmsg; { true </m/loop; } 2>&1 && echo OPENED loop; \
     echo x >/m/null && echo null ok";

const REFUSED: &str = "made\n\
    sh: can't create /m/kmsg: Operation not permitted\n\
    sh: can't open /m/loop: Operation not permitted\n\
    null ok\n";

#[test]
fn unlisted_devices_refused_on_cgroup_v1_and_v2() {
    let Some((_reg, b, image)) = setup(&[]) else { return };
    for view in [View::Host, View::V2Only] {
        let got = ok_in(
            &b,
            view,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "--cap-add",
                "SYS_ADMIN",
                &image,
                "sh",
                "-c",
                PROBE,
            ],
        );
        assert_eq!(got, REFUSED, "in {view:?}");
    }
}

#[test]
fn cgroup_v2_device_program_attached_and_removed_with_the_container() {
    let Some((_reg, b, image)) = setup(&["bpftool"]) else {
        return;
    };
    let id = ok_in(
        &b,
        View::V2Only,
        &["run", "-d", "--network", "none", &image, "sleep", "30"],
    )
    .trim()
    .to_string();
    let pid = ok_in(&b, View::V2Only, &["inspect", "--format", "{{.State.Pid}}", &id])
        .trim()
        .to_string();
    // The container's cgroup2 directory, from the host's side.
    let proc_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::/"))
        .expect("a cgroup2 line")
        .to_string();
    assert!(rel.ends_with(&id), "the container has its own cgroup: {proc_cgroup}");
    let dir = host_cgroup2().join(&rel);
    let shown = barge_tests::run_ok(Command::new("bpftool").arg("cgroup").arg("show").arg(&dir));
    let programs: Vec<&str> = shown.lines().filter(|l| l.contains("cgroup_device")).collect();
    assert_eq!(programs.len(), 1, "one device program: {shown}");
    assert!(
        programs[0].contains("multi") && programs[0].contains("barge_devices"),
        "{shown}"
    );
    // `exec` joins the cgroup; the listed devices work under the program.
    let probe = barge_in(
        &b,
        View::V2Only,
        &["exec", &id, "sh", "-c", "cat /dev/null && echo fine"],
    );
    assert_eq!(out(&probe), "fine\n");
    ok_in(&b, View::V2Only, &["rm", "-f", &id]);
    assert!(!dir.exists(), "the cgroup and its program went with the container");
}

#[test]
fn no_start_where_the_device_policy_cannot_be_applied() {
    let Some((_reg, b, image)) = setup(&[]) else { return };
    for (view, reason) in [
        (
            View::NoDevicesHierarchy,
            "the devices cgroup controller is not available on this host",
        ),
        (View::NoCgroups, "no cgroup filesystem is mounted"),
    ] {
        let o = barge_in(
            &b,
            view,
            &["run", "--rm", "--network", "none", &image, "sh", "-c", "echo RAN"],
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && !out(&o).contains("RAN"),
            "in {view:?} the container ran: {}\n{stderr}",
            out(&o)
        );
        assert_eq!(o.status.code(), Some(125), "in {view:?}: {stderr}");
        assert!(stderr.contains(reason), "in {view:?}: {stderr}");
    }
    // Nothing was left behind.
    assert_eq!(ok_in(&b, View::Host, &["ps", "-aq"]), "");
}
