//! `xdpstack http`: an HTTP/1.1 server on the stack.
//!
//! Keep-alive, pipelining, strict HTTP/1.1 request parsing (RFC 9112), and
//! request bodies (Content-Length or chunked, up to `--max-body`, read in
//! constant memory, `Expect: 100-continue`). It serves a fixed body for
//! every path (GET, HEAD, and POST after its body, as nginx's `return 200`
//! does), or a directory tree loaded into memory at start (`--root`: GET and
//! HEAD); OPTIONS says which methods, other known methods get 405 with
//! `Allow`, unknown ones 501. `GET /stats` answers the stack's reuseport
//! report. Limits keep a slow or idle client from holding a worker: header
//! and idle timeouts, a send-stall timeout, head and body size limits and a
//! per-worker connection limit. SIGHUP replaces the
//! listeners hitlessly; SIGINT/SIGTERM stops gracefully (no new
//! connections, in-flight responses finish within `--grace`).
//!
//! Parts: `args` (the command line, the site loaded from it), `parse`
//! (request framing, no I/O), `site` (the tree, path sanitizing, content
//! types), `head` (response heads), `counters`, `stats` and `metrics`
//! (what is reported). Static files as nginx serves them: `files` (the
//! response for a file), `range`, `conditional`, `encoding` and `date` (the
//! request fields they read, no I/O), `served` (the site swapped on SIGHUP,
//! the log reopened on SIGUSR1) and `access_log`.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod access_log;
pub mod args;
pub mod conditional;
pub mod counters;
pub mod date;
pub mod encoding;
mod files;
pub mod head;
pub mod metrics;
pub mod parse;
pub mod range;
pub mod served;
pub mod site;
pub mod stats;
pub mod tls;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use stack::engine::{Engine, ListenerId};
use stack::reuseport::BindAddr;
use stack::socket::TcpApi;
use stack::socket::{ConnError, ConnId};
use stack::worker::App;

pub use args::{load_site, HttpArgs};
pub use counters::HttpCounters;
pub use served::Served;

use access_log::AccessLog;
use head::ConnHeader;
use parse::{Body, Event, Framer, Limits, Method, Request};
use runtime::conns::Reaper;
use runtime::server::WorkerCtx;
use site::{BlobRef, Resolved, Site};
use stats::StatsPolicy;

use nic::Rings;

/// A draining listener is closed after this long even if handshakes are
/// still pending (they migrate to a live member).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Bodies up to this size are copied behind their head; longer ones are
/// sent from the shared copy in place.
const INLINE_MAX: usize = 8 * 1024;

/// Stop parsing pipelined requests while this much response is buffered.
const OUT_HIGH: usize = 64 * 1024;

/// The methods of the fixed body (POST is answered after its body).
const ALLOW_FIXED: &[u8] = b"Allow: GET, HEAD, POST, OPTIONS\r\n";
/// The methods of a file of the tree.
const ALLOW_TREE: &[u8] = b"Allow: GET, HEAD, OPTIONS\r\n";

