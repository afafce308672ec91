//! TCP: the connection table, admission (SYN queue, SYN cookies, accept
//! queue), state changes, timers, migration and the socket API.
//!
//! Each connection lives in a slot with its own one-socket smoltcp
//! `SocketSet`. smoltcp visits every socket of a set on every ingress
//! segment and every egress pass; with one socket per set a segment costs
//! one flow-table lookup and one socket, and an egress pass visits only the
//! connections on the dirty list (a segment arrived, the application read or
//! wrote, a timer fired). Each connection's next deadline (smoltcp's
//! `poll_at`, the handshake or close timeout) goes into a timing wheel (`crate::timer`).
//! Released slots keep their socket and its buffers for the next connection
//! (`listen` resets the rings without zeroing them), up to
//! `EngineConfig::pool` of them.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nic::Rings;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{tcp, Socket};
use smoltcp::time::{Duration as SDuration, Instant};
use smoltcp::wire::{
    IpAddress, IpListenEndpoint, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

use super::{Engine, Pkt};
use crate::flow::Owner;
use crate::handoff::Msg;
use crate::parse::{FlowKey, ParsedIp, Proto};
use crate::reuseport::{BindAddr, BindError, BindOptions, ListenerCounters, MemberId};
use crate::socket::{ConnError, ConnId, ListenerId};
use crate::timer::Timers;

/// Where a connection is in its life, as the engine sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// The slot is free.
    Free,
    /// SYN-RECEIVED: counted in its listener's SYN queue.
    HalfOpen,
    /// Established, on its listener's accept queue.
    Queued,
    /// Taken by the application.
    Accepted,
    /// Closed (or aborted) by the application, finishing the close.
    Closing,
}

pub(super) struct Slot {
    set: SocketSet<'static>,
    handle: Option<SocketHandle>,
    gen: u32,
    phase: Phase,
    key: FlowKey,
    member: MemberId,
    rx_core: usize,
    counters: Arc<ListenerCounters>,
    /// Handshake or close timeout.
    deadline: Option<Instant>,
    /// The sequence number of the peer's SYN, when this core saw it (tells
    /// a retransmitted SYN from a new attempt on the same 4-tuple, see
    /// `Engine::syn_restarts`; not known for a migrated connection).
    peer_isn: Option<u32>,
    dirty: bool,
    ready: bool,
}

/// The connection table of one core.
#[derive(Default)]
pub(super) struct Conns {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Free slots that still hold a socket.
    pooled: usize,
    live: usize,
    /// Slots in `Phase::Closing`.
    closing: usize,
    dirty: Vec<ConnId>,
    /// Spare list for `egress_conns` (dirty connections it leaves dirty).
    kept: Vec<ConnId>,
    timers: Timers,
    /// Each slot's timer state, beside the slots (see [`Mark`]).
    marks: Vec<Mark>,
    ready: Vec<ConnId>,
    track_ready: bool,
}

/// No time: no entry filed, or no deadline wanted.
const NEVER: i64 = i64::MAX;

/// A slot's timer state, kept in an array of its own: the time of its
/// earliest entry in the wheel and the deadline the connection wants now
/// (µs, [`NEVER`] for none), for the connection of generation `gen`.
///
/// A connection files an entry only when its deadline moves earlier. The
/// common move is later: each ACK pushes the retransmission deadline back,
/// so the entry filed for the old deadline comes up early. At 100,000
/// connections that happened about once per request, ten or more
/// milliseconds after the connection was last touched, and looking at the
/// slot and asking the socket again (`poll_at`) were cache misses: 4% of
/// the core. From the mark, an early entry is filed again at the wanted
/// time (or dropped when nothing is wanted) without touching either; this
/// array is 24 bytes a connection, so it stays in the caches far longer.
#[derive(Clone, Copy, Debug)]
struct Mark {
    gen: u32,
    filed: i64,
    want: i64,
}

impl Default for Mark {
    fn default() -> Self {
        Mark {
            gen: 0,
            filed: NEVER,
            want: NEVER,
        }
    }
}

impl Conns {
    /// Ask for `c`'s slot to be brought into the caches (the first step of
    /// a batch's prefetch passes, see `Engine::ingress`).
    pub(super) fn prefetch_slot(&self, c: ConnId) {
        if let Some(s) = self.slots.get(c.idx as usize) {
            nic::prefetch::value(s);
        }
    }

    /// Ask for `c`'s socket to be brought into the caches: all of it, since
    /// a segment's processing reads most of its lines. Reads the slot, so
    /// run [`Conns::prefetch_slot`] over the batch first.
    pub(super) fn prefetch_socket(&self, c: ConnId) {
        if let Some(h) = self.slot(c).and_then(|s| s.handle.map(|h| (s, h))) {
            nic::prefetch::value(h.0.set.get::<tcp::Socket>(h.1));
        }
    }

