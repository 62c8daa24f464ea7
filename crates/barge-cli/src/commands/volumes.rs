//! `barge volume create|ls|inspect|rm|prune`, and the volume parts of a
//! container's `inspect` (`.Mounts`, HostConfig's `Binds`, `Mounts` and
//! `Tmpfs`, Config's `Volumes`) and of `ps`.

use super::Env;
use crate::args::{VolumeCreateArgs, VolumeInspectArgs, VolumeLsArgs, VolumePruneArgs, VolumeRmArgs};
use crate::failure::{Context, Failure};
use crate::format::{print_rows, Template};
use barge_runtime::volumes::{MountKind, Origin, VolumeError, VolumeRecord};
use barge_runtime::{Container, Runtime, RuntimeError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

fn runtime(env: &Env) -> Result<Runtime, Failure> {
    Ok(Runtime::new(&env.store()?))
}

/// `KEY=VALUE` flags as a map (`KEY` alone: an empty value).
fn key_values(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// A volume as `ls` and `inspect` show it.
pub fn volume_json(rt: &Runtime, v: &VolumeRecord) -> Value {
    json!({
        "CreatedAt": v.created,
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": rt.volumes().mountpoint(&v.name).display().to_string(),
        "Name": v.name,
        "Options": v.options,
        "Scope": "local",
    })
}

pub fn create(env: &Env, a: &VolumeCreateArgs) -> Result<i32, Failure> {
    if let Some(o) = a.opt.first() {
        return Err(Failure::msg(format!(
            "invalid option {o:?}: barge's local volume driver takes no options (it makes a directory in the store)"
        )));
    }
    let rt = runtime(env)?;
    let (v, _) = rt
        .volumes()
        .create(a.name.as_deref(), &a.driver, key_values(&a.label), false)
        .map_err(|e| Failure::new("", e))?;
    println!("{}", v.name);
    Ok(0)
}

/// `volume ls --filter`: each key must match one of its values.
fn ls_filter(raw: &[String]) -> Result<Vec<(String, String)>, Failure> {
    let mut rules = Vec::new();
    for f in raw {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| Failure::msg(format!("bad format of filter (expected name=value): {f}")))?;
        match k {
            "dangling" if !matches!(v, "true" | "false" | "1" | "0") => {
                return Err(Failure::msg(format!(
                    "invalid filter 'dangling={v}': expected true or false"
                )))
            }
            "dangling" | "driver" | "label" | "name" => rules.push((k.to_string(), v.to_string())),
            _ => return Err(Failure::msg(format!("invalid filter '{k}'"))),
        }
    }
    Ok(rules)
}

pub fn ls(env: &Env, a: &VolumeLsArgs) -> Result<i32, Failure> {
    let rules = ls_filter(&a.filters)?;
    let rt = runtime(env)?;
    let list = rt.volumes().list().context(|| "listing volumes".to_string())?;
    let containers = rt.list().context(|| "listing containers".to_string())?;
    let used = |name: &str| {
        containers.iter().any(|c| {
            c.meta
                .volumes
                .iter()
                .any(|m| m.kind == MountKind::Volume && m.name.as_deref() == Some(name))
        })
    };
    let mut keys: Vec<&str> = rules.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let keep = |v: &VolumeRecord| {
        keys.iter().all(|key| {
            rules.iter().filter(|(k, _)| k == key).any(|(_, want)| match *key {
                "dangling" => used(&v.name) != matches!(want.as_str(), "true" | "1"),
                "driver" => v.driver == *want,
                "name" => v.name.contains(want.as_str()),
                "label" => match want.split_once('=') {
                    Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
                    None => v.labels.contains_key(want),
                },
                _ => false,
            })
        })
    };
    let values: Vec<Value> = list
        .iter()
        .filter(|v| keep(v))
        .map(|v| {
            let mut row = volume_json(&rt, v);
            let labels: Vec<String> = v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            row["Labels"] = Value::String(labels.join(","));
            // docker's `.Label "KEY"` (a method: left out of `--format json`).
            row["Label"] = serde_json::json!(v.labels);
            row
        })
        .map(|v| crate::format::sanitized(&v))
        .collect();
    if a.quiet {
        for v in &values {
            println!("{}", v["Name"].as_str().unwrap_or(""));
        }
        return Ok(0);
    }
    let src = env
        .format_or_default(a.format.as_deref(), "volumesFormat")
        .unwrap_or_else(|| "table {{.Driver}}\t{{.Name}}".to_string());
    if src == "json" {
        for v in &values {
            println!("{}", crate::format::json_row(v));
        }
        return Ok(0);
    }
    let t = Template::parse(&src).context(|| "--format".to_string())?;
    let header = |f: &str| match f {
        "Name" => "VOLUME NAME".into(),
        other => other.to_uppercase(),
    };
    print_rows(&t, &values, &header).context(|| "--format".to_string())?;
    Ok(0)
}

pub fn inspect(env: &Env, a: &VolumeInspectArgs) -> Result<i32, Failure> {
    let rt = runtime(env)?;
    let mut out = Vec::new();
    let mut code = 0;
    for name in &a.volumes {
        match rt.volumes().get(name) {
            Ok(v) => out.push(volume_json(&rt, &v)),
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
            }
        }
    }
    super::print_inspected(&out, a.format.as_deref())?;
    Ok(code)
}

