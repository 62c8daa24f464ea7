//! What `inspect` shows of `--pid`, `--ipc`, `--device`, `--privileged`
//! and `--sysctl`, in docker's HostConfig.

use barge_runtime::spec::Spec;
use barge_runtime::Container;
use serde_json::{json, Map, Value};

/// HostConfig's PidMode, IpcMode, Devices, Privileged, and Sysctls as
/// docker shows them (absent when none was set).
pub fn host_config(c: &Container, spec: Option<&Spec>) -> Map<String, Value> {
    let h = &c.meta.host;
    let mut m = Map::new();
    m.insert("PidMode".into(), json!(h.pid_mode));
    let ipc = if h.ipc_mode.is_empty() { "private" } else { &h.ipc_mode };
    m.insert("IpcMode".into(), json!(ipc));
    m.insert("Devices".into(), json!(h.devices));
    m.insert("Privileged".into(), json!(h.privileged));
    let sysctls: std::collections::BTreeMap<&String, &String> = spec
        .and_then(|s| s.linux().as_ref())
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
        .collect();
    if !sysctls.is_empty() {
        m.insert("Sysctls".into(), json!(sysctls));
    }
    m
}
