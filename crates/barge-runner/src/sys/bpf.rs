//! bpf(2) for cgroup v2 device programs: load one, attach it to a cgroup,
//! list what is attached. The program itself is compiled by
//! `barge-cgroups` (its `devices` module); only the system calls are here.

use rustix::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Why a program did not load: the error, and the verifier's last word
/// (` (reason)`, or empty).
#[derive(Debug)]
pub struct LoadError {
    pub source: std::io::Error,
    pub log: String,
}

/// One eBPF instruction, as `struct bpf_insn` lays it out.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `union bpf_attr` for BPF_PROG_QUERY, up to `prog_cnt`.
#[repr(C)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// bpf(2) with `attr`; its non-negative result.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable `union bpf_attr` prefix of the
    // size passed; the kernel reads (and for queries writes) only that.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads `code` as a cgroup device program; the verifier's log's last
/// line is in the error.
pub fn load_device_program(code: &[Insn]) -> Result<OwnedFd, LoadError> {
    const LICENSE: &[u8] = b"Apache-2.0\0";
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"barge_devices");
    let attr = |log: &mut [u8]| ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(code.len()).unwrap_or(u32::MAX),
        insns: code.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: u32::try_from(log.len()).unwrap_or(0),
        log_buf: if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 },
        prog_name: name,
        ..ProgLoad::default()
    };
    let fd_of = |fd: libc::c_long| {
        // SAFETY: BPF_PROG_LOAD returned a new file descriptor that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    };
    match bpf(BPF_PROG_LOAD, &mut attr(&mut [])) {
        Ok(fd) => Ok(fd_of(fd)),
        Err(source) => {
            // Again with the verifier's log, for the reason.
            let mut buf = vec![0u8; 1 << 16];
            if let Ok(fd) = bpf(BPF_PROG_LOAD, &mut attr(&mut buf)) {
                drop(fd_of(fd));
            }
            let text = String::from_utf8_lossy(buf.split(|b| *b == 0).next().unwrap_or_default()).into_owned();
            let log = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| format!(" ({})", l.trim()))
                .unwrap_or_default();
            Err(LoadError { source, log })
        }
    }
}

/// Attaches the device program `prog` to the cgroup v2 directory `cgroup`
/// (`BPF_F_ALLOW_MULTI`: programs of parent cgroups keep applying).
pub fn attach_device_program(cgroup: &OwnedFd, prog: &OwnedFd) -> std::io::Result<()> {
    let fd = |f: &OwnedFd| u32::try_from(f.as_raw_fd()).unwrap_or(u32::MAX);
    let mut attr = ProgAttach {
        target_fd: fd(cgroup),
        attach_bpf_fd: fd(prog),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr)?;
    Ok(())
}

/// The ids of the device programs attached to the cgroup v2 directory `cgroup` itself.
pub fn device_programs(cgroup: &OwnedFd) -> std::io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = ProgQuery {
        target_fd: u32::try_from(cgroup.as_raw_fd()).unwrap_or(u32::MAX),
        attach_type: BPF_CGROUP_DEVICE,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: 64,
        _pad: 0,
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}
