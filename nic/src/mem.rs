//! An in-memory pipe with the semantics of a copy-mode XSK pair, for tests
//! that need no root: each end has its own frames and rings; a frame sent on
//! one end is copied into a fill-ring frame of the other end, or dropped and
//! counted when that end has none (as the kernel does).

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::ring::{Frame, FrameMem, KernelStats, Rings};

/// Frames of one pipe end.
pub struct MemFrames {
    buf: Box<[UnsafeCell<u8>]>,
    frame_size: u32,
    headroom: u32,
    count: u32,
}

impl MemFrames {
    fn new(count: u32, frame_size: u32, headroom: u32) -> Self {
        let len = count as usize * frame_size as usize;
        MemFrames {
            buf: (0..len).map(|_| UnsafeCell::new(0)).collect(),
            frame_size,
            headroom,
            count,
        }
    }

    fn in_bounds(&self, addr: u64, len: usize) -> bool {
        let fs = u64::from(self.frame_size);
        let start_in_frame = addr % fs;
        addr / fs < u64::from(self.count) && start_in_frame + len as u64 <= fs
    }
}

// SAFETY: `with_frame`/`with_frame_mut` check that `addr..addr+len` lies inside
// one frame (`in_bounds`) and build slices only over that range, so slices of
// different frames never alias.
unsafe impl FrameMem for MemFrames {
    fn frame_count(&self) -> u32 {
        self.count
    }
    fn frame_size(&self) -> u32 {
        self.frame_size
    }
    fn data_addr(&self, index: u32) -> u64 {
        u64::from(index) * u64::from(self.frame_size) + u64::from(self.headroom)
    }
    fn data_capacity(&self) -> usize {
        (self.frame_size - self.headroom) as usize
    }

    unsafe fn with_frame<T>(&self, addr: u64, len: usize, f: impl FnOnce(&[u8]) -> T) -> T {
        if !self.in_bounds(addr, len) {
            return f(&[]);
        }
        let start = UnsafeCell::raw_get(self.buf.as_ptr()).wrapping_add(addr as usize);
        // SAFETY: the range is inside one frame of `buf` (checked above), the
        // cells are plain bytes, and the caller owns the frame so nothing
        // writes it during the call.
        let slice = unsafe { std::slice::from_raw_parts(start, len) };
        f(slice)
    }

    unsafe fn with_frame_mut<T>(&self, addr: u64, len: usize, f: impl FnOnce(&mut [u8]) -> T) -> T {
        if !self.in_bounds(addr, len) {
            return f(&mut []);
        }
        let start = UnsafeCell::raw_get(self.buf.as_ptr()).wrapping_add(addr as usize);
        // SAFETY: the range is inside one frame (checked above); the bytes sit
        // in UnsafeCells, and the caller owns the frame exclusively for the
        // call, so this is the only live reference to them.
        let slice = unsafe { std::slice::from_raw_parts_mut(start, len) };
        f(slice)
    }
}

/// What may go wrong on the wire, for fault-injection tests.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Drop every n-th frame sent (0: never).
    pub drop_every: u64,
    /// Flip a byte in every n-th frame sent (0: never), at offset
    /// `sent % len`.
    pub corrupt_every: u64,
    /// One-way delay of every frame sent, in microseconds of the pipe's
    /// clock ([`MemRings::clock`], which the test moves): a frame reaches
    /// the other end once the clock has passed its send time plus this.
    pub delay_us: u64,
    /// Drop a frame with this chance, in parts per million (netem `loss`).
    pub loss_ppm: u32,
    /// Add to each frame's delay a uniform jitter in `-jitter_us..=jitter_us`
    /// (netem `delay D J`): frames overtake each other.
    pub jitter_us: u64,
    /// Send a frame at once, without the delay, with this chance (ppm;
    /// netem `reorder`).
    pub reorder_ppm: u32,
    /// Send a frame twice with this chance (ppm; netem `duplicate`).
    pub dup_ppm: u32,
    /// Seed of the random faults above (the same seed, the same faults).
    pub seed: u64,
}

