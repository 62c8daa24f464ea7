//! The build itself: one stage, instruction by instruction.

use crate::dockerfile::{self, pairs, Args, Command, CopyArgs, Instruction, Line};
use crate::fs::{clean, diff_upper, io_err, walk, write_entry};
use crate::ignore::{glob_matches, is_glob, Ignore};
use crate::layer::{LayerWriter, Owner, Written};
use crate::{BaseImages, BuildError, BuildOptions, BuildOutcome, BuildProgress};
use barge_oci::image::{chain_ids, MAX_CONFIG_BYTES};
use barge_oci::{media, ContainerConfig, Descriptor, Digest, Platform};
use barge_runtime::monitor::Foreground;
use barge_runtime::{CreateOptions, ImageSource, Runtime};
use barge_store::lowers::Lowers;
use barge_store::{ImageMeta, LayerLimits, Store};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::Metadata;
use std::io::Read;
use std::path::{Path, PathBuf};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const NOP: &str = "/bin/sh -c #(nop) ";

/// Builds the image the Dockerfile describes; tags it (or keeps it dangling).
pub fn build(
    store: &Store,
    runtime: &Runtime,
    bases: &dyn BaseImages,
    opts: &BuildOptions,
    progress: &dyn BuildProgress,
) -> Result<BuildOutcome, BuildError> {
    let lines = dockerfile::parse(&opts.dockerfile)?;
    // No prune may remove layers this build stands on until it is tagged.
    let _lock = store.lock_shared()?;
    let build_args: BTreeMap<String, String> = opts.build_args.iter().cloned().collect();
    let mut used_args: BTreeSet<String> = BTreeSet::new();
    // Docker's automatic platform ARGs; a stage sees them after `ARG NAME`.
    let mut global: BTreeMap<String, String> = BTreeMap::new();
    let target = opts.platform.clone().unwrap_or_else(Platform::host);
    for (prefix, p) in [("TARGET", &target), ("BUILD", &Platform::host())] {
        global.insert(format!("{prefix}PLATFORM"), p.to_string());
        global.insert(format!("{prefix}OS"), p.os.clone());
        global.insert(format!("{prefix}ARCH"), p.architecture.clone());
        global.insert(format!("{prefix}VARIANT"), p.variant.clone().unwrap_or_default());
    }
    let mut stage: Option<Stage> = None;
    let total = lines.len();
    for (n, line) in lines.iter().enumerate() {
        progress.step(&format!("Step {}/{total} : {}", n + 1, line.shown));
        match (&line.instruction, &mut stage) {
            (Instruction::Arg(args), None) => {
                for (k, v) in declare_args(line, args, &global, &build_args, &global)? {
                    used_args.insert(k.clone());
                    global.insert(k, v);
                }
            }
            (Instruction::From { image, platform }, None) => {
                let base = Base {
                    line,
                    image,
                    platform: platform.as_ref(),
                };
                stage = Some(Stage::from(store, runtime, bases, opts, progress, base, &global)?)
            }
            (_, None) => return Err(line.error("a Dockerfile must begin with FROM (only ARG may come before it)")),
            (_, Some(s)) => {
                s.global = global.clone();
                s.apply(line, &build_args, &mut used_args)?;
            }
        }
    }
    let Some(stage) = stage else {
        return Err(BuildError::Dockerfile {
            line: 1,
            message: "no FROM instruction".into(),
        });
    };
    let unused: Vec<&String> = build_args.keys().filter(|k| !used_args.contains(*k)).collect();
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        progress.note(&format!(
            "[Warning] One or more build-args [{}] were not consumed",
            names.join(" ")
        ));
    }
    stage.finish()
}

/// `ARG name[=default]…`: the values it gives (a `--build-arg` wins).
fn declare_args(
    line: &Line,
    args: &Args,
    vars: &BTreeMap<String, String>,
    build_args: &BTreeMap<String, String>,
    global: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, BuildError> {
    let ws = args.words(vars).map_err(|e| line.error(e))?;
    if ws.is_empty() {
        return Err(line.error("needs a name"));
    }
    let mut out = Vec::new();
    for w in ws {
        let (name, default) = match w.split_once('=') {
            Some((n, d)) => (n.to_string(), Some(d.to_string())),
            None => (w, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(line.error(format!("invalid name {name:?}")));
        }
        let value = build_args
            .get(&name)
            .cloned()
            .or(default)
            .or_else(|| global.get(&name).cloned());
        if let Some(v) = value {
            out.push((name, v));
        }
    }
    Ok(out)
}

/// The FROM a stage starts with.
struct Base<'l> {
    line: &'l Line,
    /// `IMAGE [AS NAME]`.
    image: &'l Args,
    platform: Option<&'l Args>,
}

struct Stage<'a> {
    store: &'a Store,
    runtime: &'a Runtime,
    opts: &'a BuildOptions,
    progress: &'a dyn BuildProgress,
    /// Top-level config fields besides the ones rebuilt at the end (`author`).
    extra: Map<String, Value>,
    /// The `config` object: Env, Cmd, Entrypoint, WorkingDir, …
    config: ContainerConfig,
    history: Vec<Value>,
    layers: Vec<Descriptor>,
    diff_ids: Vec<Digest>,
    platform: Platform,
    /// ARG values of this stage.
    args: BTreeMap<String, String>,
    /// ARG values declared before FROM.
    global: BTreeMap<String, String>,
    shell: Vec<String>,
    /// The CMD came from the base image (an ENTRYPOINT clears it).
    cmd_inherited: bool,
    created: String,
    ignore: Ignore,
}

