//! Buffers that grow (issue 19, step 1): the policy half.
//!
//! The vendored smoltcp provides the mechanism (vendor/README.md): a
//! receive window computed from a limit apart from the storage holding the
//! data (`set_recv_limit`, `set_recv_window_max`), storage swapped while data
//! is held (`replace_recv_storage`, `replace_send_storage`), and what a
//! segment needs before it is handed over (`recv_storage_needed`). This file
//! decides sizes, as Linux does with `tcp_rmem`, `tcp_wmem` and `tcp_mem`:
//!
//! - **Size classes and a per-core pool**: storage comes in powers of two
//!   from 4 KiB (the top class is the configured maximum itself). Storage a
//!   connection gives back (its buffer emptied) goes on its class's free
//!   list, last in first out, so the next connection that needs storage gets
//!   the one most recently used: warm in the caches, where at 100,000
//!   connections each connection's own buffer was a cold miss.
//! - **A memory budget**: bytes held by sockets plus bytes cached, summed
//!   per core and charged to one process-wide counter in steps of
//!   [`RESERVE`] (Linux's per-CPU forward allocation), with `tcp_mem`'s three
//!   levels: above `pressure` nothing grows and nothing is cached until the
//!   total is below `low` again; above `high` only a connection's guaranteed
//!   minimum is granted.
//! - **Receive autotuning** ([`RecvTune`], Linux's `tcp_rcv_space_adjust`):
//!   once per round trip, when the application read more than the round
//!   before, the limit becomes about twice what it read, up to `rmem.max`.
//! - **Send autotuning** ([`send_grow`], Linux's `tcp_sndbuf_expand`): the
//!   application may queue twice the congestion window (bounded by the
//!   peer's window), up to `wmem.max`.
//!
//! Nothing here reads a clock or touches a socket: the engine passes `now`
//! and the socket's figures in, and applies what comes back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The smallest storage class.
pub const MIN_CLASS: usize = 4096;

/// Bytes a core charges to (or returns from) the process-wide counter at a
/// time, so that the shared cache line moves once per this much change.
pub const RESERVE: usize = 1 << 20;

/// Minimum, initial and maximum size of one direction's buffer (Linux's
/// `tcp_rmem` / `tcp_wmem`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Guaranteed to every connection whatever the pressure.
    pub min: usize,
    /// Receive: the first window's limit. Send: what the application may
    /// queue before the congestion window says more.
    pub init: usize,
    /// The most one connection may use (the receive window scale is chosen
    /// to express it).
    pub max: usize,
}

/// Buffer sizes and the memory budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufConfig {
    /// Receive buffers (default 4 KiB, 64 KiB, 6 MiB: Linux's `tcp_rmem`
    /// maximum; its initial 128 KiB buffer advertises about 64 KiB).
    pub rmem: Limits,
    /// Send buffers (default 4 KiB, 64 KiB, 4 MiB: Linux's `tcp_wmem`
    /// maximum; 64 KiB is today's fixed `--tcp-buf`).
    pub wmem: Limits,
    /// Process-wide bytes: `[low, pressure, high]` (Linux's `tcp_mem`).
    pub mem: [usize; 3],
    /// Free storage each core keeps for reuse, at most.
    pub cache: usize,
}

impl BufConfig {
    /// Defaults for a machine with `ram` bytes of memory. The budget follows
    /// Linux's `tcp_init_mem`: a sixteenth of memory is the pressure level,
    /// three quarters of that the low mark, one and a half times it the hard
    /// limit.
    pub fn for_memory(ram: usize) -> Self {
        let limit = (ram / 16).max(64 * RESERVE);
        BufConfig {
            rmem: Limits {
                min: MIN_CLASS,
                init: 64 << 10,
                max: 6 << 20,
            },
            wmem: Limits {
                min: MIN_CLASS,
                init: 64 << 10,
                max: 4 << 20,
            },
            mem: [limit / 4 * 3, limit, limit / 2 * 3],
            cache: 16 << 20,
        }
    }