#[derive(Default)]
struct Wire {
    /// Frames on the way, with the clock time each arrives, in that order.
    queue: VecDeque<(u64, Vec<u8>)>,
    sent: u64,
    /// xorshift64* state of the random faults (0: not seeded yet).
    rng: u64,
}

impl Wire {
    /// The next random number below `n` (xorshift64*).
    fn below(&mut self, seed: u64, n: u64) -> u64 {
        if self.rng == 0 {
            self.rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        }
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % n.max(1)
    }

    /// Queue `bytes` to arrive at `at`, after the frames due no later.
    fn push(&mut self, at: u64, bytes: Vec<u8>) {
        let i = self.queue.partition_point(|(t, _)| *t <= at);
        self.queue.insert(i, (at, bytes));
    }
}

/// One end of an in-memory pipe.
pub struct MemRings {
    mem: MemFrames,
    fill: VecDeque<u64>,
    fill_cap: usize,
    rx: VecDeque<Frame>,
    rx_cap: usize,
    comp: VecDeque<u64>,
    tx_cap: usize,
    inbound: Arc<Mutex<Wire>>,
    outbound: Arc<Mutex<Wire>>,
    faults: Faults,
    /// The pipe's clock (µs), shared by both ends (see [`Faults::delay_us`]).
    clock: Arc<AtomicU64>,
    stats: KernelStats,
    tap: Option<Box<dyn Write + Send>>,
}

/// What the frames of a pcap tap hold (the pcap link type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapLink {
    /// Ethernet frames (LINKTYPE_ETHERNET).
    Ethernet = 1,
    /// Bare IPv4/IPv6 packets (LINKTYPE_RAW).
    RawIp = 101,
}

/// Frame and ring sizes of a pipe end.
#[derive(Clone, Copy, Debug)]
pub struct MemConfig {
    /// Frames per end.
    pub frames: u32,
    /// Bytes per frame.
    pub frame_size: u32,
    /// Bytes before each frame's data (like XDP_PACKET_HEADROOM).
    pub headroom: u32,
    /// Ring sizes (fill, rx, tx).
    pub ring: usize,
}

impl Default for MemConfig {
    fn default() -> Self {
        MemConfig {
            frames: 256,
            frame_size: 2048,
            headroom: 256,
            ring: 128,
        }
    }
}

impl MemRings {
    /// A connected pair of ends.
    pub fn pair(cfg: MemConfig) -> (MemRings, MemRings) {
        let ab = Arc::new(Mutex::new(Wire::default()));
        let ba = Arc::new(Mutex::new(Wire::default()));
        let clock = Arc::new(AtomicU64::new(0));
        (
            MemRings::end(cfg, ba.clone(), ab.clone(), clock.clone()),
            MemRings::end(cfg, ab, ba, clock),
        )
    }

    fn end(
        cfg: MemConfig,
        inbound: Arc<Mutex<Wire>>,
        outbound: Arc<Mutex<Wire>>,
        clock: Arc<AtomicU64>,
    ) -> MemRings {
        MemRings {
            mem: MemFrames::new(cfg.frames, cfg.frame_size, cfg.headroom),
            fill: VecDeque::new(),
            fill_cap: cfg.ring,
            rx: VecDeque::new(),
            rx_cap: cfg.ring,
            comp: VecDeque::new(),
            tx_cap: cfg.ring,
            inbound,
            outbound,
            faults: Faults::default(),
            clock,
            stats: KernelStats::default(),
            tap: None,
        }
    }

    /// The pipe's clock in microseconds, shared by both ends: what a frame
    /// delay ([`Faults::delay_us`]) counts against. It stays at 0 unless
    /// the test moves it (`testkit::Net` does, every round).
    pub fn clock(&self) -> Arc<AtomicU64> {
        self.clock.clone()
    }

    /// Inject faults into what this end sends.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// Write every frame this end sends to `out` in pcap format (Ethernet).
    pub fn set_tap(&mut self, out: Box<dyn Write + Send>) -> io::Result<()> {
        self.set_tap_link(out, TapLink::Ethernet)
    }

