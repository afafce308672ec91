//! `xdpstack dns`: an authoritative DNS responder over reuseport workers.
//!
//! - `zone.rs`: the master file, parsed (entry structure here, record data
//!   by hickory-proto), errors with file:line.
//! - `index.rs`: the zone pre-answered: per (name, qtype) an encoded
//!   response body with compression, NXDOMAIN/NODATA with the SOA, CNAME
//!   chains, wildcards, referrals.
//! - `wire.rs`: the bounds-checked query parser (header, question, OPT).
//! - `respond.rs`: query bytes to response bytes in a reusable buffer (EDNS,
//!   truncation, error responses).
//! - here: the per-worker application: one reuseport UDP socket and one
//!   reuseport TCP listener per worker, length-prefixed pipelined TCP with
//!   idle timeout and bounded buffers, counters.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod index;
pub mod respond;
pub mod wire;
pub mod zone;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;
use nic::Rings;
use serde_json::{json, Value};
use stack::engine::{Engine, ListenerId, UdpId};
use stack::socket::{ConnError, ConnId, TcpApi, UdpApi};
use stack::worker::App;

use runtime::conns::Reaper;
use runtime::server::WorkerCtx;

pub use index::Index;
pub use respond::{Outcome, Reply, Responder, Transport};

/// `xdpstack dns` options.
#[derive(clap::Args, Clone, Debug)]
pub struct DnsArgs {
    /// Zone in standard master-file format.
    #[arg(long)]
    pub zone: std::path::PathBuf,
    /// Origin for relative names before the first `$ORIGIN`.
    #[arg(long)]
    pub origin: Option<String>,
    /// UDP and TCP port.
    #[arg(long, default_value_t = 53)]
    pub port: u16,
    /// Largest UDP response, whatever the client's EDNS size (512 without
    /// EDNS); capped at what fits one IPv6 packet of the port's MTU.
    #[arg(long, default_value_t = respond::DEFAULT_MAX_UDP)]
    pub max_udp: u16,
    /// Close TCP connections idle this long: whole seconds (`10s`, `2m`;
    /// a bare number is seconds; at least 1 s). Held in seconds.
    #[arg(long, default_value = "10s", value_parser = parse_idle_secs)]
    pub tcp_idle: u64,
    /// Most TCP connections per worker; past it the stalest idle one is
    /// evicted, else the new one is reset (both counted). The default is of
    /// the order of knotd's (half the open-file limit): an open-loop load of
    /// 100k connections/s keeps thousands in flight in a short stall.
    #[arg(long, default_value_t = 16384)]
    pub tcp_max_conns: usize,
    /// UDP datagrams queued per worker before drops.
    #[arg(long, default_value_t = 4096)]
    pub udp_queue: usize,
    /// Attached mode (`--attach PATH`, `--pin`).
    #[command(flatten)]
    pub attached: runtime::attached::AttachArgs,
}

/// `--tcp-idle`: the one duration syntax, whole seconds, at most a day.
fn parse_idle_secs(s: &str) -> Result<u64, runtime::duration::DurationError> {
    runtime::duration::parse_whole_secs_within(s, Duration::ZERO, Duration::from_secs(86_400))
        .map(|d| d.as_secs())
}

/// Why the DNS service did not start on a worker.
pub type DnsError = runtime::server::PortError;

/// Why the zone did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A bad `--origin`.
    #[error("bad --origin `{0}`: {1}")]
    Origin(String, String),
    /// The zone file.
    #[error(transparent)]
    Zone(#[from] zone::ZoneError),
}

/// Parse and index the zone of `args`.
pub fn load(args: &DnsArgs) -> Result<Index, LoadError> {
    let origin = match &args.origin {
        Some(o) => {
            Some(Name::from_str(o).map_err(|e| LoadError::Origin(o.clone(), e.to_string()))?)
        }
        None => None,
    };
    let z = zone::parse_file(&args.zone, origin)?;
    Ok(Index::build(&z)?)
}

/// The link MTU an attached process assumes for UDP answers (it does not see
/// the daemon's interface): Ethernet's.
pub const ATTACHED_MTU: usize = 1500;

/// [`load`], and one line on stderr about what was loaded.
pub fn load_logged(args: &DnsArgs) -> Result<Arc<Index>, LoadError> {
    let started = Instant::now();
    let index = Arc::new(load(args)?);
    let s = index.stats();
    eprintln!(
        "xdpstack dns: zone {} loaded in {:.1?}: {} records, {} names, {} answers ({} KiB), {} cuts, {} wildcards",
        index.apex(),
        started.elapsed(),
        s.records,
        s.names,
        s.answers,
        s.answer_bytes / 1024,
        s.cuts,
        s.wildcards
    );
    Ok(index)
}

