//! Starting a container: barge's runner (`barge-runner`) in the
//! container's cgroup (`barge-cgroups`) and network (`barge-network`), or
//! hand-off to an external OCI runtime; signals to a running container.
//!
//! The parent must be single-threaded when it calls [`start`] (barge is:
//! pulls join their threads first): the runner's child allocates before
//! `execve`.

pub use barge_runner::{ChildIo, Started};

use crate::container::{process_start_time, Container};
use crate::spec::Spec;
use crate::{io_err, RuntimeError};
use rustix::mount::MountFlags;
use std::path::{Path, PathBuf};

/// Removes the container's cgroup when a start fails half way.
struct CgroupGuard<'a>(Option<&'a Path>);

impl Drop for CgroupGuard<'_> {
    fn drop(&mut self) {
        if let Some(dir) = self.0 {
            barge_cgroups::release(dir);
        }
    }
}

/// Starts the container's process with barge's runner, or the external
/// runtime the container names.
pub fn start(c: &Container, io: ChildIo) -> Result<Started, RuntimeError> {
    // A volume's directory replaced by a link is refused, not followed.
    crate::volumes::check_sources(c)?;
    let spec = c.spec()?;
    let attached = match (c.meta.network, &c.meta.network_name) {
        (crate::Network::Bridge, Some(name)) => Some(crate::network::attach(c, name, &c.meta.ports)?),
        (crate::Network::User, _) => Some(crate::network::attach_user(c)?),
        _ => None,
    };
    let started = if c.meta.runtime.is_some() {
        crate::network::user_ready(c)
            .map_err(RuntimeError::from)
            .and_then(|()| external_start(c, io))
    } else {
        native_start(c, &spec, io)
    };
    if started.is_err() && attached.is_some() {
        crate::network::detach(c);
    }
    started
}

fn native_start(c: &Container, spec: &Spec, io: ChildIo) -> Result<Started, RuntimeError> {
    // `--pid container:X` and the like: X's namespaces, X checked running.
    let mut spec = spec.clone();
    let joined = crate::sharing::join(c, &mut spec)?;
    crate::sharing::prepare(c)?;
    let spec = &spec;
    let mut plan = barge_runner::child::Plan::new(spec, &c.dir, &c.meta.lower_dirs, c.meta.init)?;
    for j in &joined {
        j.still_running()?;
    }
    plan.bind_devices(crate::sharing::device_binds(c, spec)?);
    if crate::rootless::rootless() {
        crate::rootless::prepare_root(c, &mut plan)?;
    }
    if c.meta.auto_remove {
        clear_volatile_mark(c);
        plan.volatile_upper()?;
    }
    // The cgroup, with its limits, exists before the child does.
    let resources = crate::spec::resources(spec);
    let cgroup_path = crate::spec::linux(spec)?
        .cgroups_path()
        .as_ref()
        .and_then(|p| p.to_str())
        .map_or_else(|| barge_cgroups::default_path(c.id()), str::to_string);
    let cgroup = if crate::rootless::rootless() {
        // Rootless: a cgroup in the user's delegated v2 subtree, if any,
        // without the device rules: they are moot in a user namespace,
        // where no mount allows device nodes and none can be made (no
        // CAP_MKNOD on the host), and the eBPF program that enforces them
        // needs the host's CAP_BPF. Without such a subtree `create`
        // refused limit flags and the container runs without a cgroup.
        let mut limits = resources.cloned();
        if let Some(l) = limits.as_mut() {
            l.set_devices(None);
        }
        match barge_cgroups::Cgroup::create_delegated(c.id(), limits.as_ref()) {
            Ok(cg) => Some(cg),
            Err(_) if !barge_cgroups::limits_asked(limits.as_ref()) => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        match barge_cgroups::Cgroup::create(&cgroup_path, resources) {
            Ok(cg) => cg,
            // Nothing a cgroup enforces is asked for (a bundle without limits or
            // device rules): a host where barge may not make cgroups still runs it.
            Err(_) if !barge_cgroups::limits_asked(resources) => None,
            Err(e) => return Err(e.into()),
        }
    };
    let mut guard = CgroupGuard(None);
    if let Some(cg) = &cgroup {
        guard.0 = Some(&c.dir);
        cg.save(&c.dir)?;
        plan.cgroup = cg.join()?;
    }
    // The user-mode network started before the root was prepared; the
    // container starts once it is up.
    crate::network::user_ready(c)?;
    let started = barge_runner::child::spawn(&plan, io)?;
    guard.0 = None;
    Ok(started)
}

/// Removes what a `volatile` overlay (a `--rm` container's root, see
/// `Plan::volatile_upper`) leaves in its work directory, `work/incompat/volatile`,
/// which makes the kernel refuse any later mount of it (a restart, `cp`
/// from it stopped). Such a container's upper directory is thrown away
/// with it, whatever state it is in.
pub(crate) fn clear_volatile_mark(c: &Container) {
    if c.meta.auto_remove {
        let _ = std::fs::remove_dir_all(c.dir.join("work/work/incompat"));
    }
}

/// Starts the container with an external OCI runtime: the overlay is
/// mounted on the bundle's `rootfs` on the host first (unmounted again when
/// the container is cleaned up).
fn external_start(c: &Container, io: ChildIo) -> Result<Started, RuntimeError> {
    let runtime = c.meta.runtime.clone().unwrap_or_default();
    let rootfs = c.dir.join("rootfs");
    let overlay = barge_runner::overlay_options(&c.meta.lower_dirs, Some((&c.dir.join("upper"), &c.dir.join("work"))))?;
    let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
    rustix::mount::mount(
        "overlay",
        &rootfs,
        "overlay",
        MountFlags::empty(),
        std::ffi::CString::new(overlay)
            .map_err(|_| RuntimeError::Corrupt("a string in the bundle contains a NUL byte".into()))?
            .as_c_str(),
    )
    .map_err(|e| io_err(format!("mounting {}", rootfs.display()))(e.into()))?;
    let mut cmd = std::process::Command::new(&runtime);
    cmd.arg("--root")
        .arg(external_state_dir(c))
        .args(["run", "--bundle"])
        .arg(&c.dir)
        .arg(c.id());
    match io {
        ChildIo::Fds { stdin, stdout, stderr } => {
            let stdin = match stdin {
                Some(fd) => fd,
                // An empty pipe, not the host's /dev/null.
                None => {
                    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                        .map_err(|e| io_err("creating a pipe")(e.into()))?
                        .0
                }
            };
            cmd.stdin(std::process::Stdio::from(stdin))
                .stdout(std::process::Stdio::from(stdout))
                .stderr(std::process::Stdio::from(stderr));
        }
        ChildIo::Terminal => {
            return Err(RuntimeError::External {
                runtime,
                message: "a terminal (-t) is not supported with --runtime yet".into(),
            })
        }
    }
    let child = cmd.spawn().map_err(|e| RuntimeError::External {
        runtime: runtime.clone(),
        message: e.to_string(),
    })?;
    let pid = child.id() as i32;
    // The Child handle is not waited on: the pidfd and waitid do that.
    std::mem::forget(child);
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or_else(|| RuntimeError::Corrupt("pid 0".into()))?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| io_err("watching the runtime process")(e.into()))?;
    Ok(Started {
        pid,
        pidfd,
        start_time: process_start_time(pid).unwrap_or(0),
        terminal: None,
    })
}

