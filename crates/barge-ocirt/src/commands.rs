//! The commands, as runc has them. `create` leaves the container's first
//! process set up and waiting on the exec fifo (`barge-runner`'s start
//! gate) with its PID in `--pid-file`; `start` opens the fifo, which lets
//! it `execve`; the status is read from the process (alive, and the fifo
//! still there: created).

use crate::args::{Command, Global};
use crate::state::{write_pid_file, Container, Record, Status};
use crate::{bundle, io_err, OcirtError};
use barge_runner::spec::{Process, Spec};
use barge_runner::{ChildIo, ProcessPlan, Started};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs one command; the exit status on success.
pub fn run(g: &Global, c: &Command) -> Result<i32, OcirtError> {
    let root = || crate::state::root_dir(g.root.as_deref());
    match c.name.as_str() {
        "create" => {
            sealed()?;
            create(g, c, &root()?).map(|_| 0)
        }
        "run" => {
            sealed()?;
            run_container(g, c, &root()?)
        }
        "start" => start(&Container::load(&root()?, c.id()?)?).map(|()| 0),
        "state" => {
            let ct = Container::load(&root()?, c.id()?)?;
            print_json(&ct.state_json())
        }
        "kill" => kill(&Container::load(&root()?, c.id()?)?, c),
        "delete" => delete(&root()?, c),
        "exec" => {
            sealed()?;
            exec(&Container::load(&root()?, c.id()?)?, c)
        }
        "pause" | "resume" => {
            let ct = Container::load(&root()?, c.id()?)?;
            let cg = ct
                .cgroup()
                .ok_or_else(|| OcirtError::State(format!("container {} has no cgroup to freeze", ct.record.id)))?;
            cg.set_paused(c.name == "pause")?;
            Ok(0)
        }
        "list" => list(&root()?),
        "ps" => ps(&Container::load(&root()?, c.id()?)?, c),
        "spec" => write_spec(c),
        "features" => print_json(&crate::defaults::features()),
        "--version" | "version" => {
            println!(
                "{} version {}\nspec: {}",
                crate::PROGRAM_NAME,
                env!("CARGO_PKG_VERSION"),
                barge_runner::spec::OCI_VERSION
            );
            Ok(0)
        }
        "help" => {
            println!("usage: barge-runtime [--root DIR] [--log FILE] [--log-format json|text] [--systemd-cgroup] COMMAND\ncommands: create, start, state, kill, delete, run, exec, pause, resume, list, ps, spec, features");
            Ok(0)
        }
        other => Err(OcirtError::Usage(format!("unknown command {other:?}"))),
    }
}

fn print_json(v: &serde_json::Value) -> Result<i32, OcirtError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| OcirtError::Usage(e.to_string()))?;
    println!("{text}");
    Ok(0)
}

/// Commands that put processes into containers run from a sealed copy of
/// the binary (CVE-2019-5736), as barge's do.
fn sealed() -> Result<(), OcirtError> {
    Ok(barge_runner::sealed::ensure()?)
}

/// `--bundle`, else the working directory, made absolute.
fn bundle_dir(c: &Command) -> Result<PathBuf, OcirtError> {
    let b = c.value("bundle").unwrap_or(".");
    std::fs::canonicalize(b).map_err(io_err(format!("the bundle {b}")))
}

/// The state directory, made 0700 (only root reads the containers' state).
fn make_root(root: &Path) -> Result<(), OcirtError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(io_err(format!("creating {}", root.display())))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("securing {}", root.display())))
}

/// The caller's stdio (conmon's or containerd's pipes), the container's.
fn inherited_io() -> Result<ChildIo, OcirtError> {
    let dup = |fd: rustix::fd::BorrowedFd<'_>| {
        rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(|e| io_err("duplicating stdio")(e.into()))
    };
    Ok(ChildIo::Fds {
        stdin: Some(dup(rustix::stdio::stdin())?),
        stdout: dup(rustix::stdio::stdout())?,
        stderr: dup(rustix::stdio::stderr())?,
    })
}

