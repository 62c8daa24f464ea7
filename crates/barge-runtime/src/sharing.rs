//! What a container shares with the host or another container: `--pid`,
//! `--ipc` (and later `--device`, `--privileged`), as docker 20.10 reads
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
}

impl Sharing {
    /// Checks `--pid` without a store: refusals come before any pull.
    pub fn parse(pid: Option<&str>, ipc: Option<&str>, runtime: Option<&str>) -> Result<Sharing, RuntimeError> {
        let mut s = Sharing::default();
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
                _ => return Err(RuntimeError::BadOption(format!(
                    "cannot join the IPC namespace of container {}: it is not shareable (run it with --ipc shareable)",
                    meta.name
                ))),
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
