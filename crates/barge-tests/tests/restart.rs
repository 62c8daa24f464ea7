//! `--restart` policies kept by the container's monitor (no daemon), and
//! `generate systemd`, whose unit starts a container at boot.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::{have_tool, in_ci, wait_until, Barge};
use std::time::Duration;

fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

fn inspect(b: &Barge, c: &str, field: &str) -> String {
    b.ok(&["inspect", "--format", field, c]).trim().to_string()
}

fn restarts(b: &Barge, c: &str) -> u32 {
    inspect(b, c, "{{.RestartCount}}").parse().expect("RestartCount")
}

#[test]
fn on_failure_restarts_up_to_its_count_and_not_after_success() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        &image,
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    wait_until("two restarts, then exited", || {
        restarts(&b, "flaky") == 2 && inspect(&b, "flaky", "{{.State.Status}}") == "exited"
    });
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(restarts(&b, "flaky"), 2, "no third restart");
    assert_eq!(b.ok(&["logs", "flaky"]), "run\nrun\nrun\n");
    assert_eq!(inspect(&b, "flaky", "{{.State.ExitCode}}"), "3");
    assert_eq!(
        inspect(&b, "flaky", "{{json .HostConfig.RestartPolicy}}"),
        r#"{"Name":"on-failure","MaximumRetryCount":2}"#
    );
    // A success is not a failure: no restart.
    b.ok(&["run", "-d", "--name", "fine", "--restart", "on-failure", &image, "true"]);
    wait_until("exited", || inspect(&b, "fine", "{{.State.Status}}") == "exited");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(restarts(&b, "fine"), 0);
}

#[test]
fn always_restarts_until_a_user_stops_or_kills_it() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        &image,
        "sh",
        "-c",
        "echo up; sleep 0.3",
    ]);
    wait_until("restarted twice", || restarts(&b, "loop") >= 2);
    b.ok(&["stop", "-t", "1", "loop"]);
    let after_stop = restarts(&b, "loop");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(restarts(&b, "loop"), after_stop, "stop ends the restarts");
    assert_eq!(inspect(&b, "loop", "{{.State.Status}}"), "exited");
    // Started again by a user, the policy applies again; a kill ends it.
    b.ok(&["start", "loop"]);
    wait_until("restarted after start", || restarts(&b, "loop") > after_stop);
    wait_until("running", || inspect(&b, "loop", "{{.State.Status}}") == "running");
    let _ = b.run(&["kill", "loop"]);
    wait_until("exited after kill", || {
        inspect(&b, "loop", "{{.State.Status}}") == "exited"
    });
    let after_kill = restarts(&b, "loop");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(restarts(&b, "loop"), after_kill, "kill ends the restarts");
    b.ok(&["rm", "loop"]);
}

#[test]
fn a_restarting_container_shows_it_and_needs_force_to_remove() {
    let Some((_reg, b, image)) = setup() else { return };
    // Exits at once: the backoff doubles from 100 ms (1.6 s before the
    // sixth restart), long enough to see the state between runs.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "crash",
        "--restart",
        "always",
        &image,
        "sh",
        "-c",
        "exit 7",
    ]);
    wait_until("restarting between runs", || {
        restarts(&b, "crash") >= 4 && inspect(&b, "crash", "{{.State.Status}}") == "restarting"
    });
    assert_eq!(inspect(&b, "crash", "{{.State.Restarting}}"), "true");
    let ps = b.ok(&["ps", "-a", "--filter", "name=crash", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Restarting (7) "), "{ps}");
    let e = b.fails(&["rm", "crash"]);
    assert!(e.contains("You cannot remove a restarting container"), "{e}");
    b.ok(&["rm", "-f", "crash"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn a_foreground_run_returns_and_the_policy_restarts_in_the_background() {
    let Some((_reg, b, image)) = setup() else { return };
    let o = b.run(&[
        "run",
        "--name",
        "fg",
        "--restart",
        "on-failure:1",
        &image,
        "sh",
        "-c",
        "echo once; exit 2",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "once\n");
    wait_until("restarted once in the background", || {
        b.ok(&["logs", "fg"]) == "once\nonce\n" && inspect(&b, "fg", "{{.State.Status}}") == "exited"
    });
    assert_eq!(restarts(&b, "fg"), 1);
}

#[test]
fn bad_policies_are_refused_before_anything_is_made() {
    let Some((_reg, b, image)) = setup() else { return };
    for (policy, rm, message) in [
        ("sometimes", false, "invalid restart policy 'sometimes'"),
        (
            "always:3",
            false,
            "maximum retry count cannot be used with restart policy 'always'",
        ),
        ("on-failure:x", false, "maximum retry count must be an integer"),
        ("on-failure:-2", false, "maximum retry count cannot be negative"),
        ("always", true, "conflicting options: --restart and --rm"),
    ] {
        let mut args = vec!["run", "--restart", policy];
        if rm {
            args.push("--rm");
        }
        args.extend([image.as_str(), "true"]);
        let o = b.run(&args);
        assert_eq!(o.status.code(), Some(125), "{policy}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(message), "{policy}: {err}");
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn generate_systemd_writes_a_unit_whose_commands_start_and_stop_it() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&[
        "create",
        "--name",
        "svc",
        "--restart",
        "always",
        "--stop-timeout",
        "3",
        &image,
        "sleep",
        "300",
    ]);
    let unit = b.ok(&["generate", "systemd", "svc"]);
    let value = |key: &str| -> String {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key}= missing: {unit}"))
            .to_string()
    };
    assert_eq!(value("Type"), "forking");
    assert_eq!(value("Restart"), "on-failure");
    assert_eq!(value("TimeoutStopSec"), "63");
    assert_eq!(value("WantedBy"), "multi-user.target");
    assert!(value("ExecStop").ends_with(" stop -t 3 svc"), "{unit}");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("container-svc.service");
    std::fs::write(&path, &unit).expect("unit");
    if have_tool("systemd-analyze") || in_ci() {
        let o = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // What systemd would run: ExecStart forks the monitor, whose pid is
    // in PIDFile; ExecStop stops the container and the monitor exits.
    let run = |line: &str| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let o = std::process::Command::new(words[0])
            .args(&words[1..])
            .env("BARGE_CONFIG", b.root().parent().expect("parent").join("barge-config"))
            .output()
            .expect("unit command");
        assert!(o.status.success(), "{line}: {}", String::from_utf8_lossy(&o.stderr));
    };
    run(&value("ExecStart"));
    assert_eq!(inspect(&b, "svc", "{{.State.Status}}"), "running");
    let pid_file = std::path::PathBuf::from(value("PIDFile"));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("PIDFile")
        .trim()
        .parse()
        .expect("pid");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pid_file.with_file_name("state.json")).expect("state")).expect("json");
    assert_eq!(
        state["monitor_pid"].as_i64(),
        Some(i64::from(pid)),
        "PIDFile names the monitor"
    );
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    run(&value("ExecStop"));
    assert_eq!(inspect(&b, "svc", "{{.State.Status}}"), "exited");
    wait_until("the monitor exits", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    assert!(!pid_file.exists(), "the PIDFile goes with the monitor");
    // --files writes container-NAME.service where it is run.
    let o = b
        .command()
        .args(["generate", "systemd", "--files", "svc"])
        .current_dir(dir.path())
        .output()
        .expect("generate --files");
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), path.display().to_string());
    assert_eq!(std::fs::read_to_string(&path).expect("unit file"), unit);
}
