//! `barge create`: a container directory with an OCI bundle for an image.

use crate::container::{write_json, Container, Meta, Network, State, Volume};
use crate::network::PortSpec;
use crate::spec::{
    self, Linux, LinuxCapabilities, LinuxNamespaceType, LinuxSeccomp, Mount, PosixRlimitType, Process, Root, Spec,
};
use crate::{caps, io_err, names, seccomp, user, Runtime, RuntimeError};
use barge_oci::{ContainerConfig, Digest};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// What `run`/`create` were asked for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: Option<String>,
    /// `-e KEY=VALUE` (or `KEY`, taken from barge's environment).
    pub env: Vec<String>,
    /// Lines of `--env-file` files.
    pub env_file_lines: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub entrypoint: Option<String>,
    /// COMMAND [ARG…] after the image name.
    pub cmd: Vec<String>,
    pub labels: Vec<String>,
    /// `None`: a bridge network as root (the default `bridge` unless
    /// [`Self::network_name`] names another), else no network.
    pub network: Option<Network>,
    pub network_name: Option<String>,
    /// `-p` specifications.
    pub publish: Vec<String>,
    /// `-P`: every port the image exposes, on a free host port.
    pub publish_all: bool,
    pub runtime: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub auto_remove: bool,
    pub init: bool,
    pub read_only: bool,
    /// `-v HOST:CONTAINER[:ro]`, `-v NAME:CONTAINER[:ro]`, `-v CONTAINER`.
    pub volumes: Vec<String>,
    /// `--mount type=bind|volume|tmpfs,…`.
    pub mounts: Vec<String>,
    /// `--tmpfs PATH[:OPTIONS]`.
    pub tmpfs: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--security-opt`: `seccomp=unconfined|PROFILE.json`, `no-new-privileges`.
    pub security_opt: Vec<String>,
    /// `--memory`, `--cpus`, `--pids-limit`, `--ulimit`, …
    pub limits: crate::limits::Limits,
    /// `--log-driver`: json-file (when not given) or none.
    pub log_driver: Option<String>,
    /// `--log-opt KEY=VALUE`: json-file's `max-size` and `max-file`.
    pub log_opts: Vec<String>,
    /// `--dns`: name servers instead of the host's.
    pub dns: Vec<String>,
    /// `--dns-search`: search domains instead of the host's.
    pub dns_search: Vec<String>,
    /// `--dns-option`: resolver options instead of the host's.
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP`: lines for the container's /etc/hosts.
    pub add_hosts: Vec<String>,
    /// `--sysctl KEY=VALUE`: namespaced kernel parameters, written inside
    /// the container's namespaces at start.
    pub sysctls: Vec<String>,
    /// `--shm-size`: bytes of the container's /dev/shm [default: 64 MiB].
    pub shm_size: Option<i64>,
    /// `--stop-signal`: instead of the image's StopSignal.
    pub stop_signal: Option<String>,
    /// `--stop-timeout`: seconds `stop` waits before SIGKILL when not told.
    pub stop_timeout: Option<i64>,
    /// `--group-add`: supplementary groups, by name (the image's
    /// /etc/group) or number.
    pub group_add: Vec<String>,
    /// `--expose PORT[/PROTO]` or a range: ports `-P` publishes, beside
    /// the image's.
    pub expose: Vec<String>,
    /// `no_new_privs` unless `--security-opt no-new-privileges=false`
    /// (barge.json's `no-new-privileges`; docker's default is off).
    pub no_new_privileges_default: bool,
    /// `--restart`: no, on-failure[:N], always, unless-stopped.
    pub restart: Option<String>,
    /// `--pid host|container:NAME`.
    pub pid: Option<String>,
    /// `--ipc private|shareable|none|host|container:NAME`.
    pub ipc: Option<String>,
    /// `--device HOST[:CONTAINER][:PERMISSIONS]`.
    pub devices: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--health-*` and `--no-healthcheck`.
    pub health: crate::health::HealthOptions,
}

impl CreateOptions {
    /// Checks every option that needs no image, as docker does before it
    /// pulls anything: `run --memory 1k IMAGE` fails at once, not after a
    /// download. What it parsed is kept in the [`Validated`] options that
    /// [`Runtime::create`] takes, so nothing is parsed twice.
    pub fn validate(&self) -> Result<Validated, RuntimeError> {
        let name = match &self.name {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n);
                if !names::valid(n) {
                    return Err(RuntimeError::InvalidName(n.to_string()));
                }
                Some(n.to_string())
            }
            None => None,
        };
        let volumes = crate::volumes::parse_all(&self.volumes, &self.mounts, &self.tmpfs)?;
        let capabilities = caps::resolve(&self.cap_add, &self.cap_drop)?;
        let security = seccomp::parse_security_opts(&self.security_opt)?;
        let seccomp = seccomp::for_container(&security.seccomp, &capabilities)?
            .map(|s| s.to_oci())
            .transpose()?;
        let mut ports = Vec::new();
        for p in &self.publish {
            ports.extend(crate::network::ports::parse(p)?);
        }
        self.limits.validate(online_cpus())?;
        if crate::rootless::rootless() {
            // Limits need a cgroup v2 subtree delegated to the user.
            crate::rootless::check_limits(&self.limits)?;
        }
        let log_driver = crate::logs::LogDriver::parse(self.log_driver.as_deref())?;
        let log_opts = crate::logs::parse_opts(log_driver, &self.log_opts)?;
        // One line each in the container's /etc/hosts and resolv.conf:
        // nothing a value holds may start another line there.
        let word = |v: &str| !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c.is_control() || c == '#');
        for (flag, values) in [("--dns-search", &self.dns_search), ("--dns-option", &self.dns_options)] {
            if let Some(bad) = values.iter().find(|v| !word(v)) {
                return Err(RuntimeError::BadOption(format!("invalid argument {bad:?} for {flag}")));
            }
        }
        let mut hosts_extra = String::new();
        for h in &self.add_hosts {
            let (name, ip) = h
                .split_once(':')
                .filter(|(n, ip)| word(n) && ip.parse::<std::net::IpAddr>().is_ok())
                .ok_or_else(|| {
                    RuntimeError::BadOption(format!("invalid argument {h:?} for --add-host: expected HOST:IP"))
                })?;
            hosts_extra.push_str(&format!("{ip}\t{name}\n"));
        }
        let sysctls = self
            .sysctls
            .iter()
            .map(|kv| sysctl(kv, self.network == Some(Network::Host)))
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        for d in &self.dns {
            if d.parse::<std::net::IpAddr>().is_err() {
                return Err(RuntimeError::BadOption(format!("{d} is not an ip address (--dns)")));
            }
        }
        if self.shm_size.is_some_and(|s| s <= 0) {
            return Err(RuntimeError::BadOption("--shm-size must be more than 0".into()));
        }
        if let Some(s) = &self.stop_signal {
            crate::runner::parse_signal(s)?;
        }
        let mut expose = Vec::new();
        for e in &self.expose {
            expose.extend(crate::network::ports::parse_expose(e)?);
        }
        let rootless = crate::rootless::rootless();
        let network = match self.network {
            // Rootless, the default network is a user-mode one (no bridge can be made).
            Some(Network::Bridge) | None if rootless && self.network_name.is_none() => Network::User,
            Some(n) => n,
            None if crate::network::can_make_bridges() => Network::Bridge,
            None => Network::None,
        };
        // `-e KEY` takes KEY from barge's environment, as the docker client does.
        let mut env = Vec::new();
        for line in self.env_file_lines.iter().chain(self.env.iter()) {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.contains('=') {
                env.push(line.to_string());
            } else if let Ok(v) = std::env::var(line) {
                env.push(format!("{line}={v}"));
            }
        }
        let labels = self
            .labels
            .iter()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        let no_new_privileges = security.no_new_privileges.unwrap_or(self.no_new_privileges_default);
        let restart = crate::restart::RestartPolicy::parse(self.restart.as_deref().unwrap_or("no"))?;
        if self.auto_remove && !restart.is_no() {
            return Err(RuntimeError::BadOption(
                "conflicting options: --restart and --rm".into(),
            ));
        }
        let sharing = crate::sharing::Sharing::parse(
            self.pid.as_deref(),
            self.ipc.as_deref(),
            &self.devices,
            self.privileged,
            self.runtime.as_deref(),
        )?;
        let healthcheck = self.health.validate()?;
        Ok(Validated {
            restart,
            sharing,
            healthcheck,
            name,
            hosts_extra,
            sysctls,
            expose,
            no_new_privileges,
            env,
            labels,
            volumes,
            capabilities,
            seccomp,
            ports,
            network,
            log_driver,
            log_opts,
            options: self.clone(),
        })
    }
}

/// [`CreateOptions`] that [`CreateOptions::validate`] accepted, with what
/// it parsed: all that creating a container needs besides the image.
#[derive(Debug, Clone)]
pub struct Validated {
    /// `--name` without a leading `/`.
    name: Option<String>,
    /// `--env-file` lines then `-e`, as `KEY=VALUE`, in order.
    env: Vec<String>,
    /// `--label`s, in order (a later one wins).
    labels: Vec<(String, String)>,
    volumes: Vec<Volume>,
    /// The bounding set: docker's default with `--cap-add`/`--cap-drop`.
    capabilities: Vec<String>,
    /// `process.noNewPrivileges`.
    no_new_privileges: bool,
    /// `--add-host` lines for /etc/hosts.
    hosts_extra: String,
    /// `--sysctl`s, checked: the OCI spec's `linux.sysctl`.
    sysctls: BTreeMap<String, String>,
    /// `--expose`d ports (container side; `-P` publishes them).
    expose: Vec<PortSpec>,
    /// The filter for `--security-opt seccomp=…`, none if unconfined.
    seccomp: Option<LinuxSeccomp>,
    /// `-p` ports.
    ports: Vec<PortSpec>,
    /// The network kind, with the default chosen.
    network: Network,
    log_driver: crate::logs::LogDriver,
    log_opts: BTreeMap<String, String>,
    restart: crate::restart::RestartPolicy,
    /// `--pid` and the like: what is shared with the host or a container.
    sharing: crate::sharing::Sharing,
    /// The user's health check, laid over the image's at create.
    healthcheck: Option<barge_oci::image::Healthcheck>,
    options: CreateOptions,
}

use barge_runner::spec::IPC_SYSCTLS;

/// One `--sysctl KEY=VALUE`, as docker allows it: only parameters of the
/// container's own network or IPC namespace (never the host's), and a key
/// that names a file below /proc/sys (dots only, no `/`, no empty part).
fn sysctl(kv: &str, host_network: bool) -> Result<(String, String), RuntimeError> {
    let refused = || RuntimeError::BadOption(format!("sysctl {kv:?} is not whitelisted"));
    let (key, value) = kv.split_once('=').ok_or_else(refused)?;
    let plain = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    };
    if !key.split('.').all(plain) || value.contains(['\n', '\0']) {
        return Err(refused());
    }
    let net = key.starts_with("net.");
    if !(net || key.starts_with("fs.mqueue.") || IPC_SYSCTLS.contains(&key)) {
        return Err(refused());
    }
    if net && host_network {
        return Err(RuntimeError::BadOption(format!(
            "sysctl {key:?} not allowed in host network namespace"
        )));
    }
    Ok((key.to_string(), value.to_string()))
}

/// Processors online, for `--cpus`.
pub(crate) fn online_cpus() -> usize {
    barge_cgroups::stats::online_cpus() as usize
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The image a container is made of.
#[derive(Debug, Clone, Copy)]
pub struct ImageSource<'a> {
    pub id: &'a Digest,
    /// As the user named it (`busybox`).
    pub name: &'a str,
    /// Its container config: `Env`, `Cmd`, `User`, `Labels`, …
    pub config: &'a ContainerConfig,
    /// Its layers, topmost first.
    pub lower_dirs: &'a [PathBuf],
}

/// What [`plan`] needs from the machine, read under the containers' lock.
#[derive(Debug, Clone)]
struct Facts {
    /// The new container's ID and directory.
    id: String,
    dir: PathBuf,
    created: String,
    /// (name, ID) of every container there is.
    taken: Vec<(String, String)>,
    /// The bridge network's name, if the container is on one.
    network_name: Option<String>,
    /// The image's `/etc/passwd` and `/etc/group`.
    passwd: String,
    group: String,
    /// RLIMIT_NOFILE to give.
    nofile: u64,
}

/// A container about to be made: its bundle config and records.
#[derive(Debug, Clone)]
struct Plan {
    spec: Spec,
    meta: Meta,
    /// `--add-host` lines for /etc/hosts.
    hosts_extra: String,
    /// resolv.conf as `--dns*` made it; `None`: the host's, and networks
    /// may rewrite it.
    resolv: Option<String>,
}

/// The container for `image` with `v` and `facts`: pure, it writes nothing.
fn plan(image: &ImageSource<'_>, v: &Validated, facts: Facts) -> Result<Plan, RuntimeError> {
    let opts = &v.options;
    let cfg = image.config;
    // The command, as docker builds it.
    let (entrypoint, cmd) = match &opts.entrypoint {
        Some(ep) if ep.is_empty() => (Vec::new(), opts.cmd.clone()),
        Some(ep) => (vec![ep.clone()], opts.cmd.clone()),
        None => {
            let cmd = if opts.cmd.is_empty() {
                cfg.cmd.clone().unwrap_or_default()
            } else {
                opts.cmd.clone()
            };
            (cfg.entrypoint.clone().unwrap_or_default(), cmd)
        }
    };
    let argv: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
    let Some((path, args)) = argv.split_first() else {
        return Err(RuntimeError::NoCommand);
    };

    let name = match &v.name {
        Some(n) => {
            if let Some((_, id)) = facts.taken.iter().find(|(taken, _)| taken == n) {
                return Err(RuntimeError::NameInUse {
                    name: n.clone(),
                    id: id.clone(),
                });
            }
            n.clone()
        }
        None => (0..)
            .map(names::generate)
            .find(|n| !facts.taken.iter().any(|(taken, _)| taken == n))
            .unwrap_or_else(|| facts.id.clone()),
    };
    let id = facts.id;
    // As docker: the host's name on the host's network, else the short ID.
    let hostname = opts.hostname.clone().unwrap_or_else(|| match v.network {
        Network::Host => rustix::system::uname().nodename().to_string_lossy().into_owned(),
        _ => id[..12].to_string(),
    });

    // Environment: image, then --env-file, then -e; PATH always set.
    let mut env: Vec<String> = cfg.env.clone().unwrap_or_default();
    for kv in &v.env {
        let key = kv.split('=').next().unwrap_or("");
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    // What inspect shows as Config.Env, as docker keeps it: the image's and
    // the user's, without what the runtime adds below.
    let config_env = env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    env.retain(|e| !e.starts_with("HOSTNAME="));
    env.push(format!("HOSTNAME={hostname}"));
    if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }

    let user_spec = opts
        .user
        .clone()
        .unwrap_or_else(|| cfg.user.clone().unwrap_or_default());
    let mut resolved = user::resolve(&user_spec, &facts.passwd, &facts.group)?;
    for g in &opts.group_add {
        let gid = user::group_id(g, &facts.group)?;
        if !resolved.additional_gids.contains(&gid) {
            resolved.additional_gids.push(gid);
        }
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", resolved.home));
    }
    let working_dir = opts
        .workdir
        .clone()
        .or_else(|| cfg.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    let mut labels = cfg.labels();
    labels.extend(v.labels.iter().cloned());
    let network = v.network;
    let mut ports = v.ports.clone();
    if opts.publish_all {
        if let Some(exposed) = &cfg.exposed_ports {
            ports.extend(exposed.keys().filter_map(|k| crate::network::ports::exposed(k)));
        }
        ports.extend(v.expose.iter().cloned());
    }
    if !matches!(network, Network::Bridge | Network::User) {
        // As docker: nothing to publish without a network of the container's own.
        ports.clear();
    }
    let stop_signal = opts
        .stop_signal
        .clone()
        .or_else(|| cfg.stop_signal.clone())
        .unwrap_or_else(|| "SIGTERM".to_string());

    let mut meta = Meta {
        id: id.clone(),
        name,
        created: facts.created,
        image: image.name.to_string(),
        image_id: image.id.clone(),
        path: path.clone(),
        args: args.to_vec(),
        entrypoint,
        cmd,
        env: env.clone(),
        config_env: Some(config_env),
        working_dir: working_dir.clone(),
        user: user_spec,
        hostname: hostname.clone(),
        labels,
        network,
        network_name: facts.network_name,
        ports,
        tty: opts.tty,
        open_stdin: opts.interactive,
        auto_remove: opts.auto_remove,
        init: opts.init,
        read_only: opts.read_only,
        volumes: v.volumes.clone(),
        cap_add: opts.cap_add.clone(),
        cap_drop: opts.cap_drop.clone(),
        security_opt: opts.security_opt.clone(),
        runtime: opts.runtime.clone(),
        stop_signal,
        stop_timeout: opts.stop_timeout,
        lower_dirs: image.lower_dirs.to_vec(),
        log_driver: v.log_driver,
        log_opts: v.log_opts.clone(),
        restart: v.restart,
        host: Default::default(),
        healthcheck: crate::health::merge(v.healthcheck.as_ref(), cfg.healthcheck.as_ref()),
        shell: cfg.shell.clone().unwrap_or_default(),
    };
    let capabilities = spec::capability_set(&v.capabilities)?;
    let granted = if resolved.uid == 0 {
        capabilities.clone()
    } else {
        Default::default()
    };
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(capabilities))
        .set_effective(Some(granted.clone()))
        .set_inheritable(Some(Default::default()))
        .set_permitted(Some(granted))
        .set_ambient(Some(Default::default()));
    let mut process = Process::default();
    process
        .set_terminal(Some(opts.tty))
        .set_args(Some(argv))
        .set_env(Some(env))
        .set_cwd(working_dir.into())
        .set_capabilities(Some(caps))
        .set_rlimits(Some(opts.limits.rlimits(vec![spec::rlimit(
            PosixRlimitType::RlimitNofile,
            facts.nofile,
            facts.nofile,
        )?])?))
        .set_no_new_privileges(Some(v.no_new_privileges));
    process
        .user_mut()
        .set_uid(resolved.uid)
        .set_gid(resolved.gid)
        .set_additional_gids(Some(resolved.additional_gids).filter(|g| !g.is_empty()));
    let mut root = Root::default();
    root.set_path("rootfs".into()).set_readonly(Some(opts.read_only));
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ]
    .into_iter()
    .map(|k| spec::namespace(k, None))
    .chain((network != Network::Host).then(|| {
        // A bridge or user-mode network's namespace is made (and kept there) at start.
        let path = matches!(network, Network::Bridge | Network::User).then(|| crate::network::netns_path(&facts.dir));
        spec::namespace(LinuxNamespaceType::Network, path)
    }))
    .collect();
    let mut linux = Linux::default();
    linux
        .set_namespaces(Some(namespaces))
        .set_masked_paths(Some(spec::MASKED_PATHS.iter().map(|s| s.to_string()).collect()))
        .set_readonly_paths(Some(spec::READONLY_PATHS.iter().map(|s| s.to_string()).collect()))
        .set_seccomp(v.seccomp.clone())
        .set_sysctl(Some(v.sysctls.clone().into_iter().collect()).filter(|s: &HashMap<_, _>| !s.is_empty()))
        .set_cgroups_path(Some(barge_cgroups::default_path(&id).into()))
        .set_resources(Some(opts.limits.resources()));
    let mut spec = Spec::default();
    spec.set_version(spec::OCI_VERSION.into())
        .set_process(Some(process))
        .set_root(Some(root))
        .set_hostname(Some(hostname))
        .set_mounts(Some(mounts(&facts.dir, &v.volumes, opts.shm_size)))
        .set_linux(Some(linux))
        .set_annotations(None);
    meta.host = v.sharing.apply(&mut spec, &facts.taken, &facts.dir)?;
    let o = &v.options;
    let resolv = (!(o.dns.is_empty() && o.dns_search.is_empty() && o.dns_options.is_empty()))
        .then(|| resolv_with(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(), o));
    Ok(Plan {
        spec,
        meta,
        hosts_extra: v.hosts_extra.clone(),
        resolv,
    })
}

/// Makes the planned container on disk: its directories, the record that
/// keeps its image, bind sources that are missing, its `/etc` files, the
/// bundle config and its records.
fn apply(dir: PathBuf, plan: Plan) -> Result<Container, RuntimeError> {
    let Plan {
        spec,
        meta,
        hosts_extra,
        resolv,
    } = plan;
    for sub in ["upper", "work", "rootfs"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(io_err(format!("creating {}", dir.join(sub).display())))?;
    }
    // First of the records: from now on the store keeps the image.
    std::fs::write(dir.join(barge_store::CONTAINER_IMAGE_FILE), meta.image_id.to_string())
        .map_err(io_err(format!("writing {}", dir.display())))?;
    for v in meta.volumes.iter().filter(|v| v.kind.is_bind()) {
        if !v.source.exists() {
            // As docker does for bind sources that do not exist.
            std::fs::create_dir_all(&v.source).map_err(io_err(format!("creating {}", v.source.display())))?;
        }
    }
    write_files(&dir, &meta.hostname, meta.network, &hosts_extra, resolv)?;
    write_json(&dir.join("config.json"), &spec)?;
    write_json(&dir.join("meta.json"), &meta)?;
    write_json(&dir.join("state.json"), &State::created())?;
    Ok(Container { dir, meta })
}

impl Runtime {
    /// Creates a container of the image `image_id` (named `image` by the user).
    pub fn create(&self, image_id: &Digest, image: &str, opts: &Validated) -> Result<Container, RuntimeError> {
        // No removal runs while the image is read and its use recorded.
        let _store = self.store.lock_shared()?;
        let details = self.store.image_details(image_id)?;
        let lower_dirs = crate::lower_dirs(&self.store, image_id)?;
        let cfg = details.config.config.clone().unwrap_or_default();
        let source = ImageSource {
            id: image_id,
            name: image,
            config: &cfg,
            lower_dirs: &lower_dirs,
        };
        // The image's VOLUMEs get anonymous volumes, as docker run gives them.
        self.create_in(&source, opts, cfg.volumes.as_ref())
    }

    /// Creates a container over explicit layers with an explicit container
    /// config: a build step, whose image is not in the store yet. The
    /// caller holds the store lock so that no prune removes those layers
    /// meanwhile.
    pub fn create_with(&self, image: &ImageSource<'_>, opts: &Validated) -> Result<Container, RuntimeError> {
        self.create_in(image, opts, None)
    }

    fn create_in(
        &self,
        image: &ImageSource<'_>,
        opts: &Validated,
        image_volumes: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<Container, RuntimeError> {
        let _lock = self.lock()?;
        // Volumes named (anonymous ones too) and placed; made after the plan.
        let mut resolved = opts.clone();
        resolved.volumes = crate::volumes::resolve(&self.volumes(), &opts.volumes, image_volumes)?;
        let opts = &resolved;
        let id = names::new_id();
        let network_name = match opts.network {
            Network::Bridge => {
                let wanted = opts
                    .options
                    .network_name
                    .as_deref()
                    .unwrap_or(crate::network::DEFAULT_NETWORK);
                Some(crate::network::Networks::new(self.store.root()).find(wanted)?.name)
            }
            _ => None,
        };
        // As overlayfs will show the image: whiteouts, opaque directories,
        // no link followed (a link could lead out of the layer on the host).
        let lowers = barge_store::lowers::Lowers::new(image.lower_dirs.to_vec());
        let facts = Facts {
            dir: self.dir.join(&id),
            id,
            created: crate::now_rfc3339(),
            taken: self.list()?.into_iter().map(|c| (c.meta.name, c.meta.id)).collect(),
            network_name,
            passwd: lowers.read_file("etc/passwd").unwrap_or_default(),
            group: lowers.read_file("etc/group").unwrap_or_default(),
            nofile: nofile_limit(),
        };
        let dir = facts.dir.clone();
        let plan = plan(image, opts, facts)?;
        let made = self.make_volumes(&opts.volumes, image.lower_dirs)?;
        apply(dir, plan).inspect_err(|_| self.forget_volumes(&made))
    }
}

/// RLIMIT_NOFILE for containers: docker's 1048576 where barge may raise
/// the hard limit (CAP_SYS_RESOURCE), else the hard limit barge has, so
/// that any OCI runtime can apply it.
fn nofile_limit() -> u64 {
    let wanted = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
        .min(1 << 20);
    let cap_sys_resource = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
        })
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0);
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(wanted);
    if cap_sys_resource {
        wanted
    } else {
        hard.min(wanted)
    }
}

/// The bundle's mounts: docker's standard ones, the container's own
/// `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, and volumes.
fn mounts(dir: &Path, volumes: &[Volume], shm_size: Option<i64>) -> Vec<Mount> {
    let mut m = spec::default_mounts();
    if let Some(bytes) = shm_size {
        for mount in m.iter_mut().filter(|m| m.destination() == Path::new("/dev/shm")) {
            let options = mount.options().clone().unwrap_or_default();
            let mut options: Vec<String> = options.into_iter().filter(|o| !o.starts_with("size=")).collect();
            options.push(format!("size={bytes}"));
            mount.set_options(Some(options));
        }
    }
    if crate::userns::inside() == Some(crate::userns::Mapping::Single) {
        // Group 5 (tty) does not exist in a single-ID namespace: devpts refuses it.
        for mount in &mut m {
            if let Some(options) = mount.options().clone() {
                mount.set_options(Some(options.into_iter().filter(|o| o != "gid=5").collect()));
            }
        }
    }
    for f in ["hosts", "hostname", "resolv.conf"] {
        m.push(spec::mount(
            &format!("/etc/{f}"),
            "bind",
            &dir.join(f).display().to_string(),
            &["rbind", "rprivate"],
        ));
    }
    // Outer mounts before the ones inside them, as docker sorts them.
    let mut volumes: Vec<&Volume> = volumes.iter().collect();
    volumes.sort_by_key(|v| v.destination.matches('/').count());
    for v in volumes {
        if v.kind == crate::volumes::MountKind::Tmpfs {
            let mut options = v.tmpfs_options.clone();
            if v.read_only {
                options.push("ro".into());
            }
            let options: Vec<&str> = options.iter().map(String::as_str).collect();
            m.push(spec::mount(&v.destination, "tmpfs", "tmpfs", &options));
            continue;
        }
        let options: &[&str] = if v.read_only {
            &["rbind", "rprivate", "ro"]
        } else {
            &["rbind", "rprivate"]
        };
        m.push(spec::mount(
            &v.destination,
            "bind",
            &v.source.display().to_string(),
            options,
        ));
    }
    m
}