/// Counters of one worker.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DnsCounters {
    /// Messages received (UDP and TCP), answered or not.
    pub queries: u64,
    /// Of which over UDP.
    pub udp_queries: u64,
    /// Of which over TCP.
    pub tcp_queries: u64,
    /// Responses with NOERROR (answers, NODATA, referrals).
    pub noerror: u64,
    /// NXDOMAIN.
    pub nxdomain: u64,
    /// REFUSED (outside the zone, zone transfers, other classes).
    pub refused: u64,
    /// FORMERR (malformed query with a readable header).
    pub formerr: u64,
    /// SERVFAIL (a CNAME loop in the zone).
    pub servfail: u64,
    /// NOTIMP (opcodes other than QUERY, obsolete query types).
    pub notimp: u64,
    /// BADVERS (EDNS version above 0).
    pub badvers: u64,
    /// UDP responses with TC set.
    pub truncated: u64,
    /// Messages dropped without an answer (no readable header, or a
    /// response).
    pub malformed_dropped: u64,
    /// UDP responses that could not be sent (no free frame).
    pub udp_send_failed: u64,
    /// TCP connections accepted.
    pub tcp_connections: u64,
    /// TCP connections closed for idleness.
    pub tcp_idle_closed: u64,
    /// TCP connections reset because the worker had too many and none had
    /// been idle `EVICT_AFTER`.
    pub tcp_refused: u64,
    /// TCP connections reset to make room for a new one when the worker
    /// had too many: the one whose last progress (accepted, bytes read or
    /// sent) is oldest, idle at least `EVICT_AFTER` (RFC 7766 6.2.3).
    pub tcp_evicted: u64,
    /// TCP connections the engine ended while held (reset by the peer,
    /// timed out, replaced by the peer's new SYN): forgotten at once.
    pub tcp_ended: u64,
    /// TCP connections closed for a malformed length-prefixed message.
    pub tcp_malformed_closed: u64,
}

impl DnsCounters {
    fn count(&mut self, o: &Outcome) {
        match o.rcode {
            0 => self.noerror += 1,
            1 => self.formerr += 1,
            2 => self.servfail += 1,
            3 => self.nxdomain += 1,
            4 => self.notimp += 1,
            5 => self.refused += 1,
            16 => self.badvers += 1,
            _ => {}
        }
        if o.truncated {
            self.truncated += 1;
        }
    }
}

/// A TCP connection's state: bytes received and not yet answered, answers
/// not yet sent.
struct TcpConn {
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_off: usize,
    /// Its last progress: accepted, bytes read or sent (segments that move
    /// nothing do not count: the idle timeout and eviction go by this).
    last: Instant,
    eof: bool,
}

/// Stop reading a connection while this much output is pending (the peer
/// reads slower than it asks).
const TCP_OUT_HIGH: usize = 64 * 1024;
/// Largest length-prefixed message plus its prefix.
const TCP_MSG_MAX: usize = 2 + 65535;

/// One worker's DNS service.
pub struct DnsApp {
    udp: UdpId,
    listener: ListenerId,
    responder: Responder,
    conns: stack::socket::ConnMap<TcpConn>,
    rx: Vec<u8>,
    out: Vec<u8>,
    idle: Duration,
    max_conns: usize,
    counters: DnsCounters,
    /// Reused lists of connection ids (no allocation per poll).
    scratch_ids: Vec<ConnId>,
    /// Ended connections, eviction (RFC 7766 6.2.3) and the idle sweep.
    reaper: Reaper,
    /// Connection states kept for reuse.
    conn_pool: Vec<TcpConn>,
}

