//! The demux as a decision: given a parsed packet and what this core knows
//! (flow table, listeners, the registry's selection, the flow directory),
//! say where it goes. Nothing here changes state; `Engine::dispatch` acts.

use nic::Rings;

use super::Engine;
use crate::flow::Owner;
use crate::parse::{FlowKey, ParsedIp, Proto, L4};
use crate::reuseport::MemberId;
use crate::socket::ConnId;

/// Where one packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A connection of this core.
    Conn(ConnId),
    /// A connection of this core in TIME-WAIT: its record (position in
    /// the table) answers.
    TimeWait(u32),
    /// A new flow (SYN) for a listener of this core.
    Admit(MemberId),
    /// An ACK with no connection for a listener of this core: it may finish
    /// a handshake answered with a SYN cookie.
    Cookie(MemberId),
    /// Another core's: hand it over.
    Forward {
        /// The core.
        core: usize,
        /// For a new flow: the member the selector chose there.
        member: Option<MemberId>,
        /// Record the other core as the flow's owner here (found in the
        /// flow directory: the client moved the flow to this queue).
        remember: bool,
        /// Forget this core's entry afterwards (a RST ends the flow).
        forget: bool,
    },
    /// A datagram for a UDP member of this core.
    Udp(MemberId),
    /// Nothing takes it: smoltcp answers (RST, ICMP echo reply, port
    /// unreachable).
    Stack,
}

impl<R: Rings> Engine<R> {
    /// Where a packet goes. `hint` is the member another core chose for a
    /// new flow it handed here; `hops` how often it was handed already.
    pub(super) fn route(&self, p: &ParsedIp, hint: Option<MemberId>, hops: u8) -> Route {
        let key = p.key;
        match key.proto {
            Proto::Icmp => Route::Stack,
            Proto::Udp => {
                let local = hint.filter(|m| self.udp.contains_key(m));
                match self.target(local, &key) {
                    None => Route::Stack,
                    Some((m, core)) if core == self.core => Route::Udp(m),
                    Some((m, core)) => Route::Forward {
                        core,
                        member: Some(m),
                        remember: false,
                        forget: false,
                    },
                }
            }
            Proto::Tcp => self.route_tcp(p, hint, hops),
        }
    }

    fn route_tcp(&self, p: &ParsedIp, hint: Option<MemberId>, hops: u8) -> Route {
        let key = p.key;
        let (syn, ack, rst) = match p.l4 {
            L4::Tcp {
                flags_syn,
                flags_ack,
                flags_rst,
                ..
            } => (flags_syn, flags_ack, flags_rst),
            _ => (false, false, false),
        };
        // A listener of this core another core chose for this flow.
        let live_hint = hint.filter(|&m| self.listeners.is_live(m));
        let entry = self.flows.lookup(&key);
        // No connection: a 4-tuple in TIME-WAIT here has its record answer
        // (only packets without a flow entry pay this lookup).
        if entry.is_none() {
            if let Some(pos) = self.time_wait.find(&key) {
                return Route::TimeWait(pos);
            }
        }
        let local = matches!(entry, Some(Owner::Local(_)));
        if syn && !ack && !local {
            // A new flow handed here for a live listener is admitted here,
            // whatever an older entry says (the selection moved while the
            // SYN was in flight).
            if let Some(m) = live_hint {
                return Route::Admit(m);
            }
            // A SYN another core sent here that no connection here owns:
            // select afresh rather than follow an entry left by an earlier
            // bounce (two cores could point at each other while their
            // groups change).
            if hops > 0 {
                return self.new_flow(&key, None);
            }
        }
        match entry {
            Some(Owner::Local(c)) => Route::Conn(c),
            Some(Owner::Remote { core }) => Route::Forward {
                core,
                member: None,
                remember: false,
                forget: rst,
            },
            None => {
                // Another core may own it: the client moved the flow to
                // another queue (see `FlowDirectory`).
                if let Some(o) = self
                    .shared
                    .directory
                    .owner(&key)
                    .filter(|&o| o != self.core)
                {
                    return Route::Forward {
                        core: o,
                        member: None,
                        remember: true,
                        forget: false,
                    };
                }
                if syn && !ack {
                    return self.new_flow(&key, live_hint);
                }
                if ack && !syn && !rst && self.cfg.syncookies {
                    match self.target(live_hint, &key) {
                        Some((m, core)) if core == self.core => return Route::Cookie(m),
                        Some((m, core)) if hops == 0 => {
                            return Route::Forward {
                                core,
                                member: Some(m),
                                remember: false,
                                forget: false,
                            }
                        }
                        _ => {}
                    }
                }
                Route::Stack
            }
        }
    }

    /// A SYN of a new flow: the selected member, here or on another core.
    fn new_flow(&self, key: &FlowKey, live_hint: Option<MemberId>) -> Route {
        match self.target(live_hint, key) {
            None => Route::Stack,
            Some((m, core)) if core == self.core => Route::Admit(m),
            // No entry is kept here for it: the owner tells this core when
            // it admits the flow, so a SYN the owner drops leaves nothing.
            Some((m, core)) => Route::Forward {
                core,
                member: Some(m),
                remember: false,
                forget: false,
            },
        }
    }

    /// The member (and its core) for a new flow: the local member another
    /// core already chose, or the group's selection.
    fn target(&self, local: Option<MemberId>, key: &FlowKey) -> Option<(MemberId, usize)> {
        match local {
            Some(m) => Some((m, self.core)),
            None => self
                .shared
                .registry
                .select(key, self.queue, self.core)
                .map(|s| (s.member, s.core)),
        }
    }
}
