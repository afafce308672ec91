//! A port's state apart from its rings: its configuration, counters, the
//! frame ledger and the free and transmit lists. [`Port`](crate::Port) owns
//! one; a [`PortDevice`](crate::PortDevice) borrows it for one smoltcp poll.
//! A leaf module, so the port and the device both depend on it and not on
//! each other.

use std::collections::VecDeque;

use crate::ledger::{Ledger, LedgerError, Place};
use crate::ring::Frame;

/// Tunables of a [`Port`](crate::Port).
#[derive(Clone, Debug)]
pub struct PortConfig {
    /// Frames taken from the rx ring (and sent per tx kick) at most per batch.
    pub batch: usize,
    /// Bytes reserved in front of every packet the stack transmits, for the
    /// link-layer header (14 for Ethernet).
    pub l2_headroom: usize,
    /// IP MTU announced to the stack.
    pub mtu: usize,
    /// Frames kept off the fill ring so that transmission never starves.
    pub tx_reserve: u32,
    /// Frames built for transmission that may wait for the tx ring at most;
    /// past that the stack is told the device is busy.
    pub tx_backlog: usize,
    /// Verify checksums in smoltcp (`false` when the caller's demux already
    /// verified them, as the engine's does).
    pub verify_rx_checksums: bool,
    /// Offer smoltcp an Ethernet device (it then does ARP/NDP itself) instead
    /// of an IP one. The engine uses IP; test peers may use Ethernet.
    pub ethernet: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            batch: 64,
            l2_headroom: 14,
            mtu: 1500,
            tx_reserve: 0,
            tx_backlog: 1024,
            verify_rx_checksums: true,
            ethernet: false,
        }
    }
}

/// Counters of a port (this process's side; the kernel's are in
/// [`KernelStats`](crate::KernelStats)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames put on the tx ring.
    pub tx_frames: u64,
    /// Bytes put on the tx ring.
    pub tx_bytes: u64,
    /// Frames the stack wanted to send but no free frame was left (dropped).
    pub tx_no_frame: u64,
    /// Times the tx ring was full and frames had to wait.
    pub tx_ring_full: u64,
    /// Frames dropped by the caller's link-layer fixup before sending.
    pub tx_dropped: u64,
    /// Kicks (sendto) for the tx ring.
    pub tx_kicks: u64,
    /// Kicks (poll) for the fill ring.
    pub fill_kicks: u64,
    /// Received descriptors that pointed outside the UMEM or a frame.
    pub rx_bad_desc: u64,
    /// Times the port slept waiting for frames.
    pub waits: u64,
}

/// A received IP packet inside a held rx frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxPacket {
    /// The frame holding it.
    pub frame: Frame,
    /// Offset of the packet in the frame.
    pub offset: usize,
    /// Length of the packet.
    pub len: usize,
}

pub(crate) struct PortState {
    pub(crate) cfg: PortConfig,
    pub(crate) ledger: Ledger,
    pub(crate) free: Vec<u64>,
    /// Frames from the stack that still need their link-layer header.
    pub(crate) tx_build: Vec<Frame>,
    /// Complete frames waiting for the tx ring.
    pub(crate) tx_ready: VecDeque<Frame>,
    pub(crate) counters: PortCounters,
    pub(crate) frame_size: u64,
    pub(crate) capacity: usize,
    pub(crate) scratch: Vec<u8>,
    pub(crate) first_error: Option<LedgerError>,
    /// Transmit-pool frames that are free (ledger place Free, but never on
    /// the fill ring): see [`Port::make_tx_pool`](crate::Port::make_tx_pool).
    pub(crate) pool: Vec<u64>,
    /// Which frames (by index) belong to the transmit pool.
    pub(crate) pooled: Vec<bool>,
}

impl PortState {
    pub(crate) fn index(&self, addr: u64) -> u32 {
        (addr / self.frame_size) as u32
    }

    /// Record a ledger move; a refused move is a bug in this crate, kept
    /// (first one) for [`Port::check`](crate::Port::check) rather than panicking on the data path.
    pub(crate) fn mv(&mut self, addr: u64, from: Place, to: Place) -> bool {
        let index = self.index(addr);
        match self.ledger.move_frame(index, from, to) {
            Ok(()) => true,
            Err(e) => {
                debug_assert!(false, "{e}");
                self.first_error.get_or_insert(e);
                false
            }
        }
    }

    /// Take a free frame for transmission.
    pub(crate) fn alloc_tx(&mut self) -> Option<u64> {
        if self.tx_build.len() + self.tx_ready.len() >= self.cfg.tx_backlog {
            return None;
        }
        let addr = self.free.pop()?;
        if self.mv(addr, Place::Free, Place::TxBuild) {
            Some(addr)
        } else {
            None
        }
    }

    /// Take a free frame for `len` bytes to send; `None` (counted) when
    /// `len` is past a frame's capacity or no frame is free.
    #[inline]
    pub(crate) fn alloc_tx_for(&mut self, len: usize) -> Option<u64> {
        if len > self.capacity {
            self.counters.tx_dropped += 1;
            return None;
        }
        let addr = self.alloc_tx();
        if addr.is_none() {
            self.counters.tx_no_frame += 1;
        }
        addr
    }

    pub(crate) fn can_tx(&self) -> bool {
        !self.free.is_empty() && self.tx_build.len() + self.tx_ready.len() < self.cfg.tx_backlog
    }
}
