//! The ids of the engine's objects, a leaf the other modules share: the
//! registry's members, the listeners and UDP sockets built on them, and
//! connections (`socket`, `flow`, `reuseport` depend on it, it on nothing).

use std::fmt;

use serde::Serialize;

/// A listener's identity in the [`Registry`](crate::reuseport::Registry).
/// Ids grow with every bind and are never reused, so their order is bind
/// order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct MemberId(pub u64);

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

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
