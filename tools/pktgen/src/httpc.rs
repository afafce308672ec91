//! `--template http`: an HTTP/1.1 client with its own small TCP, sent and
//! received on the XSK, so that no client kernel takes part (as `kxdpgun -T`
//! does for DNS over TCP).
//!
//! Each connection is a slot of a few dozen bytes: its state, the next
//! sequence numbers each way, how much of the response is still to come and
//! two timestamps. Nothing else is kept per connection, so 100,000
//! connections cost a few MiB and one core drives them.
//!
//! What it does:
//! - **Keep-alive** (default): `--conns` connections are opened (SYNs paced
//!   by `--connect-rate`) and kept. With `--rate 0` every connection sends
//!   its next request as soon as the response is in (closed loop, like
//!   wrk); with `--rate R` requests go out at R per second in all, each to
//!   the connection idle longest (open loop: a server with many mostly idle
//!   connections).
//! - **`--close`**: one request per connection, `Connection: close`; the
//!   server closes after its response and is answered with FIN. A slot then
//!   opens its next connection from another source port (slot `s`'s `k`-th
//!   connection uses flow `s + k * conns`, round the flow space), so a
//!   4-tuple comes back only after all the others.
//!   `--rate` caps new connections per second (0: as fast as the server
//!   closes them).
//! - Segments carry no options but an MSS in the SYN, and a 65,535-byte
//!   window. A response must start with its status line and headers in one
//!   segment and give a `Content-Length`; its body may span segments.
//! - Retransmission: a connection waiting for a SYN-ACK, an acknowledgment
//!   of its request or a FIN resends after 1 s, doubling, and gives up (RST)
//!   after 6 tries. A request the server acknowledged is not sent again.
//! - A segment for a connection the slot no longer has is answered with a
//!   RST, as a kernel would.
//! - ARP and NDP requests for the source addresses are answered.
//! - At the end every connection still open is reset, so the server is
//!   left with nothing.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nic::{Frame, LedgerError, Port, PortStats, Rings};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
    Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
    ETHERNET_HEADER_LEN,
};
use stack::parse::{parse_ip, ParsedIp, L4};

pub use super::gen::Step;
use super::gen::{new_histogram, send_secs, AddrRange, Generator, Live, PortRange, MAX_RTT_NS};
use super::neigh::{self, MIN_FRAME};
use super::pacer::Pacer;

/// Most connections one client holds.
pub const MAX_CONNS: u64 = 4_000_000;
/// First retransmission timeout (RFC 6298's initial RTO, as Linux before it
/// has a round trip: a server with 100,000 requests queued answers the
/// last ones hundreds of milliseconds late, and resending those early only
/// adds to the queue).
pub const RTO: Duration = Duration::from_millis(1000);
/// Tries (the first send included) before a connection is given up.
pub const MAX_TRIES: u8 = 6;
/// Our receive window (no scaling).
const WINDOW: u16 = 65535;
/// The MSS we announce.
const MSS: u16 = 1460;
/// How long an idle connection holds back the ACK of a response, hoping
/// to send it with the next request (Linux's minimum delayed ACK).
pub const ACK_DELAY: Duration = Duration::from_millis(40);
/// Timer scans per second: each looks at a tenth of the slots, so every
/// slot is looked at every 100 ms.
const SCAN_EVERY: Duration = Duration::from_millis(10);
const SCAN_PARTS: usize = 10;
/// `Conn::left` before the response's first byte.
const NO_HEADERS: u32 = u32::MAX;
/// Source addresses introduced to the server at the start at most.
const ANNOUNCE_MAX: u64 = 4096;
/// Receive batches per step at most.
const RX_BATCHES: usize = 4;

/// What a slot is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// No connection (on the free queue).
    Free,
    /// SYN sent.
    SynSent,
    /// Request sent, response not complete.
    Waiting,
    /// Keep-alive, open loop: response complete, no request out.
    Idle,
    /// `--close`: response complete, waiting for the server's FIN.
    AwaitFin,
}

/// One connection slot.
#[derive(Clone, Copy, Debug)]
struct Conn {
    st: St,
    tries: u8,
    /// Flow index (source address x source port) of the current connection.
    flow: u32,
    /// Connections this slot has opened (`--close`: picks the next flow).
    opened: u32,
    /// Our next sequence number (after what was sent).
    snd_nxt: u32,
    /// The next sequence number expected from the server.
    rcv_nxt: u32,
    /// Response bytes still to come ([`NO_HEADERS`]: none seen yet).
    left: u32,
    /// Last send of what is awaited (for the retransmission timer), ns.
    since_ns: u64,
    /// When the request went out, ns (latency).
    req_ns: u64,
    /// Idle with the last response not acknowledged yet (a delayed ACK).
    ack_owed: bool,
    /// The server acknowledged the request: it is not sent again.
    acked: bool,
}

impl Conn {
    const FREE: Conn = Conn {
        st: St::Free,
        tries: 0,
        flow: 0,
        opened: 0,
        snd_nxt: 0,
        rcv_nxt: 0,
        left: NO_HEADERS,
        since_ns: 0,
        req_ns: 0,
        ack_owed: false,
        acked: false,
    };
}

