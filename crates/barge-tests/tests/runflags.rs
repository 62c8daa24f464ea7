//! docker 20.10's `exec -d` and `run --sysctl`, through the real binary.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::{stdout_of as out, wait_until, Barge};
use std::time::{Duration, Instant};

/// A store with a busybox image pulled; returns it with the image reference.
fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&[], &[], |_| {})
}

#[test]
fn exec_detached_returns_at_once_and_keeps_running() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&["run", "-d", "--name", "execd", &image, "sleep", "60"]);
    let begun = Instant::now();
    let o = b.run(&["exec", "-d", "execd", "sh", "-c", "echo noise; sleep 2; touch /done"]);
    let took = begun.elapsed();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(out(&o), "", "exec -d prints nothing");
    assert!(
        took < Duration::from_secs(2),
        "exec -d waited for the command: {took:?}"
    );
    assert!(
        !b.run(&["exec", "execd", "ls", "/done"]).status.success(),
        "the command had not finished yet"
    );
    wait_until("the detached command finishes inside the container", || {
        b.run(&["exec", "execd", "ls", "/done"]).status.success()
    });
    b.ok(&["rm", "-f", "execd"]);
}
