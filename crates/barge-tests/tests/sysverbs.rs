//! `update`, `system df` and `system prune` through the real binary, as
//! docker 20.10 gives them: limits changed in a running container's cgroup
//! and kept for its next start, a restart policy its monitor follows, the
//! disk-use table, and every prune at once.

use barge_tests::image::{busybox_image, busybox_store};
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, stderr_of as err, stdout_of as out, wait_until, Barge, User};
use std::path::PathBuf;
use std::time::Duration;

fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

/// `run -d --name NAME FLAGS… IMAGE CMD…`.
fn detached(b: &Barge, image: &str, name: &str, flags: &[&str], cmd: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(flags);
    args.push(image);
    args.extend_from_slice(cmd);
    b.ok(&args);
}

fn inspect(b: &Barge, c: &str, field: &str) -> String {
    b.ok(&["inspect", "--format", field, c]).trim().to_string()
}

/// The running container's cgroup as its record names it: whether it is
/// v2, and the directory with `controller`'s files. The container's main
/// process must be in it.
fn cgroup(b: &Barge, c: &str, controller: &str) -> (bool, PathBuf) {
    let id = inspect(b, c, "{{.Id}}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.root().join("containers").join(&id).join("cgroup.json")).unwrap())
            .unwrap();
    let v2 = record["v2"].as_bool().unwrap();
    let dirs = record["dirs"].as_array().unwrap();
    let dir = dirs
        .iter()
        .find(|d| v2 || d[0].as_str().unwrap().split(',').any(|x| x == controller))
        .map(|d| PathBuf::from(d[1].as_str().unwrap()))
        .unwrap_or_else(|| panic!("no {controller} cgroup in {record}"));
    let pid = inspect(b, c, "{{.State.Pid}}");
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|p| p == pid), "{pid} in {}", dir.display());
    (v2, dir)
}

fn file(b: &Barge, c: &str, controller: &str, v1: &str, v2: &str) -> String {
    let (is_v2, dir) = cgroup(b, c, controller);
    let path = dir.join(if is_v2 { v2 } else { v1 });
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

const MB: u64 = 1 << 20;

#[test]
fn update_takes_effect_in_the_running_cgroup_and_at_the_next_start() {
    let Some((_reg, b, image)) = setup() else { return };
    detached(
        &b,
        &image,
        "up",
        &["-m", "32m", "--pids-limit", "10"],
        &["sleep", "600"],
    );
    let before = cgroup(&b, "up", "memory").1;
    assert_eq!(
        b.ok(&[
            "update",
            "-m",
            "96m",
            "--memory-swap",
            "192m",
            "--memory-reservation",
            "16m",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "20",
            "up"
        ]),
        "up\n"
    );
    // v1: the memory limit goes above the old memory+swap (64m) only after the new one.
    assert_eq!(
        cgroup(&b, "up", "memory").1,
        before,
        "the same cgroup, changed in place"
    );
    let check = |b: &Barge| {
        assert_eq!(
            file(b, "up", "memory", "memory.limit_in_bytes", "memory.max"),
            (96 * MB).to_string()
        );
        let (v2, dir) = cgroup(b, "up", "memory");
        if v2 {
            assert_eq!(
                file(b, "up", "memory", "", "memory.swap.max"),
                (96 * MB).to_string(),
                "v2: swap beyond memory"
            );
        } else if dir.join("memory.memsw.limit_in_bytes").exists() {
            assert_eq!(
                file(b, "up", "memory", "memory.memsw.limit_in_bytes", ""),
                (192 * MB).to_string()
            );
        }
        assert_eq!(
            file(b, "up", "memory", "memory.soft_limit_in_bytes", "memory.low"),
            (16 * MB).to_string()
        );
        assert_eq!(file(b, "up", "pids", "pids.max", "pids.max"), "20");
        if v2 {
            assert_eq!(file(b, "up", "cpu", "", "cpu.max"), "50000 100000");
        } else {
            assert_eq!(file(b, "up", "cpu", "cpu.cfs_quota_us", ""), "50000");
            assert_eq!(file(b, "up", "cpu", "cpu.shares", ""), "512");
        }
    };
    check(&b);
    assert_eq!(
        inspect(
            &b,
            "up",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}}"
        ),
        format!("{} {} 500000000 512 20", 96 * MB, 192 * MB)
    );
    // Kept for the next start.
    b.ok(&["stop", "-t", "0", "up"]);
    b.ok(&["start", "up"]);
    check(&b);

    // docker's messages; nothing changes on a refusal.
    let e = b.fails(&["update", "-m", "256m", "up"]);
    assert!(
        e.contains(
            "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
        ),
        "{e}"
    );
    let e = b.fails(&["update", "--memory-swap", "32m", "up"]);
    assert!(
        e.contains("Minimum memoryswap limit should be larger than memory limit"),
        "{e}"
    );
    let e = b.fails(&["update", "-m", "1m", "--memory-swap", "2m", "up"]);
    assert!(e.contains("Minimum memory limit allowed is 6MB"), "{e}");
    assert_eq!(inspect(&b, "up", "{{.HostConfig.Memory}}"), (96 * MB).to_string());
    let e = b.fails(&["update", "up"]);
    assert!(
        e.contains("you must provide one or more flags when using this command"),
        "{e}"
    );
    // Each container in turn: one that does not exist fails, the others are done.
    let o = b.run(&["update", "--pids-limit", "-1", "nosuch", "up"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out(&o), "up\n");
    assert!(err(&o).contains("nosuch"), "{}", err(&o));
    assert_eq!(file(&b, "up", "pids", "pids.max", "pids.max"), "max");
    assert_eq!(inspect(&b, "up", "{{json .HostConfig.PidsLimit}}"), "null");
    b.ok(&["rm", "-f", "up"]);
}