/// Counters of one client thread.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct HttpCounters {
    /// Frames received.
    pub received: u64,
    /// Connections opened (first SYNs).
    pub connects: u64,
    /// Handshakes completed.
    pub established: u64,
    /// SYNs sent again.
    pub syn_retransmits: u64,
    /// Requests sent (first sends).
    pub requests: u64,
    /// Requests sent again.
    pub request_retransmits: u64,
    /// Complete responses.
    pub responses: u64,
    /// ... with a 2xx status.
    pub status_2xx: u64,
    /// ... with another status.
    pub status_other: u64,
    /// Responses that could not be read (no status line or Content-Length
    /// in the first segment, more bytes than announced, closed early).
    pub bad_responses: u64,
    /// Connections closed by FIN exchange after their response (`--close`).
    pub closed: u64,
    /// Keep-alive connections the server closed.
    pub server_closed: u64,
    /// RSTs received on a live connection.
    pub rst_received: u64,
    /// Connections given up after [`MAX_TRIES`].
    pub timeouts: u64,
    /// RSTs sent (timeouts, stale segments, the reset at the end).
    pub rst_sent: u64,
    /// In-window segments out of order (answered with an ACK, dropped).
    pub out_of_order: u64,
    /// Segments with something in them (data, SYN, FIN) for a connection
    /// a slot no longer has: answered with RST.
    pub stale: u64,
    /// Bare ACKs or RSTs for a connection a slot no longer has (the ACK of
    /// our FIN, usually).
    pub late_acks: u64,
    /// Open loop: request slots due when no connection was idle.
    pub rate_missed: u64,
    /// No transmit frame free (the segment is sent later, or by the timer).
    pub tx_blocked: u64,
    /// Frames the stack's parser refused (bad checksum, lengths).
    pub rx_invalid: u64,
    /// Not IP, or not to our MAC.
    pub rx_not_ip: u64,
    /// IP, but not from the server's address and port to one of ours.
    pub rx_other: u64,
    /// ARP/NDP requests for our source addresses answered.
    pub neighbor_answered: u64,
}

/// Everything a client thread needs.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Our MAC.
    pub our_mac: [u8; 6],
    /// The server's MAC.
    pub dst_mac: [u8; 6],
    /// The server.
    pub dst: IpAddr,
    /// Its port.
    pub dst_port: u16,
    /// Source addresses.
    pub src_ips: AddrRange,
    /// Source ports.
    pub src_ports: PortRange,
    /// Connections at once.
    pub conns: u32,
    /// One request per connection.
    pub close: bool,
    /// Keep-alive: requests/s (0: closed loop); close: connections/s (0:
    /// as fast as they complete).
    pub rate: u64,
    /// Keep-alive: SYNs/s while opening (0: no limit).
    pub connect_rate: u64,
    /// Keep-alive, closed loop: requests outstanding at most (0: one per
    /// connection). Fewer than the connections: each completed request
    /// sends the next on the connection idle longest, so every connection
    /// takes its turn while the server sees this many at once.
    pub inflight: u32,
    /// The request's bytes.
    pub request: Vec<u8>,
    /// Time zero.
    pub epoch: Instant,
    /// Send nothing new from then on.
    pub send_until: Instant,
    /// Then wait this long for what is outstanding.
    pub drain: Duration,
    /// Segments sent per step at most, per kind.
    pub batch: usize,
    /// Counters for the once-a-second report (sent: requests, received:
    /// frames, answered: responses).
    pub live: Arc<Live>,
}

impl HttpConfig {
    /// Flows in the source space (address x port), at most 2^32 - 1.
    fn flows(&self) -> u64 {
        self.src_ips
            .len
            .max(1)
            .saturating_mul(self.src_ports.len())
            .min(u64::from(u32::MAX))
    }

    /// `--close`: connections per slot before a flow comes back.
    fn rounds(&self) -> u32 {
        if self.close {
            (self.flows() / u64::from(self.conns.max(1))).max(1) as u32
        } else {
            1
        }
    }

    /// Source address and port of `flow`.
    fn endpoint(&self, flow: u32) -> (IpAddr, u16) {
        let ips = self.src_ips.len.max(1);
        let f = u64::from(flow);
        (self.src_ips.nth(f % ips), self.src_ports.nth(f / ips))
    }

    /// The flow of our address `to` and port `port`, if ours.
    fn flow_of(&self, to: IpAddr, port: u16) -> Option<u32> {
        let r = &self.src_ips;
        let ip = match (r.first, to) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                u128::from(u32::from(b)).checked_sub(u128::from(u32::from(a)))?
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(b).checked_sub(u128::from(a))?,
            _ => return None,
        };
        if ip >= u128::from(r.len.max(1)) || !self.src_ports.contains(port) {
            return None;
        }
        let f = u64::from(port - self.src_ports.first)
            .checked_mul(r.len.max(1))?
            .checked_add(ip as u64)?;
        u32::try_from(f).ok()
    }
}

/// The HTTP/1.1 GET for `path` on `host`.
pub fn request_bytes(host: &str, path: &str, close: bool) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes()
}

