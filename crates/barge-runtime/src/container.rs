//! Containers on disk: `<root>/containers/<id>/` holds `meta.json` (what
//! was asked for), `config.json` (the OCI bundle config), `state.json`
//! (what is happening), the log, `upper/` and `work/` (the overlay's
//! private layer), `rootfs/` (the mount point), `hosts`, `hostname`,
//! `resolv.conf`, and `health.json` (its health check's results).

use crate::RuntimeError;
use barge_oci::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which network namespace a container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// A new network namespace with only `lo`, up.
    None,
    /// The host's network namespace.
    Host,
    /// A new network namespace with `eth0` on a bridge network
    /// ([`Meta::network_name`]).
    Bridge,
    /// A new network namespace with `eth0` from a user-mode network
    /// (pasta or slirp4netns): rootless barge's default.
    User,
}

/// A mount of the container's: a bind (`-v HOST:CONTAINER[:ro]`), a
/// volume (named or anonymous, see [`crate::volumes`]) or a tmpfs.
/// Records older than volumes hold binds only: every field after
/// `read_only` defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// The host directory mounted: a bind's source, a volume's `_data`
    /// (empty for a tmpfs, and in a validated option before `create`).
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "crate::volumes::MountKind::is_bind")]
    pub kind: crate::volumes::MountKind,
    /// The volume's name (a volume only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An anonymous volume: `-v /path` or the image's `VOLUME`; `rm -v` removes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// `volume-nocopy`: a new volume is not filled from the image.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_copy: bool,
    /// A tmpfs's options (`size=…`, `mode=…`, …), as the kernel takes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs_options: Vec<String>,
    /// How it was asked for (inspect's HostConfig.Binds, .Mounts, .Tmpfs).
    #[serde(default, skip_serializing_if = "crate::volumes::Origin::is_flag")]
    pub origin: crate::volumes::Origin,
    /// The mode as given to `-v` (`ro`, `rw`, empty), for inspect's `Mode`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
}

/// What a container was created with (`meta.json`). Written once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    pub name: String,
    pub created: String,
    /// The image as the user named it (`busybox`).
    pub image: String,
    pub image_id: Digest,
    /// The command: entrypoint and arguments.
    pub path: String,
    pub args: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// The process's environment (with HOSTNAME, HOME, TERM as set).
    pub env: Vec<String>,
    /// The environment as configured: the image's and the user's
    /// (`inspect`'s Config.Env); `None` in records older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_env: Option<Vec<String>>,
    pub working_dir: String,
    pub user: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub network: Network,
    /// The bridge network (`bridge`, or a user-defined one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_name: Option<String>,
    /// Published ports (`-p`, `-P`); host port 0 is chosen at start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::network::PortSpec>,
    pub tty: bool,
    pub open_stdin: bool,
    pub auto_remove: bool,
    pub init: bool,
    pub read_only: bool,
    pub volumes: Vec<Volume>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--security-opt` as given.
    #[serde(default)]
    pub security_opt: Vec<String>,
    /// An external OCI runtime (`runc`, a path), or `None` for barge's own.
    pub runtime: Option<String>,
    /// Signal `stop` sends first (the image's `StopSignal`, else SIGTERM).
    pub stop_signal: String,
    /// `--stop-timeout`: seconds `stop` waits by default (docker's 10 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// The image's snapshots, topmost first: the overlay's lower dirs.
    pub lower_dirs: Vec<PathBuf>,
    /// `--log-driver`: json-file unless none was asked for.
    #[serde(default, skip_serializing_if = "crate::logs::LogDriver::is_json_file")]
    pub log_driver: crate::logs::LogDriver,
    /// `--log-opt` as given (json-file's `max-size`, `max-file`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_opts: BTreeMap<String, String>,
    /// `--restart`, kept by the container's monitor.
    #[serde(default, skip_serializing_if = "crate::restart::RestartPolicy::is_no")]
    pub restart: crate::restart::RestartPolicy,
    /// `--pid` and the like (docker's HostConfig.PidMode, …).
    #[serde(flatten)]
    pub host: crate::sharing::HostModes,
    /// The health check: the image's `Healthcheck` with `--health-*` over
    /// it (inspect's `Config.Healthcheck`); see [`crate::health`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<barge_oci::image::Healthcheck>,
    /// The image's `SHELL` (docker's `Config.Shell`): what runs a
    /// `CMD-SHELL` health check; empty for `/bin/sh -c`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shell: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// What is happening to a container (`state.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The process's start time (field 22 of /proc/PID/stat), to tell a
    /// reused PID from ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    /// The process recording this container's exit: it is finishing up
    /// while it lives, even if the container's process is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The kernel's OOM killer killed a process of the container's cgroup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    /// Restarts its policy made so far (`RestartCount`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restart_count: u32,
    /// Exited, and its monitor waits out the backoff to start it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restarting: bool,
    /// A user stopped or killed it: its policy does not restart it until
    /// it is started again (docker's HasBeenManuallyStopped).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manually_stopped: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl State {
    pub fn created() -> State {
        State {
            status: Status::Created,
            pid: None,
            pid_start: None,
            monitor_pid: None,
            monitor_start: None,
            started_at: None,
            finished_at: None,
            exit_code: None,
            error: None,
            oom_killed: false,
            restart_count: 0,
            restarting: false,
            manually_stopped: false,
        }
    }
}

/// A container of a store.
#[derive(Debug, Clone)]
pub struct Container {
    pub dir: PathBuf,
    pub meta: Meta,
}

pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RuntimeError> {
    Ok(barge_records::write_json(path, value)?)
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, RuntimeError> {
    Ok(barge_records::read_json(path)?)
}

pub use barge_runner::process::process_start_time;

impl Container {
    pub fn load(dir: &Path) -> Result<Container, RuntimeError> {
        Ok(Container {
            dir: dir.to_path_buf(),
            meta: read_json(&dir.join("meta.json"))?,
        })
    }

    pub fn id(&self) -> &str {
        &self.meta.id
    }

    pub fn short_id(&self) -> &str {
        &self.meta.id[..12]
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log.json")
    }

    /// The pid of the monitor process while one runs (a systemd unit's
    /// `PIDFile=`, see `barge generate systemd`).
    pub fn monitor_pid_path(&self) -> PathBuf {
        self.dir.join("monitor.pid")
    }

    /// The recorded state, corrected for reality: a "running" container
    /// whose process and monitor are both gone (the monitor was killed,
    /// say) is reported as exited with status 255 and this is written back;
    /// so is a restart whose monitor is gone: no one will make it.
    pub fn state(&self) -> Result<State, RuntimeError> {
        let mut st: State = read_json(&self.state_path())?;
        let alive = |pid: Option<i32>, start: Option<u64>| {
            pid.is_some_and(|p| start.is_some() && process_start_time(p) == start)
        };
        if st.restarting && st.status != Status::Running && !alive(st.monitor_pid, st.monitor_start) {
            let again: State = read_json(&self.state_path())?;
            if !again.restarting || again.status == Status::Running {
                return Ok(again);
            }
            st.restarting = false;
            st.error = Some("the container's monitor disappeared before restarting it".into());
            self.set_state(&st)?;
        }
        if st.status == Status::Running && !alive(st.pid, st.pid_start) && !alive(st.monitor_pid, st.monitor_start) {
            // The monitor may have recorded the exit just now.
            let again: State = read_json(&self.state_path())?;
            if again.status != Status::Running {
                return Ok(again);
            }
            st.status = Status::Exited;
            st.exit_code = Some(255);
            st.finished_at = Some(crate::now_rfc3339());
            st.error = Some("the container's monitor disappeared; its exit status is unknown".into());
            self.set_state(&st)?;
        }
        Ok(st)
    }

    pub fn set_state(&self, st: &State) -> Result<(), RuntimeError> {
        write_json(&self.state_path(), st)
    }

    pub fn spec(&self) -> Result<crate::spec::Spec, RuntimeError> {
        read_json(&self.dir.join("config.json"))
    }

    /// `diff`: what the container changed in its image, as docker lists
    /// it: `('A' | 'C' | 'D', "/path")` sorted by path. Read from its upper
    /// directory with no link followed and every directory opened below
    /// the one before it (a running container may swap one for a link).
    pub fn changes(&self) -> Result<Vec<(char, String)>, RuntimeError> {
        use rustix::fd::AsFd;
        use rustix::fs::{Mode, OFlags};
        let lowers = barge_store::lowers::Lowers::new(self.meta.lower_dirs.clone());
        let upper = self.dir.join("upper");
        let open = |dir: rustix::fd::BorrowedFd<'_>, name: &std::ffi::CStr| {
            rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        let root = rustix::fs::open(
            &upper,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| crate::io_err(format!("reading {}", upper.display()))(e.into()))?;
        let mut out = Vec::new();
        let mut stack = vec![(root, String::new())];
        while let Some((fd, rel)) = stack.pop() {
            let dir = rustix::fs::Dir::read_from(&fd)
                .map_err(|e| crate::io_err(format!("reading {}/{rel}", upper.display()))(e.into()))?;
            for entry in dir.flatten() {
                let name = entry.file_name();
                let bytes = name.to_bytes();
                if bytes == b"." || bytes == b".." {
                    continue;
                }
                let path = format!("{rel}/{}", String::from_utf8_lossy(bytes));
                let Ok(st) = rustix::fs::statat(&fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) else {
                    continue;
                };
                let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
                let whiteout = kind == rustix::fs::FileType::CharacterDevice && st.st_rdev == 0;
                let change = if whiteout {
                    'D'
                } else if lowers.find(path.trim_start_matches('/')).is_some() {
                    'C'
                } else {
                    'A'
                };
                out.push((change, path.clone()));
                if kind == rustix::fs::FileType::Directory {
                    if let Ok(sub) = open(fd.as_fd(), name) {
                        stack.push((sub, path));
                    }
                }
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        // What barge made to mount on (/proc, /etc/hosts, a volume's
        // directory, and their parents, new or only touched by that) is
        // not the container's change: docker keeps those in its init
        // layer, below the container's.
        let points: Vec<String> = self
            .spec()
            .ok()
            .and_then(|s| s.mounts().clone())
            .unwrap_or_default()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        let made_for_mounts = |kind: char, path: &str, all: &[(char, String)]| {
            kind != 'D'
                && (points.iter().any(|p| p == path)
                    || (points.iter().any(|p| p.starts_with(&format!("{path}/")))
                        && all.iter().all(|(_, o)| {
                            !o.starts_with(&format!("{path}/"))
                                || points.iter().any(|p| p == o || p.starts_with(&format!("{o}/")))
                        })))
        };
        let all = out.clone();
        out.retain(|(kind, path)| !made_for_mounts(*kind, path, &all));
        Ok(out)
    }

    /// Bytes the container wrote (its overlay upper dir; a file with
    /// several hard links counts once, as du and docker count it).
    /// The restart policy as recorded now: `update` may have changed it
    /// since this record was read (a monitor's lasts the container's life).
    pub fn restart_policy(&self) -> crate::restart::RestartPolicy {
        Container::load(&self.dir).map_or(self.meta.restart, |now| now.meta.restart)
    }

    pub fn size(&self) -> u64 {
        barge_store::fsutil::du(&self.dir.join("upper"))
    }
}
