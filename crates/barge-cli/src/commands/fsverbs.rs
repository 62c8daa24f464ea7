//! The filesystem verbs: `cp`, `export`, `import` and `commit`.

use super::containers::{fail, find, runtime};
use super::Env;
use crate::args::{CommitArgs, CpArgs, ExportArgs, ImportArgs};
use crate::failure::{Context, Failure};
use barge_builder::archive::{self, CpError, Side, Source};
use barge_builder::NewImage;
use barge_oci::Reference;
use barge_runtime::Container;
use rustix::fd::AsFd;
use std::io::{BufRead, IsTerminal, Read};

/// One operand of `cp`: the local filesystem (`-`: a tar stream) or
/// `CONTAINER:PATH`, split as docker splits it: a path starting with `/`
/// or `.` is local whatever colons it holds.
enum Operand<'a> {
    Local(&'a str),
    Container(&'a str, String),
}

fn operand(arg: &str) -> Operand<'_> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return Operand::Local(arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() && !c.contains('/') => {
            // Paths in a container are from its root.
            Operand::Container(c, format!("/{}", p.trim_start_matches('/')).replace("//", "/"))
        }
        _ => Operand::Local(arg),
    }
}

/// A `cp` error as docker words it: `No such container:path: X:/nope`
/// for a container path, `lstat /nope: …` for a local one.
fn cp_failure(e: CpError, container: Option<&str>, a: &CpArgs) -> Failure {
    match (e, container) {
        (CpError::NotFound(p), Some(c)) => Failure::msg(format!("No such container:path: {c}:{p}")),
        (CpError::NotFound(p), None) => Failure::msg(format!("lstat {p}: no such file or directory")),
        (e, _) => Failure::new(format!("copying {} to {}", a.src, a.dest), e),
    }
}

fn open_root(c: &Container) -> Result<barge_runtime::rootfs::RootFs, Failure> {
    c.open_root()
        .map_err(|e| fail(format!("opening the filesystem of {}", c.meta.name), e))
}

pub fn cp(env: &Env, a: &CpArgs) -> Result<i32, Failure> {
    let (src, dest) = (operand(&a.src), operand(&a.dest));
    let rt = runtime(env)?;
    match (src, dest) {
        (Operand::Container(..), Operand::Container(..)) => {
            Err(Failure::msg("copying between containers is not supported"))
        }
        (Operand::Local(_), Operand::Local(_)) => Err(Failure::msg("must specify at least one container source")),
        (Operand::Container(name, path), Operand::Local("-")) => {
            let c = find(&rt, name)?;
            let root = open_root(&c)?;
            let source = Source {
                root: root.fd.as_fd(),
                path: &path,
                follow: a.follow_link,
                one_mount: false,
            };
            let out = std::io::BufWriter::new(std::io::stdout());
            archive::write_archive(&source, &archive::archive_name(&path), Box::new(out))
                .map_err(|e| cp_failure(e, Some(name), a))?;
            Ok(0)
        }
        (Operand::Local("-"), Operand::Container(name, path)) => {
            let c = find(&rt, name)?;
            let root = open_root(&c)?;
            let dir = archive::is_directory(root.fd.as_fd(), &path).map_err(|e| cp_failure(e, Some(name), a))?;
            if !dir {
                return Err(Failure::msg(format!(
                    "destination \"{name}:{path}\" must be a directory"
                )));
            }
            archive::extract(std::io::stdin().lock(), root.fd.as_fd(), &path, a.archive)
                .map_err(|e| cp_failure(e, Some(name), a))?;
            Ok(0)
        }
        (Operand::Container(name, path), Operand::Local(local)) => {
            let c = find(&rt, name)?;
            let root = open_root(&c)?;
            let host = archive::host_root().map_err(|e| cp_failure(e, None, a))?;
            let local = archive::host_path(local).map_err(|e| cp_failure(e, None, a))?;
            let src = Side {
                root: root.fd.as_fd(),
                path: &path,
            };
            let dest = Side {
                root: host.as_fd(),
                path: &local,
            };
            archive::copy(&src, a.follow_link, &dest, a.archive).map_err(|e| match e {
                // A missing source is the container's; the destination's parent, the host's.
                CpError::NotFound(p) if p == path => cp_failure(CpError::NotFound(p), Some(name), a),
                e => cp_failure(e, None, a),
            })?;
            Ok(0)
        }
        (Operand::Local(local), Operand::Container(name, path)) => {
            let c = find(&rt, name)?;
            let root = open_root(&c)?;
            let host = archive::host_root().map_err(|e| cp_failure(e, None, a))?;
            let local = archive::host_path(local).map_err(|e| cp_failure(e, None, a))?;
            let src = Side {
                root: host.as_fd(),
                path: &local,
            };
            let dest = Side {
                root: root.fd.as_fd(),
                path: &path,
            };
            archive::copy(&src, a.follow_link, &dest, a.archive).map_err(|e| match e {
                CpError::NotFound(p) if p == local => cp_failure(CpError::NotFound(p), None, a),
                e => cp_failure(e, Some(name), a),
            })?;
            Ok(0)
        }
    }
}

