use core::fmt;

use crate::config::ASSEMBLER_MAX_SEGMENT_COUNT;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyHolesError;

impl fmt::Display for TooManyHolesError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "too many holes")
    }
}

impl core::error::Error for TooManyHolesError {}

/// A contiguous chunk of absent data, followed by a contiguous chunk of present data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Contig {
    hole_size: usize,
    data_size: usize,
}

impl fmt::Display for Contig {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.has_hole() {
            write!(f, "({})", self.hole_size)?;
        }
        if self.has_hole() && self.has_data() {
            write!(f, " ")?;
        }
        if self.has_data() {
            write!(f, "{}", self.data_size)?;
        }
        Ok(())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Contig {
    fn format(&self, fmt: defmt::Formatter) {
        if self.has_hole() {
            defmt::write!(fmt, "({})", self.hole_size);
        }
        if self.has_hole() && self.has_data() {
            defmt::write!(fmt, " ");
        }
        if self.has_data() {
            defmt::write!(fmt, "{}", self.data_size);
        }
    }
}

impl Contig {
    fn hole_and_data(hole_size: usize, data_size: usize) -> Contig {
        Contig {
            hole_size,
            data_size,
        }
    }

    fn has_hole(&self) -> bool {
        self.hole_size != 0
    }

    fn has_data(&self) -> bool {
        self.data_size != 0
    }

    fn total_size(&self) -> usize {
        self.hole_size + self.data_size
    }

    fn shrink_hole_by(&mut self, size: usize) {
        self.hole_size -= size;
    }

    fn shrink_hole_to(&mut self, size: usize) {
        debug_assert!(self.hole_size >= size);

        let total_size = self.total_size();
        self.hole_size = size;
        self.data_size = total_size - size;
    }
}

/// xdpstack patch (issue 19): the list of contigs. With `alloc` it grows on
/// the heap as holes appear (a TCP socket bounds it by its receive window,
/// see [`Assembler::add_bounded`]), is allocated only while there are holes
/// and released when the assembler empties (the engine pools many sockets
/// and must not keep each one's capacity). Without `alloc` it is a fixed
/// array of `ASSEMBLER_MAX_SEGMENT_COUNT`, as upstream.
#[cfg(feature = "alloc")]
type Contigs = alloc::vec::Vec<Contig>;
#[cfg(not(feature = "alloc"))]
type Contigs = heapless::Vec<Contig, ASSEMBLER_MAX_SEGMENT_COUNT>;

/// A buffer (re)assembler.
///
/// xdpstack patch (issue 19): [`add`](Self::add) tracks up to
/// `ASSEMBLER_MAX_SEGMENT_COUNT` (4 to 32) holes, as upstream;
/// [`add_bounded`](Self::add_bounded) up to a bound the caller chooses (with
/// `alloc`; without it the list stays a fixed array of
/// `ASSEMBLER_MAX_SEGMENT_COUNT`). The list is on the heap only while
/// there are holes.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Assembler {
    contigs: Contigs,
}

impl fmt::Display for Assembler {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "[ ")?;
        for contig in self.contigs.iter() {
            write!(f, "{contig} ")?;
        }
        write!(f, "]")?;
        Ok(())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Assembler {
    fn format(&self, fmt: defmt::Formatter) {
        defmt::write!(fmt, "[ ");
        for contig in self.contigs.iter() {
            defmt::write!(fmt, "{} ", contig);
        }
        defmt::write!(fmt, "]");
    }
}

// Invariant on Assembler::contigs (xdpstack patch: a list of the used
// contigs, no longer an array with unused ones at the end):
// - All contigs have data.
// - All contigs must have hole_size != 0, except the first.

impl Assembler {
    /// Create a new buffer assembler.
    pub const fn new() -> Assembler {
        Assembler {
            contigs: Contigs::new(),
        }
    }

    /// Forget all the data, releasing the list's heap allocation.
    pub fn clear(&mut self) {
        self.release();
    }

    /// xdpstack patch: empty the list and give its heap allocation back.
    fn release(&mut self) {
        self.contigs = Contigs::new();
    }

