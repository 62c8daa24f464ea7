//! [`AuthStore`]: where credentials are kept and found, with docker's rules.

use crate::file::{self, Doc};
use crate::helper::{self, HelperCredentials};
use crate::{config_key, same_registry, AuthError, Credential, CredentialLookup};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// docker's user name for an identity token kept in a credential helper.
const TOKEN_USER: &str = "<token>";

/// Where `save` put the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// base64 in the config file, unencrypted.
    Plaintext(PathBuf),
    /// In `docker-credential-<helper>`; the file keeps an empty entry.
    Helper(String),
}

/// What a config document holds for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigEntry {
    /// The secret is kept by `docker-credential-<name>`.
    Helper(String),
    /// The secret is in the document.
    Credential(Credential),
}

/// docker's `config.json` plus the containers `auth.json` files read as a fallback.
#[derive(Debug, Clone)]
pub struct AuthStore {
    path: PathBuf,
    fallbacks: Vec<PathBuf>,
}

impl AuthStore {
    /// `DIR/config.json` when a directory is given (`--config`), else
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; falling
    /// back to `$REGISTRY_AUTH_FILE` and `$XDG_RUNTIME_DIR/containers/auth.json`.
    pub fn locate(dir: Option<&Path>) -> AuthStore {
        let dir = dir
            .map(Path::to_path_buf)
            .or_else(|| {
                std::env::var_os("DOCKER_CONFIG")
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from("/root/.docker"));
        let mut fallbacks = Vec::new();
        if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|f| !f.is_empty()) {
            fallbacks.push(PathBuf::from(f));
        }
        if let Some(r) = std::env::var_os("XDG_RUNTIME_DIR").filter(|r| !r.is_empty()) {
            fallbacks.push(PathBuf::from(r).join("containers/auth.json"));
        }
        AuthStore {
            path: dir.join("config.json"),
            fallbacks,
        }
    }

