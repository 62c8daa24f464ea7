//! Volumes, as docker 20.10's `local` driver keeps them: a volume is
//! `<root>/volumes/<name>/_data` (what containers see) beside its record
//! `<root>/volumes/<name>/volume.json` (labels, options, creation time),
//! written atomically. Also the grammar of `-v`, `--mount` and `--tmpfs`,
//! checked before any image is pulled, and what `create` does with it:
//! volumes made on first use, a new one filled from the image, the
//! image's `VOLUME`s given anonymous volumes.
//!
//! Volume names are hostile input (`../x`, `a/b`): only docker's
//! `[a-zA-Z0-9][a-zA-Z0-9_.-]+` is taken. A volume whose directory or
//! `_data` is not a plain directory (replaced by a link) is refused, never
//! followed.

mod grammar;
mod populate;

pub(crate) use grammar::resolve;
pub use grammar::{parse_all, parse_mount, parse_tmpfs, parse_v};
pub(crate) use populate::check_sources;

use crate::container::Container;
use crate::{Runtime, RuntimeError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What a container mount is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

impl MountKind {
    pub fn is_bind(&self) -> bool {
        *self == MountKind::Bind
    }

    /// docker's name: `bind`, `volume`, `tmpfs`.
    pub fn as_str(&self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Volume => "volume",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

/// Which flag asked for a mount (inspect shows them apart).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `-v` (HostConfig.Binds).
    #[default]
    Flag,
    /// `--mount` (HostConfig.Mounts).
    Mount,
    /// `--tmpfs` (HostConfig.Tmpfs).
    Tmpfs,
    /// The image's `VOLUME` (Config.Volumes).
    Image,
}

impl Origin {
    pub fn is_flag(&self) -> bool {
        *self == Origin::Flag
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    BadName(String),
    #[error("No such volume: {0}")]
    NoSuchVolume(String),
    #[error("remove {name}: volume is in use - [{}]", users.join(", "))]
    InUse { name: String, users: Vec<String> },
    #[error("plugin \"{0}\" not found: barge has only the local volume driver")]
    Driver(String),
    #[error("volume {name}: {} is not a plain directory (a link or another file); refusing to use it, remove the volume", path.display())]
    NotADirectory { name: String, path: PathBuf },
    /// A `-v`, `--mount` or `--tmpfs` value that cannot be used.
    #[error("{0}")]
    Spec(String),
    #[error("Duplicate mount point: {0}")]
    Duplicate(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Record(#[from] barge_records::RecordError),
}

pub(crate) fn vio(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VolumeError {
    let context = context.into();
    move |source| VolumeError::Io { context, source }
}

/// A volume's record (`volume.json`), with docker's inspect names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeRecord {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "CreatedAt")]
    pub created: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "Labels")]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "Options")]
    pub options: BTreeMap<String, String>,
    /// Made for `-v /path` or an image's `VOLUME`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
}

const RECORD: &str = "volume.json";
const DATA: &str = "_data";

/// The volumes of a store: `<root>/volumes/`.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

/// Whether `path` is a directory itself, not a link to one.
pub(crate) fn plain_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir())
}

impl Volumes {
    pub fn new(store_root: &Path) -> Volumes {
        Volumes {
            dir: store_root.join("volumes"),
        }
    }

