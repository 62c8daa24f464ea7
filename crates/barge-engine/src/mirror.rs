//! `barge mirror`: tags, repositories or whole registries copied from one
//! registry to another, every platform, digests preserved.
//!
//! Each image is checked with a `HEAD` of the source manifest, compared
//! with what barge recorded at the destination last time (or, without a
//! record, a `HEAD` there); only when the digests differ is it copied, so a
//! re-run over an unchanged source sends one request per tag and moves no
//! manifest body and no blob byte. A destination repository without tags
//! (one page of its tag list, asked once) is copied into without asking it
//! about each blob and manifest ([`Client::assume_empty`]), and its images
//! without a `HEAD` of their source first: the copy's `GET` says the digest.

use crate::copy::{copy, CopyError, CopyOptions};
use crate::transport::{RegistryDestination, RegistrySource};
use crate::Silent;
use barge_oci::{Digest, Reference};
use barge_registry::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;

/// One side of a mirror, as written by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Every repository of a registry (`localhost:5000`, `registry.example.com/`),
    /// with an optional repository prefix when used as a destination.
    Registry { host: String, prefix: String },
    /// Every tag of a repository (`host/app`).
    Repository(Reference),
    /// One tag or digest (`host/app:1.0`).
    Image(Reference),
}

impl Endpoint {
    /// Parses `REGISTRY[/]`, `REGISTRY/PREFIX/` (a destination prefix), `REPOSITORY`
    /// or `REPOSITORY:TAG`; a `docker://` prefix is accepted.
    pub fn parse(s: &str) -> Result<Endpoint, CopyError> {
        let bad = |why: &str| CopyError::BadLocation {
            location: s.to_string(),
            why: why.to_string(),
        };
        let t = s.strip_prefix("docker://").unwrap_or(s);
        if t.is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some(stripped) = t.strip_suffix('/') {
            let (host, prefix) = stripped.split_once('/').unwrap_or((stripped, ""));
            return Endpoint::registry(host, prefix).map_err(|e| bad(&e.to_string()));
        }
        if !t.contains('/') && looks_like_host(t) {
            return Endpoint::registry(t, "").map_err(|e| bad(&e.to_string()));
        }
        let r = Reference::parse(t).map_err(|e| bad(&e.to_string()))?;
        Ok(if r.tag().is_some() || r.digest().is_some() {
            Endpoint::Image(r)
        } else {
            Endpoint::Repository(r)
        })
    }

