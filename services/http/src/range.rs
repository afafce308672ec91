//! `Range: bytes=...` (RFC 9110 14.1, 14.2): which parts of a
//! representation of known length a GET asks for. No I/O, no allocation.
//!
//! Policy where the RFC lets the server choose (14.2: a server MAY ignore
//! or reject ranges that look like an attack), as nginx does: more than
//! [`MAX_RANGES`] ranges, or ranges adding up to more than the
//! representation, are ignored (the whole representation, 200); a range
//! that is not valid syntax, or another unit, is ignored too.
//! Unsatisfiable ranges among satisfiable ones are dropped; none
//! satisfiable is a 416. Ranges are served in the order asked, not merged.

/// Most ranges served in one response (`multipart/byteranges` parts).
pub const MAX_RANGES: usize = 16;

/// Byte ranges to serve: `(first, last)`, inclusive, all within the
/// representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranges {
    list: [(u64, u64); MAX_RANGES],
    n: usize,
}

impl Ranges {
    /// The ranges, in the order asked.
    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.list[..self.n]
    }
}

/// What a `Range` field means for a representation of some length.
// 264 bytes on the stack, once per ranged request: a Box would be an
// allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSet {
    /// Serve the whole representation (200): bad syntax, another unit, too
    /// many ranges or too many bytes.
    Ignore,
    /// None of the ranges is satisfiable: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
    /// 206: one range (`Content-Range`) or several (`multipart/byteranges`).
    Ranges(Ranges),
}

/// Reads `value` (the field's value, trimmed) for a representation of
/// `len` bytes.
pub fn parse(value: &[u8], len: u64) -> RangeSet {
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return RangeSet::Ignore;
    };
    // range-unit is case-insensitive (14.1).
    if !value[..eq].eq_ignore_ascii_case(b"bytes") {
        return RangeSet::Ignore;
    }
    let mut out = Ranges {
        list: [(0, 0); MAX_RANGES],
        n: 0,
    };
    let mut specs = 0;
    let mut total: u64 = 0;
    for spec in value[eq + 1..].split(|&b| b == b',') {
        let spec = trim(spec);
        if spec.is_empty() {
            // Empty list elements are allowed (RFC 9110 5.6.1)...
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return RangeSet::Ignore;
        }
        let Some(dash) = spec.iter().position(|&b| b == b'-') else {
            return RangeSet::Ignore;
        };
        let (a, b) = (&spec[..dash], &spec[dash + 1..]);
        let r = if a.is_empty() {
            // suffix-range: the last N bytes; `-0` is unsatisfiable.
            let Some(n) = digits(b) else {
                return RangeSet::Ignore;
            };
            (n > 0 && len > 0).then(|| (len - n.min(len), len - 1))
        } else {
            let Some(first) = digits(a) else {
                return RangeSet::Ignore;
            };
            let last = if b.is_empty() {
                u64::MAX
            } else {
                match digits(b) {
                    Some(l) if l >= first => l,
                    // last < first: invalid (14.1.1).
                    _ => return RangeSet::Ignore,
                }
            };
            (first < len).then(|| (first, last.min(len - 1)))
        };
        if let Some((f, l)) = r {
            total = total.saturating_add(l - f + 1);
            out.list[out.n] = (f, l);
            out.n += 1;
        }
    }
    if specs == 0 {
        // ...but at least one range is required.
        return RangeSet::Ignore;
    }
    if out.n == 0 {
        return RangeSet::Unsatisfiable;
    }
    if total > len {
        // Overlapping ranges asking for more than the whole (a way to
        // amplify a response, 14.2): the whole, once.
        return RangeSet::Ignore;
    }
    RangeSet::Ranges(out)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// 1*DIGIT; a number past u64 is u64::MAX (past any length: as a first
