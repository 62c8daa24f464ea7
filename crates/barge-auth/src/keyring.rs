//! barge's own credential helper, backed by the OS keyring: the
//! freedesktop Secret Service (gnome-keyring, KeePassXC, KWallet) over
//! D-Bus. The binary answers the docker credential helper protocol when it
//! runs as `docker-credential-barge`, so the docker CLI can use it too.
//!
//! Items carry the attributes `application=barge`, `server=<ServerURL>` and
//! `username=<Username>`; the secret is the password or identity token.
//! Secrets travel over the session bus encrypted: the session is opened
//! with Diffie-Hellman (`dh-ietf1024-sha256-aes128-cbc-pkcs7`), so another
//! client of the bus that sees the messages does not see the secrets.

use crate::helper::HelperCredentials;
use dbus_secret_service::{EncryptionType, Item, SecretService};
use std::collections::{BTreeMap, HashMap};

const APPLICATION: &str = "barge";

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{}", crate::helper::NOT_FOUND)]
    NotFound,
    #[error(
        "no OS keyring is available ({0}): barge's credential store needs a Secret Service on the D-Bus session bus; \
         install and start one (apt-get install gnome-keyring, then run barge in a D-Bus session with the keyring unlocked), \
         or use another credsStore"
    )]
    Unavailable(String),
    #[error("the OS keyring refused: {0}")]
    Service(String),
    #[error("unknown credential helper operation {0:?}: expected get, store, erase or list")]
    UnknownOperation(String),
    #[error("the input to store is not {{\"ServerURL\",\"Username\",\"Secret\"}} JSON: {0}")]
    BadInput(String),
}

fn connect() -> Result<SecretService, KeyringError> {
    SecretService::connect(EncryptionType::Dh).map_err(|e| KeyringError::Unavailable(e.to_string()))
}

fn service_err(e: dbus_secret_service::Error) -> KeyringError {
    KeyringError::Service(e.to_string())
}

fn find<'a>(ss: &'a SecretService, server: Option<&'a str>) -> Result<Vec<Item<'a>>, KeyringError> {
    let mut attrs = HashMap::new();
    attrs.insert("application", APPLICATION);
    if let Some(s) = server {
        attrs.insert("server", s);
    }
    let found = ss.search_items(attrs).map_err(service_err)?;
    for item in &found.locked {
        item.unlock().map_err(service_err)?;
    }
    Ok(found.unlocked.into_iter().chain(found.locked).collect())
}

/// Answers one helper request: `op` is get/store/erase/list, `input` what
/// came on stdin. Returns what goes to stdout.
pub fn serve(op: &str, input: &str) -> Result<String, KeyringError> {
    match op {
        "get" | "store" | "erase" | "list" => {}
        other => return Err(KeyringError::UnknownOperation(other.to_string())),
    }
    let ss = connect()?;
    let server = input.trim();
    match op {
        "get" => {
            let items = find(&ss, Some(server))?;
            let item = items.first().ok_or(KeyringError::NotFound)?;
            let attrs = item.get_attributes().map_err(service_err)?;
            let secret = item.get_secret().map_err(service_err)?;
            let creds = HelperCredentials {
                server_url: server.to_string(),
                username: attrs.get("username").cloned().unwrap_or_default(),
                secret: String::from_utf8_lossy(&secret).into_owned(),
            };
            serde_json::to_string(&creds).map_err(|e| KeyringError::Service(e.to_string()))
        }
        "store" => {
            let creds: HelperCredentials =
                serde_json::from_str(input).map_err(|e| KeyringError::BadInput(e.to_string()))?;
            for old in find(&ss, Some(&creds.server_url))? {
                old.delete().map_err(service_err)?;
            }
            let collection = ss.get_default_collection().map_err(service_err)?;
            collection.ensure_unlocked().map_err(service_err)?;
            let mut attrs = HashMap::new();
            attrs.insert("application", APPLICATION);
            attrs.insert("server", creds.server_url.as_str());
            attrs.insert("username", creds.username.as_str());
            collection
                .create_item(
                    &format!("Registry credentials for {}", creds.server_url),
                    attrs,
                    creds.secret.as_bytes(),
                    true,
                    "text/plain",
                )
                .map_err(service_err)?;
            Ok(String::new())
        }
        "erase" => {
            let items = find(&ss, Some(server))?;
            if items.is_empty() {
                return Err(KeyringError::NotFound);
            }
            for item in items {
                item.delete().map_err(service_err)?;
            }
            Ok(String::new())
        }
        _ => {
            let mut all = BTreeMap::new();
            for item in find(&ss, None)? {
                let attrs = item.get_attributes().map_err(service_err)?;
                if let Some(server) = attrs.get("server") {
                    all.insert(server.clone(), attrs.get("username").cloned().unwrap_or_default());
                }
            }
            serde_json::to_string(&all).map_err(|e| KeyringError::Service(e.to_string()))
        }
    }
}