#[test]
fn a_memory_limit_below_what_is_in_use_is_refused() {
    let Some((_reg, b, image)) = setup() else { return };
    // 24 MB of tmpfs pages, charged to the container and not reclaimable.
    detached(
        &b,
        &image,
        "full",
        &["-m", "64m", "--memory-swap", "64m"],
        &[
            "sh",
            "-c",
            "head -c 24m /dev/zero > /dev/shm/fill && echo ready && sleep 600",
        ],
    );
    wait_until("filled", || b.ok(&["logs", "full"]).contains("ready"));
    let (v2, _) = cgroup(&b, "full", "memory");
    if v2 {
        // v2 takes any memory.max and reclaims (or OOM-kills) instead: nothing to refuse.
        b.ok(&["rm", "-f", "full"]);
        return;
    }
    let e = b.fails(&["update", "-m", "8m", "--memory-swap", "8m", "full"]);
    assert!(
        e.contains("unable to set memory limit to 8388608 (current usage: "),
        "{e}"
    );
    assert_eq!(
        inspect(&b, "full", "{{.HostConfig.Memory}}"),
        (64 * MB).to_string(),
        "kept"
    );
    assert_eq!(inspect(&b, "full", "{{.State.Status}}"), "running");
    b.ok(&["rm", "-f", "full"]);
}

#[test]
fn a_stopped_container_keeps_the_update_for_its_start() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&["create", "--name", "later", &image, "sleep", "600"]);
    assert_eq!(b.ok(&["update", "--pids-limit", "7", "-m", "48m", "later"]), "later\n");
    assert_eq!(inspect(&b, "later", "{{.HostConfig.PidsLimit}}"), "7");
    assert!(!b
        .root()
        .join("containers")
        .join(inspect(&b, "later", "{{.Id}}"))
        .join("cgroup.json")
        .exists());
    b.ok(&["start", "later"]);
    assert_eq!(file(&b, "later", "pids", "pids.max", "pids.max"), "7");
    assert_eq!(
        file(&b, "later", "memory", "memory.limit_in_bytes", "memory.max"),
        (48 * MB).to_string()
    );
    b.ok(&["rm", "-f", "later"]);
}

