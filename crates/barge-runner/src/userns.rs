//! Rootless barge: one user namespace per user, kept by a pause process.
//!
//! An ordinary user's barge runs inside a user namespace (and a mount
//! namespace it owns) where the user is root and, with `newuidmap` and
//! `/etc/subuid` ranges, the user's subordinate IDs are 1..N. The first
//! barge command of a user forks a *pause process* (`barge-pause`) that
//! creates the pair and then only sleeps; every command, that one
//! included, joins the pair with `setns` and re-executes itself inside
//! ([`enter`]). The pause process's PID is kept in
//! `$XDG_RUNTIME_DIR/barge/pause.pid` ([`runtime_dir`]).
//!
//! One namespace per user rather than per container (podman's model):
//! the store, the containers' overlay upper dirs and their network
//! namespace mounts are created by one command and used by the next (a
//! pull's files are chowned to subordinate IDs, a container's `netns` is a
//! bind mount `rm` must see). All of that needs the same ID mapping and
//! the same mount namespace in every command; a namespace per container
//! would need the mapping redone (and files chowned again) at each start.

use crate::sys;
use rustix::fd::AsFd;
use rustix::fs::{Mode, OFlags};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The environment variable a barge re-executed inside the namespace
/// carries: the [`Mapping`] it got (`subordinate` or `single`).
pub const ENV: &str = "_BARGE_USERNS";

/// `argv[0]` of the pause process, by which [`enter`] recognises it.
pub const PAUSE_NAME: &str = "barge-pause";

/// How the namespace maps IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// The user is 0, the subordinate range 1..N (newuidmap/newgidmap).
    Subordinate,
    /// Only the user, as 0: no other IDs exist inside.
    Single,
}

impl Mapping {
    fn as_str(self) -> &'static str {
        match self {
            Mapping::Subordinate => "subordinate",
            Mapping::Single => "single",
        }
    }

    /// The one-line warning for a namespace that maps a single ID.
    pub fn warning(self) -> Option<&'static str> {
        match self {
            Mapping::Subordinate => None,
            Mapping::Single => Some(
                "WARNING: rootless barge maps only your own user (as root): files owned by other users in images are \
                 kept as yours and `-u UID` other than 0 cannot run; install the `uidmap` package (newuidmap) and give \
                 your user ranges in /etc/subuid and /etc/subgid (usermod --add-subuids 100000-165535 \
                 --add-subgids 100000-165535 USER)",
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserNsError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(
        "the runtime directory {0} is not a directory owned by you with mode 0700; remove it or set XDG_RUNTIME_DIR"
    )]
    UnsafeDir(PathBuf),
    #[error("the pause process of the user namespace did not start: {0}")]
    Pause(String),
    #[error("{tool} refused to map IDs: {detail}")]
    Map { tool: &'static str, detail: String },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> UserNsError {
    let context = context.into();
    move |source| UserNsError::Io { context, source }
}

/// The mapping this process runs under, when it is a barge re-executed
/// inside the user's namespace. Asked many times by a start; read once
/// (barge never changes its own user namespace).
pub fn inside() -> Option<Mapping> {
    static INSIDE: std::sync::OnceLock<Option<Mapping>> = std::sync::OnceLock::new();
    *INSIDE.get_or_init(read_inside)
}

/// Whether this process is in the host's (initial) user namespace. Read
/// once (`barge_store::fsutil` has the store's copy).
pub fn in_initial_user_namespace() -> bool {
    static INITIAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INITIAL.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
    })
}

fn read_inside() -> Option<Mapping> {
    // The marker alone proves nothing (anyone can set it): root of the
    // host's own namespace is never inside.
    if !rustix::process::geteuid().is_root() || in_initial_user_namespace() {
        return None;
    }
    match std::env::var(ENV).ok()?.as_str() {
        "subordinate" => Some(Mapping::Subordinate),
        "single" => Some(Mapping::Single),
        _ => None,
    }
}

