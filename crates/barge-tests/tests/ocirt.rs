//! barge-runtime, barge answering as an OCI runtime (issue 18), through the
//! real binary: runc's commands on bundles made by `umoci unpack` of the
//! harness's busybox image and `barge-runtime spec`, hostile bundles, and
//! podman running containers with it.

use barge_tests::image::busybox_via_umoci;
use barge_tests::registry::Registry;
use barge_tests::{barge_bin, require_root_and, run_ok, stderr_of, stdout_of};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// barge linked as `barge-runtime`, with a state directory of its own.
struct Runtime {
    dir: tempfile::TempDir,
}

impl Runtime {
    fn new() -> Runtime {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(barge_bin(), dir.path().join("barge-runtime")).expect("link");
        Runtime { dir }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("barge-runtime")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.bin());
        c.arg("--root").arg(self.state_dir()).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("barge-runtime")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        stdout_of(&o)
    }

    /// `create` (or `run --detach`): the container keeps the stdio it is
    /// given, so they are files here, not pipes read to their end.
    fn detached(&self, args: &[&str]) -> Output {
        let log = |name: &str| std::fs::File::create(self.dir.path().join(name)).expect("log file");
        let status = self
            .cmd(args)
            .stdin(std::process::Stdio::null())
            .stdout(log("stdout"))
            .stderr(log("stderr"))
            .status()
            .expect("barge-runtime");
        Output {
            status,
            stdout: std::fs::read(self.dir.path().join("stdout")).unwrap_or_default(),
            stderr: std::fs::read(self.dir.path().join("stderr")).unwrap_or_default(),
        }
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }

    fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or_default().to_string()
    }

    /// Waits (10 s at most) for `id`'s status to become `want`.
    fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.status(id) != want {
            assert!(Instant::now() < deadline, "{id} never became {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The registry with the harness's busybox image, or `None` (a failure in
/// CI) without root or the tools.
fn image() -> Option<Registry> {
    if !require_root_and(&["docker-registry", "umoci", "skopeo"]) {
        return None;
    }
    let reg = Registry::anonymous();
    busybox_via_umoci(&reg, "busybox", "latest");
    Some(reg)
}

/// The image, barge-runtime, and a work directory for one test.
fn setup() -> Option<(Registry, Runtime, tempfile::TempDir)> {
    let reg = image()?;
    Some((reg, Runtime::new(), tempfile::tempdir().expect("tempdir")))
}

/// `state ID` fails: nothing of the container is left.
fn assert_gone(rt: &Runtime, id: &str) {
    let o = rt.run(&["state", id]);
    assert_eq!(o.status.code(), Some(1), "{id} is left: {o:?}");
}

/// A bundle: the image unpacked by umoci, then `barge-runtime spec`'s
/// config with `args`, no terminal and a writable root.
fn bundle(reg: &Registry, rt: &Runtime, dir: &Path, args: &[&str]) -> PathBuf {
    let layout = dir.join("layout");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{}/busybox:latest", reg.host()))
            .arg(format!("oci:{}:latest", layout.display())),
    );
    let bundle = dir.join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
    );
    std::fs::remove_file(bundle.join("config.json")).expect("umoci's config");
    rt.ok(&["spec", "--bundle", bundle.to_str().expect("utf-8")]);
    edit(&bundle, |c| {
        c["process"]["terminal"] = false.into();
        c["process"]["args"] = args.into();
        c["root"]["readonly"] = false.into();
    });
    bundle
}

