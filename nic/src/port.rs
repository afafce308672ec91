//! A port: one XSK's rings, its frame accounting, batching and kicks.

use std::collections::VecDeque;

use crate::ledger::{Ledger, LedgerError, Place};
use crate::ring::{Frame, FrameMem, KernelStats, Rings};
use crate::state::PortState;
pub use crate::state::{PortConfig, PortCounters, RxPacket};

/// A snapshot of a port's state for reports.
#[derive(Clone, Debug)]
pub struct PortStats {
    /// This process's counters.
    pub counters: PortCounters,
    /// Frames per place, in [`Place::ALL`] order.
    pub frames: [u32; 5],
    /// The kernel's counters, when the backend has any.
    pub kernel: Option<KernelStats>,
}

/// One XSK (or test backend) with its frames accounted for.
pub struct Port<R: Rings> {
    rings: R,
    st: PortState,
    scratch_rx: Vec<Frame>,
    scratch_addrs: Vec<u64>,
    scratch_tx: Vec<Frame>,
}

impl<R: Rings> Port<R> {
    /// Wrap `rings`; every frame starts free and the fill ring is stocked.
    pub fn new(rings: R, cfg: PortConfig) -> Self {
        let mem = rings.mem();
        let frames = mem.frame_count();
        let free: Vec<u64> = (0..frames).rev().map(|i| mem.data_addr(i)).collect();
        let capacity = mem.data_capacity();
        let st = PortState {
            ledger: Ledger::new(frames),
            free,
            tx_build: Vec::with_capacity(cfg.batch),
            tx_ready: VecDeque::with_capacity(cfg.batch),
            counters: PortCounters::default(),
            frame_size: u64::from(mem.frame_size()),
            capacity,
            scratch: vec![0; capacity],
            first_error: None,
            pool: Vec::new(),
            pooled: vec![false; frames as usize],
            cfg,
        };
        let mut port = Port {
            rings,
            st,
            scratch_rx: Vec::new(),
            scratch_addrs: Vec::new(),
            scratch_tx: Vec::new(),
        };
        port.refill();
        port
    }

    /// The configuration.
    pub fn config(&self) -> &PortConfig {
        &self.st.cfg
    }

    /// The ring backend.
    pub fn rings(&self) -> &R {
        &self.rings
    }

    /// Give free frames to the fill ring, keeping the tx reserve.
    pub fn refill(&mut self) {
        let reserve = self.st.cfg.tx_reserve as usize;
        let spare = self.st.free.len().saturating_sub(reserve);
        let n = spare.min(self.rings.fill_space());
        if n == 0 {
            return;
        }
        let start = self.st.free.len() - n;
        self.scratch_addrs.clear();
        self.scratch_addrs.extend_from_slice(&self.st.free[start..]);
        let taken = self.rings.fill(&self.scratch_addrs);
        for i in 0..taken {
            let addr = self.scratch_addrs[i];
            self.st.mv(addr, Place::Free, Place::Fill);
        }
        // Frames the ring took (the first `taken` of the batch) leave the
        // free list; the rest stay.
        self.st.free.truncate(start);
        self.st
            .free
            .extend_from_slice(&self.scratch_addrs[taken.min(n)..n]);
        if taken > 0 && self.rings.fill_needs_wakeup() {
            self.st.counters.fill_kicks += 1;
            let _ = self.rings.wake_fill();
        }
    }

    /// Take completed tx frames back.
    pub fn reap(&mut self) {
        loop {
            self.scratch_addrs.clear();
            let n = self.rings.complete(&mut self.scratch_addrs, 256);
            for i in 0..n {
                let raw = self.scratch_addrs[i];
                let index = self.st.index(raw);
                let addr = self.rings.mem().data_addr(index);
                if self.st.mv(addr, Place::Tx, Place::Free) {
                    if self.st.pooled.get(index as usize).copied().unwrap_or(false) {
                        self.st.pool.push(addr);
                    } else {
                        self.st.free.push(addr);
                    }
                }
            }
            if n < 256 {
                break;
            }
        }
    }

