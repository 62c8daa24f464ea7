//! Containers from stored images, without a daemon.
//!
//! [`Runtime::create`] turns an image into a container: a directory with a
//! standard OCI runtime bundle (`config.json`, see [`spec`]), a private
//! overlay upper dir, and barge's own records ([`container`]). [`runner`]
//! starts it: its cgroup (`barge-cgroups`) with the limits [`limits`] put
//! in the bundle, its bridge network ([`network`], `barge-network`), then
//! barge's embedded runner (`barge-runner`: one `clone` into new
//! namespaces, the overlay root mounted inside, docker's masks, `pivot_root`,
//! credentials, the [`seccomp`] filter, `execve`), or `--runtime runc` with
//! the same bundle. [`monitor`] is the process that waits for a container,
//! keeps its log ([`logs`]) and records its exit; [`exec`] runs a command
//! in a running one; [`health`] probes it as its health check asks;
//! [`stats`] samples its usage; [`update`] changes its limits and restart
//! policy.
//!
//! It is not for pulling or storing images (`barge-engine`, `barge-store`),
//! and it never writes into a snapshot: snapshots are shared lower layers.
//! It makes no raw system call: those are `barge-runner`'s `sys`.
#![forbid(unsafe_code)]

pub mod attach;
pub mod container;
mod create;
pub mod exec;
pub mod health;
pub mod host;
pub mod limits;
pub mod logs;
pub mod monitor;
pub mod names;
pub mod network;
pub mod restart;
pub mod rootfs;
pub mod rootless;
pub mod runner;
pub mod sharing;
pub mod stats;
pub mod update;
pub mod user;
pub mod volumes;

pub use barge_runner::{caps, sealed, seccomp, spec, userns};

pub use container::{Container, Meta, Network, State, Status, Volume};
pub use create::{CreateOptions, ImageSource, Validated};

use barge_oci::image::chain_ids;
use barge_store::{Store, StoreError};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("container records are damaged: {0}")]
    Corrupt(String),
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("multiple containers match {0}; use more of the ID or the name")]
    Ambiguous(String),
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse { name: String, id: String },
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    #[error("no command specified: the image has no CMD or ENTRYPOINT; give one after the image name")]
    NoCommand,
    #[error(transparent)]
    User(#[from] user::UserError),
    #[error(transparent)]
    Capability(#[from] caps::UnknownCapability),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("layer {0} of the image is not unpacked in the store; pull the image again")]
    MissingSnapshot(String),
    #[error("the image has {0} layers: a container can have at most {MAX_LAYERS} (as docker's overlay2)")]
    TooManyLayers(usize),
    #[error("{0}")]
    Overlay(String),
    #[error("path {0:?} cannot be used in overlay mount options (it contains ',' or ':')")]
    UnsafePath(PathBuf),
    #[error(
        "cannot remove container \"/{0}\": container is running: stop the container before removing or force remove"
    )]
    Running(String),
    #[error("Container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    #[error("invalid volume specification {0:?}: expected HOST-DIR:CONTAINER-DIR[:ro|rw], both absolute")]
    BadVolume(String),
    #[error("the process did not start: {message}")]
    Start { code: i32, message: String },
    /// A failure the forked monitor of a foreground run reported, as it said it.
    #[error("{message}")]
    Relayed { code: i32, message: String },
    #[error(transparent)]
    Attach(#[from] attach::AttachError),
    #[error("OCI runtime {runtime}: {message}")]
    External { runtime: String, message: String },
    #[error("invalid signal {0:?}")]
    BadSignal(String),
    /// An option whose value cannot be used, with docker's wording.
    #[error("{0}")]
    BadOption(String),
    #[error(transparent)]
    Volume(#[from] volumes::VolumeError),
    #[error(transparent)]
    Network(#[from] network::NetworkError),
    #[error(transparent)]
    Port(#[from] network::ports::PortError),
    #[error(transparent)]
    Limits(#[from] limits::LimitError),
    #[error(transparent)]
    Cgroup(#[from] barge_cgroups::CgroupError),
    #[error(transparent)]
    LogOpt(#[from] logs::LogOptError),
    /// A limit flag given to rootless barge where it can make no cgroup
    /// with the controller the flag needs.
    #[error(
        "{flag} needs a cgroup, which rootless barge cannot make here: {why}. Resource limits as a user need cgroup v2 with a subtree delegated to your user (a systemd user session, Delegate=yes); run without {flag}, or as root"
    )]
    Rootless {
        flag: &'static str,
        why: barge_cgroups::Undelegated,
    },
    #[error(
        "a rootless container needs overlayfs in a user namespace (Linux 5.11 or later) or fuse-overlayfs: the kernel refused ({kernel}) and fuse-overlayfs {fuse}; install the Debian package fuse-overlayfs (apt-get install fuse-overlayfs)"
    )]
    NoOverlay { kernel: String, fuse: String },
}

impl From<barge_records::RecordError> for RuntimeError {
    fn from(e: barge_records::RecordError) -> RuntimeError {
        match e {
            barge_records::RecordError::Io { context, source } => RuntimeError::Io { context, source },
            barge_records::RecordError::Corrupt(what) => RuntimeError::Corrupt(what),
        }
    }
}

impl From<barge_runner::RunnerError> for RuntimeError {
    fn from(e: barge_runner::RunnerError) -> RuntimeError {
        use barge_runner::RunnerError as E;
        match e {
            E::Io { context, source } => RuntimeError::Io { context, source },
            E::Corrupt(what) => RuntimeError::Corrupt(what),
            E::Capability(e) => RuntimeError::Capability(e),
            E::Seccomp(e) => RuntimeError::Seccomp(e),
            E::UnsafePath(p) => RuntimeError::UnsafePath(p),
            E::Start { code, message } => RuntimeError::Start { code, message },
            E::Spec(e) => RuntimeError::Corrupt(format!("the bundle's config: {e}")),
            e @ E::OptionsTooLong(_) => RuntimeError::Overlay(e.to_string()),
        }
    }
}

impl RuntimeError {
    /// The exit status docker gives this failure: 126 for a command that
    /// cannot be executed, 127 for one not found, 125 for anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::Start { code, .. } | RuntimeError::Relayed { code, .. } => *code,
            _ => 125,
        }
    }
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let context = context.into();
    move |source| RuntimeError::Io { context, source }
}

