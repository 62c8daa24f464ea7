//! The build itself: the planned stages, each instruction by instruction.

use crate::dockerfile::{
    self, pairs, Args, BindMount, CacheMount, Command, CopyArgs, Heredoc, Instruction, Line, RunFlags, RunMount,
    RunNetwork, SecretMount,
};
use crate::fs::{clean, diff_upper, io_err, walk, write_entry};
use crate::ignore::{glob_matches, is_glob, Ignore};
use crate::layer::{LayerWriter, Owner, Written};
use crate::stages::{self, CopySource, Plan, StageBase, StagePlan};
use crate::{BaseImages, BuildError, BuildOptions, BuildOutcome, BuildProgress};
use barge_oci::image::{chain_ids, MAX_CONFIG_BYTES};
use barge_oci::{media, ContainerConfig, Descriptor, Digest, Platform};
use barge_runtime::monitor::Foreground;
use barge_runtime::{CreateOptions, ImageSource, Network, Runtime};
use barge_store::fsutil::{self, LockGuard, LockKind};
use barge_store::lowers::Lowers;
use barge_store::{ImageMeta, LayerLimits, Store};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::Metadata;
use std::io::Read;
use std::path::{Path, PathBuf};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const NOP: &str = "/bin/sh -c #(nop) ";
use crate::prune::{CACHE_MOUNTS, LAYER_CACHE};
/// Where a RUN's `#!` here-document is mounted (BuildKit's `/dev/pipes`
/// is under the runtime's `/dev`, where no bind mount may land); the
/// mount point is taken out of the upper dir after the run.
const SCRIPTS: &str = "/.barge-heredocs";

mod commit;
pub use commit::{commit_image, container_layer, tar_layer, NewImage};

