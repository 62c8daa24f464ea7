//! The registry toolkit: `manifest inspect`, `inspect --remote`, `tags`,
//! `catalog`, `digest`, `config`, `blob`, `delete`, `tag --remote`,
//! `referrers` (artifacts and manifest list drafts are in `artifact.rs`).
//! Each validates its arguments before any request. `manifest inspect`,
//! `inspect --remote`, `digest` and `config` also read what `copy` reads:
//! `docker://REF`, `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`,
//! `docker-archive:FILE[:REF]` and `barge:IMAGE` (the store).

use super::Env;
use crate::args::{
    BlobArgs, CatalogArgs, ConfigArgs, DeleteArgs, DigestArgs, InspectArgs, ManifestInspectArgs, ReferrersArgs,
    TagArgs, TagsArgs,
};
use crate::failure::{Context, Failure};
use crate::format::Template;
use barge_engine::remote::{self, BlobOutput};
use barge_engine::transport::Location;
use barge_oci::{Digest, Reference};
use base64::Engine as _;
use serde_json::{json, Value};
use std::io::Write;

/// A reference to an image: `NAME[:TAG|@DIGEST]`, `latest` by default.
pub(super) fn image_ref(input: &str) -> Result<Reference, Failure> {
    Reference::parse_default_tag(input).context(|| format!("invalid reference {input:?}"))
}

/// What a verb reads: a registry image (`REF` or `docker://REF`), or an
/// image of another transport (`oci:`, `oci-archive:`, `docker-archive:`,
/// `barge:`).
enum Target {
    Registry(Reference),
    Local(Location),
}

fn target(input: &str) -> Result<Target, Failure> {
    if let Some(r) = input.strip_prefix("docker://") {
        return image_ref(r).map(Target::Registry);
    }
    if ["oci:", "oci-archive:", "docker-archive:", "barge:"]
        .iter()
        .any(|t| input.starts_with(t))
    {
        return Location::parse(input)
            .map(Target::Local)
            .context(|| format!("invalid location {input:?}"));
    }
    image_ref(input).map(Target::Registry)
}

/// Runs `f` on the image at a non-registry `loc`, with the store opened
/// (and locked) when the transport needs it.
fn with_source<T>(
    env: &Env,
    input: &str,
    loc: &Location,
    f: impl FnOnce(&dyn barge_engine::transport::Source) -> Result<T, barge_engine::CopyError>,
) -> Result<T, Failure> {
    let (store, _lock) = super::copy::store_if(env, super::copy::needs_store(loc))?;
    let src = super::copy::open_source(loc, None, store.as_ref()).context(|| format!("opening {input}"))?;
    f(src.as_ref()).context(|| format!("reading {input}"))
}

/// Refuses a flag's value that is not a media type (`type/subtype`).
pub(super) fn media_type_arg(flag: &str, value: &str) -> Result<(), Failure> {
    match value.split_once('/') {
        Some((t, s)) if !t.is_empty() && !s.is_empty() && !value.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(Failure::msg(format!(
            "{flag} {value:?}: give a media type, such as application/vnd.dev.cosign.artifact.sig.v1+json"
        ))),
    }
}

/// A repository alone: no tag, no digest.
fn repository_ref(input: &str) -> Result<Reference, Failure> {
    let r = Reference::parse(input).context(|| format!("invalid repository {input:?}"))?;
    if r.tag().is_some() || r.digest().is_some() {
        return Err(Failure::msg(format!(
            "{input}: give the repository alone, without a tag or digest ({})",
            r.familiar_name()
        )));
    }
    Ok(r)
}

/// Prints `v` as indented JSON with `indent`.
fn print_json(v: &impl serde::Serialize, indent: &[u8]) -> Result<(), Failure> {
    let mut buf = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut buf, serde_json::ser::PrettyFormatter::with_indent(indent));
    v.serialize(&mut ser).context(|| "printing".to_string())?;
    buf.push(b'\n');
    write_stdout(&buf)
}

fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context(|| "writing to standard output".to_string())
}

