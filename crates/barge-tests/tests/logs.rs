//! `barge logs`: a big log's tail read from its end in bounded memory, the
//! whole log streamed, and docker's json-file rotation (`--log-opt
//! max-size`, `max-file`) written and read back across the rotated files.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::{stderr_of, stdout_of, Barge};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

/// What a command printed (its size and last 4 KiB), its exit status and
/// its peak resident memory in KiB as GNU time measures it (`%M`; a child of
/// this test would inherit the test's own peak through vfork).
struct Measured {
    bytes: usize,
    end: String,
    stderr: String,
    status: Option<i32>,
    max_rss_kib: u64,
}

fn measure(barge: Command) -> Measured {
    let report = tempfile::tempdir().unwrap();
    let report = report.path().join("rss");
    let mut cmd = Command::new(TIME);
    cmd.args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(barge.get_program())
        .args(barge.get_args());
    for (k, v) in barge.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (mut bytes, mut end) = (0usize, Vec::new());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes += n;
        end.extend_from_slice(&buf[..n]);
        if end.len() > 8192 {
            end.drain(..end.len() - 4096);
        }
    }
    let status = child.wait().unwrap().code();
    let rss = std::fs::read_to_string(&report).unwrap();
    Measured {
        bytes,
        end: String::from_utf8_lossy(&end).into_owned(),
        stderr: err.join().unwrap(),
        status,
        max_rss_kib: rss
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("GNU time's report: {rss:?}")),
    }
}

const TIME: &str = "/usr/bin/time";

fn log_path(b: &Barge, c: &str) -> PathBuf {
    PathBuf::from(b.ok(&["inspect", "--format", "{{.LogPath}}", c]).trim())
}

fn rotated(log: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", log.display()))
}

/// `line 0` … `line N-1`, each line on its own, as the containers below print them.
fn numbered(text: &str) -> Vec<u32> {
    text.lines()
        .map(|l| {
            l.strip_prefix("line ")
                .and_then(|n| n.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a numbered line: {l:?}"))
        })
        .collect()
}

/// Consecutive numbers ending with `last`.
fn assert_consecutive_to(got: &[u32], last: u32, what: &str) {
    let first = got.first().copied().unwrap_or_else(|| panic!("{what}: nothing"));
    let expected: Vec<u32> = (first..=last).collect();
    assert_eq!(got, expected.as_slice(), "{what}");
}

/// A shell loop printing `line 0` … `line N-1` padded with `pad` bytes, at most one line per `pause`.
fn counting(n: u32, pad: usize, pause: &str) -> String {
    format!(
        "p=$(head -c {pad} /dev/zero | tr '\\0' x); i=0; while [ $i -lt {n} ]; do echo \"line $i $p\"; {pause} i=$((i+1)); done"
    )
}

#[test]
fn tail_reads_a_big_log_from_its_end_in_bounded_memory() {
    let Some((_reg, b, image)) = busybox_store(&[TIME], &[], |_| {}) else {
        return;
    };
    // 100,000 lines of 1000 bytes: a log of about 106 MB.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "big",
        &image,
        "sh",
        "-c",
        "s=0123456789; s=$s$s$s$s$s$s$s$s$s$s; s=$s$s$s$s$s$s$s$s$s$s; yes \"$s\" | head -n 100000; echo the-very-last-line; echo on-stderr >&2",
    ]);
    assert_eq!(b.ok(&["wait", "big"]).trim(), "0");
    let size = std::fs::metadata(log_path(&b, "big")).unwrap().len();
    assert!(size > 100_000_000, "log of {size} bytes");

    let logs = |args: &[&str]| {
        let mut cmd = b.command();
        cmd.arg("logs").args(args).arg("big");
        measure(cmd)
    };
    // Well under the log's size (and under what holding it, parsed, would take): about 1% of it.
    let bound_kib = 32 * 1024;

    let tail = logs(&["--tail", "1"]);
    assert_eq!(tail.status, Some(0), "{}", tail.stderr);
    assert_eq!(tail.end, "", "the last entry is on stderr");
    assert_eq!(tail.stderr, "on-stderr\n");
    assert!(
        tail.max_rss_kib < bound_kib,
        "logs --tail 1 of a {size}-byte log peaked at {} KiB",
        tail.max_rss_kib
    );

    let tail = logs(&["-n", "3"]);
    assert_eq!(tail.status, Some(0), "{}", tail.stderr);
    let s = "0123456789".repeat(100);
    assert_eq!(tail.end, format!("{s}\nthe-very-last-line\n"));
    assert_eq!(tail.stderr, "on-stderr\n");
    assert!(tail.max_rss_kib < bound_kib, "peak {} KiB", tail.max_rss_kib);

    // The whole log streams through: every line, memory still bounded.
    let all = logs(&[]);
    assert_eq!(all.status, Some(0), "{}", all.stderr);
    assert_eq!(all.bytes, 100_000 * 1001 + "the-very-last-line\n".len());
    assert!(all.end.ends_with(&format!("{s}\nthe-very-last-line\n")));
    assert!(
        all.max_rss_kib < bound_kib,
        "logs of {size} bytes peaked at {} KiB",
        all.max_rss_kib
    );
}