impl DnsApp {
    /// Bind UDP and TCP `args.port` (reuseport, dual-stack) on this worker.
    /// `mtu`: the link's MTU (UDP answers stay within one packet).
    pub fn new<A: TcpApi + UdpApi>(
        ctx: &WorkerCtx,
        engine: &mut A,
        args: &DnsArgs,
        index: Arc<Index>,
        mtu: usize,
    ) -> Result<Self, DnsError> {
        let (udp, listener) = ctx.bind_udp_tcp(engine, args.port, args.udp_queue, 1024)?;
        // Only connections with segments are looked at (`take_ready`).
        engine.set_ready_tracking(true);
        // Never more than one IPv6 packet on this port: UDP responses are not fragmented.
        let mtu_payload = mtu.saturating_sub(40 + 8);
        let max_udp = usize::from(args.max_udp).min(mtu_payload) as u16;
        Ok(DnsApp {
            udp,
            listener,
            responder: Responder::new(index, max_udp),
            conns: Default::default(),
            rx: vec![0; 65536],
            out: vec![0; 65536],
            idle: Duration::from_secs(args.tcp_idle.max(1)),
            max_conns: args.tcp_max_conns.max(1),
            counters: DnsCounters::default(),
            scratch_ids: Vec::new(),
            reaper: Reaper::new(Instant::now()),
            conn_pool: Vec::new(),
        })
    }

    /// Counters as JSON.
    pub fn json(&self) -> Value {
        json!(self.counters)
    }

    /// Counters.
    pub fn counters(&self) -> &DnsCounters {
        &self.counters
    }

    fn poll_udp<A: TcpApi + UdpApi>(&mut self, engine: &mut A) {
        while let Ok(Some((n, from, to))) = engine.recv_from(self.udp, &mut self.rx) {
            self.counters.queries += 1;
            self.counters.udp_queries += 1;
            let msg = &self.rx[..n];
            match self.responder.respond(msg, Transport::Udp, &mut self.out) {
                Reply::Drop => self.counters.malformed_dropped += 1,
                Reply::Send(o) => {
                    self.counters.count(&o);
                    if engine
                        .send_to(self.udp, &self.out[..o.len], from, Some(to))
                        .is_err()
                    {
                        self.counters.udp_send_failed += 1;
                        // No frame left: let egress flush before going on.
                        break;
                    }
                }
            }
        }
    }

    /// Answer every complete message in `c.inbuf`. Returns false if the
    /// connection must be closed (a message without a readable header).
    fn answer_tcp(&mut self, c: &mut TcpConn) -> bool {
        let mut off = 0;
        let mut ok = true;
        while c.out.len() - c.out_off < TCP_OUT_HIGH {
            let Some(pre) = c.inbuf.get(off..off + 2) else {
                break;
            };
            let len = u16::from_be_bytes([pre[0], pre[1]]) as usize;
            let Some(msg) = c.inbuf.get(off + 2..off + 2 + len) else {
                break;
            };
            off += 2 + len;
            self.counters.queries += 1;
            self.counters.tcp_queries += 1;
            match self.responder.respond(msg, Transport::Tcp, &mut self.out) {
                Reply::Drop => {
                    self.counters.malformed_dropped += 1;
                    self.counters.tcp_malformed_closed += 1;
                    ok = false;
                    break;
                }
                Reply::Send(o) => {
                    self.counters.count(&o);
                    c.out.extend_from_slice(&(o.len as u16).to_be_bytes());
                    c.out.extend_from_slice(&self.out[..o.len]);
                }
            }
        }
        c.inbuf.drain(..off);
        ok
    }

    /// Accepted connections and those that had a segment since the last
    /// poll are served; the others are not looked at (idle timeouts: a
    /// sweep once per `SWEEP` over all of them).
    fn poll_tcp<A: TcpApi + UdpApi>(&mut self, engine: &mut A, now: Instant) -> Option<Instant> {
        // The connections the engine ended leave the table at once.
        for &(id, _) in self.reaper.take_ended(engine) {
            if let Some(c) = self.conns.remove(&id) {
                self.counters.tcp_ended += 1;
                recycle(&mut self.conn_pool, c);
            }
        }
        let mut ids = std::mem::take(&mut self.scratch_ids);
        ids.clear();
        while let Some(id) = engine.accept(self.listener) {
            if self.conns.len() >= self.max_conns && !self.evict_one(engine, now) {
                self.counters.tcp_refused += 1;
                engine.abort(id);
                continue;
            }
            self.counters.tcp_connections += 1;
            let mut c = self.conn_pool.pop().unwrap_or_else(|| TcpConn {
                inbuf: Vec::new(),
                out: Vec::new(),
                out_off: 0,
                last: now,
                eof: false,
            });
            c.last = now;
            self.conns.insert(id, c);
            ids.push(id);
        }
        engine.take_ready(&mut ids);
        for &id in &ids {
            self.service_tcp(engine, id, now);
        }
        self.scratch_ids = ids;
        if self.conns.is_empty() {
            return None;
        }
        let listed = self.conns.iter().map(|(&id, c)| (c.last, id));
        for &id in self.reaper.idle(now, self.idle, listed) {
            self.counters.tcp_idle_closed += 1;
            engine.close(id);
            if let Some(c) = self.conns.remove(&id) {
                recycle(&mut self.conn_pool, c);
            }
        }
        Some(self.reaper.next_sweep())
    }