/// The user's runtime directory for barge: `$XDG_RUNTIME_DIR/barge`, else
/// `/tmp/barge-run-UID`; made 0700 and refused unless the user owns it
/// with that mode (another user could otherwise plant a pause PID).
pub fn runtime_dir() -> Result<PathBuf, UserNsError> {
    let uid = rustix::process::getuid().as_raw();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("barge"),
        None => PathBuf::from(format!("/tmp/barge-run-{uid}")),
    };
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) => return Err(io_err(format!("creating {}", dir.display()))(e)),
    }
    let md = std::fs::symlink_metadata(&dir).map_err(io_err(format!("reading {}", dir.display())))?;
    if !md.is_dir() || md.uid() != uid || md.mode() & 0o077 != 0 {
        return Err(UserNsError::UnsafeDir(dir));
    }
    Ok(dir)
}

/// A subordinate range of `user` (name or number) in `/etc/subuid`-style text.
pub fn subordinate_range(text: &str, name: &str, id: u32) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != name && who.parse::<u32>().ok() != Some(id) {
            return None;
        }
        let (start, count) = (start.parse().ok()?, count.parse::<u32>().ok()?);
        (count > 0).then_some((start, count))
    })
}

/// The user's name from `/etc/passwd`, if listed.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
    })
}

/// Whether `pid` is a pause process of this user's.
fn is_our_pause(pid: i32) -> bool {
    let uid = rustix::process::getuid().as_raw();
    let owned = std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    owned && cmdline.split(|b| *b == 0).next() == Some(PAUSE_NAME.as_bytes())
}

/// What the pause process's `uid_map` says about its mapping.
fn mapping_of(pid: i32) -> Result<Mapping, UserNsError> {
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map"))
        .map_err(io_err("reading the pause process's uid_map"))?;
    let ids: u64 = map
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum();
    Ok(if ids > 1 { Mapping::Subordinate } else { Mapping::Single })
}

/// Joins the user's namespace (starting its pause process first if there
/// is none) and re-executes barge inside with the same arguments, or
/// returns why it could not. Call it first thing in `main`, while the
/// process has one thread: `setns` into a user namespace needs that.
/// With `sealed` (a command that starts container processes), barge is
/// re-executed from a read-only bind mount of itself made in the
/// namespace, what [`crate::sealed::ensure`] would otherwise re-execute
/// once more for; when that mount cannot be made, from its path, and
/// `ensure` then makes its copy as it does for any writable binary.
pub fn enter(sealed: bool) -> Result<std::convert::Infallible, UserNsError> {
    let dir = runtime_dir()?;
    let lock_path = dir.join("pause.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_err(format!("opening {}", lock_path.display())))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io_err(format!("locking {}", lock_path.display()))(e.into()))?;
    let pid_file = dir.join("pause.pid");
    let known = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|pid| is_our_pause(*pid));
    let pid = match known {
        Some(pid) => pid,
        None => {
            let pid = start_pause()?;
            let tmp = dir.join(format!(".pause.pid.{}", std::process::id()));
            std::fs::write(&tmp, format!("{pid}\n")).map_err(io_err(format!("writing {}", tmp.display())))?;
            std::fs::rename(&tmp, &pid_file).map_err(io_err(format!("writing {}", pid_file.display())))?;
            pid
        }
    };
    let mapping = mapping_of(pid)?;
    if let Some(warning) = mapping.warning() {
        eprintln!("{warning}");
    }
    let open_ns = |kind: &str| {
        rustix::fs::open(
            format!("/proc/{pid}/ns/{kind}"),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(format!("opening the pause process's {kind} namespace"))(e.into()))
    };
    let (user, mnt) = (open_ns("user")?, open_ns("mnt")?);
    let cwd = std::env::current_dir().ok();
    // The binary by its path, looked up again in the namespace's mount
    // namespace: `/proc/self/exe` would keep naming the host's mount,
    // which `sealed` cannot clone read-only from in here (and would then
    // copy the whole binary into a memfd at every command).
    let exe_path = std::fs::read_link("/proc/self/exe")
        .ok()
        .filter(|p| p.is_absolute() && !p.as_os_str().as_bytes().ends_with(b" (deleted)"));
    use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
    move_into_link_name_space(user.as_fd(), Some(LinkNameSpaceType::User))
        .map_err(|e| io_err("joining the user namespace (setns)")(e.into()))?;
    move_into_link_name_space(mnt.as_fd(), Some(LinkNameSpaceType::Mount))
        .map_err(|e| io_err("joining the user namespace's mount namespace (setns)")(e.into()))?;
    // setns into a mount namespace moves the working directory to its root.
    if let Some(cwd) = cwd {
        let _ = std::env::set_current_dir(cwd);
    }
    drop(lock);
    let cstr = |b: Vec<u8>| {
        CString::new(b).map_err(|_| UserNsError::Pause("an argument or variable contains a NUL byte".into()))
    };
    let argv = std::env::args_os()
        .map(|a| cstr(a.as_bytes().to_vec()))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = std::env::vars_os()
        .filter(|(k, _)| k != ENV)
        .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
        .chain([format!("{ENV}={}", mapping.as_str()).into_bytes()])
        .map(cstr)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(read_only) = exe_path
        .as_deref()
        .filter(|_| sealed)
        .and_then(|p| crate::sealed::read_only_mount(p).ok())
    {
        return Err(io_err("re-executing barge inside the user namespace")(sys::execveat(
            &read_only, &argv, &envp,
        )));
    }
    let exe = match exe_path {
        Some(p) => cstr(p.as_os_str().as_bytes().to_vec())?,
        None => cstr(b"/proc/self/exe".to_vec())?,
    };
    Err(io_err("re-executing barge inside the user namespace")(sys::execve(
        &exe, &argv, &envp,
    )))
}