    /// Receive up to one batch of frames into `out` (cleared first). Every
    /// frame returned is held until [`Port::release`].
    pub fn recv(&mut self, out: &mut Vec<Frame>) -> usize {
        out.clear();
        self.reap();
        self.refill();
        self.scratch_rx.clear();
        let batch = self.st.cfg.batch;
        self.rings.recv(&mut self.scratch_rx, batch);
        let frames = u64::from(self.rings.mem().frame_count());
        for i in 0..self.scratch_rx.len() {
            let f = self.scratch_rx[i];
            let index = self.st.index(f.addr);
            let in_frame = f.addr % self.st.frame_size + u64::from(f.len) <= self.st.frame_size;
            if u64::from(index) >= frames {
                // Nothing to give back: it names no frame of ours.
                self.st.counters.rx_bad_desc += 1;
                continue;
            }
            if !self.st.mv(f.addr, Place::Fill, Place::Rx) {
                self.st.counters.rx_bad_desc += 1;
                continue;
            }
            let canonical = self.rings.mem().data_addr(index) == f.addr;
            if !in_frame || !canonical || (f.len as usize) > self.st.capacity {
                self.st.counters.rx_bad_desc += 1;
                self.release(f);
                continue;
            }
            self.st.counters.rx_frames += 1;
            self.st.counters.rx_bytes += u64::from(f.len);
            out.push(f);
        }
        out.len()
    }

    /// Read a held rx frame. `None` if the frame is not held (a caller bug).
    pub fn read<T>(&self, f: Frame, g: impl FnOnce(&[u8]) -> T) -> Option<T> {
        if self.st.ledger.place(self.st.index(f.addr)) != Some(Place::Rx) {
            return None;
        }
        // SAFETY: the ledger says the frame is held by the stack (Rx): the
        // kernel no longer writes it and the port hands out no other mutable
        // slice of it; `recv` checked that addr..addr+len lies in the frame.
        Some(unsafe { self.rings.mem().with_frame(f.addr, f.len as usize, g) })
    }

    /// Give a held rx frame back (it goes to the fill ring on the next batch).
    pub fn release(&mut self, f: Frame) {
        let addr = self.rings.mem().data_addr(self.st.index(f.addr));
        if self.st.mv(addr, Place::Rx, Place::Free) {
            self.st.free.push(addr);
        }
    }

    /// Turn a held rx frame into a tx frame in place (for reflectors): `g`
    /// may rewrite it and returns the length to send, or `None` to drop it.
    pub fn reflect(&mut self, f: Frame, g: impl FnOnce(&mut [u8]) -> Option<usize>) {
        let addr = f.addr;
        if !self.st.mv(addr, Place::Rx, Place::TxBuild) {
            return;
        }
        let cap = self.st.capacity;
        // SAFETY: the frame moved Rx -> TxBuild in the ledger just now, so this
        // port owns it exclusively and nothing else reads or writes it; `cap`
        // stops at the end of the frame.
        let len = unsafe { self.rings.mem().with_frame_mut(addr, cap, |b| g(b)) };
        match len {
            Some(len) if len <= cap => self.st.tx_ready.push_back(Frame {
                addr,
                len: len as u32,
            }),
            _ => {
                if self.st.mv(addr, Place::TxBuild, Place::Free) {
                    self.st.free.push(addr);
                }
                self.st.counters.tx_dropped += 1;
            }
        }
    }

    /// Send a complete link-layer frame of `len` bytes written by `g`.
    /// Returns false (counted) when no frame is free.
    pub fn send_frame(&mut self, len: usize, g: impl FnOnce(&mut [u8])) -> bool {
        let Some(addr) = self.st.alloc_tx_for(len) else {
            return false;
        };
        // SAFETY: `alloc_tx_for` moved the frame Free -> TxBuild, so it is owned by
        // this port alone; len <= capacity keeps the slice inside the frame.
        unsafe { self.rings.mem().with_frame_mut(addr, len, g) };
        self.st.tx_ready.push_back(Frame {
            addr,
            len: len as u32,
        });
        true
    }