    /// Return length of the front contiguous range without removing it from the assembler
    pub fn peek_front(&self) -> usize {
        match self.contigs.first() {
            Some(front) if !front.has_hole() => front.data_size,
            _ => 0,
        }
    }

    /// xdpstack patch (buffers that grow): the offset just past the last
    /// byte held (0 when empty): how much of a receive buffer's storage,
    /// past its allocated part, out-of-order data occupies.
    pub fn data_end(&self) -> usize {
        self.contigs.iter().map(|c| c.total_size()).sum()
    }

    /// Return whether the assembler contains no data.
    pub fn is_empty(&self) -> bool {
        self.contigs.is_empty()
    }

    /// xdpstack patch (issue 19): the number of contiguous data ranges
    /// held (each preceded by a hole, except a first one at offset 0).
    pub fn range_count(&self) -> usize {
        self.contigs.len()
    }

    /// xdpstack patch (issue 19): the bytes of heap the assembler holds
    /// (0 when it is empty, or without `alloc`).
    pub fn heap_size(&self) -> usize {
        #[cfg(feature = "alloc")]
        {
            self.contigs.capacity() * core::mem::size_of::<Contig>()
        }
        #[cfg(not(feature = "alloc"))]
        {
            0
        }
    }

    /// xdpstack patch (issue 19): whether all of `offset..offset + size`
    /// is held already (false for `size == 0`).
    pub fn contains(&self, offset: usize, size: usize) -> bool {
        let Some(end) = offset.checked_add(size) else {
            return false;
        };
        size != 0
            && self
                .iter_data()
                .any(|(left, right)| left <= offset && end <= right)
    }

    /// Insert `contig` at `at`, unless the list holds `max` already (or,
    /// without `alloc`, is full).
    fn insert_contig(
        &mut self,
        at: usize,
        contig: Contig,
        max: usize,
    ) -> Result<(), TooManyHolesError> {
        if self.contigs.len() >= max {
            return Err(TooManyHolesError);
        }
        #[cfg(feature = "alloc")]
        {
            self.contigs.insert(at, contig);
            Ok(())
        }
        #[cfg(not(feature = "alloc"))]
        {
            self.contigs
                .insert(at, contig)
                .map_err(|_| TooManyHolesError)
        }
    }

    /// Add a new contiguous range to the assembler,
    /// or return `Err(TooManyHolesError)` if too many discontinuities are already recorded
    /// (`ASSEMBLER_MAX_SEGMENT_COUNT`).
    pub fn add(&mut self, offset: usize, size: usize) -> Result<(), TooManyHolesError> {
        self.add_bounded(offset, size, ASSEMBLER_MAX_SEGMENT_COUNT)
    }

    /// xdpstack patch (issue 19): add a new contiguous range to the
    /// assembler, or return `Err(TooManyHolesError)`, changing nothing, if it
    /// would make more than `max_ranges` contiguous data ranges (holes).
    /// Without `alloc` the bound is at most `ASSEMBLER_MAX_SEGMENT_COUNT`.
    pub fn add_bounded(
        &mut self,
        mut offset: usize,
        size: usize,
        max_ranges: usize,
    ) -> Result<(), TooManyHolesError> {
        if size == 0 {
            return Ok(());
        }

        let mut i = 0;

        // Find index of the contig containing the start of the range.
        loop {
            if i == self.contigs.len() {
                // The new range is after all the previous ranges. Add it.
                return self.insert_contig(i, Contig::hole_and_data(offset, size), max_ranges);
            }
            let total = self.contigs[i].total_size();
            if offset <= total {
                break;
            }
            offset -= total;
            i += 1;
        }

        if offset < self.contigs[i].hole_size {
            // Range starts within the hole.

            if offset + size < self.contigs[i].hole_size {
                // Range also ends within the hole.
                self.insert_contig(i, Contig::hole_and_data(offset, size), max_ranges)?;
                // Previous contigs[index] got moved to contigs[index+1]
                self.contigs[i + 1].shrink_hole_by(offset + size);
                return Ok(());
            }

            // The range being added covers both a part of the hole and a part of the data
            // in this contig, shrink the hole in this contig.
            self.contigs[i].shrink_hole_to(offset);
        }

        // coalesce contigs to the right.
        let mut j = i + 1;
        while j < self.contigs.len()
            && offset + size >= self.contigs[i].total_size() + self.contigs[j].hole_size
        {
            self.contigs[i].data_size += self.contigs[j].total_size();
            j += 1;
        }
        if j > i + 1 {
            self.contigs.drain(i + 1..j);
        }

        if offset + size > self.contigs[i].total_size() {
            // The added range still extends beyond the current contig. Increase data size.
            let left = offset + size - self.contigs[i].total_size();
            self.contigs[i].data_size += left;

            // Decrease hole size of the next, if any.
            if i + 1 < self.contigs.len() {
                self.contigs[i + 1].hole_size -= left;
            }
        }

        Ok(())
    }

