//! Accepted connections the engine ends (issue 20, "no state that outlives
//! its connection"): reported to the application through `take_ended` and
//! released at once; segments that change nothing are no activity.
//!
//! The engine and a plain smoltcp client in the one in-memory harness
//! (`stack::testing`), and raw segments of a flow the client's smoltcp does not use
//! (CLIENT:5555), read off the client's port behind its back.

use std::net::Ipv4Addr;
use std::ops::{Deref, DerefMut};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Duration as SDuration;
use smoltcp::wire::{EthernetFrame, Ipv4Packet, TcpControl, TcpPacket};
use stack::engine::ListenerId;
use stack::reuseport::{BindAddr, BindOptions};
use stack::socket::{ConnEnd, ConnError, ConnId};
use stack::testing::{engine_net, EngineNet};

const SERVER: Ipv4Addr = testkit::SERVER_IP4;
const CLIENT: Ipv4Addr = testkit::CLIENT_IP4;
const RAW_PORT: u16 = 5555;

/// The one in-memory harness (`stack::testing`), with the raw flow's helpers.
struct Net(EngineNet);

impl Deref for Net {
    type Target = EngineNet;
    fn deref(&self) -> &EngineNet {
        &self.0
    }
}

impl DerefMut for Net {
    fn deref_mut(&mut self) -> &mut EngineNet {
        &mut self.0
    }
}

impl Net {
    fn new() -> Net {
        Net(engine_net(|_| {}))
    }

    fn listen(&mut self) -> ListenerId {
        let opts = BindOptions::new(0).with_reuseport(true).with_backlog(64);
        self.server
            .engine
            .tcp_listen(BindAddr::Any4, 80, opts)
            .unwrap()
    }

    /// `n` client connections from ports `base..`, established and accepted,
    /// in port order.
    fn connect(&mut self, l: ListenerId, n: u16, base: u16) -> Vec<(SocketHandle, ConnId)> {
        let hs: Vec<_> = (0..n)
            .map(|i| self.client.connect(base + i, (SERVER, 80)))
            .collect();
        let mut cs = Vec::new();
        self.run_until(3000, "accepted", |net| {
            while let Some(c) = net.server.engine.accept(l) {
                cs.push(c);
            }
            cs.len() == n as usize
        });
        let mut pairs: Vec<_> = cs
            .into_iter()
            .map(|c| {
                let port = self.server.engine.peer(c).unwrap().unwrap().port;
                (hs[(port - base) as usize], c)
            })
            .collect();
        pairs.sort_by_key(|&(h, _)| hs.iter().position(|&x| x == h));
        pairs
    }

    fn ended(&mut self) -> Vec<(ConnId, ConnEnd)> {
        let mut v = Vec::new();
        self.server.engine.take_ended(&mut v);
        v
    }

    fn ready(&mut self) -> Vec<ConnId> {
        let mut v = Vec::new();
        self.server.engine.take_ready(&mut v);
        v
    }

    /// Inject a raw segment (after 1.1 s: challenge ACKs are limited to one
    /// a second; an empty frame injects nothing), let the engine work; what
    /// it sent to the raw flow, as (seq, ack, syn).
    fn exchange(&mut self, frame: &[u8]) -> Vec<(u32, Option<u32>, bool)> {
        self.clock += SDuration::from_millis(1100);
        if !frame.is_empty() {
            assert!(self
                .client
                .port
                .send_frame(frame.len(), |b| b.copy_from_slice(frame)));
            self.client.port.flush(|_, len| Some(len));
        }
        let now = self.clock;
        self.server.engine.ingress(now);
        self.server.engine.egress(now);
        let mut frames = Vec::new();
        self.client.port.recv(&mut frames);
        let mut out = Vec::new();
        for f in frames {
            let seg = self.client.port.read(f, |b| {
                let eth = EthernetFrame::new_checked(b).ok()?;
                let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
                let t = TcpPacket::new_checked(ip.payload()).ok()?;
                (t.dst_port() == RAW_PORT).then(|| {
                    let ack = t.ack().then(|| t.ack_number().0 as u32);
                    (t.seq_number().0 as u32, ack, t.syn())
                })
            });
            self.client.port.release(f);
            out.extend(seg.flatten());
        }
        out
    }

    /// The raw flow's handshake with client ISN `isn`, accepted: the
    /// connection and the server's next sequence number.
    fn raw_accepted(&mut self, l: ListenerId, isn: u32) -> (ConnId, u32) {
        let out = self.exchange(&raw(TcpControl::Syn, isn, None, &[]));
        let [(sisn, Some(_), true)] = out[..] else {
            panic!("no SYN-ACK: {out:?}");
        };
        let snd = sisn.wrapping_add(1);
        self.exchange(&raw(TcpControl::None, isn + 1, Some(snd), &[]));
        (self.server.engine.accept(l).expect("established"), snd)
    }
}

/// A segment of the raw flow CLIENT:5555 -> :80.
fn raw(control: TcpControl, seq: u32, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
    testkit::frames::segment_to_server(CLIENT, RAW_PORT, 80, control, seq, ack, payload)
}