    /// `<root>/volumes/<name>/_data`, as docker's `Mountpoint`.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(DATA)
    }

    /// The volume's `_data`, checked: the volume's directory and `_data`
    /// are directories, not links (a link there would send the mount or
    /// a copy elsewhere on the host).
    pub fn data_dir(&self, name: &str) -> Result<PathBuf, VolumeError> {
        check_name(name)?;
        for path in [self.dir.clone(), self.dir.join(name), self.mountpoint(name)] {
            if !plain_dir(&path) {
                if std::fs::symlink_metadata(&path).is_err() {
                    return Err(VolumeError::NoSuchVolume(name.to_string()));
                }
                return Err(VolumeError::NotADirectory {
                    name: name.to_string(),
                    path,
                });
            }
        }
        Ok(self.mountpoint(name))
    }

    /// Makes the volume `name` (a random 64-hex name when `None`), or
    /// returns the one there is, as docker's `volume create` does. The
    /// second value says whether it was made now.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: &str,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<(VolumeRecord, bool), VolumeError> {
        if driver != "local" {
            return Err(VolumeError::Driver(driver.to_string()));
        }
        let name = match name {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => barge_records::new_id(),
        };
        if !self.dir.exists() {
            std::fs::create_dir_all(&self.dir).map_err(vio(format!("creating {}", self.dir.display())))?;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(vio(format!("setting the mode of {}", self.dir.display())))?;
        }
        if let Ok(existing) = self.get(&name) {
            return Ok((existing, false));
        }
        let vdir = self.dir.join(&name);
        for d in [&vdir, &self.mountpoint(&name)] {
            match std::fs::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(vio(format!("creating {}", d.display()))(e)),
            }
        }
        self.data_dir(&name)?;
        std::fs::set_permissions(self.mountpoint(&name), std::fs::Permissions::from_mode(0o755))
            .map_err(vio(format!("setting the mode of {}", self.mountpoint(&name).display())))?;
        let record = VolumeRecord {
            name: name.clone(),
            created: crate::now_rfc3339(),
            driver: "local".into(),
            labels,
            options: BTreeMap::new(),
            anonymous,
        };
        barge_records::write_json(&vdir.join(RECORD), &record)?;
        Ok((record, true))
    }

    /// The volume `name`'s record.
    pub fn get(&self, name: &str) -> Result<VolumeRecord, VolumeError> {
        check_name(name)?;
        let path = self.dir.join(name).join(RECORD);
        if !plain_dir(&self.dir.join(name)) || !path.exists() {
            return Err(VolumeError::NoSuchVolume(name.to_string()));
        }
        Ok(barge_records::read_json(&path)?)
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<VolumeRecord>, VolumeError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(vio(format!("listing {}", self.dir.display()))(e)),
        };
        let mut out: Vec<VolumeRecord> = rd
            .flatten()
            .filter_map(|e| self.get(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Bytes in the volume (links not followed).
    pub fn size(&self, name: &str) -> u64 {
        barge_store::fsutil::du(&self.mountpoint(name))
    }

    /// Deletes the volume's files. Callers check it is unused.
    pub(crate) fn delete(&self, name: &str) -> Result<(), VolumeError> {
        check_name(name)?;
        let vdir = self.dir.join(name);
        // The record first: a half-removed volume is no longer listed.
        match std::fs::remove_file(vdir.join(RECORD)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(vio(format!("removing {}", vdir.display()))(e)),
        }
        barge_store::fsutil::remove_tree(&vdir).map_err(vio(format!("removing {}", vdir.display())))
    }
}

/// docker's rule for volume names; `../x`, `a/b` and `.x` are refused.
pub fn check_name(name: &str) -> Result<(), VolumeError> {
    if barge_records::valid_name(name) {
        Ok(())
    } else {
        Err(VolumeError::BadName(name.to_string()))
    }
}

impl Runtime {
    /// The store's volumes.
    pub fn volumes(&self) -> Volumes {
        Volumes::new(self.store.root())
    }

    /// IDs of the containers of `all` that mount the volume `name`.
    pub fn users_of(all: &[Container], name: &str) -> Vec<String> {
        all.iter()
            .filter(|c| {
                c.meta
                    .volumes
                    .iter()
                    .any(|m| m.kind == MountKind::Volume && m.name.as_deref() == Some(name))
            })
            .map(|c| c.meta.id.clone())
            .collect()
    }

    /// IDs of the containers (any state) that use the volume `name`.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>, RuntimeError> {
        Ok(Self::users_of(&self.list()?, name))
    }

    /// `volume rm`: refused while a container (any state) uses it.
    pub fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        let _lock = self.lock()?;
        let volumes = self.volumes();
        volumes.get(name)?;
        let users = self.volume_users(name)?;
        if !users.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                users,
            }
            .into());
        }
        Ok(volumes.delete(name)?)
    }

    /// `volume prune`: every volume no container uses that `selected`
    /// accepts; returns the names removed and the bytes they held.
    pub fn prune_volumes(&self, selected: &dyn Fn(&VolumeRecord) -> bool) -> Result<(Vec<String>, u64), RuntimeError> {
        let _lock = self.lock()?;
        let all = self.list()?;
        let volumes = self.volumes();
        let (mut removed, mut bytes) = (Vec::new(), 0);
        for v in volumes.list()? {
            if !selected(&v) || !Self::users_of(&all, &v.name).is_empty() {
                continue;
            }
            let size = volumes.size(&v.name);
            volumes.delete(&v.name)?;
            removed.push(v.name);
            bytes += size;
        }
        Ok((removed, bytes))
    }

    /// `rm -v` (and `--rm`): the container's anonymous volumes that no
    /// other container uses; named volumes stay. Call after the
    /// container's own removal.
    pub fn remove_anonymous_volumes(&self, c: &Container) -> Result<(), RuntimeError> {
        let _lock = self.lock()?;
        let all = self.list()?;
        let volumes = self.volumes();
        for m in c
            .meta
            .volumes
            .iter()
            .filter(|m| m.kind == MountKind::Volume && m.anonymous)
        {
            let Some(name) = &m.name else { continue };
            let others: Vec<String> = Self::users_of(&all, name)
                .into_iter()
                .filter(|id| *id != c.meta.id)
                .collect();
            if others.is_empty() && volumes.get(name).is_ok() {
                volumes.delete(name)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_on_disk() {
        let d = tempfile::tempdir().unwrap();
        let vols = Volumes::new(d.path());
        let (r, new) = vols
            .create(Some("web"), "local", BTreeMap::from([("a".into(), "1".into())]), false)
            .unwrap();
        assert!(new && r.name == "web");
        let (again, new) = vols.create(Some("web"), "local", BTreeMap::new(), false).unwrap();
        assert!(!new && again.labels["a"] == "1");
        let (anon, _) = vols.create(None, "local", BTreeMap::new(), true).unwrap();
        assert_eq!(anon.name.len(), 64);
        assert_eq!(vols.list().unwrap().len(), 2);
        assert!(matches!(
            vols.create(Some("x"), "nfs", BTreeMap::new(), false),
            Err(VolumeError::Driver(_))
        ));
        assert!(matches!(vols.get("../web"), Err(VolumeError::BadName(_))));
        // _data replaced by a link: refused, not followed.
        std::fs::remove_dir(vols.mountpoint("web")).unwrap();
        std::os::unix::fs::symlink("/etc", vols.mountpoint("web")).unwrap();
        assert!(matches!(vols.data_dir("web"), Err(VolumeError::NotADirectory { .. })));
        vols.delete("web").unwrap();
        assert!(Path::new("/etc/passwd").exists());
        assert!(matches!(vols.get("web"), Err(VolumeError::NoSuchVolume(_))));
    }
}