    /// Remove a contiguous range from the front of the assembler.
    /// If no such range, return 0.
    ///
    /// xdpstack patch (issue 19): when this empties the assembler, the
    /// list's heap allocation is released.
    pub fn remove_front(&mut self) -> usize {
        match self.contigs.first() {
            Some(front) if !front.has_hole() => {
                let size = front.data_size;
                debug_assert!(size > 0);
                if self.contigs.len() == 1 {
                    self.release();
                } else {
                    self.contigs.remove(0);
                }
                size
            }
            _ => 0,
        }
    }

    /// Add a segment, then remove_front.
    ///
    /// This is equivalent to calling `add` then `remove_front` individually,
    /// except it's guaranteed to not fail when offset = 0.
    /// This is required for TCP: we must never drop the next expected segment, or
    /// the protocol might get stuck.
    pub fn add_then_remove_front(
        &mut self,
        offset: usize,
        size: usize,
    ) -> Result<usize, TooManyHolesError> {
        self.add_bounded_then_remove_front(offset, size, ASSEMBLER_MAX_SEGMENT_COUNT)
    }

    /// xdpstack patch (issue 19): [`add_bounded`](Self::add_bounded), then
    /// [`remove_front`](Self::remove_front); never fails when `offset` is 0,
    /// and touches no heap when the assembler is empty and `offset` is 0
    /// (in-order data).
    pub fn add_bounded_then_remove_front(
        &mut self,
        offset: usize,
        size: usize,
        max_ranges: usize,
    ) -> Result<usize, TooManyHolesError> {
        if offset == 0 {
            match self.contigs.first_mut() {
                // In order, nothing held: nothing to record.
                None => return Ok(size),
                // This is the only case where a segment at offset=0 would cause the
                // total amount of contigs to rise (and therefore can potentially cause
                // a TooManyHolesError). Handle it in a way that is guaranteed to succeed.
                Some(front) if size < front.hole_size => {
                    front.hole_size -= size;
                    return Ok(size);
                }
                Some(_) => {}
            }
        }

        self.add_bounded(offset, size, max_ranges)?;
        Ok(self.remove_front())
    }

