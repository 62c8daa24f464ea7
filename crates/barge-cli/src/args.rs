//! The command line, in docker's grammar. Every flag is defined here, once.

use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "barge",
    bin_name = "barge",
    version,
    about = "A daemonless OCI registry client, image store and container runner",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,

    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes, before or after its name.
#[derive(Debug, Args)]
pub struct Globals {
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
}

impl Command {
    /// Whether the command needs the user's rootless namespace when run by
    /// an ordinary user: all but those about credentials and keys, which
    /// touch neither the store nor containers.
    pub fn needs_user_namespace(&self) -> bool {
        !matches!(
            self,
            Command::Login(_)
                | Command::Logout(_)
                | Command::CredentialHelper(_)
                | Command::GenerateKey(_)
                | Command::Version(_)
                | Command::Completion(_)
        )
    }

    /// A flag where `run`/`create` want IMAGE or `exec` CONTAINER (what
    /// follows them is the container's, so clap takes any word there):
    /// the verb's name and the flag, for docker's `unknown flag` error.
    pub fn flag_for_operand(&self) -> Option<(&'static str, &str)> {
        let verb = match self {
            Command::ContainerVerbs(verb) | Command::Container(ContainerCommand::Verb(verb)) => verb,
            _ => return None,
        };
        let (name, first) = match verb {
            ContainerVerb::Run(a) => ("run", a.image()),
            ContainerVerb::Create(a) => ("create", a.image()),
            ContainerVerb::Exec(a) => ("exec", a.container()),
            _ => return None,
        };
        (first.len() > 1 && first.starts_with('-')).then(|| (name, first.split('=').next().unwrap_or(first)))
    }

