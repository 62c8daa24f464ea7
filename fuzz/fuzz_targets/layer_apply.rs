//! The layer applier on hostile tar streams (plain, or gzip when the input
//! starts with gzip's magic): whatever the stream holds, it is applied into
//! `<scratch>/root` or refused, and afterwards nothing outside `root` has
//! changed, `root` is still a directory, no file inside is a hard link to a
//! file outside, and no file descriptor is left open.
//!
//! Runs the unprivileged applier (no ownership changes, no device nodes), so
//! fuzzing as root changes nothing on the host outside the scratch directory.
#![no_main]

use barge_store::apply::{apply_tar, ApplyOptions};
use barge_store::Gunzip;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SENTINEL: &[u8] = b"outside the layer root\n";

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("barge-fuzz-apply-{}", std::process::id()));
        remove_tree(&base);
        fs::create_dir_all(base.join("outside")).unwrap_or_else(|e| panic!("creating {}: {e}", base.display()));
        fs::write(base.join("outside/sentinel"), SENTINEL).unwrap_or_else(|e| panic!("writing the sentinel: {e}"));
        base
    })
}

fuzz_target!(|data: &[u8]| {
    let base = scratch();
    let root = base.join("root");
    remove_tree(&root);
    fs::create_dir(&root).unwrap_or_else(|e| panic!("creating {}: {e}", root.display()));
    let fds_before = open_fds();

    let reader: Box<dyn Read> = if data.starts_with(&[0x1f, 0x8b]) {
        Box::new(Gunzip::new(data))
    } else {
        Box::new(data)
    };
    let _ = apply_tar(reader, &root, ApplyOptions::unprivileged());

    assert_eq!(open_fds(), fds_before, "the applier leaked file descriptors");
    let mut names: Vec<_> = fs::read_dir(base)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.map(|e| e.file_name()).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["outside", "root"],
        "the layer created something next to its root"
    );
    let outside: Vec<_> = fs::read_dir(base.join("outside"))
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.map(|e| e.file_name()).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(outside, ["sentinel"], "the layer wrote outside its root");
    let sentinel = base.join("outside/sentinel");
    let st = fs::symlink_metadata(&sentinel).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        st.is_file() && st.nlink() == 1,
        "the layer linked to a file outside its root"
    );
    assert_eq!(fs::read(&sentinel).unwrap_or_else(|e| panic!("{e}")), SENTINEL);
    assert!(fs::symlink_metadata(&root).unwrap_or_else(|e| panic!("{e}")).is_dir());

    // Every non-directory's link count is the number of its names in the tree.
    let mut names_of: HashMap<(u64, u64), (u64, u64)> = HashMap::new();
    walk(&root, &mut |_, m| {
        if !m.is_dir() {
            names_of.entry((m.dev(), m.ino())).or_insert((m.nlink(), 0)).1 += 1;
        }
    });
    for (nlink, seen) in names_of.values() {
        assert_eq!(nlink, seen, "a file in the layer has links outside it");
    }
});

/// Calls `f` for every entry below `dir`, never following symlinks.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &fs::Metadata)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(m) = fs::symlink_metadata(&path) else {
            continue;
        };
        f(&path, &m);
        if m.is_dir() {
            walk(&path, f);
        }
    }
}

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Removes a tree the layer left, directories without write or search
/// permission included (they make no difference to root, but do otherwise).
fn remove_tree(path: &Path) {
    if fs::symlink_metadata(path).is_err() {
        return;
    }
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    walk(path, &mut |p, m| {
        if m.is_dir() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
        }
    });
    fs::remove_dir_all(path).unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
}