fn write_files(
    dir: &Path,
    hostname: &str,
    network: Network,
    hosts_extra: &str,
    resolv: Option<String>,
) -> Result<(), RuntimeError> {
    let mut hosts = match network {
        Network::Host => std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
        // As docker's: no address of its own, no line for its name.
        Network::None => crate::network::HOSTS_HEADER.to_string(),
        // The network's attach writes the container's address here.
        Network::Bridge | Network::User => format!("{}127.0.0.1\t{hostname}\n", crate::network::HOSTS_HEADER),
    };
    hosts.push_str(hosts_extra);
    let pinned = resolv.is_some();
    let resolv = resolv.unwrap_or_else(|| std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let mut files = vec![
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
        (crate::network::HOSTS_EXTRA, hosts_extra.to_string()),
    ];
    if pinned {
        files.push((crate::network::RESOLV_PINNED, String::new()));
    }
    for (name, content) in files {
        std::fs::write(dir.join(name), content).map_err(io_err(format!("writing {}", dir.join(name).display())))?;
    }
    Ok(())
}

/// The host's resolv.conf with `--dns`, `--dns-search` and `--dns-option`
/// each replacing its kind of line, as docker does.
fn resolv_with(host: &str, o: &CreateOptions) -> String {
    let kind = |l: &str| l.split_whitespace().next().unwrap_or_default().to_string();
    let mut out: Vec<String> = host
        .lines()
        .filter(|l| match kind(l).as_str() {
            "nameserver" => o.dns.is_empty(),
            "search" | "domain" => o.dns_search.is_empty(),
            "options" => o.dns_options.is_empty(),
            _ => true,
        })
        .map(str::to_string)
        .collect();
    out.extend(o.dns.iter().map(|d| format!("nameserver {d}")));
    if !o.dns_search.is_empty() {
        out.push(format!("search {}", o.dns_search.join(" ")));
    }
    if !o.dns_options.is_empty() {
        out.push(format!("options {}", o.dns_options.join(" ")));
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_docker_allows() {
        for ok in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.ping_group_range=0 0",
            "kernel.shm_rmid_forced=1",
            "fs.mqueue.msg_max=20",
        ] {
            assert!(sysctl(ok, false).is_ok(), "{ok}");
        }
        assert_eq!(
            sysctl("kernel.sem=1 2 3 4", true).unwrap(),
            ("kernel.sem".into(), "1 2 3 4".into())
        );
        for bad in [
            "kernel.hostname=x",
            "kernel.shmmax",
            "net.ipv4/../x=1",
            "net..ipv4=1",
            "net.=1",
            "fs.mqueue.x=1\n2",
            "fs.file-max=1",
        ] {
            assert!(sysctl(bad, false).is_err(), "{bad}");
        }
        let e = sysctl("net.core.somaxconn=1", true).unwrap_err().to_string();
        assert_eq!(
            e,
            r#"sysctl "net.core.somaxconn" not allowed in host network namespace"#
        );
    }

    fn options() -> CreateOptions {
        CreateOptions {
            network: Some(Network::None),
            ..CreateOptions::default()
        }
    }

    #[test]
    fn validation_rejects_each_bad_option() {
        let bad: [fn(&mut CreateOptions); 7] = [
            |o| o.name = Some("-x".into()),
            |o| o.volumes = vec!["../rel:/b".into()],
            |o| o.cap_add = vec!["NOT_A_CAP".into()],
            |o| o.security_opt = vec!["bogus".into()],
            |o| o.publish = vec!["http".into()],
            |o| o.limits.memory = Some(1024),
            |o| o.log_opts = vec!["max-size".into()],
        ];
        for (i, set) in bad.iter().enumerate() {
            let mut o = options();
            set(&mut o);
            assert!(o.validate().is_err(), "option {i} was accepted");
        }
    }

    #[test]
    fn validation_keeps_what_it_parsed() {
        let o = CreateOptions {
            name: Some("/web".into()),
            env_file_lines: vec!["# comment".into(), "".into(), "A=file".into()],
            env: vec!["B=flag".into(), "BARGE_SURELY_UNSET_VARIABLE".into()],
            labels: vec!["a=1".into(), "b".into()],
            volumes: vec!["/data:/srv:ro".into()],
            publish: vec!["8080:80".into()],
            security_opt: vec!["seccomp=unconfined".into()],
            ..options()
        };
        let v = o.validate().unwrap();
        assert_eq!(v.name.as_deref(), Some("web"));
        assert_eq!(v.env, ["A=file", "B=flag"]);
        assert_eq!(v.labels, [("a".into(), "1".into()), ("b".into(), String::new())]);
        assert_eq!(v.volumes.len(), 1);
        assert_eq!(v.ports.len(), 1);
        assert!(v.seccomp.is_none());
        assert_eq!(v.network, Network::None);
        assert!(options().validate().unwrap().seccomp.is_some());
    }

    fn facts() -> Facts {
        Facts {
            id: "0123456789abcdef0123456789abcdef".into(),
            dir: PathBuf::from("/store/containers/0123456789abcdef"),
            created: "2026-01-01T00:00:00Z".into(),
            taken: vec![("web".into(), "feedface".into())],
            network_name: None,
            passwd: "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/sh\n".into(),
            group: "root:x:0:\nwww:x:33:\n".into(),
            nofile: 1024,
        }
    }

    fn planned(config: serde_json::Value, o: CreateOptions, facts: Facts) -> Result<Plan, RuntimeError> {
        let serde_json::Value::Object(config) = config else {
            panic!("a config is an object")
        };
        let config = ContainerConfig::from_json(config).unwrap();
        let id = Digest::of(b"image");
        let image = ImageSource {
            id: &id,
            name: "busybox",
            config: &config,
            lower_dirs: &[],
        };
        plan(&image, &o.validate()?, facts)
    }

    #[test]
    fn a_plan_joins_the_image_config_and_the_options() {
        let config = serde_json::json!({
            "Env": ["PATH=/bin", "A=image"],
            "Entrypoint": ["/entry"],
            "Cmd": ["default"],
            "Labels": {"from": "image", "kept": "image"},
            "User": "www",
            "WorkingDir": "/srv",
            "StopSignal": "SIGQUIT",
            "ExposedPorts": {"80/tcp": {}},
        });
        let o = CreateOptions {
            env: vec!["A=flag".into()],
            cmd: vec!["given".into()],
            labels: vec!["from=flag".into()],
            publish_all: true,
            ..options()
        };
        let p = planned(config, o, facts()).unwrap();
        let process = spec::process(&p.spec).unwrap();
        assert_eq!(process.args().as_deref().unwrap(), ["/entry", "given"]);
        assert_eq!(
            process.env().as_deref().unwrap(),
            ["PATH=/bin", "A=flag", "HOSTNAME=0123456789ab", "HOME=/var/www"]
        );
        assert_eq!((process.user().uid(), process.user().gid()), (33, 33));
        // Not root: no effective capabilities.
        let caps = process.capabilities().as_ref().unwrap();
        assert!(caps.effective().as_ref().unwrap().is_empty());
        assert!(spec::capability_names(caps.bounding().as_ref()).contains(&"CAP_CHOWN".to_string()));
        assert_eq!(process.cwd(), Path::new("/srv"));
        assert_eq!(p.meta.stop_signal, "SIGQUIT");
        assert_eq!(p.meta.labels["from"], "flag");
        assert_eq!(p.meta.labels["kept"], "image");
        assert!(names::valid(&p.meta.name) && p.meta.name != "web");
        // -P without a bridge network publishes nothing.
        assert!(p.meta.ports.is_empty());
        // A network of its own, made by the runner.
        assert_eq!(spec::network_namespace(&p.spec), Some(None));
        assert_eq!(process.rlimits().as_ref().unwrap()[0].hard(), 1024);
        // The JSON runc reads.
        let json = serde_json::to_value(&p.spec).unwrap();
        assert_eq!(json["ociVersion"], "1.0.2");
        let kinds: Vec<&str> = json["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["pid", "ipc", "uts", "mount", "network"]);
        assert_eq!(json["linux"]["namespaces"][4], serde_json::json!({"type": "network"}));
        assert_eq!(json["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(json["root"], serde_json::json!({"path": "rootfs", "readonly": false}));
        assert!(json.get("annotations").is_none());
    }

    #[test]
    fn a_plan_for_a_bridge_network_publishes_exposed_ports() {
        let config = serde_json::json!({"Cmd": ["x"], "ExposedPorts": {"80/tcp": {}, "53/udp": {}}});
        let o = CreateOptions {
            network: Some(Network::Bridge),
            publish: vec!["8080:8080".into()],
            publish_all: true,
            ..CreateOptions::default()
        };
        let f = Facts {
            network_name: Some("bridge".into()),
            ..facts()
        };
        let p = planned(config, o, f).unwrap();
        assert_eq!(p.meta.ports.len(), 3);
        assert_eq!(p.meta.network_name.as_deref(), Some("bridge"));
        let netns = spec::network_namespace(&p.spec).unwrap().unwrap();
        assert!(netns.starts_with("/store/containers/0123456789abcdef"));
    }

    #[test]
    fn a_plan_refuses_a_taken_name_and_no_command() {
        let config = serde_json::json!({"Cmd": ["x"]});
        let o = CreateOptions {
            name: Some("web".into()),
            ..options()
        };
        assert!(matches!(
            planned(config.clone(), o, facts()),
            Err(RuntimeError::NameInUse { id, .. }) if id == "feedface"
        ));
        assert!(matches!(
            planned(serde_json::json!({}), options(), facts()),
            Err(RuntimeError::NoCommand)
        ));
        let host = CreateOptions {
            network: Some(Network::Host),
            user: Some("nobody-here".into()),
            ..options()
        };
        assert!(matches!(planned(config, host, facts()), Err(RuntimeError::User(_))));
    }
}