impl<'a> Stage<'a> {
    fn from(
        store: &'a Store,
        runtime: &'a Runtime,
        bases: &dyn BaseImages,
        opts: &'a BuildOptions,
        progress: &'a dyn BuildProgress,
        base: Base,
        global: &BTreeMap<String, String>,
    ) -> Result<Stage<'a>, BuildError> {
        let line = base.line;
        let ws = base.image.words(global).map_err(|e| line.error(e))?;
        let name = match ws.as_slice() {
            [name] => name.clone(),
            [name, as_, _] if as_.eq_ignore_ascii_case("as") => name.clone(),
            _ => return Err(line.error("expected FROM IMAGE [AS NAME]")),
        };
        let platform = match base.platform {
            Some(p) => {
                let p = p.words(global).map_err(|e| line.error(e))?.join("");
                Some(Platform::parse(&p).map_err(|e| line.error(e))?)
            }
            None => opts.platform.clone(),
        };
        let ignore = match std::fs::read_to_string(opts.context.join(".dockerignore")) {
            Ok(t) => Ignore::parse(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
            Err(e) => return Err(io_err("reading .dockerignore")(e)),
        };
        let mut stage = Stage {
            store,
            runtime,
            opts,
            progress,
            extra: Map::new(),
            config: ContainerConfig::default(),
            history: Vec::new(),
            layers: Vec::new(),
            diff_ids: Vec::new(),
            platform: platform.clone().unwrap_or_else(Platform::host),
            args: BTreeMap::new(),
            global: global.clone(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            cmd_inherited: false,
            created: barge_oci::time::format_rfc3339(opts.epoch as i64),
            ignore,
        };
        if name == "scratch" {
            stage.set("Env", |c| c.env = Some(vec![DEFAULT_PATH.to_string()]));
            return Ok(stage);
        }
        let id = bases
            .resolve(&name, platform.as_ref())
            .map_err(|message| BuildError::Base {
                name: name.clone(),
                message,
            })?;
        stage.load_base(&id, &name)?;
        progress.note(&format!(" ---> {}", &id.hex()[..12]));
        Ok(stage)
    }

    /// Starts from a stored image: its layers, config and history.
    fn load_base(&mut self, id: &Digest, name: &str) -> Result<(), BuildError> {
        let entries = self.store.entries()?;
        let entry = entries
            .iter()
            .find(|e| e.meta.image_id == *id)
            .ok_or_else(|| BuildError::Base {
                name: name.to_string(),
                message: "not in the store".into(),
            })?;
        let manifest = self.store.image_manifest(&entry.manifest.digest)?;
        let raw = self.store.read_blob(&manifest.config.digest, MAX_CONFIG_BYTES)?;
        let cfg: Value = serde_json::from_slice(&raw).map_err(|e| BuildError::Base {
            name: name.to_string(),
            message: format!("its config is not JSON: {e}"),
        })?;
        let parsed = barge_oci::ImageConfig::parse(&raw).map_err(|e| BuildError::Base {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        if parsed.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(BuildError::Base {
                name: name.to_string(),
                message: "its config and manifest disagree on the layers".into(),
            });
        }
        self.platform = parsed.platform();
        self.diff_ids = parsed.rootfs.diff_ids.clone();
        self.layers = manifest
            .layers
            .iter()
            .map(|l| {
                let mt = match l.media_type.as_str() {
                    media::DOCKER_LAYER_GZIP => media::OCI_LAYER_GZIP,
                    other => other,
                };
                Descriptor::new(mt, l.digest.clone(), l.size)
            })
            .collect();
        self.config = parsed.config.unwrap_or_default();
        self.history = cfg
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(s) = &self.config.shell {
            self.shell = s.clone();
        }
        self.cmd_inherited = self.config.cmd.is_some();
        Ok(())
    }

    /// Variables for substitution: ARGs, then ENV over them.
    fn vars(&self) -> BTreeMap<String, String> {
        let mut v = self.args.clone();
        for e in self.env() {
            if let Some((k, val)) = e.split_once('=') {
                v.insert(k.to_string(), val.to_string());
            }
        }
        v
    }

    fn env(&self) -> Vec<String> {
        self.config.env.clone().unwrap_or_default()
    }

    fn workdir(&self) -> String {
        self.config
            .working_dir
            .as_deref()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    fn lower_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = chain_ids(&self.diff_ids)
            .iter()
            .map(|c| self.store.snapshot_fs(c))
            .collect();
        dirs.reverse();
        dirs
    }

    fn nop(&mut self, text: String) {
        self.history.push(json!({
            "created": self.created,
            "created_by": format!("{NOP} {text}"),
            "empty_layer": true,
        }));
    }

    /// Changes the config's `key` (docker's name) with `change`: a key new
    /// to the config is written after the others, as docker does.
    fn set(&mut self, key: &str, change: impl FnOnce(&mut ContainerConfig)) {
        change(&mut self.config);
        self.config.touch(key);
    }

    /// Adds `set` to the labels.
    fn add_labels<'l>(&mut self, set: impl IntoIterator<Item = (&'l String, &'l String)>) {
        self.set("Labels", |c| {
            let labels = c.labels.get_or_insert_with(Default::default);
            for (k, v) in set {
                labels.insert(k.clone(), v.clone());
            }
        });
    }

    /// One instruction of the stage (all but FROM).
    fn apply(
        &mut self,
        line: &Line,
        build_args: &BTreeMap<String, String>,
        used_args: &mut BTreeSet<String>,
    ) -> Result<(), BuildError> {
        let vars = self.vars();
        let words = |args: &Args| args.words(&vars).map_err(|e| line.error(e));
        match &line.instruction {
            Instruction::Arg(args) => self.arg(line, args, &vars, build_args, used_args)?,
            Instruction::Env(args) => {
                let set = pairs(args, &vars, true).map_err(|e| line.error(e))?;
                self.env_vars(&set);
            }
            Instruction::Label(args) => {
                let set = pairs(args, &vars, false).map_err(|e| line.error(e))?;
                self.labels(&set);
            }
            Instruction::Cmd(c) => self.cmd(c),
            Instruction::Entrypoint(c) => self.entrypoint(c),
            Instruction::Shell(argv) => {
                self.shell = argv.clone();
                self.set("Shell", |c| c.shell = Some(argv.clone()));
                self.nop(format!("SHELL {}", go_list(argv)));
            }
            Instruction::Workdir(args) => self.workdir_to(line, words(args)?.join(" "))?,
            Instruction::User(args) => {
                let u = words(args)?.join(" ");
                if u.is_empty() || u.contains(char::is_whitespace) {
                    return Err(line.error("expected one USER[:GROUP]"));
                }
                self.set("User", |c| c.user = Some(u.clone()));
                self.nop(format!("USER {u}"));
            }
            Instruction::Expose(args) => self.expose(line, &words(args)?)?,
            Instruction::Volume(list) => {
                let vols = list.items(&vars).map_err(|e| line.error(e))?;
                self.volumes(line, &vols)?
            }
            Instruction::Stopsignal(args) => {
                let s = words(args)?.join(" ");
                barge_runtime::runner::parse_signal(&s).map_err(|e| line.error(e))?;
                self.set("StopSignal", |c| c.stop_signal = Some(s.clone()));
                self.nop(format!("STOPSIGNAL {s}"));
            }
            Instruction::Maintainer(who) => {
                self.extra.insert("author".into(), json!(who));
                self.nop(format!("MAINTAINER {who}"));
            }
            Instruction::Copy(c) => self.copy(line, c, false, &vars)?,
            Instruction::Add(c) => self.copy(line, c, true, &vars)?,
            Instruction::Run(c) => self.run(line, c)?,
            Instruction::From { .. } => {
                return Err(line.error("multi-stage builds (a second FROM) are not supported by barge build yet"))
            }
            Instruction::Healthcheck(_) | Instruction::Onbuild(_) => {
                return Err(line.error(format!(
                    "{} is not supported by barge build yet; remove it or build with docker",
                    line.instruction.keyword()
                )))
            }
        }
        Ok(())
    }

    /// `ARG` in a stage: declared values, and names a `--build-arg` may use.
    fn arg(
        &mut self,
        line: &Line,
        args: &Args,
        vars: &BTreeMap<String, String>,
        build_args: &BTreeMap<String, String>,
        used_args: &mut BTreeSet<String>,
    ) -> Result<(), BuildError> {
        let global = self.global.clone();
        for (k, v) in declare_args(line, args, vars, build_args, &global)? {
            used_args.insert(k.clone());
            self.args.insert(k, v);
        }
        // Declared without a value: known, and a --build-arg for it is used.
        for w in args.words(vars).map_err(|e| line.error(e))? {
            used_args.insert(w.split('=').next().unwrap_or("").to_string());
        }
        Ok(())
    }

    fn env_vars(&mut self, set: &[(String, String)]) {
        let mut env = self.env();
        for (k, v) in set {
            env.retain(|e| e.split('=').next() != Some(k.as_str()));
            env.push(format!("{k}={v}"));
        }
        self.set("Env", |c| c.env = Some(env));
        self.nop(format!("ENV {}", shown_pairs(set)));
    }

    fn labels(&mut self, set: &[(String, String)]) {
        self.add_labels(set.iter().map(|(k, v)| (k, v)));
        self.nop(format!("LABEL {}", shown_pairs(set)));
    }

    fn cmd(&mut self, c: &Command) {
        let argv = self.command(c);
        self.set("Cmd", |c| c.cmd = Some(argv.clone()));
        self.cmd_inherited = false;
        self.nop(format!("CMD {}", go_list(&argv)));
    }

    /// ENTRYPOINT; a CMD that came with the base image goes, as docker does.
    fn entrypoint(&mut self, c: &Command) {
        let argv = self.command(c);
        self.set("Entrypoint", |c| c.entrypoint = Some(argv.clone()));
        if self.cmd_inherited {
            self.set("Cmd", |c| c.cmd = None);
        }
        self.nop(format!("ENTRYPOINT {}", go_list(&argv)));
    }

    fn workdir_to(&mut self, line: &Line, w: String) -> Result<(), BuildError> {
        if w.is_empty() {
            return Err(line.error("needs a path"));
        }
        let abs = if w.starts_with('/') {
            w
        } else {
            format!("{}/{w}", self.workdir())
        };
        let dir = format!("/{}", clean(&abs));
        self.set("WorkingDir", |c| c.working_dir = Some(dir.clone()));
        self.history.push(json!({
            "created": self.created,
            "created_by": format!("{NOP}WORKDIR {dir}"),
            "empty_layer": true,
        }));
        Ok(())
    }

    fn expose(&mut self, line: &Line, ports: &[String]) -> Result<(), BuildError> {
        if ports.is_empty() {
            return Err(line.error("needs at least one port"));
        }
        let mut exposed = self.config.exposed_ports.clone().unwrap_or_default();
        let mut shown = Vec::new();
        for p in ports {
            let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let proto = proto.to_ascii_lowercase();
            let valid_port = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
            let ok = match num.split_once('-') {
                Some((a, b)) => valid_port(a) && valid_port(b),
                None => valid_port(num),
            };
            if !ok || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                return Err(line.error(format!("invalid port {p:?}: expected PORT[/tcp|udp|sctp]")));
            }
            exposed.insert(format!("{num}/{proto}"), json!({}));
            shown.push(format!("{num}/{proto}"));
        }
        self.set("ExposedPorts", |c| c.exposed_ports = Some(exposed));
        self.nop(format!("EXPOSE {}", shown.join(" ")));
        Ok(())
    }

