//! The client side of docker's credential helper protocol: run
//! `docker-credential-<name> get|store|erase|list`, JSON on stdin/stdout,
//! exit status 1 with the message on stdout on failure.
//!
//! The helper named `barge` is served in-process by [`crate::keyring`] when
//! no `docker-credential-barge` is on the PATH, so barge needs no symlink to
//! use its own keyring.

use crate::AuthError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// The message helpers print when they have nothing for a server.
pub const NOT_FOUND: &str = "credentials not found in native keychain";

/// What `get` returns and `store` takes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperCredentials {
    #[serde(rename = "ServerURL", default)]
    pub server_url: String,
    #[serde(rename = "Username", default)]
    pub username: String,
    #[serde(rename = "Secret", default)]
    pub secret: String,
}

impl std::fmt::Debug for HelperCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HelperCredentials({}, {}, <redacted>)",
            self.server_url, self.username
        )
    }
}

enum Outcome {
    Ok(String),
    NotFound,
}

fn run(helper: &str, op: &str, input: &str, config: &Path) -> Result<Outcome, AuthError> {
    let program = format!("docker-credential-{helper}");
    let fail = |message: String| AuthError::Helper {
        helper: helper.to_string(),
        message,
    };
    let spawned = Command::new(&program)
        .arg(op)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if helper == "barge" {
                return in_process(op, input);
            }
            return Err(AuthError::HelperMissing {
                helper: helper.to_string(),
                path: config.to_path_buf(),
            });
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is judged by its exit status.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        return Ok(Outcome::Ok(stdout));
    }
    if stdout.contains("credentials not found") {
        return Ok(Outcome::NotFound);
    }
    let message = if stdout.is_empty() {
        String::from_utf8_lossy(&out.stderr).trim().to_string()
    } else {
        stdout
    };
    Err(fail(if message.is_empty() {
        format!("exit status {}", out.status)
    } else {
        message
    }))
}

fn in_process(op: &str, input: &str) -> Result<Outcome, AuthError> {
    match crate::keyring::serve(op, input) {
        Ok(out) => Ok(Outcome::Ok(out)),
        Err(crate::keyring::KeyringError::NotFound) => Ok(Outcome::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// `get`: the credentials the helper holds for `server`, if any.
pub fn get(helper: &str, server: &str, config: &Path) -> Result<Option<HelperCredentials>, AuthError> {
    match run(helper, "get", server, config)? {
        Outcome::NotFound => Ok(None),
        Outcome::Ok(out) => {
            let creds: HelperCredentials = serde_json::from_str(&out).map_err(|e| AuthError::Helper {
                helper: helper.to_string(),
                message: format!("unreadable reply to get: {e}"),
            })?;
            Ok(Some(creds).filter(|c| !c.secret.is_empty()))
        }
    }
}

pub fn store(helper: &str, creds: &HelperCredentials, config: &Path) -> Result<(), AuthError> {
    let input = serde_json::to_string(creds).map_err(|e| AuthError::Helper {
        helper: helper.to_string(),
        message: e.to_string(),
    })?;
    match run(helper, "store", &input, config)? {
        Outcome::Ok(_) => Ok(()),
        Outcome::NotFound => Err(AuthError::Helper {
            helper: helper.to_string(),
            message: "store failed: not found".into(),
        }),
    }
}

/// `erase`: whether the helper had something to erase.
pub fn erase(helper: &str, server: &str, config: &Path) -> Result<bool, AuthError> {
    Ok(matches!(run(helper, "erase", server, config)?, Outcome::Ok(_)))
}

/// `list`: server URL → user name of everything the helper holds.
pub fn list(helper: &str, config: &Path) -> Result<BTreeMap<String, String>, AuthError> {
    match run(helper, "list", "", config)? {
        Outcome::NotFound => Ok(BTreeMap::new()),
        Outcome::Ok(out) if out.is_empty() => Ok(BTreeMap::new()),
        Outcome::Ok(out) => serde_json::from_str(&out).map_err(|e| AuthError::Helper {
            helper: helper.to_string(),
            message: format!("unreadable reply to list: {e}"),
        }),
    }
}
