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

/// A boolean option of `--mount`: given alone it is true.
fn flag_value(key: &str, value: Option<&str>, whole: &str) -> Result<bool, VolumeError> {
    match value {
        None | Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        Some(v) => Err(spec_err(format!(
            "invalid argument {whole:?} for \"--mount\" flag: invalid value for {key}: {v}"
        ))),
    }
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]
/// [,volume-nocopy][,volume-driver=local][,tmpfs-size=BYTES]
/// [,tmpfs-mode=OCTAL][,bind-propagation=rprivate]` (`type` defaults to
/// volume, as in docker; a volume without a source is anonymous).
pub fn parse_mount(spec: &str) -> Result<Volume, VolumeError> {
    let arg = |msg: String| spec_err(format!("invalid argument {spec:?} for \"--mount\" flag: {msg}"));
    let mut kind = MountKind::Volume;
    let (mut source, mut target) = (None, None);
    let (mut read_only, mut no_copy) = (false, false);
    let (mut size, mut mode) = (None, None);
    let (mut volume_opts, mut tmpfs_opts) = (false, false);
    for field in spec.split(',') {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        let needs = |v: Option<&'_ str>| -> Result<String, VolumeError> {
            v.filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| arg(format!("invalid field '{field}' must be a key=value pair")))
        };
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                kind = match needs(value)?.as_str() {
                    "bind" => MountKind::Bind,
                    "volume" => MountKind::Volume,
                    "tmpfs" => MountKind::Tmpfs,
                    other => {
                        return Err(arg(format!(
                            "unknown mount type {other:?}: expected bind, volume or tmpfs"
                        )))
                    }
                }
            }
            "source" | "src" => source = Some(needs(value)?),
            "target" | "destination" | "dst" => target = Some(needs(value)?),
            "readonly" | "ro" => read_only = flag_value(key, value, spec)?,
            "volume-nocopy" => {
                no_copy = flag_value(key, value, spec)?;
                volume_opts = true;
            }
            "volume-driver" => {
                let d = needs(value)?;
                if d != "local" {
                    return Err(VolumeError::Driver(d));
                }
                volume_opts = true;
            }
            "tmpfs-size" => {
                let v = needs(value)?;
                let bytes = crate::limits::parse_size(&v).map_err(|e| arg(format!("tmpfs-size: {e}")))?;
                if bytes <= 0 {
                    return Err(arg(format!("tmpfs-size must be more than 0: {v}")));
                }
                size = Some(bytes);
                tmpfs_opts = true;
            }
            "tmpfs-mode" => {
                let v = needs(value)?;
                let m = u32::from_str_radix(&v, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| arg(format!("tmpfs-mode {v:?} is not an octal mode")))?;
                mode = Some(m);
                tmpfs_opts = true;
            }
            "bind-propagation" => {
                let v = needs(value)?;
                if !matches!(v.as_str(), "rprivate" | "private") {
                    return Err(arg(format!(
                        "bind-propagation={v} is not supported: barge's binds are rprivate"
                    )));
                }
            }
            "consistency" => {
                needs(value)?;
            }
            _ => return Err(arg(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    let target = target.ok_or_else(|| {
        spec_err(format!(
            "invalid argument {spec:?} for \"--mount\" flag: target is required"
        ))
    })?;
    let mut v = mount_of(kind, Origin::Mount, destination(&target, spec)?);
    v.read_only = read_only;
    let mix = |what: &str| {
        spec_err(format!(
            "invalid argument {spec:?} for \"--mount\" flag: cannot mix '{what}-*' options with mount type '{}'",
            kind.as_str()
        ))
    };
    if volume_opts && kind != MountKind::Volume {
        return Err(mix("volume"));
    }
    if tmpfs_opts && kind != MountKind::Tmpfs {
        return Err(mix("tmpfs"));
    }
    match kind {
        MountKind::Bind => {
            let src = source.ok_or_else(|| {
                spec_err(format!(
                    "invalid mount config for type \"bind\": field Source must not be empty (in {spec:?})"
                ))
            })?;
            if !src.starts_with('/') {
                return Err(spec_err(format!(
                    "invalid mount config for type \"bind\": invalid mount path: {src:?} mount path must be absolute"
                )));
            }
            if !Path::new(&src).exists() {
                return Err(spec_err(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                )));
            }
            v.source = PathBuf::from(src);
        }
        MountKind::Volume => {
            v.no_copy = no_copy;
            match source {
                Some(name) => {
                    check_name(&name)?;
                    v.name = Some(name);
                }
                None => v.anonymous = true,
            }
        }
        MountKind::Tmpfs => {
            if source.is_some() {
                return Err(spec_err(
                    "invalid mount config for type \"tmpfs\": field Source must not be specified".into(),
                ));
            }
            v.tmpfs_options = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
            if let Some(s) = size {
                v.tmpfs_options.push(format!("size={s}"));
            }
            if let Some(m) = mode {
                v.tmpfs_options.push(format!("mode={m:o}"));
            }
        }
    }
    Ok(v)
}

