//! `attach` and the detach keys: through the real binary, on a terminal
//! made by script(1) where docker would have one.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::{read_past_line, require, wait_until, Barge};
use barge_tests::{stderr_of as err, stdout_of as out};
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

fn inspect(b: &Barge, c: &str, field: &str) -> String {
    b.ok(&["inspect", "--format", field, c]).trim().to_string()
}

/// A command on a terminal (script(1)): what it shows, and its keyboard.
struct Screen {
    child: Child,
    keys: ChildStdin,
    shown: Arc<Mutex<String>>,
}

impl Screen {
    fn start(mut cmd: Command) -> Screen {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script(1)");
        let keys = child.stdin.take().expect("piped stdin");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let shown = Arc::new(Mutex::new(String::new()));
        let sink = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Screen { child, keys, shown }
    }

    fn text(&self) -> String {
        self.shown.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str) {
        let end = Instant::now() + Duration::from_secs(30);
        while !self.text().contains(what) {
            assert!(Instant::now() < end, "no {what:?} on the screen:\n{}", self.text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_(&mut self, keys: &[u8]) {
        self.keys.write_all(keys).expect("typing");
        self.keys.flush().expect("typing");
    }

    /// Its exit status, within 30 s.
    fn exit(mut self) -> (i32, String) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().expect("waiting") {
                std::thread::sleep(Duration::from_millis(200));
                return (st.code().unwrap_or(-1), self.text());
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("still running:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `barge attach ARGS…` with its stdio piped.
fn spawn_attach(b: &Barge, args: &[&str]) -> Child {
    b.command()
        .arg("attach")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("barge attach")
}

fn log_lines(b: &Barge, c: &str) -> usize {
    b.ok(&["logs", c]).lines().count()
}

#[test]
fn attach_shows_new_output_apart_and_passes_the_exit_code() {
    let Some((_reg, b, image)) = setup() else { return };
    let script = "i=0; while [ ! -e /tmp/stop ]; do echo tick $i; i=$((i+1)); sleep 0.2; done; echo bye >&2; exit 7";
    b.ok(&["run", "-d", "--name", "ticker", &image, "sh", "-c", script]);
    wait_until("a few ticks logged", || b.ok(&["logs", "ticker"]).contains("tick 3"));
    let mut client = spawn_attach(&b, &["ticker"]);
    drop(client.stdin.take());
    let mut reader = read_past_line(&mut client, &format!("tick {}", log_lines(&b, "ticker") + 2));
    b.ok(&["exec", "ticker", "touch", "/tmp/stop"]);
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    let o = client.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(7), "the container's status: {rest}");
    assert!(!rest.contains("bye"), "stderr stays apart: {rest}");
    assert_eq!(err(&o), "bye\n");
    assert_eq!(
        inspect(&b, "ticker", "{{.State.ExitCode}}"),
        "7",
        "recorded before attach returns"
    );
}

#[test]
fn attach_relays_stdin_and_several_clients_see_the_output() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&["run", "-di", "--name", "cat", &image, "cat"]);
    let mut watcher = spawn_attach(&b, &["--no-stdin", "cat"]);
    let mut typist = spawn_attach(&b, &["cat"]);
    // Both connected (the monitor accepts them as they come).
    std::thread::sleep(Duration::from_millis(1000));
    let mut keys = typist.stdin.take().unwrap();
    keys.write_all(b"hello through attach\n").unwrap();
    keys.flush().unwrap();
    let mut typed = read_past_line(&mut typist, "hello through attach");
    let _seen = read_past_line(&mut watcher, "hello through attach");
    // Without a terminal the detach keys are data, as docker's.
    keys.write_all(b"keys \x10\x11 pass\n").unwrap();
    keys.flush().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut typed, &mut line).unwrap();
    assert_eq!(line, "keys \x10\x11 pass\n");
    // The watcher's stdin is not the container's.
    watcher.stdin.take().unwrap().write_all(b"not relayed\n").unwrap();
    // The typist leaving (end of input) leaves the container's stdin open.
    drop(keys);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inspect(&b, "cat", "{{.State.Status}}"), "running");
    b.ok(&["kill", "cat"]);
    assert_eq!(typist.wait().unwrap().code(), Some(137));
    assert_eq!(watcher.wait().unwrap().code(), Some(137));
    let logs = b.ok(&["logs", "cat"]);
    assert_eq!(logs, "hello through attach\nkeys \x10\x11 pass\n");
}

#[test]
fn attach_with_a_terminal_detaches_on_ctrl_p_ctrl_q() {
    let Some((_reg, b, image)) = setup() else { return };
    if !require("script", barge_tests::have_tool("script")) {
        return;
    }
    let script = "while true; do echo tick; sleep 0.2; done";
    b.ok(&["run", "-dit", "--name", "tty", &image, "sh", "-c", script]);
    let mut s = Screen::start(b.on_terminal("attach tty"));
    s.wait_for("tick");
    s.type_(b"\x10\x11");
    let (code, screen) = s.exit();
    assert_eq!(code, 1, "docker 20.10's attach: {screen}");
    assert!(screen.contains("read escape sequence"), "{screen}");
    assert_eq!(inspect(&b, "tty", "{{.State.Running}}"), "true");
    let before = log_lines(&b, "tty");
    wait_until("the log grows", || log_lines(&b, "tty") > before + 2);
    // The window size reaches the container's terminal.
    let mut s = Screen::start(b.on_terminal("attach --detach-keys ctrl-a,x tty"));
    s.wait_for("tick");
    s.type_(b"\x01x");
    assert_eq!(s.exit().0, 1);
    b.ok(&["rm", "-f", "tty"]);
}

#[test]
fn run_it_detaches_and_the_container_runs_on() {
    let Some((_reg, b, image)) = setup() else { return };
    if !require("script", barge_tests::have_tool("script")) {
        return;
    }
    let mut s = Screen::start(b.on_terminal(&format!("run -it --name fg {image} sh")));
    s.type_(b"echo one-$((1+1))\n");
    s.wait_for("one-2");
    s.type_(b"\x10\x11");
    let (code, screen) = s.exit();
    assert_eq!(code, 0, "run -it detached silently: {screen}");
    assert!(!screen.contains("escape"), "{screen}");
    assert_eq!(inspect(&b, "fg", "{{.State.Running}}"), "true");
    // The detached monitor still keeps the log.
    b.ok(&["exec", "fg", "sh", "-c", "echo from-exec > /proc/1/fd/1"]);
    wait_until("logged after the detach", || {
        b.ok(&["logs", "fg"]).contains("from-exec")
    });
    // Attached again: the shell answers, and its exit status comes back.
    let mut s = Screen::start(b.on_terminal("attach fg"));
    std::thread::sleep(Duration::from_millis(500));
    s.type_(b"echo two-$((1+2))\n");
    s.wait_for("two-3");
    s.type_(b"exit 3\n");
    assert_eq!(s.exit().0, 3);
    assert_eq!(inspect(&b, "fg", "{{.State.ExitCode}}"), "3");

    // start -ai with other keys; a partial sequence is typed through.
    let mut s = Screen::start(b.on_terminal("start -ai --detach-keys ctrl-x,q fg"));
    s.type_(b"echo three-$((1+2))\x18\x10\n");
    s.wait_for("three-3");
    s.type_(b"\x18q");
    assert_eq!(s.exit().0, 0);
    assert_eq!(inspect(&b, "fg", "{{.State.Running}}"), "true");
    b.ok(&["rm", "-f", "fg"]);
}

#[test]
fn run_i_without_a_terminal_keeps_its_exit_code_and_stdin() {
    let Some((_reg, b, image)) = setup() else { return };
    let o = b.run_with_stdin(&["run", "--rm", "-i", &image, "sh", "-c", "cat; exit 5"], "piped in\n");
    assert_eq!(o.status.code(), Some(5), "{}", err(&o));
    assert_eq!(out(&o), "piped in\n");
    // A foreground run's start failure is reported as before.
    let o = b.run_with_stdin(&["run", "--rm", "-i", &image, "/no/such/binary"], "");
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert!(err(&o).contains("/no/such/binary"), "{}", err(&o));
}

/// barge with `args` fails with `code` and says `message`.
fn fails_with(b: &Barge, args: &[&str], code: i32, message: &str) {
    let o = b.run(args);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", err(&o));
    assert!(err(&o).contains(message), "{args:?}: {}", err(&o));
}

#[test]
fn attach_errors_as_docker() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&["create", "--name", "idle", &image, "true"]);
    fails_with(
        &b,
        &["attach", "idle"],
        1,
        "You cannot attach to a stopped container, start it first",
    );
    fails_with(
        &b,
        &["attach", "--detach-keys", "ctrl-1", "idle"],
        1,
        "Invalid detach keys (ctrl-1) provided",
    );
    fails_with(
        &b,
        &["run", "--detach-keys", "ctrl-,", &image, "true"],
        125,
        "Invalid detach keys (ctrl-,) provided",
    );
    b.ok(&["run", "-d", "--name", "frozen", &image, "sleep", "30"]);
    b.ok(&["pause", "frozen"]);
    fails_with(
        &b,
        &["attach", "frozen"],
        1,
        "You cannot attach to a paused container, unpause it first",
    );
    b.ok(&["rm", "-f", "frozen"]);
    fails_with(&b, &["attach", "nosuch"], 1, "No such container: nosuch");
}