/// The interim response to `Expect: 100-continue` (RFC 9110 15.2.1).
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What answers a request whose response waits for the end of its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// The fixed body (its POST: where a handler taking the body would sit).
    FixedBody,
    /// OPTIONS: `204` with this `Allow`.
    Options(&'static [u8]),
    /// A short error (405 with `Allow`, 501).
    Simple(u16, Option<&'static [u8]>),
}

/// A response that waits for the end of its request's body.
#[derive(Clone, Copy, Debug)]
struct Deferred {
    what: Held,
    conn: ConnHeader,
    /// With an access log: the request line, Referer and User-Agent kept
    /// in the connection's `log_req`, their lengths.
    log: Option<[usize; 3]>,
}

struct Slot {
    id: ListenerId,
    draining_since: Option<Instant>,
    /// On the HTTPS port.
    tls: bool,
}

/// Bytes `off..end` of a blob of `Out::site`, queued behind the bytes of
/// `buf` before `at`.
struct Pending {
    at: usize,
    blob: u32,
    off: u64,
    end: u64,
}

/// What is read from a file at once (and so a connection's memory for a
/// file being sent).
const CHUNK: usize = 64 * 1024;

/// A connection's output: head (and short body) bytes, with long bodies
/// (from memory, or read from their file a chunk at a time) interleaved by
/// position.
#[derive(Default)]
struct Out {
    buf: Vec<u8>,
    sent: usize,
    bodies: VecDeque<Pending>,
    /// The site the pending bodies belong to (held while a reload swaps
    /// in another).
    site: Option<Arc<Site>>,
    /// Bytes read from a file and not sent yet: `chunk[chunk_at..chunk_end]`
    /// (allocated while a file is being sent).
    chunk: Vec<u8>,
    chunk_at: usize,
    chunk_end: usize,
    /// Bytes read from files since last taken.
    read: u64,
}

impl Out {
    fn is_empty(&self) -> bool {
        self.sent == self.buf.len() && self.bodies.is_empty()
    }

    /// Enough is buffered: parse no further request for now.
    fn high(&self) -> bool {
        self.buf.len() - self.sent > OUT_HIGH || !self.bodies.is_empty()
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.sent = 0;
        self.bodies.clear();
        self.site = None;
        self.chunk = Vec::new();
        self.chunk_at = 0;
        self.chunk_end = 0;
    }

    /// Queue bytes `off..end` of blob `blob` of `site` after what `buf`
    /// holds: copied if in memory and short, else sent from the blob.
    fn queue(&mut self, site: &Arc<Site>, blob: u32, off: u64, end: u64) {
        if end <= off {
            return;
        }
        if let Some(BlobRef::Mem(d)) = site.blob(blob) {
            if end - off <= INLINE_MAX as u64 {
                let (a, b) = (off as usize, (end as usize).min(d.len()));
                self.buf.extend_from_slice(&d[a.min(b)..b]);
                return;
            }
        }
        if !self.site.as_ref().is_some_and(|s| Arc::ptr_eq(s, site)) {
            self.site = Some(site.clone());
        }
        self.bodies.push_back(Pending {
            at: self.buf.len(),
            blob,
            off,
            end,
        });
    }

    /// Hand as much as fits to the socket. Returns whether anything was
    /// sent. A file that cannot be read (or was cut short since it was
    /// opened) resets the connection: its head promised more bytes.
    fn flush<S: TcpApi>(&mut self, engine: &mut S, id: ConnId) -> Result<bool, ConnError> {
        let mut progress = false;
        loop {
            let limit = self.bodies.front().map_or(self.buf.len(), |p| p.at);
            if self.sent < limit {
                let n = engine.send(id, &self.buf[self.sent..limit])?;
                if n == 0 {
                    break;
                }
                self.sent += n;
                progress = true;
                continue;
            }
            let Some(p) = self.bodies.front_mut() else {
                break;
            };
            match self.site.as_deref().and_then(|s| s.blob(p.blob)) {
                Some(BlobRef::Mem(data)) => {
                    let end = (p.end as usize).min(data.len());
                    if (p.off as usize) < end {
                        let n = engine.send(id, &data[p.off as usize..end])?;
                        if n == 0 {
                            break;
                        }
                        p.off += n as u64;
                        progress = true;
                        if (p.off as usize) < end {
                            continue;
                        }
                    }
                }
                Some(BlobRef::Blob(file)) => {
                    if self.chunk_at < self.chunk_end {
                        let n = engine.send(id, &self.chunk[self.chunk_at..self.chunk_end])?;
                        if n == 0 {
                            break;
                        }
                        self.chunk_at += n;
                        progress = true;
                        continue;
                    }
                    if p.off < p.end {
                        // The socket took everything read so far: read
                        // the next chunk (pread, at most CHUNK bytes).
                        self.chunk.resize(CHUNK, 0);
                        let want = (p.end - p.off).min(CHUNK as u64) as usize;
                        match file.read_at(&mut self.chunk[..want], p.off) {
                            Ok(n) if n > 0 => {
                                p.off += n as u64;
                                self.read += n as u64;
                                self.chunk_at = 0;
                                self.chunk_end = n;
                                continue;
                            }
                            r => {
                                log::warn!("a file being sent cannot be read ({r:?}): reset");
                                engine.abort(id);
                                return Err(ConnError::NotFound);
                            }
                        }
                    }
                }
                None => {}
            }
            self.bodies.pop_front();
            if self.bodies.is_empty() && !self.chunk.is_empty() {
                // Memory for a file only while one is sent.
                self.chunk = Vec::new();
                self.chunk_at = 0;
                self.chunk_end = 0;
            }
        }
        if self.is_empty() {
            self.buf.clear();
            self.sent = 0;
        }
        Ok(progress)
    }
}

/// Which limit a connection ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    Idle,
    Header,
    Body,
    Send,
}

struct Conn {
    framer: Framer,
    /// Received bytes not consumed yet (a partial head, or requests left
    /// while the output is high).
    inbuf: Vec<u8>,
    out: Out,
    /// Close once the output is sent; parse nothing more.
    close_after: bool,
    /// The peer sent FIN and everything was read.
    peer_done: bool,
    /// First byte of the incomplete request head in `inbuf`.
    req_start: Option<Instant>,
    /// Last progress: accepted, bytes read, a request answered, bytes sent.
    last: Instant,
    /// The client's address (for the report's allow-list).
    peer: Option<IpAddr>,
    /// Requests answered (a stop closes idle connections only once they
    /// have been answered: a fresh one gets its first response).
    answered: u64,
    /// The current request's response waits for the end of its body.
    deferred: Option<Deferred>,
    /// The current request was answered before its body was read (the body
    /// is read and dropped; a framing error in it closes the connection
    /// without a second response).
    answered_early: bool,
    /// `last` when it was last listed quiet (idle after a request) for
    /// eviction (not listed twice for one idle spell).
    listed_quiet: Option<Instant>,
    /// A deferred response's request, for the access log.
    log_req: Vec<u8>,
    /// Accepted on the HTTPS port.
    tls: bool,
}

impl Conn {
    fn new(limits: Limits, now: Instant) -> Self {
        Conn {
            framer: Framer::new(limits),
            inbuf: Vec::new(),
            out: Out::default(),
            close_after: false,
            peer_done: false,
            req_start: None,
            last: now,
            peer: None,
            answered: 0,
            deferred: None,
            answered_early: false,
            listed_quiet: None,
            log_req: Vec::new(),
            tls: false,
        }
    }

    /// Ready for reuse by another connection (keeping small buffers).
    fn reset(&mut self, limits: Limits, now: Instant) {
        self.framer.reset(limits);
        self.inbuf.clear();
        if self.inbuf.capacity() > 64 * 1024 {
            self.inbuf = Vec::new();
        }
        self.out.clear();
        self.log_req = Vec::new();
        if self.out.buf.capacity() > 256 * 1024 {
            self.out.buf = Vec::new();
        }
        self.close_after = false;
        self.peer_done = false;
        self.req_start = None;
        self.last = now;
        self.peer = None;
        self.answered = 0;
        self.deferred = None;
        self.answered_early = false;
        self.listed_quiet = None;
        self.tls = false;
    }

    /// Nothing in flight either way.
    fn is_idle(&self) -> bool {
        self.out.is_empty() && self.inbuf.is_empty() && self.framer.in_head()
    }

