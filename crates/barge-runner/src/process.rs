//! The process a container runs, and the plumbing of a forked child.
//!
//! [`ProcessPlan`] is the bundle's `process` made ready before forking
//! (C strings, capability masks, the compiled seccomp filter, rlimits);
//! in the child it takes the container's credentials and execs. A forked
//! child reports a failure to its parent on a close-on-exec pipe as
//! `<exit code>:<message>` ([`run_child`], [`started_or_reaped`]).

use crate::{cstr, RunnerError};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::process::Resource;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The rlimit names docker accepts, with their OCI spellings and resources.
pub const RLIMITS: &[(&str, &str, Resource)] = &[
    ("core", "RLIMIT_CORE", Resource::Core),
    ("cpu", "RLIMIT_CPU", Resource::Cpu),
    ("data", "RLIMIT_DATA", Resource::Data),
    ("fsize", "RLIMIT_FSIZE", Resource::Fsize),
    ("locks", "RLIMIT_LOCKS", Resource::Locks),
    ("memlock", "RLIMIT_MEMLOCK", Resource::Memlock),
    ("msgqueue", "RLIMIT_MSGQUEUE", Resource::Msgqueue),
    ("nice", "RLIMIT_NICE", Resource::Nice),
    ("nofile", "RLIMIT_NOFILE", Resource::Nofile),
    ("nproc", "RLIMIT_NPROC", Resource::Nproc),
    ("rss", "RLIMIT_RSS", Resource::Rss),
    ("rtprio", "RLIMIT_RTPRIO", Resource::Rtprio),
    ("rttime", "RLIMIT_RTTIME", Resource::Rttime),
    ("sigpending", "RLIMIT_SIGPENDING", Resource::Sigpending),
    ("stack", "RLIMIT_STACK", Resource::Stack),
];

/// The `setrlimit` resource of an OCI rlimit type (`RLIMIT_NPROC`).
pub fn rlimit_resource(oci_name: &str) -> Option<Resource> {
    // RLIMIT_AS: in the OCI spec, not among docker's `--ulimit` names.
    let address_space = (oci_name == "RLIMIT_AS").then_some(Resource::As);
    RLIMITS
        .iter()
        .find(|(_, oci, _)| *oci == oci_name)
        .map(|(_, _, r)| *r)
        .or(address_space)
}

/// Start time of a process, field 22 of /proc/PID/stat.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// What the container's stdin, stdout and stderr are. Never barge's own:
/// a file or terminal of the host must not reach the container, so the
/// monitor relays pipes (or a pty the container opens) instead.
pub enum ChildIo {
    /// These become 0, 1 and 2; without `stdin`, the container's own `/dev/null`.
    Fds {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A pseudo-terminal opened inside the container; its master comes back
    /// in [`Started::terminal`].
    Terminal,
}

/// A started container process.
pub struct Started {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub start_time: u64,
    /// The pty master, for [`ChildIo::Terminal`].
    pub terminal: Option<OwnedFd>,
}

/// The process to exec and its credentials, computed before forking.
pub struct ProcessPlan {
    pub(crate) cwd: PathBuf,
    pub(crate) argv: Vec<CString>,
    pub(crate) envp: Vec<CString>,
    pub(crate) path_dirs: Vec<Vec<u8>>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) groups: Vec<u32>,
    /// Bounding set; also effective and permitted for uid 0.
    pub(crate) caps: u64,
    /// Effective and permitted sets for a non-root uid, as the bundle
    /// asks (within the bounding set; none when it asks none, as barge's
    /// own bundles do): kept across the uid change, as runc does.
    pub(crate) effective: u64,
    pub(crate) permitted: u64,
    /// Inheritable and ambient sets, each within the bounding set.
    pub(crate) inheritable: u64,
    pub(crate) ambient: u64,
    /// The system call filter, compiled before forking.
    pub(crate) seccomp: Option<crate::seccomp::Program>,
    /// RLIMIT_NOFILE (soft, hard).
    pub(crate) nofile: (u64, u64),
    /// rlimits other than RLIMIT_NOFILE: (resource, soft, hard).
    pub(crate) rlimits: Vec<(Resource, u64, u64)>,
    /// A missing working directory is made (the container's command, as
    /// docker does) or fails the start with 126 (`exec -w`, as docker).
    pub(crate) create_cwd: bool,
    /// `process.noNewPrivileges`: off by default, as docker and the OCI
    /// spec have it, so setuid programs and file capabilities work.
    pub(crate) no_new_privs: bool,
}

