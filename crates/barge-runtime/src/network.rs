//! Containers on bridge networks: `barge-network` with this crate's
//! containers as its [`Endpoint`]s and [`Members`].

pub use barge_network::*;

use crate::{Container, Status};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The user-mode networks this process runs, by container directory: the
/// process that started a rootless container (`run` in the foreground,
/// or its monitor) keeps the tool until the container ends.
static USER_NETS: Mutex<Vec<(PathBuf, usermode::UserNet)>> = Mutex::new(Vec::new());

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

/// Gives a rootless container about to start its user-mode network,
/// kept by this process until [`detach`]; [`user_ready`] waits for it.
pub fn attach_user(c: &Container) -> Result<Attachment, NetworkError> {
    let (a, net) = barge_network::attach_user(&endpoint(c), &c.meta.ports)?;
    USER_NETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((c.dir.clone(), net));
    Ok(a)
}

/// Waits for the user-mode network [`attach_user`] started for `c` to be
/// ready (pasta starts while the container is prepared); nothing to wait
/// for on other networks.
pub fn user_ready(c: &Container) -> Result<(), NetworkError> {
    let mut nets = USER_NETS.lock().unwrap_or_else(|e| e.into_inner());
    match nets.iter_mut().find(|(dir, _)| *dir == c.dir) {
        Some((_, net)) => Ok(net.ready()?),
        None => Ok(()),
    }
}

/// Detaches a container that stopped (or is removed): its user-mode
/// network's tool stops (when this process runs it), its namespace and
/// bridge lease go. Does nothing if it is not attached.
pub fn detach(c: &Container) {
    let net = {
        let mut nets = USER_NETS.lock().unwrap_or_else(|e| e.into_inner());
        nets.iter()
            .position(|(dir, _)| *dir == c.dir)
            .map(|i| nets.swap_remove(i).1)
    };
    // The namespace goes first: pasta exits as soon as its path is removed
    // (it does not on SIGTERM inside a user namespace, which `stop` would
    // then wait out before SIGKILL).
    barge_network::detach(&endpoint(c), &Containers);
    if let Some(net) = net {
        let _ = net.stop();
    }
}

/// The attachment of a running container on a bridge network.
pub fn attachment(c: &Container) -> Option<Attachment> {
    barge_network::attachment(&c.dir)
}

/// Records the host ports actually bound (for `-p 80` and `-P`).
pub fn record_ports(c: &Container, ports: &[PortSpec]) -> Result<(), NetworkError> {
    barge_network::record_ports(&c.dir, ports)
}
