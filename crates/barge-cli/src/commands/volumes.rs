//! `barge volume create|ls|inspect|rm|prune`.

use super::Env;
use crate::args::{VolumeCreateArgs, VolumeInspectArgs, VolumeLsArgs, VolumePruneArgs, VolumeRmArgs};
use crate::failure::{Context, Failure};
use crate::format::{print_rows, Template};
use barge_runtime::volumes::{MountKind, VolumeError, VolumeRecord};
use barge_runtime::{Runtime, RuntimeError};
use serde_json::{json, Value};
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
fn volume_json(rt: &Runtime, v: &VolumeRecord) -> Value {
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
            println!("{v}");
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
            Ok(v) => out.push(crate::format::sanitized(&volume_json(&rt, &v))),
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