/// The socket is the store user's alone: another user cannot reach it,
/// and one let through the file's mode is dropped by its uid
/// (SO_PEERCRED) before anything it sends reaches the container.
#[test]
fn another_user_cannot_use_the_attach_socket() {
    let Some((_reg, b, image)) = setup() else { return };
    if !barge_tests::require_root_and(&["perl"]) {
        return;
    }
    let id = b
        .ok(&["run", "-di", "--name", "guarded", &image, "cat"])
        .trim()
        .to_string();
    let dir = b.root().join("containers").join(&id);
    let sock = dir.join("attach.sock");
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&sock).expect("the attach socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(!b
        .root()
        .join("containers")
        .join(&id)
        .join("rootfs/attach.sock")
        .exists());
    // From the container's directory (entered as root), nobody connects
    // and sends a frame of input; then reads until the monitor hangs up.
    let probe = r#"
        use IO::Socket::UNIX; use POSIX; $SIG{PIPE} = "IGNORE";
        chdir($ARGV[0]) or die "chdir: $!";
        POSIX::setgid(65534); POSIX::setuid(65534) or die "setuid: $!";
        my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => "attach.sock");
        if (!$s) { print "refused: $!\n"; exit 0; }
        my $msg = "pwned\n";
        syswrite($s, "i" . pack("N", length $msg) . $msg);
        my $n = sysread($s, my $buf, 100);
        my $gone = !defined($n) || $n == 0;
        print $gone ? "dropped\n" : "answered: $buf\n";
    "#;
    let run_probe = || {
        let o = Command::new("perl").args(["-e", probe]).arg(&dir).output().unwrap();
        assert!(o.status.success(), "{}", err(&o));
        out(&o)
    };
    assert!(run_probe().starts_with("refused: Permission denied"));
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(run_probe(), "dropped\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.ok(&["logs", "guarded"]), "", "nothing of nobody's reached cat");
    b.ok(&["rm", "-f", "guarded"]);
}

