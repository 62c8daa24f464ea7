//! What a container shares with the host or another container: `--pid`,
//! `--ipc`, `--device` and `--privileged`, as docker 20.10 reads
//! them. [`Sharing::parse`] checks the flags before any pull;
//! [`Sharing::apply`] writes them into the bundle and the record at
//! create; [`join`] points the bundle at the namespaces of the container
//! joined, at each start, once that one is checked to be running.

use crate::container::Container;
use crate::spec::{LinuxNamespaceType, Spec};
use crate::{RuntimeError, Status};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A namespace of the container's own, the host's, or another container's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsMode {
    Private,
    Host,
    /// `container:NAME|ID`, as given.
    Container(String),
}

impl NsMode {
    fn parse(flag: &str, value: &str) -> Result<NsMode, RuntimeError> {
        match value {
            "" => Ok(NsMode::Private),
            "host" => Ok(NsMode::Host),
            _ => match value.strip_prefix("container:") {
                Some(c) if !c.is_empty() => Ok(NsMode::Container(c.to_string())),
                _ => Err(RuntimeError::BadOption(format!("invalid {flag} value: {value:?}"))),
            },
        }
    }
}

/// `--ipc`: docker's modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpcMode {
    /// A namespace of its own, and a /dev/shm of its own (the default).
    Private,
    /// As private, and other containers may join it: its /dev/shm is a
    /// tmpfs mounted by barge at each start at `<container>/shm`.
    Shareable,
    /// A namespace of its own and no /dev/shm.
    None,
    /// The host's namespace and /dev/shm.
    Host,
    /// A shareable container's namespace and /dev/shm.
    Container(String),
}

impl IpcMode {
    fn parse(value: &str) -> Result<IpcMode, RuntimeError> {
        Ok(match value {
            "" | "private" => IpcMode::Private,
            "shareable" => IpcMode::Shareable,
            "none" => IpcMode::None,
            _ => match NsMode::parse("--ipc", value)? {
                NsMode::Host => IpcMode::Host,
                NsMode::Container(c) => IpcMode::Container(c),
                NsMode::Private => IpcMode::Private,
            },
        })
    }
}

/// The checked flags, before the image is known.
#[derive(Debug, Clone, Default)]
pub struct Sharing {
    pid: Option<NsMode>,
    /// The flag as given.
    pid_given: String,
    ipc: Option<IpcMode>,
    ipc_given: String,
    devices: Vec<Device>,
    privileged: bool,
}

/// A `--device`, checked on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Device {
    mapping: DeviceMapping,
    block: bool,
    major: i64,
    minor: i64,
    /// The node's permission bits, owner and group.
    mode: u32,
    uid: u32,
    gid: u32,
}

/// docker's HostConfig.Devices entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// Whether `s` is a device cgroup access: some of `r`, `w`, `m`, once each.
fn device_access(s: &str) -> bool {
    !s.is_empty() && s.len() <= 3 && s.chars().all(|c| "rwm".contains(c)) && {
        let mut seen: Vec<char> = s.chars().collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len() == s.len()
    }
}

/// A path below the container's fresh /dev, without `.` or `..`.
fn below_dev(path: &str) -> bool {
    let mut parts = path.split('/');
    let rest: Vec<&str> = match (parts.next(), parts.next()) {
        (Some(""), Some("dev")) => parts.collect(),
        _ => return false,
    };
    !rest.is_empty() && rest.iter().all(|p| !p.is_empty() && *p != "." && *p != "..")
}

