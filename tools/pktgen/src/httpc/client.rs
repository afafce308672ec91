//! [`HttpClient`]: the port and the connections' state machine together,
//! stepped by the generator loop.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nic::{Port, Rings};
use smoltcp::wire::{TcpControl, TcpRepr, TcpSeqNumber};

use super::*;
use crate::gen::{send_secs, Generator};
use crate::neigh::{self};

impl<R: Rings> HttpClient<R> {
    /// A client on `port`; connections open from the first step on.
    pub fn new(port: Port<R>, cfg: HttpConfig) -> HttpClient<R> {
        HttpClient {
            port,
            frames: Vec::with_capacity(64),
            k: Core::new(cfg),
        }
    }

    /// Stop sending anything new now; what is outstanding is awaited.
    pub fn stop_sending(&mut self) {
        let now = Instant::now();
        if self.k.cfg.send_until > now {
            self.k.cfg.send_until = now;
        }
    }

    fn receive(&mut self, now: Instant) -> usize {
        let now_ns = self.k.ns(now);
        let mut total = 0;
        for _ in 0..RX_BATCHES {
            let n = self.port.recv(&mut self.frames);
            for i in 0..n {
                let f = self.frames[i];
                let mut action = Action::Release;
                let k = &mut self.k;
                // A frame `recv` returned is held: `read` cannot refuse it.
                let _ = self.port.read(f, |b| action = k.on_frame(b, now_ns));
                match action {
                    Action::Release => self.port.release(f),
                    Action::Neighbor => {
                        let (mac, ours) = (self.k.cfg.our_mac, self.k.cfg.src_ips);
                        if neigh::reflect_answer(&mut self.port, f, mac, ours) {
                            self.k.c.neighbor_answered += 1;
                        }
                    }
                }
            }
            total += n;
            if n < self.port.batch() {
                break;
            }
        }
        total
    }

