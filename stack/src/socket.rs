//! Handles and errors of the engine's socket API.

use smoltcp::iface::SocketHandle;

pub use crate::reuseport::{BindAddr, BindError, BindOptions, MemberId};

/// An accepted TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub(crate) SocketHandle);

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
    /// No free frame to send it (counted).
    #[error("no transmit buffer free")]
    BufferFull,
    /// The datagram does not fit the MTU, or no source address of the
    /// destination's family.
    #[error("datagram too large or no address of that family")]
    TooLarge,
}
