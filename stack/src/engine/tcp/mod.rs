//! The engine's TCP half: what it does with the connection table and the
//! listeners (`crate::tcp`), which decide, while this acts with the port,
//! the interface, the flow table and the other cores at hand.
//!
//! - here: a connection's life (a segment delivered, its state settled,
//!   timers fired, egress passes, release);
//! - `admit.rs`: admission of SYNs and of ACKs carrying a SYN cookie;
//! - `migrate.rs`: pending connections moving to another listener;
//! - `time_wait.rs`: connections in TIME-WAIT as records;
//! - `api.rs`: the TCP socket API.

mod admit;
mod api;
mod connect;

pub use connect::OUTGOING;
mod migrate;
mod time_wait;

use nic::Rings;
use smoltcp::socket::tcp::State as S;
use smoltcp::time::{Duration as SDuration, Instant};

use super::{Engine, Pkt};
use crate::flow::Owner;
use crate::parse::{FlowKey, ParsedIp};
use crate::socket::{ConnEnd, ConnId};
use crate::tcp::{Fired, Phase, Settled, Visit};

impl<R: Rings> Engine<R> {
    /// Release a connection: its slot (socket and buffers kept for reuse,
    /// up to the pool bound), its flow entries, and the directory's.
    fn release(&mut self, c: ConnId) {
        self.release_keeping(c, false);
    }

    /// [`Self::release`]; `keep_owner`: the flow directory keeps this core
    /// as the 4-tuple's owner (a TIME-WAIT record holds it), so segments
    /// other cores receive for it still come here.
    fn release_keeping(&mut self, c: ConnId, keep_owner: bool) {
        self.remember_peer_rto(c);
        let Some(freed) = self.conns.free(c) else {
            return;
        };
        if freed.phase == Phase::HalfOpen {
            self.listeners.syn_done(freed.member);
        }
        if self.flows.lookup(&freed.key) == Some(Owner::Local(c)) {
            self.flows.remove(&freed.key);
        }
        if !keep_owner {
            self.shared.directory.release(&freed.key, self.core);
        }
        self.announce_closed(freed.key, freed.rx_core);
    }

    /// Keep the RTO `c` measured for the peer's next connection (see
    /// `crate::tcp::PeerRtos`): at the handshake's end and when it goes.
    fn remember_peer_rto(&mut self, c: ConnId) {
        let Some(key) = self.conns.key(c) else {
            return;
        };
        if let Some(rto) = self.conns.socket(c).and_then(|s| s.measured_rto()) {
            self.peer_rtos.put(key.src, rto, self.now);
        }
    }

    /// Move a connection on after something happened to it, as its socket
    /// state says (see `Conns::settle`): to the accept queue, or released.
    /// `end`: why, if an accepted connection turns out closed.
    fn settle(&mut self, c: ConnId, sent: bool, end: ConnEnd) {
        match self.conns.settle(c, sent) {
            Settled::Stay => {}
            Settled::Established(member) => {
                self.remember_peer_rto(c);
                self.listeners.established(member, c);
            }
            Settled::Lost => {
                self.counters.pending_lost += 1;
                self.release(c);
            }
            Settled::Closed { time_wait } => {
                self.counters.closed += 1;
                if time_wait {
                    self.enter_time_wait(c);
                } else {
                    self.release(c);
                }
            }
            Settled::Ended => self.end_accepted(c, end),
            Settled::Connected => {
                self.counters.connects_established += 1;
                self.conns.mark_ready(c);
            }
            Settled::Refused => self.end_connect(c, ConnEnd::Refused),
        }
    }

    /// The engine ends accepted `c` (`why`): it is reported to the
    /// application (`take_ended`) and released at once; the application's
    /// later calls on `c` find nothing (its generation is stale).
    fn end_accepted(&mut self, c: ConnId, why: ConnEnd) {
        let n = &mut self.counters;
        match why {
            ConnEnd::Reset => n.accepted_reset += 1,
            ConnEnd::Finished => n.accepted_finished += 1,
            ConnEnd::TimedOut => n.accepted_timed_out += 1,
            ConnEnd::Restarted => n.accepted_restarted += 1,
            // Outgoing connections end so before they are established
            // (`end_connect`); counted as resets if ever here.
            ConnEnd::Refused | ConnEnd::Unreachable => n.accepted_reset += 1,
        }
        self.conns.push_ended(c, why);
        self.release(c);
    }

    /// Whether a SYN (without ACK) for connection `c`'s 4-tuple starts a
    /// new connection (see `Conns::syn_restarts`).
    pub(super) fn syn_restarts(&mut self, c: ConnId, p: &ParsedIp) -> bool {
        self.conns.syn_restarts(c, p.tcp.seq)
    }

