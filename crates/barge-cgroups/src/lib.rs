//! A container's cgroup: created with its limits before the container's
//! process runs its command, the place its usage is read from, the set of
//! processes `stop`/`kill`/`rm -f` kill, removed with the container.
//!
//! On cgroup v1 (and the "hybrid" layout, whose cgroup2 mount holds no
//! controllers) the container gets `barge/<id>` in each hierarchy barge
//! uses (memory, cpu, cpuacct, pids, blkio, freezer, devices; cpuset only
//! when the bundle asks for CPUs or memory nodes), relative to
//! barge's own cgroup in that hierarchy, as runc reads a relative
//! `cgroupsPath`: a barge started inside a limited cgroup keeps its
//! containers inside it. On a pure cgroup v2 host it is one directory,
//! `/barge/<id>` below the root, with the controllers enabled in each
//! parent's `cgroup.subtree_control` (a cgroup with processes, such as
//! barge's own, cannot have controllers enabled for children).
//!
//! A rootless barge (an ordinary user's, see `barge_runner::userns`) may
//! make cgroups only on cgroup v2, in the subtree delegated to the user
//! ([`Delegation`]: systemd's `user@UID.service`): the container gets
//! `barge/<id>` below that subtree's top ([`Cgroup::create_delegated`]),
//! or, where there is no such subtree, no cgroup at all
//! ([`Undelegated`] says what is missing).
//!
//! The container's device policy is enforced here too (see [`devices`]):
//! the devices controller's lists on v1, an eBPF device program attached
//! to the container's cgroup on v2. A container whose bundle has device
//! rules does not start where they cannot be applied.
//!
//! The runtime opens the new cgroup's join files before `clone`
//! ([`Cgroup::join`]): on v1 the child, still one thread, writes `0` to
//! each directory's `tasks` first thing (no global lock, so no RCU grace
//! period); on v2 the runner writes the child's PID to `cgroup.procs`
//! while the child mounts its root, and the child waits for that before
//! it takes the container's credentials. `barge exec`'s process writes
//! `0`, itself, first thing ([`Cgroup::join_files`]). Where the cgroup lives is
//! recorded in the container directory's `cgroup.json` ([`Cgroup::save`]),
//! for whoever kills, reads or removes it later. [`stats`] turns its usage
//! into `barge stats`' numbers.
//!
//! It is not for starting processes (`barge-runner`) or for what a
//! container is (`barge-runtime`): it knows a container only by its
//! directory, where the record lives. It makes no raw system call: the
//! device program's bpf(2) calls are `barge_runner::sys::bpf`.
#![forbid(unsafe_code)]

pub mod devices;
pub mod stats;

use barge_runner::spec::LinuxResources as Resources;
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// v1 controllers a container's cgroup is made in.
const V1_CONTROLLERS: &[&str] = &[
    "memory", "cpu", "cpuacct", "pids", "blkio", "freezer", "devices", "cpuset",
];
/// v2 controllers enabled for containers (those the parent has).
const V2_CONTROLLERS: &[&str] = &["memory", "cpu", "pids", "io"];
/// The container directory's record of where its cgroup is.
const RECORD: &str = "cgroup.json";
/// The CFS period docker uses for `--cpus`, in microseconds.
pub const CPU_PERIOD: u64 = 100_000;
/// v1's "no limit" is a page-rounded i64::MAX; anything this large is none.
const UNLIMITED: u64 = 1 << 62;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup filesystem is mounted (see /proc/self/mountinfo); the device policy, --memory, --cpus and --pids-limit need one")]
    NotMounted,
    #[error("the cgroup path {0:?} is not a plain relative or absolute path")]
    BadPath(String),
    #[error("unable to set swap limit without memory limit")]
    SwapWithoutMemory,
    #[error("memory+swap limit should be >= memory limit")]
    SwapBelowMemory,
    /// runc's words when the kernel refuses a v1 limit below what is in use.
    #[error("unable to set memory limit to {limit} (current usage: {usage}, peak usage: {peak})")]
    MemoryInUse { limit: i64, usage: u64, peak: u64 },
    #[error("the {0} cgroup controller is not available on this host")]
    NoController(&'static str),
    /// A cpuset asked of a cgroup made without one (v1: a cpuset is made
    /// only when the container is created with one).
    #[error("the container was created without --cpuset-cpus or --cpuset-mems: its cpuset cannot be set now")]
    NoCpuset,
    #[error("invalid cpuset list {0:?}: give CPUs or memory nodes as 0-3,5")]
    BadCpuList(String),
    #[error("the container's processes did not {0} within a second")]
    Freezer(&'static str),
    #[error(transparent)]
    Devices(#[from] devices::DeviceError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Record(#[from] barge_records::RecordError),
    /// Rootless: no cgroup of the user's to make the container's in.
    #[error("resource limits need a cgroup, which rootless barge cannot make here: {0}")]
    Undelegated(#[from] Undelegated),
}

/// Why a rootless barge has no cgroup subtree to make containers' cgroups
/// in (see [`Delegation`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Undelegated {
    #[error("this host has no cgroup v2 (its cgroups are v1 or the hybrid layout), and only cgroup v2 can be delegated to a user")]
    NoV2,
    #[error("barge's cgroup {own} is in no cgroup v2 subtree delegated to your user (you may write the cgroup.procs of none of it and its parents); run barge inside your systemd user session's subtree, e.g. `systemd-run --user --scope barge ...`")]
    NoSubtree { own: String },
    #[error("the {controller} controller could not be enabled for the cgroups below {root}: it has processes of its own, and cgroup v2 lets only a cgroup without processes pass controllers on; run barge in a cgroup below it, e.g. `systemd-run --user --scope barge ...`")]
    NotPassedOn { controller: &'static str, root: PathBuf },
    #[error("the {controller} controller is not delegated to your user (the cgroup.controllers of {root} has only {have:?}); delegate it to user sessions: `systemctl edit user@.service` with `[Service]` `Delegate=cpu cpuset io memory pids`")]
    Controller {
        controller: &'static str,
        root: PathBuf,
        have: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CgroupError {
    let context = context.into();
    move |source| CgroupError::Io { context, source }
}

/// Whether `res` asks for anything only a cgroup enforces: a limit or a
/// device policy (every container barge creates has docker's).
pub fn limits_asked(res: Option<&Resources>) -> bool {
    res.is_some_and(|r| {
        r.memory().is_some()
            || r.cpu().is_some()
            || r.pids().is_some()
            || r.devices().as_ref().is_some_and(|d| !d.is_empty())
    })
}

/// A cgroup v1 hierarchy as mounted: its controllers, mount point, and
/// which cgroup of the hierarchy the mount shows at its top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub controllers: Vec<String>,
    pub mount: PathBuf,
    pub root: String,
}

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    V1(Vec<Hierarchy>),
    /// The unified hierarchy's mount point.
    V2(PathBuf),
}

/// The layout from `/proc/self/mountinfo` text. Any v1 hierarchy with
/// controllers makes it v1 (a hybrid host's cgroup2 mount has none); a
/// cgroup2 mount alone is v2.
pub fn parse_layout(mountinfo: &str) -> Option<Layout> {
    let mut v1 = Vec::new();
    let mut v2 = None;
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (Some(root), Some(mount), Some(fstype)) = (pre.get(3), pre.get(4), post.first()) else {
            continue;
        };
        let mount = PathBuf::from(unescape(mount));
        match *fstype {
            // The canonical place wins over another mount of the same hierarchy.
            "cgroup2" if v2.is_none() || mount == Path::new("/sys/fs/cgroup") => v2 = Some(mount),
            "cgroup" => {
                let controllers: Vec<String> = post
                    .get(2)
                    .unwrap_or(&"")
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o))
                    .map(str::to_string)
                    .collect();
                if !controllers.is_empty() && !v1.iter().any(|h: &Hierarchy| h.controllers == controllers) {
                    v1.push(Hierarchy {
                        controllers,
                        mount,
                        root: unescape(root),
                    });
                }
            }
            _ => {}
        }
    }
    if !v1.is_empty() {
        Some(Layout::V1(v1))
    } else {
        v2.map(Layout::V2)
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This host's layout.
pub fn detect() -> Option<Layout> {
    parse_layout(&std::fs::read_to_string("/proc/self/mountinfo").ok()?)
}

/// A process's cgroup in the hierarchy with `controller` (v1), or its v2
/// cgroup (`controller` None), from `/proc/PID/cgroup` text.
pub fn own_cgroup(proc_cgroup: &str, controller: Option<&str>) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match controller {
            None => ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        hit.then(|| path.to_string())
    })
}

