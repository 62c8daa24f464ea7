//! Seccomp: docker's default profile, `--security-opt seccomp=…`, and
//! barge's own compiler from the OCI `linux.seccomp` section to a classic
//! BPF program.
//!
//! `create` turns a profile in docker's format (the built-in
//! [`default_profile`], or a JSON file) into the OCI runtime-spec section
//! for this architecture and the container's capabilities
//! ([`resolve`]): `includes`/`excludes` are evaluated there, so the bundle
//! holds plain rules that runc applies the same way. The runner compiles
//! that section with [`compile`] before it forks (the child only calls
//! [`Program::install`], which allocates nothing) and installs the program
//! as the last step before `execve`.
//!
//! The program checks the architecture first (anything but the native ABI
//! is killed, as are x32 system calls on x86_64), then finds the system
//! call by a binary search over its number, evaluates its rules in order
//! (64-bit argument comparisons on both halves), and falls back to the
//! default action. System calls numbered above every one barge knows get
//! `ENOSYS` (unless the default allows them), so that new libc fallbacks
//! work, as runc does. Names unknown on this architecture are skipped.
//! It is not for other architectures' ABIs (i386 binaries on x86_64 are
//! killed) and not for `SCMP_ACT_NOTIFY`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// The OCI runtime-spec section (`linux.seccomp` in config.json).

/// `linux.seccomp` of the OCI runtime spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxSeccomp {
    pub default_action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default)]
    pub syscalls: Vec<SyscallRule>,
}

/// One entry of `syscalls`: these names get `action` when every argument
/// condition holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    pub names: Vec<String>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgCondition>,
}

/// A comparison of one system call argument (64 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgCondition {
    pub index: u32,
    pub value: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value_two: u64,
    pub op: Op,
}

impl LinuxSeccomp {
    /// This section in `oci-spec`'s types, for the bundle. Both are the
    /// runtime spec's JSON, so the conversion goes through it.
    pub fn to_oci(&self) -> Result<oci_spec::runtime::LinuxSeccomp, SeccompError> {
        serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .map_err(SeccompError::Section)
    }

    /// A bundle's section, in the types [`compile`] takes.
    pub fn from_oci(section: &oci_spec::runtime::LinuxSeccomp) -> Result<LinuxSeccomp, SeccompError> {
        serde_json::to_value(section)
            .and_then(serde_json::from_value)
            .map_err(SeccompError::Section)
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    #[serde(rename = "SCMP_ACT_KILL")]
    Kill,
    #[serde(rename = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

/// Argument comparisons. For `MaskedEq`, `value` is the mask and
/// `valueTwo` what the masked argument must equal (libseccomp's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error(
        "invalid --security-opt {0:?}: barge supports seccomp=unconfined, seccomp=PROFILE.json and no-new-privileges"
    )]
    BadOption(String),
    #[error("reading seccomp profile {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("seccomp profile {path} is not a valid profile: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("seccomp action {0} is not supported by barge's runner")]
    UnsupportedAction(&'static str),
    #[error("seccomp rule for {name}: argument index {index} is out of range (0 to 5)")]
    ArgIndex { name: String, index: u32 },
    #[error("seccomp errnoRet {0} is out of range (at most 4095)")]
    Errno(u32),
    #[error("seccomp flag {0:?} is not supported")]
    Flag(String),
    #[error("seccomp minKernel {0:?} is not a kernel version like 4.8")]
    KernelVersion(String),
    #[error("the seccomp filter needs {0} instructions, more than the kernel's limit of 4096")]
    TooLarge(usize),
    #[error("internal error assembling the seccomp filter: a jump goes backwards")]
    Internal,
    #[error("the seccomp section does not fit the runtime spec: {0}")]
    Section(serde_json::Error),
}

// ---------------------------------------------------------------------------
// `--security-opt`

/// Which seccomp profile a container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompChoice {
    /// docker's default profile.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile file in docker's (or the OCI) format.
    Profile(PathBuf),
}

/// What `--security-opt` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOptions {
    pub seccomp: SeccompChoice,
    /// `no-new-privileges[=true|false]`; `None` when not given (docker's
    /// default, off, unless barge.json turns it on).
    pub no_new_privileges: Option<bool>,
}