/// Rows through `--format`: `json` prints `document`; a template renders
/// each row; none prints each row's `field`, one a line.
fn print_listing(format: Option<&str>, document: &Value, rows: &[Value], field: &str) -> Result<(), Failure> {
    match format {
        Some("json") => print_json(document, b"    "),
        Some(t) => {
            let t = Template::parse(t).context(|| "--format".to_string())?;
            let mut out = String::new();
            for row in rows {
                out.push_str(
                    &t.render(&crate::format::sanitized(row))
                        .context(|| "--format".to_string())?,
                );
                out.push('\n');
            }
            write_stdout(out.as_bytes())
        }
        None => {
            let mut out = String::new();
            for row in rows {
                out.push_str(&barge_registry::sanitize(row[field].as_str().unwrap_or_default()));
                out.push('\n');
            }
            write_stdout(out.as_bytes())
        }
    }
}

/// A manifest's bytes as `docker manifest inspect` shows them: tab-indented JSON.
fn pretty_manifest(bytes: &[u8]) -> Result<Value, Failure> {
    serde_json::from_slice(bytes).context(|| "the manifest is not JSON".to_string())
}

pub fn manifest_inspect(env: &Env, a: &ManifestInspectArgs) -> Result<i32, Failure> {
    let platform = super::platform(a.platform.as_deref())?;
    let reference = match target(&a.reference)? {
        Target::Registry(r) => r,
        Target::Local(_) if a.verbose => {
            return Err(Failure::msg(
                "--verbose shows a registry's manifests: give docker://REF, or leave it out",
            ))
        }
        Target::Local(loc) => {
            let m = with_source(env, &a.reference, &loc, |src| {
                remote::source_manifest(src, platform.as_ref())
            })?;
            if a.raw {
                write_stdout(&m.bytes)?;
            } else {
                print_json(&pretty_manifest(&m.bytes)?, b"\t")?;
            }
            return Ok(0);
        }
    };
    let client = env.client()?;
    let what = || format!("inspecting the manifest of {}", reference.familiar());
    if a.verbose {
        let (top, entries) = remote::manifests(&client, &reference).context(what)?;
        let is_index = matches!(top.manifest, barge_oci::Manifest::Index { .. });
        let mut shown = Vec::new();
        for e in entries {
            let other_platform =
                |p: &barge_oci::Platform| !e.descriptor.platform.as_ref().is_some_and(|h| p.matches(h));
            if is_index && platform.as_ref().is_some_and(other_platform) {
                continue;
            }
            let key = if e.manifest.media_type == barge_oci::media::OCI_MANIFEST {
                "OCIManifest"
            } else {
                "SchemaV2Manifest"
            };
            let mut v = json!({
                "Ref": e.reference.to_string(),
                "Descriptor": e.descriptor,
                "Raw": base64::engine::general_purpose::STANDARD.encode(&e.manifest.bytes),
            });
            v[key] = pretty_manifest(&e.manifest.bytes)?;
            shown.push(v);
        }
        match shown.pop() {
            Some(one) if !is_index => print_json(&one, b"\t")?,
            last => {
                shown.extend(last);
                print_json(&shown, b"\t")?
            }
        }
        return Ok(0);
    }
    let m = remote::manifest(&client, &reference, platform.as_ref()).context(what)?;
    if a.raw {
        write_stdout(&m.bytes)?;
    } else {
        print_json(&pretty_manifest(&m.bytes)?, b"\t")?;
    }
    Ok(0)
}

pub fn inspect_remote(env: &Env, a: &InspectArgs) -> Result<i32, Failure> {
    let targets = a.images.iter().map(|i| target(i)).collect::<Result<Vec<_>, _>>()?;
    let platform = super::platform(a.platform.as_deref())?;
    let template = match a.format.as_deref() {
        None | Some("json") => None,
        Some(t) => Some(Template::parse(t).context(|| "--format".to_string())?),
    };
    let client = if targets.iter().any(|t| matches!(t, Target::Registry(_))) {
        Some(env.client()?)
    } else {
        None
    };
    let mut shown = Vec::new();
    let mut failures = Vec::new();
    for (t, input) in targets.iter().zip(&a.images) {
        let img = match (t, &client) {
            (Target::Registry(r), Some(client)) => remote::inspect(client, r, platform.as_ref())
                .map_err(|e| Failure::new(format!("inspecting {}", r.familiar()), e)),
            (Target::Registry(_), None) => Err(Failure::msg("no registry client")),
            (Target::Local(loc), _) => {
                with_source(env, input, loc, |src| remote::source_inspect(src, platform.as_ref()))
            }
        };
        match img {
            Ok(img) => shown.push(serde_json::to_value(img).context(|| "printing".to_string())?),
            Err(f) => failures.push(f),
        }
    }
    match &template {
        None if targets.len() == 1 => {
            if let Some(one) = shown.first() {
                print_json(one, b"    ")?;
            }
        }
        None => print_json(&shown, b"    ")?,
        Some(t) => {
            for v in &shown {
                let line = t
                    .render(&crate::format::sanitized(v))
                    .context(|| "--format".to_string())?;
                write_stdout(format!("{line}\n").as_bytes())?;
            }
        }
    }
    let failed = !failures.is_empty();
    for f in failures {
        f.print(false);
    }
    Ok(if failed { 1 } else { 0 })
}

