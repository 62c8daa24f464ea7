//! Resource limits: the container's cgroup seen from the host (limits,
//! processes, removal), the OOM killer, a fork bomb against
//! `--pids-limit`, `--cpus` against a busy loop, `--ulimit`, `barge stats`,
//! `stop` killing every process of the cgroup, and the same bundle under runc.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, wait_until, Barge};
use barge_tests::{stderr_of as err, stdout_of as out};
use std::path::{Path, PathBuf};

/// A store with a busybox image pulled; returns it with the image reference.
fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

fn inspect(b: &Barge, c: &str, field: &str) -> String {
    b.ok(&["inspect", "--format", field, c]).trim().to_string()
}

/// The mount point of the cgroup v1 hierarchy with `controller`, if the host has one.
fn v1_mount(controller: &str) -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let post: Vec<&str> = post.split(' ').collect();
        (post.first() == Some(&"cgroup") && post.get(2)?.split(',').any(|o| o == controller))
            .then(|| PathBuf::from(pre.split(' ').nth(4).unwrap()))
    })
}

/// The cgroup directory holding `controller`'s files for process `pid`
/// (v1: that hierarchy's; v2: the unified one).
fn cgroup_dir(pid: &str, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    cgroup_dir_from(&text, controller)
}

fn cgroup_dir_from(proc_cgroup: &str, controller: &str) -> PathBuf {
    let find = |want: &dyn Fn(&str) -> bool| {
        proc_cgroup.lines().find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, ctrls, path) = (p.next()?, p.next()?, p.next()?);
            want(ctrls).then(|| path.trim_start_matches('/').to_string())
        })
    };
    match v1_mount(controller) {
        Some(mount) => mount.join(find(&|c| c.split(',').any(|x| x == controller)).expect("v1 line")),
        None => PathBuf::from("/sys/fs/cgroup").join(find(&|c| c.is_empty()).expect("v2 line")),
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// CPU time the cgroup of process `pid` has used, in microseconds.
fn cpu_usage_us(pid: &str) -> u64 {
    if v1() {
        read(&cgroup_dir(pid, "cpuacct").join("cpuacct.usage"))
            .parse::<u64>()
            .unwrap()
            / 1000
    } else {
        let stat = read(&cgroup_dir(pid, "cpu").join("cpu.stat"));
        let usage = stat.lines().find_map(|l| l.strip_prefix("usage_usec "));
        usage.expect("usage_usec in cpu.stat").parse().unwrap()
    }
}

fn v1() -> bool {
    v1_mount("memory").is_some()
}

/// Memory limit file of a cgroup directory, v1 or v2.
fn memory_limit(dir: &Path) -> String {
    read(&dir.join(if v1() { "memory.limit_in_bytes" } else { "memory.max" }))
}

#[test]
fn memory_limit_in_the_cgroup_and_the_oom_killer() {
    let Some((_reg, b, image)) = setup() else { return };
    let id = b
        .ok(&["run", "-d", "--name", "mem", "--memory", "32m", &image, "sleep", "60"])
        .trim()
        .to_string();
    let pid = inspect(&b, "mem", "{{.State.Pid}}");
    let dir = cgroup_dir(&pid, "memory");
    assert!(
        dir.ends_with(format!("barge/{id}")),
        "the container's own cgroup: {}",
        dir.display()
    );
    assert_eq!(memory_limit(&dir), (32u64 << 20).to_string());
    if v1() && dir.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(
            read(&dir.join("memory.memsw.limit_in_bytes")),
            (64u64 << 20).to_string(),
            "docker's default: as much swap as memory"
        );
    }
    assert_eq!(inspect(&b, "mem", "{{.HostConfig.Memory}}"), (32u64 << 20).to_string());
    // The processes of the container are in it, exec'd ones too.
    assert!(read(&dir.join("cgroup.procs")).lines().any(|p| p == pid));
    let exec_cgroup = b.ok(&["exec", "mem", "cat", "/proc/self/cgroup"]);
    assert_eq!(cgroup_dir_from(&exec_cgroup, "memory"), dir, "{exec_cgroup}");
    b.ok(&["rm", "-f", "mem"]);
    assert!(!dir.exists(), "{} is removed with the container", dir.display());

    // 200 MB in a shell variable with 32 MB of memory: the OOM killer.
    let oom = b.run(&[
        "run",
        "--name",
        "oom",
        "--memory",
        "32m",
        &image,
        "sh",
        "-c",
        "x=$(head -c 200m /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(oom.status.code(), Some(137), "{} {}", out(&oom), err(&oom));
    assert!(!out(&oom).contains("survived"));
    assert_eq!(inspect(&b, "oom", "{{.State.OOMKilled}}"), "true");
    assert_eq!(inspect(&b, "oom", "{{.State.ExitCode}}"), "137");
    let ps = b.ok(&["ps", "-a", "--filter", "name=oom", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Exited (137)"), "{ps}");
    b.ok(&["rm", "oom"]);
    let fine = b.run(&["run", "--name", "fine", "--memory", "32m", &image, "sh", "-c", "exit 3"]);
    assert_eq!(fine.status.code(), Some(3));
    assert_eq!(inspect(&b, "fine", "{{.State.OOMKilled}}"), "false");

    // A foreground --rm container leaves no cgroup either.
    let seen = b.ok(&["run", "--rm", "--memory", "16m", &image, "cat", "/proc/self/cgroup"]);
    let dir = cgroup_dir_from(&seen, "memory");
    assert!(dir.to_string_lossy().contains("/barge/"), "{seen}");
    assert!(!dir.exists(), "{} is gone after --rm", dir.display());
}

#[test]
fn bad_limits_fail_like_docker() {
    let Some((_reg, b, image)) = setup() else { return };
    for (flags, message) in [
        (vec!["--memory", "4m"], "Minimum memory limit allowed is 6MB"),
        (vec!["--memory", "12x"], "invalid size: '12x'"),
        (
            vec!["--memory", "32m", "--memory-swap", "16m"],
            "Minimum memoryswap limit should be larger than memory limit",
        ),
        (
            vec!["--memory-swap", "1g"],
            "You should always set the Memory limit when using Memoryswap limit",
        ),
        (vec!["--cpus", "1000"], "Range of CPUs is from 0.01 to"),
        (vec!["--cpus", "abc"], "failed to parse abc as a rational number"),
        (vec!["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
        (
            vec!["--ulimit", "nofile=20:10"],
            "soft limit must be less than or equal to hard limit",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(flags.iter().copied());
        args.extend([image.as_str(), "true"]);
        let o = b.run(&args);
        assert_eq!(o.status.code(), Some(125), "{flags:?}: {}", err(&o));
        assert!(err(&o).contains(message), "{flags:?}: {}", err(&o));
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "", "nothing was created");
    // -1 is unlimited swap.
    b.ok(&["run", "--rm", "--memory", "32m", "--memory-swap", "-1", &image, "true"]);
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit() {
    let Some((_reg, b, image)) = setup() else { return };
    // A failed fork ends a busybox shell: the bomb runs in a subshell, PID 1 outlives it.
    let script = "(for i in $(seq 100); do sleep 300 & done) 2>&1; echo loop-done; exec sleep 1000";
    b.ok(&[
        "run",
        "-d",
        "--name",
        "bomb",
        "--pids-limit",
        "20",
        &image,
        "sh",
        "-c",
        script,
    ]);
    let pid = inspect(&b, "bomb", "{{.State.Pid}}");
    let dir = cgroup_dir(&pid, "pids");
    assert_eq!(read(&dir.join("pids.max")), "20");
    wait_until("the loop to end", || b.ok(&["logs", "bomb"]).contains("loop-done"));
    let procs: Vec<String> = read(&dir.join("cgroup.procs")).lines().map(str::to_string).collect();
    let sleeps = procs
        .iter()
        .filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == b"sleep\x00300\x00"))
        .count();
    // At the failing fork: PID 1, the subshell and 18 sleeps made 20.
    assert_eq!(sleeps, 18, "as many sleeps as the limit left room for: {procs:?}");
    assert_eq!(procs.len(), 19, "the subshell is gone: {procs:?}");
    assert_eq!(read(&dir.join("pids.current")), "19");
    let logs = b.run(&["logs", "bomb"]);
    assert!(out(&logs).contains("can't fork"), "forks failed inside: {}", out(&logs));
    assert_eq!(
        inspect(&b, "bomb", "{{.State.Status}}"),
        "running",
        "the container lives on"
    );
    let stats = b.ok(&["stats", "--no-stream", "--format", "{{.PIDs}}", "bomb"]);
    assert_eq!(stats.trim(), "19");
    b.ok(&["stop", "-t", "1", "bomb"]);
    assert_eq!(inspect(&b, "bomb", "{{.State.Status}}"), "exited");
    assert!(!dir.exists(), "{} is removed when the container exits", dir.display());
    b.ok(&["rm", "bomb"]);
}

#[test]
fn ulimits_reach_the_process() {
    let Some((_reg, b, image)) = setup() else { return };
    let o = b.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "--ulimit",
        "nproc=50",
        "--ulimit",
        "core=-1",
        &image,
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn; grep -E 'Max (processes|core file size)' /proc/self/limits",
    ]);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(&lines[..2], &["100", "200"], "{o}");
    assert!(
        o.contains("Max core file size        unlimited            unlimited"),
        "{o}"
    );
    assert!(
        o.lines().any(|l| l.starts_with("Max processes") && l.contains(" 50 ")),
        "{o}"
    );
}

fn percent(s: &str) -> f64 {
    s.trim()
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("a percentage: {s:?}"))
}

#[test]
fn cpus_quota_and_stats_of_busy_containers() {
    let Some((_reg, b, image)) = setup() else { return };
    let busy = "sleep 300 & sleep 300 & while :; do :; done";
    b.ok(&[
        "run", "-d", "--name", "free", "--memory", "64m", &image, "sh", "-c", busy,
    ]);
    b.ok(&[
        "run", "-d", "--name", "capped", "--cpus", "0.25", &image, "sh", "-c", busy,
    ]);
    let pid = inspect(&b, "capped", "{{.State.Pid}}");
    let cpu = cgroup_dir(&pid, "cpu");
    if v1() {
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "25000");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
    } else {
        assert_eq!(read(&cpu.join("cpu.max")), "25000 100000");
    }
    // Both loops have started their sleeps and used the CPU before stats looks.
    for name in ["free", "capped"] {
        let pid = inspect(&b, name, "{{.State.Pid}}");
        let pids = cgroup_dir(&pid, "pids").join("pids.current");
        wait_until(&format!("{name} to run its three processes"), || read(&pids) == "3");
        wait_until(&format!("{name} to use the CPU"), || cpu_usage_us(&pid) > 50_000);
    }

    let table = b.ok(&["stats", "--no-stream"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .filter(|s| !s.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ],
        "{table}"
    );
    assert_eq!(lines.count(), 2, "both running containers: {table}");

    let fields = |name: &str| -> Vec<String> {
        b.ok(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.NetIO}}|{{.BlockIO}}|{{.PIDs}}",
            name,
        ])
        .trim()
        .split('|')
        .map(str::to_string)
        .collect()
    };
    let free = fields("free");
    eprintln!("stats of free: {free:?}");
    assert_eq!(free[0], "free");
    // A whole core when the machine is idle; other tests share the two cores.
    assert!(percent(&free[1]) > 15.0, "a busy loop with no limit: {free:?}");
    let (usage, limit) = free[2].split_once(" / ").unwrap();
    assert_eq!(limit, "64MiB", "{free:?}");
    assert!(
        usage != "0B" && (usage.ends_with("KiB") || usage.ends_with("MiB")),
        "{free:?}"
    );
    let mem_pct = percent(&free[3]);
    assert!(mem_pct > 0.0 && mem_pct < 100.0, "{free:?}");
    assert_eq!(free[4], "0B / 0B", "no interface but lo: {free:?}");
    assert_eq!(free[6], "3", "sh and two sleeps: {free:?}");

    let capped = fields("capped");
    eprintln!("stats of capped: {capped:?}");
    assert!(percent(&capped[1]) <= 35.0, "--cpus 0.25 caps a busy loop: {capped:?}");
    assert!(percent(&capped[1]) > 5.0, "but it runs: {capped:?}");
    assert!(
        capped[2].ends_with("GiB") || capped[2].ends_with("MiB"),
        "the host's memory as the limit: {capped:?}"
    );

    let json = b.ok(&["stats", "--no-stream", "--format", "json", "free"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["Name"], "free");
    assert_eq!(v["PIDs"], "3");
    b.ok(&["rm", "-f", "free", "capped"]);
}

#[test]
fn stop_kill_and_rm_kill_every_process_of_the_cgroup() {
    let Some((_reg, b, image)) = setup() else { return };
    for (name, how) in [("stopped", "stop"), ("killed", "kill"), ("removed", "rm")] {
        // An orphan in its own session inside; a host process moved into the cgroup from outside.
        let script = "setsid sh -c 'trap \"\" TERM; sleep 1000' & exec sleep 1000";
        b.ok(&["run", "-d", "--name", name, &image, "sh", "-c", script]);
        let pid = inspect(&b, name, "{{.State.Pid}}");
        let dir = cgroup_dir(&pid, "pids");
        wait_until("the orphan", || read(&dir.join("cgroup.procs")).lines().count() >= 2);
        let mut outsider = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        std::fs::write(dir.join("cgroup.procs"), outsider.id().to_string()).unwrap();
        let inside: Vec<String> = read(&dir.join("cgroup.procs")).lines().map(str::to_string).collect();
        assert!(inside.len() >= 3, "{inside:?}");
        match how {
            "stop" => b.ok(&["stop", "-t", "1", name]),
            "kill" => b.ok(&["kill", name]),
            _ => b.ok(&["rm", "-f", name]),
        };
        let status = outsider.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{how}: the process outside the PID namespace was killed too"
        );
        wait_until("every process to go", || {
            inside.iter().all(|p| {
                !Path::new(&format!("/proc/{p}")).exists()
                    || std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| s.contains(") Z "))
            })
        });
        wait_until("the cgroup to go", || !dir.exists());
        if how != "rm" {
            b.ok(&["rm", name]);
        }
    }
}

