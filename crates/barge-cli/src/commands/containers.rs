//! The container commands: run, create, start, stop, kill, restart, wait,
//! rm, logs, exec, ps, container prune, and container inspect.

use super::prune_filter::{time_value, PruneFilter};
use super::Env;
use crate::args::{
    ContainerPruneArgs, ContainersArgs, ExecArgs, KillArgs, LogsArgs, PsArgs, RmArgs, RunArgs, StartArgs, StatsArgs,
    StopArgs,
};
use crate::failure::{Context, Failure};
use crate::format::{self, tabulate, Template};
use barge_oci::{Digest, Reference};
use barge_runtime::exec::ExecOptions;
use barge_runtime::health::{self, Health};
use barge_runtime::monitor::Foreground;
use barge_runtime::spec::PosixRlimitType;
use barge_runtime::{Container, CreateOptions, Network, Runtime, RuntimeError, State, Status, Validated};
use serde_json::{json, Value};
use std::ops::ControlFlow;
use std::time::Duration;

/// A runtime error in `run`, `create` and `start -a`, with docker's exit
/// status there: the command's own 126 or 127, else 125.
fn fail_start(what: impl Into<String>, e: RuntimeError) -> Failure {
    let code = e.exit_code();
    Failure::new(what, e).with_code(code)
}

/// A runtime error in any other verb: 1 as docker gives it, or the
/// command's own 126 or 127 for `exec`.
pub(super) fn fail(what: impl Into<String>, e: RuntimeError) -> Failure {
    let code = match e.exit_code() {
        125 => 1,
        own => own,
    };
    Failure::new(what, e).with_code(code)
}

/// The image to run: from the store, pulled first when missing (or always).
fn image_for_run(env: &Env, a: &RunArgs) -> Result<Digest, Failure> {
    let store = env.store().map_err(|f| f.with_code(125))?;
    let found = store.find_image(a.image());
    let must_pull = match (a.pull.as_str(), &found) {
        ("always", _) => true,
        ("never", _) => false,
        (_, Err(barge_store::StoreError::NoSuchImage(_))) => true,
        _ => false,
    };
    if !must_pull {
        return found.context(String::new).map_err(|f| f.with_code(125));
    }
    let reference = Reference::parse_default_tag(a.image())
        .context(|| format!("running {}", a.image()))
        .map_err(|f| f.with_code(125))?;
    if found.is_err() && !a.quiet {
        eprintln!("Unable to find image '{}' locally", reference.familiar());
    }
    let platform = super::platform(a.platform.as_deref())?;
    let client = env.client()?;
    let printer = crate::progress::Printer::new(a.quiet);
    let opts = barge_engine::PullOptions {
        platform,
        mirrors: env.settings()?.mirrors_for(reference.registry()),
        trust: Some(env.trust()?),
        ..Default::default()
    };
    let outcome = barge_engine::pull(&client, &store, &reference, &opts, &printer)
        .context(|| format!("pulling {}", reference.familiar()))
        .map_err(|f| f.with_code(125))?;
    printer.line(&format!("Digest: {}", outcome.digest));
    printer.line(&format!("Status: Downloaded newer image for {}", reference.familiar()));
    Ok(outcome.image_id)
}

fn create_options(a: &RunArgs) -> Result<CreateOptions, Failure> {
    let mut env_file_lines = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f)
            .context(|| format!("reading --env-file {}", f.display()))
            .map_err(|f| f.with_code(125))?;
        env_file_lines.extend(text.lines().map(str::to_string));
    }
    Ok(CreateOptions {
        name: a.name.clone(),
        env: a.env.clone(),
        env_file_lines,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        entrypoint: a.entrypoint.clone(),
        cmd: a.command().to_vec(),
        labels: a.label.clone(),
        network: a.network.as_deref().map(|n| match n {
            "host" => Network::Host,
            "none" => Network::None,
            _ => Network::Bridge,
        }),
        network_name: a
            .network
            .as_deref()
            .filter(|n| !matches!(*n, "host" | "none" | "default"))
            .map(str::to_string),
        publish: a.publish.clone(),
        publish_all: a.publish_all,
        runtime: a.runtime.clone(),
        tty: a.tty,
        interactive: a.interactive && a.attaches("stdin"),
        auto_remove: a.rm,
        init: a.init,
        read_only: a.read_only,
        volumes: a.volume.clone(),
        mounts: a.mount.clone(),
        tmpfs: a.tmpfs.clone(),
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        security_opt: a.security_opt.clone(),
        limits: barge_runtime::limits::Limits {
            ulimits: a.ulimit.clone(),
            cpuset_cpus: a.cpuset.cpuset_cpus.clone(),
            cpuset_mems: a.cpuset.cpuset_mems.clone(),
            ..a.resources.limits()
        },
        log_driver: a.log_driver.clone(),
        log_opts: a.log_opt.clone(),
        dns: a.dns.clone(),
        dns_search: a.dns_search.clone(),
        dns_options: a.dns_option.clone(),
        add_hosts: a.add_host.clone(),
        sysctls: a.sysctl.clone(),
        shm_size: a.shm_size,
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        group_add: a.group_add.clone(),
        expose: a.expose.clone(),
        no_new_privileges_default: false,
        restart: a.restart.clone(),
        pid: a.sharing.pid.clone(),
        ipc: a.sharing.ipc.clone(),
        devices: a.sharing.device.clone(),
        privileged: a.sharing.privileged,
        health: a.health.options(),
    })
}

pub(super) fn runtime(env: &Env) -> Result<Runtime, Failure> {
    let store = env.store()?;
    env.networks(&store)?;
    Ok(Runtime::new(&store))
}