    /// Whether the command starts processes inside containers (the
    /// container's setup, `exec`, `RUN` steps), and so must run from a
    /// binary that no container can write.
    pub fn starts_containers(&self) -> bool {
        match self {
            Command::ContainerVerbs(verb) | Command::Container(ContainerCommand::Verb(verb)) => {
                verb.starts_containers()
            }
            Command::ImageVerbs(ImageVerb::Build(_)) | Command::Image(ImageCommand::Verb(ImageVerb::Build(_))) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    ImageVerbs(ImageVerb),
    /// Copy an image between registries, OCI layouts, docker and OCI archives and the store
    Copy(CopyArgs),
    /// Copy tags, repositories or whole registries to another registry
    Mirror(MirrorArgs),
    /// List images
    Images(ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Return low-level information on images
    Inspect(InspectArgs),
    #[command(flatten)]
    ContainerVerbs(ContainerVerb),
    /// Remove one or more containers
    Rm(RmArgs),
    /// List containers
    Ps(PsArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Show the barge version information
    Version(InfoArgs),
    /// Print a shell completion script (bash, zsh, fish)
    Completion(CompletionArgs),
    /// Manage barge
    #[command(subcommand)]
    System(SystemCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Manage builds
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Act as docker-credential-barge: get|store|erase|list on stdin/stdout, backed by the OS keyring
    #[command(hide = true)]
    CredentialHelper(CredentialHelperArgs),
    /// Make a cosign key pair: PREFIX.key (encrypted with $COSIGN_PASSWORD or a prompt) and PREFIX.pub
    GenerateKey(GenerateKeyArgs),
    /// Sign an image in its registry with a cosign private key (a sigstore signature)
    Sign(SignArgs),
    /// Verify an image's sigstore signatures with a cosign public key
    Verify(VerifyArgs),
    /// Look at manifests and manifest lists in a registry
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// List the tags of a repository in its registry
    #[command(visible_alias = "ls")]
    Tags(TagsArgs),
    /// List the repositories of a registry (its _catalog)
    Catalog(CatalogArgs),
    /// Print the digest a reference resolves to in its registry (one HEAD request)
    Digest(DigestArgs),
    /// Print the config blob of an image in its registry
    Config(ConfigArgs),
    /// Write a blob of a repository to standard output or a file, its digest verified
    Blob(BlobArgs),
    /// Delete a manifest from its registry (a tag is resolved to its digest first)
    Delete(DeleteArgs),
    /// List the manifests that refer to an image (signatures, SBOMs, attestations)
    Referrers(ReferrersArgs),
    /// Push files to a registry as an OCI artifact, or pull them back (as oras does)
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Generate files for other tools (a systemd unit for a container)
    #[command(subcommand)]
    Generate(GenerateCommand),
}

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Push files as the layers of an OCI artifact manifest
    Push(ArtifactPushArgs),
    /// Write the files of an artifact into a directory, each digest verified
    Pull(ArtifactPullArgs),
}

#[derive(Debug, Args)]
pub struct ArtifactPushArgs {
    /// Where to push: NAME[:TAG] (with --subject, NAME alone pushes it untagged)
    #[arg(value_name = "NAME[:TAG]")]
    pub reference: String,
    /// The artifact's type, a media type (such as application/spdx+json)
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: String,
    /// Files, each with an optional layer media type (FILE:TYPE)
    #[arg(required = true, value_name = "FILE[:MEDIATYPE]")]
    pub files: Vec<String>,
    /// An annotation of the manifest (repeatable)
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// The image the artifact is about (same repository): it becomes one of its referrers
    #[arg(long, value_name = "NAME[:TAG|@DIGEST]")]
    pub subject: Option<String>,
}

#[derive(Debug, Args)]
pub struct ArtifactPullArgs {
    /// The artifact: NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub reference: String,
    /// Directory to write the files into (created when missing)
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output: std::path::PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Display an image manifest or manifest list from its registry
    Inspect(ManifestInspectArgs),
    /// Draft a manifest list locally from images in a registry
    Create(ManifestCreateArgs),
    /// Set the platform of an image in a drafted manifest list
    Annotate(ManifestAnnotateArgs),
    /// Push a drafted manifest list to its registry
    Push(ManifestPushArgs),
    /// Remove drafted manifest lists
    Rm(ManifestRmArgs),
}

#[derive(Debug, Args)]
pub struct ManifestCreateArgs {
    /// The list: NAME[:TAG]
    #[arg(value_name = "LIST")]
    pub list: String,
    /// Images (or manifest lists, whose images all join) in a registry
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Add to the draft of LIST when there is one
    #[arg(short, long)]
    pub amend: bool,
}

#[derive(Debug, Args)]
pub struct ManifestAnnotateArgs {
    /// The list: NAME[:TAG]
    #[arg(value_name = "LIST")]
    pub list: String,
    /// The image in it, as given to create (or by digest)
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Operating system
    #[arg(long)]
    pub os: Option<String>,
    /// Architecture
    #[arg(long)]
    pub arch: Option<String>,
    /// Architecture variant (such as v8 or v7)
    #[arg(long)]
    pub variant: Option<String>,
}

#[derive(Debug, Args)]
pub struct ManifestPushArgs {
    /// The list: NAME[:TAG]
    #[arg(value_name = "LIST")]
    pub list: String,
    /// Where to push it [default: LIST]
    #[arg(value_name = "DEST")]
    pub destination: Option<String>,
    /// Remove the draft once pushed
    #[arg(short, long)]
    pub purge: bool,
    /// oci (an OCI image index) or v2s2 (a Docker manifest list)
    #[arg(long, default_value = "oci", value_parser = ["oci", "v2s2"])]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct ManifestRmArgs {
    /// Lists: NAME[:TAG]
    #[arg(required = true, value_name = "LIST")]
    pub lists: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ManifestInspectArgs {
    /// Image: NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub reference: String,
    /// Print the exact bytes the registry served
    #[arg(long, conflicts_with = "verbose")]
    pub raw: bool,
    /// Show each manifest with its reference, descriptor and raw bytes, as docker does
    #[arg(short, long)]
    pub verbose: bool,
    /// The manifest of this platform (os/arch[/variant]) from a manifest list
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct TagsArgs {
    /// Repository: NAME (no tag or digest)
    #[arg(value_name = "REPOSITORY")]
    pub repository: String,
    /// Format output: json (skopeo list-tags' document), or a Go template such as '{{.Tag}}'
    #[arg(long)]
    pub format: Option<String>,
    /// Tags to ask for per page (the registry may send another number)
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub page_size: u32,
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Registry: HOST[:PORT]
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
    /// Format output: json, or a Go template such as '{{.Repository}}'
    #[arg(long)]
    pub format: Option<String>,
    /// Repositories to ask for per page (the registry may send fewer)
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub page_size: u32,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Image: NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub reference: String,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Image: NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub reference: String,
    /// The platform (os/arch[/variant]) to take from a manifest list [default: this host]
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct BlobArgs {
    /// The blob: REPOSITORY@DIGEST
    #[arg(value_name = "REPOSITORY@DIGEST")]
    pub reference: String,
    /// Write to FILE (it appears only once the digest is verified) instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReferrersArgs {
    /// The subject: NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub reference: String,
    /// Only referrers of this artifact type
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: Option<String>,
    /// Format output: json (an OCI index, as the referrers API answers), or a Go template such as '{{.Digest}}'
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The manifest: NAME:TAG or NAME@DIGEST (every tag naming that digest goes too)
    #[arg(value_name = "NAME:TAG|NAME@DIGEST")]
    pub reference: String,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    #[command(flatten)]
    Verb(ImageVerb),
    /// Remove one or more images
    #[command(visible_alias = "remove", visible_alias = "rmi")]
    Rm(RmiArgs),
    /// Remove unused images, blobs and layers
    Prune(PruneArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Draw the hierarchy of images and their layers (dot for Graphviz, or a tree)
    Graph(GraphArgs),
}

/// The image verbs that docker has both at the top level (`pull`) and
/// under `image` (`image pull`): one definition for both.
// Parsed once per process: the size of the biggest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ImageVerb {
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Build an image from a Dockerfile
    Build(BuildArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Import the contents from a tarball to create a filesystem image
    #[command(override_usage = "barge import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]")]
    Import(ImportArgs),
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// List networks
    #[command(visible_alias = "list")]
    Ls(NetworkLsArgs),
    /// Create a network
    Create(NetworkCreateArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(NetworkRmArgs),
    /// Display detailed information on one or more networks
    Inspect(NetworkInspectArgs),
    /// Remove all unused networks, and what a crash left of any network
    Prune(NetworkPruneArgs),
}

#[derive(Debug, Args)]
pub struct NetworkLsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output using a Go template, or json
    #[arg(long)]
    pub format: Option<String>,
    /// Filter output (driver=, id=, label=, name=, scope=, type=custom|builtin)
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    pub name: String,
    /// Driver to manage the network (only bridge)
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format [default: the next free /24 of 10.223.0.0/16]
    #[arg(long)]
    pub subnet: Option<String>,
    /// IPv4 gateway for the subnet [default: its first address]
    #[arg(long)]
    pub gateway: Option<String>,
    /// Set metadata on a network (KEY=VALUE)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetworkRmArgs {
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetworkInspectArgs {
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
    /// Format output using a Go template, or json
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune(BuilderPruneArgs),
}

#[derive(Debug, Args)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct NetworkPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Verify the store: every blob's digest, every image's blobs and snapshots
    Check,
    /// Display system-wide information
    Info(InfoArgs),
    /// Show disk usage: images, containers, local volumes, build cache
    Df(DfArgs),
    /// Remove unused data
    Prune(SystemPruneArgs),
}

// Parsed once per process: the size of the biggest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// List containers
    #[command(visible_alias = "list", visible_alias = "ps")]
    Ls(PsArgs),
    #[command(flatten)]
    Verb(ContainerVerb),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// Remove all stopped containers
    Prune(ContainerPruneArgs),
}

/// The container verbs that docker has both at the top level (`run`) and
/// under `container` (`container run`): one definition for both.
#[derive(Debug, Subcommand)]
pub enum ContainerVerb {
    /// Create and run a new container from an image
    #[command(override_usage = "barge run [OPTIONS] IMAGE [COMMAND] [ARG...]")]
    Run(RunArgs),
    /// Create a new container
    #[command(override_usage = "barge create [OPTIONS] IMAGE [COMMAND] [ARG...]")]
    Create(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(ContainersArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Execute a command in a running container
    #[command(override_usage = "barge exec [OPTIONS] CONTAINER COMMAND [ARG...]")]
    Exec(ExecArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(ContainerArg),
    /// Display the running processes of a container
    #[command(override_usage = "barge top CONTAINER [ps OPTIONS]")]
    Top(TopArgs),
    /// Copy files/folders between a container and the local filesystem
    #[command(
        override_usage = "barge cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       barge cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"
    )]
    Cp(CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Create a new image from a container's changes
    #[command(override_usage = "barge commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]")]
    Commit(CommitArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
}

#[derive(Debug, Args)]
pub struct TopArgs {
    pub container: String,
    /// Options for ps(1) [default: -ef]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ps OPTIONS")]
    pub ps_options: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Debug, Args)]
pub struct ContainerArg {
    pub container: String,
}

impl ContainerVerb {
    /// Whether the verb starts processes inside a container.
    fn starts_containers(&self) -> bool {
        matches!(
            self,
            ContainerVerb::Run(_) | ContainerVerb::Start(_) | ContainerVerb::Restart(_) | ContainerVerb::Exec(_)
        )
    }
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output: table, json, or a Go template
    #[arg(long)]
    pub format: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run the container in the background and print its ID
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Keep STDIN open
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to take it from barge's environment)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Container host name [default: the host's with --network host, else the short container ID]
    #[arg(long)]
    pub hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Set meta data on a container (KEY=VALUE)
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Connect to a network: bridge (the default as root on the host; none in a user namespace or unprivileged),
    /// a user-defined network, none (only lo) or host
    #[arg(long, visible_alias = "net", value_name = "NETWORK")]
    pub network: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[HOST-IP:][HOST-PORT:]CONTAINER-PORT[/PROTO]"
    )]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random host ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// OCI runtime for this container (runc, or a path) instead of barge's own
    #[arg(long)]
    pub runtime: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    pub read_only: bool,
    /// Bind mount a host directory or mount a volume (HOST-DIR|NAME:CONTAINER-DIR[:ro]; CONTAINER-DIR alone: an anonymous volume)
    #[arg(short, long = "volume", value_name = "[HOST-DIR|NAME:]CONTAINER-DIR[:ro]")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount: type=bind|volume|tmpfs,source=…,target=…[,readonly][,volume-nocopy][,tmpfs-size=…][,tmpfs-mode=…]
    #[arg(long = "mount", value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory (PATH[:OPTIONS], e.g. /run:size=64m,mode=1777)
    #[arg(long = "tmpfs", value_name = "PATH[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Security options: seccomp=unconfined, seccomp=PROFILE.json (docker's format), no-new-privileges
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    #[command(flatten)]
    pub resources: ResourceArgs,
    #[command(flatten)]
    pub cpuset: CpusetArgs,
    /// Ulimit options (NAME=SOFT[:HARD], e.g. nofile=1024:2048)
    #[arg(long, value_name = "ULIMIT", value_parser = barge_runtime::limits::parse_ulimit)]
    pub ulimit: Vec<barge_runtime::limits::Ulimit>,
    /// Attach to STDIN, STDOUT or STDERR [default: all of them, stdin with -i]
    #[arg(short = 'a', long = "attach", value_name = "STREAM", value_parser = parse_stream)]
    pub attach: Vec<String>,
    /// Logging driver for the container: json-file or none
    #[arg(long = "log-driver", value_name = "DRIVER")]
    pub log_driver: Option<String>,
    /// Log driver options (json-file): max-size=10m rotates the log at that size, max-file=3 keeps that many files
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,
    /// Set a DNS server (instead of the host's)
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// Set a DNS search domain (instead of the host's)
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// Set a DNS resolver option (instead of the host's)
    #[arg(long = "dns-option", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// Add a line to /etc/hosts
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Set a namespaced kernel parameter (net.*, kernel.msg*/sem/shm*, fs.mqueue.*)
    #[arg(long, value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    /// Size of /dev/shm (bytes, or with a unit: 128m, 1g) [default: 64m]
    #[arg(long, value_name = "BYTES", value_parser = barge_runtime::limits::parse_size)]
    pub shm_size: Option<i64>,
    /// Signal to stop the container [default: the image's StopSignal, else SIGTERM]
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before killing the container when not told (-1: forever) [default: 10]
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub stop_timeout: Option<i64>,
    /// Restart policy when the container exits: no, on-failure[:N], always, unless-stopped
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Add a supplementary group (a name of the image's /etc/group, or a number)
    #[arg(long = "group-add", value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Expose a port or a range of ports (published by -P)
    #[arg(long, value_name = "PORT[-END][/PROTO]")]
    pub expose: Vec<String>,
    /// Write the container ID to the file (which must not exist)
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    /// Proxy received signals to the process
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Platform of the image to pull if it is missing
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub health: HealthArgs,
    /// Pull image before running: missing, always or never
    #[arg(long, default_value = "missing", value_parser = ["missing", "always", "never"])]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub sharing: SharingArgs,
    /// The image, then the command and its arguments: everything after
    /// IMAGE is the container's (`run IMAGE -l` passes `-l` to it), so it
    /// is one list whose first value ends barge's options.
    #[arg(
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    argv: Vec<String>,
}

/// A `-a` stream as docker names them, any case.
fn parse_stream(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "stdin" | "stdout" | "stderr" => Ok(lower),
        _ => Err("valid streams are STDIN, STDOUT and STDERR".to_string()),
    }
}

impl RunArgs {
    /// Whether a foreground run shows (or feeds) `stream`: all of them
    /// unless `-a` names some.
    pub fn attaches(&self, stream: &str) -> bool {
        self.attach.is_empty() || self.attach.iter().any(|s| s == stream)
    }

    pub fn image(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }

    pub fn command(&self) -> &[String] {
        self.argv.get(1..).unwrap_or_default()
    }
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container [default: its --stop-timeout, else 10]
    #[arg(short = 't', long = "time", alias = "timeout", allow_negative_numbers = true)]
    pub time: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ContainersArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container (named volumes stay)
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs ("all" for all)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since a time (a Unix time, RFC 3339, or a duration before now such as 42m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Show logs before a time (a Unix time, RFC 3339, or a duration before now such as 42m)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Show the extra details of each line (json-file attributes; barge's have none)
    #[arg(long)]
    pub details: bool,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background, print nothing
    #[arg(short, long)]
    pub detach: bool,
    /// Keep STDIN open
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Give the command every capability and no seccomp filter
    #[arg(long)]
    pub privileged: bool,
    /// The container, then the command and its arguments: everything
    /// after CONTAINER is the command's (`exec c ls -l`).
    #[arg(
        required = true,
        num_args = 2..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONTAINER COMMAND [ARG...]"
    )]
    argv: Vec<String>,
}

impl ExecArgs {
    pub fn container(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }

    pub fn command(&self) -> &[String] {
        self.argv.get(1..).unwrap_or_default()
    }
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_negative_numbers = true)]
    pub last: i64,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
    /// Filter: id=, name=, label=KEY[=VALUE], status=, exited=, ancestor=, before=, since=, volume=
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Format output: table, json, or a Go template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Filter: label=KEY[=VALUE], label!=KEY[=VALUE], until=TIMESTAMP|DURATION
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
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
    /// Push every stored tag of the repository
    #[arg(short, long)]
    pub all_tags: bool,
    /// Suppress verbose output: print only the pushed reference
    #[arg(short, long)]
    pub quiet: bool,
    /// Layers to upload at once
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=32))]
    pub max_concurrent_uploads: u16,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source: docker://REF, oci:DIR[:REF], docker-archive:FILE[:REF], oci-archive:FILE[:REF] or barge:REF (the store)
    pub source: String,
    /// Destination, in the same forms
    pub destination: String,
    /// Copy every platform of an index (the default between registries and OCI layouts)
    #[arg(short, long)]
    pub all: bool,
    /// The platform to copy from an index when not --all [default: this host]
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Carry the image's referrers (signatures, SBOMs, attestations) and
    /// cosign's .att and .sbom tags too, registry to registry
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value_t = false, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub referrers: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context: a directory, or - for a Dockerfile on STDIN and no context
    #[arg(value_name = "PATH")]
    pub context: std::path::PathBuf,
    /// Name of the Dockerfile [default: PATH/Dockerfile]; - reads it from STDIN
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    /// Name and optionally a tag in the name:tag format
    #[arg(short, long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Set the platform of the image (os/arch[/variant])
    #[arg(long)]
    pub platform: Option<String>,
    /// Do not use the layer cache
    #[arg(long)]
    pub no_cache: bool,
    /// Images to consider as cache sources (in the store, else pulled)
    #[arg(long = "cache-from", value_name = "IMAGE")]
    pub cache_from: Vec<String>,
    /// Secret to expose to RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VARIABLE
    #[arg(long = "secret", value_name = "id=ID,src=FILE")]
    pub secrets: Vec<String>,
    /// Set the target build stage to build (the last stage if not given)
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Write the image ID to the file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<std::path::PathBuf>,
    /// Always pull the images FROM and COPY --from name, even when the store has them
    #[arg(long)]
    pub pull: bool,
    /// Network for RUN: default (an isolated bridge network as root on the host, none in a user
    /// namespace), bridge, none (only lo) or host (the host's own network: its 127.0.0.1 services,
    /// its interfaces to sniff; only when asked)
    #[arg(long, default_value = "default", value_parser = ["default", "bridge", "none", "host"])]
    pub network: String,
    /// Suppress the build output and print the image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Stamp the image with the clamped file time (SOURCE_DATE_EPOCH, else 1970), not the build's
    #[arg(long)]
    pub reproducible: bool,
}

#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// Source: REGISTRY (every repository), REPOSITORY (every tag) or REPOSITORY:TAG
    pub source: Option<String>,
    /// Destination: REGISTRY[/PREFIX/], REPOSITORY or REPOSITORY:TAG
    pub destination: Option<String>,
    /// A JSON file of mirrors: {"mirrors": [{"source": S, "destination": D, "tags": REGEX}]}
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    /// Only tags this regular expression matches, whole (e.g. '1\.[0-9]+|latest')
    #[arg(long, value_name = "REGEX")]
    pub tags: Option<String>,
    /// List what would be copied; copy nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Ask the destination about every tag, not only barge's record of the last run
    #[arg(long)]
    pub verify: bool,
    /// Images copied at once
    #[arg(short, long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Print only failures and the summary
    #[arg(short, long)]
    pub quiet: bool,
    /// Carry each image's referrers and cosign's .att and .sbom tags (the
    /// default); --referrers=false mirrors tags alone
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value_t = true, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub referrers: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from a tar archive file (docker or OCI archive; plain, gzip or zstd), instead of STDIN
    #[arg(short, long)]
    pub input: Option<std::path::PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
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
    /// Print the image hierarchy as Graphviz dot
    #[arg(long, conflicts_with = "tree")]
    pub dot: bool,
    /// Print the image hierarchy as a text tree
    #[arg(long)]
    pub tree: bool,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Graphviz dot (the default)
    #[arg(long, conflicts_with = "tree")]
    pub dot: bool,
    /// A text tree
    #[arg(long)]
    pub tree: bool,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
    /// Tag in the registry: put SOURCE's manifest under TARGET (a tag, or a reference in the same repository); no blob moves
    #[arg(long)]
    pub remote: bool,
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
    /// Filter: label=KEY[=VALUE], label!=KEY[=VALUE], until=TIMESTAMP|DURATION
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
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
    #[arg(required = true, value_name = "NAME|ID")]
    pub images: Vec<String>,
    /// Format output using a Go template, or json
    #[arg(short, long)]
    pub format: Option<String>,
    /// Only this kind of object
    #[arg(long = "type", value_parser = ["image", "container"])]
    pub kind: Option<String>,
    /// Inspect images in their registry without pulling them (skopeo inspect's fields)
    #[arg(long)]
    pub remote: bool,
    /// With --remote: the platform (os/arch[/variant]) to show from a manifest list [default: this host]
    #[arg(long, requires = "remote")]
    pub platform: Option<String>,
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
pub struct CompletionArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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

#[derive(Debug, Args)]
pub struct GenerateKeyArgs {
    /// Write PREFIX.key and PREFIX.pub
    #[arg(long, default_value = "cosign", value_name = "PREFIX")]
    pub output_key_prefix: String,
    /// Make an Ed25519 key instead of ECDSA P-256
    #[arg(long)]
    pub ed25519: bool,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The cosign private key (ENCRYPTED SIGSTORE PRIVATE KEY PEM); its password is $COSIGN_PASSWORD or asked for
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Image to sign: NAME[:TAG] or NAME@DIGEST
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The cosign public key (PUBLIC KEY PEM)
    #[arg(long, value_name = "FILE", required_unless_present_any = ["certificate", "certificate_chain"])]
    pub key: Option<PathBuf>,
    /// A signing certificate (keyless signatures; not supported)
    #[arg(long, value_name = "FILE")]
    pub certificate: Option<PathBuf>,
    /// The certificate's chain (keyless signatures; not supported)
    #[arg(long, value_name = "FILE")]
    pub certificate_chain: Option<PathBuf>,
    /// Image to verify: NAME[:TAG] or NAME@DIGEST
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Print a systemd unit that starts the container at boot and stops it (as podman's)
    Systemd(GenerateSystemdArgs),
}

#[derive(Debug, Args)]
pub struct GenerateSystemdArgs {
    /// Seconds `stop` waits before killing the container [default: its --stop-timeout, else 10]
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    pub time: Option<u32>,
    /// systemd's Restart= for the monitor itself: no, on-failure, always, … [default: on-failure when the container has a restart policy, else no]
    #[arg(long, value_name = "POLICY", value_parser = ["no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always"])]
    pub restart_policy: Option<String>,
    /// Write container-NAME.service into the current directory and print its path
    #[arg(long)]
    pub files: bool,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    #[arg(value_name = "SRC_PATH")]
    pub src: String,
    #[arg(value_name = "DEST_PATH")]
    pub dest: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "CHANGE")]
    pub changes: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// A tar archive (plain or gzip): a file, an http(s) URL, or - for STDIN
    #[arg(value_name = "file|URL|-", allow_hyphen_values = true)]
    pub source: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "CHANGE")]
    pub changes: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub pause: bool,
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `run`/`create`: what the container shares with the host or another
/// container (namespaces, devices, privileges).
#[derive(Debug, Args, Clone, Default)]
pub struct SharingArgs {
    /// PID namespace to use: host, or container:NAME|ID [default: the container's own]
    #[arg(long, value_name = "MODE")]
    pub pid: Option<String>,
    /// IPC mode: private, shareable, none, host, or container:NAME|ID (a shareable one) [default: private]
    #[arg(long, value_name = "MODE")]
    pub ipc: Option<String>,
    /// Add a host device below the container's /dev: HOST[:CONTAINER][:PERMISSIONS] (some of r, w, m) [default: rwm]
    #[arg(long, value_name = "DEVICE")]
    pub device: Vec<String>,
    /// Give the container every capability, no seccomp filter, no masked paths and the host's devices
    #[arg(long)]
    pub privileged: bool,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(VolumeLsArgs),
    /// Display detailed information on one or more volumes
    Inspect(VolumeInspectArgs),
    /// Remove one or more volumes (refused while a container uses one)
    #[command(visible_alias = "remove")]
    Rm(VolumeRmArgs),
    /// Remove all unused local volumes
    Prune(VolumePruneArgs),
}

