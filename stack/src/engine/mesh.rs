//! Handoff between cores: packets of flows another core owns, migrating
//! connections, and the notices that keep the cores' flow entries right
//! (`FlowOwned` when a core admits a flow whose packets arrive on another
//! core's queue, `FlowClosed` when it releases it).

use nic::Rings;

use super::{Engine, Pkt, MAX_HOPS};
use crate::flow::Owner;
use crate::handoff::Msg;
use crate::l2::ETH_HDR;
use crate::parse::{FlowKey, ParsedIp, L4};
use crate::reuseport::MemberId;

impl<R: Rings> Engine<R> {
    /// Handle what other cores sent (at most a batch).
    pub(super) fn drain_mesh(&mut self) -> usize {
        let mut n = 0;
        while n < 256 {
            let Some(msg) = self.shared.mesh.recv(self.core) else {
                break;
            };
            n += 1;
            match msg {
                Msg::Packet {
                    data,
                    parsed,
                    member,
                    rx_core,
                    hops,
                } => {
                    self.counters.handed_in += 1;
                    self.dispatch(Pkt::Bytes(data), parsed, member, rx_core, hops);
                }
                Msg::Migrate {
                    socket,
                    key,
                    to,
                    rx_core,
                } => self.migrate_in(*socket, key, to, rx_core),
                Msg::FlowClosed { key } => {
                    if let Some(Owner::Remote { .. }) = self.flows.lookup(&key) {
                        self.flows.remove(&key);
                    }
                }
                Msg::FlowOwned { key, core } => {
                    // Only if this core has no connection of its own for it.
                    if !matches!(self.flows.lookup(&key), Some(Owner::Local(_))) {
                        self.remember_remote(key, core);
                    }
                }
            }
        }
        n
    }

    /// Record that `core` owns `key` (bounded; a refusal is counted and the
    /// flow directory still finds the owner).
    pub(super) fn remember_remote(&mut self, key: FlowKey, core: usize) {
        let _ = self.flows.insert(key, Owner::Remote { core });
    }

    /// Tell `rx_core` (the core whose queue receives `key`'s packets) that
    /// this core owns the flow now.
    pub(super) fn announce_owner(&mut self, key: FlowKey, rx_core: usize) {
        if rx_core != self.core {
            let msg = Msg::FlowOwned {
                key,
                core: self.core,
            };
            let _ = self.shared.mesh.send(self.core, rx_core, msg);
        }
    }

    /// Tell `rx_core` that this core released `key`.
    pub(super) fn announce_closed(&mut self, key: FlowKey, rx_core: usize) {
        if rx_core != self.core {
            let _ = self
                .shared
                .mesh
                .send(self.core, rx_core, Msg::FlowClosed { key });
        }
    }

    /// A segment handed here for a flow this core does not have (it was
    /// released, and the notice was lost or is still on its way): the
    /// receiving core's entry is stale. Tell it, so it stops forwarding.
    pub(super) fn stale_remote(&mut self, p: &ParsedIp, rx_core: usize) {
        if let L4::Tcp {
            flags_syn: false, ..
        } = p.l4
        {
            if self.shared.directory.owner(&p.key).is_none() {
                self.announce_closed(p.key, rx_core);
            }
        }
    }

    /// Hand a packet to `core`. Returns whether it was sent.
    pub(super) fn forward(
        &mut self,
        core: usize,
        pkt: Pkt,
        parsed: ParsedIp,
        member: Option<MemberId>,
        rx_core: usize,
        hops: u8,
    ) -> bool {
        if hops >= MAX_HOPS {
            self.counters.handoff_dropped += 1;
            self.release_pkt(pkt);
            return false;
        }
        let data = match pkt {
            Pkt::Bytes(b) => b,
            Pkt::Frame(f, len) => {
                let mut buf = self.buffer();
                self.port.read(f, |b| {
                    if let Some(ip) = b.get(ETH_HDR..ETH_HDR + len) {
                        buf.extend_from_slice(ip);
                    }
                });
                buf
            }
        };
        let msg = Msg::Packet {
            data,
            parsed,
            member,
            rx_core,
            hops: hops + 1,
        };
        match self.shared.mesh.send(self.core, core, msg) {
            Ok(()) => {
                self.counters.handed_off += 1;
                true
            }
            Err(msg) => {
                self.counters.handoff_dropped += 1;
                if let Msg::Packet { data, .. } = msg {
                    self.recycle(data);
                }
                false
            }
        }
    }

    /// A packet buffer: from this core's pool, else one another core gave
    /// back (handoff is mostly one way: the receiver frees what the sender
    /// took), else a new one.
    pub(super) fn buffer(&mut self) -> Vec<u8> {
        let mut b = self
            .pool
            .pop()
            .or_else(|| self.shared.mesh.spare())
            .unwrap_or_default();
        b.clear();
        b
    }

    pub(super) fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() < 256 {
            self.pool.push(buf);
        } else {
            self.shared.mesh.give_spare(buf);
        }
    }

    pub(super) fn release_pkt(&mut self, pkt: Pkt) {
        if let Pkt::Bytes(b) = pkt {
            self.recycle(b);
        }
        // Frames are released by the ingress loop.
    }
}
