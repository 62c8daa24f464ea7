//! `update`, `system df` and `system prune`: a container's limits changed
//! in place, the store's disk use, and every prune at once.

use super::containers::{each, fail};
use super::Env;
use crate::args::UpdateArgs;
use crate::failure::Failure;
use barge_runtime::limits::Limits;
use barge_runtime::restart::RestartPolicy;
use barge_runtime::update::Update;

/// `barge update`: docker's flags; each container's name as given once done.
pub fn update(env: &Env, a: &UpdateArgs) -> Result<i32, Failure> {
    let limits = a.resources.limits();
    let restart = a
        .restart
        .as_deref()
        .map(RestartPolicy::parse)
        .transpose()
        .map_err(|e| fail("--restart", e))?;
    if limits == Limits::default() && restart.is_none() {
        return Err(Failure::msg(
            "you must provide one or more flags when using this command",
        ));
    }
    let u = Update { limits, restart };
    each(env, &a.containers, |rt, c| {
        rt.update(c, &u)
            .map_err(|e| fail(format!("Cannot update container {}", c.meta.id), e))
    })
}