pub fn tags(env: &Env, a: &TagsArgs) -> Result<i32, Failure> {
    let repo = repository_ref(&a.repository)?;
    if let Some(t) = a.format.as_deref().filter(|f| *f != "json") {
        Template::parse(t).context(|| "--format".to_string())?;
    }
    let client = env.client()?;
    let tags = client
        .list_tags(&repo, a.page_size)
        .context(|| format!("listing the tags of {}", repo.familiar_name()))?;
    let name = repo.name();
    let rows: Vec<Value> = tags.iter().map(|t| json!({"Repository": name, "Tag": t})).collect();
    print_listing(
        a.format.as_deref(),
        &json!({"Repository": name, "Tags": tags}),
        &rows,
        "Tag",
    )?;
    Ok(0)
}

pub fn catalog(env: &Env, a: &CatalogArgs) -> Result<i32, Failure> {
    let bad = || {
        Failure::msg(format!(
            "invalid registry {:?}: give HOST[:PORT], such as localhost:5000",
            a.registry
        ))
    };
    if a.registry.is_empty() || a.registry.contains(['/', '@']) {
        return Err(bad());
    }
    let any = Reference::parse(&format!("{}/x", a.registry)).map_err(|_| bad())?;
    if any.registry() != a.registry {
        return Err(bad());
    }
    if let Some(t) = a.format.as_deref().filter(|f| *f != "json") {
        Template::parse(t).context(|| "--format".to_string())?;
    }
    let client = env.client()?;
    let repos = client
        .catalog(&any, a.page_size)
        .context(|| format!("listing the repositories of {}", a.registry))?;
    let rows: Vec<Value> = repos
        .iter()
        .map(|r| json!({"Registry": a.registry, "Repository": r}))
        .collect();
    print_listing(
        a.format.as_deref(),
        &json!({"Registry": a.registry, "Repositories": repos}),
        &rows,
        "Repository",
    )?;
    Ok(0)
}

pub fn digest(env: &Env, a: &DigestArgs) -> Result<i32, Failure> {
    let reference = match target(&a.reference)? {
        Target::Registry(r) => r,
        Target::Local(loc) => {
            let top = with_source(env, &a.reference, &loc, |src| src.manifest())?;
            write_stdout(format!("{}\n", top.digest).as_bytes())?;
            return Ok(0);
        }
    };
    let client = env.client()?;
    let d = remote::digest(&client, &reference).context(|| format!("resolving {}", reference.familiar()))?;
    write_stdout(format!("{d}\n").as_bytes())?;
    Ok(0)
}

pub fn config(env: &Env, a: &ConfigArgs) -> Result<i32, Failure> {
    let platform = super::platform(a.platform.as_deref())?;
    let reference = match target(&a.reference)? {
        Target::Registry(r) => r,
        Target::Local(loc) => {
            let bytes = with_source(env, &a.reference, &loc, |src| {
                remote::source_config(src, platform.as_ref())
            })?;
            write_stdout(&bytes)?;
            return Ok(0);
        }
    };
    let client = env.client()?;
    let bytes = remote::config(&client, &reference, platform.as_ref())
        .context(|| format!("reading the config of {}", reference.familiar()))?;
    write_stdout(&bytes)?;
    Ok(0)
}

pub fn blob(env: &Env, a: &BlobArgs) -> Result<i32, Failure> {
    let reference = Reference::parse(&a.reference).context(|| format!("invalid blob reference {:?}", a.reference))?;
    let Some(digest) = reference.digest().cloned() else {
        return Err(Failure::msg(format!(
            "{}: name the blob by digest: REPOSITORY@sha256:<hex>",
            a.reference
        )));
    };
    if let Some(path) = &a.output {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        if !dir.is_dir() {
            return Err(Failure::msg(format!(
                "-o {}: the directory {} does not exist",
                path.display(),
                dir.display()
            )));
        }
        if path.is_dir() {
            return Err(Failure::msg(format!("-o {}: is a directory", path.display())));
        }
    }
    let client = env.client()?;
    let what = || format!("reading blob {digest} of {}", reference.familiar_name());
    match &a.output {
        Some(path) => remote::blob(&client, &reference, &digest, BlobOutput::File(path)).context(what)?,
        None => {
            let mut out = std::io::stdout().lock();
            remote::blob(&client, &reference, &digest, BlobOutput::Stream(&mut out)).context(what)?
        }
    };
    Ok(0)
}

