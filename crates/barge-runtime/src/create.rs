//! `barge create`: a container directory with an OCI bundle for an image.

use crate::container::{write_json, Container, Meta, Network, State, Volume};
use crate::spec::{self, Capabilities, Linux, Mount, Namespace, Process, Rlimit, Root, Spec, User};
use crate::{caps, io_err, names, seccomp, user, Runtime, RuntimeError};
use barge_oci::Digest;
use std::collections::BTreeMap;
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
    /// `-v HOST:CONTAINER[:ro]`.
    pub volumes: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--security-opt`: `seccomp=unconfined|PROFILE.json`, `no-new-privileges`.
    pub security_opt: Vec<String>,
    /// `--memory`, `--cpus`, `--pids-limit`, `--ulimit`, …
    pub limits: crate::limits::Limits,
    /// `--log-opt KEY=VALUE`: json-file's `max-size` and `max-file`.
    pub log_opts: Vec<String>,
}

impl CreateOptions {
    /// Checks every option that needs no image, as docker does before it
    /// pulls anything: `run --memory 1k IMAGE` fails at once, not after a
    /// download.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        if let Some(n) = &self.name {
            let n = n.strip_prefix('/').unwrap_or(n);
            if !names::valid(n) {
                return Err(RuntimeError::InvalidName(n.to_string()));
            }
        }
        for v in &self.volumes {
            parse_volume(v)?;
        }
        let capabilities = caps::resolve(&self.cap_add, &self.cap_drop)?;
        let security = seccomp::parse_security_opts(&self.security_opt)?;
        seccomp::for_container(&security.seccomp, &capabilities)?;
        for p in &self.publish {
            crate::network::ports::parse(p)?;
        }
        self.limits.validate(online_cpus())?;
        crate::logs::parse_opts(&self.log_opts)?;
        Ok(())
    }
}

/// Processors online, for `--cpus`.
fn online_cpus() -> usize {
    barge_cgroups::stats::online_cpus() as usize
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Parses `-v HOST:CONTAINER[:ro|rw]`.
pub(crate) fn parse_volume(v: &str) -> Result<Volume, RuntimeError> {
    let bad = || RuntimeError::BadVolume(v.to_string());
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(bad()),
    };
    let read_only = match mode {
        "" | "rw" => false,
        "ro" => true,
        _ => return Err(bad()),
    };
    if !src.starts_with('/') || !dst.starts_with('/') || dst == "/" {
        return Err(bad());
    }
    Ok(Volume {
        source: PathBuf::from(src),
        destination: dst.to_string(),
        read_only,
    })
}

fn json_strings(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

impl Runtime {
    /// Creates a container of the image `image_id` (named `image` by the user).
    pub fn create(&self, image_id: &Digest, image: &str, opts: &CreateOptions) -> Result<Container, RuntimeError> {
        // No removal runs while the image is read and its use recorded.
        let _store = self.store.lock_shared()?;
        let details = self.store.image_details(image_id)?;
        let lower_dirs = crate::lower_dirs(&self.store, image_id)?;
        let cfg = details.config.config.clone().unwrap_or(serde_json::Value::Null);
        self.create_with(image_id, image, &cfg, details.config.labels(), lower_dirs, opts)
    }

    /// Creates a container over explicit layers (`lower_dirs`, topmost
    /// first) with an explicit container config (`Env`, `Cmd`, `User`, …):
    /// a build step, whose image is not in the store yet. The caller holds
    /// the store lock so that no prune removes those layers meanwhile.
    pub fn create_with(
        &self,
        image_id: &Digest,
        image: &str,
        cfg: &serde_json::Value,
        image_labels: BTreeMap<String, String>,
        lower_dirs: Vec<PathBuf>,
        opts: &CreateOptions,
    ) -> Result<Container, RuntimeError> {
        // The command, as docker builds it.
        let (entrypoint, cmd) = match &opts.entrypoint {
            Some(ep) if ep.is_empty() => (Vec::new(), opts.cmd.clone()),
            Some(ep) => (vec![ep.clone()], opts.cmd.clone()),
            None => {
                let cmd = if opts.cmd.is_empty() {
                    json_strings(cfg.get("Cmd"))
                } else {
                    opts.cmd.clone()
                };
                (json_strings(cfg.get("Entrypoint")), cmd)
            }
        };
        let argv: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
        let Some((path, args)) = argv.split_first() else {
            return Err(RuntimeError::NoCommand);
        };

        let _lock = self.lock()?;
        let existing = self.list()?;
        let name = match &opts.name {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n);
                if !names::valid(n) {
                    return Err(RuntimeError::InvalidName(n.to_string()));
                }
                if let Some(c) = existing.iter().find(|c| c.meta.name == n) {
                    return Err(RuntimeError::NameInUse {
                        name: n.to_string(),
                        id: c.meta.id.clone(),
                    });
                }
                n.to_string()
            }
            None => (0..)
                .map(names::generate)
                .find(|n| !existing.iter().any(|c| c.meta.name == *n))
                .unwrap_or_else(names::new_id),
        };
        let id = names::new_id();
        let hostname = opts.hostname.clone().unwrap_or_else(|| id[..12].to_string());

        // Environment: image, then --env-file, then -e; PATH always set.
        let mut env: Vec<String> = json_strings(cfg.get("Env"));
        let mut set = |kv: String| {
            let key = kv.split('=').next().unwrap_or("").to_string();
            env.retain(|e| e.split('=').next() != Some(key.as_str()));
            env.push(kv);
        };
        for line in opts.env_file_lines.iter().chain(opts.env.iter()) {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.contains('=') {
                set(line.to_string());
            } else if let Ok(v) = std::env::var(line) {
                set(format!("{line}={v}"));
            }
        }
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
            .unwrap_or_else(|| cfg.get("User").and_then(|u| u.as_str()).unwrap_or("").to_string());
        // As overlayfs will show the image: whiteouts, opaque directories,
        // no link followed (a link could lead out of the layer on the host).
        let lowers = barge_store::lowers::Lowers::new(lower_dirs.clone());
        let passwd = lowers.read_file("etc/passwd").unwrap_or_default();
        let group = lowers.read_file("etc/group").unwrap_or_default();
        let resolved = user::resolve(&user_spec, &passwd, &group)?;
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", resolved.home));
        }
        let working_dir = opts
            .workdir
            .clone()
            .or_else(|| {
                cfg.get("WorkingDir")
                    .and_then(|w| w.as_str())
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "/".to_string());
        let mut labels = image_labels;
        for l in &opts.labels {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            labels.insert(k.to_string(), v.to_string());
        }
        let volumes = opts
            .volumes
            .iter()
            .map(|v| parse_volume(v))
            .collect::<Result<Vec<_>, _>>()?;
        let capabilities = caps::resolve(&opts.cap_add, &opts.cap_drop)?;
        let security = seccomp::parse_security_opts(&opts.security_opt)?;
        let seccomp = seccomp::for_container(&security.seccomp, &capabilities)?;
        let network = opts.network.unwrap_or(if crate::network::can_make_bridges() {
            Network::Bridge
        } else {
            Network::None
        });
        let network_name = match network {
            Network::Bridge => {
                let wanted = opts.network_name.as_deref().unwrap_or(crate::network::DEFAULT_NETWORK);
                Some(crate::network::Networks::new(self.store.root()).find(wanted)?.name)
            }
            _ => None,
        };
        let mut ports = Vec::new();
        for p in &opts.publish {
            ports.extend(crate::network::ports::parse(p)?);
        }
        if opts.publish_all {
            if let Some(exposed) = cfg.get("ExposedPorts").and_then(|e| e.as_object()) {
                ports.extend(exposed.keys().filter_map(|k| crate::network::ports::exposed(k)));
            }
        }
        if network != Network::Bridge {
            // As docker: nothing to publish without a network of the container's own.
            ports.clear();
        }
        opts.limits.validate(online_cpus())?;
        let log_opts = crate::logs::parse_opts(&opts.log_opts)?;
        let stop_signal = cfg
            .get("StopSignal")
            .and_then(|s| s.as_str())
            .unwrap_or("SIGTERM")
            .to_string();

        let dir = self.dir.join(&id);
        for sub in ["upper", "work", "rootfs"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io_err(format!("creating {}", dir.join(sub).display())))?;
        }
        // First of the records: from now on the store keeps the image.
        std::fs::write(dir.join(barge_store::CONTAINER_IMAGE_FILE), image_id.to_string())
            .map_err(io_err(format!("writing {}", dir.display())))?;
        for v in &volumes {
            if !v.source.exists() {
                // As docker does for bind sources that do not exist.
                std::fs::create_dir_all(&v.source).map_err(io_err(format!("creating {}", v.source.display())))?;
            }
        }
        write_files(&dir, &hostname, network)?;

        let meta = Meta {
            id: id.clone(),
            name,
            created: crate::now_rfc3339(),
            image: image.to_string(),
            image_id: image_id.clone(),
            path: path.clone(),
            args: args.to_vec(),
            entrypoint,
            cmd,
            env: env.clone(),
            working_dir: working_dir.clone(),
            user: user_spec,
            hostname: hostname.clone(),
            labels,
            network,
            network_name,
            ports,
            tty: opts.tty,
            open_stdin: opts.interactive,
            auto_remove: opts.auto_remove,
            init: opts.init,
            read_only: opts.read_only,
            volumes: volumes.clone(),
            cap_add: opts.cap_add.clone(),
            cap_drop: opts.cap_drop.clone(),
            security_opt: opts.security_opt.clone(),
            runtime: opts.runtime.clone(),
            stop_signal,
            lower_dirs,
            log_opts,
        };
        let uid0 = resolved.uid == 0;
        let nofile = nofile_limit();
        let spec = Spec {
            oci_version: "1.0.2".into(),
            process: Process {
                terminal: opts.tty,
                user: User {
                    uid: resolved.uid,
                    gid: resolved.gid,
                    additional_gids: resolved.additional_gids,
                },
                args: argv,
                env,
                cwd: working_dir,
                capabilities: Capabilities {
                    bounding: capabilities.clone(),
                    effective: if uid0 { capabilities.clone() } else { Vec::new() },
                    inheritable: Vec::new(),
                    permitted: if uid0 { capabilities } else { Vec::new() },
                    ambient: Vec::new(),
                },
                rlimits: opts.limits.rlimits(vec![Rlimit {
                    kind: "RLIMIT_NOFILE".into(),
                    hard: nofile,
                    soft: nofile,
                }]),
                no_new_privileges: true,
            },
            root: Root {
                path: "rootfs".into(),
                readonly: opts.read_only,
            },
            hostname,
            mounts: mounts(&dir, &volumes),
            linux: Linux {
                namespaces: ["pid", "ipc", "uts", "mount"]
                    .iter()
                    .copied()
                    .chain((network != Network::Host).then_some("network"))
                    .map(|k| Namespace {
                        kind: k.into(),
                        // A bridge network's namespace is made (and kept there) at start.
                        path: (k == "network" && network == Network::Bridge)
                            .then(|| crate::network::netns_path(&dir).display().to_string()),
                    })
                    .collect(),
                masked_paths: spec::MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
                readonly_paths: spec::READONLY_PATHS.iter().map(|s| s.to_string()).collect(),
                seccomp,
                cgroups_path: Some(barge_cgroups::default_path(&id)),
                resources: Some(opts.limits.resources()),
            },
            annotations: BTreeMap::new(),
        };
        write_json(&dir.join("config.json"), &spec)?;
        write_json(&dir.join("meta.json"), &meta)?;
        write_json(&dir.join("state.json"), &State::created())?;
        Ok(Container { dir, meta })
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
fn mounts(dir: &Path, volumes: &[Volume]) -> Vec<Mount> {
    let mut m = spec::default_mounts();
    for f in ["hosts", "hostname", "resolv.conf"] {
        m.push(Mount {
            destination: format!("/etc/{f}"),
            kind: "bind".into(),
            source: dir.join(f).display().to_string(),
            options: vec!["rbind".into(), "rprivate".into()],
        });
    }
    for v in volumes {
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        if v.read_only {
            options.push("ro".into());
        }
        m.push(Mount {
            destination: v.destination.clone(),
            kind: "bind".into(),
            source: v.source.display().to_string(),
            options,
        });
    }
    m
}

fn write_files(dir: &Path, hostname: &str, network: Network) -> Result<(), RuntimeError> {
    let hosts = match network {
        Network::Host => std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
        Network::None | Network::Bridge => format!("{}127.0.0.1\t{hostname}\n", crate::network::HOSTS_HEADER),
    };
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for (name, content) in [
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ] {
        std::fs::write(dir.join(name), content).map_err(io_err(format!("writing {}", dir.join(name).display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_specs() {
        let v = parse_volume("/data:/srv:ro").unwrap();
        assert_eq!(
            (v.source.as_path(), v.destination.as_str(), v.read_only),
            (Path::new("/data"), "/srv", true)
        );
        assert!(!parse_volume("/a:/b").unwrap().read_only);
        for bad in ["rel:/b", "/a:rel", "/a", "/a:/b:xx", "/a:/", "/a:/b:ro:extra"] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }
}
