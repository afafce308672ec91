//! A raw AF_PACKET socket bound to one interface: whole Ethernet frames in and out, without
//! the kernel's stack. The sandbox's impairing forwarder bridges two of them.
//!
//! The socket is non-blocking, sees every frame the interface receives (all protocols, any
//! destination MAC) and none of those it sends itself (`PACKET_IGNORE_OUTGOING`).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `PACKET_IGNORE_OUTGOING` (linux/if_packet.h, Linux 4.20).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// Kernel socket buffer asked for each way.
const SOCK_BUF: libc::c_int = 8 << 20;

/// What a receive returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recv {
    /// A frame of this many bytes is at the start of the buffer.
    Frame(usize),
    /// A frame longer than the buffer arrived; it was cut and should be dropped.
    Truncated(usize),
    /// Nothing queued.
    Empty,
}

/// An AF_PACKET socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl PacketSocket {
    /// Opens a socket on interface `ifname` of the calling thread's network namespace.
    pub fn open(ifname: &str) -> io::Result<PacketSocket> {
        let cname = CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
        // SAFETY: `cname` is a valid NUL-terminated string for the whole call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // Protocol 0: no frame is queued before the bind below picks the interface.
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let sock = PacketSocket { fd, ifindex };
        sock.set_int(libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)?;
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
            // Root may exceed rmem_max/wmem_max; otherwise the kernel's cap applies.
            if sock.set_int(libc::SOL_SOCKET, opt, SOCK_BUF).is_err() {
                let plain = if opt == libc::SO_RCVBUFFORCE {
                    libc::SO_RCVBUF
                } else {
                    libc::SO_SNDBUF
                };
                sock.set_int(libc::SOL_SOCKET, plain, SOCK_BUF)?;
            }
        }
        // SAFETY: all-zero is a valid `sockaddr_ll` (plain integers and a byte array).
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Receives one frame into `buf` without blocking.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Recv> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
        // MSG_TRUNC makes the kernel return the frame's real length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(Recv::Empty),
                _ => Err(err),
            };
        }
        let n = n as usize;
        Ok(if n > buf.len() {
            Recv::Truncated(n)
        } else {
            Recv::Frame(n)
        })
    }

    /// Sends one whole Ethernet frame without blocking. `Ok(false)`: the kernel had no room
    /// (try again later).
    pub fn send(&self, frame: &[u8]) -> io::Result<bool> {
        // SAFETY: `frame` is valid for reads of `frame.len()` bytes for the whole call.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::EINTR) => Ok(false),
                _ => Err(err),
            };
        }
        Ok(true)
    }

    fn set_int(&self, level: libc::c_int, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
        // SAFETY: `val` is a valid c_int for the whole call and the length passed is its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                opt,
                (&val as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
