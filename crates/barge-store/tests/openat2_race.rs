//! `fsutil::openat2` inside a root while mounts happen elsewhere on the
//! host: the kernel answers `EAGAIN` to a `RESOLVE_IN_ROOT` walk through
//! `..` that a mount raced, and a caller that took that as a failure
//! refused a valid path (a hostile-bundle test failed in CI with "Resource
//! temporarily unavailable"). The helper asks again: without that, 16,052
//! of this test's 20,000 opens failed here.

use barge_store::fsutil::openat2;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[test]
fn opens_inside_a_root_survive_mounts_elsewhere() {
    if !barge_tests::require("running as root", barge_tests::is_root()) {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let root_dir = work.path().join("root");
    std::fs::create_dir_all(root_dir.join("a")).expect("root/a");
    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    let root = rustix::fs::open(
        &root_dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open root");
    // Each `..` is a point where the kernel checks for a racing mount.
    let path = format!("{}a/", "../".repeat(50)).repeat(20);

    let stop = Arc::new(AtomicBool::new(false));
    let mounter = {
        let (stop, mnt) = (stop.clone(), mnt.clone());
        std::thread::spawn(move || {
            let mut mounts = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if rustix::mount::mount("x", &mnt, "tmpfs", rustix::mount::MountFlags::empty(), None).is_ok() {
                    mounts += 1;
                    let _ = rustix::mount::unmount(&mnt, rustix::mount::UnmountFlags::empty());
                }
            }
            mounts
        })
    };
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let mut failed = Vec::new();
    for _ in 0..20_000 {
        if let Err(e) = openat2(&root, &path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), how) {
            failed.push(e);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mounts = mounter.join().expect("mounter");
    assert!(mounts > 100, "the race needs mounts beside the opens: {mounts}");
    assert!(
        failed.is_empty(),
        "{} of 20000 opens failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
}
