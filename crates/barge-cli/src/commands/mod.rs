//! One function per command: parse what the library needs, call it, print.

mod artifact;
mod attach;
mod build;
mod containers;
mod copy;
mod fsverbs;
mod generate;
mod images;
mod login;
mod mirror;
mod network;
mod nsflags;
mod prune_filter;
mod pull;
mod system;
mod toolkit;
mod trust;
mod volumes;

pub use login::credential_helper;

use crate::args::{
    ArtifactCommand, BuilderCommand, Cli, Command, ContainerCommand, ContainerVerb, GenerateCommand, ImageCommand,
    ImageVerb, ManifestCommand, NetworkCommand, SystemCommand, VolumeCommand,
};
use crate::failure::{Context, Failure};
use barge_registry::{Client, ClientOptions};
use barge_store::Store;
use std::sync::Arc;

/// Docker's prune prompt: `warning`, then "Are you sure…"; true on yes.
fn confirm(warning: &str) -> bool {
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    let yes = matches!(answer.trim(), "y" | "Y" | "yes" | "Yes");
    if !yes {
        eprintln!();
    }
    yes
}

/// What `inspect` verbs print: a JSON array indented as docker indents
/// it, every string sanitized (no `--format`, or `json`), else the
/// template rendered once per value.
fn print_inspected(values: &[serde_json::Value], format: Option<&str>) -> Result<(), Failure> {
    match format {
        None | Some("json") => {
            let mut buf = Vec::new();
            let mut ser = serde_json::Serializer::with_formatter(
                &mut buf,
                serde_json::ser::PrettyFormatter::with_indent(b"    "),
            );
            let values: Vec<serde_json::Value> = values.iter().map(crate::format::sanitized).collect();
            serde::Serialize::serialize(&values, &mut ser).context(|| "printing".to_string())?;
            println!("{}", String::from_utf8_lossy(&buf));
        }
        Some(t) => {
            let t = crate::format::Template::parse(t).context(|| "--format".to_string())?;
            for v in values {
                println!("{}", t.render(v).context(|| "--format".to_string())?);
            }
        }
    }
    Ok(())
}

/// What every command may need, built on demand.
pub struct Env {
    cli_root: Option<std::path::PathBuf>,
    config_dir: Option<std::path::PathBuf>,
    insecure: Vec<String>,
    /// barge.json, read once per command.
    settings: std::sync::OnceLock<crate::settings::Settings>,
}

impl Env {
    pub fn store(&self) -> Result<Store, Failure> {
        let root = self.cli_root.clone().unwrap_or_else(barge_store::default_root);
        let limits = self.settings()?.layer_limits();
        Ok(Store::open(&root)
            .context(|| format!("opening the store at {}", root.display()))?
            .with_layer_limits(limits))
    }

    pub fn client(&self) -> Result<Client, Failure> {
        let mut opts = ClientOptions {
            insecure_registries: self.insecure_registries()?,
            ..ClientOptions::default()
        };
        let settings = self.settings()?;
        opts.allow_nondistributable = settings.allow_nondistributable_artifacts.clone();
        if let Some(secs) = settings.read_timeout.filter(|s| *s > 0) {
            opts.read_timeout = std::time::Duration::from_secs(secs);
        }
        if let Some(rate) = settings.low_speed_limit {
            opts.low_speed_limit = rate;
        }
        if let Some(secs) = settings.low_speed_time.filter(|s| *s > 0) {
            opts.low_speed_time = std::time::Duration::from_secs(secs);
        }
        Ok(Client::new(Arc::new(self.auth()), opts))
    }

    pub fn auth(&self) -> barge_auth::AuthStore {
        barge_auth::AuthStore::locate(self.config_dir.as_deref())
    }

    /// `--format` as given, else the docker config's default for the
    /// command (`psFormat`, `imagesFormat`), as the docker CLI takes it. A
    /// config file that cannot be read is a warning, as docker makes it.
    pub fn format_or_default(&self, given: Option<&str>, key: &str) -> Option<String> {
        if let Some(f) = given {
            return Some(f.to_string());
        }
        match self.auth().cli_setting(key) {
            Ok(f) => f.filter(|f| !f.is_empty()),
            Err(e) => {
                eprintln!("WARNING: Error loading config file: {e}");
                None
            }
        }
    }

    /// The store's networks, with the default bridge as barge.json sets it.
    /// A setting that cannot take effect yet (containers run on the bridge)
    /// is a warning: `ps`, `stop` and the rest must keep working.
    pub fn networks(&self, store: &Store) -> Result<barge_runtime::network::Networks, Failure> {
        let settings = self.settings()?;
        let nets = barge_runtime::network::Networks::new(store.root());
        match nets.configure_default(
            settings.bridge.as_deref(),
            settings.bip.as_deref(),
            &barge_runtime::network::Containers,
        ) {
            Ok(()) => {}
            Err(e @ barge_runtime::network::NetworkError::InUse { .. }) => {
                eprintln!("warning: barge.json's bridge/bip not applied yet: {e}")
            }
            Err(e) => return Err(Failure::new("barge.json: bridge, bip", e)),
        }
        Ok(nets)
    }

