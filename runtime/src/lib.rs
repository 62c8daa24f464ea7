//! Containers from stored images: OCI runtime bundles and the namespaced
//! runner (`barge run`).
//!
//! So far this crate computes a container's root filesystem: the overlay of
//! an image's snapshots with a private upper directory. It is not for
//! pulling or storing images (`barge-store`, `barge-engine`), and it never
//! writes into a snapshot: snapshots are shared, read-only lower layers.

use barge_oci::image::chain_ids;
use barge_store::{Store, StoreError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("layer {0} of the image is not unpacked in the store; pull the image again")]
    MissingSnapshot(String),
    #[error("path {0:?} cannot be used in overlay mount options (it contains ',' or ':')")]
    UnsafePath(PathBuf),
}

/// The overlay lower directories of an image, topmost layer first, as
/// overlayfs wants them.
pub fn lower_dirs(store: &Store, image_id: &barge_oci::Digest) -> Result<Vec<PathBuf>, RuntimeError> {
    let details = store.image_details(image_id)?;
    let mut dirs = Vec::new();
    for chain in chain_ids(&details.config.rootfs.diff_ids) {
        if !store.has_snapshot(&chain) {
            return Err(RuntimeError::MissingSnapshot(chain.to_string()));
        }
        dirs.push(store.snapshot_fs(&chain));
    }
    dirs.reverse();
    Ok(dirs)
}

/// The `-o` options of an overlay mount. Paths with `,` or `:` are refused:
/// overlayfs would split them into other options or layers.
pub fn overlay_options(lowers: &[PathBuf], upper: Option<(&Path, &Path)>) -> Result<String, RuntimeError> {
    let check = |p: &Path| -> Result<String, RuntimeError> {
        let s = p.to_string_lossy();
        if s.contains(',') || s.contains(':') || s.contains('\\') {
            return Err(RuntimeError::UnsafePath(p.to_path_buf()));
        }
        Ok(s.into_owned())
    };
    let lower = lowers
        .iter()
        .map(|p| check(p))
        .collect::<Result<Vec<_>, _>>()?
        .join(":");
    let mut opts = format!("lowerdir={lower}");
    match upper {
        Some((upper, work)) => opts.push_str(&format!(",upperdir={},workdir={}", check(upper)?, check(work)?)),
        None => opts.insert_str(0, "ro,"),
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_for_read_only_and_writable_mounts() {
        let lowers = [PathBuf::from("/s/top/fs"), PathBuf::from("/s/base/fs")];
        assert_eq!(
            overlay_options(&lowers, None).unwrap(),
            "ro,lowerdir=/s/top/fs:/s/base/fs"
        );
        assert_eq!(
            overlay_options(&lowers, Some((Path::new("/c/upper"), Path::new("/c/work")))).unwrap(),
            "lowerdir=/s/top/fs:/s/base/fs,upperdir=/c/upper,workdir=/c/work"
        );
        assert!(matches!(
            overlay_options(&[PathBuf::from("/a:b")], None),
            Err(RuntimeError::UnsafePath(_))
        ));
        assert!(matches!(
            overlay_options(&[PathBuf::from("/a,upperdir=/etc")], None),
            Err(RuntimeError::UnsafePath(_))
        ));
    }

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
