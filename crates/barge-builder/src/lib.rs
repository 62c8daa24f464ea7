//! `barge build`: images from a Dockerfile and a context directory, into
//! the store.
//!
//! A build starts `FROM scratch` or from a stored image and applies the
//! Dockerfile's instructions in order. `COPY` and `ADD` write layers
//! straight from the context; `RUN` runs in a barge container over the
//! layers so far and its upper dir becomes the next layer (whiteouts for
//! deletions). Metadata instructions change the config and add a history
//! entry marked `empty_layer`, as docker does. Layers are reproducible
//! (sorted entries, one fixed mtime from `SOURCE_DATE_EPOCH` or 0,
//! numeric owners, a fixed gzip header) and cached by content. `created`
//! is the build's time, kept for a rebuild of the same image, unless
//! [`BuildOptions::stamp`] fixes it: then the same context and Dockerfile
//! give the same image digest every time.
//!
//! A Dockerfile of several stages is planned first ([`stages`]): the
//! stages the target needs are built in order, each from scratch, an image
//! or an earlier stage, and `COPY --from` reads an earlier stage's layers
//! or an image's; only the target becomes an image. RUN may mount a cache
//! kept in the store, a `--secret`, or a copy of part of the context or a
//! stage, none of which lands in a layer.
//!
//! The same stage makes the images of `commit` (a container's upper dir
//! as a layer) and `import` (a tar stream as one), `-c` changes applied
//! as instructions; [`archive`] writes and extracts the tar streams of
//! `cp` and `export`, every path resolved inside the container's root.
//!
//! It is not for pulling base images (the caller provides them through
//! [`BaseImages`]) or registries.

#![forbid(unsafe_code)]

pub mod archive;
mod dockerfile;
mod fs;
mod ignore;
mod layer;
mod prune;
pub mod stages;
mod steps;

pub use dockerfile::{
    parse, Args, BindMount, CacheMount, Command, CopyArgs, Heredoc, Instruction, Line, List, RunFlags, RunMount,
    RunNetwork, SecretMount,
};
pub use ignore::Ignore;
pub use layer::Written;
pub use prune::{prune, usage, BuildCachePruned, CacheRecord};
pub use steps::{build, commit_image, container_layer, tar_layer, NewImage};

use barge_oci::{Digest, Platform, Reference};
use barge_runtime::Network;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("Dockerfile line {line}: {message}")]
    Dockerfile { line: usize, message: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] barge_store::StoreError),
    #[error(transparent)]
    Runtime(#[from] barge_runtime::RuntimeError),
    /// `step` is docker's `[stage 2/5] RUN make`.
    #[error("Dockerfile line {line}: {step}: process \"{command}\" did not complete successfully: exit code: {code}")]
    RunFailed {
        line: usize,
        step: String,
        command: String,
        code: i32,
    },
    #[error("target stage {target:?} could not be found; the Dockerfile's stages are: {stages}")]
    Target { target: String, stages: String },
    #[error("base image {name}: {message}")]
    Base { name: String, message: String },
    #[error("{0}")]
    Unsupported(String),
}

/// What a build takes from outside its context: the image a `FROM` or a
/// `COPY --from` names (found, or pulled if need be), and `ADD` URLs.
pub trait BaseImages {
    /// The image ID of `name`.
    fn resolve(&self, name: &str, platform: Option<&Platform>) -> Result<Digest, String>;
    /// The body of an `ADD https://…` source, streamed; the build checks
    /// its `--checksum` before it lands in a layer.
    fn fetch_url(&self, url: &str) -> Result<Box<dyn std::io::Read>, String> {
        Err(format!("{url}: this build cannot download"))
    }
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub context: PathBuf,
    /// The Dockerfile's text.
    pub dockerfile: String,
    pub build_args: Vec<(String, String)>,
    /// `--secret id=ID,src=FILE`: what `RUN --mount=type=secret,id=ID` reads.
    pub secrets: Vec<(String, PathBuf)>,
    /// `--label` additions to the image config.
    pub labels: Vec<(String, String)>,
    pub platform: Option<Platform>,
    pub tags: Vec<Reference>,
    pub no_cache: bool,
    /// `--cache-from`: images (in the store or pulled) whose layers a RUN
    /// may reuse when their history shows the same step at that point.
    pub cache_from: Vec<String>,
    /// `--target`: the stage whose image is made (else the last).
    pub target: Option<String>,
    /// The network of `RUN` containers.
    pub network: Network,
    /// The time files in layers are clamped to: `SOURCE_DATE_EPOCH`, else 0.
    pub epoch: u64,
    /// What `created` (config and new history rows) says: a fixed time
    /// (`SOURCE_DATE_EPOCH`, `--reproducible`), else `None`: the build's
    /// own time, kept for an image whose content a build made before.
    pub stamp: Option<u64>,
    /// Do not show what RUN commands print.
    pub quiet: bool,
}

#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub image_id: Digest,
    pub manifest_digest: Digest,
}

/// What a build tells its user as it goes.
pub trait BuildProgress {
    /// `Step 2/5 : COPY demo /demo`.
    fn step(&self, _text: &str) {}
    /// ` ---> Using cache`, ` ---> 1a2b3c4d5e6f`.
    fn note(&self, _text: &str) {}
}