    /// Reset the connection whose last progress is oldest, if it made none
    /// for `EVICT_AFTER`, to make room (RFC 7766 6.2.3). Reset, not closed:
    /// its peer may be gone, and a close would linger. Whether one went.
    fn evict_one<A: TcpApi + UdpApi>(&mut self, engine: &mut A, now: Instant) -> bool {
        let Some(id) = self.reaper.evict_from(now, &self.conns, |c| c.last) else {
            return false;
        };
        self.counters.tcp_evicted += 1;
        engine.abort(id);
        if let Some(c) = self.conns.remove(&id) {
            recycle(&mut self.conn_pool, c);
        }
        true
    }

    fn close_tcp<A: TcpApi + UdpApi>(&mut self, engine: &mut A, id: ConnId) {
        engine.close(id);
        if let Some(c) = self.conns.remove(&id) {
            recycle(&mut self.conn_pool, c);
        }
    }

    /// Read, answer and send on one connection as far as it goes.
    fn service_tcp<A: TcpApi + UdpApi>(&mut self, engine: &mut A, id: ConnId, now: Instant) {
        let Some(mut c) = self.conns.remove(&id) else {
            return;
        };
        let mut close = false;
        loop {
            // Send what is pending.
            let mut sent = false;
            while c.out_off < c.out.len() {
                match engine.send(id, &c.out[c.out_off..]) {
                    Ok(0) => break,
                    Ok(n) => {
                        c.out_off += n;
                        sent = true;
                        c.last = now;
                    }
                    Err(_) => {
                        close = true;
                        break;
                    }
                }
            }
            if c.out_off == c.out.len() {
                c.out.clear();
                c.out_off = 0;
            }
            if close {
                break;
            }
            // Answer what is buffered (up to the output high-water mark).
            let before = c.out.len();
            if !self.answer_tcp(&mut c) {
                close = true;
                break;
            }
            if c.out.len() - c.out_off >= TCP_OUT_HIGH {
                if sent || c.out.len() != before {
                    continue;
                }
                // The peer is not reading: wait for it.
                break;
            }
            if c.out.len() != before {
                continue;
            }
            if c.eof {
                break;
            }
            // Read at most what completes the largest message (bounded).
            let room = TCP_MSG_MAX.saturating_sub(c.inbuf.len()).min(self.rx.len());
            if room == 0 {
                break;
            }
            match engine.recv(id, &mut self.rx[..room]) {
                Ok(0) => break,
                Ok(n) => {
                    c.inbuf.extend_from_slice(&self.rx[..n]);
                    c.last = now;
                }
                Err(ConnError::Closed) | Err(ConnError::NotFound) => {
                    c.eof = true;
                }
            }
        }
        if !close && c.out.len() > c.out_off && c.eof {
            // Answers still pending: keep the connection to send them.
        } else if c.eof {
            close = true;
        }
        self.conns.insert(id, c);
        if close {
            self.close_tcp(engine, id);
        }
    }
}

impl<R: Rings> App<R> for DnsApp {
    fn poll(&mut self, engine: &mut Engine<R>, now: Instant) -> Option<Instant> {
        let next = self.poll_on(engine, now);
        if engine.udp_pending(self.udp) > 0 {
            // Stopped for want of a TX frame: come back right after egress.
            return Some(now);
        }
        next
    }
}

impl attach::Service for DnsApp {
    fn poll(&mut self, core: &mut attach::Core, now: Instant) -> Option<Instant> {
        self.poll_on(core, now)
    }
}

impl DnsApp {
    /// One turn on any socket API (the engine, or an attached core).
    pub fn poll_on<A: TcpApi + UdpApi>(&mut self, engine: &mut A, now: Instant) -> Option<Instant> {
        self.poll_udp(engine);
        self.poll_tcp(engine, now)
    }
}

/// Keep a connection's state (its buffers) in `pool` for the next one.
fn recycle(pool: &mut Vec<TcpConn>, mut c: TcpConn) {
    if pool.len() < 256 {
        c.inbuf.clear();
        c.out.clear();
        c.out_off = 0;
        c.eof = false;
        pool.push(c);
    }
}

#[cfg(test)]
mod tests;