/// Builds the image the Dockerfile describes; tags it (or keeps it dangling).
pub fn build(
    store: &Store,
    runtime: &Runtime,
    bases: &dyn BaseImages,
    opts: &BuildOptions,
    progress: &dyn BuildProgress,
) -> Result<BuildOutcome, BuildError> {
    let lines = dockerfile::parse(&opts.dockerfile)?;
    let build_args: BTreeMap<String, String> = opts.build_args.iter().cloned().collect();
    // Docker's automatic platform ARGs; a stage sees them after `ARG NAME`.
    let mut automatic: BTreeMap<String, String> = BTreeMap::new();
    let target = opts.platform.clone().unwrap_or_else(Platform::host);
    for (prefix, p) in [("TARGET", &target), ("BUILD", &Platform::host())] {
        automatic.insert(format!("{prefix}PLATFORM"), p.to_string());
        automatic.insert(format!("{prefix}OS"), p.os.clone());
        automatic.insert(format!("{prefix}ARCH"), p.architecture.clone());
        automatic.insert(format!("{prefix}VARIANT"), p.variant.clone().unwrap_or_default());
    }
    let plan = stages::plan(&lines, &build_args, automatic, opts.target.as_deref())?;
    // No prune may remove layers this build stands on until it is tagged.
    let _lock = store.lock_shared()?;
    let mut used_args = plan.declared.clone();
    let total = plan.global_lines.len()
        + plan
            .order
            .iter()
            .map(|&i| plan.stages[i].lines.len() + 1)
            .sum::<usize>();
    let mut n = 0;
    let mut step = |line: &Line| {
        n += 1;
        progress.step(&format!("Step {n}/{total} : {}", line.shown));
    };
    for line in &plan.global_lines {
        step(line);
    }
    let ignore = match std::fs::read_to_string(opts.context.join(".dockerignore")) {
        Ok(t) => Ignore::parse(&t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(io_err("reading .dockerignore")(e)),
    };
    let cache_from = opts
        .cache_from
        .iter()
        .map(|name| {
            let id = bases
                .resolve(name, opts.platform.as_ref())
                .map_err(|message| BuildError::Base {
                    name: name.clone(),
                    message,
                })?;
            image_state(store, &id, name)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ctx = Ctx {
        store,
        runtime,
        opts,
        progress,
        ignore: &ignore,
        bases,
        plan: &plan,
        build_args: &build_args,
        cache_from: &cache_from,
    };
    let mut built: Vec<Option<Stage>> = plan.stages.iter().map(|_| None).collect();
    for &i in &plan.order {
        let sp = &plan.stages[i];
        step(sp.from);
        let mut stage = match &sp.base {
            StageBase::Scratch => Stage::scratch(ctx, sp),
            StageBase::Image(name) => {
                let mut stage = Stage::image(ctx, sp, name)?;
                stage.run_triggers(sp.from, &built, &mut used_args)?;
                stage
            }
            StageBase::Stage(b) => match &built[*b] {
                Some(base) => base.fork(sp),
                None => return Err(sp.from.error("its base stage was not built")),
            },
        };
        for (k, line) in sp.lines.iter().enumerate() {
            step(line);
            stage.step = stage.step_name(k + 2, line);
            stage.apply(line, &built, &mut used_args)?;
        }
        built[i] = Some(stage);
    }
    let Some(stage) = built.get_mut(plan.target()).and_then(Option::take) else {
        return Err(BuildError::Unsupported("the target stage was not built".into()));
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

/// What every stage of a build shares.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    store: &'a Store,
    runtime: &'a Runtime,
    opts: &'a BuildOptions,
    progress: &'a dyn BuildProgress,
    ignore: &'a Ignore,
    bases: &'a dyn BaseImages,
    plan: &'a Plan<'a>,
    build_args: &'a BTreeMap<String, String>,
    /// The `--cache-from` images, whose history says which step made each layer.
    cache_from: &'a [ImageState],
}

/// `ARG name[=default]…`: the values it gives (a `--build-arg` wins).
pub(crate) fn declare_args(
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

struct Stage<'a> {
    ctx: Ctx<'a>,
    store: &'a Store,
    runtime: &'a Runtime,
    opts: &'a BuildOptions,
    progress: &'a dyn BuildProgress,
    /// Which stage of the plan this is.
    index: usize,
    /// `[build 2/5] RUN make`: the instruction being applied, as docker
    /// names it in errors.
    step: String,
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
    ignore: &'a Ignore,
}

/// A stored image's layers, config and history, as a stage starts from it.
struct ImageState {
    platform: Platform,
    diff_ids: Vec<Digest>,
    layers: Vec<Descriptor>,
    config: ContainerConfig,
    history: Vec<Value>,
    /// Its image ID and `created`: a `--cache-from` image's time is kept
    /// by a build that makes the same image.
    id: Digest,
    created: Option<String>,
}

impl<'a> Stage<'a> {
    /// A stage `FROM scratch`.
    fn scratch(ctx: Ctx<'a>, sp: &StagePlan) -> Stage<'a> {
        let opts = ctx.opts;
        let mut stage = Stage {
            ctx,
            store: ctx.store,
            runtime: ctx.runtime,
            opts,
            progress: ctx.progress,
            index: sp.index,
            step: String::new(),
            extra: Map::new(),
            config: ContainerConfig::default(),
            history: Vec::new(),
            layers: Vec::new(),
            diff_ids: Vec::new(),
            platform: sp
                .platform
                .clone()
                .or_else(|| opts.platform.clone())
                .unwrap_or_else(Platform::host),
            args: BTreeMap::new(),
            global: ctx.plan.global.clone(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            cmd_inherited: false,
            created: match opts.stamp {
                Some(t) => barge_oci::time::format_rfc3339(t as i64),
                None => BUILD_TIME.to_string(),
            },
            ignore: ctx.ignore,
        };
        stage.set("Env", |c| c.env = Some(vec![DEFAULT_PATH.to_string()]));
        stage
    }

    /// A stage `FROM image`: found in the store, else pulled.
    fn image(ctx: Ctx<'a>, sp: &StagePlan, name: &str) -> Result<Stage<'a>, BuildError> {
        let mut stage = Stage::scratch(ctx, sp);
        let platform = sp.platform.clone().or_else(|| ctx.opts.platform.clone());
        let id = resolve_image(ctx, name, platform.as_ref())?;
        let base = image_state(ctx.store, &id, name)?;
        stage.platform = base.platform;
        stage.diff_ids = base.diff_ids;
        stage.layers = base.layers;
        stage.config = base.config;
        stage.history = base.history;
        if let Some(s) = &stage.config.shell {
            stage.shell = s.clone();
        }
        stage.cmd_inherited = stage.config.cmd.is_some();
        // A base without PATH gets docker's default, as BuildKit gives it.
        let mut env = stage.env();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(DEFAULT_PATH.to_string());
            stage.set("Env", |c| c.env = Some(env));
        }
        ctx.progress.note(&format!(" ---> {}", &id.hex()[..12]));
        Ok(stage)
    }

    /// A stage `FROM` this one: its filesystem, config and history; ARGs
    /// are the new stage's own.
    fn fork(&self, sp: &StagePlan) -> Stage<'a> {
        Stage {
            ctx: self.ctx,
            store: self.store,
            runtime: self.runtime,
            opts: self.opts,
            progress: self.progress,
            index: sp.index,
            step: String::new(),
            extra: self.extra.clone(),
            config: self.config.clone(),
            history: self.history.clone(),
            layers: self.layers.clone(),
            diff_ids: self.diff_ids.clone(),
            platform: sp.platform.clone().unwrap_or_else(|| self.platform.clone()),
            args: BTreeMap::new(),
            global: self.global.clone(),
            shell: self.shell.clone(),
            cmd_inherited: self.config.cmd.is_some(),
            created: self.created.clone(),
            ignore: self.ignore,
        }
    }

    /// `[build 2/5] RUN make`: the `k`th instruction of this stage, FROM
    /// being the first; a single-stage build's show no stage name, as docker's.
    fn step_name(&self, k: usize, line: &Line) -> String {
        let plan = self.ctx.plan;
        let sp = &plan.stages[self.index];
        let count = sp.lines.len() + 1;
        if plan.stages.len() == 1 {
            format!("[{k}/{count}] {}", line.shown)
        } else {
            format!("[{} {k}/{count}] {}", sp.label(), line.shown)
        }
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
        built: &[Option<Stage>],
        used_args: &mut BTreeSet<String>,
    ) -> Result<(), BuildError> {
        let build_args = self.ctx.build_args;
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
            Instruction::Copy(c) => self.copy(line, c, false, &vars, built)?,
            Instruction::Add(c) => self.copy(line, c, true, &vars, built)?,
            Instruction::Run(c, flags) => self.run(line, c, flags, built)?,
            Instruction::From { .. } => return Err(line.error("FROM inside a stage (the plan splits stages there)")),
            Instruction::Healthcheck(h) => {
                self.set("Healthcheck", |c| c.healthcheck = Some(h.clone()));
                let test = h.test.as_deref().unwrap_or_default();
                self.nop(format!("HEALTHCHECK {}", go_list(test)));
            }
            Instruction::Onbuild(trigger) => {
                self.set("OnBuild", |c| {
                    c.on_build.get_or_insert_with(Vec::new).push(trigger.clone())
                });
                self.nop(format!("ONBUILD {trigger}"));
            }
        }
        Ok(())
    }

    /// The base image's ONBUILD triggers, run as the stage's first
    /// instructions (each with the FROM's line), then gone from the
    /// config, as docker does.
    fn run_triggers(
        &mut self,
        from: &Line,
        built: &[Option<Stage>],
        used_args: &mut BTreeSet<String>,
    ) -> Result<(), BuildError> {
        let triggers = self.config.on_build.clone().unwrap_or_default();
        if triggers.is_empty() {
            return Ok(());
        }
        self.set("OnBuild", |c| c.on_build = None);
        let plural = if triggers.len() == 1 { "" } else { "s" };
        self.progress
            .note(&format!("# Executing {} build trigger{plural}", triggers.len()));
        for t in &triggers {
            let lines = dockerfile::parse(t).map_err(|e| from.error(format!("the base image's ONBUILD {t}: {e}")))?;
            for mut line in lines {
                if matches!(line.instruction, Instruction::From { .. } | Instruction::Onbuild(_)) {
                    return Err(from.error(format!("the base image's ONBUILD {t}: not allowed as a trigger")));
                }
                line.number = from.number;
                self.step = format!("ONBUILD {}", line.shown);
                self.apply(&line, built, used_args)?;
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
        // A variable set again keeps its place, as docker's does.
        for (k, v) in set {
            let kv = format!("{k}={v}");
            match env.iter_mut().find(|e| e.split('=').next() == Some(k.as_str())) {
                Some(e) => *e = kv,
                None => env.push(kv),
            }
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
        built: &[Option<Stage>],
    ) -> Result<(), BuildError> {
        let mut args = c.paths.items(vars).map_err(|e| line.error(e))?;
        if args.len() < 2 {
            return Err(line.error("needs at least one source and a destination"));
        }
        let dest_raw = args.pop().unwrap_or_default();
        let lowers = Lowers::new(self.lower_dirs());
        let perms = Perms {
            chown: chown_ids(line, c.chown.as_ref(), vars, &lowers)?,
            chmod: c.chmod,
            keep_owner: c.from.is_some(),
        };
        if let Some(from) = &c.from {
            if !line.heredocs.is_empty() {
                return Err(line.error("--from and here-documents cannot be used together"));
            }
            let source = self.copy_source(line, from, built)?;
            let resolved = rootfs_sources(line, &args, &source)?;
            let dest = self.destination(line, dest_raw, resolved.len())?;
            let plan = self.plan_rootfs_copy(line, resolved, &source, &dest, perms, &lowers)?;
            return self.write_copy_layer(line, &plan, &dest, args.len());
        }
        let (inline, args) = self.inline_sources(line, args, vars)?;
        let (urls, args): (Vec<String>, Vec<String>) = args.into_iter().partition(|a| add && a.contains("://"));
        if c.checksum.is_some() && (urls.len() != 1 || !args.is_empty() || !inline.is_empty()) {
            return Err(line.error("--checksum needs one http(s) URL as the only source"));
        }
        // Held until the layer is written: the downloads' files.
        let downloads = urls
            .iter()
            .map(|u| self.download(line, u, c.checksum.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let sources = self.context_sources(line, &args, add)?;
        let resolved = self.follow_sources(line, &sources)?;
        let count = sources.len() + inline.len() + urls.len();
        let dest = self.destination(line, dest_raw, count)?;
        let mut plan = self.plan_copy(line, resolved, &dest, add, perms, &lowers)?;
        for (name, file) in &downloads {
            let at = file_target(name, &dest, &lowers);
            if at.is_empty() {
                return Err(line.error("cannot copy a file over /"));
            }
            plan.kinds.insert("file");
            let md = file.as_file().metadata().map_err(io_err("reading a download"))?;
            // Docker's mode for a downloaded file.
            let o = perms.apply(
                Owner {
                    uid: 0,
                    gid: 0,
                    mode: 0o600,
                },
                false,
            );
            plan.entries.insert(at, Item::Source(file.path().to_path_buf(), md, o));
        }
        for (name, text) in inline {
            let at = file_target(&name, &dest, &lowers);
            if at.is_empty() {
                return Err(line.error("cannot copy a file over /"));
            }
            plan.kinds.insert("file");
            let o = perms.apply(
                Owner {
                    uid: 0,
                    gid: 0,
                    mode: 0o644,
                },
                false,
            );
            plan.entries.insert(at, Item::Inline(text.into_bytes(), o));
        }
        add_parents(&mut plan, &lowers, perms);
        self.write_copy_layer(line, &plan, &dest, count)
    }

    /// The `<<NAME` sources of COPY and ADD, as (file name, text): the
    /// here-documents of the line, variables substituted unless the name
    /// was quoted. Returns the other sources too.
    fn inline_sources(
        &self,
        line: &Line,
        args: Vec<String>,
        vars: &BTreeMap<String, String>,
    ) -> Result<(Vec<InlineFile>, Vec<String>), BuildError> {
        let mut inline = Vec::new();
        let mut rest = Vec::new();
        for a in args {
            let doc = Heredoc::marker(&a).and_then(|(name, _, _)| line.heredocs.iter().find(|h| h.name == name));
            match doc {
                Some(h) => {
                    let text = match h.expand {
                        true => dockerfile::expand_text(&h.text(), vars).map_err(|e| line.error(e))?,
                        false => h.text(),
                    };
                    inline.push((h.name.clone(), text));
                }
                None => rest.push(a),
            }
        }
        Ok((inline, rest))
    }

    /// The filesystem `COPY --from=raw` reads: an earlier stage's layers,
    /// or an image's (found in the store or pulled, as FROM's).
    fn copy_source(&self, line: &Line, raw: &str, built: &[Option<Stage>]) -> Result<RootfsSource, BuildError> {
        match self.ctx.plan.copy_source(line, self.index, raw)? {
            CopySource::Stage(k) => match built.get(k).and_then(Option::as_ref) {
                Some(stage) => Ok(RootfsSource {
                    what: format!("stage {}", self.ctx.plan.stages[k].label()),
                    lowers: Lowers::new(stage.lower_dirs()),
                }),
                None => Err(line.error(format!("--from={raw}: that stage was not built"))),
            },
            CopySource::Image(name) => {
                let id = resolve_image(self.ctx, &name, Some(&self.platform))?;
                let state = image_state(self.store, &id, &name)?;
                let mut dirs: Vec<PathBuf> = chain_ids(&state.diff_ids)
                    .iter()
                    .map(|c| self.store.snapshot_fs(c))
                    .collect();
                dirs.reverse();
                Ok(RootfsSource {
                    what: format!("image {name}"),
                    lowers: Lowers::new(dirs),
                })
            }
        }
    }

    /// `COPY --from` entries: each source with what is below it, owners
    /// kept unless `--chown`; parents as the image has them.
    fn plan_rootfs_copy(
        &self,
        line: &Line,
        items: Vec<RootfsItem>,
        source: &RootfsSource,
        dest: &CopyDest,
        perms: Perms,
        lowers: &Lowers,
    ) -> Result<CopyPlan, BuildError> {
        let mut plan = CopyPlan::default();
        for item in items {
            let file = match item.entry {
                Some((real, md)) if !md.is_dir() => Some((real, md)),
                _ => None,
            };
            let Some((real, md)) = file else {
                plan.kinds.insert("dir");
                let target = lowers.resolve(&dest.abs, true);
                plan.entries
                    .entry(target.clone())
                    .or_insert_with(|| target_dir(lowers, perms, &target));
                for (r, real, md) in source.lowers.walk(&item.at) {
                    let at = if target.is_empty() { r } else { format!("{target}/{r}") };
                    let o = perms.apply(crate::fs::owner(&md), md.is_dir());
                    plan.entries.insert(at, Item::Source(real, md, o));
                }
                continue;
            };
            plan.kinds.insert("file");
            let at = file_target(&item.name, dest, lowers);
            if at.is_empty() {
                return Err(line.error("cannot copy a file over /"));
            }
            let o = perms.apply(crate::fs::owner(&md), false);
            plan.entries.insert(at, Item::Source(real, md, o));
        }
        add_parents(&mut plan, lowers, perms);
        Ok(plan)
    }

    /// `ADD URL`: the body streamed into a file of the store's `ingest/`,
    /// hashed on the way and checked against `--checksum` before anything
    /// uses it; the name is the URL path's last segment, as docker's.
    fn download(
        &self,
        line: &Line,
        url: &str,
        checksum: Option<&Digest>,
    ) -> Result<(String, tempfile::NamedTempFile), BuildError> {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        if !(url.starts_with("https://") || url.starts_with("http://")) || path.ends_with(".git") {
            return Err(line.error(format!(
                "{url}: ADD takes http(s) URLs of files; a git repository or another scheme is not supported, \
                 clone or download it into the context and COPY it"
            )));
        }
        let name = path
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty() && *n != "..")
            .unwrap_or("__unnamed__");
        let body = self.ctx.bases.fetch_url(url).map_err(|e| line.error(e))?;
        let mut reader = barge_oci::digest::HashingReader::new(body);
        let mut file = tempfile::NamedTempFile::new_in(self.store.root().join("ingest"))
            .map_err(io_err("making a file for a download"))?;
        std::io::copy(&mut reader, &mut file).map_err(|e| line.error(format!("{url}: downloading: {e}")))?;
        let (got, _) = reader.finish();
        if let Some(want) = checksum {
            if *want != got {
                return Err(line.error(format!("{url}: digest mismatch: expected {want}, got {got}")));
            }
        }
        Ok((name.to_string(), file))
    }

    /// The sources as context-relative paths: globs expanded, each checked
    /// to stay inside the context and not be excluded by .dockerignore.
    fn context_sources(&self, line: &Line, args: &[String], add: bool) -> Result<Vec<String>, BuildError> {
        let mut sources: Vec<String> = Vec::new();
        for s in args {
            if add && s.starts_with("git@") {
                return Err(line.error(format!(
                    "{s}: ADD of a git repository is not supported; clone it into the context and COPY it"
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
        add_parents(&mut plan, lowers, perms);
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
        let emit = |w: &mut LayerWriter| emit_plan(w, plan, limits);
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

    fn run(&mut self, line: &Line, c: &Command, flags: &RunFlags, built: &[Option<Stage>]) -> Result<(), BuildError> {
        let mounts = &flags.mounts;
        let network = match flags.network {
            None | Some(RunNetwork::Default) => self.opts.network,
            Some(RunNetwork::None) => Network::None,
            // A Dockerfile cannot give itself the host's network: the build must.
            Some(RunNetwork::Host) if self.opts.network == Network::Host => Network::Host,
            Some(RunNetwork::Host) => {
                return Err(line.error("--network=host needs the build's consent: run barge build --network host"))
            }
        };
        let (argv, script) = self.run_command(line, c);
        let env = self.env();
        // ARG values reach RUN as environment, below ENV.
        let from_args: Vec<(String, String)> = self
            .args
            .iter()
            .filter(|(k, _)| !env.iter().any(|e| e.split('=').next() == Some(k.as_str())))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut created_by = match c {
            Command::Shell(text) if line.heredocs.is_empty() => format!("{} {text}", self.shell.join(" ")),
            _ => argv.join(" "),
        };
        if !from_args.is_empty() {
            let kv: Vec<String> = from_args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            created_by = format!("|{} {} {created_by}", kv.len(), kv.join(" "));
        }
        let mut run_env = env.clone();
        run_env.extend(from_args.iter().map(|(k, v)| format!("{k}={v}")));
        let user = self.config.user.clone().unwrap_or_default();
        let workdir = self.workdir();
        // The mounts: where each goes, absolute.
        let targets: Vec<String> = mounts
            .iter()
            .map(|m| {
                let t = match m {
                    RunMount::Bind(b) => &b.target,
                    RunMount::Cache(c) => &c.target,
                    RunMount::Secret(s) => &s.target,
                };
                match t.starts_with('/') {
                    true => format!("/{}", clean(t)),
                    false => format!("/{}", clean(&format!("{workdir}/{t}"))),
                }
            })
            .collect();
        if let Some(t) = targets.iter().find(|t| t.as_str() == "/") {
            return Err(line.error(format!("--mount target={t}: nothing can be mounted over /")));
        }
        // Bind mounts are planned (and hashed) first: their content is part of the key.
        let binds: Vec<Option<BindPlan>> = mounts
            .iter()
            .map(|m| match m {
                RunMount::Bind(b) => self.bind_plan(line, b, built).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        let parent = chain_ids(&self.diff_ids).last().cloned();
        let key = cache_key(&json!({
            // What is mounted where, not what the caches and secrets hold (as BuildKit).
            "mounts": mounts.iter().zip(&targets).zip(&binds).map(|((m, t), bind)| match m {
                RunMount::Bind(b) => json!(["bind", t, b.rw, bind.as_ref().map(|p| p.digest.to_string())]),
                RunMount::Cache(c) => json!(["cache", c.id, t, c.readonly]),
                RunMount::Secret(s) => json!(["secret", s.id, t, s.mode, s.uid, s.gid]),
            }).collect::<Vec<_>>(),
            "parent": parent.as_ref().map(|p| p.to_string()),
            "run": argv,
            "script": script.map(|h| h.text()),
            "env": run_env,
            "user": user,
            "workdir": workdir,
            "network": format!("{network:?}"),
            "epoch": self.opts.epoch,
        }));
        if let Some(hit) = self.cached(&key).or_else(|| self.cache_from_hit(&created_by)) {
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
        // A `#!` heredoc runs as a file, mounted read-only.
        let scripts = match script {
            Some(h) => {
                let dir = tempfile::tempdir_in(self.store.root().join("ingest"))
                    .map_err(io_err("creating a directory for a here-document"))?;
                let path = dir.path().join(&h.name);
                std::fs::write(&path, h.text()).map_err(io_err(format!("writing {}", path.display())))?;
                std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .map_err(io_err(format!("writing {}", path.display())))?;
                Some(dir)
            }
            None => None,
        };
        let mut volumes: Vec<String> = scripts
            .iter()
            .map(|d| format!("{}:{SCRIPTS}:ro", d.path().display()))
            .collect();
        let mut _locks = Vec::new();
        let mut _secrets = Vec::new();
        let mut _copies = Vec::new();
        for ((m, target), bind) in mounts.iter().zip(&targets).zip(&binds) {
            match m {
                RunMount::Bind(b) => {
                    let Some(bind) = bind else { continue };
                    let copy = tempfile::Builder::new()
                        .prefix(".bind-")
                        .tempdir_in(self.store.root().join("ingest"))
                        .map_err(io_err("making a directory for a bind mount"))?;
                    materialize(&bind.plan, copy.path())?;
                    let source = match &bind.file {
                        Some(name) => copy.path().join(name),
                        None => copy.path().to_path_buf(),
                    };
                    let ro = if b.rw { "" } else { ":ro" };
                    volumes.push(format!("{}:{target}{ro}", source.display()));
                    _copies.push(copy);
                }
                RunMount::Cache(m) => {
                    let (dir, lock) = self.cache_dir(m)?;
                    _locks.extend(lock);
                    let ro = if m.readonly { ":ro" } else { "" };
                    volumes.push(format!("{}:{target}{ro}", dir.display()));
                }
                RunMount::Secret(s) => {
                    if let Some(copy) = self.secret_file(line, s)? {
                        volumes.push(format!("{}:{target}:ro", copy.path().join("secret").display()));
                        _secrets.push(copy);
                    }
                }
            }
        }
        let copts = CreateOptions {
            entrypoint: Some(String::new()),
            cmd: argv.clone(),
            network: Some(network),
            volumes,
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
                    stdout: !self.opts.quiet,
                    stderr: !self.opts.quiet,
                    detach_keys: None,
                },
            )?;
            if code != 0 {
                return Err(BuildError::RunFailed {
                    line: line.number,
                    step: self.step.clone(),
                    command: argv.join(" "),
                    code,
                });
            }
            let lowers = Lowers::new(lower_dirs);
            let upper = c.dir.join("upper");
            // The mount points made for the script and the caches, as BuildKit removes its stubs.
            let points = scripts
                .iter()
                .map(|_| SCRIPTS.to_string())
                .chain(targets.iter().cloned());
            for point in points {
                remove_stub(&upper, &lowers, &point)?;
            }
            let mut w = LayerWriter::to_file(&self.store.root().join("ingest"), self.opts.epoch)
                .map_err(io_err("creating a layer file"))?;
            diff_upper(&upper, &lowers, &mut w)?;
            w.finish().map_err(io_err("writing the layer"))
        })();
        let removed = self.runtime.remove(&c);
        let written = result?;
        removed?;
        self.store_layer(written, created_by, &key)
    }

    /// The store's directory for a cache mount (made with its owner and
    /// mode the first time), and the lock a `sharing=locked` one holds
    /// for the RUN.
    fn cache_dir(&self, m: &CacheMount) -> Result<(PathBuf, Option<LockGuard>), BuildError> {
        let base = self.store.root().join(CACHE_MOUNTS);
        std::fs::create_dir_all(&base).map_err(io_err(format!("creating {}", base.display())))?;
        let dir = base.join(Digest::of(m.id.as_bytes()).hex());
        if !dir.is_dir() {
            // Made aside, then renamed: another build sees it whole or not at all.
            let tmp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempdir_in(&base)
                .map_err(io_err(format!("creating a cache in {}", base.display())))?;
            let made = io_err(format!("creating the cache {:?}", m.id));
            std::os::unix::fs::chown(tmp.path(), Some(m.uid), Some(m.gid)).map_err(made)?;
            std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(m.mode))
                .map_err(io_err(format!("creating the cache {:?}", m.id)))?;
            if std::fs::rename(tmp.path(), &dir).is_err() && !dir.is_dir() {
                return Err(BuildError::Unsupported(format!(
                    "the cache {:?} could not be made in {}",
                    m.id,
                    base.display()
                )));
            }
        }
        let lock = match m.exclusive {
            true => Some(
                fsutil::lock(&dir.with_extension("lock"), LockKind::Exclusive)
                    .map_err(io_err(format!("locking the cache {:?}", m.id)))?,
            ),
            false => None,
        };
        Ok((dir, lock))
    }

    /// What a bind mount shows, planned as a COPY of its source to `/`
    /// would be (the context with .dockerignore applied, owners root's;
    /// a stage's or image's files with theirs), and the digest of that
    /// content, for the RUN's cache key.
    fn bind_plan(&self, line: &Line, b: &BindMount, built: &[Option<Stage>]) -> Result<BindPlan, BuildError> {
        let src = if b.source.is_empty() { "." } else { b.source.as_str() };
        let none = Lowers::new(Vec::new());
        let dest = CopyDest {
            raw: "/".into(),
            abs: "/".into(),
            is_dir: true,
        };
        let perms = Perms {
            chown: None,
            chmod: None,
            keep_owner: b.from.is_some(),
        };
        let (plan, file) = match &b.from {
            None => {
                let sources = self.context_sources(line, &[src.to_string()], false)?;
                let resolved = self.follow_sources(line, &sources)?;
                let file = resolved
                    .iter()
                    .find(|r| !r.md.is_dir())
                    .map(|r| file_target(&r.rel, &dest, &none));
                (self.plan_copy(line, resolved, &dest, false, perms, &none)?, file)
            }
            Some(from) => {
                let source = self.copy_source(line, from, built)?;
                let items = rootfs_sources(line, &[src.to_string()], &source)?;
                let file = items
                    .iter()
                    .find(|i| i.entry.as_ref().is_some_and(|(_, md)| !md.is_dir()))
                    .map(|i| file_target(&i.name, &dest, &none));
                (self.plan_rootfs_copy(line, items, &source, &dest, perms, &none)?, file)
            }
        };
        let mut probe = LayerWriter::hash_only(0);
        emit_plan(&mut probe, &plan, self.store.layer_limits())?;
        let digest = probe.finish().map_err(io_err("hashing a bind mount"))?.diff_id;
        Ok(BindPlan { plan, file, digest })
    }

    /// A private copy of the `--secret` a secret mount names, with the
    /// mount's owner and mode, in a 0700 directory of the store's `ingest/`
    /// (removed with the returned guard); `None` when the build was not
    /// given it and the mount is not `required`.
    fn secret_file(&self, line: &Line, s: &SecretMount) -> Result<Option<tempfile::TempDir>, BuildError> {
        let Some((_, src)) = self.opts.secrets.iter().rev().find(|(id, _)| *id == s.id) else {
            if s.required {
                return Err(line.error(format!(
                    "the secret {:?} is required: give it with --secret id={},src=FILE",
                    s.id, s.id
                )));
            }
            return Ok(None);
        };
        let dir = tempfile::Builder::new()
            .prefix(".secret-")
            .tempdir_in(self.store.root().join("ingest"))
            .map_err(io_err("making a directory for a secret"))?;
        let copy = dir.path().join("secret");
        let fail = || io_err(format!("copying the secret {:?} from {}", s.id, src.display()));
        let md = std::fs::metadata(src).map_err(fail())?;
        if !md.is_file() {
            return Err(line.error(format!("the secret {:?}: {} is not a file", s.id, src.display())));
        }
        std::fs::copy(src, &copy).map_err(fail())?;
        std::os::unix::fs::chown(&copy, Some(s.uid), Some(s.gid)).map_err(fail())?;
        std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(s.mode)).map_err(fail())?;
        Ok(Some(dir))
    }

    /// RUN's argv, and the heredoc to run as a file when it is one with a
    /// `#!` line: as BuildKit does, a command that is one heredoc runs its
    /// text with the SHELL (or as a file), any other has its heredocs put
    /// back after it for the shell to read.
    fn run_command<'l>(&self, line: &'l Line, c: &Command) -> (Vec<String>, Option<&'l Heredoc>) {
        let Command::Shell(text) = c else {
            return (self.command(c), None);
        };
        let with_shell = |body: String| {
            let mut argv = self.shell.clone();
            argv.push(body);
            argv
        };
        match line.heredocs.as_slice() {
            [] => (self.command(c), None),
            [h] if Heredoc::marker(text.trim()).is_some() => {
                let body = h.text();
                if body.starts_with("#!") {
                    (vec![format!("{SCRIPTS}/{}", h.name)], Some(h))
                } else {
                    (with_shell(body), None)
                }
            }
            docs => {
                let mut full = text.clone();
                for h in docs {
                    full.push('\n');
                    full.push_str(&h.content);
                    full.push_str(&h.name);
                }
                (with_shell(full), None)
            }
        }
    }

    // ------------------------------------------------------------ layers

    /// A layer the cache remembers under `key`, if the store still has its blob.
    fn cached(&self, key: &str) -> Option<CachedLayer> {
        if self.opts.no_cache {
            return None;
        }
        let bytes = std::fs::read(self.store.root().join(LAYER_CACHE).join(key)).ok()?;
        let hit: CachedLayer = serde_json::from_slice(&bytes).ok()?;
        self.store.has_blob(&hit.digest).then_some(hit)
    }

    /// The layer a `--cache-from` image has where this RUN would add one,
    /// as docker's classic builder finds it: the same layers so far, the
    /// same history so far (so the same base, ENV, USER, WORKDIR, ARGs…)
    /// and a next history entry made by the same command.
    fn cache_from_hit(&self, created_by: &str) -> Option<CachedLayer> {
        if self.opts.no_cache {
            return None;
        }
        let (n, h) = (self.diff_ids.len(), self.history.len());
        let same = |a: &Value, b: &Value| {
            a.get("created_by") == b.get("created_by") && a.get("empty_layer") == b.get("empty_layer")
        };
        self.ctx.cache_from.iter().find_map(|img| {
            let layer = img.layers.get(n)?;
            let next = img.history.get(h)?;
            let fits = img.diff_ids.get(..n)? == &self.diff_ids[..]
                && img.history[..h].iter().zip(&self.history).all(|(a, b)| same(a, b))
                && next.get("created_by").and_then(Value::as_str) == Some(created_by)
                && next.get("empty_layer").is_none()
                && layer.media_type == media::OCI_LAYER_GZIP
                && self.store.has_blob(&layer.digest);
            fits.then(|| CachedLayer {
                diff_id: img.diff_ids[n].clone(),
                digest: layer.digest.clone(),
                size: layer.size,
            })
        })
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
            let dir = self.store.root().join(LAYER_CACHE);
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

    /// Puts the build's time where the config `top` says [`BUILD_TIME`]: the
    /// time a build of this same content first had (so a fully cached
    /// rebuild gives the same image ID, as docker's), else now.
    fn stamp_build_time(&self, top: &mut Map<String, Value>) -> Result<String, BuildError> {
        let key = format!("created-{}", cache_key(&Value::Object(top.clone())));
        let dir = self.store.root().join(LAYER_CACHE);
        let path = dir.join(&key);
        let local = || {
            std::fs::read_to_string(&path)
                .ok()
                .filter(|s| barge_oci::time::parse_rfc3339(s).is_some())
        };
        // A --cache-from image that is this image but for its time.
        let pulled = || {
            self.ctx.cache_from.iter().find_map(|img| {
                let t = img.created.clone()?;
                let mut same = top.clone();
                put_build_time(&mut same, &t);
                let bytes = serde_json::to_vec(&Value::Object(same)).ok()?;
                (Digest::of(&bytes) == img.id).then_some(t)
            })
        };
        let kept = if self.opts.no_cache { None } else { local() };
        let time = match kept {
            Some(t) => t,
            None => {
                let time = if self.opts.no_cache { None } else { pulled() }.unwrap_or_else(|| {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    barge_oci::time::format_rfc3339(now as i64)
                });
                // Concurrent builds of the same content: each file written whole.
                std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
                barge_store::fsutil::write_atomic(&path, time.as_bytes(), 0o644)
                    .map_err(io_err("writing the build cache"))?;
                time
            }
        };
        put_build_time(top, &time);
        Ok(time)
    }

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
        if self.created == BUILD_TIME {
            self.created = self.stamp_build_time(&mut top)?;
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

/// The image ID `name` has in the store, pulled there if need be.
fn resolve_image(ctx: Ctx, name: &str, platform: Option<&Platform>) -> Result<Digest, BuildError> {
    ctx.bases.resolve(name, platform).map_err(|message| BuildError::Base {
        name: name.to_string(),
        message,
    })
}

/// A stored image's layers (unpacked into snapshots), config and history.
fn image_state(store: &Store, id: &Digest, name: &str) -> Result<ImageState, BuildError> {
    let base_err = |message: String| BuildError::Base {
        name: name.to_string(),
        message,
    };
    let entries = store.entries()?;
    let entry = entries
        .iter()
        .find(|e| e.meta.image_id == *id)
        .ok_or_else(|| base_err("not in the store".into()))?;
    let manifest = store.image_manifest(&entry.manifest.digest)?;
    let raw = store.read_blob(&manifest.config.digest, MAX_CONFIG_BYTES)?;
    let cfg: Value = serde_json::from_slice(&raw).map_err(|e| base_err(format!("its config is not JSON: {e}")))?;
    let parsed = barge_oci::ImageConfig::parse(&raw).map_err(|e| base_err(e.to_string()))?;
    if parsed.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(base_err("its config and manifest disagree on the layers".into()));
    }
    let layers: Vec<Descriptor> = manifest
        .layers
        .iter()
        .map(|l| {
            let mt = media::oci_equivalent(&l.media_type).unwrap_or(&l.media_type);
            Descriptor::new(mt, l.digest.clone(), l.size)
        })
        .collect();
    let chains = chain_ids(&parsed.rootfs.diff_ids);
    for (i, (layer, diff_id)) in manifest.layers.iter().zip(&parsed.rootfs.diff_ids).enumerate() {
        let parent = i.checked_sub(1).map(|p| &chains[p]);
        store.unpack_layer(layer, diff_id, &chains[i], parent)?;
    }
    Ok(ImageState {
        platform: parsed.platform(),
        diff_ids: parsed.rootfs.diff_ids.clone(),
        layers,
        config: parsed.config.unwrap_or_default(),
        history: cfg
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        id: id.clone(),
        created: cfg.get("created").and_then(Value::as_str).map(str::to_string),
    })
}

/// Writes a COPY plan's entries (and ADD's archives) into a layer.
fn emit_plan(w: &mut LayerWriter, plan: &CopyPlan, limits: LayerLimits) -> Result<(), BuildError> {
    let mut hardlinks = HashMap::new();
    for (at, item) in &plan.entries {
        match item {
            Item::Dir(o) => w.dir(at, *o).map_err(io_err(format!("adding /{at}")))?,
            Item::Inline(text, o) => w
                .file(at, *o, text.len() as u64, &text[..])
                .map_err(io_err(format!("adding /{at}")))?,
            Item::Source(src, md, o) => {
                write_entry(w, src, md, at, *o, &mut hardlinks)?;
            }
        }
    }
    for (archive, target) in &plan.archives {
        extract(w, archive, target, limits)?;
    }
    Ok(())
}

/// Makes a plan's entries (no archives) below `dir`, with their owners
/// and modes: the private copy a bind mount shows.
fn materialize(plan: &CopyPlan, dir: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::{lchown, PermissionsExt};
    for (at, item) in &plan.entries {
        let path = dir.join(at);
        let fail = || io_err(format!("copying /{at} for a bind mount"));
        let o = match item {
            Item::Dir(o) => {
                std::fs::create_dir_all(&path).map_err(fail())?;
                *o
            }
            Item::Inline(text, o) => {
                std::fs::write(&path, text).map_err(fail())?;
                *o
            }
            Item::Source(src, md, o) => {
                let ft = md.file_type();
                if ft.is_dir() {
                    std::fs::create_dir_all(&path).map_err(fail())?;
                } else if ft.is_symlink() {
                    let target = std::fs::read_link(src).map_err(fail())?;
                    std::os::unix::fs::symlink(target, &path).map_err(fail())?;
                    lchown(&path, Some(o.uid as u32), Some(o.gid as u32)).map_err(fail())?;
                    continue;
                } else if ft.is_file() {
                    std::fs::copy(src, &path).map_err(fail())?;
                } else {
                    // Devices, fifos, sockets: not for a bind mount's copy.
                    continue;
                }
                *o
            }
        };
        lchown(&path, Some(o.uid as u32), Some(o.gid as u32)).map_err(fail())?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(o.mode)).map_err(fail())?;
    }
    Ok(())
}

/// Removes the directory (or empty file) the runtime made at `point`
/// (absolute) in a RUN's upper dir to mount something there, and the
/// parents it made for it, while they are empty and the image does not
/// have them.
fn remove_stub(upper: &Path, lowers: &Lowers, point: &str) -> Result<(), BuildError> {
    let mut rel = clean(point);
    while !rel.is_empty() && lowers.find(&rel).is_none() {
        let path = upper.join(&rel);
        // A file's mount point is an empty file.
        let removed = match std::fs::symlink_metadata(&path) {
            Ok(md) if md.is_file() && md.len() == 0 => std::fs::remove_file(&path),
            Ok(md) if md.is_file() => break,
            _ => std::fs::remove_dir(&path),
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Not empty: the command put something there.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTEMPTY.raw_os_error()) => break,
            Err(e) => return Err(io_err(format!("removing {}", path.display()))(e)),
        }
        rel = rel.rsplit_once('/').map(|(up, _)| up.to_string()).unwrap_or_default();
    }
    Ok(())
}

/// The parent directories of planned entries, as the image has them,
/// else made as [`Perms::made_dir`] makes them.
fn add_parents(plan: &mut CopyPlan, lowers: &Lowers, perms: Perms) {
    let planned: Vec<String> = plan.entries.keys().cloned().collect();
    for p in planned {
        let mut parent = p.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            parent = up;
            if !plan.entries.contains_key(parent) {
                let o = existing_dir(lowers, parent).unwrap_or_else(|| perms.made_dir());
                plan.entries.insert(parent.to_string(), Item::Dir(o));
            }
        }
    }
    plan.entries.remove("");
}

/// A bind mount's content, planned, and its digest.
struct BindPlan {
    plan: CopyPlan,
    /// The source is this file (its name in the plan), not a directory.
    file: Option<String>,
    digest: Digest,
}

/// What `COPY --from` reads: a stage's or an image's layers.
struct RootfsSource {
    /// `stage build`, `image gcc:13`, for messages.
    what: String,
    lowers: Lowers,
}

/// A `COPY --from` source: its name as written, where it is once links
/// are followed, and the entry there.
struct RootfsItem {
    name: String,
    at: String,
    /// `None` for the root, a directory whatever the layers hold.
    entry: Option<(PathBuf, Metadata)>,
}

/// The sources of `COPY --from`, globs expanded, a link at the end
/// followed inside the source's root (as docker does).
fn rootfs_sources(line: &Line, args: &[String], source: &RootfsSource) -> Result<Vec<RootfsItem>, BuildError> {
    let lowers = &source.lowers;
    let mut items = Vec::new();
    for s in args {
        let rel = clean(s);
        let mut found = Vec::new();
        if is_glob(&rel) {
            // Walk from the part before the first pattern.
            let comps: Vec<&str> = rel.split('/').collect();
            let fixed = comps.iter().take_while(|c| !is_glob(c)).count();
            let prefix = comps[..fixed].join("/");
            let mut matched: Vec<String> = lowers
                .walk(&prefix)
                .into_iter()
                .map(|(r, _, _)| if prefix.is_empty() { r } else { format!("{prefix}/{r}") })
                .filter(|r| glob_matches(&rel, r))
                .collect();
            let dirs = matched.clone();
            matched.retain(|r| !dirs.iter().any(|d| r.starts_with(&format!("{d}/"))));
            found.extend(matched);
        } else {
            found.push(rel);
        }
        if found.is_empty() {
            return Err(line.error(format!("{s}: no source files were specified")));
        }
        for name in found {
            let at = lowers.resolve(&name, true);
            let entry = match at.as_str() {
                "" => None,
                _ => Some(
                    lowers
                        .find(&at)
                        .ok_or_else(|| line.error(format!("{s}: not found in {}", source.what)))?,
                ),
            };
            items.push(RootfsItem { name, at, entry });
        }
    }
    Ok(items)
}

/// A here-document COPY writes: its file name and text.
type InlineFile = (String, String);

enum Item {
    Dir(Owner),
    /// A here-document's text.
    Inline(Vec<u8>, Owner),
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
    /// `COPY --from`: entries keep their owners unless `--chown`, as
    /// docker's do; from the context they become root's.
    keep_owner: bool,
}

impl Perms {
    /// A directory COPY makes (the destination, a parent): 0755, owned by
    /// the `--chown` owner else root, as BuildKit's `mkdir -p` makes
    /// them; `--chmod` is for what is copied.
    fn made_dir(self) -> Owner {
        let (uid, gid) = self.chown.unwrap_or((0, 0));
        Owner { uid, gid, mode: 0o755 }
    }

    /// The owner and mode an entry gets: root's unless `--chown`, the
    /// source's mode unless `--chmod` (a directory without one gets 0755).
    fn apply(self, o: Owner, is_dir: bool) -> Owner {
        let mut o = match self.chown {
            Some((uid, gid)) => Owner { uid, gid, ..o },
            None if self.keep_owner => o,
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
    Item::Dir(existing_dir(lowers, target).unwrap_or_else(|| perms.made_dir()))
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

/// What `created` says until [`Stage::finish`] knows the build's time.
const BUILD_TIME: &str = "barge:build-time";

/// `time` for every [`BUILD_TIME`] in the config `top`: its own and its history rows'.
fn put_build_time(top: &mut Map<String, Value>, time: &str) {
    top.insert("created".into(), json!(time));
    if let Some(Value::Array(rows)) = top.get_mut("history") {
        for row in rows.iter_mut().filter_map(Value::as_object_mut) {
            if row.get("created").and_then(Value::as_str) == Some(BUILD_TIME) {
                row.insert("created".into(), json!(time));
            }
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct CachedLayer {
    pub(crate) diff_id: Digest,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

fn cache_key(v: &Value) -> String {
    Digest::of(v.to_string().as_bytes()).hex().to_string()
}

/// A directory's owner and mode as the image has it.
fn existing_dir(lowers: &Lowers, rel: &str) -> Option<Owner> {
    lowers
        .find(rel)
        .filter(|(_, m)| m.is_dir())
        .map(|(_, m)| crate::fs::owner(&m))
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
