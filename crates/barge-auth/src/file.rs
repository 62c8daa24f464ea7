//! docker's `config.json` as a JSON document: read leniently, written
//! atomically under a lock, every unknown field kept.

use crate::AuthError;
use serde_json::{Map, Value};
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub(crate) type Doc = Map<String, Value>;

/// Reads a config document; a missing or blank file is an empty one.
pub(crate) fn read(path: &Path) -> Result<Doc, AuthError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Doc::new()),
        Err(source) => {
            return Err(AuthError::Read {
                path: path.to_path_buf(),
                error: source,
            })
        }
    };
    parse(&bytes, path)
}

/// Parses a config document; blank is empty. `path` names it in errors.
pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<Doc, AuthError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Doc::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(AuthError::Invalid {
            path: path.to_path_buf(),
            what: "the top level is not a JSON object".into(),
        }),
        Err(error) => Err(AuthError::Malformed {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// The file a write must replace: `path`, or what its symlinks point to.
fn resolve_symlinks(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&p) {
            Ok(target) => {
                p = if target.is_absolute() {
                    target
                } else {
                    p.parent().unwrap_or(Path::new("/")).join(target)
                };
            }
            Err(_) => break,
        }
    }
    p
}

/// Read-modify-write of the document at `path` under an exclusive lock,
/// replacing the file atomically with mode 0600. The directory is created
/// 0700 if missing. A malformed file fails the update and is left as is.
pub(crate) fn update<T>(path: &Path, f: impl FnOnce(&mut Doc) -> Result<T, AuthError>) -> Result<T, AuthError> {
    let werr = |p: &Path, error: std::io::Error| AuthError::Write {
        path: p.to_path_buf(),
        error,
    };
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| werr(dir, e))?;
        }
    }
    let target = resolve_symlinks(path);
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.json".into());
    let lock_path = dir.join(format!(".{name}.lock"));
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| werr(&lock_path, e))?;
    loop {
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(werr(&lock_path, e.into())),
        }
    }
    let mut doc = read(&target)?;
    let out = f(&mut doc)?;
    let mut bytes = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut bytes, serde_json::ser::PrettyFormatter::with_indent(b"\t"));
    serde::Serialize::serialize(&doc, &mut ser).map_err(|e| werr(&target, std::io::Error::other(e)))?;
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(werr(&target, e));
    }
    drop(lock);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn updates_keep_unknown_fields_and_set_mode_0600() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/config.json");
        update(&p, |doc| {
            doc.insert("a".into(), Value::from(1));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            std::fs::metadata(d.path().join("sub")).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::write(&p, r#"{"proxies":{"default":{"httpProxy":"x"}},"auths":{}}"#).unwrap();
        update(&p, |doc| {
            doc.insert("credsStore".into(), Value::from("x"));
            Ok(())
        })
        .unwrap();
        let doc = read(&p).unwrap();
        assert_eq!(doc["proxies"]["default"]["httpProxy"], "x");
        assert_eq!(doc["credsStore"], "x");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn writes_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real.json");
        std::fs::write(&real, "{}").unwrap();
        let link = d.path().join("config.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        update(&link, |doc| {
            doc.insert("k".into(), Value::from("v"));
            Ok(())
        })
        .unwrap();
        assert!(
            std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
            "the link stays a link"
        );
        assert_eq!(read(&real).unwrap()["k"], "v");
    }

    #[test]
    fn malformed_files_are_never_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        std::fs::write(&p, "{ not json").unwrap();
        let e = update(&p, |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{ not json");
        std::fs::write(&p, "[1]").unwrap();
        assert!(matches!(update(&p, |_| Ok(())), Err(AuthError::Invalid { .. })));
    }
}