#[test]
fn a_peer_reset_is_reported_and_the_connection_released_at_once() {
    let mut net = Net::new();
    let l = net.listen();
    net.server.engine.set_ready_tracking(true);
    let pairs = net.connect(l, 3, 42000);
    let held = net.server.engine.connections();
    assert_eq!(held, 3);
    // The peers of the first two reset (an RST at RCV.NXT: accepted).
    net.client.tcp(pairs[0].0).abort();
    net.client.tcp(pairs[1].0).abort();
    net.run(3);
    let mut ended = net.ended();
    ended.sort_by_key(|e| e.0.index());
    let mut want = vec![(pairs[0].1, ConnEnd::Reset), (pairs[1].1, ConnEnd::Reset)];
    want.sort_by_key(|e| e.0.index());
    assert_eq!(ended, want);
    assert!(net.ended().is_empty(), "reported once");
    assert!(net.ready().is_empty(), "an ended connection is not ready");
    assert_eq!(
        net.server.engine.connections(),
        1,
        "released in the same turn"
    );
    let c = pairs[0].1;
    assert_eq!(
        net.server.engine.recv(c, &mut [0; 8]),
        Err(ConnError::NotFound)
    );
    // The next connection takes a freed slot at its next generation; calls
    // on the stale id reach nothing.
    let next = net.connect(l, 1, 42100)[0];
    assert!(
        [pairs[0].1, pairs[1].1]
            .iter()
            .any(|o| o.index() == next.1.index() && o.generation() + 1 == next.1.generation()),
        "{next:?} reuses a freed slot"
    );
    net.server.engine.abort(pairs[0].1);
    net.server.engine.abort(pairs[1].1);
    net.server.engine.close(pairs[0].1);
    net.server.engine.close(pairs[1].1);
    assert_eq!(net.server.engine.send(next.1, b"x"), Ok(1));
    net.run(5);
    assert_eq!(net.client.tcp(next.0).state(), tcp::State::Established);
    let st = net.server.engine.stats().engine;
    assert_eq!((st.accepted, st.accepted_reset), (4, 2));
    net.server.engine.check_frames().unwrap();
}

#[test]
fn challenge_acks_and_refused_resets_are_not_activity() {
    let mut net = Net::new();
    let l = net.listen();
    net.server.engine.set_ready_tracking(true);
    // A real connection first: the engine learns the client's MAC.
    net.connect(l, 1, 42200);
    let isn = 1000;
    let (c, snd) = net.raw_accepted(l, isn);
    let nxt = isn + 1;
    net.exchange(&[]);
    net.ready();
    let before = net.server.engine.stats().engine.segments_no_progress;
    // A SYN on its 4-tuple (a client going round its ports): a challenge
    // ACK, no activity. An RST that is not at RCV.NXT: the same.
    for (control, seq) in [(TcpControl::Syn, 77_000), (TcpControl::Rst, nxt + 100)] {
        let out = net.exchange(&raw(control, seq, None, &[]));
        assert_eq!(
            out,
            [(snd, Some(nxt), false)],
            "{control:?}: a challenge ACK"
        );
        assert!(net.ready().is_empty(), "{control:?} is no activity");
    }
    assert_eq!(
        net.server.engine.stats().engine.segments_no_progress,
        before + 2
    );
    // Data is.
    net.exchange(&raw(TcpControl::Psh, nxt, Some(snd), b"q"));
    assert_eq!(net.ready(), [c]);
    assert!(net.ended().is_empty());
}

#[test]
fn a_syn_after_the_peers_fin_ends_the_held_connection_and_starts_anew() {
    let mut net = Net::new();
    let l = net.listen();
    net.server.engine.set_ready_tracking(true);
    net.connect(l, 1, 42300);
    let isn = 5000;
    let (c, snd) = net.raw_accepted(l, isn);
    // The peer's FIN: CLOSE-WAIT, the application has not answered yet.
    net.exchange(&raw(TcpControl::Fin, isn + 1, Some(snd), &[]));
    assert_eq!(net.ready(), [c]);
    assert_eq!(
        net.server.engine.recv(c, &mut [0; 8]),
        Err(ConnError::Closed)
    );
    // The client comes back on the same port with a new SYN: a SYN-ACK for
    // a new connection, the old one ended.
    let out = net.exchange(&raw(TcpControl::Syn, 900_000, None, &[]));
    assert!(
        matches!(out[..], [(_, Some(900_001), true)]),
        "a SYN-ACK: {out:?}"
    );
    assert_eq!(net.ended(), [(c, ConnEnd::Restarted)]);
    assert_eq!(
        net.server.engine.recv(c, &mut [0; 8]),
        Err(ConnError::NotFound)
    );
    let st = net.server.engine.stats().engine;
    assert_eq!((st.syn_restarts, st.accepted_restarted), (1, 1));
}

#[test]
fn without_tracking_nothing_is_recorded_but_the_slot_is_still_released() {
    let mut net = Net::new();
    let l = net.listen();
    let pairs = net.connect(l, 2, 42400);
    net.client.tcp(pairs[0].0).abort();
    net.run(3);
    assert!(net.ended().is_empty());
    assert_eq!(net.server.engine.connections(), 1);
    assert_eq!(
        net.server.engine.recv(pairs[0].1, &mut [0; 8]),
        Err(ConnError::NotFound)
    );
}