    /// Idle between requests: a graceful stop closes it. A connection
    /// that has not sent its first request yet is not closed (its client
    /// is about to send one, which is answered with `Connection: close`;
    /// the header timeout or the grace bound it).
    fn idle_after_request(&self) -> bool {
        self.answered > 0 && self.is_idle()
    }

    fn deadline(&self, cfg: &Limits2) -> (Instant, Expiry) {
        if !self.out.is_empty() {
            (self.last + cfg.idle, Expiry::Send)
        } else if let Some(t) = self.req_start {
            (t + cfg.header, Expiry::Header)
        } else if self.framer.in_body() {
            (self.last + cfg.header, Expiry::Body)
        } else {
            (self.last + cfg.idle, Expiry::Idle)
        }
    }
}

/// Timeouts and limits of one worker.
#[derive(Clone, Copy, Debug)]
struct Limits2 {
    framing: Limits,
    idle: Duration,
    header: Duration,
    max_conns: usize,
}

/// Everything a connection's handling needs besides the connection.
struct Service {
    cfg: Limits2,
    /// Where the report is served and to whom.
    stats: StatsPolicy,
    counters: HttpCounters,
    /// Receive buffer.
    scratch: Vec<u8>,
    /// The normalized path of the current request.
    key: Vec<u8>,
    /// Per-response header lines and bodies built on the fly.
    tmp: Vec<u8>,
    line: Vec<u8>,
    date: [u8; 29],
    date_secs: u64,
    stopping: bool,
    /// `--access-log`, this worker's buffer.
    log: Option<AccessLog>,
    /// The response just written: status and body bytes (for the log).
    resp_status: u16,
    resp_bytes: u64,
    /// Numbers the `multipart/byteranges` boundaries.
    boundary: u64,
    /// The time of this turn.
    now: Instant,
    /// `--redirect-https`: plain connections get a redirect.
    redirect: Option<tls::redirect::Redirect>,
    /// `--hsts`: the `Strict-Transport-Security` line of HTTPS responses.
    hsts: Option<Vec<u8>>,
}

impl Service {
    fn refresh_date(&mut self) {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if secs != self.date_secs {
            self.date_secs = secs;
            self.date = head::http_date(secs);
        }
    }

    fn count(&mut self, status: u16) {
        self.resp_status = status;
        match status {
            206 => self.counters.partial += 1,
            304 => self.counters.not_modified += 1,
            412 => self.counters.precondition_failed += 1,
            416 => self.counters.range_not_satisfiable += 1,
            _ => {}
        }
        self.counters.requests += 1;
        match status {
            200..=299 => self.counters.status_2xx += 1,
            300..=399 => self.counters.status_3xx += 1,
            400..=499 => self.counters.status_4xx += 1,
            _ => self.counters.status_5xx += 1,
        }
    }

    /// Reads, answers and writes until the connection waits for the peer.
    /// Returns `false` once the application is done with it (closed or
    /// gone).
    fn service<S: TcpApi>(
        &mut self,
        site: &Arc<Site>,
        engine: &mut S,
        id: ConnId,
        c: &mut Conn,
        now: Instant,
    ) -> bool {
        loop {
            let flushed = c.out.flush(engine, id);
            self.counters.disk_bytes += std::mem::take(&mut c.out.read);
            match flushed {
                Ok(true) => c.last = now,
                Ok(false) => {}
                Err(ConnError::Closed) => {
                    // The peer reset or closed its receiving side.
                    engine.close(id);
                    return false;
                }
                Err(ConnError::NotFound) => return false,
            }
            if !c.out.is_empty() {
                // The send buffer is full: an acknowledgement brings us back.
                return true;
            }
            if c.close_after {
                engine.close(id);
                return false;
            }
            if !c.inbuf.is_empty() {
                let inbuf = std::mem::take(&mut c.inbuf);
                let used = self.process(site, engine, c, &inbuf, now);
                c.inbuf = inbuf;
                if c.close_after {
                    c.inbuf.clear();
                } else {
                    c.inbuf.drain(..used);
                }
                if !c.out.is_empty() || c.close_after {
                    continue;
                }
            }
            if self.stopping && c.idle_after_request() {
                engine.close(id);
                return false;
            }
            if c.peer_done {
                // Everything complete was answered; a partial head can never
                // complete now.
                engine.close(id);
                return false;
            }
            match engine.recv(id, &mut self.scratch) {
                Ok(0) => return true,
                Ok(n) => {
                    c.last = now;
                    if c.inbuf.is_empty() {
                        // The usual case: parse straight from the receive
                        // buffer, keep only what is left over.
                        let scratch = std::mem::take(&mut self.scratch);
                        let used = self.process(site, engine, c, &scratch[..n], now);
                        if used < n && !c.close_after {
                            c.inbuf.extend_from_slice(&scratch[used..n]);
                        }
                        self.scratch = scratch;
                    } else {
                        c.inbuf.extend_from_slice(&self.scratch[..n]);
                    }
                }
                Err(ConnError::Closed) => c.peer_done = true,
                Err(ConnError::NotFound) => return false,
            }
        }
    }