    /// A SYN that [`Self::syn_restarts`] connection `c`: `c` is released
    /// (nothing is sent for it) and the SYN is routed afresh.
    pub(super) fn restart(&mut self, c: ConnId) {
        self.counters.syn_restarts += 1;
        match self.conns.phase(c) {
            Some(Phase::Closing) => self.counters.closed += 1,
            Some(Phase::HalfOpen) => self.counters.pending_lost += 1,
            Some(Phase::Accepted) => return self.end_accepted(c, ConnEnd::Restarted),
            _ => {}
        }
        self.release(c);
    }

    /// A segment for connection `c`. An accepted connection is reported
    /// ready only if the segment changed something the application sees
    /// (state, bytes to read, bytes unacknowledged): a segment answered
    /// with a challenge ACK, a refused RST or a duplicate is no activity.
    pub(super) fn deliver(&mut self, c: ConnId, pkt: Pkt) {
        let before = self.conns.progress(c);
        self.feed(Some(c.idx), pkt);
        // The ACK may have emptied the send buffer: its storage goes back.
        self.conns.reclaim(c, self.now, false);
        self.conns.mark_dirty(c);
        if let Some(before) = before {
            if self.conns.progress(c) != Some(before) {
                self.conns.mark_ready(c);
            } else {
                self.counters.segments_no_progress += 1;
            }
        }
        // A closed socket that had sent its FIN and had it acknowledged
        // finished; any other closed one was reset.
        let end = match before {
            Some((S::LastAck | S::Closing | S::TimeWait, ..)) => ConnEnd::Finished,
            _ => ConnEnd::Reset,
        };
        self.settle(c, false, end);
    }

    /// Fire the due timers: a due connection goes on the dirty list, an
    /// expired handshake is dropped, an expired close is reset.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some((c, fired)) = self.conns.next_fired(now) {
            match fired {
                Fired::Handshake => {
                    // As Linux after its SYN-ACK retries: gone, silently.
                    self.counters.syn_timeouts += 1;
                    self.release(c);
                }
                Fired::Close => {
                    // The RST goes out on this egress, then the connection
                    // is released.
                    self.conns.expire_close(c);
                    self.counters.close_timeouts += 1;
                }
                Fired::Connect => self.end_connect(c, ConnEnd::TimedOut),
                Fired::Due => self.reschedule(c, now, false, true),
            }
        }
    }

    /// When the earliest current timer comes due.
    pub(super) fn next_timer(&mut self, now: Instant) -> Option<Instant> {
        self.conns.next_timer(now)
    }

    /// One egress pass over the connections with work.
    pub(super) fn egress_conns(&mut self, now: Instant, accepted_too: bool) {
        // From a pseudo-random place, wrapping around (`Conns::take_dirty`).
        let (dirty, mut kept, start) = self.conns.take_dirty();
        let (before, from) = dirty.split_at(start);
        for (i, &c) in from.iter().chain(before).enumerate() {
            if !self.port.can_send() {
                self.flush_tx(now.total_millis() as u64);
                if !self.port.can_send() {
                    // No frame to build into until the kernel sends some:
                    // the rest (still marked dirty) waits for the next pass.
                    self.counters.egress_tx_full += 1;
                    if i < from.len() {
                        self.conns.still_dirty(&from[i..]);
                        self.conns.still_dirty(before);
                    } else {
                        self.conns.still_dirty(&before[i - from.len()..]);
                    }
                    break;
                }
            }
            match self.conns.visit(c, accepted_too) {
                Visit::Gone => continue,
                Visit::Keep => {
                    // Stays dirty for the pass after the application runs.
                    kept.push(c);
                    continue;
                }
                Visit::Go => {}
            }
            self.counters.egress_visits += 1;
            let emitted = self
                .conns
                .poll_egress(&mut self.iface, &mut self.port, c, now);
            self.settle(c, true, ConnEnd::TimedOut);
            self.reschedule(c, now, emitted, false);
        }
        self.conns.finish_pass(dirty, kept);
    }

    /// Put a connection's next deadline in the timer wheel (see
    /// `Conns::reschedule`).
    fn reschedule(&mut self, c: ConnId, now: Instant, emitted: bool, due_is_work: bool) {
        self.conns
            .reschedule(&mut self.iface, &self.port, c, now, emitted, due_is_work);
    }

    /// This core owns `key` through connection `c`.
    fn own_flow(&mut self, key: FlowKey, c: ConnId, rx_core: usize) {
        self.flows.insert(key, Owner::Local(c));
        self.announce_owner(key, rx_core);
    }

    /// The application closed `c` (or its listener is gone): it is closing
    /// now, reset if it has not finished after `close_timeout`.
    fn start_closing(&mut self, c: ConnId) {
        let timeout = SDuration::from_micros(self.cfg.close_timeout.as_micros() as u64);
        if let Some(member) = self.conns.start_closing(c, self.now + timeout) {
            self.listeners.syn_done(member);
        }
    }

    /// The handshake timeout of a connection entering SYN-RECEIVED now.
    fn syn_deadline(&self) -> Instant {
        self.now + SDuration::from_micros(self.cfg.syn_timeout.as_micros() as u64)
    }
}