impl Device {
    /// `--device HOST[:CONTAINER][:PERMISSIONS]`: the host's node is looked
    /// at now (links followed, as docker does), before anything is made.
    fn parse(value: &str) -> Result<Device, RuntimeError> {
        let bad = |why: &str| RuntimeError::BadOption(format!("invalid --device {value:?}: {why}"));
        let parts: Vec<&str> = value.split(':').collect();
        let (host, container, access) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, a] if device_access(a) => (*h, *h, *a),
            [h, c] => (*h, *c, "rwm"),
            [h, c, a] => (*h, *c, *a),
            _ => return Err(bad("expected HOST[:CONTAINER][:PERMISSIONS]")),
        };
        if !device_access(access) {
            return Err(bad("permissions are some of r, w and m"));
        }
        if !host.starts_with('/') {
            return Err(bad("the host's path must be absolute"));
        }
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let st = std::fs::metadata(host).map_err(|e| bad(&format!("{host}: {e}")))?;
        let kind = st.file_type();
        if !(kind.is_char_device() || kind.is_block_device()) {
            return Err(bad(&format!("{host} is not a device node")));
        }
        if !below_dev(container) {
            return Err(bad("the path in the container must be below /dev, without '.' or '..'"));
        }
        if crate::rootless::rootless() && access != "rwm" {
            return Err(bad(
                "rootless barge has no device cgroup to restrict a device's permissions; give rwm, or run as root",
            ));
        }
        Ok(Device {
            mapping: DeviceMapping {
                path_on_host: host.to_string(),
                path_in_container: container.to_string(),
                cgroup_permissions: access.to_string(),
            },
            block: kind.is_block_device(),
            major: i64::from(rustix::fs::major(st.rdev())),
            minor: i64::from(rustix::fs::minor(st.rdev())),
            mode: st.mode() & 0o7777,
            uid: st.uid(),
            gid: st.gid(),
        })
    }

    /// The bundle's `linux.devices` entry.
    fn node(&self) -> Result<crate::spec::LinuxDevice, RuntimeError> {
        let mut d = crate::spec::LinuxDevice::default();
        d.set_path(PathBuf::from(&self.mapping.path_in_container))
            .set_typ(self.kind())
            .set_major(self.major)
            .set_minor(self.minor)
            .set_file_mode(Some(self.mode))
            .set_uid(Some(self.uid))
            .set_gid(Some(self.gid));
        Ok(d)
    }

    fn kind(&self) -> crate::spec::LinuxDeviceType {
        if self.block {
            crate::spec::LinuxDeviceType::B
        } else {
            crate::spec::LinuxDeviceType::C
        }
    }

    /// Device cgroup rules: this node with its permissions only (a deny
    /// of the rest first, so that `:r` holds for a device the defaults allow).
    fn rules(&self) -> Vec<crate::spec::LinuxDeviceCgroup> {
        let rule = |allow: bool, access: &str| {
            let mut r = crate::spec::LinuxDeviceCgroup::default();
            r.set_allow(allow)
                .set_typ(Some(self.kind()))
                .set_major(Some(self.major))
                .set_minor(Some(self.minor))
                .set_access(Some(access.to_string()));
            r
        };
        let access = &self.mapping.cgroup_permissions;
        let mut rules = Vec::new();
        if access.len() < 3 {
            rules.push(rule(false, "rwm"));
        }
        rules.push(rule(true, access));
        rules
    }
}

/// Where a shareable container's /dev/shm is mounted (on the host, or in
/// rootless barge's mount namespace).
pub fn shm_dir(container_dir: &std::path::Path) -> PathBuf {
    container_dir.join("shm")
}

/// What the container's record keeps of the flags: `inspect`'s
/// HostConfig and what each start needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostModes {
    /// `--pid` as given (docker's HostConfig.PidMode).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pid_mode: String,
    /// The ID of the container whose PID namespace is joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_container: Option<String>,
    /// `--ipc` as given (HostConfig.IpcMode; docker shows `private` when unset).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipc_mode: String,
    /// The ID of the container whose IPC namespace and /dev/shm are joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc_container: Option<String>,
    /// A shareable container's /dev/shm tmpfs options (`mode=1777,size=…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_options: Option<String>,
    /// `--device`s (HostConfig.Devices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceMapping>,
    /// `--privileged`: every capability, no seccomp filter, no masked or
    /// read-only paths, the host's devices (HostConfig.Privileged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
}

impl Sharing {
    /// Checks `--pid` without a store: refusals come before any pull.
    pub fn parse(
        pid: Option<&str>,
        ipc: Option<&str>,
        devices: &[String],
        privileged: bool,
        runtime: Option<&str>,
    ) -> Result<Sharing, RuntimeError> {
        let mut s = Sharing {
            devices: devices.iter().map(|d| Device::parse(d)).collect::<Result<_, _>>()?,
            privileged,
            ..Sharing::default()
        };
        if let Some(i) = ipc {
            let mode = IpcMode::parse(i)?;
            if mode == IpcMode::Host && crate::rootless::rootless() {
                return Err(RuntimeError::BadOption(
                    "--ipc host is not available rootless: the host's IPC namespace belongs to the host's root, whose message queues a user namespace cannot mount".into(),
                ));
            }
            if matches!(mode, IpcMode::Container(_) | IpcMode::Shareable) && runtime.is_some() {
                return Err(RuntimeError::BadOption(format!(
                    "--ipc {i} is not supported with --runtime; barge's own runner shares the namespace"
                )));
            }
            s.ipc_given = i.to_string();
            s.ipc = Some(mode);
        }
        if let Some(p) = pid {
            let mode = NsMode::parse("--pid", p)?;
            if mode == NsMode::Host && crate::rootless::rootless() {
                return Err(RuntimeError::BadOption(
                    "--pid host is not available rootless: the host's PID namespace belongs to the host's root, whose /proc a user namespace cannot mount".into(),
                ));
            }
            if matches!(mode, NsMode::Container(_)) && runtime.is_some() {
                return Err(RuntimeError::BadOption(
                    "--pid container: is not supported with --runtime; barge's own runner joins the namespace".into(),
                ));
            }
            s.pid_given = p.to_string();
            s.pid = Some(mode);
        }
        Ok(s)
    }

