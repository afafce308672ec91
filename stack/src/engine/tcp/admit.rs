//! Admission: a SYN for a listener of this core becomes a half-open
//! connection, a SYN cookie or a drop, as `Listeners::admission` decides;
//! an ACK that returns a valid cookie becomes a connection.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use nic::Rings;
use smoltcp::socket::tcp;
use smoltcp::wire::{TcpRepr, TcpSeqNumber, TcpTimestampRepr};

use super::super::{Engine, Pkt, ETH_HDR};
use crate::cookie::CookieOpts;
use crate::parse::{tcp_options, FlowKey, ParsedIp, TcpOpts};
use crate::reuseport::MemberId;
use crate::tcp::{
    cookie_syn, cookie_syn_ack, emit_ip_tcp, ip_tcp_len, Admission, CookieListener, Phase, SynOpts,
};

impl<R: Rings> Engine<R> {
    /// A SYN for listener `m` on this core: acts on the listener's
    /// [`Admission`]. An admitted SYN makes a connection in SYN-RECEIVED
    /// that expires after `syn_timeout`.
    pub(in crate::engine) fn admit(&mut self, pkt: Pkt, p: &ParsedIp, m: MemberId, rx_core: usize) {
        let admission = self.listeners.admission(
            m,
            self.conns.live(),
            self.cfg.max_conns,
            self.cfg.syncookies,
        );
        let (port, counters) = match admission {
            Admission::Admit { port, counters } => (port, counters),
            Admission::NoListener => return self.release_pkt(pkt),
            Admission::AcceptQueueFull => {
                self.listeners.dropped(m);
                self.counters.syn_backlog_full += 1;
                return self.release_pkt(pkt);
            }
            Admission::Cookie => {
                self.listeners.cookie_sent(m, self.now);
                let opts = self.pkt_tcp_options(&pkt);
                self.send_cookie(p, &opts);
                return self.release_pkt(pkt);
            }
            Admission::SynQueueFull => {
                self.listeners.dropped(m);
                self.counters.syn_queue_full += 1;
                return self.release_pkt(pkt);
            }
            Admission::ConnLimit => {
                self.listeners.dropped(m);
                self.counters.conn_limit += 1;
                return self.release_pkt(pkt);
            }
        };
        let key = p.key;
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
        let Some(c) = self.conns.alloc(port) else {
            self.shared.directory.release(&key, self.core);
            return self.release_pkt(pkt);
        };
        self.conns
            .setup(c, key, m, rx_core, counters, Some(p.tcp.seq));
        self.listeners.syn_added(m);
        let ts = self.ts_offset(&key);
        let rto = self.peer_rtos.get(key.src, self.now);
        if let Some(s) = self.conns.socket(c) {
            s.set_timestamps(ts);
            if let Some(rto) = rto {
                // The SYN-ACK is timed by the peer's last connection.
                s.set_initial_rto(rto);
                self.counters.handshake_rto_from_peer += 1;
            }
        }
        if let Some(isn) = self.next_isn.take() {
            // Reopening a 4-tuple in TIME-WAIT: above the old sequence space.
            if let Some(s) = self.conns.socket(c) {
                s.set_next_isn_unanswered(TcpSeqNumber(isn as i32));
            }
        }
        self.feed(Some(c.idx), pkt);
        if self.conns.state(c) != Some(tcp::State::SynReceived) {
            // smoltcp did not take it (e.g. not for one of our addresses).
            self.release(c);
            return;
        }
        let deadline = self.syn_deadline();
        self.conns.set_deadline(c, Some(deadline));
        self.own_flow(key, c, rx_core);
        self.conns.mark_dirty(c);
    }

    /// The TSval clock offset of a new connection of `key`, `None` without
    /// timestamps.
    pub(in crate::engine) fn ts_offset(&self, key: &FlowKey) -> Option<u32> {
        self.cfg
            .timestamps
            .then(|| self.shared.cookies.ts_offset(key))
    }

    /// The window scale a SYN-ACK of this engine offers: what smoltcp takes
    /// for a socket whose window may grow to `rmem.max` (the one a
    /// connection rebuilt from a cookie gets).
    fn window_shift(&self) -> u8 {
        let max = self.cfg.buffers.rmem.max.max(1);
        (usize::BITS - max.leading_zeros()).saturating_sub(16) as u8
    }

    /// The TCP options of a held segment (SYN cookies: the SYN's, the final
    /// ACK's timestamp).
    fn pkt_tcp_options(&self, pkt: &Pkt) -> TcpOpts {
        match pkt {
            Pkt::Bytes(b) => tcp_options(b),
            Pkt::Frame(f, len) => self
                .port
                .read(*f, |b| b.get(ETH_HDR..ETH_HDR + len).map(tcp_options))
                .flatten()
                .unwrap_or_default(),
        }
    }