pub(super) fn find(rt: &Runtime, name: &str) -> Result<Container, Failure> {
    rt.find(name).map_err(|e| fail("", e))
}

/// The options, checked before any image is looked up or pulled.
fn checked_options(env: &Env, a: &RunArgs) -> Result<Validated, Failure> {
    let mut o = create_options(a)?;
    o.no_new_privileges_default = env.settings()?.no_new_privileges.unwrap_or(false);
    o.validate().map_err(|e| fail_start("", e))
}

/// Checks the options, finds (or pulls) the image and creates the
/// container: what `create` and `run` share.
fn new_container(env: &Env, a: &RunArgs) -> Result<(Runtime, Container), Failure> {
    let opts = checked_options(env, a)?;
    // docker's --cidfile: refused when the file exists, made before the
    // container, removed again when the container is not.
    let cidfile = match &a.cidfile {
        Some(path) => Some((
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| {
                    let what = if e.kind() == std::io::ErrorKind::AlreadyExists {
                        format!(
                            "container ID file found, make sure the other container isn't running or delete {}",
                            path.display()
                        )
                    } else {
                        format!("creating the container ID file {}: {e}", path.display())
                    };
                    Failure::msg(what).with_code(125)
                })?,
            path,
        )),
        None => None,
    };
    let created = image_for_run(env, a).and_then(|image_id| {
        let rt = runtime(env).map_err(|f| f.with_code(125))?;
        let c = rt
            .create(&image_id, a.image(), &opts)
            .map_err(|e| fail_start(format!("creating a container of {}", a.image()), e))?;
        Ok((rt, c))
    });
    if let Some((mut file, path)) = cidfile {
        use std::io::Write;
        match &created {
            Ok((_, c)) => file
                .write_all(c.id().as_bytes())
                .map_err(|e| Failure::msg(format!("writing {}: {e}", path.display())).with_code(125))?,
            Err(_) => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
    created
}

pub fn create(env: &Env, a: &RunArgs) -> Result<i32, Failure> {
    let (_, c) = new_container(env, a)?;
    println!("{}", c.id());
    Ok(0)
}

/// docker's check before it attaches a terminal: `-it` needs one on stdin.
fn check_tty(interactive: bool, tty: bool) -> Result<(), Failure> {
    use std::io::IsTerminal;
    if interactive && tty && !std::io::stdin().is_terminal() {
        return Err(Failure::msg("the input device is not a TTY"));
    }
    Ok(())
}

pub fn run(env: &Env, a: &RunArgs) -> Result<i32, Failure> {
    if a.detach && a.rm && a.runtime.is_some() {
        return Err(Failure::msg("--rm with -d and --runtime is not supported yet").with_code(125));
    }
    if a.detach && !a.attach.is_empty() {
        return Err(Failure::msg("Conflicting options: -a and -d").with_code(125));
    }
    if !a.detach {
        check_tty(a.interactive, a.tty)?;
    }
    let detach_keys = super::attach::detach_keys(env, a.detach_keys.as_deref()).map_err(|f| f.with_code(125))?;
    let (rt, c) = new_container(env, a)?;
    if a.detach {
        rt.run_detached(&c).map_err(|e| fail_start("", e))?;
        println!("{}", c.id());
        return Ok(0);
    }
    rt.run_foreground(
        &c,
        Foreground {
            sig_proxy: a.sig_proxy,
            stdout: a.attaches("stdout"),
            stderr: a.attaches("stderr"),
            detach_keys,
        },
    )
    .map_err(|e| fail_start("", e))
}

pub fn start(env: &Env, a: &StartArgs) -> Result<i32, Failure> {
    let rt = runtime(env)?;
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            return Err(Failure::msg("you cannot start and attach multiple containers at once"));
        }
        let c = find(&rt, &a.containers[0])?;
        if c.state().map(|s| s.status == Status::Running).unwrap_or(false) {
            return Err(Failure::msg(format!(
                "container {} is already running",
                a.containers[0]
            )));
        }
        let fg = Foreground {
            detach_keys: super::attach::detach_keys(env, a.detach_keys.as_deref())?,
            ..Foreground::attached(true)
        };
        return rt.run_foreground(&c, fg).map_err(|e| fail_start("", e));
    }
    let mut code = 0;
    for name in &a.containers {
        let r = find(&rt, name).and_then(|c| {
            if c.state().map(|s| s.status == Status::Running).unwrap_or(false) {
                return Ok(());
            }
            rt.run_detached(&c).map_err(|e| fail(format!("starting {name}"), e))
        });
        match r {
            Ok(()) => println!("{name}"),
            Err(f) => {
                f.print(false);
                code = 1;
            }
        }
    }
    Ok(code)
}

/// Runs `op` on each named container, printing the name on success as docker does.
pub(super) fn each(
    env: &Env,
    names: &[String],
    op: impl Fn(&Runtime, &Container) -> Result<(), Failure>,
) -> Result<i32, Failure> {
    let rt = runtime(env)?;
    let mut code = 0;
    for name in names {
        match find(&rt, name).and_then(|c| op(&rt, &c)) {
            Ok(()) => println!("{name}"),
            Err(f) => {
                f.print(false);
                code = 1;
            }
        }
    }
    Ok(code)
}

/// How long `stop` waits: `-t`, else the container's `--stop-timeout`,
/// else docker's 10 seconds; a negative one waits as long as it takes.
fn stop_wait(a: &StopArgs, c: &Container) -> Duration {
    match a.time.or(c.meta.stop_timeout).unwrap_or(10) {
        t if t < 0 => Duration::from_secs(u64::from(u32::MAX)),
        t => Duration::from_secs(t.unsigned_abs()),
    }
}

