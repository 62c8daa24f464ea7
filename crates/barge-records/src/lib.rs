//! The small things barge's runtime crates share about their records on
//! disk: JSON files replaced atomically ([`write_json`], [`read_json`]),
//! timestamps ([`now_rfc3339`]), random IDs ([`new_id`]) and docker's rule
//! for names ([`valid_name`]). Containers (`barge-runtime`) and networks
//! (`barge-network`) keep their records with these, so neither needs the
//! other.
//!
//! It is not for what the records mean (each crate owns its own types), and
//! not for the image store's files (`barge-store`).
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// A record that is not the JSON its reader expects.
    #[error("{0}")]
    Corrupt(String),
}

/// Writes `value` as pretty JSON to `path`, through a temporary file and a
/// rename: a reader sees the old record or the new one, never half of one.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RecordError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| RecordError::Io {
        context: path.display().to_string(),
        source: e.into(),
    })?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let io = |source: std::io::Error| RecordError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    std::fs::write(&tmp, &bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads a JSON record.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, RecordError> {
    let bytes = std::fs::read(path).map_err(|source| RecordError::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| RecordError::Corrupt(format!("{}: {e}", path.display())))
}

/// Now, as RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = barge_oci::time::format_rfc3339(d.as_secs() as i64);
    format!("{}.{:09}Z", secs.trim_end_matches('Z'), d.subsec_nanos())
}

/// Random bytes from the kernel.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    let mut filled = 0;
    while filled < N {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            // getrandom only fails on ancient kernels; fall back to the clock.
            Err(_) => {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                for (i, b) in buf.iter_mut().enumerate().skip(filled) {
                    *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151) ^ std::process::id() as u8;
                }
                filled = N;
            }
        }
    }
    buf
}

/// A new 64-hex-digit ID (containers and networks).
pub fn new_id() -> String {
    random_bytes::<32>().iter().map(|b| format!("{b:02x}")).collect()
}

/// docker's rule for container and network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(new_id(), id);
        assert!(valid_name("web-1") && valid_name("a.b_c"));
        assert!(!valid_name("-x") && !valid_name("a") && !valid_name("a/b") && !valid_name(""));
    }

    #[test]
    fn records_round_trip_and_damage_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.json");
        write_json(&p, &vec![1, 2, 3]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), [1, 2, 3]);
        std::fs::write(&p, b"{").unwrap();
        assert!(matches!(read_json::<Vec<u32>>(&p), Err(RecordError::Corrupt(_))));
        assert!(matches!(
            read_json::<Vec<u32>>(&d.path().join("absent.json")),
            Err(RecordError::Io { .. })
        ));
    }

    #[test]
    fn rfc3339_now_has_nanoseconds() {
        let n = now_rfc3339();
        assert!(
            n.ends_with('Z') && n.len() == "2024-01-02T03:04:05.123456789Z".len(),
            "{n}"
        );
    }
}
