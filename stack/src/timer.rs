//! The timers of one core's connections: a min-heap of (when, slot,
//! generation) with lazy cancellation. A connection keeps the time of its
//! earliest entry; an entry that no longer matches it (the connection was
//! released, or rescheduled earlier) is skipped when it comes up. A
//! connection pushes a new entry only when its next deadline moves earlier,
//! so entries per connection stay few and nothing scans the connections.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use smoltcp::time::Instant;

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

/// A min-heap of wake-ups.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl Timers {
    /// No timers.
    pub fn new() -> Self {
        Timers::default()
    }

    /// Wake `slot` (generation `gen`) at `at`.
    pub fn push(&mut self, at: Instant, slot: u32, gen: u32) {
        self.heap.push(Reverse(Entry {
            at: at.total_micros(),
            slot,
            gen,
        }));
    }

    /// The next entry due at or before `now`, if any (the caller checks
    /// whether it is still current).
    pub fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        let top = self.heap.peek()?;
        if top.0.at <= now.total_micros() {
            self.heap.pop().map(|e| e.0)
        } else {
            None
        }
    }

    /// The earliest entry (possibly stale).
    pub fn peek(&self) -> Option<Entry> {
        self.heap.peek().map(|e| e.0)
    }

    /// Drop the earliest entry (the caller found it stale).
    pub fn pop(&mut self) -> Option<Entry> {
        self.heap.pop().map(|e| e.0)
    }

    /// Entries held, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_entries_come_out_in_order() {
        let mut t = Timers::new();
        t.push(Instant::from_millis(30), 3, 0);
        t.push(Instant::from_millis(10), 1, 0);
        t.push(Instant::from_millis(20), 2, 7);
        assert!(t.pop_due(Instant::from_millis(5)).is_none());
        let a = t.pop_due(Instant::from_millis(25)).unwrap();
        assert_eq!((a.slot, a.gen), (1, 0));
        let b = t.pop_due(Instant::from_millis(25)).unwrap();
        assert_eq!((b.slot, b.gen), (2, 7));
        assert!(t.pop_due(Instant::from_millis(25)).is_none());
        assert_eq!(t.len(), 1);
        assert_eq!(t.peek().unwrap().slot, 3);
    }
}
