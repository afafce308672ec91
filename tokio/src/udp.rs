//! UDP: a socket with a reuseport member on each daemon core.

use std::future::poll_fn;
use std::hash::{Hash, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use stack::reuseport::{BindOptions, MemberId};
use stack::socket::{UdpApi, UdpError, UdpId};
use tokio::io::ReadBuf;
use tokio::net::ToSocketAddrs;

use crate::driver::CoreCell;
use crate::tcp::{bind_addr, first_bound, members_of};
use crate::{control, ListenOptions, Stack};

/// A UDP socket through the daemon. Datagrams arrive on the member of the
/// core the daemon's selector chose; one is sent from the member of a core
/// chosen by the destination (so one peer's datagrams leave in order).
pub struct UdpSocket {
    #[allow(dead_code)]
    stack: Stack,
    members: Vec<(Arc<CoreCell>, u64)>,
    local: SocketAddr,
    next: AtomicUsize,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local)
            .field("cores", &self.members.len())
            .finish()
    }
}

impl UdpSocket {
    /// Bind `addr` on the process-wide [`Stack::default`].
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let stack = Stack::default().await?;
        first_bound(addr, |a| {
            UdpSocket::bind_with(&stack, a, ListenOptions::default())
        })
        .await
    }

    /// Bind `addr` through `stack` (the daemon's rules as for TCP).
    pub async fn bind_with(
        stack: &Stack,
        addr: SocketAddr,
        opts: ListenOptions,
    ) -> io::Result<UdpSocket> {
        let ba = bind_addr(addr)?;
        let cells = members_of(stack, &opts);
        if cells.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no such daemon core",
            ));
        }
        let bo = BindOptions::new(0)
            .with_reuseport(opts.reuseport)
            .with_backlog(opts.backlog.max(1));
        let mut u = UdpSocket {
            stack: stack.clone(),
            members: Vec::new(),
            local: addr,
            next: AtomicUsize::new(0),
        };
        for cell in cells {
            let bo = bo.clone();
            let id = control(cell.clone(), move |core| {
                core.udp_bind(ba, addr.port(), bo).map(|u| u.0 .0)
            })
            .await?;
            u.members.push((cell, id));
        }
        Ok(u)
    }

    /// The address bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// Receive a datagram (truncated to `buf`, as with the kernel's).
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut rb = ReadBuf::new(buf);
        let from = poll_fn(|cx| self.poll_recv_from(cx, &mut rb)).await?;
        Ok((rb.filled().len(), from))
    }

    /// Poll for a datagram.
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for k in 0..n {
            let (cell, id) = &self.members[(start + k) % n];
            let mut st = cell.lock();
            if let Err(e) = st.check() {
                return Poll::Ready(Err(e));
            }
            let dst = buf.initialize_unfilled();
            match st.core.recv_from(UdpId(MemberId(*id)), dst) {
                Ok(Some((len, from, _to))) => {
                    buf.advance(len);
                    return Poll::Ready(Ok(from));
                }
                Ok(None) => {
                    crate::driver::add_waker(st.udp_recv.entry(*id).or_default(), cx.waker());
                }
                Err(e) => return Poll::Ready(Err(io::Error::other(e.to_string()))),
            }
        }
        Poll::Pending
    }

    /// Send `buf` to `target` (its first address).
    pub async fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> io::Result<usize> {
        let to = tokio::net::lookup_host(target)
            .await?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
        poll_fn(|cx| self.poll_send_to(cx, buf, to)).await
    }

    /// Poll to send `buf` to `to`: pending while the ring is full.
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        to: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        to.hash(&mut h);
        let (cell, id) = &self.members[h.finish() as usize % self.members.len()];
        let mut st = cell.lock();
        if let Err(e) = st.check() {
            return Poll::Ready(Err(e));
        }
        match st.core.send_to(UdpId(MemberId(*id)), buf, to, None) {
            Ok(()) => {
                cell.pushed(&mut st);
                Poll::Ready(Ok(buf.len()))
            }
            Err(UdpError::BufferFull) => {
                st.ring_full.push(cx.waker().clone());
                Poll::Pending
            }
            Err(UdpError::TooLarge) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "datagram too large",
            ))),
            Err(UdpError::NotFound) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the UDP socket is closed",
            ))),
        }
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        for (cell, id) in &self.members {
            let mut st = cell.lock();
            st.udp_recv.remove(id);
            if st.dead.is_none() {
                let _ = st.core.udp_close(UdpId(MemberId(*id)));
                cell.pushed(&mut st);
            }
        }
    }
}
