//! The command line, in docker's grammar. Every flag is defined here, once.

use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "barge",
    version,
    about = "A daemonless OCI registry client, image store and container runner",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Store root [default: $BARGE_ROOT, else /var/lib/barge as root, else $XDG_DATA_HOME/barge]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Location of client config files (docker's config.json) [default: $DOCKER_CONFIG, else ~/.docker]
    #[arg(long, global = true, value_name = "DIR")]
    pub config: Option<PathBuf>,

    /// Allow plain HTTP and unverified HTTPS to this registry (repeatable); loopback registries always are
    #[arg(long = "insecure-registry", global = true, value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,

    /// Print the full cause of errors
    #[arg(short = 'D', long, global = true)]
    pub debug: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// List images
    Images(ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Return low-level information on images
    Inspect(InspectArgs),
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Act as docker-credential-barge: get|store|erase|list on stdin/stdout, backed by the OS keyring
    #[command(hide = true)]
    CredentialHelper(CredentialHelperArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove", visible_alias = "rmi")]
    Rm(RmiArgs),
    /// Remove unused images, blobs and layers
    Prune(PruneArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image to pull: NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub image: String,
    /// Set platform if server is multi-platform capable (os/arch[/variant]) [default: this host]
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output: print only the image reference
    #[arg(short, long)]
    pub quiet: bool,
    /// Layers to download at once
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=32))]
    pub max_concurrent_downloads: u16,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Image to push: NAME[:TAG]
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
    /// Suppress verbose output: print only the pushed reference
    #[arg(short, long)]
    pub quiet: bool,
    /// Layers to upload at once
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=32))]
    pub max_concurrent_uploads: u16,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only images matching this reference (NAME[:TAG], globs allowed)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
    /// Show all images (default hides intermediate images; barge keeps none)
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output: dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=IMAGE, since=IMAGE
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Format output: table, json, or a Go template such as '{{.Repository}}:{{.Tag}}'
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of the image (untag it everywhere)
    #[arg(short, long)]
    pub force: bool,
    /// Accepted for docker compatibility; barge has no parent images to prune
    #[arg(long)]
    pub no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all images without at least one container, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub image: String,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long = "human", default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = false)]
    pub human: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Format output: table, json, or a Go template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Format output using a Go template, or json
    #[arg(short, long)]
    pub format: Option<String>,
    /// Accepted for docker compatibility: only images exist so far
    #[arg(long = "type", value_parser = ["image"])]
    pub kind: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry to log in to [default: Docker Hub]
    pub server: Option<String>,
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (insecure: it shows in the process list and shell history; prefer --password-stdin)
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// Keep the secret in this credential helper (docker-credential-NAME) and make it the default
    /// (`credsStore`); `barge` is barge's own, backed by the OS keyring
    #[arg(long, value_name = "NAME")]
    pub creds_store: Option<String>,
    /// Print the user name stored for the registry instead of logging in
    #[arg(long, conflicts_with_all = ["username", "password", "password_stdin", "creds_store"])]
    pub get_login: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry to log out from [default: Docker Hub]
    #[arg(conflicts_with = "all")]
    pub server: Option<String>,
    /// Remove every stored login, including those kept by credential helpers
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Format output using a Go template, or json
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct CredentialHelperArgs {
    /// get, store, erase, list or version
    pub operation: String,
}
