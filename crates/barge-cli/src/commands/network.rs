//! `barge network ls|create|rm|inspect|prune`.

use super::Env;
use crate::args::{NetworkCreateArgs, NetworkInspectArgs, NetworkLsArgs, NetworkPruneArgs, NetworkRmArgs};
use crate::failure::{Context, Failure};
use crate::format::{print_rows, Template};
use barge_runtime::network::{Containers, NetworkConfig, Networks};
use barge_runtime::{Runtime, Status};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn networks(env: &Env) -> Result<(Networks, Runtime), Failure> {
    let store = env.store()?;
    Ok((env.networks(&store)?, Runtime::new(&store)))
}

/// docker lists `host` and `none` too; they have no records of their own.
fn rows(list: &[NetworkConfig]) -> Vec<Value> {
    let mut out: Vec<Value> = list
        .iter()
        .map(|n| json!({"ID": n.id, "Name": n.name, "Driver": "bridge", "Scope": "local", "Created": n.created}))
        .collect();
    for (name, driver) in [("host", "host"), ("none", "null")] {
        let id: String = name
            .bytes()
            .map(|b| format!("{b:02x}"))
            .chain(std::iter::repeat("0".into()))
            .take(64 - name.len())
            .collect();
        out.push(json!({"ID": id, "Name": name, "Driver": driver, "Scope": "local", "Created": ""}));
    }
    out
}

/// `network ls --filter`, as docker takes it: each key must match one of
/// its values; networks barge makes carry no labels.
fn network_filter(raw: &[String]) -> Result<impl Fn(&Value) -> bool, Failure> {
    let mut rules: Vec<(String, String)> = Vec::new();
    for f in raw {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| Failure::msg(format!("bad format of filter (expected name=value): {f}")))?;
        if !matches!(k, "driver" | "id" | "label" | "name" | "scope" | "type") {
            return Err(Failure::msg(format!("invalid filter '{k}'")));
        }
        if k == "type" && !matches!(v, "custom" | "builtin") {
            return Err(Failure::msg(format!(
                "invalid filter 'type={v}': expected custom or builtin"
            )));
        }
        rules.push((k.to_string(), v.to_string()));
    }
    Ok(move |n: &Value| {
        let field = |f: &str| n[f].as_str().unwrap_or_default().to_string();
        let mut keys: Vec<&str> = rules.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.iter().all(|key| {
            rules.iter().filter(|(k, _)| k == key).any(|(_, v)| match *key {
                "driver" => field("Driver") == *v,
                "id" => field("ID").starts_with(v.as_str()),
                "name" => field("Name").contains(v.as_str()),
                "scope" => field("Scope") == *v,
                "type" => matches!(field("Name").as_str(), "bridge" | "host" | "none") == (v == "builtin"),
                _ => false,
            })
        })
    })
}

pub fn ls(env: &Env, a: &NetworkLsArgs) -> Result<i32, Failure> {
    let keep = network_filter(&a.filters)?;
    let (nets, _) = networks(env)?;
    let list = nets.list().context(|| "listing networks".to_string())?;
    let mut values = rows(&list);
    values.retain(|v| keep(v));
    values.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    if !a.no_trunc {
        for v in &mut values {
            let short: String = v["ID"].as_str().unwrap_or("").chars().take(12).collect();
            v["ID"] = Value::String(short);
        }
    }
    if a.quiet {
        for v in &values {
            println!("{}", v["ID"].as_str().unwrap_or(""));
        }
        return Ok(0);
    }
    let src = a
        .format
        .as_deref()
        .unwrap_or("table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}");
    if src == "json" {
        for v in &values {
            println!("{v}");
        }
        return Ok(0);
    }
    let t = Template::parse(src).context(|| "--format".to_string())?;
    let header = |f: &str| match f {
        "ID" => "NETWORK ID".into(),
        other => other.to_uppercase(),
    };
    print_rows(&t, &values, &header).context(|| "--format".to_string())?;
    Ok(0)
}

