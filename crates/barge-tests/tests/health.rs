//! Health checks (docker's HEALTHCHECK and `--health-*`) through the real
//! binary: flags checked before any pull, probes run inside the container
//! by its monitor (detached and foreground), `State.Health` with its log,
//! `ps` statuses and filters, the image's check and how flags override it.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::{wait_until, Barge};
use serde_json::Value;
use std::time::{Duration, Instant};

fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

fn inspect(b: &Barge, c: &str, field: &str) -> String {
    b.ok(&["inspect", "--format", field, c]).trim().to_string()
}

fn health(b: &Barge, c: &str) -> Value {
    serde_json::from_str(&inspect(b, c, "{{json .State.Health}}")).expect("State.Health is JSON")
}

/// A result's output as the command wrote it: barge's templates write
/// control characters (a container's text) out as `\x0a`, `\x09`.
fn output(r: &Value) -> String {
    r["Output"]
        .as_str()
        .unwrap_or("")
        .replace("\\x0a", "\n")
        .replace("\\x09", "\t")
}

fn status(b: &Barge, c: &str) -> String {
    health(b, c)["Status"].as_str().unwrap_or("").to_string()
}

fn ps_status(b: &Barge, c: &str) -> String {
    b.ok(&["ps", "-a", "--format", "{{.Names}}\t{{.Status}}"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{c}\t")).map(str::to_string))
        .unwrap_or_default()
}

/// `run -d --name NAME FLAGS… IMAGE sleep 60`.
fn run_sleeping(b: &Barge, name: &str, flags: &[&str], image: &str) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image, "sleep", "60"]);
    b.ok(&args);
}

/// The first probe's result, once there is one.
fn first_result(b: &Barge, c: &str) -> Value {
    wait_until("a probe's result", || {
        health(b, c)["Log"].as_array().is_some_and(|l| !l.is_empty())
    });
    health(b, c)["Log"][0].clone()
}

/// The probe's `echo pid $$` line is a number of the container's PID
/// namespace (small), not a host PID.
fn assert_container_pid(out: &str) {
    let pid: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("pid "))
        .and_then(|p| p.parse().ok())
        .expect("pid line");
    assert!(pid < 100, "pid {pid} is the container's numbering");
}