    /// Iterate over all of the contiguous data ranges.
    ///
    /// Returns `(offset, size)` tuples for each contiguous data range, where
    /// offset is relative to the start of the assembler.
    ///
    ///    Data        Hole        Data
    /// |--- 100 ---|--- 200 ---|--- 100 ---|
    ///
    /// Would return the ranges: ``(0, 100), (300, 400)``
    pub fn iter_data(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut offset = 0;
        self.contigs.iter().map(move |contig| {
            offset += contig.hole_size;
            let left = offset;
            offset += contig.data_size;
            (left, offset)
        })
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::vec::Vec;

    impl From<Vec<(usize, usize)>> for Assembler {
        fn from(vec: Vec<(usize, usize)>) -> Assembler {
            // xdpstack patch: the list holds only contigs with data (an
            // entry (_, 0) stands for an unused one, as upstream's array had).
            let mut assr = Assembler::new();
            for &(hole_size, data_size) in vec.iter().filter(|&&(_, d)| d != 0) {
                assr.contigs.push(Contig {
                    hole_size,
                    data_size,
                });
            }
            assr
        }
    }

    macro_rules! contigs {
        [$( $x:expr ),*] => ({
            Assembler::from(vec![$( $x ),*])
        })
    }

    #[test]
    fn test_new() {
        let assr = Assembler::new();
        assert_eq!(assr, contigs![]);
    }

    #[test]
    fn test_data_end() {
        // xdpstack patch: the storage out-of-order data occupies.
        let mut assr = Assembler::new();
        assert_eq!(assr.data_end(), 0);
        assert_eq!(assr.add(4, 2), Ok(()));
        assert_eq!(assr.data_end(), 6);
        assert_eq!(assr.add(10, 5), Ok(()));
        assert_eq!(assr.data_end(), 15);
        assert_eq!(assr.add(0, 4), Ok(()));
        assert_eq!(assr.data_end(), 15);
    }

    #[test]
    fn test_empty_add_full() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(0, 16), Ok(()));
        assert_eq!(assr, contigs![(0, 16)]);
    }

    #[test]
    fn test_empty_add_front() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(0, 4), Ok(()));
        assert_eq!(assr, contigs![(0, 4)]);
    }

    #[test]
    fn test_empty_add_back() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(12, 4), Ok(()));
        assert_eq!(assr, contigs![(12, 4)]);
    }

    #[test]
    fn test_empty_add_mid() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(4, 8), Ok(()));
        assert_eq!(assr, contigs![(4, 8)]);
    }

    #[test]
    fn test_partial_add_front() {
        let mut assr = contigs![(4, 8)];
        assert_eq!(assr.add(0, 4), Ok(()));
        assert_eq!(assr, contigs![(0, 12)]);
    }

    #[test]
    fn test_partial_add_back() {
        let mut assr = contigs![(4, 8)];
        assert_eq!(assr.add(12, 4), Ok(()));
        assert_eq!(assr, contigs![(4, 12)]);
    }

    #[test]
    fn test_partial_add_front_overlap() {
        let mut assr = contigs![(4, 8)];
        assert_eq!(assr.add(0, 8), Ok(()));
        assert_eq!(assr, contigs![(0, 12)]);
    }

    #[test]
    fn test_partial_add_front_overlap_split() {
        let mut assr = contigs![(4, 8)];
        assert_eq!(assr.add(2, 6), Ok(()));
        assert_eq!(assr, contigs![(2, 10)]);
    }

    #[test]
    fn test_partial_add_back_overlap() {
        let mut assr = contigs![(4, 8)];
        assert_eq!(assr.add(8, 8), Ok(()));
        assert_eq!(assr, contigs![(4, 12)]);
    }

    #[test]
    fn test_partial_add_back_overlap_split() {
        let mut assr = contigs![(4, 8)];
        assert_eq!(assr.add(10, 4), Ok(()));
        assert_eq!(assr, contigs![(4, 10)]);
    }

    #[test]
    fn test_partial_add_both_overlap() {
        let mut assr = contigs![(4, 8)];
        assert_eq!(assr.add(0, 16), Ok(()));
        assert_eq!(assr, contigs![(0, 16)]);
    }

    #[test]
    fn test_partial_add_both_overlap_split() {
        let mut assr = contigs![(4, 8)];
        assert_eq!(assr.add(2, 12), Ok(()));
        assert_eq!(assr, contigs![(2, 12)]);
    }

    #[test]
    fn test_rejected_add_keeps_state() {
        let mut assr = Assembler::new();
        for c in 1..=ASSEMBLER_MAX_SEGMENT_COUNT {
            assert_eq!(assr.add(c * 10, 3), Ok(()));
        }
        // Maximum of allowed holes is reached
        let assr_before = assr.clone();
        assert_eq!(assr.add(1, 3), Err(TooManyHolesError));
        assert_eq!(assr_before, assr);
    }

    #[test]
    fn test_empty_remove_front() {
        let mut assr = contigs![];
        assert_eq!(assr.remove_front(), 0);
    }

    #[test]
    fn test_trailing_hole_remove_front() {
        let mut assr = contigs![(0, 4)];
        assert_eq!(assr.remove_front(), 4);
        assert_eq!(assr, contigs![]);
    }

    #[test]
    fn test_trailing_data_remove_front() {
        let mut assr = contigs![(0, 4), (4, 4)];
        assert_eq!(assr.remove_front(), 4);
        assert_eq!(assr, contigs![(4, 4)]);
    }

    #[test]
    fn test_boundary_case_remove_front() {
        let mut vec = vec![(1, 1); ASSEMBLER_MAX_SEGMENT_COUNT];
        vec[0] = (0, 2);
        let mut assr = Assembler::from(vec);
        assert_eq!(assr.remove_front(), 2);
        let mut vec = vec![(1, 1); ASSEMBLER_MAX_SEGMENT_COUNT];
        vec[ASSEMBLER_MAX_SEGMENT_COUNT - 1] = (0, 0);
        let exp_assr = Assembler::from(vec);
        assert_eq!(assr, exp_assr);
    }

    #[test]
    fn test_shrink_next_hole() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(100, 10), Ok(()));
        assert_eq!(assr.add(50, 10), Ok(()));
        assert_eq!(assr.add(40, 30), Ok(()));
        assert_eq!(assr, contigs![(40, 30), (30, 10)]);
    }

    #[test]
    fn test_join_two() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(10, 10), Ok(()));
        assert_eq!(assr.add(50, 10), Ok(()));
        assert_eq!(assr.add(15, 40), Ok(()));
        assert_eq!(assr, contigs![(10, 50)]);
    }

    #[test]
    fn test_join_two_reversed() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(50, 10), Ok(()));
        assert_eq!(assr.add(10, 10), Ok(()));
        assert_eq!(assr.add(15, 40), Ok(()));
        assert_eq!(assr, contigs![(10, 50)]);
    }

    #[test]
    fn test_join_two_overlong() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(50, 10), Ok(()));
        assert_eq!(assr.add(10, 10), Ok(()));
        assert_eq!(assr.add(15, 60), Ok(()));
        assert_eq!(assr, contigs![(10, 65)]);
    }

    #[test]
    fn test_iter_empty() {
        let assr = Assembler::new();
        let segments: Vec<_> = assr.iter_data().collect();
        assert_eq!(segments, vec![]);
    }

    #[test]
    fn test_iter_full() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(0, 16), Ok(()));
        let segments: Vec<_> = assr.iter_data().collect();
        assert_eq!(segments, vec![(0, 16)]);
    }

    #[test]
    fn test_iter_one_front() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(0, 4), Ok(()));
        let segments: Vec<_> = assr.iter_data().collect();
        assert_eq!(segments, vec![(0, 4)]);
    }

    #[test]
    fn test_iter_one_back() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(12, 4), Ok(()));
        let segments: Vec<_> = assr.iter_data().collect();
        assert_eq!(segments, vec![(12, 16)]);
    }

    #[test]
    fn test_iter_one_mid() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(4, 8), Ok(()));
        let segments: Vec<_> = assr.iter_data().collect();
        assert_eq!(segments, vec![(4, 12)]);
    }

    #[test]
    fn test_iter_one_trailing_gap() {
        let assr = contigs![(4, 8)];
        let segments: Vec<_> = assr.iter_data().collect();
        assert_eq!(segments, vec![(4, 12)]);
    }

    #[test]
    fn test_iter_two_split() {
        let assr = contigs![(2, 6), (4, 1)];
        let segments: Vec<_> = assr.iter_data().collect();
        assert_eq!(segments, vec![(2, 8), (12, 13)]);
    }

    #[test]
    fn test_iter_three_split() {
        let assr = contigs![(2, 6), (2, 1), (2, 2)];
        let segments: Vec<_> = assr.iter_data().collect();
        assert_eq!(segments, vec![(2, 8), (10, 11), (13, 15)]);
    }

    #[test]
    fn test_issue_694() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(0, 1), Ok(()));
        assert_eq!(assr.add(2, 1), Ok(()));
        assert_eq!(assr.add(1, 1), Ok(()));
    }

    #[test]
    fn test_add_then_remove_front() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(50, 10), Ok(()));
        assert_eq!(assr.add_then_remove_front(10, 10), Ok(0));
        assert_eq!(assr, contigs![(10, 10), (30, 10)]);
    }

    #[test]
    fn test_add_then_remove_front_at_front() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(50, 10), Ok(()));
        assert_eq!(assr.add_then_remove_front(0, 10), Ok(10));
        assert_eq!(assr, contigs![(40, 10)]);
    }

    #[test]
    fn test_add_then_remove_front_at_front_touch() {
        let mut assr = Assembler::new();
        assert_eq!(assr.add(50, 10), Ok(()));
        assert_eq!(assr.add_then_remove_front(0, 50), Ok(60));
        assert_eq!(assr, contigs![]);
    }

    #[test]
    fn test_add_then_remove_front_at_front_full() {
        let mut assr = Assembler::new();
        for c in 1..=ASSEMBLER_MAX_SEGMENT_COUNT {
            assert_eq!(assr.add(c * 10, 3), Ok(()));
        }
        // Maximum of allowed holes is reached
        let assr_before = assr.clone();
        assert_eq!(assr.add_then_remove_front(1, 3), Err(TooManyHolesError));
        assert_eq!(assr_before, assr);
    }

    #[test]
    fn test_add_then_remove_front_at_front_full_offset_0() {
        let mut assr = Assembler::new();
        for c in 1..=ASSEMBLER_MAX_SEGMENT_COUNT {
            assert_eq!(assr.add(c * 10, 3), Ok(()));
        }
        assert_eq!(assr.add_then_remove_front(0, 3), Ok(3));
    }

    // Test against an obviously-correct but inefficient bitmap impl.
    #[test]
    fn test_random() {
        use rand::Rng;

        const MAX_INDEX: usize = 256;

        for max_size in [2, 5, 10, 100] {
            for _ in 0..300 {
                //println!("===");
                let mut assr = Assembler::new();
                let mut map = [false; MAX_INDEX];

                for _ in 0..60 {
                    let offset = rand::thread_rng().gen_range(0..MAX_INDEX - max_size - 1);
                    let size = rand::thread_rng().gen_range(1..=max_size);

                    //println!("add {}..{} {}", offset, offset + size, size);
                    // Real impl
                    let res = assr.add(offset, size);

                    // Bitmap impl
                    let mut map2 = map;
                    map2[offset..][..size].fill(true);

                    let mut contigs = vec![];
                    let mut hole: usize = 0;
                    let mut data: usize = 0;
                    for b in map2 {
                        if b {
                            data += 1;
                        } else {
                            if data != 0 {
                                contigs.push((hole, data));
                                hole = 0;
                                data = 0;
                            }
                            hole += 1;
                        }
                    }

                    // Compare.
                    let wanted_res = if contigs.len() > ASSEMBLER_MAX_SEGMENT_COUNT {
                        Err(TooManyHolesError)
                    } else {
                        Ok(())
                    };
                    assert_eq!(res, wanted_res);
                    if res.is_ok() {
                        map = map2;
                        assert_eq!(assr, Assembler::from(contigs));
                    }
                }
            }
        }
    }

    // xdpstack patch (issue 19): the list grows past ASSEMBLER_MAX_SEGMENT_COUNT
    // up to the bound the caller gives, and is on the heap only while
    // there are holes.

    #[test]
    fn test_bounded_many_holes() {
        let mut assr = Assembler::new();
        assert_eq!(assr.heap_size(), 0);
        // 100 holes: 1 byte of data every 10 bytes, added from the back.
        for c in (1..=100).rev() {
            assert_eq!(assr.add_bounded(c * 10, 1, 100), Ok(()));
        }
        assert_eq!(assr.range_count(), 100);
        let ranges: Vec<_> = assr.iter_data().collect();
        let wanted: Vec<_> = (1..=100).map(|c| (c * 10, c * 10 + 1)).collect();
        assert_eq!(ranges, wanted);
        assert!(assr.heap_size() > 0);
        assert_eq!(assr.data_end(), 1001);

        // Filling the holes from the back merges the ranges; the first
        // hole filled hands everything over and releases the allocation.
        for c in (1..100).rev() {
            assert_eq!(assr.add_bounded(c * 10 + 1, 9, 100), Ok(()));
            assert_eq!(assr.range_count(), c);
        }
        assert_eq!(assr.iter_data().collect::<Vec<_>>(), vec![(10, 1001)]);
        assert_eq!(assr.add_bounded_then_remove_front(0, 10, 100), Ok(1001));
        assert!(assr.is_empty());
        assert_eq!(assr.heap_size(), 0);
    }

    #[test]
    fn test_bounded_cap() {
        let mut assr = Assembler::new();
        for c in 1..=8 {
            assert_eq!(assr.add_bounded(c * 10, 3, 8), Ok(()));
        }
        let before = assr.clone();
        // A ninth hole, at the back or in the middle, is refused.
        assert_eq!(assr.add_bounded(100, 3, 8), Err(TooManyHolesError));
        assert_eq!(assr.add_bounded(2, 3, 8), Err(TooManyHolesError));
        assert_eq!(
            assr.add_bounded_then_remove_front(2, 3, 8),
            Err(TooManyHolesError)
        );
        assert_eq!(assr, before);
        // What merges with held data is still taken...
        assert_eq!(assr.add_bounded(13, 2, 8), Ok(()));
        assert_eq!(assr.add_bounded(15, 5, 8), Ok(()));
        assert_eq!(assr.range_count(), 7);
        // ... and so is the next expected segment, whatever the bound.
        assert_eq!(assr.add_bounded_then_remove_front(0, 1, 0), Ok(1));
        assert_eq!(assr.add_bounded_then_remove_front(0, 9, 0), Ok(9 + 13));
        assert_eq!(assr.range_count(), 6);
    }

    #[test]
    fn test_in_order_needs_no_heap() {
        let mut assr = Assembler::new();
        for _ in 0..10 {
            assert_eq!(assr.add_then_remove_front(0, 100), Ok(100));
            assert_eq!(assr.heap_size(), 0);
        }
        assert_eq!(assr.add(10, 5), Ok(()));
        assert!(assr.heap_size() > 0);
        assr.clear();
        assert!(assr.is_empty());
        assert_eq!(assr.heap_size(), 0);
        assert_eq!(assr.add(10, 5), Ok(()));
        assert_eq!(assr.add_then_remove_front(0, 10), Ok(15));
        assert_eq!(assr.heap_size(), 0);
    }

    #[test]
    fn test_contains() {
        let mut assr = Assembler::new();
        assert!(!assr.contains(0, 1));
        assert_eq!(assr.add(10, 10), Ok(()));
        assert_eq!(assr.add(30, 5), Ok(()));
        assert!(assr.contains(10, 10));
        assert!(assr.contains(12, 3));
        assert!(assr.contains(30, 5));
        assert!(!assr.contains(9, 2));
        assert!(!assr.contains(19, 2));
        assert!(!assr.contains(15, 20));
        assert!(!assr.contains(12, 0));
        assert!(!assr.contains(usize::MAX, 2));
    }

    // The bitmap comparison again, with room for many holes.
    #[test]
    fn test_random_bounded() {
        use rand::Rng;

        const MAX_INDEX: usize = 1024;
        const MAX_RANGES: usize = 100;

        for max_size in [1, 3, 10] {
            for _ in 0..50 {
                let mut assr = Assembler::new();
                let mut map = [false; MAX_INDEX];

                for _ in 0..300 {
                    let offset = rand::thread_rng().gen_range(0..MAX_INDEX - max_size - 1);
                    let size = rand::thread_rng().gen_range(1..=max_size);
                    let res = assr.add_bounded(offset, size, MAX_RANGES);

                    let mut map2 = map;
                    map2[offset..][..size].fill(true);

                    let mut contigs = vec![];
                    let mut hole: usize = 0;
                    let mut data: usize = 0;
                    for b in map2 {
                        if b {
                            data += 1;
                        } else {
                            if data != 0 {
                                contigs.push((hole, data));
                                hole = 0;
                                data = 0;
                            }
                            hole += 1;
                        }
                    }

                    let wanted_res = if contigs.len() > MAX_RANGES {
                        Err(TooManyHolesError)
                    } else {
                        Ok(())
                    };
                    assert_eq!(res, wanted_res);
                    if res.is_ok() {
                        map = map2;
                        assert_eq!(assr, Assembler::from(contigs));
                    }
                    assert!(assr.range_count() <= MAX_RANGES);
                }
            }
        }
    }
}