    /// Write every frame this end sends to `out` in pcap format, with the
    /// link type of what the frames hold (raw IP for a port with no L2).
    pub fn set_tap_link(
        &mut self,
        mut out: Box<dyn Write + Send>,
        link: TapLink,
    ) -> io::Result<()> {
        // pcap global header: magic, v2.4, tz 0, sigfigs 0, snaplen, link type.
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&(link as u32).to_le_bytes());
        out.write_all(&h)?;
        self.tap = Some(out);
        Ok(())
    }

    /// Frames waiting on the wire towards this end.
    pub fn inbound_len(&self) -> usize {
        self.inbound.lock().map(|w| w.queue.len()).unwrap_or(0)
    }

    /// Move frames from the wire into fill-ring frames (what the kernel does
    /// when a packet arrives).
    fn deliver(&mut self) {
        let mut wire = match self.inbound.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        let now = self.clock.load(Ordering::Relaxed);
        while wire.queue.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, bytes)) = wire.queue.pop_front() else {
                break;
            };
            if self.rx.len() >= self.rx_cap {
                self.stats.rx_ring_full += 1;
                self.stats.rx_dropped += 1;
                continue;
            }
            let Some(addr) = self.fill.pop_front() else {
                self.stats.rx_fill_ring_empty += 1;
                self.stats.rx_dropped += 1;
                continue;
            };
            let len = bytes.len().min(self.mem.data_capacity());
            // SAFETY: `addr` came off the fill ring, so the owner gave the
            // frame to the "kernel" (this end) and holds no slice of it.
            unsafe {
                self.mem
                    .with_frame_mut(addr, len, |b| b.copy_from_slice(&bytes[..len]))
            };
            self.rx.push_back(Frame {
                addr,
                len: len as u32,
            });
        }
    }
}

impl Rings for MemRings {
    type Mem = MemFrames;

    fn mem(&self) -> &MemFrames {
        &self.mem
    }

    fn fill(&mut self, addrs: &[u64]) -> usize {
        let n = addrs.len().min(self.fill_cap - self.fill.len());
        self.fill.extend(&addrs[..n]);
        n
    }

    fn fill_space(&mut self) -> usize {
        self.fill_cap - self.fill.len()
    }

    fn recv(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        self.deliver();
        let n = max.min(self.rx.len());
        out.extend(self.rx.drain(..n));
        n
    }