    pub(super) fn set_mut(&mut self, idx: u32) -> Option<&mut SocketSet<'static>> {
        self.slots.get_mut(idx as usize).map(|s| &mut s.set)
    }

    fn slot(&self, c: ConnId) -> Option<&Slot> {
        self.slots
            .get(c.idx as usize)
            .filter(|s| s.gen == c.gen && s.phase != Phase::Free)
    }

    fn slot_mut(&mut self, c: ConnId) -> Option<&mut Slot> {
        self.slots
            .get_mut(c.idx as usize)
            .filter(|s| s.gen == c.gen && s.phase != Phase::Free)
    }

    fn socket(&mut self, c: ConnId) -> Option<&mut tcp::Socket<'static>> {
        let s = self.slot_mut(c)?;
        let h = s.handle?;
        Some(s.set.get_mut::<tcp::Socket>(h))
    }

    fn state(&mut self, c: ConnId) -> Option<tcp::State> {
        self.socket(c).map(|s| s.state())
    }

    pub(super) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    pub(super) fn live(&self) -> usize {
        self.live
    }

    pub(super) fn pooled(&self) -> usize {
        self.pooled
    }

    pub(super) fn closing(&self) -> usize {
        self.closing
    }

    pub(super) fn timers_len(&self) -> usize {
        self.timers.len()
    }

    fn mark_dirty(&mut self, c: ConnId) {
        if let Some(s) = self.slot_mut(c) {
            if !s.dirty {
                s.dirty = true;
                self.dirty.push(c);
            }
        }
    }

    fn mark_ready(&mut self, c: ConnId) {
        if !self.track_ready {
            return;
        }
        if let Some(s) = self.slot_mut(c) {
            if s.phase == Phase::Accepted && !s.ready {
                s.ready = true;
                self.ready.push(c);
            }
        }
    }

    /// Wake `c` at `at` unless it already wakes earlier.
    fn schedule(&mut self, c: ConnId, at: Instant) {
        let Some(m) = self.mark_mut(c) else {
            return;
        };
        let t = at.total_micros();
        if t < m.filed {
            m.filed = t;
            self.timers.push(at, c.idx, c.gen);
        }
    }

    /// `c`'s timer state (not checking the slot's phase: a released slot's
    /// mark has moved on to the next generation).
    fn mark_mut(&mut self, c: ConnId) -> Option<&mut Mark> {
        self.marks
            .get_mut(c.idx as usize)
            .filter(|m| m.gen == c.gen)
    }

    /// Start slot `idx`'s timer state afresh for generation `gen`.
    fn reset_mark(&mut self, idx: u32, gen: u32) {
        if let Some(m) = self.marks.get_mut(idx as usize) {
            *m = Mark {
                gen,
                ..Mark::default()
            };
        }
    }
}

/// A TCP listener on this core: its accept queue (established, not yet
/// accepted) and its SYN queue count (half-open), bounded apart.
pub(super) struct Listener {
    port: u16,
    backlog: usize,
    syn_backlog: usize,
    accept_q: VecDeque<ConnId>,
    half_open: usize,
    pub(super) counters: Arc<ListenerCounters>,
    pub(super) draining: bool,
    /// When this listener last answered a SYN with a cookie: cookies are
    /// only checked for a while after (as Linux does), so a random ACK to
    /// a listener that never overflowed is not even looked at.
    cookies_sent_at: Option<Instant>,
}

/// How long after the last cookie sent ACKs are checked for one.
const COOKIE_WINDOW: SDuration = SDuration::from_secs(128);

impl<R: Rings> Engine<R> {
    // ---- the connection table ----

