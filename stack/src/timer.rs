//! The timers of one core's connections: a timing wheel of (when, slot,
//! generation) entries with lazy cancellation. A connection keeps the time
//! of its earliest entry (in its mark, `engine::tcp`); an entry that no
//! longer matches it (the connection was released, or rescheduled earlier)
//! is skipped when it comes up. A connection pushes a new entry only when
//! its next deadline moves earlier, so entries per connection stay few and
//! nothing scans the connections; an entry that comes up before a deadline
//! that moved later is filed again from the mark.
//!
//! Why a wheel and not a heap: at 100,000 connections the heap held a few
//! hundred thousand entries, and every pop sifted through ~18 levels of it,
//! most of them cache misses: 13% of the core at 100,000 keep-alive
//! connections (docs/BENCH-HISTORY.md, "The timer heap"). A wheel files an entry in the
//! bucket of its millisecond (an append) and takes a due bucket whole (a
//! sequential read); entries that set off together sit together.
//!
//! - Ticks are [`TICK_US`] long; [`SLOTS`] buckets cover the next
//!   `SLOTS` ticks (8.2 s). Entries further out (close and handshake
//!   deadlines of tens of seconds) wait in a small heap and move into the
//!   wheel as their time comes near.
//! - An entry comes out once its whole tick has passed: never early, at
//!   most one tick late (smoltcp's own timers are 10 ms and up).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use smoltcp::time::Instant;

/// Length of a tick, µs.
pub const TICK_US: i64 = 1000;
/// Buckets in the wheel (a power of two).
pub const SLOTS: usize = 8192;

/// One scheduled wake-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// When (microseconds on the engine clock).
    pub at: i64,
    /// The connection slot.
    pub slot: u32,
    /// Its generation when scheduled.
    pub gen: u32,
}

impl Entry {
    fn tick(&self) -> i64 {
        self.at.div_euclid(TICK_US)
    }
}

/// A timing wheel of wake-ups.
#[derive(Debug)]
pub struct Timers {
    buckets: Vec<Vec<Entry>>,
    /// The first tick not yet taken out: buckets hold ticks `cur..cur+SLOTS`.
    cur: i64,
    /// Entries at `cur + SLOTS` and later.
    far: BinaryHeap<Reverse<Entry>>,
    /// Entries taken out (or pushed already due), handed out by `pop_due`.
    due: Vec<Entry>,
    /// Entries in the buckets.
    in_wheel: usize,
    started: bool,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            buckets: (0..SLOTS).map(|_| Vec::new()).collect(),
            cur: 0,
            far: BinaryHeap::new(),
            due: Vec::new(),
            in_wheel: 0,
            started: false,
        }
    }
}

impl Timers {
    /// No timers.
    pub fn new() -> Self {
        Timers::default()
    }

    fn bucket(tick: i64) -> usize {
        (tick as usize) & (SLOTS - 1)
    }

    fn file(&mut self, e: Entry) {
        let t = e.tick();
        if t < self.cur {
            self.due.push(e);
        } else if t < self.cur + SLOTS as i64 {
            self.buckets[Self::bucket(t)].push(e);
            self.in_wheel += 1;
        } else {
            self.far.push(Reverse(e));
        }
    }

    /// Wake `slot` (generation `gen`) at `at`.
    pub fn push(&mut self, at: Instant, slot: u32, gen: u32) {
        let e = Entry {
            at: at.total_micros(),
            slot,
            gen,
        };
        if self.started {
            self.file(e);
        } else {
            // The wheel starts at the first `pop_due`'s time (engine clocks
            // need not start at zero); until then entries wait in the heap.
            self.far.push(Reverse(e));
        }
    }

    /// Take out every tick that has wholly passed by `now`.
    fn advance(&mut self, now: Instant) {
        let now_tick = now.total_micros().div_euclid(TICK_US);
        if !self.started {
            self.started = true;
            self.cur = self
                .far
                .peek()
                .map_or(now_tick, |e| e.0.tick().min(now_tick));
            self.refile_far();
        }
        // Bounded: at most SLOTS buckets per call; past that the wheel is
        // empty and jumps.
        let mut steps = 0;
        while self.cur < now_tick {
            if self.in_wheel == 0 {
                // Nothing in the buckets: jump to the next far entry or now.
                let next_far = self.far.peek().map_or(now_tick, |e| e.0.tick());
                self.cur = now_tick.min(next_far).max(self.cur + 1);
            } else {
                let b = Self::bucket(self.cur);
                let n = self.buckets[b].len();
                self.in_wheel -= n;
                self.due.append(&mut self.buckets[b]);
                self.cur += 1;
                steps += 1;
            }
            self.refile_far();
            if steps >= SLOTS {
                break;
            }
        }
    }

    /// Far entries now within the wheel's reach go into it.
    fn refile_far(&mut self) {
        while let Some(e) = self.far.peek() {
            if e.0.tick() >= self.cur + SLOTS as i64 {
                break;
            }
            if let Some(Reverse(e)) = self.far.pop() {
                self.file(e);
            }
        }
    }