/// A client that does not read holds up neither the container nor its
/// log: once its queue is full it is disconnected.
#[test]
fn a_client_that_does_not_read_is_dropped() {
    let Some((_reg, b, image)) = setup() else { return };
    let script = "read go; seq 1 1000000; echo done-flood; sleep 60";
    b.ok(&["run", "-di", "--name", "flood", &image, "sh", "-c", script]);
    let stalled = spawn_attach(&b, &["--no-stdin", "flood"]);
    std::thread::sleep(Duration::from_millis(500));
    // The flood starts once the stalled client is attached.
    let mut feeder = spawn_attach(&b, &["flood"]);
    // It reads nothing of its own: its output goes nowhere.
    drop(feeder.stdout.take());
    feeder.stdin.take().unwrap().write_all(b"go\n").unwrap();
    wait_until("the whole flood logged", || {
        b.ok(&["logs", "--tail", "1", "flood"]) == "done-flood\n"
    });
    // The stalled client's output ends short of it: it was dropped.
    let o = stalled.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("closed the connection"), "{}", err(&o));
    assert!(!out(&o).contains("done-flood"));
    b.ok(&["rm", "-f", "flood"]);
    let _ = feeder.wait();
}

/// Rootless: the user's own attach reaches its container through the
/// monitor in the user's namespace; another user's barge cannot.
#[test]
fn rootless_attach_is_the_users_own() {
    if !barge_tests::require_root_and(&["docker-registry", "umoci", "runuser", "useradd", "newuidmap"]) {
        return;
    }
    let reg = Registry::anonymous();
    barge_tests::image::busybox_image(&reg, "busybox", "latest", &[], |_| {});
    let image = format!("{}/busybox", reg.host());
    let user = barge_tests::User::ensure("barge-rootless", Some(600000));
    let b = Barge::as_user(&user);
    b.ok(&["pull", "-q", &image]);
    b.ok(&["run", "-di", "--name", "mine", &image, "cat"]);
    let mut client = spawn_attach(&b, &["mine"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut keys = client.stdin.take().unwrap();
    keys.write_all(b"rootless hello\n").unwrap();
    keys.flush().unwrap();
    let _seen = read_past_line(&mut client, "rootless hello");
    b.ok(&["kill", "mine"]);
    assert_eq!(client.wait().unwrap().code(), Some(137));
    let other = Barge::as_user(&barge_tests::User::ensure("barge-rootless2", Some(700000)));
    fails_with(&other, &["attach", "mine"], 1, "No such container: mine");
    b.ok(&["rm", "-f", "mine"]);
}

/// Without a terminal, attach forwards its signals to the container
/// unless --sig-proxy=false, and then dies of them itself.
#[test]
fn attach_forwards_signals_unless_told_not_to() {
    let Some((_reg, b, image)) = setup() else { return };
    let script = "trap 'echo got-term; exit 9' TERM; while true; do echo tick; sleep 0.2; done";
    b.ok(&["run", "-d", "--name", "trapper", &image, "sh", "-c", script]);
    let mut plain = spawn_attach(&b, &["--sig-proxy=false", "trapper"]);
    let _ = read_past_line(&mut plain, "tick");
    barge_tests::kill(plain.id(), rustix::process::Signal::TERM);
    let st = plain.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(15), "{st}");
    assert_eq!(inspect(&b, "trapper", "{{.State.Running}}"), "true");
    let mut proxy = spawn_attach(&b, &["trapper"]);
    let mut reader = read_past_line(&mut proxy, "tick");
    barge_tests::kill(proxy.id(), rustix::process::Signal::TERM);
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("got-term"), "{rest}");
    assert_eq!(proxy.wait().unwrap().code(), Some(9));
}

