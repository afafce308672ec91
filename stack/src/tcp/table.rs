//! The connection table of one core.
//!
//! Each connection lives in a slot with its own one-socket smoltcp
//! `SocketSet`. smoltcp visits every socket of a set on every ingress
//! segment and every egress pass; with one socket per set a segment costs
//! one flow-table lookup and one socket, and an egress pass visits only the
//! connections on the dirty list (a segment arrived, the application read or
//! wrote, a timer fired). Each connection's next deadline goes into a timing
//! wheel (`timers.rs`). Released slots keep their socket for the next
//! connection, up to `SocketParams::pool` of them: with fixed buffers
//! (`--tcp-buf`) its buffers too (`listen` resets the rings without zeroing
//! them); with buffers that grow (the default) the storage goes back to the
//! core's pool (`storage.rs`).

use std::net::IpAddr;
use std::sync::Arc;

use nic::{Port, Rings};
use smoltcp::iface::{Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, Socket};
use smoltcp::time::Instant;
use smoltcp::wire::IpListenEndpoint;

use super::buffers::{Budget, BufConfig, BufPool, RecvTune};
use super::timers::Mark;
use crate::flow::FlowTable;
use crate::parse::{FlowKey, Proto};
use crate::reuseport::{ListenerCounters, MemberId};
use crate::socket::{ConnEnd, ConnId};
use crate::timer::Timers;

/// Where a connection is in its life, as the engine sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
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
    /// SYN-SENT: an outgoing connection the application opened, not on any
    /// listener; it becomes `Accepted` once established.
    Connecting,
}

/// One connection's place in the table.
pub(crate) struct Slot {
    pub(super) set: SocketSet<'static>,
    pub(super) handle: Option<SocketHandle>,
    pub(super) gen: u32,
    pub(crate) phase: Phase,
    pub(crate) key: FlowKey,
    /// The listener that admitted it (or that it migrated to).
    pub(crate) member: MemberId,
    /// The core whose queue receives the flow's packets.
    pub(crate) rx_core: usize,
    pub(crate) counters: Arc<ListenerCounters>,
    /// Handshake or close timeout.
    pub(super) deadline: Option<Instant>,
    /// The sequence number of the peer's SYN, when this core saw it (tells
    /// a retransmitted SYN from a new attempt on the same 4-tuple, see
    /// [`Conns::syn_restarts`]; not known for a migrated connection).
    pub(super) peer_isn: Option<u32>,
    /// Buffers that grow: when larger storage left with emptied buffers
    /// goes back to the pool if they are still empty (see `storage.rs`).
    pub(super) reclaim_at: Option<Instant>,
    /// Receive autotuning (Linux's `rcvq_space`).
    pub(super) tune: RecvTune,
    pub(super) dirty: bool,
    ready: bool,
}

/// What every new connection's socket gets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SocketParams {
    /// Buffer sizes: growing (the default) or fixed.
    pub buffers: BufConfig,
    /// Congestion control.
    pub congestion: tcp::CongestionControl,
    /// Released sockets (with their buffers) kept for reuse, at most.
    pub pool: usize,
}

/// Counters the table keeps itself (the engine reports them).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TableCounters {
    /// Timer wake-ups that found their connection due.
    pub timer_fires: u64,
    /// Timer wake-ups that came up before their connection's deadline.
    pub timer_early: u64,
    /// Connections due for egress that sent nothing though frames were free.
    pub egress_stalls: u64,
    /// Segments whose data a connection could not keep (its receive storage
    /// could not grow: memory budget past its hard limit), counted when the
    /// connection is released.
    pub rx_storage_cut: u64,
    /// SACK-based loss recovery (smoltcp patch 12), counted when a
    /// connection is released: segments retransmitted, fast recoveries,
    /// retransmission timeouts, tail loss probes.
    pub retransmits: u64,
    /// Fast recoveries entered.
    pub recoveries: u64,
    /// Retransmission timeouts.
    pub rto_timeouts: u64,
    /// Tail loss probes sent.
    pub loss_probes: u64,
    /// Slow starts HyStart ended.
    pub hystart_exits: u64,
    /// Congestion-window reductions undone as spurious (D-SACK, F-RTO).
    pub spurious_undos: u64,
    /// Connections that negotiated ECN (RFC 3168).
    pub ecn_negotiated: u64,
    /// Segments received marked Congestion Experienced (ECN connections).
    pub ecn_ce_received: u64,
    /// Window reductions for an ECN-Echo.
    pub ecn_reductions: u64,
    /// Segments PAWS dropped (a TSval older than TS.Recent).
    pub paws_rejected: u64,
}