#[test]
fn a_running_monitor_follows_an_updated_restart_policy() {
    let Some((_reg, b, image)) = setup() else { return };
    // Created without a policy; fails once it is told to.
    detached(
        &b,
        &image,
        "flaky",
        &[],
        &["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 3"],
    );
    assert_eq!(b.ok(&["update", "--restart", "on-failure:2", "flaky"]), "flaky\n");
    assert_eq!(
        inspect(&b, "flaky", "{{json .HostConfig.RestartPolicy}}"),
        r#"{"Name":"on-failure","MaximumRetryCount":2}"#
    );
    b.ok(&["exec", "flaky", "touch", "/tmp/go"]);
    wait_until("restarted twice, then exited", || {
        inspect(&b, "flaky", "{{.RestartCount}}") == "2" && inspect(&b, "flaky", "{{.State.Status}}") == "exited"
    });
    // And back to no: the next exit is the last.
    b.ok(&["rm", "-f", "flaky"]);
    detached(&b, &image, "loop", &["--restart", "always"], &["sh", "-c", "sleep 0.5"]);
    wait_until("restarted", || inspect(&b, "loop", "{{.RestartCount}}") != "0");
    b.ok(&["update", "--restart", "no", "loop"]);
    wait_until("exited", || inspect(&b, "loop", "{{.State.Status}}") == "exited");
    let count = inspect(&b, "loop", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(inspect(&b, "loop", "{{.RestartCount}}"), count, "no restart after 'no'");
    assert_eq!(inspect(&b, "loop", "{{.State.Status}}"), "exited");

    let e = b.fails(&["update", "--restart", "sometimes", "loop"]);
    assert!(e.contains("invalid restart policy 'sometimes'"), "{e}");
    detached(&b, &image, "gone", &["--rm"], &["sleep", "600"]);
    let e = b.fails(&["update", "--restart", "always", "gone"]);
    assert!(
        e.contains("Restart policy cannot be updated because AutoRemove is enabled for the container"),
        "{e}"
    );
    b.ok(&["rm", "loop"]);
    // Its monitor removes it once it is killed.
    let _ = b.run(&["rm", "-f", "gone"]);
}

#[test]
fn rootless_update_says_what_a_user_is_missing() {
    if !require_root_and(&["docker-registry", "umoci", "skopeo", "runuser", "useradd", "newuidmap"]) {
        return;
    }
    let user = User::ensure("barge-rootless", Some(600000));
    let reg = Registry::anonymous();
    busybox_image(&reg, "busybox", "latest", &[], |_| {});
    let b = Barge::as_user(&user);
    let image = format!("{}/busybox", reg.host());
    b.ok(&["pull", "-q", &image]);
    b.ok(&["create", "--name", "mine", &image, "true"]);
    for flag in ["--memory", "--cpus", "--pids-limit"] {
        let value = if flag == "--cpus" { "0.5" } else { "64m" };
        let value = if flag == "--pids-limit" { "20" } else { value };
        let e = b.fails(&["update", flag, value, "mine"]);
        assert!(
            e.contains(flag) && e.contains("cgroup v2") && e.contains("delegated"),
            "{e}"
        );
        assert_eq!(e.trim().lines().count(), 1, "{e}");
    }
    // The policy needs no cgroup.
    assert_eq!(b.ok(&["update", "--restart", "always", "mine"]), "mine\n");
    b.ok(&["rm", "mine"]);
}

/// `system df --format` rows as (TYPE, TOTAL, ACTIVE, SIZE, RECLAIMABLE).
fn df(b: &Barge) -> Vec<Vec<String>> {
    b.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}|{{.Reclaimable}}",
    ])
    .lines()
    .map(|l| l.split('|').map(str::to_string).collect())
    .collect()
}

/// An image built on `image` with one more layer of `kb` kB: it shares
/// every layer of `image`, and leaves a build cache entry and a cache
/// mount of 100 kB.
fn build_on(b: &Barge, image: &str, tag: &str, kb: u32) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {image}\nRUN head -c {kb}000 /dev/urandom > /grown\n\
             RUN --mount=type=cache,target=/cache head -c 100000 /dev/urandom > /cache/x\n"
        ),
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", tag, ctx.path().to_str().unwrap()]);
}

