//! `barge build`.

use super::Env;
use crate::args::{BuildArgs, BuilderPruneArgs};
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
    /// `--pull`: ask the registry even when the store has the image.
    pull: bool,
}

impl BaseImages for Bases<'_> {
    fn resolve(&self, name: &str, platform: Option<&Platform>) -> Result<Digest, String> {
        if !self.pull {
            match self.store.find_image(name) {
                Ok(id) => return Ok(id),
                Err(StoreError::NoSuchImage(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
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

    fn fetch_url(&self, url: &str) -> Result<Box<dyn Read>, String> {
        let client = self.env.client().map_err(|f| f.to_string())?;
        let body = client.get_url(url).map_err(|e| e.to_string())?;
        Ok(Box::new(body))
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

/// The Dockerfile given on STDIN; a context archive there is refused.
fn dockerfile_from_stdin() -> Result<String, Failure> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context(|| "reading the Dockerfile from STDIN".to_string())?;
    let archive = bytes.starts_with(&[0x1f, 0x8b]) || bytes.get(257..262) == Some(b"ustar".as_slice());
    if archive {
        return Err(Failure::msg(
            "STDIN holds an archive: barge build takes a Dockerfile on STDIN, not a context; unpack it and build the directory",
        ));
    }
    String::from_utf8(bytes).map_err(|_| Failure::msg("the Dockerfile on STDIN is not UTF-8 text"))
}

/// `--secret id=ID,src=FILE` (or `source=`, `type=file`), or
/// `id=ID,env=VARIABLE`, whose value goes to a private file kept in
/// `held` for the build. BuildKit's id defaults to the file's name.
fn secret(spec: &str, held: &mut Vec<tempfile::NamedTempFile>) -> Result<(String, std::path::PathBuf), Failure> {
    let bad = |why: &str| {
        Failure::msg(format!(
            "--secret {spec:?}: {why}; expected id=ID,src=FILE or id=ID,env=VARIABLE"
        ))
    };
    let (mut id, mut src, mut var) = (None, None, None);
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(std::path::PathBuf::from(v)),
            Some(("env", v)) => var = Some(v.to_string()),
            Some(("type", "file" | "env")) => {}
            _ => return Err(bad(&format!("unknown part {part:?}"))),
        }
    }
    let id = id
        .or_else(|| {
            src.as_ref()
                .and_then(|s| s.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .or_else(|| var.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| bad("no id"))?;
    match (src, var) {
        (Some(src), None) => Ok((id, src)),
        (None, Some(var)) => {
            let value = std::env::var(&var).map_err(|_| bad(&format!("the environment has no {var}")))?;
            let mut f = tempfile::NamedTempFile::new().context(|| "writing a secret to a private file".to_string())?;
            std::io::Write::write_all(&mut f, value.as_bytes())
                .context(|| "writing a secret to a private file".to_string())?;
            let path = f.path().to_path_buf();
            held.push(f);
            Ok((id, path))
        }
        _ => Err(bad("give one of src= and env=")),
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
    // `barge build -`: the Dockerfile on STDIN and no context, as docker's.
    let from_stdin = a.context.as_os_str() == "-";
    let empty_context;
    let context = if from_stdin {
        if a.file.is_some() {
            return Err(Failure::msg(
                "barge build -: the Dockerfile comes from STDIN; -f cannot name another one",
            ));
        }
        empty_context = tempfile::tempdir().context(|| "creating an empty build context".to_string())?;
        empty_context.path().to_path_buf()
    } else {
        a.context.clone()
    };
    if !context.is_dir() {
        return Err(Failure::msg(format!(
            "unable to prepare context: path {:?} not found or not a directory",
            a.context.display().to_string()
        )));
    }
    let dockerfile = match &a.file {
        _ if from_stdin => dockerfile_from_stdin()?,
        Some(f) if f.as_os_str() == "-" => dockerfile_from_stdin()?,
        Some(f) => std::fs::read_to_string(f).context(|| format!("reading the Dockerfile {}", f.display()))?,
        None => {
            let f = context.join("Dockerfile");
            std::fs::read_to_string(&f).context(|| format!("reading the Dockerfile {}", f.display()))?
        }
    };
    let tags = a
        .tags
        .iter()
        .map(|t| Reference::parse_default_tag(t).context(|| format!("-t {t}")))
        .collect::<Result<Vec<_>, _>>()?;
    let platform = super::platform(a.platform.as_deref())?;
    let source_date = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.is_empty() => Some(
            s.parse::<u64>()
                .map_err(|_| Failure::msg(format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds")))?,
        ),
        _ => None,
    };
    let epoch = source_date.unwrap_or(0);
    // `created`: SOURCE_DATE_EPOCH as BuildKit, the clamped time when asked, else the build's.
    let stamp = source_date.or(a.reproducible.then_some(epoch));
    let mut held_secrets = Vec::new();
    let secrets = a
        .secrets
        .iter()
        .map(|s| secret(s, &mut held_secrets))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = BuildOptions {
        context,
        secrets,
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
        cache_from: a.cache_from.clone(),
        target: a.target.clone(),
        network: run_network(&a.network),
        epoch,
        stamp,
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
        pull: a.pull,
    };
    let steps = Steps { quiet: a.quiet };
    let outcome = barge_builder::build(&store, &runtime, &bases, &opts, &steps).context(String::new)?;
    if let Some(f) = &a.iidfile {
        std::fs::write(f, outcome.image_id.to_string())
            .context(|| format!("writing the image ID to {}", f.display()))?;
    }
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

/// `docker builder prune`: the cache mounts and the layer cache (with
/// `--all`, also the entries for layers images use).
pub fn prune(env: &Env, a: &BuilderPruneArgs) -> Result<i32, Failure> {
    let warning = match a.all {
        true => "WARNING! This will remove all build cache.",
        false => "WARNING! This will remove all dangling build cache.",
    };
    if !a.force && !super::confirm(warning) {
        return Ok(0);
    }
    let (reclaimed, report) = prune_build_cache(env, a.all, &super::prune_filter::PruneFilter::none())?;
    if !report.is_empty() {
        println!("{report}");
    }
    println!("Total reclaimed space: {}", crate::format::human_size(reclaimed));
    Ok(0)
}

/// Removes the build cache `filter` selects (by when a record was last
/// written; records have no labels): the bytes freed, and docker's report.
pub(super) fn prune_build_cache(
    env: &Env,
    all: bool,
    filter: &super::prune_filter::PruneFilter,
) -> Result<(u64, String), Failure> {
    let store = env.store()?;
    let waiting = || eprintln!("Waiting for the builds and pulls running on this store to finish…");
    let select = |modified: i64| filter.selects(&std::collections::BTreeMap::new(), modified);
    let report =
        barge_builder::prune(&store, all, &select, &waiting).context(|| "pruning the build cache".to_string())?;
    let mut out = String::new();
    if !report.removed.is_empty() {
        out.push_str("Deleted build cache objects:\n");
        for name in &report.removed {
            out.push_str(&format!("{name}\n"));
        }
    }
    Ok((report.reclaimed, out))
}