    /// Writes the modes into the bundle's namespaces and returns what the
    /// record keeps. `taken` is every container there is, (name, ID): a
    /// joined container must be one of this store's.
    /// `dir` is the new container's directory.
    pub fn apply(
        &self,
        spec: &mut Spec,
        taken: &[(String, String)],
        dir: &std::path::Path,
    ) -> Result<HostModes, RuntimeError> {
        let mut modes = HostModes {
            pid_mode: self.pid_given.clone(),
            ipc_mode: self.ipc_given.clone(),
            ..HostModes::default()
        };
        let shm_bind = |from: &std::path::Path| {
            crate::spec::mount("/dev/shm", "bind", &from.display().to_string(), &["rbind", "rprivate"])
        };
        match &self.ipc {
            Some(IpcMode::Host) => {
                set_namespace(spec, LinuxNamespaceType::Ipc, None);
                set_shm(spec, Some(shm_bind(std::path::Path::new("/dev/shm"))));
            }
            Some(IpcMode::None) => {
                set_shm(spec, None);
            }
            Some(IpcMode::Shareable) => {
                modes.shm_options = set_shm(spec, Some(shm_bind(&shm_dir(dir))));
            }
            Some(IpcMode::Container(name)) => {
                let id = resolve(name, taken)?;
                let target = dir.parent().map(|d| shm_dir(&d.join(&id))).unwrap_or_default();
                set_shm(spec, Some(shm_bind(&target)));
                modes.ipc_container = Some(id);
            }
            Some(IpcMode::Private) | None => {}
        }
        if !self.devices.is_empty() {
            let linux = spec
                .linux_mut()
                .as_mut()
                .ok_or_else(|| RuntimeError::Corrupt("the bundle has no linux section".into()))?;
            let mut nodes = linux.devices().clone().unwrap_or_default();
            let mut resources = linux.resources().clone().unwrap_or_default();
            let mut rules = resources.devices().clone().unwrap_or_default();
            for d in &self.devices {
                nodes.push(d.node()?);
                rules.extend(d.rules());
                modes.devices.push(d.mapping.clone());
            }
            resources.set_devices(Some(rules));
            linux.set_devices(Some(nodes)).set_resources(Some(resources));
        }
        if self.privileged {
            privilege(spec)?;
            modes.privileged = true;
        }
        match &self.pid {
            Some(NsMode::Host) => set_namespace(spec, LinuxNamespaceType::Pid, None),
            Some(NsMode::Container(name)) => {
                modes.pid_container = Some(resolve(name, taken)?);
            }
            Some(NsMode::Private) | None => {}
        }
        Ok(modes)
    }
}

/// The ID of the container `name` (a name, an ID or a unique prefix of one).
fn resolve(name: &str, taken: &[(String, String)]) -> Result<String, RuntimeError> {
    if let Some((_, id)) = taken.iter().find(|(n, id)| n == name || id == name) {
        return Ok(id.clone());
    }
    let mut found = taken.iter().filter(|(_, id)| id.starts_with(name));
    match (found.next(), found.next()) {
        (Some((_, id)), None) => Ok(id.clone()),
        (Some(_), Some(_)) => Err(RuntimeError::Ambiguous(name.to_string())),
        (None, _) => Err(RuntimeError::NoSuchContainer(name.to_string())),
    }
}