/// `--console-socket`, connected before anything starts.
fn console_socket(c: &Command, terminal: bool) -> Result<Option<OwnedFd>, OcirtError> {
    match (c.value("console-socket"), terminal) {
        (Some(path), true) => {
            let s = std::os::unix::net::UnixStream::connect(path)
                .map_err(io_err(format!("connecting to the console socket {path}")))?;
            Ok(Some(OwnedFd::from(s)))
        }
        (None, true) => Err(OcirtError::Usage(
            "the process asks for a terminal: --console-socket is required".into(),
        )),
        (Some(_), false) => Err(OcirtError::Usage(
            "--console-socket given but the process has no terminal (process.terminal)".into(),
        )),
        (None, false) => Ok(None),
    }
}

/// Sends the pty master to the console socket, as runc does.
fn send_terminal(sock: Option<OwnedFd>, started: &Started) -> Result<(), OcirtError> {
    if let (Some(sock), Some(master)) = (sock, &started.terminal) {
        barge_runner::terminal::send_fd(&sock, master.as_fd()).map_err(io_err("sending the terminal"))?;
    }
    Ok(())
}

/// `process.user.umask`: set here, just before the fork, so that the
/// process inherits it (the runner keeps the umask it is given).
fn apply_umask(process: &Process) {
    if let Some(mask) = process.user().umask() {
        rustix::process::umask(Mode::from_raw_mode(mask & 0o777));
    }
}

/// Removes a half-made container if `create` fails.
struct Undo(Option<PathBuf>);

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            barge_cgroups::release(&dir);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `--preserve-fds N`: the runner closes every descriptor above stdio at
/// `execve`, so only 0 can be honoured.
fn no_preserved_fds(c: &Command) -> Result<(), OcirtError> {
    match c.value("preserve-fds") {
        Some(n) if n != "0" => Err(OcirtError::Usage(format!(
            "--preserve-fds {n} is not supported by barge-runtime"
        ))),
        _ => Ok(()),
    }
}

