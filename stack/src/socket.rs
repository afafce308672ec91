//! Handles and errors of the engine's socket API.

pub use crate::id::{ConnId, ListenerId, MemberId, UdpId};
pub use crate::reuseport::{BindAddr, BindError, BindOptions};

/// A map keyed by connection, with the flow tables' cheap keyed hasher
/// (applications keep per-connection state in one).
pub type ConnMap<V> = std::collections::HashMap<ConnId, V, crate::flow::FlowHash>;

/// Per-connection state of an application, indexed by the connection's
/// slot: a lookup is one index and one generation check, where a hash map
/// first probes its control bytes (a second cache miss per event at 100,000
/// connections). Slots are the engine's, dense from 0, so the vector stays
/// as long as the engine's connection table.
#[derive(Debug)]
pub struct ConnSlab<V> {
    slots: Vec<Option<(u32, V)>>,
    len: usize,
}

impl<V> Default for ConnSlab<V> {
    fn default() -> Self {
        ConnSlab {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<V> ConnSlab<V> {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Put `v` for `id`; returns what `id`'s slot held for any generation.
    pub fn insert(&mut self, id: ConnId, v: V) -> Option<V> {
        let i = id.idx as usize;
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        let old = self.slots[i].replace((id.gen, v)).map(|(_, v)| v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The entry of `id` (this generation only).
    pub fn get_mut(&mut self, id: &ConnId) -> Option<&mut V> {
        match self.slots.get_mut(id.idx as usize) {
            Some(Some((g, v))) if *g == id.gen => Some(v),
            _ => None,
        }
    }

    /// The entry of `id` (this generation only).
    pub fn get(&self, id: &ConnId) -> Option<&V> {
        match self.slots.get(id.idx as usize) {
            Some(Some((g, v))) if *g == id.gen => Some(v),
            _ => None,
        }
    }

    /// Take `id`'s entry (this generation only).
    pub fn remove(&mut self, id: &ConnId) -> Option<V> {
        let slot = self.slots.get_mut(id.idx as usize)?;
        if slot.as_ref().is_some_and(|(g, _)| *g == id.gen) {
            self.len -= 1;
            slot.take().map(|(_, v)| v)
        } else {
            None
        }
    }

    /// Every entry, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &V)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.as_ref().map(|(g, v)| {
                (
                    ConnId {
                        idx: i as u32,
                        gen: *g,
                    },
                    v,
                )
            })
        })
    }

    /// Drop every entry.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod slab_tests {
    use super::*;

    #[test]
    fn generations_and_slots() {
        let mut s = ConnSlab::default();
        let a = ConnId::new(3, 1);
        assert_eq!(s.insert(a, "a"), None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.get_mut(&a).copied(), Some("a"));
        // The slot's next generation is another connection.
        let b = ConnId::new(3, 2);
        assert_eq!(s.get(&b), None);
        assert_eq!(s.remove(&b), None);
        assert_eq!(s.remove(&a), Some("a"));
        assert!(s.is_empty());
        s.insert(b, "b");
        s.insert(ConnId::new(0, 9), "c");
        let all: Vec<_> = s.iter().map(|(id, v)| (id, *v)).collect();
        assert_eq!(all, vec![(ConnId::new(0, 9), "c"), (b, "b")]);
        s.clear();
        assert_eq!((s.len(), s.get(&b)), (0, None));
    }
}

/// Why a connection operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnError {
    /// The handle names no open connection.
    #[error("no such connection")]
    NotFound,
    /// The peer or we closed this direction.
    #[error("connection closed")]
    Closed,
}

/// Why the engine ended an accepted connection that the application still
/// held (see [`TcpApi::take_ended`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnEnd {
    /// The peer reset it (an RST the engine accepted).
    Reset,
    /// Both sides finished: the application had shut its side down and
    /// the peer acknowledged the close.
    Finished,
    /// The socket closed on its own during an egress pass (a timeout), or
    /// an outgoing connection's handshake did not finish within its
    /// connect timeout.
    TimedOut,
    /// The peer started a new connection on its 4-tuple after it had
    /// finished sending on this one (a SYN in CLOSE-WAIT).
    Restarted,
    /// An outgoing connection was refused: an RST answered its SYN, or an
    /// ICMP port unreachable (or administratively prohibited) quoted it.
    Refused,
    /// An outgoing connection's SYN met an ICMP host or network
    /// unreachable.
    Unreachable,
}

