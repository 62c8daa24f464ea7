//! What travels with an image between registries when `copy --referrers`
//! or `mirror` asks for it: its OCI 1.1 referrers (found through the
//! referrers API or the `sha256-<hex>` tag schema, indexed at the
//! destination the same way) and cosign's legacy `sha256-<hex>.att` and
//! `.sbom` tags. (`.sig` goes with every copy: see [`crate::copy`].)

use crate::copy::{copy, CopyError, CopyOptions};
use crate::remote::{self, RemoteError};
use crate::transport::{RegistryDestination, RegistrySource};
use crate::Progress;
use barge_oci::{Digest, Reference};
use barge_registry::Client;

/// Referrers of referrers are carried this deep (a signature of an SBOM
/// of an image is two).
const MAX_DEPTH: usize = 4;

/// cosign's tags beside `sha256-<hex>.sig` that are carried too.
const LEGACY_SUFFIXES: [&str; 2] = ["att", "sbom"];

/// Whether `tag` is one a registry keeps for what is attached to an image
/// (`sha256-<hex>`, `sha256-<hex>.sig`, `.att`, `.sbom`): a mirror that
/// carries referrers brings these with their image, not as tags of their own.
pub fn is_attachment_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let (hex, suffix) = rest.split_once('.').unwrap_or((rest, ""));
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && ["", "sig", "att", "sbom"].contains(&suffix)
}

impl From<RemoteError> for CopyError {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Registry(r) => CopyError::Registry(r),
            other => CopyError::Invalid(other.to_string()),
        }
    }
}

/// Copies what is attached to the manifest `subject` from `src` to `dst`
/// (two repositories, perhaps of two registries). Returns how many
/// manifests were carried.
pub(crate) fn carry(
    (src_client, src): (&Client, &Reference),
    (dst_client, dst): (&Client, &Reference),
    subject: &Digest,
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<usize, CopyError> {
    carry_at(src_client, src, dst_client, dst, subject, opts, progress, 0)
}

#[allow(clippy::too_many_arguments)]
fn carry_at(
    src_client: &Client,
    src: &Reference,
    dst_client: &Client,
    dst: &Reference,
    subject: &Digest,
    opts: &CopyOptions,
    progress: &dyn Progress,
    depth: usize,
) -> Result<usize, CopyError> {
    // Each manifest is copied alone: its own referrers come next, here.
    let one = CopyOptions {
        all: Some(true),
        platform: None,
        max_concurrent: opts.max_concurrent,
        trust: None,
        referrers: false,
        source_tags: opts.source_tags.clone(),
    };
    let copy_one = |from: Reference, to: Reference| -> Result<Digest, CopyError> {
        let s = RegistrySource {
            client: src_client,
            reference: from,
        };
        let d = RegistryDestination {
            client: dst_client,
            reference: to,
        };
        Ok(copy(&s, &d, &one, progress)?.digest)
    };
    let mut carried = 0;
    let listed = remote::referrers_of(src_client, src, subject, None, &|tag| opts.source_may_have(tag))?;
    let mut added = Vec::new();
    for d in &listed.manifests {
        let at = dst.with_digest(d.digest.clone());
        if dst_client.head_manifest(&at)?.is_none() {
            progress.message(&format!("Copying referrer {}", d.digest.short()));
            copy_one(src.with_digest(d.digest.clone()), at)?;
            carried += 1;
        }
        added.push(d.clone());
        if depth + 1 < MAX_DEPTH {
            carried += carry_at(src_client, src, dst_client, dst, &d.digest, opts, progress, depth + 1)?;
        }
    }
    remote::index_referrers(dst_client, dst, subject, &added)?;
    for suffix in LEGACY_SUFFIXES {
        let tag = format!("{}.{suffix}", remote::referrers_tag(subject));
        if !opts.source_may_have(&tag) {
            continue;
        }
        let (from, to) = (
            src.with_tag(&tag).map_err(RemoteError::from)?,
            dst.with_tag(&tag).map_err(RemoteError::from)?,
        );
        let Some(have) = src_client.head_manifest(&from)? else {
            continue;
        };
        if dst_client.head_manifest(&to)?.map(|h| h.digest) == Some(have.digest) {
            continue;
        }
        progress.message(&format!("Copying {tag}"));
        copy_one(from, to)?;
        carried += 1;
    }
    Ok(carried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_tags() {
        let hex = "a".repeat(64);
        for t in ["", ".sig", ".att", ".sbom"] {
            assert!(is_attachment_tag(&format!("sha256-{hex}{t}")), "{t}");
        }
        assert!(!is_attachment_tag(&format!("sha256-{hex}.other")));
        assert!(!is_attachment_tag("sha256-abc"));
        assert!(!is_attachment_tag(&format!("sha256-{}", "A".repeat(64))));
        assert!(!is_attachment_tag("latest"));
    }
}
