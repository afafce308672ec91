//! The payload of the `echo` template: who sent it, when, and its sequence
//! number, so that a reply carries everything needed to match it and to
//! measure its round trip without any table on the sender.
//!
//! Layout (big-endian, every field at an even offset so that it can be
//! patched with an incremental checksum update):
//!
//! | offset | bytes | field                                  |
//! |--------|-------|----------------------------------------|
//! | 0      | 4     | magic `XPKG`                           |
//! | 4      | 4     | run id (random per pktgen run)         |
//! | 8      | 4     | thread (queue index of the sender)     |
//! | 12     | 8     | sequence number within the thread      |
//! | 20     | 8     | send time, ns since the run's start    |
//!
//! The rest of the payload (up to `--payload` bytes) is filler.

/// `XPKG`.
pub const MAGIC: u32 = 0x5850_4b47;
/// Bytes of the echo header; the smallest echo payload.
pub const HEADER_LEN: usize = 28;
/// Offset of the thread field.
pub const THREAD_OFF: usize = 8;
/// Offset of the sequence number.
pub const SEQ_OFF: usize = 12;
/// Offset of the timestamp.
pub const TS_OFF: usize = 20;

/// The fields of an echo payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoHeader {
    /// Run id.
    pub run: u32,
    /// Sending thread.
    pub thread: u32,
    /// Sequence number within the thread.
    pub seq: u64,
    /// Send time in ns since the run's start.
    pub ts_ns: u64,
}

impl EchoHeader {
    /// Write the header into the first [`HEADER_LEN`] bytes of `buf`.
    /// `None` when `buf` is shorter.
    pub fn encode(&self, buf: &mut [u8]) -> Option<()> {
        let b = buf.get_mut(..HEADER_LEN)?;
        b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&self.run.to_be_bytes());
        b[8..12].copy_from_slice(&self.thread.to_be_bytes());
        b[12..20].copy_from_slice(&self.seq.to_be_bytes());
        b[20..28].copy_from_slice(&self.ts_ns.to_be_bytes());
        Some(())
    }

    /// Read a header from `buf`: `None` if it is too short or the magic is
    /// wrong (any bytes at all may arrive here).
    pub fn decode(buf: &[u8]) -> Option<EchoHeader> {
        let b = buf.get(..HEADER_LEN)?;
        let u32_at = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_be_bytes(a)
        };
        if u32_at(0) != MAGIC {
            return None;
        }
        Some(EchoHeader {
            run: u32_at(4),
            thread: u32_at(THREAD_OFF),
            seq: u64_at(SEQ_OFF),
            ts_ns: u64_at(TS_OFF),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = EchoHeader {
            run: 0xdead_beef,
            thread: 3,
            seq: u64::MAX - 7,
            ts_ns: 123_456_789_012,
        };
        let mut buf = [0u8; 40];
        h.encode(&mut buf).unwrap();
        assert_eq!(&buf[..4], b"XPKG");
        assert_eq!(EchoHeader::decode(&buf), Some(h));
        assert_eq!(EchoHeader::decode(&buf[..HEADER_LEN]), Some(h));
    }

    #[test]
    fn rejects_short_and_foreign() {
        let h = EchoHeader {
            run: 1,
            thread: 0,
            seq: 0,
            ts_ns: 0,
        };
        let mut buf = [0u8; HEADER_LEN];
        assert!(h.encode(&mut buf[..HEADER_LEN - 1]).is_none());
        h.encode(&mut buf).unwrap();
        assert!(EchoHeader::decode(&buf[..HEADER_LEN - 1]).is_none());
        buf[0] ^= 1;
        assert!(EchoHeader::decode(&buf).is_none());
        assert!(EchoHeader::decode(&[]).is_none());
    }

    #[test]
    fn fields_are_at_even_offsets() {
        for off in [4, THREAD_OFF, SEQ_OFF, TS_OFF, HEADER_LEN] {
            assert_eq!(off % 2, 0);
        }
    }
}
