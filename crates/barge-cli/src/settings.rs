//! barge's own settings file, `barge.json` in the barge config directory:
//! `$BARGE_CONFIG`, else `/etc/barge` as root, else `$XDG_CONFIG_HOME/barge`.
//! Keys are docker's daemon.json names: `insecure-registries`, and
//! `registry-mirrors`, either docker's list (mirrors of Docker Hub) or an
//! object from registry to its mirrors; and barge's own `read-timeout`
//! (seconds), `low-speed-limit` (bytes/s) and `low-speed-time` (seconds, the
//! minimum speed of a transfer from a registry, as curl's options of those
//! names), `max-layer-size` (bytes) and `max-layer-ratio` (limits on what a
//! layer may unpack to, against decompression bombs), and docker's `bridge`
//! and `bip` for the default bridge network, `no-new-privileges`, and
//! `allow-nondistributable-artifacts` (registries that receive foreign layers):
//!
//! ```json
//! { "registry-mirrors": { "docker.io": ["mirror.local:5000"], "quay.io": ["mirror.local:5000/quay"] } }
//! ```

use barge_engine::PullMirror;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Settings {
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    #[serde(default)]
    registry_mirrors: Option<RegistryMirrors>,
    /// Seconds a registry may stay silent in the middle of an answer
    /// before barge gives up on that connection (and retries) [default: 60].
    #[serde(default)]
    pub read_timeout: Option<u64>,
    /// Bytes per second a transfer from a registry must average over
    /// `low-speed-time` seconds of waiting for it [default: 1024; 0: no minimum].
    #[serde(default)]
    pub low_speed_limit: Option<u64>,
    /// The window of `low-speed-limit`, in seconds [default: 60].
    #[serde(default)]
    pub low_speed_time: Option<u64>,
    /// Bytes one layer may unpack to [default: 256 GiB; 0: no limit].
    #[serde(default)]
    pub max_layer_size: Option<u64>,
    /// Uncompressed bytes per compressed byte a layer may reach once past
    /// 1 GiB [default: 2000; 0: no limit].
    #[serde(default)]
    pub max_layer_ratio: Option<u64>,
    /// The default bridge network's device [default: barge0].
    #[serde(default)]
    pub bridge: Option<String>,
    /// The default bridge's address and prefix [default: 10.222.0.1/16].
    #[serde(default)]
    pub bip: Option<String>,
    /// `no_new_privs` for every container that does not say
    /// `--security-opt no-new-privileges=false` (dockerd's setting of the
    /// same name) [default: false, as docker].
    #[serde(default)]
    pub no_new_privileges: Option<bool>,
    /// Registries (`host[:port]`) that receive non-distributable (foreign)
    /// layers on push and copy; elsewhere they are left to their URLs
    /// (dockerd's setting of the same name, without its CIDR form).
    #[serde(default)]
    pub allow_nondistributable_artifacts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RegistryMirrors {
    /// Mirrors of Docker Hub, as in docker's daemon.json.
    DockerHub(Vec<String>),
    PerRegistry(BTreeMap<String, Vec<String>>),
}

/// A mirror as written: `[http[s]://]host[:port][/prefix]`. Plain `http://`
/// makes the host an insecure registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorEntry {
    pub mirror: PullMirror,
    pub plain_http: bool,
}

fn parse_mirror(s: &str) -> MirrorEntry {
    let (rest, plain_http) = match (s.strip_prefix("http://"), s.strip_prefix("https://")) {
        (Some(r), _) => (r, true),
        (_, Some(r)) => (r, false),
        _ => (s, false),
    };
    let rest = rest.trim_end_matches('/');
    let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    MirrorEntry {
        mirror: PullMirror {
            host: host.to_string(),
            prefix: prefix.to_string(),
        },
        plain_http,
    }
}

/// Docker Hub's several names as one.
fn registry_key(name: &str) -> &str {
    match name.trim_end_matches('/') {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "https://index.docker.io/v1" => "docker.io",
        other => other,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {source}")]
    Invalid { path: PathBuf, source: serde_json::Error },
}

pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BARGE_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if barge_store::fsutil::host_root() {
        return PathBuf::from("/etc/barge");
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("barge");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".config/barge")
}

impl Settings {
    pub fn layer_limits(&self) -> barge_store::LayerLimits {
        let d = barge_store::LayerLimits::default();
        barge_store::LayerLimits {
            max_size: self.max_layer_size.unwrap_or(d.max_size),
            max_ratio: self.max_layer_ratio.unwrap_or(d.max_ratio),
        }
    }

    /// Every configured mirror of every registry.
    pub fn all_mirrors(&self) -> Vec<MirrorEntry> {
        match &self.registry_mirrors {
            None => Vec::new(),
            Some(RegistryMirrors::DockerHub(list)) => list.iter().map(|m| parse_mirror(m)).collect(),
            Some(RegistryMirrors::PerRegistry(map)) => map.values().flatten().map(|m| parse_mirror(m)).collect(),
        }
    }

    /// The mirrors of `registry` (as references spell it: `docker.io`), in order.
    pub fn mirrors_for(&self, registry: &str) -> Vec<PullMirror> {
        let wanted = registry_key(registry);
        let list: Vec<&String> = match &self.registry_mirrors {
            None => Vec::new(),
            Some(RegistryMirrors::DockerHub(list)) if wanted == "docker.io" => list.iter().collect(),
            Some(RegistryMirrors::DockerHub(_)) => Vec::new(),
            Some(RegistryMirrors::PerRegistry(map)) => map
                .iter()
                .filter(|(k, _)| registry_key(k) == wanted)
                .flat_map(|(_, v)| v)
                .collect(),
        };
        list.into_iter().map(|m| parse_mirror(m).mirror).collect()
    }

    pub fn load() -> Result<Settings, SettingsError> {
        let path = config_dir().join("barge.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| SettingsError::Invalid { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(source) => Err(SettingsError::Read { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Settings {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn docker_hub_mirror_list() {
        let s = settings(r#"{"registry-mirrors": ["https://mirror.gcr.io", "http://10.0.0.5:5000/hub/"]}"#);
        let m = s.mirrors_for("docker.io");
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].host.as_str(), m[0].prefix.as_str()), ("mirror.gcr.io", ""));
        assert_eq!((m[1].host.as_str(), m[1].prefix.as_str()), ("10.0.0.5:5000", "hub"));
        assert!(s.mirrors_for("quay.io").is_empty());
        assert_eq!(s.all_mirrors().iter().filter(|e| e.plain_http).count(), 1);
    }

    #[test]
    fn per_registry_mirrors() {
        let s = settings(r#"{"registry-mirrors": {"index.docker.io": ["a:1"], "quay.io": ["b:2/q", "c:3"]}}"#);
        assert_eq!(s.mirrors_for("docker.io")[0].host, "a:1");
        let q = s.mirrors_for("quay.io");
        assert_eq!(q.iter().map(|m| m.host.as_str()).collect::<Vec<_>>(), ["b:2", "c:3"]);
        assert_eq!(q[0].prefix, "q");
        assert!(settings("{}").mirrors_for("docker.io").is_empty());
    }
}
