//! What a fast container start does differently, through the real binary:
//! an `--rm` container's writable layer is mounted `volatile` (its unmount
//! does not sync the store's filesystem), one kept is not.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::Barge;

/// A store with a busybox image pulled; returns it with the image reference.
fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

/// The container's root mount as `/proc/mounts` shows it.
const ROOT_MOUNT: &str = "grep '^overlay / ' /proc/mounts";

#[test]
fn only_a_removed_container_gets_a_volatile_upper() {
    let Some((_reg, b, image)) = setup() else { return };
    // The kernel shows `volatile` (5.10) or `fsync=volatile` (6.x).
    let removed = b.ok(&["run", "--rm", &image, "sh", "-c", ROOT_MOUNT]);
    assert!(removed.contains("volatile"), "{removed}");
    let kept = b.ok(&["run", "--name", "kept", &image, "sh", "-c", ROOT_MOUNT]);
    assert!(kept.starts_with("overlay / "), "{kept}");
    assert!(!kept.contains("volatile"), "{kept}");
    // A kept container starts again on the same writable layer.
    b.ok(&["start", "kept"]);
}
