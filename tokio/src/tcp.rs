//! TCP: a listener with a reuseport member on each daemon core, and the
//! connections it accepts as tokio streams.

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use stack::reuseport::{BindAddr, BindOptions, MemberId};
use stack::socket::{ConnError, ConnId, ListenerId, TcpApi};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::ToSocketAddrs;

use crate::driver::{CoreCell, CoreState};
use crate::{control, Stack};

/// How a listener (or UDP socket) binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenOptions {
    /// `SO_REUSEPORT`: on (the default), the listener is a member on every
    /// daemon core (each a member of the port's group) and other processes
    /// of the same uid may join the port; off, one member on the first core
    /// alone (the stack hands it the flows of every core), and the port is
    /// the process's alone. The daemon applies its rules either way.
    pub reuseport: bool,
    /// Accept queue of each member (datagram queue for UDP).
    pub backlog: usize,
    /// Only these daemon cores (None: all).
    pub cores: Option<Vec<usize>>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            reuseport: true,
            backlog: 1024,
            cores: None,
        }
    }
}

/// The members to bind: (core, options).
pub(crate) fn members_of(stack: &Stack, opts: &ListenOptions) -> Vec<Arc<CoreCell>> {
    let all = &stack.inner.cores;
    let mut v: Vec<Arc<CoreCell>> = match &opts.cores {
        Some(list) => all
            .iter()
            .filter(|c| list.contains(&c.index))
            .cloned()
            .collect(),
        None => all.clone(),
    };
    if !opts.reuseport {
        v.truncate(1);
    }
    v
}

pub(crate) fn bind_addr(addr: SocketAddr) -> io::Result<BindAddr> {
    BindAddr::try_from_std(Some(addr.ip()), false)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// Resolve `addr` and bind the first address that works with `f`.
pub(crate) async fn first_bound<T, F, Fut>(addr: impl ToSocketAddrs, mut f: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        match f(a).await {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind")))
}

/// A TCP listener through the daemon: one member of the port's reuseport
/// group per daemon core.
pub struct TcpListener {
    stack: Stack,
    members: Vec<(Arc<CoreCell>, u64)>,
    local: SocketAddr,
    next: AtomicUsize,
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.local)
            .field("cores", &self.members.len())
            .finish()
    }
}