    /// Before the first SYN: an ARP request (NDP solicitation) for the
    /// server from each source address, so that the server knows where
    /// they are before connections come from them (a server that has to
    /// ask first drops the SYN-ACK it could not send, and the handshake
    /// waits for a retransmission).
    fn announce(&mut self) -> bool {
        let k = &mut self.k;
        let total = k.cfg.src_ips.len.clamp(1, ANNOUNCE_MAX);
        while k.announced < total {
            let src = k.cfg.src_ips.nth(k.announced);
            let (mac, dst) = (k.cfg.our_mac, k.cfg.dst);
            let ok = self.port.send_frame(128, |b| {
                b.fill(0);
                let _ = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => neigh::arp_request(b, mac, s, d),
                    (IpAddr::V6(s), IpAddr::V6(d)) => neigh::ndp_solicit(b, mac, s, d),
                    _ => None,
                };
            });
            if !ok {
                break;
            }
            k.announced += 1;
        }
        k.announced >= total
    }

    /// Write the queued segments into frames.
    fn emit(&mut self) {
        let mut done = 0;
        for i in 0..self.k.outs.len() {
            let o = self.k.outs[i];
            let (src, sport) = self.k.cfg.endpoint(o.flow);
            let payload: &[u8] = if o.request { &self.k.cfg.request } else { &[] };
            let tcp = TcpRepr {
                src_port: sport,
                dst_port: self.k.cfg.dst_port,
                control: match o.control {
                    Ctl::Syn => TcpControl::Syn,
                    Ctl::Fin => TcpControl::Fin,
                    Ctl::Rst => TcpControl::Rst,
                    Ctl::Ack if o.request => TcpControl::Psh,
                    Ctl::Ack => TcpControl::None,
                },
                seq_number: TcpSeqNumber(o.seq as i32),
                ack_number: o.ack.map(|a| TcpSeqNumber(a as i32)),
                window_len: if o.control == Ctl::Rst { 0 } else { WINDOW },
                window_scale: None,
                max_seg_size: (o.control == Ctl::Syn).then_some(MSS),
                sack_permitted: false,
                sack_ranges: [None; 3],
                timestamp: None,
                ecn: Default::default(),
                payload,
            };
            let len = frame_len(src, &tcp);
            let (our_mac, dst_mac, dst) = (self.k.cfg.our_mac, self.k.cfg.dst_mac, self.k.cfg.dst);
            let ok = self.port.send_frame(len, |b| {
                write_segment(b, our_mac, dst_mac, src, dst, &tcp);
            });
            if !ok {
                // No frame free: the rest waits for the next step.
                self.k.c.tx_blocked += 1;
                break;
            }
            done += 1;
        }
        self.k.outs.drain(..done);
        self.port.flush(|_, len| Some(len));
    }

    fn publish(&self) {
        let l = &self.k.cfg.live;
        l.sent.store(self.k.c.requests, Ordering::Relaxed);
        l.received.store(self.k.c.received, Ordering::Relaxed);
        l.answered.store(self.k.c.responses, Ordering::Relaxed);
        l.open.store(self.k.open, Ordering::Relaxed);
    }

    /// One round: receive, run the timers, open connections and send
    /// requests (while sending), transmit.
    pub fn step(&mut self, now: Instant) -> Step {
        let got = self.receive(now);
        self.k.scan_timers(now);
        let now_ns = self.k.ns(now);
        self.k.delayed_acks(now_ns);
        if self.k.all_open.is_none() && self.k.open >= u64::from(self.k.cfg.conns) {
            self.k.all_open = Some(now);
        }
        if self.k.sending && now >= self.k.cfg.send_until {
            self.k.sending = false;
            self.k.sent_until = Some(now);
            self.k.drain_until = Some(now + self.k.cfg.drain);
        }
        let mut made = self.k.outs.len();
        if self.k.sending && self.announce() {
            self.k.connect(now);
            self.k.paced_requests(now);
            made = self.k.outs.len();
        }
        self.emit();
        self.publish();
        if let Some(until) = self.k.drain_until {
            // Handshakes, requests and (`--close`) FINs all answered.
            if now >= until || self.k.outstanding == 0 {
                self.reset_all();
                return Step::Done;
            }
        }
        if got > 0 || made > 0 || self.port.pending_tx() > 0 {
            return Step::Busy;
        }
        let mut wait = self.k.next_scan.saturating_duration_since(now);
        if self.k.sending {
            wait = wait.min(self.k.cfg.send_until.saturating_duration_since(now));
            if !self.k.free.is_empty() {
                wait = wait.min(self.k.connect_pacer.wait_time(now));
            }
            if !self.k.cfg.close && self.k.cfg.rate > 0 {
                wait = wait.min(self.k.pacer.wait_time(now));
            }
        } else if let Some(until) = self.k.drain_until {
            wait = wait.min(until.saturating_duration_since(now));
        }
        if self.port.in_flight() > 0 {
            wait = wait.min(Duration::from_millis(1));
        }
        Step::Idle(wait)
    }

    /// Reset every connection still open (at the end).
    fn reset_all(&mut self) {
        for s in 0..self.k.conns.len() {
            let c = self.k.conns[s];
            if c.st == St::Free {
                continue;
            }
            if c.st != St::SynSent {
                self.k.reset_out(c.flow, c.snd_nxt);
            }
            self.k.set_state(s, St::Free);
            if self.k.outs.len() >= self.k.cfg.batch.max(1) {
                self.emit_all();
            }
        }
        self.emit_all();
    }

    /// Emit what is queued, waiting for frames if need be (bounded).
    fn emit_all(&mut self) {
        for _ in 0..1000 {
            self.emit();
            if self.k.outs.is_empty() {
                return;
            }
            // Frames were short: give the kernel a moment and try what was left.
            let _ = self.port.wait(1);
        }
    }

    /// Finish: check the frame accounting and hand back the report.
    pub fn finish(self) -> HttpReport {
        let epoch = self.k.cfg.epoch;
        let send_secs = send_secs(epoch, self.k.sent_until);
        HttpReport {
            frames: self.port.check(),
            port: self.port.stats(),
            send_secs,
            peak_open: self.k.peak_open,
            all_open_s: self
                .k
                .all_open
                .map(|t| t.saturating_duration_since(epoch).as_secs_f64()),
            hist: self.k.hist,
            connect_hist: self.k.connect_hist,
            counters: self.k.c,
        }
    }
}

impl<R: Rings> Generator for HttpClient<R> {
    fn stop_sending(&mut self) {
        HttpClient::stop_sending(self);
    }
    fn step(&mut self, now: Instant) -> Step {
        HttpClient::step(self, now)
    }
    fn wait(&mut self, ms: i32) {
        let _ = self.port.wait(ms);
    }
}