impl ProcessPlan {
    pub fn new(
        p: &crate::spec::Process,
        seccomp: Option<&crate::spec::LinuxSeccomp>,
    ) -> Result<ProcessPlan, RunnerError> {
        let env = p.env().as_deref().unwrap_or_default();
        let path_dirs = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| d.as_bytes().to_vec())
            .collect();
        let caps = p.capabilities().as_ref();
        let bounding = crate::caps::mask(&crate::spec::capability_names(caps.and_then(|c| c.bounding().as_ref())))?;
        let within_bounding = |set| -> Result<u64, RunnerError> {
            Ok(crate::caps::mask(&crate::spec::capability_names(set))? & bounding)
        };
        let inheritable = within_bounding(caps.and_then(|c| c.inheritable().as_ref()))?;
        let ambient = within_bounding(caps.and_then(|c| c.ambient().as_ref()))? & inheritable;
        let effective = within_bounding(caps.and_then(|c| c.effective().as_ref()))?;
        let permitted = within_bounding(caps.and_then(|c| c.permitted().as_ref()))?;
        let rlimits = p.rlimits().as_deref().unwrap_or_default();
        let nofile = |r: &&crate::spec::PosixRlimit| r.typ() == crate::spec::PosixRlimitType::RlimitNofile;
        let seccomp = seccomp.map(crate::seccomp::LinuxSeccomp::from_oci).transpose()?;
        Ok(ProcessPlan {
            cwd: p.cwd().clone(),
            argv: p.args().iter().flatten().map(cstr).collect::<Result<_, _>>()?,
            envp: env.iter().map(cstr).collect::<Result<_, _>>()?,
            path_dirs,
            uid: p.user().uid(),
            gid: p.user().gid(),
            groups: p.user().additional_gids().clone().unwrap_or_default(),
            caps: bounding,
            effective,
            permitted,
            inheritable,
            ambient,
            seccomp: seccomp.as_ref().map(crate::seccomp::compile).transpose()?,
            nofile: rlimits
                .iter()
                .find(nofile)
                .map(|r| (r.soft(), r.hard()))
                .unwrap_or((1024, 4096)),
            rlimits: rlimits
                .iter()
                .filter(|r| !nofile(r))
                .map(|r| {
                    let kind = r.typ().to_string();
                    rlimit_resource(&kind)
                        .map(|n| (n, r.soft(), r.hard()))
                        .ok_or_else(|| RunnerError::Corrupt(format!("unknown rlimit {kind:?} in the bundle")))
                })
                .collect::<Result<_, _>>()?,
            create_cwd: true,
            no_new_privs: p.no_new_privileges().unwrap_or(false),
        })
    }
}

/// A failure in a forked child: its exit status and message.
pub type ChildError = (i32, String);

/// Runs the setup of a forked child, which returns only on failure, and
/// leaves the child: the failure goes to its error pipe as `<exit
/// code>:<message>`, then `_exit` (no destructor of the parent's runs
/// here). A panic in the setup is a failure too (exit 125), never an
/// unwind into the parent's code that this process still holds a copy of.
pub fn run_child(err_pipe: OwnedFd, setup: impl FnOnce() -> Result<std::convert::Infallible, ChildError>) -> ! {
    let (code, message) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(setup)) {
        Ok(Ok(never)) => match never {},
        Ok(Err(e)) => e,
        Err(_) => (125, "the container's setup failed unexpectedly".into()),
    };
    let _ = std::fs::File::from(err_pipe).write_all(format!("{code}:{message}").as_bytes());
    crate::sys::exit(code)
}

