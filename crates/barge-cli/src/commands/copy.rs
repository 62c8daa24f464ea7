//! `barge copy`, `barge image save` and `barge image load`.

use super::Env;
use crate::args::{CopyArgs, LoadArgs, SaveArgs};
use crate::failure::{Context, Failure};
use crate::progress::Printer;
use barge_engine::transport::{
    archive_sources, archive_sources_from, ArchiveDestination, ArchiveSource, Destination, Location,
    OciArchiveDestination, OciArchiveSource, OciDestination, OciSource, RegistryDestination, RegistrySource, Source,
    StoreDestination, StoreSource,
};
use barge_engine::CopyOptions;
use barge_oci::Reference;
use std::io::IsTerminal;

pub fn copy(env: &Env, a: &CopyArgs) -> Result<i32, Failure> {
    let src_loc = Location::parse(&a.source).context(|| "source".to_string())?;
    let dst_loc = Location::parse(&a.destination).context(|| "destination".to_string())?;
    if a.referrers && !(matches!(src_loc, Location::Registry(_)) && matches!(dst_loc, Location::Registry(_))) {
        return Err(Failure::msg(
            "--referrers carries what is attached to an image from one registry to another: give docker:// on both sides",
        ));
    }
    let needs_client = matches!(src_loc, Location::Registry(_)) || matches!(dst_loc, Location::Registry(_));
    let client = if needs_client { Some(env.client()?) } else { None };
    let (store, _lock) = store_if(env, needs_store(&src_loc) || matches!(dst_loc, Location::Store(_)))?;
    let what = || format!("copying {} to {}", a.source, a.destination);
    let source = open_source(&src_loc, client.as_ref(), store.as_ref()).context(what)?;
    let dest: Box<dyn Destination + '_> = match &dst_loc {
        Location::Registry(r) => Box::new(RegistryDestination {
            client: client.as_ref().ok_or_else(|| Failure::msg("no client"))?,
            reference: r.clone(),
        }),
        Location::Oci { dir, reference } => Box::new(OciDestination::new(dir, reference.clone()).context(what)?),
        Location::DockerArchive { file, reference } => {
            Box::new(ArchiveDestination::create(file, reference.clone()).context(what)?)
        }
        Location::OciArchive { file, reference } => {
            Box::new(OciArchiveDestination::create(file, reference.clone()).context(what)?)
        }
        Location::Store(name) => Box::new(StoreDestination {
            store: store.clone().ok_or_else(|| Failure::msg("no store"))?,
            reference: if name.is_empty() {
                None
            } else {
                Some(Reference::parse_default_tag(name).context(what)?)
            },
            tagged: Default::default(),
        }),
    };
    let platform = super::platform(a.platform.as_deref())?;
    let opts = CopyOptions {
        all: a.all.then_some(true),
        platform,
        max_concurrent: 3,
        trust: Some(env.trust()?),
        referrers: a.referrers,
        source_tags: None,
    };
    let printer = Printer::new(a.quiet);
    let outcome = barge_engine::copy(source.as_ref(), dest.as_ref(), &opts, &printer).context(what)?;
    dest.finish().context(what)?;
    println!("{}", outcome.digest);
    Ok(0)
}

/// Whether reading `loc` needs the store: the store itself, and archives
/// (a compressed one is spooled into the store's ingest area).
pub(super) fn needs_store(loc: &Location) -> bool {
    matches!(
        loc,
        Location::Store(_) | Location::DockerArchive { .. } | Location::OciArchive { .. }
    )
}

/// The store, shared-locked, when `needed` (see [`needs_store`]).
pub(super) fn store_if(
    env: &Env,
    needed: bool,
) -> Result<(Option<barge_store::Store>, Option<barge_store::LockGuard>), Failure> {
    if !needed {
        return Ok((None, None));
    }
    let store = env.store()?;
    let lock = store.lock_shared().context(|| "locking the store".to_string())?;
    Ok((Some(store), Some(lock)))
}