    /// A slot with a socket listening on `port` for exactly one SYN.
    fn alloc(&mut self, port: u16) -> Option<ConnId> {
        let idx = match self.conns.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.conns.slots.len()).ok()?;
                self.conns.slots.push(Slot {
                    set: SocketSet::new(Vec::with_capacity(1)),
                    handle: None,
                    gen: 0,
                    phase: Phase::Free,
                    key: FlowKey {
                        proto: Proto::Tcp,
                        src: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                        sport: 0,
                        dst: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                        dport: 0,
                    },
                    member: MemberId(0),
                    rx_core: 0,
                    counters: Arc::default(),
                    deadline: None,
                    peer_isn: None,
                    dirty: false,
                    ready: false,
                });
                self.conns.marks.push(Mark::default());
                i
            }
        };
        let (rx, tx) = (self.cfg.tcp_rx_buf, self.cfg.tcp_tx_buf);
        let slot = &mut self.conns.slots[idx as usize];
        let h = match slot.handle {
            Some(h) => {
                self.conns.pooled -= 1;
                h
            }
            None => {
                // A new socket and buffers; later connections reuse them.
                let s = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0u8; rx]),
                    tcp::SocketBuffer::new(vec![0u8; tx]),
                );
                let h = slot.set.add(s);
                slot.handle = Some(h);
                h
            }
        };
        let s = slot.set.get_mut::<tcp::Socket>(h);
        if s.is_open() {
            // Released without a close (expired handshake): silently.
            s.abort();
        }
        s.set_nagle_enabled(false);
        s.set_next_isn(None);
        s.set_congestion_control(self.cfg.congestion.to_smoltcp());
        // Created for exactly one admitted SYN: the demux already chose the
        // listener (and so the address), the socket only needs the port.
        let _ = s.listen(IpListenEndpoint { addr: None, port });
        slot.phase = Phase::HalfOpen;
        slot.deadline = None;
        slot.dirty = false;
        slot.ready = false;
        let gen = slot.gen;
        self.conns.reset_mark(idx, gen);
        self.conns.live += 1;
        Some(ConnId { idx, gen })
    }

    /// A free slot with no socket in it (for a socket migrating in).
    fn alloc_empty(&mut self, socket: tcp::Socket<'static>) -> Option<ConnId> {
        let c = self.alloc(0)?;
        let slot = &mut self.conns.slots[c.idx as usize];
        if let Some(h) = slot.handle.take() {
            slot.set.remove(h);
        }
        slot.handle = Some(slot.set.add(socket));
        Some(c)
    }

    /// Release a connection: its slot (socket and buffers kept for reuse,
    /// up to the pool bound), its flow entries, and the directory's.
    fn release(&mut self, c: ConnId) {
        let pool_full = self.conns.pooled >= self.cfg.pool;
        let Some(slot) = self.conns.slot_mut(c) else {
            return;
        };
        let key = slot.key;
        let rx_core = slot.rx_core;
        let phase = slot.phase;
        let member = slot.member;
        slot.phase = Phase::Free;
        slot.gen = slot.gen.wrapping_add(1);
        slot.deadline = None;
        slot.dirty = false;
        slot.ready = false;
        let mut pooled = false;
        if slot.handle.is_some() {
            if pool_full {
                // Enough spare sockets: give the memory back.
                slot.set = SocketSet::new(Vec::new());
                slot.handle = None;
            } else {
                pooled = true;
            }
        }
        if pooled {
            self.conns.pooled += 1;
        }
        self.conns.reset_mark(c.idx, c.gen.wrapping_add(1));
        self.conns.free.push(c.idx);
        self.conns.live -= 1;
        if phase == Phase::Closing {
            self.conns.closing -= 1;
        }
        if phase == Phase::HalfOpen {
            if let Some(l) = self.listeners.get_mut(&member) {
                l.half_open = l.half_open.saturating_sub(1);
            }
        }
        if self.flows.lookup(&key) == Some(Owner::Local(c)) {
            self.flows.remove(&key);
        }
        self.shared.directory.release(&key, self.core);
        self.announce_closed(key, rx_core);
    }

    /// Compare a connection's socket state with its phase after something
    /// happened to it; move it on (accept queue, release). A closing
    /// connection is released only after an egress pass (`sent`): the
    /// segment that closed it may still owe an ACK (the peer's FIN).
    fn settle(&mut self, c: ConnId, sent: bool) {
        let Some(state) = self.conns.state(c) else {
            return;
        };
        let Some(slot) = self.conns.slot_mut(c) else {
            return;
        };
        use tcp::State as S;
        match slot.phase {
            Phase::HalfOpen => match state {
                S::SynReceived => {}
                // Reset in SYN-RECEIVED (smoltcp turns it back into a
                // listening socket) or closed: a lost handshake.
                S::Listen | S::Closed | S::SynSent => {
                    self.counters.pending_lost += 1;
                    self.release(c);
                }
                _ => {
                    slot.phase = Phase::Queued;
                    slot.deadline = None;
                    let member = slot.member;
                    if let Some(l) = self.listeners.get_mut(&member) {
                        l.half_open = l.half_open.saturating_sub(1);
                        l.accept_q.push_back(c);
                    }
                }
            },
            Phase::Queued => {
                if matches!(state, S::Closed | S::Listen | S::TimeWait) {
                    // Reset before the application took it; its accept
                    // queue entry is stale now and skipped.
                    self.counters.pending_lost += 1;
                    self.release(c);
                }
            }
            Phase::Closing if !sent => {}
            Phase::Closing => match state {
                S::Closed => {
                    self.counters.closed += 1;
                    self.release(c);
                }
                S::TimeWait => {
                    self.counters.closed += 1;
                    self.counters.time_wait_reaped += 1;
                    self.release(c);
                }
                _ => {}
            },
            Phase::Accepted | Phase::Free => {}
        }
    }

    /// Whether a SYN (without ACK) for connection `c`'s 4-tuple starts a
    /// new connection, the peer having forgotten `c`:
    /// - `c` is closing and the peer's FIN is in (LAST-ACK, CLOSING,
    ///   TIME-WAIT): the peer has nothing more to send on `c`, and a SYN
    ///   from the same port means it is done with it (the ACK of our FIN was
    ///   lost, or it never sends one). Linux answers it with a challenge ACK
    ///   (RFC 5961), which a Linux client answers with a RST before sending
    ///   its SYN again a second later; a client that never resends a SYN
    ///   (`kxdpgun -T`, many load generators) loses the connection, and the
    ///   4-tuple stays blocked until the close times out, so a client going
    ///   round its ports loses one connection there on every round. Linux
    ///   accepts such a SYN in TIME-WAIT (RFC 1122 4.2.2.13); this takes it
    ///   from the states that lead there.
    /// - `c` is half-open and the SYN is not a retransmission of the one it
    ///   answers (another sequence number): the peer started over.
    ///
    /// Any other SYN goes to `c`, which answers it with a challenge ACK.
    pub(super) fn syn_restarts(&mut self, c: ConnId, p: &ParsedIp) -> bool {
        let state = self.conns.state(c);
        let Some(slot) = self.conns.slot(c) else {
            return false;
        };
        use tcp::State as S;
        match (slot.phase, state) {
            (Phase::Closing, Some(S::LastAck | S::Closing | S::TimeWait)) => true,
            (Phase::HalfOpen, Some(S::SynReceived)) => {
                slot.peer_isn.is_some_and(|isn| isn != p.tcp.seq)
            }
            _ => false,
        }
    }

    /// A SYN that [`Self::syn_restarts`] connection `c`: `c` is released
    /// (nothing is sent for it) and the SYN is routed afresh.
    pub(super) fn restart(&mut self, c: ConnId) {
        self.counters.syn_restarts += 1;
        match self.conns.slot(c).map(|s| s.phase) {
            Some(Phase::Closing) => self.counters.closed += 1,
            Some(Phase::HalfOpen) => self.counters.pending_lost += 1,
            _ => {}
        }
        self.release(c);
    }

    /// A segment for connection `c`.
    pub(super) fn deliver(&mut self, c: ConnId, pkt: Pkt) {
        self.feed(Some(c.idx), pkt);
        self.conns.mark_dirty(c);
        self.conns.mark_ready(c);
        self.settle(c, false);
    }

    /// Fire the due timers: a due connection goes on the dirty list, an
    /// expired handshake is dropped, an expired close is reset.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some(e) = self.conns.timers.pop_due(now) {
            let c = ConnId {
                idx: e.slot,
                gen: e.gen,
            };
            let Some(m) = self.conns.mark_mut(c) else {
                continue;
            };
            if m.filed != e.at {
                // Stale: an earlier entry replaced it.
                continue;
            }
            m.filed = NEVER;
            if m.want > now.total_micros() {
                // Up early: the deadline moved later (or went away) since
                // this entry was filed. File the wanted one, if any.
                self.counters.timer_early += 1;
                let want = m.want;
                if want != NEVER {
                    self.conns.schedule(c, Instant::from_micros(want));
                }
                continue;
            }
            let Some(slot) = self.conns.slot_mut(c) else {
                continue;
            };
            self.counters.timer_fires += 1;
            let expired = slot.deadline.is_some_and(|d| d <= now);
            match (expired, slot.phase) {
                (true, Phase::HalfOpen) => {
                    // As Linux after its SYN-ACK retries: gone, silently.
                    self.counters.syn_timeouts += 1;
                    self.release(c);
                }
                (true, Phase::Closing) => {
                    // The peer never finished the close: reset. The RST goes
                    // out on this egress, then the connection is released.
                    slot.deadline = None;
                    if let Some(s) = self.conns.socket(c) {
                        s.abort();
                    }
                    self.counters.close_timeouts += 1;
                    self.conns.mark_dirty(c);
                }
                // Due by the mark; the socket says when (an early entry
                // whose deadline moved without an egress pass is filed
                // again at the new time, without one).
                _ => self.reschedule(c, now, false, true),
            }
        }
    }

    /// When the earliest current timer comes due, dropping stale entries
    /// on the way.
    pub(super) fn next_timer(&mut self, now: Instant) -> Option<Instant> {
        let Conns { timers, marks, .. } = &mut self.conns;
        timers
            .next_due(|e| {
                marks
                    .get(e.slot as usize)
                    .is_some_and(|m| m.gen == e.gen && m.filed == e.at)
            })
            .map(|t| t.max(now))
    }

    /// One egress pass over the connections with work.
    pub(super) fn egress_conns(&mut self, now: Instant, accepted_too: bool) {
        let dirty = std::mem::take(&mut self.conns.dirty);
        let mut kept = std::mem::take(&mut self.conns.kept);
        kept.clear();
        for (i, &c) in dirty.iter().enumerate() {
            if !self.port.can_send() {
                self.flush_tx(now.total_millis() as u64);
                if !self.port.can_send() {
                    // No frame to build into until the kernel sends some:
                    // the rest (still marked dirty) waits for the next pass.
                    self.counters.egress_tx_full += 1;
                    self.conns.dirty.extend_from_slice(&dirty[i..]);
                    break;
                }
            }
            let Some(slot) = self.conns.slot_mut(c) else {
                continue;
            };
            if !accepted_too && slot.phase == Phase::Accepted {
                // Stays dirty for the pass after the application runs.
                kept.push(c);
                continue;
            }
            slot.dirty = false;
            self.counters.egress_visits += 1;
            let mut emitted = false;
            {
                let Engine {
                    iface, port, conns, ..
                } = self;
                let set = &mut conns.slots[c.idx as usize].set;
                for _ in 0..64 {
                    let r = iface.poll_egress(now, &mut port.device(None), set);
                    if r == smoltcp::iface::PollResult::None {
                        break;
                    }
                    emitted = true;
                }
            }
            self.settle(c, true);
            self.reschedule(c, now, emitted, false);
        }
        // The kept ones and those marked during the pass are the new list;
        // the two lists' allocations are reused.
        kept.append(&mut self.conns.dirty);
        let mut dirty = dirty;
        dirty.clear();
        self.conns.dirty = kept;
        self.conns.kept = dirty;
    }

    /// Put a connection's next deadline in the timer wheel; one already due
    /// goes on the dirty list when `due_is_work` or something went out.
    fn reschedule(&mut self, c: ConnId, now: Instant, emitted: bool, due_is_work: bool) {
        let Some(slot) = self.conns.slots.get(c.idx as usize) else {
            return;
        };
        if slot.gen != c.gen || slot.phase == Phase::Free {
            return;
        }
        let at = self.iface.poll_at(now, &slot.set);
        let at = match (at, slot.deadline) {
            (Some(a), Some(d)) => Some(a.min(d)),
            (a, d) => a.or(d),
        };
        if let Some(m) = self.conns.mark_mut(c) {
            m.want = at.map_or(NEVER, |t| t.total_micros());
        }
        match at {
            None => {}
            Some(t) if t <= now => {
                if emitted || due_is_work {
                    // More to send (the pass stopped at its bound or the
                    // ring was full): the next pass goes on.
                    self.conns.mark_dirty(c);
                } else if !self.port.can_send() {
                    // No frame to build into: the next pass, after the
                    // kernel sent some.
                    self.conns.mark_dirty(c);
                } else {
                    // Due but nothing went out though it could: retry soon
                    // rather than spin.
                    self.counters.egress_stalls += 1;
                    self.conns.schedule(c, now + SDuration::from_millis(1));
                }
            }
            Some(t) => self.conns.schedule(c, t),
        }
    }

    /// This core owns `key` through connection `c`.
    fn own_flow(&mut self, key: FlowKey, c: ConnId, rx_core: usize) {
        self.flows.insert(key, Owner::Local(c));
        self.announce_owner(key, rx_core);
    }

    fn setup_slot(
        &mut self,
        c: ConnId,
        key: FlowKey,
        m: MemberId,
        rx_core: usize,
        counters: Arc<ListenerCounters>,
        peer_isn: Option<u32>,
    ) {
        let slot = &mut self.conns.slots[c.idx as usize];
        slot.key = key;
        slot.peer_isn = peer_isn;
        slot.member = m;
        slot.rx_core = rx_core;
        slot.counters = counters;
    }

    // ---- admission ----

    /// A SYN for listener `m` on this core. The accept queue full: dropped
    /// (the client retries). The SYN queue full: a SYN cookie, or dropped.
    /// Else a connection in SYN-RECEIVED that expires after `syn_timeout`.
    pub(super) fn admit(&mut self, pkt: Pkt, p: &ParsedIp, m: MemberId, rx_core: usize) {
        let key = p.key;
        let now = self.now;
        let Some(l) = self.listeners.get_mut(&m) else {
            return self.release_pkt(pkt);
        };
        if l.accept_q.len() >= l.backlog {
            l.counters.dropped.fetch_add(1, Ordering::Relaxed);
            self.counters.syn_backlog_full += 1;
            return self.release_pkt(pkt);
        }
        if l.half_open >= l.syn_backlog {
            if self.cfg.syncookies {
                l.cookies_sent_at = Some(now);
                self.send_cookie(p);
            } else {
                l.counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.counters.syn_queue_full += 1;
            }
            return self.release_pkt(pkt);
        }
        if self.conns.live >= self.cfg.max_conns {
            l.counters.dropped.fetch_add(1, Ordering::Relaxed);
            self.counters.conn_limit += 1;
            return self.release_pkt(pkt);
        }
        let port = l.port;
        let counters = l.counters.clone();
        // One owner per 4-tuple in the whole process: if another core took
        // this flow already (its SYN came in on another queue first), the
        // flow is theirs.
        let owner = self.shared.directory.claim(key, self.core);
        if owner != self.core {
            self.counters.rehashed += 1;
            self.remember_remote(key, owner);
            self.forward(owner, pkt, *p, None, rx_core, 0);
            return;
        }
        let Some(c) = self.alloc(port) else {
            self.shared.directory.release(&key, self.core);
            return self.release_pkt(pkt);
        };
        self.setup_slot(c, key, m, rx_core, counters, Some(p.tcp.seq));
        if let Some(l) = self.listeners.get_mut(&m) {
            l.half_open += 1;
        }
        self.feed(Some(c.idx), pkt);
        if self.conns.state(c) != Some(tcp::State::SynReceived) {
            // smoltcp did not take it (e.g. not for one of our addresses).
            self.release(c);
            return;
        }
        if let Some(s) = self.conns.slot_mut(c) {
            s.deadline =
                Some(now + SDuration::from_micros(self.cfg.syn_timeout.as_micros() as u64));
        }
        self.own_flow(key, c, rx_core);
        self.conns.mark_dirty(c);
    }

    /// Answer a SYN with a SYN-ACK whose sequence number is a cookie; keep
    /// nothing.
    fn send_cookie(&mut self, p: &ParsedIp) {
        let key = p.key;
        let now_s = (self.now.total_millis() / 1000) as u64;
        let client_isn = p.tcp.seq;
        let (cookie, _mss) = self.shared.cookies.make(&key, client_isn, p.tcp.mss, now_s);
        let our_mss = match key.dst {
            IpAddr::V4(_) => self.port.config().mtu.saturating_sub(40),
            IpAddr::V6(_) => self.port.config().mtu.saturating_sub(60),
        };
        let tcp = TcpRepr {
            src_port: key.dport,
            dst_port: key.sport,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(cookie as i32),
            ack_number: Some(TcpSeqNumber(client_isn.wrapping_add(1) as i32)),
            window_len: self.cfg.tcp_rx_buf.min(65535) as u16,
            window_scale: None,
            max_seg_size: Some(our_mss.min(65535) as u16),
            sack_permitted: false,
            sack_ranges: [None, None, None],
            timestamp: None,
            payload: &[],
        };
        if self.send_tcp(key.dst, key.src, &tcp) {
            self.counters.syncookies_sent += 1;
        } else {
            self.counters.syncookies_unsent += 1;
        }
    }

    /// Emit one TCP segment we build ourselves (cookie SYN-ACKs).
    fn send_tcp(&mut self, src: IpAddr, dst: IpAddr, tcp: &TcpRepr) -> bool {
        let Some(len) = ip_tcp_len(src, dst, tcp) else {
            return false;
        };
        self.port
            .send_ip(len, |buf| emit_ip_tcp(buf, src, dst, tcp))
    }

    /// An ACK with no connection, for listener `m`: if it returns a valid
    /// cookie, build the connection (a socket given the cookie as its ISN
    /// takes the SYN the cookie stands for, then this ACK) and queue it.
    /// Anything else gets smoltcp's RST.
    pub(super) fn cookie_ack(&mut self, pkt: Pkt, p: &ParsedIp, m: MemberId, rx_core: usize) {
        let key = p.key;
        let now = self.now;
        let recent = self.listeners.get(&m).and_then(|l| {
            l.cookies_sent_at
                .filter(|&t| now - t <= COOKIE_WINDOW || t > now)
                .map(|_| (l.port, l.counters.clone(), l.accept_q.len() >= l.backlog))
        });
        let Some((port, counters, full)) = recent else {
            return self.feed(None, pkt);
        };
        let client_isn = p.tcp.seq.wrapping_sub(1);
        let cookie = p.tcp.ack.wrapping_sub(1);
        let now_s = (now.total_millis() / 1000) as u64;
        let Some(mss) = self.shared.cookies.check(&key, client_isn, cookie, now_s) else {
            self.counters.syncookies_bad += 1;
            return self.feed(None, pkt);
        };
        if full {
            // As Linux: the ACK is dropped, the client retransmits.
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            self.counters.syn_backlog_full += 1;
            return self.release_pkt(pkt);
        }
        if self.shared.directory.claim(key, self.core) != self.core {
            return self.release_pkt(pkt);
        }
        let Some(c) = self.alloc(port) else {
            self.shared.directory.release(&key, self.core);
            return self.release_pkt(pkt);
        };
        self.setup_slot(c, key, m, rx_core, counters, Some(client_isn));
        if let Some(l) = self.listeners.get_mut(&m) {
            l.half_open += 1;
        }
        if let Some(s) = self.conns.socket(c) {
            s.set_next_isn(Some(TcpSeqNumber(cookie as i32)));
        }
        let syn = self.syn_for_cookie(&key, client_isn, mss, p.tcp.window);
        self.feed(Some(c.idx), Pkt::Bytes(syn));
        if self.conns.state(c) != Some(tcp::State::SynReceived) {
            self.release(c);
            return self.release_pkt(pkt);
        }
        self.own_flow(key, c, rx_core);
        self.feed(Some(c.idx), pkt);
        self.conns.mark_dirty(c);
        self.settle(c, false);
        if self.conns.slot(c).is_some_and(|s| s.phase == Phase::Queued) {
            self.counters.syncookies_ok += 1;
        } else {
            self.counters.syncookies_bad += 1;
            if let Some(s) = self.conns.socket(c) {
                s.abort();
            }
            self.release(c);
        }
    }

    /// The SYN a cookie stands for: the client's ISN and the MSS the cookie
    /// kept; no window scaling or SACK (the cookie SYN-ACK offered neither).
    fn syn_for_cookie(&mut self, key: &FlowKey, client_isn: u32, mss: u16, window: u16) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: key.sport,
            dst_port: key.dport,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(client_isn as i32),
            ack_number: None,
            window_len: window,
            window_scale: None,
            max_seg_size: Some(mss),
            sack_permitted: false,
            sack_ranges: [None, None, None],
            timestamp: None,
            payload: &[],
        };
        let mut buf = self.buffer();
        if let Some(len) = ip_tcp_len(key.src, key.dst, &tcp) {
            buf.resize(len, 0);
            emit_ip_tcp(&mut buf, key.src, key.dst, &tcp);
        }
        buf
    }

    // ---- migration ----

    fn migrate_out(&mut self, from: MemberId, c: ConnId) {
        let Some(slot) = self.conns.slot(c) else {
            return;
        };
        let key = slot.key;
        let phase = slot.phase;
        let rx_core = slot.rx_core;
        let from_counters = slot.counters.clone();
        let target = self.shared.registry.migration_target(from, &key, self.core);
        let Some(t) = target else {
            // Nobody left to take it: reset, as Linux resets the queue.
            self.reset_pending(c);
            from_counters.reset.fetch_add(1, Ordering::Relaxed);
            self.counters.migration_resets += 1;
            return;
        };
        from_counters.migrated_out.fetch_add(1, Ordering::Relaxed);
        self.counters.migrated_out += 1;
        if t.core == self.core {
            if let Some(l) = self.listeners.get_mut(&t.member) {
                l.counters.migrated_in.fetch_add(1, Ordering::Relaxed);
                let counters = l.counters.clone();
                match phase {
                    Phase::HalfOpen => l.half_open += 1,
                    _ => l.accept_q.push_back(c),
                }
                self.counters.migrated_in += 1;
                if let Some(s) = self.conns.slot_mut(c) {
                    s.member = t.member;
                    s.counters = counters;
                }
                return;
            }
        }
        // To another core: the socket travels; the slot is freed here
        // without telling anyone the flow closed.
        let slot = &mut self.conns.slots[c.idx as usize];
        let Some(h) = slot.handle.take() else {
            return;
        };
        let Socket::Tcp(sock) = slot.set.remove(h) else {
            return;
        };
        slot.phase = Phase::Free;
        slot.gen = slot.gen.wrapping_add(1);
        slot.deadline = None;
        slot.dirty = false;
        self.conns.reset_mark(c.idx, c.gen.wrapping_add(1));
        self.conns.free.push(c.idx);
        self.conns.live -= 1;
        let msg = Msg::Migrate {
            socket: Box::new(sock),
            key,
            to: t.member,
            rx_core,
        };
        match self.shared.mesh.send(self.core, t.core, msg) {
            Ok(()) => {
                self.shared.directory.moved(key, t.core);
                self.remember_remote(key, t.core);
            }
            Err(Msg::Migrate { mut socket, .. }) => {
                // Could not hand it over: reset it here.
                socket.abort();
                self.counters.migration_resets += 1;
                if let Some(c) = self.alloc_empty(*socket) {
                    self.setup_slot(c, key, from, rx_core, from_counters, None);
                    self.start_closing(c);
                    self.flows.insert(key, Owner::Local(c));
                    self.conns.mark_dirty(c);
                }
            }
            Err(_) => {}
        }
    }

    /// Reset a connection nobody accepted (its listener is gone).
    fn reset_pending(&mut self, c: ConnId) {
        if let Some(s) = self.conns.socket(c) {
            s.abort();
        }
        self.start_closing(c);
        self.conns.mark_dirty(c);
    }

    pub(super) fn migrate_in(
        &mut self,
        socket: tcp::Socket<'static>,
        key: FlowKey,
        to: MemberId,
        rx_core: usize,
    ) {
        let half_open = socket.state() == tcp::State::SynReceived;
        let Some(c) = self.alloc_empty(socket) else {
            return;
        };
        let now = self.now;
        let Some(l) = self.listeners.get_mut(&to) else {
            // The target closed meanwhile: nobody can accept it.
            self.setup_slot(c, key, to, rx_core, Arc::default(), None);
            self.counters.migration_resets += 1;
            self.reset_pending(c);
            self.own_flow(key, c, rx_core);
            return;
        };
        l.counters.migrated_in.fetch_add(1, Ordering::Relaxed);
        let counters = l.counters.clone();
        if half_open {
            l.half_open += 1;
        } else {
            l.accept_q.push_back(c);
        }
        self.counters.migrated_in += 1;
        self.setup_slot(c, key, to, rx_core, counters, None);
        if let Some(s) = self.conns.slot_mut(c) {
            if half_open {
                s.deadline =
                    Some(now + SDuration::from_micros(self.cfg.syn_timeout.as_micros() as u64));
            } else {
                s.phase = Phase::Queued;
            }
        }
        self.own_flow(key, c, rx_core);
        self.conns.mark_dirty(c);
    }

    fn start_closing(&mut self, c: ConnId) {
        let now = self.now;
        let timeout = SDuration::from_micros(self.cfg.close_timeout.as_micros() as u64);
        let Some(s) = self.conns.slot_mut(c) else {
            return;
        };
        if s.phase == Phase::HalfOpen {
            let member = s.member;
            if let Some(l) = self.listeners.get_mut(&member) {
                l.half_open = l.half_open.saturating_sub(1);
            }
        }
        let s = &mut self.conns.slots[c.idx as usize];
        if s.phase != Phase::Closing {
            s.phase = Phase::Closing;
            s.deadline = Some(now + timeout);
            self.conns.closing += 1;
        }
    }

    // ---- socket API: TCP listeners ----

    /// Open a TCP listener on `addr:port`, joining the port's reuseport group
    /// when the bind rules allow it.
    pub fn tcp_listen(
        &mut self,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<ListenerId, BindError> {
        let backlog = opts.backlog;
        let (id, counters) = self.bind_member(Proto::Tcp, addr, port, opts)?;
        let syn_backlog = match self.cfg.syn_backlog {
            0 => backlog,
            n => n,
        };
        self.listeners.insert(
            id,
            Listener {
                port,
                backlog,
                syn_backlog,
                accept_q: VecDeque::new(),
                half_open: 0,
                counters,
                draining: false,
                cookies_sent_at: None,
            },
        );
        Ok(ListenerId(id))
    }

    /// Take an established connection off the listener's accept queue.
    pub fn accept(&mut self, id: ListenerId) -> Option<ConnId> {
        loop {
            let l = self.listeners.get_mut(&id.0)?;
            let c = l.accept_q.pop_front()?;
            let counters = l.counters.clone();
            let Some(slot) = self.conns.slot_mut(c) else {
                continue; // reset before it was accepted
            };
            if slot.phase != Phase::Queued || slot.member != id.0 {
                continue;
            }
            slot.phase = Phase::Accepted;
            counters.accepted.fetch_add(1, Ordering::Relaxed);
            self.counters.accepted += 1;
            return Some(c);
        }
    }

    /// Give an accepted connection back to its group as if it had never
    /// been accepted: it migrates as a closing listener's queue does (to a
    /// live member of the group, on this core if there is one; reset when
    /// none is left). For a relay (the daemon's proxy) whose consumer went
    /// away or closed its listener before taking a connection it was
    /// offered; the application must not have read or written it. The
    /// listener must still be bound (drain it first so it is not chosen).
    pub fn requeue(&mut self, c: ConnId) -> Result<(), ConnError> {
        let Some(s) = self.conns.slot_mut(c) else {
            return Err(ConnError::NotFound);
        };
        if s.phase != Phase::Accepted {
            return Err(ConnError::NotFound);
        }
        s.phase = Phase::Queued;
        let member = s.member;
        self.migrate_out(member, c);
        Ok(())
    }

    /// Connections waiting on the listener: handshaking (SYN queue) or
    /// established on the accept queue.
    pub fn pending(&self, id: ListenerId) -> usize {
        self.listeners.get(&id.0).map_or(0, |l| {
            let queued = l
                .accept_q
                .iter()
                .filter(|&&c| {
                    self.conns
                        .slot(c)
                        .is_some_and(|s| s.phase == Phase::Queued && s.member == id.0)
                })
                .count();
            queued + l.half_open
        })
    }

    /// Stop taking new flows on this listener; its queued connections stay
    /// and can still be accepted (graceful drain).
    pub fn drain(&mut self, id: ListenerId) -> Result<(), BindError> {
        self.shared.registry.drain(id.0)?;
        if let Some(l) = self.listeners.get_mut(&id.0) {
            l.draining = true;
        }
        Ok(())
    }

    /// Close a listener. Its not-yet-accepted connections (handshaking or
    /// established) migrate to another live member of its group (on this
    /// core when there is one); with none left they are reset.
    pub fn close_listener(&mut self, id: ListenerId) -> Result<(), BindError> {
        let id = id.0;
        if !self.listeners.contains_key(&id) {
            return Err(BindError::NoSuchMember);
        }
        // Out of selection first, so no new flow picks it meanwhile.
        let _ = self.shared.registry.drain(id);
        // A rare operation: one walk over the table finds its connections.
        let pending: Vec<ConnId> = self
            .conns
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.member == id && matches!(s.phase, Phase::HalfOpen | Phase::Queued))
            .map(|(i, s)| ConnId {
                idx: i as u32,
                gen: s.gen,
            })
            .collect();
        if let Some(l) = self.listeners.get_mut(&id) {
            l.accept_q.clear();
            l.half_open = 0;
        }
        for c in pending {
            self.migrate_out(id, c);
        }
        self.retire(id)?;
        self.listeners.remove(&id);
        Ok(())
    }

    // ---- socket API: TCP connections ----

    fn app_socket(&mut self, c: ConnId) -> Result<&mut tcp::Socket<'static>, ConnError> {
        match self.conns.slot(c).map(|s| s.phase) {
            Some(Phase::Accepted | Phase::Closing) => {}
            _ => return Err(ConnError::NotFound),
        }
        self.conns.socket(c).ok_or(ConnError::NotFound)
    }

    /// Read into `buf`. `Ok(0)` means nothing to read now; `Err(Closed)` means
    /// the peer finished sending and everything was read.
    pub fn recv(&mut self, c: ConnId, buf: &mut [u8]) -> Result<usize, ConnError> {
        let s = self.app_socket(c)?;
        if s.can_recv() {
            let n = s.recv_slice(buf).map_err(|_| ConnError::Closed)?;
            if let Some(slot) = self.conns.slot(c) {
                slot.counters
                    .bytes_in
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            // The window opened: an update may be owed.
            self.conns.mark_dirty(c);
            return Ok(n);
        }
        if s.may_recv() {
            Ok(0)
        } else {
            Err(ConnError::Closed)
        }
    }

    /// Queue `data`; returns how much fit in the send buffer.
    pub fn send(&mut self, c: ConnId, data: &[u8]) -> Result<usize, ConnError> {
        let s = self.app_socket(c)?;
        if !s.may_send() {
            return Err(ConnError::Closed);
        }
        let n = s.send_slice(data).map_err(|_| ConnError::Closed)?;
        if let Some(slot) = self.conns.slot(c) {
            slot.counters
                .bytes_out
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        self.conns.mark_dirty(c);
        Ok(n)
    }

    /// Bytes queued and not yet acknowledged.
    pub fn send_queue(&mut self, c: ConnId) -> Result<usize, ConnError> {
        Ok(self.app_socket(c)?.send_queue())
    }

    /// Whether the peer may still send (not FIN'd).
    pub fn may_recv(&mut self, c: ConnId) -> Result<bool, ConnError> {
        Ok(self.app_socket(c)?.may_recv())
    }

    /// The peer's address.
    pub fn peer(&mut self, c: ConnId) -> Result<Option<smoltcp::wire::IpEndpoint>, ConnError> {
        Ok(self.app_socket(c)?.remote_endpoint())
    }

    /// The listener that admitted the connection.
    pub fn listener_of(&self, c: ConnId) -> Option<ListenerId> {
        self.conns.slot(c).map(|s| ListenerId(s.member))
    }

    /// Send FIN after the queued data (no more writes); reading goes on.
    pub fn shutdown(&mut self, c: ConnId) -> Result<(), ConnError> {
        self.app_socket(c)?.close();
        self.conns.mark_dirty(c);
        Ok(())
    }

    /// Close: FIN after queued data; the connection is released once closed
    /// (TIME_WAIT is not kept). A peer that never finishes the close is
    /// reset after `EngineConfig::close_timeout`.
    pub fn close(&mut self, c: ConnId) {
        let already = self
            .conns
            .slot(c)
            .is_some_and(|s| s.phase == Phase::Closing);
        let full = !already && self.conns.closing >= self.cfg.max_orphans;
        if let Some(s) = self.conns.socket(c) {
            if full {
                // Too many connections still finishing a close (Linux
                // resets orphans past `tcp_max_orphans`).
                s.abort();
                self.counters.orphans_reset += 1;
            } else {
                s.close();
            }
            self.start_closing(c);
            self.conns.mark_dirty(c);
        }
    }

    /// Reset the connection and release it.
    pub fn abort(&mut self, c: ConnId) {
        if let Some(s) = self.conns.socket(c) {
            s.abort();
            self.start_closing(c);
            self.conns.mark_dirty(c);
        }
    }

    /// TCP connections this engine holds: handshaking, waiting to be
    /// accepted, open, or closed by the application but not finished
    /// closing yet. Zero once every connection is gone (a graceful stop
    /// waits for this).
    pub fn connections(&self) -> usize {
        self.conns.live
    }

    /// Connections held now by phase: half-open, queued (not accepted),
    /// accepted, closing.
    pub fn phases(&self) -> [usize; 4] {
        let mut n = [0; 4];
        for s in &self.conns.slots {
            match s.phase {
                Phase::HalfOpen => n[0] += 1,
                Phase::Queued => n[1] += 1,
                Phase::Accepted => n[2] += 1,
                Phase::Closing => n[3] += 1,
                Phase::Free => {}
            }
        }
        n
    }

    /// A line per closing connection: flow, socket state, receiving core,
    /// whether it waits for a pass or a timer (diagnosis of slow stops).
    pub fn closing_report(&self) -> Vec<String> {
        self.conns
            .slots
            .iter()
            .filter(|s| s.phase == Phase::Closing)
            .map(|s| {
                let st = s.handle.map(|h| s.set.get::<tcp::Socket>(h).state());
                format!(
                    "{}:{} state {:?} rx_core {} dirty {} deadline {:?} flow {:?}",
                    s.key.src,
                    s.key.sport,
                    st,
                    s.rx_core,
                    s.dirty,
                    s.deadline,
                    self.flows.lookup(&s.key),
                )
            })
            .collect()
    }

    /// The flows of the connections this engine holds (any state).
    pub fn local_flows(&self) -> Vec<FlowKey> {
        self.conns
            .slots
            .iter()
            .filter(|s| s.phase != Phase::Free)
            .map(|s| s.key)
            .collect()
    }

    /// Record which accepted connections receive segments, for
    /// [`Engine::take_ready`]. Off by default (nothing is recorded).
    pub fn set_ready_tracking(&mut self, on: bool) {
        self.conns.track_ready = on;
        if !on {
            for c in std::mem::take(&mut self.conns.ready) {
                if let Some(s) = self.conns.slot_mut(c) {
                    s.ready = false;
                }
            }
        }
    }

    /// Move into `out` the accepted connections that had activity since the
    /// last call: a segment arrived for them (data, an acknowledgement that
    /// freed send buffer space, a window update, FIN or RST). Each appears
    /// once; a connection released meanwhile does not appear. Needs
    /// [`Engine::set_ready_tracking`]; newly accepted connections are not
    /// listed (the application looks at them when it accepts them).
    pub fn take_ready(&mut self, out: &mut Vec<ConnId>) {
        for c in self.conns.ready.drain(..) {
            if let Some(s) = self
                .conns
                .slots
                .get_mut(c.idx as usize)
                .filter(|s| s.gen == c.gen && s.phase != Phase::Free)
            {
                s.ready = false;
                out.push(c);
            }
        }
    }

    /// Abort every connection and close every listener (shutdown).
    pub fn abort_all(&mut self) {
        let ids: Vec<MemberId> = self.listeners.keys().copied().collect();
        for id in ids {
            let _ = self.close_listener(ListenerId(id));
        }
        let live: Vec<ConnId> = self
            .conns
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.phase != Phase::Free)
            .map(|(i, s)| ConnId {
                idx: i as u32,
                gen: s.gen,
            })
            .collect();
        for c in live {
            self.abort(c);
        }
        let ids: Vec<MemberId> = self.udp.keys().copied().collect();
        for id in ids {
            let _ = self.udp_close(crate::socket::UdpId(id));
        }
    }
}