impl TcpListener {
    /// Bind `addr` on the process-wide [`Stack::default`] (the daemon named
    /// by `XDPSTACK_CONTROL`), as `tokio::net::TcpListener::bind` would on
    /// the kernel, with [`ListenOptions::default`].
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let stack = Stack::default().await?;
        first_bound(addr, |a| {
            TcpListener::bind_with(&stack, a, ListenOptions::default())
        })
        .await
    }

    /// Bind `addr` through `stack`. Refused with the daemon's reason
    /// ([`crate::Error::Refused`]): another uid on the port ("refused port
    /// hijack"), a member without reuseport, a port below 1024 without
    /// `CAP_NET_BIND_SERVICE`.
    ///
    /// Port 0 takes a free port of the ephemeral range (49152-65535) for
    /// this listener alone (one member without reuseport, whatever `opts`
    /// says: a port shared by chance with a group of the same uid would
    /// join it); [`TcpListener::local_addr`] tells which.
    pub async fn bind_with(
        stack: &Stack,
        addr: SocketAddr,
        opts: ListenOptions,
    ) -> io::Result<TcpListener> {
        if addr.port() == 0 {
            return TcpListener::bind_ephemeral(stack, addr, opts).await;
        }
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
        let mut l = TcpListener {
            stack: stack.clone(),
            members: Vec::new(),
            local: addr,
            next: AtomicUsize::new(0),
        };
        for cell in cells {
            let bo = bo.clone();
            // On failure `l` drops: the members bound so far are closed.
            let id = control(cell.clone(), move |core| {
                core.tcp_listen(ba, addr.port(), bo).map(|l| l.0 .0)
            })
            .await?;
            l.members.push((cell, id));
        }
        Ok(l)
    }

    /// Port 0: try ports of the ephemeral range, from a random one, until
    /// the daemon takes one (a port in use is refused for a member without
    /// reuseport).
    async fn bind_ephemeral(
        stack: &Stack,
        addr: SocketAddr,
        opts: ListenOptions,
    ) -> io::Result<TcpListener> {
        use std::hash::{BuildHasher, Hasher};
        let ba = bind_addr(addr)?;
        let cell = members_of(stack, &opts)
            .into_iter()
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no such daemon core"))?;
        let bo = BindOptions::new(0)
            .with_reuseport(false)
            .with_backlog(opts.backlog.max(1));
        let start = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let mut last = None;
        for k in 0..64u64 {
            let port = 49152 + ((start + k * 7919) % 16384) as u16;
            let bo = bo.clone();
            match control(cell.clone(), move |core| {
                core.tcp_listen(ba, port, bo).map(|l| l.0 .0)
            })
            .await
            {
                Ok(id) => {
                    return Ok(TcpListener {
                        stack: stack.clone(),
                        members: vec![(cell, id)],
                        local: SocketAddr::new(addr.ip(), port),
                        next: AtomicUsize::new(0),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()))
    }

    /// The address bound (with the port taken for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// The stack it was bound through.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// Accept a connection (from any core's member).
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll for a connection; the task is woken when one may be there.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for k in 0..n {
            let (cell, lid) = &self.members[(start + k) % n];
            let mut st = cell.lock();
            if let Err(e) = st.check() {
                return Poll::Ready(Err(e));
            }
            if let Some(c) = st.core.accept(ListenerId(MemberId(*lid))) {
                let peer = st
                    .core
                    .peer_addr(c)
                    .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
                // Our address as the daemon tells it (the one the peer
                // reached); the listener's from a daemon that does not.
                let local = st.core.local_addr(c).unwrap_or(self.local);
                st.conns.insert(c, Default::default());
                // TAKEN is a record: publish it.
                cell.pushed(&mut st);
                drop(st);
                let stream = TcpStream::of(&self.stack, cell, c, peer, local);
                return Poll::Ready(Ok((stream, peer)));
            }
            crate::driver::add_waker(st.accept.entry(*lid).or_default(), cx.waker());
        }
        Poll::Pending
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        for (cell, lid) in &self.members {
            let mut st = cell.lock();
            st.accept.remove(lid);
            if st.dead.is_none() {
                // What was offered and not taken goes back to the group.
                let _ = st.core.close_listener(ListenerId(MemberId(*lid)));
                cell.pushed(&mut st);
            }
        }
    }
}

/// One connection, shared by a stream's halves.
pub(crate) struct Conn {
    /// Keeps the drivers running while the connection lives.
    #[allow(dead_code)]
    stack: Stack,
    cell: Arc<CoreCell>,
    id: ConnId,
    peer: SocketAddr,
    local: SocketAddr,
    nodelay: AtomicBool,
}

fn reset() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection reset (by the peer, or by the daemon)",
    )
}

impl Conn {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut st = self.cell.lock();
        match self.read_now(&mut st, buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                st.conns.entry(self.id).or_default().read = Some(cx.waker().clone());
                Poll::Pending
            }
            r => Poll::Ready(r),
        }
    }

    /// Read what is there; `WouldBlock` if nothing (and no end) is.
    fn read_now(&self, st: &mut CoreState, buf: &mut ReadBuf<'_>) -> io::Result<()> {
        let Some(s) = st.core.conn_status(self.id) else {
            st.check()?;
            return Err(reset());
        };
        if buf.remaining() == 0 {
            return Ok(());
        }
        if s.unread > 0 {
            // Only what will be filled is initialised (zeroed) first.
            let dst = buf.initialize_unfilled_to(s.unread.min(buf.remaining()));
            let n = st.core.recv(self.id, dst).unwrap_or(0);
            buf.advance(n);
            if st.core.unpublished() {
                // The receive window went back (a READ record).
                self.cell.pushed(st);
            }
            return Ok(());
        }
        st.check()?;
        if s.eof {
            return Ok(());
        }
        if s.gone {
            return Err(reset());
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.cell.lock();
        let s = st.core.conn_status(self.id).unwrap_or_default();
        if s.unread > 0 || s.eof || s.gone || st.dead.is_some() {
            return Poll::Ready(Ok(()));
        }
        st.conns.entry(self.id).or_default().read = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.cell.lock();
        let st = &mut *st;
        let s = st.core.conn_status(self.id).unwrap_or_default();
        let w = st.conns.entry(self.id).or_default();
        if s.gone || s.shut || (s.credit > 0 && !w.write_blocked) || st.dead.is_some() {
            return Poll::Ready(Ok(()));
        }
        w.write = Some(cx.waker().clone());
        if s.credit > 0 {
            st.ring_full.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn poll_write(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.cell.lock();
        match self.write_now(&mut st, bufs) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let credit = st.core.conn_status(self.id).map_or(0, |s| s.credit);
                let w = st.conns.entry(self.id).or_default();
                w.write = Some(cx.waker().clone());
                w.write_blocked = true;
                if credit > 0 {
                    // The ring is full: the daemon frees it without
                    // telling, the driver's timer tries again.
                    st.ring_full.push(cx.waker().clone());
                }
                Poll::Pending
            }
            r => Poll::Ready(r),
        }
    }

    /// Push what fits (a vectored write as one record where it fits);
    /// `WouldBlock` if nothing does.
    fn write_now(&self, st: &mut CoreState, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        st.check()?;
        let mut parts: [&[u8]; 16] = [&[]; 16];
        let mut k = 0;
        for b in bufs.iter().filter(|b| !b.is_empty()).take(parts.len()) {
            parts[k] = b;
            k += 1;
        }
        if k == 0 {
            return Ok(0);
        }
        let total = match st.core.send_vectored(self.id, &parts[..k]) {
            Ok(n) => n,
            Err(ConnError::Closed) => {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the stream was shut down for writing",
                ))
            }
            Err(ConnError::NotFound) => return Err(reset()),
        };
        if total == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if let Some(w) = st.conns.get_mut(&self.id) {
            w.write_blocked = false;
        }
        self.cell.pushed(st);
        Ok(total)
    }

    fn shutdown(&self) -> io::Result<()> {
        let mut st = self.cell.lock();
        st.check()?;
        match st.core.shutdown(self.id) {
            Ok(()) => {
                self.cell.pushed(&mut st);
                Ok(())
            }
            Err(_) => Err(io::Error::new(io::ErrorKind::NotConnected, "not connected")),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut st = self.cell.lock();
        st.conns.remove(&self.id);
        if st.dead.is_none() {
            // FIN after the data sent (nothing if the daemon reported it
            // gone); the core forgets it.
            st.core.close(self.id);
            self.cell.pushed(&mut st);
        }
    }
}