fn create(g: &Global, c: &Command, root: &Path) -> Result<Container, OcirtError> {
    let id = c.id()?;
    no_preserved_fds(c)?;
    let bundle = bundle_dir(c)?;
    let mut spec = bundle::load(&bundle)?;
    let devices = bundle::adapt(&mut spec, &bundle)?;
    let process = barge_runner::spec::process(&spec)?.clone();
    let terminal = process.terminal().unwrap_or(false);
    let console = console_socket(c, terminal)?;
    make_root(root)?;
    let dir = root.join(id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(OcirtError::Exists(id.into())),
        Err(e) => return Err(io_err(format!("creating {}", dir.display()))(e)),
    }
    let mut undo = Undo(Some(dir.clone()));
    // The fifo the process waits on: writable by any user the process may
    // be (it is opened through the process's own descriptor).
    let fifo = dir.join("exec.fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o622),
        0,
    )
    .and_then(|()| rustix::fs::chmod(&fifo, Mode::from_raw_mode(0o622)))
    .map_err(|e| io_err("creating the exec fifo")(e.into()))?;
    let gate = rustix::fs::open(&fifo, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io_err("opening the exec fifo")(e.into()))?;

    let mut plan = barge_runner::child::Plan::for_directory(&spec, &bundle)?;
    plan.bind_devices(devices.binds);
    plan.make_devices(devices.nodes);
    if let Some((uid_map, gid_map)) = bundle::user_maps(barge_runner::spec::linux(&spec)?)? {
        plan.user_namespace(uid_map, gid_map);
    }
    plan.gate_start(gate);
    let cgroup_path = bundle::cgroup_path(&spec, id, g.systemd_cgroup)?;
    let resources = barge_runner::spec::resources(&spec);
    let cgroup = match barge_cgroups::Cgroup::create(&cgroup_path, resources) {
        Ok(cg) => cg,
        // Nothing a cgroup enforces is asked for: run without one, as barge does.
        Err(_) if !barge_cgroups::limits_asked(resources) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(cg) = &cgroup {
        cg.save(&dir)?;
        plan.cgroup = cg.join()?;
    }
    let io = if terminal { ChildIo::Terminal } else { inherited_io()? };
    apply_umask(&process);
    let started = barge_runner::child::spawn(&plan, io)?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write(format!("/proc/{}/oom_score_adj", started.pid), adj.to_string())
            .map_err(io_err("setting process.oomScoreAdj"))?;
    }
    send_terminal(console, &started)?;
    let record = Record {
        id: id.to_string(),
        pid: started.pid,
        start_time: started.start_time,
        bundle: bundle.clone(),
        rootfs: bundle.join(spec.root().as_ref().map(|r| r.path().clone()).unwrap_or_default()),
        created: barge_records::now_rfc3339(),
        oci_version: spec.version().clone(),
        annotations: spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    barge_records::write_json(&dir.join("state.json"), &record)?;
    let ct = Container { dir, record };
    let hooks = spec.hooks().clone().unwrap_or_default();
    let ran = crate::hooks::run(
        "createRuntime",
        hooks.create_runtime().as_deref().unwrap_or_default(),
        &ct.state_json(),
    )
    .and_then(|()| {
        crate::hooks::run(
            "prestart",
            hooks.prestart().as_deref().unwrap_or_default(),
            &ct.state_json(),
        )
    });
    if let Err(e) = ran {
        let _ = kill_and_wait(&ct);
        return Err(e);
    }
    if let Some(p) = c.value("pid-file") {
        write_pid_file(Path::new(p), started.pid)?;
    }
    undo.0 = None;
    Ok(ct)
}

/// The bundle's hooks of one kind, read again from its config (`None`
/// when the bundle is gone: nothing to run).
fn bundle_hooks(
    ct: &Container,
    pick: impl Fn(&oci_spec::runtime::Hooks) -> Option<Vec<oci_spec::runtime::Hook>>,
) -> Vec<oci_spec::runtime::Hook> {
    bundle::load(&ct.record.bundle)
        .ok()
        .and_then(|s| s.hooks().as_ref().and_then(&pick))
        .unwrap_or_default()
}

/// Lets the created process `execve`: opens the exec fifo for reading
/// (which completes the process's open for writing) and reads its byte.
fn start(ct: &Container) -> Result<(), OcirtError> {
    match ct.status() {
        Status::Created => {}
        Status::Stopped => return Err(OcirtError::State("cannot start a container that has stopped".into())),
        _ => return Err(OcirtError::State("cannot start an already running container".into())),
    }
    let fifo = rustix::fs::open(
        ct.fifo(),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("opening the exec fifo")(e.into()))?;
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(&fifo, &mut byte) {
            Ok(1) => break,
            Ok(_) | Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(io_err("reading the exec fifo")(e.into())),
        }
        if !ct.alive() {
            return Err(OcirtError::State(
                "the container's process ended before it started".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::remove_file(ct.fifo()).map_err(io_err("removing the exec fifo"))?;
    let poststart = bundle_hooks(ct, |h| h.poststart().clone());
    // The state as of the start: the command may be gone already, but the
    // hooks are told of the process that was started.
    let mut state = ct.state_json();
    state["status"] = Status::Running.as_str().into();
    state["pid"] = ct.record.pid.into();
    crate::hooks::run_warning("poststart", &poststart, &state);
    Ok(())
}

/// The exit status of our child `pid`: its code, or 128 + its signal.
fn wait_child(pid: i32) -> Result<i32, OcirtError> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or_else(|| OcirtError::State("pid 0".into()))?;
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, s))) => {
                return Ok(s
                    .exit_status()
                    .unwrap_or_else(|| 128 + s.terminating_signal().unwrap_or(0)))
            }
            Err(rustix::io::Errno::INTR) => {}
            Ok(None) => {}
            Err(e) => return Err(io_err("waiting for the container")(e.into())),
        }
    }
}