    /// The trust policy: `$BARGE_CONFIG/policy.json`, else /etc/containers/policy.json
    /// (none: accept anything), with registries.d from the same places.
    pub fn trust(&self) -> Result<Arc<barge_engine::trust::TrustPolicy>, Failure> {
        let dir = crate::settings::config_dir();
        let policy = barge_trust::policy_path(&dir);
        let policy = barge_engine::trust::TrustPolicy::load(policy.as_deref(), &barge_trust::registries_d_path(&dir))
            .context(|| "reading the trust policy".to_string())?;
        Ok(Arc::new(policy))
    }

    pub fn settings(&self) -> Result<&crate::settings::Settings, Failure> {
        if let Some(s) = self.settings.get() {
            return Ok(s);
        }
        let loaded = crate::settings::Settings::load().context(|| "reading barge settings".to_string())?;
        Ok(self.settings.get_or_init(|| loaded))
    }

    /// Insecure registries from flags and settings, with mirrors given as `http://`.
    pub fn insecure_registries(&self) -> Result<Vec<String>, Failure> {
        let settings = self.settings()?;
        let plain_mirrors = settings
            .all_mirrors()
            .into_iter()
            .filter(|e| e.plain_http)
            .map(|e| e.mirror.host);
        Ok(self
            .insecure
            .iter()
            .chain(settings.insecure_registries.iter())
            .cloned()
            .chain(plain_mirrors)
            .collect())
    }
}

/// A `--platform` value.
fn platform(value: Option<&str>) -> Result<Option<barge_oci::Platform>, Failure> {
    value
        .map(barge_oci::Platform::parse)
        .transpose()
        .context(|| "--platform".to_string())
}

/// Runs a command; returns the exit status.
pub fn run(cli: Cli) -> Result<i32, Failure> {
    let env = Env {
        cli_root: cli.globals.root,
        config_dir: cli.globals.config,
        insecure: cli.globals.insecure_registries,
        settings: std::sync::OnceLock::new(),
    };
    match cli.command {
        Command::ImageVerbs(verb) | Command::Image(ImageCommand::Verb(verb)) => image_verb(&env, verb),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::list(&env, &a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::remove(&env, &a),
        Command::Image(ImageCommand::Prune(a)) => images::prune(&env, &a),
        Command::Copy(a) => copy::copy(&env, &a),
        Command::Mirror(a) => mirror::mirror(&env, &a),
        Command::Image(ImageCommand::Graph(a)) => images::graph(&env, a.tree),
        Command::Inspect(a) | Command::Image(ImageCommand::Inspect(a)) if a.remote => {
            if a.kind.as_deref() == Some("container") {
                return Err(Failure::msg(
                    "--remote inspects images in a registry: it cannot go with --type container",
                ));
            }
            toolkit::inspect_remote(&env, &a)
        }
        Command::Container(ContainerCommand::Inspect(a)) if a.remote => Err(Failure::msg(
            "--remote inspects images in a registry, not containers: use 'barge inspect --remote IMAGE'",
        )),
        Command::Inspect(a) => images::inspect(&env, &a, a.kind.as_deref()),
        Command::Image(ImageCommand::Inspect(a)) => images::inspect(&env, &a, Some("image")),
        Command::Container(ContainerCommand::Inspect(a)) => images::inspect(&env, &a, Some("container")),
        Command::ContainerVerbs(verb) | Command::Container(ContainerCommand::Verb(verb)) => container_verb(&env, verb),
        Command::Rm(a) | Command::Container(ContainerCommand::Rm(a)) => containers::rm(&env, &a),
        Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => containers::ps(&env, &a),
        Command::Container(ContainerCommand::Prune(a)) => containers::prune(&env, &a),
        Command::Login(a) => login::login(&env, &a),
        Command::Logout(a) => login::logout(&env, &a),
        Command::Info(a) | Command::System(SystemCommand::Info(a)) => login::info(&env, &a),
        Command::Version(a) => login::version(&a),
        Command::Completion(a) => {
            use clap::CommandFactory;
            use std::io::Write;
            // Into memory first: clap_complete panics when its writer fails
            // (`barge completion bash | head`).
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut crate::args::Cli::command(), "barge", &mut script);
            let mut out = std::io::stdout().lock();
            match out.write_all(&script).and_then(|()| out.flush()) {
                Ok(()) => Ok(0),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
                Err(e) => Err(Failure::msg(format!("writing the completion script: {e}"))),
            }
        }
        Command::System(SystemCommand::Check) => images::check(&env),
        Command::System(SystemCommand::Df(a)) => system::df(&env, &a),
        Command::System(SystemCommand::Prune(a)) => system::prune(&env, &a),
        Command::Network(NetworkCommand::Ls(a)) => network::ls(&env, &a),
        Command::Network(NetworkCommand::Create(a)) => network::create(&env, &a),
        Command::Network(NetworkCommand::Rm(a)) => network::rm(&env, &a),
        Command::Network(NetworkCommand::Inspect(a)) => network::inspect(&env, &a),
        Command::Network(NetworkCommand::Prune(a)) => network::prune(&env, &a),
        Command::Volume(VolumeCommand::Create(a)) => volumes::create(&env, &a),
        Command::Volume(VolumeCommand::Ls(a)) => volumes::ls(&env, &a),
        Command::Volume(VolumeCommand::Inspect(a)) => volumes::inspect(&env, &a),
        Command::Volume(VolumeCommand::Rm(a)) => volumes::rm(&env, &a),
        Command::Volume(VolumeCommand::Prune(a)) => volumes::prune(&env, &a),
        Command::Builder(BuilderCommand::Prune(a)) => build::prune(&env, &a),
        Command::Port(a) => containers::port(&env, &a),
        Command::CredentialHelper(a) => Ok(login::credential_helper(&a.operation)),
        Command::GenerateKey(a) => trust::generate_key(&a),
        Command::Sign(a) => trust::sign(&env, &a),
        Command::Verify(a) => trust::verify(&env, &a),
        Command::Manifest(ManifestCommand::Inspect(a)) => toolkit::manifest_inspect(&env, &a),
        Command::Manifest(ManifestCommand::Create(a)) => artifact::manifest_create(&env, &a),
        Command::Manifest(ManifestCommand::Annotate(a)) => artifact::manifest_annotate(&env, &a),
        Command::Manifest(ManifestCommand::Push(a)) => artifact::manifest_push(&env, &a),
        Command::Manifest(ManifestCommand::Rm(a)) => artifact::manifest_rm(&env, &a),
        Command::Tags(a) => toolkit::tags(&env, &a),
        Command::Catalog(a) => toolkit::catalog(&env, &a),
        Command::Digest(a) => toolkit::digest(&env, &a),
        Command::Config(a) => toolkit::config(&env, &a),
        Command::Blob(a) => toolkit::blob(&env, &a),
        Command::Delete(a) => toolkit::delete(&env, &a),
        Command::Referrers(a) => toolkit::referrers(&env, &a),
        Command::Artifact(ArtifactCommand::Push(a)) => artifact::push(&env, &a),
        Command::Artifact(ArtifactCommand::Pull(a)) => artifact::pull(&env, &a),
        Command::Generate(GenerateCommand::Systemd(a)) => generate::systemd(&env, &a),
    }
}

