//! Looking at the image being built (its layers, in overlay form), at the
//! build context, and at what a `RUN` changed (a container's upper dir).

use crate::layer::{LayerWriter, Owner, Special};
use crate::BuildError;
use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use barge_store::lowers::{has_xattr, is_opaque, is_whiteout, Lowers};

/// Upper-dir features a layer cannot express: refuse rather than lose data.
const UNSUPPORTED_XATTRS: [&str; 4] = [
    "trusted.overlay.redirect",
    "user.overlay.redirect",
    "trusted.overlay.metacopy",
    "user.overlay.metacopy",
];

/// A file's extended attributes but overlayfs' own, for its layer entry.
fn xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, BuildError> {
    barge_store::lowers::xattrs(path).map_err(|e| BuildError::Io {
        context: format!("reading the extended attributes of {}", path.display()),
        source: e.into(),
    })
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
    let context = context.into();
    move |source| BuildError::Io { context, source }
}

/// Normalises an absolute path inside the image: no `.`, `..` resolved
/// lexically, no leading `/` (`/a/./b/../c` → `a/c`).
pub fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.join("/")
}

pub fn owner(md: &Metadata) -> Owner {
    Owner {
        uid: md.uid() as u64,
        gid: md.gid() as u64,
        mode: md.mode() & 0o7777,
    }
}

