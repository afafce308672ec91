//! Handles and errors of the engine's socket API.

use smoltcp::iface::SocketHandle;

/// A TCP listener on one engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(pub(crate) usize);

/// An accepted TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub(crate) SocketHandle);

/// A bound UDP socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpId(pub(crate) SocketHandle);

/// Why a bind was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindError {
    /// Port 0 cannot be listened on.
    #[error("port 0 cannot be bound")]
    PortZero,
    /// Something already holds the port on this engine.
    #[error("{proto} port {port} is already bound on this worker")]
    AddrInUse {
        /// "tcp" or "udp".
        proto: &'static str,
        /// The port.
        port: u16,
    },
    /// Backlog of zero.
    #[error("backlog must be at least 1")]
    ZeroBacklog,
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

/// Why a datagram operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UdpError {
    /// The handle names no bound socket.
    #[error("no such UDP socket")]
    NotFound,
    /// The send buffer is full (counted).
    #[error("UDP send buffer full")]
    BufferFull,
    /// The datagram does not fit the buffer or the MTU.
    #[error("datagram too large")]
    TooLarge,
}
