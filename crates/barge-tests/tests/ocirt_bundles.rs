//! What the OCI validation programs ask of barge-runtime beyond barge's own
//! bundles (issue 18), through the real binary: a cpuset (and barge's
//! `--cpuset-cpus`/`--cpuset-mems`), a non-root process with capabilities,
//! device nodes made with mknod, mount and UTS namespaces joined by path,
//! a user namespace with the bundle's ID maps, and hostile variants of
//! each. The
//! bundles are a busybox-static root made here and `barge-runtime spec`'s
//! config, edited.

use barge_tests::image::busybox_store;
use barge_tests::{barge_bin, require_root_and, stderr_of, stdout_of};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// barge as `barge-runtime`, a state directory and a bundle whose root
/// holds only `/bin/busybox`.
struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    /// `None` (a failure under CI) without root or busybox.
    fn new() -> Option<Bundle> {
        if !require_root_and(&["busybox"]) {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(barge_bin(), dir.path().join("barge-runtime")).expect("link");
        let root = dir.path().join("bundle/rootfs");
        // The mount points an image has (a user namespace's root may not
        // make them in a root owned by the host's root).
        for dir in ["bin", "proc", "dev", "sys", "out"] {
            std::fs::create_dir_all(root.join(dir)).expect("rootfs");
        }
        let busybox = which("busybox");
        std::fs::copy(busybox, root.join("bin/busybox")).expect("busybox");
        let b = Bundle { dir };
        let o = b.runtime(&["spec", "--bundle", b.path().to_str().expect("utf-8")]);
        assert!(o.status.success(), "spec: {o:?}");
        b.edit(|c| {
            c["process"]["terminal"] = false.into();
            c["root"]["readonly"] = false.into();
        });
        Some(b)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    fn runtime(&self, args: &[&str]) -> Output {
        Command::new(self.dir.path().join("barge-runtime"))
            .arg("--root")
            .arg(self.dir.path().join("state"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("barge-runtime")
    }

    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let path = self.path().join("config.json");
        let mut c: Value = serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("json");
        f(&mut c);
        std::fs::write(&path, serde_json::to_vec_pretty(&c).expect("json")).expect("config");
    }

    /// `run` of the bundle with busybox's `applet args…` as the process.
    fn run(&self, id: &str, applet: &[&str]) -> Output {
        let mut args = vec!["/bin/busybox"];
        args.extend_from_slice(applet);
        self.edit(|c| c["process"]["args"] = args.into());
        self.runtime(&["run", "--bundle", self.path().to_str().expect("utf-8"), id])
    }
}

fn which(tool: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} not on PATH"))
}

/// The value of `key:` in /proc/self/status text.
fn status_field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .trim()
        .to_string()
}

/// The host's online CPUs: the last one, as a cpuset list.
fn last_cpu() -> String {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").expect("online CPUs");
    let last = online.trim().rsplit([',', '-']).next().expect("a CPU");
    last.to_string()
}