pub fn delete(env: &Env, a: &DeleteArgs) -> Result<i32, Failure> {
    let reference = Reference::parse(&a.reference).context(|| format!("invalid reference {:?}", a.reference))?;
    if reference.tag().is_none() && reference.digest().is_none() {
        return Err(Failure::msg(format!(
            "{}: name what to delete with a tag or digest (NAME:TAG or NAME@sha256:<hex>); barge does not assume latest here",
            a.reference
        )));
    }
    let client = env.client()?;
    let d: Digest = remote::delete(&client, &reference).context(|| format!("deleting {}", reference.familiar()))?;
    write_stdout(format!("Deleted: {}@{d}\n", reference.familiar_name()).as_bytes())?;
    Ok(0)
}

pub fn tag_remote(env: &Env, a: &TagArgs) -> Result<i32, Failure> {
    let source = image_ref(&a.source)?;
    // TARGET: a tag alone, or a reference in the source's repository.
    let target = match source.with_tag(&a.target) {
        Ok(t) if !a.target.contains(['/', '@']) => t,
        _ => Reference::parse_default_tag(&a.target).context(|| format!("invalid target {:?}", a.target))?,
    };
    let Some(tag) = target.tag().filter(|_| target.digest().is_none()) else {
        return Err(Failure::msg(format!(
            "refusing to create a tag with a digest reference: {}",
            a.target
        )));
    };
    if target.registry() != source.registry() || target.repository() != source.repository() {
        return Err(Failure::msg(format!(
            "{} is not in {}'s repository: tag --remote moves no blob, so it tags within one repository; use 'barge copy docker://{} docker://{}' to copy",
            target.familiar(),
            source.familiar(),
            source,
            target
        )));
    }
    let client = env.client()?;
    let d = remote::retag(&client, &source, tag)
        .context(|| format!("tagging {} as {}", source.familiar(), target.familiar()))?;
    write_stdout(format!("{}@{d}\n", target.familiar()).as_bytes())?;
    Ok(0)
}

pub fn referrers(env: &Env, a: &ReferrersArgs) -> Result<i32, Failure> {
    let reference = image_ref(&a.reference)?;
    if let Some(t) = &a.artifact_type {
        media_type_arg("--artifact-type", t)?;
    }
    if let Some(t) = a.format.as_deref().filter(|f| *f != "json") {
        Template::parse(t).context(|| "--format".to_string())?;
    }
    let client = env.client()?;
    let found = remote::referrers(&client, &reference, a.artifact_type.as_deref())
        .context(|| format!("listing the referrers of {}", reference.familiar()))?;
    let document = json!({
        "schemaVersion": 2,
        "mediaType": barge_oci::media::OCI_INDEX,
        "manifests": found.manifests,
    });
    let rows: Vec<Value> = found
        .manifests
        .iter()
        .map(|d| {
            json!({
                "Digest": d.digest.to_string(),
                "ArtifactType": d.artifact_type.clone().unwrap_or_default(),
                "MediaType": d.media_type,
                "Size": d.size,
                "Annotations": d.annotations,
            })
        })
        .collect();
    match a.format.as_deref() {
        Some(f) => print_listing(Some(f), &document, &rows, "Digest")?,
        None => {
            let mut lines = vec!["DIGEST\tARTIFACT TYPE\tSIZE".to_string()];
            for r in &rows {
                let cell = |k: &str| barge_registry::sanitize(r[k].as_str().unwrap_or_default());
                lines.push(format!("{}\t{}\t{}", cell("Digest"), cell("ArtifactType"), r["Size"]));
            }
            write_stdout(crate::format::tabulate(&lines).as_bytes())?;
        }
    }
    if found.source == remote::ReferrersSource::TagSchema {
        eprintln!(
            "note: {} has no referrers API; listed the {} tag instead",
            reference.registry(),
            remote::referrers_tag(&found.subject)
        );
    }
    Ok(0)
}