/// Starts the pause process and maps its IDs; returns its PID.
fn start_pause() -> Result<i32, UserNsError> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let name = user_name(uid).unwrap_or_default();
    let sub = |file: &str, id| {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|t| subordinate_range(&t, &name, id))
    };
    let tools = find_tool("newuidmap").zip(find_tool("newgidmap"));
    let ranges = sub("/etc/subuid", uid).zip(sub("/etc/subgid", gid));
    if let (Some((newuidmap, newgidmap)), Some((uids, gids))) = (tools, ranges) {
        let (pid, mut pause) = spawn_pause()?;
        let mapped = run_map(&newgidmap, "newgidmap", pid, gid, gids)
            .and_then(|()| run_map(&newuidmap, "newuidmap", pid, uid, uids));
        match mapped {
            Ok(()) => return release(pid, &mut pause),
            Err(e) => {
                // A map is written once: a half-mapped namespace is thrown away.
                let _ = pause.kill();
                let _ = pause.wait();
                eprintln!("WARNING: {e}; using a single-ID user namespace instead");
            }
        }
    }
    let (pid, mut pause) = spawn_pause()?;
    let written = write_maps(pid, &format!("0 {uid} 1\n"), &format!("0 {gid} 1\n"), true);
    if let Err(e) = written {
        let _ = pause.kill();
        let _ = pause.wait();
        return Err(e);
    }
    release(pid, &mut pause)
}

/// Writes the ID maps of process `pid`'s new user namespace (`0 1000 1`
/// lines: inside, outside, count), after `setgroups` `deny` with
/// `deny_setgroups` (which an unprivileged writer of a gid map needs).
/// Each map can be written once; the kernel refuses what the writer may
/// not map (a host ID not its own, unless it is root).
pub fn write_maps(pid: i32, uid_map: &str, gid_map: &str, deny_setgroups: bool) -> Result<(), UserNsError> {
    let write = |file: &str, text: &str| {
        std::fs::write(format!("/proc/{pid}/{file}"), text).map_err(io_err(format!(
            "writing /proc/{pid}/{file} ({})",
            text.trim().replace('\n', ", ")
        )))
    };
    if deny_setgroups {
        write("setgroups", "deny")?;
    }
    write("uid_map", uid_map)?;
    write("gid_map", gid_map)
}