    fn registry(host: &str, prefix: &str) -> Result<Endpoint, barge_oci::ReferenceError> {
        // Validate both through the reference parser.
        Reference::parse(&format!("{host}/{}", if prefix.is_empty() { "x" } else { prefix }))?;
        Ok(Endpoint::Registry {
            host: host.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// `localhost`, `localhost:5000`, `10.0.0.1:5000`, `registry.example.com`,
/// but not `busybox:1.36` (a tag) or `ubuntu`.
fn looks_like_host(s: &str) -> bool {
    let host = s.split(':').next().unwrap_or(s);
    host == "localhost" || host.contains('.') || s.starts_with('[')
}

/// A tag filter: a regular expression that must match the whole tag.
#[derive(Debug, Clone)]
pub struct TagFilter(regex_lite::Regex);

impl TagFilter {
    pub fn new(pattern: &str) -> Result<TagFilter, CopyError> {
        regex_lite::Regex::new(&format!("^(?:{pattern})$"))
            .map(TagFilter)
            .map_err(|e| CopyError::Invalid(format!("tag pattern {pattern:?}: {e}")))
    }

    pub fn matches(&self, tag: &str) -> bool {
        self.0.is_match(tag)
    }
}

/// One image to mirror.
#[derive(Debug, Clone)]
pub struct MirrorJob {
    pub source: Reference,
    pub destination: Reference,
    /// Every tag of the source repository, when the plan listed them.
    pub source_tags: Option<Arc<BTreeSet<String>>>,
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorResult {
    /// The destination already had this digest.
    Unchanged(Digest),
    /// Copied; the digest now at the destination.
    Copied(Digest),
    /// `--dry-run`: would have been copied.
    WouldCopy(Digest),
}

/// The images a source/destination pair stands for. Lists tags (and the
/// catalog for a whole registry); fetches no manifest. With `referrers`,
/// the tags that hold what is attached to an image (`sha256-<hex>`,
/// `.sig`, `.att`, `.sbom`) are left out: they travel with their image.
pub fn plan(
    client: &Client,
    source: &Endpoint,
    destination: &Endpoint,
    tags: Option<&TagFilter>,
    referrers: bool,
) -> Result<Vec<MirrorJob>, CopyError> {
    let wanted =
        |t: &String| tags.is_none_or(|f| f.matches(t)) && !(referrers && crate::attached::is_attachment_tag(t));
    let repo_jobs = |src: &Reference, dst: &Reference| -> Result<Vec<MirrorJob>, CopyError> {
        let mut jobs = Vec::new();
        let all: Arc<BTreeSet<String>> = Arc::new(
            client
                .list_tags(src, barge_registry::DEFAULT_PAGE_SIZE)?
                .into_iter()
                .collect(),
        );
        for t in all.iter().filter(|t| wanted(t)) {
            jobs.push(MirrorJob {
                source: src.with_tag(t).map_err(|e| CopyError::Invalid(e.to_string()))?,
                destination: dst.with_tag(t).map_err(|e| CopyError::Invalid(e.to_string()))?,
                source_tags: Some(all.clone()),
            });
        }
        Ok(jobs)
    };
    match (source, destination) {
        (Endpoint::Image(src), Endpoint::Image(dst)) => Ok(vec![MirrorJob {
            source: src.clone(),
            destination: dst.clone(),
            source_tags: None,
        }]),
        (Endpoint::Image(src), Endpoint::Repository(dst)) => Ok(vec![MirrorJob {
            source: src.clone(),
            destination: moved(src, dst.registry(), dst.repository(), true)?,
            source_tags: None,
        }]),
        (Endpoint::Image(src), Endpoint::Registry { host, prefix }) => Ok(vec![MirrorJob {
            source: src.clone(),
            destination: moved(src, host, prefix, false)?,
            source_tags: None,
        }]),
        (Endpoint::Repository(src), Endpoint::Repository(dst)) => repo_jobs(src, dst),
        (Endpoint::Repository(src), Endpoint::Registry { host, prefix }) => {
            repo_jobs(src, &moved(src, host, prefix, false)?)
        }
        (Endpoint::Registry { host, prefix: under }, Endpoint::Registry { host: dhost, prefix }) => {
            let any = Reference::parse(&format!("{host}/x")).map_err(|e| CopyError::Invalid(e.to_string()))?;
            let mut jobs = Vec::new();
            for repo in client.catalog(&any, barge_registry::DEFAULT_PAGE_SIZE)? {
                // `HOST/PREFIX/` as a source: the repositories below PREFIX, named without it.
                let rest = if under.is_empty() {
                    repo.clone()
                } else if let Some(r) = repo.strip_prefix(&format!("{under}/")) {
                    r.to_string()
                } else if repo == *under {
                    repo.rsplit('/').next().unwrap_or(&repo).to_string()
                } else {
                    continue;
                };
                let src = Reference::parse(&format!("{host}/{repo}")).map_err(|e| CopyError::Invalid(e.to_string()))?;
                let dst_path = if prefix.is_empty() {
                    rest
                } else {
                    format!("{prefix}/{rest}")
                };
                jobs.extend(repo_jobs(&src, &moved(&src, dhost, &dst_path, true)?)?);
            }
            Ok(jobs)
        }
        (Endpoint::Registry { .. }, _) => Err(CopyError::Invalid(
            "a whole registry can only be mirrored to a registry (HOST or HOST/PREFIX/)".into(),
        )),
        (Endpoint::Repository(_), Endpoint::Image(_)) => Err(CopyError::Invalid(
            "a repository's tags cannot all go to one tag: give a repository or registry as destination".into(),
        )),
    }
}

/// `src` on `registry`: below `path` (a prefix), or as `path` itself (a repository).
fn moved(src: &Reference, registry: &str, path: &str, replace: bool) -> Result<Reference, CopyError> {
    let r = if replace {
        let base = Reference::parse(&format!("{registry}/{path}")).map_err(|e| CopyError::Invalid(e.to_string()))?;
        match (src.tag(), src.digest()) {
            (_, Some(d)) => Ok(base.with_digest(d.clone())),
            (Some(t), None) => base.with_tag(t),
            (None, None) => Ok(base),
        }
    } else {
        src.moved_to(registry, path)
    };
    r.map_err(|e| CopyError::Invalid(e.to_string()))
}

/// What barge last left at each destination (reference → manifest digest),
/// so that a re-run over unchanged tags asks the source only: one `HEAD`
/// per tag. Kept in a JSON file; `verify` asks the destination anyway.
pub struct MirrorRecord {
    path: Option<PathBuf>,
    digests: Mutex<BTreeMap<String, String>>,
    /// Destination repositories asked for a tag in this run: whether they had none.
    empty: Mutex<BTreeMap<String, bool>>,
}

impl MirrorRecord {
    /// A record kept in `path` (read now; missing or unreadable: empty).
    pub fn at(path: &Path) -> MirrorRecord {
        let digests = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        MirrorRecord {
            path: Some(path.to_path_buf()),
            digests: Mutex::new(digests),
            empty: Mutex::default(),
        }
    }

    /// A record that remembers nothing.
    pub fn none() -> MirrorRecord {
        MirrorRecord {
            path: None,
            digests: Mutex::new(BTreeMap::new()),
            empty: Mutex::default(),
        }
    }

    fn get(&self, destination: &Reference) -> Option<String> {
        self.digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&destination.to_string())
            .cloned()
    }

    /// Whether `destination`'s repository had no tag when first asked in
    /// this run (then the client takes what barge has not written there
    /// as absent). One request per repository; an error answers no.
    fn destination_empty(&self, client: &Client, destination: &Reference) -> bool {
        let repo = format!("{}/{}", destination.registry(), destination.repository());
        let mut empty = self.empty.lock().unwrap_or_else(|p| p.into_inner());
        *empty.entry(repo).or_insert_with(|| {
            let none = client.has_tags(destination).is_ok_and(|has| !has);
            if none {
                client.assume_empty(destination);
            }
            none
        })
    }

    fn set(&self, destination: &Reference, digest: &Digest) {
        self.digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(destination.to_string(), digest.to_string());
    }

    /// Writes the record (temp file, rename).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let bytes = serde_json::to_vec_pretty(&*self.digests.lock().unwrap_or_else(|p| p.into_inner()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}

#[derive(Debug, Clone)]
pub struct MirrorOptions {
    /// Only find what would be copied.
    pub dry_run: bool,
    /// Ask the destination for every tag, not only the record.
    pub verify: bool,
    /// Images at once.
    pub parallel_images: usize,
    /// Blobs at once within an image.
    pub max_concurrent: usize,
    /// The policy each source image must pass; `None`: none.
    pub trust: Option<std::sync::Arc<crate::trust::TrustPolicy>>,
    /// Carry referrers and cosign's `.att`/`.sbom` tags with each image copied
    /// (and, with `verify`, with each image found unchanged).
    pub referrers: bool,
}

/// Mirrors one image: `HEAD` on the source; the destination is asked only
/// when the record does not already say it has that digest; every platform
/// is copied when they differ. Refuses to start a copy when the source
/// registry has announced that its pull quota is used up.
pub fn mirror_image(
    client: &Client,
    job: &MirrorJob,
    opts: &MirrorOptions,
    record: &MirrorRecord,
) -> Result<MirrorResult, CopyError> {
    // Into a repository without tags, an image is copied at once: its
    // digest comes with the manifest the copy fetches.
    let fresh = !opts.verify
        && !opts.dry_run
        && job.source.digest().is_none()
        && record.get(&job.destination).is_none()
        && record.destination_empty(client, &job.destination);
    if fresh {
        return copy_job(client, job, opts, record);
    }
    let want = match (job.source.digest(), client.head_manifest(&job.source)?) {
        (Some(d), _) => d.clone(),
        (None, Some(head)) => head.digest,
        // No digest in the answer (or no answer): the GET says which, or why not.
        (None, None) => client.get_manifest(&job.source)?.digest,
    };
    if !opts.verify && record.get(&job.destination).as_deref() == Some(want.to_string().as_str()) {
        return Ok(MirrorResult::Unchanged(want));
    }
    if let Some(have) = client.head_manifest(&job.destination)? {
        if have.digest == want {
            // Asked anyway: whatever was attached at the source since comes along.
            if opts.verify && opts.referrers && !opts.dry_run {
                crate::attached::carry(
                    (client, &job.source),
                    (client, &job.destination),
                    &want,
                    &CopyOptions {
                        max_concurrent: opts.max_concurrent,
                        source_tags: job.source_tags.clone(),
                        ..Default::default()
                    },
                    &Silent,
                )?;
            }
            record.set(&job.destination, &want);
            return Ok(MirrorResult::Unchanged(want));
        }
    }
    if opts.dry_run {
        return Ok(MirrorResult::WouldCopy(want));
    }
    copy_job(client, job, opts, record)
}

/// Copies one image of a mirror, every platform, and records its digest.
/// Refuses to start when the source registry has announced that its pull
/// quota is used up.
fn copy_job(
    client: &Client,
    job: &MirrorJob,
    opts: &MirrorOptions,
    record: &MirrorRecord,
) -> Result<MirrorResult, CopyError> {
    if let Some(limit) = client.rate_limit(job.source.api_host()) {
        if limit.remaining == 0 {
            return Err(CopyError::RateLimited {
                host: job.source.registry().to_string(),
                limit: limit.limit,
                window: limit.window,
            });
        }
    }
    let src = RegistrySource {
        client,
        reference: job.source.clone(),
    };
    let dst = RegistryDestination {
        client,
        reference: job.destination.clone(),
    };
    let copy_opts = CopyOptions {
        all: Some(true),
        platform: None,
        max_concurrent: opts.max_concurrent,
        trust: opts.trust.clone(),
        referrers: opts.referrers,
        source_tags: job.source_tags.clone(),
    };
    let out = copy(&src, &dst, &copy_opts, &Silent)?;
    record.set(&job.destination, &out.digest);
    Ok(MirrorResult::Copied(out.digest))
}

/// Mirrors every job, `parallel_images` at once, and reports each as it
/// ends. Every job runs whatever the others do; the results come back in
/// order.
pub fn mirror_all(
    client: &Client,
    jobs: &[MirrorJob],
    opts: &MirrorOptions,
    record: &MirrorRecord,
    on_done: &(dyn Fn(&MirrorJob, &Result<MirrorResult, CopyError>) + Sync),
) -> Vec<Result<MirrorResult, CopyError>> {
    let results: Vec<Mutex<Option<Result<MirrorResult, CopyError>>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let indexed: Vec<usize> = (0..jobs.len()).collect();
    let done = crate::parallel(
        &indexed,
        opts.parallel_images,
        |&i| -> Result<(), std::convert::Infallible> {
            let r = mirror_image(client, &jobs[i], opts, record);
            on_done(&jobs[i], &r);
            *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            Ok(())
        },
    );
    match done {
        Ok(()) => {}
        Err(never) => match never {},
    }
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| Err(CopyError::Invalid("not run".into())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let reg = |h: &str, p: &str| Endpoint::Registry {
            host: h.into(),
            prefix: p.into(),
        };
        assert_eq!(Endpoint::parse("localhost:5000").unwrap(), reg("localhost:5000", ""));
        assert_eq!(
            Endpoint::parse("docker://10.0.0.1:5000").unwrap(),
            reg("10.0.0.1:5000", "")
        );
        assert_eq!(
            Endpoint::parse("registry.example.com/").unwrap(),
            reg("registry.example.com", "")
        );
        assert_eq!(
            Endpoint::parse("localhost:5001/mirror/").unwrap(),
            reg("localhost:5001", "mirror")
        );
        assert!(matches!(Endpoint::parse("busybox:1.36").unwrap(), Endpoint::Image(_)));
        assert!(matches!(Endpoint::parse("ubuntu").unwrap(), Endpoint::Repository(_)));
        assert!(matches!(
            Endpoint::parse("localhost:5000/app").unwrap(),
            Endpoint::Repository(_)
        ));
        assert!(matches!(
            Endpoint::parse("localhost:5000/app:v1").unwrap(),
            Endpoint::Image(_)
        ));
        assert!(Endpoint::parse("").is_err());
        assert!(Endpoint::parse("Bad Host/").is_err());
    }

    #[test]
    fn tag_filters_match_whole_tags() {
        let f = TagFilter::new(r"1\.[0-9]+").unwrap();
        assert!(f.matches("1.36"));
        assert!(!f.matches("1.36-musl"));
        assert!(!f.matches("v1.36"));
        let f = TagFilter::new("latest|stable").unwrap();
        assert!(f.matches("stable") && !f.matches("latest-rc"));
        assert!(TagFilter::new("(").is_err());
    }

    #[test]
    fn destinations() {
        let src = Reference::parse("localhost:5000/library/app:1").unwrap();
        assert_eq!(
            moved(&src, "localhost:6000", "m", false).unwrap().to_string(),
            "localhost:6000/m/library/app:1"
        );
        assert_eq!(
            moved(&src, "localhost:6000", "other", true).unwrap().to_string(),
            "localhost:6000/other:1"
        );
    }
}