/// The `cgroupsPath` barge writes into a container's bundle.
pub fn default_path(id: &str) -> String {
    match detect() {
        Some(Layout::V2(_)) => format!("/barge/{id}"),
        _ => format!("barge/{id}"),
    }
}

/// A cgroup v2 subtree delegated to the user a rootless barge runs as:
/// the highest ancestor of barge's own cgroup whose `cgroup.procs` it may
/// write. The kernel moves a process between two cgroups only for one
/// that may write the `cgroup.procs` of their common ancestor, so a
/// container's cgroup must be made in the subtree barge itself is in.
/// systemd's `user@UID.service` (`Delegate=yes`) is such a subtree: its
/// directory, `cgroup.procs`, `cgroup.subtree_control` and
/// `cgroup.threads` belong to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// The subtree's top directory.
    pub root: PathBuf,
    /// Its `cgroup.controllers`: what its parent passed on to it.
    pub controllers: Vec<String>,
}

impl Delegation {
    /// This process's delegated subtree. Found by trying, not by
    /// comparing owners: in barge's user namespace the user is 0 and
    /// root's files show as 65534, so a `cgroup.procs` is opened for
    /// writing (nothing is written) to learn whether barge may write it.
    pub fn find() -> Result<Delegation, Undelegated> {
        let Some(Layout::V2(mount)) = detect() else {
            return Err(Undelegated::NoV2);
        };
        let own =
            own_cgroup(&read(Path::new("/proc/self/cgroup")).unwrap_or_default(), None).unwrap_or_else(|| "/".into());
        let root = highest_writable(&mount, &own, may_write_procs).ok_or(Undelegated::NoSubtree { own })?;
        let controllers = read(&root.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Ok(Delegation { root, controllers })
    }

    /// Ok when the subtree has `controller`.
    pub fn require(&self, controller: &'static str) -> Result<(), Undelegated> {
        if self.controllers.iter().any(|c| c == controller) {
            return Ok(());
        }
        Err(Undelegated::Controller {
            controller,
            root: self.root.clone(),
            have: self.controllers.join(" "),
        })
    }
}

fn may_write_procs(dir: &Path) -> bool {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        dir.join("cgroup.procs"),
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .is_ok()
}

/// The highest cgroup directory on the way from the top of the v2
/// hierarchy at `mount` down to `own` (included; the top itself never)
/// for which `writable` holds.
pub fn highest_writable(mount: &Path, own: &str, writable: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let rel = checked_rel(own).ok()?;
    let mut dir = mount.to_path_buf();
    for c in rel.components() {
        dir.push(c);
        if writable(&dir) {
            return Some(dir);
        }
    }
    None
}

fn checked_rel(path: &str) -> Result<PathBuf, CgroupError> {
    let p = Path::new(path);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => return Err(CgroupError::BadPath(path.to_string())),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(CgroupError::BadPath(path.to_string()));
    }
    Ok(out)
}

/// The directory of cgroup `path` in a hierarchy mounted at `mount` (whose
/// top is `mount_root`), for a process in cgroup `own` there: absolute
/// paths from the top, relative ones below `own`.
pub fn resolve(mount: &Path, mount_root: &str, own: &str, path: &str) -> Result<PathBuf, CgroupError> {
    let rel = checked_rel(path)?;
    if path.starts_with('/') {
        return Ok(mount.join(rel));
    }
    let own = own.strip_prefix(mount_root).unwrap_or(own);
    let mut dir = mount.to_path_buf();
    if let Ok(own_rel) = checked_rel(own) {
        dir.push(own_rel);
    }
    Ok(dir.join(rel))
}