    /// Physical memory (`MemTotal` in /proc/meminfo), for the defaults;
    /// 4 GiB when it cannot be read.
    pub fn physical_memory() -> usize {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| mem_total(&m))
            .unwrap_or(4 << 30)
    }

    /// Fixed buffers of `rx` and `tx` bytes (the `--tcp-buf` of before:
    /// nothing grows, nothing is given back).
    pub fn fixed(rx: usize, tx: usize, mem: [usize; 3]) -> Self {
        BufConfig {
            rmem: Limits {
                min: rx,
                init: rx,
                max: rx,
            },
            wmem: Limits {
                min: tx,
                init: tx,
                max: tx,
            },
            mem,
            cache: 0,
        }
    }

    /// Whether buffers grow and are given back (not [`BufConfig::fixed`]).
    pub fn autotuned(&self) -> bool {
        self.rmem.min < self.rmem.max || self.wmem.min < self.wmem.max
    }
}

impl Default for BufConfig {
    /// [`BufConfig::for_memory`] of this machine's memory.
    fn default() -> Self {
        BufConfig::for_memory(BufConfig::physical_memory())
    }
}

/// `MemTotal` of a /proc/meminfo text, in bytes.
fn mem_total(meminfo: &str) -> Option<usize> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The storage class that holds `n` bytes: a power of two from
/// [`MIN_CLASS`], or `max` itself when that is smaller.
pub fn class(n: usize, max: usize) -> usize {
    n.max(MIN_CLASS)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX)
        .min(max.max(MIN_CLASS))
}

/// Memory pressure, as Linux's `tcp_memory_pressure` and `tcp_mem[2]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pressure {
    /// Below `pressure` (or below `low` since leaving it): buffers grow.
    None,
    /// Above `pressure`, not yet back below `low`: nothing grows, nothing
    /// is cached.
    Soft,
    /// Above `high`: only the guaranteed minimum is granted.
    Hard,
}

/// The process-wide count of bytes charged by all cores.
#[derive(Debug)]
pub struct Budget {
    charged: AtomicUsize,
    /// `[low, pressure, high]`, set by the engines from their
    /// configuration ([`Budget::set_levels`]).
    mem: [AtomicUsize; 3],
    /// 1 while in pressure (entered above `mem[1]`, left below `mem[0]`).
    in_pressure: AtomicUsize,
}

impl Budget {
    /// A budget with Linux `tcp_mem`-like levels (bytes).
    pub fn new(mem: [usize; 3]) -> Arc<Self> {
        Arc::new(Budget {
            charged: AtomicUsize::new(0),
            mem: mem.map(AtomicUsize::new),
            in_pressure: AtomicUsize::new(0),
        })
    }

    /// Set the levels (every engine of a process sets the same ones, from
    /// its `EngineConfig`).
    pub fn set_levels(&self, mem: [usize; 3]) {
        for (l, v) in self.mem.iter().zip(mem) {
            l.store(v, Ordering::Relaxed);
        }
    }

    /// The levels, `[low, pressure, high]`.
    pub fn levels(&self) -> [usize; 3] {
        [0, 1, 2].map(|i| self.mem[i].load(Ordering::Relaxed))
    }

    /// Bytes charged by all cores now.
    pub fn charged(&self) -> usize {
        self.charged.load(Ordering::Relaxed)
    }

    fn level(&self, total: usize) -> Pressure {
        let [low, pressure, high] = self.levels();
        if total > high {
            self.in_pressure.store(1, Ordering::Relaxed);
            return Pressure::Hard;
        }
        if total > pressure {
            self.in_pressure.store(1, Ordering::Relaxed);
            return Pressure::Soft;
        }
        if total < low {
            self.in_pressure.store(0, Ordering::Relaxed);
            return Pressure::None;
        }
        if self.in_pressure.load(Ordering::Relaxed) == 1 {
            Pressure::Soft
        } else {
            Pressure::None
        }
    }