    /// Frames and answers the requests in `data`; returns the bytes used.
    fn process<S: TcpApi>(
        &mut self,
        site: &Arc<Site>,
        engine: &S,
        c: &mut Conn,
        data: &[u8],
        now: Instant,
    ) -> usize {
        let mut used = 0;
        // A high output pauses new requests only: a body is still read, and
        // its end answers a deferred response.
        while !(c.close_after || (c.out.high() && c.framer.in_head())) {
            let start = used;
            let (n, ev) = c.framer.advance(&data[used..]);
            used += n;
            match ev {
                Event::Partial => break,
                Event::Body(b) => {
                    c.last = now;
                    self.counters.body_bytes += b.len() as u64;
                }
                Event::End => {
                    c.last = now;
                    c.answered_early = false;
                    if let Some(d) = c.deferred.take() {
                        match d.what {
                            Held::FixedBody => self.body(c, site, false, d.conn),
                            Held::Options(allow) => self.options(c, allow, d.conn),
                            Held::Simple(status, allow) => {
                                self.simple(c, status, allow.as_slice(), false, d.conn)
                            }
                        }
                        if let Some([a, b, u]) = d.log {
                            let r = std::mem::take(&mut c.log_req);
                            let (line, rest) = r.split_at(a.min(r.len()));
                            let (referer, ua) = rest.split_at(b.min(rest.len()));
                            let ua = &ua[..u.min(ua.len())];
                            self.log(c.peer, Some(line), nonempty(referer), nonempty(ua));
                            c.log_req = r;
                        }
                        if d.conn == ConnHeader::Close {
                            c.close_after = true;
                        }
                    }
                }
                Event::Request(req) => {
                    c.answered += 1;
                    c.req_start = None;
                    c.last = now;
                    self.resp_status = 0;
                    if self.redirect.is_some() && !c.tls {
                        self.redirect(c, &req, &data[start..used]);
                    } else {
                        let at = c.out.buf.len();
                        self.answer(site, engine, c, &req);
                        if c.tls {
                            self.add_hsts(c, at);
                        }
                    }
                    if self.resp_status != 0 {
                        let f = &req.fields;
                        self.log(
                            c.peer,
                            Some(req.line.as_bytes()),
                            f.first(parse::Hdr::Referer),
                            f.first(parse::Hdr::UserAgent),
                        );
                    }
                }
                Event::Reject(status) => {
                    c.req_start = None;
                    c.deferred = None;
                    if !std::mem::take(&mut c.answered_early) {
                        self.simple(c, status, &[], false, ConnHeader::Close);
                        self.log(c.peer, None, None, None);
                    }
                    c.close_after = true;
                }
            }
        }
        if !c.close_after && c.framer.in_head() && used < data.len() && c.req_start.is_none() {
            c.req_start = Some(now);
        }
        used
    }

    fn answer<S: TcpApi>(&mut self, site: &Arc<Site>, engine: &S, c: &mut Conn, req: &Request) {
        let fixed = matches!(**site, Site::Fixed(_));
        let has_body = req.body != Body::None;
        let allow = if fixed { ALLOW_FIXED } else { ALLOW_TREE };
        let held = if has_body {
            held_response(fixed, allow, req)
        } else {
            None
        };
        let mut keep = req.keep_alive && !self.stopping;
        if has_body && req.expect_continue && held.is_none() {
            // Answered without asking for the body: the client may send it
            // or not (RFC 9110 10.1.1), so what follows is unknown: close.
            keep = false;
        }
        let conn = ConnHeader::for_response(keep, req.minor);
        if let Some(what) = held {
            if req.expect_continue {
                c.out.buf.extend_from_slice(CONTINUE);
                self.counters.continues += 1;
            }
            let log = self.log.is_some().then(|| {
                let f = &req.fields;
                let (referer, ua) = (
                    f.first(parse::Hdr::Referer).unwrap_or_default(),
                    f.first(parse::Hdr::UserAgent).unwrap_or_default(),
                );
                c.log_req.clear();
                c.log_req.extend_from_slice(req.line.as_bytes());
                c.log_req.extend_from_slice(referer);
                c.log_req.extend_from_slice(ua);
                [req.line.len(), referer.len(), ua.len()]
            });
            c.deferred = Some(Deferred { what, conn, log });
            return;
        }
        c.answered_early = has_body;
        if !keep {
            c.close_after = true;
        }
        let head_only = req.method == Method::Head;
        match req.method {
            Method::Get | Method::Head => {}
            Method::Post if fixed => return self.body(c, site, false, conn),
            // RFC 9110 9.3.7: what the resource (or, for `*`, the server)
            // allows.
            Method::Options => return self.options(c, allow, conn),
            // RFC 9110 9.1: a method not known is a 501, a known one the
            // resource does not have a 405 with Allow (15.5.6).
            Method::Unknown => return self.simple(c, 501, &[], false, conn),
            _ => return self.simple(c, 405, &[allow], false, conn),
        }
        match &**site {
            Site::Fixed(_) => {
                let metrics = self.stats.is_metrics_target(req.target);
                if metrics || self.stats.is_target(req.target) {
                    if self.stats.allows(c.peer) {
                        return self.stats(engine, c, head_only, conn, metrics);
                    }
                    self.counters.stats_refused += 1;
                }
                self.body(c, site, head_only, conn);
            }
            Site::Tree(t) => {
                let n = match site::normalize(req.target, &mut self.key) {
                    Ok(n) => n,
                    Err(_) => return self.simple(c, 400, &[], head_only, conn),
                };
                let metrics = self.stats.is_metrics_key(&self.key, n.trailing_slash);
                if metrics || self.stats.is_key(&self.key, n.trailing_slash) {
                    if self.stats.allows(c.peer) {
                        return self.stats(engine, c, head_only, conn, metrics);
                    }
                    self.counters.stats_refused += 1;
                }
                match t.resolve(&self.key, n.trailing_slash) {
                    Resolved::Found(i) => self.file(c, site, t, i, req, conn),
                    Resolved::NotFound => self.simple(c, 404, &[], head_only, conn),
                    Resolved::AddSlash => {
                        let mut line = std::mem::take(&mut self.line);
                        line.clear();
                        line.extend_from_slice(b"Location: ");
                        line.extend_from_slice(n.raw_path.as_bytes());
                        line.push(b'/');
                        line.extend_from_slice(n.query.as_bytes());
                        line.extend_from_slice(b"\r\n");
                        self.simple(c, 301, &[&line], head_only, conn);
                        self.line = line;
                    }
                }
            }
        }
    }