fn find_tool(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// `newuidmap PID 0 ID 1 1 START COUNT` (and the same for gids).
fn run_map(tool: &Path, what: &'static str, pid: i32, own: u32, (start, count): (u32, u32)) -> Result<(), UserNsError> {
    let out = Command::new(tool)
        .args([
            pid.to_string(),
            "0".into(),
            own.to_string(),
            "1".into(),
            "1".into(),
            start.to_string(),
            count.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(format!("running {}", tool.display())))?;
    if out.status.success() {
        return Ok(());
    }
    Err(UserNsError::Map {
        tool: what,
        detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// The pause process, stopped after unsharing until [`release`]d.
fn spawn_pause() -> Result<(i32, std::process::Child), UserNsError> {
    let mut child = Command::new("/proc/self/exe")
        .arg0(PAUSE_NAME)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env_clear()
        .spawn()
        .map_err(io_err("starting the pause process"))?;
    let mut ready = [0u8; 1];
    let got = child.stdout.take().map(|mut out| out.read(&mut ready));
    if !matches!(got, Some(Ok(1))) || ready[0] != b'u' {
        let _ = child.kill();
        let _ = child.wait();
        return Err(UserNsError::Pause(
            "it could not create a user namespace (is kernel.unprivileged_userns_clone or user.max_user_namespaces 0?)"
                .into(),
        ));
    }
    Ok((child.id() as i32, child))
}

/// Tells the pause process its IDs are mapped; it then sleeps for good.
fn release(pid: i32, pause: &mut std::process::Child) -> Result<i32, UserNsError> {
    let sent = pause.stdin.take().map(|mut s| s.write_all(b"g"));
    if !matches!(sent, Some(Ok(()))) {
        let _ = pause.kill();
        let _ = pause.wait();
        return Err(UserNsError::Pause("it exited before its IDs were mapped".into()));
    }
    // Not waited for: it outlives this process (reparented to init).
    Ok(pid)
}

/// The pause process's body (barge run as `barge-pause`): a new user and
/// mount namespace, `u` on stdout, then, once the parent wrote `g` on
/// stdin (its IDs mapped), a session of its own with no descriptor of
/// anyone's, asleep until killed.
pub fn pause_main() -> ! {
    // SAFETY: the process has just been executed and runs one thread; no
    // descriptor table is unshared.
    let unshared = unsafe {
        rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER | rustix::thread::UnshareFlags::NEWNS)
    };
    if unshared.is_err() {
        sys::exit(1);
    }
    let stdout = rustix::stdio::stdout();
    if rustix::io::write(stdout, b"u").is_err() {
        sys::exit(1);
    }
    let mut go = [0u8; 1];
    if !matches!(rustix::io::read(rustix::stdio::stdin(), &mut go), Ok(1)) || go[0] != b'g' {
        sys::exit(1);
    }
    let _ = rustix::process::setsid();
    // It stays dumpable: barge opens its /proc/PID/ns files, which a
    // non-dumpable process keeps to the host's root. It holds nothing (no
    // descriptor, no environment) and no container's PID namespace shows it.
    if let Ok(null) = rustix::fs::open("/dev/null", OFlags::RDWR, Mode::empty()) {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    sys::close_from(3);
    let _ = std::env::set_current_dir("/");
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_are_found_by_name_or_number() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:0\n";
        assert_eq!(subordinate_range(text, "alice", 1000), Some((100000, 65536)));
        assert_eq!(subordinate_range(text, "carol", 1001), Some((200000, 1000)));
        assert_eq!(subordinate_range(text, "bob", 1002), None, "an empty range is no range");
        assert_eq!(subordinate_range(text, "dave", 1003), None);
    }

    #[test]
    fn the_single_mapping_warns_about_what_it_cannot_do() {
        let w = Mapping::Single.warning().unwrap();
        assert!(
            w.contains("-u") && w.contains("/etc/subuid") && w.contains("uidmap"),
            "{w}"
        );
        assert_eq!(Mapping::Subordinate.warning(), None);
    }
}