/// A response's head, read from its first segment: the status and the
/// bytes of head and body together.
pub fn response_head(seg: &[u8]) -> Option<(u16, usize)> {
    let end = seg.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&seg[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let mut length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = Some(v.trim().parse::<usize>().ok()?);
            } else if k.trim().eq_ignore_ascii_case("transfer-encoding") {
                // Chunked bodies are not followed.
                return None;
            }
        }
    }
    // A length no response can have (the sum overflowing) is refused.
    Some((status, end.checked_add(length?)?))
}

/// A segment to send for a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Out {
    flow: u32,
    control: Ctl,
    seq: u32,
    /// Acknowledgment number (none for SYN and RST).
    ack: Option<u32>,
    /// Carries the request.
    request: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctl {
    Syn,
    Ack,
    Fin,
    Rst,
}

/// What to do with a received frame.
enum Action {
    Release,
    Neighbor,
}

/// What one client thread did.
pub struct HttpReport {
    /// Counters.
    pub counters: HttpCounters,
    /// Request to complete response (ns).
    pub hist: Histogram<u64>,
    /// Handshake round trips (ns).
    pub connect_hist: Histogram<u64>,
    /// Seconds from the epoch until sending stopped.
    pub send_secs: f64,
    /// Most connections established at once.
    pub peak_open: u64,
    /// Seconds from the epoch until all `conns` were established at once
    /// (none: never).
    pub all_open_s: Option<f64>,
    /// Port counters.
    pub port: PortStats,
    /// The frame accounting check.
    pub frames: Result<(), LedgerError>,
}

/// The client on one port.
pub struct HttpClient<R: Rings> {
    port: Port<R>,
    frames: Vec<Frame>,
    k: Core,
}

/// Everything but the port: the connections and what to send.
struct Core {
    cfg: HttpConfig,
    conns: Vec<Conn>,
    rounds: u32,
    free: std::collections::VecDeque<u32>,
    idle: std::collections::VecDeque<u32>,
    pacer: Pacer,
    connect_pacer: Pacer,
    outs: Vec<Out>,
    c: HttpCounters,
    hist: Histogram<u64>,
    connect_hist: Histogram<u64>,
    open: u64,
    peak_open: u64,
    /// Slots waiting for something (SYN-ACK, response, FIN).
    outstanding: u64,
    /// Requests outstanding (slots in `Waiting`).
    active: u64,
    /// Delayed ACKs: (slot, due ns, the slot's connection count then).
    acks: std::collections::VecDeque<(u32, u64, u32)>,
    next_scan: Instant,
    scan_at: usize,
    sending: bool,
    /// Source addresses introduced to the server so far.
    announced: u64,
    /// The wall clock at the start in 16 ns ticks (ISNs count on from it).
    isn_base: u32,
    sent_until: Option<Instant>,
    drain_until: Option<Instant>,
    all_open: Option<Instant>,
}

