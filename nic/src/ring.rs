//! The ring interface a [`Port`](crate::Port) runs over: the four AF_XDP rings
//! (fill, rx, tx, completion) plus the frame memory they point into.
//!
//! Two backends implement it: [`XskRings`](crate::xsk::XskRings), a real
//! AF_XDP socket, and `mem::MemRings` (feature `testing`), an in-memory pipe
//! that behaves like a copy-mode socket for tests that need no root.

use std::io;
use std::os::fd::RawFd;

/// A frame descriptor: a UMEM address and a length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Address of the packet data in the UMEM.
    pub addr: u64,
    /// Bytes of packet data.
    pub len: u32,
}

/// Counters the kernel keeps for an XSK (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Frames dropped for lack of rx ring space or other reasons.
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the tx ring.
    pub tx_invalid_descs: u64,
    /// Times the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty: u64,
    /// Times the tx ring was empty when the kernel looked.
    pub tx_ring_empty: u64,
}

impl KernelStats {
    /// Name/value pairs, for reports.
    pub fn fields(&self) -> [(&'static str, u64); 6] {
        [
            ("rx_dropped", self.rx_dropped),
            ("rx_invalid_descs", self.rx_invalid_descs),
            ("tx_invalid_descs", self.tx_invalid_descs),
            ("rx_ring_full", self.rx_ring_full),
            ("rx_fill_ring_empty", self.rx_fill_ring_empty),
            ("tx_ring_empty", self.tx_ring_empty),
        ]
    }
}

/// Frame memory shared by the rings and the stack.
///
/// # Safety
///
/// Implementors must hand out slices that lie inside frame `addr / frame_size`
/// and nowhere else, so that two different frames never alias. Callers of the
/// access methods promise the ledger invariant: they own the frame (it is in
/// [`Place::Rx`](crate::Place::Rx) or [`Place::TxBuild`](crate::Place::TxBuild))
/// and no other slice of it is live.
pub unsafe trait FrameMem {
    /// Number of frames.
    fn frame_count(&self) -> u32;
    /// Bytes per frame (the chunk size).
    fn frame_size(&self) -> u32;
    /// Address of the data segment of frame `index` (where tx and fill
    /// descriptors point).
    fn data_addr(&self, index: u32) -> u64;
    /// Usable bytes from a frame's data address to the end of the frame.
    fn data_capacity(&self) -> usize;

    /// Read `len` bytes at `addr`.
    ///
    /// # Safety
    ///
    /// The caller owns the frame holding `addr` (see the trait docs) for the
    /// whole call, and `addr..addr+len` lies inside that frame.
    unsafe fn with_frame<T>(&self, addr: u64, len: usize, f: impl FnOnce(&[u8]) -> T) -> T;

    /// Write up to `len` bytes at `addr`; the frame's length becomes `len`.
    ///
    /// # Safety
    ///
    /// As for [`FrameMem::with_frame`], and no other access to the frame is
    /// live during the call.
    unsafe fn with_frame_mut<T>(&self, addr: u64, len: usize, f: impl FnOnce(&mut [u8]) -> T) -> T;
}

/// The four rings of one XSK.
pub trait Rings {
    /// The frame memory these rings point into.
    type Mem: FrameMem;

    /// The frame memory.
    fn mem(&self) -> &Self::Mem;
    /// Put frames on the fill ring; returns how many were taken.
    fn fill(&mut self, addrs: &[u64]) -> usize;
    /// Free slots on the fill ring.
    fn fill_space(&mut self) -> usize;
    /// Take up to `max` received frames from the rx ring into `out`.
    fn recv(&mut self, out: &mut Vec<Frame>, max: usize) -> usize;
    /// Put frames on the tx ring; returns how many were taken.
    fn send(&mut self, frames: &[Frame]) -> usize;
    /// Take up to `max` completed tx addresses into `out`.
    fn complete(&mut self, out: &mut Vec<u64>, max: usize) -> usize;
    /// The kernel asked to be kicked to process the tx ring.
    fn tx_needs_wakeup(&self) -> bool;
    /// Kick the kernel to process the tx ring.
    fn wake_tx(&mut self) -> io::Result<()>;
    /// The kernel asked to be kicked to look at the fill ring.
    fn fill_needs_wakeup(&self) -> bool;
    /// Kick the kernel about the fill ring.
    fn wake_fill(&mut self) -> io::Result<()>;
    /// Sleep until a frame may be readable or `timeout_ms` passes.
    fn wait(&mut self, timeout_ms: i32) -> io::Result<()>;
    /// Sleep until a frame may be readable, `extra` is readable, or
    /// `timeout_ms` passes. Backends without a file descriptor return at once.
    fn wait_with(&mut self, extra: std::os::fd::BorrowedFd<'_>, timeout_ms: i32) -> io::Result<()> {
        let _ = extra;
        self.wait(timeout_ms)
    }
    /// The socket's file descriptor, when there is one.
    fn raw_fd(&self) -> Option<RawFd>;
    /// The kernel's counters, when there are any.
    fn kernel_stats(&self) -> Option<KernelStats>;
    /// Frames waiting on the rx ring and the ring's size, when known.
    fn rx_backlog(&mut self) -> Option<(usize, usize)> {
        None
    }
}