#[test]
fn rotation_keeps_max_file_files_of_about_max_size() {
    let Some((_reg, b, image)) = setup() else { return };
    // About 2,000 entries of about 130 bytes (260 kB) through files of 10 kB, three kept.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "rot",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        &image,
        "sh",
        "-c",
        &counting(2000, 40, ""),
    ]);
    assert_eq!(b.ok(&["wait", "rot"]).trim(), "0");
    let log = log_path(&b, "rot");
    let dir = log.parent().unwrap();
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("log.json"))
        .collect();
    files.sort();
    assert_eq!(files, ["log.json", "log.json.1", "log.json.2"]);
    // docker's json-file: a file is rotated once it holds max-size bytes, before the next entry.
    let entry_max = 200;
    for f in [rotated(&log, 1), rotated(&log, 2)] {
        let len = std::fs::metadata(&f).unwrap().len();
        assert!((10_000..10_000 + entry_max).contains(&len), "{}: {len}", f.display());
    }
    assert!(std::fs::metadata(&log).unwrap().len() < 10_000 + entry_max);
    assert_eq!(
        b.ok(&["inspect", "--format", "{{json .HostConfig.LogConfig}}", "rot"])
            .trim(),
        r#"{"Type":"json-file","Config":{"max-file":"3","max-size":"10k"}}"#
    );

    // logs: the rotated files oldest first, then log.json; the oldest entries are gone.
    let all = numbered(&b.ok(&["logs", "rot"]));
    assert_consecutive_to(&all, 1999, "logs");
    assert!(
        all[0] > 1000 && all.len() > 150,
        "about 30 kB of entries: {}",
        all.len()
    );

    // A tail longer than log.json reaches back into log.json.1 and .2.
    let in_live = std::fs::read_to_string(&log).unwrap().lines().count();
    let n = in_live + 100;
    let tail = numbered(&b.ok(&["logs", "--tail", &n.to_string(), "rot"]));
    assert_eq!(tail.len(), n);
    assert_eq!(tail, all[all.len() - n..]);

    // One file: replaced when full, no other kept.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "one",
        "--log-opt",
        "max-size=5k",
        &image,
        "sh",
        "-c",
        &counting(500, 40, ""),
    ]);
    assert_eq!(b.ok(&["wait", "one"]).trim(), "0");
    let log = log_path(&b, "one");
    assert!(!rotated(&log, 1).exists());
    assert!(std::fs::metadata(&log).unwrap().len() < 5_000 + entry_max);
    let kept = numbered(&b.ok(&["logs", "one"]));
    assert_consecutive_to(&kept, 499, "logs with one file");
}

#[test]
fn follow_continues_across_rotations() {
    let Some((_reg, b, image)) = setup() else { return };
    // 300 entries over some seconds through files of 2 kB: about 20 rotations while followed.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=4",
        &image,
        "sh",
        "-c",
        &counting(300, 40, "usleep 20000;"),
    ]);
    let followed = b.command().args(["logs", "-f", "slow"]).output().unwrap();
    assert!(followed.status.success(), "{}", stderr_of(&followed));
    // Every entry once, in order, and the command ends with the container.
    assert_eq!(numbered(&stdout_of(&followed)), (0..300).collect::<Vec<u32>>());
    assert!(rotated(&log_path(&b, "slow"), 3).exists());
}

