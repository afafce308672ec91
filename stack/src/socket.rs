//! Handles and errors of the engine's socket API.

pub use crate::reuseport::{BindAddr, BindError, BindOptions, MemberId};

/// A TCP connection of one engine: a slot in its connection table and the
/// slot's generation. A slot is reused after its connection is released;
/// an old id then names nothing (its generation is stale), never the new
/// connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

impl ConnId {
    /// The id of slot `idx` in generation `gen`.
    pub fn new(idx: u32, gen: u32) -> Self {
        ConnId { idx, gen }
    }

    /// The slot.
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// The slot's generation.
    pub fn generation(&self) -> u32 {
        self.gen
    }
}

/// A TCP listener (a reuseport group member) on one engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub MemberId);

/// A UDP socket (a reuseport group member) on one engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdpId(pub MemberId);

impl ListenerId {
    /// The registry member behind it.
    pub fn member(&self) -> MemberId {
        self.0
    }
}

impl UdpId {
    /// The registry member behind it.
    pub fn member(&self) -> MemberId {
        self.0
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