    fn volumes(&mut self, line: &Line, vols: &[String]) -> Result<(), BuildError> {
        if vols.is_empty() {
            return Err(line.error("needs at least one path"));
        }
        self.set("Volumes", |c| {
            let map = c.volumes.get_or_insert_with(Default::default);
            for v in vols {
                map.insert(v.clone(), json!({}));
            }
        });
        self.nop(format!("VOLUME [{}]", vols.join(" ")));
        Ok(())
    }

    /// CMD/ENTRYPOINT/RUN arguments: exec form, or the shell form through the SHELL.
    fn command(&self, c: &Command) -> Vec<String> {
        match c {
            Command::Exec(argv) => argv.clone(),
            Command::Shell(text) => {
                let mut argv = self.shell.clone();
                argv.push(text.clone());
                argv
            }
        }
    }

    // ------------------------------------------------------------ COPY / ADD

    /// COPY and ADD: the sources found in the context, the destination
    /// decided, every entry planned with its owner, then one layer written.
    fn copy(
        &mut self,
        line: &Line,
        c: &CopyArgs,
        add: bool,
        vars: &BTreeMap<String, String>,
    ) -> Result<(), BuildError> {
        if c.from.is_some() {
            return Err(line.error("--from needs multi-stage builds, which barge build does not support yet"));
        }
        let mut args = c.paths.items(vars).map_err(|e| line.error(e))?;
        if args.len() < 2 {
            return Err(line.error("needs at least one source and a destination"));
        }
        let dest_raw = args.pop().unwrap_or_default();
        let lowers = Lowers::new(self.lower_dirs());
        let perms = Perms {
            chown: chown_ids(line, c.chown.as_ref(), vars, &lowers)?,
            chmod: c.chmod,
        };
        let sources = self.context_sources(line, &args, add)?;
        let resolved = self.follow_sources(line, &sources)?;
        let dest = self.destination(line, dest_raw, sources.len())?;
        let plan = self.plan_copy(line, resolved, &dest, add, perms, &lowers)?;
        self.write_copy_layer(line, &plan, &dest, sources.len())
    }