#[derive(Debug, Args)]
pub struct VolumeCreateArgs {
    /// The volume's name [default: 64 random hex digits]
    pub name: Option<String>,
    /// Volume driver (only local)
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume (KEY=VALUE)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Driver options (the local driver of barge takes none)
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VolumeLsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Format output using a Go template, or json
    #[arg(long)]
    pub format: Option<String>,
    /// Filter output (dangling=true|false, driver=, label=KEY[=VALUE], name=)
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VolumeInspectArgs {
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
    /// Format output using a Go template, or json
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct VolumeRmArgs {
    /// Do not fail on volumes that do not exist
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VolumePruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Filter: label=KEY[=VALUE], label!=KEY[=VALUE]
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Restart policy to apply when a container exits: no, on-failure[:N], always, unless-stopped
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// The cgroup limits `run`, `create` and `update` take, as docker spells them.
#[derive(Debug, Args)]
pub struct ResourceArgs {
    /// Memory limit (512m, 1g, …; at least 6m)
    #[arg(short = 'm', long, value_name = "BYTES", value_parser = barge_runtime::limits::parse_size)]
    pub memory: Option<i64>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap [default on run: twice --memory]
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true, value_parser = barge_runtime::limits::parse_memory_swap)]
    pub memory_swap: Option<i64>,
    /// Memory soft limit (at least 6m)
    #[arg(long, value_name = "BYTES", value_parser = barge_runtime::limits::parse_size)]
    pub memory_reservation: Option<i64>,
    /// Number of CPUs (1.5 is one and a half CPUs' time)
    #[arg(long, value_name = "DECIMAL", value_parser = barge_runtime::limits::parse_cpus)]
    pub cpus: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "INT")]
    pub cpu_shares: Option<u64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "INT", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
}