    /// Answer a SYN with a SYN-ACK whose sequence number is a cookie; keep
    /// nothing. With the client's timestamp option, the SYN-ACK's TSval
    /// keeps its window scale and SACK-permitted ([`CookieOpts`]) and it
    /// offers ours.
    fn send_cookie(&mut self, p: &ParsedIp, syn: &TcpOpts) {
        let key = p.key;
        let now_s = (self.now.total_millis() / 1000) as u64;
        let client_isn = p.tcp.seq;
        let (cookie, _mss) = self.shared.cookies.make(&key, client_isn, p.tcp.mss, now_s);
        let our_mss = match key.dst {
            IpAddr::V4(_) => self.port.config().mtu.saturating_sub(40),
            IpAddr::V6(_) => self.port.config().mtu.saturating_sub(60),
        };
        let window = self.cfg.buffers.rmem.init.min(65535) as u16;
        let opts = match (self.ts_offset(&key), syn.timestamp) {
            (Some(off), Some((tsval, _))) => {
                let kept = CookieOpts {
                    wscale: syn.wscale,
                    sack: syn.sack_permitted,
                };
                let now_ts = (self.now.total_millis() as u32).wrapping_add(off);
                SynOpts {
                    wscale: syn.wscale.map(|_| self.window_shift()),
                    sack: syn.sack_permitted,
                    ts: Some(TcpTimestampRepr::new(kept.encode_ts(now_ts), tsval)),
                }
            }
            _ => SynOpts::default(),
        };
        let tcp = cookie_syn_ack(
            &key,
            cookie,
            client_isn,
            window,
            our_mss.min(65535) as u16,
            opts,
        );
        if self.send_tcp(key.dst, key.src, &tcp) {
            self.counters.syncookies_sent += 1;
        } else {
            self.counters.syncookies_unsent += 1;
        }
    }

    /// Emit one TCP segment we build ourselves (cookie SYN-ACKs, the ACKs
    /// of TIME-WAIT records).
    pub(super) fn send_tcp(&mut self, src: IpAddr, dst: IpAddr, tcp: &TcpRepr) -> bool {
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
    pub(in crate::engine) fn cookie_ack(
        &mut self,
        pkt: Pkt,
        p: &ParsedIp,
        m: MemberId,
        rx_core: usize,
    ) {
        let key = p.key;
        let now = self.now;
        let Some(CookieListener {
            port,
            counters,
            full,
        }) = self.listeners.cookie_listener(m, now)
        else {
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
        let Some(c) = self.conns.alloc(port) else {
            self.shared.directory.release(&key, self.core);
            return self.release_pkt(pkt);
        };
        // The options the cookie SYN-ACK's timestamp kept, echoed in this
        // ACK's TSecr; the SYN gets the ACK's TSval (TS.Recent).
        let ts = self.ts_offset(&key);
        let opts = match (ts, self.pkt_tcp_options(&pkt).timestamp) {
            (Some(_), Some((tsval, tsecr))) => {
                let kept = CookieOpts::decode_ts(tsecr);
                SynOpts {
                    wscale: kept.wscale,
                    sack: kept.sack,
                    ts: Some(TcpTimestampRepr::new(tsval, 0)),
                }
            }
            _ => SynOpts::default(),
        };
        self.conns
            .setup(c, key, m, rx_core, counters, Some(client_isn));
        self.listeners.syn_added(m);
        if let Some(s) = self.conns.socket(c) {
            s.set_next_isn(Some(TcpSeqNumber(cookie as i32)));
            s.set_timestamps(ts);
        }
        let syn = self.syn_for_cookie(&key, client_isn, mss, p.tcp.window, opts);
        self.feed(Some(c.idx), Pkt::Bytes(syn));
        if self.conns.state(c) != Some(tcp::State::SynReceived) {
            self.release(c);
            return self.release_pkt(pkt);
        }
        if opts.wscale.is_some() {
            // The scale the cookie SYN-ACK offered is the socket's.
            debug_assert_eq!(
                self.conns.socket(c).map(|s| s.recv_window_shift()),
                Some(self.window_shift())
            );
        }
        self.own_flow(key, c, rx_core);
        self.conns.ensure_rx(c, p.tcp.seq, p.payload_len);
        self.feed(Some(c.idx), pkt);
        self.conns.mark_dirty(c);
        self.settle(c, false, crate::socket::ConnEnd::Reset);
        if self.conns.phase(c) == Some(Phase::Queued) {
            self.counters.syncookies_ok += 1;
        } else {
            self.counters.syncookies_bad += 1;
            if let Some(s) = self.conns.socket(c) {
                s.abort();
            }
            self.release(c);
        }
    }

    /// The SYN a cookie stands for, as a packet to feed to a new socket.
    fn syn_for_cookie(
        &mut self,
        key: &FlowKey,
        client_isn: u32,
        mss: u16,
        window: u16,
        opts: SynOpts,
    ) -> Vec<u8> {
        let tcp = cookie_syn(key, client_isn, mss, window, opts);
        let mut buf = self.buffer();
        if let Some(len) = ip_tcp_len(key.src, key.dst, &tcp) {
            buf.resize(len, 0);
            emit_ip_tcp(&mut buf, key.src, key.dst, &tcp);
        }
        buf
    }
}
