//! The OCI runtime validation suite (opencontainers/runtime-tools, built
//! from `third_party/` against Debian's Go packages by
//! `tests/oci-validation.sh`) against barge-runtime: every program on the
//! recorded pass list (`tests/oci-validation.pass`) must still pass, so
//! the list can grow but never shrink. `docs/oci-validation.md` has the
//! whole table, with runc beside it.

use barge_tests::{barge_bin, require, require_root_and};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn recorded_pass_list_still_passes() {
    if !require_root_and(&["go", "busybox", "tar", "timeout"]) {
        return;
    }
    let gocode = Path::new("/usr/share/gocode/src/github.com/opencontainers/runtime-tools/generate");
    if !require("golang-github-opencontainers-runtime-tools-dev", gocode.is_dir()) {
        return;
    }
    let pass_list = repo().join("tests/oci-validation.pass");
    let listed = std::fs::read_to_string(&pass_list).expect("tests/oci-validation.pass");
    let names: Vec<&str> = listed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(names.len() >= 15, "the pass list lost entries: {names:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = dir.path().join("barge-runtime");
    std::os::unix::fs::symlink(barge_bin(), &runtime).expect("link barge-runtime");
    let out = Command::new("bash")
        .arg(repo().join("tests/oci-validation.sh"))
        .arg("--runtime")
        .arg(&runtime)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--check")
        .arg(&pass_list)
        .args(&names)
        .output()
        .expect("running tests/oci-validation.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "programs on the pass list failed:\n{stdout}\n{stderr}"
    );
    for name in &names {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("{name} pass "))),
            "{name} not reported as passing:\n{stdout}"
        );
    }
}
