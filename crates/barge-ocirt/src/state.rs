//! A container's state: `<root>/<id>/state.json` (what `create` recorded),
//! `<root>/<id>/exec.fifo` (present until `start`), and the cgroup record
//! barge-cgroups keeps there. The status is read from the process itself.

use crate::{io_err, OcirtError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `create` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub pid: i32,
    /// Field 22 of `/proc/PID/stat` when created: a reused PID is not ours.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub oci_version: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The runtime spec's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// The state directory: `--root`, else `/run/barge-runtime` for root and
/// `$XDG_RUNTIME_DIR/barge-runtime` for others.
pub fn root_dir(flag: Option<&str>) -> Result<PathBuf, OcirtError> {
    if let Some(r) = flag {
        return Ok(PathBuf::from(r));
    }
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/run/barge-runtime"));
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join("barge-runtime"))
        .ok_or_else(|| OcirtError::Usage("XDG_RUNTIME_DIR is not set: give --root".into()))
}

/// A container found in the state directory.
pub struct Container {
    pub dir: PathBuf,
    pub record: Record,
}

impl Container {
    pub fn load(root: &Path, id: &str) -> Result<Container, OcirtError> {
        let dir = root.join(id);
        let path = dir.join("state.json");
        if !path.exists() {
            return Err(OcirtError::NotFound(id.to_string()));
        }
        let record = barge_records::read_json(&path)?;
        Ok(Container { dir, record })
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    /// Whether the recorded process still lives (and is not a zombie).
    pub fn alive(&self) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.record.pid)) else {
            return false;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            return false;
        };
        let mut fields = rest.split(' ');
        let state = fields.next().unwrap_or("Z");
        let start: Option<u64> = fields.nth(18).and_then(|s| s.parse().ok());
        state != "Z" && state != "X" && start == Some(self.record.start_time)
    }

    pub fn cgroup(&self) -> Option<barge_cgroups::Cgroup> {
        barge_cgroups::Cgroup::load(&self.dir)
    }

    pub fn status(&self) -> Status {
        if !self.alive() {
            return Status::Stopped;
        }
        if self.fifo().exists() {
            return Status::Created;
        }
        if self.cgroup().is_some_and(|cg| cg.paused()) {
            return Status::Paused;
        }
        Status::Running
    }

    /// The runtime spec's state document, as `runc state` prints it.
    pub fn state_json(&self) -> serde_json::Value {
        let status = self.status();
        let r = &self.record;
        serde_json::json!({
            "ociVersion": r.oci_version,
            "id": r.id,
            "pid": if status == Status::Stopped { 0 } else { r.pid },
            "status": status.as_str(),
            "bundle": r.bundle,
            "rootfs": r.rootfs,
            "created": r.created,
            "owner": "",
            "annotations": r.annotations,
        })
    }

    /// Removes the state: the cgroup (killing what is left), then the directory.
    pub fn destroy(&self) -> Result<(), OcirtError> {
        barge_cgroups::release(&self.dir);
        std::fs::remove_dir_all(&self.dir).map_err(io_err(format!("removing {}", self.dir.display())))
    }
}

/// `--pid-file`: the PID, written whole (a temporary file renamed).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), OcirtError> {
    let tmp = path.with_extension("barge-tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(io_err(format!("writing the pid file {}", path.display())))
}