#[test]
fn log_options_are_refused_as_docker_refuses_them() {
    let Some((_reg, b, image)) = setup() else { return };
    for (opt, message) in [
        ("max-size=0", "max-size must be a positive number"),
        ("max-size=-1", "invalid size: '-1'"),
        ("max-size=ten", "invalid size: 'ten'"),
        ("max-file=0", "max-file cannot be less than 1"),
        ("max-file=x", "strconv.Atoi: parsing \"x\": invalid syntax"),
        ("frob=1", "unknown log opt 'frob' for json-file log driver"),
    ] {
        let o = b.run(&["create", "--log-opt", opt, &image, "true"]);
        assert_eq!(o.status.code(), Some(125), "{opt}: {}", stdout_of(&o));
        assert!(stderr_of(&o).contains(message), "{opt}: {}", stderr_of(&o));
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "", "nothing was created");
}

#[test]
fn since_and_until_pick_lines_by_time() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&["run", "--name", "timed", &image, "echo", "x"]);
    // The log as docker's json-file keeps it, with times chosen here.
    let line = |log: &str, time: &str| format!(r#"{{"log":"{log}\n","stream":"stdout","time":"{time}"}}"#);
    let text = [
        line("first", "2020-01-01T00:00:00.5Z"),
        line("second", "2020-01-01T00:01:00.000000001Z"),
        line("third", "2020-01-01T00:02:00Z"),
    ]
    .join("\n");
    std::fs::write(log_path(&b, "timed"), text + "\n").unwrap();
    let logs = |args: &[&str]| b.ok(&[&["logs"], args, &["timed"]].concat());
    assert_eq!(logs(&[]), "first\nsecond\nthird\n");
    assert_eq!(logs(&["--since", "2020-01-01T00:01:00Z"]), "second\nthird\n");
    assert_eq!(logs(&["--until", "2020-01-01T00:02:00Z"]), "first\nsecond\n");
    // 1577836860 is 2020-01-01T00:01:00Z.
    assert_eq!(logs(&["--since", "1577836860", "--until", "1577836920"]), "second\n");
    assert_eq!(logs(&["--since", "10m"]), "", "all of it is older than ten minutes");
    assert_eq!(logs(&["--details"]), "first\nsecond\nthird\n");
    let e = b.fails(&["logs", "--since", "yesterday", "timed"]);
    assert!(e.contains("invalid --since \"yesterday\""), "{e}");
}

#[test]
fn log_driver_none_keeps_nothing_and_logs_says_so() {
    let Some((_reg, b, image)) = setup() else { return };
    // Attached, the output still reaches the terminal; nothing is kept.
    let o = b.run(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        &image,
        "echo",
        "hello",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o), "hello\n");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "quietd",
        "--log-driver",
        "none",
        &image,
        "echo",
        "hello",
    ]);
    b.ok(&["wait", "quietd"]);
    for name in ["quiet", "quietd"] {
        // LogPath is empty, so look where json-file would have written.
        let hosts = PathBuf::from(b.ok(&["inspect", "-f", "{{.HostsPath}}", name]).trim());
        let dir = hosts.parent().unwrap();
        assert!(
            dir.join("hosts").exists(),
            "{name}: the container's directory is {}",
            dir.display()
        );
        assert!(!dir.join("log.json").exists(), "{name}: no log file is written");
        let e = b.run(&["logs", name]);
        assert_eq!(e.status.code(), Some(1), "{name}: {}", stdout_of(&e));
        assert!(
            stderr_of(&e).contains("configured logging driver does not support reading"),
            "{}",
            stderr_of(&e)
        );
    }
    let shown = b.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.LogConfig.Type}} [{{.LogPath}}]",
        "quiet",
    ]);
    assert_eq!(shown, "none []\n");
    // json-file is the default and may be named; its log is read back.
    b.ok(&[
        "run",
        "--name",
        "kept",
        "--log-driver",
        "json-file",
        &image,
        "echo",
        "kept",
    ]);
    assert_eq!(b.ok(&["logs", "kept"]), "kept\n");
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "kept"]),
        "json-file\n"
    );
    for (args, message) in [
        (
            &["--log-driver", "syslog"][..],
            "no log driver named 'syslog' is registered",
        ),
        (
            &["--log-driver", "none", "--log-opt", "max-size=1m"][..],
            "unknown log opt 'max-size' for none log driver",
        ),
    ] {
        let o = b.run(&[&["create"], args, &[image.as_str(), "true"]].concat());
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", stdout_of(&o));
        assert!(stderr_of(&o).contains(message), "{args:?}: {}", stderr_of(&o));
    }
    assert_eq!(
        b.ok(&["ps", "-aq", "--filter", "status=created"]),
        "",
        "nothing was created"
    );
}
