//! The access log: one line per response in nginx's `combined` format,
//!
//! ```text
//! $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//! ```
//!
//! buffered per worker: an entry is written into the worker's buffer (no
//! allocation once the buffer has its size, no system call); the buffer is
//! written to the file with one `write` when it fills, at least once a
//! second, when the log is reopened and when the worker stops. Every worker
//! appends to the same file (`O_APPEND`: whole buffers, never a torn line).
//! Times are UTC (`+0000`); strings are escaped as nginx escapes them
//! (`"`, `\`, controls and bytes above 0x7e as `\xHH`).

use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::date::log_time;
use crate::served::Served;

/// Buffer size: written out when an entry could pass it.
pub const BUF: usize = 64 * 1024;
/// Longest a line waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Most bytes of one logged string (a request line, a Referer, a
/// User-Agent): the rest is cut, so one entry always fits the buffer.
const MAX_FIELD: usize = 2048;

/// One worker's access log.
pub struct AccessLog {
    file: Arc<File>,
    gen: u64,
    buf: Vec<u8>,
    /// When the oldest entry in the buffer was written.
    since: Option<Instant>,
    time: [u8; 26],
    time_secs: u64,
    /// Bytes written to the file, and failed writes (entries lost).
    pub written: u64,
    /// See `written`.
    pub errors: u64,
}

/// What one entry says about the response.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// The client.
    pub peer: Option<IpAddr>,
    /// The request line (`"-"` in the log when there was none).
    pub request: Option<&'a [u8]>,
    /// The status sent.
    pub status: u16,
    /// Body bytes of the response.
    pub bytes: u64,
    /// `Referer`, if sent.
    pub referer: Option<&'a [u8]>,
    /// `User-Agent`, if sent.
    pub user_agent: Option<&'a [u8]>,
}

impl AccessLog {
    /// The log of `served`, if it has one.
    pub fn new(served: &Served) -> Option<AccessLog> {
        let (file, gen) = served.log_file()?;
        Some(AccessLog {
            file,
            gen,
            buf: Vec::with_capacity(BUF),
            since: None,
            time: log_time(0),
            time_secs: 0,
            written: 0,
            errors: 0,
        })
    }

    /// Appends one line (`secs`: now, seconds since the epoch).
    pub fn entry(&mut self, e: &Entry, secs: u64, now: Instant) {
        // An entry is at most 6 strings of MAX_FIELD escaped 4x, plus the
        // fixed parts.
        if self.buf.len() + 4 * 3 * MAX_FIELD + 256 > BUF {
            self.flush();
        }
        if secs != self.time_secs {
            self.time_secs = secs;
            self.time = log_time(secs);
        }
        let b = &mut self.buf;
        match e.peer {
            Some(ip) => {
                // A v4 client of the dual-stack listener as a v4 address.
                let _ = write!(b, "{}", ip.to_canonical());
            }
            None => b.push(b'-'),
        }
        b.extend_from_slice(b" - - [");
        b.extend_from_slice(&self.time);
        b.extend_from_slice(b"] \"");
        escaped(b, e.request.unwrap_or(b"-"));
        b.extend_from_slice(b"\" ");
        b.extend_from_slice(itoa::Buffer::new().format(e.status).as_bytes());
        b.push(b' ');
        b.extend_from_slice(itoa::Buffer::new().format(e.bytes).as_bytes());
        b.extend_from_slice(b" \"");
        escaped(b, e.referer.unwrap_or(b"-"));
        b.extend_from_slice(b"\" \"");
        escaped(b, e.user_agent.unwrap_or(b"-"));
        b.extend_from_slice(b"\"\n");
        self.since.get_or_insert(now);
    }

    /// At the start of a turn: after a reopen (SIGUSR1), the lines so far
    /// go to the old file and the next ones to the new.
    pub fn follow(&mut self, served: &Served) {
        if served.log_gen().is_some_and(|g| g != self.gen) {
            self.flush();
            if let Some((file, gen)) = served.log_file() {
                self.file = file;
                self.gen = gen;
            }
        }
    }

    /// At the end of a turn: write the buffer out if its oldest line is a
    /// second old. Returns when to come back (the flush deadline) while
    /// lines wait.
    pub fn tick(&mut self, now: Instant) -> Option<Instant> {
        let since = self.since?;
        if now.duration_since(since) >= FLUSH_EVERY {
            self.flush();
            return None;
        }
        Some(since + FLUSH_EVERY)
    }

