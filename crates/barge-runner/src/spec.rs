//! The OCI runtime spec's `config.json`: `oci-spec`'s runtime types, and
//! what barge puts in them (docker's mounts, masks, read-only paths and
//! device rules). It is a standard bundle: `runc run` accepts the same
//! file. The runner reads it through the accessors below, which turn the
//! spec's optional sections into what a bundle barge executes must have.

pub use oci_spec::runtime::{
    Capabilities, Capability, Linux, LinuxCapabilities, LinuxCpu, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType,
    LinuxIdMapping, LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxPids, LinuxResources, LinuxSeccomp, Mount,
    PosixRlimit, PosixRlimitType, Process, Root, Spec, User,
};
pub use oci_spec::OciSpecError;

use oci_spec::runtime::PosixRlimitBuilder;

use crate::caps::UnknownCapability;
use crate::RunnerError;
use serde::de::IntoDeserializer;
use serde::Deserialize;
use std::path::PathBuf;

/// The runtime-spec version barge writes.
pub const OCI_VERSION: &str = "1.0.2";

/// The capability set of `names` (`CAP_NET_ADMIN`, …).
pub fn capability_set(names: &[String]) -> Result<Capabilities, UnknownCapability> {
    names
        .iter()
        .map(|n| {
            let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> = n.as_str().into_deserializer();
            Capability::deserialize(de).map_err(|_| UnknownCapability(n.clone()))
        })
        .collect()
}

/// The names of a capability set (`CAP_NET_ADMIN`, …), sorted: a set has
/// no order of its own.
pub fn capability_names(set: Option<&Capabilities>) -> Vec<String> {
    let mut names: Vec<String> = set.into_iter().flatten().map(|c| format!("CAP_{c}")).collect();
    names.sort();
    names
}

/// An rlimit of `kind` (`RLIMIT_NOFILE`).
pub fn rlimit(kind: PosixRlimitType, soft: u64, hard: u64) -> Result<PosixRlimit, RunnerError> {
    Ok(PosixRlimitBuilder::default().typ(kind).soft(soft).hard(hard).build()?)
}

/// A namespace of `kind`, joined at `path` or new.
pub fn namespace(kind: LinuxNamespaceType, path: Option<PathBuf>) -> LinuxNamespace {
    let mut n = LinuxNamespace::default();
    n.set_typ(kind).set_path(path);
    n
}

/// A mount of `source` on `destination`.
pub fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination))
        .set_typ(Some(kind.to_string()))
        .set_source(Some(PathBuf::from(source)))
        .set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

/// The process of a bundle, which barge's runner needs.
pub fn process(spec: &Spec) -> Result<&Process, RunnerError> {
    spec.process()
        .as_ref()
        .ok_or_else(|| RunnerError::Corrupt("the bundle has no process".into()))
}

/// The `linux` section of a bundle, which barge's runner needs.
pub fn linux(spec: &Spec) -> Result<&Linux, RunnerError> {
    spec.linux()
        .as_ref()
        .ok_or_else(|| RunnerError::Corrupt("the bundle has no linux section".into()))
}

/// The bundle's `linux.resources`, if any.
pub fn resources(spec: &Spec) -> Option<&LinuxResources> {
    spec.linux().as_ref().and_then(|l| l.resources().as_ref())
}

/// The bundle's `linux.seccomp`, if any.
pub fn seccomp(spec: &Spec) -> Option<&LinuxSeccomp> {
    spec.linux().as_ref().and_then(|l| l.seccomp().as_ref())
}

/// The bundle's network namespace: `None` for the host's, `Some(None)`
/// for a new one, `Some(Some(path))` for one to join.
pub fn network_namespace(spec: &Spec) -> Option<Option<&PathBuf>> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::Network)
        .map(|n| n.path().as_ref())
}

/// docker's masked paths: hidden behind /dev/null or an empty read-only tmpfs.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// docker's default device cgroup rules: nothing but the standard nodes
/// (and creating any node, which `nodev` mounts make harmless).
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    let rule = |allow: bool, kind: Option<LinuxDeviceType>, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow)
            .set_typ(kind)
            .set_major(major)
            .set_minor(minor)
            .set_access(Some(access.into()));
        r
    };
    vec![
        rule(false, None, None, None, "rwm"),
        rule(true, Some(C), None, None, "m"),
        rule(true, Some(B), None, None, "m"),
        rule(true, Some(C), Some(1), Some(3), "rwm"),    // null
        rule(true, Some(C), Some(1), Some(5), "rwm"),    // zero
        rule(true, Some(C), Some(1), Some(7), "rwm"),    // full
        rule(true, Some(C), Some(5), Some(0), "rwm"),    // tty
        rule(true, Some(C), Some(1), Some(8), "rwm"),    // random
        rule(true, Some(C), Some(1), Some(9), "rwm"),    // urandom
        rule(true, Some(C), Some(136), None, "rwm"),     // pts/*
        rule(true, Some(C), Some(5), Some(2), "rwm"),    // ptmx
        rule(true, Some(C), Some(10), Some(200), "rwm"), // net/tun
    ]
}

/// The IPC namespace's parameters a container may set (docker's and
/// runc's list), beside `fs.mqueue.*`.
pub const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The namespace whose copy of a kernel parameter a container sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlNamespace {
    Network,
    Ipc,
    Uts,
}

/// Which of the container's namespaces `key` (`net.ipv4.ip_forward`)
/// belongs to; `None` for a parameter of the whole host, which no
/// container may set (runc's rule).
pub fn sysctl_namespace(key: &str) -> Option<SysctlNamespace> {
    if key.starts_with("net.") {
        Some(SysctlNamespace::Network)
    } else if key.starts_with("fs.mqueue.") || IPC_SYSCTLS.contains(&key) {
        Some(SysctlNamespace::Ipc)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(SysctlNamespace::Uts)
    } else {
        None
    }
}

/// docker's read-only paths.
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The mounts every container gets, as docker sets them up.
pub fn default_mounts() -> Vec<Mount> {
    let m = mount;
    vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        m("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        m("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
    ]
}