/// Why [`Engine::tcp_connect`](crate::engine::Engine::tcp_connect)
/// refused to open a connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ConnectError {
    /// The destination is unspecified, has port 0, or is of a family the
    /// engine has no address of.
    #[error("destination unaddressable: {0}")]
    Unaddressable(std::net::SocketAddr),
    /// The local address asked for is not one of the engine's.
    #[error("{0} is not an address of this stack")]
    NotLocal(std::net::IpAddr),
    /// Every port of the ephemeral range is in use towards that
    /// destination (Linux: EADDRNOTAVAIL).
    #[error("no free local port towards {0}")]
    NoPort(std::net::SocketAddr),
    /// The local port asked for is in use towards that destination (or
    /// by a listener).
    #[error("local address {0} in use")]
    InUse(std::net::SocketAddr),
    /// The engine holds `max_conns` connections.
    #[error("connection limit reached")]
    ConnLimit,
}

/// Why a datagram operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UdpError {
    /// The handle names no bound socket.
    #[error("no such UDP socket")]
    NotFound,
    /// No free frame to send it (counted).
    #[error("no transmit buffer free")]
    BufferFull,
    /// The datagram does not fit the MTU, or no source address of the
    /// destination's family.
    #[error("datagram too large or no address of that family")]
    TooLarge,
}

