//! `commit` and `import`: an image of one new layer (a container's
//! changes, or a tar stream) made as a build's last step would be, with
//! `-c` changes applied by the build's own instructions.

use super::{diff_upper, io_err, stages, CachedLayer, Ctx, Stage};
use crate::dockerfile;
use crate::ignore::Ignore;
use crate::layer::{LayerWriter, Written};
use crate::{BaseImages, BuildError, BuildOptions, BuildOutcome, BuildProgress};
use barge_oci::{Digest, Platform};
use barge_runtime::{Network, Runtime};
use barge_store::lowers::Lowers;
use barge_store::Store;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;

/// The keywords `commit -c` and `import -c` take, as docker's.
const CHANGE_KEYWORDS: [&str; 11] = [
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// An image of one new layer over a stored image (`commit`) or over
/// nothing (`import`), with `-c` changes to its config.
pub struct NewImage<'a> {
    /// The image the layer goes on.
    pub base: Option<Digest>,
    pub layer: Written,
    /// Dockerfile instructions, one each (`-c 'ENV A=1'`).
    pub changes: &'a [String],
    /// The new history row's `created_by` and `comment` (`-m`).
    pub created_by: String,
    pub comment: Option<String>,
    /// `-a`: the config's and the history row's `author`.
    pub author: Option<String>,
    pub platform: Option<Platform>,
    pub tags: Vec<barge_oci::Reference>,
}

/// A base named by its ID, for a stage made outside a build.
struct ById(Option<Digest>);

impl BaseImages for ById {
    fn resolve(&self, name: &str, _: Option<&Platform>) -> Result<Digest, String> {
        self.0.clone().ok_or_else(|| format!("{name}: no base image"))
    }
}

struct Silent;
impl BuildProgress for Silent {}

/// What a container changed (its upper dir) as a layer: whiteouts for
/// deletions, opaque markers, the files' own times, written by the same
/// code as a RUN's layer.
pub fn container_layer(store: &Store, container: &barge_runtime::Container) -> Result<Written, BuildError> {
    let lowers = Lowers::new(container.meta.lower_dirs.clone());
    let mut w = LayerWriter::to_file(&store.root().join("ingest"), 0)
        .map_err(io_err("creating a layer file"))?
        .keep_times();
    diff_upper(&container.dir.join("upper"), &lowers, &mut w)?;
    w.finish().map_err(io_err("writing the layer"))
}

/// An uncompressed tar stream as a layer file (`import`).
pub fn tar_layer(store: &Store, tar: impl Read) -> Result<Written, BuildError> {
    crate::layer::compress_to_file(&store.root().join("ingest"), tar).map_err(io_err("writing the layer"))
}

/// Makes and stores the image `img` describes: its base's config and
/// history, the changes applied as a build applies them, one history row
/// for the layer (docker's: created, author, created_by, comment).
pub fn commit_image(store: &Store, runtime: &Runtime, img: NewImage<'_>) -> Result<BuildOutcome, BuildError> {
    let mut text = String::from("FROM scratch\n");
    for change in img.changes {
        let keyword = change
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if !CHANGE_KEYWORDS.contains(&keyword.as_str()) || change.contains('\n') {
            return Err(BuildError::Unsupported(format!(
                "{} is not a valid change command",
                keyword.to_ascii_lowercase()
            )));
        }
        text.push_str(change);
        text.push('\n');
    }
    let lines = dockerfile::parse(&text)?;
    let none = BTreeMap::new();
    let plan = stages::plan(&lines, &none, BTreeMap::new(), None)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let opts = BuildOptions {
        context: PathBuf::from("/"),
        dockerfile: text.clone(),
        build_args: Vec::new(),
        secrets: Vec::new(),
        labels: Vec::new(),
        platform: img.platform.clone(),
        tags: img.tags.clone(),
        no_cache: true,
        cache_from: Vec::new(),
        target: None,
        network: Network::None,
        epoch: 0,
        stamp: Some(now),
        quiet: true,
    };
    let ignore = Ignore::default();
    let bases = ById(img.base.clone());
    let ctx = Ctx {
        store,
        runtime,
        opts: &opts,
        progress: &Silent,
        ignore: &ignore,
        bases: &bases,
        plan: &plan,
        build_args: &none,
        cache_from: &[],
    };
    let _lock = store.lock_shared()?;
    let sp = &plan.stages[plan.target()];
    let mut stage = match &img.base {
        Some(id) => Stage::image(ctx, sp, &id.to_string())?,
        None => Stage::scratch(ctx, sp),
    };
    let rows = stage.history.len();
    let mut used = BTreeSet::new();
    for line in &sp.lines {
        stage.apply(line, &[], &mut used)?;
    }
    // One row for the commit, as docker writes it; the changes are in the config.
    stage.history.truncate(rows);
    if let Some(author) = &img.author {
        stage.extra.insert("author".into(), json!(author));
    }
    let Some((file, digest, size)) = img.layer.blob else {
        return Err(BuildError::Unsupported("a layer was hashed but not written".into()));
    };
    let mut f = std::fs::File::open(file.path()).map_err(io_err("reopening the layer file"))?;
    store.put_blob_stream(&digest, size, &mut f)?;
    let layer = CachedLayer {
        diff_id: img.layer.diff_id,
        digest,
        size,
    };
    stage.add_layer(layer, img.created_by, None)?;
    if let Some(Value::Object(row)) = stage.history.last_mut() {
        let created_by = row.remove("created_by");
        if let Some(a) = &img.author {
            row.insert("author".into(), json!(a));
        }
        row.insert("created_by".into(), created_by.unwrap_or_default());
        if let Some(c) = &img.comment {
            row.insert("comment".into(), json!(c));
        }
    }
    stage.finish()
}