/// Parses `--security-opt` values as docker spells them (`KEY=VALUE`, or
/// the older `KEY:VALUE`).
pub fn parse_security_opts(opts: &[String]) -> Result<SecurityOptions, SeccompError> {
    let mut out = SecurityOptions::default();
    for o in opts {
        let bad = || SeccompError::BadOption(o.clone());
        let (key, value) = match o.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (o.as_str(), None),
        };
        match (key, value) {
            ("seccomp", Some("unconfined")) => out.seccomp = SeccompChoice::Unconfined,
            ("seccomp", Some("builtin")) => out.seccomp = SeccompChoice::Default,
            ("seccomp", Some(path)) if !path.is_empty() => out.seccomp = SeccompChoice::Profile(PathBuf::from(path)),
            ("no-new-privileges", None | Some("true")) => out.no_new_privileges = Some(true),
            ("no-new-privileges", Some("false")) => out.no_new_privileges = Some(false),
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// The `linux.seccomp` section for a container with these capabilities
/// (the bounding set), or `None` for `unconfined`.
pub fn for_container(choice: &SeccompChoice, caps: &[String]) -> Result<Option<LinuxSeccomp>, SeccompError> {
    let profile = match choice {
        SeccompChoice::Unconfined => return Ok(None),
        SeccompChoice::Default => default_profile(),
        SeccompChoice::Profile(path) => load_profile(path)?,
    };
    let section = resolve(&profile, caps)?;
    // Refuse what the runner could not install now, not at start.
    compile(&section)?;
    Ok(Some(section))
}

// ---------------------------------------------------------------------------
// docker's profile format

/// A profile in docker's format: the OCI section plus `includes` and
/// `excludes` per rule, and `name` as well as `names`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: Action,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub syscalls: Vec<ProfileRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileRule {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub names: Vec<String>,
    pub action: Action,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<ArgCondition>,
    #[serde(default)]
    pub includes: Selector,
    #[serde(default)]
    pub excludes: Selector,
}

/// When a rule applies: capabilities, architectures (Go's names: amd64,
/// arm64, …) and a minimum kernel version.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// Reads a profile file.
pub fn load_profile(path: &Path) -> Result<Profile, SeccompError> {
    let bytes = std::fs::read(path).map_err(|source| SeccompError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| SeccompError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

fn cap_name(c: &str) -> String {
    let up = c.trim().to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

fn kernel_at_least(min: &str) -> Result<bool, SeccompError> {
    let parse = |s: &str| -> Option<(u32, u32)> {
        let mut it = s.split(['.', '-', '+']);
        let major = it.next()?.parse().ok()?;
        let minor = it.next().map_or(Some(0), |m| m.parse().ok())?;
        Some((major, minor))
    };
    let wanted = parse(min).ok_or_else(|| SeccompError::KernelVersion(min.to_string()))?;
    let release = rustix::system::uname().release().to_string_lossy().into_owned();
    Ok(parse(&release).is_none_or(|have| have >= wanted))
}

/// Evaluates a profile for this architecture, kernel and capability set,
/// as docker does before it hands the section to the runtime.
pub fn resolve(profile: &Profile, caps: &[String]) -> Result<LinuxSeccomp, SeccompError> {
    let caps: Vec<String> = caps.iter().map(|c| cap_name(c)).collect();
    let has = |c: &String| caps.contains(&cap_name(c));
    let mut syscalls = Vec::new();
    for rule in &profile.syscalls {
        let inc = &rule.includes;
        let exc = &rule.excludes;
        if !inc.caps.iter().all(has) || exc.caps.iter().any(has) {
            continue;
        }
        if (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == ARCH.go))
            || exc.arches.iter().any(|a| a == ARCH.go)
        {
            continue;
        }
        if let Some(min) = &inc.min_kernel {
            if !kernel_at_least(min)? {
                continue;
            }
        }
        if let Some(min) = &exc.min_kernel {
            if kernel_at_least(min)? {
                continue;
            }
        }
        let names: Vec<String> = rule.name.iter().chain(rule.names.iter()).cloned().collect();
        if names.is_empty() {
            continue;
        }
        syscalls.push(SyscallRule {
            names,
            action: rule.action,
            errno_ret: rule.errno_ret,
            args: rule.args.clone(),
        });
    }
    Ok(LinuxSeccomp {
        default_action: profile.default_action,
        default_errno_ret: profile.default_errno_ret,
        architectures: vec![ARCH.scmp.to_string()],
        flags: profile.flags.clone(),
        syscalls,
    })
}

// ---------------------------------------------------------------------------
// docker's default profile (moby profiles/seccomp/default.json), as data.

/// Allowed for every container.
#[rustfmt::skip]
const DOCKER_ALLOW: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod",
    "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
    "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
    "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl",
    "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
    "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex",
    "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
    "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
    "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid",
    "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
    "io_setup", "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32",
    "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek",
    "lsetxattr", "lstat", "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore",
    "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat",
    "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
    "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
    "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop",
    "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
    "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt",
    "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt",
    "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall",
    "socketpair", "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
    "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime",
    "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
    "writev",
];

/// Allowed only with a capability (docker's `includes.caps` groups).
#[rustfmt::skip]
const DOCKER_BY_CAP: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
            "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd",
            "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Allowed only on some architectures (Go's names).
#[rustfmt::skip]
const DOCKER_BY_ARCH: &[(&[&str], &[&str])] = &[
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (
        &["arm", "arm64"],
        &["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
    ),
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (&["s390", "s390x"], &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"]),
    (&["riscv64"], &["riscv_flush_icache"]),
];

/// `personality` values docker allows: PER_LINUX, PER_LINUX32,
/// UNAME26, UNAME26|PER_LINUX32, and the 0xffffffff query.
const DOCKER_PERSONALITIES: &[u64] = &[0, 8, 0x20000, 0x20008, 0xffff_ffff];

/// Namespace flags `clone` may not use without CAP_SYS_ADMIN:
/// NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

const AF_VSOCK: u64 = 40;

/// docker's default profile: EPERM for everything not listed.
pub fn default_profile() -> Profile {
    let allow = |names: &[&str]| ProfileRule {
        name: None,
        names: names.iter().map(|n| n.to_string()).collect(),
        action: Action::Allow,
        errno_ret: None,
        args: Vec::new(),
        includes: Selector::default(),
        excludes: Selector::default(),
    };
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let arg0 = |op, value| ArgCondition {
        index: 0,
        value,
        value_two: 0,
        op,
    };
    let mut rules = vec![allow(DOCKER_ALLOW)];
    rules.push(ProfileRule {
        includes: Selector {
            min_kernel: Some("4.8".into()),
            ..Selector::default()
        },
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    rules.push(ProfileRule {
        args: vec![arg0(Op::Ne, AF_VSOCK)],
        ..allow(&["socket"])
    });
    for p in DOCKER_PERSONALITIES {
        rules.push(ProfileRule {
            args: vec![arg0(Op::Eq, *p)],
            ..allow(&["personality"])
        });
    }
    for (arches, names) in DOCKER_BY_ARCH {
        rules.push(ProfileRule {
            includes: Selector {
                arches: strings(arches),
                ..Selector::default()
            },
            ..allow(names)
        });
    }
    for (cap, names) in DOCKER_BY_CAP {
        rules.push(ProfileRule {
            includes: Selector {
                caps: vec![cap.to_string()],
                ..Selector::default()
            },
            ..allow(names)
        });
    }
    // Without CAP_SYS_ADMIN: clone without namespace flags (its flags are
    // the second argument on s390), and clone3, whose flags a filter cannot
    // see, fails with ENOSYS so that libc falls back to clone.
    let no_admin = Selector {
        caps: vec!["CAP_SYS_ADMIN".into()],
        ..Selector::default()
    };
    rules.push(ProfileRule {
        args: vec![arg0(Op::MaskedEq, CLONE_NAMESPACE_FLAGS)],
        excludes: Selector {
            arches: strings(&["s390", "s390x"]),
            ..no_admin.clone()
        },
        ..allow(&["clone"])
    });
    rules.push(ProfileRule {
        args: vec![ArgCondition {
            index: 1,
            ..arg0(Op::MaskedEq, CLONE_NAMESPACE_FLAGS)
        }],
        includes: Selector {
            arches: strings(&["s390", "s390x"]),
            ..Selector::default()
        },
        excludes: no_admin.clone(),
        ..allow(&["clone"])
    });
    rules.push(ProfileRule {
        action: Action::Errno,
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: no_admin,
        ..allow(&["clone3"])
    });
    Profile {
        default_action: Action::Errno,
        default_errno_ret: Some(libc::EPERM as u32),
        flags: Vec::new(),
        syscalls: rules,
    }
}

// ---------------------------------------------------------------------------
// System call numbers of this architecture.

struct Arch {
    /// `AUDIT_ARCH_*`: what `seccomp_data.arch` holds for the native ABI.
    audit: u32,
    /// libseccomp's name, for the bundle's `architectures`.
    scmp: &'static str,
    /// Go's name, which docker profiles use in `arches`.
    go: &'static str,
    /// System calls with this bit set are the x32 ABI (x86_64 only).
    x32_bit: Option<u32>,
}

#[cfg(target_arch = "x86_64")]
const ARCH: Arch = Arch {
    audit: 0xC000_003E,
    scmp: "SCMP_ARCH_X86_64",
    go: "amd64",
    x32_bit: Some(0x4000_0000),
};

#[cfg(target_arch = "aarch64")]
const ARCH: Arch = Arch {
    audit: 0xC000_00B7,
    scmp: "SCMP_ARCH_AARCH64",
    go: "arm64",
    x32_bit: None,
};

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("barge's seccomp compiler supports x86_64 and aarch64");

macro_rules! numbers {
    ($($sys:ident),* $(,)?) => {
        &[$((stringify!($sys), libc::$sys as u32)),*]
    };
}

/// `SYS_<name>` and its number, from libc for this target.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
const NATIVE: &[(&str, u32)] = numbers![
    SYS__sysctl, SYS_accept, SYS_accept4, SYS_access, SYS_acct, SYS_add_key, SYS_adjtimex, SYS_afs_syscall,
    SYS_alarm, SYS_arch_prctl, SYS_bind, SYS_bpf, SYS_brk, SYS_capget, SYS_capset, SYS_chdir, SYS_chmod,
    SYS_chown, SYS_chroot, SYS_clock_adjtime, SYS_clock_getres, SYS_clock_gettime, SYS_clock_nanosleep,
    SYS_clock_settime, SYS_clone, SYS_close, SYS_connect, SYS_copy_file_range, SYS_creat, SYS_delete_module,
    SYS_dup, SYS_dup2, SYS_dup3, SYS_epoll_create, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_ctl_old,
    SYS_epoll_pwait, SYS_epoll_wait, SYS_epoll_wait_old, SYS_eventfd, SYS_eventfd2, SYS_execve, SYS_execveat,
    SYS_exit, SYS_exit_group, SYS_faccessat, SYS_fadvise64, SYS_fallocate, SYS_fanotify_init,
    SYS_fanotify_mark, SYS_fchdir, SYS_fchmod, SYS_fchmodat, SYS_fchown, SYS_fchownat, SYS_fcntl,
    SYS_fdatasync, SYS_fgetxattr, SYS_finit_module, SYS_flistxattr, SYS_flock, SYS_fork, SYS_fremovexattr,
    SYS_fsetxattr, SYS_fstat, SYS_fstatfs, SYS_fsync, SYS_ftruncate, SYS_futex, SYS_futimesat,
    SYS_get_mempolicy, SYS_get_robust_list, SYS_get_thread_area, SYS_getcpu, SYS_getcwd, SYS_getdents,
    SYS_getdents64, SYS_getegid, SYS_geteuid, SYS_getgid, SYS_getgroups, SYS_getitimer, SYS_getpeername,
    SYS_getpgid, SYS_getpgrp, SYS_getpid, SYS_getpmsg, SYS_getppid, SYS_getpriority, SYS_getrandom,
    SYS_getresgid, SYS_getresuid, SYS_getrlimit, SYS_getrusage, SYS_getsid, SYS_getsockname, SYS_getsockopt,
    SYS_gettid, SYS_gettimeofday, SYS_getuid, SYS_getxattr, SYS_init_module, SYS_inotify_add_watch,
    SYS_inotify_init, SYS_inotify_init1, SYS_inotify_rm_watch, SYS_io_cancel, SYS_io_destroy, SYS_io_getevents,
    SYS_io_setup, SYS_io_submit, SYS_ioctl, SYS_ioperm, SYS_iopl, SYS_ioprio_get, SYS_ioprio_set, SYS_kcmp,
    SYS_kexec_file_load, SYS_kexec_load, SYS_keyctl, SYS_kill, SYS_lchown, SYS_lgetxattr, SYS_link, SYS_linkat,
    SYS_listen, SYS_listxattr, SYS_llistxattr, SYS_lookup_dcookie, SYS_lremovexattr, SYS_lseek, SYS_lsetxattr,
    SYS_lstat, SYS_madvise, SYS_mbind, SYS_membarrier, SYS_memfd_create, SYS_migrate_pages, SYS_mincore,
    SYS_mkdir, SYS_mkdirat, SYS_mknod, SYS_mknodat, SYS_mlock, SYS_mlock2, SYS_mlockall, SYS_mmap,
    SYS_modify_ldt, SYS_mount, SYS_move_pages, SYS_mprotect, SYS_mq_getsetattr, SYS_mq_notify, SYS_mq_open,
    SYS_mq_timedreceive, SYS_mq_timedsend, SYS_mq_unlink, SYS_mremap, SYS_msgctl, SYS_msgget, SYS_msgrcv,
    SYS_msgsnd, SYS_msync, SYS_munlock, SYS_munlockall, SYS_munmap, SYS_name_to_handle_at, SYS_nanosleep,
    SYS_newfstatat, SYS_nfsservctl, SYS_open, SYS_open_by_handle_at, SYS_openat, SYS_pause,
    SYS_perf_event_open, SYS_personality, SYS_pipe, SYS_pipe2, SYS_pivot_root, SYS_pkey_alloc, SYS_pkey_free,
    SYS_pkey_mprotect, SYS_poll, SYS_ppoll, SYS_prctl, SYS_pread64, SYS_preadv, SYS_preadv2, SYS_prlimit64,
    SYS_process_vm_readv, SYS_process_vm_writev, SYS_pselect6, SYS_ptrace, SYS_putpmsg, SYS_pwrite64,
    SYS_pwritev, SYS_pwritev2, SYS_quotactl, SYS_read, SYS_readahead, SYS_readlink, SYS_readlinkat, SYS_readv,
    SYS_reboot, SYS_recvfrom, SYS_recvmmsg, SYS_recvmsg, SYS_remap_file_pages, SYS_removexattr, SYS_rename,
    SYS_renameat, SYS_renameat2, SYS_request_key, SYS_restart_syscall, SYS_rmdir, SYS_rseq, SYS_rt_sigaction,
    SYS_rt_sigpending, SYS_rt_sigprocmask, SYS_rt_sigqueueinfo, SYS_rt_sigreturn, SYS_rt_sigsuspend,
    SYS_rt_sigtimedwait, SYS_rt_tgsigqueueinfo, SYS_sched_get_priority_max, SYS_sched_get_priority_min,
    SYS_sched_getaffinity, SYS_sched_getattr, SYS_sched_getparam, SYS_sched_getscheduler,
    SYS_sched_rr_get_interval, SYS_sched_setaffinity, SYS_sched_setattr, SYS_sched_setparam,
    SYS_sched_setscheduler, SYS_sched_yield, SYS_seccomp, SYS_security, SYS_select, SYS_semctl, SYS_semget,
    SYS_semop, SYS_semtimedop, SYS_sendfile, SYS_sendmmsg, SYS_sendmsg, SYS_sendto, SYS_set_mempolicy,
    SYS_set_robust_list, SYS_set_thread_area, SYS_set_tid_address, SYS_setdomainname, SYS_setfsgid,
    SYS_setfsuid, SYS_setgid, SYS_setgroups, SYS_sethostname, SYS_setitimer, SYS_setns, SYS_setpgid,
    SYS_setpriority, SYS_setregid, SYS_setresgid, SYS_setresuid, SYS_setreuid, SYS_setrlimit, SYS_setsid,
    SYS_setsockopt, SYS_settimeofday, SYS_setuid, SYS_setxattr, SYS_shmat, SYS_shmctl, SYS_shmdt, SYS_shmget,
    SYS_shutdown, SYS_sigaltstack, SYS_signalfd, SYS_signalfd4, SYS_socket, SYS_socketpair, SYS_splice,
    SYS_stat, SYS_statfs, SYS_statx, SYS_swapoff, SYS_swapon, SYS_symlink, SYS_symlinkat, SYS_sync,
    SYS_sync_file_range, SYS_syncfs, SYS_sysfs, SYS_sysinfo, SYS_syslog, SYS_tee, SYS_tgkill, SYS_time,
    SYS_timer_create, SYS_timer_delete, SYS_timer_getoverrun, SYS_timer_gettime, SYS_timer_settime,
    SYS_timerfd_create, SYS_timerfd_gettime, SYS_timerfd_settime, SYS_times, SYS_tkill, SYS_truncate,
    SYS_tuxcall, SYS_umask, SYS_umount2, SYS_uname, SYS_unlink, SYS_unlinkat, SYS_unshare, SYS_uselib,
    SYS_userfaultfd, SYS_ustat, SYS_utime, SYS_utimensat, SYS_utimes, SYS_vfork, SYS_vhangup, SYS_vmsplice,
    SYS_vserver, SYS_wait4, SYS_waitid, SYS_write, SYS_writev,
];

#[cfg(target_arch = "aarch64")]
#[rustfmt::skip]
const NATIVE: &[(&str, u32)] = numbers![
    SYS_accept, SYS_accept4, SYS_acct, SYS_add_key, SYS_adjtimex, SYS_bind, SYS_bpf, SYS_brk, SYS_capget,
    SYS_capset, SYS_chdir, SYS_chroot, SYS_clock_adjtime, SYS_clock_getres, SYS_clock_gettime,
    SYS_clock_nanosleep, SYS_clock_settime, SYS_clone, SYS_close, SYS_connect, SYS_copy_file_range,
    SYS_delete_module, SYS_dup, SYS_dup3, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait, SYS_eventfd2,
    SYS_execve, SYS_execveat, SYS_exit, SYS_exit_group, SYS_faccessat, SYS_fadvise64, SYS_fallocate,
    SYS_fanotify_init, SYS_fanotify_mark, SYS_fchdir, SYS_fchmod, SYS_fchmodat, SYS_fchown, SYS_fchownat,
    SYS_fcntl, SYS_fdatasync, SYS_fgetxattr, SYS_finit_module, SYS_flistxattr, SYS_flock, SYS_fremovexattr,
    SYS_fsetxattr, SYS_fstat, SYS_fstatfs, SYS_fsync, SYS_ftruncate, SYS_futex, SYS_get_mempolicy,
    SYS_get_robust_list, SYS_getcpu, SYS_getcwd, SYS_getdents64, SYS_getegid, SYS_geteuid, SYS_getgid,
    SYS_getgroups, SYS_getitimer, SYS_getpeername, SYS_getpgid, SYS_getpid, SYS_getppid, SYS_getpriority,
    SYS_getrandom, SYS_getresgid, SYS_getresuid, SYS_getrlimit, SYS_getrusage, SYS_getsid, SYS_getsockname,
    SYS_getsockopt, SYS_gettid, SYS_gettimeofday, SYS_getuid, SYS_getxattr, SYS_init_module,
    SYS_inotify_add_watch, SYS_inotify_init1, SYS_inotify_rm_watch, SYS_io_cancel, SYS_io_destroy,
    SYS_io_getevents, SYS_io_setup, SYS_io_submit, SYS_ioctl, SYS_ioprio_get, SYS_ioprio_set, SYS_kcmp,
    SYS_kexec_load, SYS_keyctl, SYS_kill, SYS_lgetxattr, SYS_linkat, SYS_listen, SYS_listxattr, SYS_llistxattr,
    SYS_lookup_dcookie, SYS_lremovexattr, SYS_lseek, SYS_lsetxattr, SYS_madvise, SYS_mbind, SYS_membarrier,
    SYS_memfd_create, SYS_migrate_pages, SYS_mincore, SYS_mkdirat, SYS_mknodat, SYS_mlock, SYS_mlock2,
    SYS_mlockall, SYS_mmap, SYS_mount, SYS_move_pages, SYS_mprotect, SYS_mq_getsetattr, SYS_mq_notify,
    SYS_mq_open, SYS_mq_timedreceive, SYS_mq_timedsend, SYS_mq_unlink, SYS_mremap, SYS_msgctl, SYS_msgget,
    SYS_msgrcv, SYS_msgsnd, SYS_msync, SYS_munlock, SYS_munlockall, SYS_munmap, SYS_name_to_handle_at,
    SYS_nanosleep, SYS_newfstatat, SYS_nfsservctl, SYS_open_by_handle_at, SYS_openat, SYS_perf_event_open,
    SYS_personality, SYS_pipe2, SYS_pivot_root, SYS_pkey_alloc, SYS_pkey_free, SYS_pkey_mprotect, SYS_ppoll,
    SYS_prctl, SYS_pread64, SYS_preadv, SYS_preadv2, SYS_prlimit64, SYS_process_vm_readv,
    SYS_process_vm_writev, SYS_pselect6, SYS_ptrace, SYS_pwrite64, SYS_pwritev, SYS_pwritev2, SYS_quotactl,
    SYS_read, SYS_readahead, SYS_readlinkat, SYS_readv, SYS_reboot, SYS_recvfrom, SYS_recvmmsg, SYS_recvmsg,
    SYS_remap_file_pages, SYS_removexattr, SYS_renameat, SYS_renameat2, SYS_request_key, SYS_restart_syscall,
    SYS_rseq, SYS_rt_sigaction, SYS_rt_sigpending, SYS_rt_sigprocmask, SYS_rt_sigqueueinfo, SYS_rt_sigreturn,
    SYS_rt_sigsuspend, SYS_rt_sigtimedwait, SYS_rt_tgsigqueueinfo, SYS_sched_get_priority_max,
    SYS_sched_get_priority_min, SYS_sched_getaffinity, SYS_sched_getattr, SYS_sched_getparam,
    SYS_sched_getscheduler, SYS_sched_rr_get_interval, SYS_sched_setaffinity, SYS_sched_setattr,
    SYS_sched_setparam, SYS_sched_setscheduler, SYS_sched_yield, SYS_seccomp, SYS_semctl, SYS_semget,
    SYS_semop, SYS_semtimedop, SYS_sendfile, SYS_sendmmsg, SYS_sendmsg, SYS_sendto, SYS_set_mempolicy,
    SYS_set_robust_list, SYS_set_tid_address, SYS_setdomainname, SYS_setfsgid, SYS_setfsuid, SYS_setgid,
    SYS_setgroups, SYS_sethostname, SYS_setitimer, SYS_setns, SYS_setpgid, SYS_setpriority, SYS_setregid,
    SYS_setresgid, SYS_setresuid, SYS_setreuid, SYS_setrlimit, SYS_setsid, SYS_setsockopt, SYS_settimeofday,
    SYS_setuid, SYS_setxattr, SYS_shmat, SYS_shmctl, SYS_shmdt, SYS_shmget, SYS_shutdown, SYS_sigaltstack,
    SYS_signalfd4, SYS_socket, SYS_socketpair, SYS_splice, SYS_statfs, SYS_statx, SYS_swapoff, SYS_swapon,
    SYS_symlinkat, SYS_sync, SYS_sync_file_range, SYS_syncfs, SYS_sysinfo, SYS_syslog, SYS_tee, SYS_tgkill,
    SYS_timer_create, SYS_timer_delete, SYS_timer_getoverrun, SYS_timer_gettime, SYS_timer_settime,
    SYS_timerfd_create, SYS_timerfd_gettime, SYS_timerfd_settime, SYS_times, SYS_tkill, SYS_truncate,
    SYS_umask, SYS_umount2, SYS_uname, SYS_unlinkat, SYS_unshare, SYS_userfaultfd, SYS_utimensat, SYS_vhangup,
    SYS_vmsplice, SYS_wait4, SYS_waitid, SYS_write, SYS_writev,
];

/// Missing from libc on some targets.
#[cfg(target_arch = "x86_64")]
const EXTRA: &[(&str, u32)] = &[("io_pgetevents", 333)];
#[cfg(target_arch = "aarch64")]
const EXTRA: &[(&str, u32)] = &[("io_pgetevents", 292)];

/// Since Linux 5.1 every architecture numbers new system calls alike,
/// from 424 on.
#[rustfmt::skip]
const UNIFIED: &[&str] = &[
    "pidfd_send_signal", "io_uring_setup", "io_uring_enter", "io_uring_register", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "pidfd_open", "clone3", "close_range", "openat2", "pidfd_getfd",
    "faccessat2", "process_madvise", "epoll_pwait2", "mount_setattr", "quotactl_fd", "landlock_create_ruleset",
    "landlock_add_rule", "landlock_restrict_self", "memfd_secret", "process_mrelease", "futex_waitv",
    "set_mempolicy_home_node", "cachestat", "fchmodat2", "map_shadow_stack", "futex_wake", "futex_wait",
    "futex_requeue", "statmount", "listmount", "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
    "mseal", "setxattrat", "getxattrat", "listxattrat", "removexattrat", "open_tree_attr",
];
const UNIFIED_FIRST: u32 = 424;

/// The number of a system call on this architecture, if it has one.
pub fn syscall_number(name: &str) -> Option<u32> {
    if let Some(i) = UNIFIED.iter().position(|n| *n == name) {
        return Some(UNIFIED_FIRST + i as u32);
    }
    NATIVE
        .iter()
        .find(|(sys, _)| sys.strip_prefix("SYS_") == Some(name))
        .or_else(|| EXTRA.iter().find(|(n, _)| *n == name))
        .map(|(_, nr)| *nr)
}

/// The highest system call number barge knows here.
fn highest_known() -> u32 {
    let native = NATIVE.iter().chain(EXTRA).map(|(_, nr)| *nr).max().unwrap_or(0);
    native.max(UNIFIED_FIRST + UNIFIED.len() as u32 - 1)
}

// ---------------------------------------------------------------------------
// The compiler.

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

// Classic BPF opcodes (linux/filter.h).
/// BPF_LD | BPF_W | BPF_ABS (LD and W are 0).
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x04 | 0x50;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x05 | 0x10;
const JMP_JGT_K: u16 = 0x05 | 0x20;
const JMP_JGE_K: u16 = 0x05 | 0x30;
const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data` (little-endian arguments).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
fn off_arg_hi(i: u32) -> u32 {
    16 + 8 * i + 4
}

const MAX_INSNS: usize = 4096;
const MAX_ERRNO: u32 = 4095;

const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;

/// A compiled filter, ready to install.
#[derive(Debug, Clone)]
pub struct Program {
    filter: Vec<libc::sock_filter>,
    flags: u32,
}

impl Program {
    pub fn len(&self) -> usize {
        self.filter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }

    /// Installs the filter on the calling thread (and so on everything it
    /// execs). Needs `no_new_privs` or CAP_SYS_ADMIN. Allocates nothing,
    /// so it may run in a forked child.
    pub fn install(&self) -> Result<(), rustix::io::Errno> {
        crate::sys::install_seccomp_filter(&self.filter, self.flags)
    }
}

fn action_ret(action: Action, errno: Option<u32>, default_errno: u32) -> Result<u32, SeccompError> {
    let data = |v: Option<u32>| -> Result<u32, SeccompError> {
        let v = v.unwrap_or(default_errno);
        if v > MAX_ERRNO {
            return Err(SeccompError::Errno(v));
        }
        Ok(v)
    };
    Ok(match action {
        Action::Allow => RET_ALLOW,
        Action::Errno => RET_ERRNO | data(errno)?,
        Action::Kill | Action::KillThread => RET_KILL_THREAD,
        Action::KillProcess => RET_KILL_PROCESS,
        Action::Trap => RET_TRAP,
        Action::Trace => RET_TRACE | data(errno)?,
        Action::Log => RET_LOG,
        Action::Notify => return Err(SeccompError::UnsupportedAction("SCMP_ACT_NOTIFY")),
    })
}

type Label = usize;

enum Item {
    Stmt(u16, u32),
    /// A conditional jump on the accumulator against `k`.
    Jump {
        code: u16,
        k: u32,
        t: Label,
        f: Label,
    },
    Label(Label),
}

#[derive(Default)]
struct Asm {
    items: Vec<Item>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }
    fn place(&mut self, l: Label) {
        self.items.push(Item::Label(l));
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.items.push(Item::Stmt(code, k));
    }
    fn load(&mut self, off: u32) {
        self.stmt(LD_W_ABS, off);
    }
    fn ret(&mut self, k: u32) {
        self.stmt(RET_K, k);
    }
    fn jump(&mut self, code: u16, k: u32, t: Label, f: Label) {
        self.items.push(Item::Jump { code, k, t, f });
    }

    /// Resolves labels. Conditional jumps reach 255 instructions at most;
    /// farther ones become a short jump over two unconditional ones.
    fn assemble(&self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let mut long = vec![false; self.items.len()];
        let (positions, len) = loop {
            let mut pos = vec![0usize; self.labels];
            let mut at = 0usize;
            for (i, item) in self.items.iter().enumerate() {
                match item {
                    Item::Label(l) => pos[*l] = at,
                    Item::Stmt(..) => at += 1,
                    Item::Jump { .. } => at += if long[i] { 3 } else { 1 },
                }
            }
            let mut changed = false;
            let mut at = 0usize;
            for (i, item) in self.items.iter().enumerate() {
                match item {
                    Item::Label(_) => {}
                    Item::Stmt(..) => at += 1,
                    Item::Jump { t, f, .. } => {
                        if !long[i] && (pos[*t].saturating_sub(at + 1) > 255 || pos[*f].saturating_sub(at + 1) > 255) {
                            long[i] = true;
                            changed = true;
                        }
                        at += if long[i] { 3 } else { 1 };
                    }
                }
            }
            if !changed {
                break (pos, at);
            }
        };
        if len > MAX_INSNS {
            return Err(SeccompError::TooLarge(len));
        }
        let insn = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
        let mut out = Vec::with_capacity(len);
        for (i, item) in self.items.iter().enumerate() {
            match item {
                Item::Label(_) => {}
                Item::Stmt(code, k) => out.push(insn(*code, 0, 0, *k)),
                Item::Jump { code, k, t, f } => {
                    let here = out.len();
                    // Every jump goes forward by construction.
                    let (t, f) = (positions[*t], positions[*f]);
                    let dist = |to: usize, from: usize| to.checked_sub(from).ok_or(SeccompError::Internal);
                    if long[i] {
                        out.push(insn(*code, 0, 1, *k));
                        out.push(insn(JMP_JA, 0, 0, dist(t, here + 2)? as u32));
                        out.push(insn(JMP_JA, 0, 0, dist(f, here + 3)? as u32));
                    } else {
                        out.push(insn(*code, dist(t, here + 1)? as u8, dist(f, here + 1)? as u8, *k));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Falls through when argument `c` matches, else jumps to `fail`.
    fn condition(&mut self, c: &ArgCondition, fail: Label) {
        let ok = self.label();
        let (lo, hi) = (off_arg_lo(c.index), off_arg_hi(c.index));
        let split = |v: u64| ((v >> 32) as u32, v as u32);
        let (v_hi, v_lo) = split(c.value);
        match c.op {
            Op::Eq | Op::MaskedEq => {
                let (want_hi, want_lo) = if c.op == Op::MaskedEq {
                    split(c.value_two)
                } else {
                    (v_hi, v_lo)
                };
                let next = self.label();
                self.load(hi);
                if c.op == Op::MaskedEq {
                    self.stmt(ALU_AND_K, v_hi);
                }
                self.jump(JMP_JEQ_K, want_hi, next, fail);
                self.place(next);
                self.load(lo);
                if c.op == Op::MaskedEq {
                    self.stmt(ALU_AND_K, v_lo);
                }
                self.jump(JMP_JEQ_K, want_lo, ok, fail);
            }
            Op::Ne => {
                let next = self.label();
                self.load(hi);
                self.jump(JMP_JEQ_K, v_hi, next, ok);
                self.place(next);
                self.load(lo);
                self.jump(JMP_JEQ_K, v_lo, fail, ok);
            }
            Op::Gt | Op::Ge => {
                let (equal, low) = (self.label(), self.label());
                self.load(hi);
                self.jump(JMP_JGT_K, v_hi, ok, equal);
                self.place(equal);
                self.jump(JMP_JEQ_K, v_hi, low, fail);
                self.place(low);
                self.load(lo);
                let code = if c.op == Op::Gt { JMP_JGT_K } else { JMP_JGE_K };
                self.jump(code, v_lo, ok, fail);
            }
            Op::Lt | Op::Le => {
                let (equal, low) = (self.label(), self.label());
                self.load(hi);
                self.jump(JMP_JGE_K, v_hi, equal, ok);
                self.place(equal);
                self.jump(JMP_JEQ_K, v_hi, low, fail);
                self.place(low);
                self.load(lo);
                let code = if c.op == Op::Lt { JMP_JGE_K } else { JMP_JGT_K };
                self.jump(code, v_lo, fail, ok);
            }
        }
        self.place(ok);
    }

    /// A binary search over sorted system call numbers (in the
    /// accumulator), ending in each one's block or in `miss`.
    fn search(&mut self, entries: &[(u32, Label)], miss: u32) {
        if entries.len() <= 4 {
            for (nr, block) in entries {
                let next = self.label();
                self.jump(JMP_JEQ_K, *nr, *block, next);
                self.place(next);
            }
            self.ret(miss);
            return;
        }
        let mid = entries.len() / 2;
        let (left, right) = (self.label(), self.label());
        self.jump(JMP_JGE_K, entries[mid].0, right, left);
        self.place(left);
        self.search(&entries[..mid], miss);
        self.place(right);
        self.search(&entries[mid..], miss);
    }
}

/// One rule of one system call: conditions that must all hold, and the
/// return value.
struct Rule {
    conditions: Vec<ArgCondition>,
    ret: u32,
}

/// Compiles the OCI section for this architecture.
pub fn compile(s: &LinuxSeccomp) -> Result<Program, SeccompError> {
    let default = action_ret(s.default_action, s.default_errno_ret, libc::EPERM as u32)?;
    let mut flags = 0;
    for f in &s.flags {
        flags |= match f.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => FLAG_TSYNC,
            "SECCOMP_FILTER_FLAG_LOG" => FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => FLAG_SPEC_ALLOW,
            _ => return Err(SeccompError::Flag(f.clone())),
        };
    }
    // Rules per system call number, in the profile's order.
    let mut by_nr: std::collections::BTreeMap<u32, Vec<Rule>> = std::collections::BTreeMap::new();
    for sc in &s.syscalls {
        // A per-rule errnoRet defaults to EPERM, not to defaultErrnoRet.
        let ret = action_ret(sc.action, sc.errno_ret, libc::EPERM as u32)?;
        for name in &sc.names {
            if let Some(c) = sc.args.iter().find(|c| c.index > 5) {
                return Err(SeccompError::ArgIndex {
                    name: name.clone(),
                    index: c.index,
                });
            }
            // Names this architecture lacks are skipped, as runc does.
            let Some(nr) = syscall_number(name) else { continue };
            let rules = by_nr.entry(nr).or_default();
            let mut per_index = [0u8; 6];
            for c in &sc.args {
                per_index[c.index as usize] += 1;
            }
            if per_index.iter().any(|n| *n > 1) {
                // Several conditions on one argument: each is a rule of its
                // own (any of them matches), as runc adds them.
                for c in &sc.args {
                    rules.push(Rule {
                        conditions: vec![*c],
                        ret,
                    });
                }
            } else {
                rules.push(Rule {
                    conditions: sc.args.clone(),
                    ret,
                });
            }
        }
    }
    // Conditional rules first, in order; then the first unconditional one.
    for rules in by_nr.values_mut() {
        let first_plain = rules.iter().position(|r| r.conditions.is_empty());
        let plain = first_plain.map(|i| rules.remove(i));
        rules.retain(|r| !r.conditions.is_empty());
        rules.extend(plain);
    }
    by_nr.retain(|_, rules| !(rules.len() == 1 && rules[0].conditions.is_empty() && rules[0].ret == default));

    let mut asm = Asm::default();
    let native = asm.label();
    asm.load(OFF_ARCH);
    let kill = asm.label();
    asm.jump(JMP_JEQ_K, ARCH.audit, native, kill);
    asm.place(kill);
    asm.ret(RET_KILL_PROCESS);
    asm.place(native);
    asm.load(OFF_NR);
    if let Some(bit) = ARCH.x32_bit {
        let native64 = asm.label();
        let x32 = asm.label();
        asm.jump(JMP_JGE_K, bit, x32, native64);
        asm.place(x32);
        asm.ret(RET_KILL_PROCESS);
        asm.place(native64);
    }
    if !matches!(default, RET_ALLOW | RET_LOG) {
        // Newer than anything barge knows: ENOSYS, so that libc falls back.
        let known = asm.label();
        let newer = asm.label();
        asm.jump(JMP_JGT_K, highest_known(), newer, known);
        asm.place(newer);
        asm.ret(RET_ERRNO | libc::ENOSYS as u32);
        asm.place(known);
    }
    let blocks: Vec<(u32, Label)> = by_nr.keys().map(|nr| (*nr, asm.label())).collect();
    asm.search(&blocks, default);
    for ((_, block), rules) in blocks.iter().zip(by_nr.values()) {
        asm.place(*block);
        let mut unconditional = false;
        for rule in rules {
            if rule.conditions.is_empty() {
                asm.ret(rule.ret);
                unconditional = true;
                break;
            }
            let next = asm.label();
            for c in &rule.conditions {
                asm.condition(c, next);
            }
            asm.ret(rule.ret);
            asm.place(next);
        }
        if !unconditional {
            asm.ret(default);
        }
    }
    Ok(Program {
        filter: asm.assemble()?,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a forked child ended.
    #[derive(Debug, PartialEq, Eq)]
    enum End {
        Exit(i32),
        Signal(i32),
    }

    /// Runs `f` in a forked child under `prog`; the child exits with what
    /// `f` returns. The child makes raw system calls only.
    fn under(prog: &Program, f: impl FnOnce() -> i32) -> End {
        // SAFETY: the child only makes system calls and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // SAFETY: prctl and _exit in the child.
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prog.install().is_err() {
                    libc::_exit(200);
                }
                libc::_exit(f());
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if libc::WIFSIGNALED(status) {
            End::Signal(libc::WTERMSIG(status))
        } else {
            End::Exit(libc::WEXITSTATUS(status))
        }
    }

    /// The errno of a raw system call's result, 0 for success.
    fn errno(r: libc::c_long) -> i32 {
        if r < 0 {
            // SAFETY: reading this thread's errno.
            unsafe { *libc::__errno_location() }
        } else {
            0
        }
    }

    fn section(default_action: Action, syscalls: Vec<SyscallRule>) -> LinuxSeccomp {
        LinuxSeccomp {
            default_action,
            default_errno_ret: None,
            architectures: Vec::new(),
            flags: Vec::new(),
            syscalls,
        }
    }

    fn rule(names: &[&str], action: Action, errno_ret: Option<u32>, args: Vec<ArgCondition>) -> SyscallRule {
        SyscallRule {
            names: names.iter().map(|s| s.to_string()).collect(),
            action,
            errno_ret,
            args,
        }
    }

    fn cond(index: u32, op: Op, value: u64, value_two: u64) -> ArgCondition {
        ArgCondition {
            index,
            value,
            value_two,
            op,
        }
    }

    fn mkdir_missing() -> i32 {
        // SAFETY: mkdirat on a path that cannot exist.
        errno(unsafe {
            libc::syscall(
                libc::SYS_mkdirat,
                libc::AT_FDCWD,
                c"/proc/no-such-dir/x".as_ptr(),
                0o755,
            )
        })
    }

    #[test]
    fn a_denied_call_fails_with_its_errno_and_others_work() {
        let deny = compile(&section(
            Action::Allow,
            vec![rule(&["mkdir", "mkdirat"], Action::Errno, None, vec![])],
        ))
        .unwrap();
        assert_eq!(under(&deny, mkdir_missing), End::Exit(libc::EPERM));
        // SAFETY: getpid has no preconditions.
        assert_eq!(
            under(&deny, || errno(unsafe { libc::syscall(libc::SYS_getpid) })),
            End::Exit(0)
        );
        let enospc = compile(&section(
            Action::Allow,
            vec![rule(&["mkdirat"], Action::Errno, Some(28), vec![])],
        ))
        .unwrap();
        assert_eq!(under(&enospc, mkdir_missing), End::Exit(28));
        let none = compile(&section(Action::Allow, vec![])).unwrap();
        assert_eq!(under(&none, mkdir_missing), End::Exit(libc::ENOENT));
    }

    #[test]
    fn sixty_four_bit_argument_comparisons() {
        const HIT: i32 = 42;
        let big = 0x1_0000_0005u64;
        let cases: &[(Vec<ArgCondition>, &[u64], &[u64])] = &[
            (
                vec![cond(0, Op::Eq, big, 0)],
                &[big],
                &[5, 0x2_0000_0005, 0x1_0000_0004],
            ),
            (vec![cond(0, Op::Ne, big, 0)], &[5, 0x2_0000_0005], &[big]),
            (
                vec![cond(0, Op::Gt, big, 0)],
                &[0x1_0000_0006, 0x2_0000_0000],
                &[big, 0xffff_ffff, 0x1_0000_0000],
            ),
            (
                vec![cond(0, Op::Ge, big, 0)],
                &[big, 0x2_0000_0000],
                &[0x1_0000_0004, 0xffff_ffff],
            ),
            (
                vec![cond(0, Op::Lt, big, 0)],
                &[0x1_0000_0004, 0xffff_ffff, 0],
                &[big, 0x2_0000_0000, 0x1_0000_0006],
            ),
            (
                vec![cond(0, Op::Le, big, 0)],
                &[big, 0x1_0000_0004, 7],
                &[0x1_0000_0006, 0x2_0000_0000],
            ),
            (
                vec![cond(0, Op::MaskedEq, 0xff00_0000_0000_00ff, 0x1200_0000_0000_0034)],
                &[0x12ab_cdef_0000_1234, 0x1200_0000_0000_0034],
                &[0x1300_0000_0000_0034, 0x1200_0000_0000_0035, 0x34],
            ),
        ];
        for (conds, hits, misses) in cases {
            let prog = compile(&section(
                Action::Allow,
                vec![rule(&["getppid"], Action::Errno, Some(HIT as u32), conds.clone())],
            ))
            .unwrap();
            for (args, want) in [(*hits, HIT), (*misses, 0)] {
                for a in args {
                    // SAFETY: getppid ignores its arguments; the filter sees them.
                    let got = under(&prog, || errno(unsafe { libc::syscall(libc::SYS_getppid, *a, 0u64) }));
                    assert_eq!(got, End::Exit(want), "{conds:?} with {a:#x}");
                }
            }
        }
        // Conditions on different arguments all hold; several on one
        // argument are alternatives (as runc adds them).
        let and = compile(&section(
            Action::Allow,
            vec![rule(
                &["getppid"],
                Action::Errno,
                Some(HIT as u32),
                vec![cond(0, Op::Eq, 1, 0), cond(1, Op::Eq, 2, 0)],
            )],
        ))
        .unwrap();
        let or = compile(&section(
            Action::Allow,
            vec![rule(
                &["getppid"],
                Action::Errno,
                Some(HIT as u32),
                vec![cond(0, Op::Eq, 1, 0), cond(0, Op::Eq, 2, 0)],
            )],
        ))
        .unwrap();
        for (prog, a, b, want) in [
            (&and, 1u64, 2u64, HIT),
            (&and, 1, 3, 0),
            (&and, 2, 2, 0),
            (&or, 1, 0, HIT),
            (&or, 2, 0, HIT),
            (&or, 3, 0, 0),
        ] {
            // SAFETY: as above.
            let got = under(prog, || errno(unsafe { libc::syscall(libc::SYS_getppid, a, b) }));
            assert_eq!(got, End::Exit(want), "({a}, {b})");
        }
    }

    #[test]
    fn kill_trap_and_log_actions() {
        // SAFETY: getppid has no preconditions.
        let call = || errno(unsafe { libc::syscall(libc::SYS_getppid) });
        for (action, want) in [
            (Action::KillProcess, End::Signal(libc::SIGSYS)),
            (Action::Kill, End::Signal(libc::SIGSYS)),
            (Action::KillThread, End::Signal(libc::SIGSYS)),
            (Action::Trap, End::Signal(libc::SIGSYS)),
            (Action::Log, End::Exit(0)),
            (Action::Allow, End::Exit(0)),
        ] {
            let prog = compile(&section(Action::Allow, vec![rule(&["getppid"], action, None, vec![])])).unwrap();
            assert_eq!(under(&prog, call), want, "{action:?}");
        }
        // The default action applies to everything else.
        let prog = compile(&section(
            Action::Errno,
            vec![rule(&["exit_group"], Action::Allow, None, vec![])],
        ))
        .unwrap();
        assert_eq!(under(&prog, call), End::Exit(libc::EPERM));
    }

    #[test]
    fn foreign_abis_are_killed() {
        let prog = compile(&section(Action::Allow, vec![])).unwrap();
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: an x32 getpid; the filter kills before the kernel runs it.
            let x32 = under(&prog, || {
                errno(unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) })
            });
            assert_eq!(x32, End::Signal(libc::SIGSYS));
            let i386 = under(&prog, || {
                let mut ax: u64 = 20; // getpid in the i386 table
                                      // SAFETY: a 32-bit system call from a 64-bit process: the
                                      // filter sees AUDIT_ARCH_I386 (or the kernel has no ia32
                                      // emulation and the instruction faults).
                unsafe { std::arch::asm!("int 0x80", inout("rax") ax) };
                ax as i32
            });
            assert!(matches!(i386, End::Signal(libc::SIGSYS | libc::SIGSEGV)), "{i386:?}");
        }
        // SAFETY: a number far above any system call.
        let newer = under(&prog, || errno(unsafe { libc::syscall(1000) }));
        assert_eq!(
            newer,
            End::Exit(libc::ENOSYS),
            "allowed, and the kernel has no such call"
        );
    }

    fn default_for(caps: &[&str]) -> LinuxSeccomp {
        let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        resolve(&default_profile(), &caps).unwrap()
    }

    fn names(s: &LinuxSeccomp) -> Vec<&str> {
        s.syscalls
            .iter()
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn the_default_profile_follows_capabilities() {
        let plain = default_for(crate::caps::DOCKER_DEFAULT);
        assert_eq!(plain.default_action, Action::Errno);
        assert_eq!(plain.architectures, [ARCH.scmp]);
        let n = names(&plain);
        for absent in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "reboot",
            "init_module",
            "kcmp",
            "bpf",
            "syslog",
        ] {
            assert!(!n.contains(&absent), "{absent}");
        }
        for present in ["read", "chroot", "arch_prctl", "mkdirat", "ptrace"] {
            if present != "arch_prctl" || ARCH.go == "amd64" {
                assert!(n.contains(&present), "{present}");
            }
        }
        let clone3 = plain.syscalls.iter().find(|r| r.names == ["clone3"]).unwrap();
        assert_eq!((clone3.action, clone3.errno_ret), (Action::Errno, Some(38)));
        let clone = plain.syscalls.iter().find(|r| r.names == ["clone"]).unwrap();
        assert_eq!(clone.args, [cond(0, Op::MaskedEq, 0x7E02_0000, 0)]);

        let admin = default_for(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME"]);
        let n = names(&admin);
        for present in ["mount", "unshare", "setns", "clone", "kcmp", "clock_settime"] {
            assert!(n.contains(&present), "{present}");
        }
        assert!(!n.contains(&"chroot"), "without CAP_SYS_CHROOT");
        assert!(admin
            .syscalls
            .iter()
            .all(|r| r.names != ["clone3"] || r.action == Action::Allow));
    }

    #[test]
    fn the_default_profile_compiled_denies_what_docker_denies() {
        let prog = compile(&default_for(crate::caps::DOCKER_DEFAULT)).unwrap();
        assert!(prog.len() > 300 && prog.len() < MAX_INSNS, "{}", prog.len());
        let end = under(&prog, || {
            // SAFETY: each call below either fails or is undone; a cloned
            // child exits at once.
            unsafe {
                let checks: [(i32, i32); 9] = [
                    (errno(libc::syscall(libc::SYS_unshare, 0)), libc::EPERM),
                    (errno(libc::syscall(libc::SYS_clone3, 0usize, 0usize)), libc::ENOSYS),
                    (
                        errno(libc::syscall(libc::SYS_socket, 40, libc::SOCK_STREAM, 0)),
                        libc::EPERM,
                    ),
                    (errno(libc::syscall(libc::SYS_personality, 6)), libc::EPERM),
                    (errno(libc::syscall(libc::SYS_personality, 0xffff_ffffu64)), 0),
                    (errno(libc::syscall(libc::SYS_keyctl, 0, 0, 0)), libc::EPERM),
                    (
                        errno(libc::syscall(
                            libc::SYS_clone,
                            libc::CLONE_NEWUTS | libc::SIGCHLD,
                            0,
                            0,
                            0,
                            0,
                        )),
                        libc::EPERM,
                    ),
                    (errno(libc::syscall(libc::SYS_mount, 0, 0, 0, 0, 0)), libc::EPERM),
                    (errno(libc::syscall(libc::SYS_getpid)), 0),
                ];
                // Errnos are taken right after each call.
                for (i, (got, want)) in checks.iter().enumerate() {
                    if got != want {
                        return 10 + i as i32;
                    }
                }
                let fork = libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
                if fork == 0 {
                    libc::_exit(0);
                }
                if fork < 0 {
                    return 30;
                }
                if mkdir_missing() != libc::ENOENT {
                    return 31;
                }
                0
            }
        });
        assert_eq!(end, End::Exit(0));
    }

    #[test]
    fn profiles_and_options_are_checked() {
        let o = |v: &[&str]| parse_security_opts(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(o(&[]).unwrap(), SecurityOptions::default());
        assert_eq!(o(&["seccomp=unconfined"]).unwrap().seccomp, SeccompChoice::Unconfined);
        assert_eq!(o(&["seccomp:unconfined"]).unwrap().seccomp, SeccompChoice::Unconfined);
        assert_eq!(
            o(&["seccomp=/p.json"]).unwrap().seccomp,
            SeccompChoice::Profile(PathBuf::from("/p.json"))
        );
        assert_eq!(o(&["no-new-privileges"]).unwrap().no_new_privileges, Some(true));
        assert_eq!(o(&["no-new-privileges=true"]).unwrap().no_new_privileges, Some(true));
        assert_eq!(o(&["no-new-privileges=false"]).unwrap().no_new_privileges, Some(false));
        assert_eq!(o(&[]).unwrap().no_new_privileges, None);
        for bad in [
            "apparmor=unconfined",
            "seccomp",
            "seccomp=",
            "no-new-privileges=maybe",
            "bogus",
        ] {
            assert!(matches!(o(&[bad]), Err(SeccompError::BadOption(_))), "{bad}");
        }

        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p.json");
        std::fs::write(
            &p,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"name":"mkdir","action":"SCMP_ACT_ERRNO"},
                {"names":["mkdirat","no_such_call"],"action":"SCMP_ACT_ERRNO","errnoRet":13,"comment":"x"},
                {"names":["reboot"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_BOOT"]}}]}"#,
        )
        .unwrap();
        let s = for_container(&SeccompChoice::Profile(p.clone()), &["CAP_CHOWN".into()])
            .unwrap()
            .unwrap();
        assert_eq!(names(&s), ["mkdir", "mkdirat", "no_such_call"]);
        assert_eq!(under(&compile(&s).unwrap(), mkdir_missing), End::Exit(libc::EACCES));

        std::fs::write(&p, r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#).unwrap();
        assert!(matches!(
            for_container(&SeccompChoice::Profile(p.clone()), &[]),
            Err(SeccompError::UnsupportedAction(_))
        ));
        std::fs::write(&p, r#"{"defaultAction":"SCMP_ACT_SOMETIMES"}"#).unwrap();
        assert!(matches!(
            for_container(&SeccompChoice::Profile(p.clone()), &[]),
            Err(SeccompError::Parse { .. })
        ));
        std::fs::write(
            &p,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        )
        .unwrap();
        assert!(matches!(
            for_container(&SeccompChoice::Profile(p.clone()), &[]),
            Err(SeccompError::ArgIndex { .. })
        ));
        assert!(matches!(
            for_container(&SeccompChoice::Profile(d.path().join("missing.json")), &[]),
            Err(SeccompError::Read { .. })
        ));
        assert!(for_container(&SeccompChoice::Unconfined, &[]).unwrap().is_none());

        // Too many rules for one filter.
        let many: Vec<SyscallRule> = (0..2000)
            .map(|i| rule(&["read"], Action::Errno, None, vec![cond(0, Op::Eq, i, 0)]))
            .collect();
        assert!(matches!(
            compile(&section(Action::Allow, many)),
            Err(SeccompError::TooLarge(_))
        ));
    }

    #[test]
    fn syscall_numbers_of_this_architecture() {
        assert_eq!(syscall_number("getpid"), Some(libc::SYS_getpid as u32));
        assert_eq!(syscall_number("clone3"), Some(libc::SYS_clone3 as u32));
        assert_eq!(syscall_number("openat2"), Some(libc::SYS_openat2 as u32));
        assert_eq!(syscall_number("chown32"), None);
        assert_eq!(syscall_number("no_such_call"), None);
        assert!(highest_known() >= 462);
    }
}