    /// 204 with `Allow` (no Content-Length in a 204, RFC 9110 8.6).
    fn options(&mut self, c: &mut Conn, allow: &[u8], conn: ConnHeader) {
        head::write_head(&mut c.out.buf, 204, &self.date, &[], &[allow], conn);
        self.resp_bytes = 0;
        self.count(204);
    }

    /// The fixed body.
    fn body(&mut self, c: &mut Conn, site: &Arc<Site>, head_only: bool, conn: ConnHeader) {
        let Site::Fixed(body) = &**site else {
            return self.simple(c, 404, &[], head_only, conn);
        };
        head::write_head(&mut c.out.buf, 200, &self.date, &body.header, &[], conn);
        let len = body.data.len() as u64;
        self.resp_bytes = if head_only { 0 } else { len };
        if !head_only {
            c.out.queue(site, 0, 0, len);
        }
        self.count(200);
    }

    /// One access log line for the response just written.
    fn log(
        &mut self,
        peer: Option<IpAddr>,
        request: Option<&[u8]>,
        referer: Option<&[u8]>,
        user_agent: Option<&[u8]>,
    ) {
        if let Some(l) = &mut self.log {
            let e = access_log::Entry {
                peer,
                request,
                status: self.resp_status,
                bytes: self.resp_bytes,
                referer,
                user_agent,
            };
            l.entry(&e, self.date_secs, self.now);
        }
    }

    /// A response with a short text body (errors, redirects).
    fn simple(
        &mut self,
        c: &mut Conn,
        status: u16,
        extra: &[&[u8]],
        head_only: bool,
        conn: ConnHeader,
    ) {
        let body = head::error_body(status);
        self.tmp.clear();
        head::content_lines(&mut self.tmp, "text/plain; charset=utf-8", body.len());
        head::write_head(&mut c.out.buf, status, &self.date, &self.tmp, extra, conn);
        if !head_only {
            c.out.buf.extend_from_slice(body);
        }
        self.resp_bytes = if head_only { 0 } else { body.len() as u64 };
        self.count(status);
    }