/// Replaces the bundle's /dev/shm mount with `with` (`None`: removes it);
/// returns the options of the tmpfs it was (its mode and size).
fn set_shm(spec: &mut Spec, with: Option<crate::spec::Mount>) -> Option<String> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    let at = mounts
        .iter()
        .position(|m| m.destination() == std::path::Path::new("/dev/shm"))?;
    let old = mounts.remove(at);
    if let Some(m) = with {
        mounts.insert(at, m);
    }
    spec.set_mounts(Some(mounts));
    let data: Vec<String> = old
        .options()
        .iter()
        .flatten()
        .filter(|o| o.starts_with("mode=") || o.starts_with("size="))
        .cloned()
        .collect();
    Some(data.join(","))
}

/// Replaces the bundle's namespace of `kind`: `Some(entry)` with that
/// entry (a path to join, or none for a new one), `None` removes it (the
/// host's).
fn set_namespace(spec: &mut Spec, kind: LinuxNamespaceType, entry: Option<Option<PathBuf>>) {
    let Some(linux) = spec.linux_mut().as_mut() else {
        return;
    };
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    match entry {
        None => namespaces.retain(|n| n.typ() != kind),
        Some(path) => {
            for n in namespaces.iter_mut().filter(|n| n.typ() == kind) {
                n.set_path(path.clone());
            }
        }
    }
    linux.set_namespaces(Some(namespaces));
}

/// A container this one joins, checked running when its namespace was
/// opened: [`Joined::still_running`] tells the same process is still there.
pub struct Joined {
    name: String,
    pid: i32,
    start: Option<u64>,
}

impl Joined {
    /// The joined container's process is the one whose namespaces were
    /// opened (not gone, its PID not reused), checked after opening them.
    pub fn still_running(&self) -> Result<(), RuntimeError> {
        if crate::container::process_start_time(self.pid) != self.start {
            return Err(not_running(&self.name));
        }
        Ok(())
    }
}

fn not_running(name: &str) -> RuntimeError {
    RuntimeError::BadOption(format!(
        "cannot join the namespaces of container {name}: it is not running"
    ))
}

/// Points `spec` at the namespaces of the containers `c` joins: the
/// `/proc/PID/ns/*` of their first process, checked to be a running
/// container of the same store. The caller checks [`Joined::still_running`]
/// once the runner has opened them.
pub fn join(c: &Container, spec: &mut Spec) -> Result<Vec<Joined>, RuntimeError> {
    let mut joined = Vec::new();
    for (kind, id, file) in [
        (LinuxNamespaceType::Pid, &c.meta.host.pid_container, "pid"),
        (LinuxNamespaceType::Ipc, &c.meta.host.ipc_container, "ipc"),
    ] {
        let Some(id) = id else { continue };
        let (target, meta) = running(c, id)?;
        if kind == LinuxNamespaceType::Ipc {
            match meta.host.ipc_mode.as_str() {
                "shareable" => {}
                // docker joins a container on the host's IPC: the host's /dev/shm.
                "host" => {
                    set_shm(
                        spec,
                        Some(crate::spec::mount(
                            "/dev/shm",
                            "bind",
                            "/dev/shm",
                            &["rbind", "rprivate"],
                        )),
                    );
                }
                _ => {
                    return Err(RuntimeError::BadOption(format!(
                    "cannot join the IPC namespace of container {}: it is not shareable (run it with --ipc shareable)",
                    meta.name
                )))
                }
            }
        }
        set_namespace(
            spec,
            kind,
            Some(Some(PathBuf::from(format!("/proc/{}/ns/{file}", target.pid)))),
        );
        joined.push(target);
    }
    Ok(joined)
}

/// A shareable container's /dev/shm: a tmpfs at [`shm_dir`] (the old one
/// unmounted first, after a crash), which the container and those that
/// join it bind. [`release`] unmounts it.
pub fn prepare(c: &Container) -> Result<(), RuntimeError> {
    let Some(options) = &c.meta.host.shm_options else {
        return Ok(());
    };
    let dir = shm_dir(&c.dir);
    release(c);
    std::fs::create_dir_all(&dir).map_err(crate::io_err(format!("creating {}", dir.display())))?;
    use rustix::mount::MountFlags;
    let data = std::ffi::CString::new(options.as_str())
        .map_err(|_| RuntimeError::Corrupt(format!("the /dev/shm options of {} hold a NUL", c.meta.name)))?;
    rustix::mount::mount(
        "shm",
        &dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        data.as_c_str(),
    )
    .map_err(|e| crate::io_err(format!("mounting the shareable /dev/shm on {}", dir.display()))(e.into()))
}

