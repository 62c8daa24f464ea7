//! `barge system check`: the store's invariants, verified.
//!
//! - every blob's content hashes to its name;
//! - every `index.json` row reaches what it needs: its manifest, the
//!   config, every layer blob (or, for an index, its child manifests), and
//!   one complete snapshot per layer whose chain and diff ID match;
//! - the OCI form a row of a Docker manifest points at is there;
//! - every snapshot has its completeness record (`info.json`), and the
//!   record agrees with its place (chain ID from parent and diff ID).
//!
//! Partial downloads, interrupted snapshot builds and temporary files are
//! reported as leftovers (`image prune` removes them), not as damage.

use crate::{Store, StoreError};
use barge_oci::image::{chain_ids, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES};
use barge_oci::{media, Digest, Hasher, ImageConfig, Manifest};
use std::collections::BTreeSet;
use std::io::Read;

/// What a check found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub blobs: usize,
    pub images: usize,
    pub snapshots: usize,
    /// Damage: the store does not hold what it says.
    pub problems: Vec<String>,
    /// Harmless remains of interrupted work.
    pub leftovers: Vec<String>,
}

impl Store {
    /// Verifies the store (see the module docs). Reads every blob once.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        let _lock = self.lock_shared()?;
        let mut r = CheckReport::default();
        let blobs_dir = self.layout_dir().join("blobs/sha256");
        let mut good_blobs = BTreeSet::new();
        for entry in read_dir(&blobs_dir)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
                if name.starts_with('.') {
                    r.leftovers.push(format!("temporary file {}", entry.path().display()));
                } else {
                    r.problems.push(format!("{}: not a blob name", entry.path().display()));
                }
                continue;
            };
            r.blobs += 1;
            match hash_file(&entry.path()) {
                Ok(actual) if actual == digest => {
                    good_blobs.insert(digest);
                }
                Ok(actual) => r
                    .problems
                    .push(format!("blob {digest}: its content hashes to {actual}")),
                Err(e) => r.problems.push(format!("blob {digest}: {e}")),
            }
        }

        let mut good_snapshots = BTreeSet::new();
        for entry in read_dir(&self.root.join("snapshots"))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(chain) = format!("sha256:{name}").parse::<Digest>() else {
                if name.starts_with('.') {
                    r.leftovers
                        .push(format!("interrupted snapshot {}", entry.path().display()));
                } else {
                    r.problems
                        .push(format!("{}: not a snapshot name", entry.path().display()));
                }
                continue;
            };
            r.snapshots += 1;
            match self.snapshot_info(&chain) {
                Err(_) => r
                    .problems
                    .push(format!("snapshot {chain}: no completeness record (info.json)")),
                Ok(info) if info.chain_id != chain => r
                    .problems
                    .push(format!("snapshot {chain}: its record names {}", info.chain_id)),
                Ok(info) => {
                    let expected = barge_oci::image::chain_id(info.parent.as_ref(), &info.diff_id);
                    if expected != chain {
                        r.problems
                            .push(format!("snapshot {chain}: parent and diff ID give chain {expected}"));
                    } else if !self.snapshot_fs(&chain).is_dir() {
                        r.problems.push(format!("snapshot {chain}: no fs directory"));
                    } else {
                        good_snapshots.insert(chain);
                    }
                }
            }
        }

        for row in self.read_index()?.manifests {
            r.images += 1;
            let name = row
                .annotation(crate::index::ANN_REF_NAME)
                .map(str::to_string)
                .unwrap_or_else(|| format!("dangling {}", row.digest.short()));
            let need = |problems: &mut Vec<String>, what: &str, d: &Digest| -> bool {
                if good_blobs.contains(d) {
                    return true;
                }
                problems.push(format!("{name}: {what} {d} is missing or damaged"));
                false
            };
            if !need(&mut r.problems, "manifest", &row.digest) {
                continue;
            }
            let bytes = match self.read_blob(&row.digest, MAX_MANIFEST_BYTES) {
                Ok(b) => b,
                Err(e) => {
                    r.problems.push(format!("{name}: {e}"));
                    continue;
                }
            };
            let manifests = match Manifest::parse(&bytes, Some(&row.media_type)) {
                Ok(Manifest::Image { manifest, .. }) => vec![*manifest],
                Ok(Manifest::Index { index, .. }) => {
                    let mut out = Vec::new();
                    for child in index
                        .manifests
                        .iter()
                        .filter(|d| media::is_image_manifest(&d.media_type))
                    {
                        if need(&mut r.problems, "platform manifest", &child.digest) {
                            if let Ok(m) = self.image_manifest(&child.digest) {
                                out.push(m);
                            }
                        }
                    }
                    out
                }
                Err(e) => {
                    r.problems.push(format!("{name}: manifest {}: {e}", row.digest));
                    continue;
                }
            };
            for m in manifests {
                if !need(&mut r.problems, "config", &m.config.digest) {
                    continue;
                }
                for l in &m.layers {
                    need(&mut r.problems, "layer", &l.digest);
                }
                let config = self
                    .read_blob(&m.config.digest, MAX_CONFIG_BYTES)
                    .map_err(|e| e.to_string())
                    .and_then(|raw| ImageConfig::parse(&raw).map_err(|e| e.to_string()));
                let config = match config {
                    Ok(c) => c,
                    Err(e) => {
                        r.problems.push(format!("{name}: config {}: {e}", m.config.digest));
                        continue;
                    }
                };
                for chain in chain_ids(&config.rootfs.diff_ids) {
                    if !good_snapshots.contains(&chain) {
                        r.problems
                            .push(format!("{name}: snapshot {chain} is missing or incomplete"));
                    }
                }
            }
        }

        // The OCI form a row of a Docker manifest points at, for other tools.
        for row in self.layout().read_index_raw()?.manifests {
            if row.annotation(crate::layout::ANN_ORIGINAL).is_some() && !good_blobs.contains(&row.digest) {
                let name = row.annotation(crate::index::ANN_REF_NAME).unwrap_or("a dangling image");
                r.problems
                    .push(format!("{name}: OCI form {} is missing or damaged", row.digest));
            }
        }

        for entry in read_dir(&self.root.join("ingest"))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".lock") {
                r.leftovers.push(format!("partial download {}", entry.path().display()));
            }
        }
        Ok(r)
    }
}

fn read_dir(dir: &std::path::Path) -> Result<Vec<std::fs::DirEntry>, StoreError> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<_> = rd.filter_map(Result::ok).collect();
            v.sort_by_key(|e| e.file_name());
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StoreError::io(format!("listing {}", dir.display()), e)),
    }
}

fn hash_file(path: &std::path::Path) -> std::io::Result<Digest> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}