pub use barge_records::now_rfc3339;

/// The containers of a store.
#[derive(Debug, Clone)]
pub struct Runtime {
    store: Store,
    dir: PathBuf,
}

impl Runtime {
    pub fn new(store: &Store) -> Runtime {
        Runtime {
            store: store.clone(),
            dir: store.root().join("containers"),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every container, newest first.
    pub fn list(&self) -> Result<Vec<Container>, RuntimeError> {
        let mut out = Vec::new();
        let rd = std::fs::read_dir(&self.dir).map_err(io_err(format!("listing {}", self.dir.display())))?;
        for e in rd.flatten() {
            let p = e.path();
            if p.join("meta.json").is_file() {
                if let Ok(c) = Container::load(&p) {
                    out.push(c);
                }
            }
        }
        out.sort_by(|a, b| b.meta.created.cmp(&a.meta.created));
        Ok(out)
    }

    /// A container by name, full ID or unique ID prefix, as docker accepts.
    pub fn find(&self, name_or_id: &str) -> Result<Container, RuntimeError> {
        let wanted = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        let all = self.list()?;
        if let Some(c) = all.iter().find(|c| c.meta.id == wanted || c.meta.name == wanted) {
            return Ok(c.clone());
        }
        let matches: Vec<&Container> = all
            .iter()
            .filter(|c| !wanted.is_empty() && c.meta.id.starts_with(wanted))
            .collect();
        match matches.len() {
            0 => Err(RuntimeError::NoSuchContainer(name_or_id.to_string())),
            1 => Ok(matches[0].clone()),
            _ => Err(RuntimeError::Ambiguous(name_or_id.to_string())),
        }
    }

    /// Lock serialising container creation and removal (names stay unique).
    pub(crate) fn lock(&self) -> Result<barge_store::LockGuard, RuntimeError> {
        let path = self.dir.join(".lock");
        barge_store::fsutil::lock(&path, barge_store::fsutil::LockKind::Exclusive)
            .map_err(io_err(format!("locking {}", path.display())))
    }

    /// `pause` (`on`) or `unpause`: the freezer of the container's cgroup.
    pub fn set_paused(&self, c: &Container, on: bool) -> Result<(), RuntimeError> {
        if c.state()?.status != Status::Running {
            return Err(RuntimeError::NotRunning(c.meta.name.clone()));
        }
        let cg = barge_cgroups::Cgroup::load(&c.dir).ok_or_else(|| {
            RuntimeError::BadOption(format!(
                "container {} has no cgroup (a rootless container without a delegated cgroup v2): nothing can freeze it",
                c.meta.name
            ))
        })?;
        if !on && !cg.paused() {
            return Err(RuntimeError::BadOption(format!(
                "Container {} is not paused",
                c.meta.name
            )));
        }
        if on && cg.paused() {
            return Err(RuntimeError::BadOption(format!(
                "Container {} is already paused",
                c.meta.name
            )));
        }
        Ok(cg.set_paused(on)?)
    }

    /// Whether `pause` froze the container.
    pub fn paused(&self, c: &Container) -> bool {
        barge_cgroups::Cgroup::load(&c.dir).is_some_and(|cg| cg.paused())
    }

    /// `rename`: the container's name, checked and unique as at create;
    /// running or not, as docker allows.
    pub fn rename(&self, c: &Container, new: &str) -> Result<(), RuntimeError> {
        let new = new.strip_prefix('/').unwrap_or(new);
        if !names::valid(new) {
            return Err(RuntimeError::InvalidName(new.to_string()));
        }
        let _lock = self.lock()?;
        if let Some(other) = self.list()?.into_iter().find(|o| o.meta.name == new) {
            if other.meta.id == c.meta.id {
                return Err(RuntimeError::BadOption(format!(
                    "renaming container {}: the new name is the same as the old one",
                    c.meta.name
                )));
            }
            return Err(RuntimeError::NameInUse {
                name: new.to_string(),
                id: other.meta.id,
            });
        }
        let mut meta = Container::load(&c.dir)?.meta;
        meta.name = new.to_string();
        container::write_json(&c.dir.join("meta.json"), &meta)
    }

    /// Removes a stopped container's files. Callers stop it first.
    pub fn remove(&self, c: &Container) -> Result<(), RuntimeError> {
        let _lock = self.lock()?;
        // Removed meanwhile (an `--rm` container's monitor and `rm -f`
        // both remove it): done.
        if std::fs::symlink_metadata(&c.dir).is_err() {
            return Ok(());
        }
        if c.meta.runtime.is_some() {
            runner::external_cleanup(c);
        }
        network::detach(c);
        rootless::release_root(c);
        sharing::release(c);
        barge_cgroups::release(&c.dir);
        // Our own runner mounts nothing on the host but the network
        // namespace and a shareable /dev/shm (gone above); an external runtime's rootfs mount is gone too.
        std::fs::remove_dir_all(&c.dir).map_err(io_err(format!("removing {}", c.dir.display())))
    }
}

/// The overlay lower directories of an image, topmost layer first, as
/// overlayfs wants them.
pub fn lower_dirs(store: &Store, image_id: &barge_oci::Digest) -> Result<Vec<PathBuf>, RuntimeError> {
    let details = store.image_details(image_id)?;
    let chains = chain_ids(&details.config.rootfs.diff_ids);
    for chain in &chains {
        if !store.has_snapshot(chain) {
            return Err(RuntimeError::MissingSnapshot(chain.to_string()));
        }
    }
    mount_dirs(store, &chains)
}

/// Image layers a container can have, as docker's overlay2 allows (the
/// container's own upper layer comes on top).
pub const MAX_LAYERS: usize = 127;

/// The lower directories for the snapshots `chains` (bottom first), topmost
/// first: the store's short links to them, so that the overlay options of
/// [`MAX_LAYERS`] layers fit the kernel's page-sized limit. More layers are
/// refused.
pub fn mount_dirs(store: &Store, chains: &[barge_oci::Digest]) -> Result<Vec<PathBuf>, RuntimeError> {
    if chains.len() > MAX_LAYERS {
        return Err(RuntimeError::TooManyLayers(chains.len()));
    }
    let mut dirs = chains
        .iter()
        .map(|c| Ok(store.root().join(store.snapshot_link(c)?)))
        .collect::<Result<Vec<_>, RuntimeError>>()?;
    dirs.reverse();
    Ok(dirs)
}

pub use barge_runner::overlay_options;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_without_snapshots_has_no_lower_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id: barge_oci::Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        assert!(matches!(
            lower_dirs(&store, &id),
            Err(RuntimeError::Store(StoreError::NoSuchImage(_)))
        ));
    }
}