    /// The docker config file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The helper that holds this registry's secret: its `credHelpers` entry, else `credsStore`.
    fn helper_for(doc: &Doc, registry: &str) -> Option<String> {
        let per_registry = doc
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|m| m.iter().find(|(k, _)| same_registry(k, registry)))
            .and_then(|(_, v)| v.as_str());
        per_registry
            .or_else(|| doc.get("credsStore").and_then(Value::as_str))
            .filter(|h| !h.is_empty())
            .map(str::to_string)
    }

    fn auths(doc: &mut Doc) -> Result<&mut Map<String, Value>, String> {
        let auths = doc.entry("auths").or_insert_with(|| Value::Object(Map::new()));
        auths
            .as_object_mut()
            .ok_or_else(|| "\"auths\" is not an object".to_string())
    }

    /// Saves a login: to the registry's credential helper if one is
    /// configured (leaving an empty entry in the file, as docker does),
    /// else base64 in the file.
    ///
    /// With `creds_store`, that helper becomes the file's `credsStore` in
    /// the same update, but only if it took the secret.
    pub fn save(&self, registry: &str, cred: &Credential, creds_store: Option<&str>) -> Result<Stored, AuthError> {
        let key = config_key(registry);
        let path = self.path.clone();
        file::update(&self.path, |doc| {
            if let Some(h) = creds_store {
                doc.insert("credsStore".into(), Value::from(h));
            }
            let helper = Self::helper_for(doc, registry);
            if let Some(h) = &helper {
                let (username, secret) = match cred {
                    Credential::Basic { username, password } => (username.clone(), password.clone()),
                    Credential::IdentityToken { token, .. } => (TOKEN_USER.to_string(), token.clone()),
                    Credential::RegistryToken(t) => (TOKEN_USER.to_string(), t.clone()),
                };
                helper::store(
                    h,
                    &HelperCredentials {
                        server_url: key.clone(),
                        username,
                        secret,
                    },
                    &path,
                )?;
            }
            let auths = Self::auths(doc).map_err(|what| AuthError::Invalid {
                path: path.clone(),
                what,
            })?;
            let mut obj = match auths.remove(&key) {
                Some(Value::Object(o)) => o,
                _ => Map::new(),
            };
            for field in ["auth", "username", "password", "identitytoken", "registrytoken"] {
                obj.remove(field);
            }
            if helper.is_none() {
                let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
                match cred {
                    Credential::Basic { username, password } => {
                        obj.insert("auth".into(), Value::from(b64(format!("{username}:{password}"))));
                    }
                    Credential::IdentityToken { username, token } => {
                        obj.insert("auth".into(), Value::from(b64(format!("{username}:"))));
                        obj.insert("identitytoken".into(), Value::from(token.clone()));
                    }
                    Credential::RegistryToken(t) => {
                        obj.insert("registrytoken".into(), Value::from(t.clone()));
                    }
                }
            }
            auths.insert(key.clone(), Value::Object(obj));
            Ok(match helper {
                Some(h) => Stored::Helper(h),
                None => Stored::Plaintext(path.clone()),
            })
        })
    }

    /// Forgets a login (file entries under any spelling of the registry,
    /// and the helper's copy). Returns whether there was one.
    pub fn remove(&self, registry: &str) -> Result<bool, AuthError> {
        let key = config_key(registry);
        let path = self.path.clone();
        file::update(&self.path, |doc| {
            let mut removed = false;
            if let Some(h) = Self::helper_for(doc, registry) {
                removed |= helper::erase(&h, &key, &path)?;
            }
            if let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) {
                let before = auths.len();
                auths.retain(|k, _| !same_registry(k, registry));
                removed |= auths.len() != before;
            }
            Ok(removed)
        })
    }

    /// Forgets every login: all file entries and everything the configured
    /// helpers hold. Returns the server keys removed.
    pub fn remove_all(&self) -> Result<Vec<String>, AuthError> {
        let path = self.path.clone();
        file::update(&self.path, |doc| {
            let mut removed: Vec<String> = Vec::new();
            let keys: Vec<String> = doc
                .get("auths")
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for key in &keys {
                if let Some(h) = Self::helper_for(doc, key) {
                    helper::erase(&h, &config_key(key), &path)?;
                }
            }
            removed.extend(keys);
            if let Some(store) = doc.get("credsStore").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                for server in helper::list(store, &path)?.into_keys() {
                    helper::erase(store, &server, &path)?;
                    removed.push(server);
                }
            }
            let per_registry: Vec<(String, String)> = doc
                .get("credHelpers")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|h| (k.clone(), h.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            for (registry, h) in per_registry {
                if helper::erase(&h, &config_key(&registry), &path)? {
                    removed.push(registry);
                }
            }
            if let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) {
                auths.clear();
            }
            let mut seen = std::collections::BTreeSet::new();
            removed.retain(|k| seen.insert(config_key(k)));
            Ok(removed)
        })
    }

    /// A top-level string setting of the docker config file that is not a
    /// credential: `psFormat`, `imagesFormat` (the docker CLI's defaults for
    /// `--format`). `None` when unset or not a string.
    pub fn cli_setting(&self, key: &str) -> Result<Option<String>, AuthError> {
        let doc = file::read(&self.path)?;
        Ok(doc.get(key).and_then(|v| v.as_str()).map(str::to_string))
    }

    /// The stored user name for a registry.
    pub fn username(&self, registry: &str) -> Result<Option<String>, AuthError> {
        Ok(self.lookup(registry)?.and_then(|c| c.username().map(str::to_string)))
    }

    /// What the config document `bytes` holds for `registry`, read with
    /// the same rules as [`CredentialLookup::lookup`] but without running a
    /// credential helper: one that is configured is named instead. `path`
    /// only names the document in errors.
    pub fn entry_in(bytes: &[u8], path: &Path, registry: &str) -> Result<Option<ConfigEntry>, AuthError> {
        let doc = file::parse(bytes, path)?;
        if let Some(h) = Self::helper_for(&doc, registry) {
            return Ok(Some(ConfigEntry::Helper(h)));
        }
        Ok(Self::file_entry(&doc, path, registry)?.map(ConfigEntry::Credential))
    }

    fn from_doc(doc: &Doc, path: &Path, registry: &str, helpers: bool) -> Result<Option<Credential>, AuthError> {
        if helpers {
            if let Some(h) = Self::helper_for(doc, registry) {
                let Some(c) = helper::get(&h, &config_key(registry), path)? else {
                    return Ok(None);
                };
                return Ok(Some(if c.username == TOKEN_USER {
                    Credential::IdentityToken {
                        username: String::new(),
                        token: c.secret,
                    }
                } else {
                    Credential::Basic {
                        username: c.username,
                        password: c.secret,
                    }
                }));
            }
        }
        Self::file_entry(doc, path, registry)
    }

    /// The credential kept in the document itself (`auths`) for `registry`.
    fn file_entry(doc: &Doc, path: &Path, registry: &str) -> Result<Option<Credential>, AuthError> {
        let Some((key, entry)) = doc
            .get("auths")
            .and_then(Value::as_object)
            .and_then(|m| m.iter().find(|(k, _)| same_registry(k, registry)))
        else {
            return Ok(None);
        };
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        if let Some(t) = field("registrytoken") {
            return Ok(Some(Credential::RegistryToken(t)));
        }
        let (mut username, mut password) = (
            field("username").unwrap_or_default(),
            field("password").unwrap_or_default(),
        );
        if let Some(auth) = field("auth") {
            let bad = || AuthError::BadAuthField {
                path: path.to_path_buf(),
                registry: key.clone(),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (u, p) = decoded.split_once(':').ok_or_else(bad)?;
            username = u.to_string();
            password = p.to_string();
        }
        if let Some(token) = field("identitytoken") {
            return Ok(Some(Credential::IdentityToken { username, token }));
        }
        if username.is_empty() && password.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credential::Basic { username, password }))
    }
}