/// docker's `--privileged` set: every capability this kernel has that
/// barge's own bounding set holds (a process cannot give more; on an
/// ordinary host that is all of them).
fn all_capabilities() -> Vec<String> {
    use rustix::thread::{capability_is_in_bounding_set, CapabilitySet};
    let last = crate::caps::last_cap() as usize;
    crate::caps::ALL
        .iter()
        .enumerate()
        .take(last + 1)
        .filter(|(bit, _)| capability_is_in_bounding_set(CapabilitySet::from_bits_retain(1 << bit)).unwrap_or(false))
        .map(|(_, c)| c.to_string())
        .collect()
}

/// `--privileged` (and `exec --privileged`) for a process: the full
/// bounding set, effective and permitted too for root.
pub fn privileged_process(process: &mut crate::spec::Process) -> Result<(), RuntimeError> {
    let all = crate::spec::capability_set(&all_capabilities())?;
    let mut caps = process.capabilities().clone().unwrap_or_default();
    caps.set_bounding(Some(all.clone()));
    if process.user().uid() == 0 {
        caps.set_effective(Some(all.clone())).set_permitted(Some(all));
    }
    process.set_capabilities(Some(caps));
    Ok(())
}

/// `--privileged` in the bundle: every capability, no seccomp filter, no
/// masked or read-only paths, a writable /sys, every device allowed in
/// the device cgroup (the host's nodes are bound at start).
fn privilege(spec: &mut Spec) -> Result<(), RuntimeError> {
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| RuntimeError::Corrupt("the bundle has no process".into()))?;
    privileged_process(&mut process)?;
    spec.set_process(Some(process));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for m in mounts.iter_mut().filter(|m| m.typ().as_deref() == Some("sysfs")) {
        let options = m.options().clone().unwrap_or_default();
        m.set_options(Some(options.into_iter().filter(|o| o != "ro").collect()));
    }
    spec.set_mounts(Some(mounts));
    let linux = spec
        .linux_mut()
        .as_mut()
        .ok_or_else(|| RuntimeError::Corrupt("the bundle has no linux section".into()))?;
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut all = crate::spec::LinuxDeviceCgroup::default();
    all.set_allow(true).set_typ(None).set_access(Some("rwm".into()));
    resources.set_devices(Some(vec![all]));
    linux
        .set_seccomp(None)
        .set_masked_paths(Some(Vec::new()))
        .set_readonly_paths(Some(Vec::new()))
        .set_resources(Some(resources));
    Ok(())
}

/// The host's device nodes, as docker's `--privileged` gives them: every
/// character and block device below /dev but the per-container
/// filesystems (pts, shm, mqueue), links and the console; the standard
/// nodes the runner makes anyway are left to it.
fn host_devices() -> Vec<(PathBuf, PathBuf)> {
    const SKIPPED: [&str; 14] = [
        "pts",
        "shm",
        "mqueue",
        "fd",
        ".lxc",
        ".lxd-mounts",
        ".udev",
        "console",
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "tty",
    ];
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(std::path::Path::new("/dev").join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if rel.as_os_str().is_empty() && SKIPPED.iter().any(|s| name == *s) || name == "ptmx" {
                continue;
            }
            let Ok(kind) = e.file_type() else { continue };
            use std::os::unix::fs::FileTypeExt;
            if kind.is_dir() {
                dirs.push(rel.join(&name));
            } else if kind.is_char_device() || kind.is_block_device() {
                found.push((rel.join(&name), e.path()));
            }
        }
    }
    found.sort();
    found
}

/// The host's nodes to bind in the container's /dev, (path below /dev,
/// host path), each checked to be still the device `create` recorded:
/// its cgroup rule names that one.
pub fn device_binds(c: &Container, spec: &Spec) -> Result<Vec<(PathBuf, PathBuf)>, RuntimeError> {
    let nodes = crate::spec::linux(spec)?.devices().clone().unwrap_or_default();
    let mut binds = Vec::new();
    for m in &c.meta.host.devices {
        let node = nodes
            .iter()
            .find(|n| n.path() == std::path::Path::new(&m.path_in_container))
            .ok_or_else(|| RuntimeError::Corrupt(format!("the device {} is not in the bundle", m.path_in_container)))?;
        let now = Device::parse(&format!("{}:{}:rwm", m.path_on_host, m.path_in_container))
            .ok()
            .filter(|d| (d.kind(), d.major, d.minor) == (node.typ(), node.major(), node.minor()));
        if now.is_none() {
            return Err(RuntimeError::BadOption(format!(
                "--device {}: it is no longer the device node it was when the container was made",
                m.path_on_host
            )));
        }
        let rel = std::path::Path::new(&m.path_in_container)
            .strip_prefix("/dev")
            .map_err(|_| RuntimeError::Corrupt(format!("the device {} is not below /dev", m.path_in_container)))?;
        binds.push((rel.to_path_buf(), PathBuf::from(&m.path_on_host)));
    }
    if c.meta.host.privileged {
        let asked: Vec<PathBuf> = binds.iter().map(|(rel, _)| rel.clone()).collect();
        binds.extend(host_devices().into_iter().filter(|(rel, _)| !asked.contains(rel)));
    }
    Ok(binds)
}