/// runc's conversion of cpu shares (2..262144) to a v2 weight (1..10000).
pub fn cpu_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// v2's `memory.swap.max` for the spec's memory and memory+swap limits.
pub fn swap_max(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>, CgroupError> {
    match (limit, swap) {
        (_, None) | (_, Some(0)) => Ok(None),
        (_, Some(-1)) => Ok(Some("max".into())),
        (None, Some(_)) | (Some(0), Some(_)) | (Some(-1), Some(_)) => Err(CgroupError::SwapWithoutMemory),
        (Some(l), Some(s)) if s < l => Err(CgroupError::SwapBelowMemory),
        (Some(l), Some(s)) => Ok(Some((s - l).to_string())),
    }
}

/// The files to write for `res`, in order: (controller, file, value).
pub fn settings(res: &Resources, version: Version) -> Result<Vec<(&'static str, &'static str, String)>, CgroupError> {
    let mut out = Vec::new();
    let num = |v: i64| if v < 0 { "max".to_string() } else { v.to_string() };
    if let Some(m) = res.memory() {
        if version == Version::V2 {
            if let Some(l) = m.limit() {
                out.push(("memory", "memory.max", num(l)));
            }
            if let Some(s) = swap_max(m.limit(), m.swap())? {
                out.push(("memory", "memory.swap.max", s));
            }
            if let Some(r) = m.reservation() {
                out.push(("memory", "memory.low", num(r)));
            }
        } else {
            // The memory limit first: memory+swap may never be below it.
            if let Some(l) = m.limit() {
                out.push(("memory", "memory.limit_in_bytes", l.to_string()));
            }
            if let Some(s) = m.swap().filter(|s| *s != 0) {
                out.push(("memory", "memory.memsw.limit_in_bytes", s.to_string()));
            }
            if let Some(r) = m.reservation() {
                out.push(("memory", "memory.soft_limit_in_bytes", r.to_string()));
            }
        }
    }
    if let Some(c) = res.cpu() {
        if version == Version::V2 {
            if let Some(w) = c.shares().map(cpu_weight).filter(|w| *w > 0) {
                out.push(("cpu", "cpu.weight", w.to_string()));
            }
            if c.quota().is_some() || c.period().is_some() {
                let period = c.period().unwrap_or(CPU_PERIOD);
                let quota = c.quota().filter(|q| *q > 0).map(|q| q.to_string());
                out.push((
                    "cpu",
                    "cpu.max",
                    format!("{} {period}", quota.as_deref().unwrap_or("max")),
                ));
            }
        } else {
            if let Some(s) = c.shares() {
                out.push(("cpu", "cpu.shares", s.to_string()));
            }
            if let Some(p) = c.period() {
                out.push(("cpu", "cpu.cfs_period_us", p.to_string()));
            }
            if let Some(q) = c.quota() {
                out.push(("cpu", "cpu.cfs_quota_us", q.to_string()));
            }
        }
    }
    if let Some(c) = res.cpu() {
        // The same files on v1 and v2; the kernel refuses CPUs or nodes
        // outside the parent's.
        for (file, list) in [("cpuset.cpus", c.cpus()), ("cpuset.mems", c.mems())] {
            if let Some(list) = list.as_deref().filter(|l| !l.is_empty()) {
                parse_cpu_list(list)?;
                out.push(("cpuset", file, list.to_string()));
            }
        }
    }
    if let Some(p) = res.pids() {
        out.push((
            "pids",
            "pids.max",
            if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            },
        ));
    }
    // On v2 the rules are an eBPF program (`Cgroup::apply`), checked here all the same.
    for rule in devices::parse_all(res.devices().as_deref().unwrap_or_default())? {
        if version == Version::V1 {
            let (file, line) = rule.v1_line();
            out.push(("devices", file, line));
        }
    }
    Ok(out)
}

/// Whether `res` asks for CPUs or memory nodes (a cpuset).
pub fn cpuset_asked(res: Option<&Resources>) -> bool {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
    res.and_then(|r| r.cpu().as_ref())
        .is_some_and(|c| set(c.cpus()) || set(c.mems()))
}

/// A cpuset list (`0-3,5`, the kernel's syntax) as its sorted numbers;
/// anything else (spaces, a reversed range, more than 4096) is refused.
pub fn parse_cpu_list(list: &str) -> Result<Vec<u32>, CgroupError> {
    let bad = || CgroupError::BadCpuList(list.to_string());
    let mut out = Vec::new();
    for part in list.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let num = |s: &str| -> Result<u32, CgroupError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse().ok().filter(|n| *n < 4096).ok_or_else(bad)
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The CPUs or memory nodes of `list` that `available` (a list as the
/// kernel prints it, `0-1`) lacks.
pub fn cpus_missing(list: &str, available: &str) -> Result<Vec<u32>, CgroupError> {
    let have = parse_cpu_list(available.trim())?;
    Ok(parse_cpu_list(list)?
        .into_iter()
        .filter(|n| !have.contains(n))
        .collect())
}

/// The `N` of a `key N` line (`oom_kill 3` in memory.events or memory.oom_control).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Bytes read and written, from v1 `blkio.*io_service_bytes*` text.
pub fn parse_blkio_v1(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [_, op, n] = f.as_slice() {
            let n: u64 = n.parse().unwrap_or(0);
            match *op {
                "Read" => r += n,
                "Write" => w += n,
                _ => {}
            }
        }
    }
    (r, w)
}

/// Bytes read and written, from v2 `io.stat` text.
pub fn parse_io_stat(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for l in text.lines() {
        for kv in l.split_whitespace().skip(1) {
            match kv.split_once('=') {
                Some(("rbytes", n)) => r += n.parse().unwrap_or(0),
                Some(("wbytes", n)) => w += n.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    (r, w)
}

/// What a cgroup has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time of every process, ever, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, without the inactive file cache (as docker shows it).
    pub memory: u64,
    /// The memory limit, if any.
    pub memory_limit: Option<u64>,
    pub pids: u64,
    pub block_read: u64,
    pub block_write: u64,
}

/// A container's cgroup: one directory per v1 hierarchy (named by its
/// controllers, `cpu` or `cpu,cpuacct`), or the one v2 directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    /// Recorded as `"v2": true|false`, as before there was an enum: the
    /// records of containers running across an upgrade still load.
    #[serde(rename = "v2", with = "version_as_v2")]
    pub version: Version,
    pub dirs: Vec<(String, PathBuf)>,
}

/// Which cgroup interface a container's cgroup is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One directory per hierarchy, each with its controllers' files.
    V1,
    /// The unified hierarchy: one directory.
    V2,
}

mod version_as_v2 {
    use super::Version;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Version, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*v == Version::V2)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        Ok(if bool::deserialize(d)? {
            Version::V2
        } else {
            Version::V1
        })
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_u64(path: &Path) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(io(format!("writing {value:?} to {}", path.display())))
}

