//! `--rm` containers: their root overlay is `volatile` (the kernel does not
//! sync the upper directory's filesystem when they exit), and the mark such
//! a mount leaves in the work directory does not stop the same container
//! from being mounted again.

use barge_tests::image::busybox_store;

#[test]
fn an_rm_containers_root_is_volatile_and_mounts_again() {
    let Some((_reg, b, image)) = busybox_store(&[], &[], |_| {}) else {
        return;
    };
    // The root's line of mountinfo ends with the overlay's options.
    let root_line = "grep ' / / ' /proc/self/mountinfo";
    let rm = b.sh(&image, &["--network", "none"], root_line);
    assert!(rm.contains("overlay") && rm.contains("volatile"), "{rm}");
    let kept = b.ok(&[
        "run",
        "--name",
        "kept",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        root_line,
    ]);
    assert!(kept.contains("overlay") && !kept.contains("volatile"), "{kept}");

    // What a previous volatile mount of this root left (a start that
    // barge did not see to its end): the kernel refuses to mount the
    // work directory again unless the mark is cleared.
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