    /// The sources as context-relative paths: globs expanded, each checked
    /// to stay inside the context and not be excluded by .dockerignore.
    fn context_sources(&self, line: &Line, args: &[String], add: bool) -> Result<Vec<String>, BuildError> {
        let mut sources: Vec<String> = Vec::new();
        for s in args {
            if add && (s.contains("://") || s.starts_with("git@")) {
                return Err(line.error(format!(
                    "{s}: ADD from a URL is not supported; download it into the context and COPY it"
                )));
            }
            let mut depth = 0i32;
            for c in s.split('/').filter(|c| !c.is_empty() && *c != ".") {
                depth += if c == ".." { -1 } else { 1 };
                if depth < 0 {
                    return Err(line.error(format!("{s}: forbidden path outside the build context")));
                }
            }
            let rel = clean(s);
            if is_glob(&rel) {
                let found = self.glob_sources(&rel)?;
                if found.is_empty() {
                    return Err(line.error(format!("{s}: no source files were specified")));
                }
                sources.extend(found);
            } else {
                let path = self.opts.context.join(&rel);
                if (!rel.is_empty() && self.ignore.excluded(&rel)) || std::fs::symlink_metadata(&path).is_err() {
                    return Err(line.error(format!(
                        "{s}: file not found in build context or excluded by .dockerignore"
                    )));
                }
                sources.push(rel);
            }
        }
        Ok(sources)
    }

    /// The context paths a glob matches, .dockerignore applied; a match
    /// inside a matched directory comes with that directory.
    fn glob_sources(&self, pattern: &str) -> Result<Vec<String>, BuildError> {
        let ignore = &self.ignore;
        let mut found: Vec<String> = walk(&self.opts.context, &|r, _| {
            !ignore.excluded(r) || ignore.has_exceptions()
        })?
        .into_iter()
        .map(|(r, _)| r)
        .filter(|r| !ignore.excluded(r) && glob_matches(pattern, r))
        .collect();
        let dirs: Vec<String> = found.clone();
        found.retain(|r| !dirs.iter().any(|d| r.starts_with(&format!("{d}/"))));
        Ok(found)
    }

    /// Each source as copied: a top-level symlink is followed, as docker
    /// does, and neither it nor a symlinked directory on the way may
    /// lead out of the context.
    fn follow_sources(&self, line: &Line, sources: &[String]) -> Result<Vec<Resolved>, BuildError> {
        let context = self
            .opts
            .context
            .canonicalize()
            .map_err(io_err(format!("reading {}", self.opts.context.display())))?;
        let mut resolved = Vec::new();
        for rel in sources {
            let path = self.opts.context.join(rel);
            let real = if rel.is_empty() {
                Ok(context.clone())
            } else {
                path.canonicalize()
            };
            match real {
                Ok(real) if real.starts_with(&context) => {
                    let md = std::fs::metadata(&real).map_err(io_err(format!("reading {}", real.display())))?;
                    resolved.push(Resolved {
                        rel: rel.clone(),
                        real,
                        md,
                    });
                }
                _ => return Err(line.error(format!("{rel}: forbidden path outside the build context"))),
            }
        }
        Ok(resolved)
    }

    /// The destination, absolute against WORKDIR; several sources need a directory.
    fn destination(&self, line: &Line, raw: String, sources: usize) -> Result<CopyDest, BuildError> {
        if sources > 1 && !raw.ends_with('/') {
            return Err(line.error(
                "when copying more than one source file, the destination must be a directory and end with a /",
            ));
        }
        let abs = if raw.starts_with('/') {
            raw.clone()
        } else {
            format!("{}/{raw}", self.workdir())
        };
        let is_dir = raw.ends_with('/') || raw == "." || sources > 1;
        Ok(CopyDest { raw, abs, is_dir })
    }

