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

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nic::{Frame, LedgerError, Port, PortStats, Rings};
use smoltcp::wire::{EthernetFrame, EthernetProtocol};
use stack::parse::{parse_ip, L4};

pub use super::gen::Step;
use super::gen::{new_histogram, MAX_RTT_NS};
use super::neigh::{self};
use super::pacer::Pacer;

mod client;
mod config;
mod wire;

pub use config::{
    dns_request_bytes, dns_response_head, request_bytes, response_head, HttpConfig, HttpCounters,
    Proto,
};
pub(crate) use wire::{frame_len, tcp_payload, write_segment};

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
                        let head = self.cfg.proto.head(payload).and_then(|(status, total)| {
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
        let dns = self.cfg.proto == Proto::Dns;
        match (st, complete, fin) {
            // DNS, `--close`: our FIN went with the answer's ACK; the
            // server's FIN ends it (our ACK of it, and the slot is free).
            (St::AwaitFin, _, true) if dns => {
                self.c.closed += 1;
                self.ack_out(s, Ctl::Ack);
                self.set_state(s, St::Free);
            }
            // DNS, `--close`: answered, so we close (RFC 7766 6.2.3: the
            // client closes; a server waits for that).
            (St::Waiting, true, false) if self.cfg.close && dns => {
                self.ack_out(s, Ctl::Fin);
                self.conns[s].since_ns = now_ns;
                self.conns[s].tries = 1;
                self.set_state(s, St::AwaitFin);
            }
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

    /// Open loop: requests on idle connections, as the pacer allows. Not
    /// capped at one TX batch per step: the closed loop (`dispatch`) sends
    /// on every idle connection at once, and with the cap an open loop far
    /// past the server's capacity (every connection busy, so it is that
    /// closed loop) answered 10-15% less than the closed loop on the same
    /// connections, the client's limit and not the server's.
    fn paced_requests(&mut self, now: Instant) {
        if self.cfg.close || self.cfg.rate == 0 {
            return;
        }
        let allowed = self.pacer.allowed(now);
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