/// The images at `loc`, read through `client` (a registry) or `store`
/// (the store, archives), which [`needs_store`] says to open.
pub(super) fn open_source<'a>(
    loc: &'a Location,
    client: Option<&'a barge_registry::Client>,
    store: Option<&'a barge_store::Store>,
) -> Result<Box<dyn Source + 'a>, barge_engine::CopyError> {
    let missing = |what: &str| barge_engine::CopyError::Invalid(format!("{what} was not opened for this source"));
    Ok(match loc {
        Location::Registry(r) => Box::new(RegistrySource {
            client: client.ok_or_else(|| missing("the registry client"))?,
            reference: r.clone(),
        }),
        Location::Oci { dir, reference } => Box::new(OciSource::new(dir, reference.clone())),
        Location::DockerArchive { file, reference } => Box::new(ArchiveSource::open(
            file,
            reference.as_ref(),
            store.ok_or_else(|| missing("the store"))?,
        )?),
        Location::OciArchive { file, reference } => Box::new(OciArchiveSource::open(
            file,
            reference.as_deref(),
            store.ok_or_else(|| missing("the store"))?,
        )?),
        Location::Store(name) => Box::new(StoreSource {
            store: store.ok_or_else(|| missing("the store"))?.clone(),
            name: name.clone(),
        }),
    })
}

pub fn save(env: &Env, a: &SaveArgs) -> Result<i32, Failure> {
    let store = env.store()?;
    let _lock = store.lock_shared().context(|| "locking the store".to_string())?;
    let (path, dest) = match &a.output {
        Some(p) => (
            p.clone(),
            ArchiveDestination::create(p, None).context(|| format!("writing {}", p.display()))?,
        ),
        None if std::io::stdout().is_terminal() => {
            return Err(Failure::msg(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect",
            ));
        }
        None => {
            let stdout = rustix::io::dup(rustix::stdio::stdout()).context(|| "standard output".to_string())?;
            let path = std::path::PathBuf::from("standard output");
            let dest = ArchiveDestination::on(std::fs::File::from(stdout), &path, None);
            (path, dest)
        }
    };
    let printer = Printer::new(true);
    for name in &a.images {
        let src = StoreSource {
            store: store.clone(),
            name: name.clone(),
        };
        barge_engine::copy(
            &src,
            &dest,
            &CopyOptions {
                max_concurrent: 1,
                ..Default::default()
            },
            &printer,
        )
        .context(|| format!("saving {name}"))?;
    }
    dest.finish().context(|| format!("writing {}", path.display()))?;
    Ok(0)
}

pub fn load(env: &Env, a: &LoadArgs) -> Result<i32, Failure> {
    if a.input.is_none() && std::io::stdin().is_terminal() {
        return Err(Failure::msg(
            "requested load from stdin, but stdin is empty; use -i FILE or redirect an archive",
        ));
    }
    let store = env.store()?;
    let _lock = store.lock_shared().context(|| "locking the store".to_string())?;
    // The archive is read once, as a stream; what an image needs of a
    // compressed archive or of standard input is spooled into the store.
    let (name, sources) = match &a.input {
        Some(p) => (
            p.display().to_string(),
            archive_sources(p, &store).context(|| format!("reading {}", p.display()))?,
        ),
        None => (
            "standard input".to_string(),
            archive_sources_from(Box::new(std::io::stdin()), "standard input", &store)
                .context(|| "reading the archive from standard input".to_string())?,
        ),
    };
    let printer = Printer::new(true);
    for src in &sources {
        let dest = StoreDestination {
            store: store.clone(),
            reference: None,
            tagged: Default::default(),
        };
        barge_engine::copy(
            src.as_ref(),
            &dest,
            &CopyOptions {
                max_concurrent: 1,
                ..Default::default()
            },
            &printer,
        )
        .context(|| format!("loading {name}"))?;
        if !a.quiet {
            for (name, id) in dest.tagged.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                match name {
                    Some(r) => println!("Loaded image: {}", r.familiar()),
                    None => println!("Loaded image ID: {id}"),
                }
            }
        }
    }
    Ok(0)
}
