//! `attach` and the detach keys of `attach`, `run` and `start`.

use super::containers::{fail, find, runtime};
use super::Env;
use crate::args::AttachArgs;
use crate::failure::Failure;
use barge_runtime::attach::{parse_detach_keys, AttachOptions, Ended, DEFAULT_DETACH_KEYS};

/// The parsed `--detach-keys`, else the docker config's `detachKeys`;
/// `None` when neither is set (docker's default).
pub(super) fn detach_keys(env: &Env, keys: Option<&str>) -> Result<Option<Vec<u8>>, Failure> {
    env.format_or_default(keys, "detachKeys")
        .map(|k| parse_detach_keys(&k).map_err(|e| Failure::new("", e)))
        .transpose()
}

pub fn attach(env: &Env, a: &AttachArgs) -> Result<i32, Failure> {
    let keys = match detach_keys(env, a.detach_keys.as_deref())? {
        Some(k) => k,
        None => parse_detach_keys(DEFAULT_DETACH_KEYS).map_err(|e| Failure::new("", e))?,
    };
    let rt = runtime(env)?;
    let c = find(&rt, &a.container)?;
    let o = AttachOptions {
        stdin: !a.no_stdin,
        sig_proxy: a.sig_proxy,
        detach_keys: keys,
    };
    match rt.attach(&c, &o) {
        Ok(Ended::Exited(code)) => Ok(code),
        // As docker 20.10's client: the escape is reported as an error.
        Ok(Ended::Detached) => Err(Failure::msg("read escape sequence")),
        Err(e) => Err(fail(format!("attaching to {}", a.container), e)),
    }
}
