//! Connections in TIME-WAIT (`crate::tcp::TimeWait` decides): a connection
//! that reaches it leaves a record and its slot at once; a segment for a
//! record is answered from it; records expire from the egress pass.
//!
//! While a record lives, the flow directory keeps this core as the
//! 4-tuple's owner, so a segment of the flow that another core receives
//! (a client that moved the flow to another queue) is still sent here; the
//! receiving core's own entry is dropped at once, as for any release, and
//! found again in the directory when a segment comes.

use nic::Rings;
use smoltcp::time::Instant;
use smoltcp::wire::TcpTimestampRepr;

use super::super::{Engine, Pkt};
use crate::l2::ETH_HDR;
use crate::parse::{tcp_tsval, ParsedIp, L4};
use crate::reuseport::MemberId;
use crate::socket::ConnId;
use crate::tcp::{bare_ack, TwSegment, TwVerdict};

/// The engine's time as the table's wrapping milliseconds.
fn ms(t: Instant) -> u32 {
    t.total_millis() as u32
}

impl<R: Rings> Engine<R> {
    /// `c` (closing, the application's) reached TIME-WAIT and sent what it
    /// owed: its record takes over and the slot is released.
    pub(super) fn enter_time_wait(&mut self, c: ConnId) {
        let seq = self
            .time_wait
            .enabled()
            .then(|| self.conns.socket(c).map(|s| s.seq_state()))
            .flatten();
        let (Some(seq), Some(key)) = (seq, self.conns.key(c)) else {
            self.counters.time_wait_reaped += 1;
            return self.release(c);
        };
        self.release_keeping(c, true);
        if let Some(dropped) = self.time_wait.enter(key, seq, ms(self.now)) {
            self.forget_time_wait(dropped);
        }
    }

    /// A record ended: the directory lets the 4-tuple go (unless a
    /// connection of this core holds it again).
    fn forget_time_wait(&mut self, key: crate::parse::FlowKey) {
        if self.flows.lookup(&key).is_none() {
            self.shared.directory.release(&key, self.core);
        }
    }

    /// End the record at `pos` now.
    fn end_time_wait(&mut self, pos: u32) {
        if let Some(key) = self.time_wait.remove(pos) {
            self.forget_time_wait(key);
        }
    }

    /// A segment for the record at `pos` (see `TimeWait::segment`): an ACK
    /// from the record, nothing, the record's end, or, for a SYN that
    /// reopens the 4-tuple, a new connection.
    pub(in crate::engine) fn time_wait_segment(
        &mut self,
        pkt: Pkt,
        p: ParsedIp,
        pos: u32,
        hint: Option<MemberId>,
        rx_core: usize,
        hops: u8,
    ) {
        let now = ms(self.now);
        if !self.time_wait.is_live(pos, now) {
            // Past its 2·MSL, not popped yet: gone, as if never there.
            self.time_wait.count_expired();
            self.end_time_wait(pos);
            return self.dispatch(pkt, p, hint, rx_core, hops);
        }
        let L4::Tcp {
            flags_syn,
            flags_ack,
            flags_rst,
            flags_fin,
        } = p.l4
        else {
            return self.release_pkt(pkt);
        };
        let tsval = if self.time_wait.has_ts(pos) {
            self.pkt_tsval(&pkt)
        } else {
            None
        };
        let seg = TwSegment {
            syn: flags_syn,
            ack: flags_ack,
            rst: flags_rst,
            fin: flags_fin,
            seq: p.tcp.seq,
            payload_len: p.payload_len as u32,
            tsval,
        };
        match self.time_wait.segment(pos, &seg, now) {
            TwVerdict::Ack => {
                if let Some(a) = self.time_wait.ack(pos) {
                    let mut tcp = bare_ack(&a.key, a.seq, a.ack, a.window);
                    // A connection with timestamps keeps them to the end
                    // (RFC 7323 §3.2): our clock with its offset for the
                    // 4-tuple, TS.Recent echoed.
                    if let (Some(tsecr), Some(off)) = (a.ts_recent, self.ts_offset(&a.key)) {
                        tcp.timestamp = Some(TcpTimestampRepr {
                            tsval: now.wrapping_add(off),
                            tsecr,
                        });
                    }
                    self.send_tcp(a.key.dst, a.key.src, &tcp);
                }
                self.release_pkt(pkt);
            }
            TwVerdict::Drop => self.release_pkt(pkt),
            TwVerdict::Kill => {
                self.end_time_wait(pos);
                self.release_pkt(pkt);
            }
            TwVerdict::Reuse { isn } => {
                self.end_time_wait(pos);
                // The SYN goes where a new flow's goes; admitted here, its
                // connection starts at `isn`.
                self.next_isn = Some(isn);
                self.dispatch(pkt, p, hint, rx_core, hops);
                self.next_isn = None;
            }
        }
    }

    /// The TSval of `pkt`'s timestamp option.
    fn pkt_tsval(&self, pkt: &Pkt) -> Option<u32> {
        match pkt {
            Pkt::Frame(f, len) => self
                .port
                .read(*f, |b| b.get(ETH_HDR..ETH_HDR + len).and_then(tcp_tsval))
                .flatten(),
            Pkt::Bytes(b) => tcp_tsval(b),
        }
    }

    /// Pop the records due now (egress passes): nothing to do, and no
    /// cost, until the oldest is due.
    pub(in crate::engine) fn expire_time_wait(&mut self, now: Instant) {
        let Engine {
            time_wait,
            flows,
            shared,
            core,
            ..
        } = self;
        time_wait.expire(ms(now), |k| {
            if flows.lookup(&k).is_none() {
                shared.directory.release(&k, *core);
            }
        });
    }

    /// When the oldest record comes due (the worker wakes to pop it, so
    /// that the directory lets its 4-tuple go in time).
    pub(in crate::engine) fn time_wait_due(&self, now: Instant) -> Option<Instant> {
        let now_ms = ms(now);
        let due = self.time_wait.next_due(now_ms)?;
        let ahead = due.wrapping_sub(now_ms) as i32;
        Some(now + smoltcp::time::Duration::from_millis(ahead.max(0) as u64))
    }
}
