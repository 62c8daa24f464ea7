//! barge's embedded OCI runner: what happens between `clone` (or `fork`)
//! and `execve` of a container process, and every raw system call barge
//! makes.
//!
//! [`child`] is a container's first process: new namespaces, the overlay
//! root and the bundle's mounts, masks, `pivot_root`, then the [`process`]
//! plan (rlimits, user, capabilities, `no_new_privs`, the [`seccomp`]
//! filter) and `execve`. [`exec`] is `barge exec`'s process joining a
//! running container. [`terminal`] passes a pty opened inside back out;
//! [`sealed`] keeps `/proc/PID/exe` unwritable (CVE-2019-5736) and holds
//! `--init`'s program (`init/init.c`, built by `build.rs`). [`spec`] is
//! the bundle's `config.json` this crate executes. [`sys`] holds the
//! system calls rustix does not wrap, and the mount calls behind a trait
//! ([`sys::mounts::Mounts`]) so that the mount plan is unit-tested without
//! root; it is the only place of `unsafe` in this crate outside tests, and
//! in barge's runtime besides two calls of `barge-network`.
//!
//! It is not for containers as barge records them (`barge-runtime`: it
//! hands this crate plain data and descriptors), cgroups (`barge-cgroups`:
//! this crate only writes PIDs to the `cgroup.procs` files it is given) or
//! networks (`barge-network`: the child joins the namespace it is given).

pub mod caps;
pub mod child;
pub mod exec;
pub mod process;
pub mod sealed;
pub mod seccomp;
pub mod spec;
pub mod sys;
pub mod terminal;
pub mod userns;

pub use process::{ChildIo, ProcessPlan, Started};

use std::ffi::CString;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// A bundle (or a string of it) this runner cannot execute.
    #[error("container records are damaged: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Capability(#[from] caps::UnknownCapability),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("path {0:?} cannot be used in overlay mount options (it contains ',' or ':')")]
    UnsafePath(PathBuf),
    /// The kernel reads at most a page of mount options.
    #[error("the overlay mount options are {0} bytes, more than the kernel's limit of {MAX_OPTIONS}: the image has too many layers or the store's path is too long")]
    OptionsTooLong(usize),
    /// A bundle section `oci-spec` refused to build.
    #[error("the bundle's config: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    /// The child failed before `execve`: docker's exit status and why.
    #[error("the process did not start: {message}")]
    Start { code: i32, message: String },
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunnerError {
    let context = context.into();
    move |source| RunnerError::Io { context, source }
}

pub(crate) fn cstr(s: impl AsRef<[u8]>) -> Result<CString, RunnerError> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| RunnerError::Corrupt("a string in the bundle contains a NUL byte".into()))
}

/// The `-o` options of an overlay mount. Paths with `,` or `:` are refused:
/// overlayfs would split them into other options or layers.
pub fn overlay_options(lowers: &[PathBuf], upper: Option<(&Path, &Path)>) -> Result<String, RunnerError> {
    let check = |p: &Path| -> Result<String, RunnerError> {
        let s = p.to_string_lossy();
        if s.contains(',') || s.contains(':') || s.contains('\\') {
            return Err(RunnerError::UnsafePath(p.to_path_buf()));
        }
        Ok(s.into_owned())
    };
    let lower = lowers
        .iter()
        .map(|p| check(p))
        .collect::<Result<Vec<_>, _>>()?
        .join(":");
    let mut opts = format!("lowerdir={lower}");
    match upper {
        Some((upper, work)) => opts.push_str(&format!(",upperdir={},workdir={}", check(upper)?, check(work)?)),
        None => opts.insert_str(0, "ro,"),
    }
    check_options_len(opts.as_bytes())?;
    Ok(opts)
}

/// The longest overlay option string mounted: `mount(2)` copies one page
/// (4 KiB at least) of options, NUL included.
pub const MAX_OPTIONS: usize = 4095;

pub(crate) fn check_options_len(opts: &[u8]) -> Result<(), RunnerError> {
    if opts.len() > MAX_OPTIONS {
        return Err(RunnerError::OptionsTooLong(opts.len()));
    }
    Ok(())
}

/// `lowers` named relative to the directory they share (see
/// [`common_dir`]), which the mounting process enters: with the store's
/// short links (`l/<name>`) the options of many layers stay short.
pub fn relative_lowers(lowers: &[PathBuf]) -> (PathBuf, Vec<PathBuf>) {
    let base = common_dir(lowers);
    let rel = lowers
        .iter()
        .map(|p| {
            p.strip_prefix(&base)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| p.clone())
        })
        .collect();
    (base, rel)
}

/// The deepest directory holding every path of `paths` (the parent of a
/// single one): lower dirs are named relative to it.
pub fn common_dir(paths: &[PathBuf]) -> PathBuf {
    let Some(first) = paths.first() else {
        return PathBuf::new();
    };
    let mut base = first.parent().unwrap_or(Path::new("/")).to_path_buf();
    for p in &paths[1..] {
        while !p.starts_with(&base) || p == &base {
            match base.parent() {
                Some(up) => base = up.to_path_buf(),
                None => break,
            }
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_for_read_only_and_writable_mounts() {
        let lowers = [PathBuf::from("/s/top/fs"), PathBuf::from("/s/base/fs")];
        assert_eq!(
            overlay_options(&lowers, None).unwrap(),
            "ro,lowerdir=/s/top/fs:/s/base/fs"
        );
        assert_eq!(
            overlay_options(&lowers, Some((Path::new("/c/upper"), Path::new("/c/work")))).unwrap(),
            "lowerdir=/s/top/fs:/s/base/fs,upperdir=/c/upper,workdir=/c/work"
        );
        assert!(matches!(
            overlay_options(&[PathBuf::from("/a:b")], None),
            Err(RunnerError::UnsafePath(_))
        ));
        assert!(matches!(
            overlay_options(&[PathBuf::from("/a,upperdir=/etc")], None),
            Err(RunnerError::UnsafePath(_))
        ));
    }

    #[test]
    fn options_past_a_page_are_refused() {
        let lowers: Vec<PathBuf> = (0..128).map(|i| PathBuf::from(format!("l/{i:016x}"))).collect();
        let upper = format!("/{}/upper", "r".repeat(200));
        let opts = overlay_options(&lowers, Some((Path::new(&upper), Path::new(&upper)))).unwrap();
        assert!(opts.len() < 3200, "{} bytes", opts.len());
        let long: Vec<PathBuf> = (0..128).map(|i| PathBuf::from(format!("{i:064x}/fs"))).collect();
        assert!(matches!(
            overlay_options(&long, None),
            Err(RunnerError::OptionsTooLong(_))
        ));
    }

    #[test]
    fn lower_dirs_are_named_from_the_directory_they_share() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(common_dir(&[p("/s/l/a"), p("/s/l/b")]), p("/s/l"));
        assert_eq!(common_dir(&[p("/s/l/a")]), p("/s/l"));
        assert_eq!(common_dir(&[p("/s/l/a"), p("/s/snapshots/x/fs")]), p("/s"));
        assert_eq!(
            common_dir(&[p("/s/snapshots/y/fs"), p("/s/snapshots/x/fs")]),
            p("/s/snapshots")
        );
        assert_eq!(common_dir(&[]), p(""));
    }
}
