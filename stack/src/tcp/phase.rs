//! How a connection moves between phases: what its socket state means
//! after a segment or an egress pass ([`Settled`]), a SYN that restarts its
//! 4-tuple, closing, accepting and giving back, migrating to another
//! listener on this core.

use std::sync::Arc;

use smoltcp::socket::tcp;
use smoltcp::time::Instant;

use super::table::{Conns, Phase};
use crate::reuseport::{ListenerCounters, MemberId};
use crate::socket::ConnId;

/// What a connection's socket state means for its phase (from
/// [`Conns::settle`]); the engine acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Nothing changes.
    Stay,
    /// The handshake finished: the connection is queued now and goes on
    /// the accept queue of this listener.
    Established(MemberId),
    /// Reset or closed before the application took it: release it.
    Lost,
    /// Closed by the application and finished closing (`time_wait`: cut
    /// short in TIME-WAIT): release it.
    Closed { time_wait: bool },
    /// Closed (reset, finished or timed out) while the application held
    /// it: report it to the application and release it.
    Ended,
    /// An outgoing connection finished its handshake: the application
    /// holds it now (`Phase::Accepted`).
    Connected,
    /// An outgoing connection closed before its handshake finished (an RST
    /// answered the SYN): report it to the application and release it.
    Refused,
}

impl Conns {
    /// Compare `c`'s socket state with its phase after something happened
    /// to it; a half-open connection whose handshake finished is queued
    /// here, the rest is for the engine to do. A closing connection is
    /// done only after an egress pass (`sent`): the segment that closed it
    /// may still owe an ACK (the peer's FIN).
    #[inline]
    pub(crate) fn settle(&mut self, c: ConnId, sent: bool) -> Settled {
        let Some(state) = self.state(c) else {
            return Settled::Stay;
        };
        let Some(slot) = self.slot_mut(c) else {
            return Settled::Stay;
        };
        use tcp::State as S;
        match slot.phase {
            Phase::HalfOpen => match state {
                S::SynReceived => Settled::Stay,
                // Reset in SYN-RECEIVED (smoltcp turns it back into a
                // listening socket) or closed: a lost handshake.
                S::Listen | S::Closed | S::SynSent => Settled::Lost,
                _ => {
                    slot.phase = Phase::Queued;
                    slot.deadline = None;
                    Settled::Established(slot.member)
                }
            },
            // Reset before the application took it; its accept queue entry
            // is stale now and skipped.
            Phase::Queued if matches!(state, S::Closed | S::Listen | S::TimeWait) => Settled::Lost,
            Phase::Connecting => match state {
                // SYN-RECEIVED: a simultaneous open, still handshaking.
                S::SynSent | S::SynReceived => Settled::Stay,
                S::Closed | S::Listen => Settled::Refused,
                // Established (or the peer's FIN came with or right after
                // its SYN-ACK): the application's now.
                _ => {
                    slot.phase = Phase::Accepted;
                    slot.deadline = None;
                    Settled::Connected
                }
            },
            Phase::Closing if !sent => Settled::Stay,
            Phase::Closing => match state {
                S::Closed => Settled::Closed { time_wait: false },
                S::TimeWait => Settled::Closed { time_wait: true },
                _ => Settled::Stay,
            },
            // Nothing more can happen on it: the application learns of it
            // through the ended list (its id goes stale at once).
            Phase::Accepted if matches!(state, S::Closed | S::Listen) => Settled::Ended,
            Phase::Queued | Phase::Accepted | Phase::Free => Settled::Stay,
        }
    }

    /// Whether a SYN (without ACK, sequence number `seq`) for connection
    /// `c`'s 4-tuple starts a new connection, the peer having forgotten `c`:
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
    /// - `c` is held by the application in CLOSE-WAIT: the peer's FIN is in
    ///   and it came back on the same port, so it is done with `c` (as in
    ///   the closing states above; the application that still had to answer
    ///   would answer a peer that forgot the connection). The application
    ///   learns of it through the ended list.
    ///
    /// Any other SYN goes to `c`, which answers it with a challenge ACK.
    pub(crate) fn syn_restarts(&mut self, c: ConnId, seq: u32) -> bool {
        let state = self.state(c);
        let Some(slot) = self.slot(c) else {
            return false;
        };
        use tcp::State as S;
        match (slot.phase, state) {
            (Phase::Closing, Some(S::LastAck | S::Closing | S::TimeWait)) => true,
            (Phase::Accepted, Some(S::CloseWait | S::Closed)) => true,
            (Phase::HalfOpen, Some(S::SynReceived)) => slot.peer_isn.is_some_and(|isn| isn != seq),
            _ => false,
        }
    }

    /// Move `c` into `Phase::Closing` with a close timeout at `deadline`
    /// (kept if it is closing already). Returns its listener when it was
    /// half-open (it leaves that listener's SYN queue).
    pub(crate) fn start_closing(&mut self, c: ConnId, deadline: Instant) -> Option<MemberId> {
        let s = self.slot_mut(c)?;
        let half_open = (s.phase == Phase::HalfOpen).then_some(s.member);
        if s.phase != Phase::Closing {
            s.phase = Phase::Closing;
            s.deadline = Some(deadline);
            self.closing += 1;
        }
        half_open
    }

    /// The application takes `c` from `member`'s accept queue: whether it
    /// was still queued there (not reset or migrated since).
    #[inline]
    pub(crate) fn take_queued(&mut self, c: ConnId, member: MemberId) -> bool {
        match self.slot_mut(c) {
            Some(s) if s.phase == Phase::Queued && s.member == member => {
                s.phase = Phase::Accepted;
                true
            }
            _ => false,
        }
    }

    /// An accepted `c` given back (queued again): its listener.
    pub(crate) fn unaccept(&mut self, c: ConnId) -> Option<MemberId> {
        let s = self.slot_mut(c)?;
        if s.phase != Phase::Accepted {
            return None;
        }
        s.phase = Phase::Queued;
        Some(s.member)
    }

    /// `c` migrated to listener `member` on this core.
    pub(crate) fn retarget(
        &mut self,
        c: ConnId,
        member: MemberId,
        counters: Arc<ListenerCounters>,
    ) {
        if let Some(s) = self.slot_mut(c) {
            s.member = member;
            s.counters = counters;
        }
    }

    /// Whether `c` waits on `member`'s accept queue.
    pub(crate) fn is_queued_on(&self, c: ConnId, member: MemberId) -> bool {
        self.slot(c)
            .is_some_and(|s| s.phase == Phase::Queued && s.member == member)
    }
}
