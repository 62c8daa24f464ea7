//! What `inspect` shows of `--pid` and the like, in docker's HostConfig.

use barge_runtime::spec::Spec;
use barge_runtime::Container;
use serde_json::{json, Map, Value};

/// HostConfig's PidMode, IpcMode, Devices and Privileged.
pub fn host_config(c: &Container, _spec: Option<&Spec>) -> Map<String, Value> {
    let h = &c.meta.host;
    let mut m = Map::new();
    m.insert("PidMode".into(), json!(h.pid_mode));
    let ipc = if h.ipc_mode.is_empty() { "private" } else { &h.ipc_mode };
    m.insert("IpcMode".into(), json!(ipc));
    m.insert("Devices".into(), json!(h.devices));
    m.insert("Privileged".into(), json!(h.privileged));
    m
}