/// `export`: the container's merged filesystem as a tar stream; a running
/// container's mounts (/proc, volumes) are left out as docker leaves them.
pub fn export(env: &Env, a: &ExportArgs) -> Result<i32, Failure> {
    let rt = runtime(env)?;
    let c = find(&rt, &a.container)?;
    let out: Box<dyn std::io::Write + Send> = match &a.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).context(|| format!("creating {}", path.display()))?,
        )),
        None if std::io::stdout().is_terminal() => {
            return Err(Failure::msg(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect",
            ))
        }
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let root = open_root(&c)?;
    let source = Source {
        root: root.fd.as_fd(),
        path: "/",
        follow: false,
        one_mount: root.running,
    };
    archive::write_archive(&source, "", out).context(|| format!("exporting {}", c.meta.name))?;
    Ok(0)
}

/// The tag a `commit` or `import` gives its image.
fn tag_of(reference: Option<&str>) -> Result<Vec<Reference>, Failure> {
    reference
        .map(|r| Reference::parse_default_tag(r).context(|| format!("invalid reference format: {r}")))
        .into_iter()
        .collect()
}

/// `import`: a tar stream (plain or gzip; a file, a URL or stdin) as an
/// image of one layer, streamed into the store.
pub fn import(env: &Env, a: &ImportArgs) -> Result<i32, Failure> {
    let tags = tag_of(a.reference.as_deref())?;
    let platform = super::platform(a.platform.as_deref())?;
    let store = env.store()?;
    let raw: Box<dyn Read + Send> = if a.source == "-" {
        Box::new(std::io::stdin())
    } else if a.source.starts_with("http://") || a.source.starts_with("https://") {
        let client = env.client()?;
        Box::new(
            client
                .get_url(&a.source)
                .context(|| format!("downloading {}", a.source))?,
        )
    } else {
        Box::new(std::fs::File::open(&a.source).context(|| format!("opening {}", a.source))?)
    };
    let mut raw = std::io::BufReader::new(raw);
    let head = raw.fill_buf().context(|| format!("reading {}", a.source))?;
    // gzip, zstd or plain, held to the store's layer limits.
    let compression = barge_store::limits::sniff(head);
    let tar = barge_store::limits::decompress_limited(raw, compression, store.layer_limits())
        .context(|| format!("reading {}", a.source))?;
    let layer = barge_builder::tar_layer(&store, tar).context(|| format!("reading {}", a.source))?;
    let rt = barge_runtime::Runtime::new(&store);
    let comment = a
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", a.source));
    let made = barge_builder::commit_image(
        &store,
        &rt,
        NewImage {
            base: None,
            layer,
            changes: &a.changes,
            created_by: String::new(),
            comment: Some(comment),
            author: None,
            platform,
            tags,
        },
    )
    .context(|| format!("importing {}", a.source))?;
    println!("{}", made.image_id);
    Ok(0)
}

/// `commit`: the container's upper directory as a new layer on its image,
/// paused meanwhile unless `--pause=false`.
pub fn commit(env: &Env, a: &CommitArgs) -> Result<i32, Failure> {
    let tags = tag_of(a.reference.as_deref())?;
    let rt = runtime(env)?;
    let c = find(&rt, &a.container)?;
    let running = c.state().map_err(|e| fail("", e))?.status == barge_runtime::Status::Running;
    let pause = a.pause && running && !rt.paused(&c);
    if pause {
        rt.set_paused(&c, true)
            .map_err(|e| fail(format!("pausing {}", c.meta.name), e))?;
    }
    let layer = barge_builder::container_layer(rt.store(), &c);
    if pause {
        rt.set_paused(&c, false)
            .map_err(|e| fail(format!("unpausing {}", c.meta.name), e))?;
    }
    let layer = layer.context(|| format!("reading the changes of {}", c.meta.name))?;
    let mut argv = vec![c.meta.path.clone()];
    argv.extend(c.meta.args.iter().cloned());
    let made = barge_builder::commit_image(
        rt.store(),
        &rt,
        NewImage {
            base: Some(c.meta.image_id.clone()),
            layer,
            changes: &a.changes,
            created_by: argv.join(" "),
            comment: a.message.clone(),
            author: a.author.clone(),
            platform: None,
            tags,
        },
    )
    .context(|| format!("committing {}", c.meta.name))?;
    println!("{}", made.image_id);
    Ok(0)
}
