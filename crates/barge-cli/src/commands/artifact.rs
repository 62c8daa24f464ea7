//! `barge artifact push` and `barge artifact pull`: files as OCI
//! artifacts; `barge manifest create|annotate|push|rm`: manifest lists
//! drafted locally.

use super::toolkit::{image_ref, media_type_arg};
use super::Env;
use crate::args::{
    ArtifactPullArgs, ArtifactPushArgs, ManifestAnnotateArgs, ManifestCreateArgs, ManifestPushArgs, ManifestRmArgs,
};
use crate::failure::{Context, Failure};
use barge_engine::artifact::{self, ArtifactFile, ArtifactPush};
use barge_engine::manifest_list::{Drafts, ListFormat};
use barge_oci::Reference;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `FILE[:MEDIATYPE]`: the part after the last `:` is a media type when it
/// looks like one (`type/subtype`), else the whole is the file's path.
fn artifact_file(arg: &str) -> Result<ArtifactFile, Failure> {
    let (path, media_type) = match arg.rsplit_once(':') {
        Some((p, t)) if !p.is_empty() && t.contains('/') && !t.starts_with('/') => (p, Some(t)),
        _ => (arg, None),
    };
    if let Some(t) = media_type {
        media_type_arg(&format!("{path}:"), t)?;
    }
    let path = PathBuf::from(path);
    let meta = std::fs::metadata(&path).context(|| format!("the file {}", path.display()))?;
    if !meta.is_file() {
        return Err(Failure::msg(format!(
            "{}: not a regular file; push files one by one (or a tar of a directory)",
            path.display()
        )));
    }
    Ok(ArtifactFile {
        path,
        media_type: media_type.map(str::to_string),
    })
}

pub fn push(env: &Env, a: &ArtifactPushArgs) -> Result<i32, Failure> {
    // With a subject, a repository alone means no tag: the artifact is found through its subject.
    let reference = match &a.subject {
        Some(_) => Reference::parse(&a.reference).context(|| format!("invalid reference {:?}", a.reference))?,
        None => image_ref(&a.reference)?,
    };
    media_type_arg("--artifact-type", &a.artifact_type)?;
    let files = a
        .files
        .iter()
        .map(|f| artifact_file(f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut annotations = BTreeMap::new();
    for s in &a.annotations {
        if let Some((k, v)) = super::build::key_value("--annotation", s)? {
            annotations.insert(k, v);
        }
    }
    let subject = a.subject.as_deref().map(image_ref).transpose()?;
    let client = env.client()?;
    let pushed = artifact::push(
        &client,
        &ArtifactPush {
            reference: &reference,
            artifact_type: &a.artifact_type,
            files: &files,
            annotations,
            subject: subject.as_ref(),
        },
    )
    .context(|| format!("pushing the artifact {}", reference.familiar()))?;
    if pushed.tag_schema {
        if let Some(s) = &pushed.subject {
            eprintln!(
                "note: {} has no referrers API; the artifact is listed under the {} tag",
                reference.registry(),
                barge_engine::remote::referrers_tag(s)
            );
        }
    }
    println!("{}", pushed.descriptor.digest);
    Ok(0)
}

pub fn pull(env: &Env, a: &ArtifactPullArgs) -> Result<i32, Failure> {
    let reference = image_ref(&a.reference)?;
    let client = env.client()?;
    let pulled = artifact::pull(&client, &reference, &a.output).context(|| {
        format!(
            "pulling the artifact {} into {}",
            reference.familiar(),
            a.output.display()
        )
    })?;
    for f in &pulled.files {
        println!("Downloaded {} ({} bytes)", barge_registry::sanitize(&f.title), f.size);
    }
    if pulled.untitled > 0 {
        eprintln!(
            "note: {} layers have no title (org.opencontainers.image.title) and were not written",
            pulled.untitled
        );
    }
    println!("Digest: {}", pulled.digest);
    Ok(0)
}

/// The drafts of this store.
fn drafts(env: &Env) -> Result<Drafts, Failure> {
    Ok(Drafts::new(env.store()?.root()))
}

pub fn manifest_create(env: &Env, a: &ManifestCreateArgs) -> Result<i32, Failure> {
    let list = image_ref(&a.list)?;
    let images = a.images.iter().map(|i| image_ref(i)).collect::<Result<Vec<_>, _>>()?;
    let drafts = drafts(env)?;
    let client = env.client()?;
    let draft = drafts
        .create(&client, &list, &images, a.amend)
        .context(|| format!("creating the manifest list {}", list.familiar()))?;
    println!("Created manifest list {} ({} manifests)", list, draft.entries.len());
    Ok(0)
}

pub fn manifest_annotate(env: &Env, a: &ManifestAnnotateArgs) -> Result<i32, Failure> {
    let list = image_ref(&a.list)?;
    let image = image_ref(&a.image)?;
    if a.os.is_none() && a.arch.is_none() && a.variant.is_none() {
        return Err(Failure::msg("give --os, --arch or --variant to annotate with"));
    }
    drafts(env)?
        .annotate(&list, &image, a.os.as_deref(), a.arch.as_deref(), a.variant.as_deref())
        .context(|| format!("annotating {} in {}", image.familiar(), list.familiar()))?;
    Ok(0)
}

pub fn manifest_push(env: &Env, a: &ManifestPushArgs) -> Result<i32, Failure> {
    let list = image_ref(&a.list)?;
    let dest = match &a.destination {
        Some(d) => image_ref(d)?,
        None => list.clone(),
    };
    let format = if a.format == "v2s2" {
        ListFormat::Docker
    } else {
        ListFormat::Oci
    };
    let drafts = drafts(env)?;
    let what = || format!("pushing the manifest list {} to {}", list.familiar(), dest.familiar());
    let draft = drafts.load(&list).context(what)?;
    let client = env.client()?;
    let digest = barge_engine::manifest_list::push(&client, &draft, &dest, format, 3).context(what)?;
    if a.purge {
        drafts.remove(&list).context(what)?;
    }
    println!("{digest}");
    Ok(0)
}

pub fn manifest_rm(env: &Env, a: &ManifestRmArgs) -> Result<i32, Failure> {
    let drafts = drafts(env)?;
    let mut failed = 0;
    for l in &a.lists {
        let removed = image_ref(l).and_then(|list| drafts.remove(&list).context(|| format!("removing {l}")));
        if let Err(e) = removed {
            eprintln!("Error: {e}");
            failed += 1;
        }
    }
    Ok(i32::from(failed > 0))
}