    /// Every entry of the layer, by its path in the image, with its owner;
    /// parent directories as the image has them, else root's 0755.
    fn plan_copy(
        &self,
        line: &Line,
        resolved: Vec<Resolved>,
        dest: &CopyDest,
        add: bool,
        perms: Perms,
        lowers: &Lowers,
    ) -> Result<CopyPlan, BuildError> {
        let mut plan = CopyPlan::default();
        for source in resolved {
            if source.md.is_dir() {
                plan.kinds.insert("dir");
                let target = lowers.resolve(&dest.abs, true);
                plan.entries
                    .entry(target.clone())
                    .or_insert_with(|| target_dir(lowers, perms, &target));
                self.plan_directory(&mut plan, &source, &target, perms)?;
                continue;
            }
            plan.kinds.insert("file");
            if add && source.md.is_file() && archive_kind(&source.real)?.is_some() {
                let target = lowers.resolve(&dest.abs, true);
                plan.entries
                    .entry(target.clone())
                    .or_insert_with(|| target_dir(lowers, perms, &target));
                plan.archives.push((source.real, target));
                continue;
            }
            let at = file_target(&source.rel, dest, lowers);
            if at.is_empty() {
                return Err(line.error("cannot copy a file over /"));
            }
            let o = perms.apply(crate::fs::owner(&source.md), false);
            plan.entries.insert(at, Item::Source(source.real, source.md, o));
        }
        let planned: Vec<String> = plan.entries.keys().cloned().collect();
        for p in planned {
            let mut parent = p.as_str();
            while let Some((up, _)) = parent.rsplit_once('/') {
                parent = up;
                if !plan.entries.contains_key(parent) {
                    plan.entries
                        .insert(parent.to_string(), Item::Dir(dir_owner(lowers, parent)));
                }
            }
        }
        plan.entries.remove("");
        Ok(plan)
    }

    /// A source directory's contents into `target`. An excluded directory
    /// is walked only for `!` exceptions, and kept only when one of them
    /// matched something below it.
    fn plan_directory(
        &self,
        plan: &mut CopyPlan,
        source: &Resolved,
        target: &str,
        perms: Perms,
    ) -> Result<(), BuildError> {
        let ignore = &self.ignore;
        let rel = &source.rel;
        let in_context = |r: &str| {
            if rel.is_empty() {
                r.to_string()
            } else {
                format!("{rel}/{r}")
            }
        };
        let walked = walk(&source.real, &|r, _| {
            !ignore.excluded(&in_context(r)) || ignore.has_exceptions()
        })?;
        let included: Vec<&String> = walked
            .iter()
            .filter(|(r, _)| !ignore.excluded(&in_context(r)))
            .map(|(r, _)| r)
            .collect();
        let inside = walked.iter().filter(|(r, m)| {
            !ignore.excluded(&in_context(r)) || (m.is_dir() && included.iter().any(|i| i.starts_with(&format!("{r}/"))))
        });
        for (r, m) in inside {
            let o = perms.apply(crate::fs::owner(m), m.is_dir());
            let at = if target.is_empty() {
                r.clone()
            } else {
                format!("{target}/{r}")
            };
            plan.entries.insert(at, Item::Source(source.real.join(r), m.clone(), o));
        }
        Ok(())
    }

    /// Writes the planned entries as a layer: hashed first, so that a cached
    /// layer of the same content is used instead.
    fn write_copy_layer(
        &mut self,
        line: &Line,
        plan: &CopyPlan,
        dest: &CopyDest,
        sources: usize,
    ) -> Result<(), BuildError> {
        let limits = self.store.layer_limits();
        let emit = |w: &mut LayerWriter| -> Result<(), BuildError> {
            let mut hardlinks = HashMap::new();
            for (at, item) in &plan.entries {
                match item {
                    Item::Dir(o) => w.dir(at, *o).map_err(io_err(format!("adding /{at}")))?,
                    Item::Source(src, md, o) => {
                        write_entry(w, src, md, at, *o, &mut hardlinks)?;
                    }
                }
            }
            for (archive, target) in &plan.archives {
                extract(w, archive, target, limits)?;
            }
            Ok(())
        };
        let what = match (plan.kinds.len(), plan.kinds.iter().next()) {
            (1, Some(k)) if sources == 1 => *k,
            _ => "multi",
        };
        let shown_dest = if dest.raw.starts_with('/') {
            &dest.raw
        } else {
            &dest.abs
        };
        let mut probe = LayerWriter::hash_only(self.opts.epoch);
        emit(&mut probe)?;
        let diff_id = probe.finish().map_err(io_err("hashing the layer"))?.diff_id;
        let keyword = line.instruction.keyword();
        let created_by = format!("{NOP}{keyword} {what}:{} in {shown_dest} ", diff_id.hex());
        let key = cache_key(&json!({"layer": diff_id.to_string()}));
        if let Some(hit) = self.cached(&key) {
            return self.add_layer(hit, created_by, None);
        }
        let mut w = LayerWriter::to_file(&self.store.root().join("ingest"), self.opts.epoch)
            .map_err(io_err("creating a layer file"))?;
        emit(&mut w)?;
        let written = w.finish().map_err(io_err("writing the layer"))?;
        if written.diff_id != diff_id {
            return Err(line.error("the build context changed while it was being read"));
        }
        self.store_layer(written, created_by, &key)
    }

    // ------------------------------------------------------------ RUN

