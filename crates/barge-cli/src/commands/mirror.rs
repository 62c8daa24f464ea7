//! `barge mirror`.

use super::Env;
use crate::args::MirrorArgs;
use crate::failure::{Context, Failure};
use barge_engine::mirror::{self, Endpoint, MirrorJob, MirrorOptions, MirrorRecord, MirrorResult, TagFilter};
use serde::Deserialize;

/// A mirror file: `{"mirrors": [{"source": …, "destination": …, "tags": …}]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorFile {
    mirrors: Vec<MirrorEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorEntry {
    source: String,
    destination: String,
    #[serde(default)]
    tags: Option<String>,
}

pub fn mirror(env: &Env, a: &MirrorArgs) -> Result<i32, Failure> {
    let entries = entries(a)?;
    let client = env.client()?;
    let mut jobs: Vec<MirrorJob> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for e in &entries {
        let planned = (|| {
            let src = Endpoint::parse(&e.source)?;
            let dst = Endpoint::parse(&e.destination)?;
            let filter = e.tags.as_deref().map(TagFilter::new).transpose()?;
            mirror::plan(&client, &src, &dst, filter.as_ref(), a.referrers)
        })();
        match planned {
            Ok(j) => jobs.extend(j),
            Err(err) => {
                let line = format!("{} -> {}: {err}", e.source, e.destination);
                let line = barge_registry::sanitize(&line);
                eprintln!("Failed {line}");
                failures.push(line);
            }
        }
    }
    let quiet = a.quiet;
    let report = |job: &MirrorJob, r: &Result<MirrorResult, barge_engine::CopyError>| match r {
        Ok(MirrorResult::Copied(d)) if !quiet => println!("Copied {} -> {} ({d})", job.source, job.destination),
        Ok(MirrorResult::Unchanged(d)) if !quiet => println!("Unchanged {} ({d})", job.destination),
        Ok(MirrorResult::WouldCopy(d)) => println!("Would copy {} -> {} ({d})", job.source, job.destination),
        Ok(_) => {}
        Err(e) => eprintln!(
            "Failed {} -> {}: {}",
            job.source,
            job.destination,
            barge_registry::sanitize(&e.to_string())
        ),
    };
    let record = if a.verify {
        MirrorRecord::none()
    } else {
        MirrorRecord::at(&env.store()?.root().join("mirror-record.json"))
    };
    let opts = MirrorOptions {
        dry_run: a.dry_run,
        verify: a.verify,
        parallel_images: a.jobs as usize,
        max_concurrent: 3,
        trust: Some(env.trust()?),
        referrers: a.referrers,
    };
    let results = mirror::mirror_all(&client, &jobs, &opts, &record, &report);
    if let Err(e) = record.save() {
        eprintln!("Warning: could not record what was mirrored ({e}); the next run will ask the destinations");
    }
    let count = |f: fn(&MirrorResult) -> bool| results.iter().filter(|r| r.as_ref().is_ok_and(f)).count();
    let copied = count(|r| matches!(r, MirrorResult::Copied(_)));
    let unchanged = count(|r| matches!(r, MirrorResult::Unchanged(_)));
    let would = count(|r| matches!(r, MirrorResult::WouldCopy(_)));
    for (job, r) in jobs.iter().zip(&results) {
        if let Err(e) = r {
            failures.push(barge_registry::sanitize(&format!(
                "{} -> {}: {e}",
                job.source, job.destination
            )));
        }
    }
    let mut summary = format!("{} images: ", jobs.len());
    if a.dry_run {
        summary.push_str(&format!("{would} to copy, "));
    } else {
        summary.push_str(&format!("{copied} copied, "));
    }
    summary.push_str(&format!("{unchanged} unchanged, {} failed", failures.len()));
    eprintln!("{summary}");
    if failures.is_empty() {
        return Ok(0);
    }
    eprintln!("Failures:");
    for f in &failures {
        eprintln!("  {f}");
    }
    Ok(1)
}

/// The source/destination pairs from the arguments or the mirror file.
fn entries(a: &MirrorArgs) -> Result<Vec<MirrorEntry>, Failure> {
    match (&a.file, &a.source, &a.destination) {
        (Some(path), None, None) => {
            let bytes = std::fs::read(path).context(|| format!("reading the mirror file {}", path.display()))?;
            let mut file: MirrorFile = serde_json::from_slice(&bytes)
                .context(|| format!("the mirror file {} is not valid", path.display()))?;
            if let Some(t) = &a.tags {
                for e in file.mirrors.iter_mut().filter(|e| e.tags.is_none()) {
                    e.tags = Some(t.clone());
                }
            }
            Ok(file.mirrors)
        }
        (None, Some(s), Some(d)) => Ok(vec![MirrorEntry {
            source: s.clone(),
            destination: d.clone(),
            tags: a.tags.clone(),
        }]),
        (Some(_), _, _) => Err(Failure::msg(
            "give either --file or SOURCE and DESTINATION, not both".to_string(),
        )),
        _ => Err(Failure::msg(
            "barge mirror needs SOURCE and DESTINATION, or --file FILE; see barge mirror --help".to_string(),
        )),
    }
}
