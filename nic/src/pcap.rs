//! A pcap file of what an AF_XDP port receives and sends, bounded in size.
//!
//! tcpdump on the interface cannot see what XDP redirects to a socket, so
//! the port writes it itself. One file for all the ports of a process (a
//! mutex around the writer: a debugging aid, not a fast path); once the
//! limit is reached further frames are counted and not written.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of each frame kept.
pub const SNAPLEN: u32 = 65535;

/// The pcap global header (v2.4, microseconds, LINKTYPE_ETHERNET).
pub fn global_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h
}

/// The 16-byte record header of a frame of `len` bytes captured at `ts`.
pub fn record_header(ts: SystemTime, len: usize) -> [u8; 16] {
    let d = ts.duration_since(UNIX_EPOCH).unwrap_or_default();
    let incl = (len as u32).min(SNAPLEN);
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&(d.as_secs() as u32).to_le_bytes());
    h[4..8].copy_from_slice(&d.subsec_micros().to_le_bytes());
    h[8..12].copy_from_slice(&incl.to_le_bytes());
    h[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    h
}

/// A size-bounded pcap writer shared by the ports of a process.
pub struct PcapTap {
    out: Mutex<Box<dyn Write + Send>>,
    limit: u64,
    written: AtomicU64,
    frames: AtomicU64,
    skipped: AtomicU64,
}

impl std::fmt::Debug for PcapTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapTap")
            .field("limit", &self.limit)
            .field("written", &self.written.load(Ordering::Relaxed))
            .finish()
    }
}

impl PcapTap {
    /// Create (truncate) `path`; write at most `limit` bytes in all.
    pub fn create(path: &Path, limit: u64) -> io::Result<PcapTap> {
        let f = File::create(path)?;
        PcapTap::new(Box::new(BufWriter::new(f)), limit)
    }

    /// Write to `out`, at most `limit` bytes in all (header included).
    pub fn new(mut out: Box<dyn Write + Send>, limit: u64) -> io::Result<PcapTap> {
        let h = global_header();
        out.write_all(&h)?;
        Ok(PcapTap {
            out: Mutex::new(out),
            limit,
            written: AtomicU64::new(h.len() as u64),
            frames: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        })
    }

    /// Record one frame (or count it as skipped past the limit).
    pub fn record(&self, frame: &[u8]) {
        let incl = frame.len().min(SNAPLEN as usize);
        let need = 16 + incl as u64;
        let Ok(mut out) = self.out.lock() else {
            return;
        };
        let at = self.written.load(Ordering::Relaxed);
        if at + need > self.limit {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let h = record_header(SystemTime::now(), frame.len());
        if out
            .write_all(&h)
            .and_then(|()| out.write_all(&frame[..incl]))
            .is_ok()
        {
            self.written.store(at + need, Ordering::Relaxed);
            self.frames.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Flush what is buffered.
    pub fn flush(&self) -> io::Result<()> {
        match self.out.lock() {
            Ok(mut o) => o.flush(),
            Err(_) => Ok(()),
        }
    }

    /// (frames written, frames skipped past the limit, bytes written).
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.frames.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
            self.written.load(Ordering::Relaxed),
        )
    }
}

impl Drop for PcapTap {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// A `Write` whose bytes the test can look at afterwards.
    #[derive(Clone, Default)]
    pub(crate) struct Shared(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }

    #[test]
    fn stops_at_the_limit_and_counts_the_rest() {
        let buf = Shared::default();
        // header 24 + two records of 16 + 60 = 176; a third does not fit.
        let tap = PcapTap::new(Box::new(buf.clone()), 200).unwrap();
        for i in 0..3u8 {
            tap.record(&[i; 60]);
        }
        assert_eq!(tap.counts(), (2, 1, 24 + 2 * 76));
        let bytes = buf.0.lock().unwrap().clone();
        assert_eq!(bytes.len(), 24 + 2 * 76);
        assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes());
        // second record's length fields and first data byte
        let r = 24 + 76;
        assert_eq!(u32_at(&bytes, r + 8), 60);
        assert_eq!(u32_at(&bytes, r + 12), 60);
        assert_eq!(bytes[r + 16], 1);
        assert!(bytes.len() as u64 <= 200);
    }
}