    fn run(&mut self, line: &Line, c: &Command) -> Result<(), BuildError> {
        let argv = self.command(c);
        let env = self.env();
        // ARG values reach RUN as environment, below ENV.
        let from_args: Vec<(String, String)> = self
            .args
            .iter()
            .filter(|(k, _)| !env.iter().any(|e| e.split('=').next() == Some(k.as_str())))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut created_by = match c {
            Command::Exec(_) => argv.join(" "),
            Command::Shell(text) => format!("{} {text}", self.shell.join(" ")),
        };
        if !from_args.is_empty() {
            let kv: Vec<String> = from_args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            created_by = format!("|{} {} {created_by}", kv.len(), kv.join(" "));
        }
        let mut run_env = env.clone();
        run_env.extend(from_args.iter().map(|(k, v)| format!("{k}={v}")));
        let user = self.config.user.clone().unwrap_or_default();
        let workdir = self.workdir();
        let parent = chain_ids(&self.diff_ids).last().cloned();
        let key = cache_key(&json!({
            "parent": parent.as_ref().map(|p| p.to_string()),
            "run": argv,
            "env": run_env,
            "user": user,
            "workdir": workdir,
            "network": format!("{:?}", self.opts.network),
            "epoch": self.opts.epoch,
        }));
        if let Some(hit) = self.cached(&key) {
            return self.add_layer(hit, created_by, None);
        }
        let lower_dirs = barge_runtime::mount_dirs(self.store, &chain_ids(&self.diff_ids))?;
        if lower_dirs.is_empty() {
            return Err(line.error("there is nothing to run it in: FROM scratch has no layers before this RUN"));
        }
        let mut cfg = ContainerConfig::default();
        cfg.env = Some(run_env);
        cfg.user = Some(user);
        cfg.working_dir = Some(workdir);
        let copts = CreateOptions {
            entrypoint: Some(String::new()),
            cmd: argv.clone(),
            network: Some(self.opts.network),
            ..CreateOptions::default()
        };
        let pseudo_id = parent.clone().unwrap_or_else(|| Digest::of(b""));
        let c = self.runtime.create_with(
            &ImageSource {
                id: &pseudo_id,
                name: "barge-build",
                config: &cfg,
                lower_dirs: &lower_dirs,
            },
            &copts.validate()?,
        )?;
        self.progress.note(&format!(" ---> Running in {}", c.short_id()));
        let result = (|| {
            let code = self.runtime.run_foreground(
                &c,
                Foreground {
                    sig_proxy: true,
                    quiet: self.opts.quiet,
                },
            )?;
            if code != 0 {
                return Err(BuildError::RunFailed {
                    line: line.number,
                    command: argv.join(" "),
                    code,
                });
            }
            let mut w = LayerWriter::to_file(&self.store.root().join("ingest"), self.opts.epoch)
                .map_err(io_err("creating a layer file"))?;
            diff_upper(&c.dir.join("upper"), &Lowers::new(lower_dirs), &mut w)?;
            w.finish().map_err(io_err("writing the layer"))
        })();
        let removed = self.runtime.remove(&c);
        let written = result?;
        removed?;
        self.store_layer(written, created_by, &key)
    }

    // ------------------------------------------------------------ layers

    /// A layer the cache remembers under `key`, if the store still has its blob.
    fn cached(&self, key: &str) -> Option<CachedLayer> {
        if self.opts.no_cache {
            return None;
        }
        let bytes = std::fs::read(self.store.root().join("build-cache").join(key)).ok()?;
        let hit: CachedLayer = serde_json::from_slice(&bytes).ok()?;
        self.store.has_blob(&hit.digest).then_some(hit)
    }

    fn store_layer(&mut self, written: Written, created_by: String, key: &str) -> Result<(), BuildError> {
        let Some((file, digest, size)) = written.blob else {
            return Err(BuildError::Unsupported("a layer was hashed but not written".into()));
        };
        let mut f = std::fs::File::open(file.path()).map_err(io_err("reopening the layer file"))?;
        self.store.put_blob_stream(&digest, size, &mut f)?;
        let layer = CachedLayer {
            diff_id: written.diff_id,
            digest,
            size,
        };
        self.add_layer(layer, created_by, Some(key))
    }

    fn add_layer(&mut self, l: CachedLayer, created_by: String, remember: Option<&str>) -> Result<(), BuildError> {
        if remember.is_none() {
            self.progress.note(" ---> Using cache");
        }
        let desc = Descriptor::new(media::OCI_LAYER_GZIP, l.digest.clone(), l.size);
        let mut diff_ids = self.diff_ids.clone();
        diff_ids.push(l.diff_id.clone());
        let chains = chain_ids(&diff_ids);
        let parent = chains.len().checked_sub(2).map(|i| &chains[i]);
        let chain = chains.last().cloned().unwrap_or_else(|| l.diff_id.clone());
        self.store.unpack_layer(&desc, &l.diff_id, &chain, parent)?;
        if let Some(key) = remember {
            let dir = self.store.root().join("build-cache");
            std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
            let tmp = dir.join(format!(".{key}.tmp"));
            let bytes = serde_json::to_vec(&l).map_err(|e| BuildError::Unsupported(e.to_string()))?;
            std::fs::write(&tmp, bytes).map_err(io_err("writing the build cache"))?;
            std::fs::rename(&tmp, dir.join(key)).map_err(io_err("writing the build cache"))?;
        }
        self.layers.push(desc);
        self.diff_ids = diff_ids;
        self.history
            .push(json!({"created": self.created, "created_by": created_by}));
        Ok(())
    }

    // ------------------------------------------------------------ the image

    fn finish(mut self) -> Result<BuildOutcome, BuildError> {
        let opts = self.opts;
        if !opts.labels.is_empty() {
            self.add_labels(opts.labels.iter().map(|(k, v)| (k, v)));
        }
        let mut top = Map::new();
        top.insert("architecture".into(), json!(self.platform.architecture));
        for (k, v) in &self.extra {
            top.insert(k.clone(), v.clone());
        }
        top.insert("config".into(), Value::Object(self.config.to_json()));
        top.insert("created".into(), json!(self.created));
        top.insert("history".into(), Value::Array(self.history.clone()));
        top.insert("os".into(), json!(self.platform.os));
        top.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": self.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()}),
        );
        if let Some(v) = &self.platform.variant {
            top.insert("variant".into(), json!(v));
        }
        let config = serde_json::to_vec(&Value::Object(top)).map_err(|e| BuildError::Unsupported(e.to_string()))?;
        let config_digest = Digest::of(&config);
        self.store.put_blob(&config_digest, &config)?;
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|l| json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size}))
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
            "layers": layers,
        }))
        .map_err(|e| BuildError::Unsupported(e.to_string()))?;
        let manifest_digest = Digest::of(&manifest);
        self.store.put_blob(&manifest_digest, &manifest)?;
        let size = chain_ids(&self.diff_ids)
            .iter()
            .map(|c| self.store.snapshot_info(c).map(|i| i.size))
            .sum::<Result<u64, _>>()?;
        let mut desc = Descriptor::new(media::OCI_MANIFEST, manifest_digest.clone(), manifest.len() as u64);
        desc.platform = Some(self.platform.clone());
        let meta = ImageMeta {
            image_id: config_digest.clone(),
            repo_digest: None,
            created: Some(self.created.clone()),
            size,
        };
        if self.opts.tags.is_empty() {
            self.store.add_dangling(&desc, &meta)?;
        }
        for t in &self.opts.tags {
            self.store.tag(t, &desc, &meta)?;
        }
        Ok(BuildOutcome {
            image_id: config_digest,
            manifest_digest,
        })
    }
}

