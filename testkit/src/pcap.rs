//! A pcap dump of a failing in-memory test.
//!
//! [`Capture`] taps the ends of `MemRings` pipes into memory. When it is
//! dropped while the thread panics (a failing assertion unwinds through the
//! test's harness, which owns the capture), each tap is written to
//! `$XDPSTACK_TEST_PCAP/` if set, else to `target/<profile>/test-pcap/`, as
//! `<test binary>.<test name>.<side>.pcap`, and the path is printed. With
//! `XDPSTACK_TEST_PCAP=DIR` every capture is written, failing or not.
//! Each file holds the frames that end sent (`tshark -r FILE`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use nic::mem::{MemConfig, MemRings, TapLink};

/// Bytes kept per tap; beyond them frames are counted, not kept.
const LIMIT: usize = 64 << 20;

/// The variable naming a directory where every capture is written.
pub const PCAP_DIR_VAR: &str = "XDPSTACK_TEST_PCAP";

/// The largest frame a record can hold (a pipe frame is smaller).
const MAX_FRAME: usize = 1 << 16;

#[derive(Default)]
struct Buf {
    bytes: Vec<u8>,
    /// The limit was reached: nothing more is kept, so the file stays whole.
    full: bool,
    dropped: u64,
}

/// One tap's bytes, shared between the pipe end writing them and the capture.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Buf>>);

impl Write for Shared {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut b = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A record arrives as two writes, its 16-byte header then the frame:
        // a header is kept only with room for the largest frame after it.
        let header = data.len() == 16;
        if header && b.bytes.len() + 16 + MAX_FRAME > LIMIT {
            b.full = true;
        }
        if b.full {
            b.dropped += u64::from(header);
        } else {
            b.bytes.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Taps on pipe ends, written out if the test fails. Keep it in the test's
/// harness (or a local) so that it drops while a failure unwinds.
pub struct Capture {
    test: String,
    dir: Option<PathBuf>,
    taps: Vec<(String, Shared)>,
}

impl Default for Capture {
    fn default() -> Self {
        Capture::new()
    }
}

impl Capture {
    /// A capture named after the running test (libtest names its threads
    /// after the tests).
    pub fn new() -> Capture {
        let test = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .replace("::", "-");
        Capture {
            test,
            dir: std::env::var_os(PCAP_DIR_VAR).map(PathBuf::from),
            taps: Vec::new(),
        }
    }

    /// Records what `rings` sends (Ethernet frames) as `side`.
    pub fn tap(&mut self, rings: &mut MemRings, side: &str) {
        self.tap_link(rings, side, TapLink::Ethernet);
    }

    /// Records what `rings` sends, frames holding `link`, as `side`.
    pub fn tap_link(&mut self, rings: &mut MemRings, side: &str, link: TapLink) {
        let out = Shared::default();
        rings
            .set_tap_link(Box::new(out.clone()), link)
            .expect("writing to memory cannot fail");
        self.taps.push((side.to_string(), out));
    }

    /// A `MemRings` pair (Ethernet) with both ends tapped: what `a` sends
    /// as side `a_side`, what `b` sends as `b_side`.
    pub fn pair(&mut self, cfg: MemConfig, a_side: &str, b_side: &str) -> (MemRings, MemRings) {
        let (mut a, mut b) = MemRings::pair(cfg);
        self.tap(&mut a, a_side);
        self.tap(&mut b, b_side);
        (a, b)
    }

    /// Writes every tap to `dir` now; returns the paths written.
    pub fn write_to(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let bin = test_binary();
        let mut paths = Vec::new();
        for (side, tap) in &self.taps {
            let path = dir.join(format!("{bin}.{}.{side}.pcap", self.test));
            let b = tap.0.lock().unwrap_or_else(PoisonError::into_inner);
            std::fs::write(&path, &b.bytes)?;
            if b.dropped > 0 {
                eprintln!(
                    "{}: {} frames past {LIMIT} bytes not kept",
                    path.display(),
                    b.dropped
                );
            }
            paths.push(path);
        }
        Ok(paths)
    }

    /// Where a failing test's capture goes without `XDPSTACK_TEST_PCAP`:
    /// `target/<profile>/test-pcap` (the test binary is in
    /// `target/<profile>/deps`).
    fn default_dir() -> PathBuf {
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent()?.parent().map(|p| p.join("test-pcap")))
            .unwrap_or_else(|| std::env::temp_dir().join("xdpstack-test-pcap"))
    }
}

/// The running test binary's name without cargo's hash (`engine_mem`).
fn test_binary() -> String {
    let exe = std::env::current_exe().ok();
    exe.as_deref()
        .and_then(Path::file_stem)
        .and_then(|s| s.to_str())
        .map(|s| s.split('-').next().unwrap_or(s).to_string())
        .unwrap_or_else(|| "test".to_string())
}

impl Drop for Capture {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        let dir = match (&self.dir, failing) {
            (Some(d), _) => d.clone(),
            (None, true) => Capture::default_dir(),
            (None, false) => return,
        };
        match self.write_to(&dir) {
            Ok(paths) => {
                for p in paths {
                    eprintln!("pcap of {}: {}", self.test, p.display());
                }
            }
            Err(e) => eprintln!(
                "pcap of {} not written to {}: {e}",
                self.test,
                dir.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nic::mem::MemConfig;
    use nic::{Port, PortConfig};

    /// A test that fails with a capture in its harness leaves the pcap
    /// files behind: a header and one record per frame sent.
    #[test]
    fn a_failing_test_writes_its_pcap() {
        let dir = std::env::temp_dir().join(format!("xdpstack-testkit-{}", std::process::id()));
        let d = dir.clone();
        let r = std::thread::Builder::new()
            .name("kit::failing".into())
            .spawn(move || {
                let mut cap = Capture::new();
                cap.dir = Some(d);
                let (mut a, mut b) = MemRings::pair(MemConfig::default());
                cap.tap(&mut a, "a");
                cap.tap_link(&mut b, "b", TapLink::RawIp);
                let mut pa = Port::new(a, PortConfig::default());
                assert!(pa.send_frame(60, |buf| buf.fill(0xab)));
                pa.flush(|_, len| Some(len));
                panic!("the test fails");
            })
            .unwrap()
            .join();
        assert!(r.is_err());
        let bin = test_binary();
        let a = std::fs::read(dir.join(format!("{bin}.kit-failing.a.pcap"))).unwrap();
        let b = std::fs::read(dir.join(format!("{bin}.kit-failing.b.pcap"))).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(a.len(), 24 + 16 + 60, "header, one record");
        assert_eq!(&a[..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(a[20], 1, "Ethernet");
        assert_eq!(b.len(), 24, "b sent nothing");
        assert_eq!(b[20], 101, "raw IP");
    }

    /// A passing test writes nothing (without `XDPSTACK_TEST_PCAP`).
    #[test]
    fn a_passing_test_writes_nothing() {
        std::thread::Builder::new()
            .name("kit::passing".into())
            .spawn(|| {
                let (mut a, _b) = MemRings::pair(MemConfig::default());
                let mut cap = Capture::new();
                cap.dir = None;
                cap.tap(&mut a, "a");
            })
            .unwrap()
            .join()
            .unwrap();
        let bin = test_binary();
        let path = Capture::default_dir().join(format!("{bin}.kit-passing.a.pcap"));
        assert!(!path.exists(), "{}", path.display());
    }
}
