//! Pseudo-terminals for `-t`. The pty is opened inside the container, from
//! its own `/dev/pts` instance (so `tty` and `ttyname` work there), and the
//! master is passed back to barge over a socket with `SCM_RIGHTS`.

use crate::process::{fail, ChildError};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::net::{
    recvmsg, sendmsg, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;

/// A connected pair: (barge's end, the container's end).
pub fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Sends `fd` over the unix socket `sock` (`SCM_RIGHTS`, one byte of data).
pub fn send_fd(sock: &OwnedFd, fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    sendmsg(sock, &[IoSlice::new(b"t")], &mut control, SendFlags::empty())?;
    Ok(())
}

/// The terminal master the container sent, or `None` if it closed the socket first.
fn receive_master(sock: &OwnedFd) -> std::io::Result<Option<OwnedFd>> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = recvmsg(
        sock,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if got.bytes == 0 {
        return Ok(None);
    }
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(Some(fd));
            }
        }
    }
    Ok(None)
}

/// The master a child sent over the pair `socketpair` made (ours, the
/// child's), once the child holds its end: ours is read, theirs closed.
pub fn master_from(pair: Option<(OwnedFd, OwnedFd)>) -> Result<Option<OwnedFd>, crate::RunnerError> {
    match pair {
        Some((ours, theirs)) => {
            drop(theirs);
            receive_master(&ours).map_err(crate::io_err("receiving the container's terminal"))
        }
        None => Ok(None),
    }
}

/// In the container: open a pty, send its master to barge, make the slave
/// the controlling terminal and stdin/stdout/stderr, owned by `uid`.
pub fn attach_child(sock: &OwnedFd, uid: u32) -> Result<(), ChildError> {
    use rustix::pty::{grantpt, openpt, unlockpt, OpenptFlags};
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).map_err(fail("opening /dev/ptmx"))?;
    grantpt(&master).map_err(fail("grantpt"))?;
    unlockpt(&master).map_err(fail("unlockpt"))?;
    // The peer by the master's descriptor, not by a path the container controls.
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY)
        .map_err(fail("opening the terminal"))?;
    let _ = rustix::fs::fchown(&slave, Some(rustix::fs::Uid::from_raw(uid)), None);
    send_fd(sock, master.as_fd()).map_err(|e| (125, format!("passing the terminal to barge: {e}")))?;
    drop(master);
    rustix::process::ioctl_tiocsctty(&slave).map_err(fail("making the terminal controlling"))?;
    rustix::stdio::dup2_stdin(&slave).map_err(fail("stdin"))?;
    rustix::stdio::dup2_stdout(&slave).map_err(fail("stdout"))?;
    rustix::stdio::dup2_stderr(&slave).map_err(fail("stderr"))?;
    Ok(())
}
