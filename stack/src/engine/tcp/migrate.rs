//! Migration: the connections a listener had not accepted yet move to
//! another live member of its group when it closes (Linux 5.14's
//! `tcp_migrate_req`), on this core when there is one, else with their
//! socket to another core; with nobody left they are reset.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use nic::Rings;
use smoltcp::socket::tcp;

use super::super::Engine;
use crate::flow::Owner;
use crate::handoff::Msg;
use crate::parse::FlowKey;
use crate::reuseport::MemberId;
use crate::socket::ConnId;
use crate::tcp::Phase;

impl<R: Rings> Engine<R> {
    /// Move pending connection `c` of listener `from` to the member the
    /// registry picks for its flow.
    pub(super) fn migrate_out(&mut self, from: MemberId, c: ConnId) {
        let Some(slot) = self.conns.slot(c) else {
            return;
        };
        let key = slot.key;
        let half_open = slot.phase == Phase::HalfOpen;
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
            if let Some(counters) = self.listeners.migrated_in(t.member, c, half_open) {
                self.counters.migrated_in += 1;
                self.conns.retarget(c, t.member, counters);
                return;
            }
        }
        // To another core: the socket travels; the slot is freed here
        // without telling anyone the flow closed.
        let Some(sock) = self.conns.detach(c) else {
            return;
        };
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
                if let Some(c) = self.conns.alloc_with(*socket) {
                    self.conns.setup(c, key, from, rx_core, from_counters, None);
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

    /// A connection another core's listener had pending, for member `to`
    /// of this core.
    pub(in crate::engine) fn migrate_in(
        &mut self,
        socket: tcp::Socket<'static>,
        key: FlowKey,
        to: MemberId,
        rx_core: usize,
    ) {
        let half_open = socket.state() == tcp::State::SynReceived;
        let Some(c) = self.conns.alloc_with(socket) else {
            return;
        };
        let Some(counters) = self.listeners.migrated_in(to, c, half_open) else {
            // The target closed meanwhile: nobody can accept it.
            self.conns.setup(c, key, to, rx_core, Arc::default(), None);
            self.counters.migration_resets += 1;
            self.reset_pending(c);
            self.own_flow(key, c, rx_core);
            return;
        };
        self.counters.migrated_in += 1;
        self.conns.setup(c, key, to, rx_core, counters, None);
        if half_open {
            let deadline = self.syn_deadline();
            self.conns.set_deadline(c, Some(deadline));
        } else {
            self.conns.set_queued(c);
        }
        self.own_flow(key, c, rx_core);
        self.conns.mark_dirty(c);
    }
}
