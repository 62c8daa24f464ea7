//! Crashes, concurrency and a full disk: afterwards `barge system check`
//! finds the store consistent, and running the command again completes.

use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::proxy::SlowProxy;
use barge_tests::registry::{Auth, Options, Registry, PASSWORD, USER};
use barge_tests::{noise, require_root_and, run_ok, Barge};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Three layers: a shared base and two of their own, `mib` MiB each.
fn image(seed: u64, mib: usize) -> Image {
    let layers = (0..3)
        .map(|i| {
            let s = if i == 0 { 1 } else { seed * 10 + i };
            LayerBuilder::new()
                .file(&format!("layer{i}/data"), &noise(mib << 20, s), 0o644)
                .file(&format!("layer{i}/small"), format!("{s}").as_bytes(), 0o600)
                .build(Compression::Gzip)
        })
        .collect();
    Image::new(layers, Style::Oci, Spec::default())
}

/// A small random generator; the seed is printed so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("BARGE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(42)
            });
        eprintln!("random seed (BARGE_TEST_SEED): {seed}");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `barge system check` passes (leftovers of interrupted work are fine).
fn assert_consistent(b: &Barge, after: &str) {
    let o = b.run(&["system", "check"]);
    assert!(o.status.success(), "after {after}, the store is damaged:\n{}", text(&o));
}