    fn charge(&self, bytes: usize) -> Pressure {
        let total = self.charged.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.level(total)
    }

    fn uncharge(&self, bytes: usize) -> Pressure {
        let total = self.charged.fetch_sub(bytes, Ordering::Relaxed) - bytes;
        self.level(total)
    }
}

/// What a pool did, for the engine's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounters {
    /// Storage handed to a connection from a free list.
    pub reused: u64,
    /// Storage allocated because no free list had one.
    pub allocated: u64,
    /// Storage given back by connections.
    pub given_back: u64,
    /// Requests refused by the budget (the segment's data is cut, or the
    /// application's write takes less).
    pub refused: u64,
    /// Free storage returned to the allocator (cache full or pressure).
    pub released: u64,
}

/// One core's storage: free lists by class, and its share of the budget.
#[derive(Debug)]
pub struct BufPool {
    free: Vec<Vec<Vec<u8>>>,
    /// Bytes on the free lists.
    cached: usize,
    /// Bytes in connections' buffers.
    held: usize,
    /// Bytes this core charged to the budget (held + cached, rounded up to
    /// a [`RESERVE`] step).
    charged: usize,
    budget: Arc<Budget>,
    cache: usize,
    pressure: Pressure,
    /// What the pool did.
    pub counters: PoolCounters,
}

impl BufPool {
    /// A core's pool charging `budget`, keeping up to `cache` bytes free.
    pub fn new(budget: Arc<Budget>, cache: usize) -> Self {
        BufPool {
            free: (0..usize::BITS as usize).map(|_| Vec::new()).collect(),
            cached: 0,
            held: 0,
            charged: 0,
            budget,
            cache,
            pressure: Pressure::None,
            counters: PoolCounters::default(),
        }
    }

    /// The pressure seen at the last charge or uncharge.
    pub fn pressure(&self) -> Pressure {
        self.pressure
    }

    /// Bytes in connections' buffers on this core.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Bytes free for reuse on this core.
    pub fn cached(&self) -> usize {
        self.cached
    }

    /// Bytes all cores charged to the budget now.
    pub fn charged_by_all(&self) -> usize {
        self.budget.charged()
    }

    fn slot(size: usize) -> usize {
        (usize::BITS - (size - 1).leading_zeros()) as usize
    }

    /// Storage of class `class(need, max)` for a connection, or `None` when
    /// the budget is past its hard limit and the class is above `min` (the
    /// minimum every connection is guaranteed, so that in-order data always
    /// moves).
    pub fn take(&mut self, need: usize, max: usize, min: usize) -> Option<Vec<u8>> {
        let size = class(need, max);
        if size > class(min, max) && self.pressure == Pressure::Hard {
            self.counters.refused += 1;
            return None;
        }
        let list = &mut self.free[Self::slot(size)];
        let buf = match list.pop() {
            Some(b) if b.len() == size => {
                self.cached -= size;
                self.counters.reused += 1;
                b
            }
            other => {
                if let Some(b) = other {
                    // A class shared by two maxima of different sizes.
                    self.cached -= b.len();
                    self.counters.released += 1;
                }
                self.counters.allocated += 1;
                vec![0u8; size]
            }
        };
        self.held += size;
        self.settle();
        Some(buf)
    }

    /// Storage a connection gives back (its buffer emptied or released).
    pub fn give(&mut self, buf: Vec<u8>) {
        let size = buf.len();
        if size == 0 {
            return;
        }
        self.held -= size;
        self.counters.given_back += 1;
        if self.pressure == Pressure::None && self.cached + size <= self.cache {
            self.cached += size;
            self.free[Self::slot(size)].push(buf);
        } else {
            self.counters.released += 1;
        }
        self.settle();
    }

    /// Storage a connection brought from another core, or took there:
    /// counted here from now on (its socket migrated).
    pub fn adopt(&mut self, bytes: usize) {
        self.held += bytes;
        self.settle();
    }

    /// Storage a connection takes to another core (the inverse of `adopt`).
    pub fn disown(&mut self, bytes: usize) {
        self.held -= bytes;
        self.settle();
    }