fn ps_names(b: &Barge, filter: &str) -> Vec<String> {
    let mut names: Vec<String> = b
        .ok(&["ps", "-a", "--filter", filter, "--format", "{{.Names}}"])
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

#[test]
fn flags_are_checked_with_dockers_messages_before_any_pull() {
    let b = Barge::new();
    // Nothing listens there: a pull would fail differently, and later.
    let image = "127.0.0.1:9/nothing:1";
    for (flags, expected) in [
        (
            &["--health-interval", "10us"][..],
            "Interval in Healthcheck cannot be less than 1ms",
        ),
        (
            &["--health-timeout", "500us"][..],
            "Timeout in Healthcheck cannot be less than 1ms",
        ),
        (
            &["--health-start-period", "1ns"][..],
            "StartPeriod in Healthcheck cannot be less than 1ms",
        ),
        (
            &["--no-healthcheck", "--health-cmd", "true"][..],
            "--no-healthcheck conflicts with --health-* options",
        ),
        (
            &["--no-healthcheck", "--health-retries", "2"][..],
            "--no-healthcheck conflicts with --health-* options",
        ),
        (&["--health-retries", "-1"][..], "--health-retries cannot be negative"),
        (
            &["--health-interval", "-1s"][..],
            "--health-interval cannot be negative",
        ),
        (
            &["--health-timeout", "5"][..],
            "invalid argument \"5\" for \"--health-timeout\" flag",
        ),
    ] {
        for verb in ["run", "create"] {
            let mut args = vec![verb];
            args.extend_from_slice(flags);
            args.extend_from_slice(&[image, "true"]);
            let out = b.run(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
            assert!(err.contains(expected), "{args:?}: {err}");
            assert!(!err.contains("Unable to find image"), "checked before the pull: {err}");
        }
    }
}

#[test]
fn a_passing_check_makes_the_container_healthy() {
    let Some((_reg, b, image)) = setup() else { return };
    run_sleeping(&b, "plain", &[], &image);
    run_sleeping(
        &b,
        "ok",
        &["--health-cmd", "echo fine; echo also >&2", "--health-interval", "200ms"],
        &image,
    );
    let began = Instant::now();
    wait_until("healthy", || status(&b, "ok") == "healthy");
    assert!(began.elapsed() < Duration::from_secs(5), "healthy within a few seconds");
    let h = health(&b, "ok");
    assert_eq!(h["FailingStreak"], 0);
    let last = h["Log"].as_array().and_then(|l| l.last()).cloned().expect("a result");
    assert_eq!(last["ExitCode"], 0);
    assert_eq!(output(&last), "fine\nalso\n");
    assert!(last["Start"].as_str().unwrap() <= last["End"].as_str().unwrap());
    let ps = ps_status(&b, "ok");
    assert!(ps.starts_with("Up ") && ps.ends_with(" (healthy)"), "{ps}");
    assert_eq!(
        serde_json::from_str::<Value>(&inspect(&b, "ok", "{{json .Config.Healthcheck}}")).unwrap(),
        serde_json::json!({"Test": ["CMD-SHELL", "echo fine; echo also >&2"], "Interval": 200_000_000})
    );
    // Five results at most, the newest last.
    wait_until("a full log", || {
        health(&b, "ok")["Log"].as_array().map(Vec::len) == Some(5)
    });
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(health(&b, "ok")["Log"].as_array().map(Vec::len), Some(5));
    // A container without a check: no Health, none to the filter.
    assert_eq!(inspect(&b, "plain", "{{json .State.Health}}"), "null");
    assert_eq!(inspect(&b, "plain", "{{json .Config.Healthcheck}}"), "null");
    assert!(!ps_status(&b, "plain").contains('('));
    assert_eq!(ps_names(&b, "health=healthy"), ["ok"]);
    assert_eq!(ps_names(&b, "health=none"), ["plain"]);
    assert!(ps_names(&b, "health=unhealthy").is_empty());
    // stop ends the probes; the last state stays for inspect.
    b.ok(&["stop", "-t", "1", "ok"]);
    let log = health(&b, "ok")["Log"].clone();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(health(&b, "ok")["Log"], log, "no probe after the exit");
    assert!(ps_status(&b, "ok").starts_with("Exited"));
    // Started again: starting, then healthy again.
    b.ok(&["start", "ok"]);
    wait_until("healthy again", || status(&b, "ok") == "healthy");
    // Paused, its probes fail as docker's exec refuses a paused container.
    b.ok(&["pause", "ok"]);
    wait_until("a failure while paused", || {
        health(&b, "ok")["Log"]
            .as_array()
            .and_then(|l| l.last())
            .is_some_and(|r| r["ExitCode"] == -1 && output(r).contains("is paused, unpause the container"))
    });
    b.ok(&["unpause", "ok"]);
    wait_until("healthy after unpause", || {
        health(&b, "ok")["Log"]
            .as_array()
            .and_then(|l| l.last())
            .is_some_and(|r| r["ExitCode"] == 0)
    });
}

#[test]
fn a_foreground_run_is_probed_too() {
    let Some((_reg, b, image)) = setup() else { return };
    let mut child = b
        .command()
        .args([
            "run",
            "--name",
            "fg",
            "--health-cmd",
            "true",
            "--health-interval",
            "200ms",
            &image,
            "sleep",
            "30",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("barge run");
    wait_until("running", || {
        b.run(&["inspect", "--format", "{{.State.Status}}", "fg"]).stdout == b"running\n"
    });
    wait_until("healthy in the foreground", || status(&b, "fg") == "healthy");
    b.ok(&["stop", "-t", "1", "fg"]);
    let code = child.wait().expect("barge run exits");
    assert!(!code.success() || code.code() == Some(0), "run returned");
    assert_eq!(inspect(&b, "fg", "{{.State.Status}}"), "exited");
}

#[test]
fn a_failing_check_makes_it_unhealthy_after_its_retries() {
    let Some((_reg, b, image)) = setup() else { return };
    run_sleeping(
        &b,
        "bad",
        &[
            "--health-cmd",
            "echo broken >&2; exit 3",
            "--health-interval",
            "300ms",
            "--health-retries",
            "3",
        ],
        &image,
    );
    // Still starting after one or two failures.
    wait_until("a failure", || health(&b, "bad")["FailingStreak"].as_u64() >= Some(1));
    let h = health(&b, "bad");
    if h["FailingStreak"].as_u64() < Some(3) {
        assert_eq!(h["Status"], "starting", "{h}");
    }
    wait_until("unhealthy", || status(&b, "bad") == "unhealthy");
    let h = health(&b, "bad");
    assert!(h["FailingStreak"].as_u64() >= Some(3), "{h}");
    let log = h["Log"].as_array().expect("log");
    assert!(log.len() >= 3);
    for r in log {
        assert_eq!(r["ExitCode"], 3, "{r}");
        assert_eq!(output(r), "broken\n", "{r}");
    }
    assert!(ps_status(&b, "bad").ends_with(" (unhealthy)"));
    assert_eq!(ps_names(&b, "health=unhealthy"), ["bad"]);

    // Output is kept to docker's 4096 bytes.
    run_sleeping(
        &b,
        "loud",
        &[
            "--health-cmd",
            "head -c 10000 /dev/zero | tr '\\000' x; exit 1",
            "--health-interval",
            "200ms",
        ],
        &image,
    );
    let out = output(&first_result(&b, "loud"));
    assert_eq!(out.len(), 4096 + 3, "{}", out.len());
    assert!(out.starts_with("xxxx") && out.ends_with("x..."));
}

#[test]
fn a_probe_past_its_timeout_is_killed_and_fails() {
    let Some((_reg, b, image)) = setup() else { return };
    run_sleeping(
        &b,
        "slow",
        &[
            "--health-cmd",
            "sleep 2 && touch /tmp/survived",
            "--health-timeout",
            "300ms",
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
        ],
        &image,
    );
    let began = Instant::now();
    wait_until("unhealthy", || status(&b, "slow") == "unhealthy");
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "failed at the timeout, not after sleep 2"
    );
    let r = health(&b, "slow")["Log"][0].clone();
    assert_eq!(r["ExitCode"], -1, "{r}");
    assert_eq!(r["Output"], "Health check exceeded timeout (300ms)", "{r}");
    // The command itself was killed, not only barge's process waiting for it.
    std::thread::sleep(Duration::from_millis(2500));
    let o = b.run(&["exec", "slow", "test", "-e", "/tmp/survived"]);
    assert_eq!(o.status.code(), Some(1), "a timed-out probe kept running");
}

#[test]
fn failures_in_the_start_period_do_not_count_and_a_success_ends_it() {
    let Some((_reg, b, image)) = setup() else { return };
    run_sleeping(
        &b,
        "warm",
        &[
            "--health-cmd",
            "exit 1",
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
            "--health-start-period",
            "3s",
        ],
        &image,
    );
    let began = Instant::now();
    wait_until("failures", || {
        health(&b, "warm")["Log"].as_array().is_some_and(|l| l.len() >= 2)
    });
    if began.elapsed() < Duration::from_millis(2500) {
        let h = health(&b, "warm");
        assert_eq!(
            (h["Status"].as_str(), h["FailingStreak"].as_u64()),
            (Some("starting"), Some(0)),
            "{h}"
        );
        assert!(ps_status(&b, "warm").ends_with(" (health: starting)"));
        assert_eq!(ps_names(&b, "health=starting"), ["warm"]);
    }
    wait_until("unhealthy after the start period", || status(&b, "warm") == "unhealthy");
    assert!(began.elapsed() >= Duration::from_millis(2900));

    run_sleeping(
        &b,
        "ready",
        &[
            "--health-cmd",
            "test -e /tmp/ready",
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
            "--health-start-period",
            "60s",
        ],
        &image,
    );
    assert_eq!(first_result(&b, "ready")["ExitCode"], 1);
    assert_eq!(status(&b, "ready"), "starting");
    b.ok(&["exec", "ready", "touch", "/tmp/ready"]);
    wait_until("healthy", || status(&b, "ready") == "healthy");
    // The start period ended with the success: the next failure counts.
    b.ok(&["exec", "ready", "rm", "/tmp/ready"]);
    wait_until("unhealthy", || status(&b, "ready") == "unhealthy");
}

#[test]
fn the_images_healthcheck_with_flags_over_it_and_none() {
    let Some((_reg, b, image)) = setup() else { return };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nHEALTHCHECK --interval=200ms --retries=2 CMD echo from-image\n"),
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "checked:1", ctx.path().to_str().unwrap()]);
    std::fs::write(ctx.path().join("Dockerfile"), "FROM checked:1\nHEALTHCHECK NONE\n").unwrap();
    b.ok(&["build", "-q", "-t", "unchecked:1", ctx.path().to_str().unwrap()]);
    // CMD-SHELL runs with the image's SHELL, as docker's getShell.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM checked:1\nSHELL [\"/bin/echo\", \"via\"]\nHEALTHCHECK --interval=200ms CMD the shell\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "shelled:1", ctx.path().to_str().unwrap()]);
    run_sleeping(&b, "shelled", &[], "shelled:1");
    assert_eq!(output(&first_result(&b, "shelled")), "via the shell\n");
    assert_eq!(
        inspect(&b, "shelled", "{{json .Config.Shell}}"),
        r#"["/bin/echo","via"]"#
    );

    run_sleeping(&b, "img", &[], "checked:1");
    wait_until("healthy", || status(&b, "img") == "healthy");
    assert_eq!(output(&health(&b, "img")["Log"][0]), "from-image\n");
    assert_eq!(
        serde_json::from_str::<Value>(&inspect(&b, "img", "{{json .Config.Healthcheck}}")).unwrap(),
        serde_json::json!({"Test": ["CMD-SHELL", "echo from-image"], "Interval": 200_000_000, "Retries": 2})
    );

    // The flags replace the fields they set; the rest stay the image's.
    run_sleeping(
        &b,
        "over",
        &["--health-cmd", "exit 1", "--health-timeout", "5s"],
        "checked:1",
    );
    assert_eq!(
        serde_json::from_str::<Value>(&inspect(&b, "over", "{{json .Config.Healthcheck}}")).unwrap(),
        serde_json::json!({"Test": ["CMD-SHELL", "exit 1"], "Interval": 200_000_000, "Timeout": 5_000_000_000u64, "Retries": 2})
    );
    let began = Instant::now();
    wait_until("unhealthy", || status(&b, "over") == "unhealthy");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the image's 200ms interval kept"
    );
    assert_eq!(health(&b, "over")["Log"].as_array().map(Vec::len), Some(2));

    // --no-healthcheck and HEALTHCHECK NONE: no probes at all.
    run_sleeping(&b, "off", &["--no-healthcheck"], "checked:1");
    run_sleeping(&b, "none", &[], "unchecked:1");
    std::thread::sleep(Duration::from_millis(800));
    // As docker merges it, NONE keeps the image's other fields; it turns the check off.
    assert_eq!(
        inspect(&b, "off", "{{json .Config.Healthcheck}}"),
        r#"{"Test":["NONE"],"Interval":200000000,"Retries":2}"#
    );
    assert_eq!(
        inspect(&b, "none", "{{json .Config.Healthcheck}}"),
        r#"{"Test":["NONE"]}"#
    );
    for c in ["off", "none"] {
        assert_eq!(inspect(&b, c, "{{json .State.Health}}"), "null", "{c}");
        assert!(!ps_status(&b, c).contains('('), "{c}");
    }
    assert_eq!(ps_names(&b, "health=none"), ["none", "off"]);
}

