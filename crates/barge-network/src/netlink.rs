//! The few rtnetlink requests barge's bridge network needs: create a bridge
//! or a veth pair, attach, bring up, address, route, delete. Each request
//! waits for the kernel's acknowledgement; errors come back as errno.

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{OwnedFd, RawFd};

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;
const NLA_F_NESTED: u16 = 0x8000;

/// A netlink route socket in the calling thread's network namespace.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

/// A message under construction: header, fixed part, attributes.
struct Msg {
    buf: Vec<u8>,
    /// Start offsets of open nested attributes.
    nests: Vec<usize>,
}

impl Msg {
    fn new(kind: u16, flags: u16) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in `finish`
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        Msg { buf, nests: Vec::new() }
    }

    fn align(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// `struct ifinfomsg`.
    fn ifinfo(mut self, index: i32, flags: u32, change: u32) -> Msg {
        self.buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
        self
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Msg {
        self.align();
        self.buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.align();
        self
    }

    fn str_attr(self, kind: u16, s: &str) -> Msg {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data)
    }

    fn nest(mut self, kind: u16) -> Msg {
        self.align();
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    fn end(mut self) -> Msg {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

impl Netlink {
    pub fn open() -> io::Result<Netlink> {
        // No protocol is NETLINK_ROUTE.
        let fd = rustix::net::socket_with(AddressFamily::NETLINK, SocketType::RAW, SocketFlags::CLOEXEC, None)?;
        Ok(Netlink { fd, seq: 1 })
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, msg: Msg) -> io::Result<()> {
        self.seq += 1;
        let seq = self.seq;
        let bytes = msg.finish(seq);
        // Port 0 is the kernel.
        rustix::net::sendto(
            &self.fd,
            &bytes,
            SendFlags::empty(),
            &rustix::net::netlink::SocketAddrNetlink::new(0, 0),
        )?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::empty()) {
                Ok((n, _)) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut rest = &buf[..n];
            while rest.len() >= 16 {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let got_seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                if len < 16 || len > rest.len() {
                    return Err(io::Error::other("a malformed netlink answer"));
                }
                if kind == NLMSG_ERROR && got_seq == seq && len >= 20 {
                    let errno = i32::from_ne_bytes([rest[16], rest[17], rest[18], rest[19]]);
                    return if errno == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-errno))
                    };
                }
                rest = &rest[(len + 3) & !3..];
            }
        }
    }

    /// Creates a bridge, unless one of that name exists.
    pub fn add_bridge(&mut self, name: &str) -> io::Result<()> {
        let msg = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)
            .ifinfo(0, 0, 0)
            .str_attr(IFLA_IFNAME, name)
            .nest(IFLA_LINKINFO)
            .str_attr(IFLA_INFO_KIND, "bridge")
            .end();
        match self.request(msg) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    /// Creates a veth pair: `host` here, `peer` in the namespace `netns`.
    pub fn add_veth(&mut self, host: &str, peer: &str, peer_mac: [u8; 6], netns: RawFd) -> io::Result<()> {
        let mut peer_info = Msg {
            buf: Vec::new(),
            nests: Vec::new(),
        }
        .ifinfo(0, 0, 0)
        .str_attr(IFLA_IFNAME, peer)
        .attr(IFLA_ADDRESS, &peer_mac)
        .attr(IFLA_NET_NS_FD, &(netns as u32).to_ne_bytes());
        peer_info.align();
        let msg = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)
            .ifinfo(0, 0, 0)
            .str_attr(IFLA_IFNAME, host)
            .nest(IFLA_LINKINFO)
            .str_attr(IFLA_INFO_KIND, "veth")
            .nest(IFLA_INFO_DATA)
            .attr(VETH_INFO_PEER, &peer_info.buf)
            .end()
            .end();
        self.request(msg)
    }

    /// Attaches a link to a bridge.
    pub fn set_master(&mut self, link: u32, bridge: u32) -> io::Result<()> {
        let msg = Msg::new(RTM_NEWLINK, 0)
            .ifinfo(link as i32, 0, 0)
            .attr(IFLA_MASTER, &bridge.to_ne_bytes());
        self.request(msg)
    }

    pub fn set_up(&mut self, link: u32) -> io::Result<()> {
        let up = libc::IFF_UP as u32;
        self.request(Msg::new(RTM_NEWLINK, 0).ifinfo(link as i32, up, up))
    }

    pub fn delete_link(&mut self, link: u32) -> io::Result<()> {
        self.request(Msg::new(RTM_DELLINK, 0).ifinfo(link as i32, 0, 0))
    }

    /// Adds `addr/prefix` to a link; an address already there is fine.
    pub fn add_address(&mut self, link: u32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut msg = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        msg.buf.extend_from_slice(&[libc::AF_INET as u8, prefix, 0, 0]);
        msg.buf.extend_from_slice(&link.to_ne_bytes());
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        let broadcast = Ipv4Addr::from(u32::from(addr) | !mask);
        let msg = msg
            .attr(IFA_LOCAL, &addr.octets())
            .attr(IFA_ADDRESS, &addr.octets())
            .attr(IFA_BROADCAST, &broadcast.octets());
        match self.request(msg) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    /// A default route via `gateway` out of `link`.
    pub fn add_default_route(&mut self, link: u32, gateway: Ipv4Addr) -> io::Result<()> {
        let mut msg = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        // struct rtmsg: family, dst_len, src_len, tos, table (main), protocol
        // (boot), scope (universe), type (unicast), flags.
        msg.buf
            .extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0, libc::RT_TABLE_MAIN, 3, 0, 1]);
        msg.buf.extend_from_slice(&0u32.to_ne_bytes());
        let msg = msg
            .attr(RTA_GATEWAY, &gateway.octets())
            .attr(RTA_OIF, &link.to_ne_bytes());
        self.request(msg)
    }
}

/// The index of the link called `name` in this thread's namespace (a
/// socket is of the namespace of the thread that makes it).
pub fn link_index(name: &str) -> Option<u32> {
    let sock = rustix::net::socket_with(AddressFamily::INET, SocketType::DGRAM, SocketFlags::CLOEXEC, None).ok()?;
    rustix::net::netdevice::name_to_index(&sock, name)
        .ok()
        .filter(|i| *i != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nests_sized() {
        let m = Msg::new(RTM_NEWLINK, 0)
            .ifinfo(0, 0, 0)
            .nest(IFLA_LINKINFO)
            .str_attr(IFLA_INFO_KIND, "veth")
            .end();
        let b = m.finish(7);
        assert_eq!(b.len(), 16 + 16 + 4 + 12);
        assert_eq!(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize, b.len());
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 7);
        // The nest covers its header and the padded kind attribute.
        assert_eq!(u16::from_ne_bytes([b[32], b[33]]), 4 + 12);
        assert_eq!(u16::from_ne_bytes([b[34], b[35]]), IFLA_LINKINFO | NLA_F_NESTED);
        assert_eq!(&b[40..45], b"veth\0");
    }
}