/// The connection table of one core.
pub(crate) struct Conns {
    pub(super) slots: Vec<Slot>,
    free: Vec<u32>,
    /// Free slots that still hold a socket.
    pooled: usize,
    live: usize,
    /// Slots in `Phase::Closing`.
    pub(super) closing: usize,
    dirty: Vec<ConnId>,
    /// Spare list for an egress pass (dirty connections it leaves dirty).
    kept: Vec<ConnId>,
    /// A splitmix64 state: where each egress pass starts in the dirty list
    /// (`take_dirty`).
    pass_seed: u64,
    pub(super) timers: Timers,
    /// Each slot's timer state, beside the slots (see [`Mark`]).
    pub(super) marks: Vec<Mark>,
    ready: Vec<ConnId>,
    /// Accepted connections the engine ended, for the application (while
    /// tracking).
    ended: Vec<(ConnId, ConnEnd)>,
    track_ready: bool,
    pub(super) params: SocketParams,
    /// Buffers grow (`params.buffers.autotuned()`).
    pub(super) grow: bool,
    /// The core's buffer storage (buffers that grow).
    pub(super) bufs: BufPool,
    pub(super) counters: TableCounters,
}

/// What a released slot held, for the engine to tidy up after it (the
/// listener's SYN count, the flow entries, the other cores).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Freed {
    pub key: FlowKey,
    pub rx_core: usize,
    pub phase: Phase,
    pub member: MemberId,
}

/// Whether an egress pass visits a dirty connection (from [`Conns::visit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Released meanwhile.
    Gone,
    /// Held by the application: it stays dirty for the next full pass.
    Keep,
    /// Visit it (it is no longer marked dirty).
    Go,
}

impl Conns {
    /// An empty table whose sockets get `params`, charging buffer storage
    /// to `budget`.
    pub(crate) fn new(params: SocketParams, budget: Arc<Budget>) -> Self {
        budget.set_levels(params.buffers.mem);
        Conns {
            grow: params.buffers.autotuned(),
            bufs: BufPool::new(budget, params.buffers.cache),
            slots: Vec::new(),
            free: Vec::new(),
            pooled: 0,
            live: 0,
            closing: 0,
            dirty: Vec::new(),
            kept: Vec::new(),
            pass_seed: 0x9e37_79b9_7f4a_7c15,
            timers: Timers::default(),
            marks: Vec::new(),
            ready: Vec::new(),
            ended: Vec::new(),
            track_ready: false,
            params,
            counters: TableCounters::default(),
        }
    }

    /// Ask for `c`'s slot to be brought into the caches (the first step of
    /// a batch's prefetch passes, see `Engine::ingress`).
    #[inline]
    pub(crate) fn prefetch_slot(&self, c: ConnId) {
        if let Some(s) = self.slots.get(c.idx as usize) {
            nic::prefetch::value(s);
        }
    }

    /// Ask for `c`'s socket to be brought into the caches: all of it, since
    /// a segment's processing reads most of its lines. Reads the slot, so
    /// run [`Conns::prefetch_slot`] over the batch first.
    #[inline]
    pub(crate) fn prefetch_socket(&self, c: ConnId) {
        if let Some(h) = self.slot(c).and_then(|s| s.handle.map(|h| (s, h))) {
            nic::prefetch::value(h.0.set.get::<tcp::Socket>(h.1));
        }
    }

