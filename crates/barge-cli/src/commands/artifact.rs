//! `barge artifact push` and `barge artifact pull`: files as OCI artifacts.

use super::toolkit::{image_ref, media_type_arg};
use super::Env;
use crate::args::{ArtifactPullArgs, ArtifactPushArgs};
use crate::failure::{Context, Failure};
use barge_engine::artifact::{self, ArtifactFile, ArtifactPush};
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
    let reference = image_ref(&a.reference)?;
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