/// A TCP connection through the daemon.
pub struct TcpStream {
    inner: Arc<Conn>,
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("peer", &self.inner.peer)
            .field("core", &self.inner.cell.index)
            .finish()
    }
}

impl TcpStream {
    /// The stream of connection `c` of core `cell` (accepted, or connected
    /// out), which the core's [`CoreState::conns`] knows already.
    pub(crate) fn of(
        stack: &Stack,
        cell: &Arc<CoreCell>,
        c: ConnId,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> TcpStream {
        TcpStream {
            inner: Arc::new(Conn {
                stack: stack.clone(),
                cell: cell.clone(),
                id: c,
                peer,
                local,
                nodelay: AtomicBool::new(true),
            }),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.peer)
    }

    /// Our address: the one the peer reached, as the daemon reports it
    /// (the listener's address from an older daemon that does not).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.local)
    }

    /// The daemon core the connection lives on.
    pub fn core(&self) -> usize {
        self.inner.cell.index
    }

    /// `TCP_NODELAY`: accepted and remembered. The stack never delays a
    /// segment to coalesce small writes (Nagle's algorithm is off for every
    /// connection): this process's writes are batched per scheduler turn
    /// instead.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.nodelay.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// What [`TcpStream::set_nodelay`] was given (true until then).
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.inner.nodelay.load(Ordering::Relaxed))
    }

    /// Poll until bytes (or the end of the stream, or an error) can be read.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_read_ready(cx)
    }

    /// Poll until a write can take bytes (send credit left, room in the
    /// ring); may be spurious, as with tokio's.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_write_ready(cx)
    }

    /// Wait until [`TcpStream::poll_read_ready`].
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.inner.poll_read_ready(cx)).await
    }

    /// Wait until [`TcpStream::poll_write_ready`].
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.inner.poll_write_ready(cx)).await
    }

    /// Read what is there without waiting (`WouldBlock` if nothing; 0 at
    /// the end of the stream).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rb = ReadBuf::new(buf);
        let mut st = self.inner.cell.lock();
        self.inner.read_now(&mut st, &mut rb)?;
        Ok(rb.filled().len())
    }

    /// Write what fits without waiting (`WouldBlock` if nothing does).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self.inner.cell.lock();
        self.inner.write_now(&mut st, &[io::IoSlice::new(buf)])
    }

    /// Borrowed read and write halves (usable from two tasks at once).
    pub fn split(&mut self) -> (split::ReadHalf<'_>, split::WriteHalf<'_>) {
        (split::ReadHalf(&self.inner), split::WriteHalf(&self.inner))
    }

    /// Owned halves; dropping the write half shuts the sending side down,
    /// as tokio's does.
    pub fn into_split(self) -> (split_owned::OwnedReadHalf, split_owned::OwnedWriteHalf) {
        (
            split_owned::OwnedReadHalf(self.inner.clone()),
            split_owned::OwnedWriteHalf {
                conn: self.inner,
                shutdown_on_drop: true,
            },
        )
    }
}

