//! docker's `config.json`: any document is read without panicking, with
//! the same rules as a credential lookup (helpers are named, never run),
//! and a credential found in it reads back the same after barge writes it
//! in its own form.
#![no_main]

use barge_auth::{config_key, AuthStore, ConfigEntry, Credential};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use std::path::Path;

const REGISTRIES: &[&str] = &[
    "docker.io",
    "registry-1.docker.io",
    "localhost:5000",
    "ghcr.io",
    "registry.gitlab.com",
];

fuzz_target!(|data: &[u8]| {
    let path = Path::new("config.json");
    let mut registries: Vec<String> = REGISTRIES.iter().map(|r| r.to_string()).collect();
    // Every key the document has, under any spelling.
    if let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(data) {
        for section in ["auths", "credHelpers"] {
            if let Some(Value::Object(m)) = doc.get(section) {
                registries.extend(m.keys().take(8).cloned());
            }
        }
    }
    for registry in &registries {
        let entry = match AuthStore::entry_in(data, path, registry) {
            Ok(Some(e)) => e,
            Ok(None) | Err(_) => continue,
        };
        match entry {
            ConfigEntry::Helper(h) => assert!(!h.is_empty(), "{registry:?}: an empty helper name"),
            ConfigEntry::Credential(c) => round_trip(registry, &c),
        }
    }
});

/// Writes `cred` as `barge login` does (base64 `user:password`, identity and
/// registry tokens in their fields) and reads it back.
fn round_trip(registry: &str, cred: &Credential) {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    let entry = match cred {
        // `auth` splits at the first ':', so such a user name cannot be written there.
        Credential::Basic { username, .. } | Credential::IdentityToken { username, .. } if username.contains(':') => {
            return
        }
        Credential::Basic { username, password } => json!({ "auth": b64(format!("{username}:{password}")) }),
        Credential::IdentityToken { username, token } => {
            json!({ "auth": b64(format!("{username}:")), "identitytoken": token })
        }
        Credential::RegistryToken(t) => json!({ "registrytoken": t }),
    };
    let doc = json!({ "auths": { config_key(registry): entry } });
    let bytes = serde_json::to_vec(&doc).unwrap_or_else(|e| panic!("{e}"));
    let back = AuthStore::entry_in(&bytes, Path::new("config.json"), registry)
        .unwrap_or_else(|e| panic!("{registry:?}: barge's own form does not read back: {e}"));
    assert_eq!(
        back,
        Some(ConfigEntry::Credential(cred.clone())),
        "{registry:?}: written as {doc}"
    );
}