impl Core {
    fn new(cfg: HttpConfig) -> Core {
        let n = cfg.conns.max(1);
        let burst = (cfg.batch as u64).max(cfg.rate / 100);
        let cburst = (cfg.batch as u64).max(cfg.connect_rate / 100);
        Core {
            conns: vec![Conn::FREE; n as usize],
            rounds: cfg.rounds(),
            free: (0..n).collect(),
            idle: std::collections::VecDeque::new(),
            pacer: Pacer::new(cfg.rate, burst, cfg.epoch),
            connect_pacer: Pacer::new(
                if cfg.close {
                    cfg.rate
                } else {
                    cfg.connect_rate
                },
                if cfg.close { burst } else { cburst },
                cfg.epoch,
            ),
            outs: Vec::with_capacity(256),
            c: HttpCounters::default(),
            hist: new_histogram(),
            connect_hist: new_histogram(),
            open: 0,
            peak_open: 0,
            outstanding: 0,
            active: 0,
            acks: std::collections::VecDeque::new(),
            next_scan: cfg.epoch,
            scan_at: 0,
            sending: true,
            announced: 0,
            isn_base: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| (d.as_nanos() >> 4) as u32),
            sent_until: None,
            drain_until: None,
            all_open: None,
            cfg,
        }
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.cfg.epoch).as_nanos() as u64
    }

    fn slot_of(&self, flow: u32) -> Option<usize> {
        let n = self.cfg.conns.max(1);
        if u64::from(flow) >= u64::from(n) * u64::from(self.rounds) {
            return None;
        }
        let s = (flow % n) as usize;
        let c = &self.conns[s];
        (c.st != St::Free && c.flow == flow).then_some(s)
    }

    fn set_state(&mut self, s: usize, st: St) {
        let was = self.conns[s].st;
        let waits = |x: St| matches!(x, St::SynSent | St::Waiting | St::AwaitFin);
        let est = |x: St| matches!(x, St::Waiting | St::Idle | St::AwaitFin);
        if waits(was) {
            self.outstanding -= 1;
        }
        if waits(st) {
            self.outstanding += 1;
        }
        if was == St::Waiting {
            self.active -= 1;
        }
        if st == St::Waiting {
            self.active += 1;
        }
        if est(was) && !est(st) {
            self.open -= 1;
        }
        if !est(was) && est(st) {
            self.open += 1;
            self.peak_open = self.peak_open.max(self.open);
        }
        self.conns[s].st = st;
        if st == St::Free {
            self.free.push_back(s as u32);
        }
    }

    fn request_out(&mut self, s: usize, now_ns: u64) {
        let len = self.cfg.request.len() as u32;
        let c = &mut self.conns[s];
        self.outs.push(Out {
            flow: c.flow,
            control: Ctl::Ack,
            seq: c.snd_nxt,
            ack: Some(c.rcv_nxt),
            request: true,
        });
        c.snd_nxt = c.snd_nxt.wrapping_add(len);
        c.ack_owed = false;
        c.acked = false;
        c.left = NO_HEADERS;
        c.req_ns = now_ns;
        c.since_ns = now_ns;
        c.tries = 1;
        self.c.requests += 1;
        self.set_state(s, St::Waiting);
    }

    /// Closed loop: whether another request may go out now.
    fn may_request(&self) -> bool {
        !self.cfg.close
            && self.cfg.rate == 0
            && self.sending
            && (self.cfg.inflight == 0 || self.active < u64::from(self.cfg.inflight))
    }

    /// Keep-alive: response in, the connection waits for its next request
    /// with its ACK held back.
    fn idle_conn(&mut self, s: usize, now_ns: u64) {
        self.set_state(s, St::Idle);
        self.idle.push_back(s as u32);
        self.conns[s].ack_owed = true;
        let due = now_ns + ACK_DELAY.as_nanos() as u64;
        self.acks.push_back((s as u32, due, self.conns[s].opened));
    }

    /// Closed loop: requests on the connections idle longest, up to the
    /// in-flight bound.
    fn dispatch(&mut self, now_ns: u64) {
        while self.may_request() {
            let Some(s) = self.idle.pop_front() else {
                break;
            };
            let s = s as usize;
            if self.conns[s].st == St::Idle {
                self.request_out(s, now_ns);
            }
        }
    }

    /// ACKs held back past [`ACK_DELAY`] go out alone.
    fn delayed_acks(&mut self, now_ns: u64) {
        while let Some(&(s, due, opened)) = self.acks.front() {
            if due > now_ns {
                break;
            }
            self.acks.pop_front();
            let c = self.conns[s as usize];
            if c.st == St::Idle && c.ack_owed && c.opened == opened {
                self.conns[s as usize].ack_owed = false;
                self.ack_out(s as usize, Ctl::Ack);
            }
        }
    }

    fn ack_out(&mut self, s: usize, ctl: Ctl) {
        let c = &mut self.conns[s];
        self.outs.push(Out {
            flow: c.flow,
            control: ctl,
            seq: c.snd_nxt,
            ack: Some(c.rcv_nxt),
            request: false,
        });
        if ctl == Ctl::Fin {
            c.snd_nxt = c.snd_nxt.wrapping_add(1);
        }
    }

    fn reset_out(&mut self, flow: u32, seq: u32) {
        self.outs.push(Out {
            flow,
            control: Ctl::Rst,
            seq,
            ack: None,
            request: false,
        });
        self.c.rst_sent += 1;
    }

    /// Handle one received frame (its Ethernet header on).
    fn on_frame(&mut self, frame: &[u8], now_ns: u64) -> Action {
        self.c.received += 1;
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.c.rx_not_ip += 1;
            return Action::Release;
        };
        let ip = eth.payload();
        let is_ip = matches!(
            eth.ethertype(),
            EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6
        );
        if eth.dst_addr().0 != self.cfg.our_mac || !is_ip {
            self.c.rx_not_ip += 1;
            let ours = self.cfg.src_ips;
            if neigh::is_request_for(frame, |a| ours.contains(a)) {
                return Action::Neighbor;
            }
            return Action::Release;
        }
        let p = match parse_ip(ip) {
            Ok(p) => p,
            Err(_) => {
                self.c.rx_invalid += 1;
                return Action::Release;
            }
        };
        let L4::Tcp {
            flags_syn: syn,
            flags_ack: ack,
            flags_rst: rst,
            flags_fin: fin,
        } = p.l4
        else {
            // NDP arrives as ICMPv6 to our MAC.
            let ours = self.cfg.src_ips;
            if neigh::is_request_for(frame, |a| ours.contains(a)) {
                return Action::Neighbor;
            }
            self.c.rx_other += 1;
            return Action::Release;
        };
        if p.key.src != self.cfg.dst || p.key.sport != self.cfg.dst_port {
            self.c.rx_other += 1;
            return Action::Release;
        }
        let Some(flow) = self.cfg.flow_of(p.key.dst, p.key.dport) else {
            self.c.rx_other += 1;
            return Action::Release;
        };
        let Some(payload) = tcp_payload(ip, &p) else {
            self.c.rx_invalid += 1;
            return Action::Release;
        };
        let (seq, ackn) = (p.tcp.seq, p.tcp.ack);
        let Some(s) = self.slot_of(flow) else {
            if !rst && (syn || fin || !payload.is_empty()) {
                self.c.stale += 1;
                self.reset_out(flow, if ack { ackn } else { 0 });
            } else {
                self.c.late_acks += 1;
            }
            return Action::Release;
        };
        if rst {
            self.c.rst_received += 1;
            self.set_state(s, St::Free);
            return Action::Release;
        }
        let st = self.conns[s].st;
        if st == St::SynSent {
            let c = self.conns[s];
            if syn && ack && ackn == c.snd_nxt {
                self.c.established += 1;
                self.connect_hist
                    .saturating_record(now_ns.saturating_sub(c.req_ns).clamp(1, MAX_RTT_NS));
                self.conns[s].rcv_nxt = seq.wrapping_add(1);
                // The handshake's ACK on its own, then the request, as a
                // kernel client (connect() returns, then write()). A request
                // riding on the handshake's ACK reaches a server before it
                // accepted the connection, and nginx then misses it until
                // more data comes (seen here: 1 in 30 connections stalled).
                self.ack_out(s, Ctl::Ack);
                if self.cfg.close || self.may_request() {
                    self.request_out(s, now_ns);
                } else {
                    // A request when its turn comes.
                    self.set_state(s, St::Idle);
                    self.idle.push_back(s as u32);
                }
            } else if ack {
                // Not the answer to our SYN (an old connection's): refuse it.
                self.reset_out(flow, ackn);
            }
            return Action::Release;
        }
        if syn {
            // A SYN-ACK again: our ACK (with the request) was lost or is
            // late; the request's retransmission covers it.
            return Action::Release;
        }
        if ack && st == St::Waiting && ackn == self.conns[s].snd_nxt {
            self.conns[s].acked = true;
        }
        if payload.is_empty() && !fin {
            return Action::Release;
        }
        let c = self.conns[s];
        if seq != c.rcv_nxt {
            // Old (our ACK was lost) or ahead of a lost segment: say where we are.
            self.c.out_of_order += 1;
            self.ack_out(s, Ctl::Ack);
            return Action::Release;
        }
        let plen = payload.len() as u32;
        let mut bad = false;
        let mut complete = false;
        if !payload.is_empty() {
            match st {
                St::Waiting => {
                    let left = if c.left == NO_HEADERS {
                        // What is still to come must fit the count (and not
                        // be its "no headers yet" value): 4 GiB and more is
                        // refused, not cut short.
                        let head = response_head(payload).and_then(|(status, total)| {
                            let rest = total.checked_sub(payload.len())?;
                            let rest = u32::try_from(rest).ok().filter(|&r| r != NO_HEADERS)?;
                            Some((status, rest))
                        });
                        match head {
                            Some((status, rest)) => {
                                if (200..300).contains(&status) {
                                    self.c.status_2xx += 1;
                                } else {
                                    self.c.status_other += 1;
                                }
                                rest
                            }
                            _ => {
                                bad = true;
                                0
                            }
                        }
                    } else if plen > c.left {
                        bad = true;
                        0
                    } else {
                        c.left - plen
                    };
                    self.conns[s].left = left;
                    complete = !bad && left == 0;
                }
                // Bytes nobody asked for.
                _ => bad = true,
            }
        }
        if bad {
            self.c.bad_responses += 1;
            self.reset_out(c.flow, c.snd_nxt);
            self.set_state(s, St::Free);
            return Action::Release;
        }
        let rcv = c.rcv_nxt.wrapping_add(plen).wrapping_add(u32::from(fin));
        self.conns[s].rcv_nxt = rcv;
        if complete {
            self.c.responses += 1;
            self.hist
                .saturating_record(now_ns.saturating_sub(c.req_ns).clamp(1, MAX_RTT_NS));
        }
        match (st, complete, fin) {
            // `--close` done, or a keep-alive connection the server closed
            // with its last response.
            (St::Waiting, true, true) | (St::AwaitFin, _, true) => {
                if self.cfg.close {
                    self.c.closed += 1;
                } else {
                    self.c.server_closed += 1;
                }
                self.ack_out(s, Ctl::Fin);
                self.set_state(s, St::Free);
            }
            (St::Waiting, true, false) if self.cfg.close => {
                self.conns[s].since_ns = now_ns;
                self.conns[s].tries = 1;
                self.set_state(s, St::AwaitFin);
            }
            (St::Waiting, true, false) => {
                // Idle until its turn; the ACK waits for the next request
                // or the delayed-ACK time.
                self.idle_conn(s, now_ns);
                self.dispatch(now_ns);
            }
            // Closed before the response was complete.
            (St::Waiting, false, true) => {
                self.c.bad_responses += 1;
                self.ack_out(s, Ctl::Fin);
                self.set_state(s, St::Free);
            }
            // More of the response to come: acknowledge what is here.
            (St::Waiting, false, false) => self.ack_out(s, Ctl::Ack),
            (St::Idle, _, true) => {
                self.c.server_closed += 1;
                self.ack_out(s, Ctl::Fin);
                self.set_state(s, St::Free);
            }
            _ => {}
        }
        Action::Release
    }

    /// Look at the next part of the slots for due retransmissions.
    fn scan_timers(&mut self, now: Instant) {
        if now < self.next_scan {
            return;
        }
        self.next_scan = now + SCAN_EVERY;
        let now_ns = self.ns(now);
        let n = self.conns.len();
        let part = n.div_ceil(SCAN_PARTS);
        for _ in 0..part {
            let s = self.scan_at;
            self.scan_at = (self.scan_at + 1) % n;
            let c = self.conns[s];
            if !matches!(c.st, St::SynSent | St::Waiting | St::AwaitFin) {
                continue;
            }
            if c.st == St::Waiting && c.acked {
                // The server has the request; the response comes when it
                // comes (the run's end bounds the wait).
                continue;
            }
            let rto = RTO.as_nanos() as u64 * (1u64 << c.tries.saturating_sub(1).min(10));
            if now_ns.saturating_sub(c.since_ns) < rto {
                continue;
            }
            if c.tries >= MAX_TRIES || c.st == St::AwaitFin {
                self.c.timeouts += 1;
                if c.st != St::SynSent {
                    self.reset_out(c.flow, c.snd_nxt);
                }
                self.set_state(s, St::Free);
                continue;
            }
            let cm = &mut self.conns[s];
            cm.tries += 1;
            cm.since_ns = now_ns;
            match c.st {
                St::SynSent => {
                    self.c.syn_retransmits += 1;
                    self.outs.push(Out {
                        flow: c.flow,
                        control: Ctl::Syn,
                        seq: c.snd_nxt.wrapping_sub(1),
                        ack: None,
                        request: false,
                    });
                }
                St::Waiting if c.left == NO_HEADERS => {
                    self.c.request_retransmits += 1;
                    self.outs.push(Out {
                        flow: c.flow,
                        control: Ctl::Ack,
                        seq: c.snd_nxt.wrapping_sub(self.cfg.request.len() as u32),
                        ack: Some(c.rcv_nxt),
                        request: true,
                    });
                }
                _ => self.ack_out(s, Ctl::Ack),
            }
        }
    }

    /// Open connections on free slots, as the pacer allows.
    fn connect(&mut self, now: Instant) {
        let want = self
            .connect_pacer
            .allowed(now)
            .min(self.cfg.batch as u64)
            .min(self.free.len() as u64);
        let now_ns = self.ns(now);
        let mut n = 0;
        while n < want {
            let Some(s) = self.free.pop_front() else {
                break;
            };
            let s = s as usize;
            if self.conns[s].st != St::Free {
                continue;
            }
            let opened = self.conns[s].opened;
            let flow = s as u32 + self.cfg.conns.max(1) * (opened % self.rounds);
            // Time-based, like Linux's: a 4-tuple that comes back starts
            // above where its last connection ended (a server in TIME-WAIT
            // takes it), also across runs (the clock is the wall clock, not
            // the run's: a second run counting from zero again had its
            // SYNs refused by the TIME-WAIT sockets the first one left).
            let isn = self.isn_base.wrapping_add((now_ns >> 4) as u32);
            let c = &mut self.conns[s];
            *c = Conn {
                st: St::Free,
                tries: 1,
                flow,
                opened: opened.wrapping_add(1),
                snd_nxt: isn.wrapping_add(1),
                rcv_nxt: 0,
                left: NO_HEADERS,
                since_ns: now_ns,
                req_ns: now_ns,
                ack_owed: false,
                acked: false,
            };
            self.outs.push(Out {
                flow,
                control: Ctl::Syn,
                seq: isn,
                ack: None,
                request: false,
            });
            self.set_state(s, St::SynSent);
            self.c.connects += 1;
            n += 1;
        }
        self.connect_pacer.consume(n);
    }

    /// Open loop: requests on idle connections, as the pacer allows.
    fn paced_requests(&mut self, now: Instant) {
        if self.cfg.close || self.cfg.rate == 0 {
            return;
        }
        let allowed = self.pacer.allowed(now).min(self.cfg.batch as u64);
        let now_ns = self.ns(now);
        let mut n = 0;
        while n < allowed {
            let Some(s) = self.idle.pop_front() else {
                // Due, but no connection is free to carry it.
                self.c.rate_missed += allowed - n;
                n = allowed;
                break;
            };
            let s = s as usize;
            if self.conns[s].st != St::Idle {
                continue;
            }
            self.request_out(s, now_ns);
            n += 1;
        }
        self.pacer.consume(n);
    }
}

