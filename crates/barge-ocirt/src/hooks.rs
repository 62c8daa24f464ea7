//! The bundle's hooks, run by the runtime as runc runs them: each gets the
//! container's state JSON on stdin; a hook that fails (or outlives its
//! `timeout`) fails `create` for `prestart` and `createRuntime`; for
//! `poststart` and `poststop` it is a warning on stderr and the rest run
//! (the runtime spec's lifecycle: the container goes on as if it had
//! succeeded). Hooks run in
//! the runtime's own namespaces: `createRuntime` and `prestart` once the
//! container's process is set up and waiting for `start` (its namespaces
//! exist, nothing of the bundle's command has run), `poststart` after
//! `start`, `poststop` on `delete`. `createContainer` and `startContainer`
//! hooks, which run inside the container, are refused (`bundle::adapt`).

use crate::{io_err, OcirtError};
use oci_spec::runtime::Hook;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `hooks` in order with `state` on stdin; the first failure stops.
pub fn run(kind: &str, hooks: &[Hook], state: &serde_json::Value) -> Result<(), OcirtError> {
    for h in hooks {
        run_one(kind, h, state)?;
    }
    Ok(())
}

/// Runs every one of `hooks` in order with `state` on stdin; a failure is
/// a warning on stderr (`poststart`, `poststop`).
pub fn run_warning(kind: &str, hooks: &[Hook], state: &serde_json::Value) {
    for h in hooks {
        if let Err(e) = run_one(kind, h, state) {
            eprintln!("barge-runtime: warning: {e}");
        }
    }
}

fn run_one(kind: &str, h: &Hook, state: &serde_json::Value) -> Result<(), OcirtError> {
    let what = format!("the {kind} hook {}", h.path().display());
    let mut cmd = Command::new(h.path());
    let args = h.args().clone().unwrap_or_default();
    if let Some(arg0) = args.first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
    }
    cmd.args(args.iter().skip(1))
        .env_clear()
        .envs(
            h.env()
                .iter()
                .flatten()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(io_err(format!("starting {what}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its state is not an error.
        let _ = stdin.write_all(state.to_string().as_bytes());
    }
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io_err(format!("waiting for {what}")))? {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(OcirtError::State(format!("{what} timed out")));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        return Err(OcirtError::State(format!("{what} failed ({status}): {}", err.trim())));
    }
    Ok(())
}