pub fn create(env: &Env, a: &NetworkCreateArgs) -> Result<i32, Failure> {
    if a.driver != "bridge" {
        return Err(Failure::msg(format!(
            "plugin \"{}\" not found: barge has only the bridge driver",
            a.driver
        )));
    }
    let mut labels = BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let (nets, _) = networks(env)?;
    let n = nets
        .create(&a.name, a.subnet.as_deref(), a.gateway.as_deref(), labels)
        .context(|| format!("creating network {}", a.name))?;
    println!("{}", n.id);
    Ok(0)
}

pub fn rm(env: &Env, a: &NetworkRmArgs) -> Result<i32, Failure> {
    let (nets, rt) = networks(env)?;
    // Leases of containers that stopped without detaching (a crash) do not count.
    let running = |id: &str| is_running(&rt, id);
    barge_runtime::network::prune(env.store()?.root(), &running, &Containers, None)
        .context(|| "checking networks".to_string())?;
    let mut code = 0;
    for name in &a.networks {
        match nets.remove(name, &Containers) {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn is_running(rt: &Runtime, id: &str) -> bool {
    rt.find(id)
        .ok()
        .and_then(|c| c.state().ok())
        .is_some_and(|s| s.status == Status::Running)
}

pub fn inspect(env: &Env, a: &NetworkInspectArgs) -> Result<i32, Failure> {
    let (nets, rt) = networks(env)?;
    let mut out = Vec::new();
    let mut code = 0;
    for name in &a.networks {
        let n = match nets.find(name) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
                continue;
            }
        };
        let mut containers = serde_json::Map::new();
        for (ip, id) in nets.leases(&n) {
            if let Ok(c) = rt.find(&id) {
                let a = barge_runtime::network::attachment(&c);
                containers.insert(
                    id.clone(),
                    json!({
                        "Name": c.meta.name,
                        "MacAddress": a.as_ref().map(|a| a.mac.clone()).unwrap_or_default(),
                        "IPv4Address": format!("{ip}/{}", a.as_ref().map(|a| a.prefix).unwrap_or(0)),
                        "IPv6Address": "",
                    }),
                );
            }
        }
        out.push(json!({
            "Name": n.name,
            "Id": n.id,
            "Created": n.created,
            "Scope": "local",
            "Driver": "bridge",
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": n.subnet, "Gateway": n.gateway}]},
            "Internal": false,
            "Attachable": false,
            "Containers": containers,
            "Options": {"com.docker.network.bridge.name": n.bridge},
            "Labels": n.labels,
        }));
    }
    if !out.is_empty() || code == 0 {
        super::print_inspected(&out, a.format.as_deref())?;
    }
    Ok(code)
}

pub fn prune(env: &Env, a: &NetworkPruneArgs) -> Result<i32, Failure> {
    if !a.force && !super::confirm("WARNING! This will remove all custom networks not used by at least one container.")
    {
        return Ok(0);
    }
    print!("{}", prune_networks(env, &super::prune_filter::PruneFilter::none())?);
    Ok(0)
}

/// Removes the networks no container uses that `filter` selects (and
/// what crashed containers left); docker's report of them, empty when none.
pub(super) fn prune_networks(env: &Env, filter: &super::prune_filter::PruneFilter) -> Result<String, Failure> {
    let (_, rt) = networks(env)?;
    let running = |id: &str| is_running(&rt, id);
    let select = |n: &barge_runtime::network::NetworkConfig| {
        let created = barge_oci::time::parse_rfc3339(&n.created).map_or(0, |t| t.0);
        filter.selects(&n.labels, created)
    };
    let r = barge_runtime::network::prune(env.store()?.root(), &running, &Containers, Some(&select))
        .context(|| "pruning networks".to_string())?;
    for l in &r.leftovers {
        eprintln!("removed leftover: {l}");
    }
    let mut out = String::new();
    if !r.networks.is_empty() {
        out.push_str("Deleted Networks:\n");
        for n in &r.networks {
            out.push_str(&format!("{n}\n"));
        }
    }
    Ok(out)
}