#[test]
fn the_probe_runs_inside_the_container_never_on_the_host() {
    let Some((_reg, b, image)) = setup() else { return };
    let tag = format!("barge-health-{}", std::process::id());
    let secret = std::env::temp_dir().join(format!("{tag}-secret"));
    std::fs::write(&secret, "host secret\n").unwrap();
    let marker = format!("/tmp/{tag}-marker");
    let _ = std::fs::remove_file(&marker);
    let script = format!(
        "touch {marker}; hostname; cat /proc/self/cgroup; grep CapEff /proc/self/status; \
         cat {} 2>&1; echo pid $$; id -u",
        secret.display()
    );
    run_sleeping(
        &b,
        "probed",
        &[
            "--hostname",
            "inside",
            "-u",
            "app",
            "--health-cmd",
            &script,
            "--health-interval",
            "200ms",
        ],
        &image,
    );
    let out = output(&first_result(&b, "probed"));
    let mut lines = out.lines();
    // The container's UTS namespace, its cgroup, its user and capabilities.
    assert_eq!(lines.next(), Some("inside"), "{out}");
    let exec = |args: &[&str]| {
        let mut a = vec!["exec", "probed"];
        a.extend_from_slice(args);
        b.ok(&a)
    };
    let cgroup = exec(&["cat", "/proc/self/cgroup"]);
    assert!(
        out.contains(&cgroup),
        "probe's cgroup is the container's:\n{out}\nvs\n{cgroup}"
    );
    assert_ne!(
        cgroup,
        std::fs::read_to_string("/proc/self/cgroup").unwrap(),
        "the container has a cgroup of its own"
    );
    assert!(
        out.contains("CapEff:\t0000000000000000"),
        "a user other than root has no capabilities:\n{out}"
    );
    assert!(
        out.contains("No such file or directory"),
        "the host's file is out of reach:\n{out}"
    );
    assert!(!out.contains("host secret"), "{out}");
    assert!(out.trim_end().ends_with("1234"), "runs as the container's user:\n{out}");
    // Its PID namespace: a small number, not a host PID.
    assert_container_pid(&out);
    // The marker is in the container's root, not the host's.
    assert!(!std::path::Path::new(&marker).exists(), "the probe wrote on the host");
    exec(&["test", "-e", &marker]);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret\n");
    let _ = std::fs::remove_file(&secret);
}

