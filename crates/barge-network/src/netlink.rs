//! The few rtnetlink requests barge's bridge network needs: find a link,
//! create a bridge or a veth pair, attach, bring up, address, route,
//! delete. Messages are `netlink-packet-route`'s types, sent on a
//! synchronous `netlink-sys` socket; each request waits for the kernel's
//! acknowledgement. The socket asks for extended acknowledgements, so a
//! refusal comes back as a [`NetlinkError`]: the errno, the kernel's own
//! message when it gives one, and what barge was doing.

use netlink_packet_core::{
    ErrorBuffer, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, Parseable, NLMSG_ALIGNTO,
    NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkHeader, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use rustix::io::Errno;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

/// `NLMSGERR_ATTR_MSG`: the extended acknowledgement's text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `struct nlmsghdr`'s size: all the kernel echoes of a capped request.
const NLMSG_HDRLEN: usize = 16;
/// `RTM_NEWLINK`, the kind of the kernel's answer to `RTM_GETLINK`.
const RTM_NEWLINK: u16 = 16;
/// `RTM_NEWADDR`, the kind of the kernel's answers to `RTM_GETADDR`.
const RTM_NEWADDR: u16 = 20;

/// A netlink request that failed: what barge was doing, the error number
/// (the kernel's, or the socket's), and the kernel's extended-ack message
/// when it sent one. Shown as `DOING: STRERROR (kernel: MESSAGE)`.
#[derive(Debug, thiserror::Error)]
#[error("{doing}: {}", describe(*.errno, .kernel.as_deref()))]
pub struct NetlinkError {
    /// What barge asked for, such as `creating bridge br-1234`.
    pub doing: String,
    pub errno: Errno,
    /// The kernel's own words (`NLMSGERR_ATTR_MSG`), if it gave any.
    pub kernel: Option<String>,
}

impl NetlinkError {
    fn new(doing: &str, errno: Errno, kernel: Option<String>) -> NetlinkError {
        NetlinkError {
            doing: doing.to_string(),
            errno,
            kernel,
        }
    }

    fn io(doing: &str, e: std::io::Error) -> NetlinkError {
        let errno = e.raw_os_error().map_or(Errno::IO, Errno::from_raw_os_error);
        NetlinkError::new(doing, errno, None)
    }

    /// Adds to what barge was doing (`of network NAME`, a hint).
    pub fn within(mut self, more: &str) -> NetlinkError {
        self.doing = format!("{} {more}", self.doing);
        self
    }
}

/// The errno's text without std's `(os error N)`, and the kernel's message.
fn describe(errno: Errno, kernel: Option<&str>) -> String {
    let code = errno.raw_os_error();
    let text = std::io::Error::from_raw_os_error(code).to_string();
    let text = text.strip_suffix(&format!(" (os error {code})")).unwrap_or(&text);
    match kernel {
        Some(k) => format!("{text} (kernel: {k})"),
        None => text.to_string(),
    }
}

/// A link by index, and its name for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
}

