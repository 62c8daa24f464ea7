//! barge-runtime: barge's runner behind runc's command line, so that
//! podman, docker, containerd and CRI-O can run containers with it as
//! they run runc, crun or youki (issue 18).
//!
//! [`main`] takes the arguments of `barge-runtime` (the `barge` binary
//! invoked under that name): [`args`] parses runc's grammar, [`commands`]
//! runs `create`, `start`, `state`, `kill`, `delete`, `run`, `exec`,
//! `pause`, `resume`, `spec` and `features`; [`bundle`] checks and adapts
//! any OCI bundle whose root is a directory for `barge-runner` (a
//! `Plan::for_directory`), refusing what the runner cannot apply;
//! [`state`] is a container's record under `--root`.
//!
//! It is not for barge's own containers (`barge-runtime`, the crate, with
//! its records, overlays and monitor), and it makes no mount, namespace,
//! capability or seccomp call itself: all of that is `barge-runner`'s,
//! cgroups `barge-cgroups`'.
#![forbid(unsafe_code)]

pub mod args;
pub mod bundle;
pub mod commands;
pub mod defaults;
pub mod hooks;
pub mod state;

/// The name under which the `barge` binary answers as an OCI runtime.
pub const PROGRAM_NAME: &str = "barge-runtime";

#[derive(Debug, thiserror::Error)]
pub enum OcirtError {
    #[error("{0}")]
    Usage(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container with id {0} already exists")]
    Exists(String),
    /// The container is not in a state the command needs.
    #[error("{0}")]
    State(String),
    #[error("bundle: {0}")]
    Bundle(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Runner(#[from] barge_runner::RunnerError),
    #[error(transparent)]
    Cgroup(#[from] barge_cgroups::CgroupError),
    #[error(transparent)]
    Record(#[from] barge_records::RecordError),
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> OcirtError {
    let context = context.into();
    move |source| OcirtError::Io { context, source }
}

/// Runs `barge-runtime ARGS…` (`args` without the program name); returns
/// the exit status: runc's 1 on an error, `run`'s container status.
pub fn main(args: &[String]) -> i32 {
    let (global, command) = match args::parse(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            // The log flags may be all that parsed.
            let global = args::parse_global_only(args);
            report(&global, &e);
            return 1;
        }
    };
    match commands::run(&global, &command) {
        Ok(code) => code,
        Err(e) => {
            report(&global, &e);
            1
        }
    }
}

/// An error: on stderr, and in `--log` as runc writes it (a JSON line of
/// level, msg and time with `--log-format json`, logfmt otherwise), where
/// podman's conmon and containerd's shim read it.
fn report(global: &args::Global, e: &OcirtError) {
    let msg = e.to_string();
    let time = barge_records::now_rfc3339();
    eprintln!("barge-runtime: {msg}");
    let Some(path) = &global.log else { return };
    let line = if global.log_json {
        serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
    } else {
        format!("time={time:?} level=error msg={msg:?}")
    };
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
    if let Err(err) = appended {
        eprintln!("barge-runtime: writing the log {path}: {err}");
    }
}
