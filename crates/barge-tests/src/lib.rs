//! The end-to-end test harness: real registries and peer tools on loopback.
//!
//! - [`registry::Registry`] runs Debian's `docker-registry` on a free port,
//!   anonymous, with htpasswd Basic auth, with token auth (trusting the
//!   harness's own [`token::TokenServer`]), or over TLS.
//! - [`image`] builds layers, configs, manifests and indexes byte for byte
//!   and pushes them over HTTP, or has umoci and skopeo make them.
//! - [`proxy::SlowProxy`] throttles a registry to interrupt pulls mid-blob.
//! - [`Barge`] runs the real binary against a private store.
//!
//! Nothing here uses barge's own crates: the tests must not share bugs
//! with the code they test.
#![forbid(unsafe_code)]

pub mod canned;
pub mod fault;
pub mod image;
pub mod limit;
pub mod proxy;
pub mod rawtar;
pub mod registry;
pub mod server;
pub mod token;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Is this a CI run, where a missing prerequisite is a failure?
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Checks a prerequisite. Outside CI a missing one skips the test (returns
/// false, with a note); in CI it fails the test.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("prerequisite missing in CI: {what}");
    }
    eprintln!("SKIPPED: prerequisite missing: {what}");
    false
}

pub fn have_tool(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `require` for the usual set: root and the named tools.
pub fn require_root_and(tools: &[&str]) -> bool {
    require("running as root", is_root()) && tools.iter().all(|t| require(&format!("the {t} command"), have_tool(t)))
}

/// The barge binary: `$BARGE_BIN`, else `target/<profile>/barge` next to this test.
pub fn barge_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BARGE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/barge
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("barge"))
        .expect("target directory");
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build --bin barge`",
        bin.display()
    );
    bin
}

/// A barge store and config directory private to one test.
pub struct Barge {
    pub dir: tempfile::TempDir,
    /// Runs barge as this user (through `runuser`), with XDG directories
    /// of its own under `dir`: rootless barge.
    pub user: Option<User>,
}

/// An unprivileged user of the host, for rootless tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The first of its 65536 subordinate IDs, if it has a range.
    pub subordinate: Option<u32>,
}

impl User {
    /// The user `name`, made (`useradd`) if missing, with exactly the
    /// subordinate range `start`..`start`+65536 in `/etc/subuid` and
    /// `/etc/subgid` (none if `start` is `None`). Idempotent; needs root.
    pub fn ensure(name: &str, start: Option<u32>) -> User {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let id = |flag: &str| {
            Command::new("id")
                .args([flag, name])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().ok())
        };
        if id("-u").is_none() {
            let st = Command::new("useradd").args(["-m", name]).status().expect("useradd");
            // 9: made meanwhile by another test process.
            assert!(st.success() || st.code() == Some(9), "useradd {name}: {st}");
        }
        for file in ["/etc/subuid", "/etc/subgid"] {
            let old = std::fs::read_to_string(file).unwrap_or_default();
            let mut lines: Vec<String> = old
                .lines()
                .filter(|l| l.split(':').next() != Some(name))
                .map(str::to_string)
                .collect();
            if let Some(start) = start {
                lines.push(format!("{name}:{start}:65536"));
            }
            let mut new = lines.join("\n");
            if !new.is_empty() {
                new.push('\n');
            }
            if new != old {
                // Atomically: newuidmap may be reading it for another test.
                let tmp = format!("{file}.barge-tests");
                std::fs::write(&tmp, new).expect(file);
                std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect(file);
                std::fs::rename(&tmp, file).expect(file);
            }
        }
        User {
            name: name.to_string(),
            uid: id("-u").expect("the user's uid"),
            gid: id("-g").expect("the user's gid"),
            subordinate: start,
        }
    }

    /// Makes `path` (recursively) the user's.
    pub fn give(&self, path: &Path) {
        run_ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{}:{}", self.uid, self.gid))
                .arg(path),
        );
    }
}

impl Default for Barge {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Barge {
    /// A test that failed halfway leaves containers running: they, their
    /// network namespaces and cgroups must not outlive the store.
    fn drop(&mut self) {
        let containers = self.root().join("containers");
        let any = std::fs::read_dir(&containers)
            .map(|rd| rd.flatten().any(|e| e.path().join("meta.json").is_file()))
            .unwrap_or(false);
        if any {
            let ids = String::from_utf8_lossy(&self.run(&["ps", "-aq", "--no-trunc"]).stdout).into_owned();
            let mut args = vec!["rm", "-f"];
            args.extend(ids.lines().filter(|l| !l.is_empty()));
            if args.len() > 2 {
                let _ = self.run(&args);
            }
        }
        if let Some(pid) = self.pause_pid().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Barge {
    pub fn new() -> Barge {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("docker")).expect("docker config dir");
        std::fs::create_dir_all(dir.path().join("barge-config")).expect("barge config dir");
        Barge { dir, user: None }
    }

    /// A store whose root path is about `len` characters long, as a
    /// deep data directory on a real host would be.
    pub fn with_long_root(len: usize) -> Barge {
        let base = std::env::temp_dir();
        let pad = len
            .saturating_sub(base.as_os_str().len() + "/XXXXXX/store".len())
            .max(1);
        let dir = tempfile::Builder::new()
            .prefix(&"d".repeat(pad))
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("docker")).expect("docker config dir");
        std::fs::create_dir_all(dir.path().join("barge-config")).expect("barge config dir");
        Barge { dir, user: None }
    }

    /// A store of `user`'s: barge runs as that user through `runuser`,
    /// with `HOME`, `XDG_DATA_HOME`, `XDG_CONFIG_HOME` and
    /// `XDG_RUNTIME_DIR` of its own under the test's directory (so each
    /// such store has its own pause process, stopped on drop).
    pub fn as_user(user: &User) -> Barge {
        let mut b = Barge::new();
        for d in ["home", "data", "config", "run"] {
            std::fs::create_dir_all(b.dir.path().join(d)).expect("user dir");
        }
        user.give(b.dir.path());
        run_ok(Command::new("chmod").arg("0700").arg(b.dir.path().join("run")));
        // The temp dir itself is root's 0700: the user needs to get in.
        run_ok(Command::new("chmod").arg("0755").arg(b.dir.path()));
        b.user = Some(user.clone());
        b
    }

    /// The rootless pause process of this store's user, if one runs.
    pub fn pause_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir.path().join("run/barge/pause.pid")).ok()?;
        text.trim().parse().ok()
    }

    pub fn root(&self) -> PathBuf {
        match self.user {
            Some(_) => self.dir.path().join("data/barge"),
            None => self.dir.path().join("store"),
        }
    }

    /// The docker config directory (`--config`).
    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    pub fn command(&self) -> Command {
        self.command_of(&barge_bin())
    }

    /// [`Self::command`] with another barge binary (a copy, an older build).
    pub fn command_of(&self, bin: &Path) -> Command {
        if let Some(user) = &self.user {
            let d = self.dir.path();
            let mut c = Command::new("runuser");
            c.args(["-u", &user.name, "--", "env", "-u", "BARGE_ROOT", "-u", "BARGE_CONFIG"])
                .arg(format!("HOME={}", d.join("home").display()))
                .arg(format!("XDG_DATA_HOME={}", d.join("data").display()))
                .arg(format!("XDG_CONFIG_HOME={}", d.join("config").display()))
                .arg(format!("XDG_RUNTIME_DIR={}", d.join("run").display()))
                .arg(bin)
                .arg("--config")
                .arg(self.docker_config());
            c.current_dir("/");
            return c;
        }
        let mut c = Command::new(bin);
        c.arg("--root")
            .arg(self.root())
            .arg("--config")
            .arg(self.docker_config());
        c.env("BARGE_CONFIG", self.dir.path().join("barge-config"));
        c.env_remove("BARGE_ROOT");
        c
    }

    /// barge on a pseudo-terminal (script(1)), with `args` as a shell
    /// would split them: its output is what a user would see.
    pub fn on_terminal(&self, args: &str) -> Command {
        let shell = format!(
            "{} --root {} --config {} {args}",
            barge_bin().display(),
            self.root().display(),
            self.docker_config().display()
        );
        let mut c = Command::new("script");
        c.args(["-qec", &shell, "/dev/null"]);
        c.env("BARGE_CONFIG", self.dir.path().join("barge-config"));
        c
    }

    /// `barge run --rm FLAGS IMAGE sh -c SCRIPT`, asserting success; returns stdout.
    pub fn sh(&self, image: &str, flags: &[&str], script: &str) -> String {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[image, "sh", "-c", script]);
        self.ok(&args)
    }

    /// Runs barge with `args`; returns its output whatever the status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("running barge")
    }

    /// Runs barge and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "barge {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs barge and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "barge {args:?} should have failed:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The docker `config.json` barge uses, parsed (`{}` when absent).
    pub fn docker_config_json(&self) -> serde_json::Value {
        match std::fs::read(self.docker_config().join("config.json")) {
            Ok(b) => serde_json::from_slice(&b).expect("config.json is JSON"),
            Err(_) => serde_json::json!({}),
        }
    }

    /// Runs barge with `stdin` as its standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.run_with_input(args, stdin.as_bytes())
    }

    /// Runs barge with the bytes `input` as its standard input.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write as _;
        let mut child = self
            .command()
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running barge");
        // barge may exit without reading its input: a broken pipe is fine.
        let _ = child.stdin.take().expect("stdin").write_all(input);
        child.wait_with_output().expect("waiting for barge")
    }

    /// The store's OCI layout `index.json`.
    pub fn index(&self) -> serde_json::Value {
        let bytes = std::fs::read(self.root().join("oci/index.json")).expect("index.json");
        serde_json::from_slice(&bytes).expect("index.json is JSON")
    }
}

/// Waits (20 s at most, checking every 50 ms) until `cond` holds; fails
/// the test naming `what` otherwise.
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    wait_within(what, std::time::Duration::from_secs(20), cond)
}

/// [`wait_until`] with another limit than 20 s.
pub fn wait_within(what: &str, limit: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Reads `child`'s standard output until a line that is `line`, so the test
/// knows the child got that far; the reader holds the rest of the output.
pub fn read_past_line(child: &mut std::process::Child, line: &str) -> std::io::BufReader<std::process::ChildStdout> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let mut reader = std::io::BufReader::new(stdout);
    let mut seen = String::new();
    loop {
        let mut next = String::new();
        let n = reader.read_line(&mut next).expect("reading the child's output");
        assert!(n > 0, "the child's output ended before the line {line:?}:\n{seen}");
        if next.trim_end_matches('\n') == line {
            return reader;
        }
        seen.push_str(&next);
    }
}

/// The rest of a child's output after [`read_past_line`], once it has
/// exited successfully.
pub fn rest_of(child: &mut std::process::Child, reader: &mut std::io::BufReader<std::process::ChildStdout>) -> String {
    let mut rest = String::new();
    std::io::Read::read_to_string(reader, &mut rest).expect("reading the child's output");
    let status = child.wait().expect("waiting for the child");
    assert!(status.success(), "the child failed ({status}):\n{rest}");
    rest
}

/// Sends `signal` to the process `pid` (one the test started).
pub fn kill(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a process id is positive");
    rustix::process::kill_process(pid, signal).unwrap_or_else(|e| panic!("kill {pid:?}: {e}"));
}

/// Runs podman with its storage under `dir` (not the host's), as `run_ok`.
pub fn podman_in(dir: &Path, args: &[&str]) -> String {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(dir.join("podman"))
        .arg("--runroot")
        .arg(dir.join("podman-run"))
        .args(args);
    run_ok(&mut c)
}

/// Runs a command and asserts success; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `sha256:<hex>` of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(bytes);
    let mut s = String::from("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A directory with the harness's credential helper (`docker-credential-testhelper`),
/// to put first on PATH; the helper keeps its data in `store`.
pub fn test_helper_path(store: &Path) -> String {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("helpers");
    let _ = std::fs::create_dir_all(store);
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// One of this machine's IPv4 addresses that is not loopback.
pub fn external_ip() -> Option<String> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
        .map(str::to_string)
}

/// A process's standard output as text.
pub fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A process's standard error as text.
pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Incompressible bytes, the same for a given seed (xorshift).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The tags of a repository (`HOST/REPO`) as skopeo lists them, sorted.
pub fn skopeo_tags(repo: &str) -> Vec<String> {
    let out = run_ok(Command::new("skopeo").args(["list-tags", "--tls-verify=false", &format!("docker://{repo}")]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("skopeo list-tags JSON");
    let mut tags: Vec<String> = v["Tags"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}
