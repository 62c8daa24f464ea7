//! The raw system calls barge makes that rustix does not wrap, each behind
//! a safe function whose comment says why it is sound. Everything else in
//! barge calls rustix (or std); nothing outside this crate has `unsafe`.

pub mod bpf;
pub mod mounts;

use rustix::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::ffi::CString;

/// Leaves this process at once with `code`: no destructor, no atexit
/// handler, no stdio flush (a forked child must not run its parent's).
pub fn exit(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Marks every descriptor from `first` up close-on-exec (`close_range`).
pub fn cloexec_from(first: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
}

/// Closes every descriptor from `first` up (`close_range`), for a process
/// that only waits and must hold nothing open. No `OwnedFd` of this process
/// may refer to those descriptors afterwards: callers leave with [`exit`].
pub fn close_from(first: u32) {
    // SAFETY: the caller owns no Rust handle to these descriptors that it
    // uses again (documented above); close_range touches no memory.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
}

/// Closes every descriptor above stdio but `keep`: a process that outlives
/// its parent (the monitor) must not hold that one's pipes open. Handles
/// this process still holds to them must not be used again.
pub fn close_all_but(keep: &[i32]) {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing descriptors this process will not use; the
            // directory's own fd is among them and already done with.
            unsafe { libc::close(fd) };
        }
    }
}

/// A new cgroup namespace for this process, rooted at the cgroup it is in
/// (join the container's cgroup first).
pub fn unshare_cgroup_namespace() -> std::io::Result<()> {
    // SAFETY: CLONE_NEWCGROUP alone changes only this process's cgroup
    // namespace; no memory, descriptor table or thread state is shared or
    // touched, which is what makes other unshare flags unsafe.
    let flags = rustix::thread::UnshareFlags::NEWCGROUP;
    Ok(unsafe { rustix::thread::unshare_unsafe(flags) }?)
}

/// The kind of namespace `fd` is (`CLONE_NEWUTS`, …: `ioctl(NS_GET_NSTYPE)`);
/// an error for a file that is no namespace.
pub fn namespace_type(fd: impl AsFd) -> std::io::Result<i32> {
    /// `_IO(0xb7, 0x3)`, linux/nsfs.h.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: an ioctl without an argument on a descriptor we hold; it
    // touches no memory of ours and returns the type or fails.
    match unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), NS_GET_NSTYPE) } {
        r if r < 0 => Err(std::io::Error::last_os_error()),
        kind => Ok(kind),
    }
}

/// Clears close-on-exec on `fd`, which must stay open across an exec.
pub fn clear_cloexec(fd: i32) {
    // SAFETY: fcntl(F_SETFD) on a descriptor number touches no memory.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
}

/// Default dispositions for every signal and an empty signal mask, as a
/// new program expects them.
pub fn reset_signals() {
    // SAFETY: plain signal-mask and disposition resets on a sigset on the stack.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// Zeroes this process's environment strings in place (a forked child,
/// single-threaded: nothing else reads `environ` meanwhile).
pub fn scrub_environment() {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: walking the NUL-terminated environ array of this
    // single-threaded child and zeroing each string within its length.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let s = *p;
            std::ptr::write_bytes(s, 0, libc::strlen(s));
            p = p.add(1);
        }
    }
}

/// The pointers of `strings` and a NULL, as execve takes them; valid
/// while `strings` lives.
fn nul_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings.iter().map(|s| s.as_ptr()).chain([std::ptr::null()]).collect()
}