/// Unmounts a shareable container's /dev/shm (nothing for the others).
pub fn release(c: &Container) {
    if c.meta.host.shm_options.is_some() {
        let _ = rustix::mount::unmount(shm_dir(&c.dir), rustix::mount::UnmountFlags::DETACH);
    }
}

/// The container `id` beside `c` (same store), running, and its record.
fn running(c: &Container, id: &str) -> Result<(Joined, crate::Meta), RuntimeError> {
    let dir = c
        .dir
        .parent()
        .map(|d| d.join(id))
        .ok_or_else(|| RuntimeError::Corrupt(format!("{} has no parent", c.dir.display())))?;
    if id.is_empty() || id.contains('/') || !dir.join("meta.json").is_file() {
        return Err(RuntimeError::BadOption(format!(
            "cannot join the namespaces of container {id}: No such container"
        )));
    }
    let target = Container::load(&dir)?;
    let st = target.state()?;
    match (st.status, st.pid) {
        (Status::Running, Some(pid)) if crate::container::process_start_time(pid) == st.pid_start => Ok((
            Joined {
                name: target.meta.name.clone(),
                pid,
                start: st.pid_start,
            },
            target.meta,
        )),
        _ => Err(not_running(&target.meta.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_modes() {
        assert_eq!(NsMode::parse("--pid", "host").unwrap(), NsMode::Host);
        assert_eq!(
            NsMode::parse("--pid", "container:web").unwrap(),
            NsMode::Container("web".into())
        );
        for bad in ["container:", "hots", "private", "shareable"] {
            assert!(NsMode::parse("--pid", bad).is_err(), "{bad}");
        }
        assert_eq!(IpcMode::parse("shareable").unwrap(), IpcMode::Shareable);
        assert_eq!(IpcMode::parse("private").unwrap(), IpcMode::Private);
        assert_eq!(IpcMode::parse("none").unwrap(), IpcMode::None);
        assert_eq!(IpcMode::parse("container:x").unwrap(), IpcMode::Container("x".into()));
        assert!(IpcMode::parse("shared").is_err());
    }

    #[test]
    fn device_flags() {
        for ok in ["r", "rw", "mwr", "m"] {
            assert!(device_access(ok), "{ok}");
        }
        for bad in ["", "rr", "x", "rwmr"] {
            assert!(!device_access(bad), "{bad}");
        }
        for ok in ["/dev/x", "/dev/snd/x"] {
            assert!(below_dev(ok), "{ok}");
        }
        for bad in [
            "/dev",
            "/dev/",
            "/etc/x",
            "/dev/../etc/x",
            "/dev/./x",
            "dev/x",
            "/dev//x",
        ] {
            assert!(!below_dev(bad), "{bad}");
        }
        let d = Device::parse("/dev/zero:/dev/myzero:r").unwrap();
        assert_eq!((d.block, d.major, d.minor), (false, 1, 5));
        let rules = d.rules();
        assert_eq!((rules[0].allow(), rules[1].allow()), (false, true));
        assert_eq!(
            Device::parse("/dev/null:rw").unwrap().mapping.path_in_container,
            "/dev/null"
        );
        for bad in [
            "/etc/passwd",
            "/no/such/node",
            "/dev/zero:/etc/zero",
            "/dev/zero:/dev/z:x",
            "zero",
        ] {
            assert!(Device::parse(bad).is_err(), "{bad}");
        }
        let taken = [
            ("web".to_string(), "abcdef".to_string()),
            ("db".into(), "abc123".into()),
        ];
        assert_eq!(resolve("web", &taken).unwrap(), "abcdef");
        assert_eq!(resolve("abc1", &taken).unwrap(), "abc123");
        assert!(matches!(resolve("abc", &taken), Err(RuntimeError::Ambiguous(_))));
        assert!(matches!(resolve("nope", &taken), Err(RuntimeError::NoSuchContainer(_))));
    }
}
