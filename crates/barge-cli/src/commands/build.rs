//! `barge build`.

use super::Env;
use crate::args::BuildArgs;
use crate::failure::{Context, Failure};
use crate::progress::Printer;
use barge_builder::{BaseImages, BuildOptions, BuildProgress};
use barge_oci::{Digest, Platform, Reference};
use barge_runtime::{Network, Runtime};
use barge_store::{Store, StoreError};
use std::io::Read;

/// Base images: from the store, else pulled as `docker build` does.
struct Bases<'a> {
    env: &'a Env,
    store: &'a Store,
    quiet: bool,
}

impl BaseImages for Bases<'_> {
    fn resolve(&self, name: &str, platform: Option<&Platform>) -> Result<Digest, String> {
        match self.store.find_image(name) {
            Ok(id) => return Ok(id),
            Err(StoreError::NoSuchImage(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
        let reference = Reference::parse_default_tag(name).map_err(|e| e.to_string())?;
        let client = self.env.client().map_err(|f| f.to_string())?;
        let printer = Printer::new(self.quiet);
        let opts = barge_engine::PullOptions {
            platform: platform.cloned(),
            mirrors: self
                .env
                .settings()
                .map_err(|f| f.to_string())?
                .mirrors_for(reference.registry()),
            trust: Some(self.env.trust().map_err(|f| f.to_string())?),
            ..Default::default()
        };
        let outcome =
            barge_engine::pull(&client, self.store, &reference, &opts, &printer).map_err(|e| e.to_string())?;
        Ok(outcome.image_id)
    }
}

struct Steps {
    quiet: bool,
}

impl BuildProgress for Steps {
    fn step(&self, text: &str) {
        if !self.quiet {
            println!("{text}");
        }
    }

    fn note(&self, text: &str) {
        if !self.quiet {
            println!("{text}");
        }
    }
}

/// `KEY=VALUE`; for `--build-arg`, a bare `KEY` takes the value from the
/// environment and is left out when unset there, as docker does.
pub(super) fn key_value(flag: &str, s: &str) -> Result<Option<(String, String)>, Failure> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok(Some((k.to_string(), v.to_string()))),
        None if flag == "--build-arg" && !s.is_empty() => Ok(std::env::var(s).ok().map(|v| (s.to_string(), v))),
        _ => Err(Failure::msg(format!("{flag} {s:?}: expected KEY=VALUE"))),
    }
}

/// The network of RUN containers: the host's only when asked, else one of
/// their own, as docker's: the default bridge where barge can make one,
/// else none (only lo), said once.
fn run_network(flag: &str) -> Network {
    match flag {
        "host" => Network::Host,
        "none" => Network::None,
        _ if barge_runtime::network::can_make_bridges() => Network::Bridge,
        _ => {
            eprintln!("barge build: no bridge network can be made here (a user namespace); RUN gets --network none");
            Network::None
        }
    }
}

pub fn build(env: &Env, a: &BuildArgs) -> Result<i32, Failure> {
    if !rustix::process::geteuid().is_root() {
        return Err(Failure::msg(
            "barge build needs root: RUN runs containers, and layers must keep the owners of their files; run it with sudo",
        ));
    }
    if !a.context.is_dir() {
        return Err(Failure::msg(format!(
            "unable to prepare context: path {:?} not found or not a directory",
            a.context.display().to_string()
        )));
    }
    let dockerfile = match &a.file {
        Some(f) if f.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context(|| "reading the Dockerfile from STDIN".to_string())?;
            s
        }
        Some(f) => std::fs::read_to_string(f).context(|| format!("reading the Dockerfile {}", f.display()))?,
        None => {
            let f = a.context.join("Dockerfile");
            std::fs::read_to_string(&f).context(|| format!("reading the Dockerfile {}", f.display()))?
        }
    };
    let tags = a
        .tags
        .iter()
        .map(|t| Reference::parse_default_tag(t).context(|| format!("-t {t}")))
        .collect::<Result<Vec<_>, _>>()?;
    let platform = super::platform(a.platform.as_deref())?;
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.is_empty() => s
            .parse::<u64>()
            .map_err(|_| Failure::msg(format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds")))?,
        _ => 0,
    };
    let opts = BuildOptions {
        context: a.context.clone(),
        dockerfile,
        build_args: a
            .build_args
            .iter()
            .filter_map(|s| key_value("--build-arg", s).transpose())
            .collect::<Result<_, _>>()?,
        labels: a
            .labels
            .iter()
            .filter_map(|s| key_value("--label", s).transpose())
            .collect::<Result<_, _>>()?,
        platform,
        tags: tags.clone(),
        no_cache: a.no_cache,
        network: run_network(&a.network),
        epoch,
        quiet: a.quiet,
    };
    let store = env.store()?;
    if opts.network == Network::Bridge {
        // barge.json's bridge/bip, as for run.
        env.networks(&store)?;
    }
    let runtime = Runtime::new(&store);
    let bases = Bases {
        env,
        store: &store,
        quiet: a.quiet,
    };
    let steps = Steps { quiet: a.quiet };
    let outcome = barge_builder::build(&store, &runtime, &bases, &opts, &steps).context(String::new)?;
    if a.quiet {
        println!("{}", outcome.image_id);
        return Ok(0);
    }
    println!("Successfully built {}", &outcome.image_id.hex()[..12]);
    for t in &tags {
        println!("Successfully tagged {}", t.familiar());
    }
    Ok(0)
}