/// The barge that waits for a `run -it` killed: its monitor leaves the
/// terminal and the container runs on, as docker's outlives its client.
#[test]
fn run_it_outlives_its_killed_client() {
    let Some((_reg, b, image)) = setup() else { return };
    if !require("script", barge_tests::have_tool("script")) {
        return;
    }
    let mut s = Screen::start(b.on_terminal(&format!("run -it --name orphan {image} sh")));
    s.type_(b"echo up-$((2+2))\n");
    s.wait_for("up-4");
    let id = inspect(&b, "orphan", "{{.Id}}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.root().join("containers").join(&id).join("state.json")).unwrap())
            .unwrap();
    let monitor = state["monitor_pid"].as_i64().expect("monitor_pid");
    let stat = std::fs::read_to_string(format!("/proc/{monitor}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let waiting: u32 = after_name.split(' ').nth(1).unwrap().parse().unwrap();
    barge_tests::kill(waiting, rustix::process::Signal::KILL);
    let _ = s.exit();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inspect(&b, "orphan", "{{.State.Running}}"), "true");
    let mut again = spawn_attach(&b, &["orphan"]);
    std::thread::sleep(Duration::from_millis(300));
    again.stdin.take().unwrap().write_all(b"exit 4\n").unwrap();
    assert_eq!(again.wait().unwrap().code(), Some(4));
}

/// The docker config's `detachKeys` replaces the default, and the
/// client's window size reaches the container's terminal.
#[test]
fn detach_keys_from_the_docker_config_and_the_window_size() {
    let Some((_reg, b, image)) = setup() else { return };
    if !require("script", barge_tests::have_tool("script")) {
        return;
    }
    std::fs::write(b.docker_config().join("config.json"), r#"{"detachKeys": "ctrl-e,e"}"#).unwrap();
    b.ok(&["run", "-dit", "--name", "sized", &image, "sh"]);
    let plain = b.on_terminal("attach sized");
    let args: Vec<String> = plain.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut sized = Command::new("script");
    sized.args(["-qec", &format!("stty rows 33 cols 77; {}", args[1]), "/dev/null"]);
    for (k, v) in plain.get_envs() {
        if let Some(v) = v {
            sized.env(k, v);
        }
    }
    let mut s = Screen::start(sized);
    std::thread::sleep(Duration::from_millis(500));
    s.type_(b"stty size\n");
    s.wait_for("33 77");
    // ctrl-p ctrl-q are the shell's now.
    s.type_(b"\x10\x11\necho still-$((5+5))\n");
    s.wait_for("still-10");
    s.type_(b"\x05e");
    let (code, screen) = s.exit();
    assert_eq!(code, 1, "{screen}");
    assert!(screen.contains("read escape sequence"), "{screen}");
    assert_eq!(inspect(&b, "sized", "{{.State.Running}}"), "true");
    b.ok(&["rm", "-f", "sized"]);
}

/// A foreground `run` (no terminal, no stdin) serves attach clients too.
#[test]
fn attach_to_a_foreground_run() {
    let Some((_reg, b, image)) = setup() else { return };
    let script = "echo ready; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo late; exit 6";
    let mut fg = b
        .command()
        .args(["run", "--name", "fgplain", &image, "sh", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _shown = read_past_line(&mut fg, "ready");
    let mut client = spawn_attach(&b, &["fgplain"]);
    std::thread::sleep(Duration::from_millis(300));
    b.ok(&["exec", "fgplain", "touch", "/tmp/go"]);
    let _late = read_past_line(&mut client, "late");
    assert_eq!(client.wait().unwrap().code(), Some(6));
    assert_eq!(fg.wait().unwrap().code(), Some(6));
}