/// The signals `run` relays to the container's process: as runc, every
/// one it can catch but those about itself (a child, a fault, a broken
/// pipe, terminal job control, urgent data).
fn relayed_signals() -> Vec<rustix::process::Signal> {
    use rustix::process::Signal;
    let own = [
        Signal::CHILD,
        Signal::URG,
        Signal::KILL,
        Signal::STOP,
        Signal::SEGV,
        Signal::BUS,
        Signal::ILL,
        Signal::FPE,
        Signal::TRAP,
        Signal::SYS,
        Signal::PIPE,
        Signal::TSTP,
        Signal::TTIN,
        Signal::TTOU,
    ];
    (1..32)
        .filter_map(Signal::from_named_raw)
        .filter(|s| !own.contains(s))
        .collect()
}

/// `run` in the foreground: relays the signals it gets (`barge stop` of a
/// container run with `--runtime barge-runtime`) to the process until it
/// exits; it is then left for [`wait_child`] to reap.
fn forward_signals_until_exit(signals: &barge_runner::sys::SignalFd, pid: i32) -> Result<(), OcirtError> {
    use rustix::event::{poll, PollFd, PollFlags};
    let p = rustix::process::Pid::from_raw(pid).ok_or_else(|| OcirtError::State("pid 0".into()))?;
    let pidfd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
        .map_err(|e| io_err("watching the container")(e.into()))?;
    loop {
        let mut fds = [PollFd::new(&signals, PollFlags::IN), PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(io_err("waiting for the container")(e.into())),
        }
        let exited = !fds[1].revents().is_empty();
        while let Some(sig) = signals.read() {
            let _ = barge_runner::sys::send_signal(&pidfd, sig);
        }
        if exited {
            return Ok(());
        }
    }
}

/// `run`: create, start, and (without `--detach`) wait for the process
/// and delete the container; the process's status is the exit status.
fn run_container(g: &Global, c: &Command, root: &Path) -> Result<i32, OcirtError> {
    // Blocked from the start (the container's process unblocks its own):
    // a signal that comes while the container is made is relayed after.
    let signals = match c.is_set("detach") {
        false => Some(barge_runner::sys::SignalFd::new(&relayed_signals()).map_err(io_err("creating a signalfd"))?),
        true => None,
    };
    let ct = create(g, c, root)?;
    if let Err(e) = start(&ct) {
        let _ = kill_and_wait(&ct);
        let _ = ct.destroy();
        return Err(e);
    }
    let Some(signals) = signals else { return Ok(0) };
    forward_signals_until_exit(&signals, ct.record.pid)?;
    let code = wait_child(ct.record.pid)?;
    if !c.is_set("keep") {
        remove(&ct)?;
    }
    Ok(code)
}

/// Sends `sig` to process `pid`, through a pidfd (no reused PID is hit
/// once the pidfd is open; the caller checked the start time).
fn signal(pid: i32, sig: i32) -> Result<(), OcirtError> {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return Ok(());
    };
    let fd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
        .map_err(|e| io_err(format!("signalling process {pid}"))(e.into()))?;
    barge_runner::sys::send_signal(&fd, sig).map_err(io_err(format!("signalling process {pid}")))
}

fn kill(ct: &Container, c: &Command) -> Result<i32, OcirtError> {
    let name = c.operands.get(1).map(String::as_str).unwrap_or("TERM");
    let sig =
        barge_runner::sys::signal_number(name).ok_or_else(|| OcirtError::Usage(format!("unknown signal {name:?}")))?;
    if ct.status() == Status::Stopped {
        return Err(OcirtError::State("container not running".into()));
    }
    if c.is_set("all") {
        if let Some(cg) = ct.cgroup() {
            for pid in cg.pids() {
                let _ = signal(pid, sig);
            }
            return Ok(0);
        }
    }
    signal(ct.record.pid, sig)?;
    Ok(0)
}

