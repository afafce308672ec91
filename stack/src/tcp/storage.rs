//! Buffers that grow, applied to the connection table: the policy of
//! `buffers.rs` acting on the slots' sockets through smoltcp's patch 9
//! (vendor/README.md).
//!
//! - A connection starts with no storage. Its receive window comes from a
//!   limit (`rmem.init`, autotuned up to `rmem.max` once per round trip by
//!   what the application reads, [`Conns::tune_rx`]), its window scale from
//!   `rmem.max`.
//! - Before a segment with data is handed to its socket the receive storage
//!   grows to what the segment needs inside the advertised window
//!   ([`Conns::ensure_rx`]); before the application queues data the send
//!   storage grows to twice the congestion window, up to `wmem.max`
//!   ([`Conns::ensure_tx`]). Both come from the core's pool in size
//!   classes and are charged to the process's budget; past its hard limit
//!   only the minimum class is granted, and the data beyond is cut, counted
//!   and sent again by the peer.
//! - Emptied storage goes back to the pool ([`Conns::reclaim`]): at once when
//!   it is small (up to [`SMALL_STORAGE`]: a request and its response) or
//!   under pressure, else after [`RECLAIM_AFTER`] without data, so that a
//!   bulk flow between two writes keeps its storage. A released connection
//!   gives back everything ([`Conns::strip`]); a migrating one takes its
//!   accounting along ([`Conns::adopt`], `detach`).
//!
//! With fixed buffers (`--tcp-buf`, `BufConfig::fixed`) none of this runs:
//! each socket keeps the storage it was created with.

use smoltcp::socket::tcp;
use smoltcp::storage::ManagedSlice;
use smoltcp::time::{Duration as SDuration, Instant};
use smoltcp::wire::TcpSeqNumber;

use super::buffers::{recv_grow, send_grow, PoolCounters, Pressure, RecvTune, MIN_CLASS};
use super::table::{Conns, Phase, Slot};
use crate::socket::ConnId;

/// Empty storage up to this size goes back to the pool at once; larger
/// storage after [`RECLAIM_AFTER`] without data (or at once under memory
/// pressure).
pub(crate) const SMALL_STORAGE: usize = 16 * MIN_CLASS;

/// How long larger empty storage stays with its connection.
pub(crate) const RECLAIM_AFTER: SDuration = SDuration::from_secs(1);

/// The buffer figures of one core, for its statistics.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BufferStats {
    pub pool: PoolCounters,
    /// Bytes in connections' buffers.
    pub held: usize,
    /// Bytes free in the pool.
    pub cached: usize,
    /// Bytes all cores charged to the process's budget.
    pub charged: usize,
    pub pressure: Pressure,
}

/// A live connection's socket, autotuning state and reclaim time (apart
/// from `Conns` so that the pool can be borrowed beside them).
struct Parts<'a> {
    sock: &'a mut tcp::Socket<'static>,
    tune: &'a mut RecvTune,
    reclaim_at: &'a mut Option<Instant>,
}

#[inline]
fn parts(slots: &mut [Slot], c: ConnId) -> Option<Parts<'_>> {
    let slot = slots
        .get_mut(c.idx as usize)
        .filter(|s| s.gen == c.gen && s.phase != Phase::Free)?;
    let h = slot.handle?;
    let Slot {
        set,
        tune,
        reclaim_at,
        ..
    } = slot;
    Some(Parts {
        sock: set.get_mut::<tcp::Socket>(h),
        tune,
        reclaim_at,
    })
}

/// Old storage a swap returned (or new storage it refused): back to the
/// pool.
#[inline]
fn give_back(
    bufs: &mut super::buffers::BufPool,
    r: Result<ManagedSlice<'static, u8>, ManagedSlice<'static, u8>>,
) {
    if let Ok(ManagedSlice::Owned(v)) | Err(ManagedSlice::Owned(v)) = r {
        bufs.give(v);
    }
}

impl Conns {
    /// Grow `c`'s receive storage, from the pool, before a segment of `len`
    /// bytes at `seq` is handed to it. Refused (memory budget past its hard
    /// limit, and more than the guaranteed minimum): smoltcp keeps what
    /// fits, counts the cut and ACKs at once, and the peer sends the rest
    /// again. Nothing to do (the common case) costs a few comparisons.
    #[inline]
    pub(crate) fn ensure_rx(&mut self, c: ConnId, seq: u32, len: usize) {
        if len == 0 || !self.grow {
            return;
        }
        let rmem = self.params.buffers.rmem;
        let Conns { slots, bufs, .. } = self;
        let Some(p) = parts(slots, c) else {
            return;
        };
        let Some(need) = p.sock.recv_storage_needed(TcpSeqNumber(seq as i32), len) else {
            return;
        };
        let size = recv_grow(need, p.sock.recv_capacity(), rmem.max);
        if let Some(buf) = bufs.take(size, rmem.max, rmem.min) {
            give_back(bufs, p.sock.replace_recv_storage(buf));
        }
    }

    /// Grow `c`'s send storage, from the pool, before the application
    /// queues `want` bytes: up to twice the congestion window (bounded by
    /// the peer's window) between `wmem.init` and `wmem.max`.
    #[inline]
    pub(crate) fn ensure_tx(&mut self, c: ConnId, want: usize) {
        if want == 0 || !self.grow {
            return;
        }
        let wmem = self.params.buffers.wmem;
        let Conns { slots, bufs, .. } = self;
        let Some(p) = parts(slots, c) else {
            return;
        };
        let s = p.sock;
        let Some(size) = send_grow(
            s.send_queue(),
            want,
            s.send_capacity(),
            s.congestion_window(),
            s.send_window(),
            &wmem,
            bufs.pressure(),
        ) else {
            return;
        };
        if let Some(buf) = bufs.take(size, wmem.max, wmem.min) {
            give_back(bufs, s.replace_send_storage(buf));
        }
    }