#[test]
fn system_df_counts_shared_layers_once_and_what_is_reclaimable() {
    let Some((_reg, b, image)) = setup() else { return };
    let summary = b.ok(&["system", "df"]);
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(
        lines[0], "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE",
        "{summary}"
    );
    assert!(
        lines[1].starts_with("Images          1         0         "),
        "{summary}"
    );
    assert!(
        lines[4].starts_with("Build Cache     0         0         0B"),
        "{summary}"
    );
    let base = b.ok(&["images", "--format", "{{.Size}}", &image]).trim().to_string();
    assert_eq!(df(&b)[0], ["Images", "1", "0", &base, &format!("{base} (100%)")]);

    build_on(&b, &image, "grown:1", 500);
    let grown = b.ok(&["images", "--format", "{{.Size}}", "grown:1"]).trim().to_string();
    let rows = df(&b);
    // The base's layers once: the two images take what the bigger one does.
    assert_eq!(rows[0][..4], ["Images", "2", "0", grown.as_str()], "{rows:?}");
    assert_eq!(rows[3][0], "Build Cache");
    assert_eq!(
        rows[3][1], "3",
        "the two RUN steps' layers and the cache mount: {rows:?}"
    );

    // Containers: a running one writes 300 kB, a stopped one 700 kB.
    detached(
        &b,
        &image,
        "busy",
        &[],
        &["sh", "-c", "head -c 300000 /dev/urandom > /f; sleep 600"],
    );
    b.ok(&[
        "run",
        "--name",
        "done",
        &image,
        "sh",
        "-c",
        "head -c 700000 /dev/urandom > /f",
    ]);
    wait_until("written", || b.ok(&["exec", "busy", "ls", "/"]).contains('f'));
    // Volumes: one mounted (200 kB), one not (600 kB).
    let vols = b.root().join("volumes");
    for (name, bytes) in [("kept", 200_000), ("spare", 600_000)] {
        b.ok(&["volume", "create", name]);
        std::fs::write(vols.join(name).join("_data/blob"), vec![7u8; bytes]).unwrap();
    }
    let kept = "kept:/data";
    detached(&b, &image, "mounted", &["-v", kept], &["sleep", "600"]);
    let rows = df(&b);
    assert_eq!(rows[0][..3], ["Images", "2", "1"], "{rows:?}");
    assert_eq!(rows[1][..3], ["Containers", "3", "2"], "{rows:?}");
    // Only the stopped container's 700 kB of the 1 MB written is reclaimable.
    assert_eq!(rows[1][3..], ["1MB", "700kB (70%)"], "{rows:?}");
    assert_eq!(rows[2], ["Local Volumes", "2", "1", "800kB", "600kB (75%)"], "{rows:?}");
    // docker counts the unique bytes of images in use as used: busybox
    // has none (grown:1 shares all its layers), so all is reclaimable.
    assert_eq!(rows[0][3..], [grown.clone(), format!("{grown} (100%)")], "{rows:?}");
    // The cached layer is grown:1's: shared, so only the cache mount counts.
    assert_eq!(rows[3][2..], ["0", "100kB", "100kB"], "{rows:?}");

    let v = b.ok(&["system", "df", "-v"]);
    for section in [
        "Images space usage:\n\nREPOSITORY ",
        "\nContainers space usage:\n\nCONTAINER ID   IMAGE",
        "\nLocal Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\n",
        "\nBuild cache usage: ",
        "CACHE ID       CACHE TYPE",
    ] {
        assert!(v.contains(section), "{section:?} in\n{v}");
    }
    let busybox_row = v
        .lines()
        .find(|l| l.contains("busybox"))
        .unwrap_or_else(|| panic!("{v}"));
    let cells: Vec<&str> = busybox_row.split_whitespace().collect();
    assert_eq!(cells[1], "latest", "{busybox_row}");
    assert_eq!(cells.last(), Some(&"3"), "three containers: {busybox_row}");
    assert!(v.contains("kept          1         "), "{v}");
    assert!(v.lines().any(|l| l.contains("regular") && l.ends_with("true")), "{v}");
    assert!(v.contains("\nBuild cache usage: 100kB\n"), "{v}");
    assert!(
        v.lines()
            .any(|l| l.contains("exec.cachemount") && l.contains("100kB") && l.ends_with("false")),
        "{v}"
    );
    let e = b.fails(&["system", "df", "-v", "--format", "{{.Type}}"]);
    assert!(e.contains("--format"), "{e}");
    b.ok(&["rm", "-f", "busy", "done", "mounted"]);
}