/// Length of an IP packet (no options) carrying `tcp` from `src` to `dst`;
/// `None` for addresses of two families.
fn ip_tcp_len(src: IpAddr, dst: IpAddr, tcp: &TcpRepr) -> Option<usize> {
    let ip = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => 20,
        (IpAddr::V6(_), IpAddr::V6(_)) => 40,
        _ => return None,
    };
    Some(ip + tcp.buffer_len())
}

/// Write an IP header and `tcp` (checksums computed) into `buf`, which is
/// `ip_tcp_len` long. Addresses of two families write nothing.
fn emit_ip_tcp(buf: &mut [u8], src: IpAddr, dst: IpAddr, tcp: &TcpRepr) {
    let caps = ChecksumCapabilities::default();
    let payload_len = tcp.buffer_len();
    let (s, d, payload) = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let repr = Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Tcp,
                payload_len,
                hop_limit: 64,
            };
            let mut ip = Ipv4Packet::new_unchecked(&mut *buf);
            repr.emit(&mut ip, &caps);
            (IpAddress::Ipv4(s), IpAddress::Ipv4(d), 20)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let repr = Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Tcp,
                payload_len,
                hop_limit: 64,
            };
            let mut ip = Ipv6Packet::new_unchecked(&mut *buf);
            repr.emit(&mut ip);
            (IpAddress::Ipv6(s), IpAddress::Ipv6(d), 40)
        }
        _ => return,
    };
    if let Some(t) = buf.get_mut(payload..) {
        tcp.emit(&mut TcpPacket::new_unchecked(t), &s, &d, &caps);
    }
}
