//! Any OCI bundle, made ready for barge's runner: what the runner cannot
//! honour is refused (never skipped), mount options it has no use for are
//! dropped, and the cgroup path is worked out as runc does.

use crate::OcirtError;
use barge_runner::spec::{LinuxNamespaceType, Mount, Spec};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The bundle's `config.json` (at most 16 MiB).
pub fn load(bundle: &Path) -> Result<Spec, OcirtError> {
    let path = bundle.join("config.json");
    let f = std::fs::File::open(&path).map_err(crate::io_err(format!("opening {}", path.display())))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, 16 << 20), &mut bytes)
        .map_err(crate::io_err(format!("reading {}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| OcirtError::Bundle(format!("{}: {e}", path.display())))
}

fn unsupported(what: impl Into<String>) -> OcirtError {
    OcirtError::Bundle(format!("{} is not supported by barge-runtime", what.into()))
}

/// The standard device nodes the runner makes in every fresh `/dev`.
const STANDARD_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// A bundle's `linux.devices` beyond the runner's standard nodes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Devices {
    /// The host's node at the same path: bound (path below /dev, host node).
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Any other: made with mknod in the container's /dev.
    pub nodes: Vec<barge_runner::child::DeviceNode>,
}

/// Checks `spec` against what the runner can apply and adapts it (mount
/// options, relative bind sources, cgroup mounts). Returns its devices.
pub fn adapt(spec: &mut Spec, bundle: &Path) -> Result<Devices, OcirtError> {
    check_version(spec.version())?;
    if let Some(h) = spec.hooks() {
        // They would run inside the container, where the runtime runs nothing of its own.
        let inside = [h.create_container(), h.start_container()]
            .iter()
            .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()));
        if inside {
            return Err(unsupported("createContainer and startContainer hooks"));
        }
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| OcirtError::Bundle("the bundle has no process".into()))?;
    check_labels(process)?;
    let linux = barge_runner::spec::linux(spec).map_err(|e| OcirtError::Bundle(e.to_string()))?;
    let user_ns = user_maps(linux)?;
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) && lsm_enabled("selinux") {
        return Err(unsupported("an SELinux mount label"));
    }
    if linux.intel_rdt().is_some() {
        return Err(unsupported("linux.intelRdt"));
    }
    for ns in linux.namespaces().iter().flatten() {
        match ns.typ() {
            LinuxNamespaceType::Time => return Err(unsupported("a time namespace")),
            LinuxNamespaceType::Cgroup if ns.path().is_some() => return Err(unsupported("joining a cgroup namespace")),
            _ => {}
        }
    }
    check_sysctls(linux)?;
    check_resources(linux.resources().as_ref())?;
    let devices = devices(linux.devices().as_deref().unwrap_or_default())?;
    if user_ns.is_some() && !devices.nodes.is_empty() {
        return Err(unsupported(
            "device nodes that are not the host's in a user namespace (mknod is not allowed there)",
        ));
    }
    let mounts = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| adapt_mount(m, bundle))
        .collect::<Result<Vec<_>, _>>()?;
    spec.set_mounts(Some(mounts));
    allow_standard_devices(spec);
    Ok(devices)
}

/// A new user namespace's uid and gid maps, as `/proc/PID/uid_map`
/// takes them (`inside outside count` lines), when the bundle asks for
/// one: both maps given, container root mapped in each (the runner sets
/// the container up as that root), ranges that fit in 32 bits, at most
/// 340 lines (the kernel's limit). Host IDs other than the caller's own
/// need the host's root, host root itself included: refused here for
/// anyone else (the kernel would refuse the map).
pub fn user_maps(linux: &barge_runner::spec::Linux) -> Result<Option<(String, String)>, OcirtError> {
    let entry = linux
        .namespaces()
        .iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::User);
    if entry.is_some_and(|n| n.path().is_some()) {
        return Err(unsupported("joining a user namespace"));
    }
    let asked = entry.is_some();
    let (uids, gids) = (
        linux.uid_mappings().clone().unwrap_or_default(),
        linux.gid_mappings().clone().unwrap_or_default(),
    );
    if !asked {
        if !uids.is_empty() || !gids.is_empty() {
            return Err(OcirtError::Bundle(
                "linux.uidMappings and gidMappings need a user namespace in linux.namespaces".into(),
            ));
        }
        return Ok(None);
    }
    let host_root = rustix::process::geteuid().is_root() && barge_runner::userns::in_initial_user_namespace();
    let own = [rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw()];
    Ok(Some((
        id_map("uidMappings", &uids, host_root, own[0])?,
        id_map("gidMappings", &gids, host_root, own[1])?,
    )))
}