    fn send(&mut self, frames: &[Frame]) -> usize {
        let n = frames.len().min(self.tx_cap);
        let mut wire = match self.outbound.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        for f in &frames[..n] {
            // SAFETY: the frame is on the tx ring (ledger place Tx): its owner
            // handed it over and writes it no more until it is completed.
            let mut bytes = unsafe { self.mem.with_frame(f.addr, f.len as usize, |b| b.to_vec()) };
            wire.sent += 1;
            let sent = wire.sent;
            if let Some(tap) = self.tap.as_mut() {
                let mut rec = Vec::with_capacity(16);
                rec.extend_from_slice(&((sent / 1_000_000) as u32).to_le_bytes());
                rec.extend_from_slice(&((sent % 1_000_000) as u32).to_le_bytes());
                rec.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                rec.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                let _ = tap.write_all(&rec).and_then(|_| tap.write_all(&bytes));
            }
            self.comp.push_back(f.addr);
            if self.faults.drop_every > 0 && sent % self.faults.drop_every == 0 {
                continue;
            }
            if self.faults.corrupt_every > 0 && sent % self.faults.corrupt_every == 0 {
                let i = (sent as usize) % bytes.len().max(1);
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= 0x5a;
                }
            }
            let f = &self.faults;
            let seed = f.seed;
            if f.loss_ppm > 0 && wire.below(seed, 1_000_000) < u64::from(f.loss_ppm) {
                continue;
            }
            let now = self.clock.load(Ordering::Relaxed);
            let mut at = now + f.delay_us;
            if f.jitter_us > 0 {
                at = (at + wire.below(seed, 2 * f.jitter_us + 1)).saturating_sub(f.jitter_us);
            }
            if f.reorder_ppm > 0 && wire.below(seed, 1_000_000) < u64::from(f.reorder_ppm) {
                at = now;
            }
            if f.dup_ppm > 0 && wire.below(seed, 1_000_000) < u64::from(f.dup_ppm) {
                wire.push(at, bytes.clone());
            }
            wire.push(at, bytes);
        }
        n
    }

    fn complete(&mut self, out: &mut Vec<u64>, max: usize) -> usize {
        let n = max.min(self.comp.len());
        out.extend(self.comp.drain(..n));
        n
    }

    fn tx_needs_wakeup(&self) -> bool {
        false
    }
    fn wake_tx(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn fill_needs_wakeup(&self) -> bool {
        false
    }
    fn wake_fill(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn wait(&mut self, _timeout_ms: i32) -> io::Result<()> {
        Ok(())
    }
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
    fn rx_backlog(&mut self) -> Option<(usize, usize)> {
        self.deliver();
        Some((self.rx.len(), self.rx_cap))
    }

    fn kernel_stats(&self) -> Option<KernelStats> {
        Some(self.stats)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pcap::tests::{u16_at, u32_at, Shared};
    use crate::port::{Port, PortConfig};

    /// `frames` frames of 2048 bytes without headroom, rings of `ring`.
    pub(crate) fn small(frames: u32, ring: usize) -> MemConfig {
        MemConfig {
            frames,
            frame_size: 2048,
            headroom: 0,
            ring,
        }
    }

    #[test]
    fn pcap_tap_writes_header_and_one_record_per_frame() {
        let (mut ra, rb) = MemRings::pair(MemConfig::default());
        let out = Shared::default();
        ra.set_tap(Box::new(out.clone())).unwrap();
        // Dropped frames were still sent: the tap sees them.
        ra.set_faults(Faults {
            drop_every: 3,
            ..Faults::default()
        });
        let mut a = Port::new(ra, PortConfig::default());
        let mut b = Port::new(rb, PortConfig::default());
        let lens: Vec<usize> = vec![60, 61, 100, 1514, 64, 999, 1200, 60];
        for (i, &len) in lens.iter().enumerate() {
            assert!(a.send_frame(len, |buf| {
                for (j, x) in buf.iter_mut().enumerate() {
                    *x = (i * 31 + j) as u8;
                }
            }));
        }
        a.flush(|_, len| Some(len));
        let mut frames = Vec::new();
        b.recv(&mut frames);
        assert_eq!(frames.len(), lens.len() - lens.len() / 3);
        for f in frames.drain(..) {
            b.release(f);
        }

        let pcap = out.0.lock().unwrap().clone();
        assert!(pcap.len() >= 24);
        // Global header.
        assert_eq!(u32_at(&pcap, 0), 0xa1b2_c3d4, "magic");
        assert_eq!(
            &pcap[0..4],
            &[0xd4, 0xc3, 0xb2, 0xa1],
            "little-endian magic"
        );
        assert_eq!(u16_at(&pcap, 4), 2, "major version");
        assert_eq!(u16_at(&pcap, 6), 4, "minor version");
        assert_eq!(u32_at(&pcap, 8), 0, "thiszone");
        assert_eq!(u32_at(&pcap, 12), 0, "sigfigs");
        assert_eq!(u32_at(&pcap, 16), 65535, "snaplen");
        assert_eq!(u32_at(&pcap, 20), 1, "LINKTYPE_ETHERNET");

        // One record per frame, in order, with the frame's bytes.
        let mut at = 24;
        let mut last_ts = (0u32, 0u32);
        for (i, &len) in lens.iter().enumerate() {
            assert!(pcap.len() >= at + 16, "record {i} header missing");
            let ts = (u32_at(&pcap, at), u32_at(&pcap, at + 4));
            assert!(ts.1 < 1_000_000, "record {i}: usec out of range");
            assert!(ts > last_ts, "record {i}: timestamps rise");
            last_ts = ts;
            assert_eq!(u32_at(&pcap, at + 8) as usize, len, "record {i} incl_len");
            assert_eq!(u32_at(&pcap, at + 12) as usize, len, "record {i} orig_len");
            at += 16;
            let data = &pcap[at..at + len];
            assert!(
                data.iter()
                    .enumerate()
                    .all(|(j, &x)| x == (i * 31 + j) as u8),
                "record {i}: bytes"
            );
            at += len;
        }
        assert_eq!(at, pcap.len(), "nothing after the last record");
        a.check().unwrap();
        b.check().unwrap();
    }

    #[test]
    fn arrival_without_fill_frames_is_dropped_and_counted() {
        let cfg = small(4, 4);
        let (mut a, mut b) = MemRings::pair(cfg);
        let frame = |i: u32| Frame {
            addr: u64::from(i) * 2048,
            len: 60,
        };
        // B offers two frames; A sends three.
        assert_eq!(b.fill(&[0, 2048]), 2);
        assert_eq!(b.fill_space(), 2);
        assert_eq!(a.send(&[frame(0), frame(1), frame(2)]), 3);
        assert_eq!(b.inbound_len(), 3);
        let mut out = Vec::new();
        assert_eq!(b.recv(&mut out, 16), 2);
        assert_eq!(out.iter().map(|f| f.addr).collect::<Vec<_>>(), [0, 2048]);
        let k = b.kernel_stats().unwrap();
        assert_eq!(k.rx_fill_ring_empty, 1);
        assert_eq!(k.rx_dropped, 1);
        assert_eq!(k.rx_ring_full, 0);
        // Sent frames complete at once.
        let mut comp = Vec::new();
        assert_eq!(a.complete(&mut comp, 16), 3);
        assert_eq!(comp, [0, 2048, 4096]);
    }

    #[test]
    fn arrival_on_full_rx_ring_is_dropped_and_counted() {
        let cfg = small(8, 2);
        let (mut a, mut b) = MemRings::pair(cfg);
        assert_eq!(b.fill(&[0, 2048]), 2);
        let f = Frame { addr: 0, len: 60 };
        assert_eq!(a.send(&[f, f]), 2);
        let mut out = Vec::new();
        assert_eq!(
            b.recv(&mut out, 0),
            0,
            "delivered to the rx ring, none taken"
        );
        assert_eq!(b.fill(&[4096, 6144]), 2);
        assert_eq!(a.send(&[f]), 1);
        assert_eq!(b.recv(&mut out, 0), 0);
        let k = b.kernel_stats().unwrap();
        assert_eq!((k.rx_ring_full, k.rx_dropped), (1, 1));
        assert_eq!(b.recv(&mut out, 8), 2);
    }

    #[test]
    fn corruption_flips_one_byte() {
        let cfg = small(4, 4);
        let (mut a, mut b) = MemRings::pair(cfg);
        a.set_faults(Faults {
            corrupt_every: 2,
            ..Faults::default()
        });
        // SAFETY: nothing else uses frames 0 and 1 of `a` in this test.
        unsafe {
            a.mem().with_frame_mut(0, 100, |x| x.fill(1));
            a.mem().with_frame_mut(2048, 100, |x| x.fill(1));
        }
        assert_eq!(b.fill(&[0, 2048]), 2);
        a.send(&[
            Frame { addr: 0, len: 100 },
            Frame {
                addr: 2048,
                len: 100,
            },
        ]);
        let mut out = Vec::new();
        assert_eq!(b.recv(&mut out, 4), 2);
        let differs = |f: Frame| {
            // SAFETY: the frames came off `b`'s rx ring and nothing else
            // touches them.
            unsafe {
                b.mem().with_frame(f.addr, f.len as usize, |x| {
                    x.iter().filter(|&&v| v != 1).count()
                })
            }
        };
        assert_eq!(differs(out[0]), 0, "first frame intact");
        assert_eq!(
            differs(out[1]),
            1,
            "second frame (sent #2) has one byte flipped"
        );
    }

    #[test]
    fn frame_access_outside_a_frame_gets_nothing() {
        let m = MemFrames::new(2, 2048, 256);
        assert_eq!(m.data_addr(1), 2048 + 256);
        assert_eq!(m.data_capacity(), 2048 - 256);
        // SAFETY: no other access to `m` is live.
        unsafe {
            assert_eq!(
                m.with_frame(2048 + 256, 2048, |b| b.len()),
                0,
                "crosses frames"
            );
            assert_eq!(m.with_frame(4096, 1, |b| b.len()), 0, "past the end");
            assert_eq!(m.with_frame_mut(256, 1792, |b| b.len()), 1792);
        }
    }
}
