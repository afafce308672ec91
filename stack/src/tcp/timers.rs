//! The connection table's timers: each connection's next deadline
//! (smoltcp's `poll_at`, the handshake or close timeout, the time emptied
//! storage goes back to the pool) in a timing wheel
//! (`crate::timer`), and which connections are due.

use nic::{Port, Rings};
use smoltcp::iface::Interface;
use smoltcp::time::{Duration as SDuration, Instant};

use super::table::{Conns, Phase};
use crate::socket::ConnId;

/// No time: no entry filed, or no deadline wanted.
pub(super) const NEVER: i64 = i64::MAX;

/// A slot's timer state, kept in an array of its own: the time of its
/// earliest entry in the wheel and the deadline the connection wants now
/// (µs, [`NEVER`] for none), for the connection of generation `gen`.
///
/// A connection files an entry only when its deadline moves earlier. The
/// common move is later: each ACK pushes the retransmission deadline back,
/// so the entry filed for the old deadline comes up early. At 100,000
/// connections that happened about once per request, ten or more
/// milliseconds after the connection was last touched, and looking at the
/// slot and asking the socket again (`poll_at`) were cache misses: 4% of
/// the core. From the mark, an early entry is filed again at the wanted
/// time (or dropped when nothing is wanted) without touching either; this
/// array is 24 bytes a connection, so it stays in the caches far longer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark {
    gen: u32,
    filed: i64,
    want: i64,
}

impl Default for Mark {
    fn default() -> Self {
        Mark {
            gen: 0,
            filed: NEVER,
            want: NEVER,
        }
    }
}

/// Why a connection's timer fired (from [`Conns::next_fired`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fired {
    /// Its handshake did not finish in time: drop it, silently.
    Handshake,
    /// The peer never finished the close: reset it.
    Close,
    /// An outgoing connection's handshake did not finish in time: report
    /// it to the application and drop it.
    Connect,
    /// smoltcp's deadline (a retransmission, a delayed ACK, a keep-alive):
    /// ask the socket when next.
    Due,
}

impl Conns {
    /// Wake `c` at `at` unless it already wakes earlier.
    #[inline]
    pub(crate) fn schedule(&mut self, c: ConnId, at: Instant) {
        let Some(m) = self.mark_mut(c) else {
            return;
        };
        let t = at.total_micros();
        if t < m.filed {
            m.filed = t;
            self.timers.push(at, c.idx, c.gen);
        }
    }

    /// `c`'s timer state (not checking the slot's phase: a released slot's
    /// mark has moved on to the next generation).
    #[inline]
    fn mark_mut(&mut self, c: ConnId) -> Option<&mut Mark> {
        self.marks
            .get_mut(c.idx as usize)
            .filter(|m| m.gen == c.gen)
    }

    /// Start slot `idx`'s timer state afresh for generation `gen`.
    #[inline]
    pub(super) fn reset_mark(&mut self, idx: u32, gen: u32) {
        if let Some(m) = self.marks.get_mut(idx as usize) {
            *m = Mark {
                gen,
                ..Mark::default()
            };
        }
    }

    /// The next connection whose timer fires at `now`, and why. Stale
    /// entries are skipped; an entry that comes up before its connection's
    /// deadline (the deadline moved later since) is filed again at the
    /// wanted time without touching the connection.
    #[inline]
    pub(crate) fn next_fired(&mut self, now: Instant) -> Option<(ConnId, Fired)> {
        while let Some(e) = self.timers.pop_due(now) {
            let c = ConnId {
                idx: e.slot,
                gen: e.gen,
            };
            let Some(m) = self.mark_mut(c) else {
                continue;
            };
            if m.filed != e.at {
                // Stale: an earlier entry replaced it.
                continue;
            }
            m.filed = NEVER;
            if m.want > now.total_micros() {
                // Up early: the deadline moved later (or went away) since
                // this entry was filed. File the wanted one, if any.
                let want = m.want;
                self.counters.timer_early += 1;
                if want != NEVER {
                    self.schedule(c, Instant::from_micros(want));
                }
                continue;
            }
            let Some(slot) = self.slot(c) else {
                continue;
            };
            let expired = slot.deadline.is_some_and(|d| d <= now);
            let phase = slot.phase;
            if slot.reclaim_at.is_some_and(|t| t <= now) {
                // Larger storage left empty since: back to the pool.
                self.reclaim(c, now, true);
            }
            let fired = match (expired, phase) {
                (true, Phase::HalfOpen) => Fired::Handshake,
                (true, Phase::Closing) => Fired::Close,
                (true, Phase::Connecting) => Fired::Connect,
                // Due by the mark; the socket says when (an early entry
                // whose deadline moved without an egress pass is filed
                // again at the new time, without one).
                _ => Fired::Due,
            };
            self.counters.timer_fires += 1;
            return Some((c, fired));
        }
        None
    }

    /// A close that timed out: reset `c`. The RST goes out on the next
    /// egress pass, which then releases it.
    pub(crate) fn expire_close(&mut self, c: ConnId) {
        self.set_deadline(c, None);
        if let Some(s) = self.socket(c) {
            s.abort();
        }
        self.mark_dirty(c);
    }

    /// When the earliest current timer comes due, dropping stale entries
    /// on the way.
    pub(crate) fn next_timer(&mut self, now: Instant) -> Option<Instant> {
        let Conns { timers, marks, .. } = self;
        timers
            .next_due(|e| {
                marks
                    .get(e.slot as usize)
                    .is_some_and(|m| m.gen == e.gen && m.filed == e.at)
            })
            .map(|t| t.max(now))
    }

    /// Put `c`'s next deadline (smoltcp's, from `iface`, or its own
    /// timeout) in the timer wheel; one already due goes on the dirty list
    /// when `due_is_work`, something went out, or `port` has no frame free.
    #[inline]
    pub(crate) fn reschedule<R: Rings>(
        &mut self,
        iface: &mut Interface,
        port: &Port<R>,
        c: ConnId,
        now: Instant,
        emitted: bool,
        due_is_work: bool,
    ) {
        let Some(slot) = self.slots.get(c.idx as usize) else {
            return;
        };
        if slot.gen != c.gen || slot.phase == Phase::Free {
            return;
        }
        let at = iface.poll_at(now, &slot.set);
        let at = [at, slot.deadline, slot.reclaim_at]
            .into_iter()
            .flatten()
            .min();
        if let Some(m) = self.mark_mut(c) {
            m.want = at.map_or(NEVER, |t| t.total_micros());
        }
        match at {
            None => {}
            Some(t) if t <= now => {
                if emitted || due_is_work {
                    // More to send (the pass stopped at its bound or the
                    // ring was full): the next pass goes on.
                    self.mark_dirty(c);
                } else if !port.can_send() {
                    // No frame to build into: the next pass, after the
                    // kernel sent some.
                    self.mark_dirty(c);
                } else {
                    // Due but nothing went out though it could: retry soon
                    // rather than spin.
                    self.counters.egress_stalls += 1;
                    self.schedule(c, now + SDuration::from_millis(1));
                }
            }
            Some(t) => self.schedule(c, t),
        }
    }
}