    /// The next entry due by `now` (its tick wholly passed), if any; the
    /// caller checks whether it is still current.
    pub fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        if self.due.is_empty() {
            self.advance(now);
        }
        self.due.pop()
    }

    /// When the earliest entry that `current` accepts will be due (the end
    /// of its tick); entries it refuses on the way are dropped.
    pub fn next_due(&mut self, mut current: impl FnMut(&Entry) -> bool) -> Option<Instant> {
        // Stale entries are dropped from the back until a current one
        // shows (all of a bucket's entries share its tick).
        while let Some(e) = self.due.last() {
            if current(e) {
                // Already due.
                return Some(Instant::from_micros(self.cur * TICK_US));
            }
            self.due.pop();
        }
        let mut t = self.cur;
        let end = self.cur + SLOTS as i64;
        while self.in_wheel > 0 && t < end {
            let bucket = &mut self.buckets[Self::bucket(t)];
            while let Some(e) = bucket.last() {
                if current(e) {
                    return Some(Instant::from_micros((t + 1) * TICK_US));
                }
                bucket.pop();
                self.in_wheel -= 1;
            }
            t += 1;
        }
        while let Some(e) = self.far.peek() {
            if current(&e.0) {
                return Some(Instant::from_micros((e.0.tick() + 1) * TICK_US));
            }
            self.far.pop();
        }
        None
    }

    /// Entries held, stale ones included.
    pub fn len(&self) -> usize {
        self.in_wheel + self.far.len() + self.due.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: i64) -> Instant {
        Instant::from_millis(x)
    }

    fn drain(t: &mut Timers, now: Instant) -> Vec<(u32, i64)> {
        let mut v = Vec::new();
        while let Some(e) = t.pop_due(now) {
            v.push((e.slot, e.at));
        }
        v.sort();
        v
    }

    #[test]
    fn due_entries_come_out_once_their_tick_has_passed() {
        let mut t = Timers::new();
        t.push(ms(30), 3, 0);
        t.push(ms(10), 1, 0);
        t.push(Instant::from_micros(20_500), 2, 7);
        assert!(t.pop_due(ms(5)).is_none());
        // 20.5 ms is in tick 20: not out at 20.9 ms, out at 21 ms.
        assert_eq!(
            drain(&mut t, Instant::from_micros(20_900)),
            vec![(1, 10_000)]
        );
        assert_eq!(drain(&mut t, ms(21)), vec![(2, 20_500)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_due(|_| true), Some(ms(31)));
        assert_eq!(drain(&mut t, ms(31)), vec![(3, 30_000)]);
        assert!(t.is_empty());
    }

    #[test]
    fn never_early_at_most_a_tick_late_far_entries_included() {
        let mut t = Timers::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut want = Vec::new();
        for i in 0..5000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Up to 40 s out: beyond the wheel's 8.2 s too.
            let at = 1_000_000 + (rng % 40_000_000) as i64;
            t.push(Instant::from_micros(at), i, 0);
            want.push(at);
        }
        let mut got = 0;
        let mut now = 1_000_000;
        while now < 42_000_000 {
            while let Some(e) = t.pop_due(Instant::from_micros(now)) {
                assert!(e.at <= now, "early: {} at {now}", e.at);
                assert!(now - e.at <= TICK_US + 500, "late: {} at {now}", e.at);
                assert_eq!(want[e.slot as usize], e.at);
                got += 1;
            }
            now += 500;
        }
        assert_eq!(got, 5000);
        assert!(t.is_empty());
    }

    #[test]
    fn next_due_drops_stale_entries_and_names_the_tick_end() {
        let mut t = Timers::new();
        t.push(ms(5), 1, 0);
        t.push(ms(7), 2, 0);
        t.push(ms(20_000), 3, 0);
        // Slot 1 went stale.
        assert_eq!(t.next_due(|e| e.slot != 1), Some(ms(8)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_due(|e| e.slot == 3), Some(ms(20_001)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_due(|_| false), None);
        assert!(t.is_empty());
    }

    #[test]
    fn a_long_quiet_spell_does_not_walk_every_tick() {
        let mut t = Timers::new();
        t.push(ms(1), 1, 0);
        assert_eq!(drain(&mut t, ms(2)), vec![(1, 1000)]);
        // An hour later, with nothing in the wheel: one jump.
        t.push(ms(3_600_000), 2, 0);
        assert!(t.pop_due(ms(3_599_000)).is_none());
        assert_eq!(drain(&mut t, ms(3_600_001)), vec![(2, 3_600_000_000)]);
    }

    #[test]
    fn an_entry_pushed_already_due_comes_out_next() {
        let mut t = Timers::new();
        t.push(ms(10), 1, 0);
        assert_eq!(drain(&mut t, ms(11)), vec![(1, 10_000)]);
        t.push(ms(3), 2, 0);
        assert_eq!(t.pop_due(ms(11)).map(|e| e.slot), Some(2));
    }
}