/// `update` of a container an external runtime runs: its own `update
/// --resources -`, which writes the cgroup that runtime made.
pub(crate) fn external_update(c: &Container, res: &crate::spec::LinuxResources) -> Result<(), RuntimeError> {
    use std::io::Write;
    let runtime = c.meta.runtime.clone().unwrap_or_default();
    let failed = |message: String| RuntimeError::External {
        runtime: runtime.clone(),
        message,
    };
    let json = serde_json::to_vec(res).map_err(|e| failed(e.to_string()))?;
    let mut child = std::process::Command::new(&runtime)
        .arg("--root")
        .arg(external_state_dir(c))
        .args(["update", "--resources", "-", c.id()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&json).map_err(|e| failed(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

fn external_state_dir(c: &Container) -> PathBuf {
    c.dir
        .parent()
        .and_then(Path::parent)
        .map(|root| root.join("runc"))
        .unwrap_or_else(|| PathBuf::from("/run/barge-runc"))
}

/// After an external runtime's container ended: its state and our rootfs mount go.
pub fn external_cleanup(c: &Container) {
    if let Some(runtime) = &c.meta.runtime {
        let _ = std::process::Command::new(runtime)
            .arg("--root")
            .arg(external_state_dir(c))
            .args(["delete", "--force", c.id()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    let _ = rustix::mount::unmount(c.dir.join("rootfs"), rustix::mount::UnmountFlags::DETACH);
}

/// Sends a signal to a container's main process, checking it is still ours.
pub fn signal(c: &Container, st: &crate::State, sig: i32) -> Result<(), RuntimeError> {
    let (Some(pid), Some(start)) = (st.pid, st.pid_start) else {
        return Err(RuntimeError::NotRunning(c.meta.name.clone()));
    };
    let fd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or_else(|| RuntimeError::NotRunning(c.meta.name.clone()))?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|_| RuntimeError::NotRunning(c.meta.name.clone()))?;
    if process_start_time(pid) != Some(start) {
        return Err(RuntimeError::NotRunning(c.meta.name.clone()));
    }
    if c.meta.runtime.is_some() {
        // runc run forwards signals to the container; SIGKILL cannot be forwarded, so ask runc.
        if sig == KILL {
            let _ = std::process::Command::new(c.meta.runtime.as_deref().unwrap_or("runc"))
                .arg("--root")
                .arg(external_state_dir(c))
                .args(["kill", c.id(), "KILL"])
                .status();
        }
    }
    barge_runner::sys::send_signal(&fd, sig).map_err(io_err("sending the signal"))?;
    if sig == KILL && c.meta.runtime.is_none() {
        // Every process of the container, not only its PID 1.
        if let Some(cg) = barge_cgroups::Cgroup::load(&c.dir) {
            cg.kill_all();
        }
    }
    Ok(())
}

/// SIGKILL's number.
const KILL: i32 = rustix::process::Signal::KILL.as_raw();

/// Signal numbers from docker's spellings: `TERM`, `SIGTERM`, `15`.
pub fn parse_signal(s: &str) -> Result<i32, RuntimeError> {
    barge_runner::sys::signal_number(s).ok_or_else(|| RuntimeError::BadSignal(s.to_string()))
}