impl<R: Rings> HttpClient<R> {
    /// A client on `port`; connections open from the first step on.
    pub fn new(port: Port<R>, cfg: HttpConfig) -> HttpClient<R> {
        HttpClient {
            port,
            frames: Vec::with_capacity(64),
            k: Core::new(cfg),
        }
    }

    /// Stop sending anything new now; what is outstanding is awaited.
    pub fn stop_sending(&mut self) {
        let now = Instant::now();
        if self.k.cfg.send_until > now {
            self.k.cfg.send_until = now;
        }
    }

    fn receive(&mut self, now: Instant) -> usize {
        let now_ns = self.k.ns(now);
        let mut total = 0;
        for _ in 0..RX_BATCHES {
            let n = self.port.recv(&mut self.frames);
            for i in 0..n {
                let f = self.frames[i];
                let mut action = Action::Release;
                let k = &mut self.k;
                // A frame `recv` returned is held: `read` cannot refuse it.
                let _ = self.port.read(f, |b| action = k.on_frame(b, now_ns));
                match action {
                    Action::Release => self.port.release(f),
                    Action::Neighbor => {
                        let len = f.len as usize;
                        let (mac, ours) = (self.k.cfg.our_mac, self.k.cfg.src_ips);
                        let mut ok = false;
                        self.port.reflect(f, |b| {
                            let r = neigh::answer_arp_if(b, len, mac, |a| ours.contains(a.into()))
                                .or_else(|| {
                                    neigh::answer_ndp_if(b, len, mac, |a| ours.contains(a.into()))
                                });
                            ok = r.is_some();
                            r
                        });
                        if ok {
                            self.k.c.neighbor_answered += 1;
                        }
                    }
                }
            }
            total += n;
            if n < self.port.batch() {
                break;
            }
        }
        total
    }