    /// Linux's receive autotuning after the application read `n` bytes of
    /// `c` at `now`: once per round trip, the receive limit (the window)
    /// grows to about twice what it read (see [`RecvTune`]).
    #[inline]
    pub(crate) fn tune_rx(&mut self, c: ConnId, n: usize, now: Instant) {
        if n == 0 || !self.grow {
            return;
        }
        let rmem = self.params.buffers.rmem;
        let pressure = self.bufs.pressure();
        let Some(p) = parts(&mut self.slots, c) else {
            return;
        };
        let now_us = now.total_micros();
        if *p.tune == RecvTune::default() {
            // The first read starts the measure (Linux: from the initial
            // window, at most ten segments).
            *p.tune = RecvTune::new(now_us, rmem.init.min(10 * 1460));
        }
        let s = p.sock;
        // Without an RTT sample (a connection that never sent data nor a
        // SYN-ACK measured), Linux's fallback of 200 ms.
        let srtt = s
            .smoothed_rtt()
            .map_or(200_000, |d| d.total_micros().max(1));
        let limit = s.recv_limit().unwrap_or(0);
        let mss = s.remote_mss();
        if let Some(l) = p
            .tune
            .on_read(n, now_us, Some(srtt), mss, limit, (&rmem, pressure))
        {
            s.set_recv_limit(Some(l));
        }
    }

    /// Give `c`'s empty buffers back to the pool: at once when small (a
    /// request and its response: the next connection that needs storage
    /// gets it warm), under memory pressure, or when `idle` (the reclaim
    /// time came); larger storage waits [`RECLAIM_AFTER`] (filed by the
    /// connection's next `reschedule`), so that a bulk flow between two
    /// writes or two reads does not give it back and grow again.
    #[inline]
    pub(crate) fn reclaim(&mut self, c: ConnId, now: Instant, idle: bool) {
        if !self.grow {
            return;
        }
        let Conns { slots, bufs, .. } = self;
        let Some(p) = parts(slots, c) else {
            return;
        };
        let s = p.sock;
        let (tx_cap, rx_cap) = (s.send_capacity(), s.recv_capacity());
        if tx_cap == 0 && rx_cap == 0 {
            return;
        }
        let at_once = idle || bufs.pressure() != Pressure::None;
        let mut wait = false;
        if tx_cap > 0 && s.send_queue() == 0 {
            if at_once || tx_cap <= SMALL_STORAGE {
                give_back(bufs, s.replace_send_storage(Vec::new()));
            } else {
                wait = true;
            }
        }
        if rx_cap > 0 && s.recv_storage_used() == 0 {
            if at_once || rx_cap <= SMALL_STORAGE {
                give_back(bufs, s.replace_recv_storage(Vec::new()));
            } else {
                wait = true;
            }
        }
        if !wait {
            *p.reclaim_at = None;
        } else if p.reclaim_at.is_none() {
            *p.reclaim_at = Some(now + RECLAIM_AFTER);
        }
    }

    /// Take all of `c`'s storage back, discarding what it holds (it is
    /// being released; its socket is pooled or dropped), and count the
    /// segments it had to cut.
    pub(super) fn strip(&mut self, c: ConnId) {
        let grow = self.grow;
        let Conns {
            slots,
            bufs,
            counters,
            ..
        } = self;
        let Some(p) = parts(slots, c) else {
            return;
        };
        counters.rx_storage_cut += u64::from(p.sock.recv_storage_cut());
        let r = p.sock.take_recovery_stats();
        counters.retransmits += u64::from(r.retransmits);
        counters.recoveries += u64::from(r.recoveries);
        counters.rto_timeouts += u64::from(r.timeouts);
        counters.loss_probes += u64::from(r.probes);
        counters.hystart_exits += u64::from(r.hystart_exits);
        counters.spurious_undos += u64::from(r.undos);
        counters.ecn_negotiated += u64::from(r.ecn_negotiated);
        counters.ecn_ce_received += u64::from(r.ecn_ce_received);
        counters.ecn_reductions += u64::from(r.ecn_reductions);
        counters.paws_rejected += u64::from(r.paws_rejected);
        *p.reclaim_at = None;
        if !grow {
            return;
        }
        let (rx, tx) = p.sock.take_storage();
        for storage in [rx, tx] {
            if let ManagedSlice::Owned(v) = storage {
                bufs.give(v);
            }
        }
    }

    /// A socket migrating in: its storage is counted here from now on (the
    /// core it left stopped counting it in `detach`).
    pub(super) fn adopt(&mut self, socket: &tcp::Socket<'static>) {
        if self.grow {
            self.bufs
                .adopt(socket.recv_capacity() + socket.send_capacity());
        }
    }

    /// The pool's figures.
    pub(crate) fn buffer_stats(&self) -> BufferStats {
        BufferStats {
            pool: self.bufs.counters,
            held: self.bufs.held(),
            cached: self.bufs.cached(),
            charged: self.bufs.charged_by_all(),
            pressure: self.bufs.pressure(),
        }
    }
}
