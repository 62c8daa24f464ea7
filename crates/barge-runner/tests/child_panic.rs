//! A panic in a forked child's setup never unwinds into the code the child
//! copied from its parent: it becomes exit 125 with a message on the error
//! pipe, and no destructor of the parent's frames runs in the child (one of
//! them could be a cgroup guard that removes the container's cgroup).
//!
//! Alone in its own test binary: it forks, and the fewer threads the
//! harness has then, the better.

use barge_runner::process::{parse_failure, run_child};
use barge_runner::sys::{fork, Forked};
use std::io::Read;
use std::path::PathBuf;

/// Creates its file when dropped: proof that a destructor ran.
struct Guard(PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, b"dropped");
    }
}

#[test]
fn a_panicking_child_exits_125_and_runs_no_parent_destructor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("dropped");
    let (err_read, err_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
    let guard = Guard(marker.clone());
    match fork().expect("fork") {
        Forked::Child => {
            drop(err_read);
            run_child(err_write, || panic!("made to fail"));
        }
        Forked::Parent { child } => {
            drop(err_write);
            let mut msg = String::new();
            std::fs::File::from(err_read)
                .read_to_string(&mut msg)
                .expect("read the error pipe");
            let pid = rustix::process::Pid::from_raw(child).expect("pid");
            let status = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                .expect("waitpid")
                .expect("a status");
            assert_eq!(status.1.exit_status(), Some(125), "the child's exit status");
            let (code, message) = parse_failure(msg.clone());
            assert_eq!(code, 125, "{msg:?}");
            assert!(message.contains("failed unexpectedly"), "{msg:?}");
            assert!(!marker.exists(), "a destructor of the parent's frame ran in the child");
            drop(guard);
            assert!(marker.exists(), "the guard works");
        }
    }
}