    /// Under pressure, return every free buffer to the allocator.
    fn trim(&mut self) {
        for list in &mut self.free {
            self.counters.released += list.len() as u64;
            list.clear();
        }
        self.cached = 0;
    }

    /// Keep this core's charge within a [`RESERVE`] step above what it uses.
    fn settle(&mut self) {
        let used = self.held + self.cached;
        if used > self.charged {
            let step = (used - self.charged).div_ceil(RESERVE) * RESERVE;
            self.charged += step;
            self.pressure = self.budget.charge(step);
        } else if self.charged - used > 2 * RESERVE {
            let step = (self.charged - used - RESERVE) / RESERVE * RESERVE;
            self.charged -= step;
            self.pressure = self.budget.uncharge(step);
        }
        if self.pressure != Pressure::None && self.cached > 0 {
            self.trim();
            self.settle();
        }
    }
}

/// Receive storage to grow to for a segment that needs `need` bytes while
/// the connection holds `capacity`: at least double (so the copies a
/// growing connection makes add up to less than its final size), at most
/// `max`.
pub fn recv_grow(need: usize, capacity: usize, max: usize) -> usize {
    class(need.max(2 * capacity), max)
}

/// Send storage to grow to when the application wants to queue `want` more
/// bytes beside `queued`, in storage of `capacity`: `None` when it fits or
/// the connection may not queue more. The connection may queue twice the
/// congestion window, bounded by the peer's window (Linux's
/// `tcp_sndbuf_expand`: two windows, one in flight and one to send next),
/// between `wmem.init` and `wmem.max`; under pressure no more than it has
/// (or `init`), past the hard limit no more than `min`.
pub fn send_grow(
    queued: usize,
    want: usize,
    capacity: usize,
    cwnd: usize,
    peer_window: usize,
    wmem: &Limits,
    pressure: Pressure,
) -> Option<usize> {
    if queued + want <= capacity {
        return None;
    }
    let flight = cwnd.min(peer_window);
    let mut target = flight.saturating_mul(2).clamp(wmem.init, wmem.max);
    match pressure {
        Pressure::None => {}
        Pressure::Soft => target = target.min(capacity.max(wmem.init)),
        Pressure::Hard => target = target.min(capacity.max(wmem.min)),
    }
    let size = class((queued + want).min(target), wmem.max);
    (size > capacity).then_some(size)
}

/// A connection's receive autotuning state (Linux's `rcvq_space`): 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvTune {
    /// What the application read in the last measured round trip.
    space: u32,
    /// Bytes read since `mark_us`.
    copied: u32,
    /// When this round's measure began (µs, the engine's clock).
    mark_us: i64,
}

impl RecvTune {
    /// Start measuring at `now_us`; the first round trip must beat `init`
    /// (Linux: the initial window, at most ten segments).
    pub fn new(now_us: i64, init: usize) -> Self {
        RecvTune {
            space: init.min(u32::MAX as usize) as u32,
            copied: 0,
            mark_us: now_us,
        }
    }