#[test]
fn a_cpuset_reaches_the_process_from_a_bundle_and_from_barge_run() {
    let Some(b) = Bundle::new() else { return };
    let cpu = last_cpu();
    b.edit(|c| c["linux"]["resources"]["cpu"] = serde_json::json!({"cpus": cpu, "mems": "0"}));
    let o = b.run("cpuset", &["cat", "/proc/self/status"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(status_field(&stdout_of(&o), "Cpus_allowed_list"), cpu);
    assert_eq!(status_field(&stdout_of(&o), "Mems_allowed_list"), "0");
    // CPUs the host does not have: the kernel refuses them, create fails.
    b.edit(|c| c["linux"]["resources"]["cpu"]["cpus"] = "0-4000".into());
    let o = b.run("cpuset-bad", &["true"]);
    assert!(!o.status.success(), "{o:?}");
    assert!(stderr_of(&o).contains("cpuset.cpus"), "{}", stderr_of(&o));
    b.edit(|c| c["linux"]["resources"]["cpu"]["cpus"] = "0\n1".into());
    let o = b.run("cpuset-newline", &["true"]);
    assert!(stderr_of(&o).contains("invalid cpuset list"), "{}", stderr_of(&o));

    let Some((_reg, barge, image)) = busybox_store(&[], &[], |_| {}) else {
        return;
    };
    let out = barge.ok(&[
        "run",
        "--rm",
        "--cpuset-cpus",
        &cpu,
        "--cpuset-mems",
        "0",
        &image,
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(status_field(&out, "Cpus_allowed_list"), cpu);
    // Checked before anything is made, with docker's words.
    for (flags, message) in [
        (
            ["--cpuset-cpus", "0-4000"],
            "Requested CPUs are not available - requested 0-4000",
        ),
        (["--cpuset-cpus", "x"], "Invalid value x for cpuset cpus"),
        (
            ["--cpuset-mems", "7"],
            "Requested memory nodes are not available - requested 7",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(flags);
        args.extend([image.as_str(), "true"]);
        let o = barge.run(&args);
        assert_eq!(o.status.code(), Some(125), "{flags:?}: {o:?}");
        assert!(stderr_of(&o).contains(message), "{flags:?}: {}", stderr_of(&o));
    }
    assert_eq!(barge.ok(&["ps", "-aq"]), "", "nothing was created");
}

#[test]
fn a_non_root_user_gets_the_capabilities_its_bundle_asks_for() {
    let Some(b) = Bundle::new() else { return };
    // CAP_CHOWN (0) and CAP_NET_BIND_SERVICE (10) in every set.
    let caps = serde_json::json!(["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]);
    b.edit(|c| {
        c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
        for set in ["bounding", "effective", "permitted", "inheritable", "ambient"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
    });
    let o = b.run("user-caps", &["cat", "/proc/self/status"]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout_of(&o);
    assert_eq!(status_field(&text, "Uid"), "1000\t1000\t1000\t1000");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&text, set), "0000000000000401", "{set}: {text}");
    }
    // Without ambient capabilities, exec leaves a non-root user none in
    // effect, whatever was kept across the uid change (the kernel's rule).
    b.edit(|c| c["process"]["capabilities"]["ambient"] = serde_json::json!([]));
    let text = stdout_of(&b.run("user-no-ambient", &["cat", "/proc/self/status"]));
    assert_eq!(status_field(&text, "CapEff"), "0000000000000000", "{text}");
    assert_eq!(status_field(&text, "CapInh"), "0000000000000401", "{text}");
    // More than the bounding set: never given.
    b.edit(|c| {
        c["process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_CHOWN"]);
        c["process"]["capabilities"]["ambient"] = caps.clone();
    });
    let text = stdout_of(&b.run("user-beyond-bounding", &["cat", "/proc/self/status"]));
    for set in ["CapPrm", "CapEff", "CapAmb", "CapBnd"] {
        assert_eq!(status_field(&text, set), "0000000000000001", "{set}: {text}");
    }

    // barge's own `run -u`: as docker, no capability in effect.
    let Some((_reg, barge, image)) = busybox_store(&[], &[], |_| {}) else {
        return;
    };
    let out = barge.ok(&["run", "--rm", "-u", "1000", &image, "cat", "/proc/self/status"]);
    for set in ["CapPrm", "CapEff", "CapAmb", "CapInh"] {
        assert_eq!(status_field(&out, set), "0000000000000000", "{set}: {out}");
    }
}

#[test]
fn a_bundles_device_nodes_are_made_and_open_in_the_nodev_dev() {
    let Some(b) = Bundle::new() else { return };
    // /dev/nullish: the null device's numbers at a path the host lacks.
    b.edit(|c| {
        c["linux"]["devices"] = serde_json::json!([
            {"path": "/dev/sub/nullish", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 5, "gid": 6},
            {"path": "/dev/pipe", "type": "p"},
        ]);
    });
    let script = "stat -c '%F %t:%T %a %u:%g' /dev/sub/nullish /dev/pipe && echo x >/dev/sub/nullish && ls -a /dev";
    let o = b.run("devices", &["sh", "-c", script]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout_of(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "character special file 1:3 666 5:6", "{out}");
    assert_eq!(lines[1], "fifo 0:0 666 0:0", "{out}");
    assert!(!out.contains(".barge-nodes"), "the node store is gone: {out}");
    assert!(!std::path::Path::new("/dev/sub/nullish").exists());
    // The device cgroup still decides: with a deny-all first (as runc's
    // spec writes), tty9 is not among the nodes allowed after it.
    b.edit(|c| {
        c["linux"]["resources"]["devices"] = serde_json::json!([{"allow": false, "access": "rwm"}]);
        c["linux"]["devices"] =
            serde_json::json!([{"path": "/dev/tty9", "type": "c", "major": 4, "minor": 9, "fileMode": 0o666}]);
    });
    let o = b.run("devices-denied", &["sh", "-c", "echo x >/dev/tty9"]);
    assert!(!o.status.success(), "{o:?}");
    assert!(stderr_of(&o).contains("Operation not permitted"), "{}", stderr_of(&o));

    // Refused at create, before anything is made: paths that leave /dev.
    for path in ["/dev/../etc/passwd", "../../x", "/etc/x"] {
        b.edit(|c| c["linux"]["devices"] = serde_json::json!([{"path": path, "type": "c", "major": 1, "minor": 3}]));
        let o = b.run("devices-bad", &["true"]);
        assert!(!o.status.success(), "{path}: {o:?}");
        assert!(
            stderr_of(&o).contains("not a path below /dev"),
            "{path}: {}",
            stderr_of(&o)
        );
    }
}

/// A process in new UTS and mount namespaces of its own (`unshare`),
/// killed when dropped.
struct Holder(std::process::Child);

impl Holder {
    fn start() -> Holder {
        let child = Command::new("unshare")
            .args(["--uts", "--mount", "sleep", "100"])
            .spawn()
            .expect("unshare");
        let h = Holder(child);
        let ours = std::fs::read_link("/proc/self/ns/uts").expect("our uts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(h.ns("uts")).ok().as_ref() == Some(&ours) {
            assert!(std::time::Instant::now() < deadline, "unshare never unshared");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        h
    }

    fn ns(&self, kind: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{kind}", self.0.id()))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn mount_and_uts_namespaces_are_joined_by_path_and_checked() {
    let Some(b) = Bundle::new() else { return };
    if !require_root_and(&["unshare", "nsenter"]) {
        return;
    }
    let holder = Holder::start();
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let set_ns = |uts: &std::path::Path, mnt: &std::path::Path| {
        b.edit(|c| {
            c["hostname"] = "joined".into();
            let list = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
            for ns in list.iter_mut() {
                match ns["type"].as_str() {
                    Some("uts") => ns["path"] = uts.to_str().expect("utf-8").into(),
                    Some("mount") => ns["path"] = mnt.to_str().expect("utf-8").into(),
                    _ => {}
                }
            }
        })
    };
    set_ns(&holder.ns("uts"), &holder.ns("mnt"));
    let o = b.run(
        "joined",
        &[
            "sh",
            "-c",
            "hostname; readlink /proc/self/ns/uts; readlink /proc/self/ns/mnt",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let out = stdout_of(&o);
    let want = [
        "joined".to_string(),
        std::fs::read_link(holder.ns("uts")).unwrap().display().to_string(),
        std::fs::read_link(holder.ns("mnt")).unwrap().display().to_string(),
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "{out}");
    // The holder's namespace got the name; the host's kept its own.
    let theirs = Command::new("nsenter")
        .args([
            "-t",
            &holder.0.id().to_string(),
            "-u",
            "cat",
            "/proc/sys/kernel/hostname",
        ])
        .output()
        .expect("nsenter");
    assert_eq!(stdout_of(&theirs).trim(), "joined");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), host_name);

    // Not a namespace, or one of another kind (through a link): refused at create.
    let d = tempfile::tempdir().expect("tempdir");
    let link = d.path().join("uts-link");
    std::os::unix::fs::symlink(holder.ns("net"), &link).expect("link");
    for (uts, what) in [
        (PathBuf::from("/etc/hostname"), "/etc/hostname is not a Uts namespace"),
        (link.clone(), "uts-link is not a Uts namespace"),
    ] {
        set_ns(&uts, &holder.ns("mnt"));
        let o = b.run("joined-bad", &["true"]);
        assert!(!o.status.success(), "{uts:?}: {o:?}");
        assert!(stderr_of(&o).contains(what), "{uts:?}: {}", stderr_of(&o));
    }
    set_ns(&holder.ns("uts"), &holder.ns("uts"));
    let o = b.run("joined-wrong", &["true"]);
    assert!(stderr_of(&o).contains("is not a Mount namespace"), "{}", stderr_of(&o));
}

#[test]
fn a_user_namespace_maps_the_bundles_ids_and_exec_joins_it() {
    let Some(b) = Bundle::new() else { return };
    // A host directory the container's root (host 100000) may write.
    let out = b.dir.path().join("out");
    std::fs::create_dir(&out).expect("out");
    std::os::unix::fs::chown(&out, Some(100_000), Some(100_000)).expect("chown");
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(serde_json::json!({"type": "user"}));
        c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            .push(serde_json::json!({"destination": "/out", "type": "bind", "source": out, "options": ["rbind"]}));
    });
    let o = b.run(
        "userns",
        &["sh", "-c", "cat /proc/self/uid_map; id -u; touch /out/made"],
    );
    assert!(o.status.success(), "{o:?}");
    let text = stdout_of(&o);
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines, [vec!["0", "100000", "65536"], vec!["0"]], "{text}");
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(out.join("made")).expect("made");
    assert_eq!(
        (made.uid(), made.gid()),
        (100_000, 100_000),
        "the container's root is host 100000"
    );

    // exec joins the container's user namespace: root there, not the host's.
    let bs = b.path();
    b.edit(|c| c["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "30"]));
    let o = Command::new(b.dir.path().join("barge-runtime"))
        .arg("--root")
        .arg(b.dir.path().join("state"))
        .args(["create", "--bundle", bs.to_str().expect("utf-8"), "userns-exec"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("create");
    assert!(o.success());
    let o = b.runtime(&[
        "exec",
        "userns-exec",
        "/bin/busybox",
        "sh",
        "-c",
        "cat /proc/self/uid_map; touch /out/exec",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout_of(&o).contains("100000"), "{}", stdout_of(&o));
    assert_eq!(std::fs::metadata(out.join("exec")).expect("exec").uid(), 100_000);
    b.runtime(&["delete", "--force", "userns-exec"]);

    // Refused at create: maps without container root, maps without a user namespace.
    b.edit(|c| c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 1, "hostID": 100000, "size": 10}]));
    let o = b.run("userns-noroot", &["true"]);
    assert!(
        stderr_of(&o).contains("must map the container's root"),
        "{}",
        stderr_of(&o)
    );
    b.edit(|c| {
        c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 10}]);
        let list = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
        list.retain(|n| n["type"] != "user");
    });
    let o = b.run("userns-none", &["true"]);
    assert!(stderr_of(&o).contains("need a user namespace"), "{}", stderr_of(&o));
}