pub fn rm(env: &Env, a: &VolumeRmArgs) -> Result<i32, Failure> {
    let rt = runtime(env)?;
    let mut code = 0;
    for name in &a.volumes {
        match rt.remove_volume(name) {
            Ok(()) => println!("{name}"),
            Err(RuntimeError::Volume(VolumeError::NoSuchVolume(_))) if a.force => {}
            Err(e @ RuntimeError::Volume(VolumeError::InUse { .. })) => {
                eprintln!("Error response from daemon: {e}");
                code = 1;
            }
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn prune(env: &Env, a: &VolumePruneArgs) -> Result<i32, Failure> {
    if a.filters.iter().any(|f| f.starts_with("until=")) {
        return Err(Failure::msg(
            "invalid filter 'until': volume prune takes label= and label!=",
        ));
    }
    let filter = super::prune_filter::PruneFilter::parse(&a.filters, crate::format::now())?;
    if !a.force && !super::confirm("WARNING! This will remove all local volumes not used by at least one container.") {
        return Ok(0);
    }
    let rt = runtime(env)?;
    let (removed, bytes) = rt
        .prune_volumes(&|v: &VolumeRecord| filter.selects(&v.labels, 0))
        .context(|| "pruning volumes".to_string())?;
    if !removed.is_empty() {
        println!("Deleted Volumes:");
        for n in &removed {
            println!("{n}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", crate::format::human_size(bytes));
    Ok(0)
}

/// A container's `.Mounts`, as docker's inspect shows them (`--tmpfs`
/// mounts are in HostConfig.Tmpfs only, as in docker).
pub fn mounts_json(c: &Container) -> Value {
    let rows: Vec<Value> = c
        .meta
        .volumes
        .iter()
        .filter(|v| v.origin != Origin::Tmpfs)
        .map(|v| {
            let source = v.source.display().to_string();
            match v.kind {
                MountKind::Bind => json!({
                    "Type": "bind", "Source": source, "Destination": v.destination,
                    "Mode": v.mode, "RW": !v.read_only, "Propagation": "rprivate",
                }),
                MountKind::Volume => json!({
                    "Type": "volume", "Name": v.name, "Source": source, "Destination": v.destination,
                    "Driver": "local",
                    "Mode": if v.origin == Origin::Flag && v.mode.is_empty() { "z" } else { v.mode.as_str() },
                    "RW": !v.read_only, "Propagation": "",
                }),
                MountKind::Tmpfs => json!({
                    "Type": "tmpfs", "Source": "", "Destination": v.destination,
                    "Mode": "", "RW": !v.read_only, "Propagation": "",
                }),
            }
        })
        .collect();
    Value::Array(rows)
}

/// HostConfig.Binds: the `-v` values that name a source (null when none).
pub fn binds_json(c: &Container) -> Value {
    let binds: Vec<String> = c
        .meta
        .volumes
        .iter()
        .filter(|v| v.origin == Origin::Flag && !v.anonymous)
        .map(|v| {
            let source = match (&v.kind, &v.name) {
                (MountKind::Volume, Some(name)) => name.clone(),
                _ => v.source.display().to_string(),
            };
            let mode = if v.mode.is_empty() {
                if v.read_only { ":ro" } else { "" }.to_string()
            } else {
                format!(":{}", v.mode)
            };
            format!("{source}:{}{mode}", v.destination)
        })
        .collect();
    null_if_empty(json!(binds))
}

/// docker's inspect has null, not `[]` or `{}`, where a container has none.
fn null_if_empty(v: Value) -> Value {
    let empty = match &v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if empty {
        Value::Null
    } else {
        v
    }
}

/// HostConfig.Mounts: what `--mount` asked for, in docker's API form.
pub fn host_mounts_json(c: &Container) -> Value {
    let option = |v: &barge_runtime::Volume, key: &str| {
        v.tmpfs_options.iter().find_map(|o| {
            o.strip_prefix(key)
                .and_then(|x| x.strip_prefix('='))
                .map(str::to_string)
        })
    };
    let rows: Vec<Value> = c
        .meta
        .volumes
        .iter()
        .filter(|v| v.origin == Origin::Mount)
        .map(|v| {
            let mut m = Map::new();
            m.insert("Type".into(), json!(v.kind.as_str()));
            match (v.kind, &v.name) {
                (MountKind::Bind, _) => {
                    m.insert("Source".into(), json!(v.source.display().to_string()));
                }
                (MountKind::Volume, Some(name)) if !v.anonymous => {
                    m.insert("Source".into(), json!(name));
                }
                _ => {}
            }
            m.insert("Target".into(), json!(v.destination));
            if v.read_only {
                m.insert("ReadOnly".into(), json!(true));
            }
            if v.no_copy {
                m.insert("VolumeOptions".into(), json!({"NoCopy": true}));
            }
            if v.kind == MountKind::Tmpfs {
                let mut t = Map::new();
                if let Some(size) = option(v, "size").and_then(|s| s.parse::<i64>().ok()) {
                    t.insert("SizeBytes".into(), json!(size));
                }
                if let Some(mode) = option(v, "mode").and_then(|s| u32::from_str_radix(&s, 8).ok()) {
                    t.insert("Mode".into(), json!(mode));
                }
                m.insert("TmpfsOptions".into(), Value::Object(t));
            }
            Value::Object(m)
        })
        .collect();
    null_if_empty(Value::Array(rows))
}

/// HostConfig.Tmpfs: `--tmpfs` destinations and their options.
pub fn tmpfs_json(c: &Container) -> Value {
    let map: Map<String, Value> = c
        .meta
        .volumes
        .iter()
        .filter(|v| v.origin == Origin::Tmpfs)
        .map(|v| {
            let mut options = v.tmpfs_options.clone();
            if v.read_only {
                options.push("ro".into());
            }
            (v.destination.clone(), json!(options.join(",")))
        })
        .collect();
    null_if_empty(Value::Object(map))
}

/// Config.Volumes: the anonymous volumes' destinations (`-v /path`, the
/// image's VOLUMEs), null when none.
pub fn config_volumes_json(c: &Container) -> Value {
    let map: Map<String, Value> = c
        .meta
        .volumes
        .iter()
        .filter(|v| v.kind == MountKind::Volume && v.anonymous && v.origin != Origin::Mount)
        .map(|v| (v.destination.clone(), json!({})))
        .collect();
    null_if_empty(Value::Object(map))
}

/// `ps --filter volume=X`: a volume's name, or a mount's destination or host source.
pub fn mounts_volume(c: &Container, wanted: &str) -> bool {
    c.meta.volumes.iter().any(|m| {
        m.name.as_deref() == Some(wanted)
            || m.destination == wanted
            || (m.kind != MountKind::Tmpfs && m.source == std::path::Path::new(wanted))
    })
}

/// `ps`'s MOUNTS column: volume names, host sources of binds.
pub fn mounts_column(c: &Container) -> String {
    c.meta
        .volumes
        .iter()
        .filter(|m| m.kind != MountKind::Tmpfs)
        .map(|m| match &m.name {
            Some(name) => name.clone(),
            None => m.source.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `ps`'s LocalVolumes: the container's mounts of local volumes (named or
/// anonymous; binds and tmpfs are not volumes).
pub fn local_volume_count(c: &Container) -> usize {
    c.meta.volumes.iter().filter(|m| m.kind == MountKind::Volume).count()
}
