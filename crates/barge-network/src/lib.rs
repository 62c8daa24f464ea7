//! Bridge networks: docker's default `bridge` (host bridge `barge0`) and
//! user-defined ones (`br-<id>`), each a subnet on a Linux bridge.
//!
//! Records live in `<root>/networks/<name>.json`, changed under
//! `<root>/networks/.lock`. Address leases are host-wide, as bridges are:
//! `/run/barge/leases/<bridge>/<address>` names the container directory
//! holding it, so stores sharing `barge0` never hand out one address twice
//! (taken with `O_EXCL`; a lease whose container is gone or exited is taken
//! over). Starting a container attaches it
//! ([`attach`]): an address is leased, the bridge created on first use
//! (with its gateway address; its outbound NAT and filter rules are made
//! or repaired every time, see `forward_rules`), a network namespace
//! made and kept at `<container>/netns` (a bind mount, which the bundle's
//! config.json names, so runc joins the same one), a veth pair with `eth0`
//! inside, its address and default route, and `/etc/hosts` of every
//! container on a user network lists the others by name. [`detach`] undoes
//! it when the container stops or is removed; [`prune`] removes what a
//! crash left behind.
//!
//! A user without privileges gets no bridge: [`usermode`] gives the
//! container's namespace a user-mode network instead (pasta or
//! slirp4netns, outbound access and published ports).
//!
//! It is not for containers' records: a container is an [`Endpoint`] (its
//! directory, ID and hostname), and what the network must know of the
//! others (is a lease's holder alive, what are its names) it asks the
//! caller's [`Members`]. `barge-runtime` passes both. Its `unsafe` is
//! confined to what rustix does not wrap safely: `unshare(CLONE_NEWNET)`
//! for a thread, and handing slirp4netns its two pipes (`pre_exec`).

pub mod netlink;
pub mod ports;
pub mod usermode;

use barge_records::{read_json, write_json, RecordError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub use ports::PortSpec;

/// The default network's name, bridge and subnet (one docker does not use).
pub const DEFAULT_NETWORK: &str = "bridge";
pub const DEFAULT_BRIDGE: &str = "barge0";
pub const DEFAULT_SUBNET: &str = "10.222.0.0/16";

/// The lines every container's `/etc/hosts` starts with, as docker writes them.
pub const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// A container as its network sees it.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// Its directory (`<root>/containers/<id>`): the lease names it; the
    /// namespace, `network.json`, `hosts` and `resolv.conf` are kept there.
    pub dir: &'a Path,
    /// Its 64-hex-digit ID (its veth is `veth` + the first 10).
    pub id: &'a str,
    pub hostname: &'a str,
    /// The network it is configured for, if any.
    pub network: Option<&'a str>,
}

/// What the network asks about the containers whose directories its
/// leases name.
pub trait Members {
    /// Whether the container at `dir` exists and has not exited (a
    /// container being started is still "created"): its lease stands.
    fn is_live(&self, dir: &Path) -> bool;
    /// The name and hostname of the container at `dir`, if there is one.
    fn names(&self, dir: &Path) -> Option<(String, String)>;
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network {0} not found")]
    NotFound(String),
    #[error("network with name {0} already exists")]
    Exists(String),
    #[error("invalid subnet {0:?}: expected an IPv4 CIDR such as 10.1.2.0/24 (prefix 8 to 30)")]
    BadSubnet(String),
    #[error("invalid gateway {0:?}: expected an IPv4 address inside the subnet")]
    BadGateway(String),
    #[error("invalid network name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    #[error("{0} is a pre-defined network and cannot be removed")]
    Predefined(String),
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    InUse { name: String, id: String },
    #[error("no free address left in network {0}")]
    Full(String),
    #[error("subnet {subnet} of network {name} overlaps with that of network {other}")]
    Overlap {
        name: String,
        subnet: String,
        other: String,
    },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// A netlink request that failed: what barge did, the errno, the kernel's message.
    #[error(transparent)]
    Netlink(#[from] netlink::NetlinkError),
    #[error("cannot isolate network {network}: {why}; bridge networks need iptables (install it), or use --network none or host")]
    Firewall { network: String, why: String },
    /// A rootless container's user-mode network (pasta or slirp4netns).
    #[error(transparent)]
    UserNet(#[from] usermode::UserNetError),
}

fn net_io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetworkError {
    let context = context.into();
    move |source| NetworkError::Io { context, source }
}

/// A network as `<name>.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub name: String,
    pub id: String,
    pub created: String,
    /// The Linux bridge.
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    /// Containers on it find each other by name (user-defined networks).
    pub resolve_names: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// An IPv4 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet, NetworkError> {
        let bad = || NetworkError::BadSubnet(s.to_string());
        let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - u32::from(prefix));
        Ok(Subnet {
            base: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.base)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.base) & m == u32::from(other.base) & m
    }

    /// Host addresses, first to last (network and broadcast excluded).
    fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.base) + 1;
        let last = (u32::from(self.base) | !self.mask()) - 1;
        (first..=last).map(Ipv4Addr::from)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// How a container is attached, kept in `<container>/network.json` while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub network_id: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// The host end of the veth pair.
    pub veth: String,
    /// Published ports, with the host ports actually bound.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
}

/// The networks of a store root.
#[derive(Debug, Clone)]
pub struct Networks {
    dir: PathBuf,
}

impl Networks {
    pub fn new(root: &Path) -> Networks {
        Networks {
            dir: root.join("networks"),
        }
    }

    /// The networks of the store a container directory is in (`<root>/containers/<id>`).
    pub fn of(container_dir: &Path) -> Networks {
        let root = container_dir.parent().and_then(Path::parent).unwrap_or(Path::new("/"));
        Networks::new(root)
    }

    fn lock(&self) -> Result<barge_store::LockGuard, NetworkError> {
        std::fs::create_dir_all(&self.dir).map_err(net_io(format!("creating {}", self.dir.display())))?;
        let path = self.dir.join(".lock");
        barge_store::fsutil::lock(&path, barge_store::fsutil::LockKind::Exclusive)
            .map_err(net_io(format!("locking {}", path.display())))
    }