    /// Slot `idx`'s socket set (whatever its generation).
    #[inline]
    pub(crate) fn set_mut(&mut self, idx: u32) -> Option<&mut SocketSet<'static>> {
        self.slots.get_mut(idx as usize).map(|s| &mut s.set)
    }

    /// `c`'s slot, if `c` is still live.
    #[inline]
    pub(crate) fn slot(&self, c: ConnId) -> Option<&Slot> {
        self.slots
            .get(c.idx as usize)
            .filter(|s| s.gen == c.gen && s.phase != Phase::Free)
    }

    #[inline]
    pub(super) fn slot_mut(&mut self, c: ConnId) -> Option<&mut Slot> {
        self.slots
            .get_mut(c.idx as usize)
            .filter(|s| s.gen == c.gen && s.phase != Phase::Free)
    }

    /// `c`'s socket, if `c` is still live.
    #[inline]
    pub(crate) fn socket(&mut self, c: ConnId) -> Option<&mut tcp::Socket<'static>> {
        let s = self.slot_mut(c)?;
        let h = s.handle?;
        Some(s.set.get_mut::<tcp::Socket>(h))
    }

    /// `c`'s socket state, if `c` is still live.
    #[inline]
    pub(crate) fn state(&mut self, c: ConnId) -> Option<tcp::State> {
        self.socket(c).map(|s| s.state())
    }

    /// `c`'s phase, if `c` is still live.
    #[inline]
    pub(crate) fn phase(&self, c: ConnId) -> Option<Phase> {
        self.slot(c).map(|s| s.phase)
    }

    /// `c`'s 4-tuple, if `c` is still live.
    pub(crate) fn key(&self, c: ConnId) -> Option<FlowKey> {
        self.slot(c).map(|s| s.key)
    }

    /// `c`'s socket for the application: only once accepted (and while it
    /// closes).
    #[inline]
    pub(crate) fn app_socket(&mut self, c: ConnId) -> Option<&mut tcp::Socket<'static>> {
        match self.phase(c) {
            Some(Phase::Accepted | Phase::Closing) => self.socket(c),
            _ => None,
        }
    }

    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Connections held (every phase but free).
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    pub(crate) fn pooled(&self) -> usize {
        self.pooled
    }

    pub(crate) fn closing(&self) -> usize {
        self.closing
    }

    pub(crate) fn timers_len(&self) -> usize {
        self.timers.len()
    }

    pub(crate) fn counters(&self) -> TableCounters {
        self.counters
    }

    /// Put `c` on the dirty list (once) for the next egress pass.
    #[inline]
    pub(crate) fn mark_dirty(&mut self, c: ConnId) {
        if let Some(s) = self.slot_mut(c) {
            if !s.dirty {
                s.dirty = true;
                self.dirty.push(c);
            }
        }
    }

    /// Put an accepted `c` on the ready list (once), when tracking.
    #[inline]
    pub(crate) fn mark_ready(&mut self, c: ConnId) {
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

    /// What a segment can change on `c` that the application cares about:
    /// its state and how much it holds to read and to send. `None` unless
    /// `c` is accepted (only those are reported ready).
    #[inline]
    pub(crate) fn progress(&self, c: ConnId) -> Option<(tcp::State, usize, usize)> {
        let s = self.slot(c).filter(|s| s.phase == Phase::Accepted)?;
        let sock = s.set.get::<tcp::Socket>(s.handle?);
        Some((sock.state(), sock.recv_queue(), sock.send_queue()))
    }

    /// Record that the engine ended accepted `c` (`why`), for
    /// [`Conns::take_ended`], when tracking. Call before releasing it.
    pub(crate) fn push_ended(&mut self, c: ConnId, why: ConnEnd) {
        if self.track_ready {
            self.ended.push((c, why));
        }
    }

    // ---- slots ----

    /// A slot with a socket listening on `port` for exactly one SYN, in
    /// `Phase::HalfOpen`.
    #[inline]
    pub(crate) fn alloc(&mut self, port: u16) -> Option<ConnId> {
        let c = self.alloc_closed()?;
        if let Some(s) = self.socket(c) {
            // Created for exactly one admitted SYN: the demux already chose
            // the listener (and so the address), the socket only needs the
            // port.
            let _ = s.listen(IpListenEndpoint { addr: None, port });
        }
        Some(c)
    }

    /// A slot whose socket is closed and ready for `listen` or `connect`
    /// (its buffers and options set as for every connection), in
    /// `Phase::HalfOpen` (an outgoing connection moves it on).
    #[inline]
    pub(crate) fn alloc_closed(&mut self) -> Option<ConnId> {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(Slot {
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
                    reclaim_at: None,
                    tune: RecvTune::default(),
                    dirty: false,
                    ready: false,
                });
                self.marks.push(Mark::default());
                i
            }
        };
        let p = self.params;
        let b = &p.buffers;
        // Fixed buffers come with the socket and stay; buffers that grow
        // take storage from the pool as data comes (none while idle).
        let (rx, tx) = match self.grow {
            true => (0, 0),
            false => (b.rmem.max, b.wmem.max),
        };
        let slot = &mut self.slots[idx as usize];
        let h = match slot.handle {
            Some(h) => {
                self.pooled -= 1;
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
        s.set_congestion_control(p.congestion);
        if self.grow {
            // Before `listen`: the SYN-ACK offers the scale of the maximum.
            s.set_recv_window_max(Some(b.rmem.max));
            s.set_recv_limit(Some(b.rmem.init));
        }
        slot.phase = Phase::HalfOpen;
        slot.deadline = None;
        slot.reclaim_at = None;
        slot.tune = RecvTune::default();
        slot.dirty = false;
        slot.ready = false;
        let gen = slot.gen;
        self.reset_mark(idx, gen);
        self.live += 1;
        Some(ConnId { idx, gen })
    }

    /// A slot holding `socket` (one migrating in), in `Phase::HalfOpen`.
    pub(crate) fn alloc_with(&mut self, socket: tcp::Socket<'static>) -> Option<ConnId> {
        let c = self.alloc(0)?;
        self.adopt(&socket);
        let slot = &mut self.slots[c.idx as usize];
        if let Some(h) = slot.handle.take() {
            slot.set.remove(h);
        }
        slot.handle = Some(slot.set.add(socket));
        Some(c)
    }

    /// Fill in a new connection's flow and listener.
    #[inline]
    pub(crate) fn setup(
        &mut self,
        c: ConnId,
        key: FlowKey,
        member: MemberId,
        rx_core: usize,
        counters: Arc<ListenerCounters>,
        peer_isn: Option<u32>,
    ) {
        let slot = &mut self.slots[c.idx as usize];
        slot.key = key;
        slot.peer_isn = peer_isn;
        slot.member = member;
        slot.rx_core = rx_core;
        slot.counters = counters;
    }

    /// `c` is an outgoing connection in SYN-SENT (see `Phase::Connecting`),
    /// given up at `deadline` unless established by then.
    pub(crate) fn set_connecting(&mut self, c: ConnId, deadline: Instant) {
        if let Some(s) = self.slot_mut(c) {
            s.phase = Phase::Connecting;
            s.deadline = Some(deadline);
        }
    }

    /// A segment of connecting `c` came in on `rx_core`'s queue: that core
    /// receives the flow (it is told when the flow is released).
    pub(crate) fn learn_rx_core(&mut self, c: ConnId, rx_core: usize) {
        if let Some(s) = self.slot_mut(c) {
            if s.phase == Phase::Connecting {
                s.rx_core = rx_core;
            }
        }
    }

    /// Set (or clear) `c`'s handshake or close timeout.
    #[inline]
    pub(crate) fn set_deadline(&mut self, c: ConnId, at: Option<Instant>) {
        if let Some(s) = self.slot_mut(c) {
            s.deadline = at;
        }
    }

    /// A half-open connection that finished its handshake elsewhere (one
    /// migrating in): queued for `accept`.
    pub(crate) fn set_queued(&mut self, c: ConnId) {
        if let Some(s) = self.slot_mut(c) {
            s.phase = Phase::Queued;
        }
    }

    /// Free `c`'s slot, keeping its socket and buffers for reuse up to the
    /// pool bound. `None` if `c` was not live.
    #[inline]
    pub(crate) fn free(&mut self, c: ConnId) -> Option<Freed> {
        self.strip(c);
        let pool_full = self.pooled >= self.params.pool;
        let slot = self.slot_mut(c)?;
        let freed = Freed {
            key: slot.key,
            rx_core: slot.rx_core,
            phase: slot.phase,
            member: slot.member,
        };
        slot.phase = Phase::Free;
        slot.gen = slot.gen.wrapping_add(1);
        slot.deadline = None;
        slot.reclaim_at = None;
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
            self.pooled += 1;
        }
        self.reset_mark(c.idx, c.gen.wrapping_add(1));
        self.free.push(c.idx);
        self.live -= 1;
        if freed.phase == Phase::Closing {
            self.closing -= 1;
        }
        Some(freed)
    }

    /// Take `c`'s socket out (it migrates to another core) and free the
    /// slot.
    pub(crate) fn detach(&mut self, c: ConnId) -> Option<tcp::Socket<'static>> {
        self.slot(c)?;
        let slot = &mut self.slots[c.idx as usize];
        let h = slot.handle.take()?;
        let Socket::Tcp(sock) = slot.set.remove(h) else {
            return None;
        };
        slot.reclaim_at = None;
        // Its storage is counted by the core it goes to.
        if self.grow {
            self.bufs
                .disown(sock.recv_capacity() + sock.send_capacity());
        }
        let slot = &mut self.slots[c.idx as usize];
        slot.phase = Phase::Free;
        slot.gen = slot.gen.wrapping_add(1);
        slot.deadline = None;
        slot.dirty = false;
        self.reset_mark(c.idx, c.gen.wrapping_add(1));
        self.free.push(c.idx);
        self.live -= 1;
        Some(sock)
    }

    // ---- egress ----

    /// Take the dirty list for an egress pass, with an empty spare list for
    /// the connections the pass leaves dirty. Give both back with
    /// [`Conns::finish_pass`].
    ///
    /// Each pass starts at a pseudo-random point of the list. Paced senders
    /// woken by one tick of the timer wheel send back to back, in this
    /// order; at a full drop-tail queue the end of such a burst is what gets
    /// dropped, and with a fixed order the same connections were at its end
    /// tick after tick: at 100 connections through a 100 Mbit/s bottleneck
    /// one connection's retransmission of one segment was dropped 7 times in
    /// a row (3.8 s without progress) while the path dropped 15% of all
    /// segments. Started at random, every connection's place in the burst
    /// changes from pass to pass.
    ///
    /// Returns the list, the spare list and where in the list the pass
    /// starts (it goes on from there, wrapping around).
    #[inline]
    pub(crate) fn take_dirty(&mut self) -> (Vec<ConnId>, Vec<ConnId>, usize) {
        let dirty = std::mem::take(&mut self.dirty);
        let start = if dirty.len() > 1 {
            pass_start(&mut self.pass_seed, dirty.len())
        } else {
            0
        };
        let mut kept = std::mem::take(&mut self.kept);
        kept.clear();
        (dirty, kept, start)
    }

    /// Connections a pass did not get to (still marked dirty).
    pub(crate) fn still_dirty(&mut self, rest: &[ConnId]) {
        self.dirty.extend_from_slice(rest);
    }

    /// Whether the pass visits `c` (`accepted_too`: also those the
    /// application holds).
    #[inline]
    pub(crate) fn visit(&mut self, c: ConnId, accepted_too: bool) -> Visit {
        let Some(slot) = self.slot_mut(c) else {
            return Visit::Gone;
        };
        if !accepted_too && slot.phase == Phase::Accepted {
            return Visit::Keep;
        }
        slot.dirty = false;
        Visit::Go
    }

    /// Let smoltcp emit what `c` owes (at most 64 segments) through `port`;
    /// whether anything went out.
    #[inline]
    pub(crate) fn poll_egress<R: Rings>(
        &mut self,
        iface: &mut Interface,
        port: &mut Port<R>,
        c: ConnId,
        now: Instant,
    ) -> bool {
        let set = &mut self.slots[c.idx as usize].set;
        let mut emitted = false;
        for _ in 0..64 {
            let r = iface.poll_egress(now, &mut port.device(None), set);
            if r == PollResult::None {
                break;
            }
            emitted = true;
        }
        emitted
    }

    /// End a pass: the kept connections and those marked during the pass
    /// are the new dirty list; the two lists' allocations are reused.
    #[inline]
    pub(crate) fn finish_pass(&mut self, dirty: Vec<ConnId>, mut kept: Vec<ConnId>) {
        kept.append(&mut self.dirty);
        let mut dirty = dirty;
        dirty.clear();
        self.dirty = kept;
        self.kept = dirty;
    }

    // ---- the application's view ----

    /// Record which accepted connections receive segments (off: forget the
    /// record).
    pub(crate) fn set_ready_tracking(&mut self, on: bool) {
        self.track_ready = on;
        if !on {
            self.ended.clear();
            for c in std::mem::take(&mut self.ready) {
                if let Some(s) = self.slot_mut(c) {
                    s.ready = false;
                }
            }
        }
    }

    /// Move the ready connections still live into `out`.
    pub(crate) fn take_ready(&mut self, out: &mut Vec<ConnId>) {
        for c in self.ready.drain(..) {
            if let Some(s) = self
                .slots
                .get_mut(c.idx as usize)
                .filter(|s| s.gen == c.gen && s.phase != Phase::Free)
            {
                s.ready = false;
                out.push(c);
            }
        }
    }

    /// Move the ended connections (see [`Conns::push_ended`]) into `out`.
    pub(crate) fn take_ended(&mut self, out: &mut Vec<(ConnId, ConnEnd)>) {
        out.append(&mut self.ended);
    }

    // ---- walks (rare operations) ----

    /// The live connections in `phases`; of listener `member` only, if set.
    pub(crate) fn select(&self, member: Option<MemberId>, phases: &[Phase]) -> Vec<ConnId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| member.is_none_or(|m| s.member == m) && phases.contains(&s.phase))
            .map(|(i, s)| ConnId {
                idx: i as u32,
                gen: s.gen,
            })
            .collect()
    }

    /// Connections by phase: half-open, queued, accepted (outgoing ones
    /// still connecting too), closing.
    pub(crate) fn phases(&self) -> [usize; 4] {
        let mut n = [0; 4];
        for s in &self.slots {
            match s.phase {
                Phase::HalfOpen => n[0] += 1,
                Phase::Queued => n[1] += 1,
                Phase::Accepted | Phase::Connecting => n[2] += 1,
                Phase::Closing => n[3] += 1,
                Phase::Free => {}
            }
        }
        n
    }

    /// A line per closing connection (see `Engine::closing_report`).
    pub(crate) fn closing_report(&self, flows: &FlowTable) -> Vec<String> {
        self.slots
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
                    flows.lookup(&s.key),
                )
            })
            .collect()
    }

    /// The flows of the live connections.
    pub(crate) fn local_flows(&self) -> Vec<FlowKey> {
        self.slots
            .iter()
            .filter(|s| s.phase != Phase::Free)
            .map(|s| s.key)
            .collect()
    }
}

/// Where an egress pass starts in a dirty list of `len` (> 0) connections:
/// the next value of a splitmix64 sequence, reduced to `0..len`.
fn pass_start(seed: &mut u64, len: usize) -> usize {
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % len as u64) as usize
}

#[cfg(test)]
mod pass_start_tests {
    use super::pass_start;

    #[test]
    fn every_connection_leads_a_pass_about_as_often() {
        // 100 connections, 100,000 passes: each place starts about 1,000.
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let mut firsts = [0u32; 100];
        for _ in 0..100_000 {
            let at = pass_start(&mut seed, 100);
            firsts[at] += 1;
        }
        let (lo, hi) = (firsts.iter().min().unwrap(), firsts.iter().max().unwrap());
        assert!(*lo > 850 && *hi < 1150, "{lo}..{hi}");
        // Consecutive passes do not start at the same place.
        let a = pass_start(&mut seed, 1000);
        let b = pass_start(&mut seed, 1000);
        assert_ne!(a, b);
    }
}
