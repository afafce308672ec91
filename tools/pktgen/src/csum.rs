//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624),
//! plus field writers that keep checksums valid as they patch a frame.
//!
//! Every writer takes frame offsets and returns `None` instead of panicking
//! when a field or checksum lies outside the buffer.

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last
/// byte is padded with zero), not yet folded.
pub fn sum(data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    let mut s: u64 = chunks
        .by_ref()
        .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        s += u64::from(*last) << 8;
    }
    s
}

/// Fold a sum to 16 bits with end-around carry.
pub fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The checksum of `data`: the complement of its folded sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// RFC 1624 eqn. 3: the checksum `hc` after one 16-bit word it covers changed
/// from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
///
/// A result of 0x0000 is given as 0xffff: both are one's-complement zero and
/// verify alike, and UDP reserves 0x0000 for "no checksum" (IPv4) or forbids
/// it (IPv6).
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    let s = u64::from(!hc) + u64::from(!old) + u64::from(new);
    match !fold(s) {
        0 => 0xffff,
        c => c,
    }
}

fn get16(buf: &[u8], off: usize) -> Option<u16> {
    let b = buf.get(off..off + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn put16(buf: &mut [u8], off: usize, v: u16) -> Option<()> {
    buf.get_mut(off..off + 2)?.copy_from_slice(&v.to_be_bytes());
    Some(())
}

/// Write `new` at `off` (big-endian words) and update every checksum at
/// `csums` (frame offsets of 16-bit checksum fields) for the change.
///
/// `off` must be even relative to the start of each checksum's coverage;
/// in an Ethernet frame every IP and L4 header starts at an even offset, so
/// an even frame offset is enough (odd offsets and odd lengths are refused).
/// Only words that change are touched.
pub fn set_bytes(buf: &mut [u8], off: usize, new: &[u8], csums: &[usize]) -> Option<()> {
    if off & 1 != 0 || new.len() & 1 != 0 {
        return None;
    }
    // Check every offset first so that a refusal leaves the frame untouched.
    buf.get(off..off + new.len())?;
    for &c in csums {
        get16(buf, c)?;
    }
    for (i, w) in new.chunks_exact(2).enumerate() {
        let at = off + 2 * i;
        let old = get16(buf, at)?;
        let v = u16::from_be_bytes([w[0], w[1]]);
        if old == v {
            continue;
        }
        put16(buf, at, v)?;
        for &c in csums {
            let hc = get16(buf, c)?;
            put16(buf, c, update16(hc, old, v))?;
        }
    }
    Some(())
}

/// [`set_bytes`] for a big-endian `u16`.
pub fn set16(buf: &mut [u8], off: usize, v: u16, csums: &[usize]) -> Option<()> {
    set_bytes(buf, off, &v.to_be_bytes(), csums)
}

/// [`set_bytes`] for a big-endian `u32`.
pub fn set32(buf: &mut [u8], off: usize, v: u32, csums: &[usize]) -> Option<()> {
    set_bytes(buf, off, &v.to_be_bytes(), csums)
}

/// [`set_bytes`] for a big-endian `u64`.
pub fn set64(buf: &mut [u8], off: usize, v: u64, csums: &[usize]) -> Option<()> {
    set_bytes(buf, off, &v.to_be_bytes(), csums)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 section 3's example: the sum of these words is 0xddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        // Odd length: the last byte is the high half of a word.
        assert_eq!(sum(&[0x12]), 0x1200);
    }

    /// After any sequence of patches, the incrementally kept checksum equals
    /// the one recomputed from scratch (modulo the two forms of zero).
    #[test]
    fn incremental_equals_recomputed() {
        let mut rng = testkit::Rng::new(0x1234_5678_9abc_def0);
        let mut next = || rng.next_u64();
        for len in [4usize, 10, 64, 1000] {
            let mut buf: Vec<u8> = (0..len + 2).map(|_| next() as u8).collect();
            // Checksum field at the end, covering everything.
            let c = len;
            buf[c..c + 2].fill(0);
            let v = checksum(&buf);
            buf[c..c + 2].copy_from_slice(&v.to_be_bytes());
            for _ in 0..500 {
                let off = (next() as usize % (len / 2)) * 2;
                let w = next() as u16;
                set16(&mut buf, off, w, &[c]).unwrap();
                // Valid: the whole buffer sums to one's-complement zero.
                assert_eq!(fold(sum(&buf)), 0xffff, "len {len}");
            }
        }
    }

    #[test]
    fn zero_result_becomes_ffff() {
        // Sum of the rest is 0xffff: the checksum is zero, written 0xffff.
        assert_eq!(update16(0x0001, 0xfffe, 0xffff), 0xffff);
        // The normal case.
        assert_eq!(update16(!0x1234, 0x1234, 0x1235), !0x1235);
    }

    #[test]
    fn refuses_out_of_range_and_odd() {
        let mut buf = [0u8; 8];
        assert!(set16(&mut buf, 7, 1, &[0]).is_none());
        assert!(set16(&mut buf, 8, 1, &[0]).is_none());
        assert!(set16(&mut buf, 2, 1, &[8]).is_none());
        assert!(set_bytes(&mut buf, 0, &[1, 2, 3], &[]).is_none());
        assert_eq!(buf, [0u8; 8], "a refusal writes nothing");
        assert!(set64(&mut buf, 0, u64::MAX, &[]).is_some());
        assert_eq!(buf, [0xff; 8]);
    }
}