    fn config_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn default_config() -> NetworkConfig {
        NetworkConfig {
            name: DEFAULT_NETWORK.into(),
            id: random_id(),
            created: barge_records::now_rfc3339(),
            bridge: DEFAULT_BRIDGE.into(),
            subnet: DEFAULT_SUBNET.into(),
            gateway: "10.222.0.1".into(),
            resolve_names: false,
            labels: BTreeMap::new(),
        }
    }

    /// Sets the default network's bridge device and its address (docker's
    /// daemon.json `bridge` and `bip`, such as `10.222.0.1/16`); `None`
    /// means barge's defaults. A change to a bridge without running
    /// containers takes effect at the next start (the old device goes);
    /// with containers running on it (as `members` says), it is refused.
    pub fn configure_default(
        &self,
        bridge: Option<&str>,
        bip: Option<&str>,
        members: &dyn Members,
    ) -> Result<(), NetworkError> {
        let (gateway, subnet) = match bip {
            Some(b) => {
                let subnet = Subnet::parse(b)?;
                let ip: Ipv4Addr = b
                    .split('/')
                    .next()
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| NetworkError::BadGateway(b.to_string()))?;
                if !subnet.hosts().any(|h| h == ip) {
                    return Err(NetworkError::BadGateway(b.to_string()));
                }
                (ip.to_string(), subnet.to_string())
            }
            None => ("10.222.0.1".to_string(), DEFAULT_SUBNET.to_string()),
        };
        let bridge = bridge.unwrap_or(DEFAULT_BRIDGE).to_string();
        if bridge.is_empty() || bridge.len() > 15 || bridge.contains(['/', ' ']) {
            return Err(NetworkError::BadName(bridge));
        }
        let _lock = self.lock()?;
        let current = self.load_locked(DEFAULT_NETWORK)?;
        if (
            current.bridge.as_str(),
            current.subnet.as_str(),
            current.gateway.as_str(),
        ) == (bridge.as_str(), subnet.as_str(), gateway.as_str())
        {
            return Ok(());
        }
        // This store's containers hold it: wait until they stop.
        let containers = self.dir.with_file_name("containers");
        if self
            .leases(&current)
            .values()
            .any(|id| members.is_live(&containers.join(id)))
        {
            return Err(NetworkError::InUse {
                name: current.name,
                id: current.id,
            });
        }
        // Another store's containers may still use the old device.
        if !read_leases(&current.bridge).values().any(|dir| members.is_live(dir)) {
            delete_link_named(&current.bridge);
            remove_firewall(&current);
        }
        let changed = NetworkConfig {
            bridge,
            subnet,
            gateway,
            ..current
        };
        write_json(&self.config_path(DEFAULT_NETWORK), &changed).map_err(to_net)
    }

    /// Every network, the default one first (recorded on first sight).
    pub fn list(&self) -> Result<Vec<NetworkConfig>, NetworkError> {
        let _lock = self.lock()?;
        self.list_locked()
    }

    fn list_locked(&self) -> Result<Vec<NetworkConfig>, NetworkError> {
        let default = self.load_locked(DEFAULT_NETWORK)?;
        let mut out = vec![default];
        let rd = std::fs::read_dir(&self.dir).map_err(net_io(format!("listing {}", self.dir.display())))?;
        let mut others = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = name.strip_suffix(".json") {
                if n != DEFAULT_NETWORK && !n.starts_with('.') {
                    if let Ok(c) = read_json::<NetworkConfig>(&e.path()) {
                        others.push(c);
                    }
                }
            }
        }
        others.sort_by(|a, b| a.created.cmp(&b.created));
        out.extend(others);
        Ok(out)
    }

    fn load_locked(&self, name: &str) -> Result<NetworkConfig, NetworkError> {
        let path = self.config_path(name);
        if !path.is_file() {
            if name == DEFAULT_NETWORK {
                let c = Networks::default_config();
                write_json(&path, &c).map_err(to_net)?;
                return Ok(c);
            }
            return Err(NetworkError::NotFound(name.to_string()));
        }
        read_json(&path).map_err(to_net)
    }

    /// A network by name, full ID or unique ID prefix.
    pub fn find(&self, name_or_id: &str) -> Result<NetworkConfig, NetworkError> {
        let all = self.list()?;
        if let Some(n) = all.iter().find(|n| n.name == name_or_id || n.id == name_or_id) {
            return Ok(n.clone());
        }
        let mut m = all
            .into_iter()
            .filter(|n| n.id.starts_with(name_or_id) && name_or_id.len() >= 3);
        match (m.next(), m.next()) {
            (Some(n), None) => Ok(n),
            _ => Err(NetworkError::NotFound(name_or_id.to_string())),
        }
    }

    /// `barge network create`.
    pub fn create(
        &self,
        name: &str,
        subnet: Option<&str>,
        gateway: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<NetworkConfig, NetworkError> {
        if !barge_records::valid_name(name) || matches!(name, "host" | "none") {
            return Err(NetworkError::BadName(name.to_string()));
        }
        let _lock = self.lock()?;
        let existing = self.list_locked()?;
        if existing.iter().any(|n| n.name == name) {
            return Err(NetworkError::Exists(name.to_string()));
        }
        let mut taken: Vec<(Subnet, String)> = existing
            .iter()
            .filter_map(|n| Subnet::parse(&n.subnet).ok().map(|s| (s, n.name.clone())))
            .collect();
        let mine = taken.len();
        let subnet = match subnet {
            Some(s) => {
                let s = Subnet::parse(s)?;
                if let Some((_, other)) = taken[..mine].iter().find(|(t, _)| t.overlaps(&s)) {
                    return Err(NetworkError::Overlap {
                        name: name.to_string(),
                        subnet: s.to_string(),
                        other: other.clone(),
                    });
                }
                s
            }
            None => {
                // Nor one the host uses already (another store's bridge, a VPN).
                taken.extend(host_addresses().into_iter().map(|(ip, prefix, dev)| {
                    (
                        Subnet {
                            base: Ipv4Addr::from(u32::from(ip) & (u32::MAX << (32 - u32::from(prefix.max(1))))),
                            prefix: prefix.max(1),
                        },
                        dev,
                    )
                }));
                (0..=255u8)
                    .map(|n| Subnet {
                        base: Ipv4Addr::new(10, 223, n, 0),
                        prefix: 24,
                    })
                    .find(|s| !taken.iter().any(|(t, _)| t.overlaps(s)))
                    .ok_or_else(|| NetworkError::Full("the default pool 10.223.0.0/16".into()))?
            }
        };
        let gateway = match gateway {
            Some(g) => {
                let ip: Ipv4Addr = g.parse().map_err(|_| NetworkError::BadGateway(g.to_string()))?;
                if !subnet.contains(ip) || !subnet.hosts().any(|h| h == ip) {
                    return Err(NetworkError::BadGateway(g.to_string()));
                }
                ip
            }
            None => Ipv4Addr::from(u32::from(subnet.base) + 1),
        };
        let id = random_id();
        let config = NetworkConfig {
            name: name.to_string(),
            bridge: format!("br-{}", &id[..12]),
            id,
            created: barge_records::now_rfc3339(),
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            resolve_names: true,
            labels,
        };
        write_json(&self.config_path(name), &config).map_err(to_net)?;
        Ok(config)
    }

    /// The containers of this store holding an address on `n`: address → ID.
    pub fn leases(&self, n: &NetworkConfig) -> BTreeMap<Ipv4Addr, String> {
        let containers = self.dir.with_file_name("containers");
        read_leases(&n.bridge)
            .into_iter()
            .filter_map(|(ip, dir)| {
                (dir.parent() == Some(containers.as_path()))
                    .then(|| dir.file_name().map(|f| (ip, f.to_string_lossy().into_owned())))
                    .flatten()
            })
            .collect()
    }

    /// `barge network rm`: refused while containers are attached (live, as
    /// `members` says).
    pub fn remove(&self, name_or_id: &str, members: &dyn Members) -> Result<NetworkConfig, NetworkError> {
        let n = self.find(name_or_id)?;
        if n.name == DEFAULT_NETWORK {
            return Err(NetworkError::Predefined(n.name));
        }
        let _lock = self.lock()?;
        if read_leases(&n.bridge).values().any(|dir| members.is_live(dir)) {
            return Err(NetworkError::InUse { name: n.name, id: n.id });
        }
        delete_link_named(&n.bridge);
        remove_firewall(&n);
        let _ = std::fs::remove_dir_all(lease_dir(&n.bridge));
        std::fs::remove_file(self.config_path(&n.name)).map_err(net_io(format!("removing network {}", n.name)))?;
        Ok(n)
    }
}