/// docker refuses to signal a frozen container: the signal would wait for a thaw.
fn refuse_paused(rt: &Runtime, c: &Container) -> Result<(), Failure> {
    if rt.paused(c) {
        return Err(Failure::msg(format!(
            "cannot stop or kill container {0}: it is paused; unpause it first (barge unpause {0})",
            c.meta.name
        )));
    }
    Ok(())
}

pub fn pause(env: &Env, a: &ContainersArgs, on: bool) -> Result<i32, Failure> {
    each(env, &a.containers, |rt, c| {
        rt.set_paused(c, on).map_err(|e| {
            let verb = if on { "pausing" } else { "unpausing" };
            fail(format!("{verb} {}", c.meta.name), e)
        })
    })
}

pub fn stop(env: &Env, a: &StopArgs) -> Result<i32, Failure> {
    each(env, &a.containers, |rt, c| {
        refuse_paused(rt, c)?;
        rt.stop(c, stop_wait(a, c))
            .map_err(|e| fail(format!("stopping {}", c.meta.name), e))
    })
}

pub fn restart(env: &Env, a: &StopArgs) -> Result<i32, Failure> {
    each(env, &a.containers, |rt, c| {
        refuse_paused(rt, c)?;
        rt.stop(c, stop_wait(a, c))
            .map_err(|e| fail(format!("stopping {}", c.meta.name), e))?;
        rt.run_detached(c)
            .map_err(|e| fail(format!("starting {}", c.meta.name), e))
    })
}

pub fn kill(env: &Env, a: &KillArgs) -> Result<i32, Failure> {
    let sig = barge_runtime::runner::parse_signal(&a.signal).map_err(|e| fail("", e))?;
    each(env, &a.containers, |rt, c| {
        let st = rt.mark_stopped(c).map_err(|e| fail("", e))?;
        if st.status != Status::Running {
            return Err(Failure::msg(format!(
                "cannot kill container: {}: container is not running",
                c.meta.name
            )));
        }
        refuse_paused(rt, c)?;
        barge_runtime::runner::signal(c, &st, sig)
            .map_err(|e| fail(format!("cannot kill container: {}", c.meta.name), e))
    })
}

pub fn wait(env: &Env, a: &ContainersArgs) -> Result<i32, Failure> {
    let rt = runtime(env)?;
    let mut code = 0;
    for name in &a.containers {
        let c = match find(&rt, name) {
            Ok(c) => c,
            Err(f) => {
                f.print(false);
                code = 1;
                continue;
            }
        };
        if let Some(fd) = rt.pidfd(&c) {
            barge_runtime::monitor::wait_pidfd(&fd);
        }
        let _ = rt.wait_exit(&c, Duration::from_secs(3600 * 24 * 365));
        match c.state() {
            Ok(st) => println!("{}", st.exit_code.unwrap_or(0)),
            // Removed on exit (--rm): docker reports 0 as well when it cannot tell.
            Err(_) => println!("0"),
        }
    }
    Ok(code)
}

pub fn rm(env: &Env, a: &RmArgs) -> Result<i32, Failure> {
    each(env, &a.containers, |rt, c| {
        let st = c.state().map_err(|e| fail("", e))?;
        if st.restarting && !a.force {
            return Err(Failure::msg(format!(
                "You cannot remove a restarting container {}. Stop the container before attempting removal or force remove",
                c.id()
            )));
        }
        let st = if a.force {
            rt.mark_stopped(c).map_err(|e| fail("", e))?
        } else {
            st
        };
        if st.status == Status::Running {
            if !a.force {
                return Err(fail("", RuntimeError::Running(c.meta.name.clone())));
            }
            if rt.paused(c) {
                // A frozen process dies only once thawed.
                rt.set_paused(c, false)
                    .map_err(|e| fail(format!("unpausing {}", c.meta.name), e))?;
            }
            let _ = barge_runtime::runner::signal(c, &st, libc::SIGKILL);
            rt.wait_exit(c, Duration::from_secs(10)).map_err(|e| fail("", e))?;
        }
        rt.remove(c).map_err(|e| fail(format!("removing {}", c.meta.name), e))?;
        if a.volumes {
            rt.remove_anonymous_volumes(c)
                .map_err(|e| fail(format!("removing the anonymous volumes of {}", c.meta.name), e))?;
        }
        Ok(())
    })
}