/// `<exit code>:<message>` as a failure (125 when the code is missing).
pub fn parse_failure(msg: String) -> ChildError {
    msg.split_once(':')
        .map(|(c, m)| (c.parse().unwrap_or(125), m.to_string()))
        .unwrap_or((125, msg))
}

/// Waits for the child `pid` to exec (its close-on-exec error pipe reaches
/// end of file) or fail (it wrote why; it is reaped).
pub fn started_or_reaped(pid: i32, err_pipe: OwnedFd) -> Result<(), RunnerError> {
    let mut msg = String::new();
    let _ = std::fs::File::from(err_pipe).read_to_string(&mut msg);
    if msg.is_empty() {
        return Ok(());
    }
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
    }
    let (code, message) = parse_failure(msg);
    Err(RunnerError::Start { code, message })
}

/// [`started_or_reaped`] for a child that stops before `execve` until it
/// is started (`Plan::gate_start`): a NUL byte first means it waits there.
pub fn waiting_or_reaped(pid: i32, err_pipe: OwnedFd) -> Result<(), RunnerError> {
    let mut first = [0u8; 1];
    let mut file = std::fs::File::from(err_pipe);
    match file.read(&mut first) {
        Ok(1) if first[0] == 0 => Ok(()),
        Ok(1) => {
            let mut msg = String::from_utf8_lossy(&first).into_owned();
            let _ = file.read_to_string(&mut msg);
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            }
            let (code, message) = parse_failure(msg);
            Err(RunnerError::Start { code, message })
        }
        _ => Err(RunnerError::Start {
            code: 125,
            message: "the container's process ended before it was set up".into(),
        }),
    }
}

/// A failed call in a child, as a [`ChildError`] with status 125.
pub fn fail(what: impl std::fmt::Display) -> impl FnOnce(rustix::io::Errno) -> ChildError {
    let what = what.to_string();
    move |e| (125, format!("{what}: {e}"))
}

