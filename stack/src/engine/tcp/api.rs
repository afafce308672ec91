//! The TCP socket API of an engine: listeners (listen, accept, drain,
//! close) and connections (read, write, shut down, close, abort), for the
//! applications on its core.

use std::sync::atomic::Ordering;

use nic::Rings;
use smoltcp::socket::tcp;

use super::super::Engine;
use crate::parse::{FlowKey, Proto};
use crate::reuseport::{BindAddr, BindError, BindOptions, MemberId};
use crate::socket::{ConnEnd, ConnError, ConnId, ListenerId};
use crate::tcp::{Listener, Phase};

impl<R: Rings> Engine<R> {
    // ---- listeners ----

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
        self.listeners
            .insert(id, Listener::new(port, backlog, syn_backlog, counters));
        Ok(ListenerId(id))
    }

    /// Take an established connection off the listener's accept queue.
    pub fn accept(&mut self, id: ListenerId) -> Option<ConnId> {
        loop {
            let (c, counters) = self.listeners.pop_accept(id.0)?;
            // Skipped: reset, or migrated, before it was accepted.
            if self.conns.take_queued(c, id.0) {
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                self.counters.accepted += 1;
                return Some(c);
            }
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
        let member = self.conns.unaccept(c).ok_or(ConnError::NotFound)?;
        self.migrate_out(member, c);
        Ok(())
    }

    /// Connections waiting on the listener: handshaking (SYN queue) or
    /// established on the accept queue.
    pub fn pending(&self, id: ListenerId) -> usize {
        self.listeners
            .pending(id.0, |c| self.conns.is_queued_on(c, id.0))
    }

    /// Stop taking new flows on this listener; its queued connections stay
    /// and can still be accepted (graceful drain).
    pub fn drain(&mut self, id: ListenerId) -> Result<(), BindError> {
        self.shared.registry.drain(id.0)?;
        self.listeners.drain(id.0);
        Ok(())
    }

    /// Close a listener. Its not-yet-accepted connections (handshaking or
    /// established) migrate to another live member of its group (on this
    /// core when there is one); with none left they are reset.
    pub fn close_listener(&mut self, id: ListenerId) -> Result<(), BindError> {
        let id = id.0;
        if !self.listeners.contains(id) {
            return Err(BindError::NoSuchMember);
        }
        // Out of selection first, so no new flow picks it meanwhile.
        let _ = self.shared.registry.drain(id);
        // A rare operation: one walk over the table finds its connections.
        let pending = self
            .conns
            .select(Some(id), &[Phase::HalfOpen, Phase::Queued]);
        self.listeners.clear_queues(id);
        for c in pending {
            self.migrate_out(id, c);
        }
        self.retire(id)?;
        self.listeners.remove(id);
        Ok(())
    }

    // ---- connections ----

    fn app_socket(&mut self, c: ConnId) -> Result<&mut tcp::Socket<'static>, ConnError> {
        self.conns.app_socket(c).ok_or(ConnError::NotFound)
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
            // Buffers that grow: the window follows what the application
            // reads; emptied storage goes back.
            self.conns.tune_rx(c, n, self.now);
            self.conns.reclaim(c, self.now, false);
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
        if !self.app_socket(c)?.may_send() {
            return Err(ConnError::Closed);
        }
        // Buffers that grow: room for the data, as the window allows.
        self.conns.ensure_tx(c, data.len());
        let s = self.app_socket(c)?;
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

    /// Our address of the connection (the one the peer reached).
    pub fn local(&mut self, c: ConnId) -> Result<Option<smoltcp::wire::IpEndpoint>, ConnError> {
        Ok(self.app_socket(c)?.local_endpoint())
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
    /// (in TIME-WAIT, a compact record stays for 60 s: see
    /// `EngineConfig::time_wait_max`). A peer that never finishes the close
    /// is reset after `EngineConfig::close_timeout`.
    pub fn close(&mut self, c: ConnId) {
        let already = self.conns.phase(c) == Some(Phase::Closing);
        let full = !already && self.conns.closing() >= self.cfg.max_orphans;
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
        self.conns.live()
    }

    /// Connections held now by phase: half-open, queued (not accepted),
    /// accepted, closing.
    pub fn phases(&self) -> [usize; 4] {
        self.conns.phases()
    }

    /// A line per closing connection: flow, socket state, receiving core,
    /// whether it waits for a pass or a timer (diagnosis of slow stops).
    pub fn closing_report(&self) -> Vec<String> {
        self.conns.closing_report(&self.flows)
    }

    /// The flows of the connections this engine holds (any state).
    pub fn local_flows(&self) -> Vec<FlowKey> {
        self.conns.local_flows()
    }

    /// Record which accepted connections receive segments, for
    /// [`Engine::take_ready`]. Off by default (nothing is recorded).
    pub fn set_ready_tracking(&mut self, on: bool) {
        self.conns.set_ready_tracking(on);
    }

    /// Move into `out` the accepted connections that had activity since the
    /// last call: a segment changed something for them (data, an
    /// acknowledgement that freed send buffer space, FIN). Each appears
    /// once; a connection released meanwhile does not appear (one the
    /// engine ended is in [`Engine::take_ended`]). Needs
    /// [`Engine::set_ready_tracking`]; newly accepted connections are not
    /// listed (the application looks at them when it accepts them).
    pub fn take_ready(&mut self, out: &mut Vec<ConnId>) {
        self.conns.take_ready(out);
    }

    /// Move into `out` the accepted connections the engine ended since the
    /// last call, and why: reset by the peer, finished after the
    /// application's shutdown, timed out, or given up by the peer for a new
    /// connection on the same 4-tuple. Each appears once; it is released
    /// already, so `recv`/`send` on it give `NotFound` and `close`/`abort`
    /// do nothing (its slot's next connection has another generation).
    /// Recorded while [`Engine::set_ready_tracking`] is on.
    pub fn take_ended(&mut self, out: &mut Vec<(ConnId, ConnEnd)>) {
        self.conns.take_ended(out);
    }

    /// Abort every connection and close every listener (shutdown).
    pub fn abort_all(&mut self) {
        for id in self.listeners.ids() {
            let _ = self.close_listener(ListenerId(id));
        }
        let live = self.conns.select(
            None,
            &[
                Phase::HalfOpen,
                Phase::Queued,
                Phase::Accepted,
                Phase::Closing,
                Phase::Connecting,
            ],
        );
        for c in live {
            self.abort(c);
        }
        let ids: Vec<MemberId> = self.udp.keys().copied().collect();
        for id in ids {
            let _ = self.udp_close(crate::socket::UdpId(id));
        }
    }
}