/// execve; returns only its error.
pub fn execve(program: &CString, argv: &[CString], envp: &[CString]) -> std::io::Error {
    let argv = nul_terminated(argv);
    let envp = nul_terminated(envp);
    // SAFETY: NUL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    std::io::Error::last_os_error()
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: runs the program `fd`
/// holds. Returns only its error.
pub fn execveat(fd: &OwnedFd, argv: &[CString], envp: &[CString]) -> std::io::Error {
    let argv = nul_terminated(argv);
    let envp = nul_terminated(envp);
    // SAFETY: a valid fd, an empty path and NUL-terminated arrays of valid
    // C strings that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    std::io::Error::last_os_error()
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], set)`: mount
/// flags set on the mount `fd` names (and every mount below it).
pub fn mount_setattr(fd: impl AsFd, set: u64, recursive: bool) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: a valid fd, an empty NUL-terminated path and a mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_fd().as_raw_fd(),
            c"".as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Installs the classic BPF program `filter` as this thread's seccomp
/// filter (`seccomp(SECCOMP_SET_MODE_FILTER, flags)`, or `prctl` on a
/// kernel without seccomp(2) when no flags are asked for). Allocates
/// nothing, so it may run in a forked child.
pub fn install_seccomp_filter(filter: &[libc::sock_filter], flags: u32) -> Result<(), rustix::io::Errno> {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    let last_errno =
        || rustix::io::Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    // SAFETY: `prog` points at `filter`, which outlives the call; the
    // kernel copies it and writes nothing.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = last_errno();
    if e != rustix::io::Errno::NOSYS || flags != 0 {
        return Err(e);
    }
    // SAFETY: as above, through the older interface.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// Which side of a fork this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Child,
    Parent { child: i32 },
}

/// fork(2). The caller must be single-threaded (barge is when it forks:
/// pulls join their threads first), so the child may run ordinary code;
/// the child leaves with [`exit`], never by returning into the parent's
/// code.
pub fn fork() -> std::io::Result<Forked> {
    // SAFETY: see above: a single-threaded caller, a child that exits.
    match unsafe { libc::fork() } {
        r if r < 0 => Err(std::io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        child => Ok(Forked::Parent { child }),
    }
}

/// The namespaces [`clone_into_namespaces`] makes.
#[derive(Debug, Clone, Copy)]
pub struct NewNamespaces {
    /// A user namespace of the container's own (its maps are written
    /// by the parent after the clone).
    pub user: bool,
    /// Mount and UTS: new unless the bundle names one to join.
    pub mount: bool,
    pub uts: bool,
    pub net: bool,
    pub pid: bool,
    pub ipc: bool,
    /// CLONE_PARENT: the child is the caller's sibling (its parent's child).
    pub sibling: bool,
}

/// A fork-like `clone` (no `CLONE_VM`, no new stack) into new user, mount,
/// UTS, network, PID and IPC namespaces as `new` says (the user namespace
/// first: it owns the others); with `sibling`, a child
/// of the caller's parent. Same rules as [`fork`].
pub fn clone_into_namespaces(new: NewNamespaces) -> std::io::Result<Forked> {
    let mut flags = 0;
    for (wanted, flag) in [
        (new.user, libc::CLONE_NEWUSER),
        (new.mount, libc::CLONE_NEWNS),
        (new.uts, libc::CLONE_NEWUTS),
        (new.net, libc::CLONE_NEWNET),
        (new.pid, libc::CLONE_NEWPID),
        (new.ipc, libc::CLONE_NEWIPC),
        (new.sibling, libc::CLONE_PARENT),
    ] {
        if wanted {
            flags |= flag;
        }
    }
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack) from a
    // single-threaded caller, so the child may run ordinary code until execve.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match pid {
        r if r < 0 => Err(std::io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        child => Ok(Forked::Parent { child: child as i32 }),
    }
}

/// Sends signal `sig` (any number from 1 to `SIGRTMAX`) to the process of
/// `pidfd`.
pub fn send_signal(pidfd: impl AsFd, sig: i32) -> std::io::Result<()> {
    let signal = match rustix::process::Signal::from_named_raw(sig) {
        Some(s) => s,
        None if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig) => {
            // SAFETY: a real-time signal in the range libc leaves to programs.
            unsafe { rustix::process::Signal::from_raw_unchecked(sig) }
        }
        None => return Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
    };
    Ok(rustix::process::pidfd_send_signal(pidfd, signal)?)
}

/// Signal numbers from docker's spellings: `TERM`, `SIGTERM`, `15`.
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return None,
    })
}

/// The signals `signals` blocked and delivered on a descriptor instead.
pub struct SignalFd(OwnedFd);

impl SignalFd {
    /// Blocks `signals` and returns a non-blocking signalfd for them.
    pub fn new(signals: &[rustix::process::Signal]) -> std::io::Result<SignalFd> {
        // SAFETY: building a sigset on the stack and blocking it; signalfd
        // returns a new fd that only this handle owns.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in signals {
                libc::sigaddset(&mut set, s.as_raw());
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(SignalFd(OwnedFd::from_raw_fd(fd)))
        }
    }

    /// The next pending signal's number, if one is pending.
    pub fn read(&self) -> Option<i32> {
        let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        let n = rustix::io::read(&self.0, &mut buf).ok()?;
        // `ssi_signo` is the first field, a u32.
        (n == buf.len()).then(|| u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as i32)
    }

    /// The next pending signal's number and the pid of its sender (0 for
    /// one the kernel sent, such as a terminal's).
    pub fn read_from(&self) -> Option<(i32, u32)> {
        let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        let n = rustix::io::read(&self.0, &mut buf).ok()?;
        // `ssi_signo`, `ssi_errno`, `ssi_code`, then `ssi_pid`: four 32-bit fields.
        let field = |at: usize| u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        (n == buf.len()).then(|| (field(0) as i32, field(12)))
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Sets `IFF_UP` on `lo` (a new network namespace starts with it down).
pub fn loopback_up() -> std::io::Result<()> {
    // SAFETY: an ifreq on the stack, a datagram socket closed at the end.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut r = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            r = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        let e = std::io::Error::last_os_error();
        libc::close(sock);
        if r < 0 {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_spellings() {
        assert_eq!(signal_number("TERM"), Some(libc::SIGTERM));
        assert_eq!(signal_number("sigkill"), Some(libc::SIGKILL));
        assert_eq!(signal_number("15"), Some(15));
        assert_eq!(signal_number("64"), Some(64));
        assert_eq!(signal_number("0"), None);
        assert_eq!(signal_number("65"), None);
        assert_eq!(signal_number("NOPE"), None);
    }

    #[test]
    fn real_time_signals_are_sent_through_rustix_too() {
        // A real-time signal to a child that does not block it ends it.
        use std::os::unix::process::ExitStatusExt;
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();
        send_signal(&fd, libc::SIGRTMIN() + 2).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGRTMIN() + 2));
        assert!(send_signal(&fd, 0).is_err() && send_signal(&fd, 65).is_err());
    }
}