#[test]
fn a_container_restarted_by_its_policy_is_probed_again() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--restart",
        "always",
        "--health-cmd",
        "true",
        "--health-interval",
        "200ms",
        &image,
        "sh",
        "-c",
        "sleep 1.5",
    ]);
    wait_until("healthy", || status(&b, "again") == "healthy");
    wait_until("restarted", || inspect(&b, "again", "{{.RestartCount}}") != "0");
    // A result of the new run: probed after it started.
    wait_until("probed after the restart", || {
        let started = inspect(&b, "again", "{{.State.StartedAt}}");
        let h = health(&b, "again");
        inspect(&b, "again", "{{.State.Status}}") == "running"
            && h["Status"] == "healthy"
            && h["Log"]
                .as_array()
                .and_then(|l| l.last())
                .and_then(|r| r["Start"].as_str())
                .is_some_and(|s| s > started.as_str())
    });
    b.ok(&["stop", "-t", "1", "again"]);
}

#[test]
fn a_rootless_container_is_probed_in_its_namespaces() {
    let Some((_reg, b, _user, image)) = barge_tests::image::busybox_store_as("barge-rootless", 600000) else {
        return;
    };
    run_sleeping(
        &b,
        "mine",
        &["--health-cmd", "id -u; echo pid $$", "--health-interval", "200ms"],
        &image,
    );
    wait_until("healthy", || status(&b, "mine") == "healthy");
    let out = output(&first_result(&b, "mine"));
    assert!(
        out.starts_with("0\npid "),
        "root of the container's user namespace:\n{out}"
    );
    assert_container_pid(&out);
    assert!(ps_status(&b, "mine").ends_with(" (healthy)"));
    b.ok(&["rm", "-f", "mine"]);
}