/// One map's text (see [`user_maps`]); `own` is the caller's ID.
fn id_map(
    what: &str,
    maps: &[barge_runner::spec::LinuxIdMapping],
    host_root: bool,
    own: u32,
) -> Result<String, OcirtError> {
    if maps.is_empty() || maps.len() > 340 {
        return Err(OcirtError::Bundle(format!(
            "a user namespace needs 1 to 340 linux.{what} entries"
        )));
    }
    let mut text = String::new();
    for m in maps {
        let (inside, outside, size) = (m.container_id() as u64, m.host_id() as u64, m.size() as u64);
        if size == 0 || inside + size > 1 << 32 || outside + size > 1 << 32 {
            return Err(OcirtError::Bundle(format!(
                "linux.{what}: {inside} {outside} {size} is not a range of 32-bit IDs"
            )));
        }
        let own_only = outside == own as u64 && size == 1;
        if !(host_root || own_only) {
            return Err(OcirtError::Bundle(format!(
                "linux.{what}: mapping host IDs {outside}-{} needs the host's root",
                outside + size - 1
            )));
        }
        text.push_str(&format!("{inside} {outside} {size}\n"));
    }
    if !maps.iter().any(|m| m.container_id() == 0) {
        return Err(OcirtError::Bundle(format!(
            "linux.{what} must map the container's root (ID 0)"
        )));
    }
    Ok(text)
}

/// runc's rule: the standard nodes, ptys and `/dev/net/tun` are allowed
/// after the bundle's own device rules (engines write only a deny-all and
/// their extras), as barge's own containers have them.
fn allow_standard_devices(spec: &mut Spec) {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut res = linux.resources().clone().unwrap_or_default();
    let mut rules = res.devices().clone().unwrap_or_default();
    // The first of barge's defaults is its deny-all.
    rules.extend(barge_runner::spec::default_device_rules().into_iter().skip(1));
    res.set_devices(Some(rules));
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
}

/// A process's AppArmor profile or SELinux label, which the runner does
/// not apply: refused where that module is active (where it is not, runc
/// ignores them too). For the container's process and `exec`'s.
pub fn check_labels(process: &barge_runner::spec::Process) -> Result<(), OcirtError> {
    check_capabilities(process)?;
    if process.apparmor_profile().as_ref().is_some_and(|p| !p.is_empty()) && lsm_enabled("apparmor") {
        return Err(unsupported("an AppArmor profile"));
    }
    if process.selinux_label().as_ref().is_some_and(|p| !p.is_empty()) && lsm_enabled("selinux") {
        return Err(unsupported("an SELinux label"));
    }
    Ok(())
}

/// `linux.sysctl`: only parameters of a namespace the container has of
/// its own (the runner writes them through the container's `/proc`, so a
/// host-wide one would change the host), as runc checks.
fn check_sysctls(linux: &barge_runner::spec::Linux) -> Result<(), OcirtError> {
    use barge_runner::spec::SysctlNamespace;
    let has = |kind: LinuxNamespaceType| linux.namespaces().iter().flatten().any(|n| n.typ() == kind);
    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        let ok = match barge_runner::spec::sysctl_namespace(key) {
            Some(SysctlNamespace::Network) => has(LinuxNamespaceType::Network),
            Some(SysctlNamespace::Ipc) => has(LinuxNamespaceType::Ipc),
            // The runner always makes a UTS namespace.
            Some(SysctlNamespace::Uts) => true,
            None => false,
        };
        if !ok {
            return Err(OcirtError::Bundle(format!(
                "sysctl {key:?} is not in a namespace of the container's own: it would change the host"
            )));
        }
    }
    Ok(())
}

