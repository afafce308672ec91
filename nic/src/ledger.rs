//! Frame accounting: every UMEM frame is in exactly one place.
//!
//! The ledger is the invariant behind every `unsafe` frame access in this
//! crate: a frame's bytes are only touched while the ledger says the stack
//! holds it ([`Place::Rx`] or [`Place::TxBuild`]), and only one descriptor for
//! a frame is live at a time.

use std::fmt;

/// Where a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Place {
    /// On the port's free list.
    Free = 0,
    /// Given to the kernel through the fill ring (or sitting in the rx ring).
    Fill = 1,
    /// Received: held by the stack until it is released.
    Rx = 2,
    /// Being written for transmission, not yet on the tx ring.
    TxBuild = 3,
    /// On the tx ring or the completion ring: owned by the kernel.
    Tx = 4,
}

impl Place {
    /// Every place, in order.
    pub const ALL: [Place; 5] = [
        Place::Free,
        Place::Fill,
        Place::Rx,
        Place::TxBuild,
        Place::Tx,
    ];

    fn name(self) -> &'static str {
        match self {
            Place::Free => "free",
            Place::Fill => "fill",
            Place::Rx => "rx",
            Place::TxBuild => "tx-build",
            Place::Tx => "tx",
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A frame was moved from a place it was not in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The frame index is outside the UMEM.
    #[error("frame {index} is outside the UMEM ({count} frames)")]
    OutOfRange {
        /// The index given.
        index: u32,
        /// Frames in the UMEM.
        count: u32,
    },
    /// The frame was not where the move expected it.
    #[error("frame {index} moved {from} -> {to} but it is in {actual}")]
    WrongPlace {
        /// The frame index.
        index: u32,
        /// Where the move expected it.
        from: Place,
        /// Where the move was to.
        to: Place,
        /// Where it really was.
        actual: Place,
    },
    /// The per-place counters disagree with the per-frame states.
    #[error("accounting mismatch: counted {counted:?}, recounted {recounted:?}")]
    Mismatch {
        /// Running counters.
        counted: [u32; 5],
        /// Recount from the per-frame table.
        recounted: [u32; 5],
    },
}

/// Per-frame places plus running counts per place.
#[derive(Clone, Debug)]
pub struct Ledger {
    place: Vec<Place>,
    count: [u32; 5],
    moves: u64,
}

impl Ledger {
    /// A ledger of `frames` frames, all free.
    pub fn new(frames: u32) -> Self {
        let mut count = [0; 5];
        count[Place::Free as usize] = frames;
        Ledger {
            place: vec![Place::Free; frames as usize],
            count,
            moves: 0,
        }
    }

    /// Number of frames.
    pub fn frames(&self) -> u32 {
        self.place.len() as u32
    }

    /// Where frame `index` is.
    pub fn place(&self, index: u32) -> Option<Place> {
        self.place.get(index as usize).copied()
    }

    /// How many frames are in `place`.
    pub fn count(&self, place: Place) -> u32 {
        self.count[place as usize]
    }

    /// Frames moved so far.
    pub fn moves(&self) -> u64 {
        self.moves
    }

    /// Move frame `index` from `from` to `to`, refusing if it is elsewhere.
    pub fn move_frame(&mut self, index: u32, from: Place, to: Place) -> Result<(), LedgerError> {
        let count = self.frames();
        let slot = self
            .place
            .get_mut(index as usize)
            .ok_or(LedgerError::OutOfRange { index, count })?;
        if *slot != from {
            return Err(LedgerError::WrongPlace {
                index,
                from,
                to,
                actual: *slot,
            });
        }
        *slot = to;
        self.count[from as usize] -= 1;
        self.count[to as usize] += 1;
        self.moves += 1;
        Ok(())
    }

    /// Recount every frame and compare with the running counters: proves no
    /// frame was lost or duplicated.
    pub fn check(&self) -> Result<(), LedgerError> {
        let mut recounted = [0u32; 5];
        for p in &self.place {
            recounted[*p as usize] += 1;
        }
        if recounted != self.count || recounted.iter().sum::<u32>() != self.frames() {
            return Err(LedgerError::Mismatch {
                counted: self.count,
                recounted,
            });
        }
        Ok(())
    }

    /// Counts per place, in [`Place::ALL`] order.
    pub fn counts(&self) -> [u32; 5] {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame's way through receiving.
    const RX_CYCLE: [Place; 4] = [Place::Free, Place::Fill, Place::Rx, Place::Free];

    /// Move frame `index` along `path` (each move must be accepted).
    fn walk(l: &mut Ledger, index: u32, path: &[Place]) {
        for step in path.windows(2) {
            l.move_frame(index, step[0], step[1]).unwrap();
        }
    }

    #[test]
    fn starts_all_free_and_checks() {
        let l = Ledger::new(8);
        assert_eq!(l.count(Place::Free), 8);
        l.check().unwrap();
    }

    #[test]
    fn full_cycle_keeps_totals() {
        let mut l = Ledger::new(4);
        walk(&mut l, 0, &RX_CYCLE);
        walk(&mut l, 1, &[Place::Free, Place::TxBuild, Place::Tx]);
        assert_eq!(l.count(Place::Tx), 1);
        walk(&mut l, 1, &[Place::Tx, Place::Free]);
        l.check().unwrap();
        assert_eq!(l.count(Place::Free), 4);
        assert_eq!(l.moves(), 6);
    }

    #[test]
    fn wrong_move_is_refused_and_changes_nothing() {
        let mut l = Ledger::new(2);
        let e = l.move_frame(0, Place::Rx, Place::Free).unwrap_err();
        assert_eq!(
            e,
            LedgerError::WrongPlace {
                index: 0,
                from: Place::Rx,
                to: Place::Free,
                actual: Place::Free
            }
        );
        assert!(l.move_frame(7, Place::Free, Place::Fill).is_err());
        l.check().unwrap();
        assert_eq!(l.count(Place::Free), 2);
    }

    #[test]
    fn double_release_is_caught() {
        let mut l = Ledger::new(1);
        walk(&mut l, 0, &RX_CYCLE);
        assert!(l.move_frame(0, Place::Rx, Place::Free).is_err());
    }
}