/// The TCP socket API an application is written against, so that one
/// application runs both inside a worker (on the [`Engine`] itself) and in
/// a separate process attached to the daemon (the `attach` crate's `Core`,
/// which moves the same calls through shared memory).
///
/// The meanings are [`Engine`]'s: `recv` returns `Ok(0)` when nothing is
/// there now and `Err(Closed)` at the end of the stream; `take_ready` lists
/// the accepted connections that had activity since the last call.
///
/// [`Engine`]: crate::engine::Engine
pub trait TcpApi {
    /// Why a listener operation failed.
    type Error: std::fmt::Display;
    /// Open a listener (one reuseport member on this core).
    fn tcp_listen(
        &mut self,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<ListenerId, Self::Error>;
    /// Choose how the listener's group selects members (where the
    /// application may; the daemon decides for attached processes).
    fn set_selector(&mut self, id: MemberId, sel: std::sync::Arc<dyn crate::reuseport::Selector>);
    /// Take an established connection off the listener's queue.
    fn accept(&mut self, id: ListenerId) -> Option<ConnId>;
    /// Connections waiting on the listener.
    fn pending(&self, id: ListenerId) -> usize;
    /// Stop taking new flows on the listener; its queue is still served.
    fn drain(&mut self, id: ListenerId) -> Result<(), Self::Error>;
    /// Close the listener; what waits on it migrates to a live member.
    fn close_listener(&mut self, id: ListenerId) -> Result<(), Self::Error>;
    /// Read into `buf`.
    fn recv(&mut self, c: ConnId, buf: &mut [u8]) -> Result<usize, ConnError>;
    /// Queue `data`; returns how much was taken.
    fn send(&mut self, c: ConnId, data: &[u8]) -> Result<usize, ConnError>;
    /// The peer's address.
    fn peer_addr(&mut self, c: ConnId) -> Option<std::net::SocketAddr>;
    /// FIN after the queued data; reading goes on.
    fn shutdown(&mut self, c: ConnId) -> Result<(), ConnError>;
    /// Close (FIN after queued data), forgetting the connection.
    fn close(&mut self, c: ConnId);
    /// Reset the connection.
    fn abort(&mut self, c: ConnId);
    /// Record activity for [`TcpApi::take_ready`].
    fn set_ready_tracking(&mut self, on: bool);
    /// The accepted connections with activity since the last call.
    fn take_ready(&mut self, out: &mut Vec<ConnId>);
    /// The accepted connections the engine ended since the last call
    /// (recorded while ready tracking is on), each once. They are released
    /// already: their ids name nothing any more.
    fn take_ended(&mut self, out: &mut Vec<(ConnId, ConnEnd)>);
    /// Connections still held (a graceful stop waits for 0).
    fn connections(&self) -> usize;
    /// Reset every connection, close every listener.
    fn abort_all(&mut self);
    /// The stack's report (listeners and counters), where this side sees it.
    fn report(&self) -> Option<crate::shared::StackReport>;
}

impl<R: nic::Rings> TcpApi for crate::engine::Engine<R> {
    type Error = BindError;
    fn tcp_listen(
        &mut self,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<ListenerId, BindError> {
        crate::engine::Engine::tcp_listen(self, addr, port, opts)
    }
    fn set_selector(&mut self, id: MemberId, sel: std::sync::Arc<dyn crate::reuseport::Selector>) {
        let _ = self.shared().registry.set_selector(id, sel);
    }
    fn accept(&mut self, id: ListenerId) -> Option<ConnId> {
        crate::engine::Engine::accept(self, id)
    }
    fn pending(&self, id: ListenerId) -> usize {
        crate::engine::Engine::pending(self, id)
    }
    fn drain(&mut self, id: ListenerId) -> Result<(), BindError> {
        crate::engine::Engine::drain(self, id)
    }
    fn close_listener(&mut self, id: ListenerId) -> Result<(), BindError> {
        crate::engine::Engine::close_listener(self, id)
    }
    fn recv(&mut self, c: ConnId, buf: &mut [u8]) -> Result<usize, ConnError> {
        crate::engine::Engine::recv(self, c, buf)
    }
    fn send(&mut self, c: ConnId, data: &[u8]) -> Result<usize, ConnError> {
        crate::engine::Engine::send(self, c, data)
    }
    fn peer_addr(&mut self, c: ConnId) -> Option<std::net::SocketAddr> {
        let e = self.peer(c).ok().flatten()?;
        Some(std::net::SocketAddr::new(
            crate::engine::to_std(e.addr),
            e.port,
        ))
    }
    fn shutdown(&mut self, c: ConnId) -> Result<(), ConnError> {
        crate::engine::Engine::shutdown(self, c)
    }
    fn close(&mut self, c: ConnId) {
        crate::engine::Engine::close(self, c)
    }
    fn abort(&mut self, c: ConnId) {
        crate::engine::Engine::abort(self, c)
    }
    fn set_ready_tracking(&mut self, on: bool) {
        crate::engine::Engine::set_ready_tracking(self, on)
    }
    fn take_ready(&mut self, out: &mut Vec<ConnId>) {
        crate::engine::Engine::take_ready(self, out)
    }
    fn take_ended(&mut self, out: &mut Vec<(ConnId, ConnEnd)>) {
        crate::engine::Engine::take_ended(self, out)
    }
    fn connections(&self) -> usize {
        crate::engine::Engine::connections(self)
    }
    fn abort_all(&mut self) {
        crate::engine::Engine::abort_all(self)
    }
    fn report(&self) -> Option<crate::shared::StackReport> {
        Some(self.shared().report())
    }
}

/// The UDP socket API, as [`TcpApi`] for TCP: the engine's own, or an
/// attached process's through shared memory.
pub trait UdpApi {
    /// Why a bind or close failed.
    type Error: std::fmt::Display;
    /// Bind a UDP socket (one reuseport member on this core).
    fn udp_bind(
        &mut self,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<UdpId, Self::Error>;
    /// Close it; queued datagrams are dropped.
    fn udp_close(&mut self, id: UdpId) -> Result<(), Self::Error>;
    /// One datagram into `buf`: its length (truncated to `buf`), the
    /// sender, our address it was sent to.
    fn recv_from(
        &mut self,
        id: UdpId,
        buf: &mut [u8],
    ) -> Result<Option<(usize, std::net::SocketAddr, std::net::IpAddr)>, UdpError>;
    /// Send one datagram to `to` from `from` (default: the bound address).
    fn send_to(
        &mut self,
        id: UdpId,
        data: &[u8],
        to: std::net::SocketAddr,
        from: Option<std::net::IpAddr>,
    ) -> Result<(), UdpError>;
}

impl<R: nic::Rings> UdpApi for crate::engine::Engine<R> {
    type Error = BindError;
    fn udp_bind(
        &mut self,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<UdpId, BindError> {
        crate::engine::Engine::udp_bind(self, addr, port, opts)
    }
    fn udp_close(&mut self, id: UdpId) -> Result<(), BindError> {
        crate::engine::Engine::udp_close(self, id)
    }
    fn recv_from(
        &mut self,
        id: UdpId,
        buf: &mut [u8],
    ) -> Result<Option<(usize, std::net::SocketAddr, std::net::IpAddr)>, UdpError> {
        crate::engine::Engine::recv_from(self, id, buf)
    }
    fn send_to(
        &mut self,
        id: UdpId,
        data: &[u8],
        to: std::net::SocketAddr,
        from: Option<std::net::IpAddr>,
    ) -> Result<(), UdpError> {
        crate::engine::Engine::send_to(self, id, data, to, from)
    }
}