/// The runner gives a root process its bounding set as effective and
/// permitted sets, and every process the inheritable and ambient sets
/// asked for (within the bounding set; ambient within inheritable); a
/// non-root one also the effective and permitted sets asked for, kept
/// across the uid change as runc keeps them. Refused: a root process
/// asking for fewer effective or permitted capabilities than its
/// bounding set, which the runner does not give.
fn check_capabilities(process: &barge_runner::spec::Process) -> Result<(), OcirtError> {
    let Some(caps) = process.capabilities() else {
        return Ok(());
    };
    // Sets: unordered, as the file's lists are.
    let differs = |set: &Option<barge_runner::spec::Capabilities>| {
        set.as_ref().is_some_and(|s| Some(s) != caps.bounding().as_ref())
    };
    if process.user().uid() == 0 && (differs(caps.effective()) || differs(caps.permitted())) {
        return Err(unsupported(
            "effective or permitted capabilities other than the bounding set for a root process",
        ));
    }
    Ok(())
}

/// `ociVersion`: a 1.x release of the runtime spec (`1.0.2`, `1.1.0-rc.1`);
/// anything else is a bundle written for a spec barge does not know.
fn check_version(version: &str) -> Result<(), OcirtError> {
    let release = version.split_once('-').map_or(version, |(r, _)| r);
    let parts: Vec<&str> = release.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if parts.len() == 3 && numeric && parts[0] == "1" {
        return Ok(());
    }
    Err(OcirtError::Bundle(format!(
        "ociVersion {version:?} is not a 1.x runtime spec version"
    )))
}

/// `linux.resources` that barge-cgroups does not write (it applies
/// memory limit, reservation and swap, CPU shares, quota and period, the
/// cpuset's CPUs and memory nodes, pids and device rules): refused, never
/// ignored, so a bundle that asks for a blkio weight or hugepage limits
/// does not run without them.
/// Unset values as engines write them (empty strings and lists, `false`,
/// docker's swappiness -1 as an unsigned number) are no request.
fn check_resources(res: Option<&barge_runner::spec::LinuxResources>) -> Result<(), OcirtError> {
    let Some(res) = res else { return Ok(()) };
    let mut asked = Vec::new();
    if let Some(m) = res.memory() {
        let named = [
            ("memory.kernel", m.kernel().is_some()),
            ("memory.kernelTCP", m.kernel_tcp().is_some()),
            ("memory.swappiness", m.swappiness().is_some_and(|s| s <= 100)),
            ("memory.disableOOMKiller", m.disable_oom_killer() == Some(true)),
            ("memory.useHierarchy", m.use_hierarchy() == Some(true)),
        ];
        asked.extend(named.iter().filter(|(_, on)| *on).map(|(n, _)| *n));
    }
    if let Some(c) = res.cpu() {
        let named = [
            ("cpu.realtimeRuntime", c.realtime_runtime().is_some_and(|v| v != 0)),
            ("cpu.realtimePeriod", c.realtime_period().is_some_and(|v| v != 0)),
            ("cpu.idle", c.idle().is_some_and(|v| v != 0)),
            ("cpu.burst", c.burst().is_some_and(|v| v != 0)),
        ];
        asked.extend(named.iter().filter(|(_, on)| *on).map(|(n, _)| *n));
    }
    if let Some(b) = res.block_io() {
        let throttles = [
            b.throttle_read_bps_device(),
            b.throttle_write_bps_device(),
            b.throttle_read_iops_device(),
            b.throttle_write_iops_device(),
        ];
        if b.weight().is_some_and(|w| w != 0)
            || b.leaf_weight().is_some_and(|w| w != 0)
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || throttles.iter().any(|t| t.as_ref().is_some_and(|v| !v.is_empty()))
        {
            asked.push("blockIO");
        }
    }
    if res.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        asked.push("hugepageLimits");
    }
    if let Some(n) = res.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            asked.push("network");
        }
    }
    if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        asked.push("rdma");
    }
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        asked.push("unified");
    }
    match asked.is_empty() {
        true => Ok(()),
        false => Err(unsupported(format!("linux.resources {}", asked.join(", ")))),
    }
}

/// Whether the kernel runs the security module `name`.
fn lsm_enabled(name: &str) -> bool {
    std::fs::read_to_string("/sys/kernel/security/lsm").is_ok_and(|l| l.split(',').any(|m| m.trim() == name))
}