    /// Set aside up to `n` free frames as a transmit pool and write each
    /// once with `init` (it gets the whole frame; returning false stops early
    /// and leaves that frame out of the pool). Returns how many frames the
    /// pool holds in all.
    ///
    /// Pool frames never go to the fill ring and nothing but
    /// [`Port::send_pooled`] writes them, so what was last written into one
    /// is still there the next time it is handed out: a packet generator
    /// builds its template once and patches a few fields per packet. In the
    /// ledger a pool frame is [`Place::Free`] between sends (it is counted
    /// there by [`PortStats::frames`]) and `TxBuild`/`Tx` while sent.
    pub fn make_tx_pool(&mut self, n: usize, mut init: impl FnMut(&mut [u8]) -> bool) -> usize {
        let cap = self.st.capacity;
        for _ in 0..n {
            let Some(addr) = self.st.free.pop() else {
                break;
            };
            if !self.st.mv(addr, Place::Free, Place::TxBuild) {
                break;
            }
            // SAFETY: the frame moved Free -> TxBuild just now, so this port
            // owns it alone (it is on no ring and no list); `cap` is the
            // frame's data capacity.
            let ok = unsafe { self.rings.mem().with_frame_mut(addr, cap, &mut init) };
            if !self.st.mv(addr, Place::TxBuild, Place::Free) {
                break;
            }
            if !ok {
                self.st.free.push(addr);
                break;
            }
            let index = self.st.index(addr) as usize;
            if let Some(p) = self.st.pooled.get_mut(index) {
                *p = true;
            }
            self.st.pool.push(addr);
        }
        self.pool_size()
    }

    /// Frames in the transmit pool, free or in flight.
    pub fn pool_size(&self) -> usize {
        self.st.pooled.iter().filter(|p| **p).count()
    }

    /// Transmit-pool frames free right now.
    pub fn pool_free(&self) -> usize {
        self.st.pool.len()
    }

    /// Send a transmit-pool frame: `g` gets the whole frame as it was last
    /// written (by the pool's `init` or an earlier `g`), patches it and
    /// returns the length to send, or `None` to put it back unsent. False
    /// when the pool has no free frame, too many frames wait for the tx ring
    /// ([`PortConfig::tx_backlog`]), or `g` said no. Not counted as
    /// `tx_no_frame`: an empty pool is the generator's back-pressure.
    pub fn send_pooled(&mut self, g: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        if self.st.tx_build.len() + self.st.tx_ready.len() >= self.st.cfg.tx_backlog {
            return false;
        }
        let Some(addr) = self.st.pool.pop() else {
            return false;
        };
        if !self.st.mv(addr, Place::Free, Place::TxBuild) {
            return false;
        }
        let cap = self.st.capacity;
        // SAFETY: the frame moved Free -> TxBuild just now: pool frames are on
        // no ring and no other list, so this port owns it alone; `cap` is the
        // frame's data capacity.
        let len = unsafe { self.rings.mem().with_frame_mut(addr, cap, g) };
        match len {
            Some(len) if len <= cap => {
                self.st.tx_ready.push_back(Frame {
                    addr,
                    len: len as u32,
                });
                true
            }
            _ => {
                if self.st.mv(addr, Place::TxBuild, Place::Free) {
                    self.st.pool.push(addr);
                }
                false
            }
        }
    }

    /// Build an IP packet of `ip_len` bytes with `g` (written after the
    /// link-layer headroom); it gets its link-layer header at the next
    /// [`Port::flush`], like the stack's own packets. False (counted) when no
    /// frame is free or the packet does not fit.
    pub fn send_ip(&mut self, ip_len: usize, g: impl FnOnce(&mut [u8])) -> bool {
        let headroom = self.st.cfg.l2_headroom;
        let total = headroom + ip_len;
        let Some(addr) = self.st.alloc_tx_for(total) else {
            return false;
        };
        // SAFETY: `alloc_tx_for` moved the frame Free -> TxBuild, so this port
        // owns it alone; `total` fits the frame's data capacity.
        unsafe {
            self.rings
                .mem()
                .with_frame_mut(addr, total, |b| g(&mut b[headroom..total]))
        };
        self.st.tx_build.push(Frame {
            addr,
            len: total as u32,
        });
        true
    }