/// A netlink route socket in the calling thread's network namespace.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    pub fn open() -> Result<Netlink, NetlinkError> {
        let doing = "opening a netlink socket";
        let socket = Socket::new(NETLINK_ROUTE).map_err(|e| NetlinkError::io(doing, e))?;
        // The kernel's reasons with its errors; only the request's header
        // echoed back; strict checks on lookups. Kernels before 4.12 (ext
        // ack) or 4.20 (strict) refuse the option and answer as before.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_netlink_get_strict_chk(true);
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sends one request and waits for its acknowledgement; returns the
    /// answers that came before it (a lookup's), with their kinds.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        doing: &str,
    ) -> Result<Vec<(u16, Vec<u8>)>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        // Port 0 is the kernel.
        self.socket
            .send_to(&bytes, &SocketAddr::new(0, 0), 0)
            .map_err(|e| NetlinkError::io(doing, e))?;
        let malformed = || NetlinkError::new(doing, Errno::BADMSG, None);
        let mut answers = Vec::new();
        loop {
            let mut buf = Vec::with_capacity(32 * 1024);
            match self.socket.recv(&mut buf, 0) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetlinkError::io(doing, e)),
            }
            let mut rest = &buf[..];
            while !rest.is_empty() {
                let m = NetlinkBuffer::new_checked(rest).map_err(|_| malformed())?;
                let len = m.length() as usize;
                let next = len.next_multiple_of(usize::from(NLMSG_ALIGNTO)).min(rest.len());
                if m.sequence_number() == seq {
                    match m.message_type() {
                        NLMSG_ERROR => {
                            return acknowledged(m.flags(), m.payload())
                                .map(|()| answers)
                                .map_err(|(errno, kernel)| NetlinkError::new(doing, errno, kernel))
                        }
                        // A dump's end: its payload is 0 or an error.
                        NLMSG_DONE => {
                            let code = ErrorBuffer::new_checked(m.payload()).ok().and_then(|b| b.code());
                            return match code {
                                Some(c) => {
                                    let errno = Errno::from_raw_os_error(c.get().saturating_abs());
                                    Err(NetlinkError::new(doing, errno, None))
                                }
                                None => Ok(answers),
                            };
                        }
                        kind => answers.push((kind, m.payload().to_vec())),
                    }
                }
                rest = &rest[next..];
            }
        }
    }

    /// The link called `name` in this socket's namespace, if there is one.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let doing = format!("finding link {name}");
        match self.request(RouteNetlinkMessage::GetLink(msg), 0, &doing) {
            Err(e) if e.errno == Errno::NODEV => Ok(None),
            Err(e) => Err(e),
            Ok(answers) => {
                let index = answers
                    .iter()
                    .filter(|(kind, _)| *kind == RTM_NEWLINK)
                    .find_map(|(_, a)| LinkHeader::parse(a).ok())
                    .map(|h| h.index)
                    .ok_or_else(|| NetlinkError::new(&doing, Errno::BADMSG, None))?;
                Ok(Some(Link {
                    index,
                    name: name.to_string(),
                }))
            }
        }
    }

    /// The IPv4 addresses in this socket's namespace: address, prefix
    /// length, and the interface (its label, as `ip addr` shows it).
    pub fn ipv4_addresses(&mut self) -> Result<Vec<(Ipv4Addr, u8, String)>, NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        let answers = self.request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP, "listing addresses")?;
        let mut out = Vec::new();
        for (_, a) in answers.iter().filter(|(kind, _)| *kind == RTM_NEWADDR) {
            let Ok(m) = AddressMessage::parse(a.as_slice()) else {
                continue;
            };
            let mut local = None;
            let mut address = None;
            let mut label = None;
            for attr in m.attributes {
                match attr {
                    AddressAttribute::Local(IpAddr::V4(ip)) => local = Some(ip),
                    AddressAttribute::Address(IpAddr::V4(ip)) => address = Some(ip),
                    AddressAttribute::Label(l) => label = Some(l),
                    _ => {}
                }
            }
            if let Some(ip) = local.or(address) {
                let name = label.unwrap_or_else(|| format!("if{}", m.header.index));
                out.push((ip, m.header.prefix_len, name));
            }
        }
        Ok(out)
    }

    /// The link called `name`; ENODEV if there is none.
    pub fn must_link(&mut self, name: &str) -> Result<Link, NetlinkError> {
        self.link(name)?
            .ok_or_else(|| NetlinkError::new(&format!("finding link {name}"), Errno::NODEV, None))
    }

    /// Creates a bridge, unless one of that name exists.
    pub fn add_bridge(&mut self, name: &str) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        let doing = format!("creating bridge {name}");
        match self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL, &doing) {
            Err(e) if e.errno == Errno::EXIST => Ok(()),
            other => other.map(drop),
        }
    }

    /// Creates a veth pair: `host` here, `peer` in the namespace `netns`
    /// with the MAC address `peer_mac`.
    pub fn add_veth(&mut self, host: &str, peer: &str, peer_mac: [u8; 6], netns: RawFd) -> Result<(), NetlinkError> {
        let mut inside = LinkMessage::default();
        inside.attributes.push(LinkAttribute::IfName(peer.to_string()));
        inside.attributes.push(LinkAttribute::Address(peer_mac.to_vec()));
        inside.attributes.push(LinkAttribute::NetNsFd(netns));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(inside))),
        ]));
        let doing = format!("creating the veth pair {host} ({peer} in the container)");
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL, &doing)
            .map(drop)
    }

    /// Changes a link: `attributes`, and `flags` within `change`.
    fn set_link(
        &mut self,
        link: &Link,
        attributes: Vec<LinkAttribute>,
        flags: LinkFlags,
        doing: &str,
    ) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = link.index;
        msg.header.flags = flags;
        msg.header.change_mask = flags;
        msg.attributes = attributes;
        self.request(RouteNetlinkMessage::NewLink(msg), 0, doing).map(drop)
    }

    /// Attaches a link to a bridge.
    pub fn set_master(&mut self, link: &Link, bridge: &Link) -> Result<(), NetlinkError> {
        let doing = format!("attaching {} to {}", link.name, bridge.name);
        self.set_link(
            link,
            vec![LinkAttribute::Controller(bridge.index)],
            LinkFlags::empty(),
            &doing,
        )
    }

    pub fn set_up(&mut self, link: &Link) -> Result<(), NetlinkError> {
        let doing = format!("bringing up {}", link.name);
        self.set_link(link, Vec::new(), LinkFlags::Up, &doing)
    }

    pub fn delete_link(&mut self, link: &Link) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = link.index;
        let doing = format!("deleting {}", link.name);
        self.request(RouteNetlinkMessage::DelLink(msg), 0, &doing).map(drop)
    }

    /// Adds `addr/prefix` to a link; an address already there is fine.
    pub fn add_address(&mut self, link: &Link, addr: Ipv4Addr, prefix: u8) -> Result<(), NetlinkError> {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
        let broadcast = Ipv4Addr::from(u32::from(addr) | !mask);
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = link.index;
        msg.attributes = vec![
            AddressAttribute::Local(IpAddr::V4(addr)),
            AddressAttribute::Address(IpAddr::V4(addr)),
            AddressAttribute::Broadcast(broadcast),
        ];
        let doing = format!("adding {addr}/{prefix} to {}", link.name);
        match self.request(RouteNetlinkMessage::NewAddress(msg), NLM_F_CREATE | NLM_F_EXCL, &doing) {
            Err(e) if e.errno == Errno::EXIST => Ok(()),
            other => other.map(drop),
        }
    }

    /// A default route via `gateway` out of `link`.
    pub fn add_default_route(&mut self, link: &Link, gateway: Ipv4Addr) -> Result<(), NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes = vec![
            RouteAttribute::Gateway(RouteAddress::Inet(gateway)),
            RouteAttribute::Oif(link.index),
        ];
        let doing = format!("adding a default route via {gateway} on {}", link.name);
        self.request(RouteNetlinkMessage::NewRoute(msg), NLM_F_CREATE | NLM_F_EXCL, &doing)
            .map(drop)
    }
}

