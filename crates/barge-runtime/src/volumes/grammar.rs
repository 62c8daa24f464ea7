//! The grammar of `-v`, `--mount` and `--tmpfs`, checked before any
//! image is pulled, and the image's `VOLUME`s added at `create`.

use super::{check_name, MountKind, Origin, VolumeError, Volumes};
use crate::container::Volume;
use std::path::{Path, PathBuf};

fn spec_err(msg: String) -> VolumeError {
    VolumeError::Spec(msg)
}

/// A mount destination: absolute, cleaned of `.`, empty parts and a
/// trailing `/`; `..` and the root are refused (the runner resolves it
/// inside the container's root, and refuses `/proc`, `/sys`, `/dev`).
fn destination(dst: &str, whole: &str) -> Result<String, VolumeError> {
    if !dst.starts_with('/') {
        return Err(spec_err(format!(
            "invalid mount config: mount path must be absolute: {dst:?} (in {whole:?})"
        )));
    }
    let parts: Vec<&str> = dst.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return Err(spec_err(format!("invalid mount config: '..' in mount path {dst:?}")));
    }
    if parts.is_empty() {
        return Err(spec_err(format!(
            "invalid mount config: destination can't be '/' (in {whole:?})"
        )));
    }
    let clean = format!("/{}", parts.join("/"));
    if barge_runner::child::reserved_destination(Path::new(&clean[1..])) {
        return Err(spec_err(format!(
            "invalid mount destination {clean}: the root, /proc, /sys and /dev cannot be mounted over"
        )));
    }
    Ok(clean)
}

fn mount_of(kind: MountKind, origin: Origin, destination: String) -> Volume {
    Volume {
        source: PathBuf::new(),
        destination,
        read_only: false,
        kind,
        name: None,
        anonymous: false,
        no_copy: false,
        tmpfs_options: Vec::new(),
        origin,
        mode: String::new(),
    }
}

/// `-v HOST:CONTAINER[:MODE]` (a bind), `-v NAME:CONTAINER[:MODE]` (a
/// named volume) or `-v CONTAINER` (an anonymous volume). MODE: `ro`,
/// `rw`, `nocopy`, and docker's `z`, `Z`, `rprivate`, `private`
/// (accepted; barge's binds are private), comma-separated.
pub fn parse_v(spec: &str) -> Result<Volume, VolumeError> {
    let bad = || {
        spec_err(format!(
            "invalid volume specification {spec:?}: expected [HOST-DIR|NAME:]CONTAINER-DIR[:ro|rw]"
        ))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(bad()),
    };
    if dst.is_empty() || (parts.len() > 1 && src.is_empty()) {
        return Err(bad());
    }
    let mut v = mount_of(MountKind::Volume, Origin::Flag, destination(dst, spec)?);
    v.mode = mode.to_string();
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => v.read_only = true,
            "rw" => v.read_only = false,
            "nocopy" => v.no_copy = true,
            "z" | "Z" | "rprivate" | "private" => {}
            _ => return Err(spec_err(format!("invalid mode: {m} (in {spec:?})"))),
        }
    }
    if src.is_empty() {
        v.anonymous = true;
    } else if src.starts_with('/') {
        v.kind = MountKind::Bind;
        v.source = PathBuf::from(src);
        if v.no_copy {
            return Err(spec_err(format!("invalid mode: nocopy is for volumes (in {spec:?})")));
        }
    } else {
        check_name(src)?;
        v.name = Some(src.to_string());
    }
    Ok(v)
}

/// Every `-v` asked for, in order; two on the same destination are
/// refused, as docker does.
pub fn parse_all(v: &[String]) -> Result<Vec<Volume>, VolumeError> {
    let out = v.iter().map(|s| parse_v(s)).collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::BTreeSet::new();
    for m in &out {
        if !seen.insert(m.destination.clone()) {
            return Err(VolumeError::Duplicate(m.destination.clone()));
        }
    }
    Ok(out)
}

/// The container's mounts with the image's `VOLUME`s added as anonymous
/// volumes (unless a mount asked for covers that path), and each volume
/// named (anonymous ones get a random name) with its `_data` as source.
/// Pure: nothing is made yet (see [`Runtime::make_volumes`]).
pub(crate) fn resolve(
    volumes: &Volumes,
    asked: &[Volume],
    image_volumes: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Vec<Volume>, VolumeError> {
    let mut out = asked.to_vec();
    for path in image_volumes.into_iter().flat_map(|m| m.keys()) {
        let Ok(dst) = destination(path, path) else {
            // docker too ignores what cannot be a mount point (`/`).
            continue;
        };
        if !out.iter().any(|m| m.destination == dst) {
            let mut v = mount_of(MountKind::Volume, Origin::Image, dst);
            v.anonymous = true;
            out.push(v);
        }
    }
    for m in out.iter_mut().filter(|m| m.kind == MountKind::Volume) {
        let name = m.name.get_or_insert_with(barge_records::new_id).clone();
        check_name(&name)?;
        m.source = volumes.mountpoint(&name);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v_flags() {
        let b = parse_v("/data:/srv:ro").unwrap();
        assert_eq!(
            (b.kind, b.source.as_path(), b.destination.as_str(), b.read_only),
            (MountKind::Bind, Path::new("/data"), "/srv", true)
        );
        let n = parse_v("cache:/var/cache/").unwrap();
        assert_eq!(
            (n.kind, n.name.as_deref(), n.destination.as_str(), n.anonymous),
            (MountKind::Volume, Some("cache"), "/var/cache", false)
        );
        let a = parse_v("/data").unwrap();
        assert!(a.anonymous && a.name.is_none() && a.kind == MountKind::Volume);
        assert!(parse_v("x1:/d:nocopy").unwrap().no_copy);
        for bad in [
            "../x:/b",
            "a/b:/c",
            ".x:/d",
            "x:rel",
            "/a:/",
            "/a:/b:xx",
            "/a:/b:ro:extra",
            "rel",
            "v:/proc/x",
            "v:/a/../b",
            ":/x",
        ] {
            assert!(parse_v(bad).is_err(), "{bad}");
        }
        let e = parse_v("../x:/b").unwrap_err().to_string();
        assert!(
            e.starts_with("create ../x: \"../x\" includes invalid characters"),
            "{e}"
        );
        let e = parse_all(&["v1:/d".into(), "/d/".into()]).unwrap_err().to_string();
        assert_eq!(e, "Duplicate mount point: /d");
    }

    #[test]
    fn image_volumes_become_anonymous_unless_covered() {
        let d = tempfile::tempdir().unwrap();
        let vols = Volumes::new(d.path());
        let mut image = serde_json::Map::new();
        image.insert("/data".into(), serde_json::json!({}));
        image.insert("/logs/".into(), serde_json::json!({}));
        let asked = vec![parse_v("/logs").unwrap()];
        let out = resolve(&vols, &asked, Some(&image)).unwrap();
        assert_eq!(out.len(), 2);
        let data = &out[1];
        assert!(data.anonymous && data.origin == Origin::Image && data.destination == "/data");
        assert_eq!(data.source, vols.mountpoint(data.name.as_deref().unwrap()));
    }
}