/// `mkdir -p`, retried: a parent removed by another container's cleanup
/// between the two mkdirs is made again.
fn make_dir(dir: &Path) -> Result<(), CgroupError> {
    let mut last = None;
    for _ in 0..5 {
        match std::fs::create_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(io(format!("creating cgroup {}", dir.display()))(
        last.unwrap_or_else(|| std::io::Error::other("mkdir failed")),
    ))
}

impl Cgroup {
    /// Creates the cgroup `path` (the bundle's `cgroupsPath`) with the
    /// limits of `res`. `Ok(None)` when the host has no cgroups and none
    /// were asked for.
    pub fn create(path: &str, res: Option<&Resources>) -> Result<Option<Cgroup>, CgroupError> {
        let Some(layout) = detect() else {
            return if limits_asked(res) {
                Err(CgroupError::NotMounted)
            } else {
                Ok(None)
            };
        };
        let proc_cgroup = read(Path::new("/proc/self/cgroup")).unwrap_or_default();
        let cpuset = cpuset_asked(res);
        // v1 cpuset hierarchies and the container's directory in each.
        let mut cpusets = Vec::new();
        let cg = match layout {
            Layout::V1(hierarchies) => {
                let mut dirs = Vec::new();
                for h in hierarchies {
                    let has_cpuset = h.controllers.iter().any(|c| c == "cpuset");
                    // A cpuset of its own only when asked: none is joined otherwise.
                    if has_cpuset && h.controllers.len() == 1 && !cpuset {
                        continue;
                    }
                    let own = h
                        .controllers
                        .iter()
                        .find_map(|c| own_cgroup(&proc_cgroup, Some(c)))
                        .unwrap_or_else(|| "/".into());
                    let dir = resolve(&h.mount, &h.root, &own, path)?;
                    if has_cpuset {
                        cpusets.push((h.mount.clone(), dir.clone()));
                    }
                    dirs.push((h.controllers.join(","), dir));
                }
                Cgroup {
                    version: Version::V1,
                    dirs,
                }
            }
            Layout::V2(mount) => {
                let own = own_cgroup(&proc_cgroup, None).unwrap_or_else(|| "/".into());
                let dir = resolve(&mount, "/", &own, path)?;
                enable_controllers(&mount, &dir, cpuset);
                Cgroup {
                    version: Version::V2,
                    dirs: vec![("".into(), dir)],
                }
            }
        };
        cg.populate(res, &cpusets).map(Some)
    }

    /// Rootless, on cgroup v2: the container `id`'s cgroup `barge/<id>` in
    /// the subtree delegated to the user ([`Delegation`]), with the limits
    /// of `res`, every controller they need checked as delegated first.
    /// Controllers are enabled in the subtree's top and in `barge/`, never
    /// in a cgroup with processes of its own (v2 forbids it), which
    /// barge's own cgroup is.
    pub fn create_delegated(id: &str, res: Option<&Resources>) -> Result<Cgroup, CgroupError> {
        let d = Delegation::find()?;
        let needed = match res {
            Some(res) => settings(res, Version::V2)?,
            None => Vec::new(),
        };
        for (controller, _, _) in &needed {
            d.require(controller)?;
        }
        let dir = d.root.join("barge").join(checked_rel(id)?);
        enable_controllers(&d.root, &dir, cpuset_asked(res));
        let enabled = read(&d.root.join("cgroup.subtree_control")).unwrap_or_default();
        if let Some((controller, _, _)) = needed
            .iter()
            .find(|(c, _, _)| !enabled.split_whitespace().any(|e| e == *c))
        {
            return Err(Undelegated::NotPassedOn {
                controller,
                root: d.root,
            }
            .into());
        }
        Cgroup {
            version: Version::V2,
            dirs: vec![("".into(), dir)],
        }
        .populate(res, &[])
    }

    /// Makes the directories, gives each v1 `(mount, dir)` of `cpusets` its
    /// parent's CPUs and nodes, and writes the limits; removes what it made
    /// when that fails.
    fn populate(self, res: Option<&Resources>, cpusets: &[(PathBuf, PathBuf)]) -> Result<Cgroup, CgroupError> {
        let result = (|| {
            for (_, dir) in &self.dirs {
                make_dir(dir)?;
            }
            for (mount, dir) in cpusets {
                inherit_cpuset(mount, dir)?;
            }
            if let Some(res) = res {
                self.apply(res)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(self),
            Err(e) => {
                self.remove();
                Err(e)
            }
        }
    }

    /// The directory holding `controller`'s files.
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        if self.version == Version::V2 {
            return self.dirs.first().map(|(_, d)| d.as_path());
        }
        self.dirs
            .iter()
            .find(|(c, _)| c.split(',').any(|x| x == controller))
            .map(|(_, d)| d.as_path())
    }

    fn apply(&self, res: &Resources) -> Result<(), CgroupError> {
        self.write_settings(settings(res, self.version)?)?;
        let rules = res.devices().as_deref().unwrap_or_default();
        if self.version == Version::V2 && !rules.is_empty() {
            let dir = self.dir("").ok_or(CgroupError::NotMounted)?;
            devices::attach(dir, rules)?;
        }
        Ok(())
    }

    fn write_settings(&self, settings: Vec<(&'static str, &'static str, String)>) -> Result<(), CgroupError> {
        // Lines in a row for one file (a dozen device rules for
        // `devices.allow`) go through one open file, each its own write.
        let mut open: Option<(PathBuf, std::fs::File)> = None;
        for (controller, file, value) in settings {
            // No devices hierarchy is no device policy: refused like any missing controller.
            let Some(dir) = self.dir(controller) else {
                if controller == "cpuset" && v1_cpuset_mounted() {
                    return Err(CgroupError::NoCpuset);
                }
                return Err(CgroupError::NoController(controller));
            };
            // Without swap accounting docker limits memory alone.
            if (file == "memory.memsw.limit_in_bytes" || file == "memory.swap.max") && !dir.join(file).exists() {
                continue;
            }
            let path = dir.join(file);
            let (path, f) = match open {
                Some((ref p, ref mut f)) if *p == path => (p, f),
                _ => {
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io(format!("opening {}", path.display())))?;
                    let (p, f) = open.insert((path, f));
                    (&*p, f)
                }
            };
            std::io::Write::write_all(f, value.as_bytes())
                .map_err(io(format!("writing {value:?} to {}", path.display())))
                .map_err(|e| self.memory_in_use(file, &value, e))?;
        }
        Ok(())
    }

    /// v1 refuses (EBUSY) a memory limit below what the cgroup uses: said as runc says it.
    fn memory_in_use(&self, file: &str, value: &str, e: CgroupError) -> CgroupError {
        let busy = matches!(&e, CgroupError::Io { source, .. }
            if source.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()));
        let (true, "memory.limit_in_bytes", Some(dir), Ok(limit)) = (busy, file, self.dir("memory"), value.parse())
        else {
            return e;
        };
        CgroupError::MemoryInUse {
            limit,
            usage: read_u64(&dir.join("memory.usage_in_bytes")).unwrap_or(0),
            peak: read_u64(&dir.join("memory.max_usage_in_bytes")).unwrap_or(0),
        }
    }

    /// `docker update`: the limits of `res` on a cgroup in use (its device
    /// policy stays as it is). On v1 memory+swap may never be below the
    /// memory limit, so a limit raised above the current memory+swap
    /// goes after the new memory+swap.
    pub fn update(&self, res: &Resources) -> Result<(), CgroupError> {
        let mut settings: Vec<_> = settings(res, self.version)?
            .into_iter()
            .filter(|(controller, _, _)| *controller != "devices")
            .collect();
        if self.version == Version::V1 {
            let pos = |name: &str| settings.iter().position(|(_, f, _)| *f == name);
            if let (Some(limit), Some(swap)) = (pos("memory.limit_in_bytes"), pos("memory.memsw.limit_in_bytes")) {
                let current_swap = self
                    .dir("memory")
                    .and_then(|d| read_u64(&d.join("memory.memsw.limit_in_bytes")));
                let new_limit: u64 = settings[limit].2.parse().unwrap_or(0);
                if current_swap.is_some_and(|s| new_limit > s) {
                    settings.swap(limit, swap);
                }
            }
        }
        self.write_settings(settings)
    }

    /// The file of each directory that a process writes to join, open for
    /// writing: on v1 `tasks`, where a single-threaded process that writes
    /// `0` (itself) takes no global lock (see
    /// [`barge_runner::child::CgroupJoin`]); on v2 `cgroup.procs`, where a
    /// PID or `0` moves a whole process.
    pub fn join_files(&self) -> Result<Vec<rustix::fd::OwnedFd>, CgroupError> {
        use rustix::fs::{Mode, OFlags};
        let file = match self.version {
            Version::V1 => "tasks",
            Version::V2 => "cgroup.procs",
        };
        self.dirs
            .iter()
            .map(|(_, d)| {
                let p = d.join(file);
                rustix::fs::open(&p, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| io(format!("opening {}", p.display()))(e.into()))
            })
            .collect()
    }

    /// How a container's first process joins: by itself on v1, by barge
    /// writing its PID on v2 (see [`barge_runner::child::CgroupJoin`]).
    pub fn join(&self) -> Result<barge_runner::child::CgroupJoin, CgroupError> {
        use barge_runner::child::CgroupJoin;
        let files = self.join_files()?;
        Ok(match self.version {
            Version::V1 => CgroupJoin::Itself(files),
            Version::V2 => CgroupJoin::ByParent(files),
        })
    }

    /// Every process in the cgroup (in any of its directories).
    pub fn pids(&self) -> Vec<i32> {
        let mut out: Vec<i32> = Vec::new();
        for (_, d) in &self.dirs {
            for p in read(&d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
            {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Freezes (or thaws) every process; false when there is no freezer
    /// or it did not settle within a second.
    fn freeze(&self, on: bool) -> bool {
        let controller = match self.version {
            Version::V1 => "freezer",
            Version::V2 => "",
        };
        let (dir, file, value) = match (self.version, self.dir(controller)) {
            (_, None) => return false,
            (Version::V2, Some(d)) => (d, "cgroup.freeze", if on { "1" } else { "0" }),
            (Version::V1, Some(d)) => (d, "freezer.state", if on { "FROZEN" } else { "THAWED" }),
        };
        if write(dir, file, value).is_err() {
            return false;
        }
        let settled = || {
            if self.version == Version::V2 {
                keyed(&read(&dir.join("cgroup.events")).unwrap_or_default(), "frozen") == Some(on as u64)
            } else {
                read(&dir.join("freezer.state")).is_some_and(|s| s.trim() == value)
            }
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        while !settled() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// `pause` (`on`) or `unpause`: freezes or thaws every process.
    pub fn set_paused(&self, on: bool) -> Result<(), CgroupError> {
        if self.freeze(on) {
            Ok(())
        } else {
            Err(CgroupError::Freezer(if on { "freeze" } else { "thaw" }))
        }
    }

    /// Whether `pause` froze the processes.
    pub fn paused(&self) -> bool {
        match (
            self.version,
            self.dir(if self.version == Version::V1 { "freezer" } else { "" }),
        ) {
            (Version::V1, Some(d)) => read(&d.join("freezer.state")).is_some_and(|s| s.trim() == "FROZEN"),
            (Version::V2, Some(d)) => read(&d.join("cgroup.freeze")).is_some_and(|s| s.trim() == "1"),
            (_, None) => false,
        }
    }

    /// SIGKILL to every process in the cgroup, frozen first so that none
    /// can fork meanwhile; returns once none is left (or after 5 seconds).
    pub fn kill_all(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        if self.version == Version::V2 {
            if let Some(d) = self.dir("") {
                if d.join("cgroup.kill").exists() && write(d, "cgroup.kill", "1").is_ok() {
                    while !self.pids().is_empty() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    return;
                }
            }
        }
        loop {
            self.freeze(true);
            let pids = self.pids();
            for p in &pids {
                if let Some(pid) = rustix::process::Pid::from_raw(*p) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            // Thawed in any case: a frozen task dies only once thawed.
            self.freeze(false);
            if pids.is_empty() || Instant::now() > deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// How many processes the kernel's OOM killer has killed here.
    pub fn oom_kills(&self) -> u64 {
        let Some(d) = self.dir("memory") else { return 0 };
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        read(&d.join(file)).and_then(|t| keyed(&t, "oom_kill")).unwrap_or(0)
    }

    /// What the cgroup has used so far.
    pub fn usage(&self) -> Usage {
        let mut u = Usage::default();
        if self.version == Version::V2 {
            let Some(d) = self.dir("") else { return u };
            u.cpu_ns = read(&d.join("cpu.stat"))
                .and_then(|t| keyed(&t, "usage_usec"))
                .unwrap_or(0)
                .saturating_mul(1000);
            let inactive = read(&d.join("memory.stat")).and_then(|t| keyed(&t, "inactive_file"));
            u.memory = read_u64(&d.join("memory.current"))
                .unwrap_or(0)
                .saturating_sub(inactive.unwrap_or(0));
            u.memory_limit = read_u64(&d.join("memory.max"));
            u.pids = read_u64(&d.join("pids.current")).unwrap_or(0);
            (u.block_read, u.block_write) = parse_io_stat(&read(&d.join("io.stat")).unwrap_or_default());
        } else {
            if let Some(d) = self.dir("cpuacct") {
                u.cpu_ns = read_u64(&d.join("cpuacct.usage")).unwrap_or(0);
            }
            if let Some(d) = self.dir("memory") {
                let inactive = read(&d.join("memory.stat")).and_then(|t| keyed(&t, "total_inactive_file"));
                u.memory = read_u64(&d.join("memory.usage_in_bytes"))
                    .unwrap_or(0)
                    .saturating_sub(inactive.unwrap_or(0));
                u.memory_limit = read_u64(&d.join("memory.limit_in_bytes")).filter(|l| *l < UNLIMITED);
            }
            if let Some(d) = self.dir("pids") {
                u.pids = read_u64(&d.join("pids.current")).unwrap_or(0);
            }
            if let Some(d) = self.dir("blkio") {
                // docker's order: the CFQ/BFQ-independent file first, the throttle one when that is empty.
                for f in [
                    "blkio.io_service_bytes_recursive",
                    "blkio.throttle.io_service_bytes_recursive",
                ] {
                    let (r, w) = parse_blkio_v1(&read(&d.join(f)).unwrap_or_default());
                    if r + w > 0 {
                        (u.block_read, u.block_write) = (r, w);
                        break;
                    }
                }
            }
        }
        u
    }

    /// Kills what is left and removes the directories. On v1 the `barge`
    /// parents stay, as docker's `docker` ones do: making and removing them
    /// at every start took about 2 ms of the start of a `--rm` container
    /// here (seven hierarchies; a cgroup's removal and creation are costly
    /// on v1). On v2 an empty `barge` parent goes: it is one directory, and
    /// one left would hold its controllers enabled in the subtree above it
    /// (in a user's delegated subtree, the user's systemd could no longer
    /// take a controller back). Errors are ignored: nothing more can be
    /// done.
    pub fn remove(&self) {
        if self.dirs.iter().any(|(_, d)| d.exists()) {
            self.kill_all();
        }
        for (_, dir) in &self.dirs {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match std::fs::remove_dir(dir) {
                    Err(e)
                        if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error())
                            && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    _ => break,
                }
            }
            if self.version == Version::V2 {
                if let Some(parent) = dir.parent().filter(|p| p.file_name().is_some_and(|n| n == "barge")) {
                    let _ = std::fs::remove_dir(parent);
                }
            }
        }
    }

    /// The cgroup recorded for a container directory.
    pub fn load(container_dir: &Path) -> Option<Cgroup> {
        serde_json::from_slice(&std::fs::read(container_dir.join(RECORD)).ok()?).ok()
    }

    /// Records the cgroup in a container directory, for [`Cgroup::load`].
    pub fn save(&self, container_dir: &Path) -> Result<(), CgroupError> {
        Ok(barge_records::write_json(&container_dir.join(RECORD), self)?)
    }
}

/// After a container's processes are gone: reads whether the OOM killer
/// struck, removes the cgroup and its record. Returns the OOM verdict.
pub fn release(container_dir: &Path) -> bool {
    let Some(cg) = Cgroup::load(container_dir) else {
        return false;
    };
    let oom = cg.oom_kills() > 0;
    cg.remove();
    let _ = std::fs::remove_file(container_dir.join(RECORD));
    oom
}

/// Whether this host has a v1 cpuset hierarchy.
fn v1_cpuset_mounted() -> bool {
    matches!(detect(), Some(Layout::V1(hs)) if hs.iter().any(|h| h.controllers.iter().any(|c| c == "cpuset")))
}

/// v1 cpuset: a new cgroup has no CPUs and no memory nodes (unless its
/// parent's `cgroup.clone_children` is set), and no process can join it
/// until it has both; each directory from the hierarchy's `mount` down to
/// `dir` that has none gets its parent's, top down, as runc does.
fn inherit_cpuset(mount: &Path, dir: &Path) -> Result<(), CgroupError> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(());
    };
    let mut cur = mount.to_path_buf();
    for c in rel.components() {
        let parent = cur.clone();
        cur.push(c);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if read(&cur.join(file)).is_some_and(|v| v.trim().is_empty()) {
                let from = read(&parent.join(file)).unwrap_or_default();
                write(&cur, file, from.trim())?;
            }
        }
    }
    Ok(())
}

/// v2: enables barge's controllers (and `cpuset` when `cpuset`) in `mount`
/// (the hierarchy's top, or a delegated subtree's) and in every cgroup
/// between it and `dir`: all of `dir`'s parents down from `mount`, which it
/// makes where missing.
fn enable_controllers(mount: &Path, dir: &Path, cpuset: bool) {
    let Ok(rel) = dir.strip_prefix(mount) else { return };
    let mut cur = mount.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let available = read(&cur.join("cgroup.controllers")).unwrap_or_default();
        let enable: Vec<String> = V2_CONTROLLERS
            .iter()
            .chain(cpuset.then_some(&"cpuset"))
            .filter(|c| available.split_whitespace().any(|a| a == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if write(&cur, "cgroup.subtree_control", &enable.join(" ")).is_err() {
            for e in &enable {
                let _ = write(&cur, "cgroup.subtree_control", e);
            }
        }
        // The leaf itself is made by the caller.
        if i + 1 == comps.len() {
            break;
        }
        cur.push(c);
        let _ = std::fs::create_dir(&cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use barge_runner::spec::{LinuxCpu, LinuxMemory, LinuxPids};

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn delegated_subtree_is_the_highest_writable_ancestor() {
        let m = Path::new("/sys/fs/cgroup");
        let own = "/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope";
        let mine = |d: &Path| d.starts_with("/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service");
        assert_eq!(
            highest_writable(m, own, mine),
            Some(PathBuf::from(
                "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service"
            ))
        );
        // A login shell's session scope is root's: no subtree to use.
        assert_eq!(
            highest_writable(m, "/user.slice/user-1000.slice/session-3.scope", mine),
            None
        );
        assert_eq!(highest_writable(m, "/", |_| true), None, "the top is never delegated");
        let d = Delegation {
            root: PathBuf::from("/sys/fs/cgroup/u"),
            controllers: vec!["memory".into(), "pids".into()],
        };
        assert!(d.require("memory").is_ok());
        let e = d.require("cpu").unwrap_err();
        assert!(e.to_string().contains("the cpu controller is not delegated"), "{e}");
        assert!(e.to_string().contains("memory pids"), "{e}");
    }

    #[test]
    fn controllers_are_enabled_down_to_the_leafs_parent() {
        let top = tempfile::tempdir().unwrap();
        let top = top.path();
        std::fs::create_dir(top.join("barge")).unwrap();
        for d in [top.to_path_buf(), top.join("barge")] {
            std::fs::write(d.join("cgroup.controllers"), "cpuset memory pids\n").unwrap();
        }
        enable_controllers(top, &top.join("barge/abc"), false);
        for d in [top.to_path_buf(), top.join("barge")] {
            let enabled = std::fs::read_to_string(d.join("cgroup.subtree_control")).unwrap();
            assert_eq!(enabled, "+memory +pids", "{}", d.display());
        }
        assert!(!top.join("barge/abc").exists(), "the leaf is the caller's to make");
    }

    #[test]
    fn layouts_from_mountinfo() {
        let Some(Layout::V1(h)) = parse_layout(HYBRID) else {
            panic!("hybrid is v1")
        };
        assert_eq!(h.len(), 4, "name=systemd has no controller: {h:?}");
        assert_eq!(h[2].controllers, vec!["memory"]);
        assert_eq!(h[2].mount, PathBuf::from("/sys/fs/cgroup/memory"));
        let comounted = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let Some(Layout::V1(h)) = parse_layout(comounted) else {
            panic!()
        };
        assert_eq!(h[0].controllers, vec!["cpu", "cpuacct"]);
        let pure = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(parse_layout(pure), Some(Layout::V2(PathBuf::from("/sys/fs/cgroup"))));
        assert_eq!(parse_layout("22 1 0:5 / /proc rw - proc proc rw\n"), None);
        assert_eq!(unescape("/a\\040b"), "/a b");
    }

    #[test]
    fn paths_relative_to_our_own_cgroup() {
        let pc = "4:memory:/process_api/55c5\n2:cpu,cpuacct:/\n0::/user.slice/s.scope\n";
        assert_eq!(own_cgroup(pc, Some("memory")).as_deref(), Some("/process_api/55c5"));
        assert_eq!(own_cgroup(pc, Some("cpuacct")).as_deref(), Some("/"));
        assert_eq!(own_cgroup(pc, None).as_deref(), Some("/user.slice/s.scope"));
        let m = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            resolve(m, "/", "/process_api/55c5", "barge/abc").unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/process_api/55c5/barge/abc")
        );
        assert_eq!(
            resolve(m, "/", "/process_api/55c5", "/barge/abc").unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/barge/abc")
        );
        // A mount showing part of the hierarchy (in a container).
        assert_eq!(
            resolve(m, "/docker/x", "/docker/x/inner", "barge/abc").unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/inner/barge/abc")
        );
        assert!(resolve(m, "/", "/", "../escape").is_err());
        assert!(resolve(m, "/", "/", "/").is_err());
    }

    fn cpu(shares: Option<u64>, quota: Option<i64>, period: Option<u64>) -> LinuxCpu {
        let mut c = LinuxCpu::default();
        c.set_shares(shares).set_quota(quota).set_period(period);
        c
    }

    fn pids(limit: i64) -> LinuxPids {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        p
    }

    fn res() -> Resources {
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(32 << 20)).set_swap(Some(64 << 20));
        let mut r = Resources::default();
        r.set_memory(Some(memory))
            .set_cpu(Some(cpu(Some(512), Some(50_000), Some(100_000))))
            .set_pids(Some(pids(20)));
        r
    }

    #[test]
    fn records_keep_the_v2_flag_of_earlier_barges() {
        let d = tempfile::tempdir().unwrap();
        // A record as a barge from before `Version` wrote it.
        std::fs::write(
            d.path().join(RECORD),
            br#"{"v2": true, "dirs": [["", "/sys/fs/cgroup/barge/x"]]}"#,
        )
        .unwrap();
        let cg = Cgroup::load(d.path()).unwrap();
        assert_eq!(cg.version, Version::V2);
        let v1 = Cgroup {
            version: Version::V1,
            dirs: vec![("memory".into(), PathBuf::from("/sys/fs/cgroup/memory/barge/x"))],
        };
        v1.save(d.path()).unwrap();
        let text = std::fs::read_to_string(d.path().join(RECORD)).unwrap();
        assert!(text.contains(r#""v2": false"#), "{text}");
        assert_eq!(Cgroup::load(d.path()), Some(v1));
    }

    #[test]
    fn v2_files() {
        let s = settings(&res(), Version::V2).unwrap();
        let get = |f: &str| s.iter().find(|(_, file, _)| *file == f).map(|(_, _, v)| v.clone());
        assert_eq!(get("memory.max").as_deref(), Some("33554432"));
        assert_eq!(
            get("memory.swap.max").as_deref(),
            Some("33554432"),
            "swap is memsw minus memory"
        );
        assert_eq!(get("cpu.max").as_deref(), Some("50000 100000"));
        assert_eq!(
            get("cpu.weight").as_deref(),
            Some("20"),
            "runc: 1 + (512-2)*9999/262142"
        );
        assert_eq!(get("pids.max").as_deref(), Some("20"));
        assert!(s.iter().all(|(c, _, _)| *c != "devices"));

        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(262_144), 10_000);
        assert_eq!(cpu_weight(0), 0);
        assert_eq!(swap_max(Some(100), Some(-1)).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_max(Some(100), Some(100)).unwrap().as_deref(), Some("0"));
        assert_eq!(swap_max(Some(100), None).unwrap(), None);
        assert!(matches!(swap_max(None, Some(100)), Err(CgroupError::SwapWithoutMemory)));
        assert!(matches!(
            swap_max(Some(200), Some(100)),
            Err(CgroupError::SwapBelowMemory)
        ));

        let mut unlimited_quota = res();
        unlimited_quota
            .set_cpu(Some(cpu(None, None, Some(100_000))))
            .set_pids(Some(pids(-1)));
        let s = settings(&unlimited_quota, Version::V2).unwrap();
        assert!(s.contains(&("cpu", "cpu.max", "max 100000".into())));
        assert!(s.contains(&("pids", "pids.max", "max".into())));

        let events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed(events, "oom_kill"), Some(1));
        assert_eq!(keyed("usage_usec 1500\nuser_usec 1000\n", "usage_usec"), Some(1500));
        assert_eq!(
            parse_io_stat("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=0\n"),
            (4097, 8192)
        );
    }

    #[test]
    fn cpusets_in_both_versions() {
        let mut r = Resources::default();
        let mut c = LinuxCpu::default();
        c.set_cpus(Some("0-1".into())).set_mems(Some("0".into()));
        r.set_cpu(Some(c));
        assert!(cpuset_asked(Some(&r)));
        for v in [Version::V1, Version::V2] {
            let s = settings(&r, v).unwrap();
            assert!(s.contains(&("cpuset", "cpuset.cpus", "0-1".into())), "{s:?}");
            assert!(s.contains(&("cpuset", "cpuset.mems", "0".into())), "{s:?}");
        }
        assert!(!cpuset_asked(Some(&res())), "shares and quota are no cpuset");
        assert_eq!(parse_cpu_list("3,0-1,1").unwrap(), [0, 1, 3]);
        for bad in ["", "0\n1", "1-0", "0-", "x", "4096"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?}");
        }
        let mut c = LinuxCpu::default();
        c.set_cpus(Some("0,a".into()));
        r.set_cpu(Some(c));
        assert!(matches!(settings(&r, Version::V1), Err(CgroupError::BadCpuList(_))));
    }

    #[test]
    fn v1_files() {
        let mut r = res();
        r.set_devices(Some(barge_runner::spec::default_device_rules()));
        let s = settings(&r, Version::V1).unwrap();
        let files: Vec<&str> = s.iter().map(|(_, f, _)| *f).collect();
        let pos = |f: &str| files.iter().position(|x| *x == f).unwrap();
        assert!(pos("memory.limit_in_bytes") < pos("memory.memsw.limit_in_bytes"));
        assert!(pos("cpu.cfs_period_us") < pos("cpu.cfs_quota_us"));
        assert!(s.contains(&("cpu", "cpu.shares", "512".into())));
        assert!(s.contains(&("memory", "memory.memsw.limit_in_bytes", (64u64 << 20).to_string())));
        assert_eq!(
            s.iter()
                .find(|(c, _, _)| *c == "devices")
                .map(|(_, f, v)| (*f, v.as_str())),
            Some(("devices.deny", "a *:* rwm"))
        );
        assert!(s.contains(&("devices", "devices.allow", "c 136:* rwm".into())));
        assert_eq!(
            keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", "oom_kill"),
            Some(2)
        );
        assert_eq!(
            parse_blkio_v1("8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Total 4608\nTotal 4608\n"),
            (4096, 512)
        );
    }
}