fn container_verb(env: &Env, verb: ContainerVerb) -> Result<i32, Failure> {
    match verb {
        ContainerVerb::Run(a) => containers::run(env, &a),
        ContainerVerb::Create(a) => containers::create(env, &a),
        ContainerVerb::Start(a) => containers::start(env, &a),
        ContainerVerb::Stop(a) => containers::stop(env, &a),
        ContainerVerb::Kill(a) => containers::kill(env, &a),
        ContainerVerb::Restart(a) => containers::restart(env, &a),
        ContainerVerb::Wait(a) => containers::wait(env, &a),
        ContainerVerb::Logs(a) => containers::logs(env, &a),
        ContainerVerb::Attach(a) => attach::attach(env, &a),
        ContainerVerb::Exec(a) => containers::exec(env, &a),
        ContainerVerb::Stats(a) => containers::stats(env, &a),
        ContainerVerb::Rename(a) => containers::rename(env, &a),
        ContainerVerb::Pause(a) => containers::pause(env, &a, true),
        ContainerVerb::Unpause(a) => containers::pause(env, &a, false),
        ContainerVerb::Diff(a) => containers::diff(env, &a),
        ContainerVerb::Top(a) => containers::top(env, &a),
        ContainerVerb::Cp(a) => fsverbs::cp(env, &a),
        ContainerVerb::Export(a) => fsverbs::export(env, &a),
        ContainerVerb::Commit(a) => fsverbs::commit(env, &a),
        ContainerVerb::Update(a) => system::update(env, &a),
    }
}

fn image_verb(env: &Env, verb: ImageVerb) -> Result<i32, Failure> {
    match verb {
        ImageVerb::Pull(a) => pull::pull(env, &a),
        ImageVerb::Push(a) => pull::push(env, &a),
        ImageVerb::Build(a) => build::build(env, &a),
        ImageVerb::Save(a) => copy::save(env, &a),
        ImageVerb::Load(a) => copy::load(env, &a),
        ImageVerb::Tag(a) if a.remote => toolkit::tag_remote(env, &a),
        ImageVerb::Tag(a) => images::tag(env, &a),
        ImageVerb::History(a) => images::history(env, &a),
        ImageVerb::Import(a) => fsverbs::import(env, &a),
    }
}