impl ProcessPlan {
    /// The bundle's rlimits (`--ulimit`), for the container's command and
    /// every `exec`.
    fn set_rlimits(&self) -> Result<(), ChildError> {
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(1 << 20);
        let limit = rustix::process::Rlimit {
            current: Some(self.nofile.0.min(nr_open)),
            maximum: Some(self.nofile.1.min(nr_open)),
        };
        if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Nofile, limit) {
            // Without CAP_SYS_RESOURCE the hard limit cannot rise: use all of the current one.
            let current = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            let capped = rustix::process::Rlimit {
                current: current.maximum,
                maximum: current.maximum,
            };
            rustix::process::setrlimit(rustix::process::Resource::Nofile, capped)
                .map_err(|_| fail("setting RLIMIT_NOFILE")(e))?;
        }
        for &(resource, soft, hard) in &self.rlimits {
            let limit = rustix::process::Rlimit {
                current: Some(soft),
                maximum: Some(hard),
            };
            rustix::process::setrlimit(resource, limit).map_err(fail(format!("setting rlimit {resource:?}")))?;
        }
        Ok(())
    }

    /// `barge exec`'s plan: a working directory that does not exist fails
    /// with 126 and nothing is created in the container.
    pub fn for_exec(mut self) -> ProcessPlan {
        self.create_cwd = false;
        self
    }

    /// In the container: rlimits, working directory (created if missing, as docker
    /// does for the container's command), the program found on PATH, credentials, capabilities,
    /// `no_new_privs` when asked for, every fd but stdio marked close-on-exec, and the
    /// seccomp filter. With `no_new_privs` the filter comes last: nothing but
    /// `execve` (of the command, or of `--init`'s program) runs under it.
    /// Without, installing a filter takes CAP_SYS_ADMIN, so it comes before
    /// the credentials drop it (as runc does); the setgroups, setresuid,
    /// capset and prctl that follow are ones every profile docker ships allows.
    pub fn enter(&self) -> Result<CString, ChildError> {
        self.enter_with(false)
    }

    /// `exec`'s [`Self::enter`], after [`Self::install_filter_before_confine`].
    pub fn enter_for_exec(&self) -> Result<CString, ChildError> {
        self.enter_with(!self.no_new_privs)
    }

    /// `exec` gives up CAP_SYS_ADMIN ([`Self::confine`]) before it forks
    /// into the container's PID namespace; without `no_new_privs` the
    /// filter needs that capability, so it is installed here, before.
    pub fn install_filter_before_confine(&self) -> Result<(), ChildError> {
        if !self.no_new_privs {
            if let Some(filter) = &self.seccomp {
                filter.install().map_err(fail("installing the seccomp filter"))?;
            }
        }
        Ok(())
    }

    fn enter_with(&self, filter_installed: bool) -> Result<CString, ChildError> {
        self.set_rlimits()?;
        if self.create_cwd {
            if let Ok(root) = rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) {
                let rel = self.cwd.strip_prefix("/").unwrap_or(&self.cwd);
                if !rel.as_os_str().is_empty() {
                    let _ = crate::child::open_in_root(&root, rel, false);
                }
            }
        }
        let cwd = self.cwd.display().to_string();
        rustix::process::chdir(&self.cwd).map_err(|e| {
            let (code, message) = fail(format!("chdir to working directory {cwd:?}"))(e);
            (if self.create_cwd { code } else { 126 }, message)
        })?;
        let program = self.find_program()?;
        let install =
            |filter: &crate::seccomp::Program| filter.install().map_err(fail("installing the seccomp filter"));
        if !self.no_new_privs && !filter_installed {
            self.seccomp.as_ref().map(install).transpose()?;
        }
        self.set_credentials()?;
        if self.no_new_privs {
            rustix::thread::set_no_new_privs(true).map_err(fail("setting no_new_privs"))?;
        }
        crate::sys::cloexec_from(3);
        if self.no_new_privs {
            self.seccomp.as_ref().map(install).transpose()?;
        }
        Ok(program)
    }

    /// The command's path: as given when it has a `/`, else found on the container's PATH.
    fn find_program(&self) -> Result<CString, ChildError> {
        let arg0 = self.argv.first().ok_or((125, "no command".to_string()))?;
        let bytes = arg0.as_bytes();
        if bytes.contains(&b'/') {
            return Ok(arg0.clone());
        }
        for dir in &self.path_dirs {
            let mut cand = dir.clone();
            cand.push(b'/');
            cand.extend_from_slice(bytes);
            let path = Path::new(std::ffi::OsStr::from_bytes(&cand));
            if let Ok(md) = std::fs::metadata(path) {
                use std::os::unix::fs::PermissionsExt;
                if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                    return CString::new(cand).map_err(|_| (125, "bad path".to_string()));
                }
            }
        }
        Err((
            127,
            format!(
                "exec: {:?}: executable file not found in $PATH",
                String::from_utf8_lossy(bytes)
            ),
        ))
    }

    /// Drops every capability not in `keep` from the bounding set (which
    /// needs CAP_SETPCAP in the effective set).
    fn limit_bounding_set(keep: u64) -> Result<(), ChildError> {
        use rustix::thread::CapabilitySet;
        let last = crate::caps::last_cap();
        for cap in 0..=last.min(63) {
            if keep & (1 << cap) == 0 {
                match rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(1 << cap)) {
                    Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                    Err(e) => return Err(fail("dropping capabilities")(e)),
                }
            }
        }
        Ok(())
    }

    /// Keeps only the capabilities in `keep`: bounding, effective and
    /// permitted sets (the uid does not change here).
    fn limit_capabilities(keep: u64) -> Result<(), ChildError> {
        use rustix::thread::{CapabilitySet, CapabilitySets};
        Self::limit_bounding_set(keep)?;
        let current = rustix::thread::capabilities(None).map_err(fail("reading capabilities"))?;
        let set = CapabilitySet::from_bits_retain(keep);
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: current.effective & set,
                permitted: current.permitted & set,
                inheritable: CapabilitySet::empty(),
            },
        )
        .map_err(fail("dropping capabilities"))
    }

    /// Before a process enters a container's PID namespace, where the
    /// container can see it: no capability beyond the container's own
    /// (and those taking the container's user and bounding set need), and
    /// no copy of barge's environment, so that a container allowed to
    /// ptrace gains nothing by taking it over.
    pub fn confine(&self) -> Result<(), ChildError> {
        // CAP_SETGID, CAP_SETUID, and CAP_SETPCAP to finish the bounding set.
        const SETUP: u64 = (1 << 6) | (1 << 7) | (1 << 8);
        Self::limit_capabilities(self.caps | SETUP)?;
        crate::sys::scrub_environment();
        Ok(())
    }

    fn set_credentials(&self) -> Result<(), ChildError> {
        use rustix::thread::{CapabilitySet, CapabilitySets};
        Self::limit_bounding_set(self.caps)?;
        let groups: Vec<rustix::process::Gid> =
            self.groups.iter().map(|g| rustix::process::Gid::from_raw(*g)).collect();
        match rustix::thread::set_thread_groups(&groups) {
            // A single-ID rootless namespace denies setgroups; with no
            // group to set, the process keeps those it has (its user's).
            Err(rustix::io::Errno::PERM) if groups.iter().all(|g| g.as_raw() == self.gid) && setgroups_denied() => {}
            r => r.map_err(fail("setgroups"))?,
        }
        let gid = rustix::process::Gid::from_raw(self.gid);
        rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(fail(format!("setgid {}", self.gid)))?;
        // A non-root user keeps the permitted set asked for across the
        // uid change (PR_SET_KEEPCAPS; cleared again by execve).
        let keep = self.uid != 0 && self.permitted != 0;
        if keep {
            rustix::thread::set_keep_capabilities(true).map_err(fail("keeping capabilities"))?;
        }
        let uid = rustix::process::Uid::from_raw(self.uid);
        rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(fail(format!("setuid {}", self.uid)))?;
        let (effective, permitted) = if self.uid == 0 {
            (self.caps, self.caps)
        } else {
            (self.effective, self.permitted)
        };
        // Each within the permitted set, as the kernel requires; one it
        // refuses (an effective or inheritable capability not permitted
        // to a non-root user) fails the start.
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: CapabilitySet::from_bits_retain(effective),
                permitted: CapabilitySet::from_bits_retain(permitted),
                inheritable: CapabilitySet::from_bits_retain(self.inheritable),
            },
        )
        .map_err(fail("setting capabilities"))?;
        if keep {
            rustix::thread::set_keep_capabilities(false).map_err(fail("keeping capabilities"))?;
        }
        let _ = rustix::thread::clear_ambient_capability_set();
        // Each ambient capability is in the permitted and inheritable sets
        // just set, as the kernel requires; one it refuses fails the start.
        for bit in (0..64).filter(|b| self.ambient & (1u64 << b) != 0) {
            rustix::thread::configure_capability_in_ambient_set(CapabilitySet::from_bits_retain(1u64 << bit), true)
                .map_err(fail("raising an ambient capability"))?;
        }
        Ok(())
    }

    /// execve; returns only the error, with docker's exit status for it.
    pub fn exec(&self, program: &CString) -> ChildError {
        execve(program, &self.argv, &self.envp)
    }
}

/// execve; returns only the error, with docker's exit status for it.
pub(crate) fn execve(program: &CString, argv: &[CString], envp: &[CString]) -> ChildError {
    let e = crate::sys::execve(program, argv, envp);
    let name = String::from_utf8_lossy(program.as_bytes()).into_owned();
    match rustix::io::Errno::from_io_error(&e) {
        Some(rustix::io::Errno::NOENT) => (127, format!("exec: {name:?}: no such file or directory")),
        Some(rustix::io::Errno::ACCESS) => (126, format!("exec: {name:?}: permission denied")),
        _ => (126, format!("exec: {name:?}: {e}")),
    }
}

/// Whether this user namespace denies setgroups(2) (`/proc/self/setgroups`).
fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}
