//! What this process has learned about repositories it writes to, so that
//! a copy into a repository barge found empty (a first mirror) need not
//! ask about every blob and manifest it is about to write.
//!
//! Nothing here is assumed: a repository is "empty" only after a caller
//! listed its tags and found none ([`Client::assume_empty`]); from then on
//! a blob or manifest barge has not written there is taken as absent, and
//! what it wrote (or a registry confirmed) as present. Being wrong can only
//! cost a blob sent twice: an upload of a blob a registry has is harmless.

use crate::client::Client;
use barge_oci::{Digest, Reference};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

#[derive(Default)]
pub(crate) struct Known {
    repos: Mutex<HashMap<String, Repo>>,
}

#[derive(Default)]
struct Repo {
    /// Listed with no tags by this process.
    empty: bool,
    blobs: HashSet<Digest>,
    /// Tags and digests of manifests written.
    manifests: HashSet<String>,
}

fn key(r: &Reference) -> String {
    format!("{}/{}", r.api_host(), r.repository())
}

impl Known {
    fn with<T>(&self, r: &Reference, f: impl FnOnce(&mut Repo) -> T) -> T {
        let mut repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        f(repos.entry(key(r)).or_default())
    }
}

impl Client {
    /// `r`'s repository had no tag when this process listed it: until barge
    /// writes to it, blobs and manifests are taken as absent without asking.
    pub fn assume_empty(&self, r: &Reference) {
        self.known.with(r, |k| k.empty = true);
    }

    /// Whether `digest` is known present (written or confirmed) or known
    /// absent (an empty repository barge has not written it to); `None`:
    /// the registry must be asked.
    pub(crate) fn known_blob(&self, r: &Reference, digest: &Digest) -> Option<bool> {
        self.known.with(r, |k| match k.blobs.contains(digest) {
            true => Some(true),
            false if k.empty => Some(false),
            false => None,
        })
    }

    pub(crate) fn note_blob(&self, r: &Reference, digest: &Digest) {
        self.known.with(r, |k| {
            k.blobs.insert(digest.clone());
        });
    }

    /// Whether the manifest `key` (a tag or digest) is known absent: in a
    /// repository found empty, not written since. A present one is asked
    /// for (its digest may have changed).
    pub(crate) fn known_absent_manifest(&self, r: &Reference, key: &str) -> bool {
        self.known.with(r, |k| k.empty && !k.manifests.contains(key))
    }

    pub(crate) fn note_manifest(&self, r: &Reference, key: &str, digest: &Digest) {
        self.known.with(r, |k| {
            k.manifests.insert(key.to_string());
            k.manifests.insert(digest.to_string());
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::{Client, ClientOptions};
    use barge_oci::{Digest, Reference};
    use std::sync::Arc;

    #[test]
    fn only_a_listed_empty_repository_answers_for_the_registry() {
        let client = Client::new(Arc::new(barge_auth::Anonymous), ClientOptions::default());
        let r = Reference::parse("localhost:5000/app:1").unwrap();
        let other = Reference::parse("localhost:5000/other:1").unwrap();
        let d = Digest::of(b"blob");
        assert_eq!(client.known_blob(&r, &d), None, "nothing known: ask");
        client.assume_empty(&r);
        assert_eq!(client.known_blob(&r, &d), Some(false));
        assert_eq!(client.known_blob(&other, &d), None, "another repository");
        client.note_blob(&r, &d);
        assert_eq!(client.known_blob(&r, &d), Some(true));
        assert!(client.known_absent_manifest(&r, "1"));
        client.note_manifest(&r, "1", &Digest::of(b"m"));
        assert!(!client.known_absent_manifest(&r, "1"));
        assert!(!client.known_absent_manifest(&r, &Digest::of(b"m").to_string()));
        assert!(!client.known_absent_manifest(&other, "1"));
    }
}