pub fn logs(env: &Env, a: &LogsArgs) -> Result<i32, Failure> {
    use std::io::Write;
    let rt = runtime(env)?;
    let c = find(&rt, &a.container)?;
    if !c.meta.log_driver.is_json_file() {
        return Err(Failure::msg(
            "configured logging driver does not support reading: the container was created with --log-driver none",
        ));
    }
    let tail: Option<usize> = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| Failure::msg(format!("invalid --tail {n:?}: a number or \"all\"")))?,
        ),
    };
    let now = format::now();
    let bound = |flag: &str, v: &Option<String>| -> Result<Option<i64>, Failure> {
        v.as_deref()
            .map(|t| {
                time_value(t, now).ok_or_else(|| {
                    Failure::msg(format!(
                        "invalid {flag} {t:?}: a Unix time, an RFC 3339 time or a duration such as 42m"
                    ))
                })
            })
            .transpose()
    };
    let (since, until) = (bound("--since", &a.since)?, bound("--until", &a.until)?);
    // One entry at a time from the files, so that memory stays bounded however long the log.
    let mut print = |e: barge_runtime::logs::Entry| {
        let secs = barge_oci::time::parse_rfc3339(&e.time).map_or(0, |t| t.0);
        if since.is_some_and(|s| secs < s) {
            return ControlFlow::Continue(());
        }
        if until.is_some_and(|u| secs >= u) {
            return ControlFlow::Continue(());
        }
        let time = if a.timestamps {
            format!("{} ", e.time)
        } else {
            String::new()
        };
        let written = if e.stream == "stderr" {
            let mut err = std::io::stderr().lock();
            err.write_all(time.as_bytes())
                .and_then(|_| err.write_all(e.log.as_bytes()))
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(time.as_bytes())
                .and_then(|_| out.write_all(e.log.as_bytes()))
                .and_then(|_| out.flush())
        };
        // A reader that went away (`logs | head`) ends the command.
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    };
    let reading = || "reading the log".to_string();
    let mut reader = barge_runtime::logs::Reader::open(&c.log_path(), tail).context(reading)?;
    let mut flow = reader.read(&mut print).context(reading)?;
    while a.follow && flow.is_continue() && until.is_none_or(|u| format::now() < u) {
        let running = c.state().map(|s| s.status == Status::Running).unwrap_or(false);
        flow = reader.read(&mut print).context(reading)?;
        if !running {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(0)
}

pub fn exec(env: &Env, a: &ExecArgs) -> Result<i32, Failure> {
    check_tty(a.interactive, a.tty)?;
    let rt = runtime(env)?;
    let c = find(&rt, a.container())?;
    if rt.paused(&c) {
        return Err(Failure::msg(format!(
            "Container {} is paused, unpause the container before exec",
            c.meta.name
        )));
    }
    let o = ExecOptions {
        args: a.command().to_vec(),
        env: a.env.clone(),
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
        privileged: a.privileged,
    };
    rt.exec(&c, &o)
        .map_err(|e| fail(format!("exec in {}", a.container()), e))
}

/// `Up 3 minutes`, `Exited (0) 2 seconds ago`, `Created`.
/// docker's state name: `paused` is a running container `pause` froze.
pub(super) fn state_name(rt: &Runtime, c: &Container, st: &State) -> &'static str {
    match st.status {
        Status::Created => "created",
        Status::Running if rt.paused(c) => "paused",
        Status::Running => "running",
        Status::Exited if st.restarting => "restarting",
        Status::Exited => "exited",
    }
}

pub(super) fn status_text(st: &State, now: i64, paused: bool, health: Option<&Health>) -> String {
    let secs = |t: &Option<String>| t.as_deref().and_then(barge_oci::time::parse_rfc3339).map(|t| t.0);
    match st.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}{}",
            format::human_duration(now - secs(&st.started_at).unwrap_or(now)),
            match (paused, health) {
                (true, _) => " (Paused)".to_string(),
                (false, Some(h)) => format!(" ({})", h.status.ps_text()),
                (false, None) => String::new(),
            }
        ),
        Status::Exited if st.restarting => format!(
            "Restarting ({}) {} ago",
            st.exit_code.unwrap_or(0),
            format::human_duration(now - secs(&st.finished_at).unwrap_or(now))
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            st.exit_code.unwrap_or(0),
            format::human_duration(now - secs(&st.finished_at).unwrap_or(now))
        ),
    }
}

pub(super) fn command_text(c: &Container) -> String {
    std::iter::once(c.meta.path.as_str())
        .chain(c.meta.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `--filter` of `barge ps`.
struct PsFilter {
    rules: Vec<(String, String)>,
}

impl PsFilter {
    fn parse(raw: &[String]) -> Result<PsFilter, Failure> {
        let mut rules = Vec::new();
        for f in raw {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| Failure::msg(format!("bad format of filter (expected name=value): {f}")))?;
            if !matches!(
                k,
                "id" | "name"
                    | "label"
                    | "status"
                    | "exited"
                    | "ancestor"
                    | "before"
                    | "since"
                    | "volume"
                    | "network"
                    | "publish"
                    | "expose"
                    | "health"
                    | "isolation"
                    | "is-task"
            ) {
                return Err(Failure::msg(format!("invalid filter '{k}'")));
            }
            if k == "health" && !matches!(v, "starting" | "healthy" | "unhealthy" | "none") {
                return Err(Failure::msg(format!(
                    "invalid filter 'health={v}': expected starting, healthy, unhealthy or none"
                )));
            }
            if matches!(k, "publish" | "expose") {
                port_filter(v)
                    .ok_or_else(|| Failure::msg(format!("invalid filter '{k}={v}': expected PORT[/PROTO]")))?;
            }
            if k == "status"
                && !matches!(
                    v,
                    "created" | "running" | "exited" | "paused" | "restarting" | "removing" | "dead"
                )
            {
                return Err(Failure::msg(format!("invalid filter 'status={v}': expected created, running, exited, paused, restarting, removing or dead")));
            }
            rules.push((k.to_string(), v.to_string()));
        }
        Ok(PsFilter { rules })
    }

    /// Each key must match one of its values (docker: OR within a key, AND across keys).
    fn keep(&self, rt: &Runtime, c: &Container, st: &State, all: &[Container]) -> bool {
        let mut keys: Vec<&str> = self.rules.iter().map(|(k, _)| k.as_str()).collect();
        keys.dedup();
        keys.iter().all(|key| {
            self.rules.iter().filter(|(k, _)| k == key).any(|(_, v)| match *key {
                "id" => c.meta.id.starts_with(v.as_str()),
                "name" => c.meta.name.contains(v.as_str()),
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => c.meta.labels.get(lk).is_some_and(|x| x == lv),
                    None => c.meta.labels.contains_key(v.as_str()),
                },
                "status" => state_name(rt, c, st) == v,
                "exited" => st.status == Status::Exited && st.exit_code.map(|e| e.to_string()) == Some(v.clone()),
                "ancestor" => {
                    c.meta.image == *v
                        || c.meta.image_id.hex().starts_with(v.trim_start_matches("sha256:"))
                        || rt.store().find_image(v).is_ok_and(|id| id == c.meta.image_id)
                }
                "before" | "since" => match all
                    .iter()
                    .find(|o| o.meta.name == *v || o.meta.id.starts_with(v.as_str()))
                {
                    Some(o) if *key == "before" => c.meta.created < o.meta.created,
                    Some(o) => c.meta.created > o.meta.created,
                    None => false,
                },
                "volume" => super::volumes::mounts_volume(c, v),
                "network" => match c.meta.network {
                    barge_runtime::Network::Bridge => c.meta.network_name.as_deref().unwrap_or("bridge") == v,
                    barge_runtime::Network::Host => v == "host",
                    barge_runtime::Network::None => v == "none",
                    barge_runtime::Network::User => v == "slirp4netns" || v == "pasta",
                },
                // docker: a container port with a binding (-p, -P).
                "publish" => port_filter(v).is_some_and(|(p, proto)| {
                    c.meta
                        .ports
                        .iter()
                        .any(|s| s.container_port == p && s.proto.to_string() == proto)
                }),
                // docker: a port of the image's ExposedPorts or a published one.
                "expose" => port_filter(v).is_some_and(|(p, proto)| {
                    let key = format!("{p}/{proto}");
                    c.meta
                        .ports
                        .iter()
                        .any(|s| s.container_port == p && s.proto.to_string() == proto)
                        || rt.store().image_details(&c.meta.image_id).is_ok_and(|d| {
                            d.config
                                .config
                                .as_ref()
                                .and_then(|c| c.exposed_ports.as_ref())
                                .is_some_and(|e| e.contains_key(&key))
                        })
                }),
                "health" => health::current(c, st).map_or("none", |h| h.status.name()) == v,
                "isolation" => v == "default",
                "is-task" => v == "false",
                _ => false,
            })
        })
    }
}

