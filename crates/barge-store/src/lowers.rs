//! Reading an image through its snapshots, as overlayfs would show them:
//! the one owner of that logic (the store owns the snapshot format), for
//! the runtime (`/etc/passwd` for `-u NAME`) and the builder (`COPY`,
//! `RUN`'s changes, `--chown` owners).

use std::collections::VecDeque;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The xattrs that mark an opaque directory (root's and an unprivileged applier's).
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// Whether `path` carries one of the xattrs `names` (whatever its value).
pub fn has_xattr(path: &Path, names: &[&str]) -> bool {
    // Present whatever its value: a value too long for the buffer says so too.
    names.iter().any(|n| {
        let mut buf = [0u8; 64];
        matches!(
            rustix::fs::lgetxattr(path, *n, &mut buf[..]),
            Ok(_) | Err(rustix::io::Errno::RANGE)
        )
    })
}

/// Calls `f` with a buffer that grows until the answer fits (xattr names
/// and values: 64 KiB at most, as Linux allows).
fn with_buffer(mut f: impl FnMut(&mut [u8]) -> Result<usize, rustix::io::Errno>) -> Result<Vec<u8>, rustix::io::Errno> {
    let mut size = 1024;
    loop {
        let mut buf = vec![0u8; size];
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if size < 1 << 16 => size *= 4,
            Err(e) => return Err(e),
        }
    }
}

/// An entry's extended attributes but overlayfs' own (`trusted.overlay.*`,
/// `user.overlay.*`: they belong to the snapshot, not to the file), with
/// no link followed; none where the filesystem has none.
pub fn xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, rustix::io::Errno> {
    let names = match with_buffer(|b| rustix::fs::llistxattr(path, b)) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        let value = with_buffer(|b| rustix::fs::lgetxattr(path, name.as_str(), b))?;
        out.push((name, value));
    }
    Ok(out)
}

/// Whether `path` is an opaque directory: older layers show nothing below it.
pub fn is_opaque(path: &Path) -> bool {
    has_xattr(path, &OPAQUE_XATTRS)
}