    fn stats<S: TcpApi>(
        &mut self,
        engine: &S,
        c: &mut Conn,
        head_only: bool,
        conn: ConnHeader,
        metrics: bool,
    ) {
        let mut report = engine
            .report()
            .and_then(|r| serde_json::to_value(r).ok())
            .unwrap_or_else(|| json!({"attached": true}));
        let xdp = runtime::server::xdp_counters();
        let (body, ctype) = if metrics {
            (
                metrics::render(&report, xdp.as_deref()).into_bytes(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        } else {
            if let (Some(obj), Some(x)) = (report.as_object_mut(), &xdp) {
                obj.insert(
                    "xdp".into(),
                    x.iter()
                        .map(|(n, v)| (n.to_string(), serde_json::json!(v)))
                        .collect(),
                );
            }
            (
                serde_json::to_vec_pretty(&report).unwrap_or_default(),
                "application/json",
            )
        };
        self.tmp.clear();
        head::content_lines(&mut self.tmp, ctype, body.len());
        head::write_head(&mut c.out.buf, 200, &self.date, &self.tmp, &[], conn);
        if !head_only {
            c.out.buf.extend_from_slice(&body);
        }
        self.resp_bytes = if head_only { 0 } else { body.len() as u64 };
        self.count(200);
    }
}

/// Why a listener of the HTTP service was refused (at the start, the
/// service does not start on that worker; at a SIGHUP, the old one stays):
/// always [`PortError::Listen`](runtime::server::PortError::Listen).
pub type ListenError = runtime::server::PortError;

/// One worker's HTTP service.
pub struct HttpApp {
    slots: Vec<Slot>,
    ctx: WorkerCtx,
    port: u16,
    backlog: usize,
    reload_seen: u64,
    conns: stack::socket::ConnSlab<Conn>,
    pool: Vec<Conn>,
    /// The site and log shared by the workers; `site` is this worker's
    /// copy of its site, of generation `site_gen`.
    served: Arc<Served>,
    site: Arc<Site>,
    site_gen: u64,
    svc: Service,
    ready: Vec<ConnId>,
    accepted: Vec<ConnId>,
    expired: Vec<(ConnId, Expiry)>,
    /// Ended connections and eviction (see `evict_idle`).
    reaper: Reaper,
    tick: Duration,
    next_sweep: Instant,
    /// HTTPS (`--tls-cert`): the port and this worker's TLS connections.
    tls_port: u16,
    tls: Option<tls::Layer>,
}

impl HttpApp {
    /// Open `args.listeners` reuseport listeners on `args.port` on this
    /// worker's engine, serving what `served` holds.
    pub fn new<S: TcpApi>(
        ctx: &WorkerCtx,
        engine: &mut S,
        args: &HttpArgs,
        served: Arc<Served>,
    ) -> Result<Self, ListenError> {
        let (site, site_gen) = served.site();
        let cfg = Limits2 {
            framing: Limits {
                max_header: args.max_header,
                max_body: args.max_body,
            },
            idle: args.idle_timeout,
            header: args.header_timeout,
            max_conns: args.max_conns,
        };
        // Timeouts are checked by a sweep this often: a quarter of the
        // shortest, between 20 ms and 1 s.
        let tick =
            (cfg.idle.min(cfg.header) / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let now = Instant::now();
        let mut app = HttpApp {
            slots: Vec::new(),
            ctx: ctx.clone(),
            port: args.port,
            backlog: args.backlog,
            reload_seen: ctx.reload.load(std::sync::atomic::Ordering::Relaxed),
            conns: Default::default(),
            pool: Vec::new(),
            site,
            site_gen,
            svc: Service {
                cfg,
                stats: StatsPolicy::new(
                    &args.stats,
                    &args.stats_allow,
                    args.local_addrs.0,
                    args.local_addrs.1,
                ),
                counters: HttpCounters::default(),
                scratch: vec![0; 16 * 1024],
                key: Vec::with_capacity(256),
                tmp: Vec::with_capacity(128),
                line: Vec::new(),
                date: head::http_date(0),
                date_secs: 0,
                stopping: false,
                log: AccessLog::new(&served),
                resp_status: 0,
                resp_bytes: 0,
                boundary: u64::from(std::process::id()) << 32 | (ctx.worker as u64) << 24,
                now,
                redirect: None,
                hsts: tls::redirect::hsts_line(&args.tls),
            },
            served,
            ready: Vec::new(),
            accepted: Vec::new(),
            expired: Vec::new(),
            reaper: Reaper::new(now),
            tick,
            next_sweep: now + tick,
            tls_port: args.tls.tls_port,
            tls: args.tls.shared.clone().map(tls::Layer::new),
        };
        app.svc.refresh_date();
        if app.tls.is_some() && args.tls.redirect_https {
            app.svc.redirect = Some(tls::redirect::Redirect::new(args));
        }
        let kinds: &[bool] = if app.tls.is_some() {
            &[false, true]
        } else {
            &[false]
        };
        for &on_tls in kinds {
            for _ in 0..args.listeners.max(1) {
                let id = app.listen(engine, on_tls)?;
                app.slots.push(Slot {
                    id,
                    draining_since: None,
                    tls: on_tls,
                });
            }
        }
        engine.set_ready_tracking(true);
        Ok(app)
    }

    fn listen<S: TcpApi>(&self, engine: &mut S, tls: bool) -> Result<ListenerId, ListenError> {
        let opts = self.ctx.bind.clone().with_backlog(self.backlog);
        let port = if tls { self.tls_port } else { self.port };
        let id = engine
            .tcp_listen(BindAddr::Any6 { v6only: false }, port, opts)
            .map_err(|e| ListenError::Listen {
                port,
                reason: e.to_string(),
            })?;
        engine.set_selector(id.member(), self.ctx.selector.clone());
        Ok(id)
    }

    /// SIGHUP: replace every listener one by one: the new one joins the
    /// group, the old one drains (takes no new flows, its queue is still
    /// accepted) and closes once empty.
    fn replace_listeners<S: TcpApi>(&mut self, engine: &mut S, now: Instant) {
        let live: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].draining_since.is_none())
            .collect();
        for i in live {
            let tls = self.slots[i].tls;
            match self.listen(engine, tls) {
                Ok(id) => {
                    let old = self.slots[i].id;
                    let _ = engine.drain(old);
                    self.slots[i].draining_since = Some(now);
                    self.slots.push(Slot {
                        id,
                        draining_since: None,
                        tls,
                    });
                    self.svc.counters.listeners_replaced += 1;
                }
                Err(e) => log::warn!("listener replacement refused: {e}"),
            }
        }
    }

    /// Counters as JSON.
    pub fn json(&self) -> Value {
        let mut c = self.svc.counters.clone();
        if let Some(l) = &self.svc.log {
            c.log_bytes = l.written;
            c.log_errors = l.errors;
        }
        let mut v = json!(c);
        if let (Some(t), Some(obj)) = (&self.tls, v.as_object_mut()) {
            obj.insert("tls".into(), tls::json(t));
        }
        v
    }

    /// A reload swapped in another site: serve it from now on. Idle
    /// connections let go of the old one (those still sending from it keep
    /// it until done).
    fn take_new_site(&mut self) {
        let (site, gen) = self.served.site();
        self.site = site;
        self.site_gen = gen;
        self.svc.counters.site_reloads += 1;
        let idle: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.out.bodies.is_empty() && c.out.site.is_some())
            .map(|(id, _)| id)
            .collect();
        for id in idle {
            if let Some(c) = self.conns.get_mut(&id) {
                c.out.site = None;
            }
        }
        for c in &mut self.pool {
            c.out.site = None;
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    fn finish(&mut self, id: ConnId, now: Instant) {
        if let Some(t) = &mut self.tls {
            t.forget(id);
        }
        if let Some(c) = self.conns.remove(&id) {
            recycle(&mut self.pool, self.svc.cfg.framing, c, now);
        }
    }

    /// Closes what ran into a limit; runs every `tick`.
    fn sweep<S: TcpApi>(&mut self, engine: &mut S, now: Instant) {
        let cfg = self.svc.cfg;
        for (id, c) in self.conns.iter() {
            let (at, why) = c.deadline(&cfg);
            if at <= now {
                self.expired.push((id, why));
            }
        }
        let expired = std::mem::take(&mut self.expired);
        for &(id, why) in &expired {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            let keep = match why {
                Expiry::Idle => {
                    self.svc.counters.idle_closed += 1;
                    engine.close(id);
                    false
                }
                Expiry::Send => {
                    self.svc.counters.send_timeouts += 1;
                    engine.abort(id);
                    false
                }
                Expiry::Body => {
                    self.svc.counters.body_timeouts += 1;
                    engine.abort(id);
                    false
                }
                Expiry::Header => {
                    self.svc.counters.header_timeouts += 1;
                    c.req_start = None;
                    c.inbuf.clear();
                    c.last = now;
                    self.svc.simple(c, 408, &[], false, ConnHeader::Close);
                    self.svc.log(c.peer, None, None, None);
                    c.close_after = true;
                    serve(&mut self.svc, &self.site, &mut self.tls, engine, id, c, now)
                }
            };
            if !keep {
                self.finish(id, now);
            }
        }
        self.expired = expired;
        self.expired.clear();
    }
}

impl HttpApp {
    /// One turn on any socket API (the engine, or an attached core).
    pub fn poll_on<S: TcpApi>(&mut self, engine: &mut S, now: Instant) -> Option<Instant> {
        self.svc.refresh_date();
        self.svc.now = now;
        if self.served.site_gen() != self.site_gen {
            self.take_new_site();
        }
        if let Some(l) = &mut self.svc.log {
            l.follow(&self.served);
        }
        let gen = self.ctx.reload.load(std::sync::atomic::Ordering::Relaxed);
        if gen != self.reload_seen && !self.svc.stopping {
            self.reload_seen = gen;
            if let Some(t) = &self.tls {
                t.shared().reload(gen);
            }
            self.replace_listeners(engine, now);
        }
        self.accepted.clear();
        for slot in &self.slots {
            while let Some(id) = engine.accept(slot.id) {
                let refused = slot.tls && self.tls.as_mut().is_some_and(|t| !t.accept(id));
                if refused {
                    engine.abort(id);
                } else {
                    self.accepted.push(id);
                }
            }
        }
        // Drained listeners close once their queue is empty (or after the
        // drain limit: what is left migrates to a live member).
        let mut draining_left = false;
        self.slots.retain(|s| match s.draining_since {
            Some(t) if engine.pending(s.id) == 0 || now.duration_since(t) >= DRAIN_LIMIT => {
                let _ = engine.close_listener(s.id);
                false
            }
            Some(_) => {
                draining_left = true;
                true
            }
            None => true,
        });
        self.drain_ended(engine, now);
        let accepted = std::mem::take(&mut self.accepted);
        for &id in &accepted {
            self.svc.counters.connections += 1;
            if self.conns.len() >= self.svc.cfg.max_conns && !self.evict_idle(engine, now) {
                self.svc.counters.rejected_max_conns += 1;
                engine.abort(id);
                if let Some(t) = &mut self.tls {
                    t.forget(id);
                }
                continue;
            }
            let limits = self.svc.cfg.framing;
            let c = match self.pool.pop() {
                Some(c) => c,
                None => Conn::new(limits, now),
            };
            let mut c = c;
            c.peer = engine.peer_addr(id).map(|a| a.ip());
            c.tls = self.tls.as_ref().is_some_and(|t| t.has(id));
            self.conns.insert(id, c);
            if let Some(c) = self.conns.get_mut(&id) {
                c.last = now;
                if !serve(&mut self.svc, &self.site, &mut self.tls, engine, id, c, now) {
                    self.finish(id, now);
                }
            }
        }
        self.accepted = accepted;
        self.svc.counters.max_open = self.svc.counters.max_open.max(self.conns.len() as u64);
        // Only the connections that had a segment since the last poll.
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        engine.take_ready(&mut ready);
        if let Some(t) = &mut self.tls {
            // Those whose turn's budget ran out last time, after the others.
            t.take_again(&mut ready);
        }
        // Touch every ready connection's state before serving any: the
        // reads do not depend on one another, so their cache misses overlap.
        if ready.len() > 1 {
            for id in &ready {
                std::hint::black_box(
                    self.conns
                        .get(id)
                        .map(|c| (c.inbuf.len(), c.out.is_empty())),
                );
            }
        }
        for &id in &ready {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if !serve(&mut self.svc, &self.site, &mut self.tls, engine, id, c, now) {
                self.finish(id, now);
            } else if c.idle_after_request() && c.listed_quiet != Some(c.last) {
                // A candidate for `evict_idle` at once, whatever its age.
                c.listed_quiet = Some(c.last);
                self.reaper.note_quiet(id, c.last, self.svc.cfg.max_conns);
            }
        }
        self.ready = ready;
        if now >= self.next_sweep {
            self.next_sweep = now + self.tick;
            self.sweep(engine, now);
        }
        let mut next = (!self.conns.is_empty()).then_some(self.next_sweep);
        if let Some(flush) = self.svc.log.as_mut().and_then(|l| l.tick(now)) {
            next = Some(next.map_or(flush, |n| n.min(flush)));
        }
        if self.served.watched() {
            // An idle worker still looks once a second for a new tree (to
            // let the old one go) or a reopened log.
            let look = now + Duration::from_secs(1);
            next = Some(next.map_or(look, |n| n.min(look)));
        }
        if let Some(t) = &mut self.tls {
            if let Some(at) = t.end_poll(engine, now, self.svc.cfg.idle, self.next_sweep) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        if draining_left {
            let soon = now + Duration::from_millis(10);
            next = Some(next.map_or(soon, |n| n.min(soon)));
        }
        next
    }

    /// Stop taking connections (every listener drains, then closes once
    /// its queue is empty), close idle connections, and let the others
    /// finish their response (sent with `Connection: close`). Busy until no
    /// connection is left in the engine either (the last bytes and FINs
    /// acknowledged).
    pub fn stopping_on<S: TcpApi>(&mut self, engine: &mut S, now: Instant) -> bool {
        if !self.svc.stopping {
            self.svc.stopping = true;
            for s in &mut self.slots {
                let _ = engine.drain(s.id);
                s.draining_since.get_or_insert(now);
            }
            let idle: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, c)| c.idle_after_request())
                .map(|(id, _)| id)
                .collect();
            for id in idle {
                engine.close(id);
                self.svc.counters.closed_at_stop += 1;
                self.finish(id, now);
            }
        }
        // Listeners close once nothing waits in their queue (poll accepts
        // what does) or after the drain limit.
        self.slots.retain(|s| {
            let done = engine.pending(s.id) == 0
                || s.draining_since
                    .is_some_and(|t| now.duration_since(t) >= DRAIN_LIMIT);
            if done {
                let _ = engine.close_listener(s.id);
            }
            !done
        });
        !self.slots.is_empty() || !self.conns.is_empty() || engine.connections() > 0
    }

    /// Release everything (the end of a stop).
    pub fn shutdown_on<S: TcpApi>(&mut self, engine: &mut S) {
        if let Some(l) = &mut self.svc.log {
            l.flush();
        }
        self.svc.counters.reset_at_exit = self.conns.len() as u64;
        self.conns.clear();
        if let Some(t) = &mut self.tls {
            t.clear();
        }
        engine.abort_all();
    }
}

/// `None` for an empty field (not sent).
/// The response of a request with a body that waits for the end of the
/// body, so that a framing error in the body is its answer (a 400, never a
/// response to half a message), and a body that never comes whole is never
/// answered: every method but GET and HEAD (which are answered at once from
/// their fields, ranges and preconditions; their body is read and dropped).
/// With `Expect: 100-continue`, only a request that will use the body (the
/// fixed body's POST) asks for it; the others are answered at once and the
/// connection closes (`None`).
fn held_response(fixed: bool, allow: &'static [u8], req: &Request) -> Option<Held> {
    let held = match req.method {
        Method::Get | Method::Head => return None,
        Method::Post if fixed => Held::FixedBody,
        Method::Options => Held::Options(allow),
        Method::Unknown => Held::Simple(501, None),
        _ => Held::Simple(405, Some(allow)),
    };
    (!req.expect_continue || held == Held::FixedBody).then_some(held)
}

fn nonempty(s: &[u8]) -> Option<&[u8]> {
    (!s.is_empty()).then_some(s)
}

/// A service turn on `id`, through TLS when it is an HTTPS connection.
fn serve<S: TcpApi>(
    svc: &mut Service,
    site: &Arc<Site>,
    tls: &mut Option<tls::Layer>,
    engine: &mut S,
    id: ConnId,
    c: &mut Conn,
    now: Instant,
) -> bool {
    let Some(layer) = tls.as_mut().filter(|_| c.tls) else {
        return svc.service(site, engine, id, c, now);
    };
    let keep = match layer.io(engine, id) {
        Some(mut io) => svc.service(site, &mut io, id, c, now),
        // Never plaintext on the HTTPS port.
        None => {
            engine.abort(id);
            false
        }
    };
    layer.after(id, keep, now);
    keep
}

/// Keep a connection's state (its buffers) in `pool` for the next one.
fn recycle(pool: &mut Vec<Conn>, framing: Limits, mut c: Conn, now: Instant) {
    if pool.len() < 256 {
        c.reset(framing, now);
        pool.push(c);
    }
}

impl HttpApp {
    /// Forget the connections the engine ended (their ids are stale).
    fn drain_ended<S: TcpApi>(&mut self, engine: &mut S, now: Instant) {
        for &(id, _) in self.reaper.take_ended(engine) {
            if let Some(t) = &mut self.tls {
                t.ended(id);
            }
            if let Some(c) = self.conns.remove(&id) {
                self.svc.counters.ended += 1;
                recycle(&mut self.pool, self.svc.cfg.framing, c, now);
            }
        }
    }