impl ResourceArgs {
    /// The flags as the runtime's [`barge_runtime::limits::Limits`] (no `--ulimit`).
    pub fn limits(&self) -> barge_runtime::limits::Limits {
        barge_runtime::limits::Limits {
            memory: self.memory,
            memory_swap: self.memory_swap,
            memory_reservation: self.memory_reservation,
            nano_cpus: self.cpus,
            cpu_shares: self.cpu_shares,
            pids_limit: self.pids_limit,
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short, long)]
    pub verbose: bool,
    /// Pretty-print the summary using a Go template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones, and all build cache
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Prune volumes
    #[arg(long)]
    pub volumes: bool,
    /// Provide filter values: label=KEY[=VALUE], label!=KEY[=VALUE], until=TIMESTAMP|DURATION
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
}

/// `run`/`create`'s health check flags (docker's names).
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Command to run to check health (run by /bin/sh -c inside the container)
    #[arg(long = "health-cmd", value_name = "COMMAND")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) [default: 30s]
    #[arg(long = "health-interval", value_name = "DURATION", allow_hyphen_values = true)]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) [default: 30s]
    #[arg(long = "health-timeout", value_name = "DURATION", allow_hyphen_values = true)]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy [default: 3]
    #[arg(long = "health-retries", value_name = "INT", allow_negative_numbers = true)]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before failed checks count (ms|s|m|h) [default: 0s]
    #[arg(long = "health-start-period", value_name = "DURATION", allow_hyphen_values = true)]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
}

impl HealthArgs {
    pub fn options(&self) -> barge_runtime::health::HealthOptions {
        barge_runtime::health::HealthOptions {
            cmd: self.health_cmd.clone(),
            interval: self.health_interval.clone(),
            timeout: self.health_timeout.clone(),
            start_period: self.health_start_period.clone(),
            retries: self.health_retries,
            no_healthcheck: self.no_healthcheck,
        }
    }
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    pub container: String,
}

/// `run`/`create`'s cpuset: the CPUs and memory nodes a container may use
/// (checked against the host's before anything is created).
#[derive(Debug, Args)]
pub struct CpusetArgs {
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "LIST")]
    pub cpuset_mems: Option<String>,
}
