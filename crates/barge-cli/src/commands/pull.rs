//! `barge pull` and `barge push`.

use super::Env;
use crate::args::{PullArgs, PushArgs};
use crate::failure::{Context, Failure};
use crate::progress::Printer;
use barge_engine::{PullOptions, PushOptions};
use barge_oci::Reference;

pub fn pull(env: &Env, a: &PullArgs) -> Result<i32, Failure> {
    let reference = Reference::parse_default_tag(&a.image).context(|| format!("pulling {}", a.image))?;
    let platform = super::platform(a.platform.as_deref())?;
    let store = env.store()?;
    let client = env.client()?;
    let printer = Printer::new(a.quiet);
    let opts = PullOptions {
        platform,
        max_concurrent: a.max_concurrent_downloads as usize,
        mirrors: env.settings()?.mirrors_for(reference.registry()),
        trust: Some(env.trust()?),
    };
    let outcome = barge_engine::pull(&client, &store, &reference, &opts, &printer)
        .context(|| format!("pulling {}", reference.familiar()))?;
    printer.line(&format!("Digest: {}", outcome.digest));
    let status = if outcome.up_to_date {
        "Image is up to date for"
    } else {
        "Downloaded newer image for"
    };
    printer.line(&format!("Status: {status} {}", outcome.reference.familiar()));
    println!("{}", outcome.reference);
    Ok(0)
}

pub fn push(env: &Env, a: &PushArgs) -> Result<i32, Failure> {
    let store = env.store()?;
    let references = if a.all_tags {
        let name = Reference::parse(&a.image).context(|| format!("pushing {}", a.image))?;
        if name.tag().is_some() || name.digest().is_some() {
            return Err(Failure::msg(format!(
                "tag can't be used with --all-tags/-a: give the repository alone ({})",
                name.familiar_name()
            )));
        }
        let mut tagged: Vec<Reference> = store
            .entries()
            .context(|| "reading the store".to_string())?
            .into_iter()
            .filter_map(|e| e.reference)
            .filter(|r| r.name() == name.name() && r.tag().is_some())
            .collect();
        tagged.sort_by(|x, y| x.tag().cmp(&y.tag()));
        if tagged.is_empty() {
            return Err(Failure::msg(format!(
                "An image does not exist locally with the name: {}",
                name.familiar_name()
            )));
        }
        tagged
    } else {
        vec![Reference::parse_default_tag(&a.image).context(|| format!("pushing {}", a.image))?]
    };
    let client = env.client()?;
    let printer = Printer::new(a.quiet);
    let opts = PushOptions {
        max_concurrent: a.max_concurrent_uploads as usize,
    };
    for reference in &references {
        let outcome = barge_engine::push(&client, &store, reference, &opts, &printer)
            .context(|| format!("pushing {}", reference.familiar()))?;
        if a.quiet {
            println!("{}", outcome.reference);
        } else {
            println!(
                "{}: digest: {} size: {}",
                reference.manifest_key(),
                outcome.digest,
                outcome.size
            );
        }
    }
    Ok(0)
}