enum Item {
    Dir(Owner),
    Source(PathBuf, Metadata, Owner),
}

/// A COPY source as copied: its path in the context, where it really is
/// (a top-level symlink followed) and what it is.
struct Resolved {
    rel: String,
    real: PathBuf,
    md: Metadata,
}

/// A COPY destination: as written, made absolute against WORKDIR, and
/// whether it names a directory to copy into.
struct CopyDest {
    raw: String,
    abs: String,
    is_dir: bool,
}

/// What a COPY/ADD layer holds: entries by their path in the image,
/// archives ADD extracts (into a directory) and the kinds of source
/// (`file`, `dir`) that history names.
#[derive(Default)]
struct CopyPlan {
    entries: BTreeMap<String, Item>,
    archives: Vec<(PathBuf, String)>,
    kinds: BTreeSet<&'static str>,
}

/// What `--chown` and `--chmod` make of copied entries' owners.
#[derive(Clone, Copy)]
struct Perms {
    chown: Option<(u64, u64)>,
    chmod: Option<u32>,
}

impl Perms {
    /// The owner and mode an entry gets: root's unless `--chown`, the
    /// source's mode unless `--chmod` (a directory without one gets 0755).
    fn apply(self, o: Owner, is_dir: bool) -> Owner {
        let mut o = match self.chown {
            Some((uid, gid)) => Owner { uid, gid, ..o },
            None => Owner { uid: 0, gid: 0, ..o },
        };
        if let Some(m) = self.chmod {
            o.mode = m;
        } else if is_dir && o.mode == 0 {
            o.mode = 0o755;
        }
        o
    }
}

/// `--chown=USER[:GROUP]` as numeric IDs, names resolved in the image's
/// passwd and group files.
fn chown_ids(
    line: &Line,
    chown: Option<&Args>,
    vars: &BTreeMap<String, String>,
    lowers: &Lowers,
) -> Result<Option<(u64, u64)>, BuildError> {
    let Some(spec) = chown else {
        return Ok(None);
    };
    let spec = spec.words(vars).map_err(|e| line.error(e))?.join("");
    let passwd = lowers.read_file("etc/passwd").unwrap_or_default();
    let group = lowers.read_file("etc/group").unwrap_or_default();
    let u = barge_runtime::user::resolve(&spec, &passwd, &group).map_err(|e| line.error(e))?;
    // Docker: a user without a group gets the same number as its GID.
    let gid = if spec.contains(':') { u.gid } else { u.uid };
    Ok(Some((u.uid as u64, gid as u64)))
}

/// The directory copied into: left as the image has it, else made.
fn target_dir(lowers: &Lowers, perms: Perms, target: &str) -> Item {
    match lowers.find(target) {
        Some((_, m)) if m.is_dir() => Item::Dir(crate::fs::owner(&m)),
        _ => Item::Dir(perms.apply(dir_owner(lowers, target), true)),
    }
}