    /// Copy `bytes` (a packet handed over from another core) into a free
    /// frame that is then held like a received one: read it, feed it to the
    /// stack, [`Port::release`] it. `None` (counted) when no frame is free.
    pub fn inject(&mut self, offset: usize, bytes: &[u8]) -> Option<Frame> {
        let len = offset + bytes.len();
        if len > self.st.capacity {
            self.st.counters.tx_dropped += 1;
            return None;
        }
        let Some(addr) = self.st.free.pop() else {
            self.st.counters.tx_no_frame += 1;
            return None;
        };
        if !self.st.mv(addr, Place::Free, Place::Rx) {
            // The ledger refused (recorded for `check`); keep the frame listed.
            self.st.free.push(addr);
            return None;
        }
        // SAFETY: the frame moved Free -> Rx just now: this port owns it and
        // the kernel does not; `len` fits its capacity.
        unsafe {
            self.rings
                .mem()
                .with_frame_mut(addr, len, |b| b[offset..len].copy_from_slice(bytes))
        };
        Some(Frame {
            addr,
            len: len as u32,
        })
    }

    /// Sleep until frames may have arrived, `extra` is readable, or
    /// `timeout_ms` passed.
    pub fn wait_with(
        &mut self,
        extra: std::os::fd::BorrowedFd<'_>,
        timeout_ms: i32,
    ) -> std::io::Result<()> {
        self.refill();
        self.st.counters.waits += 1;
        self.rings.wait_with(extra, timeout_ms)
    }

    /// Whether a frame can be built for transmission now (a free frame, and
    /// fewer than [`PortConfig::tx_backlog`] waiting for the tx ring).
    pub fn can_send(&self) -> bool {
        self.st.can_tx()
    }