#[test]
fn the_same_bundle_gets_the_same_limits_under_runc() {
    let Some((_reg, b, image)) = setup() else { return };
    if !require_root_and(&["runc"]) {
        return;
    }
    let flags = [
        "--memory",
        "48m",
        "--pids-limit",
        "30",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
    ];
    let limits_of = |pid: &str| {
        let mem = memory_limit(&cgroup_dir(pid, "memory"));
        let pids = read(&cgroup_dir(pid, "pids").join("pids.max"));
        let cpu = cgroup_dir(pid, "cpu");
        let (quota, weight) = if v1() {
            (read(&cpu.join("cpu.cfs_quota_us")), read(&cpu.join("cpu.shares")))
        } else {
            (read(&cpu.join("cpu.max")), read(&cpu.join("cpu.weight")))
        };
        (mem, pids, quota, weight)
    };
    let mut args = vec!["run", "-d", "--name", "ours"];
    args.extend(flags);
    args.extend([image.as_str(), "sleep", "60"]);
    b.ok(&args);
    let ours = limits_of(&inspect(&b, "ours", "{{.State.Pid}}"));

    let mut args = vec!["run", "-d", "--runtime", "runc", "--name", "theirs"];
    args.extend(flags);
    args.extend([image.as_str(), "sleep", "60"]);
    b.ok(&args);
    // The recorded pid is `runc run`; the container's process is a child of one of its threads.
    let runc_pid = inspect(&b, "theirs", "{{.State.Pid}}");
    let mut child = String::new();
    wait_until("runc's container process", || {
        let tasks = std::fs::read_dir(format!("/proc/{runc_pid}/task")).unwrap();
        child = tasks
            .flatten()
            .flat_map(|t| {
                std::fs::read_to_string(t.path().join("children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .find(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep")))
            .unwrap_or_default();
        !child.is_empty()
    });
    let theirs = limits_of(&child);
    assert_eq!(ours, theirs, "the same limits from the same bundle");
    assert_eq!(ours.0, (48u64 << 20).to_string());
    assert_eq!(ours.1, "30");
    if v1() {
        assert_eq!((ours.2.as_str(), ours.3.as_str()), ("50000", "512"));
    }
    b.ok(&["rm", "-f", "ours", "theirs"]);
}