/// Writes one filesystem object found at `src` as `dest` in the layer.
/// Returns false for what layers cannot hold (sockets).
pub fn write_entry(
    w: &mut LayerWriter,
    src: &Path,
    md: &Metadata,
    dest: &str,
    o: Owner,
    hardlinks: &mut HashMap<(u64, u64), String>,
) -> Result<bool, BuildError> {
    let ft = md.file_type();
    w.entry_time(md.mtime());
    let fail = io_err(format!("adding {} to the layer", src.display()));
    if ft.is_dir() {
        w.dir(dest, o).map_err(fail)?;
    } else if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(io_err(format!("reading the link {}", src.display())))?;
        w.symlink(dest, &target.to_string_lossy(), o).map_err(fail)?;
    } else if ft.is_file() {
        if md.nlink() > 1 {
            if let Some(first) = hardlinks.get(&(md.dev(), md.ino())) {
                w.hardlink(dest, first, o).map_err(fail)?;
                return Ok(true);
            }
            hardlinks.insert((md.dev(), md.ino()), dest.to_string());
        }
        let f = std::fs::File::open(src).map_err(io_err(format!("opening {}", src.display())))?;
        w.file(dest, o, md.len(), f).map_err(fail)?;
    } else if ft.is_char_device() || ft.is_block_device() {
        let (ma, mi) = (rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()));
        let kind = if ft.is_char_device() {
            Special::Char(ma, mi)
        } else {
            Special::Block(ma, mi)
        };
        w.special(dest, kind, o).map_err(fail)?;
    } else if ft.is_fifo() {
        w.special(dest, Special::Fifo, o).map_err(fail)?;
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// Every path below `dir` (relative to it), sorted, depth first; `keep`
/// decides on each relative path, and a refused directory is not entered.
pub fn walk(dir: &Path, keep: &dyn Fn(&str, &Metadata) -> bool) -> Result<Vec<(String, Metadata)>, BuildError> {
    fn inner(
        base: &Path,
        rel: &str,
        keep: &dyn Fn(&str, &Metadata) -> bool,
        out: &mut Vec<(String, Metadata)>,
    ) -> Result<(), BuildError> {
        let here = if rel.is_empty() {
            base.to_path_buf()
        } else {
            base.join(rel)
        };
        let mut names: Vec<String> = std::fs::read_dir(&here)
            .map_err(io_err(format!("listing {}", here.display())))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let md = std::fs::symlink_metadata(base.join(&r)).map_err(io_err(format!("reading {}", r)))?;
            if !keep(&r, &md) {
                continue;
            }
            let is_dir = md.is_dir();
            out.push((r.clone(), md));
            if is_dir {
                inner(base, &r, keep, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    inner(dir, "", keep, &mut out)?;
    Ok(out)
}

/// Mount points the runtime creates in a container's root when the image
/// lacks them; they are not part of what a `RUN` did.
const RUNTIME_MOUNT_POINTS: [&str; 6] = ["dev", "proc", "sys", "etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// Writes what a `RUN` changed, from its container's upper dir: new and
/// changed files, whiteouts for deletions, opaque markers for replaced
/// directories.
pub fn diff_upper(upper: &Path, lowers: &Lowers, w: &mut LayerWriter) -> Result<(), BuildError> {
    let mut entries = walk(upper, &|rel, md| {
        let empty = (md.is_dir()
            && std::fs::read_dir(upper.join(rel))
                .map(|mut d| d.next().is_none())
                .unwrap_or(false))
            || (md.is_file() && md.len() == 0);
        !(RUNTIME_MOUNT_POINTS.contains(&rel) && empty && lowers.find(rel).is_none())
    })?;
    // `/etc` made only to hold those mount points.
    if lowers.find("etc").is_none() && !entries.iter().any(|(r, _)| r.starts_with("etc/")) {
        entries.retain(|(r, _)| r != "etc");
    }
    let mut hardlinks = HashMap::new();
    for (rel, md) in entries {
        let path = upper.join(&rel);
        if is_whiteout(&md) {
            w.whiteout(&rel).map_err(io_err("writing a whiteout"))?;
            continue;
        }
        if has_xattr(&path, &UNSUPPORTED_XATTRS) {
            return Err(BuildError::Unsupported(format!(
                "/{rel} was renamed or copied up as metadata only by overlayfs (redirect_dir/metacopy); \
                 turn those overlay features off to build with RUN"
            )));
        }
        if !md.file_type().is_symlink() {
            w.xattrs(&xattrs(&path)?)
                .map_err(io_err("writing extended attributes"))?;
        }
        write_entry(w, &path, &md, &rel, owner(&md), &mut hardlinks)?;
        if md.is_dir() && is_opaque(&path) {
            w.opaque(&rel).map_err(io_err("writing an opaque marker"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean("/a/./b/../c/"), "a/c");
        assert_eq!(clean("/../../x"), "x");
        assert_eq!(clean("/"), "");
    }

    /// Entry names of a layer file, each with its PAX xattr keys.
    fn entries(w: LayerWriter) -> Vec<(String, Vec<String>)> {
        let (f, _, _) = w.finish().unwrap().blob.unwrap();
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(f.path()).unwrap());
        let mut ar = tar::Archive::new(gz);
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let keys = e
                    .pax_extensions()
                    .unwrap()
                    .map(|x| x.map(|x| x.unwrap().key().unwrap().to_string()).collect())
                    .unwrap_or_default();
                (e.path().unwrap().display().to_string(), keys)
            })
            .collect()
    }

    #[test]
    fn an_upper_dir_becomes_a_layer() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let (upper, lower) = (d.path().join("upper"), d.path().join("lower"));
        for p in [
            "upper/data",
            "upper/etc",
            "upper/proc",
            "upper/opaque",
            "lower/etc/old",
            "lower/opaque/x",
        ] {
            std::fs::create_dir_all(d.path().join(p)).unwrap();
        }
        std::fs::write(upper.join("data/f"), "new").unwrap();
        std::fs::write(upper.join("etc/hosts"), "").unwrap();
        let cdev = |p: &Path| {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                p,
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::empty(),
                0,
            )
            .unwrap()
        };
        cdev(&upper.join("etc/old"));
        rustix::fs::setxattr(
            upper.join("opaque"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let user_xattrs = rustix::fs::setxattr(
            upper.join("data/f"),
            "user.barge",
            b"1",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok();
        let mut w = LayerWriter::to_file(d.path(), 0).unwrap();
        diff_upper(&upper, &Lowers::new(vec![lower]), &mut w).unwrap();
        let got = entries(w);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "data/",
                "data/f",
                "etc/",
                "etc/.wh.old",
                "opaque/",
                "opaque/.wh..wh..opq"
            ],
            "the runtime's /proc and /etc/hosts mount points are left out"
        );
        if user_xattrs {
            assert_eq!(got[1].1, ["SCHILY.xattr.user.barge"]);
        }
        assert!(got[4].1.is_empty(), "overlay's own xattrs stay out");
    }

    #[test]
    fn lowers_follow_symlinks_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let (top, base) = (d.path().join("top"), d.path().join("base"));
        std::fs::create_dir_all(base.join("usr/bin")).unwrap();
        std::fs::create_dir_all(&top).unwrap();
        std::os::unix::fs::symlink("usr/bin", top.join("bin")).unwrap();
        std::os::unix::fs::symlink("/../../etc", top.join("escape")).unwrap();
        let l = Lowers::new(vec![top, base]);
        assert_eq!(l.resolve("/bin/tool", false), "usr/bin/tool");
        assert_eq!(l.resolve("/bin", false), "bin");
        assert_eq!(l.resolve("/bin", true), "usr/bin");
        assert_eq!(l.resolve("/escape/passwd", false), "etc/passwd", "never above the root");
        assert!(l.find("usr/bin").unwrap().1.is_dir());
        assert!(l.find("nothing").is_none());
    }
}