/// position unsatisfiable, as a last one the end).
fn digits(d: &[u8]) -> Option<u64> {
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(d.iter().fold(0u64, |n, &c| {
        n.saturating_mul(10).saturating_add(u64::from(c - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::result_large_err)]
    fn r(v: &str, len: u64) -> Result<Vec<(u64, u64)>, RangeSet> {
        match parse(v.as_bytes(), len) {
            RangeSet::Ranges(r) => Ok(r.as_slice().to_vec()),
            other => Err(other),
        }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(r("bytes=0-0", 10), Ok(vec![(0, 0)]));
        assert_eq!(r("bytes=0-9", 10), Ok(vec![(0, 9)]));
        assert_eq!(r("bytes=2-", 10), Ok(vec![(2, 9)]));
        assert_eq!(r("bytes=5-100", 10), Ok(vec![(5, 9)]));
        assert_eq!(r("bytes=-3", 10), Ok(vec![(7, 9)]));
        assert_eq!(r("bytes=-30", 10), Ok(vec![(0, 9)]));
        assert_eq!(r("BYTES=1-2", 10), Ok(vec![(1, 2)]));
        assert_eq!(r("bytes= 1-2 ", 10), Ok(vec![(1, 2)]));
        // A huge file: nothing overflows.
        assert_eq!(
            r("bytes=4294967296-", 5 << 30),
            Ok(vec![(4_294_967_296, (5 << 30) - 1)])
        );
        assert_eq!(r("bytes=0-18446744073709551615", 7), Ok(vec![(0, 6)]));
    }

    #[test]
    fn several_ranges_in_order_asked() {
        assert_eq!(r("bytes=0-1, 5-6,-2", 10), Ok(vec![(0, 1), (5, 6), (8, 9)]));
        assert_eq!(r("bytes=6-7,0-1", 10), Ok(vec![(6, 7), (0, 1)]));
        // Unsatisfiable ones among satisfiable ones are dropped.
        assert_eq!(r("bytes=20-30,0-1", 10), Ok(vec![(0, 1)]));
        assert_eq!(r("bytes=0-1,,3-4", 10), Ok(vec![(0, 1), (3, 4)]));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(r("bytes=10-", 10), Err(RangeSet::Unsatisfiable));
        assert_eq!(r("bytes=10-20", 10), Err(RangeSet::Unsatisfiable));
        assert_eq!(r("bytes=-0", 10), Err(RangeSet::Unsatisfiable));
        assert_eq!(r("bytes=0-", 0), Err(RangeSet::Unsatisfiable));
        assert_eq!(r("bytes=-5", 0), Err(RangeSet::Unsatisfiable));
        assert_eq!(r("bytes=20-30,40-", 10), Err(RangeSet::Unsatisfiable));
        assert_eq!(
            r("bytes=99999999999999999999-", 10),
            Err(RangeSet::Unsatisfiable)
        );
        assert_eq!(r("bytes=-99999999999999999999", 10), Ok(vec![(0, 9)]));
    }

    #[test]
    fn ignored() {
        for v in [
            "bytes=",
            "bytes=,",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=1",
            "bytes=--1",
            "bytes=1-2-3",
            "bytes=+1-2",
            "items=0-1",
            "0-1",
            "bytes=0-1;2-3",
        ] {
            assert_eq!(r(v, 10), Err(RangeSet::Ignore), "{v}");
        }
        // Too many ranges, or more bytes than the whole.
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(r(&many, 100), Err(RangeSet::Ignore));
        let max = format!("bytes={}", vec!["1-1"; MAX_RANGES].join(","));
        assert_eq!(r(&max, 100).map(|v| v.len()), Ok(MAX_RANGES));
        assert_eq!(r("bytes=0-,0-", 10), Err(RangeSet::Ignore));
        assert_eq!(r("bytes=0-5,3-9", 10), Err(RangeSet::Ignore));
        assert_eq!(r("bytes=0-4,3-7", 10), Ok(vec![(0, 4), (3, 7)]));
    }
}