    /// The application read `n` bytes at `now_us`. Once a smoothed round
    /// trip `srtt_us` has passed since the measure began: if it read more
    /// than in the round before, return the receive limit to set (about
    /// twice what it read per round trip, more while the rate grows, as
    /// `tcp_rcv_space_adjust` in Linux 6.x), when that is above `limit`.
    /// Nothing grows under pressure.
    pub fn on_read(
        &mut self,
        n: usize,
        now_us: i64,
        srtt_us: Option<u64>,
        mss: usize,
        limit: usize,
        (rmem, pressure): (&Limits, Pressure),
    ) -> Option<usize> {
        self.copied = self.copied.saturating_add(n.min(u32::MAX as usize) as u32);
        let rtt = srtt_us? as i64;
        if now_us - self.mark_us < rtt.max(1) {
            return None;
        }
        let copied = self.copied as u64;
        let space = (self.space as u64).max(1);
        self.copied = 0;
        self.mark_us = now_us;
        if copied <= space {
            return None;
        }
        self.space = copied as u32;
        if pressure != Pressure::None {
            return None;
        }
        let mut win = (copied << 1) + 16 * mss as u64;
        // Accommodate the sender's growth (slow start doubles per round).
        win += (win * (copied - space) / space) << 1;
        let win = (win.min(rmem.max as u64) as usize).max(rmem.init);
        (win > limit).then_some(win)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn defaults() -> BufConfig {
        BufConfig::for_memory(16 << 30)
    }

    #[test]
    fn classes_are_powers_of_two_up_to_the_maximum() {
        assert_eq!(class(0, 6 * MIB), 4096);
        assert_eq!(class(1460, 6 * MIB), 4096);
        assert_eq!(class(4097, 6 * MIB), 8192);
        assert_eq!(class(3 * MIB, 6 * MIB), 4 * MIB);
        assert_eq!(class(5 * MIB, 6 * MIB), 6 * MIB);
        assert_eq!(class(100 * MIB, 6 * MIB), 6 * MIB);
        assert_eq!(recv_grow(1460, 0, 6 * MIB), 4096);
        assert_eq!(recv_grow(5000, 4096, 6 * MIB), 8192);
        assert_eq!(recv_grow(5000, 64 << 10, 6 * MIB), 128 << 10);
    }

    #[test]
    fn memory_size_from_meminfo() {
        let m = "MemTotal:       16315856 kB\nMemFree:         1234 kB\n";
        assert_eq!(mem_total(m), Some(16315856 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert!(BufConfig::physical_memory() > 0);
    }

    #[test]
    fn linux_tcp_mem_levels() {
        let c = defaults();
        // 16 GiB: a sixteenth is 1 GiB.
        assert_eq!(c.mem, [768 * MIB, 1024 * MIB, 1536 * MIB]);
        assert!(c.autotuned());
        assert!(!BufConfig::fixed(65536, 65536, c.mem).autotuned());
    }

    #[test]
    fn the_pool_reuses_the_most_recent_buffer_and_charges_in_steps() {
        let budget = Budget::new([8 * MIB, 16 * MIB, 24 * MIB]);
        let mut pool = BufPool::new(budget.clone(), 4 * MIB);
        let a = pool.take(1000, 6 * MIB, 4096).unwrap();
        assert_eq!(a.len(), 4096);
        assert_eq!(budget.charged(), RESERVE);
        let mut b = pool.take(1000, 6 * MIB, 4096).unwrap();
        b[0] = 42;
        let b_ptr = b.as_ptr();
        pool.give(a);
        pool.give(b);
        assert_eq!((pool.held(), pool.cached()), (0, 8192));
        // Last in, first out: the buffer given back last comes out first.
        let c = pool.take(10, 6 * MIB, 4096).unwrap();
        assert_eq!(c.as_ptr(), b_ptr);
        assert_eq!(pool.counters.reused, 1);
        assert_eq!(pool.counters.allocated, 2);
        // Charges move in steps, not per buffer.
        assert_eq!(budget.charged(), RESERVE);
        pool.give(c);
    }

    #[test]
    fn pressure_stops_caching_and_the_hard_limit_grants_only_the_minimum() {
        let budget = Budget::new([3 * MIB, 4 * MIB, 5 * MIB]);
        let mut pool = BufPool::new(budget.clone(), 64 * MIB);
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pool.take(MIB, 6 * MIB, 4096).unwrap());
        }
        // 4 MiB held, charged 4 MiB: not above `pressure` yet.
        assert_eq!(pool.pressure(), Pressure::None);
        held.push(pool.take(MIB, 6 * MIB, 4096).unwrap());
        assert_eq!(pool.pressure(), Pressure::Soft);
        // Past the hard limit: more than the minimum is refused...
        held.push(pool.take(MIB, 6 * MIB, 4096).unwrap());
        assert_eq!(pool.pressure(), Pressure::Hard);
        assert!(pool.take(8192, 6 * MIB, 4096).is_none());
        assert_eq!(pool.counters.refused, 1);
        // ...the minimum never is (in-order data always moves).
        let small = pool.take(1460, 6 * MIB, 4096).unwrap();
        // Given back under pressure: released, not cached.
        pool.give(held.pop().unwrap());
        assert_eq!(pool.cached(), 0);
        for b in held.drain(..) {
            pool.give(b);
        }
        pool.give(small);
        // Below `low` again: pressure is over and the charge came back.
        assert_eq!(pool.pressure(), Pressure::None);
        assert!(budget.charged() <= 2 * RESERVE);
    }

    #[test]
    fn send_storage_follows_twice_the_congestion_window() {
        let w = defaults().wmem;
        // A 10 KiB response on a new connection: 16 KiB of storage.
        assert_eq!(
            send_grow(0, 10_000, 0, 14_600, 65_535, &w, Pressure::None),
            Some(16384)
        );
        // It fits: nothing to do.
        assert_eq!(
            send_grow(0, 10_000, 16384, 14_600, 65_535, &w, Pressure::None),
            None
        );
        // A bulk sender: the initial 64 KiB, then two windows.
        let bulk_second = |p| send_grow(64 << 10, 100 * MIB, 64 << 10, MIB, 6 * MIB, &w, p);
        assert_eq!(
            send_grow(0, 100 * MIB, 0, 14_600, 6 * MIB, &w, Pressure::None),
            Some(64 << 10)
        );
        assert_eq!(bulk_second(Pressure::None), Some(2 * MIB));
        // Never past the maximum, nor past what the peer's window allows.
        assert_eq!(
            send_grow(
                4 * MIB,
                100 * MIB,
                4 * MIB,
                8 * MIB,
                6 * MIB,
                &w,
                Pressure::None
            ),
            None
        );
        assert_eq!(
            send_grow(
                64 << 10,
                100 * MIB,
                64 << 10,
                8 * MIB,
                200 << 10,
                &w,
                Pressure::None
            ),
            Some(512 << 10)
        );
        // Under pressure: no growth past what it has (or the initial size).
        assert_eq!(bulk_second(Pressure::Soft), None);
        assert_eq!(
            send_grow(0, 10_000, 0, MIB, 6 * MIB, &w, Pressure::Hard),
            Some(4096)
        );
    }

    #[test]
    fn receive_limit_grows_once_per_round_trip_with_what_the_application_reads() {
        let r = defaults().rmem;
        let mut t = RecvTune::new(0, 14_600);
        // No RTT measured yet: nothing.
        assert_eq!(
            t.on_read(20_000, 10_000, None, 1460, r.init, (&r, Pressure::None)),
            None
        );
        // Within the round trip: nothing yet.
        assert_eq!(
            t.on_read(
                20_000,
                20_000,
                Some(50_000),
                1460,
                r.init,
                (&r, Pressure::None)
            ),
            None
        );
        // A round trip later 60,000 bytes were read against 14,600: the
        // limit jumps well past twice that (the sender is in slow start).
        let l = t
            .on_read(
                20_000,
                50_000,
                Some(50_000),
                1460,
                r.init,
                (&r, Pressure::None),
            )
            .unwrap();
        assert!(l >= 2 * 60_000 && l <= r.max, "{l}");
        // The same rate the next round: no growth.
        assert_eq!(
            t.on_read(60_000, 100_000, Some(50_000), 1460, l, (&r, Pressure::None)),
            None
        );
        // Far more, but under pressure: no growth either.
        assert_eq!(
            t.on_read(MIB, 150_000, Some(50_000), 1460, l, (&r, Pressure::Soft)),
            None
        );
        // Never past the maximum.
        let big = t
            .on_read(
                5 * MIB,
                200_000,
                Some(50_000),
                1460,
                l,
                (&r, Pressure::None),
            )
            .unwrap();
        assert_eq!(big, r.max);
    }
}