/// `linux.devices`: the standard nodes are the runner's own; one the host
/// has at the same path as the same device is bound, as `--device`
/// binds; any other is made with mknod (runc's way), as asked: type,
/// major and minor, permission bits (0666 when unset), owner. The path
/// must be below /dev with plain components (never `..`); the device
/// cgroup's rules still decide what opens.
fn devices(devices: &[barge_runner::spec::LinuxDevice]) -> Result<Devices, OcirtError> {
    use barge_runner::spec::LinuxDeviceType;
    let mut out = Devices::default();
    for d in devices {
        let path = d.path();
        if STANDARD_DEVICES.iter().any(|s| Path::new(s) == path) {
            continue;
        }
        let rel = path
            .strip_prefix("/dev")
            .ok()
            .filter(|r| {
                r.components().all(|c| matches!(c, std::path::Component::Normal(_))) && r.iter().next().is_some()
            })
            .ok_or_else(|| OcirtError::Bundle(format!("device {}: not a path below /dev", path.display())))?;
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => rustix::fs::FileType::CharacterDevice,
            LinuxDeviceType::B => rustix::fs::FileType::BlockDevice,
            LinuxDeviceType::P => rustix::fs::FileType::Fifo,
            LinuxDeviceType::A => {
                return Err(OcirtError::Bundle(format!(
                    "device {}: type \"a\" is for device cgroup rules, not a node",
                    path.display()
                )))
            }
        };
        let number = |n: i64, max: i64, what: &str| {
            (0..=max).contains(&n).then_some(n as u32).ok_or_else(|| {
                OcirtError::Bundle(format!("device {}: {what} number {n} is out of range", path.display()))
            })
        };
        let (major, minor) = if kind == rustix::fs::FileType::Fifo {
            (0, 0)
        } else {
            (number(d.major(), 0xfff, "major")?, number(d.minor(), 0xfffff, "minor")?)
        };
        let host = std::fs::metadata(path).ok().filter(|host| {
            let ft = host.file_type();
            let same_kind = match kind {
                rustix::fs::FileType::CharacterDevice => ft.is_char_device(),
                rustix::fs::FileType::BlockDevice => ft.is_block_device(),
                _ => false,
            };
            same_kind && libc::major(host.rdev()) == major && libc::minor(host.rdev()) == minor
        });
        if host.is_some() {
            out.binds.push((rel.to_path_buf(), path.clone()));
            continue;
        }
        out.nodes.push(barge_runner::child::DeviceNode {
            path: rel.to_path_buf(),
            kind,
            major,
            minor,
            mode: d.file_mode().unwrap_or(0o666) & 0o777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    Ok(out)
}

/// Mount options the runner has no use for: propagation (every mount is
/// private to the container), podman's copy-up markers, and the
/// negations of the runner's defaults (binds are always nosuid, nodev).
const DROPPED_OPTIONS: &[&str] = &[
    "private",
    "rprivate",
    "slave",
    "rslave",
    "shared",
    "rshared",
    "unbindable",
    "runbindable",
    "tmpcopyup",
    "notmpcopyup",
    "copy",
    "nocopy",
    "suid",
    "dev",
    "exec",
    "atime",
    "diratime",
    "nodiratime",
    "z",
    "Z",
    "U",
    "norelatime",
    "nostrictatime",
    "async",
    "rrw",
];

fn adapt_mount(m: &Mount, bundle: &Path) -> Result<Mount, OcirtError> {
    let mut m = m.clone();
    let mut options: Vec<String> = Vec::new();
    for o in m.options().iter().flatten() {
        match o.as_str() {
            "idmap" | "ridmap" => return Err(unsupported("an idmapped mount")),
            "rro" => options.push("ro".into()),
            o if DROPPED_OPTIONS.contains(&o) => {}
            o => options.push(o.to_string()),
        }
    }
    let kind = m.typ().clone().unwrap_or_default();
    let is_bind = options.iter().any(|o| o == "bind" || o == "rbind");
    if kind == "bind" && !is_bind {
        options.push("rbind".into());
    }
    if kind == "bind" || is_bind {
        // A relative source is the bundle's.
        if let Some(src) = m.source().clone().filter(|s| s.is_relative()) {
            m.set_source(Some(bundle.join(src)));
        }
    }
    if kind == "cgroup" || kind == "cgroup2" {
        // The container's view of cgroupfs: an empty read-only tmpfs (see
        // docs/architecture.md: no host hierarchy is shown).
        m.set_typ(Some("tmpfs".into())).set_source(Some("tmpfs".into()));
        options = ["nosuid", "noexec", "nodev", "ro", "mode=755"]
            .map(String::from)
            .to_vec();
    }
    m.set_options(Some(options));
    Ok(m)
}

/// The cgroup of container `id`: `linux.cgroupsPath`, else barge's default
/// (`barge/<id>` below barge-runtime's own cgroup). With `--systemd-cgroup`
/// a `slice:prefix:name` path is the cgroupfs path systemd would give that
/// scope (`/system.slice/libpod-<id>.scope`), made directly: barge-runtime
/// does not ask systemd over D-Bus.
pub fn cgroup_path(spec: &Spec, id: &str, systemd: bool) -> Result<String, OcirtError> {
    let given = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty());
    let Some(path) = given else {
        return Ok(barge_cgroups::default_path(id));
    };
    if !systemd {
        return Ok(path);
    }
    systemd_path(&path, id)
}

/// `slice:prefix:name` as a cgroupfs path, systemd's way: `a-b.slice` is
/// `/a.slice/a-b.slice`; the unit is `prefix-name.scope` (a name ending in
/// `.slice` is that slice).
pub fn systemd_path(path: &str, id: &str) -> Result<String, OcirtError> {
    let parts: Vec<&str> = path.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(OcirtError::Bundle(format!(
            "cgroupsPath {path:?}: with --systemd-cgroup it must be slice:prefix:name"
        )));
    };
    let slice = if slice.is_empty() { "system.slice" } else { slice };
    let name = if name.is_empty() { id } else { name };
    let bad = |s: &str| s.contains('/') || s == "." || s == "..";
    if bad(slice) || bad(prefix) || bad(name) || !slice.ends_with(".slice") {
        return Err(OcirtError::Bundle(format!(
            "cgroupsPath {path:?} is not a systemd slice:prefix:name"
        )));
    }
    let mut out = String::new();
    if slice != "-.slice" {
        let stem = slice.trim_end_matches(".slice");
        let mut acc = String::new();
        for (i, part) in stem.split('-').enumerate() {
            if i > 0 {
                acc.push('-');
            }
            acc.push_str(part);
            out.push_str(&format!("/{acc}.slice"));
        }
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(format!("{out}/{unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_paths_as_cgroupfs() {
        assert_eq!(
            systemd_path("machine.slice:libpod:abc", "x").unwrap(),
            "/machine.slice/libpod-abc.scope"
        );
        assert_eq!(
            systemd_path("user-1000.slice:crio:abc", "x").unwrap(),
            "/user.slice/user-1000.slice/crio-abc.scope"
        );
        assert_eq!(systemd_path("::", "id").unwrap(), "/system.slice/id.scope");
        assert!(systemd_path("../x.slice:a:b", "x").is_err());
        assert!(systemd_path("a/b", "x").is_err());
    }

    #[test]
    fn oci_versions() {
        for ok in ["1.0.0", "1.0.2-dev", "1.2.0", "1.1.0-rc.1"] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
        for bad in ["invalid", "", "2.0.0", "1.0", "1..0", "1.x.0"] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resources_barge_cannot_apply_are_refused() {
        let res = |v: serde_json::Value| -> barge_runner::spec::LinuxResources { serde_json::from_value(v).unwrap() };
        let unset = res(serde_json::json!({
            "memory": {"limit": 1048576, "swappiness": u64::MAX, "disableOOMKiller": false},
            "cpu": {"shares": 512, "cpus": ""},
            "blockIO": {}, "hugepageLimits": []
        }));
        assert!(check_resources(Some(&unset)).is_ok());
        let cpuset = res(serde_json::json!({"cpu": {"cpus": "0-1", "mems": "0"}}));
        assert!(check_resources(Some(&cpuset)).is_ok(), "barge-cgroups writes a cpuset");
        for asked in [
            serde_json::json!({"cpu": {"realtimeRuntime": 950000}}),
            serde_json::json!({"memory": {"swappiness": 10}}),
            serde_json::json!({"memory": {"disableOOMKiller": true}}),
            serde_json::json!({"blockIO": {"weight": 500}}),
            serde_json::json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}),
            serde_json::json!({"network": {"classID": 1}}),
        ] {
            assert!(check_resources(Some(&res(asked.clone()))).is_err(), "{asked}");
        }
    }

    #[test]
    fn devices_are_bound_or_made_below_dev_only() {
        let dev = |v: serde_json::Value| -> barge_runner::spec::LinuxDevice { serde_json::from_value(v).unwrap() };
        let d = devices(&[
            dev(serde_json::json!({"path": "/dev/null", "type": "c", "major": 1, "minor": 3})),
            dev(serde_json::json!({"path": "/dev/zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o4755})),
            dev(serde_json::json!({"path": "/dev/x/test1", "type": "c", "major": 10, "minor": 666, "fileMode": 0o660, "uid": 5, "gid": 6})),
            dev(serde_json::json!({"path": "/dev/fifo", "type": "p", "major": 8, "minor": 666})),
        ])
        .unwrap();
        assert!(d.binds.is_empty(), "the standard nodes are the runner's own: {d:?}");
        let made: Vec<_> = d
            .nodes
            .iter()
            .map(|n| (n.path.clone(), n.kind, n.major, n.minor, n.mode, n.uid, n.gid))
            .collect();
        use rustix::fs::FileType::{CharacterDevice, Fifo};
        assert_eq!(
            made,
            [
                (PathBuf::from("x/test1"), CharacterDevice, 10, 666, 0o660, 5, 6),
                (PathBuf::from("fifo"), Fifo, 0, 0, 0o666, 0, 0),
            ]
        );
        // A host node at the same path, the same device: bound.
        let d = devices(&[dev(
            serde_json::json!({"path": "/dev/full", "type": "c", "major": 1, "minor": 7}),
        )])
        .unwrap();
        assert!(d.nodes.is_empty() && d.binds.is_empty(), "{d:?}");
        for bad in [
            serde_json::json!({"path": "/dev/../etc/passwd", "type": "c", "major": 1, "minor": 3}),
            serde_json::json!({"path": "../../x", "type": "c", "major": 1, "minor": 3}),
            serde_json::json!({"path": "/dev", "type": "c", "major": 1, "minor": 3}),
            serde_json::json!({"path": "/etc/x", "type": "b", "major": 8, "minor": 0}),
            serde_json::json!({"path": "/dev/x", "type": "a", "major": 1, "minor": 3}),
            serde_json::json!({"path": "/dev/x", "type": "c", "major": -1, "minor": 3}),
            serde_json::json!({"path": "/dev/x", "type": "b", "major": 8, "minor": 1 << 20}),
        ] {
            assert!(devices(&[dev(bad.clone())]).is_err(), "{bad}");
        }
    }

    #[test]
    fn id_maps_map_container_root_and_host_root_only_for_root() {
        let m = |c: u32, h: u32, n: u32| -> barge_runner::spec::LinuxIdMapping {
            serde_json::from_value(serde_json::json!({"containerID": c, "hostID": h, "size": n})).unwrap()
        };
        assert_eq!(
            id_map("uidMappings", &[m(0, 100000, 65536), m(65536, 5, 1)], true, 0).unwrap(),
            "0 100000 65536\n65536 5 1\n"
        );
        // Not the host's root: its own ID alone, never host root's.
        assert_eq!(
            id_map("uidMappings", &[m(0, 1000, 1)], false, 1000).unwrap(),
            "0 1000 1\n"
        );
        for (maps, host_root, why) in [
            (vec![m(0, 0, 1)], false, "needs the host's root"),
            (vec![m(0, 1000, 2)], false, "needs the host's root"),
            (vec![m(1, 100000, 10)], true, "must map the container's root"),
            (vec![m(0, 100000, 0)], true, "not a range"),
            (vec![m(0, u32::MAX, 2)], true, "not a range"),
            (vec![], true, "1 to 340"),
        ] {
            let e = id_map("uidMappings", &maps, host_root, 1000).unwrap_err().to_string();
            assert!(e.contains(why), "{maps:?}: {e}");
        }
    }

    #[test]
    fn mounts_are_adapted_not_weakened() {
        let m = barge_runner::spec::mount("/data", "bind", "src", &["rbind", "rprivate", "suid", "ro"]);
        let a = adapt_mount(&m, Path::new("/b")).unwrap();
        assert_eq!(a.source().as_deref(), Some(Path::new("/b/src")));
        assert_eq!(a.options().as_deref().unwrap_or_default(), ["rbind", "ro"]);
        let m = barge_runner::spec::mount("/x", "bind", "/s", &["idmap"]);
        assert!(adapt_mount(&m, Path::new("/b")).is_err());
        let m = barge_runner::spec::mount("/sys/fs/cgroup", "cgroup", "cgroup", &["rw"]);
        let a = adapt_mount(&m, Path::new("/b")).unwrap();
        assert_eq!(a.typ().as_deref(), Some("tmpfs"));
        assert!(a.options().iter().flatten().any(|o| o == "ro"));
    }
}