/// SIGKILL to the container's processes, then waits (5 s at most) for its
/// first process to be gone.
fn kill_and_wait(ct: &Container) -> Result<(), OcirtError> {
    match ct.cgroup() {
        Some(cg) => cg.kill_all(),
        None => {
            if ct.alive() {
                signal(ct.record.pid, libc::SIGKILL)?;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while ct.alive() {
        if Instant::now() > deadline {
            return Err(OcirtError::State(format!(
                "container {}'s process {} did not die",
                ct.record.id, ct.record.pid
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

fn delete(root: &Path, c: &Command) -> Result<i32, OcirtError> {
    let id = c.id()?;
    let force = c.is_set("force");
    let ct = match Container::load(root, id) {
        Ok(ct) => ct,
        // runc: a forced delete of a container that is gone succeeds; what
        // a create killed midway left (no state.json yet) goes too.
        Err(OcirtError::NotFound(_)) if force => {
            let dir = root.join(id);
            if dir.is_dir() {
                barge_cgroups::release(&dir);
                std::fs::remove_dir_all(&dir).map_err(io_err(format!("removing {}", dir.display())))?;
            }
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    match ct.status() {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&ct)?,
        s if force => {
            if s == Status::Paused {
                if let Some(cg) = ct.cgroup() {
                    let _ = cg.set_paused(false);
                }
            }
            kill_and_wait(&ct)?
        }
        s => {
            return Err(OcirtError::State(format!(
                "cannot delete container {id} that is not stopped: {}",
                s.as_str()
            )))
        }
    }
    remove(&ct)?;
    Ok(0)
}

/// Removes a stopped container's state, then runs its poststop hooks (a
/// failed one is a warning and does not undo the delete).
fn remove(ct: &Container) -> Result<(), OcirtError> {
    let poststop = bundle_hooks(ct, |h| h.poststop().clone());
    let state = ct.state_json();
    ct.destroy()?;
    crate::hooks::run_warning("poststop", &poststop, &state);
    Ok(())
}

fn list(root: &Path) -> Result<i32, OcirtError> {
    println!("ID\tPID\tSTATUS\tBUNDLE\tCREATED");
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(0);
    };
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if let Ok(ct) = Container::load(root, &id) {
            let r = &ct.record;
            println!(
                "{}\t{}\t{}\t{}\t{}",
                r.id,
                r.pid,
                ct.status().as_str(),
                r.bundle.display(),
                r.created
            );
        }
    }
    Ok(0)
}

/// `ps`: the PIDs of the container's processes (its cgroup's; its first
/// process's alone without one), as `--format json` (containerd's shim
/// asks for it: `docker top`) or one per line.
fn ps(ct: &Container, c: &Command) -> Result<i32, OcirtError> {
    let mut pids = match ct.cgroup() {
        Some(cg) => cg.pids(),
        None if ct.alive() => vec![ct.record.pid],
        None => Vec::new(),
    };
    pids.sort_unstable();
    match c.value("format").unwrap_or("table") {
        "json" => print_json(&serde_json::json!(pids)),
        "table" => {
            println!("PID");
            for p in pids {
                println!("{p}");
            }
            Ok(0)
        }
        other => Err(OcirtError::Usage(format!("ps: unknown format {other:?}"))),
    }
}

fn write_spec(c: &Command) -> Result<i32, OcirtError> {
    let dir = PathBuf::from(c.value("bundle").unwrap_or("."));
    let path = dir.join("config.json");
    if path.exists() {
        return Err(OcirtError::State(format!(
            "File {} exists. Remove it first",
            path.display()
        )));
    }
    let v = crate::defaults::spec().map_err(|e| OcirtError::Bundle(e.to_string()))?;
    let text = serde_json::to_string_pretty(&v).map_err(|e| OcirtError::Bundle(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(io_err(format!("writing {}", path.display())))?;
    Ok(0)
}

/// `exec`'s process: `--process FILE` as given, else the container's own
/// process with the operands as arguments and `--cwd`, `--env`, `--tty`,
/// `--user` applied.
fn exec_process(spec: &Spec, c: &Command) -> Result<Process, OcirtError> {
    if let Some(file) = c.value("process") {
        let bytes = std::fs::read(file).map_err(io_err(format!("reading the process {file}")))?;
        return serde_json::from_slice(&bytes).map_err(|e| OcirtError::Usage(format!("the process {file}: {e}")));
    }
    let mut p = barge_runner::spec::process(spec)?.clone();
    let argv: Vec<String> = c.operands.iter().skip(1).cloned().collect();
    if argv.is_empty() {
        return Err(OcirtError::Usage("exec: a command or --process is required".into()));
    }
    p.set_args(Some(argv));
    p.set_terminal(Some(c.is_set("tty")));
    if let Some(cwd) = c.value("cwd") {
        p.set_cwd(PathBuf::from(cwd));
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(c.values("env").map(str::to_string));
    p.set_env(Some(env));
    if let Some(user) = c.value("user") {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        let parse = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| OcirtError::Usage(format!("--user {user}: give numeric uid[:gid]")))
        };
        let mut u = p.user().clone();
        u.set_uid(parse(uid)?).set_gid(parse(gid)?);
        p.set_user(u);
    }
    Ok(p)
}

fn exec(ct: &Container, c: &Command) -> Result<i32, OcirtError> {
    match ct.status() {
        Status::Running | Status::Created => {}
        s => return Err(OcirtError::State(format!("cannot exec in a {} container", s.as_str()))),
    }
    no_preserved_fds(c)?;
    let spec = bundle::load(&ct.record.bundle)?;
    let process = exec_process(&spec, c)?;
    bundle::check_labels(&process)?;
    let terminal = process.terminal().unwrap_or(false);
    let console = console_socket(c, terminal)?;
    let plan = ProcessPlan::new(&process, barge_runner::spec::seccomp(&spec))?.for_exec();
    // The container's namespaces, the mount namespace last; checked to be
    // the recorded process's once open.
    let mut namespaces = Vec::new();
    // A user namespace of the container's own first: it owns the others,
    // and the process then takes the container's IDs within it.
    let own_user = std::fs::read_link("/proc/self/ns/user").ok();
    let theirs = std::fs::read_link(format!("/proc/{}/ns/user", ct.record.pid)).ok();
    let user = (theirs.is_some() && theirs != own_user).then_some("user");
    for ns in user.into_iter().chain(["ipc", "uts", "net", "pid", "cgroup", "mnt"]) {
        let path = format!("/proc/{}/ns/{ns}", ct.record.pid);
        namespaces.push(
            rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| io_err(format!("opening {path}"))(e.into()))?,
        );
    }
    if !ct.alive() {
        return Err(OcirtError::State("the container stopped".into()));
    }
    let cgroup_procs = match ct.cgroup() {
        Some(cg) => cg.join_files()?,
        None => Vec::new(),
    };
    let (io, pair) = if terminal {
        let pair = barge_runner::terminal::socketpair().map_err(io_err("creating a socket pair"))?;
        (ChildIo::Terminal, Some(pair))
    } else {
        (inherited_io()?, None)
    };
    apply_umask(&process);
    let started = barge_runner::exec::spawn(cgroup_procs, namespaces, &plan, pair, io)?;
    send_terminal(console, &started)?;
    if let Some(p) = c.value("pid-file") {
        write_pid_file(Path::new(p), started.pid)?;
    }
    if c.is_set("detach") {
        return Ok(0);
    }
    wait_child(started.pid)
}