/// The host's IPv4 addresses: address, prefix length, interface (none
/// if netlink cannot say).
fn host_addresses() -> Vec<(Ipv4Addr, u8, String)> {
    netlink::Netlink::open()
        .and_then(|mut nl| nl.ipv4_addresses())
        .unwrap_or_default()
}

fn to_net(e: RecordError) -> NetworkError {
    match e {
        RecordError::Io { context, source } => NetworkError::Io { context, source },
        other => NetworkError::Io {
            context: "network records".into(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

fn random_id() -> String {
    barge_records::new_id()
}

/// Whether this process can make bridges: root in the initial user
/// namespace (root of a user namespace has no say over the host's links).
/// Elsewhere the default network is `none`.
pub fn can_make_bridges() -> bool {
    barge_store::fsutil::host_root()
}

/// Where the host's address leases of a bridge are.
fn lease_dir(bridge: &str) -> PathBuf {
    Path::new("/run/barge/leases").join(bridge)
}

/// Every lease on a bridge: address → container directory.
fn read_leases(bridge: &str) -> BTreeMap<Ipv4Addr, PathBuf> {
    let mut out = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(lease_dir(bridge)) {
        for e in rd.flatten() {
            let ip = e.file_name().to_str().and_then(|n| n.parse::<Ipv4Addr>().ok());
            if let (Some(ip), Ok(dir)) = (ip, std::fs::read_to_string(e.path())) {
                out.insert(ip, PathBuf::from(dir));
            }
        }
    }
    out
}

/// Takes the first free address of `subnet` for the container at `dir`.
fn take_lease(
    n: &NetworkConfig,
    subnet: Subnet,
    gateway: Ipv4Addr,
    dir: &Path,
    members: &dyn Members,
) -> Result<Ipv4Addr, NetworkError> {
    let leases = lease_dir(&n.bridge);
    std::fs::create_dir_all(&leases).map_err(net_io(format!("creating {}", leases.display())))?;
    let ours = dir.as_os_str().as_encoded_bytes();
    for (ip, holder) in read_leases(&n.bridge) {
        if holder.as_os_str().as_encoded_bytes() == ours {
            let _ = std::fs::remove_file(leases.join(ip.to_string()));
        }
    }
    for ip in subnet.hosts().filter(|h| *h != gateway) {
        let path = leases.join(ip.to_string());
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(ours)
                        .map_err(net_io(format!("writing {}", path.display())))?;
                    return Ok(ip);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    if lease_held(&holder, members) {
                        break;
                    }
                    // Stale: its container is gone or exited without detaching.
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(net_io(format!("creating {}", path.display()))(e)),
            }
        }
    }
    Err(NetworkError::Full(n.name.clone()))
}

/// A lease's holder, as its file says: a container directory, or
/// [`VETH_HOLDER`] and the name of a removed container's veth.
fn lease_held(holder: &str, members: &dyn Members) -> bool {
    match holder.strip_prefix(VETH_HOLDER) {
        // Unknown (no netlink socket) counts as held.
        Some(veth) => netlink::Netlink::open()
            .and_then(|mut nl| nl.link(veth))
            .map_or(true, |link| link.is_some()),
        None => holder.is_empty() || members.is_live(Path::new(holder)),
    }
}

/// The holder of an address whose container is gone but whose veth the
/// kernel has yet to delete with the container's network namespace: the
/// address is not leased again while the veth (with that address at its
/// other end) is on the bridge.
const VETH_HOLDER: &str = "veth:";

/// Hands the container's lease on `bridge` to its veth `veth` ([`VETH_HOLDER`]).
fn release_to_veth(bridge: &str, dir: &Path, veth: &str) {
    for (ip, holder) in read_leases(bridge) {
        if holder == dir {
            let _ = std::fs::write(lease_dir(bridge).join(ip.to_string()), format!("{VETH_HOLDER}{veth}"));
        }
    }
}

/// Gives up the container's lease on `bridge`, if it holds one.
fn release(bridge: &str, dir: &Path) {
    for (ip, holder) in read_leases(bridge) {
        if holder == dir {
            let _ = std::fs::remove_file(lease_dir(bridge).join(ip.to_string()));
        }
    }
}

/// The network namespace file of a container (a bind mount while attached).
pub fn netns_path(dir: &Path) -> PathBuf {
    dir.join("netns")
}

fn attachment_path(dir: &Path) -> PathBuf {
    dir.join("network.json")
}

/// The attachment of a running container (its directory) on a bridge network.
pub fn attachment(container_dir: &Path) -> Option<Attachment> {
    read_json(&attachment_path(container_dir)).ok()
}

/// Runs `f` on a thread of its own in the network namespace `ns`.
fn in_netns<T: Send>(ns: &OwnedFd, f: impl FnOnce() -> Result<T, NetworkError> + Send) -> Result<T, NetworkError> {
    let ns = ns.as_fd();
    let entering = "entering the container's network namespace";
    std::thread::scope(|s| {
        s.spawn(move || {
            // Moves only this thread.
            rustix::thread::move_into_link_name_space(ns, Some(rustix::thread::LinkNameSpaceType::Network))
                .map_err(|e| net_io(entering)(e.into()))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(net_io("configuring the container's network")(std::io::Error::other(
                "the network setup thread panicked",
            )))
        })
    })
}

/// A new network namespace, kept alive by a bind mount on `path`.
fn new_netns(path: &Path) -> std::io::Result<OwnedFd> {
    std::fs::write(path, b"")?;
    std::thread::scope(|s| {
        s.spawn(|| -> std::io::Result<OwnedFd> {
            // SAFETY: CLONE_NEWNET moves only this thread into a new network
            // namespace; no descriptor table is unshared (the hazard of unshare_unsafe).
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }?;
            rustix::mount::mount_bind("/proc/thread-self/ns/net", path)?;
            Ok(rustix::fs::open(
                path,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the network setup thread panicked")))
    })
}

/// Unmounts and removes a namespace file; whether it was mounted.
fn remove_netns(path: &Path) -> bool {
    let unmounted = rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH).is_ok();
    let _ = std::fs::remove_file(path);
    unmounted
}

/// The bridge of `n`, created with its gateway address on first use, and its firewall rules.
fn ensure_bridge(nl: &mut netlink::Netlink, n: &NetworkConfig, subnet: Subnet) -> Result<netlink::Link, NetworkError> {
    let of_network = |e: netlink::NetlinkError| e.within(&format!("of network {}", n.name));
    nl.add_bridge(&n.bridge).map_err(of_network)?;
    let bridge = nl.must_link(&n.bridge).map_err(of_network)?;
    let gateway: Ipv4Addr = n
        .gateway
        .parse()
        .map_err(|_| NetworkError::BadGateway(n.gateway.clone()))?;
    nl.add_address(&bridge, gateway, subnet.prefix).map_err(of_network)?;
    nl.set_up(&bridge).map_err(of_network)?;
    setup_firewall(n)?;
    Ok(bridge)
}

/// barge's filter chains. FORWARD jumps to `BARGE-USER` (the host's own
/// rules for containers, as docker's `DOCKER-USER`: made empty once, never
/// flushed) and then to `BARGE-FORWARD`; both jumps are appended, so the
/// host's own FORWARD rules keep coming first.
const USER_CHAIN: &str = "BARGE-USER";
const FORWARD_CHAIN: &str = "BARGE-FORWARD";
const ISOLATION_CHAIN: &str = "BARGE-ISOLATION";

fn words(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A bridge's rules in `BARGE-FORWARD`, in order: leaving for another
/// barge bridge goes to `BARGE-ISOLATION` (dropped there); coming in only
/// as replies; its containers reach each other and the outside; nothing
/// else comes in (another bridge, the LAN, other host interfaces).
/// Published ports are unaffected: the monitor connects from the host.
fn forward_rules(bridge: &str) -> Vec<Vec<String>> {
    vec![
        words(&["-i", bridge, "!", "-o", bridge, "-j", ISOLATION_CHAIN]),
        words(&[
            "-o",
            bridge,
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            "ACCEPT",
        ]),
        words(&["-i", bridge, "-j", "ACCEPT"]),
        words(&["-o", bridge, "-j", "DROP"]),
    ]
}

/// A bridge's rule in `BARGE-ISOLATION`: nothing from another bridge enters it.
fn isolation_rule(bridge: &str) -> Vec<String> {
    words(&["-o", bridge, "-j", "DROP"])
}

fn masquerade_rule(n: &NetworkConfig) -> Vec<String> {
    words(&["POSTROUTING", "-s", &n.subnet, "!", "-o", &n.bridge, "-j", "MASQUERADE"])
}

/// What older barge versions put at the head of FORWARD for a bridge.
fn legacy_rules(bridge: &str) -> [Vec<String>; 2] {
    [
        words(&["-i", bridge, "-j", "ACCEPT"]),
        words(&["-o", bridge, "-j", "ACCEPT"]),
    ]
}

/// Deletes an older barge's FORWARD accepts for `bridge` that `lines` show.
fn remove_legacy(lines: &[String], bridge: &str) {
    for rule in legacy_rules(bridge) {
        if lines.contains(&spec_line("FORWARD", &rule)) {
            let rule = [vec!["FORWARD".to_string()], rule].concat();
            while let Ok(true) = iptables("filter", "-D", &rule) {}
        }
    }
}

/// Host-wide: stores share bridges and the firewall.
fn firewall_lock() -> std::io::Result<barge_store::LockGuard> {
    std::fs::create_dir_all("/run/barge")?;
    barge_store::fsutil::lock(
        Path::new("/run/barge/firewall.lock"),
        barge_store::fsutil::LockKind::Exclusive,
    )
}

/// The filter table as `iptables -S` prints it, one rule a line (`None`
/// without iptables).
fn filter_rules() -> Option<Vec<String>> {
    let out = std::process::Command::new("iptables")
        .args(["-w", "-t", "filter", "-S"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

/// `-A CHAIN RULE…` as `iptables -S` prints it.
fn spec_line(chain: &str, rule: &[String]) -> String {
    format!("-A {chain} {}", rule.join(" "))
}

/// The rules of `chain` naming `bridge` (as `-i` or `-o`), without `-A CHAIN`.
fn rules_naming(lines: &[String], chain: &str, bridge: &str) -> Vec<Vec<String>> {
    lines
        .iter()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() > 2
                && w[0] == "-A"
                && w[1] == chain
                && w.windows(2).any(|p| matches!(p[0], "-i" | "-o") && p[1] == bridge))
            .then(|| words(&w[2..]))
        })
        .collect()
}

/// Outbound NAT and the bridge's filter rules (see [`forward_rules`]),
/// with iptables; made or repaired at every attach, so a bridge made by an
/// older barge, or a firewall reloaded since, gets them. It fails closed:
/// without iptables, or when a rule cannot be made, no container starts on
/// the bridge (it would be reachable from other networks and the LAN).
fn setup_firewall(n: &NetworkConfig) -> Result<(), NetworkError> {
    let refuse = |why: &str| NetworkError::Firewall {
        network: n.name.clone(),
        why: why.to_string(),
    };
    let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
    let _lock = firewall_lock();
    let Some(lines) = filter_rules() else {
        return Err(refuse("iptables is not installed"));
    };
    let has = |line: &str| lines.iter().any(|l| l == line);
    for chain in [USER_CHAIN, FORWARD_CHAIN, ISOLATION_CHAIN] {
        if !has(&format!("-N {chain}")) {
            must(iptables("filter", "-N", &[chain.to_string()])).map_err(|e| refuse(&e))?;
        }
    }
    // FORWARD: BARGE-USER, then BARGE-FORWARD, after whatever the host has.
    let jump = |chain: &str| words(&["FORWARD", "-j", chain]);
    let at = |chain: &str| lines.iter().position(|l| *l == format!("-A FORWARD -j {chain}"));
    match (at(USER_CHAIN), at(FORWARD_CHAIN)) {
        (Some(u), Some(f)) if u < f => {}
        (user, forward) => {
            if forward.is_some() {
                while let Ok(true) = iptables("filter", "-D", &jump(FORWARD_CHAIN)) {}
            }
            if user.is_none() {
                must(iptables("filter", "-A", &jump(USER_CHAIN))).map_err(|e| refuse(&e))?;
            }
            must(iptables("filter", "-A", &jump(FORWARD_CHAIN))).map_err(|e| refuse(&e))?;
        }
    }
    remove_legacy(&lines, &n.bridge);
    // The bridge's rules, exactly and in order; else made again.
    let wanted = forward_rules(&n.bridge);
    let present = rules_naming(&lines, FORWARD_CHAIN, &n.bridge);
    if present != wanted {
        for rule in present {
            delete_rule(FORWARD_CHAIN, rule);
        }
        for rule in wanted {
            append_rule(FORWARD_CHAIN, rule).map_err(|e| refuse(&e))?;
        }
    }
    let isolation = isolation_rule(&n.bridge);
    if !has(&spec_line(ISOLATION_CHAIN, &isolation)) {
        append_rule(ISOLATION_CHAIN, isolation).map_err(|e| refuse(&e))?;
    }
    let nat = masquerade_rule(n);
    if let Ok(false) = iptables("nat", "-C", &nat) {
        must(iptables("nat", "-A", &nat)).map_err(|e| refuse(&e))?;
    }
    Ok(())
}

/// An iptables change that must have happened, or why not.
fn must(done: std::io::Result<bool>) -> Result<(), String> {
    match done {
        Ok(true) => Ok(()),
        Ok(false) => Err("iptables refused a rule".into()),
        Err(e) => Err(format!("running iptables: {e}")),
    }
}

fn append_rule(chain: &str, rule: Vec<String>) -> Result<(), String> {
    must(iptables("filter", "-A", &[vec![chain.to_string()], rule].concat()))
}

fn delete_rule(chain: &str, rule: Vec<String>) {
    let _ = iptables("filter", "-D", &[vec![chain.to_string()], rule].concat());
}

/// Removes the bridge's rules, exactly: its own in barge's chains, its NAT
/// rule, and an older barge's. The chains, their jumps and `BARGE-USER`
/// stay (docker's chains stay too).
fn remove_firewall(n: &NetworkConfig) {
    let _lock = firewall_lock();
    let Some(lines) = filter_rules() else { return };
    for chain in [FORWARD_CHAIN, ISOLATION_CHAIN] {
        for rule in rules_naming(&lines, chain, &n.bridge) {
            delete_rule(chain, rule);
        }
    }
    remove_legacy(&lines, &n.bridge);
    while let Ok(true) = iptables("nat", "-D", &masquerade_rule(n)) {}
}

/// Runs `iptables -w -t TABLE OP RULE…`; whether it succeeded.
fn iptables(table: &str, op: &str, rule: &[String]) -> std::io::Result<bool> {
    std::process::Command::new("iptables")
        .args(["-w", "-t", table, op])
        .args(rule)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
}

/// Deletes a link (a bridge, a veth) by name, if it exists.
fn delete_link_named(name: &str) {
    let Ok(mut nl) = netlink::Netlink::open() else { return };
    if let Ok(Some(link)) = nl.link(name) {
        let _ = nl.delete_link(&link);
    }
}

/// docker's MAC for an address: 02:42 and the four octets.
fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Attaches a container that is about to start to its bridge network.
pub fn attach(
    c: &Endpoint,
    members: &dyn Members,
    network: &str,
    ports: &[PortSpec],
) -> Result<Attachment, NetworkError> {
    let nets = Networks::of(c.dir);
    let _lock = nets.lock()?;
    let n = nets.load_locked(network)?;
    let subnet = Subnet::parse(&n.subnet)?;
    let gateway: Ipv4Addr = n
        .gateway
        .parse()
        .map_err(|_| NetworkError::BadGateway(n.gateway.clone()))?;
    // A restart: the veth of the container's last run, if the kernel has
    // not deleted it yet, is deleted below, before the new pair is made.
    release(&n.bridge, Path::new(&format!("{VETH_HOLDER}{}", veth_name(c.id))));
    let ip = take_lease(&n, subnet, gateway, c.dir, members)?;

    let attached = (|| {
        let mut nl = netlink::Netlink::open()?;
        let bridge = ensure_bridge(&mut nl, &n, subnet)?;
        let ns_path = netns_path(c.dir);
        remove_netns(&ns_path);
        let ns = new_netns(&ns_path).map_err(net_io("creating the container's network namespace"))?;
        let veth = veth_name(c.id);
        if let Some(old) = nl.link(&veth)? {
            let _ = nl.delete_link(&old);
        }
        let mac = mac_for(ip);
        nl.add_veth(&veth, "eth0", mac, ns.as_raw_fd())?;
        let host_end = nl.must_link(&veth)?;
        nl.set_master(&host_end, &bridge)?;
        nl.set_up(&host_end)?;
        in_netns(&ns, || {
            let in_container = |e: netlink::NetlinkError| e.within("in the container");
            let mut inner = netlink::Netlink::open().map_err(in_container)?;
            let lo = inner.must_link("lo").map_err(in_container)?;
            inner.set_up(&lo).map_err(in_container)?;
            let eth0 = inner.must_link("eth0").map_err(in_container)?;
            inner.add_address(&eth0, ip, subnet.prefix).map_err(in_container)?;
            inner.set_up(&eth0).map_err(in_container)?;
            inner.add_default_route(&eth0, gateway).map_err(in_container)?;
            Ok(())
        })?;
        Ok(Attachment {
            network: n.name.clone(),
            network_id: n.id.clone(),
            ip,
            prefix: subnet.prefix,
            gateway,
            mac: mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
            veth,
            ports: ports.to_vec(),
        })
    })();
    match attached {
        Ok(a) => {
            write_json(&attachment_path(c.dir), &a).map_err(to_net)?;
            write_resolv_conf(c.dir);
            refresh_hosts(&nets, &n, c, members);
            Ok(a)
        }
        Err(e) => {
            release(&n.bridge, c.dir);
            undo(c);
            // Where bridges cannot be made (no CAP_NET_ADMIN, no bridge
            // module), say how to run without one.
            let hint = "(--network host or --network none needs no bridge)";
            Err(match e {
                NetworkError::Io { context, source } => NetworkError::Io {
                    context: format!("{context} {hint}"),
                    source,
                },
                NetworkError::Netlink(e) => NetworkError::Netlink(e.within(hint)),
                other => other,
            })
        }
    }
}

/// Gives a rootless container that is about to start a user-mode network
/// (`usermode`): a network namespace kept at its `netns` (owned by the
/// caller's user namespace), `lo` up, `eth0` and the published ports
/// from pasta or slirp4netns, `resolv.conf` naming its DNS forwarder.
/// The returned [`usermode::UserNet`] carries the traffic: the tool is
/// started, not yet ready, so that the caller prepares the container
/// meanwhile and calls [`usermode::UserNet::ready`] before starting it;
/// it keeps it while the container runs and stops it when it ends
/// ([`detach`] removes the namespace, which ends pasta too).
pub fn attach_user(c: &Endpoint, ports: &[PortSpec]) -> Result<(Attachment, usermode::UserNet), NetworkError> {
    let ns_path = netns_path(c.dir);
    remove_netns(&ns_path);
    let attached = (|| {
        let ns = new_netns(&ns_path).map_err(net_io("creating the container's network namespace"))?;
        in_netns(&ns, || {
            let in_container = |e: netlink::NetlinkError| e.within("in the container");
            let mut inner = netlink::Netlink::open().map_err(in_container)?;
            let lo = inner.must_link("lo").map_err(in_container)?;
            inner.set_up(&lo).map_err(in_container)?;
            Ok(())
        })?;
        let ns = usermode::Namespace::Path {
            netns: &ns_path,
            userns: None,
        };
        let net = usermode::launch(ns, &usermode::Config::new(ports.to_vec()))?;
        let a = Attachment {
            network: net.tool().to_string(),
            network_id: String::new(),
            ip: usermode::CONTAINER,
            prefix: usermode::PREFIX,
            gateway: usermode::GATEWAY,
            mac: String::new(),
            veth: String::new(),
            ports: net.ports().to_vec(),
        };
        write_json(&attachment_path(c.dir), &a).map_err(to_net)?;
        Ok((a, net))
    })();
    match attached {
        Ok(done) => {
            write_resolv(c.dir, &format!("nameserver {}\n", usermode::DNS));
            Ok(done)
        }
        Err(e) => {
            undo(c);
            Err(e)
        }
    }
}

/// Records the host ports actually bound (for `-p 80` and `-P`).
pub fn record_ports(container_dir: &Path, ports: &[PortSpec]) -> Result<(), NetworkError> {
    let Some(mut a) = attachment(container_dir) else {
        return Ok(());
    };
    a.ports = ports.to_vec();
    write_json(&attachment_path(container_dir), &a).map_err(to_net)
}

/// The host end of a container's veth pair: `veth` and 10 digits of its ID.
fn veth_name(id: &str) -> String {
    format!("veth{}", id.get(..10).unwrap_or(id))
}

fn undo(c: &Endpoint) {
    undo_leaving_veth(c, false);
}

/// [`undo`]; with `leave_veth`, a veth whose namespace this unmounted is
/// not deleted but left to the kernel, which deletes it with the namespace
/// once nothing holds that (its container has exited), off the caller's
/// path: deleting a link waits for an expedited RCU grace period and an
/// `rcu_barrier` under rtnl (2-16 ms). Returns the veth so left.
fn undo_leaving_veth(c: &Endpoint, leave_veth: bool) -> Option<String> {
    let unmounted = remove_netns(&netns_path(c.dir));
    let left = match read_json::<Attachment>(&attachment_path(c.dir)) {
        // A user-mode network has no veth.
        Ok(a) if a.veth.is_empty() => None,
        Ok(a) if leave_veth && unmounted => Some(a.veth),
        Ok(a) => {
            delete_link_named(&a.veth);
            None
        }
        Err(_) => {
            delete_link_named(&veth_name(c.id));
            None
        }
    };
    let _ = std::fs::remove_file(attachment_path(c.dir));
    left
}

/// Detaches a container that stopped (or is removed). Does nothing if it
/// is not attached. Its veth goes with its namespace, asynchronously; its
/// address stays taken until the veth is gone ([`VETH_HOLDER`]).
pub fn detach(c: &Endpoint, members: &dyn Members) {
    let nets = Networks::of(c.dir);
    let Ok(_lock) = nets.lock() else { return };
    let mut names: Vec<String> = attachment(c.dir).map(|a| a.network).into_iter().collect();
    names.extend(c.network.map(str::to_string));
    names.dedup();
    let veth = undo_leaving_veth(c, true);
    for name in names {
        if let Ok(n) = nets.load_locked(&name) {
            match &veth {
                Some(veth) => release_to_veth(&n.bridge, c.dir, veth),
                None => release(&n.bridge, c.dir),
            }
            refresh_hosts(&nets, &n, c, members);
        }
    }
}

/// A container's `resolv.conf` made from `--dns`, `--dns-search` or
/// `--dns-option` at create: no network setup rewrites it.
pub const RESOLV_PINNED: &str = "resolv.conf.pinned";

/// `--add-host` lines, appended to whatever `/etc/hosts` a network writes.
pub const HOSTS_EXTRA: &str = "hosts.extra";

/// Rewrites `resolv.conf` unless the user gave its content.
fn write_resolv(dir: &Path, text: &str) {
    if !dir.join(RESOLV_PINNED).exists() {
        overwrite_in_place(&dir.join("resolv.conf"), text.as_bytes());
    }
}

/// Writes `hosts` with the container's `--add-host` lines after `text`.
fn write_hosts(dir: &Path, text: &str) {
    let extra = std::fs::read_to_string(dir.join(HOSTS_EXTRA)).unwrap_or_default();
    overwrite_in_place(&dir.join("hosts"), format!("{text}{extra}").as_bytes());
}

/// docker's rule: the host's resolv.conf, unless it names only loopback
/// servers (a local resolver the container cannot reach): then public ones.
fn write_resolv_conf(dir: &Path) {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let kept: Vec<&str> = host
        .lines()
        .filter(|l| {
            !l.split_whitespace()
                .nth(1)
                .is_some_and(|a| l.starts_with("nameserver") && (a.starts_with("127.") || a == "::1"))
        })
        .collect();
    let mut out = kept.join("\n");
    if !kept.iter().any(|l| l.starts_with("nameserver")) {
        out.push_str("\nnameserver 8.8.8.8\nnameserver 8.8.4.4");
    }
    out.push('\n');
    write_resolv(dir, out.trim_start());
}

/// Rewrites a bind-mounted file without replacing its inode (a rename
/// would leave the container looking at the old one).
fn overwrite_in_place(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).truncate(true).open(path) {
        let _ = f.write_all(bytes);
    }
}

/// `/etc/hosts` of `changed` and, on user networks, of every container of
/// the store on `n`: its own name, and there the others' names and hostnames.
fn refresh_hosts(nets: &Networks, n: &NetworkConfig, changed: &Endpoint, members: &dyn Members) {
    let leases = nets.leases(n);
    let hosts = |ip: &Ipv4Addr, hostname: &str| format!("{HOSTS_HEADER}{ip}\t{hostname}\n");
    if !n.resolve_names {
        // Only the container's own name: no other container is read.
        if let Some((ip, _)) = leases.iter().find(|(_, id)| id.as_str() == changed.id) {
            write_hosts(changed.dir, &hosts(ip, changed.hostname));
        }
        return;
    }
    let containers = changed.dir.parent().unwrap_or(Path::new("/"));
    let members: Vec<(Ipv4Addr, String, (String, String))> = leases
        .into_iter()
        .filter_map(|(ip, id)| members.names(&containers.join(&id)).map(|names| (ip, id, names)))
        .collect();
    for (ip, id, (_, hostname)) in &members {
        let mut text = hosts(ip, hostname);
        for (other_ip, _, (name, hostname)) in members.iter().filter(|(_, o, _)| o != id) {
            text.push_str(&format!("{other_ip}\t{name} {hostname}\n"));
        }
        write_hosts(&containers.join(id), &text);
    }
}

/// What [`prune`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub networks: Vec<String>,
    /// Leftovers of containers that are not running: leases, veths, namespaces.
    pub leftovers: Vec<String>,
}

/// `barge network prune`: user networks without containers, and what a
/// crash left behind (leases, namespace mounts and veths of containers that
/// are not running). `running` says whether a container ID of this store
/// is running; `members` whether a lease of any store is live. Unused
/// networks go when `remove_unused` is given and selects them (`prune
/// --filter`); `None` clears leftovers only.
pub fn prune(
    root: &Path,
    running: &dyn Fn(&str) -> bool,
    members: &dyn Members,
    remove_unused: Option<&dyn Fn(&NetworkConfig) -> bool>,
) -> Result<PruneReport, NetworkError> {
    let nets = Networks::new(root);
    let containers = root.join("containers");
    let mut report = PruneReport::default();
    let all = nets.list()?;
    {
        let _lock = nets.lock()?;
        for n in &all {
            for (ip, id) in nets.leases(n) {
                if !running(&id) {
                    release(&n.bridge, &containers.join(&id));
                    report
                        .leftovers
                        .push(format!("address {ip} of {} held by {id}", n.name));
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(&containers) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let ns = netns_path(&e.path());
                if ns.exists() && !running(&id) {
                    if let Ok(a) = read_json::<Attachment>(&attachment_path(&e.path())) {
                        delete_link_named(&a.veth);
                    }
                    remove_netns(&ns);
                    let _ = std::fs::remove_file(attachment_path(&e.path()));
                    report.leftovers.push(format!("network namespace of {id}"));
                }
            }
        }
        // veths of this store's containers that no longer run (veth + the
        // first 10 hex digits of the ID).
        if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
            let ids: Vec<String> = std::fs::read_dir(&containers)
                .map(|r| {
                    r.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(short) = name.strip_prefix("veth").filter(|s| s.len() == 10) else {
                    continue;
                };
                let owner = ids.iter().find(|id| id.starts_with(short));
                let master = std::fs::read_link(e.path().join("master")).ok();
                let ours = master.as_ref().and_then(|m| m.file_name()).is_some_and(|m| {
                    let m = m.to_string_lossy();
                    all.iter().any(|n| n.bridge == m)
                });
                // Only this store's containers: another store may share barge0.
                if ours && owner.is_some_and(|id| !running(id)) {
                    delete_link_named(&name);
                    report.leftovers.push(format!("veth {name}"));
                }
            }
        }
    }
    if let Some(select) = remove_unused {
        for n in all.iter().filter(|n| n.name != DEFAULT_NETWORK && select(n)) {
            if nets.leases(n).is_empty() && nets.remove(&n.name, members).is_ok() {
                report.networks.push(n.name.clone());
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let s = Subnet::parse("10.1.2.77/24").unwrap();
        assert_eq!(s.to_string(), "10.1.2.0/24");
        assert!(s.contains("10.1.2.254".parse().unwrap()));
        assert!(!s.contains("10.1.3.1".parse().unwrap()));
        assert_eq!(s.hosts().count(), 254);
        assert!(s.overlaps(&Subnet::parse("10.1.0.0/16").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("10.1.3.0/24").unwrap()));
        for bad in ["10.1.2.0", "10.1.2.0/33", "10.1.2.0/31", "x/24", "10.1.2.0/7"] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
    }

    /// Containers as a test says: live or not, with these names.
    struct Fake(Vec<(PathBuf, bool, &'static str)>);

    impl Members for Fake {
        fn is_live(&self, dir: &Path) -> bool {
            self.0.iter().any(|(d, live, _)| d == dir && *live)
        }
        fn names(&self, dir: &Path) -> Option<(String, String)> {
            let (_, _, name) = self.0.iter().find(|(d, _, _)| d == dir)?;
            Some((name.to_string(), format!("{name}-host")))
        }
    }

    #[test]
    fn a_live_lease_keeps_a_network_and_a_dead_one_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let nets = Networks::new(d.path());
        let n = nets.create("held", None, None, BTreeMap::new()).unwrap();
        let subnet = Subnet::parse(&n.subnet).unwrap();
        let gateway: Ipv4Addr = n.gateway.parse().unwrap();
        let containers = d.path().join("containers");
        let (a, b) = (containers.join("a".repeat(64)), containers.join("b".repeat(64)));
        let first = take_lease(&n, subnet, gateway, &a, &Fake(vec![])).unwrap();
        assert_eq!(
            nets.leases(&n).get(&first).map(String::as_str),
            Some("a".repeat(64).as_str())
        );
        // `a` is live: `b` gets the next address, and the network stays.
        let live = Fake(vec![(a.clone(), true, "web")]);
        let second = take_lease(&n, subnet, gateway, &b, &live).unwrap();
        assert_ne!(first, second);
        assert!(matches!(nets.remove("held", &live), Err(NetworkError::InUse { .. })));
        // `a` exited without detaching: its address is taken over.
        release(&n.bridge, &b);
        let c = containers.join("c".repeat(64));
        assert_eq!(take_lease(&n, subnet, gateway, &c, &Fake(vec![])).unwrap(), first);
        release(&n.bridge, &c);
        nets.remove("held", &Fake(vec![])).unwrap();
        let _ = std::fs::remove_dir_all(lease_dir(&n.bridge));
    }

    #[test]
    fn user_networks_get_free_subnets_and_names_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let nets = Networks::new(d.path());
        let a = nets.create("alpha", None, None, BTreeMap::new()).unwrap();
        let b = nets.create("beta", None, None, BTreeMap::new()).unwrap();
        // From the pool, /24s, distinct (which ones depends on the host's bridges).
        let pool = Subnet::parse("10.223.0.0/16").unwrap();
        let (sa, sb) = (Subnet::parse(&a.subnet).unwrap(), Subnet::parse(&b.subnet).unwrap());
        assert!(pool.contains(sa.base) && pool.contains(sb.base) && sa.prefix == 24 && !sa.overlaps(&sb));
        assert_eq!(a.gateway, Ipv4Addr::from(u32::from(sa.base) + 1).to_string());
        assert!(matches!(
            nets.create("alpha", None, None, BTreeMap::new()),
            Err(NetworkError::Exists(_))
        ));
        assert!(matches!(
            nets.create("gamma", Some(&format!("{}/25", sb.base)), None, BTreeMap::new()),
            Err(NetworkError::Overlap { .. })
        ));
        assert!(matches!(
            nets.create("delta", Some("192.168.5.0/24"), Some("192.168.6.1"), BTreeMap::new()),
            Err(NetworkError::BadGateway(_))
        ));
        assert!(matches!(
            nets.create("bad name", None, None, BTreeMap::new()),
            Err(NetworkError::BadName(_))
        ));
        let names: Vec<String> = nets.list().unwrap().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["bridge", "alpha", "beta"]);
        assert_eq!(nets.find(&a.id[..6]).unwrap().name, "alpha");
        assert!(matches!(
            nets.remove("bridge", &Fake(vec![])),
            Err(NetworkError::Predefined(_))
        ));
        nets.remove("alpha", &Fake(vec![])).unwrap();
        assert!(matches!(nets.find("alpha"), Err(NetworkError::NotFound(_))));
    }
}