    /// Make room for a newcomer: close the keep-alive connection that went
    /// idle after a request first, whatever its age (as nginx reuses its
    /// idle keep-alive connections when it runs out); else the one idle
    /// longest between requests (or before its first), if idle for
    /// `EVICT_AFTER`. Whether one went.
    fn evict_idle<S: TcpApi>(&mut self, engine: &mut S, now: Instant) -> bool {
        let conns = &self.conns;
        let quiet = self.reaper.take_quiet(|id| {
            conns
                .get(&id)
                .filter(|c| c.idle_after_request())
                .map(|c| c.last)
        });
        if let Some(id) = quiet {
            self.svc.counters.closed_quiet += 1;
            engine.close(id);
            self.finish(id, now);
            return true;
        }
        let Some(id) = self.reaper.evict(
            now,
            || {
                conns
                    .iter()
                    .filter(|(_, c)| c.is_idle())
                    .map(|(id, c)| (c.last, id))
            },
            |id| conns.get(&id).filter(|c| c.is_idle()).map(|c| c.last),
        ) else {
            return false;
        };
        self.svc.counters.evicted_idle += 1;
        engine.close(id);
        self.finish(id, now);
        true
    }
}

impl<R: Rings> App<R> for HttpApp {
    fn poll(&mut self, engine: &mut Engine<R>, now: Instant) -> Option<Instant> {
        self.poll_on(engine, now)
    }

    fn stopping(&mut self, engine: &mut Engine<R>, now: Instant) -> bool {
        self.stopping_on(engine, now)
    }

    fn shutdown(&mut self, engine: &mut Engine<R>) {
        self.shutdown_on(engine)
    }
}

impl attach::Service for HttpApp {
    fn poll(&mut self, core: &mut attach::Core, now: Instant) -> Option<Instant> {
        self.poll_on(core, now)
    }

    fn stopping(&mut self, core: &mut attach::Core, now: Instant) -> bool {
        self.stopping_on(core, now)
    }

    fn shutdown(&mut self, core: &mut attach::Core) {
        self.shutdown_on(core)
    }
}