/// Where a copied file goes: into the destination when that is (or the
/// image has it as) a directory, else the destination itself.
fn file_target(rel: &str, dest: &CopyDest, lowers: &Lowers) -> String {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let into = lowers.resolve(&dest.abs, true);
    let into_dir = dest.is_dir || lowers.find(&into).is_some_and(|(_, m)| m.is_dir());
    if !into_dir {
        return lowers.resolve(&dest.abs, false);
    }
    if into.is_empty() {
        name.to_string()
    } else {
        format!("{into}/{name}")
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedLayer {
    diff_id: Digest,
    digest: Digest,
    size: u64,
}

fn cache_key(v: &Value) -> String {
    Digest::of(v.to_string().as_bytes()).hex().to_string()
}

/// A directory's owner as the image has it, else root's 0755.
fn dir_owner(lowers: &Lowers, rel: &str) -> Owner {
    lowers
        .find(rel)
        .filter(|(_, m)| m.is_dir())
        .map(|(_, m)| crate::fs::owner(&m))
        .unwrap_or(Owner {
            uid: 0,
            gid: 0,
            mode: 0o755,
        })
}

/// `K=V K2=V2`, as docker's history shows ENV and LABEL.
fn shown_pairs(set: &[(String, String)]) -> String {
    let shown: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
    shown.join(" ")
}

/// `["a" "b"]`, as docker's history shows command lists.
fn go_list(argv: &[String]) -> String {
    let items: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!("[{}]", items.join(" "))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Archive {
    Plain,
    Gzip,
    Zstd,
}

/// Whether ADD should extract `path`: a tar, possibly gzip or zstd compressed.
fn archive_kind(path: &Path) -> Result<Option<Archive>, BuildError> {
    let mut head = [0u8; 6];
    let mut f = std::fs::File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let n = f
        .read(&mut head)
        .map_err(io_err(format!("reading {}", path.display())))?;
    let kind = match &head[..n] {
        [0x1f, 0x8b, ..] => Archive::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Archive::Zstd,
        [b'B', b'Z', b'h', ..] | [0xfd, b'7', b'z', b'X', b'Z', 0] => {
            let name = path.to_string_lossy().to_ascii_lowercase();
            if [".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz"]
                .iter()
                .any(|e| name.ends_with(e))
            {
                return Err(BuildError::Unsupported(format!(
                    "ADD {}: bzip2 and xz archives are not supported; use a plain, gzip or zstd tar",
                    path.display()
                )));
            }
            // Compressed, but not a tar by its name: copied as it is.
            return Ok(None);
        }
        _ => Archive::Plain,
    };
    // A tar has "ustar" at offset 257 of its (decompressed) first block.
    let mut block = vec![0u8; 512];
    let mut r = open_archive(path, kind)?;
    let mut got = 0;
    while got < 512 {
        match r.read(&mut block[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(_) => return Ok(None),
        }
    }
    Ok((got == 512 && &block[257..262] == b"ustar").then_some(kind))
}

fn open_archive(path: &Path, kind: Archive) -> Result<Box<dyn Read + Send>, BuildError> {
    open_limited(
        path,
        kind,
        LayerLimits {
            max_size: 0,
            max_ratio: 0,
        },
    )
}

/// The archive's tar stream, held to the store's layer limits (against bombs).
fn open_limited(path: &Path, kind: Archive, limits: LayerLimits) -> Result<Box<dyn Read + Send>, BuildError> {
    use barge_oci::media::Compression;
    let f = std::fs::File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let compression = match kind {
        Archive::Plain => Compression::None,
        Archive::Gzip => Compression::Gzip,
        Archive::Zstd => Compression::Zstd,
    };
    barge_store::limits::decompress_limited(std::io::BufReader::new(f), compression, limits)
        .map_err(io_err(format!("decompressing {}", path.display())))
}

/// ADD of a local archive: its entries below `target`, none escaping it.
fn extract(w: &mut LayerWriter, archive: &Path, target: &str, limits: LayerLimits) -> Result<(), BuildError> {
    let kind = archive_kind(archive)?.unwrap_or(Archive::Plain);
    let fail = |e: std::io::Error| match barge_store::limits::exceeded(&e) {
        Some(why) => BuildError::Unsupported(format!("ADD {}: {why}", archive.display())),
        None => BuildError::Io {
            context: format!("extracting {}", archive.display()),
            source: e,
        },
    };
    let under = |p: &str| -> Result<String, BuildError> {
        if p.split('/').any(|c| c == "..") {
            return Err(BuildError::Unsupported(format!(
                "ADD {}: the entry {p:?} points outside the destination",
                archive.display()
            )));
        }
        let c = clean(p);
        Ok(match (target.is_empty(), c.is_empty()) {
            (_, true) => target.to_string(),
            (true, false) => c,
            (false, false) => format!("{target}/{c}"),
        })
    };
    let mut ar = tar::Archive::new(open_limited(archive, kind, limits)?);
    for entry in ar.entries().map_err(fail)? {
        let mut e = entry.map_err(fail)?;
        let path = e.path().map_err(fail)?.to_string_lossy().into_owned();
        let at = under(&path)?;
        if at.is_empty() {
            continue;
        }
        let h = e.header().clone();
        let o = Owner {
            uid: h.uid().map_err(fail)?,
            gid: h.gid().map_err(fail)?,
            mode: h.mode().map_err(fail)? & 0o7777,
        };
        let fail_at = |err: std::io::Error| BuildError::Io {
            context: format!("adding /{at} from {}", archive.display()),
            source: err,
        };
        match h.entry_type() {
            tar::EntryType::Directory => w.dir(&at, o).map_err(fail_at)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = e.size();
                w.file(&at, o, size, &mut e).map_err(fail_at)?
            }
            tar::EntryType::Symlink => {
                let t = e.link_name().map_err(fail)?.unwrap_or_default();
                w.symlink(&at, &t.to_string_lossy(), o).map_err(fail_at)?
            }
            tar::EntryType::Link => {
                let t = e.link_name().map_err(fail)?.unwrap_or_default();
                let t = under(&t.to_string_lossy())?;
                w.hardlink(&at, &t, o).map_err(fail_at)?
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let (ma, mi) = (
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                let k = if h.entry_type() == tar::EntryType::Char {
                    crate::layer::Special::Char(ma, mi)
                } else {
                    crate::layer::Special::Block(ma, mi)
                };
                w.special(&at, k, o).map_err(fail_at)?
            }
            tar::EntryType::Fifo => w.special(&at, crate::layer::Special::Fifo, o).map_err(fail_at)?,
            // PAX and GNU metadata records are consumed by the reader; others are skipped.
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_lists_look_like_dockers() {
        assert_eq!(go_list(&["/demo".into()]), r#"["/demo"]"#);
        assert_eq!(
            go_list(&["sh".into(), "-c".into(), "echo \"hi\"".into()]),
            r#"["sh" "-c" "echo \"hi\""]"#
        );
    }

    #[test]
    fn archives_are_recognised_by_content() {
        let d = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "x", &b"hi"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        std::fs::write(d.path().join("a.tar"), &tar).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        std::fs::write(d.path().join("a.tgz"), gz.finish().unwrap()).unwrap();
        std::fs::write(d.path().join("plain.txt"), "not an archive at all").unwrap();
        std::fs::write(d.path().join("x.tar.bz2"), "BZh91AY&SY").unwrap();
        std::fs::write(d.path().join("notes.bz2"), "BZh91AY&SY").unwrap();
        assert_eq!(archive_kind(&d.path().join("a.tar")).unwrap(), Some(Archive::Plain));
        assert_eq!(archive_kind(&d.path().join("a.tgz")).unwrap(), Some(Archive::Gzip));
        assert_eq!(archive_kind(&d.path().join("plain.txt")).unwrap(), None);
        assert!(archive_kind(&d.path().join("x.tar.bz2")).is_err());
        assert_eq!(archive_kind(&d.path().join("notes.bz2")).unwrap(), None);
    }
}