#[test]
fn system_prune_asks_then_runs_every_prune() {
    let Some((_reg, b, image)) = setup() else { return };
    build_on(&b, &image, "grown:1", 100);
    let old = inspect(&b, "grown:1", "{{.Id}}");
    // Built again with other bytes: the first image is left dangling.
    build_on(&b, &image, "grown:1", 200);
    detached(&b, &image, "busy", &[], &["sleep", "600"]);
    b.ok(&["run", "--name", "done", &image, "true"]);
    let done = inspect(&b, "done", "{{.Id}}");
    b.ok(&["network", "create", "spare"]);
    let vols = b.root().join("volumes");
    for name in ["kept", "spare"] {
        b.ok(&["volume", "create", name]);
        std::fs::write(vols.join(name).join("_data/blob"), vec![1u8; 300_000]).unwrap();
    }

    // No: nothing goes.
    let o = b.run_with_stdin(&["system", "prune", "--volumes"], "n\n");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        err(&o),
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  \
         - all volumes not used by at least one container\n  - all dangling images\n  - all dangling build cache\n\n\
         Are you sure you want to continue? [y/N] \n"
    );
    assert_eq!(out(&o), "");
    assert!(b.ok(&["ps", "-aq"]).lines().count() == 2);

    // A filter that keeps everything younger than an hour: nothing goes either.
    let o = b.run_with_stdin(&["system", "prune", "--filter", "until=1h"], "y\n");
    assert!(
        err(&o).contains("\n\n  Items to be pruned will be filtered with:\n  - until=1h\n\nAre you sure"),
        "{}",
        err(&o)
    );
    assert_eq!(out(&o), "Total reclaimed space: 0B\n");
    let e = b.fails(&["system", "prune", "-f", "--filter", "bogus=1"]);
    assert!(e.contains("invalid filter 'bogus'"), "{e}");

    // Yes: each prune's report in docker's order, then the total.
    b.ok(&["rm", "-f", "busy"]);
    detached(&b, &image, "busy", &["-v", "kept:/data"], &["sleep", "600"]);
    let o = b.run_with_stdin(&["system", "prune", "--volumes"], "y\n");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    let sections: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(sections[0], format!("Deleted Containers:\n{done}"), "{text}");
    assert_eq!(sections[1], "Deleted Networks:\nspare", "{text}");
    assert_eq!(sections[2], "Deleted Volumes:\nspare", "{text}");
    assert!(
        sections[3].starts_with("Deleted Images:\n") && sections[3].contains(&format!("deleted: {old}")),
        "{text}"
    );
    assert!(sections[4].starts_with("Deleted build cache objects:\n"), "{text}");
    let total = sections[5]
        .strip_prefix("Total reclaimed space: ")
        .unwrap_or_else(|| panic!("{text}"));
    assert_ne!(total.trim(), "0B", "{text}");
    assert_eq!(b.ok(&["ps", "-a", "--format", "{{.Names}}"]), "busy\n");
    assert!(!b.ok(&["network", "ls"]).contains("spare"));
    assert!(vols.join("kept/_data/blob").exists() && !vols.join("spare").exists());
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 2, "busybox and grown:1 stay");

    // -a: every image without a container and all build cache.
    let o = b.ok(&["system", "prune", "-a", "-f"]);
    assert!(o.contains("untagged: grown:1\n"), "{o}");
    assert!(!o.contains("Deleted Containers"), "{o}");
    assert_eq!(b.ok(&["images", "--format", "{{.Repository}}"]).lines().count(), 1);
    let rows = df(&b);
    assert_eq!(rows[3][..2], ["Build Cache", "0"], "{rows:?}");
    b.ok(&["rm", "-f", "busy"]);
}

#[test]
fn update_reaches_a_container_runc_runs() {
    let Some((_reg, b, image)) = busybox_store(&["runc"], &[], |_| {}) else {
        return;
    };
    detached(
        &b,
        &image,
        "theirs",
        &["--runtime", "runc", "-m", "32m"],
        &["sleep", "600"],
    );
    let id = inspect(&b, "theirs", "{{.Id}}");
    // runc's own record of the container's process, and the cgroup it made.
    let state_dir = b.root().join("runc");
    let memory_limit = || {
        let state = barge_tests::run_ok(
            std::process::Command::new("runc")
                .arg("--root")
                .arg(&state_dir)
                .args(["state", &id]),
        );
        let pid = serde_json::from_str::<serde_json::Value>(&state).unwrap()["pid"].clone();
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let line = |want: &dyn Fn(&str) -> bool| {
            cgroups.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                want(controllers).then(|| path.trim_start_matches('/').to_string())
            })
        };
        let file = match line(&|c| c.split(',').any(|x| x == "memory")) {
            Some(path) => PathBuf::from("/sys/fs/cgroup/memory")
                .join(path)
                .join("memory.limit_in_bytes"),
            None => PathBuf::from("/sys/fs/cgroup")
                .join(line(&|c| c.is_empty()).unwrap())
                .join("memory.max"),
        };
        std::fs::read_to_string(&file).unwrap().trim().to_string()
    };
    wait_until("runc started it", || {
        std::process::Command::new("runc")
            .arg("--root")
            .arg(&state_dir)
            .args(["state", &id])
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("\"running\""))
    });
    assert_eq!(memory_limit(), (32 * MB).to_string());
    assert_eq!(
        b.ok(&["update", "-m", "96m", "--memory-swap", "192m", "theirs"]),
        "theirs\n"
    );
    assert_eq!(memory_limit(), (96 * MB).to_string());
    assert_eq!(inspect(&b, "theirs", "{{.HostConfig.Memory}}"), (96 * MB).to_string());
    b.ok(&["rm", "-f", "theirs"]);
}