/// `--tmpfs /path[:OPTIONS]`: OPTIONS as mount(8) takes them for tmpfs
/// (`size=64m`, `mode=1777`, `uid=`, `gid=`, `nr_inodes=`, `ro`, `rw`,
/// `exec`, `noexec`, …); nosuid, nodev and noexec unless `exec` is given.
pub fn parse_tmpfs(spec: &str) -> Result<Volume, VolumeError> {
    let (dst, opts) = spec.split_once(':').unwrap_or((spec, ""));
    let mut v = mount_of(MountKind::Tmpfs, Origin::Tmpfs, destination(dst, spec)?);
    let mut noexec = true;
    let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let (key, value) = o.split_once('=').unwrap_or((o, ""));
        let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'%');
        match key {
            "ro" => v.read_only = true,
            "rw" => v.read_only = false,
            "exec" => noexec = false,
            "noexec" => noexec = true,
            "nosuid" | "nodev" | "rprivate" | "private" => {}
            "size" | "mode" | "uid" | "gid" | "nr_inodes" | "nr_blocks" if plain => options.push(o.to_string()),
            _ => {
                return Err(spec_err(format!(
                    "invalid tmpfs option {o:?} (in --tmpfs {spec:?}): expected size=, mode=, uid=, gid=, nr_inodes=, ro, rw, exec or noexec"
                )))
            }
        }
    }
    if noexec {
        options.push("noexec".into());
    }
    v.tmpfs_options = options;
    Ok(v)
}

/// Every mount asked for, in order (`-v`, then `--mount`, then
/// `--tmpfs`); two on the same destination are refused, as docker does.
pub fn parse_all(v: &[String], mounts: &[String], tmpfs: &[String]) -> Result<Vec<Volume>, VolumeError> {
    let mut out = Vec::new();
    for s in v {
        out.push(parse_v(s)?);
    }
    for s in mounts {
        out.push(parse_mount(s)?);
    }
    for s in tmpfs {
        out.push(parse_tmpfs(s)?);
    }
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
    }

    #[test]
    fn mount_flags() {
        let v = parse_mount("type=volume,source=data,target=/d,readonly,volume-nocopy").unwrap();
        assert!(v.read_only && v.no_copy && v.name.as_deref() == Some("data"));
        assert!(parse_mount("target=/d").unwrap().anonymous);
        let t = parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770").unwrap();
        assert_eq!(
            t.tmpfs_options,
            ["nosuid", "nodev", "noexec", "size=1048576", "mode=1770"]
        );
        let b = parse_mount("type=bind,src=/,target=/host,ro=true").unwrap();
        assert!(b.read_only && b.kind == MountKind::Bind);
        for (bad, says) in [
            ("type=volume,target=/d,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
            ("type=blob,target=/d", "unknown mount type"),
            ("type=volume,source=x", "target is required"),
            ("type=bind,source=/no/such/dir/here,target=/d", "does not exist"),
            ("type=tmpfs,source=x,target=/d", "must not be specified"),
            ("type=bind,source=/,target=/d,tmpfs-size=1m", "cannot mix 'tmpfs-*'"),
            ("type=tmpfs,target=/d,volume-nocopy", "cannot mix 'volume-*'"),
            ("type=tmpfs,target=/d,tmpfs-mode=999", "not an octal mode"),
            ("type=volume,source=a/b,target=/d", "invalid characters"),
            ("type=volume,target=/d,readonly=maybe", "invalid value"),
        ] {
            let e = parse_mount(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn tmpfs_flags() {
        let t = parse_tmpfs("/run:size=64m,mode=1777,exec").unwrap();
        assert_eq!(t.tmpfs_options, ["nosuid", "nodev", "size=64m", "mode=1777"]);
        assert_eq!(
            parse_tmpfs("/run").unwrap().tmpfs_options,
            ["nosuid", "nodev", "noexec"]
        );
        for bad in [
            "/run:size=1m,dev",
            "/run:suid",
            "rel",
            "/run:size=1,2",
            "/run:mode=7;x",
            "/",
        ] {
            assert!(parse_tmpfs(bad).is_err(), "{bad}");
        }
        let e = parse_all(&["v1:/d".into()], &[], &["/d".into()])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "Duplicate mount point: /d");
    }

    #[test]
    fn image_volumes_become_anonymous_unless_covered() {
        let d = tempfile::tempdir().unwrap();
        let vols = Volumes::new(d.path());
        let mut image = serde_json::Map::new();
        image.insert("/data".into(), serde_json::json!({}));
        image.insert("/logs/".into(), serde_json::json!({}));
        let asked = vec![parse_tmpfs("/logs").unwrap()];
        let out = resolve(&vols, &asked, Some(&image)).unwrap();
        assert_eq!(out.len(), 2);
        let data = &out[1];
        assert!(data.anonymous && data.origin == Origin::Image && data.destination == "/data");
        assert_eq!(data.source, vols.mountpoint(data.name.as_deref().unwrap()));
    }
}