/// `PORT[/PROTO]` of the publish and expose filters (tcp when not given).
fn port_filter(v: &str) -> Option<(u16, &str)> {
    let (port, proto) = v.split_once('/').unwrap_or((v, "tcp"));
    let port = port.parse().ok().filter(|p| *p > 0)?;
    matches!(proto, "tcp" | "udp").then_some((port, proto))
}

fn ps_header(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID".into(),
        "RunningFor" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        other => other.to_uppercase(),
    }
}

pub fn ps(env: &Env, a: &PsArgs) -> Result<i32, Failure> {
    let rt = runtime(env)?;
    let filter = PsFilter::parse(&a.filters)?;
    let all = rt.list().map_err(|e| fail("listing containers", e))?;
    let now = format::now();
    let mut rows: Vec<(Container, State)> = Vec::new();
    let limit = if a.latest {
        1
    } else if a.last > 0 {
        a.last as usize
    } else {
        usize::MAX
    };
    let show_all = a.all
        || a.latest
        || a.last > 0
        || a.filters
            .iter()
            .any(|f| f.starts_with("status=") || f.starts_with("exited="));
    for c in all.iter() {
        let Ok(st) = c.state() else { continue };
        if !show_all && st.status != Status::Running {
            continue;
        }
        if filter.keep(&rt, c, &st, &all) {
            rows.push((c.clone(), st));
        }
    }
    rows.truncate(limit);
    if a.quiet {
        for (c, _) in &rows {
            println!("{}", if a.no_trunc { c.id() } else { c.short_id() });
        }
        return Ok(0);
    }
    let values: Vec<Value> = rows
        .iter()
        .map(|(c, st)| {
            let cmd = command_text(c);
            let command = if a.no_trunc {
                format!("\"{cmd}\"")
            } else {
                format!("\"{}\"", format::ellipsis(&cmd, 20))
            };
            let size = if a.size {
                let image = rt.store().image_details(&c.meta.image_id).map(|d| d.size).unwrap_or(0);
                let own = c.size();
                format!(
                    "{} (virtual {})",
                    format::human_size(own),
                    format::human_size(own + image)
                )
            } else {
                String::new()
            };
            json!({
                "Command": command,
                "CreatedAt": format::go_time(Some(&c.meta.created)),
                "ID": if a.no_trunc { c.id() } else { c.short_id() },
                "Image": c.meta.image,
                "Labels": c.meta.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                // docker's `.Label "KEY"` (a method: left out of `--format json`).
                "Label": c.meta.labels,
                "LocalVolumes": super::volumes::local_volume_count(c).to_string(),
                "Mounts": super::volumes::mounts_column(c),
                "Names": c.meta.name,
                "Networks": network_mode(c),
                "Ports": ports_text(c, st),
                "RunningFor": format::since(Some(&c.meta.created), now),
                "Size": size,
                "State": state_name(&rt, c, st),
                "Status": status_text(st, now, state_name(&rt, c, st) == "paused", health::current(c, st).as_ref()),
            })
        })
        .collect();
    let default = if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let format = env.format_or_default(a.format.as_deref(), "psFormat");
    match format.as_deref() {
        Some("json") => {
            for v in &values {
                println!("{}", crate::format::sanitized(&crate::format::json_row(v)));
            }
        }
        other => {
            let src = match other {
                None | Some("table") => default,
                Some(t) => t,
            };
            let t = Template::parse(src).context(|| "--format".to_string())?;
            format::print_rows(&t, &values, &ps_header).context(|| "--format".to_string())?;
        }
    }
    Ok(0)
}

pub fn rename(env: &Env, a: &crate::args::RenameArgs) -> Result<i32, Failure> {
    let rt = runtime(env)?;
    let c = find(&rt, &a.container)?;
    rt.rename(&c, &a.new_name)
        .map_err(|e| fail(format!("renaming {}", c.meta.name), e))?;
    Ok(0)
}