    /// Before the first SYN: an ARP request (NDP solicitation) for the
    /// server from each source address, so that the server knows where
    /// they are before connections come from them (a server that has to
    /// ask first drops the SYN-ACK it could not send, and the handshake
    /// waits for a retransmission).
    fn announce(&mut self) -> bool {
        let k = &mut self.k;
        let total = k.cfg.src_ips.len.clamp(1, ANNOUNCE_MAX);
        while k.announced < total {
            let src = k.cfg.src_ips.nth(k.announced);
            let (mac, dst) = (k.cfg.our_mac, k.cfg.dst);
            let ok = self.port.send_frame(128, |b| {
                b.fill(0);
                let _ = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => neigh::arp_request(b, mac, s, d),
                    (IpAddr::V6(s), IpAddr::V6(d)) => neigh::ndp_solicit(b, mac, s, d),
                    _ => None,
                };
            });
            if !ok {
                break;
            }
            k.announced += 1;
        }
        k.announced >= total
    }

    /// Write the queued segments into frames.
    fn emit(&mut self) {
        let mut done = 0;
        for i in 0..self.k.outs.len() {
            let o = self.k.outs[i];
            let (src, sport) = self.k.cfg.endpoint(o.flow);
            let payload: &[u8] = if o.request { &self.k.cfg.request } else { &[] };
            let tcp = TcpRepr {
                src_port: sport,
                dst_port: self.k.cfg.dst_port,
                control: match o.control {
                    Ctl::Syn => TcpControl::Syn,
                    Ctl::Fin => TcpControl::Fin,
                    Ctl::Rst => TcpControl::Rst,
                    Ctl::Ack if o.request => TcpControl::Psh,
                    Ctl::Ack => TcpControl::None,
                },
                seq_number: TcpSeqNumber(o.seq as i32),
                ack_number: o.ack.map(|a| TcpSeqNumber(a as i32)),
                window_len: if o.control == Ctl::Rst { 0 } else { WINDOW },
                window_scale: None,
                max_seg_size: (o.control == Ctl::Syn).then_some(MSS),
                sack_permitted: false,
                sack_ranges: [None; 3],
                timestamp: None,
                payload,
            };
            let len = frame_len(src, &tcp);
            let (our_mac, dst_mac, dst) = (self.k.cfg.our_mac, self.k.cfg.dst_mac, self.k.cfg.dst);
            let ok = self.port.send_frame(len, |b| {
                write_segment(b, our_mac, dst_mac, src, dst, &tcp);
            });
            if !ok {
                // No frame free: the rest waits for the next step.
                self.k.c.tx_blocked += 1;
                break;
            }
            done += 1;
        }
        self.k.outs.drain(..done);
        self.port.flush(|_, len| Some(len));
    }

    fn publish(&self) {
        let l = &self.k.cfg.live;
        l.sent.store(self.k.c.requests, Ordering::Relaxed);
        l.received.store(self.k.c.received, Ordering::Relaxed);
        l.answered.store(self.k.c.responses, Ordering::Relaxed);
        l.open.store(self.k.open, Ordering::Relaxed);
    }

    /// One round: receive, run the timers, open connections and send
    /// requests (while sending), transmit.
    pub fn step(&mut self, now: Instant) -> Step {
        let got = self.receive(now);
        self.k.scan_timers(now);
        let now_ns = self.k.ns(now);
        self.k.delayed_acks(now_ns);
        if self.k.all_open.is_none() && self.k.open >= u64::from(self.k.cfg.conns) {
            self.k.all_open = Some(now);
        }
        if self.k.sending && now >= self.k.cfg.send_until {
            self.k.sending = false;
            self.k.sent_until = Some(now);
            self.k.drain_until = Some(now + self.k.cfg.drain);
        }
        let mut made = self.k.outs.len();
        if self.k.sending && self.announce() {
            self.k.connect(now);
            self.k.paced_requests(now);
            made = self.k.outs.len();
        }
        self.emit();
        self.publish();
        if let Some(until) = self.k.drain_until {
            // Handshakes, requests and (`--close`) FINs all answered.
            if now >= until || self.k.outstanding == 0 {
                self.reset_all();
                return Step::Done;
            }
        }
        if got > 0 || made > 0 || self.port.pending_tx() > 0 {
            return Step::Busy;
        }
        let mut wait = self.k.next_scan.saturating_duration_since(now);
        if self.k.sending {
            wait = wait.min(self.k.cfg.send_until.saturating_duration_since(now));
            if !self.k.free.is_empty() {
                wait = wait.min(self.k.connect_pacer.wait_time(now));
            }
            if !self.k.cfg.close && self.k.cfg.rate > 0 {
                wait = wait.min(self.k.pacer.wait_time(now));
            }
        } else if let Some(until) = self.k.drain_until {
            wait = wait.min(until.saturating_duration_since(now));
        }
        if self.port.in_flight() > 0 {
            wait = wait.min(Duration::from_millis(1));
        }
        Step::Idle(wait)
    }

    /// Reset every connection still open (at the end).
    fn reset_all(&mut self) {
        for s in 0..self.k.conns.len() {
            let c = self.k.conns[s];
            if c.st == St::Free {
                continue;
            }
            if c.st != St::SynSent {
                self.k.reset_out(c.flow, c.snd_nxt);
            }
            self.k.set_state(s, St::Free);
            if self.k.outs.len() >= self.k.cfg.batch.max(1) {
                self.emit_all();
            }
        }
        self.emit_all();
    }

    /// Emit what is queued, waiting for frames if need be (bounded).
    fn emit_all(&mut self) {
        for _ in 0..1000 {
            self.emit();
            if self.k.outs.is_empty() {
                return;
            }
            // Frames were short: give the kernel a moment and try what was left.
            let _ = self.port.wait(1);
        }
    }

    /// Finish: check the frame accounting and hand back the report.
    pub fn finish(self) -> HttpReport {
        let epoch = self.k.cfg.epoch;
        let send_secs = send_secs(epoch, self.k.sent_until);
        HttpReport {
            frames: self.port.check(),
            port: self.port.stats(),
            send_secs,
            peak_open: self.k.peak_open,
            all_open_s: self
                .k
                .all_open
                .map(|t| t.saturating_duration_since(epoch).as_secs_f64()),
            hist: self.k.hist,
            connect_hist: self.k.connect_hist,
            counters: self.k.c,
        }
    }
}