/// The connection behind a stream or one of its halves.
pub(crate) trait HasConn {
    fn conn(&self) -> &Conn;
}

impl HasConn for TcpStream {
    fn conn(&self) -> &Conn {
        &self.inner
    }
}

macro_rules! async_read {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                self.conn().poll_read(cx, buf)
            }
        }
    };
}

macro_rules! async_write {
    ($t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.conn().poll_write(cx, &[io::IoSlice::new(buf)])
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.conn().poll_write(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            /// The driver publishes the records once per scheduler turn:
            /// nothing is held back here.
            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            /// Half-close: FIN after the bytes written; reading goes on.
            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.conn().shutdown())
            }
        }
    };
}

async_read!(TcpStream);
async_write!(TcpStream);

/// Borrowed halves ([`TcpStream::split`]).
pub mod split {
    use super::*;

    /// The reading half.
    pub struct ReadHalf<'a>(pub(crate) &'a Conn);
    /// The writing half.
    pub struct WriteHalf<'a>(pub(crate) &'a Conn);

    impl HasConn for ReadHalf<'_> {
        fn conn(&self) -> &Conn {
            self.0
        }
    }
    impl HasConn for WriteHalf<'_> {
        fn conn(&self) -> &Conn {
            self.0
        }
    }

    impl ReadHalf<'_> {
        /// See [`TcpStream::peer_addr`].
        pub fn peer_addr(&self) -> io::Result<SocketAddr> {
            Ok(self.0.peer)
        }
        /// See [`TcpStream::readable`].
        pub async fn readable(&self) -> io::Result<()> {
            poll_fn(|cx| self.0.poll_read_ready(cx)).await
        }
    }

    impl WriteHalf<'_> {
        /// See [`TcpStream::peer_addr`].
        pub fn peer_addr(&self) -> io::Result<SocketAddr> {
            Ok(self.0.peer)
        }
        /// See [`TcpStream::writable`].
        pub async fn writable(&self) -> io::Result<()> {
            poll_fn(|cx| self.0.poll_write_ready(cx)).await
        }
    }

    async_read!(ReadHalf<'_>);
    async_write!(WriteHalf<'_>);
}

/// Owned halves ([`TcpStream::into_split`]).
pub mod split_owned {
    use super::*;

    /// The reading half.
    pub struct OwnedReadHalf(pub(crate) Arc<Conn>);

    /// The writing half: dropping it shuts the sending side down.
    pub struct OwnedWriteHalf {
        pub(crate) conn: Arc<Conn>,
        pub(crate) shutdown_on_drop: bool,
    }

    impl HasConn for OwnedReadHalf {
        fn conn(&self) -> &Conn {
            &self.0
        }
    }
    impl HasConn for OwnedWriteHalf {
        fn conn(&self) -> &Conn {
            &self.conn
        }
    }

    /// [`OwnedReadHalf::reunite`] with a write half of another stream.
    #[derive(Debug, thiserror::Error)]
    #[error("the halves are not of one stream")]
    pub struct ReuniteError;

    impl OwnedReadHalf {
        /// See [`TcpStream::peer_addr`].
        pub fn peer_addr(&self) -> io::Result<SocketAddr> {
            Ok(self.0.peer)
        }
        /// See [`TcpStream::readable`].
        pub async fn readable(&self) -> io::Result<()> {
            poll_fn(|cx| self.0.poll_read_ready(cx)).await
        }
        /// The stream again.
        pub fn reunite(self, mut w: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
            if !Arc::ptr_eq(&self.0, &w.conn) {
                return Err(ReuniteError);
            }
            w.shutdown_on_drop = false;
            drop(w);
            Ok(TcpStream { inner: self.0 })
        }
    }

    impl OwnedWriteHalf {
        /// See [`TcpStream::peer_addr`].
        pub fn peer_addr(&self) -> io::Result<SocketAddr> {
            Ok(self.conn.peer)
        }
        /// See [`TcpStream::writable`].
        pub async fn writable(&self) -> io::Result<()> {
            poll_fn(|cx| self.conn.poll_write_ready(cx)).await
        }
    }

    impl Drop for OwnedWriteHalf {
        fn drop(&mut self) {
            if self.shutdown_on_drop {
                let _ = self.conn.shutdown();
            }
        }
    }

    async_read!(OwnedReadHalf);
    async_write!(OwnedWriteHalf);
}