#[test]
fn a_probe_that_leaves_a_writer_behind_still_ends() {
    let Some((_reg, b, image)) = setup() else { return };
    // The command exits at once; what it started keeps writing to its output.
    run_sleeping(
        &b,
        "chatty",
        &[
            "--health-cmd",
            "yes spam & echo started",
            "--health-interval",
            "200ms",
            "--health-timeout",
            "20s",
        ],
        &image,
    );
    let began = Instant::now();
    let r = first_result(&b, "chatty");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the result came after the exit"
    );
    assert_eq!(r["ExitCode"], 0, "{r}");
    assert!(output(&r).ends_with("..."), "kept to the limit");
    wait_until("healthy", || status(&b, "chatty") == "healthy");
    // Left behind, a writer dies on the closed pipe: live ones do not pile
    // up (one a probe, each 0.7 s or so; the latest may still be draining).
    // Dead ones stay zombies of PID 1, `sleep`, which reaps nothing (as
    // under docker without --init).
    std::thread::sleep(Duration::from_secs(3));
    let left = b.ok(&["exec", "chatty", "ps", "-o", "stat,comm"]);
    let live = left
        .lines()
        .filter(|l| l.ends_with(" yes") && !l.trim_start().starts_with('Z'))
        .count();
    assert!(left.lines().any(|l| l.ends_with(" yes")), "the writers ran:\n{left}");
    assert!(live <= 2, "writers left:\n{left}");
}