/// Starts `args`, kills it with SIGKILL after `delay`, waits for it.
fn kill_after(b: &Barge, args: &[&str], delay: Duration, stdin: Option<&str>) {
    let mut child = b
        .command()
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start barge");
    if let (Some(s), Some(mut input)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        let _ = input.write_all(s.as_bytes());
    }
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn system_check_finds_damage() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = image(1, 1);
    img.push(&reg, "app", "v1");
    let b = Barge::new();
    b.ok(&["pull", "-q", &format!("{}/app:v1", reg.host())]);
    let out = b.ok(&["system", "check"]);
    assert!(out.contains("no problems"), "{out}");

    // A flipped byte in a layer blob.
    let blob = b.root().join("oci/blobs/sha256").join(&img.layers[1].digest[7..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    // A snapshot without its completeness record.
    let chain = &img.layers[0].diff_id[7..];
    std::fs::remove_file(b.root().join("snapshots").join(chain).join("info.json")).unwrap();
    // A config that is gone.
    std::fs::remove_file(b.root().join("oci/blobs/sha256").join(&img.config_digest[7..])).unwrap();

    let o = b.run(&["system", "check"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("blob {}: its content hashes to", img.layers[1].digest)),
        "{out}"
    );
    assert!(out.contains("no completeness record"), "{out}");
    assert!(
        out.contains(&format!("config {} is missing", img.config_digest)),
        "{out}"
    );
    assert!(out.contains("3 problems") || out.contains("problems"), "{out}");
}

#[test]
fn kill_9_anywhere_leaves_a_consistent_store() {
    if !require_root_and(&["docker-registry", "busybox"]) {
        return;
    }
    let mut rng = Rng::new();
    let reg = Registry::start(Options {
        auth: Auth::Basic,
        ..Options::default()
    });
    let proxy = SlowProxy::start(&reg.host(), 6 << 20);
    proxy.set_upload_rate(6 << 20);
    let host = proxy.host();
    let (one, two) = (image(2, 1), image(3, 1));
    one.push(&reg, "one", "v1");
    two.push(&reg, "two", "v1");
    let b = Barge::new();
    let login = ["login", "-u", USER, "--password-stdin", host.as_str()];
    b.run_with_stdin(&login, PASSWORD);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    std::fs::write(ctx.path().join("data"), noise(1 << 20, 9)).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY data /data\nRUN cp /data /copy && rm /data\n",
    )
    .unwrap();
    let (one_ref, two_ref) = (format!("{host}/one:v1"), format!("{host}/two:v1"));
    let pushed = format!("{host}/pushed:v1");
    let context = ctx.path().to_str().unwrap().to_string();
    let started = Instant::now();
    for round in 0..6 {
        // Each operation killed at a random moment, then run again to the end.
        let ops: Vec<(&str, Vec<&str>, u64)> = vec![
            ("pull", vec!["pull", "-q", &one_ref], 700),
            ("pull of an overlapping image", vec!["pull", "-q", &two_ref], 700),
            ("tag", vec!["tag", &one_ref, &pushed], 15),
            ("push", vec!["push", "-q", &pushed], 700),
            ("build", vec!["build", "-q", "-t", "built:1", &context], 600),
            ("rmi", vec!["rmi", &two_ref], 15),
            ("image prune -a", vec!["image", "prune", "-a", "-f"], 30),
            ("login", login.to_vec(), 40),
        ];
        for (what, args, window) in ops {
            let delay = Duration::from_millis(rng.below(window));
            let stdin = (what == "login").then_some(PASSWORD);
            kill_after(&b, &args, delay, stdin);
            assert_consistent(&b, &format!("round {round}: {what} killed after {delay:?}"));
            let o = match stdin {
                Some(s) => b.run_with_stdin(&args, s),
                None => b.run(&args),
            };
            // rmi and prune may find nothing left to do; everything else must complete.
            let fine = o.status.success()
                || (what == "rmi" && text(&o).contains("No such image"))
                || (what == "push" && text(&o).contains("does not exist locally"));
            assert!(fine, "round {round}: {what} again after a kill: {}", text(&o));
            assert_consistent(&b, &format!("round {round}: {what} run again"));
            let config: serde_json::Value = serde_json::from_slice(
                &std::fs::read(b.docker_config().join("config.json")).unwrap_or_else(|_| b"{}".to_vec()),
            )
            .expect("config.json is never left half written");
            assert!(config.is_object());
        }
    }
    eprintln!("6 rounds of 8 killed operations in {:?}", started.elapsed());
    // What was pulled last is whole: it runs.
    b.ok(&["pull", "-q", &one_ref]);
    assert_consistent(&b, "the end");
}

#[test]
fn parallel_pulls_and_prunes_keep_the_store_consistent() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let images: Vec<Image> = (0..4).map(|i| image(20 + i, 1)).collect();
    for (i, img) in images.iter().enumerate() {
        img.push(&reg, &format!("app{i}"), "v1");
    }
    let b = Barge::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pruner = {
        let stop = stop.clone();
        let cmd = b.command();
        let program = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        let envs: Vec<_> = cmd
            .get_envs()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
            .collect();
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let o = Command::new(&program)
                    .args(&args)
                    .args(["image", "prune", "-a", "-f"])
                    .envs(envs.iter().map(|(k, v)| (k, v)))
                    .output()
                    .unwrap();
                if !o.status.success() && !text(&o).contains("in use") {
                    failures.push(text(&o));
                }
            }
            failures
        })
    };
    let pulls: Vec<_> = (0..8)
        .map(|i| {
            let mut c = b.command();
            c.args(["pull", "-q", &format!("{}/app{}:v1", reg.host(), i % 4)]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for p in pulls {
        let o = p.wait_with_output().unwrap();
        assert!(o.status.success() || text(&o).contains("in use"), "{}", text(&o));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let failures = pruner.join().unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert_consistent(&b, "parallel pulls and prunes");
    // And every image pulls to the end afterwards.
    for i in 0..4 {
        b.ok(&["pull", "-q", &format!("{}/app{i}:v1", reg.host())]);
    }
    assert_consistent(&b, "pulls after the prunes");
}

#[test]
fn a_full_disk_gives_a_clear_error_and_no_damage() {
    if !require_root_and(&["docker-registry", "mount"]) {
        return;
    }
    let reg = Registry::anonymous();
    let img = image(40, 4);
    img.push(&reg, "big", "v1");
    // The store itself on a 6 MiB tmpfs; the image needs 12 MiB.
    let b = Barge::new();
    let root = b.root();
    std::fs::create_dir_all(&root).unwrap();
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
            .arg(&root),
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(root.clone());
    let o = b.run(&["pull", &format!("{}/big:v1", reg.host())]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("Error:")).count(), 1, "{err}");
    assert_consistent(&b, "a pull that filled the disk");
    // No partial blob is visible: a layer blob there (one that fitted
    // before the disk filled) is whole and verified.
    for l in &img.layers {
        let path = root.join("oci/blobs/sha256").join(&l.digest[7..]);
        if let Ok(bytes) = std::fs::read(&path) {
            assert_eq!(barge_tests::sha256(&bytes), l.digest, "{} is whole", path.display());
        }
    }
    let partial: Vec<_> = std::fs::read_dir(root.join("oci/blobs/sha256"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        partial.iter().all(|n| n.to_string_lossy().len() == 64),
        "no temporary file among the blobs: {partial:?}"
    );
    let images = b.run(&["images", "-q"]);
    assert!(String::from_utf8_lossy(&images.stdout).trim().is_empty());
}
