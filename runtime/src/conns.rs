//! What every TCP service keeps beside its connection table: the connections
//! the engine ended leave it at once, a full table evicts the connection
//! whose last progress is oldest, and an idle sweep closes the quiet ones.
//! One [`Reaper`] per service; the table itself stays the service's.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use stack::socket::{ConnEnd, ConnId, ConnMap, TcpApi};

/// A full table evicts a connection to let a new one in only if it made no
/// progress for this long (RFC 7766 6.2.3: under pressure, close the
/// connections idle longest).
pub const EVICT_AFTER: Duration = Duration::from_secs(1);
/// The candidates for eviction are listed at most this often (a full table
/// under a SYN flood would otherwise walk it for every newcomer).
pub const EVICT_SCAN: Duration = Duration::from_millis(100);
/// How often idle connections are looked for.
pub const SWEEP: Duration = Duration::from_secs(1);

/// Reused lists (no allocation per poll) and the times of the next scans.
#[derive(Debug)]
pub struct Reaper {
    ended: Vec<(ConnId, ConnEnd)>,
    idle: Vec<ConnId>,
    /// Eviction candidates: (last progress, id), the oldest last.
    evictable: Vec<(Instant, ConnId)>,
    /// Connections that did all they were asked and wait on their peer (DNS:
    /// every query answered; HTTP: between requests), as (last progress,
    /// id) in the order they went quiet. Under pressure the oldest goes
    /// first, whatever its age, as nginx reuses its idle keep-alive
    /// connections. An entry is stale once its connection moved or ended
    /// (checked when taken); bounded, the oldest entries dropped.
    quiet: VecDeque<(Instant, ConnId)>,
    next_evict_scan: Instant,
    next_sweep: Instant,
}

impl Reaper {
    /// Nothing listed; the first idle sweep one `SWEEP` after `now`.
    pub fn new(now: Instant) -> Self {
        Reaper {
            ended: Vec::new(),
            idle: Vec::new(),
            evictable: Vec::new(),
            quiet: VecDeque::new(),
            next_evict_scan: now,
            next_sweep: now + SWEEP,
        }
    }

    /// The connections the engine ended since the last call (their ids are
    /// stale: they leave the table at once).
    pub fn take_ended<A: TcpApi + ?Sized>(&mut self, engine: &mut A) -> &[(ConnId, ConnEnd)] {
        self.ended.clear();
        engine.take_ended(&mut self.ended);
        &self.ended
    }

    /// The connection to evict for a newcomer, if any: of the connections
    /// `list` gives as (last progress, id), the one whose last progress is
    /// oldest and at least `EVICT_AFTER` ago. The list is taken at most
    /// every `EVICT_SCAN`; a candidate is skipped if `current` (its last
    /// progress now, `None` if gone or no longer evictable) says it moved.
    pub fn evict<L>(
        &mut self,
        now: Instant,
        list: impl FnOnce() -> L,
        current: impl Fn(ConnId) -> Option<Instant>,
    ) -> Option<ConnId>
    where
        L: IntoIterator<Item = (Instant, ConnId)>,
    {
        if self.evictable.is_empty() && now >= self.next_evict_scan {
            self.next_evict_scan = now + EVICT_SCAN;
            self.evictable.extend(
                list()
                    .into_iter()
                    .filter(|&(last, _)| now.duration_since(last) >= EVICT_AFTER),
            );
            // Newest first: `pop` takes the oldest.
            self.evictable.sort_unstable_by_key(|e| Reverse(e.0));
        }
        while let Some((last, id)) = self.evictable.pop() {
            if current(id) == Some(last) {
                return Some(id);
            }
        }
        None
    }

    /// `id` went quiet at `last` (its last progress): a candidate for
    /// [`Reaper::take_quiet`] while it stays so. At most `bound` entries are
    /// kept, the oldest dropped first (most of them stale by then).
    pub fn note_quiet(&mut self, id: ConnId, last: Instant, bound: usize) {
        while self.quiet.len() >= bound.max(1) {
            self.quiet.pop_front();
        }
        self.quiet.push_back((last, id));
    }

    /// The connection that went quiet first and still is: `current` gives a
    /// connection's last progress if it is still quiet (`None` if it moved
    /// on or is gone); entries whose connection made progress since are
    /// dropped on the way.
    pub fn take_quiet(&mut self, current: impl Fn(ConnId) -> Option<Instant>) -> Option<ConnId> {
        while let Some((last, id)) = self.quiet.pop_front() {
            if current(id) == Some(last) {
                return Some(id);
            }
        }
        None
    }

    /// [`Reaper::evict`] over every connection of `conns`, `last` giving its last progress.
    pub fn evict_from<C>(
        &mut self,
        now: Instant,
        conns: &ConnMap<C>,
        last: impl Fn(&C) -> Instant,
    ) -> Option<ConnId> {
        self.evict(
            now,
            || conns.iter().map(|(&id, c)| (last(c), id)),
            |id| conns.get(&id).map(&last),
        )
    }

    /// Once per `SWEEP`: the connections of `list` (last progress, id) that
    /// made no progress for `idle`; between sweeps, none.
    pub fn idle(
        &mut self,
        now: Instant,
        idle: Duration,
        list: impl IntoIterator<Item = (Instant, ConnId)>,
    ) -> &[ConnId] {
        self.idle.clear();
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP;
            self.idle.extend(
                list.into_iter()
                    .filter(|&(last, _)| now.duration_since(last) >= idle)
                    .map(|(_, id)| id),
            );
        }
        &self.idle
    }

    /// When the next idle sweep is due.
    pub fn next_sweep(&self) -> Instant {
        self.next_sweep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_still_quiet_connection_is_taken_and_stale_entries_skipped() {
        let t0 = Instant::now();
        let mut r = Reaper::new(t0);
        let (a, b, c) = (ConnId::new(1, 0), ConnId::new(2, 0), ConnId::new(3, 0));
        r.note_quiet(a, t0, 8);
        r.note_quiet(b, t0, 8);
        r.note_quiet(c, t0, 8);
        // `a` moved on since (new progress), `b` is still quiet, `c` too.
        let moved = t0 + Duration::from_millis(5);
        let current = |id: ConnId| match id.index() {
            1 => Some(moved),
            _ => Some(t0),
        };
        assert_eq!(r.take_quiet(current), Some(b));
        assert_eq!(r.take_quiet(current), Some(c));
        assert_eq!(r.take_quiet(current), None);
    }

    #[test]
    fn the_quiet_list_is_bounded_oldest_dropped() {
        let t0 = Instant::now();
        let mut r = Reaper::new(t0);
        for i in 0..10 {
            r.note_quiet(ConnId::new(i, 0), t0, 4);
        }
        let mut taken = Vec::new();
        while let Some(id) = r.take_quiet(|_| Some(t0)) {
            taken.push(id.index());
        }
        assert_eq!(taken, [6, 7, 8, 9]);
    }
}
