//! `barge pull`.

use super::Env;
use crate::args::PullArgs;
use crate::failure::{Context, Failure};
use crate::progress::Printer;
use barge_engine::PullOptions;
use barge_oci::{Platform, Reference};

pub fn pull(env: &Env, a: &PullArgs) -> Result<i32, Failure> {
    let reference = Reference::parse_default_tag(&a.image).context(|| format!("pulling {}", a.image))?;
    let platform = a
        .platform
        .as_deref()
        .map(Platform::parse)
        .transpose()
        .context(|| "--platform".to_string())?;
    let store = env.store()?;
    let client = env.client()?;
    let printer = Printer::new(a.quiet);
    let opts = PullOptions {
        platform,
        max_concurrent: a.max_concurrent_downloads as usize,
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