fn edit(bundle: &Path, f: impl FnOnce(&mut Value)) {
    let path = bundle.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("json");
    f(&mut c);
    std::fs::write(&path, serde_json::to_vec_pretty(&c).expect("json")).expect("config");
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn runc_commands_on_an_umoci_bundle() {
    let Some((reg, rt, work)) = setup() else { return };
    let b = bundle(
        &reg,
        &rt,
        work.path(),
        &["sh", "-c", "echo hi from $(hostname); exit 3"],
    );
    let bs = b.to_str().expect("utf-8");

    // run: the process's status is run's, and the container is gone after.
    let o = rt.run(&["run", "--bundle", bs, "r1"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert_eq!(stdout_of(&o).trim(), "hi from barge");
    assert_gone(&rt, "r1");

    // create: set up, waiting; the command has not run.
    edit(&b, |c| {
        c["process"]["args"] = ["sh", "-c", "touch /started; exec sleep 300"].into()
    });
    let pid_file = work.path().join("pid");
    let o = rt.detached(&[
        "create",
        "--bundle",
        bs,
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        "c1",
    ]);
    assert!(o.status.success(), "{o:?}");
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .parse()
        .expect("pid");
    let st = rt.state("c1");
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["pid"], pid, "{st}");
    assert_eq!(st["id"], "c1");
    assert_eq!(st["bundle"], bs);
    assert!(st["ociVersion"].is_string() && st["annotations"].is_object(), "{st}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!b.join("rootfs/started").exists(), "the command ran before start");
    let again = rt.detached(&["create", "--bundle", bs, "c1"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr_of(&again).contains("already exists"), "{again:?}");

    // start: the same process execs the command.
    rt.ok(&["start", "c1"]);
    wait_for("the command", || b.join("rootfs/started").exists());
    assert_eq!(rt.status("c1"), "running");
    // The same process: the shell execs sleep.
    wait_for("sleep", || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    assert_eq!(rt.run(&["start", "c1"]).status.code(), Some(1));

    // exec joins it, with its status.
    let o = rt.run(&["exec", "c1", "sh", "-c", "cat /proc/1/comm; exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    assert_eq!(stdout_of(&o).trim(), "sleep");

    // delete refuses a running container; kill, then it is stopped.
    let o = rt.run(&["delete", "c1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("not stopped"), "{o:?}");
    rt.ok(&["kill", "c1", "KILL"]);
    rt.wait_status("c1", "stopped");
    assert_eq!(rt.state("c1")["pid"], 0);
    assert_eq!(rt.run(&["kill", "c1"]).status.code(), Some(1));
    rt.ok(&["delete", "c1"]);
    assert_gone(&rt, "c1");

    // delete -f of a created or running container kills it first.
    assert!(rt.detached(&["create", "--bundle", bs, "c2"]).status.success());
    let pid2 = rt.state("c2")["pid"].as_i64().expect("pid");
    rt.ok(&["start", "c2"]);
    rt.ok(&["delete", "-f", "c2"]);
    assert!(
        !Path::new(&format!("/proc/{pid2}")).exists() || {
            let s = std::fs::read_to_string(format!("/proc/{pid2}/stat")).unwrap_or_default();
            s.contains(") Z")
        }
    );
    rt.ok(&["delete", "-f", "c2"]);

    // A missing program: create fails, runc's way, logged as JSON.
    edit(&b, |c| c["process"]["args"] = ["no-such-program"].into());
    let log = work.path().join("log.json");
    let o = Command::new(rt.bin())
        .args(["--log", log.to_str().expect("utf-8"), "--log-format", "json", "--root"])
        .arg(rt.state_dir())
        .args(["create", "--bundle", bs, "c3"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .expect("log")
            .lines()
            .next()
            .expect("a line"),
    )
    .expect("a JSON line");
    assert_eq!(line["level"], "error");
    assert!(
        line["msg"].as_str().expect("msg").contains("executable file not found"),
        "{line}"
    );
    assert!(line["time"].is_string());
    assert_gone(&rt, "c3");
}

#[test]
fn the_bundles_security_settings_hold() {
    let Some((reg, rt, work)) = setup() else { return };
    let script = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
                  wc -c < /proc/timer_list; touch /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable; \
                  touch /rootfile 2>/dev/null && echo root-writable; echo $$";
    let b = bundle(&reg, &rt, work.path(), &["sh", "-c", script]);
    edit(&b, |c| {
        c["root"]["readonly"] = true.into();
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let out = rt.ok(&["run", "--bundle", b.to_str().expect("utf-8"), "sec"]);
    // runc's default capabilities: AUDIT_WRITE, KILL, NET_BIND_SERVICE.
    assert!(out.contains("CapEff:\t0000000020000420"), "{out}");
    assert!(out.contains("CapBnd:\t0000000020000420"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"0"), "/proc/timer_list masked: {out}");
    assert!(
        !out.contains("sysrq-writable") && !out.contains("root-writable"),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"1"), "PID 1 of its own namespace: {out}");
    // process.user.umask.
    edit(&b, |c| {
        c["process"]["user"]["umask"] = 0o077.into();
        c["process"]["args"] = ["sh", "-c", "umask"].into();
    });
    let out = rt.ok(&["run", "--bundle", b.to_str().expect("utf-8"), "umask"]);
    assert_eq!(out.trim(), "0077");
    // The seccomp filter is the bundle's.
    edit(&b, |c| {
        c["process"]["args"] = ["sh", "-c", "mkdir /tmp/x || echo denied"].into()
    });
    edit(&b, |c| c["root"]["readonly"] = false.into());
    let out = rt.ok(&["run", "--bundle", b.to_str().expect("utf-8"), "sec2"]);
    assert!(out.contains("denied"), "{out}");
}

#[test]
fn a_hostile_bundle_does_not_reach_the_host() {
    let Some((reg, rt, work)) = setup() else { return };
    let b = bundle(&reg, &rt, work.path(), &["true"]);
    let bs = b.to_str().expect("utf-8");
    let rootfs = b.join("rootfs");
    let src = work.path().join("src");
    std::fs::create_dir(&src).expect("src");
    std::fs::write(src.join("secret"), "x").expect("secret");
    let tag = format!("barge-ocirt-escape-{}", std::process::id());
    let host_tmp = Path::new("/tmp").join(&tag);
    // Links in the image aimed at the host: absolute and relative.
    std::os::unix::fs::symlink("/tmp", rootfs.join("abs")).expect("link");
    std::os::unix::fs::symlink("../../../../../../tmp", rootfs.join("rel")).expect("link");
    for dest in [
        format!("/../../../../tmp/{tag}"),
        format!("/abs/{tag}"),
        format!("/rel/{tag}"),
    ] {
        edit(&b, |c| {
            c["mounts"].as_array_mut().expect("mounts").push(
                serde_json::json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "ro"]}),
            );
            c["process"]["args"] = ["sh", "-c", &format!("cat /tmp/{tag}/secret")].into();
        });
        let o = rt.run(&["run", "--bundle", bs, "hostile"]);
        assert!(!host_tmp.exists(), "{dest}: the mount point was made on the host");
        // Resolved inside the root: the mount is the container's /tmp/TAG.
        assert_eq!(stdout_of(&o), "x", "{dest}: {o:?}");
        assert!(rootfs.join("tmp").join(&tag).exists(), "{dest}");
        std::fs::remove_dir(rootfs.join("tmp").join(&tag)).expect("cleanup");
        edit(&b, |c| {
            c["mounts"].as_array_mut().expect("mounts").pop();
        });
    }
    // A kernel filesystem's mount point that is a link is refused.
    std::fs::remove_dir(rootfs.join("proc")).ok();
    std::os::unix::fs::symlink("/tmp", rootfs.join("proc")).expect("link");
    let o = rt.run(&["run", "--bundle", bs, "hostile2"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr_of(&o).contains("symbolic link"), "{o:?}");
    std::fs::remove_file(rootfs.join("proc")).expect("link");
    std::fs::create_dir(rootfs.join("proc")).expect("proc");
    // What the runner cannot apply is refused, not skipped.
    for (what, change) in [
        (
            "hooks inside the container",
            serde_json::json!({"hooks": {"createContainer": [{"path": "/bin/true"}]}}),
        ),
        (
            "fewer effective capabilities than bounding for root",
            serde_json::json!({"process": {"capabilities": {"effective": ["CAP_KILL"]}}}),
        ),
        (
            "joining a user namespace",
            serde_json::json!({"linux": {"namespaces": [{"type": "user", "path": "/proc/1/ns/user"}]}}),
        ),
    ] {
        let saved = std::fs::read(b.join("config.json")).expect("config");
        edit(&b, |c| merge(c, change));
        let o = rt.run(&["run", "--bundle", bs, "refused"]);
        assert_eq!(o.status.code(), Some(1), "{what}: {o:?}");
        assert!(stderr_of(&o).contains("not supported"), "{what}: {o:?}");
        std::fs::write(b.join("config.json"), saved).expect("config");
    }
    // A host-wide kernel parameter, or a network one on the host's network.
    for (sysctl, drop_netns) in [
        ("kernel.pid_max", false),
        ("vm.swappiness", false),
        ("net.ipv4.ip_forward", true),
    ] {
        let saved = std::fs::read(b.join("config.json")).expect("config");
        let before = std::fs::read_to_string(format!("/proc/sys/{}", sysctl.replace('.', "/"))).expect("sysctl");
        edit(&b, |c| {
            c["linux"]["sysctl"] = serde_json::json!({ sysctl: "1" });
            if drop_netns {
                let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
                ns.retain(|n| n["type"] != "network");
            }
        });
        let o = rt.run(&["run", "--bundle", bs, "sysctl"]);
        assert_eq!(o.status.code(), Some(1), "{sysctl}: {o:?}");
        assert!(stderr_of(&o).contains("would change the host"), "{sysctl}: {o:?}");
        let after = std::fs::read_to_string(format!("/proc/sys/{}", sysctl.replace('.', "/"))).expect("sysctl");
        assert_eq!(before, after, "{sysctl}");
        std::fs::write(b.join("config.json"), saved).expect("config");
    }
    // IDs that would name paths are refused.
    let o = rt.run(&["create", "--bundle", bs, "../../etc"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("invalid container ID"), "{o:?}");
}

#[test]
fn hooks_get_the_state_and_a_failing_one_fails_create() {
    let Some((reg, rt, work)) = setup() else { return };
    let b = bundle(&reg, &rt, work.path(), &["true"]);
    let bs = b.to_str().expect("utf-8");
    let seen = work.path().join("seen");
    let hook = |kind: &str| serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}.{kind}", seen.display())]});
    edit(&b, |c| {
        c["hooks"] = serde_json::json!({
            "createRuntime": [hook("createRuntime")],
            "prestart": [hook("prestart")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        })
    });
    assert_eq!(rt.run(&["run", "--bundle", bs, "h1"]).status.code(), Some(0));
    for (kind, status) in [
        ("createRuntime", "created"),
        ("prestart", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let text = std::fs::read_to_string(format!("{}.{kind}", seen.display())).expect(kind);
        let st: Value = serde_json::from_str(&text).expect("state JSON");
        assert_eq!(
            (st["id"].as_str(), st["bundle"].as_str()),
            (Some("h1"), Some(bs)),
            "{kind}: {st}"
        );
        if kind != "poststart" {
            // poststart may see the command already gone.
            assert_eq!(st["status"], status, "{kind}: {st}");
        }
    }
    edit(&b, |c| {
        c["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/false", "args": ["false"]}]});
    });
    let o = rt.run(&["run", "--bundle", bs, "h2"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr_of(&o).contains("prestart hook /bin/false failed"), "{o:?}");
    assert_gone(&rt, "h2");
}

#[test]
fn linux_resources_and_cgroups_path_are_applied() {
    let Some((reg, rt, work)) = setup() else { return };
    let b = bundle(&reg, &rt, work.path(), &["sleep", "300"]);
    let bs = b.to_str().expect("utf-8");
    let cg = format!("/barge-ocirt-test-{}", std::process::id());
    edit(&b, |c| {
        c["linux"]["cgroupsPath"] = cg.clone().into();
        c["linux"]["resources"] = serde_json::json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 42},
            "devices": [{"allow": false, "access": "rwm"}]
        });
    });
    assert!(rt.detached(&["create", "--bundle", bs, "lim"]).status.success());
    let pid = rt.state("lim")["pid"].as_i64().expect("pid");
    // The process is in the cgroup the bundle named, with its limits.
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let v2 = own.lines().any(|l| l.starts_with("0::")) && own.lines().count() == 1;
    let (memory, pids) = if v2 {
        let dir = format!("/sys/fs/cgroup{cg}");
        (format!("{dir}/memory.max"), format!("{dir}/pids.max"))
    } else {
        assert!(own.lines().any(|l| l.contains(":memory:") && l.ends_with(&cg)), "{own}");
        (
            format!("/sys/fs/cgroup/memory{cg}/memory.limit_in_bytes"),
            format!("/sys/fs/cgroup/pids{cg}/pids.max"),
        )
    };
    assert_eq!(std::fs::read_to_string(memory).expect("memory").trim(), "67108864");
    assert_eq!(std::fs::read_to_string(pids).expect("pids").trim(), "42");
    // Standard nodes stay usable under the bundle's deny-all; others not.
    rt.ok(&["start", "lim"]);
    let o = rt.run(&[
        "exec",
        "lim",
        "sh",
        "-c",
        "echo x > /dev/null && head -c1 /dev/zero | wc -c",
    ]);
    assert_eq!(stdout_of(&o).trim(), "1", "{o:?}");
    rt.ok(&["delete", "-f", "lim"]);
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/memory{cg}")).exists(),
        "the cgroup is removed"
    );
}

#[test]
fn run_relays_signals_to_the_container() {
    let Some((reg, rt, work)) = setup() else { return };
    let script = "trap 'echo got TERM; exit 5' TERM; echo ready; while true; do sleep 0.05; done";
    let b = bundle(&reg, &rt, work.path(), &["sh", "-c", script]);
    let out = work.path().join("out");
    let mut child = rt
        .cmd(&["run", "--bundle", b.to_str().expect("utf-8"), "sig"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).expect("out"))
        .spawn()
        .expect("run");
    wait_for("the trap", || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("ready"))
    });
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(5));
    assert!(std::fs::read_to_string(&out).expect("out").contains("got TERM"));
}

#[test]
fn barge_runs_its_containers_with_barge_runtime() {
    let Some((_reg, b, image)) = barge_tests::image::busybox_store(&[], &[], |_| {}) else {
        return;
    };
    let rt = Runtime::new();
    let bin = rt.bin();
    let bin = bin.to_str().expect("utf-8");
    let run = |flags: &[&str], cmd: &[&str]| {
        let mut args = vec!["run"];
        args.extend(flags);
        args.extend(["--network", "none", "--runtime", bin, image.as_str()]);
        args.extend(cmd);
        b.ok(&args)
    };
    assert_eq!(run(&["--rm"], &["sh", "-c", "echo hi $$"]).trim(), "hi 1");
    // barge stop signals `barge-runtime run`, which relays to the container.
    let script = "trap 'exit 3' TERM; while true; do sleep 0.05; done";
    run(&["-d", "--name", "stopme"], &["sh", "-c", script]);
    std::thread::sleep(Duration::from_millis(500));
    b.ok(&["stop", "-t", "5", "stopme"]);
    assert_eq!(b.ok(&["inspect", "-f", "{{.State.ExitCode}}", "stopme"]).trim(), "3");
    b.ok(&["rm", "stopme"]);
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

#[test]
fn spec_and_features() {
    if !require_root_and(&[]) {
        return;
    }
    let rt = Runtime::new();
    let work = tempfile::tempdir().expect("tempdir");
    let ws = work.path().to_str().expect("utf-8");
    rt.ok(&["spec", "--bundle", ws]);
    let c: Value =
        serde_json::from_slice(&std::fs::read(work.path().join("config.json")).expect("config")).expect("json");
    assert_eq!(c["root"]["path"], "rootfs");
    assert_eq!(c["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(c["process"]["terminal"], true);
    assert_eq!(
        rt.run(&["spec", "--bundle", ws]).status.code(),
        Some(1),
        "never overwritten"
    );
    let f: Value = serde_json::from_str(&rt.ok(&["features"])).expect("features JSON");
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(f["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .any(|n| n == "pid"));
    assert!(f["linux"]["capabilities"]
        .as_array()
        .expect("caps")
        .iter()
        .any(|n| n == "CAP_KILL"));
}

/// podman with barge-runtime as its OCI runtime, in a storage of its own.
/// `--ulimit`: podman asks for more processes and files than this host's
/// hard limits, which without CAP_SYS_RESOURCE no runtime can give (runc
/// fails the same way).
struct Podman {
    rt: Runtime,
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        Podman {
            rt: Runtime::new(),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.path().join("storage"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .arg("--tmpdir")
            .arg(self.dir.path().join("tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime"])
            .arg(self.rt.bin())
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("podman")
    }

    /// `podman ARGS` on a terminal (`script`), for `-it`.
    fn on_terminal(&self, args: &[&str]) -> Output {
        let line = format!("{:?}", self.cmd(args)).replace('"', "");
        Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .output()
            .expect("script")
    }
}

const LIMITS: [&str; 4] = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"];

fn podman_image(reg: &Registry, p: &Podman) -> String {
    let image = format!("{}/busybox:latest", reg.host());
    let o = p.run(&["pull", "-q", "--tls-verify=false", &image]);
    assert!(o.status.success(), "{o:?}");
    image
}

#[test]
fn podman_runs_containers_with_barge_runtime() {
    if !require_root_and(&["podman", "conmon", "script"]) {
        return;
    }
    let Some(reg) = image() else { return };
    let p = Podman::new();
    let image = podman_image(&reg, &p);
    let run = |extra: &[&str], cmd: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend(LIMITS);
        args.extend(extra);
        args.push(&image);
        args.extend(cmd);
        p.run(&args)
    };
    let o = run(&[], &["echo", "hi"]);
    assert_eq!((o.status.code(), stdout_of(&o).as_str()), (Some(0), "hi\n"), "{o:?}");
    assert_eq!(run(&[], &["sh", "-c", "exit 42"]).status.code(), Some(42));
    let o = run(&[], &["no-such-program"]);
    assert_eq!(o.status.code(), Some(127), "{o:?}");
    // The runtime's own view: PID 1, the bundle's hostname and capabilities.
    let o = run(&["--hostname", "viapodman"], &["sh", "-c", "echo $$ $(hostname)"]);
    assert_eq!(stdout_of(&o).trim(), "1 viapodman", "{o:?}");

    // run -d, exec (podman's exec --process --detach --pid-file), stop, rm.
    let mut args = vec!["run", "-d", "--name", "bg", "--network", "none"];
    args.extend(LIMITS);
    args.extend([image.as_str(), "sleep", "300"]);
    let o = p.run(&args);
    assert!(o.status.success(), "{o:?}");
    let o = p.run(&["exec", "bg", "sh", "-c", "cat /proc/1/comm; exit 5"]);
    assert_eq!((o.status.code(), stdout_of(&o).trim()), (Some(5), "sleep"), "{o:?}");
    let o = p.run(&["exec", "-d", "bg", "touch", "/detached"]);
    assert!(o.status.success(), "{o:?}");
    wait_for("exec -d's command", || {
        p.run(&["exec", "bg", "test", "-e", "/detached"]).status.success()
    });
    let o = p.run(&["inspect", "-f", "{{.State.Status}}", "bg"]);
    assert_eq!(stdout_of(&o).trim(), "running", "{o:?}");
    let o = p.run(&["stop", "-t", "1", "bg"]);
    assert!(o.status.success(), "{o:?}");
    let o = p.run(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "bg"]);
    assert_eq!(stdout_of(&o).trim(), "exited 137", "{o:?}");
    let o = p.run(&["rm", "bg"]);
    assert!(o.status.success(), "{o:?}");
    // Nothing of it is left in barge-runtime's state.
    let left = std::fs::read_dir(p.rt.state_dir()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0);

    // -it: the pty comes back over --console-socket.
    let mut args = vec!["run", "--rm", "-it", "--network", "none"];
    args.extend(LIMITS);
    args.extend([image.as_str(), "sh", "-c", "tty; exit 4"]);
    let o = p.on_terminal(&args);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    assert!(stdout_of(&o).contains("/dev/pts/0"), "{o:?}");
    let mut args = vec!["run", "-d", "--name", "tt", "--network", "none"];
    args.extend(LIMITS);
    args.extend([image.as_str(), "sleep", "300"]);
    assert!(p.run(&args).status.success());
    let o = p.on_terminal(&["exec", "-it", "tt", "sh", "-c", "tty; exit 6"]);
    assert_eq!(o.status.code(), Some(6), "{o:?}");
    assert!(stdout_of(&o).contains("/dev/pts/"), "{o:?}");
    assert!(p.run(&["rm", "-f", "-t", "0", "tt"]).status.success());
}

/// A daemon started for one test, stopped (SIGTERM, then waited for) when
/// dropped.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.0.wait();
    }
}

fn start_daemon(cmd: &mut Command, log: &Path, ready: impl Fn() -> bool) -> Daemon {
    let log = std::fs::File::create(log).expect("daemon log");
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("daemon");
    let d = Daemon(child);
    wait_for("the daemon", ready);
    d
}

#[test]
fn docker_runs_containers_with_barge_runtime() {
    if !require_root_and(&["dockerd", "docker", "script"]) {
        return;
    }
    let Some((reg, rt, dir)) = setup() else { return };
    let d = dir.path();
    let host = format!("unix://{}", d.join("docker.sock").display());
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args(["-H", &host])
            .args(args)
            .output()
            .expect("docker")
    };
    // Its own roots, no iptables and no bridge: nothing of the host's network changes.
    let _dockerd = start_daemon(
        Command::new("dockerd")
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .args([
                "-H",
                &host,
                "--iptables=false",
                "--bridge=none",
                "--insecure-registry",
                &reg.host(),
            ])
            .arg("--add-runtime")
            .arg(format!("barge={}", rt.bin().display()))
            .args([
                "--containerd-namespace",
                "barge-ocirt",
                "--containerd-plugins-namespace",
                "barge-ocirt-p",
            ]),
        &d.join("dockerd.log"),
        || docker(&["version"]).status.success(),
    );
    let image = format!("{}/busybox:latest", reg.host());
    let o = docker(&["pull", "-q", &image]);
    assert!(o.status.success(), "{o:?}");
    let run = ["run", "--rm", "--runtime", "barge", "--network", "none"];
    let o = docker(&[&run[..], &[&image, "sh", "-c", "echo hi $$; exit 9"]].concat());
    assert_eq!((o.status.code(), stdout_of(&o).as_str()), (Some(9), "hi 1\n"), "{o:?}");
    let o = docker(&[&run[..], &[&image, "no-such-program"]].concat());
    assert_eq!(o.status.code(), Some(127), "{o:?}");

    let o = docker(&[
        "run",
        "-d",
        "--name",
        "bg",
        "--runtime",
        "barge",
        "--network",
        "none",
        &image,
        "sleep",
        "300",
    ]);
    assert!(o.status.success(), "{o:?}");
    let o = docker(&["exec", "bg", "sh", "-c", "cat /proc/1/comm; exit 3"]);
    assert_eq!((o.status.code(), stdout_of(&o).trim()), (Some(3), "sleep"), "{o:?}");
    // docker top: the shim's `ps --format json`.
    let o = docker(&["top", "bg"]);
    assert!(o.status.success() && stdout_of(&o).contains("sleep 300"), "{o:?}");
    let o = docker(&["stop", "-t", "1", "bg"]);
    assert!(o.status.success(), "{o:?}");
    let o = docker(&["inspect", "-f", "{{.State.ExitCode}}", "bg"]);
    assert_eq!(stdout_of(&o).trim(), "137", "{o:?}");
    assert!(docker(&["rm", "bg"]).status.success());

    let line = format!("docker -H {host} run --rm -it --runtime barge --network none {image} sh -c 'tty; exit 2'");
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .expect("script");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stdout_of(&o).contains("/dev/pts/0"), "{o:?}");
}

#[test]
fn containerd_runs_containers_with_barge_runtime() {
    if !require_root_and(&["containerd", "ctr", "containerd-shim-runc-v2"]) {
        return;
    }
    let Some((reg, rt, dir)) = setup() else { return };
    let d = dir.path();
    let sock = d.join("containerd.sock");
    std::fs::write(
        d.join("config.toml"),
        format!(
            "version = 2\nroot = {:?}\nstate = {:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = {:?}\n",
            d.join("root"),
            d.join("state"),
            sock
        ),
    )
    .expect("config");
    let ctr = |args: &[&str]| {
        Command::new("ctr")
            .arg("-a")
            .arg(&sock)
            .args(args)
            .output()
            .expect("ctr")
    };
    let _containerd = start_daemon(
        Command::new("containerd").arg("--config").arg(d.join("config.toml")),
        &d.join("containerd.log"),
        || ctr(&["version"]).status.success(),
    );
    let image = format!("{}/busybox:latest", reg.host());
    let o = ctr(&["image", "pull", "--plain-http", &image]);
    assert!(o.status.success(), "{o:?}");
    let bin = rt.bin();
    let bin = bin.to_str().expect("utf-8");
    let o = ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        bin,
        &image,
        "c1",
        "sh",
        "-c",
        "echo hi $$; exit 7",
    ]);
    assert_eq!((o.status.code(), stdout_of(&o).as_str()), (Some(7), "hi 1\n"), "{o:?}");

    let o = ctr(&["run", "-d", "--runc-binary", bin, &image, "c2", "sleep", "300"]);
    assert!(o.status.success(), "{o:?}");
    let o = ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "c2",
        "sh",
        "-c",
        "cat /proc/1/comm; exit 4",
    ]);
    assert_eq!((o.status.code(), stdout_of(&o).trim()), (Some(4), "sleep"), "{o:?}");
    assert!(ctr(&["task", "kill", "-s", "KILL", "c2"]).status.success());
    wait_for("the task to stop", || {
        stdout_of(&ctr(&["task", "ls"])).lines().all(|l| !l.contains("RUNNING"))
    });
    assert!(ctr(&["task", "rm", "c2"]).status.success());
    assert!(ctr(&["container", "rm", "c2"]).status.success());
}
