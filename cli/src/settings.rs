//! barge's own settings file, `barge.json` in the barge config directory:
//! `$BARGE_CONFIG`, else `/etc/barge` as root, else `$XDG_CONFIG_HOME/barge`.
//! Keys are docker's daemon.json names: `insecure-registries`.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Settings {
    #[serde(default)]
    pub insecure_registries: Vec<String>,
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
    if rustix::process::geteuid().is_root() {
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
    pub fn load() -> Result<Settings, SettingsError> {
        let path = config_dir().join("barge.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| SettingsError::Invalid { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(source) => Err(SettingsError::Read { path, source }),
        }
    }
}