    /// Writes the buffer out (one `write`, more only if the kernel takes
    /// part of it).
    pub fn flush(&mut self) {
        self.since = None;
        if self.buf.is_empty() {
            return;
        }
        match (&*self.file).write_all(&self.buf) {
            Ok(()) => self.written += self.buf.len() as u64,
            Err(e) => {
                self.errors += 1;
                log::warn!("access log: {e}");
            }
        }
        self.buf.clear();
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// nginx's escaping of logged strings: `"`, `\`, bytes below 0x20 and
/// above 0x7e as `\xHH`; at most `MAX_FIELD` bytes of the input.
fn escaped(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in &s[..s.len().min(MAX_FIELD)] {
        if c == b'"' || c == b'\\' || !(0x20..=0x7e).contains(&c) {
            out.extend_from_slice(&[b'\\', b'x', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::{Body, Site};

    fn temp(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "xdpstack-log-{}-{tag}-{:?}.log",
            std::process::id(),
            std::thread::current().id()
        ))
    }

    fn served(path: &std::path::Path) -> Served {
        Served::new(
            Site::Fixed(Body::new(b"x".to_vec(), "text/plain")),
            None,
            Some(path.to_path_buf()),
        )
        .unwrap()
    }

    #[test]
    fn combined_format_and_escaping() {
        let path = temp("fmt");
        let _ = std::fs::remove_file(&path);
        let s = served(&path);
        let mut log = AccessLog::new(&s).unwrap();
        let now = Instant::now();
        log.entry(
            &Entry {
                peer: Some("::ffff:198.18.0.2".parse().unwrap()),
                request: Some(b"GET /a?b=1 HTTP/1.1"),
                status: 206,
                bytes: 100,
                referer: Some(b"http://x/\"q\"\\"),
                user_agent: Some(b"curl/7.88.1 \x01\xc3\xa9"),
            },
            784_111_777,
            now,
        );
        log.entry(
            &Entry {
                peer: Some("2001:db8::2".parse().unwrap()),
                request: None,
                status: 400,
                bytes: 12,
                referer: None,
                user_agent: None,
            },
            784_111_778,
            now,
        );
        // Nothing written before the flush.
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        log.follow(&s);
        assert_eq!(log.tick(now), Some(now + FLUSH_EVERY));
        assert_eq!(log.tick(now + FLUSH_EVERY), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "198.18.0.2 - - [06/Nov/1994:08:49:37 +0000] \"GET /a?b=1 HTTP/1.1\" 206 100 \
             \"http://x/\\x22q\\x22\\x5C\" \"curl/7.88.1 \\x01\\xC3\\xA9\"\n\
             2001:db8::2 - - [06/Nov/1994:08:49:38 +0000] \"-\" 400 12 \"-\" \"-\"\n"
        );
        assert_eq!(log.written, text.len() as u64);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn reopen_switches_files_and_fills_flush() {
        let path = temp("reopen");
        let rotated = temp("reopen-1");
        let _ = std::fs::remove_file(&path);
        let s = served(&path);
        let mut log = AccessLog::new(&s).unwrap();
        let now = Instant::now();
        let e = Entry {
            peer: None,
            request: Some(b"GET / HTTP/1.1"),
            status: 200,
            bytes: 1,
            referer: None,
            user_agent: None,
        };
        log.entry(&e, 0, now);
        // logrotate: rename, then SIGUSR1.
        std::fs::rename(&path, &rotated).unwrap();
        s.reopen_log().unwrap();
        log.follow(&s);
        log.entry(&e, 0, now);
        drop(log);
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old.lines().count(), 1, "{old}");
        assert_eq!(new.lines().count(), 1, "{new}");
        // A full buffer is written without waiting for the second.
        let mut log = AccessLog::new(&s).unwrap();
        let long = vec![b'a'; 5000];
        let e = Entry {
            request: Some(&long),
            ..e
        };
        for _ in 0..100 {
            log.entry(&e, 0, now);
        }
        assert!(std::fs::metadata(&path).unwrap().len() > 100_000);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&rotated);
    }
}