/// Whether a snapshot entry is a whiteout (a 0:0 character device).
pub fn is_whiteout(md: &Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

/// An image's snapshot directories, topmost first.
pub struct Lowers {
    dirs: Vec<PathBuf>,
}

impl Lowers {
    pub fn new(dirs: Vec<PathBuf>) -> Lowers {
        Lowers { dirs }
    }

    /// Where `rel` (`a/b`, no leading `/`) is found, honouring whiteouts,
    /// opaque directories and files that hide directories; no link is
    /// followed, on the way or at the end.
    pub fn find(&self, rel: &str) -> Option<(PathBuf, Metadata)> {
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        if comps.is_empty() {
            return None;
        }
        for layer in &self.dirs {
            let mut cur = layer.clone();
            let mut stop_below = false;
            for (i, c) in comps.iter().enumerate() {
                cur.push(c);
                let Ok(md) = std::fs::symlink_metadata(&cur) else { break };
                if is_whiteout(&md) {
                    return None;
                }
                if i + 1 == comps.len() {
                    return Some((cur, md));
                }
                // A file (or a link) here hides whatever older layers have below this name.
                if !md.is_dir() {
                    return None;
                }
                if is_opaque(&cur) {
                    stop_below = true;
                }
            }
            if stop_below {
                return None;
            }
        }
        None
    }

    /// Everything below the directory `rel` (`""` for the root) as the
    /// image shows it: paths relative to `rel`, sorted, parents first,
    /// each with its topmost entry. No link is followed, on the way to
    /// `rel` or below it.
    pub fn walk(&self, rel: &str) -> Vec<(String, PathBuf, Metadata)> {
        let mut out = Vec::new();
        self.walk_into(rel, "", &mut out);
        out
    }

    fn walk_into(&self, base: &str, below: &str, out: &mut Vec<(String, PathBuf, Metadata)>) {
        let join = |a: &str, b: &str| match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_string(),
            (_, true) => a.to_string(),
            _ => format!("{a}/{b}"),
        };
        let dir = join(base, below);
        for name in self.names(&dir) {
            let rel = join(&dir, &name);
            let Some((path, md)) = self.find(&rel) else { continue };
            let is_dir = md.is_dir();
            out.push((join(below, &name), path, md));
            if is_dir {
                self.walk_into(base, &join(below, &name), out);
            }
        }
    }

    /// The names any layer has in the directory `rel`, sorted: candidates
    /// that [`Lowers::find`] then checks against whiteouts and opaque
    /// directories. A layer where a component of `rel` is not a directory
    /// (a link, a file) adds none.
    fn names(&self, rel: &str) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        'layers: for layer in &self.dirs {
            let mut cur = layer.clone();
            for c in rel.split('/').filter(|c| !c.is_empty()) {
                cur.push(c);
                match std::fs::symlink_metadata(&cur) {
                    Ok(md) if md.is_dir() => {}
                    _ => continue 'layers,
                }
            }
            if let Ok(entries) = std::fs::read_dir(&cur) {
                for e in entries.flatten() {
                    names.insert(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        names
    }

    /// The text of the regular file at `rel` as the image shows it, if it
    /// is one and under 4 MiB (`/etc/passwd`, `/etc/group`).
    pub fn read_file(&self, rel: &str) -> Option<String> {
        const MAX: u64 = 4 << 20;
        let (path, md) = self.find(rel)?;
        if !md.is_file() || md.len() >= MAX {
            return None;
        }
        let mut text = String::new();
        std::fs::File::open(path)
            .ok()?
            .take(MAX)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    }

    /// `path` with the image's links in it resolved inside its root, as
    /// docker places copied files (the last component too when `last`);
    /// `..` never climbs above the root. Returns it without a leading `/`.
    pub fn resolve(&self, path: &str, last: bool) -> String {
        let components = |p: &str| -> Vec<String> {
            p.split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .map(str::to_string)
                .collect()
        };
        let mut todo: VecDeque<String> = components(path).into();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                done.pop();
                continue;
            }
            let candidate = if done.is_empty() {
                c.clone()
            } else {
                format!("{}/{c}", done.join("/"))
            };
            let follow = last || !todo.is_empty();
            match self.find(&candidate) {
                Some((p, md)) if follow && md.file_type().is_symlink() && hops < 40 => {
                    hops += 1;
                    let target = std::fs::read_link(&p).unwrap_or_default();
                    let target = target.to_string_lossy();
                    if target.starts_with('/') {
                        done.clear();
                    }
                    for t in components(&target).into_iter().rev() {
                        todo.push_front(t);
                    }
                }
                _ => done.push(c),
            }
        }
        done.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_as_overlayfs_shows_them() {
        let d = tempfile::tempdir().unwrap();
        let (top, base) = (d.path().join("top"), d.path().join("base"));
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::write(base.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(base.join("etc/group"), "root:x:0:\n").unwrap();
        let lowers = Lowers::new(vec![top.clone(), base.clone()]);
        assert!(lowers.read_file("etc/passwd").unwrap().starts_with("root"));
        assert_eq!(lowers.read_file("etc/shadow"), None);
        if rustix::process::geteuid().is_root() {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                top.join("etc/group"),
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::empty(),
                0,
            )
            .unwrap();
            assert_eq!(lowers.read_file("etc/group"), None, "a whiteout hides it");
        }
    }

    /// The user variant: what an unprivileged applier writes (root may use either).
    fn mark_opaque(dir: &Path) {
        rustix::fs::setxattr(dir, "user.overlay.opaque", b"y", rustix::fs::XattrFlags::empty()).unwrap();
    }

    #[test]
    fn walks_show_the_merged_tree() {
        let d = tempfile::tempdir().unwrap();
        let (top, base) = (d.path().join("top"), d.path().join("base"));
        std::fs::create_dir_all(base.join("app/lib")).unwrap();
        std::fs::write(base.join("app/lib/old.so"), "old").unwrap();
        std::fs::write(base.join("app/keep"), "k").unwrap();
        std::fs::create_dir_all(top.join("app/lib")).unwrap();
        std::fs::write(top.join("app/lib/new.so"), "new").unwrap();
        std::fs::write(top.join("app/keep"), "k2").unwrap();
        let lowers = Lowers::new(vec![top.clone(), base.clone()]);
        let names = |rel: &str| -> Vec<String> { lowers.walk(rel).into_iter().map(|(r, _, _)| r).collect() };
        assert_eq!(names("app"), ["keep", "lib", "lib/new.so", "lib/old.so"]);
        assert_eq!(lowers.walk("app")[0].1, top.join("app/keep"), "the topmost entry");
        assert_eq!(names("").first().map(String::as_str), Some("app"));
        mark_opaque(&top.join("app/lib"));
        assert_eq!(names("app/lib"), ["new.so"], "an opaque directory hides older layers");
        // A link in the way is never followed.
        std::fs::remove_dir_all(top.join("app")).unwrap();
        std::os::unix::fs::symlink(d.path().join("base/app"), top.join("app")).unwrap();
        assert!(names("app").is_empty());
    }

    #[test]
    fn opaque_directories_and_links_hide_older_layers() {
        let d = tempfile::tempdir().unwrap();
        let (top, base) = (d.path().join("top"), d.path().join("base"));
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::write(base.join("etc/passwd"), "app:x:0:0::/:/bin/sh\n").unwrap();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        let lowers = Lowers::new(vec![top.clone(), base.clone()]);
        assert!(lowers.read_file("etc/passwd").is_some());
        mark_opaque(&top.join("etc"));
        assert_eq!(
            lowers.read_file("etc/passwd"),
            None,
            "an opaque /etc hides the stale file"
        );
        // /etc a link out of the layer: never followed on the host.
        std::fs::remove_dir_all(top.join("etc")).unwrap();
        let host = d.path().join("host");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("passwd"), "spy:x:4321:0::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(&host, top.join("etc")).unwrap();
        assert_eq!(lowers.read_file("etc/passwd"), None);
    }
}