    /// A smoltcp device over this port for one `poll_ingress_single` (with
    /// `rx`) or `poll_egress` (without). `rx` must lie in a frame held from
    /// [`Port::recv`]; a packet in a frame that is not held is not read (the
    /// caller bug is kept for [`Port::check`]).
    pub fn device(&mut self, rx: Option<RxPacket>) -> crate::device::PortDevice<'_, R::Mem> {
        let rx = rx.filter(|p| {
            let index = self.st.index(p.frame.addr);
            match self.st.ledger.place(index) {
                Some(Place::Rx) => true,
                actual => {
                    let count = self.st.ledger.frames();
                    self.st.first_error.get_or_insert(match actual {
                        Some(actual) => LedgerError::WrongPlace {
                            index,
                            from: Place::Rx,
                            to: Place::Rx,
                            actual,
                        },
                        None => LedgerError::OutOfRange { index, count },
                    });
                    false
                }
            }
        });
        crate::device::PortDevice::new(self.rings.mem(), &mut self.st, rx)
    }

    /// Frames handed to the kernel for transmission and not completed yet
    /// (on the tx or the completion ring). In copy mode the kernel sends a
    /// bounded number per kick, so a caller with frames in flight should
    /// keep flushing rather than sleep on the rx side.
    pub fn in_flight(&self) -> u32 {
        self.st.ledger.count(Place::Tx)
    }

    /// The most frames one [`Port::recv`] returns.
    pub fn batch(&self) -> usize {
        self.st.cfg.batch
    }

    /// Frames waiting on the rx ring and the ring's size, when the rings
    /// know them.
    pub fn rx_backlog(&mut self) -> Option<(usize, usize)> {
        self.rings.rx_backlog()
    }

    /// Frames built by the stack and waiting for their link-layer header.
    pub fn pending_tx(&self) -> usize {
        self.st.tx_build.len() + self.st.tx_ready.len()
    }

    /// Finish the frames the stack built (`fixup(frame, ip_len)` writes the
    /// link-layer header and returns the frame length, or `None` to drop),
    /// put everything ready on the tx ring and kick the kernel if it asks.
    pub fn flush(&mut self, mut fixup: impl FnMut(&mut [u8], usize) -> Option<usize>) {
        let headroom = self.st.cfg.l2_headroom;
        let cap = self.st.capacity;
        let build = std::mem::take(&mut self.st.tx_build);
        for f in &build {
            // SAFETY: frames on tx_build were moved Free -> TxBuild by
            // `alloc_tx` and are owned by this port alone until sent; `cap`
            // is the frame's data capacity.
            let out = unsafe {
                self.rings
                    .mem()
                    .with_frame_mut(f.addr, cap, |b| fixup(b, f.len as usize - headroom))
            };
            match out {
                Some(len) if len <= cap => self.st.tx_ready.push_back(Frame {
                    addr: f.addr,
                    len: len as u32,
                }),
                _ => {
                    self.st.counters.tx_dropped += 1;
                    if self.st.mv(f.addr, Place::TxBuild, Place::Free) {
                        self.st.free.push(f.addr);
                    }
                }
            }
        }
        let mut build = build;
        build.clear();
        self.st.tx_build = build;
        self.push_tx();
    }

    fn push_tx(&mut self) {
        if !self.st.tx_ready.is_empty() {
            self.scratch_tx.clear();
            self.scratch_tx.extend(self.st.tx_ready.iter().copied());
            let sent = self.rings.send(&self.scratch_tx);
            for f in self.st.tx_ready.drain(..sent) {
                self.st.counters.tx_frames += 1;
                self.st.counters.tx_bytes += u64::from(f.len);
                let index = (f.addr / self.st.frame_size) as u32;
                if let Err(e) = self.st.ledger.move_frame(index, Place::TxBuild, Place::Tx) {
                    self.st.first_error.get_or_insert(e);
                }
            }
            if !self.st.tx_ready.is_empty() {
                self.st.counters.tx_ring_full += 1;
            }
        }
        if self.rings.tx_needs_wakeup() && self.st.ledger.count(Place::Tx) > 0 {
            self.st.counters.tx_kicks += 1;
            let _ = self.rings.wake_tx();
        }
        self.reap();
    }

    /// Sleep until frames may have arrived or `timeout_ms` passed.
    pub fn wait(&mut self, timeout_ms: i32) -> std::io::Result<()> {
        self.refill();
        self.st.counters.waits += 1;
        self.rings.wait(timeout_ms)
    }

    /// Prove the accounting: every frame is in exactly one place, the free
    /// list matches the ledger, and no refused move ever happened.
    pub fn check(&self) -> Result<(), LedgerError> {
        if let Some(e) = &self.st.first_error {
            return Err(e.clone());
        }
        self.st.ledger.check()?;
        let l = &self.st.ledger;
        let free_ok = (self.st.free.len() + self.st.pool.len()) as u32 == l.count(Place::Free);
        let build_ok =
            (self.st.tx_build.len() + self.st.tx_ready.len()) as u32 == l.count(Place::TxBuild);
        if !free_ok || !build_ok {
            let mut listed = l.counts();
            listed[Place::Free as usize] = (self.st.free.len() + self.st.pool.len()) as u32;
            listed[Place::TxBuild as usize] =
                (self.st.tx_build.len() + self.st.tx_ready.len()) as u32;
            return Err(LedgerError::Mismatch {
                counted: l.counts(),
                recounted: listed,
            });
        }
        Ok(())
    }

    /// Counters and frame places.
    pub fn stats(&self) -> PortStats {
        PortStats {
            counters: self.st.counters.clone(),
            frames: self.st.ledger.counts(),
            kernel: self.rings.kernel_stats(),
        }
    }

    /// Frames moved between places since start (for accounting reports).
    pub fn moves(&self) -> u64 {
        self.st.ledger.moves()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::tests::small;
    use crate::mem::{MemConfig, MemFrames, MemRings};
    use std::io;
    use std::os::fd::RawFd;

    /// MemRings whose fill ring takes at most `take` frames per call, as a
    /// ring with little space (or a backend that takes part of a batch) does.
    struct Stingy {
        inner: MemRings,
        take: usize,
    }

    impl Rings for Stingy {
        type Mem = MemFrames;
        fn mem(&self) -> &MemFrames {
            self.inner.mem()
        }
        fn fill(&mut self, addrs: &[u64]) -> usize {
            self.inner.fill(&addrs[..addrs.len().min(self.take)])
        }
        fn fill_space(&mut self) -> usize {
            self.inner.fill_space()
        }
        fn recv(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
            self.inner.recv(out, max)
        }
        fn send(&mut self, frames: &[Frame]) -> usize {
            self.inner.send(frames)
        }
        fn complete(&mut self, out: &mut Vec<u64>, max: usize) -> usize {
            self.inner.complete(out, max)
        }
        fn tx_needs_wakeup(&self) -> bool {
            self.inner.tx_needs_wakeup()
        }
        fn wake_tx(&mut self) -> io::Result<()> {
            self.inner.wake_tx()
        }
        fn fill_needs_wakeup(&self) -> bool {
            self.inner.fill_needs_wakeup()
        }
        fn wake_fill(&mut self) -> io::Result<()> {
            self.inner.wake_fill()
        }
        fn wait(&mut self, timeout_ms: i32) -> io::Result<()> {
            self.inner.wait(timeout_ms)
        }
        fn raw_fd(&self) -> Option<RawFd> {
            self.inner.raw_fd()
        }
        fn kernel_stats(&self) -> Option<KernelStats> {
            self.inner.kernel_stats()
        }
    }

    /// A port (its peer gone) that keeps at most `tx_backlog` frames
    /// waiting to be sent.
    fn with_backlog(tx_backlog: usize) -> Port<MemRings> {
        let (ra, _rb) = MemRings::pair(MemConfig::default());
        let cfg = PortConfig {
            tx_backlog,
            ..PortConfig::default()
        };
        Port::new(ra, cfg)
    }

    fn free_list_matches_ledger<R: Rings>(p: &Port<R>) {
        let mut seen = std::collections::HashSet::new();
        for &addr in &p.st.free {
            assert!(seen.insert(addr), "frame {addr:#x} twice on the free list");
            assert_eq!(
                p.st.ledger.place(p.st.index(addr)),
                Some(Place::Free),
                "frame {addr:#x} on the free list is not free"
            );
        }
        p.check().unwrap();
    }

    /// When the fill ring takes only part of a batch, the frames it took
    /// leave the free list and the others stay (the old code kept the taken
    /// ones and lost the rest).
    #[test]
    fn partial_fill_keeps_the_frames_the_ring_refused() {
        let cfg = small(16, 8);
        let (ra, _rb) = MemRings::pair(cfg);
        let mut p = Port::new(Stingy { inner: ra, take: 3 }, PortConfig::default());
        assert_eq!(p.st.ledger.count(Place::Fill), 3);
        free_list_matches_ledger(&p);
        p.refill();
        assert_eq!(p.st.ledger.count(Place::Fill), 6);
        free_list_matches_ledger(&p);
        // Every free frame can be sent.
        let mut sent = 0;
        while p.send_frame(60, |b| b.fill(0)) {
            sent += 1;
        }
        assert_eq!(sent, 10);
        p.check().unwrap();
        p.flush(|_, len| Some(len));
        free_list_matches_ledger(&p);
    }

    #[test]
    fn tx_reserve_stays_off_the_fill_ring() {
        let cfg = small(32, 32);
        let (ra, _rb) = MemRings::pair(cfg);
        let p = Port::new(
            ra,
            PortConfig {
                tx_reserve: 5,
                ..PortConfig::default()
            },
        );
        assert_eq!(p.stats().frames, [5, 27, 0, 0, 0]);
        free_list_matches_ledger(&p);
    }

    #[test]
    fn tx_backlog_bounds_frames_waiting() {
        let mut p = with_backlog(4);
        for _ in 0..4 {
            assert!(p.send_frame(60, |_| {}));
        }
        assert!(!p.send_frame(60, |_| {}));
        assert_eq!(p.stats().counters.tx_no_frame, 1);
        assert!(!p.send_frame(p.st.capacity + 1, |_| {}), "oversized");
        assert_eq!(p.stats().counters.tx_dropped, 1);
        p.flush(|_, len| Some(len));
        assert_eq!(p.pending_tx(), 0);
        assert!(p.send_frame(60, |_| {}));
        p.check().unwrap();
    }

    /// Pool frames keep what was written into them between sends, never go
    /// to the fill ring, come back to the pool when completed, and are
    /// accounted for.
    #[test]
    fn tx_pool_frames_keep_their_contents() {
        let (ra, rb) = MemRings::pair(MemConfig::default());
        let mut a = Port::new(ra, PortConfig::default());
        let mut b = Port::new(rb, PortConfig::default());
        let free_before = a.st.free.len();
        assert_eq!(
            a.make_tx_pool(4, |f| {
                f[..64].fill(0xaa);
                true
            }),
            4
        );
        assert_eq!(a.pool_free(), 4);
        assert_eq!(a.st.free.len(), free_before - 4);
        a.check().unwrap();
        let mut frames = Vec::new();
        let mut seen = 0;
        for round in 0..10u8 {
            // Each pool frame still holds the template and the last patch.
            for _ in 0..4 {
                assert!(a.send_pooled(|f| {
                    assert!(f[1..64].iter().all(|&x| x == 0xaa), "template kept");
                    let last = if round == 0 { 0xaa } else { round - 1 };
                    assert_eq!(f[0], last, "the last patch is still there");
                    f[0] = round;
                    Some(64)
                }));
            }
            assert!(!a.send_pooled(|_| Some(64)), "pool is empty");
            a.flush(|_, len| Some(len));
            a.refill();
            // The fill ring never took a pool frame.
            for &addr in &a.st.pool {
                assert!(a.st.pooled[a.st.index(addr) as usize]);
            }
            a.reap();
            assert_eq!(a.pool_free(), 4, "completed pool frames come back");
            a.check().unwrap();
            b.recv(&mut frames);
            for f in frames.drain(..) {
                assert_eq!(b.read(f, |x| (x.len(), x[0])), Some((64, round)));
                b.release(f);
                seen += 1;
            }
        }
        assert_eq!(seen, 40);
        assert_eq!(a.pool_size(), 4);
        // A patch that declines puts the frame back unsent.
        assert!(!a.send_pooled(|_| None));
        assert_eq!(a.pool_free(), 4);
        free_list_matches_ledger(&a);
    }

    #[test]
    fn tx_pool_respects_backlog_and_stops_when_init_declines() {
        let mut a = with_backlog(2);
        let mut calls = 0;
        let n = a.make_tx_pool(8, |_| {
            calls += 1;
            calls <= 3
        });
        assert_eq!(n, 3);
        assert_eq!(a.pool_free(), 3);
        assert!(a.send_pooled(|_| Some(60)));
        assert!(a.send_pooled(|_| Some(60)));
        assert!(!a.send_pooled(|_| Some(60)), "backlog of 2");
        assert!(!a.send_pooled(|_| Some(1 << 20)), "oversized");
        a.check().unwrap();
        a.flush(|_, len| Some(len));
        free_list_matches_ledger(&a);
        assert_eq!(a.pool_free(), 3);
    }

    #[test]
    fn reflect_drop_gives_the_frame_back() {
        let (ra, rb) = MemRings::pair(MemConfig::default());
        let mut a = Port::new(ra, PortConfig::default());
        let mut b = Port::new(rb, PortConfig::default());
        assert!(a.send_frame(80, |x| x.fill(9)));
        a.flush(|_, len| Some(len));
        let mut frames = Vec::new();
        assert_eq!(b.recv(&mut frames), 1);
        let before = b.stats().frames;
        b.reflect(frames[0], |_| None);
        let after = b.stats().frames;
        assert_eq!(after[Place::Rx as usize], before[Place::Rx as usize] - 1);
        assert_eq!(
            after[Place::Free as usize],
            before[Place::Free as usize] + 1
        );
        assert_eq!(b.stats().counters.tx_dropped, 1);
        // Reading a frame no longer held gives nothing.
        assert_eq!(b.read(frames[0], |x| x.len()), None);
        free_list_matches_ledger(&b);
    }
}