/// Reads an `NLMSG_ERROR` answer (flags of its header, its payload): an
/// acknowledgement, or the errno and the kernel's message.
fn acknowledged(flags: u16, payload: &[u8]) -> Result<(), (Errno, Option<String>)> {
    let err = ErrorBuffer::new_checked(payload).map_err(|_| (Errno::BADMSG, None))?;
    match err.code() {
        None => Ok(()),
        Some(code) => Err((
            Errno::from_raw_os_error(code.get().saturating_abs()),
            kernel_message(flags, err.payload()),
        )),
    }
}

/// The extended ack's message after the echoed request: its header alone
/// when the kernel capped it, else the whole request.
fn kernel_message(flags: u16, echoed: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let request = NetlinkBuffer::new_checked(echoed).ok()?;
    let skip = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        (request.length() as usize).next_multiple_of(usize::from(NLMSG_ALIGNTO))
    };
    NlasIterator::new(echoed.get(skip..)?)
        .filter_map(Result::ok)
        .find(|a| a.kind() == NLMSGERR_ATTR_MSG)
        .map(|a| {
            let text = a.value();
            let text = text.split(|b| *b == 0).next().unwrap_or(text);
            String::from_utf8_lossy(text).trim_end_matches('.').to_string()
        })
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `NLMSG_ERROR` payload: code, the echoed header (capped), TLVs.
    fn nack(code: i32, request_len: u32, tlvs: &[(u16, &[u8])]) -> Vec<u8> {
        use netlink_packet_core::{DefaultNla, Emitable};
        let mut b = code.to_ne_bytes().to_vec();
        b.extend_from_slice(&request_len.to_ne_bytes());
        b.extend_from_slice(&[0u8; 12]);
        let tlvs: Vec<DefaultNla> = tlvs.iter().map(|(k, v)| DefaultNla::new(*k, v.to_vec())).collect();
        let start = b.len();
        b.resize(start + tlvs.as_slice().buffer_len(), 0);
        tlvs.as_slice().emit(&mut b[start..]);
        b
    }

    #[test]
    fn an_ack_is_ok_and_a_nack_carries_errno_and_the_kernels_words() {
        assert!(acknowledged(0, &nack(0, 16, &[])).is_ok());
        let (errno, kernel) = acknowledged(
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            &nack(
                -34,
                40,
                &[
                    (2, &[0, 0, 0, 0]),
                    (NLMSGERR_ATTR_MSG, b"mtu greater than device maximum\0"),
                ],
            ),
        )
        .expect_err("a nack was taken for an ack");
        let e = NetlinkError::new("creating bridge br-x", errno, kernel);
        assert_eq!(e.errno, Errno::RANGE);
        assert_eq!(e.kernel.as_deref(), Some("mtu greater than device maximum"));
        assert_eq!(
            e.to_string(),
            "creating bridge br-x: Numerical result out of range (kernel: mtu greater than device maximum)"
        );
        // Without the TLV flag there is no message, whatever follows.
        let refused = acknowledged(NLM_F_CAPPED, &nack(-17, 40, &[(NLMSGERR_ATTR_MSG, b"x\0")]));
        assert_eq!(refused, Err((Errno::EXIST, None)));
        // A truncated answer is a bad message, not a panic.
        assert_eq!(acknowledged(0, &[1, 2]), Err((Errno::BADMSG, None)));
    }

    /// Runs `f` with a socket in a network namespace of its own (so the
    /// host's links are untouched), or returns false where that needs
    /// root and we are not (a failure under CI=true).
    fn in_scratch_netns(f: impl FnOnce(&mut Netlink) + Send) -> bool {
        if !barge_tests::require_root_and(&[]) {
            return false;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netns");
        let ns = crate::new_netns(&path).unwrap();
        let done = crate::in_netns(&ns, || {
            f(&mut Netlink::open()?);
            Ok(())
        });
        crate::remove_netns(&path);
        done.unwrap();
        true
    }

    /// A veth pair `host`/`peer` with both ends in this thread's namespace.
    fn add_test_veth(nl: &mut Netlink, host: &str, peer: &str) -> Result<(), NetlinkError> {
        use std::os::fd::AsRawFd;
        let here = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        nl.add_veth(host, peer, [2, 0x42, 0, 0, 0, 1], here.as_raw_fd())
    }

    #[test]
    fn links_are_found_by_name_and_a_missing_one_is_none() {
        in_scratch_netns(|nl| {
            let lo = nl.link("lo").unwrap().unwrap();
            assert_eq!(
                lo,
                Link {
                    index: 1,
                    name: "lo".into()
                }
            );
            assert_eq!(nl.link("nosuchlink0").unwrap(), None);
            let e = nl.must_link("nosuchlink0").unwrap_err();
            assert_eq!(e.errno, Errno::NODEV);
            assert_eq!(e.doing, "finding link nosuchlink0");
        });
    }

    #[test]
    fn addresses_are_listed_with_prefix_and_label() {
        in_scratch_netns(|nl| {
            assert_eq!(nl.ipv4_addresses().unwrap(), Vec::new());
            let lo = nl.must_link("lo").unwrap();
            nl.set_up(&lo).unwrap();
            add_test_veth(nl, "nlt0", "nlt1").unwrap();
            let link = nl.must_link("nlt0").unwrap();
            nl.add_address(&link, Ipv4Addr::new(10, 9, 3, 2), 22).unwrap();
            let mut got = nl.ipv4_addresses().unwrap();
            got.sort();
            assert_eq!(
                got,
                vec![
                    (Ipv4Addr::new(10, 9, 3, 2), 22, "nlt0".to_string()),
                    (Ipv4Addr::LOCALHOST, 8, "lo".to_string()),
                ]
            );
        });
    }

    #[test]
    fn a_taken_name_is_refused_with_eexist_and_names_the_request() {
        in_scratch_netns(|nl| {
            add_test_veth(nl, "nlt0", "nlt1").unwrap();
            let e = add_test_veth(nl, "nlt0", "nlt2").unwrap_err();
            assert_eq!(e.errno, Errno::EXIST, "{e}");
            assert!(
                e.to_string()
                    .starts_with("creating the veth pair nlt0 (nlt2 in the container): File exists"),
                "{e}"
            );
            // A bridge whose name is taken is there already: not an error.
            nl.add_bridge("nlt0").unwrap();
        });
    }

    #[test]
    fn an_address_on_a_missing_link_is_refused_with_enodev() {
        in_scratch_netns(|nl| {
            let gone = Link {
                index: 999_999,
                name: "gone0".into(),
            };
            let e = nl.add_address(&gone, Ipv4Addr::new(10, 9, 0, 1), 24).unwrap_err();
            assert_eq!(e.errno, Errno::NODEV, "{e}");
            assert!(
                e.to_string().starts_with("adding 10.9.0.1/24 to gone0: No such device"),
                "{e}"
            );
            // Where the kernel explains (6.x: "ipv4: Device not found"), it is shown.
            if let Some(said) = &e.kernel {
                assert!(e.to_string().ends_with(&format!("(kernel: {said})")), "{e}");
            }
        });
    }

    #[test]
    fn a_bridge_refused_as_a_port_says_why() {
        in_scratch_netns(|nl| {
            nl.add_bridge("nlbr0").unwrap();
            nl.add_bridge("nlbr1").unwrap();
            let (port, bridge) = (nl.must_link("nlbr0").unwrap(), nl.must_link("nlbr1").unwrap());
            let e = nl.set_master(&port, &bridge).unwrap_err();
            // "Can not enslave a bridge to a bridge"
            assert!(e.kernel.as_deref().is_some_and(|k| k.contains("bridge")), "{e:?}");
            assert_eq!(e.errno, Errno::LOOP, "{e}");
            assert!(e.to_string().starts_with("attaching nlbr0 to nlbr1: "), "{e}");
        });
    }

    #[test]
    fn a_gateway_off_the_link_is_refused_with_the_kernels_message() {
        in_scratch_netns(|nl| {
            add_test_veth(nl, "nlt0", "nlt1").unwrap();
            let link = nl.must_link("nlt0").unwrap();
            nl.set_up(&link).unwrap();
            nl.add_address(&link, Ipv4Addr::new(10, 9, 0, 2), 24).unwrap();
            // Again: already there is fine.
            nl.add_address(&link, Ipv4Addr::new(10, 9, 0, 2), 24).unwrap();
            nl.add_default_route(&link, Ipv4Addr::new(10, 9, 0, 1)).unwrap();
            nl.delete_link(&link).unwrap();
            let other = nl.must_link("lo").unwrap();
            let e = nl.add_default_route(&other, Ipv4Addr::new(192, 0, 2, 1)).unwrap_err();
            assert!(e.kernel.is_some(), "{e:?}");
            assert_eq!(e.errno, Errno::NETUNREACH, "{e}");
            // "Network is unreachable (kernel: Nexthop has invalid gateway)"
            assert!(
                e.to_string()
                    .starts_with("adding a default route via 192.0.2.1 on lo: "),
                "{e}"
            );
            assert!(e.to_string().contains("(kernel: "), "{e}");
        });
    }
}