impl CredentialLookup for AuthStore {
    fn lookup(&self, registry: &str) -> Result<Option<Credential>, AuthError> {
        let doc = file::read(&self.path)?;
        if let Some(c) = Self::from_doc(&doc, &self.path, registry, true)? {
            return Ok(Some(c));
        }
        for f in &self.fallbacks {
            let doc = file::read(f)?;
            if let Some(c) = Self::from_doc(&doc, f, registry, false)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DOCKER_HUB_KEY;

    fn store_in(dir: &Path) -> AuthStore {
        AuthStore {
            path: dir.join("config.json"),
            fallbacks: vec![dir.join("auth.json")],
        }
    }

    #[test]
    fn docker_hub_spellings_are_one_registry() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("config.json"),
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"}}}"#,
        )
        .unwrap();
        let s = store_in(d.path());
        for r in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(
                s.lookup(r).unwrap(),
                Some(Credential::Basic {
                    username: "user".into(),
                    password: "pass".into()
                })
            );
        }
        assert_eq!(s.lookup("quay.io").unwrap(), None);
    }

    #[test]
    fn save_and_remove_plaintext_keep_other_fields() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("config.json"),
            r#"{"psFormat":"table","auths":{"other.io":{"auth":"YTpi"}}}"#,
        )
        .unwrap();
        let s = store_in(d.path());
        let cred = Credential::Basic {
            username: "u".into(),
            password: "p:w".into(),
        };
        assert_eq!(
            s.save("docker.io", &cred, None).unwrap(),
            Stored::Plaintext(s.path().to_path_buf())
        );
        assert_eq!(s.lookup("docker.io").unwrap(), Some(cred));
        let doc = file::read(s.path()).unwrap();
        assert_eq!(doc["psFormat"], "table");
        assert!(doc["auths"][DOCKER_HUB_KEY]["auth"].is_string());
        assert!(s.remove("index.docker.io").unwrap());
        assert!(!s.remove("docker.io").unwrap());
        assert_eq!(
            s.lookup("other.io")
                .unwrap()
                .and_then(|c| c.username().map(str::to_string)),
            Some("a".into())
        );
        assert_eq!(s.remove_all().unwrap(), vec!["other.io".to_string()]);
        assert_eq!(s.lookup("other.io").unwrap(), None);
    }

    #[test]
    fn identity_and_registry_tokens() {
        let d = tempfile::tempdir().unwrap();
        let s = store_in(d.path());
        let tok = Credential::IdentityToken {
            username: "me".into(),
            token: "refresh".into(),
        };
        s.save("r.example", &tok, None).unwrap();
        assert_eq!(s.lookup("r.example").unwrap(), Some(tok));
        std::fs::write(s.path(), r#"{"auths":{"t.example":{"registrytoken":"bearer"}}}"#).unwrap();
        assert_eq!(
            s.lookup("t.example").unwrap(),
            Some(Credential::RegistryToken("bearer".into()))
        );
    }

    #[test]
    fn containers_auth_json_is_the_fallback() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("auth.json"),
            r#"{"auths":{"quay.io/team":{"auth":"cTpw"}}}"#,
        )
        .unwrap();
        let s = store_in(d.path());
        assert_eq!(
            s.lookup("quay.io").unwrap(),
            Some(Credential::Basic {
                username: "q".into(),
                password: "p".into()
            })
        );
    }

    #[test]
    fn entry_in_names_helpers_without_running_them() {
        let doc = br#"{"auths":{"a.io":{"auth":"dTpw"}},"credHelpers":{"b.io":"nope"},"credsStore":""}"#;
        let p = Path::new("config.json");
        assert_eq!(
            AuthStore::entry_in(doc, p, "a.io").unwrap(),
            Some(ConfigEntry::Credential(Credential::Basic {
                username: "u".into(),
                password: "p".into()
            }))
        );
        assert_eq!(
            AuthStore::entry_in(doc, p, "https://b.io/v2/").unwrap(),
            Some(ConfigEntry::Helper("nope".into()))
        );
        assert_eq!(AuthStore::entry_in(doc, p, "c.io").unwrap(), None);
        assert!(AuthStore::entry_in(b"[]", p, "a.io").is_err());
    }

    #[test]
    fn errors_name_the_file_and_the_helper() {
        let d = tempfile::tempdir().unwrap();
        let s = store_in(d.path());
        std::fs::write(s.path(), "{not json").unwrap();
        let e = s.lookup("docker.io").unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("not valid JSON"), "{e}");
        std::fs::write(s.path(), r#"{"credsStore":"barge-test-no-such-helper"}"#).unwrap();
        let e = s.lookup("docker.io").unwrap_err().to_string();
        assert!(e.contains("docker-credential-barge-test-no-such-helper"), "{e}");
        std::fs::write(s.path(), r#"{"auths":{"x.io":{"auth":"!!!"}}}"#).unwrap();
        assert!(matches!(s.lookup("x.io"), Err(AuthError::BadAuthField { .. })));
    }
}
