//! Containers on bridge networks: `barge-network` with this crate's
//! containers as its [`Endpoint`]s and [`Members`].

pub use barge_network::*;

use crate::{Container, Status};
use std::path::Path;

/// The containers of a store, as a network asks about them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Containers;

impl Members for Containers {
    fn is_live(&self, dir: &Path) -> bool {
        Container::load(dir)
            .and_then(|c| c.state())
            .is_ok_and(|st| st.status != Status::Exited)
    }

    fn names(&self, dir: &Path) -> Option<(String, String)> {
        Container::load(dir).ok().map(|c| (c.meta.name, c.meta.hostname))
    }
}

fn endpoint(c: &Container) -> Endpoint<'_> {
    Endpoint {
        dir: &c.dir,
        id: c.id(),
        hostname: &c.meta.hostname,
        network: c.meta.network_name.as_deref(),
    }
}

/// Attaches a container that is about to start to its bridge network.
pub fn attach(c: &Container, network: &str, ports: &[PortSpec]) -> Result<Attachment, NetworkError> {
    barge_network::attach(&endpoint(c), &Containers, network, ports)
}

/// Detaches a container that stopped (or is removed). Does nothing if it
/// is not attached.
pub fn detach(c: &Container) {
    barge_network::detach(&endpoint(c), &Containers)
}

/// The attachment of a running container on a bridge network.
pub fn attachment(c: &Container) -> Option<Attachment> {
    barge_network::attachment(&c.dir)
}

/// Records the host ports actually bound (for `-p 80` and `-P`).
pub fn record_ports(c: &Container, ports: &[PortSpec]) -> Result<(), NetworkError> {
    barge_network::record_ports(&c.dir, ports)
}