/// `diff`: `A`dded, `C`hanged and `D`eleted paths, as docker prints them.
pub fn diff(env: &Env, a: &crate::args::ContainerArg) -> Result<i32, Failure> {
    use std::io::Write;
    let rt = runtime(env)?;
    let c = find(&rt, &a.container)?;
    let changes = c
        .changes()
        .map_err(|e| fail(format!("reading the changes of {}", c.meta.name), e))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (kind, path) in changes {
        // Paths are the container's own choice: no terminal escapes.
        writeln!(out, "{kind} {}", barge_registry::sanitize(&path)).context(|| "writing the list".to_string())?;
    }
    out.flush().context(|| "writing the list".to_string())?;
    Ok(0)
}

/// `top`: the host's ps(1) with the user's options (docker's `-ef` by
/// default), rows kept for the processes in the container's PID namespace,
/// as docker does it.
pub fn top(env: &Env, a: &crate::args::TopArgs) -> Result<i32, Failure> {
    let rt = runtime(env)?;
    let c = find(&rt, &a.container)?;
    let st = c.state().map_err(|e| fail("", e))?;
    let pid = match (st.status, st.pid) {
        (Status::Running, Some(pid)) => pid,
        _ => return Err(Failure::msg(format!("Container {} is not running", c.meta.name))),
    };
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let Some(theirs) = ns(&pid.to_string()) else {
        return Err(Failure::msg(format!("Container {} is not running", c.meta.name)));
    };
    let pids: std::collections::BTreeSet<String> = std::fs::read_dir("/proc")
        .context(|| "listing /proc".to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()) && ns(p).as_ref() == Some(&theirs))
        .collect();
    let options = if a.ps_options.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_options.clone()
    };
    let o = std::process::Command::new("ps")
        .args(&options)
        .output()
        .context(|| "running ps (procps)".to_string())?;
    if !o.status.success() {
        return Err(Failure::msg(format!(
            "ps {}: {}",
            options.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let column = header.split_whitespace().position(|h| h == "PID").ok_or_else(|| {
        Failure::msg(format!(
            "ps {} prints no PID column, which top needs",
            options.join(" ")
        ))
    })?;
    println!("{header}");
    for l in lines.filter(|l| l.split_whitespace().nth(column).is_some_and(|p| pids.contains(p))) {
        println!("{}", barge_registry::sanitize(l));
    }
    Ok(0)
}

/// How many containers there are and how many run, for `info`.
pub struct Counts {
    pub total: usize,
    pub running: usize,
}

pub fn counts(env: &Env) -> Result<Counts, Failure> {
    let rt = runtime(env)?;
    let all = rt.list().map_err(|e| fail("listing containers", e))?;
    let running = all
        .iter()
        .filter(|c| c.state().is_ok_and(|s| s.status == Status::Running))
        .count();
    Ok(Counts {
        total: all.len(),
        running,
    })
}

pub fn prune(env: &Env, a: &ContainerPruneArgs) -> Result<i32, Failure> {
    let filter = PruneFilter::parse(&a.filters, format::now())?;
    if !a.force && !super::confirm("WARNING! This will remove all stopped containers.") {
        return Ok(0);
    }
    let (reclaimed, report) = prune_containers(env, &filter)?;
    if !report.is_empty() {
        println!("{report}");
    }
    println!("Total reclaimed space: {}", format::human_size(reclaimed));
    Ok(0)
}

/// Removes the stopped containers `filter` selects: the bytes freed, and
/// docker's report of them (empty when none).
pub(super) fn prune_containers(env: &Env, filter: &PruneFilter) -> Result<(u64, String), Failure> {
    let rt = runtime(env)?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for c in rt.list().map_err(|e| fail("listing containers", e))? {
        let Ok(st) = c.state() else { continue };
        if st.status == Status::Running {
            continue;
        }
        let created = barge_oci::time::parse_rfc3339(&c.meta.created)
            .map(|t| t.0)
            .unwrap_or(0);
        if !filter.selects(&c.meta.labels, created) {
            continue;
        }
        let size = c.size();
        rt.remove(&c)
            .map_err(|e| fail(format!("removing {}", c.meta.name), e))?;
        reclaimed += size;
        deleted.push(c.meta.id.clone());
    }
    let mut report = String::new();
    if !deleted.is_empty() {
        report.push_str("Deleted Containers:\n");
        for id in &deleted {
            report.push_str(&format!("{id}\n"));
        }
    }
    Ok((reclaimed, report))
}

/// docker's container inspect object.
/// Config.Env: as configured; for records older than that field, the
/// process environment without what barge added (HOSTNAME, and HOME and
/// TERM when the image and the user did not set them cannot be told apart).
fn config_env(m: &barge_runtime::Meta) -> Vec<String> {
    match &m.config_env {
        Some(env) => env.clone(),
        None => m.env.iter().filter(|e| !e.starts_with("HOSTNAME=")).cloned().collect(),
    }
}

pub fn inspect_json(rt: &Runtime, c: &Container) -> Value {
    let st = c.state().unwrap_or_else(|_| State::created());
    let status = state_name(rt, c, &st);
    let image_size = rt.store().image_details(&c.meta.image_id).map(|d| d.size).unwrap_or(0);
    let spec = c.spec().ok();
    let resources = spec.as_ref().and_then(barge_runtime::spec::resources);
    let memory = resources.and_then(|r| r.memory().as_ref());
    let cpu = resources.and_then(|r| r.cpu().as_ref());
    let rlimits = spec
        .as_ref()
        .and_then(|s| s.process().as_ref())
        .and_then(|p| p.rlimits().clone())
        .unwrap_or_default();
    let mut out = json!({
        "Id": c.meta.id,
        "Created": c.meta.created,
        "Path": c.meta.path,
        "Args": c.meta.args,
        "State": {
            "Status": status,
            "Running": st.status == Status::Running,
            "Paused": status == "paused",
            "Restarting": status == "restarting",
            "OOMKilled": st.oom_killed,
            "Dead": false,
            "Pid": if st.status == Status::Running { st.pid.unwrap_or(0) } else { 0 },
            "ExitCode": st.exit_code.unwrap_or(0),
            "Error": st.error.clone().unwrap_or_default(),
            "StartedAt": st.started_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "FinishedAt": st.finished_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        },
        "Image": c.meta.image_id.to_string(),
        "ResolvConfPath": c.dir.join("resolv.conf").display().to_string(),
        "HostnamePath": c.dir.join("hostname").display().to_string(),
        "HostsPath": c.dir.join("hosts").display().to_string(),
        "LogPath": if c.meta.log_driver.is_json_file() { c.log_path().display().to_string() } else { String::new() },
        "Name": format!("/{}", c.meta.name),
        "RestartCount": st.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": c.meta.lower_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":"),
                "UpperDir": c.dir.join("upper").display().to_string(),
                "WorkDir": c.dir.join("work").display().to_string(),
                "MergedDir": c.dir.join("rootfs").display().to_string(),
            },
        },
        "HostConfig": {
            "NetworkMode": network_mode(c),
            "LogConfig": {"Type": c.meta.log_driver.name(), "Config": c.meta.log_opts},
            "PortBindings": port_bindings(&c.meta.ports),
            "AutoRemove": c.meta.auto_remove,
            "RestartPolicy": {"Name": c.meta.restart.name(), "MaximumRetryCount": c.meta.restart.max_retries},
            "Binds": super::volumes::binds_json(c),
            "Mounts": super::volumes::host_mounts_json(c),
            "Tmpfs": super::volumes::tmpfs_json(c),
            "CapAdd": c.meta.cap_add,
            "CapDrop": c.meta.cap_drop,
            "SecurityOpt": c.meta.security_opt,
            "ReadonlyRootfs": c.meta.read_only,
            "Init": c.meta.init,
            "Runtime": c.meta.runtime.clone().unwrap_or_else(|| "barge".into()),
            "Memory": memory.and_then(|m| m.limit()).unwrap_or(0),
            "MemorySwap": memory.and_then(|m| m.swap()).unwrap_or(0),
            "NanoCpus": cpu.and_then(|c| c.quota()).map(|q| q * 10_000).unwrap_or(0),
            "CpuShares": cpu.and_then(|c| c.shares()).unwrap_or(0),
            "PidsLimit": resources.and_then(|r| r.pids().as_ref()).map(|p| p.limit()),
            "Ulimits": rlimits.iter().filter(|r| r.typ() != PosixRlimitType::RlimitNofile || (r.soft(), r.hard()) != (1 << 20, 1 << 20)).map(|r| json!({
                "Name": r.typ().to_string().trim_start_matches("RLIMIT_").to_ascii_lowercase(),
                "Soft": if r.soft() == u64::MAX { -1 } else { r.soft() as i64 },
                "Hard": if r.hard() == u64::MAX { -1 } else { r.hard() as i64 },
            })).collect::<Vec<_>>(),
        },
        "Mounts": super::volumes::mounts_json(c),
        // docker's container Config: every field it always has; an unset
        // Cmd or Entrypoint is null, Env what the image and the user set.
        "Config": {
            "Hostname": c.meta.hostname,
            "Domainname": "",
            "User": c.meta.user,
            "AttachStdin": c.meta.open_stdin,
            "AttachStdout": true,
            "AttachStderr": true,
            "Tty": c.meta.tty,
            "OpenStdin": c.meta.open_stdin,
            "StdinOnce": c.meta.open_stdin,
            "Env": config_env(&c.meta),
            "Cmd": Some(&c.meta.cmd).filter(|v| !v.is_empty()),
            "Image": c.meta.image,
            "Volumes": super::volumes::config_volumes_json(c),
            "WorkingDir": c.meta.working_dir,
            "Entrypoint": Some(&c.meta.entrypoint).filter(|v| !v.is_empty()),
            "OnBuild": null,
            "Labels": c.meta.labels,
            "StopSignal": c.meta.stop_signal,
            "StopTimeout": c.meta.stop_timeout,
        },
        "SizeRw": c.size(),
        "SizeRootFs": c.size() + image_size,
        "NetworkSettings": network_settings(c, &st),
    });
    if let Some(h) = out["HostConfig"].as_object_mut() {
        h.extend(super::nsflags::host_config(c, spec.as_ref()));
    }
    // Both absent without a health check, as docker leaves them out.
    if let Some(h) = health::current(c, &st) {
        out["State"]["Health"] = json!(h);
    }
    if let Some(h) = &c.meta.healthcheck {
        out["Config"]["Healthcheck"] = json!(h);
    }
    if !c.meta.shell.is_empty() {
        out["Config"]["Shell"] = json!(c.meta.shell);
    }
    out
}

fn network_mode(c: &Container) -> String {
    match c.meta.network {
        Network::None => "none".into(),
        Network::Host => "host".into(),
        Network::Bridge => c.meta.network_name.clone().unwrap_or_else(|| "bridge".into()),
        Network::User => barge_runtime::network::attachment(c).map_or_else(|| "user-mode".into(), |a| a.network),
    }
}

/// `PORTS` of `docker ps`: published ports of a running container.
fn ports_text(c: &Container, st: &State) -> String {
    if st.status != Status::Running {
        return String::new();
    }
    barge_runtime::network::attachment(c)
        .map(|a| a.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// docker's `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`.
fn port_bindings(ports: &[barge_runtime::network::PortSpec]) -> Value {
    let mut m = serde_json::Map::new();
    for p in ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        let entry = json!({
            "HostIp": if p.host_ip.is_unspecified() { String::new() } else { p.host_ip.to_string() },
            "HostPort": if p.host_port == 0 { String::new() } else { p.host_port.to_string() },
        });
        if let Some(Value::Array(list)) = m.get_mut(&key) {
            list.push(entry);
        } else {
            m.insert(key, json!([entry]));
        }
    }
    Value::Object(m)
}

fn network_settings(c: &Container, st: &State) -> Value {
    let attached = (st.status == Status::Running)
        .then(|| barge_runtime::network::attachment(c))
        .flatten();
    let Some(a) = attached else {
        return json!({"IPAddress": "", "Gateway": "", "MacAddress": "", "Ports": {}, "Networks": {}});
    };
    let endpoint = json!({
        "NetworkID": a.network_id,
        "IPAddress": a.ip.to_string(),
        "IPPrefixLen": a.prefix,
        "Gateway": a.gateway.to_string(),
        "MacAddress": a.mac,
    });
    json!({
        "IPAddress": a.ip.to_string(),
        "IPPrefixLen": a.prefix,
        "Gateway": a.gateway.to_string(),
        "MacAddress": a.mac,
        "Ports": port_bindings(&a.ports),
        "Networks": { a.network.clone(): endpoint },
    })
}

/// `barge port CONTAINER [PRIVATE_PORT[/PROTO]]`.
pub fn port(env: &Env, a: &crate::args::PortArgs) -> Result<i32, Failure> {
    let rt = runtime(env)?;
    let c = find(&rt, &a.container)?;
    let st = c.state().context(String::new)?;
    let ports = match barge_runtime::network::attachment(&c) {
        Some(at) if st.status == Status::Running => at.ports,
        _ => Vec::new(),
    };
    let wanted = a.port.as_deref().map(|p| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut found = false;
    for p in &ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        match &wanted {
            Some(w) if *w == key => println!("{}:{}", p.host_ip, p.host_port),
            Some(_) => continue,
            None => println!("{key} -> {}:{}", p.host_ip, p.host_port),
        }
        found = true;
    }
    if let (Some(w), false) = (&wanted, found) {
        return Err(Failure::msg(format!(
            "No public port '{w}' published for {}",
            a.container
        )));
    }
    Ok(0)
}

fn stats_header(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID".into(),
        "Container" => "CONTAINER".into(),
        "CPUPerc" => "CPU %".into(),
        "MemUsage" => "MEM USAGE / LIMIT".into(),
        "MemPerc" => "MEM %".into(),
        "NetIO" => "NET I/O".into(),
        "BlockIO" => "BLOCK I/O".into(),
        "PIDs" => "PIDS".into(),
        other => other.to_uppercase(),
    }
}

/// `barge stats`: docker's table of CPU, memory, network, block I/O and
/// process counts, refreshed every second until interrupted (`--no-stream`: once).
pub fn stats(env: &Env, a: &StatsArgs) -> Result<i32, Failure> {
    use barge_runtime::stats::{self, Sample};
    use std::collections::HashMap;
    let rt = runtime(env)?;
    let src = match a.format.as_deref() {
        None | Some("table") => {
            "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
        }
        Some("json") => "{{json .}}",
        Some(t) => t,
    };
    let template = Template::parse(src).context(|| "--format".to_string())?;
    // Named containers stay as named; otherwise the running ones (or all), looked up again each round.
    let pick = || -> Result<Vec<(String, Container)>, Failure> {
        if a.containers.is_empty() {
            let all = rt.list().map_err(|e| fail("listing containers", e))?;
            Ok(all
                .into_iter()
                .filter(|c| a.all || c.state().is_ok_and(|s| s.status == Status::Running))
                .map(|c| (c.short_id().to_string(), c))
                .collect())
        } else {
            a.containers.iter().map(|n| Ok((n.clone(), find(&rt, n)?))).collect()
        }
    };
    let host_memory = stats::host_memory();
    let mut containers = pick()?;
    let mut previous: HashMap<String, Sample> = containers
        .iter()
        .map(|(_, c)| (c.meta.id.clone(), stats::sample(c)))
        .collect();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if a.containers.is_empty() {
            containers = pick()?;
        }
        let mut lines = Vec::new();
        if template.table {
            lines.push(template.header(&stats_header));
        }
        for (given, c) in &containers {
            let cur = stats::sample(c);
            let prev = previous.insert(c.meta.id.clone(), cur).unwrap_or(cur);
            let n = stats::numbers(&prev, &cur, host_memory);
            let v = json!({
                "BlockIO": format!("{} / {}", format::human_size(n.block_read), format::human_size(n.block_write)),
                "CPUPerc": format!("{:.2}%", n.cpu_percent),
                "Container": given,
                "ID": if a.no_trunc { c.id() } else { c.short_id() },
                "MemPerc": format!("{:.2}%", n.memory_percent),
                "MemUsage": format!("{} / {}", format::binary_size(n.memory), format::binary_size(n.memory_limit)),
                "Name": c.meta.name,
                "NetIO": format!("{} / {}", format::human_size(n.net_rx), format::human_size(n.net_tx)),
                "PIDs": n.pids.to_string(),
            });
            lines.push(template.render(&v).context(|| "--format".to_string())?);
        }
        let text = if template.table {
            tabulate(&lines)
        } else {
            lines.iter().map(|l| format!("{l}\n")).collect()
        };
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            if !a.no_stream {
                // docker's refresh: clear the screen, cursor home.
                let _ = out.write_all(b"\x1b[2J\x1b[H");
            }
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        if a.no_stream {
            return Ok(0);
        }
    }
}
