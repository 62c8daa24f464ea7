//! `barge stats`: samples of a container's usage ([`sample`]); the
//! arithmetic is `barge-cgroups`' [`barge_cgroups::stats`].

pub use barge_cgroups::stats::*;

use crate::{Container, Network, Status};
use barge_cgroups::{Cgroup, Usage};

/// Looks at a container now. A container that is not running (or runs
/// under an external runtime, whose cgroup barge does not record) has zeros.
pub fn sample(c: &Container) -> Sample {
    let st = c.state().ok();
    let running = st.as_ref().is_some_and(|s| s.status == Status::Running);
    let usage = if running {
        Cgroup::load(&c.dir).map(|cg| cg.usage()).unwrap_or_default()
    } else {
        Usage::default()
    };
    let (net_rx, net_tx) = match (running, c.meta.network, st.and_then(|s| s.pid)) {
        (true, Network::None | Network::User, Some(pid)) => {
            parse_net_dev(&std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default())
        }
        _ => (0, 0),
    };
    Sample::now(running, usage, (net_rx, net_tx))
}