impl<R: Rings> Generator for HttpClient<R> {
    fn stop_sending(&mut self) {
        HttpClient::stop_sending(self);
    }
    fn step(&mut self, now: Instant) -> Step {
        HttpClient::step(self, now)
    }
    fn wait(&mut self, ms: i32) {
        let _ = self.port.wait(ms);
    }
}

/// The TCP payload of `ip`, a packet [`parse_ip`] accepted as `p`: its last
/// `p.payload_len` bytes before where the IP header says the packet ends (a
/// short frame's Ethernet padding is not payload). Taken from the lengths
/// `parse_ip` checked, not parsed again.
pub(super) fn tcp_payload<'a>(ip: &'a [u8], p: &ParsedIp) -> Option<&'a [u8]> {
    let be16 = |at: usize| {
        ip.get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let end = match p.key.dst {
        // Total length.
        IpAddr::V4(_) => be16(2)?,
        // Payload length after the fixed header (parse_ip takes no
        // extension headers).
        IpAddr::V6(_) => 40 + be16(4)?,
    };
    ip.get(end.checked_sub(p.payload_len)?..end)
}

/// Bytes of the frame carrying `tcp` from `src` (Ethernet padding included).
pub(super) fn frame_len(src: IpAddr, tcp: &TcpRepr) -> usize {
    let ip = if src.is_ipv4() { 20 } else { 40 };
    (ETHERNET_HEADER_LEN + ip + tcp.buffer_len()).max(MIN_FRAME)
}

/// Write the Ethernet frame carrying `tcp` into `b` (exactly
/// [`frame_len`] bytes).
pub(super) fn write_segment(
    b: &mut [u8],
    our_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    tcp: &TcpRepr,
) {
    let caps = ChecksumCapabilities::default();
    let l3 = ETHERNET_HEADER_LEN;
    let l4 = l3 + if src.is_ipv4() { 20 } else { 40 };
    let end = l4 + tcp.buffer_len();
    if b.len() < end {
        return;
    }
    b[end..].fill(0);
    EthernetRepr {
        src_addr: EthernetAddress(our_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: if src.is_ipv4() {
            EthernetProtocol::Ipv4
        } else {
            EthernetProtocol::Ipv6
        },
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut b[..l3]));
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ipv4Repr {
            src_addr: s,
            dst_addr: d,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut b[l3..l4]), &caps),
        (IpAddr::V6(s), IpAddr::V6(d)) => Ipv6Repr {
            src_addr: s,
            dst_addr: d,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut b[l3..l4])),
        _ => return,
    }
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut b[l4..end]),
        &IpAddress::from(src),
        &IpAddress::from(dst),
        &caps,
    );
}
