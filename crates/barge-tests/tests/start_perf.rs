//! What a fast container start does differently, through the real binary:
//! an `--rm` container's writable layer is mounted `volatile` (its unmount
//! does not sync the store's filesystem), one kept is not, and the mark a
//! volatile mount leaves does not stop a root from being mounted again; on
//! a bridge the exited container's veth goes with its namespace, and its
//! address stays taken while the veth is there.

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
    let removed = b.ok(&["run", "--rm", "--network", "none", &image, "sh", "-c", ROOT_MOUNT]);
    assert!(removed.contains("volatile"), "{removed}");
    let kept = b.ok(&[
        "run",
        "--name",
        "kept",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        ROOT_MOUNT,
    ]);
    assert!(kept.starts_with("overlay / "), "{kept}");
    assert!(!kept.contains("volatile"), "{kept}");
    // A kept container starts again on the same writable layer.
    b.ok(&["start", "kept"]);

    // What a previous volatile mount of a root left (a start that barge
    // did not see to its end): the kernel refuses to mount the work
    // directory again unless the mark is cleared.
    let id = b
        .ok(&["create", "--rm", "--network", "none", &image, "echo", "again"])
        .trim()
        .to_string();
    let mark = b
        .root()
        .join("containers")
        .join(&id)
        .join("work/work/incompat/volatile");
    std::fs::create_dir_all(&mark).expect("the mark of a volatile mount");
    assert_eq!(b.ok(&["start", "-a", &id]), "again\n");
}

#[test]
fn an_address_stays_taken_while_a_removed_containers_veth_is_there() {
    let Some((_reg, b, image)) = setup() else { return };
    let leases = std::path::Path::new("/run/barge/leases/barge0");
    let address = |b: &Barge| {
        let out = b.ok(&["run", "--rm", &image, "sh", "-c", "ip -o -4 addr show eth0"]);
        let inet = out
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .unwrap_or_default();
        inet.split('/').next().unwrap_or_default().to_string()
    };
    // The veths of containers gone before are gone too (the kernel deletes
    // them with their namespaces), so the first free address stays first.
    let veth_left = || {
        std::fs::read_dir(leases).into_iter().flatten().flatten().any(|e| {
            std::fs::read_to_string(e.path())
                .ok()
                .and_then(|h| h.strip_prefix("veth:").map(str::to_string))
                .is_some_and(|veth| std::path::Path::new("/sys/class/net").join(veth).exists())
        })
    };
    let first = address(&b);
    assert!(first.starts_with("10.222."), "{first}");
    barge_tests::wait_until("the removed containers' veths to go", || !veth_left());
    let first = address(&b);
    // Held by a link that exists (`lo`): not leased again.
    std::fs::write(leases.join(&first), "veth:lo").unwrap();
    assert_ne!(address(&b), first);
    // Held by a link that is gone: free.
    std::fs::write(leases.join(&first), "veth:bargegone0").unwrap();
    barge_tests::wait_until("the removed containers' veths to go", || !veth_left());
    assert_eq!(address(&b), first);
}
