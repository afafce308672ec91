//! Outgoing TCP connections through the daemon: a `CONNECT` record on one
//! daemon core, answered by `CONNECTED` (the connection, then a stream like
//! an accepted one) or `CONNECT_FAILED` (why).
//!
//! The daemon's engine opens the connection on the core whose channel
//! carried the request (round robin over the cores): the connection lives
//! there, as an accepted one lives on the core that accepted it. Which
//! core's queue the peer's segments arrive on is the NIC's choice; the
//! daemon hands them to the owning core (docs/TOKIO.md, "Outgoing
//! connections").

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use stack::socket::TcpApi;
use tokio::net::ToSocketAddrs;

use crate::driver::{add_waker, CoreCell};
use crate::tcp::{first_bound, TcpStream};
use crate::{Error, Stack};

impl Stack {
    /// Open a TCP connection to `addr` through the daemon, from its address
    /// of `addr`'s family and an ephemeral port, as
    /// `tokio::net::TcpStream::connect` does on the kernel. Fails with
    /// `ConnectionRefused` (an RST answered), `TimedOut` (no answer within
    /// the daemon's connect timeout, 127 s by default), `HostUnreachable`,
    /// `AddrNotAvailable` (no free local port towards `addr`),
    /// `InvalidInput` (an address the daemon cannot reach from), or
    /// `ConnectionAborted` with [`Error::DaemonGone`]. Dropping the future
    /// gives the connection up.
    pub async fn connect_tcp(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        self.connect_tcp_from(addr, None).await
    }

    /// [`Stack::connect_tcp`] from `local`: one of the daemon's addresses
    /// (or unspecified), and a port (0: ephemeral; below 1024: refused,
    /// `InvalidInput`).
    pub async fn connect_tcp_from(
        &self,
        addr: SocketAddr,
        local: Option<SocketAddr>,
    ) -> io::Result<TcpStream> {
        let cores = &self.inner.cores;
        let i = self.inner.next_core.fetch_add(1, Ordering::Relaxed) % cores.len().max(1);
        let cell = cores
            .get(i)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no daemon core"))?
            .clone();
        let token = poll_fn(|cx| {
            let mut st = cell.lock();
            if let Err(e) = st.check() {
                return Poll::Ready(Err(e));
            }
            match st.core.connect(addr, local) {
                Some(t) => {
                    cell.pushed(&mut st);
                    Poll::Ready(Ok(t))
                }
                None => {
                    // The ring is full: the driver's timer tries again.
                    add_waker(&mut st.ring_full, cx.waker());
                    Poll::Pending
                }
            }
        })
        .await?;
        let mut waiting = Waiting {
            cell,
            token,
            addr,
            done: false,
        };
        poll_fn(|cx| waiting.poll(cx, self)).await
    }
}

impl TcpStream {
    /// Open a connection to `addr` through the process-wide
    /// [`Stack::default`] (the daemon named by `XDPSTACK_CONTROL`), as
    /// `tokio::net::TcpStream::connect` does: every address `addr`
    /// resolves to is tried in turn; the last error is returned if none
    /// connects. See [`Stack::connect_tcp`] for the errors.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let stack = Stack::default().await?;
        first_bound(addr, |a| stack.connect_tcp(a)).await
    }
}

/// A connect waiting for the daemon's answer; dropped before the answer,
/// it gives the connection up.
struct Waiting {
    cell: Arc<CoreCell>,
    token: u64,
    addr: SocketAddr,
    done: bool,
}

impl Waiting {
    fn poll(&mut self, cx: &mut Context<'_>, stack: &Stack) -> Poll<io::Result<TcpStream>> {
        let mut st = self.cell.lock();
        let Some(answer) = st.core.take_connect(self.token) else {
            if let Err(e) = st.check() {
                return Poll::Ready(Err(e));
            }
            st.connect.insert(self.token, cx.waker().clone());
            return Poll::Pending;
        };
        self.done = true;
        st.connect.remove(&self.token);
        match answer {
            Ok(c) => {
                let peer = st.core.peer_addr(c).unwrap_or(self.addr);
                let local = st
                    .core
                    .local_addr(c)
                    .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
                st.conns.insert(c, Default::default());
                // TAKEN is a record: publish it.
                self.cell.pushed(&mut st);
                drop(st);
                Poll::Ready(Ok(TcpStream::of(stack, &self.cell, c, peer, local)))
            }
            Err(f) => Poll::Ready(Err(Error::Connect {
                addr: self.addr,
                why: f.why,
                message: f.message,
            }
            .into())),
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.cell.lock();
        st.connect.remove(&self.token);
        if st.dead.is_none() {
            st.core.cancel_connect(self.token);
            self.cell.pushed(&mut st);
        }
    }
}
