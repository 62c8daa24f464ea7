//! Containers on disk: `<root>/containers/<id>/` holds `meta.json` (what
//! was asked for), `config.json` (the OCI bundle config), `state.json`
//! (what is happening), the log, `upper/` and `work/` (the overlay's
//! private layer), `rootfs/` (the mount point), and `hosts`, `hostname`,
//! `resolv.conf`.

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

/// A bind mount: `-v HOST:CONTAINER[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
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
    /// `--log-opt` as given (json-file's `max-size`, `max-file`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_opts: BTreeMap<String, String>,
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

    /// The recorded state, corrected for reality: a "running" container
    /// whose process and monitor are both gone (the monitor was killed,
    /// say) is reported as exited with status 255 and this is written back.
    pub fn state(&self) -> Result<State, RuntimeError> {
        let mut st: State = read_json(&self.state_path())?;
        if st.status == Status::Running {
            let alive = |pid: Option<i32>, start: Option<u64>| {
                pid.is_some_and(|p| start.is_some() && process_start_time(p) == start)
            };
            if !alive(st.pid, st.pid_start) && !alive(st.monitor_pid, st.monitor_start) {
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
        }
        Ok(st)
    }

    pub fn set_state(&self, st: &State) -> Result<(), RuntimeError> {
        write_json(&self.state_path(), st)
    }

    pub fn spec(&self) -> Result<crate::spec::Spec, RuntimeError> {
        read_json(&self.dir.join("config.json"))
    }

    /// Bytes the container wrote (its overlay upper dir; a file with
    /// several hard links counts once, as du and docker count it).
    pub fn size(&self) -> u64 {
        barge_store::fsutil::du(&self.dir.join("upper"))
    }
}
